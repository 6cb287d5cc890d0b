//! What one scan has to say: the [`Digest`].
//!
//! The state store builds one digest per scan from the finding lifecycle
//! (what is new, reopened, due for a reminder, resolved) and hands it to
//! [`super::plan`], which cuts it per channel and recipient. A digest is
//! plain data that serialises to JSON, so the outbox can keep a planned
//! message until it is delivered.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::engine::finding::{EvidenceMap, Finding, Severity};
use crate::engine::rule::RuleText;

/// Everything a scan announces, for every channel at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Digest {
    /// Which scan this is, and of which report.
    pub scan: ScanInfo,
    /// How many findings changed in this scan; these cover every finding even
    /// when a cap shortened `items`.
    pub counts: Counts,
    /// Most severe first once routed (see [`Digest::sort`]).
    #[serde(default)]
    pub items: Vec<DigestItem>,
    /// Exemptions that run out soon, for someone to renew or drop.
    #[serde(default)]
    pub expiring_exemptions: Vec<ExpiringExemption>,
    /// Set when a cap shortened the list; the counts still cover everything.
    #[serde(default)]
    pub capped: Option<Capped>,
    /// A `groupwarden notify --test` message rather than a scan's news.
    #[serde(default)]
    pub test: bool,
    /// The title and help text of each rule the digest's items and
    /// exemptions name, by rule id, for messages people can act on.
    /// Digests queued before rules had help texts have none: messages
    /// then fall back to the rule id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rules: BTreeMap<String, RuleText>,
}

/// Which scan the digest is about.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanInfo {
    /// The tenant's display name, when the source knows it.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Where the report came from (a file name or `graph`).
    pub source: String,
    /// The day Microsoft last refreshed the report's data, when the report
    /// says.
    #[serde(default)]
    pub report_refresh_date: Option<Date>,
    /// The report period in days (7, 30, 90 or 180).
    #[serde(default)]
    pub report_period: Option<i64>,
    /// When groupwarden ran the scan.
    pub scanned_at: Timestamp,
    /// Report rows read.
    pub rows: u64,
}

impl ScanInfo {
    /// The tenant's name, else the source: what a subject line names.
    pub fn title(&self) -> &str {
        self.tenant.as_deref().unwrap_or(&self.source)
    }
}

/// How many findings changed, whatever the list shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    /// Findings seen for the first time.
    pub new: u64,
    /// Findings that had been resolved and are back.
    pub reopened: u64,
    /// Open findings whose reminder interval has passed.
    pub reminders: u64,
    /// Findings gone since the last scan.
    pub resolved: u64,
    /// Findings silenced by an exemption this scan.
    pub exempted: u64,
    /// Exemptions that run out soon.
    pub expiring_exemptions: u64,
}

impl Counts {
    /// Whether every count is 0.
    pub fn is_empty(&self) -> bool {
        *self == Counts::default()
    }

    /// Counts of the statuses in `items`; `exempted` and
    /// `expiring_exemptions` are not properties of items and are left 0.
    pub fn of_items(items: &[DigestItem]) -> Counts {
        let mut counts = Counts::default();
        for item in items {
            match item.status {
                ItemStatus::New => counts.new += 1,
                ItemStatus::Reopened => counts.reopened += 1,
                ItemStatus::Reminder => counts.reminders += 1,
                ItemStatus::Resolved => counts.resolved += 1,
            }
        }
        counts
    }
}

/// Why a finding is in the digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
    /// Seen for the first time.
    New,
    /// Resolved before, back again.
    Reopened,
    /// Still open, and its reminder interval has passed.
    Reminder,
    /// Gone since the last scan.
    Resolved,
}

impl ItemStatus {
    /// The status as JSON and templates spell it: `new`, `reopened`,
    /// `reminder` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::New => "new",
            ItemStatus::Reopened => "reopened",
            ItemStatus::Reminder => "reminder",
            ItemStatus::Resolved => "resolved",
        }
    }
}

/// One finding and why it is announced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestItem {
    /// Why the finding is announced.
    pub status: ItemStatus,
    /// The finding's stable key (`rule:group-id`): what receivers
    /// deduplicate on.
    pub key: String,
    /// The id of the rule that raised the finding.
    pub rule: String,
    /// How serious the rule rates the finding.
    pub severity: Severity,
    /// The group's id; `None` for tenant-wide findings and where the report
    /// conceals or lacks it.
    #[serde(default)]
    pub group_id: Option<String>,
    /// The group's display name; `None` for tenant-wide findings and where
    /// the report conceals or lacks it.
    #[serde(default)]
    pub group_name: Option<String>,
    /// The owner's user principal name, as the report gives it.
    #[serde(default)]
    pub owner: Option<String>,
    /// Every owner address the directory (`[directory]`) has for the
    /// group; `None` when the group is not in the directory or the join
    /// is off (then `owner` is all that is known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owners: Option<Vec<String>>,
    /// The finding in words, as the rule wrote it.
    pub message: String,
    /// The named values behind the finding, in the order the rule gave them.
    #[serde(default, deserialize_with = "evidence::deserialize")]
    pub evidence: EvidenceMap,
    /// The report refresh date of the scan that first saw the finding.
    #[serde(default)]
    pub first_seen: Option<Date>,
}

