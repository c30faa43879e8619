//! `Direct` pooling: the loop over each window, vectorised over neighbouring outputs along W.
//!
//! For a run of `LANES` outputs whose windows lie inside the input along W, each window tap
//! is one vector load (stride 1) or gather, and one add (sum, average) or one compare-select
//! of value and index (max, keeping PyTorch's first maximum and last NaN). Outputs whose
//! windows touch the padding take a scalar path. Cost: one operation per window tap, so it
//! grows with the window's volume. No scratch.

use super::PoolKind;
use super::geometry::PoolShape;
use super::prefix_sum::max_exact_index;
use crate::Element;
use crate::element::MAX_LANES;
use crate::window::{Axis, tap};

/// Calls `f(row_start)` for each input row of the window of output row `(od, oh)`, in
/// window order; `row_start` is the flat in-plane index of the row's first element.
#[inline(always)]
fn for_each_window_row(s: &PoolShape, od: usize, oh: usize, mut f: impl FnMut(usize)) {
    let [az, ay, ax] = s.axes;
    for kd in 0..az.kernel {
        let Some(id) = tap(od, kd, &az) else { continue };
        for kh in 0..ay.kernel {
            let Some(ih) = tap(oh, kh, &ay) else { continue };
            f((id * ay.input + ih) * ax.input);
        }
    }
}

/// One output by the plain loop: `(value, index of the max)`.
#[inline(always)]
fn scalar<T: Element>(
    s: &PoolShape,
    kind: PoolKind,
    x_p: &[T],
    (od, oh, ow): (usize, usize, usize),
) -> (T, usize) {
    let ax = s.axes[2];
    let mut acc = if kind == PoolKind::Max {
        T::NEG_INFINITY
    } else {
        T::ZERO
    };
    let mut best: Option<usize> = None;
    for_each_window_row(s, od, oh, |row| {
        for kw in 0..ax.kernel {
            let Some(iw) = tap(ow, kw, &ax) else { continue };
            let v = x_p[row + iw];
            if kind == PoolKind::Max {
                if best.is_none() || v > acc || v.is_nan() {
                    acc = v;
                    best = Some(row + iw);
                }
            } else {
                acc += v;
            }
        }
    });
    if kind == PoolKind::Avg {
        acc = acc / T::from_usize(s.divisor([od, oh, ow]));
    }
    (acc, best.unwrap_or(0))
}

pub(crate) fn forward<T: Element>(
    s: &PoolShape,
    kind: PoolKind,
    x: &[T],
    y: &mut [T],
    mut indices: Option<&mut [usize]>,
) {
    let ax = s.axes[2];
    let (lo, hi) = ax.interior_outputs();
    // Indices travel through the vector path as values of T.
    let vector_ok = kind != PoolKind::Max || s.in_plane <= max_exact_index::<T>();
    let lanes = {
        let mut ids = [T::ZERO; MAX_LANES];
        for (i, v) in ids.iter_mut().enumerate() {
            *v = T::from_usize(i * ax.stride);
        }
        T::load(&ids)
    };
    let mut bufs = Phased {
        phases: [T::ZERO; PHASED_ROW],
        vals: [T::ZERO; PHASED_OUT + MAX_LANES],
        ids: [T::ZERO; PHASED_OUT + MAX_LANES],
    };
    for (row, y_row) in y.chunks_exact_mut(ax.output).enumerate() {
        let (p, od, oh) = s.row_coords(row);
        let x_p = &x[p * s.in_plane..][..s.in_plane];
        let mut idx_row = indices
            .as_deref_mut()
            .map(|ix| &mut ix[row * ax.output..][..ax.output]);
        let mut ow = 0;
        // Strided windows: the interior from rows de-interleaved by the stride, where a
        // gather per tap would cost a load per lane.
        let phased = vector_ok && ax.stride > 1 && hi >= lo + T::LANES && phased_fits::<T>(&ax);
        while ow < ax.output {
            if phased && ow == lo {
                let ix = idx_row.as_deref_mut().map(|ix| &mut ix[lo..hi]);
                let bufs = &mut bufs;
                phased_interior(s, kind, x_p, (od, oh), &mut y_row[lo..hi], ix, lanes, bufs);
                ow = hi;
            } else if vector_ok && ow >= lo && ow + T::LANES <= hi {
                let (v, i) = vector_run(s, &ax, kind, x_p, (od, oh, ow), lanes);
                T::store(v, &mut y_row[ow..]);
                if let Some(ix) = idx_row.as_deref_mut() {
                    let mut buf = [T::ZERO; MAX_LANES];
                    T::store(i, &mut buf);
                    for (d, &f) in ix[ow..].iter_mut().zip(&buf[..T::LANES]) {
                        *d = f.to_f64() as usize;
                    }
                }
                ow += T::LANES;
            } else {
                let (v, i) = scalar(s, kind, x_p, (od, oh, ow));
                y_row[ow] = v;
                if let Some(ix) = idx_row.as_deref_mut() {
                    ix[ow] = i;
                }
                ow += 1;
            }
        }
    }
}

