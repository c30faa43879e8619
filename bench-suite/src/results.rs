//! Sweep results: one [`Row`] per op, variant, backend, shape and direction, stored as
//! `results.h5` (format `origami-results/1`), `results.csv` and JSON lines.
//!
//! The HDF5 layout is a table stored by columns, which h5py and pandas read directly: the
//! group `/results` holds one 1-D dataset per field of [`Row`] (UTF-8 strings, `int64` or
//! `float64`), all of the same length; the root's attributes hold the [`Machine`] figures
//! and the build's SIMD level. PyTorch baselines (`scripts/torch_baseline.py`) use the same
//! layout with `backend = "pytorch"`.

use crate::machine::Machine;
use hdf5_pure::{AttrValue, File, FileBuilder};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The value of the root attribute `format`.
pub const FORMAT: &str = "origami-results/1";

/// One measurement (or one refusal) of the sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Shape family.
    pub family: String,
    /// `conv`, `max_pool`, `avg_pool` or `sum_pool`.
    pub op: String,
    /// Spatial dimensions.
    pub dims: i64,
    /// The shape's label (see `Shape::label`).
    pub shape: String,
    /// Images in the batch.
    pub batch: i64,
    /// Kernel extent along the last axis (the x axis of window charts).
    pub window: i64,
    /// `auto`, `direct`, `unrolled`, `fold`, `prefix_sum`, or a baseline's name.
    pub variant: String,
    /// `cpu`, `gpu`, or `pytorch` for baselines.
    pub backend: String,
    /// `forward`, `backward_input` or `backward_weight`.
    pub direction: String,
    /// Threads the kernel ran on.
    pub threads: i64,
    /// `ok`; `wrong` (checked and failed: never timed); `unsupported` (the variant refused
    /// the geometry, with its reason in `note`); `error`.
    pub status: String,
    /// Median seconds per call (NaN when not timed).
    pub median_s: f64,
    /// Fastest call.
    pub min_s: f64,
    /// Slowest call.
    pub max_s: f64,
    /// Timed calls.
    pub repeats: i64,
    /// Nominal FLOP per call.
    pub flop: f64,
    /// Least bytes moved per call.
    pub bytes: f64,
    /// `flop / median_s / 1e9`.
    pub gflops: f64,
    /// `bytes / median_s / 1e9`.
    pub gbps: f64,
    /// Share of the machine's ceiling: FMA peak for convolution, triad bandwidth for pooling.
    pub peak_fraction: f64,
    /// `max |ours - reference| / max |reference|` in the check before timing.
    pub max_error: f64,
    /// GPU rows: median seconds to upload the pass's inputs and download its result, timed
    /// apart from the kernel (`median_s`); NaN on the CPU. Files without the column read as
    /// NaN.
    #[serde(default = "nan")]
    pub transfer_s: f64,
    /// Why a row is not `ok`.
    pub note: String,
}

fn nan() -> f64 {
    f64::NAN
}

impl Row {
    /// Whether the row holds a timing.
    pub fn is_timed(&self) -> bool {
        self.status == "ok" && self.median_s.is_finite() && self.median_s > 0.0
    }

    /// Fills `gflops`, `gbps` and `peak_fraction` from the timing and the machine.
    pub fn derive_rates(&mut self, machine: Option<&Machine>) {
        if !self.is_timed() {
            return;
        }
        self.gflops = self.flop / self.median_s / 1e9;
        self.gbps = self.bytes / self.median_s / 1e9;
        if let Some(m) = machine {
            let threads = self.threads.max(1) as usize;
            self.peak_fraction = if self.op == "conv" {
                self.gflops / m.peak_gflops(threads)
            } else {
                self.gbps / m.bandwidth_gbps(threads)
            };
        }
    }
}

/// A results file: the rows and the machine they were measured on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Results {
    /// Where the rows were measured (absent in baselines made elsewhere).
    pub machine: Option<Machine>,
    /// The rows.
    pub rows: Vec<Row>,
}

