//! The unrolled matrix (im2col) of one image and group, as operands of the packed product,
//! in any number of dimensions, with stride, dilation, padding and groups.
//!
//! The unrolled matrix has a row per kernel tap `r = (c, kd, kh, kw)` (`cg * taps` rows) and a
//! column per output position `p = (od, oh, ow)`: entry `(r, p)` is the input the window at
//! `p` reads through tap `r`, zero where it falls in the padding. Each column is one window —
//! the lecture's `T x K` matrix, transposed so that the product with the weights,
//! `W (K x R) x cols (R x P)`, writes the output in its `[K, P]` layout directly.
//!
//! The matrix is never stored whole. The product packs it block by block straight from the
//! input ([`Unrolled`] as the right operand of the forward pass, the matrices of consecutive
//! images side by side, whose outputs [`ImageColumns`] places; [`UnrolledT`] as the right
//! operand of the weight gradient), and the input gradient's product adds each finished tile
//! of `dcols` onto the input elements it was read from ([`Col2im`], the adjoint), so the
//! working set is a packed block that stays in cache instead of `R x P` elements that do not.

use super::geometry::ConvShape;
use crate::Element;
use crate::element::MAX_LANES;
use crate::gemm::params::NV;
use crate::gemm::{
    MatMut, PackB, StoreC, Tile, copy_over, put_columns8, put_lanes, spread_row, tile_row,
    transpose_row_stride, transpose_work_len, zero_b_tail,
};
use crate::window::tap;

/// A stretch of consecutive entries of one unrolled row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    /// `len` entries that read padding.
    Padding(usize),
    /// `len` entries reading `x_g[start + i * stride]`.
    Input {
        start: usize,
        stride: usize,
        len: usize,
    },
}

/// Unrolled row `r = (c, kd, kh, kw)` taken apart, with the outputs `[lo, hi)` along the
/// innermost axis that its tap `kw` reads inside the input.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowTap {
    pub c: usize,
    pub kd: usize,
    pub kh: usize,
    pub kw: usize,
    lo: usize,
    hi: usize,
}

impl RowTap {
    pub fn of(s: &ConvShape, r: usize) -> Self {
        let [_, ay, ax] = s.axes;
        let (c, t) = (r / s.taps, r % s.taps);
        let kw = t % ax.kernel;
        let (lo, hi) = ax.valid_outputs(kw);
        RowTap {
            c,
            kd: t / (ax.kernel * ay.kernel),
            kh: (t / ax.kernel) % ay.kernel,
            kw,
            lo,
            hi,
        }
    }

    /// Moves to row `r + 1` by carrying, where [`RowTap::of`] divides: the packers visit rows
    /// in order and would otherwise spend more time dividing than copying.
    #[inline(always)]
    pub fn advance(&mut self, s: &ConvShape) {
        let [az, ay, ax] = s.axes;
        self.kw += 1;
        if self.kw == ax.kernel {
            self.kw = 0;
            self.kh += 1;
            if self.kh == ay.kernel {
                self.kh = 0;
                self.kd += 1;
                if self.kd == az.kernel {
                    self.kd = 0;
                    self.c += 1;
                }
            }
        }
        (self.lo, self.hi) = ax.valid_outputs(self.kw);
    }
}

/// An output position `p = (od, oh, ow)` taken apart.
#[derive(Clone, Copy, Debug)]
struct Position {
    od: usize,
    oh: usize,
    ow: usize,
}

impl Position {
    fn of(s: &ConvShape, p: usize) -> Self {
        let [_, ay, ax] = s.axes;
        let q = p / ax.output;
        Position {
            od: q / ay.output,
            oh: q % ay.output,
            ow: p % ax.output,
        }
    }
}

