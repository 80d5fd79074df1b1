//! Ask-and-tell: drive any searcher from a loop of one's own, without the runner.

use std::marker::PhantomData;

use super::{Searcher, Suggestion, UnsupportedObjectives};
use crate::metrics::Metrics;
use crate::objectives::Objectives;
use crate::space::Space;
use crate::trial::{Key, Mode, TrialId, TrialResult};

/// A config to evaluate, from [`AskTell::ask`]; give it back with [`AskTell::tell`].
#[derive(Debug, Clone, PartialEq)]
pub struct Asked<C> {
    /// The trial's id (creation order).
    pub id: TrialId,
    /// The config to evaluate.
    pub config: C,
}

/// Drives a searcher from the caller's own loop (Optuna's ask-and-tell interface): `ask`
/// for a config, evaluate it, `tell` its metrics. Intermediate results can be reported
/// with [`AskTell::report`]; several configs may be out at once.
///
/// ```
/// use tune_runtime::prelude::*;
/// use tune_runtime::{searcher::{AskTell, Tpe}};
/// search_space! { struct Cfg { x: f64 = uniform(-5.0, 5.0) } }
/// #[derive(Debug, Clone, Metrics)] struct Out { loss: f64 }
///
/// let mut study = AskTell::new(Tpe::<Cfg>::new(), Out::LOSS, Mode::Min).seed(3).num_samples(40);
/// while let Some(trial) = study.ask() {
///     let loss = (trial.config.x - 1.0).powi(2);
///     study.tell(trial.id, Out { loss });
/// }
/// let (best, out) = study.best().unwrap();
/// assert!(out.loss < 0.5, "{best:?}");
/// ```
#[derive(Debug)]
pub struct AskTell<C, M: Metrics, S> {
    searcher: S,
    metric: Key<M>,
    mode: Mode,
    objectives: Option<Objectives<M>>,
    num_samples: usize,
    seed: u64,
    started: bool,
    next: u32,
    iterations: Vec<u64>,
    told: Vec<(C, Option<M>)>,
    configs: Vec<Option<C>>,
    _c: PhantomData<fn() -> C>,
}

impl<C: Space, M: Metrics, S: Searcher<C, M>> AskTell<C, M, S> {
    /// Drives `searcher` to optimize `metric` in `mode`; seed 0 and no limit on the number
    /// of configs unless set.
    pub fn new(searcher: S, metric: impl Into<Key<M>>, mode: Mode) -> Self {
        Self {
            searcher,
            metric: metric.into(),
            mode,
            objectives: None,
            num_samples: usize::MAX,
            seed: 0,
            started: false,
            next: 0,
            iterations: Vec::new(),
            told: Vec::new(),
            configs: Vec::new(),
            _c: PhantomData,
        }
    }

    /// Several objectives or constraints (the first objective replaces the metric given to
    /// `new`).
    ///
    /// # Errors
    ///
    /// [`UnsupportedObjectives`] when the searcher cannot optimize them.
    pub fn objectives(mut self, objectives: Objectives<M>) -> Result<Self, UnsupportedObjectives> {
        if let Some((k, m)) = objectives.goals().first() {
            (self.metric, self.mode) = (*k, *m);
        }
        self.searcher.set_objectives(&objectives)?;
        self.objectives = Some(objectives);
        Ok(self)
    }

    /// The seed of the searcher's generator (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// How many configs the searcher may suggest in all (default: no limit).
    pub fn num_samples(mut self, n: usize) -> Self {
        self.num_samples = n;
        self
    }

    fn start(&mut self) {
        if !self.started {
            self.started = true;
            self.searcher.setup(self.num_samples, self.seed);
            self.searcher.set_objective(self.metric, self.mode);
            if let Some(o) = &self.objectives {
                // Accepted in `objectives` already.
                let _ = self.searcher.set_objectives(o);
            }
        }
    }

    /// The next config to evaluate, or `None` when the searcher is finished or waits for
    /// results of configs still out (tell them first).
    pub fn ask(&mut self) -> Option<Asked<C>> {
        self.start();
        let id = TrialId(self.next);
        match self.searcher.suggest(id) {
            Suggestion::Config(config) => {
                self.next += 1;
                self.iterations.push(0);
                self.configs.push(Some(config.clone()));
                Some(Asked { id, config })
            }
            Suggestion::NotNow | Suggestion::Finished => None,
        }
    }

    fn result(&mut self, id: TrialId, metrics: M) -> Option<TrialResult<M>> {
        let it = self.iterations.get_mut(id.index())?;
        *it += 1;
        Some(TrialResult {
            metrics,
            trial_id: id,
            training_iteration: *it,
            time_this_iter_s: 0.0,
            time_total_s: 0.0,
            timestamp: 0,
            done: false,
        })
    }

