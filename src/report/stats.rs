//! Whole-report figures, gathered while rows stream past.
//!
//! Workers each keep their own [`ReportStats`] for the rows they evaluate;
//! the ordered merge adds them up, so the result does not depend on how
//! rows were spread over threads. Every figure is a sum, a maximum, a
//! first-seen value or a bounded top list with a total order (value, then
//! report line), so merging parts gives exactly what one pass over the
//! whole report would. Tenant rules read these figures
//! ([`crate::engine::tenant`]).

use std::collections::BTreeMap;

use serde::Serialize;

use super::header::Col;
use super::row::RowData;

/// Entries kept in each top list.
pub const TOP_N: usize = 10;

/// Whole-report figures: row counts, activity, membership, storage and
/// the top groups, over the rows read without error.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReportStats {
    /// Rows read without error.
    pub rows: u64,
    /// Rows of deleted groups.
    pub deleted: u64,
    /// Rows whose names or ids are concealed.
    pub concealed: u64,
    /// The report's refresh date, as days since 1970-01-01: the one most
    /// rows carry (see [`ReportStats::refresh_days`]).
    #[serde(skip)]
    pub refresh_day: Option<i32>,
    /// Rows per refresh date: nearly always one date; more when a file
    /// mixes reports or a row was edited.
    #[serde(skip)]
    pub refresh_days: Vec<(i32, u64)>,
    /// The report period in days, from the first row that gives one.
    pub period: Option<i64>,
    /// Rows of groups that are not deleted; the figures below count only
    /// these unless their name says otherwise.
    pub not_deleted: u64,
    /// Groups with no activity in the whole report period.
    pub never_active: u64,
    /// Groups by days since their last activity (days → groups); sparse,
    /// so its size is bounded by the span of dates, not by the rows.
    pub days_since_activity: BTreeMap<i64, u64>,
    /// Groups without an owner.
    pub ownerless: u64,
    /// Groups (not deleted) whose type is `Public`.
    pub public: u64,
    /// Groups (not deleted) whose type is `Private`.
    pub private: u64,
    /// Sum of known member counts.
    pub members: u64,
    /// Sum of known external member (guest) counts.
    pub guests: u64,
    /// Groups with at least one guest.
    pub groups_with_guests: u64,
    /// Mailbox plus site storage of every row, deleted groups included.
    pub total_storage_bytes: u64,
    /// Mailbox plus site storage still held by deleted groups.
    pub deleted_storage_bytes: u64,
    /// The groups with the most guests.
    pub top_by_guests: TopGroups,
    /// The groups with the most mailbox plus site storage.
    pub top_by_storage: TopGroups,
}

/// The groups with the largest value of some figure, largest first; ties
/// go to the earlier report line. At most [`TOP_N`] entries.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TopGroups(pub Vec<TopGroup>);

/// One entry of a top list: a group and its value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TopGroup {
    /// The figure the list ranks by (guests, bytes).
    pub value: u64,
    /// The report line the group is on.
    pub line: u64,
    /// The group's name, when the report gives one.
    pub group_name: Option<String>,
    /// The group's id, when the report gives one.
    pub group_id: Option<String>,
    /// The group's owner, when the report gives one.
    pub owner: Option<String>,
}

impl TopGroups {
    /// Whether a group with `value` on `line` would enter the list.
    fn admits(&self, value: u64, line: u64) -> bool {
        value > 0
            && (self.0.len() < TOP_N
                || self
                    .0
                    .last()
                    .is_some_and(|last| ranks_above((value, line), last)))
    }

    fn offer(&mut self, value: u64, row: &RowData) {
        if self.admits(value, row.line) {
            let entry = TopGroup {
                value,
                line: row.line,
                group_name: row.text(Col::GroupDisplayName).map(|t| t.into_owned()),
                group_id: row.real_group_id().map(|t| t.into_owned()),
                owner: row.text(Col::OwnerPrincipalName).map(|t| t.into_owned()),
            };
            self.insert(entry);
        }
    }

    fn insert(&mut self, entry: TopGroup) {
        let at = self
            .0
            .partition_point(|e| ranks_above((e.value, e.line), &entry));
        self.0.insert(at, entry);
        self.0.truncate(TOP_N);
    }

    fn merge(&mut self, other: &TopGroups) {
        for entry in &other.0 {
            if self.admits(entry.value, entry.line) {
                self.insert(entry.clone());
            }
        }
    }
}

fn ranks_above((value, line): (u64, u64), other: &TopGroup) -> bool {
    value > other.value || (value == other.value && line < other.line)
}

/// The trimmed bytes of a column; `None` when the report lacks it.
fn raw_cell(row: &RowData, col: Col) -> Option<&[u8]> {
    let position = row.layout.position(col)?;
    Some(row.record.get(position).unwrap_or_default().trim_ascii())
}

fn non_negative(value: Option<i64>) -> u64 {
    value.map_or(0, |v| v.max(0) as u64)
}

