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
//! ## Layout of the work
//!
//! Every pass runs across columns: along H (and D) the lines of a channel plane are its
//! columns, so one vector covers `LANES` neighbouring lines and the running reductions are
//! plain vector adds (or max updates) from row to row. The plane is walked in strips one
//! vector wide, so `pre` and `suf` hold one strip (`len x LANES`) and stay in L1. Along W the
//! lines are contiguous, so groups of `LANES` lines are transposed (8 x 8 blocks in
//! registers), run as the columns of one strip, and transposed back. Channel planes are done
//! one after another, W then H then D, so a plane's intermediate results stay in cache
//! between passes (a whole-tensor pass would send each of them to memory and back). Where
//! only W runs (1-D pooling) every line is alike, and the groups run across planes.
//!
//! Sums (average and sum pooling) with dilation 1 run whole rows instead of strips
//! ([`sum_rows`]): along H, `pre` and `suf` hold every row of the plane, so each output's
//! window is located once per row and every loop is a plain add along contiguous memory
//! that the compiler vectorises; along W, groups of `4 * LANES` lines are transposed and run
//! the same way. The strips' per-vector bookkeeping (locating the window, bounds, the factor)
//! cost more than the additions; by rows, an average pool's instructions fell by ~60%.
//! Max keeps the strips: its items carry indices, and its combine is not a plain add.
//!
//! Sums at stride 1 and dilation 1 along H and W, with no D pass (the common average pool
//! of any window size), go by planes instead ([`super::window_sum`]): W along each
//! contiguous row (by doubling in registers, or by unaligned loads where a slide is several
//! instructions), H by these block-restarted sums, no transposes.
//!
//! Scratch holds one plane's intermediate results, the transposed groups and `pre` / `suf`
//! (one strip, or one plane's rows for sums): its size does not grow with the batch. Max
//! indices travel through the passes as values of `T`, which is exact while a channel plane
//! has at most 2^24 elements for `f32` (2^53 for `f64`).

use super::PoolKind;
use super::geometry::PoolShape;
use super::window_sum;
use crate::Element;
use crate::element::{layout_len, prefetch_span, split, transpose};
use crate::window::Axis;

/// Whether the pass along `axis` can be skipped: a unit axis with a single-tap window. Other
/// axes whose window is a single tap still run, as a copy, because max pooling adds their
/// coordinate to the index and the average divides by their count on the way.
fn skipped(axis: &Axis) -> bool {
    axis.input == 1 && axis.output == 1 && axis.kernel == 1
}

/// Which axes run a pass (`[D, H, W]`).
fn running(s: &PoolShape) -> [bool; 3] {
    s.axes.map(|a| !skipped(&a))
}

/// The largest index of a channel plane that an element of `T` holds exactly.
pub(crate) fn max_exact_index<T: Element>() -> usize {
    let digits = if T::NAME == "f32" { 24 } else { 53 };
    // 2^53 does not fit a 32-bit usize, where every index is exact in f64 anyway.
    1usize.checked_shl(digits).unwrap_or(usize::MAX)
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

/// One vector of items: values and, for max pooling with indices, each value's index within
/// its channel plane (as `T`; unused otherwise, and the compiler drops it).
type Item<T> = (<T as Element>::Simd, <T as Element>::Simd);

/// How the running reductions combine two items, `a` before `b` in window order.
trait Reduce<T: Element> {
    /// Whether items carry indices, stored after the values in every buffer.
    const INDEXED: bool;
    /// Whether this is [`Sum`], which passes of dilation 1 run a row at a time
    /// ([`sum_rows`]).
    const SUM: bool = false;
    /// `a (+) b`.
    fn combine(a: Item<T>, b: Item<T>) -> Item<T>;
}

/// Sums (average and sum pooling).
struct Sum;
/// The maximum alone (max pooling without indices): NaN propagates.
struct Max;
/// PyTorch's max with its index: a NaN wins over anything before it, otherwise only a
/// strictly greater value replaces the current one (so ties keep the first).
struct ArgMax;

impl<T: Element> Reduce<T> for Sum {
    const INDEXED: bool = false;
    const SUM: bool = true;
    #[inline(always)]
    fn combine(a: Item<T>, b: Item<T>) -> Item<T> {
        (a.0 + b.0, a.1)
    }
}

impl<T: Element> Reduce<T> for Max {
    const INDEXED: bool = false;
    #[inline(always)]
    fn combine(a: Item<T>, b: Item<T>) -> Item<T> {
        (T::max_nan(a.0, b.0), a.1)
    }
}

impl<T: Element> Reduce<T> for ArgMax {
    const INDEXED: bool = true;
    #[inline(always)]
    fn combine(a: Item<T>, b: Item<T>) -> Item<T> {
        T::max_update(a.0, a.1, b.0, b.1)
    }
}

/// Items per element for `kind`'s forward pass: max pooling may be asked for indices.
const fn items(kind: PoolKind) -> usize {
    match kind {
        PoolKind::Max => 2,
        _ => 1,
    }
}

/// Column offsets of the vectors that cover `cols` columns: whole vectors and, when `cols`
/// is not a multiple of the width, one more ending at the last column. It overlaps the one
/// before, which is harmless: every pass computes a column from other buffers only, so the
/// overlap writes the same values twice. Fewer columns than a vector take one short vector.
#[inline(always)]
fn chunks<T: Element>(cols: usize) -> impl Iterator<Item = usize> {
    let l = T::LANES;
    let whole = if cols >= l { cols / l } else { 1 };
    let tail = (cols > l && !cols.is_multiple_of(l)).then(|| cols - l);
    (0..whole).map(move |i| i * l).chain(tail)
}

/// The vector at column `c` of row `row` of a `[rows, cols]` matrix (short rows read zeros
/// past their end).
#[inline(always)]
fn load_at<T: Element>(buf: &[T], cols: usize, row: usize, c: usize) -> T::Simd {
    T::load(&buf[row * cols + c..(row + 1) * cols])
}

/// Stores the vector at column `c` of row `row`, as many lanes as the row holds.
#[inline(always)]
fn store_at<T: Element>(v: T::Simd, buf: &mut [T], cols: usize, row: usize, c: usize) {
    T::store(v, &mut buf[row * cols + c..(row + 1) * cols]);
}

/// `item`'s values times output `o`'s average factor, if any.
#[inline(always)]
fn scaled<T: Element>(item: Item<T>, factors: Option<&[T]>, o: usize) -> Item<T> {
    match factors {
        Some(f) => (item.0 * T::splat(f[o]), item.1),
        None => item,
    }
}

/// Rows that a pass reads, one vector of columns at a time.
trait Rows<T: Element> {
    /// The items of row `m` at columns `c..`.
    fn item<R: Reduce<T>>(&self, m: usize, c: usize) -> Item<T>;
}

/// Rows that a pass writes, one vector of columns at a time.
trait RowsMut<T: Element> {
    /// Stores output row `o`'s items at columns `c..`.
    fn put<R: Reduce<T>>(&mut self, o: usize, c: usize, item: Item<T>);
}

/// A `[rows, cols]` matrix read from row `row0` on: values and, when the items carry
/// indices, those accumulated by earlier passes (`None`: the input, index 0 so far). Row `m`'s
/// indices advance by `m * step`, its coordinate times the axis's stride in the plane.
#[derive(Clone, Copy)]
struct Matrix<'a, T> {
    val: &'a [T],
    idx: Option<&'a [T]>,
    cols: usize,
    row0: usize,
    step: usize,
}

