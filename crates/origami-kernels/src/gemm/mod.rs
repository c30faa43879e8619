//! A packed, cache-blocked matrix product `C = A B` (or `C += A B`) on strided views.
//!
//! This is the engine of the `Unrolled` convolution: forward is `W x cols`, the input
//! gradient `W^T x dY`, the weight gradient `dY x cols^T`. Transposes cost nothing because
//! every operand is a strided view and packing reads any strides: `A` is copied into
//! `MR`-row slivers and `B` into `NR`-column slivers (zero-padded at the edges), so the
//! micro-kernel (`kernel.rs`) always runs full tiles and only the write-back to `C` handles
//! edge tiles. A product with few columns reads a row-major `A` in place instead
//! ([`params::IN_PLACE_A_SLIVERS`]): its edge slivers repeat the last row, whose tile rows
//! the write-back drops. Block sizes live in [`params`].
//!
//! The packing buffers come from the caller: [`pack_len`] says how many elements.

pub mod params;

mod kernel;
mod operand;

use crate::element::vector_aligned;
use crate::error::check_scratch;
use crate::{Element, Error};
pub(crate) use kernel::Tile;
use kernel::{micro_tile, micro_tile_indexed, micro_tile_rows, tail_dots_packed, tail_dots_rows};
pub(crate) use operand::{
    IndexB, PackA, PackB, StoreC, copy_over, eight_row_groups, put_columns8, put_lanes, spread_row,
    tile_row, zero_b_tail,
};
use params::{IN_PLACE_A_SLIVERS, KC, KC_INDEXED, MC, MR, NC, NC_INDEXED, NV};

/// A read-only matrix view: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

/// A mutable matrix view: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    data: &'a mut [T],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

/// Checks that a `rows x cols` view with the given strides stays inside `len` elements.
fn check_view(
    name: &'static str,
    len: usize,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
) -> Result<(), Error> {
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let last = (rows - 1)
        .checked_mul(rs)
        .and_then(|r| (cols - 1).checked_mul(cs).and_then(|c| r.checked_add(c)))
        .ok_or(Error::Overflow { name })?;
    if last < len {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            buffer: name,
            expected: last + 1,
            actual: len,
        })
    }
}

impl<'a, T> MatRef<'a, T> {
    /// A strided view; fails when the last element lies past the end of `data`.
    pub fn new(
        data: &'a [T],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Result<Self, Error> {
        check_view("matrix", data.len(), rows, cols, row_stride, col_stride)?;
        Ok(Self::from_parts(data, rows, cols, row_stride, col_stride))
    }

    /// A contiguous row-major `rows x cols` view.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Result<Self, Error> {
        Self::new(data, rows, cols, cols, 1)
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        Self::from_parts(self.data, self.cols, self.rows, self.cs, self.rs)
    }

    /// Rows of the view.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns of the view.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// A view whose bounds the caller has established (out-of-range reads still panic rather
    /// than read out of bounds, but a validated geometry never produces them).
    pub(crate) fn from_parts(
        data: &'a [T],
        rows: usize,
        cols: usize,
        rs: usize,
        cs: usize,
    ) -> Self {
        MatRef {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }

    #[inline(always)]
    pub(crate) fn at(&self, i: usize, j: usize) -> T
    where
        T: Copy,
    {
        self.data[i * self.rs + j * self.cs]
    }
}

impl<'a, T> MatMut<'a, T> {
    /// A strided view; fails when the last element lies past the end of `data`.
    pub fn new(
        data: &'a mut [T],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Result<Self, Error> {
        check_view("matrix", data.len(), rows, cols, row_stride, col_stride)?;
        Ok(Self::from_parts(data, rows, cols, row_stride, col_stride))
    }

    /// A contiguous row-major `rows x cols` view.
    pub fn row_major(data: &'a mut [T], rows: usize, cols: usize) -> Result<Self, Error> {
        Self::new(data, rows, cols, cols, 1)
    }

