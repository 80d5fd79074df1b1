//! Population based bandits (Parker-Holder et al. 2020), as in Ray Tune's `PB2`: PBT whose
//! explore step asks a time-varying GP bandit for the new hyperparameters.

use std::fmt;

use nalgebra::{DMatrix, DVector};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::pbt::{ExploreHook, Pbt, PbtBuilder};
use super::{Decision, Exploit, Mutation, Scheduler, SchedulerError, invalid};
use crate::metrics::Metrics;
use crate::searcher::gp::{matern52, profile_kernel, standardize};
use crate::searcher::unit::Codec;
use crate::space::{DimKind, Space};
use crate::state::{self, StateError, nonfinite};
use crate::trial::{Key, Mode, TrialId, TrialResult};

/// Intervals needed before the bandit is asked; before that an explored trial draws its
/// hyperparameters uniformly within their bounds.
const MIN_DATA: usize = 2;
/// Length scales tried, as multiples of √(number of inputs).
const ELLS: [f64; 5] = [0.1, 0.2, 0.35, 0.6, 1.0];
/// Noise levels tried (in units of the standardized reward change).
const NOISES: [f64; 3] = [1e-3, 0.03, 0.3];
/// Forgetting rates tried: correlation shrinks by `(1 - ε)^(Δt / 2)`, `Δt` in intervals.
const EPSILONS: [f64; 3] = [0.0, 0.05, 0.2];
/// Hyperparameters are chosen on at most this many of the most recent intervals.
const FIT_POINTS: usize = 80;

/// One interval of one trial between two perturbation boundaries: it started at `time`
/// with reward `start` under the hyperparameters `x` (unit coordinates of the bandit's
/// dimensions, NaN where inactive) and its reward changed by `rate` per unit of time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Interval {
    #[serde(with = "nonfinite")]
    time: f64,
    #[serde(with = "nonfinite")]
    start: f64,
    #[serde(with = "nonfinite")]
    x: Vec<f64>,
    #[serde(with = "nonfinite")]
    rate: f64,
}

/// Where a trial's current interval starts: time, reward and hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Mark {
    #[serde(with = "nonfinite")]
    time: f64,
    #[serde(with = "nonfinite")]
    score: f64,
    #[serde(with = "nonfinite")]
    x: Vec<f64>,
}

/// The exploit in progress: the target and its mark before, and whether the new point
/// joined the batch (both undone if the exploit fails).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pending {
    trial: u32,
    before: Option<Mark>,
    batched: bool,
}

/// The bandit: the data, the trials' marks, the batch of points chosen since the data
/// last moved forward in time, and how to fit and ask the GP.
#[derive(Debug)]
struct Bandit {
    codec: Codec,
    /// The bandit's dimensions (indices into `Space::dims`).
    dims: Vec<usize>,
    interval: f64,
    window: usize,
    candidates: usize,
    rng: ChaCha8Rng,
    data: Vec<Interval>,
    marks: Vec<Option<Mark>>,
    batch: Vec<Vec<f64>>,
    batch_time: f64,
    pending: Option<Pending>,
}

/// What [`Pb2`] saves next to PBT's state.
#[derive(Serialize, Deserialize)]
struct Saved {
    pbt: serde_json::Value,
    data: Vec<Interval>,
    marks: Vec<Option<Mark>>,
    #[serde(with = "nonfinite")]
    batch: Vec<Vec<f64>>,
    #[serde(with = "nonfinite")]
    batch_time: f64,
    pending: Option<Pending>,
    rng: ChaCha8Rng,
}

/// A GP input: the time (in perturbation intervals) and the other features.
type Point = (f64, Vec<f64>);

/// The GP of the reward change: Matérn 5/2 over (start reward, hyperparameters) times a
/// forgetting factor over time, amplitude profiled out, length scale, noise and forgetting
/// rate chosen by marginal likelihood on a grid.
struct TvGp {
    /// Inputs: time (in intervals) and features (start reward scaled, hyperparameters).
    pts: Vec<Point>,
    alpha: DVector<f64>,
    ell: f64,
    noise: f64,
    eps: f64,
    amp: f64,
}

impl TvGp {
    fn corr(a: &Point, b: &Point, ell: f64, eps: f64) -> f64 {
        let d2: f64 = a.1.iter().zip(&b.1).map(|(x, y)| (x - y) * (x - y)).sum();
        let decay = if eps > 0.0 { (1.0 - eps).powf(0.5 * (a.0 - b.0).abs()) } else { 1.0 };
        matern52(d2, ell) * decay
    }

