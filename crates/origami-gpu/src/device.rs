//! The GPU context every op runs on, over one of two backends: wgpu (Vulkan, Metal, DX12;
//! the default) or CUDA (feature `cuda`). Ops see one interface, [`Recorder::dispatch`] of
//! a [`Shader`] with a parameter block and buffers, which each backend implements with its
//! own copy of the kernels; nothing else in the crate knows which backend runs.

use std::marker::PhantomData;

use crate::error::GpuError;
use crate::shaders::Shader;
use crate::wgpu_backend::WgpuDevice;

#[cfg(feature = "cuda")]
use crate::cuda_backend::{CudaArg, CudaDevice};

/// Element types a [`GpuBuffer`] can hold: `f32` tensors and `u32` max-pooling indices.
#[cfg(not(feature = "cuda"))]
pub trait GpuElement: bytemuck::Pod + Default + Send + Sync + 'static {}
/// Element types a [`GpuBuffer`] can hold: `f32` tensors and `u32` max-pooling indices.
#[cfg(feature = "cuda")]
pub trait GpuElement:
    bytemuck::Pod
    + Default
    + Send
    + Sync
    + 'static
    + cudarc::driver::DeviceRepr
    + cudarc::driver::ValidAsZeroBits
{
}
impl GpuElement for f32 {}
impl GpuElement for u32 {}

/// A device buffer of `len` elements of `T`, usable as input or output of any op on the
/// [`Gpu`] that made it.
///
/// Allocate buffers once and pass them to every call: the ops never allocate per call, so a
/// training loop's tensors stay on the device between calls.
#[derive(Debug)]
pub struct GpuBuffer<T: GpuElement = f32> {
    raw: RawBuffer<T>,
    len: usize,
}

#[derive(Debug)]
enum RawBuffer<T: GpuElement> {
    Wgpu(wgpu::Buffer, PhantomData<T>),
    #[cfg(feature = "cuda")]
    Cuda(cudarc::driver::CudaSlice<T>),
}

impl<T: GpuElement> GpuBuffer<T> {
    /// Elements in the buffer.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

enum Backend {
    Wgpu(Box<WgpuDevice>),
    #[cfg(feature = "cuda")]
    Cuda(CudaDevice),
}

/// One GPU: its backend's device and compiled kernels (built on first use) and its limits.
/// Every op takes `&Gpu`.
pub struct Gpu {
    backend: Backend,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("adapter", &self.adapter_name())
            .finish()
    }
}

#[cfg(feature = "cuda")]
fn other_backend() -> GpuError {
    GpuError::Device("a buffer from another GPU backend was passed".into())
}

impl Gpu {
    /// Opens the system's preferred GPU through wgpu (Vulkan, Metal or DX12; a software
    /// Vulkan driver such as llvmpipe counts). Fails with [`GpuError::NoAdapter`] when there
    /// is none.
    pub fn new() -> Result<Self, GpuError> {
        Ok(Gpu {
            backend: Backend::Wgpu(Box::new(pollster::block_on(WgpuDevice::open())?)),
        })
    }

    /// Opens CUDA device `ordinal` through the NVIDIA driver. Fails with
    /// [`GpuError::NoAdapter`] when the driver library or the device is missing.
    #[cfg(feature = "cuda")]
    pub fn cuda(ordinal: usize) -> Result<Self, GpuError> {
        Ok(Gpu {
            backend: Backend::Cuda(CudaDevice::open(ordinal)?),
        })
    }

