//! JSON lines and a single JSON document.

use std::io::{self, BufWriter, Write};

use serde::Serialize;

use super::{FindingWithStatus, FindingWriter, SummaryView};
use crate::engine::finding::Finding;
use crate::scan::ScanSummary;
use crate::state::Status;

pub struct JsonLinesWriter {
    out: BufWriter<Box<dyn Write>>,
}

impl JsonLinesWriter {
    pub fn new(out: Box<dyn Write>) -> Self {
        JsonLinesWriter {
            out: BufWriter::with_capacity(256 * 1024, out),
        }
    }
}

impl JsonLinesWriter {
    fn line(&mut self, value: &impl Serialize) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, value)?;
        self.out.write_all(b"\n")
    }
}

impl FindingWriter for JsonLinesWriter {
    fn write(&mut self, finding: &Finding) -> io::Result<()> {
        self.line(finding)
    }

    fn write_with_status(&mut self, finding: &Finding, status: Status) -> io::Result<()> {
        self.line(&FindingWithStatus { finding, status })
    }

    fn finish(&mut self, _summary: &ScanSummary) -> io::Result<()> {
        self.out.flush()
    }
}

/// `{"findings": [...], "summary": {...}}`, streamed: the summary comes
/// last because it is only known at the end.
pub struct JsonWriter {
    out: BufWriter<Box<dyn Write>>,
    count: u64,
}

impl JsonWriter {
    pub fn new(out: Box<dyn Write>) -> Self {
        JsonWriter {
            out: BufWriter::new(out),
            count: 0,
        }
    }
}

impl JsonWriter {
    fn element(&mut self, value: &impl Serialize) -> io::Result<()> {
        self.out.write_all(if self.count == 0 {
            b"{\"findings\":[\n"
        } else {
            b",\n"
        })?;
        self.count += 1;
        serde_json::to_writer(&mut self.out, value)?;
        Ok(())
    }
}

impl FindingWriter for JsonWriter {
    fn write(&mut self, finding: &Finding) -> io::Result<()> {
        self.element(finding)
    }

    fn write_with_status(&mut self, finding: &Finding, status: Status) -> io::Result<()> {
        self.element(&FindingWithStatus { finding, status })
    }

    fn finish(&mut self, summary: &ScanSummary) -> io::Result<()> {
        self.out.write_all(if self.count == 0 {
            b"{\"findings\":["
        } else {
            b"\n"
        })?;
        self.out.write_all(b"],\n\"summary\":")?;
        serde_json::to_writer(&mut self.out, &SummaryView::new(summary))?;
        self.out.write_all(b"}\n")?;
        self.out.flush()
    }
}
