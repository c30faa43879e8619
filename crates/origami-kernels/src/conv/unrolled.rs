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
//! Where the grid of [`super::grid`] drops few columns, the forward pass reads `cols` in place
//! from the input's phase planes instead of packing it, and so does the input gradient of a
//! stride-1 convolution, as the forward pass `dX = conv(dY, flip(W)^T)`
//! ([`ConvShape::transposed`]); a strided convolution's input gradient adds its tiles onto
//! phase planes of the input's shape ([`OntoPlanes`]) where col2im would scatter them. All
//! three need finite weights, which must meet only real gradients, never the zeros of padding
//! (`inf * 0` is NaN). Output planes under [`MIN_GRID_PLANE`] positions are multiplied with the
//! batch's images side by side instead, one product per group.
//!
//! Scratch: the product's packing buffers ([`crate::gemm::pack_len`]), at most about 4 MiB of
//! `f32` with AVX-512 and 1.3 MiB elsewhere whatever the image size, and for the grid one
//! image's phase planes (about the size of a group's input, or of its output gradient).

use core::ops::Range;

use super::geometry::ConvShape;
use super::grid::{Grid, GridB, GridOut, GridOutputsBT, OntoPlanes};
use super::im2col::{Col2im, ImageColumns, Unrolled, UnrolledT};
use crate::Element;
use crate::element::all_finite;
use crate::gemm::params::{MR, NV};
use crate::gemm::{
    MatMut, MatRef, PackA, PackB, Prepacked, eight_row_groups, gemm_indexed, gemm_with, pack_len,
    prepacked_len,
};

/// Whether the unrolled matrix of a group is the group's input itself.
pub(crate) fn unroll_is_identity(s: &ConvShape) -> bool {
    s.axes
        .iter()
        .all(|a| a.kernel == 1 && a.stride == 1 && a.pad_lo == 0 && a.input == a.output)
}

/// Output planes below this many positions are multiplied with the batch's unrolled
/// matrices side by side ([`Unrolled`] over all the images), not one image at a time from a
/// grid: a plane of 7 x 7 fills 49 columns of the 96 its two micro-tiles compute (61 on its
/// grid), eight of them side by side 392 of 432. On 3x3 convolutions of batch 8 (Zen 4,
/// 8 x 3-vector tiles) the forward pass went from 34.5 to 22.1 ms on 7 x 7 planes with 512
/// channels, from 21.0 to 20.0 ms on 14 x 14 with 256; 28 x 28 keeps its grid, whose 7%
/// dropped columns cost less than packing.
const MIN_GRID_PLANE: usize = 256;

/// The grid the forward pass reads its unrolled matrix from, where it reads one.
fn forward_grid(s: &ConvShape) -> Option<Grid> {
    Grid::worth_it(s).filter(|_| !unroll_is_identity(s) && s.out_plane >= MIN_GRID_PLANE)
}

/// The input gradient as a forward pass (stride 1), where it is one: `dX = conv(dY,
/// flip(W)^T)` over [`ConvShape::transposed`].
fn backward_input_transposed(s: &ConvShape) -> Option<ConvShape> {
    s.transposed().filter(|_| !unroll_is_identity(s))
}

/// The geometry of the input gradient as a forward pass on a grid, and its grid, where the
/// input gradient is one.
fn backward_input_grid(s: &ConvShape) -> Option<(ConvShape, Grid)> {
    let t = backward_input_transposed(s).filter(|t| t.out_plane >= MIN_GRID_PLANE)?;
    Grid::worth_it(&t).map(|g| (t, g))
}

/// The input gradient as a forward pass over the batch's output gradients side by side, where
/// it is one and its planes are small ([`MIN_GRID_PLANE`]).
fn backward_input_batched(s: &ConvShape) -> Option<ConvShape> {
    backward_input_transposed(s).filter(|t| t.out_plane < MIN_GRID_PLANE)
}

/// Scratch of a product over the batch's unrolled matrices side by side: the packing buffers
/// of `kg x (batch P)` by `R`.
fn batched_scratch_len<T: Element>(s: &ConvShape) -> usize {
    pack_len::<T>(s.kg, s.batch.saturating_mul(s.out_plane), s.unrolled_rows)
}

