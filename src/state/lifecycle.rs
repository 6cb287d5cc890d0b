//! Recording one scan: findings move through new → open → resolved, and
//! reopened when they come back.
//!
//! A scan is one write transaction, from [`ScanRecorder::begin`] (which
//! takes the database's write lock, so two scans never interleave) to
//! [`PendingScan::commit`]. As rows stream past, each finding is looked up
//! once (by the hash of its key): its previous state and the exemptions
//! decide its status (so outputs can carry it), and only what changed is
//! written back, with a history event when its status changed. A finding
//! seen again as it was costs a lookup and no write: "seen by this scan"
//! is a bit per finding in memory ([`IdSet`]), written to the database
//! set-wise (`state_meta` names the latest completed scan), and `new` and
//! `reopened` read as `open` once a later scan has seen the finding (see
//! `schema`'s version 4). What else the end of the scan needs:
//!
//! - which groups the report has: sorted blocks of 64-bit hashes of their
//!   keys, 8 bytes a row (a collision could only turn a `group-gone` into
//!   a `rule-cleared`; at a million groups the odds are about one in
//!   10^13 per finding to resolve);
//! - `scan_failures` (a temporary table on disk): (rule, group) pairs
//!   whose rule errored on the row;
//! - `scan_marks` (likewise): findings to announce (new, reopened, due
//!   for a reminder) or newly exempted: what [`Changes`] lists.
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

use std::sync::Arc;

use super::changes::{Cap, Changes, Resolution, Status, StatusCounts, StoredFinding};
use super::exemptions::{Exemption, ExemptionNotice, ExemptionState, Exemptions};
use super::known::{Content, Flags, Known, LoadContext, Shapes, content_hash};
use super::query::{FINDING_COLUMNS, stored_finding};
use super::schema::key_hash;
use super::store::{StateError, Store};
use super::trend::TrendCounts;
use super::writer::{Event, Op, Row, Statements, Writer};
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

self_cell::self_cell!(
    /// A scan's store and the statements prepared on it for the scan
    /// (held, not checked out of the connection's cache per write; see
    /// [`Statements`]).
    struct Recording {
        owner: Store,
        #[not_covariant]
        dependent: Statements,
    }
);

/// A scan being recorded. Dropping it without [`ScanRecorder::finish`]
/// rolls everything back; [`ScanRecorder::fail`] also leaves a record of
/// the failed scan.
pub struct ScanRecorder {
    store: Option<Recording>,
    scan_id: i64,
    start: ScanStart,
    /// Exemptions in force today.
    in_force: Vec<Exemption>,
    last_refresh: Option<String>,
    seen: Seen,
    /// The stored findings (and which of them this scan saw): "seen in
    /// this scan" is kept here, not written to each finding.
    known: Known,
    shapes: Shapes,
    /// The key hashes of the findings this scan stored for the first
    /// time: a report listing a group twice is put right at the end.
    new_hashes: Vec<i64>,
    /// This scan's findings by rule and status, for `trend`.
    tally: Vec<(Arc<str>, TrendCounts)>,
    /// The group keys of every row, hashed: which groups the report has
    /// (8 bytes a row), for telling `rule-cleared` from `group-gone`.
    groups: GroupSet,
    context: ScanContext,
    statuses: Vec<Status>,
}

/// What recording a finding needs to know about the scan.
#[derive(Clone, Debug)]
struct ScanContext {
    scan_id: i64,
    /// When the scan started, as stored.
    now: String,
    /// The same, in seconds since 1970.
    now_seconds: i64,
    /// The latest completed scan before this one, and when it ran: what a
    /// finding's empty `last_seen_scan` means until this scan completes.
    latest: Option<(i64, String)>,
}

/// Staging tables: one scan's facts, on disk, gone at the end of the
/// connection.
const STAGING: &str = r#"
CREATE TEMP TABLE IF NOT EXISTS scan_failures (
    rule TEXT NOT NULL, group_key TEXT NOT NULL, PRIMARY KEY (rule, group_key)) WITHOUT ROWID;
