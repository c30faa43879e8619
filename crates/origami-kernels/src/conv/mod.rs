//! Convolution in 1, 2 and 3 spatial dimensions: forward, input gradient, weight gradient and
//! bias gradient, each by every [`ConvAlgorithm`].
//!
//! Build a [`ConvNd`] from a [`ConvSpec`], ask it how much scratch an algorithm needs
//! ([`ConvNd::scratch_len`]), then call the operations with caller-owned slices:
//!
//! ```
//! use origami_kernels::{ConvAlgorithm, ConvOp, ConvSpec};
//!
//! // One 4x4 image with 2 channels, 3 output channels, a 3x3 kernel and padding 1.
//! let conv = ConvSpec::new(1, 2, 3, [4, 4], [3, 3]).with_padding([1, 1]).build()?;
//! assert_eq!(conv.output_size(), [4, 4]);
//!
//! let input = vec![1.0f32; conv.input_len()];
//! let weight = vec![0.5f32; conv.weight_len()];
//! let bias = vec![0.25f32; conv.bias_len()];
//! let mut output = vec![0.0f32; conv.output_len()];
//! let algo = ConvAlgorithm::Auto;
//! let mut scratch = vec![0.0f32; conv.scratch_len::<f32>(ConvOp::Forward, algo)];
//! conv.forward(algo, &input, &weight, Some(&bias), &mut output, &mut scratch)?;
//! // The centre windows see 2 channels x 9 taps of 1.0 * 0.5, plus the bias.
//! assert_eq!(output[5], 9.25);
//! # Ok::<(), origami_kernels::Error>(())
//! ```
//!
//! The lecture's unroll of `[1, 2, 3, 4, 5, 6]` with a window of 3, anchored at its left end
//! (padding `(0, K - 1)`), gives one window per output position, `[1 2 3] [2 3 4] ... [6 0 0]`:
//!
//! ```
//! use origami_kernels::ConvSpec;
//!
//! let conv = ConvSpec::new(1, 1, 1, [6], [3]).with_padding_lo_hi([0], [2]).build()?;
//! let mut cols = [0.0f32; 18];
//! conv.im2col(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 0, 0, &mut cols)?;
//! // `cols` is K x T (one column per window); read it as the lecture's T x K matrix.
//! let window = |t: usize| [cols[t], cols[6 + t], cols[12 + t]];
//! assert_eq!(window(0), [1.0, 2.0, 3.0]);
//! assert_eq!(window(1), [2.0, 3.0, 4.0]);
//! assert_eq!(window(4), [5.0, 6.0, 0.0]);
//! assert_eq!(window(5), [6.0, 0.0, 0.0]);
//! # Ok::<(), origami_kernels::Error>(())
//! ```

mod channel_block;
mod depthwise;
mod depthwise_3x3;
mod direct;
mod geometry;
mod grid;
mod im2col;
mod transpose;
mod unrolled;
mod winograd;

pub use geometry::{Conv1d, Conv2d, Conv3d, ConvNd, ConvSpec};
pub use transpose::{ConvTransposeNd, ConvTransposeSpec};

use crate::error::{check_len, check_scratch};
#[cfg(feature = "rayon")]
use crate::par;
use crate::{Element, Error};

/// Output channels per unit where a single image's forward pass splits over threads: the
/// matrix product's rows come in tiles of 8, which a part keeps whole.
#[cfg(feature = "rayon")]
const CHANNEL_BLOCK: usize = 8;

/// How a convolution is computed. Every algorithm computes the same function (up to the
/// order of floating-point additions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConvAlgorithm {
    /// Chooses one of the others from the geometry; see [`ConvNd::resolve`].
    Auto,
    /// Zip-reduce over each window, vectorised over output positions. Scratch only for
    /// depthwise geometries (a padded plane).
    Direct,
    /// im2col (col2im for the input gradient) folded into the packing (and write-back) of a
    /// blocked SIMD matrix product.
    Unrolled,
    /// Winograd's F(2x2, 3x3) (and F(3x3, 2x2) for the weight gradient): 2-D 3x3 kernels at
    /// stride 1, dilation 1, one group, as 16 matrix products over transformed 4x4 input
    /// patches (2.25x fewer multiply-adds). Every pass (the input gradient with padding at
    /// most 2); everything else — other geometries, data that are not all finite — runs
    /// `Unrolled`. Its rounding is of the direct sum's size (measured in the tests).
    Winograd,
}

