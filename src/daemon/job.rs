//! One scheduled scan: `groupwarden scan` itself, run on its own thread.
//!
//! The daemon builds the same [`ScanArgs`] a person would type (the pinned
//! config and rules, `--format json`, an output file) and calls
//! [`commands::scan::run`], so a scheduled scan does exactly what the CLI
//! does, including whatever later stages add there (recording findings,
//! delivering the outbox). The counts for the log line and the metrics are
//! read back from the JSON document's `summary`, which streams past the
//! findings without holding them.
//!
//! The scan runs on a plain thread rather than the async runtime's
//! blocking pool: it may start runtimes of its own (email delivery does),
//! and the daemon must be able to exit without waiting for it when the
//! grace period runs out.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::cli::ScanArgs;
use crate::commands;
use crate::output::Format;

use super::pinned::Pinned;

/// Why a scan started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// `run_on_start`.
    Start,
    /// A scheduled time.
    Schedule,
    /// `retry_after` after a failed scan.
    Retry,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::Schedule => "schedule",
            Trigger::Retry => "retry",
        }
    }
}

/// The figures of a completed scan, as its JSON summary gives them.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct ScanFigures {
    pub source: String,
    pub report_refresh_date: Option<String>,
    pub report_period: Option<i64>,
    pub rows: u64,
    pub row_errors: u64,
    pub findings: u64,
    pub rule_errors: u64,
    pub concealed_rows: u64,
    /// Findings and errors per enabled rule, by rule id.
    pub rules: BTreeMap<String, RuleFigures>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct RuleFigures {
    pub findings: u64,
    pub errors: u64,
}

impl ScanFigures {
    /// `rule=count` pairs for a log field.
    pub fn findings_by_rule(&self) -> String {
        self.rules
            .iter()
            .map(|(id, figures)| format!("{id}={}", figures.findings))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A scan that ended, well or not.
#[derive(Clone, Debug)]
pub struct FinishedScan {
    pub trigger: Trigger,
    pub started: Timestamp,
    pub finished: Timestamp,
    pub duration: Duration,
    /// The figures, or the error as `scan` would print it.
    pub result: Result<ScanFigures, String>,
}

/// Everything one scan needs.
#[derive(Clone, Debug)]
pub struct ScanJob {
    pub pinned: Arc<Pinned>,
    /// Where to leave the findings document, or `None` to discard it.
    pub output: Option<PathBuf>,
    pub save_report: Option<PathBuf>,
    /// Where the document is written while the scan runs.
    pub partial: PathBuf,
}

impl ScanJob {
    /// The job for `pinned`'s `[schedule]`; `scratch` is a private folder
    /// for a document that is not kept.
    pub fn new(pinned: Arc<Pinned>, scratch: &Path) -> ScanJob {
        let schedule = pinned.schedule();
        let output = schedule.output.as_deref().map(|o| pinned.loaded.resolve(o));
        let save_report = schedule
            .save_report
            .as_deref()
            .map(|d| pinned.loaded.resolve(d));
        // Beside the output, so the finished document replaces the last
        // one in a single rename.
        let partial = match &output {
            Some(output) => {
                let name = output.file_name().unwrap_or_default().to_string_lossy();
                output.with_file_name(format!(".{name}.partial"))
            }
            None => scratch.join("findings.json"),
        };
        ScanJob {
            pinned,
            output,
            save_report,
            partial,
        }
    }

    /// Starts the scan on its own thread; the receiver gets the result.
    pub fn spawn(self, trigger: Trigger) -> std::io::Result<oneshot::Receiver<FinishedScan>> {
        let (sender, receiver) = oneshot::channel();
        std::thread::Builder::new()
            .name("scan".into())
            .spawn(move || {
                let started = Timestamp::now();
                let clock = Instant::now();
                let result = self.run();
                let _ = sender.send(FinishedScan {
                    trigger,
                    started,
                    finished: Timestamp::now(),
                    duration: clock.elapsed(),
                    result,
                });
            })?;
        Ok(receiver)
    }

    /// Runs `scan` and reads its summary back.
    pub fn run(&self) -> Result<ScanFigures, String> {
        let args = ScanArgs {
            config: Some(self.pinned.config_copy.clone()),
            rules: Some(self.pinned.rules_copy.clone()),
            format: Some(Format::Json),
            output: Some(self.partial.clone()),
            save_report: self.save_report.clone(),
            ..ScanArgs::default()
        };
        let result = commands::scan::run(args)
            .map_err(|e| e.to_string())
            .and_then(|_| read_summary(&self.partial));
        match (&result, &self.output) {
            (Ok(_), Some(output)) => std::fs::rename(&self.partial, output)
                .map_err(|e| format!("{}: {e}", output.display()))?,
            _ => {
                let _ = std::fs::remove_file(&self.partial);
            }
        }
        result
    }
}

/// The `summary` of a `scan --format json` document.
pub fn read_summary(path: &Path) -> Result<ScanFigures, String> {
    #[derive(Deserialize)]
    struct Document {
        summary: ScanFigures,
    }
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let document: Document = serde_json::from_reader(BufReader::new(file))
        .map_err(|e| format!("{}: no scan summary: {e}", path.display()))?;
    Ok(document.summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::FindingWriter;
    use crate::output::json::JsonWriter;
    use crate::scan::{RuleCounts, ScanSummary};

    /// Guards the coupling: what the JSON writer writes, the daemon reads.
    #[test]
    fn the_summary_is_read_back_from_what_the_json_writer_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("findings.json");
        let summary = ScanSummary {
            source: "report.csv".into(),
            stats: Default::default(),
            row_errors: 2,
            findings: 0,
            rule_errors: 1,
            per_rule: vec![(
                Arc::from("empty-groups"),
                RuleCounts {
                    findings: 4,
                    errors: 1,
                },
            )],
            elapsed: Duration::from_millis(5),
        };
        let mut writer = JsonWriter::new(Box::new(File::create(&path).unwrap()));
        writer.finish(&summary).unwrap();
        drop(writer);
        let figures = read_summary(&path).unwrap();
        assert_eq!(figures.source, "report.csv");
        assert_eq!(figures.row_errors, 2);
        assert_eq!(figures.rows, 2);
        assert_eq!(
            figures.rules["empty-groups"],
            RuleFigures {
                findings: 4,
                errors: 1
            }
        );
        assert_eq!(figures.findings_by_rule(), "empty-groups=4");
    }

    #[test]
    fn a_truncated_document_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("findings.json");
        std::fs::write(&path, "{\"findings\":[\n{\"rule\":\"x\"}").unwrap();
        let err = read_summary(&path).unwrap_err();
        assert!(err.contains("no scan summary"), "{err}");
    }
}
