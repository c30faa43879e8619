//! The harness's one GPU: opened on first use and shared by `eval`, `sweep` and the benches.
//! It is the wgpu device unless [`use_cuda`] chose CUDA before the first use.

use origami_gpu::Gpu;
use std::sync::OnceLock;

static GPU: OnceLock<Result<Gpu, String>> = OnceLock::new();
static CUDA: OnceLock<bool> = OnceLock::new();

/// Makes the shared GPU the CUDA device 0 (feature `cuda`). Call before any use; fails in a
/// build without the feature, naming how to get it.
pub fn use_cuda() -> Result<(), String> {
    if !cfg!(feature = "cuda") {
        return Err(
            "this build has no CUDA backend: build origami-bench with --features cuda \
             (scripts/gpu-check.sh does)"
                .into(),
        );
    }
    if GPU.get().is_some() || CUDA.set(true).is_err() {
        return Err("the GPU was chosen already".into());
    }
    Ok(())
}

/// The backend name rows carry: `gpu` (wgpu) or `cuda`.
pub fn backend_label() -> &'static str {
    if CUDA.get().copied().unwrap_or(false) {
        "cuda"
    } else {
        "gpu"
    }
}

fn open() -> Result<Gpu, String> {
    #[cfg(feature = "cuda")]
    if CUDA.get().copied().unwrap_or(false) {
        return Gpu::cuda(0).map_err(|e| e.to_string());
    }
    Gpu::new().map_err(|e| e.to_string())
}

/// The process's GPU, or why there is none (no adapter, no device, no driver).
pub fn shared() -> Result<&'static Gpu, String> {
    GPU.get_or_init(open).as_ref().map_err(Clone::clone)
}
