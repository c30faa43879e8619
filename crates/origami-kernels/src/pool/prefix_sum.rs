//! `PrefixSum` pooling: every window in O(1), whatever its size.
//!
//! A box window is separable: summing (or taking the max) over a `kd x kh x kw` box is a pass
//! of 1-D windows along W, then along H over the results, then along D. Each 1-D pass uses
//! block-restarted running reductions (van Herk / Gil-Werman): cut each line into blocks of
//! `k` taps, keep for every element the reduction from its block's start (`pre`) and to its
//! block's end (`suf`); a window of `k` taps then covers the end of one block and the start of
//! the next, so
//!
//! ```text
//!   window(a .. a+k) = suf[a] (+) pre[a+k-1]          (one combine per output)
//!   | block b        | block b+1      |
//!   |     a ---------|------ a+k-1    |
//!        suf[a]          pre[a+k-1]
//! ```
//!
//! For sums this is a summed-area table that restarts every block: the running sums never
//! grow past one window's worth, so the cancellation that ruins a plain prefix sum over a
//! long `f32` row (`P[j] - P[i]` with both near `10^9`) cannot happen; the error stays that of
//! summing one window. For max it is exact, and the combine keeps PyTorch's choice of index
//! (the first maximum in row-major window order, the last NaN). Dilation `d` runs the same
//! on each residue class `m mod d` of the line. Windows clipped by the padding are covered
//! by `pre` or `suf` alone.
//!
//! The backward pass of average and sum pooling is a box sum too: upsample the (divided)
//! output gradient by the stride along an axis, then every input receives a window sum of
//! `k` taps of spacing `d` from it, again in O(1) per element.
//!
//! Scratch holds the intermediate tensors between passes and the `pre` / `suf` lines.
//! Max indices travel through the passes as values of `T`, which is exact while a channel
//! plane has at most 2^24 elements for `f32` (2^53 for `f64`).

use super::PoolKind;
use super::geometry::PoolShape;
use crate::Element;
use crate::window::Axis;

/// Whether the pass along `axis` can be skipped: a unit axis with a single-tap window. Other
/// axes whose window is a single tap still run, as a copy, because max pooling adds their
/// coordinate to the index and the average divides by their count on the way.
fn skipped(axis: &Axis) -> bool {
    axis.input == 1 && axis.output == 1 && axis.kernel == 1
}

/// Items per element: the value, and for max its index within the channel plane.
const fn width(kind: PoolKind) -> usize {
    match kind {
        PoolKind::Max => 2,
        _ => 1,
    }
}

/// The largest index of a channel plane that an element of `T` holds exactly.
pub(crate) fn max_exact_index<T: Element>() -> usize {
    let digits = if T::NAME == "f32" { 24 } else { 53 };
    // 2^53 does not fit a 32-bit usize, where every index is exact in f64 anyway.
    1usize.checked_shl(digits).unwrap_or(usize::MAX)
}

/// The blocks around axis `a` during a pass along it: `outer` (planes times the axes before
/// `a`, which hold input extents in both directions: the forward pass has not reduced them
/// yet, the backward pass has already expanded them) and `inner` (the axes after `a`, at
/// their output extents for the same reason).
fn outer_inner(s: &PoolShape, a: usize) -> (usize, usize) {
    let outer = s.axes[..a]
        .iter()
        .fold(s.planes, |p, x| p.saturating_mul(x.input));
    let inner = s.axes[a + 1..]
        .iter()
        .fold(1, |p: usize, x| p.saturating_mul(x.output));
    (outer, inner)
}

/// `(outer, line length, inner)` of the forward pass along `a`: lines of input extent.
fn forward_extents(s: &PoolShape, a: usize) -> (usize, usize, usize) {
    let (outer, inner) = outer_inner(s, a);
    (outer, s.axes[a].input, inner)
}

