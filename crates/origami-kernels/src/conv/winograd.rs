//! Winograd's minimal filtering F(2 x 2, 3 x 3) (Lavin and Gray, "Fast Algorithms for
//! Convolutional Neural Networks", 2016) for 2-D 3 x 3 kernels at stride 1, dilation 1, one
//! group: the forward pass, the input gradient as the forward pass of the transposed
//! geometry ([`ConvShape::transposed`]), and the weight gradient by F(3 x 3, 2 x 2) over the
//! same tiles ([`backward_weight`]).
//!
//! Each 2 x 2 block of outputs (a *tile*) comes from a 4 x 4 patch `d` of the input, the
//! patches of neighbouring tiles overlapping by two:
//!
//! ```text
//! Y = A^T [ sum_c (G g_c G^T) . (B^T d_c B) ] A        (. element-wise, 4 x 4)
//!
//! B^T = | 1  0 -1  0 |     G = | 1    0    0  |     A^T = | 1  1  1  0 |
//!       | 0  1  1  0 |         | 1/2  1/2  1/2|           | 0  1 -1 -1 |
//!       | 0 -1  1  0 |         | 1/2 -1/2  1/2|
//!       | 0  1  0 -1 |         | 0    0    1  |
//! ```
//!
//! The sum over channels of the element-wise products is 16 matrix products, one per
//! element `xi` of the 4 x 4: `M_xi (K x tiles) = U_xi (K x C) V_xi (C x tiles)`, with the
//! weights transformed once per call (`U = G g G^T`) and the input a block of tiles at a
//! time (`V = B^T d B`, vectorised along a row of tiles: even and odd columns split in
//! registers), both laid out channel by channel so that threads can split them. 16
//! multiply-adds per tile and channel pair instead of 36: 2.25x fewer where the output's
//! sides are even (a 7 x 7 plane's 4 x 4 tiles cover 8 x 8: 1.72x).
//!
//! On the Zen 4 machine (one thread, `examples/conv_gflops`, forward; `Unrolled` in
//! brackets): 3x3 n8 c64 56x56 11.6 ms (18.6), c128 28x28 10.6 (18.6), c256 14x14 13.3
//! (19.5), c512 7x7 17.6 (19.9); one image c128 28x28 1.4 (2.3), on two threads 0.79
//! (1.18); weight gradient, eight images, c128 28x28 10.8 ms (19.5), c64 56x56 11.6
//! (20.1), c512 7x7 16.6 (23.0). The weight transform is what small batches pay: 16 transformed values per
//! weight (17 MB for 512 x 512 channels), which is why `Auto` asks for enough tiles
//! ([`pays`]).
//!
//! Accuracy: the transforms add and subtract up to nine terms with factors 1 and 1/2 (exact
//! in binary); each product then sums over the channels only (`Unrolled` over channels and
//! taps). Against the `f64` reference, the largest `f32` error relative to the largest
//! output was 3-8e-7 on 3x3 convolutions with 64 to 512 channels, `Unrolled`'s 4-10e-7 on
//! the same; the weight gradient's, relative to its largest sum of magnitudes, 0.7-1.7e-7
//! against 0.4-1.7e-7 (the test `winograd_error_stays_near_the_direct_sums`). Non-finite values
//! would meet through the transforms where a direct sum keeps them apart (`inf - inf` is
//! NaN where the direct sum is `inf`): where the input, the weights or the transformed
//! weights hold any, the call runs `Unrolled` instead. Finite inputs within a factor of 4
//! of the largest float may overflow in the transforms where a direct sum would not.

use super::geometry::ConvShape;
use crate::Element;
use crate::element::{all_finite, layout_len, split};
use crate::gemm::params::{NC_INDEXED, NV};
use crate::gemm::{
    MatMut, MatRef, PackB, Prepacked, gemm_indexed, gemm_with, pack_len, prepacked_len,
};
use crate::split::Units;
use core::ops::Range;

/// Elements of the 4 x 4 transform: one matrix product each.
const XI: usize = 16;

/// Whether `s` is Winograd's: a 2-D 3 x 3 kernel at stride 1, dilation 1, one
/// group.
pub(crate) fn applies(s: &ConvShape) -> bool {
    let [d, h, w] = s.axes;
    s.groups == 1
        && d.input == 1
        && d.kernel == 1
        && [h, w]
            .iter()
            .all(|a| a.kernel == 3 && a.stride == 1 && a.dilation == 1)
}

