//! Tree-structured Parzen estimator (Bergstra et al. 2011), multivariate and aware of
//! conditional dimensions, with a constant liar for pending trials.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::core::{Algo, Ctx, Proposal, searcher_type};
use super::unit::{Codec, Kind, fast_exp, norm_cdf};
use crate::space::Space;

/// A mixture of one product kernel per observed point (plus, optionally, the uniform
/// prior as one more component) over the unit cube.
///
/// A component whose point lacks a dimension (inactive there) uses the prior for it, so
/// points of different enum variants share one joint density; a dimension inactive in
/// the evaluated point is left out of every component alike.
#[derive(Debug, Clone)]
pub(crate) struct Parzen {
    kinds: Vec<Kind>,
    /// n × D centres, NaN where inactive (row per point).
    mus: Vec<f64>,
    n: usize,
    prior: bool,
    /// Per dimension: the kernel width (continuous) or the probability of moving to
    /// another option (categorical).
    sigma: Vec<f64>,
    /// Per dimension, per point (column layout, so the density loop vectorizes): the
    /// centre (0 where inactive), `1/(2σ²)` (0 where inactive) and `-ln(σ √(2π) Z)` with
    /// `Z` the kernel's mass inside `[0, 1]` (0 where inactive: the uniform prior).
    col_mu: Vec<Vec<f64>>,
    col_c: Vec<Vec<f64>>,
    col_norm: Vec<Vec<f64>>,
}

impl Parzen {
    pub(crate) fn fit(kinds: &[Kind], points: &[&[f64]], sigma: Vec<f64>, prior: bool) -> Self {
        let d = kinds.len();
        let n = points.len();
        let mut mus = Vec::with_capacity(n * d);
        for p in points {
            mus.extend_from_slice(&p[..d]);
        }
        let mut col_mu = vec![Vec::new(); d];
        let mut col_c = vec![Vec::new(); d];
        let mut col_norm = vec![Vec::new(); d];
        for (j, k) in kinds.iter().enumerate() {
            let s = sigma[j];
            let (cm, cc, cn) = (&mut col_mu[j], &mut col_c[j], &mut col_norm[j]);
            cm.reserve(n);
            cc.reserve(n);
            cn.reserve(n);
            for p in points {
                let mu = p[j];
                match k {
                    Kind::Cont if mu.is_finite() => {
                        let z = (norm_cdf((1.0 - mu) / s) - norm_cdf(-mu / s)).max(1e-300);
                        cm.push(mu);
                        cc.push(0.5 / (s * s));
                        cn.push(-(s * (2.0 * std::f64::consts::PI).sqrt() * z).ln());
                    }
                    Kind::Cont => {
                        cm.push(0.0);
                        cc.push(0.0);
                        cn.push(0.0);
                    }
                    Kind::Cat(c) => {
                        // Categorical columns hold the option (NaN where inactive).
                        cm.push(mu);
                        cc.push(0.0);
                        cn.push(-(*c as f64).ln());
                    }
                }
            }
        }
        Self { kinds: kinds.to_vec(), mus, n, prior, sigma, col_mu, col_c, col_norm }
    }

    fn components(&self) -> usize {
        self.n + usize::from(self.prior)
    }

    /// Log density at `u` (dimensions NaN in `u` are left out).
    #[cfg(test)]
    pub(crate) fn log_pdf(&self, u: &[f64]) -> f64 {
        self.log_pdf_with(u, &mut Vec::new())
    }

    /// [`Parzen::log_pdf`] with a scratch buffer of the caller's (one per component), so
    /// that scoring many candidates allocates nothing.
    pub(crate) fn log_pdf_with(&self, u: &[f64], acc: &mut Vec<f64>) -> f64 {
        acc.clear();
        acc.resize(self.n, 0.0);
        let mut prior_term = 0.0;
        for (j, k) in self.kinds.iter().enumerate() {
            let x = u[j];
            if !x.is_finite() {
                continue;
            }
            let (mu, c, norm) = (&self.col_mu[j], &self.col_c[j], &self.col_norm[j]);
            match *k {
                Kind::Cont => {
                    for (a, ((m, c), nm)) in acc.iter_mut().zip(mu.iter().zip(c).zip(norm)) {
                        let t = x - m;
                        *a += nm - c * t * t;
                    }
                }
                Kind::Cat(c) => {
                    let uniform = -(c as f64).ln();
                    prior_term += uniform;
                    if c > 1 {
                        let same = (1.0 - self.sigma[j]).ln();
                        let other = (self.sigma[j] / (c - 1) as f64).ln();
                        for (a, m) in acc.iter_mut().zip(mu) {
                            *a += if !m.is_finite() {
                                uniform
                            } else if (x - m).abs() < 0.5 {
                                same
                            } else {
                                other
                            };
                        }
                    }
                }
            }
        }
        if self.prior {
            acc.push(prior_term);
        }
        log_mean_exp(acc)
    }

