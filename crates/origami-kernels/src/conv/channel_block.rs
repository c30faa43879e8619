//! Depthwise convolution on small planes, with a vector of channels at every position.
//!
//! The row-wise depthwise path (`depthwise.rs`) runs its vectors along W. On a 7 x 7 plane
//! that fills seven of sixteen lanes, and each plane pays a padded copy and an extraction
//! that outweigh its nine multiply-adds per output. Here the `LANES` channels of a block
//! (one image) are transposed into a zero-padded buffer that holds, at every position, one
//! vector of the block's channels (the layout oneDNN calls `nChw16c`). A tap is then one
//! full-width load and one multiply-add per output for all the block's channels, whatever
//! the plane's shape, stride or dilation:
//!
//! - forward: `y[o] = b + sum_t w[t] * xp[o s + t d]`, with `w[t]` and `b` vectors over the
//!   block's channels, accumulated in registers for several outputs at once;
//! - input gradient: `dxp[o s + t d] += w[t] * dy[o]`, tap after tap, into a zeroed buffer
//!   whose interior is then the gradient (only real outputs contribute, so a NaN weight
//!   reaches exactly the inputs its windows read, as in PyTorch);
//! - weight gradient: `dw[t] += sum_o dy[o] * xp[o s + t d]`, image after image.
//!
//! Every lane is its own channel's computation, so a channel's result does not depend on the
//! block or lane it falls in: any split of the channels over threads gives the same bits.
//! Lanes past the last channel of a partial block compute on stale values and are never
//! stored.
//!
//! Scratch: the padded block, a transposed plane, and the block's weights,
//! [`scratch_len`] elements.

use super::geometry::ConvShape;
use crate::Element;
use crate::element::{MAX_LANES, all_finite, transpose, vector_aligned};
use core::marker::PhantomData;

/// Outputs accumulated together in the forward pass.
const RUN: usize = 8;

/// Taps whose weight gradients are accumulated together (one register each): a 3 x 3 kernel
/// in one pass over the outputs.
const TAP_GROUP: usize = 9;

/// Padded block positions up to which this path is taken: the block (`positions x LANES`
/// elements) then stays in L1 beside its transposed planes (16 x 16 padded positions).
const MAX_POSITIONS: usize = 256;

/// Whether the geometry takes this path: depthwise with one output channel per input
/// channel, on planes whose rows are shorter than a vector and whose padded block is small.
pub(crate) fn applies<T: Element>(s: &ConvShape) -> bool {
    s.cg == 1
        && s.kg == 1
        && s.axes[2].output < T::LANES
        && Blocked::<T>::of(s).is_some_and(|b| b.positions <= MAX_POSITIONS)
}

/// Scratch elements of this path: the padded block, a plane of positions (input or output,
/// whichever is larger) and one vector of weights per tap. Saturates where it overflows.
pub(crate) fn scratch_len<T: Element>(s: &ConvShape) -> usize {
    let Some(positions) = block_positions::<T>(s) else {
        return usize::MAX;
    };
    positions
        .saturating_add(s.in_plane.max(s.out_plane))
        .saturating_add(s.taps)
        .saturating_add(1)
        .saturating_mul(T::LANES)
}

/// Positions of the padded block that every pass of the geometry fits in: its own, or, where
/// the input gradient is a forward pass ([`gather_form`]), that pass's if it is larger.
fn block_positions<T: Element>(s: &ConvShape) -> Option<usize> {
    let own = Blocked::<T>::of(s)?.positions;
    Some(gather_form::<T>(s).map_or(own, |(_, t)| own.max(t.positions)))
}

/// The input gradient as a forward pass over the output gradient with the kernel flipped
/// (stride 1, [`ConvShape::transposed`]), and its block layout, where this path serves it.
fn gather_form<T: Element>(s: &ConvShape) -> Option<(ConvShape, Blocked<T>)> {
    let t = s.transposed().filter(|t| applies::<T>(t))?;
    Some((t, Blocked::<T>::of(&t)?))
}

/// The padded block's layout: position `(d, h, w)` holds the block's channels at elements
/// `((d * eh + h) * ew + w) * LANES ..` of the buffer.
#[derive(Clone, Copy, Debug)]
struct Blocked<T> {
    /// Extents along D, H, W: every position a window reads and every input position.
    ext: [usize; 3],
    positions: usize,
    /// A position holds `T::LANES` channels.
    lanes: PhantomData<T>,
}

