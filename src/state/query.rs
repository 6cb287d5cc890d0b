//! Reading what the database remembers: findings by status and rule, a
//! group's history, exemption counts.

use rusqlite::types::Type;
use rusqlite::{Row, ToSql};
use serde::Serialize;

use super::changes::{Status, StoredEvidence, StoredFinding};
use super::store::{StateError, Store};

/// The columns [`stored_finding`] reads, in its order.
pub(crate) const FINDING_COLUMNS: &str = "key, status, rule, severity, group_key, group_id, group_name, owner, message, stored_evidence, \
     first_seen_scan, first_seen_at, last_seen_scan, last_seen_at, last_announced_at, resolved_at, resolution, exemption, exemption_reason, \
     (SELECT refresh_date FROM scans WHERE scans.id = findings.first_seen_scan)";

fn parsed<T: std::str::FromStr<Err = String>>(row: &Row<'_>, index: usize) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    text.parse()
        .map_err(|e: String| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, e.into()))
}

/// One row of `SELECT FINDING_COLUMNS FROM findings`.
pub(crate) fn stored_finding(row: &Row<'_>) -> rusqlite::Result<StoredFinding> {
    let evidence: String = row.get(9)?;
    let resolution: Option<String> = row.get(16)?;
    Ok(StoredFinding {
        key: row.get(0)?,
        status: parsed(row, 1)?,
        rule: row.get(2)?,
        severity: parsed(row, 3)?,
        group_key: row.get(4)?,
        group_id: row.get(5)?,
        group_name: row.get(6)?,
        owner: row.get(7)?,
        message: row.get(8)?,
        evidence: StoredEvidence::from_stored(&evidence)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(9, Type::Text, e.into()))?,
        first_seen_scan: row.get(10)?,
        first_seen_at: row.get(11)?,
        last_seen_scan: row.get(12)?,
        last_seen_at: row.get(13)?,
        last_announced_at: row.get(14)?,
        resolved_at: row.get(15)?,
        resolution: resolution
            .map(|r| {
                r.parse().map_err(|e: String| {
                    rusqlite::Error::FromSqlConversionFailure(16, Type::Text, e.into())
                })
            })
            .transpose()?,
        exemption: row.get(17)?,
        exemption_reason: row.get(18)?,
        first_seen_report: row.get(19)?,
    })
}

/// Which findings to list.
#[derive(Clone, Debug, Default)]
pub struct FindingFilter {
    /// Empty: every status but resolved.
    pub statuses: Vec<Status>,
    /// Empty: every rule.
    pub rules: Vec<String>,
}

impl Store {
    /// Findings matching `filter`, most recently seen first, one at a time.
    pub fn for_each_finding<E: From<StateError>>(
        &self,
        filter: &FindingFilter,
        mut each: impl FnMut(StoredFinding) -> Result<(), E>,
    ) -> Result<(), E> {
        let statuses: Vec<&str> = if filter.statuses.is_empty() {
            Status::ALL
                .iter()
                .filter(|s| s.is_active())
                .map(|s| s.as_str())
                .collect()
        } else {
            filter.statuses.iter().map(|s| s.as_str()).collect()
        };
        let mut sql = format!(
            "SELECT {FINDING_COLUMNS} FROM findings WHERE status IN ({})",
            placeholders(1, statuses.len())
        );
        if !filter.rules.is_empty() {
            sql.push_str(&format!(
                " AND rule IN ({})",
                placeholders(statuses.len() + 1, filter.rules.len())
            ));
        }
        sql.push_str(" ORDER BY last_seen_scan DESC, rule, key");
        let mut values: Vec<&dyn ToSql> = statuses.iter().map(|s| s as &dyn ToSql).collect();
        values.extend(filter.rules.iter().map(|r| r as &dyn ToSql));
        let mut statement = self.connection().prepare(&sql).map_err(|e| self.fail(e))?;
        let mut rows = statement
            .query(values.as_slice())
            .map_err(|e| self.fail(e))?;
        while let Some(row) = rows.next().map_err(|e| self.fail(e))? {
            each(stored_finding(row).map_err(|e| self.fail(e))?)?;
        }
        Ok(())
    }

