//! Optuna's `WilcoxonPruner` as a scheduler: for trials whose steps are folds or problem
//! instances, stop a trial that the Wilcoxon signed-rank test finds worse than the best.

use serde::{Deserialize, Serialize};

use super::{Decision, Scheduler, SchedulerError, invalid, signed};
use crate::metrics::Metrics;
use crate::searcher::unit::norm_cdf;
use crate::space::Space;
use crate::state::{self, StateError, nonfinite};
use crate::trial::{Auto, Key, Mode, TrialId, TrialResult};

/// Stops a trial when a one-sided Wilcoxon signed-rank test over the steps it shares with
/// the best finished trial says it is worse with p-value below `p_threshold` (Optuna's
/// `WilcoxonPruner`), unless its mean over its steps is at least as good as the best
/// trial's mean over all of its steps.
///
/// Meant for trials whose step `k` evaluates instance or fold `k` (each result is that
/// fold's value, the steps are the time attribute's values): trials are compared pair by
/// pair on the same folds. The best trial is the finished one (ended without error and not
/// stopped by this pruner) with the best mean value. At least `n_startup_steps` shared
/// steps (and 2) are needed. Non-finite values are never stopped on.
///
/// ```
/// use tune_runtime::{Mode, Metric, scheduler::WilcoxonPruner};
/// # #[derive(Debug, Clone)] struct M { error: f64 }
/// # impl tune_runtime::Metrics for M { const NAMES: &'static [&'static str] = &["error"];
/// #     fn value(&self, _: usize) -> f64 { self.error } }
/// # const ERROR: Metric<M> = Metric::new(0, "error");
/// let pruner = WilcoxonPruner::builder(ERROR, Mode::Min).p_threshold(0.1).build().unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct WilcoxonPruner<M> {
    metric: Key<M>,
    mode: Mode,
    time_attr: Key<M>,
    p_threshold: f64,
    startup: usize,
    s: WilcoxonState,
}

/// What [`WilcoxonPruner`] saves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct WilcoxonState {
    /// Running trials' scores (larger is better) by step.
    #[serde(with = "nonfinite")]
    running: Vec<(u32, Vec<(u64, f64)>)>,
    /// The best finished trial's scores by step, and its mean.
    #[serde(with = "nonfinite")]
    best: Option<(u32, Vec<(u64, f64)>)>,
    pruned: Vec<u32>,
}

/// Options of [`WilcoxonPruner`].
#[derive(Debug, Clone)]
pub struct WilcoxonPrunerBuilder<M>(WilcoxonPruner<M>);

impl<M: Metrics> WilcoxonPruner<M> {
    /// Options with Optuna's defaults: `p_threshold` 0.1, 2 startup steps; the steps are
    /// `training_iteration`.
    pub fn builder(metric: impl Into<Key<M>>, mode: Mode) -> WilcoxonPrunerBuilder<M> {
        WilcoxonPrunerBuilder(WilcoxonPruner {
            metric: metric.into(),
            mode,
            time_attr: Key::Auto(Auto::TrainingIteration),
            p_threshold: 0.1,
            startup: 2,
            s: WilcoxonState::default(),
        })
    }
}

impl<M: Metrics> WilcoxonPrunerBuilder<M> {
    /// Stop when the test's p-value falls below this, in `(0, 1)` (default 0.1).
    pub fn p_threshold(mut self, p: f64) -> Self {
        self.0.p_threshold = p;
        self
    }
    /// Shared steps needed before testing (default 2).
    pub fn n_startup_steps(mut self, n: usize) -> Self {
        self.0.startup = n;
        self
    }
    /// The result field whose values are the steps (default `training_iteration`).
    pub fn time_attr(mut self, key: impl Into<Key<M>>) -> Self {
        self.0.time_attr = key.into();
        self
    }
    /// Checks the options.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::Invalid`] when `p_threshold` is outside `(0, 1)`.
    pub fn build(self) -> Result<WilcoxonPruner<M>, SchedulerError> {
        let p = self.0.p_threshold;
        if !(p > 0.0 && p < 1.0) {
            return Err(invalid("WilcoxonPruner", format!("`p_threshold({p})` must be in (0, 1)")));
        }
        Ok(self.0)
    }
}

