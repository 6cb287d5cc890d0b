//! The render contract: how the scan's workers write findings as bytes.
//!
//! For formats whose findings are independent of each other, each worker
//! renders the findings it finds, in parallel, and hands over bytes
//! instead of [`Finding`](super::finding::Finding)s. The engine defines
//! what it calls ([`Render`]) and the per-rule data it keeps for it
//! ([`PreparedRule`]); an output format implements it (see
//! `output::json`), and the scan wires the implementation in. The engine
//! itself knows no format.

use std::fmt;

use super::finding::{FindingFields, Severity};

/// How an output format writes one finding as bytes on a worker.
pub trait Render: fmt::Debug + Send + Sync {
    /// Appends `finding` to `out`. Its [`FindingFields::prepared`] parts,
    /// when it has them, were made by this format's [`Render::prepare`].
    fn render(&self, finding: &dyn FindingFields, out: &mut Vec<u8>);

    /// The bytes every finding a worker renders straight from a row of
    /// `rule` shares, written once per rule instead of once per finding.
    fn prepare(&self, rule: &RuleShape<'_>) -> PreparedRule;
}

/// What every finding of one rule rendered from a row shares.
#[derive(Clone, Copy, Debug)]
pub struct RuleShape<'a> {
    /// The rule's id.
    pub rule: &'a str,
    /// The rule's own severity (a message finding has it).
    pub severity: Severity,
    /// The first two parts of each finding's key (see
    /// [`FindingFields::key_parts`]).
    pub key_start: [&'a str; 2],
    /// The names of the evidence fields, in the order the finding's
    /// `evidence` visits them.
    pub evidence: &'a [&'a str],
}

/// A rule's shared bytes in one format, made by [`Render::prepare`]: what
/// starts each finding, and what introduces each evidence field.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PreparedRule {
    /// Written first, in place of the fields [`RuleShape`] fixes.
    pub head: Vec<u8>,
    /// Written before each evidence value, one per [`RuleShape::evidence`]
    /// name, in order.
    pub evidence_keys: Vec<Vec<u8>>,
}
