//! Depthwise 3 x 3 convolution with stride and dilation 1 and at most one element of padding
//! on each side, read straight from the input plane: MobileNet's stride-1 depthwise layers,
//! their input gradient as a forward pass of the flipped kernel, and their weight gradient.
//!
//! The general depthwise path ([`super::depthwise`]) first copies each plane into a
//! zero-padded buffer; on 56 x 56 planes that copy took a third of the time of the whole
//! pass. Here the padding is never materialised:
//!
//! - along H, a window row above or below the input is skipped (its products are zero);
//! - along W, output vector `o..o + L` reads input columns `o + kw - pad` through tap `kw`, a
//!   load from the input row. Only a row's first vector (its left tap reads the previous
//!   row's last element in lane 0) and its last (its right taps read the next row's first
//!   ones) load columns outside the row; a select with a mask made once a block zeroes them,
//!   and these two vectors go together, apart from the inner ones, which need no masks.
//!
//! `R` output rows are computed together, each input vector loaded once for the up to three
//! of them whose windows hold it: `(R + 2) * 3` loads per `R * 9` multiply-adds. Loading
//! every tap of every output row takes nine loads per output vector, and the loads, not the
//! multiply-adds, set the pace. On 56 x 56 planes (Zen 4, one thread) a plane takes 1.0 us
//! against 2.1 through the padded copy (1.25 while the edge vectors loaded each tap apart).
//!
//! Products with the padding are skipped, not computed as `w * 0`: where a weight is not
//! finite PyTorch's NaN at the outputs that meet padding would be lost, so such kernels take
//! the padded path, and so do weight gradients of planes whose output gradients are not
//! finite ([`applies`] is about geometry; callers check the values).
//!
//! The stride-2 layers' input gradient is here too ([`backward_input_stride_2`]): by the
//! parity of input rows and columns, each a small correlation of the output gradient.

use super::geometry::ConvShape;
use crate::Element;
use crate::element::MAX_LANES;
use crate::window::Axis;

/// Output rows computed together.
const ROWS: usize = 4;

/// Inner output vectors per row computed together.
const RUN: usize = 4;

/// A 3 x 3 kernel's weights, each broadcast to a vector, in row-major tap order.
pub(super) type Taps<T> = [<T as Element>::Simd; 9];

/// The broadcast weights of one 3 x 3 kernel `w_k` (9 elements).
pub(super) fn taps<T: Element>(w_k: &[T]) -> Taps<T> {
    core::array::from_fn(|t| T::splat(w_k[t]))
}

/// Whether a geometry takes this path: one input channel per group, a 2-D 3 x 3 window with
/// stride and dilation 1 and padding of at most 1 on each side, output rows of at least a
/// vector (shorter rows are better served by the depthwise path's flat layout).
pub(super) fn applies<T: Element>(s: &ConvShape) -> bool {
    let [az, ay, ax] = s.axes;
    // Padding after the input is `output + 2 - input - pad_lo`.
    let plain = |a: &Axis| {
        a.kernel == 3
            && a.stride == 1
            && a.dilation == 1
            && a.pad_lo <= 1
            && a.output < a.input + a.pad_lo
    };
    s.cg == 1
        && az.input == 1
        && az.output == 1
        && az.kernel == 1
        && plain(&ay)
        && plain(&ax)
        && ax.output >= T::LANES
}

