//! Callbacks set with `Tuner::callback` see the experiment as the journal keeps it: every
//! result, in order, each checkpoint before the result it was written at, a reset to the
//! rows that stand after a retry, and the end; a callback that fails stops the run
//! resumably and nothing is lost.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};

use support::{Cfg, Score, Toy, new_probe, overrides};
use tune_runtime::callback::{
    Callback, CallbackError, CheckpointView, EndKind, ExperimentView, KeptView, ResultView,
    StartView, TrialView,
};
use tune_runtime::{Analysis, RunError, Stop, Tuner};

#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Experiment { resumed: bool },
    Start { trial: u32, iteration: u64, restored: bool },
    Result { trial: u32, iteration: u64, score: f64, done: bool, checkpoint: Option<String> },
    Checkpoint { trial: u32, iteration: u64 },
    Reset { trial: u32, kept: Vec<u64> },
    Complete { trial: u32 },
    Error { trial: u32 },
    End(EndKind),
}

/// Records every call; fails the `fail_on`-th result (1-based) when set.
#[derive(Clone, Default)]
struct Recorder {
    events: Arc<Mutex<Vec<Ev>>>,
    results: usize,
    fail_on: Option<usize>,
}

impl Recorder {
    fn push(&self, ev: Ev) {
        self.events.lock().unwrap().push(ev);
    }
    fn events(&self) -> Vec<Ev> {
        self.events.lock().unwrap().clone()
    }
}

impl Callback for Recorder {
    fn on_experiment_start(&mut self, exp: &ExperimentView<'_>) -> Result<(), CallbackError> {
        assert_eq!(exp.metric_names, ["score", "iter_seen"]);
        self.push(Ev::Experiment { resumed: exp.resumed });
        Ok(())
    }
    fn on_trial_start(
        &mut self,
        t: &TrialView<'_>,
        s: &StartView<'_>,
    ) -> Result<(), CallbackError> {
        self.push(Ev::Start {
            trial: t.index,
            iteration: s.iteration,
            restored: s.restored_from.is_some(),
        });
        Ok(())
    }
    fn on_trial_result(
        &mut self,
        t: &TrialView<'_>,
        r: &ResultView<'_>,
    ) -> Result<(), CallbackError> {
        self.results += 1;
        if Some(self.results) == self.fail_on {
            return Err(CallbackError::new("/sink", io::Error::other("sink is down")));
        }
        self.push(Ev::Result {
            trial: t.index,
            iteration: r.training_iteration(),
            score: r.metrics()[0],
            done: r.done,
            checkpoint: r.checkpoint.map(str::to_owned),
        });
        Ok(())
    }
    fn on_checkpoint(
        &mut self,
        t: &TrialView<'_>,
        c: &CheckpointView<'_>,
    ) -> Result<(), CallbackError> {
        assert!(c.path.is_dir(), "the checkpoint is on disk when announced: {}", c.path.display());
        self.push(Ev::Checkpoint { trial: t.index, iteration: c.iteration });
        Ok(())
    }
    fn on_trial_reset(&mut self, t: &TrialView<'_>, k: &KeptView<'_>) -> Result<(), CallbackError> {
        let kept = k.results().map(|r| r.training_iteration()).collect();
        self.push(Ev::Reset { trial: t.index, kept });
        Ok(())
    }
    fn on_trial_complete(&mut self, t: &TrialView<'_>) -> Result<(), CallbackError> {
        self.push(Ev::Complete { trial: t.index });
        Ok(())
    }
    fn on_trial_error(&mut self, t: &TrialView<'_>, _: &str) -> Result<(), CallbackError> {
        self.push(Ev::Error { trial: t.index });
        Ok(())
    }
    fn on_experiment_end(&mut self, end: EndKind) -> Result<(), CallbackError> {
        self.push(Ev::End(end));
        Ok(())
    }
}

/// The rows each trial has once every reset is applied: (iteration, score) per trial.
fn folded(events: &[Ev]) -> BTreeMap<u32, Vec<(u64, f64)>> {
    let mut rows: BTreeMap<u32, Vec<(u64, f64)>> = BTreeMap::new();
    for ev in events {
        match ev {
            Ev::Result { trial, iteration, score, .. } => {
                rows.entry(*trial).or_default().push((*iteration, *score))
            }
            Ev::Reset { trial, kept } => {
                let r = rows.entry(*trial).or_default();
                r.truncate(kept.len());
                assert_eq!(
                    r.iter().map(|x| x.0).collect::<Vec<_>>(),
                    *kept,
                    "reset keeps a prefix"
                );
            }
            _ => {}
        }
    }
    rows
}

