//! Fault tolerance in process: retries, corrupt checkpoints, resume options, full disks,
//! paths from untrusted journals.
#![allow(clippy::unwrap_used)]

mod support;

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use support::{Cfg, FillsUp, Score, Toy, new_probe, overrides};
use tune_runtime::{
    Analysis, RunError, Stop, TrialStatus, Tuner,
    storage::{CheckpointStore, FileJournal, JOURNAL_FILE, LocalCheckpoints, read_meta},
};

fn tuner(dir: &Path, tag: u64, extra: &str) -> Tuner<Toy> {
    Tuner::<Toy>::new()
        .local_dir(dir)
        .name("exp")
        .seed(3)
        .verbose(0)
        .total_cpus(2.0)
        .stop(Stop::iterations(6))
        .config_overrides_json(overrides(tag, extra))
}

/// A trial's grid value, `x`, status and every (iteration, score).
type Shape = (i64, String, TrialStatus, Vec<(u64, f64)>);

/// What must agree between runs: config, status and every (iteration, score) per trial.
fn shape(a: &Analysis<Cfg, Score>) -> Vec<Shape> {
    a.trials()
        .iter()
        .map(|t| {
            let rows = t.results().map(|r| (r.training_iteration(), r.get(support::SCORE)));
            (t.config().k, format!("{:.6}", t.config().x), t.status(), rows.collect())
        })
        .collect()
}

fn iterations(a: &Analysis<Cfg, Score>, k: i64) -> Vec<u64> {
    let t = a.trials().iter().find(|t| t.config().k == k).unwrap();
    t.results().map(|r| r.training_iteration()).collect()
}

#[test]
fn failing_trials_are_retried_up_to_max_failures_and_every_error_is_recorded() {
    for extra in ["\"panic_at\": 4, \"fail_k\": 2", "\"fail_at\": 4, \"fail_k\": 2"] {
        let (tag, probe) = new_probe();
        let dir = tempfile::tempdir().unwrap();
        let a = tuner(dir.path(), tag, extra).checkpoint_freq(2).max_failures(2).run().unwrap();
        // The failure repeats at iteration 4 every time: 1 try + 2 retries, then ERROR.
        let t = a.errored_trials()[0];
        assert_eq!(t.failures().len(), 2, "{:?}", t.failures());
        assert!(t.error().unwrap().contains("iteration 4"));
        // Each retry restored checkpoint_2: the kept results are 1..=3, never duplicated.
        assert_eq!(iterations(&a, 2), [1, 2, 3]);
        assert_eq!(probe.restored_files.load(Ordering::SeqCst), 2);
        let text = std::fs::read_to_string(t.dir().unwrap().join("error.txt")).unwrap();
        assert!(
            text.contains("failure 1 (retried") && text.contains("failure 3 (final)"),
            "{text}"
        );
        let lines = std::fs::read_to_string(t.dir().unwrap().join("result.json")).unwrap();
        assert_eq!(lines.lines().count(), 3, "{lines}");
        let loaded = Analysis::<Cfg, Score>::from_dir(dir.path().join("exp")).unwrap();
        assert_eq!(shape(&loaded), shape(&a));
        assert_eq!(loaded.errored_trials()[0].failures(), t.failures());
        assert_eq!(a.count(TrialStatus::Terminated), 2);
    }
    // Without a checkpoint a retry starts from scratch.
    let (tag, _) = new_probe();
    let dir = tempfile::tempdir().unwrap();
    let a = tuner(dir.path(), tag, "\"fail_at\": 2, \"fail_k\": 1").max_failures(1).run().unwrap();
    assert_eq!(iterations(&a, 1), [1]);
    assert_eq!(a.errored_trials()[0].failures().len(), 1);
}

