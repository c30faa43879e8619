//! The element types the kernels compute in (`f32`, `f64`) and the SIMD vector each one uses.
//!
//! The vector width is chosen here, once, at compile time from the target features, because
//! `wide` picks its own code paths the same way: a build with `avx512f` gets 512-bit vectors,
//! any other build 256-bit vectors (two 128-bit halves on NEON and SSE, scalar arrays on
//! Cortex-M and RISC-V).

use core::fmt::Debug;
use core::ops::{Add, AddAssign, Div, Mul, MulAssign, Sub};

/// A floating-point element type the kernels support, together with its SIMD vector type.
///
/// Loads and stores take slices and never panic: a short slice loads zeros into the missing
/// lanes and a short destination receives only the lanes that fit. Kernels call them on
/// full-length slices in their inner loops, where the length checks fold away.
pub trait Element:
    Copy
    + Default
    + Debug
    + PartialEq
    + PartialOrd
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + AddAssign
    + MulAssign
{
    /// The SIMD vector of `LANES` elements.
    type Simd: Copy
        + Debug
        + Add<Output = Self::Simd>
        + Sub<Output = Self::Simd>
        + Mul<Output = Self::Simd>
        + AddAssign;
    /// Lane indices for [`Element::slide_by`], made by [`Element::slide_index`].
    type SlideIndex: Copy;
    /// Number of elements in [`Element::Simd`].
    const LANES: usize;
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;
    /// Negative infinity, the identity of `max`.
    const NEG_INFINITY: Self;
    /// A quiet NaN.
    const NAN: Self;
    /// The type's name, `"f32"` or `"f64"`.
    const NAME: &'static str;
    /// Whether [`Element::slide_by`] and [`Element::slide_back`] are one instruction each
    /// (AVX-512's two-source permutes). Elsewhere they are several (AVX2: two `vpermps`, a
    /// shift and a blend; NEON and scalar builds: lane by lane), and kernels that would
    /// slide a vector along a row load it from there instead.
    const ONE_PERMUTE_SLIDES: bool;

    /// A vector with every lane set to `x`.
    fn splat(x: Self) -> Self::Simd;
    /// Loads `src[..LANES]`; lanes past the end of `src` are zero.
    fn load(src: &[Self]) -> Self::Simd;
    /// Loads `src[..LANES]` where the caller guarantees the length: an inner loop's load
    /// without [`Element::load`]'s zero-filling path, whose call to `memcpy` makes the
    /// compiler keep accumulators in memory. Panics on a short slice (a bug, not bad input).
    fn load_full(src: &[Self]) -> Self::Simd;
    /// `v` with lanes `n..` set to zero (a select, so NaN in those lanes does not survive).
    fn first_lanes(v: Self::Simd, n: usize) -> Self::Simd;
    /// Lanes `..n` of `head` and lanes `n..` of `tail` (a select: no arithmetic touches
    /// either, so every bit pattern survives).
    fn blend_first(n: usize, head: Self::Simd, tail: Self::Simd) -> Self::Simd;
    /// `a` and `b` interleaved, `a0 b0 a1 b1 ..`: the first `LANES` elements, then the rest
    /// (two two-source permutes with AVX-512).
    fn zip(a: Self::Simd, b: Self::Simd) -> (Self::Simd, Self::Simd);
    /// The inverse of [`Element::zip`]: the even elements of `a` then `b`, and the odd ones
    /// (two two-source permutes with AVX-512).
    fn unzip(a: Self::Simd, b: Self::Simd) -> (Self::Simd, Self::Simd);
    /// The vector `M` elements back along a row whose consecutive vectors are `prev` and
    /// `cur`: the last `M` lanes of `prev`, then the first `LANES - M` of `cur` (one
    /// lane-shifting permute with AVX-512; `M <= LANES`).
    fn slide_back<const M: usize>(prev: Self::Simd, cur: Self::Simd) -> Self::Simd;
    /// The indices that make [`Element::slide_by`] move `n <= LANES` elements along.
    fn slide_index(n: usize) -> Self::SlideIndex;
    /// The vector `n <= LANES` elements further along a row whose consecutive vectors are `a`
    /// and `b` (lanes `n .. n + LANES` of the two), `n` known only at run time: one
    /// two-source permute with AVX-512.
    fn slide_by(a: Self::Simd, b: Self::Simd, index: Self::SlideIndex) -> Self::Simd;
    /// A mask for [`Element::select`]: lanes `lo..hi` set.
    fn lane_mask(lo: usize, hi: usize) -> Self::Simd;
    /// The lanes of `a` where `mask` is set, of `b` elsewhere (bit patterns survive).
    fn select(mask: Self::Simd, a: Self::Simd, b: Self::Simd) -> Self::Simd;
    /// Loads `src[start + i * step]` for each lane `i`; lanes past the end of `src` are zero.
    fn gather(src: &[Self], start: usize, step: usize) -> Self::Simd;
    /// Stores the lanes into `dst[..LANES]`, as many as fit.
    fn store(v: Self::Simd, dst: &mut [Self]);
    /// [`Element::store`] past the caches, where the target has such a store and `dst`
    /// starts a whole vector on a 64-byte boundary (x86-64 with AVX-512: a non-temporal
    /// store, which writes the line without reading it first); a plain store elsewhere. For
    /// outputs far larger than the caches, which a plain store reads from memory line by
    /// line before it writes them. Follow the stores with [`Element::end_streaming`].
    #[inline(always)]
    fn store_streaming(v: Self::Simd, dst: &mut [Self]) {
        Self::store(v, dst);
    }
    /// Orders the [`Element::store_streaming`] stores before the stores that follow (a
    /// fence where streaming stores are weakly ordered).
    #[inline(always)]
    fn end_streaming() {}
    /// `a * b + c`, fused where the target has FMA.
    fn mul_add(a: Self::Simd, b: Self::Simd, c: Self::Simd) -> Self::Simd;
    /// Sum of the lanes.
    fn reduce_add(v: Self::Simd) -> Self;
    /// Lane-wise maximum that propagates NaN from either operand.
    fn max_nan(a: Self::Simd, b: Self::Simd) -> Self::Simd;
    /// PyTorch's max-pooling update, lane by lane: where `v` is greater than `best` or is NaN,
    /// take `(v, v_index)`; elsewhere keep `(best, best_index)`.
    fn max_update(
        best: Self::Simd,
        best_index: Self::Simd,
        v: Self::Simd,
        v_index: Self::Simd,
    ) -> (Self::Simd, Self::Simd);
    /// Converts to `f64` exactly.
    fn to_f64(self) -> f64;
    /// Converts from `f64`, rounding to nearest.
    fn from_f64(x: f64) -> Self;
    /// Converts a count to the element type (rounding above 2^24 for `f32`).
    fn from_usize(n: usize) -> Self;
    /// Whether the value is NaN.
    fn is_nan(self) -> bool;
    /// An index carried as a value of `Self` (a whole number from 0 to
    /// `max_exact_index`) back as `usize`, one at a time.
    fn to_index(self) -> usize;
    /// [`Element::to_index`] for a vector of indices, into `dst[..dst.len().min(LANES)]`:
    /// one truncating conversion and a widening store per vector. Element by element, the
    /// compiler converted through scalar instructions with range fix-ups per lane: a tenth
    /// of a 3x3/2 max pool with indices.
    fn store_indices(v: Self::Simd, dst: &mut [usize]);
    /// Transposes an 8 x 8 block: `dst[q * dst_stride + i] = src[i * src_stride + q]` for
    /// `i, q < 8`. Packing turns rows into columns with it, in registers where the target
    /// has a fast shuffle (`f32` with AVX), element by element elsewhere.
    fn transpose8(src: &[Self], src_stride: usize, dst: &mut [Self], dst_stride: usize) {
        for i in 0..8 {
            for q in 0..8 {
                dst[q * dst_stride + i] = src[i * src_stride + q];
            }
        }
    }
}

