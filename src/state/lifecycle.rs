//! Recording one scan: findings move through new → open → resolved, and
//! reopened when they come back.
//!
//! A scan is one write transaction, from [`ScanRecorder::begin`] (which
//! takes the database's write lock, so two scans never interleave) to
//! [`PendingScan::commit`]. As rows stream past, each finding is looked up
//! once: its previous state and the exemptions decide its status (so
//! outputs can carry it), and it is written back in the same visit, with a
//! history event when its status changed. What else the end of the scan
//! needs stays on disk in temporary tables, not in memory:
//!
//! - `scan_groups`: every group key in the report;
//! - `scan_failures`: (rule, group) pairs whose rule errored on the row;
//! - `scan_marks`: findings to announce (new, reopened, due for a
//!   reminder) or newly exempted: what [`Changes`] lists.
//!
//! At the end, an active finding that this scan did not see resolves only
//! when its rule ran in this scan and either the group's row was
//! evaluated without an error from that rule (`rule-cleared`) or the group
//! is missing from a report read whole without row errors (`group-gone`).
//! Anything less certain resolves nothing: a rule that errored on the row,
//! a disabled rule, a report with unreadable rows (one of them may be the
//! group), a scan that failed or was cut short (its transaction is rolled
//! back and only a `failed` scan record remains).
//!
//! The result is a [`PendingScan`]: the changes are computed, the
//! transaction is still open, so a notifier can put its messages in the
//! outbox atomically with the findings before [`PendingScan::commit`].

use jiff::Timestamp;
use jiff::civil::Date;
use rusqlite::{Connection, OptionalExtension, named_params, params};

use super::changes::{Cap, Changes, Status, StatusCounts, StoredFinding};
use super::exemptions::{Exemption, ExemptionNotice, ExemptionState, Exemptions};
use super::query::{FINDING_COLUMNS, stored_finding};
use super::store::{StateError, Store};
use crate::duration::ConfigDuration;
use crate::engine::eval::RowOutcome;
use crate::engine::finding::Finding;
use crate::scan::ScanSummary;

/// The settings that shape what a scan announces and keeps.
#[derive(Clone, Debug)]
pub struct ScanPolicy {
    /// Remind about open findings not announced for this long; `None`: never.
    pub renotify_after: Option<ConfigDuration>,
    /// Purge resolved findings, scans and delivered messages older than
    /// this; `None`: keep everything.
    pub retention: Option<ConfigDuration>,
    /// Above this many findings to announce, announce a summary.
    pub max_new_findings: u64,
}

impl Default for ScanPolicy {
    fn default() -> Self {
        ScanPolicy {
            renotify_after: Some(ConfigDuration::days(7)),
            retention: Some(ConfigDuration::days(180)),
            max_new_findings: 500,
        }
    }
}

/// What a scan needs to know before the first row.
#[derive(Clone, Debug)]
pub struct ScanStart {
    /// The report's name (a path, `<stdin>`, or a URL without secrets).
    pub source: String,
    /// When the scan started: scan records, reminders and retention count
    /// from here.
    pub now: Timestamp,
    /// The day exemptions are checked against.
    pub today: Date,
    /// The rules that run on every row (enabled and with a `check`). Only
    /// their findings can resolve.
    pub rules: Vec<String>,
    /// The exemptions to apply.
    pub exemptions: Exemptions,
    /// Reminders, retention and the announcement cap.
    pub policy: ScanPolicy,
    /// Accept a report refreshed before the last scan's.
    pub allow_older: bool,
}

/// A scan being recorded. Dropping it without [`ScanRecorder::finish`]
/// rolls everything back; [`ScanRecorder::fail`] also leaves a record of
/// the failed scan.
pub struct ScanRecorder {
    store: Option<Store>,
    scan_id: i64,
    start: ScanStart,
    /// Exemptions in force today.
    in_force: Vec<Exemption>,
    /// Open findings quiet since this time are due for a reminder.
    reminder_cutoff: Option<String>,
    last_refresh: Option<String>,
    now: String,
    seen: Seen,
    statuses: Vec<Status>,
}

