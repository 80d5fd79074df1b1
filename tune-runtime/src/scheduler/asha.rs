//! Asynchronous successive halving (ASHA, Li et al. 2018), in the stopping form of Ray
//! Tune's `AsyncHyperBandScheduler`: a trial reaching a rung continues only if its score is
//! in the top `1 / reduction_factor` of the scores recorded at that rung so far.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use serde::{Deserialize, Serialize};

use super::rung::{Bracket, Score};
use super::{Decision, Scheduler, SchedulerError, invalid, signed};
use crate::metrics::Metrics;
use crate::objectives::Objectives;
use crate::space::Space;
use crate::state::{self, StateError};
use crate::trial::{Auto, Key, Mode, TrialId, TrialResult};

/// Asynchronous successive halving.
///
/// Rung `k` of bracket `s` sits at `grace_period * reduction_factor^(k + s)` (in units of
/// the time attribute, `training_iteration` by default). When a trial reaches a rung it
/// records its score there; it is stopped if the score is below the
/// `(1 - 1/reduction_factor)` quantile of the scores recorded at that rung before it. A
/// trial reaching `max_t` is stopped. With several brackets, each new trial joins one at
/// random, weighted towards brackets with more rungs (as Ray Tune does).
///
/// ```
/// use tune_runtime::{Mode, Metric, scheduler::Asha, trial::Auto};
/// # #[derive(Debug, Clone)] struct M { loss: f64 }
/// # impl tune_runtime::Metrics for M { const NAMES: &'static [&'static str] = &["loss"];
/// #     fn value(&self, _: usize) -> f64 { self.loss } }
/// # const LOSS: Metric<M> = Metric::new(0, "loss");
/// let asha = Asha::builder(LOSS, Mode::Min)
///     .max_t(81.0)
///     .grace_period(1.0)
///     .reduction_factor(3.0)
///     .build()
///     .unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Asha<M> {
    metric: Key<M>,
    mode: Mode,
    objectives: Option<Objectives<M>>,
    time_attr: Key<M>,
    max_t: f64,
    stop_last_trials: bool,
    brackets: Vec<Bracket>,
    trial_bracket: Vec<u32>,
    rng: ChaCha8Rng,
    stopped: usize,
}

/// Options of [`Asha`]; [`AshaBuilder::build`] validates them.
#[derive(Debug, Clone)]
pub struct AshaBuilder<M> {
    metric: Key<M>,
    mode: Mode,
    objectives: Option<Objectives<M>>,
    time_attr: Key<M>,
    max_t: f64,
    grace_period: f64,
    reduction_factor: f64,
    brackets: usize,
    stop_last_trials: bool,
}

impl<M: Metrics> Asha<M> {
    /// Options with the defaults: time attribute `training_iteration`, `max_t` 100,
    /// grace period 1, reduction factor 4, one bracket, trials stopped at `max_t`.
    pub fn builder(metric: impl Into<Key<M>>, mode: Mode) -> AshaBuilder<M> {
        AshaBuilder {
            metric: metric.into(),
            mode,
            objectives: None,
            time_attr: Key::Auto(Auto::TrainingIteration),
            max_t: 100.0,
            grace_period: 1.0,
            reduction_factor: 4.0,
            brackets: 1,
            stop_last_trials: true,
        }
    }

    /// Options for several objectives (MO-ASHA, Schmucker et al. 2021): at a rung the
    /// recorded trials are ordered by non-dominated sorting (constraints first: feasible
    /// trials before infeasible ones, those by violation), then by crowding distance
    /// within a front, and a trial goes on if it is among the best
    /// `max(1, floor(n / reduction_factor))` of the `n` recorded there. Other defaults as
    /// [`Asha::builder`]; the status table shows the first objective.
    ///
    /// # Panics
    ///
    /// Never; [`AshaBuilder::build`] refuses objectives without a goal.
    pub fn builder_objectives(objectives: Objectives<M>) -> AshaBuilder<M> {
        let (metric, mode) = objectives
            .goals()
            .first()
            .copied()
            .unwrap_or((Key::Auto(Auto::TrainingIteration), Mode::Max));
        let mut b = Self::builder(metric, mode);
        b.objectives = Some(objectives);
        b
    }

    /// The milestones of each bracket, lowest first.
    pub fn rungs(&self) -> Vec<Vec<f64>> {
        self.brackets.iter().map(|b| b.rungs.iter().rev().map(|r| r.milestone).collect()).collect()
    }

