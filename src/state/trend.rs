//! Findings over time: each completed scan's findings counted by rule and
//! status, written at the end of the scan (in its transaction) and read
//! back by `groupwarden trend`, the HTML page's trend chart and the
//! daemon's `/metrics`.
//!
//! A scan's counts are exactly the statuses it gave: a finding seen in
//! the scan counts once under the status it got (`new`, `open`,
//! `reopened`, `exempted`), and a finding the scan resolved counts under
//! `resolved`. Findings neither seen nor resolved (their rule failed on
//! the row, or was disabled) are not counted: the scan said nothing
//! about them. These are the figures of the scan summary's
//! `state … (scan N): 3 new, 41 open, …` line.

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde::Serialize;

use super::changes::Status;
use super::store::{StateError, Store};

/// The schema version that added `scan_counts`.
const COUNTS_VERSION: i32 = 5;

/// Counts of one rule (or of all rules) in one scan, by status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TrendCounts {
    /// Findings seen for the first time.
    pub new: u64,
    /// Findings seen before and seen again.
    pub open: u64,
    /// Findings resolved once and back.
    pub reopened: u64,
    /// Findings this scan resolved.
    pub resolved: u64,
    /// Findings covered by an exemption.
    pub exempted: u64,
}

impl TrendCounts {
    /// The count of `status`.
    pub fn get(&self, status: Status) -> u64 {
        match status {
            Status::New => self.new,
            Status::Open => self.open,
            Status::Reopened => self.reopened,
            Status::Resolved => self.resolved,
            Status::Exempted => self.exempted,
        }
    }

    /// Adds `count` (or, when negative, takes it away).
    pub(crate) fn adjust(&mut self, status: Status, count: i64) {
        let slot = self.slot(status);
        *slot = slot.saturating_add_signed(count);
    }

    fn add(&mut self, status: Status, count: u64) {
        *self.slot(status) += count;
    }

    fn slot(&mut self, status: Status) -> &mut u64 {
        match status {
            Status::New => &mut self.new,
            Status::Open => &mut self.open,
            Status::Reopened => &mut self.reopened,
            Status::Resolved => &mut self.resolved,
            Status::Exempted => &mut self.exempted,
        }
    }

    /// Findings the scan still saw as a problem or an accepted one: all
    /// but the resolved.
    pub fn active(&self) -> u64 {
        self.new + self.open + self.reopened + self.exempted
    }
}

/// One completed scan and its counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScanTrend {
    /// The scan's id.
    pub scan_id: i64,
    /// When it finished (UTC, RFC 3339).
    pub finished_at: String,
    /// Its report's refresh date (`YYYY-MM-DD`), when known.
    pub report_refresh_date: Option<String>,
    /// `false` for a scan recorded before this version counted: its
    /// counts are unknown (and `counts` and `rules` are empty).
    pub counts_recorded: bool,
    /// All rules (or the rules asked for) together; `None` when not recorded.
    pub counts: Option<TrendCounts>,
    /// By rule id; rules without findings in the scan are left out.
    pub rules: BTreeMap<String, TrendCounts>,
}

/// Which scans and rules a trend covers.
#[derive(Clone, Debug, Default)]
pub struct TrendFilter {
    /// Only these rules; empty: every rule.
    pub rules: Vec<String>,
    /// Only scans that finished at or after this time (RFC 3339 text).
    pub since: Option<String>,
}

/// Stores the counts of scan `scan` (the findings it saw, by the status
/// each got, and those it resolved, tallied as the scan went) and marks
/// the scan as counted. Runs in the scan's transaction, after the
/// resolution; counts of scans purged since are dropped with them.
pub(crate) fn record_counts(
    conn: &Connection,
    scan: i64,
    tally: &[(std::sync::Arc<str>, TrendCounts)],
) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT OR REPLACE INTO scan_counts (scan_id, rule, status, count) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (rule, counts) in tally {
        for status in Status::ALL {
            let count = counts.get(status);
            if count > 0 {
                insert.execute(rusqlite::params![scan, &**rule, status.as_str(), count])?;
            }
        }
    }
    conn.execute("UPDATE scans SET counts_recorded = 1 WHERE id = ?1", [scan])?;
    conn.execute(
        "DELETE FROM scan_counts WHERE scan_id NOT IN (SELECT id FROM scans)",
        [],
    )?;
    Ok(())
}

