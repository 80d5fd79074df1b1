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
    xs: Vec<Vec<f64>>,
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
        let (_, ell, noise) = best?;
        let ys = DVector::from_column_slice(ys);
        let (l, alpha, amp) = if sub.len() == n {
            let (_, l, alpha, amp) = Self::profile(&d2, &ys, ell, noise)?;
            (l, alpha, amp)
        } else {
            let d2 = DMatrix::from_fn(n, n, |i, j| sq_dist(&xs[i], &xs[j]));
            let (_, l, alpha, amp) = Self::profile(&d2, &ys, ell, noise)?;
            (l, alpha, amp)
        };
        Some(Self { xs, alpha, l, ell, noise, amp })
    }

    /// Predictive mean and standard deviation at each of `xs` (one triangular solve for
    /// all of them).
    pub(crate) fn predict_many(&self, xs: &[Vec<f64>]) -> Vec<(f64, f64)> {
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

/// The GP-BO algorithm; see [`GpBo`].
#[derive(Debug, Clone)]
pub(crate) struct GpAlgo {
    startup: usize,
    candidates: usize,
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
                Gp::fit(xs.clone(), &ys).map(|g| (g, -mean / sd))
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
        let Some(gp) = Gp::fit(xs, &ys) else { return Proposal::Prior };
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
    /// length scales × three noise levels). Expected improvement is maximized over
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
        let algo = GpAlgo { startup: 10, candidates: 512, last_fit: None };
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