/// Whether `Auto` takes Winograd for `s` ([`applies`]): at least 32 input and output
/// channels (fewer leave the transforms, which grow with `C + K`, as costly as the products,
/// which grow with `C K`), and enough multiply-adds saved per weight to repay transforming
/// it: `images (9 Ho Wo - 16 tiles)` of at least [`MIN_SAVED`].
///
/// From `examples/conv_gflops` on the Zen 4 machine (2026-11-28, one thread, forward /
/// input gradient against `Unrolled`): 3x3 c512 on 7 x 7 planes (185 saved per image) ran
/// 4.9 / 6.0 ms against 2.6 / 3.4 for one image, 10.8 / 11.6 against 10.2 / 11.3 for four,
/// 17.4-18.8 against 19.9 for eight; c256 14 x 14 (980 per image) 1.9 / 2.2 against 2.4 /
/// 2.6 for one image; c64 7 x 7, eight images, 0.46 against 0.60; c16 56 x 56 the same as
/// `Unrolled`, c32 23% faster; c3 -> 64 on 224 x 224 forward 4.2 against 2.6 ms.
///
/// `images` is the batch one transform of the weights serves: the whole batch for the
/// weight gradient, a thread's part of it for the forward pass and the input gradient,
/// whose parts transform the weights each (two threads, eight 7 x 7 images with 512
/// channels: 12.1 ms against `Unrolled`'s 10.3).
pub(crate) fn pays(s: &ConvShape, images: usize) -> bool {
    let [_, h, w] = s.axes;
    let outputs = 9usize.saturating_mul(h.output).saturating_mul(w.output);
    let tiles = 16usize.saturating_mul(h.output.div_ceil(2) * w.output.div_ceil(2));
    applies(s)
        && s.cg.min(s.kg) >= 32
        && images.saturating_mul(outputs.saturating_sub(tiles)) >= MIN_SAVED
}

/// Multiply-adds per weight a call must save for `Auto` to take Winograd (see [`pays`]):
/// the weight transform costs about that many, more where the transformed weights (16 per
/// weight) outgrow the caches.
const MIN_SAVED: usize = 900;

/// Whether a pass may run here with this data: every input and weight finite.
pub(crate) fn finite<T: Element>(x: &[T], w: &[T]) -> bool {
    all_finite(x) && all_finite(w)
}

/// Whether the input gradient of `s` runs here: [`applies`] and a padding of at most 2 (the
/// transposed geometry's padding is `2 - pad`).
pub(crate) fn applies_backward(s: &ConvShape) -> bool {
    applies(s) && s.transposed().is_some()
}

/// The scratch of one pass over a forward-like geometry `f` (the convolution itself, or its
/// transposed geometry for the input gradient), as buffer lengths.
struct Layout {
    /// Tiles along H and W of one output plane.
    tiles: [usize; 2],
    /// Tile rows per block (whole rows of tiles, so the transforms run along them).
    block_rows: usize,
    /// Distance between rows of a `V_xi` block: the block's tiles in whole slivers, which
    /// the product reads in place past the last column.
    v_stride: usize,
    /// Distance between one channel's rows of `V` and the next's ([`channel_stride`]).
    v_unit: usize,
    /// Elements of one padded input row of the input transform.
    row: usize,
    /// Whether the weights are packed once for every block (the products then read `V` in
    /// place): where the whole call's tiles take more than one block. With one, the
    /// products read the weights in place and pack `V`, the smaller of the two where few
    /// tiles share many weights. Decided for the whole call, not a thread's part of the
    /// batch: the two ways sum deep products in blocks of different depths.
    prepack: bool,
    /// Parts each phase splits into: the pool's threads where the whole call is one image
    /// (with the `rayon` feature; a batch splits by images instead), else 1.
    parts: usize,
}

/// The threads of the current pool where the whole call is one image (see [`Layout`]), or
/// where `always` (the weight gradient, which sums over the batch: it splits its phases,
/// never the batch).
fn inner_parts(f: &ConvShape, always: bool) -> usize {
    #[cfg(feature = "rayon")]
    if always || f.whole_batch == 1 {
        return rayon::current_num_threads().max(1);
    }
    let _ = (f, always);
    1
}

impl Layout {
    fn new<T: Element>(f: &ConvShape) -> Self {
        Self::with_parts::<T>(f, inner_parts(f, false))
    }

