//! `Direct` pooling: the loop over each window, vectorised over neighbouring outputs along W.
//!
//! For a run of `LANES` outputs whose windows lie inside the input along W, each window tap
//! is one vector load and one add (sum, average) or one compare-select of value and index
//! (max, keeping PyTorch's first maximum and last NaN). With a stride along W the interior
//! of an output row is computed separably ([`phased_row`]): each input row of the
//! window is de-interleaved by the stride and reduced along W once, held for the next
//! output row, and the rows are combined along H and D. Outputs whose windows touch the
//! padding take a scalar path, except in max windows of 2 and 3 at stride 2 (ResNet's and
//! VGG's pools, [`unzipped`]): there a row is de-interleaved in registers, edges and all.
//! Cost: one operation per window tap, so it grows with the window's volume. No scratch
//! (the phased path's rows live on the stack: about 11 KB for `f32`, 22 KB for `f64`).
//!
//! ResNet's max pool (3 x 3, stride 2, padding 1, n8 c64 112 x 112, with indices), one
//! thread on Zen 4: 3.6 ms with the phase rows in memory and the edges one by one, 2.84 ms
//! in registers (15.8 GB/s of values and 8-byte indices; PyTorch 2.15: 48 ms). Writing the
//! indices past the caches (non-temporal stores, as `window_sum` does) made it 3.9 ms.

use super::PoolKind;
use super::geometry::PoolShape;
use super::prefix_sum::max_exact_index;
use crate::Element;
use crate::element::MAX_LANES;
use crate::window::{Axis, tap};

/// Calls `f(row_start)` for each input row of the window of output row `(od, oh)`, in
/// window order; `row_start` is the flat in-plane index of the row's first element.
#[inline(always)]
fn for_each_window_row(s: &PoolShape, od: usize, oh: usize, mut f: impl FnMut(usize)) {
    let [az, ay, ax] = s.axes;
    for kd in 0..az.kernel {
        let Some(id) = tap(od, kd, &az) else { continue };
        for kh in 0..ay.kernel {
            let Some(ih) = tap(oh, kh, &ay) else { continue };
            f((id * ay.input + ih) * ax.input);
        }
    }
}

/// One output by the plain loop: `(value, index of the max)`.
#[inline(always)]
fn scalar<T: Element>(
    s: &PoolShape,
    kind: PoolKind,
    x_p: &[T],
    (od, oh, ow): (usize, usize, usize),
) -> (T, usize) {
    let ax = s.axes[2];
    let mut acc = if kind == PoolKind::Max {
        T::NEG_INFINITY
    } else {
        T::ZERO
    };
    let mut best: Option<usize> = None;
    for_each_window_row(s, od, oh, |row| {
        for kw in 0..ax.kernel {
            let Some(iw) = tap(ow, kw, &ax) else { continue };
            let v = x_p[row + iw];
            if kind == PoolKind::Max {
                if best.is_none() || v > acc || v.is_nan() {
                    acc = v;
                    best = Some(row + iw);
                }
            } else {
                acc += v;
            }
        }
    });
    if kind == PoolKind::Avg {
        acc = acc / T::from_usize(s.divisor([od, oh, ow]));
    }
    (acc, best.unwrap_or(0))
}

