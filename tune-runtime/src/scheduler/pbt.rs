//! Population based training (Jaderberg et al. 2017), as in Ray Tune's
//! `PopulationBasedTraining`.

use std::fmt;
use std::marker::PhantomData;

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Decision, Exploit, Scheduler, SchedulerError, invalid, signed};
use crate::metrics::Metrics;
use crate::space::{Dim, DimKind, Space};
use crate::state::{self, StateError, nonfinite};
use crate::trial::{Auto, Key, Mode, TrialId, TrialResult};

/// File of the experiment directory where the runner appends one [`PbtLogEntry`] per
/// exploit (the journal holds the same as `exploit` records).
pub const PBT_LOG_FILE: &str = "pbt_log.jsonl";

/// One exploit: `target` took over the state of `source` and a new config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PbtLogEntry {
    /// The exploiting trial (creation index).
    pub target: u32,
    /// The trial whose checkpoint it restored (creation index).
    pub source: u32,
    /// The target's iteration when it exploited.
    pub target_iteration: u64,
    /// The iteration of the restored checkpoint: the target goes on from there.
    pub source_iteration: u64,
    /// The target's config before.
    pub old_config: serde_json::Value,
    /// The target's config after (the source's, explored).
    pub new_config: serde_json::Value,
    /// The source's config at the time.
    pub source_config: serde_json::Value,
}

/// How [`Pbt`] perturbs one dimension of the config (by its name in [`Space::dims`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Mutation {
    /// Draw a new value from the dimension's prior.
    Resample,
    /// Multiply by one of the factors (drawn uniformly), clamped into the domain; with the
    /// resample probability, resample instead. For float and integer dimensions.
    Factors(Vec<f64>),
    /// Move to the previous or the next option of a `choice`/`grid` (or to the next integer
    /// of an integer range); with the resample probability, resample instead.
    Neighbour,
}

impl Mutation {
    /// Ray Tune's default perturbation of continuous values: times 0.8 or 1.2.
    pub fn perturb() -> Self {
        Mutation::Factors(vec![0.8, 1.2])
    }
}

/// A custom explore step, applied to the new config after the mutations.
pub type Explore<C> = Box<dyn FnMut(&mut C, &mut dyn RngCore) + Send>;

/// What PB2 adds to PBT's loop: it sees every perturbation boundary and chooses the final
/// explored config.
pub(super) trait ExploreHook<C> {
    /// `trial` reached a perturbation boundary at `time` with `score` (larger is better)
    /// under `config`.
    fn at_boundary(&mut self, trial: TrialId, time: f64, score: f64, config: &C);
    /// The config `target` goes on with after copying `source` (whose last boundary was
    /// at `source_time` with `source_score`), given PBT's explored `config`.
    fn explore(
        &mut self,
        source: TrialId,
        source_time: f64,
        source_score: f64,
        config: C,
        target: TrialId,
    ) -> C;
}

/// Plain PBT: nothing to add.
impl<C> ExploreHook<C> for () {
    fn at_boundary(&mut self, _: TrialId, _: f64, _: f64, _: &C) {}
    fn explore(&mut self, _: TrialId, _: f64, _: f64, config: C, _: TrialId) -> C {
        config
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound = "C: Space")]
struct Member<C> {
    config: C,
    #[serde(with = "nonfinite")]
    last_perturbation: f64,
    #[serde(with = "nonfinite")]
    last_score: Option<f64>,
}

/// An exploit decided and not yet carried out: the trial, the source, the new config and
/// the member as it was before.
#[derive(Serialize, Deserialize)]
#[serde(bound = "C: Space")]
struct PendingExploit<C> {
    trial: u32,
    source: u32,
    config: C,
    before: Member<C>,
}

/// What [`Pbt`] saves.
#[derive(Serialize, Deserialize)]
#[serde(bound = "C: Space")]
struct Saved<C> {
    trials: Vec<Option<Member<C>>>,
    pending: Option<PendingExploit<C>>,
    rng: ChaCha8Rng,
    exploits: usize,
}

