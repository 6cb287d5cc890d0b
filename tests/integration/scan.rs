//! `groupwarden scan` end to end: the real binary on fixture reports.

use crate::util::*;
use predicates::prelude::*;
use tempfile::TempDir;

fn scan(dir: &TempDir, report_text: &str, extra: &[&str]) -> std::process::Output {
    let input = write(dir.path(), "report.csv", report_text);
    let rules = bundled_rules();
    let mut args = vec![
        "scan",
        "--input",
        input.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
    ];
    if !extra.contains(&"--format") {
        args.extend(["--format", "jsonl"]);
    }
    args.extend_from_slice(extra);
    gw(dir.path()).args(&args).output().unwrap()
}

fn rules_of(findings: &[serde_json::Value]) -> Vec<String> {
    findings
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_sample_report_gives_the_same_counts_as_the_duckdb_peer() {
    // Counts checked against ../shared/bench/peer_duckdb.py on this file.
    let dir = TempDir::new().unwrap();
    let out = gw(dir.path())
        .args(["scan", "--input"])
        .arg(root().join("examples/sample-report.csv"))
        .arg("--rules")
        .arg(bundled_rules())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rules = rules_of(&findings(&out));
    let count = |r: &str| rules.iter().filter(|x| *x == r).count();
    assert_eq!(count("inactive-groups"), 157);
    assert_eq!(count("deleted-with-storage"), 9);
    assert_eq!(count("high-external-members"), 8);
    assert_eq!(count("ownerless-groups"), 11);
    let summary = stderr(&out);
    assert!(
        summary.contains("305 rows read, 0 row errors, 185 findings, 0 rule errors"),
        "{summary}"
    );
}

#[test]
fn findings_carry_key_message_and_the_evidence_the_rule_read() {
    let dir = TempDir::new().unwrap();
    let row = Group {
        name: "Quiet \"Team\"",
        last_activity: "2026-08-27",
        id: "11111111-2222-3333-4444-555555555555",
        ..Default::default()
    };
    let out = scan(&dir, &report(&[row.csv()]), &[]);
    let found = findings(&out);
    assert_eq!(found.len(), 1, "{}", stdout(&out));
    let f = &found[0];
    assert_eq!(f["rule"], "inactive-groups");
    assert_eq!(f["severity"], "medium");
    assert_eq!(
        f["key"],
        "inactive-groups:11111111-2222-3333-4444-555555555555"
    );
    assert_eq!(f["group_id"], "11111111-2222-3333-4444-555555555555");
    assert_eq!(f["group_name"], "Quiet \"Team\"");
    assert_eq!(f["owner"], "owner@contoso.com");
    assert_eq!(f["line"], 2);
    assert_eq!(f["message"], "No activity for 90 days (since 2026-08-27)");
    assert_eq!(f["evidence"]["days_since_activity"], 90);
    assert_eq!(f["evidence"]["last_activity_date"], "2026-08-27");
}

#[test]
fn exactly_the_threshold_fires_and_one_day_less_does_not() {
    let dir = TempDir::new().unwrap();
    let rows = [
        Group {
            name: "A",
            last_activity: "2026-08-27",
            ..Default::default()
        }
        .csv(),
        Group {
            name: "B",
            last_activity: "2026-08-28",
            ..Default::default()
        }
        .csv(),
    ];
    let found = findings(&scan(&dir, &report(&rows), &[]));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["group_name"], "A");
}

#[test]
fn blank_cells_are_unknown_not_zero() {
    let dir = TempDir::new().unwrap();
    let rows = [
        // Never active: the inactive rule fires with its own message.
        Group {
            name: "Never",
            last_activity: "",
            ..Default::default()
        }
        .csv(),
        // Blank guest count: not "0 guests", and not 10 either.
        Group {
            name: "NoCount",
            external: "",
            ..Default::default()
        }
        .csv(),
        // Deleted with blank storage: unknown, so not reported.
        Group {
            name: "Gone",
            deleted: true,
            mailbox_bytes: "",
            site_bytes: "",
            ..Default::default()
        }
        .csv(),
    ];
    let found = findings(&scan(&dir, &report(&rows), &[]));
    assert_eq!(rules_of(&found), vec!["inactive-groups"]);
    assert_eq!(
        found[0]["message"],
        "No activity in the whole 30-day period"
    );
    assert_eq!(
        found[0]["evidence"]["days_since_activity"],
        serde_json::Value::Null
    );
}