    fn matrix(pts: &[Point], ell: f64, eps: f64, noise: f64) -> DMatrix<f64> {
        let n = pts.len();
        DMatrix::from_fn(n, n, |i, j| {
            Self::corr(&pts[i], &pts[j], ell, eps) + if i == j { noise + 1e-9 } else { 0.0 }
        })
    }

    fn fit(pts: Vec<Point>, ys: &[f64]) -> Option<Self> {
        let n = pts.len();
        let scale = (pts.first().map_or(1, |p| p.1.len()) as f64).sqrt();
        let from = n.saturating_sub(FIT_POINTS);
        let ys_fit = DVector::from_column_slice(&ys[from..]);
        let mut best: Option<(f64, f64, f64, f64)> = None;
        for e in ELLS {
            for noise in NOISES {
                for eps in EPSILONS {
                    let k = Self::matrix(&pts[from..], e * scale, eps, noise);
                    if let Some((ll, ..)) = profile_kernel(k, &ys_fit) {
                        if best.is_none_or(|b| ll > b.0) {
                            best = Some((ll, e * scale, noise, eps));
                        }
                    }
                }
            }
        }
        let (_, ell, noise, eps) = best?;
        let ys = DVector::from_column_slice(ys);
        let (_, _, alpha, amp) = profile_kernel(Self::matrix(&pts, ell, eps, noise), &ys)?;
        Some(Self { pts, alpha, ell, noise, eps, amp })
    }

    /// Predictive mean at each of `xs`, and the standard deviation once the `batch` points
    /// (chosen, not yet observed) are added to the data: the variance of a GP does not
    /// depend on the values observed, so the batch shrinks it around points already taken
    /// and the next choice of the same batch goes elsewhere.
    fn predict(&self, xs: &[Point], batch: &[Point]) -> Vec<(f64, f64)> {
        let all: Vec<Point> = self.pts.iter().chain(batch).cloned().collect();
        let (n, m) = (self.pts.len(), all.len());
        let Some(chol) = Self::matrix(&all, self.ell, self.eps, self.noise).cholesky() else {
            return xs.iter().map(|_| (0.0, 0.0)).collect();
        };
        let r =
            DMatrix::from_fn(m, xs.len(), |i, j| Self::corr(&all[i], &xs[j], self.ell, self.eps));
        let v = chol.l().solve_lower_triangular(&r).unwrap_or_else(|| DMatrix::zeros(m, xs.len()));
        (0..xs.len())
            .map(|j| {
                let mean = r.column(j).rows(0, n).dot(&self.alpha);
                let var = (self.amp * (1.0 - v.column(j).norm_squared())).max(0.0);
                (mean, var.sqrt())
            })
            .collect()
    }
}

/// GP inputs besides time: the start reward (scaled) and the hyperparameters, inactive
/// ones at the centre.
fn features(start: f64, x: &[f64]) -> Vec<f64> {
    std::iter::once(start).chain(x.iter().map(|v| if v.is_finite() { *v } else { 0.5 })).collect()
}

/// The GP-UCB exploration weight of Ray Tune's PB2 for `n` data points:
/// `√(0.2 + max(0, ln(0.4 n)))`.
fn kappa(n: usize) -> f64 {
    (0.2 + (0.4 * n as f64).ln().max(0.0)).sqrt()
}

impl Bandit {
    /// The unit coordinates of the bandit's dimensions in `config` (NaN where inactive).
    fn unit<C: Space>(&self, config: &C) -> Vec<f64> {
        let u = self.codec.encode_unit(&config.encode());
        self.dims.iter().map(|&d| u[d]).collect()
    }

    /// `config` with the bandit's dimensions (those active in it) set from `x`.
    fn apply<C: Space>(&self, config: &C, x: &[f64]) -> C {
        let enc = config.encode();
        let mut u = self.codec.encode_unit(&enc);
        for (k, &d) in self.dims.iter().enumerate() {
            if u[d].is_finite() {
                u[d] = x[k];
            }
        }
        let dec = self.codec.decode_unit(&u);
        let mut out = enc.clone();
        for &d in &self.dims {
            if u[d].is_finite() {
                out[d] = dec[d];
            }
        }
        C::decode(&out).unwrap_or_else(|_| config.clone())
    }

    /// The GP inputs of the recent data: time in intervals, and (start reward scaled by the
    /// range of the window, hyperparameters with inactive ones at the centre); with the
    /// scaling of the start reward.
    fn inputs(&self) -> (Vec<Point>, Vec<f64>, (f64, f64)) {
        let from = self.data.len().saturating_sub(self.window);
        let recent = &self.data[from..];
        let lo = recent.iter().map(|i| i.start).fold(f64::INFINITY, f64::min);
        let hi = recent.iter().map(|i| i.start).fold(f64::NEG_INFINITY, f64::max);
        let span = if hi > lo { hi - lo } else { 1.0 };
        let pts = recent
            .iter()
            .map(|i| (i.time / self.interval, features((i.start - lo) / span, &i.x)))
            .collect();
        (pts, recent.iter().map(|i| i.rate).collect(), (lo, span))
    }

