//! Synchronous HyperBand (Li et al. 2017) and the variant BOHB (Falkner et al. 2018)
//! pairs with a model-based searcher.

pub use super::bracket::BracketEvent;
use super::bracket::{Core, Observer};
use super::{Decision, Scheduler, SchedulerError, invalid};
use crate::metrics::Metrics;
use crate::space::Space;
use crate::state::StateError;
use crate::trial::{Auto, Key, Mode, TrialId, TrialResult};

/// Synchronous HyperBand.
///
/// Trials are put in brackets in creation order. Bracket `s` (cycling from `s_max =
/// floor(log_eta(max_t))` down to 0) holds `n = ceil((s_max + 1) / (s + 1) * eta^s)`
/// trials; they run to the first milestone `max_t * eta^-s`, where each is paused until
/// the whole bracket is there. Then the best `floor(n / eta)` are promoted to the next
/// milestone (`eta` times further) and resumed, the others stopped, and so on until
/// `max_t`. A bracket that cannot fill (the searcher ran out of trials) halves with the
/// trials it has. Paused trials stay in memory or are checkpointed, see
/// [`Pausing`](crate::scheduler::Pausing); promoted ones resume at the same iteration and state.
#[derive(Debug)]
pub struct HyperBand<M> {
    core: Core<M>,
}

/// The HyperBand variant of BOHB (Ray Tune's `HyperBandForBOHB`): the same brackets, but
/// when no trial can run (a model-based searcher is holding back new configs) the brackets
/// whose trials all wait are halved without waiting to fill; and every pause, promotion
/// and stop is reported to an observer so the searcher can follow each trial's budget.
#[derive(Debug)]
pub struct HyperBandForBohb<M> {
    core: Core<M>,
}

/// Options of [`HyperBand`] and [`HyperBandForBohb`].
pub struct HyperBandBuilder<M> {
    metric: Key<M>,
    mode: Mode,
    time_attr: Key<M>,
    max_t: f64,
    eta: f64,
    brackets: Option<usize>,
    observer: Option<Observer>,
}

impl<M> std::fmt::Debug for HyperBandBuilder<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HyperBandBuilder")
            .field("metric", &self.metric)
            .field("mode", &self.mode)
            .field("max_t", &self.max_t)
            .field("reduction_factor", &self.eta)
            .field("brackets", &self.brackets)
            .finish_non_exhaustive()
    }
}

impl<M: Metrics> HyperBand<M> {
    /// Options with the defaults: time attribute `training_iteration`, `max_t` 81,
    /// reduction factor 3, every bracket (`s_max + 1`).
    ///
    /// ```
    /// use tune_runtime::{Mode, Metric, scheduler::HyperBand};
    /// # #[derive(Debug, Clone)] struct M { accuracy: f64 }
    /// # impl tune_runtime::Metrics for M { const NAMES: &'static [&'static str] = &["accuracy"];
    /// #     fn value(&self, _: usize) -> f64 { self.accuracy } }
    /// # const ACCURACY: Metric<M> = Metric::new(0, "accuracy");
    /// let hyperband = HyperBand::builder(ACCURACY, Mode::Max).max_t(27.0).build().unwrap();
    /// assert_eq!(hyperband.bracket_plan()[0], (3, 27, vec![1.0, 3.0, 9.0, 27.0]));
    /// ```
    pub fn builder(metric: impl Into<Key<M>>, mode: Mode) -> HyperBandBuilder<M> {
        HyperBandBuilder {
            metric: metric.into(),
            mode,
            time_attr: Key::Auto(Auto::TrainingIteration),
            max_t: 81.0,
            eta: 3.0,
            brackets: None,
            observer: None,
        }
    }

    /// `(s, trials, milestones)` of each bracket of one band.
    pub fn bracket_plan(&self) -> Vec<(usize, usize, Vec<f64>)> {
        (0..self.core.num_brackets).map(|k| self.core.plan(k)).collect()
    }

    /// Number of trials stopped by a halving.
    pub fn num_stopped(&self) -> usize {
        self.core.stopped
    }
}

