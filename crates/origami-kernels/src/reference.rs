//! The obviously correct implementations: the lecture's formulas as plain nested loops,
//! accumulating in `f64`. They are slow (no vectors, no blocking, an index computation per
//! term) and exist to be trusted: every algorithm of the crate is tested against them, and
//! users can cross-check their own data the same way.
//!
//! They read only the user-facing spec of a geometry, never the promoted shapes the kernels
//! use, so a mistake in that promotion cannot hide in both.

use crate::error::check_len;
use crate::window::to3;
use crate::{ConvNd, Element, Error, PoolKind, PoolNd};

/// Everything a reference loop needs, as signed 3-D arrays. Its helpers are always inlined:
/// the loops are generic, so they are compiled in the calling crate, where a call per index
/// would otherwise be most of their time.
struct Dims {
    n: usize,
    c: usize,
    k: usize,
    cg: usize,
    kg: usize,
    input: [usize; 3],
    output: [usize; 3],
    kernel: [usize; 3],
    stride: [i64; 3],
    dilation: [i64; 3],
    pad: [i64; 3],
}

impl Dims {
    fn of<const D: usize>(conv: &ConvNd<D>) -> Self {
        let s = conv.spec();
        let signed = |a: [usize; 3]| a.map(|v| v as i64);
        Dims {
            n: s.batch,
            c: s.in_channels,
            k: s.out_channels,
            cg: s.in_channels / s.groups,
            kg: s.out_channels / s.groups,
            input: to3(s.input_size, 1),
            output: to3(conv.output_size(), 1),
            kernel: to3(s.kernel_size, 1),
            stride: signed(to3(s.stride, 1)),
            dilation: signed(to3(s.dilation, 1)),
            pad: signed(to3(s.padding_lo, 0)),
        }
    }

    #[inline(always)]
    fn positions(extent: [usize; 3]) -> impl Iterator<Item = [usize; 3]> {
        (0..extent[0]).flat_map(move |a| {
            (0..extent[1]).flat_map(move |b| (0..extent[2]).map(move |c| [a, b, c]))
        })
    }

    #[inline(always)]
    fn flat(extent: [usize; 3], p: [usize; 3]) -> usize {
        (p[0] * extent[1] + p[1]) * extent[2] + p[2]
    }

    /// The input position output `o` reads through tap `t`, if not padding.
    #[inline(always)]
    fn tap(&self, o: [usize; 3], t: [usize; 3]) -> Option<[usize; 3]> {
        let mut i = [0; 3];
        for d in 0..3 {
            let v = o[d] as i64 * self.stride[d] + t[d] as i64 * self.dilation[d] - self.pad[d];
            if v < 0 || v >= self.input[d] as i64 {
                return None;
            }
            i[d] = v as usize;
        }
        Some(i)
    }

    /// The output that reads input `i` through tap `t`, if any: the `o` with
    /// `o * s + t * d - p = i`.
    #[inline(always)]
    fn reader(&self, i: [usize; 3], t: [usize; 3]) -> Option<[usize; 3]> {
        let mut o = [0; 3];
        for d in 0..3 {
            let num = i[d] as i64 + self.pad[d] - t[d] as i64 * self.dilation[d];
            if num < 0 || num % self.stride[d] != 0 || num / self.stride[d] >= self.output[d] as i64
            {
                return None;
            }
            o[d] = (num / self.stride[d]) as usize;
        }
        Some(o)
    }

    #[inline(always)]
    fn x(&self, n: usize, c: usize, p: [usize; 3]) -> usize {
        (n * self.c + c) * self.input.iter().product::<usize>() + Self::flat(self.input, p)
    }

    #[inline(always)]
    fn y(&self, n: usize, k: usize, p: [usize; 3]) -> usize {
        (n * self.k + k) * self.output.iter().product::<usize>() + Self::flat(self.output, p)
    }

    #[inline(always)]
    fn w(&self, k: usize, c_local: usize, t: [usize; 3]) -> usize {
        (k * self.cg + c_local) * self.kernel.iter().product::<usize>() + Self::flat(self.kernel, t)
    }
}