    /// A point drawn from the mixture, inactive dimensions NaN.
    pub(crate) fn sample(&self, codec: &Codec, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let d = self.kinds.len();
        let comp = rng.random_range(0..self.components().max(1));
        let mut u = vec![f64::NAN; d];
        for j in 0..d {
            if !codec.active(&u, j) {
                continue;
            }
            let mu = if comp < self.n { self.mus[comp * d + j] } else { f64::NAN };
            u[j] = if !mu.is_finite() {
                codec.sample_dim(j, rng)
            } else {
                match self.kinds[j] {
                    Kind::Cont => {
                        let s = self.sigma[j];
                        let mut v = f64::NAN;
                        for _ in 0..32 {
                            let z: f64 = rng.sample(rand_distr::StandardNormal);
                            let x = mu + s * z;
                            if (0.0..=1.0).contains(&x) {
                                v = x;
                                break;
                            }
                        }
                        if v.is_nan() { rng.random::<f64>() } else { v }
                    }
                    Kind::Cat(c) => {
                        if c > 1 && rng.random::<f64>() < self.sigma[j] {
                            // Another option, uniformly.
                            let o = rng.random_range(0..c - 1) as f64;
                            if o >= mu { o + 1.0 } else { o }
                        } else {
                            mu
                        }
                    }
                }
            };
        }
        u
    }
}

/// `ln(mean(e^t))` over `terms`, stable for large magnitudes. Four running maxima and sums
/// keep the loops free of a serial dependency chain, so they vectorize.
fn log_mean_exp(terms: &[f64]) -> f64 {
    let mut m4 = [f64::NEG_INFINITY; 4];
    let chunks = terms.chunks_exact(4);
    let rest = chunks.remainder();
    for c in chunks {
        for (m, t) in m4.iter_mut().zip(c) {
            *m = m.max(*t);
        }
    }
    let max = rest.iter().fold(m4[0].max(m4[1]).max(m4[2].max(m4[3])), |m, t| m.max(*t));
    if !max.is_finite() {
        return max;
    }
    // Terms 40 nats below the largest add less than 1e-17 each: clamped, not exact.
    let term = |t: f64| fast_exp((t - max).max(-40.0));
    let mut s4 = [0.0; 4];
    let chunks = terms.chunks_exact(4);
    for c in chunks {
        for (s, t) in s4.iter_mut().zip(c) {
            *s += term(*t);
        }
    }
    let sum = (s4[0] + s4[1]) + (s4[2] + s4[3]) + rest.iter().map(|t| term(*t)).sum::<f64>();
    max + sum.ln() - (terms.len() as f64).ln()
}

/// Kernel widths by Scott's rule from the spread of `points` in each dimension, times
/// `factor`, at least `min_width`; categorical: a move probability shrinking with `n`.
pub(crate) fn bandwidths(
    kinds: &[Kind],
    points: &[&[f64]],
    factor: f64,
    min_width: f64,
) -> Vec<f64> {
    let n_cont = kinds.iter().filter(|k| **k == Kind::Cont).count().max(1) as f64;
    kinds
        .iter()
        .enumerate()
        .map(|(j, k)| {
            let vals: Vec<f64> = points.iter().map(|p| p[j]).filter(|v| v.is_finite()).collect();
            let m = vals.len() as f64;
            let shrink = (m + 1.0).powf(-1.0 / (n_cont + 4.0));
            match k {
                Kind::Cont => {
                    let spread = if vals.len() < 2 {
                        0.3
                    } else {
                        let mean = vals.iter().sum::<f64>() / m;
                        (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (m - 1.0)).sqrt()
                    };
                    (factor * spread * shrink).clamp(min_width, 1.0)
                }
                Kind::Cat(c) => {
                    let c = *c as f64;
                    ((c - 1.0) / c * shrink * factor.min(1.0)).clamp(0.0, 0.9)
                }
            }
        })
        .collect()
}

