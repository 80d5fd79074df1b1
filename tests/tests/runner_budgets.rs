//! CPU budgets: a trial's rayon code runs on as many threads as its CPU grant, in process
//! (class and function trainables) and in isolated worker processes (their environment);
//! fractional CPUs run as many trials at once as they admit.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use rayon::prelude::*;
use tune_runtime::prelude::*;

search_space! {
    pub struct Budget {
        cpu: f64 = grid([1.0, 2.0]),
    }
}

#[derive(Metrics, Debug, Clone)]
pub struct Seen {
    /// `rayon::current_num_threads()` in the step.
    threads: f64,
    /// Distinct threads that ran the items of a `par_iter` in the step.
    distinct: f64,
}

/// What rayon offers the code of a trial: its pool's size, and how many threads a
/// parallel loop of 64 short items actually ran on.
fn look() -> Seen {
    let ids: HashSet<_> = (0..64)
        .into_par_iter()
        .map(|_| {
            std::thread::sleep(Duration::from_micros(200));
            std::thread::current().id()
        })
        .collect();
    Seen { threads: rayon::current_num_threads() as f64, distinct: ids.len() as f64 }
}

#[trainable(config = Budget, metrics = Seen, resources(cpu = |c: &Budget| c.cpu), test = false)]
pub struct Looker {
    cpu: f64,
}

impl Trainable for Looker {
    fn setup(config: &Budget, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Looker { cpu: config.cpu })
    }

    fn step(&mut self) -> TrainResult<Seen> {
        Ok(look())
    }
}

#[trainable(resources(cpu = |c: &Budget| c.cpu), test = false)]
fn look_fn(_config: &Budget, session: &mut Session<Seen>) -> TrainResult<()> {
    for _ in 0..2 {
        session.report(look())?;
    }
    Ok(())
}

fn tuner<T: Trainable<Config = Budget>>(dir: &tempfile::TempDir) -> Tuner<T> {
    Tuner::<T>::new()
        .local_dir(dir.path())
        .name("exp")
        .seed(1)
        .verbose(0)
        .total_cpus(4.0)
        .stop(Stop::iterations(2))
}

/// Every result of every trial: (cpu declared, threads seen, distinct threads used).
fn seen<T: Trainable<Config = Budget, Metrics = Seen>>(t: Tuner<T>) -> Vec<(f64, f64, f64)> {
    let a = t.run().unwrap();
    assert_eq!(a.count(TrialStatus::Terminated), 2, "{:?}", a.errored_trials());
    let mut out = Vec::new();
    for trial in a.trials() {
        for r in trial.results() {
            out.push((trial.config().cpu, r.get(Seen::THREADS), r.get(Seen::DISTINCT)));
        }
    }
    assert_eq!(out.len(), 4);
    out
}

fn assert_within_grant(seen: &[(f64, f64, f64)]) {
    for &(cpu, threads, distinct) in seen {
        assert_eq!(threads, cpu, "a trial of {cpu} CPUs sees a pool of {threads} threads");
        assert!(distinct >= 1.0 && distinct <= cpu, "{cpu} CPUs but ran on {distinct} threads");
    }
}

#[test]
fn a_class_trainables_rayon_code_runs_on_its_cpu_grant() {
    let dir = tempfile::tempdir().unwrap();
    assert_within_grant(&seen(tuner::<Looker>(&dir)));
}

#[test]
fn a_function_trainables_thread_runs_on_its_cpu_grant() {
    let dir = tempfile::tempdir().unwrap();
    assert_within_grant(&seen(tuner::<LookFn>(&dir)));
}

#[test]
fn without_budgets_trials_share_rayons_global_pool() {
    let dir = tempfile::tempdir().unwrap();
    let global = rayon::current_num_threads() as f64;
    for (_, threads, _) in seen(tuner::<Looker>(&dir).cpu_budgets(false)) {
        assert_eq!(threads, global, "the global pool");
    }
}

search_space! {
    pub struct Half {
        x: f64 = uniform(0.0, 1.0),
    }
}

#[derive(Metrics, Debug, Clone)]
pub struct Met {
    met: f64,
}

/// Trials that block in their step until 4 of them are in it at once.
#[trainable(config = Half, metrics = Met, resources(cpu = 0.5), test = false)]
pub struct Meeting {}

/// How many steps have arrived, and whether a step gave up waiting.
static ARRIVED: Mutex<usize> = Mutex::new(0);
static ALL_HERE: Condvar = Condvar::new();

impl Trainable for Meeting {
    fn setup(_config: &Half, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Meeting {})
    }

    fn step(&mut self) -> TrainResult<Met> {
        let mut arrived = ARRIVED.lock().unwrap();
        *arrived += 1;
        ALL_HERE.notify_all();
        let (arrived, wait) =
            ALL_HERE.wait_timeout_while(arrived, Duration::from_secs(20), |n| *n < 4).unwrap();
        if wait.timed_out() {
            return Err(TrainError::msg(format!("only {} trials ran at once", *arrived)));
        }
        Ok(Met { met: *arrived as f64 })
    }
}

#[test]
fn half_a_cpu_each_runs_four_trials_at_once_on_two_cpus() {
    let dir = tempfile::tempdir().unwrap();
    let a = Tuner::<Meeting>::new()
        .local_dir(dir.path())
        .name("exp")
        .seed(1)
        .verbose(0)
        .total_cpus(2.0)
        .num_samples(4)
        .stop(Stop::iterations(1))
        .run()
        .unwrap();
    let errors: Vec<_> =
        a.errored_trials().iter().map(|t| t.error().unwrap().to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(a.count(TrialStatus::Terminated), 4);
}

/// The `env.json` of every trial of an `env_probe` run (see `src/bin/env_probe.rs`).
fn probe(extra: &[&str]) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_env_probe"))
        .arg(dir.path())
        .args(extra)
        .env_remove("RAYON_NUM_THREADS")
        .env_remove("OMP_NUM_THREADS")
        .env_remove("CUDA_VISIBLE_DEVICES")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(dir.path().join("exp")).unwrap() {
        let path = entry.unwrap().path().join("env.json");
        if path.exists() {
            seen.push(serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap());
        }
    }
    assert_eq!(seen.len(), 4, "one env.json per trial");
    seen
}

#[test]
fn an_isolated_trial_sees_its_threads_and_only_its_gpus() {
    for v in probe(&[]) {
        assert_eq!(v["worker"], true, "written in the worker process: {v}");
        let cpu = v["cpu"].as_f64().unwrap() as u64;
        assert_eq!(v["RAYON_NUM_THREADS"], cpu.to_string(), "{v}");
        assert_eq!(v["OMP_NUM_THREADS"], cpu.to_string(), "{v}");
        assert_eq!(v["rayon_threads"], cpu, "rayon's global pool in the worker: {v}");
        let ids: Vec<String> = v["gpu_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| {
                let id = id.as_u64().unwrap();
                assert!(id == 3 || id == 5, "{v}");
                id.to_string()
            })
            .collect();
        assert_eq!(v["CUDA_VISIBLE_DEVICES"], ids.join(","), "only the granted GPUs: {v}");
    }
}

#[test]
fn without_budgets_an_isolated_trial_keeps_the_default_threads() {
    for v in probe(&["--no-budgets"]) {
        assert!(v["RAYON_NUM_THREADS"].is_null() && v["OMP_NUM_THREADS"].is_null(), "{v}");
        assert_eq!(v["rayon_threads"], std::thread::available_parallelism().unwrap().get());
        assert!(v["CUDA_VISIBLE_DEVICES"].is_string(), "GPUs are narrowed either way: {v}");
    }
}
