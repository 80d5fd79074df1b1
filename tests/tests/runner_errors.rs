//! Failures are contained and bad input is reported with the fix.
#![allow(clippy::unwrap_used)]

mod support;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use support::{Toy, new_probe, overrides};
use tune_runtime::{RunError, Stop, TrialStatus, Tuner, storage::JournalStore};

fn tuner(dir: &std::path::Path, extra: &str) -> Tuner<Toy> {
    let (tag, _) = new_probe();
    Tuner::<Toy>::new()
        .local_dir(dir)
        .name("exp")
        .seed(11)
        .verbose(0)
        .total_cpus(2.0)
        .stop(Stop::iterations(4))
        .config_overrides_json(overrides(tag, extra))
}

#[test]
fn a_panicking_trial_is_contained() {
    let dir = tempfile::tempdir().unwrap();
    let a = tuner(dir.path(), "\"panic_at\": 2, \"fail_k\": 2").run().unwrap();
    let errored = a.errored_trials();
    assert_eq!(errored.len(), 1);
    let t = errored[0];
    assert_eq!(t.config().k, 2);
    assert_eq!(t.num_results(), 1, "the result before the panic is kept");
    assert!(t.error().unwrap().contains("boom at iteration 2"), "{:?}", t.error());
    let text = std::fs::read_to_string(t.dir().unwrap().join("error.txt")).unwrap();
    assert!(text.contains("`step` panicked: boom at iteration 2"), "{text}");
    assert_eq!(a.count(TrialStatus::Terminated), 2, "the other trials went on");
    assert!(a.trials().iter().filter(|t| t.config().k != 2).all(|t| t.num_results() == 4));
}

#[test]
fn an_erroring_trial_is_marked_error() {
    let dir = tempfile::tempdir().unwrap();
    let a = tuner(dir.path(), "\"fail_at\": 3, \"fail_k\": 1").run().unwrap();
    let t = a.errored_trials()[0];
    assert_eq!(t.error(), Some("diverged at iteration 3"));
    let text = std::fs::read_to_string(t.dir().unwrap().join("error.txt")).unwrap();
    assert_eq!(text.trim(), "diverged at iteration 3");
    let loaded =
        tune_runtime::Analysis::<support::Cfg, support::Score>::from_dir(dir.path().join("exp"))
            .unwrap();
    assert_eq!(loaded.errored_trials()[0].error(), Some("diverged at iteration 3"));
}

#[test]
fn a_trainable_that_finishes_by_itself_is_terminated() {
    let dir = tempfile::tempdir().unwrap();
    let a = tuner(dir.path(), "\"finish_at\": 3").stop(Stop::iterations(10)).run().unwrap();
    for t in a.trials() {
        assert_eq!(t.status(), TrialStatus::Terminated);
        assert_eq!(t.num_results(), 2);
    }
}

#[test]
fn nan_metrics_are_an_error_naming_the_metric() {
    let dir = tempfile::tempdir().unwrap();
    let a = tuner(dir.path(), "\"nan_at\": 2, \"fail_k\": 3").run().unwrap();
    let t = a.errored_trials()[0];
    let msg = t.error().unwrap();
    assert!(
        msg.contains("metric `score` is NaN at iteration 2") && msg.contains("finite"),
        "{msg}"
    );
    assert_eq!(t.num_results(), 1);
    // Nothing non-finite reached the files.
    let json = std::fs::read_to_string(t.dir().unwrap().join("result.json")).unwrap();
    assert_eq!(json.lines().count(), 1);
}

#[test]
fn zero_samples() {
    let dir = tempfile::tempdir().unwrap();
    let err = tuner(dir.path(), "").num_samples(0).run().unwrap_err();
    assert!(matches!(err, RunError::NoSamples));
    assert!(err.to_string().contains("num_samples(n)"), "{err}");
}