/// Whether every value is finite (neither infinite nor NaN), in whole vectors: `v * 0` is zero
/// exactly for finite `v` and NaN otherwise, so the check is a multiply-add per vector with no
/// branch, where an element-by-element test with an early exit is several times slower.
pub(crate) fn all_finite<T: Element>(values: &[T]) -> bool {
    let zero = T::splat(T::ZERO);
    let mut chunks = values.chunks_exact(T::LANES);
    let mut acc = zero;
    for c in &mut chunks {
        acc = T::mul_add(T::load_full(c), zero, acc);
    }
    let tail = T::mul_add(T::load(chunks.remainder()), zero, acc);
    !T::reduce_add(tail).is_nan()
}

/// Copies the first `dst.len()` (fewer than `src.len()`) elements of `src` in power-of-two
/// pieces of fixed size: a loop of unknown length would become a call to `memcpy`, which
/// costs more than the copy and makes the caller spill its registers around it.
#[inline(always)]
fn store_short<T: Copy>(src: &[T], dst: &mut [T]) {
    let n = dst.len();
    // The piece of width `w` (present when bit `w` of `n` is set) starts after the wider
    // pieces, at `n` with its bits below `2 w` cleared. Widths above 15 never reach here: a
    // vector has at most 16 lanes.
    macro_rules! piece {
        ($w:expr) => {
            if n & $w != 0 {
                let at = n & !(2 * $w - 1);
                dst[at..at + $w].copy_from_slice(&src[at..at + $w]);
            }
        };
    }
    piece!(8);
    piece!(4);
    piece!(2);
    piece!(1);
}

/// `dst[c * dst_stride + r] = src[r * src_stride + c]` for `r < rows`, `c < cols`: 8 x 8
/// blocks in registers ([`Element::transpose8`]), the edges element by element.
#[inline]
pub(crate) fn transpose<T: Element>(
    src: &[T],
    src_stride: usize,
    rows: usize,
    cols: usize,
    dst: &mut [T],
    dst_stride: usize,
) {
    let (rows8, cols8) = (rows & !7, cols & !7);
    for r in (0..rows8).step_by(8) {
        for c in (0..cols8).step_by(8) {
            T::transpose8(
                &src[r * src_stride + c..],
                src_stride,
                &mut dst[c * dst_stride + r..],
                dst_stride,
            );
        }
    }
    for r in 0..rows {
        let from = if r < rows8 { cols8 } else { 0 };
        for c in from..cols {
            dst[c * dst_stride + r] = src[r * src_stride + c];
        }
    }
}

