//! Unrolling windows into a matrix (im2col) and its adjoint (col2im), in any number of
//! dimensions, with stride, dilation, padding and groups.
//!
//! For one image and one group, the unrolled matrix has a row per kernel tap
//! `r = (c, kd, kh, kw)` (`cg * taps` rows) and a column per output position
//! `p = (od, oh, ow)`: entry `(r, p)` is the input the window at `p` reads through tap `r`,
//! zero where it falls in the padding. Each column is one window — the lecture's `T x K`
//! matrix, transposed so that the product with the weights, `W (K x R) x cols (R x P)`, writes
//! the output in its `[K, P]` layout directly.
//!
//! [`col2im`] is the exact adjoint: it adds every entry back onto the input element it was
//! read from, which turns the unrolled input gradient into the input gradient.

use super::geometry::ConvShape;
use crate::Element;
use crate::window::tap;

/// Visits every `(tap row, output row)` pair of one group's unrolled matrix: `f` receives the
/// tap `kw` along the innermost axis, the matching input row (or `None` when the window's
/// row lies in the padding) and the destination row of `OW` entries.
#[inline(always)]
fn for_each_row<T: Element>(
    s: &ConvShape,
    cols: &mut [T],
    mut f: impl FnMut(usize, Option<usize>, &mut [T]),
) {
    let [az, ay, ax] = s.axes;
    let [id_n, ih_n, iw_n] = s.input();
    let (ow_n, p) = (ax.output, s.out_plane);
    let mut rows = cols.chunks_exact_mut(p);
    for c in 0..s.cg {
        for kd in 0..az.kernel {
            for kh in 0..ay.kernel {
                for kw in 0..ax.kernel {
                    let Some(row) = rows.next() else { return };
                    for (q, dst) in row.chunks_exact_mut(ow_n).enumerate() {
                        let (od, oh) = (q / ay.output, q % ay.output);
                        let src = tap(od, kd, &az).and_then(|id| {
                            tap(oh, kh, &ay).map(|ih| ((c * id_n + id) * ih_n + ih) * iw_n)
                        });
                        f(kw, src, dst);
                    }
                }
            }
        }
    }
}

/// Unrolls the windows of one image and one group: `x_g` holds the group's `cg` input
/// channels, `cols` receives the `(cg * taps) x out_plane` matrix.
pub(crate) fn im2col<T: Element>(s: &ConvShape, x_g: &[T], cols: &mut [T]) {
    let ax = s.axes[2];
    for_each_row(s, cols, |kw, src, dst| {
        let Some(start) = src else {
            dst.fill(T::ZERO);
            return;
        };
        let x_row = &x_g[start..start + ax.input];
        let (lo, hi) = ax.valid_outputs(kw);
        dst[..lo].fill(T::ZERO);
        dst[hi..].fill(T::ZERO);
        if lo < hi {
            let first = lo * ax.stride + kw * ax.dilation - ax.pad_lo;
            if ax.stride == 1 {
                dst[lo..hi].copy_from_slice(&x_row[first..first + (hi - lo)]);
            } else {
                for (d, &v) in dst[lo..hi]
                    .iter_mut()
                    .zip(x_row[first..].iter().step_by(ax.stride))
                {
                    *d = v;
                }
            }
        }
    });
}

/// The adjoint of [`im2col`]: adds each entry of `cols` onto the element of `dx_g` it was
/// unrolled from. Entries that came from padding are dropped.
pub(crate) fn col2im<T: Element>(s: &ConvShape, cols: &mut [T], dx_g: &mut [T]) {
    let ax = s.axes[2];
    for_each_row(s, cols, |kw, src, row| {
        let Some(start) = src else { return };
        let dx_row = &mut dx_g[start..start + ax.input];
        let (lo, hi) = ax.valid_outputs(kw);
        if lo < hi {
            let first = lo * ax.stride + kw * ax.dilation - ax.pad_lo;
            for (d, &v) in dx_row[first..]
                .iter_mut()
                .step_by(ax.stride)
                .zip(&row[lo..hi])
            {
                *d += v;
            }
        }
    });
}