/// One output plane `y_k` from the input plane at `x[at..]` (`x` is the whole input, so that
/// loads near the plane's ends may read its neighbours' elements, which are masked off).
pub(super) fn forward_plane<T: Element>(
    s: &ConvShape,
    x: &[T],
    at: usize,
    w: &Taps<T>,
    b: T,
    y_k: &mut [T],
) {
    let [_, ay, ax] = s.axes;
    let l = T::LANES;
    // Only a row's first vector (with left padding) and its last can be other than inner (an
    // output past the row's end would need more padding than one); they read columns outside
    // the row, whose lanes are zeroed, and go together: two vectors of accumulators rather
    // than one.
    let vectors = ax.output.div_ceil(l);
    let left = !is_inner::<T>(&ax, 0);
    let right = vectors > 1 && !is_inner::<T>(&ax, (vectors - 1) * l);
    let inner = usize::from(left)..vectors - usize::from(right);
    let last = (vectors - 1) * l;
    let mut oh = 0;
    while oh < ay.output {
        let rows = (ay.output - oh).min(ROWS);
        macro_rules! block {
            ($u:literal, $edge:literal, $cols:expr, $lanes:expr) => {{
                let block = Block::<T, $u> {
                    at,
                    oh,
                    cols: $cols,
                    lanes: $lanes,
                    b,
                };
                match rows {
                    4 => block_rows::<T, $u, 4, $edge>(s, x, w, block, y_k),
                    3 => block_rows::<T, $u, 3, $edge>(s, x, w, block, y_k),
                    2 => block_rows::<T, $u, 2, $edge>(s, x, w, block, y_k),
                    _ => block_rows::<T, $u, 1, $edge>(s, x, w, block, y_k),
                }
            }};
        }
        // Inner runs of up to RUN vectors, as even as they come.
        let mut v = inner.start;
        while v < inner.end {
            let n = (inner.end - v).div_ceil((inner.end - v).div_ceil(RUN));
            let c = v * l;
            match n {
                4 => block!(4, false, [c, c + l, c + 2 * l, c + 3 * l], l),
                3 => block!(3, false, [c, c + l, c + 2 * l], l),
                2 => block!(2, false, [c, c + l], l),
                _ => block!(1, false, [c], l),
            }
            v += n;
        }
        match (left, right) {
            (true, true) => block!(2, true, [0, last], ax.output - last),
            (true, false) => block!(1, true, [0], ax.output.min(l)),
            (false, true) => block!(1, true, [last], ax.output - last),
            (false, false) => {}
        }
        oh += rows;
    }
}

/// Whether the vector of outputs from column `c` is inner: all its lanes are outputs and all
/// its taps read inside the row (columns `c - pad` to `c + L + 1 - pad`), so it needs no mask.
fn is_inner<T: Element>(ax: &Axis, c: usize) -> bool {
    let l = T::LANES;
    c >= ax.pad_lo && c + l <= ax.output && c + l + 1 < ax.input + ax.pad_lo
}

/// Where a block of outputs lies: output rows from `oh`, vectors of outputs from columns
/// `cols` in each (the last has `lanes` outputs), of the plane at input offset `at`, starting
/// from bias `b`.
#[derive(Clone, Copy)]
struct Block<T, const U: usize> {
    at: usize,
    oh: usize,
    cols: [usize; U],
    lanes: usize,
    b: T,
}

/// `U` vectors of `R` output rows; `EDGE`: vectors whose taps may read outside the input row
/// (those lanes are zeroed).
#[inline(always)]
fn block_rows<T: Element, const U: usize, const R: usize, const EDGE: bool>(
    s: &ConvShape,
    x: &[T],
    w: &Taps<T>,
    block: Block<T, U>,
    y_k: &mut [T],
) {
    let [_, ay, ax] = s.axes;
    let l = T::LANES;
    let edges = EDGE.then(|| block.cols.map(|c| Edges::<T>::of(&ax, c, l)));
    let mut acc = [[T::splat(block.b); U]; R];
    // Input row `block.oh + j - pad` is window row `j - r` of output row `r`. The rows go one
    // by one with a constant `j`: the compiler does not unroll a loop over them (its body is
    // large), and which accumulators a vector feeds must be known statically.
    macro_rules! feed {
        ($($j:literal)*) => {$(
            if $j < R + 2 {
                let ih = (block.oh + $j).checked_sub(ay.pad_lo).filter(|&ih| ih < ay.input);
                if let Some(ih) = ih {
                    // Where output column 0's left tap is, in the input (wrapped below 0
                    // where that is the left padding of the input's first row).
                    let row = (block.at + ih * ax.input).wrapping_sub(ax.pad_lo);
                    acc = feed_row::<T, U, R>($j, x, row, &block.cols, edges.as_ref(), w, acc);
                }
            }
        )*};
    }
    feed!(0 1 2 3 4 5);
    for (r, acc_r) in acc.iter().enumerate() {
        let row = (block.oh + r) * ax.output;
        for (u, (a, &c)) in acc_r.iter().zip(&block.cols).enumerate() {
            let n = if u == U - 1 { block.lanes } else { l };
            T::store(*a, &mut y_k[row + c..][..n]);
        }
    }
}

/// Which lanes of an edge vector (outputs from column `c`) read inside the input row, through
/// taps 0, 1, 2, among its first `valid` (a mask for [`Element::select`]).
struct Edges<T: Element> {
    inside: [T::Simd; 3],
}

