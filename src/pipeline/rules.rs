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
    let dir = rules_to_read(dir_flag, loaded);
    let engine = build_engine(&config.limits());
    let rules = RuleSet::load(&engine, &dir, config)?;
    Ok((engine, rules))
}

/// The rules folder to write to (`rules new`): `dir_flag`, else the
/// config's `rules.dir`, else `./rules`.
pub fn rules_dir(dir_flag: Option<&Path>, loaded: &LoadedConfig) -> PathBuf {
    match (dir_flag, &loaded.config.rules.dir) {
        (Some(dir), _) => dir.to_owned(),
        (None, Some(dir)) => loaded.resolve(dir),
        (None, None) => PathBuf::from("rules"),
    }
}

/// The rules folder to read: as [`rules_dir`], but when neither the flag
/// nor the config names one and there is no `./rules`, the rules built
/// into the binary (written once to a private temporary folder, see
/// [`BUILT_IN`]).
pub(crate) fn rules_to_read(dir_flag: Option<&Path>, loaded: &LoadedConfig) -> PathBuf {
    let dir = rules_dir(dir_flag, loaded);
    if dir_flag.is_none() && loaded.config.rules.dir.is_none() && !dir.is_dir() {
        return built_in_dir().unwrap_or(dir);
    }
    dir
}

/// The bundled rules and their tests, built into the binary: a scan in an
/// empty folder runs them, and `groupwarden rules eject DIR` writes them
/// out to edit.
pub(crate) const BUILT_IN: &[(&str, &str)] = &[
    (
        "deleted-with-storage.rhai",
        include_str!("../../rules/deleted-with-storage.rhai"),
    ),
    (
        "deleted-with-storage.test.toml",
        include_str!("../../rules/deleted-with-storage.test.toml"),
    ),
    (
        "high-external-members.rhai",
        include_str!("../../rules/high-external-members.rhai"),
    ),
    (
        "high-external-members.test.toml",
        include_str!("../../rules/high-external-members.test.toml"),
    ),
    (
        "inactive-groups.rhai",
        include_str!("../../rules/inactive-groups.rhai"),
    ),
    (
        "inactive-groups.test.toml",
        include_str!("../../rules/inactive-groups.test.toml"),
    ),
    (
        "ownerless-groups.rhai",
        include_str!("../../rules/ownerless-groups.rhai"),
    ),
    (
        "ownerless-groups.test.toml",
        include_str!("../../rules/ownerless-groups.test.toml"),
    ),
    (
        "single-owner-groups.rhai",
        include_str!("../../rules/single-owner-groups.rhai"),
    ),
    (
        "single-owner-groups.test.toml",
        include_str!("../../rules/single-owner-groups.test.toml"),
    ),
];

/// The folder the built-in rules are read from: a private temporary
/// folder written once per process and removed when it ends.
fn built_in_dir() -> std::io::Result<PathBuf> {
    static DIR: std::sync::OnceLock<Result<tempfile::TempDir, String>> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("groupwarden-built-in-rules-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        eject(dir.path(), false).map_err(|e| e.to_string())?;
        Ok(dir)
    });
    match dir {
        Ok(dir) => Ok(dir.path().to_owned()),
        Err(error) => Err(std::io::Error::other(error.clone())),
    }
}

/// Whether `dir` is where the built-in rules were written.
pub(crate) fn is_built_in(dir: &Path) -> bool {
    dir.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("groupwarden-built-in-rules-"))
}

/// Writes the built-in rules and their tests into `dir` (created if need
/// be); an existing file is an error unless `overwrite`.
pub(crate) fn eject(dir: &Path, overwrite: bool) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (name, text) in BUILT_IN {
        let path = dir.join(name);
        if path.exists() && !overwrite {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists; give --force to overwrite it", path.display()),
            ));
        }
        std::fs::write(&path, text)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_rules_are_the_bundled_folder_whole() {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let mut names: Vec<String> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let built_in: Vec<&str> = BUILT_IN.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, built_in, "add the new file to BUILT_IN");
        for (name, text) in BUILT_IN {
            assert_eq!(std::fs::read_to_string(folder.join(name)).unwrap(), *text);
        }
    }
}