impl ConvAlgorithm {
    /// Every concrete algorithm (all but `Auto`).
    pub const ALL: [ConvAlgorithm; 3] = [
        ConvAlgorithm::Direct,
        ConvAlgorithm::Unrolled,
        ConvAlgorithm::Winograd,
    ];

    /// Lower-case name, as used on command lines and in results.
    pub const fn name(self) -> &'static str {
        match self {
            ConvAlgorithm::Auto => "auto",
            ConvAlgorithm::Direct => "direct",
            ConvAlgorithm::Unrolled => "unrolled",
            ConvAlgorithm::Winograd => "winograd",
        }
    }

    /// Parses [`ConvAlgorithm::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        [
            ConvAlgorithm::Auto,
            ConvAlgorithm::Direct,
            ConvAlgorithm::Unrolled,
            ConvAlgorithm::Winograd,
        ]
        .into_iter()
        .find(|a| a.name() == name)
    }
}

/// The four operations of a convolution layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvOp {
    /// `y = conv(x, w) + b`.
    Forward,
    /// `dx` from `dy` and `w`: the transposed convolution.
    BackwardInput,
    /// `dw` from `x` and `dy`.
    BackwardWeight,
    /// `db` from `dy`: the sum over the batch and every position.
    BackwardBias,
}

impl ConvOp {
    /// All four operations.
    pub const ALL: [ConvOp; 4] = [
        ConvOp::Forward,
        ConvOp::BackwardInput,
        ConvOp::BackwardWeight,
        ConvOp::BackwardBias,
    ];
}

impl<const D: usize> ConvNd<D> {
    /// The concrete algorithm `algo` stands for: itself (`Winograd` outside its geometries
    /// stands for `Unrolled`), or for `Auto` the choice for this geometry. `Auto` takes
    /// `Winograd` for 2-D 3x3 kernels at stride 1 with at least 32 channels in and out and
    /// enough outputs to repay transforming the weights (measured rules in
    /// `conv/winograd.rs`), `Unrolled` when the matrix product has room to reach its speed
    /// (at least 8 output channels per group and 16 unrolled rows), `Direct` otherwise
    /// (depthwise and other thin convolutions).
    pub fn resolve(&self, algo: ConvAlgorithm) -> ConvAlgorithm {
        match algo {
            ConvAlgorithm::Auto => {
                if winograd::pays(&self.shape, self.shape.batch) {
                    ConvAlgorithm::Winograd
                } else if self.shape.kg >= 8 && self.shape.unrolled_rows >= 16 {
                    ConvAlgorithm::Unrolled
                } else {
                    ConvAlgorithm::Direct
                }
            }
            ConvAlgorithm::Winograd if !winograd::applies(&self.shape) => ConvAlgorithm::Unrolled,
            other => other,
        }
    }

    /// The algorithm that computes `op` for `algo`: [`ConvNd::resolve`]'s, except that
    /// `Unrolled` computes `Winograd`'s input gradient where a padding exceeds 2. (Inputs or weights that are not all finite also run `Unrolled`
    /// for `Winograd`, decided at the call.)
    /// For `Auto`, the forward pass and the input gradient, which split a batch over
    /// threads by images, take `Winograd` only where each thread's images repay its own
    /// transform of the weights.
    pub fn resolve_op(&self, op: ConvOp, algo: ConvAlgorithm) -> ConvAlgorithm {
        let resolved = match (algo, op, self.resolve(algo)) {
            (
                ConvAlgorithm::Auto,
                ConvOp::Forward | ConvOp::BackwardInput,
                ConvAlgorithm::Winograd,
            ) if !winograd::pays(&self.shape, self.images_per_part()) => {
                self.resolve(ConvAlgorithm::Unrolled)
            }
            (_, _, resolved) => resolved,
        };
        match (resolved, op) {
            (ConvAlgorithm::Winograd, ConvOp::BackwardInput)
                if !winograd::applies_backward(&self.shape) =>
            {
                ConvAlgorithm::Unrolled
            }
            (resolved, _) => resolved,
        }
    }

