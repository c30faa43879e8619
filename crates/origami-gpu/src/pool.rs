//! Pooling on the GPU: max (with indices), average and sum, forward and backward, in 1-D,
//! 2-D and 3-D, for any geometry the CPU crate accepts ([`PoolNd`]).

use origami_kernels::window::Axis;
use origami_kernels::{Error, PoolAlgorithm, PoolKind, PoolNd};

use crate::device::{Binding, Gpu, GpuBuffer, Recorder, check_len};
use crate::error::GpuError;
use crate::params::{self, index};
use crate::shaders::Shader;

/// Virtual positions one workgroup of the window pass holds (`SEGMENT` in the shader).
const SEGMENT: usize = 1024;
/// Where the pool geometry block starts in every pooling shader's parameters.
const POOL_BLOCK: usize = 32;

/// One 1-D window pass of `PrefixSum` along an axis.
#[derive(Clone, Copy, Debug)]
struct WindowPass {
    params: [u32; 32],
    workgroups: u64,
    /// Elements the pass writes.
    out_elements: usize,
}

/// A pooling geometry ready to run on one [`Gpu`], in `f32`; max indices are `u32` flat
/// positions within each `(n, c)` input plane, as PyTorch's `return_indices`.
///
/// `PrefixSum` keeps its intermediate tensors in device buffers allocated here, once, so
/// repeated calls allocate nothing.
#[derive(Debug)]
pub struct GpuPool<const D: usize> {
    geometry: PoolNd<D>,
    kind: PoolKind,
    algorithm: PoolAlgorithm,
    block: [u32; 24],
    forward_passes: Vec<WindowPass>,
    backward_passes: Vec<WindowPass>,
    scratch: [GpuBuffer<f32>; 2],
    scratch_index: [GpuBuffer<u32>; 2],
}

/// Whether a pass along `axis` can be skipped: nothing to reduce, nothing to index.
fn trivial(axis: &Axis) -> bool {
    axis.input == 1 && axis.output == 1 && axis.kernel == 1
}

impl<const D: usize> GpuPool<D> {
    /// Checks `geometry` against `gpu`'s limits and allocates what `algorithm` needs.
    /// `Direct` and `PrefixSum` run on the GPU (`Auto` picks `Direct` for windows of at most
    /// 9 taps, as on the CPU); `Fold` is a CPU layout trick with no GPU form.
    pub fn new(
        gpu: &Gpu,
        geometry: PoolNd<D>,
        kind: PoolKind,
        algorithm: PoolAlgorithm,
    ) -> Result<Self, GpuError> {
        let algorithm = Self::resolve(&geometry, algorithm);
        if algorithm == PoolAlgorithm::Fold {
            return Err(Error::Unsupported {
                algorithm: "fold",
                reason: "the GPU backend runs direct and prefix_sum pooling",
            }
            .into());
        }
        gpu.check_size::<f32>("input", geometry.input_len())?;
        gpu.check_size::<f32>("output", geometry.output_len())?;
        index(geometry.input_len(), "input length")?;
        index(geometry.output_len(), "output length")?;
        let spec = geometry.spec();
        let axes = geometry.axes();
        let mut block = [0u32; 24];
        block[0] = match kind {
            PoolKind::Max => 0,
            PoolKind::Avg => 1,
            PoolKind::Sum => 2,
        };
        block[1] = index(spec.batch * spec.channels, "planes")?;
        block[2] = index(
            geometry.input_len() / (spec.batch * spec.channels),
            "input plane",
        )?;
        block[3] = index(
            geometry.output_len() / (spec.batch * spec.channels),
            "output plane",
        )?;
        block[4] = u32::from(spec.count_include_pad);
        block[5] = index(spec.divisor_override, "divisor_override")?;
        params::axes(&axes, &mut block[6..])?;
        let mut pool = GpuPool {
            geometry,
            kind,
            algorithm,
            block,
            forward_passes: Vec::new(),
            backward_passes: Vec::new(),
            scratch: [gpu.zeros(1)?, gpu.zeros(1)?],
            scratch_index: [gpu.zeros(1)?, gpu.zeros(1)?],
        };
        if algorithm == PoolAlgorithm::PrefixSum {
            pool.plan_window_passes(gpu)?;
        }
        Ok(pool)
    }

    /// The algorithm `algorithm` stands for on `geometry`: `Auto` is `Direct` for windows of
    /// at most 9 taps and `PrefixSum` above; the others are themselves.
    pub fn resolve(geometry: &PoolNd<D>, algorithm: PoolAlgorithm) -> PoolAlgorithm {
        match algorithm {
            PoolAlgorithm::Auto if geometry.window_taps() <= 9 => PoolAlgorithm::Direct,
            PoolAlgorithm::Auto => PoolAlgorithm::PrefixSum,
            other => other,
        }
    }

