//! Progress bars on standard error, for a person at a terminal: bytes and
//! rate while a report downloads, rows and rows per second while a scan
//! that has run longer than a second reads them.
//!
//! Drawn only when standard error is a terminal and the log lines are for
//! people: never into a file, a pipe or a journal, and never between the
//! JSON lines of `--log-format json`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// A scan shows its bar once it has run this long.
pub const SCAN_BAR_DELAY: Duration = Duration::from_secs(1);

/// Whether the log format allows a bar; `main` clears it for
/// `--log-format json`.
static LOG_FORMAT_ALLOWS: AtomicBool = AtomicBool::new(true);

/// Tells whether the log lines are for people (`--log-format text`);
/// `main` calls it once, before any command runs.
pub fn set_log_format_allows(allows: bool) {
    LOG_FORMAT_ALLOWS.store(allows, Ordering::Relaxed);
}

/// The decision, on its inputs: a bar only on a terminal and only beside
/// log lines for people.
pub fn should_draw(stderr_is_terminal: bool, log_format_allows: bool) -> bool {
    stderr_is_terminal && log_format_allows
}

/// Whether bars are drawn in this process.
pub fn enabled() -> bool {
    should_draw(
        std::io::stderr().is_terminal(),
        LOG_FORMAT_ALLOWS.load(Ordering::Relaxed),
    )
}

/// Rows read by a scan, drawn after [`SCAN_BAR_DELAY`] when [`enabled`]:
/// a short scan draws nothing at all.
#[derive(Debug)]
pub struct ScanProgress {
    started: Instant,
    rows: u64,
    bar: Option<ProgressBar>,
    enabled: bool,
}

impl ScanProgress {
    /// Starts timing; draws nothing yet.
    pub fn start() -> ScanProgress {
        ScanProgress {
            started: Instant::now(),
            rows: 0,
            bar: None,
            enabled: enabled(),
        }
    }

    /// `rows` more rows were read.
    pub fn add_rows(&mut self, rows: u64) {
        self.rows += rows;
        if let Some(bar) = &self.bar {
            bar.set_position(self.rows);
        } else if self.enabled && self.started.elapsed() >= SCAN_BAR_DELAY {
            let bar = scan_bar();
            bar.set_position(self.rows);
            self.bar = Some(bar);
        }
    }

    /// Clears the bar, so the summary that follows stands alone.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for ScanProgress {
    fn drop(&mut self) {
        self.finish();
    }
}

fn scan_bar() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("scanning {spinner} {human_pos} rows  {rows_per_sec}")
        .map(|style| {
            style.with_key(
                "rows_per_sec",
                |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                    let _ = write!(out, "{} rows/s", HumanCount(state.per_sec() as u64));
                },
            )
        });
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// The bar of a download: bytes, total when announced, rate.
pub(crate) fn download_bar(total: Option<u64>) -> ProgressBar {
    let (bar, template) = match total {
        Some(total) => (
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
            "downloading {wide_bar} {bytes}/{total_bytes} {bytes_per_sec}",
        ),
        None => (
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            "downloading {spinner} {bytes} {bytes_per_sec}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_only_on_a_terminal_and_beside_text_logs() {
        assert!(should_draw(true, true));
        assert!(!should_draw(false, true), "not into a file or a pipe");
        assert!(!should_draw(true, false), "not between JSON log lines");
        assert!(!should_draw(false, false));
    }

    #[test]
    fn a_short_scan_never_makes_a_bar() {
        let mut progress = ScanProgress {
            started: Instant::now(),
            rows: 0,
            bar: None,
            enabled: true,
        };
        progress.add_rows(512);
        assert!(progress.bar.is_none(), "drawn before a second had passed");
        progress.started = Instant::now() - SCAN_BAR_DELAY;
        progress.add_rows(512);
        let bar = progress.bar.as_ref().expect("drawn after a second");
        assert_eq!(bar.position(), 1024);
        progress.finish();
        assert!(progress.bar.is_none());
    }

    #[test]
    fn disabled_never_makes_a_bar() {
        let mut progress = ScanProgress {
            started: Instant::now() - SCAN_BAR_DELAY,
            rows: 0,
            bar: None,
            enabled: false,
        };
        progress.add_rows(10_000);
        assert!(progress.bar.is_none());
    }
}
