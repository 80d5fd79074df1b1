//! What every searcher of this module shares: `points_to_evaluate`, warm start, the
//! objectives and constraints, the record of pending and finished trials in the unit cube,
//! the seeded generator, a quasi-random start and the saved state. Each algorithm only
//! says where to look next ([`Algo::propose`]).

use std::collections::BTreeMap;
use std::fmt;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::unit::Codec;
use super::{Searcher, Suggestion, UnsupportedObjectives};
use crate::metrics::Metrics;
use crate::objectives::{Objectives, Outcome, Spec, violation};
use crate::space::Space;
use crate::state::{self, StateError, nonfinite};
use crate::trial::{Key, Mode, TrialId, TrialResult};

/// A finished trial as the algorithms see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Obs {
    /// Its config in the unit cube (NaN where inactive).
    #[serde(with = "nonfinite")]
    pub(crate) point: Vec<f64>,
    /// Every objective as a loss (smaller is better).
    #[serde(with = "nonfinite")]
    pub(crate) losses: Vec<f64>,
    /// Constraint values, feasible when all are at most 0 (empty without constraints).
    #[serde(with = "nonfinite", default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) cons: Vec<f64>,
}

impl Obs {
    /// The first objective's loss: what single-objective algorithms minimize.
    pub(crate) fn loss(&self) -> f64 {
        self.losses[0]
    }

    /// The sum of the constraints' excesses (0: feasible).
    pub(crate) fn violation(&self) -> f64 {
        violation(&self.cons)
    }

    /// The single-objective order: feasible trials by loss, then infeasible ones by
    /// violation.
    fn rank_key(&self) -> (bool, f64) {
        let v = self.violation();
        if v > 0.0 { (true, v) } else { (false, self.loss()) }
    }
}

fn rank_cmp(a: &Obs, b: &Obs) -> std::cmp::Ordering {
    let (ka, kb) = (a.rank_key(), b.rank_key());
    ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
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
    /// Finished trials.
    pub(crate) done: &'a [Obs],
    /// Indices into `done`, best first (feasible by loss of the first objective, then
    /// infeasible by violation); ties in the order they finished.
    pub(crate) ranked: &'a [usize],
    /// Points of trials suggested but not finished.
    pub(crate) pending: Vec<&'a [f64]>,
    /// Rounds a unit point to the nearest config and back (integers, quanta, options).
    pub(crate) project: &'a dyn Fn(&[f64]) -> Option<Vec<f64>>,
    /// The trial the point is for.
    pub(crate) trial: u32,
    /// Number of objectives.
    pub(crate) goals: usize,
}

/// One search algorithm over the unit cube.
pub(crate) trait Algo: Send + fmt::Debug + 'static {
    /// The name in saved states and errors (the public type's name).
    const NAME: &'static str;
    /// What it saves for a resume.
    type State: Serialize + DeserializeOwned;

    /// Results needed before [`Algo::propose`] is asked (the first ones come from the prior).
    fn startup(&self) -> usize {
        0
    }
    /// Called from `Searcher::setup`.
    fn setup(&mut self, codec: &Codec, num_samples: usize, rng: &mut ChaCha8Rng) {
        let _ = (codec, num_samples, rng);
    }
    /// Whether it can optimize `goals` objectives under `constraints` constraints; the
    /// error says what to use instead.
    fn supports(&self, goals: usize, constraints: usize) -> Result<(), String> {
        if goals == 1 && constraints == 0 {
            Ok(())
        } else {
            Err("it optimizes one objective without constraints; use Tpe, GpBo or Nsga2".into())
        }
    }
    fn propose(&mut self, ctx: &Ctx<'_>, rng: &mut ChaCha8Rng) -> Proposal;
    /// The end of a trial: what it scored, or `None` when it failed or reported nothing.
    fn tell(&mut self, trial: u32, obs: Option<&Obs>) {
        let _ = (trial, obs);
    }
    /// An intermediate result at `budget` training iterations (first objective's loss).
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
    fn save(&self) -> Self::State;
    fn restore(&mut self, state: Self::State) -> Result<(), StateError>;
}

/// How the first `startup` configs of a model-based searcher are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// From the space's prior.
    Prior,
    /// From a scrambled Sobol sequence over the unit cube.
    Sobol,
}

/// A finished trial given before the experiment: its config and its result row (metrics,
/// then the automatic fields).
pub(crate) type WarmTrial<C> = (C, Vec<f64>);

/// Reads a result row of the experiment's metrics type as an outcome.
type ReadRow = fn(&Spec, &[f64]) -> Option<Outcome>;