    fn score(&self, result: &TrialResult<M>) -> Score {
        match &self.objectives {
            Some(o) => {
                let get = |k: Key<M>| result.get(k);
                let losses = o.losses(get);
                let losses = losses.into_iter().map(|l| if l.is_nan() { f64::INFINITY } else { l });
                let violation = crate::objectives::violation(&o.constraint_values(get));
                Score::Multi(losses.collect(), violation)
            }
            None => Score::Single(signed(self.metric, self.mode, result)),
        }
    }

    /// Number of trials this scheduler stopped.
    pub fn num_stopped(&self) -> usize {
        self.stopped
    }
}

impl<M: Metrics> AshaBuilder<M> {
    /// The monotone result field that measures progress (default `training_iteration`).
    pub fn time_attr(mut self, key: impl Into<Key<M>>) -> Self {
        self.time_attr = key.into();
        self
    }
    /// Trials are stopped once the time attribute reaches this (default 100).
    pub fn max_t(mut self, max_t: f64) -> Self {
        self.max_t = max_t;
        self
    }
    /// The first rung: no trial is stopped before (default 1).
    pub fn grace_period(mut self, t: f64) -> Self {
        self.grace_period = t;
        self
    }
    /// Rungs are this factor apart and keep the top `1/factor` (default 4).
    pub fn reduction_factor(mut self, eta: f64) -> Self {
        self.reduction_factor = eta;
        self
    }
    /// Number of brackets (default 1); bracket `s` starts at `grace_period * eta^s`.
    pub fn brackets(mut self, n: usize) -> Self {
        self.brackets = n;
        self
    }
    /// Whether trials are stopped at `max_t` (default true).
    pub fn stop_last_trials(mut self, yes: bool) -> Self {
        self.stop_last_trials = yes;
        self
    }

    /// Checks the options.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::Invalid`] saying which option to change.
    pub fn build(self) -> Result<Asha<M>, SchedulerError> {
        const S: &str = "ASHA";
        if !(self.max_t.is_finite() && self.max_t > 0.0) {
            return Err(invalid(S, format!("`max_t({})` must be a positive number", self.max_t)));
        }
        if !(self.grace_period.is_finite() && self.grace_period > 0.0) {
            return Err(invalid(
                S,
                format!("`grace_period({})` must be a positive number", self.grace_period),
            ));
        }
        if self.grace_period > self.max_t {
            return Err(invalid(
                S,
                format!(
                    "`grace_period({})` is larger than `max_t({})`; lower it or raise `max_t`",
                    self.grace_period, self.max_t
                ),
            ));
        }
        if !(self.reduction_factor.is_finite() && self.reduction_factor > 1.0) {
            return Err(invalid(
                S,
                format!("`reduction_factor({})` must be larger than 1", self.reduction_factor),
            ));
        }
        if self.brackets == 0 {
            return Err(invalid(S, "`brackets(0)`: use at least 1"));
        }
        if self.objectives.as_ref().is_some_and(Objectives::is_empty) {
            return Err(invalid(
                S,
                "`builder_objectives` got no objective: add one with `.minimize(..)` or `.maximize(..)`",
            ));
        }
        let brackets: Vec<Bracket> = (0..self.brackets)
            .map(|s| Bracket::new(self.grace_period, self.max_t, self.reduction_factor, s))
            .collect();
        if let Some(s) = brackets.iter().position(|b| b.rungs.is_empty()) {
            return Err(invalid(
                S,
                format!(
                    "bracket {s} would have no rung below `max_t`; use at most {s} brackets or \
                     a larger `max_t`"
                ),
            ));
        }
        Ok(Asha {
            metric: self.metric,
            mode: self.mode,
            objectives: self.objectives,
            time_attr: self.time_attr,
            max_t: self.max_t,
            stop_last_trials: self.stop_last_trials,
            brackets,
            trial_bracket: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(0),
            stopped: 0,
        })
    }
}

impl<C: Space, M: Metrics> Scheduler<C, M> for Asha<M> {
    fn name(&self) -> &str {
        "AsyncHyperBand"
    }

