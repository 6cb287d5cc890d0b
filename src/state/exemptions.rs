//! Exemptions: accepted findings that are recorded but never announced,
//! each with a reason and an expiry date.
//!
//! Exemptions come from the config's `[[exemptions]]` and from the file
//! named by `[state] exemptions_file`. They are checked once when loaded
//! (one group selector, a reason, a glob that compiles) and then sorted by
//! the day they are checked against: an expired exemption no longer
//! applies and is reported by name, one that ends within
//! [`EXPIRING_WITHIN_DAYS`] is listed as expiring.

use std::fmt;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::config::{ExemptionConfig, ExemptionsFile};
use crate::engine::finding::Finding;

/// An exemption ending within this many days is listed as expiring.
pub const EXPIRING_WITHIN_DAYS: i64 = 14;

/// An exemption that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ExemptionError {
    /// The exemptions file could not be read.
    #[error("cannot read exemptions file {path}: {error}")]
    Io {
        /// The exemptions file.
        path: PathBuf,
        /// Why it could not be read.
        error: std::io::Error,
    },
    /// The exemptions file is not valid TOML or not a list of exemptions.
    #[error("exemptions file {path}: {message}")]
    Invalid {
        /// The exemptions file.
        path: PathBuf,
        /// What the TOML parser said.
        message: String,
    },
    /// One exemption is incomplete or wrong; `origin` says which.
    #[error("{origin}: {message}")]
    Entry {
        /// Which exemption: `groupwarden.toml, exemption 2`.
        origin: String,
        /// What is wrong with it.
        message: String,
    },
}

/// What an exemption selects groups by.
#[derive(Clone, Debug)]
pub enum GroupSelector {
    /// The group with this id (compared without regard to case).
    Id(String),
    /// Groups whose name matches a glob (case-insensitive).
    Name {
        /// The glob as written.
        pattern: String,
        /// The compiled glob.
        matcher: GlobMatcher,
    },
}

impl fmt::Display for GroupSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupSelector::Id(id) => write!(f, "group_id {id}"),
            GroupSelector::Name { pattern, .. } => write!(f, "group_name \"{pattern}\""),
        }
    }
}

/// One checked exemption.
#[derive(Clone, Debug)]
pub struct Exemption {
    /// Which exemption it is, as findings record it: `groupwarden.toml,
    /// exemption 2`, or `state exemption 3` for one added on the command
    /// line.
    pub origin: String,
    /// Where it came from, for listings: `groupwarden.toml:14`, or `added
    /// by CLI on 2026-11-27 by alice`.
    pub source: String,
    /// Id of the rule it covers, or `*` for every rule.
    pub rule: String,
    /// The groups it covers.
    pub group: GroupSelector,
    /// Why the findings are accepted.
    pub reason: String,
    /// The last day it applies.
    pub expires: Date,
    /// Who approved it, when recorded.
    pub approved_by: Option<String>,
}

/// Where an exemption stands on a given day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExemptionState {
    /// In force, and not ending within [`EXPIRING_WITHIN_DAYS`].
    Active,
    /// In force, but ending within [`EXPIRING_WITHIN_DAYS`].
    Expiring,
    /// Past its last day: no longer applies.
    Expired,
}

impl ExemptionState {
    /// The state as written in JSON and listings (`active`).
    pub fn as_str(self) -> &'static str {
        match self {
            ExemptionState::Active => "active",
            ExemptionState::Expiring => "expiring",
            ExemptionState::Expired => "expired",
        }
    }
}

/// An exemption as notifications and listings show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExemptionNotice {
    /// Where it was written, e.g. `groupwarden.toml, exemption 2`.
    pub origin: String,
    /// Where it came from: `groupwarden.toml:14`, or `added by CLI on
    /// 2026-11-27 by alice`.
    #[serde(default)]
    pub source: String,
    /// Id of the rule it covers, or `*` for every rule.
    pub rule: String,
    /// The group id it selects by; `None` when it selects by name.
    pub group_id: Option<String>,
    /// The name glob it selects by; `None` when it selects by id.
    pub group_name: Option<String>,
    /// Why the findings are accepted.
    pub reason: String,
    /// The last day it applies, `YYYY-MM-DD`.
    pub expires: String,
    /// Who approved it, when recorded.
    pub approved_by: Option<String>,
    /// Where it stands on the day checked.
    pub state: ExemptionState,
    /// Days from the day checked to the expiry day; negative once expired.
    pub days_left: i64,
}

