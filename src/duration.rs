//! The one way the configuration writes a length of time.
//!
//! Every duration key (`deadline`, `renotify_after`, `timeout`, `jitter`,
//! …) takes a [`ConfigDuration`]: `"250ms"`, `"30s"`, `"2m"`, `"12h"`,
//! `"7d"`, `"2w"`, combinations such as `"1h 30m"` (jiff's friendly
//! format, ISO 8601 `"PT30S"` too), or a bare TOML integer counting
//! seconds. A day is 24 hours and a week 7 days. It prints in its largest
//! whole unit (`180d`, `2h`, `90s`), which reads back to the same value.
//!
//! Keys that used to be plain numbers (`timeout_seconds`,
//! `retry_backoff_ms`) stay accepted under their old names with their old
//! unit; [`one_spelling`] settles a key and its older spelling.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// A length of time from the configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigDuration(pub Duration);

/// What the error messages offer as examples.
const EXAMPLES: &str = "\"30s\", \"2m\", \"500ms\", \"1h 30m\" or \"7d\"";

/// Units for [`fmt::Display`], largest first, in nanoseconds.
const UNITS: [(&str, u128); 8] = [
    ("w", 604_800_000_000_000),
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

impl ConfigDuration {
    /// `seconds` seconds.
    pub const fn from_secs(seconds: u64) -> ConfigDuration {
        ConfigDuration(Duration::from_secs(seconds))
    }

    /// `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> ConfigDuration {
        ConfigDuration(Duration::from_millis(millis))
    }

    /// `days` days of 24 hours.
    pub const fn days(days: u64) -> ConfigDuration {
        ConfigDuration::from_secs(days * 86_400)
    }

    /// The standard library's duration.
    pub const fn as_duration(self) -> Duration {
        self.0
    }

    /// As jiff's signed duration, for arithmetic on timestamps; saturates
    /// at jiff's largest.
    pub fn as_signed(self) -> jiff::SignedDuration {
        jiff::SignedDuration::try_from(self.0).unwrap_or(jiff::SignedDuration::MAX)
    }
}

impl From<ConfigDuration> for Duration {
    fn from(duration: ConfigDuration) -> Duration {
        duration.0
    }
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        if nanos == 0 {
            return f.write_str("0s");
        }
        let (unit, size) = UNITS
            .into_iter()
            .find(|(_, size)| nanos.is_multiple_of(*size))
            .expect("every duration is a whole number of nanoseconds");
        write!(f, "{}{unit}", nanos / size)
    }
}

impl FromStr for ConfigDuration {
    type Err = String;

    /// Reads `"30s"`, `"1h 30m"`, `"7d"`, …; not a bare number (a string
    /// without a unit is more likely a mistake than seconds).
    fn from_str(text: &str) -> Result<ConfigDuration, String> {
        let text = text.trim();
        let invalid =
            |why: &str| format!("expected a duration such as {EXAMPLES}, found \"{text}\"{why}");
        // SignedDuration reads hours and smaller exactly, up to i64 seconds;
        // a jiff::Span is needed for days and weeks, counted as 24 hours.
        let signed = jiff::SignedDuration::from_str(text).or_else(|_| {
            let span = jiff::Span::from_str(text).map_err(|_| invalid(""))?;
            span.to_duration(jiff::SpanRelativeTo::days_are_24_hours())
                .map_err(|_| invalid(" (months and years have no fixed length)"))
        })?;
        Duration::try_from(signed)
            .map(ConfigDuration)
            .map_err(|_| invalid(" (a duration cannot be negative)"))
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ConfigDuration, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}

/// A string with a unit, or a whole number of seconds.
struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = ConfigDuration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a duration such as {EXAMPLES}, or a number of seconds")
    }

    fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<ConfigDuration, E> {
        Ok(ConfigDuration::from_secs(seconds))
    }

    fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<ConfigDuration, E> {
        u64::try_from(seconds)
            .map(ConfigDuration::from_secs)
            .map_err(|_| E::custom(format!("a duration cannot be negative, found {seconds}")))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<ConfigDuration, E> {
        text.parse().map_err(E::custom)
    }
}

