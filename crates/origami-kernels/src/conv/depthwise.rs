//! `Direct` convolution for depthwise geometries (one input channel per group, any channel
//! multiplier): each output channel is a 1-, 2- or 3-D correlation of a single input plane.
//!
//! There is no channel sum to amortise loads over, so the generic direct path's per-row
//! bookkeeping and scalar edges dominate. Here every plane is first copied into a zero-padded
//! buffer whose rows are stored *de-interleaved by the stride along W*: padded column `j`
//! lives at `(j % s) * lp + j / s`. Output `ow` through tap `kw` reads padded column
//! `ow * s + kw * d`, which is phase `(kw * d) % s` at index `ow + (kw * d) / s`: for every
//! tap and any stride, the inputs of neighbouring outputs are neighbours in the buffer. Each
//! output vector is then `taps` full-width loads and fused multiply-adds into accumulators
//! that stay in registers, with no edge cases: padding is the buffer's zeros, multiplied
//! like any input (so a NaN weight makes NaN at the outputs that meet padding, as in PyTorch).
//!
//! - forward: `y[o] = b + sum_t w[t] * xp[o * s + t * d]`, registers accumulate over taps;
//! - input gradient: the adjoint, `dxp[o * s + t * d] += w[t] * dy[o]`, one vector update
//!   per tap into a zeroed padded buffer whose interior is then the input gradient;
//! - weight gradient: `dw[t] = sum_{n,o} dy[o] * xp[o * s + t * d]`, one accumulator per tap
//!   (in groups of up to 8, in registers) summed over the plane, then across lanes.
//!
//! 3 x 3 windows with stride 1 and padding of at most 1 (MobileNet's stride-1 layers) skip the
//! padded copy: [`super::depthwise_3x3`] reads the input directly, in all three passes (where
//! the weights, or for the weight gradient a plane's output gradients, are finite).
//!
//! Scratch: one padded plane (and a second as long in the flat layout, for its outputs or
//! output gradient), [`scratch_len`] elements.

use super::channel_block;
use super::depthwise_3x3;
use super::geometry::ConvShape;
use crate::Element;
use crate::element::{all_finite, vector_aligned};
use crate::window::Axis;

/// Output vectors accumulated together in the forward pass (the dispatch below names each
/// count up to this one).
const RUN: usize = 4;

/// Whether the geometry is depthwise: one input channel per group.
pub(crate) fn applies(s: &ConvShape) -> bool {
    s.cg == 1
}

/// The padded, de-interleaved plane's layout.
#[derive(Clone, Copy, Debug)]
struct Padded {
    /// Padded extents along D and H.
    d: usize,
    h: usize,
    /// Elements per phase of a row: the phase's columns plus a vector of slack, so the last
    /// output vector's lanes past the row read the buffer rather than past it.
    lp: usize,
    /// Elements per padded row (`stride_w * lp`).
    row: usize,
    /// The dilation along W split by the stride: stepping to the next tap moves `dq`
    /// columns within a phase and `dr` phases (with a carry), so tap offsets need no division.
    dq: usize,
    dr: usize,
    /// Slack after the last row (the flat layout's, in place of the rows' own).
    tail: usize,
}

impl Padded {
    fn of<T: Element>(s: &ConvShape) -> Self {
        Self::with_slack(s, T::LANES, 0)
    }

    /// The flat layout, for planes whose output rows are shorter than a vector (with strides
    /// 1 along D and H): rows without slack, so that the outputs of consecutive rows, laid
    /// out at the padded rows' pitch, are consecutive in the buffer and every tap reads them
    /// as one run ([`forward_flat`]); a few vectors of slack after the last row instead.
    fn flat<T: Element>(s: &ConvShape) -> Option<Self> {
        let [az, ay, ax] = s.axes;
        (az.stride == 1 && ay.stride == 1 && ax.output < T::LANES)
            .then(|| Self::with_slack(s, 0, RUN * T::LANES))
    }

    /// [`Padded::flat`] where it applies, else [`Padded::of`].
    fn flat_or_rows<T: Element>(s: &ConvShape) -> Self {
        Self::flat::<T>(s).unwrap_or_else(|| Self::of::<T>(s))
    }

    fn with_slack(s: &ConvShape, row_slack: usize, tail: usize) -> Self {
        let [az, ay, ax] = s.axes;
        // Every column a window reads: up to the last output's last tap. The geometry bounds
        // this by the padded input; the products below saturate, so a geometry too large for
        // memory asks for more scratch than any slice holds.
        let extent = |a: &Axis| {
            ((a.output - 1) * a.stride + (a.kernel - 1) * a.dilation + 1).max(a.pad_lo + a.input)
        };
        // Rows (and phases) of the row layout, whose slack is a vector, start on whole
        // vectors as the buffer does, so that the loads of the first tap column are aligned.
        let lp = extent(&ax).div_ceil(ax.stride).saturating_add(row_slack);
        let lp = match row_slack {
            0 => lp,
            vector => lp.div_ceil(vector).saturating_mul(vector),
        };
        Padded {
            d: extent(&az),
            h: extent(&ay),
            lp,
            row: ax.stride.saturating_mul(lp),
            dq: ax.dilation / ax.stride,
            dr: ax.dilation % ax.stride,
            tail,
        }
    }

    fn len(&self) -> usize {
        self.d
            .saturating_mul(self.h)
            .saturating_mul(self.row)
            .saturating_add(self.tail)
    }

