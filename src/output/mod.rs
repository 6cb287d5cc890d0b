//! Renderers for people and machines.
//!
//! Findings arrive one at a time, in report order; the machine formats
//! (`jsonl`, `json`, `csv`) stream them straight to the output, so memory
//! does not grow with the number of findings. `table` is for a person at a
//! terminal and lays out what it has at the end; `html` keeps exact counts
//! and the most severe findings of each rule (bounded), streams every
//! finding to a CSV file beside the page, and taps the report for its
//! charts (see [`html`]).

pub(crate) mod csv;
pub(crate) mod file;
pub(crate) mod html;
pub mod json;
pub(crate) mod safe;
pub(crate) mod table;

use std::io::{self, Read, Write};
use std::path::Path;

use clap::ValueEnum;
use serde::Serialize;

use crate::engine::finding::Finding;
use crate::engine::render::Render;
use crate::engine::rule::RuleSet;
use crate::scan::ScanSummary;
use crate::state::Status;

/// How findings are written (`--format`).
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
    /// One self-contained page with summary, charts and findings tables.
    Html,
}

/// Where findings go.
pub trait FindingWriter {
    /// Writes one finding.
    fn write(&mut self, finding: &Finding) -> io::Result<()>;
    /// A finding with its status from the state database (stateful
    /// scans). Formats with no place for it write the finding alone.
    fn write_with_status(&mut self, finding: &Finding, status: Status) -> io::Result<()> {
        let _ = status;
        self.write(finding)
    }
    /// Called once after the last finding.
    fn finish(&mut self, summary: &ScanSummary) -> io::Result<()>;
    /// What the state store knows (statuses, exemptions), for writers that
    /// show it; call before `finish`. Others ignore it.
    fn set_lifecycle(&mut self, _lifecycle: html::lifecycle::Lifecycle) {}
    /// The tenant (of `[[tenants]]`) every finding of this scan belongs
    /// to; call before the first finding. Formats write it on each finding.
    fn set_tenant(&mut self, _tenant: &str) {}
    /// How this format writes one finding (without status) as bytes, for
    /// formats whose findings are independent of each other: the scan's
    /// workers then render findings where they were found, in parallel,
    /// and hand over the bytes ([`FindingWriter::write_rendered`]).
    fn render(&self) -> Option<&'static dyn Render> {
        None
    }
    /// Findings rendered with [`FindingWriter::render`], in report order.
    fn write_rendered(&mut self, _bytes: &[u8]) -> io::Result<()> {
        Err(io::Error::other(
            "this format does not take rendered findings",
        ))
    }
    /// How this format writes one finding as bytes to which
    /// [`FindingWriter::write_rendered_with_status`] adds a status: a
    /// stateful scan's workers then render each finding's line, and the
    /// thread that learns its status only completes it.
    fn status_render(&self) -> Option<&'static dyn Render> {
        None
    }
    /// A finding rendered with [`FindingWriter::status_render`], with its
    /// status: what [`FindingWriter::write_with_status`] writes.
    fn write_rendered_with_status(&mut self, _bytes: &[u8], _status: Status) -> io::Result<()> {
        Err(io::Error::other(
            "this format does not take rendered findings",
        ))
    }
}

/// The writer for `format` on `out`, for findings not read from a
/// report (listings). An `html` page gets no charts of the rows; a scan
/// uses [`scan_writer`].
pub fn writer(format: Format, out: Box<dyn Write>) -> Box<dyn FindingWriter> {
    match format {
        Format::Table => Box::new(table::TableWriter::new(out)),
        Format::Jsonl => Box::new(json::JsonLinesWriter::new(out)),
        Format::Json => Box::new(json::JsonWriter::new(out)),
        Format::Csv => Box::new(csv::CsvWriter::new(out)),
        // Without the rules and the report stream: no charts of the rows.
        Format::Html => Box::new(html::writer::HtmlWriter::new(
            out,
            html::view::HtmlContext::new(&RuleSet::default(), jiff::Timestamp::now()),
            None,
            None,
        )),
    }
}

/// The input to scan and the writer, as [`scan_writer`] returns them.
pub type ScanWriter = (Box<dyn Read + Send>, Box<dyn FindingWriter>);

/// The writer for a scan of `input` with `rules`, and the input to scan
/// in its place: `html` taps it for the charts, the others take it as is.
/// An `html` page written to the file `path` gets the full list of
/// findings as CSV beside it (`report.findings.csv` beside `report.html`).
/// `max_record_bytes` is the scan's record cap (`[scan] max_record_bytes`),
/// which the page's own reading of the input keeps too, so its figures
/// count the rows the scan read.
pub fn scan_writer(
    format: Format,
    out: Box<dyn Write>,
    path: Option<&Path>,
    input: Box<dyn Read + Send>,
    rules: &RuleSet,
    raw_csv: bool,
    max_record_bytes: usize,
) -> Result<ScanWriter, file::OutputFileError> {
    if format == Format::Csv && raw_csv {
        return Ok((input, Box::new(csv::CsvWriter::raw(out))));
    }
    if format != Format::Html {
        return Ok((input, writer(format, out)));
    }
    let full_list = match path {
        Some(path) => html::writer::FullList::beside(path, raw_csv)?,
        None => None,
    };
    let (input, tap) = html::tap::Tap::wrap(input, max_record_bytes);
    let context = html::view::HtmlContext::new(rules, jiff::Timestamp::now());
    let writer = html::writer::HtmlWriter::new(out, context, Some(tap), full_list);
    Ok((input, Box::new(writer)))
}

/// A finding and its status, as the JSON formats write it: the finding's
/// fields, then `status`.
#[derive(Serialize)]
pub struct FindingWithStatus<'a> {
    /// The finding.
    #[serde(flatten)]
    pub finding: &'a Finding,
    /// Its status after this scan.
    pub status: Status,
}

/// The summary as machine formats write it.
#[derive(Serialize)]
pub struct SummaryView<'a> {
    /// The report's name: its path, `<stdin>`, or `Microsoft Graph report (…)`.
    pub source: &'a str,
    /// The report's refresh date (`YYYY-MM-DD`); `None` when no row gave one.
    pub report_refresh_date: Option<String>,
    /// The report period in days; `None` when no row gave one.
    pub report_period: Option<i64>,
    /// Rows read, bad ones included.
    pub rows: u64,
    /// Rows that could not be read or parsed.
    pub row_errors: u64,
    /// Findings in the report.
    pub findings: u64,
    /// Times a rule failed on a row.
    pub rule_errors: u64,
    /// Rows whose group names or ids are concealed in the report.
    pub concealed_rows: u64,
    /// Per enabled rule, by id: `{"findings": n, "errors": n}`.
    pub rules: serde_json::Map<String, serde_json::Value>,
    /// How long the scan took, in milliseconds.
    pub elapsed_ms: u128,
}

impl<'a> SummaryView<'a> {
    /// The summary of `summary`.
    pub fn new(summary: &'a ScanSummary) -> SummaryView<'a> {
        let rules = summary
            .per_rule
            .iter()
            .map(|(id, counts)| {
                (
                    id.to_string(),
                    serde_json::json!({ "findings": counts.findings, "errors": counts.errors }),
                )
            })
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