impl<T: Element> Blocked<T> {
    fn of(s: &ConvShape) -> Option<Self> {
        let mut ext = [0; 3];
        for (e, a) in ext.iter_mut().zip(&s.axes) {
            let read = a
                .output
                .checked_sub(1)?
                .checked_mul(a.stride)?
                .checked_add((a.kernel - 1).checked_mul(a.dilation)?)?
                .checked_add(1)?;
            *e = read.max(a.pad_lo.checked_add(a.input)?);
        }
        let positions = ext[0].checked_mul(ext[1])?.checked_mul(ext[2])?;
        Some(Blocked {
            ext,
            positions,
            lanes: PhantomData,
        })
    }

    /// The first element of position `(d, h, w)`.
    #[inline(always)]
    fn at(&self, d: usize, h: usize, w: usize) -> usize {
        ((d * self.ext[1] + h) * self.ext[2] + w) * T::LANES
    }

    /// The first element of the position tap `t` reads, relative to the window's origin.
    fn tap(&self, s: &ConvShape, t: usize) -> usize {
        let [az, ay, ax] = s.axes;
        let (kd, kh, kw) = (
            t / (ay.kernel * ax.kernel),
            (t / ax.kernel) % ay.kernel,
            t % ax.kernel,
        );
        self.at(kd * az.dilation, kh * ay.dilation, kw * ax.dilation)
    }

    /// The first element of output `(od, oh, 0)`'s window origin.
    #[inline(always)]
    fn origin(&self, s: &ConvShape, od: usize, oh: usize) -> usize {
        let [az, ay, _] = s.axes;
        self.at(od * az.stride, oh * ay.stride, 0)
    }

    /// The first element of the last output's window origin: windows start further into the
    /// block with every output, so the hot loops check their reads against it once.
    fn last_origin(&self, s: &ConvShape) -> usize {
        let [az, ay, ax] = s.axes;
        self.origin(s, az.output - 1, ay.output - 1) + (ax.output - 1) * ax.stride * T::LANES
    }

    /// Calls `f(input row offset in a plane, first element of the row in the block)` for every
    /// input row.
    fn for_each_input_row(&self, s: &ConvShape, mut f: impl FnMut(usize, usize)) {
        let [az, ay, ax] = s.axes;
        for id in 0..az.input {
            for ih in 0..ay.input {
                let at = self.at(id + az.pad_lo, ih + ay.pad_lo, ax.pad_lo);
                f((id * ay.input + ih) * ax.input, at);
            }
        }
    }
}

/// The scratch of one call, split.
struct Buffers<'a, T> {
    /// The padded block (`positions x LANES`).
    block: &'a mut [T],
    /// One plane of positions, transposed (`max(in_plane, out_plane) x LANES`).
    plane: &'a mut [T],
    /// One vector per tap: the block's weights, or their gradients.
    taps: &'a mut [T],
}

impl<'a, T: Element> Buffers<'a, T> {
    fn split(s: &ConvShape, b: &Blocked<T>, scratch: &'a mut [T]) -> Self {
        let l = T::LANES;
        let positions = block_positions::<T>(s).unwrap_or(b.positions);
        let scratch = vector_aligned(scratch);
        let (block, rest) = scratch.split_at_mut(positions * l);
        let (plane, rest) = rest.split_at_mut(s.in_plane.max(s.out_plane) * l);
        Buffers {
            block,
            plane,
            taps: &mut rest[..s.taps * l],
        }
    }
}

/// Copies `nb` channel planes (`src`, one after another) into the interior of the padded
/// block, through `plane`; the padding keeps its zeros.
fn gather<T: Element>(
    s: &ConvShape,
    b: &Blocked<T>,
    src: &[T],
    nb: usize,
    plane: &mut [T],
    block: &mut [T],
) {
    let p = s.in_plane;
    transpose(src, p, nb, p, plane, T::LANES);
    let row = s.axes[2].input * T::LANES;
    b.for_each_input_row(s, |from, to| {
        let from = from * T::LANES;
        block[to..to + row].copy_from_slice(&plane[from..from + row]);
    });
}

/// The block's weights, one vector per tap: `taps[t * LANES + l] = w[(c0 + l) * taps + t]`.
fn block_weights<T: Element>(s: &ConvShape, w: &[T], c0: usize, nb: usize, taps: &mut [T]) {
    transpose(&w[c0 * s.taps..], s.taps, nb, s.taps, taps, T::LANES);
}