    /// Whether this is the flat layout.
    fn is_flat(&self) -> bool {
        self.tail > 0
    }

    /// In the flat layout, where output row `(od, oh)` starts.
    fn flat_row(&self, od: usize, oh: usize) -> usize {
        (od * self.h + oh) * self.row
    }

    /// In the flat layout, one past the last output: the length of the run each tap reads.
    fn flat_end(&self, s: &ConvShape) -> usize {
        let [az, ay, ax] = s.axes;
        self.flat_row(az.output - 1, ay.output - 1) + ax.output
    }

    /// Offsets, within a padded row, of the inputs output `0` reads through taps `0, 1, ..`.
    #[inline(always)]
    fn tap_offsets(&self, stride: usize) -> impl Iterator<Item = usize> {
        let (mut phase, mut index) = (0, 0);
        core::iter::from_fn(move || {
            let at = phase * self.lp + index;
            phase += self.dr;
            index += self.dq;
            if phase >= stride {
                phase -= stride;
                index += 1;
            }
            Some(at)
        })
    }
}

/// Scratch elements the depthwise path needs: one padded plane, two in the flat layout, and
/// as much again for the input gradient's forward pass plus the flipped kernel.
pub(crate) fn scratch_len<T: Element>(s: &ConvShape) -> usize {
    if channel_block::applies::<T>(s) {
        return channel_block::scratch_len::<T>(s);
    }
    // A flat layout takes a second buffer as long for its outputs.
    let plane = |s: &ConvShape| {
        let flat = Padded::flat::<T>(s).map_or(0, |p| p.len().saturating_mul(2));
        Padded::of::<T>(s).len().max(flat)
    };
    let gather = transposed(s).map_or(0, |t| plane(&t).saturating_add(s.taps));
    // A vector to start the first buffer on a vector boundary, another for the second.
    plane(s).saturating_add(gather).saturating_add(2 * T::LANES)
}

/// The input gradient's geometry as a forward pass, where it is one: with stride 1 and one
/// output channel per input channel, `dx[i] = sum_t w[t] dy[i + p - t * d]` is the forward
/// correlation of `dy` (padded by `(k - 1) * d - p` in front) with the flipped kernel. Each
/// input gradient then accumulates in registers; the scatter it replaces adds overlapping
/// vectors to memory tap after tap, which stalls on store forwarding.
fn transposed(s: &ConvShape) -> Option<ConvShape> {
    if s.kg != 1 {
        return None;
    }
    s.transposed()
}

/// Where the columns of one input row live in a padded row: input column `iw` is padded
/// column `iw + pad`, at phase `(iw + pad) % stride`, index `(iw + pad) / stride`.
#[derive(Clone, Copy)]
struct RowLayout {
    stride: usize,
    width: usize,
    pad: usize,
    lp: usize,
}

impl RowLayout {
    fn of(s: &ConvShape, p: &Padded) -> Self {
        let ax = s.axes[2];
        RowLayout {
            stride: ax.stride,
            width: ax.input,
            pad: ax.pad_lo,
            lp: p.lp,
        }
    }

    /// For stride 2: whether even inputs live in the second phase (odd padding), and where
    /// the even and odd inputs start within their phases.
    fn halves(&self) -> (bool, usize, usize) {
        let odd_pad = self.pad % 2 == 1;
        (odd_pad, self.pad / 2, self.pad / 2 + usize::from(odd_pad))
    }

    /// Calls `f(input column, buffer index)` for every column, a stride at a time, carrying
    /// the phase instead of dividing per element.
    #[inline(always)]
    fn for_each_slot(&self, mut f: impl FnMut(usize, usize)) {
        let (q0, r0) = (self.pad / self.stride, self.pad % self.stride);
        let (mut i, mut e) = (0, 0);
        for iw in 0..self.width {
            let (phase, index) = if r0 + e >= self.stride {
                (r0 + e - self.stride, q0 + i + 1)
            } else {
                (r0 + e, q0 + i)
            };
            f(iw, phase * self.lp + index);
            e += 1;
            if e == self.stride {
                e = 0;
                i += 1;
            }
        }
    }
}

/// Copies the interior of the padded buffer out to one input-gradient plane.
fn extract_padded<T: Element>(s: &ConvShape, p: &Padded, buf: &[T], dx_c: &mut [T]) {
    let l = RowLayout::of(s, p);
    for_each_input_row(s, p, |r, xr| {
        let dst = &mut dx_c[xr..xr + l.width];
        let row = &buf[r * p.row..][..p.row];
        if l.stride == 1 {
            dst.copy_from_slice(&row[l.pad..l.pad + l.width]);
        } else if l.stride == 2 {
            let (swap, e0, o0) = l.halves();
            let (p0, p1) = row.split_at(l.lp);
            let (even, odd) = if swap { (p1, p0) } else { (p0, p1) };
            let pairs = l.width / 2;
            let evens = &even[e0..e0 + pairs];
            for ((&e, &o), pair) in evens.iter().zip(&odd[o0..]).zip(dst.chunks_exact_mut(2)) {
                pair[0] = e;
                pair[1] = o;
            }
            if l.width % 2 == 1 {
                dst[l.width - 1] = even[e0 + pairs];
            }
        } else {
            l.for_each_slot(|iw, at| dst[iw] = row[at]);
        }
    });
}