/// Visits `len` columns of unrolled row `t`, starting at output position `from`, as runs: `f`
/// receives each run's offset from `from`. A run never crosses an output row, so within one
/// the input index advances by the stride.
#[inline(always)]
fn for_each_run(
    s: &ConvShape,
    t: &RowTap,
    from: Position,
    len: usize,
    mut f: impl FnMut(usize, Run),
) {
    let [az, ay, ax] = s.axes;
    let [id_n, ih_n, iw_n] = s.input();
    let RowTap {
        c,
        kd,
        kh,
        kw,
        lo,
        hi,
    } = *t;
    let ow_n = ax.output;
    let Position {
        mut od,
        mut oh,
        ow: mut ow0,
    } = from;
    let mut off = 0;
    while off < len {
        let ow1 = ow_n.min(ow0 + (len - off));
        let row = tap(od, kd, &az)
            .and_then(|id| tap(oh, kh, &ay).map(|ih| ((c * id_n + id) * ih_n + ih) * iw_n));
        match row {
            None => f(off, Run::Padding(ow1 - ow0)),
            Some(row) => {
                let a = lo.clamp(ow0, ow1);
                let b = hi.clamp(a, ow1);
                if a > ow0 {
                    f(off, Run::Padding(a - ow0));
                }
                if b > a {
                    f(
                        off + (a - ow0),
                        Run::Input {
                            start: row + a * ax.stride + kw * ax.dilation - ax.pad_lo,
                            stride: ax.stride,
                            len: b - a,
                        },
                    );
                }
                if ow1 > b {
                    f(off + (b - ow0), Run::Padding(ow1 - b));
                }
            }
        }
        off += ow1 - ow0;
        ow0 = 0;
        oh += 1;
        if oh == ay.output {
            oh = 0;
            od += 1;
        }
    }
}

/// Unrolls the windows of one image and group: `x_g` holds the group's `cg` input channels,
/// `cols` receives the whole `(cg * taps) x out_plane` matrix.
pub(crate) fn im2col<T: Element>(s: &ConvShape, x_g: &[T], cols: &mut [T]) {
    let p_n = s.out_plane;
    let mut t = RowTap::of(s, 0);
    let start = Position::of(s, 0);
    for (r, row) in cols.chunks_exact_mut(p_n).enumerate() {
        if r > 0 {
            t.advance(s);
        }
        for_each_run(s, &t, start, p_n, |off, run| match run {
            Run::Padding(len) => row[off..off + len].fill(T::ZERO),
            Run::Input { start, stride, len } => {
                for (d, &v) in row[off..off + len]
                    .iter_mut()
                    .zip(x_g[start..].iter().step_by(stride))
                {
                    *d = v;
                }
            }
        });
    }
}

/// Writes `len` entries of unrolled row `t`, from output position `from`, to `row[..len]`:
/// runs copied in whole vectors, each spilling into the next run's place (so `row` needs a
/// vector of room past `len`), padding as zeros.
#[inline(always)]
fn unroll_row<T: Element>(
    s: &ConvShape,
    t: &RowTap,
    from: Position,
    len: usize,
    x_g: &[T],
    row: &mut [T],
) {
    let zeros = [T::ZERO; MAX_LANES];
    for_each_run(s, t, from, len, |off, run| match run {
        Run::Padding(len) => {
            for at in (off..off + len).step_by(T::LANES) {
                copy_over(row, at, &zeros, 0, T::LANES.min(off + len - at));
            }
        }
        Run::Input {
            start,
            stride: 1,
            len,
        } => copy_over(row, off, x_g, start, len),
        Run::Input { start, stride, len } => {
            let src = x_g[start..].iter().step_by(stride);
            for (d, &v) in row[off..off + len].iter_mut().zip(src) {
                *d = v;
            }
        }
    });
}

/// The unrolled matrices (`R x P` each) of one group over consecutive images, side by side
/// (`R x N P` for `N` images), as the right operand of the forward product `W x cols`: column `j` is
/// position `j mod P` of image `j / P`. Small planes fill few micro-tiles' columns one image
/// at a time (a 7 x 7 plane is 49 columns of 96 in two tiles of 48); side by side they fill
/// all but the last.
pub(crate) struct Unrolled<'a, T> {
    pub s: &'a ConvShape,
    /// The group's input channels of the first image, running on through the later ones.
    pub x_g: &'a [T],
    /// Elements from one image's input to the next one's (`in_channels * in_plane`).
    pub image_stride: usize,
}

