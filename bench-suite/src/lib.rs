//! The origami harness: reading and writing golden case files, running them on every
//! variant of the kernels (`eval`), and finite-difference checks of every gradient
//! (`gradcheck`). The command-line front end is `src/main.rs`.
#![warn(missing_docs)]

pub mod case;
pub mod case_file;
pub mod compare;
pub mod eval;
pub mod gradcheck;
pub mod run;
