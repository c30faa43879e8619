//! `time`: how long each case of case files takes on each variant, forward and backward, so
//! anyone can time their own shapes. Cases need only their inputs (and the weight for
//! convolution); expected results are ignored, and a missing `grad_output` is drawn from
//! `[-1, 1)`. Each measurement is a warm-up call, then single calls repeated for about
//! `target_s` (between 5 and 1000 of them), reported as their median.

use crate::case::{Case, Dtype, Op};
use crate::case_file::{CaseFileError, Expected, read_cases_with};
use crate::sweep::{RepeatTimer, Timing};
use origami_kernels::{ConvAlgorithm, ConvNd, ConvOp, Element, PoolAlgorithm, PoolNd, PoolOp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::path::Path;

/// One timed (or refused) case, variant and direction.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CaseTiming {
    /// The case file.
    pub file: String,
    /// The case's group name.
    pub case: String,
    /// `auto`, `direct`, `unrolled`, `fold` or `prefix_sum`; for `auto`, `resolved` names
    /// the algorithm it chose.
    pub variant: String,
    /// The algorithm `auto` resolved to (the variant itself otherwise).
    pub resolved: String,
    /// `forward`, or `backward`: every gradient of the op (input, weight and bias for
    /// convolution).
    pub direction: String,
    /// Median seconds per call (NaN when not timed).
    pub median_s: f64,
    /// Calls timed.
    pub repeats: usize,
    /// `ok` or `unsupported` (with the reason in `note`).
    pub status: String,
    /// Why a row is not timed.
    pub note: String,
}

/// Times `call` as the module describes.
fn measure(target_s: f64, call: &mut dyn FnMut()) -> Timing {
    let timer = RepeatTimer {
        target_s,
        min_repeats: 5,
        max_repeats: 1000,
    };
    timer.measure(None, call).expect("at least five samples")
}