    /// The hyperparameters (unit coordinates) with the highest upper confidence bound on
    /// the reward change of an interval starting at `time` with reward `score`, among
    /// random candidates and two rounds of local refinement around the best ones. `None`
    /// with too little data or when the GP cannot be fitted.
    fn select(&mut self, time: f64, score: f64) -> Option<Vec<f64>> {
        if self.data.len() < MIN_DATA {
            return None;
        }
        let newest = self.data.iter().map(|i| i.time).fold(f64::NEG_INFINITY, f64::max);
        if newest > self.batch_time {
            self.batch.clear();
            self.batch_time = newest;
        }
        let (pts, rates, (lo, span)) = self.inputs();
        let n = pts.len();
        let gp = TvGp::fit(pts, &standardize(&rates))?;
        let here = (time / self.interval, (score - lo) / span);
        let batch: Vec<Point> = self.batch.iter().map(|x| (here.0, features(here.1, x))).collect();
        let k = kappa(n);
        let dims = self.dims.len();
        let mut pool: Vec<(f64, Vec<f64>)> = Vec::new();
        let score_all = |cands: Vec<Vec<f64>>, pool: &mut Vec<(f64, Vec<f64>)>| {
            let q: Vec<Point> = cands.iter().map(|x| (here.0, features(here.1, x))).collect();
            for ((m, s), x) in gp.predict(&q, &batch).into_iter().zip(cands) {
                pool.push((m + k * s, x));
            }
        };
        let cands: Vec<Vec<f64>> = (0..self.candidates)
            .map(|_| (0..dims).map(|_| self.rng.random::<f64>()).collect())
            .collect();
        score_all(cands, &mut pool);
        for s in [0.05, 0.01] {
            pool.sort_by(|a, b| b.0.total_cmp(&a.0));
            pool.truncate(3);
            let mut cands = Vec::with_capacity(60);
            for (_, x) in &pool {
                for _ in 0..20 {
                    cands.push(
                        x.iter()
                            .map(|v| {
                                let z: f64 = self.rng.sample(rand_distr::StandardNormal);
                                (v + s * z).clamp(0.0, 1.0)
                            })
                            .collect(),
                    );
                }
            }
            score_all(cands, &mut pool);
        }
        pool.sort_by(|a, b| b.0.total_cmp(&a.0));
        pool.into_iter().next().map(|(_, x)| x)
    }
}

impl<C: Space> ExploreHook<C> for Bandit {
    fn at_boundary(&mut self, trial: TrialId, time: f64, score: f64, config: &C) {
        let i = trial.index();
        if self.marks.len() <= i {
            self.marks.resize_with(i + 1, || None);
        }
        let x = self.unit(config);
        if let Some(m) = &self.marks[i] {
            let rate = (score - m.score) / (time - m.time);
            if time > m.time && rate.is_finite() && m.score.is_finite() {
                self.data.push(Interval { time: m.time, start: m.score, x: x.clone(), rate });
                // Only the window is ever used: the state stays bounded.
                if self.data.len() > self.window {
                    let extra = self.data.len() - self.window;
                    self.data.drain(..extra);
                }
            }
        }
        self.marks[i] = Some(Mark { time, score, x });
    }

    fn explore(
        &mut self,
        _source: TrialId,
        source_time: f64,
        source_score: f64,
        config: C,
        target: TrialId,
    ) -> C {
        let chosen = match self.select(source_time, source_score) {
            Some(x) => x,
            None => (0..self.dims.len()).map(|_| self.rng.random::<f64>()).collect(),
        };
        let config = self.apply(&config, &chosen);
        let x = self.unit(&config);
        let i = target.index();
        if self.marks.len() <= i {
            self.marks.resize_with(i + 1, || None);
        }
        let before = self.marks[i].replace(Mark { time: source_time, score: source_score, x });
        let batched = self.data.len() >= MIN_DATA;
        if batched {
            self.batch.push(chosen);
        }
        self.pending = Some(Pending { trial: target.0, before, batched });
        config
    }
}

