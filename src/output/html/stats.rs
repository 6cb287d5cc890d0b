//! The report's distributions for the charts, gathered row by row in
//! bounded memory: a count per day for activity, a few sums per group
//! type, and a top-N heap for external members.
//!
//! Like [`crate::report::stats::ReportStats`], partial stats can be
//! merged, so they could be kept per worker; today one [`tap`] thread
//! feeds them.
//!
//! [`tap`]: super::tap

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::report::header::Col;
use crate::report::row::RowData;

/// Days since last activity counted one by one up to here; older
/// activity shares one counter.
pub(crate) const MAX_TRACKED_DAYS: usize = 3 * 365;
/// Distinct group types kept; more (a malformed report) go to "other".
pub(crate) const MAX_GROUP_TYPES: usize = 12;
/// Groups listed in the external-members chart.
pub(crate) const TOP_EXTERNAL: usize = 10;

/// Figures the HTML charts need, over the rows read without error.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HtmlStats {
    /// Groups not deleted, by days since last activity.
    pub activity: ActivityHistogram,
    /// Mailbox plus site storage of groups not deleted, by group type.
    pub storage_by_type: Vec<TypeStorage>,
    /// Deleted groups (left out of the other charts).
    pub deleted_groups: u64,
    /// Storage still held by deleted groups.
    pub deleted_storage_bytes: u64,
    /// The groups with the most external members.
    pub top_external: TopExternal,
}

impl Default for HtmlStats {
    fn default() -> Self {
        HtmlStats {
            activity: ActivityHistogram::default(),
            storage_by_type: Vec::new(),
            deleted_groups: 0,
            deleted_storage_bytes: 0,
            top_external: TopExternal::new(TOP_EXTERNAL),
        }
    }
}

impl HtmlStats {
    /// Counts one row read without error.
    pub(crate) fn add_row(&mut self, row: &RowData) {
        let storage = row.total_storage_bytes().map_or(0, clamp_to_u64);
        if row.is_deleted() {
            self.deleted_groups += 1;
            self.deleted_storage_bytes = self.deleted_storage_bytes.saturating_add(storage);
            return;
        }
        self.activity.add(row.days_since_activity());
        let group_type = row.text(Col::GroupType);
        self.add_storage(group_type.as_deref().unwrap_or("unknown"), storage, 1);
        if let Some(external) = row.int(Col::ExternalMemberCount).filter(|&n| n > 0) {
            self.top_external
                .offer(external as u64, row.line, || ExternalGroup {
                    name: row
                        .text(Col::GroupDisplayName)
                        .map_or_else(|| "(no name)".to_owned(), |n| n.into_owned()),
                    external: external as u64,
                    members: row.int(Col::MemberCount).map(clamp_to_u64),
                    line: row.line,
                });
        }
    }

    /// Adds the figures of `other`, gathered over other rows.
    #[cfg(test)]
    pub(crate) fn merge(&mut self, other: &HtmlStats) {
        self.activity.merge(&other.activity);
        for t in &other.storage_by_type {
            self.add_storage(&t.group_type, t.bytes, t.groups);
        }
        self.deleted_groups += other.deleted_groups;
        self.deleted_storage_bytes = self
            .deleted_storage_bytes
            .saturating_add(other.deleted_storage_bytes);
        for group in other.top_external.sorted() {
            self.top_external
                .offer(group.external, group.line, || group.clone());
        }
    }

    fn add_storage(&mut self, group_type: &str, bytes: u64, groups: u64) {
        let slot = match self
            .storage_by_type
            .iter()
            .position(|t| t.group_type.eq_ignore_ascii_case(group_type))
        {
            Some(index) => index,
            None if self.storage_by_type.len() < MAX_GROUP_TYPES - 1 || group_type == OTHER => {
                self.storage_by_type.push(TypeStorage {
                    group_type: group_type.to_owned(),
                    bytes: 0,
                    groups: 0,
                });
                self.storage_by_type.len() - 1
            }
            None => return self.add_storage(OTHER, bytes, groups),
        };
        let entry = &mut self.storage_by_type[slot];
        entry.bytes = entry.bytes.saturating_add(bytes);
        entry.groups += groups;
    }
}

