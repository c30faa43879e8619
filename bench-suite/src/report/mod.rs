//! The report of a sweep: charts (SVG and PNG) and an HTML index that shows them with the
//! summary table.
//!
//! - per family and direction: GFLOP/s (convolution) or GB/s (pooling) per shape, one bar
//!   per variant and baseline; GPU variants twice, the kernel alone and with the host-device
//!   transfer added;
//! - window-sweep families: time against window size on log-log axes, where an `O(k^D)`
//!   variant is a straight line of slope `D` and an `O(1)` one is flat;
//! - a roofline per direction: arithmetic intensity (nominal FLOP per least byte) against
//!   GFLOP/s, under the measured peak and triad bandwidth;
//! - with baselines: the best variant's speed-up over the baseline per point.

pub mod charts;
pub mod summary;

use crate::results::{Results, Row};
use charts::{Bars, Lines, keys, render, series_key};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A chart written by [`write()`], for the index.
#[derive(Clone, Debug, PartialEq)]
pub struct ChartFile {
    /// File stem under `charts/` (`.svg` and `.png` exist).
    pub stem: String,
    /// Section of the index it belongs to.
    pub section: &'static str,
    /// Caption.
    pub caption: String,
}

fn directions(rows: &[&Row]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for d in ["forward", "backward_input", "backward_weight"] {
        if rows.iter().any(|r| r.direction == d) {
            v.push(d.into());
        }
    }
    v
}

fn unique<'a>(items: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for s in items {
        if !v.iter().any(|x| x == s) {
            v.push(s.to_owned());
        }
    }
    v
}

