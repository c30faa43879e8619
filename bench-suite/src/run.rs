//! Runs a [`Case`] on one variant of the kernel crate or the GPU crate: the one registry
//! of (backend, op, variant) that `eval`, the sweep and the tests share.

use crate::case::{Case, Dtype, Op};
use origami_gpu::{Gpu, GpuBuffer, GpuConv, GpuConvAlgorithm, GpuError, GpuPool};
use origami_kernels::{ConvAlgorithm, ConvNd, ConvOp, Element, PoolAlgorithm, PoolNd, PoolOp};

/// An algorithm of a backend, for either op family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// A CPU convolution algorithm.
    Conv(ConvAlgorithm),
    /// A CPU pooling algorithm.
    Pool(PoolAlgorithm),
    /// A GPU convolution algorithm.
    GpuConv(GpuConvAlgorithm),
    /// A GPU pooling algorithm (`direct` or `prefix_sum`).
    GpuPool(PoolAlgorithm),
}

/// The GPU's pooling algorithms.
pub const GPU_POOL_ALGORITHMS: [PoolAlgorithm; 2] =
    [PoolAlgorithm::Direct, PoolAlgorithm::PrefixSum];

/// Which backends a command runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backends {
    /// The CPU kernels.
    Cpu,
    /// The GPU crate.
    Gpu,
    /// Both.
    All,
}

impl Backends {
    /// Whether the CPU runs.
    pub fn cpu(self) -> bool {
        self != Backends::Gpu
    }

    /// Whether the GPU runs.
    pub fn gpu(self) -> bool {
        self != Backends::Cpu
    }
}

impl Variant {
    /// The algorithm's name (`direct`, `unrolled`, `fold`, `prefix_sum`, `tiled`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Variant::Conv(a) => a.name(),
            Variant::Pool(a) | Variant::GpuPool(a) => a.name(),
            Variant::GpuConv(a) => a.name(),
        }
    }

    /// `cpu` or `gpu`.
    pub fn backend(self) -> &'static str {
        match self {
            Variant::Conv(_) | Variant::Pool(_) => "cpu",
            Variant::GpuConv(_) | Variant::GpuPool(_) => "gpu",
        }
    }

    /// The name with the backend for GPU variants (`direct`, `gpu:tiled`, `cuda:tiled`),
    /// for reports.
    pub fn label(self) -> String {
        match self.backend() {
            "cpu" => self.name().to_owned(),
            _ => format!("{}:{}", crate::gpu::backend_label(), self.name()),
        }
    }

    /// Whether the variant serves `op`.
    pub fn applies_to(self, op: Op) -> bool {
        match self {
            Variant::Conv(_) | Variant::GpuConv(_) => op == Op::Conv,
            Variant::Pool(_) | Variant::GpuPool(_) => op != Op::Conv,
        }
    }

    /// Every concrete CPU variant that applies to `op`.
    pub fn all_for(op: Op) -> Vec<Variant> {
        Self::for_backends(op, Backends::Cpu)
    }

    /// Every concrete variant of `backends` that applies to `op`, CPU first.
    pub fn for_backends(op: Op, backends: Backends) -> Vec<Variant> {
        let mut v = Vec::new();
        if backends.cpu() {
            match op {
                Op::Conv => v.extend(ConvAlgorithm::ALL.into_iter().map(Variant::Conv)),
                _ => v.extend(PoolAlgorithm::ALL.into_iter().map(Variant::Pool)),
            }
        }
        if backends.gpu() {
            match op {
                Op::Conv => v.extend(GpuConvAlgorithm::ALL.into_iter().map(Variant::GpuConv)),
                _ => v.extend(GPU_POOL_ALGORITHMS.into_iter().map(Variant::GpuPool)),
            }
        }
        v
    }

    /// Every variant name, for command-line validation.
    pub fn all_names() -> Vec<&'static str> {
        let mut v: Vec<&str> = ConvAlgorithm::ALL.iter().map(|a| a.name()).collect();
        v.extend(PoolAlgorithm::ALL.iter().map(|a| a.name()));
        v.extend(GpuConvAlgorithm::ALL.iter().map(|a| a.name()));
        v.sort_unstable();
        v.dedup();
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
    if variant.backend() == "gpu" {
        return run_gpu(case, variant);
    }
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

/// A GPU error as a run error: a refused algorithm is `Unsupported`, anything else
/// `Invalid` (which `eval` counts as a failure).
pub fn gpu_error(e: GpuError) -> RunError {
    match e {
        GpuError::Kernel(k) => kernel_error(k),
        other => RunError::Invalid(other.to_string()),
    }
}