    /// See [`MatRef::from_parts`].
    pub(crate) fn from_parts(
        data: &'a mut [T],
        rows: usize,
        cols: usize,
        rs: usize,
        cs: usize,
    ) -> Self {
        MatMut {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }
}

/// Rounds `x` up to a multiple of `m`.
const fn round_up(x: usize, m: usize) -> usize {
    x.div_ceil(m) * m
}

/// Elements of packing scratch that [`gemm`] needs for an `m x k` by `k x n` product.
pub fn pack_len<T: Element>(m: usize, n: usize, k: usize) -> usize {
    if m == 0 || n == 0 || k == 0 {
        return 0;
    }
    let kc = k.min(KC);
    let nr = NV * T::LANES;
    let nc = round_up(n.min(NC), nr);
    // A block, B block, and working room for packers: one row of B plus a sliver of slack
    // (for those that build a row before spreading it over the slivers), or eight depth
    // runs (for those that transpose eight columns at a time), whichever is more.
    a_block_len::<T>(m, k)
        + kc * nc
        + spread_tail_len::<T>(k)
        + (nc + nr).max(transpose_work_len::<T>(kc))
        + T::LANES
}

/// Edge tiles of at most this many columns are computed as dot products along the depth
/// ([`kernel::tail_dots_packed`], [`kernel::tail_dots_rows`]) rather than by the micro-kernel
/// at one vector's width, which costs `MR` multiply-adds a depth step whatever the columns,
/// where the dots cost `cols * MR / LANES` (and as many loads): on a 7 x 7 plane's 49
/// columns (48 + 1) the edge tile cost a third of the product for 2% of its columns. Eight
/// of 16 lanes (a batch of eight 7 x 7 planes: 392 = 8 x 48 + 8) measured 1-2% slower by
/// dots than by the micro-kernel; three of 8 (the stem's weight gradient with AVX2: 147 =
/// 9 x 16 + 3) 2-4% faster over the whole pass (Zen 3).
const fn max_dot_cols<T: Element>() -> usize {
    T::LANES * 3 / 8
}

/// Elements of the spread edge columns of [`kernel::tail_dots_packed`] (each of up to
/// [`max_dot_cols`] columns, each depth step's value `MR` times), which also
/// hold those of [`kernel::tail_dots_rows`] (each column's values once).
fn spread_tail_len<T: Element>(k: usize) -> usize {
    max_dot_cols::<T>() * MR * k.min(KC)
}

/// Elements of the packed A block, whole vectors of them, so that the B block after it
/// starts on a vector boundary as the buffer does.
fn a_block_len<T: Element>(m: usize, k: usize) -> usize {
    round_up(round_up(m.min(MC), MR) * k.min(KC), T::LANES)
}

/// Working room of a packer that reads eight columns of B along the depth (`kc` steps, a
/// vector of slack each for copies that spill) before transposing them into the slivers.
pub(crate) const fn transpose_work_len<T: Element>(kc: usize) -> usize {
    8 * transpose_row_stride::<T>(kc)
}

/// Distance between the eight depth runs in [`transpose_work_len`]'s room.
pub(crate) const fn transpose_row_stride<T: Element>(kc: usize) -> usize {
    round_up(kc, 8) + T::LANES
}

/// `C = A B`, or `C += A B` when `accumulate` is set.
///
/// `pack` is working memory of at least [`pack_len`]`(m, n, k)` elements; its contents on
/// entry do not matter. Fails when the shapes do not agree or `pack` is too short.
pub fn gemm<T: Element>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: MatMut<'_, T>,
    accumulate: bool,
    pack: &mut [T],
) -> Result<(), Error> {
    let mismatch = |buffer, expected, actual| Error::LengthMismatch {
        buffer,
        expected,
        actual,
    };
    if b.rows != a.cols {
        return Err(mismatch("rows of B", a.cols, b.rows));
    }
    if c.rows != a.rows {
        return Err(mismatch("rows of C", a.rows, c.rows));
    }
    if c.cols != b.cols {
        return Err(mismatch("columns of C", b.cols, c.cols));
    }
    check_scratch(pack_len::<T>(a.rows, b.cols, a.cols), pack.len())?;
    gemm_unchecked(a, b, c, accumulate, pack);
    Ok(())
}