fn mean(v: &[(u64, f64)]) -> f64 {
    v.iter().map(|x| x.1).sum::<f64>() / v.len().max(1) as f64
}

/// One-sided p-value of the Wilcoxon signed-rank test that the differences `d` are
/// centred above 0, with zero differences split between the signs (scipy's
/// `zero_method="zsplit"`; tied differences share their mean rank): from the exact null
/// distribution of the rank sum for at most 50 differences, at the rank sum rounded down
/// (what scipy 1.17's `method="auto"` gives), else the normal approximation with the tie
/// correction.
pub(crate) fn wilcoxon_greater(d: &[f64]) -> f64 {
    let n = d.len();
    if n == 0 {
        return 1.0;
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|a, b| d[*a].abs().total_cmp(&d[*b].abs()));
    let mut ranks = vec![0.0; n];
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && d[idx[j + 1]].abs() == d[idx[i]].abs() {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            ranks[idx[k]] = r;
        }
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        i = j + 1;
    }
    let r_plus: f64 = (0..n)
        .map(|k| {
            if d[k] > 0.0 {
                ranks[k]
            } else if d[k] == 0.0 {
                ranks[k] / 2.0
            } else {
                0.0
            }
        })
        .sum();
    let nf = n as f64;
    if n <= 50 {
        // counts[s] = number of sign patterns with positive rank sum s.
        let total = n * (n + 1) / 2;
        let mut counts = vec![0f64; total + 1];
        counts[0] = 1.0;
        for r in 1..=n {
            for s in (r..=total).rev() {
                counts[s] += counts[s - r];
            }
        }
        let from = r_plus.floor() as usize;
        let tail: f64 = counts[from.min(total + 1)..].iter().sum();
        return tail / 2f64.powi(n as i32);
    }
    let mean = nf * (nf + 1.0) / 4.0;
    let var = nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0 - tie_term / 48.0;
    if var <= 0.0 {
        return 1.0;
    }
    1.0 - norm_cdf((r_plus - mean) / var.sqrt())
}

impl<C: Space, M: Metrics> Scheduler<C, M> for WilcoxonPruner<M> {
    fn name(&self) -> &str {
        "WilcoxonPruner"
    }

    fn on_trial_result(&mut self, trial: TrialId, result: &TrialResult<M>) -> Decision {
        let step = result.get(self.time_attr).max(0.0) as u64;
        let score = signed(self.metric, self.mode, result);
        let at = self.s.running.partition_point(|(t, _)| *t < trial.0);
        if self.s.running.get(at).is_none_or(|(t, _)| *t != trial.0) {
            self.s.running.insert(at, (trial.0, Vec::new()));
        }
        let mine = &mut self.s.running[at].1;
        mine.retain(|(s, _)| *s != step);
        mine.push((step, score));
        let mine = &self.s.running[at].1;
        let Some((_, best)) = &self.s.best else { return Decision::Continue };
        if mine.iter().chain(best.iter()).any(|(_, v)| !v.is_finite()) {
            return Decision::Continue;
        }
        // Larger is better: positive differences mean this trial is worse.
        let d: Vec<f64> = mine
            .iter()
            .filter_map(|(s, v)| best.iter().find(|(b, _)| b == s).map(|(_, b)| b - v))
            .collect();
        if d.len() < self.startup.max(2) {
            return Decision::Continue;
        }
        let p = wilcoxon_greater(&d);
        if p < self.p_threshold && mean(mine) < mean(best) {
            self.s.pruned.push(trial.0);
            Decision::Stop
        } else {
            Decision::Continue
        }
    }

