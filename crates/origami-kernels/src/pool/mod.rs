//! Pooling in 1, 2 and 3 spatial dimensions: max (with PyTorch's indices), average and sum,
//! forward and backward, each by every [`PoolAlgorithm`] that can serve the geometry.
//!
//! ```
//! use origami_kernels::{PoolAlgorithm, PoolKind, PoolOp, PoolSpec};
//!
//! // ResNet's stem pool: nn.MaxPool2d(3, stride=2, padding=1).
//! let pool = PoolSpec::new(1, 1, [4, 4], [3, 3]).with_stride([2, 2]).with_padding([1, 1]).build()?;
//! let x: Vec<f32> = (0..16).map(|i| i as f32).collect();
//! let mut y = vec![0.0f32; pool.output_len()];
//! let mut idx = vec![0usize; pool.output_len()];
//! let algo = PoolAlgorithm::Auto;
//! let mut scratch = vec![0.0f32; pool.scratch_len::<f32>(PoolKind::Max, PoolOp::Forward, algo)];
//! pool.forward(PoolKind::Max, algo, &x, &mut y, Some(&mut idx), &mut scratch)?;
//! assert_eq!(y, [5.0, 7.0, 13.0, 15.0]);
//! assert_eq!(idx, [5, 7, 13, 15]);
//! # Ok::<(), origami_kernels::Error>(())
//! ```
//!
//! Semantics are PyTorch's: padding never wins a max and is never summed; max pooling's ties
//! pick the first maximum in window order, and a NaN in a window makes the output NaN (the
//! last NaN's index); the average divides by the window's size in the padded input
//! (`count_include_pad`), by the taps inside the input, or by `divisor_override`. Sum pooling
//! is the average's numerator. Unlike PyTorch, a geometry in which some window reads only
//! padding (possible with dilation on tiny inputs) is refused when built.

mod direct;
mod fold;
mod geometry;
mod prefix_sum;
mod window_sum;

pub use geometry::{Pool1d, Pool2d, Pool3d, PoolNd, PoolSpec};

use crate::error::{check_len, check_scratch};
use crate::split::{Split, Units};
use crate::{Element, Error};

/// The reduction over each window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolKind {
    /// Maximum, with the index of the maximum.
    Max,
    /// Mean (see [`PoolSpec::count_include_pad`] and [`PoolSpec::divisor_override`]).
    Avg,
    /// Sum.
    Sum,
}

impl PoolKind {
    /// All kinds.
    pub const ALL: [PoolKind; 3] = [PoolKind::Max, PoolKind::Avg, PoolKind::Sum];

    /// Lower-case name, as in case files (`max_pool`, ...) without the suffix.
    pub const fn name(self) -> &'static str {
        match self {
            PoolKind::Max => "max",
            PoolKind::Avg => "avg",
            PoolKind::Sum => "sum",
        }
    }
}

/// How pooling is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PoolAlgorithm {
    /// Chooses from the geometry; see [`PoolNd::resolve`].
    Auto,
    /// The loop over each window, vectorised over outputs: cost grows with the window.
    Direct,
    /// The lecture's reshape-and-reduce; only for windows that tile the input.
    Fold,
    /// Block-restarted prefix sums and running maxima: O(1) per output for any window.
    PrefixSum,
}

impl PoolAlgorithm {
    /// Every concrete algorithm (all but `Auto`).
    pub const ALL: [PoolAlgorithm; 3] = [
        PoolAlgorithm::Direct,
        PoolAlgorithm::Fold,
        PoolAlgorithm::PrefixSum,
    ];

    /// Lower-case name, as used on command lines and in results.
    pub const fn name(self) -> &'static str {
        match self {
            PoolAlgorithm::Auto => "auto",
            PoolAlgorithm::Direct => "direct",
            PoolAlgorithm::Fold => "fold",
            PoolAlgorithm::PrefixSum => "prefix_sum",
        }
    }

    /// Parses [`PoolAlgorithm::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        [
            PoolAlgorithm::Auto,
            PoolAlgorithm::Direct,
            PoolAlgorithm::Fold,
            PoolAlgorithm::PrefixSum,
        ]
        .into_iter()
        .find(|a| a.name() == name)
    }
}

/// The two passes of a pooling layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolOp {
    /// Output (and max indices) from the input.
    Forward,
    /// Input gradient from the output gradient (and, for max, the indices).
    Backward,
}

