//! The unit-cube view of a space that the model-based searchers work in, and the normal
//! distribution helpers they share.
//!
//! Every float and integer dimension maps to `[0, 1]` (on a log scale when the domain is
//! log-scaled; integers over `[low - 0.5, high + 0.5]` so each value owns an equal slice;
//! normal priors over `mean ± 3 std`). Categorical dimensions keep their option index.
//! Inactive conditional dimensions are NaN, as in [`Space::encode`](crate::Space::encode).

use rand::Rng;

use crate::space::{Dim, DimKind};

/// How one dimension is seen by the models.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    /// A number in `[0, 1]`.
    Cont,
    /// One of `k` options.
    Cat(usize),
}

#[derive(Debug, Clone, Copy)]
enum Warp {
    Linear { lo: f64, hi: f64 },
    Log { lo: f64, hi: f64 },
    Cat(usize),
}

/// Converts between a space's encoding and the unit cube.
#[derive(Debug, Clone)]
pub(crate) struct Codec {
    dims: Vec<Dim>,
    warps: Vec<Warp>,
    pub(crate) kinds: Vec<Kind>,
}

impl Codec {
    pub(crate) fn new(dims: Vec<Dim>) -> Self {
        let warps = dims
            .iter()
            .map(|d| match &d.kind {
                DimKind::Float { low, high, log: true, .. } if *low > 0.0 => {
                    Warp::Log { lo: low.ln(), hi: high.ln() }
                }
                DimKind::Float { low, high, .. } => Warp::Linear { lo: *low, hi: *high },
                DimKind::Normal { mean, std, .. } => {
                    Warp::Linear { lo: mean - 3.0 * std, hi: mean + 3.0 * std }
                }
                DimKind::Int { low, high, log: true, .. } if *low >= 1 => {
                    Warp::Log { lo: (*low as f64 - 0.5).ln(), hi: (*high as f64 + 0.5).ln() }
                }
                DimKind::Int { low, high, .. } => {
                    Warp::Linear { lo: *low as f64 - 0.5, hi: *high as f64 + 0.5 }
                }
                DimKind::Categorical { choices } => Warp::Cat(choices.len().max(1)),
            })
            .collect::<Vec<_>>();
        let kinds = warps
            .iter()
            .map(|w| if let Warp::Cat(k) = w { Kind::Cat(*k) } else { Kind::Cont })
            .collect();
        Self { dims, warps, kinds }
    }

    pub(crate) fn dims(&self) -> &[Dim] {
        &self.dims
    }

    pub(crate) fn len(&self) -> usize {
        self.dims.len()
    }

    /// Whether the space has no categorical and no conditional dimension.
    pub(crate) fn all_continuous(&self) -> Option<&Dim> {
        self.dims
            .iter()
            .zip(&self.kinds)
            .find(|(d, k)| **k != Kind::Cont || d.condition.is_some())
            .map(|(d, _)| d)
    }

    /// Whether dimension `d` is active in `x` (either space: selectors hold the same
    /// index in both). Selectors come before the dimensions they control.
    pub(crate) fn active(&self, x: &[f64], d: usize) -> bool {
        let mut d = d;
        loop {
            match self.dims[d].condition {
                None => return true,
                Some(c) => {
                    let v = x[c.dim];
                    if !v.is_finite() || v.round() as usize != c.choice {
                        return false;
                    }
                    d = c.dim;
                }
            }
        }
    }

    /// The space's encoding → unit cube.
    pub(crate) fn encode_unit(&self, x: &[f64]) -> Vec<f64> {
        x.iter()
            .zip(&self.warps)
            .enumerate()
            .map(|(d, (v, w))| {
                if !v.is_finite() || !self.active(x, d) {
                    return f64::NAN;
                }
                match *w {
                    Warp::Linear { lo, hi } => ((v - lo) / (hi - lo)).clamp(0.0, 1.0),
                    Warp::Log { lo, hi } => ((v.max(1e-300).ln() - lo) / (hi - lo)).clamp(0.0, 1.0),
                    Warp::Cat(k) => v.round().clamp(0.0, (k - 1) as f64),
                }
            })
            .map(|v| if v.is_nan() { f64::NAN } else { v })
            .collect()
    }

    /// Unit cube → the space's encoding (decode then clamps, rounds and quantizes).
    pub(crate) fn decode_unit(&self, u: &[f64]) -> Vec<f64> {
        u.iter()
            .zip(&self.warps)
            .map(|(v, w)| {
                if v.is_nan() {
                    return 0.0;
                }
                let v = *v;
                match *w {
                    Warp::Linear { lo, hi } => lo + v.clamp(0.0, 1.0) * (hi - lo),
                    Warp::Log { lo, hi } => (lo + v.clamp(0.0, 1.0) * (hi - lo)).exp(),
                    Warp::Cat(k) => v.round().clamp(0.0, (k - 1) as f64),
                }
            })
            .collect()
    }

    /// Sets inactive dimensions to NaN.
    pub(crate) fn mask(&self, u: &mut [f64]) {
        for d in 0..u.len() {
            if !self.active(u, d) {
                u[d] = f64::NAN;
            }
        }
    }

    /// A point drawn from the uniform prior of the unit cube (normal priors: a normal
    /// centred in the cube), inactive dimensions NaN.
    pub(crate) fn sample_prior<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<f64> {
        let mut u: Vec<f64> = (0..self.len()).map(|d| self.sample_dim(d, rng)).collect();
        self.mask(&mut u);
        u
    }

