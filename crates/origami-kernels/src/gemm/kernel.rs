//! The register-blocked micro-kernel: one `MR x NR` tile of `C` from packed slivers of `A`
//! and `B`, where `NR = NV * LANES`.
//!
//! Per depth step it loads `NV` vectors of B, broadcasts each of the `MR` values of A, and
//! issues `MR * NV` fused multiply-adds into accumulators that never leave registers. A tile
//! at the right edge whose columns fit fewer vectors computes only those: the stem's weight
//! gradient has 147 columns, three tiles of 48 and 3 columns, whose tile of 48 would cost a
//! quarter of the product for 2% of its results. An edge tile of a few columns (a quarter of
//! a vector) is a handful of dot products along the depth instead (`tail_dots_*`), where
//! one vector per step would still cost a third of the product on 49 columns.

use super::params::{MR, NV};
use crate::Element;
use crate::element::MAX_LANES;

/// The accumulators of one micro-tile: `MR` rows of `NV` vectors.
pub(crate) type Tile<T> = [[<T as Element>::Simd; NV]; MR];

/// Computes `sum_p a[p] (outer) b[p]` over the first `kc` depth steps, where `a` holds `MR`
/// values per step and `b` holds `NV * LANES` values per step (the packed layouts), for the
/// tile's first `cols` columns (the rest of the tile is zero).
#[inline(always)]
pub(crate) fn micro_tile<T: Element>(kc: usize, a: &[T], b: &[T], cols: usize) -> Tile<T> {
    let nr = NV * T::LANES;
    by_width(cols, a, || b.chunks_exact(nr).take(kc), |b| b)
}

/// [`micro_tile`] with the right operand read in place: depth step `p` is
/// `data[starts[p] + j..][..NR]`.
///
/// # Safety
/// `starts[p] + j + NR <= data.len()` for every `p < kc`. The caller checks it once per
/// depth block: a bounds check per load would add four instructions to a step of 38, and
/// the step's issue slots are as scarce as its multiply-adds.
#[inline(always)]
#[allow(unsafe_code)]
pub(crate) unsafe fn micro_tile_indexed<T: Element>(
    kc: usize,
    a: &[T],
    data: &[T],
    starts: &[usize],
    j: usize,
    cols: usize,
) -> Tile<T> {
    let nr = NV * T::LANES;
    let b_of = |&start: &usize| {
        // SAFETY: the caller guarantees `start + j + nr <= data.len()`.
        unsafe { data.get_unchecked(start + j..start + j + nr) }
    };
    by_width(cols, a, || starts[..kc].iter(), b_of)
}

/// [`micro_tile`] with the left operand read in place: row `i` of the sliver at depth step
/// `p` is `data[rows[i] + p]`.
///
/// # Safety
/// `rows[i] + kc <= data.len()` for every `i`. The caller checks it once per product.
#[inline(always)]
#[allow(unsafe_code)]
pub(crate) unsafe fn micro_tile_rows<T: Element>(
    kc: usize,
    data: &[T],
    rows: &[usize; MR],
    b: &[T],
    cols: usize,
) -> Tile<T> {
    // SAFETY: the caller guarantees every row's `kc` steps are inside `data`.
    let ptrs: [*const T; MR] = rows.map(|r| unsafe { data.as_ptr().add(r) });
    match cols.div_ceil(T::LANES) {
        // SAFETY: as above.
        1 if NV > 1 => unsafe { micro_tile_rows_by::<T, 1>(kc, &ptrs, b) },
        // SAFETY: as above.
        2 if NV > 2 => unsafe { micro_tile_rows_by::<T, 2>(kc, &ptrs, b) },
        // SAFETY: as above.
        _ => unsafe { micro_tile_rows_by::<T, NV>(kc, &ptrs, b) },
    }
}

/// The first `cols` columns of a tile (at most one vector's lanes) as dot products along
/// the depth, for an edge tile of few columns: row `i` of A is read in place at
/// `data[rows[i]..][..kc]`, column `j` of B is `bt[j * kc..][..kc]`. [`micro_tile_rows`]
/// would spend `MR` multiply-adds per depth step on a vector of B holding `cols` columns;
/// this spends `MR * cols` per `LANES` steps.
///
/// # Safety
/// `rows[i] + kc <= data.len()` for every `i`. The caller checks it once per product.
#[inline(always)]
#[allow(unsafe_code)]
pub(crate) unsafe fn tail_dots_rows<T: Element>(
    kc: usize,
    data: &[T],
    rows: &[usize; MR],
    bt: &[T],
    cols: usize,
) -> Tile<T> {
    let whole = kc / T::LANES * T::LANES;
    let mut sums = [[T::ZERO; MAX_LANES]; MR];
    for j in 0..cols {
        let b = &bt[j * kc..][..kc];
        // One chain of sums per row, so that the rows' multiply-adds overlap.
        let mut acc = [T::splat(T::ZERO); MR];
        for p in (0..whole).step_by(T::LANES) {
            let bv = T::load_full(&b[p..]);
            for (acc, &r) in acc.iter_mut().zip(rows) {
                // SAFETY: the caller guarantees `data[r..r + kc]` is in bounds.
                let a = unsafe { data.get_unchecked(r + p..r + p + T::LANES) };
                *acc = T::mul_add(T::load_full(a), bv, *acc);
            }
        }
        if whole < kc {
            // The last steps: `load` fills the lanes past the depth with zeros.
            let bv = T::load(&b[whole..]);
            for (acc, &r) in acc.iter_mut().zip(rows) {
                // SAFETY: as above.
                let a = unsafe { data.get_unchecked(r + whole..r + kc) };
                *acc = T::mul_add(T::load(a), bv, *acc);
            }
        }
        for (row, acc) in sums.iter_mut().zip(acc) {
            row[j] = T::reduce_add(acc);
        }
    }
    tile_of_sums::<T>(&sums)
}

