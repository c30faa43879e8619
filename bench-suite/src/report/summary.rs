//! The summary of a sweep: for each point and direction, the best variant, how `auto`
//! compares with it, and how it compares with a baseline.

use crate::results::Row;
use std::collections::BTreeMap;

/// One point and direction of the sweep, summarised.
#[derive(Clone, Debug, PartialEq)]
pub struct Best<'a> {
    /// The fastest correct row of our own backends.
    pub best: &'a Row,
    /// `auto`'s time over the best time (1.0 when auto picked the best).
    pub auto_ratio: Option<f64>,
    /// The baseline's time over the best time (above 1: we are faster).
    pub speedup: Option<f64>,
}

/// Key of a point and direction: family, shape, direction.
pub type PointKey = (String, String, String);

fn key(r: &Row) -> PointKey {
    (r.family.clone(), r.shape.clone(), r.direction.clone())
}

/// The best row per point and direction, in the order the points first appear.
pub fn best_per_point<'a>(rows: &'a [Row], baselines: &'a [Row]) -> Vec<Best<'a>> {
    let mut order: Vec<PointKey> = Vec::new();
    let mut groups: BTreeMap<PointKey, Vec<&Row>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.is_timed()) {
        let k = key(r);
        if !groups.contains_key(&k) {
            order.push(k.clone());
        }
        groups.entry(k).or_default().push(r);
    }
    let mut baseline: BTreeMap<PointKey, f64> = BTreeMap::new();
    for b in baselines.iter().filter(|r| r.is_timed()) {
        let t = baseline.entry(key(b)).or_insert(f64::INFINITY);
        *t = t.min(b.median_s);
    }
    order
        .into_iter()
        .map(|k| {
            let group = &groups[&k];
            let best = group
                .iter()
                .copied()
                .filter(|r| r.variant != "auto")
                .min_by(|a, b| a.median_s.total_cmp(&b.median_s))
                .unwrap_or(group[0]);
            let auto_ratio = group
                .iter()
                .find(|r| r.variant == "auto" && r.backend == best.backend)
                .map(|a| a.median_s / best.median_s);
            let speedup = baseline.get(&k).map(|t| t / best.median_s);
            Best {
                best,
                auto_ratio,
                speedup,
            }
        })
        .collect()
}

/// Geometric mean of positive values (`None` for none).
pub fn geometric_mean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values
        .into_iter()
        .filter(|v| *v > 0.0 && v.is_finite())
        .fold((0.0, 0usize), |(s, n), v| (s + v.ln(), n + 1));
    (n > 0).then(|| (sum / n as f64).exp())
}

/// The summary as a plain-text table.
pub fn text_table(rows: &[Row], baselines: &[Row]) -> String {
    let best = best_per_point(rows, baselines);
    let mut out = format!(
        "{:<20} {:<34} {:<15} {:<12} {:>10} {:>9} {:>8} {:>7} {:>8}\n",
        "family",
        "shape",
        "direction",
        "best",
        "median ms",
        "GFLOP/s",
        "GB/s",
        "ceiling",
        "auto/best"
    );
    for b in &best {
        let r = b.best;
        out += &format!(
            "{:<20} {:<34} {:<15} {:<12} {:>10.3} {:>9.2} {:>8.2} {:>6.1}% {:>8}",
            r.family,
            r.shape,
            r.direction,
            r.variant,
            r.median_s * 1e3,
            r.gflops,
            r.gbps,
            100.0 * r.peak_fraction,
            b.auto_ratio.map_or("-".into(), |x| format!("{x:.2}")),
        );
        if let Some(s) = b.speedup {
            out += &format!("  {s:.2}x vs baseline");
        }
        out += "\n";
    }
    let wrong: Vec<&Row> = rows.iter().filter(|r| r.status == "wrong").collect();
    if let Some(g) = geometric_mean(best.iter().filter_map(|b| b.auto_ratio)) {
        out += &format!("auto/best geometric mean: {g:.3}\n");
    }
    if let Some(g) = geometric_mean(best.iter().filter_map(|b| b.speedup)) {
        out += &format!("speed-up over baseline, geometric mean: {g:.2}x\n");
    }
    for r in &wrong {
        out += &format!(
            "WRONG: {} {} {} {} {}: {}\n",
            r.family, r.shape, r.backend, r.variant, r.direction, r.note
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(variant: &str, s: f64) -> Row {
        let mut r = Row::empty();
        r.family = "f".into();
        r.shape = "s".into();
        r.direction = "forward".into();
        r.variant = variant.into();
        r.backend = "cpu".into();
        r.status = "ok".into();
        r.median_s = s;
        r
    }

    #[test]
    fn best_ignores_auto_and_compares_it() {
        let rows = vec![row("auto", 2.2), row("direct", 4.0), row("unrolled", 2.0)];
        let mut base = row("pytorch", 8.0);
        base.backend = "pytorch".into();
        let baselines = vec![base];
        let b = best_per_point(&rows, &baselines);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].best.variant, "unrolled");
        assert!((b[0].auto_ratio.unwrap() - 1.1).abs() < 1e-12);
        assert!((b[0].speedup.unwrap() - 4.0).abs() < 1e-12);
        assert!((geometric_mean([2.0, 8.0]).unwrap() - 4.0).abs() < 1e-12);
    }
}