/// Longest input row (in elements) and interior (in outputs) the phased path holds on the
/// stack; longer rows take the gathers.
const PHASED_ROW: usize = 512;
const PHASED_OUT: usize = 256;

// Whole multiples of 64 bytes for 4-byte elements (and so for 8-byte ones): see `Phased`.
const _: () = assert!(
    (PHASED_ROW * 4).is_multiple_of(64) && ((PHASED_OUT + MAX_LANES) * 4).is_multiple_of(64)
);

/// The phased path's stack rows, made once per call: zeroing them for every output row
/// cost as much as a fifth of ResNet's max pool. Each row starts on a 64-byte boundary (the
/// rows before it are whole multiples of 64 bytes): the running values are stored and
/// reloaded a vector at a time for every tap, and a vector straddling two cache lines is
/// neither loaded in one pass nor forwarded from its store on some cores (Zen 4).
#[repr(C, align(64))]
struct Phased<T> {
    phases: [T; PHASED_ROW],
    vals: [T; PHASED_OUT + MAX_LANES],
    ids: [T; PHASED_OUT + MAX_LANES],
}

/// The phase rows' length for `ax`: every phase of the row plus a vector of slack.
fn phase_len<T: Element>(ax: &Axis) -> usize {
    ax.input.div_ceil(ax.stride) + T::LANES
}

fn phased_fits<T: Element>(ax: &Axis) -> bool {
    ax.stride * phase_len::<T>(ax) <= PHASED_ROW && ax.output <= PHASED_OUT
}