impl<const D: usize> PoolNd<D> {
    /// Whether `algo` can serve this geometry for `kind` in element type `T`; the error says
    /// why not.
    pub fn supports<T: Element>(&self, kind: PoolKind, algo: PoolAlgorithm) -> Result<(), Error> {
        // `Auto` only ever resolves to an algorithm that serves the geometry.
        match algo {
            PoolAlgorithm::Fold => fold::check(&self.shape),
            PoolAlgorithm::PrefixSum
                if kind == PoolKind::Max
                    && self.shape.in_plane > prefix_sum::max_exact_index::<T>() =>
            {
                Err(Error::Unsupported {
                    algorithm: "prefix_sum",
                    reason: "max indices must be exact in the element type: at most 2^24 \
                             elements per channel plane for f32",
                })
            }
            _ => Ok(()),
        }
    }

    /// The concrete algorithm `algo` stands for in pass `op`. `Auto` takes `Fold` when the
    /// windows tile the input (except max's forward pass over windows of at most 9 taps, not
    /// 2 or 3 wide, on rows long enough for `Direct`'s vectors, which `Direct` takes), and otherwise
    /// `PrefixSum`, whose cost per element stays constant whatever the window — except the
    /// forward pass over windows of at most 9 taps along a single axis or strided along W,
    /// where `Direct` (one vector op per tap for a run of outputs, over rows split by the
    /// stride) is faster, and max pooling of planes too large for `PrefixSum`'s exact
    /// indices.
    ///
    /// Source of the rules: `origami-bench sweep --profile quick` on the project machine
    /// (2-core Xeon, AVX-512, f32, 2026-11-27, after PrefixSum was vectorised). Tiling:
    /// `avg_2x2` n8 c64 112x112 Fold 10.4 ms, Direct 13.5, PrefixSum 13.0 (backward Fold 8.9,
    /// PrefixSum 21.9, Direct 38.7), and after Fold's rows of 2- and 3-wide windows were
    /// vectorised (`pool_time` example, random input) Fold 3.7 ms forward and backward; max
    /// 2x2 forward with indices Fold 4.6 ms against Direct 17.0 (before: Direct 16.5, Fold
    /// 21.6, PrefixSum 22.9). Not
    /// tiling: `resnet_maxpool` 3x3/2 n8 forward PrefixSum 22.3 ms, Direct 25.6, and 12.9
    /// after Direct's rows were split by a constant stride of 2 (`pool_time`); stride-1
    /// windows n1 c8 112x112, 3x3: average PrefixSum 0.27 ms against Direct 0.85 (backward
    /// 0.31 against 3.2), max 0.63 against 1.36; `sum_window_1d` n8 c64 W4096 forward:
    /// Direct 2.6 ms against PrefixSum 5.3 at k = 3, 6.2 against 5.3 at k = 15 (Direct grows
    /// by ~0.38 ms a tap), backward PrefixSum 5.2 ms against Direct 21 already at k = 3.
    /// Since stride-1 sums go by planes in registers (`window_sum`), PrefixSum is the faster
    /// from k = 3 (`sum_window_1d` k = 3 forward 0.97 ms against Direct 1.85; avg 3x3 n1 c8
    /// 0.050 ms forward, 0.053 backward).
    pub fn resolve<T: Element>(
        &self,
        kind: PoolKind,
        op: PoolOp,
        algo: PoolAlgorithm,
    ) -> PoolAlgorithm {
        match algo {
            PoolAlgorithm::Auto => {
                let s = &self.shape;
                let taps = self.window_taps();
                let tiles = fold::check(s).is_ok();
                let wide_rows = s.axes[2].output >= T::LANES;
                let windowed_axes = s.axes.iter().filter(|a| a.kernel > 1).count();
                let exact_indices =
                    kind != PoolKind::Max || s.in_plane <= prefix_sum::max_exact_index::<T>();
                // Fold's rows are vectorised for windows 2 and 3 wide (a constant width).
                let narrow_windows = matches!(s.axes[2].kernel, 2 | 3);
                if tiles {
                    if kind == PoolKind::Max
                        && op == PoolOp::Forward
                        && wide_rows
                        && taps <= 9
                        && !narrow_windows
                    {
                        PoolAlgorithm::Direct
                    } else {
                        PoolAlgorithm::Fold
                    }
                } else if kind != PoolKind::Max && window_sum::applies::<T>(s) {
                    PoolAlgorithm::PrefixSum
                } else if !exact_indices
                    || (op == PoolOp::Forward
                        && taps <= 9
                        && (windowed_axes <= 1 || s.axes[2].stride > 1))
                {
                    PoolAlgorithm::Direct
                } else {
                    PoolAlgorithm::PrefixSum
                }
            }
            other => other,
        }
    }