    /// The geometry.
    pub fn geometry(&self) -> &PoolNd<D> {
        &self.geometry
    }

    /// The algorithm this op runs (never `Auto`).
    pub fn algorithm(&self) -> PoolAlgorithm {
        self.algorithm
    }

    fn params(&self) -> [u32; POOL_BLOCK + 24] {
        let mut p = [0u32; POOL_BLOCK + 24];
        p[POOL_BLOCK..].copy_from_slice(&self.block);
        p
    }

    /// The separable passes of `PrefixSum`: forward along W, H, D; backward along D, H, W.
    /// Each reads the previous pass's tensor (`outer` leading elements times the line times
    /// `inner` trailing ones) and the last writes the op's output.
    fn plan_window_passes(&mut self, gpu: &Gpu) -> Result<(), GpuError> {
        let axes = self.geometry.axes();
        let planes = self.geometry.spec().batch * self.geometry.spec().channels;
        let mut run: Vec<usize> = (0..3).filter(|&a| !trivial(&axes[a])).collect();
        if run.is_empty() {
            run.push(2);
        }
        let extents = |a: usize| {
            let outer = axes[..a].iter().fold(planes, |p, x| p * x.input);
            let inner = axes[a + 1..].iter().fold(1, |p: usize, x| p * x.output);
            (outer, inner)
        };
        let mut largest = 1;
        for (order, forward) in [
            (run.iter().rev().copied().collect::<Vec<_>>(), true),
            (run.clone(), false),
        ] {
            if !forward && self.kind == PoolKind::Max {
                continue; // max routes its gradient through the indices
            }
            let mut passes = Vec::new();
            for (step, &a) in order.iter().enumerate() {
                let axis = &axes[a];
                let span = (axis.kernel - 1) * axis.dilation + 1;
                if span > SEGMENT {
                    return Err(Error::Unsupported {
                        algorithm: "prefix_sum",
                        reason: "on the GPU a window may span at most 1024 elements along an \
                                 axis (kernel_size - 1) * dilation + 1; use direct",
                    }
                    .into());
                }
                let (outer, inner) = extents(a);
                let (src_len, upsample, out_len, out_stride, pad) = if forward {
                    (axis.input, 1, axis.output, axis.stride, axis.pad_lo as i64)
                } else {
                    (
                        axis.output,
                        axis.stride,
                        axis.input,
                        1,
                        ((axis.kernel - 1) * axis.dilation) as i64 - axis.pad_lo as i64,
                    )
                };
                let virtual_len = (src_len - 1) * upsample + 1;
                let seg_outputs = (SEGMENT - span) / out_stride + 1;
                let segments = out_len.div_ceil(seg_outputs);
                let out_elements = outer * out_len * inner;
                if step + 1 < order.len() {
                    largest = largest.max(out_elements);
                }
                let first = step == 0;
                let last = step + 1 == order.len();
                let scale = match (self.kind, forward) {
                    (PoolKind::Avg, true) if last => 1,
                    (PoolKind::Avg, false) if first => 2,
                    _ => 0,
                };
                let mut params = [0u32; 32];
                let words = [
                    outer,
                    inner,
                    src_len,
                    upsample,
                    virtual_len,
                    out_len,
                    out_stride,
                    0,
                    axis.kernel,
                    axis.dilation,
                    usize::from(first),
                    scale,
                    seg_outputs,
                    segments,
                    SEGMENT.div_ceil(axis.dilation),
                ];
                for (slot, value) in params.iter_mut().zip(words) {
                    *slot = index(value, "window pass size")?;
                }
                params[7] = i32::try_from(pad)
                    .map_err(|_| GpuError::Kernel(Error::Overflow { name: "padding" }))?
                    as u32;
                let workgroups = (outer as u64)
                    .saturating_mul(inner as u64)
                    .saturating_mul(segments as u64);
                passes.push(WindowPass {
                    params,
                    workgroups,
                    out_elements,
                });
            }
            if forward {
                self.forward_passes = passes;
            } else {
                self.backward_passes = passes;
            }
        }
        index(largest, "intermediate length")?;
        self.scratch = [gpu.zeros(largest)?, gpu.zeros(largest)?];
        if self.kind == PoolKind::Max {
            self.scratch_index = [gpu.zeros(largest)?, gpu.zeros(largest)?];
        }
        Ok(())
    }

