//! Index arithmetic shared by every windowed op: where a window tap lands in the input, which
//! outputs a tap can serve, and the promotion of D-dimensional shapes to three dimensions.
//!
//! Along one dimension, output `o` with kernel tap `k` reads input
//! `i = o * stride + k * dilation - pad_lo`, and reads zero (or nothing, for pooling) when `i`
//! falls in the padding. Kernels are written once over three spatial dimensions; a 1-D or 2-D
//! geometry is a 3-D one whose leading extents are 1 (the lecture's "a 1-D convolution is a
//! 3-D convolution with two extents of 1").

use crate::Error;

/// Prepends `fill` to a D-array to make it three long (`D <= 3`, checked by the geometries).
#[inline]
pub(crate) fn to3<const D: usize>(a: [usize; D], fill: usize) -> [usize; 3] {
    let mut out = [fill; 3];
    out[3 - D..].copy_from_slice(&a);
    out
}

/// The input index read by output `o` through tap `k`, or `None` when it is padding.
#[inline(always)]
pub(crate) fn tap(o: usize, k: usize, axis: &Axis) -> Option<usize> {
    (o * axis.stride + k * axis.dilation)
        .checked_sub(axis.pad_lo)
        .filter(|&i| i < axis.input)
}

/// The output fed by input `i` through tap `k`, or `None` when no output reads it that way.
/// This is the "reversed anchor" of the backward pass.
#[inline(always)]
pub(crate) fn inverse_tap(i: usize, k: usize, axis: &Axis) -> Option<usize> {
    let t = (i + axis.pad_lo).checked_sub(k * axis.dilation)?;
    if t % axis.stride != 0 {
        return None;
    }
    let o = t / axis.stride;
    (o < axis.output).then_some(o)
}

/// One spatial dimension of a windowed op, as a validated geometry promoted to three
/// dimensions describes it ([`ConvNd::axes`](crate::ConvNd::axes),
/// [`PoolNd::axes`](crate::PoolNd::axes)). Other backends (the GPU crate) read their index
/// arithmetic from here rather than re-deriving it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Axis {
    /// Input extent.
    pub input: usize,
    /// Output extent.
    pub output: usize,
    /// Kernel (window) extent in taps.
    pub kernel: usize,
    /// Step between neighbouring windows.
    pub stride: usize,
    /// Spacing between taps.
    pub dilation: usize,
    /// Padding before the input (pooling pads as much after it).
    pub pad_lo: usize,
}

impl Axis {
    /// The outputs `[lo, hi)` for which tap `k` reads inside the input.
    #[inline]
    pub fn valid_outputs(&self, k: usize) -> (usize, usize) {
        let off = k * self.dilation;
        if self.stride == 1 {
            // The common case, without the divisions (packers call this once per row).
            let lo = self.pad_lo.saturating_sub(off);
            let hi = (self.input + self.pad_lo)
                .saturating_sub(off)
                .min(self.output);
            return (lo.min(hi), hi);
        }
        // o * stride + off >= pad_lo
        let lo = self.pad_lo.saturating_sub(off).div_ceil(self.stride);
        // o * stride + off - pad_lo <= input - 1
        let hi = match (self.input - 1 + self.pad_lo).checked_sub(off) {
            Some(room) => (room / self.stride + 1).min(self.output),
            None => 0,
        };
        (lo.min(hi), hi)
    }

    /// The first tap of output `o`'s window that reads inside the input.
    #[inline]
    pub fn first_valid_tap(&self, o: usize) -> Option<usize> {
        let start = o * self.stride; // in padded coordinates
        let before = self.pad_lo.saturating_sub(start);
        let t = if self.dilation == 1 {
            before
        } else {
            before.div_ceil(self.dilation)
        };
        (t < self.kernel && start + t * self.dilation - self.pad_lo < self.input).then_some(t)
    }

    /// The last tap of output `o`'s window that reads inside the input.
    #[inline]
    pub fn last_valid_tap(&self, o: usize) -> Option<usize> {
        let first = self.first_valid_tap(o)?;
        // The first valid tap proves `start + first * dilation <= input - 1 + pad`.
        let room = self.input - 1 + self.pad_lo - o * self.stride;
        let t = if self.dilation == 1 {
            room
        } else {
            room / self.dilation
        };
        Some(t.min(self.kernel - 1).max(first))
    }