const OTHER: &str = "other";

fn clamp_to_u64(value: i64) -> u64 {
    value.max(0) as u64
}

/// Storage of one group type.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TypeStorage {
    /// The report's group type (`Public`, `Private`); `unknown` when blank,
    /// `other` for the types past [`MAX_GROUP_TYPES`].
    pub group_type: String,
    /// Mailbox plus site storage, in bytes.
    pub bytes: u64,
    /// Groups of this type.
    pub groups: u64,
}

/// Groups by days since their last activity.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ActivityHistogram {
    /// `per_day[d]`: groups last active `d` days before the refresh date.
    /// Activity dated after the refresh date counts as day 0.
    per_day: Vec<u64>,
    /// Last active more than [`MAX_TRACKED_DAYS`] days before.
    pub older: u64,
    /// No activity in the report period (or no date to count from).
    pub never: u64,
}

impl Default for ActivityHistogram {
    fn default() -> Self {
        ActivityHistogram {
            per_day: vec![0; MAX_TRACKED_DAYS + 1],
            older: 0,
            never: 0,
        }
    }
}

impl ActivityHistogram {
    /// Counts a group last active `days` days before the refresh date;
    /// `None` for no activity in the report period.
    pub(crate) fn add(&mut self, days: Option<i64>) {
        match days {
            None => self.never += 1,
            Some(d) => match usize::try_from(d.max(0)) {
                Ok(d) if d <= MAX_TRACKED_DAYS => self.per_day[d] += 1,
                _ => self.older += 1,
            },
        }
    }

    /// Adds the counts of `other`, gathered over other rows.
    #[cfg(test)]
    pub(crate) fn merge(&mut self, other: &ActivityHistogram) {
        for (mine, theirs) in self.per_day.iter_mut().zip(&other.per_day) {
            *mine += theirs;
        }
        self.older += other.older;
        self.never += other.never;
    }

    /// Groups last active between `from` and `to` days ago (inclusive);
    /// `to == None` counts everything from `from` on, older ones too.
    pub(crate) fn count_between(&self, from: usize, to: Option<usize>) -> u64 {
        let start = from.min(self.per_day.len());
        match to {
            Some(to) if to < from => 0,
            Some(to) => {
                let end = to.saturating_add(1).min(self.per_day.len()).max(start);
                self.per_day[start..end].iter().sum()
            }
            None => self.per_day[start..].iter().sum::<u64>() + self.older,
        }
    }

    /// Groups with a known last activity.
    pub(crate) fn active(&self) -> u64 {
        self.count_between(0, None)
    }
}

/// A group with external members.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ExternalGroup {
    /// Group name as the report gives it.
    pub name: String,
    /// External members (guests).
    pub external: u64,
    /// All members, when the report gives the count.
    pub members: Option<u64>,
    /// The report line the group is on.
    pub line: u64,
}

/// The `capacity` groups with the most external members; ties go to the
/// group earlier in the report, so the result does not depend on order of
/// arrival.
#[derive(Clone, Debug)]
pub(crate) struct TopExternal {
    capacity: usize,
    /// Min-heap on (external, earlier line): the weakest on top.
    heap: BinaryHeap<Reverse<Ranked>>,
}

impl PartialEq for TopExternal {
    fn eq(&self, other: &Self) -> bool {
        self.capacity == other.capacity && self.sorted() == other.sorted()
    }
}

/// Ordered by external members, then by the earlier line; lines are
/// unique, so the group's own fields never decide.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Ranked {
    external: u64,
    earlier: Reverse<u64>,
    group: ExternalGroup,
}

impl TopExternal {
    /// An empty list that keeps at most `capacity` groups.
    pub(crate) fn new(capacity: usize) -> TopExternal {
        TopExternal {
            capacity,
            heap: BinaryHeap::with_capacity(capacity + 1),
        }
    }

