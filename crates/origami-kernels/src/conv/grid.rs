//! The unrolled matrix read in place: the input split into phase planes, the output laid out
//! on a grid of the planes' shape.
//!
//! Along an axis with stride `s` and dilation `d`, output `o` reads through tap `k` the padded
//! input coordinate
//!
//! ```text
//! o s + k d = (o + floor(k d / s)) s + (k d mod s)
//! ```
//!
//! so if the padded input is split into `s` phase planes — plane `a` holds the coordinates
//! `a, a + s, a + 2 s, ...` — every tap reads one plane at a constant shift of the output
//! index: `plane[k d mod s][o + floor(k d / s)]`. The planes are `q = out + floor((K - 1) d / s)`
//! long, zero where the padded input is padding. Lay the output positions out on a grid of
//! the planes' shape (`Dq x Hq x Wq`, of which the first `Do x Ho x Wo` are outputs) and
//! unrolled row `r = (c, tap)` is a contiguous run of the plane `(c, phase(tap))`, starting at
//! `shift(tap)`: the product reads its right operand straight from the planes, with no
//! packing. Grid columns that are not outputs are computed and dropped, which is why the
//! grid is used only where they are few ([`Grid::worth_it`]).
//!
//! The strided gradients take their depth or columns over the outputs themselves instead,
//! and drop nothing: the weight gradient packs each unrolled row over a block of outputs
//! from a few runs of its plane (one per output row), and the input gradient adds each tile
//! at its outputs' grid columns (in two pieces where a tile crosses the end of a row), so
//! the output gradient is read in place in both.
//!
//! Building the planes copies the input once (`taps` times less than unrolling it).

use super::geometry::ConvShape;
use super::im2col::RowTap;
use crate::Element;
use crate::element::MAX_LANES;
use crate::gemm::params::{MC, NV};
use crate::gemm::{
    IndexB, PackB, StoreC, Tile, copy_over, put_columns8, put_lanes, tile_row,
    transpose_row_stride, transpose_work_len, zero_b_tail,
};

/// One axis of the grid.
#[derive(Clone, Copy, Debug)]
struct GridAxis {
    stride: usize,
    dilation: usize,
    pad: usize,
    input: usize,
    /// Outputs along the axis.
    out: usize,
    /// Length of a phase plane (and of the grid) along the axis.
    q: usize,
}

impl GridAxis {
    /// The phase and the shift of tap `k`.
    #[inline(always)]
    fn place(&self, k: usize) -> (usize, usize) {
        let e = k * self.dilation;
        if self.stride == 1 {
            // One phase: without the divisions, which the input gradient's write-back would
            // otherwise spend on every row of every tile.
            return (0, e);
        }
        (e % self.stride, e / self.stride)
    }

    /// Plane indices `[lo, hi)` of phase `a` that hold input (the rest is padding), and the
    /// input coordinate of index `lo`.
    fn valid(&self, a: usize) -> (usize, usize, usize) {
        let lo = self.pad.saturating_sub(a).div_ceil(self.stride);
        let hi = (self.input + self.pad)
            .saturating_sub(a)
            .div_ceil(self.stride)
            .min(self.q);
        let lo = lo.min(hi);
        (lo, hi, (lo * self.stride + a).saturating_sub(self.pad))
    }
}

/// The phase planes and the output grid of a convolution's group.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Grid {
    axes: [GridAxis; 3],
    /// Phase planes per channel: the product of the strides.
    phases: usize,
    /// Elements of one phase plane (and of the grid): `Dq * Hq * Wq`.
    plane: usize,
    /// Grid columns up to the last output: `((Do - 1) Hq + Ho - 1) Wq + Wo`.
    cols: usize,
    /// Elements of the planes of all the group's channels.
    planes: usize,
    /// The leading grid columns that are outputs at their own index: up to the first
    /// dropped column (all of them where no axis drops any, as along T of a temporal
    /// `(k, 1)` kernel, or a 1-D convolution), whose tiles are stored as whole vectors.
    aligned_cols: usize,
}