impl DigestItem {
    /// The item announcing `finding` with `status`; `first_seen` is the
    /// report refresh date of the scan that first saw it, when known.
    pub fn from_finding(
        status: ItemStatus,
        finding: &Finding,
        first_seen: Option<Date>,
    ) -> DigestItem {
        DigestItem {
            status,
            key: finding.key.clone(),
            rule: finding.rule.to_string(),
            severity: finding.severity,
            group_id: finding.group_id.clone(),
            group_name: finding.group_name.clone(),
            owner: finding.owner.clone(),
            owners: None,
            message: finding.message.clone(),
            evidence: finding.evidence.clone(),
            first_seen,
        }
    }

    /// The addresses owner routing mails: the directory's owners when
    /// the group is in it, else the report's owner field.
    pub fn owner_addresses(&self) -> Vec<String> {
        match &self.owners {
            Some(owners) => {
                let mut addresses: Vec<String> = owners
                    .iter()
                    .flat_map(|owner| super::route::owner_addresses(Some(owner)))
                    .collect();
                addresses.sort();
                addresses.dedup();
                addresses
            }
            None => super::route::owner_addresses(self.owner.as_deref()),
        }
    }

    /// The group's name, else its id, else `tenant` for tenant-wide findings.
    pub fn group_label(&self) -> &str {
        self.group_name
            .as_deref()
            .or(self.group_id.as_deref())
            .unwrap_or("tenant")
    }
}

/// An exemption that runs out soon: someone should renew or drop it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpiringExemption {
    /// The id of the exempted rule, or `*` for every rule.
    pub rule: String,
    /// The exempted group (name or id), or `*` for every group.
    pub group: String,
    /// Why the exemption was granted, as its author wrote it.
    pub reason: String,
    /// The last day the exemption applies.
    pub expires: Date,
    /// The exemption is past its date and no longer applies (a notice
    /// that it ended, rather than that it ends soon).
    #[serde(default)]
    pub expired: bool,
}

/// A cap shortened the list of items.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capped {
    /// Items before the cap.
    pub total: u64,
    /// Items listed (0 when a summary replaced the whole list).
    pub shown: u64,
    /// Which cap, in words, for the reader.
    pub reason: String,
}

impl Digest {
    /// Gives each item on a group in `directory` that group's owner
    /// addresses, so owner routing mails every owner.
    pub fn add_directory_owners(&mut self, directory: &crate::report::directory::Directory) {
        for item in &mut self.items {
            let facts = item.group_id.as_deref().and_then(|id| directory.get(id));
            if let Some(facts) = facts {
                item.owners = Some(facts.owners.clone());
            }
        }
    }

    /// Nothing to say: no message is sent. Counts alone do not make a
    /// message (exempted findings are no news), but a cap note does: the
    /// safety cap may have replaced the whole list by a summary.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
            && self.expiring_exemptions.is_empty()
            && self.capped.is_none()
            && !self.test
    }

    /// Keeps from `texts` (every rule's title and help, by id) those of
    /// the rules this digest names.
    pub fn describe_rules(&mut self, texts: &BTreeMap<String, RuleText>) {
        let named = |rule: &str| {
            self.items.iter().any(|item| item.rule == rule)
                || self.expiring_exemptions.iter().any(|e| e.rule == rule)
        };
        self.rules = texts
            .iter()
            .filter(|(rule, _)| named(rule))
            .map(|(rule, text)| (rule.clone(), text.clone()))
            .collect();
    }

    /// The title of `rule`, else its id.
    pub fn rule_title<'a>(&'a self, rule: &'a str) -> &'a str {
        self.rules
            .get(rule)
            .map(|text| text.title.as_str())
            .filter(|title| !title.is_empty())
            .unwrap_or(rule)
    }

    /// Most severe first, then by rule, status and group, so every
    /// rendering lists items in the same order.
    pub fn sort(&mut self) {
        self.items.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.rule.cmp(&b.rule))
                .then_with(|| a.status.cmp(&b.status))
                .then_with(|| a.group_label().cmp(b.group_label()))
                .then_with(|| a.key.cmp(&b.key))
        });
        self.expiring_exemptions
            .sort_by(|a, b| a.expires.cmp(&b.expires).then_with(|| a.rule.cmp(&b.rule)));
    }
}

/// Reads evidence back in the order it was written. `EvidenceMap` only
/// serialises (the engine never reads findings back), so the digest brings
/// its own reader instead of changing the engine's type.
mod evidence {
    use std::fmt;

    use serde::Deserializer;
    use serde::de::{MapAccess, Visitor};

    use crate::engine::finding::{Evidence, EvidenceMap};

    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Value {
        Null(()),
        Bool(bool),
        Int(i64),
        Float(f64),
        Text(String),
    }

