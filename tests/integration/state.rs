//! The state database: finding lifecycle, exemptions, the outbox, locking,
//! migrations and damaged files, with real SQLite files in temp folders
//! and the real binary where a person would use it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use groupwarden::engine::eval::RowOutcome;
use groupwarden::engine::finding::{EvidenceMap, Finding, Severity};
use groupwarden::scan::ScanSummary;
use groupwarden::state::exemptions::Exemptions;
use groupwarden::state::lifecycle::{ScanPolicy, ScanRecorder, ScanStart};
use groupwarden::state::store::StoreOptions;
use groupwarden::state::{Changes, Status, Store, outbox};
use jiff::Timestamp;
use jiff::civil::Date;
use rusqlite::Connection;
use serde_json::Value;
use tempfile::TempDir;

use crate::util::gw_std;

const HEADER: &str = "Report Refresh Date,Group Display Name,Is Deleted,Owner Principal Name,Last Activity Date,\
Member Count,External Member Count,Group Id,Report Period";

/// One group's row in a generated report.
#[derive(Clone)]
struct Group {
    id: String,
    name: String,
    owner: Option<String>,
    days_inactive: i64,
    guests: u32,
}

fn group(id: &str, name: &str) -> Group {
    Group {
        id: id.into(),
        name: name.into(),
        owner: Some(format!("owner@{id}.example")),
        days_inactive: 1,
        guests: 0,
    }
}

impl Group {
    fn ownerless(mut self) -> Group {
        self.owner = None;
        self
    }

    fn inactive(mut self) -> Group {
        self.days_inactive = 200;
        self
    }

    fn row(&self, refresh: Date) -> String {
        let last = refresh
            .checked_sub(jiff::Span::new().days(self.days_inactive))
            .unwrap();
        format!(
            "{refresh},{},False,{},{last},12,{},{},30",
            self.name,
            self.owner.as_deref().unwrap_or(""),
            self.guests,
            self.id
        )
    }
}

/// A folder with a config, reports and the database.
struct Tenant {
    dir: TempDir,
}

