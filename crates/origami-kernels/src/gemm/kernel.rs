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
    let mut acc = [[T::splat(T::ZERO); NV]; MR];
    for (a, b) in a.chunks_exact(MR).zip(b.chunks_exact(nr)).take(kc) {
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