const MAX_ABOVE: usize = 400;

/// The TPE algorithm; see [`Tpe`].
#[derive(Debug, Clone)]
pub(crate) struct TpeAlgo {
    startup: usize,
    candidates: usize,
    gamma: f64,
    liar: bool,
    width: f64,
}

impl TpeAlgo {
    /// The split: how many of `n` sorted results form the good density.
    fn n_below(&self, n: usize) -> usize {
        ((self.gamma * n as f64).ceil() as usize).clamp(1, 25)
    }
}

impl Algo for TpeAlgo {
    fn startup(&self) -> usize {
        self.startup
    }

    fn propose(&mut self, ctx: &Ctx<'_>, rng: &mut ChaCha8Rng) -> Proposal {
        if ctx.done.len() < 2 {
            return Proposal::Prior;
        }
        let order = ctx.ranked;
        let nb = self.n_below(order.len());
        let below: Vec<&[f64]> = order[..nb].iter().map(|i| ctx.done[*i].0.as_slice()).collect();
        // The bad density uses at most MAX_ABOVE results, evenly spread in rank: past a
        // few hundred points the estimate hardly changes and its cost grows linearly.
        let rest = &order[nb..];
        let mut above: Vec<&[f64]> = if rest.len() <= MAX_ABOVE {
            rest.iter().map(|i| ctx.done[*i].0.as_slice()).collect()
        } else {
            (0..MAX_ABOVE)
                .map(|k| ctx.done[rest[k * rest.len() / MAX_ABOVE]].0.as_slice())
                .collect()
        };
        if self.liar {
            // Constant liar: a running trial counts as a bad result, so the next
            // suggestion moves away from it instead of repeating it.
            above.extend(ctx.pending.iter().copied());
        }
        let kinds = &ctx.codec.kinds;
        // Optuna's multivariate width, 0.2·(m+1)^(-1/(d+4)), as a floor under the width
        // the data would give: a tight cluster of good points must not stop exploration.
        let d = kinds.iter().filter(|k| **k == Kind::Cont).count().max(1) as f64;
        let floor = |m: usize| 0.2 * self.width * (m as f64 + 1.0).powf(-1.0 / (d + 4.0));
        let l =
            Parzen::fit(kinds, &below, bandwidths(kinds, &below, 1.0, floor(below.len())), true);
        let g =
            Parzen::fit(kinds, &above, bandwidths(kinds, &above, 1.0, floor(above.len())), true);
        let mut best = None;
        let mut best_score = f64::NEG_INFINITY;
        let mut scratch = Vec::with_capacity(above.len() + 1);
        for _ in 0..self.candidates {
            let u = l.sample(ctx.codec, rng);
            let score = l.log_pdf_with(&u, &mut scratch) - g.log_pdf_with(&u, &mut scratch);
            if score > best_score || best.is_none() {
                best_score = score;
                best = Some(u);
            }
        }
        best.map_or(Proposal::Prior, Proposal::Point)
    }
}

searcher_type! {
    /// Tree-structured Parzen estimator (Bergstra et al. 2011), like Optuna's multivariate
    /// TPE and HyperOpt.
    ///
    /// After `n_startup` results drawn from the prior, finished trials are split at the
    /// `gamma` quantile of the loss (at most 25 in the good group) into a good density
    /// `l(x)` and a bad one `g(x)`, each a mixture of product kernels over the unit cube
    /// plus the prior; `n_candidates` points are drawn from `l` and the one with the
    /// largest `l(x) / g(x)` is suggested. Dimensions are modelled jointly
    /// (multivariate). Continuous and integer dimensions use truncated Gaussian kernels
    /// (log-scaled domains in log space; integers are rounded by decoding); categorical
    /// ones a kernel that keeps the observed option with high probability. In an enum
    /// space a variant's fields are only drawn when the variant is, and a kernel whose
    /// point had another variant uses the prior for them.
    ///
    /// With more than 400 results past the good group, the bad density is fitted on 400
    /// of them evenly spread in rank, which keeps a suggestion well under a millisecond
    /// with thousands of results.
    ///
    /// With several trials running, each running trial counts as a bad result (constant
    /// liar), so parallel suggestions spread out instead of coinciding. Turn this off
    /// with [`Tpe::constant_liar`].
    ///
    /// ```
    /// # use tune_runtime::prelude::*;
    /// # search_space! { struct Cfg { lr: f64 = loguniform(1e-4, 1e-1) } }
    /// let tpe = tune_runtime::Tpe::<Cfg>::new().n_startup(10).n_candidates(24);
    /// ```
    Tpe, TpeAlgo
}