    fn with_parts<T: Element>(f: &ConvShape, parts: usize) -> Self {
        let [_, h, w] = f.axes;
        let tiles = [h.output.div_ceil(2), w.output.div_ceil(2)];
        let nr = NV * T::LANES;
        let all_rows = f.batch.saturating_mul(tiles[0]).max(1);
        // About one product's column pass of tiles per block (`NC_INDEXED`): the block's
        // `V` and `M` stay in cache while its 16 products run.
        let most_rows = (NC_INDEXED / tiles[1].max(1)).max(1);
        let block_rows = most_rows.min(all_rows);
        let block = block_rows.saturating_mul(tiles[1]);
        // A vector of slack past the block's tiles: the input transform stores whole
        // vectors from any tile.
        let v_stride = block
            .saturating_add(T::LANES)
            .div_ceil(nr)
            .saturating_mul(nr);
        Layout {
            tiles,
            block_rows,
            v_stride,
            v_unit: channel_stride::<T>(v_stride),
            row: 2 * tiles[1].div_ceil(T::LANES) * T::LANES + 2 * T::LANES,
            parts,
            prepack: f.whole_batch.saturating_mul(tiles[0]) > most_rows,
        }
    }

    /// Tiles per block.
    fn block(&self) -> usize {
        self.block_rows * self.tiles[1]
    }

    /// The products' packing room per part where the weights are read in place.
    fn pack_per_part<T: Element>(&self, k: usize, c: usize) -> usize {
        pack_len::<T>(k, self.block(), c)
    }

    /// Room for the weights packed whole ([`Layout::prepack`]) or one packing room per
    /// part.
    fn packing<T: Element>(&self, k: usize, c: usize) -> usize {
        if self.prepack {
            XI.saturating_mul(prepacked_len(k, c))
        } else {
            self.parts.saturating_mul(self.pack_per_part::<T>(k, c))
        }
    }

    /// Buffer lengths: the weights packed (or the products' packing room), the transformed
    /// weights, `V`, `M`, the padded input rows (of every part).
    fn lens<T: Element>(&self, f: &ConvShape) -> [usize; 5] {
        let (k, c) = (f.out_channels, f.in_channels);
        let nr = NV * T::LANES;
        [
            self.packing::<T>(k, c),
            XI.saturating_mul(k).saturating_mul(c),
            c.saturating_mul(self.v_unit).saturating_add(nr),
            // A vector of slack: the output transform loads whole vectors from any tile.
            XI.saturating_mul(k)
                .saturating_mul(self.block())
                .saturating_add(T::LANES),
            // Four padded rows per part.
            (4 * self.parts).saturating_mul(self.row),
        ]
    }
}

/// Elements from one channel's `XI` rows of `v_stride` to the next channel's: the rows and
/// an odd number of cache lines in all. The products read one row per channel and depth
/// step; `XI * v_stride` is a multiple of 16 lines, which put every channel's row in 4 of a
/// 64-set L1's sets (and, at 512 tiles a block, 2 of a 512 KiB L2's): n8 c128 28 x 28's
/// products ran at a third of the machine's peak on a Zen 3 core.
fn channel_stride<T: Element>(v_stride: usize) -> usize {
    const LINE: usize = 64;
    let size = core::mem::size_of::<T>();
    let lines = XI
        .saturating_mul(v_stride)
        .saturating_mul(size)
        .div_ceil(LINE);
    (lines | 1).saturating_mul(LINE) / size
}

/// Elements of scratch for the pass over `f`, each buffer from a vector boundary.
fn pass_scratch_len<T: Element>(f: &ConvShape) -> usize {
    layout_len::<T>(&Layout::new::<T>(f).lens::<T>(f))
}

/// Scratch of the forward pass over `s` ([`applies`]).
pub(crate) fn forward_scratch_len<T: Element>(s: &ConvShape) -> usize {
    pass_scratch_len::<T>(s)
}

/// Scratch of the input gradient over `s` ([`applies_backward`]).
pub(crate) fn backward_input_scratch_len<T: Element>(s: &ConvShape) -> usize {
    s.transposed().map_or(0, |t| pass_scratch_len::<T>(&t))
}

/// The forward pass over `s` ([`applies`]), bias added; `false` (nothing written) where
/// the transformed weights are not all finite. The caller has checked that the input and
/// the weights are ([`finite`]), a decision for the whole call whatever the threads.
pub(crate) fn forward<T: Element>(
    s: &ConvShape,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
    scratch: &mut [T],
) -> bool {
    let c = s.in_channels;
    let weight = |k: usize, ch: usize, tap: usize| w[(k * c + ch) * 9 + tap];
    pass(s, x, weight, bias, y, scratch)
}

