//! The GPU context: adapter, device, queue, compiled pipelines, buffers, and the error slot
//! that turns wgpu's asynchronous failures into [`GpuError`]s.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};

use wgpu::util::DeviceExt;

use crate::error::GpuError;
use crate::shaders::Shader;

/// Element types a [`GpuBuffer`] can hold: `f32` tensors and `u32` max-pooling indices.
pub trait GpuElement: bytemuck::Pod + Default + Copy + Send + Sync + 'static {}
impl GpuElement for f32 {}
impl GpuElement for u32 {}

/// A device buffer of `len` elements of `T`, usable as input or output of any op.
///
/// Allocate buffers once and pass them to every call: the ops never allocate per call, so a
/// training loop's tensors stay on the device between calls.
#[derive(Debug)]
pub struct GpuBuffer<T: GpuElement = f32> {
    pub(crate) buffer: wgpu::Buffer,
    len: usize,
    _element: PhantomData<T>,
}

impl<T: GpuElement> GpuBuffer<T> {
    /// Elements in the buffer.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no elements (never true: buffers hold at least one).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Errors wgpu reports through callbacks (validation, out of memory, device loss), collected
/// until the next check.
#[derive(Default)]
struct ErrorSlot {
    lost: Option<String>,
    uncaptured: Option<String>,
}

/// One GPU: the device and queue, the compiled pipelines (built on first use), and its
/// limits. Cheap to share by reference across ops; every op takes `&Gpu`.
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    pipelines: Mutex<HashMap<Shader, Arc<wgpu::ComputePipeline>>>,
    errors: Arc<Mutex<ErrorSlot>>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("adapter", &self.info.name)
            .finish()
    }
}

impl Gpu {
    /// Opens the system's preferred GPU (Vulkan, Metal or DX12; a software Vulkan driver such
    /// as llvmpipe counts). Fails with [`GpuError::NoAdapter`] when there is none.
    pub fn new() -> Result<Self, GpuError> {
        pollster::block_on(Self::open())
    }

