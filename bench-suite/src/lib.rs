//! The origami harness: reading and writing golden case files, running them on every
//! variant of the kernels (`eval`), finite-difference checks of every gradient
//! (`gradcheck`), the machine's ceilings (`machine`), benchmark sweeps over shape families
//! (`sweep`, also behind `cargo bench`), their results (`results`) and charts (`report`).
//! The command-line front end is `src/main.rs`.
#![warn(missing_docs)]

/// The case format lives in its own crate (`origami-cases`); the harness re-exports it.
pub use origami_cases::{case, case_file};

pub mod compare;
pub mod eval;
pub mod family;
pub mod gpu;
pub mod gradcheck;
pub mod machine;
pub mod report;
pub mod results;
pub mod run;
pub mod sweep;
pub mod threads;
pub mod time;