impl<T: Element> PackB<T> for Unrolled<'_, T> {
    /// Only for a single image: threads split a batch into parts of images side by side,
    /// each with its own edge tile.
    fn tail_by_dots(&self) -> bool {
        self.s.whole_batch == 1
    }

    fn pack_b(&self, p0: usize, kc: usize, j0: usize, nc: usize, out: &mut [T], work: &mut [T]) {
        // Each depth step is built as one contiguous row (runs copied in whole vectors, each
        // spilling into the next run's place, the next image's included), then spread over
        // the slivers; writing runs straight into the slivers would split most of them at
        // sliver edges.
        let nr = NV * T::LANES;
        let width = nc.div_ceil(nr) * nr;
        let (row, _) = work.split_at_mut(width + nr);
        let plane = self.s.out_plane;
        let mut t = RowTap::of(self.s, p0);
        for p in 0..kc {
            if p > 0 {
                t.advance(self.s);
            }
            let mut done = 0;
            while done < nc {
                let (image, at) = ((j0 + done) / plane, (j0 + done) % plane);
                let len = (plane - at).min(nc - done);
                let x = &self.x_g[image * self.image_stride..];
                let from = Position::of(self.s, at);
                unroll_row(self.s, &t, from, len, x, &mut row[done..]);
                done += len;
            }
            row[nc..width].fill(T::ZERO);
            spread_row(out, kc, p, &row[..width]);
        }
    }
}

/// The outputs of one group over several images as the destination of a product whose
/// columns run image after image ([`Unrolled`]): row `i`, column `j` is element
/// `(j / P) image_stride + i P + j mod P` of `y_g`.
pub(crate) struct ImageColumns<'a, T> {
    /// The group's output channels of the first image, running on through the later ones.
    pub y_g: &'a mut [T],
    pub plane: usize,
    /// Elements from one image's output to the next one's (`out_channels * out_plane`).
    pub image_stride: usize,
}

impl<T: Element> StoreC<T> for ImageColumns<'_, T> {
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
        let (image, at) = (j / self.plane, j % self.plane);
        let y = &mut self.y_g[image * self.image_stride..];
        if at + cols <= self.plane {
            // Inside one image: a plain row-major tile (whole vectors where it is whole).
            let mut c = MatMut::from_parts(y, i + rows, self.plane, self.plane, 1);
            return c.store_tile(tile, i, at, rows, cols, add);
        }
        // The tile's columns as runs within one image: (first lane, element of row 0, length),
        // the same for every row of the tile, so found once.
        let mut runs = [(0usize, 0usize, 0usize); NV * MAX_LANES];
        let mut count = 0;
        let mut done = 0;
        while done < cols {
            let (image, at) = ((j + done) / self.plane, (j + done) % self.plane);
            let len = (self.plane - at).min(cols - done);
            runs[count] = (done, image * self.image_stride + at, len);
            count += 1;
            done += len;
        }
        let mut lanes = [T::ZERO; NV * MAX_LANES + MAX_LANES];
        for (r, v) in tile.iter().enumerate().take(rows) {
            tile_row(v, &mut lanes);
            for &(lane, start, len) in &runs[..count] {
                let start = start + (i + r) * self.plane;
                put_lanes(&mut self.y_g[start..], &lanes[lane..], len, add);
            }
        }
    }
}

/// The transposed unrolled matrix (`P x R`) of one image and group as the right operand of
/// the weight gradient's product `dY x cols^T`.
pub(crate) struct UnrolledT<'a, T> {
    pub s: &'a ConvShape,
    pub x_g: &'a [T],
}

impl<T: Element> PackB<T> for UnrolledT<'_, T> {
    fn pack_b(&self, p0: usize, kc: usize, j0: usize, nc: usize, out: &mut [T], work: &mut [T]) {
        // Column `j` of this block is unrolled row `j0 + j` read along the positions
        // `p0..p0 + kc`: eight of them are read into `work` as contiguous runs (the same
        // vector copies as the forward packer), then transposed into their slivers' lanes,
        // where writing each element down its lane would cost a store per element.
        zero_b_tail(out, kc, nc);
        let stride = transpose_row_stride::<T>(kc);
        let rows = &mut work[..transpose_work_len::<T>(kc)];
        let mut t = RowTap::of(self.s, j0);
        let start = Position::of(self.s, p0);
        for j in (0..nc).step_by(8) {
            for (i, row) in rows.chunks_exact_mut(stride).enumerate() {
                if j + i >= nc {
                    row[..kc].fill(T::ZERO);
                    continue;
                }
                if j + i > 0 {
                    t.advance(self.s);
                }
                unroll_row(self.s, &t, start, kc, self.x_g, row);
            }
            put_columns8(out, kc, j, rows, stride);
        }
    }
}

