//! The validated geometry of a pooling layer, generic over the number of spatial dimensions.

use crate::Error;
use crate::window::{Axis, checked_product, nonzero, tensor_len, to3, window_extent};

/// The parameters of an N-dimensional pooling layer, in PyTorch's terms.
///
/// Tensors are contiguous `[batch, channels, *spatial]`. One geometry serves every
/// [`PoolKind`](super::PoolKind); `count_include_pad` and `divisor_override` matter to
/// average pooling only. Global pooling is a window as large as the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolSpec<const D: usize> {
    /// Number of images `N`.
    pub batch: usize,
    /// Channels `C`.
    pub channels: usize,
    /// Spatial input extents, outermost first.
    pub input_size: [usize; D],
    /// Window extents.
    pub kernel_size: [usize; D],
    /// Step between windows (PyTorch's default is the kernel size, as [`PoolSpec::new`] sets).
    pub stride: [usize; D],
    /// Implicit padding on both sides, at most half the kernel size. Padding never wins a max
    /// and is never summed; it counts in the average's divisor when `count_include_pad`.
    pub padding: [usize; D],
    /// Spacing between window taps.
    pub dilation: [usize; D],
    /// Round the output size up instead of down, so a last partial window is kept when it
    /// starts inside the input or the left padding.
    pub ceil_mode: bool,
    /// Average pooling divides by the whole window, padding included (PyTorch's default),
    /// instead of by the taps that read the input.
    pub count_include_pad: bool,
    /// When non-zero, average pooling divides by this instead.
    pub divisor_override: usize,
}

impl<const D: usize> PoolSpec<D> {
    /// Non-overlapping windows (`stride = kernel_size`), no padding or dilation, floor mode,
    /// `count_include_pad` on: PyTorch's defaults.
    pub const fn new(
        batch: usize,
        channels: usize,
        input_size: [usize; D],
        kernel_size: [usize; D],
    ) -> Self {
        PoolSpec {
            batch,
            channels,
            input_size,
            kernel_size,
            stride: kernel_size,
            padding: [0; D],
            dilation: [1; D],
            ceil_mode: false,
            count_include_pad: true,
            divisor_override: 0,
        }
    }

    /// A window covering the whole input (global pooling).
    pub const fn global(batch: usize, channels: usize, input_size: [usize; D]) -> Self {
        Self::new(batch, channels, input_size, input_size)
    }

    /// Sets the stride.
    pub const fn with_stride(mut self, stride: [usize; D]) -> Self {
        self.stride = stride;
        self
    }

    /// Sets the padding.
    pub const fn with_padding(mut self, padding: [usize; D]) -> Self {
        self.padding = padding;
        self
    }

    /// Sets the dilation.
    pub const fn with_dilation(mut self, dilation: [usize; D]) -> Self {
        self.dilation = dilation;
        self
    }

    /// Sets `ceil_mode`.
    pub const fn with_ceil_mode(mut self, ceil_mode: bool) -> Self {
        self.ceil_mode = ceil_mode;
        self
    }

    /// Sets `count_include_pad`.
    pub const fn with_count_include_pad(mut self, count_include_pad: bool) -> Self {
        self.count_include_pad = count_include_pad;
        self
    }

    /// Sets `divisor_override` (0 for none).
    pub const fn with_divisor_override(mut self, divisor: usize) -> Self {
        self.divisor_override = divisor;
        self
    }

    /// Validates the parameters and computes the output size (PyTorch's
    /// `pooling_output_shape`).
    pub fn build(self) -> Result<PoolNd<D>, Error> {
        PoolNd::new(self)
    }
}

/// A validated pooling geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolNd<const D: usize> {
    spec: PoolSpec<D>,
    output_size: [usize; D],
    pub(crate) shape: PoolShape,
}

/// A 1-D pooling geometry.
pub type Pool1d = PoolNd<1>;
/// A 2-D pooling geometry.
pub type Pool2d = PoolNd<2>;
/// A 3-D pooling geometry.
pub type Pool3d = PoolNd<3>;

/// The geometry promoted to three spatial dimensions, as the kernels see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PoolShape {
    /// `N * C`: pooling treats every channel plane alike.
    pub planes: usize,
    pub axes: [Axis; 3],
    pub in_plane: usize,
    pub out_plane: usize,
    pub input_len: usize,
    pub output_len: usize,
    pub count_include_pad: bool,
    pub divisor_override: usize,
}

impl PoolShape {
    /// The same geometry over `planes` planes (a part of them).
    #[cfg_attr(not(feature = "rayon"), allow(dead_code))]
    pub fn with_planes(&self, planes: usize) -> Self {
        PoolShape {
            planes,
            input_len: planes * self.in_plane,
            output_len: planes * self.out_plane,
            ..*self
        }
    }
}