impl<T: Element> Edges<T> {
    fn of(ax: &Axis, c: usize, valid: usize) -> Self {
        // Tap `kw` reads columns from `c + kw - pad`: lanes from `pad - c - kw` are at or
        // past column 0, and those below `input + pad - c - kw` are before the row's end.
        let inside = |kw: usize| {
            let lo = ax.pad_lo.saturating_sub(c + kw);
            let hi = (ax.input + ax.pad_lo).saturating_sub(c + kw).min(valid);
            T::lane_mask(lo, hi)
        };
        Edges {
            inside: [inside(0), inside(1), inside(2)],
        }
    }
}

/// Input row `j` of a block into the accumulators of the output rows whose windows hold it;
/// `x[row + c..]` is where output column `c` reads through its left tap. `edges`: the lanes
/// of each vector inside the row.
#[inline(always)]
fn feed_row<T: Element, const U: usize, const R: usize>(
    j: usize,
    x: &[T],
    row: usize,
    cols: &[usize; U],
    edges: Option<&[Edges<T>; U]>,
    w: &Taps<T>,
    mut acc: [[T::Simd; U]; R],
) -> [[T::Simd; U]; R] {
    let l = T::LANES;
    // Inner vectors are consecutive and inside the row: one slice for all their loads.
    let inner = match edges {
        None => {
            let from = row.wrapping_add(cols[0]);
            &x[from..from + U * l + 2]
        }
        Some(_) => &[],
    };
    let mut edge = [[T::splat(T::ZERO); 3]; U];
    if let Some(e) = edges {
        for (u, taps) in edge.iter_mut().enumerate() {
            *taps = edge_taps(x, row.wrapping_add(cols[u]), &e[u]);
        }
    }
    for kw in 0..3 {
        // A loop rather than `array::from_fn`, which the compiler declined to inline.
        let mut v = [T::splat(T::ZERO); U];
        for (u, v) in v.iter_mut().enumerate() {
            *v = match edges {
                None => T::load_full(&inner[u * l + kw..][..l]),
                Some(_) => edge[u][kw],
            };
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            if r <= j && j - r < 3 {
                let wv = w[(j - r) * 3 + kw];
                for (a, &xv) in acc_r.iter_mut().zip(&v) {
                    *a = T::mul_add(xv, wv, *a);
                }
            }
        }
    }
    acc
}

/// The three taps of an edge vector whose left tap reads from `x[from..]` (`from` wrapped
/// below 0 where that is the left padding of the first row of `x`), their lanes outside the
/// row zero. All three from one bounds check, straight into registers: a tap at a time, the
/// two ways of loading met through the stack (a store and a reload per tap, which made the
/// edge vectors of 56-wide rows cost more than the inner ones).
#[inline(always)]
fn edge_taps<T: Element>(x: &[T], from: usize, edges: &Edges<T>) -> [T::Simd; 3] {
    match x.get(from..from.wrapping_add(T::LANES + 2)) {
        Some(src) => core::array::from_fn(|kw| {
            T::select(
                edges.inside[kw],
                T::load_full(&src[kw..][..T::LANES]),
                T::splat(T::ZERO),
            )
        }),
        None => edge_taps_short(x, from, edges),
    }
}

/// [`edge_taps`] near the ends of `x`, where a tap's vector would read past them.
#[cold]
#[inline(never)]
fn edge_taps_short<T: Element>(x: &[T], from: usize, edges: &Edges<T>) -> [T::Simd; 3] {
    core::array::from_fn(|kw| {
        let v = load_short(x, from.wrapping_add(kw));
        T::select(edges.inside[kw], v, T::splat(T::ZERO))
    })
}

