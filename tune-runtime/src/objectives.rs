//! Several objectives and constraints, each named by a typed metric handle: what
//! multi-objective and constraint-aware searchers and schedulers optimize, and what the
//! Pareto front of an [`Analysis`](crate::Analysis) is taken over.

use std::fmt;

use crate::metrics::{Metric, Metrics};
use crate::trial::{Auto, Key, Mode, TrialResult};

/// A bound a metric must satisfy for a trial to be *feasible*.
///
/// ```
/// # use tune_runtime::prelude::*;
/// # #[derive(Debug, Clone, Metrics)] struct M { loss: f64, memory_gb: f64 }
/// use tune_runtime::Constraint;
/// let fits = Constraint::at_most(M::MEMORY_GB, 16.0);
/// assert_eq!(fits.value(|_| 20.0), 4.0);   // 4 over: infeasible
/// assert_eq!(fits.value(|_| 12.0), -4.0);  // <= 0: feasible
/// ```
pub struct Constraint<M> {
    key: Key<M>,
    bound: f64,
    at_most: bool,
}

impl<M> Clone for Constraint<M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M> Copy for Constraint<M> {}
impl<M> fmt::Debug for Constraint<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.at_most { "<=" } else { ">=" };
        write!(f, "{} {op} {}", self.key.name(), self.bound)
    }
}

impl<M> Constraint<M> {
    /// The metric must be at most `bound`.
    pub fn at_most(key: impl Into<Key<M>>, bound: f64) -> Self {
        Self { key: key.into(), bound, at_most: true }
    }

    /// The metric must be at least `bound`.
    pub fn at_least(key: impl Into<Key<M>>, bound: f64) -> Self {
        Self { key: key.into(), bound, at_most: false }
    }

    /// The constrained metric.
    pub fn key(&self) -> Key<M> {
        self.key
    }

    /// The constraint's value for a result whose fields `get` reads: at most 0 when the
    /// bound holds, otherwise by how much it is missed. A NaN metric misses it by `+inf`.
    pub fn value(&self, get: impl Fn(Key<M>) -> f64) -> f64 {
        let v = get(self.key);
        let c = if self.at_most { v - self.bound } else { self.bound - v };
        if c.is_nan() { f64::INFINITY } else { c }
    }
}

/// The objectives of an experiment (each a metric and whether to minimize or maximize
/// it) and its constraints. Pass it to [`Tuner::objectives`](crate::Tuner::objectives);
/// the same value picks the Pareto front of the [`Analysis`](crate::Analysis).
///
/// ```
/// # use tune_runtime::prelude::*;
/// # #[derive(Debug, Clone, Metrics)] struct M { error: f64, latency_ms: f64, memory_gb: f64 }
/// use tune_runtime::{Constraint, Objectives};
/// let objectives = Objectives::new()
///     .minimize(M::ERROR)
///     .minimize(M::LATENCY_MS)
///     .constraint(Constraint::at_most(M::MEMORY_GB, 16.0));
/// assert_eq!(objectives.len(), 2);
/// ```
pub struct Objectives<M> {
    goals: Vec<(Key<M>, Mode)>,
    constraints: Vec<Constraint<M>>,
}

impl<M> Clone for Objectives<M> {
    fn clone(&self) -> Self {
        Self { goals: self.goals.clone(), constraints: self.constraints.clone() }
    }
}
impl<M> fmt::Debug for Objectives<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Objectives")
            .field("goals", &self.goals)
            .field("constraints", &self.constraints)
            .finish()
    }
}
impl<M> Default for Objectives<M> {
    fn default() -> Self {
        Self { goals: Vec::new(), constraints: Vec::new() }
    }
}

impl<M> Objectives<M> {
    /// No objective yet: add them with [`Objectives::minimize`] and
    /// [`Objectives::maximize`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A single objective.
    pub fn single(key: impl Into<Key<M>>, mode: Mode) -> Self {
        Self::new().objective(key, mode)
    }

    /// Adds an objective to minimize.
    pub fn minimize(self, key: impl Into<Key<M>>) -> Self {
        self.objective(key, Mode::Min)
    }

    /// Adds an objective to maximize.
    pub fn maximize(self, key: impl Into<Key<M>>) -> Self {
        self.objective(key, Mode::Max)
    }

    /// Adds an objective with its mode.
    pub fn objective(mut self, key: impl Into<Key<M>>, mode: Mode) -> Self {
        self.goals.push((key.into(), mode));
        self
    }

    /// Adds a constraint: trials that miss it are infeasible, and never on the Pareto
    /// front nor the best trial.
    pub fn constraint(mut self, constraint: Constraint<M>) -> Self {
        self.constraints.push(constraint);
        self
    }

