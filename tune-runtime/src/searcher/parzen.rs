//! Parzen estimators over the unit cube: weighted mixtures of product kernels, one per
//! observed point, plus optionally a wide prior component. TPE and BOHB fit them.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::unit::{Codec, Kind, fast_exp, norm_cdf};

/// How the kernels of one dimension are shaped.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DimKernel {
    /// Gaussians truncated to `[0, 1]`, one width per point.
    Cont(Vec<f64>),
    /// For an option: the probability of keeping the observed option; the others share
    /// the rest equally.
    Cat(f64),
}

/// The prior component's width in the unit cube (Optuna's: the whole range).
const PRIOR_SIGMA: f64 = 1.0;

/// A weighted mixture of one product kernel per observed point (plus, optionally, a prior
/// component) over the unit cube.
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
    /// Per component (the prior last, when there is one): the log of its weight; the
    /// weights sum to 1.
    log_w: Vec<f64>,
    /// Cumulative weights, for drawing a component.
    cum_w: Vec<f64>,
    prior: bool,
    kernels: Vec<DimKernel>,
    /// Per dimension, per point (column layout, so the density loop vectorizes): the
    /// centre (0 where inactive), `1/(2σ²)` (0 where inactive) and `-ln(σ √(2π) Z)` with
    /// `Z` the kernel's mass inside `[0, 1]` (the prior's log density where inactive).
    col_mu: Vec<Vec<f64>>,
    col_c: Vec<Vec<f64>>,
    col_norm: Vec<Vec<f64>>,
}

/// `-ln(σ √(2π) Z)` for a Gaussian of width `s` centred at `mu`, truncated to `[0, 1]`.
fn log_norm(mu: f64, s: f64) -> f64 {
    // Both bounds over 9 widths away: `Z` computes to exactly 1 (each tail is below
    // 1e-18, under half an ulp of 1), so the two `erfc`s are skipped.
    let z = if mu > 9.0 * s && 1.0 - mu > 9.0 * s {
        1.0
    } else {
        (norm_cdf((1.0 - mu) / s) - norm_cdf(-mu / s)).max(1e-300)
    };
    -(s * (2.0 * std::f64::consts::PI).sqrt() * z).ln()
}

/// Log density of the prior component in a continuous dimension.
fn prior_log_pdf(x: f64) -> f64 {
    let t = x - 0.5;
    log_norm(0.5, PRIOR_SIGMA) - t * t / (2.0 * PRIOR_SIGMA * PRIOR_SIGMA)
}