/// [`gemm`] for callers that have established the shapes and the pack length.
pub(crate) fn gemm_unchecked<T: Element>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    mut c: MatMut<'_, T>,
    accumulate: bool,
    pack: &mut [T],
) {
    let (m, n, k) = (a.rows, b.cols, a.cols);
    gemm_with(m, n, k, &a, &b, &mut c, accumulate, pack);
}

/// The blocked product over any operands that can pack themselves and any destination that
/// can take a tile: `C (m x n) = A (m x k) B (k x n)`, added to C when `accumulate` is set.
///
/// `pack` holds at least [`pack_len`]`(m, n, k)` elements.
#[allow(clippy::too_many_arguments, unsafe_code)]
pub(crate) fn gemm_with<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    a: &impl PackA<T>,
    b: &impl PackB<T>,
    c: &mut impl StoreC<T>,
    accumulate: bool,
    pack: &mut [T],
) {
    if m == 0 || n == 0 {
        return;
    }
    let nr = NV * T::LANES;
    if k == 0 {
        if !accumulate {
            let zero = [[T::splat(T::ZERO); NV]; MR];
            for i in (0..m).step_by(MR) {
                for j in (0..n).step_by(nr) {
                    c.store_tile(&zero, i, j, MR.min(m - i), nr.min(n - j), false);
                }
            }
        }
        return;
    }
    let in_place = a
        .rows_in_place()
        .filter(|_| n.min(NC).div_ceil(nr) <= IN_PLACE_A_SLIVERS);
    if let Some((data, rs)) = in_place {
        assert!(
            (m - 1) * rs + k <= data.len(),
            "left operand shorter than its rows"
        );
    }
    // Packed slivers of B are read a vector at a time: from a vector boundary none of those
    // loads straddles two cache lines (the A block before them is whole vectors long).
    let pack = vector_aligned(pack);
    let (pa, rest) = pack.split_at_mut(a_block_len::<T>(m, k));
    let (pb, rest) = rest.split_at_mut(k.min(KC) * round_up(n.min(NC), nr));
    let (spread, work) = rest.split_at_mut(spread_tail_len::<T>(k));
    let tail_by_dots = b.tail_by_dots();
    for j0 in (0..n).step_by(NC) {
        let nc = NC.min(n - j0);
        for p0 in (0..k).step_by(KC) {
            let kc = KC.min(k - p0);
            let pb = &mut pb[..round_up(nc, nr) * kc];
            b.pack_b(p0, kc, j0, nc, pb, work);
            // Later depth blocks add to what the first one wrote.
            let add = accumulate || p0 > 0;
            for i0 in (0..m).step_by(MC) {
                let block = Block {
                    i0,
                    mc: MC.min(m - i0),
                    j0,
                    nc,
                    p0,
                    kc,
                    add,
                    tail_by_dots,
                };
                match in_place {
                    // SAFETY: checked above: every row's `k` steps are in `data`.
                    Some((data, rs)) => unsafe { block_in_place(&block, data, rs, pb, spread, c) },
                    None => {
                        let pa = &mut pa[..round_up(block.mc, MR) * kc];
                        a.pack_a(i0, block.mc, p0, kc, pa);
                        block_packed(&block, pa, pb, spread, c);
                    }
                }
            }
        }
    }
}

/// One block of [`gemm_with`]: rows `i0..i0 + mc` of C, columns `j0..j0 + nc`, depth
/// `p0..p0 + kc`, added to C where `add`; `tail_by_dots` from the right operand.
struct Block {
    i0: usize,
    mc: usize,
    j0: usize,
    nc: usize,
    p0: usize,
    kc: usize,
    add: bool,
    tail_by_dots: bool,
}

impl Block {
    /// Whether an edge tile of `cols` columns is computed as dot products along the depth
    /// ([`max_dot_cols`]).
    fn dots<T: Element>(&self, cols: usize) -> bool {
        self.tail_by_dots && cols <= max_dot_cols::<T>()
    }
}

