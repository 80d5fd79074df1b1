//! A small experiment run as a separate process by the crash tests (`tests/faults_kill.rs`):
//! they kill it (SIGKILL at chosen points, SIGINT), run it again with `--resume`, and
//! compare its `--summary` with the one of an uninterrupted run.
//!
//! `fault_experiment <local_dir> <name> [--resume] [--summary] [--isolate]`
//!
//! Environment: `STEP_MS` (sleep per step, default 1), `FAULT_STEP_KILL=n` (SIGKILL this
//! process in the middle of its n-th step), `TUNE_FAULT_INJECT=<point>:<n>` (the runtime's
//! own kill points: `journal`, `checkpoint`, `result`), `MAX_FAILURES`, `PANIC_AT=<iter>`
//! (every trial with `k == 2` panics once at that iteration, the first time only, recorded
//! in a marker file), `DIE_AT=<iter>` with `DIE_HOW=abort|exit|kill|segv` (the same, but
//! the whole process dies: run it with `--isolate`). `HANG_AT=<iter>` with
//! `HANG_HOW=sleep|stop`: the same, but the step never returns (it sleeps forever, or its
//! process stops itself with SIGSTOP: run that with `--isolate`); the marker file
//! (`hung-once`) holds the id of the process that hangs. `STEP_TIMEOUT_MS` and
//! `INTERRUPT_GRACE_MS` set `Tuner::step_timeout` and `Tuner::interrupt_grace`. A process
//! that hung and is still alive 2 s after `run()` returned makes the exit status 4.
//! `SCHEDULER=hyperband` (HyperBand with `Pausing::Disk`: trials pause to disk at the
//! rungs), `VERBOSE=n` (the verbosity, default 0).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tune_runtime::prelude::*;
use tune_runtime::{
    RunError, TrialStatus,
    scheduler::{HyperBand, Pausing},
};

search_space! {
    pub struct Cfg {
        x: f64 = uniform(0.0, 1.0),
        k: i64 = grid([1, 2, 3]),
    }
}

#[derive(Metrics, Debug, Clone)]
pub struct Score {
    score: f64,
    iter_seen: f64,
}

#[trainable(config = Cfg, metrics = Score, test = false)]
pub struct Net {
    x: f64,
    k: i64,
    iter: u64,
    acc: f64,
    #[checkpoint(skip)]
    dir: Option<PathBuf>,
}

static STEPS: AtomicU64 = AtomicU64::new(0);

fn env_u64(name: &str) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(0)
}

impl Trainable for Net {
    fn setup(config: &Cfg, ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Net { x: config.x, k: config.k, iter: 0, acc: 0.0, dir: ctx.trial_dir.clone() })
    }

    fn step(&mut self) -> TrainResult<Score> {
        let n = STEPS.fetch_add(1, Ordering::SeqCst) + 1;
        let ms = std::env::var("STEP_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
        std::thread::sleep(Duration::from_millis(ms / 2));
        if n == env_u64("FAULT_STEP_KILL") {
            let pid = std::process::id().to_string();
            let _ = std::process::Command::new("kill").args(["-9", &pid]).status();
            std::process::abort();
        }
        std::thread::sleep(Duration::from_millis(ms - ms / 2));
        self.iter += 1;
        self.acc += self.x * self.k as f64;
        if self.k == 2 && self.iter == env_u64("PANIC_AT") && self.first_time("panicked")? {
            panic!("injected panic at iteration {}", self.iter);
        }
        if self.k == 2 && self.iter == env_u64("DIE_AT") && self.first_time("died")? {
            let pid = std::process::id().to_string();
            match std::env::var("DIE_HOW").as_deref() {
                Ok("exit") => std::process::exit(7),
                Ok("kill") => {
                    let _ = std::process::Command::new("kill").args(["-9", &pid]).status();
                }
                Ok("segv") => {
                    // std's handler (stack overflow detection) lets a SIGSEGV that is not a
                    // fault through once and restores the default action: send two.
                    for _ in 0..2 {
                        let _ = std::process::Command::new("kill").args(["-SEGV", &pid]).status();
                    }
                }
                _ => std::process::abort(),
            }
            std::thread::sleep(Duration::from_secs(10));
        }
        if self.k == 2 && self.iter == env_u64("HANG_AT") && self.first_time("hung")? {
            if std::env::var("HANG_HOW").as_deref() == Ok("stop") {
                let pid = std::process::id().to_string();
                let _ = std::process::Command::new("kill").args(["-STOP", &pid]).status();
            }
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        Ok(Score { score: self.acc + self.iter as f64, iter_seen: self.iter as f64 })
    }
}

impl Net {
    /// Whether this is the first time the trial gets here (a marker file in its directory).
    fn first_time(&self, what: &str) -> TrainResult<bool> {
        let Some(dir) = &self.dir else { return Ok(false) };
        let marker = dir.join(format!("{what}-once"));
        if marker.exists() {
            return Ok(false);
        }
        std::fs::write(&marker, std::process::id().to_string())?;
        Ok(true)
    }
}

/// The processes that hung in a step (`HANG_AT`) and are still alive after 2 s (a killed
/// process takes a moment to end).
fn hung_alive(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let pids: Vec<u32> = entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("hung-once")).ok())
        .filter_map(|pid| pid.trim().parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id())
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if alive.is_empty() || std::time::Instant::now() > deadline {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether process `pid` exists and has not exited (a zombie has).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
        })
        .unwrap_or(false)
}

