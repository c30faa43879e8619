//! The register-blocked micro-kernel: one `MR x NR` tile of `C` from packed slivers of `A`
//! and `B`, where `NR = NV * LANES`.
//!
//! Per depth step it loads `NV` vectors of B, broadcasts each of the `MR` values of A, and
//! issues `MR * NV` fused multiply-adds into accumulators that never leave registers.

use super::params::{MR, NV};
use crate::Element;

/// The accumulators of one micro-tile: `MR` rows of `NV` vectors.
pub(crate) type Tile<T> = [[<T as Element>::Simd; NV]; MR];

/// Computes `sum_p a[p] (outer) b[p]` over the first `kc` depth steps, where `a` holds `MR`
/// values per step and `b` holds `NV * LANES` values per step (the packed layouts).
#[inline(always)]
pub(crate) fn micro_tile<T: Element>(kc: usize, a: &[T], b: &[T]) -> Tile<T> {
    let nr = NV * T::LANES;
    micro_tile_by(a, b.chunks_exact(nr).take(kc), |b| b)
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
) -> Tile<T> {
    let nr = NV * T::LANES;
    micro_tile_by(a, starts[..kc].iter(), |&start| {
        // SAFETY: the caller guarantees `start + j + nr <= data.len()`.
        unsafe { data.get_unchecked(start + j..start + j + nr) }
    })
}

/// The loop both kernels share: one step per item of `steps`, whose `NV` vectors of B
/// `b_of` finds.
#[inline(always)]
fn micro_tile_by<'b, T: Element, S>(
    a: &[T],
    steps: impl Iterator<Item = S>,
    b_of: impl Fn(S) -> &'b [T],
) -> Tile<T> {
    let mut acc = [[T::splat(T::ZERO); NV]; MR];
    for (a, step) in a.chunks_exact(MR).zip(steps) {
        let b = b_of(step);
        let bv: [T::Simd; NV] = core::array::from_fn(|j| T::load_full(&b[j * T::LANES..]));
        for (row, &x) in acc.iter_mut().zip(a) {
            let av = T::splat(x);
            for (r, &bj) in row.iter_mut().zip(&bv) {
                *r = T::mul_add(av, bj, *r);
            }
        }
    }
    acc
}
