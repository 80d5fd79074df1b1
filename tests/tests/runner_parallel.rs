//! Parallel execution and admission by declared resources.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::Ordering;

use support::{Toy, new_probe, overrides};
use tune_runtime::{RunError, Stop, TrialStatus, Tuner};

fn tuner(tag: u64, extra: &str) -> (tempfile::TempDir, Tuner<Toy>) {
    let dir = tempfile::tempdir().unwrap();
    let t = Tuner::<Toy>::new()
        .local_dir(dir.path())
        .name("exp")
        .seed(3)
        .verbose(0)
        .config_overrides_json(overrides(tag, extra));
    (dir, t)
}

#[test]
fn trials_run_in_parallel() {
    let (tag, probe) = new_probe();
    let (_dir, t) = tuner(tag, "\"sleep_ms\": 15");
    let a = t.num_samples(2).total_cpus(4.0).stop(Stop::iterations(3)).run().unwrap();
    assert_eq!(a.count(TrialStatus::Terminated), 6);
    let max = probe.max_running.load(Ordering::SeqCst);
    assert!(max > 1, "steps never overlapped (max concurrent steps {max})");
    assert!(max <= 4, "more steps at once ({max}) than CPUs");
}

#[test]
fn max_concurrent_trials_is_respected() {
    let (tag, probe) = new_probe();
    let (_dir, t) = tuner(tag, "\"sleep_ms\": 3");
    t.total_cpus(4.0).max_concurrent_trials(1).stop(Stop::iterations(2)).run().unwrap();
    assert_eq!(probe.max_running.load(Ordering::SeqCst), 1);
    assert_eq!(probe.steps.load(Ordering::SeqCst), 6);
}

#[test]
fn admission_never_exceeds_the_cpu_total_under_contention() {
    let (tag, probe) = new_probe();
    // 1.5 CPUs per trial, 3 CPUs in all: at most two trials may hold resources at once.
    let (_dir, t) = tuner(tag, "\"sleep_ms\": 4, \"cpu\": 1.5");
    let a = t.num_samples(3).total_cpus(3.0).stop(Stop::iterations(3)).run().unwrap();
    assert_eq!(a.count(TrialStatus::Terminated), 9);
    let max_cpu = probe.max_cpu_milli.load(Ordering::SeqCst);
    assert!(max_cpu <= 3000, "granted {max_cpu} milli-CPUs out of 3000");
    assert_eq!(max_cpu, 3000, "two trials should have run together");
    assert!(probe.max_running.load(Ordering::SeqCst) <= 2);
    assert_eq!(probe.cpu_milli.load(Ordering::SeqCst), 0, "every grant was returned");
}

#[test]
fn gpu_ids_are_handed_out_without_overlap() {
    let (tag, probe) = new_probe();
    let (_dir, t) = tuner(tag, "\"sleep_ms\": 5, \"gpu\": 1.0");
    let a = t.total_cpus(4.0).gpu_ids(vec![3, 5]).stop(Stop::iterations(2)).run().unwrap();
    assert_eq!(a.count(TrialStatus::Terminated), 3);
    let mut ids = probe.gpu_ids.lock().unwrap().clone();
    ids.sort();
    let ids: Vec<Vec<usize>> = ids.into_iter().map(|(_, g)| g).collect();
    assert_eq!(ids.len(), 3);
    for g in &ids {
        assert_eq!(g.len(), 1);
        assert!(g[0] == 3 || g[0] == 5, "{ids:?}");
    }
    // Trials 0 and 1 are admitted together and must not share a GPU.
    assert_ne!(ids[0], ids[1], "{ids:?}");
    assert!(probe.max_running.load(Ordering::SeqCst) <= 2, "one trial per GPU");
}

