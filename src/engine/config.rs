//! The `[rules]` section of the configuration.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::duration::ConfigDuration;

/// Which rules run and with which parameters.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// Folder of `*.rhai` rules. Default: `./rules`. `--rules` overrides it.
    pub dir: Option<PathBuf>,
    /// Rule ids that do not run.
    #[serde(default)]
    pub disabled: Vec<String>,
    /// Parameter overrides per rule id: `[rules.params.inactive-groups] days = 60`.
    #[serde(default)]
    pub params: BTreeMap<String, toml::Table>,
    /// Rhai operations one rule may spend on one row before it is stopped
    /// (default 100000, a few milliseconds). At least 1: Rhai reads 0 as
    /// "unlimited", which a runaway rule must never get.
    #[serde(default, deserialize_with = "at_least_one")]
    pub max_operations: Option<u64>,
    /// Wall time one rule may spend on one row before it is stopped
    /// (default 50ms): operations alone do not bound a rule whose
    /// operations are slow (a growing array is copied and measured).
    #[serde(default, deserialize_with = "some_time")]
    pub max_time_per_row: Option<ConfigDuration>,
    /// Findings one rule may return for one row (default 100); more make
    /// the row a rule error.
    #[serde(default, deserialize_with = "some_findings")]
    pub max_findings_per_row: Option<usize>,
    /// After this many rows in a row over its limits, a rule is disabled
    /// for the rest of the scan (default 100; 0: never).
    pub disable_after_limit_errors: Option<u64>,
    /// Share of rows, from 0 (the default: off) to 1, whose fast-path
    /// answers are checked: those rows (every Nth by report line, N =
    /// 1/share) run in the interpreter too, and any difference is a rule
    /// error naming the rule and the line. `0.001` checks one row in a
    /// thousand.
    #[serde(default, deserialize_with = "share")]
    pub verify_fast_path: f64,
}

fn share<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let share = <f64 as serde::Deserialize>::deserialize(deserializer)?;
    if !(0.0..=1.0).contains(&share) {
        return Err(serde::de::Error::custom(format!(
            "verify_fast_path = {share} is not a share of rows: give a number from 0 (off) to 1 (every row)"
        )));
    }
    Ok(share)
}

fn some_time<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<ConfigDuration>, D::Error> {
    match ConfigDuration::deserialize(deserializer)? {
        time if time.as_duration().is_zero() => Err(serde::de::Error::custom(
            "max_time_per_row = 0 would stop every rule at once; give a time (the default is \"50ms\")",
        )),
        time => Ok(Some(time)),
    }
}

fn some_findings<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<usize>, D::Error> {
    match <usize as serde::Deserialize>::deserialize(deserializer)? {
        0 => Err(serde::de::Error::custom(
            "max_findings_per_row = 0 would make every finding an error; give a number (the default is 100)",
        )),
        n => Ok(Some(n)),
    }
}

fn at_least_one<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    match <u64 as serde::Deserialize>::deserialize(deserializer)? {
        0 => Err(serde::de::Error::custom(
            "max_operations = 0 would mean no limit at all; give a number of operations (the default is 100000)",
        )),
        n => Ok(Some(n)),
    }
}

/// The limits of the rule sandbox.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Rhai operations one rule may spend on one row (or one tenant call)
    /// before it is stopped with an error.
    pub max_operations: u64,
    /// How deep function calls may nest.
    pub max_call_levels: usize,
    /// Longest string a rule may build, in bytes.
    pub max_string_size: usize,
    /// Most elements an array built by a rule may hold.
    pub max_array_size: usize,
    /// Most entries a map built by a rule may hold.
    pub max_map_size: usize,
    /// Wall time one rule may spend on one row (checked every
    /// [`crate::engine::sandbox::CLOCK_EVERY_OPERATIONS`] operations).
    pub max_time_per_row: Duration,
    /// Findings one rule may return for one row.
    pub max_findings_per_row: usize,
    /// Rows in a row over its limits after which a rule is disabled for
    /// the rest of the scan; 0: never.
    pub disable_after_limit_errors: u64,
    /// `print`/`debug` lines shown per rule per scan; the rest are counted.
    pub max_print_lines_per_rule: u64,
    /// `print`/`debug` lines shown per scan, all rules together.
    pub max_print_lines_per_scan: u64,
    /// Characters of one `print`/`debug` line shown.
    pub max_print_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 100_000,
            max_call_levels: 32,
            max_string_size: 64 * 1024,
            max_array_size: 10_000,
            max_map_size: 10_000,
            max_time_per_row: Duration::from_millis(50),
            max_findings_per_row: 100,
            disable_after_limit_errors: 100,
            max_print_lines_per_rule: 20,
            max_print_lines_per_scan: 200,
            max_print_chars: 500,
        }
    }
}

impl RulesConfig {
    /// The default limits, with those the configuration sets replaced.
    pub fn limits(&self) -> Limits {
        let mut limits = Limits::default();
        if let Some(max) = self.max_operations {
            limits.max_operations = max;
        }
        if let Some(time) = self.max_time_per_row {
            limits.max_time_per_row = time.as_duration();
        }
        if let Some(max) = self.max_findings_per_row {
            limits.max_findings_per_row = max;
        }
        if let Some(after) = self.disable_after_limit_errors {
            limits.disable_after_limit_errors = after;
        }
        limits
    }

    /// Every how many report lines `verify_fast_path` checks a row; 0
    /// when it is off.
    pub fn verify_fast_path_every(&self) -> u64 {
        if self.verify_fast_path > 0.0 {
            // At most 2^64 - 1, however small the share (`as` saturates).
            ((1.0 / self.verify_fast_path).round() as u64).max(1)
        } else {
            0
        }
    }
}
