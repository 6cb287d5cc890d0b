//! One group's row: raw record plus parsed numbers, booleans and dates.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::report::reader::Record;

use super::date::{format_day, parse_day};
use super::directory::GroupFacts;
use super::header::{COLUMN_COUNT, Col, Kind, Layout};

/// The all-zero id a concealed report gives every group.
pub const NIL_GROUP_ID: &str = "00000000-0000-0000-0000-000000000000";

/// A parsed cell. Text stays in the record until a rule reads it.
///
/// `repr(C, u8)`: every variant's value at the same offset, so a cell is
/// written in two stores (tag and value), not one per field width.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C, u8)]
pub enum Cell {
    /// Blank, or the column is not in this report: unknown.
    #[default]
    Blank,
    /// A whole number.
    Int(i64),
    /// `True` or `False`.
    Bool(bool),
    /// Days since 1970-01-01.
    Day(i32),
    /// Text: read from the record on demand.
    Text,
}

/// A row that could not be read. The scan reports it and goes on.
#[derive(Clone, Debug, PartialEq)]
pub struct RowError {
    /// 1-based line in the file where the record starts (the header is 1).
    pub line: u64,
    /// The header of the offending column, if one is to blame.
    pub column: Option<String>,
    /// 1-based field number of the offending column.
    pub field: Option<usize>,
    /// What is wrong, for the user.
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if let (Some(column), Some(field)) = (&self.column, self.field) {
            write!(f, ", column {field} \"{column}\"")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The data of one row. Shared with rule scripts through [`Row`].
#[derive(Clone, Debug)]
pub struct RowData {
    /// 1-based line in the file where the record starts (the header is 1).
    pub line: u64,
    /// The raw record.
    pub record: Record,
    /// Its parsed cells, by [`Col`] position.
    pub cells: [Cell; COLUMN_COUNT],
    /// Where each field sits in this report.
    pub layout: Arc<Layout>,
    /// What the directory says about this row's group (see
    /// [`super::directory`]); `None` when the join is off or the group is
    /// not in the directory.
    pub facts: Option<Arc<GroupFacts>>,
    /// Date texts read and their days: a report's refresh date is the
    /// same on every row, and activity dates repeat.
    days: DayCache,
}

/// Date texts and the days they read as, direct-mapped: a date text goes
/// in one slot, chosen by a hash of its last eight bytes, and replaces
/// what was there. A report's dates span a year or two, a few hundred
/// texts, so nearly every date cell is a hit: 16 bytes compared instead of
/// a parse of about 130 instructions. (One entry per column, as before,
/// missed on nine rows in ten of the bench report's activity dates.)
#[derive(Clone, Debug)]
struct DayCache(Box<[DayEntry; DAY_SLOTS]>);

const DAY_SLOTS: usize = 512;

/// A date text and its day. Every slot holds a true pair from the start
/// (1970-01-01, day 0), so a hit is right without a flag to test.
#[derive(Clone, Copy, Debug)]
struct DayEntry {
    text: [u8; 10],
    day: i32,
}

impl Default for DayCache {
    fn default() -> Self {
        DayCache(Box::new(
            [DayEntry {
                text: *b"1970-01-01",
                day: 0,
            }; DAY_SLOTS],
        ))
    }
}

impl DayCache {
    /// The day of a 10-byte date text, `None` when it is not a date.
    #[inline(always)]
    fn day(&mut self, text: &[u8; 10]) -> Option<i32> {
        let tail = u64::from_le_bytes(text[2..].try_into().expect("eight bytes"));
        // Fibonacci hashing: the product's top bits mix all eight bytes.
        let slot = (tail.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - DAY_SLOTS.ilog2())) as usize;
        let entry = &mut self.0[slot];
        if entry.text != *text {
            *entry = DayEntry {
                text: *text,
                day: parse_day(text)?,
            };
        }
        Some(entry.day)
    }
}

/// A cheap handle on a row, as rules see it.
#[derive(Clone, Debug)]
pub struct Row(pub Arc<RowData>);

impl RowData {
    /// An empty row for `layout`, to be filled by [`RowData::parse`].
    pub fn empty(layout: Arc<Layout>) -> RowData {
        RowData {
            line: 0,
            record: Record::default(),
            cells: [Cell::Blank; COLUMN_COUNT],
            layout,
            facts: None,
            days: DayCache::default(),
        }
    }

