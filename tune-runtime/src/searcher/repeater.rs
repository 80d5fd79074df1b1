//! A wrapper that evaluates each config several times and reports the mean.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Searcher, Suggestion, UnsupportedObjectives};
use crate::metrics::Metrics;
use crate::objectives::{Objectives, Spec};
use crate::space::Space;
use crate::state::{self, StateError, nonfinite};
use crate::trial::{Key, Mode, TrialId, TrialResult};

/// Runs each config of the wrapped searcher `repeat` times (Ray Tune's `Repeater`), for
/// noisy objectives: the wrapped searcher sees one trial per config, whose value is the
/// mean of the experiment's metric over the repeats that did not fail (through
/// [`Searcher::on_trial_complete_value`]; a group where every repeat failed counts as a
/// failure). Intermediate results are not passed on.
///
/// The experiment's `num_samples` counts trials, so the wrapped searcher is set up with
/// `num_samples / repeat` (rounded up) configs; the repeats of one config are suggested
/// one after the other and may run in parallel. To tell repeats apart in the trainable,
/// give the config a field sampled at random (a seed).
#[derive(Debug)]
pub struct Repeater<C, S> {
    inner: S,
    repeat: usize,
    objective: Option<Spec>,
    /// The config being repeated, its group (the first trial) and repeats left to suggest.
    current: Option<(C, TrialId, usize)>,
    group_of: BTreeMap<TrialId, TrialId>,
    /// Group → values of finished repeats (None: failed).
    results: BTreeMap<TrialId, Vec<Option<f64>>>,
}

impl<C, S> Repeater<C, S> {
    /// Wraps `inner`, running each of its configs `repeat` (at least 1) times.
    pub fn new(inner: S, repeat: usize) -> Self {
        Self {
            inner,
            repeat: repeat.max(1),
            objective: None,
            current: None,
            group_of: BTreeMap::new(),
            results: BTreeMap::new(),
        }
    }

    /// The wrapped searcher.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<C: Space, S> Repeater<C, S> {
    fn finish<M: Metrics>(&mut self, trial: TrialId, value: Option<f64>)
    where
        S: Searcher<C, M>,
    {
        let Some(group) = self.group_of.remove(&trial) else { return };
        let done = {
            let v = self.results.entry(group).or_default();
            v.push(value);
            v.len() >= self.repeat
        };
        if done {
            let vals: Vec<f64> = self
                .results
                .remove(&group)
                .unwrap_or_default()
                .into_iter()
                .flatten()
                .filter(|v| v.is_finite())
                .collect();
            let mean = (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64);
            self.inner.on_trial_complete_value(group, mean);
        }
    }
}

impl<C: Space, M: Metrics, S: Searcher<C, M>> Searcher<C, M> for Repeater<C, S> {
    fn setup(&mut self, num_samples: usize, seed: u64) {
        self.current = None;
        self.group_of.clear();
        self.results.clear();
        self.inner.setup(num_samples.div_ceil(self.repeat), seed);
    }

    fn set_objective(&mut self, metric: Key<M>, mode: Mode) {
        self.objective = Some(Spec::single(metric, mode));
        self.inner.set_objective(metric, mode);
    }

    /// Only one objective without constraints: the mean of several values of one metric is
    /// what the wrapped searcher sees.
    fn set_objectives(&mut self, objectives: &Objectives<M>) -> Result<(), UnsupportedObjectives> {
        if objectives.len() != 1 || !objectives.constraints().is_empty() {
            return Err(UnsupportedObjectives {
                searcher: "Repeater",
                reason: "it averages one objective over the repeats; use one objective and no \
                         constraints, or drop the Repeater"
                    .into(),
            });
        }
        self.inner.set_objectives(objectives)
    }

    fn suggest(&mut self, trial: TrialId) -> Suggestion<C> {
        if let Some((config, group, left)) = &mut self.current {
            if *left > 0 {
                *left -= 1;
                let (config, group) = (config.clone(), *group);
                self.group_of.insert(trial, group);
                return Suggestion::Config(config);
            }
        }
        match self.inner.suggest(trial) {
            Suggestion::Config(c) => {
                self.current = Some((c.clone(), trial, self.repeat - 1));
                self.group_of.insert(trial, trial);
                Suggestion::Config(c)
            }
            other => other,
        }
    }

    fn total_trials(&self) -> Option<usize> {
        self.inner.total_trials().map(|n| n.saturating_mul(self.repeat))
    }