impl<C: Space> Tpe<C> {
    /// TPE with Optuna's defaults: 10 startup trials, 24 candidates, `gamma` 0.1,
    /// constant liar on.
    pub fn new() -> Self {
        let algo = TpeAlgo { startup: 10, candidates: 24, gamma: 0.1, liar: true, width: 1.0 };
        Self { inner: super::core::ModelSearcher::new(algo) }
    }

    /// Results drawn from the prior before the model is used (at least 2 are needed).
    pub fn n_startup(mut self, n: usize) -> Self {
        self.inner.algo.startup = n;
        self
    }

    /// Candidates drawn from `l(x)` per suggestion.
    pub fn n_candidates(mut self, n: usize) -> Self {
        self.inner.algo.candidates = n.max(1);
        self
    }

    /// Fraction of results in the good group (clamped to `(0, 1]`; the group holds 1 to 25).
    pub fn gamma(mut self, gamma: f64) -> Self {
        self.inner.algo.gamma = if gamma > 0.0 { gamma.min(1.0) } else { 0.1 };
        self
    }

    /// Scales the smallest kernel width, `0.2·(m+1)^(-1/(d+4))` for `m` points in `d`
    /// continuous dimensions (default 1; smaller exploits more).
    pub fn bandwidth_scale(mut self, scale: f64) -> Self {
        if scale > 0.0 {
            self.inner.algo.width = scale;
        }
        self
    }

    /// Whether running trials count as bad results (default true).
    pub fn constant_liar(mut self, on: bool) -> Self {
        self.inner.algo.liar = on;
        self
    }
}

