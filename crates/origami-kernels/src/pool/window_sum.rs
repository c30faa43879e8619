//! Window sums at stride 1 over channel planes: `PrefixSum`'s average and sum pooling, forward
//! and backward, when every window moves one element at a time along H and W (stride 1,
//! dilation 1) and no D pass runs.
//!
//! The general passes ([`super::prefix_sum`]) run every axis down columns, so the W pass
//! transposes groups of rows in and out; at stride 1 the transposes were 40% of the time and
//! the passes went through memory three times per plane. Here a plane goes once, row by row:
//!
//! - **Along W, by doubling**, on each contiguous row: with `u_1 = x` (zero-padded) and
//!   `u_{2m}[e] = u_m[e] + u_m[e - m]` (sums of `2m` elements ending at `e`), a window of
//!   `k` taps is the sum of one `u_{2^l}` per set bit of `k`, each ending where the next
//!   larger one starts:
//!
//!   ```text
//!   k = 13 = 8 + 4 + 1:   sum(x[e-12 ..= e]) = u_8[e] + u_4[e - 8] + u_1[e - 12]
//!   ```
//!
//!   `log2 k` doublings and `popcount k` terms per output, no transposes; each sum adds
//!   disjoint pieces of the window pairwise, which is at least as accurate as adding the taps
//!   in order. For windows narrower than two vectors (`k < 2 * LANES`: up to 31 for `f32`
//!   with AVX-512, see [`applies`]) it all goes in registers ([`row_sums`]), reading each
//!   row once from the input, in order: a doubling by `m < LANES` is a lane slide of a
//!   vector and the previous one, a piece at any offset a two-source permute.
//! - **Along H, by block-restarted running sums** (van Herk / Gil-Werman, as in
//!   [`super::prefix_sum`]): the padded rows are cut into blocks of `k`; while the rows of
//!   block `b` arrive from the W pass, a running sum `pre` from the block's start gives, with
//!   the suffix sums `suf` of block `b - 1` (kept from the step before), each window that ends
//!   in block `b`:
//!
//!   ```text
//!   window(a .. a+k) = suf[a] + pre[a+k-1]      (a whole block: pre alone)
//!   ```
//!
//!   then block `b` turns into its suffix sums for the next step. O(1) per output whatever
//!   `k`, in column strips whose running sums stay in registers; only the windows' own
//!   elements are ever added, so infinities and NaN stay in the windows that hold them.
//!
//! One thread, n8 c64 112x112, 15x15 padding 7 (AMD EPYC Zen 4; PyTorch 2.15: forward
//! 897 ms, backward 240 ms): the transposing passes took 8.4-8.9 ms each way; this module
//! 6.8 ms with plain stores, 5.1-5.5 with the output streamed past the caches
//! ([`crate::element::STREAM_BYTES`]), 4.3-5.5 reading the rows in order straight from the
//! input (a first version walked them backwards from a padded copy). Two threads: 2.3-2.7
//! ms. Software prefetch (the next block, the next plane, the output rows) did not help.
//! The W pass was then bound by its instructions, not its data (the same time per plane in
//! L2 as from memory): two rows per step, the H pass's strips and the scaling mode as
//! consts, the forward factors moved to the H pass and the top level's piece taken as it
//! is gave 3.4-3.7 ms (in L2, n1 c64: 0.49 -> 0.39 ms).

use super::PoolKind;
use super::geometry::PoolShape;
use super::prefix_sum::average_factor;
use crate::Element;
use crate::element::streams;
use crate::element::{layout_len, split};
use crate::window::Axis;

/// Whether the sums of `s` go by planes here: no D pass, stride and dilation 1 along H and
/// W, and windows along W narrower than two vectors (`k < 2 * LANES`: up to 31 for `f32` with
/// AVX-512, 15 for `f64`). Wider windows keep the transposing passes, whose cost does not
/// grow with the window: doubling through memory took twice their time at 63 x 63.
pub(crate) fn applies<T: Element>(s: &PoolShape) -> bool {
    let [ad, ah, aw] = s.axes;
    let d_is_identity = ad.input == 1 && ad.output == 1 && ad.kernel == 1;
    d_is_identity
        && [ah, aw].iter().all(|a| a.stride == 1 && a.dilation == 1)
        && aw.kernel < 2 * T::LANES
}

