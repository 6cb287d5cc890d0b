//! Renderers for people and machines.
//!
//! Findings arrive one at a time, in report order; the machine formats
//! (`jsonl`, `json`, `csv`) stream them straight to the output, so memory
//! does not grow with the number of findings. `table` is for a person at a
//! terminal and lays out what it has at the end.

pub mod csv;
pub mod json;
pub mod table;

use std::io::{self, Write};

use clap::ValueEnum;
use serde::Serialize;

use crate::engine::finding::Finding;
use crate::scan::ScanSummary;
use crate::state::Status;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// One JSON object per finding per line.
    Jsonl,
    /// One JSON document: `{"findings": [...], "summary": {...}}`.
    Json,
    /// Comma-separated, one finding per row, evidence as JSON text.
    Csv,
}

/// Where findings go.
pub trait FindingWriter {
    fn write(&mut self, finding: &Finding) -> io::Result<()>;
    /// A finding with its status from the state database (stateful
    /// scans). Formats with no place for it write the finding alone.
    fn write_with_status(&mut self, finding: &Finding, status: Status) -> io::Result<()> {
        let _ = status;
        self.write(finding)
    }
    /// Called once after the last finding.
    fn finish(&mut self, summary: &ScanSummary) -> io::Result<()>;
}

pub fn writer(format: Format, out: Box<dyn Write>) -> Box<dyn FindingWriter> {
    match format {
        Format::Table => Box::new(table::TableWriter::new(out)),
        Format::Jsonl => Box::new(json::JsonLinesWriter::new(out)),
        Format::Json => Box::new(json::JsonWriter::new(out)),
        Format::Csv => Box::new(csv::CsvWriter::new(out)),
    }
}

/// A finding and its status, as the JSON formats write it: the finding's
/// fields, then `status`.
#[derive(Serialize)]
pub struct FindingWithStatus<'a> {
    #[serde(flatten)]
    pub finding: &'a Finding,
    pub status: Status,
}

/// The summary as machine formats write it.
#[derive(Serialize)]
pub struct SummaryView<'a> {
    pub source: &'a str,
    pub report_refresh_date: Option<String>,
    pub report_period: Option<i64>,
    pub rows: u64,
    pub row_errors: u64,
    pub findings: u64,
    pub rule_errors: u64,
    pub concealed_rows: u64,
    pub rules: serde_json::Map<String, serde_json::Value>,
    pub elapsed_ms: u128,
}

impl<'a> SummaryView<'a> {
    pub fn new(summary: &'a ScanSummary) -> SummaryView<'a> {
        let rules = summary
            .per_rule
            .iter()
            .map(|(id, counts)| (id.to_string(), serde_json::json!({ "findings": counts.findings, "errors": counts.errors })))
            .collect();
        SummaryView {
            source: &summary.source,
            report_refresh_date: summary.stats.refresh_date(),
            report_period: summary.stats.period,
            rows: summary.rows_read(),
            row_errors: summary.row_errors,
            findings: summary.findings,
            rule_errors: summary.rule_errors,
            concealed_rows: summary.stats.concealed,
            rules,
            elapsed_ms: summary.elapsed.as_millis(),
        }
    }
}
