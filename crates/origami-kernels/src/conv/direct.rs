//! `Direct` convolution: the lecture's zip-reduce of the weight window with the input window,
//! vectorised over neighbouring output positions along the innermost axis.
//!
//! Forward, per output element (3-D; 1-D and 2-D are the same with unit extents):
//!
//! ```text
//! y[n,k,o] = bias[k] + sum_{c in group(k)} sum_{t in kernel} w[k,c,t] * x[n,c,o*s + t*d - p]
//! ```
//!
//! For a run of `LANES` outputs along W whose windows all lie inside the input, the inputs
//! read by one tap are `LANES` consecutive elements (stride 1) or a strided gather, so each
//! tap is one broadcast weight and one fused multiply-add per vector. Outputs whose windows
//! touch the padding take a scalar path with bounds checks. No scratch memory is used.
//! Depthwise geometries (one input channel per group) go to the `depthwise` module, whose
//! padded planes are the only scratch `Direct` asks for.
//!
//! The input gradient is the same zip-reduce of the output gradient with the *flipped*
//! window and the anchor reversed: input `i` receives from output `o = (i + p - t*d) / s`
//! wherever that division is exact, which for stride 1 is again a contiguous run. The weight
//! gradient correlates the input with the output gradient: one dot product per weight.
//!
//! Padding is zeros multiplied like any input (IEEE, as in PyTorch): `w * 0` is NaN when `w`
//! is NaN or infinite, so such a weight makes NaN even at outputs where it only meets
//! padding, and so does such an output gradient in the weight gradient. The fast paths skip
//! padding taps; when a channel's weights (forward) or output gradients (weight gradient)
//! hold a non-finite value, [`forward_padding_term`] and [`weight_padding_term`] add the
//! products with the padding back, so every algorithm computes the same function.
//!
//! Cost: `2 * N * K * (C / groups) * taps * out_plane` flops for each operation.

use super::depthwise;
use super::geometry::ConvShape;
use crate::Element;
use crate::window::{Axis, inverse_tap, tap};

/// Vectors of outputs computed together in the wide path: enough independent FMA chains to
/// hide the FMA latency.
const UNROLL: usize = 4;

/// Calls `f(x_row_start, w_row_start)` for every `(c, kd, kh)` whose input row is inside the
/// input for output row `(od, oh)`; offsets are relative to the group's input and to the
/// output channel's weights.
#[inline(always)]
fn for_each_window_row(s: &ConvShape, od: usize, oh: usize, mut f: impl FnMut(usize, usize)) {
    let [az, ay, ax] = s.axes;
    for c in 0..s.cg {
        for kd in 0..az.kernel {
            let Some(id) = tap(od, kd, &az) else { continue };
            for kh in 0..ay.kernel {
                let Some(ih) = tap(oh, kh, &ay) else { continue };
                let x_row = c * s.in_plane + (id * ay.input + ih) * ax.input;
                let w_row = ((c * az.kernel + kd) * ay.kernel + kh) * ax.kernel;
                f(x_row, w_row);
            }
        }
    }
}

/// Scratch elements `Direct` needs: none, except for depthwise geometries.
pub(crate) fn scratch_len<T: Element>(s: &ConvShape) -> usize {
    if depthwise::applies(s) {
        depthwise::scratch_len::<T>(s)
    } else {
        0
    }
}

