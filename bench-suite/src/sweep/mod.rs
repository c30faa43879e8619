//! The sweep: every op x variant x shape of the selected families, each variant checked
//! against the `f64` reference before it is timed.
//!
//! One driver serves both front ends: `origami-bench sweep` times with [`RepeatTimer`]
//! (warm-up, median of repeats), `cargo bench` with criterion (`benches/sweep.rs`). A
//! variant whose check fails is reported `wrong` and never timed, so a fast wrong answer can
//! not show up in a chart.

pub mod workload;

use crate::case::Op;
use crate::family::{Family, Profile, Shape};
use crate::machine::Machine;
use crate::results::Row;
use crate::run::{Backends, GPU_POOL_ALGORITHMS, RunError, Variant};
use origami_gpu::GpuConvAlgorithm;
use origami_kernels::{ConvAlgorithm, PoolAlgorithm};
use std::time::Instant;
pub use workload::{Direction, GpuPhase, Workload};

/// `f32` results must stay within this share of the reference's largest magnitude.
pub const TOLERANCE: f64 = 1e-4;

/// One algorithm on one backend, as the sweep sees it.
pub trait Implementation {
    /// The variant's name in results (`auto`, `direct`, ...).
    fn variant(&self) -> String;
    /// The backend's name in results (`cpu`, `gpu`).
    fn backend(&self) -> String;
    /// Whether it serves `op` at all.
    fn applies_to(&self, op: Op) -> bool;
    /// Runs one pass into the workload's result buffer: the call that is checked.
    fn run(&self, work: &mut dyn Workload, d: Direction) -> Result<(), RunError>;
    /// The call that is timed: [`Implementation::run`] unless the backend has data to move
    /// first (the GPU times its kernels on resident buffers).
    fn run_timed(&self, work: &mut dyn Workload, d: Direction) -> Result<(), RunError> {
        self.run(work, d)
    }
    /// Moves the pass's inputs to the device and its result back, timed apart from the
    /// kernel; `None` for backends that work in host memory.
    fn transfer(&self, _work: &mut dyn Workload, _d: Direction) -> Option<Result<(), RunError>> {
        None
    }
}

/// A CPU algorithm of the kernel crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cpu(pub Variant);

impl Implementation for Cpu {
    fn variant(&self) -> String {
        self.0.name().to_owned()
    }

    fn backend(&self) -> String {
        "cpu".into()
    }

    fn applies_to(&self, op: Op) -> bool {
        matches!(
            (op, self.0),
            (Op::Conv, Variant::Conv(_))
                | (Op::MaxPool | Op::AvgPool | Op::SumPool, Variant::Pool(_))
        )
    }

    fn run(&self, work: &mut dyn Workload, d: Direction) -> Result<(), RunError> {
        work.run_cpu(self.0, d)
    }
}

/// A GPU algorithm of the GPU crate, on the process's shared GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gpu(pub Variant);

impl Gpu {
    fn phase(
        &self,
        work: &mut dyn Workload,
        d: Direction,
        phase: GpuPhase,
    ) -> Result<(), RunError> {
        let gpu = crate::gpu::shared().map_err(RunError::Invalid)?;
        work.run_gpu(gpu, self.0, d, phase)
    }
}

impl Implementation for Gpu {
    fn variant(&self) -> String {
        self.0.name().to_owned()
    }

    fn backend(&self) -> String {
        crate::gpu::backend_label().into()
    }

    fn applies_to(&self, op: Op) -> bool {
        self.0.applies_to(op)
    }

    fn run(&self, work: &mut dyn Workload, d: Direction) -> Result<(), RunError> {
        self.phase(work, d, GpuPhase::Whole)
    }

    fn run_timed(&self, work: &mut dyn Workload, d: Direction) -> Result<(), RunError> {
        self.phase(work, d, GpuPhase::Kernel)
    }

    fn transfer(&self, work: &mut dyn Workload, d: Direction) -> Option<Result<(), RunError>> {
        Some(self.phase(work, d, GpuPhase::Transfer))
    }
}