/// `y = conv(x, w) + bias` for the channels `channels` (all of them, or whole blocks of a
/// single image's: `y` then holds their planes, from the first one's), block of channels
/// after block, image after image.
pub(crate) fn forward<T: Element>(
    s: &ConvShape,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
    channels: core::ops::Range<usize>,
    scratch: &mut [T],
) {
    let Some(b) = Blocked::<T>::of(s) else {
        return;
    };
    let l = T::LANES;
    let mut buf = Buffers::split(s, &b, scratch);
    buf.block.fill(T::ZERO);
    for c0 in channels.clone().step_by(l) {
        let nb = l.min(channels.end - c0);
        block_weights(s, w, c0, nb, buf.taps);
        let mut lanes = [T::ZERO; MAX_LANES];
        if let Some(bias) = bias {
            lanes[..nb].copy_from_slice(&bias[c0..c0 + nb]);
        }
        let at = (c0, channels.start, nb);
        forward_images(s, &b, x, y, at, T::load_full(&lanes), &mut buf);
    }
}

/// The forward pass of channels `c0..c0 + nb` over the batch, from `x` into `y` (whose
/// planes start at channel `first`), with the block's weights in `buf.taps`.
fn forward_images<T: Element>(
    s: &ConvShape,
    b: &Blocked<T>,
    x: &[T],
    y: &mut [T],
    (c0, first, nb): (usize, usize, usize),
    bias: T::Simd,
    buf: &mut Buffers<'_, T>,
) {
    for n in 0..s.batch {
        let x_b = &x[(n * s.in_channels + c0) * s.in_plane..];
        gather(s, b, x_b, nb, buf.plane, buf.block);
        forward_block(s, b, buf.block, buf.taps, bias, buf.plane);
        let y_b = &mut y[(n * s.out_channels + c0 - first) * s.out_plane..];
        transpose(buf.plane, T::LANES, s.out_plane, nb, y_b, s.out_plane);
    }
}

/// The block's outputs (`out_plane x LANES`, into `out`) from its padded input, row by row in
/// runs of up to `RUN` outputs, the last run of a row as long as what is left of it: each
/// output's taps are a chain of dependent multiply-adds, so a row of 7 is one run of 7
/// chains, not 4 + 2 + 1.
#[allow(unsafe_code)]
fn forward_block<T: Element>(
    s: &ConvShape,
    b: &Blocked<T>,
    block: &[T],
    weights: &[T],
    bias: T::Simd,
    out: &mut [T],
) {
    let [az, ay, ax] = s.axes;
    let l = T::LANES;
    let step = ax.stride * l;
    // Every read of the runs below, checked once: windows start further into the block with
    // every output, so the last output's last tap reads the furthest.
    let last = b.last_origin(s);
    assert!(last + b.tap(s, s.taps - 1) + l <= block.len() && s.taps * l <= weights.len());
    assert!(out.len() >= s.out_plane * l);
    let mut o = 0;
    for od in 0..az.output {
        for oh in 0..ay.output {
            let origin = b.origin(s, od, oh);
            let mut ow = 0;
            while ow < ax.output {
                let first = origin + ow * step;
                let out = &mut out[o * l..];
                // SAFETY: every run's reads lie within the bounds checked above, and its
                // stores within `out`, checked above too.
                let n = unsafe {
                    match ax.output - ow {
                        RUN.. => outputs::<T, RUN>(s, b, block, weights, bias, first, out),
                        7 => outputs::<T, 7>(s, b, block, weights, bias, first, out),
                        6 => outputs::<T, 6>(s, b, block, weights, bias, first, out),
                        5 => outputs::<T, 5>(s, b, block, weights, bias, first, out),
                        4 => outputs::<T, 4>(s, b, block, weights, bias, first, out),
                        3 => outputs::<T, 3>(s, b, block, weights, bias, first, out),
                        2 => outputs::<T, 2>(s, b, block, weights, bias, first, out),
                        _ => outputs::<T, 1>(s, b, block, weights, bias, first, out),
                    }
                };
                ow += n;
                o += n;
            }
        }
    }
}

