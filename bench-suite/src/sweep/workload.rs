//! One sweep point's geometry and buffers behind one interface for every op and dimension,
//! so the driver, the timers and the tests never match on `(op, D)` themselves.

use crate::case::Op;
use crate::family::Shape;
use crate::run::{RunError, Variant, gpu_error};
use origami_gpu::{Gpu, GpuBuffer, GpuConv, GpuPool};
use origami_kernels::{ConvAlgorithm, ConvNd, ConvOp, PoolKind, PoolNd, PoolOp, reference};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// A pass the sweep times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// `y` from `x` (and `w`, `b`).
    Forward,
    /// `dx` from `dy`.
    BackwardInput,
    /// `dw` from `x` and `dy` (convolution).
    BackwardWeight,
}

impl Direction {
    /// Every direction.
    pub const ALL: [Direction; 3] = [
        Direction::Forward,
        Direction::BackwardInput,
        Direction::BackwardWeight,
    ];

    /// `forward`, `backward_input` or `backward_weight`.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Forward => "forward",
            Direction::BackwardInput => "backward_input",
            Direction::BackwardWeight => "backward_weight",
        }
    }

    /// Parses [`Direction::name`].
    pub fn parse(name: &str) -> Option<Direction> {
        Direction::ALL.into_iter().find(|d| d.name() == name)
    }
}

/// What a GPU call of the sweep does, so that kernels and transfers are timed apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuPhase {
    /// Upload the pass's inputs, run it, wait, download its result: the checked call.
    Whole,
    /// Run the pass on the buffers already on the device and wait: the kernel's time.
    Kernel,
    /// Upload the pass's inputs and download its result, without running it.
    Transfer,
}

/// What a sweep point offers the driver: its passes, their nominal work, the reference
/// answer, and a way to run a CPU variant into its own output buffer.
pub trait Workload {
    /// The op.
    fn op(&self) -> Op;
    /// The passes this op has.
    fn directions(&self) -> &'static [Direction];
    /// Nominal floating-point operations of a pass: `2 * MACs` for convolution, one per
    /// window tap for pooling (what the direct algorithm does).
    fn flop(&self, d: Direction) -> f64;
    /// The least memory traffic of a pass in bytes: every tensor read once and written once.
    fn bytes(&self, d: Direction) -> f64;
    /// The pass computed by the `f64` reference from the same inputs.
    fn reference(&self, d: Direction) -> Vec<f64>;
    /// Runs a CPU variant; the result lands in [`Workload::result`].
    fn run_cpu(&mut self, variant: Variant, d: Direction) -> Result<(), RunError>;
    /// Runs one phase of a GPU variant on `gpu`. Device buffers are allocated on first use
    /// and kept for the point; after [`GpuPhase::Whole`] the result is in
    /// [`Workload::result`].
    fn run_gpu(
        &mut self,
        gpu: &Gpu,
        variant: Variant,
        d: Direction,
        phase: GpuPhase,
    ) -> Result<(), RunError>;
    /// The last result of a pass.
    fn result(&self, d: Direction) -> &[f32];
    /// The last result of a pass, to poison before a check (or to corrupt in tests).
    fn result_mut(&mut self, d: Direction) -> &mut [f32];
    /// Fills a pass's result (and max indices) with NaN and garbage, so a variant that
    /// leaves part of it unwritten cannot pass its check on a previous variant's answer.
    fn poison(&mut self, d: Direction) {
        self.result_mut(d).fill(f32::NAN);
    }
    /// For max pooling: whether the indices of the last forward pass are the reference's.
    fn indices_match(&self) -> bool {
        true
    }
}

