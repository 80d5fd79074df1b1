//! The median stopping rule (Golovin et al. 2017, Google Vizier), as in Ray Tune's
//! `MedianStoppingRule`.

use serde::{Deserialize, Serialize};

use super::{Decision, Scheduler, SchedulerError, invalid, signed};
use crate::metrics::Metrics;
use crate::space::Space;
use crate::state::{self, StateError, nonfinite};
use crate::trial::{Auto, Key, Mode, TrialId, TrialResult};

/// A trial's results: times (monotone) and prefix sums of its scores.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct History {
    #[serde(with = "nonfinite")]
    times: Vec<f64>,
    /// `sums[i]` = sum of the first `i` scores (larger is better).
    #[serde(with = "nonfinite")]
    sums: Vec<f64>,
    #[serde(with = "nonfinite")]
    best: f64,
    stopped: bool,
}

impl History {
    fn last_time(&self) -> f64 {
        self.times.last().copied().unwrap_or(f64::NEG_INFINITY)
    }

    /// Mean score of the results with `grace <= time <= until`.
    fn running_mean(&self, grace: f64, until: f64) -> Option<f64> {
        let a = self.times.partition_point(|t| *t < grace);
        let b = self.times.partition_point(|t| *t <= until);
        (b > a).then(|| (self.sums[b] - self.sums[a]) / (b - a) as f64)
    }
}

/// Stops (or pauses) a trial whose best result so far is worse than the median of the
/// other trials' running means up to the same time.
///
/// Once a trial's time attribute reaches `grace_period`, and at least `min_samples`
/// other trials have results that far, its best score is compared with the median of
/// their mean scores over `[grace_period, now]`. Below it, the trial is stopped
/// (`hard_stop`, the default) or paused; a paused trial may resume when resources are
/// free and nothing else waits, and then runs to its end.
#[derive(Debug, Clone)]
pub struct MedianStopping<M> {
    metric: Key<M>,
    mode: Mode,
    time_attr: Key<M>,
    grace_period: f64,
    min_samples: usize,
    hard_stop: bool,
    trials: Vec<History>,
    scratch: Vec<f64>,
}

/// Options of [`MedianStopping`].
#[derive(Debug, Clone)]
pub struct MedianStoppingBuilder<M> {
    metric: Key<M>,
    mode: Mode,
    time_attr: Key<M>,
    grace_period: f64,
    min_samples: usize,
    hard_stop: bool,
}

impl<M: Metrics> MedianStopping<M> {
    /// Options with the defaults: time attribute `time_total_s`, grace period 60 (s),
    /// 3 samples, hard stop.
    pub fn builder(metric: impl Into<Key<M>>, mode: Mode) -> MedianStoppingBuilder<M> {
        MedianStoppingBuilder {
            metric: metric.into(),
            mode,
            time_attr: Key::Auto(Auto::TimeTotalS),
            grace_period: 60.0,
            min_samples: 3,
            hard_stop: true,
        }
    }

    fn history(&mut self, trial: TrialId) -> &mut History {
        let i = trial.index();
        if self.trials.len() <= i {
            self.trials
                .resize_with(i + 1, || History { best: f64::NEG_INFINITY, ..Default::default() });
        }
        &mut self.trials[i]
    }

    fn record(&mut self, trial: TrialId, result: &TrialResult<M>) -> f64 {
        let time = result.get(self.time_attr);
        let score = signed(self.metric, self.mode, result);
        let h = self.history(trial);
        if h.sums.is_empty() {
            h.sums.push(0.0);
        }
        if h.times.last() == Some(&time) && h.times.len() + 1 == h.sums.len() {
            // The final result repeated by `on_trial_complete`.
            return time;
        }
        if h.times.last().is_some_and(|last| time < *last) {
            // The trial went back to an earlier checkpoint (a retry, or a resumed
            // experiment whose saved state saw later results): its results from `time` on
            // are replaced by those it reports again.
            let keep = h.times.partition_point(|t| *t < time);
            h.times.truncate(keep);
            h.sums.truncate(keep + 1);
            h.best = h.sums.windows(2).map(|w| w[1] - w[0]).fold(f64::NEG_INFINITY, f64::max);
        }
        let total = h.sums.last().copied().unwrap_or(0.0) + score;
        h.times.push(time);
        h.sums.push(total);
        h.best = h.best.max(score);
        time
    }
}

impl<M: Metrics> MedianStoppingBuilder<M> {
    /// The monotone result field that measures progress (default `time_total_s`).
    pub fn time_attr(mut self, key: impl Into<Key<M>>) -> Self {
        self.time_attr = key.into();
        self
    }
    /// No trial is stopped before its time attribute reaches this (default 60).
    pub fn grace_period(mut self, t: f64) -> Self {
        self.grace_period = t;
        self
    }
    /// Other trials needed at the same time before comparing (default 3).
    pub fn min_samples(mut self, n: usize) -> Self {
        self.min_samples = n;
        self
    }
    /// Stop the trial (true, default) or pause it (false).
    pub fn hard_stop(mut self, yes: bool) -> Self {
        self.hard_stop = yes;
        self
    }