/// Lays the first `cols` columns of a packed B sliver (`kc` steps) out along the depth in
/// `spread`, each step's value `repeat` times: column after column, `repeat * kc` each.
#[inline(always)]
fn spread_columns<T: Element>(
    b_sliver: &[T],
    kc: usize,
    cols: usize,
    repeat: usize,
    spread: &mut [T],
) {
    let nr = NV * T::LANES;
    for (jj, col) in spread.chunks_exact_mut(repeat * kc).take(cols).enumerate() {
        for (to, step) in col.chunks_exact_mut(repeat).zip(b_sliver.chunks_exact(nr)) {
            to.fill(step[jj]);
        }
    }
}

/// A block with A read in place (`data`, rows `rs` apart) and B packed (`pb`). An edge tile
/// of few columns goes by dot products, from its columns laid out along the depth in
/// `spread`.
///
/// # Safety
/// Rows `..block.i0 + block.mc` of A hold `block.p0 + block.kc` steps inside `data`.
#[inline(always)]
#[allow(unsafe_code)]
unsafe fn block_in_place<T: Element>(
    block: &Block,
    data: &[T],
    rs: usize,
    pb: &[T],
    spread: &mut [T],
    c: &mut impl StoreC<T>,
) {
    let (nr, kc) = (NV * T::LANES, block.kc);
    for (jr, b_sliver) in pb.chunks_exact(nr * kc).enumerate() {
        let j = jr * nr;
        let cols = nr.min(block.nc - j);
        let dots = block.dots::<T>(cols);
        if dots {
            spread_columns(b_sliver, kc, cols, 1, spread);
        }
        for i in (0..block.mc).step_by(MR) {
            // A partial sliver repeats its last row; the write-back drops those tile rows.
            let last = MR.min(block.mc - i) - 1;
            let rows: [usize; MR] =
                core::array::from_fn(|r| (block.i0 + i + r.min(last)) * rs + block.p0);
            // SAFETY: the caller guarantees every row's steps are in `data`.
            let tile = unsafe {
                if dots {
                    tail_dots_rows::<T>(kc, data, &rows, spread, cols)
                } else {
                    micro_tile_rows::<T>(kc, data, &rows, b_sliver, cols)
                }
            };
            let (rows, j) = (last + 1, block.j0 + j);
            c.store_tile(&tile, block.i0 + i, j, rows, cols, block.add);
        }
    }
}

/// A block with A and B packed (`pa`, `pb`). An edge tile of few columns goes by dot
/// products along the packed slivers, each of its columns spread to match them in `spread`.
#[inline(always)]
fn block_packed<T: Element>(
    block: &Block,
    pa: &[T],
    pb: &[T],
    spread: &mut [T],
    c: &mut impl StoreC<T>,
) {
    let (nr, kc) = (NV * T::LANES, block.kc);
    for (jr, b_sliver) in pb.chunks_exact(nr * kc).enumerate() {
        let j = jr * nr;
        let cols = nr.min(block.nc - j);
        let dots = block.dots::<T>(cols) && T::LANES.is_multiple_of(MR);
        if dots {
            spread_columns(b_sliver, kc, cols, MR, spread);
        }
        for (ir, a_sliver) in pa.chunks_exact(MR * kc).enumerate() {
            let i = ir * MR;
            let tile = if dots {
                tail_dots_packed::<T>(a_sliver, spread, cols)
            } else {
                micro_tile::<T>(kc, a_sliver, b_sliver, cols)
            };
            let (rows, j) = (MR.min(block.mc - i), block.j0 + j);
            c.store_tile(&tile, block.i0 + i, j, rows, cols, block.add);
        }
    }
}

/// Elements of a left operand packed whole ([`Prepacked::pack`]): `m` rounded up to whole slivers,
/// times the depth. Saturates where it overflows, like every scratch size.
pub(crate) fn prepacked_len(m: usize, k: usize) -> usize {
    round_up(m, MR).saturating_mul(k)
}

