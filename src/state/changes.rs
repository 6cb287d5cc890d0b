//! What a scan changed, as plain serialisable data for the notifiers, and
//! a finding as the database remembers it.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::exemptions::ExemptionNotice;
use crate::engine::finding::{Evidence, EvidenceMap, Finding, Severity};

/// Where a finding stands after a scan.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Seen for the first time (or for the first time since an exemption
    /// that hid it before it was ever announced).
    New,
    /// Seen before and still there.
    Open,
    /// Resolved once, and back.
    Reopened,
    /// Its rule ran cleanly on the group and did not fire, or the group is
    /// gone from a complete report.
    Resolved,
    /// Covered by an exemption: recorded, shown, never announced.
    Exempted,
}

impl Status {
    /// Every status, in the order listings and counts show them.
    pub const ALL: [Status; 5] = [
        Status::New,
        Status::Open,
        Status::Reopened,
        Status::Resolved,
        Status::Exempted,
    ];

    /// The status as written in the database, JSON and `--status` (`new`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Open => "open",
            Status::Reopened => "reopened",
            Status::Resolved => "resolved",
            Status::Exempted => "exempted",
        }
    }

    /// Still a problem (or an accepted one): not resolved.
    pub fn is_active(self) -> bool {
        self != Status::Resolved
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;

    fn from_str(text: &str) -> Result<Status, String> {
        Status::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| format!("unknown finding status `{text}`"))
    }
}

/// Why a finding resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resolution {
    /// The rule ran without error on the group's row and did not fire.
    RuleCleared,
    /// The group is no longer in a complete report.
    GroupGone,
}

impl Resolution {
    /// The resolution as written in the database and JSON (`rule-cleared`).
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::RuleCleared => "rule-cleared",
            Resolution::GroupGone => "group-gone",
        }
    }
}

impl FromStr for Resolution {
    type Err = String;

    fn from_str(text: &str) -> Result<Resolution, String> {
        match text {
            "rule-cleared" => Ok(Resolution::RuleCleared),
            "group-gone" => Ok(Resolution::GroupGone),
            _ => Err(format!("unknown resolution `{text}`")),
        }
    }
}

/// A finding as the database remembers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredFinding {
    /// Stable identity across scans: the rule and the group (see `group_key`).
    pub key: String,
    /// Where the finding stands after the last scan that touched it.
    pub status: Status,
    /// Id of the rule that found it.
    pub rule: String,
    /// Severity as of the last scan that saw it.
    pub severity: Severity,
    /// The group part of the key: its id, or `name:<name>`.
    pub group_key: String,
    /// The group's id, when the report gave one (not concealed).
    pub group_id: Option<String>,
    /// The group's name when last seen, when the report gave one.
    pub group_name: Option<String>,
    /// The group's owner when last seen, when the report gave one.
    pub owner: Option<String>,
    /// The message of the last scan that saw it.
    pub message: String,
    /// Evidence of the last scan that saw it, in the rule's order.
    pub evidence: StoredEvidence,
    /// Id of the scan that first found it.
    pub first_seen_scan: i64,
    /// When that scan started (UTC, RFC 3339).
    pub first_seen_at: String,
    /// Id of the last scan that found it.
    pub last_seen_scan: i64,
    /// When that scan started (UTC, RFC 3339).
    pub last_seen_at: String,
    /// When it was last announced (UTC, RFC 3339); `None`: never.
    pub last_announced_at: Option<String>,
    /// When it resolved (UTC, RFC 3339); `None` while not resolved.
    pub resolved_at: Option<String>,
    /// How it resolved; `None` while not resolved.
    pub resolution: Option<Resolution>,
    /// Which exemption covers it (`groupwarden.toml, exemption 2`).
    pub exemption: Option<String>,
    /// The covering exemption's reason; `None` when not exempted.
    pub exemption_reason: Option<String>,
    /// The refresh date (`YYYY-MM-DD`) of the report that first showed it;
    /// `None` for a scan that recorded none.
    #[serde(default)]
    pub first_seen_report: Option<String>,
}

impl StoredFinding {
    /// The day it was first seen, as the docs define it: the refresh date
    /// of the report that first showed it (else, for a scan that recorded
    /// no date, the day that scan ran).
    pub fn first_seen_day(&self) -> Option<jiff::civil::Date> {
        self.first_seen_report
            .as_deref()
            .or_else(|| self.first_seen_at.get(..10))
            .and_then(|day| day.parse().ok())
    }

