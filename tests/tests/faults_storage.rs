//! Data loss around the storage: the trainable's own checkpoint files on a full disk,
//! `keep_checkpoints_num` and the latest checkpoint, and the lock on the experiment
//! directory.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{Cfg, SCORE, Score, Toy, new_probe, overrides};
use tune_runtime::prelude::*;
use tune_runtime::storage::{JOURNAL_FILE, Record, read_journal};

search_space! {
    pub struct Lr {
        lr: f64 = uniform(0.1, 1.0),
    }
}

#[derive(Metrics, Debug, Clone)]
pub struct Loss {
    loss: f64,
}

/// The disk under the trainable's own checkpoint files is full while this is set.
static DISK_FULL: AtomicBool = AtomicBool::new(false);

/// A trainable that writes its weights beside the generated state (`save_files`).
#[trainable(config = Lr, metrics = Loss, test = false)]
pub struct Weights {
    steps: u64,
    #[checkpoint(skip)]
    lr: f64,
}

impl Trainable for Weights {
    fn setup(config: &Lr, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Weights { steps: 0, lr: config.lr })
    }

    fn step(&mut self) -> TrainResult<Loss> {
        self.steps += 1;
        Ok(Loss { loss: self.lr / self.steps as f64 })
    }

    fn save_files(&self, dir: &Path) -> TrainResult<()> {
        let weights = self.steps.to_le_bytes();
        if DISK_FULL.load(Ordering::SeqCst) && self.steps >= 4 {
            // What a write on a full disk returns: ENOSPC from the kernel.
            std::fs::write("/dev/full", weights)?;
        }
        std::fs::write(dir.join("weights.bin"), weights)?;
        Ok(())
    }

    fn restore_files(&mut self, dir: &Path) -> TrainResult<()> {
        let bytes = std::fs::read(dir.join("weights.bin"))?;
        if bytes != self.steps.to_le_bytes() {
            return Err(TrainError::msg("weights.bin does not match the state"));
        }
        Ok(())
    }
}

fn weights(dir: &Path) -> Tuner<Weights> {
    Tuner::<Weights>::new()
        .num_samples(2)
        .stop(Stop::iterations(6))
        .checkpoint_freq(2)
        .total_cpus(2.0)
        .local_dir(dir)
        .name("exp")
        .seed(8)
        .verbose(0)
}

type Rows = Vec<(String, TrialStatus, Vec<(u64, f64)>)>;

fn rows(a: &Analysis<Lr, Loss>) -> Rows {
    a.trials()
        .iter()
        .map(|t| {
            let r = t.results().map(|r| (r.training_iteration(), r.get(Loss::LOSS)));
            (format!("{:?}", t.config()), t.status(), r.collect())
        })
        .collect()
}

/// `save_files` hitting a full disk (the first write that does: the generated state fits)
/// stops the run resumably, like any checkpoint the storage refuses: no trial is marked
/// ERROR, and a resume after space was freed finishes every trial with the results of an
/// uninterrupted run. (Before, the trial was marked ERROR, and stayed so after a resume.)
#[test]
fn a_full_disk_under_the_trainables_own_files_stops_the_run_resumably() {
    let reference = tempfile::tempdir().unwrap();
    let r = weights(reference.path()).run().unwrap();
    let dir = tempfile::tempdir().unwrap();
    DISK_FULL.store(true, Ordering::SeqCst);
    let err = weights(dir.path()).run().unwrap_err();
    DISK_FULL.store(false, Ordering::SeqCst);
    let msg = err.to_string();
    assert!(matches!(err, RunError::Logging { .. }), "{msg}");
    assert!(
        msg.contains("checkpoint_000004")
            && msg.contains("No space left")
            && msg.contains(".resume(true)"),
        "{msg}"
    );
    let partial = Analysis::<Lr, Loss>::from_dir(dir.path().join("exp")).unwrap();
    for t in partial.trials() {
        assert_ne!(t.status(), TrialStatus::Error, "{:?}", t.error());
        assert_ne!(t.status(), TrialStatus::Terminated, "stopped before its end");
    }
    let a = weights(dir.path()).resume(true).run().unwrap();
    assert_eq!(rows(&a), rows(&r), "the resumed run finishes as the uninterrupted one");
    assert!(
        a.trials().iter().all(|t| t.dir().unwrap().join("checkpoint_000006/weights.bin").is_file())
    );
}

fn toy(dir: &Path, tag: u64) -> Tuner<Toy> {
    Tuner::<Toy>::new()
        .local_dir(dir)
        .name("exp")
        .seed(3)
        .verbose(0)
        .total_cpus(2.0)
        .config_overrides_json(overrides(tag, ""))
}