    /// Parses `self.record` (read from `line`) into typed cells.
    pub fn parse(&mut self, line: u64) -> Result<(), RowError> {
        self.line = line;
        self.facts = None;
        if let Some(reason) = self.record.skip_reason() {
            return Err(RowError {
                line,
                column: None,
                field: None,
                message: reason.to_owned(),
            });
        }
        let expected = self.layout.headers.len();
        if self.record.len() != expected {
            return Err(RowError {
                line,
                column: None,
                field: None,
                message: format!(
                    "expected {expected} fields as in the header, found {}",
                    self.record.len()
                ),
            });
        }
        // Fields in record order; the cells of columns the report lacks
        // stay blank (a row buffer serves one layout). The common cells
        // (plain digits, a date, a boolean, text) are settled inline;
        // anything else takes the general path, which also words errors.
        // Borrowed, not cloned: every worker's rows share the layout, and
        // a clone and drop per row made its count an atomic both cores
        // fought over (45% of the time parsing took).
        let layout = &*self.layout;
        let (bytes, ends) = self.record.raw_parts();
        // The header has a field, and the record as many.
        let Some((&last_end, ends)) = ends.split_last() else {
            return Ok(());
        };
        let days = &mut self.days;
        let mut start = 0;
        for (position, (&end, column)) in ends.iter().zip(layout.columns()).enumerate() {
            let raw = &bytes[start..end];
            start = end + 1;
            if let Some((col, kind)) = *column {
                let slot = &mut self.cells[col as usize];
                if !quick_cell(kind, raw, days, slot) {
                    *slot = checked_field(layout, line, position, kind, raw)?;
                }
            }
        }
        // The last field of a CRLF line ends in its `\r`. (The same four
        // lines as the loop's: one closure serving both, returning a
        // `Result` per field, cost 7% more instructions for the whole scan.)
        let raw = &bytes[start..last_end];
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let position = ends.len();
        if let Some(&Some((col, kind))) = layout.columns().get(position) {
            let slot = &mut self.cells[col as usize];
            if !quick_cell(kind, raw, days, slot) {
                *slot = checked_field(layout, line, position, kind, raw)?;
            }
        }
        self.check_dates()?;
        self.join_directory();
        Ok(())
    }

    /// Looks the row's group up in the layout's directory, if any: once
    /// per row, so rules read the facts without a lookup of their own.
    fn join_directory(&mut self) {
        let Some(directory) = &self.layout.directory else {
            return;
        };
        let facts = self
            .real_group_id()
            .and_then(|id| directory.get(&id).cloned());
        self.facts = facts;
    }

    /// Dates that cannot be: activity after the report was refreshed, or
    /// a report refreshed after today (a day of slack for time zones).
    fn check_dates(&self) -> Result<(), RowError> {
        let Cell::Day(refresh) = self.cells[Col::ReportRefreshDate as usize] else {
            return Ok(());
        };
        let at = |col: Col| {
            let position = self.layout.position(col);
            (
                position.map(|p| self.layout.header_at(p).to_owned()),
                position.map(|p| p + 1),
            )
        };
        if let Cell::Day(activity) = self.cells[Col::LastActivityDate as usize]
            && activity > refresh
        {
            let (column, field) = at(Col::LastActivityDate);
            return Err(RowError {
                line: self.line,
                column,
                field,
                message: format!(
                    "{} is after the report's refresh date {}",
                    format_day(activity),
                    format_day(refresh)
                ),
            });
        }
        let today = self.layout.today;
        if refresh > today + 1 {
            let (column, field) = at(Col::ReportRefreshDate);
            return Err(RowError {
                line: self.line,
                column,
                field,
                message: format!(
                    "{} is after today ({}): a report cannot be refreshed in the future (check the file, or this machine's clock)",
                    format_day(refresh),
                    format_day(today)
                ),
            });
        }
        Ok(())
    }