    fn setup(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed ^ 0xA5A4);
    }

    fn on_trial_add(&mut self, trial: TrialId, _config: &C) {
        let b = if self.brackets.len() == 1 {
            0
        } else {
            // Weights e^(rungs - max rungs): brackets with more rungs are likelier.
            let max = self.brackets.iter().map(|b| b.rungs.len()).max().unwrap_or(0);
            let w: Vec<f64> =
                self.brackets.iter().map(|b| (b.rungs.len() as f64 - max as f64).exp()).collect();
            let mut x = self.rng.random::<f64>() * w.iter().sum::<f64>();
            let mut pick = w.len() - 1;
            for (i, wi) in w.iter().enumerate() {
                if x < *wi {
                    pick = i;
                    break;
                }
                x -= wi;
            }
            pick
        };
        let i = trial.index();
        if self.trial_bracket.len() <= i {
            self.trial_bracket.resize(i + 1, 0);
        }
        self.trial_bracket[i] = b as u32;
    }

    /// With iterations as the time attribute, results between two rungs are always
    /// continued: the runner may batch the steps up to the next rung.
    fn safe_steps(&self, trial: TrialId, iteration: u64) -> Option<u64> {
        if self.time_attr != Key::Auto(Auto::TrainingIteration) {
            return None;
        }
        let b = self.trial_bracket.get(trial.index()).copied().unwrap_or(0) as usize;
        let now = iteration as f64;
        let next = self.brackets[b]
            .rungs
            .iter()
            .map(|r| r.milestone)
            .chain(self.stop_last_trials.then_some(self.max_t))
            .filter(|m| *m > now)
            .fold(f64::INFINITY, f64::min);
        if next.is_infinite() {
            return Some(u64::MAX);
        }
        Some((next.ceil() as u64).saturating_sub(iteration).max(1))
    }

    fn on_trial_result(&mut self, trial: TrialId, result: &TrialResult<M>) -> Decision {
        let time = result.get(self.time_attr);
        let decision = if time >= self.max_t && self.stop_last_trials {
            Decision::Stop
        } else {
            let b = self.trial_bracket.get(trial.index()).copied().unwrap_or(0) as usize;
            let score = self.score(result);
            self.brackets[b].on_result(trial.index(), time, score)
        };
        if decision == Decision::Stop {
            self.stopped += 1;
        }
        decision
    }

    /// The rungs' scores and trials, each trial's bracket, the random generator and the
    /// number of stopped trials.
    fn save_state(&self) -> serde_json::Value {
        let saved = Saved {
            brackets: self.brackets.clone(),
            trial_bracket: self.trial_bracket.clone(),
            rng: self.rng.clone(),
            stopped: self.stopped,
        };
        state::save("ASHA", &saved)
    }

    fn restore_state(&mut self, value: serde_json::Value) -> Result<(), StateError> {
        let saved: Saved = state::load("ASHA", value)?;
        let same = saved.brackets.len() == self.brackets.len()
            && saved.brackets.iter().zip(&self.brackets).all(|(a, b)| a.same_plan(b));
        if !same {
            let plan = |b: &[Bracket]| -> Vec<Vec<f64>> {
                b.iter().map(|b| b.rungs.iter().map(|r| r.milestone).collect()).collect()
            };
            return Err(state::mismatch(
                "ASHA",
                format!(
                    "the state has the rungs {:?}, this scheduler {:?}",
                    plan(&saved.brackets),
                    plan(&self.brackets)
                ),
            ));
        }
        if let Some(b) = saved.trial_bracket.iter().find(|b| **b as usize >= self.brackets.len()) {
            return Err(state::malformed(
                "ASHA",
                "trial_bracket",
                &format!("names the bracket {b}, which does not exist"),
            ));
        }
        self.brackets = saved.brackets;
        self.trial_bracket = saved.trial_bracket;
        self.rng = saved.rng;
        self.stopped = saved.stopped;
        Ok(())
    }

    fn on_trial_complete(&mut self, trial: TrialId, last: Option<&TrialResult<M>>, error: bool) {
        if let (Some(r), false) = (last, error) {
            let b = self.trial_bracket.get(trial.index()).copied().unwrap_or(0) as usize;
            let score = self.score(r);
            let time = r.get(self.time_attr);
            self.brackets[b].on_result(trial.index(), time, score);
        }
    }
}

/// What [`Asha`] saves.
#[derive(Serialize, Deserialize)]
struct Saved {
    brackets: Vec<Bracket>,
    trial_bracket: Vec<u32>,
    rng: ChaCha8Rng,
    stopped: usize,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testing::{Cfg, SCORE, Score, result};