impl<M: Metrics> HyperBandForBohb<M> {
    /// The same options as [`HyperBand::builder`]; finish with
    /// [`HyperBandBuilder::build_for_bohb`].
    pub fn builder(metric: impl Into<Key<M>>, mode: Mode) -> HyperBandBuilder<M> {
        HyperBand::builder(metric, mode)
    }

    /// `(s, trials, milestones)` of each bracket of one band.
    pub fn bracket_plan(&self) -> Vec<(usize, usize, Vec<f64>)> {
        (0..self.core.num_brackets).map(|k| self.core.plan(k)).collect()
    }
}

impl<M: Metrics> HyperBandBuilder<M> {
    /// The monotone result field that measures the budget (default `training_iteration`).
    pub fn time_attr(mut self, key: impl Into<Key<M>>) -> Self {
        self.time_attr = key.into();
        self
    }
    /// The largest budget a trial gets (default 81).
    pub fn max_t(mut self, max_t: f64) -> Self {
        self.max_t = max_t;
        self
    }
    /// `eta`: milestones are this factor apart and each halving keeps `1/eta` (default 3).
    pub fn reduction_factor(mut self, eta: f64) -> Self {
        self.eta = eta;
        self
    }
    /// Use only the `n` most aggressive brackets (`s = s_max, s_max - 1, ...`) per band.
    pub fn brackets(mut self, n: usize) -> Self {
        self.brackets = Some(n);
        self
    }
    /// Called with every pause, promotion and stop (for a searcher paired with the
    /// scheduler, or for logging).
    pub fn observer(mut self, f: impl FnMut(&BracketEvent) + Send + 'static) -> Self {
        self.observer = Some(Box::new(f));
        self
    }

    fn core(self) -> Result<Core<M>, SchedulerError> {
        const S: &str = "HyperBand";
        if !(self.max_t.is_finite() && self.max_t >= 1.0) {
            return Err(invalid(S, format!("`max_t({})` must be at least 1", self.max_t)));
        }
        if !(self.eta.is_finite() && self.eta > 1.0) {
            return Err(invalid(
                S,
                format!("`reduction_factor({})` must be larger than 1", self.eta),
            ));
        }
        let mut core =
            Core::new(self.metric, self.mode, self.time_attr, self.max_t, self.eta, None);
        if let Some(n) = self.brackets {
            if n == 0 || n > core.s_max + 1 {
                return Err(invalid(
                    S,
                    format!(
                        "`brackets({n})`: with max_t {} and reduction factor {} there are {} \
                         brackets; use 1..={}",
                        self.max_t,
                        self.eta,
                        core.s_max + 1,
                        core.s_max + 1
                    ),
                ));
            }
            core.num_brackets = n;
        }
        core.observer = self.observer;
        Ok(core)
    }

    /// Checks the options and builds a [`HyperBand`].
    ///
    /// # Errors
    ///
    /// [`SchedulerError::Invalid`] saying which option to change.
    pub fn build(self) -> Result<HyperBand<M>, SchedulerError> {
        Ok(HyperBand { core: self.core()? })
    }

    /// Checks the options and builds a [`HyperBandForBohb`].
    ///
    /// # Errors
    ///
    /// [`SchedulerError::Invalid`] saying which option to change.
    pub fn build_for_bohb(self) -> Result<HyperBandForBohb<M>, SchedulerError> {
        Ok(HyperBandForBohb { core: self.core()? })
    }
}

/// The methods that both HyperBand schedulers hand to their [`Core`] unchanged; `$name` is
/// the scheduler's name, which also tags its saved state.
macro_rules! delegate_to_core {
    ($name:literal) => {
        fn shares_trials(&self) -> bool {
            // Brackets are per process: another process's trials fill its own brackets.
            false
        }
        fn status_lines(&self) -> Vec<String> {
            self.core.status_lines()
        }
        fn name(&self) -> &str {
            $name
        }
        /// The brackets, their members' scores and states, and each trial's bracket.
        fn save_state(&self) -> serde_json::Value {
            self.core.save_state($name)
        }
        fn restore_state(&mut self, state: serde_json::Value) -> Result<(), StateError> {
            self.core.restore_state($name, state)
        }
        fn on_trial_add(&mut self, trial: TrialId, _config: &C) {
            self.core.add(trial);
        }
        fn on_trial_result(&mut self, trial: TrialId, result: &TrialResult<M>) -> Decision {
            self.core.on_result(trial, result)
        }
        fn on_trial_complete(&mut self, trial: TrialId, _last: Option<&TrialResult<M>>, _e: bool) {
            self.core.on_complete(trial);
        }
        fn on_no_more_trials(&mut self) {
            self.core.no_more_trials();
        }
        fn take_stops(&mut self, out: &mut Vec<TrialId>) {
            self.core.take_stops(out);
        }
    };
}