impl Exemption {
    fn from_config(
        config: &ExemptionConfig,
        origin: String,
        source: String,
    ) -> Result<Exemption, ExemptionError> {
        let fail = |message: &str| ExemptionError::Entry {
            origin: origin.clone(),
            message: message.to_owned(),
        };
        if config.rule.trim().is_empty() {
            return Err(fail("`rule` is empty; give a rule id or \"*\""));
        }
        if config.reason.trim().is_empty() {
            return Err(fail("`reason` is empty; say why the finding is accepted"));
        }
        let group = match (&config.group_id, &config.group_name) {
            (Some(id), None) if !id.trim().is_empty() => GroupSelector::Id(id.trim().to_owned()),
            (None, Some(pattern)) if !pattern.trim().is_empty() => {
                let glob = GlobBuilder::new(pattern)
                    .case_insensitive(true)
                    .literal_separator(false)
                    .build()
                    .map_err(|e| {
                        fail(&format!(
                            "`group_name` \"{pattern}\" is not a valid glob: {}",
                            e.kind()
                        ))
                    })?;
                GroupSelector::Name {
                    pattern: pattern.clone(),
                    matcher: glob.compile_matcher(),
                }
            }
            (Some(_), Some(_)) => return Err(fail("give `group_id` or `group_name`, not both")),
            _ => {
                return Err(fail(
                    "needs a non-empty `group_id` or `group_name`: there are no tenant-wide exemptions (disable the rule instead)",
                ));
            }
        };
        Ok(Exemption {
            origin,
            source,
            rule: config.rule.trim().to_owned(),
            group,
            reason: config.reason.trim().to_owned(),
            expires: config.expires,
            approved_by: config.approved_by.clone(),
        })
    }

    /// True when it covers `finding` (expiry aside).
    pub fn covers(&self, finding: &Finding) -> bool {
        if self.rule != "*" && self.rule != *finding.rule {
            return false;
        }
        match &self.group {
            GroupSelector::Id(id) => finding
                .group_id
                .as_deref()
                .is_some_and(|g| g.eq_ignore_ascii_case(id)),
            GroupSelector::Name { matcher, .. } => finding
                .group_name
                .as_deref()
                .is_some_and(|name| matcher.is_match(name)),
        }
    }

    /// Days from `today` to the last day it applies.
    pub fn days_left(&self, today: Date) -> i64 {
        i64::from((self.expires - today).get_days())
    }

    /// Where it stands on `today`.
    pub fn state_on(&self, today: Date) -> ExemptionState {
        match self.days_left(today) {
            left if left < 0 => ExemptionState::Expired,
            left if left <= EXPIRING_WITHIN_DAYS => ExemptionState::Expiring,
            _ => ExemptionState::Active,
        }
    }

    /// The exemption as notifications and listings show it, as of `today`.
    pub fn notice(&self, today: Date) -> ExemptionNotice {
        let (group_id, group_name) = match &self.group {
            GroupSelector::Id(id) => (Some(id.clone()), None),
            GroupSelector::Name { pattern, .. } => (None, Some(pattern.clone())),
        };
        ExemptionNotice {
            origin: self.origin.clone(),
            source: self.source.clone(),
            rule: self.rule.clone(),
            group_id,
            group_name,
            reason: self.reason.clone(),
            expires: self.expires.to_string(),
            approved_by: self.approved_by.clone(),
            state: self.state_on(today),
            days_left: self.days_left(today),
        }
    }
}

impl fmt::Display for Exemption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exemption for rule `{}` on {} ({})",
            self.rule, self.group, self.origin
        )
    }
}

