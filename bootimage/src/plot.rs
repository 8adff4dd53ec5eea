//! The scaling section's plot: one small line chart per figure, size on a
//! log x axis, median on a linear y axis from 0, as a self-contained SVG
//! (no plotting dependency; a browser or the README renders it).

use std::fmt::Write as _;

/// One chart: a figure measured at several sizes.
pub struct Series {
    /// The figure, as its key without the size (`scaling_watches_*_round_trip_p50_us`).
    pub title: String,
    /// (size, median) points, in size order.
    pub points: Vec<(f64, f64)>,
}

const CHART_W: f64 = 300.0;
const CHART_H: f64 = 180.0;
const MARGIN: f64 = 48.0;
const COLUMNS: usize = 2;

/// An SVG drawing of `series` under `caption`, two charts to a row.
pub fn svg(caption: &str, series: &[Series]) -> String {
    let rows = series.len().div_ceil(COLUMNS).max(1);
    let cell_w = CHART_W + 2.0 * MARGIN;
    let cell_h = CHART_H + 2.0 * MARGIN;
    let (width, height) = (cell_w * COLUMNS as f64, cell_h * rows as f64 + 30.0);
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"20\" font-size=\"13\">{}</text>\n",
        escape(caption)
    );
    for (i, s) in series.iter().enumerate() {
        let x0 = (i % COLUMNS) as f64 * cell_w + MARGIN;
        let y0 = (i / COLUMNS) as f64 * cell_h + MARGIN + 30.0;
        chart(&mut out, s, x0, y0);
    }
    out.push_str("</svg>\n");
    out
}

/// Draws one chart with its top-left plot corner at (`x0`, `y0`).
fn chart(out: &mut String, s: &Series, x0: f64, y0: f64) {
    let _ = writeln!(
        out,
        "<text x=\"{x0}\" y=\"{}\">{}</text>",
        y0 - 10.0,
        escape(&s.title)
    );
    let _ = writeln!(
        out,
        "<rect x=\"{x0}\" y=\"{y0}\" width=\"{CHART_W}\" height=\"{CHART_H}\" fill=\"none\" stroke=\"#999\"/>"
    );
    let xs: Vec<f64> = s.points.iter().map(|p| p.0.max(1.0).log10()).collect();
    let (lo, hi) = xs
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    let x_span = if hi > lo { hi - lo } else { 1.0 };
    let y_max = s.points.iter().map(|p| p.1).fold(0.0, f64::max);
    let y_top = if y_max > 0.0 { y_max * 1.15 } else { 1.0 };
    let px = |x: f64| x0 + (x - lo) / x_span * CHART_W;
    let py = |y: f64| y0 + CHART_H - y / y_top * CHART_H;
    let path: Vec<String> = s
        .points
        .iter()
        .zip(&xs)
        .map(|(p, &x)| format!("{:.1},{:.1}", px(x), py(p.1)))
        .collect();
    let _ = writeln!(
        out,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\"/>",
        path.join(" ")
    );
    for (p, &x) in s.points.iter().zip(&xs) {
        let (cx, cy) = (px(x), py(p.1));
        let _ = writeln!(
            out,
            "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"3\" fill=\"#1f77b4\"/>\n\
             <text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n\
             <text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
            cy - 6.0,
            p.1,
            y0 + CHART_H + 14.0,
            p.0
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#555\">0</text>",
        x0 - 14.0,
        y0 + CHART_H
    );
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Groups `scaling_WHAT_N_METRIC=value` figures into one series per
/// `WHAT_*_METRIC`, in first-seen order; other keys are ignored.
pub fn scaling_series(figures: &[(String, f64)]) -> Vec<Series> {
    let mut series: Vec<Series> = Vec::new();
    for (key, value) in figures {
        let Some(rest) = key.strip_prefix("scaling_") else {
            continue;
        };
        let words: Vec<&str> = rest.split('_').collect();
        let Some(at) = words.iter().position(|w| w.parse::<u64>().is_ok()) else {
            continue;
        };
        let size: f64 = words[at].parse().unwrap_or(0.0);
        let title = format!("{}_*_{}", words[..at].join("_"), words[at + 1..].join("_"));
        match series.iter_mut().find(|s| s.title == title) {
            Some(s) => s.points.push((size, *value)),
            None => series.push(Series {
                title,
                points: vec![(size, *value)],
            }),
        }
    }
    for s in &mut series {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    series
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_group_by_what_and_metric_with_sizes_in_order() {
        let figures: Vec<(String, f64)> = [
            ("scaling_watches_1000_round_trip_p50_us", 2.0),
            ("scaling_watches_10_round_trip_p50_us", 1.0),
            ("scaling_directory_10_us_per_call", 5.0),
            ("guest_read_1t", 9.0),
            ("scaling_daemon_quotas", 0.0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let series = scaling_series(&figures);
        let titles: Vec<&str> = series.iter().map(|s| s.title.as_str()).collect();
        assert_eq!(
            titles,
            ["watches_*_round_trip_p50_us", "directory_*_us_per_call"]
        );
        assert_eq!(series[0].points, [(10.0, 1.0), (1000.0, 2.0)]);
    }

    #[test]
    fn the_drawing_is_one_svg_with_a_chart_per_series() {
        let series = vec![
            Series {
                title: "a<b".into(),
                points: vec![(10.0, 1.0), (1000.0, 3.0)],
            },
            Series {
                title: "flat".into(),
                points: vec![(1.0, 0.0)],
            },
        ];
        let svg = svg("caption & date", &series);
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a&lt;b") && svg.contains("caption &amp; date"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }
}