/// The axis along which the backward pass sums: the output gradient, padded by
/// `k - 1 - pad` on each side, summed over windows of `k` (at stride 1 the transposed
/// window is a window again).
fn transposed(axis: &Axis) -> Axis {
    Axis {
        input: axis.output,
        output: axis.input,
        pad_lo: axis.kernel - 1 - axis.pad_lo,
        ..*axis
    }
}

/// `n` rounded up to whole vectors.
fn whole<T: Element>(n: usize) -> usize {
    n.div_ceil(T::LANES).saturating_mul(T::LANES)
}

/// The doublings a window of `k` taps needs: `u_1 .. u_{2^top}` with `2^top <= k`.
fn doublings(k: usize) -> usize {
    (usize::BITS - k.leading_zeros()) as usize
}

/// The scratch of one call, as buffer lengths (see [`Buffers`]).
struct Layout {
    /// One row of W sums, rounded up to vectors.
    row: usize,
    /// Rows per H block.
    block: usize,
    /// The factors along W: the padded row's length and two vectors.
    w_factors: usize,
    /// The H pass's factors.
    h_factors: usize,
}

impl Layout {
    /// For sums along `h` and `w` (the transposed axes in the backward pass).
    fn new<T: Element>(h: &Axis, w: &Axis) -> Self {
        let row = whole::<T>(w.output);
        Layout {
            row,
            block: h.kernel,
            w_factors: whole::<T>(row.saturating_add(w.kernel - 1)).saturating_add(2 * T::LANES),
            h_factors: h.input.max(h.output),
        }
    }

    /// Buffer lengths in the order [`Buffers::split`] takes them.
    fn lens(&self) -> [usize; 4] {
        let rows = self.block.saturating_mul(self.row);
        [rows, rows, self.w_factors, self.h_factors]
    }
}

/// The axes a pass sums along: the pooling's own (forward) or the transposed ones (backward).
fn pass_axes(s: &PoolShape, backward: bool) -> (Axis, Axis) {
    let [_, ah, aw] = s.axes;
    if backward {
        (transposed(&ah), transposed(&aw))
    } else {
        (ah, aw)
    }
}

/// Elements of scratch for either pass over `s` (the backward pass's transposed axes have
/// the same kernels, and swap input and output extents).
pub(crate) fn scratch_len<T: Element>(s: &PoolShape) -> usize {
    [false, true]
        .map(|b| {
            let (h, w) = pass_axes(s, b);
            layout_len::<T>(&Layout::new::<T>(&h, &w).lens())
        })
        .into_iter()
        .max()
        .unwrap_or(0)
}

/// The buffers of one call, each starting on a vector boundary.
struct Buffers<'a, T> {
    /// The H block being summed (rows of W sums, then their suffix sums).
    block: &'a mut [T],
    /// The previous block's suffix sums.
    suffix: &'a mut [T],
    /// Factors along W (zero past the row: only lanes beyond the outputs read them), by
    /// output column (forward, for the H pass) or by padded position (backward, for
    /// [`RowSource`]).
    w_factors: &'a mut [T],
    /// Factors along H.
    h_factors: &'a mut [T],
}

impl<'a, T: Element> Buffers<'a, T> {
    /// Every buffer on a vector boundary (see [`split`]).
    fn split(scratch: &'a mut [T], layout: &Layout) -> Self {
        let [block, suffix, w_factors, h_factors] = split(scratch, layout.lens());
        Buffers {
            block,
            suffix,
            w_factors,
            h_factors,
        }
    }
}

/// Where the average's factors apply: to the sums (forward: both axes' factors at once, as
/// the H pass stores its windows, so that the W pass runs without them) or to the gradient
/// before it is summed (backward: as the W pass reads it). Sum pooling has none.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scale {
    None,
    Sums,
    Terms,
    /// [`Scale::Terms`] where every output has the same factor.
    UniformTerms,
}

/// How [`RowSource`] scales the terms, as a constant of [`row_sums`]: not at all,
const PLAIN: u8 = 0;
/// by each position's factor along W and the row's along H ([`Scale::Terms`]),
const BY_POSITION: u8 = 1;
/// or by the one factor of every term ([`Scale::UniformTerms`]).
const UNIFORM: u8 = 2;

