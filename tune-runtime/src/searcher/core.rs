//! What every searcher of this module shares: `points_to_evaluate`, the objective, the
//! record of pending and finished trials in the unit cube, the seeded generator and the
//! JSON state. Each algorithm only says where to look next ([`Algo::propose`]).

use std::collections::BTreeMap;
use std::fmt;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::unit::Codec;
use super::{Searcher, Suggestion};
use crate::metrics::{Metric, Metrics};
use crate::space::Space;
use crate::trial::{Auto, Key, Mode, TrialId, TrialResult};

/// The experiment's metric and mode, stored without the metrics type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Objective {
    metric: Option<usize>,
    auto: Option<Auto>,
    maximize: bool,
}

impl Objective {
    pub(crate) fn new<M: Metrics>(key: Key<M>, mode: Mode) -> Self {
        let (metric, auto) = match key {
            Key::Metric(m) => (Some(m.index()), None),
            Key::Auto(a) => (None, Some(a)),
        };
        Self { metric, auto, maximize: mode == Mode::Max }
    }

    /// The value of the metric in `r`.
    pub(crate) fn value<M: Metrics>(&self, r: &TrialResult<M>) -> f64 {
        match (self.metric, self.auto) {
            (Some(i), _) if i < M::NAMES.len() => r.get(Metric::<M>::new(i, M::NAMES[i])),
            (_, Some(a)) => r.get(a),
            _ => f64::NAN,
        }
    }

    /// A value of the metric as a loss (smaller is better).
    pub(crate) fn loss(&self, value: f64) -> f64 {
        if self.maximize { -value } else { value }
    }
}

/// What an algorithm wants next.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Proposal {
    /// This point of the unit cube.
    Point(Vec<f64>),
    /// A config drawn from the space's own prior.
    Prior,
    /// Nothing until more results come in.
    Wait,
    /// Nothing more, ever.
    Finished,
}

/// What an algorithm sees when asked for a point.
pub(crate) struct Ctx<'a> {
    pub(crate) codec: &'a Codec,
    /// Finished trials: point and loss.
    pub(crate) done: &'a [(Vec<f64>, f64)],
    /// Indices into `done`, best (smallest loss) first; ties in the order they finished.
    pub(crate) ranked: &'a [usize],
    /// Points of trials suggested but not finished.
    pub(crate) pending: Vec<&'a [f64]>,
    /// Rounds a unit point to the nearest config and back (integers, quanta, options).
    pub(crate) project: &'a dyn Fn(&[f64]) -> Option<Vec<f64>>,
    /// The trial the point is for.
    pub(crate) trial: u32,
}

/// One search algorithm over the unit cube.
pub(crate) trait Algo: Send + fmt::Debug + 'static {
    /// Results needed before [`Algo::propose`] is asked (the first ones come from the prior).
    fn startup(&self) -> usize {
        0
    }
    /// Called from `Searcher::setup`.
    fn setup(&mut self, codec: &Codec, num_samples: usize, rng: &mut ChaCha8Rng) {
        let _ = (codec, num_samples, rng);
    }
    fn propose(&mut self, ctx: &Ctx<'_>, rng: &mut ChaCha8Rng) -> Proposal;
    /// The end of a trial: its loss, or `None` when it failed or reported nothing.
    fn tell(&mut self, trial: u32, loss: Option<f64>) {
        let _ = (trial, loss);
    }
    /// An intermediate result at `budget` training iterations.
    fn observe(&mut self, trial: u32, point: &[f64], budget: u64, loss: f64) {
        let _ = (trial, point, budget, loss);
    }
    fn total(&self, num_samples: usize) -> Option<usize> {
        Some(num_samples)
    }
    /// Whether the experiment's `num_samples` caps the number of suggestions.
    fn capped(&self) -> bool {
        true
    }
    fn save(&self) -> Value {
        Value::Null
    }
    fn restore(&mut self, state: &Value) -> Result<(), String> {
        let _ = state;
        Ok(())
    }
}

