//! The one launcher of the binary, `util::gw_std` (and `util::gw` on it):
//! it drops the test machine's `GROUPWARDEN_*` and `AZURE_*` variables and
//! nothing else. Checked on the command it builds, since setting variables
//! in this process would race the tests running beside it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::process::Command;

use crate::util::{binary, gw_std, remove_settings};

/// What `command` does to each variable it names: `None` removes it.
fn env_changes(command: &Command) -> BTreeMap<String, Option<String>> {
    command
        .get_envs()
        .map(|(name, value)| {
            (
                name.to_string_lossy().into_owned(),
                value.map(|v| v.to_string_lossy().into_owned()),
            )
        })
        .collect()
}

/// An environment where each of `names` is set.
fn vars(names: &[&str]) -> Vec<(OsString, OsString)> {
    names
        .iter()
        .map(|name| (OsString::from(name), OsString::from("set by the machine")))
        .collect()
}

#[test]
fn settings_from_the_environment_are_removed_and_nothing_else() {
    let mut command = Command::new(binary());
    remove_settings(
        &mut command,
        vars(&[
            "GROUPWARDEN_CONFIG",
            "GROUPWARDEN_LOG",
            "GROUPWARDEN_SOMETHING_NEW",
            "AZURE_TENANT_ID",
            "AZURE_CLIENT_SECRET",
            "AZURE_FEDERATED_TOKEN_FILE",
            "PATH",
            "HOME",
            "GROUPWARDEN",
            "MY_AZURE_TENANT_ID",
            "groupwarden_config",
        ]),
    );
    let removed: Vec<String> = env_changes(&command)
        .into_iter()
        .map(|(name, value)| {
            assert_eq!(value, None, "{name} is only ever removed");
            name
        })
        .collect();
    assert_eq!(
        removed,
        [
            "AZURE_CLIENT_SECRET",
            "AZURE_FEDERATED_TOKEN_FILE",
            "AZURE_TENANT_ID",
            "GROUPWARDEN_CONFIG",
            "GROUPWARDEN_LOG",
            "GROUPWARDEN_SOMETHING_NEW",
        ]
    );
}

#[cfg(unix)]
#[test]
fn names_that_are_not_utf8_are_still_matched() {
    use std::os::unix::ffi::OsStringExt;
    let name = OsString::from_vec(b"AZURE_\xff".to_vec());
    let mut command = Command::new(binary());
    remove_settings(&mut command, [(name.clone(), OsString::new())]);
    let changes: Vec<_> = command.get_envs().collect();
    assert_eq!(changes, [(name.as_os_str(), None)]);
}

#[test]
fn the_launcher_removes_every_setting_of_this_process_and_runs_in_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let command = gw_std(dir.path());
    assert_eq!(command.get_program(), binary());
    assert_eq!(command.get_current_dir(), Some(dir.path()));
    let changes = env_changes(&command);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("GROUPWARDEN_") || name.starts_with("AZURE_") {
            assert_eq!(
                changes.get(&*name),
                Some(&None),
                "{name} reaches the binary"
            );
        }
    }
    assert!(changes.values().all(Option::is_none), "{changes:?}");
}

/// The removal comes first, so a variable a test sets reaches the binary:
/// here a config file that is not there, which `validate` reports.
#[test]
fn a_variable_a_test_sets_wins_over_the_removal() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.toml");
    let mut command = gw_std(dir.path());
    remove_settings(&mut command, vars(&["GROUPWARDEN_CONFIG"]));
    command.arg("validate").env("GROUPWARDEN_CONFIG", &bogus);
    assert_eq!(
        env_changes(&command).get("GROUPWARDEN_CONFIG"),
        Some(&Some(bogus.display().to_string()))
    );
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("cannot read config file {}", bogus.display())),
        "{stdout}"
    );
}
