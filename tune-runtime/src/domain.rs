//! Samplers, domain checks and decoders for every domain of `search_space!`.
//!
//! Generated code calls these functions; they hold the semantics documented in
//! `docs/search-space.md`:
//!
//! | domain | values |
//! |---|---|
//! | `uniform(low, high)` | real, `low <= x < high` |
//! | `quniform(low, high, q)` | multiples of `q` in `[low, high]` (uniform, then rounded) |
//! | `loguniform(low, high)` | real, `low <= x < high`, uniform in `ln x` |
//! | `qloguniform(low, high, q)` | multiples of `q` in `[low, high]`, log-uniform then rounded |
//! | `randn(mean, std)` | normal |
//! | `qrandn(mean, std, q)` | normal, rounded to a multiple of `q` |
//! | `randint(low, high)` | integer, `low <= x < high` |
//! | `qrandint(low, high, q)` | multiples of `q` in `[low, high]` (both ends included) |
//! | `lograndint(low, high)` | integer, `low <= x < high`, uniform in `ln x` |
//! | `choice([..])` / `grid([..])` | one of the listed values |

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::error::DomainViolation;

/// Uniform real in `[low, high)`.
#[inline]
pub fn uniform<R: Rng + ?Sized>(rng: &mut R, low: f64, high: f64) -> f64 {
    let x = low + (high - low) * rng.random::<f64>();
    // Rounding in `low + span * u` can land on `high` itself; keep the end open.
    if x >= high { low.max(high.next_down()) } else { x }
}

/// Log-uniform real in `[low, high)`; `0 < low < high`.
#[inline]
pub fn loguniform<R: Rng + ?Sized>(rng: &mut R, low: f64, high: f64) -> f64 {
    let x = uniform(rng, low.ln(), high.ln()).exp();
    x.clamp(low, high.next_down().max(low))
}

/// Uniform real in `[low, high]` rounded to a multiple of `q`.
#[inline]
pub fn quniform<R: Rng + ?Sized>(rng: &mut R, low: f64, high: f64, q: f64) -> f64 {
    quantize_float(uniform(rng, low, high), low, high, q)
}

/// Log-uniform real in `[low, high]` rounded to a multiple of `q`.
#[inline]
pub fn qloguniform<R: Rng + ?Sized>(rng: &mut R, low: f64, high: f64, q: f64) -> f64 {
    quantize_float(loguniform(rng, low, high), low, high, q)
}

/// Normal with the given mean and standard deviation.
#[inline]
pub fn randn<R: Rng + ?Sized>(rng: &mut R, mean: f64, std: f64) -> f64 {
    let z: f64 = StandardNormal.sample(rng);
    mean + std * z
}

/// Normal rounded to a multiple of `q`.
#[inline]
pub fn qrandn<R: Rng + ?Sized>(rng: &mut R, mean: f64, std: f64, q: f64) -> f64 {
    (randn(rng, mean, std) / q).round() * q
}

/// Uniform integer in `[low, high)`.
#[inline]
pub fn randint<R: Rng + ?Sized>(rng: &mut R, low: i64, high: i64) -> i64 {
    rng.random_range(low..high)
}

/// Uniform multiple of `q` in `[low, high]` (both ends included).
#[inline]
pub fn qrandint<R: Rng + ?Sized>(rng: &mut R, low: i64, high: i64, q: i64) -> i64 {
    let first = div_ceil(low, q);
    let last = high.div_euclid(q);
    rng.random_range(first..=last) * q
}

/// Log-uniform integer in `[low, high)`; `0 < low < high`.
#[inline]
pub fn lograndint<R: Rng + ?Sized>(rng: &mut R, low: i64, high: i64) -> i64 {
    // Each integer k gets the log-measure of [k, k+1), so floor of a log-uniform draw on
    // [low, high) is exactly the intended distribution.
    let x = loguniform(rng, low as f64, high as f64).floor() as i64;
    x.clamp(low, high - 1)
}

/// Index of a uniformly chosen option out of `n`.
#[inline]
pub fn choice<R: Rng + ?Sized>(rng: &mut R, n: usize) -> usize {
    rng.random_range(0..n)
}

/// Rounds `x` to the nearest multiple of `q` that lies in `[low, high]`.
#[inline]
pub fn quantize_float(x: f64, low: f64, high: f64, q: f64) -> f64 {
    let first = (low / q).ceil();
    let last = (high / q).floor();
    (x / q).round().clamp(first, last) * q
}

