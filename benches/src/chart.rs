//! Minimal SVG line charts for the book, written by hand rather than with a
//! plotting crate: the output must be byte-for-byte reproducible (the test
//! command checks the committed charts against the results files), and a chart
//! of a few lines needs a hundred lines of code, not a dependency tree.

use std::fmt::Write;

/// One line on a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points, in x order.
    pub points: Vec<(f64, f64)>,
}

/// A chart with logarithmic axes (the quantities here span decades).
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Title above the plot.
    pub title: String,
    /// Label of the x axis.
    pub x_label: String,
    /// Label of the y axis.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
}

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 240.0; // room for the legend
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
/// Colour-blind-safe palette (Okabe and Ito), yellow last: it is hard to see
/// on white.
const COLOURS: [&str; 8] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
];

impl Chart {
    /// Renders the chart as a standalone SVG document.
    pub fn to_svg(&self) -> String {
        let points = self.series.iter().flat_map(|s| s.points.iter());
        let positive = |v: &f64| v.is_finite() && *v > 0.0;
        let xs: Vec<f64> = points.clone().map(|p| p.0).filter(positive).collect();
        let ys: Vec<f64> = points.map(|p| p.1).filter(positive).collect();
        let (x_lo, x_hi) = decades(&xs);
        let (y_lo, y_hi) = decades(&ys);
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let x_at = |x: f64| LEFT + (x.log10() - x_lo) / (x_hi - x_lo) * plot_w;
        let y_at = |y: f64| TOP + plot_h - (y.log10() - y_lo) / (y_hi - y_lo) * plot_h;

        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(
            svg,
            r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
            LEFT + plot_w / 2.0,
            escape(&self.title)
        );
        // Grid and tick labels at every power of ten.
        for decade in x_lo as i32..=x_hi as i32 {
            let x = x_at(10f64.powi(decade));
            let _ = writeln!(
                svg,
                r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                TOP + plot_h,
                TOP + plot_h + 18.0,
                tick(decade)
            );
        }
        for decade in y_lo as i32..=y_hi as i32 {
            let y = y_at(10f64.powi(decade));
            let _ = writeln!(
                svg,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + plot_w,
                LEFT - 6.0,
                y + 4.0,
                tick(decade)
            );
        }
        let _ = writeln!(
            svg,
            r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>"##
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + plot_w / 2.0,
            HEIGHT - 16.0,
            escape(&self.x_label)
        );
        let _ = writeln!(
            svg,
            r#"<text transform="translate(20 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            TOP + plot_h / 2.0,
            escape(&self.y_label)
        );
        for (n, series) in self.series.iter().enumerate() {
            let colour = COLOURS[n % COLOURS.len()];
            let path: Vec<String> = series
                .points
                .iter()
                .filter(|(x, y)| positive(x) && positive(y))
                .map(|&(x, y)| format!("{:.1},{:.1}", x_at(x), y_at(y)))
                .collect();
            let _ = writeln!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
                path.join(" ")
            );
            for point in &path {
                let (cx, cy) = point.split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(
                    svg,
                    r#"<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>"#
                );
            }
            let ly = TOP + 10.0 + n as f64 * 20.0;
            let lx = LEFT + plot_w + 14.0;
            let _ = writeln!(
                svg,
                r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
                lx + 20.0,
                lx + 26.0,
                ly + 4.0,
                escape(&series.name)
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

/// Horizontal bars on a linear axis from zero: one value per labelled thing
/// (throughput per stage), where a line would suggest an order that is not there.
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    /// Title above the plot.
    pub title: String,
    /// What the values are ("MB/s").
    pub unit: String,
    /// Label and value of each bar, top to bottom.
    pub bars: Vec<(String, f64)>,
}

impl BarChart {
    /// Renders the chart as a standalone SVG document.
    pub fn to_svg(&self) -> String {
        let label_w = 160.0;
        let bar_h = 26.0;
        let plot_w = WIDTH - label_w - 120.0;
        let height = TOP + self.bars.len() as f64 * bar_h + 30.0;
        let max = self
            .bars
            .iter()
            .map(|b| b.1)
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        let scale = if max > 0.0 { plot_w / max } else { 0.0 };
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(
            svg,
            r#"<rect width="{WIDTH}" height="{height}" fill="white"/>"#
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
            WIDTH / 2.0,
            escape(&self.title)
        );
        for (n, (label, value)) in self.bars.iter().enumerate() {
            let y = TOP + n as f64 * bar_h;
            let w = if value.is_finite() {
                value.max(0.0) * scale
            } else {
                0.0
            };
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect x="{label_w}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{}"/><text x="{:.1}" y="{:.1}">{:.1} {}</text>"#,
                label_w - 8.0,
                y + bar_h * 0.65,
                escape(label),
                y + 3.0,
                bar_h - 6.0,
                COLOURS[0],
                label_w + w + 6.0,
                y + bar_h * 0.65,
                value,
                escape(&self.unit)
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

/// The whole decades (as log10 values) that contain every value.
fn decades(values: &[f64]) -> (f64, f64) {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let (lo, hi) = (lo.log10().floor(), hi.log10().ceil());
    if hi > lo { (lo, hi) } else { (lo, lo + 1.0) }
}

/// 10^n written the way an axis reads: 0.01, 1, 1000, 1e6.
fn tick(decade: i32) -> String {
    match decade {
        -2..=5 => format!("{}", 10f64.powi(decade)),
        _ => format!("1e{decade}"),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_land_inside_the_plot_on_log_axes() {
        let chart = Chart {
            title: "t <&>".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![Series {
                name: "a".into(),
                points: vec![(1.0, 10.0), (1000.0, 1000.0)],
            }],
        };
        let svg = chart.to_svg();
        assert!(svg.contains("t &lt;&amp;&gt;"));
        // x spans decades 0..3 over the plot width 440 from 80; y 1..3 over 320.
        assert!(svg.contains(r#"points="80.0,360.0 520.0,40.0""#), "{svg}");
    }

    #[test]
    fn bars_are_proportional_and_labelled() {
        let chart = BarChart {
            title: "t".into(),
            unit: "MB/s".into(),
            bars: vec![("a".into(), 100.0), ("b".into(), 50.0)],
        };
        let svg = chart.to_svg();
        // The longest bar spans the plot: 760 - 160 - 120 = 480; half of it is 240.
        assert!(
            svg.contains(r#"width="480.0""#) && svg.contains(r#"width="240.0""#),
            "{svg}"
        );
        assert!(svg.contains("100.0 MB/s") && svg.contains(">b<"));
    }

    #[test]
    fn decades_round_outwards() {
        assert_eq!(decades(&[3.0, 450.0]), (0.0, 3.0));
        assert_eq!(decades(&[100.0]), (2.0, 3.0));
        assert_eq!(decades(&[]), (0.0, 1.0));
    }
}
