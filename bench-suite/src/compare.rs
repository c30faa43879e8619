//! The comparison rule of the case format: `max|got - expected| <= atol + rtol * max|expected|`,
//! NaN exactly where expected, indices exactly equal.

/// The outcome of comparing one dataset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    /// Largest absolute difference over the non-NaN elements.
    pub max_abs_err: f64,
    /// The bound it must stay within: `atol + rtol * max|expected|`.
    pub bound: f64,
    /// Elements that are NaN in one and not in the other.
    pub nan_mismatches: usize,
    /// Whether the dataset passes.
    pub passed: bool,
}

/// Compares `got` with `expected` under the format's rule.
pub fn compare(got: &[f64], expected: &[f64], rtol: f64, atol: f64) -> Comparison {
    if got.len() != expected.len() {
        return Comparison {
            max_abs_err: f64::INFINITY,
            bound: 0.0,
            nan_mismatches: 0,
            passed: false,
        };
    }
    let scale = expected
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    let bound = atol + rtol * scale;
    let mut max_abs_err = 0.0f64;
    let mut nan_mismatches = 0;
    for (&g, &e) in got.iter().zip(expected) {
        match (g.is_nan(), e.is_nan()) {
            (true, true) => {}
            (false, false) => {
                let err = if g == e { 0.0 } else { (g - e).abs() };
                max_abs_err = max_abs_err.max(if err.is_nan() { f64::INFINITY } else { err });
            }
            _ => nan_mismatches += 1,
        }
    }
    Comparison {
        max_abs_err,
        bound,
        nan_mismatches,
        passed: nan_mismatches == 0 && max_abs_err <= bound,
    }
}

/// Compares indices exactly; the error figure is the number of differing elements.
pub fn compare_indices(got: &[i64], expected: &[i64]) -> Comparison {
    let wrong = if got.len() == expected.len() {
        got.iter().zip(expected).filter(|(a, b)| a != b).count()
    } else {
        got.len().max(expected.len())
    };
    Comparison {
        max_abs_err: wrong as f64,
        bound: 0.0,
        nan_mismatches: 0,
        passed: wrong == 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_format_rule() {
        let c = compare(&[1.0, 2.0005], &[1.0, 2.0], 1e-4, 0.0);
        assert!(!c.passed);
        assert!(compare(&[1.0, 2.0001], &[1.0, 2.0], 1e-4, 0.0).passed);
        assert!(compare(&[f64::NAN, 1.0], &[f64::NAN, 1.0], 0.0, 0.0).passed);
        assert!(!compare(&[f64::NAN, 1.0], &[0.0, 1.0], 0.0, 0.0).passed);
        assert!(!compare(&[0.0, 1.0], &[f64::NAN, 1.0], 0.0, 0.0).passed);
        assert!(compare(&[f64::INFINITY], &[f64::INFINITY], 0.0, 0.0).passed);
        assert!(!compare(&[1.0], &[1.0, 2.0], 1.0, 1.0).passed);
        assert!(compare_indices(&[1, 2], &[1, 2]).passed);
        assert!(!compare_indices(&[1, 3], &[1, 2]).passed);
    }
}
