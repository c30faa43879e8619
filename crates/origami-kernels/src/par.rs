//! Splitting an operation over the threads of the current `rayon` pool (the `rayon`
//! feature).
//!
//! Work is cut into contiguous ranges of independent units — images, channel planes, rows of
//! the weight gradient — one range per thread, each with its own slice of the output and of
//! the scratch. A unit is computed by exactly the same instructions in the same order whichever
//! range it falls in, so results are bitwise identical for any thread count: nothing is
//! summed across ranges.

use core::ops::Range;

use crate::split::Split;

/// Parts to cut `units` units into: one per thread of the current pool, at most one per unit.
pub(crate) fn parts(units: usize) -> usize {
    rayon::current_num_threads().clamp(1, units.max(1))
}

/// The contiguous ranges, `parts` at most, that [`run`] cuts `0..units` into, in order.
pub(crate) fn ranges(units: usize, parts: usize) -> impl Iterator<Item = Range<usize>> {
    let step = units.div_ceil(parts.max(1)).max(1);
    (0..units)
        .step_by(step)
        .map(move |start| start..(start + step).min(units))
}

/// Runs `f(range, out, scratch)` for the contiguous ranges of [`ranges`], in parallel;
/// `scratch` holds `per_part` elements for each range, the `i`-th range's from element
/// `i * per_part`.
pub(crate) fn run<O: Split, T: Send>(
    units: usize,
    parts: usize,
    out: O,
    scratch: &mut [T],
    per_part: usize,
    f: impl Fn(Range<usize>, O, &mut [T]) + Sync,
) {
    if ranges(units, parts).nth(1).is_none() {
        // One part: run it here rather than on a pool thread, whose caches hold none of
        // the data.
        f(0..units, out, &mut scratch[..per_part]);
        return;
    }
    let f = &f;
    rayon::scope(|scope| {
        let (mut out, mut scratch) = (out, scratch);
        for range in ranges(units, parts) {
            let (o, rest) = out.split(range.len());
            out = rest;
            let (sc, rest) = core::mem::take(&mut scratch).split_at_mut(per_part);
            scratch = rest;
            scope.spawn(move |_| f(range, o, sc));
        }
    });
}