/// Visits the input rows of one plane: `f(padded row index, input row offset)`.
#[inline(always)]
fn for_each_input_row(s: &ConvShape, p: &Padded, mut f: impl FnMut(usize, usize)) {
    let [az, ay, ax] = s.axes;
    for id in 0..az.input {
        for ih in 0..ay.input {
            let r = (id + az.pad_lo) * p.h + ih + ay.pad_lo;
            f(r, (id * ay.input + ih) * ax.input);
        }
    }
}

/// Copies one input plane, the first `in_plane` elements of `x_c` (which may run on), into the
/// interior of the padded buffer (whose padding is zero).
fn fill_padded<T: Element>(s: &ConvShape, p: &Padded, x_c: &[T], buf: &mut [T]) {
    let l = RowLayout::of(s, p);
    for_each_input_row(s, p, |r, xr| {
        if l.stride == 1 && l.width < T::LANES {
            // A short row as one vector, its lanes past the row zeroed: they land on the
            // row's right padding and the next row's left padding, which are zero, and on the
            // next row's inputs, which the next store writes (rows go in order). A copy of
            // unknown length would call `memcpy`, and piece by piece it stalls on store
            // forwarding. `x_c` may run past the plane (the rest of the input), so only the
            // input's last row loads short.
            let at = r * p.row + l.pad;
            let v = match x_c.get(xr..xr + T::LANES) {
                Some(src) => T::load_full(src),
                None => T::load(&x_c[xr..xr + l.width]),
            };
            T::store(T::first_lanes(v, l.width), &mut buf[at..]);
            return;
        }
        let src = &x_c[xr..xr + l.width];
        let row = &mut buf[r * p.row..][..p.row];
        if l.stride == 1 {
            // Whole vectors, the last one blended into the padding it overlaps (which stays
            // zero): `copy_from_slice` called `memmove` once a row.
            let dst = &mut row[l.pad..];
            let full = l.width - l.width % T::LANES;
            for (d, x) in dst[..full]
                .chunks_exact_mut(T::LANES)
                .zip(src.chunks_exact(T::LANES))
            {
                T::store(T::load_full(x), d);
            }
            match (full < l.width, dst.get_mut(full..full + T::LANES)) {
                (false, _) => {}
                (true, Some(d)) => {
                    let v = match x_c.get(xr + full..xr + full + T::LANES) {
                        Some(x) => T::load_full(x),
                        None => T::load(&src[full..]),
                    };
                    T::store(T::blend_first(l.width - full, v, T::load_full(d)), d);
                }
                // The flat layout's rows have no slack to blend into.
                (true, None) => dst[full..l.width].copy_from_slice(&src[full..]),
            }
        } else if l.stride == 2 {
            // The common strided case as a plain de-interleave, which the compiler
            // vectorises.
            let (swap, e0, o0) = l.halves();
            let (p0, p1) = row.split_at_mut(l.lp);
            let (even, odd) = if swap { (p1, p0) } else { (p0, p1) };
            let pairs = l.width / 2;
            let evens = &mut even[e0..e0 + pairs];
            for ((e, o), pair) in evens
                .iter_mut()
                .zip(&mut odd[o0..])
                .zip(src.chunks_exact(2))
            {
                *e = pair[0];
                *o = pair[1];
            }
            if l.width % 2 == 1 {
                even[e0 + pairs] = src[l.width - 1];
            }
        } else {
            l.for_each_slot(|iw, at| row[at] = src[iw]);
        }
    });
}

/// For each image `n` and input channel in `channels`: copies the channel's plane into the
/// padded buffer, then calls `f(n, k, buffer)` for each output channel `k` it feeds.
fn for_each_padded_input<T: Element>(
    s: &ConvShape,
    p: &Padded,
    x: &[T],
    channels: core::ops::Range<usize>,
    buf: &mut [T],
    mut f: impl FnMut(usize, usize, &[T]),
) {
    for n in 0..s.batch {
        for c in channels.clone() {
            // The rest of the input, not just the plane: short rows load whole vectors.
            fill_padded(s, p, &x[(n * s.in_channels + c) * s.in_plane..], buf);
            for k in c * s.kg..(c + 1) * s.kg {
                f(n, k, buf);
            }
        }
    }
}

/// The padded row that window row `(kd, kh)` of output row `(od, oh)` reads.
#[inline(always)]
fn window_row(
    s: &ConvShape,
    p: &Padded,
    (od, oh): (usize, usize),
    (kd, kh): (usize, usize),
) -> usize {
    let [az, ay, _] = s.axes;
    (od * az.stride + kd * az.dilation) * p.h + oh * ay.stride + kh * ay.dilation
}

/// `y = conv(x, w) + bias` for a depthwise geometry.
pub(crate) fn forward<T: Element>(
    s: &ConvShape,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
    scratch: &mut [T],
) {
    forward_channels(s, x, w, bias, y, 0..s.in_channels, scratch);
}

/// The units a pass over a single depthwise image splits into over threads: its input
/// channels (each feeds its own output channels), in whole blocks where the planes are
/// blocked by channels ([`channel_block`]); `None` for more images (they split by image).
/// Unit `u` is channels `u * width..` ([`channel_units`]).
#[cfg(feature = "rayon")]
pub(crate) fn channel_units<T: Element>(s: &ConvShape) -> Option<(usize, usize)> {
    let width = if channel_block::applies::<T>(s) {
        T::LANES
    } else {
        1
    };
    (applies(s) && s.batch == 1).then(|| (s.in_channels.div_ceil(width), width))
}

