//! Optuna's `PatientPruner` as a scheduler: tolerate a trial that stops improving for
//! `patience` steps, then let a wrapped scheduler (or nothing) decide.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Decision, Exploit, FifoScheduler, Scheduler, SchedulerError, invalid, signed};
use crate::metrics::Metrics;
use crate::space::Space;
use crate::state::{self, StateError, nonfinite};
use crate::trial::{Key, Mode, TrialId, TrialResult};

/// Stops only trials that have not improved (by more than `min_delta`) over their last
/// `patience` steps, and of those only the ones the wrapped scheduler would stop (Optuna's
/// `PatientPruner`). Alone ([`Patient::alone`]) it stops every trial that stagnates.
///
/// The wrapped scheduler sees every result as usual, so its records stay whole; its
/// answer is followed only for a stagnating trial. Wrap schedulers that stop trials
/// ([`PercentilePruner`](crate::scheduler::PercentilePruner), [`ThresholdPruner`](crate::scheduler::ThresholdPruner),
/// [`WilcoxonPruner`](crate::scheduler::WilcoxonPruner), [`MedianStopping`](crate::scheduler::MedianStopping),
/// [`Asha`](crate::scheduler::Asha)); one that pauses trials (HyperBand) needs its pauses followed
/// and is not meant to be wrapped.
///
/// ```
/// use tune_runtime::{Mode, Metric, scheduler::{Patient, PercentilePruner}};
/// # #[derive(Debug, Clone)] struct M { loss: f64 }
/// # impl tune_runtime::Metrics for M { const NAMES: &'static [&'static str] = &["loss"];
/// #     fn value(&self, _: usize) -> f64 { self.loss } }
/// # const LOSS: Metric<M> = Metric::new(0, "loss");
/// let median = PercentilePruner::builder(LOSS, Mode::Min).build().unwrap();
/// let patient = Patient::wrap(median, LOSS, Mode::Min, 3).min_delta(1e-3).build().unwrap();
/// ```
#[derive(Debug)]
pub struct Patient<M, S> {
    metric: Key<M>,
    mode: Mode,
    patience: usize,
    min_delta: f64,
    inner: Option<S>,
    /// Every running trial's scores (larger is better), in step order.
    trials: Vec<(u32, Vec<f64>)>,
}

/// Options of [`Patient`].
#[derive(Debug)]
pub struct PatientBuilder<M, S>(Patient<M, S>);

impl<M: Metrics, S> Patient<M, S> {
    /// Stops a trial that stagnates for `patience` steps only if `inner` would stop it.
    pub fn wrap(
        inner: S,
        metric: impl Into<Key<M>>,
        mode: Mode,
        patience: usize,
    ) -> PatientBuilder<M, S> {
        PatientBuilder(Patient {
            metric: metric.into(),
            mode,
            patience,
            min_delta: 0.0,
            inner: Some(inner),
            trials: Vec::new(),
        })
    }

    /// Whether the trial's best over its last `patience + 1` results is no better than
    /// its best before them (plus `min_delta`).
    fn stagnates(&self, scores: &[f64]) -> bool {
        if scores.len() <= self.patience + 1 {
            return false;
        }
        let cut = scores.len() - self.patience - 1;
        let best =
            |v: &[f64]| v.iter().copied().filter(|x| !x.is_nan()).fold(f64::NEG_INFINITY, f64::max);
        best(&scores[..cut]) + self.min_delta > best(&scores[cut..])
    }
}

impl<M: Metrics> Patient<M, FifoScheduler> {
    /// Stops every trial that stagnates for `patience` steps.
    pub fn alone(
        metric: impl Into<Key<M>>,
        mode: Mode,
        patience: usize,
    ) -> PatientBuilder<M, FifoScheduler> {
        let mut b = Self::wrap(FifoScheduler, metric, mode, patience);
        b.0.inner = None;
        b
    }
}

impl<M: Metrics, S> PatientBuilder<M, S> {
    /// An improvement smaller than this does not count (default 0).
    pub fn min_delta(mut self, delta: f64) -> Self {
        self.0.min_delta = delta;
        self
    }

    /// Checks the options.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::Invalid`] when `min_delta` is negative or not a number.
    pub fn build(self) -> Result<Patient<M, S>, SchedulerError> {
        if !(self.0.min_delta >= 0.0 && self.0.min_delta.is_finite()) {
            return Err(invalid(
                "Patient",
                format!("`min_delta({})` must be >= 0", self.0.min_delta),
            ));
        }
        Ok(self.0)
    }
}

/// What [`Patient`] saves: the trials' scores and the wrapped scheduler's state.
#[derive(Serialize, Deserialize)]
struct Saved {
    #[serde(with = "nonfinite")]
    trials: Vec<(u32, Vec<f64>)>,
    inner: Value,
}