fn corrupt(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[0] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_corrupt_checkpoint_names_its_file_falls_back_and_deletes_nothing() {
    let (tag, probe) = new_probe();
    let dir = tempfile::tempdir().unwrap();
    let a =
        tuner(dir.path(), tag, "\"fail_at\": 5, \"fail_k\": 3").checkpoint_freq(2).run().unwrap();
    let t = a.errored_trials()[0];
    let ck4 = t.dir().unwrap().join("checkpoint_000004");
    corrupt(&ck4.join("state.json"));
    let err = read_meta(&ck4).unwrap_err();
    assert!(err.contains("state.json") && err.contains("corrupt"), "{err}");
    let err = tuner(dir.path(), tag, "").name("other").restore(&ck4).run().unwrap_err();
    assert!(matches!(err, RunError::Restore(_)) && err.to_string().contains("state.json"));
    // A missing checkpoint is the same: fall back further.
    std::fs::remove_file(t.dir().unwrap().join("checkpoint_000002/.tune_manifest.json")).unwrap();
    let before = probe.restored_files.load(Ordering::SeqCst);
    let b = tuner(dir.path(), tag, "\"fail_at\": 5, \"fail_k\": 3")
        .checkpoint_freq(2)
        .resume(true)
        .resume_errored(true)
        .run()
        .unwrap();
    // Both checkpoints were refused: the trial ran again from the start, and failed at 5
    // again; no result is duplicated.
    assert_eq!(probe.restored_files.load(Ordering::SeqCst), before);
    assert_eq!(iterations(&b, 3), [1, 2, 3, 4]);
    assert!(ck4.join("state.json").exists() && ck4.join(".tune_manifest.json").exists());
    assert!(t.dir().unwrap().join("checkpoint_000002/state.json").exists());
    assert_eq!(shape(&b)[..2], shape(&a)[..2], "finished trials are untouched");
}

#[test]
fn resume_errored_continues_from_the_checkpoint_and_restart_errored_from_scratch() {
    let (tag, probe) = new_probe();
    let dir = tempfile::tempdir().unwrap();
    let extra = "\"fail_at\": 5, \"fail_k\": 1";
    let a = tuner(dir.path(), tag, extra).checkpoint_freq(2).run().unwrap();
    assert_eq!(a.count(TrialStatus::Error), 1);
    let setups = probe.setups.load(Ordering::SeqCst);
    // Plain resume: nothing to do, everything stays as it was.
    let b = tuner(dir.path(), tag, extra).checkpoint_freq(2).resume(true).run().unwrap();
    assert_eq!(shape(&b), shape(&a));
    assert_eq!(probe.setups.load(Ordering::SeqCst), setups);
    let c = tuner(dir.path(), tag, extra)
        .checkpoint_freq(2)
        .resume(true)
        .resume_errored(true)
        .run()
        .unwrap();
    assert_eq!(probe.restored_files.load(Ordering::SeqCst), 1);
    assert_eq!(iterations(&c, 1), [1, 2, 3, 4]);
    let d = tuner(dir.path(), tag, extra)
        .checkpoint_freq(2)
        .resume(true)
        .restart_errored(true)
        .run()
        .unwrap();
    assert_eq!(probe.restored_files.load(Ordering::SeqCst), 1, "no restore: from scratch");
    assert_eq!(iterations(&d, 1), [1, 2, 3, 4]);
    let loaded = Analysis::<Cfg, Score>::from_dir(dir.path().join("exp")).unwrap();
    assert_eq!(shape(&loaded), shape(&d));
    // Resume needs the name.
    let err = Tuner::<Toy>::new().local_dir(dir.path()).resume(true).run().unwrap_err();
    assert!(err.to_string().contains(".name("), "{err}");
}

#[test]
fn a_full_disk_stops_the_run_which_then_resumes_to_the_same_results() {
    let (tag, _) = new_probe();
    let reference = tempfile::tempdir().unwrap();
    let r = tuner(reference.path(), tag, "").num_samples(2).checkpoint_freq(2).run().unwrap();
    for left in [5, 30, 60] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("exp")).unwrap();
        let inner = FileJournal::open(&dir.path().join("exp").join(JOURNAL_FILE)).unwrap();
        let err = tuner(dir.path(), tag, "")
            .num_samples(2)
            .checkpoint_freq(2)
            .journal_store(FillsUp { inner, left: Arc::new(AtomicUsize::new(left)) })
            .run()
            .unwrap_err();
        assert!(matches!(err, RunError::Logging { .. }), "{err}");
        assert!(err.to_string().contains("No space left on device"), "{err}");
        let b = tuner(dir.path(), tag, "")
            .num_samples(2)
            .checkpoint_freq(2)
            .resume(true)
            .run()
            .unwrap();
        assert_eq!(shape(&b), shape(&r), "resumed after a full disk at record {left}");
        for t in b.trials() {
            let lines = std::fs::read_to_string(t.dir().unwrap().join("result.json")).unwrap();
            assert_eq!(lines.lines().count(), t.num_results());
        }
    }
}

