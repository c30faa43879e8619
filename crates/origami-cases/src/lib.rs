//! The golden case format of origami (`origami-cases/1`, `datasets/CASE-FORMAT.md`): what a case
//! is ([`case`]) and how case files are read and written as HDF5 ([`case_file`]).
//!
//! The harness (`origami-bench`) re-exports both modules; the firmware's build script uses
//! this crate alone to embed the small cases.
#![warn(missing_docs)]

pub mod case;
pub mod case_file;
