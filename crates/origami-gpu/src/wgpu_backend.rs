//! The wgpu backend: adapter, device, queue, compiled pipelines, and the error slot that
//! turns wgpu's asynchronous failures into [`GpuError`]s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use wgpu::util::DeviceExt;

use crate::error::GpuError;
use crate::shaders::Shader;

/// Errors wgpu reports through callbacks (validation, out of memory, device loss), collected
/// until the next check.
#[derive(Default)]
struct ErrorSlot {
    lost: Option<String>,
    uncaptured: Option<String>,
}

pub(crate) struct WgpuDevice {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    pipelines: Mutex<HashMap<Shader, Arc<wgpu::ComputePipeline>>>,
    errors: Arc<Mutex<ErrorSlot>>,
}

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl WgpuDevice {
    pub(crate) async fn open() -> Result<Self, GpuError> {
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
        Ok(WgpuDevice {
            device,
            queue,
            info,
            limits,
            pipelines: Mutex::new(HashMap::new()),
            errors,
        })
    }

    pub(crate) fn name(&self) -> String {
        format!("{} ({:?})", self.info.name, self.info.backend)
    }

    pub(crate) fn max_binding_bytes(&self) -> u64 {
        self.limits
            .max_buffer_size
            .min(self.limits.max_storage_buffer_binding_size)
    }

    /// Fails with the first error wgpu reported since the last check.
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

    pub(crate) fn zeros(&self, bytes: u64) -> Result<wgpu::Buffer, GpuError> {
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes,
            usage: STORAGE,
            mapped_at_creation: false,
        });
        self.check()?;
        Ok(buffer)
    }

    pub(crate) fn upload(&self, bytes: &[u8]) -> Result<wgpu::Buffer, GpuError> {
        let buffer = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytes,
                usage: STORAGE,
            });
        self.check()?;
        Ok(buffer)
    }

    pub(crate) fn write(&self, buffer: &wgpu::Buffer, bytes: &[u8]) -> Result<(), GpuError> {
        self.queue.write_buffer(buffer, 0, bytes);
        self.check()
    }

    /// Copies the first `out.len()` bytes of `buffer` back, waiting for submitted work.
    pub(crate) fn read_into(&self, buffer: &wgpu::Buffer, out: &mut [u8]) -> Result<(), GpuError> {
        let bytes = out.len() as u64;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("origami readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, bytes);
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
            out.copy_from_slice(&view);
        }
        staging.unmap();
        self.check()
    }

    pub(crate) fn wait(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Device(e.to_string()))?;
        self.check()
    }

    pub(crate) fn encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("origami"),
            })
    }

    pub(crate) fn submit(&self, encoder: wgpu::CommandEncoder) -> Result<(), GpuError> {
        self.check()?;
        self.queue.submit([encoder.finish()]);
        self.check()
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

    /// Records one dispatch of `shader` on a `grid` of workgroups, with the uniform block
    /// `params` at binding 0 and `buffers` at bindings 1, 2, ...
    pub(crate) fn dispatch(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        shader: Shader,
        params: &[u32],
        buffers: &[&wgpu::Buffer],
        grid: (u32, u32),
    ) -> Result<(), GpuError> {
        let pipeline = self.pipeline(shader)?;
        let uniform = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("origami params"),
                contents: bytemuck::cast_slice(params),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        for (i, b) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: b.as_entire_binding(),
            });
        }
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(shader.label()),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(shader.label()),
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(grid.0, grid.1, 1);
        }
        self.check()
    }
}