/// Population based bandits (PB2; Parker-Holder et al. 2020): [`Pbt`] whose explore step
/// chooses the new values of the numeric hyperparameters with a time-varying GP bandit
/// instead of perturbing them at random.
///
/// Every perturbation boundary closes an interval of the trial: the reward change per
/// unit of time since the previous boundary, under the config it ran with. When a trial
/// in the bottom quantile copies one from the top quantile, a GP fitted to the recent
/// intervals (inputs: the time, the reward at the start of the interval, the
/// hyperparameters in the unit cube of their domains) predicts the reward change of an
/// interval starting from the copied trial's time and reward, and the hyperparameters
/// with the highest upper confidence bound (GP-UCB) are taken. Points chosen since the
/// data last moved forward count as observed when the uncertainty is computed, so that
/// exploits of the same round spread out.
///
/// The bandit's dimensions are the config's float and integer fields (bounds from the
/// search space, log-scaled fields on a log scale), or those named with
/// [`Pb2Builder::hyperparams`]. Other dimensions are copied from the source trial, or
/// changed by [`Pb2Builder::mutate`] as in PBT.
///
/// ```
/// use tune_runtime::{Mode, Metric, scheduler::Pb2};
/// # tune_runtime::search_space! { struct Conf { lr: f64 = loguniform(1e-4, 1e-1), batch: u32 = choice([16, 32, 64]) } }
/// # #[derive(Debug, Clone)] struct M { reward: f64 }
/// # impl tune_runtime::Metrics for M { const NAMES: &'static [&'static str] = &["reward"];
/// #     fn value(&self, _: usize) -> f64 { self.reward } }
/// # const REWARD: Metric<M> = Metric::new(0, "reward");
/// let pb2 = Pb2::<Conf, M>::builder(REWARD, Mode::Max)
///     .perturbation_interval(4.0)
///     .build()
///     .unwrap();
/// ```
pub struct Pb2<C, M> {
    pbt: Pbt<C, M>,
    bandit: Bandit,
}

impl<C: fmt::Debug, M> fmt::Debug for Pb2<C, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pb2")
            .field("pbt", &self.pbt)
            .field("dims", &self.bandit.dims)
            .field("intervals", &self.bandit.data.len())
            .finish_non_exhaustive()
    }
}

/// Options of [`Pb2`]: PBT's (without mutations of the bandit's dimensions) and the
/// bandit's.
pub struct Pb2Builder<C, M> {
    pbt: PbtBuilder<C, M>,
    names: Option<Vec<String>>,
    window: usize,
    candidates: usize,
}

impl<C, M> fmt::Debug for Pb2Builder<C, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pb2Builder")
            .field("pbt", &self.pbt)
            .field("hyperparams", &self.names)
            .finish_non_exhaustive()
    }
}

impl<C: Space, M: Metrics> Pb2<C, M> {
    /// Options with PBT's defaults (time attribute `training_iteration`, perturbation
    /// interval 60, quantile fraction 0.25); the bandit on every float and integer field,
    /// over the last 200 intervals, 256 random candidates per choice.
    pub fn builder(metric: impl Into<Key<M>>, mode: Mode) -> Pb2Builder<C, M> {
        Pb2Builder { pbt: Pbt::builder(metric, mode), names: None, window: 200, candidates: 256 }
    }

    /// Number of exploits decided so far.
    pub fn num_exploits(&self) -> usize {
        self.pbt.num_exploits()
    }

    /// Number of intervals (reward changes between two perturbation boundaries) held: those
    /// observed, at most the window's number.
    pub fn num_intervals(&self) -> usize {
        self.bandit.data.len()
    }
}