    fn feed(s: &mut Asha<Score>, trial: u32, iteration: u64, score: f64) -> Decision {
        <Asha<Score> as Scheduler<Cfg, Score>>::on_trial_result(
            s,
            TrialId(trial),
            &result(trial, iteration, score),
        )
    }

    fn add(s: &mut Asha<Score>, n: u32) {
        let cfg = Cfg { x: 0.5, k: 1 };
        for t in 0..n {
            <Asha<Score> as Scheduler<Cfg, Score>>::on_trial_add(s, TrialId(t), &cfg);
        }
    }

    #[test]
    fn rungs_follow_the_geometric_schedule() {
        let s = Asha::builder(SCORE, Mode::Max).max_t(81.0).reduction_factor(3.0).build().unwrap();
        assert_eq!(s.rungs(), vec![vec![1.0, 3.0, 9.0, 27.0, 81.0]]);
        let s = Asha::builder(SCORE, Mode::Max)
            .max_t(100.0)
            .grace_period(1.0)
            .reduction_factor(4.0)
            .brackets(3)
            .build()
            .unwrap();
        assert_eq!(
            s.rungs(),
            vec![vec![1.0, 4.0, 16.0, 64.0], vec![4.0, 16.0, 64.0], vec![16.0, 64.0]]
        );
    }

    #[test]
    fn stops_trials_below_the_rung_quantile() {
        // eta = 2: a trial continues if its score is at least the median of the rung so far.
        let mut s = Asha::builder(SCORE, Mode::Max)
            .max_t(8.0)
            .grace_period(1.0)
            .reduction_factor(2.0)
            .build()
            .unwrap();
        add(&mut s, 4);
        // Rung 1: scores arrive 5, 3, 8, 4.
        assert_eq!(feed(&mut s, 0, 1, 5.0), Decision::Continue, "first at a rung always goes on");
        assert_eq!(feed(&mut s, 1, 1, 3.0), Decision::Stop, "3 < median{{5}} = 5");
        assert_eq!(feed(&mut s, 2, 1, 8.0), Decision::Continue, "8 >= median{{3,5}} = 4");
        assert_eq!(feed(&mut s, 3, 1, 4.0), Decision::Stop, "4 < median{{3,5,8}} = 5");
        // Between rungs nothing is decided.
        assert_eq!(feed(&mut s, 0, 2, 0.0), Decision::Continue);
        assert_eq!(feed(&mut s, 0, 3, 0.0), Decision::Continue);
        // Rung 4.
        assert_eq!(feed(&mut s, 2, 4, 9.0), Decision::Continue);
        assert_eq!(feed(&mut s, 0, 4, 6.0), Decision::Stop, "6 < median{{9}}");
        // max_t stops the survivor.
        assert_eq!(feed(&mut s, 2, 8, 10.0), Decision::Stop);
        assert_eq!(s.num_stopped(), 4);
    }

    #[test]
    fn steps_up_to_the_next_rung_are_safe() {
        let s = Asha::builder(SCORE, Mode::Max).max_t(81.0).reduction_factor(3.0).build().unwrap();
        let safe = |it| <Asha<Score> as Scheduler<Cfg, Score>>::safe_steps(&s, TrialId(0), it);
        assert_eq!(safe(0), Some(1), "rung 1 decides the first result");
        assert_eq!(safe(1), Some(2), "results 2 and 3: only 3 can stop");
        assert_eq!(safe(9), Some(18));
        assert_eq!(safe(27), Some(54), "up to max_t");
        let t = Asha::builder(SCORE, Mode::Max).time_attr(Auto::TimeTotalS).build().unwrap();
        assert_eq!(<Asha<Score> as Scheduler<Cfg, Score>>::safe_steps(&t, TrialId(0), 0), None);
    }

    #[test]
    fn min_mode_and_time_attribute() {
        let mut s = Asha::builder(SCORE, Mode::Min)
            .time_attr(Auto::TimeTotalS)
            .max_t(100.0)
            .grace_period(10.0)
            .reduction_factor(3.0)
            .build()
            .unwrap();
        add(&mut s, 3);
        // time_total_s == iteration in these results; rung at 10 and 30 and 90.
        assert_eq!(feed(&mut s, 0, 9, 0.1), Decision::Continue);
        assert_eq!(feed(&mut s, 0, 12, 0.5), Decision::Continue);
        // Trial 1 jumps straight past rung 30: it is compared at the highest rung passed.
        assert_eq!(feed(&mut s, 1, 31, 0.2), Decision::Continue);
        // Rung 10 holds {-0.5}; cutoff is -0.5; -0.6 < -0.5 stops.
        assert_eq!(feed(&mut s, 2, 10, 0.6), Decision::Stop);
    }