    /// The objectives, in the order they were added.
    pub fn goals(&self) -> &[(Key<M>, Mode)] {
        &self.goals
    }

    /// The constraints.
    pub fn constraints(&self) -> &[Constraint<M>] {
        &self.constraints
    }

    /// Number of objectives.
    pub fn len(&self) -> usize {
        self.goals.len()
    }

    /// Whether there is no objective.
    pub fn is_empty(&self) -> bool {
        self.goals.is_empty()
    }

    /// Every objective as a loss (maximized ones negated) for a result whose fields `get`
    /// reads.
    pub(crate) fn losses(&self, get: impl Fn(Key<M>) -> f64) -> Vec<f64> {
        self.goals.iter().map(|(k, m)| loss(get(*k), *m)).collect()
    }

    /// Every constraint's value (feasible when all are at most 0).
    pub(crate) fn constraint_values(&self, get: impl Fn(Key<M>) -> f64) -> Vec<f64> {
        self.constraints.iter().map(|c| c.value(&get)).collect()
    }
}

/// A value as a loss: maximized metrics are negated.
pub(crate) fn loss(value: f64, mode: Mode) -> f64 {
    if mode == Mode::Max { -value } else { value }
}

/// A result field named without the metrics type (what searchers store).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    Metric(usize),
    Auto(Auto),
}

impl Field {
    fn new<M>(key: Key<M>) -> Self {
        match key {
            Key::Metric(m) => Field::Metric(m.index()),
            Key::Auto(a) => Field::Auto(a),
        }
    }

    fn get<M: Metrics>(self, r: &TrialResult<M>) -> f64 {
        match self {
            Field::Metric(i) if i < M::NAMES.len() => r.get(Metric::<M>::new(i, M::NAMES[i])),
            Field::Auto(a) => r.get(a),
            Field::Metric(_) => f64::NAN,
        }
    }

    /// In a flat result row (metrics first, then [`Auto::ALL`]).
    fn in_row<M: Metrics>(self, row: &[f64]) -> f64 {
        let i = match self {
            Field::Metric(i) => i,
            Field::Auto(a) => M::NAMES.len() + Auto::ALL.iter().position(|x| *x == a).unwrap_or(0),
        };
        row.get(i).copied().unwrap_or(f64::NAN)
    }
}

/// What a trial's result is to a searcher or scheduler: its objectives as losses and its
/// constraint values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    pub(crate) losses: Vec<f64>,
    pub(crate) cons: Vec<f64>,
}

/// The sum of the positive parts of constraint values (0: feasible).
pub(crate) fn violation(cons: &[f64]) -> f64 {
    cons.iter().map(|c| if c.is_nan() { f64::INFINITY } else { c.max(0.0) }).sum()
}

/// [`Objectives`] with the metrics type erased.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spec {
    goals: Vec<(Field, Mode)>,
    cons: Vec<(Field, f64, bool)>,
}

impl Spec {
    pub(crate) fn single<M>(key: Key<M>, mode: Mode) -> Self {
        Self { goals: vec![(Field::new(key), mode)], cons: Vec::new() }
    }

    pub(crate) fn new<M>(o: &Objectives<M>) -> Self {
        Self {
            goals: o.goals.iter().map(|(k, m)| (Field::new(*k), *m)).collect(),
            cons: o.constraints.iter().map(|c| (Field::new(c.key), c.bound, c.at_most)).collect(),
        }
    }

    pub(crate) fn num_goals(&self) -> usize {
        self.goals.len()
    }

    pub(crate) fn num_constraints(&self) -> usize {
        self.cons.len()
    }

    /// The first objective's value in `r` (NaN when there is none).
    pub(crate) fn value<M: Metrics>(&self, r: &TrialResult<M>) -> f64 {
        self.goals.first().map_or(f64::NAN, |(f, _)| f.get(r))
    }

    /// A value of the first objective as a loss.
    pub(crate) fn loss(&self, value: f64) -> f64 {
        self.goals.first().map_or(value, |(_, m)| loss(value, *m))
    }

    fn outcome(&self, get: impl Fn(Field) -> f64) -> Option<Outcome> {
        let losses: Vec<f64> = self.goals.iter().map(|(f, m)| loss(get(*f), *m)).collect();
        if losses.is_empty() || losses.iter().any(|l| !l.is_finite()) {
            return None;
        }
        let cons = self
            .cons
            .iter()
            .map(|(f, bound, at_most)| {
                let v = get(*f);
                let c = if *at_most { v - bound } else { bound - v };
                if c.is_nan() { f64::INFINITY } else { c }
            })
            .collect();
        Some(Outcome { losses, cons })
    }

