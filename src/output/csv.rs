//! CSV, for spreadsheets.

use std::io::{self, Write};

use super::FindingWriter;
use crate::engine::finding::Finding;
use crate::scan::ScanSummary;

pub struct CsvWriter {
    out: csv::Writer<Box<dyn Write>>,
    header_written: bool,
}

impl CsvWriter {
    pub fn new(out: Box<dyn Write>) -> Self {
        CsvWriter {
            out: csv::Writer::from_writer(out),
            header_written: false,
        }
    }

    fn header(&mut self) -> io::Result<()> {
        if !self.header_written {
            self.header_written = true;
            self.out.write_record([
                "rule",
                "severity",
                "key",
                "group_id",
                "group_name",
                "owner",
                "message",
                "line",
                "evidence",
            ])?;
        }
        Ok(())
    }
}

impl FindingWriter for CsvWriter {
    fn write(&mut self, f: &Finding) -> io::Result<()> {
        self.header()?;
        let evidence = serde_json::to_string(&f.evidence)?;
        let line = f.line.map(|l| l.to_string()).unwrap_or_default();
        self.out.write_record([
            &*f.rule,
            f.severity.as_str(),
            &f.key,
            f.group_id.as_deref().unwrap_or(""),
            f.group_name.as_deref().unwrap_or(""),
            f.owner.as_deref().unwrap_or(""),
            &f.message,
            &line,
            &evidence,
        ])?;
        Ok(())
    }

    fn finish(&mut self, _summary: &ScanSummary) -> io::Result<()> {
        self.header()?;
        self.out.flush()
    }
}