/// `(outer, line length, inner)` of the backward pass along `a`: lines of output extent.
fn backward_extents(s: &PoolShape, a: usize) -> (usize, usize, usize) {
    let (outer, inner) = outer_inner(s, a);
    (outer, s.axes[a].output, inner)
}

/// The window along which the backward pass of `axis` sums: over the output gradient
/// upsampled by the stride (`u[o * stride] = g[o]`), input `i` reads `k` taps of spacing `d`
/// starting at `i - ((k - 1) * d - pad)`.
fn transposed_axis(axis: &Axis) -> Axis {
    Axis {
        input: (axis.output - 1) * axis.stride + 1,
        output: axis.input,
        kernel: axis.kernel,
        stride: 1,
        dilation: axis.dilation,
        pad_lo: (axis.kernel - 1) * axis.dilation - axis.pad_lo,
    }
}

/// Elements (per item) of one intermediate tensor and of one `pre` / `suf` line set of the
/// forward passes.
fn forward_layout(s: &PoolShape) -> (usize, usize) {
    let (mut tmp, mut line) = (0, 0);
    for a in (0..3).filter(|&a| !skipped(&s.axes[a])) {
        let (outer, len, inner) = forward_extents(s, a);
        tmp = tmp.max(outer.saturating_mul(s.axes[a].output).saturating_mul(inner));
        line = line.max(len.saturating_mul(inner));
    }
    (tmp, line)
}

/// Elements of one intermediate tensor and of one line set of the backward passes.
fn backward_layout(s: &PoolShape) -> (usize, usize) {
    let (mut tmp, mut line) = (s.output_len, 0);
    for a in (0..3).filter(|&a| !skipped(&s.axes[a])) {
        let (outer, _, inner) = backward_extents(s, a);
        tmp = tmp.max(outer.saturating_mul(s.axes[a].input).saturating_mul(inner));
        line = line.max(transposed_axis(&s.axes[a]).input.saturating_mul(inner));
    }
    (tmp, line)
}

/// Elements of scratch for the forward pass of `kind`: two intermediate tensors (ping-pong)
/// and the `pre` and `suf` lines, each item `width(kind)` elements wide.
pub(crate) fn forward_scratch_len(s: &PoolShape, kind: PoolKind) -> usize {
    // Saturates: a geometry too large to hold in memory asks for more than any slice has.
    let (tmp, line) = forward_layout(s);
    width(kind).saturating_mul(tmp.saturating_add(line).saturating_mul(2))
}

/// Elements of scratch for the backward pass of average or sum pooling: two intermediate
/// tensors, the upsampled lines, and `pre` and `suf`.
pub(crate) fn backward_scratch_len(s: &PoolShape) -> usize {
    let (tmp, line) = backward_layout(s);
    tmp.saturating_mul(2).saturating_add(line.saturating_mul(3))
}

/// PyTorch's max rule as an associative combine of `[value, index]` items, `a` before `b`
/// in window order: a NaN wins over anything before it, otherwise only a strictly greater
/// value replaces the current one.
#[inline(always)]
fn combine_max<T: Element>(a: [T; 2], b: [T; 2]) -> [T; 2] {
    if b[0].is_nan() || (!a[0].is_nan() && b[0] > a[0]) {
        b
    } else {
        a
    }
}

#[inline(always)]
fn combine_sum<T: Element>(a: [T; 1], b: [T; 1]) -> [T; 1] {
    [a[0] + b[0]]
}

#[inline(always)]
fn get<T: Element, const W: usize>(buf: &[T], i: usize) -> [T; W] {
    core::array::from_fn(|j| buf[i * W + j])
}

#[inline(always)]
fn put<T: Element, const W: usize>(buf: &mut [T], i: usize, item: [T; W]) {
    buf[i * W..i * W + W].copy_from_slice(&item);
}

/// Which of the running reductions answer one output's window.
#[derive(Clone, Copy)]
enum Span {
    /// The window reads nothing.
    Empty,
    /// The window ends one block and starts the next: `suf[first] (+) pre[last]`.
    Both(usize, usize),
    /// The window starts a block: `pre[last]`.
    Pre(usize),
    /// The window ends a block or the line: `suf[first]`.
    Suf(usize),
}