pub(crate) fn forward<T: Element>(
    s: &PoolShape,
    kind: PoolKind,
    x: &[T],
    y: &mut [T],
    mut indices: Option<&mut [usize]>,
) {
    let ax = s.axes[2];
    let (lo, hi) = ax.interior_outputs();
    // Indices travel through the vector path as values of T.
    let vector_ok = kind != PoolKind::Max || s.in_plane <= max_exact_index::<T>();
    let lanes = {
        let mut ids = [T::ZERO; MAX_LANES];
        for (i, v) in ids.iter_mut().enumerate() {
            *v = T::from_usize(i * ax.stride);
        }
        T::load(&ids)
    };
    // Strided windows: the interior from rows de-interleaved by the stride, where a gather
    // per tap would cost a load per lane.
    let plan = PhasedPlan::<T>::new(&ax, kind, lanes).filter(|_| vector_ok);
    let mut bufs = Phased {
        phases: [T::ZERO; PHASED_ROW],
        vals: [T::ZERO; PHASED_SPAN],
        ids: [T::ZERO; PHASED_SPAN],
        held: [[T::ZERO; PHASED_SPAN]; 2 * HELD_ROWS],
        tags: [usize::MAX; HELD_ROWS],
    };
    // The output row's plane and place, advanced row by row (dividing for them cost more
    // than a phased row's arithmetic).
    let (mut p, mut od, mut oh) = (0, 0, 0);
    for (row, y_row) in y.chunks_exact_mut(ax.output).enumerate() {
        let x_p = &x[p * s.in_plane..][..s.in_plane];
        let mut idx_row = indices
            .as_deref_mut()
            .map(|ix| &mut ix[row * ax.output..][..ax.output]);
        let mut ow = 0;
        if let Some(plan) = plan.as_ref() {
            let ix = idx_row.as_deref_mut();
            phased_row(s, plan, kind, x_p, (p, od, oh), y_row, ix, &mut bufs);
            ow = ax.output;
        }
        while ow < ax.output {
            if vector_ok && ow >= lo && ow + T::LANES <= hi {
                let (v, i) = vector_run(s, &ax, kind, x_p, (od, oh, ow), lanes);
                T::store(v, &mut y_row[ow..]);
                if let Some(ix) = idx_row.as_deref_mut() {
                    T::store_indices(i, &mut ix[ow..ow + T::LANES]);
                }
                ow += T::LANES;
            } else {
                let (v, i) = scalar(s, kind, x_p, (od, oh, ow));
                y_row[ow] = v;
                if let Some(ix) = idx_row.as_deref_mut() {
                    ix[ow] = i;
                }
                ow += 1;
            }
        }
        oh += 1;
        if oh == s.axes[1].output {
            (oh, od) = (0, od + 1);
            if od == s.axes[0].output {
                (od, p) = (0, p + 1);
            }
        }
    }
}

/// The widest window (along W) the phased path takes: its taps are reduced in registers.
/// Wider strided windows take the gathers.
const PHASED_TAPS: usize = 16;

/// Window rows whose reductions along W the phased path holds at once: it combines them
/// along H (and D) in registers, and the next output row finds the ones its window shares
/// (3x3 windows of stride 2 share a row) already reduced.
const HELD_ROWS: usize = 3;

/// Longest input row (in elements) and interior (in outputs) the phased path holds on the
/// stack; longer rows take the gathers.
const PHASED_ROW: usize = 512;
const PHASED_OUT: usize = 256;
/// Outputs of a row whose windows cross the padding along W that the phased path takes too
/// (one by one); rows with more take the gathers.
const PHASED_EDGES: usize = 16;
/// Where the edge outputs sit in a stack row: after the interior and a vector of slack for
/// the interior's last vector.
const EDGE_AT: usize = PHASED_OUT + MAX_LANES;
/// A stack row of outputs: the interior, the slack, the edge outputs.
const PHASED_SPAN: usize = EDGE_AT + PHASED_EDGES;

// Whole multiples of 64 bytes for 4-byte elements (and so for 8-byte ones): see `Phased`.
const _: () = assert!((PHASED_ROW * 4).is_multiple_of(64) && (PHASED_SPAN * 4).is_multiple_of(64));

/// The phased path's stack rows, made once per call: zeroing them for every output row
/// cost as much as a fifth of ResNet's max pool. Each row starts on a 64-byte boundary (the
/// rows before it are whole multiples of 64 bytes): the rows are stored and reloaded a
/// vector at a time, and a vector straddling two cache lines is neither loaded in one pass
/// nor forwarded from its store on some cores (Zen 4).
#[repr(C, align(64))]
struct Phased<T> {
    /// One input row, de-interleaved into its `stride` phases.
    phases: [T; PHASED_ROW],
    /// Running values and indices, where a window has more than [`HELD_ROWS`] rows.
    vals: [T; PHASED_SPAN],
    ids: [T; PHASED_SPAN],
    /// Input rows reduced along W: values in `held[2 * k]`, indices in `held[2 * k + 1]`.
    held: [[T; PHASED_SPAN]; 2 * HELD_ROWS],
    /// Which input row each `held` slot holds (`plane * in_plane + row_start`), or
    /// `usize::MAX`.
    tags: [usize; HELD_ROWS],
}

