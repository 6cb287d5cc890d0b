//! The scan's writes, in one place: the scan decides each finding's
//! status from memory ([`super::known`]) and hands [`Writer`] only what
//! changed, as [`Op`]s borrowed from the row. Only a few kinds of write
//! exist, each a cached prepared statement.
//!
//! (Writing on a thread of its own was measured: on two cores, with two
//! workers evaluating rules, it made a first scan no faster, since every
//! core was busy already, and used 10 MB more.)

use std::cell::RefCell;

use rusqlite::{Connection, Statement, params};

use super::changes::Status;

/// A finding as stored.
#[derive(Debug)]
pub(super) struct Row<'a> {
    pub(super) key_hash: i64,
    pub(super) content: u64,
    pub(super) rule: &'a str,
    pub(super) group_key: &'a str,
    /// `None`: `rule:group_key`.
    pub(super) key: Option<&'a str>,
    /// `Some("")`: the group key.
    pub(super) group_id: Option<&'a str>,
    pub(super) group_name: Option<&'a str>,
    pub(super) owner: Option<&'a str>,
    pub(super) severity: &'static str,
    pub(super) message: &'a str,
    pub(super) shape: Option<i64>,
    pub(super) evidence: &'a str,
    /// The exemption's origin and reason.
    pub(super) exemption: Option<(&'a str, &'a str)>,
}

/// A status change for the history.
#[derive(Debug)]
pub(super) struct Event<'a> {
    pub(super) key: &'a str,
    pub(super) rule: &'a str,
    pub(super) group_key: &'a str,
    pub(super) group_name: Option<&'a str>,
    pub(super) status: Status,
    pub(super) detail: Option<&'a str>,
}

/// One write.
#[derive(Debug)]
pub(super) enum Op<'a> {
    /// A rule errored on a group's row.
    Failure { rule: &'a str, group_key: &'a str },
    /// A finding new to the database, which must get row id `id`.
    Insert {
        id: i64,
        status: Status,
        row: Row<'a>,
    },
    /// A known finding as this scan saw it; `status`: the status and
    /// status scan to store, `None` to keep them.
    Update {
        id: i64,
        status: Option<(Status, Option<i64>)>,
        row: Row<'a>,
    },
    /// A history event.
    Event(Event<'a>),
    /// A finding marked for the scan's changes.
    Mark { id: i64, mark: &'static str },
    /// A new evidence shape.
    Shape { id: i64, keys: String },
}

/// The scan's frequent writes, each prepared once when the scan begins
/// and held until it ends. Checked out of the connection's statement
/// cache for every write instead (`prepare_cached`), each write hashed
/// and compared its SQL, some 500 bytes, twice: a first scan of a million
/// rows took 1.25 s with the cache, 1.14 s with held statements.
pub(super) struct Statements<'c> {
    insert: RefCell<Statement<'c>>,
    update: RefCell<Statement<'c>>,
    event: RefCell<Statement<'c>>,
    mark: RefCell<Statement<'c>>,
    failure: RefCell<Statement<'c>>,
}

impl<'c> Statements<'c> {
    /// Prepares them on `conn`, whose staging tables exist.
    pub(super) fn prepare(conn: &'c Connection) -> rusqlite::Result<Self> {
        let prepare = |sql| conn.prepare(sql).map(RefCell::new);
        Ok(Statements {
            insert: prepare(
                "INSERT INTO finding_state (key_hash, content_hash, status, status_scan, first_seen_scan, first_seen_at, \
                                            exemption, exemption_reason, rule, group_key, key, group_id, group_name, owner, \
                                            severity, message, evidence_shape, evidence) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
            )?,
            update: prepare(
                "UPDATE finding_state SET rule = ?2, group_key = ?3, key = ?4, group_id = ?5, group_name = ?6, owner = ?7, \
                    severity = ?8, message = ?9, evidence_shape = ?10, evidence = ?11, content_hash = ?12, \
                    status = CASE WHEN ?13 THEN status ELSE ?14 END, status_scan = CASE WHEN ?13 THEN status_scan ELSE ?15 END, \
                    last_seen_scan = NULL, last_seen_at = NULL, \
                    resolved_scan = CASE WHEN ?13 THEN resolved_scan END, resolved_at = CASE WHEN ?13 THEN resolved_at END, \
                    resolution = CASE WHEN ?13 THEN resolution END, exemption = ?16, exemption_reason = ?17 \
                 WHERE id = ?1",
            )?,
            event: prepare(
                "INSERT INTO finding_events (scan_id, at, key, rule, group_key, group_name, status, detail) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?,
            mark: prepare("INSERT INTO temp.scan_marks (id, mark) VALUES (?1, ?2)")?,
            failure: prepare(
                "INSERT OR IGNORE INTO temp.scan_failures (rule, group_key) VALUES (?1, ?2)",
            )?,
        })
    }
}

/// Writes through a scan's connection.
pub(super) struct Writer<'a, 'c> {
    conn: &'a Connection,
    statements: &'a Statements<'c>,
    scan_id: i64,
    /// When the scan started, as stored.
    now: &'a str,
    /// The same, in seconds since 1970.
    now_seconds: i64,
}

impl<'a, 'c> Writer<'a, 'c> {
    /// Writes of scan `scan_id`, started at `now` (`now_seconds`), through
    /// `statements` prepared on `conn`.
    pub(super) fn new(
        conn: &'a Connection,
        statements: &'a Statements<'c>,
        scan_id: i64,
        now: &'a str,
        now_seconds: i64,
    ) -> Self {
        Writer {
            conn,
            statements,
            scan_id,
            now,
            now_seconds,
        }
    }