    /// Elements of type `T` of scratch that `op` needs with `algo`. The bias gradient needs
    /// none; `Direct` none, except for depthwise geometries (a zero-padded input plane —
    /// two for planes narrower than a vector — and for the input gradient with stride 1 a
    /// padded output-gradient plane and the flipped kernel; on small planes with one output
    /// channel per input channel, a zero-padded block of a vector of channels per position,
    /// one plane of such positions and the block's weights); `Unrolled` the matrix product's
    /// packing buffers (at most about 4 MiB of `f32` with AVX-512, 1.3 MiB elsewhere: the
    /// unrolled matrix is never stored whole), and where it reads the input from phase planes, one image's planes of a group
    /// (about the group's input), the group's weights packed whole, and for the weight
    /// gradient the output gradient of one image's group. With the `rayon` feature, one such
    /// part per thread of the current pool, each with room for the weight gradient where
    /// `Unrolled` splits it by columns.
    pub fn scratch_len<T: Element>(&self, op: ConvOp, algo: ConvAlgorithm) -> usize {
        let per_part = self.part_scratch_len::<T>(op, algo);
        #[cfg(feature = "rayon")]
        {
            per_part.saturating_mul(crate::par::parts(self.units::<T>(op, algo)))
        }
        #[cfg(not(feature = "rayon"))]
        {
            per_part
        }
    }

    /// Scratch for one part of the work: the whole operation without the `rayon` feature.
    fn part_scratch_len<T: Element>(&self, op: ConvOp, algo: ConvAlgorithm) -> usize {
        let s = &self.shape;
        match (self.resolve_op(op, algo), op) {
            (_, ConvOp::BackwardBias) => 0,
            (ConvAlgorithm::Direct, _) => direct::scratch_len::<T>(s),
            // Room for `Unrolled` too: non-finite data runs it.
            (ConvAlgorithm::Winograd, ConvOp::Forward) => {
                winograd::forward_scratch_len::<T>(s).max(unrolled::forward_scratch_len::<T>(s))
            }
            (ConvAlgorithm::Winograd, ConvOp::BackwardInput) => {
                winograd::backward_input_scratch_len::<T>(s)
                    .max(unrolled::backward_input_scratch_len::<T>(s))
            }
            // Room for `Unrolled`'s too (non-finite data), and since this one splits its
            // phases rather than the batch, for all of its parts.
            (ConvAlgorithm::Winograd, _) => winograd::backward_weight_scratch_len::<T>(s).max(
                self.part_scratch_len::<T>(op, ConvAlgorithm::Unrolled)
                    .saturating_mul(self.unrolled_weight_parts::<T>()),
            ),
            (_, ConvOp::Forward) => unrolled::forward_scratch_len::<T>(s),
            (_, ConvOp::BackwardInput) => unrolled::backward_input_scratch_len::<T>(s),
            (_, ConvOp::BackwardWeight) => {
                let packing = unrolled::backward_weight_scratch_len::<T>(s);
                // Split by columns, a part's block of the gradient (at most all of it).
                #[cfg(feature = "rayon")]
                if self.weight_by_columns() {
                    return packing.saturating_add(s.weight_len);
                }
                packing
            }
        }
    }

    /// Images per thread where a pass splits the batch over the current pool.
    fn images_per_part(&self) -> usize {
        #[cfg(feature = "rayon")]
        {
            let batch = self.shape.batch;
            batch.div_ceil(par::parts(batch))
        }
        #[cfg(not(feature = "rayon"))]
        {
            self.shape.batch
        }
    }

    /// Parts `Unrolled`'s weight gradient runs in (the threads of the current pool, up to
    /// its units), which `Winograd`'s scratch also holds: its weight gradient falls back to
    /// `Unrolled` on non-finite data.
    // `T` sizes the units only with threads.
    #[cfg_attr(not(feature = "rayon"), allow(clippy::extra_unused_type_parameters))]
    fn unrolled_weight_parts<T: Element>(&self) -> usize {
        #[cfg(feature = "rayon")]
        {
            par::parts(self.units::<T>(ConvOp::BackwardWeight, ConvAlgorithm::Unrolled))
        }
        #[cfg(not(feature = "rayon"))]
        {
            1
        }
    }

