//! Hostile rules stay bounded: in time (operations and a wall-time
//! deadline, then disabled), in memory (sizes, findings per row) and in
//! output (`print` and `debug`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::util::*;
use tempfile::TempDir;

/// A rule file with the metadata every rule needs and `body` after it.
fn rule(dir: &Path, id: &str, body: &str) {
    let text = format!(
        "const TITLE = \"{id}\";\nconst SEVERITY = \"low\";\nconst DESCRIPTION = \"A hostile rule.\";\n{body}\n"
    );
    write(dir, &format!("rules/{id}.rhai"), &text);
}

/// A rules folder holding the bundled rules and the hostile ones given.
fn rules_with(dir: &Path, hostile: &[(&str, &str)]) -> PathBuf {
    for entry in std::fs::read_dir(bundled_rules()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rhai") {
            let name = path.file_name().unwrap().to_str().unwrap();
            std::fs::create_dir_all(dir.join("rules")).unwrap();
            std::fs::copy(&path, dir.join("rules").join(name)).unwrap();
        }
    }
    for (id, body) in hostile {
        rule(dir, id, body);
    }
    dir.join("rules")
}

/// `groupwarden scan` of `report_text` with `rules` and `config`, as jsonl.
fn scan(dir: &Path, rules: &Path, config: &str, report_text: &str) -> std::process::Output {
    let input = write(dir, "report.csv", report_text);
    let config = write(dir, "groupwarden.toml", config);
    gw(dir)
        .args(["scan", "--config"])
        .arg(&config)
        .args(["--no-state", "--format", "jsonl", "--input"])
        .arg(&input)
        .arg("--rules")
        .arg(rules)
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap()
}

/// The findings of rules other than `except`, as (rule, key) pairs.
fn findings_except(output: &std::process::Output, except: &[&str]) -> Vec<(String, String)> {
    findings(output)
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_owned(),
                f["key"].as_str().unwrap().to_owned(),
            )
        })
        .filter(|(rule, _)| !except.contains(&rule.as_str()))
        .collect()
}

fn rows(count: usize) -> String {
    let rows: Vec<String> = (0..count)
        .map(|i| {
            Group {
                name: &format!("Group {i}"),
                owner: if i % 3 == 0 { "" } else { "o@contoso.com" },
                external: &(i % 20).to_string(),
                id: &format!("{i:08x}-0000-4000-8000-000000000000"),
                ..Group::default()
            }
            .csv()
        })
        .collect();
    report(&rows)
}

const GROWING_ARRAY: &str = "fn check(row) { let a = []; loop { a.push(a.len()); } }";
const BUSY_LOOP: &str = "fn check(row) { let x = 0; loop { x += 1; } }";

#[test]
fn runaway_rules_over_1000_rows_finish_in_seconds_and_the_other_rules_are_intact() {
    let dir = TempDir::new().unwrap();
    let report_text = rows(1000);
    let plain = scan(
        dir.path(),
        &rules_with(&dir.path().join("plain"), &[]),
        "",
        &report_text,
    );
    assert_eq!(plain.status.code(), Some(0), "{}", stderr(&plain));

    let rules = rules_with(
        &dir.path().join("hostile"),
        &[("growing-array", GROWING_ARRAY), ("busy-loop", BUSY_LOOP)],
    );
    // Operations would stop the busy loop long after the deadline.
    let config = "[rules]\nmax_operations = 1000000000\nmax_time_per_row = \"20ms\"\ndisable_after_limit_errors = 20\n";
    let started = Instant::now();
    let out = scan(dir.path(), &rules, config, &report_text);
    let took = started.elapsed();
    let log = stderr(&out);
    assert!(took < Duration::from_secs(30), "took {took:?}: {log}");
    assert_eq!(
        findings_except(&out, &["growing-array", "busy-loop"]),
        findings_except(&plain, &[]),
        "{log}"
    );
    assert!(!findings_except(&plain, &[]).is_empty());
    // Each limit error names the rule's line and column and the limit.
    assert!(
        log.contains("busy-loop.rhai:4:1: ")
            && log.contains("stopped after 20ms on one row ([rules] max_time_per_row)"),
        "{log}"
    );
    assert!(
        log.contains("growing-array.rhai:4:1: ")
            // Whichever comes first: the array's size or (growing is slow,
            // Rhai measures the array on every push) the deadline.
            && (log.contains("Size of array/BLOB is over the sandbox limit")
                || log.contains("stopped after 20ms")),
        "{log}"
    );
    for id in ["growing-array", "busy-loop"] {
        assert!(
            log.contains(&format!("rule `{id}` was disabled after too many rows in a row over its limits; its findings for the rest of the report are missing")),
            "{log}"
        );
    }
    // Every row the rules did not finish is a rule error: 2 rules × 1000 rows.
    assert!(log.contains("2000 rule errors"), "{log}");
}