impl<T: Element> Rows<T> for Matrix<'_, T> {
    #[inline(always)]
    fn item<R: Reduce<T>>(&self, m: usize, c: usize) -> Item<T> {
        let row = self.row0 + m;
        let v = load_at(self.val, self.cols, row, c);
        let i = if R::INDEXED {
            let step = T::splat(T::from_usize(m * self.step));
            match self.idx {
                Some(idx) => load_at(idx, self.cols, row, c) + step,
                None => step,
            }
        } else {
            v
        };
        (v, i)
    }
}

/// The gradient rows of a backward pass, upsampled by the stride (`m = o * stride` reads row
/// `o`, scaled by its factor; the rows between are zero).
struct Upsampled<'a, S, T> {
    rows: S,
    stride: usize,
    factors: Option<&'a [T]>,
}

impl<T: Element, S: Rows<T>> Rows<T> for Upsampled<'_, S, T> {
    #[inline(always)]
    fn item<R: Reduce<T>>(&self, m: usize, c: usize) -> Item<T> {
        let o = if self.stride == 1 {
            m
        } else if m.is_multiple_of(self.stride) {
            m / self.stride
        } else {
            let zero = T::splat(T::ZERO);
            return (zero, zero);
        };
        scaled(self.rows.item::<R>(o, c), self.factors, o)
    }
}

/// A `[rows, cols]` matrix of items written from row `row0` on: values, then (when indexed)
/// indices; each output row scaled by its factor.
struct MatrixMut<'a, T> {
    val: &'a mut [T],
    idx: &'a mut [T],
    cols: usize,
    row0: usize,
    factors: Option<&'a [T]>,
}

impl<'a, T: Element> MatrixMut<'a, T> {
    /// `buf` as values and indices of `rows x cols` each (no indices unless `R` carries
    /// them).
    fn new<R: Reduce<T>>(buf: &'a mut [T], rows: usize, cols: usize) -> Self {
        let n = rows * cols;
        let (val, rest) = buf.split_at_mut(n);
        let idx = if R::INDEXED { &mut rest[..n] } else { &mut [] };
        MatrixMut {
            val,
            idx,
            cols,
            row0: 0,
            factors: None,
        }
    }

    /// The same buffer as rows of `cols` columns, written from `row0` with `factors`.
    fn at<'b>(
        &'b mut self,
        cols: usize,
        row0: usize,
        factors: Option<&'b [T]>,
    ) -> MatrixMut<'b, T> {
        MatrixMut {
            val: &mut *self.val,
            idx: &mut *self.idx,
            cols,
            row0,
            factors,
        }
    }

    /// The matrix as the next pass's source, with rows of `cols` columns.
    fn rows(&self, cols: usize, step: usize) -> Matrix<'_, T> {
        Matrix {
            val: self.val,
            idx: Some(&*self.idx),
            cols,
            row0: 0,
            step,
        }
    }
}

impl<T: Element> RowsMut<T> for MatrixMut<'_, T> {
    #[inline(always)]
    fn put<R: Reduce<T>>(&mut self, o: usize, c: usize, item: Item<T>) {
        let item = scaled(item, self.factors, o);
        let row = self.row0 + o;
        store_at(item.0, self.val, self.cols, row, c);
        if R::INDEXED {
            store_at(item.1, self.idx, self.cols, row, c);
        }
    }
}

/// The caller's output: values, and max indices as `usize` where asked for, written from
/// row `row0` on, each row scaled by its factor. The passes write a plane's indices as `T`
/// into `idx`, and [`Output::convert_indices`] turns the whole plane into `usize` at once: a
/// long loop that the compiler vectorises, where converting each vector's lanes as it is
/// stored costs a quarter of max pooling's time. (Where only W runs, the indices are
/// converted as the groups are transposed into place, and `idx` is empty.)
struct Output<'a, T> {
    y: &'a mut [T],
    ix: Option<&'a mut [usize]>,
    idx: &'a mut [T],
    cols: usize,
    row0: usize,
    factors: Option<&'a [T]>,
}

impl<T: Element> Output<'_, T> {
    fn convert_indices(&mut self) {
        if let Some(ix) = self.ix.as_deref_mut() {
            for (d, &t) in ix.iter_mut().zip(&*self.idx) {
                // Exact: the value is an integer below 2^24 (f32) or 2^53 (f64).
                *d = t.to_index();
            }
        }
    }
}

impl<T: Element> RowsMut<T> for Output<'_, T> {
    #[inline(always)]
    fn put<R: Reduce<T>>(&mut self, o: usize, c: usize, item: Item<T>) {
        let item = scaled(item, self.factors, o);
        let row = self.row0 + o;
        store_at(item.0, self.y, self.cols, row, c);
        if R::INDEXED && self.ix.is_some() {
            store_at(item.1, self.idx, self.cols, row, c);
        }
    }
}

/// One strip of rows, one vector each (values, then indices): the running reductions, and
/// the W pass's transposed groups.
struct Strip<'a, T> {
    val: &'a mut [T],
    idx: &'a mut [T],
    factors: Option<&'a [T]>,
}

impl<'a, T: Element> Strip<'a, T> {
    fn new<R: Reduce<T>>(buf: &'a mut [T], len: usize) -> Self {
        let n = len * T::LANES;
        let (val, rest) = buf.split_at_mut(n);
        let idx = if R::INDEXED { &mut rest[..n] } else { &mut [] };
        Strip {
            val,
            idx,
            factors: None,
        }
    }

    #[inline(always)]
    fn get<R: Reduce<T>>(&self, m: usize) -> Item<T> {
        let v = T::load_full(&self.val[m * T::LANES..]);
        let i = if R::INDEXED {
            T::load_full(&self.idx[m * T::LANES..])
        } else {
            v
        };
        (v, i)
    }

