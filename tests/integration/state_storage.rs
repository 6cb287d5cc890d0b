//! How findings are stored (schema version 4): a database at version 3 is
//! converted with its statuses and history intact, and a scan that sees
//! findings as they were writes nothing to them while the `findings` view
//! still says they were seen. Real SQLite files, the real binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use rusqlite::Connection;
use serde_json::Value;
use tempfile::TempDir;

use crate::util::gw_std;

const HEADER: &str = "Report Refresh Date,Group Display Name,Is Deleted,Owner Principal Name,Last Activity Date,\
Member Count,External Member Count,Group Id,Report Period";

/// Version 3 of the schema, as released (versions 1 to 3 in one).
const V3_SCHEMA: &str = "
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
ALTER TABLE findings ADD COLUMN exemption TEXT;
ALTER TABLE findings ADD COLUMN exemption_reason TEXT;
CREATE TABLE outbox (id INTEGER PRIMARY KEY, created_at TEXT NOT NULL, channel TEXT NOT NULL, recipient TEXT NOT NULL,
    payload TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_attempt_at TEXT, last_error TEXT, claimed_until TEXT,
    delivered_at TEXT);
CREATE INDEX outbox_undelivered ON outbox(id) WHERE delivered_at IS NULL;
ALTER TABLE outbox ADD COLUMN delivery_id TEXT;
ALTER TABLE outbox ADD COLUMN runs INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN dead_at TEXT;
CREATE UNIQUE INDEX outbox_by_delivery_id ON outbox(delivery_id);
PRAGMA user_version = 3;
PRAGMA application_id = 1196909617;
";

/// Two completed scans; after the second: `g-a` new (first seen by it),
/// `g-b` resolved by it, `g-c` open, `g-d` new in the first scan and not
/// seen by the second (its rule errored there, say).
const V3_DATA: &str = "
INSERT INTO scans (id, started_at, finished_at, source, refresh_date, rows, outcome, complete) VALUES
    (1, '2026-10-01T06:00:00Z', '2026-10-01T06:00:01Z', 'a.csv', '2026-09-30', 4, 'completed', 1),
    (2, '2026-10-15T06:00:00Z', '2026-10-15T06:00:01Z', 'b.csv', '2026-10-14', 4, 'completed', 1);
INSERT INTO findings (key, rule, group_key, group_id, group_name, owner, severity, message, evidence, status,
    first_seen_scan, first_seen_at, last_seen_scan, last_seen_at, resolved_scan, resolved_at, resolution) VALUES
    ('ownerless-groups:g-a', 'ownerless-groups', 'g-a', 'g-a', 'Alpha', NULL, 'medium', 'The group has no owner',
     '{\"is_deleted\":false}', 'new', 2, '2026-10-15T06:00:00Z', 2, '2026-10-15T06:00:00Z', NULL, NULL, NULL),
    ('ownerless-groups:g-b', 'ownerless-groups', 'g-b', 'g-b', 'Beta', NULL, 'medium', 'The group has no owner',
     '{\"is_deleted\":false}', 'resolved', 1, '2026-10-01T06:00:00Z', 1, '2026-10-01T06:00:00Z', 2, '2026-10-15T06:00:00Z', 'rule-cleared'),
    ('ownerless-groups:g-c', 'ownerless-groups', 'g-c', 'g-c', 'Gamma', NULL, 'medium', 'The group has no owner',
     '{\"is_deleted\":false}', 'open', 1, '2026-10-01T06:00:00Z', 2, '2026-10-15T06:00:00Z', NULL, NULL, NULL),
    ('ownerless-groups:g-d', 'ownerless-groups', 'g-d', 'g-d', 'Delta', NULL, 'medium', 'The group has no owner',
     '{\"is_deleted\":false}', 'new', 1, '2026-10-01T06:00:00Z', 1, '2026-10-01T06:00:00Z', NULL, NULL, NULL);
INSERT INTO finding_events (scan_id, at, key, rule, group_key, group_name, status, detail) VALUES
    (1, '2026-10-01T06:00:00Z', 'ownerless-groups:g-b', 'ownerless-groups', 'g-b', 'Beta', 'new', 'The group has no owner'),
    (2, '2026-10-15T06:00:00Z', 'ownerless-groups:g-b', 'ownerless-groups', 'g-b', 'Beta', 'resolved', 'rule-cleared');
