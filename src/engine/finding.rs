//! What rules report.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use super::render::PreparedRule;

/// How much a finding matters, least first.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing to fix.
    Info,
    /// A minor issue, to fix when convenient.
    Low,
    /// An issue to fix soon.
    Medium,
    /// A serious issue, to fix promptly.
    High,
    /// An issue to fix now.
    Critical,
}

impl Severity {
    /// Every severity, least first.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The lowercase name used in configuration, rules and output
    /// (`"high"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| {
                format!(
                    "unknown severity `{text}`; expected one of info, low, medium, high, critical"
                )
            })
    }
}

/// A value a finding carries as evidence.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Evidence {
    /// No value: the report's field was empty or the script gave `()`.
    /// Shown as `unknown`, written as JSON `null`.
    Null,
    /// A yes/no value.
    Bool(bool),
    /// A whole number, such as a count of days or bytes.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// Text; any other script value is kept as its text.
    Text(String),
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Evidence::Null => f.write_str("unknown"),
            Evidence::Bool(b) => write!(f, "{b}"),
            Evidence::Int(i) => write!(f, "{i}"),
            Evidence::Float(x) => write!(f, "{x}"),
            Evidence::Text(t) => f.write_str(t),
        }
    }
}

/// Named evidence values, in the order the rule gave them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EvidenceMap(pub Vec<(Arc<str>, Evidence)>);

impl EvidenceMap {
    /// Sets `name`, replacing an earlier value of the same name.
    pub fn set(&mut self, name: Arc<str>, value: Evidence) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// Whether there is no evidence at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `name=value, …` for one-line displays.
    pub fn to_line(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Serialize for EvidenceMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(&**name, value)?;
        }
        map.end()
    }
}

/// One thing a rule found about one group (or, for tenant rules, the
/// whole tenant).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    /// The id of the rule that reported it.
    pub rule: Arc<str>,
    /// The rule's severity, unless the script gave one for this finding.
    pub severity: Severity,
    /// Stable across scans: `rule:group-id`, `rule:name:group-name` where
    /// the id is missing or concealed, or the rule id alone for tenant
    /// findings. Never contains the message.
    pub key: String,
    /// The group's object id; `None` when the report has no usable id
    /// (missing or concealed) and for tenant findings.
    pub group_id: Option<String>,
    /// The group's display name; `None` when the report has none and for
    /// tenant findings.
    pub group_name: Option<String>,
    /// The owner's principal name, from the report; `None` when there is
    /// none and for tenant findings.
    pub owner: Option<String>,
    /// What the rule says about the group, for people.
    pub message: String,
    /// The report line of the group's row; `None` for tenant findings.
    pub line: Option<u64>,
    /// The values that support the finding: the row fields the rule
    /// declares as evidence, then what the script added (which replaces a
    /// declared field of the same name).
    pub evidence: EvidenceMap,
}

/// An evidence value, borrowed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EvidenceRef<'a> {
    /// As [`Evidence::Null`].
    Null,
    /// As [`Evidence::Bool`].
    Bool(bool),
    /// As [`Evidence::Int`].
    Int(i64),
    /// As [`Evidence::Float`].
    Float(f64),
    /// As [`Evidence::Text`], borrowed.
    Text(&'a str),
}

impl Evidence {
    /// This value, borrowed.
    pub fn as_ref(&self) -> EvidenceRef<'_> {
        match self {
            Evidence::Null => EvidenceRef::Null,
            Evidence::Bool(b) => EvidenceRef::Bool(*b),
            Evidence::Int(i) => EvidenceRef::Int(*i),
            Evidence::Float(f) => EvidenceRef::Float(*f),
            Evidence::Text(t) => EvidenceRef::Text(t),
        }
    }
}

impl EvidenceRef<'_> {
    /// This value as an owned [`Evidence`], copying any text.
    pub fn to_owned(self) -> Evidence {
        match self {
            EvidenceRef::Null => Evidence::Null,
            EvidenceRef::Bool(b) => Evidence::Bool(b),
            EvidenceRef::Int(i) => Evidence::Int(i),
            EvidenceRef::Float(f) => Evidence::Float(f),
            EvidenceRef::Text(t) => Evidence::Text(t.to_owned()),
        }
    }
}

