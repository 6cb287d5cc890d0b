//! The findings the page shows, in bounded memory: exact counts of every
//! finding (per rule, per severity, per status) and, per rule, only the
//! most severe few (earliest in the report first among equals). The full
//! list goes to the findings CSV beside the page, as it streams past.
//!
//! A report of a million groups has hundreds of thousands of findings; a
//! page that listed them all weighed hundreds of megabytes, took minutes
//! to open and held every finding in memory while it was written. The
//! page keeps at most [`KEPT_FINDINGS`] findings whatever the report's
//! size, and says how many there are in all and where the rest are.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use super::lifecycle::{Lifecycle, Status};
use crate::engine::finding::{Finding, Severity};

/// Findings kept for the page in all, shared out between the rules.
pub(crate) const KEPT_FINDINGS: usize = 10_000;
/// Each rule keeps at least this many, however many rules there are.
pub(crate) const KEPT_PER_RULE_MIN: usize = 100;
/// Unknown-status keys remembered for a lifecycle that arrives only at
/// the end (tenant-wide findings of a stateful scan: a handful).
const PENDING_KEYS_MAX: usize = 10_000;

/// Findings kept per rule when `rules` rules are enabled.
pub(crate) fn kept_per_rule(rules: usize) -> usize {
    (KEPT_FINDINGS / rules.max(1)).max(KEPT_PER_RULE_MIN)
}

/// A finding kept for the page, with what the state store said of it.
#[derive(Clone, Debug)]
pub(crate) struct Kept {
    /// Arrival order: earlier in the report first among equal severities.
    pub seq: u64,
    /// The finding.
    pub finding: Finding,
    /// Its status when the scan handed one over (stateful scans).
    pub status: Option<Status>,
}

impl Kept {
    /// `Less` for the one shown first: more severe, then earlier.
    fn rank(&self, other: &Kept) -> Ordering {
        other
            .finding
            .severity
            .cmp(&self.finding.severity)
            .then(self.seq.cmp(&other.seq))
    }
}

// The heap's top is the kept finding shown last: the first to give way.
impl Ord for Kept {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank(other)
    }
}

impl PartialOrd for Kept {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Kept {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
    }
}

impl Eq for Kept {}

/// One rule's findings: the exact count and the few kept.
#[derive(Debug, Default)]
pub(crate) struct RuleFindings {
    /// Findings of the rule in all.
    pub count: u64,
    /// The most severe finding's severity.
    pub worst: Option<Severity>,
    kept: BinaryHeap<Kept>,
}

impl RuleFindings {
    /// How many findings of the rule are kept.
    pub(crate) fn kept_len(&self) -> usize {
        self.kept.len()
    }

    /// The kept findings, in the order shown: most severe first, then in
    /// report order.
    pub(crate) fn kept_in_order(&self) -> Vec<&Kept> {
        let mut kept: Vec<&Kept> = self.kept.iter().collect();
        kept.sort_by(|a, b| a.rank(b));
        kept
    }
}

/// Every finding counted, the most severe few of each rule kept.
#[derive(Debug)]
pub(crate) struct Collected {
    /// By rule id.
    pub rules: BTreeMap<Arc<str>, RuleFindings>,
    /// Findings per severity, indexed by `Severity as usize`.
    pub by_severity: [u64; 5],
    /// Findings per status, where known.
    pub by_status: BTreeMap<Status, u64>,
    /// Findings in all.
    pub total: u64,
    keep: usize,
    /// Keys of findings that came without a status before any lifecycle.
    pending: Vec<String>,
    /// More findings came without a status than `pending` holds.
    pending_overflow: u64,
}

impl Collected {
    /// Keeps up to `keep` findings per rule.
    pub(crate) fn new(keep: usize) -> Collected {
        Collected {
            rules: BTreeMap::new(),
            by_severity: [0; 5],
            by_status: BTreeMap::new(),
            total: 0,
            keep: keep.max(1),
            pending: Vec::new(),
            pending_overflow: 0,
        }
    }

    /// Counts `finding` and keeps it if it is among its rule's most severe.
    /// `status` is the state store's when the scan gave one; otherwise the
    /// lifecycle's (when it is already known) is counted.
    pub(crate) fn add(
        &mut self,
        finding: &Finding,
        status: Option<Status>,
        lifecycle: Option<&Lifecycle>,
    ) {
        self.total += 1;
        self.by_severity[finding.severity as usize] += 1;
        self.count_status(finding, status, lifecycle);
        let seq = self.total;
        let keep = self.keep;
        let rule = self.rules.entry(Arc::clone(&finding.rule)).or_default();
        rule.count += 1;
        rule.worst = rule.worst.max(Some(finding.severity));
        let candidate_fits = rule.kept.len() < keep
            || rule
                .kept
                .peek()
                .is_some_and(|last| finding.severity > last.finding.severity);
        if candidate_fits {
            rule.kept.push(Kept {
                seq,
                finding: finding.clone(),
                status,
            });
            if rule.kept.len() > keep {
                rule.kept.pop();
            }
        }
    }

