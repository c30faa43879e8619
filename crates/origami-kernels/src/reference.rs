//! The obviously correct implementations: the lecture's formulas as plain nested loops,
//! accumulating in `f64`. They are slow (no vectors, no blocking, an index computation per
//! term) and exist to be trusted: every algorithm of the crate is tested against them, and
//! users can cross-check their own data the same way.
//!
//! They read only the user-facing spec of a geometry, never the promoted shapes the kernels
//! use, so a mistake in that promotion cannot hide in both.

use crate::error::check_len;
use crate::window::to3;
use crate::{ConvNd, Element, Error};

/// Everything a reference loop needs, as signed 3-D arrays.
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

    fn positions(extent: [usize; 3]) -> impl Iterator<Item = [usize; 3]> {
        (0..extent[0]).flat_map(move |a| {
            (0..extent[1]).flat_map(move |b| (0..extent[2]).map(move |c| [a, b, c]))
        })
    }

    fn flat(extent: [usize; 3], p: [usize; 3]) -> usize {
        (p[0] * extent[1] + p[1]) * extent[2] + p[2]
    }

    /// The input position output `o` reads through tap `t`, if not padding.
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

    fn x(&self, n: usize, c: usize, p: [usize; 3]) -> usize {
        (n * self.c + c) * self.input.iter().product::<usize>() + Self::flat(self.input, p)
    }

    fn y(&self, n: usize, k: usize, p: [usize; 3]) -> usize {
        (n * self.k + k) * self.output.iter().product::<usize>() + Self::flat(self.output, p)
    }

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
                        if let Some(i) = g.tap(o, t) {
                            acc += weight[g.w(k, cl, t)].to_f64() * input[g.x(n, c, i)].to_f64();
                        }
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
                        if let Some(i) = g.tap(o, t) {
                            acc +=
                                grad_output[g.y(n, k, o)].to_f64() * input[g.x(n, c, i)].to_f64();
                        }
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