/// Draws every chart of `results` (with `baselines` overlaid) into `dir/charts`, and writes
/// `dir/index.html`. Returns the index's path.
pub fn write(dir: &Path, results: &Results, baselines: &[Results]) -> Result<PathBuf, String> {
    let chart_dir = dir.join("charts");
    std::fs::create_dir_all(&chart_dir)
        .map_err(|e| format!("cannot create {}: {e}", chart_dir.display()))?;
    let ours: Vec<&Row> = results.rows.iter().filter(|r| r.is_timed()).collect();
    let base_rows: Vec<Row> = baselines
        .iter()
        .flat_map(|b| b.rows.iter().cloned())
        .map(|mut r| {
            r.derive_rates(None);
            r
        })
        .filter(Row::is_timed)
        .collect();
    let mut files = Vec::new();
    // A GPU row's kernel time excludes moving data to and from the device; beside it, the
    // same row with the transfer added shows what a caller whose tensors live on the host
    // would see.
    let with_transfer: Vec<Row> = ours
        .iter()
        .filter(|r| r.transfer_s.is_finite())
        .map(|r| {
            let mut t = (*r).clone();
            t.variant = format!("{} + transfer", r.variant);
            t.median_s += r.transfer_s;
            t.derive_rates(None);
            t
        })
        .collect();

    for family in unique(ours.iter().map(|r| r.family.as_str())) {
        let fam: Vec<&Row> = ours
            .iter()
            .copied()
            .chain(with_transfer.iter())
            .chain(base_rows.iter())
            .filter(|r| r.family == family)
            .collect();
        let is_conv = fam.first().is_some_and(|r| r.op == "conv");
        for d in directions(&fam) {
            let rows: Vec<&Row> = fam.iter().copied().filter(|r| r.direction == d).collect();
            let labels = unique(rows.iter().map(|r| r.shape.as_str()));
            let series = keys(rows.iter().copied())
                .into_iter()
                .map(|k| {
                    let values = labels
                        .iter()
                        .map(|l| {
                            rows.iter()
                                .find(|r| &r.shape == l && series_key(r) == k)
                                .map_or(f64::NAN, |r| if is_conv { r.gflops } else { r.gbps })
                        })
                        .collect();
                    (k, values)
                })
                .collect();
            let (metric, desc) = if is_conv {
                ("GFLOP/s", "GFLOP/s (2 x MACs per second; log scale)")
            } else {
                ("GB/s", "GB/s (input + output bytes per second; log scale)")
            };
            let stem = format!("{family}_{d}");
            render(
                &Bars {
                    title: format!("{family}, {d}: {metric} per shape"),
                    value_desc: desc.into(),
                    labels,
                    series,
                    reference: None,
                },
                &chart_dir,
                &stem,
            )?;
            files.push(ChartFile {
                stem,
                section: "Throughput per family",
                caption: format!(
                    "{family}, {d}: {metric} of each variant per shape (higher is better). GPU bars time the kernel on resident buffers; \"+ transfer\" adds uploading the inputs and downloading the result."
                ),
            });
            // A family whose shapes differ in window size over at least three sizes.
            let mut windows: Vec<i64> = rows.iter().map(|r| r.window).collect();
            windows.sort_unstable();
            windows.dedup();
            let window_sweep = windows.len() >= 3;
            if !is_conv && window_sweep {
                let series = keys(rows.iter().copied())
                    .into_iter()
                    .map(|k| {
                        let mut pts: Vec<(f64, f64)> = rows
                            .iter()
                            .filter(|r| series_key(r) == k)
                            .map(|r| (r.window as f64, r.median_s))
                            .collect();
                        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                        (k, pts)
                    })
                    .collect();
                let stem = format!("{family}_{d}_window");
                render(
                    &Lines {
                        title: format!("{family}, {d}: time against window size"),
                        x_desc: "window size k (log)".into(),
                        y_desc: "seconds per call (log)".into(),
                        series,
                        joined: true,
                        ceilings: vec![],
                    },
                    &chart_dir,
                    &stem,
                )?;
                files.push(ChartFile {
                    stem,
                    section: "Pooling against window size",
                    caption: format!(
                        "{family}, {d}: seconds per call against window size, log-log. Direct grows as k^D; prefix sums stay flat."
                    ),
                });
            }
        }
    }

    if let Some(m) = &results.machine {
        for d in directions(&ours) {
            let rows: Vec<&Row> = ours.iter().copied().filter(|r| r.direction == d).collect();
            let series: Vec<(String, Vec<(f64, f64)>)> = keys(rows.iter().copied())
                .into_iter()
                .map(|k| {
                    let pts = rows
                        .iter()
                        .filter(|r| series_key(r) == k && r.bytes > 0.0)
                        .map(|r| (r.flop / r.bytes, r.gflops))
                        .collect();
                    (k, pts)
                })
                .collect();
            let (lo, hi) = series
                .iter()
                .flat_map(|(_, p)| p.iter().map(|q| q.0))
                .fold((f64::INFINITY, 0.0f64), |(lo, hi), x| {
                    (lo.min(x), hi.max(x))
                });
            if !lo.is_finite() {
                continue;
            }
            let (peak, bw) = (m.peak_gflops_1, m.triad_gbps_1);
            let knee = peak / bw;
            let (lo, hi) = ((lo / 2.0).min(knee / 4.0), (hi * 2.0).max(knee * 4.0));
            let stem = format!("roofline_{d}");
            render(
                &Lines {
                    title: format!("Roofline, {d}, 1 thread ({})", m.simd),
                    x_desc: "arithmetic intensity: FLOP per byte (log)".into(),
                    y_desc: "GFLOP/s (log)".into(),
                    series,
                    joined: false,
                    ceilings: vec![(
                        format!("{peak:.0} GFLOP/s peak, {bw:.1} GB/s triad"),
                        vec![(lo, bw * lo), (knee, peak), (hi, peak)],
                    )],
                },
                &chart_dir,
                &stem,
            )?;
            files.push(ChartFile {
                stem,
                section: "Roofline",
                caption: format!(
                    "{d}: every variant and shape against the measured ceilings. Below the sloped line a kernel is memory-bound, below the flat one compute-bound."
                ),
            });
        }
    }

    let best = summary::best_per_point(&results.rows, &base_rows);
    for (group, is_conv) in [("conv", true), ("pool", false)] {
        let with: Vec<&summary::Best> = best
            .iter()
            .filter(|b| b.speedup.is_some() && (b.best.op == "conv") == is_conv)
            .collect();
        if with.is_empty() {
            continue;
        }
        let stem = format!("speedup_{group}");
        render(
            &Bars {
                title: format!("Speed-up of origami's best variant over the baseline ({group})"),
                value_desc: "baseline time / origami time (log; right of 1: origami faster)".into(),
                labels: with
                    .iter()
                    .map(|b| {
                        format!(
                            "{} {} {}",
                            b.best.family,
                            b.best.shape,
                            short(&b.best.direction)
                        )
                    })
                    .collect(),
                series: vec![(
                    "best variant".into(),
                    with.iter().map(|b| b.speedup.unwrap_or(f64::NAN)).collect(),
                )],
                reference: Some(1.0),
            },
            &chart_dir,
            &stem,
        )?;
        files.push(ChartFile {
            stem,
            section: "Against the baseline",
            caption: format!(
                "{group}: how many times faster than the baseline the best variant is."
            ),
        });
    }

    let index = dir.join("index.html");
    std::fs::write(&index, html(results, &base_rows, &files))
        .map_err(|e| format!("cannot write {}: {e}", index.display()))?;
    Ok(index)
}

