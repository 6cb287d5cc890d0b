//! Progress bars: drawn on a terminal (a real pseudo-terminal from
//! util-linux's `script`), never into a pipe, never beside JSON logs.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{self, bundled_rules, gw, write};
use tempfile::TempDir;

/// What a drawn bar always contains, and no other output does.
const BAR_TEXT: &str = "rows/s";

/// A report whose scan (one thread, debug build) runs well past the
/// second after which the bar appears.
fn long_report(dir: &Path) -> PathBuf {
    write(dir, "long.csv", &util::synthetic_report(150_000))
}

fn scan_args(dir: &Path, input: &Path) -> Vec<String> {
    vec![
        "scan".into(),
        "--no-state".into(),
        "--threads".into(),
        "1".into(),
        "--rules".into(),
        bundled_rules().display().to_string(),
        "--input".into(),
        input.display().to_string(),
        "--output".into(),
        dir.join("findings.jsonl").display().to_string(),
    ]
}

#[test]
fn no_progress_bytes_when_stderr_is_not_a_terminal() {
    let dir = TempDir::new().unwrap();
    let input = long_report(dir.path());
    let output = gw(dir.path())
        .args(scan_args(dir.path(), &input))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", util::stderr(&output));
    let stderr = util::stderr(&output);
    assert!(!stderr.contains(BAR_TEXT), "{stderr}");
    assert!(
        !stderr.contains('\r') && !stderr.contains('\u{1b}'),
        "{stderr:?}"
    );
}

/// Runs the binary with `args` on a pseudo-terminal, its standard input
/// the report `slow_input` with a pause of two seconds after its first
/// rows (so the scan outlasts the second after which a bar appears, on a
/// machine of any speed); what the terminal showed. `None` (skipped)
/// without `script`, unless `CI` is set.
fn on_a_terminal(dir: &Path, args: &[String], slow_input: &Path) -> Option<String> {
    let found = Command::new("script").arg("--version").output().is_ok();
    if !found {
        if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
            panic!("CI is set but util-linux's `script` is missing");
        }
        eprintln!("SKIPPED: no `script` (util-linux) for a pseudo-terminal");
        return None;
    }
    let quoted: Vec<String> = std::iter::once(util::binary().display().to_string())
        .chain(args.iter().cloned())
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    let report = format!("'{}'", slow_input.display());
    let pipeline = format!(
        "{{ head -n 2000 {report}; sleep 2; tail -n +2001 {report}; }} | {}",
        quoted.join(" ")
    );
    let mut command = Command::new("script");
    command
        .args(["--quiet", "--return", "--command"])
        .arg(pipeline)
        .arg("/dev/null")
        .current_dir(dir);
    util::remove_settings(&mut command, std::env::vars_os());
    let output = command.output().unwrap();
    let shown = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{shown}");
    Some(shown)
}

#[test]
fn on_a_terminal_a_long_scan_shows_rows_per_second_but_not_beside_json_logs() {
    let dir = TempDir::new().unwrap();
    let input = long_report(dir.path());
    let args = scan_args(dir.path(), Path::new("-"));
    let Some(shown) = on_a_terminal(dir.path(), &args, &input) else {
        return;
    };
    assert!(shown.contains(BAR_TEXT), "no bar drawn: {shown:?}");
    assert!(shown.contains("scanning"), "{shown:?}");

    let mut json = vec!["--log-format".to_owned(), "json".to_owned()];
    json.extend(args);
    let shown = on_a_terminal(dir.path(), &json, &input).unwrap();
    assert!(
        !shown.contains(BAR_TEXT),
        "a bar between JSON lines: {shown:?}"
    );
}
