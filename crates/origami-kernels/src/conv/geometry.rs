//! The validated geometry of a convolution, generic over the number of spatial dimensions.

use crate::Error;
use crate::window::{Axis, checked_product, nonzero, tensor_len, to3, window_extent};

/// The parameters of an N-dimensional convolution, in PyTorch's terms.
///
/// Tensors are contiguous in PyTorch's layout: input `[batch, in_channels, *input_size]`,
/// weight `[out_channels, in_channels / groups, *kernel_size]`, bias `[out_channels]`, output
/// `[batch, out_channels, *output_size]`. Padding is zeros, given before (`padding_lo`) and
/// after (`padding_hi`) each spatial dimension, so asymmetric ("same") padding is expressible:
/// the lecture's left-anchored convolution, whose window starts at the output position and
/// reads zeros past the end, is `padding_lo = 0, padding_hi = K - 1`.
///
/// Build one with [`ConvSpec::new`] and the `with_*` methods, then validate it with
/// [`ConvSpec::build`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvSpec<const D: usize> {
    /// Number of images `N`.
    pub batch: usize,
    /// Input channels `C`.
    pub in_channels: usize,
    /// Output channels `K`.
    pub out_channels: usize,
    /// Spatial input extents, outermost first (`[D, H, W]` in 3-D).
    pub input_size: [usize; D],
    /// Kernel extents.
    pub kernel_size: [usize; D],
    /// Step between neighbouring windows.
    pub stride: [usize; D],
    /// Zeros before each spatial dimension.
    pub padding_lo: [usize; D],
    /// Zeros after each spatial dimension.
    pub padding_hi: [usize; D],
    /// Spacing between kernel taps (1 is a dense kernel).
    pub dilation: [usize; D],
    /// Channel groups: input and output channels are split into `groups` independent
    /// convolutions. `groups == in_channels` is a depthwise convolution.
    pub groups: usize,
}

impl<const D: usize> ConvSpec<D> {
    /// A dense convolution with stride 1, no padding, no dilation and one group.
    pub const fn new(
        batch: usize,
        in_channels: usize,
        out_channels: usize,
        input_size: [usize; D],
        kernel_size: [usize; D],
    ) -> Self {
        ConvSpec {
            batch,
            in_channels,
            out_channels,
            input_size,
            kernel_size,
            stride: [1; D],
            padding_lo: [0; D],
            padding_hi: [0; D],
            dilation: [1; D],
            groups: 1,
        }
    }

    /// Sets the stride.
    pub const fn with_stride(mut self, stride: [usize; D]) -> Self {
        self.stride = stride;
        self
    }

    /// Sets the same zero padding before and after each dimension (PyTorch's `padding`).
    pub const fn with_padding(mut self, padding: [usize; D]) -> Self {
        self.padding_lo = padding;
        self.padding_hi = padding;
        self
    }

    /// Sets the padding before (`lo`) and after (`hi`) each dimension separately.
    pub const fn with_padding_lo_hi(mut self, lo: [usize; D], hi: [usize; D]) -> Self {
        self.padding_lo = lo;
        self.padding_hi = hi;
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

    /// Validates the parameters and computes the output size.
    ///
    /// Every size must be at least 1, `groups` must divide both channel counts, the dilated
    /// window must fit in the padded input, and every tensor's element count must fit in
    /// `usize`. The error names the first value that breaks a rule.
    pub fn build(self) -> Result<ConvNd<D>, Error> {
        ConvNd::new(self)
    }
}

/// A validated convolution geometry: [`ConvSpec`] plus everything derived from it.
///
/// Holding one proves the spec is valid, so the operations only check slice lengths.
/// `D` is the number of spatial dimensions: 1, 2 or 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvNd<const D: usize> {
    spec: ConvSpec<D>,
    output_size: [usize; D],
    pub(crate) shape: ConvShape,
}

/// A 1-D convolution geometry (`[N, C, W]`).
pub type Conv1d = ConvNd<1>;
/// A 2-D convolution geometry (`[N, C, H, W]`).
pub type Conv2d = ConvNd<2>;
/// A 3-D convolution geometry (`[N, C, D, H, W]`).
pub type Conv3d = ConvNd<3>;

/// The geometry promoted to three spatial dimensions, as every kernel sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvShape {
    pub batch: usize,
    /// Images of the whole operation: `batch` is a part of them where threads split it.
    pub whole_batch: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub groups: usize,
    /// Input channels per group.
    pub cg: usize,
    /// Output channels per group.
    pub kg: usize,
    pub axes: [Axis; 3],
    /// Elements of one input channel plane (product of the input extents).
    pub in_plane: usize,
    /// Elements of one output channel plane.
    pub out_plane: usize,
    /// Taps of one kernel (product of the kernel extents).
    pub taps: usize,
    pub input_len: usize,
    pub weight_len: usize,
    pub output_len: usize,
    /// Rows of a group's unrolled matrix: `cg * taps`.
    pub unrolled_rows: usize,
    /// Elements of one group's unrolled matrix: `cg * taps * out_plane`.
    pub unrolled_len: usize,
}

