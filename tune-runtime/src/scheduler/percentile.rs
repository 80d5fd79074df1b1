//! Optuna's percentile and threshold pruners as schedulers: stop a trial whose best value
//! so far is worse than a percentile of the finished trials' values at the same step, or
//! whose value leaves fixed bounds.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::rung::percentile;
use super::{Decision, Scheduler, SchedulerError, invalid, signed};
use crate::metrics::Metrics;
use crate::space::Space;
use crate::state::{self, StateError, nonfinite};
use crate::trial::{Auto, Key, Mode, TrialId, TrialResult};

/// When a pruner looks at a trial: from `warmup` on, every `interval` steps.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Schedule {
    warmup: u64,
    interval: u64,
}

impl Schedule {
    fn due(&self, step: u64) -> bool {
        step >= self.warmup && (step - self.warmup).is_multiple_of(self.interval.max(1))
    }
}

/// Stops a trial whose best value so far is worse than the `percentile`-th percentile of
/// the values that finished trials reported at the same step (Optuna's
/// `PercentilePruner`; `percentile(50)` is its `MedianPruner`).
///
/// Steps are the values of the time attribute (`training_iteration` by default). A trial is
/// looked at from step `n_warmup_steps` on, every `interval_steps`, once `n_startup_trials`
/// trials have finished and at least `n_min_trials` of them reported at that step.
/// "Finished" means ended without error and without being stopped by this pruner, as
/// Optuna counts only complete trials. A NaN value is stopped.
///
/// ```
/// use tune_runtime::{Mode, Metric, scheduler::PercentilePruner};
/// # #[derive(Debug, Clone)] struct M { loss: f64 }
/// # impl tune_runtime::Metrics for M { const NAMES: &'static [&'static str] = &["loss"];
/// #     fn value(&self, _: usize) -> f64 { self.loss } }
/// # const LOSS: Metric<M> = Metric::new(0, "loss");
/// let pruner = PercentilePruner::builder(LOSS, Mode::Min).percentile(25.0).build().unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct PercentilePruner<M> {
    metric: Key<M>,
    mode: Mode,
    time_attr: Key<M>,
    percentile: f64,
    startup: usize,
    min_trials: usize,
    schedule: Schedule,
    s: PercentileState,
}

/// What [`PercentilePruner`] saves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct PercentileState {
    /// Running trials: their best score so far (larger is better) and their scores by step.
    #[serde(with = "nonfinite")]
    running: Vec<(u32, Vec<(u64, f64)>)>,
    /// Finished trials' scores at each step, sorted.
    #[serde(with = "nonfinite")]
    finished: Vec<(u64, Vec<f64>)>,
    completed: usize,
    pruned: BTreeSet<u32>,
}

impl<M: Metrics> PercentilePruner<M> {
    /// Options with Optuna's defaults: percentile 50 (the median), 5 startup trials, no
    /// warm-up, every step, at least 1 finished trial at the step; time attribute
    /// `training_iteration`.
    pub fn builder(metric: impl Into<Key<M>>, mode: Mode) -> PercentilePrunerBuilder<M> {
        PercentilePrunerBuilder {
            metric: metric.into(),
            mode,
            time_attr: Key::Auto(Auto::TrainingIteration),
            percentile: 50.0,
            startup: 5,
            min_trials: 1,
            schedule: Schedule { warmup: 0, interval: 1 },
        }
    }
}

/// Options of [`PercentilePruner`].
#[derive(Debug, Clone)]
pub struct PercentilePrunerBuilder<M> {
    metric: Key<M>,
    mode: Mode,
    time_attr: Key<M>,
    percentile: f64,
    startup: usize,
    min_trials: usize,
    schedule: Schedule,
}