    #[test]
    fn completed_trials_count_at_their_rung() {
        let mut s =
            Asha::builder(SCORE, Mode::Max).max_t(16.0).reduction_factor(2.0).build().unwrap();
        add(&mut s, 2);
        let last = result(0, 2, 10.0);
        <Asha<Score> as Scheduler<Cfg, Score>>::on_trial_complete(
            &mut s,
            TrialId(0),
            Some(&last),
            false,
        );
        assert_eq!(feed(&mut s, 1, 2, 1.0), Decision::Stop, "1 < the 10 trial 0 ended with");
    }

    #[test]
    fn brackets_are_drawn_towards_more_rungs_and_seeded() {
        let make = || {
            let mut s = Asha::builder(SCORE, Mode::Max)
                .max_t(81.0)
                .reduction_factor(3.0)
                .brackets(3)
                .build()
                .unwrap();
            <Asha<Score> as Scheduler<Cfg, Score>>::setup(&mut s, 7);
            add(&mut s, 300);
            s.trial_bracket.clone()
        };
        let a = make();
        assert_eq!(a, make(), "same seed, same brackets");
        let count = |b: u32| a.iter().filter(|x| **x == b).count();
        // Weights 1, e^-1, e^-2 out of 1.503.
        assert!(count(0) > count(1) && count(1) > count(2), "{a:?}");
        assert!(count(2) > 0);
    }