#[test]
fn columns_are_mapped_by_name_in_any_order() {
    let dir = TempDir::new().unwrap();
    let text = "Group Id,Is Deleted,External Member Count,Group Display Name,Report Refresh Date,Last Activity Date,Owner Principal Name\n\
                g-1,False,12,Partners,2026-11-25,2026-11-24,x@contoso.com\n";
    let found = findings(&scan(&dir, text, &[]));
    assert_eq!(rules_of(&found), vec!["high-external-members"]);
    assert_eq!(found[0]["key"], "high-external-members:g-1");
    assert_eq!(
        found[0]["message"],
        "12 external members of an unknown number of members"
    );
}

#[test]
fn old_exports_with_guest_count_and_no_group_id_key_by_name() {
    let dir = TempDir::new().unwrap();
    let text = "Report Refresh Date,Group Display Name,Is Deleted,Owner Principal Name,Last Activity Date,Member Count,Guest Count\r\n\
                2026-11-25,Vendors,False,a@contoso.com,2026-11-24,20,15\r\n";
    let found = findings(&scan(&dir, text, &[]));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["key"], "high-external-members:name:Vendors");
    assert_eq!(found[0]["group_id"], serde_json::Value::Null);
}

#[test]
fn unknown_columns_are_kept_and_readable_by_rules() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "rules/labels.rhai",
        "fn check(row) { if row.has(\"Sensitivity Label\") && row[\"Sensitivity Label\"] == \"Secret\" { `secret: ${row[\"sensitivity_label\"]}` } }",
    );
    let input = write(
        dir.path(),
        "r.csv",
        "Report Refresh Date,Group Display Name,Is Deleted,Last Activity Date,Sensitivity Label\n2026-11-25,A,False,,Secret\n2026-11-25,B,False,,\n",
    );
    let out = gw(dir.path())
        .args(["scan", "--rules", "rules", "--input"])
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let found = findings(&out);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["message"], "secret: Secret");
}

#[test]
fn bad_rows_are_reported_with_their_line_and_skipped() {
    let dir = TempDir::new().unwrap();
    let rows = [
        Group {
            name: "Multi\r\nline name",
            owner: "",
            ..Default::default()
        }
        .csv(), // lines 2-3
        "2026-11-25,Broken,False,,2026-11-20,Private,N/A,0,,,,,,1,1,1,1,id,30".to_owned(), // line 4
        "2026-11-25,Short,False".to_owned(),                                               // line 5
        Group {
            name: "BadDate",
            last_activity: "2026-02-30",
            ..Default::default()
        }
        .csv(), // line 6
        Group {
            name: "Fine",
            owner: "",
            ..Default::default()
        }
        .csv(), // line 7
    ];
    // Three bad rows in five: allowed here, to see each reported.
    write(
        dir.path(),
        "groupwarden.toml",
        "[scan]\nmax_row_error_ratio = 1.0\n",
    );
    let out = scan(&dir, &report(&rows), &[]);
    assert_eq!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains(
            "report.csv, line 4, column 7 \"Member Count\": expected a whole number, found \"N/A\""
        ),
        "{err}"
    );
    assert!(
        err.contains("line 5: expected 19 fields as in the header, found 3"),
        "{err}"
    );
    assert!(err.contains("line 6, column 5 \"Last Activity Date\": expected a date as YYYY-MM-DD, found \"2026-02-30\""), "{err}");
    assert!(
        err.contains("5 rows read, 3 row errors, 2 findings"),
        "{err}"
    );
    let found = findings(&out);
    assert_eq!(found[0]["group_name"], "Multi\r\nline name");
    assert_eq!(found[0]["line"], 2);
    assert_eq!(found[1]["line"], 7);
}

#[test]
fn strict_makes_the_first_bad_row_fatal() {
    let dir = TempDir::new().unwrap();
    let rows = ["2026-11-25,Broken,maybe,,,Private,1,0,,,,,,1,1,1,1,id,30".to_owned()];
    let out = scan(&dir, &report(&rows), &["--strict"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out)
            .contains("line 2, column 3 \"Is Deleted\": expected True or False, found \"maybe\"")
    );
}

