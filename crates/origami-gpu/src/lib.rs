//! # origami-gpu
//!
//! origami's convolution and pooling ops on a GPU through [`wgpu`] compute shaders (WGSL):
//! Vulkan, Metal and DX12, and software Vulkan (llvmpipe) on machines without a GPU. The
//! geometry types and errors are the CPU crate's ([`origami_kernels::ConvNd`],
//! [`origami_kernels::PoolNd`], [`origami_kernels::Error`]), and every op is tested against
//! the CPU kernels.
//!
//! | op | algorithms |
//! | --- | --- |
//! | convolution 1-D/2-D/3-D: forward, input / weight / bias gradient ([`GpuConv`]) | `Direct`, `Tiled` (implicit GEMM in workgroup memory) |
//! | pooling 1-D/2-D/3-D: max (with indices), average, sum; forward and backward ([`GpuPool`]) | `Direct`, `PrefixSum` (block scans in workgroup memory) |
//!
//! ## Using it
//!
//! 1. Open a [`Gpu`] (a clear [`GpuError::NoAdapter`] when there is none).
//! 2. Build a geometry with the CPU crate and wrap it: [`GpuConv::new`], [`GpuPool::new`].
//!    This checks it against the device's limits once.
//! 3. Allocate device buffers once ([`Gpu::upload`], [`Gpu::zeros`]) and reuse them.
//! 4. Record any number of op calls into one [`Recorder`] ([`Gpu::record`]), submit them
//!    together ([`Gpu::submit`]), and read results back ([`Gpu::read`]) when needed: no round
//!    trip to the host between calls. [`Gpu::run`] does one call start to finish.
//!
//! ```no_run
//! use origami_gpu::{Gpu, GpuConv, GpuConvAlgorithm};
//! use origami_kernels::ConvSpec;
//!
//! # fn main() -> Result<(), origami_gpu::GpuError> {
//! let gpu = Gpu::new()?;
//! let geometry = ConvSpec::new(1, 3, 8, [32, 32], [3, 3]).with_padding([1, 1]).build()?;
//! let conv = GpuConv::new(&gpu, geometry, GpuConvAlgorithm::Auto)?;
//! let x = gpu.upload(&vec![1.0f32; geometry.input_len()])?;
//! let w = gpu.upload(&vec![0.5f32; geometry.weight_len()])?;
//! let y = gpu.zeros(geometry.output_len())?;
//! gpu.run(|rec| conv.forward(rec, &x, &w, None, &y))?;
//! let y = gpu.read(&y)?;
//! # Ok(()) }
//! ```
//!
//! ## Numbers
//!
//! Tensors are `f32`, PyTorch's layout, and max-pooling indices `u32` flat positions within
//! each `(n, c)` input plane. Sums run in another order than on the CPU, so results agree
//! to rounding, not bitwise (the tests allow 1e-4 of the largest output); max pooling, its
//! indices and its backward pass agree exactly. Padding taps multiply zero in the forward
//! pass and the weight gradient, as on the CPU, so a non-finite weight next to padding gives
//! NaN on both; in `Tiled`'s input gradient every tap multiplies (zero where no output reads
//! the input), so a non-finite weight can give NaN where `Direct` and the CPU give ±inf.

#![warn(missing_docs)]
// Only the CUDA backend needs `unsafe` (kernel launches, the driver check); it allows it
// locally, with a SAFETY comment on each block.
#![deny(unsafe_code)]

mod conv;
#[cfg(feature = "cuda")]
pub mod cuda_backend;
mod device;
mod error;
mod params;
mod pool;
mod shaders;
mod wgpu_backend;

pub use conv::{GpuConv, GpuConvAlgorithm};
pub use device::{Gpu, GpuBuffer, GpuElement, Recorder};
pub use error::GpuError;
pub use pool::GpuPool;

/// The README's examples (CPU and GPU), compiled and run as doc tests so they cannot go
/// stale. They live here because this crate sees both.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