impl Tenant {
    fn new() -> Tenant {
        let tenant = Tenant {
            dir: tempfile::tempdir().unwrap(),
        };
        tenant.config("");
        tenant
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn db(&self) -> PathBuf {
        self.path("groupwarden.db")
    }

    /// Writes `groupwarden.toml` (the bundled rules, plus `extra`).
    fn config(&self, extra: &str) {
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let text = format!("[rules]\ndir = {:?}\n{extra}", rules.display().to_string());
        std::fs::write(self.path("groupwarden.toml"), text).unwrap();
    }

    /// Writes a report refreshed on `refresh` with `groups`.
    fn report(&self, name: &str, refresh: &str, groups: &[Group]) -> PathBuf {
        let refresh: Date = refresh.parse().unwrap();
        let mut text = format!("{HEADER}\n");
        for group in groups {
            text.push_str(&group.row(refresh));
            text.push('\n');
        }
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = gw_std(self.dir.path());
        command.args(args).env("GROUPWARDEN_LOG", "warn");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// A stateful scan that must succeed; its findings by key.
    fn scan(&self, report: &Path, extra: &[&str]) -> Scan {
        let mut args = vec!["scan", "-i", report.to_str().unwrap(), "-f", "jsonl"];
        args.extend_from_slice(extra);
        let output = self.run(&args);
        assert!(
            output.status.success(),
            "scan failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Scan::from(output)
    }

    /// `groupwarden findings` as JSON objects by key.
    fn findings(&self, extra: &[&str]) -> BTreeMap<String, Value> {
        let mut args = vec!["findings", "-f", "jsonl"];
        args.extend_from_slice(extra);
        let output = self.run(&args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        by_key(&output.stdout)
    }

    fn sql<T: rusqlite::types::FromSql>(&self, query: &str) -> T {
        Connection::open(self.db())
            .unwrap()
            .query_row(query, [], |r| r.get(0))
            .unwrap()
    }
}

struct Scan {
    findings: BTreeMap<String, Value>,
    stderr: String,
}

impl From<Output> for Scan {
    fn from(output: Output) -> Scan {
        Scan {
            findings: by_key(&output.stdout),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Scan {
    fn status(&self, key: &str) -> &str {
        self.findings
            .get(key)
            .unwrap_or_else(|| panic!("no finding {key} in {:?}", self.findings.keys()))["status"]
            .as_str()
            .unwrap()
    }

    fn statuses(&self) -> BTreeMap<String, String> {
        self.findings
            .iter()
            .map(|(k, v)| (k.clone(), v["status"].as_str().unwrap().to_owned()))
            .collect()
    }
}

fn by_key(jsonl: &[u8]) -> BTreeMap<String, Value> {
    String::from_utf8_lossy(jsonl)
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .map(|value| (value["key"].as_str().unwrap().to_owned(), value))
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn statuses(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, s)| (k.to_string(), s.to_string()))
        .collect()
}

#[test]
fn findings_move_from_new_to_open_to_resolved_and_back() {
    let tenant = Tenant::new();
    let first = tenant.report(
        "r1.csv",
        "2026-11-01",
        &[
            group("g-a", "Alpha").ownerless(),
            group("g-b", "Beta").inactive(),
            group("g-c", "Gamma").ownerless(),
        ],
    );
    let scan = tenant.scan(&first, &[]);
    assert_eq!(
        scan.statuses(),
        statuses(&[
            ("inactive-groups:g-b", "new"),
            ("ownerless-groups:g-a", "new"),
            ("ownerless-groups:g-c", "new")
        ])
    );
    assert!(
        scan.stderr
            .contains("3 new, 0 open, 0 reopened, 0 resolved, 0 exempted"),
        "{}",
        scan.stderr
    );

    // Alpha got an owner (rule ran and did not fire); Gamma is gone from the
    // report; Beta is still inactive.
    let second = tenant.report(
        "r2.csv",
        "2026-11-08",
        &[group("g-a", "Alpha"), group("g-b", "Beta").inactive()],
    );
    let scan = tenant.scan(&second, &[]);
    assert_eq!(
        scan.statuses(),
        statuses(&[
            ("inactive-groups:g-b", "open"),
            ("ownerless-groups:g-a", "resolved"),
            ("ownerless-groups:g-c", "resolved")
        ])
    );
    assert_eq!(
        scan.findings["ownerless-groups:g-c"]["line"],
        Value::Null,
        "a resolved finding has no report line"
    );
    let resolved = tenant.findings(&["--status", "resolved"]);
    assert_eq!(
        resolved["ownerless-groups:g-a"]["resolution"],
        "rule-cleared"
    );
    assert_eq!(resolved["ownerless-groups:g-c"]["resolution"], "group-gone");
    assert_eq!(
        tenant.findings(&[]).keys().collect::<Vec<_>>(),
        ["inactive-groups:g-b"],
        "resolved ones are not listed by default"
    );

    // Alpha loses its owner again: reopened, first seen kept.
    let third = tenant.report(
        "r3.csv",
        "2026-11-15",
        &[
            group("g-a", "Alpha").ownerless(),
            group("g-b", "Beta").inactive(),
        ],
    );
    let scan = tenant.scan(&third, &[]);
    assert_eq!(
        scan.statuses(),
        statuses(&[
            ("inactive-groups:g-b", "open"),
            ("ownerless-groups:g-a", "reopened")
        ])
    );
    let remembered = tenant.findings(&["--rule", "ownerless-groups"]);
    assert_eq!(remembered["ownerless-groups:g-a"]["first_seen_scan"], 1);
    assert_eq!(remembered["ownerless-groups:g-a"]["last_seen_scan"], 3);

    let history = tenant.run(&["history", "alpha", "-f", "jsonl"]);
    let changes: Vec<String> = String::from_utf8_lossy(&history.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|e| {
            format!(
                "{} {}",
                e["report_refresh_date"].as_str().unwrap(),
                e["status"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            "2026-11-01 new",
            "2026-11-08 resolved",
            "2026-11-15 reopened"
        ]
    );
}

#[test]
fn a_failed_scan_resolves_nothing() {
    let tenant = Tenant::new();
    let first = tenant.report(
        "r1.csv",
        "2026-11-01",
        &[
            group("g-a", "Alpha").ownerless(),
            group("g-b", "Beta").ownerless(),
        ],
    );
    tenant.scan(&first, &[]);
    let before = tenant.findings(&["--status", "new,open,resolved"]);

    // Both groups are fixed, but a row cannot be read and --strict stops.
    let broken = tenant.path("broken.csv");
    let text = format!(
        "{HEADER}\n{}\n2026-11-08,Gamma,False,x,2026-11-07,many,0,g-c,30\n",
        group("g-a", "Alpha").row("2026-11-08".parse().unwrap())
    );
    std::fs::write(&broken, text).unwrap();
    let output = tenant.run(&[
        "scan",
        "-i",
        broken.to_str().unwrap(),
        "-f",
        "jsonl",
        "--strict",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(tenant.findings(&["--status", "new,open,resolved"]), before);
    assert_eq!(
        tenant.sql::<String>("SELECT outcome FROM scans ORDER BY id DESC LIMIT 1"),
        "failed"
    );
    assert_eq!(
        tenant.sql::<i64>("SELECT count(*) FROM finding_events WHERE status = 'resolved'"),
        0
    );
}

#[test]
fn unreadable_rows_stop_groups_from_resolving_as_gone() {
    let tenant = Tenant::new();
    let first = tenant.report(
        "r1.csv",
        "2026-11-01",
        &[
            group("g-a", "Alpha").ownerless(),
            group("g-b", "Beta").ownerless(),
        ],
    );
    tenant.scan(&first, &[]);
    // One bad row in two is far more than the default 1% allows.
    tenant.config("[scan]\nmax_row_error_ratio = 1.0\n");
    // Beta's row is unreadable: it may still be there, so it stays open.
    // Alpha's row is read and clean, so Alpha resolves.
    let text = format!(
        "{HEADER}\n{}\n2026-11-08,Beta,False,,2026-11-07,many,0,g-b,30\n",
        group("g-a", "Alpha").row("2026-11-08".parse().unwrap())
    );
    let partial = tenant.path("partial.csv");
    std::fs::write(&partial, text).unwrap();
    let scan = tenant.scan(&partial, &[]);
    assert_eq!(
        scan.statuses(),
        statuses(&[("ownerless-groups:g-a", "resolved")])
    );
    assert_eq!(
        tenant.findings(&[])["ownerless-groups:g-b"]["status"],
        "new"
    );
    assert_eq!(
        tenant.sql::<i64>("SELECT complete FROM scans ORDER BY id DESC LIMIT 1"),
        0
    );
}

#[test]
fn a_scan_that_could_not_read_enough_rows_fails_and_changes_nothing() {
    let tenant = Tenant::new();
    let first = tenant.report(
        "r1.csv",
        "2026-11-01",
        &[
            group("g-a", "Alpha").ownerless(),
            group("g-b", "Beta").ownerless(),
        ],
    );
    tenant.scan(&first, &[]);
    let text = format!(
        "{HEADER}\n{}\n2026-11-08,Beta,False,,2026-11-07,many,0,g-b,30\n",
        group("g-a", "Alpha").row("2026-11-08".parse().unwrap())
    );
    let partial = tenant.path("partial.csv");
    std::fs::write(&partial, text).unwrap();
    let output = tenant.run(&["scan", "-i", partial.to_str().unwrap(), "-f", "jsonl"]);
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{log}");
    assert!(
        log.contains("1 of 2 rows could not be read (50.0%), more than [scan] max_row_error_ratio = 0.01 allows"),
        "{log}"
    );
    // Nothing resolved: Alpha is still new, and the attempt is recorded as failed.
    let findings = tenant.findings(&[]);
    assert_eq!(findings["ownerless-groups:g-a"]["status"], "new");
    assert_eq!(
        tenant.sql::<String>("SELECT outcome FROM scans ORDER BY id DESC LIMIT 1"),
        "failed"
    );
}

#[test]
fn a_report_without_rows_resolves_nothing() {
    let tenant = Tenant::new();
    let first = tenant.report("r1.csv", "2026-11-01", &[group("g-a", "Alpha").ownerless()]);
    tenant.scan(&first, &[]);
    let empty = tenant.report("empty.csv", "2026-11-08", &[]);
    let scan = tenant.scan(&empty, &[]);
    assert!(scan.findings.is_empty());
    assert!(
        scan.stderr.contains("the report has no rows"),
        "{}",
        scan.stderr
    );
    assert_eq!(
        tenant.findings(&[])["ownerless-groups:g-a"]["status"],
        "new"
    );
}

#[test]
fn a_rule_error_on_a_row_resolves_nothing_for_that_rule_and_group() {
    let tenant = Tenant::new();
    let rules = tenant.path("rules");
    std::fs::create_dir(&rules).unwrap();
    // Fires on ownerless groups, and fails on groups named "Flaky*" that
    // have an owner.
    std::fs::write(
        rules.join("fragile.rhai"),
        "const TITLE = \"Fragile\";\nconst SEVERITY = \"low\";\nconst DESCRIPTION = \"d\";\n\
         fn check(row) {\n  if row.owner_principal_name == () { return \"no owner\"; }\n\
           if row.group_display_name.starts_with(\"Flaky\") { throw \"cannot decide\"; }\n}\n",
    )
    .unwrap();
    std::fs::write(
        tenant.path("groupwarden.toml"),
        "[rules]\ndir = \"rules\"\n",
    )
    .unwrap();
    let first = tenant.report(
        "r1.csv",
        "2026-11-01",
        &[
            group("g-a", "Flaky A").ownerless(),
            group("g-b", "Steady B").ownerless(),
        ],
    );
    tenant.scan(&first, &[]);
    let second = tenant.report(
        "r2.csv",
        "2026-11-08",
        &[group("g-a", "Flaky A"), group("g-b", "Steady B")],
    );
    let scan = tenant.scan(&second, &[]);
    assert_eq!(scan.statuses(), statuses(&[("fragile:g-b", "resolved")]));
    assert!(
        scan.stderr.contains("rule `fragile` failed"),
        "{}",
        scan.stderr
    );
    assert_eq!(
        tenant.findings(&[])["fragile:g-a"]["status"],
        "new",
        "an error is no evidence of a fix"
    );
}

#[test]
fn an_older_report_is_refused_before_any_output_unless_allowed() {
    let tenant = Tenant::new();
    let newer = tenant.report("new.csv", "2026-11-08", &[group("g-a", "Alpha")]);
    let older = tenant.report(
        "old.csv",
        "2026-11-01",
        &[group("g-a", "Alpha").ownerless()],
    );
    tenant.scan(&newer, &[]);
    let output = tenant.run(&["scan", "-i", older.to_str().unwrap(), "-f", "jsonl"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        output.stdout.is_empty(),
        "nothing is written for a refused report"
    );
    assert!(
        stderr(&output)
            .contains("refreshed on 2026-11-01, before the report of the last scan (2026-11-08)")
            && stderr(&output).contains("--allow-older"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        tenant.sql::<String>("SELECT outcome FROM scans ORDER BY id DESC LIMIT 1"),
        "refused"
    );
    let scan = tenant.scan(&older, &["--allow-older"]);
    assert_eq!(scan.status("ownerless-groups:g-a"), "new");
}

fn days_from_today(days: i64) -> Date {
    jiff::Zoned::now()
        .date()
        .checked_add(jiff::Span::new().days(days))
        .unwrap()
}

#[test]
fn exempted_findings_are_recorded_and_shown_until_the_exemption_expires() {
    let tenant = Tenant::new();
    let exemption = |expires: Date| {
        format!(
            "[[exemptions]]\nrule = \"ownerless-groups\"\ngroup_name = \"archive *\"\nreason = \"Legal hold\"\nexpires = \"{expires}\"\n\
             approved_by = \"jane@contoso.com\"\n"
        )
    };
    tenant.config(&exemption(days_from_today(100)));
    let report = tenant.report(
        "r.csv",
        "2026-11-01",
        &[
            group("g-a", "Archive 2019").ownerless(),
            group("g-b", "Sales").ownerless(),
        ],
    );
    let output = tenant.run(&[
        "scan",
        "-i",
        report.to_str().unwrap(),
        "-f",
        "jsonl",
        "--fail-on",
        "medium",
    ]);
    let scan = Scan::from(output);
    assert_eq!(
        scan.statuses(),
        statuses(&[
            ("ownerless-groups:g-a", "exempted"),
            ("ownerless-groups:g-b", "new")
        ])
    );
    let remembered = tenant.findings(&["--status", "exempted"]);
    assert_eq!(
        remembered["ownerless-groups:g-a"]["exemption_reason"],
        "Legal hold"
    );
    assert_eq!(
        remembered["ownerless-groups:g-a"]["exemption"],
        "groupwarden.toml, exemption 1"
    );

    // Only the exempted finding at --fail-on: the scan passes.
    let clean = tenant.report(
        "clean.csv",
        "2026-11-02",
        &[
            group("g-a", "Archive 2019").ownerless(),
            group("g-b", "Sales"),
        ],
    );
    let output = tenant.run(&[
        "scan",
        "-i",
        clean.to_str().unwrap(),
        "-f",
        "jsonl",
        "--fail-on",
        "medium",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    // Expiring within 14 days: still applies, and is listed.
    tenant.config(&exemption(days_from_today(5)));
    let output = tenant.run(&["scan", "-i", clean.to_str().unwrap(), "-f", "jsonl"]);
    assert!(
        stderr(&output).contains("exemption expiring in 5 days (groupwarden.toml, exemption 1)"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        Scan::from(output).status("ownerless-groups:g-a"),
        "exempted"
    );
    let listed = tenant.run(&["exemptions", "-f", "jsonl"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(
        (
            listed["state"].as_str(),
            listed["days_left"].as_i64(),
            listed["findings"].as_u64()
        ),
        (Some("expiring"), Some(5), Some(1))
    );

    // Expired: a warning names it, and the finding is new to everyone.
    tenant.config(&exemption(days_from_today(-1)));
    let output = tenant.run(&["scan", "-i", clean.to_str().unwrap(), "-f", "jsonl"]);
    let warning = stderr(&output);
    assert!(
        warning.contains("exemption for rule `ownerless-groups` on group_name \"archive *\" (groupwarden.toml, exemption 1) expired on"),
        "{warning}"
    );
    assert_eq!(Scan::from(output).status("ownerless-groups:g-a"), "new");
    let listed: Value =
        serde_json::from_slice(&tenant.run(&["exemptions", "-f", "jsonl"]).stdout).unwrap();
    assert_eq!(listed["state"], "expired");
}

#[test]
fn exemptions_may_live_in_their_own_file_and_bad_ones_are_refused() {
    let tenant = Tenant::new();
    tenant.config("[state]\nexemptions_file = \"approved.toml\"\n");
    std::fs::write(
        tenant.path("approved.toml"),
        "[[exemptions]]\nrule = \"*\"\ngroup_id = \"G-A\"\nreason = \"Migration\"\nexpires = 2099-01-01\n",
    )
    .unwrap();
    let report = tenant.report(
        "r.csv",
        "2026-11-01",
        &[group("g-a", "Alpha").ownerless().inactive()],
    );
    let scan = tenant.scan(&report, &[]);
    assert_eq!(
        scan.statuses(),
        statuses(&[
            ("inactive-groups:g-a", "exempted"),
            ("ownerless-groups:g-a", "exempted")
        ])
    );

    std::fs::write(
        tenant.path("approved.toml"),
        "[[exemptions]]\nrule = \"*\"\ngroup_id = \"g\"\nexpires = 2099-01-01\n",
    )
    .unwrap();
    let output = tenant.run(&["scan", "-i", report.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("approved.toml")
            && stderr(&output).contains("missing field `reason`"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn above_the_cap_a_summary_is_announced_instead_and_says_why() {
    let tenant = Tenant::new();
    tenant.config("[state]\nmax_new_findings = 2\n");
    let groups: Vec<Group> = (0..5)
        .map(|i| group(&format!("g-{i}"), &format!("G{i}")).ownerless())
        .collect();
    let report = tenant.report("r.csv", "2026-11-01", &groups);
    let scan = tenant.scan(&report, &[]);
    assert_eq!(scan.findings.len(), 5, "outputs still list every finding");
    assert!(
        scan.stderr.contains("5 findings to announce")
            && scan.stderr.contains("max_new_findings = 2"),
        "{}",
        scan.stderr
    );
}

#[test]
fn the_cap_empties_the_lists_of_changes_but_keeps_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.db"));
    let policy = ScanPolicy {
        max_new_findings: 2,
        ..ScanPolicy::default()
    };
    let rows: Vec<RowOutcome> = (0..3)
        .map(|i| row(i + 2, &format!("g{i}"), &["r"]))
        .collect();
    let changes = record(store, start(T0, policy.clone()), &rows).1;
    let cap = changes.capped.as_ref().expect("capped");
    assert_eq!((cap.limit, cap.would_announce), (2, 3));
    assert!(changes.new.is_empty());
    assert_eq!(changes.counts.new, 3);

    let store = open(&dir.path().join("s.db"));
    let (_, changes) = record(store, start(T0, policy), &rows[..2]);
    assert!(changes.capped.is_none(), "one resolved: below the cap");
    assert_eq!(changes.resolved.len(), 1);
}

#[test]
fn two_scans_on_one_database_never_interleave() {
    let tenant = Tenant::new();
    let groups: Vec<Group> = (0..3000)
        .map(|i| group(&format!("g-{i}"), &format!("Group {i}")).ownerless())
        .collect();
    let report = tenant.report("r.csv", "2026-11-01", &groups);
    let spawn = || {
        tenant
            .command(&[
                "scan",
                "-i",
                report.to_str().unwrap(),
                "-f",
                "jsonl",
                "--threads",
                "1",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Both outputs are drained at once: a scan blocked on a full pipe
    // would keep the lock the other waits for.
    let (a, b) = (spawn(), spawn());
    // Drain both at once: the scan holding the lock must not block on a
    // full pipe while the test waits on the other.
    let b = std::thread::spawn(move || b.wait_with_output().unwrap());
    let outputs = [a.wait_with_output().unwrap(), b.join().unwrap()];
    let mut seen: Vec<Vec<String>> = outputs
        .iter()
        .map(|o| {
            assert!(o.status.success(), "{}", stderr(o));
            let mut statuses: Vec<String> =
                Scan::from(o.clone()).statuses().into_values().collect();
            statuses.dedup();
            statuses
        })
        .collect();
    seen.sort();
    // One scan saw an empty database, the other saw all of the first's work.
    assert_eq!(seen, [vec!["new".to_string()], vec!["open".to_string()]]);
}

#[test]
fn a_scan_waits_for_the_lock_then_fails_clearly() {
    let tenant = Tenant::new();
    tenant.config("[state]\nlock_timeout = \"1s\"\n");
    let report = tenant.report("r.csv", "2026-11-01", &[group("g-a", "Alpha").ownerless()]);
    tenant.scan(&report, &[]);
    let holder = Connection::open(tenant.db()).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let output = tenant.run(&["scan", "-i", report.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("is in use by another groupwarden scan; gave up after waiting 1s"),
        "{}",
        stderr(&output)
    );
    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(
        tenant.scan(&report, &[]).status("ownerless-groups:g-a"),
        "open"
    );
}

#[test]
fn a_scan_killed_midway_leaves_the_database_as_it_was() {
    let tenant = Tenant::new();
    let groups: Vec<Group> = (0..1000)
        .map(|i| group(&format!("g-{i}"), &format!("Group {i}")).ownerless())
        .collect();
    let first = tenant.report("r1.csv", "2026-11-01", &groups);
    tenant.scan(&first, &[]);
    let snapshot = |conn: &Connection| -> Vec<(String, String, i64)> {
        let mut statement = conn
            .prepare("SELECT key, status, last_seen_scan FROM findings ORDER BY key")
            .unwrap();
        statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let before = snapshot(&Connection::open(tenant.db()).unwrap());

    // A report that keeps coming through a pipe: the first 500 groups are
    // fixed, the rest still ownerless, and many new ones follow.
    let mut child = tenant
        .command(&["scan", "-i", "-", "-f", "jsonl", "--threads", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let refresh: Date = "2026-11-08".parse().unwrap();
        let _ = writeln!(stdin, "{HEADER}");
        for i in 0..2_000_000 {
            let g = group(&format!("g-{i}"), &format!("Group {i}"));
            let g = if i < 500 { g } else { g.ownerless() };
            if writeln!(stdin, "{}", g.row(refresh)).is_err() {
                return;
            }
        }
    });
    // Findings arriving on stdout mean the scan is mid-way: its transaction
    // is open and the report has not ended.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains("\"status\""), "{line}");
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdout);
    feeder.join().unwrap();

    let conn = Connection::open(tenant.db()).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    assert_eq!(
        snapshot(&conn),
        before,
        "nothing of the killed scan was kept"
    );
    let scans: Vec<String> = conn
        .prepare("SELECT outcome FROM scans")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(scans, ["completed"]);
    drop(conn);

    let second = tenant.report(
        "r2.csv",
        "2026-11-08",
        &groups[..600]
            .iter()
            .enumerate()
            .map(|(i, g)| {
                if i < 500 {
                    group(&g.id, &g.name)
                } else {
                    g.clone()
                }
            })
            .collect::<Vec<_>>(),
    );
    let scan = tenant.scan(&second, &[]);
    assert_eq!(scan.status("ownerless-groups:g-0"), "resolved");
    assert_eq!(scan.status("ownerless-groups:g-599"), "open");
    assert_eq!(scan.status("ownerless-groups:g-999"), "resolved");
}

#[test]
fn a_database_from_version_1_is_migrated_and_keeps_its_findings() {
    let tenant = Tenant::new();
    let conn = Connection::open(tenant.db()).unwrap();
    conn.execute_batch(V1_SCHEMA).unwrap();
    conn.execute_batch(
        "INSERT INTO scans (id, started_at, finished_at, source, refresh_date, rows, outcome, complete) \
           VALUES (1, '2026-10-01T06:00:00Z', '2026-10-01T06:00:01Z', 'old.csv', '2026-09-30', 1, 'completed', 1);
         INSERT INTO findings (key, rule, group_key, group_id, group_name, owner, severity, message, evidence, status, \
           first_seen_scan, first_seen_at, last_seen_scan, last_seen_at, last_announced_at) \
           VALUES ('ownerless-groups:g-a', 'ownerless-groups', 'g-a', 'g-a', 'Alpha', NULL, 'medium', 'The group has no owner', \
           '{\"is_deleted\":false}', 'new', 1, '2026-10-01T06:00:00Z', 1, '2026-10-01T06:00:00Z', '2026-10-01T06:00:01Z');
         PRAGMA user_version = 1; PRAGMA application_id = 1196909617;",
    )
    .unwrap();
    drop(conn);
    let report = tenant.report("r.csv", "2026-11-01", &[group("g-a", "Alpha").ownerless()]);
    let scan = tenant.scan(&report, &[]);
    assert_eq!(scan.status("ownerless-groups:g-a"), "open");
    assert_eq!(tenant.sql::<i64>("PRAGMA user_version"), 9);
    // Version 5: the old scan has no counts, the new one has.
    assert_eq!(
        tenant.sql::<String>("SELECT group_concat(counts_recorded) FROM (SELECT counts_recorded FROM scans ORDER BY id)"),
        "0,1"
    );
    assert_eq!(
        tenant.sql::<String>("SELECT first_seen_at FROM findings"),
        "2026-10-01T06:00:00Z"
    );
    assert_eq!(tenant.sql::<i64>("SELECT count(*) FROM outbox"), 0);
}

/// Version 1 of the schema, as it was first released.
const V1_SCHEMA: &str = "
CREATE TABLE scans (id INTEGER PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT, source TEXT NOT NULL,
    refresh_date TEXT, report_period INTEGER, rows INTEGER NOT NULL DEFAULT 0, row_errors INTEGER NOT NULL DEFAULT 0,
    rule_errors INTEGER NOT NULL DEFAULT 0, findings INTEGER NOT NULL DEFAULT 0, outcome TEXT NOT NULL,
    complete INTEGER NOT NULL DEFAULT 0, error TEXT);
CREATE TABLE findings (key TEXT PRIMARY KEY, rule TEXT NOT NULL, group_key TEXT NOT NULL, group_id TEXT, group_name TEXT,
    owner TEXT, severity TEXT NOT NULL, message TEXT NOT NULL, evidence TEXT NOT NULL, status TEXT NOT NULL,
    first_seen_scan INTEGER NOT NULL, first_seen_at TEXT NOT NULL, last_seen_scan INTEGER NOT NULL, last_seen_at TEXT NOT NULL,
    last_announced_at TEXT, resolved_scan INTEGER, resolved_at TEXT, resolution TEXT);
CREATE INDEX findings_by_resolved_scan ON findings(resolved_scan) WHERE resolved_scan IS NOT NULL;
CREATE TABLE finding_events (id INTEGER PRIMARY KEY, scan_id INTEGER NOT NULL, at TEXT NOT NULL, key TEXT NOT NULL,
    rule TEXT NOT NULL, group_key TEXT NOT NULL, group_name TEXT, status TEXT NOT NULL, detail TEXT);
";

#[test]
fn a_database_from_a_newer_version_is_refused() {
    let tenant = Tenant::new();
    let report = tenant.report("r.csv", "2026-11-01", &[group("g-a", "Alpha")]);
    tenant.scan(&report, &[]);
    Connection::open(tenant.db())
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let output = tenant.run(&["scan", "-i", report.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output)
            .contains("has schema version 99, newer than the 9 this groupwarden understands"),
        "{}",
        stderr(&output)
    );
    assert!(tenant.run(&["findings"]).status.code() == Some(2));
}

#[test]
fn corrupt_foreign_and_unwritable_databases_are_clear_errors() {
    let tenant = Tenant::new();
    let report = tenant.report("r.csv", "2026-11-01", &[group("g-a", "Alpha")]);
    let scan_with =
        |state: &str| tenant.run(&["scan", "-i", report.to_str().unwrap(), "--state", state]);

    std::fs::write(
        tenant.path("garbage.db"),
        "this is not a database, just some text that is long enough to look like a header....",
    )
    .unwrap();
    let output = scan_with("garbage.db");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("state database garbage.db is corrupt or not a SQLite database"),
        "{}",
        stderr(&output)
    );

    // A real database with its pages overwritten.
    let damaged = tenant.path("damaged.db");
    assert!(scan_with("damaged.db").status.success());
    Connection::open(&damaged)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let mut bytes = std::fs::read(&damaged).unwrap();
    for byte in bytes.iter_mut().skip(4096) {
        *byte = 0x5A;
    }
    std::fs::write(&damaged, bytes).unwrap();
    let output = scan_with("damaged.db");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("is corrupt or not a SQLite database"),
        "{}",
        stderr(&output)
    );

    Connection::open(tenant.path("other.db"))
        .unwrap()
        .execute_batch("CREATE TABLE invoices (id INTEGER)")
        .unwrap();
    let output = scan_with("other.db");
    assert!(
        stderr(&output).contains("other.db is a SQLite database but not groupwarden's"),
        "{}",
        stderr(&output)
    );

    let output = scan_with("no/such/folder/s.db");
    assert!(
        stderr(&output).contains("cannot create it: the folder no/such/folder does not exist"),
        "{}",
        stderr(&output)
    );
    let output = scan_with("r.csv/s.db");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("state database r.csv/s.db"),
        "{}",
        stderr(&output)
    );

    let output = tenant.run(&["findings", "--state", "missing.db"]);
    assert!(
        stderr(&output).contains("state database missing.db does not exist"),
        "{}",
        stderr(&output)
    );
    assert!(
        !tenant.path("missing.db").exists(),
        "reading commands create nothing"
    );
}

#[test]
fn without_state_nothing_is_remembered_and_findings_have_no_status() {
    let tenant = Tenant::new();
    let report = tenant.report("r.csv", "2026-11-01", &[group("g-a", "Alpha").ownerless()]);
    let output = tenant.run(&[
        "scan",
        "-i",
        report.to_str().unwrap(),
        "-f",
        "jsonl",
        "--no-state",
    ]);
    assert!(output.status.success());
    let findings = by_key(&output.stdout);
    assert!(findings["ownerless-groups:g-a"].get("status").is_none());
    assert!(!tenant.db().exists());
}

#[test]
fn csv_and_table_outputs_carry_the_status() {
    let tenant = Tenant::new();
    let report = tenant.report("r.csv", "2026-11-01", &[group("g-a", "Alpha").ownerless()]);
    let csv = tenant.run(&["scan", "-i", report.to_str().unwrap(), "-f", "csv"]);
    let text = String::from_utf8_lossy(&csv.stdout);
    let mut lines = text.lines();
    assert!(lines.next().unwrap().ends_with(",evidence,status"));
    assert!(lines.next().unwrap().ends_with(",new"));
    let table = tenant.run(&["scan", "-i", report.to_str().unwrap(), "-f", "table"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("Status") && text.contains("open"), "{text}");
}

// Library level: the outbox and the clock-driven parts of the lifecycle.

const T0: &str = "2026-11-25T06:00:00Z";

fn open(path: &Path) -> Store {
    Store::open(
        path,
        &StoreOptions {
            lock_timeout: Duration::from_secs(5),
            create: true,
        },
    )
    .unwrap()
}

fn start(now: &str, policy: ScanPolicy) -> ScanStart {
    ScanStart {
        source: "test.csv".into(),
        now: now.parse().unwrap(),
        today: "2026-11-25".parse().unwrap(),
        rules: vec!["r".into()],
        exemptions: Exemptions::default(),
        policy,
        allow_older: false,
    }
}

/// A row of group `group` on which each of `rules` fired.
fn row(line: u64, group: &str, rules: &[&str]) -> RowOutcome {
    RowOutcome {
        line,
        group_key: group.into(),
        findings: rules
            .iter()
            .map(|rule| Finding {
                rule: Arc::from(*rule),
                severity: Severity::Medium,
                key: format!("{rule}:{group}"),
                group_id: Some(group.into()),
                group_name: Some(format!("Group {group}")),
                owner: None,
                message: format!("{rule} fired"),
                line: Some(line),
                evidence: EvidenceMap::default(),
            })
            .collect(),
        failures: Vec::new(),
        ..RowOutcome::default()
    }
}

/// Records a complete scan of `rows`; returns the store and the changes.
fn record(store: Store, start: ScanStart, rows: &[RowOutcome]) -> (Store, Changes) {
    let mut recorder = ScanRecorder::begin(store, start).unwrap();
    for row in rows {
        recorder.record_row(row).unwrap();
    }
    let mut summary = ScanSummary::default();
    summary.stats.rows = rows.len() as u64;
    let pending = recorder.finish(&summary).unwrap();
    pending.mark_announced().unwrap();
    pending.commit().unwrap()
}

fn at(time: &str, days: i64) -> String {
    let time: Timestamp = time.parse().unwrap();
    time.checked_add(jiff::SignedDuration::from_hours(24 * days))
        .unwrap()
        .to_string()
}

#[test]
fn an_outbox_message_survives_a_crash_and_is_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");

    // Record the scan and its message in one transaction, then "crash"
    // before delivering: the process goes away with the message unsent.
    {
        let mut recorder =
            ScanRecorder::begin(open(&path), start(T0, ScanPolicy::default())).unwrap();
        recorder.record_row(&row(2, "g1", &["r"])).unwrap();
        let pending = recorder.finish(&ScanSummary::default()).unwrap();
        let payload = serde_json::to_string(pending.changes()).unwrap();
        outbox::enqueue(pending.connection(), "team", "admins@contoso.com", &payload).unwrap();
        pending.mark_announced().unwrap();
        let (store, _) = pending.commit().unwrap();
        drop(store);
    }

    // The next run finds it pending, with the changes it announces.
    let store = open(&path);
    let pending = outbox::pending(store.connection()).unwrap();
    assert_eq!(pending.len(), 1);
    let changes: Changes = serde_json::from_str(&pending[0].payload).unwrap();
    assert_eq!(changes.new[0].key, "r:g1");
    assert_eq!(changes.new[0].status, Status::New);

    let mut sent = Vec::new();
    for message in outbox::claim(store.connection(), Duration::from_secs(300)).unwrap() {
        sent.push(message.id); // the channel accepted it
        assert!(outbox::mark_delivered(store.connection(), message.id).unwrap());
    }
    assert_eq!(sent.len(), 1);
    drop(store);

    // And the run after that sends nothing again.
    let store = open(&path);
    assert!(outbox::pending(store.connection()).unwrap().is_empty());
    assert!(
        outbox::claim(store.connection(), Duration::from_secs(300))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_crash_before_commit_loses_the_scan_and_its_messages_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    {
        let mut recorder =
            ScanRecorder::begin(open(&path), start(T0, ScanPolicy::default())).unwrap();
        recorder.record_row(&row(2, "g1", &["r"])).unwrap();
        let pending = recorder.finish(&ScanSummary::default()).unwrap();
        outbox::enqueue(pending.connection(), "team", "admins@contoso.com", "{}").unwrap();
        // Dropped here without commit.
    }
    let store = open(&path);
    assert!(outbox::pending(store.connection()).unwrap().is_empty());
    let findings: i64 = store
        .connection()
        .query_row("SELECT count(*) FROM findings", [], |r| r.get(0))
        .unwrap();
    let scans: i64 = store
        .connection()
        .query_row("SELECT count(*) FROM scans", [], |r| r.get(0))
        .unwrap();
    assert_eq!((findings, scans), (0, 0));
    // The finding is new again for the scan that does complete.
    let (_, changes) = record(
        store,
        start(T0, ScanPolicy::default()),
        &[row(2, "g1", &["r"])],
    );
    assert_eq!(changes.counts.new, 1);
}

#[test]
fn open_findings_are_reminded_after_renotify_after() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let rows = [row(2, "g1", &["r"])];
    let weekly = ScanPolicy::default();
    let (store, changes) = record(open(&path), start(T0, weekly.clone()), &rows);
    assert_eq!(changes.new.len(), 1);
    let (store, changes) = record(store, start(&at(T0, 1), weekly.clone()), &rows);
    assert_eq!(
        (changes.counts.open, changes.counts.reminders),
        (1, 0),
        "announced yesterday"
    );
    let (store, changes) = record(store, start(&at(T0, 8), weekly.clone()), &rows);
    assert_eq!(
        changes
            .reminders
            .iter()
            .map(|f| f.key.as_str())
            .collect::<Vec<_>>(),
        ["r:g1"]
    );
    let (store, changes) = record(store, start(&at(T0, 9), weekly), &rows);
    assert_eq!(changes.counts.reminders, 0, "reminded yesterday");
    let never = ScanPolicy {
        renotify_after: None,
        ..ScanPolicy::default()
    };
    let (_, changes) = record(store, start(&at(T0, 60), never), &rows);
    assert_eq!(changes.counts.reminders, 0);
}

#[test]
fn resolved_findings_and_old_scans_are_purged_after_retention() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let policy = ScanPolicy::default(); // 180 days
    let (store, _) = record(
        open(&path),
        start(T0, policy.clone()),
        &[row(2, "g1", &["r"]), row(3, "g2", &["r"])],
    );
    let (store, changes) = record(
        store,
        start(&at(T0, 1), policy.clone()),
        &[row(2, "g1", &["r"]), row(3, "g2", &[])],
    );
    assert_eq!(changes.resolved[0].key, "r:g2");
    let (store, _) = record(
        store,
        start(&at(T0, 100), policy.clone()),
        &[row(2, "g1", &["r"]), row(3, "g2", &[])],
    );
    let count = |store: &Store, sql: &str| -> i64 {
        store.connection().query_row(sql, [], |r| r.get(0)).unwrap()
    };
    assert_eq!(
        count(&store, "SELECT count(*) FROM findings"),
        2,
        "within retention"
    );
    let (store, _) = record(
        store,
        start(&at(T0, 200), policy),
        &[row(2, "g1", &["r"]), row(3, "g2", &[])],
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM findings"),
        1,
        "the resolved one is gone"
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM finding_events WHERE key = 'r:g2'"
        ),
        0
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM scans"),
        2,
        "scans from day 0 and 1 are gone"
    );
}

#[test]
fn the_state_goes_where_the_platform_says_or_the_error_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.csv");
    std::fs::write(&report, format!("{HEADER}\n")).unwrap();
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let scan = |env: &[(&str, &Path)]| {
        let mut command = gw_std(dir.path());
        command
            .args(["scan", "--format", "jsonl", "--rules"])
            .arg(&rules)
            .arg("--input")
            .arg(&report);
        for (name, value) in env {
            command.env(name, value);
        }
        command.output().unwrap()
    };
    // systemd's StateDirectory=, then GROUPWARDEN_STATE over it.
    let state_dir = dir.path().join("var-lib");
    std::fs::create_dir(&state_dir).unwrap();
    assert!(scan(&[("STATE_DIRECTORY", &state_dir)]).status.success());
    assert!(state_dir.join("groupwarden.db").is_file());
    let own = dir.path().join("own.db");
    assert!(
        scan(&[("STATE_DIRECTORY", &state_dir), ("GROUPWARDEN_STATE", &own)])
            .status
            .success()
    );
    assert!(own.is_file());
    // A place that cannot be written: exit 2, naming the origin and the fix.
    let blocked = report.join("gw.db");
    let output = scan(&[("GROUPWARDEN_STATE", &blocked)]);
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{log}");
    assert!(
        log.contains("(the path comes from GROUPWARDEN_STATE)"),
        "{log}"
    );
    assert!(log.contains("set [state] path in the config"), "{log}");
}

#[test]
fn a_lock_that_cannot_be_taken_on_an_existing_database_is_not_called_creating_it() {
    let tenant = Tenant::new();
    let first = tenant.report("r1.csv", "2026-11-01", &[group("g-a", "Alpha").ownerless()]);
    tenant.scan(&first, &[]);
    let mut lock = tenant.db().into_os_string();
    lock.push(".lock");
    std::fs::remove_file(&lock).unwrap();
    std::fs::create_dir(&lock).unwrap();
    let output = tenant.run(&["scan", "-i", first.to_str().unwrap(), "-f", "jsonl"]);
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{log}");
    assert!(
        log.contains("cannot write to it: cannot open its lock file"),
        "{log}"
    );
    assert!(!log.contains("cannot create it"), "{log}");
}

#[test]
fn first_seen_is_the_refresh_date_of_the_report_that_first_showed_it() {
    let tenant = Tenant::new();
    let first = tenant.report("r1.csv", "2026-11-01", &[group("g-a", "Alpha").ownerless()]);
    tenant.scan(&first, &[]);
    let second = tenant.report("r2.csv", "2026-11-08", &[group("g-a", "Alpha").ownerless()]);
    tenant.scan(&second, &[]);
    let finding = &tenant.findings(&[])["ownerless-groups:g-a"];
    assert_eq!(finding["first_seen_report"], "2026-11-01", "{finding}");
    // The page shows that day too, not the day the scan ran.
    let page = tenant.path("page.html");
    let output = tenant.run(&[
        "report",
        "-i",
        second.to_str().unwrap(),
        "--output",
        page.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        std::fs::read_to_string(&page)
            .unwrap()
            .contains("2026-11-01")
    );
}

#[test]
fn notify_dry_run_previews_what_the_next_scan_would_send_and_changes_nothing() {
    let tenant = Tenant::new();
    let first = tenant.report(
        "r1.csv",
        "2026-11-01",
        &[group("g-a", "Alpha").ownerless(), group("g-b", "Beta")],
    );
    let dry_run = |report: &Path| {
        let output = tenant.run(&["notify", "--input", report.to_str().unwrap(), "--dry-run"]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let hook = "[[notify]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\nformat = \"json\"\ninclude_resolved = true\n";
    // No database yet: a first run announces everything.
    tenant.config(hook);
    assert!(dry_run(&first).contains("ownerless-groups"));
    assert!(!tenant.db().exists(), "the preview made a database");
    // Recorded without channels, then previewed with one: the channel
    // was never told, so it would get its backlog, and the database is
    // untouched.
    tenant.config("");
    tenant.scan(&first, &[]);
    tenant.config(hook);
    let before = std::fs::read(tenant.db()).unwrap();
    let backlog = dry_run(&first);
    assert!(
        backlog.contains("==> message 1 of 1") && backlog.contains("ownerless-groups:g-a"),
        "{backlog}"
    );
    // A report where Alpha got an owner and Beta lost hers: Beta would be
    // sent as new; Alpha's resolution not, the channel never heard of it.
    let second = tenant.report(
        "r2.csv",
        "2026-11-08",
        &[group("g-a", "Alpha"), group("g-b", "Beta").ownerless()],
    );
    let preview = dry_run(&second);
    assert!(
        preview.contains("==> message 1 of 1")
            && preview.contains("ownerless-groups:g-b")
            && !preview.contains("ownerless-groups:g-a"),
        "{preview}"
    );
    assert_eq!(
        std::fs::read(tenant.db()).unwrap(),
        before,
        "the preview wrote to the database"
    );
}