    fn on_trial_complete(&mut self, trial: TrialId, last: Option<&TrialResult<M>>, error: bool) {
        let value = match (&self.objective, last) {
            (Some(o), Some(r)) if !error => Some(o.value(r)),
            _ => None,
        };
        self.finish::<M>(trial, value);
    }

    fn on_trial_complete_value(&mut self, trial: TrialId, value: Option<f64>) {
        self.finish::<M>(trial, value);
    }

    fn save_state(&self) -> Value {
        let saved = Saved {
            current: self.current.as_ref().map(|(c, g, l)| (c.clone(), g.0, *l)),
            group_of: self.group_of.iter().map(|(t, g)| (t.0, g.0)).collect(),
            results: self.results.iter().map(|(g, v)| (g.0, v.clone())).collect(),
            inner: self.inner.save_state(),
        };
        state::save("Repeater", &saved)
    }

    fn restore_state(&mut self, value: Value) -> Result<(), StateError> {
        let saved: Saved<C> = state::load("Repeater", value)?;
        if let Some((c, _, _)) = &saved.current {
            c.validate().map_err(|e| state::malformed("Repeater", "current", &e.to_string()))?;
        }
        self.inner.restore_state(saved.inner)?;
        self.current = saved.current.map(|(c, g, l)| (c, TrialId(g), l));
        self.group_of = saved.group_of.into_iter().map(|(t, g)| (TrialId(t), TrialId(g))).collect();
        self.results = saved.results.into_iter().map(|(g, v)| (TrialId(g), v)).collect();
        Ok(())
    }
}

/// What [`Repeater`] saves: the config being repeated, each trial's group, the values of
/// finished repeats, and the inner state.
#[derive(Serialize, Deserialize)]
#[serde(bound = "C: Space")]
struct Saved<C> {
    current: Option<(C, u32, usize)>,
    group_of: Vec<(u32, u32)>,
    #[serde(with = "nonfinite")]
    results: Vec<(u32, Vec<Option<f64>>)>,
    inner: Value,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::searcher::test_support::*;
    use crate::searcher::{RandomSearch, Tpe};
    use crate::testing::Score;

    /// Records what reaches the wrapped searcher.
    #[derive(Debug, Default)]
    struct Spy {
        inner: Option<RandomSearch<Cont2>>,
        values: Vec<(TrialId, Option<f64>)>,
        samples: usize,
    }

    impl Searcher<Cont2, Score> for Spy {
        fn setup(&mut self, n: usize, seed: u64) {
            self.samples = n;
            let mut r = RandomSearch::new();
            <_ as Searcher<Cont2, Score>>::setup(&mut r, n, seed);
            self.inner = Some(r);
        }
        fn suggest(&mut self, trial: TrialId) -> Suggestion<Cont2> {
            <_ as Searcher<Cont2, Score>>::suggest(self.inner.as_mut().unwrap(), trial)
        }
        fn on_trial_complete_value(&mut self, trial: TrialId, value: Option<f64>) {
            self.values.push((trial, value));
        }
    }

    #[test]
    fn repeats_each_config_and_reports_the_mean() {
        let mut s = Repeater::new(Spy::default(), 3);
        let mut run = Run::start(&mut s, 9, 0);
        // Loss differs per repeat: trial id parity stands in for noise.
        while run.step(&mut s, 4, |c: &Cont2| c.a) {}
        assert_eq!(s.inner().samples, 3);
        assert_eq!(run.configs.len(), 9);
        for g in run.configs.chunks(3) {
            assert!(g[0] == g[1] && g[1] == g[2]);
        }
        let v = &s.inner().values;
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].0, TrialId(0));
        assert!((v[0].1.unwrap() - run.configs[0].a).abs() < 1e-12);
        // Failures are left out of the mean.
        let mut s = Repeater::new(Spy::default(), 2);
        <_ as Searcher<Cont2, Score>>::setup(&mut s, 2, 0);
        let _ = <_ as Searcher<Cont2, Score>>::suggest(&mut s, TrialId(0));
        let _ = <_ as Searcher<Cont2, Score>>::suggest(&mut s, TrialId(1));
        <_ as Searcher<Cont2, Score>>::on_trial_complete(&mut s, TrialId(0), None, true);
        <_ as Searcher<Cont2, Score>>::on_trial_complete_value(&mut s, TrialId(1), Some(4.0));
        assert_eq!(s.inner().values, vec![(TrialId(0), Some(4.0))]);
    }

    #[test]
    fn state_round_trip() {
        round_trip(|| Repeater::new(Tpe::<Cond>::new().n_startup(3), 2), cond_loss);
    }
}