/// Population based training.
///
/// Every `perturbation_interval` (of the time attribute, `training_iteration` by default)
/// a trial's score is compared with the population's: a trial in the bottom
/// `quantile_fraction` *exploits* a trial drawn from the top one (the runner copies that
/// trial's latest checkpoint into it and restores it) and *explores* by perturbing the
/// copied config: each mutated dimension is resampled or perturbed (see [`Mutation`]),
/// then the custom explore function runs. Trials are checkpointed at every perturbation
/// boundary so that there is a state to copy. Every exploit is logged in the journal and
/// in [`PBT_LOG_FILE`]; [`super::PbtReplay`] replays a trial's schedule.
///
/// ```
/// use tune_runtime::{Mode, Metric, scheduler::{Mutation, Pbt}};
/// # tune_runtime::search_space! { struct Conf { lr: f64 = loguniform(1e-4, 1e-1), batch: u32 = choice([16, 32, 64]) } }
/// # #[derive(Debug, Clone)] struct M { reward: f64 }
/// # impl tune_runtime::Metrics for M { const NAMES: &'static [&'static str] = &["reward"];
/// #     fn value(&self, _: usize) -> f64 { self.reward } }
/// # const REWARD: Metric<M> = Metric::new(0, "reward");
/// let pbt = Pbt::<Conf, M>::builder(REWARD, Mode::Max)
///     .perturbation_interval(4.0)
///     .mutate("lr", Mutation::perturb())
///     .mutate("batch", Mutation::Neighbour)
///     .build()
///     .unwrap();
/// ```
pub struct Pbt<C, M> {
    metric: Key<M>,
    mode: Mode,
    time_attr: Key<M>,
    interval: f64,
    burn_in: f64,
    quantile: f64,
    resample_p: f64,
    mutations: Vec<(usize, Mutation)>,
    explore: Option<Explore<C>>,
    rng: ChaCha8Rng,
    trials: Vec<Option<Member<C>>>,
    pending: Option<(TrialId, Exploit<C>, Member<C>)>,
    exploits: usize,
}

impl<C: fmt::Debug, M> fmt::Debug for Pbt<C, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pbt")
            .field("perturbation_interval", &self.interval)
            .field("quantile_fraction", &self.quantile)
            .field("resample_probability", &self.resample_p)
            .field("mutations", &self.mutations)
            .field("exploits", &self.exploits)
            .finish_non_exhaustive()
    }
}

/// Options of [`Pbt`]; [`PbtBuilder::build`] checks them against the config's dimensions.
pub struct PbtBuilder<C, M> {
    metric: Key<M>,
    mode: Mode,
    time_attr: Key<M>,
    interval: f64,
    burn_in: f64,
    quantile: f64,
    resample_p: f64,
    mutations: Vec<(String, Mutation)>,
    explore: Option<Explore<C>>,
    _c: PhantomData<fn() -> C>,
}

impl<C, M> fmt::Debug for PbtBuilder<C, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PbtBuilder")
            .field("perturbation_interval", &self.interval)
            .field("mutations", &self.mutations)
            .finish_non_exhaustive()
    }
}

impl<C: Space, M: Metrics> Pbt<C, M> {
    /// Options with the defaults: time attribute `training_iteration`, perturbation
    /// interval 60, no burn-in, quantile fraction 0.25, resample probability 0.25.
    pub fn builder(metric: impl Into<Key<M>>, mode: Mode) -> PbtBuilder<C, M> {
        PbtBuilder {
            metric: metric.into(),
            mode,
            time_attr: Key::Auto(Auto::TrainingIteration),
            interval: 60.0,
            burn_in: 0.0,
            quantile: 0.25,
            resample_p: 0.25,
            mutations: Vec::new(),
            explore: None,
            _c: PhantomData,
        }
    }

    /// The perturbation interval (in the time attribute).
    pub(super) fn interval(&self) -> f64 {
        self.interval
    }

    /// Number of exploits decided so far.
    pub fn num_exploits(&self) -> usize {
        self.exploits
    }