    /// The integer in `col`; `None` when blank, absent or not an integer column.
    pub fn int(&self, col: Col) -> Option<i64> {
        match self.cells[col as usize] {
            Cell::Int(value) => Some(value),
            _ => None,
        }
    }

    /// The boolean in `col`; `None` when blank, absent or not a boolean column.
    pub fn bool(&self, col: Col) -> Option<bool> {
        match self.cells[col as usize] {
            Cell::Bool(value) => Some(value),
            _ => None,
        }
    }

    /// The day in `col`, as days since 1970-01-01; `None` when blank, absent
    /// or not a date column.
    pub fn day(&self, col: Col) -> Option<i32> {
        match self.cells[col as usize] {
            Cell::Day(value) => Some(value),
            _ => None,
        }
    }

    /// A text cell, trimmed; `None` when blank or absent. `#QUOT#` (how the
    /// report writes a `"` in names) is decoded.
    pub fn text(&self, col: Col) -> Option<Cow<'_, str>> {
        let position = self.layout.position(col)?;
        self.text_at(position)
    }

    /// The trimmed text at a record position; `None` when blank.
    pub fn text_at(&self, position: usize) -> Option<Cow<'_, str>> {
        let raw = trim(self.record.get(position)?);
        if raw.is_empty() {
            return None;
        }
        let text = as_text(raw);
        if self.record.may_hold_hash() && text.contains("#QUOT#") {
            return Some(Cow::Owned(text.replace("#QUOT#", "\"")));
        }
        Some(text)
    }

    /// Deleted groups: `Is Deleted` true. Blank counts as not deleted.
    pub fn is_deleted(&self) -> bool {
        self.bool(Col::IsDeleted).unwrap_or(false)
    }

    /// Days from the last activity to the report's refresh date; `None`
    /// when the group was never active in the period.
    pub fn days_since_activity(&self) -> Option<i64> {
        let last = self.day(Col::LastActivityDate)?;
        let refresh = self.day(Col::ReportRefreshDate)?;
        Some(i64::from(refresh) - i64::from(last))
    }

    /// Days from the group's creation (per the directory) to the report's
    /// refresh date; `None` when either is unknown.
    pub fn days_since_created(&self) -> Option<i64> {
        let created = self.facts.as_ref()?.created_day()?;
        let refresh = self.day(Col::ReportRefreshDate)?;
        Some(i64::from(refresh) - i64::from(created))
    }

    /// Mailbox plus site storage; the known part when one is blank, `None`
    /// when both are.
    pub fn total_storage_bytes(&self) -> Option<i64> {
        let mailbox = self.int(Col::ExchangeMailboxStorageUsedByte);
        let site = self.int(Col::SharePointSiteStorageUsedByte);
        match (mailbox, site) {
            (None, None) => None,
            (m, s) => Some(m.unwrap_or(0).saturating_add(s.unwrap_or(0))),
        }
    }

    /// The group id, unless missing or the all-zero id of a concealed report.
    pub fn real_group_id(&self) -> Option<Cow<'_, str>> {
        self.text(Col::GroupId)
            .filter(|id| !is_nil_id(id.as_bytes()))
    }

    /// Names and ids are hidden by the tenant's privacy setting.
    pub fn is_concealed(&self) -> bool {
        // Bytes, not text: this runs for every row of every scan.
        let raw = |col| {
            self.layout
                .position(col)
                .and_then(|p| self.record.get(p))
                .map(trim)
                .unwrap_or_default()
        };
        is_nil_id(raw(Col::GroupId)) || is_hash_shaped_bytes(raw(Col::GroupDisplayName))
    }

    /// What identifies the group in a finding key: its id, or its name
    /// where the id is missing or concealed.
    pub fn group_key(&self) -> Cow<'_, str> {
        match self.real_group_id() {
            Some(id) => id,
            None => Cow::Owned(format!(
                "name:{}",
                self.text(Col::GroupDisplayName).unwrap_or_default()
            )),
        }
    }
}