/// `keep_checkpoints_num` with a score keeps the best checkpoints and always the latest:
/// the one written at the end of the trial, which a resume or a retry continues from.
/// (Before, the checkpoint at the end was deleted when it was not among the best.)
#[test]
fn keep_checkpoints_num_with_a_score_never_deletes_the_latest_checkpoint() {
    let (tag, _) = new_probe();
    let dir = tempfile::tempdir().unwrap();
    // The score grows with the iteration: `Min` makes the earliest checkpoint the best.
    let a = toy(dir.path(), tag)
        .num_samples(1)
        .stop(Stop::iterations(7))
        .checkpoint_freq(2)
        .checkpoint_at_end(true)
        .keep_checkpoints_num(1)
        .checkpoint_score(SCORE, Mode::Min)
        .run()
        .unwrap();
    for t in a.trials() {
        let tdir = t.dir().unwrap();
        let kept: Vec<u64> = t.checkpoints().iter().map(|c| c.iteration).collect();
        assert_eq!(kept, [2, 7], "the best (2) and the latest (7), trial {}", t.id());
        assert!(tdir.join("checkpoint_000002").is_dir() && tdir.join("checkpoint_000007").is_dir());
        assert!(
            !tdir.join("checkpoint_000004").exists() && !tdir.join("checkpoint_000006").exists()
        );
    }
    let records = read_journal(&dir.path().join("exp").join(JOURNAL_FILE)).unwrap();
    for r in &records {
        if let Record::CheckpointDeleted { path, .. } = r {
            assert!(!path.ends_with("checkpoint_000007"), "the latest was deleted: {path}");
        }
    }
    let loaded = Analysis::<Cfg, Score>::from_dir(dir.path().join("exp")).unwrap();
    for t in loaded.trials() {
        assert_eq!(t.checkpoints().last().unwrap().iteration, 7);
    }
}

fn wait_for_result(exp: &Path) {
    let journal = exp.join(JOURNAL_FILE);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(&journal).unwrap_or_default();
        if text.contains("\"type\":\"result\"") {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("the first run made no progress");
}

/// While a run holds the experiment, another run of it (resumed or fresh) is refused
/// with an error that says so, and the first run is unharmed.
#[test]
fn a_running_experiment_is_locked_against_a_second_run() {
    let (tag, _) = new_probe();
    let dir = tempfile::tempdir().unwrap();
    let reference = tempfile::tempdir().unwrap();
    let plain =
        move |d: &Path| toy(d, tag).num_samples(2).stop(Stop::iterations(6)).checkpoint_freq(2);
    let expected = plain(reference.path()).run().unwrap();
    let slow = move |d: &Path| plain(d).config_overrides_json(overrides(tag, "\"sleep_ms\": 40"));
    let path = dir.path().to_path_buf();
    let first = std::thread::spawn(move || slow(&path).run());
    wait_for_result(&dir.path().join("exp"));
    for resume in [true, false] {
        let err = slow(dir.path()).resume(resume).run().unwrap_err();
        assert!(matches!(err, RunError::Locked { .. }), "resume {resume}: {err}");
        assert!(err.to_string().contains("in use by another run"), "{err}");
    }
    let a = first.join().unwrap().unwrap();
    assert_eq!(a.count(TrialStatus::Terminated), expected.trials().len());
    let loaded = Analysis::<Cfg, Score>::from_dir(dir.path().join("exp")).unwrap();
    let iters = |a: &Analysis<Cfg, Score>| -> Vec<Vec<u64>> {
        a.trials().iter().map(|t| t.results().map(|r| r.training_iteration()).collect()).collect()
    };
    assert_eq!(iters(&loaded), iters(&expected), "the first run's journal is whole");
    let log = tune_runtime::storage::ExperimentLog::from_dir(dir.path().join("exp")).unwrap();
    assert_eq!(log.runs().len(), 1, "no second run was recorded");
}

/// Two fresh runs of one experiment started together: exactly one runs, the other is
/// refused with a clear error (the lock, or the journal the first one wrote).
#[test]
fn two_fresh_runs_of_one_experiment_started_together_run_once() {
    for round in 0..5 {
        let (tag, _) = new_probe();
        let dir = tempfile::tempdir().unwrap();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let runs: Vec<_> = (0..2)
            .map(|_| {
                let path = dir.path().to_path_buf();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let t = toy(&path, tag)
                        .num_samples(1)
                        .stop(Stop::iterations(3))
                        .config_overrides_json(overrides(tag, "\"sleep_ms\": 20"));
                    barrier.wait();
                    t.run()
                })
            })
            .collect();
        let results: Vec<_> = runs.into_iter().map(|h| h.join().unwrap()).collect();
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 1, "round {round}: {results:?}");
        let err = results.into_iter().find_map(Result::err).unwrap();
        assert!(
            matches!(err, RunError::Locked { .. } | RunError::ExperimentExists { .. }),
            "round {round}: {err}"
        );
        let loaded = Analysis::<Cfg, Score>::from_dir(dir.path().join("exp")).unwrap();
        assert_eq!(loaded.trials().len(), 3, "round {round}: one run's trials only");
    }
}
