//! CSV, for spreadsheets.

use std::io::{self, Write};

use super::FindingWriter;
use super::safe::csv_cell;
use crate::engine::finding::Finding;
use crate::scan::ScanSummary;
use crate::state::Status;

/// Writes CSV: a header, then one row per finding, evidence as JSON text.
pub(crate) struct CsvWriter {
    out: csv::Writer<Box<dyn Write>>,
    header_written: bool,
    /// A `status` column follows the others (stateful scans).
    with_status: bool,
    /// Cells that start like a formula are written as they are (for
    /// programs, not spreadsheets).
    raw: bool,
    /// A first `tenant` column with this value (`[[tenants]]` scans).
    tenant: Option<String>,
}

impl CsvWriter {
    /// A CSV writer on `out`.
    pub(crate) fn new(out: Box<dyn Write>) -> Self {
        CsvWriter {
            out: csv::Writer::from_writer(out),
            header_written: false,
            with_status: false,
            raw: false,
            tenant: None,
        }
    }

    /// A CSV writer that writes cells starting like a formula as they are
    /// (`--raw-csv`): for programs reading the file, never a spreadsheet.
    pub(crate) fn raw(out: Box<dyn Write>) -> Self {
        CsvWriter {
            raw: true,
            ..CsvWriter::new(out)
        }
    }

    fn header(&mut self) -> io::Result<()> {
        if !self.header_written {
            self.header_written = true;
            let status = self.with_status.then_some("status");
            let columns = [
                "rule",
                "severity",
                "key",
                "group_id",
                "group_name",
                "owner",
                "message",
                "line",
                "evidence",
            ];
            let tenant = self.tenant.as_ref().map(|_| "tenant");
            self.out
                .write_record(tenant.into_iter().chain(columns).chain(status))?;
        }
        Ok(())
    }

    fn record(&mut self, f: &Finding, status: Option<Status>) -> io::Result<()> {
        self.header()?;
        let evidence = serde_json::to_string(&f.evidence)?;
        let line = f.line.map(|l| l.to_string()).unwrap_or_default();
        let status = self.with_status.then(|| status.map_or("", Status::as_str));
        let fields = [
            &*f.rule,
            f.severity.as_str(),
            &f.key,
            f.group_id.as_deref().unwrap_or(""),
            f.group_name.as_deref().unwrap_or(""),
            f.owner.as_deref().unwrap_or(""),
            &f.message,
            &line,
            &evidence,
        ];
        let raw = self.raw;
        let cells = self
            .tenant
            .as_deref()
            .into_iter()
            .chain(fields)
            .chain(status)
            .map(|cell| if raw { cell.into() } else { csv_cell(cell) });
        self.out.write_record(cells.map(|c| c.into_owned()))?;
        Ok(())
    }
}

impl FindingWriter for CsvWriter {
    fn write(&mut self, f: &Finding) -> io::Result<()> {
        self.record(f, None)
    }

    fn write_with_status(&mut self, f: &Finding, status: Status) -> io::Result<()> {
        if !self.header_written {
            self.with_status = true;
        }
        self.record(f, Some(status))
    }

    fn finish(&mut self, _summary: &ScanSummary) -> io::Result<()> {
        self.header()?;
        self.out.flush()
    }

    fn set_tenant(&mut self, tenant: &str) {
        self.tenant = Some(tenant.to_owned());
    }
}
