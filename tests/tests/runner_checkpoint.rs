//! Checkpoints land where documented, are pruned, and restore.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::Ordering;

use support::{SCORE, Toy, new_probe, overrides};
use tune_runtime::{Mode, Scope, Stop, TrialStatus, Tuner, storage::read_meta};

fn tuner(tag: u64, dir: &std::path::Path) -> Tuner<Toy> {
    Tuner::<Toy>::new()
        .local_dir(dir)
        .name("exp")
        .seed(9)
        .verbose(0)
        .total_cpus(2.0)
        .config_overrides_json(overrides(tag, ""))
}

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("checkpoint_") || n.starts_with('.'))
        .collect();
    v.sort();
    v
}

#[test]
fn checkpoint_freq_and_at_end_write_complete_directories() {
    let (tag, _) = new_probe();
    let dir = tempfile::tempdir().unwrap();
    let a = tuner(tag, dir.path())
        .num_samples(1)
        .checkpoint_freq(2)
        .checkpoint_at_end(true)
        .stop(Stop::iterations(5))
        .run()
        .unwrap();
    for t in a.trials() {
        let tdir = t.dir().unwrap();
        assert_eq!(
            names(tdir),
            ["checkpoint_000002", "checkpoint_000004", "checkpoint_000005"],
            "no temp dirs left"
        );
        for (it, c) in [2u64, 4, 5].iter().zip(t.checkpoints()) {
            assert_eq!(c.iteration, *it);
            assert_eq!(c.path, tdir.join(format!("checkpoint_{it:06}")));
            let state: serde_json::Value =
                serde_json::from_slice(&std::fs::read(c.path.join("state.json")).unwrap()).unwrap();
            assert_eq!(state["iter"], *it);
            assert_eq!(std::fs::read_to_string(c.path.join("extra.txt")).unwrap(), it.to_string());
            assert_eq!(read_meta(&c.path).unwrap().iteration, *it);
        }
    }
    // The journal knows them too.
    let loaded =
        tune_runtime::Analysis::<support::Cfg, support::Score>::from_dir(dir.path().join("exp"))
            .unwrap();
    assert_eq!(loaded.trials()[0].checkpoints(), a.trials()[0].checkpoints());
}

#[test]
fn keep_checkpoints_num_keeps_the_best() {
    let (tag, _) = new_probe();
    let dir = tempfile::tempdir().unwrap();
    // The score grows with the iteration: the best two are the last two.
    let a = tuner(tag, dir.path())
        .checkpoint_freq(1)
        .keep_checkpoints_num(2)
        .checkpoint_score(SCORE, Mode::Max)
        .stop(Stop::iterations(6))
        .run()
        .unwrap();
    for t in a.trials() {
        assert_eq!(names(t.dir().unwrap()), ["checkpoint_000005", "checkpoint_000006"]);
        assert_eq!(t.checkpoints().len(), 2);
    }
    let best = a.best_checkpoint(SCORE, Mode::Max, Scope::Last).unwrap();
    assert!(best.ends_with("checkpoint_000006"), "{}", best.display());
    // Ranked by min instead, the earliest survive.
    let (tag, _) = new_probe();
    let dir = tempfile::tempdir().unwrap();
    let a = tuner(tag, dir.path())
        .num_samples(1)
        .checkpoint_freq(1)
        .keep_checkpoints_num(1)
        .checkpoint_score(SCORE, Mode::Min)
        .stop(Stop::iterations(4))
        .run()
        .unwrap();
    // The best one survives, and the latest one too: a trial always keeps the checkpoint
    // it would continue from after a failure (here the one written as it ended).
    assert_eq!(names(a.trials()[0].dir().unwrap()), ["checkpoint_000001", "checkpoint_000004"]);
    let loaded =
        tune_runtime::Analysis::<support::Cfg, support::Score>::from_dir(dir.path().join("exp"))
            .unwrap();
    assert_eq!(loaded.trials()[0].checkpoints().len(), 2);
}

#[test]
fn restore_continues_from_the_checkpoint() {
    let (tag, _) = new_probe();
    let dir = tempfile::tempdir().unwrap();
    let a = tuner(tag, dir.path())
        .num_samples(1)
        .checkpoint_freq(4)
        .stop(Stop::iterations(4))
        .run()
        .unwrap();
    let ckpt = a.trials()[0].checkpoints()[0].path.clone();
    let (tag2, probe2) = new_probe();
    let b = tuner(tag2, dir.path())
        .name("restored")
        .num_samples(1)
        .restore(&ckpt)
        .stop(Stop::iterations(6))
        .run()
        .unwrap();
    assert_eq!(probe2.restored_files.load(Ordering::SeqCst), 3);
    for t in b.trials() {
        assert_eq!(t.status(), TrialStatus::Terminated);
        // Iterations continue: 5 and 6, and the restored state counts from 4.
        let iters: Vec<u64> = t.results().map(|r| r.training_iteration()).collect();
        assert_eq!(iters, [5, 6]);
        let seen: Vec<f64> = t.results().map(|r| r.get(support::ITER_SEEN)).collect();
        assert_eq!(seen, [5.0, 6.0]);
    }
    // A directory that is not a checkpoint is refused before any trial.
    let err = tuner(tag2, dir.path()).name("bad").restore(dir.path()).run().unwrap_err();
    assert!(err.to_string().contains("not a checkpoint directory"), "{err}");
}