/// A left operand packed whole, in the order [`gemm_indexed`] reads its blocks: depth block
/// after depth block (`KC_INDEXED` deep), each `round_up(m, MR)` rows of `MR`-row slivers.
/// A batch packs its weights once this way instead of once per image.
pub(crate) struct Prepacked<'a, T> {
    data: &'a [T],
    m: usize,
}

impl<'a, T: Element> Prepacked<'a, T> {
    /// Packs `a` (`m x k`) into `out[..prepacked_len(m, k)]`.
    pub fn pack(m: usize, k: usize, a: &impl PackA<T>, out: &'a mut [T]) -> Self {
        let rows = round_up(m, MR);
        for p0 in (0..k).step_by(KC_INDEXED) {
            let kc = KC_INDEXED.min(k - p0);
            for i0 in (0..m).step_by(MC) {
                let mc = MC.min(m - i0);
                let start = rows * p0 + i0 * kc;
                a.pack_a(
                    i0,
                    mc,
                    p0,
                    kc,
                    &mut out[start..start + round_up(mc, MR) * kc],
                );
            }
        }
        Prepacked {
            data: &out[..rows * k],
            m,
        }
    }

    /// A view of `data`, packed by [`Prepacked::pack`] for an `m x k` operand (which may
    /// have run elsewhere, as on another thread).
    pub fn packed(m: usize, k: usize, data: &'a [T]) -> Self {
        Prepacked {
            data: &data[..prepacked_len(m, k)],
            m,
        }
    }

    /// The packed block of rows `i0..i0 + mc`, depth `p0..p0 + kc`.
    fn block(&self, i0: usize, mc: usize, p0: usize, kc: usize) -> &[T] {
        let start = round_up(self.m, MR) * p0 + i0 * kc;
        &self.data[start..start + round_up(mc, MR) * kc]
    }
}

