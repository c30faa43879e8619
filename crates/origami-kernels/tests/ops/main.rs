//! The kernel crate's suites in one test binary: every op and algorithm against the `f64`
//! reference (`conv`, `pool`), NaN, infinity and determinism (`special_values`), thread
//! counts (`threads`, with the `rayon` feature), no allocation in any op (`no_alloc`, which
//! installs this binary's global allocator) and the tiny pass Miri runs (`smoke`).
//!
//! One binary rather than six because each would compile and link its own copy of every
//! kernel instantiation: merged, CI's test build (and the aarch64 one under qemu) does that
//! work once. Run one suite with `cargo test -p origami-kernels --test ops conv::`.

#[path = "../common/mod.rs"]
mod common;

mod conv;
mod no_alloc;
mod pool;
mod smoke;
mod special_values;
#[cfg(feature = "rayon")]
mod threads;