fn env_ms(name: &str) -> Option<Duration> {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).map(Duration::from_millis)
}

/// One line per trial: what must be equal between an uninterrupted and a resumed run
/// (times and timestamps differ), and the per-trial files checked against the journal.
fn summary(dir: &Path) -> String {
    let a = tune_runtime::Analysis::<Cfg, Score>::from_dir(dir).expect("load the analysis");
    let mut out = String::new();
    for t in a.trials() {
        let rows: Vec<(f64, f64, u64)> = t
            .results()
            .map(|r| (r.get(Score::SCORE), r.get(Score::ITER_SEEN), r.training_iteration()))
            .collect();
        let tdir = t.dir().expect("trial dir");
        let json = std::fs::read_to_string(tdir.join("result.json")).unwrap_or_default();
        let file_iters: Vec<u64> = json
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("result.json line");
                v["training_iteration"].as_u64().expect("iteration")
            })
            .collect();
        let csv = std::fs::read_to_string(tdir.join("progress.csv")).unwrap_or_default();
        let journal_iters: Vec<u64> = rows.iter().map(|r| r.2).collect();
        assert_eq!(file_iters, journal_iters, "result.json of {} agrees with the journal", t.id());
        assert_eq!(csv.lines().count(), rows.len() + 1, "progress.csv of {}", t.id());
        out.push_str(&format!(
            "{} {} {:?} {:?} failures={}\n",
            t.id(),
            t.status(),
            t.config(),
            rows,
            t.failures().len()
        ));
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (local, name) = (&args[1], &args[2]);
    if args.iter().any(|a| a == "--summary") {
        print!("{}", summary(&Path::new(local).join(name)));
        return;
    }
    let mut tuner = Tuner::<Net>::new();
    if let Some(limit) = env_ms("STEP_TIMEOUT_MS") {
        tuner = tuner.step_timeout(limit);
    }
    if let Some(grace) = env_ms("INTERRUPT_GRACE_MS") {
        tuner = tuner.interrupt_grace(grace);
    }
    if std::env::var("SCHEDULER").as_deref() == Ok("hyperband") {
        let hb = HyperBand::builder(Score::SCORE, Mode::Max)
            .max_t(10.0)
            .build()
            .expect("valid HyperBand options");
        tuner = tuner.scheduler(hb).pausing(Pausing::Disk);
    }
    let result = tuner
        .num_samples(2)
        .stop(Stop::iterations(10))
        .checkpoint_freq(3)
        .max_concurrent_trials(2)
        .total_cpus(2.0)
        .seed(5)
        .verbose(env_u64("VERBOSE") as u8)
        .max_failures(env_u64("MAX_FAILURES") as u32)
        .status_interval(Duration::from_millis(20))
        .local_dir(local)
        .name(name.as_str())
        .resume(args.iter().any(|a| a == "--resume"))
        .isolate_trials(args.iter().any(|a| a == "--isolate"))
        .run();
    if !tune_runtime::is_worker() {
        let alive = hung_alive(&Path::new(local).join(name));
        if !alive.is_empty() {
            eprintln!("processes that hung in a step are still alive: {alive:?}");
            std::process::exit(4);
        }
    }
    match result {
        Ok(a) => {
            let done = a.trials().iter().all(|t| t.status() == TrialStatus::Terminated);
            std::process::exit(if done { 0 } else { 2 });
        }
        Err(e @ RunError::Interrupted { .. }) => {
            eprintln!("{e}");
            std::process::exit(3);
        }
        Err(e) => {
            if tune_runtime::is_worker() {
                eprintln!("worker error: {e}");
            }
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