    async fn open() -> Result<Self, GpuError> {
        let instance = wgpu::Instance::default();
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        // The adapter's own limits, not WebGPU's portable minimums: large tensors need the
        // larger storage bindings real devices offer.
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("origami"),
                required_features: wgpu::Features::empty(),
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::NoDevice(e.to_string()))?;
        let errors = Arc::new(Mutex::new(ErrorSlot::default()));
        let slot = Arc::clone(&errors);
        // wgpu's default handler panics; a library must report instead.
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
            slot.uncaptured.get_or_insert_with(|| e.to_string());
        }));
        let slot = Arc::clone(&errors);
        device.set_device_lost_callback(move |reason, message| {
            let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
            slot.lost
                .get_or_insert_with(|| format!("{reason:?}: {message}"));
        });
        Ok(Gpu {
            device,
            queue,
            info,
            limits,
            pipelines: Mutex::new(HashMap::new()),
            errors,
        })
    }

    /// The adapter's name and backend, e.g. `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan)`.
    pub fn adapter_name(&self) -> String {
        format!("{} ({:?})", self.info.name, self.info.backend)
    }

    /// The largest buffer, in bytes, an op may bind.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits
            .max_buffer_size
            .min(self.limits.max_storage_buffer_binding_size)
    }

    /// Fails with the first error wgpu reported since the last check: a lost device, or a
    /// validation or out-of-memory error.
    pub(crate) fn check(&self) -> Result<(), GpuError> {
        let mut slot = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(reason) = &slot.lost {
            return Err(GpuError::DeviceLost(reason.clone()));
        }
        match slot.uncaptured.take() {
            Some(message) => Err(GpuError::Device(message)),
            None => Ok(()),
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
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.check()?;
        Ok(GpuBuffer {
            buffer,
            len,
            _element: PhantomData,
        })
    }

    /// A buffer holding a copy of `data`.
    pub fn upload<T: GpuElement>(&self, data: &[T]) -> Result<GpuBuffer<T>, GpuError> {
        self.check_size::<T>("buffer", data.len())?;
        let one = [T::default()];
        let contents: &[T] = if data.is_empty() { &one } else { data };
        let buffer = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytemuck::cast_slice(contents),
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            });
        self.check()?;
        Ok(GpuBuffer {
            buffer,
            len: data.len(),
            _element: PhantomData,
        })
    }

    /// Overwrites `buffer` with `data` (same length), reusing the device allocation.
    pub fn write<T: GpuElement>(&self, buffer: &GpuBuffer<T>, data: &[T]) -> Result<(), GpuError> {
        check_len("data", buffer.len, data.len())?;
        if !data.is_empty() {
            self.queue
                .write_buffer(&buffer.buffer, 0, bytemuck::cast_slice(data));
        }
        self.check()
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
        let bytes = std::mem::size_of_val(out) as u64;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("origami readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        encoder.copy_buffer_to_buffer(&buffer.buffer, 0, &staging, 0, bytes);
        self.queue.submit([encoder.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging
            .slice(..)
            .map_async(wgpu::MapMode::Read, move |r| drop(tx.send(r)));
        self.wait()?;
        rx.recv()
            .map_err(|_| GpuError::Device("the readback was dropped".into()))?
            .map_err(|e| GpuError::Device(format!("mapping the readback failed: {e}")))?;
        {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| GpuError::Device(format!("mapping the readback failed: {e}")))?;
            out.copy_from_slice(bytemuck::cast_slice(&view));
        }
        staging.unmap();
        self.check()
    }

    /// Blocks until every submitted command has finished.
    pub fn wait(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Device(e.to_string()))?;
        self.check()
    }

    /// A recorder for many op calls that are submitted together, with no round trip to the
    /// host between them.
    pub fn record(&self) -> Recorder<'_> {
        Recorder {
            gpu: self,
            encoder: self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("origami"),
                }),
            dispatches: 0,
        }
    }

    /// Submits what `recorder` holds; returns without waiting (see [`Gpu::wait`]).
    pub fn submit(&self, recorder: Recorder<'_>) -> Result<(), GpuError> {
        self.check()?;
        self.queue.submit([recorder.encoder.finish()]);
        self.check()
    }

    /// Records one op into a fresh recorder, submits it and waits: the one-call form.
    pub fn run(
        &self,
        op: impl FnOnce(&mut Recorder<'_>) -> Result<(), GpuError>,
    ) -> Result<(), GpuError> {
        let mut recorder = self.record();
        op(&mut recorder)?;
        self.submit(recorder)?;
        self.wait()
    }

    fn pipeline(&self, shader: Shader) -> Result<Arc<wgpu::ComputePipeline>, GpuError> {
        let mut cache = self
            .pipelines
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = cache.get(&shader) {
            return Ok(Arc::clone(p));
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(shader.label()),
                source: wgpu::ShaderSource::Wgsl(shader.source().into()),
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(shader.label()),
                layout: None,
                module: &module,
                entry_point: Some(shader.entry()),
                compilation_options: Default::default(),
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Shader {
                shader: shader.label(),
                message: e.to_string(),
            });
        }
        let pipeline = Arc::new(pipeline);
        cache.insert(shader, Arc::clone(&pipeline));
        Ok(pipeline)
    }
}

/// Op calls recorded into one command buffer; see [`Gpu::record`].
pub struct Recorder<'g> {
    gpu: &'g Gpu,
    encoder: wgpu::CommandEncoder,
    dispatches: usize,
}

/// One buffer bound to a shader: its binding number follows its place in the list.
pub(crate) enum Binding<'a> {
    F32(&'a GpuBuffer<f32>),
    U32(&'a GpuBuffer<u32>),
}

impl Binding<'_> {
    fn resource(&self) -> wgpu::BindingResource<'_> {
        match self {
            Binding::F32(b) => b.buffer.as_entire_binding(),
            Binding::U32(b) => b.buffer.as_entire_binding(),
        }
    }
}

/// Words of the uniform parameter block (`array<vec4<u32>, 16>` in the shaders).
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

    /// Records `shader` over `workgroups` workgroups (linearised: shaders read their index
    /// as `x + y * num_workgroups.x`, so any count up to 2^32 fits the per-dimension limit),
    /// with `params` as its uniform block (binding 0) and `buffers` at bindings 1, 2, ...
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
        let pipeline = self.gpu.pipeline(shader)?;
        let device = &self.gpu.device;
        // Every shader declares the same 64-word uniform block.
        let mut block = [0u32; PARAM_WORDS];
        block[..params.len()].copy_from_slice(params);
        let uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("origami params"),
            contents: bytemuck::cast_slice(&block),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        for (i, b) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: b.resource(),
            });
        }
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(shader.label()),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        {
            let mut pass = self
                .encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(shader.label()),
                    timestamp_writes: None,
                });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(x as u32, y as u32, 1);
        }
        self.dispatches += 1;
        self.gpu.check()
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