/// The input gradient over `s` ([`applies_backward`]): the forward pass of the transposed
/// geometry over `dy` with each kernel flipped and its channels swapped; `false` (nothing
/// written) where the transformed weights are not all finite (see [`forward`]).
pub(crate) fn backward_input<T: Element>(
    s: &ConvShape,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
    scratch: &mut [T],
) -> bool {
    let Some(t) = s.transposed() else {
        return false;
    };
    let c = s.in_channels;
    let weight = |ch: usize, k: usize, tap: usize| w[(k * c + ch) * 9 + 8 - tap];
    pass(&t, dy, weight, None, dx, scratch)
}

/// The forward pass over `f`, weights read through `weight(out channel, in channel, tap)`.
///
/// Each phase splits over the pool's threads where the call is one image's
/// ([`Layout::parts`]; with the `rayon` feature): the weight transform by output channels,
/// the packing and the products by transform element, the input transform by input
/// channels, the output transform by output channels. Every unit is computed alike in any
/// part, so the result does not depend on the threads.
fn pass<T: Element>(
    f: &ConvShape,
    x: &[T],
    weight: impl Fn(usize, usize, usize) -> T + Sync,
    bias: Option<&[T]>,
    y: &mut [T],
    scratch: &mut [T],
) -> bool {
    let layout = Layout::new::<T>(f);
    let [packs, raw, v, m, rows] = split(scratch, layout.lens::<T>(f));
    let (k, c) = (f.out_channels, f.in_channels);
    let split = layout.parts > 1;
    let raw_out = Units {
        data: &mut *raw,
        unit: XI * c,
    };
    each(split, k, raw_out, &mut [] as &mut [T], 0, |ks, raw, _| {
        transform_weights(ks, c, &weight, raw.data);
    });
    if !all_finite(raw) {
        return false;
    }
    let raw = &*raw;
    // `U_xi`: row `k` at `(k * XI + xi) * C`.
    let u = |xi: usize| MatRef::from_parts(&raw[xi * c..], k, c, XI * c, 1);
    let per_xi = prepacked_len(k, c);
    let (prepacked, packs, pack) = if layout.prepack {
        let (all, _) = packs.split_at_mut(XI * per_xi);
        let out = Units {
            data: &mut *all,
            unit: per_xi,
        };
        each(split, XI, out, &mut [] as &mut [T], 0, |xis, out, _| {
            for (xi, out) in xis.zip(out.data.chunks_exact_mut(per_xi)) {
                Prepacked::pack(k, c, &u(xi), out);
            }
        });
        (Some(&*all), &mut [] as &mut [T], 0)
    } else {
        (None, packs, layout.pack_per_part::<T>(k, c))
    };
    let [th, tw] = layout.tiles;
    let (vs, block, row_buf) = (layout.v_stride, layout.block(), 4 * layout.row);
    let all_rows = f.batch * th;
    for r0 in (0..all_rows).step_by(layout.block_rows) {
        let r1 = all_rows.min(r0 + layout.block_rows);
        let tiles = (r1 - r0) * tw;
        let v_out = Units {
            data: &mut *v,
            unit: layout.v_unit,
        };
        each(split, c, v_out, rows, row_buf, |chs, v, buf| {
            transform_input(f, &layout, x, r0..r1, chs, v.data, buf);
        });
        let v = &*v;
        let m_out = Units {
            data: &mut *m,
            unit: k * block,
        };
        each(split, XI, m_out, &mut *packs, pack, |xis, m, pack| {
            for (xi, m) in xis.zip(m.data.chunks_mut(k * block)) {
                // `V_xi`: row `c` of it at `c * v_unit + xi * v_stride`.
                let v = MatRef::from_parts(&v[xi * vs..], c, tiles, layout.v_unit, 1);
                let mut m = MatMut::from_parts(&mut m[..k * tiles], k, tiles, tiles, 1);
                match prepacked {
                    Some(all) => {
                        let u = Prepacked::packed(k, c, &all[xi * per_xi..]);
                        gemm_indexed(k, tiles, c, &u, &v, &mut m, false);
                    }
                    None => gemm_with(k, tiles, c, &u(xi), &Columns(v), &mut m, false, pack),
                }
            }
        });
        let m = &*m;
        let y_out = Units {
            data: &mut *y,
            unit: f.out_plane,
        };
        // Split by output channels only where the block is one image's (its planes of
        // those channels are then one piece of the output).
        each(split, k, y_out, &mut [] as &mut [T], 0, |ks, y, _| {
            transform_output(f, &layout, m, r0..r1, ks, bias, y.data);
        });
    }
    true
}

