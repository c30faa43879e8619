//! The charts, each drawn once for any plotters backend and written as SVG and PNG.
//!
//! Text is rendered with an embedded DejaVu Sans (`ab_glyph`), so PNGs need no system
//! fonts.

use crate::results::Row;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Once;

/// A chart that can be drawn on any backend.
pub trait Chart {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws onto `root` (already filled white).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Both calls only fail on an invalid font, and these are the crate's own.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
        let _ = plotters::style::register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold());
    });
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Writes `dir/stem.svg` and `dir/stem.png`.
pub fn render(chart: &impl Chart, dir: &Path, stem: &str) -> Result<(), String> {
    fonts();
    let size = chart.size();
    let svg = dir.join(format!("{stem}.svg"));
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        chart.draw(&root)?;
        root.present().map_err(err)?;
    }
    let png = dir.join(format!("{stem}.png"));
    let root = BitMapBackend::new(&png, size).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    chart.draw(&root)?;
    root.present().map_err(err)
}

/// How a series is named in legends: the variant, prefixed by its backend unless CPU.
pub fn series_key(r: &Row) -> String {
    match r.backend.as_str() {
        "cpu" | "pytorch" | "cudnn" => r.variant.clone(),
        b => format!("{b} {}", r.variant),
    }
}

/// A fixed colour per well-known series, so every chart uses the same ones.
pub fn colour(key: &str) -> RGBColor {
    match key {
        "auto" => RGBColor(127, 127, 127),
        "direct" => RGBColor(31, 119, 180),
        "unrolled" => RGBColor(255, 127, 14),
        "fold" => RGBColor(44, 160, 44),
        "prefix_sum" => RGBColor(214, 39, 40),
        "pytorch" => RGBColor(20, 20, 20),
        other => {
            const MORE: [RGBColor; 6] = [
                RGBColor(148, 103, 189),
                RGBColor(140, 86, 75),
                RGBColor(227, 119, 194),
                RGBColor(188, 189, 34),
                RGBColor(23, 190, 207),
                RGBColor(255, 187, 120),
            ];
            let h = other
                .bytes()
                .fold(0usize, |h, b| h.wrapping_mul(31) + b as usize);
            MORE[h % MORE.len()]
        }
    }
}

fn log_range(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .into_iter()
        .filter(|v| *v > 0.0 && v.is_finite())
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() || hi <= 0.0 {
        return (0.1, 10.0);
    }
    let lo = 10f64.powf((lo.log10() - 0.05).floor());
    let hi = 10f64.powf((hi.log10() + 0.05).ceil());
    (lo, hi)
}

/// Horizontal grouped bars on a log axis: one group per label, one bar per series.
pub struct Bars {
    /// Title.
    pub title: String,
    /// What the bars measure, with units.
    pub value_desc: String,
    /// Group labels, top to bottom.
    pub labels: Vec<String>,
    /// `(series, values per label)`; NaN where a series has no bar.
    pub series: Vec<(String, Vec<f64>)>,
    /// A vertical reference line (e.g. 1.0 for speed-ups).
    pub reference: Option<f64>,
}

impl Bars {
    /// Room for the longest group label at 13 px.
    fn label_width(&self) -> u32 {
        let longest = self
            .labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(0);
        (longest as u32 * 7 + 24).clamp(120, 600)
    }
}