#[test]
fn a_concealed_report_warns_once_and_keys_by_hashed_name() {
    let dir = TempDir::new().unwrap();
    let rows = [
        "2023-05-31,7D3654B07E126BBD0D18174368FC243F,False,550802505126139905D733891825A254,,Public,1,0,,,,,,5,203448,0,1455831,00000000-0000-0000-0000-000000000000,7".to_owned(),
        "2023-05-31,8E4765C18F237CCE1E29285479FD354A,False,,2023-05-30,Public,1,0,,,,,,5,203448,0,1455831,00000000-0000-0000-0000-000000000000,7".to_owned(),
    ];
    let out = scan(&dir, &report(&rows), &[]);
    let err = stderr(&out);
    assert_eq!(
        err.matches("conceals user, group and site names").count(),
        1,
        "{err}"
    );
    assert!(err.contains("Display concealed user, group, and site names in all reports"));
    let keys: Vec<_> = findings(&out)
        .iter()
        .map(|f| f["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        keys,
        [
            "inactive-groups:name:7D3654B07E126BBD0D18174368FC243F",
            "ownerless-groups:name:8E4765C18F237CCE1E29285479FD354A"
        ]
    );
}

#[test]
fn a_report_with_only_a_header_is_an_empty_scan() {
    let dir = TempDir::new().unwrap();
    let out = scan(&dir, &report(&[]), &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).is_empty());
    assert!(stderr(&out).contains("0 rows read, 0 row errors, 0 findings"));
}

#[test]
fn missing_required_columns_name_what_was_expected_and_found() {
    let dir = TempDir::new().unwrap();
    let out = scan(&dir, "Group Display Name,Member Count\nA,1\n", &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("report.csv, line 1: the report lacks required column(s) \"Report Refresh Date\", \"Is Deleted\", \"Last Activity Date\""), "{err}");
    assert!(
        err.contains("found \"Group Display Name\", \"Member Count\""),
        "{err}"
    );
}

#[test]
fn an_unreadable_input_is_exit_2_naming_the_file() {
    let dir = TempDir::new().unwrap();
    gw(dir.path())
        .args(["scan", "--input", "nope.csv", "--rules"])
        .arg(bundled_rules())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nope.csv: No such file"));
}

#[test]
fn reads_standard_input() {
    let dir = TempDir::new().unwrap();
    let text = report(&[Group {
        owner: "",
        ..Default::default()
    }
    .csv()]);
    let out = gw(dir.path())
        .args(["scan", "--input", "-", "--rules"])
        .arg(bundled_rules())
        .write_stdin(text)
        .output()
        .unwrap();
    assert_eq!(rules_of(&findings(&out)), vec!["ownerless-groups"]);
    assert!(stderr(&out).contains("scanned <stdin>"));
}

#[test]
fn fail_on_sets_exit_status_1_at_or_above_the_threshold() {
    let dir = TempDir::new().unwrap();
    let text = report(&[Group {
        deleted: true,
        ..Default::default()
    }
    .csv()]); // deleted-with-storage: high
    assert_eq!(
        scan(&dir, &text, &["--fail-on", "high"]).status.code(),
        Some(1)
    );
    assert_eq!(
        scan(&dir, &text, &["--fail-on", "medium"]).status.code(),
        Some(1)
    );
    assert_eq!(
        scan(&dir, &text, &["--fail-on", "critical"]).status.code(),
        Some(0)
    );
    assert_eq!(scan(&dir, &text, &[]).status.code(), Some(0));
}

#[test]
fn json_csv_and_table_formats() {
    let dir = TempDir::new().unwrap();
    let text = report(&[Group {
        name: "Ünïcode, Inc",
        owner: "",
        ..Default::default()
    }
    .csv()]);
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&scan(&dir, &text, &["--format", "json"]))).unwrap();
    assert_eq!(json["findings"][0]["rule"], "ownerless-groups");
    assert_eq!(json["summary"]["rows"], 1);
    assert_eq!(json["summary"]["rules"]["ownerless-groups"]["findings"], 1);

    let csv_text = stdout(&scan(&dir, &text, &["--format", "csv"]));
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let record = reader.records().next().unwrap().unwrap();
    assert_eq!(&record[0], "ownerless-groups");
    assert_eq!(&record[4], "Ünïcode, Inc");

    let table = stdout(&scan(&dir, &text, &["--format", "table"]));
    assert!(
        table.contains("ownerless-groups") && table.contains("Ünïcode, Inc"),
        "{table}"
    );
}

/// A report of one group, without an owner.
fn ownerless_report() -> String {
    report(&[Group {
        owner: "",
        ..Default::default()
    }
    .csv()])
}

/// Names in `dir` of temporary output files a scan left behind.
fn partial_files(dir: &TempDir) -> Vec<String> {
    std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".partial"))
        .collect()
}

