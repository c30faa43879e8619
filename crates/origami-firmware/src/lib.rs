//! Runs golden cases through every algorithm of the kernel crate without a heap: all working
//! memory is cut from one caller-provided arena per element type, sized at build time from
//! the kernel crate's `scratch_len` queries (see `build.rs`).
#![no_std]

use origami_kernels::{
    ConvAlgorithm, ConvNd, ConvOp, ConvSpec, Element, PoolAlgorithm, PoolKind, PoolNd, PoolOp,
    PoolSpec,
};

include!(concat!(env!("OUT_DIR"), "/cases.rs"));

/// One embedded golden case (`origami-cases/1`), values as `f64` bit patterns.
pub struct GoldenCase {
    /// `file/case`.
    pub name: &'static str,
    /// `conv`, `max_pool`, `avg_pool` or `sum_pool`.
    pub op: &'static str,
    /// Spatial dimensions.
    pub dims: usize,
    /// Whether the case is `float64` (else `float32`).
    pub f64: bool,
    /// Parameters, as in the case file.
    pub stride: &'static [usize],
    /// Dilation.
    pub dilation: &'static [usize],
    /// Convolution padding before.
    pub padding_lo: &'static [usize],
    /// Convolution padding after.
    pub padding_hi: &'static [usize],
    /// Groups.
    pub groups: usize,
    /// Pooling window.
    pub kernel_size: &'static [usize],
    /// Pooling padding.
    pub padding: &'static [usize],
    /// Pooling output rounding.
    pub ceil_mode: bool,
    /// Average divisor counts padding.
    pub count_include_pad: bool,
    /// Average divisor override (0: none).
    pub divisor_override: usize,
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// `[N, C, *spatial]`.
    pub input_shape: &'static [usize],
    /// `[K, C / groups, *kernel]` (conv).
    pub weight_shape: &'static [usize],
    /// Given input.
    pub input: &'static [u64],
    /// Given weight (conv).
    pub weight: Option<&'static [u64]>,
    /// Given bias (conv).
    pub bias: Option<&'static [u64]>,
    /// Given output gradient.
    pub grad_output: Option<&'static [u64]>,
    /// Expected output.
    pub output: &'static [u64],
    /// Expected input gradient.
    pub grad_input: Option<&'static [u64]>,
    /// Expected weight gradient.
    pub grad_weight: Option<&'static [u64]>,
    /// Expected bias gradient.
    pub grad_bias: Option<&'static [u64]>,
    /// Expected max-pooling indices.
    pub indices: Option<&'static [usize]>,
}

/// What went wrong in a case, without formatting floats (which would pull ~25 KB of code
/// into the firmware).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The kernel returned an error.
    Kernel,
    /// The geometry was refused.
    Geometry,
    /// A result is off: which dataset, and the error as thousandths of the bound.
    Mismatch(&'static str, u32),
    /// Indices differ.
    Indices,
    /// The arena is too small (a build-script bug).
    Arena,
}

/// Counts of one case's checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Variant x dataset comparisons that passed.
    pub passed: u32,
    /// Variants the geometry does not support (skipped, as `eval` does).
    pub skipped: u32,
}

fn take<'a, T>(arena: &mut &'a mut [T], n: usize) -> Result<&'a mut [T], Failure> {
    if arena.len() < n {
        return Err(Failure::Arena);
    }
    let (head, tail) = core::mem::take(arena).split_at_mut(n);
    *arena = tail;
    Ok(head)
}

fn load<'a, T: Element>(arena: &mut &'a mut [T], bits: &[u64]) -> Result<&'a mut [T], Failure> {
    let buf = take(arena, bits.len())?;
    for (b, &x) in buf.iter_mut().zip(bits) {
        *b = T::from_f64(f64::from_bits(x));
    }
    Ok(buf)
}

