//! Findings over time and exemptions from the command line: real scans of
//! changing reports into a real SQLite file, `groupwarden trend` in every
//! format checked against what each scan output and `findings` say,
//! `exemptions add`/`remove` applied by the next scan, and `/metrics`
//! scraped from a running `groupwarden run`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use jiff::civil::Date;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::daemon::{Daemon, sample, scrape};
use crate::util::gw_std;

const HEADER: &str = "Report Refresh Date,Group Display Name,Is Deleted,Owner Principal Name,Last Activity Date,\
Member Count,External Member Count,Group Id,Report Period";

const STATUSES: [&str; 5] = ["new", "open", "reopened", "resolved", "exempted"];

/// A group's row: ownerless and/or inactive (200 days) or neither.
#[derive(Clone, Copy)]
struct Group {
    id: &'static str,
    name: &'static str,
    ownerless: bool,
    inactive: bool,
}

const fn g(id: &'static str, name: &'static str, ownerless: bool, inactive: bool) -> Group {
    Group {
        id,
        name,
        ownerless,
        inactive,
    }
}

impl Group {
    fn row(&self, refresh: Date) -> String {
        let days = if self.inactive { 200 } else { 1 };
        let last = refresh.checked_sub(jiff::Span::new().days(days)).unwrap();
        let owner = if self.ownerless {
            String::new()
        } else {
            format!("owner@{}.example", self.id)
        };
        format!(
            "{refresh},{},False,{owner},{last},12,0,{},30",
            self.name, self.id
        )
    }
}

struct Tenant {
    dir: TempDir,
}