/// `file:line` of the `index`th `[[exemptions]]` entry, or `file,
/// exemption N` when its line is not known (the entries came from
/// elsewhere than the text).
fn written_at(file: &str, lines: &[usize], index: usize) -> String {
    match lines.get(index) {
        Some(line) => format!("{file}:{line}"),
        None => format!("{file}, exemption {}", index + 1),
    }
}

/// The 1-based line of each `[[exemptions]]` entry in a TOML text, in
/// order: the line of its `[[exemptions]]` header (or of its first key,
/// for the inline form). Empty when the text does not parse (the config
/// parser has said why by then).
fn exemption_lines(text: &str) -> Vec<usize> {
    #[derive(Deserialize)]
    struct Entries {
        #[serde(default)]
        exemptions: Vec<toml::Spanned<toml::Table>>,
    }
    let Ok(entries) = toml::from_str::<Entries>(text) else {
        return Vec::new();
    };
    entries
        .exemptions
        .iter()
        .map(|entry| {
            let start = entry.span().start.min(text.len());
            // The span starts at the `[[exemptions]]` header or at the
            // entry's first key: then the header is the last `[[` before.
            let at = if text[start..].starts_with("[[") {
                start
            } else {
                text[..start].rfind("[[").unwrap_or(start)
            };
            text[..at].matches('\n').count() + 1
        })
        .collect()
}

/// Every configured exemption.
#[derive(Clone, Debug, Default)]
pub struct Exemptions {
    /// In the order they were written: the config's entries, then the
    /// exemptions file's.
    pub all: Vec<Exemption>,
}

impl Exemptions {
    /// Checks the config's entries (`config_name` names the config file in
    /// errors; `config_text`, its text, gives each entry's line) and those
    /// of `extra_file`, if any.
    pub fn load(
        config_name: &str,
        config_text: Option<&str>,
        entries: &[ExemptionConfig],
        extra_file: Option<&Path>,
    ) -> Result<Exemptions, ExemptionError> {
        let mut all = Vec::new();
        let lines = config_text.map(exemption_lines).unwrap_or_default();
        for (index, entry) in entries.iter().enumerate() {
            all.push(Exemption::from_config(
                entry,
                format!("{config_name}, exemption {}", index + 1),
                written_at(config_name, &lines, index),
            )?);
        }
        if let Some(path) = extra_file {
            let text = std::fs::read_to_string(path).map_err(|error| ExemptionError::Io {
                path: path.to_owned(),
                error,
            })?;
            let file: ExemptionsFile =
                toml::from_str(&text).map_err(|e| ExemptionError::Invalid {
                    path: path.to_owned(),
                    message: e.to_string().trim_end().to_owned(),
                })?;
            let lines = exemption_lines(&text);
            let name = path.display().to_string();
            for (index, entry) in file.exemptions.iter().enumerate() {
                all.push(Exemption::from_config(
                    entry,
                    format!("{name}, exemption {}", index + 1),
                    written_at(&name, &lines, index),
                )?);
            }
        }
        Ok(Exemptions { all })
    }

    /// The first exemption in force on `today` that covers `finding`.
    pub fn find(&self, finding: &Finding, today: Date) -> Option<&Exemption> {
        self.all
            .iter()
            .find(|e| e.state_on(today) != ExemptionState::Expired && e.covers(finding))
    }