/// `y = conv(x, w) + bias`.
pub(crate) fn forward<T: Element>(
    s: &ConvShape,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
    scratch: &mut [T],
) {
    if depthwise::applies(s) {
        return depthwise::forward(s, x, w, bias, y, scratch);
    }
    let [az, ay, ax] = s.axes;
    let (lo, hi) = ax.interior_outputs();
    let mut finite = FiniteCache::default();
    for (row, y_row) in y.chunks_exact_mut(ax.output).enumerate() {
        let oh = row % ay.output;
        let od = (row / ay.output) % az.output;
        let k = (row / (az.output * ay.output)) % s.out_channels;
        let n = row / (s.out_channels * az.output * ay.output);
        let g = k / s.kg;
        let x_g = &x[(n * s.in_channels + g * s.cg) * s.in_plane..][..s.cg * s.in_plane];
        let w_k = &w[k * s.unrolled_rows..][..s.unrolled_rows];
        let b = bias.map_or(T::ZERO, |b| b[k]);
        let w_finite = finite.get(k, || w_k.iter().all(|v| v.to_f64().is_finite()));

        // Outputs whose windows touch the padding: the taps inside the input along W are
        // one contiguous range, found once per output rather than tested per tap.
        let scalar = |ow: usize| {
            let mut acc = b;
            let (Some(k0), Some(k1)) = (ax.first_valid_tap(ow), ax.last_valid_tap(ow)) else {
                return acc;
            };
            let i0 = ow * ax.stride + k0 * ax.dilation - ax.pad_lo;
            for_each_window_row(s, od, oh, |xr, wr| {
                let x_row = &x_g[xr + i0..];
                for (j, &wv) in w_k[wr + k0..=wr + k1].iter().enumerate() {
                    acc += wv * x_row[j * ax.dilation];
                }
            });
            acc
        };
        let mut ow = 0;
        while ow < lo {
            y_row[ow] = scalar(ow);
            ow += 1;
        }
        while ow + UNROLL * T::LANES <= hi {
            forward_run::<T, UNROLL>(s, &ax, od, oh, x_g, w_k, b, ow, &mut y_row[ow..]);
            ow += UNROLL * T::LANES;
        }
        while ow + T::LANES <= hi {
            forward_run::<T, 1>(s, &ax, od, oh, x_g, w_k, b, ow, &mut y_row[ow..]);
            ow += T::LANES;
        }
        // The interior's remainder as one partial vector: the lanes past `hi` read inputs
        // that exist (loads zero-fill past the row) and are never stored. Narrow planes
        // (7x7, 14x14) would otherwise take the scalar path for every output.
        if ow < hi {
            forward_run::<T, 1>(s, &ax, od, oh, x_g, w_k, b, ow, &mut y_row[ow..hi]);
            ow = hi;
        }
        while ow < ax.output {
            y_row[ow] = scalar(ow);
            ow += 1;
        }
        if !w_finite {
            for (ow, v) in y_row.iter_mut().enumerate() {
                *v += forward_padding_term(s, w_k, [od, oh, ow]);
            }
        }
    }
}

/// Whether the values of one output channel are all finite, computed once per channel as
/// rows of the same channel come in a run.
#[derive(Default)]
struct FiniteCache(Option<(usize, bool)>);

impl FiniteCache {
    fn get(&mut self, k: usize, compute: impl FnOnce() -> bool) -> bool {
        match self.0 {
            Some((at, finite)) if at == k => finite,
            _ => {
                let finite = compute();
                self.0 = Some((k, finite));
                finite
            }
        }
    }
}

/// Whether tap `t` of output `o` reads padding along any axis.
fn reads_padding(s: &ConvShape, o: [usize; 3], t: [usize; 3]) -> bool {
    (0..3).any(|a| tap(o[a], t[a], &s.axes[a]).is_none())
}

/// `sum of w * 0` over the taps of output `o` that fall in the padding: zero unless a weight
/// is NaN or infinite.
fn forward_padding_term<T: Element>(s: &ConvShape, w_k: &[T], o: [usize; 3]) -> T {
    let [az, ay, ax] = s.axes;
    let mut acc = T::ZERO;
    for (i, &wv) in w_k.iter().enumerate() {
        let t = [
            (i / (ay.kernel * ax.kernel)) % az.kernel,
            (i / ax.kernel) % ay.kernel,
            i % ax.kernel,
        ];
        if reads_padding(s, o, t) {
            acc += wv * T::ZERO;
        }
    }
    acc
}

/// `sum of dy * 0` over the outputs whose tap `t` falls in the padding: zero unless an
/// output gradient of channel `k` is NaN or infinite.
fn weight_padding_term<T: Element>(s: &ConvShape, dy: &[T], k: usize, t: [usize; 3]) -> T {
    let [az, ay, ax] = s.axes;
    let mut acc = T::ZERO;
    for n in 0..s.batch {
        let dy_k = &dy[(n * s.out_channels + k) * s.out_plane..][..s.out_plane];
        for (i, &g) in dy_k.iter().enumerate() {
            let o = [
                i / (ay.output * ax.output),
                (i / ax.output) % ay.output,
                i % ax.output,
            ];
            debug_assert!(o[0] < az.output);
            if reads_padding(s, o, t) {
                acc += g * T::ZERO;
            }
        }
    }
    acc
}

/// `U` vectors of interior outputs starting at `ow0`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn forward_run<T: Element, const U: usize>(
    s: &ConvShape,
    ax: &Axis,
    od: usize,
    oh: usize,
    x_g: &[T],
    w_k: &[T],
    b: T,
    ow0: usize,
    out: &mut [T],
) {
    let mut acc = [T::splat(b); U];
    for_each_window_row(s, od, oh, |xr, wr| {
        let x_row = &x_g[xr..xr + ax.input];
        for (kw, &wv) in w_k[wr..wr + ax.kernel].iter().enumerate() {
            let wv = T::splat(wv);
            // Interior: the first input read is at or after the row start.
            let first = ow0 * ax.stride + kw * ax.dilation - ax.pad_lo;
            for (u, a) in acc.iter_mut().enumerate() {
                let xv = if ax.stride == 1 {
                    T::load(&x_row[first + u * T::LANES..])
                } else {
                    T::gather(x_row, first + u * T::LANES * ax.stride, ax.stride)
                };
                *a = T::mul_add(xv, wv, *a);
            }
        }
    });
    for (a, chunk) in acc.iter().zip(out.chunks_mut(T::LANES)) {
        T::store(*a, chunk);
    }
}

