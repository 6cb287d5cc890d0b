//! Chart geometry, computed here and drawn as inline SVG by the template
//! (so every label goes through the template's escaping).
//!
//! Two shapes: horizontal bars with a label on the left and the value on
//! the right (findings per rule, storage, external members), and the
//! activity histogram with the inactivity threshold as a bin edge and a
//! marked line. Values are always written next to their bar, so no chart
//! relies on colour or on reading a scale.

use serde::Serialize;

use super::stats::{ActivityHistogram, MAX_TRACKED_DAYS};

/// Width of every chart's view box; the SVG scales to its container.
pub(crate) const VIEW_WIDTH: u32 = 640;
const LABEL_WIDTH: u32 = 200;
const BAR_SPACE: f64 = 280.0;
const ROW_HEIGHT: u32 = 28;
const BAR_HEIGHT: u32 = 18;
const TOP_PADDING: u32 = 6;
/// Labels longer than this are cut; the full text is the bar's tooltip.
const LABEL_CHARS: usize = 26;

/// One bar of a horizontal bar chart.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Bar {
    /// The label shown, cut to a fixed length.
    pub label: String,
    /// The whole label, the bar's tooltip.
    pub full_label: String,
    /// The value as written next to the bar.
    pub value_text: String,
    /// Top of the bar, in view-box units.
    pub y: u32,
    /// Baseline of the bar's texts, in view-box units.
    pub text_y: u32,
    /// Bar length, in view-box units.
    pub width: f64,
    /// Where the value text starts, in view-box units.
    pub value_x: f64,
}

/// A horizontal bar chart laid out for SVG: one row per bar, the label
/// on the left and the value on the right. Positions are in view-box units.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct BarChart {
    /// The bars, top to bottom.
    pub bars: Vec<Bar>,
    /// View-box height.
    pub height: u32,
    /// View-box width ([`VIEW_WIDTH`]).
    pub width: u32,
    /// Where labels end (they are right-aligned).
    pub label_x: u32,
    /// Where bars start.
    pub bar_x: u32,
    /// Height of every bar.
    pub bar_height: u32,
}

/// A bar's data before layout.
pub(crate) struct BarInput {
    /// The label; cut when shown, whole in the tooltip.
    pub label: String,
    /// What the bar's length stands for.
    pub value: u64,
    /// The value as written next to the bar.
    pub value_text: String,
}

/// Lays out bars in the given order, scaled to the largest value.
pub(crate) fn bar_chart(inputs: Vec<BarInput>) -> BarChart {
    let max = inputs.iter().map(|b| b.value).max().unwrap_or(0).max(1) as f64;
    let bars = inputs
        .into_iter()
        .enumerate()
        .map(|(index, input)| {
            let y = TOP_PADDING + index as u32 * ROW_HEIGHT;
            let mut width = input.value as f64 / max * BAR_SPACE;
            if input.value > 0 {
                // A sliver stays visible next to a very large neighbour.
                width = width.max(2.0);
            }
            let width = round1(width);
            Bar {
                label: shorten(&input.label),
                full_label: input.label,
                value_text: input.value_text,
                y,
                text_y: y + BAR_HEIGHT - 4,
                width,
                value_x: round1(f64::from(LABEL_WIDTH) + width + 6.0),
            }
        })
        .collect::<Vec<_>>();
    BarChart {
        height: TOP_PADDING * 2 + bars.len() as u32 * ROW_HEIGHT,
        bars,
        width: VIEW_WIDTH,
        label_x: LABEL_WIDTH - 8,
        bar_x: LABEL_WIDTH,
        bar_height: BAR_HEIGHT,
    }
}

