//! Gaussian-process Bayesian optimization with expected improvement.

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::core::{Algo, Ctx, Obs, Proposal};
use super::macros::searcher_type;
use super::unit::{Codec, Kind, norm_cdf, norm_pdf};
use crate::space::Space;
use crate::state::StateError;

/// The GP's inputs: continuous dimensions as they are in the unit cube, categorical ones
/// one-hot (so options are unordered and equally far apart); an inactive dimension sits
/// at the centre (continuous) or all zeros (categorical).
pub(crate) fn features(codec: &Codec, u: &[f64]) -> Vec<f64> {
    let mut f = Vec::with_capacity(u.len() * 2);
    for (v, k) in u.iter().zip(&codec.kinds) {
        match k {
            Kind::Cont => f.push(if v.is_finite() { *v } else { 0.5 }),
            Kind::Cat(c) => {
                for o in 0..*c {
                    f.push(if v.is_finite() && v.round() as usize == o { 1.0 } else { 0.0 });
                }
            }
        }
    }
    f
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Matérn 5/2 correlation at squared distance `r2` with length scale `ell`.
pub(crate) fn matern52(r2: f64, ell: f64) -> f64 {
    let r = 5f64.sqrt() * r2.sqrt() / ell;
    (1.0 + r + r * r / 3.0) * (-r).exp()
}

/// Expected improvement below `best` of a normal prediction (`mean`, `sd`).
pub(crate) fn expected_improvement(mean: f64, sd: f64, best: f64) -> f64 {
    if sd <= 1e-12 {
        return (best - mean).max(0.0);
    }
    let z = (best - mean) / sd;
    sd * (z * norm_cdf(z) + norm_pdf(z))
}

/// Log marginal likelihood (up to a constant) of `ys` under the correlation matrix `k`
/// (noise included) times an amplitude at its maximum-likelihood value; with the Cholesky
/// factor of `k`, the weights `k⁻¹ ys` and the amplitude. `None` when `k` is not positive
/// definite.
pub(crate) fn profile_kernel(
    k: DMatrix<f64>,
    ys: &DVector<f64>,
) -> Option<(f64, DMatrix<f64>, DVector<f64>, f64)> {
    let n = ys.len();
    let chol = k.cholesky()?;
    let alpha = chol.solve(ys);
    let amp = (ys.dot(&alpha) / n as f64).max(1e-12);
    let l = chol.l();
    let log_det: f64 = (0..n).map(|i| l[(i, i)].ln()).sum();
    let ll = -0.5 * n as f64 * amp.ln() - log_det;
    Some((ll, l, alpha, amp))
}

/// A GP fitted to standardized losses; amplitude profiled out, length scale and noise
/// chosen by marginal likelihood on a grid.
#[derive(Debug)]
pub(crate) struct Gp {
    /// The inputs, each feature multiplied by its entry of `feature_scale`.
    xs: Vec<Vec<f64>>,
    /// Per feature, the factor applied before distances are taken (ARD: a larger factor
    /// is a shorter length scale in that dimension); empty when every dimension shares
    /// the length scale.
    feature_scale: Vec<f64>,
    alpha: DVector<f64>,
    l: DMatrix<f64>,
    pub(crate) ell: f64,
    pub(crate) noise: f64,
    amp: f64,
}

/// Length scales tried, as multiples of √(number of features).
const ELLS: [f64; 6] = [0.05, 0.1, 0.2, 0.35, 0.6, 1.0];
const NOISES: [f64; 3] = [1e-6, 1e-3, 1e-1];
const FIT_POINTS: usize = 80;

impl Gp {
    /// Log marginal likelihood (up to a constant) of `ys` with the amplitude at its
    /// maximum-likelihood value, and the factors it needs.
    fn profile(
        d2: &DMatrix<f64>,
        ys: &DVector<f64>,
        ell: f64,
        noise: f64,
    ) -> Option<(f64, DMatrix<f64>, DVector<f64>, f64)> {
        let n = ys.len();
        let k = DMatrix::from_fn(n, n, |i, j| {
            matern52(d2[(i, j)], ell) + if i == j { noise + 1e-9 } else { 0.0 }
        });
        profile_kernel(k, ys)
    }

    pub(crate) fn fit(xs: Vec<Vec<f64>>, ys: &[f64]) -> Option<Self> {
        Self::fit_with(xs, ys, None)
    }

    /// [`Gp::fit`], then per-dimension length scales (ARD): `groups[k]` is the dimension
    /// of feature `k` (the features of one option share a scale). Starting from the shared
    /// length scale, each dimension's scale is multiplied or divided by 4, then by 2, while
    /// that raises the marginal likelihood (coordinate ascent, see `ard_weights`), within
    /// 1/4 to 4 times the shared scale.
    pub(crate) fn fit_ard(xs: Vec<Vec<f64>>, ys: &[f64], groups: &[usize]) -> Option<Self> {
        Self::fit_with(xs, ys, Some(groups))
    }

    fn fit_with(mut xs: Vec<Vec<f64>>, ys: &[f64], groups: Option<&[usize]>) -> Option<Self> {
        let n = xs.len();
        let scale = (xs.first().map_or(1, Vec::len) as f64).sqrt();
        // Hyperparameters are chosen on at most FIT_POINTS evenly spread results: the
        // likelihood surface barely moves past that, and each grid point costs a Cholesky.
        let sub: Vec<usize> = if n <= FIT_POINTS {
            (0..n).collect()
        } else {
            (0..FIT_POINTS).map(|i| i * n / FIT_POINTS).collect()
        };
        let d2 = DMatrix::from_fn(sub.len(), sub.len(), |i, j| sq_dist(&xs[sub[i]], &xs[sub[j]]));
        let ys_sub = DVector::from_iterator(sub.len(), sub.iter().map(|i| ys[*i]));
        let mut best: Option<(f64, f64, f64)> = None;
        for e in ELLS {
            for noise in NOISES {
                let ell = e * scale;
                if let Some((ll, ..)) = Self::profile(&d2, &ys_sub, ell, noise) {
                    if best.is_none_or(|b| ll > b.0) {
                        best = Some((ll, ell, noise));
                    }
                }
            }
        }
        let (best_ll, ell, noise) = best?;
        let mut feature_scale = Vec::new();
        if let Some(groups) = groups {
            let w = ard_weights(&xs, &sub, &ys_sub, groups, ell, noise, best_ll);
            if w.iter().any(|v| *v != 1.0) {
                feature_scale = groups.iter().map(|g| w[*g].sqrt()).collect();
                for x in &mut xs {
                    for (v, f) in x.iter_mut().zip(&feature_scale) {
                        *v *= f;
                    }
                }
            }
        }
        let d2 = if feature_scale.is_empty() {
            d2
        } else {
            DMatrix::from_fn(sub.len(), sub.len(), |i, j| sq_dist(&xs[sub[i]], &xs[sub[j]]))
        };
        let ys = DVector::from_column_slice(ys);
        let (l, alpha, amp) = if sub.len() == n {
            let (_, l, alpha, amp) = Self::profile(&d2, &ys, ell, noise)?;
            (l, alpha, amp)
        } else {
            let d2 = DMatrix::from_fn(n, n, |i, j| sq_dist(&xs[i], &xs[j]));
            let (_, l, alpha, amp) = Self::profile(&d2, &ys, ell, noise)?;
            (l, alpha, amp)
        };
        Some(Self { xs, feature_scale, alpha, l, ell, noise, amp })
    }

    /// The length scale of each feature (the shared one divided by its ARD factor).
    #[cfg(test)]
    pub(crate) fn length_scales(&self, features: usize) -> Vec<f64> {
        (0..features)
            .map(|k| self.ell / self.feature_scale.get(k).copied().unwrap_or(1.0))
            .collect()
    }

    /// Predictive mean and standard deviation at each of `xs` (one triangular solve for
    /// all of them).
    pub(crate) fn predict_many(&self, xs: &[Vec<f64>]) -> Vec<(f64, f64)> {
        let scaled: Vec<Vec<f64>>;
        let xs = if self.feature_scale.is_empty() {
            xs
        } else {
            scaled = xs
                .iter()
                .map(|x| x.iter().zip(&self.feature_scale).map(|(v, f)| v * f).collect())
                .collect();
            &scaled
        };
        let n = self.xs.len();
        let r =
            DMatrix::from_fn(n, xs.len(), |i, j| matern52(sq_dist(&xs[j], &self.xs[i]), self.ell));
        let v = self.l.solve_lower_triangular(&r).unwrap_or_else(|| DMatrix::zeros(n, xs.len()));
        (0..xs.len())
            .map(|j| {
                let mean = r.column(j).dot(&self.alpha);
                let var = (self.amp * (1.0 - v.column(j).norm_squared())).max(0.0);
                (mean, var.sqrt())
            })
            .collect()
    }

    /// Predictive mean and standard deviation of the latent function at `x`.
    #[cfg(test)]
    pub(crate) fn predict(&self, x: &[f64]) -> (f64, f64) {
        self.predict_many(&[x.to_vec()])[0]
    }
}

/// The largest ARD weight on a dimension's squared distances (and 1 over it the smallest):
/// a dimension's length scale stays within 1/4 to 4 times the shared one. Unbounded
/// (1/16 to 16) was better on four functions of the regret benchmark but 27% worse on
/// Ackley5 (median of 30 seeds); this bound kept the gains on those four and cost 9%
/// on Ackley5.
const MAX_ARD_WEIGHT: f64 = 16.0;

/// ARD by coordinate ascent on the marginal likelihood: per dimension (group of
/// features), a weight on its squared distances (`1 / scale²`, relative to the shared
/// length scale `ell`), starting at 1. Each step multiplies one weight by 16 or 1/16
/// (scale ÷4 or ×4), then by 4 or 1/4 (two rounds over the dimensions each), keeping a
/// change when it raises the likelihood; weights stay within [`MAX_ARD_WEIGHT`] of 1.
fn ard_weights(
    xs: &[Vec<f64>],
    sub: &[usize],
    ys: &DVector<f64>,
    groups: &[usize],
    ell: f64,
    noise: f64,
    mut best: f64,
) -> Vec<f64> {
    let ng = groups.iter().copied().max().map_or(0, |g| g + 1);
    let m = sub.len();
    if ng < 2 || m < 3 {
        return vec![1.0; ng];
    }
    // Squared differences per dimension on the fitting subset.
    let parts: Vec<DMatrix<f64>> = (0..ng)
        .map(|g| {
            DMatrix::from_fn(m, m, |i, j| {
                let (a, b) = (&xs[sub[i]], &xs[sub[j]]);
                groups
                    .iter()
                    .enumerate()
                    .filter(|(_, h)| **h == g)
                    .map(|(k, _)| (a[k] - b[k]).powi(2))
                    .sum()
            })
        })
        .collect();
    let mut w = vec![1.0; ng];
    let ll = |w: &[f64]| {
        let mut d2 = DMatrix::zeros(m, m);
        for (p, wg) in parts.iter().zip(w) {
            d2 += p * *wg;
        }
        Gp::profile(&d2, ys, ell, noise).map(|r| r.0)
    };
    for step in [16.0, 4.0] {
        for _ in 0..2 {
            for g in 0..ng {
                for f in [step, 1.0 / step] {
                    let mut trial = w.clone();
                    trial[g] *= f;
                    if !(1.0 / MAX_ARD_WEIGHT..=MAX_ARD_WEIGHT).contains(&trial[g]) {
                        continue;
                    }
                    if let Some(v) = ll(&trial) {
                        if v > best + 1e-9 {
                            best = v;
                            w = trial;
                            break;
                        }
                    }
                }
            }
        }
    }
    w
}

/// Per feature of [`features`], the dimension it belongs to.
pub(crate) fn feature_groups(codec: &Codec) -> Vec<usize> {
    let mut g = Vec::new();
    for (d, k) in codec.kinds.iter().enumerate() {
        match k {
            Kind::Cont => g.push(d),
            Kind::Cat(c) => g.extend(std::iter::repeat_n(d, *c)),
        }
    }
    g
}

/// The GP-BO algorithm; see [`GpBo`].
#[derive(Debug, Clone)]
pub(crate) struct GpAlgo {
    startup: usize,
    candidates: usize,
    /// Per-dimension length scales (ARD).
    ard: bool,
    /// Length scale and noise of the last fit (for inspection and tests).
    pub(crate) last_fit: Option<(f64, f64)>,
}

/// A copy of `u` moved a little: continuous dimensions by a normal step of width `s`,
/// categorical ones switched with probability `s`; dimensions a new variant activates are
/// drawn from the prior.
fn perturb(codec: &Codec, u: &[f64], s: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let mut out = vec![f64::NAN; u.len()];
    for d in 0..u.len() {
        if !codec.active(&out, d) {
            continue;
        }
        out[d] = if !u[d].is_finite() {
            codec.sample_dim(d, rng)
        } else {
            match codec.kinds[d] {
                Kind::Cont => {
                    let z: f64 = rng.sample(rand_distr::StandardNormal);
                    (u[d] + s * z).clamp(0.0, 1.0)
                }
                Kind::Cat(_) if rng.random::<f64>() < s => codec.sample_dim(d, rng),
                Kind::Cat(_) => u[d],
            }
        };
    }
    out
}

/// Standardized values (mean 0, sd 1; a constant set stays centred).
pub(crate) fn standardize(raw: &[f64]) -> Vec<f64> {
    let n = raw.len().max(1) as f64;
    let mean = raw.iter().sum::<f64>() / n;
    let sd = (raw.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / n).sqrt();
    let sd = if sd > 0.0 && sd.is_finite() { sd } else { 1.0 };
    raw.iter().map(|y| (y - mean) / sd).collect()
}

/// ParEGO's scalarization (Knowles 2006) of several losses: each objective scaled to
/// `[0, 1]` over the finished trials, then the augmented Chebyshev norm with weights
/// `lambda`: `max_i λ_i f_i + 0.05 Σ λ_i f_i`.
pub(crate) fn parego(losses: &[&[f64]], lambda: &[f64]) -> Vec<f64> {
    let k = lambda.len();
    let lo: Vec<f64> =
        (0..k).map(|m| losses.iter().map(|l| l[m]).fold(f64::INFINITY, f64::min)).collect();
    let hi: Vec<f64> =
        (0..k).map(|m| losses.iter().map(|l| l[m]).fold(f64::NEG_INFINITY, f64::max)).collect();
    losses
        .iter()
        .map(|l| {
            let f: Vec<f64> = (0..k)
                .map(|m| {
                    let span = hi[m] - lo[m];
                    if span > 0.0 { lambda[m] * (l[m] - lo[m]) / span } else { 0.0 }
                })
                .collect();
            f.iter().copied().fold(0.0, f64::max) + 0.05 * f.iter().sum::<f64>()
        })
        .collect()
}

/// Weights drawn uniformly from the simplex.
fn simplex_weights(k: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let e: Vec<f64> = (0..k).map(|_| -(1.0 - rng.random::<f64>()).ln()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

impl Algo for GpAlgo {
    const NAME: &'static str = "GpBo";
    type State = ();

    fn startup(&self) -> usize {
        self.startup
    }

    fn supports(&self, _goals: usize, _constraints: usize) -> Result<(), String> {
        Ok(())
    }

    fn save(&self) {}

    fn restore(&mut self, _state: ()) -> Result<(), StateError> {
        Ok(())
    }

    fn propose(&mut self, ctx: &Ctx<'_>, rng: &mut ChaCha8Rng) -> Proposal {
        let n = ctx.done.len();
        if n < 2 {
            return Proposal::Prior;
        }
        let raw: Vec<f64> = if ctx.goals > 1 {
            let lambda = simplex_weights(ctx.goals, rng);
            let losses: Vec<&[f64]> = ctx.done.iter().map(|o| o.losses.as_slice()).collect();
            parego(&losses, &lambda)
        } else {
            ctx.done.iter().map(Obs::loss).collect()
        };
        let mut ys = standardize(&raw);
        let feasible = |i: usize| ctx.done[i].violation() <= 0.0;
        // The incumbent: the best feasible value (all of them count without constraints).
        let best = (0..n).filter(|i| feasible(*i)).map(|i| ys[i]).fold(f64::INFINITY, f64::min);
        let mut xs: Vec<Vec<f64>> =
            ctx.done.iter().map(|o| features(ctx.codec, &o.point)).collect();
        let n_cons = ctx.done[0].cons.len();
        let groups = self.ard.then(|| feature_groups(ctx.codec));
        let fit = |xs: Vec<Vec<f64>>, ys: &[f64]| match &groups {
            Some(g) => Gp::fit_ard(xs, ys, g),
            None => Gp::fit(xs, ys),
        };
        // One GP per constraint on its values; a candidate's expected improvement is
        // weighed by its probability of meeting every bound (Gardner et al. 2014).
        let cons_gps: Vec<(Gp, f64)> = (0..n_cons)
            .filter_map(|c| {
                let raw: Vec<f64> = ctx.done.iter().map(|o| o.cons[c].min(1e300)).collect();
                let mean = raw.iter().sum::<f64>() / n as f64;
                let sd = (raw.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
                let sd = if sd > 0.0 && sd.is_finite() { sd } else { 1.0 };
                let ys: Vec<f64> = raw.iter().map(|y| (y - mean) / sd).collect();
                // The bound 0 in standardized units.
                fit(xs.clone(), &ys).map(|g| (g, -mean / sd))
            })
            .collect();
        // Constant liar (the best value so far): a running trial's neighbourhood promises
        // no improvement, so parallel suggestions go elsewhere.
        let lie =
            if best.is_finite() { best } else { ys.iter().copied().fold(f64::INFINITY, f64::min) };
        for p in &ctx.pending {
            xs.push(features(ctx.codec, p));
            ys.push(lie);
        }
        let Some(gp) = fit(xs, &ys) else { return Proposal::Prior };
        self.last_fit = Some((gp.ell, gp.noise));
        let mut pool: Vec<(f64, Vec<f64>)> = Vec::with_capacity(self.candidates + 200);
        let add = |cands: Vec<Vec<f64>>, pool: &mut Vec<(f64, Vec<f64>)>| {
            let cands: Vec<Vec<f64>> = cands.iter().filter_map(|u| (ctx.project)(u)).collect();
            let feats: Vec<Vec<f64>> = cands.iter().map(|u| features(ctx.codec, u)).collect();
            let mut pof = vec![1.0; cands.len()];
            for (g, bound) in &cons_gps {
                for (p, (m, s)) in pof.iter_mut().zip(g.predict_many(&feats)) {
                    *p *=
                        if s > 1e-12 { norm_cdf((bound - m) / s) } else { f64::from(m <= *bound) };
                }
            }
            for (((m, s), u), p) in gp.predict_many(&feats).into_iter().zip(cands).zip(pof) {
                // With no feasible trial yet, look for feasibility alone.
                let a = if best.is_finite() { expected_improvement(m, s, best) * p } else { p };
                pool.push((a, u));
            }
        };
        let mut cands: Vec<Vec<f64>> =
            (0..self.candidates).map(|_| ctx.codec.sample_prior(rng)).collect();
        // Around the five best trials (by the scalarized value with several objectives).
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|a, b| feasible(*b).cmp(&feasible(*a)).then(raw[*a].total_cmp(&raw[*b])));
        for &i in order.iter().take(5) {
            for s in [0.02, 0.08] {
                for _ in 0..10 {
                    cands.push(perturb(ctx.codec, &ctx.done[i].point, s, rng));
                }
            }
        }
        add(cands, &mut pool);
        // Local refinement around the three best candidates.
        for s in [0.05, 0.01] {
            pool.sort_by(|a, b| b.0.total_cmp(&a.0));
            pool.truncate(3);
            let seeds: Vec<Vec<f64>> = pool.iter().map(|p| p.1.clone()).collect();
            let cands: Vec<Vec<f64>> = seeds
                .iter()
                .flat_map(|u| {
                    (0..20).map(|_| perturb(ctx.codec, u, s, &mut *rng)).collect::<Vec<_>>()
                })
                .collect();
            add(cands, &mut pool);
        }
        pool.sort_by(|a, b| b.0.total_cmp(&a.0));
        match pool.into_iter().next() {
            Some((ei, u)) if ei > 0.0 => Proposal::Point(u),
            _ => Proposal::Prior,
        }
    }
}

searcher_type! {
    /// Gaussian-process Bayesian optimization with expected improvement.
    ///
    /// After `n_startup` results from the prior, a GP with a Matérn 5/2 kernel is fitted
    /// to the standardized losses: the amplitude at its maximum-likelihood value, the
    /// length scale and the noise level chosen by marginal likelihood over a grid (six
    /// length scales × three noise levels), then a length scale per dimension (ARD, see
    /// [`GpBo::ard`]). Expected improvement is maximized over
    /// `n_candidates` prior samples, perturbations of the five best results and two
    /// rounds of local refinement.
    ///
    /// Inputs are the unit cube (log-scaled domains in log space). Every candidate is
    /// rounded to a real config before it is scored (integers, quanta), so the
    /// acquisition is computed at points that can be run. Categorical dimensions are
    /// one-hot; an enum variant's fields are inputs only when the variant is chosen
    /// (otherwise they sit at a fixed value), so the kernel compares like with like.
    /// Running trials enter the GP with the best loss so far (constant liar), which
    /// pushes parallel suggestions apart.
    ///
    /// Each suggestion costs O(n³) in the number of results n; see
    /// `docs/benchmarks.md` for the measured latency.
    GpBo, GpAlgo
}

impl<C: Space> GpBo<C> {
    /// GP-BO with 10 startup trials and 512 random candidates per suggestion.
    pub fn new() -> Self {
        let algo = GpAlgo { startup: 10, candidates: 512, ard: true, last_fit: None };
        Self { inner: super::core::ModelSearcher::new(algo) }
    }

    /// Results drawn from the prior before the GP is used (at least 2).
    pub fn n_startup(mut self, n: usize) -> Self {
        self.inner.algo.startup = n;
        self
    }

    /// Random candidates scored per suggestion (before local refinement).
    pub fn n_candidates(mut self, n: usize) -> Self {
        self.inner.algo.candidates = n.max(1);
        self
    }

    /// Per-dimension length scales (ARD; default on): after the shared length scale,
    /// each dimension's own scale (1/4 to 4 times the shared one) is fitted by marginal
    /// likelihood. Off: one length scale for every dimension.
    pub fn ard(mut self, on: bool) -> Self {
        self.inner.algo.ard = on;
        self
    }

    /// Draw the startup configs from a scrambled Sobol sequence instead of the prior
    /// (default false).
    pub fn qmc_startup(mut self, on: bool) -> Self {
        use super::core::Start;
        self.inner.set_start(if on { Start::Sobol } else { Start::Prior });
        self
    }
}

impl<C: Space> Default for GpBo<C> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::searcher::test_support::*;

    #[test]
    fn expected_improvement_known_values() {
        // At the incumbent with unit sd: EI = φ(0).
        assert!((expected_improvement(0.0, 1.0, 0.0) - 0.398_942_28).abs() < 1e-7);
        // z = 1: 1·Φ(1) + φ(1).
        let want = 0.841_344_746 + 0.241_970_725;
        assert!((expected_improvement(-1.0, 1.0, 0.0) - want).abs() < 1e-6);
        assert_eq!(expected_improvement(2.0, 0.0, 1.0), 0.0);
        assert!(expected_improvement(0.5, 0.1, 0.0) < expected_improvement(0.5, 1.0, 0.0));
    }

    #[test]
    fn gp_interpolates_and_picks_a_sensible_length_scale() {
        let xs: Vec<Vec<f64>> = (0..12).map(|i| vec![i as f64 / 11.0]).collect();
        let ys: Vec<f64> = xs.iter().map(|x| (6.0 * x[0]).sin()).collect();
        let gp = Gp::fit(xs.clone(), &ys).unwrap();
        for (x, y) in xs.iter().zip(&ys) {
            let (m, s) = gp.predict(x);
            assert!((m - y).abs() < 0.05, "{m} vs {y}");
            assert!(s < 0.1);
        }
        let (m, _) = gp.predict(&[0.5 / 11.0]);
        assert!((m - (6.0f64 * 0.5 / 11.0).sin()).abs() < 0.1);
        // Far from the data the uncertainty grows back.
        assert!(gp.predict(&[3.0]).1 > 0.5);
        assert!(gp.ell > 0.1, "ell {}", gp.ell);
    }

    #[test]
    fn ard_stretches_the_dimension_the_function_ignores() {
        use rand::SeedableRng;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let xs: Vec<Vec<f64>> =
            (0..40).map(|_| vec![rng.random::<f64>(), rng.random::<f64>()]).collect();
        let ys: Vec<f64> = xs.iter().map(|x| (6.0 * x[0]).sin()).collect();
        let iso = Gp::fit(xs.clone(), &ys).unwrap();
        let l = iso.length_scales(2);
        assert_eq!(l[0], l[1], "without ARD one length scale");
        let ard = Gp::fit_ard(xs.clone(), &ys, &[0, 1]).unwrap();
        let l = ard.length_scales(2);
        assert!(l[1] >= 2.0 * l[0], "the ignored dimension's scale is longer: {l:?}");
        // Still an interpolator of the data, and better than the shared scale away from it.
        for (x, y) in xs.iter().zip(&ys) {
            assert!((ard.predict(x).0 - y).abs() < 0.05);
        }
        let test: Vec<Vec<f64>> =
            (0..200).map(|_| vec![rng.random::<f64>(), rng.random::<f64>()]).collect();
        let err = |gp: &Gp| -> f64 {
            test.iter().map(|x| (gp.predict(x).0 - (6.0 * x[0]).sin()).powi(2)).sum::<f64>()
        };
        assert!(err(&ard) < err(&iso), "{} vs {}", err(&ard), err(&iso));
    }

    #[test]
    fn ard_groups_the_features_of_an_option() {
        let codec = Codec::new(<Mixed as Space>::dims());
        assert_eq!(feature_groups(&codec), vec![0, 1, 2, 2, 2, 2]);
        // A single dimension (or group) has nothing to weigh against: the shared scale.
        let xs: Vec<Vec<f64>> = (0..10).map(|i| vec![i as f64 / 9.0]).collect();
        let ys: Vec<f64> = xs.iter().map(|x| x[0] * x[0]).collect();
        let gp = Gp::fit_ard(xs, &ys, &[0]).unwrap();
        assert!(gp.feature_scale.is_empty());
    }

    #[test]
    fn ard_searches_mixed_and_conditional_spaces_seeded() {
        let m = drive(&mut GpBo::<Mixed>::new().ard(true).n_candidates(128), 25, 2, 1, mixed_loss);
        all_valid(&m);
        let c = drive(&mut GpBo::<Cond>::new().ard(true).n_candidates(64), 25, 3, 1, cond_loss);
        all_valid(&c);
        assert_eq!(
            c,
            drive(&mut GpBo::<Cond>::new().ard(true).n_candidates(64), 25, 3, 1, cond_loss)
        );
        round_trip(|| GpBo::<Cond>::new().ard(true).n_startup(4).n_candidates(64), cond_loss);
    }

    #[test]
    fn one_hot_features() {
        let codec = Codec::new(<Mixed as Space>::dims());
        let u = codec.encode_unit(&Mixed { x: 0.0, n: 10, c: 3 }.encode());
        let f = features(&codec, &u);
        assert_eq!(f.len(), 2 + 4);
        assert_eq!(&f[2..], &[0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn searches_mixed_and_conditional_spaces() {
        let m = drive(&mut GpBo::<Mixed>::new().n_candidates(128), 30, 2, 1, mixed_loss);
        all_valid(&m);
        let rand = drive(&mut crate::searcher::RandomSearch::<Mixed>::new(), 30, 1, 1, mixed_loss);
        let best = |v: &[Mixed]| v.iter().map(mixed_loss).fold(f64::INFINITY, f64::min);
        assert!(best(&m) <= best(&rand) + 0.05, "{} vs {}", best(&m), best(&rand));
        let c = drive(&mut GpBo::<Cond>::new().n_candidates(64), 25, 3, 1, cond_loss);
        all_valid(&c);
        assert_eq!(c, drive(&mut GpBo::<Cond>::new().n_candidates(64), 25, 3, 1, cond_loss));
    }

    #[test]
    fn state_round_trip() {
        round_trip(|| GpBo::<Cond>::new().n_startup(4).n_candidates(64), cond_loss);
    }
}