#[test]
fn a_failed_scan_leaves_the_previous_output_file_as_it_was() {
    let dir = TempDir::new().unwrap();
    let output = dir.path().join("findings.jsonl");
    std::fs::write(&output, "yesterday's findings\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&output, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    let scan_into = |input: &std::path::Path| {
        gw(dir.path())
            .args(["scan", "--no-state", "--output"])
            .arg(&output)
            .arg("--input")
            .arg(input)
            .arg("--rules")
            .arg(bundled_rules())
            .assert()
    };
    // A report that fails at its header: nothing is replaced.
    let bad = write(
        dir.path(),
        "bad.csv",
        "Group Display Name,Member Count\nA,1\n",
    );
    scan_into(&bad).code(2);
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "yesterday's findings\n"
    );
    assert!(partial_files(&dir).is_empty(), "{:?}", partial_files(&dir));
    // A good one replaces the file whole, keeping its permissions.
    let good = write(dir.path(), "good.csv", &ownerless_report());
    scan_into(&good).success();
    let text = std::fs::read_to_string(&output).unwrap();
    assert!(text.starts_with("{\"rule\":\"ownerless-groups\""), "{text}");
    assert_eq!(text.lines().count(), 1);
    assert!(partial_files(&dir).is_empty(), "{:?}", partial_files(&dir));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&output).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
    }
}