    /// Whether `Unrolled`'s weight gradient splits over threads by columns (unrolled rows
    /// `(c, tap)`, in whole tiles) rather than by rows (output channels): each part then packs
    /// its share of the product's right operand, `cols^T`, and all of the left, the output
    /// gradient, where split by rows every part packed all of `cols^T`. Where the columns are
    /// at least four times the rows (3x3 and 9-tap kernels: 9 taps per channel), two threads
    /// ran 8-12% faster by columns on the Zen 4 machine (n8: temporal (9,1) 29.4 -> 26.3 ms,
    /// 3x3 c64 56x56 12.2 -> 11.2 ms). The stem (147 columns, 64 rows) ran 6% slower there,
    /// its four column tiles split unevenly, and 15-28% faster on the Zen 3 machine (n8, two
    /// threads, 40 calls of each alternated: fastest 30.8 -> 26.5 ms, median 40.0 -> 28.7),
    /// whose packing of `cols^T` twice cost more than the uneven split: from twice the rows.
    #[cfg(feature = "rayon")]
    fn weight_by_columns(&self) -> bool {
        self.shape.unrolled_rows >= 2 * self.shape.out_channels
    }

    /// Runs `f(shape, input, output, scratch)` over the batch: split into parts of whole
    /// images over the current pool with the `rayon` feature, in one part without it. Input
    /// and output are `(tensor, elements per image)`.
    fn over_images<T: Element>(
        &self,
        op: ConvOp,
        algo: ConvAlgorithm,
        (input, in_image): (&[T], usize),
        (output, out_image): (&mut [T], usize),
        scratch: &mut [T],
        f: impl Fn(&geometry::ConvShape, &[T], &mut [T], &mut [T]) + Sync,
    ) {
        let s = &self.shape;
        #[cfg(feature = "rayon")]
        {
            let parts = self.parts_for::<T>(op, algo, scratch.len());
            let per_part = self.part_scratch_len::<T>(op, algo);
            let out = crate::split::Units {
                data: output,
                unit: out_image,
            };
            par::run(s.batch, parts, out, scratch, per_part, |images, out, sc| {
                let x = &input[images.start * in_image..images.end * in_image];
                f(&s.with_batch(images.len()), x, out.data, sc);
            });
        }
        #[cfg(not(feature = "rayon"))]
        {
            let _ = (op, algo, in_image, out_image);
            f(s, input, output, scratch);
        }
    }

    /// Independent units `op` splits into over threads: images for the forward pass and the
    /// input gradient (input channels for a single depthwise image under `Direct`, so that
    /// batch-1 inference uses every thread: [`ConvNd::over_depthwise_channels`]; blocks of
    /// output channels for `Unrolled`'s forward pass over a single ungrouped image, and of
    /// input channels for its input gradient where that is a product by channels), rows of
    /// the weight gradient (output channels) for `Unrolled`, whose rows are separate
    /// products, and input channels for a depthwise `Direct` weight gradient, whose output
    /// channels are separate sums; one for the rest.
    #[cfg(feature = "rayon")]
    fn units<T: Element>(&self, op: ConvOp, algo: ConvAlgorithm) -> usize {
        let (s, one_image) = (&self.shape, depthwise::channel_units::<T>(&self.shape));
        match (self.resolve_op(op, algo), op, one_image) {
            (ConvAlgorithm::Direct, ConvOp::Forward | ConvOp::BackwardInput, Some((u, _))) => u,
            (ConvAlgorithm::Unrolled, ConvOp::Forward, _) if self.forward_by_channels() => {
                s.out_channels.div_ceil(CHANNEL_BLOCK)
            }
            (ConvAlgorithm::Unrolled, ConvOp::BackwardInput, _) if self.backward_by_channels() => {
                s.in_channels.div_ceil(CHANNEL_BLOCK)
            }
            (_, ConvOp::Forward | ConvOp::BackwardInput, _) => s.batch,
            (ConvAlgorithm::Unrolled, ConvOp::BackwardWeight, _) if self.weight_by_columns() => {
                s.unrolled_rows
            }
            (ConvAlgorithm::Unrolled, ConvOp::BackwardWeight, _) => s.out_channels,
            (_, ConvOp::BackwardWeight, _) if depthwise::applies(s) => s.in_channels,
            _ => 1,
        }
    }

    /// Parts to run `op` in: as many as the scratch holds, up to [`ConvNd::units`] split by
    /// the pool's threads.
    #[cfg(feature = "rayon")]
    fn parts_for<T: Element>(&self, op: ConvOp, algo: ConvAlgorithm, scratch_len: usize) -> usize {
        let per_part = self.part_scratch_len::<T>(op, algo);
        let parts = crate::par::parts(self.units::<T>(op, algo));
        // No scratch per part: any number of parts fits.
        scratch_len
            .checked_div(per_part)
            .map_or(parts, |fit| parts.min(fit).max(1))
    }

