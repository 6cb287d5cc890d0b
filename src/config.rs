//! The configuration file (`groupwarden.toml`): TOML in, validated
//! settings out.
//!
//! Each section's type lives with the component it configures (the
//! `[rules]` section in `engine::config`, …); this module only assembles
//! them and reports errors with the file, line and column. Unknown keys are
//! errors, so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::engine::config::RulesConfig;
use crate::source::config::SourceConfig;
use crate::state::config::{ExemptionConfig, StateConfig};

/// The whole configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Which rules run and their parameters.
    #[serde(default)]
    pub rules: RulesConfig,
    /// Where the report comes from (a file, or Microsoft Graph).
    pub source: Option<SourceConfig>,
    /// The tenant's directory (owners, creation dates, Teams), joined to
    /// the report's rows.
    #[serde(default)]
    pub directory: crate::source::directory::DirectoryConfig,
    /// Notification channels, one `[[notify]]` table each.
    #[serde(default, rename = "notify")]
    pub notify: Vec<crate::notify::ChannelConfig>,
    /// Where findings are remembered between scans.
    #[serde(default)]
    pub state: StateConfig,
    /// When a scan counts as failed.
    #[serde(default)]
    pub scan: crate::pipeline::scan::ScanConfig,
    /// Accepted findings: recorded as exempted, never announced, until
    /// they expire.
    #[serde(default)]
    pub exemptions: Vec<ExemptionConfig>,
    /// When `groupwarden run` scans.
    pub schedule: Option<crate::daemon::config::ScheduleConfig>,
    /// `groupwarden run`'s `/healthz` and `/metrics` endpoint.
    pub health: Option<crate::daemon::config::HealthConfig>,
    /// The folder that relative paths in this file start from, itself
    /// relative to the file's folder. Default: the file's folder.
    /// (`groupwarden run` sets it in the copy of the file it pins, so the
    /// copy's paths still point where the original's do.)
    pub base_dir: Option<PathBuf>,
    /// Many tenants from one installation: one `[[tenants]]` table each
    /// (see `docs/tenants.md`). Empty: the one tenant of `[source]`.
    #[serde(default)]
    pub tenants: Vec<crate::tenants::TenantConfig>,
    /// `[tenants_defaults]`: how the tenants are scanned (concurrency).
    #[serde(default)]
    pub tenants_defaults: crate::tenants::TenantsDefaults,
    /// `[source]` as written, kept for laying each tenant's keys over it.
    #[serde(skip)]
    pub(crate) raw_source: Option<toml::Table>,
    /// Set in a tenant's resolved configuration: the tenant's name.
    #[serde(skip)]
    pub tenant: Option<String>,
}

/// The configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {path}: {error}")]
    Io {
        /// The config file.
        path: PathBuf,
        /// Why it cannot be read.
        error: std::io::Error,
    },
    /// The file is not valid TOML, or does not fit the configuration's
    /// shape (unknown key, wrong type, missing value).
    #[error("config file {path}: {message}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// What is wrong, with its line and column.
        message: String,
    },
}

/// A loaded configuration and where it came from.
#[derive(Clone, Debug, Default)]
pub struct LoadedConfig {
    /// The settings read (all defaults when no file was read).
    pub config: Config,
    /// The file, if one was read; relative paths in it are relative to
    /// its folder.
    pub path: Option<PathBuf>,
}

/// The file read when `--config` is not given and it exists.
pub const DEFAULT_CONFIG_FILE: &str = "groupwarden.toml";

impl LoadedConfig {
    /// Reads `path`, or `./groupwarden.toml` if it exists, or defaults.
    pub fn load(path: Option<&Path>) -> Result<LoadedConfig, ConfigError> {
        let path = match path {
            Some(path) => path.to_owned(),
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => PathBuf::from(DEFAULT_CONFIG_FILE),
            None => return Ok(LoadedConfig::default()),
        };
        let text = std::fs::read_to_string(&path).map_err(|error| ConfigError::Io {
            path: path.clone(),
            error,
        })?;
        let config = parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.clone(),
            message,
        })?;
        Ok(LoadedConfig {
            config,
            path: Some(path),
        })
    }

    /// A path from the config, made relative to the config file's folder
    /// (or its `base_dir`).
    pub fn resolve(&self, relative: &Path) -> PathBuf {
        match self.base_folder() {
            Some(folder) if relative.is_relative() => folder.join(relative),
            _ => relative.to_owned(),
        }
    }

    /// Where relative paths start: `base_dir` (relative to the file's
    /// folder), else the file's folder.
    pub fn base_folder(&self) -> Option<PathBuf> {
        let folder = self.path.as_deref().and_then(Path::parent);
        match (folder, &self.config.base_dir) {
            (Some(folder), Some(base)) => Some(folder.join(base)),
            (None, Some(base)) => Some(base.clone()),
            (Some(folder), None) => Some(folder.to_owned()),
            (None, None) => None,
        }
    }
}

/// Parses configuration text; the error names line and column.
pub fn parse(text: &str) -> Result<Config, String> {
    let mut config: Config =
        toml::from_str(text).map_err(|e| crate::engine::diagnostics::toml_error(&e, text))?;
    if !config.tenants.is_empty() {
        let raw: toml::Table =
            toml::from_str(text).map_err(|e| crate::engine::diagnostics::toml_error(&e, text))?;
        crate::tenants::check(&config, &raw)?;
        config.raw_source = raw.get("source").and_then(toml::Value::as_table).cloned();
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_errors_with_line_and_column() {
        let err = parse("[rules]\ndir = \"r\"\ndisabeld = [\"x\"]\n").unwrap_err();
        assert!(err.contains("line 3, column 1"), "{err}");
        assert!(
            err.contains("unknown key `disabeld` in [rules]; did you mean `disabled`?"),
            "{err}"
        );
    }

    #[test]
    fn base_dir_moves_relative_paths() {
        let loaded = |base: Option<&str>| LoadedConfig {
            config: Config {
                base_dir: base.map(PathBuf::from),
                ..Config::default()
            },
            path: Some(PathBuf::from("/etc/gw/groupwarden.toml")),
        };
        let rules = Path::new("rules");
        assert_eq!(loaded(None).resolve(rules), Path::new("/etc/gw/rules"));
        assert_eq!(loaded(Some("/srv")).resolve(rules), Path::new("/srv/rules"));
        assert_eq!(
            loaded(Some("up")).resolve(rules),
            Path::new("/etc/gw/up/rules")
        );
        assert_eq!(
            loaded(Some("/srv")).resolve(Path::new("/abs")),
            Path::new("/abs")
        );
    }

    #[test]
    fn rule_parameters_parse() {
        let config = parse("[rules.params.inactive-groups]\ndays = 60\n").unwrap();
        assert_eq!(
            config.rules.params["inactive-groups"]["days"].as_integer(),
            Some(60)
        );
    }
}