/// Runs `f(units, out, scratch)` over `0..units`: in parts over the current pool's threads
/// where `split` (with the `rayon` feature; `scratch` holds `per_part` elements per part),
/// in one part otherwise.
fn each<T: Element, O: crate::split::Split>(
    split: bool,
    units: usize,
    out: O,
    scratch: &mut [T],
    per_part: usize,
    f: impl Fn(Range<usize>, O, &mut [T]) + Sync,
) {
    #[cfg(feature = "rayon")]
    if split {
        let parts = crate::par::parts(units);
        crate::par::run(units, parts, out, scratch, per_part, f);
        return;
    }
    let _ = split;
    f(0..units, out, &mut scratch[..per_part]);
}

/// `U_xi = (G g G^T)_xi` for output channels `ks` and every input channel `c` of `weight`,
/// in `raw` (from channel `ks.start`) as rows `(k, xi)` of `C`; a vector of input channels
/// at a time.
fn transform_weights<T: Element>(
    ks: Range<usize>,
    c: usize,
    weight: &impl Fn(usize, usize, usize) -> T,
    raw: &mut [T],
) {
    let half = T::splat(T::ONE / (T::ONE + T::ONE));
    for (kr, row) in ks.enumerate() {
        for c0 in (0..c).step_by(T::LANES) {
            let n = T::LANES.min(c - c0);
            let g: [T::Simd; 9] = core::array::from_fn(|tap| {
                let mut lanes = [T::ZERO; crate::element::MAX_LANES];
                for (l, v) in lanes.iter_mut().enumerate().take(n) {
                    *v = weight(row, c0 + l, tap);
                }
                T::load(&lanes[..T::LANES])
            });
            // t = G g (4 x 3), then U = t G^T (4 x 4).
            let t: [[T::Simd; 3]; 4] = core::array::from_fn(|i| {
                core::array::from_fn(|b| {
                    let (g0, g1, g2) = (g[b], g[3 + b], g[6 + b]);
                    match i {
                        0 => g0,
                        1 => (g0 + g1 + g2) * half,
                        2 => (g0 - g1 + g2) * half,
                        _ => g2,
                    }
                })
            });
            for (i, &[t0, t1, t2]) in t.iter().enumerate() {
                let us = [t0, (t0 + t1 + t2) * half, (t0 - t1 + t2) * half, t2];
                for (j, u) in us.into_iter().enumerate() {
                    let at = (kr * XI + 4 * i + j) * c + c0;
                    T::store(u, &mut raw[at..at + n]);
                }
            }
        }
    }
}

/// Fills the first `count` rows of `len` elements of `buf`: row `i` with row `first + i -
/// top` of `plane` (`[height, width]`) from column `left` on, zero elsewhere and wherever
/// that row lies outside the plane (the tiles' rows, padding included).
fn padded_rows<T: Element>(
    buf: &mut [T],
    len: usize,
    count: usize,
    plane: &[T],
    [height, width]: [usize; 2],
    [first, top]: [usize; 2],
    left: usize,
) {
    for (i, row) in buf.chunks_exact_mut(len).take(count).enumerate() {
        row.fill(T::ZERO);
        let Some(y) = (first + i).checked_sub(top).filter(|&y| y < height) else {
            continue;
        };
        let q0 = left.min(len);
        let copy = width.min(len - q0);
        row[q0..q0 + copy].copy_from_slice(&plane[y * width..][..copy]);
    }
}