/// What the phased path works out once per call: the interior outputs along W, the phase
/// rows' length, and where each tap of a window row reads in the phase rows.
struct PhasedPlan<T: Element> {
    /// Interior outputs `lo..hi`: their windows lie inside the input along W.
    lo: usize,
    hi: usize,
    /// Each phase row's length: every phase of the input row plus a vector of slack.
    plen: usize,
    /// Tap `t` of output `lo + o` reads `phases[base[t] + o]`.
    base: [usize; PHASED_TAPS],
    /// The in-row input index that tap `t` reads for the lanes of the first vector.
    column: [T::Simd; PHASED_TAPS],
    /// The outputs outside the interior (windows crossing the padding), `edges[..n_edges]`.
    edges: [usize; PHASED_EDGES],
    n_edges: usize,
    /// The axis along W (its stride above 1, at most [`PHASED_TAPS`] taps).
    axis: Axis,
    /// Whether the rows go by [`unzipped`], edges and all (then `lo == 0`, `hi` is the
    /// row's outputs and there are no edge outputs).
    unzipped: bool,
}

impl<T: Element> PhasedPlan<T> {
    /// The plan for axis `ax` (W), or `None` where the phased path does not serve it: stride
    /// 1, a window wider than [`PHASED_TAPS`], rows longer than the stack rows, or an
    /// interior narrower than a vector.
    fn new(ax: &Axis, kind: PoolKind, lanes: T::Simd) -> Option<Self> {
        let unzipped = kind == PoolKind::Max
            && ax.stride == 2
            && ax.dilation == 1
            && matches!(ax.kernel, 2 | 3)
            && ax.pad_lo <= 1;
        let (lo, hi) = if unzipped {
            (0, ax.output)
        } else {
            ax.interior_outputs()
        };
        let plen = ax.input.div_ceil(ax.stride) + T::LANES;
        let fits = ax.stride * plen <= PHASED_ROW && ax.output <= PHASED_OUT;
        let n_edges = lo + (ax.output - hi);
        if ax.stride == 1
            || ax.kernel > PHASED_TAPS
            || !fits
            || hi < lo + T::LANES
            || n_edges > PHASED_EDGES
        {
            return None;
        }
        let mut edges = [0; PHASED_EDGES];
        for (e, o) in edges.iter_mut().zip((0..lo).chain(hi..ax.output)) {
            *e = o;
        }
        let mut base = [0; PHASED_TAPS];
        let mut column = [T::splat(T::ZERO); PHASED_TAPS];
        for kw in (0..ax.kernel).filter(|_| !unzipped) {
            // Interior: output `lo` reads column `c >= 0` through tap `kw`.
            let c = lo * ax.stride + kw * ax.dilation - ax.pad_lo;
            base[kw] = (c % ax.stride) * plen + c / ax.stride;
            column[kw] = T::splat(T::from_usize(c)) + lanes;
        }
        Some(Self {
            lo,
            hi,
            plen,
            base,
            column,
            edges,
            n_edges,
            axis: *ax,
            unzipped,
        })
    }
}

