//! The CUDA backend (feature `cuda`): the same kernels as CUDA C (`cuda/kernels.cu`),
//! compiled ahead of time by NVRTC 13.0 into `cuda/kernels.ptx` and embedded, so a machine
//! with only the NVIDIA driver runs them. The driver library is loaded at run time: without
//! it, opening the backend is an error, never a panic.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DriverError, LaunchConfig,
    PushKernelArg,
};

use crate::device::GpuElement;
use crate::error::GpuError;
use crate::shaders::Shader;

/// The embedded PTX (`compute_80`, so the driver JIT-compiles it for Ampere, Hopper and
/// newer). Made by `scripts/make-ptx.sh`; CI checks it matches `kernels.cu`.
pub const PTX: &str = include_str!("cuda/kernels.ptx");

/// The CUDA C source of every kernel, as NVRTC compiles it.
pub const SOURCE: &str = include_str!("cuda/kernels.cu");

/// The kernels every backend must provide: one PTX entry point per shader.
pub fn kernel_names() -> Vec<&'static str> {
    Shader::ALL.iter().map(|s| s.label()).collect()
}

/// The NVRTC options the embedded PTX is made with (`scripts/make-ptx.sh`).
pub const NVRTC_ARCH: &str = "compute_80";

/// Compiles [`SOURCE`] with NVRTC as the embedded PTX was made (IEEE arithmetic: no flush
/// to zero, exact division, as the WGSL kernels and the CPU). Needs `libnvrtc` on the
/// library path; no GPU.
pub fn compile_ptx() -> Result<String, String> {
    // SAFETY: only tries to dlopen the NVRTC library; cudarc panics when it is missing.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err("NVRTC (libnvrtc) is not on the library path; see scripts/make-ptx.sh".into());
    }
    let options = cudarc::nvrtc::CompileOptions {
        arch: Some(NVRTC_ARCH),
        name: Some("kernels.cu".into()),
        ftz: Some(false),
        prec_div: Some(true),
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(SOURCE, options)
        .map(|p| p.to_src())
        .map_err(|e| format!("NVRTC failed: {e:?}"))
}

/// Entry points of `kernel_names` that `ptx` lacks.
pub fn missing_entry_points(ptx: &str) -> Vec<&'static str> {
    kernel_names()
        .into_iter()
        .filter(|name| !ptx.contains(&format!(".entry {name}(")))
        .collect()
}

pub(crate) struct CudaDevice {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    module: Arc<CudaModule>,
    functions: Mutex<HashMap<Shader, CudaFunction>>,
    name: String,
    total_bytes: u64,
}

fn driver(e: DriverError) -> GpuError {
    GpuError::Device(format!("CUDA: {e}"))
}