/// A searcher made of the shared bookkeeping and one algorithm.
#[derive(Debug)]
pub(crate) struct ModelSearcher<C, A> {
    pub(crate) codec: Codec,
    pub(crate) algo: A,
    points: Vec<C>,
    next_point: usize,
    warm: Vec<WarmTrial<C>>,
    /// Reads a warm trial's row once the metrics type is known (in `set_objective`).
    warm_outcome: Option<ReadRow>,
    num_samples: usize,
    suggested: usize,
    seed: Option<u64>,
    spec: Option<Spec>,
    rng: ChaCha8Rng,
    start: Start,
    sobol_seed: u32,
    sobol_next: u32,
    pending: BTreeMap<u32, Vec<f64>>,
    done: Vec<Obs>,
    /// `done` in rank order, kept up to date as trials finish (not sorted per suggestion).
    ranked: Vec<usize>,
}

/// What [`ModelSearcher`] saves.
#[derive(Serialize, Deserialize)]
struct Saved<S> {
    suggested: usize,
    next_point: usize,
    rng: ChaCha8Rng,
    #[serde(default)]
    sobol_next: u32,
    #[serde(with = "nonfinite")]
    pending: Vec<(u32, Vec<f64>)>,
    done: Vec<Obs>,
    algo: S,
}

/// Indices of `done`, best first, ties in index order.
fn rank(done: &[Obs]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..done.len()).collect();
    order.sort_by(|a, b| rank_cmp(&done[*a], &done[*b]));
    order
}

