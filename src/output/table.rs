//! A table for a person at a terminal, most severe first.

use std::io::{self, Write};

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use super::FindingWriter;
use super::safe::terminal;
use crate::engine::finding::Finding;
use crate::scan::ScanSummary;
use crate::state::Status;

/// Writes a table for a terminal; keeps every finding until `finish`,
/// then lays them out most severe first.
pub(crate) struct TableWriter {
    out: Box<dyn Write>,
    findings: Vec<(Finding, Option<Status>)>,
    /// The tenant (`[[tenants]]` scans), named above the table.
    tenant: Option<String>,
}

impl TableWriter {
    /// A table writer on `out`.
    pub(crate) fn new(out: Box<dyn Write>) -> Self {
        TableWriter {
            out,
            findings: Vec::new(),
            tenant: None,
        }
    }
}

impl FindingWriter for TableWriter {
    fn write(&mut self, finding: &Finding) -> io::Result<()> {
        self.findings.push((finding.clone(), None));
        Ok(())
    }

    fn write_with_status(&mut self, finding: &Finding, status: Status) -> io::Result<()> {
        self.findings.push((finding.clone(), Some(status)));
        Ok(())
    }

    fn set_tenant(&mut self, tenant: &str) {
        self.tenant = Some(tenant.to_owned());
    }

    fn finish(&mut self, _summary: &ScanSummary) -> io::Result<()> {
        if let Some(tenant) = &self.tenant {
            writeln!(self.out, "Tenant: {}", terminal(tenant))?;
        }
        if self.findings.is_empty() {
            writeln!(self.out, "No findings.")?;
            return self.out.flush();
        }
        // Stable sort: report order within a severity and rule.
        self.findings.sort_by(|(a, _), (b, _)| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.rule.cmp(&b.rule))
        });
        let with_status = self.findings.iter().any(|(_, status)| status.is_some());
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
        let status_header = with_status.then_some("Status");
        table.set_header(
            status_header
                .into_iter()
                .chain(["Severity", "Rule", "Group", "Owner", "Message"]),
        );
        for (f, status) in &self.findings {
            let status = with_status.then(|| status.map_or("", Status::as_str));
            let cells = status.into_iter().chain([
                f.severity.as_str(),
                &f.rule,
                f.group_name.as_deref().unwrap_or("(tenant)"),
                f.owner.as_deref().unwrap_or("-"),
                &f.message,
            ]);
            table.add_row(cells.map(|cell| terminal(cell).into_owned()));
        }
        writeln!(self.out, "{table}")?;
        self.out.flush()
    }
}