impl Grid {
    /// The grid of a group's input (`s.cg` channels); `None` where an output extent is zero
    /// or a size overflows.
    pub fn of(s: &ConvShape) -> Option<Self> {
        let mut axes = [GridAxis {
            stride: 1,
            dilation: 1,
            pad: 0,
            input: 0,
            out: 0,
            q: 0,
        }; 3];
        for (g, a) in axes.iter_mut().zip(&s.axes) {
            if a.output == 0 {
                return None;
            }
            *g = GridAxis {
                stride: a.stride,
                dilation: a.dilation,
                pad: a.pad_lo,
                input: a.input,
                out: a.output,
                q: a.output
                    .checked_add((a.kernel - 1).checked_mul(a.dilation)? / a.stride)?,
            };
        }
        let [d, h, w] = axes;
        let phases = d.stride.checked_mul(h.stride)?.checked_mul(w.stride)?;
        let plane = d.q.checked_mul(h.q)?.checked_mul(w.q)?;
        let rows = (d.out - 1).checked_mul(h.q)?.checked_add(h.out - 1)?;
        let cols = rows.checked_mul(w.q)?.checked_add(w.out)?;
        let planes = s.cg.checked_mul(phases)?.checked_mul(plane)?;
        let aligned_cols = if w.q > w.out {
            w.out
        } else if h.q > h.out {
            h.out * w.q
        } else {
            cols
        };
        Some(Grid {
            axes,
            phases,
            plane,
            cols,
            planes,
            aligned_cols,
        })
    }

    /// Columns of the grid's product (outputs and the dropped columns between them).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The grid of `s` where reading the planes pays for the dropped columns: at most a
    /// quarter more columns than outputs (packing the unrolled matrix costs about that much
    /// of the product at the channel counts where `Unrolled` runs).
    pub fn worth_it(s: &ConvShape) -> Option<Self> {
        Grid::of(s).filter(|g| g.cols - s.out_plane <= s.out_plane / 4)
    }

    /// Elements of the planes, with a sliver of slack: the product reads whole slivers past
    /// the last column. Saturates, like every scratch size, where it overflows.
    pub fn planes_len<T: Element>(&self) -> usize {
        self.planes.saturating_add(NV * T::LANES)
    }

    /// Fills the phase planes of the group's channels of `x` (`channels x in_plane`), into
    /// `planes` of [`Grid::planes_len`] elements.
    pub fn fill<T: Element>(&self, x: &[T], planes: &mut [T]) {
        planes[self.planes..].fill(T::ZERO);
        let stride = self.axes[2].stride;
        self.for_each_plane_row(|at, (lw, hw), input| {
            let row = &mut planes[at..at + self.axes[2].q];
            let Some(from) = input else {
                row.fill(T::ZERO);
                return;
            };
            row[..lw].fill(T::ZERO);
            row[hw..].fill(T::ZERO);
            if stride == 1 {
                row[lw..hw].copy_from_slice(&x[from..from + (hw - lw)]);
            } else if stride == 2 {
                // Pairs, so that the compiler vectorises the gather (as loads and shuffles);
                // the last element alone, as its pair may lie past the input.
                let (row, last) = row[lw..hw].split_at_mut(hw - lw - 1);
                for (d, pair) in row.iter_mut().zip(x[from..].chunks_exact(2)) {
                    *d = pair[0];
                }
                last[0] = x[from + 2 * (hw - lw - 1)];
            } else {
                let src = x[from..].iter().step_by(stride);
                for (d, &v) in row[lw..hw].iter_mut().zip(src) {
                    *d = v;
                }
            }
        });
    }

    /// The inverse of [`Grid::fill`]: writes the planes' elements that are inputs back to
    /// their places in `dx` (`channels x in_plane`), and zeros where the planes hold no input
    /// (the last ones along an axis when no window reaches them).
    pub fn unfill<T: Element>(&self, planes: &[T], dx: &mut [T]) {
        let [ad, ah, aw] = self.axes;
        let channels = self.planes / (self.phases * self.plane);
        dx[..channels * ad.input * ah.input * aw.input].fill(T::ZERO);
        if aw.stride == 2 {
            return self.unfill_pairs(channels, planes, dx);
        }
        self.for_each_plane_row(|at, (lw, hw), input| {
            let Some(to) = input else {
                return;
            };
            let row = &planes[at + lw..at + hw];
            if aw.stride == 1 {
                dx[to..to + (hw - lw)].copy_from_slice(row);
            } else {
                for (d, &v) in dx[to..].iter_mut().step_by(aw.stride).zip(row) {
                    *d = v;
                }
            }
        });
    }