    #[test]
    fn builder_errors_say_what_to_change() {
        let e = Asha::builder(SCORE, Mode::Max).reduction_factor(1.0).build().unwrap_err();
        assert!(e.to_string().contains("`reduction_factor(1)` must be larger than 1"), "{e}");
        let e = Asha::builder(SCORE, Mode::Max).grace_period(200.0).build().unwrap_err();
        assert!(e.to_string().contains("larger than `max_t(100)`"), "{e}");
        let e =
            Asha::builder(SCORE, Mode::Max).max_t(4.0).reduction_factor(4.0).brackets(3).build();
        assert!(e.unwrap_err().to_string().contains("bracket 2 would have no rung"));
        let e = Asha::builder(SCORE, Mode::Max).brackets(0).build().unwrap_err();
        assert!(e.to_string().contains("brackets(0)"), "{e}");
        assert_eq!(super::super::rung::percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.5));
    }

    #[test]
    fn saved_state_restores_the_same_decisions() {
        let build = || {
            let mut s = Asha::builder(SCORE, Mode::Max)
                .max_t(27.0)
                .reduction_factor(3.0)
                .brackets(2)
                .build()
                .unwrap();
            <Asha<Score> as Scheduler<Cfg, Score>>::setup(&mut s, 7);
            s
        };
        let mut a = build();
        add(&mut a, 6);
        // Trial t scores a pseudo-random value at each iteration.
        let score = |t: u32, it: u64| ((t as u64 * 7919 + it * 104_729) % 97) as f64;
        let mut alive = [true; 12];
        for it in 1..=4 {
            for t in 0..6 {
                if alive[t as usize] {
                    alive[t as usize] = feed(&mut a, t, it, score(t, it)) != Decision::Stop;
                }
            }
        }
        let saved = <Asha<Score> as Scheduler<Cfg, Score>>::save_state(&a);
        let json = serde_json::to_string(&saved).unwrap();
        let mut b = build();
        <Asha<Score> as Scheduler<Cfg, Score>>::restore_state(
            &mut b,
            serde_json::from_str(&json).unwrap(),
        )
        .unwrap();
        assert_eq!(<Asha<Score> as Scheduler<Cfg, Score>>::save_state(&b), saved);
        // Trials added after the save draw their brackets from the restored generator.
        let cfg = Cfg { x: 0.5, k: 1 };
        for t in 6..12 {
            <Asha<Score> as Scheduler<Cfg, Score>>::on_trial_add(&mut a, TrialId(t), &cfg);
            <Asha<Score> as Scheduler<Cfg, Score>>::on_trial_add(&mut b, TrialId(t), &cfg);
        }
        let mut decisions = 0;
        for it in 1..=27 {
            for t in 0..12 {
                let (lo, hi) = if t < 6 { (5, 27) } else { (1, 27) };
                if !(lo..=hi).contains(&it) || !alive[t as usize] {
                    continue;
                }
                let da = feed(&mut a, t, it, score(t, it));
                let db = feed(&mut b, t, it, score(t, it));
                assert_eq!(da, db, "trial {t} at {it}");
                alive[t as usize] = da != Decision::Stop;
                decisions += 1;
            }
        }
        assert!(decisions > 20);
        assert!(a.num_stopped() > 2 && a.num_stopped() == b.num_stopped());
        assert_eq!(a.trial_bracket, b.trial_bracket);
    }

    #[test]
    fn malformed_state_is_an_error() {
        let mut s =
            Asha::builder(SCORE, Mode::Max).max_t(27.0).reduction_factor(3.0).build().unwrap();
        let good = <Asha<Score> as Scheduler<Cfg, Score>>::save_state(&s);
        let restore = |s: &mut Asha<Score>, v: serde_json::Value| {
            <Asha<Score> as Scheduler<Cfg, Score>>::restore_state(s, v)
        };
        let e = restore(&mut s, serde_json::json!(3)).unwrap_err();
        assert!(e.to_string().contains("not a JSON object"), "{e}");
        let mut v = good.clone();
        v["kind"] = serde_json::json!("PBT");
        let e = restore(&mut s, v).unwrap_err();
        assert_eq!(e, StateError::WrongKind { expected: "ASHA", found: "PBT".into() });
        let mut v = good.clone();
        v["state"]["brackets"][0]["rungs"][0]["scores"] = serde_json::json!([1.0, "x"]);
        let e = restore(&mut s, v).unwrap_err();
        assert!(
            matches!(&e, StateError::Malformed { path, .. } if path == "brackets[0].rungs[0].scores[1]"),
            "{e}"
        );
        let mut v = good.clone();
        v["state"].as_object_mut().unwrap().remove("rng");
        assert!(restore(&mut s, v).unwrap_err().to_string().contains("rng"));
        let mut v = good.clone();
        v["state"]["trial_bracket"] = serde_json::json!([0, 5]);
        assert!(restore(&mut s, v).unwrap_err().to_string().contains("bracket 5"));
        let other = Asha::builder(SCORE, Mode::Max).max_t(81.0).reduction_factor(3.0).build();
        let e = restore(&mut other.unwrap(), good.clone()).unwrap_err();
        assert!(matches!(e, StateError::Mismatch { .. }), "{e}");
        assert!(e.to_string().contains("options"), "{e}");
        assert_eq!(restore(&mut s, good.clone()), Ok(()));
    }

    #[test]
    fn several_objectives_stop_dominated_trials_at_rungs() {
        use crate::objectives::Constraint;
        let o = Objectives::new()
            .maximize(SCORE)
            .minimize(Auto::TimeTotalS)
            .constraint(Constraint::at_most(Auto::TimeTotalS, 10.0));
        let mut s = Asha::builder_objectives(o).max_t(8.0).reduction_factor(2.0).build().unwrap();
        add(&mut s, 4);
        let r = |t: u32, score: f64, time: f64| {
            let mut r = result(t, 1, score);
            r.time_total_s = time;
            r
        };
        let feed = |s: &mut Asha<Score>, t: u32, score: f64, time: f64| {
            <Asha<Score> as Scheduler<Cfg, Score>>::on_trial_result(
                s,
                TrialId(t),
                &r(t, score, time),
            )
        };
        assert_eq!(feed(&mut s, 0, 5.0, 5.0), Decision::Continue);
        assert_eq!(feed(&mut s, 1, 4.0, 6.0), Decision::Stop, "dominated by trial 0");
        assert_eq!(feed(&mut s, 2, 9.0, 20.0), Decision::Stop, "infeasible: time over 10");
        assert_eq!(feed(&mut s, 3, 9.0, 9.0), Decision::Continue, "trades score for time");
        let e = Asha::builder_objectives(Objectives::<Score>::new()).build().unwrap_err();
        assert!(e.to_string().contains("no objective"), "{e}");
    }
}
