//! ASHA, HyperBand and the median stopping rule end to end: real pausing (in memory and
//! on disk), resumption at the same iteration and state, several trials at once.

use tune_runtime::prelude::*;
use tune_runtime::{
    TrialStatus,
    scheduler::{Asha, HyperBand, MedianStopping, Pausing},
    storage::{JOURNAL_FILE, Record, read_journal},
};

search_space! {
    /// A learning rate and a constant.
    pub struct Curve {
        rate: f64 = uniform(0.05, 1.0),
        delay_ms: u64 = 0,
    }
}

#[derive(Metrics, Debug, Clone)]
pub struct Acc {
    accuracy: f64,
    /// The instance's own step count: equals `training_iteration` only when a paused trial
    /// resumed with its state.
    steps: f64,
}

/// `accuracy` rises towards 1 at a speed set by `rate`: the ranking never changes.
#[trainable(config = Curve, metrics = Acc)]
pub struct Learner {
    steps: u64,
    acc: f64,
    #[checkpoint(skip)]
    rate: f64,
    #[checkpoint(skip)]
    delay_ms: u64,
}

impl Trainable for Learner {
    fn setup(config: &Curve, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Learner { steps: 0, acc: 0.0, rate: config.rate, delay_ms: config.delay_ms })
    }

    fn step(&mut self) -> TrainResult<Acc> {
        if self.delay_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(self.delay_ms));
        }
        self.steps += 1;
        self.acc += self.rate * (1.0 - self.acc) * 0.1;
        Ok(Acc { accuracy: self.acc, steps: self.steps as f64 })
    }
}

fn state_kept(a: &Analysis<Curve, Acc>) {
    for t in a.trials() {
        for r in t.results() {
            assert_eq!(r.get(Acc::STEPS), r.training_iteration() as f64, "trial {}", t.id());
        }
    }
}

fn hyperband(pausing: Pausing) {
    let dir = tempfile::tempdir().unwrap();
    // max_t 9, eta 3: brackets of 9 trials (milestones 1, 3, 9), 5 (3, 9) and 3 (9).
    let hb = HyperBand::builder(Acc::ACCURACY, Mode::Max).max_t(9.0).build().unwrap();
    let a = Tuner::<Learner>::new()
        .num_samples(17)
        .scheduler(hb)
        .pausing(pausing)
        .total_cpus(4.0)
        .local_dir(dir.path())
        .name("hb")
        .seed(3)
        .verbose(0)
        .run()
        .unwrap();
    assert_eq!(a.count(TrialStatus::Terminated), 17);
    state_kept(&a);
    let n: Vec<usize> = a.trials().iter().map(|t| t.num_results()).collect();
    let mut first: Vec<usize> = n[..9].to_vec();
    first.sort_unstable();
    assert_eq!(first, [1, 1, 1, 1, 1, 1, 3, 3, 9], "{n:?}");
    let mut second: Vec<usize> = n[9..14].to_vec();
    second.sort_unstable();
    assert_eq!(second, [3, 3, 3, 3, 9], "{n:?}");
    assert_eq!(&n[14..], [9, 9, 9]);
    // The survivor of each bracket is its fastest learner.
    for range in [0..9, 9..14] {
        let best = range
            .clone()
            .max_by(|x, y| a.trials()[*x].config().rate.total_cmp(&a.trials()[*y].config().rate))
            .unwrap();
        assert_eq!(a.trials()[best].num_results(), 9, "trial {best} of {range:?}");
    }
    let journal = read_journal(&dir.path().join("hb").join(JOURNAL_FILE)).unwrap();
    let paused = journal
        .iter()
        .filter(|r| matches!(r, Record::Status { status: TrialStatus::Paused, .. }))
        .count();
    // Every trial of the first two brackets pauses at its first milestone, the three
    // survivors of the first bracket again at 3 (the last one to arrive goes on at once).
    assert!(paused >= 9 + 5 - 2, "{paused} pauses");
    let checkpoints = journal.iter().filter(|r| matches!(r, Record::Checkpoint { .. })).count();
    match pausing {
        Pausing::Memory => assert_eq!(checkpoints, 0),
        Pausing::Disk => assert_eq!(checkpoints, paused, "one checkpoint per pause to disk"),
        Pausing::Auto { .. } => {
            assert!(checkpoints > 0 && checkpoints < paused, "{checkpoints} of {paused}")
        }
        other => panic!("no expectation for {other:?}"),
    }
}

#[test]
fn hyperband_pauses_in_memory() {
    hyperband(Pausing::Memory);
}