fn run_gpu(case: &Case, variant: Variant) -> Result<Results, RunError> {
    if case.dtype != Dtype::F32 {
        return Err(RunError::Unsupported(
            "the GPU backend computes in f32".into(),
        ));
    }
    let gpu = crate::gpu::shared().map_err(RunError::Invalid)?;
    match case.dims {
        1 => run_gpu_dims::<1>(gpu, case, variant),
        2 => run_gpu_dims::<2>(gpu, case, variant),
        3 => run_gpu_dims::<3>(gpu, case, variant),
        d => Err(RunError::Invalid(format!("dims = {d}: must be 1, 2 or 3"))),
    }
}

fn upload(gpu: &Gpu, v: &[f64]) -> Result<GpuBuffer, RunError> {
    gpu.upload(&cast::<f32>(v)).map_err(gpu_error)
}

fn download(gpu: &Gpu, b: &GpuBuffer) -> Result<Vec<f64>, RunError> {
    Ok(widen(&gpu.read(b).map_err(gpu_error)?))
}

fn run_gpu_dims<const D: usize>(
    gpu: &Gpu,
    case: &Case,
    variant: Variant,
) -> Result<Results, RunError> {
    let x = upload(gpu, &case.input.data)?;
    let dy = match &case.grad_output {
        Some(g) => Some(upload(gpu, &g.data)?),
        None => None,
    };
    match (case.op, variant) {
        (Op::Conv, Variant::GpuConv(algo)) => {
            let geometry: ConvNd<D> = case.conv_geometry::<D>().map_err(RunError::Invalid)?;
            let conv = GpuConv::new(gpu, geometry, algo).map_err(gpu_error)?;
            let w = upload(
                gpu,
                case.weight.as_ref().map(|w| &w.data[..]).unwrap_or(&[]),
            )?;
            let b = match &case.bias {
                Some(b) => Some(upload(gpu, &b.data)?),
                None => None,
            };
            let y = gpu.zeros(geometry.output_len()).map_err(gpu_error)?;
            gpu.run(|rec| conv.forward(rec, &x, &w, b.as_ref(), &y))
                .map_err(gpu_error)?;
            let mut r = Results {
                output: download(gpu, &y)?,
                ..Results::default()
            };
            if let Some(dy) = dy {
                let dx = gpu.zeros(geometry.input_len()).map_err(gpu_error)?;
                let dw = gpu.zeros(geometry.weight_len()).map_err(gpu_error)?;
                let db = gpu.zeros(geometry.bias_len()).map_err(gpu_error)?;
                gpu.run(|rec| {
                    conv.backward_input(rec, &dy, &w, &dx)?;
                    conv.backward_weight(rec, &x, &dy, &dw)?;
                    conv.backward_bias(rec, &dy, &db)
                })
                .map_err(gpu_error)?;
                r.grad_input = Some(download(gpu, &dx)?);
                r.grad_weight = Some(download(gpu, &dw)?);
                r.grad_bias = Some(download(gpu, &db)?);
            }
            Ok(r)
        }
        (op, Variant::GpuPool(algo)) if op != Op::Conv => {
            let geometry: PoolNd<D> = case.pool_geometry::<D>().map_err(RunError::Invalid)?;
            let kind = op
                .pool_kind()
                .ok_or(RunError::Invalid("not a pool".into()))?;
            let pool = GpuPool::new(gpu, geometry, kind, algo).map_err(gpu_error)?;
            let y = gpu.zeros(geometry.output_len()).map_err(gpu_error)?;
            let ix = gpu.zeros::<u32>(geometry.output_len()).map_err(gpu_error)?;
            gpu.run(|rec| pool.forward(rec, &x, &y, Some(&ix)))
                .map_err(gpu_error)?;
            let mut r = Results {
                output: download(gpu, &y)?,
                ..Results::default()
            };
            if op == Op::MaxPool {
                let got = gpu.read(&ix).map_err(gpu_error)?;
                r.indices = Some(got.into_iter().map(i64::from).collect());
            }
            if let Some(dy) = dy {
                let dx = gpu.zeros(geometry.input_len()).map_err(gpu_error)?;
                gpu.run(|rec| pool.backward(rec, &dy, Some(&ix), &dx))
                    .map_err(gpu_error)?;
                r.grad_input = Some(download(gpu, &dx)?);
            }
            Ok(r)
        }
        (op, v) => Err(RunError::Invalid(format!(
            "variant {} does not apply to {}",
            v.label(),
            op.name()
        ))),
    }
}