    /// Taps of output `o`'s window that read inside the input.
    #[inline]
    pub fn taps_in_input(&self, o: usize) -> usize {
        match (self.first_valid_tap(o), self.last_valid_tap(o)) {
            (Some(a), Some(b)) => b - a + 1,
            _ => 0,
        }
    }

    /// Taps of output `o`'s window that lie before the end of the right padding (PyTorch's
    /// `pool_size` with `count_include_pad`; symmetric padding of `pad_lo` on both sides).
    #[inline]
    pub fn taps_in_padded(&self, o: usize) -> usize {
        let end = self.input + 2 * self.pad_lo; // exclusive, padded coordinates
        let room = end.saturating_sub(o * self.stride + 1);
        if o * self.stride >= end {
            0
        } else {
            let t = if self.dilation == 1 {
                room
            } else {
                room / self.dilation
            };
            (t + 1).min(self.kernel)
        }
    }

    /// The outputs `[lo, hi)` for which every tap reads inside the input.
    #[inline]
    pub fn interior_outputs(&self) -> (usize, usize) {
        let (lo, _) = self.valid_outputs(0);
        let (_, hi) = self.valid_outputs(self.kernel - 1);
        (lo.min(hi), hi)
    }
}

/// `values[0] * values[1] * ...`, or an overflow error naming `name`.
pub(crate) fn checked_product(values: &[usize], name: &'static str) -> Result<usize, Error> {
    values
        .iter()
        .try_fold(1usize, |acc, &v| acc.checked_mul(v))
        .ok_or(Error::Overflow { name })
}

/// `values[0] * values[1] * ...` elements, checked to fit a slice of the widest element type:
/// no slice may exceed `isize::MAX` bytes, so a tensor with more elements than
/// `isize::MAX / 8` cannot exist in `f64`, and the geometry is refused.
pub(crate) fn tensor_len(values: &[usize], name: &'static str) -> Result<usize, Error> {
    let len = checked_product(values, name)?;
    match len.checked_mul(core::mem::size_of::<f64>()) {
        Some(bytes) if bytes <= isize::MAX as usize => Ok(len),
        _ => Err(Error::Overflow { name }),
    }
}

/// Fails with [`Error::Zero`] when `value` is zero.
pub(crate) fn nonzero(value: usize, name: &'static str, dim: Option<usize>) -> Result<(), Error> {
    if value == 0 {
        Err(Error::Zero { name, dim })
    } else {
        Ok(())
    }
}

/// `dilation * (kernel - 1) + 1`, the span of a dilated window.
pub(crate) fn window_extent(kernel: usize, dilation: usize) -> Result<usize, Error> {
    dilation
        .checked_mul(kernel - 1)
        .and_then(|e| e.checked_add(1))
        .ok_or(Error::Overflow {
            name: "window extent",
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(axis: &Axis, k: usize) -> (usize, usize) {
        let valid: Vec<usize> = (0..axis.output)
            .filter(|&o| tap(o, k, axis).is_some())
            .collect();
        match (valid.first(), valid.last()) {
            (Some(&a), Some(&b)) => (a, b + 1),
            _ => (0, 0),
        }
    }

    #[test]
    fn valid_outputs_match_brute_force() {
        for input in 1..if cfg!(miri) { 6 } else { 9 } {
            for kernel in 1..4 {
                for stride in 1..4 {
                    for dilation in 1..3 {
                        for pad_lo in 0..4 {
                            for pad_hi in 0..4 {
                                let extent = dilation * (kernel - 1) + 1;
                                let padded = input + pad_lo + pad_hi;
                                if padded < extent {
                                    continue;
                                }
                                let axis = Axis {
                                    input,
                                    output: (padded - extent) / stride + 1,
                                    kernel,
                                    stride,
                                    dilation,
                                    pad_lo,
                                };
                                for k in 0..kernel {
                                    let (lo, hi) = axis.valid_outputs(k);
                                    let (blo, bhi) = brute(&axis, k);
                                    if bhi > blo {
                                        assert_eq!((lo, hi), (blo, bhi), "{axis:?} k={k}");
                                    } else {
                                        assert!(lo >= hi, "{axis:?} k={k}");
                                    }
                                    for o in 0..axis.output {
                                        if let Some(i) = tap(o, k, &axis) {
                                            assert_eq!(inverse_tap(i, k, &axis), Some(o));
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn promotes_to_three_dims() {
        assert_eq!(to3([7], 1), [1, 1, 7]);
        assert_eq!(to3([5, 7], 1), [1, 5, 7]);
        assert_eq!(to3([3, 5, 7], 0), [3, 5, 7]);
    }
}