impl<C: Space, M: Metrics> Scheduler<C, M> for HyperBand<M> {
    delegate_to_core!("HyperBand");

    fn choose_trial_to_run(&mut self, pending: &[TrialId], paused: &[TrialId]) -> Option<TrialId> {
        self.core.choose(pending, paused)
    }
}

impl<C: Space, M: Metrics> Scheduler<C, M> for HyperBandForBohb<M> {
    delegate_to_core!("HyperBandForBOHB");

    fn choose_trial_to_run(&mut self, pending: &[TrialId], paused: &[TrialId]) -> Option<TrialId> {
        if let Some(t) = self.core.choose(pending, paused) {
            return Some(t);
        }
        // Nothing runs and nothing may: halve the waiting brackets now.
        if !paused.is_empty() && self.core.all_waiting() && self.core.force() {
            return self.core.choose(pending, paused);
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::testing::{Cfg, SCORE, Score, result};

    type S = dyn Scheduler<Cfg, Score>;

    fn add(s: &mut S, trials: std::ops::Range<u32>) {
        for t in trials {
            s.on_trial_add(TrialId(t), &Cfg { x: 0.5, k: 1 });
        }
    }
    fn feed(s: &mut S, trial: u32, iteration: u64, score: f64) -> Decision {
        s.on_trial_result(TrialId(trial), &result(trial, iteration, score))
    }
    fn stops(s: &mut S) -> Vec<u32> {
        let mut out = Vec::new();
        s.take_stops(&mut out);
        out.into_iter().map(|t| t.0).collect()
    }
    fn ids(v: &[u32]) -> Vec<TrialId> {
        v.iter().map(|t| TrialId(*t)).collect()
    }

    #[test]
    fn brackets_of_li_et_al_table_1() {
        // R = 81, eta = 3: the example of Li et al. 2017, Table 1.
        let hb = HyperBand::builder(SCORE, Mode::Max).max_t(81.0).build().unwrap();
        let plan: Vec<(usize, usize, f64)> =
            hb.bracket_plan().into_iter().map(|(s, n, m)| (s, n, m[0])).collect();
        assert_eq!(plan, [(4, 81, 1.0), (3, 34, 3.0), (2, 15, 9.0), (1, 8, 27.0), (0, 5, 81.0)]);
        assert_eq!(hb.bracket_plan()[0].2, [1.0, 3.0, 9.0, 27.0, 81.0]);
    }

    #[test]
    fn pauses_at_the_milestone_then_halves() {
        // max_t 9, eta 3: brackets s=2 (9 trials from 1), s=1 (5 from 3), s=0 (3 from 9).
        let mut hb = HyperBand::builder(SCORE, Mode::Max).max_t(9.0).build().unwrap();
        let s: &mut S = &mut hb;
        add(s, 0..9);
        for t in 0..8 {
            assert_eq!(feed(s, t, 1, f64::from(t)), Decision::Pause, "trial {t} waits");
        }
        assert_eq!(s.choose_trial_to_run(&ids(&[8]), &ids(&[0, 1, 2])), Some(TrialId(8)));
        assert_eq!(
            s.choose_trial_to_run(&[], &ids(&[0, 1, 2, 3, 4, 5, 6, 7])),
            None,
            "waiting trials do not resume"
        );
        // The last trial completes the rung with score 4.5: the top 3 are 7, 6, 5.
        assert_eq!(feed(s, 8, 1, 4.5), Decision::Stop);
        assert_eq!(stops(s), [4, 3, 2, 1, 0]);
        let paused = ids(&[0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(s.choose_trial_to_run(&[], &paused), Some(TrialId(5)));
        // Rung 2 at 3 iterations: trial 6 wins.
        assert_eq!(feed(s, 5, 3, 1.0), Decision::Pause);
        assert_eq!(feed(s, 7, 2, 2.0), Decision::Continue);
        assert_eq!(feed(s, 7, 3, 2.0), Decision::Pause);
        assert_eq!(feed(s, 6, 3, 3.0), Decision::Continue, "the best goes on at once");
        assert_eq!(stops(s), [7, 5]);
        assert_eq!(feed(s, 6, 9, 3.0), Decision::Stop, "max_t");
        // The next trial opens bracket s=1 (5 trials, first milestone 3).
        add(s, 9..10);
        assert_eq!(feed(s, 9, 2, 0.0), Decision::Continue);
        assert_eq!(feed(s, 9, 3, 0.0), Decision::Pause);
    }

    #[test]
    fn a_bracket_that_cannot_fill_halves_with_what_it_has() {
        let mut hb = HyperBand::builder(SCORE, Mode::Min).max_t(9.0).build().unwrap();
        let s: &mut S = &mut hb;
        add(s, 0..4);
        for (t, loss) in [(0, 0.4), (1, 0.1), (2, 0.3)] {
            assert_eq!(feed(s, t, 1, loss), Decision::Pause);
        }
        // Trial 3 errors before its first result.
        s.on_trial_complete(TrialId(3), None, true);
        assert_eq!(s.choose_trial_to_run(&[], &ids(&[0, 1, 2])), None);
        s.on_no_more_trials();
        // floor(3 / 3) = 1 survivor: the lowest loss.
        assert_eq!(stops(s), [2, 0]);
        assert_eq!(s.choose_trial_to_run(&[], &ids(&[0, 1, 2])), Some(TrialId(1)));
    }

    #[test]
    fn bohb_variant_halves_when_nothing_can_run_and_reports_events() {
        let events = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&events);
        let mut hb = HyperBandForBohb::builder(SCORE, Mode::Max)
            .max_t(9.0)
            .brackets(1)
            .observer(move |e| log.lock().unwrap().push(*e))
            .build_for_bohb()
            .unwrap();
        let s: &mut S = &mut hb;
        add(s, 0..6);
        for t in 0..6 {
            assert_eq!(feed(s, t, 1, f64::from(t)), Decision::Pause);
        }
        // The searcher holds back: no pending trial, every trial waits.
        let paused = ids(&[0, 1, 2, 3, 4, 5]);
        assert_eq!(s.choose_trial_to_run(&[], &paused), Some(TrialId(4)));
        assert_eq!(stops(s), [3, 2, 1, 0]);
        let e = events.lock().unwrap();
        assert_eq!(e[0], BracketEvent::Paused { trial: TrialId(0), budget: 1.0 });
        assert!(e.contains(&BracketEvent::Stopped { trial: TrialId(0) }));
        assert!(e.contains(&BracketEvent::Promoted { trial: TrialId(4), budget: 3.0 }));
        assert_eq!(e.len(), 6 + 4 + 2);
    }

    #[test]
    fn builder_errors() {
        let e = HyperBand::builder(SCORE, Mode::Max).max_t(27.0).brackets(5).build().unwrap_err();
        assert!(e.to_string().contains("there are 4 brackets; use 1..=4"), "{e}");
        let e = HyperBand::builder(SCORE, Mode::Max).reduction_factor(0.5).build().unwrap_err();
        assert!(e.to_string().contains("must be larger than 1"), "{e}");
    }

    /// Drives `a` and `b` alike from iteration `from` and returns the decisions.
    fn drive(a: &mut S, b: &mut S, alive: &mut [bool], from: u64) -> Vec<Decision> {
        let score = |t: u32, it: u64| ((t as u64 * 7919 + it * 104_729) % 97) as f64;
        let mut out = Vec::new();
        for _round in 0..40 {
            let paused: Vec<TrialId> =
                (0..alive.len() as u32).filter(|t| alive[*t as usize]).map(TrialId).collect();
            let pick = a.choose_trial_to_run(&[], &paused);
            assert_eq!(pick, b.choose_trial_to_run(&[], &paused));
            let Some(t) = pick else { break };
            for it in from..=9 {
                let (da, db) = (feed(a, t.0, it, score(t.0, it)), feed(b, t.0, it, score(t.0, it)));
                assert_eq!(da, db, "trial {t} at {it}");
                out.push(da);
                if da != Decision::Continue {
                    alive[t.index()] &= da == Decision::Pause;
                    break;
                }
            }
            let (sa, sb) = (stops(a), stops(b));
            assert_eq!(sa, sb);
            for t in sa {
                alive[t as usize] = false;
            }
        }
        out
    }

    #[test]
    fn saved_state_restores_the_same_decisions() {
        for bohb in [false, true] {
            let build = || -> Box<S> {
                let b = HyperBand::builder(SCORE, Mode::Max).max_t(9.0);
                if bohb {
                    Box::new(b.build_for_bohb().unwrap())
                } else {
                    Box::new(b.build().unwrap())
                }
            };
            let score = |t: u32| ((t as u64 * 7919) % 97) as f64;
            let mut a = build();
            add(&mut *a, 0..9);
            // Eight trials reach the first milestone and wait.
            for t in 0..8 {
                assert_eq!(feed(&mut *a, t, 1, score(t)), Decision::Pause);
            }
            let saved = a.save_state();
            let json = serde_json::to_string(&saved).unwrap();
            let mut b = build();
            b.restore_state(serde_json::from_str(&json).unwrap()).unwrap();
            assert_eq!(b.save_state(), saved);
            let (da, db) = (feed(&mut *a, 8, 1, score(8)), feed(&mut *b, 8, 1, score(8)));
            assert_eq!(da, db);
            assert_eq!(stops(&mut *a), stops(&mut *b));
            let mut alive = [true; 9];
            alive[8] = da != Decision::Stop;
            let decisions = drive(&mut *a, &mut *b, &mut alive, 2);
            assert!(decisions.contains(&Decision::Stop) && decisions.len() > 3);
            assert_eq!(a.save_state(), b.save_state());
        }
    }

    #[test]
    fn a_paused_trial_the_saved_state_saw_running_resumes() {
        let mut hb = HyperBand::builder(SCORE, Mode::Max).max_t(9.0).build().unwrap();
        let s: &mut S = &mut hb;
        add(s, 0..9);
        assert_eq!(feed(s, 0, 1, 1.0), Decision::Pause);
        // The state was saved before trial 1 paused; the runner resumes it as paused.
        let paused = ids(&[0, 1]);
        assert_eq!(s.choose_trial_to_run(&ids(&[2]), &paused), Some(TrialId(2)));
        assert_eq!(s.choose_trial_to_run(&[], &paused), Some(TrialId(1)));
        assert_eq!(feed(s, 1, 1, 2.0), Decision::Pause);
        assert_eq!(s.choose_trial_to_run(&[], &paused), None, "both wait now");
    }

    #[test]
    fn malformed_state_is_an_error() {
        let mut hb = HyperBand::builder(SCORE, Mode::Max).max_t(9.0).build().unwrap();
        let s: &mut S = &mut hb;
        add(s, 0..3);
        feed(s, 0, 1, 1.0);
        let good = s.save_state();
        let err = |s: &mut S, v| s.restore_state(v).unwrap_err().to_string();
        assert!(err(s, serde_json::json!("x")).contains("JSON object"));
        let mut v = good.clone();
        v["kind"] = serde_json::json!("HyperBandForBOHB");
        assert!(err(s, v).contains("HyperBandForBOHB"));
        let mut v = good.clone();
        v["state"]["brackets"][0]["members"][0]["state"] = serde_json::json!("asleep");
        let e = err(s, v);
        assert!(e.contains("brackets[0].members[0].state"), "{e}");
        let mut v = good.clone();
        v["state"]["of_trial"] = serde_json::json!([7]);
        assert!(err(s, v).contains("bracket 7"));
        let mut other = HyperBand::builder(SCORE, Mode::Max).max_t(27.0).build().unwrap();
        let e = err(&mut other, good.clone());
        assert!(e.contains("options"), "{e}");
        assert_eq!(s.restore_state(good.clone()), Ok(()));
        assert_eq!(s.save_state(), good);
    }
}