/// [`row_sums`] for `scale` and the levels a window of `k` needs: the dispatch from run-time
/// values to the constants the W pass is compiled for.
#[inline(always)]
fn row_sums_by<T: Element, const N: usize>(
    scale: Scale,
    k: usize,
    srcs: &[RowSource<'_, T>; N],
    outs: [&mut [T]; N],
) {
    match scale {
        Scale::Terms => by_levels::<T, N, BY_POSITION>(k, srcs, outs),
        Scale::UniformTerms => by_levels::<T, N, UNIFORM>(k, srcs, outs),
        Scale::None | Scale::Sums => by_levels::<T, N, PLAIN>(k, srcs, outs),
    }
}

/// [`row_sums`] for the levels a window of `k` needs.
#[inline(always)]
fn by_levels<T: Element, const N: usize, const TERMS: u8>(
    k: usize,
    srcs: &[RowSource<'_, T>; N],
    outs: [&mut [T]; N],
) {
    match doublings(k) - 1 {
        0 => row_sums::<T, 0, N, TERMS>(k, srcs, outs),
        1 => row_sums::<T, 1, N, TERMS>(k, srcs, outs),
        2 => row_sums::<T, 2, N, TERMS>(k, srcs, outs),
        3 => row_sums::<T, 3, N, TERMS>(k, srcs, outs),
        _ => row_sums::<T, 4, N, TERMS>(k, srcs, outs),
    }
}

/// Forward average or sum pooling over every plane of `s` ([`applies`] holds).
pub(crate) fn forward<T: Element>(
    s: &PoolShape,
    kind: PoolKind,
    x: &[T],
    y: &mut [T],
    scratch: &mut [T],
) {
    run(s, kind, false, streams::<T>(s.output_len), x, y, scratch);
}

/// Backward of average or sum pooling over every plane of `s` ([`applies`] holds):
/// `dx[i] = sum over windows o containing i of dy[o] / divisor(o)`.
pub(crate) fn backward<T: Element>(
    s: &PoolShape,
    kind: PoolKind,
    dy: &[T],
    dx: &mut [T],
    scratch: &mut [T],
) {
    run(s, kind, true, streams::<T>(s.input_len), dy, dx, scratch);
}

fn run<T: Element>(
    s: &PoolShape,
    kind: PoolKind,
    backward: bool,
    stream: bool,
    src: &[T],
    dst: &mut [T],
    scratch: &mut [T],
) {
    let (h, w) = pass_axes(s, backward);
    let layout = Layout::new::<T>(&h, &w);
    let mut buf = Buffers::split(scratch, &layout);
    let [_, ah, aw] = s.axes;
    let factor = |a: usize, o: usize| average_factor::<T>(s, a, o, a == 2);
    // One factor for every output (count_include_pad's windows inside the padded input, or
    // an override): the backward pass then scales each term by one multiply, with no
    // factors to load.
    let uniform = |a: usize, n: usize| {
        let first = factor(a, 0);
        (1..n).all(|o| factor(a, o) == first)
    };
    let scale = match (kind, backward) {
        (PoolKind::Avg, false) => Scale::Sums,
        (PoolKind::Avg, true) if uniform(1, ah.output) && uniform(2, aw.output) => {
            Scale::UniformTerms
        }
        (PoolKind::Avg, true) => Scale::Terms,
        _ => Scale::None,
    };
    if scale != Scale::None {
        // The factors belong to the pooling's outputs. The backward pass reads them as it
        // reads the padded row, from a vector before it (see `RowSource`).
        let at = if backward { w.pad_lo + T::LANES } else { 0 };
        buf.w_factors.fill(T::ZERO);
        for (o, f) in buf.w_factors[at..][..aw.output].iter_mut().enumerate() {
            *f = factor(2, o);
        }
        for (o, f) in buf.h_factors[..ah.output].iter_mut().enumerate() {
            *f = factor(1, o);
        }
    }
    let (in_plane, out_plane) = (h.input * w.input, h.output * w.output);
    for (p_src, p_dst) in src
        .chunks_exact(in_plane)
        .zip(dst.chunks_exact_mut(out_plane))
        .take(s.planes)
    {
        plane(&h, &w, scale, stream, p_src, p_dst, &mut buf, &layout);
    }
    if stream {
        T::end_streaming();
    }
}

/// One plane: `dst[o][q] = sum of src[i][j]` over `i` in H window `o` and `j` in W window
/// `q`, with the factors applied as `scale` says.
#[allow(clippy::too_many_arguments)]
fn plane<T: Element>(
    h: &Axis,
    w: &Axis,
    scale: Scale,
    stream: bool,
    src: &[T],
    dst: &mut [T],
    buf: &mut Buffers<'_, T>,
    layout: &Layout,
) {
    let (k, cols, row) = (h.kernel, w.output, layout.row);
    // Padded rows `0 .. h.output + k - 1` hold every window; row `p` is input row `p - pad`.
    let padded_rows = h.output + k - 1;
    for b in 0..padded_rows.div_ceil(k) {
        // Block rows `t` that hold input rows (the rest are padding): `lo .. hi`.
        let input_row = |t: usize| {
            let p = b * k + t;
            p.checked_sub(h.pad_lo)
                .filter(|&i| i < h.input && p < padded_rows)
        };
        let lo = (0..k).find(|&t| input_row(t).is_some()).unwrap_or(k);
        let hi = (lo..k).find(|&t| input_row(t).is_none()).unwrap_or(k);
        buf.block[..lo * row].fill(T::ZERO);
        buf.block[hi * row..k * row].fill(T::ZERO);
        let source = |t: usize| {
            let i = b * k + t - h.pad_lo;
            RowSource {
                row: &src[i * w.input..][..w.input],
                pad: w.pad_lo,
                terms: (&*buf.w_factors, T::splat(buf.h_factors[i])),
                uniform: T::splat(buf.h_factors[i] * buf.w_factors[w.pad_lo + T::LANES]),
            }
        };
        // Two rows at a time: twice the independent work per step, and the step's
        // bookkeeping shared (1.1-1.25x over one row, even where the levels of two rows
        // do not all fit in registers).
        let pairs = (hi - lo) / 2;
        let mut rows = buf.block[lo * row..hi * row].chunks_exact_mut(row);
        for t in (lo..lo + 2 * pairs).step_by(2) {
            let (Some(a), Some(c)) = (rows.next(), rows.next()) else {
                break;
            };
            let srcs = [source(t), source(t + 1)];
            row_sums_by::<T, 2>(scale, w.kernel, &srcs, [a, c]);
        }
        for (t, out) in (lo + 2 * pairs..hi).zip(rows) {
            row_sums_by::<T, 1>(scale, w.kernel, &[source(t)], [out]);
        }
        let last = (b + 1) * k >= padded_rows;
        for c0 in (0..row).step_by(STRIP * T::LANES) {
            let strip = Strip {
                c0,
                cols,
                row,
                stream,
            };
            // A const number of vectors, so that the running sums stay in registers (a
            // count known only at run time kept them in memory).
            match ((row - c0) / T::LANES).min(STRIP) {
                1 => strip.pass::<T, 1>(b, h, scale, last, buf, dst),
                2 => strip.pass::<T, 2>(b, h, scale, last, buf, dst),
                3 => strip.pass::<T, 3>(b, h, scale, last, buf, dst),
                _ => strip.pass::<T, STRIP>(b, h, scale, last, buf, dst),
            }
        }
        if last {
            break;
        }
        core::mem::swap(&mut buf.block, &mut buf.suffix);
    }
}

/// Vectors of a column strip that the H pass keeps in registers.
const STRIP: usize = 4;

/// A strip of the H pass: vectors from column `c0` of rows `row` apart, of which the first
/// `cols` columns of a row are outputs, written past the caches where `stream` says.
struct Strip {
    c0: usize,
    cols: usize,
    row: usize,
    stream: bool,
}

impl Strip {
    /// The H pass over `V` vectors of block `b`: its windows, then (unless it is the
    /// `last`) its suffix sums.
    #[inline(always)]
    fn pass<T: Element, const V: usize>(
        &self,
        b: usize,
        h: &Axis,
        scale: Scale,
        last: bool,
        buf: &mut Buffers<'_, T>,
        dst: &mut [T],
    ) {
        let factors = (&*buf.w_factors, &*buf.h_factors);
        self.windows::<T, V>(b, h, scale, buf.block, buf.suffix, factors, dst);
        if !last {
            self.suffix_sums::<T, V>(h.kernel, buf.block);
        }
    }

    /// The windows that end in block `b` (rows in `block`), with the suffix sums of block
    /// `b - 1` in `suffix`: a running sum from the block's start, in registers, plus the
    /// suffix sum at the window's start.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn windows<T: Element, const V: usize>(
        &self,
        b: usize,
        h: &Axis,
        scale: Scale,
        block: &[T],
        suffix: &[T],
        (w_factors, h_factors): (&[T], &[T]),
        dst: &mut [T],
    ) {
        let (k, lanes) = (h.kernel, T::LANES);
        let one = T::splat(T::ONE);
        // The forward pass's factors along W, by column (the W pass leaves them to this one).
        let columns: [T::Simd; V] = core::array::from_fn(|v| match scale {
            Scale::Sums => T::load_full(&w_factors[self.c0 + v * lanes..]),
            _ => one,
        });
        let mut running = [T::splat(T::ZERO); V];
        for t in 0..k {
            let current = &block[t * self.row + self.c0..];
            for (v, r) in running.iter_mut().enumerate() {
                let x = T::load_full(&current[v * lanes..]);
                *r = if t == 0 { x } else { *r + x };
            }
            // The window ending at padded row `b * k + t` starts at output row
            // `b * k + t + 1 - k`: in the previous block at `t + 1`, or at this block's
            // start when `t + 1 == k`.
            let Some(o) = (b * k + t + 1).checked_sub(k).filter(|&o| o < h.output) else {
                continue;
            };
            let g = match scale {
                Scale::Sums => T::splat(h_factors[o]),
                _ => one,
            };
            let dst_row = &mut dst[o * self.cols..][..self.cols];
            for (v, &r) in running.iter().enumerate() {
                let c = self.c0 + v * lanes;
                if c >= self.cols {
                    break;
                }
                let mut sum = r;
                if t + 1 < k {
                    sum += T::load_full(&suffix[(t + 1) * self.row + c..]);
                }
                let sum = sum * g * columns[v];
                if self.stream {
                    T::store_streaming(sum, &mut dst_row[c..]);
                } else {
                    T::store(sum, &mut dst_row[c..]);
                }
            }
        }
    }

    /// `block`'s rows turned into their suffix sums within the block, in place, for the
    /// windows that end in the next block.
    #[inline(always)]
    fn suffix_sums<T: Element, const V: usize>(&self, k: usize, block: &mut [T]) {
        let lanes = T::LANES;
        let mut acc = [T::splat(T::ZERO); V];
        for t in (0..k).rev() {
            let r = &mut block[t * self.row + self.c0..];
            for (v, a) in acc.iter_mut().enumerate() {
                let x = T::load_full(&r[v * lanes..]);
                *a = if t + 1 == k { x } else { *a + x };
                T::store(*a, &mut r[v * lanes..]);
            }
        }
    }
}

/// Where a window's piece of one level lies, seen from the vector of window ends at `e`:
/// ending `back` elements earlier, in the previous vector and this one (`far == false`) or
/// in the two before, moved along by `index`.
#[derive(Clone, Copy)]
struct Piece<I> {
    used: bool,
    far: bool,
    index: I,
}

/// One row of the W pass as its zero-padded level 0 `b`, read straight from the input:
/// `b[p] = row[p - pad]`, zero outside the row, times its factor and the row's where the
/// terms are scaled (`terms`: the factors stored from `pad + LANES` on, so that a vector
/// that starts before the row reads them too).
struct RowSource<'a, T: Element> {
    row: &'a [T],
    pad: usize,
    terms: (&'a [T], T::Simd),
    /// The one factor of every term where all are the same ([`Scale::UniformTerms`]). A
    /// field of its own: folded into `terms`' row factor (one field fewer), the backward
    /// pass ran 10% slower.
    uniform: T::Simd,
}

impl<T: Element> RowSource<'_, T> {
    /// `b[p .. p + LANES]` for a vector that may start before the row (`p > -LANES`).
    #[inline(always)]
    fn vector<const TERMS: u8>(&self, p: isize) -> T::Simd {
        let v = self.values(p - self.pad as isize);
        match TERMS {
            BY_POSITION => {
                let (f, t) = self.terms;
                v * T::load_full(&f[(p + T::LANES as isize) as usize..]) * t
            }
            UNIFORM => v * self.uniform,
            _ => v,
        }
    }

    /// `row[i .. i + LANES]` with zeros outside the row. Only a row's first and last
    /// vectors reach outside it: the row's own first or last vector moved along by one
    /// permute.
    #[inline(always)]
    fn values(&self, i: isize) -> T::Simd {
        let (row, zero) = (self.row, T::splat(T::ZERO));
        let (n, lanes) = (row.len() as isize, T::LANES as isize);
        if i >= 0 && i + lanes <= n {
            return T::load_full(&row[i as usize..]);
        }
        if i >= n || i + lanes <= 0 {
            return zero;
        }
        if i < 0 {
            // `T::load` fills lanes past a short row with zeros.
            return T::slide_by(zero, T::load(row), T::slide_index((lanes + i) as usize));
        }
        if n >= lanes {
            let last = T::load_full(&row[(n - lanes) as usize..]);
            return T::slide_by(last, zero, T::slide_index((i + lanes - n) as usize));
        }
        T::load(&row[i as usize..])
    }
}