/// Every case of `files` on the variants named in `only` (all, `auto` included, when
/// empty).
pub fn time_files(
    files: &[impl AsRef<Path>],
    only: &[String],
    target_s: f64,
    mut progress: impl FnMut(&CaseTiming),
) -> Result<Vec<CaseTiming>, CaseFileError> {
    let mut rows = Vec::new();
    for file in files {
        let file = file.as_ref();
        for case in read_cases_with(file, Expected::Optional)? {
            for row in time_case(&case, only, target_s) {
                let row = CaseTiming {
                    file: file.display().to_string(),
                    ..row
                };
                progress(&row);
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

fn variants(op: Op) -> Vec<(&'static str, Variant)> {
    match op {
        Op::Conv => std::iter::once(ConvAlgorithm::Auto)
            .chain(ConvAlgorithm::ALL)
            .map(|a| (a.name(), Variant::Conv(a)))
            .collect(),
        _ => std::iter::once(PoolAlgorithm::Auto)
            .chain(PoolAlgorithm::ALL)
            .map(|a| (a.name(), Variant::Pool(a)))
            .collect(),
    }
}

#[derive(Clone, Copy)]
enum Variant {
    Conv(ConvAlgorithm),
    Pool(PoolAlgorithm),
}

/// Every row of one case.
pub fn time_case(case: &Case, only: &[String], target_s: f64) -> Vec<CaseTiming> {
    match (case.dtype, case.dims) {
        (Dtype::F32, 1) => typed::<f32, 1>(case, only, target_s),
        (Dtype::F32, 2) => typed::<f32, 2>(case, only, target_s),
        (Dtype::F32, 3) => typed::<f32, 3>(case, only, target_s),
        (Dtype::F64, 1) => typed::<f64, 1>(case, only, target_s),
        (Dtype::F64, 2) => typed::<f64, 2>(case, only, target_s),
        (Dtype::F64, 3) => typed::<f64, 3>(case, only, target_s),
        _ => Vec::new(), // read_cases validated dims
    }
}

fn cast<T: Element>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::from_f64(x)).collect()
}

fn typed<T: Element, const D: usize>(
    case: &Case,
    only: &[String],
    target_s: f64,
) -> Vec<CaseTiming> {
    let x: Vec<T> = cast(&case.input.data);
    let dy: Vec<T> = match &case.grad_output {
        Some(g) => cast(&g.data),
        None => {
            let mut rng = StdRng::seed_from_u64(0x5eed);
            (0..case.output.data.len())
                .map(|_| T::from_f64(rng.random_range(-1.0..1.0)))
                .collect()
        }
    };
    let mut rows = Vec::new();
    for (name, variant) in variants(case.op) {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let row = |direction: &str, resolved: &str, result: Result<Timing, String>| {
            let (status, note, median_s, repeats) = match result {
                Ok(t) => ("ok", String::new(), t.median_s, t.repeats),
                Err(e) => ("unsupported", e, f64::NAN, 0),
            };
            CaseTiming {
                file: String::new(),
                case: case.name.clone(),
                variant: name.into(),
                resolved: resolved.into(),
                direction: direction.into(),
                median_s,
                repeats,
                status: status.into(),
                note,
            }
        };
        match variant {
            Variant::Conv(algo) => {
                let Ok(conv) = case.conv_geometry::<D>() else {
                    continue;
                };
                let resolved = conv.resolve(algo).name();
                let (f, b) = time_conv::<T, D>(case, &conv, algo, &x, &dy, target_s);
                rows.push(row("forward", resolved, Ok(f)));
                rows.push(row("backward", resolved, Ok(b)));
            }
            Variant::Pool(algo) => {
                let Ok(pool) = case.pool_geometry::<D>() else {
                    continue;
                };
                let Some(kind) = case.op.pool_kind() else {
                    continue;
                };
                let forward = pool.resolve::<T>(kind, PoolOp::Forward, algo).name();
                let backward = pool.resolve::<T>(kind, PoolOp::Backward, algo).name();
                match time_pool::<T, D>(&pool, kind, algo, &x, &dy, target_s) {
                    Ok((f, b)) => {
                        rows.push(row("forward", forward, Ok(f)));
                        rows.push(row("backward", backward, Ok(b)));
                    }
                    Err(e) => {
                        rows.push(row("forward", forward, Err(e.clone())));
                        rows.push(row("backward", backward, Err(e)));
                    }
                }
            }
        }
    }
    rows
}

fn time_conv<T: Element, const D: usize>(
    case: &Case,
    conv: &ConvNd<D>,
    algo: ConvAlgorithm,
    x: &[T],
    dy: &[T],
    target_s: f64,
) -> (Timing, Timing) {
    let w: Vec<T> = cast(case.weight.as_ref().map(|w| &w.data[..]).unwrap_or(&[]));
    let b: Option<Vec<T>> = case.bias.as_ref().map(|b| cast(&b.data));
    let scratch_len = [
        ConvOp::Forward,
        ConvOp::BackwardInput,
        ConvOp::BackwardWeight,
    ]
    .into_iter()
    .map(|op| conv.scratch_len::<T>(op, algo))
    .max()
    .unwrap_or(0);
    let mut scratch = vec![T::ZERO; scratch_len];
    let mut y = vec![T::ZERO; conv.output_len()];
    let mut dx = vec![T::ZERO; conv.input_len()];
    let mut dw = vec![T::ZERO; conv.weight_len()];
    let mut db = vec![T::ZERO; conv.bias_len()];
    let ok = "the case file validated this geometry and these lengths";
    let forward = measure(target_s, &mut || {
        conv.forward(algo, x, &w, b.as_deref(), &mut y, &mut scratch)
            .expect(ok);
    });
    let has_bias = b.is_some();
    let backward = measure(target_s, &mut || {
        conv.backward_input(algo, dy, &w, &mut dx, &mut scratch)
            .expect(ok);
        conv.backward_weight(algo, x, dy, &mut dw, &mut scratch)
            .expect(ok);
        if has_bias {
            conv.backward_bias(dy, &mut db).expect(ok);
        }
    });
    (forward, backward)
}

fn time_pool<T: Element, const D: usize>(
    pool: &PoolNd<D>,
    kind: origami_kernels::PoolKind,
    algo: PoolAlgorithm,
    x: &[T],
    dy: &[T],
    target_s: f64,
) -> Result<(Timing, Timing), String> {
    pool.supports::<T>(kind, algo).map_err(|e| e.to_string())?;
    let scratch_len = pool
        .scratch_len::<T>(kind, PoolOp::Forward, algo)
        .max(pool.scratch_len::<T>(kind, PoolOp::Backward, algo));
    let mut scratch = vec![T::ZERO; scratch_len];
    let mut y = vec![T::ZERO; pool.output_len()];
    let mut ix = vec![0usize; pool.output_len()];
    let mut dx = vec![T::ZERO; pool.input_len()];
    let ok = "supported, with lengths from the geometry";
    let forward = measure(target_s, &mut || {
        pool.forward(kind, algo, x, &mut y, Some(&mut ix), &mut scratch)
            .expect(ok);
    });
    let backward = measure(target_s, &mut || {
        pool.backward(kind, algo, dy, Some(&ix), &mut dx, &mut scratch)
            .expect(ok);
    });
    Ok((forward, backward))
}
