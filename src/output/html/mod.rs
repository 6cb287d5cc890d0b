//! A self-contained HTML report: one file with its style, script and
//! charts inlined, no network requests, readable offline, as an email
//! attachment, printed, on a phone, and without JavaScript.
//!
//! ```text
//!  report bytes ──▶ tap ──▶ scan ──findings──▶ HtmlWriter ──finish──▶ view ──▶ templates
//!                   │                          │ counts (exact),     ▲        (+ embedded JSON)
//!                   │                          │ most severe (kept)  │
//!                   │                          └──▶ report.findings.csv (every finding, streamed)
//!                   └──▶ stats thread ──HtmlStats (bounded)────────────┘
//!                                          lifecycle (optional, from state)
//! ```
//!
//! Memory and the page's size do not grow with the report: the page
//! holds at most [`collect::KEPT_FINDINGS`] findings (the most severe of
//! each rule), the first [`view::STATIC_ROWS`] of each rule as HTML rows
//! and all of them as compact JSON its script pages, filters and sorts.
//!
//! - [`tap`]: copies the report's bytes to a thread that gathers
//!   [`stats::HtmlStats`] (the scan's sink sees outcomes, not rows);
//! - [`stats`]: per-row figures in bounded memory (a count per day, sums
//!   per group type, a top-N heap);
//! - [`collect`]: exact counts, the most severe findings of each rule;
//! - [`data`]: the kept findings as compact JSON for the script;
//! - [`charts`]: chart geometry (bars, histogram with the inactivity
//!   threshold as an edge), drawn as SVG by the template;
//! - [`lifecycle`]: what the state store adds (status, first seen,
//!   resolved findings, exemptions), all optional;
//! - [`trend`]: the trend chart over the state database's scans (SVG);
//! - [`view`]: everything the template shows, as plain data;
//! - [`render`]: the minijinja template with auto-escaping;
//! - [`writer`]: the [`crate::output::FindingWriter`], and the full list
//!   of findings beside the page.
//!
//! # Hooking in the state store
//!
//! Build a [`lifecycle::Lifecycle`] (status and first-seen date by finding
//! key, resolved findings, exemptions in force) and hand it to the writer
//! with [`crate::output::FindingWriter::set_lifecycle`]: before the first
//! finding when the findings come without statuses (`report`), or before
//! `finish` when they come with them (`write_with_status`, a stateful scan).
//! Without one, the status cards, status and first-seen columns and the
//! exemptions section are left out.

pub(crate) mod charts;
pub(crate) mod collect;
pub(crate) mod data;
pub(crate) mod lifecycle;
pub(crate) mod overview;
pub(crate) mod render;
pub(crate) mod stats;
pub(crate) mod tap;
pub(crate) mod trend;
pub(crate) mod view;
pub(crate) mod writer;

#[cfg(test)]
mod tests;
