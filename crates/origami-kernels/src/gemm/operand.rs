//! The product's operands as the blocked loop sees them: a left operand that packs `MR`-row
//! slivers, a right operand that packs `NR`-column slivers (`NR = NV * LANES`), and a
//! destination that takes finished micro-tiles.
//!
//! Strided matrix views implement all three. The convolution implements them over its
//! tensors directly (unrolling while it packs, folding col2im into the write-back), so the
//! unrolled matrix is never stored whole: each packed block is built from the input where it
//! is needed and stays in cache.
//!
//! Packed layouts, for a block of depth `kc`:
//! - A: sliver `s` holds, for each depth step `p`, the `MR` values of rows `s * MR ..`
//!   (zero past the last row), at `(s * kc + p) * MR`;
//! - B: sliver `s` holds, for each depth step `p`, the `NR` values of columns `s * NR ..`
//!   (zero past the last column), at `(s * kc + p) * NR`.

use super::kernel::Tile;
use super::params::{MR, NV};
use super::{MatMut, MatRef};
use crate::Element;
use crate::element::{MAX_LANES, transpose};

/// A left operand: packs rows `i0..i0 + mc`, depth `p0..p0 + kc` into `MR`-row slivers
/// (`out` holds exactly `mc.div_ceil(MR) * MR * kc` elements).
pub(crate) trait PackA<T: Element> {
    fn pack_a(&self, i0: usize, mc: usize, p0: usize, kc: usize, out: &mut [T]);

    /// The operand's data and row stride where its rows are contiguous along the depth, so
    /// that the micro-kernel can read it in place: element `(i, p)` at `data[i * rs + p]`.
    fn rows_in_place(&self) -> Option<(&[T], usize)> {
        None
    }
}

/// A right operand: packs depth `p0..p0 + kc`, columns `j0..j0 + nc` into `NR`-column
/// slivers (`out` holds exactly `nc.div_ceil(NR) * NR * kc` elements). `work` is scratch of
/// at least `nc.div_ceil(NR) * NR + NR` elements.
pub(crate) trait PackB<T: Element> {
    fn pack_b(&self, p0: usize, kc: usize, j0: usize, nc: usize, out: &mut [T], work: &mut [T]);

    /// Whether an edge tile of few columns may be computed as dot products along the depth,
    /// which sum in another order than the micro-kernel: not where which columns make the
    /// edge tile depends on how threads split the work (results must not).
    fn tail_by_dots(&self) -> bool {
        true
    }
}

/// A right operand read in place rather than packed: depth step `p`, columns `j..j + NR`
/// are `data()[start_p + j..][..NR]`, where `row_starts` gives `start_p`. `data()` must hold
/// `NR` elements past the last column of every row (their values do not matter).
pub(crate) trait IndexB<T: Element> {
    fn data(&self) -> &[T];
    /// The starts of depth steps `p0..p0 + starts.len()`.
    fn row_starts(&self, p0: usize, starts: &mut [usize]);
}

/// A destination: writes (or, with `add`, adds) the top-left `rows x cols` of a micro-tile
/// at row `i`, column `j`.
pub(crate) trait StoreC<T: Element> {
    fn store_tile(
        &mut self,
        tile: &Tile<T>,
        i: usize,
        j: usize,
        rows: usize,
        cols: usize,
        add: bool,
    );
}

/// Visits the packed-B destination of columns `j..j + len` at depth step `p` piece by piece
/// (a piece never crosses a sliver): `f` receives the destination and the piece's offset
/// within the run.
#[inline(always)]
pub(crate) fn put_pieces<T: Element>(
    out: &mut [T],
    kc: usize,
    p: usize,
    j: usize,
    len: usize,
    mut f: impl FnMut(&mut [T], usize),
) {
    let nr = NV * T::LANES;
    let mut done = 0;
    while done < len {
        let col = j + done;
        let (s, lane) = (col / nr, col % nr);
        let piece = (len - done).min(nr - lane);
        let start = (s * kc + p) * nr + lane;
        f(&mut out[start..start + piece], done);
        done += piece;
    }
}

/// Writes `src` into depth step `p` of a packed B block, starting at block column `j`.
#[inline]
pub(crate) fn put_run<T: Element>(out: &mut [T], kc: usize, p: usize, j: usize, src: &[T]) {
    put_pieces(out, kc, p, j, src.len(), |dst, o| {
        copy_short(dst, &src[o..o + dst.len()]);
    });
}

/// `dst.copy_from_slice(src)` for the short copies of packing: whole vectors, then single
/// elements, where `copy_from_slice` of a length unknown at compile time calls `memcpy`,
/// whose call costs as much as the copy.
#[inline(always)]
pub(crate) fn copy_short<T: Element>(dst: &mut [T], src: &[T]) {
    let mut d = dst.chunks_exact_mut(T::LANES);
    let mut s = src.chunks_exact(T::LANES);
    for (d, s) in (&mut d).zip(&mut s) {
        T::store(T::load(s), d);
    }
    for (d, &s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = s;
    }
}