    /// [`Grid::unfill`] with stride 2 along W (`dx` zeroed): each row of `dx` interleaves a
    /// row of each phase along W, written a pair of inputs at a time (which the compiler
    /// vectorises), where one phase's row after the other wrote every other element alone.
    fn unfill_pairs<T: Element>(&self, channels: usize, planes: &[T], dx: &mut [T]) {
        let [ad, ah, aw] = self.axes;
        // Input `iw` is element `(iw + pad) / 2` of phase `(iw + pad) % 2`: even inputs of
        // phase `first`, from element `pad / 2` on, odd ones of the other phase, from
        // `(pad + 1) / 2` on.
        let first = aw.pad % 2;
        let (q_even, q_odd) = (aw.pad / 2, aw.pad.div_ceil(2));
        // Pairs whose both elements are in the planes (later inputs no window reaches).
        let pairs = (aw.input / 2)
            .min(aw.q.saturating_sub(q_even))
            .min(aw.q.saturating_sub(q_odd));
        let in_plane = ad.input * ah.input * aw.input;
        let dx_rows = dx[..channels * in_plane].chunks_exact_mut(aw.input);
        for (row, dx_row) in dx_rows.enumerate() {
            let (c, ih) = (row / (ad.input * ah.input), row % ah.input);
            let id = row / ah.input % ad.input;
            let (pd, qd) = ((id + ad.pad) % ad.stride, (id + ad.pad) / ad.stride);
            let (ph, qh) = ((ih + ah.pad) % ah.stride, (ih + ah.pad) / ah.stride);
            if qd >= ad.q || qh >= ah.q {
                continue;
            }
            let plane_row = |pw: usize| {
                let phase = (pd * ah.stride + ph) * 2 + pw;
                (c * self.phases + phase) * self.plane + (qd * ah.q + qh) * aw.q
            };
            let even = &planes[plane_row(first)..][..aw.q];
            let odd = &planes[plane_row(1 - first)..][..aw.q];
            let evens = even[q_even..].iter().zip(&odd[q_odd..]);
            for (pair, (&e, &o)) in dx_row.chunks_exact_mut(2).zip(evens).take(pairs) {
                pair[0] = e;
                pair[1] = o;
            }
            for (iw, d) in dx_row.iter_mut().enumerate().skip(2 * pairs) {
                let q = (iw + aw.pad) / 2;
                if q < aw.q {
                    *d = if iw % 2 == 0 { even[q] } else { odd[q] };
                }
            }
        }
    }