    fn count_status(
        &mut self,
        finding: &Finding,
        status: Option<Status>,
        lifecycle: Option<&Lifecycle>,
    ) {
        let known = status.or_else(|| lifecycle.map(|l| status_in(l, &finding.key)));
        match known {
            Some(status) => *self.by_status.entry(status).or_default() += 1,
            None if self.pending.len() < PENDING_KEYS_MAX => {
                self.pending.push(finding.key.clone());
            }
            None => self.pending_overflow += 1,
        }
    }

    /// Counts the findings that came before the lifecycle did.
    pub(crate) fn settle_statuses(&mut self, lifecycle: &Lifecycle) {
        for key in std::mem::take(&mut self.pending) {
            *self
                .by_status
                .entry(status_in(lifecycle, &key))
                .or_default() += 1;
        }
        if self.pending_overflow > 0 {
            // Only a caller that hands the lifecycle over late, after
            // thousands of findings without status, gets here; the
            // pipeline never does (see `HtmlWriter`).
            tracing::warn!(
                findings = self.pending_overflow,
                "the HTML page counts {} findings whose status came too late as open",
                self.pending_overflow
            );
            *self.by_status.entry(Status::Open).or_default() += self.pending_overflow;
            self.pending_overflow = 0;
        }
    }
}

/// A finding's status in `lifecycle`; one state does not know is open.
pub(crate) fn status_in(lifecycle: &Lifecycle, key: &str) -> Status {
    lifecycle
        .findings
        .get(key)
        .map_or(Status::Open, |f| f.status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::finding::EvidenceMap;

    fn finding(rule: &str, severity: Severity, line: u64) -> Finding {
        Finding {
            rule: Arc::from(rule),
            severity,
            key: format!("{rule}:{line}"),
            group_id: None,
            group_name: Some(format!("group {line}")),
            owner: None,
            message: String::new(),
            line: Some(line),
            evidence: EvidenceMap::default(),
        }
    }

    #[test]
    fn keeps_the_most_severe_earliest_and_counts_all() {
        let mut collected = Collected::new(3);
        let severities = [
            Severity::Low,
            Severity::High,
            Severity::Low,
            Severity::Critical,
            Severity::Medium,
            Severity::High,
            Severity::Info,
            Severity::High,
        ];
        for (line, &severity) in severities.iter().enumerate() {
            collected.add(&finding("r", severity, line as u64), None, None);
        }
        collected.add(&finding("other", Severity::Info, 99), None, None);
        let rule = &collected.rules["r"];
        assert_eq!(rule.count, 8);
        assert_eq!(rule.worst, Some(Severity::Critical));
        let lines: Vec<u64> = rule
            .kept_in_order()
            .iter()
            .map(|k| k.finding.line.unwrap())
            .collect();
        assert_eq!(lines, [3, 1, 5]);
        assert_eq!(collected.total, 9);
        assert_eq!(collected.by_severity[Severity::High as usize], 3);
        assert_eq!(collected.by_severity[Severity::Info as usize], 2);
    }

    #[test]
    fn memory_is_bounded_by_the_rule_count_not_the_findings() {
        let mut collected = Collected::new(kept_per_rule(4));
        for line in 0..200_000 {
            let rule = ["a", "b", "c", "d"][line as usize % 4];
            collected.add(&finding(rule, Severity::Medium, line), None, None);
        }
        assert_eq!(collected.total, 200_000);
        for rule in collected.rules.values() {
            assert_eq!(rule.count, 50_000);
            assert_eq!(rule.kept.len(), KEPT_FINDINGS / 4);
        }
        assert!(collected.pending.len() <= PENDING_KEYS_MAX);
    }

    #[test]
    fn statuses_come_from_the_scan_or_the_lifecycle_early_or_late() {
        let mut lifecycle = Lifecycle::default();
        lifecycle.findings.insert(
            "r:2".to_owned(),
            super::super::lifecycle::FindingLifecycle {
                status: Status::Exempted,
                first_seen: None,
            },
        );
        let mut collected = Collected::new(10);
        collected.add(&finding("r", Severity::Low, 1), Some(Status::New), None);
        collected.add(&finding("r", Severity::Low, 2), None, None);
        collected.add(&finding("r", Severity::Low, 3), None, Some(&lifecycle));
        collected.settle_statuses(&lifecycle);
        assert_eq!(collected.by_status[&Status::New], 1);
        assert_eq!(collected.by_status[&Status::Exempted], 1);
        assert_eq!(collected.by_status[&Status::Open], 1);
    }
}