/// The format's rule: `max|got - expected| <= atol + rtol * max|expected|`, NaN where
/// expected.
fn compare<T: Element>(
    what: &'static str,
    got: &[T],
    expected: &[u64],
    case: &GoldenCase,
) -> Result<(), Failure> {
    let mut scale = 0.0f64;
    for &e in expected {
        let e = f64::from_bits(e);
        if e.is_finite() && e.abs() > scale {
            scale = e.abs();
        }
    }
    let bound = case.atol + case.rtol * scale;
    let mut worst = 0.0f64;
    for (g, &e) in got.iter().zip(expected) {
        let (g, e) = (g.to_f64(), f64::from_bits(e));
        if g.is_nan() != e.is_nan() {
            return Err(Failure::Mismatch(what, u32::MAX));
        }
        if !g.is_nan() && g != e {
            let d = if (g - e).is_nan() {
                f64::INFINITY
            } else {
                (g - e).abs()
            };
            worst = worst.max(d);
        }
    }
    if worst <= bound {
        Ok(())
    } else {
        let ratio = worst / bound * 1000.0;
        Err(Failure::Mismatch(
            what,
            if ratio < u32::MAX as f64 {
                ratio as u32
            } else {
                u32::MAX
            },
        ))
    }
}

fn arr<const D: usize>(v: &[usize]) -> Result<[usize; D], Failure> {
    v.try_into().map_err(|_| Failure::Geometry)
}

fn conv_geometry<const D: usize>(c: &GoldenCase) -> Result<ConvNd<D>, Failure> {
    let x = c.input_shape;
    let w = c.weight_shape;
    if x.len() != D + 2 || w.len() != D + 2 {
        return Err(Failure::Geometry);
    }
    ConvSpec {
        batch: x[0],
        in_channels: x[1],
        out_channels: w[0],
        input_size: arr(&x[2..])?,
        kernel_size: arr(&w[2..])?,
        stride: arr(c.stride)?,
        padding_lo: arr(c.padding_lo)?,
        padding_hi: arr(c.padding_hi)?,
        dilation: arr(c.dilation)?,
        groups: c.groups,
    }
    .build()
    .map_err(|_| Failure::Geometry)
}

fn pool_geometry<const D: usize>(c: &GoldenCase) -> Result<PoolNd<D>, Failure> {
    let x = c.input_shape;
    if x.len() != D + 2 {
        return Err(Failure::Geometry);
    }
    PoolSpec {
        batch: x[0],
        channels: x[1],
        input_size: arr(&x[2..])?,
        kernel_size: arr(c.kernel_size)?,
        stride: arr(c.stride)?,
        padding: arr(c.padding)?,
        dilation: arr(c.dilation)?,
        ceil_mode: c.ceil_mode,
        count_include_pad: c.count_include_pad,
        divisor_override: c.divisor_override,
    }
    .build()
    .map_err(|_| Failure::Geometry)
}

fn run_conv<T: Element, const D: usize>(
    c: &GoldenCase,
    mut arena: &mut [T],
    tally: &mut Tally,
) -> Result<(), Failure> {
    let conv = conv_geometry::<D>(c)?;
    let a = &mut arena;
    let x = load::<T>(a, c.input)?;
    let w = load::<T>(a, c.weight.ok_or(Failure::Geometry)?)?;
    let b = match c.bias {
        Some(bits) => Some(&*load::<T>(a, bits)?),
        None => None,
    };
    let dy = match c.grad_output {
        Some(bits) => Some(&*load::<T>(a, bits)?),
        None => None,
    };
    let y = take(a, conv.output_len())?;
    let dx = take(a, conv.input_len())?;
    let dw = take(a, conv.weight_len())?;
    let db = take(a, conv.bias_len())?;
    let scratch = core::mem::take(a);
    for algo in [
        ConvAlgorithm::Auto,
        ConvAlgorithm::Direct,
        ConvAlgorithm::Unrolled,
    ] {
        let need = conv.scratch_len::<T>(ConvOp::Forward, algo);
        let s = scratch.get_mut(..need).ok_or(Failure::Arena)?;
        conv.forward(algo, x, w, b, y, s)
            .map_err(|_| Failure::Kernel)?;
        compare("output", y, c.output, c)?;
        tally.passed += 1;
        let Some(dy) = dy else { continue };
        if let Some(expected) = c.grad_input {
            let need = conv.scratch_len::<T>(ConvOp::BackwardInput, algo);
            let s = scratch.get_mut(..need).ok_or(Failure::Arena)?;
            conv.backward_input(algo, dy, w, dx, s)
                .map_err(|_| Failure::Kernel)?;
            compare("grad_input", dx, expected, c)?;
            tally.passed += 1;
        }
        if let Some(expected) = c.grad_weight {
            let need = conv.scratch_len::<T>(ConvOp::BackwardWeight, algo);
            let s = scratch.get_mut(..need).ok_or(Failure::Arena)?;
            conv.backward_weight(algo, x, dy, dw, s)
                .map_err(|_| Failure::Kernel)?;
            compare("grad_weight", dw, expected, c)?;
            tally.passed += 1;
        }
        if let Some(expected) = c.grad_bias {
            conv.backward_bias(dy, db).map_err(|_| Failure::Kernel)?;
            compare("grad_bias", db, expected, c)?;
            tally.passed += 1;
        }
    }
    Ok(())
}

