//! Overhead of tuning on real work: a step of about 5 ms of compute, TPE suggesting
//! configs, ASHA stopping trials, a checkpoint every 3 steps (the generated JSON checkpoint
//! of 1,000 weights), file logging on; one trial at a time (`total_cpus(1.0)`), so the
//! run is deterministic and its wall time can be set against the same training (the same
//! trials, configs and numbers of steps) done in a plain loop.
//!
//! `cargo bench -p tune-runtime --bench overhead` prints, for each setting, the wall time
//! (median of the rounds) over the plain loop's, and the cost per result and per
//! checkpoint derived from the differences. `-- --rounds N` sets the rounds (default 5),
//! `-- --step-ms X` the step's compute (default 5; 0 leaves the tuner's own cost alone);
//! files go to `$TUNE_BENCH_DIR` (default: the system temp dir).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tune_runtime::prelude::*;
use tune_runtime::{Durability, scheduler::Asha, searcher::Tpe};

search_space! {
    pub struct Hp {
        lr: f64 = loguniform(1e-4, 1e-1),
        width: i64 = randint(16, 256),
    }
}

#[derive(Metrics, Debug, Clone)]
pub struct Acc {
    acc: f64,
}

/// Iterations of [`compute`] that take about 5 ms here (calibrated at start).
static WORK: AtomicU64 = AtomicU64::new(0);

/// Dependent floating-point work that the compiler cannot skip.
fn compute(n: u64, seed: f64) -> f64 {
    let mut x = seed;
    for i in 0..n {
        x = (x * 1.000_000_1 + (i & 7) as f64 * 1e-9).fract() + 0.5;
    }
    black_box(x)
}

/// The step's training curve: a deterministic function of the config and the iteration.
fn accuracy(hp: &Hp, iteration: u64) -> f64 {
    let speed = hp.lr.log10() + 4.5;
    let fit = 1.0 - ((hp.width as f64 - 128.0) / 256.0).powi(2);
    fit * (1.0 - (-(iteration as f64) * speed / 10.0).exp())
}

#[trainable(config = Hp, metrics = Acc, resources(cpu = 1), test = false)]
#[derive(Debug)]
pub struct Model {
    hp: Hp,
    iteration: u64,
    weights: Vec<f64>,
}

impl Trainable for Model {
    fn setup(config: &Hp, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Model { hp: config.clone(), iteration: 0, weights: vec![0.5; 1000] })
    }

    fn step(&mut self) -> TrainResult<Acc> {
        self.iteration += 1;
        let i = self.iteration as usize % self.weights.len();
        self.weights[i] = compute(WORK.load(Ordering::Relaxed), self.weights[i]);
        Ok(Acc { acc: accuracy(&self.hp, self.iteration) })
    }
}

const TRIALS: usize = 40;
const MAX_T: u64 = 27;

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("TUNE_BENCH_DIR") {
        Some(base) => tempfile::tempdir_in(base).expect("temp dir in TUNE_BENCH_DIR"),
        None => tempfile::tempdir().expect("temp dir"),
    }
}

/// What a tuning run did: its wall time, the configs with their numbers of steps, and how
/// many checkpoints it wrote.
struct Tuned {
    wall: Duration,
    trials: Vec<(Hp, u64)>,
    checkpoints: usize,
}

fn tune(checkpoint_freq: u64, durability: Durability, budgets: bool) -> Tuned {
    let dir = bench_dir();
    let asha = Asha::builder(Acc::ACC, Mode::Max)
        .max_t(MAX_T as f64)
        .grace_period(1.0)
        .reduction_factor(3.0)
        .build()
        .expect("ASHA options");
    let t0 = Instant::now();
    let a = Tuner::<Model>::new()
        .num_samples(TRIALS)
        .metric(Acc::ACC, Mode::Max)
        .searcher(Tpe::<Hp>::new())
        .scheduler(asha)
        .stop(Stop::iterations(MAX_T))
        .checkpoint_freq(checkpoint_freq)
        .durability(durability)
        .cpu_budgets(budgets)
        .total_cpus(1.0)
        .local_dir(dir.path())
        .name("bench")
        .seed(7)
        .verbose(0)
        .run()
        .expect("run");
    let wall = t0.elapsed();
    let trials: Vec<(Hp, u64)> =
        a.trials().iter().map(|t| (t.config().clone(), t.num_results() as u64)).collect();
    let checkpoints = walk_checkpoints(&dir.path().join("bench"));
    Tuned { wall, trials, checkpoints }
}

