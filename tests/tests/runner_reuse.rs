//! `reuse_actors` hands a finished trial's instance to the next through `reset_config`.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::Ordering;

use support::{Toy, new_probe, overrides};
use tune_runtime::{Stop, TrialStatus, Tuner};

fn run(reuse: bool) -> std::sync::Arc<support::Probe> {
    let (tag, probe) = new_probe();
    let dir = tempfile::tempdir().unwrap();
    let a = Tuner::<Toy>::new()
        .local_dir(dir.path())
        .name("exp")
        .verbose(0)
        .num_samples(2)
        .max_concurrent_trials(1)
        .reuse_actors(reuse)
        .stop(Stop::iterations(3))
        .config_overrides_json(overrides(tag, ""))
        .run()
        .unwrap();
    assert_eq!(a.count(TrialStatus::Terminated), 6);
    // Each trial started from a clean state: 3 results numbered 1..=3.
    for t in a.trials() {
        let seen: Vec<f64> = t.results().map(|r| r.get(support::ITER_SEEN)).collect();
        assert_eq!(seen, [1.0, 2.0, 3.0]);
    }
    probe
}

#[test]
fn reuse_actors_calls_reset_config() {
    let p = run(true);
    assert_eq!(p.setups.load(Ordering::SeqCst), 1);
    assert_eq!(p.resets.load(Ordering::SeqCst), 5);
    assert_eq!(p.cleanups.load(Ordering::SeqCst), 1, "the last instance is cleaned up once");
}

#[test]
fn without_reuse_every_trial_gets_a_new_instance() {
    let p = run(false);
    assert_eq!(p.setups.load(Ordering::SeqCst), 6);
    assert_eq!(p.resets.load(Ordering::SeqCst), 0);
    assert_eq!(p.cleanups.load(Ordering::SeqCst), 6);
}
