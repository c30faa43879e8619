//! The WGSL programs, each assembled from shared parts so that the index arithmetic is
//! written once: `common` (parameters, taps), then the op family's helpers, then the kernel.

macro_rules! wgsl {
    ($($file:literal),+ $(,)?) => {
        concat!($(include_str!(concat!("shaders/", $file)), "\n"),+)
    };
}

/// One compute pipeline: a shader and its entry point `main`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Shader {
    ConvForwardDirect,
    ConvBackwardInputDirect,
    ConvBackwardWeightDirect,
    ConvForwardTiled,
    ConvBackwardInputTiled,
    ConvBackwardWeightTiled,
    ConvBackwardBias,
    PoolForwardDirect,
    PoolBackwardGather,
    PoolWindowPass,
}

impl Shader {
    /// Every shader, for compile checks.
    #[cfg(any(test, feature = "cuda"))]
    pub(crate) const ALL: [Shader; 10] = [
        Shader::ConvForwardDirect,
        Shader::ConvBackwardInputDirect,
        Shader::ConvBackwardWeightDirect,
        Shader::ConvForwardTiled,
        Shader::ConvBackwardInputTiled,
        Shader::ConvBackwardWeightTiled,
        Shader::ConvBackwardBias,
        Shader::PoolForwardDirect,
        Shader::PoolBackwardGather,
        Shader::PoolWindowPass,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Shader::ConvForwardDirect => "conv_forward_direct",
            Shader::ConvBackwardInputDirect => "conv_backward_input_direct",
            Shader::ConvBackwardWeightDirect => "conv_backward_weight_direct",
            Shader::ConvForwardTiled => "conv_forward_tiled",
            Shader::ConvBackwardInputTiled => "conv_backward_input_tiled",
            Shader::ConvBackwardWeightTiled => "conv_backward_weight_tiled",
            Shader::ConvBackwardBias => "conv_backward_bias",
            Shader::PoolForwardDirect => "pool_forward_direct",
            Shader::PoolBackwardGather => "pool_backward_gather",
            Shader::PoolWindowPass => "pool_window_pass",
        }
    }

    /// Invocations per workgroup (threads per CUDA block), as the shader declares them.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn block_dim(self) -> (u32, u32, u32) {
        match self {
            Shader::ConvForwardTiled
            | Shader::ConvBackwardInputTiled
            | Shader::ConvBackwardWeightTiled => (16, 16, 1),
            _ => (256, 1, 1),
        }
    }

    pub(crate) fn entry(self) -> &'static str {
        "main"
    }

    pub(crate) fn source(self) -> &'static str {
        match self {
            Shader::ConvForwardDirect => wgsl!(
                "common.wgsl",
                "conv_common.wgsl",
                "conv_read_input.wgsl",
                "conv_forward_direct.wgsl"
            ),
            Shader::ConvBackwardInputDirect => wgsl!(
                "common.wgsl",
                "conv_common.wgsl",
                "conv_backward_input_direct.wgsl"
            ),
            Shader::ConvBackwardWeightDirect => wgsl!(
                "common.wgsl",
                "conv_common.wgsl",
                "conv_read_input.wgsl",
                "conv_backward_weight_direct.wgsl"
            ),
            Shader::ConvForwardTiled => wgsl!(
                "common.wgsl",
                "conv_common.wgsl",
                "conv_read_input.wgsl",
                "conv_forward_tiled.wgsl",
                "gemm_tile.wgsl"
            ),
            Shader::ConvBackwardInputTiled => wgsl!(
                "common.wgsl",
                "conv_common.wgsl",
                "conv_backward_input_tiled.wgsl",
                "gemm_tile.wgsl"
            ),
            Shader::ConvBackwardWeightTiled => wgsl!(
                "common.wgsl",
                "conv_common.wgsl",
                "conv_read_input.wgsl",
                "conv_backward_weight_tiled.wgsl",
                "gemm_tile.wgsl"
            ),
            Shader::ConvBackwardBias => {
                wgsl!("common.wgsl", "conv_common.wgsl", "conv_backward_bias.wgsl")
            }
            Shader::PoolForwardDirect => wgsl!(
                "common.wgsl",
                "pool_common.wgsl",
                "pool_forward_direct.wgsl"
            ),
            Shader::PoolBackwardGather => wgsl!(
                "common.wgsl",
                "pool_common.wgsl",
                "pool_backward_gather.wgsl"
            ),
            Shader::PoolWindowPass => {
                wgsl!("common.wgsl", "pool_common.wgsl", "pool_window_pass.wgsl")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Shader;

    /// Every shader parses and validates with wgpu's own front end, on any machine: a shader
    /// error shows here even where no adapter exists to compile it.
    #[test]
    fn every_shader_validates() {
        for shader in Shader::ALL {
            let module = naga::front::wgsl::parse_str(shader.source()).unwrap_or_else(|e| {
                panic!("{}: {}", shader.label(), e.emit_to_string(shader.source()))
            });
            naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::empty(),
            )
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}: {e:?}", shader.label()));
            assert!(
                module.entry_points.iter().any(|e| e.name == shader.entry()),
                "{} has no entry point {}",
                shader.label(),
                shader.entry()
            );
        }
    }
}