fn short(direction: &str) -> &str {
    match direction {
        "forward" => "fwd",
        "backward_input" => "bwd-in",
        "backward_weight" => "bwd-w",
        d => d,
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html(results: &Results, baselines: &[Row], files: &[ChartFile]) -> String {
    let mut h = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>origami sweep</title>\n\
         <style>body{font-family:sans-serif;margin:2em;max-width:1200px}\
         table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}\
         td:nth-child(-n+4){text-align:left}.wrong{color:#b00}img{max-width:100%;border:1px solid #eee}</style>\n\
         </head><body>\n<h1>origami sweep</h1>\n",
    );
    match &results.machine {
        Some(m) => {
            let _ = writeln!(h, "<p><b>Machine:</b> {}</p>", esc(&m.summary()));
        }
        None => h += "<p>No machine figures in these results.</p>\n",
    }
    h += "<p>Files: <a href=\"results.h5\">results.h5</a>, <a href=\"results.csv\">results.csv</a>. \
          GFLOP/s counts 2 x MACs (convolution) or one operation per window tap (pooling); GB/s counts each \
          tensor read once and written once; the ceiling is the FMA peak for convolution and the triad \
          bandwidth for pooling.</p>\n";
    let wrong: Vec<&Row> = results
        .rows
        .iter()
        .filter(|r| r.status == "wrong")
        .collect();
    if !wrong.is_empty() {
        h += "<h2 class=\"wrong\">Wrong variants (not timed)</h2>\n<ul>\n";
        for r in wrong {
            let _ = writeln!(
                h,
                "<li class=\"wrong\">{} {} {} {} {}: {}</li>",
                esc(&r.family),
                esc(&r.shape),
                esc(&r.backend),
                esc(&r.variant),
                esc(&r.direction),
                esc(&r.note)
            );
        }
        h += "</ul>\n";
    }
    h += "<h2>Best variant per point</h2>\n<table><tr><th>family</th><th>shape</th><th>direction</th>\
          <th>best</th><th>median ms</th><th>GFLOP/s</th><th>GB/s</th><th>of ceiling</th>\
          <th>auto / best</th><th>speed-up vs baseline</th></tr>\n";
    for b in summary::best_per_point(&results.rows, baselines) {
        let r = b.best;
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.2}</td><td>{:.2}</td>\
             <td>{:.1}%</td><td>{}</td><td>{}</td></tr>",
            esc(&r.family),
            esc(&r.shape),
            esc(&r.direction),
            esc(&series_key(r)),
            r.median_s * 1e3,
            r.gflops,
            r.gbps,
            100.0 * r.peak_fraction,
            b.auto_ratio.map_or("-".into(), |x| format!("{x:.2}")),
            b.speedup.map_or("-".into(), |x| format!("{x:.2}x")),
        );
    }
    h += "</table>\n";
    let mut section = "";
    for f in files {
        if f.section != section {
            section = f.section;
            let _ = writeln!(h, "<h2>{}</h2>", esc(section));
        }
        let _ = writeln!(
            h,
            "<figure><a href=\"charts/{0}.svg\"><img src=\"charts/{0}.svg\" alt=\"{1}\"></a>\
             <figcaption>{1} (<a href=\"charts/{0}.png\">PNG</a>)</figcaption></figure>",
            esc(&f.stem),
            esc(&f.caption)
        );
    }
    h += "</body></html>\n";
    h
}