/// Output row `(od, oh)` of plane `p` (`out`, and `indices` where asked) for a stride above
/// one along W. A box window is separable: each input row of the window is reduced along W
/// first (de-interleaved into its `stride` phases, so that the inputs a tap reads for
/// neighbouring outputs are neighbours; the few outputs whose windows cross the padding
/// one by one), and the rows' results are then combined along H and D. Rows are reduced
/// once and held (see [`HELD_ROWS`]), so a row that two output rows' windows share is not
/// reduced twice. Taps within a row and rows within the window are both visited in window
/// order, and max's combine (keep the first maximum, take the last NaN) is a fold that may
/// be grouped so; ties and NaN resolve as in [`scalar`].
#[allow(clippy::too_many_arguments)]
fn phased_row<T: Element>(
    s: &PoolShape,
    plan: &PhasedPlan<T>,
    kind: PoolKind,
    x_p: &[T],
    (p, od, oh): (usize, usize, usize),
    out: &mut [T],
    mut indices: Option<&mut [usize]>,
    bufs: &mut Phased<T>,
) {
    let (lo, n) = (plan.lo, plan.hi - plan.lo);
    let max = kind == PoolKind::Max;
    let inv = (kind == PoolKind::Avg).then(|| {
        // Interior along W: one divisor for the row.
        T::splat(T::ONE / T::from_usize(s.divisor([od, oh, lo])))
    });
    let edges = &plan.edges[..plan.n_edges];
    let mut group = [0usize; HELD_ROWS];
    let mut len = 0;
    let mut first = true;
    // Combines the rows of `group` into the running values, or (`last`) into `out`.
    let mut combine = |group: &[usize], last: bool, bufs: &mut Phased<T>| {
        let slots = hold_rows(s, plan, kind, x_p, p, group, bufs);
        let slots = &slots[..group.len()];
        let Phased {
            vals, ids, held, ..
        } = bufs;
        let zero = T::splat(T::ZERO);
        if max && first && last && edges.is_empty() {
            // A whole window of rows at once (3 x 3 windows): the rows as a constant, so that
            // the loop holds no branch.
            let out = &mut out[lo..][..n];
            let ix = indices.as_deref_mut().map(|ix| &mut ix[lo..][..n]);
            match *slots {
                [a, b, c] => max_rows::<T, 3>([a, b, c], held, out, ix),
                [a, b] => max_rows::<T, 2>([a, b], held, out, ix),
                [a] => max_rows::<T, 1>([a], held, out, ix),
                _ => {}
            }
            first = false;
            return;
        }
        for v in (0..n).step_by(T::LANES) {
            let mut rows = slots.iter();
            let (mut best, mut best_id) = if first {
                let k = rows.next().copied().unwrap_or(0);
                let id = if max {
                    T::load_full(&held[2 * k + 1][v..])
                } else {
                    zero
                };
                (T::load_full(&held[2 * k][v..]), id)
            } else {
                let id = if max { T::load_full(&ids[v..]) } else { zero };
                (T::load_full(&vals[v..]), id)
            };
            for &k in rows {
                let x = T::load_full(&held[2 * k][v..]);
                if max {
                    let x_id = T::load_full(&held[2 * k + 1][v..]);
                    (best, best_id) = T::max_update(best, best_id, x, x_id);
                } else {
                    best += x;
                }
            }
            if last {
                if let Some(inv) = inv {
                    best = best * inv;
                }
                T::store(best, &mut out[lo + v..]);
                if let Some(ix) = indices.as_deref_mut() {
                    T::store_indices(best_id, &mut ix[lo + v..lo + n.min(v + T::LANES)]);
                }
            } else {
                T::store(best, &mut vals[v..]);
                if max {
                    T::store(best_id, &mut ids[v..]);
                }
            }
        }
        // The edge outputs, one by one, the same way.
        for (e, &o) in edges.iter().enumerate() {
            let at = EDGE_AT + e;
            let mut rows = slots.iter();
            let (mut best, mut best_id) = if first {
                let k = rows.next().copied().unwrap_or(0);
                (held[2 * k][at], held[2 * k + 1][at])
            } else {
                (vals[at], ids[at])
            };
            for &k in rows {
                let x = held[2 * k][at];
                if !max {
                    best += x;
                } else if x > best || x.is_nan() {
                    (best, best_id) = (x, held[2 * k + 1][at]);
                }
            }
            if last {
                if kind == PoolKind::Avg {
                    best = best / T::from_usize(s.divisor([od, oh, o]));
                }
                out[o] = best;
                if let Some(ix) = indices.as_deref_mut() {
                    ix[o] = best_id.to_index();
                }
            } else {
                (vals[at], ids[at]) = (best, best_id);
            }
        }
        first = false;
    };
    for_each_window_row(s, od, oh, |row| {
        if len == HELD_ROWS {
            combine(&group, false, bufs);
            len = 0;
        }
        group[len] = row;
        len += 1;
    });
    combine(&group[..len], true, bufs);
}

/// The max over held rows `slots` (reduced along W: values and indices), in window order,
/// into `out` and `indices`.
#[inline(always)]
fn max_rows<T: Element, const R: usize>(
    slots: [usize; R],
    held: &[[T; PHASED_SPAN]],
    out: &mut [T],
    mut indices: Option<&mut [usize]>,
) {
    let rows: [(&[T; PHASED_SPAN], &[T; PHASED_SPAN]); R] =
        slots.map(|k| (&held[2 * k], &held[2 * k + 1]));
    let n = out.len();
    for v in (0..n).step_by(T::LANES) {
        let (mut best, mut best_id) =
            (T::load_full(&rows[0].0[v..]), T::load_full(&rows[0].1[v..]));
        for (vals, ids) in &rows[1..] {
            let (x, x_id) = (T::load_full(&vals[v..]), T::load_full(&ids[v..]));
            (best, best_id) = T::max_update(best, best_id, x, x_id);
        }
        T::store(best, &mut out[v..]);
        if let Some(ix) = indices.as_deref_mut() {
            T::store_indices(best_id, &mut ix[v..n.min(v + T::LANES)]);
        }
    }
}