    /// What the HTML page shows of the state after its latest scan: each
    /// remembered finding's status and first-seen day (resolved ones
    /// included), and which findings that scan resolved.
    pub fn lifecycle_view(&self) -> Result<LifecycleView, StateError> {
        let conn = self.connection();
        let latest: Option<i64> = conn
            .query_row(
                "SELECT max(id) FROM scans WHERE outcome = 'completed'",
                [],
                |row| row.get(0),
            )
            .map_err(|e| self.fail(e))?;
        let mut view = LifecycleView::default();
        let sql = format!("SELECT {FINDING_COLUMNS}, resolved_scan FROM findings");
        let mut statement = conn.prepare(&sql).map_err(|e| self.fail(e))?;
        let mut rows = statement.query([]).map_err(|e| self.fail(e))?;
        while let Some(row) = rows.next().map_err(|e| self.fail(e))? {
            let finding = stored_finding(row).map_err(|e| self.fail(e))?;
            let resolved_scan: Option<i64> = row.get(20).map_err(|e| self.fail(e))?;
            if finding.status == Status::Resolved
                && resolved_scan.is_some()
                && resolved_scan == latest
            {
                view.resolved_last_scan.push(finding.clone());
            }
            view.findings.push(finding);
        }
        Ok(view)
    }

    /// Every status change of the findings of one group, oldest first.
    /// `group` is a group id or key (`name:…`) or a display name (any
    /// case).
    pub fn history(&self, group: &str) -> Result<Vec<HistoryEntry>, StateError> {
        // A finding's first event, `new`, is its first scan (it is not
        // written as an event); a first event of another kind (exempted
        // from the start) is.
        let sql = "SELECT h.at, h.scan_id, s.refresh_date, h.rule, h.key, h.group_key, h.group_name, h.status, h.detail FROM ( \
                       SELECT e.at, e.scan_id, e.rule, e.key, e.group_key, e.group_name, e.status, e.detail, 1 AS kind, e.id AS seq \
                       FROM finding_events e \
                       WHERE e.group_key IN (?1, lower(?1), 'name:' || ?1) OR e.group_name = ?1 COLLATE NOCASE \
                       UNION ALL \
                       SELECT f.first_seen_at, f.first_seen_scan, f.rule, f.key, f.group_key, f.group_name, 'new', f.message, 0, f.id \
                       FROM findings f \
                       WHERE (f.group_key IN (?1, lower(?1), 'name:' || ?1) OR f.group_name = ?1 COLLATE NOCASE) \
                         AND NOT EXISTS (SELECT 1 FROM finding_events e WHERE e.key = f.key AND e.scan_id = f.first_seen_scan) \
                   ) h LEFT JOIN scans s ON s.id = h.scan_id \
                   ORDER BY h.scan_id, h.kind, h.seq";
        let mut statement = self.connection().prepare(sql).map_err(|e| self.fail(e))?;
        let rows = statement
            .query_map([group], |row| {
                Ok(HistoryEntry {
                    at: row.get(0)?,
                    scan_id: row.get(1)?,
                    report_refresh_date: row.get(2)?,
                    rule: row.get(3)?,
                    key: row.get(4)?,
                    group_key: row.get(5)?,
                    group_name: row.get(6)?,
                    status: parsed(row, 7)?,
                    detail: row.get(8)?,
                })
            })
            .map_err(|e| self.fail(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.fail(e))
    }

    /// How many active findings each exemption covers, by its origin.
    pub fn exempted_counts(&self) -> Result<Vec<(String, u64)>, StateError> {
        let sql =
            "SELECT exemption, count(*) FROM findings WHERE status = 'exempted' GROUP BY exemption";
        let mut statement = self.connection().prepare(sql).map_err(|e| self.fail(e))?;
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(|e| self.fail(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.fail(e))
    }
}

/// `?N, ?N+1, …`, `count` of them.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("?{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One status change of one finding.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HistoryEntry {
    /// When the scan that made the change started (UTC, RFC 3339).
    pub at: String,
    /// Id of that scan.
    pub scan_id: i64,
    /// That scan's report refresh date (`YYYY-MM-DD`); `None` when unknown.
    pub report_refresh_date: Option<String>,
    /// Id of the finding's rule.
    pub rule: String,
    /// The finding's key.
    pub key: String,
    /// The group part of the key: its id, or `name:<name>`.
    pub group_key: String,
    /// The group's name at the time, when known.
    pub group_name: Option<String>,
    /// The status the finding moved to.
    pub status: Status,
    /// The message (new, open, reopened), the exemption's reason
    /// (exempted) or how it resolved (resolved).
    pub detail: Option<String>,
}

/// The findings the state remembers, for a report of its latest scan.
#[derive(Clone, Debug, Default)]
pub struct LifecycleView {
    /// Every remembered finding.
    pub findings: Vec<StoredFinding>,
    /// Those the latest completed scan resolved.
    pub resolved_last_scan: Vec<StoredFinding>,
}