/// [`forward`] for the input channels `channels` (all of them, or any range of a single
/// image's, in whole blocks where planes are blocked): `y` holds their output channels'
/// planes, from the first one's.
pub(crate) fn forward_channels<T: Element>(
    s: &ConvShape,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
    channels: core::ops::Range<usize>,
    scratch: &mut [T],
) {
    if channel_block::applies::<T>(s) {
        return channel_block::forward(s, x, w, bias, y, channels, scratch);
    }
    let first_k = channels.start * s.kg;
    let kernels = first_k * s.taps..channels.end * s.kg * s.taps;
    if depthwise_3x3::applies::<T>(s) && all_finite(&w[kernels]) {
        for n in 0..s.batch {
            for c in channels.clone() {
                let at = (n * s.in_channels + c) * s.in_plane;
                for k in c * s.kg..(c + 1) * s.kg {
                    let taps = depthwise_3x3::taps(&w[k * s.taps..][..s.taps]);
                    let b = bias.map_or(T::ZERO, |b| b[k]);
                    let y_k =
                        &mut y[(n * s.out_channels + k - first_k) * s.out_plane..][..s.out_plane];
                    depthwise_3x3::forward_plane(s, x, at, &taps, b, y_k);
                }
            }
        }
        return;
    }
    let p = Padded::flat_or_rows::<T>(s);
    let scratch = vector_aligned(scratch);
    let (buf, flat_out) = scratch.split_at_mut(p.len());
    buf.fill(T::ZERO);
    for_each_padded_input(s, &p, x, channels, buf, |n, k, buf| {
        let w_k = &w[k * s.taps..][..s.taps];
        let b = bias.map_or(T::ZERO, |b| b[k]);
        let y_k = &mut y[(n * s.out_channels + k - first_k) * s.out_plane..][..s.out_plane];
        forward_any(s, &p, buf, w_k, b, y_k, flat_out);
    });
}

/// One output plane from the padded input plane in `buf`, in the layout's way; `flat_out`
/// holds the flat layout's outputs ([`Padded::len`] elements, unused by the row layout).
fn forward_any<T: Element>(
    s: &ConvShape,
    p: &Padded,
    buf: &[T],
    w_k: &[T],
    b: T,
    y_k: &mut [T],
    flat_out: &mut [T],
) {
    if p.is_flat() {
        forward_flat(s, p, buf, w_k, b, y_k, &mut flat_out[..p.len()]);
    } else {
        forward_plane(s, p, buf, w_k, b, y_k);
    }
}

/// [`forward_plane`] over the flat layout: output `(od, oh, ow)` is computed at flat index
/// `(od * h + oh) * row + ow`, where its window's first input is, so each tap reads all the
/// outputs as one run at a constant offset — runs of `RUN` full vectors instead of one
/// partial vector per row. The flat indices between rows are computed and dropped.
fn forward_flat<T: Element>(
    s: &ConvShape,
    p: &Padded,
    buf: &[T],
    w_k: &[T],
    b: T,
    y_k: &mut [T],
    out: &mut [T],
) {
    let [az, ay, ax] = s.axes;
    let end = p.flat_end(s);
    for g0 in (0..end).step_by(RUN * T::LANES) {
        match (end - g0).div_ceil(T::LANES) {
            4.. => flat_run::<T, 4>(s, p, buf, w_k, b, g0, out),
            3 => flat_run::<T, 3>(s, p, buf, w_k, b, g0, out),
            2 => flat_run::<T, 2>(s, p, buf, w_k, b, g0, out),
            _ => flat_run::<T, 1>(s, p, buf, w_k, b, g0, out),
        }
    }
    for od in 0..az.output {
        for oh in 0..ay.output {
            let from = p.flat_row(od, oh);
            let to = (od * ay.output + oh) * ax.output;
            // A row is shorter than a vector (the flat layout's condition): stored whole, its
            // lanes past the row land on the next rows, which are stored after it.
            T::store(T::load_full(&out[from..]), &mut y_k[to..]);
        }
    }
}

/// `U` vectors of flat outputs from index `g0`, into `out[g0..]`.
#[inline(always)]
fn flat_run<T: Element, const U: usize>(
    s: &ConvShape,
    p: &Padded,
    buf: &[T],
    w_k: &[T],
    b: T,
    g0: usize,
    out: &mut [T],
) {
    let [az, ay, ax] = s.axes;
    let mut acc = [T::splat(b); U];
    for kd in 0..az.kernel {
        for kh in 0..ay.kernel {
            let w_row = &w_k[(kd * ay.kernel + kh) * ax.kernel..][..ax.kernel];
            let base = g0 + (kd * az.dilation * p.h + kh * ay.dilation) * p.row;
            for (off, &wv) in p.tap_offsets(ax.stride).zip(w_row) {
                let wv = T::splat(wv);
                let src = &buf[base + off..][..U * T::LANES];
                for (a, x) in acc.iter_mut().zip(src.chunks_exact(T::LANES)) {
                    *a = T::mul_add(T::load_full(x), wv, *a);
                }
            }
        }
    }
    for (u, a) in acc.iter().enumerate() {
        T::store(*a, &mut out[g0 + u * T::LANES..]);
    }
}

