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
//! - **Along W, by loads**, where a slide is not one instruction ([`AlongW`]; AVX2 builds
//!   for `f32`, and NEON and scalar ones: `k < 2 * LANES <= 16`): each row of a block is
//!   copied, scaled, into a zero-padded row in scratch, and each output vector loads its
//!   taps unaligned from there, the window size a constant ([`sums_by_loads`]; 15 taps: 8
//!   loads and 8 adds per 8 outputs, the previous vector's 8 taps reused).
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
//!
//! With AVX2 (AMD EPYC Zen 3, one thread) doubling took 1.3 ns an element, in L2 as from
//! memory: each slide is four instructions, and two rows' levels spilled from 16 registers.
//! By loads, with the H pass's windows compiled for whole strips: n1 c4 in L2 0.104 ->
//! 0.043 ms each way; n8 c64 9.5 -> 7.4-8.0 ms (PyTorch 320 ms backward), two threads
//! 8.0 -> 4.2-5.2 ms. At n8 c64 the time is now the memory's as much as the instructions'
//! (5.5 ms of them at the L2 rate; 51 MB at ~12.5 GB/s is 4.1 ms). Software prefetch of the
//! next block's rows, all at the block's start, gained 5% on one thread and nothing on two
//! (not kept); one row of them per row summed (`prefetch_next` in [`plane`]), 12-15% on one thread and
//! 7-12% on two (in one process, alternated with none; AVX-512's slides prefetch the same
//! way, not measured there). Adding each window's taps in two chains rather than one:
//! nothing. Neither the W pass's strip (2, 4 or 8 vectors) nor the padded rows' offsets
//! from the block's (a test for false store-to-load aliasing) changed the time. Taps as
//! constant slides of aligned vectors rather than unaligned loads (`vperm2f128` and in-lane
//! byte aligns, which the compiler turned into `vshufps` pairs) ran 10% slower in L2.
//! Splitting the planes into more parts than threads made each part's output too small to
//! stream ([`streams`] decides per call): 30% slower.

use super::PoolKind;
use super::geometry::PoolShape;
use super::prefix_sum::average_factor;
use crate::Element;
use crate::element::{layout_len, split};
use crate::element::{prefetch_span, streams};
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
    /// One zero-padded row of the W pass's terms (see [`row_sums_by_loads`]); the scratch
    /// holds two.
    padded: usize,
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
            padded: row.saturating_add((STRIP_W + 2) * T::LANES),
        }
    }

    /// Buffer lengths in the order [`Buffers::split`] takes them.
    fn lens(&self) -> [usize; 5] {
        let rows = self.block.saturating_mul(self.row);
        let padded = self.padded.saturating_mul(2);
        [rows, rows, self.w_factors, self.h_factors, padded]
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
    /// Two rows of terms, zero-padded (a ring: one summed while the next is padded).
    padded: &'a mut [T],
}