/// [`Element::transpose8`] for `f32` with `wide`'s 8 x 8 transpose (shuffles with AVX).
#[inline(always)]
#[allow(unsafe_code)]
fn transpose8_f32(src: &[f32], src_stride: usize, dst: &mut [f32], dst_stride: usize) {
    // One check for the block's sixteen rows: checked one by one, each row's bound became an
    // induction variable of the caller's loops, spilled to the stack (a third of a small
    // transpose's time).
    let span = |stride: usize| stride.checked_mul(7).and_then(|r| r.checked_add(8));
    assert!(span(src_stride).is_some_and(|n| n <= src.len()));
    assert!(span(dst_stride).is_some_and(|n| n <= dst.len()));
    // Row by row rather than `core::array::from_fn`, which the compiler leaves as a call here.
    let row = |i: usize| {
        let at = i * src_stride;
        // SAFETY: `i <= 7`, so `at + 8 <= 7 * src_stride + 8 <= src.len()` (checked above).
        let row: &[f32] = unsafe { src.get_unchecked(at..at + 8) };
        let row: &[f32; 8] = row.try_into().unwrap_or(&[0.0; 8]);
        wide::f32x8::new(*row)
    };
    let rows = [
        row(0),
        row(1),
        row(2),
        row(3),
        row(4),
        row(5),
        row(6),
        row(7),
    ];
    for (q, v) in wide::f32x8::transpose(rows).into_iter().enumerate() {
        let at = q * dst_stride;
        // SAFETY: `q <= 7`, so `at + 8 <= 7 * dst_stride + 8 <= dst.len()` (checked above).
        unsafe { dst.get_unchecked_mut(at..at + 8) }.copy_from_slice(&v.to_array());
    }
}

/// The two-source permutes of one `wide` vector type ([`Element::unzip`],
/// [`Element::slide_by`]): `wide`'s shuffles, except where a target has a far shorter
/// sequence than the one `wide` picks for it.
trait Permute: Sized {
    /// Lane indices, `0 .. 2 * LANES` over the two sources.
    type Index;
    /// The even elements of `a` then `b`, and the odd ones.
    fn unzip(a: Self, b: Self) -> (Self, Self);
    /// Lane `i` of the result is lane `index[i]` of `a` then `b`.
    fn slide_by(a: Self, b: Self, index: Self::Index) -> Self;
}

/// [`Permute`] by `wide`'s two-source shuffles: one instruction each with AVX-512.
macro_rules! wide_permute {
    ($simd:ty, $index:ty, $ut:ty) => {
        impl Permute for $simd {
            type Index = $index;

            #[inline(always)]
            fn unzip(a: Self, b: Self) -> (Self, Self) {
                // Two-source shuffles by constant indices (as index maps, the compiler
                // built the vectors lane by lane).
                let even = <$index>::new(core::array::from_fn(|i| (2 * i) as $ut));
                let odd = <$index>::new(core::array::from_fn(|i| (2 * i + 1) as $ut));
                (
                    wide::ShuffleExt::shuffle([a, b], even),
                    wide::ShuffleExt::shuffle([a, b], odd),
                )
            }

            #[inline(always)]
            fn slide_by(a: Self, b: Self, index: Self::Index) -> Self {
                wide::ShuffleExt::shuffle([a, b], index)
            }
        }
    };
}

wide_permute!(wide::f32x16, wide::u32x16, u32);
wide_permute!(wide::f64x8, wide::u64x8, u64);
#[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
wide_permute!(wide::f64x4, wide::u64x4, u64);
#[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
wide_permute!(wide::f32x8, wide::u32x8, u32);

/// `v`'s 64-bit quarters in the order 0, 2, 1, 3: the halves that AVX's in-lane shuffles
/// build in each 128-bit lane (the unzips' even and odd elements), put in order.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
#[inline(always)]
#[allow(unsafe_code)]
fn middle_quarters_swapped(v: core::arch::x86_64::__m256d) -> core::arch::x86_64::__m256d {
    // SAFETY: AVX2 is enabled (the function's `cfg`); the intrinsic only moves lanes.
    unsafe { core::arch::x86_64::_mm256_permute4x64_pd::<0b11_01_10_00>(v) }
}

/// With AVX2 but not AVX-512, `wide` builds a two-source shuffle of 32-bit lanes from byte
/// shuffles of each source's halves (about 20 instructions); AVX2 permutes 32-bit lanes
/// across a whole register in one (`vpermps`). The window sums' pieces and the
/// de-interleaving pools run on these.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
#[allow(unsafe_code)]
impl Permute for wide::f32x8 {
    type Index = wide::u32x8;

