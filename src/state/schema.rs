//! The database layout and its versioned migrations.
//!
//! `PRAGMA user_version` holds the number of migrations applied;
//! `PRAGMA application_id` marks the file as groupwarden's, so a stranger's
//! SQLite file is refused instead of being written into. Migrations run in
//! order, each in the same write transaction as the version bump, so a
//! database is always at exactly one version. A database newer than this
//! program is refused: old code must not write a layout it does not know.
//!
//! Times are stored as UTC RFC 3339 text with whole seconds
//! (`2026-11-25T06:00:00Z`), so text order is time order.

use rusqlite::Connection;

/// "GWd1": groupwarden's `PRAGMA application_id`.
pub(crate) const APPLICATION_ID: i32 = 0x4757_6431;

/// Version 1: scans, findings and their history.
const V1: &str = r#"
CREATE TABLE scans (
    id            INTEGER PRIMARY KEY,
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    source        TEXT NOT NULL,
    refresh_date  TEXT,
    report_period INTEGER,
    rows          INTEGER NOT NULL DEFAULT 0,
    row_errors    INTEGER NOT NULL DEFAULT 0,
    rule_errors   INTEGER NOT NULL DEFAULT 0,
    findings      INTEGER NOT NULL DEFAULT 0,
    -- running (only ever seen inside the scan's own transaction),
    -- completed, failed or refused
    outcome       TEXT NOT NULL,
    -- 1 when the report was read whole without row errors, so findings of
    -- groups missing from it could resolve
    complete      INTEGER NOT NULL DEFAULT 0,
    error         TEXT
);

CREATE TABLE findings (
    key             TEXT PRIMARY KEY,
    rule            TEXT NOT NULL,
    group_key       TEXT NOT NULL,
    group_id        TEXT,
    group_name      TEXT,
    owner           TEXT,
    severity        TEXT NOT NULL,
    message         TEXT NOT NULL,
    evidence        TEXT NOT NULL,
    -- new, open, reopened, resolved
    status          TEXT NOT NULL,
    first_seen_scan INTEGER NOT NULL,
    first_seen_at   TEXT NOT NULL,
    last_seen_scan  INTEGER NOT NULL,
    last_seen_at    TEXT NOT NULL,
    last_announced_at TEXT,
    resolved_scan   INTEGER,
    resolved_at     TEXT,
    -- rule-cleared or group-gone
    resolution      TEXT
);
-- Few indexes on purpose: a scan rewrites every finding it sees, and each
-- index is more to write. Listings and history read whole tables, which
-- is quick next to a scan.
CREATE INDEX findings_by_resolved_scan ON findings(resolved_scan) WHERE resolved_scan IS NOT NULL;

CREATE TABLE finding_events (
    id         INTEGER PRIMARY KEY,
    scan_id    INTEGER NOT NULL,
    at         TEXT NOT NULL,
    key        TEXT NOT NULL,
    rule       TEXT NOT NULL,
    group_key  TEXT NOT NULL,
    group_name TEXT,
    status     TEXT NOT NULL,
    detail     TEXT
);
"#;

/// Version 2: exemptions on findings, and the notification outbox.
const V2: &str = r#"
ALTER TABLE findings ADD COLUMN exemption TEXT;
ALTER TABLE findings ADD COLUMN exemption_reason TEXT;

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    created_at      TEXT NOT NULL,
    channel         TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    payload         TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_attempt_at TEXT,
    last_error      TEXT,
    -- a sender that took the message owns it until then
    claimed_until   TEXT,
    delivered_at    TEXT
);
CREATE INDEX outbox_undelivered ON outbox(id) WHERE delivered_at IS NULL;
"#;

/// Version 3: outbox messages get a delivery id (an idempotency key sent
/// with every attempt), a count of the delivery runs that tried them, and
/// a dead-letter mark. Messages already queued get their id here.
const V3: &str = r#"
ALTER TABLE outbox ADD COLUMN delivery_id TEXT;
-- delivery runs (a scan's or `notify --retry`'s) that tried the message
ALTER TABLE outbox ADD COLUMN runs INTEGER NOT NULL DEFAULT 0;
-- set when delivery stopped for good: refused, or out of runs
ALTER TABLE outbox ADD COLUMN dead_at TEXT;
UPDATE outbox SET delivery_id = 'gw-' || id || '-' || lower(hex(randomblob(8)))
    WHERE delivery_id IS NULL;
CREATE UNIQUE INDEX outbox_by_delivery_id ON outbox(delivery_id);
"#;