impl<'a, T: Element> Buffers<'a, T> {
    /// Every buffer on a vector boundary (see [`split`]).
    fn split(scratch: &'a mut [T], layout: &Layout) -> Self {
        let [block, suffix, w_factors, h_factors, padded] = split(scratch, layout.lens());
        Buffers {
            block,
            suffix,
            w_factors,
            h_factors,
            padded,
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
    run(
        s,
        kind,
        false,
        Method::new::<T>(s.output_len),
        x,
        y,
        scratch,
    );
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
    run(
        s,
        kind,
        true,
        Method::new::<T>(s.input_len),
        dy,
        dx,
        scratch,
    );
}

/// How a call runs.
#[derive(Clone, Copy)]
struct Method {
    /// The outputs written past the caches (see [`streams`]).
    stream: bool,
    /// The W pass's way.
    along_w: AlongW,
}

impl Method {
    /// The fastest for an output of `len` elements.
    fn new<T: Element>(len: usize) -> Self {
        Method {
            stream: streams::<T>(len),
            along_w: AlongW::for_target::<T>(),
        }
    }
}

fn run<T: Element>(
    s: &PoolShape,
    kind: PoolKind,
    backward: bool,
    method: Method,
    src: &[T],
    dst: &mut [T],
    scratch: &mut [T],
) {
    let (h, w) = pass_axes(s, backward);
    let layout = Layout::new::<T>(&h, &w);
    let mut buf = Buffers::split(scratch, &layout);
    if method.along_w == AlongW::Loads {
        // The padded rows' margins, which `pad_row` never writes.
        buf.padded.fill(T::ZERO);
    }
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
        plane(&h, &w, scale, method, p_src, p_dst, &mut buf, &layout);
    }
    if method.stream {
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
    method: Method,
    src: &[T],
    dst: &mut [T],
    buf: &mut Buffers<'_, T>,
    layout: &Layout,
) {
    let (k, cols, row, stream) = (h.kernel, w.output, layout.row, method.stream);
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
        // The next block's row `t` (in the next plane past this one's end: planes follow
        // one another in memory), asked for while this block's row `t` is summed. The
        // block reads its rows in a burst and then computes on them for a while, which the
        // hardware's stream prefetch did not cover: one thread, n8 c64 112x112 15x15
        // (AMD Zen 3), 8.7 -> 7.3 ms backward, 9.2 -> 7.5 forward; two threads 5.5 -> 4.9.
        let prefetch_next = |t: usize| {
            let i = (b + 1) * k + t - h.pad_lo;
            prefetch_span(src.as_ptr().wrapping_add(i.wrapping_mul(w.input)), w.input);
        };
        if method.along_w == AlongW::Loads {
            // Each row padded one row ahead of its sums, in a ring of two: the sums' unaligned
            // loads then find the row in the cache rather than half-forwarded from pending
            // stores, and the ring stays in L1 with the block, its suffix sums and the rows
            // coming in (padding the whole block first took 15 rows of scratch, and measured
            // 2-7% slower: n8 c64 112x112 15x15, Zen 3, one and two threads). Step `t` pads
            // row `t` and sums row `t - 1`: one place for each, as the padding is inlined for
            // every scaling mode.
            let padded = layout.padded;
            for t in lo..=hi {
                let (even, odd) = buf.padded.split_at_mut(padded);
                let (this, last) = if (t - lo) % 2 == 0 {
                    (even, odd)
                } else {
                    (odd, even)
                };
                if t < hi {
                    pad_row_by(scale, &source(t), &mut this[..padded]);
                }
                if t > lo {
                    let s = t - 1;
                    prefetch_next(s);
                    row_sums_by_loads(w.kernel, &last[..padded], &mut buf.block[s * row..][..row]);
                }
            }
        } else {
            // Two rows at a time: twice the independent work per step, and the step's
            // bookkeeping shared (1.1-1.25x over one row, even where the levels of two
            // rows do not all fit in registers).
            let pairs = (hi - lo) / 2;
            let mut rows = buf.block[lo * row..hi * row].chunks_exact_mut(row);
            for t in (lo..lo + 2 * pairs).step_by(2) {
                let (Some(a), Some(c)) = (rows.next(), rows.next()) else {
                    break;
                };
                prefetch_next(t);
                prefetch_next(t + 1);
                let srcs = [source(t), source(t + 1)];
                row_sums_by::<T, 2>(scale, w.kernel, &srcs, [a, c]);
            }
            for (t, out) in (lo + 2 * pairs..hi).zip(rows) {
                prefetch_next(t);
                row_sums_by::<T, 1>(scale, w.kernel, &[source(t)], [out]);
            }
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
            // count known only at run time kept them in memory), and whole strips of
            // outputs stored without a check per vector.
            let n = ((row - c0) / T::LANES).min(STRIP);
            let whole = c0 + n * T::LANES <= cols;
            match (n, scale == Scale::Sums, whole) {
                (STRIP, false, true) => strip.pass::<T, STRIP, false, true>(b, h, last, buf, dst),
                (STRIP, true, true) => strip.pass::<T, STRIP, true, true>(b, h, last, buf, dst),
                (1, false, _) => strip.pass::<T, 1, false, false>(b, h, last, buf, dst),
                (2, false, _) => strip.pass::<T, 2, false, false>(b, h, last, buf, dst),
                (3, false, _) => strip.pass::<T, 3, false, false>(b, h, last, buf, dst),
                (_, false, _) => strip.pass::<T, STRIP, false, false>(b, h, last, buf, dst),
                (1, true, _) => strip.pass::<T, 1, true, false>(b, h, last, buf, dst),
                (2, true, _) => strip.pass::<T, 2, true, false>(b, h, last, buf, dst),
                (3, true, _) => strip.pass::<T, 3, true, false>(b, h, last, buf, dst),
                (_, true, _) => strip.pass::<T, STRIP, true, false>(b, h, last, buf, dst),
            }
        }
        if last {
            break;
        }
        core::mem::swap(&mut buf.block, &mut buf.suffix);
    }
}

/// How the W pass sums a row's windows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum AlongW {
    /// By doubling in registers, each level and piece a two-source permute ([`row_sums`]):
    /// where such a permute is one instruction (AVX-512).
    Slides,
    /// By unaligned loads of every tap from a zero-padded copy of the row
    /// ([`row_sums_by_loads`]): elsewhere, where each permute is several (AVX2: two
    /// `vpermps`, a shift and a blend) and loads are cheap.
    Loads,
}

