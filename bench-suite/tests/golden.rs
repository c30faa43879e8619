//! The PyTorch golden cases, on every variant, on every `cargo test`.

mod common;

use origami_bench::case::Op;
use origami_bench::case_file::read_cases;
use origami_bench::eval::{Summary, eval_case};
use origami_bench::run::{Backends, Variant, run};
use std::collections::HashSet;
use std::path::PathBuf;

fn golden_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../datasets/golden");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("datasets/golden exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "h5"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_golden_case_passes_on_every_variant() {
    let files = golden_files();
    assert!(files.len() >= 4, "golden files missing: {files:?}");
    let mut summary = Summary::default();
    let mut out = Vec::new();
    let mut served: HashSet<(Op, &str, usize)> = HashSet::new();
    for file in &files {
        let cases = read_cases(file).unwrap_or_else(|e| panic!("{e}"));
        for case in &cases {
            eval_case(case, &[], Backends::Cpu, &mut out, &mut summary).unwrap();
            for v in Variant::all_for(case.op) {
                if run(case, v).is_ok() {
                    served.insert((case.op, v.name(), case.dims));
                }
            }
        }
    }
    let report = String::from_utf8(out).unwrap();
    assert_eq!(summary.failed, 0, "{report}");
    assert!(summary.passed > 300, "{report}");
    // Every variant runs on every op it applies to, and all but Fold (which needs tiling
    // windows) in every number of dimensions.
    for op in Op::ALL {
        for v in Variant::all_for(op) {
            let dims_run: Vec<usize> = (1..=3)
                .filter(|&d| served.contains(&(op, v.name(), d)))
                .collect();
            let needed = if v.name() == "fold" { 1 } else { 3 };
            assert!(
                dims_run.len() >= needed,
                "{} {} ran in {dims_run:?}",
                op.name(),
                v.name()
            );
        }
    }
}

/// The same cases on the GPU backend (its f32 cases; f64 ones are reported as not served).
/// Skipped, with the reason, without an adapter; `ORIGAMI_REQUIRE_GPU=1` makes that a failure.
#[test]
fn every_golden_case_passes_on_the_gpu() {
    if !common::gpu_or_skip("the GPU golden cases") {
        return;
    }
    let mut summary = Summary::default();
    let mut out = Vec::new();
    for file in golden_files() {
        for case in &read_cases(&file).unwrap_or_else(|e| panic!("{e}")) {
            eval_case(case, &[], Backends::Gpu, &mut out, &mut summary).unwrap();
        }
    }
    let report = String::from_utf8(out).unwrap();
    assert_eq!(summary.failed, 0, "{report}");
    assert!(summary.passed > 150, "{report}");
}