impl Parzen {
    /// `weights`: one per point (any positive scale); `prior_weight`: the prior
    /// component's weight on the same scale (`None`: no prior component).
    pub(crate) fn fit(
        kinds: &[Kind],
        points: &[&[f64]],
        kernels: Vec<DimKernel>,
        weights: &[f64],
        prior_weight: Option<f64>,
    ) -> Self {
        let d = kinds.len();
        let n = points.len();
        let mut mus = Vec::with_capacity(n * d);
        for p in points {
            mus.extend_from_slice(&p[..d]);
        }
        let mut w: Vec<f64> = (0..n).map(|i| weights.get(i).copied().unwrap_or(1.0)).collect();
        let prior = prior_weight.is_some() || n == 0;
        if prior {
            w.push(prior_weight.unwrap_or(1.0));
        }
        let total: f64 = w.iter().sum::<f64>().max(1e-300);
        let log_w: Vec<f64> = w.iter().map(|x| (x / total).max(1e-300).ln()).collect();
        let mut acc = 0.0;
        let cum_w = w
            .iter()
            .map(|x| {
                acc += x / total;
                acc
            })
            .collect();
        let mut col_mu = vec![Vec::new(); d];
        let mut col_c = vec![Vec::new(); d];
        let mut col_norm = vec![Vec::new(); d];
        for j in 0..d {
            let (cm, cc, cn) = (&mut col_mu[j], &mut col_c[j], &mut col_norm[j]);
            cm.reserve(n);
            cc.reserve(n);
            cn.reserve(n);
            for (i, p) in points.iter().enumerate() {
                let mu = p[j];
                match (&kernels[j], kinds[j]) {
                    (DimKernel::Cont(s), _) if mu.is_finite() => {
                        let s = s[i];
                        cm.push(mu);
                        cc.push(0.5 / (s * s));
                        cn.push(log_norm(mu, s));
                    }
                    (DimKernel::Cont(_), _) => {
                        // Inactive in this point: the prior, approximated by its value at
                        // the centre (the prior is nearly flat at this width).
                        cm.push(0.0);
                        cc.push(0.0);
                        cn.push(prior_log_pdf(0.5));
                    }
                    (DimKernel::Cat(_), kind) => {
                        // Categorical columns hold the option (NaN where inactive).
                        let c = if let Kind::Cat(c) = kind { c } else { 1 };
                        cm.push(mu);
                        cc.push(0.0);
                        cn.push(-(c as f64).ln());
                    }
                }
            }
        }
        Self {
            kinds: kinds.to_vec(),
            mus,
            n,
            log_w,
            cum_w,
            prior,
            kernels,
            col_mu,
            col_c,
            col_norm,
        }
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
        acc.extend_from_slice(&self.log_w[..self.n]);
        let mut prior_term = 0.0;
        for (j, k) in self.kinds.iter().enumerate() {
            let x = u[j];
            if !x.is_finite() {
                continue;
            }
            let (mu, c, norm) = (&self.col_mu[j], &self.col_c[j], &self.col_norm[j]);
            match (&self.kernels[j], *k) {
                (DimKernel::Cont(_), _) => {
                    prior_term += prior_log_pdf(x);
                    for (a, ((m, c), nm)) in acc.iter_mut().zip(mu.iter().zip(c).zip(norm)) {
                        let t = x - m;
                        *a += nm - c * t * t;
                    }
                }
                (DimKernel::Cat(keep), Kind::Cat(c)) => {
                    let uniform = -(c as f64).ln();
                    prior_term += uniform;
                    if c > 1 {
                        let same = keep.ln();
                        let other = ((1.0 - keep) / (c - 1) as f64).max(1e-300).ln();
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
                (DimKernel::Cat(_), Kind::Cont) => {}
            }
        }
        if self.prior {
            acc.push(self.log_w[self.n] + prior_term);
        }
        log_sum_exp(acc)
    }

    /// A point drawn from the mixture, inactive dimensions NaN.
    pub(crate) fn sample(&self, codec: &Codec, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let d = self.kinds.len();
        let r: f64 = rng.random();
        let comp = self.cum_w.partition_point(|c| *c < r).min(self.cum_w.len().saturating_sub(1));
        let mut u = vec![f64::NAN; d];
        for j in 0..d {
            if !codec.active(&u, j) {
                continue;
            }
            let mu = if comp < self.n { self.mus[comp * d + j] } else { f64::NAN };
            u[j] = match &self.kernels[j] {
                DimKernel::Cont(s) if mu.is_finite() => truncated_normal(mu, s[comp], rng),
                DimKernel::Cont(_) if comp >= self.n => truncated_normal(0.5, PRIOR_SIGMA, rng),
                DimKernel::Cat(keep) if mu.is_finite() => {
                    let c = if let Kind::Cat(c) = self.kinds[j] { c } else { 1 };
                    if c > 1 && rng.random::<f64>() >= *keep {
                        // Another option, uniformly.
                        let o = rng.random_range(0..c - 1) as f64;
                        if o >= mu { o + 1.0 } else { o }
                    } else {
                        mu
                    }
                }
                _ => codec.sample_dim(j, rng),
            };
        }
        u
    }
}

/// A draw from a normal truncated to `[0, 1]` (by rejection; uniform if that keeps
/// failing, which only happens for a kernel far outside the cube).
fn truncated_normal(mu: f64, s: f64, rng: &mut ChaCha8Rng) -> f64 {
    for _ in 0..64 {
        let z: f64 = rng.sample(rand_distr::StandardNormal);
        let x = mu + s * z;
        if (0.0..=1.0).contains(&x) {
            return x;
        }
    }
    rng.random::<f64>()
}

/// `ln(sum(e^t))` over `terms`, stable for large magnitudes. Four running maxima and sums
/// keep the loops free of a serial dependency chain, so they vectorize.
pub(crate) fn log_sum_exp(terms: &[f64]) -> f64 {
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
    max + sum.ln()
}

/// Kernel widths by Scott's rule from the spread of `points` in each dimension, times
/// `factor`, at least `min_width` (BOHB's rule); categorical: the probability of keeping
/// the option shrinks towards uniform with fewer points.
pub(crate) fn scott_kernels(
    kinds: &[Kind],
    points: &[&[f64]],
    factor: f64,
    min_width: f64,
) -> Vec<DimKernel> {
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
                    let s = (factor * spread * shrink).clamp(min_width, 1.0);
                    DimKernel::Cont(vec![s; points.len()])
                }
                Kind::Cat(c) => {
                    let c = *c as f64;
                    let moving = ((c - 1.0) / c * shrink * factor.min(1.0)).clamp(0.0, 0.9);
                    DimKernel::Cat(1.0 - moving)
                }
            }
        })
        .collect()
}

