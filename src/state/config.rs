//! The `[state]` section and the `[[exemptions]]` entries of the
//! configuration, plus [`Every`]: a duration or `"never"`.

use std::fmt;
use std::path::PathBuf;

use jiff::civil::Date;
use serde::de::{self, IntoDeserializer, Visitor};
use serde::{Deserialize, Deserializer};

use crate::duration::ConfigDuration;

/// Where findings are remembered and how long.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// The SQLite database that remembers findings between scans. Relative
    /// paths are relative to the config file's folder. When not set: the
    /// `GROUPWARDEN_STATE` environment variable, else `groupwarden.db` in
    /// `$STATE_DIRECTORY` (systemd's `StateDirectory=`), else
    /// `groupwarden.db` beside the config file. `--state PATH` overrides
    /// it and `--no-state` runs without one.
    pub path: Option<PathBuf>,
    /// Remind about still-open findings this often (`"12h"`, `"7d"`,
    /// `"2w"`), or `"never"`. Default `7d`.
    pub renotify_after: Every,
    /// Purge resolved findings, old scans and delivered notifications after
    /// this long (`"180d"`), or `"never"`. Default `180d`.
    pub retention: Every,
    /// When one scan would announce more findings than this (new, reopened,
    /// reminders and resolved together), notifications carry a summary
    /// instead of each finding. Default 500.
    pub max_new_findings: u64,
    /// How long a scan waits for another scan that is using the same
    /// database before it gives up (`"30s"`, `"10m"`). Default `10m`.
    pub lock_timeout: ConfigDuration,
    /// A TOML file of further `[[exemptions]]` entries, relative to the
    /// config file's folder. Useful when exemptions are approved by other
    /// people than the ones who maintain the configuration.
    pub exemptions_file: Option<PathBuf>,
}

/// The database file used when the config names none.
pub const DEFAULT_STATE_FILE: &str = "groupwarden.db";

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            path: None,
            renotify_after: Every::After(ConfigDuration::days(7)),
            retention: Every::After(ConfigDuration::days(180)),
            max_new_findings: 500,
            lock_timeout: ConfigDuration::from_secs(600),
            exemptions_file: None,
        }
    }
}

/// One exemption: findings of `rule` on the named group(s) are recorded as
/// exempted and never announced, until `expires`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExemptionConfig {
    /// The rule id it applies to, or `"*"` for every rule.
    pub rule: String,
    /// The group's object id. Give this or `group_name`.
    pub group_id: Option<String>,
    /// The group's display name, or a glob such as `"Project *"` (`*`, `?`,
    /// `[abc]`; case-insensitive). Give this or `group_id`.
    pub group_name: Option<String>,
    /// Why the finding is accepted. Required: it is shown wherever the
    /// exempted finding is.
    pub reason: String,
    /// The last day the exemption applies (`"2027-03-31"` or a TOML date).
    /// Required: there are no permanent mutes. An expired exemption stops
    /// applying and is named in a warning; one that expires within 14 days
    /// is listed as expiring.
    #[serde(deserialize_with = "deserialize_date")]
    pub expires: Date,
    /// Who approved it (optional, shown in listings).
    pub approved_by: Option<String>,
}

/// A file named by `[state] exemptions_file`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExemptionsFile {
    /// The exemptions, in the same form as in the main config.
    #[serde(default)]
    pub exemptions: Vec<ExemptionConfig>,
}

/// A duration, or `"never"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Every {
    /// This often, or after this long.
    After(ConfigDuration),
    /// Not at all.
    Never,
}

impl Every {
    /// The duration, unless `"never"`.
    pub fn span(self) -> Option<ConfigDuration> {
        match self {
            Every::After(duration) => Some(duration),
            Every::Never => None,
        }
    }
}

impl<'de> Deserialize<'de> for Every {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Every, D::Error> {
        deserializer.deserialize_any(EveryVisitor)
    }
}

/// `"never"`, else whatever [`ConfigDuration`] reads.
struct EveryVisitor;

impl Visitor<'_> for EveryVisitor {
    type Value = Every;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"7d\", or \"never\"")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Every, E> {
        if text.trim().eq_ignore_ascii_case("never") {
            return Ok(Every::Never);
        }
        text.parse()
            .map(Every::After)
            .map_err(|e: String| E::custom(format!("{e} (or \"never\")")))
    }

    fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<Every, E> {
        ConfigDuration::deserialize(seconds.into_deserializer()).map(Every::After)
    }

    fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<Every, E> {
        ConfigDuration::deserialize(seconds.into_deserializer()).map(Every::After)
    }
}

