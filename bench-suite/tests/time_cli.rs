//! `origami-bench time` on a case file that carries inputs only: every variant (auto
//! included) timed forward and backward, JSON lines with the fields scripts rely on.

use hdf5_pure::{AttrValue, FileBuilder};
use std::process::Command;

fn inputs_only_file(path: &std::path::Path) {
    let mut fb = FileBuilder::new();
    fb.set_attr("format", AttrValue::String("origami-cases/1".into()));
    let ints = |v: &[i64]| AttrValue::I64Array(v.to_vec());
    let mut g = fb.create_group("my_conv");
    g.set_attr("op", AttrValue::String("conv".into()));
    g.set_attr("dims", AttrValue::I64(2));
    g.set_attr("stride", ints(&[1, 1]));
    g.set_attr("padding_lo", ints(&[1, 1]));
    g.set_attr("padding_hi", ints(&[1, 1]));
    let x: Vec<f32> = (0..2 * 3 * 9 * 9).map(|i| (i % 7) as f32 * 0.1).collect();
    g.create_dataset("input")
        .with_f32_data(&x)
        .with_shape(&[2, 3, 9, 9]);
    let w: Vec<f32> = (0..4 * 3 * 3 * 3).map(|i| (i % 5) as f32 * 0.1).collect();
    g.create_dataset("weight")
        .with_f32_data(&w)
        .with_shape(&[4, 3, 3, 3]);
    fb.add_group(g.finish());
    let mut g = fb.create_group("my_pool");
    g.set_attr("op", AttrValue::String("max_pool".into()));
    g.set_attr("dims", AttrValue::I64(1));
    g.set_attr("stride", ints(&[1]));
    g.set_attr("kernel_size", ints(&[15]));
    g.set_attr("padding", ints(&[7]));
    let x: Vec<f32> = (0..3 * 200).map(|i| ((i * 37) % 11) as f32).collect();
    g.create_dataset("input")
        .with_f32_data(&x)
        .with_shape(&[1, 3, 200]);
    fb.add_group(g.finish());
    fb.write(path).unwrap();
}

#[test]
fn time_reports_every_variant_forward_and_backward() {
    let path = std::env::temp_dir().join(format!("origami-time-{}.h5", std::process::id()));
    inputs_only_file(&path);
    let out = Command::new(env!("CARGO_BIN_EXE_origami-bench"))
        .args(["time", "--json", "--target-s", "0.005"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // conv: auto, direct, unrolled, winograd; pool: auto, direct, fold, prefix_sum; two
    // directions each.
    assert_eq!(rows.len(), 2 * (4 + 4), "{stdout}");
    for r in &rows {
        let ok = r["status"] == "ok";
        assert!(ok || r["variant"] == "fold", "{r}");
        if ok {
            assert!(r["median_s"].as_f64().unwrap() > 0.0, "{r}");
        }
        assert!(
            r["direction"] == "forward" || r["direction"] == "backward",
            "{r}"
        );
    }
    let auto = rows
        .iter()
        .find(|r| r["case"] == "my_pool" && r["variant"] == "auto")
        .unwrap();
    assert_eq!(auto["resolved"], "prefix_sum", "a 15-tap window");
    // A baseline's times come back beside ours.
    let base = path.with_extension("jsonl");
    std::fs::write(
        &base,
        "{\"case\": \"my_conv\", \"direction\": \"forward\", \"median_s\": 0.5}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_origami-bench"))
        .args([
            "time",
            "--json",
            "--target-s",
            "0.005",
            "--variant",
            "auto",
            "--baseline",
        ])
        .arg(&base)
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let with_base: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &serde_json::Value| r.get("baseline_s").is_some())
        .collect();
    assert_eq!(with_base.len(), 1, "{stdout}");
    assert_eq!(with_base[0]["case"], "my_conv");
    let _ = std::fs::remove_file(&base);
    let bad = Command::new(env!("CARGO_BIN_EXE_origami-bench"))
        .args(["time", "--variant", "fft"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("fft"));
    let _ = std::fs::remove_file(&path);
}
