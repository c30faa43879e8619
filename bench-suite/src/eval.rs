//! `eval`: every case of every file on every variant that can serve it, compared as the case
//! format says, with a row per (case, variant, dataset) and a closing `N passed, M failed`.

use crate::case::Case;
use crate::case_file::read_cases;
use crate::compare::{Comparison, compare, compare_indices};
use crate::run::{Backends, RunError, Variant, run};
use std::io::{self, Write};
use std::path::Path;

/// What `eval` found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Datasets that matched.
    pub passed: usize,
    /// Datasets that did not.
    pub failed: usize,
    /// Files or cases that could not be read or were invalid.
    pub unreadable: usize,
}

impl Summary {
    /// The process exit status: 2 if anything could not be read, 1 if anything failed, else 0.
    pub fn exit_code(&self) -> i32 {
        if self.unreadable > 0 {
            2
        } else if self.failed > 0 {
            1
        } else {
            0
        }
    }
}

/// Runs every case of `files` on the variants of `backends` whose names are in `only` (all
/// when empty).
pub fn eval_files(
    files: &[impl AsRef<Path>],
    only: &[String],
    backends: Backends,
    out: &mut impl Write,
) -> io::Result<Summary> {
    let mut summary = Summary::default();
    for file in files {
        let file = file.as_ref();
        match read_cases(file) {
            Ok(cases) => {
                writeln!(out, "# {} ({} cases)", file.display(), cases.len())?;
                for case in &cases {
                    eval_case(case, only, backends, out, &mut summary)?;
                }
            }
            Err(e) => {
                writeln!(out, "error: {e}")?;
                summary.unreadable += 1;
            }
        }
    }
    writeln!(out, "{} passed, {} failed", summary.passed, summary.failed)?;
    Ok(summary)
}

/// Runs one case on every applicable variant and writes its rows.
pub fn eval_case(
    case: &Case,
    only: &[String],
    backends: Backends,
    out: &mut impl Write,
    summary: &mut Summary,
) -> io::Result<()> {
    let (default_rtol, default_atol) = case.dtype.default_tolerances();
    let rtol = case.rtol.unwrap_or(default_rtol);
    let atol = case.atol.unwrap_or(default_atol);
    for variant in Variant::for_backends(case.op, backends) {
        if !only.is_empty() && !only.iter().any(|n| n == variant.name()) {
            continue;
        }
        let results = match run(case, variant) {
            Ok(r) => r,
            Err(RunError::Unsupported(reason)) => {
                writeln!(
                    out,
                    "{:<28} {:<14} cannot serve this case: {reason}",
                    case.name,
                    variant.label()
                )?;
                continue;
            }
            Err(RunError::Invalid(msg)) => {
                writeln!(out, "{:<28} {:<14} FAIL  {msg}", case.name, variant.label())?;
                summary.failed += 1;
                continue;
            }
        };
        let mut rows: Vec<(&str, Comparison)> = vec![(
            "output",
            compare(&results.output, &case.output.data, rtol, atol),
        )];
        let pairs = [
            ("grad_input", &results.grad_input, &case.grad_input),
            ("grad_weight", &results.grad_weight, &case.grad_weight),
            ("grad_bias", &results.grad_bias, &case.grad_bias),
        ];
        for (name, got, expected) in pairs {
            if let Some(expected) = expected {
                let c = match got {
                    Some(g) => compare(g, &expected.data, rtol, atol),
                    None => compare(&[], &expected.data, rtol, atol),
                };
                rows.push((name, c));
            }
        }
        if let Some(expected) = &case.indices {
            let got = results.indices.as_deref().unwrap_or(&[]);
            rows.push(("indices", compare_indices(got, expected)));
        }
        for (name, c) in rows {
            let verdict = if c.passed { "pass" } else { "FAIL" };
            write!(
                out,
                "{:<28} {:<14} {:<12} max_err {:.3e}  bound {:.3e}  {verdict}",
                case.name,
                variant.label(),
                name,
                c.max_abs_err,
                c.bound
            )?;
            if c.nan_mismatches > 0 {
                write!(out, "  ({} NaN mismatches)", c.nan_mismatches)?;
            }
            writeln!(out)?;
            if c.passed {
                summary.passed += 1;
            } else {
                summary.failed += 1;
            }
        }
    }
    Ok(())
}