/// Calls `f(dy_row_start, w_row_start)` for every `(k, kd, kh)` whose output row reads input
/// row `(id, ih)` of channel `c_local` (the reversed anchor); offsets are relative to the
/// image's output gradient and to the whole weight tensor.
#[inline(always)]
fn for_each_gradient_row(
    s: &ConvShape,
    g: usize,
    c_local: usize,
    id: usize,
    ih: usize,
    mut f: impl FnMut(usize, usize),
) {
    let [az, ay, ax] = s.axes;
    for k in g * s.kg..(g + 1) * s.kg {
        for kd in 0..az.kernel {
            let Some(od) = inverse_tap(id, kd, &az) else {
                continue;
            };
            for kh in 0..ay.kernel {
                let Some(oh) = inverse_tap(ih, kh, &ay) else {
                    continue;
                };
                let dy_row = k * s.out_plane + (od * ay.output + oh) * ax.output;
                let w_row = (((k * s.cg + c_local) * az.kernel + kd) * ay.kernel + kh) * ax.kernel;
                f(dy_row, w_row);
            }
        }
    }
}

/// `dx = conv_transpose(dy, w)`: the flipped window with the anchor reversed.
pub(crate) fn backward_input<T: Element>(
    s: &ConvShape,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
    scratch: &mut [T],
) {
    if depthwise::applies(s) {
        return depthwise::backward_input(s, dy, w, dx, scratch);
    }
    let [az, ay, ax] = s.axes;
    // Inputs that every tap maps to an output, reachable with contiguous loads only when
    // the stride is 1: input i reads output i + pad - kw * dilation.
    let (lo, hi) = if ax.stride == 1 {
        let lo = ((ax.kernel - 1) * ax.dilation).saturating_sub(ax.pad_lo);
        let hi = ax.output.saturating_sub(ax.pad_lo).min(ax.input);
        (lo.min(hi), hi)
    } else {
        (0, 0)
    };
    let k_len = s.out_channels * s.out_plane;
    for (row, dx_row) in dx.chunks_exact_mut(ax.input).enumerate() {
        let ih = row % ay.input;
        let id = (row / ay.input) % az.input;
        let c = (row / (az.input * ay.input)) % s.in_channels;
        let n = row / (s.in_channels * az.input * ay.input);
        let (g, c_local) = (c / s.cg, c % s.cg);
        let dy_n = &dy[n * k_len..][..k_len];

        let scalar = |iw: usize| {
            let mut acc = T::ZERO;
            for_each_gradient_row(s, g, c_local, id, ih, |dr, wr| {
                for kw in 0..ax.kernel {
                    if let Some(ow) = inverse_tap(iw, kw, &ax) {
                        acc += w[wr + kw] * dy_n[dr + ow];
                    }
                }
            });
            acc
        };
        let mut iw = 0;
        while iw < lo {
            dx_row[iw] = scalar(iw);
            iw += 1;
        }
        let at = (g, c_local, id, ih);
        while iw + UNROLL * T::LANES <= hi {
            let out = &mut dx_row[iw..iw + UNROLL * T::LANES];
            backward_input_run::<T, UNROLL>(s, &ax, at, dy_n, w, iw, out);
            iw += UNROLL * T::LANES;
        }
        while iw + T::LANES <= hi {
            backward_input_run::<T, 1>(s, &ax, at, dy_n, w, iw, &mut dx_row[iw..iw + T::LANES]);
            iw += T::LANES;
        }
        // As in the forward pass: the remainder as one partial vector.
        if iw < hi {
            backward_input_run::<T, 1>(s, &ax, at, dy_n, w, iw, &mut dx_row[iw..hi]);
            iw = hi;
        }
        while iw < ax.input {
            dx_row[iw] = scalar(iw);
            iw += 1;
        }
    }
}