    /// Exemptions in the given state on `today`.
    pub fn in_state(&self, today: Date, state: ExemptionState) -> impl Iterator<Item = &Exemption> {
        self.all.iter().filter(move |e| e.state_on(today) == state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::finding::{EvidenceMap, Severity};

    fn finding(rule: &str, id: Option<&str>, name: &str) -> Finding {
        Finding {
            rule: rule.into(),
            severity: Severity::Medium,
            key: format!("{rule}:{}", id.unwrap_or(name)),
            group_id: id.map(str::to_owned),
            group_name: Some(name.to_owned()),
            owner: None,
            message: "m".into(),
            line: Some(2),
            evidence: EvidenceMap::default(),
        }
    }

    fn exemptions(text: &str) -> Result<Exemptions, ExemptionError> {
        let file: ExemptionsFile = toml::from_str(text).unwrap();
        Exemptions::load("test.toml", Some(text), &file.exemptions, None)
    }

    const TODAY: Date = Date::constant(2026, 11, 25);

    #[test]
    fn each_entry_is_listed_with_its_file_and_line() {
        let text = "# exemptions\n\n[[exemptions]]\nrule = \"*\"\ngroup_id = \"g\"\nreason = \"r\"\nexpires = \"2027-01-01\"\n\n# a comment\n[[exemptions]]\nrule = \"a\"\ngroup_name = \"n\"\nreason = \"r\"\nexpires = 2027-01-01\n";
        let all = exemptions(text).unwrap().all;
        let sources: Vec<&str> = all.iter().map(|e| e.source.as_str()).collect();
        assert_eq!(sources, ["test.toml:3", "test.toml:10"]);
        assert_eq!(all[1].origin, "test.toml, exemption 2");
    }

    #[test]
    fn rule_and_group_must_both_match() {
        let list = exemptions(
            "[[exemptions]]\nrule = \"inactive-groups\"\ngroup_name = \"project *\"\nreason = \"kept\"\nexpires = \"2027-01-31\"\n\
             [[exemptions]]\nrule = \"*\"\ngroup_id = \"ABC\"\nreason = \"legal hold\"\nexpires = \"2027-01-31\"\n",
        )
        .unwrap();
        assert!(
            list.find(
                &finding("inactive-groups", Some("x"), "Project Alpha"),
                TODAY
            )
            .is_some()
        );
        assert!(
            list.find(
                &finding("ownerless-groups", Some("x"), "Project Alpha"),
                TODAY
            )
            .is_none()
        );
        assert!(
            list.find(&finding("inactive-groups", Some("x"), "Old Project"), TODAY)
                .is_none()
        );
        let by_id = list
            .find(&finding("ownerless-groups", Some("abc"), "Whatever"), TODAY)
            .unwrap();
        assert_eq!(by_id.reason, "legal hold");
        assert_eq!(by_id.origin, "test.toml, exemption 2");
    }

    #[test]
    fn expiry_is_inclusive_and_expiring_is_two_weeks() {
        let list = exemptions("[[exemptions]]\nrule = \"*\"\ngroup_id = \"g\"\nreason = \"r\"\nexpires = \"2026-12-09\"\n").unwrap();
        let exemption = &list.all[0];
        assert_eq!(
            exemption.state_on(Date::constant(2026, 11, 24)),
            ExemptionState::Active
        );
        assert_eq!(exemption.state_on(TODAY), ExemptionState::Expiring);
        assert_eq!(
            exemption.state_on(Date::constant(2026, 12, 9)),
            ExemptionState::Expiring
        );
        assert_eq!(
            exemption.state_on(Date::constant(2026, 12, 10)),
            ExemptionState::Expired
        );
        assert!(
            list.find(&finding("r", Some("g"), "n"), Date::constant(2026, 12, 10))
                .is_none()
        );
        assert_eq!(exemption.notice(TODAY).days_left, 14);
    }

    #[test]
    fn entries_without_a_group_or_reason_are_refused() {
        let err =
            exemptions("[[exemptions]]\nrule = \"*\"\nreason = \"r\"\nexpires = \"2027-01-01\"\n")
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "test.toml, exemption 1: needs a non-empty `group_id` or `group_name`: there are no tenant-wide exemptions (disable the rule instead)"
        );
        let err = exemptions("[[exemptions]]\nrule = \"*\"\ngroup_id = \"g\"\nreason = \" \"\nexpires = \"2027-01-01\"\n").unwrap_err();
        assert!(err.to_string().contains("`reason` is empty"));
        let err = exemptions("[[exemptions]]\nrule = \"*\"\ngroup_name = \"a[\"\nreason = \"r\"\nexpires = \"2027-01-01\"\n").unwrap_err();
        assert!(err.to_string().contains("not a valid glob"), "{err}");
    }
}