    /// Whether `Unrolled`'s forward pass splits over threads by blocks of output channels:
    /// a single ungrouped image, which split by images would run on one thread. Each part
    /// multiplies its rows of the weights with the whole unrolled input.
    #[cfg(feature = "rayon")]
    fn forward_by_channels(&self) -> bool {
        self.shape.batch == 1 && self.shape.groups == 1
    }

    /// Runs `Unrolled`'s forward pass over threads by blocks of [`CHANNEL_BLOCK`] output
    /// channels where [`ConvNd::forward_by_channels`]; returns whether it ran.
    #[cfg(feature = "rayon")]
    fn forward_over_channels<T: Element>(
        &self,
        algo: ConvAlgorithm,
        (input, weight, bias): (&[T], &[T], Option<&[T]>),
        output: &mut [T],
        scratch: &mut [T],
    ) -> bool {
        let s = &self.shape;
        if algo != ConvAlgorithm::Unrolled || !self.forward_by_channels() {
            return false;
        }
        let units = s.out_channels.div_ceil(CHANNEL_BLOCK);
        let parts = self.parts_for::<T>(ConvOp::Forward, algo, scratch.len());
        let per_part = self.part_scratch_len::<T>(ConvOp::Forward, algo);
        let out = crate::split::Units {
            data: output,
            unit: CHANNEL_BLOCK * s.out_plane,
        };
        let rows = s.cg * s.taps;
        par::run(units, parts, out, scratch, per_part, |u, out, sc| {
            let k = u.start * CHANNEL_BLOCK..(u.end * CHANNEL_BLOCK).min(s.out_channels);
            let sub = s.with_out_channels(k.len());
            let w = &weight[k.start * rows..k.end * rows];
            let b = bias.map(|b| &b[k.clone()]);
            unrolled::forward(&sub, input, w, b, out.data, sc);
        });
        true
    }

    /// Whether `Unrolled`'s input gradient may split over threads by blocks of input
    /// channels: a single ungrouped image whose input gradient is a product with a row per
    /// input channel (stride 1 or a 1x1 kernel: [`unrolled::channel_rows`]), which split
    /// by images would run on one thread. Each part multiplies its rows of the flipped,
    /// transposed weights with the whole output gradient.
    #[cfg(feature = "rayon")]
    fn backward_by_channels(&self) -> bool {
        let s = &self.shape;
        s.batch == 1 && s.groups == 1 && unrolled::channel_rows(s)
    }

    /// Runs `Unrolled`'s input gradient over threads by blocks of [`CHANNEL_BLOCK`] input
    /// channels where [`ConvNd::backward_by_channels`] and the weights allow it (finite, unless
    /// the kernel is 1x1); returns whether it ran.
    #[cfg(feature = "rayon")]
    fn backward_input_over_channels<T: Element>(
        &self,
        algo: ConvAlgorithm,
        (grad_output, weight): (&[T], &[T]),
        grad_input: &mut [T],
        scratch: &mut [T],
    ) -> bool {
        let s = &self.shape;
        if algo != ConvAlgorithm::Unrolled
            || !self.backward_by_channels()
            || !unrolled::by_input_channels(s, weight)
        {
            return false;
        }
        let units = s.in_channels.div_ceil(CHANNEL_BLOCK);
        let parts = self.parts_for::<T>(ConvOp::BackwardInput, algo, scratch.len());
        let per_part = self.part_scratch_len::<T>(ConvOp::BackwardInput, algo);
        let out = crate::split::Units {
            data: grad_input,
            unit: CHANNEL_BLOCK * s.in_plane,
        };
        par::run(units, parts, out, scratch, per_part, |u, out, sc| {
            let c = u.start * CHANNEL_BLOCK..(u.end * CHANNEL_BLOCK).min(s.in_channels);
            unrolled::backward_input_channels(s, c, grad_output, weight, out.data, sc);
        });
        true
    }