impl<const D: usize> PoolNd<D> {
    fn new(spec: PoolSpec<D>) -> Result<Self, Error> {
        if D == 0 || D > 3 {
            return Err(Error::InvalidValue {
                name: "D",
                dim: None,
                value: D,
                reason: "pooling has 1, 2 or 3 spatial dimensions",
            });
        }
        nonzero(spec.batch, "batch", None)?;
        nonzero(spec.channels, "channels", None)?;
        let mut output_size = [0; D];
        for (d, out) in output_size.iter_mut().enumerate() {
            let (input, kernel, stride, pad) = (
                spec.input_size[d],
                spec.kernel_size[d],
                spec.stride[d],
                spec.padding[d],
            );
            nonzero(input, "input_size", Some(d))?;
            nonzero(kernel, "kernel_size", Some(d))?;
            nonzero(stride, "stride", Some(d))?;
            nonzero(spec.dilation[d], "dilation", Some(d))?;
            if pad > kernel / 2 {
                return Err(Error::PaddingTooLarge {
                    dim: d,
                    padding: pad,
                    limit: kernel / 2,
                });
            }
            let window = window_extent(kernel, spec.dilation[d])?;
            // pad <= kernel / 2 and kernel <= window keep these sums below 2 * input + window.
            let padded_input = input.checked_add(2 * pad).ok_or(Error::Overflow {
                name: "padded input size",
            })?;
            if padded_input < window {
                return Err(Error::WindowTooLarge {
                    dim: d,
                    padded_input,
                    window,
                });
            }
            let span = padded_input - window;
            let mut o = if spec.ceil_mode {
                span.div_ceil(stride) + 1
            } else {
                span / stride + 1
            };
            // A last window must start inside the input or the left padding.
            if spec.ceil_mode && (o - 1).checked_mul(stride).is_none_or(|v| v >= input + pad) {
                o -= 1;
            }
            *out = o;
        }
        let axes: [Axis; 3] = {
            let input = to3(spec.input_size, 1);
            let output = to3(output_size, 1);
            let kernel = to3(spec.kernel_size, 1);
            let stride = to3(spec.stride, 1);
            let dilation = to3(spec.dilation, 1);
            let pad = to3(spec.padding, 0);
            core::array::from_fn(|i| Axis {
                input: input[i],
                output: output[i],
                kernel: kernel[i],
                stride: stride[i],
                dilation: dilation[i],
                pad_lo: pad[i],
            })
        };
        // With dilation, a window that starts in the left padding can step over a short input
        // entirely; PyTorch then returns -inf and an index outside the plane. Refuse such
        // geometries instead. Only windows starting in the padding can be empty, and only
        // when the input is shorter than the dilation, which (with padding at most half the
        // kernel) leaves at most one such window per axis: the loop is O(1).
        for (i, axis) in axes.iter().enumerate() {
            if axis.input >= axis.dilation {
                continue;
            }
            let in_padding = axis.pad_lo.div_ceil(axis.stride).min(axis.output);
            if (0..in_padding).any(|o| axis.first_valid_tap(o).is_none()) {
                return Err(Error::InvalidValue {
                    name: "dilation",
                    dim: Some((i + D).saturating_sub(3)),
                    value: axis.dilation,
                    reason: "a window reads only padding",
                });
            }
        }
        let planes = checked_product(&[spec.batch, spec.channels], "planes")?;
        let in_plane = checked_product(&spec.input_size, "input plane")?;
        let out_plane = checked_product(&output_size, "output plane")?;
        let shape = PoolShape {
            planes,
            axes,
            in_plane,
            out_plane,
            input_len: tensor_len(&[planes, in_plane], "input length")?,
            output_len: tensor_len(&[planes, out_plane], "output length")?,
            count_include_pad: spec.count_include_pad,
            divisor_override: spec.divisor_override,
        };
        Ok(PoolNd {
            spec,
            output_size,
            shape,
        })
    }

    /// The parameters this geometry was built from.
    pub fn spec(&self) -> &PoolSpec<D> {
        &self.spec
    }

    /// Spatial output extents.
    pub fn output_size(&self) -> [usize; D] {
        self.output_size
    }

    /// Elements of the input `[N, C, *input_size]`.
    pub fn input_len(&self) -> usize {
        self.shape.input_len
    }

    /// Elements of the output (and of the max-pooling indices) `[N, C, *output_size]`.
    pub fn output_len(&self) -> usize {
        self.shape.output_len
    }

    /// The spatial axes promoted to three dimensions, outermost first (leading axes of a 1-D
    /// or 2-D geometry have extent 1).
    pub fn axes(&self) -> [Axis; 3] {
        self.shape.axes
    }

