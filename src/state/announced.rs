//! Announcement accounting: what each channel was told, and so what it is
//! owed.
//!
//! Two tables (schema version 4) keep the account:
//!
//! - `outbox_items`: what each queued message carries, one row per
//!   finding (or notice) and the status it announces. Written with the
//!   message ([`note_carried`]), inside the scan's transaction.
//! - `announcements`: per channel and finding (or notice), the last status
//!   the channel *accepted*, and when. [`record_delivery`] copies a
//!   message's items here once its channel accepted it, never before; a
//!   message that fails, waits or was held back by a cap marks nothing.
//!
//! What a channel is owed ([`count_owed`], [`owed`]) is what it routes
//! minus what it was told in that status: an active finding it never heard
//! of is `new` to it (a channel added late gets its backlog that way), one
//! it last heard of as resolved (or whose episode ended unannounced) is
//! `reopened`, one it heard of longer than `renotify_after` ago (or one
//! whose exemption lapsed) is due a `reminder`, and a resolved finding it
//! heard of as active is `resolved` (when it announces those). Findings a
//! pending or dead-lettered message of the channel already carries are not
//! owed again: that message goes out on retry, or, once discarded, the
//! findings are owed again.
//!
//! Notices (an exemption expiring or expired, a note that a cap held
//! messages back) are accounted for the same way under keys of their own
//! ([`exemption_key`], `held:…`), so each goes to a channel once per state.

use rusqlite::{Connection, OptionalExtension, params};

use super::changes::StoredFinding;
use super::exemptions::ExemptionNotice;
use super::lifecycle::time_text;
use super::query::{FINDING_COLUMNS, stored_finding};

/// How many columns `FINDING_COLUMNS` selects.
const FINDING_COLUMN_COUNT: usize = 20;

/// What a channel is owed about a finding: the status its next message
/// announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owed {
    /// Active, and the channel never heard of it.
    New,
    /// Active again after the channel heard of it in an earlier episode.
    Reopened,
    /// Active, and the channel heard of it before the reminder cutoff (or
    /// its exemption lapsed).
    Reminder,
    /// Resolved, and the channel last heard of it as active.
    Resolved,
}

impl Owed {
    /// As stored in `outbox_items` and `announcements`.
    pub fn as_str(self) -> &'static str {
        match self {
            Owed::New => "new",
            Owed::Reopened => "reopened",
            Owed::Reminder => "reminder",
            Owed::Resolved => "resolved",
        }
    }

    fn parse(text: &str) -> Option<Owed> {
        [Owed::New, Owed::Reopened, Owed::Reminder, Owed::Resolved]
            .into_iter()
            .find(|o| o.as_str() == text)
    }
}

/// What one channel routes, in the terms the database can filter on.
#[derive(Clone, Debug)]
pub struct ChannelScope<'a> {
    /// The channel's name (`[[notify]] name`).
    pub channel: &'a str,
    /// The rule ids the channel admits (its globs applied to the rules
    /// that have findings: see [`rules_with_findings`]).
    pub rules: Vec<String>,
    /// The severities it admits, as stored (`high`, …).
    pub severities: Vec<&'static str>,
    /// Whether it announces resolved findings.
    pub include_resolved: bool,
    /// Findings last told to it before this time are due a reminder
    /// (stored form); `None`: no reminders.
    pub reminder_cutoff: Option<String>,
}

/// How many findings a channel is owed, per status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OwedCounts {
    /// Never told.
    pub new: u64,
    /// Told in an earlier episode.
    pub reopened: u64,
    /// Due a reminder.
    pub reminders: u64,
    /// Resolved since it was told.
    pub resolved: u64,
}

impl OwedCounts {
    /// All of them.
    pub fn total(&self) -> u64 {
        self.new + self.reopened + self.reminders + self.resolved
    }
}

