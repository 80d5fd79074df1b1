//! Runner benchmarks: per-trial and per-result overhead of the driver, and its memory.
//!
//! `cargo bench -p tune-runtime --bench runner` runs every workload, each in a child
//! process of its own so that peak memory (VmHWM) is per workload.
//! `cargo bench -p tune-runtime --bench runner -- <workload>` runs one.

use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};
use tune_runtime::{
    CheckpointError, Checkpointable, Metric, Metrics, Space, Stop, TrainResult, Trainable,
    TrainableSpec, TrialContext, Tuner,
    space::{Condition, ConfigError, Dim, DimKind, DomainViolation, SpaceError},
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cfg {
    x: f64,
}

impl Space for Cfg {
    fn grid_size() -> usize {
        1
    }
    fn sample_at<R: Rng + ?Sized>(rng: &mut R, _grid_index: usize) -> Self {
        Cfg { x: rng.random::<f64>() }
    }
    fn num_dims() -> usize {
        1
    }
    fn describe(dims: &mut Vec<Dim>, prefix: &str, condition: Option<Condition>) {
        dims.push(Dim {
            name: format!("{prefix}x"),
            kind: DimKind::Float { low: 0.0, high: 1.0, log: false, q: None },
            condition,
        });
    }
    fn encode_into(&self, out: &mut [f64]) {
        out[0] = self.x;
    }
    fn decode_from(x: &[f64]) -> Result<Self, SpaceError> {
        Ok(Cfg { x: x[0] })
    }
    fn check_domains(&self, _prefix: &str, _errors: &mut Vec<DomainViolation>) {}
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Score {
    score: f64,
}

impl Metrics for Score {
    const NAMES: &'static [&'static str] = &["score"];
    fn value(&self, _index: usize) -> f64 {
        self.score
    }
}

#[allow(dead_code)]
const SCORE: Metric<Score> = Metric::new(0, "score");

/// Reports `{score}` and does nothing else.
struct Trivial {
    x: f64,
}

impl TrainableSpec for Trivial {
    type Config = Cfg;
    type Metrics = Score;
    type Data = ();
    const NAME: &'static str = "Trivial";
}

impl Checkpointable for Trivial {
    fn save_state(&self) -> Result<Vec<u8>, CheckpointError> {
        Ok(Vec::new())
    }
    fn load_state(&mut self, _bytes: &[u8]) -> Result<(), CheckpointError> {
        Ok(())
    }
}

impl Trainable for Trivial {
    fn setup(config: &Cfg, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Trivial { x: config.x })
    }
    fn step(&mut self) -> TrainResult<Score> {
        Ok(Score { score: self.x })
    }
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A fresh directory under `$TUNE_BENCH_DIR` (default: the system temp dir).
fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("TUNE_BENCH_DIR") {
        Some(base) => tempfile::tempdir_in(base).expect("temp dir in TUNE_BENCH_DIR"),
        None => tempfile::tempdir().expect("temp dir"),
    }
}

fn run(trials: usize, results: u64, logging: bool) -> (Duration, usize) {
    run_with(trials, Stop::iterations(results), results, logging)
}

/// Like `run` with a stop criterion that the driver cannot predict from the iteration
/// (a closure), so every result is a round trip worker -> driver -> worker.
fn run_unbatched(trials: usize, results: u64, logging: bool) -> (Duration, usize) {
    let stop = Stop::iterations(results)
        .or(Stop::when(|r: &tune_runtime::TrialResult<Score>| r.metrics.score > 2.0));
    run_with(trials, stop, results, logging)
}

fn run_with(trials: usize, stop: Stop<Score>, results: u64, logging: bool) -> (Duration, usize) {
    let dir = bench_dir();
    let t0 = Instant::now();
    let analysis = Tuner::<Trivial>::new()
        .num_samples(trials)
        .stop(stop)
        .local_dir(dir.path())
        .name("bench")
        .file_logging(logging)
        .seed(0)
        .verbose(0)
        .run()
        .expect("run");
    let elapsed = t0.elapsed();
    let n: usize = analysis.trials().iter().map(|t| t.num_results()).sum();
    assert_eq!(n, trials * results as usize);
    // Keep the analysis alive through the peak-memory reading.
    let live = analysis.trials().len();
    assert_eq!(live, trials);
    (elapsed, n)
}

