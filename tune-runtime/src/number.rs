//! Numbers as the files users read them: JSON and CSV that pandas, Python's `json` and
//! TensorBoard tools parse.

/// Appends `v` in the shortest form that reads back to the same `f64`, with an exponent
/// for very large or small magnitudes (`1e300`, not a 301-digit integer). Non-finite
/// values, which JSON cannot hold, are written as `NaN`, `Infinity` and `-Infinity` (what
/// Python's `json` module and pandas read).
pub(crate) fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        let mut buf = ryu::Buffer::new();
        out.extend_from_slice(buf.format_finite(v).as_bytes());
    } else if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v > 0.0 {
        out.extend_from_slice(b"Infinity");
    } else {
        out.extend_from_slice(b"-Infinity");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: f64) -> String {
        let mut out = Vec::new();
        write_f64(&mut out, v);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn shortest_round_trip_with_exponents() {
        assert_eq!(s(1e300), "1e300");
        assert_eq!(s(-2.5e-300), "-2.5e-300");
        assert_eq!(s(0.1), "0.1");
        assert_eq!(s(3.0), "3.0");
        assert_eq!(s(f64::NAN), "NaN");
        assert_eq!(s(f64::NEG_INFINITY), "-Infinity");
        for v in [1e300, 123456.789, 1.0 / 3.0, 2f64.powi(70)] {
            assert_eq!(s(v).parse::<f64>().ok(), Some(v));
        }
    }
}