    #[inline(always)]
    fn unzip(a: Self, b: Self) -> (Self, Self) {
        use core::arch::x86_64::{__m256, _mm256_castpd_ps, _mm256_castps_pd, _mm256_shuffle_ps};
        let (a, b): (__m256, __m256) = (a.into(), b.into());
        // SAFETY: AVX2 is enabled (the impl's `cfg`); the intrinsics only move lanes.
        unsafe {
            // Per 128-bit half: a0 a2 b0 b2 | a4 a6 b4 b6; then the middle 64-bit pairs
            // swapped: a0 a2 a4 a6 b0 b2 b4 b6 (likewise the odd lanes).
            let even = _mm256_shuffle_ps::<0b10_00_10_00>(a, b);
            let odd = _mm256_shuffle_ps::<0b11_01_11_01>(a, b);
            let order = |v: __m256| _mm256_castpd_ps(middle_quarters_swapped(_mm256_castps_pd(v)));
            (order(even).into(), order(odd).into())
        }
    }

    #[inline(always)]
    fn slide_by(a: Self, b: Self, index: Self::Index) -> Self {
        use core::arch::x86_64::{__m256i, _mm256_blendv_ps, _mm256_castsi256_ps};
        use core::arch::x86_64::{_mm256_permutevar8x32_ps, _mm256_slli_epi32};
        let index: __m256i = index.into();
        // SAFETY: AVX2 is enabled (the impl's `cfg`); the intrinsics only move lanes.
        unsafe {
            // Each source permuted by the index's low three bits; bit 3 (moved to the
            // sign, which the blend reads) says which source the lane comes from.
            let from_a = _mm256_permutevar8x32_ps(a.into(), index);
            let from_b = _mm256_permutevar8x32_ps(b.into(), index);
            let which = _mm256_castsi256_ps(_mm256_slli_epi32::<28>(index));
            _mm256_blendv_ps(from_a, from_b, which).into()
        }
    }
}

/// [`Permute`] of `f64` lanes with AVX2 (see the `f32x8` impl): each 64-bit lane moved as
/// its two 32-bit halves by `vpermps`.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
#[allow(unsafe_code)]
impl Permute for wide::f64x4 {
    type Index = wide::u64x4;

    #[inline(always)]
    fn unzip(a: Self, b: Self) -> (Self, Self) {
        use core::arch::x86_64::{__m256d, _mm256_unpackhi_pd, _mm256_unpacklo_pd};
        let (a, b): (__m256d, __m256d) = (a.into(), b.into());
        // SAFETY: AVX2 is enabled (the impl's `cfg`); the intrinsics only move lanes.
        unsafe {
            // a0 b0 | a2 b2 and a1 b1 | a3 b3, the middle pair swapped.
            let even = middle_quarters_swapped(_mm256_unpacklo_pd(a, b));
            let odd = middle_quarters_swapped(_mm256_unpackhi_pd(a, b));
            (even.into(), odd.into())
        }
    }

    #[inline(always)]
    fn slide_by(a: Self, b: Self, index: Self::Index) -> Self {
        use core::arch::x86_64::{__m256i, _mm256_add_epi64, _mm256_blendv_pd};
        use core::arch::x86_64::{_mm256_castpd_ps, _mm256_castps_pd, _mm256_castsi256_pd};
        use core::arch::x86_64::{_mm256_permutevar8x32_ps, _mm256_set1_epi64x};
        use core::arch::x86_64::{_mm256_slli_epi64, _mm256_xor_si256};
        let index: __m256i = index.into();
        // SAFETY: AVX2 is enabled (the impl's `cfg`); the intrinsics only move lanes.
        unsafe {
            // 32-bit lane indices `2 i` (low half) and `2 i + 1` (high half) of each 64-bit
            // lane `i`: `vpermps` reads their low three bits, `i mod 4` of a source.
            let twice = _mm256_slli_epi64::<1>(index);
            let halves = _mm256_add_epi64(
                _mm256_xor_si256(twice, _mm256_slli_epi64::<32>(twice)),
                _mm256_set1_epi64x(1 << 32),
            );
            let pick = |v: Self| {
                _mm256_castps_pd(_mm256_permutevar8x32_ps(_mm256_castpd_ps(v.into()), halves))
            };
            // Bit 2 of the index (moved to the sign, which the blend reads): source `b`.
            let which = _mm256_castsi256_pd(_mm256_slli_epi64::<61>(index));
            _mm256_blendv_pd(pick(a), pick(b), which).into()
        }
    }
}

