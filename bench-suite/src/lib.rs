//! The origami harness: reading and writing golden case files, running them on every
//! variant of the kernels (`eval`), finite-difference checks of every gradient
//! (`gradcheck`), the machine's ceilings (`machine`), benchmark sweeps over shape families
//! (`sweep`, also behind `cargo bench`), their results (`results`) and charts (`report`).
//! The command-line front end is `src/main.rs`.
#![warn(missing_docs)]

pub mod case;
pub mod case_file;
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