    /// An intermediate result of a config still out (for searchers that learn from them,
    /// such as BOHB). Ignored for an id that was not asked or is told already.
    pub fn report(&mut self, id: TrialId, metrics: M) {
        if self.configs.get(id.index()).is_some_and(Option::is_some) {
            if let Some(r) = self.result(id, metrics) {
                self.searcher.on_trial_result(id, &r);
            }
        }
    }

    /// The final metrics of a config. Ignored for an id that was not asked or is told
    /// already.
    pub fn tell(&mut self, id: TrialId, metrics: M) {
        let Some(config) = self.configs.get_mut(id.index()).and_then(Option::take) else { return };
        if let Some(mut r) = self.result(id, metrics.clone()) {
            r.done = true;
            self.searcher.on_trial_result(id, &r);
            self.searcher.on_trial_complete(id, Some(&r), false);
        }
        self.told.push((config, Some(metrics)));
    }

    /// The evaluation of a config failed; the searcher learns nothing from it.
    pub fn tell_failed(&mut self, id: TrialId) {
        let Some(config) = self.configs.get_mut(id.index()).and_then(Option::take) else { return };
        self.searcher.on_trial_complete(id, None, true);
        self.told.push((config, None));
    }

    /// Every config told so far with its metrics (`None`: failed), in the order told.
    pub fn trials(&self) -> &[(C, Option<M>)] {
        &self.told
    }

    /// The told config with the best value of the metric (the first objective).
    pub fn best(&self) -> Option<(&C, &M)> {
        let value = |m: &M| {
            let r = TrialResult {
                metrics: m.clone(),
                trial_id: TrialId(0),
                training_iteration: 1,
                time_this_iter_s: 0.0,
                time_total_s: 0.0,
                timestamp: 0,
                done: true,
            };
            r.get(self.metric)
        };
        self.told
            .iter()
            .filter_map(|(c, m)| m.as_ref().map(|m| (c, m, value(m))))
            .filter(|(_, _, v)| !v.is_nan())
            .fold(None, |best: Option<(&C, &M, f64)>, x| match best {
                Some(b) if !self.mode.better(x.2, b.2) => Some(b),
                _ => Some(x),
            })
            .map(|(c, m, _)| (c, m))
    }

    /// The searcher (for example to save its state with [`Searcher::save_state`]).
    pub fn searcher(&self) -> &S {
        &self.searcher
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::searcher::test_support::*;
    use crate::searcher::{Nsga2, Tpe};
    use crate::testing::{SCORE, Score};

    #[test]
    fn asks_tells_and_matches_the_runner_protocol() {
        let mut a = AskTell::new(Tpe::<Cont2>::new(), SCORE, Mode::Min).seed(11).num_samples(30);
        let f = |c: &Cont2| (c.a - 1.0).powi(2) + (c.b - 2.0).powi(2);
        // Two out at once, the older told first: as `drive` with concurrency 2.
        let mut out = std::collections::VecDeque::new();
        let mut seen = Vec::new();
        loop {
            while out.len() < 2 {
                match a.ask() {
                    Some(t) => {
                        seen.push(t.config.clone());
                        out.push_back(t);
                    }
                    None => break,
                }
            }
            let Some(t) = out.pop_front() else { break };
            a.tell(t.id, Score { score: f(&t.config) });
        }
        assert_eq!(seen.len(), 30);
        let driven = drive(&mut Tpe::<Cont2>::new(), 30, 2, 11, |c: &Cont2| {
            (c.a - 1.0).powi(2) + (c.b - 2.0).powi(2)
        });
        assert_eq!(seen, driven, "the same suggestions as under the test driver");
        let (best, m) = a.best().unwrap();
        assert_eq!(m.score, f(best));
        assert!(seen.iter().all(|c| f(c) >= m.score));
        // Telling twice or an unknown id changes nothing.
        a.tell(TrialId(0), Score { score: -100.0 });
        a.tell(TrialId(99), Score { score: -100.0 });
        assert_eq!(a.trials().len(), 30);
    }

    #[test]
    fn several_objectives_need_a_searcher_that_takes_them() {
        let o = Objectives::new().minimize(F1).minimize(F2);
        assert!(AskTell::new(Nsga2::<Cont2>::new(), F1, Mode::Min).objectives(o.clone()).is_ok());
        let e = AskTell::new(crate::searcher::CmaEs::<Cont2>::new().unwrap(), F1, Mode::Min)
            .objectives(o)
            .unwrap_err();
        assert!(e.to_string().contains("CmaEs"), "{e}");
    }
}