    /// Considers a group; `make` runs only when it makes the list, so a
    /// row that does not costs no allocation.
    pub(crate) fn offer(&mut self, external: u64, line: u64, make: impl FnOnce() -> ExternalGroup) {
        if self.capacity == 0 {
            return;
        }
        let rank = (external, Reverse(line));
        if self.heap.len() == self.capacity {
            let weakest = &self.heap.peek().expect("full heap has a top").0;
            if rank <= (weakest.external, weakest.earlier) {
                return;
            }
            self.heap.pop();
        }
        self.heap.push(Reverse(Ranked {
            external,
            earlier: Reverse(line),
            group: make(),
        }));
    }

    /// Most external members first.
    pub(crate) fn sorted(&self) -> Vec<ExternalGroup> {
        let mut ranked: Vec<&Ranked> = self.heap.iter().map(|r| &r.0).collect();
        ranked.sort_by(|a, b| b.cmp(a));
        ranked.into_iter().map(|r| r.group.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, external: u64, line: u64) -> ExternalGroup {
        ExternalGroup {
            name: name.to_owned(),
            external,
            members: None,
            line,
        }
    }

    #[test]
    fn top_external_keeps_the_largest_and_prefers_earlier_rows_on_ties() {
        let mut top = TopExternal::new(2);
        for (name, external, line) in [("a", 5, 2), ("b", 9, 3), ("c", 5, 4), ("d", 7, 5)] {
            top.offer(external, line, || group(name, external, line));
        }
        let names: Vec<String> = top.sorted().into_iter().map(|g| g.name).collect();
        assert_eq!(names, ["b", "d"]);

        let mut tie = TopExternal::new(1);
        tie.offer(5, 9, || group("later", 5, 9));
        tie.offer(5, 3, || group("earlier", 5, 3));
        assert_eq!(tie.sorted()[0].name, "earlier");
    }

    #[test]
    fn top_external_does_not_build_groups_that_miss_the_list() {
        let mut top = TopExternal::new(1);
        top.offer(10, 2, || group("big", 10, 2));
        top.offer(1, 3, || {
            panic!("a group that cannot make the list was built")
        });
        assert_eq!(top.sorted().len(), 1);
    }

    #[test]
    fn histogram_counts_ranges_and_clamps_the_extremes() {
        let mut h = ActivityHistogram::default();
        for days in [
            Some(-2),
            Some(0),
            Some(30),
            Some(89),
            Some(90),
            Some(5000),
            None,
        ] {
            h.add(days);
        }
        assert_eq!(
            h.count_between(0, Some(0)),
            2,
            "future dates count as today"
        );
        assert_eq!(h.count_between(1, Some(89)), 2);
        assert_eq!(
            h.count_between(90, None),
            2,
            "includes the older-than-tracked one"
        );
        assert_eq!(h.never, 1);
        assert_eq!(h.active(), 6);
    }

    #[test]
    fn merged_stats_equal_stats_of_all_rows() {
        let mut left = HtmlStats::default();
        let mut right = HtmlStats::default();
        left.activity.add(Some(3));
        left.add_storage("Private", 100, 1);
        left.top_external.offer(4, 2, || group("x", 4, 2));
        right.activity.add(None);
        right.add_storage("private", 50, 1);
        right.add_storage("Public", 7, 1);
        right.top_external.offer(6, 3, || group("y", 6, 3));
        left.merge(&right);
        assert_eq!(left.activity.active(), 1);
        assert_eq!(left.activity.never, 1);
        assert_eq!(left.storage_by_type[0].bytes, 150);
        assert_eq!(left.storage_by_type[0].groups, 2);
        assert_eq!(left.storage_by_type[1].group_type, "Public");
        let names: Vec<String> = left
            .top_external
            .sorted()
            .into_iter()
            .map(|g| g.name)
            .collect();
        assert_eq!(names, ["y", "x"]);
    }

    #[test]
    fn many_group_types_share_an_other_slot() {
        let mut stats = HtmlStats::default();
        for i in 0..50 {
            stats.add_storage(&format!("type{i}"), 1, 1);
        }
        assert_eq!(stats.storage_by_type.len(), MAX_GROUP_TYPES);
        let other = stats.storage_by_type.last().unwrap();
        assert_eq!((other.group_type.as_str(), other.groups), (OTHER, 39));
    }
}