/// The W sums of one row for a window `k < 2 * LANES`, every level of the doubling in
/// registers. With sums that end at each element, `u_1 = b` and `u_{2m}[e] = u_m[e] +
/// u_m[e - m]`, the window of output `o` (ending at `e = o + k - 1`) adds one piece per set
/// bit of `k`, each ending where the next larger one starts. Going along the row from its
/// start, a vector's levels come from it and the previous vector's (a permute of the two,
/// kept from the step before), and each piece is a permute of two consecutive vectors of
/// its level: the row is read once, in order, and nothing but the sums goes to memory.
#[inline(always)]
fn row_sums<T: Element, const R: usize, const N: usize, const TERMS: u8>(
    k: usize,
    srcs: &[RowSource<'_, T>; N],
    outs: [&mut [T]; N],
) {
    let lanes = T::LANES;
    debug_assert!(
        k < 2 * lanes,
        "window {k} is not this module's (see `applies`)"
    );
    let zero = T::splat(T::ZERO);
    // Made again for every row on purpose: made once per plane and passed in (by reference
    // or copied), the pass ran 7-10% slower in cache.
    let mut pieces = [Piece {
        used: false,
        far: false,
        index: T::slide_index(0),
    }; 5];
    // The top level's piece ends at the window's end: it is the level itself.
    debug_assert!(k >> R == 1, "window {k} has its top bit at level {R}");
    let mut back = 1 << R;
    for l in (0..R).rev() {
        if k & (1 << l) != 0 {
            pieces[l] = Piece {
                used: true,
                far: back > lanes,
                index: T::slide_index(if back > lanes {
                    2 * lanes - back
                } else {
                    lanes - back
                }),
            };
            back += 1 << l;
        }
    }
    // Per row, the levels of the previous vector (`prev`) and the one before (`pprev`);
    // zeros before the first, which starts at or before position 0 (all zeros before it).
    let mut prev = [[zero; 5]; N];
    let mut pprev = [[zero; 5]; N];
    let add_piece = |acc: &mut T::Simd,
                     l: usize,
                     cur: &[T::Simd; 5],
                     prev: &[T::Simd; 5],
                     pprev: &[T::Simd; 5]| {
        let p = pieces[l];
        if p.used {
            *acc += if p.far {
                T::slide_by(pprev[l], prev[l], p.index)
            } else {
                T::slide_by(prev[l], cur[l], p.index)
            };
        }
    };
    let first_end = k - 1;
    let warm = first_end.div_ceil(lanes);
    let len = outs[0].len();
    for q in 0..warm + len.div_ceil(lanes) {
        let p = (q * lanes) as isize - (warm * lanes) as isize + first_end as isize;
        let mut cur = [[zero; 5]; N];
        for r in 0..N {
            let (cur, prev) = (&mut cur[r], &prev[r]);
            cur[0] = srcs[r].vector::<TERMS>(p);
            if R >= 1 {
                cur[1] = cur[0] + T::slide_back::<1>(prev[0], cur[0]);
            }
            if R >= 2 {
                cur[2] = cur[1] + T::slide_back::<2>(prev[1], cur[1]);
            }
            if R >= 3 {
                cur[3] = cur[2] + T::slide_back::<4>(prev[2], cur[2]);
            }
            if R >= 4 {
                cur[4] = cur[3] + T::slide_back::<8>(prev[3], cur[3]);
            }
        }
        if q >= warm {
            let o = (q - warm) * lanes;
            for r in 0..N {
                let mut acc = cur[r][R];
                for l in 0..R {
                    add_piece(&mut acc, l, &cur[r], &prev[r], &pprev[r]);
                }
                T::store(acc, &mut outs[r][o..]);
            }
        }
        pprev = prev;
        prev = cur;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PoolSpec;

    /// `len` elements of a buffer from a 64-byte boundary, so that streaming stores apply.
    fn aligned<T: Element>(buf: &mut [T], len: usize) -> &mut [T] {
        let skip = buf.as_ptr().align_offset(64);
        &mut buf[skip..skip + len]
    }

    /// Streaming stores write what plain stores write, bit for bit, forward and backward,
    /// with rows that end inside a vector and rows of whole vectors.
    fn streaming_matches_plain<T: Element>() {
        let mut ran = 0;
        // Miri interprets every instruction (and has no streaming stores): one short plane.
        let (channels, rows) = if cfg!(miri) { (1, 3) } else { (3, 11) };
        for (w, k) in [(37usize, 5usize), (64, 15), (50, 3), (40, 7)] {
            let pool = PoolSpec::new(1, channels, [rows, w], [k.min(rows), k])
                .with_stride([1, 1])
                .with_padding([k.min(rows) / 2, k / 2])
                .build()
                .unwrap();
            let s = &pool.shape;
            // Windows of two vectors and wider are not this module's (8-lane f32 builds).
            if !applies::<T>(s) {
                continue;
            }
            ran += 1;
            let x: Vec<T> = (0..s.input_len)
                .map(|i| T::from_usize(i * 7919 % 1009) / T::from_usize(1009))
                .collect();
            let mut scratch = vec![T::ZERO; scratch_len::<T>(s)];
            for (kind, backward) in [(PoolKind::Avg, false), (PoolKind::Sum, true)] {
                let (src_len, dst_len) = if backward {
                    (s.output_len, s.input_len)
                } else {
                    (s.input_len, s.output_len)
                };
                let mut outs = [vec![T::NAN; dst_len + 64], vec![T::NAN; dst_len + 64]];
                for (stream, out) in [false, true].into_iter().zip(&mut outs) {
                    let dst = aligned(out, dst_len);
                    run(s, kind, backward, stream, &x[..src_len], dst, &mut scratch);
                }
                let [plain, streamed] = outs.map(|mut o| aligned(&mut o, dst_len).to_vec());
                assert!(
                    plain
                        .iter()
                        .zip(&streamed)
                        .all(|(a, b)| a.to_f64().to_bits() == b.to_f64().to_bits()),
                    "w {w} k {k} backward {backward}"
                );
            }
        }
        assert!(ran >= 2, "{ran} shapes for {}", T::NAME);
    }

    #[test]
    fn streaming_stores_write_the_same() {
        streaming_matches_plain::<f32>();
        streaming_matches_plain::<f64>();
    }

    #[test]
    fn levels_cover_the_highest_bit() {
        assert_eq!(doublings(1), 1);
        assert_eq!(doublings(2), 2);
        assert_eq!(doublings(3), 2);
        assert_eq!(doublings(15), 4);
        assert_eq!(doublings(16), 5);
        assert_eq!(doublings(31), 5);
    }

    #[test]
    fn transposed_axis_swaps_extents_and_mirrors_the_padding() {
        let a = Axis {
            input: 10,
            output: 8,
            kernel: 5,
            stride: 1,
            dilation: 1,
            pad_lo: 1,
        };
        let t = transposed(&a);
        assert_eq!((t.input, t.output, t.kernel, t.pad_lo), (8, 10, 5, 3));
    }
}