-- findings (by finding_state id) marked new, reopened, remind or exempted
CREATE TEMP TABLE IF NOT EXISTS scan_marks (id INTEGER NOT NULL, mark TEXT NOT NULL);
DELETE FROM temp.scan_failures;
DELETE FROM temp.scan_marks;
"#;

impl ScanRecorder {
    /// Takes the write lock (waiting up to the lock timeout for another
    /// scan) and starts recording.
    pub fn begin(store: Store, start: ScanStart) -> Result<ScanRecorder, StateError> {
        store.begin_first_write()?;
        let prepared = prepare(&store, &start);
        let (scan_id, last_refresh, latest) = match prepared {
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
        let mut watch = Stopwatch::start();
        let loaded = Known::load(
            store.connection(),
            &LoadContext {
                latest: latest.as_ref().map(|(scan, _)| *scan),
                reminder_cutoff: reminder_cutoff.as_deref(),
            },
        );
        watch.lap("stored findings loaded");
        let loaded = loaded.and_then(|known| Ok((known, Shapes::load(store.connection())?)));
        let (known, shapes) = match loaded {
            Ok(loaded) => loaded,
            Err(error) => {
                store.rollback();
                return Err(store.fail(error));
            }
        };
        let context = ScanContext {
            scan_id,
            now: time_text(start_now),
            now_seconds: start_now.as_second(),
            latest,
        };
        let recording =
            Recording::try_new_or_recover(store, |store| Statements::prepare(store.connection()))
                .map_err(|(store, error)| {
                store.rollback();
                store.fail(error)
            })?;
        Ok(ScanRecorder {
            store: Some(recording),
            scan_id,
            start,
            in_force,
            last_refresh,
            seen: Seen::default(),
            known,
            shapes,
            new_hashes: Vec::new(),
            tally: Vec::new(),
            groups: GroupSet::default(),
            context,
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
        self.statuses.clear();
        let recording = self
            .store
            .as_ref()
            .expect("a recorder holds its store until finished");
        recording.with_dependent(|store, statements| {
            let fail = |e| store.fail(e);
            let context = &self.context;
            let writer = Writer::new(
                store.connection(),
                statements,
                context.scan_id,
                &context.now,
                context.now_seconds,
            );
            // Hashed by the worker that made the row, where it could be.
            self.groups.insert(
                outcome
                    .group_hash
                    .unwrap_or_else(|| group_hash(&outcome.group_key)),
            );
            for failure in &outcome.failures {
                writer
                    .push(Op::Failure {
                        rule: &failure.rule,
                        group_key: &outcome.group_key,
                    })
                    .map_err(fail)?;
            }
            for (index, finding) in outcome.findings.iter().enumerate() {
                let exemption = self.in_force.iter().find(|e| e.covers(finding));
                let (shape, evidence, new_shape) = self.shapes.encode(&finding.evidence);
                if let Some((id, keys)) = new_shape {
                    writer.push(Op::Shape { id, keys }).map_err(fail)?;
                }
                let record = Record {
                    finding,
                    group_key: &outcome.group_key,
                    // Hashed by the worker that made the row, where it could be.
                    key_hash: outcome
                        .key_hashes
                        .get(index)
                        .copied()
                        .unwrap_or_else(|| key_hash(&finding.key)),
                    shape,
                    evidence,
                    exemption,
                };
                let content = content_hash(&Content {
                    finding,
                    group_key: record.group_key,
                    // Begun by the worker that made the row, where it could be.
                    begun: outcome.content_hashers.get(index),
                    shape,
                    evidence,
                    exemption: exemption.map(|e| (e.origin.as_str(), e.reason.as_str())),
                });
                let status = record_finding(
                    context,
                    &mut Tracking {
                        seen: &mut self.seen,
                        known: &mut self.known,
                        new_hashes: &mut self.new_hashes,
                        writer: &writer,
                        store,
                    },
                    &record,
                    content,
                )
                .map_err(fail)?;
                if let Some(status) = status.counted {
                    tally(&mut self.tally, &finding.rule, status, 1);
                }
                self.statuses.push(status.status);
            }
            Ok::<(), StateError>(())
        })?;
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
                    .expect("a recorder holds its store until finished")
                    .into_owner();
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
        let Some(store) = self.store.take().map(Recording::into_owner) else {
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
            .expect("a recorder holds its store until finished")
            .borrow_owner();
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
        let removed =
            merge_new_duplicates(conn, self.scan_id, self.known.max_id, &mut self.new_hashes)
                .map_err(fail)?;
        let mut counts = self.seen.counts;
        for (rule, status) in removed {
            counts.remove(status, 1);
            tally(&mut self.tally, &Arc::from(rule), status, -1);
        }
        self.groups.seal();
        let settle = Settle {
            context: &self.context,
            known: &self.known,
            groups: &self.groups,
            rules: &self.start.rules,
            complete,
        };
        let resolved = settle.unseen(conn).map_err(fail)?;
        counts.resolved = resolved.len() as u64;
        for rule in resolved {
            tally(&mut self.tally, &Arc::from(rule), Status::Resolved, 1);
        }
        // From here on, an empty last_seen_scan means this scan.
        conn.execute(
            "UPDATE state_meta SET latest_scan = ?1, latest_scan_at = ?2 WHERE id = 1",
            params![self.scan_id, now],
        )
        .map_err(fail)?;
        record_resolutions(conn, self.scan_id, &now).map_err(fail)?;
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
        super::trend::record_counts(conn, self.scan_id, &self.tally).map_err(fail)?;
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
            scanned_at: self.context.now.clone(),
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
                "SELECT {FINDING_COLUMNS} FROM findings WHERE id IN \
                 (SELECT id FROM temp.scan_marks WHERE mark = '{mark}') ORDER BY rule, key"
            )
        };
        // Findings new to the database are the rows this scan added.
        changes.new = collect(
            conn,
            &format!(
                "SELECT {FINDING_COLUMNS} FROM findings WHERE (id > ?1 AND status = 'new') OR id IN \
                 (SELECT id FROM temp.scan_marks WHERE mark = 'new') ORDER BY rule, key"
            ),
            [self.known.max_id],
        )?;
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
        if let Some(store) = self.store.take().map(Recording::into_owner) {
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

/// The scan id, the last completed scan's refresh date, and the latest
/// completed scan with when it ran.
type Prepared = (i64, Option<String>, Option<(i64, String)>);

/// Opens the staging tables and the scan record.
fn prepare(store: &Store, start: &ScanStart) -> Result<Prepared, StateError> {
    let conn = store.connection();
    let fail = |e| store.fail(e);
    conn.execute_batch(STAGING).map_err(fail)?;
    let latest = conn
        .query_row(
            "SELECT latest_scan, latest_scan_at FROM state_meta WHERE id = 1 AND latest_scan IS NOT NULL",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(fail)?;
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
    Ok((conn.last_insert_rowid(), last_refresh, latest))
}

/// A finding's state before this scan.
#[derive(Clone, Copy, Debug)]
struct Prior {
    /// Its status before this scan.
    status: Status,
    /// The status as stored: `new` and `reopened` read as `open` once a
    /// later scan has seen the finding.
    stored: Status,
    announced: bool,
    /// Not announced since the reminder cutoff (counting from when it was
    /// first seen if it never was).
    quiet: bool,
    /// Its last scan is written out (it was not seen by the latest scan),
    /// so seeing it now is a write.
    last_seen_written: bool,
}

impl Prior {
    fn of(flags: Flags) -> Prior {
        Prior {
            status: flags.shown(),
            stored: flags.stored(),
            announced: flags.announced(),
            quiet: flags.quiet(),
            last_seen_written: flags.last_seen_written(),
        }
    }
}

/// The status shown for one stored as `stored`: `new` and `reopened`
/// last for the scan that set them (`status_scan`), and read as `open`
/// once the finding was last seen by a later scan.
pub(super) fn shown_status(
    stored: Status,
    status_scan: Option<i64>,
    last_seen: Option<i64>,
) -> Status {
    match stored {
        Status::New | Status::Reopened if status_scan != last_seen => Status::Open,
        other => other,
    }
}

/// New findings between two starts of the state file's write-back
/// (about 8 MB of it; see [`Store::start_write_back`]).
const WRITE_BACK_FINDINGS: usize = 32_768;

/// What recording a row's findings changes besides the database.
struct Tracking<'a, 'c> {
    seen: &'a mut Seen,
    known: &'a mut Known,
    new_hashes: &'a mut Vec<i64>,
    writer: &'a Writer<'a, 'c>,
    store: &'a Store,
}

impl Tracking<'_, '_> {
    /// Rewrites a known finding's row as `record` has it (and its status,
    /// when `status` says), and remembers its new content hash.
    fn rewrite(
        &mut self,
        hit: &super::known::Hit,
        status: Option<(Status, Option<i64>)>,
        record: &Record<'_>,
        content: u64,
    ) -> rusqlite::Result<()> {
        self.writer.push(Op::Update {
            id: hit.id,
            status,
            row: record.row(content),
        })?;
        self.known.set_content(hit, content);
        Ok(())
    }
}

/// The status a finding got, and the status it counts under (`None`: a
/// second listing of a finding this scan already counted).
struct Recorded {
    status: Status,
    counted: Option<Status>,
}

/// Records one finding of a row: finds its previous state in memory,
/// gives it a status, and has only what changed written.
fn record_finding(
    context: &ScanContext,
    tracking: &mut Tracking<'_, '_>,
    record: &Record<'_>,
    content: u64,
) -> rusqlite::Result<Recorded> {
    let exempted = record.exemption.is_some();
    let writer = tracking.writer;
    let found = tracking
        .known
        .find(record.key_hash, &record.finding.key, &mut |id| {
            writer.key_of(id)
        })?;
    let Some(hit) = found else {
        // New to the database (a second listing in this report is merged
        // at the end of the scan). Rows get the next ids, in order.
        let status = status_for(None, exempted);
        let id = tracking.known.max_id + 1 + tracking.new_hashes.len() as i64;
        tracking.writer.push(Op::Insert {
            id,
            status,
            row: record.row(content),
        })?;
        tracking.new_hashes.push(record.key_hash);
        if tracking
            .new_hashes
            .len()
            .is_multiple_of(WRITE_BACK_FINDINGS)
        {
            tracking.store.start_write_back();
        }
        tracking
            .seen
            .note(tracking.writer, id, record, None, status)?;
        return Ok(Recorded {
            status,
            counted: Some(status),
        });
    };
    if hit.flags.seen() {
        // The report lists this finding twice: the later row's details
        // win, the status given earlier in this scan stands.
        if hit.content != content {
            tracking.rewrite(&hit, None, record, content)?;
        }
        return Ok(Recorded {
            status: hit.flags.now(),
            counted: None,
        });
    }
    let prior = Prior::of(hit.flags);
    let status = status_for(Some(prior), exempted);
    let stored = stored_status(prior, status, context.scan_id);
    let unchanged = stored.is_none() && hit.content == content && !prior.last_seen_written;
    if !unchanged {
        tracking.rewrite(&hit, stored, record, content)?;
    }
    tracking.known.see(&hit, status);
    tracking
        .seen
        .note(tracking.writer, hit.id, record, Some(prior), status)?;
    Ok(Recorded {
        status,
        counted: Some(status),
    })
}

/// What is stored for a finding this scan gives `status`: `new` and
/// `reopened` with this scan's id; `None`: a finding that stays open
/// keeps what it has (a `new` of an earlier scan already reads as
/// `open`).
fn stored_status(prior: Prior, status: Status, scan: i64) -> Option<(Status, Option<i64>)> {
    match status {
        Status::New | Status::Reopened => Some((status, Some(scan))),
        Status::Open if matches!(prior.stored, Status::New | Status::Open | Status::Reopened) => {
            None
        }
        _ => Some((status, None)),
    }
}

/// Adds `count` findings of `rule` under `status` to a scan's tally.
fn tally(tally: &mut Vec<(Arc<str>, TrendCounts)>, rule: &Arc<str>, status: Status, count: i64) {
    let index = match tally
        .iter()
        .position(|(r, _)| Arc::ptr_eq(r, rule) || r == rule)
    {
        Some(index) => index,
        None => {
            tally.push((Arc::clone(rule), TrendCounts::default()));
            tally.len() - 1
        }
    };
    tally[index].1.adjust(status, count);
}

/// Findings seen so far, by status (resolved ones are counted at the end).
#[derive(Debug, Default)]
struct Seen {
    counts: StatusCounts,
    newly_exempted: u64,
}

impl Seen {
    /// Counts a finding's status, keeps its history and marks it for the
    /// changes. A finding's first event, `new`, is not written: history
    /// reads it from the finding's first scan; and findings new to the
    /// database are not marked: they are the rows this scan added.
    fn note(
        &mut self,
        writer: &Writer<'_, '_>,
        id: i64,
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
        let first_new = prior.is_none() && status == Status::New;
        if changed && !first_new {
            let detail = match status {
                Status::Exempted => record.exemption.map(|e| e.reason.as_str()),
                _ => Some(record.finding.message.as_str()),
            };
            writer.push(Op::Event(Event {
                key: &record.finding.key,
                rule: &record.finding.rule,
                group_key: record.group_key,
                group_name: record.finding.group_name.as_deref(),
                status,
                detail,
            }))?;
        }
        let mark = match status {
            Status::New if !first_new => Some("new"),
            Status::Reopened => Some("reopened"),
            Status::Open if remind => Some("remind"),
            Status::Exempted if changed => Some("exempted"),
            _ => None,
        };
        self.newly_exempted += u64::from(status == Status::Exempted && changed);
        if let Some(mark) = mark {
            writer.push(Op::Mark { id, mark })?;
        }
        Ok(())
    }
}

/// A finding as this scan saw it, in its stored form.
struct Record<'a> {
    finding: &'a Finding,
    group_key: &'a str,
    key_hash: i64,
    shape: Option<i64>,
    evidence: &'a str,
    exemption: Option<&'a Exemption>,
}

impl Record<'_> {
    /// The key as stored: `None` when it is `rule:group_key`.
    fn stored_key(&self) -> Option<&str> {
        let key = &self.finding.key;
        let rule = &*self.finding.rule;
        let derived = key.len() == rule.len() + 1 + self.group_key.len()
            && key.starts_with(rule)
            && key.as_bytes()[rule.len()] == b':'
            && key.ends_with(self.group_key);
        (!derived).then_some(key.as_str())
    }

    /// The group id as stored: `''` when it equals the group key.
    fn stored_group_id(&self) -> Option<&str> {
        match self.finding.group_id.as_deref() {
            Some(id) if id == self.group_key => Some(""),
            other => other,
        }
    }

    /// The finding as the writer stores it.
    fn row(&self, content: u64) -> Row<'_> {
        let finding = self.finding;
        Row {
            key_hash: self.key_hash,
            content,
            rule: &finding.rule,
            group_key: self.group_key,
            key: self.stored_key(),
            group_id: self.stored_group_id(),
            group_name: finding.group_name.as_deref(),
            owner: finding.owner.as_deref(),
            severity: finding.severity.as_str(),
            message: &finding.message,
            shape: self.shape,
            evidence: self.evidence,
            exemption: self
                .exemption
                .map(|e| (e.origin.as_str(), e.reason.as_str())),
        }
    }
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

/// Merges the findings a report listed twice that were new to the
/// database (each listing was stored): the first row stays, with the
/// later listing's details, and the others go. Returns the statuses of
/// the rows removed, by rule, to take from the scan's counts.
fn merge_new_duplicates(
    conn: &Connection,
    scan: i64,
    max_id: i64,
    hashes: &mut [i64],
) -> rusqlite::Result<Vec<(String, Status)>> {
    hashes.sort_unstable();
    let mut removed = Vec::new();
    let mut previous = None;
    let mut duplicated = Vec::new();
    for &hash in hashes.iter() {
        if previous == Some(hash) && duplicated.last() != Some(&hash) {
            duplicated.push(hash);
        }
        previous = Some(hash);
    }
    if duplicated.is_empty() {
        return Ok(removed);
    }
    // The rows this scan added with those hashes: one pass over the rows
    // it added (there is no index by key hash; a report listing a group
    // twice is rare).
    let mut by_hash: std::collections::HashMap<i64, Vec<(i64, String, String, String)>> =
        duplicated.iter().map(|&hash| (hash, Vec::new())).collect();
    let mut added = conn.prepare(
        "SELECT key_hash, id, coalesce(key, rule || ':' || group_key), rule, status FROM finding_state \
         WHERE id > ?1 ORDER BY id",
    )?;
    let mut rows = added.query([max_id])?;
    while let Some(row) = rows.next()? {
        if let Some(list) = by_hash.get_mut(&row.get::<_, i64>(0)?) {
            list.push((row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?));
        }
    }
    drop(rows);
    drop(added);
    for hash in duplicated {
        let rows = by_hash.remove(&hash).unwrap_or_default();
        let mut keys: Vec<&str> = rows.iter().map(|(_, key, _, _)| key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            let same: Vec<&(i64, String, String, String)> =
                rows.iter().filter(|(_, k, _, _)| k == key).collect();
            let (Some(first), Some(last)) = (same.first(), same.last()) else {
                continue;
            };
            if same.len() < 2 {
                continue;
            }
            conn.execute(
                "UPDATE finding_state SET (rule, group_key, key, group_id, group_name, owner, severity, message, \
                     evidence_shape, evidence, content_hash, exemption, exemption_reason) = \
                 (SELECT rule, group_key, key, group_id, group_name, owner, severity, message, \
                     evidence_shape, evidence, content_hash, exemption, exemption_reason FROM finding_state WHERE id = ?2) \
                 WHERE id = ?1",
                params![first.0, last.0],
            )?;
            for (id, _, rule, status) in &same[1..] {
                conn.execute("DELETE FROM finding_state WHERE id = ?1", [id])?;
                conn.execute("DELETE FROM temp.scan_marks WHERE id = ?1", [id])?;
                let status: Status = status.parse().map_err(|e: String| {
                    rusqlite::Error::FromSqlConversionFailure(
                        3,
                        rusqlite::types::Type::Text,
                        e.into(),
                    )
                })?;
                removed.push((rule.clone(), status));
            }
            // One first event per finding.
            conn.execute(
                "DELETE FROM finding_events WHERE key = ?1 AND scan_id = ?2 AND id != \
                 (SELECT min(id) FROM finding_events WHERE key = ?1 AND scan_id = ?2)",
                params![key, scan],
            )?;
        }
    }
    Ok(removed)
}

/// What settling the findings a scan did not see needs.
struct Settle<'a> {
    context: &'a ScanContext,
    known: &'a Known,
    /// Hashes of the report's group keys, sorted.
    groups: &'a GroupSet,
    /// The rules that ran on every row.
    rules: &'a [String],
    /// The report was read whole without row errors.
    complete: bool,
}

impl Settle<'_> {
    /// Settles the active findings this scan did not see: resolves those
    /// it is certain are fixed, and writes out the last scan of the others
    /// (until now an empty one meant the latest scan). Returns the rules
    /// of those resolved.
    fn unseen(&self, conn: &Connection) -> rusqlite::Result<Vec<String>> {
        let mut watch = Stopwatch::start();
        let unseen = self.known.unseen_active();
        watch.lap("findings not seen");
        let (previous, previous_at) = match &self.context.latest {
            Some((scan, at)) => (Some(*scan), Some(at.as_str())),
            None => (None, None),
        };
        let mut resolved = Vec::new();
        for id in unseen {
            let (rule, group_key): (String, String) = conn
                .prepare_cached("SELECT rule, group_key FROM finding_state WHERE id = ?1")?
                .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))?;
            match self.resolution(conn, &rule, &group_key)? {
                Some(resolution) => {
                    conn.prepare_cached(
                        "UPDATE finding_state SET status = 'resolved', resolved_scan = ?2, resolved_at = ?3, resolution = ?4, \
                            exemption = NULL, exemption_reason = NULL, content_hash = 0, \
                            last_seen_scan = coalesce(last_seen_scan, ?5), last_seen_at = coalesce(last_seen_at, ?6) \
                         WHERE id = ?1",
                    )?
                    .execute(params![
                        id,
                        self.context.scan_id,
                        self.context.now,
                        resolution.as_str(),
                        previous,
                        previous_at
                    ])?;
                    resolved.push(rule);
                }
                None => {
                    conn.prepare_cached(
                        "UPDATE finding_state SET last_seen_scan = ?2, last_seen_at = ?3 \
                         WHERE id = ?1 AND last_seen_scan IS NULL",
                    )?
                    .execute(params![id, previous, previous_at])?;
                }
            }
        }
        watch.lap("resolved");
        Ok(resolved)
    }