/// Every GPU variant: convolution `direct`, `tiled`; pooling `direct`, `prefix_sum`.
pub fn gpu_implementations() -> Vec<Box<dyn Implementation>> {
    let conv = GpuConvAlgorithm::ALL.into_iter().map(Variant::GpuConv);
    let pool = GPU_POOL_ALGORITHMS.into_iter().map(Variant::GpuPool);
    conv.chain(pool)
        .map(|v| Box::new(Gpu(v)) as Box<dyn Implementation>)
        .collect()
}

/// The implementations of `backends`. Asking for the GPU where there is none is an error
/// naming the reason.
pub fn implementations(backends: Backends) -> Result<Vec<Box<dyn Implementation>>, String> {
    let mut v = Vec::new();
    if backends.cpu() {
        v.extend(cpu_implementations());
    }
    if backends.gpu() {
        let gpu = crate::gpu::shared()
            .map_err(|e| format!("--backend {}: {e}", crate::gpu::backend_label()))?;
        eprintln!("GPU: {}", gpu.adapter_name());
        v.extend(gpu_implementations());
    }
    Ok(v)
}

/// Every CPU variant, `auto` first for each op family.
pub fn cpu_implementations() -> Vec<Box<dyn Implementation>> {
    let mut v: Vec<Box<dyn Implementation>> =
        vec![Box::new(Cpu(Variant::Conv(ConvAlgorithm::Auto)))];
    v.extend(
        ConvAlgorithm::ALL
            .into_iter()
            .map(|a| Box::new(Cpu(Variant::Conv(a))) as Box<dyn Implementation>),
    );
    v.push(Box::new(Cpu(Variant::Pool(PoolAlgorithm::Auto))));
    v.extend(
        PoolAlgorithm::ALL
            .into_iter()
            .map(|a| Box::new(Cpu(Variant::Pool(a))) as Box<dyn Implementation>),
    );
    v
}

/// Which points, variants and directions to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// Points this profile includes.
    pub profile: Profile,
    /// Only these families (all when empty).
    pub families: Vec<String>,
    /// Only these ops (all when empty).
    pub ops: Vec<Op>,
    /// Only these variants (all when empty).
    pub variants: Vec<String>,
}

/// One point to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedPoint {
    /// Its family.
    pub family: String,
    /// Index within the family (part of the data seed).
    pub index: usize,
    /// Sizes and parameters.
    pub shape: Shape,
}

/// The points a selection picks, in family order. Unknown family names are an error.
pub fn plan(families: &[Family], sel: &Selection) -> Result<Vec<PlannedPoint>, String> {
    if let Some(bad) = sel
        .families
        .iter()
        .find(|f| !families.iter().any(|g| &g.name == *f))
    {
        let known: Vec<&str> = families.iter().map(|f| f.name.as_str()).collect();
        return Err(format!(
            "unknown family {bad:?}; known: {}",
            known.join(", ")
        ));
    }
    let mut points = Vec::new();
    for f in families {
        if !sel.families.is_empty() && !sel.families.contains(&f.name) {
            continue;
        }
        if !sel.ops.is_empty() && !sel.ops.contains(&f.op) {
            continue;
        }
        for (index, p) in f.points.iter().enumerate() {
            if sel.profile.includes(p.profile) {
                points.push(PlannedPoint {
                    family: f.name.clone(),
                    index,
                    shape: f.shape(p)?,
                });
            }
        }
    }
    Ok(points)
}

/// A median-of-repeats timing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// Median seconds per call.
    pub median_s: f64,
    /// Fastest call.
    pub min_s: f64,
    /// Slowest call.
    pub max_s: f64,
    /// Calls timed.
    pub repeats: usize,
}

impl Timing {
    /// The statistics of per-call seconds.
    pub fn from_samples(mut samples: Vec<f64>) -> Option<Timing> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        let median_s = if n % 2 == 1 {
            samples[n / 2]
        } else {
            0.5 * (samples[n / 2 - 1] + samples[n / 2])
        };
        Some(Timing {
            median_s,
            min_s: samples[0],
            max_s: samples[n - 1],
            repeats: n,
        })
    }
}

