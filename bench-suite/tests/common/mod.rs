//! Shared by the integration tests that need Python with h5py or a GPU.

use std::process::Command;

/// The Python to use (`$ORIGAMI_PYTHON`, default `python3`) when it imports h5py. Otherwise
/// `None`, after saying why the caller skips — unless `ORIGAMI_REQUIRE_H5PY` is set (as
/// `.ci/run` does), when the test fails instead.
#[allow(dead_code)] // each test binary compiles this module; not every one needs Python
pub fn python_with_h5py(what: &str) -> Option<String> {
    let py = std::env::var("ORIGAMI_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_h5py = Command::new(&py)
        .args(["-c", "import h5py"])
        .status()
        .is_ok_and(|s| s.success());
    if has_h5py {
        return Some(py);
    }
    assert!(
        std::env::var_os("ORIGAMI_REQUIRE_H5PY").is_none(),
        "ORIGAMI_REQUIRE_H5PY is set but {py} cannot import h5py"
    );
    eprintln!("skipped {what}: {py} cannot import h5py (set ORIGAMI_PYTHON to a Python that can)");
    None
}

/// Whether the harness's GPU opened. Otherwise `false`, after saying why the caller skips —
/// unless `ORIGAMI_REQUIRE_GPU` is set (as `.ci/run` does, on llvmpipe), when the test fails
/// instead.
#[allow(dead_code)] // each test binary compiles this module; not every one needs a GPU
pub fn gpu_or_skip(what: &str) -> bool {
    match origami_bench::gpu::shared() {
        Ok(_) => true,
        Err(why) => {
            assert!(
                std::env::var_os("ORIGAMI_REQUIRE_GPU").is_none(),
                "ORIGAMI_REQUIRE_GPU is set but {why}"
            );
            eprintln!("skipped {what}: {why}");
            false
        }
    }
}