/// The owed findings as `(owed_key, told)` rows, for the scope bound as
/// `?1` channel, `?2` rules (JSON array), `?3` severities (JSON array),
/// `?4` include resolved, `?5` reminder cutoff.
const OWED: &str = "WITH owed (owed_key, told) AS ( \
    SELECT findings.key, CASE \
        WHEN findings.status != 'resolved' AND a.status IS NULL THEN 'new' \
        WHEN findings.status != 'resolved' AND a.status = 'resolved' THEN 'reopened' \
        WHEN findings.status != 'resolved' AND (a.status = 'due' OR a.at <= ?5) THEN 'reminder' \
        WHEN findings.status = 'resolved' AND a.status IN ('new', 'reopened', 'reminder', 'due') THEN 'resolved' \
      END \
    FROM findings LEFT JOIN announcements a ON a.channel = ?1 AND a.key = findings.key \
    WHERE (findings.status IN ('new', 'open', 'reopened') OR (?4 AND findings.status = 'resolved')) \
      AND findings.rule IN (SELECT value FROM json_each(?2)) \
      AND findings.severity IN (SELECT value FROM json_each(?3)) \
      AND NOT EXISTS (SELECT 1 FROM outbox_items i JOIN outbox o ON o.id = i.outbox_id \
                      WHERE i.channel = ?1 AND i.key = findings.key AND o.delivered_at IS NULL) \
  ) ";

fn bind<'a>(scope: &'a ChannelScope<'a>) -> (String, String) {
    let json = |values: Vec<&str>| serde_json::to_string(&values).expect("strings serialise");
    (
        json(scope.rules.iter().map(String::as_str).collect()),
        json(scope.severities.clone()),
    )
}

/// How many findings `scope`'s channel is owed, without loading them.
pub fn count_owed(conn: &Connection, scope: &ChannelScope<'_>) -> rusqlite::Result<OwedCounts> {
    let (rules, severities) = bind(scope);
    let sql =
        format!("{OWED} SELECT told, count(*) FROM owed WHERE told IS NOT NULL GROUP BY told");
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query(params![
        scope.channel,
        rules,
        severities,
        scope.include_resolved,
        scope.reminder_cutoff
    ])?;
    let mut counts = OwedCounts::default();
    while let Some(row) = rows.next()? {
        let told: String = row.get(0)?;
        let count: u64 = row.get(1)?;
        match Owed::parse(&told) {
            Some(Owed::New) => counts.new = count,
            Some(Owed::Reopened) => counts.reopened = count,
            Some(Owed::Reminder) => counts.reminders = count,
            Some(Owed::Resolved) => counts.resolved = count,
            None => {}
        }
    }
    Ok(counts)
}

/// The findings `scope`'s channel is owed, each with what it is owed and
/// its row id (what [`Carried::finding`] holds).
pub fn owed(
    conn: &Connection,
    scope: &ChannelScope<'_>,
) -> rusqlite::Result<Vec<(StoredFinding, Owed, i64)>> {
    let (rules, severities) = bind(scope);
    let sql = format!(
        "{OWED} SELECT {FINDING_COLUMNS}, owed.told, findings.id FROM findings JOIN owed ON owed.owed_key = findings.key \
         WHERE owed.told IS NOT NULL ORDER BY rule, key"
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(
        params![
            scope.channel,
            rules,
            severities,
            scope.include_resolved,
            scope.reminder_cutoff
        ],
        |row| {
            // After the finding's columns.
            let told: String = row.get(FINDING_COLUMN_COUNT)?;
            let owed = Owed::parse(&told).ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(
                    FINDING_COLUMN_COUNT,
                    rusqlite::types::Type::Text,
                    format!("unknown announcement status `{told}`").into(),
                )
            })?;
            Ok((
                stored_finding(row)?,
                owed,
                row.get(FINDING_COLUMN_COUNT + 1)?,
            ))
        },
    )?;
    rows.collect()
}

/// The rules that have findings: what a channel's globs are matched
/// against to build its [`ChannelScope`].
pub fn rules_with_findings(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut statement = conn.prepare("SELECT DISTINCT rule FROM findings ORDER BY rule")?;
    let rows = statement.query_map([], |row| row.get(0))?;
    rows.collect()
}