/// The spans of an axis's windows, output by output. Dilation 1, the common case, is tracked
/// incrementally without a division per output; other dilations work per residue class.
struct Spans<'a> {
    axis: &'a Axis,
    o: usize,
    /// For dilation 1: the previous window's first element and its offset in its block.
    first: usize,
    offset: usize,
}

impl<'a> Spans<'a> {
    fn new(axis: &'a Axis) -> Self {
        Spans {
            axis,
            o: 0,
            first: 0,
            offset: 0,
        }
    }
}

impl Iterator for Spans<'_> {
    type Item = Span;

    #[inline(always)]
    fn next(&mut self) -> Option<Span> {
        let a = self.axis;
        if self.o >= a.output {
            return None;
        }
        let o = self.o;
        self.o += 1;
        let (Some(ta), Some(tb)) = (a.first_valid_tap(o), a.last_valid_tap(o)) else {
            return Some(Span::Empty);
        };
        let (k, d) = (a.kernel, a.dilation);
        let first = o * a.stride + ta * d - a.pad_lo;
        let last = o * a.stride + tb * d - a.pad_lo;
        let (offset, crosses) = if d == 1 {
            // `first` never decreases: advance the block offset by the step.
            self.offset += first - self.first;
            while self.offset >= k {
                self.offset -= k;
            }
            self.first = first;
            (self.offset, self.offset + (last - first) >= k)
        } else {
            let (ja, jb) = (first / d, last / d);
            (ja % k, ja / k != jb / k)
        };
        Some(if crosses {
            Span::Both(first, last)
        } else if offset == 0 {
            Span::Pre(last)
        } else {
            Span::Suf(first)
        })
    }
}

/// The 1-D window reduction along the middle axis of `[outer, axis.input, inner]`, writing
/// `[outer, axis.output, inner]`. `load(b, m, col)` reads element `m` of line `(b, col)`;
/// `store(b, o, col, item)` receives each window's reduction, or `empty` when the window
/// reads nothing.
#[allow(clippy::too_many_arguments)]
fn running_pass<T: Element, const W: usize>(
    outer: usize,
    inner: usize,
    axis: &Axis,
    pre: &mut [T],
    suf: &mut [T],
    empty: [T; W],
    combine: impl Fn([T; W], [T; W]) -> [T; W],
    load: impl Fn(usize, usize, usize) -> [T; W],
    mut store: impl FnMut(usize, usize, usize, [T; W]),
) {
    let (len, k, d) = (axis.input, axis.kernel, axis.dilation);
    for b in 0..outer {
        // Blocks of k consecutive elements of each residue class m mod d.
        for r in 0..d.min(len) {
            let class_len = (len - r).div_ceil(d);
            for j0 in (0..class_len).step_by(k) {
                let j1 = (j0 + k).min(class_len);
                for j in j0..j1 {
                    let m = r + j * d;
                    for col in 0..inner {
                        let x = load(b, m, col);
                        let item = if j == j0 {
                            x
                        } else {
                            combine(get(pre, (m - d) * inner + col), x)
                        };
                        put(pre, m * inner + col, item);
                    }
                }
                for j in (j0..j1).rev() {
                    let m = r + j * d;
                    for col in 0..inner {
                        let x = load(b, m, col);
                        let item = if j + 1 == j1 {
                            x
                        } else {
                            combine(x, get(suf, (m + d) * inner + col))
                        };
                        put(suf, m * inner + col, item);
                    }
                }
            }
        }
        for (o, span) in Spans::new(axis).enumerate() {
            for col in 0..inner {
                let item = match span {
                    Span::Empty => empty,
                    Span::Both(first, last) => {
                        combine(get(suf, first * inner + col), get(pre, last * inner + col))
                    }
                    Span::Pre(last) => get(pre, last * inner + col),
                    Span::Suf(first) => get(suf, first * inner + col),
                };
                store(b, o, col, item);
            }
        }
    }
}