    /// How an active finding this scan did not see resolves; `None`: it
    /// cannot be told, so it stays as it is. Only findings of a rule that
    /// ran: `rule-cleared` when the group's row was evaluated without an
    /// error from the rule, `group-gone` when the group is missing from a
    /// complete report.
    fn resolution(
        &self,
        conn: &Connection,
        rule: &str,
        group_key: &str,
    ) -> rusqlite::Result<Option<Resolution>> {
        if group_key.is_empty() || !self.rules.iter().any(|r| r == rule) {
            return Ok(None);
        }
        if !self.groups.contains(group_hash(group_key)) {
            return Ok(self.complete.then_some(Resolution::GroupGone));
        }
        let failed: bool = conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM temp.scan_failures WHERE rule = ?1 AND group_key = ?2)",
            )?
            .query_row([rule, group_key], |row| row.get(0))?;
        Ok((!failed).then_some(Resolution::RuleCleared))
    }
}

/// Writes the history of the findings this scan resolved.
fn record_resolutions(conn: &Connection, scan: i64, now: &str) -> rusqlite::Result<()> {
    let mut watch = Stopwatch::start();
    conn.execute(
        "INSERT INTO finding_events (scan_id, at, key, rule, group_key, group_name, status, detail) \
         SELECT ?1, ?2, coalesce(key, rule || ':' || group_key), rule, group_key, group_name, 'resolved', resolution FROM finding_state \
         WHERE resolved_scan = ?1 AND status = 'resolved'",
        params![scan, now],
    )?;
    watch.lap("history of resolved findings");
    Ok(())
}