/// The first `cols` columns of a tile (at most one vector's lanes) as dot products along a
/// packed sliver of A (`MR` values per depth step): column `j` of B is `spread[j * len..]
/// [..len]` with `len = a.len()`, each depth step's value repeated `MR` times, so that lane
/// `l` of the sums belongs to row `l % MR` (`LANES` a multiple of `MR`).
#[inline(always)]
pub(crate) fn tail_dots_packed<T: Element>(a: &[T], spread: &[T], cols: usize) -> Tile<T> {
    let len = a.len();
    let whole = len / (4 * T::LANES) * (4 * T::LANES);
    let mut sums = [[T::ZERO; MAX_LANES]; MR];
    for j in 0..cols {
        let b = &spread[j * len..][..len];
        // Four chains of sums, so that the multiply-adds overlap.
        let mut acc = [T::splat(T::ZERO); 4];
        for (a, b) in a[..whole]
            .chunks_exact(4 * T::LANES)
            .zip(b[..whole].chunks_exact(4 * T::LANES))
        {
            for (q, acc) in acc.iter_mut().enumerate() {
                let at = q * T::LANES;
                *acc = T::mul_add(T::load_full(&a[at..]), T::load_full(&b[at..]), *acc);
            }
        }
        // The rest: `load` fills the lanes past the end with zeros.
        for at in (whole..len).step_by(T::LANES) {
            acc[0] = T::mul_add(T::load(&a[at..]), T::load(&b[at..]), acc[0]);
        }
        let mut lanes = [T::ZERO; MAX_LANES];
        T::store(acc[0] + acc[1] + (acc[2] + acc[3]), &mut lanes);
        for (l, &x) in lanes[..T::LANES].iter().enumerate() {
            sums[l % MR][j] += x;
        }
    }
    tile_of_sums::<T>(&sums)
}

/// A tile whose rows' first vectors are `sums` (the edge tiles of the `tail_dots_*`).
#[inline(always)]
fn tile_of_sums<T: Element>(sums: &[[T; MAX_LANES]; MR]) -> Tile<T> {
    let zero = T::splat(T::ZERO);
    core::array::from_fn(|i| {
        core::array::from_fn(|v| if v == 0 { T::load(&sums[i]) } else { zero })
    })
}

/// The loop of [`micro_tile_rows`], `W` vectors of B wide.
///
/// # Safety
/// `ptrs[i].add(p)` is readable for every `p < kc`.
#[inline(always)]
#[allow(unsafe_code)]
unsafe fn micro_tile_rows_by<T: Element, const W: usize>(
    kc: usize,
    ptrs: &[*const T; MR],
    b: &[T],
) -> Tile<T> {
    let nr = NV * T::LANES;
    let mut acc = [[T::splat(T::ZERO); W]; MR];
    for (p, b) in b.chunks_exact(nr).take(kc).enumerate() {
        let bv: [T::Simd; W] = core::array::from_fn(|j| T::load_full(&b[j * T::LANES..]));
        for (row, ptr) in acc.iter_mut().zip(ptrs) {
            // SAFETY: the caller guarantees `p < kc` steps are readable from each row.
            let av = T::splat(unsafe { *ptr.add(p) });
            for (r, &bj) in row.iter_mut().zip(&bv) {
                *r = T::mul_add(av, bj, *r);
            }
        }
    }
    let zero = T::splat(T::ZERO);
    core::array::from_fn(|i| core::array::from_fn(|v| if v < W { acc[i][v] } else { zero }))
}

/// [`micro_tile_by`] as wide as the tile's first `cols` columns need: one or two vectors, or
/// all `NV`.
#[inline(always)]
fn by_width<'b, T: Element, S, I: Iterator<Item = S>>(
    cols: usize,
    a: &[T],
    steps: impl Fn() -> I,
    b_of: impl Fn(S) -> &'b [T] + Copy,
) -> Tile<T> {
    match cols.div_ceil(T::LANES) {
        1 if NV > 1 => micro_tile_by::<T, _, 1>(a, steps(), b_of),
        2 if NV > 2 => micro_tile_by::<T, _, 2>(a, steps(), b_of),
        _ => micro_tile_by::<T, _, NV>(a, steps(), b_of),
    }
}

/// The loop both kernels share: one step per item of `steps`, whose first `W` vectors of B
/// `b_of` finds.
#[inline(always)]
fn micro_tile_by<'b, T: Element, S, const W: usize>(
    a: &[T],
    steps: impl Iterator<Item = S>,
    b_of: impl Fn(S) -> &'b [T],
) -> Tile<T> {
    let mut acc = [[T::splat(T::ZERO); W]; MR];
    for (a, step) in a.chunks_exact(MR).zip(steps) {
        let b = b_of(step);
        let bv: [T::Simd; W] = core::array::from_fn(|j| T::load_full(&b[j * T::LANES..]));
        for (row, &x) in acc.iter_mut().zip(a) {
            let av = T::splat(x);
            for (r, &bj) in row.iter_mut().zip(&bv) {
                *r = T::mul_add(av, bj, *r);
            }
        }
    }
    let zero = T::splat(T::ZERO);
    core::array::from_fn(|i| core::array::from_fn(|v| if v < W { acc[i][v] } else { zero }))
}