    /// Checks the options.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::Invalid`] saying which option to change.
    pub fn build(self) -> Result<MedianStopping<M>, SchedulerError> {
        if !(self.grace_period.is_finite() && self.grace_period >= 0.0) {
            return Err(invalid(
                "MedianStopping",
                format!("`grace_period({})` must be a non-negative number", self.grace_period),
            ));
        }
        if self.min_samples == 0 {
            return Err(invalid("MedianStopping", "`min_samples(0)`: use at least 1"));
        }
        Ok(MedianStopping {
            metric: self.metric,
            mode: self.mode,
            time_attr: self.time_attr,
            grace_period: self.grace_period,
            min_samples: self.min_samples,
            hard_stop: self.hard_stop,
            trials: Vec::new(),
            scratch: Vec::new(),
        })
    }
}

impl<C: Space, M: Metrics> Scheduler<C, M> for MedianStopping<M> {
    fn name(&self) -> &str {
        "MedianStopping"
    }

    fn on_trial_result(&mut self, trial: TrialId, result: &TrialResult<M>) -> Decision {
        let time = self.record(trial, result);
        let grace = self.grace_period;
        let me = &self.trials[trial.index()];
        if me.stopped {
            // Paused once and resumed: it runs to its end.
            return Decision::Continue;
        }
        if time < grace {
            return Decision::Continue;
        }
        let best = me.best;
        self.scratch.clear();
        for (i, h) in self.trials.iter().enumerate() {
            if i != trial.index() && h.last_time() >= time {
                if let Some(m) = h.running_mean(grace, time) {
                    self.scratch.push(m);
                }
            }
        }
        if self.scratch.len() < self.min_samples {
            return Decision::Continue;
        }
        self.scratch.sort_by(f64::total_cmp);
        let n = self.scratch.len();
        let median = if n % 2 == 1 {
            self.scratch[n / 2]
        } else {
            (self.scratch[n / 2 - 1] + self.scratch[n / 2]) / 2.0
        };
        if best < median {
            self.trials[trial.index()].stopped = true;
            if self.hard_stop { Decision::Stop } else { Decision::Pause }
        } else {
            Decision::Continue
        }
    }

    fn on_trial_complete(&mut self, trial: TrialId, last: Option<&TrialResult<M>>, error: bool) {
        if let (Some(r), false) = (last, error) {
            self.record(trial, r);
        }
    }

    fn choose_trial_to_run(&mut self, pending: &[TrialId], paused: &[TrialId]) -> Option<TrialId> {
        pending.first().or(paused.first()).copied()
    }

    /// Every trial's times, score sums, best score and whether it was stopped once.
    fn save_state(&self) -> serde_json::Value {
        state::save("MedianStopping", &self.trials)
    }

