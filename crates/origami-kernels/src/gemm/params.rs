//! Blocking parameters of the matrix product, in one place.
//!
//! The loop nest is BLIS's: `NC` columns of B and `KC` of the depth are packed into a panel
//! that should stay in L2/L3, `MC` rows of A into a panel that should stay in L2, and the
//! micro-kernel streams `KC`-deep slivers of both through registers.

/// Rows of C computed by one micro-kernel call. With two vectors per row this is 12
/// accumulators, which with the two B vectors and the broadcast A value fits the 16 vector
/// registers of AVX2 and NEON; AVX-512 has 32 and could take more rows.
pub const MR: usize = 6;

/// Vectors per micro-kernel row: the micro-tile is `MR x (NV * LANES)`.
pub const NV: usize = 2;

/// Depth of one packed block. 256 `f32` of A and B per step keep a micro-kernel's slivers
/// (`MR * KC` and `NR * KC` elements, 6 KiB and 16-32 KiB) within L1 and L2.
pub const KC: usize = 256;

/// Rows of A packed at a time: `MC * KC` elements (120 KiB of `f32`) sized for L2.
pub const MC: usize = 120;

/// Columns of B packed at a time: `KC * NC` elements (1 MiB of `f32`) sized for a share of L3.
pub const NC: usize = 1024;