/// The average's divisor is a product over the axes (or the override), so each pass divides
/// by its own axis's count for output `o`; the override is applied once, in the last pass.
/// Returns 1 for sum.
#[inline(always)]
fn average_factor<T: Element>(s: &PoolShape, kind: PoolKind, a: usize, o: usize, last: bool) -> T {
    if kind != PoolKind::Avg {
        return T::ONE;
    }
    if s.divisor_override != 0 {
        return if last {
            T::ONE / T::from_usize(s.divisor_override)
        } else {
            T::ONE
        };
    }
    let axis = &s.axes[a];
    let count = if s.count_include_pad {
        axis.taps_in_padded(o)
    } else {
        axis.taps_in_input(o)
    };
    T::ONE / T::from_usize(count)
}

/// Forward pooling of `kind` (`indices` only for max). The caller has checked that max
/// indices fit in `T` exactly.
pub(crate) fn forward<T: Element>(
    s: &PoolShape,
    kind: PoolKind,
    x: &[T],
    y: &mut [T],
    mut indices: Option<&mut [usize]>,
    scratch: &mut [T],
) {
    match kind {
        PoolKind::Max => {
            let mut sink = |i: usize, item: [T; 2]| {
                y[i] = item[0];
                if let Some(ix) = indices.as_deref_mut() {
                    // Exact: the value is an integer below 2^24 (f32) or 2^53 (f64).
                    ix[i] = item[1].to_f64() as usize;
                }
            };
            forward_passes::<T, 2>(
                s,
                x,
                scratch,
                [T::NEG_INFINITY, T::ZERO],
                combine_max,
                &mut |_, _, _, item| item,
                &mut sink,
            );
        }
        PoolKind::Sum | PoolKind::Avg => {
            let mut sink = |i: usize, item: [T; 1]| y[i] = item[0];
            let mut scale = |a: usize, o: usize, last: bool, item: [T; 1]| {
                [item[0] * average_factor::<T>(s, kind, a, o, last)]
            };
            forward_passes::<T, 1>(s, x, scratch, [T::ZERO], combine_sum, &mut scale, &mut sink);
        }
    }
}

/// Runs the forward passes W, H, D (skipping identity axes) and hands every output item to
/// `sink(flat output index, item)`.
fn forward_passes<T: Element, const W: usize>(
    s: &PoolShape,
    x: &[T],
    scratch: &mut [T],
    empty: [T; W],
    combine: impl Fn([T; W], [T; W]) -> [T; W] + Copy,
    scale: &mut impl FnMut(usize, usize, bool, [T; W]) -> [T; W],
    sink: &mut impl FnMut(usize, [T; W]),
) {
    let (tmp, line) = forward_layout(s);
    let (tmp_a, rest) = scratch.split_at_mut(tmp * W);
    let (tmp_b, rest) = rest.split_at_mut(tmp * W);
    let line = line * W;
    let (pre, rest) = rest.split_at_mut(line);
    let suf = &mut rest[..line];
    let passes: [usize; 3] = [2, 1, 0];
    let last = passes.iter().copied().rfind(|&a| !skipped(&s.axes[a]));
    let Some(last) = last else {
        // Every axis is an identity: the output is the input.
        for (i, &v) in x.iter().enumerate() {
            let mut item = empty;
            item[0] = v;
            if W == 2 {
                item[1] = T::from_usize(i % s.in_plane);
            }
            sink(i, scale(2, 0, true, item));
        }
        return;
    };
    // Index strides within a channel plane, for max.
    let plane_stride = [s.axes[1].input * s.axes[2].input, s.axes[2].input, 1];
    let mut from_input = true;
    // The current source is tmp_a when `src_is_a` (and not from the input).
    let mut src_is_a = false;
    for a in passes {
        if skipped(&s.axes[a]) {
            continue;
        }
        let (outer, len, inner) = forward_extents(s, a);
        let axis = s.axes[a];
        let out_len = axis.output;
        let index_stride = T::from_usize(plane_stride[a]);
        let (src, dst): (&[T], &mut [T]) = if src_is_a {
            (&*tmp_a, &mut *tmp_b)
        } else {
            (&*tmp_b, &mut *tmp_a)
        };
        let load = |b: usize, m: usize, col: usize| -> [T; W] {
            let i = (b * len + m) * inner + col;
            let mut item = if from_input {
                let mut it = empty;
                it[0] = x[i];
                if W == 2 {
                    it[1] = T::ZERO;
                }
                it
            } else {
                get(src, i)
            };
            if W == 2 {
                item[1] += T::from_usize(m) * index_stride;
            }
            item
        };
        let is_last = a == last;
        running_pass(
            outer,
            inner,
            &axis,
            pre,
            suf,
            empty,
            combine,
            load,
            |b, o, col, item| {
                let at = (b * out_len + o) * inner + col;
                let item = scale(a, o, is_last, item);
                if is_last {
                    sink(at, item);
                } else {
                    put(dst, at, item);
                }
            },
        );
        src_is_a = !src_is_a;
        from_input = false;
    }
}

