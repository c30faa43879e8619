//! The GPU backend's error type: the kernel crate's geometry and length errors, plus what
//! only a device can get wrong.

use std::fmt;

/// What went wrong. Geometry and slice-length problems are the kernel crate's
/// [`origami_kernels::Error`], unchanged, so a bad shape reads the same on both backends.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GpuError {
    /// A geometry or length error, as the CPU kernels report it.
    Kernel(origami_kernels::Error),
    /// No GPU adapter was found (no driver, or no device the driver accepts).
    NoAdapter(String),
    /// The adapter refused to open a device.
    NoDevice(String),
    /// A buffer (or dispatch) would exceed the device's limits.
    TooLarge {
        /// Which buffer, e.g. `"input"`, or `"workgroups"` for a dispatch.
        buffer: &'static str,
        /// Its size in bytes (workgroups for a dispatch).
        bytes: u64,
        /// The device's limit in the same unit.
        limit: u64,
    },
    /// A shader failed to compile or validate on this device.
    Shader {
        /// The shader's label.
        shader: &'static str,
        /// The compiler's message.
        message: String,
    },
    /// The device was lost (driver reset, GPU removed); open a new [`crate::Gpu`].
    DeviceLost(String),
    /// The device reported a validation or out-of-memory error.
    Device(String),
}

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuError::Kernel(e) => e.fmt(f),
            GpuError::NoAdapter(why) => write!(f, "no GPU adapter found: {why}"),
            GpuError::NoDevice(why) => write!(f, "the GPU adapter refused a device: {why}"),
            GpuError::TooLarge {
                buffer,
                bytes,
                limit,
            } => write!(
                f,
                "{buffer} needs {bytes} bytes but this device allows at most {limit} per \
                 binding; split the batch"
            ),
            GpuError::Shader { shader, message } => {
                write!(f, "shader {shader} failed to compile: {message}")
            }
            GpuError::DeviceLost(why) => write!(f, "the GPU device was lost: {why}"),
            GpuError::Device(why) => write!(f, "GPU error: {why}"),
        }
    }
}

impl std::error::Error for GpuError {}

impl From<origami_kernels::Error> for GpuError {
    fn from(e: origami_kernels::Error) -> Self {
        GpuError::Kernel(e)
    }
}