#[test]
fn an_output_file_in_a_missing_directory_is_exit_2_naming_it() {
    let dir = TempDir::new().unwrap();
    let out = scan(
        &dir,
        &report(&[]),
        &["--no-state", "--output", "nodir/out.jsonl"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("nodir/out.jsonl: No such file or directory"),
        "{err}"
    );
    assert!(!err.contains(".partial"), "{err}");
}

#[cfg(unix)]
#[test]
fn an_output_symlink_stays_a_link_to_the_new_findings() {
    let dir = TempDir::new().unwrap();
    std::fs::create_dir(dir.path().join("reports")).unwrap();
    let target = dir.path().join("reports/today.jsonl");
    std::fs::write(&target, "old\n").unwrap();
    let link = dir.path().join("latest.jsonl");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = scan(
        &dir,
        &ownerless_report(),
        &["--no-state", "--output", "latest.jsonl"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let text = std::fs::read_to_string(&target).unwrap();
    assert!(text.starts_with("{\"rule\":\"ownerless-groups\""), "{text}");
}

#[cfg(unix)]
#[test]
fn output_to_a_device_is_written_directly() {
    let dir = TempDir::new().unwrap();
    let out = scan(
        &dir,
        &report(&[Group::default().csv()]),
        &["--no-state", "--output", "/dev/null"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn output_file_format_follows_its_extension() {
    let dir = TempDir::new().unwrap();
    let input = write(dir.path(), "r.csv", &ownerless_report());
    gw(dir.path())
        .args(["scan", "--output", "out.json", "--rules"])
        .arg(bundled_rules())
        .arg("--input")
        .arg(&input)
        .assert()
        .success();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out.json")).unwrap()).unwrap();
    assert_eq!(json["findings"].as_array().unwrap().len(), 1);
}

#[test]
fn config_overrides_parameters_and_disables_rules() {
    let dir = TempDir::new().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    for rule in ["inactive-groups", "ownerless-groups"] {
        std::fs::copy(
            bundled_rules().join(format!("{rule}.rhai")),
            dir.path().join(format!("rules/{rule}.rhai")),
        )
        .unwrap();
    }
    write(
        dir.path(),
        "groupwarden.toml",
        "[rules]\ndir = \"rules\"\ndisabled = [\"ownerless-groups\"]\n\n[rules.params.inactive-groups]\ndays = 30\n",
    );
    let input = write(
        dir.path(),
        "r.csv",
        &report(&[Group {
            owner: "",
            last_activity: "2026-10-20",
            ..Default::default()
        }
        .csv()]),
    );
    let out = gw(dir.path())
        .args(["scan", "--input"])
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let found = findings(&out);
    assert_eq!(rules_of(&found), vec!["inactive-groups"]);
    assert_eq!(
        found[0]["message"],
        "No activity for 36 days (since 2026-10-20)"
    );
}

#[test]
fn a_config_typo_is_exit_2_naming_the_key() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "groupwarden.toml",
        "[rules.params.inactive-groups]\ndayz = 30\n",
    );
    let input = write(dir.path(), "r.csv", &report(&[]));
    let out = gw(dir.path())
        .args(["scan", "--rules"])
        .arg(bundled_rules())
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("config key `rules.params.inactive-groups.dayz`: rule `inactive-groups` has no parameter `dayz` (it has: days); did you mean `days`?"), "{}", stderr(&out));

    write(dir.path(), "groupwarden.toml", "[rules]\ndisabeld = []\n");
    let out = gw(dir.path())
        .args(["scan", "--rules"])
        .arg(bundled_rules())
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("groupwarden.toml") && stderr(&out).contains("line 2, column 1"),
        "{}",
        stderr(&out)
    );
}

fn scan_with_rule(rule_source: &str, rows: &[String]) -> std::process::Output {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "rules/custom.rhai", rule_source);
    let input = write(dir.path(), "r.csv", &report(rows));
    gw(dir.path())
        .args(["scan", "--rules", "rules", "--input"])
        .arg(&input)
        .output()
        .unwrap()
}

#[test]
fn a_rule_with_a_syntax_error_stops_before_any_row_with_file_line_and_column() {
    let out = scan_with_rule(
        "const TITLE = \"x\";\nfn check(row) {\n    let big = row.member_count > ;\n}\n",
        &[Group::default().csv()],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("rules/custom.rhai:3:"), "{err}");
    assert!(
        err.contains("    let big = row.member_count > ;") && err.contains('^'),
        "{err}"
    );
    assert!(!err.contains("rows read"), "no row is scanned: {err}");
}

#[test]
fn a_misspelt_field_names_the_closest_real_one() {
    let out = scan_with_rule("fn check(row) {\n  row.days_since_activty > 3\n}\n", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("rules/custom.rhai:2:7: unknown field `days_since_activty`; did you mean `days_since_activity`?"), "{}", stderr(&out));
}

#[test]
fn a_runaway_loop_is_stopped_and_the_scan_goes_on() {
    let rows: Vec<String> = (0..3)
        .map(|i| {
            Group {
                name: &format!("G{i}"),
                id: &format!("id-{i}"),
                ..Default::default()
            }
            .csv()
        })
        .collect();
    let started = std::time::Instant::now();
    let out = scan_with_rule(
        "fn check(row) { if row.group_display_name == \"G1\" { loop { } } row.group_display_name }\n",
        &rows,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("rule `custom` failed on report line 3 (group \"G1\")"),
        "{err}"
    );
    assert!(err.contains("Too many operations"), "{err}");
    assert!(
        err.contains("3 rows read, 0 row errors, 2 findings, 1 rule errors"),
        "{err}"
    );
    // Not a timing assertion on the machine: a sanity bound far above the
    // few milliseconds the operation limit allows.
    assert!(started.elapsed().as_secs() < 60);
}

#[test]
fn import_and_eval_are_refused_at_load() {
    let out = scan_with_rule("import \"secrets\" as s;\nfn check(row) { false }\n", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("rules/custom.rhai:1:1"),
        "{}",
        stderr(&out)
    );

    let out = scan_with_rule(
        "fn check(row) { eval(\"1 + 1\") }\n",
        &[Group::default().csv()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("rules/custom.rhai:1:"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_rule_error_on_one_row_is_reported_and_other_rules_go_on() {
    let rows = [
        Group {
            name: "A",
            members: "",
            owner: "",
            ..Default::default()
        }
        .csv(),
        Group {
            name: "B",
            members: "4",
            ..Default::default()
        }
        .csv(),
    ];
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "rules/members.rhai",
        "fn check(row) {\n    if row.member_count + 1 > 3 { \"big\" }\n}\n",
    );
    std::fs::copy(
        bundled_rules().join("ownerless-groups.rhai"),
        dir.path().join("rules/ownerless-groups.rhai"),
    )
    .unwrap();
    let input = write(dir.path(), "r.csv", &report(&rows));
    let out = gw(dir.path())
        .args(["scan", "--rules", "rules", "--input"])
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains("rule `members` failed on report line 2 (group \"A\"): rules/members.rhai:2:"),
        "{err}"
    );
    assert_eq!(
        rules_of(&findings(&out)),
        vec!["ownerless-groups", "members"]
    );
}

#[test]
fn rules_may_report_several_findings_with_their_own_severity_and_evidence() {
    let source = r#"
        const SEVERITY = "low";
        fn check(row) {
            [
                #{ message: "first", id: "a" },
                #{ message: "second", id: "b", severity: "critical", evidence: #{ ratio: 0.5 } },
            ]
        }
    "#;
    let out = scan_with_rule(
        source,
        &[Group {
            id: "g",
            ..Default::default()
        }
        .csv()],
    );
    let found = findings(&out);
    assert_eq!(found.len(), 2, "{}", stderr(&out));
    assert_eq!(found[0]["key"], "custom:g#a");
    assert_eq!(found[0]["severity"], "low");
    assert_eq!(found[1]["key"], "custom:g#b");
    assert_eq!(found[1]["severity"], "critical");
    assert_eq!(found[1]["evidence"]["ratio"], 0.5);
}

#[test]
fn parallel_and_sequential_scans_give_identical_findings_in_identical_order() {
    let dir = TempDir::new().unwrap();
    let text = synthetic_report(20_000);
    let one = scan(&dir, &text, &["--threads", "1", "--no-state"]);
    let four = scan(&dir, &text, &["--threads", "4", "--no-state"]);
    assert_eq!(one.status.code(), Some(0));
    assert!(!one.stdout.is_empty());
    assert_eq!(one.stdout, four.stdout);
    let summary = |o: &std::process::Output| {
        stderr(o)
            .lines()
            .filter(|l| !l.starts_with("scanned"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(summary(&one), summary(&four));
    assert!(stderr(&one).contains("row errors"), "{}", stderr(&one));
}

/// Every rule of the bundled and example folders, with some rows only the
/// interpreter takes (a guest count so large a share overflows `to_int`).
fn every_rule_dir(dir: &TempDir) -> std::path::PathBuf {
    let rules = dir.path().join("all-rules");
    std::fs::create_dir_all(&rules).unwrap();
    let examples = bundled_rules().parent().unwrap().join("examples/rules");
    for folder in [bundled_rules(), examples] {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, rules.join(path.file_name().unwrap())).unwrap();
        }
    }
    rules
}

#[test]
fn the_fast_path_and_the_interpreter_give_identical_output() {
    let dir = TempDir::new().unwrap();
    let mut text = synthetic_report(3_000);
    text.push_str(
        &Group {
            name: "Huge guests",
            members: "5",
            external: "9223372036854775807",
            id: "big",
            ..Default::default()
        }
        .csv(),
    );
    text.push_str("\r\n");
    let input = write(dir.path(), "report.csv", &text);
    let rules = every_rule_dir(&dir);
    let verify = write(
        dir.path(),
        "verify.toml",
        "[rules]\nverify_fast_path = 1.0\n",
    );
    for format in ["jsonl", "csv", "json"] {
        let run = |extra: &[&str]| {
            let out = gw(dir.path())
                .args(["scan", "--no-state", "--format", format, "--input"])
                .arg(&input)
                .arg("--rules")
                .arg(&rules)
                .args(extra)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            out
        };
        let fast = run(&[]);
        let interpreted = run(&["--no-fast-path"]);
        // Every row checked both ways: no disagreement to report.
        let verified = run(&["--config", verify.to_str().unwrap()]);
        assert!(
            !stderr(&verified).contains("disagree"),
            "{}",
            stderr(&verified)
        );
        assert!(fast.stdout.len() > 1000, "{format}");
        let body = |o: &std::process::Output| -> String {
            // The elapsed time in the json summary differs.
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| !l.contains("\"elapsed"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(body(&fast), body(&interpreted), "{format}");
        assert_eq!(body(&fast), body(&verified), "{format}");
        // The huge row overflows `to_int`: the fast path leaves it to the
        // interpreter, which reports the rule's error the same way.
        for out in [&fast, &interpreted, &verified] {
            assert!(
                stderr(out).contains("rule `guest-majority` failed on report line 3002"),
                "{}",
                stderr(out)
            );
        }
    }
}

#[test]
fn findings_rendered_by_the_workers_equal_those_the_writer_formats() {
    // Stateless jsonl findings are rendered on the worker threads; the
    // json document and a stateful jsonl scan write them on the main one.
    let dir = TempDir::new().unwrap();
    let text = synthetic_report(4_000);
    let rendered = findings(&scan(&dir, &text, &["--no-state", "--threads", "3"]));
    assert!(rendered.len() > 1000);
    let document = scan(&dir, &text, &["--no-state", "--format", "json"]);
    let document: serde_json::Value = serde_json::from_slice(&document.stdout).unwrap();
    assert_eq!(document["findings"].as_array().unwrap(), &rendered);
    let stateful = findings(&scan(&dir, &text, &["--state", "s.db", "--threads", "3"]));
    let without_status: Vec<serde_json::Value> = stateful
        .into_iter()
        .map(|mut f| {
            assert_eq!(f["status"], "new");
            f.as_object_mut().unwrap().remove("status");
            f
        })
        .collect();
    assert_eq!(without_status, rendered);
}

#[test]
fn strict_stops_a_parallel_scan_at_the_first_bad_row() {
    let dir = TempDir::new().unwrap();
    // The first bad row is the 501st; many chunks are in flight by then.
    let out = scan(
        &dir,
        &synthetic_report(50_000),
        &["--strict", "--threads", "4", "--no-state"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("line 502"), "{}", stderr(&out));
}

#[test]
fn group_names_cannot_run_as_formulas_or_reach_the_terminal_raw() {
    let dir = TempDir::new().unwrap();
    let rows = [
        Group {
            name: "=HYPERLINK(\"http://evil.example\",\"x\")",
            owner: "",
            ..Default::default()
        }
        .csv(),
        Group {
            name: "\u{1b}[2JFake\u{7}",
            owner: "",
            id: "00000000-0000-0000-0000-00000000000b",
            ..Default::default()
        }
        .csv(),
    ];
    let text = report(&rows);
    let csv = stdout(&scan(&dir, &text, &["--no-state", "--format", "csv"]));
    assert!(
        csv.contains("\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\""),
        "{csv}"
    );
    assert!(
        !csv.contains(",=HYPERLINK") && !csv.contains(",\"=HYPERLINK"),
        "{csv}"
    );
    let raw = stdout(&scan(
        &dir,
        &text,
        &["--no-state", "--format", "csv", "--raw-csv"],
    ));
    assert!(raw.contains("\"=HYPERLINK("), "{raw}");
    let table = stdout(&scan(&dir, &text, &["--no-state", "--format", "table"]));
    assert!(
        !table.contains('\u{1b}') && !table.contains('\u{7}'),
        "{table}"
    );
    assert!(table.contains("\\u{1b}[2JFake"), "{table}");
}

#[test]
fn groups_without_an_id_that_share_a_name_stay_apart_in_state() {
    let dir = TempDir::new().unwrap();
    let text = "Report Refresh Date,Group Display Name,Is Deleted,Owner Principal Name,Last Activity Date,Member Count,External Member Count,Report Period\n\
        2026-11-25,Project,False,,2026-11-20,3,0,30\n\
        2026-11-25,Project,False,,2026-11-21,4,0,30\n\
        2026-11-25,Other,False,,2026-11-21,4,0,30\n";
    let out = scan(&dir, text, &["--state", "state.db"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let keys: Vec<String> = findings(&out)
        .iter()
        .map(|f| f["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        keys,
        [
            "ownerless-groups:name:Project",
            "ownerless-groups:name:Project#2",
            "ownerless-groups:name:Other"
        ]
    );
    let log = stderr(&out);
    assert!(
        log.contains("1 rows without a group id share a name"),
        "{log}"
    );
    assert!(log.contains("3 new"), "{log}");
}

#[test]
fn rule_mistakes_that_would_fail_silently_are_errors() {
    // A parameter PARAMS does not declare: a load error with the closest.
    let out = scan_with_rule(
        "const PARAMS = #{ min_external: 10 };\nfn check(row, params) {\n    row.external_member_count >= params.min_externals\n}\n",
        &[Group::default().csv()],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("rules/custom.rhai:3:41: unknown parameter `min_externals`; did you mean `min_external`?"),
        "{err}"
    );
    // A number against text (a date is text): a rule error with line and
    // column on both paths, not a quiet `false`.
    for extra in [&[][..], &["--no-fast-path"][..]] {
        let dir = TempDir::new().unwrap();
        write(
            dir.path(),
            "rules/custom.rhai",
            "fn check(row) {\n    if row.last_activity_date > 90 { return true; }\n}\n",
        );
        let input = write(dir.path(), "r.csv", &report(&[Group::default().csv()]));
        let out = gw(dir.path())
            .args(["scan", "--no-state", "--rules", "rules", "--input"])
            .arg(&input)
            .args(extra)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(
            err.contains("custom.rhai:2:")
                && err.contains("cannot compare a string with a number (`>`)"),
            "{extra:?}: {err}"
        );
        assert!(err.contains("1 rule errors"), "{extra:?}: {err}");
    }
    // max_operations = 0 would be "unlimited": refused, naming the key.
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "groupwarden.toml",
        "[rules]\nmax_operations = 0\n",
    );
    let out = gw(dir.path()).args(["validate"]).output().unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("max_operations = 0 would mean no limit"),
        "{text}"
    );
}

#[test]
fn with_json_logs_stderr_carries_only_json_lines() {
    let dir = TempDir::new().unwrap();
    let input = write(dir.path(), "report.csv", &synthetic_report(300));
    for args in [
        vec!["scan", "--state", "s.db"],
        vec!["scan", "--state", "s.db"],
        vec!["scan", "--no-state", "--strict"],
    ] {
        let out = gw(dir.path())
            .args(["--log-format", "json"])
            .args(&args)
            .args(["--format", "jsonl", "--rules"])
            .arg(bundled_rules())
            .arg("--input")
            .arg(&input)
            .output()
            .unwrap();
        let log = stderr(&out);
        assert!(!log.trim().is_empty(), "{args:?}");
        for line in log.lines() {
            let event: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {line}"));
            assert!(event["fields"]["message"].is_string(), "{line}");
        }
    }
}

#[test]
fn with_json_logs_every_command_writes_only_json_lines_to_stderr() {
    let dir = TempDir::new().unwrap();
    let input = write(dir.path(), "report.csv", &synthetic_report(300));
    let rules = bundled_rules();
    let rules = rules.to_str().unwrap();
    let input = input.to_str().unwrap();
    let commands: [&[&str]; 8] = [
        &[
            "scan",
            "--rules",
            rules,
            "--input",
            input,
            "--output",
            "/dev/null",
        ],
        &[
            "report",
            "--rules",
            rules,
            "--input",
            input,
            "--output",
            "page.html",
        ],
        &[
            "notify",
            "--dry-run",
            "--rules",
            rules,
            "--input",
            input,
            "--out",
            "preview",
        ],
        &["findings"],
        &["trend"],
        &["exemptions"],
        &["validate", "--rules", rules],
        &["notify", "--dead-letters"],
    ];
    for (n, args) in commands.into_iter().enumerate() {
        if n == 1 {
            // A channel after the first scan: the preview has a backlog to show.
            write(
                dir.path(),
                "groupwarden.toml",
                "[[notify]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"https://hooks.example.com/x\"\n",
            );
        }
        let out = gw(dir.path())
            .args(["--log-format", "json"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{args:?}: {}",
            stderr(&out)
        );
        for line in stderr(&out).lines() {
            let event: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {line}"));
            assert!(event["fields"]["message"].is_string(), "{line}");
        }
    }
}

#[test]
fn a_full_disk_or_a_file_size_limit_is_an_error_naming_the_output() {
    let dir = TempDir::new().unwrap();
    let input = write(dir.path(), "report.csv", &synthetic_report(300));
    let out = gw(dir.path())
        .args(["scan", "--no-state", "--format", "jsonl", "--rules"])
        .arg(bundled_rules())
        .arg("--input")
        .arg(&input)
        .args(["--output", "/dev/full"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/dev/full: No space left on device"),
        "{}",
        stderr(&out)
    );
    // `ulimit -f 1`: without SIGXFSZ ignored the kernel would kill the
    // process silently (exit 153).
    let script = format!(
        "ulimit -f 1 && exec \"$0\" scan --no-state --format jsonl --rules {} --input {} --output out.jsonl",
        bundled_rules().display(),
        input.display()
    );
    let mut shell = std::process::Command::new("sh");
    shell
        .current_dir(dir.path())
        .args(["-c", &script])
        .arg(crate::util::binary());
    crate::util::remove_settings(&mut shell, std::env::vars_os());
    let out = shell.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("File too large"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_overlong_line_is_a_row_error_and_the_rows_after_it_are_read() {
    let dir = TempDir::new().unwrap();
    let mut text = synthetic_report(300);
    // Among 300 rows, one 3 MiB line of junk (no quote): one row error,
    // under the 1% the scan tolerates, and every other row read.
    let at = text.find('\n').unwrap() + 1;
    text.insert_str(at, &format!("{}\n", "x".repeat(3 << 20)));
    let out = scan(&dir, &text, &["--no-state"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(
            "line 2: a line longer than 1048576 bytes, too long to be a row of the report; skipped"
        ),
        "{err}"
    );
    assert!(err.contains("301 rows read"), "{err}");
}