/// Settles a duration key that also has an older spelling (`timeout` and
/// `timeout_seconds`): whichever was given, and an error naming both when
/// both were. `old` is already converted from its unit.
pub(crate) fn one_spelling(
    key: &str,
    value: Option<ConfigDuration>,
    old_key: &str,
    old: Option<ConfigDuration>,
) -> Result<Option<ConfigDuration>, String> {
    match (value, old) {
        (Some(_), Some(_)) => Err(format!(
            "`{key}` and `{old_key}` are the same setting (`{old_key}` is the older spelling); give only `{key}`"
        )),
        (value, old) => Ok(value.or(old)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Duration, String> {
        text.parse::<ConfigDuration>().map(|d| d.0)
    }

    fn secs(seconds: u64) -> Result<Duration, String> {
        Ok(Duration::from_secs(seconds))
    }

    /// Everything the source and daemon keys took before (jiff's
    /// SignedDuration): same values.
    #[test]
    fn the_old_source_and_daemon_spellings_read_the_same() {
        assert_eq!(parse("30s"), secs(30));
        assert_eq!(parse("2m"), secs(120));
        assert_eq!(parse("1h 30m"), secs(5400));
        assert_eq!(parse("1h30m"), secs(5400));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2 hours"), secs(7200));
        assert_eq!(parse("PT30S"), secs(30));
        assert_eq!(parse("10m"), secs(600));
        assert_eq!(parse("0s"), secs(0));
    }

    /// Everything the state keys took before (a whole number and s, m, h,
    /// d or w, maybe with spaces around): same values.
    #[test]
    fn the_old_state_spellings_read_the_same() {
        assert_eq!(parse("90s"), secs(90));
        assert_eq!(parse("30m"), secs(1800));
        assert_eq!(parse("12h"), secs(43_200));
        assert_eq!(parse("7d"), secs(604_800));
        assert_eq!(parse("180d"), secs(15_552_000));
        assert_eq!(parse("2w"), secs(1_209_600));
        assert_eq!(parse(" 7 d "), secs(604_800));
        assert_eq!(parse("120m"), secs(7200));
    }

    #[test]
    fn days_and_weeks_combine_with_smaller_units() {
        assert_eq!(parse("1d 12h"), secs(129_600));
        assert_eq!(parse("1w2d"), secs(777_600));
        assert_eq!(parse("P7D"), secs(604_800));
    }

    #[test]
    fn mistakes_say_what_is_expected() {
        for text in ["7 dayz", "d", "soon", "90", "", "7D"] {
            let error = parse(text).unwrap_err();
            assert!(
                error.starts_with("expected a duration such as \"30s\""),
                "{text}: {error}"
            );
        }
        assert!(parse("-5s").unwrap_err().contains("cannot be negative"));
        assert!(parse("1mo").unwrap_err().contains("no fixed length"));
    }

    #[test]
    fn it_prints_in_its_largest_whole_unit_and_reads_back() {
        for (text, shown) in [
            ("7d", "1w"),
            ("180d", "180d"),
            ("90s", "90s"),
            ("120m", "2h"),
            ("14d", "2w"),
            ("250ms", "250ms"),
            ("1.5s", "1500ms"),
            ("0s", "0s"),
            ("1h 30m", "90m"),
        ] {
            let duration: ConfigDuration = text.parse().unwrap();
            assert_eq!(duration.to_string(), shown, "{text}");
            assert_eq!(shown.parse::<ConfigDuration>(), Ok(duration), "{shown}");
        }
    }

    #[derive(Debug, Deserialize)]
    struct Keys {
        wait: ConfigDuration,
    }

    fn toml(text: &str) -> Result<Duration, String> {
        toml::from_str::<Keys>(text)
            .map(|keys| keys.wait.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn toml_takes_strings_and_whole_seconds() {
        assert_eq!(toml("wait = \"2w\""), secs(1_209_600));
        assert_eq!(toml("wait = 90"), secs(90));
        assert_eq!(toml("wait = 0"), secs(0));
        let error = toml("wait = -1").unwrap_err();
        assert!(error.contains("cannot be negative"), "{error}");
        let error = toml("wait = 1.5").unwrap_err();
        assert!(error.contains("or a number of seconds"), "{error}");
        let error = toml("wait = \"soon\"").unwrap_err();
        assert!(
            error.contains("line 1") && error.contains("found \"soon\""),
            "{error}"
        );
    }

    #[test]
    fn a_key_and_its_older_spelling() {
        let ten = Some(ConfigDuration::from_secs(10));
        let old = Some(ConfigDuration::from_millis(500));
        assert_eq!(one_spelling("t", ten, "t_ms", None), Ok(ten));
        assert_eq!(one_spelling("t", None, "t_ms", old), Ok(old));
        assert_eq!(one_spelling("t", None, "t_ms", None), Ok(None));
        let error = one_spelling("timeout", ten, "timeout_seconds", ten).unwrap_err();
        assert!(error.contains("`timeout` and `timeout_seconds`"), "{error}");
    }

    #[test]
    fn conversions() {
        assert_eq!(ConfigDuration::days(3).to_string(), "3d");
        assert_eq!(
            ConfigDuration::from_millis(1500).as_duration(),
            Duration::from_millis(1500)
        );
        assert_eq!(
            ConfigDuration::days(1).as_signed(),
            jiff::SignedDuration::from_hours(24)
        );
        assert_eq!(
            ConfigDuration(Duration::MAX).as_signed(),
            jiff::SignedDuration::MAX
        );
    }
}
