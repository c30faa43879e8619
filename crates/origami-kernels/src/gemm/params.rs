//! Blocking parameters of the matrix product, in one place.
//!
//! The loop nest is BLIS's with the operands' roles mirrored, because `C` is row-major and
//! vectors run along its rows: an `MR x KC` sliver of packed A (broadcast one value at a time)
//! stays in L1 while the micro-kernel streams `KC x NR` slivers of a packed `KC x NC` block of
//! B from L2; `MC` rows of A are packed at a time.

/// Rows of C computed by one micro-kernel call: `MR * NV` accumulators plus the `NV` vectors
/// of B and one broadcast must fit the vector registers. AVX-512 has 32 (24 accumulators);
/// AVX2 and NEON have 16 (12 accumulators).
#[cfg(target_feature = "avx512f")]
pub const MR: usize = 12;
/// Rows of C computed by one micro-kernel call (see the AVX-512 definition).
#[cfg(not(target_feature = "avx512f"))]
pub const MR: usize = 6;

/// Vectors per micro-kernel row: the micro-tile is `MR x (NV * LANES)`.
pub const NV: usize = 2;

/// Depth of one packed block: an A sliver is `MR * KC` elements (12 KiB of `f32` with
/// AVX-512), so it stays in a 32 KiB L1 next to the B slivers streaming past.
pub const KC: usize = 128;

/// Rows of A packed at a time (`MC * KC` elements, 480 KiB of `f32`): as large as a convolution's
/// output channels usually are, so B is packed once.
pub const MC: usize = 480;

/// Columns of B packed at a time: `KC * NC` elements (384 KiB of `f32`) stay in a 1 MiB L2.
pub const NC: usize = 2048;

/// Depth of one block when B is read in place (the convolution reading its unrolled matrix
/// from phase planes): with no packed B sliver to keep in L1, only the A sliver
/// (`MR * KC_INDEXED` elements, 18 KiB of `f32` with AVX-512) and the rows the steps read
/// compete for it, and a deeper block writes each tile of C fewer times. 384 measured best of
/// 128-512 on 3x3 convolutions with 64-256 channels.
pub const KC_INDEXED: usize = 384;

/// Columns per pass of [`KC_INDEXED`]-deep blocks when B is read in place: the planes' rows
/// those columns read and the tiles of C they write stay in L2 while every depth block passes
/// (512 measured a few per cent faster than 128, 256 or all columns at once).
pub const NC_INDEXED: usize = 512;