    /// Runs `f(channels, out, scratch)` over threads where `op` is a `Direct` pass over a
    /// single depthwise image (each input channel feeds its own output channels, so parts
    /// of its channels, in whole blocks where planes are blocked, are independent): `out`
    /// (the pass's output, per input channel `per_channel` elements) in one piece per part.
    /// Returns whether it ran.
    #[cfg(feature = "rayon")]
    fn over_depthwise_channels<T: Element>(
        &self,
        op: ConvOp,
        algo: ConvAlgorithm,
        out: &mut [T],
        scratch: &mut [T],
        f: impl Fn(core::ops::Range<usize>, &mut [T], &mut [T]) + Sync,
    ) -> bool {
        let s = &self.shape;
        let Some((units, width)) = depthwise::channel_units::<T>(s) else {
            return false;
        };
        if algo != ConvAlgorithm::Direct {
            return false;
        }
        let per_channel = match op {
            ConvOp::Forward => s.kg * s.out_plane,
            _ => s.in_plane,
        };
        let parts = self.parts_for::<T>(op, algo, scratch.len());
        let per_part = self.part_scratch_len::<T>(op, algo);
        let out = crate::split::Units {
            data: out,
            unit: width * per_channel,
        };
        par::run(units, parts, out, scratch, per_part, |u, out, sc| {
            f(
                u.start * width..(u.end * width).min(s.in_channels),
                out.data,
                sc,
            );
        });
        true
    }

    /// `output = conv(input, weight) + bias`.
    ///
    /// `input` is `[N, C, *input_size]`, `weight` `[K, C / groups, *kernel_size]`, `bias`
    /// `[K]` or `None`, `output` `[N, K, *output_size]` (overwritten). `scratch` must hold
    /// [`ConvNd::scratch_len`] elements; its contents on entry do not matter.
    pub fn forward<T: Element>(
        &self,
        algo: ConvAlgorithm,
        input: &[T],
        weight: &[T],
        bias: Option<&[T]>,
        output: &mut [T],
        scratch: &mut [T],
    ) -> Result<(), Error> {
        let s = &self.shape;
        check_len("input", s.input_len, input.len())?;
        check_len("weight", s.weight_len, weight.len())?;
        if let Some(b) = bias {
            check_len("bias", s.out_channels, b.len())?;
        }
        check_len("output", s.output_len, output.len())?;
        check_scratch(self.scratch_len::<T>(ConvOp::Forward, algo), scratch.len())?;
        let algo = match self.resolve_op(ConvOp::Forward, algo) {
            // Non-finite values would meet through the transforms (see `winograd`).
            ConvAlgorithm::Winograd if !winograd::finite(input, weight) => ConvAlgorithm::Unrolled,
            other => other,
        };
        #[cfg(feature = "rayon")]
        if self.over_depthwise_channels(ConvOp::Forward, algo, output, scratch, |c, y, sc| {
            depthwise::forward_channels(s, input, weight, bias, y, c, sc);
        }) {
            return Ok(());
        }
        #[cfg(feature = "rayon")]
        if self.forward_over_channels(algo, (input, weight, bias), output, scratch) {
            return Ok(());
        }
        let (x_image, y_image) = (s.in_channels * s.in_plane, s.out_channels * s.out_plane);
        self.over_images(
            ConvOp::Forward,
            algo,
            (input, x_image),
            (output, y_image),
            scratch,
            |sub, x, y, sc| forward_serial(sub, algo, x, weight, bias, y, sc),
        );
        Ok(())
    }

    /// `grad_input` from `grad_output` and `weight` (overwritten): the convolution of the
    /// output gradient with the flipped window and the anchor reversed,
    /// `dx[n,c,i] = sum_{k,t : i = o*s + t*d - p} w[k,c,t] * dy[n,k,o]`.
    pub fn backward_input<T: Element>(
        &self,
        algo: ConvAlgorithm,
        grad_output: &[T],
        weight: &[T],
        grad_input: &mut [T],
        scratch: &mut [T],
    ) -> Result<(), Error> {
        let s = &self.shape;
        check_len("grad_output", s.output_len, grad_output.len())?;
        check_len("weight", s.weight_len, weight.len())?;
        check_len("grad_input", s.input_len, grad_input.len())?;
        check_scratch(
            self.scratch_len::<T>(ConvOp::BackwardInput, algo),
            scratch.len(),
        )?;
        let algo = match self.resolve_op(ConvOp::BackwardInput, algo) {
            ConvAlgorithm::Winograd if !winograd::finite(grad_output, weight) => {
                ConvAlgorithm::Unrolled
            }
            other => other,
        };
        #[cfg(feature = "rayon")]
        if self.over_depthwise_channels(ConvOp::BackwardInput, algo, grad_input, scratch, {
            |c, dx, sc| depthwise::backward_input_channels(s, grad_output, weight, dx, c, sc)
        }) {
            return Ok(());
        }
        #[cfg(feature = "rayon")]
        if self.backward_input_over_channels(algo, (grad_output, weight), grad_input, scratch) {
            return Ok(());
        }
        let (dy_image, dx_image) = (s.out_channels * s.out_plane, s.in_channels * s.in_plane);
        let (dy, dx) = ((grad_output, dy_image), (grad_input, dx_image));
        self.over_images(ConvOp::BackwardInput, algo, dy, dx, scratch, {
            |sub, dy, dx, sc| backward_input_serial(sub, algo, dy, weight, dx, sc)
        });
        Ok(())
    }