/// Inside a scan's transaction, before anything is owed: a channel's
/// account of a finding this scan reopened belongs to its last episode
/// (the channel may never have been told it resolved), and a finding the
/// scan found due for a reminder (quiet for `renotify_after`, or out of
/// an exemption) is owed one by every channel that knew of it.
pub fn apply_scan_marks(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE announcements SET status = 'resolved' WHERE status IN ('new', 'reopened', 'reminder', 'due') \
         AND key IN (SELECT coalesce(f.key, f.rule || ':' || f.group_key) FROM temp.scan_marks m JOIN finding_state f ON f.id = m.id WHERE m.mark = 'reopened')",
        [],
    )?;
    conn.execute(
        "UPDATE announcements SET status = 'due' WHERE status IN ('new', 'reopened', 'reminder') \
         AND key IN (SELECT coalesce(f.key, f.rule || ':' || f.group_key) FROM temp.scan_marks m JOIN finding_state f ON f.id = m.id WHERE m.mark = 'remind')",
        [],
    )?;
    Ok(())
}

/// The key an exemption notice is accounted under: the exemption (rule,
/// group, expiry), so renewing it (a new date) is news again.
pub fn exemption_key(notice: &ExemptionNotice) -> String {
    let group = notice
        .group_id
        .as_deref()
        .or(notice.group_name.as_deref())
        .unwrap_or("*");
    format!("exemption:{}|{group}|{}", notice.rule, notice.expires)
}

/// Whether `channel` was told `key` in `status` already, or a message of
/// its waiting in the outbox (pending or dead) carries it.
pub fn told_or_carried(
    conn: &Connection,
    channel: &str,
    key: &str,
    status: &str,
) -> rusqlite::Result<bool> {
    let told = conn
        .prepare_cached(
            "SELECT 1 FROM announcements WHERE channel = ?1 AND key = ?2 AND status = ?3",
        )?
        .query_row(params![channel, key, status], |_| Ok(()))
        .optional()?
        .is_some();
    if told {
        return Ok(true);
    }
    conn.prepare_cached(
        "SELECT 1 FROM outbox_items i JOIN outbox o ON o.id = i.outbox_id \
         WHERE i.channel = ?1 AND i.key = ?2 AND i.status = ?3 AND o.delivered_at IS NULL",
    )?
    .query_row(params![channel, key, status], |_| Ok(()))
    .optional()
    .map(|found| found.is_some())
}

/// One item a queued message carries: a finding's key (or a notice's)
/// and the status it announces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Carried {
    /// The finding's key, or the notice's (`exemption:…`, `held:…`).
    pub key: String,
    /// new, reopened, reminder, resolved; expiring, expired, held.
    pub status: &'static str,
    /// The finding's row id; `None` for a notice.
    pub finding: Option<i64>,
}

impl Carried {
    /// A notice's item: no finding.
    pub fn notice(key: String, status: &'static str) -> Carried {
        Carried {
            key,
            status,
            finding: None,
        }
    }
}

/// Notes what queued message `outbox_id` carries. Call it in the
/// transaction that queued the message.
pub fn note_carried(
    conn: &Connection,
    outbox_id: i64,
    channel: &str,
    items: &[Carried],
) -> rusqlite::Result<()> {
    let mut statement = conn.prepare_cached(
        "INSERT OR REPLACE INTO outbox_items (outbox_id, channel, key, status, finding_id) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for item in items {
        statement.execute(params![
            outbox_id,
            channel,
            item.key,
            item.status,
            item.finding
        ])?;
    }
    Ok(())
}