impl ReportStats {
    /// Counts one row read without error.
    pub fn add_row(&mut self, row: &RowData) {
        self.add_row_basics(row);
        let storage = non_negative(row.total_storage_bytes());
        self.total_storage_bytes = self.total_storage_bytes.saturating_add(storage);
        if row.is_deleted() {
            self.deleted += 1;
            self.deleted_storage_bytes = self.deleted_storage_bytes.saturating_add(storage);
            return;
        }
        self.add_group(row, storage);
    }

    /// Only the figures every scan reports (rows, concealed rows, refresh
    /// date, period): a scan without tenant rules or an HTML page needs no
    /// more, and a big report is read faster without them.
    pub fn add_row_basics(&mut self, row: &RowData) {
        self.rows += 1;
        if row.is_concealed() {
            self.concealed += 1;
        }
        if let Some(day) = row.day(Col::ReportRefreshDate) {
            self.count_refresh_day(day, 1);
        }
        if self.period.is_none() {
            self.period = row.int(Col::ReportPeriod);
        }
    }

    /// The figures about groups that are not deleted.
    fn add_group(&mut self, row: &RowData, storage: u64) {
        self.not_deleted += 1;
        match row.days_since_activity() {
            Some(days) => *self.days_since_activity.entry(days).or_default() += 1,
            None => self.never_active += 1,
        }
        // Raw bytes, not `RowData::text`: this runs for every row and
        // needs no decoding.
        if raw_cell(row, Col::OwnerPrincipalName).is_some_and(<[u8]>::is_empty) {
            self.ownerless += 1;
        }
        match raw_cell(row, Col::GroupType) {
            Some(kind) if kind.eq_ignore_ascii_case(b"public") => self.public += 1,
            Some(kind) if kind.eq_ignore_ascii_case(b"private") => self.private += 1,
            _ => {}
        }
        self.members = self
            .members
            .saturating_add(non_negative(row.int(Col::MemberCount)));
        let guests = non_negative(row.int(Col::ExternalMemberCount));
        self.guests = self.guests.saturating_add(guests);
        if guests > 0 {
            self.groups_with_guests += 1;
        }
        self.top_by_guests.offer(guests, row);
        self.top_by_storage.offer(storage, row);
    }

    /// Adds the figures of `other`, gathered over other rows.
    pub fn merge(&mut self, other: &ReportStats) {
        self.rows += other.rows;
        self.deleted += other.deleted;
        self.concealed += other.concealed;
        for &(day, rows) in &other.refresh_days {
            self.count_refresh_day(day, rows);
        }
        if self.period.is_none() {
            self.period = other.period;
        }
        self.not_deleted += other.not_deleted;
        self.never_active += other.never_active;
        for (days, groups) in &other.days_since_activity {
            *self.days_since_activity.entry(*days).or_default() += groups;
        }
        self.ownerless += other.ownerless;
        self.public += other.public;
        self.private += other.private;
        self.members = self.members.saturating_add(other.members);
        self.guests = self.guests.saturating_add(other.guests);
        self.groups_with_guests += other.groups_with_guests;
        self.total_storage_bytes = self
            .total_storage_bytes
            .saturating_add(other.total_storage_bytes);
        self.deleted_storage_bytes = self
            .deleted_storage_bytes
            .saturating_add(other.deleted_storage_bytes);
        self.top_by_guests.merge(&other.top_by_guests);
        self.top_by_storage.merge(&other.top_by_storage);
    }

    /// Counts `rows` on refresh date `day`; the report's date is the one
    /// most rows carry (the later on a tie), so one odd row cannot move
    /// the date the state keeps as the last refresh.
    fn count_refresh_day(&mut self, day: i32, rows: u64) {
        match self.refresh_days.iter_mut().find(|(d, _)| *d == day) {
            Some((_, count)) => *count += rows,
            None => self.refresh_days.push((day, rows)),
        }
        if self.refresh_day == Some(day) {
            // More rows for the leading date: it only leads further.
            return;
        }
        self.refresh_day = self
            .refresh_days
            .iter()
            .max_by_key(|&&(day, rows)| (rows, day))
            .map(|&(day, _)| day);
    }

    /// Rows whose refresh date is not the report's.
    pub fn refresh_date_outliers(&self) -> u64 {
        self.refresh_days
            .iter()
            .filter(|(day, _)| Some(*day) != self.refresh_day)
            .map(|(_, rows)| rows)
            .sum()
    }

    /// The refresh date as `YYYY-MM-DD`.
    pub fn refresh_date(&self) -> Option<String> {
        self.refresh_day.map(super::date::format_day)
    }

