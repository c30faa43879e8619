//! Convolution on the GPU: forward, input, weight and bias gradients, in 1-D, 2-D and 3-D,
//! for any geometry the CPU crate accepts ([`ConvNd`]).

use origami_kernels::ConvNd;

use crate::device::{Binding, Gpu, GpuBuffer, Recorder, check_len};
use crate::error::GpuError;
use crate::params::{self, index};
use crate::shaders::Shader;

/// The GPU's convolution algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GpuConvAlgorithm {
    /// `Tiled` (the faster on every shape measured so far).
    Auto,
    /// One invocation per output (forward), input element (input gradient) or weight element
    /// (weight gradient), each reducing over its window: the lecture's zip-reduce.
    Direct,
    /// Implicit GEMM: each direction is a matrix product per group whose operands are read
    /// straight from the tensors in 64 x 64 tiles staged in workgroup memory, with a 4 x 4
    /// register block per invocation. No im2col buffer.
    Tiled,
}

impl GpuConvAlgorithm {
    /// The concrete algorithms, for sweeps and tests.
    pub const ALL: [GpuConvAlgorithm; 2] = [GpuConvAlgorithm::Direct, GpuConvAlgorithm::Tiled];

    /// The name used on the command line and in results: `auto`, `direct`, `tiled`.
    pub const fn name(self) -> &'static str {
        match self {
            GpuConvAlgorithm::Auto => "auto",
            GpuConvAlgorithm::Direct => "direct",
            GpuConvAlgorithm::Tiled => "tiled",
        }
    }

    /// The algorithm called `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Auto, Self::Direct, Self::Tiled]
            .into_iter()
            .find(|a| a.name() == name)
    }

    /// The concrete algorithm this stands for.
    pub const fn resolve(self) -> Self {
        match self {
            GpuConvAlgorithm::Auto => GpuConvAlgorithm::Tiled,
            other => other,
        }
    }
}

/// A convolution geometry ready to run on one [`Gpu`]: tensors in PyTorch's layout, as
/// [`ConvNd`] describes them, in `f32`.
#[derive(Clone, Copy, Debug)]
pub struct GpuConv<const D: usize> {
    geometry: ConvNd<D>,
    algorithm: GpuConvAlgorithm,
    params: [u32; 30],
}

impl<const D: usize> GpuConv<D> {
    /// Checks that every tensor of `geometry` fits `gpu`'s bindings and 32-bit indices.
    pub fn new(
        gpu: &Gpu,
        geometry: ConvNd<D>,
        algorithm: GpuConvAlgorithm,
    ) -> Result<Self, GpuError> {
        let spec = geometry.spec();
        gpu.check_size::<f32>("input", geometry.input_len())?;
        gpu.check_size::<f32>("weight", geometry.weight_len())?;
        gpu.check_size::<f32>("output", geometry.output_len())?;
        let taps: usize = spec.kernel_size.iter().product();
        let in_plane: usize = spec.input_size.iter().product();
        let out_plane: usize = geometry.output_size().iter().product();
        let mut params = [0u32; 30];
        let scalars = [
            (spec.batch, "batch"),
            (spec.in_channels, "in_channels"),
            (spec.out_channels, "out_channels"),
            (spec.groups, "groups"),
            (spec.in_channels / spec.groups, "in_channels / groups"),
            (spec.out_channels / spec.groups, "out_channels / groups"),
            (0, "bias"),
            (in_plane, "input plane"),
            (out_plane, "output plane"),
            (taps, "kernel taps"),
        ];
        for (slot, (value, name)) in params.iter_mut().zip(scalars) {
            *slot = index(value, name)?;
        }
        params::axes(&geometry.axes(), &mut params[12..])?;
        for len in [
            geometry.input_len(),
            geometry.weight_len(),
            geometry.output_len(),
        ] {
            index(len, "tensor length")?;
        }
        Ok(GpuConv {
            geometry,
            algorithm,
            params,
        })
    }

    /// The geometry.
    pub fn geometry(&self) -> &ConvNd<D> {
        &self.geometry
    }

    /// The algorithm this op runs (never `Auto`).
    pub fn algorithm(&self) -> GpuConvAlgorithm {
        self.algorithm.resolve()
    }

    fn tiled(&self) -> bool {
        self.algorithm() == GpuConvAlgorithm::Tiled
    }

    /// Workgroups of the tiled GEMM whose per-group dimensions are `m` x `n`.
    fn gemm_groups(&self, m: usize, n: usize) -> u64 {
        let groups = self.geometry.spec().groups as u64;
        (m.div_ceil(64) as u64) * (n.div_ceil(64) as u64) * groups
    }