/// Builds the workload of a point with inputs drawn uniformly from `[-1, 1)` by a
/// generator seeded with `seed`.
pub fn workload(shape: &Shape, seed: u64) -> Result<Box<dyn Workload>, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    Ok(match (shape.op, shape.dims) {
        (Op::Conv, 1) => Box::new(ConvWork::new(shape.conv::<1>()?, &mut rng)),
        (Op::Conv, 2) => Box::new(ConvWork::new(shape.conv::<2>()?, &mut rng)),
        (Op::Conv, 3) => Box::new(ConvWork::new(shape.conv::<3>()?, &mut rng)),
        (op, d) => {
            let kind = op.pool_kind().ok_or("not a pooling op")?;
            match d {
                1 => Box::new(PoolWork::new(shape.pool::<1>()?, kind, op, &mut rng)),
                2 => Box::new(PoolWork::new(shape.pool::<2>()?, kind, op, &mut rng)),
                3 => Box::new(PoolWork::new(shape.pool::<3>()?, kind, op, &mut rng)),
                _ => return Err(format!("dims = {d}: must be 1, 2 or 3")),
            }
        }
    })
}

/// `(direction, nominal FLOP, least bytes)` of each pass of a point, from its geometry alone.
pub fn nominal_work(shape: &Shape) -> Result<Vec<(Direction, f64, f64)>, String> {
    fn conv<const D: usize>(s: &Shape) -> Result<Vec<(Direction, f64, f64)>, String> {
        let c = s.conv::<D>()?;
        Ok(Direction::ALL
            .into_iter()
            .map(|d| (d, conv_flop(&c), conv_bytes(&c, d)))
            .collect())
    }
    fn pool<const D: usize>(
        s: &Shape,
        kind: PoolKind,
    ) -> Result<Vec<(Direction, f64, f64)>, String> {
        let p = s.pool::<D>()?;
        Ok([Direction::Forward, Direction::BackwardInput]
            .into_iter()
            .map(|d| (d, pool_flop(&p), pool_bytes(&p, kind)))
            .collect())
    }
    match (shape.op.pool_kind(), shape.dims) {
        (None, 1) => conv::<1>(shape),
        (None, 2) => conv::<2>(shape),
        (None, 3) => conv::<3>(shape),
        (Some(k), 1) => pool::<1>(shape, k),
        (Some(k), 2) => pool::<2>(shape, k),
        (Some(k), 3) => pool::<3>(shape, k),
        (_, d) => Err(format!("dims = {d}: must be 1, 2 or 3")),
    }
}

fn conv_flop<const D: usize>(c: &ConvNd<D>) -> f64 {
    2.0 * c.macs() as f64
}

fn conv_bytes<const D: usize>(c: &ConvNd<D>, d: Direction) -> f64 {
    let bias = if d == Direction::Forward {
        c.bias_len()
    } else {
        0
    };
    F32 * (c.input_len() + c.weight_len() + c.output_len() + bias) as f64
}

fn pool_flop<const D: usize>(p: &PoolNd<D>) -> f64 {
    (p.output_len() as f64) * (p.window_taps() as f64)
}

/// Input and output once, plus the `usize` indices max pooling writes (forward) or reads
/// (backward).
fn pool_bytes<const D: usize>(p: &PoolNd<D>, kind: PoolKind) -> f64 {
    let indices = if kind == PoolKind::Max {
        std::mem::size_of::<usize>() as f64 * p.output_len() as f64
    } else {
        0.0
    };
    F32 * (p.input_len() + p.output_len()) as f64 + indices
}

fn random(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// A tensor's values from a 64-byte boundary, as PyTorch's CPU allocator places its
/// tensors (a `Vec` of this size from the system allocator starts 16 bytes past a page).
/// Kernels that stream large outputs past the caches need whole vectors on such a boundary.
struct Aligned {
    buf: Vec<f32>,
    at: usize,
    len: usize,
}

impl Aligned {
    /// Room for a cache line's worth of skip: 16 `f32`.
    const SLACK: usize = 16;

    fn zeros(len: usize) -> Self {
        let buf = vec![0.0; len + Self::SLACK];
        let at = buf.as_ptr().align_offset(64).min(Self::SLACK);
        Aligned { buf, at, len }
    }

    fn from_values(values: &[f32]) -> Self {
        let mut a = Self::zeros(values.len());
        a.copy_from_slice(values);
        a
    }
}

impl std::ops::Deref for Aligned {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.buf[self.at..self.at + self.len]
    }
}