/// What a timer knows about the measurement it makes.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement<'a> {
    /// The point.
    pub point: &'a PlannedPoint,
    /// Variant name.
    pub variant: &'a str,
    /// Backend name.
    pub backend: &'a str,
    /// The pass.
    pub direction: Direction,
    /// Nominal FLOP per call.
    pub flop: f64,
    /// Least bytes per call.
    pub bytes: f64,
    /// How long the checked call took (a hint for sizing repeats).
    pub once_s: f64,
}

/// Times calls of a closure.
pub trait Timer {
    /// Times `call`; `None` when the timer skipped it (e.g. filtered out).
    fn time(&mut self, m: &Measurement<'_>, call: &mut dyn FnMut()) -> Option<Timing>;
}

/// Warm-up, then repeats until `target_s` has passed (between `min_repeats` and
/// `max_repeats` calls); each call is timed alone.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RepeatTimer {
    /// Time to aim for per measurement.
    pub target_s: f64,
    /// Fewest timed calls.
    pub min_repeats: usize,
    /// Most timed calls.
    pub max_repeats: usize,
}

impl RepeatTimer {
    /// The settings of a profile.
    pub fn for_profile(p: Profile) -> RepeatTimer {
        match p {
            Profile::Smoke => RepeatTimer {
                target_s: 0.02,
                min_repeats: 3,
                max_repeats: 20,
            },
            Profile::Quick => RepeatTimer {
                target_s: 0.3,
                min_repeats: 5,
                max_repeats: 200,
            },
            Profile::Full => RepeatTimer {
                target_s: 1.0,
                min_repeats: 10,
                max_repeats: 1000,
            },
        }
    }
}

impl RepeatTimer {
    /// Times `call`: a warm-up call, then single calls repeated for about `target_s`, the
    /// count sized from `once_s` (the seconds of one call, measured here when `None`).
    pub fn measure(&self, once_s: Option<f64>, call: &mut dyn FnMut()) -> Option<Timing> {
        call();
        let once_s = once_s.unwrap_or_else(|| {
            let t = Instant::now();
            call();
            t.elapsed().as_secs_f64()
        });
        let repeats =
            ((self.target_s / once_s.max(1e-7)) as usize).clamp(self.min_repeats, self.max_repeats);
        let samples = (0..repeats)
            .map(|_| {
                let t = Instant::now();
                call();
                t.elapsed().as_secs_f64()
            })
            .collect();
        Timing::from_samples(samples)
    }
}

impl Timer for RepeatTimer {
    fn time(&mut self, m: &Measurement<'_>, call: &mut dyn FnMut()) -> Option<Timing> {
        self.measure(Some(m.once_s), call)
    }
}

/// Called as the sweep goes: before each measurement and with each finished row.
pub trait Progress {
    /// A measurement starts.
    fn start(&mut self, _point: &PlannedPoint, _variant: &str, _direction: Direction) {}
    /// A row is done.
    fn row(&mut self, _row: &Row) {}
}

/// Reports nothing.
pub struct Silent;
impl Progress for Silent {}

/// How many measurements a plan makes (for progress bars).
pub fn measurement_count(
    points: &[PlannedPoint],
    impls: &[Box<dyn Implementation>],
    variants: &[String],
) -> usize {
    points
        .iter()
        .map(|p| {
            let dirs = if p.shape.op == Op::Conv { 3 } else { 2 };
            dirs * chosen(impls, p.shape.op, variants).count()
        })
        .sum()
}

/// The implementations that serve `op` and pass the variant filter.
fn chosen<'a>(
    impls: &'a [Box<dyn Implementation>],
    op: Op,
    variants: &'a [String],
) -> impl Iterator<Item = &'a Box<dyn Implementation>> {
    impls.iter().filter(move |i| {
        i.applies_to(op) && (variants.is_empty() || variants.contains(&i.variant()))
    })
}

/// Seed of a point's data: the same inputs for every run of the same point.
fn seed(point: &PlannedPoint) -> u64 {
    point.family.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) ^ point.index as u64
}