/// One output plane `y_k` of channel weights `w_k` from the padded input plane in `buf`.
fn forward_plane<T: Element>(s: &ConvShape, p: &Padded, buf: &[T], w_k: &[T], b: T, y_k: &mut [T]) {
    let [az, ay, ax] = s.axes;
    // 3 x 3 windows take [`forward_run_3x3`], with the weights broadcast and the taps'
    // offsets within a padded row found once a plane.
    let is_3x3 = az.kernel == 1 && ay.kernel == 3 && ax.kernel == 3;
    let w3 = is_3x3.then(|| {
        let mut offsets = p.tap_offsets(ax.stride);
        let offsets = [0; 3].map(|_| offsets.next().unwrap_or(0));
        (core::array::from_fn(|t| T::splat(w_k[t])), offsets)
    });
    let w3 = w3.as_ref();
    for od in 0..az.output {
        // Two output rows at a time: twice the independent accumulators, and each weight
        // broadcast serves both.
        let mut oh = 0;
        while oh < ay.output {
            let pair = oh + 1 < ay.output;
            // Runs of up to RUN vectors; the last vector of a row may be partial (its extra
            // lanes read the buffer's slack and are not stored).
            for ow in (0..ax.output).step_by(RUN * T::LANES) {
                let lanes = (ax.output - ow).min(RUN * T::LANES);
                let run = Run {
                    b,
                    od,
                    oh,
                    ow,
                    lanes,
                };
                match (lanes.div_ceil(T::LANES), pair) {
                    (4, true) => forward_run::<T, 4, 2>(s, p, buf, w_k, w3, run, y_k),
                    (3, true) => forward_run::<T, 3, 2>(s, p, buf, w_k, w3, run, y_k),
                    (2, true) => forward_run::<T, 2, 2>(s, p, buf, w_k, w3, run, y_k),
                    (_, true) => forward_run::<T, 1, 2>(s, p, buf, w_k, w3, run, y_k),
                    (4, false) => forward_run::<T, 4, 1>(s, p, buf, w_k, w3, run, y_k),
                    (3, false) => forward_run::<T, 3, 1>(s, p, buf, w_k, w3, run, y_k),
                    (2, false) => forward_run::<T, 2, 1>(s, p, buf, w_k, w3, run, y_k),
                    _ => forward_run::<T, 1, 1>(s, p, buf, w_k, w3, run, y_k),
                }
            }
            oh += if pair { 2 } else { 1 };
        }
    }
}

/// Where a forward run writes: output rows `(od, oh..oh + R)` of the channel, `lanes`
/// outputs from `ow` in each, starting from bias `b`.
#[derive(Clone, Copy)]
struct Run<T> {
    b: T,
    od: usize,
    oh: usize,
    ow: usize,
    lanes: usize,
}