/// Rounds `x` to the nearest multiple of `q` that lies in `[low, high]`.
#[inline]
pub fn quantize_int(x: i64, low: i64, high: i64, q: i64) -> i64 {
    let first = div_ceil(low, q);
    let last = high.div_euclid(q);
    let k = (x as f64 / q as f64).round() as i64;
    k.clamp(first, last) * q
}

fn div_ceil(a: i64, b: i64) -> i64 {
    -((-a).div_euclid(b))
}

// ---------------------------------------------------------------------------------------
// Decoding: turn a searcher's number back into a value of the domain.

/// Clamps a float into `[low, high)`, or onto the quantum grid when `q` is given.
#[inline]
pub fn decode_float(x: f64, low: f64, high: f64, q: Option<f64>) -> f64 {
    match q {
        Some(q) => quantize_float(x, low, high, q),
        None => x.clamp(low, high.next_down().max(low)),
    }
}

/// Rounds to the nearest integer of `[low, high)` (`[low, high]` when `q` is given),
/// onto the quantum grid when `q` is given.
#[inline]
pub fn decode_int(x: f64, low: i64, high: i64, q: Option<i64>) -> i64 {
    let r = x.round().clamp(i64::MIN as f64, i64::MAX as f64) as i64;
    match q {
        Some(q) => quantize_int(r, low, high, q),
        None => r.clamp(low, high - 1),
    }
}

/// A value of a normal domain: unbounded, rounded to a multiple of `q` when given.
#[inline]
pub fn decode_normal(x: f64, q: Option<f64>) -> f64 {
    match q {
        Some(q) => (x / q).round() * q,
        None => x,
    }
}

/// Rounds to the nearest option index in `0..n`.
#[inline]
pub fn decode_index(x: f64, n: usize) -> usize {
    let r = x.round();
    if r <= 0.0 { 0 } else { (r as usize).min(n - 1) }
}

// ---------------------------------------------------------------------------------------
// Domain checks for configs that come from JSON.

fn path(prefix: &str, field: &str) -> String {
    format!("{prefix}{field}")
}

/// Relative tolerance of the quantum check for `f64` fields.
const Q_TOL_F64: f64 = 1e-9;
/// Relative tolerance of the quantum check for `f32` fields (rounding to `f32` moves a
/// multiple of `q` by up to about 6e-8 of its magnitude).
const Q_TOL_F32: f64 = 1e-6;

/// Checks a float against a bounded domain. `closed_high` says whether `high` is allowed.
#[allow(clippy::too_many_arguments)]
pub fn check_float(
    errors: &mut Vec<DomainViolation>,
    prefix: &str,
    field: &str,
    domain: &str,
    x: f64,
    low: f64,
    high: f64,
    closed_high: bool,
    q: Option<f64>,
) {
    check_float_tol(errors, prefix, field, domain, x, low, high, closed_high, q, Q_TOL_F64);
}

/// [`check_float`] for an `f32` field: the bounds are compared in `f32` precision, as the
/// sampler narrows them.
#[allow(clippy::too_many_arguments)]
pub fn check_float32(
    errors: &mut Vec<DomainViolation>,
    prefix: &str,
    field: &str,
    domain: &str,
    x: f32,
    low: f64,
    high: f64,
    closed_high: bool,
    q: Option<f64>,
) {
    let (low, high) = (f64::from(low as f32), f64::from(high as f32));
    check_float_tol(
        errors,
        prefix,
        field,
        domain,
        f64::from(x),
        low,
        high,
        closed_high,
        q,
        Q_TOL_F32,
    );
}

#[allow(clippy::too_many_arguments)]
fn check_float_tol(
    errors: &mut Vec<DomainViolation>,
    prefix: &str,
    field: &str,
    domain: &str,
    x: f64,
    low: f64,
    high: f64,
    closed_high: bool,
    q: Option<f64>,
    tol: f64,
) {
    let inside = x >= low && (x < high || (closed_high && x <= high));
    if !x.is_finite() || !inside {
        let end = if closed_high { ']' } else { ')' };
        errors.push(DomainViolation {
            path: path(prefix, field),
            message: format!("{x} is outside `{domain}`: expected a value in [{low}, {high}{end}"),
        });
    } else if let Some(q) = q {
        check_multiple(errors, prefix, field, domain, x, q, tol);
    }
}

fn check_multiple(
    errors: &mut Vec<DomainViolation>,
    prefix: &str,
    field: &str,
    domain: &str,
    x: f64,
    q: f64,
    tol: f64,
) {
    let k = (x / q).round();
    if ((k * q) - x).abs() > tol * q.abs().max(x.abs()) {
        errors.push(DomainViolation {
            path: path(prefix, field),
            message: format!("{x} is not a multiple of {q} as `{domain}` requires"),
        });
    }
}