impl<C: Space, M: Metrics> Pb2Builder<C, M> {
    /// The monotone result field that measures progress (default `training_iteration`).
    pub fn time_attr(mut self, key: impl Into<Key<M>>) -> Self {
        self.pbt = self.pbt.time_attr(key);
        self
    }
    /// How often (in the time attribute) a trial is compared and maybe exploits (default 60).
    pub fn perturbation_interval(mut self, t: f64) -> Self {
        self.pbt = self.pbt.perturbation_interval(t);
        self
    }
    /// No perturbation before this time (default 0).
    pub fn burn_in_period(mut self, t: f64) -> Self {
        self.pbt = self.pbt.burn_in_period(t);
        self
    }
    /// Size of the bottom and top quantiles, in `(0, 0.5]` (default 0.25).
    pub fn quantile_fraction(mut self, q: f64) -> Self {
        self.pbt = self.pbt.quantile_fraction(q);
        self
    }
    /// Probability that a [`Mutation::Factors`] or [`Mutation::Neighbour`] dimension is
    /// resampled instead (default 0.25).
    pub fn resample_probability(mut self, p: f64) -> Self {
        self.pbt = self.pbt.resample_probability(p);
        self
    }
    /// Perturb the dimension `name` as PBT does; only for a dimension outside the bandit's
    /// (a choice, or a number left out of [`Pb2Builder::hyperparams`]).
    pub fn mutate(mut self, name: impl Into<String>, mutation: Mutation) -> Self {
        self.pbt = self.pbt.mutate(name, mutation);
        self
    }
    /// A custom explore step on the typed config, run after the mutations and before the
    /// bandit sets its dimensions.
    pub fn explore(mut self, f: impl FnMut(&mut C, &mut dyn RngCore) + Send + 'static) -> Self {
        self.pbt = self.pbt.explore(f);
        self
    }
    /// The dimensions the bandit chooses (names as in [`Space::dims`]; float or integer
    /// fields). Default: every float and integer field.
    pub fn hyperparams<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.names = Some(names.into_iter().map(Into::into).collect());
        self
    }
    /// How many of the most recent intervals the GP is fitted to (default 200; at least 2).
    pub fn window(mut self, n: usize) -> Self {
        self.window = n;
        self
    }
    /// Random candidates scored per choice, before local refinement (default 256).
    pub fn n_candidates(mut self, n: usize) -> Self {
        self.candidates = n;
        self
    }

    /// Checks the options against `C`'s dimensions.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::Invalid`] saying which option to change: PBT's checks, an unknown
    /// or non-numeric bandit dimension, a dimension both mutated and chosen by the bandit,
    /// a config without float or integer fields.
    pub fn build(self) -> Result<Pb2<C, M>, SchedulerError> {
        const S: &str = "PB2";
        if self.window < MIN_DATA {
            return Err(invalid(
                S,
                format!("`window({})` must be at least {MIN_DATA}", self.window),
            ));
        }
        if self.candidates == 0 {
            return Err(invalid(S, "`n_candidates(0)`: score at least one candidate"));
        }
        let dims = C::dims();
        let numeric = |k: &DimKind| matches!(k, DimKind::Float { .. } | DimKind::Int { .. });
        let chosen: Vec<usize> = match &self.names {
            None => (0..dims.len()).filter(|&d| numeric(&dims[d].kind)).collect(),
            Some(names) => {
                let mut out = Vec::new();
                for name in names {
                    let Some(d) = dims.iter().position(|d| &d.name == name) else {
                        let known: Vec<&str> = dims.iter().map(|d| d.name.as_str()).collect();
                        return Err(invalid(
                            S,
                            format!(
                                "`hyperparams`: the config has no dimension `{name}`; it has: {}",
                                known.join(", ")
                            ),
                        ));
                    };
                    if !numeric(&dims[d].kind) {
                        return Err(invalid(
                            S,
                            format!(
                                "`hyperparams`: `{name}` is {:?}; the bandit needs a bounded \
                                 number (a float or integer range): use `.mutate(\"{name}\", ..)` \
                                 for it instead",
                                dims[d].kind
                            ),
                        ));
                    }
                    if !out.contains(&d) {
                        out.push(d);
                    }
                }
                out
            }
        };
        if chosen.is_empty() {
            return Err(invalid(
                S,
                "no dimension for the bandit: the config needs a float or integer range \
                 (`uniform`, `loguniform`, `randint`, ..), or use `Pbt`",
            ));
        }
        for name in self.pbt.mutated() {
            if chosen.iter().any(|&d| dims[d].name == name) {
                return Err(invalid(
                    S,
                    format!(
                        "`mutate(\"{name}\", ..)`: `{name}` is chosen by the bandit; mutate only \
                         dimensions left out of `.hyperparams([..])`"
                    ),
                ));
            }
        }
        let pbt = self.pbt.build_for(S, false)?;
        let bandit = Bandit {
            codec: Codec::new(dims),
            dims: chosen,
            interval: pbt.interval(),
            window: self.window,
            candidates: self.candidates,
            rng: ChaCha8Rng::seed_from_u64(0),
            data: Vec::new(),
            marks: Vec::new(),
            batch: Vec::new(),
            batch_time: f64::NEG_INFINITY,
            pending: None,
        };
        Ok(Pb2 { pbt, bandit })
    }
}

impl<C: Space, M: Metrics> Scheduler<C, M> for Pb2<C, M> {
    fn name(&self) -> &str {
        "PB2"
    }

    fn setup(&mut self, seed: u64) {
        self.pbt.setup(seed);
        self.bandit.rng = ChaCha8Rng::seed_from_u64(seed ^ 0xB2B2);
    }

    fn on_trial_add(&mut self, trial: TrialId, config: &C) {
        self.pbt.on_trial_add(trial, config);
    }

    fn on_trial_result(&mut self, trial: TrialId, result: &TrialResult<M>) -> Decision {
        self.pbt.on_result_with(trial, result, &mut self.bandit)
    }

    fn wants_checkpoint(&self, trial: TrialId, iteration: u64) -> bool {
        self.pbt.wants_checkpoint(trial, iteration)
    }

