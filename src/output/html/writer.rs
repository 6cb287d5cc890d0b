//! The [`FindingWriter`] that counts every finding, keeps the most severe
//! few of each rule, streams all of them to the full list beside the page,
//! and writes the page at the end.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::collect::{Collected, kept_per_rule};
use super::lifecycle::{Lifecycle, Status};
use super::render::write_page;
use super::tap::Tap;
use super::view::{HtmlContext, ReportView, sections};
use crate::engine::finding::Finding;
use crate::output::FindingWriter;
use crate::output::csv::CsvWriter;
use crate::output::file::{OutputFile, OutputFileError, open_output};
use crate::scan::ScanSummary;

/// Every finding as CSV, in a file beside the page (`report.findings.csv`
/// beside `report.html`), written as findings arrive.
pub(crate) struct FullList {
    csv: CsvWriter,
    file: Option<OutputFile>,
    /// The file's name, as the page links to it.
    name: String,
}

impl FullList {
    /// The full list's path beside the page at `page`.
    pub(crate) fn path_beside(page: &Path) -> PathBuf {
        let stem = page
            .file_stem()
            .map_or_else(|| "report".into(), |s| s.to_string_lossy());
        page.with_file_name(format!("{stem}.findings.csv"))
    }

    /// Opens the full list beside the page at `page`; `None` when the page
    /// is not a regular file (`/dev/stdout`, a pipe): nothing to put it
    /// beside. `raw` as `--raw-csv`.
    pub(crate) fn beside(page: &Path, raw: bool) -> Result<Option<FullList>, OutputFileError> {
        if std::fs::metadata(page).is_ok_and(|m| !m.is_file()) {
            return Ok(None);
        }
        let path = FullList::path_beside(page);
        let output = open_output(Some(&path), Some(crate::output::Format::Csv))?;
        let csv = if raw {
            CsvWriter::raw(output.out)
        } else {
            CsvWriter::new(output.out)
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Some(FullList {
            csv,
            file: output.file,
            name,
        }))
    }

    /// Writes the end of the file and puts it in place.
    fn finish(mut self, summary: &ScanSummary) -> io::Result<()> {
        self.csv.finish(summary)?;
        drop(self.csv);
        if let Some(file) = self.file {
            file.commit()
                .map_err(|e| io::Error::new(e.error.kind(), e.to_string()))?;
        }
        Ok(())
    }
}

/// Holds exact counts and a bounded number of findings (see
/// [`super::collect`]); the per-row figures come from the [`Tap`] in
/// bounded memory, the full list goes to a file as it arrives.
pub(crate) struct HtmlWriter {
    out: Box<dyn Write>,
    context: HtmlContext,
    collected: Collected,
    tap: Option<Tap>,
    lifecycle: Option<Lifecycle>,
    full_list: Option<FullList>,
}

impl HtmlWriter {
    /// `tap` feeds the charts; without one they show an empty report.
    /// `full_list` receives every finding; without one the page says how
    /// to get them.
    pub(crate) fn new(
        out: Box<dyn Write>,
        context: HtmlContext,
        tap: Option<Tap>,
        full_list: Option<FullList>,
    ) -> HtmlWriter {
        let keep = kept_per_rule(context.rules.len());
        HtmlWriter {
            out,
            context,
            collected: Collected::new(keep),
            tap,
            lifecycle: None,
            full_list,
        }
    }
}

impl FindingWriter for HtmlWriter {
    fn write(&mut self, finding: &Finding) -> io::Result<()> {
        self.collected.add(finding, None, self.lifecycle.as_ref());
        if let Some(list) = &mut self.full_list {
            list.csv.write(finding)?;
        }
        Ok(())
    }

    fn write_with_status(&mut self, finding: &Finding, status: Status) -> io::Result<()> {
        // A resolved finding is no longer found: the page lists it under
        // "Resolved by this scan" (from the lifecycle), not as a finding.
        if status != Status::Resolved {
            self.collected
                .add(finding, Some(status), self.lifecycle.as_ref());
        }
        if let Some(list) = &mut self.full_list {
            list.csv.write_with_status(finding, status)?;
        }
        Ok(())
    }

    /// Before the findings (as `report` does) the statuses are counted as
    /// they arrive; after them (a stateful scan, whose findings carry
    /// their statuses) the few without one are looked up at the end.
    fn set_lifecycle(&mut self, lifecycle: Lifecycle) {
        self.lifecycle = Some(lifecycle);
    }

    fn set_tenant(&mut self, tenant: &str) {
        self.context.tenant = Some(tenant.to_owned());
        // The full list names the tenant as `scan --format csv` does, so
        // the tenants' lists can be joined.
        if let Some(list) = &mut self.full_list {
            list.csv.set_tenant(tenant);
        }
    }

    fn finish(&mut self, summary: &ScanSummary) -> io::Result<()> {
        let stats = self.tap.take().map(Tap::finish).unwrap_or_default();
        let lifecycle = self.lifecycle.as_ref();
        if let Some(lifecycle) = lifecycle {
            self.collected.settle_statuses(lifecycle);
        }
        let list_name = self.full_list.as_ref().map(|l| l.name.clone());
        if let Some(list) = self.full_list.take() {
            list.finish(summary)?;
        }
        let view = ReportView::build(
            summary,
            &self.collected,
            &stats,
            &self.context,
            lifecycle,
            list_name.as_deref(),
        );
        let sections = sections(&self.collected, &self.context);
        let mut out = BufWriter::with_capacity(256 * 1024, &mut self.out);
        write_page(&view, &sections, lifecycle, &mut out)?;
        out.flush()
    }
}