    /// The bottom and top quantiles (trial ids, worst first) among the trials that have
    /// reached a perturbation.
    pub fn quantiles(&self) -> (Vec<TrialId>, Vec<TrialId>) {
        let mut scored: Vec<(f64, usize)> = self
            .trials
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.as_ref().and_then(|m| m.last_score).map(|s| (s, i)))
            .collect();
        if scored.len() <= 1 {
            return (Vec::new(), Vec::new());
        }
        scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let n = scored.len();
        let mut k = ((n as f64 * self.quantile) - 1e-9).ceil() as usize;
        if k > n / 2 {
            k = n / 2;
        }
        let id = |(_, i): &(f64, usize)| TrialId(*i as u32);
        (scored[..k].iter().map(id).collect(), scored[n - k..].iter().map(id).collect())
    }

    /// The source's config, explored: the mutations, then the custom explore function.
    pub fn explore(&mut self, config: &C) -> C {
        let dims = C::dims();
        let mut x = config.encode();
        for (d, mutation) in &self.mutations {
            let (d, dim) = (*d, &dims[*d]);
            if x[d].is_nan() {
                continue;
            }
            let resample = match mutation {
                Mutation::Resample => true,
                _ => self.rng.random::<f64>() < self.resample_p,
            };
            if resample {
                let fresh = C::sample(&mut self.rng).encode();
                if !fresh[d].is_nan() {
                    x[d] = fresh[d];
                }
                continue;
            }
            match (mutation, &dim.kind) {
                (Mutation::Factors(f), _) => x[d] *= f[self.rng.random_range(0..f.len())],
                (Mutation::Neighbour, DimKind::Categorical { choices }) => {
                    let up = self.rng.random::<bool>();
                    let last = choices.len().saturating_sub(1) as f64;
                    x[d] = if up { (x[d] + 1.0).min(last) } else { (x[d] - 1.0).max(0.0) };
                }
                (Mutation::Neighbour, DimKind::Int { low, high, q, .. }) => {
                    let step = q.unwrap_or(1) as f64;
                    let up = self.rng.random::<bool>();
                    x[d] = if up {
                        (x[d] + step).min(*high as f64)
                    } else {
                        (x[d] - step).max(*low as f64)
                    };
                }
                _ => {}
            }
        }
        let mut new = C::decode(&x).unwrap_or_else(|_| config.clone());
        if let Some(f) = &mut self.explore {
            f(&mut new, &mut self.rng);
        }
        new
    }

    /// PBT's step on one result, with `hook` told of every perturbation boundary and given
    /// the last word on an explored config (PB2 plugs in there).
    pub(super) fn on_result_with(
        &mut self,
        trial: TrialId,
        result: &TrialResult<M>,
        hook: &mut dyn ExploreHook<C>,
    ) -> Decision {
        let time = result.get(self.time_attr);
        let score = signed(self.metric, self.mode, result);
        let (interval, burn_in) = (self.interval, self.burn_in);
        let Some(me) = self.trials.get_mut(trial.index()).and_then(Option::as_mut) else {
            return Decision::Continue;
        };
        if time < burn_in || time - me.last_perturbation < interval {
            return Decision::Continue;
        }
        me.last_score = Some(score);
        me.last_perturbation = time;
        hook.at_boundary(trial, time, score, &me.config);
        let (lower, upper) = self.quantiles();
        if !lower.contains(&trial) || upper.is_empty() {
            return Decision::Continue;
        }
        let source = upper[self.rng.random_range(0..upper.len())];
        let Some(src) = self.member(source).cloned() else { return Decision::Continue };
        let config = self.explore(&src.config);
        let config = hook.explore(
            source,
            src.last_perturbation,
            src.last_score.unwrap_or(score),
            config,
            trial,
        );
        let Some(me) = self.trials.get_mut(trial.index()).and_then(Option::as_mut) else {
            return Decision::Continue;
        };
        let before = me.clone();
        me.config = config.clone();
        me.last_perturbation = src.last_perturbation;
        self.exploits += 1;
        self.pending = Some((trial, Exploit { source, config }, before));
        Decision::Exploit
    }

    fn member(&self, trial: TrialId) -> Option<&Member<C>> {
        self.trials.get(trial.index()).and_then(Option::as_ref)
    }
}