impl std::ops::DerefMut for Aligned {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[self.at..self.at + self.len]
    }
}

fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

fn kernel_error(e: origami_kernels::Error) -> RunError {
    match e {
        origami_kernels::Error::Unsupported { reason, .. } => RunError::Unsupported(reason.into()),
        other => RunError::Invalid(other.to_string()),
    }
}

fn grow(scratch: &mut Vec<f32>, len: usize) {
    if scratch.len() < len {
        scratch.resize(len, 0.0);
    }
}

const F32: f64 = 4.0;

struct ConvWork<const D: usize> {
    conv: ConvNd<D>,
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    dy: Vec<f32>,
    y: Vec<f32>,
    dx: Vec<f32>,
    dw: Vec<f32>,
    scratch: Vec<f32>,
    device: Option<ConvDevice<D>>,
}

/// A device buffer and the host data it is refreshed from.
type Upload<'a> = (&'a mut GpuBuffer, &'a [f32]);

/// A conv point's tensors on the GPU, and the ops built so far.
struct ConvDevice<const D: usize> {
    x: GpuBuffer,
    w: GpuBuffer,
    b: GpuBuffer,
    dy: GpuBuffer,
    y: GpuBuffer,
    dx: GpuBuffer,
    dw: GpuBuffer,
    ops: Vec<GpuConv<D>>,
}

impl<const D: usize> ConvWork<D> {
    fn new(conv: ConvNd<D>, rng: &mut StdRng) -> Self {
        ConvWork {
            x: random(rng, conv.input_len()),
            w: random(rng, conv.weight_len()),
            b: random(rng, conv.bias_len()),
            dy: random(rng, conv.output_len()),
            y: vec![0.0; conv.output_len()],
            dx: vec![0.0; conv.input_len()],
            dw: vec![0.0; conv.weight_len()],
            scratch: Vec::new(),
            device: None,
            conv,
        }
    }

    fn device(&mut self, gpu: &Gpu) -> Result<&mut ConvDevice<D>, RunError> {
        if self.device.is_none() {
            self.device = Some(ConvDevice {
                x: gpu.upload(&self.x).map_err(gpu_error)?,
                w: gpu.upload(&self.w).map_err(gpu_error)?,
                b: gpu.upload(&self.b).map_err(gpu_error)?,
                dy: gpu.upload(&self.dy).map_err(gpu_error)?,
                y: gpu.zeros(self.y.len()).map_err(gpu_error)?,
                dx: gpu.zeros(self.dx.len()).map_err(gpu_error)?,
                dw: gpu.zeros(self.dw.len()).map_err(gpu_error)?,
                ops: Vec::new(),
            });
        }
        Ok(self.device.as_mut().expect("just set"))
    }
}

impl<const D: usize> Workload for ConvWork<D> {
    fn op(&self) -> Op {
        Op::Conv
    }