/// `label`, cut to `LABEL_CHARS` characters with an ellipsis.
pub(crate) fn shorten(label: &str) -> String {
    if label.chars().count() <= LABEL_CHARS {
        return label.to_owned();
    }
    let mut short: String = label.chars().take(LABEL_CHARS - 1).collect();
    short.push('…');
    short
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// Bin edges in days: the usual review horizons.
const STANDARD_EDGES: [usize; 8] = [0, 7, 30, 60, 90, 180, 365, 730];

const PLOT_LEFT: f64 = 44.0;
const PLOT_RIGHT: f64 = 630.0;
const PLOT_TOP: f64 = 28.0;
const BASELINE: f64 = 220.0;
const BIN_GAP: f64 = 6.0;
const HISTOGRAM_HEIGHT: u32 = 262;

/// One histogram bar: the groups last active within a range of days.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Bin {
    /// The range shown under the bar (`7–29`, `≥730`, `none`).
    pub label: String,
    /// Groups in the range.
    pub count: u64,
    /// Left edge, in view-box units.
    pub x: f64,
    /// Bar width.
    pub width: f64,
    /// Top of the bar.
    pub y: f64,
    /// Bar height.
    pub height: f64,
    /// Horizontal centre, where the bar's texts go.
    pub center: f64,
    /// Baseline of the count above the bar.
    pub count_y: f64,
    /// At or past the inactivity threshold (drawn hatched).
    pub past_threshold: bool,
}

/// The vertical line marking the inactivity rule's threshold.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ThresholdMark {
    /// The threshold, in days.
    pub days: i64,
    /// Where the line is drawn, in view-box units.
    pub x: f64,
    /// Where its label starts or ends (see `label_anchor`).
    pub label_x: f64,
    /// `start` (label right of the line) or `end` near the right edge.
    pub label_anchor: &'static str,
}

/// The activity histogram laid out for SVG: groups by days since their
/// last activity, with the inactivity threshold marked. Positions are in
/// view-box units.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Histogram {
    /// The bars, left to right; the last one counts groups with no activity.
    pub bins: Vec<Bin>,
    /// The inactivity threshold's line; `None` without an enabled inactivity rule.
    pub threshold: Option<ThresholdMark>,
    /// View-box width ([`VIEW_WIDTH`]).
    pub width: u32,
    /// View-box height.
    pub height: u32,
    /// Where bars stand.
    pub baseline: f64,
    /// Left edge of the plot area (the scale's maximum is written left of it).
    pub plot_left: f64,
    /// Right edge of the plot area.
    pub plot_right: f64,
    /// Top of the plot area, where the tallest bar reaches.
    pub plot_top: f64,
    /// Baseline of the axis caption.
    pub axis_label_y: f64,
    /// Baseline of the bar labels.
    pub bin_label_y: f64,
    /// The largest bin's count, the top of the scale.
    pub max_count: u64,
    /// Groups counted, with and without activity.
    pub groups: u64,
}

