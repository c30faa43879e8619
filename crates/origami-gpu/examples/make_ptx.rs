//! Compiles the CUDA kernels (`src/cuda/kernels.cu`) with NVRTC into PTX and checks that
//! every kernel is an entry point.
//!
//! `make_ptx OUT` writes the PTX to OUT; `make_ptx --check` compares it with the embedded
//! `src/cuda/kernels.ptx` and fails when that is stale. Needs NVRTC 13.0 on the library
//! path (`scripts/make-ptx.sh` installs it from PyPI), no GPU.

use origami_gpu::cuda_backend::{PTX, compile_ptx, kernel_names, missing_entry_points};
use std::process::ExitCode;

fn main() -> ExitCode {
    let arg = std::env::args().nth(1).unwrap_or_default();
    if arg.is_empty() {
        eprintln!("usage: make_ptx OUT | --check");
        return ExitCode::from(2);
    }
    let ptx = match compile_ptx() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let missing = missing_entry_points(&ptx);
    if !missing.is_empty() {
        eprintln!("error: the PTX lacks entry points {missing:?}");
        return ExitCode::from(1);
    }
    if arg == "--check" {
        if ptx != PTX {
            eprintln!("error: src/cuda/kernels.ptx is stale; run scripts/make-ptx.sh");
            return ExitCode::from(1);
        }
        println!(
            "kernels.ptx is up to date: {} entry points",
            kernel_names().len()
        );
    } else if let Err(e) = std::fs::write(&arg, &ptx) {
        eprintln!("error: cannot write {arg}: {e}");
        return ExitCode::from(2);
    } else {
        println!("wrote {arg}: {} bytes", ptx.len());
    }
    ExitCode::SUCCESS
}