#[test]
fn extra_cpus_and_custom_resources_are_admitted_too() {
    let (tag, probe) = new_probe();
    // 1 CPU + 1 extra CPU per trial on 2 CPUs: one trial at a time.
    let (_dir, t) = tuner(tag, "\"sleep_ms\": 3");
    let r = tune_runtime::Resources { cpu: 1.0, extra_cpu: 1.0, ..Default::default() };
    t.total_cpus(2.0).resources_per_trial(r).stop(Stop::iterations(2)).run().unwrap();
    assert_eq!(probe.max_running.load(Ordering::SeqCst), 1);
    // One licence: one trial at a time even with CPUs to spare.
    let (tag, probe) = new_probe();
    let (_dir, t) = tuner(tag, "\"sleep_ms\": 3");
    let r = tune_runtime::Resources::default().with_custom("licence", 1.0);
    let a = t
        .total_cpus(4.0)
        .total_resource("licence", 1.0)
        .resources_per_trial(r)
        .stop(Stop::iterations(2))
        .run()
        .unwrap();
    assert_eq!(a.count(TrialStatus::Terminated), 3);
    assert_eq!(probe.max_running.load(Ordering::SeqCst), 1);
    // Without the resource at all, the run is refused before any trial.
    let (tag, _) = new_probe();
    let (dir, t) = tuner(tag, "");
    let r = tune_runtime::Resources::default().with_custom("licence", 1.0);
    let err = t.total_cpus(4.0).resources_per_trial(r).run().unwrap_err();
    assert!(matches!(err, tune_runtime::RunError::Resources(_)), "{err}");
    assert!(err.to_string().contains("custom resource `licence`"), "{err}");
    assert!(!dir.path().join("exp").exists(), "nothing was written");
}

#[test]
fn impossible_requests_error_at_start_and_never_hang() {
    let (tag, probe) = new_probe();
    let (dir, t) = tuner(tag, "\"cpu\": 8.0");
    let a = t.total_cpus(2.0).stop(Stop::iterations(2)).run().unwrap();
    assert_eq!(a.count(TrialStatus::Error), 3);
    assert_eq!(probe.setups.load(Ordering::SeqCst), 0, "no trial started");
    let err = a.errored_trials()[0].error().unwrap().to_string();
    assert!(err.contains("8 CPUs but the experiment has 2"), "{err}");
    let text =
        std::fs::read_to_string(a.errored_trials()[0].dir().unwrap().join("error.txt")).unwrap();
    assert!(text.contains("total_cpus"), "{text}");
    let params = a.errored_trials()[0].dir().unwrap().join("params.json");
    let params: support::Cfg = serde_json::from_slice(&std::fs::read(params).unwrap()).unwrap();
    assert_eq!(params.cpu, 8.0);
    drop(dir);
    // A GPU trial on a machine without GPUs is the same kind of error.
    let (tag, _) = new_probe();
    let (_dir, t) = tuner(tag, "\"gpu\": 1.0");
    let a = t.total_cpus(2.0).gpu_ids(vec![]).run().unwrap();
    assert_eq!(a.count(TrialStatus::Error), 3);
}

#[test]
fn invalid_totals_are_rejected() {
    let (tag, _) = new_probe();
    let (_dir, t) = tuner(tag, "");
    let err = t.total_cpus(0.0).run().unwrap_err();
    assert!(matches!(err, RunError::InvalidOption(_)), "{err}");
}

#[test]
fn gpus_come_from_cuda_visible_devices() {
    // The variable is read when the run starts; set it for a child copy of this test.
    if std::env::var_os("TUNE_TEST_CHILD").is_none() {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "gpus_come_from_cuda_visible_devices", "--test-threads=1"])
            .env("TUNE_TEST_CHILD", "1")
            .env("CUDA_VISIBLE_DEVICES", "4,6")
            .status()
            .unwrap();
        assert!(status.success());
        return;
    }
    let (tag, probe) = new_probe();
    let (_dir, t) = tuner(tag, "\"gpu\": 1.0");
    let a = t.total_cpus(4.0).stop(Stop::iterations(1)).run().unwrap();
    assert_eq!(a.count(TrialStatus::Terminated), 3);
    for (_, ids) in probe.gpu_ids.lock().unwrap().iter() {
        assert!(ids == &[4] || ids == &[6], "{ids:?}");
    }
}