    /// Writes `op`.
    pub(super) fn push(&self, op: Op<'_>) -> rusqlite::Result<()> {
        write(self, op)
    }

    /// The key of stored finding `id`.
    pub(super) fn key_of(&self, id: i64) -> rusqlite::Result<String> {
        self.conn
            .prepare_cached(
                "SELECT coalesce(key, rule || ':' || group_key) FROM finding_state WHERE id = ?1",
            )?
            .query_row([id], |row| row.get(0))
    }
}

fn write(writer: &Writer<'_, '_>, op: Op<'_>) -> rusqlite::Result<()> {
    let statements = writer.statements;
    match op {
        Op::Failure { rule, group_key } => {
            statements
                .failure
                .borrow_mut()
                .execute(params![rule, group_key])?;
        }
        Op::Insert { id, status, row } => {
            let got = insert(writer, status, &row)?;
            if got != id {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERNAL),
                    Some(format!("a new finding was stored as row {got}, not {id}")),
                ));
            }
        }
        Op::Update { id, status, row } => update(statements, id, status, &row)?,
        Op::Event(event) => {
            statements.event.borrow_mut().execute(params![
                writer.scan_id,
                writer.now,
                event.key,
                event.rule,
                event.group_key,
                event.group_name,
                event.status.as_str(),
                event.detail
            ])?;
        }
        Op::Mark { id, mark } => {
            statements.mark.borrow_mut().execute(params![id, mark])?;
        }
        Op::Shape { id, keys } => {
            writer.conn.execute(
                "INSERT INTO evidence_shapes (id, keys) VALUES (?1, ?2)",
                params![id, keys],
            )?;
        }
    }
    Ok(())
}

/// Writes a finding this scan sees for the first time; returns its id.
fn insert(writer: &Writer<'_, '_>, status: Status, row: &Row<'_>) -> rusqlite::Result<i64> {
    writer.statements.insert.borrow_mut().execute(params![
        row.key_hash,
        row.content as i64,
        status.as_str(),
        (status == Status::New).then_some(writer.scan_id),
        writer.scan_id,
        writer.now_seconds,
        row.exemption.map(|(origin, _)| origin),
        row.exemption.map(|(_, reason)| reason),
        row.rule,
        row.group_key,
        row.key,
        row.group_id,
        row.group_name,
        row.owner,
        row.severity,
        row.message,
        row.shape,
        row.evidence,
    ])?;
    Ok(writer.conn.last_insert_rowid())
}

/// Rewrites a known finding as this scan sees it (seen by the latest
/// scan, so its last scan is left empty).
fn update(
    statements: &Statements<'_>,
    id: i64,
    status: Option<(Status, Option<i64>)>,
    row: &Row<'_>,
) -> rusqlite::Result<()> {
    let (keep, status, status_scan) = match status {
        Some((status, scan)) => (false, Some(status.as_str()), scan),
        None => (true, None, None),
    };
    statements.update.borrow_mut().execute(params![
        id,
        row.rule,
        row.group_key,
        row.key,
        row.group_id,
        row.group_name,
        row.owner,
        row.severity,
        row.message,
        row.shape,
        row.evidence,
        row.content as i64,
        keep,
        status,
        status_scan,
        row.exemption.map(|(origin, _)| origin),
        row.exemption.map(|(_, reason)| reason),
    ])?;
    Ok(())
}