/// A `YYYY-MM-DD` string or a TOML local date.
fn deserialize_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Date, D::Error> {
    let text = match toml::Value::deserialize(deserializer)? {
        toml::Value::String(text) => text,
        toml::Value::Datetime(datetime) if datetime.time.is_none() && datetime.offset.is_none() => {
            datetime.to_string()
        }
        other => {
            return Err(serde::de::Error::custom(format!(
                "expected a date such as \"2027-03-31\", found {other}"
            )));
        }
    };
    let day = crate::report::date::parse_day(text.trim().as_bytes()).ok_or_else(|| {
        serde::de::Error::custom(format!("`{text}` is not a date; write it as YYYY-MM-DD"))
    })?;
    Ok(day_to_date(day))
}

/// A day number (days since 1970-01-01) as a calendar date.
pub fn day_to_date(day: i32) -> Date {
    Date::constant(1970, 1, 1)
        .checked_add(jiff::Span::new().days(i64::from(day)))
        .expect("report day numbers are within jiff's range")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(text: &str) -> Result<StateConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn durations_in_every_old_spelling() {
        let config =
            state("renotify_after = \"12h\"\nretention = \"2w\"\nlock_timeout = \"30s\"\n")
                .unwrap();
        assert_eq!(
            config.renotify_after,
            Every::After(ConfigDuration::from_secs(43_200))
        );
        assert_eq!(config.retention, Every::After(ConfigDuration::days(14)));
        assert_eq!(config.lock_timeout, ConfigDuration::from_secs(30));
        let config =
            state("renotify_after = \"7d\"\nretention = \"180d\"\nlock_timeout = \"10m\"\n")
                .unwrap();
        assert_eq!(config.renotify_after, Every::After(ConfigDuration::days(7)));
        assert_eq!(config.retention, Every::After(ConfigDuration::days(180)));
        assert_eq!(config.lock_timeout, ConfigDuration::from_secs(600));
        assert_eq!(
            state("retention = \"90s\"")
                .unwrap()
                .retention
                .span()
                .unwrap()
                .to_string(),
            "90s"
        );
    }

    #[test]
    fn durations_in_the_shared_grammar() {
        let config =
            state("renotify_after = \"1d 12h\"\nretention = 3600\nlock_timeout = 90\n").unwrap();
        assert_eq!(
            config.renotify_after,
            Every::After(ConfigDuration::from_secs(129_600))
        );
        assert_eq!(
            config.retention,
            Every::After(ConfigDuration::from_secs(3600))
        );
        assert_eq!(config.lock_timeout, ConfigDuration::from_secs(90));
        assert_eq!(
            state("retention = \"Never\"").unwrap().retention,
            Every::Never
        );
        let err = state("retention = -1").unwrap_err();
        assert!(err.contains("cannot be negative"), "{err}");
    }

    #[test]
    fn defaults_and_never() {
        let config = state("").unwrap();
        assert_eq!(config.path, None);
        assert_eq!(config.renotify_after, Every::After(ConfigDuration::days(7)));
        assert_eq!(config.retention, Every::After(ConfigDuration::days(180)));
        assert_eq!(config.lock_timeout, ConfigDuration::from_secs(600));
        assert_eq!(config.max_new_findings, 500);
        let config = state("renotify_after = \"never\"\nretention = \"30d\"").unwrap();
        assert_eq!(config.renotify_after, Every::Never);
        assert_eq!(config.retention.span(), Some(ConfigDuration::days(30)));
    }

    #[test]
    fn bad_spans_and_unknown_keys_name_the_line() {
        let err = state("renotify_after = \"weekly\"").unwrap_err();
        assert!(
            err.contains("line 1") && err.contains("or \"never\""),
            "{err}"
        );
        let err = state("path = \"x.db\"\nretension = \"1d\"").unwrap_err();
        assert!(
            err.contains("line 2") && err.contains("unknown field `retension`"),
            "{err}"
        );
    }

    #[test]
    fn exemption_dates_may_be_strings_or_toml_dates() {
        let file: ExemptionsFile = toml::from_str(
            "[[exemptions]]\nrule = \"*\"\ngroup_id = \"g\"\nreason = \"r\"\nexpires = 2027-03-31\n\
             [[exemptions]]\nrule = \"*\"\ngroup_id = \"g\"\nreason = \"r\"\nexpires = \"2027-04-01\"\n",
        )
        .unwrap();
        assert_eq!(file.exemptions[0].expires, Date::constant(2027, 3, 31));
        assert_eq!(file.exemptions[1].expires, Date::constant(2027, 4, 1));
        let err = toml::from_str::<ExemptionsFile>(
            "[[exemptions]]\nrule = \"*\"\nreason = \"r\"\nexpires = \"soon\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("line 4") && err.contains("YYYY-MM-DD"),
            "{err}"
        );
    }
}