impl AlongW {
    /// The faster of the two for `T`'s vectors on this target.
    fn for_target<T: Element>() -> Self {
        if T::ONE_PERMUTE_SLIDES || !Self::loads_take::<T>() {
            AlongW::Slides
        } else {
            AlongW::Loads
        }
    }

    /// Whether [`AlongW::Loads`] takes every window of this module for `T`: its dispatch
    /// names windows up to 15 taps (`k < 2 * LANES` with `LANES <= 8`; 16-lane vectors,
    /// AVX-512's `f32`, allow 31 and slide in one instruction anyway).
    fn loads_take<T: Element>() -> bool {
        T::LANES <= 8
    }
}

/// `dst` (the padded row's whole vectors) = level 0 of `src` from its padding on, scaled as
/// `scale` says; `dst`'s other elements are left as they are (zero: see [`run`]).
#[inline(always)]
fn pad_row_by<T: Element>(scale: Scale, src: &RowSource<'_, T>, dst: &mut [T]) {
    match scale {
        Scale::Terms => pad_row::<T, BY_POSITION>(src, dst),
        Scale::UniformTerms => pad_row::<T, UNIFORM>(src, dst),
        Scale::None | Scale::Sums => pad_row::<T, PLAIN>(src, dst),
    }
}

/// [`pad_row_by`] for a scaling mode: the row's vectors copied straight from the input
/// (its last vector ending at the row's end, overlapping the one before), with no zero-
/// filled lanes to build. A row shorter than a vector goes through [`RowSource::vector`].
#[inline(always)]
fn pad_row<T: Element, const TERMS: u8>(src: &RowSource<'_, T>, dst: &mut [T]) {
    let (n, lanes, pad) = (src.row.len(), T::LANES, src.pad);
    if n < lanes {
        // The vectors that hold the row (past them the margin stays zero).
        let holding = (pad + n).div_ceil(lanes);
        for (p, d) in dst.chunks_exact_mut(lanes).take(holding).enumerate() {
            T::store(src.vector::<TERMS>((p * lanes) as isize), d);
        }
        return;
    }
    let body = &mut dst[pad..][..n];
    let term = |i: usize| {
        let v = T::load_full(&src.row[i..]);
        match TERMS {
            BY_POSITION => {
                let (f, t) = src.terms;
                v * T::load_full(&f[pad + lanes + i..]) * t
            }
            UNIFORM => v * src.uniform,
            _ => v,
        }
    };
    let mut i = 0;
    while i + lanes <= n {
        T::store(term(i), &mut body[i..]);
        i += lanes;
    }
    if i < n {
        T::store(term(n - lanes), &mut body[n - lanes..]);
    }
}