/// `dw_k[t] += sum_o dy_k[o] * x[o + t - pad]` for the nine taps `t` of one output channel,
/// whose input plane is `x[at..]`: the output gradient of every window row and column meets
/// the input it multiplied, read straight from the input as in the forward pass, `ROWS`
/// output rows a vector at a time (each input vector loaded once for the rows it meets), one
/// accumulator per tap. Products with the padding are skipped: the caller sends only output
/// gradients that are all finite (`inf * 0` must stay NaN, as in PyTorch, where the padded
/// path multiplies it).
pub(super) fn backward_weight_plane<T: Element>(
    s: &ConvShape,
    x: &[T],
    at: usize,
    dy_k: &[T],
    dw_k: &mut [T],
) {
    let [_, ay, ax] = s.axes;
    let l = T::LANES;
    let mut acc = [T::splat(T::ZERO); 9];
    let mut oh = 0;
    while oh < ay.output {
        let rows = (ay.output - oh).min(ROWS);
        for c in (0..ax.output).step_by(l) {
            let strip = Strip { at, oh, c };
            acc = match (rows, is_inner::<T>(&ax, c)) {
                (4, true) => weight_strip::<T, 4, false>(s, x, dy_k, strip, acc),
                (3, true) => weight_strip::<T, 3, false>(s, x, dy_k, strip, acc),
                (2, true) => weight_strip::<T, 2, false>(s, x, dy_k, strip, acc),
                (_, true) => weight_strip::<T, 1, false>(s, x, dy_k, strip, acc),
                (4, false) => weight_strip::<T, 4, true>(s, x, dy_k, strip, acc),
                (3, false) => weight_strip::<T, 3, true>(s, x, dy_k, strip, acc),
                (2, false) => weight_strip::<T, 2, true>(s, x, dy_k, strip, acc),
                (_, false) => weight_strip::<T, 1, true>(s, x, dy_k, strip, acc),
            };
        }
        oh += rows;
    }
    for (d, a) in dw_k.iter_mut().zip(acc) {
        *d += T::reduce_add(a);
    }
}

/// One vector of output columns from `c`, output rows from `oh`, of the plane at `x[at..]`.
#[derive(Clone, Copy)]
struct Strip {
    at: usize,
    oh: usize,
    c: usize,
}

/// The weight gradient's products of `R` output rows of one vector (`EDGE`: the input's lanes
/// outside its row, or past the outputs, zeroed).
#[inline(always)]
fn weight_strip<T: Element, const R: usize, const EDGE: bool>(
    s: &ConvShape,
    x: &[T],
    dy_k: &[T],
    strip: Strip,
    mut acc: [T::Simd; 9],
) -> [T::Simd; 9] {
    let [_, ay, ax] = s.axes;
    let l = T::LANES;
    let valid = (ax.output - strip.c).min(l);
    // The input's lanes past the outputs are zeroed with those outside the row; the output
    // gradient's there are the next row's (finite, as the caller checked) or zero past the
    // plane, so their products are zero.
    let edges = EDGE.then(|| Edges::<T>::of(&ax, strip.c, valid));
    let dy: [T::Simd; R] = core::array::from_fn(|r| {
        let from = (strip.oh + r) * ax.output + strip.c;
        match EDGE {
            false => T::load_full(&dy_k[from..from + l]),
            true => load_at(dy_k, from),
        }
    });
    // As in the forward pass, rows one by one with a constant `j`: input row
    // `oh + j - pad` is window row `j - r` of output row `r`.
    macro_rules! feed {
        ($($j:literal)*) => {$(
            if $j < R + 2 {
                let ih = (strip.oh + $j).checked_sub(ay.pad_lo).filter(|&ih| ih < ay.input);
                if let Some(ih) = ih {
                    let from = (strip.at + ih * ax.input + strip.c).wrapping_sub(ax.pad_lo);
                    let taps: [T::Simd; 3] = match edges.as_ref() {
                        None => {
                            let src = &x[from..from + l + 2];
                            [0, 1, 2].map(|kw| T::load_full(&src[kw..][..l]))
                        }
                        Some(e) => edge_taps(x, from, e),
                    };
                    for (r, &g) in dy.iter().enumerate() {
                        if r <= $j && $j - r < 3 {
                            for (kw, &xv) in taps.iter().enumerate() {
                                let t = ($j - r) * 3 + kw;
                                acc[t] = T::mul_add(g, xv, acc[t]);
                            }
                        }
                    }
                }
            }
        )*};
    }
    feed!(0 1 2 3 4 5);
    acc
}

/// Zero, then the first `LANES - 1` elements of `x`: the left tap of the first vector of the
/// first plane's first row, with nothing before it to load.
#[cold]
#[inline(never)]
fn first_vector<T: Element>(x: &[T]) -> T::Simd {
    let mut lanes = [T::ZERO; MAX_LANES];
    let n = (T::LANES - 1).min(x.len());
    lanes[1..=n].copy_from_slice(&x[..n]);
    T::load(&lanes[..T::LANES])
}