impl<M: Metrics> PercentilePrunerBuilder<M> {
    /// The percentile in `[0, 100]`: trials worse than it are stopped (default 50; 25 keeps
    /// only trials in the best quarter).
    pub fn percentile(mut self, p: f64) -> Self {
        self.percentile = p;
        self
    }
    /// Finished trials needed before anything is stopped (default 5).
    pub fn n_startup_trials(mut self, n: usize) -> Self {
        self.startup = n;
        self
    }
    /// Steps before a trial can be stopped (default 0).
    pub fn n_warmup_steps(mut self, n: u64) -> Self {
        self.schedule.warmup = n;
        self
    }
    /// Look at a trial every this many steps after the warm-up (default 1).
    pub fn interval_steps(mut self, n: u64) -> Self {
        self.schedule.interval = n;
        self
    }
    /// Finished trials that must have reported at a step to compare there (default 1).
    pub fn n_min_trials(mut self, n: usize) -> Self {
        self.min_trials = n;
        self
    }
    /// The monotone result field whose values are the steps (default `training_iteration`).
    pub fn time_attr(mut self, key: impl Into<Key<M>>) -> Self {
        self.time_attr = key.into();
        self
    }

    /// Checks the options.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::Invalid`] saying which option to change.
    pub fn build(self) -> Result<PercentilePruner<M>, SchedulerError> {
        const S: &str = "PercentilePruner";
        if !(0.0..=100.0).contains(&self.percentile) {
            return Err(invalid(
                S,
                format!("`percentile({})` must be in [0, 100]", self.percentile),
            ));
        }
        if self.schedule.interval == 0 {
            return Err(invalid(S, "`interval_steps(0)`: use at least 1"));
        }
        if self.min_trials == 0 {
            return Err(invalid(S, "`n_min_trials(0)`: use at least 1"));
        }
        Ok(PercentilePruner {
            metric: self.metric,
            mode: self.mode,
            time_attr: self.time_attr,
            percentile: self.percentile,
            startup: self.startup,
            min_trials: self.min_trials,
            schedule: self.schedule,
            s: PercentileState::default(),
        })
    }
}

impl<M: Metrics> PercentilePruner<M> {
    fn history(&mut self, trial: u32) -> &mut Vec<(u64, f64)> {
        let at = self.s.running.partition_point(|(t, _)| *t < trial);
        if self.s.running.get(at).is_none_or(|(t, _)| *t != trial) {
            self.s.running.insert(at, (trial, Vec::new()));
        }
        &mut self.s.running[at].1
    }
}

impl<C: Space, M: Metrics> Scheduler<C, M> for PercentilePruner<M> {
    fn name(&self) -> &str {
        "PercentilePruner"
    }

    fn on_trial_result(&mut self, trial: TrialId, result: &TrialResult<M>) -> Decision {
        let step = result.get(self.time_attr).max(0.0) as u64;
        let score = signed(self.metric, self.mode, result);
        let (due, started) = (self.schedule.due(step), self.s.completed >= self.startup);
        let h = self.history(trial.0);
        // A trial rolled back to an earlier checkpoint reports its steps again.
        h.retain(|(s, _)| *s < step);
        h.push((step, score));
        let best = h.iter().map(|(_, v)| *v).fold(f64::NEG_INFINITY, f64::max);
        if !due || !started {
            return Decision::Continue;
        }
        if score.is_nan() {
            self.s.pruned.insert(trial.0);
            return Decision::Stop;
        }
        let at = self.s.finished.partition_point(|(s, _)| *s < step);
        let Some((_, sorted)) = self.s.finished.get(at).filter(|(s, _)| *s == step) else {
            return Decision::Continue;
        };
        if sorted.len() < self.min_trials {
            return Decision::Continue;
        }
        match percentile(sorted, 1.0 - self.percentile / 100.0) {
            Some(cut) if best < cut => {
                self.s.pruned.insert(trial.0);
                Decision::Stop
            }
            _ => Decision::Continue,
        }
    }