/// Backward of average or sum pooling: `dx[i] = sum over windows o containing i of
/// dy[o] / divisor(o)` (divisor 1 for sum).
pub(crate) fn backward<T: Element>(
    s: &PoolShape,
    kind: PoolKind,
    dy: &[T],
    dx: &mut [T],
    scratch: &mut [T],
) {
    let (tmp_len, line) = backward_layout(s);
    let (tmp_a, rest) = scratch.split_at_mut(tmp_len);
    let (tmp_b, rest) = rest.split_at_mut(tmp_len);
    let (u, rest) = rest.split_at_mut(line);
    let (pre, rest) = rest.split_at_mut(line);
    let suf = &mut rest[..line];

    tmp_a[..s.output_len].copy_from_slice(dy);
    let passes: [usize; 3] = [0, 1, 2];
    let last = passes.iter().copied().rfind(|&a| !skipped(&s.axes[a]));
    let Some(last) = last else {
        let f = average_factor::<T>(s, kind, 2, 0, true);
        for (d, &g) in dx.iter_mut().zip(dy) {
            *d = g * f;
        }
        return;
    };
    let first = passes.iter().copied().find(|&a| !skipped(&s.axes[a]));
    let mut src_is_a = true;
    for a in passes {
        let axis = s.axes[a];
        if skipped(&axis) {
            continue;
        }
        let (outer, len_out, inner) = backward_extents(s, a);
        let t = transposed_axis(&axis);
        let (src, dst): (&[T], &mut [T]) = if src_is_a {
            (&*tmp_a, &mut *tmp_b)
        } else {
            (&*tmp_b, &mut *tmp_a)
        };
        let dst: &mut [T] = if a == last { &mut *dx } else { dst };
        for b in 0..outer {
            // Upsample the block's lines by the stride.
            let u = &mut u[..t.input * inner];
            u.fill(T::ZERO);
            for o in 0..len_out {
                // Each pass divides by its axis's count; the first one also by the override.
                let f = average_factor::<T>(s, kind, a, o, Some(a) == first);
                let from = &src[(b * len_out + o) * inner..][..inner];
                for (v, &g) in u[o * axis.stride * inner..][..inner].iter_mut().zip(from) {
                    *v = g * f;
                }
            }
            let u = &*u;
            running_pass::<T, 1>(
                1,
                inner,
                &t,
                pre,
                suf,
                [T::ZERO],
                combine_sum,
                |_, m, col| [u[m * inner + col]],
                |_, i, col, item| dst[(b * t.output + i) * inner + col] = item[0],
            );
        }
        src_is_a = !src_is_a;
    }
}