/// The all-zero id of a concealed report. Its first byte settles nearly
/// every real id (a comparison of all 36 bytes per row was a `memcmp`
/// call each).
fn is_nil_id(id: &[u8]) -> bool {
    id.first() == Some(&b'0') && id == NIL_GROUP_ID.as_bytes()
}

/// A 32-character upper-case hex hash, as concealed reports write names.
pub fn is_hash_shaped(text: &str) -> bool {
    is_hash_shaped_bytes(text.as_bytes())
}

fn is_hash_shaped_bytes(text: &[u8]) -> bool {
    text.len() == 32
        && text
            .iter()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b))
}

/// A cell's bytes as text: borrowed when valid UTF-8 (nearly always),
/// else with invalid sequences replaced.
fn as_text(raw: &[u8]) -> Cow<'_, str> {
    if raw.is_ascii() {
        // SAFETY: ASCII is valid UTF-8. (Names, ids and addresses are
        // nearly always ASCII; `std::str::from_utf8` would check them
        // again at several times the cost of `is_ascii` on short cells.)
        return Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(raw) });
    }
    // `from_utf8_lossy` would borrow valid text too, but walks it more
    // slowly than `from_utf8`; it is left for the rare invalid cell.
    match std::str::from_utf8(raw) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(raw),
    }
}

fn trim(raw: &[u8]) -> &[u8] {
    if is_padded(raw) {
        raw.trim_ascii()
    } else {
        raw
    }
}

/// Whether a cell may need trimming. Most cells have no surrounding
/// spaces: two byte tests settle it.
fn is_padded(raw: &[u8]) -> bool {
    !matches!((raw.first(), raw.last()),
        (Some(first), Some(last)) if !first.is_ascii_whitespace() && !last.is_ascii_whitespace())
}

fn expectation(kind: Kind) -> &'static str {
    match kind {
        Kind::Text => "text",
        Kind::Bool => "True or False",
        Kind::Int => "a whole number",
        Kind::Date => "a date as YYYY-MM-DD",
    }
}

/// The cell of the field at `position` that [`quick_cell`] left, or the
/// row error it makes.
#[cold]
#[inline(never)]
fn checked_field(
    layout: &Layout,
    line: u64,
    position: usize,
    kind: Kind,
    raw: &[u8],
) -> Result<Cell, RowError> {
    checked_cell(kind, trim(raw)).map_err(|message| cell_error(layout, line, position, message))
}

/// Writes to `slot` the cell of an untrimmed field in its usual form
/// (plain digits, a `YYYY-MM-DD` date, `True`/`False`, text that starts
/// with no space), cheaply; `false` (and `slot` as it was) leaves the
/// field to [`checked_cell`], which gives the same cell for these. A
/// field with spaces around it is never settled here: no digit, date or
/// boolean has a space, and text is only settled when its first byte is
/// above the space (so it is not blank once trimmed).
///
/// Written in place, not returned: a cell returned and then stored cost
/// about eight instructions per field more.
#[inline(always)]
fn quick_cell(kind: Kind, raw: &[u8], days: &mut DayCache, slot: &mut Cell) -> bool {
    let Some(&first) = raw.first() else {
        *slot = Cell::Blank;
        return true;
    };
    match kind {
        Kind::Text if first > b' ' => *slot = Cell::Text,
        // At most 18 digits (no overflow) and no sign: a count of 0 or more.
        Kind::Int if raw.len() <= 18 => {
            let mut value: i64 = 0;
            for &byte in raw {
                let digit = byte.wrapping_sub(b'0');
                if digit > 9 {
                    return false;
                }
                value = value * 10 + i64::from(digit);
            }
            *slot = Cell::Int(value);
        }
        Kind::Bool if raw == b"True" => *slot = Cell::Bool(true),
        Kind::Bool if raw == b"False" => *slot = Cell::Bool(false),
        Kind::Date => match <&[u8; 10]>::try_from(raw)
            .ok()
            .and_then(|text| days.day(text))
        {
            Some(day) => *slot = Cell::Day(day),
            None => return false,
        },
        _ => return false,
    }
    true
}