    /// The average's divisor for the output at promoted coordinates `o` (`[od, oh, ow]`):
    /// `divisor_override`, or the taps of the window that count (inside the padded input
    /// with `count_include_pad`, inside the input without).
    pub fn divisor_at(&self, o: [usize; 3]) -> usize {
        self.shape.divisor(o)
    }

    /// Taps of one window (product of the kernel extents).
    pub fn window_taps(&self) -> usize {
        self.spec.kernel_size.iter().product()
    }
}

impl PoolShape {
    /// Decodes the index of an output row (a run of `W` outputs) into (plane, od, oh).
    #[inline(always)]
    pub fn row_coords(&self, row: usize) -> (usize, usize, usize) {
        let [az, ay, _] = self.axes;
        (
            row / (az.output * ay.output),
            row / ay.output % az.output,
            row % ay.output,
        )
    }

    /// The average's divisor for output position `o` (3-D): the override, or the product
    /// over the axes of the taps that count (inside the padded input, or inside the input).
    #[inline]
    pub fn divisor(&self, o: [usize; 3]) -> usize {
        if self.divisor_override != 0 {
            return self.divisor_override;
        }
        let mut count = 1;
        for (axis, &o) in self.axes.iter().zip(&o) {
            count *= if self.count_include_pad {
                axis.taps_in_padded(o)
            } else {
                axis.taps_in_input(o)
            };
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_size_follows_pytorch() -> Result<(), Error> {
        // nn.MaxPool2d(3, 2, 1) on 112x112 gives 56x56 (ResNet's stem pool).
        let p = PoolSpec::new(1, 1, [112, 112], [3, 3])
            .with_stride([2, 2])
            .with_padding([1, 1])
            .build()?;
        assert_eq!(p.output_size(), [56, 56]);
        // ceil_mode keeps a last partial window: 2x2/2 on 5 gives 3, not 2.
        let p = PoolSpec::new(1, 1, [5], [2]).with_ceil_mode(true).build()?;
        assert_eq!(p.output_size(), [3]);
        // ... unless it would start in the right padding: k=2, s=2, p=1 on 5 gives 3 (not 4).
        let p = PoolSpec::new(1, 1, [5], [2])
            .with_stride([2])
            .with_padding([1])
            .with_ceil_mode(true)
            .build()?;
        assert_eq!(p.output_size(), [3]);
        Ok(())
    }

    /// Exhaustively on small 1-D geometries: a geometry builds exactly when every window
    /// reads at least one input element (given a non-empty output).
    #[test]
    fn refuses_exactly_the_windows_that_read_only_padding() {
        for input in 1..9usize {
            for kernel in 1..6usize {
                for stride in 1..4usize {
                    for dilation in 1..5usize {
                        for pad in 0..=kernel / 2 {
                            for ceil in [false, true] {
                                let spec = PoolSpec::new(1, 1, [input], [kernel])
                                    .with_stride([stride])
                                    .with_dilation([dilation])
                                    .with_padding([pad])
                                    .with_ceil_mode(ceil);
                                let reads = |o: usize| {
                                    (0..kernel).any(|t| {
                                        (o * stride + t * dilation)
                                            .checked_sub(pad)
                                            .is_some_and(|i| i < input)
                                    })
                                };
                                match spec.build() {
                                    Ok(p) => {
                                        assert!((0..p.output_size()[0]).all(reads), "{spec:?}")
                                    }
                                    Err(Error::InvalidValue { name, .. }) => {
                                        assert_eq!(name, "dilation");
                                        let span = input + 2 * pad - dilation * (kernel - 1) - 1;
                                        let mut out = if ceil {
                                            span.div_ceil(stride) + 1
                                        } else {
                                            span / stride + 1
                                        };
                                        if ceil && (out - 1) * stride >= input + pad {
                                            out -= 1;
                                        }
                                        assert!(!(0..out).all(reads), "{spec:?}");
                                    }
                                    Err(_) => {}
                                }
                            }
                        }
                    }
                }
            }
        }
        let e = PoolSpec::new(1, 1, [2], [2])
            .with_stride([1])
            .with_dilation([3])
            .with_padding([1])
            .build();
        assert!(matches!(
            e,
            Err(Error::InvalidValue {
                name: "dilation",
                ..
            })
        ));
    }

    #[test]
    fn padding_above_half_the_kernel_is_an_error() {
        assert_eq!(
            PoolSpec::new(1, 1, [8, 8], [3, 3])
                .with_padding([1, 2])
                .build(),
            Err(Error::PaddingTooLarge {
                dim: 1,
                padding: 2,
                limit: 1
            })
        );
    }
}
