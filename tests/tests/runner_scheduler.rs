//! Schedulers and searchers plug into the runner: pause/resume, early stop, "not now".
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;

use support::{Cfg, Score, Toy, new_probe, overrides};
use tune_runtime::{
    Stop, TrialId, TrialResult, TrialStatus, Tuner,
    scheduler::{Decision, Scheduler},
    searcher::{Searcher, Suggestion},
};

/// Pauses every trial once at iteration 2; stops trial 0 at iteration 3.
#[derive(Default)]
struct PauseOnce {
    paused: HashSet<TrialId>,
    resumed: Vec<TrialId>,
}

impl Scheduler<Cfg, Score> for PauseOnce {
    fn name(&self) -> &str {
        "PauseOnce"
    }
    fn on_trial_result(&mut self, trial: TrialId, result: &TrialResult<Score>) -> Decision {
        if trial.index() == 0 && result.training_iteration == 3 {
            return Decision::Stop;
        }
        if result.training_iteration == 2 && self.paused.insert(trial) {
            return Decision::Pause;
        }
        Decision::Continue
    }
    fn choose_trial_to_run(&mut self, pending: &[TrialId], paused: &[TrialId]) -> Option<TrialId> {
        // Prefer resuming paused trials.
        let pick = paused.first().or(pending.first()).copied();
        if let Some(p) = pick.filter(|p| paused.contains(p)) {
            self.resumed.push(p);
        }
        pick
    }
}

#[test]
fn paused_trials_resume_with_their_state() {
    let (tag, probe) = new_probe();
    let dir = tempfile::tempdir().unwrap();
    let a = Tuner::<Toy>::new()
        .local_dir(dir.path())
        .name("exp")
        .verbose(0)
        .total_cpus(1.0)
        .scheduler(PauseOnce::default())
        .stop(Stop::iterations(5))
        .config_overrides_json(overrides(tag, ""))
        .run()
        .unwrap();
    assert_eq!(a.count(TrialStatus::Terminated), 3);
    let n: Vec<usize> = a.trials().iter().map(|t| t.num_results()).collect();
    assert_eq!(n, [3, 5, 5], "trial 0 stopped by the scheduler, others ran to the end");
    for t in a.trials() {
        let seen: Vec<f64> = t.results().map(|r| r.get(support::ITER_SEEN)).collect();
        let expected: Vec<f64> = (1..=t.num_results()).map(|i| i as f64).collect();
        assert_eq!(seen, expected, "the paused instance kept its state");
    }
    assert_eq!(probe.setups.load(std::sync::atomic::Ordering::SeqCst), 3);
    let journal =
        std::fs::read_to_string(dir.path().join("exp").join(tune_runtime::storage::JOURNAL_FILE))
            .unwrap();
    assert_eq!(journal.matches("\"status\":\"PAUSED\"").count(), 3);
}

/// Suggests three fixed configs, saying "not now" until the previous trial has ended.
struct OneAtATime {
    left: Vec<f64>,
    busy: bool,
    completed: usize,
}

impl Searcher<Cfg, Score> for OneAtATime {
    fn suggest(&mut self, _trial: TrialId) -> Suggestion<Cfg> {
        if self.busy {
            return Suggestion::NotNow;
        }
        match self.left.pop() {
            Some(x) => {
                self.busy = true;
                let mut c = Cfg::base(x, 1);
                c.tag = 0;
                Suggestion::Config(c)
            }
            None => Suggestion::Finished,
        }
    }
    fn on_trial_complete(
        &mut self,
        _trial: TrialId,
        last: Option<&TrialResult<Score>>,
        error: bool,
    ) {
        assert!(last.is_some() && !error);
        self.busy = false;
        self.completed += 1;
    }
}

#[test]
fn searchers_can_answer_not_now() {
    let dir = tempfile::tempdir().unwrap();
    let a = Tuner::<Toy>::new()
        .local_dir(dir.path())
        .name("exp")
        .verbose(0)
        .total_cpus(4.0)
        .searcher(OneAtATime { left: vec![0.1, 0.2, 0.3], busy: false, completed: 0 })
        .stop(Stop::iterations(2))
        .run()
        .unwrap();
    let xs: Vec<f64> = a.trials().iter().map(|t| t.config().x).collect();
    assert_eq!(xs, [0.3, 0.2, 0.1]);
    assert_eq!(a.count(TrialStatus::Terminated), 3);
}