/// The blocked product with the left operand packed whole and the right operand read in place
/// ([`IndexB`]): nothing is packed. Without a B block to keep in cache, the loop runs over
/// all `n` columns per depth block.
#[allow(clippy::too_many_arguments, unsafe_code)]
pub(crate) fn gemm_indexed<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    a: &Prepacked<'_, T>,
    b: &impl IndexB<T>,
    c: &mut impl StoreC<T>,
    accumulate: bool,
) {
    if m == 0 || n == 0 || k == 0 {
        // Every caller has a non-empty depth (the taps of a kernel).
        return;
    }
    let nr = NV * T::LANES;
    let data = b.data();
    let mut starts = [0usize; KC_INDEXED];
    for j0 in (0..n).step_by(NC_INDEXED) {
        let jn = n.min(j0 + NC_INDEXED);
        for p0 in (0..k).step_by(KC_INDEXED) {
            let kc = KC_INDEXED.min(k - p0);
            b.row_starts(p0, &mut starts[..kc]);
            // The one bounds check of the block's reads (see `micro_tile_indexed`).
            let last = starts[..kc]
                .iter()
                .max()
                .map_or(0, |&s| s + round_up(n, nr));
            assert!(last <= data.len(), "right operand shorter than its rows");
            let add = accumulate || p0 > 0;
            for i0 in (0..m).step_by(MC) {
                let mc = MC.min(m - i0);
                let pa = a.block(i0, mc, p0, kc);
                for j in (j0..jn).step_by(nr) {
                    let cols = nr.min(n - j);
                    for (ir, a_sliver) in pa.chunks_exact(MR * kc).enumerate() {
                        let i = ir * MR;
                        // SAFETY: `starts[p] + j + nr <= last <= data.len()` for every `p`, as
                        // `j + nr <= round_up(n, nr)`.
                        let tile = unsafe {
                            micro_tile_indexed::<T>(kc, a_sliver, data, &starts, j, cols)
                        };
                        c.store_tile(&tile, i0 + i, j, MR.min(mc - i), cols, add);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &MatRef<'_, f64>, b: &MatRef<'_, f64>) -> Vec<f64> {
        let mut out = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                out[i * b.cols + j] = (0..a.cols).map(|p| a.at(i, p) * b.at(p, j)).sum();
            }
        }
        out
    }

    fn check<T: Element>(m: usize, n: usize, k: usize, ta: bool, tb: bool, accumulate: bool) {
        let fill = |len: usize, seed: usize| -> Vec<f64> {
            (0..len)
                .map(|i| (((i * 7919 + seed * 104729) % 2003) as f64 - 1001.0) / 1001.0)
                .collect()
        };
        let a64 = fill(m * k, 1);
        let b64 = fill(k * n, 2);
        let c64 = fill(m * n, 3);
        let a_view = |d| {
            if ta {
                MatRef::new(d, k, m, m, 1).unwrap().t()
            } else {
                MatRef::row_major(d, m, k).unwrap()
            }
        };
        let b_view = |d| {
            if tb {
                MatRef::new(d, n, k, k, 1).unwrap().t()
            } else {
                MatRef::row_major(d, k, n).unwrap()
            }
        };
        let mut expected = naive(&a_view(&a64[..]), &b_view(&b64[..]));
        if accumulate {
            for (e, c) in expected.iter_mut().zip(&c64) {
                *e += c;
            }
        }
        let a: Vec<T> = a64.iter().map(|&x| T::from_f64(x)).collect();
        let b: Vec<T> = b64.iter().map(|&x| T::from_f64(x)).collect();
        let mut c: Vec<T> = c64.iter().map(|&x| T::from_f64(x)).collect();
        let mut pack = vec![T::NAN; pack_len::<T>(m, n, k)];
        let a_t = if ta {
            MatRef::new(&a[..], k, m, m, 1).unwrap().t()
        } else {
            MatRef::row_major(&a[..], m, k).unwrap()
        };
        let b_t = if tb {
            MatRef::new(&b[..], n, k, k, 1).unwrap().t()
        } else {
            MatRef::row_major(&b[..], k, n).unwrap()
        };
        gemm(
            a_t,
            b_t,
            MatMut::row_major(&mut c, m, n).unwrap(),
            accumulate,
            &mut pack,
        )
        .unwrap();
        let tol = if T::NAME == "f32" { 1e-5 } else { 1e-12 } * (k as f64 + 1.0);
        for (idx, (&got, &want)) in c.iter().zip(&expected).enumerate() {
            assert!(
                (got.to_f64() - want).abs() <= tol,
                "{} m={m} n={n} k={k} ta={ta} tb={tb} at {idx}: {} vs {want}",
                T::NAME,
                got.to_f64()
            );
        }
    }

    #[test]
    fn matches_naive_product_on_odd_shapes() {
        // Miri interprets every instruction: there, only shapes that still cover a full
        // micro-tile, an edge tile and both transposes.
        let shapes: &[(usize, usize, usize)] = if cfg!(miri) {
            &[(1, 1, 1), (7, 17, 3)]
        } else {
            &[
                (1, 1, 1),
                (5, 3, 2),
                (7, 33, 9),
                (6, 32, 256),
                (13, 47, 300),
                (121, 17, 5),
                // Edge tiles of one and two columns past whole slivers, computed as dot
                // products; depths past one block and not a whole number of vectors.
                (13, 49, KC + 44),
                (9, 50, 131),
                (3, 1030, 4),
                // Up to `IN_PLACE_A_SLIVERS` slivers of columns (the shapes above, but
                // 1030 columns), an untransposed A is read in place; a column past them it
                // is packed.
                (9, IN_PLACE_A_SLIVERS * NV * 16 + 1, 7),
                // More rows than one packed A block, more columns than one packed B block.
                (MC + 7, 9, 3),
                (2, NC + 45, 5),
            ]
        };
        for &(m, n, k) in shapes {
            for ta in [false, true] {
                for tb in [false, true] {
                    for acc in [false, true] {
                        check::<f32>(m, n, k, ta, tb, acc);
                        check::<f64>(m, n, k, ta, tb, acc);
                    }
                }
            }
        }
    }

    /// A right operand read in place: row `p` starts at `starts[p]` of `data`.
    struct Rows<'a> {
        data: &'a [f64],
        starts: &'a [usize],
    }

    impl IndexB<f64> for Rows<'_> {
        fn data(&self) -> &[f64] {
            self.data
        }

        fn row_starts(&self, p0: usize, starts: &mut [usize]) {
            let n = starts.len();
            starts.copy_from_slice(&self.starts[p0..p0 + n]);
        }
    }

    #[test]
    fn indexed_product_matches_naive_product_across_blocks() {
        // More rows than a packed block of A, more columns than one pass, more depth than
        // one block (small shapes under Miri).
        let (m, n, k) = if cfg!(miri) {
            (13, 40, 5)
        } else {
            (MC + 7, NC_INDEXED + 45, KC_INDEXED + 30)
        };
        let a64: Vec<f64> = (0..m * k)
            .map(|i| ((i * 7919) % 2003) as f64 / 1001.0 - 1.0)
            .collect();
        let nr = NV * f64::LANES;
        // Rows overlap and come in no order, as a convolution's taps do.
        let starts: Vec<usize> = (0..k).map(|p| (p * 37) % (3 * n)).collect();
        let len = 4 * n + nr;
        let data: Vec<f64> = (0..len)
            .map(|i| ((i * 104729) % 1999) as f64 / 999.0 - 1.0)
            .collect();
        let a = MatRef::row_major(&a64[..], m, k).unwrap();
        let mut packed = vec![f64::NAN; prepacked_len(m, k)];
        let pa = Prepacked::pack(m, k, &a, &mut packed);
        let mut c = vec![f64::NAN; m * n];
        let b = Rows {
            data: &data,
            starts: &starts,
        };
        gemm_indexed(
            m,
            n,
            k,
            &pa,
            &b,
            &mut MatMut::row_major(&mut c, m, n).unwrap(),
            false,
        );
        for i in 0..m {
            for j in 0..n {
                let want: f64 = (0..k).map(|p| a.at(i, p) * data[starts[p] + j]).sum();
                let got = c[i * n + j];
                assert!(
                    (got - want).abs() <= 1e-12 * k as f64,
                    "({i}, {j}): {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn empty_depth_clears_or_keeps_c() {
        let a: [f32; 0] = [];
        let mut c = [5.0f32; 6];
        let av = MatRef::new(&a[..], 2, 0, 0, 1).unwrap();
        let bv = MatRef::new(&a[..], 0, 3, 3, 1).unwrap();
        gemm(
            av,
            bv,
            MatMut::row_major(&mut c, 2, 3).unwrap(),
            true,
            &mut [],
        )
        .unwrap();
        assert_eq!(c, [5.0; 6]);
        gemm(
            av,
            bv,
            MatMut::row_major(&mut c, 2, 3).unwrap(),
            false,
            &mut [],
        )
        .unwrap();
        assert_eq!(c, [0.0; 6]);
    }

    #[test]
    fn rejects_mismatched_shapes_and_short_pack() {
        let d = [1.0f32; 12];
        let mut c = [0.0f32; 12];
        let a = MatRef::row_major(&d[..], 3, 4).unwrap();
        let b = MatRef::row_major(&d[..], 3, 4).unwrap();
        let r = gemm(
            a,
            b,
            MatMut::row_major(&mut c, 3, 4).unwrap(),
            false,
            &mut [],
        );
        assert!(matches!(
            r,
            Err(Error::LengthMismatch {
                buffer: "rows of B",
                ..
            })
        ));
        let b = MatRef::row_major(&d[..], 4, 3).unwrap();
        let r = gemm(
            a,
            b,
            MatMut::row_major(&mut c, 3, 3).unwrap(),
            false,
            &mut [],
        );
        assert!(matches!(r, Err(Error::ScratchTooSmall { .. })));
        assert!(MatRef::row_major(&d[..], 5, 3).is_err());
    }
}