impl ConvShape {
    pub fn input(&self) -> [usize; 3] {
        self.axes.map(|a| a.input)
    }

    /// The input gradient of a stride-1 convolution as a forward convolution: of `dY`, with
    /// each group's kernel flipped and its channels swapped, padded by `reach - pad` where
    /// `reach = (K - 1) dilation`, so that `dX = conv(dY, flip(W)^T)`. `None` where a stride
    /// is not 1 or a padding exceeds the reach (the gradient would need negative padding).
    pub fn transposed(&self) -> Option<ConvShape> {
        let mut t = *self;
        for (a, b) in t.axes.iter_mut().zip(&self.axes) {
            let reach = (b.kernel - 1) * b.dilation;
            if b.stride != 1 || b.pad_lo > reach {
                return None;
            }
            *a = Axis {
                input: b.output,
                output: b.input,
                pad_lo: reach - b.pad_lo,
                ..*b
            };
        }
        t.in_channels = self.out_channels;
        t.out_channels = self.in_channels;
        t.cg = self.kg;
        t.kg = self.cg;
        t.in_plane = self.out_plane;
        t.out_plane = self.in_plane;
        t.input_len = self.output_len;
        t.output_len = self.input_len;
        t.unrolled_rows = self.kg * self.taps;
        t.unrolled_len = t.unrolled_rows * t.out_plane;
        Some(t)
    }

    /// The shape with `out_channels` output channels, of one group only (a block of the
    /// output channels of an ungrouped convolution, whose weights are contiguous rows).
    #[cfg(feature = "rayon")]
    pub fn with_out_channels(&self, out_channels: usize) -> Self {
        debug_assert_eq!(self.groups, 1);
        ConvShape {
            out_channels,
            kg: out_channels,
            weight_len: out_channels * self.cg * self.taps,
            output_len: self.batch * out_channels * self.out_plane,
            ..*self
        }
    }

    /// The same geometry over `batch` images (a part of the batch).
    #[cfg(feature = "rayon")]
    pub fn with_batch(&self, batch: usize) -> Self {
        ConvShape {
            batch,
            input_len: batch * self.in_channels * self.in_plane,
            output_len: batch * self.out_channels * self.out_plane,
            ..*self
        }
    }
}

impl<const D: usize> ConvNd<D> {
    fn new(spec: ConvSpec<D>) -> Result<Self, Error> {
        if D == 0 || D > 3 {
            return Err(Error::InvalidValue {
                name: "D",
                dim: None,
                value: D,
                reason: "convolutions have 1, 2 or 3 spatial dimensions",
            });
        }
        nonzero(spec.batch, "batch", None)?;
        nonzero(spec.in_channels, "in_channels", None)?;
        nonzero(spec.out_channels, "out_channels", None)?;
        nonzero(spec.groups, "groups", None)?;
        for (name, channels) in [
            ("in_channels", spec.in_channels),
            ("out_channels", spec.out_channels),
        ] {
            if channels % spec.groups != 0 {
                return Err(Error::NotDivisible {
                    name,
                    value: channels,
                    groups: spec.groups,
                });
            }
        }
        let mut output_size = [0; D];
        for (d, out) in output_size.iter_mut().enumerate() {
            nonzero(spec.input_size[d], "input_size", Some(d))?;
            nonzero(spec.kernel_size[d], "kernel_size", Some(d))?;
            nonzero(spec.stride[d], "stride", Some(d))?;
            nonzero(spec.dilation[d], "dilation", Some(d))?;
            let window = window_extent(spec.kernel_size[d], spec.dilation[d])?;
            let padded_input = spec.input_size[d]
                .checked_add(spec.padding_lo[d])
                .and_then(|s| s.checked_add(spec.padding_hi[d]))
                .ok_or(Error::Overflow {
                    name: "padded input size",
                })?;
            if padded_input < window {
                return Err(Error::WindowTooLarge {
                    dim: d,
                    padded_input,
                    window,
                });
            }
            *out = (padded_input - window) / spec.stride[d] + 1;
        }

        let lo = to3(spec.padding_lo, 0);
        let input = to3(spec.input_size, 1);
        let output = to3(output_size, 1);
        let kernel = to3(spec.kernel_size, 1);
        let stride = to3(spec.stride, 1);
        let dilation = to3(spec.dilation, 1);
        let axes = core::array::from_fn(|i| Axis {
            input: input[i],
            output: output[i],
            kernel: kernel[i],
            stride: stride[i],
            dilation: dilation[i],
            pad_lo: lo[i],
        });
        let cg = spec.in_channels / spec.groups;
        let kg = spec.out_channels / spec.groups;
        let in_plane = checked_product(&spec.input_size, "input plane")?;
        let out_plane = checked_product(&output_size, "output plane")?;
        let taps = checked_product(&spec.kernel_size, "kernel taps")?;
        let shape = ConvShape {
            batch: spec.batch,
            whole_batch: spec.batch,
            in_channels: spec.in_channels,
            out_channels: spec.out_channels,
            groups: spec.groups,
            cg,
            kg,
            axes,
            in_plane,
            out_plane,
            taps,
            input_len: tensor_len(&[spec.batch, spec.in_channels, in_plane], "input length")?,
            weight_len: tensor_len(&[spec.out_channels, cg, taps], "weight length")?,
            output_len: tensor_len(&[spec.batch, spec.out_channels, out_plane], "output length")?,
            unrolled_rows: checked_product(&[cg, taps], "unrolled matrix rows")?,
            unrolled_len: tensor_len(&[cg, taps, out_plane], "unrolled matrix length")?,
        };
        Ok(ConvNd {
            spec,
            output_size,
            shape,
        })
    }