/// `U` vectors (the last possibly partial) of `R` output rows.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward_run<T: Element, const U: usize, const R: usize>(
    s: &ConvShape,
    p: &Padded,
    buf: &[T],
    w_k: &[T],
    w3: Option<&Taps3x3<T>>,
    run: Run<T>,
    y_k: &mut [T],
) {
    if let Some(w) = w3 {
        return forward_run_3x3::<T, U, R>(s, p, buf, w, run, y_k);
    }
    let [az, ay, ax] = s.axes;
    let out_rows: [(usize, usize); R] = core::array::from_fn(|r| (run.od, run.oh + r));
    // The accumulators start as the first tap's products plus the bias: built from a
    // constant, the compiler assembles them in memory with half-width stores and reloads them
    // whole, which stalls on store forwarding.
    let bias = T::splat(run.b);
    let w0 = T::splat(w_k[0]);
    let mut acc: [[T::Simd; U]; R] = core::array::from_fn(|r| {
        let base = window_row(s, p, out_rows[r], (0, 0)) * p.row + run.ow;
        core::array::from_fn(|u| T::mul_add(T::load_full(&buf[base + u * T::LANES..]), w0, bias))
    });
    for kd in 0..az.kernel {
        for kh in 0..ay.kernel {
            let w_row = &w_k[(kd * ay.kernel + kh) * ax.kernel..][..ax.kernel];
            let base: [usize; R] =
                core::array::from_fn(|r| window_row(s, p, out_rows[r], (kd, kh)) * p.row + run.ow);
            let mut taps = p.tap_offsets(ax.stride).zip(w_row);
            if kd == 0 && kh == 0 {
                taps.next();
            }
            for (off, &wv) in taps {
                let wv = T::splat(wv);
                for (acc_r, &base_r) in acc.iter_mut().zip(&base) {
                    let src = &buf[base_r + off..][..U * T::LANES];
                    for (a, x) in acc_r.iter_mut().zip(src.chunks_exact(T::LANES)) {
                        *a = T::mul_add(T::load_full(x), wv, *a);
                    }
                }
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        let start = (run.od * ay.output + run.oh + r) * ax.output + run.ow;
        let out = &mut y_k[start..start + run.lanes];
        for (a, dst) in acc_r.iter().zip(out.chunks_mut(T::LANES)) {
            T::store(*a, dst);
        }
    }
}

/// A 3 x 3 window's weights, broadcast, and its taps' offsets within a padded row.
type Taps3x3<T> = ([<T as Element>::Simd; 9], [usize; 3]);

/// [`forward_run`] for 3 x 3 windows (any strides and dilations), the depthwise layers of
/// MobileNet-like networks: the window is known, so its 9 taps unroll into straight-line
/// multiply-adds from one base address per window row, with no tap iterator and no per-tap
/// slicing. The general run spent as long again on that bookkeeping as on its arithmetic
/// (56 x 56 planes: 1.9 against 1.4 us a plane).
#[inline(always)]
fn forward_run_3x3<T: Element, const U: usize, const R: usize>(
    s: &ConvShape,
    p: &Padded,
    buf: &[T],
    (w, offsets): &Taps3x3<T>,
    run: Run<T>,
    y_k: &mut [T],
) {
    let [_, ay, ax] = s.axes;
    let l = T::LANES;
    let mut acc = [[T::splat(run.b); U]; R];
    for kh in 0..3 {
        let rows: [usize; R] = core::array::from_fn(|r| {
            window_row(s, p, (run.od, run.oh + r), (0, kh)) * p.row + run.ow
        });
        for (kw, &off) in offsets.iter().enumerate() {
            for (acc_r, &row) in acc.iter_mut().zip(&rows) {
                let src = &buf[row + off..][..U * l];
                for (u, a) in acc_r.iter_mut().enumerate() {
                    *a = T::mul_add(T::load_full(&src[u * l..]), w[kh * 3 + kw], *a);
                }
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        let start = (run.od * ay.output + run.oh + r) * ax.output + run.ow;
        let out = &mut y_k[start..start + run.lanes];
        for (a, dst) in acc_r.iter().zip(out.chunks_mut(l)) {
            T::store(*a, dst);
        }
    }
}

/// `dx` from `dy` and `w` for a depthwise geometry: the adjoint of [`forward`], scattered
/// into a zeroed padded buffer per input plane.
pub(crate) fn backward_input<T: Element>(
    s: &ConvShape,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
    scratch: &mut [T],
) {
    backward_input_channels(s, dy, w, dx, 0..s.in_channels, scratch);
}

/// [`backward_input`] for the input channels `channels` (all of them, or any range of a
/// single image's, in whole blocks where planes are blocked): `dx` holds their planes, from
/// the first one's.
pub(crate) fn backward_input_channels<T: Element>(
    s: &ConvShape,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
    channels: core::ops::Range<usize>,
    scratch: &mut [T],
) {
    if channel_block::applies::<T>(s) {
        return channel_block::backward_input(s, dy, w, dx, channels, scratch);
    }
    let first_c = channels.start;
    let kernels = first_c * s.taps..channels.end * s.taps;
    if depthwise_3x3::applies_stride_2(s) && all_finite(&w[kernels]) {
        for n in 0..s.batch {
            for c in channels.clone() {
                let dx_c = &mut dx[(n * s.in_channels + c - first_c) * s.in_plane..][..s.in_plane];
                let at = (n * s.out_channels + c) * s.out_plane;
                let w_c = &w[c * s.taps..][..s.taps];
                depthwise_3x3::backward_input_stride_2(s, dy, at, w_c, dx_c);
            }
        }
        return;
    }
    let p = Padded::of::<T>(s);
    let (buf, rest) = scratch.split_at_mut(p.len());
    let mut gather = transposed(s).map(|t| {
        let pt = Padded::flat_or_rows::<T>(&t);
        let rest = vector_aligned(rest);
        let (tbuf, rest) = rest.split_at_mut(pt.len());
        tbuf.fill(T::ZERO);
        let (flipped, flat_out) = rest.split_at_mut(s.taps);
        (t, pt, tbuf, flipped, flat_out)
    });
    for n in 0..s.batch {
        for c in channels.clone() {
            let dx_c = &mut dx[(n * s.in_channels + c - first_c) * s.in_plane..][..s.in_plane];
            if let Some((t, pt, tbuf, flipped, flat_out)) = gather.as_mut() {
                // kg == 1: output channel c alone feeds input channel c.
                let w_c = &w[c * s.taps..][..s.taps];
                // A weight that is not finite must meet only real gradients (NaN * 0 in the
                // padding would reach inputs no output reads); the scatter below keeps that.
                if w_c.iter().all(|v| v.to_f64().is_finite()) {
                    for (f, &v) in flipped.iter_mut().zip(w_c.iter().rev()) {
                        *f = v;
                    }
                    let at = (n * s.out_channels + c) * s.out_plane;
                    if depthwise_3x3::applies::<T>(t) {
                        let taps = depthwise_3x3::taps(flipped);
                        depthwise_3x3::forward_plane(t, dy, at, &taps, T::ZERO, dx_c);
                        continue;
                    }
                    let dy_c = &dy[at..][..s.out_plane];
                    fill_padded(t, pt, dy_c, tbuf);
                    forward_any(t, pt, tbuf, flipped, T::ZERO, dx_c, flat_out);
                    continue;
                }
            }
            buf.fill(T::ZERO);
            for k in c * s.kg..(c + 1) * s.kg {
                let w_k = &w[k * s.taps..][..s.taps];
                // Lanes past a row's end carry zero gradients; they may land on inputs no
                // output reaches, where `w * 0` must not add NaN: only finite weights take
                // the vector path there.
                let finite = w_k.iter().all(|v| v.to_f64().is_finite());
                let dy_k = &dy[(n * s.out_channels + k) * s.out_plane..][..s.out_plane];
                scatter_by_taps(s, &p, buf, w_k, dy_k, finite);
            }
            extract_padded(s, &p, buf, dx_c);
        }
    }
}

/// Adds `w[t] * dy[o]` onto the padded input that output `o` reads through tap `t`, for every
/// output, tap after tap: the updates of one tap go to distinct rows and columns one after
/// another. Output after output instead, the next tap's update overlaps the one just stored
/// (its vector shifted by an element) and waits for that store to reach the cache. Lanes past
/// a row's end carry zero gradients onto inputs no output may reach, where `w * 0` must not
/// add NaN: where a weight is not finite, a row's last lanes go one at a time.
fn scatter_by_taps<T: Element>(
    s: &ConvShape,
    p: &Padded,
    buf: &mut [T],
    w_k: &[T],
    dy_k: &[T],
    finite: bool,
) {
    let [az, ay, ax] = s.axes;
    let full = ax.output / T::LANES * T::LANES;
    let mut t = 0;
    for kd in 0..az.kernel {
        for kh in 0..ay.kernel {
            for off in p.tap_offsets(ax.stride).take(ax.kernel) {
                let w = w_k[t];
                let wv = T::splat(w);
                t += 1;
                let rows = (0..az.output).flat_map(|od| (0..ay.output).map(move |oh| (od, oh)));
                for (o, dy_row) in rows.zip(dy_k.chunks_exact(ax.output)) {
                    let base = window_row(s, p, o, (kd, kh)) * p.row + off;
                    let dst = &mut buf[base..base + ax.output.div_ceil(T::LANES) * T::LANES];
                    let (whole, rest) = dst.split_at_mut(full);
                    for (d, g) in whole
                        .chunks_exact_mut(T::LANES)
                        .zip(dy_row.chunks_exact(T::LANES))
                    {
                        T::store(T::mul_add(T::load_full(g), wv, T::load_full(d)), d);
                    }
                    let g = &dy_row[full..];
                    if g.is_empty() {
                    } else if finite {
                        T::store(T::mul_add(T::load(g), wv, T::load_full(rest)), rest);
                    } else {
                        for (d, &gv) in rest.iter_mut().zip(g) {
                            *d += w * gv;
                        }
                    }
                }
            }
        }
    }
}

/// `dw` from `x` and `dy` for a depthwise geometry: per tap, the dot product of the output
/// gradient with the padded input shifted by the tap, summed over the batch.
pub(crate) fn backward_weight<T: Element>(
    s: &ConvShape,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
    scratch: &mut [T],
) {
    backward_weight_channels(s, x, dy, dw, 0..s.in_channels, scratch);
}

/// The weight gradient of the output channels that input channels `channels` feed, into
/// `dw` (theirs only). Each channel's sum runs over the images in the same order whatever the
/// range, so any split of the channels gives the same bits.
pub(crate) fn backward_weight_channels<T: Element>(
    s: &ConvShape,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
    channels: core::ops::Range<usize>,
    scratch: &mut [T],
) {
    if channel_block::applies::<T>(s) {
        return channel_block::backward_weight_channels(s, x, dy, dw, channels, scratch);
    }
    let first_k = channels.start * s.kg;
    let [az, ay, ax] = s.axes;
    let p = Padded::flat_or_rows::<T>(s);
    let scratch = vector_aligned(scratch);
    let (buf, rest) = scratch.split_at_mut(p.len());
    buf.fill(T::ZERO);
    // The flat layout's output gradient, laid out like its outputs (zero between rows).
    let mut flat_dy = p.is_flat().then(|| {
        let flat_dy = &mut rest[..p.len()];
        flat_dy.fill(T::ZERO);
        flat_dy
    });
    dw.fill(T::ZERO);
    // Each tap's input offset within the padded plane, relative to output (0, 0, 0).
    let tap_at = |t: usize| {
        let (kd, kh, kw) = (
            t / (ay.kernel * ax.kernel),
            (t / ax.kernel) % ay.kernel,
            t % ax.kernel,
        );
        let row = kd * az.dilation * p.h + kh * ay.dilation;
        row * p.row + p.tap_offsets(ax.stride).nth(kw).unwrap_or(0)
    };
    // Found once rather than per plane (three divisions a tap cost more than a small plane's
    // products), for every kernel up to 8 x 8 taps.
    let mut table = [0usize; 64];
    for (t, at) in table.iter_mut().enumerate().take(s.taps) {
        *at = tap_at(t);
    }
    let tap_at = |t: usize| table.get(t).copied().unwrap_or_else(|| tap_at(t));
    let direct = depthwise_3x3::applies::<T>(s);
    for n in 0..s.batch {
        for c in channels.clone() {
            let at = (n * s.in_channels + c) * s.in_plane;
            let kernels = c * s.kg..(c + 1) * s.kg;
            let dy_of = |k: usize| &dy[(n * s.out_channels + k) * s.out_plane..][..s.out_plane];
            // Straight from the input where the output gradients are finite (checked a plane
            // at a time, while the kernel's pass over it is about to bring it into cache).
            if direct && kernels.clone().all(|k| all_finite(dy_of(k))) {
                for k in kernels {
                    let dw_k = &mut dw[(k - first_k) * s.taps..][..s.taps];
                    depthwise_3x3::backward_weight_plane(s, x, at, dy_of(k), dw_k);
                }
                continue;
            }
            fill_padded(s, &p, &x[at..], buf);
            for k in kernels {
                let dy_k = dy_of(k);
                let dw_k = &mut dw[(k - first_k) * s.taps..][..s.taps];
                let flat = flat_dy.as_deref_mut().map(|f| {
                    spread_flat(s, &p, &dy[(n * s.out_channels + k) * s.out_plane..], f);
                    &*f
                });
                let dots = Dots {
                    s,
                    p: &p,
                    buf,
                    dy_k,
                    flat,
                };
                let mut t0 = 0;
                while t0 < s.taps {
                    let left = s.taps - t0;
                    let dw_t = &mut dw_k[t0..];
                    // The widest group that fits what is left, so no tap is computed twice; nine at a
                    // time where they divide it (3 x 3 and 3 x 3 x 3 kernels: one pass over the
                    // plane per nine taps, where 8 + 1 took a second pass for one tap).
                    t0 += match left {
                        _ if left.is_multiple_of(9) => dots.add::<9>(t0, &tap_at, dw_t),
                        8.. => dots.add::<8>(t0, &tap_at, dw_t),
                        4.. => dots.add::<4>(t0, &tap_at, dw_t),
                        2.. => dots.add::<2>(t0, &tap_at, dw_t),
                        _ => dots.add::<1>(t0, &tap_at, dw_t),
                    };
                }
            }
        }
    }
}

/// Lays one output-gradient plane out like the flat layout's outputs: row `(od, oh)` at
/// `(od * h + oh) * row`, zeros after it up to the next. `dy` may run past the plane (the rest
/// of the gradient), so only its last row loads short.
fn spread_flat<T: Element>(s: &ConvShape, p: &Padded, dy: &[T], flat: &mut [T]) {
    let [az, ay, ax] = s.axes;
    for od in 0..az.output {
        for oh in 0..ay.output {
            let from = (od * ay.output + oh) * ax.output;
            let v = match dy.get(from..from + T::LANES) {
                Some(src) => T::load_full(src),
                None => T::load(&dy[from..from + ax.output]),
            };
            // Rows are shorter than a vector; the zeroed lanes cover the gap to the next row,
            // which is stored after this one.
            T::store(
                T::first_lanes(v, ax.output),
                &mut flat[p.flat_row(od, oh)..],
            );
        }
    }
}

/// The weight gradient's dot products for one plane: over its output rows, or, in the flat
/// layout, over the flat output gradient as one run.
struct Dots<'a, T> {
    s: &'a ConvShape,
    p: &'a Padded,
    buf: &'a [T],
    dy_k: &'a [T],
    flat: Option<&'a [T]>,
}

impl<T: Element> Dots<'_, T> {
    /// Adds the dot products of taps `t0..t0 + G` to `dw_t[..G]`; returns `G`.
    #[inline(always)]
    fn add<const G: usize>(
        &self,
        t0: usize,
        tap_at: &impl Fn(usize) -> usize,
        dw_t: &mut [T],
    ) -> usize {
        let at = core::array::from_fn(|i| tap_at(t0 + i));
        let sums = match self.flat {
            // The flat run also multiplies the zeros between rows with whatever inputs they
            // meet; an infinite or NaN input there makes NaN (`inf * 0`) that the sum must
            // not have, so a NaN sum is recomputed row by row, masked.
            Some(flat) => {
                let sums = flat_dots::<T, G>(self.s, self.p, self.buf, flat, at);
                if sums.iter().any(|v| v.is_nan()) {
                    tap_dots::<T, G>(self.s, self.p, self.buf, self.dy_k, at)
                } else {
                    sums
                }
            }
            None => tap_dots::<T, G>(self.s, self.p, self.buf, self.dy_k, at),
        };
        for (d, v) in dw_t.iter_mut().zip(sums) {
            *d += v;
        }
        G
    }
}

/// `sum_g flat[g] * xp[g + at[t]]` over the flat layout's outputs, for each of `G` taps.
#[inline(always)]
fn flat_dots<T: Element, const G: usize>(
    s: &ConvShape,
    p: &Padded,
    buf: &[T],
    flat: &[T],
    at: [usize; G],
) -> [T; G] {
    let mut acc = [T::splat(T::ZERO); G];
    for g in (0..p.flat_end(s)).step_by(T::LANES) {
        let d = T::load_full(&flat[g..]);
        for (a, &t) in acc.iter_mut().zip(&at) {
            *a = T::mul_add(d, T::load_full(&buf[t + g..]), *a);
        }
    }
    acc.map(T::reduce_add)
}

/// `sum_o dy[o] * xp[o * s + at[t]]` for each of `G` tap offsets `at`.
#[inline(always)]
fn tap_dots<T: Element, const G: usize>(
    s: &ConvShape,
    p: &Padded,
    buf: &[T],
    dy_k: &[T],
    at: [usize; G],
) -> [T; G] {
    let [az, ay, ax] = s.axes;
    let mut acc = [T::splat(T::ZERO); G];
    let full = ax.output / T::LANES * T::LANES;
    for (q, dy_row) in dy_k.chunks_exact(ax.output).enumerate() {
        let (od, oh) = (q / ay.output, q % ay.output);
        let row = &buf[(od * az.stride * p.h + oh * ay.stride) * p.row..];
        for ow in (0..full).step_by(T::LANES) {
            let g = T::load_full(&dy_row[ow..]);
            for (a, &t) in acc.iter_mut().zip(&at) {
                *a = T::mul_add(g, T::load_full(&row[t + ow..]), *a);
            }
        }
        if full < ax.output {
            // Past the row's end the gradient loads as zero and the inputs are masked to
            // zero, so inputs beyond the last window (possibly NaN) do not enter the sum.
            let lanes = ax.output - full;
            let g = T::load(&dy_row[full..]);
            for (a, &t) in acc.iter_mut().zip(&at) {
                let xv = T::first_lanes(T::load_full(&row[t + full..]), lanes);
                *a = T::mul_add(g, xv, *a);
            }
        }
    }
    acc.map(T::reduce_add)
}