    /// Visits the rows (along W) of the group's planes in order: `f(first element of the row
    /// in the planes, (lo, hi), input)`, where the row's elements `lo..hi` are inputs (the
    /// rest padding), `stride_w` apart in the group's input from element `input`; `input` is
    /// `None` where the whole row is padding.
    #[inline(always)]
    fn for_each_plane_row(&self, mut f: impl FnMut(usize, (usize, usize), Option<usize>)) {
        let [ad, ah, aw] = self.axes;
        let in_plane = ad.input * ah.input * aw.input;
        let channels = self.planes / (self.phases * self.plane);
        let mut at = 0;
        for c in 0..channels {
            for pd in 0..ad.stride {
                for ph in 0..ah.stride {
                    for pw in 0..aw.stride {
                        let (lw, hw, iw0) = aw.valid(pw);
                        for qd in 0..ad.q {
                            for qh in 0..ah.q {
                                let id = (qd * ad.stride + pd).checked_sub(ad.pad);
                                let ih = (qh * ah.stride + ph).checked_sub(ah.pad);
                                let input = match (id, ih) {
                                    (Some(id), Some(ih))
                                        if id < ad.input && ih < ah.input && hw > lw =>
                                    {
                                        Some(c * in_plane + (id * ah.input + ih) * aw.input + iw0)
                                    }
                                    _ => None,
                                };
                                f(at, (lw, hw), input);
                                at += aw.q;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Where unrolled row `r = (c, kd, kh, kw)` starts in the planes.
    #[inline(always)]
    fn row_start(&self, c: usize, k: [usize; 3]) -> usize {
        let [ad, ah, aw] = self.axes;
        let (pd, sd) = ad.place(k[0]);
        let (ph, sh) = ah.place(k[1]);
        let (pw, sw) = aw.place(k[2]);
        let phase = (pd * ah.stride + ph) * aw.stride + pw;
        (c * self.phases + phase) * self.plane + (sd * ah.q + sh) * aw.q + sw
    }
}

/// The unrolled matrix of one image and group (`R x grid columns`) as the product's right
/// operand, read from the phase planes.
pub(crate) struct GridB<'a, T> {
    pub s: &'a ConvShape,
    pub grid: &'a Grid,
    pub planes: &'a [T],
}

impl<T: Element> IndexB<T> for GridB<'_, T> {
    fn data(&self) -> &[T] {
        self.planes
    }

    fn row_starts(&self, p0: usize, starts: &mut [usize]) {
        let mut t = RowTap::of(self.s, p0);
        for (i, start) in starts.iter_mut().enumerate() {
            if i > 0 {
                t.advance(self.s);
            }
            *start = self.grid.row_start(t.c, [t.kd, t.kh, t.kw]);
        }
    }
}

/// The transposed unrolled matrix of one image and group (`out_plane x R`) as the right
/// operand of the weight gradient's product `dY x cols^T`, packed from the phase planes: its
/// depth runs over the outputs themselves, so the output gradient is the left operand as it
/// is. Column `r` over a block of outputs is a few runs of a plane (one per output row the
/// block touches, at the rows' grid places), so eight columns are gathered side by side and
/// transposed into the slivers.
pub(crate) struct GridOutputsBT<'a, T> {
    pub b: GridB<'a, T>,
}

impl<T: Element> PackB<T> for GridOutputsBT<'_, T> {
    fn pack_b(&self, p0: usize, kc: usize, j0: usize, nc: usize, out: &mut [T], work: &mut [T]) {
        zero_b_tail(out, kc, nc);
        let stride = transpose_row_stride::<T>(kc);
        let rows = &mut work[..transpose_work_len::<T>(kc)];
        let mut starts = [0usize; 8];
        let grid = self.b.grid;
        let from = grid.output_at(p0);
        for j in (0..nc).step_by(8) {
            let group = 8.min(nc - j);
            self.b.row_starts(j0 + j, &mut starts[..group]);
            for (i, row) in rows.chunks_exact_mut(stride).enumerate() {
                if i < group {
                    grid.output_runs(from, kc, |at, col, len| {
                        copy_over(row, at, self.b.planes, starts[i] + col, len);
                    });
                } else {
                    row[..kc].fill(T::ZERO);
                }
            }
            put_columns8(out, kc, j, rows, stride);
        }
    }
}

/// An output's place along D, H and W: where [`Grid::output_runs`] starts, found once per
/// packed block or column of tiles (its divisions cost as much as a short run's copy).
#[derive(Clone, Copy, Default)]
struct OutputAt {
    od: usize,
    oh: usize,
    ow: usize,
}

impl Grid {
    /// The place of output `o` (in the output's order).
    #[inline(always)]
    fn output_at(&self, o: usize) -> OutputAt {
        let [_, ah, aw] = self.axes;
        let (row, ow) = (o / aw.out, o % aw.out);
        OutputAt {
            od: row / ah.out,
            oh: row % ah.out,
            ow,
        }
    }

    /// The grid column of an output.
    #[inline(always)]
    fn output_col(&self, at: OutputAt) -> usize {
        let [_, ah, aw] = self.axes;
        (at.od * ah.q + at.oh) * aw.q + at.ow
    }

    /// Visits `len` outputs from `from` on (in the output's order) as runs along W: `f(at,
    /// col, run)` for the `at`-th to `at + run`-th of them, at grid columns `col..col + run`.
    #[inline(always)]
    fn output_runs(&self, from: OutputAt, len: usize, mut f: impl FnMut(usize, usize, usize)) {
        let [_, ah, aw] = self.axes;
        let mut place = from;
        let mut at = 0;
        while at < len {
            let run = (aw.out - place.ow).min(len - at);
            f(at, self.output_col(place), run);
            at += run;
            place.ow = 0;
            place.oh += 1;
            if place.oh == ah.out {
                place.oh = 0;
                place.od += 1;
            }
        }
    }
}

/// The output of one image and group (`kg x out_plane`) as the destination of a product over
/// grid columns: each tile's columns that are outputs are written (or added), the rest
/// dropped.
pub(crate) struct GridOut<'a, T> {
    pub grid: &'a Grid,
    pub out_plane: usize,
    pub y_g: &'a mut [T],
    /// Added to row `i`'s first write (the product's first depth block), so the output need
    /// not be filled with the bias beforehand and read back: a large output has left the
    /// cache by then, and each tile would wait on memory for it.
    pub bias: Option<&'a [T]>,
}

impl<T: Element> GridOut<'_, T> {
    /// Writes (or adds) the top `rows` rows of a whole tile at outputs `at..at + NR`.
    #[inline(always)]
    fn store_whole(&mut self, tile: &Tile<T>, i: usize, at: usize, rows: usize, add: bool) {
        let nr = NV * T::LANES;
        for (r, row) in tile.iter().enumerate().take(rows) {
            let bias = self.bias.filter(|_| !add).map(|b| T::splat(b[i + r]));
            let dst = &mut self.y_g[(i + r) * self.out_plane + at..][..nr];
            for (&v, chunk) in row.iter().zip(dst.chunks_exact_mut(T::LANES)) {
                let v = bias.map_or(v, |b| b + v);
                let out = if add { T::load_full(chunk) + v } else { v };
                T::store(out, chunk);
            }
        }
    }
}

impl<T: Element> StoreC<T> for GridOut<'_, T> {
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
        if cols == nr && j + nr <= self.grid.aligned_cols {
            // Grid column `j` is output `j` (their divisions and partial stores cost a tenth
            // of a temporal convolution's product).
            self.store_whole(tile, i, j, rows, add);
            return;
        }
        // The tile's columns as runs of outputs: (first lane, first output, length). The same
        // for every row of the tile, so found once.
        let [_, ah, aw] = self.grid.axes;
        let mut runs = [(0usize, 0usize, 0usize); NV * MAX_LANES];
        let mut count = 0;
        let mut g = j;
        while g < j + cols {
            let (ow, qrow) = (g % aw.q, g / aw.q);
            let (oh, od) = (qrow % ah.q, qrow / ah.q);
            if oh >= ah.out {
                g += (ah.q - oh) * aw.q - ow;
                continue;
            }
            if ow >= aw.out {
                g += aw.q - ow;
                continue;
            }
            let len = (aw.out - ow).min(j + cols - g);
            runs[count] = (g - j, (od * ah.out + oh) * aw.out + ow, len);
            count += 1;
            g += len;
        }
        if count == 1 && runs[0].2 == nr {
            // A tile inside one output row (most of a 3x3 convolution's).
            self.store_whole(tile, i, runs[0].1, rows, add);
            return;
        }
        let mut lanes = [T::ZERO; NV * MAX_LANES + MAX_LANES];
        for (r, row) in tile.iter().enumerate().take(rows) {
            match self.bias.filter(|_| !add) {
                Some(b) => {
                    let b = T::splat(b[i + r]);
                    tile_row::<T>(&row.map(|v| b + v), &mut lanes);
                }
                None => tile_row::<T>(row, &mut lanes),
            }
            let y_row = &mut self.y_g[(i + r) * self.out_plane..][..self.out_plane];
            for &(lane, at, len) in &runs[..count] {
                put_lanes(&mut y_row[at..], &lanes[lane..], len, add);
            }
        }
    }
}