    /// Back into the shape the output writers take. The report line is
    /// unknown: the finding may not be in this report at all.
    pub fn to_finding(&self) -> Finding {
        Finding {
            rule: Arc::from(self.rule.as_str()),
            severity: self.severity,
            key: self.key.clone(),
            group_id: self.group_id.clone(),
            group_name: self.group_name.clone(),
            owner: self.owner.clone(),
            message: self.message.clone(),
            line: None,
            evidence: self.evidence.to_evidence_map(),
        }
    }
}

/// Evidence as stored: a JSON object whose key order is kept.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoredEvidence(pub Vec<(String, serde_json::Value)>);

impl StoredEvidence {
    /// Parses evidence as the database stores it: a JSON object.
    pub fn from_json(text: &str) -> serde_json::Result<StoredEvidence> {
        serde_json::from_str(text)
    }

    /// Parses evidence as the `findings` view's `stored_evidence` gives
    /// it: a JSON object, or the names (a JSON array), a line break and
    /// the values (a JSON array of as many).
    pub fn from_stored(text: &str) -> serde_json::Result<StoredEvidence> {
        let Some((names, values)) = text.split_once('\n') else {
            return StoredEvidence::from_json(text);
        };
        let names: Vec<String> = serde_json::from_str(names)?;
        let values: Vec<serde_json::Value> = serde_json::from_str(values)?;
        if names.len() != values.len() {
            return Err(serde::de::Error::custom(format!(
                "{} evidence names for {} values",
                names.len(),
                values.len()
            )));
        }
        Ok(StoredEvidence(names.into_iter().zip(values).collect()))
    }

    /// The evidence as findings carry it; numbers that do not fit an
    /// integer become floats, arrays and objects become their JSON text.
    pub fn to_evidence_map(&self) -> EvidenceMap {
        let values = self.0.iter().map(|(name, value)| {
            let evidence = match value {
                serde_json::Value::Null => Evidence::Null,
                serde_json::Value::Bool(b) => Evidence::Bool(*b),
                serde_json::Value::Number(n) => n
                    .as_i64()
                    .map(Evidence::Int)
                    .unwrap_or_else(|| Evidence::Float(n.as_f64().unwrap_or(f64::NAN))),
                serde_json::Value::String(s) => Evidence::Text(s.clone()),
                other => Evidence::Text(other.to_string()),
            };
            (Arc::from(name.as_str()), evidence)
        });
        EvidenceMap(values.collect())
    }
}

impl Serialize for StoredEvidence {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for StoredEvidence {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<StoredEvidence, D::Error> {
        struct OrderedObject;
        impl<'de> Visitor<'de> for OrderedObject {
            type Value = StoredEvidence;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an evidence object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StoredEvidence, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(StoredEvidence(entries))
            }
        }
        deserializer.deserialize_map(OrderedObject)
    }
}

/// Findings per status after one scan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    /// Seen for the first time.
    pub new: u64,
    /// Seen before and still there (reminders included).
    pub open: u64,
    /// Resolved once, and back.
    pub reopened: u64,
    /// Resolved by this scan.
    pub resolved: u64,
    /// Covered by an exemption.
    pub exempted: u64,
    /// Open findings due for a reminder (counted in `open` too).
    pub reminders: u64,
}

impl StatusCounts {
    /// The count for `status`.
    pub fn get(&self, status: Status) -> u64 {
        match status {
            Status::New => self.new,
            Status::Open => self.open,
            Status::Reopened => self.reopened,
            Status::Resolved => self.resolved,
            Status::Exempted => self.exempted,
        }
    }

    /// Adds `count` findings to `status`.
    pub fn add(&mut self, status: Status, count: u64) {
        *self.slot(status) += count;
    }

    /// Takes `count` findings from `status`.
    pub fn remove(&mut self, status: Status, count: u64) {
        let slot = self.slot(status);
        *slot = slot.saturating_sub(count);
    }

    fn slot(&mut self, status: Status) -> &mut u64 {
        match status {
            Status::New => &mut self.new,
            Status::Open => &mut self.open,
            Status::Reopened => &mut self.reopened,
            Status::Resolved => &mut self.resolved,
            Status::Exempted => &mut self.exempted,
        }
    }
}