    impl From<Value> for Evidence {
        fn from(value: Value) -> Evidence {
            match value {
                Value::Null(()) => Evidence::Null,
                Value::Bool(b) => Evidence::Bool(b),
                Value::Int(i) => Evidence::Int(i),
                Value::Float(x) => Evidence::Float(x),
                Value::Text(t) => Evidence::Text(t),
            }
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<EvidenceMap, D::Error> {
        deserializer.deserialize_map(OrderedMap)
    }

    struct OrderedMap;

    impl<'de> Visitor<'de> for OrderedMap {
        type Value = EvidenceMap;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of evidence values (null, boolean, number or string)")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<EvidenceMap, A::Error> {
            let mut evidence = EvidenceMap::default();
            while let Some((name, value)) = access.next_entry::<String, Value>()? {
                evidence.set(name.into(), value.into());
            }
            Ok(evidence)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::finding::Evidence;

    #[test]
    fn owner_routing_takes_every_directory_owner_else_the_reports_owner() {
        let mut known = item(ItemStatus::New, Severity::Low, "r", "g1");
        known.owner = Some("ann@contoso.com".into());
        let mut unknown = item(ItemStatus::New, Severity::Low, "r", "g2");
        unknown.owner = Some("bo@contoso.com".into());
        let mut nobody = item(ItemStatus::New, Severity::Low, "r", "g3");
        nobody.owner = Some("left@contoso.com".into());
        let directory = crate::report::directory::Directory::new(
            [
                (
                    "G1".to_owned(),
                    crate::report::directory::GroupFacts {
                        owners: vec!["Ann@Contoso.com".into(), "co@contoso.com".into()],
                        owner_count: 2,
                        ..Default::default()
                    },
                ),
                ("g3".to_owned(), Default::default()),
            ],
            "2026-11-25T06:00:00Z".into(),
        );
        let mut digest = crate::notify::sample::sample_digest(false);
        digest.items = vec![known, unknown, nobody];
        digest.add_directory_owners(&directory);
        let addresses: Vec<Vec<String>> = digest
            .items
            .iter()
            .map(DigestItem::owner_addresses)
            .collect();
        assert_eq!(
            addresses,
            [
                vec!["ann@contoso.com".to_owned(), "co@contoso.com".to_owned()],
                vec!["bo@contoso.com".to_owned()],
                vec![],
            ]
        );
        // Kept in the outbox's JSON, and absent when unknown.
        let json = serde_json::to_string(&digest.items[0]).unwrap();
        assert!(
            json.contains(r#""owners":["Ann@Contoso.com","co@contoso.com"]"#),
            "{json}"
        );
        assert!(
            !serde_json::to_string(&digest.items[1])
                .unwrap()
                .contains("owners")
        );
    }

    fn item(status: ItemStatus, severity: Severity, rule: &str, group: &str) -> DigestItem {
        let mut evidence = EvidenceMap::default();
        evidence.set("zeta".into(), Evidence::Int(3));
        evidence.set("alpha".into(), Evidence::Null);
        evidence.set("flag".into(), Evidence::Bool(true));
        DigestItem {
            status,
            key: format!("{rule}:{group}"),
            rule: rule.into(),
            severity,
            group_id: Some(group.into()),
            group_name: Some(group.into()),
            owner: None,
            owners: None,
            message: "m".into(),
            evidence,
            first_seen: Some(Date::constant(2026, 11, 1)),
        }
    }

    #[test]
    fn round_trips_through_json_keeping_evidence_order() {
        let digest = Digest {
            scan: ScanInfo {
                tenant: Some("Contoso".into()),
                source: "report.csv".into(),
                report_refresh_date: Some(Date::constant(2026, 11, 25)),
                report_period: Some(30),
                scanned_at: "2026-11-26T06:00:00Z".parse().unwrap(),
                rows: 10,
            },
            counts: Counts {
                new: 1,
                ..Counts::default()
            },
            items: vec![item(ItemStatus::New, Severity::High, "r", "g")],
            expiring_exemptions: vec![],
            capped: None,
            test: false,
            rules: BTreeMap::from([(
                "r".to_owned(),
                RuleText {
                    title: "Rule R".into(),
                    help: "Do this.".into(),
                },
            )]),
        };
        let json = serde_json::to_string(&digest).unwrap();
        assert!(
            json.contains(r#""evidence":{"zeta":3,"alpha":null,"flag":true}"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), digest);
    }

    #[test]
    fn sorts_most_severe_first_then_by_rule() {
        let mut digest: Digest = serde_json::from_value(serde_json::json!({
            "scan": {"source": "s", "scanned_at": "2026-11-26T06:00:00Z", "rows": 0},
            "counts": {"new": 0, "reopened": 0, "reminders": 0, "resolved": 0, "exempted": 0, "expiring_exemptions": 0},
        }))
        .unwrap();
        digest.items = vec![
            item(ItemStatus::New, Severity::Low, "b", "g1"),
            item(ItemStatus::New, Severity::Critical, "z", "g2"),
            item(ItemStatus::Reminder, Severity::Low, "a", "g3"),
        ];
        digest.sort();
        let order: Vec<_> = digest.items.iter().map(|i| i.rule.as_str()).collect();
        assert_eq!(order, ["z", "a", "b"]);
    }
}