    /// One value of dimension `d` from its prior.
    pub(crate) fn sample_dim<R: Rng + ?Sized>(&self, d: usize, rng: &mut R) -> f64 {
        match (&self.dims[d].kind, self.kinds[d]) {
            (_, Kind::Cat(k)) => rng.random_range(0..k) as f64,
            (DimKind::Normal { .. }, _) => {
                let z: f64 = rng.sample(rand_distr::StandardNormal);
                (0.5 + z / 6.0).clamp(0.0, 1.0)
            }
            _ => rng.random::<f64>(),
        }
    }
}

/// `e^x` for `x` in `[-700, 0]` to about 1e-8 relative error, without a libm call or a
/// branch, so that loops over thousands of kernel terms vectorize (with plain SSE2).
/// Smaller `x` gives 0.
#[inline]
pub(crate) fn fast_exp(x: f64) -> f64 {
    // Adding 1.5·2^52 rounds to an integer, which then sits in the low bits of the sum.
    const SHIFT: f64 = 6_755_399_441_055_744.0;
    let t = x.max(-708.0) * std::f64::consts::LOG2_E;
    let r = t + SHIFT;
    let f = t - (r - SHIFT);
    // `t = k + f` with `k` an integer in [-1022, 0] and `f` in [-0.5, 0.5].
    let k = (r.to_bits() as i64).wrapping_sub(SHIFT.to_bits() as i64);
    // Taylor series of 2^f = e^(f ln 2), by Horner's rule from the highest power (a loop:
    // one nested expression takes rustfmt seconds to lay out).
    const TAYLOR: [f64; 8] = [
        1.0,
        std::f64::consts::LN_2,
        0.240_226_506_959_100_7,
        0.055_504_108_664_821_6,
        0.009_618_129_107_628_5,
        0.001_333_355_814_642_8,
        0.000_154_035_303_933_8,
        0.000_015_252_733_804,
    ];
    let mut p = TAYLOR[7];
    for c in TAYLOR[..7].iter().rev() {
        p = c + f * p;
    }
    let v = f64::from_bits(((k + 1023) as u64) << 52) * p;
    if x < -700.0 { 0.0 } else { v }
}

/// Standard normal density.
pub(crate) fn norm_pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Standard normal distribution function.
pub(crate) fn norm_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// Complementary error function (Numerical Recipes `erfcc`, relative error < 1.2e-7).
pub(crate) fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    // Horner's rule from the highest power (a loop: one nested expression takes rustfmt
    // many seconds to lay out).
    const C: [f64; 9] = [
        1.000_023_68,
        0.374_091_96,
        0.096_784_18,
        -0.186_288_06,
        0.278_868_07,
        -1.135_203_98,
        1.488_515_87,
        -0.822_152_23,
        0.170_872_77,
    ];
    let mut p = C[8];
    for c in C[..8].iter().rev() {
        p = c + t * p;
    }
    let r = t * (-z * z - 1.265_512_23 + t * p).exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::space::Condition;

    fn dim(kind: DimKind, condition: Option<Condition>) -> Dim {
        Dim { name: "d".into(), kind, condition }
    }

    #[test]
    fn normal_cdf_matches_known_values() {
        assert!((norm_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((norm_cdf(1.0) - 0.841_344_746).abs() < 1e-6);
        assert!((norm_cdf(-1.959_963_985) - 0.025).abs() < 1e-6);
        assert!((norm_pdf(0.0) - 0.398_942_280).abs() < 1e-8);
        for x in [0.0, -1e-3, -0.5, -1.0, -7.3, -39.9, -300.0, -699.9] {
            assert!((fast_exp(x) / x.exp() - 1.0).abs() < 1e-8, "{x}");
        }
        for i in 0..=70_000 {
            let x = -0.01 * i as f64;
            assert!((fast_exp(x) / x.exp() - 1.0).abs() < 1e-8, "{x}");
        }
        assert_eq!(fast_exp(-700.1), 0.0);
        assert_eq!(fast_exp(-1e300), 0.0);
    }

    #[test]
    fn unit_round_trip_and_conditions() {
        let codec = Codec::new(vec![
            dim(DimKind::Float { low: 1e-4, high: 1.0, log: true, q: None }, None),
            dim(DimKind::Int { low: 0, high: 9, log: false, q: None }, None),
            dim(DimKind::Categorical { choices: vec!["a".into(), "b".into()] }, None),
            dim(
                DimKind::Float { low: -1.0, high: 1.0, log: false, q: None },
                Some(Condition { dim: 2, choice: 1 }),
            ),
        ]);
        let x = [1e-2, 9.0, 0.0, f64::NAN];
        let u = codec.encode_unit(&x);
        assert!((u[0] - 0.5).abs() < 1e-12);
        assert!((u[1] - 0.95).abs() < 1e-12);
        assert_eq!(u[2], 0.0);
        assert!(u[3].is_nan());
        let back = codec.decode_unit(&u);
        assert!((back[0] - 1e-2).abs() < 1e-12);
        assert!((back[1] - 9.0).abs() < 1e-9);
        assert!(!codec.active(&[0.1, 1.0, 0.0, 0.3], 3));
        assert!(codec.active(&[0.1, 1.0, 1.0, 0.3], 3));
    }
}
