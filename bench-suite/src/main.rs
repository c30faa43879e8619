//! `origami-bench`: the harness's command line.

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use origami_bench::case::Op;
use origami_bench::family::{self, Profile};
use origami_bench::machine::{self, Effort};
use origami_bench::results::{self, Results, Row};
use origami_bench::run::{Backends, Variant};
use origami_bench::sweep::{self, Direction, PlannedPoint, Progress, RepeatTimer, Selection};
use origami_bench::{eval, gradcheck, report};
use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "origami-bench",
    version,
    about = "Check and measure the origami kernels"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    /// The CPU kernels.
    Cpu,
    /// The GPU crate on wgpu (Vulkan, Metal, DX12).
    Gpu,
    /// The GPU crate's CUDA backend (a build with `--features cuda`).
    Cuda,
    /// CPU and GPU (wgpu).
    All,
}

impl From<Backend> for Backends {
    fn from(b: Backend) -> Self {
        match b {
            Backend::Cpu => Backends::Cpu,
            Backend::Gpu | Backend::Cuda => Backends::Gpu,
            Backend::All => Backends::All,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run golden case files (origami-cases/1) on every variant that can serve each case.
    /// Exit status: 0 all passed, 1 a comparison failed, 2 a file or case is unreadable.
    Eval {
        /// Only these variants (repeatable): direct, unrolled, winograd, fold, prefix_sum, tiled.
        #[arg(long = "variant", value_name = "NAME")]
        variants: Vec<String>,
        /// Which backend runs the cases.
        #[arg(long, value_enum, default_value = "cpu")]
        backend: Backend,
        /// Case files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Time each case of case files (origami-cases/1; expected results optional) on every
    /// variant, auto included, forward and backward: median seconds per call.
    Time {
        /// Only these variants (repeatable): auto, direct, unrolled, winograd, fold, prefix_sum.
        #[arg(long = "variant", value_name = "NAME")]
        variants: Vec<String>,
        /// Threads per kernel call.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Seconds to aim for per measurement.
        #[arg(long, default_value_t = 0.3)]
        target_s: f64,
        /// One JSON object a line: case, variant, resolved, direction, median_s, ...
        #[arg(long)]
        json: bool,
        /// JSON lines of another implementation's times on the same files (from
        /// `scripts/torch_baseline.py --cases`): shown beside ours, with the speed-up.
        #[arg(long, value_name = "FILE")]
        baseline: Option<PathBuf>,
        /// Case files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Central finite differences in f64 for every op, variant and dimension.
    /// Exit status 1 on any failure.
    Gradcheck,
    /// Measure this machine's ceilings: peak f32 FMA throughput (1 thread and all threads,
    /// widest SIMD of this build) and memory bandwidth (STREAM copy and triad).
    Machine {
        /// Print the figures as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Check and time every op x variant x shape of the shape families; write results.h5,
    /// results.csv, charts and index.html to --out. Exit status: 0 all correct, 1 a variant
    /// was wrong, 2 bad arguments or files.
    Sweep {
        /// smoke (under a minute), quick (the `cargo bench` default) or full.
        #[arg(long, default_value = "quick")]
        profile: String,
        /// Only these families (repeatable).
        #[arg(long = "family", value_name = "NAME")]
        families: Vec<String>,
        /// Only these ops (repeatable): conv, max_pool, avg_pool, sum_pool.
        #[arg(long = "op", value_name = "OP")]
        ops: Vec<String>,
        /// Only these variants (repeatable): auto, direct, unrolled, winograd, fold, prefix_sum. tiled.
        #[arg(long = "variant", value_name = "NAME")]
        variants: Vec<String>,
        /// Which backend runs the points.
        #[arg(long, value_enum, default_value = "cpu")]
        backend: Backend,
        /// Threads per kernel call.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Output directory.
        #[arg(long, default_value = "target/origami-sweep")]
        out: PathBuf,
        /// Print each row as a line of JSON on stdout instead of the summary table.
        #[arg(long)]
        json: bool,
        /// Directory of family files.
        #[arg(long, default_value_os_t = family::default_dir())]
        families_dir: PathBuf,
        /// Baseline results files to overlay (e.g. from scripts/torch_baseline.py).
        #[arg(long = "baseline", value_name = "FILE")]
        baselines: Vec<PathBuf>,
    },
    /// Print the points a sweep selection runs, one JSON object a line (for scripts such as
    /// scripts/torch_baseline.py): family, label, op, sizes, parameters, and each pass's
    /// nominal FLOP and least bytes.
    Plan {
        /// smoke, quick or full.
        #[arg(long, default_value = "quick")]
        profile: String,
        /// Only these families (repeatable).
        #[arg(long = "family", value_name = "NAME")]
        families: Vec<String>,
        /// Directory of family files.
        #[arg(long, default_value_os_t = family::default_dir())]
        families_dir: PathBuf,
    },
    /// Redraw the charts and index.html of a sweep directory from its results.h5, with
    /// baselines overlaid.
    Report {
        /// A directory written by `sweep` (or `cargo bench`).
        dir: PathBuf,
        /// Baseline results files (same format, e.g. from scripts/torch_baseline.py).
        #[arg(long = "baseline", value_name = "FILE")]
        baselines: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let code = match cli.command {
        Command::Eval {
            variants,
            backend,
            files,
        } => {
            let known = Variant::all_names();
            if let Some(bad) = variants.iter().find(|v| !known.contains(&v.as_str())) {
                eprintln!(
                    "error: unknown variant {bad:?}; known: {}",
                    known.join(", ")
                );
                return ExitCode::from(2);
            }
            if backend == Backend::Cuda
                && let Err(e) = origami_bench::gpu::use_cuda()
            {
                eprintln!("error: --backend cuda: {e}");
                return ExitCode::from(2);
            }
            if backend != Backend::Cpu
                && let Err(e) = origami_bench::gpu::shared()
            {
                eprintln!(
                    "error: --backend {}: {e}",
                    origami_bench::gpu::backend_label()
                );
                return ExitCode::from(2);
            }
            match eval::eval_files(&files, &variants, backend.into(), &mut out) {
                Ok(summary) => summary.exit_code(),
                Err(e) => {
                    eprintln!("error: {e}");
                    2
                }
            }
        }
        Command::Time {
            variants,
            threads,
            target_s,
            json,
            baseline,
            files,
        } => match time_command(
            &files,
            &variants,
            threads,
            target_s,
            json,
            baseline.as_deref(),
            &mut out,
        ) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e}");
                2
            }
        },
        Command::Gradcheck => match gradcheck::gradcheck(&mut out) {
            Ok(t) if t.failed == 0 => 0,
            Ok(_) => 1,
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        },
        Command::Machine { json } => {
            let m = machine::measure(available_threads(), Effort::Normal);
            if json {
                let _ = writeln!(out, "{}", serde_json::to_string(&m).unwrap_or_default());
            } else {
                let _ = writeln!(out, "{}", m.summary());
            }
            0
        }
        Command::Sweep {
            profile,
            families,
            ops,
            variants,
            backend,
            threads,
            out: dir,
            json,
            families_dir,
            baselines,
        } => {
            let args = SweepArgs {
                profile,
                families,
                ops,
                variants,
                backend,
                threads,
                dir,
                json,
                families_dir,
                baselines,
            };
            match sweep_command(&args, &mut out) {
                Ok(code) => i32::from(code),
                Err(e) => {
                    eprintln!("error: {e}");
                    2
                }
            }
        }
        Command::Plan {
            profile,
            families,
            families_dir,
        } => match plan_command(&profile, families, &families_dir, &mut out) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e}");
                2
            }
        },
        Command::Report { dir, baselines } => match report_command(&dir, &baselines, &mut out) {
            Ok(index) => {
                let _ = writeln!(out, "report: {}", index.display());
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                2
            }
        },
    };
    let _ = out.flush();
    ExitCode::from(code as u8)
}