/// Message `outbox_id` was accepted by its channel: what it carries is
/// now what the channel was told (and the findings' `last_announced_at`
/// moves on). Returns how many items it carried. Call it in the
/// transaction that marks the message delivered.
pub fn record_delivery(conn: &Connection, outbox_id: i64) -> rusqlite::Result<usize> {
    let now = time_text(jiff::Timestamp::now());
    let carried = conn.execute(
        "INSERT OR REPLACE INTO announcements (channel, key, status, at) \
         SELECT channel, key, status, ?2 FROM outbox_items WHERE outbox_id = ?1",
        params![outbox_id, now],
    )?;
    // Each finding by its row id, so marking reads only its row; the key
    // is checked, as a row id may have been reused since the message was
    // queued (its finding purged).
    let items: Vec<(String, Option<i64>)> = conn
        .prepare_cached(
            "SELECT key, finding_id FROM outbox_items \
             WHERE outbox_id = ?1 AND status IN ('new', 'reopened', 'reminder')",
        )?
        .query_map([outbox_id], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut mark = conn.prepare_cached(
        "UPDATE finding_state SET last_announced_at = ?3 WHERE id = ?1 AND coalesce(key, rule || ':' || group_key) = ?2",
    )?;
    let mut elsewhere = Vec::new();
    for (key, id) in items {
        let marked = match id {
            Some(id) => mark.execute(params![id, key, now])?,
            None => 0,
        };
        if marked == 0 {
            elsewhere.push(key);
        }
    }
    // A finding stored again under a new row id, or an item without one:
    // looked for by key hash, in one pass over the findings.
    if !elsewhere.is_empty() {
        let hashes: Vec<i64> = elsewhere
            .iter()
            .map(|key| super::schema::key_hash(key))
            .collect();
        conn.execute(
            "UPDATE finding_state SET last_announced_at = ?3 \
             WHERE key_hash IN (SELECT value FROM json_each(?1)) \
               AND coalesce(key, rule || ':' || group_key) IN (SELECT value FROM json_each(?2))",
            params![
                serde_json::to_string(&hashes).expect("numbers serialise"),
                serde_json::to_string(&elsewhere).expect("strings serialise"),
                now
            ],
        )?;
    }
    conn.execute("DELETE FROM outbox_items WHERE outbox_id = ?1", [outbox_id])?;
    Ok(carried)
}

/// Message `outbox_id` is gone without being delivered (a discarded dead
/// letter): what it carried is owed again.
pub fn forget_message(conn: &Connection, outbox_id: i64) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM outbox_items WHERE outbox_id = ?1", [outbox_id])?;
    Ok(())
}

/// Before retention removes the resolved findings older than `cutoff`:
/// drops the channels' account of them, and held-back notes older than
/// that.
pub fn purge(conn: &Connection, cutoff: &str) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM announcements WHERE key IN \
         (SELECT coalesce(key, rule || ':' || group_key) FROM finding_state INDEXED BY finding_state_by_resolved_scan \
          WHERE resolved_scan IS NOT NULL AND status = 'resolved' AND resolved_at < ?1)",
        [cutoff],
    )?;
    conn.execute(
        "DELETE FROM announcements WHERE key LIKE 'held:%' AND at < ?1",
        [cutoff],
    )?;
    Ok(())
}

/// Active findings (neither resolved nor exempted) per rule and severity,
/// most first: the breakdown a held-back notice gives.
pub fn open_by_rule_and_severity(
    conn: &Connection,
) -> rusqlite::Result<Vec<(String, String, u64)>> {
    let mut statement = conn.prepare(
        "SELECT rule, severity, count(*) AS n FROM findings WHERE status IN ('new', 'open', 'reopened') \
         GROUP BY rule, severity ORDER BY n DESC, rule, severity",
    )?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
    rows.collect()
}

/// The last completed scan, as a held message sent by `notify --retry`
/// describes it: source, start, report refresh date, period and rows.
pub fn last_scan(conn: &Connection) -> rusqlite::Result<Option<LastScan>> {
    conn.query_row(
        "SELECT source, started_at, refresh_date, report_period, rows FROM scans \
         WHERE outcome = 'completed' ORDER BY id DESC LIMIT 1",
        [],
        |row| {
            Ok(LastScan {
                source: row.get(0)?,
                started_at: row.get(1)?,
                refresh_date: row.get(2)?,
                period: row.get(3)?,
                rows: row.get(4)?,
            })
        },
    )
    .optional()
}

