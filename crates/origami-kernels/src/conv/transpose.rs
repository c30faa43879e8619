//! Transposed convolution (PyTorch's `conv_transpose{1,2,3}d`), as the adjoint of a forward
//! convolution.
//!
//! A transposed convolution from `C_in` to `C_out` channels is exactly the input gradient of
//! the forward convolution from `C_out` to `C_in` channels with the same kernel, stride,
//! padding, dilation and groups, and its PyTorch weight `[C_in, C_out / groups, *kernel]` is
//! that forward convolution's weight as it lies in memory. So this module only translates
//! the parameters; the work is done by [`ConvNd::backward_input`] with any algorithm, and the
//! transposed convolution's own gradients are the forward convolution and its weight
//! gradient.
//!
//! Output size: `(in - 1) * stride - lo - hi + dilation * (kernel - 1) + output_padding + 1`.

use super::{ConvAlgorithm, ConvNd, ConvOp, ConvSpec};
use crate::error::check_len;
use crate::window::nonzero;
use crate::{Element, Error};

/// The parameters of a transposed convolution, in PyTorch's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvTransposeSpec<const D: usize> {
    /// Number of images.
    pub batch: usize,
    /// Input channels (the adjoint convolution's output channels).
    pub in_channels: usize,
    /// Output channels (the adjoint convolution's input channels).
    pub out_channels: usize,
    /// Spatial input extents.
    pub input_size: [usize; D],
    /// Kernel extents.
    pub kernel_size: [usize; D],
    /// Stride of the adjoint convolution (the upsampling factor).
    pub stride: [usize; D],
    /// Padding of the adjoint convolution, removed from the start of the output.
    pub padding_lo: [usize; D],
    /// Padding of the adjoint convolution, removed from the end of the output.
    pub padding_hi: [usize; D],
    /// Extra elements at the end of the output, to pick among the sizes that the same
    /// forward convolution maps to one size; must be smaller than the stride.
    pub output_padding: [usize; D],
    /// Spacing between kernel taps.
    pub dilation: [usize; D],
    /// Channel groups.
    pub groups: usize,
}

impl<const D: usize> ConvTransposeSpec<D> {
    /// A transposed convolution with stride 1, no padding, no dilation and one group.
    pub const fn new(
        batch: usize,
        in_channels: usize,
        out_channels: usize,
        input_size: [usize; D],
        kernel_size: [usize; D],
    ) -> Self {
        ConvTransposeSpec {
            batch,
            in_channels,
            out_channels,
            input_size,
            kernel_size,
            stride: [1; D],
            padding_lo: [0; D],
            padding_hi: [0; D],
            output_padding: [0; D],
            dilation: [1; D],
            groups: 1,
        }
    }

    /// Sets the stride.
    pub const fn with_stride(mut self, stride: [usize; D]) -> Self {
        self.stride = stride;
        self
    }

    /// Sets symmetric padding (PyTorch's `padding`).
    pub const fn with_padding(mut self, padding: [usize; D]) -> Self {
        self.padding_lo = padding;
        self.padding_hi = padding;
        self
    }

    /// Sets the output padding.
    pub const fn with_output_padding(mut self, output_padding: [usize; D]) -> Self {
        self.output_padding = output_padding;
        self
    }

    /// Sets the dilation.
    pub const fn with_dilation(mut self, dilation: [usize; D]) -> Self {
        self.dilation = dilation;
        self
    }

