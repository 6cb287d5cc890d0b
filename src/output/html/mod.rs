//! A self-contained HTML report: one file with its style, script and
//! charts inlined, no network requests, readable offline, as an email
//! attachment, printed, on a phone, and without JavaScript.
//!
//! ```text
//!  report bytes ──▶ tap ──▶ scan ──findings──▶ HtmlWriter ──finish──▶ view ──▶ template
//!                   │                          (all findings)          ▲
//!                   └──▶ stats thread ──HtmlStats (bounded)────────────┘
//!                                          lifecycle (optional, from state)
//! ```
//!
//! - [`tap`]: copies the report's bytes to a thread that gathers
//!   [`stats::HtmlStats`] (the scan's sink sees outcomes, not rows);
//! - [`stats`]: per-row figures in bounded memory (a count per day, sums
//!   per group type, a top-N heap);
//! - [`charts`]: chart geometry (bars, histogram with the inactivity
//!   threshold as an edge), drawn as SVG by the template;
//! - [`lifecycle`]: what the state store adds (status, first seen,
//!   resolved findings, exemptions), all optional;
//! - [`trend`]: the trend chart over the state database's scans (SVG);
//! - [`view`]: everything the template shows, as plain data;
//! - [`render`]: the minijinja template with auto-escaping;
//! - [`writer`]: the [`crate::output::FindingWriter`].
//!
//! # Hooking in the state store
//!
//! Build a [`lifecycle::Lifecycle`] (status and first-seen date by finding
//! key, resolved findings, exemptions in force) and hand it to the writer
//! with [`crate::output::FindingWriter::set_lifecycle`] before `finish`.
//! Without one, the status cards, status and first-seen columns and the
//! exemptions section are left out.

pub(crate) mod charts;
pub(crate) mod lifecycle;
pub(crate) mod render;
pub(crate) mod stats;
pub(crate) mod tap;
pub(crate) mod trend;
pub(crate) mod view;
pub(crate) mod writer;

#[cfg(test)]
mod tests;