    /// `wgpu` or `cuda`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Wgpu(_) => "wgpu",
            #[cfg(feature = "cuda")]
            Backend::Cuda(_) => "cuda",
        }
    }

    /// The adapter's name and API, e.g. `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan)`.
    pub fn adapter_name(&self) -> String {
        match &self.backend {
            Backend::Wgpu(d) => d.name(),
            #[cfg(feature = "cuda")]
            Backend::Cuda(d) => d.name(),
        }
    }

    /// The largest buffer, in bytes, an op may bind.
    pub fn max_binding_bytes(&self) -> u64 {
        match &self.backend {
            Backend::Wgpu(d) => d.max_binding_bytes(),
            #[cfg(feature = "cuda")]
            Backend::Cuda(d) => d.max_binding_bytes(),
        }
    }

    /// Fails unless `len` elements of `T` fit one binding of this device.
    pub(crate) fn check_size<T: GpuElement>(
        &self,
        buffer: &'static str,
        len: usize,
    ) -> Result<u64, GpuError> {
        let bytes = (len.max(1) as u64).saturating_mul(size_of::<T>() as u64);
        let limit = self.max_binding_bytes();
        if bytes > limit {
            return Err(GpuError::TooLarge {
                buffer,
                bytes,
                limit,
            });
        }
        Ok(bytes)
    }

    /// A zeroed buffer of `len` elements (at least one is allocated, so empty bindings never
    /// occur).
    pub fn zeros<T: GpuElement>(&self, len: usize) -> Result<GpuBuffer<T>, GpuError> {
        let bytes = self.check_size::<T>("buffer", len)?;
        let raw = match &self.backend {
            Backend::Wgpu(d) => RawBuffer::Wgpu(d.zeros(bytes)?, PhantomData),
            #[cfg(feature = "cuda")]
            Backend::Cuda(d) => RawBuffer::Cuda(d.zeros(len)?),
        };
        Ok(GpuBuffer { raw, len })
    }

    /// A buffer holding a copy of `data`.
    pub fn upload<T: GpuElement>(&self, data: &[T]) -> Result<GpuBuffer<T>, GpuError> {
        self.check_size::<T>("buffer", data.len())?;
        let raw = match &self.backend {
            Backend::Wgpu(d) => {
                let one = [T::default()];
                let contents: &[T] = if data.is_empty() { &one } else { data };
                RawBuffer::Wgpu(d.upload(bytemuck::cast_slice(contents))?, PhantomData)
            }
            #[cfg(feature = "cuda")]
            Backend::Cuda(d) => RawBuffer::Cuda(d.upload(data)?),
        };
        Ok(GpuBuffer {
            raw,
            len: data.len(),
        })
    }

    /// Overwrites `buffer` with `data` (same length), reusing the device allocation.
    pub fn write<T: GpuElement>(
        &self,
        buffer: &mut GpuBuffer<T>,
        data: &[T],
    ) -> Result<(), GpuError> {
        check_len("data", buffer.len, data.len())?;
        if data.is_empty() {
            return Ok(());
        }
        match (&self.backend, &mut buffer.raw) {
            (Backend::Wgpu(d), RawBuffer::Wgpu(b, _)) => d.write(b, bytemuck::cast_slice(data)),
            #[cfg(feature = "cuda")]
            (Backend::Cuda(d), RawBuffer::Cuda(b)) => d.write(b, data),
            #[cfg(feature = "cuda")]
            _ => Err(other_backend()),
        }
    }

    /// Copies `buffer` back to the host, waiting for all submitted work first.
    pub fn read<T: GpuElement>(&self, buffer: &GpuBuffer<T>) -> Result<Vec<T>, GpuError> {
        let mut out = vec![T::default(); buffer.len];
        self.read_into(buffer, &mut out)?;
        Ok(out)
    }

    /// Copies `buffer` into `out` (same length), waiting for all submitted work first.
    pub fn read_into<T: GpuElement>(
        &self,
        buffer: &GpuBuffer<T>,
        out: &mut [T],
    ) -> Result<(), GpuError> {
        check_len("out", buffer.len, out.len())?;
        if out.is_empty() {
            return Ok(());
        }
        match (&self.backend, &buffer.raw) {
            (Backend::Wgpu(d), RawBuffer::Wgpu(b, _)) => {
                d.read_into(b, bytemuck::cast_slice_mut(out))
            }
            #[cfg(feature = "cuda")]
            (Backend::Cuda(d), RawBuffer::Cuda(b)) => d.read_into(b, out),
            #[cfg(feature = "cuda")]
            _ => Err(other_backend()),
        }
    }

    /// Blocks until every submitted command has finished.
    pub fn wait(&self) -> Result<(), GpuError> {
        match &self.backend {
            Backend::Wgpu(d) => d.wait(),
            #[cfg(feature = "cuda")]
            Backend::Cuda(d) => d.wait(),
        }
    }

    /// A recorder for many op calls that are submitted together, with no round trip to the
    /// host between them.
    pub fn record(&self) -> Recorder<'_> {
        let raw = match &self.backend {
            Backend::Wgpu(d) => RawRecorder::Wgpu(d.encoder()),
            #[cfg(feature = "cuda")]
            Backend::Cuda(_) => RawRecorder::Stream,
        };
        Recorder {
            gpu: self,
            raw,
            dispatches: 0,
        }
    }

    /// Submits what `recorder` holds; returns without waiting (see [`Gpu::wait`]).
    pub fn submit(&self, recorder: Recorder<'_>) -> Result<(), GpuError> {
        match (&self.backend, recorder.raw) {
            (Backend::Wgpu(d), RawRecorder::Wgpu(encoder)) => d.submit(encoder),
            // CUDA launches went to the stream as they were recorded.
            #[cfg(feature = "cuda")]
            (Backend::Cuda(_), RawRecorder::Stream) => Ok(()),
            #[cfg(feature = "cuda")]
            _ => Err(other_backend()),
        }
    }

    /// Records ops into a fresh recorder, submits them and waits: the one-call form.
    pub fn run(
        &self,
        op: impl FnOnce(&mut Recorder<'_>) -> Result<(), GpuError>,
    ) -> Result<(), GpuError> {
        let mut recorder = self.record();
        op(&mut recorder)?;
        self.submit(recorder)?;
        self.wait()
    }
}

