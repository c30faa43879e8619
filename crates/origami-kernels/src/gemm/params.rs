//! Blocking parameters of the matrix product, in one place.
//!
//! The loop nest is BLIS's with the operands' roles mirrored, because `C` is row-major and
//! vectors run along its rows: an `MR x KC` sliver of packed A (broadcast one value at a time)
//! stays in L1 while the micro-kernel streams `KC x NR` slivers of a packed `KC x NC` block of
//! B from L2; `MC` rows of A are packed at a time.

/// Rows of C computed by one micro-kernel call: `MR * NV` accumulators plus the `NV` vectors
/// of B and one broadcast must fit the vector registers. AVX-512 has 32: an 8 x 3-vector
/// tile (24 accumulators) divides the usual channel counts (64, 128, ...) into whole slivers,
/// where 12 x 2 computed 72 rows for 64, and each step's 3 loads of B feed 24 multiply-adds
/// (measured 9% faster on 3x3 convolutions with 64 channels, 5% with 128, on a Zen 4 core).
/// AVX2 and NEON have 16 registers (6 x 2 = 12 accumulators).
#[cfg(target_feature = "avx512f")]
pub const MR: usize = 8;
/// Rows of C computed by one micro-kernel call (see the AVX-512 definition).
#[cfg(not(target_feature = "avx512f"))]
pub const MR: usize = 6;

/// Vectors per micro-kernel row: the micro-tile is `MR x (NV * LANES)`.
#[cfg(target_feature = "avx512f")]
pub const NV: usize = 3;
/// Vectors per micro-kernel row (see the AVX-512 definition).
#[cfg(not(target_feature = "avx512f"))]
pub const NV: usize = 2;

/// Depth of one packed block: an A sliver is `MR * KC` elements and a B sliver `KC * NR`.
/// With AVX-512 the B sliver (72 KiB of `f32`) does not stay in a 32 KiB L1, and need not:
/// its three vectors a step come from L2 far faster than the step's 24 multiply-adds use
/// them, while a deeper block writes each tile of C fewer times and packs less per
/// multiply-add. On a Zen 4 core 384 ran 3-10% faster than 128 (m x n x k: 1024^3 105 ->
/// 110 GFLOP/s, 256 x 196 x 2304 102 -> 108, 512 x 49 x 4608 93 -> 102, 64 x 3136 x 576
/// 96 -> 98), 576 the same as 384 but for the last shape (95); `NC` 512 or 1024 with it
/// was slower. With AVX2 (6 x 16 tiles) likewise: on a Zen 3 core, 40 weight gradients
/// alternated call by call, 384 ran 3-9% faster than 128 (n8: the 7x7/2 stem 32.1 -> 29.6
/// ms, 3x3 c64 56x56 35.1 -> 33.0, c128 28x28 27.5 -> 26.8, temporal (9, 1) 75.1 -> 72.1,
/// conv1d k9 8.95 -> 8.74), 256 and 512 within 2% of it; the products 512^3 and 512 x 49 x
/// 4608 45 -> 52 and 49 -> 63 GFLOP/s. Elsewhere (NEON, SSE, scalar) 128, not measured
/// deeper: the packing buffers stay small for the embedded targets.
#[cfg(any(target_feature = "avx512f", target_feature = "avx2"))]
pub const KC: usize = 384;
/// Depth of one packed block (see the AVX-512 definition).
#[cfg(not(any(target_feature = "avx512f", target_feature = "avx2")))]
pub const KC: usize = 128;

/// Rows of A packed at a time (`MC * KC` elements: 240 KiB of `f32` at a depth of 128, 720
/// KiB at 384): as large as a convolution's output channels usually are, so B is packed once.
pub const MC: usize = 480;

/// Columns of B packed at a time: `KC * NC` elements (1 MiB of `f32` at a depth of 128, 3 MiB
/// at 384). The micro-kernel walks the block one sliver at a time, which is what must stay
/// near; at a depth of 384, blocks of 512 or 1024 columns measured slower (Zen 4).
pub const NC: usize = 2048;

/// Column slivers (`NR` columns each) of a block of B up to which a left operand whose rows
/// are contiguous along the depth is read in place by the micro-kernel (eight broadcasts
/// from eight rows) rather than packed: each packed value would serve at most this many
/// tiles, too few to repay its copy. The weights of a single image's small planes are read
/// once per call: the forward pass of a 3x3 convolution with 512 channels on one 7 x 7
/// image went from 3.6 to 3.2 ms (Zen 4), the product 512 x 49 x 4608 from 68 to 81
/// GFLOP/s, 256 x 196 x 2304 from 90-98 to 100; 384 and 768 columns measured the same
/// either way, 1024^3 within 1%.
pub const IN_PLACE_A_SLIVERS: usize = 16;

/// Depth of one block when B is read in place (the convolution reading its unrolled matrix
/// from phase planes): with no packed B sliver to keep in L1, only the A sliver
/// (`MR * KC_INDEXED` elements, 18 KiB of `f32` with AVX-512) and the rows the steps read
/// compete for it, and a deeper block writes each tile of C fewer times. With the 8-row
/// tile, 576 measured 10% faster than 128 and within noise of 768-2304 on 3x3 convolutions
/// with 64-256 channels (Zen 4); 384 was the best of 128-512 with 12 rows (Xeon), the same
/// 18 KiB sliver.
#[cfg(target_feature = "avx512f")]
pub const KC_INDEXED: usize = 576;
/// Depth of one block when B is read in place (see the AVX-512 definition).
#[cfg(not(target_feature = "avx512f"))]
pub const KC_INDEXED: usize = 384;

/// Columns per pass of [`KC_INDEXED`]-deep blocks when B is read in place: the planes' rows
/// those columns read and the tiles of C they write stay in L2 while every depth block passes
/// (about 512 measured a few per cent faster than 128, 256 or all columns at once). A whole
/// number of tiles: a tile straddling two passes would be computed in both.
pub const NC_INDEXED: usize = 512 / (NV * 16) * (NV * 16);

// Every sliver width divides a pass: `NR` is `NV` vectors of 16 lanes or a divisor of 16.
const _: () = assert!(NC_INDEXED.is_multiple_of(NV * 16) && MC.is_multiple_of(MR));