/// Staging tables: one scan's facts, on disk, gone at the end of the
/// connection.
const STAGING: &str = r#"
CREATE TEMP TABLE IF NOT EXISTS scan_groups (group_key TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS scan_failures (
    rule TEXT NOT NULL, group_key TEXT NOT NULL, PRIMARY KEY (rule, group_key)) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS scan_rules (rule TEXT PRIMARY KEY) WITHOUT ROWID;
-- new, reopened, remind or exempted
CREATE TEMP TABLE IF NOT EXISTS scan_marks (key TEXT NOT NULL, mark TEXT NOT NULL);
DELETE FROM temp.scan_groups;
DELETE FROM temp.scan_failures;
DELETE FROM temp.scan_rules;
DELETE FROM temp.scan_marks;
"#;

impl ScanRecorder {
    /// Takes the write lock (waiting up to the lock timeout for another
    /// scan) and starts recording.
    pub fn begin(store: Store, start: ScanStart) -> Result<ScanRecorder, StateError> {
        store.begin_write()?;
        let prepared = prepare(&store, &start);
        let (scan_id, last_refresh) = match prepared {
            Ok(ids) => ids,
            Err(error) => {
                store.rollback();
                return Err(error);
            }
        };
        let in_force = start
            .exemptions
            .all
            .iter()
            .filter(|e| e.state_on(start.today) != ExemptionState::Expired)
            .cloned()
            .collect();
        let start_now = start.now;
        let reminder_cutoff = start
            .policy
            .renotify_after
            .map(|span| time_before(start.now, span));
        Ok(ScanRecorder {
            store: Some(store),
            scan_id,
            start,
            in_force,
            reminder_cutoff,
            last_refresh,
            now: time_text(start_now),
            seen: Seen::default(),
            statuses: Vec::new(),
        })
    }

    /// The scan's id in the database.
    pub fn scan_id(&self) -> i64 {
        self.scan_id
    }

    /// The refresh date of the last completed scan's report.
    pub fn last_refresh_date(&self) -> Option<&str> {
        self.last_refresh.as_deref()
    }

    /// Refuses a report refreshed before the last scan's (unless
    /// `allow_older`). Called early with the first row's date, and again
    /// at the end with the report's latest.
    pub fn check_refresh_date(&self, refresh_date: &str) -> Result<(), StateError> {
        match &self.last_refresh {
            Some(last) if !self.start.allow_older && refresh_date < last.as_str() => {
                Err(StateError::OlderReport {
                    report: refresh_date.to_owned(),
                    last: last.clone(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Records one evaluated row and returns the status of each of its
    /// findings, in order.
    pub fn record_row(&mut self, outcome: &RowOutcome) -> Result<&[Status], StateError> {
        let store = self
            .store
            .as_ref()
            .expect("a recorder holds its store until finished");
        let conn = store.connection();
        let fail = |e| store.fail(e);
        conn.prepare_cached("INSERT OR IGNORE INTO temp.scan_groups (group_key) VALUES (?1)")
            .and_then(|mut s| s.execute([&outcome.group_key]))
            .map_err(fail)?;
        for failure in &outcome.failures {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO temp.scan_failures (rule, group_key) VALUES (?1, ?2)",
            )
            .and_then(|mut s| s.execute(params![&*failure.rule, &outcome.group_key]))
            .map_err(fail)?;
        }
        self.statuses.clear();
        for finding in &outcome.findings {
            let prior = prior_state(conn, &finding.key, &self.reminder_cutoff, self.scan_id)
                .map_err(fail)?;
            let exemption = self.in_force.iter().find(|e| e.covers(finding));
            let evidence =
                serde_json::to_string(&finding.evidence).map_err(|e| StateError::Data {
                    path: store.path().to_owned(),
                    message: format!("cannot store the evidence of {}: {e}", finding.key),
                })?;
            let record = Record {
                finding,
                group_key: &outcome.group_key,
                evidence: &evidence,
                exemption,
            };
            let status = match prior {
                // The report lists this finding twice: the later row's
                // details win, the status given earlier in this scan stands.
                Some(prior) if prior.seen_now => {
                    write_finding(conn, &record, prior.status, self.scan_id, &self.now)
                        .map_err(fail)?;
                    prior.status
                }
                _ => {
                    let status = status_for(prior, exemption.is_some());
                    write_finding(conn, &record, status, self.scan_id, &self.now).map_err(fail)?;
                    self.seen
                        .note(conn, self.scan_id, &self.now, &record, prior, status)
                        .map_err(fail)?;
                    status
                }
            };
            self.statuses.push(status);
        }
        Ok(&self.statuses)
    }

    /// Applies what the scan saw. On error the scan is rolled back and
    /// recorded as failed (or refused, for an older report).
    pub fn finish(mut self, summary: &ScanSummary) -> Result<PendingScan, StateError> {
        match self.apply(summary) {
            Ok(changes) => {
                let store = self
                    .store
                    .take()
                    .expect("a recorder holds its store until finished");
                Ok(PendingScan {
                    store: Some(store),
                    changes,
                })
            }
            Err(error) => {
                let outcome = if matches!(error, StateError::OlderReport { .. }) {
                    "refused"
                } else {
                    "failed"
                };
                self.record_failure(outcome, &error.to_string());
                Err(error)
            }
        }
    }

    /// The scan did not complete: nothing it saw is kept, but the attempt
    /// is recorded with `message`.
    pub fn fail(mut self, message: &str) {
        self.record_failure("failed", message);
    }

    /// The report was refused (older than the last scan's): nothing is
    /// kept, and the refusal is recorded.
    pub fn refuse(mut self, error: &StateError) {
        self.record_failure("refused", &error.to_string());
    }

    fn record_failure(&mut self, outcome: &str, message: &str) {
        let Some(store) = self.store.take() else {
            return;
        };
        store.rollback();
        let recorded = store.connection().execute(
            "INSERT INTO scans (started_at, finished_at, source, outcome, error) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![time_text(self.start.now), time_text(Timestamp::now()), self.start.source, outcome, message],
        );
        if let Err(error) = recorded {
            tracing::warn!(
                "could not record the {outcome} scan in {}: {}",
                store.path().display(),
                store.fail(error)
            );
        }
    }

    fn apply(&mut self, summary: &ScanSummary) -> Result<Changes, StateError> {
        let store = self
            .store
            .as_ref()
            .expect("a recorder holds its store until finished");
        let refresh_date = summary.stats.refresh_date();
        if let Some(date) = &refresh_date {
            self.check_refresh_date(date)?;
        }
        let complete = report_is_complete(summary);
        let conn = store.connection();
        let now = time_text(self.start.now);
        let fail = |e| store.fail(e);
        // Before the changes are read: a finding's first report date is
        // that of its first scan, this one for what is new.
        conn.execute(
            "UPDATE scans SET refresh_date = ?1 WHERE id = ?2",
            rusqlite::params![refresh_date, self.scan_id],
        )
        .map_err(fail)?;
        let mut counts = self.seen.counts;
        counts.resolved = resolve(conn, self.scan_id, &now, complete).map_err(fail)?;
        let changes = self
            .changes(conn, counts, refresh_date.clone())
            .map_err(fail)?;
        if let Some(cap) = &changes.capped {
            tracing::warn!(
                limit = cap.limit,
                would_announce = cap.would_announce,
                "{}",
                cap.reason
            );
        }
        if let Some(retention) = self.start.policy.retention {
            purge(conn, &time_before(self.start.now, retention), self.scan_id).map_err(fail)?;
            tracing::debug!("state: purged what is older than {retention}");
        }
        // What `groupwarden trend` reads (after the purge, which drops the
        // counts of the scans it removes).
        super::trend::record_counts(conn, self.scan_id).map_err(fail)?;
        conn.execute(
            "UPDATE scans SET finished_at = :finished, refresh_date = :refresh, report_period = :period, rows = :rows, \
             row_errors = :row_errors, rule_errors = :rule_errors, findings = :findings, outcome = 'completed', complete = :complete \
             WHERE id = :scan",
            named_params! {
                ":finished": time_text(self.start.now + jiff::SignedDuration::try_from(summary.elapsed).unwrap_or_default()),
                ":refresh": refresh_date,
                ":period": summary.stats.period,
                ":rows": summary.rows_read(),
                ":row_errors": summary.row_errors,
                ":rule_errors": summary.rule_errors,
                ":findings": summary.findings,
                ":complete": complete,
                ":scan": self.scan_id,
            },
        )
        .map_err(fail)?;
        Ok(changes)
    }

    fn changes(
        &self,
        conn: &Connection,
        counts: StatusCounts,
        refresh_date: Option<String>,
    ) -> rusqlite::Result<Changes> {
        let notices = |state| -> Vec<ExemptionNotice> {
            self.start
                .exemptions
                .in_state(self.start.today, state)
                .map(|e| e.notice(self.start.today))
                .collect()
        };
        let mut changes = Changes {
            scan_id: self.scan_id,
            scanned_at: self.now.clone(),
            source: self.start.source.clone(),
            report_refresh_date: refresh_date,
            counts,
            expiring_exemptions: notices(ExemptionState::Expiring),
            expired_exemptions: notices(ExemptionState::Expired),
            ..Changes::default()
        };
        let limit = self.start.policy.max_new_findings;
        let would_announce = changes.to_announce();
        if would_announce > limit {
            changes.capped = Some(Cap {
                limit,
                would_announce,
                reason: format!(
                    "{would_announce} findings to announce (new {}, reopened {}, reminders {}, resolved {}) exceed [state] max_new_findings = {limit}: \
                     a channel owed more than that is held back (the admin channels are told), so a broken rule or report cannot mass-mail the tenant. \
                     `groupwarden findings` lists them",
                    counts.new, counts.reopened, counts.reminders, counts.resolved
                ),
            });
            return Ok(changes);
        }
        let marked = |mark: &str| {
            format!(
                "SELECT {FINDING_COLUMNS} FROM findings WHERE key IN \
                 (SELECT key FROM temp.scan_marks WHERE mark = '{mark}') ORDER BY rule, key"
            )
        };
        changes.new = collect(conn, &marked("new"), [])?;
        changes.reopened = collect(conn, &marked("reopened"), [])?;
        changes.reminders = collect(conn, &marked("remind"), [])?;
        changes.resolved = collect(
            conn,
            &format!(
                "SELECT {FINDING_COLUMNS} FROM findings WHERE resolved_scan = ?1 AND status = 'resolved' ORDER BY rule, key"
            ),
            [self.scan_id],
        )?;
        if self.seen.newly_exempted <= limit {
            changes.exempted = collect(conn, &marked("exempted"), [])?;
        }
        Ok(changes)
    }
}

impl Drop for ScanRecorder {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            store.rollback();
        }
    }
}

/// Whether groups missing from the report can be taken as gone: not when
/// rows could not be read (the group may be on one of them), nor when the
/// report has no rows at all (more likely a broken export than a tenant
/// without groups).
fn report_is_complete(summary: &ScanSummary) -> bool {
    if summary.row_errors > 0 {
        tracing::warn!(
            row_errors = summary.row_errors,
            "the report has unreadable rows: findings of groups missing from it are not resolved (the group may be on one of those rows)"
        );
        return false;
    }
    if summary.stats.rows == 0 {
        tracing::warn!(
            "the report has no rows: findings of groups missing from it are not resolved"
        );
        return false;
    }
    true
}

/// Opens the staging tables and the scan record; returns the scan id and
/// the last completed scan's refresh date.
fn prepare(store: &Store, start: &ScanStart) -> Result<(i64, Option<String>), StateError> {
    let conn = store.connection();
    let fail = |e| store.fail(e);
    conn.execute_batch(STAGING).map_err(fail)?;
    for rule in &start.rules {
        conn.execute(
            "INSERT OR IGNORE INTO temp.scan_rules (rule) VALUES (?1)",
            [rule],
        )
        .map_err(fail)?;
    }
    let last_refresh: Option<String> = conn
        .query_row(
            "SELECT refresh_date FROM scans WHERE outcome = 'completed' AND refresh_date IS NOT NULL ORDER BY id DESC LIMIT 1",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(fail)?;
    conn.execute(
        "INSERT INTO scans (started_at, source, outcome) VALUES (?1, ?2, 'running')",
        params![time_text(start.now), start.source],
    )
    .map_err(fail)?;
    Ok((conn.last_insert_rowid(), last_refresh))
}

/// A finding's state before this scan.
#[derive(Clone, Copy, Debug)]
struct Prior {
    status: Status,
    announced: bool,
    /// Not announced since the reminder cutoff (counting from when it was
    /// first seen if it never was).
    quiet: bool,
    /// Already written by this scan: the report lists it twice.
    seen_now: bool,
}

fn prior_state(
    conn: &Connection,
    key: &str,
    reminder_cutoff: &Option<String>,
    scan: i64,
) -> rusqlite::Result<Option<Prior>> {
    conn.prepare_cached(
        "SELECT status, last_announced_at IS NOT NULL, coalesce(coalesce(last_announced_at, first_seen_at) <= ?2, 0), \
                last_seen_scan = ?3 \
         FROM findings WHERE key = ?1",
    )?
    .query_row(params![key, reminder_cutoff, scan], |row| {
        let status: String = row.get(0)?;
        let status = status
            .parse()
            .map_err(|e: String| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into()))?;
        Ok(Prior { status, announced: row.get(1)?, quiet: row.get(2)?, seen_now: row.get(3)? })
    })
    .optional()
}

/// Findings seen so far, by status (resolved ones are counted at the end).
#[derive(Debug, Default)]
struct Seen {
    counts: StatusCounts,
    newly_exempted: u64,
}

impl Seen {
    /// Counts a finding's status, keeps its history and marks it for the
    /// changes.
    fn note(
        &mut self,
        conn: &Connection,
        scan: i64,
        now: &str,
        record: &Record<'_>,
        prior: Option<Prior>,
        status: Status,
    ) -> rusqlite::Result<()> {
        let remind = status == Status::Open
            && prior.is_some_and(|p| p.status == Status::Exempted || p.quiet);
        self.counts.add(status, 1);
        self.counts.reminders += u64::from(remind);
        let changed = match prior {
            None => true,
            Some(prior) => {
                status != prior.status
                    && !(status == Status::Open
                        && prior.status.is_active()
                        && prior.status != Status::Exempted)
            }
        };
        if changed {
            let detail = match status {
                Status::Exempted => record.exemption.map(|e| e.reason.as_str()),
                _ => Some(record.finding.message.as_str()),
            };
            conn.prepare_cached(
                "INSERT INTO finding_events (scan_id, at, key, rule, group_key, group_name, status, detail) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                scan,
                now,
                record.finding.key,
                &*record.finding.rule,
                record.group_key,
                record.finding.group_name,
                status.as_str(),
                detail
            ])?;
        }
        let mark = match status {
            Status::New => Some("new"),
            Status::Reopened => Some("reopened"),
            Status::Open if remind => Some("remind"),
            Status::Exempted if changed => Some("exempted"),
            _ => None,
        };
        if let Some(mark) = mark {
            self.newly_exempted += u64::from(status == Status::Exempted);
            conn.prepare_cached("INSERT INTO temp.scan_marks (key, mark) VALUES (?1, ?2)")?
                .execute(params![record.finding.key, mark])?;
        }
        Ok(())
    }
}

/// A finding as this scan saw it.
struct Record<'a> {
    finding: &'a Finding,
    group_key: &'a str,
    evidence: &'a str,
    exemption: Option<&'a Exemption>,
}

fn write_finding(
    conn: &Connection,
    record: &Record<'_>,
    status: Status,
    scan: i64,
    now: &str,
) -> rusqlite::Result<()> {
    let finding = record.finding;
    conn.prepare_cached(
        "INSERT INTO findings (key, rule, group_key, group_id, group_name, owner, severity, message, evidence, status, \
                               first_seen_scan, first_seen_at, last_seen_scan, last_seen_at, exemption, exemption_reason) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?11, ?12, ?13, ?14) \
         ON CONFLICT (key) DO UPDATE SET \
            rule = excluded.rule, group_key = excluded.group_key, group_id = excluded.group_id, \
            group_name = excluded.group_name, owner = excluded.owner, severity = excluded.severity, \
            message = excluded.message, evidence = excluded.evidence, status = excluded.status, \
            last_seen_scan = excluded.last_seen_scan, last_seen_at = excluded.last_seen_at, \
            resolved_scan = NULL, resolved_at = NULL, resolution = NULL, \
            exemption = excluded.exemption, exemption_reason = excluded.exemption_reason",
    )?
    .execute(params![
        finding.key,
        &*finding.rule,
        record.group_key,
        finding.group_id,
        finding.group_name,
        finding.owner,
        finding.severity.as_str(),
        finding.message,
        record.evidence,
        status.as_str(),
        scan,
        now,
        record.exemption.map(|e| e.origin.as_str()),
        record.exemption.map(|e| e.reason.as_str()),
    ])?;
    Ok(())
}

/// The status a finding seen in this scan gets.
fn status_for(prior: Option<Prior>, exempted: bool) -> Status {
    if exempted {
        return Status::Exempted;
    }
    match prior {
        None => Status::New,
        Some(Prior {
            status: Status::Resolved,
            ..
        }) => Status::Reopened,
        // An exemption hid it; people hear of it now, as new if they never did.
        Some(Prior {
            status: Status::Exempted,
            announced,
            ..
        }) => {
            if announced {
                Status::Open
            } else {
                Status::New
            }
        }
        Some(_) => Status::Open,
    }
}

/// Resolves the active findings this scan did not see, where it is
/// certain they are fixed; returns how many.
fn resolve(conn: &Connection, scan: i64, now: &str, complete: bool) -> rusqlite::Result<u64> {
    let mut watch = Stopwatch::start();
    let resolved = conn.execute(
        "UPDATE findings SET status = 'resolved', resolved_scan = :scan, resolved_at = :now, exemption = NULL, exemption_reason = NULL, \
            resolution = CASE WHEN EXISTS (SELECT 1 FROM temp.scan_groups g WHERE g.group_key = findings.group_key) \
                              THEN 'rule-cleared' ELSE 'group-gone' END \
         WHERE status != 'resolved' AND last_seen_scan != :scan AND group_key != '' \
           AND rule IN (SELECT rule FROM temp.scan_rules) \
           AND ( (EXISTS (SELECT 1 FROM temp.scan_groups g WHERE g.group_key = findings.group_key) \
                  AND NOT EXISTS (SELECT 1 FROM temp.scan_failures f WHERE f.rule = findings.rule AND f.group_key = findings.group_key)) \
              OR (:complete AND NOT EXISTS (SELECT 1 FROM temp.scan_groups g WHERE g.group_key = findings.group_key)) )",
        named_params! { ":scan": scan, ":now": now, ":complete": complete },
    )?;
    watch.lap("resolved");
    conn.execute(
        "INSERT INTO finding_events (scan_id, at, key, rule, group_key, group_name, status, detail) \
         SELECT ?1, ?2, key, rule, group_key, group_name, 'resolved', resolution FROM findings \
         WHERE resolved_scan = ?1 AND status = 'resolved'",
        params![scan, now],
    )?;
    watch.lap("history of resolved findings");
    Ok(resolved as u64)
}

/// Logs how long each step of the end of a scan took (at debug level).
struct Stopwatch(std::time::Instant);

impl Stopwatch {
    fn start() -> Stopwatch {
        Stopwatch(std::time::Instant::now())
    }

    fn lap(&mut self, step: &str) {
        tracing::debug!(ms = self.0.elapsed().as_millis() as u64, "state: {step}");
        self.0 = std::time::Instant::now();
    }
}

/// Forgets what is older than the retention period: resolved findings,
/// their history, scans, delivered messages.
fn purge(conn: &Connection, cutoff: &str, current_scan: i64) -> rusqlite::Result<()> {
    super::announced::purge(conn, cutoff)?;
    conn.execute(
        "DELETE FROM findings WHERE status = 'resolved' AND resolved_at < ?1",
        [cutoff],
    )?;
    conn.execute(
        "DELETE FROM finding_events WHERE at < ?1 AND key NOT IN (SELECT key FROM findings)",
        [cutoff],
    )?;
    conn.execute(
        "DELETE FROM scans WHERE started_at < ?1 AND id != ?2",
        params![cutoff, current_scan],
    )?;
    conn.execute("DELETE FROM outbox WHERE delivered_at < ?1", [cutoff])?;
    Ok(())
}

fn collect<P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
) -> rusqlite::Result<Vec<StoredFinding>> {
    let mut statement = conn.prepare(sql)?;
    let rows = statement.query_map(params, stored_finding)?;
    rows.collect()
}

/// A scan whose findings are applied but not yet committed.
pub struct PendingScan {
    store: Option<Store>,
    changes: Changes,
}

impl PendingScan {
    /// What the scan changed, for announcing it.
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    fn store(&self) -> &Store {
        self.store
            .as_ref()
            .expect("a pending scan holds its store until committed")
    }

    /// The connection inside the scan's open transaction: what the outbox
    /// functions take, so messages commit together with the findings.
    pub fn connection(&self) -> &Connection {
        self.store().connection()
    }

    /// A rusqlite error from work inside this scan, as a state error.
    pub fn fail(&self, error: rusqlite::Error) -> StateError {
        self.store().fail(error)
    }

    /// Findings this scan resolved, for the outputs.
    pub fn for_each_resolved<E: From<StateError>>(
        &self,
        mut each: impl FnMut(StoredFinding) -> Result<(), E>,
    ) -> Result<(), E> {
        let store = self.store();
        let sql = format!(
            "SELECT {FINDING_COLUMNS} FROM findings WHERE resolved_scan = ?1 AND status = 'resolved' ORDER BY rule, key"
        );
        let mut statement = store
            .connection()
            .prepare(&sql)
            .map_err(|e| store.fail(e))?;
        let mut rows = statement
            .query([self.changes.scan_id])
            .map_err(|e| store.fail(e))?;
        while let Some(row) = rows.next().map_err(|e| store.fail(e))? {
            each(stored_finding(row).map_err(|e| store.fail(e))?)?;
        }
        Ok(())
    }

    /// Notes that this scan's new, reopened and reminded findings were
    /// announced, to no channel in particular (`last_announced_at`, what
    /// reminders count from). Scans with channels do not call it: there a
    /// finding is announced when a channel accepts a message carrying it
    /// (see [`super::announced`]). Returns how many.
    pub fn mark_announced(&self) -> Result<u64, StateError> {
        let store = self.store();
        store
            .connection()
            .execute(
                "UPDATE findings SET last_announced_at = ?1 WHERE key IN \
                 (SELECT key FROM temp.scan_marks WHERE mark IN ('new', 'reopened', 'remind'))",
                [&self.changes.scanned_at],
            )
            .map(|n| n as u64)
            .map_err(|e| store.fail(e))
    }

    /// Makes the scan (and whatever was enqueued with it) durable, and
    /// hands back the store (for delivering the outbox) and the changes.
    pub fn commit(mut self) -> Result<(Store, Changes), StateError> {
        let store = self
            .store
            .take()
            .expect("a pending scan holds its store until committed");
        if let Err(error) = store.commit() {
            store.rollback();
            return Err(error);
        }
        Ok((store, std::mem::take(&mut self.changes)))
    }
}

impl Drop for PendingScan {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            store.rollback();
        }
    }
}