fn journal_rows(a: &Analysis<Cfg, Score>) -> BTreeMap<u32, Vec<(u64, f64)>> {
    a.trials()
        .iter()
        .map(|t| {
            let rows = t.results().map(|r| (r.training_iteration(), r.values()[0])).collect();
            (t.id().index() as u32, rows)
        })
        .collect()
}

fn tuner(dir: &std::path::Path, extra: &str) -> Tuner<Toy> {
    let (tag, _) = new_probe();
    Tuner::<Toy>::new()
        .local_dir(dir)
        .name("exp")
        .seed(5)
        .verbose(0)
        .total_cpus(2.0)
        .num_samples(1)
        .stop(Stop::iterations(6))
        .checkpoint_freq(2)
        .config_overrides_json(overrides(tag, extra))
}

#[test]
fn callbacks_see_the_rows_the_journal_keeps_through_a_retry() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    // The k = 2 trial fails at iteration 3 every time: a retry goes back to its checkpoint
    // at 2 (a reset), fails again and ends in ERROR.
    let a = tuner(dir.path(), "\"fail_at\": 3, \"fail_k\": 2")
        .max_failures(1)
        .callback(rec.clone())
        .run()
        .unwrap();
    let ev = rec.events();
    assert_eq!(ev.first(), Some(&Ev::Experiment { resumed: false }));
    assert_eq!(ev.last(), Some(&Ev::End(EndKind::Finished)));
    assert_eq!(folded(&ev), journal_rows(&a), "callbacks and journal agree");

    let failing = a.trials().iter().find(|t| t.config().k == 2).unwrap().id().index() as u32;
    let of = |i: u32| -> Vec<&Ev> {
        ev.iter()
            .filter(|e| match e {
                Ev::Start { trial, .. }
                | Ev::Result { trial, .. }
                | Ev::Checkpoint { trial, .. }
                | Ev::Reset { trial, .. }
                | Ev::Complete { trial }
                | Ev::Error { trial } => *trial == i,
                _ => false,
            })
            .collect()
    };
    let f = of(failing);
    assert!(matches!(f[0], Ev::Start { iteration: 0, restored: false, .. }), "{f:?}");
    assert!(f.contains(&&Ev::Reset { trial: failing, kept: vec![1, 2] }), "{f:?}");
    assert!(f.contains(&&Ev::Start { trial: failing, iteration: 2, restored: true }), "{f:?}");
    assert_eq!(f.last(), Some(&&Ev::Error { trial: failing }));
    assert!(!f.iter().any(|e| matches!(e, Ev::Complete { .. })));

    for t in a.trials().iter().filter(|t| t.config().k != 2) {
        let e = of(t.id().index() as u32);
        assert_eq!(e.last(), Some(&&Ev::Complete { trial: t.id().index() as u32 }));
        // Each checkpoint is announced right before the result it was written at, and that
        // result names its directory.
        let mut checkpoints = 0;
        for w in e.windows(2) {
            if let Ev::Checkpoint { iteration, .. } = w[0] {
                checkpoints += 1;
                match w[1] {
                    Ev::Result { iteration: it, checkpoint: Some(name), .. } => {
                        assert_eq!(it, iteration);
                        assert!(name.ends_with(&format!("{iteration:06}")), "{name}");
                    }
                    other => panic!("a checkpoint is followed by its result, not {other:?}"),
                }
            }
        }
        assert_eq!(checkpoints, 3, "iterations 2, 4 and 6: {e:?}");
        let done: Vec<bool> = e
            .iter()
            .filter_map(|x| match x {
                Ev::Result { done, .. } => Some(*done),
                _ => None,
            })
            .collect();
        assert_eq!(done, [false, false, false, false, false, true]);
    }
}

#[test]
fn a_failing_callback_stops_the_run_resumably_and_a_resume_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let broken = Recorder { fail_on: Some(8), ..Recorder::default() };
    let err = tuner(dir.path(), "").callback(broken.clone()).run().unwrap_err();
    assert!(matches!(err, RunError::Logging { .. }), "{err}");
    assert!(err.to_string().contains("/sink"), "the error names the path: {err}");
    assert_eq!(broken.events().last(), Some(&Ev::End(EndKind::Interrupted)));

    let rec = Recorder::default();
    let a = tuner(dir.path(), "").resume(true).callback(rec.clone()).run().unwrap();
    let ev = rec.events();
    assert_eq!(ev.first(), Some(&Ev::Experiment { resumed: true }));
    assert_eq!(ev.last(), Some(&Ev::End(EndKind::Finished)));
    // Every trial has its six results, and they match an uninterrupted run's.
    let whole = tuner(&dir.path().join("again"), "").run().unwrap();
    let rows = journal_rows(&a);
    assert!(rows.values().all(|r| r.iter().map(|x| x.0).eq(1..=6)), "{rows:?}");
    assert_eq!(rows, journal_rows(&whole));
}