    /// Elements of type `T` of scratch that `op` of `kind` needs with `algo` (0 for `Direct`
    /// and `Fold`; max's backward, the same for every algorithm, takes one channel plane per
    /// thread where the input gradient is larger than the caches).
    pub fn scratch_len<T: Element>(
        &self,
        kind: PoolKind,
        op: PoolOp,
        algo: PoolAlgorithm,
    ) -> usize {
        #[cfg(feature = "rayon")]
        {
            let parts = crate::par::parts(self.shape.planes);
            let part = self.shape.with_planes(self.shape.planes.div_ceil(parts));
            self.part_scratch_len::<T>(&part, kind, op, algo)
                .saturating_mul(parts)
        }
        #[cfg(not(feature = "rayon"))]
        {
            self.part_scratch_len::<T>(&self.shape, kind, op, algo)
        }
    }

    /// Scratch for `op` over the planes of `s` (a part of this geometry's planes).
    fn part_scratch_len<T: Element>(
        &self,
        s: &geometry::PoolShape,
        kind: PoolKind,
        op: PoolOp,
        algo: PoolAlgorithm,
    ) -> usize {
        match (self.resolve::<T>(kind, op, algo), op, kind) {
            (PoolAlgorithm::PrefixSum, PoolOp::Forward, _) => {
                prefix_sum::forward_scratch_len::<T>(s, kind)
            }
            (PoolAlgorithm::PrefixSum, PoolOp::Backward, PoolKind::Avg | PoolKind::Sum) => {
                prefix_sum::backward_scratch_len::<T>(s)
            }
            (_, PoolOp::Backward, PoolKind::Max) => max_gradient_scratch_len::<T>(&self.shape),
            _ => 0,
        }
    }

    /// Runs `f(part shape, plane range, outputs, scratch)` over parts of the planes: in
    /// parallel with the `rayon` feature (each plane is computed alike in any part), in one
    /// part without it.
    fn for_parts<T: Element, O: Split>(
        &self,
        kind: PoolKind,
        op: PoolOp,
        algo: PoolAlgorithm,
        out: O,
        scratch: &mut [T],
        f: impl Fn(&geometry::PoolShape, core::ops::Range<usize>, O, &mut [T]) + Sync,
    ) {
        let s = &self.shape;
        #[cfg(feature = "rayon")]
        {
            let mut parts = crate::par::parts(s.planes);
            // As many parts as the scratch holds (the caller may have sized it in another
            // pool).
            while parts > 1 {
                let part = s.with_planes(s.planes.div_ceil(parts));
                let per_part = self.part_scratch_len::<T>(&part, kind, op, algo);
                if per_part.saturating_mul(parts) <= scratch.len() {
                    break;
                }
                parts -= 1;
            }
            let part = s.with_planes(s.planes.div_ceil(parts));
            let per_part = self.part_scratch_len::<T>(&part, kind, op, algo);
            crate::par::run(
                s.planes,
                parts,
                out,
                scratch,
                per_part,
                |planes, out, sc| {
                    f(&s.with_planes(planes.len()), planes, out, sc);
                },
            );
        }
        #[cfg(not(feature = "rayon"))]
        {
            let _ = (kind, op, algo);
            f(s, 0..s.planes, out, scratch);
        }
    }

    /// Pools `input` into `output` (overwritten). For max, `indices` (if given) receives the
    /// flat index of each maximum within its `(n, c)` input plane, as PyTorch's
    /// `return_indices`; it is ignored for the other kinds.
    pub fn forward<T: Element>(
        &self,
        kind: PoolKind,
        algo: PoolAlgorithm,
        input: &[T],
        output: &mut [T],
        mut indices: Option<&mut [usize]>,
        scratch: &mut [T],
    ) -> Result<(), Error> {
        let s = &self.shape;
        check_len("input", s.input_len, input.len())?;
        check_len("output", s.output_len, output.len())?;
        if kind != PoolKind::Max {
            indices = None;
        }
        if let Some(ix) = indices.as_deref() {
            check_len("indices", s.output_len, ix.len())?;
        }
        self.supports::<T>(kind, algo)?;
        check_scratch(
            self.scratch_len::<T>(kind, PoolOp::Forward, algo),
            scratch.len(),
        )?;
        let resolved = self.resolve::<T>(kind, PoolOp::Forward, algo);
        let out = (
            Units {
                data: output,
                unit: s.out_plane,
            },
            indices.map(|data| Units {
                data,
                unit: s.out_plane,
            }),
        );
        self.for_parts(
            kind,
            PoolOp::Forward,
            algo,
            out,
            scratch,
            |part, planes, (y, ix), sc| {
                let x = &input[planes.start * s.in_plane..planes.end * s.in_plane];
                let ix = ix.map(|ix| ix.data);
                match resolved {
                    PoolAlgorithm::Fold => fold::forward(part, kind, x, y.data, ix),
                    PoolAlgorithm::PrefixSum => prefix_sum::forward(part, kind, x, y.data, ix, sc),
                    _ => direct::forward(part, kind, x, y.data, ix),
                }
            },
        );
        Ok(())
    }