fn run_pool<T: Element, const D: usize>(
    c: &GoldenCase,
    kind: PoolKind,
    mut arena: &mut [T],
    indices: &mut [usize],
    tally: &mut Tally,
) -> Result<(), Failure> {
    let pool = pool_geometry::<D>(c)?;
    let a = &mut arena;
    let x = load::<T>(a, c.input)?;
    let dy = match c.grad_output {
        Some(bits) => Some(&*load::<T>(a, bits)?),
        None => None,
    };
    let y = take(a, pool.output_len())?;
    let dx = take(a, pool.input_len())?;
    let scratch = core::mem::take(a);
    let idx = indices.get_mut(..pool.output_len()).ok_or(Failure::Arena)?;
    for algo in [
        PoolAlgorithm::Auto,
        PoolAlgorithm::Direct,
        PoolAlgorithm::Fold,
        PoolAlgorithm::PrefixSum,
    ] {
        if pool.supports::<T>(kind, algo).is_err() {
            tally.skipped += 1;
            continue;
        }
        let need = pool.scratch_len::<T>(kind, PoolOp::Forward, algo);
        let s = scratch.get_mut(..need).ok_or(Failure::Arena)?;
        pool.forward(kind, algo, x, y, Some(&mut *idx), s)
            .map_err(|_| Failure::Kernel)?;
        compare("output", y, c.output, c)?;
        tally.passed += 1;
        if let (PoolKind::Max, Some(expected)) = (kind, c.indices) {
            if idx != expected {
                return Err(Failure::Indices);
            }
            tally.passed += 1;
        }
        if let (Some(dy), Some(expected)) = (dy, c.grad_input) {
            let need = pool.scratch_len::<T>(kind, PoolOp::Backward, algo);
            let s = scratch.get_mut(..need).ok_or(Failure::Arena)?;
            pool.backward(kind, algo, dy, Some(&*idx), dx, s)
                .map_err(|_| Failure::Kernel)?;
            compare("grad_input", dx, expected, c)?;
            tally.passed += 1;
        }
    }
    Ok(())
}

fn run_typed<T: Element>(
    c: &GoldenCase,
    arena: &mut [T],
    indices: &mut [usize],
    tally: &mut Tally,
) -> Result<(), Failure> {
    let kind = match c.op {
        "max_pool" => Some(PoolKind::Max),
        "avg_pool" => Some(PoolKind::Avg),
        "sum_pool" => Some(PoolKind::Sum),
        _ => None,
    };
    match (kind, c.dims) {
        (None, 1) => run_conv::<T, 1>(c, arena, tally),
        (None, 2) => run_conv::<T, 2>(c, arena, tally),
        (None, 3) => run_conv::<T, 3>(c, arena, tally),
        (Some(k), 1) => run_pool::<T, 1>(c, k, arena, indices, tally),
        (Some(k), 2) => run_pool::<T, 2>(c, k, arena, indices, tally),
        (Some(k), 3) => run_pool::<T, 3>(c, k, arena, indices, tally),
        _ => Err(Failure::Geometry),
    }
}

/// Runs one case through every algorithm (forward and every gradient the case has).
pub fn run_case(
    c: &GoldenCase,
    arena32: &mut [f32],
    arena64: &mut [f64],
    indices: &mut [usize],
) -> Result<Tally, Failure> {
    let mut tally = Tally::default();
    if c.f64 {
        run_typed::<f64>(c, arena64, indices, &mut tally)?;
    } else {
        run_typed::<f32>(c, arena32, indices, &mut tally)?;
    }
    Ok(tally)
}
