//! `gradcheck`: central finite differences in `f64` for every op, variant and number of
//! dimensions, on small built-in geometries. The loss is `L = sum(y * r)` for a fixed random
//! `r`; each analytic gradient element is compared with `(L(p + h) - L(p - h)) / 2h`, and the
//! error is `|fd - analytic| / max(1, |analytic|)`.

use origami_kernels::{
    ConvAlgorithm, ConvNd, ConvOp, ConvSpec, PoolAlgorithm, PoolKind, PoolNd, PoolOp, PoolSpec,
};
use std::io::{self, Write};

/// The largest error a check may show.
pub const TOLERANCE: f64 = 1e-6;
const STEP: f64 = 1e-5;

/// Deterministic values in [-1, 1) (a fixed linear congruential sequence: the checks must not
/// depend on a random seed).
fn values(len: usize, seed: u64) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// Distinct values 0.01 apart in a shuffled order, so a max window has no ties and no switch
/// within `STEP`.
fn distinct(len: usize, seed: u64) -> Vec<f64> {
    let r = values(len, seed);
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_by(|&a, &b| r[a].total_cmp(&r[b]));
    let mut x = vec![0.0; len];
    for (rank, &i) in order.iter().enumerate() {
        x[i] = rank as f64 * 0.01 - len as f64 * 0.005;
    }
    x
}

/// Worst error of `analytic` against central differences of `loss` around `at`.
fn worst_error(at: &[f64], analytic: &[f64], loss: impl Fn(&[f64]) -> f64) -> f64 {
    let mut p = at.to_vec();
    let mut worst = 0.0f64;
    for i in 0..p.len() {
        let keep = p[i];
        p[i] = keep + STEP;
        let up = loss(&p);
        p[i] = keep - STEP;
        let down = loss(&p);
        p[i] = keep;
        let fd = (up - down) / (2.0 * STEP);
        worst = worst.max((fd - analytic[i]).abs() / analytic[i].abs().max(1.0));
    }
    worst
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Counts of the checks run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Checks within [`TOLERANCE`].
    pub passed: usize,
    /// Checks beyond it.
    pub failed: usize,
}

fn row(out: &mut dyn Write, tally: &mut Tally, what: &str, worst: f64) -> io::Result<()> {
    let ok = worst <= TOLERANCE;
    writeln!(
        out,
        "{what:<44} worst rel. error {worst:.3e}  {}",
        if ok { "pass" } else { "FAIL" }
    )?;
    if ok {
        tally.passed += 1;
    } else {
        tally.failed += 1;
    }
    Ok(())
}

fn conv_checks<const D: usize>(
    spec: ConvSpec<D>,
    out: &mut dyn Write,
    tally: &mut Tally,
) -> io::Result<()> {
    let conv: ConvNd<D> = spec.build().map_err(io::Error::other)?;
    let x = values(conv.input_len(), 1);
    let w = values(conv.weight_len(), 2);
    let b = values(conv.bias_len(), 3);
    let r = values(conv.output_len(), 4);
    for algo in ConvAlgorithm::ALL {
        let forward = |x: &[f64], w: &[f64], b: &[f64]| {
            let mut y = vec![0.0; conv.output_len()];
            let mut s = vec![0.0; conv.scratch_len::<f64>(ConvOp::Forward, algo)];
            conv.forward(algo, x, w, Some(b), &mut y, &mut s)
                .map(|_| dot(&y, &r))
        };
        let mut dx = vec![0.0; conv.input_len()];
        let mut s = vec![0.0; conv.scratch_len::<f64>(ConvOp::BackwardInput, algo)];
        conv.backward_input(algo, &r, &w, &mut dx, &mut s)
            .map_err(io::Error::other)?;
        let mut dw = vec![0.0; conv.weight_len()];
        let mut s = vec![0.0; conv.scratch_len::<f64>(ConvOp::BackwardWeight, algo)];
        conv.backward_weight(algo, &x, &r, &mut dw, &mut s)
            .map_err(io::Error::other)?;
        let mut db = vec![0.0; conv.bias_len()];
        conv.backward_bias(&r, &mut db).map_err(io::Error::other)?;
        let name = |g: &str| format!("conv{D}d {:<10} {g}", algo.name());
        let nan = f64::NAN;
        let e = worst_error(&x, &dx, |p| forward(p, &w, &b).unwrap_or(nan));
        row(out, tally, &name("grad_input"), e)?;
        let e = worst_error(&w, &dw, |p| forward(&x, p, &b).unwrap_or(nan));
        row(out, tally, &name("grad_weight"), e)?;
        let e = worst_error(&b, &db, |p| forward(&x, &w, p).unwrap_or(nan));
        row(out, tally, &name("grad_bias"), e)?;
    }
    Ok(())
}

