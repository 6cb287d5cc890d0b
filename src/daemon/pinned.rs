//! The configuration and rules a daemon runs with, checked and pinned.
//!
//! `groupwarden run` reads its config file at start and on SIGHUP. Each
//! time it copies the file and the rules into a private folder (one
//! "generation"), checks the copies with `validate`'s steps, and runs
//! every scan from the copies until the next successful reload. So an edit
//! on disk changes nothing until SIGHUP, and a broken edit is refused
//! while the old copies keep working. The copy of the config carries a
//! `base_dir` pointing at the original's folder, so its relative paths
//! (the report file, secrets, the state database) still lead where the
//! original's do; those files are read at each scan, not pinned.

use std::path::{Path, PathBuf};

use crate::config::{ConfigError, LoadedConfig};
use crate::pipeline::checks::{Context, STEPS, Verdict};
use crate::source::config::{ENV_CLIENT_ID, ENV_TENANT_ID, Environment, ProcessEnvironment};

use super::config::ScheduleConfig;

/// One generation of pinned configuration; its folder goes when the last
/// scan using it lets go.
#[derive(Debug)]
pub(crate) struct Pinned {
    /// The configuration as read from the original file (paths resolve
    /// against the original's folder).
    pub loaded: LoadedConfig,
    /// The copy of the config file that scans read.
    pub config_copy: PathBuf,
    /// The copy of the rules folder that scans read.
    pub rules_copy: PathBuf,
    /// The rules folder the copies came from.
    pub rules_origin: PathBuf,
    /// What the checks said, step by step, for the log.
    pub checks: Vec<(&'static str, String)>,
    folder: PathBuf,
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

impl Pinned {
    /// The `[schedule]` section; `pin` refuses a config without one.
    pub(crate) fn schedule(&self) -> &ScheduleConfig {
        self.loaded
            .config
            .schedule
            .as_ref()
            .expect("pin checks that [schedule] is there")
    }
}

/// Reads `config_path` and its rules, copies them into `folder` (created
/// here; it must not exist yet) and checks the copies. The problems name
/// the original file, rule file or config key.
pub(crate) fn pin(config_path: &Path, folder: &Path) -> Result<Pinned, Vec<String>> {
    let text = std::fs::read_to_string(config_path).map_err(|error| {
        vec![
            ConfigError::Io {
                path: config_path.to_owned(),
                error,
            }
            .to_string(),
        ]
    })?;
    let invalid = |message: String| {
        vec![
            ConfigError::Invalid {
                path: config_path.to_owned(),
                message,
            }
            .to_string(),
        ]
    };
    let config = crate::config::parse(&text).map_err(invalid)?;
    let loaded = LoadedConfig {
        config,
        path: Some(config_path.to_owned()),
    };
    let problems = daemon_problems(&loaded);
    if !problems.is_empty() {
        return Err(problems.into_iter().flat_map(invalid).collect());
    }

    let rules_origin = crate::pipeline::rules::rules_to_read(None, &loaded);
    std::fs::create_dir_all(folder).map_err(|e| vec![format!("{}: {e}", folder.display())])?;
    let mut pinned = Pinned {
        config_copy: folder.join("groupwarden.toml"),
        rules_copy: folder.join("rules"),
        rules_origin,
        loaded,
        checks: Vec::new(),
        folder: folder.to_owned(),
    };
    copy_rules(&pinned.rules_origin, &pinned.rules_copy)?;
    write_config_copy(&text, &pinned.loaded, &pinned.config_copy)
        .map_err(|e| vec![format!("{}: {e}", pinned.config_copy.display())])?;
    pinned.checks = check(&pinned)?;
    Ok(pinned)
}

/// What `groupwarden run` needs beyond what `scan` needs.
fn daemon_problems(loaded: &LoadedConfig) -> Vec<String> {
    let mut problems = Vec::new();
    match &loaded.config.schedule {
        None => problems.push(
            "`schedule`: groupwarden run needs a [schedule] section with `cron` or `crons`"
                .to_owned(),
        ),
        Some(schedule) if schedule.patterns().is_empty() => problems.push(
            "`schedule.cron`: set `cron` or `crons` (for example cron = \"0 6 * * 1-5\")"
                .to_owned(),
        ),
        Some(schedule) => {
            if let Some(output) = &schedule.output {
                problems.extend(missing_folder("schedule.output", &loaded.resolve(output)));
            }
        }
    }
    let app_in_environment = [ENV_TENANT_ID, ENV_CLIENT_ID]
        .iter()
        .all(|name| ProcessEnvironment.var(name).is_some());
    if loaded.config.source.is_none() && !app_in_environment {
        problems.push(format!(
            "`source`: groupwarden run needs a [source] to scan (a report file, or Microsoft Graph), \
             or ${ENV_TENANT_ID} and ${ENV_CLIENT_ID} set (see docs/graph.md)"
        ));
    }
    problems
}

fn missing_folder(key: &str, file: &Path) -> Option<String> {
    let folder = file.parent().filter(|p| !p.as_os_str().is_empty())?;
    (!folder.is_dir()).then(|| format!("`{key}`: the folder {} does not exist", folder.display()))
}

/// Copies the `*.rhai` files (all that `RuleSet::load` reads).
fn copy_rules(origin: &Path, copy: &Path) -> Result<(), Vec<String>> {
    let fail =
        |path: &Path, e: std::io::Error| vec![format!("rules folder {}: {e}", path.display())];
    std::fs::create_dir_all(copy).map_err(|e| fail(copy, e))?;
    for entry in std::fs::read_dir(origin).map_err(|e| fail(origin, e))? {
        let path = entry.map_err(|e| fail(origin, e))?.path();
        if path.extension().is_some_and(|e| e == "rhai") && path.is_file() {
            let name = path.file_name().expect("a file has a name");
            std::fs::copy(&path, copy.join(name)).map_err(|e| fail(&path, e))?;
        }
    }
    Ok(())
}

/// The original text with `base_dir` set to the folder the original's
/// relative paths start from.
fn write_config_copy(text: &str, loaded: &LoadedConfig, copy: &Path) -> std::io::Result<()> {
    let invalid = |message: String| std::io::Error::new(std::io::ErrorKind::InvalidData, message);
    let mut table: toml::Table = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let base = match loaded.base_folder() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => PathBuf::from("."),
    };
    let base = std::path::absolute(base)?;
    let base = base
        .to_str()
        .ok_or_else(|| invalid(format!("{} is not UTF-8", base.display())))?;
    table.insert("base_dir".into(), toml::Value::String(base.to_owned()));
    let copied = toml::to_string(&table).map_err(|e| invalid(e.to_string()))?;
    std::fs::write(copy, copied)
}

/// `validate`'s steps (rules, source, and whatever later components add)
/// over the copies; the config step is done already.
fn check(pinned: &Pinned) -> Result<Vec<(&'static str, String)>, Vec<String>> {
    let mut context = Context {
        config_flag: pinned.loaded.path.clone(),
        rules_flag: Some(pinned.rules_copy.clone()),
        loaded: Some(pinned.loaded.clone()),
    };
    let copy = pinned.rules_copy.display().to_string();
    let origin = pinned.rules_origin.display().to_string();
    let mut summaries = Vec::new();
    let mut problems = Vec::new();
    for step in STEPS.iter().filter(|step| step.name != "config") {
        match (step.run)(&mut context) {
            Verdict::Ok(summary) => summaries.push((step.name, summary.replace(&copy, &origin))),
            Verdict::Skipped(reason) => summaries.push((step.name, format!("skipped: {reason}"))),
            Verdict::Problems(found) => {
                problems.extend(found.into_iter().map(|p| p.replace(&copy, &origin)))
            }
        }
    }
    if problems.is_empty() {
        Ok(summaries)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = "const TITLE = \"Empty\";\nconst SEVERITY = \"low\";\n\
                        const DESCRIPTION = \"No members.\";\n\
                        fn check(row) { if row.member_count == 0 { return \"no members\"; } }\n";

    fn setup(config: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rules")).unwrap();
        std::fs::write(dir.path().join("rules/empty.rhai"), RULE).unwrap();
        std::fs::write(dir.path().join("groupwarden.toml"), config).unwrap();
        dir
    }

    const GOOD: &str = "[rules]\ndir = \"rules\"\n[source]\ntype = \"file\"\npath = \"report.csv\"\n\
                        [schedule]\ncron = \"0 6 * * *\"\n";

    #[test]
    fn the_copy_resolves_paths_against_the_original_folder() {
        let dir = setup(GOOD);
        let pinned = pin(
            &dir.path().join("groupwarden.toml"),
            &dir.path().join("pin/1"),
        )
        .unwrap();
        let copy = LoadedConfig::load(Some(&pinned.config_copy)).unwrap();
        let original = std::path::absolute(dir.path()).unwrap();
        assert_eq!(
            copy.resolve(Path::new("report.csv")),
            original.join("report.csv")
        );
        assert!(pinned.rules_copy.join("empty.rhai").is_file());
        assert_eq!(pinned.rules_origin, dir.path().join("rules"));
    }

    #[test]
    fn the_folder_goes_with_the_last_user() {
        let dir = setup(GOOD);
        let folder = dir.path().join("pin/1");
        let pinned = pin(&dir.path().join("groupwarden.toml"), &folder).unwrap();
        assert!(folder.is_dir());
        drop(pinned);
        assert!(!folder.exists());
    }

    #[test]
    fn a_broken_rule_is_named_by_its_original_path() {
        let dir = setup(GOOD);
        std::fs::write(
            dir.path().join("rules/broken.rhai"),
            "fn check(row) { row. }\n",
        )
        .unwrap();
        let problems = pin(
            &dir.path().join("groupwarden.toml"),
            &dir.path().join("pin/1"),
        )
        .unwrap_err();
        let text = problems.join("\n");
        assert!(
            text.contains(&dir.path().join("rules/broken.rhai").display().to_string()),
            "{text}"
        );
        assert!(!text.contains("pin/1"), "{text}");
    }

    #[test]
    fn a_config_without_schedule_or_source_names_both() {
        let dir = setup("[rules]\ndir = \"rules\"\n");
        let problems = pin(
            &dir.path().join("groupwarden.toml"),
            &dir.path().join("pin/1"),
        )
        .unwrap_err();
        let text = problems.join("\n");
        assert!(text.contains("`schedule`"), "{text}");
        assert!(text.contains("`source`"), "{text}");
    }

    #[test]
    fn a_rule_parameter_problem_names_the_key() {
        let dir = setup(&format!("{GOOD}[rules.params.empty]\nnope = 1\n"));
        let problems = pin(
            &dir.path().join("groupwarden.toml"),
            &dir.path().join("pin/1"),
        )
        .unwrap_err();
        let text = problems.join("\n");
        assert!(text.contains("rules.params.empty.nope"), "{text}");
    }

    #[test]
    fn an_output_folder_that_does_not_exist_is_refused() {
        let dir = setup(&format!("{GOOD}output = \"missing/findings.json\"\n"));
        let problems = pin(
            &dir.path().join("groupwarden.toml"),
            &dir.path().join("pin/1"),
        )
        .unwrap_err();
        assert!(problems[0].contains("`schedule.output`"), "{problems:?}");
    }
}