impl Chart for Bars {
    fn size(&self) -> (u32, u32) {
        let per_group = 12 * self.series.len().max(1) as u32 + 12;
        (
            800 + self.label_width(),
            (140 + per_group * self.labels.len() as u32).max(320),
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let n = self.labels.len();
        let (lo, hi) = log_range(
            self.series
                .iter()
                .flat_map(|(_, v)| v.iter().copied())
                .chain(self.reference),
        );
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(self.label_width())
            .build_cartesian_2d((lo..hi).log_scale(), -0.5f64..(n as f64 - 0.5))
            .map_err(err)?;
        let labels = self.labels.clone();
        chart
            .configure_mesh()
            .x_desc(self.value_desc.as_str())
            .y_labels(n.max(1))
            .y_label_formatter(&move |y: &f64| {
                let i = y.round();
                if (y - i).abs() < 1e-6 && i >= 0.0 {
                    labels.get(n - 1 - i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .label_style(("sans-serif", 13))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        let k = self.series.len().max(1) as f64;
        let band = 0.8 / k;
        for (s, (name, values)) in self.series.iter().enumerate() {
            let c = colour(name);
            let bars = values
                .iter()
                .enumerate()
                .filter(|(_, v)| **v > 0.0 && v.is_finite())
                .map(move |(i, &v)| {
                    let top = (n - 1 - i) as f64 + 0.4 - band * s as f64;
                    Rectangle::new([(lo, top), (v, top - band * 0.9)], c.filled())
                });
            chart
                .draw_series(bars)
                .map_err(err)?
                .label(name.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        }
        if let Some(r) = self.reference {
            chart
                .draw_series(LineSeries::new(
                    [(r, -0.5), (r, n as f64 - 0.5)],
                    BLACK.stroke_width(2),
                ))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(err)
    }
}

/// Lines on log-log axes: one series per variant (time against window size, roofline
/// points, ...).
pub struct Lines {
    /// Title.
    pub title: String,
    /// X axis description with units.
    pub x_desc: String,
    /// Y axis description with units.
    pub y_desc: String,
    /// `(series, points)`, each sorted by x.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// Draw the points joined by lines (false: points only).
    pub joined: bool,
    /// Ceilings drawn as black lines with a label: `(label, points)`.
    pub ceilings: Vec<(String, Vec<(f64, f64)>)>,
}

impl Chart for Lines {
    fn size(&self) -> (u32, u32) {
        (1000, 640)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let all = || self.series.iter().flat_map(|(_, p)| p.iter().copied());
        let (x_lo, x_hi) = log_range(all().map(|p| p.0));
        let (y_lo, y_hi) = log_range(
            all().map(|p| p.1).chain(
                self.ceilings
                    .iter()
                    .flat_map(|(_, p)| p.iter().map(|q| q.1)),
            ),
        );
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(80)
            .build_cartesian_2d((x_lo..x_hi).log_scale(), (y_lo..y_hi).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(self.x_desc.as_str())
            .y_desc(self.y_desc.as_str())
            .label_style(("sans-serif", 14))
            .x_label_formatter(&|x| format!("{x}"))
            .y_label_formatter(&|y| format!("{y:e}"))
            .draw()
            .map_err(err)?;
        for (name, points) in &self.ceilings {
            let inside: Vec<(f64, f64)> = points
                .iter()
                .map(|&(x, y)| (x.clamp(x_lo, x_hi), y))
                .collect();
            chart
                .draw_series(LineSeries::new(inside.clone(), BLACK.stroke_width(2)))
                .map_err(err)?;
            if let Some(&(x, y)) = inside.last() {
                chart
                    .draw_series([Text::new(
                        name.clone(),
                        (x / 1.5, y * 1.15),
                        ("sans-serif", 14).into_font().color(&BLACK).pos(
                            plotters::style::text_anchor::Pos::new(
                                plotters::style::text_anchor::HPos::Right,
                                plotters::style::text_anchor::VPos::Bottom,
                            ),
                        ),
                    )])
                    .map_err(err)?;
            }
        }
        for (name, points) in &self.series {
            let c = colour(name);
            let pts = points.clone();
            let anno = if self.joined {
                chart
                    .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                    .map_err(err)?;
                chart
                    .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, c.filled())))
                    .map_err(err)?
            } else {
                chart
                    .draw_series(pts.into_iter().map(|p| Circle::new(p, 5, c.filled())))
                    .map_err(err)?
            };
            anno.label(name.as_str())
                .legend(move |(x, y)| Circle::new((x + 6, y), 5, c.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(err)
    }
}

/// The distinct series keys of some rows, well-known ones first.
pub fn keys<'a>(rows: impl IntoIterator<Item = &'a Row>) -> Vec<String> {
    let set: BTreeSet<String> = rows.into_iter().map(series_key).collect();
    let order = [
        "pytorch",
        "auto",
        "direct",
        "unrolled",
        "fold",
        "prefix_sum",
    ];
    let mut v: Vec<String> = order
        .iter()
        .filter(|k| set.contains(**k))
        .map(|k| k.to_string())
        .collect();
    v.extend(set.into_iter().filter(|k| !order.contains(&k.as_str())));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_render_to_svg_and_png() {
        let dir = std::env::temp_dir().join(format!("origami-charts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bars = Bars {
            title: "t".into(),
            value_desc: "GFLOP/s".into(),
            labels: vec!["a".into(), "b".into()],
            series: vec![
                ("direct".into(), vec![1.0, 2.0]),
                ("unrolled".into(), vec![10.0, f64::NAN]),
            ],
            reference: Some(1.0),
        };
        render(&bars, &dir, "bars").unwrap();
        let lines = Lines {
            title: "w".into(),
            x_desc: "window".into(),
            y_desc: "s".into(),
            series: vec![("direct".into(), vec![(3.0, 0.01), (63.0, 4.0)])],
            joined: true,
            ceilings: vec![("peak".into(), vec![(0.1, 1.0), (100.0, 1.0)])],
        };
        render(&lines, &dir, "lines").unwrap();
        for f in ["bars.svg", "bars.png", "lines.svg", "lines.png"] {
            let len = std::fs::metadata(dir.join(f)).unwrap().len();
            assert!(len > 1000, "{f}: {len} bytes");
        }
        let svg = std::fs::read_to_string(dir.join("bars.svg")).unwrap();
        assert!(svg.contains("GFLOP/s") && svg.contains("unrolled"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