    /// Groups (not deleted) whose last activity was `days` or more days
    /// before the refresh date. Groups never active are not included:
    /// add [`ReportStats::never_active`] for "inactive or never active".
    pub fn inactive_for(&self, days: i64) -> u64 {
        self.days_since_activity
            .range(days..)
            .map(|(_, groups)| groups)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::report::reader::Record;

    use super::*;

    #[test]
    fn the_refresh_date_is_the_one_most_rows_carry() {
        let mut stats = ReportStats::default();
        stats.count_refresh_day(20_000, 1);
        stats.count_refresh_day(19_990, 1);
        stats.count_refresh_day(19_990, 1);
        assert_eq!(stats.refresh_day, Some(19_990));
        assert_eq!(stats.refresh_date_outliers(), 1);
        let mut other = ReportStats::default();
        other.count_refresh_day(20_000, 5);
        stats.merge(&other);
        assert_eq!(stats.refresh_day, Some(20_000));
        assert_eq!(stats.refresh_date_outliers(), 2);
    }
    use crate::report::header::Layout;

    const HEADER: &[&str] = &[
        "Report Refresh Date",
        "Group Display Name",
        "Is Deleted",
        "Owner Principal Name",
        "Last Activity Date",
        "Group Type",
        "Member Count",
        "External Member Count",
        "Exchange Mailbox Storage Used (Byte)",
        "SharePoint Site Storage Used (Byte)",
        "Group Id",
    ];

    /// Rows numbered from line 2; guests = line % 7, storage = line * 1000,
    /// every fifth deleted, every third ownerless, every fourth never active.
    fn rows(count: u64) -> Vec<RowData> {
        let layout = Arc::new(Layout::from_headers(HEADER).unwrap());
        (2..count + 2)
            .map(|line| {
                let mut row = RowData::empty(Arc::clone(&layout));
                let deleted = if line % 5 == 0 { "True" } else { "False" };
                let owner = if line % 3 == 0 { "" } else { "o@x" };
                let last = if line % 4 == 0 {
                    String::new()
                } else {
                    format!("2026-11-{:02}", 1 + line % 25)
                };
                let kind = if line % 2 == 0 { "Public" } else { "Private" };
                let fields = [
                    "2026-11-25".to_owned(),
                    format!("G{line}"),
                    deleted.to_owned(),
                    owner.to_owned(),
                    last,
                    kind.to_owned(),
                    "10".to_owned(),
                    (line % 7).to_string(),
                    (line * 600).to_string(),
                    (line * 400).to_string(),
                    format!("id-{line}"),
                ];
                row.record = Record::from(fields.iter().map(String::as_str).collect::<Vec<_>>());
                row.parse(line).unwrap();
                row
            })
            .collect()
    }

    fn stats_of(rows: &[RowData]) -> ReportStats {
        let mut stats = ReportStats::default();
        rows.iter().for_each(|r| stats.add_row(r));
        stats
    }

    #[test]
    fn merging_parts_in_order_equals_one_pass() {
        let rows = rows(200);
        let whole = stats_of(&rows);
        for chunk in [1, 7, 13, 64, 199] {
            let mut merged = ReportStats::default();
            for part in rows.chunks(chunk) {
                merged.merge(&stats_of(part));
            }
            assert_eq!(merged, whole, "chunks of {chunk}");
        }
    }

    #[test]
    fn counts_groups_storage_and_guests() {
        let stats = stats_of(&rows(20)); // lines 2..=21
        assert_eq!(stats.rows, 20);
        assert_eq!(stats.deleted, 4); // 5, 10, 15, 20
        assert_eq!(stats.not_deleted, 16);
        assert_eq!(stats.ownerless, 6); // 3, 6, 9, 12, 18, 21 (15 is deleted)
        assert_eq!(stats.never_active, 4); // 4, 8, 12, 16 (20 is deleted)
        assert_eq!(
            stats.never_active + stats.inactive_for(i64::MIN),
            stats.not_deleted
        );
        assert_eq!(
            stats.total_storage_bytes,
            (2..=21).map(|l| l * 1000).sum::<u64>()
        );
        assert_eq!(stats.deleted_storage_bytes, 50_000);
        assert_eq!(stats.public + stats.private, stats.not_deleted);
        let guests: Vec<u64> = stats.top_by_guests.0.iter().map(|g| g.value).collect();
        assert_eq!(guests, vec![6, 6, 5, 5, 4, 4, 4, 3, 3, 2]);
        // Ties go to the earlier line.
        assert_eq!(stats.top_by_guests.0[0].line, 6);
        assert_eq!(stats.top_by_guests.0[1].line, 13);
        assert_eq!(stats.top_by_storage.0[0].group_name.as_deref(), Some("G21"));
        assert_eq!(stats.top_by_storage.0.len(), TOP_N);
    }

    #[test]
    fn inactive_for_counts_at_and_beyond_the_threshold() {
        let stats = ReportStats {
            days_since_activity: [(10, 1), (89, 2), (90, 3), (400, 4)].into(),
            ..Default::default()
        };
        assert_eq!(stats.inactive_for(90), 7);
        assert_eq!(stats.inactive_for(91), 4);
        assert_eq!(stats.inactive_for(0), 10);
    }
}