/// Scratch of a product over a grid: a group's weights packed whole and the phase planes.
fn grid_scratch_len<T: Element>(s: &ConvShape, grid: &Grid) -> usize {
    prepacked_len(s.kg, s.unrolled_rows).saturating_add(grid.planes_len::<T>())
}

pub(crate) fn forward_scratch_len<T: Element>(s: &ConvShape) -> usize {
    match forward_grid(s) {
        Some(grid) => grid_scratch_len::<T>(s, &grid),
        None if unroll_is_identity(s) => pack_len::<T>(s.kg, s.out_plane, s.unrolled_rows),
        None => batched_scratch_len::<T>(s),
    }
}

pub(crate) fn backward_input_scratch_len<T: Element>(s: &ConvShape) -> usize {
    // Whether the weights are finite is known only at the call: room for either product.
    let packed = pack_len::<T>(s.unrolled_rows, s.out_plane, s.kg);
    let transposed = match (backward_input_grid(s), backward_input_batched(s)) {
        (Some((t, g)), _) => grid_scratch_len::<T>(&t, &g),
        (None, Some(t)) => batched_scratch_len::<T>(&t),
        (None, None) => 0,
    };
    let onto_planes = forward_grid(s).map_or(0, |grid| onto_planes_scratch_len::<T>(s, &grid));
    packed.max(transposed).max(onto_planes)
}

/// Scratch of the input gradient added onto phase planes: the transposed weights packed
/// whole, the planes, and the output gradient's last columns short of a tile, a tile's
/// width per row (the product reads whole tiles).
fn onto_planes_scratch_len<T: Element>(s: &ConvShape, grid: &Grid) -> usize {
    prepacked_len(s.unrolled_rows, s.kg)
        .saturating_add(grid.planes_len::<T>())
        .saturating_add(s.kg.saturating_mul(NV * T::LANES))
}

pub(crate) fn backward_weight_scratch_len<T: Element>(s: &ConvShape) -> usize {
    let packed = pack_len::<T>(s.kg, s.unrolled_rows, s.out_plane);
    // Over a grid, the phase planes after the packing buffers.
    forward_grid(s).map_or(packed, |grid| packed.saturating_add(grid.planes_len::<T>()))
}

/// Where the group's input channels of image `n` start.
fn group_input_start(s: &ConvShape, n: usize, g: usize) -> usize {
    (n * s.in_channels + g * s.cg) * s.in_plane
}

/// The group's input channels of image `n`.
fn group_input<'a, T>(s: &ConvShape, x: &'a [T], n: usize, g: usize) -> &'a [T] {
    &x[group_input_start(s, n, g)..][..s.cg * s.in_plane]
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
    if let Some(grid) = forward_grid(s) {
        return forward_on_grid(s, &grid, x, w, bias, y, pack);
    }
    for g in 0..s.groups {
        let a = MatRef::from_parts(&w[group_weight_range(s, g)], s.kg, r, r, 1);
        for n in 0..s.batch {
            fill_bias(s, g, bias, &mut y[group_output_range(s, n, g)]);
        }
        if identity {
            for n in 0..s.batch {
                let b = MatRef::from_parts(group_input(s, x, n, g), r, p, p, 1);
                let mut c = MatMut::from_parts(&mut y[group_output_range(s, n, g)], s.kg, p, p, 1);
                gemm_with(s.kg, p, r, &a, &b, &mut c, true, pack);
            }
            continue;
        }
        let b = Unrolled {
            s,
            x_g: &x[group_input_start(s, 0, g)..],
            image_stride: s.in_channels * s.in_plane,
        };
        let mut c = ImageColumns {
            y_g: &mut y[group_output_range(s, 0, g).start..],
            plane: p,
            image_stride: s.out_channels * p,
        };
        gemm_with(s.kg, s.batch * p, r, &a, &b, &mut c, true, pack);
    }
}

/// Sets the group's output channels (`kg x out_plane`) to their biases (or zero).
fn fill_bias<T: Element>(s: &ConvShape, g: usize, bias: Option<&[T]>, y_g: &mut [T]) {
    for (kl, y_k) in y_g.chunks_exact_mut(s.out_plane).enumerate() {
        y_k.fill(bias.map_or(T::ZERO, |b| b[g * s.kg + kl]));
    }
}