    /// The outcome of a result; `None` when an objective is not a finite number.
    pub(crate) fn of_result<M: Metrics>(&self, r: &TrialResult<M>) -> Option<Outcome> {
        self.outcome(|f| f.get(r))
    }

    /// The outcome of a flat result row of `M`.
    pub(crate) fn of_row<M: Metrics>(&self, row: &[f64]) -> Option<Outcome> {
        self.outcome(|f| f.in_row::<M>(row))
    }
}

// -- Analysis: Pareto front, hypervolume, feasible best, importance (issue #14) --

impl<C: crate::space::Space, M: Metrics> crate::analysis::Analysis<C, M> {
    /// Each trial with results, with its last result's objectives as losses and its
    /// constraints' total excess.
    fn outcomes(
        &self,
        objectives: &Objectives<M>,
    ) -> Vec<(&crate::analysis::TrialInfo<C, M>, Vec<f64>, f64)> {
        self.trials()
            .iter()
            .filter_map(|t| {
                let r = t.last_result()?;
                let losses = objectives.losses(|k| r.get(k));
                if losses.iter().any(|l| !l.is_finite()) {
                    return None;
                }
                let v = violation(&objectives.constraint_values(|k| r.get(k)));
                Some((t, losses, v))
            })
            .collect()
    }

    /// The Pareto front by each trial's last result: the feasible trials (every
    /// constraint met) that no other feasible trial dominates, in creation order. With one
    /// objective, the best feasible trial(s).
    ///
    /// ```
    /// # use tune_runtime::prelude::*;
    /// # #[derive(Debug, Clone, Metrics)] struct M { error: f64, latency_ms: f64 }
    /// # tune_runtime::search_space! { struct Cfg { lr: f64 = loguniform(1e-4, 1e-1) } }
    /// use tune_runtime::Objectives;
    /// fn report(analysis: &Analysis<Cfg, M>) {
    ///     let objectives = Objectives::new().minimize(M::ERROR).minimize(M::LATENCY_MS);
    ///     for t in analysis.pareto_front(&objectives) {
    ///         println!("{:?}: {:?}", t.config(), t.last_result());
    ///     }
    /// }
    /// ```
    pub fn pareto_front(
        &self,
        objectives: &Objectives<M>,
    ) -> Vec<&crate::analysis::TrialInfo<C, M>> {
        let feasible: Vec<_> =
            self.outcomes(objectives).into_iter().filter(|(_, _, v)| *v <= 0.0).collect();
        feasible
            .iter()
            .filter(|(_, l, _)| {
                !feasible.iter().any(|(_, o, _)| crate::searcher::pareto::dominates(o, l))
            })
            .map(|(t, _, _)| *t)
            .collect()
    }

    /// The hypervolume of the feasible trials' last results: the volume they dominate up
    /// to `reference` (one value per objective, in the metrics' own units, worse than
    /// every point that should count). `None` when `reference` does not have one value per
    /// objective.
    pub fn hypervolume(&self, objectives: &Objectives<M>, reference: &[f64]) -> Option<f64> {
        if reference.len() != objectives.len() {
            return None;
        }
        let r: Vec<f64> =
            objectives.goals().iter().zip(reference).map(|((_, m), v)| loss(*v, *m)).collect();
        let pts: Vec<Vec<f64>> = self
            .outcomes(objectives)
            .into_iter()
            .filter(|(_, _, v)| *v <= 0.0)
            .map(|(_, l, _)| l)
            .collect();
        let refs: Vec<&[f64]> = pts.iter().map(Vec::as_slice).collect();
        Some(crate::searcher::pareto::hypervolume(&refs, &r))
    }

    /// The best trial by the first objective's last value among the feasible trials (ties
    /// to the earlier trial).
    pub fn best_feasible_trial(
        &self,
        objectives: &Objectives<M>,
    ) -> Option<&crate::analysis::TrialInfo<C, M>> {
        self.outcomes(objectives)
            .into_iter()
            .filter(|(_, _, v)| *v <= 0.0)
            .fold(None, |best: Option<(&crate::analysis::TrialInfo<C, M>, f64)>, (t, l, _)| {
                match best {
                    Some((_, b)) if b <= l[0] => best,
                    _ => Some((t, l[0])),
                }
            })
            .map(|(t, _)| t)
    }