impl CudaDevice {
    pub(crate) fn open(ordinal: usize) -> Result<Self, GpuError> {
        // SAFETY: only tries to dlopen the driver library; cudarc's context constructor
        // panics when it is missing, so this check must come first.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(GpuError::NoAdapter(
                "the CUDA driver library (libcuda) is not installed".into(),
            ));
        }
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| GpuError::NoAdapter(format!("CUDA device {ordinal}: {e}")))?;
        let stream = ctx.default_stream();
        let module = ctx
            .load_module(cudarc::nvrtc::Ptx::from_src(PTX))
            .map_err(|e| GpuError::Shader {
                shader: "kernels.ptx",
                message: e.to_string(),
            })?;
        let name = ctx
            .name()
            .unwrap_or_else(|_| format!("CUDA device {ordinal}"));
        let total_bytes = ctx.total_mem().map_err(driver)? as u64;
        Ok(CudaDevice {
            ctx,
            stream,
            module,
            functions: Mutex::new(HashMap::new()),
            name,
            total_bytes,
        })
    }

    pub(crate) fn name(&self) -> String {
        format!("{} (CUDA)", self.name)
    }

    pub(crate) fn max_binding_bytes(&self) -> u64 {
        self.total_bytes
    }

    pub(crate) fn zeros<T: GpuElement>(&self, len: usize) -> Result<CudaSlice<T>, GpuError> {
        self.stream.alloc_zeros::<T>(len.max(1)).map_err(driver)
    }

    pub(crate) fn upload<T: GpuElement>(&self, data: &[T]) -> Result<CudaSlice<T>, GpuError> {
        if data.is_empty() {
            return self.zeros(1);
        }
        self.stream.clone_htod(data).map_err(driver)
    }

    pub(crate) fn write<T: GpuElement>(
        &self,
        buffer: &mut CudaSlice<T>,
        data: &[T],
    ) -> Result<(), GpuError> {
        if data.is_empty() {
            return Ok(());
        }
        self.stream.memcpy_htod(data, buffer).map_err(driver)
    }

    pub(crate) fn read_into<T: GpuElement>(
        &self,
        buffer: &CudaSlice<T>,
        out: &mut [T],
    ) -> Result<(), GpuError> {
        if out.is_empty() {
            return Ok(());
        }
        self.stream
            .memcpy_dtoh(&buffer.slice(..out.len()), out)
            .map_err(driver)?;
        self.wait()
    }

    pub(crate) fn wait(&self) -> Result<(), GpuError> {
        self.stream.synchronize().map_err(driver)?;
        self.ctx.check_err().map_err(driver)
    }

    fn function(&self, shader: Shader) -> Result<CudaFunction, GpuError> {
        let mut cache = self
            .functions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = cache.get(&shader) {
            return Ok(f.clone());
        }
        let f = self
            .module
            .load_function(shader.label())
            .map_err(|e| GpuError::Shader {
                shader: shader.label(),
                message: e.to_string(),
            })?;
        cache.insert(shader, f.clone());
        Ok(f)
    }

    /// Launches `shader` on the stream: a `grid` of blocks shaped like the shader's
    /// workgroup, the parameter block by value, then the buffers in binding order.
    pub(crate) fn launch(
        &self,
        shader: Shader,
        params: &[u32; 64],
        buffers: &[CudaArg<'_>],
        grid: (u32, u32),
    ) -> Result<(), GpuError> {
        let function = self.function(shader)?;
        let config = LaunchConfig {
            grid_dim: (grid.0, grid.1, 1),
            block_dim: shader.block_dim(),
            shared_mem_bytes: 0,
        };
        let mut launch = self.stream.launch_builder(&function);
        launch.arg(params);
        for b in buffers {
            match b {
                CudaArg::F32(s) => launch.arg(*s),
                CudaArg::U32(s) => launch.arg(*s),
            };
        }
        // SAFETY: every kernel of kernels.cu takes `Params` (64 u32 by value, the same
        // layout as `[u32; 64]`) followed by one pointer per binding, in this order, with the
        // element types the shader declares (checked by the op that built `buffers`); the
        // ops size each buffer for every index the kernel computes from `params`, as the
        // wgpu path's bounds do.
        unsafe { launch.launch(config) }.map_err(driver)?;
        Ok(())
    }
}

/// A buffer passed to a CUDA kernel.
pub(crate) enum CudaArg<'a> {
    F32(&'a CudaSlice<f32>),
    U32(&'a CudaSlice<u32>),
}

#[cfg(test)]
mod tests {
    /// The embedded PTX has every kernel: the check CI runs without a GPU or NVRTC.
    #[test]
    fn embedded_ptx_has_every_entry_point() {
        assert!(
            super::PTX.contains(".target sm_80"),
            "PTX for another target"
        );
        assert_eq!(super::missing_entry_points(super::PTX), Vec::<&str>::new());
    }

    /// Where NVRTC is present (CI installs it from PyPI), every kernel compiles and the
    /// embedded PTX is what kernels.cu compiles to. `ORIGAMI_REQUIRE_NVRTC=1` makes a missing
    /// NVRTC a failure rather than a skip.
    #[test]
    fn kernels_compile_to_the_embedded_ptx() {
        let ptx = match super::compile_ptx() {
            Ok(p) => p,
            Err(e) if e.starts_with("NVRTC (libnvrtc)") => {
                assert!(
                    std::env::var_os("ORIGAMI_REQUIRE_NVRTC").is_none(),
                    "ORIGAMI_REQUIRE_NVRTC is set but {e}"
                );
                eprintln!("skipped: {e}");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        assert_eq!(super::missing_entry_points(&ptx), Vec::<&str>::new());
        assert!(
            ptx == super::PTX,
            "src/cuda/kernels.ptx is stale: run scripts/make-ptx.sh"
        );
    }

    /// Without the NVIDIA driver, opening CUDA is a clear error, not a panic. (A unit test,
    /// so CI's check without a GPU builds no test binary beyond the library's.)
    #[test]
    fn cuda_without_a_driver_is_an_error() {
        if let Err(e) = crate::Gpu::cuda(0) {
            assert!(matches!(e, crate::GpuError::NoAdapter(_)), "{e}");
        }
    }
}