/// Spreads a whole row of a B block, `row[..nc]`, over depth step `p` of the slivers, one
/// full-width copy per sliver: `row` must hold zeros from `nc` up to the next multiple of
/// `NR`, which become the last sliver's padding.
#[inline]
pub(crate) fn spread_row<T: Element>(out: &mut [T], kc: usize, p: usize, row: &[T]) {
    let nr = NV * T::LANES;
    for (s, src) in row.chunks_exact(nr).enumerate() {
        let dst = &mut out[(s * kc + p) * nr..][..nr];
        for (d, v) in dst
            .chunks_exact_mut(T::LANES)
            .zip(src.chunks_exact(T::LANES))
        {
            T::store(T::load(v), d);
        }
    }
}

/// Copies `src[start..start + len]` to `dst[at..at + len]` in whole vectors, writing up to a
/// vector past the end where both slices have room: for a buffer filled front to back, whose
/// later writes cover what an earlier one spilled. Copies exactly where there is no room.
#[inline(always)]
pub(crate) fn copy_over<T: Element>(dst: &mut [T], at: usize, src: &[T], start: usize, len: usize) {
    let vectors = len.div_ceil(T::LANES);
    let room = vectors * T::LANES;
    if at + room <= dst.len() && start + room <= src.len() {
        let d = dst[at..at + room].chunks_exact_mut(T::LANES);
        for (d, s) in d.zip(src[start..start + room].chunks_exact(T::LANES)) {
            T::store(T::load(s), d);
        }
    } else {
        dst[at..at + len].copy_from_slice(&src[start..start + len]);
    }
}

/// Writes columns `j..j + 8` of a packed B block (`j` a multiple of 8, so they share a
/// sliver) from eight depth runs: column `j + i` at depth step `p` is
/// `rows[i * row_stride + p]`. Packers whose columns are contiguous along the depth use it
/// to turn them into the slivers' rows eight at a time.
#[inline(always)]
pub(crate) fn put_columns8<T: Element>(
    out: &mut [T],
    kc: usize,
    j: usize,
    rows: &[T],
    row_stride: usize,
) {
    let nr = NV * T::LANES;
    let (s, lane) = (j / nr, j % nr);
    let sliver = &mut out[s * nr * kc..][..nr * kc];
    transpose(rows, row_stride, 8, kc, &mut sliver[lane..], nr);
}

/// The first of each group of eight among `rows` (at least 8) rows: every eighth, then the
/// last eight, which overlap the group before when `rows` is not a multiple of 8 (packers
/// then write those rows' values twice, the same both times).
pub(crate) fn eight_row_groups(rows: usize) -> impl Iterator<Item = usize> {
    (0..rows - 8).step_by(8).chain([rows - 8])
}

// Eight columns never straddle two slivers: a sliver is `NV` vectors, of 8 or 16 lanes
// where `NV` is odd (AVX-512), else of 4, 8 or 16.
const _: () = assert!((NV * if NV % 2 == 1 { 8 } else { 4 }).is_multiple_of(8));

/// Zeroes the padding columns (`nc..`) of the last sliver of a packed B block.
pub(crate) fn zero_b_tail<T: Element>(out: &mut [T], kc: usize, nc: usize) {
    let nr = NV * T::LANES;
    let tail = nc % nr;
    if tail != 0 {
        let last = out.len() / (nr * kc) - 1;
        for step in out[last * nr * kc..].chunks_exact_mut(nr) {
            step[tail..].fill(T::ZERO);
        }
    }
}

impl<T: Element> PackA<T> for MatRef<'_, T> {
    fn rows_in_place(&self) -> Option<(&[T], usize)> {
        (self.cs == 1).then_some((self.data, self.rs))
    }

    fn pack_a(&self, i0: usize, mc: usize, p0: usize, kc: usize, out: &mut [T]) {
        for (s, sliver) in out.chunks_exact_mut(MR * kc).enumerate() {
            let r0 = s * MR;
            let rows = MR.min(mc - r0);
            if rows < MR {
                sliver.fill(T::ZERO);
            }
            // Read along whichever axis is contiguous.
            if self.cs == 1 && rows >= 8 {
                // Eight rows at a time, transposed.
                let whole = kc / 8 * 8;
                for ii in eight_row_groups(rows) {
                    let first = (i0 + r0 + ii) * self.rs + p0;
                    let src = &self.data[first..];
                    for p in (0..whole).step_by(8) {
                        T::transpose8(&src[p..], self.rs, &mut sliver[p * MR + ii..], MR);
                    }
                }
                for p in whole..kc {
                    for ii in 0..rows {
                        sliver[p * MR + ii] = self.at(i0 + r0 + ii, p0 + p);
                    }
                }
            } else if self.rs == 1 {
                for (p, step) in sliver.chunks_exact_mut(MR).enumerate() {
                    for (ii, v) in step[..rows].iter_mut().enumerate() {
                        *v = self.at(i0 + r0 + ii, p0 + p);
                    }
                }
            } else {
                for ii in 0..rows {
                    for (p, step) in sliver.chunks_exact_mut(MR).enumerate() {
                        step[ii] = self.at(i0 + r0 + ii, p0 + p);
                    }
                }
            }
        }
    }
}