impl<C: Space, M: Metrics, S: Scheduler<C, M>> Scheduler<C, M> for Patient<M, S> {
    fn name(&self) -> &str {
        "PatientPruner"
    }
    fn setup(&mut self, seed: u64) {
        if let Some(s) = &mut self.inner {
            s.setup(seed);
        }
    }
    fn on_trial_add(&mut self, trial: TrialId, config: &C) {
        if let Some(s) = &mut self.inner {
            s.on_trial_add(trial, config);
        }
    }
    fn on_trial_result(&mut self, trial: TrialId, result: &TrialResult<M>) -> Decision {
        let inner = self.inner.as_mut().map(|s| s.on_trial_result(trial, result));
        let score = signed(self.metric, self.mode, result);
        let at = self.trials.partition_point(|(t, _)| *t < trial.0);
        if self.trials.get(at).is_none_or(|(t, _)| *t != trial.0) {
            self.trials.insert(at, (trial.0, Vec::new()));
        }
        self.trials[at].1.push(score);
        if !self.stagnates(&self.trials[at].1) {
            return Decision::Continue;
        }
        match inner {
            None => Decision::Stop,
            Some(Decision::Stop) => Decision::Stop,
            Some(_) => Decision::Continue,
        }
    }
    fn on_trial_complete(&mut self, trial: TrialId, last: Option<&TrialResult<M>>, error: bool) {
        if let Some(s) = &mut self.inner {
            s.on_trial_complete(trial, last, error);
        }
        self.trials.retain(|(t, _)| *t != trial.0);
    }
    fn on_no_more_trials(&mut self) {
        if let Some(s) = &mut self.inner {
            s.on_no_more_trials();
        }
    }
    fn take_stops(&mut self, out: &mut Vec<TrialId>) {
        if let Some(s) = &mut self.inner {
            s.take_stops(out);
        }
    }
    fn take_exploit(&mut self, trial: TrialId) -> Option<Exploit<C>> {
        self.inner.as_mut().and_then(|s| s.take_exploit(trial))
    }
    fn save_state(&self) -> Value {
        let inner = self.inner.as_ref().map_or(Value::Null, |s| s.save_state());
        state::save("PatientPruner", &Saved { trials: self.trials.clone(), inner })
    }
    fn restore_state(&mut self, value: Value) -> Result<(), StateError> {
        let saved: Saved = state::load("PatientPruner", value)?;
        if let (Some(s), false) = (&mut self.inner, saved.inner.is_null()) {
            s.restore_state(saved.inner)?;
        }
        self.trials = saved.trials;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::scheduler::ThresholdPruner;
    use crate::testing::{Cfg, SCORE, Score, result};

    type S = dyn Scheduler<Cfg, Score>;

    fn feed(s: &mut S, t: u32, it: u64, v: f64) -> Decision {
        s.on_trial_result(TrialId(t), &result(t, it, v))
    }

    #[test]
    fn stops_after_patience_steps_without_improvement() {
        let mut p = Patient::alone(SCORE, Mode::Min, 2).min_delta(0.1).build().unwrap();
        let s: &mut S = &mut p;
        // Losses 5, 4, 4.05, 4.02, 4.01: the best of the last three is not 0.1 better than
        // the best before them.
        assert_eq!(feed(s, 0, 1, 5.0), Decision::Continue);
        assert_eq!(feed(s, 0, 2, 4.0), Decision::Continue);
        assert_eq!(feed(s, 0, 3, 4.05), Decision::Continue, "too few results");
        assert_eq!(feed(s, 0, 4, 4.02), Decision::Continue, "4 is 1 better than 5");
        assert_eq!(feed(s, 0, 5, 4.01), Decision::Stop, "4.01 is not 0.1 better than 4");
    }

    #[test]
    fn wrapped_scheduler_decides_for_stagnating_trials() {
        let bound = ThresholdPruner::builder(SCORE).upper(10.0).build().unwrap();
        let mut p = Patient::wrap(bound, SCORE, Mode::Min, 1).build().unwrap();
        let s: &mut S = &mut p;
        // Improving above the bound: the threshold would stop it, patience does not.
        assert_eq!(feed(s, 0, 1, 30.0), Decision::Continue);
        assert_eq!(feed(s, 0, 2, 20.0), Decision::Continue);
        assert_eq!(feed(s, 0, 3, 12.0), Decision::Continue);
        // Stagnating below the bound: patience would stop it, the threshold does not.
        for (it, v) in [(1, 5.0), (2, 5.0), (3, 5.0)] {
            assert_eq!(feed(s, 1, it, v), Decision::Continue);
        }
        // Stagnating and above the bound.
        assert_eq!(feed(s, 0, 4, 12.0), Decision::Continue, "12 vs best before 20: improved");
        assert_eq!(feed(s, 0, 5, 13.0), Decision::Continue, "13 vs 12: equal best, not worse");
        assert_eq!(feed(s, 0, 6, 14.0), Decision::Stop);
        let saved = s.save_state();
        let mut q = Patient::wrap(
            ThresholdPruner::builder(SCORE).upper(10.0).build().unwrap(),
            SCORE,
            Mode::Min,
            1,
        )
        .build()
        .unwrap();
        (&mut q as &mut S).restore_state(saved.clone()).unwrap();
        assert_eq!((&q as &S).save_state(), saved);
        assert!(Patient::alone(SCORE, Mode::Min, 1).min_delta(-1.0).build().is_err());
    }
}