/// A vector from `x[at..]`, its lanes past the end of `x` zero.
#[inline(always)]
fn load_at<T: Element>(x: &[T], at: usize) -> T::Simd {
    match x.get(at..at.wrapping_add(T::LANES)) {
        Some(v) => T::load_full(v),
        None => load_short(x, at),
    }
}

/// [`load_at`] near the ends of `x` (lanes past its end zero): one before its start (`at`
/// wrapped, the first row's left padding) or in its last row.
#[cold]
#[inline(never)]
fn load_short<T: Element>(x: &[T], at: usize) -> T::Simd {
    match x.get(at..) {
        Some(rest) => T::load(rest),
        None => first_vector(x),
    }
}

/// Whether the input gradient of a geometry takes [`backward_input_stride_2`]: depthwise with
/// one output channel per input channel, a 2-D 3 x 3 window with stride 2, dilation 1 and
/// padding 1 before the input (MobileNet's downsampling layers).
pub(super) fn applies_stride_2(s: &ConvShape) -> bool {
    let [az, ay, ax] = s.axes;
    let halving = |a: &Axis| a.kernel == 3 && a.stride == 2 && a.dilation == 1 && a.pad_lo == 1;
    s.cg == 1
        && s.kg == 1
        && az.input == 1
        && az.output == 1
        && az.kernel == 1
        && halving(&ay)
        && halving(&ax)
}

/// The input gradient `dx_c` of one channel of a [`applies_stride_2`] geometry from its output
/// gradient plane `dy[at..]` and finite weights `w_c` (a NaN weight would reach, through the
/// zeroed lanes, inputs its tap never reads), by the parity of the input's rows and columns:
///
/// - input row `2i` is read by window row 1 of output row `i`; row `2i + 1` by window row 0 of
///   output row `i + 1` and window row 2 of output row `i`;
/// - likewise input column `2j` by tap 1 of output column `j`, column `2j + 1` by tap 0 of
///   column `j + 1` and tap 2 of column `j`.
///
/// So a vector of output gradients `dy[q][j..]` and its neighbour `dy[q][j + 1..]` give the
/// even columns (`w[kh][1] dy[j]`) and the odd ones (`w[kh][0] dy[j + 1] + w[kh][2] dy[j]`)
/// of two vectors of the input row, interleaved in registers: every input gradient is
/// computed once, where adding each output's window onto the input tap after tap made
/// overlapping read-modify-writes of memory.
pub(super) fn backward_input_stride_2<T: Element>(
    s: &ConvShape,
    dy: &[T],
    at: usize,
    w_c: &[T],
    dx_c: &mut [T],
) {
    let [_, ay, ax] = s.axes;
    let l = T::LANES;
    let w = taps::<T>(w_c);
    let zero = T::splat(T::ZERO);
    for (r, dst) in dx_c.chunks_exact_mut(ax.input).enumerate() {
        // The window rows and output rows that read input row `r`.
        let i = r / 2;
        let below = |q: usize| (q < ay.output).then_some(q);
        let rows = if r % 2 == 0 {
            [(1, below(i)), (0, None)]
        } else {
            [(0, below(i + 1)), (2, below(i))]
        };
        for j in (0..ax.input.div_ceil(2)).step_by(l) {
            let (mut even, mut odd) = (zero, zero);
            for (kh, q) in rows {
                let Some(q) = q else { continue };
                let row = at + q * ax.output + j;
                // Output columns from `j` and from `j + 1`, zero from the row's end on.
                let (d, next) = if j + l < ax.output {
                    (
                        T::load_full(&dy[row..row + l]),
                        T::load_full(&dy[row + 1..row + 1 + l]),
                    )
                } else {
                    let inside = |from: usize| T::lane_mask(0, ax.output.saturating_sub(from));
                    (
                        T::select(inside(j), load_at(dy, row), zero),
                        T::select(inside(j + 1), load_at(dy, row + 1), zero),
                    )
                };
                even = T::mul_add(d, w[kh * 3 + 1], even);
                odd = T::mul_add(d, w[kh * 3 + 2], odd);
                odd = T::mul_add(next, w[kh * 3], odd);
            }
            let (lo, hi) = T::zip(even, odd);
            let c = 2 * j;
            T::store(lo, &mut dst[c..(c + l).min(ax.input)]);
            if c + l < ax.input {
                T::store(hi, &mut dst[c + l..(c + 2 * l).min(ax.input)]);
            }
        }
    }
}