impl<T: Element> PackB<T> for MatRef<'_, T> {
    fn pack_b(&self, p0: usize, kc: usize, j0: usize, nc: usize, out: &mut [T], _: &mut [T]) {
        let nr = NV * T::LANES;
        zero_b_tail(out, kc, nc);
        if self.cs == 1 {
            // Row by row: walking a sliver down the depth instead would touch a new row,
            // often a new page, per `NR` elements.
            for p in 0..kc {
                let start = (p0 + p) * self.rs + j0;
                put_run(out, kc, p, 0, &self.data[start..start + nc]);
            }
        } else if self.rs == 1 {
            // Columns are contiguous along the depth: eight at a time, transposed; the last
            // few one element at a time.
            let whole = nc / 8 * 8;
            for j in (0..whole).step_by(8) {
                let first = (j0 + j) * self.cs + p0;
                put_columns8(out, kc, j, &self.data[first..], self.cs);
            }
            for j in whole..nc {
                let (s, lane) = (j / nr, j % nr);
                for p in 0..kc {
                    out[(s * kc + p) * nr + lane] = self.at(p0 + p, j0 + j);
                }
            }
        } else {
            for (s, sliver) in out.chunks_exact_mut(nr * kc).enumerate() {
                let c0 = s * nr;
                let width = nr.min(nc - c0);
                for (p, step) in sliver.chunks_exact_mut(nr).enumerate() {
                    for (jj, v) in step[..width].iter_mut().enumerate() {
                        *v = self.at(p0 + p, j0 + c0 + jj);
                    }
                }
            }
        }
    }
}

/// A row-major matrix read in place: depth step `p` is row `p`.
impl<T: Element> IndexB<T> for MatRef<'_, T> {
    fn data(&self) -> &[T] {
        debug_assert_eq!(self.cs, 1, "rows read in place are contiguous");
        self.data
    }

    fn row_starts(&self, p0: usize, starts: &mut [usize]) {
        for (i, start) in starts.iter_mut().enumerate() {
            *start = (p0 + i) * self.rs;
        }
    }
}

impl<T: Element> StoreC<T> for MatMut<'_, T> {
    #[inline(always)]
    fn store_tile(
        &mut self,
        tile: &Tile<T>,
        i: usize,
        j: usize,
        rows: usize,
        cols: usize,
        add: bool,
    ) {
        let nr = NV * T::LANES;
        if self.cs == 1 && cols == nr {
            for (r, row) in tile.iter().enumerate().take(rows) {
                let start = (i + r) * self.rs + j;
                let dst = &mut self.data[start..start + nr];
                for (v, chunk) in row.iter().zip(dst.chunks_exact_mut(T::LANES)) {
                    let out = if add { *v + T::load(chunk) } else { *v };
                    T::store(out, chunk);
                }
            }
            return;
        }
        let mut lanes = [T::ZERO; NV * MAX_LANES];
        for (r, row) in tile.iter().enumerate().take(rows) {
            tile_row(row, &mut lanes);
            for (col, &x) in lanes[..cols].iter().enumerate() {
                let dst = &mut self.data[(i + r) * self.rs + (j + col) * self.cs];
                *dst = if add { *dst + x } else { x };
            }
        }
    }
}

/// Spills one row of a micro-tile into `lanes[..NR]`.
#[inline(always)]
pub(crate) fn tile_row<T: Element>(row: &[T::Simd; NV], lanes: &mut [T]) {
    for (v, chunk) in row.iter().zip(lanes.chunks_exact_mut(T::LANES)) {
        T::store(*v, chunk);
    }
}

/// Writes (or adds) `src[..len]` onto `dst[..len]` in whole vectors, the last one blended so
/// that the elements after `len` keep their values; element by element where `dst` has no
/// room for a whole last vector.
#[inline(always)]
pub(crate) fn put_lanes<T: Element>(dst: &mut [T], src: &[T], len: usize, add: bool) {
    let mut at = 0;
    while at < len {
        let n = T::LANES.min(len - at);
        if dst.len() - at < T::LANES {
            for (d, &s) in dst[at..at + n].iter_mut().zip(&src[at..at + n]) {
                *d = if add { *d + s } else { s };
            }
        } else if n == T::LANES && !add {
            // A whole vector written over: nothing to keep, so nothing to read.
            T::store(T::load_full(&src[at..]), &mut dst[at..]);
        } else {
            let old = T::load_full(&dst[at..]);
            let v = T::load(&src[at..]);
            let new = if add { old + v } else { v };
            T::store(T::blend_first(n, new, old), &mut dst[at..]);
        }
        at += n;
    }
}