/// `(case, direction) -> median seconds` from JSON lines of a baseline.
fn read_time_baseline(path: &Path) -> Result<HashMap<(String, String), f64>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut map = HashMap::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))?;
        let field = |name: &str| {
            v[name].as_str().map(str::to_owned).ok_or(format!(
                "{} line {}: no string field {name}",
                path.display(),
                i + 1
            ))
        };
        let median = v["median_s"].as_f64().ok_or(format!(
            "{} line {}: no number field median_s",
            path.display(),
            i + 1
        ))?;
        map.insert((field("case")?, field("direction")?), median);
    }
    Ok(map)
}

fn time_command(
    files: &[PathBuf],
    variants: &[String],
    threads: usize,
    target_s: f64,
    json: bool,
    baseline: Option<&Path>,
    out: &mut impl Write,
) -> Result<i32, String> {
    let mut known = vec!["auto"];
    known.extend(Variant::all_names());
    if let Some(bad) = variants.iter().find(|v| !known.contains(&v.as_str())) {
        return Err(format!(
            "unknown variant {bad:?}; known: {}",
            known.join(", ")
        ));
    }
    use_threads(threads)?;
    if !(target_s > 0.0 && target_s.is_finite()) {
        return Err(format!(
            "--target-s {target_s}: must be a positive number of seconds"
        ));
    }
    let base = match baseline {
        Some(p) => read_time_baseline(p)?,
        None => HashMap::new(),
    };
    if !json {
        let _ = writeln!(
            out,
            "{:<28} {:<11} {:<11} {:<9} {:>12} {:>12} {:>9}  note",
            "case", "variant", "resolved", "direction", "median ms", "baseline ms", "speed-up"
        );
    }
    origami_bench::time::time_files(files, variants, target_s, |r| {
        let b = base.get(&(r.case.clone(), r.direction.clone())).copied();
        let _ = if json {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            if let Some(b) = b {
                v["baseline_s"] = b.into();
            }
            writeln!(out, "{v}")
        } else {
            writeln!(
                out,
                "{:<28} {:<11} {:<11} {:<9} {:>12.4} {:>12.4} {:>9.2}  {}",
                r.case,
                r.variant,
                r.resolved,
                r.direction,
                r.median_s * 1e3,
                b.map_or(f64::NAN, |b| b * 1e3),
                b.map_or(f64::NAN, |b| b / r.median_s),
                r.note
            )
        };
    })
    .map_err(|e| e.to_string())?;
    Ok(0)
}

