//! # origami-kernels
//!
//! Convolution and pooling kernels for 1-D, 2-D and 3-D tensors, forward and backward, in
//! several algorithms, with SIMD through [`wide`]:
//!
//! | op | algorithms |
//! | --- | --- |
//! | convolution: forward, input / weight / bias gradient, transposed ([`conv`]) | `Direct`, `Unrolled` (im2col + packed GEMM), `Winograd` (F(2x2, 3x3): 3x3 kernels at stride 1) |
//! | pooling: max (with indices), average, sum; forward and backward ([`pool`]) | `Direct`, `Fold`, `PrefixSum` |
//!
//! `#![no_std]`, and nothing allocates:
//! every operation takes caller-owned slices, and operations that need working memory say how
//! much through a `scratch_len` query and take it as a `&mut [T]`.
//!
//! ## Conventions
//!
//! PyTorch's, so results compare one to one and weights load as they are: tensors are
//! contiguous `[N, C, *spatial]`, convolution weights `[out, in / groups, *kernel]`, and
//! parameters carry PyTorch's names and meanings. Padding may be asymmetric (`lo`, `hi`).
//!
//! ## Using it
//!
//! 1. Describe the op with a spec ([`ConvSpec`], [`PoolSpec`]) and `build()` it into a
//!    validated geometry ([`ConvNd`], [`PoolNd`]; `D` is the number of spatial dimensions). Every bad value is an [`Error`]
//!    naming it; a built geometry never panics.
//! 2. Pick an algorithm ([`ConvAlgorithm`], [`PoolAlgorithm`]) or let `Auto` pick, ask `scratch_len`, and call
//!    the operation.
//! 3. To check results, the [`reference`](mod@reference) module computes the same functions with plain loops
//!    in `f64`.
//!
//! ## SIMD
//!
//! Vector widths are chosen at compile time from the target features, because `wide` picks
//! its code paths that way: build with `-C target-cpu=native` (or a level such as
//! `x86-64-v3`) to get AVX2 or AVX-512. Without such flags the kernels still vectorise, on
//! SSE2 on x86-64, NEON on aarch64, and scalar code on microcontrollers.
#![cfg_attr(not(any(test, feature = "rayon")), no_std)]
// Unsafe code only where an item allows it, with a `// SAFETY:` comment on each block: every
// other bound is checked or proven by a validated geometry. One item does today, the
// micro-kernel that reads its right operand in place (`gemm::kernel::micro_tile_indexed`),
// whose bounds checks per load would cost a tenth of its issue slots.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod conv;
pub mod element;
pub mod error;
pub mod gemm;
#[cfg(feature = "rayon")]
mod par;
pub mod pool;
pub mod reference;
mod split;
pub mod window;

pub use conv::{
    Conv1d, Conv2d, Conv3d, ConvAlgorithm, ConvNd, ConvOp, ConvSpec, ConvTransposeNd,
    ConvTransposeSpec,
};
pub use element::Element;
pub use error::Error;
pub use pool::{Pool1d, Pool2d, Pool3d, PoolAlgorithm, PoolKind, PoolNd, PoolOp, PoolSpec};