/// The input gradient of one image and group as the destination of `dcols = W^T x dY`: each
/// tile of `dcols` is added onto the input elements its entries were unrolled from (col2im,
/// the adjoint of im2col); entries that came from padding are dropped. `dx_g` must start
/// zeroed; every tile adds, whatever the product's `add`.
pub(crate) struct Col2im<'a, T> {
    pub s: &'a ConvShape,
    pub dx_g: &'a mut [T],
}

impl<T: Element> StoreC<T> for Col2im<'_, T> {
    fn store_tile(
        &mut self,
        tile: &Tile<T>,
        i: usize,
        j: usize,
        rows: usize,
        cols: usize,
        _add: bool,
    ) {
        let mut lanes = [T::ZERO; NV * MAX_LANES];
        let dx = &mut *self.dx_g;
        let mut t = RowTap::of(self.s, i);
        let start = Position::of(self.s, j);
        for (r, row) in tile.iter().enumerate().take(rows) {
            if r > 0 {
                t.advance(self.s);
            }
            tile_row::<T>(row, &mut lanes);
            for_each_run(self.s, &t, start, cols, |off, run| {
                if let Run::Input { start, stride, len } = run {
                    let src = &lanes[off..off + len];
                    if stride == 1 {
                        for (d, &v) in dx[start..start + len].iter_mut().zip(src) {
                            *d += v;
                        }
                    } else {
                        for (d, &v) in dx[start..].iter_mut().step_by(stride).zip(src) {
                            *d += v;
                        }
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConvSpec;

    /// Entry `(r, p)` of the unrolled matrix from the definition, one index at a time.
    fn entry(s: &ConvShape, x_g: &[f64], r: usize, p: usize) -> f64 {
        let [az, ay, ax] = s.axes;
        let [id_n, ih_n, iw_n] = s.input();
        let (c, t) = (r / s.taps, r % s.taps);
        let (kd, kh, kw) = (
            t / (ax.kernel * ay.kernel),
            (t / ax.kernel) % ay.kernel,
            t % ax.kernel,
        );
        let (od, oh, ow) = (
            p / (ay.output * ax.output),
            (p / ax.output) % ay.output,
            p % ax.output,
        );
        match (tap(od, kd, &az), tap(oh, kh, &ay), tap(ow, kw, &ax)) {
            (Some(id), Some(ih), Some(iw)) => x_g[((c * id_n + id) * ih_n + ih) * iw_n + iw],
            _ => 0.0,
        }
    }

    #[test]
    fn runs_cover_every_entry_once_with_its_value() {
        let specs = [
            ConvSpec::new(1, 2, 1, [3, 5, 7], [2, 3, 2])
                .with_stride([1, 2, 3])
                .with_padding([1, 2, 1])
                .with_dilation([2, 1, 2]),
            ConvSpec::new(1, 3, 1, [1, 4, 9], [1, 2, 3]).with_padding([0, 1, 4]),
        ];
        for spec in specs {
            let s = spec.build().unwrap().shape;
            let x: Vec<f64> = (0..s.cg * s.in_plane).map(|i| i as f64 + 1.0).collect();
            for r in 0..s.unrolled_rows {
                // Odd windows of columns, including ones that start mid-row.
                for (p0, len) in [(0, s.out_plane), (1, s.out_plane - 1), (3, 2)] {
                    let len = len.min(s.out_plane - p0.min(s.out_plane));
                    let mut seen = vec![f64::NAN; len];
                    let mut t = RowTap::of(&s, r.saturating_sub(1));
                    if r > 0 {
                        t.advance(&s);
                    }
                    for_each_run(&s, &t, Position::of(&s, p0), len, |off, run| match run {
                        Run::Padding(n) => seen[off..off + n].iter_mut().for_each(|v| {
                            assert!(v.is_nan());
                            *v = 0.0
                        }),
                        Run::Input { start, stride, len } => {
                            for (i, v) in seen[off..off + len].iter_mut().enumerate() {
                                assert!(v.is_nan());
                                *v = x[start + i * stride];
                            }
                        }
                    });
                    for (o, &v) in seen.iter().enumerate() {
                        assert_eq!(v, entry(&s, &x, r, p0 + o), "r={r} p={}", p0 + o);
                    }
                }
            }
        }
    }
}