/// `V_xi = (B^T d B)_xi` of the tiles of tile rows `rows` (row `r` is image `r / th`, tile
/// row `r % th`) for input channels `chs`, into `v` (from channel `chs.start`: rows `(c,
/// xi)`, `v_stride` apart). `buf` holds four padded input rows.
fn transform_input<T: Element>(
    f: &ConvShape,
    layout: &Layout,
    x: &[T],
    rows: Range<usize>,
    chs: Range<usize>,
    v: &mut [T],
    buf: &mut [T],
) {
    let [_, ah, aw] = f.axes;
    let [th, tw] = layout.tiles;
    let (c_all, vs, unit, len) = (f.in_channels, layout.v_stride, layout.v_unit, layout.row);
    for (rb, r) in rows.enumerate() {
        let (n, ty) = (r / th, r % th);
        for (cr, ch) in chs.clone().enumerate() {
            let plane = &x[(n * c_all + ch) * f.in_plane..][..f.in_plane];
            // Padded rows: `buf[q]` of row `i` is input column `q - pad_lo` of input row
            // `2 ty + i - pad_lo` (zero outside the input).
            let shape = [ah.input, aw.input];
            padded_rows(buf, len, 4, plane, shape, [2 * ty, ah.pad_lo], aw.pad_lo);
            for tx0 in (0..tw).step_by(T::LANES) {
                // h[i][j]: B^T along the row of padded row i, for LANES tiles.
                let h: [[T::Simd; 4]; 4] = core::array::from_fn(|i| {
                    let row = &buf[i * len..][..len];
                    let q = 2 * tx0;
                    let (d0, d1) =
                        T::unzip(T::load_full(&row[q..]), T::load_full(&row[q + T::LANES..]));
                    let (d2, d3) = T::unzip(
                        T::load_full(&row[q + 2..]),
                        T::load_full(&row[q + 2 + T::LANES..]),
                    );
                    [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
                });
                let t = rb * tw + tx0;
                let [h0s, h1s, h2s, h3s] = h;
                for (j, (((h0, h1), h2), h3)) in
                    h0s.into_iter().zip(h1s).zip(h2s).zip(h3s).enumerate()
                {
                    let vs4 = [h0 - h2, h1 + h2, h2 - h1, h1 - h3];
                    for (i, val) in vs4.into_iter().enumerate() {
                        // A whole vector: lanes past the row of tiles land on the next
                        // row's tiles (written after this one) or the row's slack.
                        let at = cr * unit + (4 * i + j) * vs + t;
                        T::store(val, &mut v[at..at + T::LANES]);
                    }
                }
            }
        }
    }
}

/// `Y = A^T M A` (plus the bias) of the tiles of tile rows `rows` and output channels `ks`
/// from `m` (16 blocks of `K` rows of the block's tiles, a whole block's room apart),
/// written to `y` (from the plane of image 0, channel `ks.start`) where inside the output.
fn transform_output<T: Element>(
    f: &ConvShape,
    layout: &Layout,
    m: &[T],
    rows: Range<usize>,
    ks: Range<usize>,
    bias: Option<&[T]>,
    y: &mut [T],
) {
    let [_, ah, aw] = f.axes;
    let [th, tw] = layout.tiles;
    let (tiles, block) = (rows.len() * tw, layout.block());
    let k_all = f.out_channels;
    let (ho, wo) = (ah.output, aw.output);
    for (rb, r) in rows.enumerate() {
        let (n, ty) = (r / th, r % th);
        for k in ks.clone() {
            let b = T::splat(bias.map_or(T::ZERO, |b| b[k]));
            let plane = &mut y[(n * k_all + k - ks.start) * f.out_plane..][..f.out_plane];
            for tx0 in (0..tw).step_by(T::LANES) {
                let t = rb * tw + tx0;
                let n_tiles = T::LANES.min(tw - tx0);
                // Whole vectors (lanes past the row of tiles are never stored).
                let at = |xi: usize| T::load_full(&m[xi * k_all * block + k * tiles + t..]);
                // s[a][j] = (A^T M)[a][j], then y[a][b] = (s A)[a][b].
                let s: [[T::Simd; 4]; 2] = core::array::from_fn(|a| {
                    core::array::from_fn(|j| {
                        let (m0, m1, m2, m3) = (at(j), at(4 + j), at(8 + j), at(12 + j));
                        if a == 0 { m0 + m1 + m2 } else { m1 - m2 - m3 }
                    })
                });
                for (a, s) in s.iter().enumerate() {
                    let oy = 2 * ty + a;
                    if oy >= ho {
                        break;
                    }
                    let left = s[0] + s[1] + s[2] + b;
                    let right = s[1] - s[2] - s[3] + b;
                    let (lo, hi) = T::zip(left, right);
                    let ox = 2 * tx0;
                    let out = &mut plane[oy * wo..][..wo];
                    let end = wo.min(ox + 2 * n_tiles);
                    let first = end.min(ox + T::LANES);
                    T::store(lo, &mut out[ox..first]);
                    if end > first {
                        T::store(hi, &mut out[first..end]);
                    }
                }
            }
        }
    }
}

/// A block's `V_xi` as the product's right operand, packed like any strided matrix but with
/// every edge tile by the micro-kernel: which tiles are edges depends on how the tiles fall
/// into blocks, which depends on the batch a thread gets, and results must not.
struct Columns<'a, T>(MatRef<'a, T>);

impl<T: Element> PackB<T> for Columns<'_, T> {
    fn pack_b(&self, p0: usize, kc: usize, j0: usize, nc: usize, out: &mut [T], work: &mut [T]) {
        self.0.pack_b(p0, kc, j0, nc, out, work);
    }

    fn tail_by_dots(&self) -> bool {
        false
    }
}