impl<C: Space, M: Metrics> PbtBuilder<C, M> {
    /// The monotone result field that measures progress (default `training_iteration`).
    /// With another field, set `checkpoint_freq` so that trials have checkpoints to copy.
    pub fn time_attr(mut self, key: impl Into<Key<M>>) -> Self {
        self.time_attr = key.into();
        self
    }
    /// How often (in the time attribute) a trial is compared and maybe exploits (default 60).
    pub fn perturbation_interval(mut self, t: f64) -> Self {
        self.interval = t;
        self
    }
    /// No perturbation before this time (default 0).
    pub fn burn_in_period(mut self, t: f64) -> Self {
        self.burn_in = t;
        self
    }
    /// Size of the bottom and top quantiles, in `(0, 0.5]` (default 0.25).
    pub fn quantile_fraction(mut self, q: f64) -> Self {
        self.quantile = q;
        self
    }
    /// Probability that a [`Mutation::Factors`] or [`Mutation::Neighbour`] dimension is
    /// resampled instead (default 0.25).
    pub fn resample_probability(mut self, p: f64) -> Self {
        self.resample_p = p;
        self
    }
    /// Perturb the dimension `name` (as in [`Space::dims`]: `lr`, `optimizer.Sgd.momentum`).
    pub fn mutate(mut self, name: impl Into<String>, mutation: Mutation) -> Self {
        self.mutations.push((name.into(), mutation));
        self
    }
    /// A custom explore step on the typed config, run after the mutations.
    pub fn explore(mut self, f: impl FnMut(&mut C, &mut dyn RngCore) + Send + 'static) -> Self {
        self.explore = Some(Box::new(f));
        self
    }

    /// The names of the mutated dimensions.
    pub(super) fn mutated(&self) -> impl Iterator<Item = &str> {
        self.mutations.iter().map(|(name, _)| name.as_str())
    }

    /// Checks the options against `C`'s dimensions.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::Invalid`] saying which option to change (an unknown dimension
    /// lists the known ones).
    pub fn build(self) -> Result<Pbt<C, M>, SchedulerError> {
        self.build_for("PBT", true)
    }

    /// [`PbtBuilder::build`] for `owner` (PB2 explores without mutations).
    pub(super) fn build_for(
        self,
        owner: &'static str,
        needs_explore: bool,
    ) -> Result<Pbt<C, M>, SchedulerError> {
        if !(self.interval.is_finite() && self.interval > 0.0) {
            return Err(invalid(
                owner,
                format!("`perturbation_interval({})` must be a positive number", self.interval),
            ));
        }
        if !(self.quantile > 0.0 && self.quantile <= 0.5) {
            return Err(invalid(
                owner,
                format!("`quantile_fraction({})` must be in (0, 0.5]", self.quantile),
            ));
        }
        if !(0.0..=1.0).contains(&self.resample_p) {
            return Err(invalid(
                owner,
                format!("`resample_probability({})` must be in [0, 1]", self.resample_p),
            ));
        }
        if !self.burn_in.is_finite() || self.burn_in < 0.0 {
            return Err(invalid(owner, format!("`burn_in_period({})` must be >= 0", self.burn_in)));
        }
        if needs_explore && self.mutations.is_empty() && self.explore.is_none() {
            return Err(invalid(
                owner,
                "nothing to explore: add `.mutate(\"field\", Mutation::...)` or `.explore(|config, rng| ..)`",
            ));
        }
        let dims: Vec<Dim> = C::dims();
        let mut mutations = Vec::with_capacity(self.mutations.len());
        for (name, m) in self.mutations {
            let Some(d) = dims.iter().position(|d| d.name == name) else {
                let known: Vec<&str> = dims.iter().map(|d| d.name.as_str()).collect();
                return Err(invalid(
                    owner,
                    format!(
                        "`mutate(\"{name}\", ..)`: the config has no dimension `{name}`; it has: {}",
                        known.join(", ")
                    ),
                ));
            };
            let kind = &dims[d].kind;
            let fits = match (&m, kind) {
                (Mutation::Resample, _) => true,
                (Mutation::Factors(f), k) => {
                    if f.is_empty() || f.iter().any(|x| !x.is_finite() || *x <= 0.0) {
                        return Err(invalid(
                            owner,
                            format!("`{name}`: factors must be positive numbers, got {f:?}"),
                        ));
                    }
                    !matches!(k, DimKind::Categorical { .. })
                }
                (Mutation::Neighbour, k) => {
                    matches!(k, DimKind::Categorical { .. } | DimKind::Int { .. })
                }
            };
            if !fits {
                return Err(invalid(
                    owner,
                    format!(
                        "`{name}` is {kind:?}: use `Mutation::Neighbour` or `Mutation::Resample` \
                         for a choice, `Mutation::Factors` or `Mutation::Resample` for a number"
                    ),
                ));
            }
            mutations.push((d, m));
        }
        Ok(Pbt {
            metric: self.metric,
            mode: self.mode,
            time_attr: self.time_attr,
            interval: self.interval,
            burn_in: self.burn_in,
            quantile: self.quantile,
            resample_p: self.resample_p,
            mutations,
            explore: self.explore,
            rng: ChaCha8Rng::seed_from_u64(0),
            trials: Vec::new(),
            pending: None,
            exploits: 0,
        })
    }
}

