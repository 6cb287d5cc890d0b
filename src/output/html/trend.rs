//! The trend chart: findings over the state database's scans, drawn as an
//! inline SVG figure when state is kept.
//!
//! Three lines, told apart by their dash pattern and by a label at their
//! end (never by colour alone): findings still open after each scan (new,
//! open and reopened), exempted ones, and those the scan resolved. Each
//! point has a tooltip with the scan's figures. The markup is built here,
//! every text escaped, with presentation attributes rather than `style`
//! (the page's Content-Security-Policy allows no inline styles).

use std::fmt::Write as _;

use crate::state::trend::TrendCounts;

/// At most this many scans are drawn: the latest ones.
pub(crate) const MAX_POINTS: usize = 60;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 250.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 560.0;
const TOP: f64 = 16.0;
const BASELINE: f64 = 200.0;

/// One scan on the chart.
#[derive(Clone, Debug, PartialEq)]
pub struct TrendPoint {
    /// The scan's id.
    pub scan_id: i64,
    /// Under the point: the report's refresh date, else the scan's day.
    pub label: String,
    /// The scan's findings by status.
    pub counts: TrendCounts,
}

/// A series: its name, dash pattern and value per point.
struct Series {
    name: &'static str,
    dash: &'static str,
    value: fn(&TrendCounts) -> u64,
}

const SERIES: [Series; 3] = [
    Series {
        name: "open",
        dash: "",
        value: |c| c.new + c.open + c.reopened,
    },
    Series {
        name: "exempted",
        dash: "6 4",
        value: |c| c.exempted,
    },
    Series {
        name: "resolved",
        dash: "2 3",
        value: |c| c.resolved,
    },
];

/// The figure (caption and SVG) for `points`, oldest first; `None` with
/// no scan to show.
pub(crate) fn trend_figure(points: &[TrendPoint]) -> Option<String> {
    let points = &points[points.len().saturating_sub(MAX_POINTS)..];
    if points.is_empty() {
        return None;
    }
    let max = points
        .iter()
        .flat_map(|p| SERIES.iter().map(move |s| (s.value)(&p.counts)))
        .max()
        .unwrap_or(0)
        .max(1);
    let x = |index: usize| {
        if points.len() == 1 {
            (LEFT + RIGHT) / 2.0
        } else {
            LEFT + (RIGHT - LEFT) * index as f64 / (points.len() - 1) as f64
        }
    };
    let y = |value: u64| BASELINE - (BASELINE - TOP) * value as f64 / max as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<figure class=\"chart-box\" id=\"trend-chart\">\n<figcaption>Findings over the last {} (open: new, open and reopened; resolved: by that scan)</figcaption>\n\
         <svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" preserveAspectRatio=\"xMinYMin meet\" role=\"img\" aria-label=\"Findings per scan\">\n",
        if points.len() == 1 {
            "scan".to_owned()
        } else {
            format!("{} scans", points.len())
        }
    );
    let _ = writeln!(
        svg,
        "<text class=\"axis-label\" x=\"{}\" y=\"{TOP}\" text-anchor=\"end\">{max}</text>\n\
         <text class=\"axis-label\" x=\"{}\" y=\"{BASELINE}\" text-anchor=\"end\">0</text>\n\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"{BASELINE}\" x2=\"{RIGHT}\" y2=\"{BASELINE}\"/>",
        LEFT - 6.0,
        LEFT - 6.0
    );
    for series in &SERIES {
        draw_series(&mut svg, series, points, &x, &y);
    }
    draw_labels(&mut svg, points, &x);
    svg.push_str("</svg>\n</figure>\n");
    Some(svg)
}

fn draw_series(
    svg: &mut String,
    series: &Series,
    points: &[TrendPoint],
    x: &dyn Fn(usize) -> f64,
    y: &dyn Fn(u64) -> f64,
) {
    let coordinates: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{:.1},{:.1}", x(i), y((series.value)(&p.counts))))
        .collect();
    let dash = if series.dash.is_empty() {
        String::new()
    } else {
        format!(" stroke-dasharray=\"{}\"", series.dash)
    };
    let _ = writeln!(
        svg,
        "<g class=\"trend-{}\"><polyline points=\"{}\" fill=\"none\" stroke=\"currentColor\" stroke-width=\"2\"{dash}/>",
        series.name,
        coordinates.join(" ")
    );
    for (i, point) in points.iter().enumerate() {
        let value = (series.value)(&point.counts);
        let _ = writeln!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"currentColor\"><title>scan {} ({}): {value} {}</title></circle>",
            x(i),
            y(value),
            point.scan_id,
            escape(&point.label),
            series.name
        );
    }
    let last = points.len() - 1;
    let value = (series.value)(&points[last].counts);
    let _ = writeln!(
        svg,
        "<text class=\"value\" x=\"{:.1}\" y=\"{:.1}\">{value} {}</text></g>",
        x(last) + 8.0,
        y(value) + 4.0,
        series.name
    );
}

/// The first and last scans' labels under the axis (and the middle one's,
/// when there are enough points for it not to collide).
fn draw_labels(svg: &mut String, points: &[TrendPoint], x: &dyn Fn(usize) -> f64) {
    let mut shown = vec![0, points.len() - 1];
    if points.len() >= 5 {
        shown.insert(1, points.len() / 2);
    }
    shown.dedup();
    for index in shown {
        let anchor = match index {
            0 if points.len() > 1 => "start",
            i if i == points.len() - 1 && points.len() > 1 => "end",
            _ => "middle",
        };
        let _ = writeln!(
            svg,
            "<text class=\"axis-label\" x=\"{:.1}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text>",
            x(index),
            BASELINE + 18.0,
            escape(&points[index].label)
        );
    }
}

/// Text for SVG markup.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(scan_id: i64, label: &str, open: u64, resolved: u64) -> TrendPoint {
        TrendPoint {
            scan_id,
            label: label.to_owned(),
            counts: TrendCounts {
                open,
                resolved,
                ..TrendCounts::default()
            },
        }
    }

    #[test]
    fn each_series_ends_with_its_value_and_labels_are_escaped() {
        assert_eq!(trend_figure(&[]), None);
        let svg = trend_figure(&[point(1, "2026-11-20", 4, 0), point(2, "<b>", 2, 2)]).unwrap();
        assert!(svg.contains("Findings over the last 2 scans"), "{svg}");
        assert!(svg.contains(">2 open</text>"), "{svg}");
        assert!(svg.contains(">2 resolved</text>"), "{svg}");
        assert!(svg.contains(">0 exempted</text>"), "{svg}");
        assert!(svg.contains("scan 1 (2026-11-20): 4 open"), "{svg}");
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"), "{svg}");
        // The highest value is at the top of the plot.
        assert!(svg.contains("points=\"48.0,16.0 560.0,108.0\""), "{svg}");
    }

    #[test]
    fn only_the_latest_scans_are_drawn() {
        let points: Vec<TrendPoint> = (1..=80).map(|i| point(i, "d", 1, 0)).collect();
        let svg = trend_figure(&points).unwrap();
        assert!(svg.contains(&format!("last {MAX_POINTS} scans")));
        assert!(!svg.contains("scan 20 ") && svg.contains("scan 21 "));
    }
}
