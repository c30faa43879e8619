//! Interoperability with h5py: h5py reads the files this crate writes, and this crate reads a
//! file that h5py rewrote in another layout of the same format (other case names, float64,
//! a subset of the expected datasets, chunked and gzip+shuffle compressed datasets).
//!
//! Runs where `$ORIGAMI_PYTHON` (default `python3`) imports h5py; elsewhere it reports itself
//! skipped, unless `ORIGAMI_REQUIRE_H5PY` is set (as `.ci/run` does), when it fails.

use origami_bench::case_file::{read_cases, write_cases};
use origami_bench::eval::eval_files;
use std::path::PathBuf;
use std::process::Command;

const REWRITE: &str = r#"
import sys, h5py, numpy as np
src, dst = sys.argv[1], sys.argv[2]
with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
    fmt = f.attrs["format"]
    fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
    assert fmt == "origami-cases/1", fmt
    g.attrs["format"] = fmt
    for i, name in enumerate(sorted(f.keys())):
        a, b = f[name], g.create_group("rewritten_%02d_%s" % (i, name.upper()))
        for k, v in a.attrs.items():
            b.attrs[k] = v.decode() if isinstance(v, bytes) else v
        for k in a.keys():
            if k == "grad_input" and i % 2 == 1:
                continue  # a subset of the expected datasets
            data = a[k][()]
            if data.dtype.kind == "f":
                data = data.astype(np.float64)
            if data.ndim >= 1 and data.size > 8:
                b.create_dataset(k, data=data, chunks=True, compression="gzip", shuffle=True)
            else:
                b.create_dataset(k, data=data)
        # The tolerances of float32 results, which the float64 copy inherits.
        b.attrs["rtol"] = 1e-4
        b.attrs["atol"] = 1e-6
print("ok")
"#;

mod common;

#[test]
fn h5py_reads_ours_and_we_read_h5pys() {
    let Some(py) = common::python_with_h5py("the case-file interop test") else {
        return;
    };
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../datasets/golden");
    let dir = std::env::temp_dir().join(format!("origami-h5py-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ours = dir.join("ours.h5");
    let theirs = dir.join("theirs.h5");
    let mut cases = read_cases(&golden.join("conv_f32.h5")).unwrap();
    cases.truncate(4);
    cases.extend(
        read_cases(&golden.join("pool_f32.h5"))
            .unwrap()
            .into_iter()
            .take(6),
    );
    write_cases(&ours, &cases).unwrap();

    let out = Command::new(&py)
        .args(["-c", REWRITE])
        .arg(&ours)
        .arg(&theirs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "h5py could not read our file: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let rewritten = read_cases(&theirs).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rewritten.len(), cases.len());
    assert!(rewritten.iter().any(|c| c.grad_input.is_none()));
    let mut report = Vec::new();
    let summary = eval_files(
        &[&theirs],
        &[],
        origami_bench::run::Backends::Cpu,
        &mut report,
    )
    .unwrap();
    let report = String::from_utf8(report).unwrap();
    assert_eq!((summary.failed, summary.unreadable), (0, 0), "{report}");
    assert!(summary.passed >= 20, "{report}");
}