    fn directions(&self) -> &'static [Direction] {
        &Direction::ALL
    }

    fn flop(&self, _: Direction) -> f64 {
        conv_flop(&self.conv)
    }

    fn bytes(&self, d: Direction) -> f64 {
        conv_bytes(&self.conv, d)
    }

    fn reference(&self, d: Direction) -> Vec<f64> {
        let c = &self.conv;
        let failed = "the reference accepts what the kernels accept";
        // Widen only the tensors the pass reads.
        match d {
            Direction::Forward => {
                let mut y = vec![0.0; c.output_len()];
                let (x, w, b) = (widen(&self.x), widen(&self.w), widen(&self.b));
                reference::conv_forward(c, &x, &w, Some(&b), &mut y).expect(failed);
                y
            }
            Direction::BackwardInput => {
                let mut dx = vec![0.0; c.input_len()];
                let (dy, w) = (widen(&self.dy), widen(&self.w));
                reference::conv_backward_input(c, &dy, &w, &mut dx).expect(failed);
                dx
            }
            Direction::BackwardWeight => {
                let mut dw = vec![0.0; c.weight_len()];
                let (x, dy) = (widen(&self.x), widen(&self.dy));
                reference::conv_backward_weight(c, &x, &dy, &mut dw).expect(failed);
                dw
            }
        }
    }

    fn run_cpu(&mut self, variant: Variant, d: Direction) -> Result<(), RunError> {
        let Variant::Conv(algo) = variant else {
            return Err(RunError::Invalid(format!(
                "{} is not a convolution algorithm",
                variant.name()
            )));
        };
        let op = match d {
            Direction::Forward => ConvOp::Forward,
            Direction::BackwardInput => ConvOp::BackwardInput,
            Direction::BackwardWeight => ConvOp::BackwardWeight,
        };
        // A variant that hands this pass to another algorithm (Winograd outside its
        // geometries, and for the weight gradient) is not timed under its own name.
        let runs = self.conv.resolve_op(op, algo);
        if algo != ConvAlgorithm::Auto && runs != algo {
            return Err(RunError::Unsupported(format!(
                "{} runs {} here",
                algo.name(),
                runs.name()
            )));
        }
        grow(&mut self.scratch, self.conv.scratch_len::<f32>(op, algo));
        let c = &self.conv;
        match d {
            Direction::Forward => c.forward(
                algo,
                &self.x,
                &self.w,
                Some(&self.b),
                &mut self.y,
                &mut self.scratch,
            ),
            Direction::BackwardInput => {
                c.backward_input(algo, &self.dy, &self.w, &mut self.dx, &mut self.scratch)
            }
            Direction::BackwardWeight => {
                c.backward_weight(algo, &self.x, &self.dy, &mut self.dw, &mut self.scratch)
            }
        }
        .map_err(kernel_error)
    }

    fn run_gpu(
        &mut self,
        gpu: &Gpu,
        variant: Variant,
        d: Direction,
        phase: GpuPhase,
    ) -> Result<(), RunError> {
        let Variant::GpuConv(algo) = variant else {
            return Err(RunError::Invalid(format!(
                "{} is not a GPU convolution algorithm",
                variant.label()
            )));
        };
        let geometry = self.conv;
        let dev = self.device(gpu)?;
        let op = match dev.ops.iter().position(|o| o.algorithm() == algo.resolve()) {
            Some(i) => i,
            None => {
                dev.ops
                    .push(GpuConv::new(gpu, geometry, algo).map_err(gpu_error)?);
                dev.ops.len() - 1
            }
        };
        if phase != GpuPhase::Kernel {
            let dev = self.device.as_mut().expect("allocated above");
            let inputs: Vec<Upload<'_>> = match d {
                Direction::Forward => vec![
                    (&mut dev.x, &self.x),
                    (&mut dev.w, &self.w),
                    (&mut dev.b, &self.b),
                ],
                Direction::BackwardInput => vec![(&mut dev.dy, &self.dy), (&mut dev.w, &self.w)],
                Direction::BackwardWeight => vec![(&mut dev.x, &self.x), (&mut dev.dy, &self.dy)],
            };
            for (buffer, data) in inputs {
                gpu.write(buffer, data).map_err(gpu_error)?;
            }
        }
        let dev = self.device.as_ref().expect("allocated above");
        let (host_out, dev_out) = match d {
            Direction::Forward => (&mut self.y, &dev.y),
            Direction::BackwardInput => (&mut self.dx, &dev.dx),
            Direction::BackwardWeight => (&mut self.dw, &dev.dw),
        };
        if phase != GpuPhase::Transfer {
            let conv = &dev.ops[op];
            gpu.run(|rec| match d {
                Direction::Forward => conv.forward(rec, &dev.x, &dev.w, Some(&dev.b), &dev.y),
                Direction::BackwardInput => conv.backward_input(rec, &dev.dy, &dev.w, &dev.dx),
                Direction::BackwardWeight => conv.backward_weight(rec, &dev.x, &dev.dy, &dev.dw),
            })
            .map_err(gpu_error)?;
        }
        if phase != GpuPhase::Kernel {
            gpu.read_into(dev_out, host_out).map_err(gpu_error)?;
        }
        Ok(())
    }

    fn result(&self, d: Direction) -> &[f32] {
        match d {
            Direction::Forward => &self.y,
            Direction::BackwardInput => &self.dx,
            Direction::BackwardWeight => &self.dw,
        }
    }

    fn result_mut(&mut self, d: Direction) -> &mut [f32] {
        match d {
            Direction::Forward => &mut self.y,
            Direction::BackwardInput => &mut self.dx,
            Direction::BackwardWeight => &mut self.dw,
        }
    }
}