#[test]
fn hyperband_pauses_to_disk_and_resumes_from_checkpoints() {
    hyperband(Pausing::Disk);
}

#[test]
fn hyperband_pauses_beyond_two_in_memory_to_disk() {
    hyperband(Pausing::Auto { max_in_memory: 2 });
}

#[test]
fn asha_stops_early_and_keeps_the_best() {
    let dir = tempfile::tempdir().unwrap();
    let asha = Asha::builder(Acc::ACCURACY, Mode::Max)
        .max_t(27.0)
        .grace_period(1.0)
        .reduction_factor(3.0)
        .build()
        .unwrap();
    let a = Tuner::<Learner>::new()
        .num_samples(16)
        .scheduler(asha)
        .total_cpus(3.0)
        .local_dir(dir.path())
        .name("asha")
        .seed(5)
        .verbose(0)
        .run()
        .unwrap();
    assert_eq!(a.count(TrialStatus::Terminated), 16);
    let total: usize = a.trials().iter().map(|t| t.num_results()).sum();
    assert!(total < 16 * 27 / 2, "ASHA stopped most trials early ({total} results)");
    let best = a.best_trial(Acc::ACCURACY, Mode::Max, Scope::Last).unwrap();
    assert_eq!(best.num_results(), 27, "the fastest learner is never below a cutoff");
    assert!(a.trials().iter().all(|t| t.num_results() <= 27));
}

#[test]
fn median_stopping_pauses_or_stops_below_the_median() {
    for hard in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let rule = MedianStopping::builder(Acc::ACCURACY, Mode::Max)
            .time_attr(Auto::TrainingIteration)
            .grace_period(2.0)
            .min_samples(2)
            .hard_stop(hard)
            .build()
            .unwrap();
        let a = Tuner::<Learner>::new()
            .num_samples(8)
            .scheduler(rule)
            .stop(Stop::iterations(10))
            .total_cpus(2.0)
            .pausing(Pausing::Disk)
            .local_dir(dir.path())
            .name("median")
            .seed(11)
            .verbose(0)
            .run()
            .unwrap();
        assert_eq!(a.count(TrialStatus::Terminated), 8);
        state_kept(&a);
        let short = a.trials().iter().filter(|t| t.num_results() < 10).count();
        if hard {
            assert!(short > 0, "some trial was stopped");
        } else {
            assert_eq!(short, 0, "paused trials resumed and ran to the end");
        }
    }
}

/// Six configs, then "not now" forever: a model-based searcher waiting for results.
struct SixThenWait(usize);

impl tune_runtime::searcher::Searcher<Curve, Acc> for SixThenWait {
    fn suggest(
        &mut self,
        _trial: tune_runtime::TrialId,
    ) -> tune_runtime::searcher::Suggestion<Curve> {
        if self.0 == 6 {
            return tune_runtime::searcher::Suggestion::NotNow;
        }
        self.0 += 1;
        tune_runtime::searcher::Suggestion::Config(Curve { rate: 0.1 * self.0 as f64, delay_ms: 0 })
    }
}

#[test]
fn bohb_variant_halves_when_the_searcher_holds_back() {
    use std::sync::{Arc, Mutex};
    use tune_runtime::scheduler::{BracketEvent, HyperBandForBohb};

    let dir = tempfile::tempdir().unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&events);
    let hb = HyperBandForBohb::builder(Acc::ACCURACY, Mode::Max)
        .max_t(9.0)
        .brackets(1)
        .observer(move |e| log.lock().unwrap().push(*e))
        .build_for_bohb()
        .unwrap();
    let a = Tuner::<Learner>::new()
        .searcher(SixThenWait(0))
        .scheduler(hb)
        .total_cpus(2.0)
        .local_dir(dir.path())
        .name("bohb")
        .verbose(0)
        .run()
        .unwrap();
    assert_eq!(a.count(TrialStatus::Terminated), 6, "no trial is left paused");
    let n: Vec<usize> = a.trials().iter().map(|t| t.num_results()).collect();
    // floor(6 / 3) = 2 go on to 3 (rates 0.6 and 0.5), then the best alone to 9.
    assert_eq!(n, [1, 1, 1, 1, 3, 9]);
    let e = events.lock().unwrap();
    let promoted = e.iter().filter(|e| matches!(e, BracketEvent::Promoted { .. })).count();
    assert_eq!(promoted, 3);
    assert!(e.contains(&BracketEvent::Stopped { trial: a.trials()[0].id() }));
}