/// Makes sure every input row of `group` (row starts within plane `p`) is reduced along W
/// in a slot of `bufs.held`, and returns each row's slot. A row already held is reused;
/// the others take the slots that no row of `group` holds.
fn hold_rows<T: Element>(
    s: &PoolShape,
    plan: &PhasedPlan<T>,
    kind: PoolKind,
    x_p: &[T],
    p: usize,
    group: &[usize],
    bufs: &mut Phased<T>,
) -> [usize; HELD_ROWS] {
    let tag = |row: usize| p * s.in_plane + row;
    let mut slots = [usize::MAX; HELD_ROWS];
    let mut taken = [false; HELD_ROWS];
    for (slot, &row) in slots.iter_mut().zip(group) {
        if let Some(k) = bufs.tags.iter().position(|&t| t == tag(row)) {
            (*slot, taken[k]) = (k, true);
        }
    }
    for (slot, &row) in slots.iter_mut().zip(group) {
        if *slot != usize::MAX {
            continue;
        }
        // `group` has at most `HELD_ROWS` rows, so a free slot remains.
        let k = taken.iter().position(|&t| !t).unwrap_or(0);
        (*slot, taken[k]) = (k, true);
        bufs.tags[k] = tag(row);
        let Phased { phases, held, .. } = bufs;
        let (vals, rest) = held[2 * k..].split_at_mut(1);
        let ahead = &x_p[row..];
        let x_row = &ahead[..s.axes[2].input];
        reduce_row(
            plan,
            kind,
            x_row,
            ahead,
            row,
            phases,
            &mut vals[0],
            &mut rest[0],
        );
    }
    slots
}

/// [`reduce_row`] for max windows of `K` (2 or 3) taps at stride 2 without dilation and
/// padding at most 1 (ResNet's and VGG's pools), every output of the row in registers: two
/// vectors of the row de-interleaved give the first two taps of a vector of outputs (the
/// even and odd columns), and the third is the even one moved along by a column. Columns
/// past the row's end read as -inf, which never wins over the window's earlier taps; a
/// first tap in the left padding takes the second tap's value and index (a tap seen twice
/// changes nothing). Through phase rows in memory, with the edge outputs one by one, the
/// pass took a fifth longer.
#[inline(always)]
fn unzipped<T: Element, const K: usize>(
    plan: &PhasedPlan<T>,
    x_row: &[T],
    ahead: &[T],
    row: usize,
    vals: &mut [T],
    ids: &mut [T],
) {
    let (lanes, n, pad) = (T::LANES, plan.hi, plan.axis.pad_lo);
    // Output `o` reads columns `2 o - pad + kw`; block `j` starts at column `2 lanes j - pad`.
    let split = |j: usize| split_at::<T>(x_row, ahead, (2 * lanes * j) as isize - pad as isize);
    let one = T::slide_index(1);
    let step = T::splat(T::from_usize(2 * lanes));
    let tap_step = T::splat(T::ONE);
    // Tap 0's in-plane index per lane (exact: indices stay below `max_exact_index`). Made
    // here for each row on purpose: taken from the plan's `column` instead, the pass ran
    // 27% slower (0.35 -> 0.44 ms, n1 c64 112x112 in cache), and so did the taps' indices
    // as `column[kw] + offset` as in `phased`.
    let mut index = {
        let mut first = [T::ZERO; MAX_LANES];
        for (i, v) in first.iter_mut().enumerate() {
            *v = T::from_usize(row + 2 * i);
        }
        T::load(&first) - T::splat(T::from_usize(pad))
    };
    let (mut even, mut odd) = split(0);
    for (j, v) in (0..n).step_by(lanes).enumerate() {
        let (next_even, next_odd) = split(j + 1);
        let mut taps = [even, odd, T::slide_by(even, next_even, one)];
        let mut taps_id = [index, index + tap_step, index + tap_step + tap_step];
        if j == 0 && pad > 0 {
            // Output 0's first tap is the padding.
            let inside = T::lane_mask(1, lanes);
            taps[0] = T::select(inside, taps[0], taps[1]);
            taps_id[0] = T::select(inside, taps_id[0], taps_id[1]);
        }
        let (mut best, mut best_id) = (taps[0], taps_id[0]);
        for (&x, &id) in taps[1..K].iter().zip(&taps_id[1..K]) {
            (best, best_id) = T::max_update(best, best_id, x, id);
        }
        T::store(best, &mut vals[v..]);
        T::store(best_id, &mut ids[v..]);
        index += step;
        (even, odd) = (next_even, next_odd);
    }
}