    #[inline(always)]
    fn set<R: Reduce<T>>(&mut self, m: usize, item: Item<T>) {
        T::store(item.0, &mut self.val[m * T::LANES..]);
        if R::INDEXED {
            T::store(item.1, &mut self.idx[m * T::LANES..]);
        }
    }
}

impl<T: Element> RowsMut<T> for Strip<'_, T> {
    #[inline(always)]
    fn put<R: Reduce<T>>(&mut self, o: usize, _: usize, item: Item<T>) {
        self.set::<R>(o, scaled(item, self.factors, o));
    }
}

/// A transposed group of input lines as the rows of one strip; indices start at the row (the
/// W coordinate).
struct Group<'a, T> {
    val: &'a [T],
}

impl<T: Element> Rows<T> for Group<'_, T> {
    #[inline(always)]
    fn item<R: Reduce<T>>(&self, m: usize, _: usize) -> Item<T> {
        let v = T::load_full(&self.val[m * T::LANES..]);
        let i = if R::INDEXED {
            T::splat(T::from_usize(m))
        } else {
            v
        };
        (v, i)
    }
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

/// The spans of an axis's windows, asked for output by output in order. Dilation 1, the
/// common case, clips the window without a division and tracks the block offset
/// incrementally; other dilations work per residue class.
struct Spans {
    axis: Axis,
    /// For dilation 1: the previous window's first element and its offset in its block.
    first: usize,
    offset: usize,
}

impl Spans {
    fn new(axis: &Axis) -> Self {
        Spans {
            axis: *axis,
            first: 0,
            offset: 0,
        }
    }

    /// The span of output `o` (called for `o = 0, 1, ...`).
    #[inline(always)]
    fn span(&mut self, o: usize) -> Span {
        let a = &self.axis;
        let k = a.kernel;
        if a.dilation == 1 {
            // Padded coordinates: the window is [start, start + k), the input
            // [pad, pad + input).
            let start = o * a.stride;
            let lo = start.max(a.pad_lo);
            let hi = (start + k).min(a.input + a.pad_lo);
            if hi <= lo {
                return Span::Empty;
            }
            let (first, last) = (lo - a.pad_lo, hi - 1 - a.pad_lo);
            // `first` never decreases: advance the block offset by the step.
            self.offset += first - self.first;
            while self.offset >= k {
                self.offset -= k;
            }
            self.first = first;
            return if self.offset + (last - first) >= k {
                Span::Both(first, last)
            } else if self.offset == 0 {
                Span::Pre(last)
            } else {
                Span::Suf(first)
            };
        }
        let (Some(ta), Some(tb)) = (a.first_valid_tap(o), a.last_valid_tap(o)) else {
            return Span::Empty;
        };
        let d = a.dilation;
        let first = o * a.stride + ta * d - a.pad_lo;
        let last = o * a.stride + tb * d - a.pad_lo;
        let (ja, jb) = (first / d, last / d);
        if ja / k != jb / k {
            Span::Both(first, last)
        } else if ja % k == 0 {
            Span::Pre(last)
        } else {
            Span::Suf(first)
        }
    }
}

/// The 1-D window reduction down the rows of a `[axis.input, cols]` matrix, one strip of
/// columns (one vector) at a time, from `src` into `dst` (`empty` where a window reads
/// nothing). `pre` and `suf` hold one strip of `axis.input` rows.
#[inline(always)]
fn column_pass<T: Element, R: Reduce<T>>(
    axis: &Axis,
    cols: usize,
    pre: &mut Strip<'_, T>,
    suf: &mut Strip<'_, T>,
    empty: Item<T>,
    src: &impl Rows<T>,
    dst: &mut impl RowsMut<T>,
) {
    let (len, k, d) = (axis.input, axis.kernel, axis.dilation);
    for c in chunks::<T>(cols) {
        // Blocks of k consecutive elements of each residue class m mod d; the prefix runs
        // forward from the block's start and the suffix backward from its end in the same
        // loop, two independent chains carried in registers.
        for r in 0..d.min(len) {
            let class_len = (len - r).div_ceil(d);
            for j0 in (0..class_len).step_by(k) {
                let n = (j0 + k).min(class_len) - j0;
                let (head, tail) = (r + j0 * d, r + (j0 + n - 1) * d);
                let mut p = src.item::<R>(head, c);
                let mut q = src.item::<R>(tail, c);
                pre.set::<R>(head, p);
                suf.set::<R>(tail, q);
                for j in 1..n {
                    let (mp, mq) = (head + j * d, tail - j * d);
                    p = R::combine(p, src.item::<R>(mp, c));
                    q = R::combine(src.item::<R>(mq, c), q);
                    pre.set::<R>(mp, p);
                    suf.set::<R>(mq, q);
                }
            }
        }
        let mut spans = Spans::new(axis);
        for o in 0..axis.output {
            let item = match spans.span(o) {
                Span::Empty => empty,
                Span::Both(first, last) => R::combine(suf.get::<R>(first), pre.get::<R>(last)),
                Span::Pre(last) => pre.get::<R>(last),
                Span::Suf(first) => suf.get::<R>(first),
            };
            dst.put::<R>(o, c, item);
        }
    }
}

/// Rows that a sum pass reads whole: row `m` of the pass is row `row0 + m / stride` of a
/// `[rows, cols]` matrix, times its factor, when `stride` divides `m`, and zeros otherwise
/// (the backward pass's upsampled gradient; forward passes have stride 1 and no factors).
struct SumRows<'a, T> {
    val: &'a [T],
    cols: usize,
    row0: usize,
    stride: usize,
    factors: Option<&'a [T]>,
}

impl<'a, T: Element> SumRows<'a, T> {
    /// Row `m`'s values and factor, or `None` for a row of zeros.
    #[inline(always)]
    fn row(&self, m: usize) -> Option<(&'a [T], Option<T>)> {
        // Stride 1 (every forward pass) without the division.
        let o = match self.stride {
            1 => m,
            s if m.is_multiple_of(s) => m / s,
            _ => return None,
        };
        let row = &self.val[(self.row0 + o) * self.cols..][..self.cols];
        Some((row, self.factors.map(|f| f[o])))
    }
}

/// Rows that a sum pass writes whole: output row `o` is row `row0 + o` of a `[rows, cols]`
/// matrix, scaled by its factor.
struct SumRowsMut<'a, T> {
    val: &'a mut [T],
    cols: usize,
    row0: usize,
    factors: Option<&'a [T]>,
}