    /// Sets the number of groups.
    pub const fn with_groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }

    /// Validates the parameters and builds the adjoint forward geometry.
    pub fn build(self) -> Result<ConvTransposeNd<D>, Error> {
        // Checked here, in this spec's own terms, because the adjoint swaps the channel names.
        nonzero(self.batch, "batch", None)?;
        nonzero(self.in_channels, "in_channels", None)?;
        nonzero(self.out_channels, "out_channels", None)?;
        nonzero(self.groups, "groups", None)?;
        for (name, value) in [
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
        ] {
            if value % self.groups != 0 {
                return Err(Error::NotDivisible {
                    name,
                    value,
                    groups: self.groups,
                });
            }
        }
        let mut output_size = [0; D];
        for (d, out) in output_size.iter_mut().enumerate() {
            nonzero(self.input_size[d], "input_size", Some(d))?;
            nonzero(self.kernel_size[d], "kernel_size", Some(d))?;
            nonzero(self.stride[d], "stride", Some(d))?;
            nonzero(self.dilation[d], "dilation", Some(d))?;
            if self.output_padding[d] >= self.stride[d] {
                return Err(Error::InvalidValue {
                    name: "output_padding",
                    dim: Some(d),
                    value: self.output_padding[d],
                    reason: "must be smaller than the stride",
                });
            }
            let overflow = Error::Overflow {
                name: "transposed output size",
            };
            let full = (self.input_size[d] - 1)
                .checked_mul(self.stride[d])
                .and_then(|v| v.checked_add(self.dilation[d].checked_mul(self.kernel_size[d] - 1)?))
                .and_then(|v| v.checked_add(self.output_padding[d] + 1))
                .ok_or(overflow)?;
            *out = full
                .checked_sub(self.padding_lo[d])
                .and_then(|v| v.checked_sub(self.padding_hi[d]))
                .filter(|&v| v > 0)
                .ok_or(Error::InvalidValue {
                    name: "padding",
                    dim: Some(d),
                    value: self.padding_lo[d].saturating_add(self.padding_hi[d]),
                    reason: "padding removes the whole transposed output",
                })?;
        }
        let adjoint = ConvSpec {
            batch: self.batch,
            in_channels: self.out_channels,
            out_channels: self.in_channels,
            input_size: output_size,
            kernel_size: self.kernel_size,
            stride: self.stride,
            padding_lo: self.padding_lo,
            padding_hi: self.padding_hi,
            dilation: self.dilation,
            groups: self.groups,
        }
        .build()?;
        debug_assert_eq!(adjoint.output_size(), self.input_size);
        Ok(ConvTransposeNd {
            spec: self,
            adjoint,
        })
    }
}

/// A validated transposed convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTransposeNd<const D: usize> {
    spec: ConvTransposeSpec<D>,
    adjoint: ConvNd<D>,
}

impl<const D: usize> ConvTransposeNd<D> {
    /// The parameters this geometry was built from.
    pub fn spec(&self) -> &ConvTransposeSpec<D> {
        &self.spec
    }

    /// The forward convolution whose input gradient this is.
    pub fn adjoint(&self) -> &ConvNd<D> {
        &self.adjoint
    }

    /// Spatial output extents.
    pub fn output_size(&self) -> [usize; D] {
        self.adjoint.spec().input_size
    }

    /// Elements of the input `[N, C_in, *input_size]`.
    pub fn input_len(&self) -> usize {
        self.adjoint.output_len()
    }

    /// Elements of the weight `[C_in, C_out / groups, *kernel_size]`.
    pub fn weight_len(&self) -> usize {
        self.adjoint.weight_len()
    }

    /// Elements of the output `[N, C_out, *output_size]`.
    pub fn output_len(&self) -> usize {
        self.adjoint.input_len()
    }

    /// Scratch elements [`ConvTransposeNd::forward`] needs with `algo`.
    pub fn scratch_len<T: Element>(&self, algo: ConvAlgorithm) -> usize {
        self.adjoint.scratch_len::<T>(ConvOp::BackwardInput, algo)
    }

    /// `output = conv_transpose(input, weight) + bias`, with `bias` of length `C_out`.
    pub fn forward<T: Element>(
        &self,
        algo: ConvAlgorithm,
        input: &[T],
        weight: &[T],
        bias: Option<&[T]>,
        output: &mut [T],
        scratch: &mut [T],
    ) -> Result<(), Error> {
        if let Some(b) = bias {
            check_len("bias", self.spec.out_channels, b.len())?;
        }
        self.adjoint
            .backward_input(algo, input, weight, output, scratch)?;
        if let Some(b) = bias {
            let plane = self.adjoint.shape.in_plane;
            for (i, chunk) in output.chunks_exact_mut(plane).enumerate() {
                let bk = b[i % self.spec.out_channels];
                for v in chunk {
                    *v += bk;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_size_follows_pytorch() -> Result<(), Error> {
        // torch.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1) on 5x7
        // gives 10x14.
        let t = ConvTransposeSpec::new(1, 4, 2, [5, 7], [3, 3])
            .with_stride([2, 2])
            .with_padding([1, 1])
            .with_output_padding([1, 1])
            .build()?;
        assert_eq!(t.output_size(), [10, 14]);
        assert_eq!(t.adjoint().output_size(), [5, 7]);
        assert_eq!(t.weight_len(), 4 * 2 * 9);
        Ok(())
    }

    #[test]
    fn rejects_output_padding_not_below_stride() {
        let r = ConvTransposeSpec::new(1, 1, 1, [4], [3])
            .with_stride([2])
            .with_output_padding([2])
            .build();
        assert!(matches!(
            r,
            Err(Error::InvalidValue {
                name: "output_padding",
                ..
            })
        ));
    }
}