/// `U` neighbouring outputs along W, the first one's window starting at element `first` of the
/// block; returns `U`.
///
/// # Safety
/// Every tap's reads, `first + tap + u * stride_w * LANES + LANES` for `u < U`, lie within
/// `block`; `weights` holds `taps` vectors and `out` `U`.
#[inline(always)]
#[allow(unsafe_code)]
unsafe fn outputs<T: Element, const U: usize>(
    s: &ConvShape,
    b: &Blocked<T>,
    block: &[T],
    weights: &[T],
    bias: T::Simd,
    first: usize,
    out: &mut [T],
) -> usize {
    let [az, ay, ax] = s.axes;
    // The vector width as a constant, so that the unchecked slices below have a known length
    // and the loads check nothing more.
    let l = T::LANES;
    let step = ax.stride * l;
    let mut acc = [bias; U];
    let mut t = 0;
    for kd in 0..az.kernel {
        for kh in 0..ay.kernel {
            let row = first + b.at(kd * az.dilation, kh * ay.dilation, 0);
            for kw in 0..ax.kernel {
                let at = row + kw * ax.dilation * l;
                // SAFETY: `t < taps`, and the reads are in bounds (the caller's contract).
                let wv = T::load_full(unsafe { weights.get_unchecked(t * l..t * l + l) });
                for (u, a) in acc.iter_mut().enumerate() {
                    // SAFETY: as above.
                    let i = at + u * step;
                    let x = T::load_full(unsafe { block.get_unchecked(i..i + l) });
                    *a = T::mul_add(wv, x, *a);
                }
                t += 1;
            }
        }
    }
    // By reference: moving the array out copied it through the stack in 32-byte halves that
    // the 64-byte loads then waited on.
    for (u, a) in acc.iter().enumerate() {
        T::store(*a, &mut out[u * l..]);
    }
    U
}

/// `dx` from `dy` and `w` for the channels `channels` (all of them, or whole blocks of a
/// single image's: `dx` then holds their planes, from the first one's), block of channels
/// after block, image after image.
pub(crate) fn backward_input<T: Element>(
    s: &ConvShape,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
    channels: core::ops::Range<usize>,
    scratch: &mut [T],
) {
    let Some(b) = Blocked::<T>::of(s) else {
        return;
    };
    let ax = s.axes[2];
    let l = T::LANES;
    let mut buf = Buffers::split(s, &b, scratch);
    let gather_form = gather_form::<T>(s);
    let zero = T::splat(T::ZERO);
    for c0 in channels.clone().step_by(l) {
        let nb = l.min(channels.end - c0);
        block_weights(s, w, c0, nb, buf.taps);
        // The gather form multiplies the padding of `dy` by the weights too: with a weight
        // that is not finite it would put NaN where no output reaches, so such a block
        // scatters.
        let finite = all_finite(&w[c0 * s.taps..(c0 + nb) * s.taps]);
        if let Some((t, tb)) = gather_form.filter(|_| finite) {
            // Flipped: tap `i` of the forward pass is tap `taps - 1 - i` of the kernel.
            for i in 0..s.taps / 2 {
                let j = s.taps - 1 - i;
                let (head, tail) = buf.taps.split_at_mut(j * l);
                head[i * l..(i + 1) * l].swap_with_slice(&mut tail[..l]);
            }
            buf.block.fill(T::ZERO);
            forward_images(&t, &tb, dy, dx, (c0, channels.start, nb), zero, &mut buf);
            continue;
        }
        for n in 0..s.batch {
            let dy_b = &dy[(n * s.out_channels + c0) * s.out_plane..];
            transpose(dy_b, s.out_plane, nb, s.out_plane, buf.plane, l);
            buf.block.fill(T::ZERO);
            for t in 0..s.taps {
                scatter_tap(
                    s,
                    &b,
                    &buf.taps[t * l..][..l],
                    b.tap(s, t),
                    buf.plane,
                    buf.block,
                );
            }
            let row = ax.input * l;
            b.for_each_input_row(s, |to, from| {
                let to = to * l;
                buf.plane[to..to + row].copy_from_slice(&buf.block[from..from + row]);
            });
            let dx_b = &mut dx[(n * s.in_channels + c0 - channels.start) * s.in_plane..];
            transpose(buf.plane, l, s.in_plane, nb, dx_b, s.in_plane);
        }
    }
}

