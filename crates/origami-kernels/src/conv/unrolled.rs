//! `Unrolled` convolution: one matrix product per image and group over the unrolled input.
//!
//! With `cols` the group's unrolled input (`R = cg * taps` rows, `P = out_plane` columns) and
//! `W_g` the group's weights as a `kg x R` matrix:
//!
//! ```text
//! forward          Y_g  = W_g   x cols        (kg x P)
//! input gradient   dcols = W_g^T x dY_g       (R x P), added onto dX_g by col2im
//! weight gradient  dW_g += dY_g  x cols^T     (kg x R), summed over the batch
//! ```
//!
//! `cols` is never stored: the product packs it block by block from the input, and the input
//! gradient's tiles go through col2im as they are finished (see [`super::im2col`]). A 1x1
//! kernel with stride 1 and no padding unrolls to the input itself, so that case multiplies
//! the input (or writes the input gradient) as a plain matrix.
//!
//! Scratch: the product's packing buffers ([`crate::gemm::pack_len`]), a few hundred KiB at
//! most whatever the image size.

use super::geometry::ConvShape;
use super::im2col::{Col2im, Unrolled, UnrolledT};
use crate::Element;
use crate::gemm::{MatMut, MatRef, gemm_with, pack_len};

/// Whether the unrolled matrix of a group is the group's input itself.
pub(crate) fn unroll_is_identity(s: &ConvShape) -> bool {
    s.axes
        .iter()
        .all(|a| a.kernel == 1 && a.stride == 1 && a.pad_lo == 0 && a.input == a.output)
}

pub(crate) fn forward_scratch_len<T: Element>(s: &ConvShape) -> usize {
    pack_len::<T>(s.kg, s.out_plane, s.unrolled_rows)
}

pub(crate) fn backward_input_scratch_len<T: Element>(s: &ConvShape) -> usize {
    pack_len::<T>(s.unrolled_rows, s.out_plane, s.kg)
}

pub(crate) fn backward_weight_scratch_len<T: Element>(s: &ConvShape) -> usize {
    pack_len::<T>(s.kg, s.unrolled_rows, s.out_plane)
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
    pack: &mut [T],
) {
    let (r, p) = (s.unrolled_rows, s.out_plane);
    let identity = unroll_is_identity(s);
    for n in 0..s.batch {
        for g in 0..s.groups {
            let y_g = &mut y[group_output_range(s, n, g)];
            for (kl, y_k) in y_g.chunks_exact_mut(p).enumerate() {
                y_k.fill(bias.map_or(T::ZERO, |b| b[g * s.kg + kl]));
            }
            let x_g = group_input(s, x, n, g);
            let a = MatRef::from_parts(&w[group_weight_range(s, g)], s.kg, r, r, 1);
            let mut c = MatMut::from_parts(y_g, s.kg, p, p, 1);
            if identity {
                let b = MatRef::from_parts(x_g, r, p, p, 1);
                gemm_with(s.kg, p, r, &a, &b, &mut c, true, pack);
            } else {
                let b = Unrolled { s, x_g };
                gemm_with(s.kg, p, r, &a, &b, &mut c, true, pack);
            }
        }
    }
}

pub(crate) fn backward_input<T: Element>(
    s: &ConvShape,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
    pack: &mut [T],
) {
    let (r, p) = (s.unrolled_rows, s.out_plane);
    let identity = unroll_is_identity(s);
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
                let mut c = MatMut::from_parts(dx_g, r, p, p, 1);
                gemm_with(r, p, s.kg, &a, &b, &mut c, false, pack);
            } else {
                gemm_with(r, p, s.kg, &a, &b, &mut Col2im { s, dx_g }, true, pack);
            }
        }
    }
}

pub(crate) fn backward_weight<T: Element>(
    s: &ConvShape,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
    pack: &mut [T],
) {
    backward_weight_rows(s, x, dy, dw, 0..s.out_channels, pack);
}

/// Rows `rows` (output channels) of the weight gradient into `dw` (those rows only). Each
/// row's products run in the same order whatever the range, so any split of the rows gives
/// the same bits.
pub(crate) fn backward_weight_rows<T: Element>(
    s: &ConvShape,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
    rows: core::ops::Range<usize>,
    pack: &mut [T],
) {
    let (r, p) = (s.unrolled_rows, s.out_plane);
    let identity = unroll_is_identity(s);
    dw.fill(T::ZERO);
    let mut k0 = rows.start;
    while k0 < rows.end {
        // The rows of one group at a time.
        let g = k0 / s.kg;
        let k1 = rows.end.min((g + 1) * s.kg);
        let m = k1 - k0;
        let dw_rows = &mut dw[(k0 - rows.start) * r..(k1 - rows.start) * r];
        for n in 0..s.batch {
            let x_g = group_input(s, x, n, g);
            let dy_rows = &dy[(n * s.out_channels + k0) * p..][..m * p];
            let a = MatRef::from_parts(dy_rows, m, p, p, 1);
            let mut c = MatMut::from_parts(&mut *dw_rows, m, r, r, 1);
            if identity {
                // cols^T: P x R.
                let b = MatRef::from_parts(x_g, p, r, 1, p);
                gemm_with(m, r, p, &a, &b, &mut c, true, pack);
            } else {
                let b = UnrolledT { s, x_g };
                gemm_with(m, r, p, &a, &b, &mut c, true, pack);
            }
        }
        k0 = k1;
    }
}