/// The activity histogram; `threshold` (days) becomes a bin edge so the
/// bars on either side of the line are exactly the groups under and over.
pub(crate) fn activity_histogram(
    activity: &ActivityHistogram,
    threshold: Option<i64>,
) -> Histogram {
    let threshold_edge = threshold
        .filter(|&days| days > 0)
        .map(|days| (days as usize).min(MAX_TRACKED_DAYS));
    let mut edges: Vec<usize> = STANDARD_EDGES.to_vec();
    edges.extend(threshold_edge);
    edges.sort_unstable();
    edges.dedup();

    let mut ranges: Vec<(String, u64, Option<usize>)> = edges
        .iter()
        .enumerate()
        .map(|(index, &from)| match edges.get(index + 1) {
            Some(&next) => {
                let to = next - 1;
                let label = if to == from {
                    from.to_string()
                } else {
                    format!("{from}–{to}")
                };
                (label, activity.count_between(from, Some(to)), Some(from))
            }
            None => (
                format!("≥{from}"),
                activity.count_between(from, None),
                Some(from),
            ),
        })
        .collect();
    ranges.push(("none".to_owned(), activity.never, None));

    let max_count = ranges.iter().map(|r| r.1).max().unwrap_or(0);
    let scale = (BASELINE - PLOT_TOP) / max_count.max(1) as f64;
    let slot = (PLOT_RIGHT - PLOT_LEFT) / ranges.len() as f64;
    let mut threshold_mark = None;
    let bins = ranges
        .into_iter()
        .enumerate()
        .map(|(index, (label, count, from))| {
            let x = PLOT_LEFT + index as f64 * slot + BIN_GAP / 2.0;
            let height = count as f64 * scale;
            let past_threshold = match (from, threshold_edge) {
                (Some(from), Some(edge)) => from >= edge,
                // Never active in the period: past any threshold.
                (None, Some(_)) => true,
                _ => false,
            };
            if from.is_some() && from == threshold_edge {
                let line_x = round1(PLOT_LEFT + index as f64 * slot);
                let near_right = line_x > f64::from(VIEW_WIDTH) * 0.6;
                threshold_mark = Some(ThresholdMark {
                    days: threshold.unwrap_or_default(),
                    x: line_x,
                    label_x: if near_right {
                        line_x - 4.0
                    } else {
                        line_x + 4.0
                    },
                    label_anchor: if near_right { "end" } else { "start" },
                });
            }
            Bin {
                label,
                count,
                x: round1(x),
                width: round1(slot - BIN_GAP),
                y: round1(BASELINE - height),
                height: round1(height),
                center: round1(x + (slot - BIN_GAP) / 2.0),
                count_y: round1(BASELINE - height - 4.0),
                past_threshold,
            }
        })
        .collect();
    Histogram {
        bins,
        threshold: threshold_mark,
        width: VIEW_WIDTH,
        height: HISTOGRAM_HEIGHT,
        baseline: BASELINE,
        plot_left: PLOT_LEFT,
        plot_right: PLOT_RIGHT,
        plot_top: PLOT_TOP,
        bin_label_y: BASELINE + 16.0,
        axis_label_y: BASELINE + 36.0,
        max_count,
        groups: activity.active() + activity.never,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(label: &str, value: u64) -> BarInput {
        BarInput {
            label: label.to_owned(),
            value,
            value_text: value.to_string(),
        }
    }

    #[test]
    fn bars_scale_to_the_largest_and_small_values_stay_visible() {
        let chart = bar_chart(vec![input("big", 1000), input("tiny", 1), input("zero", 0)]);
        assert_eq!(chart.bars[0].width, BAR_SPACE);
        assert_eq!(chart.bars[1].width, 2.0);
        assert_eq!(chart.bars[2].width, 0.0);
        assert!(chart.bars[2].y > chart.bars[1].y);
    }

    #[test]
    fn long_labels_are_cut_by_characters_not_bytes() {
        let name = "営業部".repeat(20);
        let chart = bar_chart(vec![input(&name, 1)]);
        assert_eq!(chart.bars[0].label.chars().count(), LABEL_CHARS);
        assert!(chart.bars[0].label.ends_with('…'));
        assert_eq!(chart.bars[0].full_label, name);
    }

    #[test]
    fn the_threshold_is_a_bin_edge_with_a_mark() {
        let mut activity = ActivityHistogram::default();
        for days in [Some(10), Some(44), Some(45), Some(100), None] {
            activity.add(days);
        }
        let histogram = activity_histogram(&activity, Some(45));
        let labels: Vec<&str> = histogram.bins.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "0–6",
                "7–29",
                "30–44",
                "45–59",
                "60–89",
                "90–179",
                "180–364",
                "365–729",
                "≥730",
                "none"
            ]
        );
        let past: Vec<u64> = histogram
            .bins
            .iter()
            .filter(|b| b.past_threshold)
            .map(|b| b.count)
            .collect();
        assert_eq!(past.iter().sum::<u64>(), 3, "45, 100 and never active");
        let mark = histogram.threshold.expect("a threshold mark");
        assert_eq!(mark.days, 45);
        assert!(mark.x < histogram.bins[3].x && mark.x > histogram.bins[2].x);
        assert_eq!(histogram.groups, 5);
    }

    #[test]
    fn without_the_inactivity_rule_there_is_no_mark() {
        let histogram = activity_histogram(&ActivityHistogram::default(), None);
        assert!(histogram.threshold.is_none());
        assert!(
            histogram
                .bins
                .iter()
                .all(|b| !b.past_threshold && b.height == 0.0)
        );
    }
}