    fn take_exploit(&mut self, trial: TrialId) -> Option<Exploit<C>> {
        self.pbt.take_exploit(trial)
    }

    /// PBT's state, the intervals observed, each trial's mark (where its current interval
    /// started), the batch, the exploit in progress and the random generator.
    fn save_state(&self) -> serde_json::Value {
        let b = &self.bandit;
        let saved = Saved {
            pbt: self.pbt.save_state(),
            data: b.data.clone(),
            marks: b.marks.clone(),
            batch: b.batch.clone(),
            batch_time: b.batch_time,
            pending: b.pending.clone(),
            rng: b.rng.clone(),
        };
        state::save("PB2", &saved)
    }

    fn restore_state(&mut self, value: serde_json::Value) -> Result<(), StateError> {
        let saved: Saved = state::load("PB2", value)?;
        let k = self.bandit.dims.len();
        let xs = saved
            .data
            .iter()
            .map(|i| &i.x)
            .chain(saved.marks.iter().flatten().map(|m| &m.x))
            .chain(&saved.batch)
            .chain(saved.pending.iter().flat_map(|p| p.before.as_ref()).map(|m| &m.x));
        for x in xs {
            if x.len() != k {
                return Err(state::mismatch(
                    "PB2",
                    format!("the state has {} bandit dimensions, this PB2 has {k}", x.len()),
                ));
            }
        }
        self.pbt.restore_state(saved.pbt)?;
        let b = &mut self.bandit;
        b.data = saved.data;
        b.marks = saved.marks;
        b.batch = saved.batch;
        b.batch_time = saved.batch_time;
        b.pending = saved.pending;
        b.rng = saved.rng;
        Ok(())
    }

