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

/// Runs `f(range, out, scratch)` for contiguous ranges covering `0..units`, in parallel,
/// `parts` ranges at most; `scratch` holds `per_part` elements for each range.
pub(crate) fn run<O: Split, T: Send>(
    units: usize,
    parts: usize,
    out: O,
    scratch: &mut [T],
    per_part: usize,
    f: impl Fn(Range<usize>, O, &mut [T]) + Sync,
) {
    let step = units.div_ceil(parts.max(1)).max(1);
    if step >= units {
        // One part: run it here rather than on a pool thread, whose caches hold none of
        // the data.
        f(0..units, out, &mut scratch[..per_part]);
        return;
    }
    let f = &f;
    rayon::scope(|scope| {
        let (mut out, mut scratch) = (out, scratch);
        let mut start = 0;
        while start < units {
            let end = (start + step).min(units);
            let (o, rest) = out.split(end - start);
            out = rest;
            let (sc, rest) = core::mem::take(&mut scratch).split_at_mut(per_part);
            scratch = rest;
            scope.spawn(move |_| f(start..end, o, sc));
            start = end;
        }
    });
}