fn walk_checkpoints(exp: &std::path::Path) -> usize {
    let Ok(trials) = std::fs::read_dir(exp) else { return 0 };
    trials
        .filter_map(|t| std::fs::read_dir(t.ok()?.path()).ok())
        .flatten()
        .filter(|c| {
            c.as_ref().is_ok_and(|c| c.file_name().to_string_lossy().starts_with("checkpoint_"))
        })
        .count()
}

/// The same training without the tuner: each trial's config trained for as many steps.
fn plain(trials: &[(Hp, u64)]) -> Duration {
    let t0 = Instant::now();
    for (hp, steps) in trials {
        let ctx = TrialContext::detached("plain", 0);
        let mut m = Model::setup(hp, &ctx).expect("setup");
        for _ in 0..*steps {
            black_box(m.step().expect("step"));
        }
    }
    t0.elapsed()
}

/// Iterations of [`compute`] that take `ms` milliseconds here.
fn calibrate(ms: f64) -> u64 {
    let probe = 200_000;
    let mut times: Vec<f64> = (0..15)
        .map(|_| {
            let t0 = Instant::now();
            compute(probe, 0.5);
            t0.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (probe as f64 * ms / 1e3 / times[times.len() / 2]) as u64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(5);
    let step_ms = args
        .iter()
        .position(|a| a == "--step-ms")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(5.0);
    WORK.store(calibrate(step_ms), Ordering::Relaxed);
    let settings: [(&str, u64, Durability, bool); 4] = [
        ("no checkpoints", 0, Durability::Synced, true),
        ("checkpoint every 3, synced", 3, Durability::Synced, true),
        ("checkpoint every 3, relaxed", 3, Durability::Relaxed, true),
        ("no checkpoints, no budgets", 0, Durability::Synced, false),
    ];
    // Warm up (and find the training to compare with: the same in every setting).
    let reference = tune(0, Durability::Synced, true);
    let steps: u64 = reference.trials.iter().map(|t| t.1).sum();
    let mut plain_s = Vec::new();
    let mut tuned_s: Vec<Vec<f64>> = vec![Vec::new(); settings.len()];
    let mut checkpoints = vec![0; settings.len()];
    for _ in 0..rounds {
        plain_s.push(plain(&reference.trials).as_secs_f64());
        for (k, (_, freq, durability, budgets)) in settings.iter().enumerate() {
            let t = tune(*freq, *durability, *budgets);
            assert_eq!(t.trials.len(), TRIALS);
            let same: u64 = t.trials.iter().map(|t| t.1).sum();
            assert_eq!(same, steps, "the runs train the same steps");
            tuned_s[k].push(t.wall.as_secs_f64());
            checkpoints[k] = t.checkpoints;
        }
    }
    let plain = median(plain_s.clone());
    println!(
        "{TRIALS} trials (TPE + ASHA, max_t {MAX_T}, reduction 3), {steps} steps of {:.2} ms \
         in the plain loop, one trial at a time; {rounds} rounds, medians",
        1e3 * plain / steps as f64
    );
    println!("{:<30} {:>8}  {:>6}  {:>11}", "setting", "wall s", "ratio", "checkpoints");
    println!("{:<30} {plain:>8.3}  {:>6.3}  {:>11}", "plain loop", 1.0, "-");
    let walls: Vec<f64> = tuned_s.iter().map(|v| median(v.clone())).collect();
    for (k, (name, ..)) in settings.iter().enumerate() {
        println!("{name:<30} {:>8.3}  {:>6.3}  {:>11}", walls[k], walls[k] / plain, checkpoints[k]);
    }
    let per_result = (walls[0] - plain) / steps as f64;
    let per_ckpt = |k: usize| (walls[k] - walls[0]) / checkpoints[k].max(1) as f64;
    println!(
        "per result (trial start and end included): {:.3} ms; per checkpoint: synced {:.3} ms, \
         relaxed {:.3} ms",
        1e3 * per_result,
        1e3 * per_ckpt(1),
        1e3 * per_ckpt(2)
    );
    println!(
        "per result without budgets: {:.3} ms (the hand-off to the trial's pool: {:.3} ms)",
        1e3 * (walls[3] - plain) / steps as f64,
        1e3 * (walls[0] - walls[3]) / steps as f64
    );
}