/// A searcher made of the shared bookkeeping and one algorithm.
#[derive(Debug)]
pub(crate) struct ModelSearcher<C, A> {
    pub(crate) codec: Codec,
    pub(crate) algo: A,
    points: Vec<C>,
    next_point: usize,
    num_samples: usize,
    suggested: usize,
    seed: Option<u64>,
    objective: Option<Objective>,
    rng: ChaCha8Rng,
    pending: BTreeMap<u32, Vec<f64>>,
    done: Vec<(Vec<f64>, f64)>,
    /// `done` in rank order, kept up to date as trials finish (not sorted per suggestion).
    ranked: Vec<usize>,
}

/// Indices of `done`, smallest loss first, ties in index order.
fn rank(done: &[(Vec<f64>, f64)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..done.len()).collect();
    order.sort_by(|a, b| done[*a].1.total_cmp(&done[*b].1));
    order
}

impl<C: Space, A: Algo> ModelSearcher<C, A> {
    pub(crate) fn new(algo: A) -> Self {
        Self {
            codec: Codec::new(C::dims()),
            algo,
            points: Vec::new(),
            next_point: 0,
            num_samples: usize::MAX,
            suggested: 0,
            seed: None,
            objective: None,
            rng: ChaCha8Rng::seed_from_u64(0),
            pending: BTreeMap::new(),
            done: Vec::new(),
            ranked: Vec::new(),
        }
    }

    pub(crate) fn set_points(&mut self, points: Vec<C>) {
        self.points = points;
    }

    pub(crate) fn set_seed(&mut self, seed: u64) {
        self.seed = Some(seed);
    }

    fn record(&mut self, trial: u32, config: &C) {
        self.pending.insert(trial, self.codec.encode_unit(&config.encode()));
    }

    fn finish(&mut self, trial: u32, value: Option<f64>) {
        let point = self.pending.remove(&trial);
        let loss = match (self.objective, value) {
            (Some(o), Some(v)) if v.is_finite() => Some(o.loss(v)),
            _ => None,
        };
        if let (Some(p), Some(l)) = (point, loss) {
            // After every equal loss: the same order as a stable sort of `done`.
            let at = self.ranked.partition_point(|&i| self.done[i].1.total_cmp(&l).is_le());
            self.ranked.insert(at, self.done.len());
            self.done.push((p, l));
        }
        self.algo.tell(trial, loss);
    }
}

fn opt_vec(v: &[f64]) -> Value {
    Value::Array(v.iter().map(|x| if x.is_finite() { json!(x) } else { Value::Null }).collect())
}

fn vec_opt(v: &Value) -> Result<Vec<f64>, String> {
    let a = v.as_array().ok_or("expected an array of numbers")?;
    Ok(a.iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect())
}

/// Saves a ChaCha8 generator's position.
pub(crate) fn save_rng(rng: &ChaCha8Rng) -> Value {
    json!({
        "seed": rng.get_seed().to_vec(),
        "stream": rng.get_stream(),
        "word_pos": rng.get_word_pos().to_string(),
    })
}

/// Restores what [`save_rng`] saved.
pub(crate) fn restore_rng(v: &Value) -> Result<ChaCha8Rng, String> {
    let seed: [u8; 32] = serde_json::from_value(v["seed"].clone()).map_err(|e| e.to_string())?;
    let mut rng = ChaCha8Rng::from_seed(seed);
    rng.set_stream(v["stream"].as_u64().ok_or("missing `stream`")?);
    let pos: u128 =
        v["word_pos"].as_str().and_then(|s| s.parse().ok()).ok_or("missing `word_pos`")?;
    rng.set_word_pos(pos);
    Ok(rng)
}

impl<C: Space, M: Metrics, A: Algo> Searcher<C, M> for ModelSearcher<C, A> {
    fn setup(&mut self, num_samples: usize, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(self.seed.unwrap_or(seed));
        self.num_samples = num_samples;
        self.suggested = 0;
        self.next_point = 0;
        self.pending.clear();
        self.done.clear();
        self.ranked.clear();
        self.algo.setup(&self.codec, num_samples, &mut self.rng);
    }

    fn set_objective(&mut self, metric: Key<M>, mode: Mode) {
        self.objective = Some(Objective::new(metric, mode));
    }