/// Wraps a searcher and clocks the time spent inside it, and when each trial was
/// suggested, so that the runner's own cost per trial can be told apart.
struct Timed<S> {
    inner: S,
    inside: std::sync::Arc<std::sync::Mutex<Clock>>,
}

#[derive(Default)]
struct Clock {
    /// Seconds spent in the searcher so far, and when each suggestion was asked.
    spent: f64,
    asked: Vec<(Instant, f64)>,
}

impl<S: tune_runtime::searcher::Searcher<Cfg, Score>> tune_runtime::searcher::Searcher<Cfg, Score>
    for Timed<S>
{
    fn setup(&mut self, n: usize, seed: u64) {
        self.inner.setup(n, seed);
    }
    fn set_objective(&mut self, metric: tune_runtime::trial::Key<Score>, mode: tune_runtime::Mode) {
        self.inner.set_objective(metric, mode);
    }
    fn suggest(&mut self, trial: tune_runtime::TrialId) -> tune_runtime::searcher::Suggestion<Cfg> {
        let t0 = Instant::now();
        let s = self.inner.suggest(trial);
        let mut c = self.inside.lock().expect("clock");
        c.spent += t0.elapsed().as_secs_f64();
        let spent = c.spent;
        c.asked.push((t0, spent));
        s
    }
    fn on_trial_result(
        &mut self,
        trial: tune_runtime::TrialId,
        r: &tune_runtime::TrialResult<Score>,
    ) {
        let t0 = Instant::now();
        self.inner.on_trial_result(trial, r);
        self.inside.lock().expect("clock").spent += t0.elapsed().as_secs_f64();
    }
    fn on_trial_complete(
        &mut self,
        trial: tune_runtime::TrialId,
        last: Option<&tune_runtime::TrialResult<Score>>,
        error: bool,
    ) {
        let t0 = Instant::now();
        self.inner.on_trial_complete(trial, last, error);
        self.inside.lock().expect("clock").spent += t0.elapsed().as_secs_f64();
    }
    fn save_state(&self) -> serde_json::Value {
        let t0 = Instant::now();
        let s = self.inner.save_state();
        self.inside.lock().expect("clock").spent += t0.elapsed().as_secs_f64();
        s
    }
}

/// 10,000 TPE trials of 1 result through the `Tuner`, files and journal on: the journal's
/// size and the runner's cost per trial (wall time minus the searcher's) by thousand.
fn tpe_10k() {
    let dir = bench_dir();
    let clock = std::sync::Arc::new(std::sync::Mutex::new(Clock::default()));
    let searcher =
        Timed { inner: tune_runtime::searcher::Tpe::new(), inside: std::sync::Arc::clone(&clock) };
    let t0 = Instant::now();
    let analysis = Tuner::<Trivial>::new()
        .num_samples(10_000)
        .stop(Stop::iterations(1))
        .searcher(searcher)
        .metric(SCORE, tune_runtime::Mode::Max)
        .max_concurrent_trials(1)
        .local_dir(dir.path())
        .name("bench")
        .seed(0)
        .verbose(0)
        .run()
        .expect("run");
    let total = t0.elapsed();
    assert_eq!(analysis.trials().len(), 10_000);
    let journal =
        std::fs::metadata(dir.path().join("bench").join(tune_runtime::storage::JOURNAL_FILE))
            .map(|m| m.len())
            .unwrap_or(0);
    let c = clock.lock().expect("clock");
    let per_k: Vec<f64> = (0..10)
        .map(|k| {
            let (a, b) = (&c.asked[k * 1000], c.asked.get((k + 1) * 1000).copied());
            let (end, spent_end) = b.unwrap_or((t0 + total, c.spent));
            let wall = end.duration_since(a.0).as_secs_f64();
            (wall - (spent_end - a.1)) / 1000.0 * 1e6
        })
        .collect();
    println!(
        "tpe-10k: 10,000 TPE trials x 1 result, one at a time, files on: {:.2} s wall ({:.2} s in \
         the searcher); journal {:.2} MB; runner cost per trial by thousand (µs): {}; last/first \
         {:.2}",
        total.as_secs_f64(),
        c.spent,
        journal as f64 / 1e6,
        per_k.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join(" "),
        per_k[9] / per_k[0]
    );
}