/// `output[n,k,o] = bias[k] + sum_{c in group(k), t} weight[k,c,t] * input[n,c,o*s + t*d - p]`.
pub fn conv_forward<T: Element, const D: usize>(
    conv: &ConvNd<D>,
    input: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    output: &mut [T],
) -> Result<(), Error> {
    check_len("input", conv.input_len(), input.len())?;
    check_len("weight", conv.weight_len(), weight.len())?;
    if let Some(b) = bias {
        check_len("bias", conv.bias_len(), b.len())?;
    }
    check_len("output", conv.output_len(), output.len())?;
    let g = Dims::of(conv);
    for n in 0..g.n {
        for k in 0..g.k {
            let group = k / g.kg;
            for o in Dims::positions(g.output) {
                let mut acc = bias.map_or(0.0, |b| b[k].to_f64());
                for cl in 0..g.cg {
                    let c = group * g.cg + cl;
                    for t in Dims::positions(g.kernel) {
                        // Padding is zeros, multiplied like any input: a NaN or infinite
                        // weight makes NaN even where it meets padding (IEEE, as PyTorch).
                        let x = g.tap(o, t).map_or(0.0, |i| input[g.x(n, c, i)].to_f64());
                        acc += weight[g.w(k, cl, t)].to_f64() * x;
                    }
                }
                output[g.y(n, k, o)] = T::from_f64(acc);
            }
        }
    }
    Ok(())
}

/// `grad_input[n,c,i] = sum over (k, t) of weight[k,c,t] * grad_output[n,k,o]` where `o` is
/// the output with `o*s + t*d - p = i`, when there is one: every output and tap that read
/// input `i`.
pub fn conv_backward_input<T: Element, const D: usize>(
    conv: &ConvNd<D>,
    grad_output: &[T],
    weight: &[T],
    grad_input: &mut [T],
) -> Result<(), Error> {
    check_len("grad_output", conv.output_len(), grad_output.len())?;
    check_len("weight", conv.weight_len(), weight.len())?;
    check_len("grad_input", conv.input_len(), grad_input.len())?;
    let g = Dims::of(conv);
    for n in 0..g.n {
        for c in 0..g.c {
            let (group, cl) = (c / g.cg, c % g.cg);
            for i in Dims::positions(g.input) {
                let mut acc = 0.0;
                for k in group * g.kg..(group + 1) * g.kg {
                    for t in Dims::positions(g.kernel) {
                        if let Some(o) = g.reader(i, t) {
                            acc +=
                                weight[g.w(k, cl, t)].to_f64() * grad_output[g.y(n, k, o)].to_f64();
                        }
                    }
                }
                grad_input[g.x(n, c, i)] = T::from_f64(acc);
            }
        }
    }
    Ok(())
}

/// `grad_weight[k,c,t] = sum_{n,o} grad_output[n,k,o] * input[n,c,o*s + t*d - p]`.
pub fn conv_backward_weight<T: Element, const D: usize>(
    conv: &ConvNd<D>,
    input: &[T],
    grad_output: &[T],
    grad_weight: &mut [T],
) -> Result<(), Error> {
    check_len("input", conv.input_len(), input.len())?;
    check_len("grad_output", conv.output_len(), grad_output.len())?;
    check_len("grad_weight", conv.weight_len(), grad_weight.len())?;
    let g = Dims::of(conv);
    for k in 0..g.k {
        let group = k / g.kg;
        for cl in 0..g.cg {
            let c = group * g.cg + cl;
            for t in Dims::positions(g.kernel) {
                let mut acc = 0.0;
                for n in 0..g.n {
                    for o in Dims::positions(g.output) {
                        // As in the forward pass, padding taps multiply a zero.
                        let x = g.tap(o, t).map_or(0.0, |i| input[g.x(n, c, i)].to_f64());
                        acc += grad_output[g.y(n, k, o)].to_f64() * x;
                    }
                }
                grad_weight[g.w(k, cl, t)] = T::from_f64(acc);
            }
        }
    }
    Ok(())
}