/// Up to `U` vectors of interior input gradients starting at `iw0` (stride 1 along W),
/// stored into `out` (as many as it holds).
#[inline(always)]
fn backward_input_run<T: Element, const U: usize>(
    s: &ConvShape,
    ax: &Axis,
    (g, c_local, id, ih): (usize, usize, usize, usize),
    dy_n: &[T],
    w: &[T],
    iw0: usize,
    out: &mut [T],
) {
    let mut acc = [T::splat(T::ZERO); U];
    for_each_gradient_row(s, g, c_local, id, ih, |dr, wr| {
        let dy_row = &dy_n[dr..dr + ax.output];
        for (kw, &wv) in w[wr..wr + ax.kernel].iter().enumerate() {
            let wv = T::splat(wv);
            let first = iw0 + ax.pad_lo - kw * ax.dilation;
            for (u, a) in acc.iter_mut().enumerate() {
                *a = T::mul_add(T::load(&dy_row[first + u * T::LANES..]), wv, *a);
            }
        }
    });
    for (a, chunk) in acc.iter().zip(out.chunks_mut(T::LANES)) {
        T::store(*a, chunk);
    }
}

/// `dw[k,c,t] = sum_{n,o} dy[n,k,o] * x[n,c,o*s + t*d - p]`.
pub(crate) fn backward_weight<T: Element>(
    s: &ConvShape,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
    scratch: &mut [T],
) {
    if depthwise::applies(s) {
        return depthwise::backward_weight(s, x, dy, dw, scratch);
    }
    let [az, ay, ax] = s.axes;
    let mut finite = FiniteCache::default();
    for (row, dw_row) in dw.chunks_exact_mut(ax.kernel).enumerate() {
        let kh = row % ay.kernel;
        let kd = (row / ay.kernel) % az.kernel;
        let c_local = (row / (az.kernel * ay.kernel)) % s.cg;
        let k = row / (s.cg * az.kernel * ay.kernel);
        let c = k / s.kg * s.cg + c_local;
        let dy_finite = finite.get(k, || {
            (0..s.batch).all(|n| {
                dy[(n * s.out_channels + k) * s.out_plane..][..s.out_plane]
                    .iter()
                    .all(|v| v.to_f64().is_finite())
            })
        });
        for (kw, dw_kw) in dw_row.iter_mut().enumerate() {
            let (lo, hi) = ax.valid_outputs(kw);
            let mut acc = [T::splat(T::ZERO); UNROLL];
            let mut tail = T::ZERO;
            for n in 0..s.batch {
                let x_c = &x[(n * s.in_channels + c) * s.in_plane..][..s.in_plane];
                let dy_k = &dy[(n * s.out_channels + k) * s.out_plane..][..s.out_plane];
                for od in 0..az.output {
                    let Some(id) = tap(od, kd, &az) else { continue };
                    for oh in 0..ay.output {
                        let Some(ih) = tap(oh, kh, &ay) else { continue };
                        let x_row = &x_c[(id * ay.input + ih) * ax.input..][..ax.input];
                        let dy_row = &dy_k[(od * ay.output + oh) * ax.output..][..ax.output];
                        tail += dot_run(&ax, kw, lo, hi, x_row, dy_row, &mut acc);
                    }
                }
            }
            *dw_kw = acc.iter().fold(tail, |t, &a| t + T::reduce_add(a));
            if !dy_finite {
                *dw_kw += weight_padding_term(s, dy, k, [kd, kh, kw]);
            }
        }
    }
}

/// Accumulates `sum_{ow in lo..hi} dy_row[ow] * x_row[ow*s + kw*d - p]` into the vector
/// accumulators and returns the part that did not fill a vector.
#[inline(always)]
fn dot_run<T: Element>(
    ax: &Axis,
    kw: usize,
    lo: usize,
    hi: usize,
    x_row: &[T],
    dy_row: &[T],
    acc: &mut [T::Simd; UNROLL],
) -> T {
    let at = |ow: usize| ow * ax.stride + kw * ax.dilation - ax.pad_lo;
    let load_x = |ow: usize| {
        if ax.stride == 1 {
            T::load(&x_row[at(ow)..])
        } else {
            T::gather(x_row, at(ow), ax.stride)
        }
    };
    let mut ow = lo;
    while ow + UNROLL * T::LANES <= hi {
        for (u, a) in acc.iter_mut().enumerate() {
            let o = ow + u * T::LANES;
            *a = T::mul_add(T::load(&dy_row[o..]), load_x(o), *a);
        }
        ow += UNROLL * T::LANES;
    }
    while ow + T::LANES <= hi {
        acc[0] = T::mul_add(T::load(&dy_row[ow..]), load_x(ow), acc[0]);
        ow += T::LANES;
    }
    let mut tail = T::ZERO;
    while ow < hi {
        tail += dy_row[ow] * x_row[at(ow)];
        ow += 1;
    }
    tail
}
