//! Packing a geometry into the kernels' parameter block: every value checked to fit the
//! kernels' 32-bit index arithmetic, so no index a kernel computes can wrap.

use origami_kernels::window::Axis;

use crate::error::GpuError;

/// `value` as a kernel word, or an overflow error naming it: below `i32::MAX`, because the
/// kernels also take signed differences of coordinates.
pub(crate) fn index(value: usize, name: &'static str) -> Result<u32, GpuError> {
    u32::try_from(value)
        .ok()
        .filter(|&v| v < i32::MAX as u32)
        .ok_or(GpuError::Kernel(origami_kernels::Error::Overflow { name }))
}

/// Writes the three promoted axes as six words each (`input, output, kernel, stride,
/// dilation, pad`: the kernels' `Axis`) into `words`, checking that padded coordinates
/// `o * stride + k * dilation` fit too.
pub(crate) fn axes(axes: &[Axis; 3], words: &mut [u32]) -> Result<(), GpuError> {
    for (a, axis) in axes.iter().enumerate() {
        let values = [
            axis.input,
            axis.output,
            axis.kernel,
            axis.stride,
            axis.dilation,
            axis.pad_lo,
        ];
        for (w, value) in values.into_iter().enumerate() {
            words[6 * a + w] = index(value, "spatial extent")?;
        }
        index(
            axis.output
                .saturating_mul(axis.stride)
                .saturating_add(axis.kernel.saturating_mul(axis.dilation)),
            "padded input size",
        )?;
    }
    Ok(())
}
