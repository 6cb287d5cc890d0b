//! Whole-report figures, gathered while rows stream past.
//!
//! Workers each keep their own [`ReportStats`] for the rows they evaluate;
//! the ordered merge adds them up, so the result does not depend on how
//! rows were spread over threads.

use serde::Serialize;

use super::header::Col;
use super::row::RowData;

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReportStats {
    /// Rows read without error.
    pub rows: u64,
    pub deleted: u64,
    /// Rows whose names or ids are concealed.
    pub concealed: u64,
    /// The latest refresh date seen, as days since 1970-01-01.
    #[serde(skip)]
    pub refresh_day: Option<i32>,
    /// The report period in days, from the first row that gives one.
    pub period: Option<i64>,
}

impl ReportStats {
    pub fn add_row(&mut self, row: &RowData) {
        self.rows += 1;
        if row.is_deleted() {
            self.deleted += 1;
        }
        if row.is_concealed() {
            self.concealed += 1;
        }
        if let Some(day) = row.day(Col::ReportRefreshDate) {
            self.refresh_day = self.refresh_day.max(Some(day));
        }
        if self.period.is_none() {
            self.period = row.int(Col::ReportPeriod);
        }
    }

    pub fn merge(&mut self, other: &ReportStats) {
        self.rows += other.rows;
        self.deleted += other.deleted;
        self.concealed += other.concealed;
        self.refresh_day = self.refresh_day.max(other.refresh_day);
        if self.period.is_none() {
            self.period = other.period;
        }
    }

    /// The refresh date as `YYYY-MM-DD`.
    pub fn refresh_date(&self) -> Option<String> {
        self.refresh_day.map(super::date::format_day)
    }
}