/// The weight gradient over `s` ([`applies`]) by F(3 x 3, 2 x 2), the same tiles seen the
/// other way: each tile's 2 x 2 output gradient is the filter and its 4 x 4 input patch the
/// input, and the 3 x 3 gradient of a weight sums their correlation over every tile,
///
/// ```text
/// dW = A'^T [ sum_tiles (G' dy G'^T) . (B'^T d B') ] A'
///
/// B'^T = | 1  0 -1  0 |     G' = | 1    0  |     A'^T = | 1  1  1  0 |
///        | 0  1  1  0 |          | 1/2  1/2|            | 0  1 -1  0 |
///        | 0 -1  1  0 |          | 1/2 -1/2|            | 0  1  1  1 |
///        | 0 -1  0  1 |          | 0    1  |
/// ```
///
/// so 16 products `M_xi (K x C) = DY_xi (K x tiles) D_xi^T (tiles x C)`, summed block of
/// tiles after block. `B'^T` is the forward pass's `B^T` with its last row negated: the
/// input goes through the forward pass's transform and each element's sign moves to the
/// output gradient's. The phases split over threads (never the batch, whose sum would then
/// be added in another order): transforms by channels, products by element, the final
/// transform by output channels. The caller has checked that `x` and `dy` are finite.
pub(crate) fn backward_weight<T: Element>(
    s: &ConvShape,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
    scratch: &mut [T],
) {
    let layout = Layout::with_parts::<T>(s, inner_parts(s, true));
    let [packs, d, g, m, rows] = split(scratch, weight_lens::<T>(s, &layout));
    let (k, c) = (s.out_channels, s.in_channels);
    let split = layout.parts > 1;
    let [th, tw] = layout.tiles;
    let (vs, row_buf) = (layout.v_stride, 4 * layout.row);
    let pack = pack_len::<T>(k, c, layout.block());
    let all_rows = s.batch * th;
    for r0 in (0..all_rows).step_by(layout.block_rows) {
        let r1 = all_rows.min(r0 + layout.block_rows);
        let tiles = (r1 - r0) * tw;
        let d_out = Units {
            data: &mut *d,
            unit: layout.v_unit,
        };
        each(split, c, d_out, &mut *rows, row_buf, |chs, d, buf| {
            transform_input(s, &layout, x, r0..r1, chs, d.data, buf);
        });
        let g_out = Units {
            data: &mut *g,
            unit: layout.v_unit,
        };
        each(split, k, g_out, &mut *rows, row_buf, |ks, g, buf| {
            transform_gradient(s, &layout, dy, r0..r1, ks, g.data, buf);
        });
        let (d, g) = (&*d, &*g);
        let m_out = Units {
            data: &mut *m,
            unit: k * c,
        };
        each(split, XI, m_out, &mut *packs, pack, |xis, m, pack| {
            for (xi, m) in xis.zip(m.data.chunks_exact_mut(k * c)) {
                // Rows `(channel, xi)` of `v_stride` tiles: `DY_xi` read along its rows,
                // `D_xi^T` down its columns.
                let a = MatRef::from_parts(&g[xi * vs..], k, tiles, layout.v_unit, 1);
                let b = MatRef::from_parts(&d[xi * vs..], tiles, c, 1, layout.v_unit);
                let mut m = MatMut::from_parts(m, k, c, c, 1);
                gemm_with(k, c, tiles, &a, &b, &mut m, r0 > 0, pack);
            }
        });
    }
    let m = &*m;
    let dw_out = Units {
        data: dw,
        unit: 9 * c,
    };
    each(split, k, dw_out, &mut [] as &mut [T], 0, |ks, dw, _| {
        weight_output(k, c, m, ks, dw.data);
    });
}

/// Buffer lengths of [`backward_weight`]: the products' packing room per part, the input's
/// and the output gradient's transformed blocks, the 16 sums, the padded rows.
fn weight_lens<T: Element>(s: &ConvShape, layout: &Layout) -> [usize; 5] {
    let (k, c) = (s.out_channels, s.in_channels);
    let nr = NV * T::LANES;
    let blocks = |channels: usize| channels.saturating_mul(layout.v_unit).saturating_add(nr);
    [
        layout
            .parts
            .saturating_mul(pack_len::<T>(k, c, layout.block())),
        blocks(c),
        blocks(k),
        XI.saturating_mul(k).saturating_mul(c),
        (4 * layout.parts).saturating_mul(layout.row),
    ]
}