/// Version 4: announcement accounting per channel. `announcements` holds
/// what each channel accepted last about each finding (or notice);
/// `outbox_items` what each queued message carries, copied into
/// `announcements` when the channel accepts it. Both are filled from the
/// messages already in the outbox, so an upgrade neither repeats what
/// was delivered nor forgets what waits.
const V4: &str = r#"
CREATE TABLE announcements (
    channel TEXT NOT NULL,
    -- a finding's key, or `exemption:…` / `held:…` for a notice
    key     TEXT NOT NULL,
    -- new, reopened, reminder, resolved (a finding); due (a reminder is
    -- owed); expiring, expired (an exemption); held (a held-back notice)
    status  TEXT NOT NULL,
    at      TEXT NOT NULL,
    PRIMARY KEY (channel, key)
) WITHOUT ROWID;
-- a scan's reopened and reminded findings, and retention, go by key
CREATE INDEX announcements_by_key ON announcements(key);

CREATE TABLE outbox_items (
    outbox_id INTEGER NOT NULL,
    channel   TEXT NOT NULL,
    key       TEXT NOT NULL,
    status    TEXT NOT NULL,
    PRIMARY KEY (outbox_id, key)
) WITHOUT ROWID;
CREATE INDEX outbox_items_by_channel ON outbox_items(channel, key);

INSERT OR REPLACE INTO announcements (channel, key, status, at)
SELECT o.channel, json_extract(i.value, '$.key'), json_extract(i.value, '$.status'), o.delivered_at
FROM outbox o,
     json_each(CASE WHEN json_valid(o.payload) THEN o.payload ELSE '{}' END, '$.items') i
WHERE o.delivered_at IS NOT NULL AND json_extract(i.value, '$.key') IS NOT NULL
ORDER BY o.delivered_at, o.id;

INSERT OR IGNORE INTO outbox_items (outbox_id, channel, key, status)
SELECT o.id, o.channel, json_extract(i.value, '$.key'), json_extract(i.value, '$.status')
FROM outbox o,
     json_each(CASE WHEN json_valid(o.payload) THEN o.payload ELSE '{}' END, '$.items') i
WHERE o.delivered_at IS NULL AND json_extract(i.value, '$.key') IS NOT NULL;
"#;

/// Version 5: each scan's findings counted by rule and status (what
/// `groupwarden trend`, the page's trend chart and `/metrics` read), and
/// exemptions added on the command line. Scans recorded before have no
/// counts (`counts_recorded` 0): they cannot be rebuilt exactly, since an
/// open finding seen again leaves no history row.
const V5: &str = r#"
ALTER TABLE scans ADD COLUMN counts_recorded INTEGER NOT NULL DEFAULT 0;

CREATE TABLE scan_counts (
    scan_id INTEGER NOT NULL,
    rule    TEXT NOT NULL,
    -- new, open, reopened, resolved (by this scan) or exempted
    status  TEXT NOT NULL,
    count   INTEGER NOT NULL,
    PRIMARY KEY (scan_id, rule, status)
) WITHOUT ROWID;

CREATE TABLE exemptions (
    id          INTEGER PRIMARY KEY,
    rule        TEXT NOT NULL,
    -- exactly one of the two
    group_id    TEXT,
    group_name  TEXT,
    reason      TEXT NOT NULL,
    -- the last day it applies, YYYY-MM-DD
    expires     TEXT NOT NULL,
    approved_by TEXT,
    added_at    TEXT NOT NULL,
    added_by    TEXT NOT NULL,
    updated_at  TEXT
);
CREATE UNIQUE INDEX exemptions_by_target ON exemptions(rule, coalesce(lower(group_id), ''), coalesce(lower(group_name), ''));
"#;

/// Version 6: the directory cache (`[directory]`): each Microsoft 365
/// group's facts as JSON, and when the whole directory was fetched (one
/// row), so a cache of a tenant without groups is still a cache.
const V6: &str = r#"
CREATE TABLE directory_groups (
    id         TEXT PRIMARY KEY,
    facts      TEXT NOT NULL,
    fetched_at TEXT NOT NULL
);
CREATE TABLE directory_fetches (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    fetched_at TEXT NOT NULL,
    groups     INTEGER NOT NULL
);
"#;

