//! Experiments shared by several processes, in process: peers are threads of this test
//! sharing `MemoryShared` (the store's semantics: one order, claims, leases, fencing, as
//! PostgreSQL gives them across machines; `shared_pg.rs` runs the same against PostgreSQL).
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use support::{Cfg, Score, Toy, new_probe, overrides};
use tune_runtime::shared::MemoryShared;
use tune_runtime::{Analysis, RunError, Stop, TrialStatus, Tuner};

fn tuner(dir: &Path, tag: u64, extra: &str) -> Tuner<Toy> {
    Tuner::<Toy>::new()
        .local_dir(dir)
        .name("exp")
        .seed(3)
        .verbose(0)
        .num_samples(4)
        .total_cpus(1.0)
        .stop(Stop::iterations(5))
        .checkpoint_freq(2)
        .config_overrides_json(overrides(tag, extra))
}

/// A trial's grid value, `x`, status and every (iteration, score).
type Shape = (i64, String, TrialStatus, Vec<(u64, f64)>);

fn shape(a: &Analysis<Cfg, Score>) -> Vec<Shape> {
    a.trials()
        .iter()
        .map(|t| {
            let rows = t.results().map(|r| (r.training_iteration(), r.get(support::SCORE)));
            (t.config().k, format!("{:.6}", t.config().x), t.status(), rows.collect())
        })
        .collect()
}

#[test]
fn three_peers_run_every_trial_once_with_the_results_of_one_process() {
    let (tag, probe) = new_probe();
    let reference = tempfile::tempdir().unwrap();
    let r = tuner(reference.path(), tag, "\"sleep_ms\": 2").run().unwrap();
    assert_eq!(r.trials().len(), 12);
    let solo_steps = probe.steps.load(Ordering::SeqCst);

    let (tag, probe) = new_probe();
    let store = MemoryShared::new();
    let runs: Vec<_> = (0..3)
        .map(|_| {
            let journal = store.handle();
            std::thread::spawn(move || {
                let dir = tempfile::tempdir().unwrap();
                tuner(dir.path(), tag, "\"sleep_ms\": 2").shared_journal(journal).run().unwrap()
            })
        })
        .collect();
    let analyses: Vec<_> = runs.into_iter().map(|h| h.join().unwrap()).collect();
    for a in &analyses {
        // Every peer ends with the whole experiment, as one process would have run it.
        assert_eq!(shape(a), shape(&r));
    }
    // No config ran twice: the peers stepped exactly what one process steps.
    assert_eq!(probe.steps.load(Ordering::SeqCst), solo_steps);
    // The log holds each trial once.
    let mut reader = store.handle();
    let a = Analysis::<Cfg, Score>::from_shared(&mut reader, "/nonexistent").unwrap();
    assert_eq!(shape(&a), shape(&r));
}

#[test]
fn a_peer_that_stops_answering_is_fenced_and_its_trials_taken_over() {
    use std::sync::atomic::AtomicBool;
    static STALLED: AtomicBool = AtomicBool::new(false);
    let (tag, _) = new_probe();
    let reference = tempfile::tempdir().unwrap();
    let r = tuner(reference.path(), tag, "\"sleep_ms\": 5").run().unwrap();

    let (tag, _) = new_probe();
    let store = MemoryShared::new();
    // Both peers see the same directory (a shared file system), so checkpoints written by
    // one are there for the other: a trial taken over continues from its checkpoint.
    let shared_dir = tempfile::tempdir().unwrap();
    let dir_a = shared_dir.path().to_path_buf();
    let dir_b = shared_dir.path().to_path_buf();
    // The first peer's driver stalls once, longer than its lease (a stop criterion runs on
    // the driver's thread): it stands for a process that stopped answering (a SIGSTOP, a
    // network partition) and then comes back.
    let stalling = {
        let journal = store.handle();
        std::thread::spawn(move || {
            // At iteration 3, after the checkpoint of iteration 2.
            let stall = Stop::when(|r: &tune_runtime::TrialResult<Score>| {
                if r.training_iteration == 3 && !STALLED.swap(true, Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(600));
                }
                false
            });
            tuner(&dir_a, tag, "\"sleep_ms\": 5")
                .stop(Stop::iterations(5).or(stall))
                .lease(Duration::from_millis(150))
                .shared_journal(journal)
                .run()
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    let healthy = {
        let journal = store.handle();
        std::thread::spawn(move || {
            tuner(&dir_b, tag, "\"sleep_ms\": 5")
                .lease(Duration::from_millis(400))
                .shared_journal(journal)
                .run()
        })
    };
    let b = healthy.join().unwrap().unwrap();
    let err = stalling.join().unwrap().unwrap_err();
    assert!(STALLED.load(Ordering::SeqCst));
    assert!(matches!(err, RunError::Fenced { .. }), "{err}");
    assert_eq!(shape(&b), shape(&r), "the taken-over trials finished with the same rows");
    let mut reader = store.handle();
    let a = Analysis::<Cfg, Score>::from_shared(&mut reader, "/nonexistent").unwrap();
    assert_eq!(shape(&a), shape(&r), "nothing the fenced peer reported late was counted");
    // The trial taken over went back to a checkpoint the first peer wrote.
    let mut from_checkpoint = 0;
    tune_runtime::shared::SharedJournal::read_from(&mut reader, 0, &mut |_, _, bytes| {
        if let Ok(tune_runtime::storage::Record::Rollback { checkpoint: Some(_), .. }) =
            serde_json::from_slice(bytes)
        {
            from_checkpoint += 1;
        }
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert!(from_checkpoint > 0, "a taken-over trial continued from its checkpoint");
}