impl fmt::Display for StatusCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = Status::ALL
            .iter()
            .map(|s| format!("{} {s}", self.get(*s)))
            .collect();
        write!(f, "{}", parts.join(", "))?;
        if self.reminders > 0 {
            write!(f, " ({} due for a reminder)", self.reminders)?;
        }
        Ok(())
    }
}

/// Why a scan's notifications carry a summary instead of each finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cap {
    /// `[state] max_new_findings`.
    pub limit: u64,
    /// New, reopened, reminders and resolved together.
    pub would_announce: u64,
    /// A sentence for the summary message.
    pub reason: String,
}

/// What one scan changed: everything a notifier needs to announce it.
///
/// Built inside the scan's transaction; a notifier glue step turns it
/// into outbox messages in that same transaction (see
/// [`super::outbox`]). When [`Changes::capped`] is set, the finding lists
/// are empty and only the counts are known: announce a summary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Changes {
    /// The scan's id in the database.
    pub scan_id: i64,
    /// When the scan started (UTC, RFC 3339).
    pub scanned_at: String,
    /// The report's name: its path, `<stdin>`, or `Microsoft Graph report (…)`.
    pub source: String,
    /// The report's refresh date (`YYYY-MM-DD`); `None` when no row gave one.
    pub report_refresh_date: Option<String>,
    /// Findings per status after the scan.
    pub counts: StatusCounts,
    /// First seen in this scan.
    pub new: Vec<StoredFinding>,
    /// Resolved before, back in this scan.
    pub reopened: Vec<StoredFinding>,
    /// Still open and not announced for `renotify_after`.
    pub reminders: Vec<StoredFinding>,
    /// Resolved by this scan; `resolution` says how.
    pub resolved: Vec<StoredFinding>,
    /// Newly covered by an exemption in this scan (never announced as
    /// problems; listed so people see what was muted).
    pub exempted: Vec<StoredFinding>,
    /// Exemptions that end within 14 days.
    pub expiring_exemptions: Vec<ExemptionNotice>,
    /// Exemptions past their date: they no longer apply.
    pub expired_exemptions: Vec<ExemptionNotice>,
    /// Set when there was too much to announce one by one: the finding
    /// lists are then empty; announce a summary.
    pub capped: Option<Cap>,
}

impl Changes {
    /// Findings that would be announced one by one.
    pub fn to_announce(&self) -> u64 {
        self.counts.new + self.counts.reopened + self.counts.reminders + self.counts.resolved
    }

    /// Nothing to tell anyone.
    pub fn is_quiet(&self) -> bool {
        self.to_announce() == 0
            && self.exempted.is_empty()
            && self.expiring_exemptions.is_empty()
            && self.expired_exemptions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_stored_by_shape_reads_as_the_object_it_was() {
        let by_shape =
            StoredEvidence::from_stored("[\"z\",\"a\",\"m\",\"f\"]\n[1,\"x\\ny\",null,1.5]")
                .unwrap();
        let object = StoredEvidence::from_json(r#"{"z":1,"a":"x\ny","m":null,"f":1.5}"#).unwrap();
        assert_eq!(by_shape, object);
        assert_eq!(
            StoredEvidence::from_stored(r#"{"z":1}"#).unwrap().0.len(),
            1
        );
        assert!(StoredEvidence::from_stored("[\"a\",\"b\"]\n[1]").is_err());
    }

    #[test]
    fn stored_evidence_keeps_its_order_both_ways() {
        let evidence = StoredEvidence::from_json(r#"{"z":1,"a":"x","m":null,"f":1.5}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&evidence).unwrap(),
            r#"{"z":1,"a":"x","m":null,"f":1.5}"#
        );
        let map = evidence.to_evidence_map();
        assert_eq!(map.to_line(), "z=1, a=x, m=unknown, f=1.5");
    }

    #[test]
    fn counts_read_as_a_sentence() {
        let mut counts = StatusCounts::default();
        counts.add(Status::New, 2);
        counts.add(Status::Resolved, 1);
        assert_eq!(
            counts.to_string(),
            "2 new, 0 open, 0 reopened, 1 resolved, 0 exempted"
        );
    }
}