/// Optuna's kernels: in a continuous dimension each point's width is the larger distance
/// to its neighbours among the points (the ends of the cube count as neighbours; the
/// outermost points use their inner neighbour only), clipped to
/// `[1 / min(100, n + 2), 1]`; an option keeps its value with weight 1 against
/// `prior_weight / (n + 1)` spread over every option.
pub(crate) fn neighbour_kernels(
    kinds: &[Kind],
    points: &[&[f64]],
    prior_weight: f64,
) -> Vec<DimKernel> {
    kinds
        .iter()
        .enumerate()
        .map(|(j, k)| match k {
            Kind::Cont => {
                // (value, point) sorted by value; ties by point, as a stable sort of the
                // points would leave them.
                let mut sorted: Vec<(f64, usize)> = (0..points.len())
                    .filter(|i| points[*i][j].is_finite())
                    .map(|i| (points[i][j], i))
                    .collect();
                sorted.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                let m = sorted.len();
                let min = 1.0 / (m as f64 + 2.0).min(100.0);
                let mut sigmas = vec![1.0; points.len()];
                let at = |r: usize| sorted[r].0;
                let idx = |r: usize| sorted[r].1;
                for r in 0..m {
                    let left = if r == 0 { at(r) } else { at(r) - at(r - 1) };
                    let right = if r + 1 == m { 1.0 - at(r) } else { at(r + 1) - at(r) };
                    let s = if m >= 2 && r == 0 {
                        right
                    } else if m >= 2 && r + 1 == m {
                        left
                    } else {
                        left.max(right)
                    };
                    sigmas[idx(r)] = s.clamp(min, 1.0);
                }
                DimKernel::Cont(sigmas)
            }
            Kind::Cat(c) => {
                let m = points.iter().filter(|p| p[j].is_finite()).count();
                let a = prior_weight / (m as f64 + 1.0);
                DimKernel::Cat((1.0 + a) / (1.0 + *c as f64 * a))
            }
        })
        .collect()
}

