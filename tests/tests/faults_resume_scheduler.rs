//! A resumed experiment gives its scheduler back what the journal holds after the
//! scheduler's last saved state: an ASHA experiment whose journal fills up after `n`
//! records, then resumed, stops the same trials at the same iterations as an
//! uninterrupted run, wherever `n` falls (after a result, a checkpoint, a trial's end).
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use support::FillsUp;
use tune_runtime::prelude::*;
use tune_runtime::{
    scheduler::Asha,
    storage::{FileJournal, JOURNAL_FILE},
};

search_space! {
    /// How fast a trial learns.
    pub struct Pace {
        rate: f64 = uniform(0.05, 1.0),
    }
}

#[derive(Metrics, Debug, Clone)]
pub struct Fit {
    score: f64,
}

/// `score` after `n` steps is `rate * n`: the trials' order is the same at every
/// iteration, and each rung's cutoff depends on which trials recorded a score there before.
#[trainable(config = Pace, metrics = Fit)]
pub struct Line {
    steps: u64,
    #[checkpoint(skip)]
    rate: f64,
}

impl Trainable for Line {
    fn setup(config: &Pace, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Line { steps: 0, rate: config.rate })
    }

    fn step(&mut self) -> TrainResult<Fit> {
        self.steps += 1;
        Ok(Fit { score: self.rate * self.steps as f64 })
    }
}

/// Nine trials, one at a time (so the uninterrupted run's decisions are deterministic),
/// under ASHA with rungs at 1, 3 and 9 iterations keeping the top third.
fn tuner(dir: &Path, checkpoint_freq: u64) -> Tuner<Line> {
    tuner_ticking(dir, checkpoint_freq, Duration::from_secs(3600))
}

/// [`tuner`] with a status tick (and a saved scheduler state) every `tick`.
fn tuner_ticking(dir: &Path, checkpoint_freq: u64, tick: Duration) -> Tuner<Line> {
    let asha = Asha::builder(Fit::SCORE, Mode::Max)
        .max_t(9.0)
        .grace_period(1.0)
        .reduction_factor(3.0)
        .build()
        .unwrap();
    Tuner::<Line>::new()
        .num_samples(9)
        .scheduler(asha)
        .max_concurrent_trials(1)
        .checkpoint_freq(checkpoint_freq)
        .local_dir(dir)
        .name("exp")
        .seed(11)
        .verbose(0)
        .status_interval(tick)
}

/// Every trial's rate, status and (iteration, score) rows.
type Shape = Vec<(String, TrialStatus, Vec<(u64, f64)>)>;

fn shape(a: &Analysis<Pace, Fit>) -> Shape {
    a.trials()
        .iter()
        .map(|t| {
            let rows = t.results().map(|r| (r.training_iteration(), r.get(Fit::SCORE)));
            (format!("{:.6}", t.config().rate), t.status(), rows.collect())
        })
        .collect()
}

/// Runs (or resumes) the experiment in `dir` on a disk that fills up after `n` records.
fn fill_up_after(dir: &Path, checkpoint_freq: u64, resume: bool, n: usize) {
    std::fs::create_dir_all(dir.join("exp")).unwrap();
    let inner = FileJournal::open(&dir.join("exp").join(JOURNAL_FILE)).unwrap();
    let err = tuner(dir, checkpoint_freq)
        .resume(resume)
        .journal_store(FillsUp { inner, left: Arc::new(AtomicUsize::new(n)) })
        .run()
        .unwrap_err();
    assert!(matches!(err, RunError::Logging { .. }), "{err}");
}

#[test]
fn a_resumed_asha_run_stops_the_same_trials_as_an_uninterrupted_one() {
    let mut failed = Vec::new();
    for freq in [1, 2] {
        let reference = tempfile::tempdir().unwrap();
        let r = tuner(reference.path(), freq).run().unwrap();
        let expected = shape(&r);
        let lengths: Vec<usize> = expected.iter().map(|t| t.2.len()).collect();
        assert!(
            lengths.iter().any(|n| *n < 9) && lengths.iter().filter(|n| **n == 9).count() >= 1,
            "ASHA stopped some trials early and let some run to max_t: {lengths:?}"
        );
        let records = std::fs::read_to_string(reference.path().join("exp").join(JOURNAL_FILE))
            .unwrap()
            .lines()
            .count();
        // Full-disk points spread over the whole run.
        let points: Vec<usize> = (1..=24).map(|k| 5 + k * (records - 10) / 24).collect();
        for (k, n) in points.into_iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            fill_up_after(dir.path(), freq, false, n);
            // Every third time the resume fills the disk too (right after its rollbacks,
            // or later), and a second resume finishes.
            if k % 3 == 0 {
                fill_up_after(dir.path(), freq, true, [3, 12, 30][k / 3 % 3]);
            }
            let b = tuner(dir.path(), freq).resume(true).run().unwrap();
            if shape(&b) != expected {
                failed.push((freq, n, records));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "resumed runs that differ from the uninterrupted one, as (checkpoint_freq, records \
         before the disk filled, records of the whole run): {failed:?}"
    );
}

/// With a status tick at every turn of the driver's loop, states are also saved in the
/// middle of trials, holding results that the resume then rolls back to an older
/// checkpoint: when the trial reports them again, the scheduler must not decide on them a
/// second time (ASHA would let a trial it had stopped at a rung run on). The journal's
/// length varies from run to run here, so a fill point past the end of a run only finishes
/// it.
#[test]
fn results_a_saved_state_holds_are_not_decided_on_twice_after_a_resume() {
    let mut failed = Vec::new();
    for freq in [2, 3] {
        let reference = tempfile::tempdir().unwrap();
        let r = tuner(reference.path(), freq).run().unwrap();
        let expected = shape(&r);
        for n in (8..160).step_by(4) {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("exp")).unwrap();
            let inner = FileJournal::open(&dir.path().join("exp").join(JOURNAL_FILE)).unwrap();
            let first = tuner_ticking(dir.path(), freq, Duration::ZERO)
                .journal_store(FillsUp { inner, left: Arc::new(AtomicUsize::new(n)) })
                .run();
            if let Err(err) = first {
                assert!(matches!(err, RunError::Logging { .. }), "{err}");
                let b = tuner_ticking(dir.path(), freq, Duration::ZERO).resume(true).run().unwrap();
                if shape(&b) != expected {
                    failed.push((freq, n));
                }
            }
        }
    }
    assert!(
        failed.is_empty(),
        "resumed runs that differ from the uninterrupted one, as (checkpoint_freq, records \
         before the disk filled): {failed:?}"
    );
}