/// `grad_bias[k] = sum_{n,o} grad_output[n,k,o]`.
pub fn conv_backward_bias<T: Element, const D: usize>(
    conv: &ConvNd<D>,
    grad_output: &[T],
    grad_bias: &mut [T],
) -> Result<(), Error> {
    check_len("grad_output", conv.output_len(), grad_output.len())?;
    check_len("grad_bias", conv.bias_len(), grad_bias.len())?;
    let g = Dims::of(conv);
    for (k, db) in grad_bias.iter_mut().enumerate() {
        let mut acc = 0.0;
        for n in 0..g.n {
            for o in Dims::positions(g.output) {
                acc += grad_output[g.y(n, k, o)].to_f64();
            }
        }
        *db = T::from_f64(acc);
    }
    Ok(())
}

/// One spatial dimension of a pooling window, as PyTorch's loops see it.
struct PoolAxis {
    input: i64,
    output: usize,
    kernel: usize,
    stride: i64,
    pad: i64,
    dilation: i64,
}

fn pool_axes<const D: usize>(pool: &PoolNd<D>) -> [PoolAxis; 3] {
    let s = pool.spec();
    let (input, output, kernel) = (
        to3(s.input_size, 1),
        to3(pool.output_size(), 1),
        to3(s.kernel_size, 1),
    );
    let (stride, pad, dilation) = (to3(s.stride, 1), to3(s.padding, 0), to3(s.dilation, 1));
    core::array::from_fn(|d| PoolAxis {
        input: input[d] as i64,
        output: output[d],
        kernel: kernel[d],
        stride: stride[d] as i64,
        pad: pad[d] as i64,
        dilation: dilation[d] as i64,
    })
}

/// Visits the window of output `o` in row-major tap order: `f(Some(flat in-plane index))`
/// for taps inside the input, `f(None)` for taps in the padding.
fn pool_window(axes: &[PoolAxis; 3], o: [usize; 3], mut f: impl FnMut(Option<usize>)) {
    let pos = |d: usize, t: usize| {
        let a = &axes[d];
        let i = o[d] as i64 * a.stride - a.pad + t as i64 * a.dilation;
        (0..a.input).contains(&i).then_some(i as usize)
    };
    for t0 in 0..axes[0].kernel {
        for t1 in 0..axes[1].kernel {
            for t2 in 0..axes[2].kernel {
                let at = match (pos(0, t0), pos(1, t1), pos(2, t2)) {
                    (Some(a), Some(b), Some(c)) => {
                        Some((a * axes[1].input as usize + b) * axes[2].input as usize + c)
                    }
                    _ => None,
                };
                f(at);
            }
        }
    }
}

/// PyTorch's average divisor for output `o`: the override, or per dimension the taps before
/// the end of the right padding (`count_include_pad`) or inside the input, multiplied.
fn pool_divisor<const D: usize>(pool: &PoolNd<D>, axes: &[PoolAxis; 3], o: [usize; 3]) -> f64 {
    let s = pool.spec();
    if s.divisor_override != 0 {
        return s.divisor_override as f64;
    }
    let mut count = 1.0;
    for (a, &o) in axes.iter().zip(&o) {
        let start = o as i64 * a.stride - a.pad;
        let end = if s.count_include_pad {
            a.input + a.pad
        } else {
            a.input
        };
        let lo = if s.count_include_pad { -a.pad } else { 0 };
        let taps = (0..a.kernel as i64)
            .map(|t| start + t * a.dilation)
            .filter(|&i| i >= lo && i < end)
            .count();
        count *= taps as f64;
    }
    count
}

fn pool_positions(axes: &[PoolAxis; 3]) -> impl Iterator<Item = [usize; 3]> {
    let ext = [axes[0].output, axes[1].output, axes[2].output];
    (0..ext[0])
        .flat_map(move |a| (0..ext[1]).flat_map(move |b| (0..ext[2]).map(move |c| [a, b, c])))
}