struct PoolWork<const D: usize> {
    pool: PoolNd<D>,
    kind: PoolKind,
    op: Op,
    x: Aligned,
    dy: Aligned,
    y: Aligned,
    dx: Aligned,
    indices: Vec<usize>,
    /// The reference's max indices: every variant's backward pass routes through these,
    /// so backward timings do not depend on which forward variant ran last.
    reference_indices: Vec<usize>,
    reference_output: Vec<f64>,
    scratch: Vec<f32>,
    device: Option<PoolDevice<D>>,
}

/// A pooling point's tensors on the GPU, and the ops built so far.
struct PoolDevice<const D: usize> {
    x: GpuBuffer,
    dy: GpuBuffer,
    y: GpuBuffer,
    dx: GpuBuffer,
    indices: GpuBuffer<u32>,
    reference_indices: GpuBuffer<u32>,
    ops: Vec<GpuPool<D>>,
}

impl<const D: usize> PoolWork<D> {
    fn new(pool: PoolNd<D>, kind: PoolKind, op: Op, rng: &mut StdRng) -> Self {
        let x = random(rng, pool.input_len());
        let dy = random(rng, pool.output_len());
        let mut reference_output = vec![0.0; pool.output_len()];
        let mut reference_indices = vec![0; pool.output_len()];
        reference::pool_forward(
            &pool,
            kind,
            &widen(&x),
            &mut reference_output,
            Some(&mut reference_indices),
        )
        .expect("the reference accepts what the kernels accept");
        PoolWork {
            y: Aligned::zeros(pool.output_len()),
            dx: Aligned::zeros(pool.input_len()),
            indices: vec![0; pool.output_len()],
            scratch: Vec::new(),
            pool,
            kind,
            op,
            x: Aligned::from_values(&x),
            dy: Aligned::from_values(&dy),
            reference_indices,
            reference_output,
            device: None,
        }
    }

    fn device(&mut self, gpu: &Gpu) -> Result<&mut PoolDevice<D>, RunError> {
        if self.device.is_none() {
            let reference: Vec<u32> = self
                .reference_indices
                .iter()
                .map(|&i| u32::try_from(i).unwrap_or(u32::MAX))
                .collect();
            self.device = Some(PoolDevice {
                x: gpu.upload(&self.x).map_err(gpu_error)?,
                dy: gpu.upload(&self.dy).map_err(gpu_error)?,
                y: gpu.zeros(self.y.len()).map_err(gpu_error)?,
                dx: gpu.zeros(self.dx.len()).map_err(gpu_error)?,
                indices: gpu.zeros(self.y.len()).map_err(gpu_error)?,
                reference_indices: gpu.upload(&reference).map_err(gpu_error)?,
                ops: Vec::new(),
            });
        }
        Ok(self.device.as_mut().expect("just set"))
    }

    fn is_max(&self) -> bool {
        self.kind == PoolKind::Max
    }
}

impl<const D: usize> Workload for PoolWork<D> {
    fn op(&self) -> Op {
        self.op
    }