/// Columns `at .. at + 2 LANES` of `x_row` (`at >= -LANES`), de-interleaved (even, odd),
/// with -inf outside the row. `ahead` is the plane from the row on: whole loads where the
/// columns lie in the row. A function rather than a closure: the closure was not inlined,
/// and its vectors went through the stack.
#[inline(always)]
fn split_at<T: Element>(x_row: &[T], ahead: &[T], at: isize) -> (T::Simd, T::Simd) {
    let (lanes, w) = (T::LANES as isize, x_row.len() as isize);
    if at >= 0 && at + 2 * lanes <= w {
        let at = at as usize;
        return T::unzip(
            T::load_full(&ahead[at..]),
            T::load_full(&ahead[at + T::LANES..]),
        );
    }
    T::unzip(columns(x_row, ahead, at), columns(x_row, ahead, at + lanes))
}

/// Columns `i .. i + LANES` of `x_row` (`i >= -LANES`), -inf outside the row (see
/// [`split_at`]).
#[inline(always)]
fn columns<T: Element>(x_row: &[T], ahead: &[T], i: isize) -> T::Simd {
    let (lanes, w) = (T::LANES as isize, x_row.len() as isize);
    let ninf = T::splat(T::NEG_INFINITY);
    if i >= w || i + lanes <= 0 {
        return ninf;
    }
    let raw = if i < 0 {
        T::slide_by(ninf, T::load(x_row), T::slide_index((lanes + i) as usize))
    } else {
        T::load(&ahead[i as usize..])
    };
    let (lo, hi) = ((-i).max(0) as usize, (w - i).min(lanes) as usize);
    T::select(T::lane_mask(lo, hi), raw, ninf)
}

/// [`reduce_row`]'s interior through the row de-interleaved into its `stride` phases in
/// memory, so that the inputs a tap reads for neighbouring outputs are neighbours.
fn phased<T: Element>(
    plan: &PhasedPlan<T>,
    kind: PoolKind,
    x_row: &[T],
    row: usize,
    phases: &mut [T],
    vals: &mut [T],
    ids: &mut [T],
) {
    let (n, plen, stride) = (plan.hi - plan.lo, plan.plen, plan.axis.stride);
    if stride == 2 {
        // A constant stride, so that the compiler vectorises the split (ResNet's pool).
        let (even, odd) = phases[..2 * plen].split_at_mut(plen);
        let (pairs, rest) = x_row.as_chunks::<2>();
        for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(pairs) {
            (*e, *o) = (pair[0], pair[1]);
        }
        if let Some(&last) = rest.first() {
            even[pairs.len()] = last;
        }
    } else {
        for (phase, dst) in phases[..stride * plen].chunks_exact_mut(plen).enumerate() {
            let count = x_row.len().saturating_sub(phase).div_ceil(stride);
            for (i, d) in dst[..count].iter_mut().enumerate() {
                *d = x_row[phase + i * stride];
            }
        }
    }
    let taps = plan.axis.kernel;
    let (base, column) = (&plan.base[..taps], &plan.column[..taps]);
    let step = T::splat(T::from_usize(T::LANES * stride));
    // The lanes' input indices less their tap's column, advanced a vector of outputs at a
    // time (exact: indices stay below `max_exact_index`).
    let mut offset = T::splat(T::from_usize(row));
    for v in (0..n).step_by(T::LANES) {
        let mut best = T::load_full(&phases[base[0] + v..]);
        let mut best_id = column[0] + offset;
        for (&b, &c) in base[1..].iter().zip(&column[1..]) {
            let x = T::load_full(&phases[b + v..]);
            if kind == PoolKind::Max {
                (best, best_id) = T::max_update(best, best_id, x, c + offset);
            } else {
                best += x;
            }
        }
        T::store(best, &mut vals[v..]);
        if kind == PoolKind::Max {
            T::store(best_id, &mut ids[v..]);
        }
        offset += step;
    }
}

