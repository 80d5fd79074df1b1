//! A peer of an experiment shared through PostgreSQL, run as a separate process by
//! `tests/shared_pg.rs` (several at once on one experiment; some killed or stopped).
//!
//! `pg_peer <url> <experiment> <local_dir> [--solo] [--summary]`
//!
//! * default: runs as a peer of `<experiment>` in the database at `<url>`, then prints
//!   `steps=<n>` (the steps this process ran) on stdout. Exit status 0 when the run ended
//!   with every trial terminated, 5 when this process was fenced (it lost its lease), 1 on
//!   another error.
//! * `--solo`: runs the same experiment alone, without PostgreSQL, and prints its summary
//!   and `steps=<n>`.
//! * `--summary`: prints the summary of the experiment as PostgreSQL holds it.
//!
//! Environment: `STEP_MS` (sleep per step, default 20), `LEASE_MS` (default 1000),
//! `KILL_AT_STEP=n` (SIGKILL this process in the middle of its n-th step). The first step
//! of the process prints `stepping` on stdout, so that a test knows it has trials.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tune_runtime::prelude::*;
use tune_runtime::shared::PostgresJournal;
use tune_runtime::{Analysis, RunError, TrialStatus};

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
}

static STEPS: AtomicU64 = AtomicU64::new(0);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

impl Trainable for Net {
    fn setup(config: &Cfg, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Net { x: config.x, k: config.k, iter: 0, acc: 0.0 })
    }

    fn step(&mut self) -> TrainResult<Score> {
        let n = STEPS.fetch_add(1, Ordering::SeqCst) + 1;
        if n == 1 {
            println!("stepping");
            let _ = std::io::stdout().flush();
        }
        let ms = env_u64("STEP_MS", 20);
        std::thread::sleep(Duration::from_millis(ms / 2));
        if n == env_u64("KILL_AT_STEP", 0) {
            let pid = std::process::id().to_string();
            let _ = std::process::Command::new("kill").args(["-9", &pid]).status();
            std::process::abort();
        }
        std::thread::sleep(Duration::from_millis(ms - ms / 2));
        self.iter += 1;
        self.acc += self.x * self.k as f64;
        Ok(Score { score: self.acc + self.iter as f64, iter_seen: self.iter as f64 })
    }
}

/// One line per trial: its id, status, config and every (score, iteration): what must
/// be equal between a single process and several peers.
fn summary(a: &Analysis<Cfg, Score>) -> String {
    let mut out = String::new();
    for t in a.trials() {
        let rows: Vec<(f64, u64)> =
            t.results().map(|r| (r.get(Score::SCORE), r.training_iteration())).collect();
        out.push_str(&format!("{} {} {:?} {:?}\n", t.id(), t.status(), t.config(), rows));
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, name, local, ..] = &args[..] else {
        eprintln!("usage: pg_peer <url> <experiment> <local_dir> [--solo] [--summary]");
        std::process::exit(2);
    };
    let flag = |f: &str| args.iter().any(|a| a == f);
    if flag("--summary") {
        let a = Analysis::<Cfg, Score>::from_postgres(url, name, Path::new(local).join(name))
            .expect("load the analysis");
        print!("{}", summary(&a));
        return;
    }
    let mut tuner = Tuner::<Net>::new()
        .num_samples(3)
        .stop(Stop::iterations(8))
        .checkpoint_freq(2)
        .total_cpus(2.0)
        .seed(7)
        .verbose(0)
        .local_dir(local)
        .name(name.as_str())
        .lease(Duration::from_millis(env_u64("LEASE_MS", 1000)));
    if !flag("--solo") {
        match PostgresJournal::connect(url, name) {
            Ok(journal) => tuner = tuner.shared_journal(journal),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
    }
    let result = tuner.run();
    let steps = STEPS.load(Ordering::SeqCst);
    match result {
        Ok(a) => {
            if flag("--solo") {
                print!("{}", summary(&a));
            }
            println!("steps={steps}");
            let done = a.trials().iter().all(|t| t.status() == TrialStatus::Terminated);
            std::process::exit(if done { 0 } else { 2 });
        }
        Err(e @ RunError::Fenced { .. }) => {
            println!("steps={steps}");
            eprintln!("{e}");
            std::process::exit(5);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