/// Largest `|got - expected|` over the largest `|expected|`; infinite when a NaN appears
/// where the reference has a number (or the other way round).
pub fn relative_error(got: &[f32], expected: &[f64]) -> f64 {
    if got.len() != expected.len() {
        return f64::INFINITY;
    }
    let scale = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut worst = 0.0f64;
    for (&g, &e) in got.iter().zip(expected) {
        let g = f64::from(g);
        if g.is_nan() != e.is_nan() {
            return f64::INFINITY;
        }
        if !g.is_nan() {
            worst = worst.max((g - e).abs());
        }
    }
    if scale > 0.0 { worst / scale } else { worst }
}

/// The median of a few timed transfers of a pass (NaN for host backends or on error).
fn transfer_seconds(imp: &dyn Implementation, work: &mut dyn Workload, d: Direction) -> f64 {
    let mut samples = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        match imp.transfer(work, d) {
            Some(Ok(())) => samples.push(t.elapsed().as_secs_f64()),
            _ => return f64::NAN,
        }
    }
    Timing::from_samples(samples).map_or(f64::NAN, |t| t.median_s)
}

/// Runs the plan: for each point, each direction, each applicable implementation (filtered
/// by `variants`), checks against the reference, then times with `timer`.
pub fn run(
    points: &[PlannedPoint],
    impls: &[Box<dyn Implementation>],
    variants: &[String],
    machine: Option<&Machine>,
    timer: &mut dyn Timer,
    progress: &mut dyn Progress,
) -> Vec<Row> {
    let mut rows = Vec::new();
    for point in points {
        let base = {
            let mut r = Row::empty();
            r.family = point.family.clone();
            r.op = point.shape.op.name().into();
            r.dims = point.shape.dims as i64;
            r.shape = point.shape.label();
            r.batch = point.shape.batch as i64;
            r.window = point.shape.kernel.last().copied().unwrap_or(1) as i64;
            r.threads = crate::threads::current() as i64;
            r
        };
        let mut work = match workload::workload(&point.shape, seed(point)) {
            Ok(w) => w,
            Err(e) => {
                let mut r = base.clone();
                r.status = "error".into();
                r.note = e;
                progress.row(&r);
                rows.push(r);
                continue;
            }
        };
        for &d in work.directions() {
            let expected = work.reference(d);
            for imp in chosen(impls, point.shape.op, variants) {
                let variant = imp.variant();
                let backend = imp.backend();
                progress.start(point, &variant, d);
                let mut row = base.clone();
                row.variant = variant.clone();
                row.backend = backend.clone();
                row.direction = d.name().into();
                row.flop = work.flop(d);
                row.bytes = work.bytes(d);
                work.poison(d);
                let t = Instant::now();
                let outcome = imp.run(&mut *work, d);
                let once_s = t.elapsed().as_secs_f64();
                match outcome {
                    Err(RunError::Unsupported(reason)) => {
                        row.status = "unsupported".into();
                        row.note = reason;
                    }
                    Err(RunError::Invalid(reason)) => {
                        row.status = "error".into();
                        row.note = reason;
                    }
                    Ok(()) => {
                        row.max_error = relative_error(work.result(d), &expected);
                        let indices_ok = d != Direction::Forward || work.indices_match();
                        // NaN errors fail too: `is_some_and` of an ordered comparison.
                        let within = row
                            .max_error
                            .partial_cmp(&TOLERANCE)
                            .is_some_and(|o| o.is_le());
                        if !within || !indices_ok {
                            row.status = "wrong".into();
                            row.note = if indices_ok {
                                format!(
                                    "max error {:.3e} of the largest reference value exceeds {TOLERANCE:e}",
                                    row.max_error
                                )
                            } else {
                                "max indices differ from the reference".into()
                            };
                        } else {
                            let m = Measurement {
                                point,
                                variant: &variant,
                                backend: &backend,
                                direction: d,
                                flop: row.flop,
                                bytes: row.bytes,
                                once_s,
                            };
                            let timing = timer.time(&m, &mut || {
                                let _ = imp.run_timed(&mut *work, d);
                            });
                            let Some(t) = timing else { continue };
                            row.transfer_s = transfer_seconds(imp.as_ref(), &mut *work, d);
                            row.status = "ok".into();
                            row.median_s = t.median_s;
                            row.min_s = t.min_s;
                            row.max_s = t.max_s;
                            row.repeats = t.repeats as i64;
                            row.derive_rates(machine);
                        }
                    }
                }
                progress.row(&row);
                rows.push(row);
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::{default_dir, load_dir};

    /// The CPU variant with its output nudged after every call: a wrong answer.
    struct Nudged(Cpu);

    impl Implementation for Nudged {
        fn variant(&self) -> String {
            "nudged".into()
        }
        fn backend(&self) -> String {
            "cpu".into()
        }
        fn applies_to(&self, op: Op) -> bool {
            self.0.applies_to(op)
        }
        fn run(&self, work: &mut dyn Workload, d: Direction) -> Result<(), RunError> {
            self.0.run(work, d)?;
            let out = work.result_mut(d);
            let last = out.len() - 1;
            out[last] += 0.5;
            Ok(())
        }
    }

    struct CountingTimer(usize);

    impl Timer for CountingTimer {
        fn time(&mut self, _: &Measurement<'_>, call: &mut dyn FnMut()) -> Option<Timing> {
            self.0 += 1;
            call();
            Timing::from_samples(vec![1e-3])
        }
    }

    fn smoke(families: &[&str]) -> Vec<PlannedPoint> {
        let all = load_dir(&default_dir()).unwrap();
        let sel = Selection {
            profile: Profile::Smoke,
            families: families.iter().map(|s| s.to_string()).collect(),
            ops: vec![],
            variants: vec![],
        };
        plan(&all, &sel).unwrap()
    }

    #[test]
    fn a_wrong_variant_is_reported_and_never_timed() {
        let points = smoke(&["resnet_3x3", "max_2x2"]);
        let impls: Vec<Box<dyn Implementation>> = vec![
            Box::new(Nudged(Cpu(Variant::Conv(ConvAlgorithm::Unrolled)))),
            Box::new(Cpu(Variant::Conv(ConvAlgorithm::Direct))),
            Box::new(Nudged(Cpu(Variant::Pool(PoolAlgorithm::Direct)))),
        ];
        let mut timer = CountingTimer(0);
        let rows = run(&points, &impls, &[], None, &mut timer, &mut Silent);
        let wrong: Vec<&Row> = rows.iter().filter(|r| r.variant == "nudged").collect();
        assert_eq!(wrong.len(), 3 + 2);
        for r in &wrong {
            assert_eq!(r.status, "wrong", "{r:?}");
            assert!(r.median_s.is_nan() && r.repeats == 0);
            assert!(r.note.contains("max error"), "{}", r.note);
        }
        let right: Vec<&Row> = rows.iter().filter(|r| r.variant == "direct").collect();
        assert_eq!(right.len(), 3);
        assert!(
            right
                .iter()
                .all(|r| r.status == "ok" && r.max_error <= 1e-6)
        );
        assert_eq!(timer.0, 3, "only the right variant is timed");
    }

    #[test]
    fn every_smoke_point_passes_on_every_cpu_variant() {
        let points = smoke(&[]);
        let impls = cpu_implementations();
        let mut timer = CountingTimer(0);
        let rows = run(&points, &impls, &[], None, &mut timer, &mut Silent);
        assert_eq!(rows.len(), measurement_count(&points, &impls, &[]));
        for r in &rows {
            assert!(
                r.status == "ok" || r.status == "unsupported",
                "{} {} {} {}: {} {}",
                r.family,
                r.shape,
                r.variant,
                r.direction,
                r.status,
                r.note
            );
        }
        assert!(rows.iter().filter(|r| r.status == "ok").count() * 2 > rows.len());
    }

    #[test]
    fn unknown_families_are_named() {
        let all = load_dir(&default_dir()).unwrap();
        let sel = Selection {
            profile: Profile::Smoke,
            families: vec!["resnet_4x4".into()],
            ops: vec![],
            variants: vec![],
        };
        let e = plan(&all, &sel).unwrap_err();
        assert!(e.contains("resnet_4x4") && e.contains("resnet_3x3"), "{e}");
    }

    #[test]
    fn relative_error_sees_nan() {
        assert_eq!(relative_error(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert_eq!(relative_error(&[f32::NAN], &[1.0]), f64::INFINITY);
        assert!((relative_error(&[1.0, 2.5], &[1.0, 2.0]) - 0.25).abs() < 1e-12);
    }
}
