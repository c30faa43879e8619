//! Test cases of the `origami-cases/1` format (see the case-file documentation): the op, its
//! parameters, the given tensors and the expected results, independent of how they are
//! stored. [`crate::case_file`] reads and writes them as HDF5.

use origami_kernels::{ConvNd, ConvSpec, PoolKind, PoolNd, PoolSpec};

/// The operation a case checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Convolution (forward and gradients).
    Conv,
    /// Max pooling, optionally with indices.
    MaxPool,
    /// Average pooling.
    AvgPool,
    /// Sum pooling.
    SumPool,
}

impl Op {
    /// Every op.
    pub const ALL: [Op; 4] = [Op::Conv, Op::MaxPool, Op::AvgPool, Op::SumPool];

    /// The name used in case files: `conv`, `max_pool`, `avg_pool`, `sum_pool`.
    pub fn name(self) -> &'static str {
        match self {
            Op::Conv => "conv",
            Op::MaxPool => "max_pool",
            Op::AvgPool => "avg_pool",
            Op::SumPool => "sum_pool",
        }
    }

    /// Parses [`Op::name`].
    pub fn parse(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == name)
    }

    /// The pooling kind, for the pooling ops.
    pub fn pool_kind(self) -> Option<PoolKind> {
        match self {
            Op::Conv => None,
            Op::MaxPool => Some(PoolKind::Max),
            Op::AvgPool => Some(PoolKind::Avg),
            Op::SumPool => Some(PoolKind::Sum),
        }
    }
}

/// The floating-point type of a case's tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// `float32`.
    F32,
    /// `float64`.
    F64,
}

impl Dtype {
    /// `float32` or `float64`.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
        }
    }

    /// The default tolerances `(rtol, atol)` of the format.
    pub fn default_tolerances(self) -> (f64, f64) {
        match self {
            Dtype::F32 => (1e-4, 1e-6),
            Dtype::F64 => (1e-10, 1e-12),
        }
    }
}

/// A C-order tensor. Values are held as `f64`, which holds every `f32` exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Extents, outermost first.
    pub shape: Vec<usize>,
    /// Elements in C order.
    pub data: Vec<f64>,
}

impl Tensor {
    /// A tensor; the caller guarantees `data.len()` is the product of `shape`.
    pub fn new(shape: Vec<usize>, data: Vec<f64>) -> Self {
        Tensor { shape, data }
    }
}

/// The parameters of a case (those that do not apply to its op keep their defaults).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// Stride per spatial dimension.
    pub stride: Vec<usize>,
    /// Dilation per spatial dimension (conv, max pool).
    pub dilation: Vec<usize>,
    /// Zero padding before each dimension (conv).
    pub padding_lo: Vec<usize>,
    /// Zero padding after each dimension (conv).
    pub padding_hi: Vec<usize>,
    /// Channel groups (conv).
    pub groups: usize,
    /// Window size (pools).
    pub kernel_size: Vec<usize>,
    /// Symmetric padding (pools).
    pub padding: Vec<usize>,
    /// Output size rounding (pools).
    pub ceil_mode: bool,
    /// Whether padding counts in the average's divisor.
    pub count_include_pad: bool,
    /// Divisor of the average, 0 for none.
    pub divisor_override: usize,
}

impl Params {
    /// The convolution geometry of these parameters for the given sizes (the case format's
    /// and the sweep families' one way to build it).
    pub fn conv<const D: usize>(
        &self,
        batch: usize,
        in_channels: usize,
        out_channels: usize,
        input_size: &[usize],
        kernel_size: &[usize],
    ) -> Result<ConvNd<D>, String> {
        ConvSpec {
            batch,
            in_channels,
            out_channels,
            input_size: arr(input_size, "input shape")?,
            kernel_size: arr(kernel_size, "weight shape")?,
            stride: arr(&self.stride, "stride")?,
            padding_lo: arr(&self.padding_lo, "padding_lo")?,
            padding_hi: arr(&self.padding_hi, "padding_hi")?,
            dilation: arr(&self.dilation, "dilation")?,
            groups: self.groups,
        }
        .build()
        .map_err(|e| e.to_string())
    }

    /// The pooling geometry of these parameters for the given sizes.
    pub fn pool<const D: usize>(
        &self,
        batch: usize,
        channels: usize,
        input_size: &[usize],
    ) -> Result<PoolNd<D>, String> {
        PoolSpec {
            batch,
            channels,
            input_size: arr(input_size, "input shape")?,
            kernel_size: arr(&self.kernel_size, "kernel_size")?,
            stride: arr(&self.stride, "stride")?,
            padding: arr(&self.padding, "padding")?,
            dilation: arr(&self.dilation, "dilation")?,
            ceil_mode: self.ceil_mode,
            count_include_pad: self.count_include_pad,
            divisor_override: self.divisor_override,
        }
        .build()
        .map_err(|e| e.to_string())
    }

    /// Defaults for `dims` spatial dimensions.
    pub fn defaults(dims: usize) -> Self {
        Params {
            stride: vec![1; dims],
            dilation: vec![1; dims],
            padding_lo: vec![0; dims],
            padding_hi: vec![0; dims],
            groups: 1,
            kernel_size: vec![1; dims],
            padding: vec![0; dims],
            ceil_mode: false,
            count_include_pad: true,
            divisor_override: 0,
        }
    }
}

