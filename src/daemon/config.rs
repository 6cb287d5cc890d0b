//! The `[schedule]` and `[health]` sections: when `groupwarden run` scans
//! and where it answers `/healthz` and `/metrics`.
//!
//! ```toml
//! [schedule]
//! cron = "0 6 * * 1-5"
//! timezone = "Europe/Berlin"
//! jitter = "5m"
//!
//! [health]
//! listen = "127.0.0.1:9464"
//! ```
//!
//! Cron patterns and time zones are checked while the file is read, so a
//! bad one is reported with its line and column like any other key.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use serde::{Deserialize, Deserializer};

use crate::duration::ConfigDuration;

/// `[schedule]`: when scans run.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// A cron pattern in five fields: minute, hour, day of month, month,
    /// day of week (`"0 6 * * 1-5"`: 06:00 Monday to Friday). A sixth
    /// field in front counts seconds (`"*/30 * * * * *"`).
    pub cron: Option<CronPattern>,
    /// Several cron patterns; a scan runs at every time any of them names.
    /// May be given together with `cron`.
    #[serde(default)]
    pub crons: Vec<CronPattern>,
    /// The IANA time zone the patterns' times are in (`"Europe/Berlin"`).
    /// Default `"UTC"`.
    #[serde(default)]
    pub timezone: Zone,
    /// Starts each scheduled scan up to this long after its time, at
    /// random, so many installations on the same schedule do not all call
    /// Microsoft Graph at once (`"5m"`). Default none.
    pub jitter: Option<ConfigDuration>,
    /// Scans once right after starting, before the first scheduled time.
    /// Default false.
    #[serde(default)]
    pub run_on_start: bool,
    /// After a failed scan, tries again this long after it failed
    /// (`"30m"`) if no scheduled time comes first. Default: wait for the
    /// next scheduled time.
    pub retry_after: Option<ConfigDuration>,
    /// On SIGTERM or SIGINT, how long a running scan may take to finish
    /// before the daemon stops without it. Default `"5m"`.
    #[serde(default = "default_grace_period")]
    pub grace_period: ConfigDuration,
    /// Where each scan's findings go: one JSON document with a summary,
    /// as `scan --format json` writes it, replaced when a scan completes
    /// (a failed scan leaves the previous one). Relative to the config
    /// file's folder. Default: not kept.
    pub output: Option<PathBuf>,
    /// Keeps each downloaded report CSV in this folder, as `scan
    /// --save-report` does. Relative to the config file's folder.
    pub save_report: Option<PathBuf>,
}

fn default_grace_period() -> ConfigDuration {
    ConfigDuration::from_secs(300)
}

impl ScheduleConfig {
    /// Every pattern, `cron` first.
    pub fn patterns(&self) -> Vec<CronPattern> {
        self.cron.iter().chain(&self.crons).cloned().collect()
    }

    /// The longest random delay before a scheduled scan: `jitter`, or zero.
    pub fn jitter(&self) -> Duration {
        self.jitter.map(|j| j.0).unwrap_or_default()
    }
}

/// `[health]`: the HTTP endpoint for probes and Prometheus.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// The address and port to serve `/healthz` and `/metrics` on
    /// (`"127.0.0.1:9464"`; `"0.0.0.0:9464"` in a container). Port 0 picks
    /// a free port and logs it.
    pub listen: SocketAddr,
}

/// A parsed cron pattern and the text it came from.
#[derive(Clone)]
pub struct CronPattern {
    /// The pattern as written, for logs and messages.
    pub text: String,
    /// The parsed pattern.
    pub cron: Cron,
}

impl fmt::Debug for CronPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronPattern({:?})", self.text)
    }
}

