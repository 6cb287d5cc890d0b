//! The [`FindingWriter`] that collects findings and writes the page at
//! the end.

use std::io::{self, BufWriter, Write};

use super::lifecycle::Lifecycle;
use super::render::write_page;
use super::tap::Tap;
use super::view::{HtmlContext, ReportView, sections};
use crate::engine::finding::Finding;
use crate::output::FindingWriter;
use crate::scan::ScanSummary;

/// Holds every finding (the page lists them all); the per-row figures
/// come from the [`Tap`] in bounded memory.
pub(crate) struct HtmlWriter {
    out: Box<dyn Write>,
    context: HtmlContext,
    findings: Vec<Finding>,
    tap: Option<Tap>,
    lifecycle: Option<Lifecycle>,
}

impl HtmlWriter {
    /// `tap` feeds the charts; without one they show an empty report.
    pub(crate) fn new(out: Box<dyn Write>, context: HtmlContext, tap: Option<Tap>) -> HtmlWriter {
        HtmlWriter {
            out,
            context,
            findings: Vec::new(),
            tap,
            lifecycle: None,
        }
    }
}

impl FindingWriter for HtmlWriter {
    fn write(&mut self, finding: &Finding) -> io::Result<()> {
        self.findings.push(finding.clone());
        Ok(())
    }

    fn set_lifecycle(&mut self, lifecycle: Lifecycle) {
        self.lifecycle = Some(lifecycle);
    }

    fn finish(&mut self, summary: &ScanSummary) -> io::Result<()> {
        let stats = self.tap.take().map(Tap::finish).unwrap_or_default();
        let lifecycle = self.lifecycle.as_ref();
        let view = ReportView::build(summary, &self.findings, &stats, &self.context, lifecycle);
        let sections = sections(&self.findings, &self.context);
        let mut out = BufWriter::with_capacity(256 * 1024, &mut self.out);
        write_page(&view, &sections, lifecycle, &mut out)?;
        out.flush()
    }
}
