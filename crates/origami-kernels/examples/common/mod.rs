//! What the timing examples share.

use std::time::Instant;

/// The fastest of `reps` timed calls of `f` in seconds, after one untimed call to warm the
/// caches (NaN for no repeats).
pub fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    if reps == 0 {
        return f64::NAN;
    }
    f();
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}