/// Version 7: findings are stored so that a scan writes only what changed.
///
/// `finding_state` holds one row per finding; `findings` is a view over it
/// with the columns earlier versions stored, so readers are unchanged.
///
/// - A finding is looked up by `key_hash` (the first 8 bytes of the
///   key's SHA-256, as a signed integer; filled in by
///   [`fill_key_hashes`] for rows this migration converts) and its
///   `key`: the index holds 8-byte numbers instead of 50-byte keys, so it
///   stays in the page cache. Rows are in the order findings first
///   appeared, which is report order: a repeat scan reads them in order.
/// - "Seen by the latest completed scan" is kept set-wise:
///   `last_seen_scan` and `last_seen_at` are NULL for those findings and
///   `state_meta` names that scan once. A finding the latest scan did not
///   see has them written out.
/// - `new` and `reopened` last for the scan that set them (`status_scan`):
///   the view shows them as `open` once a later scan has seen the
///   finding. So an unchanged finding is not written at all.
const V7: &str = r#"
CREATE TABLE finding_state (
    id              INTEGER PRIMARY KEY,
    key_hash        INTEGER,
    key             TEXT NOT NULL,
    rule            TEXT NOT NULL,
    group_key       TEXT NOT NULL,
    group_id        TEXT,
    group_name      TEXT,
    owner           TEXT,
    severity        TEXT NOT NULL,
    message         TEXT NOT NULL,
    evidence        TEXT NOT NULL,
    -- new, open, reopened, resolved or exempted
    status          TEXT NOT NULL,
    -- for new and reopened: the scan that set the status
    status_scan     INTEGER,
    first_seen_scan INTEGER NOT NULL,
    first_seen_at   TEXT NOT NULL,
    -- NULL: seen by the latest completed scan (state_meta)
    last_seen_scan  INTEGER,
    last_seen_at    TEXT,
    last_announced_at TEXT,
    resolved_scan   INTEGER,
    resolved_at     TEXT,
    -- rule-cleared or group-gone
    resolution      TEXT,
    exemption       TEXT,
    exemption_reason TEXT
);
INSERT INTO finding_state (key, rule, group_key, group_id, group_name, owner, severity, message, evidence, status, status_scan,
    first_seen_scan, first_seen_at, last_seen_scan, last_seen_at, last_announced_at, resolved_scan, resolved_at, resolution,
    exemption, exemption_reason)
SELECT key, rule, group_key, group_id, group_name, owner, severity, message, evidence, status,
    CASE WHEN status IN ('new', 'reopened') THEN last_seen_scan END,
    first_seen_scan, first_seen_at, last_seen_scan, last_seen_at, last_announced_at, resolved_scan, resolved_at, resolution,
    exemption, exemption_reason
FROM findings ORDER BY rowid;
DROP TABLE findings;
CREATE INDEX finding_state_by_key_hash ON finding_state(key_hash);
-- The findings a scan may have to resolve.
CREATE INDEX finding_state_active ON finding_state(id) WHERE status != 'resolved';
CREATE INDEX finding_state_by_resolved_scan ON finding_state(resolved_scan) WHERE resolved_scan IS NOT NULL;

CREATE TABLE state_meta (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    -- the latest completed scan: the one findings with a NULL last_seen_scan were seen by
    latest_scan    INTEGER,
    latest_scan_at TEXT
);
INSERT INTO state_meta (id) VALUES (1);

CREATE VIEW findings AS
SELECT f.id, f.key, f.rule, f.group_key, f.group_id, f.group_name, f.owner, f.severity, f.message, f.evidence,
    CASE WHEN f.status IN ('new', 'reopened') AND f.status_scan IS NOT coalesce(f.last_seen_scan, m.latest_scan)
         THEN 'open' ELSE f.status END AS status,
    f.first_seen_scan, f.first_seen_at,
    coalesce(f.last_seen_scan, m.latest_scan) AS last_seen_scan,
    coalesce(f.last_seen_at, m.latest_scan_at) AS last_seen_at,
    f.last_announced_at, f.resolved_scan, f.resolved_at, f.resolution, f.exemption, f.exemption_reason
FROM finding_state f CROSS JOIN state_meta m;
"#;