    /// The parameters this geometry was built from.
    pub fn spec(&self) -> &ConvSpec<D> {
        &self.spec
    }

    /// Spatial output extents: `(in + lo + hi - dilation * (k - 1) - 1) / stride + 1`.
    pub fn output_size(&self) -> [usize; D] {
        self.output_size
    }

    /// Elements of the input tensor `[N, C, *input_size]`.
    pub fn input_len(&self) -> usize {
        self.shape.input_len
    }

    /// Elements of the weight tensor `[K, C / groups, *kernel_size]`.
    pub fn weight_len(&self) -> usize {
        self.shape.weight_len
    }

    /// Elements of the bias vector `[K]`.
    pub fn bias_len(&self) -> usize {
        self.spec.out_channels
    }

    /// Elements of the output tensor `[N, K, *output_size]`.
    pub fn output_len(&self) -> usize {
        self.shape.output_len
    }

    /// The spatial axes promoted to three dimensions, outermost first: a 1-D or 2-D geometry
    /// has leading axes of extent 1 (input, output and kernel), stride and dilation 1, no
    /// padding.
    pub fn axes(&self) -> [Axis; 3] {
        self.shape.axes
    }

    /// Multiply-adds of one forward pass (each backward pass costs the same).
    /// Saturates at `u64::MAX`.
    pub fn macs(&self) -> u64 {
        (self.shape.output_len as u64).saturating_mul(self.shape.unrolled_rows as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_size_follows_pytorch() {
        // torch.nn.Conv2d(3, 8, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2))
        // on 11 x 13 gives 6 x 9.
        let g = ConvSpec::new(2, 3, 8, [11, 13], [3, 5])
            .with_stride([2, 1])
            .with_padding([1, 2])
            .with_dilation([1, 2])
            .build()
            .unwrap();
        assert_eq!(g.output_size(), [6, 9]);
        assert_eq!(g.input_len(), 2 * 3 * 11 * 13);
        assert_eq!(g.weight_len(), 8 * 3 * 3 * 5);
        assert_eq!(g.output_len(), 2 * 8 * 6 * 9);
    }

    #[test]
    fn left_anchored_padding_keeps_the_length() {
        let g = ConvSpec::new(1, 1, 1, [6], [3])
            .with_padding_lo_hi([0], [2])
            .build()
            .unwrap();
        assert_eq!(g.output_size(), [6]);
    }

    #[test]
    fn errors_name_the_bad_value() {
        let base = ConvSpec::new(1, 4, 6, [8, 8], [3, 3]);
        assert_eq!(
            base.with_stride([1, 0]).build(),
            Err(Error::Zero {
                name: "stride",
                dim: Some(1)
            })
        );
        assert_eq!(
            base.with_groups(4).build(),
            Err(Error::NotDivisible {
                name: "out_channels",
                value: 6,
                groups: 4
            })
        );
        assert_eq!(
            ConvSpec::new(1, 4, 6, [2, 8], [3, 3]).build(),
            Err(Error::WindowTooLarge {
                dim: 0,
                padded_input: 2,
                window: 3
            })
        );
        assert_eq!(
            ConvSpec::new(usize::MAX / 2, 4, 6, [8, 8], [3, 3]).build(),
            Err(Error::Overflow {
                name: "input length"
            })
        );
        assert_eq!(
            ConvSpec::new(1, 1, 1, [8], [3])
                .with_padding_lo_hi([usize::MAX], [1])
                .build(),
            Err(Error::Overflow {
                name: "padded input size"
            })
        );
    }
}