fn pool_checks<const D: usize>(
    spec: PoolSpec<D>,
    out: &mut dyn Write,
    tally: &mut Tally,
) -> io::Result<()> {
    let pool: PoolNd<D> = spec.build().map_err(io::Error::other)?;
    let x = distinct(pool.input_len(), 5);
    let r = values(pool.output_len(), 6);
    for kind in PoolKind::ALL {
        for algo in PoolAlgorithm::ALL {
            if pool.supports::<f64>(kind, algo).is_err() {
                continue;
            }
            let forward = |x: &[f64], idx: &mut [usize]| {
                let mut y = vec![0.0; pool.output_len()];
                let mut s = vec![0.0; pool.scratch_len::<f64>(kind, PoolOp::Forward, algo)];
                pool.forward(kind, algo, x, &mut y, Some(idx), &mut s)
                    .map(|_| dot(&y, &r))
            };
            let mut idx = vec![0; pool.output_len()];
            forward(&x, &mut idx).map_err(io::Error::other)?;
            let mut dx = vec![0.0; pool.input_len()];
            let mut s = vec![0.0; pool.scratch_len::<f64>(kind, PoolOp::Backward, algo)];
            pool.backward(kind, algo, &r, Some(&idx), &mut dx, &mut s)
                .map_err(io::Error::other)?;
            let e = worst_error(&x, &dx, |p| {
                let mut idx = vec![0; pool.output_len()];
                forward(p, &mut idx).unwrap_or(f64::NAN)
            });
            let name = format!("{}_pool{D}d {:<10} grad_input", kind.name(), algo.name());
            row(out, tally, &name, e)?;
        }
    }
    Ok(())
}

/// Runs every check, writing a row each and the closing `N passed, M failed`.
///
/// `dyn Write`, not generic: a generic entry point would compile every check (and every
/// kernel it runs) again in each crate that calls it, the CLI and its tests.
pub fn gradcheck(out: &mut dyn Write) -> io::Result<Tally> {
    let mut tally = Tally::default();
    conv_checks(
        ConvSpec::new(2, 4, 6, [13], [3])
            .with_stride([2])
            .with_padding_lo_hi([2], [1])
            .with_groups(2),
        out,
        &mut tally,
    )?;
    conv_checks(
        ConvSpec::new(1, 3, 4, [6, 7], [3, 2])
            .with_dilation([2, 1])
            .with_padding([2, 1]),
        out,
        &mut tally,
    )?;
    conv_checks(
        ConvSpec::new(1, 2, 2, [4, 5, 4], [2, 3, 2])
            .with_stride([1, 2, 1])
            .with_padding([1, 0, 1])
            .with_groups(2),
        out,
        &mut tally,
    )?;
    pool_checks(
        PoolSpec::new(2, 2, [15], [4])
            .with_stride([3])
            .with_padding([2])
            .with_ceil_mode(true),
        out,
        &mut tally,
    )?;
    pool_checks(PoolSpec::new(1, 2, [12], [3]), out, &mut tally)?;
    pool_checks(
        PoolSpec::new(1, 2, [7, 9], [3, 2])
            .with_stride([2, 1])
            .with_padding([1, 1])
            .with_count_include_pad(false),
        out,
        &mut tally,
    )?;
    pool_checks(PoolSpec::new(1, 1, [6, 8], [2, 4]), out, &mut tally)?;
    pool_checks(
        PoolSpec::new(1, 1, [5, 6, 7], [3, 2, 3])
            .with_stride([1, 2, 2])
            .with_padding([1, 1, 0])
            .with_dilation([1, 2, 1]),
        out,
        &mut tally,
    )?;
    pool_checks(PoolSpec::new(1, 2, [4, 4, 6], [2, 2, 3]), out, &mut tally)?;
    writeln!(out, "{} passed, {} failed", tally.passed, tally.failed)?;
    Ok(tally)
}