/// Hashes of the report's groups, in fixed-size blocks: the set grows
/// without copying what it holds (a growing vector would briefly need
/// twice its size), and each block is sorted once at the end; a lookup
/// (only for the few findings a scan did not see) searches every block.
#[derive(Debug, Default)]
struct GroupSet {
    blocks: Vec<Vec<u64>>,
}

impl GroupSet {
    /// Hashes a block holds (512 KiB).
    const BLOCK: usize = 65_536;

    fn insert(&mut self, hash: u64) {
        match self.blocks.last_mut() {
            Some(block) if block.len() < Self::BLOCK => block.push(hash),
            _ => {
                let mut block = Vec::with_capacity(Self::BLOCK);
                block.push(hash);
                self.blocks.push(block);
            }
        }
    }

    /// Sorts the blocks for [`GroupSet::contains`].
    fn seal(&mut self) {
        for block in &mut self.blocks {
            block.sort_unstable();
        }
    }

    fn contains(&self, hash: u64) -> bool {
        self.blocks
            .iter()
            .any(|block| block.binary_search(&hash).is_ok())
    }
}

use crate::engine::eval::group_hash;

/// Logs how long each step of the end of a scan took (at debug level).
struct Stopwatch(std::time::Instant);

impl Stopwatch {
    fn start() -> Stopwatch {
        Stopwatch(std::time::Instant::now())
    }