type StrCol = (&'static str, fn(&Row) -> &str, fn(&mut Row, String));
type IntCol = (&'static str, fn(&Row) -> i64, fn(&mut Row, i64));
type FloatCol = (&'static str, fn(&Row) -> f64, fn(&mut Row, f64));

const STRINGS: [StrCol; 8] = [
    ("family", |r| &r.family, |r, v| r.family = v),
    ("op", |r| &r.op, |r, v| r.op = v),
    ("shape", |r| &r.shape, |r, v| r.shape = v),
    ("variant", |r| &r.variant, |r, v| r.variant = v),
    ("backend", |r| &r.backend, |r, v| r.backend = v),
    ("direction", |r| &r.direction, |r, v| r.direction = v),
    ("status", |r| &r.status, |r, v| r.status = v),
    ("note", |r| &r.note, |r, v| r.note = v),
];

const INTS: [IntCol; 5] = [
    ("dims", |r| r.dims, |r, v| r.dims = v),
    ("batch", |r| r.batch, |r, v| r.batch = v),
    ("window", |r| r.window, |r, v| r.window = v),
    ("threads", |r| r.threads, |r, v| r.threads = v),
    ("repeats", |r| r.repeats, |r, v| r.repeats = v),
];

const FLOATS: [FloatCol; 9] = [
    ("median_s", |r| r.median_s, |r, v| r.median_s = v),
    ("min_s", |r| r.min_s, |r, v| r.min_s = v),
    ("max_s", |r| r.max_s, |r, v| r.max_s = v),
    ("flop", |r| r.flop, |r, v| r.flop = v),
    ("bytes", |r| r.bytes, |r, v| r.bytes = v),
    ("gflops", |r| r.gflops, |r, v| r.gflops = v),
    ("gbps", |r| r.gbps, |r, v| r.gbps = v),
    (
        "peak_fraction",
        |r| r.peak_fraction,
        |r, v| r.peak_fraction = v,
    ),
    ("max_error", |r| r.max_error, |r, v| r.max_error = v),
];

/// Columns added after the first files were written: read as NaN when absent.
const OPTIONAL_FLOATS: [FloatCol; 1] = [("transfer_s", |r| r.transfer_s, |r, v| r.transfer_s = v)];

type MachineCol = (&'static str, fn(&Machine) -> f64, fn(&mut Machine, f64));

const MACHINE_FLOATS: [MachineCol; 6] = [
    (
        "peak_gflops_1",
        |m| m.peak_gflops_1,
        |m, v| m.peak_gflops_1 = v,
    ),
    (
        "peak_gflops_all",
        |m| m.peak_gflops_all,
        |m, v| m.peak_gflops_all = v,
    ),
    ("copy_gbps_1", |m| m.copy_gbps_1, |m, v| m.copy_gbps_1 = v),
    (
        "triad_gbps_1",
        |m| m.triad_gbps_1,
        |m, v| m.triad_gbps_1 = v,
    ),
    (
        "copy_gbps_all",
        |m| m.copy_gbps_all,
        |m, v| m.copy_gbps_all = v,
    ),
    (
        "triad_gbps_all",
        |m| m.triad_gbps_all,
        |m, v| m.triad_gbps_all = v,
    ),
];

/// Writes `results.h5`.
pub fn write_h5(path: &Path, results: &Results) -> Result<(), String> {
    let mut fb = FileBuilder::new();
    fb.set_attr("format", AttrValue::String(FORMAT.into()));
    if let Some(m) = &results.machine {
        fb.set_attr("cpu", AttrValue::String(m.cpu.clone()));
        fb.set_attr("simd", AttrValue::String(m.simd.clone()));
        fb.set_attr("lanes", AttrValue::I64(m.lanes as i64));
        fb.set_attr("machine_threads", AttrValue::I64(m.threads as i64));
        for (name, get, _) in MACHINE_FLOATS {
            fb.set_attr(name, AttrValue::F64(get(m)));
        }
    }
    let rows = &results.rows;
    let mut g = fb.create_group("results");
    for (name, get, _) in STRINGS {
        let values: Vec<&str> = rows.iter().map(get).collect();
        let width = values.iter().map(|s| s.len()).max().unwrap_or(0).max(1) as u32;
        g.create_dataset(name)
            .with_strings_sized(&values, width)
            .map_err(|e| format!("cannot store column {name}: {e}"))?;
    }
    for (name, get, _) in INTS {
        let values: Vec<i64> = rows.iter().map(get).collect();
        g.create_dataset(name).with_i64_data(&values);
    }
    for (name, get, _) in FLOATS.iter().chain(&OPTIONAL_FLOATS) {
        let values: Vec<f64> = rows.iter().map(get).collect();
        g.create_dataset(name).with_f64_data(&values);
    }
    fb.add_group(g.finish());
    fb.write(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Reads a results (or baseline) file written by [`write_h5`] or by
/// `scripts/torch_baseline.py`.
pub fn read_h5(path: &Path) -> Result<Results, String> {
    let err = |m: String| format!("{}: {m}", path.display());
    let file = File::open(path).map_err(|e| err(format!("cannot read HDF5: {e}")))?;
    let attrs = file
        .root()
        .attrs()
        .map_err(|e| err(format!("cannot read root attributes: {e}")))?;
    let text = |name: &str| attrs.get(name).and_then(crate::case_file::attr_string);
    let number = |name: &str| match attrs.get(name) {
        Some(AttrValue::F64(v)) => Some(*v),
        Some(AttrValue::F32(v)) => Some(f64::from(*v)),
        Some(AttrValue::I64(v)) => Some(*v as f64),
        _ => None,
    };
    match text("format") {
        Some(f) if f == FORMAT => {}
        other => {
            return Err(err(format!(
                "root attribute format is {other:?}, expected {FORMAT:?}"
            )));
        }
    }
    let machine = text("cpu").map(|cpu| {
        let mut m = Machine {
            cpu,
            simd: text("simd").unwrap_or_default(),
            lanes: number("lanes").unwrap_or(0.0) as usize,
            threads: number("machine_threads").unwrap_or(1.0) as usize,
            peak_gflops_1: f64::NAN,
            peak_gflops_all: f64::NAN,
            copy_gbps_1: f64::NAN,
            triad_gbps_1: f64::NAN,
            copy_gbps_all: f64::NAN,
            triad_gbps_all: f64::NAN,
        };
        for (name, _, set) in MACHINE_FLOATS {
            set(&mut m, number(name).unwrap_or(f64::NAN));
        }
        m
    });
    let group = file
        .group("results")
        .map_err(|e| err(format!("cannot open group results: {e}")))?;
    let dataset = |name: &str| {
        group
            .dataset(name)
            .map_err(|e| err(format!("cannot open column {name}: {e}")))
    };
    let mut len = None;
    let mut check_len = |name: &str, n: usize| match len {
        None => {
            len = Some(n);
            Ok(())
        }
        Some(l) if l == n => Ok(()),
        Some(l) => Err(err(format!("column {name} has {n} rows, others {l}"))),
    };
    let mut strings = Vec::new();
    for (name, _, set) in STRINGS {
        let v = dataset(name)?
            .read_string()
            .map_err(|e| err(format!("cannot read column {name} as strings: {e}")))?;
        check_len(name, v.len())?;
        strings.push((set, v));
    }
    let mut ints = Vec::new();
    for (name, _, set) in INTS {
        let v = dataset(name)?
            .read_i64()
            .map_err(|e| err(format!("cannot read column {name} as int64: {e}")))?;
        check_len(name, v.len())?;
        ints.push((set, v));
    }
    let mut floats = Vec::new();
    for (name, _, set) in FLOATS {
        let v = dataset(name)?
            .read_f64()
            .map_err(|e| err(format!("cannot read column {name} as float64: {e}")))?;
        check_len(name, v.len())?;
        floats.push((set, v));
    }
    for (name, _, set) in OPTIONAL_FLOATS {
        if let Ok(d) = group.dataset(name) {
            let v = d
                .read_f64()
                .map_err(|e| err(format!("cannot read column {name} as float64: {e}")))?;
            check_len(name, v.len())?;
            floats.push((set, v));
        }
    }
    let rows = (0..len.unwrap_or(0))
        .map(|i| {
            let mut r = Row::empty();
            for (set, v) in &strings {
                set(&mut r, v[i].clone());
            }
            for (set, v) in &ints {
                set(&mut r, v[i]);
            }
            for (set, v) in &floats {
                set(&mut r, v[i]);
            }
            r
        })
        .collect();
    Ok(Results { machine, rows })
}

impl Row {
    /// A row with empty strings, zero counts and NaN measurements.
    pub fn empty() -> Row {
        Row {
            family: String::new(),
            op: String::new(),
            dims: 0,
            shape: String::new(),
            batch: 0,
            window: 0,
            variant: String::new(),
            backend: String::new(),
            direction: String::new(),
            threads: 1,
            status: String::new(),
            median_s: f64::NAN,
            min_s: f64::NAN,
            max_s: f64::NAN,
            repeats: 0,
            flop: f64::NAN,
            bytes: f64::NAN,
            gflops: f64::NAN,
            gbps: f64::NAN,
            peak_fraction: f64::NAN,
            max_error: f64::NAN,
            transfer_s: f64::NAN,
            note: String::new(),
        }
    }
}

/// Writes the rows as CSV with a header line.
pub fn write_csv(path: &Path, rows: &[Row]) -> Result<(), String> {
    let err = |e: csv::Error| format!("cannot write {}: {e}", path.display());
    let mut w = csv::Writer::from_path(path).map_err(err)?;
    for r in rows {
        w.serialize(r).map_err(err)?;
    }
    w.flush()
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// One row as one line of JSON (NaN becomes `null`).
pub fn json_line(row: &Row) -> String {
    serde_json::to_string(row).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Results {
        let mut a = Row::empty();
        a.family = "resnet_3x3".into();
        a.op = "conv".into();
        a.dims = 2;
        a.shape = "n1 c64->64 56x56 3x3 p1x1".into();
        a.variant = "unrolled".into();
        a.backend = "cpu".into();
        a.direction = "forward".into();
        a.status = "ok".into();
        a.median_s = 0.01;
        a.min_s = 0.009;
        a.max_s = 0.02;
        a.repeats = 7;
        a.flop = 2.3e8;
        a.bytes = 1.6e6;
        a.max_error = 1e-7;
        let mut b = a.clone();
        b.variant = "direct".into();
        b.status = "wrong".into();
        b.note = "max error 0.5".into();
        let machine = Machine {
            cpu: "test cpu".into(),
            simd: "avx512f".into(),
            lanes: 16,
            threads: 2,
            peak_gflops_1: 196.0,
            peak_gflops_all: 391.0,
            copy_gbps_1: 10.0,
            triad_gbps_1: 12.5,
            copy_gbps_all: 20.0,
            triad_gbps_all: 25.0,
        };
        a.derive_rates(Some(&machine));
        Results {
            machine: Some(machine),
            rows: vec![a, b],
        }
    }

    #[test]
    fn rates_follow_the_timing() {
        let r = &sample().rows[0];
        assert!((r.gflops - 23.0).abs() < 1e-9);
        assert!((r.peak_fraction - 23.0 / 196.0).abs() < 1e-12);
    }

    #[test]
    fn h5_round_trip() {
        let dir = std::env::temp_dir().join(format!("origami-results-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("results.h5");
        let results = sample();
        write_h5(&path, &results).unwrap();
        let back = read_h5(&path).unwrap();
        assert_eq!(back.machine, results.machine);
        assert_eq!(back.rows.len(), 2);
        for (x, y) in back.rows.iter().zip(&results.rows) {
            assert_eq!(json_line(x), json_line(y));
        }
        write_csv(&dir.join("results.csv"), &results.rows).unwrap();
        let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
        assert!(csv.starts_with("family,op,dims,shape,"));
        assert_eq!(csv.lines().count(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_of_another_format_is_refused() {
        let dir = std::env::temp_dir().join(format!("origami-results-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.h5");
        let mut fb = FileBuilder::new();
        fb.set_attr("format", AttrValue::String("origami-cases/1".into()));
        fb.write(&path).unwrap();
        let e = read_h5(&path).unwrap_err();
        assert!(e.contains("origami-results/1"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
