//! The `sweep`, `report` and `plan` commands end to end: a smoke sweep of a few families
//! writes results.h5, results.csv, SVG and PNG charts and index.html with exit status 0;
//! `report` redraws them with a baseline; bad arguments exit 2 and name the problem. Where
//! h5py is available, it reads `results.h5` with every field.

mod common;

use origami_bench::results::{self, Results};
use std::path::{Path, PathBuf};
use std::process::Command;

fn bench(args: &[&str]) -> (i32, String, String) {
    bench_env(args, &[])
}

fn bench_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_origami-bench"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("origami-sweep-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn chart_count(dir: &Path, ext: &str) -> usize {
    std::fs::read_dir(dir.join("charts"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == ext)
        })
        .count()
}

#[test]
fn a_smoke_sweep_writes_results_charts_and_index() {
    let dir = tmp("smoke");
    let d = dir.to_str().unwrap();
    let (code, stdout, stderr) = bench(&[
        "sweep",
        "--profile",
        "smoke",
        "--family",
        "resnet_3x3",
        "--family",
        "max_window",
        "--out",
        d,
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("report:"), "{stdout}");
    assert!(stdout.contains("resnet_3x3") && stdout.contains("max_window"));
    let r = results::read_h5(&dir.join("results.h5")).unwrap();
    let m = r.machine.as_ref().expect("machine figures");
    assert!(m.peak_gflops_1 > 0.0 && m.triad_gbps_1 > 0.0);
    // resnet: 4 conv variants x 3 directions; max_window: 3 points x 4 variants x 2.
    assert_eq!(r.rows.len(), 12 + 3 * 4 * 2);
    assert!(
        r.rows
            .iter()
            .all(|r| r.status == "ok" || r.status == "unsupported")
    );
    assert!(
        r.rows
            .iter()
            .filter(|r| r.is_timed())
            .all(|r| r.gflops > 0.0)
    );
    let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), r.rows.len() + 1);
    // Per family and direction, a window chart per max_window direction, 3 rooflines.
    let charts = 3 + 2 + 2 + 3;
    assert_eq!(chart_count(&dir, "svg"), charts);
    assert_eq!(chart_count(&dir, "png"), charts);
    let index = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(index.contains("charts/roofline_forward.svg"));
    assert!(index.contains("charts/max_window_forward_window.svg"));

    // A baseline (here: our own rows renamed) adds speed-up charts.
    let mut base = r.clone();
    for row in &mut base.rows {
        row.backend = "pytorch".into();
        row.variant = "pytorch".into();
        row.median_s *= 2.0;
    }
    let base_path = dir.join("baseline.h5");
    results::write_h5(
        &base_path,
        &Results {
            machine: None,
            rows: base.rows,
        },
    )
    .unwrap();
    let (code, stdout, stderr) = bench(&["report", d, "--baseline", base_path.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(dir.join("charts/speedup_conv.svg").exists());
    assert!(dir.join("charts/speedup_pool.png").exists());
    let index = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(
        index.contains("2.00x") || index.contains("x</td>"),
        "speed-ups in the table"
    );

    h5py_reads(&dir.join("results.h5"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// h5py sees every field of the results table, with one value per row.
fn h5py_reads(path: &Path) {
    let Some(py) = common::python_with_h5py("the results.h5 check") else {
        return;
    };
    let script = r#"
import sys, h5py
fields = ["family", "op", "dims", "shape", "batch", "window", "variant", "backend", "direction",
          "threads", "status", "median_s", "min_s", "max_s", "repeats", "flop", "bytes",
          "gflops", "gbps", "peak_fraction", "max_error", "note"]
with h5py.File(sys.argv[1], "r") as f:
    fmt = f.attrs["format"]
    assert (fmt.decode() if isinstance(fmt, bytes) else fmt) == "origami-results/1", fmt
    for a in ["cpu", "simd", "peak_gflops_1", "peak_gflops_all", "triad_gbps_1", "copy_gbps_1"]:
        assert a in f.attrs, a
    t = f["results"]
    n = len(t["family"])
    for name in fields:
        assert len(t[name]) == n, name
    ok = [i for i in range(n) if t["status"][i] in (b"ok", "ok")]
    assert ok and all(t["median_s"][i] > 0 for i in ok)
print("ok")
"#;
    let out = Command::new(&py)
        .args(["-c", script])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn two_threads_give_correct_rows_that_say_so() {
    let out = tmp("threads");
    let o = out.to_str().unwrap();
    let args = [
        "sweep",
        "--out",
        o,
        "--profile",
        "smoke",
        "--family",
        "resnet_3x3",
        "--family",
        "max_2x2",
        "--threads",
        "2",
        "--json",
    ];
    let (code, stdout, stderr) = bench(&args);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let rows: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON row"))
        .collect();
    assert!(!rows.is_empty());
    for r in &rows {
        assert_eq!(r["threads"], 2, "{r}");
        assert_eq!(r["status"], "ok", "{r}");
    }
}

#[test]
fn bad_sweep_arguments_exit_2_and_name_the_value() {
    let out = tmp("bad");
    let o = out.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["--profile", "huge"], "huge"),
        (&["--family", "resnet_9x9"], "resnet_9x9"),
        (&["--variant", "fft"], "fft"),
        (&["--op", "min_pool"], "min_pool"),
        (&["--threads", "0"], "--threads 0"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["sweep", "--out", o];
        if extra[0] != "--profile" {
            args.extend_from_slice(&["--profile", "smoke"]);
        }
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = bench(&args);
        assert_eq!(code, 2, "{extra:?}: {stdout}{stderr}");
        assert!(stderr.contains(needle), "{extra:?}: {stderr}");
    }
    let (code, _, stderr) = bench(&["report", o]);
    assert_eq!(code, 2);
    assert!(stderr.contains("results.h5"), "{stderr}");
    // No Vulkan driver: the GPU backend is refused with the reason, not a panic.
    let no_driver = [
        ("VK_ICD_FILENAMES", "/nonexistent"),
        ("WGPU_BACKEND", "vulkan"),
    ];
    let args = [
        "sweep",
        "--out",
        o,
        "--profile",
        "smoke",
        "--backend",
        "gpu",
    ];
    let (code, stdout, stderr) = bench_env(&args, &no_driver);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("no GPU adapter"), "{stderr}");
    let golden = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../datasets/golden/conv_f32.h5"
    );
    let (code, stdout, stderr) = bench_env(&["eval", "--backend", "gpu", golden], &no_driver);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("no GPU adapter"), "{stderr}");
}

/// With an adapter (llvmpipe in CI), `--backend all` times GPU rows next to the CPU's,
/// with their transfers apart, and charts them.
#[test]
fn a_sweep_on_all_backends_has_gpu_rows() {
    if !common::gpu_or_skip("the GPU sweep") {
        return;
    }
    let out = tmp("all");
    let o = out.to_str().unwrap();
    let args = [
        "sweep",
        "--out",
        o,
        "--profile",
        "smoke",
        "--backend",
        "all",
        "--family",
        "sequence_conv1d",
        "--family",
        "max_window",
    ];
    let (code, stdout, stderr) = bench(&args);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let results = origami_bench::results::read_h5(&out.join("results.h5")).unwrap();
    let gpu: Vec<_> = results.rows.iter().filter(|r| r.backend == "gpu").collect();
    let variants: std::collections::BTreeSet<&str> =
        gpu.iter().map(|r| r.variant.as_str()).collect();
    assert_eq!(
        variants.into_iter().collect::<Vec<_>>(),
        ["direct", "prefix_sum", "tiled"]
    );
    for r in &gpu {
        assert_eq!(r.status, "ok", "{r:?}");
        assert!(r.max_error <= 1e-4 && r.transfer_s > 0.0, "{r:?}");
    }
    let chart = std::fs::read_to_string(out.join("charts/sequence_conv1d_forward.svg")).unwrap();
    assert!(
        chart.contains("gpu tiled + transfer"),
        "the chart has no GPU series"
    );
}

#[test]
fn plan_lists_points_with_their_work() {
    let (code, stdout, stderr) = bench(&["plan", "--profile", "smoke", "--family", "c3d"]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    let p = &lines[0];
    assert_eq!(p["op"], "conv");
    assert_eq!(p["dims"], 3);
    // 8 x 8 x 27 taps x (4 x 8 x 8) outputs, two FLOP each.
    assert_eq!(p["work"][0]["flop"], 2.0 * 8.0 * 8.0 * 27.0 * 256.0);
    assert_eq!(p["work"].as_array().unwrap().len(), 3);
}