/// `dst = a (+ b) (* factor)` element by element, along a row (`b` absent: a copy).
#[inline(always)]
fn put_row<T: Element>(dst: &mut [T], factor: Option<T>, a: &[T], b: Option<&[T]>) {
    let (a, n) = (&a[..dst.len()], dst.len());
    match (b.map(|b| &b[..n]), factor) {
        (Some(b), Some(g)) => {
            for ((d, &x), &y) in dst.iter_mut().zip(a).zip(b) {
                *d = (x + y) * g;
            }
        }
        (Some(b), None) => {
            for ((d, &x), &y) in dst.iter_mut().zip(a).zip(b) {
                *d = x + y;
            }
        }
        (None, Some(g)) => {
            for (d, &x) in dst.iter_mut().zip(a) {
                *d = x * g;
            }
        }
        (None, None) => dst.copy_from_slice(a),
    }
}

/// Data that a later pass reads from memory, asked for a little at a time while this pass
/// computes on data in cache ([`Ahead::step`], once per row a [`sum_rows`] pass builds).
/// A pass that reads its whole input first and then only computes leaves the hardware's
/// stream prefetch nothing to follow until the next pass starts reading.
struct Ahead<'a, T> {
    rest: &'a [T],
    per_step: usize,
}

impl<'a, T> Ahead<'a, T> {
    /// Nothing to ask for.
    fn none() -> Self {
        Ahead {
            rest: &[],
            per_step: 0,
        }
    }

    /// All of `data`, spread over `steps` steps.
    fn new(data: &'a [T], steps: usize) -> Self {
        Ahead {
            rest: data,
            per_step: data.len().div_ceil(steps.max(1)),
        }
    }

    /// The next share of the data, one request per cache line.
    #[inline(always)]
    fn step(&mut self) {
        if self.rest.is_empty() {
            return;
        }
        let (now, rest) = self.rest.split_at(self.per_step.min(self.rest.len()));
        self.rest = rest;
        prefetch_span(now.as_ptr(), now.len());
    }
}

/// Lines of a group that a sum pass along W transposes and runs as the columns of whole
/// rows ([`sum_rows`]): enough for its row loops to be long, few enough that the group's four
/// buffers stay in L2.
const fn sum_group_lines<T: Element>() -> usize {
    4 * T::LANES
}

/// [`column_pass`] for sums along an axis of dilation 1, a whole row at a time: the same
/// blocks and the same additions in the same order, as loops along contiguous rows that the
/// compiler vectorises, with each output's span found once per row rather than once per
/// vector of columns. `pre` and `suf` hold `axis.input` rows as wide as `src`'s each.
fn sum_rows<T: Element>(
    axis: &Axis,
    pre: &mut [T],
    suf: &mut [T],
    src: &SumRows<'_, T>,
    dst: &mut SumRowsMut<'_, T>,
    ahead: &mut Ahead<'_, T>,
) {
    debug_assert_eq!(axis.dilation, 1);
    let (len, k, cols) = (axis.input, axis.kernel, src.cols);
    let (pre, suf) = (&mut pre[..len * cols], &mut suf[..len * cols]);
    let zero = T::ZERO;
    // `acc (+) row m`, where a zero row still adds zero (as the strips do).
    let step = |acc: &[T], m: usize, out: &mut [T]| match src.row(m) {
        Some((x, Some(f))) => {
            for ((o, &a), &v) in out.iter_mut().zip(acc).zip(x) {
                *o = a + v * f;
            }
        }
        Some((x, None)) => {
            for ((o, &a), &v) in out.iter_mut().zip(acc).zip(x) {
                *o = a + v;
            }
        }
        None => {
            for (o, &a) in out.iter_mut().zip(acc) {
                *o = a + zero;
            }
        }
    };
    let first = |m: usize, out: &mut [T]| match src.row(m) {
        Some((x, f)) => put_row(out, f, x, None),
        None => out.fill(zero),
    };
    for j0 in (0..len).step_by(k) {
        let end = (j0 + k).min(len);
        first(j0, &mut pre[j0 * cols..][..cols]);
        ahead.step();
        for m in j0 + 1..end {
            ahead.step();
            let (done, rest) = pre.split_at_mut(m * cols);
            step(&done[(m - 1) * cols..], m, &mut rest[..cols]);
        }
        first(end - 1, &mut suf[(end - 1) * cols..][..cols]);
        for m in (j0..end - 1).rev() {
            let (head, after) = suf.split_at_mut((m + 1) * cols);
            step(&after[..cols], m, &mut head[m * cols..]);
        }
    }
    let mut spans = Spans::new(axis);
    for o in 0..axis.output {
        let row = &mut dst.val[(dst.row0 + o) * dst.cols..][..cols];
        let g = dst.factors.map(|f| f[o]);
        match spans.span(o) {
            Span::Empty => row.fill(g.map_or(zero, |g| zero * g)),
            Span::Both(a, b) => put_row(row, g, &suf[a * cols..], Some(&pre[b * cols..])),
            Span::Pre(b) => put_row(row, g, &pre[b * cols..], None),
            Span::Suf(a) => put_row(row, g, &suf[a * cols..], None),
        }
    }
}

/// Whether the pass along `axis` runs whole rows ([`sum_rows`]) rather than strips: sums
/// (`sums`: average and sum pooling) along an axis of dilation 1. The scratch layouts and the
/// passes both ask here, so they agree.
fn by_rows(sums: bool, axis: &Axis) -> bool {
    sums && axis.dilation == 1
}

/// Elements of each of `pre` and `suf` for a pass along `axis` over `cols` columns of items
/// of `items` values: one strip, or every row where the pass goes [`by_rows`].
fn pass_len<T: Element>(axis: &Axis, cols: usize, items: usize) -> usize {
    let strip = product(&[axis.input, T::LANES, items]);
    if by_rows(items == 1, axis) {
        strip.max(product(&[axis.input, cols]))
    } else {
        strip
    }
}