    /// How much each dimension of the config matters for `key` (by each trial's last
    /// result), by PED-ANOVA (Watanabe et al. 2023, as Optuna's
    /// `PedAnovaImportanceEvaluator`): the divergence between the distribution of the
    /// dimension among the best 10% of the trials and among all of them. Returns
    /// `(dimension name, importance)` pairs, most important first, summing to 1 (all 0
    /// with fewer than 3 trials with results or no difference at all).
    pub fn importance(&self, key: impl Into<Key<M>>, mode: Mode) -> Vec<(String, f64)> {
        let key = key.into();
        let codec = crate::searcher::unit::Codec::new(C::dims());
        let trials: Vec<(Vec<f64>, f64)> = self
            .trials()
            .iter()
            .filter_map(|t| {
                let v = t.last_result()?.get(key);
                v.is_finite().then(|| (codec.encode_unit(&t.config().encode()), loss(v, mode)))
            })
            .collect();
        let imp = if trials.len() < 3 {
            vec![0.0; codec.len()]
        } else {
            crate::searcher::importance::ped_anova(&codec, &trials, 0.1)
        };
        let mut out: Vec<(String, f64)> =
            codec.dims().iter().map(|d| d.name.clone()).zip(imp).collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testing::{SCORE, Score};
    use crate::trial::TrialId;

    fn result(score: f64, iteration: u64) -> TrialResult<Score> {
        TrialResult {
            metrics: Score { score },
            trial_id: TrialId(0),
            training_iteration: iteration,
            time_this_iter_s: 0.0,
            time_total_s: 2.5,
            timestamp: 0,
            done: false,
        }
    }

    #[test]
    fn outcome_turns_modes_into_losses_and_bounds_into_values() {
        let o = Objectives::new()
            .maximize(SCORE)
            .minimize(Auto::TimeTotalS)
            .constraint(Constraint::at_least(SCORE, 1.0))
            .constraint(Constraint::at_most(Auto::TrainingIteration, 3.0));
        let spec = Spec::new(&o);
        let out = spec.of_result(&result(0.5, 5)).unwrap();
        assert_eq!(out.losses, vec![-0.5, 2.5]);
        assert_eq!(out.cons, vec![0.5, 2.0]);
        assert_eq!(violation(&out.cons), 2.5);
        let ok = spec.of_result(&result(2.0, 1)).unwrap();
        assert_eq!(violation(&ok.cons), 0.0);
        assert!(spec.of_result(&result(f64::NAN, 1)).is_none());
        // A row: score, then training_iteration, time_this_iter_s, time_total_s, timestamp.
        let row = spec.of_row::<Score>(&[0.5, 5.0, 0.1, 2.5, 0.0]).unwrap();
        assert_eq!(row, out);
        assert_eq!(o.losses(|k| if k == Key::Metric(SCORE) { 3.0 } else { 1.0 }), vec![-3.0, 1.0]);
    }

    #[test]
    fn analysis_front_hypervolume_and_feasible_best() {
        use crate::analysis::{Analysis, TrialInfo};
        use crate::testing::Cfg;
        use crate::trial::TrialStatus;
        // (score maximized, time_total_s minimized), feasible when score <= 8.
        let rows = [(5.0, 5.0), (4.0, 6.0), (9.0, 9.0), (7.0, 2.0), (8.0, 8.0)];
        let trials = rows
            .iter()
            .enumerate()
            .map(|(i, (score, time))| {
                let mut t =
                    TrialInfo::new(TrialId(i as u32), None, Cfg { x: 0.1 * i as f64, k: 1 });
                t.history.extend_from_slice(&[*score, 1.0, 0.0, *time, 0.0]);
                t.status = TrialStatus::Terminated;
                t
            })
            .collect();
        let a = Analysis { experiment_dir: std::path::PathBuf::new(), trials };
        let o = Objectives::new()
            .maximize(SCORE)
            .minimize(Auto::TimeTotalS)
            .constraint(Constraint::at_most(SCORE, 8.0));
        let front: Vec<u32> = a.pareto_front(&o).iter().map(|t| t.id().0).collect();
        // (9, 9) is infeasible; (5, 5) and (4, 6) are dominated by (7, 2).
        assert_eq!(front, vec![3, 4]);
        // Against (score 0, time 10): (7, 2) covers 7 × 8, (8, 8) adds 1 × 2.
        assert_eq!(a.hypervolume(&o, &[0.0, 10.0]), Some(58.0));
        assert_eq!(a.hypervolume(&o, &[0.0]), None);
        assert_eq!(a.best_feasible_trial(&o).map(|t| t.id().0), Some(4));
        let imp = a.importance(SCORE, Mode::Max);
        assert_eq!(imp.len(), 2);
    }
}
