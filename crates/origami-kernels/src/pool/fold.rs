//! `Fold` pooling: the lecture's "tensor origami". When the windows tile the tensor (stride
//! equal to the window, no padding, no dilation, extents divisible by the window), a
//! contiguous `[H, W]` plane *is* a `[H / kh, kh, W / kw, kw]` tensor without moving a byte,
//! and pooling is a reduction over the two new `k` axes:
//!
//! ```text
//!   (H, W) --view--> (H/kh, kh, W/kw, kw) --reduce kh, kw--> (H/kh, W/kw)
//! ```
//!
//! Along W the view is `chunks_exact(kw)` of each input row (one chunk per output); the `kh`
//! (and `kd`) rows of a window are reduced into the output row one after another. Each input
//! element is read once. Any other geometry is refused with [`Error::Unsupported`]: fold
//! never falls back silently.
//!
//! The backward pass of average and sum is the same view, in reverse: every input element
//! belongs to exactly one window and receives that window's (divided) gradient.
//!
//! ```
//! use origami_kernels::{PoolAlgorithm, PoolKind, PoolSpec};
//!
//! // The lecture's exercise: sum neighbouring rows of a (10, 10) tensor into (5, 10).
//! let pool = PoolSpec::new(1, 1, [10, 10], [2, 1]).build()?;
//! let x: Vec<f32> = (0..100).map(|i| i as f32).collect();
//! let mut y = vec![0.0f32; pool.output_len()];
//! pool.forward(PoolKind::Sum, PoolAlgorithm::Fold, &x, &mut y, None, &mut [])?;
//! assert_eq!(pool.output_size(), [5, 10]);
//! assert_eq!(y[0], 0.0 + 10.0);   // rows 0 and 1, column 0
//! assert_eq!(y[13], 23.0 + 33.0); // rows 2 and 3, column 3
//! # Ok::<(), origami_kernels::Error>(())
//! ```

use super::PoolKind;
use super::geometry::PoolShape;
use crate::{Element, Error};

/// Whether the windows tile the tensor; the error says which rule a geometry breaks.
pub(crate) fn check(s: &PoolShape) -> Result<(), Error> {
    let refuse = |reason| {
        Err(Error::Unsupported {
            algorithm: "fold",
            reason,
        })
    };
    for a in &s.axes {
        if a.stride != a.kernel {
            return refuse("fold needs stride equal to the kernel size (windows that tile)");
        }
        if a.pad_lo != 0 {
            return refuse("fold needs zero padding");
        }
        if a.dilation != 1 && a.kernel > 1 {
            return refuse("fold needs dilation 1");
        }
        if a.input % a.kernel != 0 {
            return refuse("fold needs input extents divisible by the kernel size");
        }
    }
    Ok(())
}

/// The average's divisor: every window is whole, so it is the window's volume.
fn divisor(s: &PoolShape) -> usize {
    if s.divisor_override != 0 {
        s.divisor_override
    } else {
        s.axes.iter().map(|a| a.kernel).product()
    }
}

pub(crate) fn forward<T: Element>(
    s: &PoolShape,
    kind: PoolKind,
    x: &[T],
    y: &mut [T],
    mut indices: Option<&mut [usize]>,
) {
    let [az, ay, ax] = s.axes;
    let (kw, iw) = (ax.kernel, ax.input);
    for (row, y_row) in y.chunks_exact_mut(ax.output).enumerate() {
        let (p, od, oh) = s.row_coords(row);
        let x_p = &x[p * s.in_plane..][..s.in_plane];
        let mut idx_row = indices
            .as_deref_mut()
            .map(|ix| &mut ix[row * ax.output..][..ax.output]);
        let mut first = true;
        for kd in 0..az.kernel {
            for kh in 0..ay.kernel {
                let start = ((od * az.kernel + kd) * ay.input + oh * ay.kernel + kh) * iw;
                let windows = x_p[start..start + iw].chunks_exact(kw);
                match kind {
                    PoolKind::Sum | PoolKind::Avg => {
                        let row = &x_p[start..start + iw];
                        match kw {
                            2 => sum_windows::<T, 2>(y_row, row, first),
                            3 => sum_windows::<T, 3>(y_row, row, first),
                            _ => {
                                for (acc, w) in y_row.iter_mut().zip(windows) {
                                    let sum = w.iter().fold(T::ZERO, |a, &v| a + v);
                                    *acc = if first { sum } else { *acc + sum };
                                }
                            }
                        }
                    }
                    PoolKind::Max if kw == 2 || kw == 3 => {
                        let row = &x_p[start..start + iw];
                        let ix = idx_row.as_deref_mut();
                        if kw == 2 {
                            max_windows::<T, 2>(y_row, ix, row, start, first);
                        } else {
                            max_windows::<T, 3>(y_row, ix, row, start, first);
                        }
                    }
                    PoolKind::Max => {
                        for (ow, (acc, w)) in y_row.iter_mut().zip(windows).enumerate() {
                            // The first maximum of the chunk (the last NaN), then the same
                            // rule against the rows before.
                            let (mut v, mut j) = (w[0], 0);
                            for (jj, &c) in w.iter().enumerate().skip(1) {
                                if c > v || c.is_nan() {
                                    (v, j) = (c, jj);
                                }
                            }
                            if first || v > *acc || v.is_nan() {
                                *acc = v;
                                if let Some(ix) = idx_row.as_deref_mut() {
                                    ix[ow] = start + ow * kw + j;
                                }
                            }
                        }
                    }
                }
                first = false;
            }
        }
        if kind == PoolKind::Avg {
            let div = T::from_usize(divisor(s));
            for v in y_row.iter_mut() {
                *v = *v / div;
            }
        }
    }
}