/// Output `o`'s average factor along axis `a`: the average's divisor is a product over the
/// axes (or the override), so each pass divides by its own axis's count; the override is
/// applied once, by the pass that `with_override` names.
pub(super) fn average_factor<T: Element>(
    s: &PoolShape,
    a: usize,
    o: usize,
    with_override: bool,
) -> T {
    if s.divisor_override != 0 {
        return if with_override {
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

/// Elements of scratch for every axis's factors, one per output.
fn factors_len(s: &PoolShape) -> usize {
    s.axes
        .iter()
        .fold(0usize, |t, a| t.saturating_add(a.output))
}

/// Each axis's average factors in `buf` (the override on axis `with_override`); `None` unless
/// `kind` averages.
fn factors<'a, T: Element>(
    s: &PoolShape,
    kind: PoolKind,
    with_override: usize,
    buf: &'a mut [T],
) -> [Option<&'a [T]>; 3] {
    let mut out = [None; 3];
    if kind != PoolKind::Avg {
        return out;
    }
    let mut rest = buf;
    for (a, f) in out.iter_mut().enumerate() {
        let (mine, others) = core::mem::take(&mut rest).split_at_mut(s.axes[a].output);
        for (o, v) in mine.iter_mut().enumerate() {
            *v = average_factor(s, a, o, a == with_override);
        }
        *f = Some(&*mine);
        rest = others;
    }
    out
}

/// A saturating product: a geometry too large to hold in memory asks for more scratch than
/// any slice has.
fn product(values: &[usize]) -> usize {
    values.iter().fold(1usize, |p, &x| p.saturating_mul(x))
}

/// The forward pass's scratch: the W pass's transposed group of input lines (`[W_in,
/// LANES]` values) and its results (`[W_out, LANES]` items); one plane after the W pass
/// (`[D_in, H_in, W_out]` items) when H or D follow, and after the H pass (`[D_in, H_out,
/// W_out]`) when D follows; one strip each of `pre` and `suf`; the average's factors; one
/// plane of max indices as `T` when H or D run.
fn forward_layout<T: Element>(s: &PoolShape, kind: PoolKind) -> [usize; 8] {
    let [ad, ah, aw] = s.axes;
    let runs = running(s);
    let (it, l) = (items(kind), T::LANES);
    let strip = (0..3)
        .filter(|&a| runs[a])
        .map(|a| s.axes[a].input)
        .max()
        .unwrap_or(0);
    let w = usize::from(runs[2]);
    let after_w = usize::from(runs[2] && (runs[1] || runs[0]));
    let after_h = usize::from(runs[1] && runs[0]);
    // Sums run W in groups of `sum_group_lines` and H by whole rows (dilation 1).
    let gw = if by_rows(it == 1, &aw) {
        sum_group_lines::<T>()
    } else {
        l
    };
    let rows_h = if runs[1] {
        pass_len::<T>(&ah, aw.output, it)
    } else {
        0
    };
    let pre_suf = product(&[strip, l, it])
        .max(rows_h)
        .max(product(&[w, aw.input, gw]));
    [
        product(&[w, aw.input, gw]),
        product(&[w, aw.output, gw, it]),
        product(&[after_w, ad.input, ah.input, aw.output, it]),
        product(&[after_h, ad.input, ah.output, aw.output, it]),
        pre_suf,
        pre_suf,
        factors_len(s),
        product(&[it - 1, usize::from(runs[1] || runs[0]), s.out_plane]),
    ]
}

/// Elements of scratch for the forward pass of `kind`.
pub(crate) fn forward_scratch_len<T: Element>(s: &PoolShape, kind: PoolKind) -> usize {
    if kind != PoolKind::Max && window_sum::applies::<T>(s) {
        return window_sum::scratch_len::<T>(s);
    }
    layout_len::<T>(&forward_layout::<T>(s, kind))
}

/// Forward pooling of `kind` (`indices` only for max). The caller has checked that max
/// indices fit in `T` exactly.
pub(crate) fn forward<T: Element>(
    s: &PoolShape,
    kind: PoolKind,
    x: &[T],
    y: &mut [T],
    indices: Option<&mut [usize]>,
    scratch: &mut [T],
) {
    match (kind, indices) {
        (PoolKind::Avg | PoolKind::Sum, _) if window_sum::applies::<T>(s) => {
            window_sum::forward(s, kind, x, y, scratch);
        }
        (PoolKind::Max, Some(ix)) => forward_by::<T, ArgMax>(s, kind, x, y, Some(ix), scratch),
        (PoolKind::Max, None) => forward_by::<T, Max>(s, kind, x, y, None, scratch),
        _ => forward_by::<T, Sum>(s, kind, x, y, None, scratch),
    }
}

fn forward_by<T: Element, R: Reduce<T>>(
    s: &PoolShape,
    kind: PoolKind,
    x: &[T],
    y: &mut [T],
    mut ix: Option<&mut [usize]>,
    scratch: &mut [T],
) {
    let [ad, ah, aw] = s.axes;
    let runs = running(s);
    // W first, then H, then D: max's ties then resolve in row-major window order.
    let Some(last) = (0..3).find(|&a| runs[a]) else {
        // Every axis is an identity: the output is the input.
        let f = if kind == PoolKind::Avg {
            average_factor::<T>(s, 2, 0, true)
        } else {
            T::ONE
        };
        for (i, (o, &v)) in y.iter_mut().zip(x).enumerate() {
            *o = v * f;
            if let Some(ix) = ix.as_deref_mut() {
                ix[i] = i % s.in_plane;
            }
        }
        return;
    };
    let [
        group_in,
        group_out,
        after_w,
        after_h,
        pre,
        suf,
        factor_buf,
        plane_idx,
    ] = split(scratch, forward_layout::<T>(s, kind));
    let f = factors(s, kind, last, factor_buf);
    let empty_value = if kind == PoolKind::Max {
        T::NEG_INFINITY
    } else {
        T::ZERO
    };
    let empty = (T::splat(empty_value), T::splat(T::ZERO));
    let mut w = LinePass {
        group_in,
        group_out,
        pre,
        suf,
    };
    if last == 2 {
        // Only W runs: every line of every plane is alike, so groups run across planes.
        let mut out = Output {
            y,
            ix,
            idx: &mut [],
            cols: aw.output,
            row0: 0,
            factors: None,
        };
        w.forward::<R>(
            &aw,
            s.planes * ad.input * ah.input,
            x,
            empty,
            f[2],
            &mut out,
        );
        return;
    }
    let lines = ad.input * ah.input;
    let (cols_h, cols_d) = (aw.output, ah.output * aw.output);
    let mut after_w = MatrixMut::new::<R>(after_w, if runs[2] { lines } else { 0 }, aw.output);
    let h_rows = if runs[1] && runs[0] {
        ad.input * ah.output
    } else {
        0
    };
    let mut after_h = MatrixMut::new::<R>(after_h, h_rows, aw.output);
    for p in 0..s.planes {
        let xp = &x[p * s.in_plane..][..s.in_plane];
        let mut out = Output {
            y: &mut y[p * s.out_plane..][..s.out_plane],
            ix: ix
                .as_deref_mut()
                .map(|ix| &mut ix[p * s.out_plane..][..s.out_plane]),
            idx: &mut *plane_idx,
            cols: if last == 1 { cols_h } else { cols_d },
            row0: 0,
            factors: None,
        };
        if runs[2] {
            w.forward::<R>(
                &aw,
                lines,
                xp,
                empty,
                f[2],
                &mut after_w.at(aw.output, 0, None),
            );
        }
        let from_w = if runs[2] {
            after_w.rows(aw.output, 0)
        } else {
            Matrix {
                val: xp,
                idx: None,
                cols: aw.input,
                row0: 0,
                step: 0,
            }
        };
        if runs[1] && by_rows(R::SUM, &ah) {
            for d in 0..ad.input {
                let src = SumRows {
                    val: from_w.val,
                    cols: cols_h,
                    row0: d * ah.input,
                    stride: 1,
                    factors: None,
                };
                let mut dst = SumRowsMut {
                    val: if last == 1 {
                        &mut *out.y
                    } else {
                        &mut *after_h.val
                    },
                    cols: cols_h,
                    row0: d * ah.output,
                    factors: f[1],
                };
                sum_rows(&ah, w.pre, w.suf, &src, &mut dst, &mut Ahead::none());
            }
        } else if runs[1] {
            let mut pre = Strip::new::<R>(w.pre, ah.input);
            let mut suf = Strip::new::<R>(w.suf, ah.input);
            for d in 0..ad.input {
                let src = Matrix {
                    row0: d * ah.input,
                    step: aw.input,
                    ..from_w
                };
                if last == 1 {
                    out.row0 = d * ah.output;
                    out.factors = f[1];
                    column_pass::<T, R>(&ah, cols_h, &mut pre, &mut suf, empty, &src, &mut out);
                } else {
                    let mut dst = after_h.at(aw.output, d * ah.output, f[1]);
                    column_pass::<T, R>(&ah, cols_h, &mut pre, &mut suf, empty, &src, &mut dst);
                }
            }
        }
        if runs[0] {
            // Rows of the D pass are whole `[H_out, W_out]` planes.
            let src = Matrix {
                cols: cols_d,
                row0: 0,
                step: ah.input * aw.input,
                ..if runs[1] {
                    after_h.rows(cols_d, 0)
                } else {
                    from_w
                }
            };
            out.row0 = 0;
            out.factors = f[0];
            let mut pre = Strip::new::<R>(w.pre, ad.input);
            let mut suf = Strip::new::<R>(w.suf, ad.input);
            column_pass::<T, R>(&ad, cols_d, &mut pre, &mut suf, empty, &src, &mut out);
        }
        if R::INDEXED {
            out.convert_indices();
        }
    }
}

/// Rows that the pass along W fills from a transposed group of lines.
trait LineSink<T: Element> {
    /// Rows `l0..l0 + g` from a group's items: `[cols, stride]` values and (when indexed)
    /// indices, column `r` holding row `l0 + r`.
    fn put_group<R: Reduce<T>>(&mut self, l0: usize, g: usize, stride: usize, val: &[T], idx: &[T]);
}

impl<T: Element> LineSink<T> for MatrixMut<'_, T> {
    fn put_group<R: Reduce<T>>(
        &mut self,
        l0: usize,
        g: usize,
        stride: usize,
        val: &[T],
        idx: &[T],
    ) {
        let (cols, at) = (self.cols, (self.row0 + l0) * self.cols);
        transpose(val, stride, cols, g, &mut self.val[at..], cols);
        if R::INDEXED {
            transpose(idx, stride, cols, g, &mut self.idx[at..], cols);
        }
    }
}

impl<T: Element> LineSink<T> for Output<'_, T> {
    fn put_group<R: Reduce<T>>(
        &mut self,
        l0: usize,
        g: usize,
        stride: usize,
        val: &[T],
        idx: &[T],
    ) {
        let (cols, at) = (self.cols, (self.row0 + l0) * self.cols);
        transpose(val, stride, cols, g, &mut self.y[at..], cols);
        if let (true, Some(ix)) = (R::INDEXED, self.ix.as_deref_mut()) {
            for r in 0..g {
                let row = &mut ix[at + r * cols..][..cols];
                for (o, d) in row.iter_mut().enumerate() {
                    // Exact: the value is an integer below 2^24 (f32) or 2^53 (f64).
                    *d = idx[o * stride + r].to_index();
                }
            }
        }
    }
}