/// The W sums of one row for a window `k < 2 * LANES <= 16`, every tap an unaligned load
/// from the zero-padded row `padded` (the window of output `q` is `padded[q .. q + k]`),
/// `out` whole vectors. The window's size is a constant of the loop ([`sums_by_loads`]):
/// with a run-time count, every tap paid its loop test and two bounds checks (1.3x).
#[inline(always)]
fn row_sums_by_loads<T: Element>(k: usize, padded: &[T], out: &mut [T]) {
    debug_assert!(k < 2 * T::LANES && AlongW::loads_take::<T>(), "window {k}");
    match k {
        1 => sums_by_loads::<T, 1>(padded, out),
        2 => sums_by_loads::<T, 2>(padded, out),
        3 => sums_by_loads::<T, 3>(padded, out),
        4 => sums_by_loads::<T, 4>(padded, out),
        5 => sums_by_loads::<T, 5>(padded, out),
        6 => sums_by_loads::<T, 6>(padded, out),
        7 => sums_by_loads::<T, 7>(padded, out),
        8 => sums_by_loads::<T, 8>(padded, out),
        9 => sums_by_loads::<T, 9>(padded, out),
        10 => sums_by_loads::<T, 10>(padded, out),
        11 => sums_by_loads::<T, 11>(padded, out),
        12 => sums_by_loads::<T, 12>(padded, out),
        13 => sums_by_loads::<T, 13>(padded, out),
        14 => sums_by_loads::<T, 14>(padded, out),
        _ => sums_by_loads::<T, 15>(padded, out),
    }
}

/// Output vectors the W sums by loads compute per step.
const STRIP_W: usize = 4;

/// The sum of taps `from .. to` of output vector `v`, counted from `win`'s start, in order.
#[inline(always)]
fn tap_range<T: Element>(win: &[T], v: usize, from: usize, to: usize) -> T::Simd {
    let at = v * T::LANES;
    let mut acc = T::load_full(&win[at + from..]);
    for j in from + 1..to {
        acc += T::load_full(&win[at + j..]);
    }
    acc
}

/// [`row_sums_by_loads`] for a window of `K` taps, `STRIP_W` vectors a step (the last step
/// computes past the row, in `padded`'s margin, and stores only the row's vectors).
///
/// A window of `K <= LANES` taps is `K` loads a vector. A wider one, `K = LANES + r`, takes
/// the `LANES` taps from its start (the previous step's `whole`) and the next vector's first
/// `r` (`part`), and `whole = part + the next vector's other taps`: `LANES` loads a vector
/// (15 taps: 8 loads and 8 adds for 8 outputs, no permutes).
#[inline(always)]
fn sums_by_loads<T: Element, const K: usize>(padded: &[T], out: &mut [T]) {
    let lanes = T::LANES;
    let vectors = out.len() / lanes;
    let wide = K > lanes;
    let r = if wide { K - lanes } else { K };
    let mut carry = T::splat(T::ZERO);
    if wide {
        carry = tap_range::<T>(padded, 0, 0, lanes);
    }
    for v0 in (0..vectors).step_by(STRIP_W) {
        let win = &padded[v0 * lanes..][..(STRIP_W + 2) * lanes];
        let ahead = if wide { lanes } else { 0 };
        let part: [T::Simd; STRIP_W] =
            core::array::from_fn(|v| tap_range::<T>(&win[ahead..], v, 0, r));
        let mut sums = part;
        if wide {
            let mut whole = part;
            for (v, w) in whole.iter_mut().enumerate() {
                for j in r..lanes {
                    *w += T::load_full(&win[ahead + v * lanes + j..]);
                }
            }
            for v in 0..STRIP_W {
                let before = if v == 0 { carry } else { whole[v - 1] };
                sums[v] = before + part[v];
            }
            carry = whole[STRIP_W - 1];
        }
        let n = (vectors - v0).min(STRIP_W);
        let out = &mut out[v0 * lanes..];
        for (v, &x) in sums.iter().enumerate().take(n) {
            T::store(x, &mut out[v * lanes..]);
        }
    }
}