/// Runs the kernels of this process on `threads` threads: the kernel crate's `rayon` feature
/// splits each operation over the global pool, which is sized here once.
fn use_threads(threads: usize) -> Result<(), String> {
    if threads == 0 {
        return Err("--threads 0: must be at least 1".into());
    }
    origami_bench::threads::use_threads(threads).map_err(|e| format!("--threads {threads}: {e}"))
}

fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

struct SweepArgs {
    profile: String,
    families: Vec<String>,
    ops: Vec<String>,
    variants: Vec<String>,
    backend: Backend,
    threads: usize,
    dir: PathBuf,
    json: bool,
    families_dir: PathBuf,
    baselines: Vec<PathBuf>,
}

/// A progress bar on stderr; with `--json`, each row on stdout as it finishes.
struct Bar {
    bar: ProgressBar,
    json: bool,
}

impl Progress for Bar {
    fn start(&mut self, point: &PlannedPoint, variant: &str, direction: Direction) {
        self.bar.set_message(format!(
            "{} {} {variant} {}",
            point.family,
            point.shape.label(),
            direction.name()
        ));
    }

    fn row(&mut self, row: &Row) {
        self.bar.inc(1);
        if self.json {
            self.bar.suspend(|| println!("{}", results::json_line(row)));
        }
    }
}

fn read_baselines(files: &[PathBuf]) -> Result<Vec<Results>, String> {
    files.iter().map(|f| results::read_h5(f)).collect()
}

fn parse_profile(name: &str) -> Result<Profile, String> {
    Profile::parse(name)
        .ok_or_else(|| format!("unknown profile {name:?}; known: smoke, quick, full"))
}