/// 1,000 trials of 1 result, one at a time, file logging off: the hand-offs per trial.
fn sequential_1k() {
    let dir = bench_dir();
    let t0 = Instant::now();
    let analysis = Tuner::<Trivial>::new()
        .num_samples(1_000)
        .stop(Stop::iterations(1))
        .max_concurrent_trials(1)
        .cpu_budgets(std::env::var_os("NO_BUDGETS").is_none())
        .file_logging(false)
        .local_dir(dir.path())
        .name("bench")
        .seed(0)
        .verbose(0)
        .run()
        .expect("run");
    let t = t0.elapsed();
    assert_eq!(analysis.trials().len(), 1_000);
    println!(
        "sequential-1k: 1,000 trials x 1 result, one at a time, file logging off: {:.4} s wall \
         ({:.1} µs per trial)",
        t.as_secs_f64(),
        t.as_secs_f64() * 1e3
    );
}

/// 1,000 trials of 1 result, one at a time, files on, trials' output captured in process
/// or not (`CAPTURE=1`): what the capture's markers cost per trial (the trials print
/// nothing; each task writes two markers into each pipe).
fn capture_1k() {
    let capture = std::env::var_os("CAPTURE").is_some();
    let dir = bench_dir();
    let t0 = Instant::now();
    let analysis = Tuner::<Trivial>::new()
        .num_samples(1_000)
        .stop(Stop::iterations(1))
        .max_concurrent_trials(1)
        .capture_output(capture)
        .local_dir(dir.path())
        .name("bench")
        .seed(0)
        .verbose(0)
        .run()
        .expect("run");
    let t = t0.elapsed();
    assert_eq!(analysis.trials().len(), 1_000);
    println!(
        "capture-1k: 1,000 trials x 1 result, one at a time, files on, capture {}: {:.4} s \
         wall ({:.1} µs per trial)",
        if capture { "on" } else { "off" },
        t.as_secs_f64(),
        t.as_secs_f64() * 1e3
    );
}

/// Runs an experiment, keeps it, then loads it with `Analysis::from_dir` in a child
/// process: the peak memory of each.
fn load(trials: usize, results: u64) {
    let dir = bench_dir();
    let rss0 = status_kib("VmRSS:");
    let t0 = Instant::now();
    let analysis = Tuner::<Trivial>::new()
        .num_samples(trials)
        .stop(Stop::iterations(results))
        .local_dir(dir.path())
        .name("bench")
        .seed(0)
        .verbose(0)
        .run()
        .expect("run");
    let t = t0.elapsed();
    let hwm = status_kib("VmHWM:");
    drop(analysis);
    let exe = std::env::current_exe().expect("current exe");
    let out = std::process::Command::new(exe)
        .arg("from-dir")
        .arg(dir.path().join("bench"))
        .output()
        .expect("spawn");
    let child = String::from_utf8_lossy(&out.stdout);
    println!(
        "load {trials} trials x {results} results: run {:.2} s, peak RSS {hwm} KiB (start {rss0} \
         KiB); {}",
        t.as_secs_f64(),
        child.trim()
    );
}

fn from_dir(path: &str) {
    let rss0 = status_kib("VmRSS:");
    let t0 = Instant::now();
    let a = tune_runtime::Analysis::<Cfg, Score>::from_dir(path).expect("from_dir");
    let t = t0.elapsed();
    let n: usize = a.trials().iter().map(|t| t.num_results()).sum();
    let hwm = status_kib("VmHWM:");
    println!(
        "from_dir: {} trials, {n} results in {:.2} s, peak RSS {hwm} KiB (start {rss0} KiB)",
        a.trials().len(),
        t.as_secs_f64()
    );
}