impl Store {
    /// Every completed scan matching `filter`, oldest first, with its
    /// counts by rule and status.
    pub fn trend(&self, filter: &TrendFilter) -> Result<Vec<ScanTrend>, StateError> {
        let fail = |e| self.fail(e);
        let conn = self.connection();
        let version = self.schema_version()?;
        if version == 0 {
            return Ok(Vec::new());
        }
        // A database no scan of this version has written yet (read, not
        // migrated): its scans have no counts.
        let counted = version >= COUNTS_VERSION;
        let recorded = if counted { "counts_recorded" } else { "0" };
        let mut statement = conn
            .prepare(&format!(
                "SELECT id, coalesce(finished_at, started_at), refresh_date, {recorded} FROM scans \
                 WHERE outcome = 'completed' AND (?1 IS NULL OR coalesce(finished_at, started_at) >= ?1) ORDER BY id"
            ))
            .map_err(fail)?;
        let mut scans: Vec<ScanTrend> = statement
            .query_map([&filter.since], |row| {
                let recorded: bool = row.get(3)?;
                Ok(ScanTrend {
                    scan_id: row.get(0)?,
                    finished_at: row.get(1)?,
                    report_refresh_date: row.get(2)?,
                    counts_recorded: recorded,
                    counts: recorded.then(TrendCounts::default),
                    rules: BTreeMap::new(),
                })
            })
            .map_err(fail)?
            .collect::<rusqlite::Result<_>>()
            .map_err(fail)?;
        let index: BTreeMap<i64, usize> = scans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.scan_id, i))
            .collect();
        if !counted {
            return Ok(scans);
        }
        let mut counts = conn
            .prepare("SELECT scan_id, rule, status, count FROM scan_counts ORDER BY scan_id, rule")
            .map_err(fail)?;
        let mut rows = counts.query([]).map_err(fail)?;
        while let Some(row) = rows.next().map_err(fail)? {
            let scan: i64 = row.get(0).map_err(fail)?;
            let rule: String = row.get(1).map_err(fail)?;
            let Some(&at) = index.get(&scan) else {
                continue;
            };
            if !filter.rules.is_empty() && !filter.rules.contains(&rule) {
                continue;
            }
            let status: String = row.get(2).map_err(fail)?;
            let status: Status = status.parse().map_err(|message| StateError::Data {
                path: self.path().to_owned(),
                message: format!("scan_counts of scan {scan}: {message}"),
            })?;
            let count: u64 = row.get(3).map_err(fail)?;
            let trend = &mut scans[at];
            trend.rules.entry(rule).or_default().add(status, count);
            if let Some(total) = &mut trend.counts {
                total.add(status, count);
            }
        }
        Ok(scans)
    }

    /// The rules any scan counted findings of, sorted: what `trend
    /// --rule` may name.
    pub fn counted_rules(&self) -> Result<Vec<String>, StateError> {
        let sql = match self.schema_version()? {
            0 => return Ok(Vec::new()),
            v if v < COUNTS_VERSION => "SELECT DISTINCT rule FROM findings ORDER BY 1",
            _ => "SELECT rule FROM scan_counts UNION SELECT rule FROM findings ORDER BY 1",
        };
        let mut statement = self.connection().prepare(sql).map_err(|e| self.fail(e))?;
        let rules = statement
            .query_map([], |row| row.get(0))
            .map_err(|e| self.fail(e))?;
        rules
            .collect::<rusqlite::Result<_>>()
            .map_err(|e| self.fail(e))
    }

    /// The counts of one scan by rule; `None` when the scan's counts were
    /// not recorded (or there is no such scan).
    pub fn scan_counts(&self, scan: i64) -> Result<Option<ScanTrend>, StateError> {
        let trend = self.trend(&TrendFilter::default())?;
        Ok(trend
            .into_iter()
            .find(|s| s.scan_id == scan && s.counts_recorded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_the_statuses_a_scan_gave_and_the_findings_it_resolved() {
        let conn = Connection::open_in_memory().unwrap();
        super::super::schema::apply(&conn, 0).unwrap();
        conn.execute_batch(
            "INSERT INTO scans (id, started_at, finished_at, source, outcome) VALUES (1, 'a', 'a', 's', 'completed'), (2, 'b', 'b', 's', 'completed');",
        )
        .unwrap();
        // A scan's tally: what it gave (and resolved) as it went; zero
        // counts are not stored.
        let counts = |new, open, resolved, exempted| TrendCounts {
            new,
            open,
            resolved,
            exempted,
            ..TrendCounts::default()
        };
        let tally = [
            (std::sync::Arc::from("r1"), counts(1, 1, 0, 0)),
            (std::sync::Arc::from("r2"), counts(0, 0, 1, 1)),
        ];
        record_counts(&conn, 2, &tally).unwrap();
        let rows: Vec<(String, String, i64)> = conn
            .prepare("SELECT rule, status, count FROM scan_counts WHERE scan_id = 2 ORDER BY rule, status")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let rows: Vec<(&str, &str, i64)> = rows
            .iter()
            .map(|(a, b, c)| (a.as_str(), b.as_str(), *c))
            .collect();
        assert_eq!(
            rows,
            [
                ("r1", "new", 1),
                ("r1", "open", 1),
                ("r2", "exempted", 1),
                ("r2", "resolved", 1)
            ]
        );
    }
}