macro_rules! impl_element {
    ($t:ty, $simd:ty, $index:ty, $ut:ty, $lanes:expr, $name:expr) => {
        impl_element!($t, $simd, $index, $ut, $lanes, $name, {});
    };
    ($t:ty, $simd:ty, $index:ty, $ut:ty, $lanes:expr, $name:expr, { $($extra:item)* }) => {
        impl Element for $t {
            type Simd = $simd;
            type SlideIndex = $index;
            const LANES: usize = $lanes;
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
            const NAN: Self = <$t>::NAN;
            const NAME: &'static str = $name;
            const ONE_PERMUTE_SLIDES: bool = cfg!(target_feature = "avx512f");

            #[inline(always)]
            fn splat(x: Self) -> Self::Simd {
                <$simd>::splat(x)
            }

            #[inline(always)]
            fn load(src: &[Self]) -> Self::Simd {
                match src.first_chunk::<$lanes>() {
                    Some(a) => <$simd>::new(*a),
                    // Lane by lane rather than `copy_from_slice`, which would call `memcpy`:
                    // in a loop's tail the call costs more than the loads and makes the
                    // compiler spill every accumulator around it.
                    None => {
                        <$simd>::new(core::array::from_fn(|i| src.get(i).copied().unwrap_or(0.0)))
                    }
                }
            }

            #[inline(always)]
            fn load_full(src: &[Self]) -> Self::Simd {
                // The slice index is the only check (and panics on a short slice); the
                // conversion of exactly `LANES` elements cannot fail.
                let a: &[Self; $lanes] = src[..$lanes].try_into().unwrap_or(&[0.0; $lanes]);
                <$simd>::new(*a)
            }

            #[inline(always)]
            fn first_lanes(v: Self::Simd, n: usize) -> Self::Simd {
                Self::blend_first(n, v, <$simd>::splat(0.0))
            }

            #[inline(always)]
            fn blend_first(n: usize, head: Self::Simd, tail: Self::Simd) -> Self::Simd {
                let index = <$simd>::new(core::array::from_fn(|i| i as $t));
                index.simd_lt(<$simd>::splat(n as $t)).select(head, tail)
            }

            #[inline(always)]
            fn zip(a: Self::Simd, b: Self::Simd) -> (Self::Simd, Self::Simd) {
                // Written as index maps, which the compiler turns into one shuffle each.
                let (a, b) = (a.to_array(), b.to_array());
                let pick = |i: usize| if i % 2 == 0 { a[i / 2] } else { b[i / 2] };
                (
                    <$simd>::new(core::array::from_fn(pick)),
                    <$simd>::new(core::array::from_fn(|i| pick(i + $lanes))),
                )
            }

            #[inline(always)]
            fn unzip(a: Self::Simd, b: Self::Simd) -> (Self::Simd, Self::Simd) {
                <$simd as Permute>::unzip(a, b)
            }

            #[inline(always)]
            fn slide_back<const M: usize>(prev: Self::Simd, cur: Self::Simd) -> Self::Simd {
                let (prev, cur) = (prev.to_array(), cur.to_array());
                <$simd>::new(core::array::from_fn(|i| {
                    if i < M { prev[$lanes - M + i] } else { cur[i - M] }
                }))
            }

            #[inline(always)]
            fn slide_index(n: usize) -> Self::SlideIndex {
                <$index>::new(core::array::from_fn(|i| (i + n) as $ut))
            }

            #[inline(always)]
            fn slide_by(a: Self::Simd, b: Self::Simd, index: Self::SlideIndex) -> Self::Simd {
                <$simd as Permute>::slide_by(a, b, index)
            }

            #[inline(always)]
            fn lane_mask(lo: usize, hi: usize) -> Self::Simd {
                let index = <$simd>::new(core::array::from_fn(|i| i as $t));
                index.simd_ge(<$simd>::splat(lo as $t)) & index.simd_lt(<$simd>::splat(hi as $t))
            }

            #[inline(always)]
            fn select(mask: Self::Simd, a: Self::Simd, b: Self::Simd) -> Self::Simd {
                mask.select(a, b)
            }

            #[inline(always)]
            fn gather(src: &[Self], start: usize, step: usize) -> Self::Simd {
                let a: [$t; $lanes] =
                    core::array::from_fn(|i| src.get(start + i * step).copied().unwrap_or(0.0));
                <$simd>::new(a)
            }

            #[inline(always)]
            fn store(v: Self::Simd, dst: &mut [Self]) {
                match dst.first_chunk_mut::<$lanes>() {
                    Some(d) => *d = v.to_array(),
                    None => store_short(&v.to_array(), dst),
                }
            }

            #[inline(always)]
            fn mul_add(a: Self::Simd, b: Self::Simd, c: Self::Simd) -> Self::Simd {
                a.mul_add(b, c)
            }

            #[inline(always)]
            fn reduce_add(v: Self::Simd) -> Self {
                v.reduce_add()
            }

            #[inline(always)]
            fn max_nan(a: Self::Simd, b: Self::Simd) -> Self::Simd {
                // `wide`'s max keeps `a` when `b` is NaN; `a + b` is NaN when either is.
                (a.is_nan() | b.is_nan()).select(a + b, a.max(b))
            }

            #[inline(always)]
            fn max_update(
                best: Self::Simd,
                best_index: Self::Simd,
                v: Self::Simd,
                v_index: Self::Simd,
            ) -> (Self::Simd, Self::Simd) {
                let take = v.simd_gt(best) | v.is_nan();
                (take.select(v, best), take.select(v_index, best_index))
            }

            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }

            #[inline(always)]
            fn from_f64(x: f64) -> Self {
                x as $t
            }

            #[inline(always)]
            fn from_usize(n: usize) -> Self {
                n as $t
            }

            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }

            #[inline(always)]
            fn to_index(self) -> usize {
                // Exact: the value is a whole number below 2^53, and `usize` holds any
                // index of a slice, so neither conversion rounds or saturates.
                self as i64 as usize
            }

            #[inline(always)]
            fn store_indices(v: Self::Simd, dst: &mut [usize]) {
                // `fast_` skips the saturation fix-ups: the values are whole numbers far
                // inside the integer range.
                let ints = v.fast_trunc_int().to_array();
                match dst.first_chunk_mut::<$lanes>() {
                    // A whole vector by plain stores: the loop below for every length
                    // compiled to masked stores (`vpmaskmovq`), microcoded on AMD cores, a
                    // fifth of a 3x3/2 max pool on Zen 3.
                    Some(d) => *d = ints.map(|i| i as usize),
                    None => {
                        for (d, &i) in dst.iter_mut().zip(&ints) {
                            *d = i as usize;
                        }
                    }
                }
            }

            $($extra)*
        }
    };
}