/// The buffers of the pass along W, whose lines are contiguous in memory: a group of up to
/// `LANES` lines is transposed into `group_in` so that the pass runs across the lines as
/// the lanes of one strip; its results land in `group_out`, still transposed, and go to their
/// rows by [`LineSink::put_group`]. `pre` and `suf` hold one strip each (and serve the other
/// passes too).
struct LinePass<'a, T> {
    group_in: &'a mut [T],
    group_out: &'a mut [T],
    pre: &'a mut [T],
    suf: &'a mut [T],
}

impl<T: Element> LinePass<'_, T> {
    /// A sum pass along W by groups of lines, each transposed and run by [`sum_rows`]:
    /// `src` holds `lines` lines of `axis.input / stride` (rounded up) values, upsampled by
    /// `stride` and scaled by `in_factors` on the way in; each output is scaled by
    /// `out_factors`. `put(l0, g, out)` receives the results of lines `l0..l0 + g`,
    /// transposed (`[axis.output, g]`). `ahead` is prefetched over the pass ([`Ahead`]).
    #[allow(clippy::too_many_arguments)]
    fn sum_groups(
        &mut self,
        axis: &Axis,
        lines: usize,
        src: &[T],
        stride: usize,
        in_factors: Option<&[T]>,
        out_factors: Option<&[T]>,
        ahead: &[T],
        mut put: impl FnMut(usize, usize, &[T]),
    ) {
        let len = (axis.input - 1) / stride + 1;
        let gl = sum_group_lines::<T>();
        let ahead = &mut Ahead::new(ahead, lines.div_ceil(gl) * axis.input);
        for l0 in (0..lines).step_by(gl) {
            let g = (lines - l0).min(gl);
            transpose(&src[l0 * len..], len, g, len, self.group_in, g);
            let rows = SumRows {
                val: &*self.group_in,
                cols: g,
                row0: 0,
                stride,
                factors: in_factors,
            };
            let mut out = SumRowsMut {
                val: &mut *self.group_out,
                cols: g,
                row0: 0,
                factors: out_factors,
            };
            sum_rows(axis, self.pre, self.suf, &rows, &mut out, ahead);
            put(l0, g, &self.group_out[..axis.output * g]);
        }
    }

    /// The forward pass along `axis` over `lines` lines of the input `x`
    /// (`[lines, axis.input]`; indices start at the W coordinate), each output scaled by its
    /// factor, into `dst` (`[lines, axis.output]`).
    fn forward<R: Reduce<T>>(
        &mut self,
        axis: &Axis,
        lines: usize,
        x: &[T],
        empty: Item<T>,
        factors: Option<&[T]>,
        dst: &mut impl LineSink<T>,
    ) {
        let (win, wout, l) = (axis.input, axis.output, T::LANES);
        if by_rows(R::SUM, axis) {
            self.sum_groups(axis, lines, x, 1, None, factors, &[], |l0, g, out| {
                dst.put_group::<R>(l0, g, g, out, &[]);
            });
            return;
        }
        let mut pre = Strip::new::<R>(self.pre, win);
        let mut suf = Strip::new::<R>(self.suf, win);
        let mut out = Strip::new::<R>(self.group_out, wout);
        out.factors = factors;
        for l0 in (0..lines).step_by(l) {
            let g = (lines - l0).min(l);
            transpose(&x[l0 * win..], win, g, win, self.group_in, l);
            let src = Group {
                val: &*self.group_in,
            };
            column_pass::<T, R>(axis, l, &mut pre, &mut suf, empty, &src, &mut out);
            dst.put_group::<R>(l0, g, l, out.val, out.idx);
        }
    }

    /// The backward pass along `axis` over `lines` lines of `dy` (`[lines, axis.output]`),
    /// each scaled by its factor before it is summed, into `dx` (`[lines, axis.input]`),
    /// asking for `ahead` on the way (see [`Ahead`]).
    fn backward(
        &mut self,
        axis: &Axis,
        lines: usize,
        dy: &[T],
        factors: Option<&[T]>,
        dx: &mut [T],
        ahead: &[T],
    ) {
        let t = transposed_axis(axis);
        let (win, wout, l) = (axis.input, axis.output, T::LANES);
        if by_rows(true, &t) {
            self.sum_groups(
                &t,
                lines,
                dy,
                axis.stride,
                factors,
                None,
                ahead,
                |l0, g, out| {
                    transpose(out, g, win, g, &mut dx[l0 * win..], win);
                },
            );
            return;
        }
        let mut pre = Strip::new::<Sum>(self.pre, t.input);
        let mut suf = Strip::new::<Sum>(self.suf, t.input);
        let mut out = Strip::new::<Sum>(self.group_out, win);
        let zero = T::splat(T::ZERO);
        for l0 in (0..lines).step_by(l) {
            let g = (lines - l0).min(l);
            transpose(&dy[l0 * wout..], wout, g, wout, self.group_in, l);
            let src = Upsampled {
                rows: Group {
                    val: &*self.group_in,
                },
                stride: axis.stride,
                factors,
            };
            column_pass::<T, Sum>(&t, l, &mut pre, &mut suf, (zero, zero), &src, &mut out);
            transpose(out.val, l, win, g, &mut dx[l0 * win..], win);
        }
    }
}