    /// The input gradient (overwritten) from the output gradient. Max routes each gradient to
    /// the input its index names (`indices` from [`PoolNd::forward`], required); average and
    /// sum spread it over the window. An index outside its channel plane is an
    /// [`Error::InvalidValue`] naming the first such index; the channel planes before it have
    /// then been written already (each plane's indices are checked as it is routed).
    pub fn backward<T: Element>(
        &self,
        kind: PoolKind,
        algo: PoolAlgorithm,
        grad_output: &[T],
        indices: Option<&[usize]>,
        grad_input: &mut [T],
        scratch: &mut [T],
    ) -> Result<(), Error> {
        let s = &self.shape;
        check_len("grad_output", s.output_len, grad_output.len())?;
        check_len("grad_input", s.input_len, grad_input.len())?;
        self.supports::<T>(kind, algo)?;
        check_scratch(
            self.scratch_len::<T>(kind, PoolOp::Backward, algo),
            scratch.len(),
        )?;
        if kind == PoolKind::Max {
            let indices = indices.unwrap_or(&[]);
            check_len("indices", s.output_len, indices.len())?;
            return route_max_gradient(s, grad_output, indices, grad_input, scratch);
        }
        let resolved = self.resolve::<T>(kind, PoolOp::Backward, algo);
        let out = Units {
            data: grad_input,
            unit: s.in_plane,
        };
        self.for_parts(
            kind,
            PoolOp::Backward,
            algo,
            out,
            scratch,
            |part, planes, dx, sc| {
                let dy = &grad_output[planes.start * s.out_plane..planes.end * s.out_plane];
                match resolved {
                    PoolAlgorithm::Fold => fold::backward(part, kind, dy, dx.data),
                    PoolAlgorithm::PrefixSum => prefix_sum::backward(part, kind, dy, dx.data, sc),
                    _ => direct::backward(part, kind, dy, dx.data),
                }
            },
        );
        Ok(())
    }
}

/// Scratch of max pooling's backward: one channel plane where the input gradient is written
/// past the caches ([`crate::element::streams`]), none otherwise.
fn max_gradient_scratch_len<T: Element>(s: &geometry::PoolShape) -> usize {
    if crate::element::streams::<T>(s.input_len) {
        s.in_plane
    } else {
        0
    }
}