    fn directions(&self) -> &'static [Direction] {
        &[Direction::Forward, Direction::BackwardInput]
    }

    fn flop(&self, _: Direction) -> f64 {
        pool_flop(&self.pool)
    }

    fn bytes(&self, _: Direction) -> f64 {
        pool_bytes(&self.pool, self.kind)
    }

    fn reference(&self, d: Direction) -> Vec<f64> {
        match d {
            Direction::Forward => self.reference_output.clone(),
            _ => {
                let mut dx = vec![0.0; self.pool.input_len()];
                let ix = self.is_max().then_some(&self.reference_indices[..]);
                reference::pool_backward(&self.pool, self.kind, &widen(&self.dy), ix, &mut dx)
                    .expect("the reference accepts what the kernels accept");
                dx
            }
        }
    }

    fn run_cpu(&mut self, variant: Variant, d: Direction) -> Result<(), RunError> {
        let Variant::Pool(algo) = variant else {
            return Err(RunError::Invalid(format!(
                "{} is not a pooling algorithm",
                variant.name()
            )));
        };
        let pass = match d {
            Direction::Forward => PoolOp::Forward,
            _ => PoolOp::Backward,
        };
        self.pool
            .supports::<f32>(self.kind, algo)
            .map_err(kernel_error)?;
        grow(
            &mut self.scratch,
            self.pool.scratch_len::<f32>(self.kind, pass, algo),
        );
        let max = self.is_max();
        match d {
            Direction::Forward => self.pool.forward(
                self.kind,
                algo,
                &self.x,
                &mut self.y,
                max.then_some(&mut self.indices[..]),
                &mut self.scratch,
            ),
            _ => self.pool.backward(
                self.kind,
                algo,
                &self.dy,
                max.then_some(&self.reference_indices[..]),
                &mut self.dx,
                &mut self.scratch,
            ),
        }
        .map_err(kernel_error)
    }

    fn run_gpu(
        &mut self,
        gpu: &Gpu,
        variant: Variant,
        d: Direction,
        phase: GpuPhase,
    ) -> Result<(), RunError> {
        let Variant::GpuPool(algo) = variant else {
            return Err(RunError::Invalid(format!(
                "{} is not a GPU pooling algorithm",
                variant.label()
            )));
        };
        let (geometry, kind) = (self.pool, self.kind);
        let dev = self.device(gpu)?;
        let op = match dev
            .ops
            .iter()
            .position(|o| o.algorithm() == GpuPool::resolve(&geometry, algo))
        {
            Some(i) => i,
            None => {
                dev.ops
                    .push(GpuPool::new(gpu, geometry, kind, algo).map_err(gpu_error)?);
                dev.ops.len() - 1
            }
        };
        let max = kind == PoolKind::Max;
        if phase != GpuPhase::Kernel {
            let dev = self.device.as_mut().expect("allocated above");
            let (buffer, data) = match d {
                Direction::Forward => (&mut dev.x, &self.x),
                _ => (&mut dev.dy, &self.dy),
            };
            gpu.write(buffer, data).map_err(gpu_error)?;
        }
        let dev = self.device.as_ref().expect("allocated above");
        if phase != GpuPhase::Transfer {
            let pool = &dev.ops[op];
            gpu.run(|rec| match d {
                Direction::Forward => pool.forward(rec, &dev.x, &dev.y, Some(&dev.indices)),
                _ => pool.backward(rec, &dev.dy, Some(&dev.reference_indices), &dev.dx),
            })
            .map_err(gpu_error)?;
        }
        if phase != GpuPhase::Kernel {
            match d {
                Direction::Forward => {
                    gpu.read_into(&dev.y, &mut self.y).map_err(gpu_error)?;
                    if max {
                        let ix = gpu.read(&dev.indices).map_err(gpu_error)?;
                        for (to, from) in self.indices.iter_mut().zip(ix) {
                            *to = from as usize;
                        }
                    }
                }
                _ => gpu.read_into(&dev.dx, &mut self.dx).map_err(gpu_error)?,
            }
        }
        Ok(())
    }

    fn result(&self, d: Direction) -> &[f32] {
        match d {
            Direction::Forward => &self.y,
            _ => &self.dx,
        }
    }

    fn result_mut(&mut self, d: Direction) -> &mut [f32] {
        match d {
            Direction::Forward => &mut self.y,
            _ => &mut self.dx,
        }
    }

    fn poison(&mut self, d: Direction) {
        self.result_mut(d).fill(f32::NAN);
        self.indices.fill(usize::MAX);
    }

    fn indices_match(&self) -> bool {
        !self.is_max() || self.indices == self.reference_indices
    }
}