/// `block[o s + tap] += w * dy[o]` for every output `o`: one tap of the input gradient. The
/// outputs' positions are distinct, so the updates of one tap do not wait on each other.
#[allow(unsafe_code)]
fn scatter_tap<T: Element>(
    s: &ConvShape,
    b: &Blocked<T>,
    w: &[T],
    tap: usize,
    dy: &[T],
    block: &mut [T],
) {
    let [az, ay, ax] = s.axes;
    let l = T::LANES;
    let step = ax.stride * l;
    let wv = T::load_full(w);
    // Every update below, checked once: positions grow with the output index.
    let last = b.last_origin(s) + tap;
    assert!(last + l <= block.len() && s.out_plane * l <= dy.len());
    let mut o = 0;
    for od in 0..az.output {
        for oh in 0..ay.output {
            let row = b.origin(s, od, oh) + tap;
            for ow in 0..ax.output {
                let (at, from) = (row + ow * step, o * l);
                // SAFETY: `at + l <= last + l <= block.len()` and
                // `from + l <= out_plane * l <= dy.len()`, checked above.
                unsafe {
                    let g = T::load_full(dy.get_unchecked(from..from + l));
                    let d = block.get_unchecked_mut(at..at + l);
                    T::store(T::mul_add(wv, g, T::load_full(d)), d);
                }
                o += 1;
            }
        }
    }
}

/// The weight gradient of channels `channels` into `dw` (theirs only), block after block,
/// each summed over the images in order.
pub(crate) fn backward_weight_channels<T: Element>(
    s: &ConvShape,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
    channels: core::ops::Range<usize>,
    scratch: &mut [T],
) {
    let Some(b) = Blocked::<T>::of(s) else {
        return;
    };
    let l = T::LANES;
    let buf = Buffers::split(s, &b, scratch);
    buf.block.fill(T::ZERO);
    for c0 in channels.clone().step_by(l) {
        let nb = l.min(channels.end - c0);
        buf.taps.fill(T::ZERO);
        for n in 0..s.batch {
            gather(
                s,
                &b,
                &x[(n * s.in_channels + c0) * s.in_plane..],
                nb,
                buf.plane,
                buf.block,
            );
            let dy_b = &dy[(n * s.out_channels + c0) * s.out_plane..];
            transpose(dy_b, s.out_plane, nb, s.out_plane, buf.plane, l);
            let mut t0 = 0;
            while t0 < s.taps {
                // The widest group that fits what is left, so no tap is computed twice.
                t0 += match s.taps - t0 {
                    TAP_GROUP.. => {
                        tap_sums::<T, TAP_GROUP>(s, &b, buf.block, buf.plane, t0, buf.taps)
                    }
                    4.. => tap_sums::<T, 4>(s, &b, buf.block, buf.plane, t0, buf.taps),
                    2.. => tap_sums::<T, 2>(s, &b, buf.block, buf.plane, t0, buf.taps),
                    _ => tap_sums::<T, 1>(s, &b, buf.block, buf.plane, t0, buf.taps),
                };
            }
        }
        let dw_b = &mut dw[(c0 - channels.start) * s.taps..];
        transpose(buf.taps, l, s.taps, nb, dw_b, s.taps);
    }
}

/// Adds `sum_o dy[o] * block[o s + t d]` for taps `t0..t0 + G` onto their vectors in `sums`;
/// returns `G`.
#[inline(always)]
#[allow(unsafe_code)]
fn tap_sums<T: Element, const G: usize>(
    s: &ConvShape,
    b: &Blocked<T>,
    block: &[T],
    dy: &[T],
    t0: usize,
    sums: &mut [T],
) -> usize {
    let [az, ay, ax] = s.axes;
    let l = T::LANES;
    let step = ax.stride * l;
    let taps: [usize; G] = core::array::from_fn(|g| b.tap(s, t0 + g));
    // Every read below, checked once: positions grow with the output index and the tap.
    let last = b.last_origin(s);
    assert!(last + taps[G - 1] + l <= block.len() && s.out_plane * l <= dy.len());
    let mut acc = [T::splat(T::ZERO); G];
    let mut o = 0;
    for od in 0..az.output {
        for oh in 0..ay.output {
            let origin = b.origin(s, od, oh);
            for ow in 0..ax.output {
                let (at, from) = (origin + ow * step, o * l);
                // SAFETY: `from + l <= out_plane * l <= dy.len()` and
                // `at + tap + l <= last + taps[G - 1] + l <= block.len()`, checked above (the
                // taps grow with their index).
                let g = T::load_full(unsafe { dy.get_unchecked(from..from + l) });
                for (a, &tap) in acc.iter_mut().zip(&taps) {
                    let i = at + tap;
                    // SAFETY: as above.
                    let x = T::load_full(unsafe { block.get_unchecked(i..i + l) });
                    *a = T::mul_add(g, x, *a);
                }
                o += 1;
            }
        }
    }
    for (g, a) in acc.iter().enumerate() {
        let at = (t0 + g) * l;
        T::store(T::load_full(&sums[at..]) + *a, &mut sums[at..]);
    }
    G
}