    fn on_trial_complete(&mut self, trial: TrialId, _last: Option<&TrialResult<M>>, error: bool) {
        let at = self.s.running.partition_point(|(t, _)| *t < trial.0);
        let Some((t, _)) = self.s.running.get(at) else { return };
        if *t != trial.0 {
            return;
        }
        let (_, h) = self.s.running.remove(at);
        if error || self.s.pruned.contains(&trial.0) || h.is_empty() {
            return;
        }
        if self.s.best.as_ref().is_none_or(|(_, b)| mean(&h) > mean(b)) {
            self.s.best = Some((trial.0, h));
        }
    }

    fn save_state(&self) -> serde_json::Value {
        state::save("WilcoxonPruner", &self.s)
    }

    fn restore_state(&mut self, value: serde_json::Value) -> Result<(), StateError> {
        self.s = state::load("WilcoxonPruner", value)?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testing::{Cfg, SCORE, Score, result};

    #[test]
    fn p_values_match_scipy() {
        // scipy.stats.wilcoxon(d, alternative="greater", zero_method="zsplit").pvalue
        assert!((wilcoxon_greater(&[1.0, 2.0, 3.0, 4.0, 5.0]) - 0.03125).abs() < 1e-12);
        assert!((wilcoxon_greater(&[1.0, -2.0, 3.0, 4.0, 5.0]) - 0.09375).abs() < 1e-12);
        assert!((wilcoxon_greater(&[-1.0, -2.0, -3.0]) - 1.0).abs() < 1e-12);
        assert!((wilcoxon_greater(&[1.0, 1.0, 2.0, 2.0, 3.0, 0.5]) - 0.015_625).abs() < 1e-12);
        assert!((wilcoxon_greater(&[1.0, 0.0, 2.0, 3.0, 4.0, 5.0]) - 0.031_25).abs() < 1e-12);
        // 60 differences: the normal approximation (scipy: 0.00828).
        let d: Vec<f64> =
            (0..60).map(|i| if i % 3 == 0 { -(i as f64) } else { i as f64 }).collect();
        let p = wilcoxon_greater(&d);
        assert!((p - 0.008_28).abs() < 5e-4, "{p}");
    }

    #[test]
    fn stops_a_trial_worse_on_the_same_folds() {
        let mut w = WilcoxonPruner::builder(SCORE, Mode::Min).build().unwrap();
        let s: &mut dyn Scheduler<Cfg, Score> = &mut w;
        let folds = [0.30, 0.25, 0.40, 0.35, 0.28, 0.33];
        for (k, v) in folds.iter().enumerate() {
            s.on_trial_result(TrialId(0), &result(0, k as u64 + 1, *v));
        }
        s.on_trial_complete(TrialId(0), None, false);
        // Trial 1 is 0.05 worse on every fold: after 4 folds p = 1/16 < 0.1.
        let mut out = Vec::new();
        for (k, v) in folds.iter().enumerate().take(4) {
            out.push(s.on_trial_result(TrialId(1), &result(1, k as u64 + 1, v + 0.05)));
        }
        assert_eq!(out[..3], [Decision::Continue; 3], "p = 1/8 after three folds");
        assert_eq!(out[3], Decision::Stop);
        // Trial 2 is better on every fold: never stopped, and it becomes the best.
        for (k, v) in folds.iter().enumerate() {
            let d = s.on_trial_result(TrialId(2), &result(2, k as u64 + 1, v - 0.05));
            assert_eq!(d, Decision::Continue);
        }
        let saved = s.save_state();
        let mut v = WilcoxonPruner::builder(SCORE, Mode::Min).build().unwrap();
        (&mut v as &mut dyn Scheduler<Cfg, Score>).restore_state(saved.clone()).unwrap();
        assert_eq!((&v as &dyn Scheduler<Cfg, Score>).save_state(), saved);
        assert!(WilcoxonPruner::builder(SCORE, Mode::Min).p_threshold(1.5).build().is_err());
    }
}