#[test]
fn the_default_limits_stop_a_growing_array_and_a_busy_loop() {
    let dir = TempDir::new().unwrap();
    let rules = rules_with(
        dir.path(),
        &[("growing-array", GROWING_ARRAY), ("busy-loop", BUSY_LOOP)],
    );
    let out = scan(dir.path(), &rules, "", &rows(3));
    let log = stderr(&out);
    assert!(log.contains("busy-loop.rhai:4:1: "), "{log}");
    assert!(log.contains("(somewhere in `check`"), "{log}");
    assert!(
        log.contains("Too many operations: more than 100000 on one row ([rules] max_operations)")
            || log.contains("stopped after 50ms on one row"),
        "{log}"
    );
    assert!(log.contains("growing-array.rhai:4:1: "), "{log}");
    assert!(log.contains("6 rule errors"), "{log}");
}

#[test]
fn strings_and_maps_over_the_size_limits_are_rule_errors_with_line_and_column() {
    let dir = TempDir::new().unwrap();
    let rules = rules_with(
        dir.path(),
        &[
            (
                "long-string",
                "fn grow(s) { loop { s += s; } }\nfn check(row) {\n    grow(\"x\")\n}",
            ),
            (
                "big-map",
                "fn check(row) {\n    let m = #{};\n    for i in 0..20000 { m[`k${i}`] = i; }\n}",
            ),
        ],
    );
    let out = scan(dir.path(), &rules, "", &rows(2));
    let log = stderr(&out);
    assert!(
        log.contains("long-string.rhai:5:1: ")
            && log.contains("Length of string is over the sandbox limit"),
        "{log}"
    );
    assert!(
        log.contains("big-map.rhai:4:1: ")
            && (log.contains("Size of object map is over the sandbox limit")
                || log.contains("stopped after 50ms")),
        "{log}"
    );
}

#[test]
fn a_print_flood_leaves_a_few_lines_and_a_count() {
    let dir = TempDir::new().unwrap();
    let rules = rules_with(
        dir.path(),
        &[
            (
                "print-flood",
                "fn check(row) {\n    let s = \"\\u001b[2J\";\n    for i in 0..12 { s += s; }\n    loop { print(s); debug(s); }\n}",
            ),
            ("chatty", "fn check(row) { print(`row ${row.line}`); }"),
        ],
    );
    let out = scan(dir.path(), &rules, "", &rows(10));
    let log = stderr(&out);
    assert!(log.len() < 2 * 1024 * 1024, "{} bytes of stderr", log.len());
    assert!(!log.contains('\u{1b}'), "raw escape reached stderr");
    assert!(
        log.contains("rule `print-flood`: further print/debug output is not shown"),
        "{log}"
    );
    assert!(
        log.contains("rule `print-flood` printed") && log.contains("more lines, not shown"),
        "{log}"
    );
}

#[test]
fn ten_thousand_findings_per_row_are_a_rule_error_in_bounded_memory() {
    let dir = TempDir::new().unwrap();
    let rules = rules_with(
        dir.path(),
        &[(
            "many-findings",
            // One call makes them: pushing one at a time, Rhai's size
            // checks would cost more than the deadline allows.
            "fn check(row) {\n    let all = [];\n    all.pad(10000, \"found\");\n    all\n}",
        )],
    );
    // Every row tried: the cap, not disabling, bounds the memory.
    let config = write(
        dir.path(),
        "groupwarden.toml",
        "[rules]\ndisable_after_limit_errors = 0\n",
    );
    let input = write(dir.path(), "report.csv", &rows(1000));
    let mut command = match Path::new("/usr/bin/time").exists() {
        true => {
            let mut command = std::process::Command::new("/usr/bin/time");
            command.args(["-f", "peak-rss-kib=%M"]).arg(binary());
            command
        }
        false => std::process::Command::new(binary()),
    };
    remove_settings(&mut command, std::env::vars_os());
    let out = command
        .current_dir(dir.path())
        .args(["scan", "--config"])
        .arg(&config)
        .args(["--no-state", "--format", "jsonl", "--input"])
        .arg(&input)
        .arg("--rules")
        .arg(&rules)
        .output()
        .unwrap();
    let log = stderr(&out);
    assert!(
        log.contains("many-findings.rhai:4:1: `check` returned 10000 findings for one row; at most 100 are allowed ([rules] max_findings_per_row)"),
        "{log}"
    );
    assert!(!findings(&out).iter().any(|f| f["rule"] == "many-findings"));
    if let Some(kib) = log
        .lines()
        .find_map(|l| l.strip_prefix("peak-rss-kib="))
        .and_then(|k| k.trim().parse::<u64>().ok())
    {
        assert!(kib < 300 * 1024, "peak RSS {kib} KiB");
    }
}

#[test]
fn limits_of_zero_are_refused() {
    let dir = TempDir::new().unwrap();
    let rules = rules_with(dir.path(), &[]);
    for (key, value) in [
        ("max_time_per_row", "\"0s\""),
        ("max_findings_per_row", "0"),
    ] {
        let out = scan(
            dir.path(),
            &rules,
            &format!("[rules]\n{key} = {value}\n"),
            &rows(1),
        );
        assert_eq!(out.status.code(), Some(2), "{key}");
        assert!(
            stderr(&out).contains(&format!("{key} = 0")),
            "{}",
            stderr(&out)
        );
    }
}