    fn suggest(&mut self, trial: TrialId) -> Suggestion<C> {
        if self.algo.capped() && self.suggested >= self.num_samples {
            return Suggestion::Finished;
        }
        let id = trial.0;
        let config = if self.next_point < self.points.len() {
            self.next_point += 1;
            self.points[self.next_point - 1].clone()
        } else {
            let proposal = if self.done.len() < self.algo.startup() || self.objective.is_none() {
                Proposal::Prior
            } else {
                let project = |u: &[f64]| -> Option<Vec<f64>> {
                    let c = C::decode(&self.codec.decode_unit(u)).ok()?;
                    Some(self.codec.encode_unit(&c.encode()))
                };
                let ctx = Ctx {
                    codec: &self.codec,
                    done: &self.done,
                    ranked: &self.ranked,
                    pending: self.pending.values().map(Vec::as_slice).collect(),
                    project: &project,
                    trial: id,
                };
                self.algo.propose(&ctx, &mut self.rng)
            };
            match proposal {
                Proposal::Point(u) => match C::decode(&self.codec.decode_unit(&u)) {
                    Ok(c) => c,
                    Err(_) => C::sample(&mut self.rng),
                },
                Proposal::Prior => C::sample(&mut self.rng),
                Proposal::Wait => return Suggestion::NotNow,
                Proposal::Finished => return Suggestion::Finished,
            }
        };
        self.suggested += 1;
        self.record(id, &config);
        Suggestion::Config(config)
    }

    fn total_trials(&self) -> Option<usize> {
        self.algo.total(self.num_samples)
    }

    fn on_trial_result(&mut self, trial: TrialId, result: &TrialResult<M>) {
        let (Some(o), Some(p)) = (self.objective, self.pending.get(&trial.0)) else { return };
        let v = o.value(result);
        if v.is_finite() {
            self.algo.observe(trial.0, p, result.training_iteration, o.loss(v));
        }
    }

    fn on_trial_complete(&mut self, trial: TrialId, last: Option<&TrialResult<M>>, error: bool) {
        let value = match (self.objective, last) {
            (Some(o), Some(r)) if !error => Some(o.value(r)),
            _ => None,
        };
        self.finish(trial.0, value);
    }

    fn on_trial_complete_value(&mut self, trial: TrialId, value: Option<f64>) {
        self.finish(trial.0, value);
    }

    fn save_state(&self) -> Value {
        json!({
            "suggested": self.suggested,
            "next_point": self.next_point,
            "rng": save_rng(&self.rng),
            "pending": self.pending.iter().map(|(k, v)| json!([k, opt_vec(v)])).collect::<Vec<_>>(),
            "done": self.done.iter().map(|(p, l)| json!([opt_vec(p), l])).collect::<Vec<_>>(),
            "algo": self.algo.save(),
        })
    }

    fn restore_state(&mut self, state: Value) -> Result<(), String> {
        let count =
            |k: &str| state[k].as_u64().map(|n| n as usize).ok_or_else(|| format!("missing `{k}`"));
        let suggested = count("suggested")?;
        let next_point = count("next_point")?;
        let rng = restore_rng(&state["rng"])?;
        let mut pending = BTreeMap::new();
        for e in state["pending"].as_array().ok_or("missing `pending`")? {
            let id = e[0].as_u64().ok_or("bad `pending` entry")? as u32;
            pending.insert(id, vec_opt(&e[1])?);
        }
        let mut done = Vec::new();
        for e in state["done"].as_array().ok_or("missing `done`")? {
            done.push((vec_opt(&e[0])?, e[1].as_f64().ok_or("bad `done` entry")?));
        }
        self.algo.restore(&state["algo"])?;
        self.suggested = suggested;
        self.next_point = next_point;
        self.rng = rng;
        self.pending = pending;
        self.ranked = rank(&done);
        self.done = done;
        Ok(())
    }
}