/// Checks that a float from a normal domain is finite (and on its quantum grid).
pub fn check_normal(
    errors: &mut Vec<DomainViolation>,
    prefix: &str,
    field: &str,
    domain: &str,
    x: f64,
    q: Option<f64>,
) {
    check_normal_tol(errors, prefix, field, domain, x, q, Q_TOL_F64);
}

/// [`check_normal`] for an `f32` field.
pub fn check_normal32(
    errors: &mut Vec<DomainViolation>,
    prefix: &str,
    field: &str,
    domain: &str,
    x: f32,
    q: Option<f64>,
) {
    check_normal_tol(errors, prefix, field, domain, f64::from(x), q, Q_TOL_F32);
}

fn check_normal_tol(
    errors: &mut Vec<DomainViolation>,
    prefix: &str,
    field: &str,
    domain: &str,
    x: f64,
    q: Option<f64>,
    tol: f64,
) {
    if !x.is_finite() {
        errors.push(DomainViolation {
            path: path(prefix, field),
            message: format!("{x} is not a finite number as `{domain}` requires"),
        });
    } else if let Some(q) = q {
        check_multiple(errors, prefix, field, domain, x, q, tol);
    }
}

/// Checks an integer against `[low, high)` (`[low, high]` when `closed_high`) and its quantum.
#[allow(clippy::too_many_arguments)]
pub fn check_int(
    errors: &mut Vec<DomainViolation>,
    prefix: &str,
    field: &str,
    domain: &str,
    x: i128,
    low: i64,
    high: i64,
    closed_high: bool,
    q: Option<i64>,
) {
    let (low, high) = (i128::from(low), i128::from(high));
    let inside = x >= low && (x < high || (closed_high && x <= high));
    if !inside {
        let end = if closed_high { ']' } else { ')' };
        errors.push(DomainViolation {
            path: path(prefix, field),
            message: format!(
                "{x} is outside `{domain}`: expected an integer in [{low}, {high}{end}"
            ),
        });
    } else if let Some(q) = q {
        if x % i128::from(q) != 0 {
            errors.push(DomainViolation {
                path: path(prefix, field),
                message: format!("{x} is not a multiple of {q} as `{domain}` requires"),
            });
        }
    }
}