/// One test case.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    /// The group name in the file.
    pub name: String,
    /// What it checks.
    pub op: Op,
    /// Spatial dimensions: 1, 2 or 3.
    pub dims: usize,
    /// Element type of every tensor.
    pub dtype: Dtype,
    /// Op parameters.
    pub params: Params,
    /// Relative tolerance, if the case sets one.
    pub rtol: Option<f64>,
    /// Absolute tolerance, if the case sets one.
    pub atol: Option<f64>,
    /// `[N, C, *spatial]`.
    pub input: Tensor,
    /// `[K, C / groups, *kernel]` (conv).
    pub weight: Option<Tensor>,
    /// `[K]` (conv, optional).
    pub bias: Option<Tensor>,
    /// Gradient of the loss with respect to the output (needed for gradients).
    pub grad_output: Option<Tensor>,
    /// Expected output.
    pub output: Tensor,
    /// Expected input gradient.
    pub grad_input: Option<Tensor>,
    /// Expected weight gradient (conv).
    pub grad_weight: Option<Tensor>,
    /// Expected bias gradient (conv with bias).
    pub grad_bias: Option<Tensor>,
    /// Expected max-pooling indices.
    pub indices: Option<Vec<i64>>,
}

/// Fixed-size array from a parameter vector of length `D`.
pub(crate) fn arr<const D: usize>(v: &[usize], name: &str) -> Result<[usize; D], String> {
    v.try_into()
        .map_err(|_| format!("attribute {name} has {} values, expected {D}", v.len()))
}

impl Case {
    /// The convolution geometry the case describes.
    pub fn conv_geometry<const D: usize>(&self) -> Result<ConvNd<D>, String> {
        let weight = self
            .weight
            .as_ref()
            .ok_or("conv case without dataset weight")?;
        let x = &self.input.shape;
        if x.len() != D + 2 || weight.shape.len() != D + 2 {
            return Err(format!(
                "input and weight must have {} dimensions, got {:?} and {:?}",
                D + 2,
                x,
                weight.shape
            ));
        }
        let p = &self.params;
        let conv = p
            .conv::<D>(x[0], x[1], weight.shape[0], &x[2..], &weight.shape[2..])
            .map_err(|e| format!("invalid geometry: {e}"))?;
        if p.groups > 0 && weight.shape[1] * p.groups != x[1] {
            return Err(format!(
                "weight has shape {:?}: dimension 1 must be in_channels / groups = {}",
                weight.shape,
                x[1] / p.groups.max(1)
            ));
        }
        Ok(conv)
    }

    /// The pooling geometry the case describes.
    pub fn pool_geometry<const D: usize>(&self) -> Result<PoolNd<D>, String> {
        let x = &self.input.shape;
        if x.len() != D + 2 {
            return Err(format!("input must have {} dimensions, got {:?}", D + 2, x));
        }
        self.params
            .pool::<D>(x[0], x[1], &x[2..])
            .map_err(|e| format!("invalid geometry: {e}"))
    }

    /// Checks that the parameters make a valid geometry and that every dataset has the shape
    /// that geometry requires.
    pub fn validate(&self) -> Result<(), String> {
        match self.dims {
            1 => self.validate_dims::<1>(),
            2 => self.validate_dims::<2>(),
            3 => self.validate_dims::<3>(),
            d => Err(format!("dims = {d}: must be 1, 2 or 3")),
        }
    }

    /// The output's shape, from the geometry: `[N, K or C, *output_size]`.
    pub fn output_shape(&self) -> Result<Vec<usize>, String> {
        fn of<const D: usize>(case: &Case) -> Result<Vec<usize>, String> {
            let x = &case.input.shape;
            Ok(if case.op == Op::Conv {
                let conv = case.conv_geometry::<D>()?;
                let mut out = vec![x[0], conv.spec().out_channels];
                out.extend(conv.output_size());
                out
            } else {
                let pool = case.pool_geometry::<D>()?;
                let mut out = vec![x[0], x[1]];
                out.extend(pool.output_size());
                out
            })
        }
        match self.dims {
            1 => of::<1>(self),
            2 => of::<2>(self),
            3 => of::<3>(self),
            d => Err(format!("dims = {d}: must be 1, 2 or 3")),
        }
    }

    fn validate_dims<const D: usize>(&self) -> Result<(), String> {
        let x = &self.input.shape;
        let (output_shape, weight_shape) = if self.op == Op::Conv {
            let conv = self.conv_geometry::<D>()?;
            let mut out = vec![x[0], conv.spec().out_channels];
            out.extend(conv.output_size());
            if let Some(b) = &self.bias {
                expect_shape("bias", &b.shape, &[conv.spec().out_channels])?;
            }
            let w = self.weight.as_ref().map(|w| w.shape.clone());
            (out, w)
        } else {
            let pool = self.pool_geometry::<D>()?;
            let mut out = vec![x[0], x[1]];
            out.extend(pool.output_size());
            (out, None)
        };
        expect_shape("output", &self.output.shape, &output_shape)?;
        if let Some(g) = &self.grad_output {
            expect_shape("grad_output", &g.shape, &output_shape)?;
        }
        if let Some(g) = &self.grad_input {
            expect_shape("grad_input", &g.shape, x)?;
        }
        if let (Some(g), Some(w)) = (&self.grad_weight, &weight_shape) {
            expect_shape("grad_weight", &g.shape, w)?;
        }
        if let (Some(g), Some(b)) = (&self.grad_bias, &self.bias) {
            expect_shape("grad_bias", &g.shape, &b.shape)?;
        }
        if let Some(ix) = &self.indices {
            let n: usize = output_shape.iter().product();
            if ix.len() != n {
                return Err(format!("indices has {} elements, expected {n}", ix.len()));
            }
        }
        let wants_gradient =
            self.grad_input.is_some() || self.grad_weight.is_some() || self.grad_bias.is_some();
        if wants_gradient && self.grad_output.is_none() {
            return Err("expected gradients need the dataset grad_output".into());
        }
        Ok(())
    }
}

fn expect_shape(name: &str, got: &[usize], want: &[usize]) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "dataset {name} has shape {got:?}, expected {want:?}"
        ))
    }
}