/// Version 8: findings stored compactly, and a scan that reads little.
///
/// - `key` is NULL when it is `rule:group_key` (nearly always) and
///   `group_id` is `''` when it equals `group_key`; the view puts them
///   back.
/// - Evidence whose names match a shape in `evidence_shapes` (the names a
///   rule gives, in order) is stored as a JSON array of the values, with
///   `evidence_shape` naming the shape; the view rebuilds the object.
///   Other evidence stays a JSON object.
/// - `content_hash` is a hash of what a scan compares (key, rule, group,
///   name, owner, severity, message, evidence, exemption), so a scan
///   loads the few columns it needs once, into memory, instead of looking
///   each finding up (0 for rows converted here: rewritten once).
/// - `first_seen_at` is seconds since 1970 (the view shows it as RFC
///   3339 text, as before).
/// - A finding's first event (`new`) is not written to `finding_events`:
///   history reads it from the finding's first scan. Events for later
///   changes, and a first event other than `new`, are written.
const V8: &str = r#"
DROP VIEW findings;
CREATE TABLE evidence_shapes (
    id   INTEGER PRIMARY KEY,
    -- a JSON array of names
    keys TEXT NOT NULL UNIQUE
);
CREATE TABLE finding_state_v8 (
    id              INTEGER PRIMARY KEY,
    key_hash        INTEGER,
    content_hash    INTEGER NOT NULL DEFAULT 0,
    status          TEXT NOT NULL,
    status_scan     INTEGER,
    first_seen_scan INTEGER NOT NULL,
    -- seconds since 1970 (UTC); the view shows RFC 3339
    first_seen_at   INTEGER NOT NULL,
    last_seen_scan  INTEGER,
    last_seen_at    TEXT,
    last_announced_at TEXT,
    resolved_scan   INTEGER,
    resolved_at     TEXT,
    resolution      TEXT,
    exemption       TEXT,
    exemption_reason TEXT,
    rule            TEXT NOT NULL,
    group_key       TEXT NOT NULL,
    -- NULL: rule || ':' || group_key
    key             TEXT,
    -- '': the same as group_key
    group_id        TEXT,
    group_name      TEXT,
    owner           TEXT,
    severity        TEXT NOT NULL,
    message         TEXT NOT NULL,
    -- set: evidence is a JSON array of the values of this shape's names
    evidence_shape  INTEGER,
    evidence        TEXT NOT NULL
);
INSERT INTO finding_state_v8 (id, key_hash, content_hash, status, status_scan, first_seen_scan, first_seen_at, last_seen_scan,
    last_seen_at, last_announced_at, resolved_scan, resolved_at, resolution, exemption, exemption_reason, rule, group_key, key,
    group_id, group_name, owner, severity, message, evidence_shape, evidence)
SELECT id, key_hash, 0, status, status_scan, first_seen_scan, coalesce(unixepoch(first_seen_at), 0), last_seen_scan,
    last_seen_at, last_announced_at, resolved_scan, resolved_at, resolution, exemption, exemption_reason, rule, group_key,
    CASE WHEN key = rule || ':' || group_key THEN NULL ELSE key END,
    CASE WHEN group_id = group_key THEN '' ELSE group_id END,
    group_name, owner, severity, message, NULL, evidence
FROM finding_state ORDER BY id;
DROP TABLE finding_state;
ALTER TABLE finding_state_v8 RENAME TO finding_state;
CREATE INDEX finding_state_by_key_hash ON finding_state(key_hash);
CREATE INDEX finding_state_by_resolved_scan ON finding_state(resolved_scan) WHERE resolved_scan IS NOT NULL;
CREATE INDEX finding_events_by_key ON finding_events(key, scan_id);

CREATE VIEW findings AS
SELECT f.id, coalesce(f.key, f.rule || ':' || f.group_key) AS key, f.rule, f.group_key,
    CASE WHEN f.group_id = '' THEN f.group_key ELSE f.group_id END AS group_id,
    f.group_name, f.owner, f.severity, f.message,
    CASE WHEN f.evidence_shape IS NULL THEN f.evidence
         ELSE (SELECT json_group_object(k.value, f.evidence -> k.key)
               FROM evidence_shapes s, json_each(s.keys) k WHERE s.id = f.evidence_shape) END AS evidence,
    -- the same for groupwarden's own reading, cheaper: the names (a JSON
    -- array), a line break, the values; or the object
    CASE WHEN f.evidence_shape IS NULL THEN f.evidence
         ELSE (SELECT keys FROM evidence_shapes WHERE id = f.evidence_shape) || char(10) || f.evidence END AS stored_evidence,
    CASE WHEN f.status IN ('new', 'reopened') AND f.status_scan IS NOT coalesce(f.last_seen_scan, m.latest_scan)
         THEN 'open' ELSE f.status END AS status,
    f.first_seen_scan, strftime('%Y-%m-%dT%H:%M:%SZ', f.first_seen_at, 'unixepoch') AS first_seen_at,
    coalesce(f.last_seen_scan, m.latest_scan) AS last_seen_scan,
    coalesce(f.last_seen_at, m.latest_scan_at) AS last_seen_at,
    f.last_announced_at, f.resolved_scan, f.resolved_at, f.resolution, f.exemption, f.exemption_reason