impl Tenant {
    fn new(extra_config: &str) -> Tenant {
        let tenant = Tenant {
            dir: tempfile::tempdir().unwrap(),
        };
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let text = format!(
            "[rules]\ndir = {:?}\n\n[state]\npath = \"groupwarden.db\"\n{extra_config}",
            rules.display().to_string()
        );
        std::fs::write(tenant.path("groupwarden.toml"), text).unwrap();
        tenant
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn report(&self, refresh: &str, groups: &[Group]) -> PathBuf {
        let day: Date = refresh.parse().unwrap();
        let mut text = format!("{HEADER}\n");
        for group in groups {
            text.push_str(&group.row(day));
            text.push('\n');
        }
        let path = self.path(&format!("report-{refresh}.csv"));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = gw_std(self.dir.path());
        command
            .args(args)
            .env("GROUPWARDEN_LOG", "info")
            .env("USER", "tester");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// `args` must fail with exit 2; its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8(output.stderr).unwrap()
    }

    /// A stateful scan; the count of its output's findings by rule and
    /// status (resolved ones are written after the others).
    fn scan(&self, report: &Path) -> BTreeMap<String, BTreeMap<String, u64>> {
        let stdout = self.ok(&["scan", "-i", report.to_str().unwrap(), "-f", "jsonl"]);
        let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for line in stdout.lines() {
            let finding: Value = serde_json::from_str(line).unwrap();
            *counts
                .entry(finding["rule"].as_str().unwrap().to_owned())
                .or_default()
                .entry(finding["status"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        counts
    }

    fn trend(&self, extra: &[&str]) -> Vec<Value> {
        let mut args = vec!["trend", "-f", "json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&self.ok(&args)).unwrap()
    }

    /// `findings` (every status) counted by rule and status.
    fn findings_counts(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let stdout = self.ok(&[
            "findings",
            "-f",
            "jsonl",
            "--status",
            "new,open,reopened,exempted",
        ]);
        let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for line in stdout.lines() {
            let finding: Value = serde_json::from_str(line).unwrap();
            *counts
                .entry(finding["rule"].as_str().unwrap().to_owned())
                .or_default()
                .entry(finding["status"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        counts
    }
}

/// A trend entry's `rules` as nested maps without the zeros.
fn nonzero(rules: &Value) -> BTreeMap<String, BTreeMap<String, u64>> {
    rules
        .as_object()
        .unwrap()
        .iter()
        .map(|(rule, counts)| {
            let counts = STATUSES
                .iter()
                .filter_map(|s| {
                    let n = counts[*s].as_u64().unwrap();
                    (n > 0).then(|| ((*s).to_owned(), n))
                })
                .collect();
            (rule.clone(), counts)
        })
        .collect()
}

fn counts(pairs: &[(&str, &[(&str, u64)])]) -> BTreeMap<String, BTreeMap<String, u64>> {
    pairs
        .iter()
        .map(|(rule, statuses)| {
            let statuses = statuses
                .iter()
                .map(|(s, n)| ((*s).to_owned(), *n))
                .collect();
            ((*rule).to_owned(), statuses)
        })
        .collect()
}

const ALPHA: Group = g("00000000-0000-0000-0000-0000000000a1", "Alpha", true, false);
const BRAVO: Group = g("00000000-0000-0000-0000-0000000000b2", "Bravo", false, true);
const CHARLIE: Group = g(
    "00000000-0000-0000-0000-0000000000c3",
    "Charlie",
    true,
    true,
);
const DELTA: Group = g(
    "00000000-0000-0000-0000-0000000000d4",
    "Delta",
    false,
    false,
);
const ECHO: Group = g("00000000-0000-0000-0000-0000000000e5", "Echo", false, true);

fn fixed(group: Group) -> Group {
    Group {
        ownerless: false,
        inactive: false,
        ..group
    }
}

/// Four scans over changing reports, an exemption added and removed on
/// the command line between them: each scan's trend entry equals what
/// that scan's output said, finding by finding.
#[test]
fn trend_lists_each_scan_with_the_counts_its_output_gave() {
    let tenant = Tenant::new("");
    let reports = [
        tenant.report("2026-11-01", &[ALPHA, BRAVO, CHARLIE, DELTA]),
        tenant.report("2026-11-08", &[ALPHA, fixed(BRAVO), CHARLIE, DELTA, ECHO]),
        tenant.report("2026-11-15", &[ALPHA, BRAVO, CHARLIE, DELTA, ECHO]),
        tenant.report("2026-11-22", &[ALPHA, BRAVO, fixed(CHARLIE), DELTA, ECHO]),
    ];
    let mut outputs = Vec::new();
    outputs.push(tenant.scan(&reports[0]));
    outputs.push(tenant.scan(&reports[1]));
    tenant.ok(&[
        "exemptions",
        "add",
        "--rule",
        "ownerless-groups",
        "--group",
        "alpha",
        "--reason",
        "Archive kept for legal hold",
        "--expires",
        "2099-12-31",
        "--approved-by",
        "jane@contoso.com",
    ]);
    outputs.push(tenant.scan(&reports[2]));
    tenant.ok(&[
        "exemptions",
        "remove",
        "--rule",
        "ownerless-groups",
        "--group",
        ALPHA.id,
    ]);
    outputs.push(tenant.scan(&reports[3]));

    // What each scan's output said, fixed here as well so a change in
    // the lifecycle shows as a plain difference.
    assert_eq!(
        outputs[0],
        counts(&[
            ("inactive-groups", &[("new", 2)]),
            ("ownerless-groups", &[("new", 2)])
        ])
    );
    assert_eq!(
        outputs[1],
        counts(&[
            (
                "inactive-groups",
                &[("new", 1), ("open", 1), ("resolved", 1)]
            ),
            ("ownerless-groups", &[("open", 2)])
        ])
    );
    assert_eq!(
        outputs[2],
        counts(&[
            ("inactive-groups", &[("open", 2), ("reopened", 1)]),
            ("ownerless-groups", &[("exempted", 1), ("open", 1)])
        ])
    );
    assert_eq!(
        outputs[3]["inactive-groups"],
        [("open".to_owned(), 2), ("resolved".to_owned(), 1)].into()
    );
    assert_eq!(outputs[3]["ownerless-groups"]["resolved"], 1);

    let trend = tenant.trend(&[]);
    assert_eq!(trend.len(), 4, "{trend:#?}");
    let refresh = ["2026-11-01", "2026-11-08", "2026-11-15", "2026-11-22"];
    for (index, scan) in trend.iter().enumerate() {
        assert_eq!(scan["scan_id"], index as u64 + 1);
        assert_eq!(scan["report_refresh_date"], refresh[index]);
        assert_eq!(scan["counts_recorded"], true);
        assert!(scan["finished_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(
            nonzero(&scan["rules"]),
            outputs[index],
            "scan {}",
            index + 1
        );
        for status in STATUSES {
            let total: u64 = outputs[index]
                .values()
                .map(|c| c.get(status).copied().unwrap_or(0))
                .sum();
            assert_eq!(scan["counts"][status], total, "scan {} {status}", index + 1);
        }
    }
    // After the last scan, `findings` agrees with its active counts.
    let mut last_active = nonzero(&trend[3]["rules"]);
    for statuses in last_active.values_mut() {
        statuses.remove("resolved");
    }
    last_active.retain(|_, statuses| !statuses.is_empty());
    assert_eq!(tenant.findings_counts(), last_active);

    // `--rule` keeps that rule's counts, and totals only them.
    let only = tenant.trend(&["--rule", "inactive-groups"]);
    assert_eq!(
        only[1]["counts"],
        json!({"new": 1, "open": 1, "reopened": 0, "resolved": 1, "exempted": 0})
    );
    assert!(
        only.iter()
            .all(|s| s["rules"].as_object().unwrap().len() == 1)
    );
    // `--since`: a duration back from now takes every scan just made; a
    // day to come takes none.
    assert_eq!(tenant.trend(&["--since", "1d"]).len(), 4);
    assert_eq!(
        tenant.trend(&["--since", "2999-01-01"]),
        Vec::<Value>::new()
    );

    // CSV: one row per scan and rule, the same figures.
    let csv = tenant.ok(&["trend", "-f", "csv"]);
    let mut expected = String::from(
        "scan_id,finished_at,report_refresh_date,rule,new,open,reopened,resolved,exempted\n",
    );
    for scan in &trend {
        for (rule, c) in scan["rules"].as_object().unwrap() {
            expected.push_str(&format!(
                "{},{},{},{rule},{},{},{},{},{}\n",
                scan["scan_id"],
                scan["finished_at"].as_str().unwrap(),
                scan["report_refresh_date"].as_str().unwrap(),
                c["new"],
                c["open"],
                c["reopened"],
                c["resolved"],
                c["exempted"]
            ));
        }
    }
    assert_eq!(csv, expected);

    // The table: a row per scan and rule with the same cells.
    let table = tenant.ok(&["trend", "-f", "table"]);
    let rows: Vec<Vec<String>> = table
        .lines()
        .filter(|l| l.starts_with('│'))
        .map(|l| {
            l.trim_matches('│')
                .split(['│', '┆'])
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect();
    assert_eq!(
        rows[0],
        [
            "Scan", "Finished", "Report", "Rule", "New", "Open", "Reopened", "Resolved", "Exempted"
        ]
    );
    assert!(
        rows.iter().any(|r| r[0] == "3"
            && r[2] == "2026-11-15"
            && r[3] == "ownerless-groups"
            && r[4..] == ["0", "1", "0", "0", "1"]),
        "{table}"
    );

    // A mistyped rule is an error, not a column of zeros.
    let error = tenant.fails(&["trend", "--rule", "inactive-group"]);
    assert!(
        error
            .contains("has no findings of rule `inactive-group` (did you mean `inactive-groups`?)"),
        "{error}"
    );
    let error = tenant.fails(&["trend", "--since", "lately"]);
    assert!(error.contains("--since \"lately\""), "{error}");
}

/// An exemption added on the command line applies on the next scan (the
/// finding is exempted, with its reason and origin); removed, the finding
/// is back on the scan after.
#[test]
fn an_exemption_added_on_the_command_line_applies_from_the_next_scan() {
    let tenant = Tenant::new(
        "\n[[exemptions]]\nrule = \"inactive-groups\"\ngroup_name = \"Bravo\"\nreason = \"Seasonal\"\nexpires = \"2099-01-31\"\n",
    );
    let report = tenant.report("2026-11-01", &[ALPHA, BRAVO]);
    let status = |output: &str, rule: &str| -> Value {
        output
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|f| f["rule"] == rule && f["group_name"] == "Alpha")
            .unwrap_or_else(|| panic!("no {rule} finding on Alpha in {output}"))
    };
    let scan =
        |tenant: &Tenant| tenant.ok(&["scan", "-i", report.to_str().unwrap(), "-f", "jsonl"]);
    assert_eq!(status(&scan(&tenant), "ownerless-groups")["status"], "new");

    tenant.ok(&[
        "exemptions",
        "add",
        "--rule",
        "ownerless-groups",
        "--group",
        "ALPHA",
        "--reason",
        "Owner leaves in March",
        "--expires",
        "2099-03-31",
    ]);
    // Added, not applied until a scan runs.
    let findings = tenant.ok(&["findings", "-f", "jsonl", "--rule", "ownerless-groups"]);
    assert_eq!(status(&findings, "ownerless-groups")["status"], "new");
    assert_eq!(
        status(&scan(&tenant), "ownerless-groups")["status"],
        "exempted"
    );
    let findings = tenant.ok(&["findings", "-f", "jsonl", "--status", "exempted"]);
    let exempted = status(&findings, "ownerless-groups");
    assert_eq!(exempted["exemption"], "state exemption 1");
    assert_eq!(exempted["exemption_reason"], "Owner leaves in March");

    // Adding it again updates it: one exemption, the new reason.
    let output = tenant.run(&[
        "exemptions",
        "add",
        "--rule",
        "ownerless-groups",
        "--group",
        ALPHA.id,
        "--reason",
        "Owner leaves in April",
        "--expires",
        "2099-04-30",
    ]);
    assert!(output.status.success());
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("exemption 1 updated"), "{log}");

    // The listing: both origins, the config's with its file and line.
    let listing: Vec<Value> =
        serde_json::from_str(&tenant.ok(&["exemptions", "-f", "json"])).unwrap();
    assert_eq!(listing.len(), 2, "{listing:#?}");
    // The config is found in the current folder, and named as found.
    assert_eq!(listing[0]["source"], "groupwarden.toml:7", "{listing:#?}");
    assert_eq!(listing[0]["findings"], 1);
    let today = jiff::Zoned::now().date();
    assert_eq!(
        listing[1]["source"],
        format!("added by CLI on {today} by tester, updated on {today}")
    );
    assert_eq!(listing[1]["origin"], "state exemption 1");
    assert_eq!(listing[1]["group_id"], ALPHA.id);
    assert_eq!(listing[1]["reason"], "Owner leaves in April");
    assert_eq!(listing[1]["expires"], "2099-04-30");
    assert_eq!(listing[1]["findings"], 1);
    let table = tenant.ok(&["exemptions", "-f", "table"]);
    assert!(table.contains("added by CLI on"), "{table}");

    // The config's exemption cannot be removed from the command line.
    let error = tenant.fails(&[
        "exemptions",
        "remove",
        "--rule",
        "inactive-groups",
        "--group",
        "Bravo",
    ]);
    assert!(
        error.contains("is written in groupwarden.toml:7: edit that file"),
        "{error}"
    );

    tenant.ok(&[
        "exemptions",
        "remove",
        "--rule",
        "ownerless-groups",
        "--group",
        "Alpha",
    ]);
    // Never announced (no channels), so it comes back as new.
    let after = scan(&tenant);
    assert_eq!(status(&after, "ownerless-groups")["status"], "new");
    let history = tenant.ok(&["history", "Alpha", "-f", "jsonl"]);
    let statuses: Vec<String> = history
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["rule"] == "ownerless-groups")
        .map(|e| e["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["new", "exempted", "new"]);
    let error = tenant.fails(&[
        "exemptions",
        "remove",
        "--rule",
        "ownerless-groups",
        "--group",
        "Alpha",
    ]);
    assert!(
        error.contains("no exemption of rule `ownerless-groups` on \"Alpha\""),
        "{error}"
    );
}

#[test]
fn exemptions_add_refuses_what_it_cannot_apply() {
    let tenant = Tenant::new("");
    let report = tenant.report("2026-11-01", &[ALPHA]);
    tenant.ok(&["scan", "-i", report.to_str().unwrap(), "-f", "jsonl"]);
    let add = |rule: &str, group: &str, reason: &str, expires: &str| {
        tenant.fails(&[
            "exemptions",
            "add",
            "--rule",
            rule,
            "--group",
            group,
            "--reason",
            reason,
            "--expires",
            expires,
        ])
    };
    let error = add("ownerles-groups", "Alpha", "r", "2099-01-01");
    assert!(
        error.contains(
            "--rule ownerles-groups: no rule has this id (did you mean `ownerless-groups`?)"
        ),
        "{error}"
    );
    let error = add("ownerless-groups", "Alpah", "r", "2099-01-01");
    assert!(
        error.contains("--group \"Alpah\": no finding in state database")
            && error.contains("(did you mean \"Alpha\"?)"),
        "{error}"
    );
    let error = add("ownerless-groups", "Alpha", "  ", "2099-01-01");
    assert!(error.contains("--reason is empty"), "{error}");
    let error = add("ownerless-groups", "Alpha", "r", "2020-01-01");
    assert!(
        error.contains("--expires 2020-01-01 is in the past"),
        "{error}"
    );
    let error = add("ownerless-groups", "Alpha", "r", "2099-02-30");
    assert!(
        error.contains("--expires \"2099-02-30\" is not a date"),
        "{error}"
    );
    // Nothing was added.
    let listing: Vec<Value> =
        serde_json::from_str(&tenant.ok(&["exemptions", "-f", "json"])).unwrap();
    assert!(listing.is_empty(), "{listing:#?}");
}

/// `/metrics` of a running daemon: the last scan's findings by rule and
/// status, the figures `trend` gives for that scan.
#[test]
fn metrics_give_the_last_scans_findings_by_rule_and_status() {
    let tenant = Tenant::new(
        "\n[source]\ntype = \"file\"\npath = \"report-2026-11-01.csv\"\n\n[schedule]\ncron = \"0 0 1 1 *\"\nrun_on_start = true\n\n[health]\nlisten = \"127.0.0.1:0\"\n",
    );
    tenant.report("2026-11-01", &[ALPHA, BRAVO, CHARLIE, DELTA]);
    let mut daemon = Daemon::start(tenant.dir.path(), &tenant.path("groupwarden.toml"));
    daemon.next_scan_success();
    let (code, text) = daemon.get("/metrics");
    assert_eq!(code, 200);
    let scraped = scrape(&text);
    let trend = tenant.trend(&[]);
    assert_eq!(trend.len(), 1);
    let rules = trend[0]["rules"].as_object().unwrap();
    assert_eq!(rules.len(), 2, "{trend:#?}");
    for (rule, counts) in rules {
        for status in STATUSES {
            assert_eq!(
                sample(
                    &scraped,
                    "groupwarden_findings_by_status",
                    &[("rule", rule.as_str()), ("status", status)]
                ),
                Some(counts[status].as_u64().unwrap() as f64),
                "{rule} {status} in\n{text}"
            );
        }
    }
    assert_eq!(
        sample(
            &scraped,
            "groupwarden_findings_by_status",
            &[("rule", "ownerless-groups"), ("status", "new")]
        ),
        Some(2.0)
    );
    // A rule without findings still has its series, at zero.
    assert_eq!(
        sample(
            &scraped,
            "groupwarden_findings_by_status",
            &[("rule", "deleted-with-storage"), ("status", "open")]
        ),
        Some(0.0)
    );
}

/// The HTML page of a report, with state kept, has the trend chart of
/// the recorded scans.
#[test]
fn the_page_has_a_trend_chart_when_state_is_kept() {
    let tenant = Tenant::new("");
    let first = tenant.report("2026-11-01", &[ALPHA, BRAVO]);
    let second = tenant.report("2026-11-08", &[ALPHA, fixed(BRAVO)]);
    tenant.scan(&first);
    tenant.scan(&second);
    tenant.ok(&["report", "-i", second.to_str().unwrap(), "-o", "page.html"]);
    let page = std::fs::read_to_string(tenant.path("page.html")).unwrap();
    assert!(page.contains("id=\"trend-chart\""), "no trend chart");
    assert!(page.contains("Findings over the last 2 scans"));
    assert!(page.contains("scan 2 (2026-11-08): 1 open"), "{page}");
    assert!(page.contains("scan 2 (2026-11-08): 1 resolved"));
    // Without state, no chart.
    tenant.ok(&[
        "report",
        "-i",
        second.to_str().unwrap(),
        "-o",
        "plain.html",
        "--state",
        "missing.db",
    ]);
    let plain = std::fs::read_to_string(tenant.path("plain.html")).unwrap();
    assert!(!plain.contains("trend-chart"));
}

/// Scans recorded before counts were kept are listed as such, never as
/// zeros; a scan without findings still has its row.
#[test]
fn scans_without_recorded_counts_say_so() {
    let tenant = Tenant::new("");
    tenant.scan(&tenant.report("2026-11-01", &[ALPHA]));
    // As a scan of a version-3 database left it.
    let db = rusqlite::Connection::open(tenant.path("groupwarden.db")).unwrap();
    db.execute_batch("UPDATE scans SET counts_recorded = 0; DELETE FROM scan_counts;")
        .unwrap();
    drop(db);
    tenant.scan(&tenant.report("2026-11-08", &[DELTA]));
    let trend = tenant.trend(&[]);
    assert_eq!(trend[0]["counts_recorded"], false);
    assert_eq!(trend[0]["counts"], Value::Null);
    assert_eq!(trend[0]["rules"], json!({}));
    // Alpha is gone from a report read whole: resolved.
    assert_eq!(
        trend[1]["counts"],
        json!({"new": 0, "open": 0, "reopened": 0, "resolved": 1, "exempted": 0})
    );
    let table = tenant.ok(&["trend", "-f", "table"]);
    assert!(table.contains("(counts not recorded)"), "{table}");
    let csv = tenant.ok(&["trend", "-f", "csv"]);
    let first = csv.lines().nth(1).unwrap();
    assert!(
        first.starts_with("1,") && first.ends_with(",2026-11-01,,,,,,"),
        "{csv}"
    );
}

/// A name several groups share is refused with (a few of) their ids.
#[test]
fn a_name_several_groups_share_must_be_given_by_id() {
    let tenant = Tenant::new("");
    let twins: Vec<Group> = (1..=7)
        .map(|i| {
            let id: &'static str =
                Box::leak(format!("00000000-0000-0000-0000-00000000010{i}").into_boxed_str());
            g(id, "Twins", true, false)
        })
        .collect();
    tenant.scan(&tenant.report("2026-11-01", &twins));
    let error = tenant.fails(&[
        "exemptions",
        "add",
        "--rule",
        "*",
        "--group",
        "twins",
        "--reason",
        "r",
        "--expires",
        "2099-01-01",
    ]);
    assert!(
        error.contains(
            "--group \"twins\" names 7 groups (00000000-0000-0000-0000-000000000101, 00000000-0000-0000-0000-000000000102, 00000000-0000-0000-0000-000000000103, 00000000-0000-0000-0000-000000000104, 00000000-0000-0000-0000-000000000105, and 2 more): give the id"
        ),
        "{error}"
    );
    // By id it is taken, and `*` covers every rule.
    tenant.ok(&[
        "exemptions",
        "add",
        "--rule",
        "*",
        "--group",
        "00000000-0000-0000-0000-000000000103",
        "--reason",
        "r",
        "--expires",
        "2099-01-01",
    ]);
    let trend_after = {
        tenant.scan(&tenant.report("2026-11-08", &twins));
        tenant.trend(&[])
    };
    assert_eq!(
        trend_after[1]["counts"],
        json!({"new": 0, "open": 6, "reopened": 0, "resolved": 0, "exempted": 1})
    );
}
