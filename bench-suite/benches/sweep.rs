//! `cargo bench`: the default sweep (profile `quick`) timed by criterion, every op x variant x
//! shape x direction, each checked against the reference before it is timed; it ends by
//! writing `results.h5`, `results.csv`, the charts and `index.html` to
//! `target/origami-report/`.
//!
//! Criterion reports convolution throughput in elements/s where an element is one FLOP
//! (2 x MACs), and pooling throughput in bytes/s. Settings, all optional:
//! `ORIGAMI_SWEEP_PROFILE` (smoke, quick, full), `ORIGAMI_SWEEP_FAMILIES` and
//! `ORIGAMI_SWEEP_VARIANTS` (comma-separated), `ORIGAMI_SWEEP_BACKEND` (`cpu`, the default;
//! `gpu` or `all` add the GPU crate's variants, kernels timed on resident buffers and the
//! transfers apart), `ORIGAMI_SWEEP_THREADS` (threads per kernel call, default 1), and
//! criterion's own arguments after `--`.

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use origami_bench::case::Op;
use origami_bench::family::{self, Profile};
use origami_bench::machine::{self, Effort};
use origami_bench::report;
use origami_bench::results::{self, Results};
use origami_bench::run::Backends;
use origami_bench::sweep::{self, Measurement, Progress, Selection, Timer, Timing};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const SAMPLES: usize = 10;

/// Calls slower than this are timed by [`PLAIN_REPEATS`] plain calls instead of criterion's
/// ten samples: a Direct convolution of a large layer takes seconds per call, and the
/// default sweep must stay under 20 minutes on a 2-core machine.
const SLOW_S: f64 = 0.25;
const PLAIN_REPEATS: usize = 3;

/// Times with criterion and keeps the per-call times of its measurement samples.
struct CriterionTimer {
    criterion: Criterion,
    /// Criterion's name filter (the first free argument), applied to the plain path too.
    filter: String,
    warm_up: Duration,
    measurement: Duration,
}

impl Timer for CriterionTimer {
    fn time(&mut self, m: &Measurement<'_>, call: &mut dyn FnMut()) -> Option<Timing> {
        let id = format!(
            "{}/{}/{}/{}",
            m.point.family,
            m.direction.name(),
            m.variant,
            m.point.shape.label()
        );
        if m.once_s > SLOW_S {
            if !self.filter.is_empty() && !id.contains(&self.filter) {
                return None;
            }
            call();
            let samples = (0..PLAIN_REPEATS)
                .map(|_| {
                    let t = Instant::now();
                    call();
                    t.elapsed().as_secs_f64()
                })
                .collect();
            let t = Timing::from_samples(samples)?;
            eprintln!(
                "{id}\n                        time:   {:.4} s median of {PLAIN_REPEATS} plain calls (slower than {SLOW_S} s)\n",
                t.median_s
            );
            return Some(t);
        }
        let mut group =
            self.criterion
                .benchmark_group(format!("{}/{}", m.point.family, m.direction.name()));
        group.sample_size(SAMPLES).warm_up_time(self.warm_up);
        // A linear sampling plan runs 55 times the first sample's calls: calls slower than a
        // tenth of the budget use flat sampling (10 equal samples) and a budget that fits.
        let flat_budget = m.once_s * SAMPLES as f64 * 1.2;
        if flat_budget > self.measurement.as_secs_f64() / 5.0 {
            group.sampling_mode(SamplingMode::Flat);
            group.measurement_time(self.measurement.max(Duration::from_secs_f64(flat_budget)));
        } else {
            group.measurement_time(self.measurement);
        }
        group.throughput(if m.point.shape.op == Op::Conv {
            Throughput::Elements(m.flop as u64)
        } else {
            Throughput::BytesDecimal(m.bytes as u64)
        });
        let name = if m.backend == "cpu" {
            m.variant.to_owned()
        } else {
            format!("{}-{}", m.backend, m.variant)
        };
        let mut samples: Vec<f64> = Vec::new();
        group.bench_function(BenchmarkId::new(name, m.point.shape.label()), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    call();
                }
                let elapsed = start.elapsed();
                samples.push(elapsed.as_secs_f64() / iters.max(1) as f64);
                elapsed
            })
        });
        group.finish();
        // Criterion calls the routine during warm-up, then once per sample: the last
        // SAMPLES calls are the measurement.
        let keep = samples.len().min(SAMPLES);
        Timing::from_samples(samples.split_off(samples.len() - keep))
    }
}

