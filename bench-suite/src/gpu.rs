//! The harness's one GPU: opened on first use and shared by `eval`, `sweep` and the benches.

use origami_gpu::Gpu;
use std::sync::OnceLock;

static GPU: OnceLock<Result<Gpu, String>> = OnceLock::new();

/// The process's GPU, or why there is none (no adapter, no device).
pub fn shared() -> Result<&'static Gpu, String> {
    GPU.get_or_init(|| Gpu::new().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(Clone::clone)
}