    fn restore_state(&mut self, value: serde_json::Value) -> Result<(), StateError> {
        let trials: Vec<History> = state::load("MedianStopping", value)?;
        for (i, h) in trials.iter().enumerate() {
            if !(h.sums.len() == h.times.len() + 1 || (h.sums.is_empty() && h.times.is_empty())) {
                return Err(state::malformed(
                    "MedianStopping",
                    &format!("[{i}]"),
                    &format!(
                        "{} times and {} sums; a trial needs one sum more than times",
                        h.times.len(),
                        h.sums.len()
                    ),
                ));
            }
        }
        self.trials = trials;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testing::{Cfg, SCORE, Score, result};

    fn feed(s: &mut MedianStopping<Score>, trial: u32, it: u64, score: f64) -> Decision {
        <MedianStopping<Score> as Scheduler<Cfg, Score>>::on_trial_result(
            s,
            TrialId(trial),
            &result(trial, it, score),
        )
    }

    fn rule(hard: bool) -> MedianStopping<Score> {
        MedianStopping::builder(SCORE, Mode::Max)
            .time_attr(Auto::TrainingIteration)
            .grace_period(2.0)
            .min_samples(2)
            .hard_stop(hard)
            .build()
            .unwrap()
    }

    #[test]
    fn stops_below_the_median_of_running_means() {
        let mut s = rule(true);
        // Trials 0 and 1 run 4 iterations first.
        for it in 1..=4 {
            assert_eq!(feed(&mut s, 0, it, it as f64), Decision::Continue);
            assert_eq!(feed(&mut s, 1, it, 10.0), Decision::Continue);
        }
        assert_eq!(feed(&mut s, 2, 1, 100.0), Decision::Continue, "in the grace period");
        assert_eq!(feed(&mut s, 3, 1, 0.0), Decision::Continue);
        // Running means over [2, 2]: trial 0 has 2, trial 1 has 10: the median is 6.
        assert_eq!(feed(&mut s, 3, 2, 6.0), Decision::Continue, "best 6 is not below 6");
        assert_eq!(feed(&mut s, 4, 2, 5.9), Decision::Stop, "best 5.9 < median(2, 10, 6) = 6");
        assert_eq!(feed(&mut s, 2, 2, 7.0), Decision::Continue, "best 100 beats it");
        // At iteration 3 only trials 0 and 1 are that far: means over [2, 3] are 2.5, 10.
        assert_eq!(feed(&mut s, 2, 3, 0.0), Decision::Continue);
    }

    #[test]
    fn too_few_samples_or_min_mode() {
        let mut s = MedianStopping::builder(SCORE, Mode::Min)
            .time_attr(Auto::TrainingIteration)
            .grace_period(1.0)
            .min_samples(1)
            .build()
            .unwrap();
        assert_eq!(feed(&mut s, 0, 1, 5.0), Decision::Continue, "no other trial yet");
        assert_eq!(feed(&mut s, 1, 1, 4.0), Decision::Continue, "loss 4 beats 5");
        assert_eq!(feed(&mut s, 2, 1, 6.0), Decision::Stop, "loss 6 is worse than median 4.5");
    }

    #[test]
    fn soft_stop_pauses_once() {
        let mut s = rule(false);
        for it in 1..=3 {
            feed(&mut s, 0, it, 10.0);
            feed(&mut s, 1, it, 10.0);
        }
        feed(&mut s, 2, 1, 0.0);
        assert_eq!(feed(&mut s, 2, 2, 0.0), Decision::Pause);
        assert_eq!(feed(&mut s, 2, 3, 0.0), Decision::Continue, "resumed, runs to its end");
        let e = MedianStopping::builder(SCORE, Mode::Max).min_samples(0).build().unwrap_err();
        assert!(e.to_string().contains("min_samples(0)"), "{e}");
    }

    #[test]
    fn saved_state_restores_the_same_decisions() {
        // Later trials score worse, with some noise.
        let score =
            |t: u32, it: u64| (8 - t) as f64 * 3.0 + ((t as u64 * 7919 + it * 104_729) % 5) as f64;
        let mut a = rule(true);
        let mut alive = [true; 8];
        for it in 1..=3 {
            for t in 0..4 {
                if alive[t as usize] {
                    alive[t as usize] = feed(&mut a, t, it, score(t, it)) == Decision::Continue;
                }
            }
        }
        let saved = <MedianStopping<Score> as Scheduler<Cfg, Score>>::save_state(&a);
        let json = serde_json::to_string(&saved).unwrap();
        let mut b = rule(true);
        <MedianStopping<Score> as Scheduler<Cfg, Score>>::restore_state(
            &mut b,
            serde_json::from_str(&json).unwrap(),
        )
        .unwrap();
        assert_eq!(<MedianStopping<Score> as Scheduler<Cfg, Score>>::save_state(&b), saved);
        // After a resume, trial 0 is rolled back and reports iteration 3 again.
        let mut c = rule(true);
        <MedianStopping<Score> as Scheduler<Cfg, Score>>::restore_state(&mut c, saved).unwrap();
        if alive[0] {
            feed(&mut c, 0, 3, score(0, 3));
        }
        let mut stops = 0;
        for it in 1..=12 {
            for t in 0..8 {
                if !alive[t as usize] || (t < 4 && it <= 3) {
                    continue;
                }
                let da = feed(&mut a, t, it, score(t, it));
                assert_eq!(da, feed(&mut b, t, it, score(t, it)), "trial {t} at {it}");
                assert_eq!(da, feed(&mut c, t, it, score(t, it)), "replayed, trial {t} at {it}");
                alive[t as usize] = da == Decision::Continue;
                stops += usize::from(da == Decision::Stop);
            }
        }
        assert!(stops > 0);
    }

    #[test]
    fn results_reported_again_replace_the_later_ones() {
        let mut s = rule(true);
        for (it, v) in [(1, 5.0), (2, 9.0), (3, 1.0)] {
            feed(&mut s, 0, it, v);
        }
        feed(&mut s, 0, 2, 3.0);
        let h = &s.trials[0];
        assert_eq!(h.times, vec![1.0, 2.0]);
        assert_eq!(h.sums, vec![0.0, 5.0, 8.0]);
        assert_eq!(h.best, 5.0);
    }

    #[test]
    fn malformed_state_is_an_error() {
        let mut s = rule(true);
        feed(&mut s, 0, 1, 1.0);
        let good = <MedianStopping<Score> as Scheduler<Cfg, Score>>::save_state(&s);
        let restore = |s: &mut MedianStopping<Score>, v: serde_json::Value| {
            <MedianStopping<Score> as Scheduler<Cfg, Score>>::restore_state(s, v)
                .map_err(|e| e.to_string())
        };
        assert!(restore(&mut s, serde_json::Value::Null).unwrap_err().contains("JSON object"));
        let mut v = good.clone();
        v["state"] = serde_json::json!({});
        assert!(restore(&mut s, v).unwrap_err().contains("malformed"));
        let mut v = good.clone();
        v["state"][0]["sums"] = serde_json::json!([0.0]);
        assert!(restore(&mut s, v).unwrap_err().contains("one sum more"));
        let mut v = good.clone();
        v["state"][0].as_object_mut().unwrap().remove("stopped");
        let e = restore(&mut s, v).unwrap_err();
        assert!(e.contains("[0]") && e.contains("stopped"), "{e}");
        assert_eq!(restore(&mut s, good), Ok(()));
    }
}