/// The interior outputs `out` (along W) of output row `(od, oh)` for a stride above one:
/// each window row is de-interleaved once into `stride` phases, so that the inputs a tap
/// reads for neighbouring outputs are neighbours; the running value (and index) of each
/// output stays in a stack row between window rows. Taps are visited in window order, so
/// ties and NaN resolve as in [`scalar`].
#[allow(clippy::too_many_arguments)]
fn phased_interior<T: Element>(
    s: &PoolShape,
    kind: PoolKind,
    x_p: &[T],
    (od, oh): (usize, usize),
    out: &mut [T],
    indices: Option<&mut [usize]>,
    lanes: T::Simd,
    bufs: &mut Phased<T>,
) {
    let ax = s.axes[2];
    let (lo, hi) = ax.interior_outputs();
    let n = hi - lo;
    let plen = phase_len::<T>(&ax);
    let Phased { phases, vals, ids } = bufs;
    let mut first = true;
    for_each_window_row(s, od, oh, |row| {
        let x_row = &x_p[row..row + ax.input];
        if ax.stride == 2 {
            // A constant stride, so that the compiler vectorises the split (ResNet's pool).
            let (even, odd) = phases[..2 * plen].split_at_mut(plen);
            let (pairs, rest) = x_row.as_chunks::<2>();
            for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(pairs) {
                (*e, *o) = (pair[0], pair[1]);
            }
            if let Some(&last) = rest.first() {
                even[pairs.len()] = last;
            }
        } else {
            for (phase, dst) in phases[..ax.stride * plen]
                .chunks_exact_mut(plen)
                .enumerate()
            {
                let count = ax.input.saturating_sub(phase).div_ceil(ax.stride);
                for (i, d) in dst[..count].iter_mut().enumerate() {
                    *d = x_row[phase + i * ax.stride];
                }
            }
        }
        for kw in 0..ax.kernel {
            // Interior: output `lo` reads column `c >= 0` through tap `kw`.
            let c = lo * ax.stride + kw * ax.dilation - ax.pad_lo;
            let base = (c % ax.stride) * plen + c / ax.stride;
            // The input indices the lanes read, advanced a vector of outputs at a time (exact:
            // they stay below `max_exact_index`); converting each vector's first index from an
            // integer cost a fifth of ResNet's max pool.
            let mut index = T::splat(T::from_usize(row + c)) + lanes;
            let step = T::splat(T::from_usize(T::LANES * ax.stride));
            for v in (0..n).step_by(T::LANES) {
                let x = T::load_full(&phases[base + v..]);
                let acc = &mut vals[v..v + T::LANES];
                if kind == PoolKind::Max {
                    let id = &mut ids[v..v + T::LANES];
                    let (best, best_id) = if first {
                        (x, index)
                    } else {
                        T::max_update(T::load_full(acc), T::load_full(id), x, index)
                    };
                    T::store(best, acc);
                    T::store(best_id, id);
                    index += step;
                } else {
                    let sum = if first {
                        T::splat(T::ZERO) + x
                    } else {
                        T::load_full(acc) + x
                    };
                    T::store(sum, acc);
                }
            }
            first = false;
        }
    });
    if kind == PoolKind::Avg {
        // Interior along W: one divisor for the row.
        let inv = T::ONE / T::from_usize(s.divisor([od, oh, lo]));
        for v in &mut vals[..n] {
            *v *= inv;
        }
    }
    out.copy_from_slice(&vals[..n]);
    if let Some(ix) = indices {
        for (d, &f) in ix.iter_mut().zip(&ids[..n]) {
            *d = f.to_f64() as usize;
        }
    }
}

/// `LANES` interior outputs starting at `ow0`: values and (for max) indices as `T`.
#[inline(always)]
fn vector_run<T: Element>(
    s: &PoolShape,
    ax: &Axis,
    kind: PoolKind,
    x_p: &[T],
    (od, oh, ow0): (usize, usize, usize),
    lanes: T::Simd,
) -> (T::Simd, T::Simd) {
    let mut acc = T::splat(T::ZERO);
    let mut best_index = T::splat(T::ZERO);
    let mut first = true;
    for_each_window_row(s, od, oh, |row| {
        for kw in 0..ax.kernel {
            let start = ow0 * ax.stride + kw * ax.dilation - ax.pad_lo;
            let v = if ax.stride == 1 {
                T::load(&x_p[row + start..])
            } else {
                T::gather(x_p, row + start, ax.stride)
            };
            if kind == PoolKind::Max {
                let index = T::splat(T::from_usize(row + start)) + lanes;
                if first {
                    (acc, best_index) = (v, index);
                } else {
                    (acc, best_index) = T::max_update(acc, best_index, v, index);
                }
            } else {
                acc += v;
            }
            first = false;
        }
    });
    if kind == PoolKind::Avg {
        // Interior along W: the divisor is the same for every lane.
        acc = acc * T::splat(T::ONE / T::from_usize(s.divisor([od, oh, ow0])));
    }
    (acc, best_index)
}

/// Backward of average or sum pooling: each output's gradient, divided by its divisor for
/// the average, is added to every input its window read.
pub(crate) fn backward<T: Element>(s: &PoolShape, kind: PoolKind, dy: &[T], dx: &mut [T]) {
    let ax = s.axes[2];
    dx.fill(T::ZERO);
    for (row, dy_row) in dy.chunks_exact(ax.output).enumerate() {
        let (p, od, oh) = s.row_coords(row);
        let dx_p = &mut dx[p * s.in_plane..][..s.in_plane];
        for (ow, &g) in dy_row.iter().enumerate() {
            let g = if kind == PoolKind::Avg {
                g / T::from_usize(s.divisor([od, oh, ow]))
            } else {
                g
            };
            for_each_window_row(s, od, oh, |r| {
                for kw in 0..ax.kernel {
                    if let Some(iw) = tap(ow, kw, &ax) {
                        dx_p[r + iw] += g;
                    }
                }
            });
        }
    }
}