/// The backward pass's scratch: the W pass's transposed group of gradient lines (`[W_out,
/// LANES]`) and its results (`[W_in, LANES]`); one plane after the D pass (`[D_in, H_out,
/// W_out]`) when H or W follow, and after the H pass (`[D_in, H_in, W_out]`) when W follows;
/// one strip (of the upsampled length) each of `pre` and `suf`; the average's factors.
fn backward_layout<T: Element>(s: &PoolShape) -> [usize; 7] {
    let [ad, ah, aw] = s.axes;
    let runs = running(s);
    let l = T::LANES;
    let strip = (0..3)
        .filter(|&a| runs[a])
        .map(|a| transposed_axis(&s.axes[a]).input)
        .max()
        .unwrap_or(0);
    let w = usize::from(runs[2]);
    let after_d = usize::from(runs[0] && (runs[1] || runs[2]));
    let after_h = usize::from(runs[1] && runs[2]);
    let rows_h = if runs[1] {
        pass_len::<T>(&transposed_axis(&ah), aw.input.max(aw.output), 1)
    } else {
        0
    };
    let gw = if by_rows(true, &aw) {
        sum_group_lines::<T>()
    } else {
        l
    };
    let pre_suf =
        product(&[strip, l])
            .max(rows_h)
            .max(product(&[w, transposed_axis(&aw).input, gw]));
    [
        product(&[w, aw.output, gw]),
        product(&[w, aw.input, gw]),
        product(&[after_d, ad.input, ah.output, aw.output]),
        product(&[after_h, ad.input, ah.input, aw.output]),
        pre_suf,
        pre_suf,
        factors_len(s),
    ]
}

/// Elements of scratch for the backward pass of average or sum pooling.
pub(crate) fn backward_scratch_len<T: Element>(s: &PoolShape) -> usize {
    if window_sum::applies::<T>(s) {
        return window_sum::scratch_len::<T>(s);
    }
    layout_len::<T>(&backward_layout::<T>(s))
}