/// Reports a value that is none of the options of a `choice` or `grid`.
pub fn not_a_choice(
    errors: &mut Vec<DomainViolation>,
    prefix: &str,
    field: &str,
    domain: &str,
    value: &dyn std::fmt::Debug,
) {
    errors.push(DomainViolation {
        path: path(prefix, field),
        message: format!("{value:?} is not one of the options of `{domain}`"),
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! Statistical checks of every sampler. The seed is fixed, so each test is deterministic;
    //! the tolerances are wide enough (several standard errors) that they would hold for
    //! almost every seed, and do not depend on this one.
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const N: usize = 100_000;

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(0x5eed)
    }

    fn draw(mut f: impl FnMut(&mut ChaCha8Rng) -> f64) -> Vec<f64> {
        let mut r = rng();
        (0..N).map(|_| f(&mut r)).collect()
    }

    fn mean(xs: &[f64]) -> f64 {
        xs.iter().sum::<f64>() / xs.len() as f64
    }

    fn std_dev(xs: &[f64]) -> f64 {
        let m = mean(xs);
        (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
    }

    /// Kolmogorov–Smirnov distance between the sample and a CDF.
    fn ks(xs: &[f64], cdf: impl Fn(f64) -> f64) -> f64 {
        let mut v = xs.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len() as f64;
        v.iter()
            .enumerate()
            .map(|(i, &x)| {
                let f = cdf(x);
                (f - i as f64 / n).abs().max(((i + 1) as f64 / n - f).abs())
            })
            .fold(0.0, f64::max)
    }

    /// The KS distance below which a sample of `N` matches its CDF: 2.5/sqrt(N) is beyond
    /// the 99.99% critical value (1.95/sqrt(N)).
    fn ks_bound() -> f64 {
        2.5 / (N as f64).sqrt()
    }

    /// Chi-square statistic of observed counts against expected probabilities.
    fn chi_square(counts: &[usize], probs: &[f64]) -> f64 {
        let total: usize = counts.iter().sum();
        counts
            .iter()
            .zip(probs)
            .map(|(&o, &p)| {
                let e = p * total as f64;
                (o as f64 - e).powi(2) / e
            })
            .sum()
    }

    /// A bound the chi-square statistic of a correct sampler stays under: its mean plus six
    /// standard deviations.
    fn chi_bound(categories: usize) -> f64 {
        let df = (categories - 1) as f64;
        df + 6.0 * (2.0 * df).sqrt()
    }

    fn counts(xs: impl IntoIterator<Item = i64>, low: i64, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for x in xs {
            c[usize::try_from(x - low).expect("value below low")] += 1;
        }
        c
    }

    #[test]
    fn uniform_is_uniform_on_half_open_range() {
        let xs = draw(|r| uniform(r, -2.0, 3.0));
        assert!(xs.iter().all(|&x| (-2.0..3.0).contains(&x)));
        assert!((mean(&xs) - 0.5).abs() < 0.02);
        assert!(ks(&xs, |x| (x + 2.0) / 5.0) < ks_bound());
    }

    #[test]
    fn uniform_never_returns_high() {
        // A range so narrow that rounding in `low + span * u` would hit `high` often.
        let (low, high) = (1.0, f64::from_bits(1.0f64.to_bits() + 2));
        let mut r = rng();
        assert!((0..10_000).all(|_| {
            let x = uniform(&mut r, low, high);
            low <= x && x < high
        }));
    }

    #[test]
    fn loguniform_is_uniform_in_log_space() {
        let xs = draw(|r| loguniform(r, 1e-4, 1e-1));
        assert!(xs.iter().all(|&x| (1e-4..1e-1).contains(&x)));
        let logs: Vec<f64> = xs.iter().map(|x| x.ln()).collect();
        let (a, b) = (1e-4f64.ln(), 1e-1f64.ln());
        assert!(ks(&logs, |y| (y - a) / (b - a)) < ks_bound());
        // The median is the geometric mean of the bounds.
        let below = xs.iter().filter(|&&x| x < (1e-4f64 * 1e-1).sqrt()).count();
        assert!((below as f64 / N as f64 - 0.5).abs() < 0.01);
    }

    #[test]
    fn quniform_gives_multiples_and_hits_both_ends() {
        let xs = draw(|r| quniform(r, 0.0, 1.0, 0.25));
        let ks: Vec<i64> = xs.iter().map(|x| (x / 0.25).round() as i64).collect();
        assert!(xs.iter().zip(&ks).all(|(x, k)| *x == *k as f64 * 0.25));
        let c = counts(ks, 0, 5);
        // Round-to-nearest gives the ends half the weight of the inner points (as Ray does).
        assert!(chi_square(&c, &[0.125, 0.25, 0.25, 0.25, 0.125]) < chi_bound(5), "{c:?}");
    }

    #[test]
    fn quniform_stays_inside_when_bounds_are_not_multiples() {
        let xs = draw(|r| quniform(r, 0.1, 0.9, 0.25));
        assert!(xs.iter().all(|&x| [0.25, 0.5, 0.75].contains(&x)));
    }

    #[test]
    fn qloguniform_gives_multiples_in_range() {
        let xs = draw(|r| qloguniform(r, 1.0, 1000.0, 5.0));
        assert!(xs.iter().all(|&x| x % 5.0 == 0.0 && (5.0..=1000.0).contains(&x)));
        assert!(xs.contains(&5.0) && xs.contains(&1000.0));
        // Log-uniform: as many values below sqrt(1000) ~ 31.6 as above.
        let below = xs.iter().filter(|&&x| x < 31.6).count() as f64 / N as f64;
        assert!((below - 0.5).abs() < 0.02, "{below}");
    }

    #[test]
    fn randn_matches_mean_std_and_quantiles() {
        let xs = draw(|r| randn(r, 3.0, 2.0));
        assert!((mean(&xs) - 3.0).abs() < 0.03);
        assert!((std_dev(&xs) - 2.0).abs() < 0.03);
        let within =
            |k: f64| xs.iter().filter(|&&x| (x - 3.0).abs() < k * 2.0).count() as f64 / N as f64;
        assert!((within(1.0) - 0.6827).abs() < 0.008);
        assert!((within(2.0) - 0.9545).abs() < 0.005);
        assert!((within(3.0) - 0.9973).abs() < 0.002);
    }

    #[test]
    fn qrandn_gives_multiples_around_the_mean() {
        let xs = draw(|r| qrandn(r, 1.0, 3.0, 0.5));
        assert!(xs.iter().all(|&x| (x / 0.5).round() * 0.5 == x));
        assert!((mean(&xs) - 1.0).abs() < 0.05);
        assert!((std_dev(&xs) - 3.0).abs() < 0.05);
    }

    #[test]
    fn randint_excludes_high_and_is_uniform() {
        let mut r = rng();
        let xs: Vec<i64> = (0..N).map(|_| randint(&mut r, -3, 7)).collect();
        assert!(xs.iter().all(|x| (-3..7).contains(x)));
        let c = counts(xs, -3, 10);
        assert!(c.iter().all(|&n| n > 0));
        assert!(chi_square(&c, &[0.1; 10]) < chi_bound(10), "{c:?}");
    }

    #[test]
    fn qrandint_includes_both_ends_and_is_uniform() {
        let mut r = rng();
        let xs: Vec<i64> = (0..N).map(|_| qrandint(&mut r, 0, 100, 25)).collect();
        assert!(xs.iter().all(|x| x % 25 == 0 && (0..=100).contains(x)));
        let c = counts(xs.iter().map(|x| x / 25), 0, 5);
        assert!(c[0] > 0 && c[4] > 0);
        assert!(chi_square(&c, &[0.2; 5]) < chi_bound(5), "{c:?}");
        // Bounds that are not multiples: only the multiples inside.
        let ys: Vec<i64> = (0..1000).map(|_| qrandint(&mut r, 3, 22, 5)).collect();
        assert!(ys.iter().all(|y| [5, 10, 15, 20].contains(y)));
    }

    #[test]
    fn lograndint_is_uniform_in_log_space() {
        let (low, high) = (1i64, 64i64);
        let mut r = rng();
        let xs: Vec<i64> = (0..N).map(|_| lograndint(&mut r, low, high)).collect();
        assert!(xs.iter().all(|x| (low..high).contains(x)));
        // P(k) = ln((k+1)/k) / ln(high/low).
        let total = (high as f64 / low as f64).ln();
        let probs: Vec<f64> =
            (low..high).map(|k| ((k + 1) as f64 / k as f64).ln() / total).collect();
        let c = counts(xs, low, (high - low) as usize);
        assert!(chi_square(&c, &probs) < chi_bound(probs.len()), "{c:?}");
    }

    #[test]
    fn choice_is_uniform_over_options() {
        let mut r = rng();
        let c = counts((0..N).map(|_| choice(&mut r, 7) as i64), 0, 7);
        assert!(chi_square(&c, &[1.0 / 7.0; 7]) < chi_bound(7), "{c:?}");
        assert!((0..1000).all(|_| choice(&mut r, 1) == 0));
    }

    #[test]
    fn decoders_clamp_and_round() {
        assert_eq!(decode_float(5.0, 0.0, 1.0, None), 1.0f64.next_down());
        assert_eq!(decode_float(-5.0, 0.0, 1.0, None), 0.0);
        assert_eq!(decode_float(0.6, 0.0, 1.0, Some(0.25)), 0.5);
        assert_eq!(decode_float(7.0, 0.0, 1.0, Some(0.25)), 1.0);
        assert_eq!(decode_int(4.6, -5, 5, None), 4);
        assert_eq!(decode_int(-9.0, -5, 5, None), -5);
        assert_eq!(decode_int(47.0, 0, 100, Some(10)), 50);
        assert_eq!(decode_int(f64::MAX, 0, 100, Some(10)), 100);
        assert_eq!(decode_index(1.4, 3), 1);
        assert_eq!(decode_index(-1.0, 3), 0);
        assert_eq!(decode_index(9.0, 3), 2);
        assert_eq!(decode_normal(0.7, Some(0.5)), 0.5);
        assert_eq!(decode_normal(0.7, None), 0.7);
    }

    #[test]
    fn checks_report_the_allowed_range() {
        let mut e = Vec::new();
        check_float(&mut e, "opt.", "lr", "uniform(0.0, 1.0)", 1.0, 0.0, 1.0, false, None);
        check_float(&mut e, "", "q", "quniform(0.0, 1.0, 0.25)", 1.0, 0.0, 1.0, true, Some(0.25));
        check_float(&mut e, "", "q", "quniform(0.0, 1.0, 0.25)", 0.3, 0.0, 1.0, true, Some(0.25));
        check_float32(
            &mut e,
            "",
            "f",
            "uniform(0.0, 0.1)",
            0.1f64.next_down() as f32,
            0.0,
            0.1,
            false,
            None,
        );
        check_int(&mut e, "", "n", "randint(0, 5)", 5, 0, 5, false, None);
        check_int(&mut e, "", "n", "qrandint(0, 10, 5)", 10, 0, 10, true, Some(5));
        check_normal(&mut e, "", "x", "randn(0.0, 1.0)", f64::NAN, None);
        let paths: Vec<&str> = e.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(paths, ["opt.lr", "q", "f", "n", "x"]);
        assert!(e[0].message.contains("[0, 1)"), "{}", e[0].message);
        assert!(e[1].message.contains("multiple of 0.25"), "{}", e[1].message);
    }
}