/// The cell of a trimmed field, or what is wrong with it.
#[cold]
fn checked_cell(kind: Kind, raw: &[u8]) -> Result<Cell, String> {
    match parse_cell(kind, raw) {
        _ if raw.is_empty() => Ok(Cell::Blank),
        // Every number of the report is a count, a size or a period: a
        // negative one is a broken row, not data.
        Some(Cell::Int(value)) if value < 0 => {
            Err(format!("expected a count of 0 or more, found {value}"))
        }
        Some(cell) => Ok(cell),
        None => Err(format!(
            "expected {}, found \"{}\"",
            expectation(kind),
            super::text::for_message(&String::from_utf8_lossy(raw), super::text::QUOTED_CHARS)
        )),
    }
}

/// A row error in the field at `position`.
#[cold]
fn cell_error(layout: &Layout, line: u64, position: usize, message: String) -> RowError {
    RowError {
        line,
        column: Some(layout.header_at(position).to_owned()),
        field: Some(position + 1),
        message,
    }
}

fn parse_cell(kind: Kind, raw: &[u8]) -> Option<Cell> {
    match kind {
        Kind::Text => Some(Cell::Text),
        Kind::Bool => {
            if raw.eq_ignore_ascii_case(b"true") {
                Some(Cell::Bool(true))
            } else if raw.eq_ignore_ascii_case(b"false") {
                Some(Cell::Bool(false))
            } else {
                None
            }
        }
        Kind::Int => parse_int(raw).map(Cell::Int),
        Kind::Date => parse_day(raw).map(Cell::Day),
    }
}