    /// Records the window passes, from `src` (and `src_index`) through the scratch buffers
    /// into `dst` (and `dst_index`).
    fn run_passes(
        &self,
        rec: &mut Recorder<'_>,
        passes: &[WindowPass],
        src: &GpuBuffer,
        dst: &GpuBuffer,
        dst_index: &GpuBuffer<u32>,
    ) -> Result<(), GpuError> {
        let block = self.params();
        for (step, pass) in passes.iter().enumerate() {
            let mut params = block;
            params[..32].copy_from_slice(&pass.params);
            let from = if step == 0 {
                src
            } else {
                &self.scratch[(step - 1) % 2]
            };
            let last = step + 1 == passes.len();
            let to = if last { dst } else { &self.scratch[step % 2] };
            // Average and sum never touch the index bindings: two distinct placeholders
            // keep a read and a write binding from naming one buffer.
            let (from_index, to_index) = match (self.kind, last) {
                (PoolKind::Max, true) => (&self.scratch_index[(step + 1) % 2], dst_index),
                (PoolKind::Max, false) => (
                    &self.scratch_index[(step + 1) % 2],
                    &self.scratch_index[step % 2],
                ),
                _ => (&self.scratch_index[1], &self.scratch_index[0]),
            };
            debug_assert!(last || pass.out_elements <= self.scratch[0].len());
            rec.dispatch(
                Shader::PoolWindowPass,
                &params,
                &[
                    Binding::F32(from),
                    Binding::U32(from_index),
                    Binding::F32(to),
                    Binding::U32(to_index),
                ],
                pass.workgroups,
            )?;
        }
        Ok(())
    }

    /// Records the forward pass: `output` (and, for max, `indices`) from `input`. For
    /// average and sum, `indices` may be `None`.
    pub fn forward(
        &self,
        rec: &mut Recorder<'_>,
        input: &GpuBuffer,
        output: &GpuBuffer,
        indices: Option<&GpuBuffer<u32>>,
    ) -> Result<(), GpuError> {
        let g = &self.geometry;
        check_len("input", g.input_len(), input.len())?;
        check_len("output", g.output_len(), output.len())?;
        let indices: &GpuBuffer<u32> = match (self.kind, indices) {
            (PoolKind::Max, Some(ix)) => {
                check_len("indices", g.output_len(), ix.len())?;
                ix
            }
            (PoolKind::Max, None) => {
                return Err(Error::LengthMismatch {
                    buffer: "indices",
                    expected: g.output_len(),
                    actual: 0,
                }
                .into());
            }
            // Never written for these kinds; any buffer fills the binding.
            (_, _) => &self.scratch_index[0],
        };
        if self.algorithm == PoolAlgorithm::PrefixSum {
            return self.run_passes(rec, &self.forward_passes, input, output, indices);
        }
        rec.dispatch(
            Shader::PoolForwardDirect,
            &self.params(),
            &[
                Binding::F32(input),
                Binding::F32(output),
                Binding::U32(indices),
            ],
            (g.output_len() as u64).div_ceil(256),
        )
    }

    /// Records the backward pass: `grad_input` from `grad_output`. Max routes each gradient
    /// to the input its index names (`indices` from [`GpuPool::forward`], required), the
    /// same for every algorithm.
    pub fn backward(
        &self,
        rec: &mut Recorder<'_>,
        grad_output: &GpuBuffer,
        indices: Option<&GpuBuffer<u32>>,
        grad_input: &GpuBuffer,
    ) -> Result<(), GpuError> {
        let g = &self.geometry;
        check_len("grad_output", g.output_len(), grad_output.len())?;
        check_len("grad_input", g.input_len(), grad_input.len())?;
        let indices = if self.kind == PoolKind::Max {
            let ix = indices.ok_or(Error::LengthMismatch {
                buffer: "indices",
                expected: g.output_len(),
                actual: 0,
            })?;
            check_len("indices", g.output_len(), ix.len())?;
            ix
        } else if self.algorithm == PoolAlgorithm::PrefixSum {
            let unused = &self.scratch_index[0];
            return self.run_passes(rec, &self.backward_passes, grad_output, grad_input, unused);
        } else {
            // Never read for average and sum; any buffer fills the binding.
            &self.scratch_index[0]
        };
        rec.dispatch(
            Shader::PoolBackwardGather,
            &self.params(),
            &[
                Binding::F32(grad_output),
                Binding::U32(indices),
                Binding::F32(grad_input),
            ],
            (g.input_len() as u64).div_ceil(256),
        )
    }
}