/// A finding's fields as writers read them. A [`Finding`] has them; so
/// does a finding a worker renders straight from its row, without
/// copying the row's text into a `Finding` first (see
/// `engine::eval::Evaluator::set_render`).
pub trait FindingFields {
    /// As [`Finding::rule`].
    fn rule(&self) -> &str;
    /// As [`Finding::severity`].
    fn severity(&self) -> Severity;
    /// The key, in pieces to be written one after the other.
    fn key_parts(&self) -> [&str; 3];
    /// As [`Finding::group_id`].
    fn group_id(&self) -> Option<Cow<'_, str>>;
    /// As [`Finding::group_name`].
    fn group_name(&self) -> Option<Cow<'_, str>>;
    /// As [`Finding::owner`].
    fn owner(&self) -> Option<Cow<'_, str>>;
    /// As [`Finding::message`].
    fn message(&self) -> &str;
    /// As [`Finding::line`].
    fn line(&self) -> Option<u64>;
    /// Calls `visit` with each evidence name and value, in order.
    fn evidence(&self, visit: &mut dyn FnMut(&str, EvidenceRef<'_>));
    /// The bytes every finding of this kind shares (rule, severity, the
    /// key's first two parts, evidence names), prepared once per rule by
    /// the [`Render`](super::render::Render) rendering it; `None` (the
    /// default) has writers write those fields themselves.
    fn prepared(&self) -> Option<&PreparedRule> {
        None
    }
}

impl FindingFields for Finding {
    fn rule(&self) -> &str {
        &self.rule
    }
    fn severity(&self) -> Severity {
        self.severity
    }
    fn key_parts(&self) -> [&str; 3] {
        [&self.key, "", ""]
    }
    fn group_id(&self) -> Option<Cow<'_, str>> {
        self.group_id.as_deref().map(Cow::Borrowed)
    }
    fn group_name(&self) -> Option<Cow<'_, str>> {
        self.group_name.as_deref().map(Cow::Borrowed)
    }
    fn owner(&self) -> Option<Cow<'_, str>> {
        self.owner.as_deref().map(Cow::Borrowed)
    }
    fn message(&self) -> &str {
        &self.message
    }
    fn line(&self) -> Option<u64> {
        self.line
    }
    fn evidence(&self, visit: &mut dyn FnMut(&str, EvidenceRef<'_>)) {
        for (name, value) in &self.evidence.0 {
            visit(name, value.as_ref());
        }
    }
}

/// A finding's `key_hash` in the state store: the first 8 bytes of its
/// key's SHA-256, as SQLite's signed integer. Stable across versions and
/// platforms (it is stored); two keys with the same hash are told apart by
/// the key itself. Made on the scan's workers (`RowOutcome::key_hashes`).
pub fn key_hash(key: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// The state store's content hash of a finding, begun with what the
/// finding itself says (key, rule, group, names, severity, message); the
/// store adds the evidence as it stores it, the exemption and the
/// evidence shape (`state::known::content_hash`). Begun on the scan's
/// workers (`RowOutcome::content_hashers`): on the thread every row
/// waits on, hashing these few hundred bytes a finding was about 4% of a
/// first stateful scan.
pub fn content_hasher(finding: &Finding, group_key: &str) -> ContentHasher {
    use std::hash::BuildHasher;
    let mut hasher = ContentHasher(
        foldhash::quality::FixedState::with_seed(0x6772_6f75_7077_6172).build_hasher(),
    );
    for value in [
        Some(finding.key.as_str()),
        Some(&finding.rule),
        Some(group_key),
        finding.group_id.as_deref(),
        finding.group_name.as_deref(),
        finding.owner.as_deref(),
        Some(finding.severity.as_str()),
        Some(&finding.message),
    ] {
        hash_text(&mut hasher, value);
    }
    hasher
}

/// A begun content hash (see [`content_hasher`]).
#[derive(Clone)]
pub struct ContentHasher(pub foldhash::quality::FoldHasher<'static>);

impl fmt::Debug for ContentHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContentHasher")
    }
}

/// Adds a text, or its absence, to a content hash: a marker byte, the
/// bytes and an end byte, so that no two sequences of texts collide by
/// where one ends.
pub fn hash_text(hasher: &mut ContentHasher, value: Option<&str>) {
    use std::hash::Hasher;
    match value {
        Some(value) => {
            hasher.0.write_u8(1);
            hasher.0.write(value.as_bytes());
            hasher.0.write_u8(0xff);
        }
        None => hasher.0.write_u8(0),
    }
}

/// The stable key of a finding.
pub fn finding_key(rule: &str, group_key: &str) -> String {
    let mut key = String::with_capacity(rule.len() + 1 + group_key.len());
    key.push_str(rule);
    key.push(':');
    key.push_str(group_key);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_order_and_parse() {
        assert!(Severity::Critical > Severity::High && Severity::Low > Severity::Info);
        assert_eq!("HIGH".parse::<Severity>(), Ok(Severity::High));
        assert!(
            "urgent"
                .parse::<Severity>()
                .unwrap_err()
                .contains("expected one of")
        );
    }

    #[test]
    fn evidence_serialises_as_an_ordered_object() {
        let mut evidence = EvidenceMap::default();
        evidence.set("b".into(), Evidence::Int(2));
        evidence.set("a".into(), Evidence::Null);
        evidence.set("b".into(), Evidence::Text("x".into()));
        assert_eq!(
            serde_json::to_string(&evidence).unwrap(),
            r#"{"b":"x","a":null}"#
        );
    }
}