impl<C: Space, A: Algo> ModelSearcher<C, A> {
    pub(crate) fn new(algo: A) -> Self {
        Self {
            codec: Codec::new(C::dims()),
            algo,
            points: Vec::new(),
            next_point: 0,
            warm: Vec::new(),
            warm_outcome: None,
            num_samples: usize::MAX,
            suggested: 0,
            seed: None,
            spec: None,
            rng: ChaCha8Rng::seed_from_u64(0),
            start: Start::Prior,
            sobol_seed: 0,
            sobol_next: 0,
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

    pub(crate) fn set_start(&mut self, start: Start) {
        self.start = start;
    }

    pub(crate) fn add_warm<M: Metrics>(&mut self, trials: Vec<WarmTrial<C>>) {
        self.warm.extend(trials);
        self.warm_outcome = Some(|spec, row| spec.of_row::<M>(row));
    }

    /// Puts the warm-start trials in `done` (again), now that the objectives are known.
    fn absorb_warm(&mut self) {
        let (Some(spec), Some(read)) = (&self.spec, self.warm_outcome) else { return };
        if self.suggested > 0 {
            return;
        }
        let mut done = Vec::with_capacity(self.warm.len());
        for (config, row) in &self.warm {
            if let Some(o) = read(spec, row) {
                let point = self.codec.encode_unit(&config.encode());
                done.push(Obs { point, losses: o.losses, cons: o.cons });
            }
        }
        self.ranked = rank(&done);
        self.done = done;
    }

    fn record(&mut self, trial: u32, config: &C) {
        self.pending.insert(trial, self.codec.encode_unit(&config.encode()));
    }

    fn finish(&mut self, trial: u32, outcome: Option<Outcome>) {
        let point = self.pending.remove(&trial);
        let obs = match (point, outcome) {
            (Some(point), Some(o)) => Some(Obs { point, losses: o.losses, cons: o.cons }),
            _ => None,
        };
        if let Some(obs) = &obs {
            // After every equal key: the same order as a stable sort of `done`.
            let at = self
                .ranked
                .partition_point(|&i| rank_cmp(&self.done[i], obs) != std::cmp::Ordering::Greater);
            self.ranked.insert(at, self.done.len());
            self.done.push(obs.clone());
        }
        self.algo.tell(trial, obs.as_ref());
    }

    /// One objective's value as an outcome (constraints cannot be read from it).
    fn outcome_of_value(&self, value: Option<f64>) -> Option<Outcome> {
        let spec = self.spec.as_ref()?;
        let v = value.filter(|v| v.is_finite())?;
        let losses = vec![spec.loss(v)];
        Some(Outcome { losses, cons: vec![0.0; spec.num_constraints()] })
    }
}

impl<C: Space, M: Metrics, A: Algo> Searcher<C, M> for ModelSearcher<C, A> {
    fn setup(&mut self, num_samples: usize, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(self.seed.unwrap_or(seed));
        self.num_samples = num_samples;
        self.suggested = 0;
        self.next_point = 0;
        self.sobol_next = 0;
        self.pending.clear();
        self.done.clear();
        self.ranked.clear();
        if self.start == Start::Sobol {
            self.sobol_seed = self.rng.random();
        }
        self.algo.setup(&self.codec, num_samples, &mut self.rng);
        self.absorb_warm();
    }

    fn set_objective(&mut self, metric: Key<M>, mode: Mode) {
        self.spec = Some(Spec::single(metric, mode));
        self.absorb_warm();
    }

    fn set_objectives(&mut self, objectives: &Objectives<M>) -> Result<(), UnsupportedObjectives> {
        self.algo
            .supports(objectives.len(), objectives.constraints().len())
            .map_err(|reason| UnsupportedObjectives { searcher: A::NAME, reason })?;
        self.spec = Some(Spec::new(objectives));
        self.absorb_warm();
        Ok(())
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
            let starting = self.done.len() < self.algo.startup() || self.spec.is_none();
            let proposal = if starting && self.start == Start::Sobol {
                self.sobol_next += 1;
                Proposal::Point(super::qmc::point(
                    &self.codec,
                    self.sobol_next - 1,
                    self.sobol_seed,
                ))
            } else if starting {
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
                    goals: self.spec.as_ref().map_or(1, Spec::num_goals),
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

    fn on_trial_added(&mut self, trial: TrialId, config: &C) {
        if !self.pending.contains_key(&trial.0) {
            self.suggested += 1;
        }
        self.record(trial.0, config);
    }

    fn on_trial_result(&mut self, trial: TrialId, result: &TrialResult<M>) {
        let (Some(spec), Some(p)) = (&self.spec, self.pending.get(&trial.0)) else { return };
        let v = spec.value(result);
        if v.is_finite() {
            self.algo.observe(trial.0, p, result.training_iteration, spec.loss(v));
        }
    }

    fn on_trial_complete(&mut self, trial: TrialId, last: Option<&TrialResult<M>>, error: bool) {
        let outcome = match (&self.spec, last) {
            (Some(spec), Some(r)) if !error => spec.of_result(r),
            _ => None,
        };
        self.finish(trial.0, outcome);
    }

    fn on_trial_complete_value(&mut self, trial: TrialId, value: Option<f64>) {
        let outcome = self.outcome_of_value(value);
        self.finish(trial.0, outcome);
    }

    fn save_state(&self) -> Value {
        let saved = Saved {
            suggested: self.suggested,
            next_point: self.next_point,
            rng: self.rng.clone(),
            sobol_next: self.sobol_next,
            pending: self.pending.iter().map(|(k, v)| (*k, v.clone())).collect(),
            done: self.done.clone(),
            algo: self.algo.save(),
        };
        state::save(A::NAME, &saved)
    }

    fn restore_state(&mut self, state: Value) -> Result<(), StateError> {
        let s: Saved<A::State> = state::load(A::NAME, state)?;
        let d = self.codec.len();
        let bad = |p: &[f64]| p.len() != d;
        if s.pending.iter().any(|(_, p)| bad(p)) || s.done.iter().any(|o| bad(&o.point)) {
            return Err(state::mismatch(
                A::NAME,
                format!("the saved points do not have the {d} dimensions of this space"),
            ));
        }
        if s.done.iter().any(|o| o.losses.is_empty()) {
            return Err(state::malformed(A::NAME, "done", "a finished trial has no loss"));
        }
        self.algo.restore(s.algo)?;
        self.suggested = s.suggested;
        self.next_point = s.next_point;
        self.rng = s.rng;
        self.sobol_next = s.sobol_next;
        self.pending = s.pending.into_iter().collect();
        self.ranked = rank(&s.done);
        self.done = s.done;
        Ok(())
    }
}

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

    #[test]
    fn infeasible_trials_rank_after_feasible_ones_by_violation() {
        let obs = |l: f64, c: f64| Obs { point: vec![0.5], losses: vec![l], cons: vec![c] };
        let done = vec![obs(1.0, 0.0), obs(-5.0, 2.0), obs(3.0, -1.0), obs(-9.0, 0.5)];
        assert_eq!(rank(&done), vec![0, 2, 3, 1]);
    }

    #[test]
    fn restore_refuses_another_searcher_or_space() {
        let mut s = Tpe::<Cont2>::new();
        <_ as Searcher<Cont2, Score>>::setup(&mut s, 10, 3);
        let state = <_ as Searcher<Cont2, Score>>::save_state(&s);
        let mut g = crate::searcher::GpBo::<Cont2>::new();
        let e = <_ as Searcher<Cont2, Score>>::restore_state(&mut g, state.clone()).unwrap_err();
        assert!(matches!(e, StateError::WrongKind { expected: "GpBo", .. }), "{e}");
        let mut bad = state;
        bad["state"]["pending"] = serde_json::json!([[1, [0.5]]]);
        let e = <_ as Searcher<Cont2, Score>>::restore_state(&mut s, bad).unwrap_err();
        assert!(matches!(e, StateError::Mismatch { .. }), "{e}");
    }
}