/// The forward pass over a grid: each group's weights packed once for the whole batch, each
/// image's planes filled and multiplied in place.
fn forward_on_grid<T: Element>(
    s: &ConvShape,
    grid: &Grid,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
    pack: &mut [T],
) {
    let (r, p) = (s.unrolled_rows, s.out_plane);
    let (pa, planes) = pack.split_at_mut(prepacked_len(s.kg, r));
    let planes = &mut planes[..grid.planes_len::<T>()];
    for g in 0..s.groups {
        let w_g = MatRef::from_parts(&w[group_weight_range(s, g)], s.kg, r, r, 1);
        let a = Prepacked::pack(s.kg, r, &w_g, pa);
        for n in 0..s.batch {
            let y_g = &mut y[group_output_range(s, n, g)];
            grid.fill(group_input(s, x, n, g), planes);
            let b = GridB {
                s,
                grid,
                planes: &*planes,
            };
            let mut c = GridOut {
                grid,
                out_plane: p,
                y_g,
                bias: bias.map(|b| &b[g * s.kg..(g + 1) * s.kg]),
            };
            gemm_indexed(s.kg, grid.cols(), r, &a, &b, &mut c, false);
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
    if by_input_channels(s, w) {
        return backward_input_channels(s, 0..s.cg, dy, w, dx, pack);
    }
    if let Some(grid) = forward_grid(s)
        && all_finite(w)
    {
        return backward_input_onto_planes(s, &grid, dy, w, dx, pack);
    }
    let (r, p) = (s.unrolled_rows, s.out_plane);
    dx.fill(T::ZERO);
    for n in 0..s.batch {
        for g in 0..s.groups {
            let a = MatRef::from_parts(&w[group_weight_range(s, g)], r, s.kg, 1, r);
            let b = MatRef::from_parts(&dy[group_output_range(s, n, g)], s.kg, p, p, 1);
            let start = group_input_start(s, n, g);
            let dx_g = &mut dx[start..start + s.cg * s.in_plane];
            gemm_with(r, p, s.kg, &a, &b, &mut Col2im { s, dx_g }, true, pack);
        }
    }
}

/// Whether the input gradient of `s` with weights `w` is a product whose rows are a group's
/// input channels — the transposed forward pass (stride 1) on a grid or side by side, which
/// needs finite weights, or a 1x1 kernel's plain product — so that any of its channels can be
/// computed apart from the others ([`backward_input_channels`]). The input gradients of
/// strided kernels (added onto phase planes, by unrolled rows) and of non-finite weights
/// (col2im) are not.
pub(crate) fn by_input_channels<T: Element>(s: &ConvShape, w: &[T]) -> bool {
    channel_rows(s) && (unroll_is_identity(s) || all_finite(w))
}

/// [`by_input_channels`] as far as the geometry decides it.
pub(crate) fn channel_rows(s: &ConvShape) -> bool {
    unroll_is_identity(s) || backward_input_grid(s).is_some() || backward_input_batched(s).is_some()
}

/// The input gradient's channels `channels` of every group, where [`by_input_channels`]. `dx` is the input gradient from
/// channel `channels.start` of the first image on: the whole tensor for `0..cg`, a part's
/// own slice where one ungrouped image is split by channels.
pub(crate) fn backward_input_channels<T: Element>(
    s: &ConvShape,
    channels: Range<usize>,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
    pack: &mut [T],
) {
    if let Some((t, grid)) = backward_input_grid(s) {
        backward_input_on_grid(s, &t, &grid, channels, dy, w, dx, pack);
    } else if let Some(t) = backward_input_batched(s) {
        backward_input_side_by_side(s, &t, channels, dy, w, dx, pack);
    } else {
        backward_input_plain(s, channels, dy, w, dx, pack);
    }
}

/// A group's weights from input channel `first` on, as [`FlippedT`] reads them.
fn flipped_weights<'a, T>(s: &'a ConvShape, w: &'a [T], g: usize, first: usize) -> FlippedT<'a, T> {
    let range = group_weight_range(s, g);
    FlippedT {
        s,
        w_g: &w[range.start + first * s.taps..range.end],
    }
}

/// The input gradient of a 1x1 kernel with stride 1 and no padding: `dX_g = W_g^T x dY_g`,
/// written straight to the input gradient (its unrolled matrix is the input itself).
fn backward_input_plain<T: Element>(
    s: &ConvShape,
    channels: Range<usize>,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
    pack: &mut [T],
) {
    let (r, p, rows) = (s.unrolled_rows, s.out_plane, channels.len());
    for n in 0..s.batch {
        for g in 0..s.groups {
            let w_g = &w[group_weight_range(s, g).start + channels.start..];
            let a = MatRef::from_parts(w_g, rows, s.kg, 1, r);
            let b = MatRef::from_parts(&dy[group_output_range(s, n, g)], s.kg, p, p, 1);
            let start = group_input_start(s, n, g);
            let mut c = MatMut::from_parts(&mut dx[start..start + rows * p], rows, p, p, 1);
            gemm_with(rows, p, s.kg, &a, &b, &mut c, false, pack);
        }
    }
}

/// The input gradient as the forward pass of `t = s.transposed()` over a grid.
#[allow(clippy::too_many_arguments)]
fn backward_input_on_grid<T: Element>(
    s: &ConvShape,
    t: &ConvShape,
    grid: &Grid,
    channels: Range<usize>,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
    pack: &mut [T],
) {
    let rows = channels.len();
    let (pa, planes) = pack.split_at_mut(prepacked_len(rows, t.unrolled_rows));
    let planes = &mut planes[..grid.planes_len::<T>()];
    for g in 0..s.groups {
        let w_g = flipped_weights(s, w, g, channels.start);
        let a = Prepacked::pack(rows, t.unrolled_rows, &w_g, pa);
        for n in 0..s.batch {
            grid.fill(&dy[group_output_range(s, n, g)], planes);
            let b = GridB {
                s: t,
                grid,
                planes: &*planes,
            };
            let start = group_input_start(s, n, g);
            let mut c = GridOut {
                grid,
                out_plane: s.in_plane,
                y_g: &mut dx[start..start + rows * s.in_plane],
                bias: None,
            };
            gemm_indexed(rows, grid.cols(), t.unrolled_rows, &a, &b, &mut c, false);
        }
    }
}

/// The input gradient with the unrolled matrix's tiles added onto phase planes ([`OntoPlanes`]):
/// `dcols = W^T x dY` over the outputs, the output gradient read in place, after which the
/// planes' inputs are written to `dx`. This serves strided convolutions, which have no
/// forward form; scattering each tile onto the input instead (col2im) cost more than its
/// product on the stem. The last columns short of a whole tile go from a copy with room
/// after each row, as the product reads whole tiles and the output gradient may end there.
fn backward_input_onto_planes<T: Element>(
    s: &ConvShape,
    grid: &Grid,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
    pack: &mut [T],
) {
    let (r, p, nr) = (s.unrolled_rows, s.out_plane, NV * T::LANES);
    let (pa, rest) = pack.split_at_mut(prepacked_len(r, s.kg));
    let (planes, tail) = rest.split_at_mut(grid.planes_len::<T>());
    let tail = &mut tail[..s.kg * nr];
    let whole = p / nr * nr;
    for g in 0..s.groups {
        let w_t = MatRef::from_parts(&w[group_weight_range(s, g)], r, s.kg, 1, r);
        let a = Prepacked::pack(r, s.kg, &w_t, pa);
        for n in 0..s.batch {
            let dy_g = &dy[group_output_range(s, n, g)];
            planes.fill(T::ZERO);
            let mut c = OntoPlanes::new(s, grid, &mut *planes);
            let b = MatRef::from_parts(dy_g, s.kg, whole, p, 1);
            gemm_indexed(r, whole, s.kg, &a, &b, &mut c, true);
            if whole < p {
                for (to, row) in tail.chunks_exact_mut(nr).zip(dy_g.chunks_exact(p)) {
                    to[..p - whole].copy_from_slice(&row[whole..]);
                }
                let b = MatRef::from_parts(&*tail, s.kg, p - whole, nr, 1);
                c.first_output = whole;
                gemm_indexed(r, p - whole, s.kg, &a, &b, &mut c, true);
            }
            grid.unfill(planes, &mut dx[group_input_start(s, n, g)..]);
        }
    }
}

/// The input gradient as the forward pass of `t = s.transposed()` over the batch's output
/// gradients side by side.
fn backward_input_side_by_side<T: Element>(
    s: &ConvShape,
    t: &ConvShape,
    channels: Range<usize>,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
    pack: &mut [T],
) {
    for g in 0..s.groups {
        let a = flipped_weights(s, w, g, channels.start);
        let b = Unrolled {
            s: t,
            x_g: &dy[group_output_range(s, 0, g).start..],
            image_stride: s.out_channels * s.out_plane,
        };
        let mut c = ImageColumns {
            y_g: &mut dx[group_input_start(s, 0, g)..],
            plane: s.in_plane,
            image_stride: s.in_channels * s.in_plane,
        };
        let cols = s.batch * s.in_plane;
        gemm_with(
            channels.len(),
            cols,
            t.unrolled_rows,
            &a,
            &b,
            &mut c,
            false,
            pack,
        );
    }
}

/// A group's weights as the left operand of the transposed forward pass: `A (cg x kg taps)`
/// with `A[c][k taps + t] = W[k][c][taps - 1 - t]`, the kernel flipped and its channels
/// swapped.
struct FlippedT<'a, T> {
    s: &'a ConvShape,
    w_g: &'a [T],
}

impl<T: Element> PackA<T> for FlippedT<'_, T> {
    fn pack_a(&self, i0: usize, mc: usize, p0: usize, kc: usize, out: &mut [T]) {
        let (taps, cg) = (self.s.taps, self.s.cg);
        let slivers = out.len() / (MR * kc);
        let last_rows = mc - (slivers - 1) * MR;
        if last_rows < MR {
            out[(slivers - 1) * MR * kc..].fill(T::ZERO);
        }
        // Output channel by output channel: its weights for all input channels are one
        // contiguous block, read in order (sliver by sliver instead, each step would jump a
        // whole block ahead and wait on memory).
        for k in p0 / taps..(p0 + kc).div_ceil(taps) {
            // Depth of tap `tt` (flipped) of output channel `k`, if inside the block.
            let depth = |tt: usize| {
                (k * taps + taps - 1 - tt)
                    .checked_sub(p0)
                    .filter(|&p| p < kc)
            };
            for (sl, sliver) in out.chunks_exact_mut(MR * kc).enumerate() {
                let c0 = i0 + sl * MR;
                let rows = MR.min(i0 + mc - c0);
                let src = &self.w_g[(k * cg + c0) * taps..];
                if rows >= 8 {
                    // Eight channels at a time, transposed eight taps at a time.
                    for ii in eight_row_groups(rows) {
                        pack_eight(&src[ii * taps..], taps, ii, &depth, sliver);
                    }
                } else {
                    for tt in 0..taps {
                        if let Some(p) = depth(tt) {
                            for (ii, v) in sliver[p * MR..][..rows].iter_mut().enumerate() {
                                *v = src[ii * taps + tt];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Lanes `lane..lane + 8` of a sliver from eight rows of `taps` weights (`src`, rows `taps`
/// apart): tap `tt` goes to depth `depth(tt)` where that is inside the block.
#[inline(always)]
fn pack_eight<T: Element>(
    src: &[T],
    taps: usize,
    lane: usize,
    depth: &impl Fn(usize) -> Option<usize>,
    sliver: &mut [T],
) {
    let whole = taps / 8 * 8;
    let mut block = [T::ZERO; 64];
    for t0 in (0..whole).step_by(8) {
        T::transpose8(&src[t0..], taps, &mut block, 8);
        for (q, row) in block.chunks_exact(8).enumerate() {
            if let Some(p) = depth(t0 + q) {
                sliver[p * MR + lane..][..8].copy_from_slice(row);
            }
        }
    }
    for tt in whole..taps {
        if let Some(p) = depth(tt) {
            for (i, v) in sliver[p * MR + lane..][..8].iter_mut().enumerate() {
                *v = src[i * taps + tt];
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
    backward_weight_block(s, x, dy, dw, 0..s.out_channels, 0..s.unrolled_rows, pack);
}

/// The block of the weight gradient at rows `rows` (output channels) and columns `cols`
/// (unrolled rows `(c, tap)` of each group) into `dw` (`rows x cols`, row-major: the whole
/// gradient's rows where `cols` is all of them). Each entry's products run in the same order
/// whatever the block, so any split of the rows or columns gives the same bits.
pub(crate) fn backward_weight_block<T: Element>(
    s: &ConvShape,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
    rows: core::ops::Range<usize>,
    cols: core::ops::Range<usize>,
    pack: &mut [T],
) {
    let width = cols.len();
    dw.fill(T::ZERO);
    // No dropped columns: the product's depth runs over the outputs only, so the planes'
    // padding meets only the products the convolution has (non-finite inputs included).
    let grid = forward_grid(s);
    let mut k0 = rows.start;
    while k0 < rows.end {
        // The rows of one group at a time.
        let g = k0 / s.kg;
        let k1 = rows.end.min((g + 1) * s.kg);
        let block = Block {
            ks: k0..k1,
            cols: cols.clone(),
            dw: &mut dw[(k0 - rows.start) * width..(k1 - rows.start) * width],
        };
        match &grid {
            Some(grid) => group_weight_block_on_grid(s, grid, x, dy, g, block, pack),
            None => group_weight_block(s, x, dy, g, block, pack),
        }
        k0 = k1;
    }
}

/// Where a group's share of a weight-gradient block goes: rows `ks` of the gradient (output
/// channels of one group), columns `cols`, into `dw` (`ks x cols`, row-major).
struct Block<'a, T> {
    ks: core::ops::Range<usize>,
    cols: core::ops::Range<usize>,
    dw: &'a mut [T],
}

/// A right operand's columns from `j0` on: the block's columns of `cols^T`.
struct ColumnsFrom<'a, B> {
    b: &'a B,
    j0: usize,
}

impl<T: Element, B: PackB<T>> PackB<T> for ColumnsFrom<'_, B> {
    fn pack_b(&self, p0: usize, kc: usize, j0: usize, nc: usize, out: &mut [T], work: &mut [T]) {
        self.b.pack_b(p0, kc, self.j0 + j0, nc, out, work);
    }
}

/// Group `g`'s share of a weight-gradient block, added to `block.dw`: `dW += dY x cols^T`,
/// with `cols^T` packed from the input.
fn group_weight_block<T: Element>(
    s: &ConvShape,
    x: &[T],
    dy: &[T],
    g: usize,
    block: Block<'_, T>,
    pack: &mut [T],
) {
    let (r, p, m, width) = (
        s.unrolled_rows,
        s.out_plane,
        block.ks.len(),
        block.cols.len(),
    );
    for n in 0..s.batch {
        let x_g = group_input(s, x, n, g);
        let dy_rows = &dy[(n * s.out_channels + block.ks.start) * p..][..m * p];
        let a = MatRef::from_parts(dy_rows, m, p, p, 1);
        let mut c = MatMut::from_parts(&mut *block.dw, m, width, width, 1);
        let j0 = block.cols.start;
        if unroll_is_identity(s) {
            // cols^T: P x R.
            let b = MatRef::from_parts(x_g, p, r, 1, p);
            let b = ColumnsFrom { b: &b, j0 };
            gemm_with(m, width, p, &a, &b, &mut c, true, pack);
        } else {
            let b = UnrolledT { s, x_g };
            let b = ColumnsFrom { b: &b, j0 };
            gemm_with(m, width, p, &a, &b, &mut c, true, pack);
        }
    }
}

/// [`group_weight_block`] over a grid: `dW += dY x cols^T`, with `cols^T` packed from the
/// phase planes, its depth the outputs themselves ([`GridOutputsBT`]). The output gradient is
/// the left operand as it is, rows contiguous along the depth: where the depth ran over the
/// grid's columns, each image's output gradient was first copied onto the grid (megabytes
/// written and read back for the stem: 9% of the pass) and the product ran over the dropped
/// columns too (3% more for the stem).
fn group_weight_block_on_grid<T: Element>(
    s: &ConvShape,
    grid: &Grid,
    x: &[T],
    dy: &[T],
    g: usize,
    block: Block<'_, T>,
    pack: &mut [T],
) {
    let (r, p, m) = (s.unrolled_rows, s.out_plane, block.ks.len());
    let width = block.cols.len();
    let (pack, planes) = pack.split_at_mut(pack_len::<T>(s.kg, r, p));
    for n in 0..s.batch {
        grid.fill(group_input(s, x, n, g), planes);
        let dy_rows = &dy[(n * s.out_channels + block.ks.start) * p..][..m * p];
        let a = MatRef::from_parts(dy_rows, m, p, p, 1);
        let b = GridOutputsBT {
            b: GridB {
                s,
                grid,
                planes: &*planes,
            },
        };
        let b = ColumnsFrom {
            b: &b,
            j0: block.cols.start,
        };
        let mut c = MatMut::from_parts(&mut *block.dw, m, width, width, 1);
        gemm_with(m, width, p, &a, &b, &mut c, true, pack);
    }
}