";

struct Tenant {
    dir: TempDir,
}

impl Tenant {
    fn new() -> Tenant {
        let dir = tempfile::tempdir().unwrap();
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let config = format!("[rules]\ndir = {:?}\n", rules.display().to_string());
        std::fs::write(dir.path().join("groupwarden.toml"), config).unwrap();
        Tenant { dir }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("groupwarden.db")
    }

    /// A report refreshed on 2026-11-01 with these groups (id, name,
    /// ownerless), all active.
    fn report(&self, groups: &[(&str, &str, bool)]) -> PathBuf {
        let mut text = format!("{HEADER}\n");
        for (id, name, ownerless) in groups {
            let owner = if *ownerless {
                String::new()
            } else {
                format!("owner@{id}.example")
            };
            text.push_str(&format!(
                "2026-11-01,{name},False,{owner},2026-10-31,12,0,{id},30\n"
            ));
        }
        let path = self.dir.path().join("report.csv");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn run(&self, args: &[&str]) -> Output {
        let output = gw_std(self.dir.path())
            .args(args)
            .env("GROUPWARDEN_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "groupwarden {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// A stateful scan: each finding's status by key.
    fn scan(&self, report: &Path) -> BTreeMap<String, String> {
        statuses(&self.run(&["scan", "-i", report.to_str().unwrap(), "-f", "jsonl"]))
    }

    fn rows(&self, sql: &str) -> Vec<Vec<rusqlite::types::Value>> {
        let conn = Connection::open(self.db()).unwrap();
        let mut statement = conn.prepare(sql).unwrap();
        let columns = statement.column_count();
        statement
            .query_map([], |row| {
                (0..columns).map(|i| row.get(i)).collect::<Result<_, _>>()
            })
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn one<T: rusqlite::types::FromSql>(&self, sql: &str) -> T {
        Connection::open(self.db())
            .unwrap()
            .query_row(sql, [], |row| row.get(0))
            .unwrap()
    }
}

fn statuses(output: &Output) -> BTreeMap<String, String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .map(|v| {
            (
                v["key"].as_str().unwrap().to_owned(),
                v["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn expect(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, s)| (format!("ownerless-groups:{k}"), s.to_string()))
        .collect()
}

#[test]
fn a_database_at_version_3_is_converted_with_its_statuses_and_history() {
    let tenant = Tenant::new();
    let conn = Connection::open(tenant.db()).unwrap();
    conn.execute_batch(V3_SCHEMA).unwrap();
    conn.execute_batch(V3_DATA).unwrap();
    drop(conn);

    // Read before any scan: the statuses the version-3 file held.
    let listed = statuses(&tenant.run(&["findings", "-f", "jsonl"]));
    assert_eq!(
        listed,
        expect(&[("g-a", "new"), ("g-c", "open"), ("g-d", "new")])
    );
    assert!(tenant.one::<i64>("PRAGMA user_version") >= 4);
    assert_eq!(
        tenant.one::<i64>("SELECT count(*) FROM finding_state WHERE key_hash IS NULL"),
        0
    );

    // g-c got an owner; g-b lost its own again.
    let report = tenant.report(&[
        ("g-a", "Alpha", true),
        ("g-b", "Beta", true),
        ("g-c", "Gamma", false),
        ("g-d", "Delta", true),
    ]);
    assert_eq!(
        tenant.scan(&report),
        expect(&[
            ("g-a", "open"),
            ("g-b", "reopened"),
            ("g-c", "resolved"),
            ("g-d", "open")
        ])
    );
    // First seen is kept; last seen is this scan (3) for what it saw.
    assert_eq!(
        tenant.rows(
            "SELECT key, first_seen_scan, last_seen_scan, resolution FROM findings ORDER BY key"
        ),
        vec![
            row(&["ownerless-groups:g-a"], &[2, 3], None),
            row(&["ownerless-groups:g-b"], &[1, 3], None),
            row(&["ownerless-groups:g-c"], &[1, 2], Some("rule-cleared")),
            row(&["ownerless-groups:g-d"], &[1, 3], None),
        ]
    );
    assert_eq!(
        tenant.rows("SELECT key, status FROM finding_events WHERE scan_id = 3 ORDER BY key"),
        vec![
            texts(&["ownerless-groups:g-b", "reopened"]),
            texts(&["ownerless-groups:g-c", "resolved"]),
        ]
    );
}

fn texts(values: &[&str]) -> Vec<rusqlite::types::Value> {
    values
        .iter()
        .map(|v| rusqlite::types::Value::Text(v.to_string()))
        .collect()
}

fn row(texts_: &[&str], ints: &[i64], last: Option<&str>) -> Vec<rusqlite::types::Value> {
    use rusqlite::types::Value as V;
    let mut row = texts(texts_);
    row.extend(ints.iter().map(|i| V::Integer(*i)));
    row.push(last.map_or(V::Null, |t| V::Text(t.to_owned())));
    row
}

#[test]
fn a_repeat_scan_writes_nothing_to_findings_that_did_not_change() {
    let tenant = Tenant::new();
    let groups = [
        ("g-a", "Alpha", true),
        ("g-b", "Beta", true),
        ("g-c", "Gamma", true),
    ];
    let report = tenant.report(&groups);
    assert_eq!(
        tenant.scan(&report),
        expect(&[("g-a", "new"), ("g-b", "new"), ("g-c", "new")])
    );
    let stored = "SELECT * FROM finding_state ORDER BY id";
    let after_first = tenant.rows(stored);

    // Seen again as they were: open, and not one stored row changed.
    assert_eq!(
        tenant.scan(&report),
        expect(&[("g-a", "open"), ("g-b", "open"), ("g-c", "open")])
    );
    assert_eq!(tenant.rows(stored), after_first);
    // What readers see moved on all the same.
    assert_eq!(
        tenant.rows("SELECT DISTINCT status, last_seen_scan FROM findings"),
        vec![vec![
            rusqlite::types::Value::Text("open".into()),
            rusqlite::types::Value::Integer(2)
        ]]
    );
    // A finding's first event is its first scan, not a row; new → open
    // is no event either.
    assert_eq!(
        tenant.one::<i64>("SELECT count(*) FROM finding_events"),
        0,
        "no history rows for new, nor for new → open"
    );

    // One group renamed: only its row is written; the others still not.
    let renamed = tenant.report(&[
        ("g-a", "Alpha", true),
        ("g-b", "Beta (archive)", true),
        ("g-c", "Gamma", true),
    ]);
    tenant.scan(&renamed);
    let after_rename = tenant.rows(stored);
    assert_eq!(after_rename[0], after_first[0]);
    assert_eq!(after_rename[2], after_first[2]);
    assert_ne!(after_rename[1], after_first[1]);
    assert_eq!(
        tenant.one::<String>("SELECT group_name FROM findings WHERE key = 'ownerless-groups:g-b'"),
        "Beta (archive)"
    );
}

/// Every finding line of a scan's JSONL output, in order.
fn lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .collect()
}

#[test]
fn findings_are_stored_compactly_and_read_back_as_the_scan_gave_them() {
    let tenant = Tenant::new();
    let report = tenant.report(&[("g-a", "Alpha", true), ("g-b", "Beta", true)]);
    let scanned = lines(&tenant.run(&["scan", "-i", report.to_str().unwrap(), "-f", "jsonl"]));
    // The key and group id are not stored twice, the evidence's names
    // once per shape.
    assert_eq!(
        tenant.one::<i64>(
            "SELECT count(*) FROM finding_state WHERE key IS NULL AND group_id = '' AND evidence LIKE '[%'"
        ),
        2
    );
    assert_eq!(tenant.one::<i64>("SELECT count(*) FROM evidence_shapes"), 1);
    // `findings` gives back what the scan said, evidence in its order.
    let listed = lines(&tenant.run(&["findings", "--format", "jsonl"]));
    assert_eq!(listed.len(), 2);
    for finding in &scanned {
        let stored = listed
            .iter()
            .find(|f| f["key"] == finding["key"])
            .expect("listed");
        for field in ["rule", "group_id", "group_name", "message", "severity"] {
            assert_eq!(stored[field], finding[field], "{field}");
        }
        assert_eq!(
            serde_json::to_string(&stored["evidence"]).unwrap(),
            serde_json::to_string(&finding["evidence"]).unwrap()
        );
    }
}

#[test]
fn a_group_listed_twice_is_one_finding_with_the_later_rows_details() {
    let tenant = Tenant::new();
    let report = tenant.report(&[
        ("g-a", "Alpha", true),
        ("g-b", "Beta", true),
        ("g-a", "Alpha (copy)", true),
    ]);
    let first = lines(&tenant.run(&["scan", "-i", report.to_str().unwrap(), "-f", "jsonl"]));
    let statuses: Vec<&str> = first
        .iter()
        .map(|f| f["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["new", "new", "new"]);
    assert_eq!(tenant.one::<i64>("SELECT count(*) FROM finding_state"), 2);
    assert_eq!(
        tenant.one::<String>("SELECT group_name FROM findings WHERE key = 'ownerless-groups:g-a'"),
        "Alpha (copy)"
    );
    // Counted once, in the summary and in the trend.
    assert_eq!(
        tenant.one::<i64>("SELECT count FROM scan_counts WHERE scan_id = 1 AND status = 'new'"),
        2
    );
    // The next scan finds the one finding again, listed twice or not.
    let again = tenant.scan(&report);
    assert_eq!(again, expect(&[("g-a", "open"), ("g-b", "open")]));
    assert_eq!(tenant.one::<i64>("SELECT count(*) FROM finding_state"), 2);
}

#[test]
fn history_begins_with_the_scan_that_first_saw_a_finding() {
    let tenant = Tenant::new();
    let ownerless = [("g-a", "Alpha", true), ("g-b", "Beta", true)];
    tenant.scan(&tenant.report(&ownerless));
    tenant.scan(&tenant.report(&[("g-a", "Alpha", false), ("g-b", "Beta", true)]));
    tenant.scan(&tenant.report(&ownerless));
    let history = lines(&tenant.run(&["history", "g-a", "--format", "jsonl"]));
    let steps: Vec<(i64, &str)> = history
        .iter()
        .map(|e| {
            (
                e["scan_id"].as_i64().unwrap(),
                e["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(steps, [(1, "new"), (2, "resolved"), (3, "reopened")]);
    // Only the changes after the first are rows.
    assert_eq!(
        tenant.one::<i64>("SELECT count(*) FROM finding_events WHERE key = 'ownerless-groups:g-a'"),
        2
    );
}

/// A first scan into an empty database writes its findings once (a
/// rollback journal, not the WAL) and leaves the file in WAL mode with no
/// journal; with another connection open it stays in WAL mode throughout,
/// with the same findings.
#[test]
fn a_first_scan_writes_once_and_leaves_the_file_in_wal_mode() {
    let groups = [
        ("g-a", "Alpha", true),
        ("g-b", "Beta", true),
        ("g-c", "Gamma", false),
    ];
    let alone = Tenant::new();
    let report = alone.report(&groups);
    let first = alone.scan(&report);
    assert_eq!(first, expect(&[("g-a", "new"), ("g-b", "new")]));
    assert_eq!(alone.one::<String>("PRAGMA journal_mode"), "wal");
    assert!(!alone.dir.path().join("groupwarden.db-journal").exists());
    assert_eq!(
        alone.scan(&report),
        expect(&[("g-a", "open"), ("g-b", "open")])
    );

    let watched = Tenant::new();
    // The database exists (a scan found nothing) and a reader has it open
    // while the first scan with findings runs.
    assert!(watched.scan(&watched.report(&groups[2..])).is_empty());
    let report = watched.report(&groups);
    let reader = Connection::open(watched.db()).unwrap();
    let count = |conn: &Connection| -> i64 {
        conn.query_row("SELECT count(*) FROM findings", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count(&reader), 0);
    assert_eq!(watched.scan(&report), first);
    assert_eq!(count(&reader), 2);
    assert_eq!(watched.one::<String>("PRAGMA journal_mode"), "wal");
}