    /// `grad_weight` from `input` and `grad_output` (overwritten):
    /// `dw[k,c,t] = sum_{n,o} dy[n,k,o] * x[n,c,o*s + t*d - p]`.
    pub fn backward_weight<T: Element>(
        &self,
        algo: ConvAlgorithm,
        input: &[T],
        grad_output: &[T],
        grad_weight: &mut [T],
        scratch: &mut [T],
    ) -> Result<(), Error> {
        let s = &self.shape;
        check_len("input", s.input_len, input.len())?;
        check_len("grad_output", s.output_len, grad_output.len())?;
        check_len("grad_weight", s.weight_len, grad_weight.len())?;
        check_scratch(
            self.scratch_len::<T>(ConvOp::BackwardWeight, algo),
            scratch.len(),
        )?;
        let algo = match self.resolve_op(ConvOp::BackwardWeight, algo) {
            ConvAlgorithm::Winograd if winograd::finite(input, grad_output) => {
                winograd::backward_weight(s, input, grad_output, grad_weight, scratch);
                return Ok(());
            }
            ConvAlgorithm::Winograd => ConvAlgorithm::Unrolled,
            other => other,
        };
        #[cfg(feature = "rayon")]
        if algo == ConvAlgorithm::Unrolled {
            let parts = self.parts_for::<T>(ConvOp::BackwardWeight, algo, scratch.len());
            let per_part = self.part_scratch_len::<T>(ConvOp::BackwardWeight, algo);
            if self.weight_by_columns() {
                // Whole tiles of columns per part, each part's block in its scratch first:
                // a part's columns are not contiguous in the gradient.
                let (k, r) = (s.out_channels, s.unrolled_rows);
                let nr = crate::gemm::params::NV * T::LANES;
                let tiles = r.div_ceil(nr);
                let cols_of = |t: core::ops::Range<usize>| t.start * nr..(t.end * nr).min(r);
                par::run(tiles, parts, (), scratch, per_part, |t, (), sc| {
                    let cols = cols_of(t);
                    let (block, pack) = sc.split_at_mut(k * cols.len());
                    unrolled::backward_weight_block(s, input, grad_output, block, 0..k, cols, pack);
                });
                for (t, sc) in par::ranges(tiles, parts).zip(scratch.chunks(per_part)) {
                    let cols = cols_of(t);
                    let rows = grad_weight.chunks_exact_mut(r);
                    for (row, src) in rows.zip(sc.chunks_exact(cols.len())) {
                        row[cols.clone()].copy_from_slice(src);
                    }
                }
                return Ok(());
            }
            let out = crate::split::Units {
                data: grad_weight,
                unit: s.unrolled_rows,
            };
            par::run(
                s.out_channels,
                parts,
                out,
                scratch,
                per_part,
                |rows, out, sc| {
                    let all = 0..s.unrolled_rows;
                    unrolled::backward_weight_block(s, input, grad_output, out.data, rows, all, sc);
                },
            );
            return Ok(());
        }
        #[cfg(feature = "rayon")]
        if depthwise::applies(s) {
            // Depthwise: the output channels of each input channel are separate sums.
            let parts = self.parts_for::<T>(ConvOp::BackwardWeight, algo, scratch.len());
            let per_part = self.part_scratch_len::<T>(ConvOp::BackwardWeight, algo);
            let out = crate::split::Units {
                data: grad_weight,
                unit: s.kg * s.taps,
            };
            par::run(
                s.in_channels,
                parts,
                out,
                scratch,
                per_part,
                |channels, out, sc| {
                    depthwise::backward_weight_channels(
                        s,
                        input,
                        grad_output,
                        out.data,
                        channels,
                        sc,
                    );
                },
            );
            return Ok(());
        }
        match algo {
            ConvAlgorithm::Unrolled => {
                unrolled::backward_weight(s, input, grad_output, grad_weight, scratch);
            }
            _ => direct::backward_weight(s, input, grad_output, grad_weight, scratch),
        }
        Ok(())
    }

