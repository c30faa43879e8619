//! The one error type of the crate.
//!
//! Every check happens when a geometry is built or when an operation receives its slices;
//! kernels themselves never check and never fail. Each variant names the value that is wrong,
//! so a message such as `stride[1] must be at least 1, got 0` can be shown to a user as is.

use core::fmt;

/// What went wrong, with the name (and spatial dimension, where it has one) of the bad value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A size or parameter is zero where at least 1 is required.
    Zero {
        /// The parameter, e.g. `"stride"`.
        name: &'static str,
        /// The spatial dimension, for per-dimension parameters.
        dim: Option<usize>,
    },
    /// A channel count is not divisible by `groups`.
    NotDivisible {
        /// `"in_channels"` or `"out_channels"`.
        name: &'static str,
        /// The channel count.
        value: usize,
        /// The number of groups.
        groups: usize,
    },
    /// A size computed from the parameters does not fit in `usize`.
    Overflow {
        /// The quantity that overflowed, e.g. `"input length"`.
        name: &'static str,
    },
    /// The (dilated) window does not fit inside the padded input along a dimension, so the
    /// output would be empty.
    WindowTooLarge {
        /// The spatial dimension.
        dim: usize,
        /// Input size plus padding on both sides.
        padded_input: usize,
        /// `dilation * (kernel_size - 1) + 1`.
        window: usize,
    },
    /// Padding exceeds what the operation allows (pooling: half the kernel, as PyTorch).
    PaddingTooLarge {
        /// The spatial dimension.
        dim: usize,
        /// The padding given.
        padding: usize,
        /// The largest padding allowed.
        limit: usize,
    },
    /// A parameter has a value outside its allowed range (for example `output_padding` not
    /// smaller than the stride).
    InvalidValue {
        /// The parameter.
        name: &'static str,
        /// The spatial dimension, for per-dimension parameters.
        dim: Option<usize>,
        /// The value given.
        value: usize,
        /// Why it is not allowed.
        reason: &'static str,
    },
    /// A slice passed to an operation has the wrong length.
    LengthMismatch {
        /// Which slice: `"input"`, `"weight"`, `"bias"`, `"output"`, `"grad_output"`, ...
        buffer: &'static str,
        /// The length the geometry requires.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// The scratch slice is shorter than the operation's `scratch_len` query says.
    ScratchTooSmall {
        /// Elements required.
        required: usize,
        /// Elements given.
        actual: usize,
    },
    /// The algorithm cannot serve this geometry (for example `Fold` pooling with overlapping
    /// windows). Nothing falls back silently: choose another algorithm or `Auto`.
    Unsupported {
        /// The algorithm asked for.
        algorithm: &'static str,
        /// Why it cannot serve the geometry.
        reason: &'static str,
    },
}

/// Writes `name` or `name[dim]`.
struct Indexed(&'static str, Option<usize>);

impl fmt::Display for Indexed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(d) => write!(f, "{}[{}]", self.0, d),
            None => f.write_str(self.0),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Zero { name, dim } => {
                write!(f, "{} must be at least 1, got 0", Indexed(name, dim))
            }
            Error::NotDivisible {
                name,
                value,
                groups,
            } => write!(f, "{name} = {value} is not divisible by groups = {groups}"),
            Error::Overflow { name } => write!(f, "{name} overflows usize"),
            Error::WindowTooLarge {
                dim,
                padded_input,
                window,
            } => write!(
                f,
                "window of extent {window} (dilation * (kernel_size - 1) + 1) does not fit in \
                 the padded input of size {padded_input} along dimension {dim}"
            ),
            Error::PaddingTooLarge {
                dim,
                padding,
                limit,
            } => write!(
                f,
                "padding[{dim}] = {padding} is larger than the limit {limit} (half the kernel size)"
            ),
            Error::InvalidValue {
                name,
                dim,
                value,
                reason,
            } => write!(f, "{} = {value}: {reason}", Indexed(name, dim)),
            Error::LengthMismatch {
                buffer,
                expected,
                actual,
            } => write!(
                f,
                "{buffer} has length {actual}, the geometry requires {expected}"
            ),
            Error::ScratchTooSmall { required, actual } => write!(
                f,
                "scratch has length {actual}, the operation requires at least {required}"
            ),
            Error::Unsupported { algorithm, reason } => {
                write!(
                    f,
                    "algorithm {algorithm} cannot serve this geometry: {reason}"
                )
            }
        }
    }
}

impl core::error::Error for Error {}

/// Checks that `buffer` has exactly `expected` elements.
pub(crate) fn check_len(buffer: &'static str, expected: usize, actual: usize) -> Result<(), Error> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            buffer,
            expected,
            actual,
        })
    }
}

/// Checks that the scratch slice holds at least `required` elements.
pub(crate) fn check_scratch(required: usize, actual: usize) -> Result<(), Error> {
    if actual >= required {
        Ok(())
    } else {
        Err(Error::ScratchTooSmall { required, actual })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_value() {
        let e = Error::Zero {
            name: "stride",
            dim: Some(1),
        };
        assert_eq!(e.to_string(), "stride[1] must be at least 1, got 0");
        let e = Error::NotDivisible {
            name: "in_channels",
            value: 6,
            groups: 4,
        };
        assert_eq!(
            e.to_string(),
            "in_channels = 6 is not divisible by groups = 4"
        );
        let e = Error::LengthMismatch {
            buffer: "weight",
            expected: 27,
            actual: 26,
        };
        assert_eq!(
            e.to_string(),
            "weight has length 26, the geometry requires 27"
        );
    }
}
