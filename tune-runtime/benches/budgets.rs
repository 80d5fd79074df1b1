//! CPU budgets: 4 trials whose step is rayon-parallel, `cpu = 1` each on 4 CPUs
//! (`total_cpus(4.0)`), each in a rayon pool of its grant (the default), against the same
//! run without budgets (`cpu_budgets(false)`: every trial's `par_iter` goes to rayon's
//! global pool, one thread per core, shared by all trials).
//!
//! `cargo bench -p tune-runtime --bench budgets` prints, for each setting, the wall time of
//! the run, the median and 90th percentile of a step's time, and the threads that ran the
//! parallel work. `-- --rounds N` repeats each setting N times (default 3), alternating.

use std::time::{Duration, Instant};

use rayon::prelude::*;
use tune_runtime::prelude::*;

search_space! {
    pub struct Work {
        x: f64 = uniform(0.0, 1.0),
    }
}

#[derive(Metrics, Debug, Clone)]
pub struct Out {
    sum: f64,
}

/// Items of work per step: a few milliseconds on one core.
const ITEMS: usize = 1 << 20;
const STEPS: u64 = 40;
const TRIALS: usize = 4;

#[trainable(config = Work, metrics = Out, resources(cpu = 1), test = false)]
#[derive(Debug)]
pub struct Parallel {
    x: f64,
}

impl Trainable for Parallel {
    fn setup(config: &Work, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Parallel { x: config.x })
    }

    fn step(&mut self) -> TrainResult<Out> {
        let x = self.x;
        let sum = (0..ITEMS)
            .into_par_iter()
            .with_min_len(1 << 12)
            .map(|i| ((i as f64) * x).sin().abs().sqrt())
            .sum::<f64>();
        Ok(Out { sum })
    }
}

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("TUNE_BENCH_DIR") {
        Some(base) => tempfile::tempdir_in(base).expect("temp dir in TUNE_BENCH_DIR"),
        None => tempfile::tempdir().expect("temp dir"),
    }
}

/// One run: wall time and every step's time.
fn run(budgets: bool) -> (Duration, Vec<f64>) {
    let dir = bench_dir();
    let t0 = Instant::now();
    let a = Tuner::<Parallel>::new()
        .num_samples(TRIALS)
        .total_cpus(4.0)
        .cpu_budgets(budgets)
        .stop(Stop::iterations(STEPS))
        .local_dir(dir.path())
        .name("bench")
        .seed(0)
        .verbose(0)
        .run()
        .expect("run");
    let wall = t0.elapsed();
    let mut steps: Vec<f64> = a
        .trials()
        .iter()
        .flat_map(|t| t.results().map(|r| r.get(tune_runtime::trial::Auto::TimeThisIterS)))
        .collect();
    assert_eq!(steps.len(), TRIALS * STEPS as usize);
    steps.sort_by(f64::total_cmp);
    (wall, steps)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    println!(
        "{TRIALS} trials x {STEPS} steps of a par_iter over {ITEMS} items, cpu = 1 each, \
         total_cpus(4.0), on {} cores (rayon's global pool: {} threads)",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        rayon::current_num_threads()
    );
    // Warm up: page in the code, build the pools.
    let _ = run(true);
    let _ = run(false);
    let mut results: [Vec<(Duration, Vec<f64>)>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        results[0].push(run(true));
        results[1].push(run(false));
    }
    for (name, runs) in
        ["budgets (1 thread per trial)", "no budgets (global pool)"].iter().zip(results.iter_mut())
    {
        runs.sort_by_key(|r| r.0);
        let walls: Vec<String> = runs.iter().map(|r| format!("{:.3}", r.0.as_secs_f64())).collect();
        let (_, steps) = &runs[runs.len() / 2];
        println!(
            "{name:<30} wall s (sorted) {}   step ms: median {:.2}, p90 {:.2}",
            walls.join(" "),
            1e3 * quantile(steps, 0.5),
            1e3 * quantile(steps, 0.9)
        );
    }
}