impl<C: Space, M: Metrics> Scheduler<C, M> for Pbt<C, M> {
    fn name(&self) -> &str {
        "PopulationBasedTraining"
    }

    fn setup(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed ^ 0x9B7);
    }

    fn on_trial_add(&mut self, trial: TrialId, config: &C) {
        let i = trial.index();
        if self.trials.len() <= i {
            self.trials.resize_with(i + 1, || None);
        }
        self.trials[i] =
            Some(Member { config: config.clone(), last_perturbation: 0.0, last_score: None });
    }

    fn on_trial_result(&mut self, trial: TrialId, result: &TrialResult<M>) -> Decision {
        self.on_result_with(trial, result, &mut ())
    }

    fn wants_checkpoint(&self, trial: TrialId, iteration: u64) -> bool {
        if self.time_attr != Key::Auto(Auto::TrainingIteration) {
            return false;
        }
        let t = iteration as f64;
        self.member(trial)
            .is_some_and(|m| t >= self.burn_in && t - m.last_perturbation >= self.interval)
    }

    fn take_exploit(&mut self, trial: TrialId) -> Option<Exploit<C>> {
        match self.pending.take() {
            Some((t, e, before)) if t == trial => {
                self.pending = Some((t, e.clone(), before));
                Some(e)
            }
            _ => None,
        }
    }

    /// Every member's config, last perturbation time and last score (the quantiles are
    /// computed from them), the exploit being carried out, the random generator and the
    /// number of exploits.
    fn save_state(&self) -> serde_json::Value {
        let saved = Saved {
            trials: self.trials.clone(),
            pending: self.pending.as_ref().map(|(t, e, before)| PendingExploit {
                trial: t.0,
                source: e.source.0,
                config: e.config.clone(),
                before: before.clone(),
            }),
            rng: self.rng.clone(),
            exploits: self.exploits,
        };
        state::save("PBT", &saved)
    }

    fn restore_state(&mut self, value: serde_json::Value) -> Result<(), StateError> {
        let saved: Saved<C> = state::load("PBT", value)?;
        let check = |c: &C, path: String| {
            c.validate().map_err(|e| state::malformed("PBT", &path, &e.to_string()))
        };
        for (i, m) in saved.trials.iter().enumerate() {
            if let Some(m) = m {
                check(&m.config, format!("trials[{i}].config"))?;
            }
        }
        if let Some(p) = &saved.pending {
            check(&p.config, "pending.config".into())?;
        }
        self.trials = saved.trials;
        self.pending = saved.pending.map(|p| {
            (TrialId(p.trial), Exploit { source: TrialId(p.source), config: p.config }, p.before)
        });
        self.rng = saved.rng;
        self.exploits = saved.exploits;
        Ok(())
    }

    fn on_exploit_failed(&mut self, trial: TrialId, _source: TrialId, _why: &str) {
        if let Some((t, _, before)) = self.pending.take() {
            if t == trial {
                let score = self.member(trial).and_then(|m| m.last_score);
                if let Some(m) = self.trials.get_mut(trial.index()) {
                    *m = Some(Member { last_score: score, ..before });
                }
                self.exploits -= 1;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testing::{Cfg, SCORE, Score, result};

    fn pbt(q: f64) -> Pbt<Cfg, Score> {
        Pbt::builder(SCORE, Mode::Max)
            .perturbation_interval(2.0)
            .quantile_fraction(q)
            .resample_probability(0.0)
            .mutate("x", Mutation::Factors(vec![0.5]))
            .mutate("k", Mutation::Neighbour)
            .build()
            .unwrap()
    }

    fn add(p: &mut Pbt<Cfg, Score>, n: u32) {
        for t in 0..n {
            p.on_trial_add(TrialId(t), &Cfg { x: 0.1 * f64::from(t + 1), k: 2 });
        }
    }

    fn feed(p: &mut Pbt<Cfg, Score>, t: u32, it: u64, score: f64) -> Decision {
        p.on_trial_result(TrialId(t), &result(t, it, score))
    }

    #[test]
    fn bottom_quantile_exploits_the_top() {
        let mut p = pbt(0.25);
        add(&mut p, 4);
        // Iteration 1: between perturbations.
        for t in 0..4 {
            assert_eq!(feed(&mut p, t, 1, 0.0), Decision::Continue);
            assert!(p.wants_checkpoint(TrialId(t), 2), "checkpoint at the boundary");
            assert!(!p.wants_checkpoint(TrialId(t), 1));
        }
        // Iteration 2: scores 3, 1, 4, 2 (trial order). Alone, trial 0 is not compared.
        assert_eq!(feed(&mut p, 0, 2, 3.0), Decision::Continue);
        assert_eq!(feed(&mut p, 1, 2, 1.0), Decision::Exploit, "1 < 3: bottom of two");
        let e = p.take_exploit(TrialId(1)).unwrap();
        assert_eq!(e.source, TrialId(0));
        // x of trial 0 (0.1) times 0.5; k 2 moves to a neighbour.
        assert!((e.config.x - 0.05).abs() < 1e-12, "{:?}", e.config);
        assert!(e.config.k == 1 || e.config.k == 3);
        assert_eq!(feed(&mut p, 2, 2, 4.0), Decision::Continue, "top");
        assert_eq!(
            feed(&mut p, 3, 2, 2.0),
            Decision::Continue,
            "ceil(4 * 0.25) = 1: bottom is trial 1"
        );
        assert_eq!(p.quantiles(), (vec![TrialId(1)], vec![TrialId(2)]));
        assert!(!p.wants_checkpoint(TrialId(3), 3), "next boundary is at 4");
        // Iteration 4: trial 3 falls to the bottom and copies the new best, trial 1.
        assert_eq!(feed(&mut p, 1, 4, 5.0), Decision::Continue);
        assert_eq!(feed(&mut p, 3, 4, 0.5), Decision::Exploit);
        assert_eq!(p.take_exploit(TrialId(3)).unwrap().source, TrialId(1));
        assert_eq!(p.num_exploits(), 2);
    }

    #[test]
    fn failed_exploit_restores_the_config() {
        let mut p = pbt(0.5);
        add(&mut p, 2);
        feed(&mut p, 0, 2, 2.0);
        assert_eq!(feed(&mut p, 1, 2, 1.0), Decision::Exploit);
        let before = p.member(TrialId(1)).unwrap().config.clone();
        assert_ne!(before, Cfg { x: 0.2, k: 2 });
        p.on_exploit_failed(TrialId(1), TrialId(0), "no checkpoint");
        assert_eq!(p.member(TrialId(1)).unwrap().config, Cfg { x: 0.2, k: 2 });
        assert_eq!(p.num_exploits(), 0);
    }

    #[test]
    fn resample_and_custom_explore() {
        let mut p: Pbt<Cfg, Score> = Pbt::builder(SCORE, Mode::Max)
            .mutate("x", Mutation::Resample)
            .explore(|c: &mut Cfg, _rng| c.k = 3)
            .build()
            .unwrap();
        let c = Cfg { x: 0.5, k: 1 };
        let xs: Vec<f64> = (0..20).map(|_| p.explore(&c).x).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(xs.iter().any(|x| (x - 0.5).abs() > 1e-3));
        assert_eq!(p.explore(&c).k, 3);
    }

    #[test]
    fn builder_checks_names_and_kinds() {
        let e = Pbt::<Cfg, Score>::builder(SCORE, Mode::Max)
            .mutate("lr", Mutation::Resample)
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("no dimension `lr`; it has: x, k"), "{e}");
        let e = Pbt::<Cfg, Score>::builder(SCORE, Mode::Max)
            .mutate("k", Mutation::perturb())
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("use `Mutation::Neighbour`"), "{e}");
        let e = Pbt::<Cfg, Score>::builder(SCORE, Mode::Max).build().unwrap_err();
        assert!(e.to_string().contains("nothing to explore"), "{e}");
        let e = Pbt::<Cfg, Score>::builder(SCORE, Mode::Max)
            .quantile_fraction(0.7)
            .mutate("x", Mutation::Resample)
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("(0, 0.5]"), "{e}");
    }

    #[test]
    fn saved_state_restores_the_same_decisions() {
        let score = |t: u32, it: u64| ((t as u64 * 7919 + it * 104_729) % 97) as f64;
        let build = || {
            let mut p = pbt(0.25);
            p.setup(11);
            add(&mut p, 6);
            p
        };
        let mut a = build();
        let mut log_a = Vec::new();
        let step = |p: &mut Pbt<Cfg, Score>, t: u32, it: u64, log: &mut Vec<_>| {
            let d = feed(p, t, it, score(t, it));
            if d == Decision::Exploit {
                log.push((t, it, p.take_exploit(TrialId(t))));
            }
            d
        };
        for it in 1..=5 {
            for t in 0..6 {
                step(&mut a, t, it, &mut log_a);
            }
        }
        let saved = a.save_state();
        let json = serde_json::to_string(&saved).unwrap();
        let mut b = pbt(0.25);
        b.restore_state(serde_json::from_str(&json).unwrap()).unwrap();
        assert_eq!(b.save_state(), saved);
        let mut log_b = log_a.clone();
        for it in 6..=20 {
            for t in 0..6 {
                let da = step(&mut a, t, it, &mut log_a);
                assert_eq!(da, step(&mut b, t, it, &mut log_b), "trial {t} at {it}");
            }
        }
        assert!(log_a.len() > 3);
        assert_eq!(log_a, log_b);
        assert_eq!(a.num_exploits(), b.num_exploits());
    }

    #[test]
    fn malformed_state_is_an_error() {
        let mut p = pbt(0.5);
        add(&mut p, 2);
        feed(&mut p, 0, 2, 2.0);
        assert_eq!(feed(&mut p, 1, 2, 1.0), Decision::Exploit);
        let good = p.save_state();
        assert!(!good["state"]["pending"].is_null());
        let mut err = |v| p.restore_state(v).unwrap_err().to_string();
        assert!(err(serde_json::json!([])).contains("JSON object"));
        let mut v = good.clone();
        v["state"]["trials"][0]["config"] = serde_json::json!({"x": "no"});
        assert!(err(v).contains("trials[0].config"));
        let mut v = good.clone();
        v["state"]["trials"][0]["config"] = serde_json::json!({"x": 7.0, "k": 1});
        let e = err(v);
        assert!(e.contains("trials[0].config") && e.contains("[0, 1)"), "{e}");
        let mut v = good.clone();
        v["state"]["pending"]["trial"] = serde_json::json!(-1);
        assert!(err(v).contains("pending.trial"));
        let mut v = good.clone();
        v["state"]["rng"]["word_pos"] = serde_json::json!(null);
        assert!(err(v).contains("word_pos"));
        assert_eq!(p.restore_state(good.clone()), Ok(()));
        assert_eq!(p.save_state(), good);
    }
}