/// Max pooling's backward, the same for every algorithm: `dx[plane][indices[o]] += dy[o]`.
/// Indices come from the caller, so each plane's are checked against the plane right before
/// that plane is written, while they are in cache: a separate pass over all of them first
/// would read them from memory twice (8 bytes an output, the largest stream of this pass).
/// On a bad index the planes before it are written and the rest are not; the error names
/// the first bad index in memory order, whatever the thread count.
///
/// With a plane of `scratch` (a large input gradient), each plane is cleared and routed there,
/// where it stays in cache from plane to plane, and then copied out with streaming stores:
/// routed in place, every line of `dx` was read from memory before being cleared, and written
/// back later: 1.6x the bytes (max 3x3/2/1 on n8 c64 112x112, Zen 3, median of 5 alternated
/// runs: 6.6 -> 4.3 ms on one thread, 3.5 -> 3.0 on two).
fn route_max_gradient<T: Element>(
    s: &geometry::PoolShape,
    dy: &[T],
    indices: &[usize],
    dx: &mut [T],
    scratch: &mut [T],
) -> Result<(), Error> {
    // The position of the first bad index in `planes`, or `None` once they are all routed.
    let route = |planes: core::ops::Range<usize>, dx: &mut [T], buf: &mut [T]| -> Option<usize> {
        let dy = &dy[planes.start * s.out_plane..planes.end * s.out_plane];
        let ix = &indices[planes.start * s.out_plane..planes.end * s.out_plane];
        let streamed = buf.len() >= s.in_plane;
        for (p, ((dx_p, dy_p), ix_p)) in dx
            .chunks_exact_mut(s.in_plane)
            .zip(dy.chunks_exact(s.out_plane))
            .zip(ix.chunks_exact(s.out_plane))
            .enumerate()
        {
            // A max over the plane's indices (vectorised), then the position if one is bad.
            if ix_p.iter().fold(0, |m, &i| m.max(i)) >= s.in_plane {
                let at = ix_p.iter().position(|&i| i >= s.in_plane).unwrap_or(0);
                T::end_streaming();
                return Some((planes.start + p) * s.out_plane + at);
            }
            // Cleared plane by plane, so the plane is still in cache when the gradients land.
            let plane = if streamed {
                &mut buf[..s.in_plane]
            } else {
                &mut *dx_p
            };
            plane.fill(T::ZERO);
            for (&g, &i) in dy_p.iter().zip(ix_p) {
                plane[i] += g;
            }
            if streamed {
                crate::element::copy_streaming(dx_p, &buf[..s.in_plane]);
            }
        }
        T::end_streaming();
        None
    };
    #[cfg(feature = "rayon")]
    let first_bad = {
        use core::sync::atomic::{AtomicUsize, Ordering};
        // Each part stops at its first bad plane; the part holding the first bad index of all
        // finds it, so the minimum is the same for any split.
        let first_bad = AtomicUsize::new(usize::MAX);
        let out = Units {
            data: dx,
            unit: s.in_plane,
        };
        // With a plane of scratch, as many parts as the scratch holds planes; routed in place
        // without one.
        let (parts, per_part) = match scratch.len() / s.in_plane.max(1) {
            0 => (crate::par::parts(s.planes), 0),
            held => (crate::par::parts(s.planes).min(held), s.in_plane),
        };
        crate::par::run(
            s.planes,
            parts,
            out,
            scratch,
            per_part,
            |planes, dx, buf| {
                if let Some(at) = route(planes, dx.data, buf) {
                    first_bad.fetch_min(at, Ordering::Relaxed);
                }
            },
        );
        Some(first_bad.into_inner()).filter(|&at| at != usize::MAX)
    };
    #[cfg(not(feature = "rayon"))]
    let first_bad = route(0..s.planes, dx, scratch);
    match first_bad {
        Some(at) => Err(Error::InvalidValue {
            name: "indices",
            dim: None,
            value: indices[at],
            reason: "an index lies outside the input plane",
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Routing through a plane of scratch (and streaming it out) writes what routing in place
    /// writes, bit for bit, and a bad index stops both at the same plane with the same error.
    #[test]
    fn max_gradient_through_scratch_matches_in_place() {
        let pool = PoolSpec::new(2, 3, [7, 9], [3, 3])
            .with_stride([2, 2])
            .with_padding([1, 1])
            .build()
            .unwrap();
        let s = &pool.shape;
        let x: Vec<f32> = (0..pool.input_len())
            .map(|i| ((i * 37) % 101) as f32 - 50.0)
            .collect();
        let mut y = vec![0.0f32; pool.output_len()];
        let mut idx = vec![0usize; pool.output_len()];
        pool.forward(
            PoolKind::Max,
            PoolAlgorithm::Direct,
            &x,
            &mut y,
            Some(&mut idx),
            &mut [],
        )
        .unwrap();
        let dy: Vec<f32> = (0..pool.output_len()).map(|i| i as f32 * 0.25).collect();
        let route = |idx: &[usize], scratch: &mut [f32]| {
            let mut dx = vec![f32::NAN; pool.input_len()];
            let r = route_max_gradient(s, &dy, idx, &mut dx, scratch);
            (r, dx)
        };
        let (r, in_place) = route(&idx, &mut []);
        r.unwrap();
        // Offsets of one element move the planes off the 64-byte boundaries.
        for skew in [0, 1] {
            let mut scratch = vec![f32::NAN; skew + s.in_plane];
            let (r, streamed) = route(&idx, &mut scratch[skew..]);
            r.unwrap();
            assert_eq!(
                streamed.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                in_place.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
        idx[4 * s.out_plane + 3] = s.in_plane;
        let (bad_in_place, dx_in_place) = route(&idx, &mut []);
        let mut scratch = vec![0.0f32; s.in_plane];
        let (bad_streamed, dx_streamed) = route(&idx, &mut scratch);
        assert_eq!(bad_in_place, bad_streamed);
        assert!(bad_streamed.is_err());
        let written = 4 * s.in_plane;
        assert_eq!(dx_in_place[..written], dx_streamed[..written]);
    }
}