impl<C: Space> Default for Tpe<C> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::searcher::test_support::*;
    use crate::searcher::{RandomSearch, Searcher, Suggestion};
    use crate::testing::Score;
    use crate::trial::TrialId;

    #[test]
    fn parzen_density_integrates_to_one_and_peaks_at_points() {
        let kinds = [Kind::Cont];
        let pts: Vec<&[f64]> = vec![&[0.2], &[0.25], &[0.9]];
        let p = Parzen::fit(&kinds, &pts, vec![0.1], false);
        let n = 10_000;
        let integral: f64 =
            (0..n).map(|i| p.log_pdf(&[(i as f64 + 0.5) / n as f64]).exp() / n as f64).sum();
        assert!((integral - 1.0).abs() < 1e-3, "{integral}");
        assert!(p.log_pdf(&[0.22]) > p.log_pdf(&[0.6]));
        // One kernel, truncated: the density at its centre is φ(0)/(σ Z).
        let one = Parzen::fit(&kinds, &[&[0.5]], vec![0.1], false);
        let expect = 0.398_942_28 / 0.1 / (norm_cdf(5.0) - norm_cdf(-5.0));
        assert!((one.log_pdf(&[0.5]).exp() - expect).abs() < 1e-4);
    }

    #[test]
    fn categorical_kernel_and_prior_component() {
        let kinds = [Kind::Cat(4)];
        let pts: Vec<&[f64]> = vec![&[2.0]];
        let p = Parzen::fit(&kinds, &pts, vec![0.3], true);
        // Half kernel (0.7 on option 2, 0.1 elsewhere), half prior (0.25 each); the mixture
        // is summed with `fast_exp`, hence the tolerance.
        assert!((p.log_pdf(&[2.0]).exp() - (0.7 + 0.25) / 2.0).abs() < 1e-5);
        assert!((p.log_pdf(&[0.0]).exp() - (0.1 + 0.25) / 2.0).abs() < 1e-5);
        let total: f64 = (0..4).map(|c| p.log_pdf(&[c as f64]).exp()).sum();
        assert!((total - 1.0).abs() < 1e-5);
    }

    #[test]
    fn conditional_samples_leave_inactive_dimensions_out() {
        let codec = Codec::new(<Cond as Space>::dims());
        let kinds = codec.kinds.clone();
        let a = codec.encode_unit(&Cond { t: 0.1, model: Model::A { x: 0.5 } }.encode());
        let b = codec.encode_unit(&Cond { t: 0.9, model: Model::B { y: 0.1, k: 3 } }.encode());
        let pts: Vec<&[f64]> = vec![&a, &b];
        let p = Parzen::fit(&kinds, &pts, bandwidths(&kinds, &pts, 1.0, 0.02), true);
        let mut rng = rand::SeedableRng::seed_from_u64(1);
        for _ in 0..200 {
            let u = p.sample(&codec, &mut rng);
            for d in 0..u.len() {
                assert_eq!(u[d].is_finite(), codec.active(&u, d), "{u:?}");
            }
            assert!(p.log_pdf(&u).is_finite());
        }
    }

    fn best(configs: &[Cont2]) -> f64 {
        configs.iter().map(branin).fold(f64::INFINITY, f64::min)
    }

    fn branin(c: &Cont2) -> f64 {
        let pi = std::f64::consts::PI;
        let (x1, x2) = (c.a, c.b);
        let b = 5.1 / (4.0 * pi * pi);
        (x2 - b * x1 * x1 + 5.0 / pi * x1 - 6.0).powi(2)
            + 10.0 * (1.0 - 1.0 / (8.0 * pi)) * x1.cos()
            + 10.0
            - 0.397_887
    }

    #[test]
    fn beats_random_on_branin_and_is_seeded() {
        let mut wins = 0;
        for seed in 0..5 {
            let t = drive(&mut Tpe::<Cont2>::new(), 60, 1, seed, branin);
            let r = drive(&mut RandomSearch::<Cont2>::new(), 60, 1, seed, branin);
            if best(&t) < best(&r) {
                wins += 1;
            }
        }
        assert!(wins >= 4, "TPE beat random {wins} times out of 5");
        let a = drive(&mut Tpe::<Cont2>::new(), 30, 2, 9, branin);
        assert_eq!(a, drive(&mut Tpe::<Cont2>::new(), 30, 2, 9, branin));
    }

    #[test]
    fn stays_inside_conditional_and_mixed_spaces() {
        let c = drive(&mut Tpe::<Cond>::new().n_startup(5), 80, 3, 2, cond_loss);
        all_valid(&c);
        let best = c.iter().map(cond_loss).fold(f64::INFINITY, f64::min);
        let r = drive(&mut RandomSearch::<Cond>::new(), 80, 3, 2, cond_loss);
        let rbest = r.iter().map(cond_loss).fold(f64::INFINITY, f64::min);
        let tail: Vec<String> =
            c[60..].iter().map(|c| format!("{:.3} {c:?}", cond_loss(c))).collect();
        assert!(best < 0.2, "{best} (random {rbest}) {tail:?}");
        let m = drive(&mut Tpe::<Mixed>::new(), 60, 4, 2, mixed_loss);
        all_valid(&m);
    }

    #[test]
    fn constant_liar_spreads_parallel_suggestions() {
        let mut s = Tpe::<Cont2>::new().n_startup(5);
        let mut run = Run::start(&mut s, 100, 3);
        for _ in 0..20 {
            run.step(&mut s, 1, branin);
        }
        let mut batch = Vec::new();
        for i in 0..4 {
            match <_ as Searcher<Cont2, Score>>::suggest(&mut s, TrialId(100 + i)) {
                Suggestion::Config(c) => batch.push(c),
                other => panic!("{other:?}"),
            }
        }
        for i in 0..4 {
            for j in 0..i {
                assert_ne!(batch[i], batch[j]);
                let d = ((batch[i].a - batch[j].a) / 15.0).hypot((batch[i].b - batch[j].b) / 15.0);
                assert!(d > 1e-3, "{:?} and {:?}", batch[i], batch[j]);
            }
        }
    }

    #[test]
    fn state_round_trip() {
        round_trip(|| Tpe::<Cond>::new().n_startup(4), cond_loss);
    }
}