/// One input row (`x_row`, starting at in-plane index `row`) reduced along W for the
/// interior outputs: `vals[o]` (and for max `ids[o]`, the in-plane index of the first
/// maximum or last NaN) over the taps of output `lo + o`.
#[allow(clippy::too_many_arguments)]
fn reduce_row<T: Element>(
    plan: &PhasedPlan<T>,
    kind: PoolKind,
    x_row: &[T],
    ahead: &[T],
    row: usize,
    phases: &mut [T],
    vals: &mut [T],
    ids: &mut [T],
) {
    let ax = &plan.axis;
    if plan.unzipped {
        match ax.kernel {
            2 => unzipped::<T, 2>(plan, x_row, ahead, row, vals, ids),
            _ => unzipped::<T, 3>(plan, x_row, ahead, row, vals, ids),
        }
    } else {
        phased(plan, kind, x_row, row, phases, vals, ids);
    }
    // The edge outputs over their taps inside the row, in window order; a window with none
    // is empty (-inf and index 0 for max, as in [`scalar`]).
    for (e, &o) in plan.edges[..plan.n_edges].iter().enumerate() {
        let (mut best, mut best_id) = (None, 0);
        for kw in 0..ax.kernel {
            let Some(c) = tap(o, kw, ax) else { continue };
            let x = x_row[c];
            best = Some(match best {
                None => {
                    best_id = row + c;
                    x
                }
                Some(b) if kind != PoolKind::Max => b + x,
                Some(b) if x > b || x.is_nan() => {
                    best_id = row + c;
                    x
                }
                Some(b) => b,
            });
        }
        let empty = if kind == PoolKind::Max {
            T::NEG_INFINITY
        } else {
            T::ZERO
        };
        vals[EDGE_AT + e] = best.unwrap_or(empty);
        ids[EDGE_AT + e] = T::from_usize(best_id);
    }
}

/// `LANES` interior outputs starting at `ow0`: values and (for max) indices as `T`.
#[inline(always)]
fn vector_run<T: Element>(
    s: &PoolShape,
    ax: &Axis,
    kind: PoolKind,
    x_p: &[T],
    (od, oh, ow0): (usize, usize, usize),
    lanes: T::Simd,
) -> (T::Simd, T::Simd) {
    let mut acc = T::splat(T::ZERO);
    let mut best_index = T::splat(T::ZERO);
    let mut first = true;
    for_each_window_row(s, od, oh, |row| {
        for kw in 0..ax.kernel {
            let start = ow0 * ax.stride + kw * ax.dilation - ax.pad_lo;
            let v = if ax.stride == 1 {
                T::load(&x_p[row + start..])
            } else {
                T::gather(x_p, row + start, ax.stride)
            };
            if kind == PoolKind::Max {
                let index = T::splat(T::from_usize(row + start)) + lanes;
                if first {
                    (acc, best_index) = (v, index);
                } else {
                    (acc, best_index) = T::max_update(acc, best_index, v, index);
                }
            } else {
                acc += v;
            }
            first = false;
        }
    });
    if kind == PoolKind::Avg {
        // Interior along W: the divisor is the same for every lane.
        acc = acc * T::splat(T::ONE / T::from_usize(s.divisor([od, oh, ow0])));
    }
    (acc, best_index)
}

/// Backward of average or sum pooling: each output's gradient, divided by its divisor for
/// the average, is added to every input its window read.
pub(crate) fn backward<T: Element>(s: &PoolShape, kind: PoolKind, dy: &[T], dx: &mut [T]) {
    let ax = s.axes[2];
    dx.fill(T::ZERO);
    for (row, dy_row) in dy.chunks_exact(ax.output).enumerate() {
        let (p, od, oh) = s.row_coords(row);
        let dx_p = &mut dx[p * s.in_plane..][..s.in_plane];
        for (ow, &g) in dy_row.iter().enumerate() {
            let g = if kind == PoolKind::Avg {
                g / T::from_usize(s.divisor([od, oh, ow]))
            } else {
                g
            };
            for_each_window_row(s, od, oh, |r| {
                for kw in 0..ax.kernel {
                    if let Some(iw) = tap(ow, kw, &ax) {
                        dx_p[r + iw] += g;
                    }
                }
            });
        }
    }
}