    fn on_exploit_failed(&mut self, trial: TrialId, source: TrialId, why: &str) {
        let b = &mut self.bandit;
        if let Some(p) = b.pending.take() {
            if p.trial == trial.0 {
                if let Some(m) = b.marks.get_mut(trial.index()) {
                    *m = p.before;
                }
                if p.batched {
                    b.batch.pop();
                }
            }
        }
        self.pbt.on_exploit_failed(trial, source, why);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testing::{SCORE, Score, result};

    crate::search_space! {
        /// Numbers of every kind and a choice.
        pub struct P2 {
            a: f64 = uniform(0.0, 1.0),
            lr: f64 = loguniform(1e-4, 1e-1),
            n: i64 = randint(1, 8),
            c: u8 = choice([0, 1, 2]),
        }
    }

    crate::search_space! {
        /// Nothing for the bandit.
        pub struct OnlyChoice {
            c: u8 = choice([1, 2]),
        }
    }

    fn pb2(interval: f64) -> Pb2<P2, Score> {
        Pb2::builder(SCORE, Mode::Max)
            .perturbation_interval(interval)
            .quantile_fraction(0.5)
            .n_candidates(64)
            .build()
            .unwrap()
    }

    fn cfg(a: f64) -> P2 {
        P2 { a, lr: 1e-3, n: 4, c: 1 }
    }

    #[test]
    fn intervals_are_reward_changes_per_unit_of_time() {
        let mut p = pb2(2.0);
        p.on_trial_add(TrialId(0), &cfg(0.25));
        for it in 1..=6 {
            let d = p.on_trial_result(TrialId(0), &result(0, it, 3.0 * it as f64));
            assert_eq!(d, Decision::Continue, "alone: nobody to copy");
        }
        let x = p.bandit.unit(&cfg(0.25));
        assert_eq!(x.len(), 3, "a, lr and n; not the choice");
        assert!((x[0] - 0.25).abs() < 1e-12 && (x[1] - 1.0 / 3.0).abs() < 1e-9, "{x:?}");
        let want = |time: f64, start: f64| Interval { time, start, x: x.clone(), rate: 3.0 };
        assert_eq!(p.bandit.data, vec![want(2.0, 6.0), want(4.0, 12.0)]);
        assert_eq!(p.num_intervals(), 2);
        // Beyond the window only the most recent intervals are kept.
        let mut q: Pb2<P2, Score> =
            Pb2::builder(SCORE, Mode::Max).perturbation_interval(2.0).window(3).build().unwrap();
        q.on_trial_add(TrialId(0), &cfg(0.25));
        for it in 1..=12 {
            q.on_trial_result(TrialId(0), &result(0, it, 3.0 * it as f64));
        }
        let times: Vec<f64> = q.bandit.data.iter().map(|i| i.time).collect();
        assert_eq!(times, vec![6.0, 8.0, 10.0]);
    }

    #[test]
    fn exploration_weight_grows_with_the_data() {
        assert!((kappa(1) - 0.2f64.sqrt()).abs() < 1e-12, "ln(0.4) < 0 counts as 0");
        assert!((kappa(10) - (0.2 + 4f64.ln()).sqrt()).abs() < 1e-12);
        assert!(kappa(100) > kappa(10));
    }

    /// Intervals whose reward change peaks at `a = 0.8` (other dimensions fixed).
    fn peaked(p: &mut Pb2<P2, Score>, times: usize) {
        let x0 = p.bandit.unit(&cfg(0.5));
        for t in 0..times {
            for k in 0..6 {
                let a = (k as f64 + 0.5) / 6.0;
                let mut x = x0.clone();
                x[0] = a;
                let rate = 1.0 - 10.0 * (a - 0.8) * (a - 0.8);
                p.bandit.data.push(Interval { time: 2.0 * t as f64, start: 1.0, x, rate });
            }
        }
    }

    #[test]
    fn the_bandit_picks_the_best_region() {
        let mut p = pb2(2.0);
        p.setup(3);
        peaked(&mut p, 4);
        let x = p.bandit.select(8.0, 1.0).unwrap();
        assert!((x[0] - 0.8).abs() < 0.1, "{x:?}");
        // Too little data: no choice.
        let mut q = pb2(2.0);
        q.bandit.data = p.bandit.data[..1].to_vec();
        assert_eq!(q.bandit.select(8.0, 1.0), None);
    }

    #[test]
    fn the_batch_lowers_the_uncertainty_where_it_chose() {
        let mut p = pb2(2.0);
        peaked(&mut p, 2);
        let (pts, rates, _) = p.bandit.inputs();
        let gp = TvGp::fit(pts, &standardize(&rates)).unwrap();
        let q = vec![(4.0, vec![0.0, 0.2, 0.3, 0.6])];
        let (m0, s0) = gp.predict(&q, &[])[0];
        let (m1, s1) = gp.predict(&q, &q)[0];
        assert_eq!(m0, m1, "the batch does not move the mean");
        assert!(s1 < 0.5 * s0, "{s1} vs {s0}");
    }

    /// A population of `n` trials whose reward grows by `rate(config)` per step; an
    /// exploiting trial takes the source's iteration and reward. Returns every exploit.
    type Log = Vec<(u32, u64, u32, P2)>;

    fn rate(c: &P2) -> f64 {
        1.0 - (c.a - 0.7).powi(2) - (c.lr.log10() + 2.0).powi(2) / 4.0 - 0.01 * c.n as f64
    }

    fn simulate(p: &mut Pb2<P2, Score>, pop: &mut [(u64, f64, P2)], steps: u64, log: &mut Log) {
        for _ in 0..steps {
            for t in 0..pop.len() {
                let (it, v, c) = &mut pop[t];
                *it += 1;
                *v += rate(c);
                let r = result(t as u32, *it, *v);
                let it = *it;
                if p.on_trial_result(TrialId(t as u32), &r) == Decision::Exploit {
                    let e = p.take_exploit(TrialId(t as u32)).unwrap();
                    let (sit, sv, _) = pop[e.source.index()].clone();
                    log.push((t as u32, it, e.source.0, e.config.clone()));
                    pop[t] = (sit, sv, e.config);
                }
            }
        }
    }

    fn population(p: &mut Pb2<P2, Score>, n: u32) -> Vec<(u64, f64, P2)> {
        (0..n)
            .map(|t| {
                let c = P2 { a: 0.1 * f64::from(t), lr: 1e-4, n: 1 + t as i64, c: (t % 3) as u8 };
                p.on_trial_add(TrialId(t), &c);
                (0, 0.0, c)
            })
            .collect()
    }

    #[test]
    fn explored_configs_stay_in_the_space_and_copy_the_rest() {
        let mut p = pb2(2.0);
        p.setup(5);
        let mut pop = population(&mut p, 4);
        let mut log = Vec::new();
        simulate(&mut p, &mut pop, 30, &mut log);
        assert!(log.len() > 10, "{}", log.len());
        assert_eq!(p.num_exploits(), log.len());
        let initial: Vec<u8> = (0..4).map(|t| (t % 3) as u8).collect();
        for (_, _, source, c) in &log {
            assert!(c.validate().is_ok(), "{c:?}");
            // The choice is not the bandit's: copied from some member's (initial) value.
            assert!(initial.contains(&c.c), "{c:?} from {source}");
        }
        // The bandit learns that a higher learning rate and `a` near 0.7 grow faster.
        let last = &log[log.len() - 1].3;
        assert!(last.lr > 1e-3 && (last.a - 0.7).abs() < 0.3, "{last:?}");
    }

    #[test]
    fn seeded_runs_agree_and_a_restored_state_decides_the_same() {
        let run = |seed: u64| {
            let mut p = pb2(2.0);
            p.setup(seed);
            let mut pop = population(&mut p, 4);
            (p, pop.split_off(0))
        };
        let (mut a, mut pop_a) = run(7);
        let mut log_a = Vec::new();
        simulate(&mut a, &mut pop_a, 8, &mut log_a);
        let saved = a.save_state();
        let json = serde_json::to_string(&saved).unwrap();
        let mut b = pb2(2.0);
        b.restore_state(serde_json::from_str(&json).unwrap()).unwrap();
        assert_eq!(b.save_state(), saved);
        let (mut pop_b, mut log_b) = (pop_a.clone(), log_a.clone());
        simulate(&mut a, &mut pop_a, 12, &mut log_a);
        simulate(&mut b, &mut pop_b, 12, &mut log_b);
        assert!(log_a.len() > 5);
        assert_eq!(log_a, log_b);
        // The same seed from the start: the same exploits; another seed: others.
        let (mut c, mut pop_c) = run(7);
        let mut log_c = Vec::new();
        simulate(&mut c, &mut pop_c, 20, &mut log_c);
        assert_eq!(log_a, log_c);
        let (mut d, mut pop_d) = run(8);
        let mut log_d = Vec::new();
        simulate(&mut d, &mut pop_d, 20, &mut log_d);
        assert_ne!(log_a, log_d);
    }

    #[test]
    fn a_failed_exploit_undoes_the_mark_and_the_batch() {
        let mut p = pb2(2.0);
        p.setup(1);
        let mut pop = population(&mut p, 2);
        let mut log = Vec::new();
        simulate(&mut p, &mut pop, 6, &mut log);
        // Trial 0 falls behind at the next boundary.
        let mark = p.bandit.marks[0].clone().unwrap();
        let d = p.on_trial_result(TrialId(0), &result(0, mark.time as u64 + 2, mark.score - 50.0));
        assert_eq!(d, Decision::Exploit);
        let batch = p.bandit.batch.len();
        assert_ne!(p.bandit.marks[0].as_ref().unwrap().score, mark.score - 50.0);
        p.on_exploit_failed(TrialId(0), TrialId(1), "no checkpoint");
        let m = p.bandit.marks[0].as_ref().unwrap();
        assert_eq!((m.time, m.score), (mark.time + 2.0, mark.score - 50.0));
        assert_eq!(p.bandit.batch.len(), batch - 1);
    }

    #[test]
    fn builder_checks_the_bandit_dimensions() {
        let err = |b: Pb2Builder<P2, Score>| b.build().unwrap_err().to_string();
        let e = err(Pb2::builder(SCORE, Mode::Max).hyperparams(["b"]));
        assert!(e.contains("no dimension `b`; it has: a, lr, n, c"), "{e}");
        let e = err(Pb2::builder(SCORE, Mode::Max).hyperparams(["c"]));
        assert!(e.contains("needs a bounded number") && e.contains(".mutate(\"c\""), "{e}");
        let e = err(Pb2::builder(SCORE, Mode::Max).mutate("lr", Mutation::perturb()));
        assert!(e.contains("`lr` is chosen by the bandit"), "{e}");
        let e = err(Pb2::builder(SCORE, Mode::Max).quantile_fraction(0.9));
        assert!(e.starts_with("PB2: ") && e.contains("(0, 0.5]"), "{e}");
        let e = Pb2::<OnlyChoice, Score>::builder(SCORE, Mode::Max).build().unwrap_err();
        assert!(e.to_string().contains("no dimension for the bandit"), "{e}");
        let ok = Pb2::<P2, Score>::builder(SCORE, Mode::Max)
            .hyperparams(["lr"])
            .mutate("a", Mutation::perturb())
            .mutate("c", Mutation::Neighbour)
            .build()
            .unwrap();
        assert_eq!(ok.bandit.dims, vec![1]);
    }

    #[test]
    fn a_state_of_other_dimensions_is_refused() {
        let mut p = pb2(2.0);
        let mut pop = population(&mut p, 2);
        simulate(&mut p, &mut pop, 6, &mut Vec::new());
        let saved = p.save_state();
        let mut q: Pb2<P2, Score> =
            Pb2::builder(SCORE, Mode::Max).hyperparams(["a"]).build().unwrap();
        let e = q.restore_state(saved.clone()).unwrap_err().to_string();
        assert!(e.contains("3 bandit dimensions, this PB2 has 1"), "{e}");
        let mut v = saved;
        v["state"]["data"][0]["rate"] = serde_json::json!("fast");
        assert!(p.restore_state(v).unwrap_err().to_string().contains("data[0].rate"));
    }
}