#[cfg(target_feature = "avx512f")]
impl_element!(f32, wide::f32x16, wide::u32x16, u32, 16, "f32", {
    #[inline(always)]
    fn transpose8(src: &[f32], src_stride: usize, dst: &mut [f32], dst_stride: usize) {
        transpose8_f32(src, src_stride, dst, dst_stride)
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    #[allow(unsafe_code)]
    fn store_streaming(v: wide::f32x16, dst: &mut [f32]) {
        match dst.first_chunk_mut::<16>() {
            Some(d) if (d.as_ptr() as usize).is_multiple_of(64) => {
                use core::arch::x86_64::{_mm256_loadu_ps, _mm256_stream_ps};
                let a = v.to_array();
                // SAFETY: `a` holds 16 readable `f32`, `d` 16 writable ones from a 64-byte
                // boundary, so each half starts on the 32-byte boundary the non-temporal
                // store requires; this build enables AVX-512F and with it AVX (the impl's
                // `cfg`). Two AVX stores rather than one AVX-512 store, whose intrinsics
                // need a newer compiler than the workspace's minimum (timed the same).
                unsafe {
                    _mm256_stream_ps(d.as_mut_ptr(), _mm256_loadu_ps(a.as_ptr()));
                    _mm256_stream_ps(d.as_mut_ptr().add(8), _mm256_loadu_ps(a.as_ptr().add(8)));
                }
            }
            _ => Self::store(v, dst),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn end_streaming() {
        stream_fence();
    }
});
#[cfg(target_feature = "avx512f")]
impl_element!(f64, wide::f64x8, wide::u64x8, u64, 8, "f64", {
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    #[allow(unsafe_code)]
    fn store_streaming(v: wide::f64x8, dst: &mut [f64]) {
        match dst.first_chunk_mut::<8>() {
            Some(d) if (d.as_ptr() as usize).is_multiple_of(64) => {
                use core::arch::x86_64::{_mm256_loadu_pd, _mm256_stream_pd};
                let a = v.to_array();
                // SAFETY: as for `f32`: 8 readable and 8 writable `f64`, the destination on a
                // 64-byte boundary (each half on 32 bytes), AVX enabled with AVX-512F.
                unsafe {
                    _mm256_stream_pd(d.as_mut_ptr(), _mm256_loadu_pd(a.as_ptr()));
                    _mm256_stream_pd(d.as_mut_ptr().add(4), _mm256_loadu_pd(a.as_ptr().add(4)));
                }
            }
            _ => Self::store(v, dst),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn end_streaming() {
        stream_fence();
    }
});

/// Makes the non-temporal stores before it visible before any store after it (they are
/// weakly ordered).
#[cfg(all(
    target_feature = "avx",
    target_arch = "x86_64",
    any(not(miri), target_feature = "avx512f")
))]
#[inline(always)]
#[allow(unsafe_code)]
fn stream_fence() {
    // SAFETY: a store fence has no preconditions (SSE is part of x86-64).
    unsafe { core::arch::x86_64::_mm_sfence() }
}
#[cfg(not(target_feature = "avx512f"))]
impl_element!(f32, wide::f32x8, wide::u32x8, u32, 8, "f32", {
    #[inline(always)]
    fn transpose8(src: &[f32], src_stride: usize, dst: &mut [f32], dst_stride: usize) {
        transpose8_f32(src, src_stride, dst, dst_stride)
    }

    // Not under Miri, which cannot run the non-temporal store (inline assembly in
    // `core::arch`): plain stores there.
    #[cfg(all(target_arch = "x86_64", target_feature = "avx", not(miri)))]
    #[inline(always)]
    #[allow(unsafe_code)]
    fn store_streaming(v: wide::f32x8, dst: &mut [f32]) {
        match dst.first_chunk_mut::<8>() {
            Some(d) if (d.as_ptr() as usize).is_multiple_of(32) => {
                // SAFETY: `d` holds 8 writable `f32` from the 32-byte boundary the
                // non-temporal store requires; AVX is enabled (the item's `cfg`).
                unsafe { core::arch::x86_64::_mm256_stream_ps(d.as_mut_ptr(), v.into()) }
            }
            _ => Self::store(v, dst),
        }
    }

    #[cfg(all(target_arch = "x86_64", target_feature = "avx", not(miri)))]
    #[inline(always)]
    fn end_streaming() {
        stream_fence();
    }
});
#[cfg(not(target_feature = "avx512f"))]
impl_element!(f64, wide::f64x4, wide::u64x4, u64, 4, "f64");

/// Output bytes from which a call writes its results past the caches
/// ([`Element::store_streaming`]): a quarter of a 32 MiB L3. Above it plain stores read every
/// output line from memory before writing it, traffic that did not overlap the arithmetic
/// (window sums n8 c64 112x112 15x15, 25.7 MB out: 6.8 -> 5.0 ms on one thread; n8 c32 2.9
/// -> 2.2 ms); below it outputs stay in L3 for whatever reads them next, and streaming cost
/// ~5% (n8 c8, c16).
pub(crate) const STREAM_BYTES: usize = 8 << 20;

/// Whether an output of `len` elements is written past the caches.
pub(crate) fn streams<T: Element>(len: usize) -> bool {
    len.saturating_mul(core::mem::size_of::<T>()) >= STREAM_BYTES
}

/// Copies `src` onto `dst` (the same length) with [`Element::store_streaming`] from the first
/// 64-byte boundary of `dst` on, plain stores before it and for a last partial vector. Follow
/// it with [`Element::end_streaming`].
#[inline(always)]
pub(crate) fn copy_streaming<T: Element>(dst: &mut [T], src: &[T]) {
    let size = core::mem::size_of::<T>();
    let head = ((dst.as_ptr() as usize).wrapping_neg() % 64 / size).min(dst.len());
    dst[..head].copy_from_slice(&src[..head]);
    let (dst, src) = (&mut dst[head..], &src[head..]);
    let whole = dst.len() / T::LANES * T::LANES;
    for (d, s) in dst[..whole]
        .chunks_exact_mut(T::LANES)
        .zip(src.chunks_exact(T::LANES))
    {
        T::store_streaming(T::load_full(s), d);
    }
    dst[whole..].copy_from_slice(&src[whole..]);
}

/// `buf` from its first element on a whole-vector boundary (`LANES` elements; from its start
/// where none is within a vector). Buffers whose loads are whole vectors at multiples of
/// `LANES` then never split a load over two cache lines, which on some cores (Zen 4) costs a
/// second pass through the load port; scratch from the caller has the element type's
/// alignment only, so it needs `LANES - 1` elements of room for this.
pub(crate) fn vector_aligned<T: Element>(buf: &mut [T]) -> &mut [T] {
    let skip = match buf
        .as_ptr()
        .align_offset(core::mem::size_of::<T>() * T::LANES)
    {
        skip if skip < T::LANES => skip,
        _ => 0,
    };
    &mut buf[skip..]
}

/// Elements of scratch for buffers of the given lengths laid out by [`split`]: each rounded
/// up to whole vectors, and a vector of room to start the first on a vector boundary.
/// Saturates, like every scratch size.
pub(crate) fn layout_len<T: Element>(lens: &[usize]) -> usize {
    lens.iter().fold(T::LANES, |t, &x| {
        t.saturating_add(x.div_ceil(T::LANES).saturating_mul(T::LANES))
    })
}

/// Splits `scratch` into buffers of the given lengths, each starting on a vector boundary:
/// the passes load and store whole vectors at multiples of `LANES` in them, and none of those
/// then straddles two cache lines.
pub(crate) fn split<T: Element, const N: usize>(
    scratch: &mut [T],
    lens: [usize; N],
) -> [&mut [T]; N] {
    let mut scratch = vector_aligned(scratch);
    lens.map(|n| {
        let whole = n.div_ceil(T::LANES) * T::LANES;
        let (head, rest) = core::mem::take(&mut scratch).split_at_mut(whole);
        scratch = rest;
        &mut head[..n]
    })
}

/// The widest vector of any element type, for stack buffers that hold one vector's lanes.
pub(crate) const MAX_LANES: usize = 16;

/// Asks the cache hierarchy for the line holding `p` ahead of its use (a hint: no effect on
/// results, never a fault, whatever the address).
#[inline(always)]
#[allow(unsafe_code)]
fn prefetch<T>(p: *const T) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: a prefetch reads nothing architecturally and does not fault on any address;
    // SSE is part of x86-64.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = p;
}

/// [`prefetch`] for the `len` elements from `first`, one request per cache line (the
/// addresses computed only, never read: `first` may point anywhere).
#[inline(always)]
pub(crate) fn prefetch_span<T>(first: *const T, len: usize) {
    let line = (64 / core::mem::size_of::<T>()).max(1);
    for e in (0..len).step_by(line) {
        prefetch(first.wrapping_add(e));
    }
    prefetch(first.wrapping_add(len.saturating_sub(1)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip<T: Element>() {
        let src: [T; 40] = core::array::from_fn(|i| T::from_usize(i + 1));
        let v = T::load(&src[3..]);
        let mut out = [T::ZERO; 40];
        T::store(v, &mut out);
        assert_eq!(&out[..T::LANES], &src[3..3 + T::LANES]);
        // Short slices: missing lanes load as zero, stores write only what fits.
        let v = T::load(&src[..2]);
        assert_eq!(T::reduce_add(v), T::from_usize(3));
        let mut short = [T::ZERO; 3];
        T::store(T::splat(T::ONE), &mut short);
        assert_eq!(short, [T::ONE; 3]);
        let mut out = [T::ZERO; MAX_LANES];
        T::store(T::first_lanes(T::splat(T::NAN), 3), &mut out);
        assert!(out[..3].iter().all(|v| v.is_nan()));
        assert!(out[3..T::LANES].iter().all(|&v| v == T::ZERO));
        let g = T::gather(&src, 1, 3);
        let mut out = [T::ZERO; MAX_LANES];
        T::store(g, &mut out);
        for (i, &x) in out[..T::LANES].iter().enumerate() {
            let expected = src.get(1 + 3 * i).copied().unwrap_or(T::ZERO);
            assert_eq!(x, expected);
        }
    }

    #[test]
    fn load_store_gather() {
        roundtrip::<f32>();
        roundtrip::<f64>();
    }

    fn transposes<T: Element>() {
        let src: [T; 100] = core::array::from_fn(|i| T::from_usize(i));
        let mut dst = [T::NAN; 120];
        T::transpose8(&src[3..], 11, &mut dst[2..], 13);
        for i in 0..8 {
            for q in 0..8 {
                assert_eq!(dst[2 + q * 13 + i], src[3 + i * 11 + q]);
            }
        }
        // Nothing outside the block is written.
        let written = |k: usize| k >= 2 && (k - 2) % 13 < 8 && (k - 2) / 13 < 8;
        assert!((0..120).filter(|&k| !written(k)).all(|k| dst[k].is_nan()));
    }

    #[test]
    fn transpose8_moves_rows_to_columns() {
        transposes::<f32>();
        transposes::<f64>();
    }

    fn zip_interleaves<T: Element>() {
        let a: Vec<T> = (0..T::LANES).map(|i| T::from_usize(2 * i)).collect();
        let b: Vec<T> = (0..T::LANES).map(|i| T::from_usize(2 * i + 1)).collect();
        let (lo, hi) = T::zip(T::load(&a), T::load(&b));
        let mut out = vec![T::ZERO; 2 * T::LANES];
        T::store(lo, &mut out);
        T::store(hi, &mut out[T::LANES..]);
        let expected: Vec<T> = (0..2 * T::LANES).map(T::from_usize).collect();
        assert_eq!(out, expected);
        let (even, odd) = T::unzip(lo, hi);
        T::store(even, &mut out);
        T::store(odd, &mut out[T::LANES..]);
        assert_eq!(out[..T::LANES], a[..]);
        assert_eq!(out[T::LANES..], b[..]);
    }

    fn slide_shifts_along<T: Element>() {
        let row: [T; 32] = core::array::from_fn(|i| T::from_usize(i));
        let (a, b) = (T::load(&row), T::load(&row[T::LANES..]));
        let mut out = [T::ZERO; 16];
        T::store(T::slide_back::<2>(a, b), &mut out);
        assert_eq!(out[..T::LANES], row[T::LANES - 2..2 * T::LANES - 2]);
        for n in 0..=T::LANES {
            T::store(T::slide_by(a, b, T::slide_index(n)), &mut out);
            assert_eq!(out[..T::LANES], row[n..T::LANES + n]);
        }
    }

    #[test]
    fn slide_shifts_both_types() {
        slide_shifts_along::<f32>();
        slide_shifts_along::<f64>();
    }

    #[test]
    fn zip_interleaves_both_types() {
        zip_interleaves::<f32>();
        zip_interleaves::<f64>();
    }

    #[test]
    fn max_propagates_nan_from_both_sides() {
        let a = f32::splat(f32::NAN);
        let b = f32::splat(1.0);
        let mut out = [0.0f32; MAX_LANES];
        f32::store(f32::max_nan(a, b), &mut out);
        assert!(out[0].is_nan());
        f32::store(f32::max_nan(b, a), &mut out);
        assert!(out[0].is_nan());
        f32::store(f32::max_nan(b, f32::splat(2.0)), &mut out);
        assert_eq!(out[0], 2.0);
    }

    #[test]
    fn transpose_moves_rows_to_columns() {
        for (rows, cols) in [(1, 1), (8, 8), (3, 17), (16, 112), (19, 9), (8, 13)] {
            let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let mut dst = vec![-1.0f32; rows * cols];
            super::transpose(&src, cols, rows, cols, &mut dst, rows);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(dst[c * rows + r], src[r * cols + c], "{rows}x{cols}");
                }
            }
        }
    }
}