#[test]
fn bad_config_overrides_fail_before_the_first_trial() {
    let dir = tempfile::tempdir().unwrap();
    let err = tuner(dir.path(), "").config_overrides_json(r#"{"lrr": 0.1}"#).run().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RunError::ConfigOverride(_)));
    assert!(msg.contains("unknown key `lrr`") && msg.contains("k, ") && msg.contains("x"), "{msg}");
    let err = tuner(dir.path(), "").config_overrides_json(r#"{"x": 1.5}"#).run().unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("`x`") && msg.contains("uniform(0.0, 1.0)"), "{msg}");
    let file = dir.path().join("over.json");
    std::fs::write(&file, r#"{"k": 7}"#).unwrap();
    let err = tuner(dir.path(), "").config_overrides_file(&file).run().unwrap_err();
    assert!(err.to_string().contains("`k`"), "{err}");
    let err = tuner(dir.path(), "")
        .config_overrides_file(dir.path().join("missing.json"))
        .run()
        .unwrap_err();
    assert!(err.to_string().contains("missing.json"), "{err}");
    assert!(!dir.path().join("exp").exists(), "no trial ran");
}

#[test]
fn unwritable_local_dir() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let err = tuner(&file, "").run().unwrap_err();
    assert!(matches!(err, RunError::LocalDir { .. }));
    assert!(err.to_string().contains(".local_dir("), "{err}");
}

/// A journal whose disk fills up after some records.
struct FillsUp {
    left: Arc<AtomicUsize>,
}

impl JournalStore for FillsUp {
    fn append(&mut self, _record: &[u8]) -> io::Result<()> {
        if self.left.load(Ordering::SeqCst) == 0 {
            return Err(io::Error::from_raw_os_error(28));
        }
        self.left.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn read(
        &mut self,
        _visit: &mut dyn FnMut(&[u8]) -> std::ops::ControlFlow<()>,
    ) -> io::Result<()> {
        // It keeps nothing: there is nothing to read back.
        Ok(())
    }
}

#[test]
fn a_full_disk_stops_the_run_with_the_fix_and_keeps_results() {
    let dir = tempfile::tempdir().unwrap();
    let left = Arc::new(AtomicUsize::new(30));
    let err = tuner(dir.path(), "")
        .num_samples(20)
        .max_concurrent_trials(1)
        .journal_store(FillsUp { left })
        .run()
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RunError::Logging { .. }), "{msg}");
    assert!(msg.contains("No space left on device") && msg.contains("Free disk space"), "{msg}");
    // The first trial's files were written and stay.
    let exp = dir.path().join("exp");
    let first = std::fs::read_dir(&exp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("Toy_00000"))
        .unwrap();
    let lines = std::fs::read_to_string(first.join("result.json")).unwrap();
    assert_eq!(lines.lines().count(), 4);
    // The run stopped early instead of running all 60 trials.
    let trials = std::fs::read_dir(&exp).unwrap().count();
    assert!(trials < 60, "{trials} trial directories");
}

#[test]
fn a_full_disk_at_start_is_reported_before_any_trial() {
    let dir = tempfile::tempdir().unwrap();
    let err = tuner(dir.path(), "")
        .journal_store(FillsUp { left: Arc::new(AtomicUsize::new(0)) })
        .run()
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RunError::LocalDir { .. }), "{msg}");
    assert!(msg.contains("No space left on device") && msg.contains(".local_dir("), "{msg}");
    let exp = dir.path().join("exp");
    let trial_dirs =
        std::fs::read_dir(&exp).unwrap().filter(|e| e.as_ref().unwrap().path().is_dir()).count();
    assert_eq!(trial_dirs, 0, "no trial directory was made");
}

/// A journal that is a link (here to `/dev/full`) is refused before anything is written:
/// a link inside the experiment directory could lead writes outside it.
#[cfg(unix)]
#[test]
fn a_linked_journal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("exp");
    std::fs::create_dir_all(&exp).unwrap();
    std::os::unix::fs::symlink("/dev/full", exp.join(tune_runtime::storage::JOURNAL_FILE)).unwrap();
    let err = tuner(dir.path(), "").run().unwrap_err();
    assert!(matches!(err, RunError::Link { .. }), "{err}");
    assert!(err.to_string().contains("symbolic link"), "{err}");
}

#[test]
fn an_existing_experiment_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    tuner(dir.path(), "").run().unwrap();
    let err = tuner(dir.path(), "").run().unwrap_err();
    assert!(matches!(err, RunError::ExperimentExists { .. }), "{err}");
    assert!(err.to_string().contains("choose another `.name(...)`"), "{err}");
    // The first run is intact.
    let a =
        tune_runtime::Analysis::<support::Cfg, support::Score>::from_dir(dir.path().join("exp"))
            .unwrap();
    assert_eq!(a.trials().len(), 3);
    assert!(a.trials().iter().all(|t| t.num_results() == 4));
}

#[test]
fn a_panicking_stop_closure_keeps_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let t = tuner(dir.path(), "").max_concurrent_trials(1).stop(Stop::when(
        |r: &tune_runtime::TrialResult<support::Score>| {
            assert!(r.trial_id.index() < 1 || r.training_iteration < 2, "criterion bug");
            r.training_iteration >= 3
        },
    ));
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.run())).unwrap_err();
    let msg = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(msg.contains("criterion bug"), "{msg}");
    let a =
        tune_runtime::Analysis::<support::Cfg, support::Score>::from_dir(dir.path().join("exp"))
            .unwrap();
    assert_eq!(a.trials()[0].num_results(), 3, "the first trial's results were flushed");
    assert_eq!(a.trials()[1].num_results(), 1);
}