/// The input gradient's unrolled matrix `dcols = W^T x dY` (rows `r = (c, tap)`, one column
/// per output) as the destination of its product, added onto the phase planes the forward
/// pass reads `cols` from: entry `(r, o)` is read from element `row_start(r) + col(o)` of the
/// planes (`col(o)` the output's grid column), so it is added there, and each tile row is a
/// run of whole vectors added in place where its outputs lie in one row along W — col2im
/// without a scatter, whatever the stride. A tile across the end of a row is added in pieces.
/// Taps of one phase read overlapping runs, so every tile adds (the planes start zeroed).
pub(crate) struct OntoPlanes<'a, T> {
    s: &'a ConvShape,
    grid: &'a Grid,
    pub planes: &'a mut [T],
    /// The output of the product's column 0 (a product over the last few columns starts
    /// past it).
    pub first_output: usize,
    /// Where unrolled rows `first..first + len` start in the planes. The product stores a
    /// block's tiles row sliver after row sliver, column after column: found once per block
    /// of rows rather than per tile, where their divisions (phases of a strided axis) cost
    /// as much as a tile of the stem's 64-deep product.
    starts: [usize; MC],
    first: usize,
    len: usize,
    /// The last tile's first output and its place: the product stores a column of tiles
    /// after another, all of one column at a time.
    column: (usize, OutputAt),
}

