//! The `[rules]` section of the configuration.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 100_000,
            max_call_levels: 32,
            max_string_size: 64 * 1024,
            max_array_size: 10_000,
            max_map_size: 10_000,
        }
    }
}

impl RulesConfig {
    /// The default limits, with `max_operations` replaced when the
    /// configuration sets it.
    pub fn limits(&self) -> Limits {
        let mut limits = Limits::default();
        if let Some(max) = self.max_operations {
            limits.max_operations = max;
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