FROM finding_state f CROSS JOIN state_meta m;
"#;

/// Version 9: no index by key hash. A scan knows the stored findings'
/// key hashes in memory (see `known`), so the index served only a few
/// lookups by key, and building it after a first scan was a sort of every
/// finding (0.2 s of a million-finding first scan, 1.2 s at five million)
/// and 7% of the file. What still finds a finding by key now goes by its
/// row id:
///
/// - a queued message's items carry the id of the finding each announces
///   (`outbox_items.finding_id`, filled here for the messages waiting), so
///   marking them announced reads only their rows;
/// - two stored keys with one hash (never seen in practice) and a report
///   listing a group twice are told apart by reading the rows concerned.
const V9: &str = r#"
ALTER TABLE outbox_items ADD COLUMN finding_id INTEGER;
UPDATE outbox_items SET finding_id = f.id
FROM (SELECT id, coalesce(key, rule || ':' || group_key) AS k FROM finding_state) AS f
WHERE f.k = outbox_items.key AND outbox_items.status IN ('new', 'reopened', 'reminder');
DROP INDEX IF EXISTS finding_state_by_key_hash;
"#;

/// Every migration, oldest first; the schema version is their count.
pub(crate) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7, V8, V9];

/// The version this program writes.
pub(crate) const CURRENT_VERSION: i32 = MIGRATIONS.len() as i32;

/// What the file says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    /// `PRAGMA user_version`: migrations applied.
    pub version: i32,
    /// `PRAGMA application_id`: [`APPLICATION_ID`] in a file groupwarden made.
    pub application_id: i32,
    /// Tables of any kind: an empty file has none.
    pub tables: i64,
}

/// Reads what the file at `conn` says about itself.
pub(crate) fn identity(conn: &Connection) -> rusqlite::Result<Identity> {
    Ok(Identity {
        version: conn.pragma_query_value(None, "user_version", |row| row.get(0))?,
        application_id: conn.pragma_query_value(None, "application_id", |row| row.get(0))?,
        tables: conn.query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))?,
    })
}

impl Identity {
    /// A file groupwarden made, or an empty one it may take.
    pub(crate) fn is_ours(&self) -> bool {
        self.application_id == APPLICATION_ID || (self.application_id == 0 && self.tables == 0)
    }
}

/// Applies the migrations after `from`. The caller holds the write lock
/// and commits.
pub(crate) fn apply(conn: &Connection, from: i32) -> rusqlite::Result<()> {
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(from.max(0) as usize) {
        conn.execute_batch(sql)?;
        conn.pragma_update(None, "user_version", index as i32 + 1)?;
    }
    fill_key_hashes(conn)?;
    conn.pragma_update(None, "application_id", APPLICATION_ID)?;
    Ok(())
}

pub(crate) use crate::engine::finding::key_hash;