fn list(var: &str) -> Vec<String> {
    std::env::var(var)
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// `target/` of this build: the bench binary is `target/<profile>/deps/sweep-<hash>`.
fn target_dir() -> PathBuf {
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(t);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("target"))
}

struct Log;

impl Progress for Log {
    fn row(&mut self, row: &results::Row) {
        if row.status != "ok" {
            eprintln!(
                "{} {} {} {}: {} ({})",
                row.family, row.shape, row.variant, row.direction, row.status, row.note
            );
        }
    }
}

fn main() {
    let started = Instant::now();
    let profile_name = std::env::var("ORIGAMI_SWEEP_PROFILE").unwrap_or_else(|_| "quick".into());
    let Some(profile) = Profile::parse(&profile_name) else {
        eprintln!("error: ORIGAMI_SWEEP_PROFILE={profile_name:?}: use smoke, quick or full");
        std::process::exit(2);
    };
    let families = family::load_dir(&family::default_dir()).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2)
    });
    let variants = list("ORIGAMI_SWEEP_VARIANTS");
    let sel = Selection {
        profile,
        families: list("ORIGAMI_SWEEP_FAMILIES"),
        ops: vec![],
        variants: variants.clone(),
    };
    let points = sweep::plan(&families, &sel).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2)
    });
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let machine = machine::measure(threads, Effort::Normal);
    eprintln!(
        "origami sweep, profile {}: {}",
        profile.name(),
        machine.summary()
    );
    let (warm_up, measurement) = match profile {
        Profile::Smoke => (Duration::from_millis(50), Duration::from_millis(200)),
        Profile::Quick => (Duration::from_millis(200), Duration::from_millis(800)),
        Profile::Full => (Duration::from_millis(500), Duration::from_secs(3)),
    };
    let mut timer = CriterionTimer {
        criterion: Criterion::default().configure_from_args(),
        filter: std::env::args()
            .skip(1)
            .find(|a| !a.starts_with('-'))
            .unwrap_or_default(),
        warm_up,
        measurement,
    };
    let threads = match std::env::var("ORIGAMI_SWEEP_THREADS").as_deref() {
        Err(_) => 1,
        Ok(t) => t
            .parse::<usize>()
            .ok()
            .filter(|&t| t > 0)
            .unwrap_or_else(|| {
                eprintln!("error: ORIGAMI_SWEEP_THREADS={t:?}: a number of threads, at least 1");
                std::process::exit(2)
            }),
    };
    if let Err(e) = origami_bench::threads::use_threads(threads) {
        eprintln!("error: ORIGAMI_SWEEP_THREADS={threads}: {e}");
        std::process::exit(2);
    }
    let backends = match std::env::var("ORIGAMI_SWEEP_BACKEND").as_deref() {
        Err(_) | Ok("cpu") => Backends::Cpu,
        Ok("gpu") => Backends::Gpu,
        Ok("all") => Backends::All,
        Ok(other) => {
            eprintln!("error: ORIGAMI_SWEEP_BACKEND={other:?}: use cpu, gpu or all");
            std::process::exit(2);
        }
    };
    let impls = sweep::implementations(backends).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2)
    });
    let rows = sweep::run(
        &points,
        &impls,
        &variants,
        Some(&machine),
        &mut timer,
        &mut Log,
    );
    timer.criterion.final_summary();
    let wrong = rows.iter().filter(|r| r.status == "wrong").count();
    let results = Results {
        machine: Some(machine),
        rows,
    };
    let dir = target_dir().join("origami-report");
    let written = std::fs::create_dir_all(&dir)
        .map_err(|e| e.to_string())
        .and_then(|()| results::write_h5(&dir.join("results.h5"), &results))
        .and_then(|()| results::write_csv(&dir.join("results.csv"), &results.rows))
        .and_then(|()| report::write(&dir, &results, &[]));
    eprint!("{}", report::summary::text_table(&results.rows, &[]));
    match written {
        Ok(index) => eprintln!(
            "origami report: {} ({} rows in {:.0} s)",
            index.display(),
            results.rows.len(),
            started.elapsed().as_secs_f64()
        ),
        Err(e) => {
            eprintln!("error: cannot write the report: {e}");
            std::process::exit(1);
        }
    }
    if wrong > 0 {
        eprintln!("error: {wrong} variant results were wrong (see the report)");
        std::process::exit(1);
    }
}