fn plan_command(
    profile: &str,
    families: Vec<String>,
    dir: &Path,
    out: &mut impl Write,
) -> Result<(), String> {
    let all = family::load_dir(dir).map_err(|e| e.to_string())?;
    let sel = Selection {
        profile: parse_profile(profile)?,
        families,
        ops: vec![],
        variants: vec![],
    };
    for p in sweep::plan(&all, &sel)? {
        let s = &p.shape;
        let work: Vec<serde_json::Value> = sweep::workload::nominal_work(s)?
            .into_iter()
            .map(|(d, flop, bytes)| {
                serde_json::json!({ "direction": d.name(), "flop": flop, "bytes": bytes })
            })
            .collect();
        let pr = &s.params;
        let line = serde_json::json!({
            "family": p.family,
            "shape": s.label(),
            "op": s.op.name(),
            "dims": s.dims,
            "batch": s.batch,
            "channels": s.channels,
            "out_channels": s.out_channels,
            "size": s.size,
            "kernel": s.kernel,
            "stride": pr.stride,
            "padding": if s.op == Op::Conv { &pr.padding_lo } else { &pr.padding },
            "dilation": pr.dilation,
            "groups": pr.groups,
            "ceil_mode": pr.ceil_mode,
            "count_include_pad": pr.count_include_pad,
            "window": s.kernel.last().copied().unwrap_or(1),
            "work": work,
        });
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn sweep_command(a: &SweepArgs, out: &mut impl Write) -> Result<u8, String> {
    let profile = parse_profile(&a.profile)?;
    let ops = a
        .ops
        .iter()
        .map(|o| {
            Op::parse(o).ok_or_else(|| {
                format!("unknown op {o:?}; known: conv, max_pool, avg_pool, sum_pool")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut known = vec!["auto"];
    known.extend(Variant::all_names());
    if let Some(bad) = a.variants.iter().find(|v| !known.contains(&v.as_str())) {
        return Err(format!(
            "unknown variant {bad:?}; known: {}",
            known.join(", ")
        ));
    }
    use_threads(a.threads)?;
    if a.backend == Backend::Cuda {
        origami_bench::gpu::use_cuda().map_err(|e| format!("--backend cuda: {e}"))?;
    }
    let baselines = read_baselines(&a.baselines)?;
    let families = family::load_dir(&a.families_dir).map_err(|e| e.to_string())?;
    let sel = Selection {
        profile,
        families: a.families.clone(),
        ops,
        variants: a.variants.clone(),
    };
    let points = sweep::plan(&families, &sel)?;
    if points.is_empty() {
        return Err("the selection has no points".into());
    }
    std::fs::create_dir_all(&a.dir)
        .map_err(|e| format!("cannot create {}: {e}", a.dir.display()))?;
    let effort = if profile == Profile::Smoke {
        Effort::Brief
    } else {
        Effort::Normal
    };
    eprintln!("measuring the machine's ceilings...");
    let machine = machine::measure(available_threads(), effort);
    eprintln!("{}", machine.summary());
    let impls = sweep::implementations(a.backend.into())?;
    let count = sweep::measurement_count(&points, &impls, &a.variants);
    let bar = ProgressBar::new(count as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed} < {eta}] {msg}")
            .map_err(|e| e.to_string())?,
    );
    let mut progress = Bar { bar, json: a.json };
    let mut timer = RepeatTimer::for_profile(profile);
    let rows = sweep::run(
        &points,
        &impls,
        &a.variants,
        Some(&machine),
        &mut timer,
        &mut progress,
    );
    progress.bar.finish_and_clear();
    let results = Results {
        machine: Some(machine),
        rows,
    };
    let index = save(&a.dir, &results, &baselines)?;
    if !a.json {
        let base: Vec<Row> = baselines.iter().flat_map(|b| b.rows.clone()).collect();
        let _ = write!(out, "{}", report::summary::text_table(&results.rows, &base));
        let _ = writeln!(out, "results: {}", a.dir.join("results.h5").display());
        let _ = writeln!(out, "report: {}", index.display());
    }
    let bad = results
        .rows
        .iter()
        .any(|r| r.status == "wrong" || r.status == "error");
    Ok(u8::from(bad))
}

/// Writes results.h5, results.csv, the charts and index.html; returns the index's path.
fn save(dir: &Path, results: &Results, baselines: &[Results]) -> Result<PathBuf, String> {
    results::write_h5(&dir.join("results.h5"), results)?;
    results::write_csv(&dir.join("results.csv"), &results.rows)?;
    report::write(dir, results, baselines)
}

/// Redraws the report and prints its summary table.
fn report_command(
    dir: &Path,
    baselines: &[PathBuf],
    out: &mut impl Write,
) -> Result<PathBuf, String> {
    let results = results::read_h5(&dir.join("results.h5"))?;
    let baselines = read_baselines(baselines)?;
    let base: Vec<Row> = baselines.iter().flat_map(|b| b.rows.clone()).collect();
    let _ = write!(out, "{}", report::summary::text_table(&results.rows, &base));
    report::write(dir, &results, &baselines)
}