/// After a write failure with the journal still working, the journal in `dir/exp` must
/// call no trial ERROR, and TERMINATED only those that reached their 6 iterations: the
/// others are left for the resume.
fn stopped_resumable(dir: &Path, case: &str) {
    let partial = Analysis::<support::Cfg, Score>::from_dir(dir.join("exp")).unwrap();
    let mut unfinished = 0;
    for t in partial.trials() {
        let why = format!("{case}: {:?} {:?} {}", t.status(), t.error(), t.num_results());
        assert_ne!(t.status(), TrialStatus::Error, "{why}");
        if t.status() == TrialStatus::Terminated {
            assert_eq!(t.num_results(), 6, "{why}");
        } else {
            unfinished += 1;
        }
    }
    assert!(unfinished > 0, "{case}: nothing was left to resume");
}

/// Checkpoints on a disk that refuses writes after `left` of them: full (ENOSPC) or
/// read-only (EROFS).
#[derive(Debug)]
struct RefusesAfter {
    left: AtomicUsize,
    errno: i32,
}

impl CheckpointStore for RefusesAfter {
    fn begin(&self, dir: &Path) -> io::Result<std::path::PathBuf> {
        if self.left.load(Ordering::SeqCst) == 0 {
            return Err(io::Error::from_raw_os_error(self.errno));
        }
        self.left.fetch_sub(1, Ordering::SeqCst);
        LocalCheckpoints.begin(dir)
    }
    fn commit(&self, scratch: &Path, dir: &Path) -> io::Result<()> {
        LocalCheckpoints.commit(scratch, dir)
    }
    fn delete(&self, dir: &Path) -> io::Result<()> {
        LocalCheckpoints.delete(dir)
    }
}

/// A checkpoint refused by the storage (while the journal still works) stops the whole
/// run like Ctrl-C instead of failing trials: no trial is marked ERROR or TERMINATED
/// early, and the resume gives the uninterrupted run's results.
#[test]
fn a_checkpoint_refused_by_the_storage_stops_the_run_which_then_resumes() {
    let (tag, _) = new_probe();
    let reference = tempfile::tempdir().unwrap();
    let run = |dir: &Path| tuner(dir, tag, "").num_samples(2).checkpoint_freq(2);
    let r = run(reference.path()).run().unwrap();
    assert!(r.trials().iter().all(|t| t.status() == TrialStatus::Terminated));
    for (left, errno) in [(0, 28), (2, 28), (5, 30), (9, 28)] {
        let dir = tempfile::tempdir().unwrap();
        let store = RefusesAfter { left: AtomicUsize::new(left), errno };
        let err = run(dir.path()).checkpoint_store(store).run().unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, RunError::Logging { .. }), "{msg}");
        assert!(msg.contains("checkpoint_") && msg.contains(".resume(true)"), "{msg}");
        stopped_resumable(dir.path(), &format!("after {left} checkpoints"));
        let b = run(dir.path()).resume(true).run().unwrap();
        assert_eq!(shape(&b), shape(&r), "resumed after {left} checkpoints (errno {errno})");
    }
}

#[test]
fn paths_from_a_journal_never_leave_the_experiment_directory() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("exp");
    std::fs::create_dir_all(&exp).unwrap();
    let cfg = r#"{"x":0.5,"k":1,"tag":0,"cpu":1.0,"gpu":0.0,"sleep_ms":0,"fail_at":0,"panic_at":0,"nan_at":0,"finish_at":0,"fail_k":0}"#;
    for evil in ["../../etc", "/etc", "a/../../b", ".."] {
        let journal = format!(
            "{{\"type\":\"experiment\",\"version\":2,\"name\":\"exp\",\"trainable\":\"Toy\",\
             \"metrics\":[\"score\",\"iter_seen\"],\"seed\":1,\"started\":0}}\n\
             {{\"type\":\"trial\",\"trial\":0,\"id\":\"00000\",\"dir\":\"{evil}\",\"config\":{cfg}}}\n"
        );
        std::fs::write(exp.join(JOURNAL_FILE), journal).unwrap();
        let err = Analysis::<Cfg, Score>::from_dir(&exp).unwrap_err();
        assert!(err.to_string().contains("not inside the experiment directory"), "{err}");
        let (tag, _) = new_probe();
        let err = tuner(dir.path(), tag, "").resume(true).run().unwrap_err();
        assert!(matches!(err, RunError::Resume(_)), "{err}");
    }
    for name in ["..", "a/b", "a\\b", "a\0b"] {
        let (tag, _) = new_probe();
        let err = tuner(dir.path(), tag, "").name(name).run().unwrap_err();
        assert!(matches!(err, RunError::InvalidOption(_)), "{name}: {err}");
    }
}