/// Gives the rows a migration converted their `key_hash` (SQL has no
/// SHA-256): until then a scan could not find them.
fn fill_key_hashes(conn: &Connection) -> rusqlite::Result<()> {
    // In batches, in row order: the rows are not updated while the table
    // is being walked, each batch starts where the last ended, and memory
    // stays bounded.
    let mut missing = conn.prepare(
        "SELECT id, coalesce(key, rule || ':' || group_key) FROM finding_state \
         WHERE id > ?1 AND key_hash IS NULL ORDER BY id LIMIT 10000",
    )?;
    let mut update = conn.prepare("UPDATE finding_state SET key_hash = ?1 WHERE id = ?2")?;
    let mut after = i64::MIN;
    loop {
        let batch: Vec<(i64, String)> = missing
            .query_map([after], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let Some(&(last, _)) = batch.last() else {
            return Ok(());
        };
        for (id, key) in batch {
            update.execute(rusqlite::params![key_hash(&key), id])?;
        }
        after = last;
    }
}

/// Stores a finding of rule `r` on `group_key` with `key_hash`, as a
/// scan of schema version 8 or later would, for tests of what reads it.
#[cfg(test)]
pub(crate) fn insert_test_finding(conn: &Connection, key_hash: i64, group_key: &str) {
    conn.execute(
        "INSERT INTO finding_state (key_hash, content_hash, status, status_scan, first_seen_scan, first_seen_at, \
         rule, group_key, severity, message, evidence) VALUES (?1, 0, 'new', 1, 1, 0, 'r', ?2, 'low', 'm', '{}')",
        rusqlite::params![key_hash, group_key],
    )
    .unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database in memory at schema version `version`.
    fn database_at(version: usize) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..version] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", version as i32)
            .unwrap();
        conn
    }

    #[test]
    fn each_version_builds_on_the_last() {
        let conn = Connection::open_in_memory().unwrap();
        apply(&conn, 0).unwrap();
        let id = identity(&conn).unwrap();
        assert_eq!(
            (id.version, id.application_id),
            (CURRENT_VERSION, APPLICATION_ID)
        );
        assert!(id.is_ours());
        // Applying again from the current version is a no-op.
        apply(&conn, CURRENT_VERSION).unwrap();
    }

    #[test]
    fn version_9_gives_waiting_items_their_findings_row_and_drops_the_key_index() {
        let conn = database_at(8);
        for (key_hash, group) in [(11, "g1"), (22, "g2")] {
            insert_test_finding(&conn, key_hash, group);
        }
        conn.execute_batch(
            "INSERT INTO outbox (created_at, channel, recipient, payload, delivery_id) \
                 VALUES ('2026-11-25T06:00:00Z', 'mail', 'x', '{}', 'd1'); \
             INSERT INTO outbox_items (outbox_id, channel, key, status) VALUES \
                 (1, 'mail', 'r:g2', 'new'), (1, 'mail', 'r:gone', 'reminder'), (1, 'mail', 'held:mail', 'held');",
        )
        .unwrap();
        apply(&conn, 8).unwrap();
        let items: Vec<(String, Option<i64>)> = conn
            .prepare("SELECT key, finding_id FROM outbox_items ORDER BY key")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            items,
            [
                ("held:mail".to_owned(), None),
                ("r:g2".to_owned(), Some(2)),
                ("r:gone".to_owned(), None)
            ]
        );
        let indexes: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'finding_state_by_key_hash'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 0);
    }

    #[test]
    fn messages_queued_before_version_3_get_a_delivery_id() {
        // A version-2 database with two messages waiting.
        let conn = database_at(2);
        for recipient in ["a@x", "b@x"] {
            conn.execute(
                "INSERT INTO outbox (created_at, channel, recipient, payload) VALUES ('2026-11-25T06:00:00Z', 'team', ?1, '{}')",
                [recipient],
            )
            .unwrap();
        }
        apply(&conn, 2).unwrap();
        let ids: Vec<String> = conn
            .prepare("SELECT delivery_id FROM outbox ORDER BY id")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(ids.len(), 2);
        assert!(
            ids[0].starts_with("gw-1-") && ids[1].starts_with("gw-2-"),
            "{ids:?}"
        );
        assert_ne!(ids[0], ids[1]);
    }

    #[test]
    fn version_4_accounts_for_the_messages_already_in_the_outbox() {
        let conn = database_at(3);
        let items =
            r#"{"items":[{"key":"r:g1","status":"new"},{"key":"r:g2","status":"reminder"}]}"#;
        for (channel, delivered) in [("hook", Some("2026-11-25T06:00:01Z")), ("mail", None)] {
            conn.execute(
                "INSERT INTO outbox (created_at, channel, recipient, payload, delivered_at, delivery_id) \
                 VALUES ('2026-11-25T06:00:00Z', ?1, 'x', ?2, ?3, ?1)",
                rusqlite::params![channel, items, delivered],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO outbox (created_at, channel, recipient, payload, delivery_id) \
             VALUES ('2026-11-25T06:00:00Z', 'mail', 'x', 'not json', 'broken')",
            [],
        )
        .unwrap();
        apply(&conn, 3).unwrap();
        let rows = |sql: &str| -> Vec<String> {
            conn.prepare(sql)
                .unwrap()
                .query_map([], |row| row.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        assert_eq!(
            rows(
                "SELECT channel || ' ' || key || ' ' || status || ' ' || at FROM announcements ORDER BY key"
            ),
            [
                "hook r:g1 new 2026-11-25T06:00:01Z",
                "hook r:g2 reminder 2026-11-25T06:00:01Z"
            ]
        );
        assert_eq!(
            rows("SELECT channel || ' ' || key || ' ' || status FROM outbox_items ORDER BY key"),
            ["mail r:g1 new", "mail r:g2 reminder"]
        );
    }

    #[test]
    fn a_strangers_database_is_not_ours() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE customers(id)").unwrap();
        assert!(!identity(&conn).unwrap().is_ours());
    }
}
