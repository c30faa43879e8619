//! Runs a [`Case`] on one variant of the kernel crate: the one registry of (op, variant)
//! that `eval` and the tests share.

use crate::case::{Case, Dtype, Op};
use origami_kernels::{ConvAlgorithm, ConvOp, Element, PoolAlgorithm, PoolOp};

/// An algorithm of the CPU backend, for either op family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// A convolution algorithm.
    Conv(ConvAlgorithm),
    /// A pooling algorithm.
    Pool(PoolAlgorithm),
}

impl Variant {
    /// The variant's name (`direct`, `unrolled`, `fold`, `prefix_sum`).
    pub fn name(self) -> &'static str {
        match self {
            Variant::Conv(a) => a.name(),
            Variant::Pool(a) => a.name(),
        }
    }

    /// Every concrete variant that applies to `op`.
    pub fn all_for(op: Op) -> Vec<Variant> {
        match op {
            Op::Conv => ConvAlgorithm::ALL.into_iter().map(Variant::Conv).collect(),
            _ => PoolAlgorithm::ALL.into_iter().map(Variant::Pool).collect(),
        }
    }

    /// Every variant name, for command-line validation.
    pub fn all_names() -> Vec<&'static str> {
        let mut v: Vec<&str> = ConvAlgorithm::ALL.iter().map(|a| a.name()).collect();
        v.extend(PoolAlgorithm::ALL.iter().map(|a| a.name()));
        v
    }
}

/// What a variant computed for a case (as `f64`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Results {
    /// Forward output.
    pub output: Vec<f64>,
    /// Input gradient, when the case has `grad_output`.
    pub grad_input: Option<Vec<f64>>,
    /// Weight gradient (conv).
    pub grad_weight: Option<Vec<f64>>,
    /// Bias gradient (conv with bias).
    pub grad_bias: Option<Vec<f64>>,
    /// Max-pooling indices.
    pub indices: Option<Vec<i64>>,
}

/// Why a variant produced no results.
#[derive(Clone, Debug, PartialEq)]
pub enum RunError {
    /// The variant cannot serve this geometry (the kernel crate's reason).
    Unsupported(String),
    /// The case is inconsistent.
    Invalid(String),
}

/// Runs forward and, when the case has `grad_output`, every backward pass.
pub fn run(case: &Case, variant: Variant) -> Result<Results, RunError> {
    match (case.dtype, case.dims) {
        (Dtype::F32, 1) => run_typed::<f32, 1>(case, variant),
        (Dtype::F32, 2) => run_typed::<f32, 2>(case, variant),
        (Dtype::F32, 3) => run_typed::<f32, 3>(case, variant),
        (Dtype::F64, 1) => run_typed::<f64, 1>(case, variant),
        (Dtype::F64, 2) => run_typed::<f64, 2>(case, variant),
        (Dtype::F64, 3) => run_typed::<f64, 3>(case, variant),
        (_, d) => Err(RunError::Invalid(format!("dims = {d}: must be 1, 2 or 3"))),
    }
}

fn cast<T: Element>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::from_f64(x)).collect()
}

fn widen<T: Element>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64()).collect()
}

fn kernel_error(e: origami_kernels::Error) -> RunError {
    match e {
        origami_kernels::Error::Unsupported { reason, .. } => RunError::Unsupported(reason.into()),
        other => RunError::Invalid(other.to_string()),
    }
}

fn run_typed<T: Element, const D: usize>(
    case: &Case,
    variant: Variant,
) -> Result<Results, RunError> {
    let x: Vec<T> = cast(&case.input.data);
    let dy: Option<Vec<T>> = case.grad_output.as_ref().map(|g| cast(&g.data));
    match (case.op, variant) {
        (Op::Conv, Variant::Conv(algo)) => {
            let conv = case.conv_geometry::<D>().map_err(RunError::Invalid)?;
            let w: Vec<T> = cast(case.weight.as_ref().map(|w| &w.data[..]).unwrap_or(&[]));
            let b: Option<Vec<T>> = case.bias.as_ref().map(|b| cast(&b.data));
            let mut y = vec![T::NAN; conv.output_len()];
            let mut scratch = vec![T::NAN; conv.scratch_len::<T>(ConvOp::Forward, algo)];
            conv.forward(algo, &x, &w, b.as_deref(), &mut y, &mut scratch)
                .map_err(kernel_error)?;
            let mut r = Results {
                output: widen(&y),
                ..Results::default()
            };
            if let Some(dy) = dy {
                let mut dx = vec![T::NAN; conv.input_len()];
                let mut scratch = vec![T::NAN; conv.scratch_len::<T>(ConvOp::BackwardInput, algo)];
                conv.backward_input(algo, &dy, &w, &mut dx, &mut scratch)
                    .map_err(kernel_error)?;
                let mut dw = vec![T::NAN; conv.weight_len()];
                let mut scratch = vec![T::NAN; conv.scratch_len::<T>(ConvOp::BackwardWeight, algo)];
                conv.backward_weight(algo, &x, &dy, &mut dw, &mut scratch)
                    .map_err(kernel_error)?;
                let mut db = vec![T::NAN; conv.bias_len()];
                conv.backward_bias(&dy, &mut db).map_err(kernel_error)?;
                r.grad_input = Some(widen(&dx));
                r.grad_weight = Some(widen(&dw));
                r.grad_bias = Some(widen(&db));
            }
            Ok(r)
        }
        (op, Variant::Pool(algo)) if op != Op::Conv => {
            let pool = case.pool_geometry::<D>().map_err(RunError::Invalid)?;
            let kind = op
                .pool_kind()
                .ok_or(RunError::Invalid("not a pool".into()))?;
            pool.supports::<T>(kind, algo).map_err(kernel_error)?;
            let mut y = vec![T::NAN; pool.output_len()];
            let mut idx = vec![usize::MAX; pool.output_len()];
            let mut scratch = vec![T::NAN; pool.scratch_len::<T>(kind, PoolOp::Forward, algo)];
            pool.forward(kind, algo, &x, &mut y, Some(&mut idx), &mut scratch)
                .map_err(kernel_error)?;
            let mut r = Results {
                output: widen(&y),
                indices: (op == Op::MaxPool).then(|| idx.iter().map(|&i| i as i64).collect()),
                ..Results::default()
            };
            if let Some(dy) = dy {
                let mut dx = vec![T::NAN; pool.input_len()];
                let mut scratch = vec![T::NAN; pool.scratch_len::<T>(kind, PoolOp::Backward, algo)];
                pool.backward(kind, algo, &dy, Some(&idx), &mut dx, &mut scratch)
                    .map_err(kernel_error)?;
                r.grad_input = Some(widen(&dx));
            }
            Ok(r)
        }
        (op, v) => Err(RunError::Invalid(format!(
            "variant {} does not apply to {}",
            v.name(),
            op.name()
        ))),
    }
}
