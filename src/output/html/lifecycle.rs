//! What the state store knows about findings, as the HTML report shows it.
//!
//! The report works without it (a plain `scan` has no memory); when the
//! state store has run, the command hands a [`Lifecycle`] to the writer
//! with [`crate::output::FindingWriter::set_lifecycle`] before `finish`.
//! These are view types on purpose: plain data keyed by the finding's
//! stable key, so the report does not depend on how state stores them.

use std::collections::HashMap;

use jiff::civil::Date;

/// Where a finding is in its life: the state store's own status.
pub(crate) use crate::state::Status;

/// One finding's history.
#[derive(Clone, Debug, PartialEq)]
pub struct FindingLifecycle {
    /// New, open, reopened, resolved or exempted.
    pub status: Status,
    /// The refresh date of the report the finding was first seen in.
    pub first_seen: Option<Date>,
}

/// A finding that this scan resolved: it is not among the scan's findings.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedFinding {
    /// Rule id.
    pub rule: String,
    /// The finding's stable key (`Finding::key`).
    pub key: String,
    /// The group's name when last seen; `None` when not known.
    pub group_name: Option<String>,
    /// The refresh date of the report the finding was first seen in.
    pub first_seen: Option<Date>,
}

/// An exemption in force.
#[derive(Clone, Debug, PartialEq)]
pub struct Exemption {
    /// The rule it covers; `None` for every rule.
    pub rule: Option<String>,
    /// The group, as the exemption names it (name, id or key).
    pub group: String,
    /// Why it was granted, when recorded.
    pub reason: Option<String>,
    /// Who granted it.
    pub granted_by: Option<String>,
    /// `None` for an exemption without end.
    pub expires: Option<Date>,
}

/// Everything the state store adds to a report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Lifecycle {
    /// By finding key (`Finding::key`).
    pub findings: HashMap<String, FindingLifecycle>,
    /// Findings open before that this scan no longer found.
    pub resolved: Vec<ResolvedFinding>,
    /// Exemptions in force.
    pub exemptions: Vec<Exemption>,
    /// The recorded scans' counts, oldest first, for the trend chart.
    pub trend: Vec<super::trend::TrendPoint>,
}