fn parse_int(raw: &[u8]) -> Option<i64> {
    let (negative, digits) = match raw.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, raw),
    };
    if digits.is_empty() {
        return None;
    }
    let mut value: i64 = 0;
    if digits.len() <= 18 {
        // 18 digits cannot overflow: no checked arithmetic per digit.
        for &byte in digits {
            let digit = byte.wrapping_sub(b'0');
            if digit > 9 {
                return None;
            }
            value = value * 10 + i64::from(digit);
        }
    } else {
        // Accumulated with its sign, so that i64::MIN (one more in
        // magnitude than i64::MAX) is read too.
        for &byte in digits {
            if !byte.is_ascii_digit() {
                return None;
            }
            let digit = i64::from(byte - b'0');
            value = value.checked_mul(10)?;
            value = if negative {
                value.checked_sub(digit)?
            } else {
                value.checked_add(digit)?
            };
        }
        return Some(value);
    }
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &[&str] = &[
        "Report Refresh Date",
        "Group Display Name",
        "Is Deleted",
        "Owner Principal Name",
        "Last Activity Date",
        "Member Count",
        "Exchange Mailbox Storage Used (Byte)",
        "SharePoint Site Storage Used (Byte)",
        "Group Id",
    ];

    fn row(fields: &[&str]) -> Result<RowData, RowError> {
        let layout = Arc::new(Layout::from_headers(HEADER).unwrap());
        let mut data = RowData::empty(layout);
        data.record = Record::from(fields.to_vec());
        data.parse(7).map(|_| data)
    }

    #[test]
    fn impossible_values_are_row_errors_naming_their_column() {
        let error = row(&["2026-11-25", "A", "False", "", "", "-3", "", "", ""]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 7, column 6 \"Member Count\": expected a count of 0 or more, found -3"
        );
        let error =
            row(&["2026-11-25", "A", "False", "", "2026-11-26", "", "", "", ""]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("column 5 \"Last Activity Date\": 2026-11-26 is after the report's refresh date 2026-11-25"),
            "{error}"
        );
        let error = row(&["2099-01-01", "A", "False", "", "", "", "", "", ""]).unwrap_err();
        assert!(
            error.to_string().contains("2099-01-01 is after today"),
            "{error}"
        );
        assert!(
            row(&[
                "2026-11-25",
                "A",
                "False",
                "",
                "2026-11-25",
                "0",
                "",
                "",
                ""
            ])
            .is_ok()
        );
    }

    #[test]
    fn blank_cells_are_unknown_not_zero() {
        let r = row(&["2026-11-25", "Sales", "False", "", "", "", "", "", ""]).unwrap();
        assert_eq!(r.int(Col::MemberCount), None);
        assert_eq!(r.days_since_activity(), None);
        assert_eq!(r.total_storage_bytes(), None);
        assert_eq!(r.text(Col::OwnerPrincipalName), None);
        assert_eq!(r.group_key(), "name:Sales");
        // Columns the file does not have are unknown too.
        assert_eq!(r.int(Col::ExternalMemberCount), None);
    }

    #[test]
    fn parses_numbers_beyond_32_bits_dates_and_booleans() {
        let r = row(&[
            "2026-11-25",
            "A",
            "TRUE",
            "x@y",
            "2026-08-27",
            "7",
            "5000000000",
            "1",
            "g1",
        ])
        .unwrap();
        assert!(r.is_deleted());
        assert_eq!(r.days_since_activity(), Some(90));
        assert_eq!(r.total_storage_bytes(), Some(5_000_000_001));
        assert_eq!(r.int(Col::MemberCount), Some(7));
        assert_eq!(r.group_key(), "g1");
    }

    #[test]
    fn decodes_quot_in_names() {
        let r = row(&[
            "2026-11-25",
            "The #QUOT#Archive#QUOT#",
            "false",
            "",
            "",
            "",
            "",
            "",
            "",
        ])
        .unwrap();
        assert_eq!(r.text(Col::GroupDisplayName).unwrap(), "The \"Archive\"");
    }

    #[test]
    fn bad_values_are_row_errors_naming_line_and_column() {
        let err = row(&["2026-11-25", "A", "False", "", "", "N/A", "", "", ""]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 7, column 6 \"Member Count\": expected a whole number, found \"N/A\""
        );
        let err = row(&["2026-11-25", "A", "maybe", "", "", "", "", "", ""]).unwrap_err();
        assert!(err.to_string().contains("expected True or False"));
        let err = row(&["2026-11-25", "A", "False", "", "2026-02-30", "", "", "", ""]).unwrap_err();
        assert!(
            err.to_string()
                .contains("\"Last Activity Date\": expected a date")
        );
        let err = row(&["2026-11-25", "A"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 7: expected 9 fields as in the header, found 2"
        );
    }

    #[test]
    fn concealed_rows_are_recognised_and_keyed_by_name() {
        let r = row(&[
            "2023-05-31",
            "7D3654B07E126BBD0D18174368FC243F",
            "False",
            "",
            "",
            "1",
            "",
            "",
            NIL_GROUP_ID,
        ])
        .unwrap();
        assert!(r.is_concealed());
        assert_eq!(r.group_key(), "name:7D3654B07E126BBD0D18174368FC243F");
    }

    /// Cells made of the bytes that decide how a cell parses.
    fn cell_bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let byte = prop::sample::select(b"0123456789-+ \t\r\nTrueFalsTRUEfalsex#,\"".to_vec());
        prop_oneof![
            prop::collection::vec(byte, 0..24),
            // Dates, mostly valid, and the same date again (the cache).
            (1960u32..2100, 0u32..14, 0u32..33)
                .prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}").into_bytes()),
            Just(b"2026-11-25".to_vec()),
        ]
    }

    proptest::proptest! {
        #![proptest_config(crate::test_support::proptest_config())]

        /// The inline parse of the usual cells gives exactly the cell of
        /// the general path (which trims and words errors), whatever the
        /// bytes, and leaves to it every cell it does not settle.
        #[test]
        fn the_quick_parse_agrees_with_the_general_one(
            cells in proptest::collection::vec(cell_bytes(), 1..40),
        ) {
            for kind in [Kind::Text, Kind::Int, Kind::Bool, Kind::Date] {
                let mut days = DayCache::default();
                for raw in &cells {
                    let general = checked_cell(kind, trim(raw)).ok();
                    let mut quick = Cell::Int(-1);
                    if quick_cell(kind, raw, &mut days, &mut quick) {
                        proptest::prop_assert_eq!(Some(quick), general, "{:?} {:?}", kind, raw);
                    } else {
                        proptest::prop_assert_eq!(quick, Cell::Int(-1), "{:?} {:?}", kind, raw);
                    }
                }
            }
        }
    }

    /// Every slot answers only for the text it was given: a text no slot
    /// was given (ten NUL bytes, the all-zero date) is parsed, and
    /// thousands of dates sharing 512 slots, read in two orders, each read
    /// as the parse gives.
    #[test]
    fn the_day_cache_answers_as_the_parse_does() {
        let mut days = DayCache::default();
        assert_eq!(days.day(&[0; 10]), None);
        assert_eq!(days.day(b"0000-00-00"), None);
        assert_eq!(days.day(b"1970-01-01"), Some(0));
        let texts: Vec<[u8; 10]> = (parse_day(b"1990-01-01").unwrap()
            ..parse_day(b"2031-01-01").unwrap())
            .map(|day| format_day(day).into_bytes().try_into().unwrap())
            .collect();
        for pass in 0..2 {
            let order: Box<dyn Iterator<Item = &[u8; 10]>> = if pass == 0 {
                Box::new(texts.iter())
            } else {
                Box::new(texts.iter().rev().step_by(7).chain(texts.iter().step_by(3)))
            };
            for text in order {
                assert_eq!(
                    days.day(text),
                    parse_day(text),
                    "{}",
                    String::from_utf8_lossy(text)
                );
            }
        }
        assert_eq!(days.day(b"2023-02-29"), None);
    }

    #[test]
    fn integers_overflowing_64_bits_are_errors() {
        assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_int(b"9223372036854775808"), None);
        assert_eq!(parse_int(b"-3"), Some(-3));
        assert_eq!(parse_int(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_int(b"-9223372036854775809"), None);
        assert_eq!(parse_int(b"-0000000000000000000003"), Some(-3));
        assert_eq!(parse_int(b"1.5"), None);
    }

    #[test]
    fn text_is_read_as_the_report_wrote_it() {
        let layout = Arc::new(Layout::from_headers(HEADER).unwrap());
        let mut data = RowData::empty(layout);
        let fields: Vec<&[u8]> = vec![
            b"2026-11-25",
            b" Caf\xc3\xa9 \xe2\x9c\x93 ",
            b"False",
            b"bad \xff byte",
            b"",
            b"",
            b"",
            b"",
            b"#QUOT#quoted#QUOT#",
        ];
        data.record = Record::from(fields);
        data.parse(2).unwrap();
        assert_eq!(
            data.text(Col::GroupDisplayName).unwrap(),
            "Caf\u{e9} \u{2713}"
        );
        assert_eq!(
            data.text(Col::OwnerPrincipalName).unwrap(),
            "bad \u{fffd} byte"
        );
        assert_eq!(data.text(Col::GroupId).unwrap(), "\"quoted\"");
    }
}