/// Pooling forward with PyTorch's loops: max keeps the first maximum (`v > max`) unless a
/// later value is NaN; sums and averages accumulate in `f64`. For max, `indices` (if given)
/// receives each maximum's flat index within its plane.
pub fn pool_forward<T: Element, const D: usize>(
    pool: &PoolNd<D>,
    kind: PoolKind,
    input: &[T],
    output: &mut [T],
    mut indices: Option<&mut [usize]>,
) -> Result<(), Error> {
    check_len("input", pool.input_len(), input.len())?;
    check_len("output", pool.output_len(), output.len())?;
    if let Some(ix) = indices.as_deref() {
        check_len("indices", pool.output_len(), ix.len())?;
    }
    let axes = pool_axes(pool);
    let in_plane = pool.input_len() / (pool.spec().batch * pool.spec().channels);
    let out_plane = pool.output_len() / (pool.spec().batch * pool.spec().channels);
    for p in 0..pool.spec().batch * pool.spec().channels {
        let x = &input[p * in_plane..][..in_plane];
        for (q, o) in pool_positions(&axes).enumerate() {
            let mut max = f64::NEG_INFINITY;
            let mut arg: Option<usize> = None;
            let mut sum = 0.0;
            pool_window(&axes, o, |at| {
                let Some(i) = at else { return };
                let v = x[i].to_f64();
                if arg.is_none() {
                    arg = Some(i);
                }
                if v > max || v.is_nan() {
                    max = v;
                    arg = Some(i);
                }
                sum += v;
            });
            output[p * out_plane + q] = T::from_f64(match kind {
                PoolKind::Max => max,
                PoolKind::Sum => sum,
                PoolKind::Avg => sum / pool_divisor(pool, &axes, o),
            });
            if let (PoolKind::Max, Some(ix)) = (kind, indices.as_deref_mut()) {
                ix[p * out_plane + q] = arg.unwrap_or(0);
            }
        }
    }
    Ok(())
}

/// Pooling backward: max adds each output gradient to the input its index names; average
/// and sum add it (divided for the average) to every input of its window.
pub fn pool_backward<T: Element, const D: usize>(
    pool: &PoolNd<D>,
    kind: PoolKind,
    grad_output: &[T],
    indices: Option<&[usize]>,
    grad_input: &mut [T],
) -> Result<(), Error> {
    check_len("grad_output", pool.output_len(), grad_output.len())?;
    check_len("grad_input", pool.input_len(), grad_input.len())?;
    let axes = pool_axes(pool);
    let planes = pool.spec().batch * pool.spec().channels;
    let in_plane = pool.input_len() / planes;
    let out_plane = pool.output_len() / planes;
    if kind == PoolKind::Max {
        let ix = indices.unwrap_or(&[]);
        check_len("indices", pool.output_len(), ix.len())?;
        if let Some(&bad) = ix.iter().find(|&&i| i >= in_plane) {
            return Err(Error::InvalidValue {
                name: "indices",
                dim: None,
                value: bad,
                reason: "an index lies outside the input plane",
            });
        }
    }
    grad_input.fill(T::ZERO);
    for p in 0..planes {
        let dx = &mut grad_input[p * in_plane..][..in_plane];
        for (q, o) in pool_positions(&axes).enumerate() {
            let g = grad_output[p * out_plane + q].to_f64();
            match (kind, indices) {
                (PoolKind::Max, Some(ix)) => {
                    let i = ix[p * out_plane + q];
                    dx[i] = T::from_f64(dx[i].to_f64() + g);
                }
                _ => {
                    let g = if kind == PoolKind::Avg {
                        g / pool_divisor(pool, &axes, o)
                    } else {
                        g
                    };
                    pool_window(&axes, o, |at| {
                        if let Some(i) = at {
                            dx[i] = T::from_f64(dx[i].to_f64() + g);
                        }
                    });
                }
            }
        }
    }
    Ok(())
}