/// Vectors of a column strip that the H pass keeps in registers. Its streamed stores must
/// cover whole cache lines (4 `f32x8` are two): strips of 7 (a 112-wide row as 7 + 7) ran 5%
/// faster in L2 but 15% slower to memory, each strip's last line flushed half-written from
/// the write-combining buffers (n8 c64 112x112 15x15, Zen 3).
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
    /// The H pass over `V` vectors of block `b` (the forward average's factors applied
    /// where `SUMS`; every vector's outputs inside the row where `WHOLE`): its windows,
    /// then (unless it is the `last`) its suffix sums.
    #[inline(always)]
    fn pass<T: Element, const V: usize, const SUMS: bool, const WHOLE: bool>(
        &self,
        b: usize,
        h: &Axis,
        last: bool,
        buf: &mut Buffers<'_, T>,
        dst: &mut [T],
    ) {
        let factors = (&*buf.w_factors, &*buf.h_factors);
        self.windows::<T, V, SUMS, WHOLE>(b, h, buf.block, buf.suffix, factors, dst);
        if !last {
            self.suffix_sums::<T, V>(h.kernel, buf.block);
        }
    }

    /// The windows that end in block `b` (rows in `block`), with the suffix sums of block
    /// `b - 1` in `suffix`: a running sum from the block's start, in registers, plus the
    /// suffix sum at the window's start.
    #[inline(always)]
    fn windows<T: Element, const V: usize, const SUMS: bool, const WHOLE: bool>(
        &self,
        b: usize,
        h: &Axis,
        block: &[T],
        suffix: &[T],
        (w_factors, h_factors): (&[T], &[T]),
        dst: &mut [T],
    ) {
        let (k, lanes, c0) = (h.kernel, T::LANES, self.c0);
        let columns: [T::Simd; V] = core::array::from_fn(|v| {
            if SUMS {
                T::load_full(&w_factors[c0 + v * lanes..])
            } else {
                T::splat(T::ONE)
            }
        });
        let first = &block[c0..][..V * lanes];
        let mut running: [T::Simd; V] = core::array::from_fn(|v| T::load_full(&first[v * lanes..]));
        for t in 0..k {
            // The window ending at padded row `b * k + t` starts at output row
            // `b * k + t + 1 - k`: in the previous block at `t + 1`, or at this block's
            // start when `t + 1 == k`.
            if t > 0 {
                let current = &block[t * self.row + c0..][..V * lanes];
                for (v, r) in running.iter_mut().enumerate() {
                    *r += T::load_full(&current[v * lanes..]);
                }
            }
            let Some(o) = (b * k + t + 1).checked_sub(k).filter(|&o| o < h.output) else {
                continue;
            };
            let mut sums = running;
            if t + 1 < k {
                let before = &suffix[(t + 1) * self.row + c0..][..V * lanes];
                for (v, s) in sums.iter_mut().enumerate() {
                    *s += T::load_full(&before[v * lanes..]);
                }
            }
            if SUMS {
                let g = T::splat(h_factors[o]);
                for (s, &c) in sums.iter_mut().zip(&columns) {
                    *s = *s * g * c;
                }
            }
            if WHOLE {
                let out = &mut dst[o * self.cols + c0..][..V * lanes];
                for (v, &s) in sums.iter().enumerate() {
                    if self.stream {
                        T::store_streaming(s, &mut out[v * lanes..]);
                    } else {
                        T::store(s, &mut out[v * lanes..]);
                    }
                }
            } else {
                let out = &mut dst[o * self.cols..][..self.cols];
                for (v, &s) in sums.iter().enumerate() {
                    let c = c0 + v * lanes;
                    if c >= self.cols {
                        break;
                    }
                    if self.stream {
                        T::store_streaming(s, &mut out[c..]);
                    } else {
                        T::store(s, &mut out[c..]);
                    }
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

    /// Both ways along W compute the reference's sums (forward and backward; sums, uniform
    /// and per-position average factors; rows that end inside a vector, rows shorter than
    /// a vector, every window size the loads take), and streaming stores write what plain
    /// stores write, bit for bit.
    fn ways_match_the_reference<T: Element>() {
        let mut ran = 0;
        // Miri interprets every instruction (and has no streaming stores): short planes.
        let (channels, rows) = if cfg!(miri) { (1, 3) } else { (2, 11) };
        let widths: &[(usize, usize)] = if cfg!(miri) {
            &[(37, 5), (6, 3), (40, 11)]
        } else {
            &[
                (37, 5),
                (64, 15),
                (50, 3),
                (40, 7),
                (6, 3),
                (21, 9),
                (8, 8),
                (33, 1),
                (29, 13),
            ]
        };
        for &(w, k) in widths {
            for include_pad in [true, false] {
                let kh = k.min(rows);
                let pool = PoolSpec::new(1, channels, [rows, w], [kh, k])
                    .with_stride([1, 1])
                    .with_padding([kh / 2, k / 2])
                    .with_count_include_pad(include_pad)
                    .build()
                    .unwrap();
                let s = &pool.shape;
                // Windows of two vectors and wider are not this module's.
                if !applies::<T>(s) {
                    continue;
                }
                ran += 1;
                let x: Vec<T> = (0..s.input_len.max(s.output_len))
                    .map(|i| T::from_usize(i * 7919 % 1009) / T::from_usize(1009))
                    .collect();
                let mut scratch = vec![T::ZERO; scratch_len::<T>(s)];
                for (kind, backward) in [
                    (PoolKind::Avg, false),
                    (PoolKind::Sum, false),
                    (PoolKind::Avg, true),
                    (PoolKind::Sum, true),
                ] {
                    let (src_len, dst_len) = if backward {
                        (s.output_len, s.input_len)
                    } else {
                        (s.input_len, s.output_len)
                    };
                    let src = &x[..src_len];
                    let mut expected = vec![T::ZERO; dst_len];
                    if backward {
                        crate::reference::pool_backward(&pool, kind, src, None, &mut expected)
                    } else {
                        crate::reference::pool_forward(&pool, kind, src, &mut expected, None)
                    }
                    .unwrap();
                    let ways: &[AlongW] = if AlongW::loads_take::<T>() {
                        &[AlongW::Slides, AlongW::Loads]
                    } else {
                        &[AlongW::Slides]
                    };
                    for &along_w in ways {
                        let mut outs = [vec![T::NAN; dst_len + 64], vec![T::NAN; dst_len + 64]];
                        for (stream, out) in [false, true].into_iter().zip(&mut outs) {
                            let dst = aligned(out, dst_len);
                            let method = Method { stream, along_w };
                            run(s, kind, backward, method, src, dst, &mut scratch);
                        }
                        let [plain, streamed] = outs.map(|mut o| aligned(&mut o, dst_len).to_vec());
                        let case = format!(
                            "{} w {w} k {k} include_pad {include_pad} {kind:?} backward \
                             {backward} {along_w:?}",
                            T::NAME
                        );
                        assert!(
                            plain
                                .iter()
                                .zip(&streamed)
                                .all(|(a, b)| a.to_f64().to_bits() == b.to_f64().to_bits()),
                            "streamed: {case}"
                        );
                        for (i, (a, e)) in plain.iter().zip(&expected).enumerate() {
                            let (a, e) = (a.to_f64(), e.to_f64());
                            let tol = if T::NAME == "f32" { 1e-5 } else { 1e-13 };
                            assert!(
                                (a - e).abs() <= tol * e.abs().max(1.0),
                                "{case}: element {i} is {a}, expected {e}"
                            );
                        }
                    }
                }
            }
        }
        assert!(ran >= 4, "{ran} shapes for {}", T::NAME);
    }

    #[test]
    fn both_ways_along_w_match_the_reference() {
        ways_match_the_reference::<f32>();
        ways_match_the_reference::<f64>();
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