/// Backward of average or sum pooling: `dx[i] = sum over windows o containing i of
/// dy[o] / divisor(o)` (divisor 1 for sum), as a window sum of the upsampled gradient along
/// D, then H, then W.
pub(crate) fn backward<T: Element>(
    s: &PoolShape,
    kind: PoolKind,
    dy: &[T],
    dx: &mut [T],
    scratch: &mut [T],
) {
    if window_sum::applies::<T>(s) {
        window_sum::backward(s, kind, dy, dx, scratch);
        return;
    }
    let [ad, ah, aw] = s.axes;
    let runs = running(s);
    let (Some(first), Some(last)) = ((0..3).find(|&a| runs[a]), (0..3).rfind(|&a| runs[a])) else {
        let f = if kind == PoolKind::Avg {
            average_factor::<T>(s, 2, 0, true)
        } else {
            T::ONE
        };
        for (d, &g) in dx.iter_mut().zip(dy) {
            *d = g * f;
        }
        return;
    };
    let [group_in, group_out, after_d, after_h, pre, suf, factor_buf] =
        split(scratch, backward_layout::<T>(s));
    // Each pass divides by its axis's count; the first one also by the override.
    let f = factors(s, kind, first, factor_buf);
    let zero = T::splat(T::ZERO);
    let mut w = LinePass {
        group_in,
        group_out,
        pre,
        suf,
    };
    if first == 2 {
        // Only W runs: every line of every plane is alike.
        w.backward(&aw, s.planes * ad.input * ah.input, dy, f[2], dx, &[]);
        return;
    }
    let (td, th) = (transposed_axis(&ad), transposed_axis(&ah));
    let cols_d = ah.output * aw.output;
    let d_rows = if runs[0] && last != 0 { ad.input } else { 0 };
    let mut after_d = MatrixMut::new::<Sum>(after_d, d_rows, cols_d);
    let h_rows = if runs[1] && runs[2] {
        ad.input * ah.input
    } else {
        0
    };
    let mut after_h = MatrixMut::new::<Sum>(after_h, h_rows, aw.output);
    for p in 0..s.planes {
        let dyp = &dy[p * s.out_plane..][..s.out_plane];
        let dxp = &mut dx[p * s.in_plane..][..s.in_plane];
        let from_dy = Matrix {
            val: dyp,
            idx: None,
            cols: aw.output,
            row0: 0,
            step: 0,
        };
        if runs[0] {
            let src = Upsampled {
                rows: Matrix {
                    cols: cols_d,
                    ..from_dy
                },
                stride: ad.stride,
                factors: f[0],
            };
            let mut pre = Strip::new::<Sum>(w.pre, td.input);
            let mut suf = Strip::new::<Sum>(w.suf, td.input);
            if last == 0 {
                let mut dst = MatrixMut {
                    val: dxp,
                    idx: &mut [],
                    cols: cols_d,
                    row0: 0,
                    factors: None,
                };
                column_pass::<T, Sum>(
                    &td,
                    cols_d,
                    &mut pre,
                    &mut suf,
                    (zero, zero),
                    &src,
                    &mut dst,
                );
                continue;
            }
            let mut dst = after_d.at(cols_d, 0, None);
            column_pass::<T, Sum>(
                &td,
                cols_d,
                &mut pre,
                &mut suf,
                (zero, zero),
                &src,
                &mut dst,
            );
        }
        let from_d = if runs[0] {
            after_d.rows(aw.output, 0)
        } else {
            from_dy
        };
        if runs[1] && by_rows(true, &th) {
            let cols = if last == 1 { aw.input } else { aw.output };
            for d in 0..ad.input {
                let src = SumRows {
                    val: from_d.val,
                    cols,
                    row0: d * ah.output,
                    stride: ah.stride,
                    factors: f[1],
                };
                let mut dst = SumRowsMut {
                    val: if last == 1 {
                        &mut *dxp
                    } else {
                        &mut *after_h.val
                    },
                    cols,
                    row0: d * ah.input,
                    factors: None,
                };
                sum_rows(&th, w.pre, w.suf, &src, &mut dst, &mut Ahead::none());
            }
            if last == 1 {
                continue;
            }
        } else if runs[1] {
            let mut pre = Strip::new::<Sum>(w.pre, th.input);
            let mut suf = Strip::new::<Sum>(w.suf, th.input);
            for d in 0..ad.input {
                let src = Upsampled {
                    rows: Matrix {
                        row0: d * ah.output,
                        ..from_d
                    },
                    stride: ah.stride,
                    factors: f[1],
                };
                if last == 1 {
                    let mut dst = MatrixMut {
                        val: &mut *dxp,
                        idx: &mut [],
                        cols: aw.input,
                        row0: d * ah.input,
                        factors: None,
                    };
                    column_pass::<T, Sum>(
                        &th,
                        aw.input,
                        &mut pre,
                        &mut suf,
                        (zero, zero),
                        &src,
                        &mut dst,
                    );
                } else {
                    let mut dst = after_h.at(aw.output, d * ah.input, None);
                    column_pass::<T, Sum>(
                        &th,
                        aw.output,
                        &mut pre,
                        &mut suf,
                        (zero, zero),
                        &src,
                        &mut dst,
                    );
                }
            }
            if last == 1 {
                continue;
            }
        }
        let from_h = if runs[1] {
            after_h.rows(aw.output, 0).val
        } else {
            from_d.val
        };
        // The next plane's gradient, which the next H (or D) pass reads from memory, asked
        // for while this W pass (transposes and sums, in cache) runs. n8 c64 112x112 31x31
        // (AMD Zen 3), alternated in one process with none: 12.7 -> 12.1 ms on one thread
        // (now the time of the same planes in L2), 9.7 -> 8.8-9.1 ms on two.
        let next = dy
            .get((p + 1) * s.out_plane..(p + 2) * s.out_plane)
            .unwrap_or(&[]);
        w.backward(&aw, ad.input * ah.input, from_h, f[2], dxp, next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(input: usize, kernel: usize, stride: usize, dilation: usize, pad: usize) -> Axis {
        let span = (kernel - 1) * dilation + 1;
        Axis {
            input,
            output: (input + 2 * pad - span) / stride + 1,
            kernel,
            stride,
            dilation,
            pad_lo: pad,
        }
    }

    /// Every output's span, against the window's first and last taps found tap by tap.
    #[test]
    fn spans_match_brute_force() {
        // Miri interprets every step: a smaller sweep there still takes each branch.
        let (inputs, kernels) = if cfg!(miri) { (9, 4) } else { (24, 7) };
        for input in 1..inputs {
            for kernel in 1..kernels {
                for stride in 1..4 {
                    for dilation in 1..3 {
                        let span = (kernel - 1) * dilation + 1;
                        for pad in 0..=span / 2 {
                            if input + 2 * pad < span {
                                continue;
                            }
                            let a = axis(input, kernel, stride, dilation, pad);
                            let mut spans = Spans::new(&a);
                            for o in 0..a.output {
                                let inside: Vec<usize> = (0..kernel)
                                    .filter_map(|t| {
                                        (o * stride + t * dilation)
                                            .checked_sub(pad)
                                            .filter(|&i| i < input)
                                    })
                                    .collect();
                                let got = spans.span(o);
                                let (Some(&first), Some(&last)) = (inside.first(), inside.last())
                                else {
                                    assert!(matches!(got, Span::Empty), "{a:?} o={o}");
                                    continue;
                                };
                                let (ja, jb) = (first / dilation, last / dilation);
                                let ok = match got {
                                    Span::Both(f, l) => {
                                        (f, l) == (first, last) && ja / kernel != jb / kernel
                                    }
                                    Span::Pre(l) => l == last && ja % kernel == 0,
                                    Span::Suf(f) => {
                                        f == first
                                            && ja / kernel == jb / kernel
                                            && (jb % kernel == kernel - 1
                                                || last + dilation >= input)
                                    }
                                    Span::Empty => false,
                                };
                                assert!(ok, "{a:?} o={o}: {first}..={last}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn chunks_cover_every_column_inside_the_row() {
        let l = <f32 as Element>::LANES;
        for cols in 1..5 * l {
            let mut seen = vec![false; cols];
            for c in chunks::<f32>(cols) {
                assert!(c + l.min(cols) <= cols, "cols={cols} c={c}");
                for s in &mut seen[c..(c + l).min(cols)] {
                    *s = true;
                }
            }
            assert!(seen.iter().all(|&s| s), "cols={cols}");
        }
    }
}