    /// `grad_bias[k] = sum_{n,o} grad_output[n,k,o]` (overwritten). This reduction is the
    /// same for every algorithm (for `Unrolled` it is the product of `dY` with a vector of
    /// ones), so it takes none.
    pub fn backward_bias<T: Element>(
        &self,
        grad_output: &[T],
        grad_bias: &mut [T],
    ) -> Result<(), Error> {
        let s = &self.shape;
        check_len("grad_output", s.output_len, grad_output.len())?;
        check_len("grad_bias", s.out_channels, grad_bias.len())?;
        for (k, db) in grad_bias.iter_mut().enumerate() {
            let mut acc = T::splat(T::ZERO);
            let mut tail = T::ZERO;
            for n in 0..s.batch {
                let plane = &grad_output[(n * s.out_channels + k) * s.out_plane..][..s.out_plane];
                let mut chunks = plane.chunks_exact(T::LANES);
                for c in &mut chunks {
                    acc += T::load(c);
                }
                for &v in chunks.remainder() {
                    tail += v;
                }
            }
            *db = T::reduce_add(acc) + tail;
        }
        Ok(())
    }

    /// Rows of the unrolled matrix of one image and group: `C / groups * taps`.
    pub fn im2col_rows(&self) -> usize {
        self.shape.unrolled_rows
    }

    /// Elements of the unrolled matrix of one image and group: `im2col_rows() * out_plane`.
    pub fn im2col_len(&self) -> usize {
        self.shape.unrolled_len
    }

    /// Unrolls the windows of image `image`, group `group` of `input` into `cols`, a
    /// row-major `im2col_rows() x out_plane` matrix: row `(c, *tap)`, column `*output
    /// position`, zeros where a window reads padding. This is the matrix the `Unrolled`
    /// algorithm multiplies; it is offered for use with other matrix products.
    pub fn im2col<T: Element>(
        &self,
        input: &[T],
        image: usize,
        group: usize,
        cols: &mut [T],
    ) -> Result<(), Error> {
        let s = &self.shape;
        check_len("input", s.input_len, input.len())?;
        check_len("cols", s.unrolled_len, cols.len())?;
        if image >= s.batch {
            return Err(Error::InvalidValue {
                name: "image",
                dim: None,
                value: image,
                reason: "must be smaller than batch",
            });
        }
        if group >= s.groups {
            return Err(Error::InvalidValue {
                name: "group",
                dim: None,
                value: group,
                reason: "must be smaller than groups",
            });
        }
        let start = (image * s.in_channels + group * s.cg) * s.in_plane;
        im2col::im2col(s, &input[start..start + s.cg * s.in_plane], cols);
        Ok(())
    }
}

/// The forward pass on one thread, `algo` resolved.
fn forward_serial<T: Element>(
    s: &geometry::ConvShape,
    algo: ConvAlgorithm,
    input: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    output: &mut [T],
    scratch: &mut [T],
) {
    match algo {
        ConvAlgorithm::Unrolled => unrolled::forward(s, input, weight, bias, output, scratch),
        ConvAlgorithm::Winograd => {
            if !winograd::forward(s, input, weight, bias, output, scratch) {
                unrolled::forward(s, input, weight, bias, output, scratch);
            }
        }
        _ => direct::forward(s, input, weight, bias, output, scratch),
    }
}

/// The input gradient on one thread, `algo` resolved.
fn backward_input_serial<T: Element>(
    s: &geometry::ConvShape,
    algo: ConvAlgorithm,
    grad_output: &[T],
    weight: &[T],
    grad_input: &mut [T],
    scratch: &mut [T],
) {
    match algo {
        ConvAlgorithm::Unrolled => {
            unrolled::backward_input(s, grad_output, weight, grad_input, scratch);
        }
        ConvAlgorithm::Winograd => {
            if !winograd::backward_input(s, grad_output, weight, grad_input, scratch) {
                unrolled::backward_input(s, grad_output, weight, grad_input, scratch);
            }
        }
        _ => direct::backward_input(s, grad_output, weight, grad_input, scratch),
    }
}
