//! A table for a person at a terminal, most severe first.

use std::io::{self, Write};

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use super::FindingWriter;
use crate::engine::finding::Finding;
use crate::scan::ScanSummary;

pub struct TableWriter {
    out: Box<dyn Write>,
    findings: Vec<Finding>,
}

impl TableWriter {
    pub fn new(out: Box<dyn Write>) -> Self {
        TableWriter {
            out,
            findings: Vec::new(),
        }
    }
}

impl FindingWriter for TableWriter {
    fn write(&mut self, finding: &Finding) -> io::Result<()> {
        self.findings.push(finding.clone());
        Ok(())
    }

    fn finish(&mut self, _summary: &ScanSummary) -> io::Result<()> {
        if self.findings.is_empty() {
            writeln!(self.out, "No findings.")?;
            return self.out.flush();
        }
        // Stable sort: report order within a severity and rule.
        self.findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.rule.cmp(&b.rule))
        });
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
        table.set_header(["Severity", "Rule", "Group", "Owner", "Message"]);
        for f in &self.findings {
            table.add_row([
                f.severity.as_str(),
                &f.rule,
                f.group_name.as_deref().unwrap_or("(tenant)"),
                f.owner.as_deref().unwrap_or("-"),
                &f.message,
            ]);
        }
        writeln!(self.out, "{table}")?;
        self.out.flush()
    }
}
