//! The `[state]` section and the `[[exemptions]]` entries of the
//! configuration, plus the small time-span syntax they use (`7d`, `never`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use jiff::civil::Date;
use serde::{Deserialize, Deserializer};

/// Where findings are remembered and how long.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// The SQLite database that remembers findings between scans. Relative
    /// paths are relative to the config file's folder. Default
    /// `groupwarden.db`; `--state PATH` overrides it and `--no-state` runs
    /// without one.
    pub path: PathBuf,
    /// Remind about still-open findings this often (`12h`, `7d`, `2w`), or
    /// `"never"`. Default `7d`.
    pub renotify_after: Every,
    /// Purge resolved findings, old scans and delivered notifications after
    /// this long (`180d`), or `"never"`. Default `180d`.
    pub retention: Every,
    /// When one scan would announce more findings than this (new, reopened,
    /// reminders and resolved together), notifications carry a summary
    /// instead of each finding. Default 500.
    pub max_new_findings: u64,
    /// How long a scan waits for another scan that is using the same
    /// database before it gives up (`30s`, `10m`). Default `10m`.
    pub lock_timeout: Span,
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
            path: PathBuf::from(DEFAULT_STATE_FILE),
            renotify_after: Every::After(Span::days(7)),
            retention: Every::After(Span::days(180)),
            max_new_findings: 500,
            lock_timeout: Span::seconds(600),
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

/// A length of time: a whole number and a unit, `s`, `m`, `h`, `d` or `w`
/// (`90s`, `30m`, `12h`, `7d`, `2w`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    seconds: u64,
}

impl Span {
    pub const fn seconds(seconds: u64) -> Span {
        Span { seconds }
    }

    pub const fn days(days: u64) -> Span {
        Span {
            seconds: days * 86_400,
        }
    }

    pub fn as_duration(self) -> Duration {
        Duration::from_secs(self.seconds)
    }

    pub fn as_signed(self) -> jiff::SignedDuration {
        jiff::SignedDuration::from_secs(i64::try_from(self.seconds).unwrap_or(i64::MAX))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, size) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
            if self.seconds >= size && self.seconds.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.seconds / size);
            }
        }
        write!(f, "{}s", self.seconds)
    }
}

impl FromStr for Span {
    type Err = String;

    fn from_str(text: &str) -> Result<Span, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let bad = || {
            format!(
                "`{text}` is not a time span; write a whole number and a unit, e.g. 90s, 30m, 12h, 7d or 2w"
            )
        };
        let number: u64 = number.parse().map_err(|_| bad())?;
        let size = match unit.trim() {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 604_800,
            _ => return Err(bad()),
        };
        number.checked_mul(size).map(Span::seconds).ok_or_else(bad)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Span, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A span, or `"never"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Every {
    After(Span),
    Never,
}

impl Every {
    pub fn span(self) -> Option<Span> {
        match self {
            Every::After(span) => Some(span),
            Every::Never => None,
        }
    }
}

impl<'de> Deserialize<'de> for Every {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Every, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.trim().eq_ignore_ascii_case("never") {
            return Ok(Every::Never);
        }
        text.parse()
            .map(Every::After)
            .map_err(|e: String| serde::de::Error::custom(format!("{e}, or \"never\"")))
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
    fn spans_read_and_print_in_their_largest_unit() {
        assert_eq!("7d".parse::<Span>(), Ok(Span::days(7)));
        assert_eq!("90s".parse::<Span>().unwrap().to_string(), "90s");
        assert_eq!("120m".parse::<Span>().unwrap().to_string(), "2h");
        assert_eq!(
            "2w".parse::<Span>().unwrap().as_duration().as_secs(),
            1_209_600
        );
        assert!("7 days".parse::<Span>().unwrap_err().contains("e.g. 90s"));
        assert!("d".parse::<Span>().is_err());
    }

    #[test]
    fn defaults_and_never() {
        let config = state("").unwrap();
        assert_eq!(config.path, PathBuf::from("groupwarden.db"));
        assert_eq!(config.renotify_after, Every::After(Span::days(7)));
        assert_eq!(config.max_new_findings, 500);
        let config = state("renotify_after = \"never\"\nretention = \"30d\"").unwrap();
        assert_eq!(config.renotify_after, Every::Never);
        assert_eq!(config.retention.span(), Some(Span::days(30)));
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