impl<'a, T: Element> OntoPlanes<'a, T> {
    pub fn new(s: &'a ConvShape, grid: &'a Grid, planes: &'a mut [T]) -> Self {
        OntoPlanes {
            s,
            grid,
            planes,
            first_output: 0,
            starts: [0; MC],
            first: 0,
            len: 0,
            column: (usize::MAX, OutputAt::default()),
        }
    }

    /// Makes `starts` hold rows `i..i + rows`, finding a block of them from `i` if not.
    #[inline(always)]
    fn find_rows(&mut self, i: usize, rows: usize) {
        if i < self.first || i + rows > self.first + self.len {
            self.first = i;
            self.len = MC.min(self.s.unrolled_rows - i);
            let mut t = RowTap::of(self.s, i);
            for (k, start) in self.starts[..self.len].iter_mut().enumerate() {
                if k > 0 {
                    t.advance(self.s);
                }
                *start = self.grid.row_start(t.c, [t.kd, t.kh, t.kw]);
            }
        }
    }
}

impl<T: Element> StoreC<T> for OntoPlanes<'_, T> {
    #[inline(always)]
    fn store_tile(
        &mut self,
        tile: &Tile<T>,
        i: usize,
        j: usize,
        rows: usize,
        cols: usize,
        _add: bool,
    ) {
        let mut lanes = [T::ZERO; NV * MAX_LANES + MAX_LANES];
        self.find_rows(i, rows);
        let o = self.first_output + j;
        if self.column.0 != o {
            self.column = (o, self.grid.output_at(o));
        }
        let place = self.column.1;
        let (col, left) = (
            self.grid.output_col(place),
            self.grid.axes[2].out - place.ow,
        );
        let starts = &self.starts[i - self.first..][..rows];
        for (row, start) in tile.iter().zip(starts) {
            let dst = &mut self.planes[start + col..];
            if cols == NV * T::LANES && left >= cols && dst.len() >= cols {
                for (v, d) in row.iter().zip(dst.chunks_exact_mut(T::LANES)) {
                    T::store(T::load_full(d) + *v, d);
                }
            } else {
                tile_row::<T>(row, &mut lanes);
                self.grid.output_runs(place, cols, |at, run_col, run| {
                    let dst = &mut self.planes[start + run_col..];
                    put_lanes(dst, &lanes[at..], run, true);
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConvSpec;

    /// Writing the planes back gives every input they hold, and zero for the rest.
    #[test]
    fn unfill_inverts_fill() {
        let specs = [
            ConvSpec::new(1, 2, 1, [3, 5, 7], [2, 3, 2])
                .with_stride([1, 2, 3])
                .with_padding([1, 2, 1])
                .with_dilation([2, 1, 2]),
            // The last input along W is in no plane: 13 inputs, kernel 2, stride 3 make 4
            // outputs, whose planes hold coordinates 0..12.
            ConvSpec::new(1, 3, 1, [1, 2, 13], [1, 1, 2]).with_stride([1, 1, 3]),
            // Stride 2 along W (rows written a pair at a time): odd and even padding, odd and
            // even widths, the last inputs in no plane (15 inputs, kernel 2, no padding: 7
            // outputs, coordinates 0..13), rows shorter than a vector and longer.
            ConvSpec::new(2, 2, 1, [2, 3, 21], [2, 3, 7])
                .with_stride([2, 2, 2])
                .with_padding([1, 1, 3]),
            ConvSpec::new(1, 2, 1, [1, 5, 15], [1, 2, 2]).with_stride([1, 2, 2]),
            ConvSpec::new(1, 1, 1, [1, 3, 40], [1, 3, 3])
                .with_stride([1, 1, 2])
                .with_padding([0, 1, 2])
                .with_dilation([1, 1, 2]),
        ];
        let mut missing = 0;
        for spec in specs {
            let s = spec.build().unwrap().shape;
            let x: Vec<f64> = (0..s.cg * s.in_plane).map(|i| i as f64 + 1.0).collect();
            let grid = Grid::of(&s).unwrap();
            let mut planes = vec![f64::NAN; grid.planes_len::<f64>()];
            grid.fill(&x, &mut planes);
            let mut back = vec![f64::NAN; x.len()];
            grid.unfill(&planes, &mut back);
            // Whether input coordinate `i` of axis `a` has a place in its phase plane.
            let read = |a: &crate::window::Axis, i: usize| {
                let q = a.output + (a.kernel - 1) * a.dilation / a.stride;
                (i + a.pad_lo) / a.stride < q
            };
            let [ad, ah, aw] = s.axes;
            for (at, (&b, &v)) in back.iter().zip(&x).enumerate() {
                let (q, iw) = (at / aw.input, at % aw.input);
                let (q, ih) = (q / ah.input, q % ah.input);
                let id = q % ad.input;
                let reached = read(&ad, id) && read(&ah, ih) && read(&aw, iw);
                missing += usize::from(!reached);
                assert_eq!(b, if reached { v } else { 0.0 }, "{spec:?} at {at}");
            }
        }
        assert!(missing > 0, "some input must lie outside the planes");
    }

    /// Every unrolled entry read through the planes equals the definition's.
    #[test]
    fn planes_hold_every_unrolled_entry() {
        let specs = [
            ConvSpec::new(1, 2, 1, [3, 5, 7], [2, 3, 2])
                .with_stride([1, 2, 3])
                .with_padding([1, 2, 1])
                .with_dilation([2, 1, 2]),
            ConvSpec::new(1, 3, 1, [1, 4, 9], [1, 2, 3]).with_padding([0, 1, 4]),
            ConvSpec::new(1, 1, 1, [1, 1, 11], [1, 1, 5])
                .with_stride([1, 1, 3])
                .with_padding([0, 0, 2]),
            // Stride 2 along W (rows read a pair at a time): odd and even padding and widths.
            ConvSpec::new(1, 2, 1, [2, 5, 23], [2, 3, 7])
                .with_stride([2, 2, 2])
                .with_padding([1, 1, 3]),
            ConvSpec::new(1, 2, 1, [1, 6, 16], [1, 2, 4])
                .with_stride([1, 1, 2])
                .with_padding([0, 1, 2])
                .with_dilation([1, 1, 2]),
            ConvSpec::new(1, 1, 1, [1, 1, 3], [1, 1, 2]).with_stride([1, 1, 2]),
        ];
        for spec in specs {
            let s = spec.build().unwrap().shape;
            let x: Vec<f64> = (0..s.cg * s.in_plane).map(|i| i as f64 + 1.0).collect();
            let mut cols = vec![0.0; s.unrolled_len];
            super::super::im2col::im2col(&s, &x, &mut cols);
            let grid = Grid::of(&s).unwrap();
            let mut planes = vec![f64::NAN; grid.planes_len::<f64>()];
            grid.fill(&x, &mut planes);
            let b = GridB {
                s: &s,
                grid: &grid,
                planes: &planes,
            };
            let mut starts = vec![0; s.unrolled_rows];
            b.row_starts(0, &mut starts);
            let [_, ay, ax] = s.axes;
            for (r, &start) in starts.iter().enumerate() {
                for p in 0..s.out_plane {
                    let (q, ow) = (p / ax.output, p % ax.output);
                    let (od, oh) = (q / ay.output, q % ay.output);
                    let g = (od * grid.axes[1].q + oh) * grid.axes[2].q + ow;
                    assert_eq!(planes[start + g], cols[r * s.out_plane + p], "r={r} p={p}");
                }
            }
        }
    }
}