    fn on_trial_complete(&mut self, trial: TrialId, _last: Option<&TrialResult<M>>, error: bool) {
        let at = self.s.running.partition_point(|(t, _)| *t < trial.0);
        let h = match self.s.running.get(at) {
            Some((t, _)) if *t == trial.0 => self.s.running.remove(at).1,
            _ => Vec::new(),
        };
        if error || self.s.pruned.contains(&trial.0) {
            return;
        }
        self.s.completed += 1;
        for (step, v) in h {
            if v.is_nan() {
                continue;
            }
            let i = self.s.finished.partition_point(|(s, _)| *s < step);
            if self.s.finished.get(i).is_none_or(|(s, _)| *s != step) {
                self.s.finished.insert(i, (step, Vec::new()));
            }
            let vals = &mut self.s.finished[i].1;
            let j = vals.partition_point(|x| *x < v);
            vals.insert(j, v);
        }
    }

    /// Every running trial's values, the finished trials' values by step, how many
    /// finished, and the trials it stopped.
    fn save_state(&self) -> serde_json::Value {
        state::save("PercentilePruner", &self.s)
    }

    fn restore_state(&mut self, value: serde_json::Value) -> Result<(), StateError> {
        self.s = state::load("PercentilePruner", value)?;
        Ok(())
    }
}

/// Stops a trial whose value falls below `lower` or above `upper`, or is NaN (Optuna's
/// `ThresholdPruner`), from step `n_warmup_steps` on, every `interval_steps` steps.
///
/// ```
/// use tune_runtime::{Metric, scheduler::ThresholdPruner};
/// # #[derive(Debug, Clone)] struct M { loss: f64 }
/// # impl tune_runtime::Metrics for M { const NAMES: &'static [&'static str] = &["loss"];
/// #     fn value(&self, _: usize) -> f64 { self.loss } }
/// # const LOSS: Metric<M> = Metric::new(0, "loss");
/// // A diverging loss ends the trial.
/// let pruner = ThresholdPruner::builder(LOSS).upper(10.0).build().unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct ThresholdPruner<M> {
    metric: Key<M>,
    time_attr: Key<M>,
    lower: f64,
    upper: f64,
    schedule: Schedule,
}

/// Options of [`ThresholdPruner`].
#[derive(Debug, Clone)]
pub struct ThresholdPrunerBuilder<M>(ThresholdPruner<M>);

impl<M: Metrics> ThresholdPruner<M> {
    /// Options: no bound yet (NaN values are stopped), no warm-up, every step.
    pub fn builder(metric: impl Into<Key<M>>) -> ThresholdPrunerBuilder<M> {
        ThresholdPrunerBuilder(ThresholdPruner {
            metric: metric.into(),
            time_attr: Key::Auto(Auto::TrainingIteration),
            lower: f64::NEG_INFINITY,
            upper: f64::INFINITY,
            schedule: Schedule { warmup: 0, interval: 1 },
        })
    }
}

impl<M: Metrics> ThresholdPrunerBuilder<M> {
    /// Values below this stop the trial.
    pub fn lower(mut self, bound: f64) -> Self {
        self.0.lower = bound;
        self
    }
    /// Values above this stop the trial.
    pub fn upper(mut self, bound: f64) -> Self {
        self.0.upper = bound;
        self
    }
    /// Steps before a trial can be stopped (default 0).
    pub fn n_warmup_steps(mut self, n: u64) -> Self {
        self.0.schedule.warmup = n;
        self
    }
    /// Look at a trial every this many steps after the warm-up (default 1).
    pub fn interval_steps(mut self, n: u64) -> Self {
        self.0.schedule.interval = n;
        self
    }
    /// The monotone result field whose values are the steps (default `training_iteration`).
    pub fn time_attr(mut self, key: impl Into<Key<M>>) -> Self {
        self.0.time_attr = key.into();
        self
    }

    /// Checks the options.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::Invalid`] when `lower > upper` or `interval_steps(0)`.
    pub fn build(self) -> Result<ThresholdPruner<M>, SchedulerError> {
        let p = self.0;
        if p.lower.is_nan() || p.upper.is_nan() || p.lower > p.upper {
            return Err(invalid(
                "ThresholdPruner",
                format!("`lower({})` must not be above `upper({})`", p.lower, p.upper),
            ));
        }
        if p.schedule.interval == 0 {
            return Err(invalid("ThresholdPruner", "`interval_steps(0)`: use at least 1"));
        }
        Ok(p)
    }
}