/// Backward of average or sum: every input receives its one window's gradient.
pub(crate) fn backward<T: Element>(s: &PoolShape, kind: PoolKind, dy: &[T], dx: &mut [T]) {
    let [az, ay, ax] = s.axes;
    let scale = if kind == PoolKind::Avg {
        T::ONE / T::from_usize(divisor(s))
    } else {
        T::ONE
    };
    for (row, dy_row) in dy.chunks_exact(ax.output).enumerate() {
        let (p, od, oh) = s.row_coords(row);
        let dx_p = &mut dx[p * s.in_plane..][..s.in_plane];
        for kd in 0..az.kernel {
            for kh in 0..ay.kernel {
                let start = ((od * az.kernel + kd) * ay.input + oh * ay.kernel + kh) * ax.input;
                let row = &mut dx_p[start..start + ax.input];
                match ax.kernel {
                    2 => spread_windows::<T, 2>(row, dy_row, scale),
                    3 => spread_windows::<T, 3>(row, dy_row, scale),
                    _ => {
                        for (w, &g) in row.chunks_exact_mut(ax.kernel).zip(dy_row) {
                            w.fill(g * scale);
                        }
                    }
                }
            }
        }
    }
}

/// Each window of `K` neighbours in `row` summed into its output (or added to it, after the
/// first row of the window). `K` is a constant so that the compiler vectorises the loop with
/// interleaved loads; with `K` known only at run time it stays scalar (2x2 average pooling
/// ran at a quarter of the memory bandwidth).
fn sum_windows<T: Element, const K: usize>(acc: &mut [T], row: &[T], first: bool) {
    let (windows, _) = row.as_chunks::<K>();
    if first {
        for (a, w) in acc.iter_mut().zip(windows) {
            *a = w.iter().fold(T::ZERO, |s, &v| s + v);
        }
    } else {
        for (a, w) in acc.iter_mut().zip(windows) {
            *a += w.iter().fold(T::ZERO, |s, &v| s + v);
        }
    }
}

/// Each output's gradient, scaled, written over its window of `K` neighbours in `row`.
fn spread_windows<T: Element, const K: usize>(row: &mut [T], dy: &[T], scale: T) {
    let (windows, _) = row.as_chunks_mut::<K>();
    for (w, &g) in windows.iter_mut().zip(dy) {
        *w = [g * scale; K];
    }
}

/// Each window of `K` neighbours in `row` against its output so far: the first maximum of
/// the window (the last NaN), replacing the output where it is greater or NaN (always in the
/// window's first row), with its index in the plane (`start` is the row's). Selects rather
/// than branches: on real data the comparisons are unpredictable, and a constant `K` lets
/// the compiler vectorise the loop.
fn max_windows<T: Element, const K: usize>(
    acc: &mut [T],
    idx: Option<&mut [usize]>,
    row: &[T],
    start: usize,
    first: bool,
) {
    let (windows, _) = row.as_chunks::<K>();
    let best = |w: &[T; K]| {
        let (mut v, mut j) = (w[0], 0);
        for (jj, &c) in w.iter().enumerate().skip(1) {
            let take = c > v || c.is_nan();
            v = if take { c } else { v };
            j = if take { jj } else { j };
        }
        (v, j)
    };
    match idx {
        Some(idx) => {
            for (ow, ((a, i), w)) in acc.iter_mut().zip(idx).zip(windows).enumerate() {
                let (v, j) = best(w);
                let take = first || v > *a || v.is_nan();
                *a = if take { v } else { *a };
                *i = if take { start + ow * K + j } else { *i };
            }
        }
        None => {
            for (a, w) in acc.iter_mut().zip(windows) {
                let (v, _) = best(w);
                let take = first || v > *a || v.is_nan();
                *a = if take { v } else { *a };
            }
        }
    }
}