/// The last completed scan's record.
#[derive(Clone, Debug)]
pub struct LastScan {
    /// The report's name.
    pub source: String,
    /// When it started (stored form).
    pub started_at: String,
    /// The report's refresh date, `YYYY-MM-DD`.
    pub refresh_date: Option<String>,
    /// The report period in days.
    pub period: Option<i64>,
    /// Rows read.
    pub rows: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::schema;

    fn database() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        schema::apply(&conn, 0).unwrap();
        conn.execute(
            "INSERT INTO scans (id, started_at, source, outcome) VALUES (1, '2026-11-01T06:00:00Z', 'r.csv', 'completed')",
            [],
        )
        .unwrap();
        conn
    }

    fn finding(conn: &Connection, key: &str, severity: &str, status: &str) {
        conn.execute(
            "INSERT INTO finding_state (key_hash, key, rule, group_key, severity, message, evidence, status, \
             status_scan, first_seen_scan, first_seen_at, last_seen_scan, last_seen_at) \
             VALUES (?4, ?1, 'r', ?1, ?2, 'm', '{}', ?3, 1, 1, unixepoch('2026-11-01T06:00:00Z'), 1, '2026-11-01T06:00:00Z')",
            params![key, severity, status, crate::state::schema::key_hash(key)],
        )
        .unwrap();
    }

    fn told(conn: &Connection, key: &str, status: &str, at: &str) {
        conn.execute(
            "INSERT INTO announcements (channel, key, status, at) VALUES ('c', ?1, ?2, ?3)",
            params![key, status, at],
        )
        .unwrap();
    }

    fn scope(include_resolved: bool) -> ChannelScope<'static> {
        ChannelScope {
            channel: "c",
            rules: vec!["r".into()],
            severities: vec!["medium", "high"],
            include_resolved,
            reminder_cutoff: Some("2026-11-10T00:00:00Z".into()),
        }
    }

    fn owed_keys(conn: &Connection, include_resolved: bool) -> Vec<(String, Owed)> {
        owed(conn, &scope(include_resolved))
            .unwrap()
            .into_iter()
            .map(|(f, o, _)| (f.key, o))
            .collect()
    }

    #[test]
    fn the_finding_columns_are_counted_right() {
        let conn = database();
        let statement = conn
            .prepare(&format!("SELECT {FINDING_COLUMNS} FROM findings"))
            .unwrap();
        assert_eq!(statement.column_count(), FINDING_COLUMN_COUNT);
    }

    #[test]
    fn a_channel_is_owed_what_it_routes_minus_what_it_was_told() {
        let conn = database();
        finding(&conn, "never-told", "medium", "open");
        finding(&conn, "told", "medium", "open");
        finding(&conn, "told-long-ago", "high", "open");
        finding(&conn, "told-resolved-back", "medium", "reopened");
        finding(&conn, "due", "medium", "open");
        finding(&conn, "fixed", "medium", "resolved");
        finding(&conn, "fixed-unheard", "medium", "resolved");
        finding(&conn, "too-low", "low", "new");
        finding(&conn, "muted", "medium", "exempted");
        told(&conn, "told", "new", "2026-11-20T00:00:00Z");
        told(&conn, "told-long-ago", "new", "2026-11-01T00:00:00Z");
        told(
            &conn,
            "told-resolved-back",
            "resolved",
            "2026-11-20T00:00:00Z",
        );
        told(&conn, "due", "due", "2026-11-20T00:00:00Z");
        told(&conn, "fixed", "reminder", "2026-11-20T00:00:00Z");
        let mut expected = vec![
            ("due".to_owned(), Owed::Reminder),
            ("fixed".to_owned(), Owed::Resolved),
            ("never-told".to_owned(), Owed::New),
            ("told-long-ago".to_owned(), Owed::Reminder),
            ("told-resolved-back".to_owned(), Owed::Reopened),
        ];
        assert_eq!(owed_keys(&conn, true), expected);
        let counts = count_owed(&conn, &scope(true)).unwrap();
        assert_eq!(
            (
                counts.new,
                counts.reopened,
                counts.reminders,
                counts.resolved
            ),
            (1, 1, 2, 1)
        );
        expected.retain(|(_, o)| *o != Owed::Resolved);
        assert_eq!(owed_keys(&conn, false), expected);
    }

    #[test]
    fn what_a_waiting_message_carries_is_not_owed_and_delivery_records_it() {
        let conn = database();
        finding(&conn, "a", "medium", "new");
        let row = conn.last_insert_rowid();
        let id = super::super::outbox::enqueue(&conn, "c", "x@y", "{}").unwrap();
        note_carried(
            &conn,
            id,
            "c",
            &[Carried {
                key: "a".into(),
                status: "new",
                finding: Some(row),
            }],
        )
        .unwrap();
        assert!(
            owed_keys(&conn, false).is_empty(),
            "carried by a waiting message"
        );
        assert!(told_or_carried(&conn, "c", "a", "new").unwrap());
        super::super::outbox::mark_delivered(&conn, id).unwrap();
        assert_eq!(record_delivery(&conn, id).unwrap(), 1);
        assert!(owed_keys(&conn, false).is_empty(), "told now");
        let status: String = conn
            .query_row(
                "SELECT status FROM announcements WHERE key = 'a'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(status, "new");
        let announced: Option<String> = conn
            .query_row(
                "SELECT last_announced_at FROM findings WHERE key = 'a'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(announced.is_some());
    }

    #[test]
    fn a_discarded_message_leaves_its_findings_owed() {
        let conn = database();
        finding(&conn, "a", "medium", "new");
        let id = super::super::outbox::enqueue(&conn, "c", "x@y", "{}").unwrap();
        let item = Carried {
            key: "a".into(),
            status: "new",
            finding: None,
        };
        note_carried(&conn, id, "c", &[item]).unwrap();
        super::super::outbox::mark_dead(&conn, id, "refused", 1).unwrap();
        assert!(owed_keys(&conn, false).is_empty(), "a dead letter holds it");
        assert!(super::super::outbox::discard(&conn, id).unwrap());
        assert_eq!(owed_keys(&conn, false), [("a".to_owned(), Owed::New)]);
    }

    #[test]
    fn a_delivery_marks_findings_by_row_id_and_else_by_key() {
        let conn = database();
        for key in ["a", "b", "c"] {
            finding(&conn, key, "medium", "new");
        }
        let id_of = |key: &str| -> i64 {
            conn.query_row("SELECT id FROM findings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .unwrap()
        };
        let (a, b) = (id_of("a"), id_of("b"));
        let id = super::super::outbox::enqueue(&conn, "c", "x@y", "{}").unwrap();
        let item = |key: &str, finding: Option<i64>| Carried {
            key: key.into(),
            status: "new",
            finding,
        };
        // `a` by its id; `b` under `a`'s id (an id reused since it was
        // queued): the key does not match, so found by key; `c` queued
        // before items had ids; a notice marks no finding.
        note_carried(
            &conn,
            id,
            "c",
            &[
                item("a", Some(a)),
                item("b", Some(a)),
                item("c", None),
                Carried::notice("held:x".into(), "held"),
            ],
        )
        .unwrap();
        super::super::outbox::mark_delivered(&conn, id).unwrap();
        assert_eq!(record_delivery(&conn, id).unwrap(), 4);
        let announced: Vec<(String, bool)> = conn
            .prepare("SELECT key, last_announced_at IS NOT NULL FROM findings ORDER BY key")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            announced,
            [("a".into(), true), ("b".into(), true), ("c".into(), true)]
        );
        assert_ne!(a, b);
    }
}
