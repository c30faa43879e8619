//! Helpers shared by the integration tests: seeded data and tolerance checks.
#![allow(dead_code)]

use origami_kernels::Element;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// `len` values uniform in [-1, 1), from `seed`.
pub fn random(len: usize, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// Converts to the element type.
pub fn cast<T: Element>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::from_f64(x)).collect()
}

/// The relative tolerance of the acceptance bar: 1e-5 of the largest expected value
/// for f32, 1e-12 for f64.
pub fn tolerance<T: Element>() -> f64 {
    if T::NAME == "f32" { 1e-5 } else { 1e-12 }
}

/// Asserts `max|got - expected| <= rtol * max(max|expected|, 1e-300)`; returns the error ratio.
pub fn assert_close<T: Element>(what: &str, got: &[T], expected: &[f64], context: &str) -> f64 {
    let scale = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert_close_to_scale(what, got, expected, scale, context)
}

/// [`assert_close`] with the scale given: for sums that cancel, whose rounding error follows
/// the magnitude of the terms (`sum |term|`) rather than of the result.
pub fn assert_close_to_scale<T: Element>(
    what: &str,
    got: &[T],
    expected: &[f64],
    scale: f64,
    context: &str,
) -> f64 {
    assert_eq!(got.len(), expected.len(), "{what}: length ({context})");
    let scale = scale.max(1e-300);
    let mut worst = 0.0f64;
    let mut at = 0;
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        let err = (g.to_f64() - e).abs();
        assert!(!g.is_nan(), "{what}: NaN at {i} ({context})");
        if err > worst {
            worst = err;
            at = i;
        }
    }
    let rel = worst / scale;
    assert!(
        rel <= tolerance::<T>(),
        "{what}: error {rel:e} of max {scale:e} at {at}: got {:?}, expected {} ({context})",
        got[at],
        expected[at]
    );
    rel
}

/// Cases per randomized suite: `default`, divided by [`case_divisor`]. At least one.
pub fn cases(default: u32) -> u32 {
    (default / case_divisor()).max(1)
}

/// `ORIGAMI_TEST_CASE_DIVISOR`, 1 when unset: the aarch64 run under qemu-user, where every
/// case costs ~10x, sets 4, so the NEON paths still see a dozen random geometries per suite
/// and the native run all of them.
pub fn case_divisor() -> u32 {
    std::env::var("ORIGAMI_TEST_CASE_DIVISOR")
        .ok()
        .and_then(|d| d.parse::<u32>().ok())
        .filter(|&d| d > 0)
        .unwrap_or(1)
}