impl CronPattern {
    /// Standard five-field cron, or six with seconds first; no year field.
    pub fn parse(text: &str) -> Result<CronPattern, String> {
        let fields = text.split_whitespace().count();
        let nickname = text.trim_start().starts_with('@'); // @daily and friends
        if !(fields == 5 || fields == 6 || nickname) {
            return Err(format!(
                "`{text}` is not a cron pattern: it has {fields} fields; expected five (minute hour day-of-month month day-of-week, e.g. \"0 6 * * 1-5\") or six with seconds first"
            ));
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build();
        let cron = parser
            .parse(text)
            .map_err(|e| format!("`{text}` is not a cron pattern: {e}"))?;
        Ok(CronPattern {
            text: text.to_owned(),
            cron,
        })
    }
}

impl<'de> Deserialize<'de> for CronPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        CronPattern::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// An IANA time zone and its name.
#[derive(Clone, Debug)]
pub struct Zone {
    /// The zone's IANA name as written (`"Europe/Berlin"`), for logs.
    pub name: String,
    /// The zone.
    pub zone: TimeZone,
}

impl Default for Zone {
    fn default() -> Self {
        Zone {
            name: "UTC".into(),
            zone: TimeZone::UTC,
        }
    }
}

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        let zone = TimeZone::get(&name).map_err(|_| {
            serde::de::Error::custom(format!(
                "unknown time zone `{name}`: expected an IANA name such as \"Europe/Berlin\" or \"UTC\""
            ))
        })?;
        Ok(Zone { name, zone })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    #[test]
    fn a_full_schedule_parses() {
        let config = parse(
            "[schedule]\ncron = \"0 6 * * 1-5\"\ncrons = [\"30 12 * * *\"]\ntimezone = \"Europe/Berlin\"\n\
             jitter = \"5m\"\nrun_on_start = true\nretry_after = \"30m\"\ngrace_period = \"1m\"\n\
             [health]\nlisten = \"127.0.0.1:9464\"\n",
        )
        .unwrap();
        let schedule = config.schedule.unwrap();
        let patterns: Vec<String> = schedule.patterns().into_iter().map(|p| p.text).collect();
        assert_eq!(patterns, ["0 6 * * 1-5", "30 12 * * *"]);
        assert_eq!(schedule.timezone.name, "Europe/Berlin");
        assert_eq!(schedule.jitter(), Duration::from_secs(300));
        assert_eq!(
            schedule.retry_after.map(|d| d.0),
            Some(Duration::from_secs(1800))
        );
        assert_eq!(config.health.unwrap().listen.port(), 9464);
    }

    #[test]
    fn defaults() {
        let schedule = parse("[schedule]\ncron = \"0 6 * * *\"\n")
            .unwrap()
            .schedule
            .unwrap();
        assert_eq!(schedule.timezone.name, "UTC");
        assert_eq!(schedule.grace_period.0, Duration::from_secs(300));
        assert!(!schedule.run_on_start);
        assert_eq!(schedule.jitter(), Duration::ZERO);
    }

    #[test]
    fn a_bad_cron_names_line_column_and_pattern() {
        let err = parse("[schedule]\ncron = \"61 6 * * *\"\n").unwrap_err();
        assert!(err.contains("line 2, column 8"), "{err}");
        assert!(err.contains("`61 6 * * *` is not a cron pattern"), "{err}");
    }

    #[test]
    fn a_cron_with_the_wrong_number_of_fields_says_what_is_expected() {
        let err = parse("[schedule]\ncrons = [\"0 6 * *\"]\n").unwrap_err();
        assert!(err.contains("it has 4 fields; expected five"), "{err}");
    }

    #[test]
    fn an_unknown_time_zone_is_an_error() {
        let err =
            parse("[schedule]\ncron = \"0 6 * * *\"\ntimezone = \"Europe/Berlinn\"\n").unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("unknown time zone `Europe/Berlinn`"), "{err}");
    }

    #[test]
    fn unknown_keys_get_a_did_you_mean() {
        let err = parse("[schedule]\ncron = \"0 6 * * *\"\njiter = \"5m\"\n").unwrap_err();
        assert!(
            err.contains("unknown key `jiter` in [schedule]; did you mean `jitter`?"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_listen_address_is_an_error() {
        let err = parse("[health]\nlisten = \"localhost\"\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }
}
