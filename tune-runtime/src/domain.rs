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
    if x >= high { low.max(prev_float(high)) } else { x }
}

/// Log-uniform real in `[low, high)`; `0 < low < high`.
#[inline]
pub fn loguniform<R: Rng + ?Sized>(rng: &mut R, low: f64, high: f64) -> f64 {
    let x = uniform(rng, low.ln(), high.ln()).exp();
    x.clamp(low, prev_float(high).max(low))
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

fn prev_float(x: f64) -> f64 {
    x.next_down()
}

// ---------------------------------------------------------------------------------------
// Decoding: turn a searcher's number back into a value of the domain.

/// Clamps a float into `[low, high)`, or onto the quantum grid when `q` is given.
#[inline]
pub fn decode_float(x: f64, low: f64, high: f64, q: Option<f64>) -> f64 {
    match q {
        Some(q) => quantize_float(x, low, high, q),
        None => x.clamp(low, prev_float(high).max(low)),
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
    let inside = x >= low && (x < high || (closed_high && x <= high));
    if !x.is_finite() || !inside {
        let end = if closed_high { ']' } else { ')' };
        errors.push(DomainViolation {
            path: path(prefix, field),
            message: format!("{x} is outside `{domain}`: expected a value in [{low}, {high}{end}"),
        });
    } else if let Some(q) = q {
        let k = (x / q).round();
        if ((k * q) - x).abs() > 1e-9 * q.abs().max(x.abs()) {
            errors.push(DomainViolation {
                path: path(prefix, field),
                message: format!("{x} is not a multiple of {q} as `{domain}` requires"),
            });
        }
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
    if !x.is_finite() {
        errors.push(DomainViolation {
            path: path(prefix, field),
            message: format!("{x} is not a finite number as `{domain}` requires"),
        });
    } else if let Some(q) = q {
        check_float(errors, prefix, field, domain, x, f64::MIN, f64::MAX, true, Some(q));
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
            message: format!("{x} is outside `{domain}`: expected an integer in [{low}, {high}{end}"),
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