/// Scratch of the weight gradient over `s` ([`applies`]).
pub(crate) fn backward_weight_scratch_len<T: Element>(s: &ConvShape) -> usize {
    let layout = Layout::with_parts::<T>(s, inner_parts(s, true));
    layout_len::<T>(&weight_lens::<T>(s, &layout))
}

/// `sign_xi (G' dy G'^T)_xi` of the tiles of tile rows `rows` for output channels `ks`
/// into `out` (from channel `ks.start`: rows `(k, xi)`, `v_stride` apart), where
/// `sign_xi` is -1 where exactly one of the element's row and column is the last (`B'^T`'s
/// negated row, see [`backward_weight`]). `buf` holds two zero-padded rows.
fn transform_gradient<T: Element>(
    s: &ConvShape,
    layout: &Layout,
    dy: &[T],
    rows: Range<usize>,
    ks: Range<usize>,
    out: &mut [T],
    buf: &mut [T],
) {
    let [_, ah, aw] = s.axes;
    let [th, tw] = layout.tiles;
    let (k_all, vs, unit, len) = (s.out_channels, layout.v_stride, layout.v_unit, layout.row);
    let half = T::splat(T::ONE / (T::ONE + T::ONE));
    let zero = T::splat(T::ZERO);
    for (rb, r) in rows.enumerate() {
        let (n, ty) = (r / th, r % th);
        for (kr, k) in ks.clone().enumerate() {
            let plane = &dy[(n * k_all + k) * s.out_plane..][..s.out_plane];
            let shape = [ah.output, aw.output];
            padded_rows(buf, len, 2, plane, shape, [2 * ty, 0], 0);
            for tx0 in (0..tw).step_by(T::LANES) {
                // g[a][b]: the tiles' output gradients, even and odd columns split.
                let g: [[T::Simd; 2]; 2] = core::array::from_fn(|a| {
                    let row = &buf[a * len..][..len];
                    let (even, odd) = T::unzip(
                        T::load_full(&row[2 * tx0..]),
                        T::load_full(&row[2 * tx0 + T::LANES..]),
                    );
                    [even, odd]
                });
                let by_g = |g0: T::Simd, g1: T::Simd| [g0, (g0 + g1) * half, (g0 - g1) * half, g1];
                let t0 = by_g(g[0][0], g[1][0]);
                let t1 = by_g(g[0][1], g[1][1]);
                let t = rb * tw + tx0;
                for i in 0..4 {
                    let us = by_g(t0[i], t1[i]);
                    for (j, u) in us.into_iter().enumerate() {
                        let u = if (i == 3) != (j == 3) { zero - u } else { u };
                        let at = kr * unit + (4 * i + j) * vs + t;
                        T::store(u, &mut out[at..at + T::LANES]);
                    }
                }
            }
        }
    }
}

/// `dW = A'^T M A'` for output channels `ks` from the 16 sums `m` (`K x C` each), into `dw`
/// (from channel `ks.start`); a vector of input channels at a time.
fn weight_output<T: Element>(k_all: usize, c: usize, m: &[T], ks: Range<usize>, dw: &mut [T]) {
    let mut lanes = [T::ZERO; 9 * crate::element::MAX_LANES];
    for (kr, k) in ks.enumerate() {
        for c0 in (0..c).step_by(T::LANES) {
            let n = T::LANES.min(c - c0);
            let at = |xi: usize| T::load(&m[(xi * k_all + k) * c + c0..][..n]);
            // s[a][j] = (A'^T M)[a][j], then dW[a][b] = (s A')[a][b].
            let by_a = |v0: T::Simd, v1: T::Simd, v2: T::Simd, v3: T::Simd| {
                [v0 + v1 + v2, v1 - v2, v1 + v2 + v3]
            };
            let cols: [[T::Simd; 3]; 4] =
                core::array::from_fn(|j| by_a(at(j), at(4 + j), at(8 + j), at(12 + j)));
            for a in 0..3 {
                let taps = by_a(cols[0][a], cols[1][a], cols[2][a], cols[3][a]);
                for (b, v) in taps.into_iter().enumerate() {
                    T::store(v, &mut lanes[(3 * a + b) * T::LANES..][..T::LANES]);
                }
            }
            // Lane `l` of tap `t` is weight `(k, c0 + l)`'s tap `t`: nine apart in `dw`.
            let out = &mut dw[(kr * c + c0) * 9..][..n * 9];
            for (l, taps) in out.chunks_exact_mut(9).enumerate() {
                for (t, v) in taps.iter_mut().enumerate() {
                    *v = lanes[t * T::LANES + l];
                }
            }
        }
    }
}
