//! The kernels' thread count: the kernel crate's `rayon` feature splits every operation over
//! rayon's global pool, sized once per process from `--threads` (or
//! `ORIGAMI_SWEEP_THREADS` for `cargo bench`).

/// Sizes the global pool to `threads` threads. A pool already running with that many is
/// fine; one with a different size cannot be changed, which is an error.
pub fn use_threads(threads: usize) -> Result<(), String> {
    match rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
    {
        Ok(()) => Ok(()),
        Err(_) if rayon::current_num_threads() == threads => Ok(()),
        Err(e) => Err(format!(
            "the thread pool already runs {} threads: {e}",
            rayon::current_num_threads()
        )),
    }
}

/// Threads the kernels use now (results record it per row).
pub fn current() -> usize {
    rayon::current_num_threads()
}