/// Declares a public searcher type wrapping `ModelSearcher<C, $algo>`.
macro_rules! searcher_type {
    ($(#[$meta:meta])* $name:ident, $algo:ty) => {
        $(#[$meta])*
        pub struct $name<C> {
            pub(crate) inner: $crate::searcher::core::ModelSearcher<C, $algo>,
        }

        impl<C: $crate::space::Space> ::std::fmt::Debug for $name<C> {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($name)).field("algo", &self.inner.algo).finish()
            }
        }

        impl<C: $crate::space::Space> $name<C> {
            /// Configs to try first, in order, before any the algorithm picks (Ray Tune's
            /// `points_to_evaluate`). Their results count like any other.
            pub fn points_to_evaluate(mut self, points: Vec<C>) -> Self {
                self.inner.set_points(points);
                self
            }

            /// A seed of its own instead of the experiment's.
            pub fn seed(mut self, seed: u64) -> Self {
                self.inner.set_seed(seed);
                self
            }
        }

        impl<C: $crate::space::Space, M: $crate::metrics::Metrics>
            $crate::searcher::Searcher<C, M> for $name<C>
        {
            fn setup(&mut self, num_samples: usize, seed: u64) {
                <_ as $crate::searcher::Searcher<C, M>>::setup(&mut self.inner, num_samples, seed)
            }
            fn set_objective(&mut self, metric: $crate::trial::Key<M>, mode: $crate::trial::Mode) {
                self.inner.set_objective(metric, mode)
            }
            fn suggest(&mut self, trial: $crate::trial::TrialId) -> $crate::searcher::Suggestion<C> {
                <_ as $crate::searcher::Searcher<C, M>>::suggest(&mut self.inner, trial)
            }
            fn total_trials(&self) -> Option<usize> {
                <_ as $crate::searcher::Searcher<C, M>>::total_trials(&self.inner)
            }
            fn on_trial_result(
                &mut self,
                trial: $crate::trial::TrialId,
                result: &$crate::trial::TrialResult<M>,
            ) {
                self.inner.on_trial_result(trial, result)
            }
            fn on_trial_complete(
                &mut self,
                trial: $crate::trial::TrialId,
                last: Option<&$crate::trial::TrialResult<M>>,
                error: bool,
            ) {
                self.inner.on_trial_complete(trial, last, error)
            }
            fn on_trial_complete_value(&mut self, trial: $crate::trial::TrialId, value: Option<f64>) {
                <_ as $crate::searcher::Searcher<C, M>>::on_trial_complete_value(
                    &mut self.inner,
                    trial,
                    value,
                )
            }
            fn save_state(&self) -> ::serde_json::Value {
                <_ as $crate::searcher::Searcher<C, M>>::save_state(&self.inner)
            }
            fn restore_state(&mut self, state: ::serde_json::Value) -> Result<(), String> {
                <_ as $crate::searcher::Searcher<C, M>>::restore_state(&mut self.inner, state)
            }
        }
    };
}
pub(crate) use searcher_type;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::searcher::Tpe;
    use crate::searcher::test_support::{Cont2, result};
    use crate::testing::{SCORE, Score};

    /// The rank kept up to date trial by trial equals a stable sort of every finished
    /// trial (ties included), also after a save and restore.
    #[test]
    fn ranked_matches_a_stable_sort_with_ties() {
        let mut s = Tpe::<Cont2>::new().n_startup(100);
        <_ as Searcher<Cont2, Score>>::setup(&mut s, 100, 3);
        <_ as Searcher<Cont2, Score>>::set_objective(&mut s, SCORE.into(), Mode::Min);
        let losses = [3.0, 1.0, 2.0, 1.0, 5.0, -1.0, 2.0, 2.0, 0.0, 1.0, 7.0, -1.0];
        for (i, l) in losses.iter().enumerate() {
            let id = TrialId(i as u32);
            let c = <_ as Searcher<Cont2, Score>>::suggest(&mut s, id);
            assert!(matches!(c, Suggestion::Config(_)));
            s.on_trial_complete(id, Some(&result(i as u32, 1, *l)), false);
        }
        let inner = &s.inner;
        assert_eq!(inner.ranked, rank(&inner.done));
        assert_eq!(inner.ranked, vec![5, 11, 8, 1, 3, 9, 2, 6, 7, 0, 4, 10]);
        let state = <_ as Searcher<Cont2, Score>>::save_state(&s);
        let mut b = Tpe::<Cont2>::new();
        <_ as Searcher<Cont2, Score>>::restore_state(&mut b, state).unwrap();
        assert_eq!(b.inner.ranked, inner.ranked);
    }
}
