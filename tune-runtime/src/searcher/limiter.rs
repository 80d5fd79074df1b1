//! A wrapper that caps how many of a searcher's trials run at once.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Searcher, Suggestion, UnsupportedObjectives};
use crate::metrics::Metrics;
use crate::objectives::Objectives;
use crate::space::Space;
use crate::state::{self, StateError};
use crate::trial::{Key, Mode, TrialId, TrialResult};

/// Caps the number of unfinished trials suggested by the wrapped searcher at `max`
/// (Ray Tune's `ConcurrencyLimiter`): past it, [`Searcher::suggest`] answers
/// [`Suggestion::NotNow`] until one ends. Model-based searchers learn more per trial
/// with fewer trials in flight.
///
/// ```
/// # use tune_runtime::prelude::*;
/// # search_space! { struct Cfg { lr: f64 = loguniform(1e-4, 1e-1) } }
/// let searcher = tune_runtime::searcher::ConcurrencyLimiter::new(tune_runtime::searcher::Tpe::<Cfg>::new(), 4);
/// ```
#[derive(Debug)]
pub struct ConcurrencyLimiter<S> {
    inner: S,
    max: usize,
    live: BTreeSet<TrialId>,
}

impl<S> ConcurrencyLimiter<S> {
    /// Wraps `inner`, allowing at most `max` (at least 1) unfinished trials.
    pub fn new(inner: S, max: usize) -> Self {
        Self { inner, max: max.max(1), live: BTreeSet::new() }
    }

    /// The wrapped searcher.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<C: Space, M: Metrics, S: Searcher<C, M>> Searcher<C, M> for ConcurrencyLimiter<S> {
    fn on_trial_added(&mut self, trial: TrialId, config: &C) {
        self.inner.on_trial_added(trial, config);
    }

    fn setup(&mut self, num_samples: usize, seed: u64) {
        self.live.clear();
        self.inner.setup(num_samples, seed);
    }

    fn set_objective(&mut self, metric: Key<M>, mode: Mode) {
        self.inner.set_objective(metric, mode);
    }

    fn set_objectives(&mut self, objectives: &Objectives<M>) -> Result<(), UnsupportedObjectives> {
        self.inner.set_objectives(objectives)
    }

    fn suggest(&mut self, trial: TrialId) -> Suggestion<C> {
        if self.live.len() >= self.max {
            return Suggestion::NotNow;
        }
        let s = self.inner.suggest(trial);
        if let Suggestion::Config(_) = s {
            self.live.insert(trial);
        }
        s
    }

    fn total_trials(&self) -> Option<usize> {
        self.inner.total_trials()
    }

    fn on_trial_result(&mut self, trial: TrialId, result: &TrialResult<M>) {
        self.inner.on_trial_result(trial, result);
    }

    fn on_trial_complete(&mut self, trial: TrialId, last: Option<&TrialResult<M>>, error: bool) {
        self.live.remove(&trial);
        self.inner.on_trial_complete(trial, last, error);
    }

    fn on_trial_complete_value(&mut self, trial: TrialId, value: Option<f64>) {
        self.live.remove(&trial);
        self.inner.on_trial_complete_value(trial, value);
    }

    fn save_state(&self) -> Value {
        let saved =
            Saved { live: self.live.iter().map(|t| t.0).collect(), inner: self.inner.save_state() };
        state::save("ConcurrencyLimiter", &saved)
    }

    fn restore_state(&mut self, value: Value) -> Result<(), StateError> {
        let saved: Saved = state::load("ConcurrencyLimiter", value)?;
        self.inner.restore_state(saved.inner)?;
        self.live = saved.live.into_iter().map(TrialId).collect();
        Ok(())
    }
}

/// What [`ConcurrencyLimiter`] saves: its unfinished trials and the inner state.
#[derive(Serialize, Deserialize)]
struct Saved {
    live: Vec<u32>,
    inner: Value,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::searcher::Tpe;
    use crate::searcher::test_support::*;

    #[test]
    fn caps_trials_in_flight() {
        let mut s = ConcurrencyLimiter::new(Tpe::<Cont2>::new(), 2);
        let mut run = Run::start(&mut s, 20, 1);
        let mut most = 0;
        loop {
            // Ask for 5 at once; only 2 may be live.
            let more = run.step(&mut s, 5, |c: &Cont2| c.a);
            most = most.max(run.running.len() + 1);
            if !more {
                break;
            }
        }
        assert!(most <= 2, "{most}");
        assert_eq!(run.configs.len(), 20);
        round_trip(|| ConcurrencyLimiter::new(Tpe::<Cond>::new().n_startup(3), 2), cond_loss);
    }
}