/// `span` before `time`, as stored; the beginning of time if that is
/// before what can be written.
fn time_before(time: Timestamp, span: ConfigDuration) -> String {
    time_text(time.checked_sub(span.as_signed()).unwrap_or(Timestamp::MIN))
}

/// A time as stored: UTC, whole seconds, RFC 3339.
pub fn time_text(time: Timestamp) -> String {
    time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_previous_state() {
        let prior = |status, announced| {
            Some(Prior {
                status,
                announced,
                quiet: false,
                seen_now: false,
            })
        };
        assert_eq!(status_for(None, false), Status::New);
        assert_eq!(status_for(prior(Status::New, true), false), Status::Open);
        assert_eq!(
            status_for(prior(Status::Reopened, true), false),
            Status::Open
        );
        assert_eq!(
            status_for(prior(Status::Resolved, true), false),
            Status::Reopened
        );
        assert_eq!(
            status_for(prior(Status::Exempted, false), false),
            Status::New
        );
        assert_eq!(
            status_for(prior(Status::Exempted, true), false),
            Status::Open
        );
        assert_eq!(
            status_for(prior(Status::Open, true), true),
            Status::Exempted
        );
        assert_eq!(status_for(None, true), Status::Exempted);
    }

    #[test]
    fn times_sort_as_text() {
        let a = time_text("2026-11-25T06:00:00.7Z".parse().unwrap());
        assert_eq!(a, "2026-11-25T06:00:00Z");
        assert!(a < time_text("2026-11-25T06:00:01Z".parse().unwrap()));
    }
}
