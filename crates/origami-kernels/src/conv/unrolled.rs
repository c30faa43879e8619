//! `Unrolled` convolution: im2col, then one matrix product per image and group.
//!
//! With `cols` the group's unrolled input (`R = cg * taps` rows, `P = out_plane` columns) and
//! `W_g` the group's weights as a `kg x R` matrix:
//!
//! ```text
//! forward          Y_g  = W_g   x cols        (kg x P)
//! input gradient   dcols = W_g^T x dY_g       (R x P), then col2im onto dX_g
//! weight gradient  dW_g += dY_g  x cols^T     (kg x R), summed over the batch
//! ```
//!
//! A 1x1 kernel with stride 1 and no padding unrolls to the input itself, so that case skips
//! the copy and multiplies the input in place.
//!
//! Scratch: `R * P` elements for `cols` (none in the 1x1 case) plus the product's packing
//! buffers ([`crate::gemm::pack_len`]).

use super::geometry::ConvShape;
use super::im2col::{col2im, im2col};
use crate::Element;
use crate::gemm::{MatMut, MatRef, gemm_unchecked, pack_len};

/// Whether the unrolled matrix of a group is the group's input itself.
pub(crate) fn unroll_is_identity(s: &ConvShape) -> bool {
    s.axes
        .iter()
        .all(|a| a.kernel == 1 && a.stride == 1 && a.pad_lo == 0 && a.input == a.output)
}

fn cols_len(s: &ConvShape) -> usize {
    if unroll_is_identity(s) {
        0
    } else {
        s.unrolled_len
    }
}

pub(crate) fn forward_scratch_len<T: Element>(s: &ConvShape) -> usize {
    cols_len(s) + pack_len::<T>(s.kg, s.out_plane, s.unrolled_rows)
}

pub(crate) fn backward_input_scratch_len<T: Element>(s: &ConvShape) -> usize {
    cols_len(s) + pack_len::<T>(s.unrolled_rows, s.out_plane, s.kg)
}

pub(crate) fn backward_weight_scratch_len<T: Element>(s: &ConvShape) -> usize {
    cols_len(s) + pack_len::<T>(s.kg, s.unrolled_rows, s.out_plane)
}

/// The group's input channels of image `n`.
fn group_input<'a, T>(s: &ConvShape, x: &'a [T], n: usize, g: usize) -> &'a [T] {
    &x[(n * s.in_channels + g * s.cg) * s.in_plane..][..s.cg * s.in_plane]
}

/// The group's output channels of image `n`: a `kg x P` block.
fn group_output_range(s: &ConvShape, n: usize, g: usize) -> core::ops::Range<usize> {
    let start = (n * s.out_channels + g * s.kg) * s.out_plane;
    start..start + s.kg * s.out_plane
}

/// The group's weights: a `kg x R` block.
fn group_weight_range(s: &ConvShape, g: usize) -> core::ops::Range<usize> {
    let start = g * s.kg * s.unrolled_rows;
    start..start + s.kg * s.unrolled_rows
}

pub(crate) fn forward<T: Element>(
    s: &ConvShape,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
    scratch: &mut [T],
) {
    let (r, p) = (s.unrolled_rows, s.out_plane);
    let (cols, pack) = scratch.split_at_mut(cols_len(s));
    for n in 0..s.batch {
        for g in 0..s.groups {
            let y_g = &mut y[group_output_range(s, n, g)];
            for (kl, y_k) in y_g.chunks_exact_mut(p).enumerate() {
                y_k.fill(bias.map_or(T::ZERO, |b| b[g * s.kg + kl]));
            }
            let x_g = group_input(s, x, n, g);
            let b = if cols.is_empty() {
                MatRef::from_parts(x_g, r, p, p, 1)
            } else {
                im2col(s, x_g, cols);
                MatRef::from_parts(&*cols, r, p, p, 1)
            };
            let a = MatRef::from_parts(&w[group_weight_range(s, g)], s.kg, r, r, 1);
            gemm_unchecked(a, b, MatMut::from_parts(y_g, s.kg, p, p, 1), true, pack);
        }
    }
}

pub(crate) fn backward_input<T: Element>(
    s: &ConvShape,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
    scratch: &mut [T],
) {
    let (r, p) = (s.unrolled_rows, s.out_plane);
    let (cols, pack) = scratch.split_at_mut(cols_len(s));
    let identity = cols.is_empty();
    if !identity {
        dx.fill(T::ZERO);
    }
    for n in 0..s.batch {
        for g in 0..s.groups {
            let a = MatRef::from_parts(&w[group_weight_range(s, g)], r, s.kg, 1, r);
            let b = MatRef::from_parts(&dy[group_output_range(s, n, g)], s.kg, p, p, 1);
            let start = (n * s.in_channels + g * s.cg) * s.in_plane;
            let dx_g = &mut dx[start..start + s.cg * s.in_plane];
            if identity {
                gemm_unchecked(a, b, MatMut::from_parts(dx_g, r, p, p, 1), false, pack);
            } else {
                gemm_unchecked(
                    a,
                    b,
                    MatMut::from_parts(&mut *cols, r, p, p, 1),
                    false,
                    pack,
                );
                col2im(s, cols, dx_g);
            }
        }
    }
}

pub(crate) fn backward_weight<T: Element>(
    s: &ConvShape,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
    scratch: &mut [T],
) {
    let (r, p) = (s.unrolled_rows, s.out_plane);
    let (cols, pack) = scratch.split_at_mut(cols_len(s));
    dw.fill(T::ZERO);
    for n in 0..s.batch {
        for g in 0..s.groups {
            let x_g = group_input(s, x, n, g);
            // cols^T: P x R.
            let b = if cols.is_empty() {
                MatRef::from_parts(x_g, p, r, 1, p)
            } else {
                im2col(s, x_g, cols);
                MatRef::from_parts(&*cols, p, r, 1, p)
            };
            let a = MatRef::from_parts(&dy[group_output_range(s, n, g)], s.kg, p, p, 1);
            let dw_g = &mut dw[group_weight_range(s, g)];
            gemm_unchecked(a, b, MatMut::from_parts(dw_g, s.kg, r, r, 1), true, pack);
        }
    }
}