/// Optuna's weights of `n` points in the order they finished: 1 for the 25 most recent,
/// a ramp from `1/n` up for the older ones.
pub(crate) fn recency_weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let ramp = n - 25;
    let lo = 1.0 / n as f64;
    let mut w: Vec<f64> = (0..ramp)
        .map(|i| if ramp == 1 { lo } else { lo + (1.0 - lo) * i as f64 / (ramp - 1) as f64 })
        .collect();
    w.extend(std::iter::repeat_n(1.0, 25));
    w
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::searcher::test_support::*;
    use crate::space::Space;
    use rand::SeedableRng;

    #[test]
    fn density_integrates_to_one_and_peaks_at_points() {
        let kinds = [Kind::Cont];
        let pts: Vec<&[f64]> = vec![&[0.2], &[0.25], &[0.9]];
        let p = Parzen::fit(
            &kinds,
            &pts,
            vec![DimKernel::Cont(vec![0.1; 3])],
            &[1.0, 2.0, 1.0],
            Some(1.0),
        );
        let n = 10_000;
        let integral: f64 =
            (0..n).map(|i| p.log_pdf(&[(i as f64 + 0.5) / n as f64]).exp() / n as f64).sum();
        assert!((integral - 1.0).abs() < 1e-3, "{integral}");
        assert!(p.log_pdf(&[0.22]) > p.log_pdf(&[0.6]));
        // One kernel, truncated: the density at its centre is φ(0)/(σ Z).
        let one = Parzen::fit(&kinds, &[&[0.5]], vec![DimKernel::Cont(vec![0.1])], &[1.0], None);
        let expect = 0.398_942_28 / 0.1 / (norm_cdf(5.0) - norm_cdf(-5.0));
        assert!((one.log_pdf(&[0.5]).exp() - expect).abs() < 1e-4);
    }

    #[test]
    fn categorical_kernel_and_prior_component() {
        let kinds = [Kind::Cat(4)];
        let pts: Vec<&[f64]> = vec![&[2.0]];
        let p = Parzen::fit(&kinds, &pts, vec![DimKernel::Cat(0.7)], &[1.0], Some(1.0));
        // Half kernel (0.7 on option 2, 0.1 elsewhere), half prior (0.25 each); the mixture
        // is summed with `fast_exp`, hence the tolerance.
        assert!((p.log_pdf(&[2.0]).exp() - (0.7 + 0.25) / 2.0).abs() < 1e-5);
        assert!((p.log_pdf(&[0.0]).exp() - (0.1 + 0.25) / 2.0).abs() < 1e-5);
        let total: f64 = (0..4).map(|c| p.log_pdf(&[c as f64]).exp()).sum();
        assert!((total - 1.0).abs() < 1e-5);
    }

    /// The shortcut for kernels far inside the cube gives the same bits as the full
    /// computation.
    #[test]
    fn log_norm_shortcut_is_exact() {
        let full = |mu: f64, s: f64| {
            let z = (norm_cdf((1.0 - mu) / s) - norm_cdf(-mu / s)).max(1e-300);
            -(s * (2.0 * std::f64::consts::PI).sqrt() * z).ln()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut shortcuts = 0;
        for _ in 0..200_000 {
            let mu: f64 = rng.random();
            let s = 10f64.powf(-4.0 * rng.random::<f64>());
            if mu > 9.0 * s && 1.0 - mu > 9.0 * s {
                shortcuts += 1;
            }
            assert_eq!(log_norm(mu, s).to_bits(), full(mu, s).to_bits(), "mu {mu}, s {s}");
        }
        assert!(shortcuts > 50_000, "{shortcuts}");
    }

    #[test]
    fn neighbour_widths_follow_optunas_rule() {
        let kinds = [Kind::Cont, Kind::Cat(3)];
        let pts: Vec<&[f64]> = vec![&[0.5, 0.0], &[0.1, 1.0], &[0.3, f64::NAN], &[0.95, 2.0]];
        let k = neighbour_kernels(&kinds, &pts, 1.0);
        // Sorted 0.1, 0.3, 0.5, 0.95: ends use their inner gap, inner points the larger
        // gap; the floor is 1 / (4 + 2).
        let DimKernel::Cont(s) = &k[0] else { panic!() };
        let want = [0.45, 0.2, 0.2, 0.45];
        for (a, b) in s.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{s:?}");
        }
        let tight: Vec<&[f64]> = vec![&[0.5, 0.0], &[0.5001, 0.0]];
        let DimKernel::Cont(s) = &neighbour_kernels(&kinds, &tight, 1.0)[0] else { panic!() };
        assert_eq!(s, &vec![0.25, 0.25]);
        // Three active options: a = 1/4, keep = 1.25 / 1.75.
        assert_eq!(k[1], DimKernel::Cat(1.25 / 1.75));
        assert_eq!(recency_weights(3), vec![1.0; 3]);
        let w = recency_weights(30);
        assert_eq!(w.len(), 30);
        assert!((w[0] - 1.0 / 30.0).abs() < 1e-12 && w[4] == 1.0 && w[3] < 1.0);
    }

    #[test]
    fn conditional_samples_leave_inactive_dimensions_out() {
        let codec = Codec::new(<Cond as Space>::dims());
        let kinds = codec.kinds.clone();
        let a = codec.encode_unit(&Cond { t: 0.1, model: Model::A { x: 0.5 } }.encode());
        let b = codec.encode_unit(&Cond { t: 0.9, model: Model::B { y: 0.1, k: 3 } }.encode());
        let pts: Vec<&[f64]> = vec![&a, &b];
        let p =
            Parzen::fit(&kinds, &pts, neighbour_kernels(&kinds, &pts, 1.0), &[1.0, 1.0], Some(1.0));
        let mut rng = rand::SeedableRng::seed_from_u64(1);
        for _ in 0..200 {
            let u = p.sample(&codec, &mut rng);
            for d in 0..u.len() {
                assert_eq!(u[d].is_finite(), codec.active(&u, d), "{u:?}");
            }
            assert!(p.log_pdf(&u).is_finite());
        }
    }
}