fn workload(name: &str) {
    let rss0 = status_kib("VmRSS:");
    match name {
        "trials-10k" => {
            let (t, _) = run(10_000, 1, true);
            let hwm = status_kib("VmHWM:");
            println!(
                "workload 1: 10,000 trials x 1 result, file logging on: {:.3} s wall; peak RSS {} KiB \
                 (start {} KiB, growth {:.0} B/trial)",
                t.as_secs_f64(),
                hwm,
                rss0,
                (hwm.saturating_sub(rss0) * 1024) as f64 / 10_000.0
            );
        }
        "results-off" | "results-on" => {
            let logging = name == "results-on";
            let (t, n) = run(2, 100_000, logging);
            println!(
                "workload 2: 2 trials x 100,000 results, file logging {}: {:.3} s wall, {:.0} results/s",
                if logging { "on" } else { "off" },
                t.as_secs_f64(),
                n as f64 / t.as_secs_f64()
            );
        }
        "results-off-unbatched" | "results-on-unbatched" => {
            let logging = name == "results-on-unbatched";
            let (t, n) = run_unbatched(2, 100_000, logging);
            println!(
                "workload 2 (one step per round trip): 2 trials x 100,000 results, file logging {}: \
                 {:.3} s wall, {:.0} results/s",
                if logging { "on" } else { "off" },
                t.as_secs_f64(),
                n as f64 / t.as_secs_f64()
            );
        }
        "trials-100k" => {
            let (t, _) = run(100_000, 1, true);
            let hwm = status_kib("VmHWM:");
            println!(
                "workload 3: 100,000 trials x 1 result, file logging on: {:.3} s wall; peak RSS {} KiB \
                 (start {} KiB, growth {:.0} B/trial)",
                t.as_secs_f64(),
                hwm,
                rss0,
                (hwm.saturating_sub(rss0) * 1024) as f64 / 100_000.0
            );
        }
        "trials-100k-off" => {
            let (t, _) = run(100_000, 1, false);
            let hwm = status_kib("VmHWM:");
            println!(
                "workload 3b: 100,000 trials x 1 result, file logging off: {:.3} s wall; peak RSS {} KiB \
                 (start {} KiB, growth {:.0} B/trial)",
                t.as_secs_f64(),
                hwm,
                rss0,
                (hwm.saturating_sub(rss0) * 1024) as f64 / 100_000.0
            );
        }
        "checkpoints" => {
            // The per-checkpoint cost: 2 trials x 2,000 results, a checkpoint after every
            // one (the newest 2 kept).
            let dir = bench_dir();
            let t0 = Instant::now();
            let analysis = Tuner::<Trivial>::new()
                .num_samples(2)
                .stop(Stop::iterations(2_000))
                .checkpoint_freq(1)
                .keep_checkpoints_num(2)
                .local_dir(dir.path())
                .name("bench")
                .seed(0)
                .verbose(0)
                .run()
                .expect("run");
            let t = t0.elapsed();
            let n: usize = analysis.trials().iter().map(|t| t.num_results()).sum();
            println!(
                "workload 4: 2 trials x 2,000 results, a checkpoint after each: {:.3} s wall, \
                 {:.0} checkpoints/s",
                t.as_secs_f64(),
                n as f64 / t.as_secs_f64()
            );
        }
        "demo-1" | "demo-2" | "demo-3" => {
            // Not a benchmark: shows the live output at verbosity 1, 2 or 3.
            let level = name.as_bytes()[5] - b'0';
            let dir = tempfile::tempdir().expect("temp dir");
            Tuner::<Trivial>::new()
                .num_samples(3)
                .stop(Stop::iterations(2))
                .local_dir(dir.path())
                .name("demo")
                .status_interval(Duration::from_millis(0))
                .verbose(level)
                .run()
                .expect("run");
        }
        "sequential-1k" => sequential_1k(),
        "capture-1k" => capture_1k(),
        "tpe-10k" => tpe_10k(),
        "load-100k" => load(100_000, 1),
        "load-4x1m" => load(4, 1_000_000),
        other => eprintln!("unknown workload `{other}`"),
    }
}

const ALL: [&str; 10] = [
    "sequential-1k",
    "tpe-10k",
    "trials-10k",
    "results-off",
    "results-on",
    "results-off-unbatched",
    "results-on-unbatched",
    "checkpoints",
    "trials-100k-off",
    "trials-100k",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if args.first().map(String::as_str) == Some("from-dir") {
        return from_dir(&args[1]);
    }
    if !args.is_empty() {
        for a in &args {
            workload(a);
        }
        return;
    }
    let exe = std::env::current_exe().expect("current exe");
    for w in ALL {
        let status = std::process::Command::new(&exe).arg(w).status().expect("spawn");
        assert!(status.success(), "workload {w} failed");
    }
}