impl<C: Space, M: Metrics> Scheduler<C, M> for ThresholdPruner<M> {
    fn name(&self) -> &str {
        "ThresholdPruner"
    }

    fn on_trial_result(&mut self, _trial: TrialId, result: &TrialResult<M>) -> Decision {
        let step = result.get(self.time_attr).max(0.0) as u64;
        if !self.schedule.due(step) {
            return Decision::Continue;
        }
        let v = result.get(self.metric);
        if v.is_nan() || v < self.lower || v > self.upper {
            Decision::Stop
        } else {
            Decision::Continue
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testing::{Cfg, SCORE, Score, result};

    type S = dyn Scheduler<Cfg, Score>;

    fn feed(s: &mut S, t: u32, it: u64, v: f64) -> Decision {
        s.on_trial_result(TrialId(t), &result(t, it, v))
    }

    fn finish(s: &mut S, t: u32, values: &[f64]) {
        for (i, v) in values.iter().enumerate() {
            feed(s, t, i as u64 + 1, *v);
        }
        s.on_trial_complete(TrialId(t), None, false);
    }

    #[test]
    fn stops_trials_worse_than_the_percentile_of_finished_ones() {
        let mut p = PercentilePruner::builder(SCORE, Mode::Min)
            .percentile(25.0)
            .n_startup_trials(4)
            .build()
            .unwrap();
        let s: &mut S = &mut p;
        for (t, base) in [(0, 1.0), (1, 2.0), (2, 3.0)] {
            finish(s, t, &[base, base]);
        }
        assert_eq!(feed(s, 9, 1, 100.0), Decision::Continue, "3 of 4 startup trials");
        finish(s, 3, &[4.0, 4.0]);
        // Losses at step 1: 1, 2, 3, 4: the 25th percentile is 1.75.
        assert_eq!(feed(s, 4, 1, 1.5), Decision::Continue);
        assert_eq!(feed(s, 5, 1, 1.8), Decision::Stop);
        // Its best value so far counts: 1.5 at step 1 keeps trial 4 at step 2.
        assert_eq!(feed(s, 4, 2, 9.0), Decision::Continue);
        assert_eq!(feed(s, 6, 1, f64::NAN), Decision::Stop);
        // Stopped trials do not join the finished ones.
        s.on_trial_complete(TrialId(5), None, false);
        let saved = s.save_state();
        let mut q = PercentilePruner::builder(SCORE, Mode::Min)
            .percentile(25.0)
            .n_startup_trials(4)
            .build()
            .unwrap();
        let r: &mut S = &mut q;
        r.restore_state(serde_json::from_str(&serde_json::to_string(&saved).unwrap()).unwrap())
            .unwrap();
        assert_eq!(r.save_state(), saved);
        assert_eq!(feed(r, 7, 2, 1.9), Decision::Stop);
        assert_eq!(feed(s, 7, 2, 1.9), Decision::Stop);
        let e = PercentilePruner::builder(SCORE, Mode::Min).percentile(120.0).build().unwrap_err();
        assert!(e.to_string().contains("[0, 100]"), "{e}");
    }

    #[test]
    fn threshold_bounds_after_the_warm_up() {
        let mut p = ThresholdPruner::builder(SCORE)
            .lower(0.0)
            .upper(5.0)
            .n_warmup_steps(2)
            .build()
            .unwrap();
        let s: &mut S = &mut p;
        assert_eq!(feed(s, 0, 1, 50.0), Decision::Continue, "warm-up");
        assert_eq!(feed(s, 0, 2, 4.0), Decision::Continue);
        assert_eq!(feed(s, 0, 3, 5.5), Decision::Stop);
        assert_eq!(feed(s, 1, 3, -1.0), Decision::Stop);
        assert_eq!(feed(s, 2, 3, f64::NAN), Decision::Stop);
        let e = ThresholdPruner::builder(SCORE).lower(2.0).upper(1.0).build().unwrap_err();
        assert!(e.to_string().contains("must not be above"), "{e}");
    }
}