    /// Records `output = conv(input, weight) + bias`.
    pub fn forward(
        &self,
        rec: &mut Recorder<'_>,
        input: &GpuBuffer,
        weight: &GpuBuffer,
        bias: Option<&GpuBuffer>,
        output: &GpuBuffer,
    ) -> Result<(), GpuError> {
        let g = &self.geometry;
        check_len("input", g.input_len(), input.len())?;
        check_len("weight", g.weight_len(), weight.len())?;
        check_len("output", g.output_len(), output.len())?;
        if let Some(b) = bias {
            check_len("bias", g.bias_len(), b.len())?;
        }
        let mut params = self.params;
        params[6] = u32::from(bias.is_some());
        // Without a bias the shader never reads binding 3; any buffer serves.
        let bias = bias.unwrap_or(weight);
        let buffers = [
            Binding::F32(input),
            Binding::F32(weight),
            Binding::F32(bias),
            Binding::F32(output),
        ];
        if self.tiled() {
            let spec = g.spec();
            let kg = spec.out_channels / spec.groups;
            let n = g.output_len() / spec.out_channels;
            rec.dispatch(
                Shader::ConvForwardTiled,
                &params,
                &buffers,
                self.gemm_groups(kg, n),
            )
        } else {
            rec.dispatch(
                Shader::ConvForwardDirect,
                &params,
                &buffers,
                (g.output_len() as u64).div_ceil(256),
            )
        }
    }

    /// Records `grad_input` = the gradient of the loss with respect to the input.
    pub fn backward_input(
        &self,
        rec: &mut Recorder<'_>,
        grad_output: &GpuBuffer,
        weight: &GpuBuffer,
        grad_input: &GpuBuffer,
    ) -> Result<(), GpuError> {
        let g = &self.geometry;
        check_len("grad_output", g.output_len(), grad_output.len())?;
        check_len("weight", g.weight_len(), weight.len())?;
        check_len("grad_input", g.input_len(), grad_input.len())?;
        let buffers = [
            Binding::F32(grad_output),
            Binding::F32(weight),
            Binding::F32(grad_input),
        ];
        if self.tiled() {
            let spec = g.spec();
            let cg = spec.in_channels / spec.groups;
            let n = g.input_len() / spec.in_channels;
            rec.dispatch(
                Shader::ConvBackwardInputTiled,
                &self.params,
                &buffers,
                self.gemm_groups(cg, n),
            )
        } else {
            rec.dispatch(
                Shader::ConvBackwardInputDirect,
                &self.params,
                &buffers,
                (g.input_len() as u64).div_ceil(256),
            )
        }
    }

    /// Records `grad_weight` = the gradient of the loss with respect to the weight.
    pub fn backward_weight(
        &self,
        rec: &mut Recorder<'_>,
        input: &GpuBuffer,
        grad_output: &GpuBuffer,
        grad_weight: &GpuBuffer,
    ) -> Result<(), GpuError> {
        let g = &self.geometry;
        check_len("input", g.input_len(), input.len())?;
        check_len("grad_output", g.output_len(), grad_output.len())?;
        check_len("grad_weight", g.weight_len(), grad_weight.len())?;
        let buffers = [
            Binding::F32(input),
            Binding::F32(grad_output),
            Binding::F32(grad_weight),
        ];
        if self.tiled() {
            let spec = g.spec();
            let kg = spec.out_channels / spec.groups;
            let n = g.weight_len() / spec.out_channels;
            rec.dispatch(
                Shader::ConvBackwardWeightTiled,
                &self.params,
                &buffers,
                self.gemm_groups(kg, n),
            )
        } else {
            rec.dispatch(
                Shader::ConvBackwardWeightDirect,
                &self.params,
                &buffers,
                (g.weight_len() as u64).div_ceil(256),
            )
        }
    }

    /// Records `grad_bias` = the output gradient summed over the batch and the plane, per
    /// output channel (one algorithm serves both: a fixed-order workgroup reduction).
    pub fn backward_bias(
        &self,
        rec: &mut Recorder<'_>,
        grad_output: &GpuBuffer,
        grad_bias: &GpuBuffer,
    ) -> Result<(), GpuError> {
        let g = &self.geometry;
        check_len("grad_output", g.output_len(), grad_output.len())?;
        check_len("grad_bias", g.bias_len(), grad_bias.len())?;
        rec.dispatch(
            Shader::ConvBackwardBias,
            &self.params,
            &[Binding::F32(grad_output), Binding::F32(grad_bias)],
            g.bias_len() as u64,
        )
    }
}