enum RawRecorder {
    Wgpu(wgpu::CommandEncoder),
    /// CUDA: kernels are queued on the device's stream as they are recorded, which is
    /// already asynchronous; `submit` has nothing left to do.
    #[cfg(feature = "cuda")]
    Stream,
}

/// Op calls recorded for one submission; see [`Gpu::record`].
pub struct Recorder<'g> {
    gpu: &'g Gpu,
    raw: RawRecorder,
    dispatches: usize,
}

/// One buffer bound to a kernel: its binding number follows its place in the list.
pub(crate) enum Binding<'a> {
    F32(&'a GpuBuffer<f32>),
    U32(&'a GpuBuffer<u32>),
}

/// Words of the parameter block (`array<vec4<u32>, 16>` in WGSL, `Params` in CUDA).
pub(crate) const PARAM_WORDS: usize = 64;

/// Workgroups per dimension that every device supports.
const MAX_GROUPS_PER_DIM: u32 = 65_535;

impl Recorder<'_> {
    /// The GPU this recorder records for.
    pub fn gpu(&self) -> &Gpu {
        self.gpu
    }

    /// Dispatches recorded so far.
    pub fn dispatches(&self) -> usize {
        self.dispatches
    }

    /// Records `shader` over `workgroups` workgroups (linearised: kernels read their index
    /// as `x + y * num_workgroups.x`, so any count up to 2^32 fits the per-dimension limit),
    /// with `params` as its parameter block and `buffers` after it in binding order.
    pub(crate) fn dispatch(
        &mut self,
        shader: Shader,
        params: &[u32],
        buffers: &[Binding<'_>],
        workgroups: u64,
    ) -> Result<(), GpuError> {
        if workgroups == 0 {
            return Ok(());
        }
        let x = workgroups.min(u64::from(MAX_GROUPS_PER_DIM));
        let y = workgroups.div_ceil(x);
        if y > u64::from(MAX_GROUPS_PER_DIM) {
            return Err(GpuError::TooLarge {
                buffer: "workgroups",
                bytes: workgroups,
                limit: u64::from(MAX_GROUPS_PER_DIM) * u64::from(MAX_GROUPS_PER_DIM),
            });
        }
        let grid = (x as u32, y as u32);
        let mut block = [0u32; PARAM_WORDS];
        block[..params.len()].copy_from_slice(params);
        match (&self.gpu.backend, &mut self.raw) {
            (Backend::Wgpu(d), RawRecorder::Wgpu(encoder)) => {
                let mut raw = Vec::with_capacity(buffers.len());
                for b in buffers {
                    raw.push(match b {
                        Binding::F32(GpuBuffer {
                            raw: RawBuffer::Wgpu(buf, _),
                            ..
                        }) => buf,
                        Binding::U32(GpuBuffer {
                            raw: RawBuffer::Wgpu(buf, _),
                            ..
                        }) => buf,
                        #[cfg(feature = "cuda")]
                        _ => return Err(other_backend()),
                    });
                }
                d.dispatch(encoder, shader, &block, &raw, grid)?;
            }
            #[cfg(feature = "cuda")]
            (Backend::Cuda(d), RawRecorder::Stream) => {
                let mut args = Vec::with_capacity(buffers.len());
                for b in buffers {
                    args.push(match b {
                        Binding::F32(GpuBuffer {
                            raw: RawBuffer::Cuda(s),
                            ..
                        }) => CudaArg::F32(s),
                        Binding::U32(GpuBuffer {
                            raw: RawBuffer::Cuda(s),
                            ..
                        }) => CudaArg::U32(s),
                        _ => return Err(other_backend()),
                    });
                }
                d.launch(shader, &block, &args, grid)?;
            }
            #[cfg(feature = "cuda")]
            _ => return Err(other_backend()),
        }
        self.dispatches += 1;
        Ok(())
    }
}

/// Fails with [`origami_kernels::Error::LengthMismatch`] naming `buffer`.
pub(crate) fn check_len(
    buffer: &'static str,
    expected: usize,
    actual: usize,
) -> Result<(), GpuError> {
    if expected == actual {
        Ok(())
    } else {
        Err(GpuError::Kernel(origami_kernels::Error::LengthMismatch {
            buffer,
            expected,
            actual,
        }))
    }
}
