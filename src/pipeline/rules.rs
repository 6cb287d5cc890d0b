//! Where the rules come from, and loading them into a sandboxed engine.

use std::path::{Path, PathBuf};

use rhai::Engine;

use crate::config::LoadedConfig;
use crate::engine::rule::RuleSet;
use crate::engine::sandbox::build_engine;

use super::Error;

/// The sandboxed engine and the rules of `dir_flag`, else the config's
/// `rules.dir`, else `./rules`.
pub fn load_rules(
    dir_flag: Option<&Path>,
    loaded: &LoadedConfig,
) -> Result<(Engine, RuleSet), Error> {
    let config = &loaded.config.rules;
    let dir = rules_dir(dir_flag, loaded);
    let engine = build_engine(&config.limits());
    let rules = RuleSet::load(&engine, &dir, config)?;
    Ok((engine, rules))
}

/// The rules folder: `dir_flag`, else the config's `rules.dir`, else `./rules`.
pub fn rules_dir(dir_flag: Option<&Path>, loaded: &LoadedConfig) -> PathBuf {
    match (dir_flag, &loaded.config.rules.dir) {
        (Some(dir), _) => dir.to_owned(),
        (None, Some(dir)) => loaded.resolve(dir),
        (None, None) => PathBuf::from("rules"),
    }
}