    fn lap_final(self, step: &str) {
        tracing::debug!(ms = self.0.elapsed().as_millis() as u64, "state: {step}");
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
    // Through the index of resolved findings: most scans purge nothing,
    // and must not read every finding to learn that.
    let purged = conn.execute(
        "DELETE FROM finding_state INDEXED BY finding_state_by_resolved_scan \
         WHERE resolved_scan IS NOT NULL AND status = 'resolved' AND resolved_at < ?1",
        [cutoff],
    )?;
    // A purged finding resolved before the cutoff, so its history is
    // older than the cutoff too.
    if purged > 0 {
        conn.execute(
            "DELETE FROM finding_events WHERE at < ?1 AND key NOT IN (SELECT key FROM findings)",
            [cutoff],
        )?;
    }
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
                "UPDATE finding_state SET last_announced_at = ?1 WHERE id IN \
                 (SELECT id FROM temp.scan_marks WHERE mark IN ('new', 'reopened', 'remind'))",
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
        let watch = Stopwatch::start();
        if let Err(error) = store.commit() {
            store.rollback();
            return Err(error);
        }
        watch.lap_final("committed");
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

    fn prior(status: Status, stored: Status, announced: bool) -> Prior {
        Prior {
            status,
            stored,
            announced,
            quiet: false,
            last_seen_written: false,
        }
    }

    #[test]
    fn statuses_follow_the_previous_state() {
        let prior = |status, announced| Some(prior(status, status, announced));
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
    fn new_and_reopened_last_for_the_scan_that_set_them() {
        // Set by scan 4, last seen by scan 4: still new.
        assert_eq!(shown_status(Status::New, Some(4), Some(4)), Status::New);
        // Seen again by scan 5 without a write: open.
        assert_eq!(shown_status(Status::New, Some(4), Some(5)), Status::Open);
        assert_eq!(
            shown_status(Status::Reopened, Some(4), Some(5)),
            Status::Open
        );
        assert_eq!(
            shown_status(Status::Reopened, Some(5), Some(5)),
            Status::Reopened
        );
        for stored in [Status::Open, Status::Resolved, Status::Exempted] {
            assert_eq!(shown_status(stored, None, Some(5)), stored);
        }
    }

    #[test]
    fn a_finding_that_stays_open_keeps_what_is_stored() {
        let prior = |stored| prior(Status::Open, stored, true);
        assert_eq!(stored_status(prior(Status::New), Status::Open, 5), None);
        assert_eq!(
            stored_status(prior(Status::Exempted), Status::Open, 5),
            Some((Status::Open, None))
        );
        assert_eq!(
            stored_status(prior(Status::Resolved), Status::Reopened, 5),
            Some((Status::Reopened, Some(5)))
        );
    }

    #[test]
    fn times_sort_as_text() {
        let a = time_text("2026-11-25T06:00:00.7Z".parse().unwrap());
        assert_eq!(a, "2026-11-25T06:00:00Z");
        assert!(a < time_text("2026-11-25T06:00:01Z".parse().unwrap()));
    }
}
