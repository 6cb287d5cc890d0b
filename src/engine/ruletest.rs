//! Rule tests: `<rule>.test.toml` beside each `<rule>.rhai`.
//!
//! A test file is a list of cases. Each case describes one or more report
//! rows by the fields that matter (every other field takes a sensible
//! default: a fresh, active, owned, private group in a report refreshed on
//! [`TEST_REFRESH_DATE`]), optional parameter overrides, and what the rule
//! should report:
//!
//! ```toml
//! [[case]]
//! name = "exactly 90 days without activity is inactive"
//! row = { last_activity_date = "2026-08-27" }
//! expect = [{ severity = "medium", message = "No activity for 90 days" }]
//! ```
//!
//! The rows are written as CSV text and go through the real parser
//! ([`Layout::from_headers`], [`RowData::parse`]) and the real
//! [`Evaluator`], so a test exercises exactly what a scan does; a rule
//! that defines `tenant` also gets the [`ReportStats`] of the case's rows.
//! The format is documented for rule writers in `docs/writing-rules.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::report::reader::Record;
use regex::Regex;
use rhai::Engine;
use serde::Deserialize;
use toml::Spanned;

use super::diagnostics::{did_you_mean, toml_error};
use super::eval::{Evaluator, RowOutcome, RuleFailure};
use super::finding::{Evidence, Finding, Severity};
use super::rule::{Rule, RuleError};
use super::sandbox::row_property_names;
use super::tenant::{self, Summary};
use crate::report::date::{format_day, parse_day};
use crate::report::directory::{Directory, GroupFacts};
use crate::report::header::{COLUMNS, Col, Layout, match_key};
use crate::report::row::RowData;
use crate::report::stats::ReportStats;

/// The refresh date of test rows that do not set one.
pub(crate) const TEST_REFRESH_DATE: &str = "2026-11-25";

/// Most rows one case may describe (with `times`), so a typo cannot make
/// a test run forever.
const MAX_ROWS_PER_CASE: usize = 100_000;

/// The test file of a rule: `inactive-groups.rhai` → `inactive-groups.test.toml`.
pub(crate) fn test_file_for(rule_path: &Path) -> PathBuf {
    rule_path.with_extension("test.toml")
}

/// What a test row holds in a column the case does not set, for the
/// `index`-th row of the case (1-based); `None` when the column is absent
/// from test reports unless a case sets it (the Teams columns, which only
/// `/beta` reports have).
pub(crate) fn test_default(col: Col, index: usize) -> Option<String> {
    let text = match col {
        Col::ReportRefreshDate => TEST_REFRESH_DATE,
        Col::GroupDisplayName if index > 1 => return Some(format!("Test Group {index}")),
        Col::GroupDisplayName => "Test Group",
        Col::IsDeleted => "False",
        Col::OwnerPrincipalName => "owner@contoso.com",
        Col::LastActivityDate => TEST_REFRESH_DATE,
        Col::GroupType => "Private",
        Col::MemberCount => "5",
        Col::ExternalMemberCount => "0",
        Col::ExchangeReceivedEmailCount => "10",
        Col::SharePointActiveFileCount => "3",
        Col::YammerPostedMessageCount
        | Col::YammerReadMessageCount
        | Col::YammerLikedMessageCount => "0",
        Col::ExchangeMailboxTotalItemCount => "100",
        Col::ExchangeMailboxStorageUsedByte => "1000000",
        Col::SharePointTotalFileCount => "20",
        Col::SharePointSiteStorageUsedByte => "5000000",
        Col::GroupId => return Some(format!("11111111-2222-3333-4444-{index:012}")),
        Col::ReportPeriod => "30",
        Col::TeamsChannelMessagesCount | Col::TeamsMeetingsOrganizedCount => return None,
    };
    Some(text.to_owned())
}

/// A test file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TestFileError {
    /// The test file could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The test file.
        path: PathBuf,
        /// Why reading it failed.
        error: std::io::Error,
    },
    /// The file is not valid TOML of the test format (the message names
    /// the place), or it has no `[[case]]`.
    #[error("{path}: {message}")]
    Invalid {
        /// The test file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A case is wrong at one place: an unknown field, a bad value.
    #[error("{path}:{line}:{column}: {message}")]
    At {
        /// The test file.
        path: PathBuf,
        /// 1-based line of the bad value.
        line: usize,
        /// 1-based column, in bytes, of the bad value.
        column: usize,
        /// What is wrong there.
        message: String,
    },
}

/// The cases of one test file.
#[derive(Debug)]
pub(crate) struct TestFile {
    /// Its `[[case]]`s, in file order; never empty.
    pub cases: Vec<Case>,
}

/// One case: rows to evaluate and what the rule should make of them.
#[derive(Debug)]
pub(crate) struct Case {
    /// The case's `name`, shown in the results.
    pub name: String,
    /// Where the case starts in the test file.
    pub line: usize,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    /// What the directory says about the case's groups (`directory = {…}`).
    directory: Option<Arc<Directory>>,
    params: toml::Table,
    expect: Vec<Expectation>,
    expect_error: Option<String>,
}

/// One expected finding (or `count` alike).
#[derive(Debug)]
struct Expectation {
    severity: Option<Severity>,
    message: Option<String>,
    matches: Option<Regex>,
    count: usize,
    evidence: Vec<(String, toml::Value)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(default, rename = "case")]
    cases: Vec<Spanned<CaseSpec>>,
}

type RowSpec = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseSpec {
    name: String,
    row: Option<RowSpec>,
    rows: Option<Vec<RowSpec>>,
    #[serde(default)]
    absent: Vec<Spanned<String>>,
    #[serde(default)]
    params: toml::Table,
    expect: Option<Vec<ExpectSpec>>,
    expect_error: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectSpec {
    severity: Option<Severity>,
    message: Option<String>,
    matches: Option<Spanned<String>>,
    count: Option<usize>,
    #[serde(default)]
    evidence: toml::Table,
}

/// An error at a byte offset of the test file, before it becomes a
/// [`TestFileError::At`].
struct SpanError {
    offset: usize,
    message: String,
}

impl SpanError {
    fn new(offset: usize, message: impl Into<String>) -> SpanError {
        SpanError {
            offset,
            message: message.into(),
        }
    }
}

/// Reads and checks a test file.
pub(crate) fn load(path: &Path) -> Result<TestFile, TestFileError> {
    let text = std::fs::read_to_string(path).map_err(|error| TestFileError::Io {
        path: path.to_owned(),
        error,
    })?;
    parse(path, &text)
}

/// Parses test-file text; errors name the line and column.
pub(crate) fn parse(path: &Path, text: &str) -> Result<TestFile, TestFileError> {
    let spec: FileSpec = toml::from_str(text).map_err(|e| TestFileError::Invalid {
        path: path.to_owned(),
        message: toml_error(&e, text),
    })?;
    let at = |error: SpanError| {
        let (line, column) = line_column(text, error.offset);
        TestFileError::At {
            path: path.to_owned(),
            line,
            column,
            message: error.message,
        }
    };
    if spec.cases.is_empty() {
        return Err(TestFileError::Invalid {
            path: path.to_owned(),
            message: "no test cases; add one with [[case]]".into(),
        });
    }
    let cases = spec
        .cases
        .into_iter()
        .map(|case| build_case(case, text).map_err(at))
        .collect::<Result<_, _>>()?;
    Ok(TestFile { cases })
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

fn build_case(spec: Spanned<CaseSpec>, text: &str) -> Result<Case, SpanError> {
    let start = spec.span().start;
    let spec = spec.into_inner();
    let named =
        |message: String| SpanError::new(start, format!("case \"{}\": {message}", spec.name));
    let default_row = RowSpec::new();
    let row_specs = match (&spec.row, &spec.rows) {
        (Some(_), Some(_)) => return Err(named("give `row` or `rows`, not both".into())),
        (Some(row), None) => std::slice::from_ref(row),
        // `rows = []` is an empty report (for tenant rules).
        (None, Some(rows)) => rows.as_slice(),
        // A case without rows tests the defaults: a fresh, active group.
        (None, None) => std::slice::from_ref(&default_row),
    };
    if spec.expect.is_none() && spec.expect_error.is_none() {
        return Err(named(
            "say what the rule should report: `expect = []` for nothing, or a list of findings"
                .into(),
        ));
    }
    let mut rows = Vec::new();
    for row_spec in row_specs {
        let row = resolve_row(row_spec)?;
        if rows.len() + row.times > MAX_ROWS_PER_CASE {
            return Err(named(format!(
                "a case may have at most {MAX_ROWS_PER_CASE} rows"
            )));
        }
        let times = row.times;
        rows.extend(std::iter::repeat_n(row, times));
    }
    let absent = absent_columns(&spec.absent, &rows)?;
    let (headers, records) = build_records(&rows, &absent);
    let directory = case_directory(&rows).map(Arc::new);
    let expect = spec
        .expect
        .unwrap_or_default()
        .into_iter()
        .map(|e| build_expectation(e, start))
        .collect::<Result<_, _>>()?;
    Ok(Case {
        name: spec.name,
        line: line_column(text, start).0,
        headers,
        rows: records,
        directory,
        params: spec.params,
        expect,
        expect_error: spec.expect_error,
    })
}

/// One row of a case with its values as CSV text.
#[derive(Clone, Default)]
struct ResolvedRow {
    known: BTreeMap<usize, String>,
    /// `days_since_activity = N`, applied once the refresh date is known.
    days_since_activity: Option<Spanned<toml::Value>>,
    extra: BTreeMap<String, String>,
    /// `directory = { … }`: what the directory says about the row's group.
    directory: Option<GroupFacts>,
    /// `directory = { days_since_created = N }`, applied once the refresh
    /// date is known.
    days_since_created: Option<(i64, usize)>,
    times: usize,
}

fn resolve_row(spec: &RowSpec) -> Result<ResolvedRow, SpanError> {
    let mut row = ResolvedRow {
        times: 1,
        ..Default::default()
    };
    for (key, value) in spec {
        let offset = key.span().start;
        match key.get_ref().as_str() {
            "times" => {
                row.times = value
                    .get_ref()
                    .as_integer()
                    .filter(|n| *n >= 1)
                    .map(|n| n as usize)
                    .ok_or_else(|| {
                        SpanError::new(
                            value.span().start,
                            "`times` must be a whole number of at least 1",
                        )
                    })?;
            }
            "extra" => {
                let table = value.get_ref().as_table().ok_or_else(|| {
                    SpanError::new(value.span().start, "`extra` must be a table of column headers: extra = { \"Sensitivity Label\" = \"Confidential\" }")
                })?;
                for (header, cell) in table {
                    row.extra.insert(
                        header.trim().to_owned(),
                        cell_text(cell).map_err(|m| SpanError::new(value.span().start, m))?,
                    );
                }
            }
            "days_since_activity" => row.days_since_activity = Some(value.clone()),
            "directory" => {
                let (facts, days) = directory_facts(value)?;
                row.directory = Some(facts);
                row.days_since_created = days;
            }
            name => {
                let col = known_column(name)
                    .ok_or_else(|| SpanError::new(offset, unknown_row_key(name)))?;
                let text = cell_text(value.get_ref())
                    .map_err(|m| SpanError::new(value.span().start, format!("`{name}`: {m}")))?;
                if row.known.insert(col, text).is_some() {
                    return Err(SpanError::new(
                        offset,
                        format!(
                            "`{name}` sets column \"{}\" a second time",
                            COLUMNS[col].header
                        ),
                    ));
                }
            }
        }
    }
    apply_days_since_activity(&mut row)?;
    apply_days_since_created(&mut row)?;
    Ok(row)
}

/// The keys of a row's `directory = { … }`.
const DIRECTORY_KEYS: [&str; 9] = [
    "owners",
    "owner_count",
    "created_date",
    "days_since_created",
    "is_team",
    "visibility",
    "group_mail",
    "sensitivity_label",
    "expiration_date",
];

/// `directory = { owners = ["a@x"], created_date = "2026-11-01", … }`:
/// the group's directory facts (`owner_count` defaults to the number of
/// `owners`), and `days_since_created` if given.
fn directory_facts(
    value: &Spanned<toml::Value>,
) -> Result<(GroupFacts, Option<(i64, usize)>), SpanError> {
    let at = value.span().start;
    let table = value.get_ref().as_table().ok_or_else(|| {
        SpanError::new(at, "`directory` must be a table: directory = { owners = [\"ann@contoso.com\"], created_date = \"2026-11-01\" }")
    })?;
    let mut facts = GroupFacts::default();
    let mut owner_count = None;
    let mut days = None;
    for (key, item) in table {
        let wrong =
            |expected: &str| SpanError::new(at, format!("`directory.{key}` must be {expected}"));
        let text = || {
            item.as_str()
                .map(str::to_owned)
                .ok_or_else(|| wrong("a string"))
        };
        let date = || {
            let text = text()?;
            parse_day(text.as_bytes())
                .map(|_| Some(text))
                .ok_or_else(|| wrong("a date as YYYY-MM-DD"))
        };
        match key.as_str() {
            "owners" => {
                facts.owners = item
                    .as_array()
                    .and_then(|list| list.iter().map(|o| o.as_str().map(str::to_owned)).collect())
                    .ok_or_else(|| wrong("an array of addresses"))?;
            }
            "owner_count" => {
                owner_count = Some(
                    item.as_integer()
                        .filter(|n| *n >= 0)
                        .ok_or_else(|| wrong("a whole number of 0 or more"))?,
                );
            }
            "created_date" => facts.created_date = date()?,
            "days_since_created" => {
                days = Some((
                    item.as_integer()
                        .ok_or_else(|| wrong("a whole number of days"))?,
                    at,
                ));
            }
            "is_team" => facts.is_team = item.as_bool().ok_or_else(|| wrong("true or false"))?,
            "visibility" => facts.visibility = Some(text()?),
            "group_mail" => facts.group_mail = Some(text()?),
            "sensitivity_label" => facts.sensitivity_label = Some(text()?),
            "expiration_date" => facts.expiration_date = date()?,
            other => {
                let hint = did_you_mean(other, DIRECTORY_KEYS)
                    .map(|h| format!("; did you mean `{h}`?"))
                    .unwrap_or_default();
                return Err(SpanError::new(
                    at,
                    format!("unknown directory field `{other}`{hint}"),
                ));
            }
        }
    }
    facts.owner_count = owner_count.unwrap_or(facts.owners.len() as i64);
    Ok((facts, days))
}

/// `directory = { days_since_created = N }` sets `created_date` to N days
/// before the row's refresh date.
fn apply_days_since_created(row: &mut ResolvedRow) -> Result<(), SpanError> {
    let (Some((days, offset)), Some(facts)) =
        (row.days_since_created.take(), row.directory.as_mut())
    else {
        return Ok(());
    };
    if facts.created_date.is_some() {
        return Err(SpanError::new(
            offset,
            "set `days_since_created` or `created_date`, not both",
        ));
    }
    let refresh_text = row
        .known
        .get(&(Col::ReportRefreshDate as usize))
        .map_or(TEST_REFRESH_DATE, String::as_str);
    let day = parse_day(refresh_text.as_bytes())
        .and_then(|refresh| i32::try_from(days).ok().and_then(|d| refresh.checked_sub(d)))
        .ok_or_else(|| SpanError::new(offset, "`days_since_created` needs a valid report_refresh_date and a number of days in range"))?;
    facts.created_date = Some(format_day(day));
    Ok(())
}

/// The directory of a case: each row's facts under its group id; `None`
/// when no row has any (the join is off, as without `[directory]`).
fn case_directory(rows: &[ResolvedRow]) -> Option<Directory> {
    let groups: Vec<(String, GroupFacts)> = rows
        .iter()
        .enumerate()
        .filter_map(|(index, row)| {
            let facts = row.directory.clone()?;
            let id = row
                .known
                .get(&(Col::GroupId as usize))
                .cloned()
                .or_else(|| test_default(Col::GroupId, index + 1))?;
            Some((id.trim().to_owned(), facts))
        })
        .collect();
    (!groups.is_empty()).then(|| Directory::new(groups, "test".into()))
}

/// A known column by field name, header or alias.
fn known_column(name: &str) -> Option<usize> {
    let key = match_key(name);
    COLUMNS
        .iter()
        .position(|c| match_key(c.header) == key || c.aliases.iter().any(|a| match_key(a) == key))
}

fn unknown_row_key(name: &str) -> String {
    if let Some(derived) = derived_hint(name) {
        return derived;
    }
    let candidates = row_property_names().chain(["times", "extra", "directory"]);
    match did_you_mean(name, candidates) {
        Some(hint) => format!("unknown field `{name}`; did you mean `{hint}`?"),
        None => format!(
            "unknown field `{name}` (other columns go in `extra = {{ \"Header\" = \"value\" }}`)"
        ),
    }
}

fn derived_hint(name: &str) -> Option<String> {
    let advice = match name {
        "total_storage_bytes" => {
            "set exchange_mailbox_storage_used_byte and sharepoint_site_storage_used_byte"
        }
        "is_concealed" => "set group_id to all zeros or group_display_name to a 32-character hash",
        "line" => "rows are numbered from line 2 in the order given",
        name if DIRECTORY_KEYS.contains(&name) => {
            "it comes from the directory: set it in `directory = { … }`, e.g. directory = { owners = [\"ann@contoso.com\"], created_date = \"2026-11-01\" }"
        }
        _ => return None,
    };
    Some(format!("`{name}` is computed from other fields: {advice}"))
}

/// The CSV text of a TOML value, as the report would write it.
fn cell_text(value: &toml::Value) -> Result<String, String> {
    Ok(match value {
        toml::Value::String(text) => text.clone(),
        toml::Value::Integer(number) => number.to_string(),
        toml::Value::Float(number) => number.to_string(),
        toml::Value::Boolean(true) => "True".to_owned(),
        toml::Value::Boolean(false) => "False".to_owned(),
        toml::Value::Datetime(date) => date.to_string(),
        toml::Value::Array(_) | toml::Value::Table(_) => {
            return Err("a cell is a string, number, bool or date (\"\" for blank)".into());
        }
    })
}

/// `days_since_activity = 90` sets `last_activity_date` to 90 days before
/// the row's refresh date; `days_since_activity = ""` leaves it blank.
fn apply_days_since_activity(row: &mut ResolvedRow) -> Result<(), SpanError> {
    let Some(value) = row.days_since_activity.take() else {
        return Ok(());
    };
    let offset = value.span().start;
    if row.known.contains_key(&(Col::LastActivityDate as usize)) {
        return Err(SpanError::new(
            offset,
            "set `days_since_activity` or `last_activity_date`, not both",
        ));
    }
    let last = match value.get_ref() {
        toml::Value::Integer(days) => {
            let refresh_text = row
                .known
                .get(&(Col::ReportRefreshDate as usize))
                .map_or(TEST_REFRESH_DATE, String::as_str);
            let refresh = parse_day(refresh_text.as_bytes())
                .ok_or_else(|| SpanError::new(offset, format!("`days_since_activity` needs a valid report_refresh_date, found \"{refresh_text}\"")))?;
            let day = i32::try_from(*days)
                .ok()
                .and_then(|d| refresh.checked_sub(d));
            format_day(
                day.ok_or_else(|| SpanError::new(offset, "`days_since_activity` is out of range"))?,
            )
        }
        toml::Value::String(text) if text.is_empty() => String::new(),
        _ => {
            return Err(SpanError::new(
                offset,
                "`days_since_activity` must be a whole number of days, or \"\" for never active",
            ));
        }
    };
    row.known.insert(Col::LastActivityDate as usize, last);
    Ok(())
}

fn absent_columns(
    names: &[Spanned<String>],
    rows: &[ResolvedRow],
) -> Result<Vec<usize>, SpanError> {
    let mut absent = Vec::new();
    for name in names {
        let offset = name.span().start;
        let col = known_column(name.get_ref())
            .ok_or_else(|| SpanError::new(offset, unknown_row_key(name.get_ref())))?;
        if COLUMNS[col].required {
            return Err(SpanError::new(
                offset,
                format!(
                    "\"{}\" is required: a report without it cannot be read",
                    COLUMNS[col].header
                ),
            ));
        }
        if rows.iter().any(|r| r.known.contains_key(&col)) {
            return Err(SpanError::new(
                offset,
                format!("`{}` is absent but a row sets it", COLUMNS[col].field),
            ));
        }
        absent.push(col);
    }
    Ok(absent)
}

/// The header and the records of a case's rows: the known columns a test
/// report has (see [`test_default`]) minus `absent`, plus any other
/// column a row sets, then the extra columns.
fn build_records(rows: &[ResolvedRow], absent: &[usize]) -> (Vec<String>, Vec<Vec<String>>) {
    let columns: Vec<usize> = (0..COLUMNS.len())
        .filter(|col| !absent.contains(col))
        .filter(|&col| {
            test_default(Col::ALL[col], 1).is_some()
                || rows.iter().any(|r| r.known.contains_key(&col))
        })
        .collect();
    let mut extra: Vec<&String> = rows.iter().flat_map(|r| r.extra.keys()).collect();
    extra.sort();
    extra.dedup();
    let mut headers: Vec<String> = columns
        .iter()
        .map(|&col| COLUMNS[col].header.to_owned())
        .collect();
    headers.extend(extra.iter().map(|h| (*h).clone()));
    let records = rows
        .iter()
        .enumerate()
        .map(|(index, row)| {
            let known = columns.iter().map(|&col| match row.known.get(&col) {
                Some(text) => text.clone(),
                None => test_default(Col::ALL[col], index + 1).unwrap_or_default(),
            });
            known
                .chain(
                    extra
                        .iter()
                        .map(|h| row.extra.get(*h).cloned().unwrap_or_default()),
                )
                .collect()
        })
        .collect();
    (headers, records)
}

fn build_expectation(spec: ExpectSpec, case_start: usize) -> Result<Expectation, SpanError> {
    let matches = match spec.matches {
        Some(pattern) => {
            let offset = pattern.span().start;
            Some(Regex::new(pattern.get_ref()).map_err(|e| {
                SpanError::new(
                    offset,
                    format!("`matches` is not a valid regular expression: {e}"),
                )
            })?)
        }
        None => None,
    };
    if spec.count == Some(0) {
        return Err(SpanError::new(
            case_start,
            "`count = 0` expects nothing: leave the expectation out instead",
        ));
    }
    Ok(Expectation {
        severity: spec.severity,
        message: spec.message,
        matches,
        count: spec.count.unwrap_or(1),
        evidence: spec.evidence.into_iter().collect(),
    })
}

impl Expectation {
    fn accepts(&self, finding: &Finding) -> bool {
        self.severity.is_none_or(|s| s == finding.severity)
            && self
                .message
                .as_ref()
                .is_none_or(|m| finding.message.contains(m.as_str()))
            && self
                .matches
                .as_ref()
                .is_none_or(|re| re.is_match(&finding.message))
            && self.evidence.iter().all(|(name, expected)| {
                finding
                    .evidence
                    .0
                    .iter()
                    .any(|(n, actual)| **n == *name && evidence_equals(expected, actual))
            })
    }
}

fn evidence_equals(expected: &toml::Value, actual: &Evidence) -> bool {
    match (expected, actual) {
        (toml::Value::String(text), Evidence::Null) => text.is_empty(),
        (toml::Value::String(text), Evidence::Text(actual)) => text == actual,
        (toml::Value::Integer(n), Evidence::Int(actual)) => n == actual,
        (toml::Value::Integer(n), Evidence::Float(actual)) => *n as f64 == *actual,
        (toml::Value::Float(x), Evidence::Float(actual)) => x == actual,
        (toml::Value::Boolean(b), Evidence::Bool(actual)) => b == actual,
        (toml::Value::Datetime(date), Evidence::Text(actual)) => date.to_string() == *actual,
        _ => false,
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.count > 1 {
            write!(f, "{} × ", self.count)?;
        }
        match self.severity {
            Some(severity) => write!(f, "{:<8} ", severity.as_str())?,
            None => write!(f, "{:<8} ", "any")?,
        }
        let mut parts = Vec::new();
        if let Some(message) = &self.message {
            parts.push(format!("message containing {message:?}"));
        }
        if let Some(re) = &self.matches {
            parts.push(format!("message matching /{}/", re.as_str()));
        }
        if !self.evidence.is_empty() {
            let evidence: Vec<String> = self
                .evidence
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            parts.push(format!("evidence {}", evidence.join(", ")));
        }
        if parts.is_empty() {
            parts.push("finding".into());
        }
        f.write_str(&parts.join(", "))
    }
}

/// How one case went: passed when `problems` is empty.
#[derive(Debug)]
pub(crate) struct CaseResult {
    /// The case's name.
    pub name: String,
    /// Where the case starts in the test file.
    pub line: usize,
    /// What went wrong, one short line each; empty when the case passed.
    pub problems: Vec<String>,
    /// A readable expected-vs-actual diff, one line each: `- ` expected but
    /// missing, `+ ` found but not expected, `  ` as expected, `! ` an
    /// error.
    pub diff: Vec<String>,
}

impl CaseResult {
    /// Whether the rule did what the case expects.
    pub(crate) fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What the rule made of a case's rows.
#[derive(Default)]
struct Actual {
    findings: Vec<Finding>,
    failures: Vec<RuleFailure>,
    multiple_rows: bool,
}

/// Runs one case against `rule` (with its declared defaults; the case's
/// `params` override them).
pub(crate) fn run_case(engine: &Engine, rule: &Rule, case: &Case) -> CaseResult {
    let mut result = CaseResult {
        name: case.name.clone(),
        line: case.line,
        problems: Vec::new(),
        diff: Vec::new(),
    };
    match evaluate_case(engine, rule, case) {
        Ok(actual) => compare(case, &actual, &mut result),
        Err(message) => {
            result.diff.push(format!("! {message}"));
            result.problems.push(message);
        }
    }
    result
}

fn evaluate_case(engine: &Engine, rule: &Rule, case: &Case) -> Result<Actual, String> {
    let mut rule = rule.clone();
    rule.enabled = true;
    rule.apply_overrides(&case.params).map_err(|e| match e {
        RuleError::Config { key, message } => format!(
            "params: {}: {message}",
            key.rsplit('.').next().unwrap_or(&key)
        ),
        other => other.to_string(),
    })?;
    let mut layout = Layout::from_headers(&case.headers).map_err(|e| e.to_string())?;
    layout.directory = case.directory.clone();
    let layout = Arc::new(layout);
    let (mut actual, stats) = evaluate_rows(engine, &rule, case, &layout, true)?;
    // The same rows in the interpreter alone: a rule must mean the same
    // on both paths, or the compiled one is wrong.
    let (interpreted, _) = evaluate_rows(engine, &rule, case, &layout, false)?;
    let messages = |a: &Actual| {
        a.failures
            .iter()
            .map(|f| f.diagnostic.short())
            .collect::<Vec<_>>()
    };
    if actual.findings != interpreted.findings || messages(&actual) != messages(&interpreted) {
        return Err(format!(
            "the fast path and the interpreter disagree (a groupwarden bug: please report it with this rule); fast path: {:?} {:?}; interpreter: {:?} {:?}",
            actual.findings,
            messages(&actual),
            interpreted.findings,
            messages(&interpreted)
        ));
    }
    if rule.tenant_arity.is_some() {
        let mut tenant = tenant::evaluate(engine, [&rule], &Summary::new(stats, 0));
        actual.findings.append(&mut tenant.findings);
        actual.failures.append(&mut tenant.failures);
    }
    Ok(actual)
}

/// The case's rows through the evaluator a scan uses, on the fast path
/// or in the interpreter only.
fn evaluate_rows(
    engine: &Engine,
    rule: &Rule,
    case: &Case,
    layout: &Arc<Layout>,
    fast_path: bool,
) -> Result<(Actual, ReportStats), String> {
    let mut evaluator = Evaluator::new(engine, [rule], RowData::empty(Arc::clone(layout)));
    evaluator.fast_path = fast_path;
    let mut actual = Actual {
        multiple_rows: case.rows.len() > 1,
        ..Default::default()
    };
    let mut stats = ReportStats::default();
    let mut outcome = RowOutcome::default();
    for (index, cells) in case.rows.iter().enumerate() {
        let line = index as u64 + 2;
        let row = evaluator.row_mut();
        row.record = Record::from(cells.iter().map(String::as_str).collect::<Vec<_>>());
        row.parse(line)
            .map_err(|e| format!("the test row cannot be read: {e}"))?;
        stats.add_row(row);
        evaluator.evaluate(&mut outcome);
        actual.findings.append(&mut outcome.findings);
        actual.failures.append(&mut outcome.failures);
    }
    Ok((actual, stats))
}

fn compare(case: &Case, actual: &Actual, result: &mut CaseResult) {
    check_errors(case, actual, result);
    let mut used = vec![false; actual.findings.len()];
    for expectation in &case.expect {
        let matched: Vec<usize> = (0..actual.findings.len())
            .filter(|&i| !used[i] && expectation.accepts(&actual.findings[i]))
            .take(expectation.count)
            .collect();
        for &i in &matched {
            used[i] = true;
            result.diff.push(format!(
                "  {}",
                describe_finding(&actual.findings[i], actual.multiple_rows)
            ));
        }
        if matched.len() < expectation.count {
            let found = if expectation.count > 1 {
                format!(" (found {})", matched.len())
            } else {
                String::new()
            };
            result.problems.push(format!("missing: {expectation}"));
            result.diff.push(format!("- {expectation}{found}"));
        }
    }
    for (finding, _) in actual
        .findings
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
    {
        result
            .problems
            .push(format!("unexpected: {}", finding.message));
        result.diff.push(format!(
            "+ {}",
            describe_finding(finding, actual.multiple_rows)
        ));
    }
    if !result.problems.is_empty() && actual.findings.is_empty() && actual.failures.is_empty() {
        result.diff.push("  (the rule reported nothing)".into());
    }
    if !result.problems.is_empty()
        && case.expect.is_empty()
        && case.expect_error.is_none()
        && !actual.findings.is_empty()
    {
        result.diff.insert(0, "  expected no findings".into());
    }
}

fn check_errors(case: &Case, actual: &Actual, result: &mut CaseResult) {
    match &case.expect_error {
        Some(pattern) => {
            if !actual
                .failures
                .iter()
                .any(|f| f.diagnostic.message.contains(pattern.as_str()))
            {
                result
                    .problems
                    .push(format!("expected the rule to fail with {pattern:?}"));
                result
                    .diff
                    .push(format!("- rule error containing {pattern:?}"));
                for failure in &actual.failures {
                    result.diff.push(format!("! {}", failure.diagnostic));
                }
            } else {
                result
                    .diff
                    .push(format!("  rule error containing {pattern:?}"));
            }
        }
        None => {
            for failure in &actual.failures {
                result.problems.push(failure.diagnostic.short());
                result
                    .diff
                    .push(format!("! rule error: {}", failure.diagnostic));
            }
        }
    }
}

fn describe_finding(finding: &Finding, multiple_rows: bool) -> String {
    let place = match finding.line {
        None => "  (tenant)".to_owned(),
        Some(line) if multiple_rows => format!("  (row {})", line - 1),
        Some(_) => String::new(),
    };
    format!(
        "{:<8} {:?}{place}",
        finding.severity.as_str(),
        finding.message
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::config::Limits;
    use crate::engine::rule::compile_rule;
    use crate::engine::sandbox::build_engine;

    const INACTIVE: &str = r#"
const SEVERITY = "medium";
const PARAMS = #{ days: 90 };
fn check(row, params) {
    let days = row.days_since_activity;
    if days == () { return "never active"; }
    if days >= params.days { return `No activity for ${days} days`; }
}
"#;

    fn run(rule_source: &str, test_text: &str) -> Vec<CaseResult> {
        let engine = build_engine(&Limits::default());
        let rule = compile_rule(&engine, Path::new("rules/demo.rhai"), rule_source).unwrap();
        let file = parse(Path::new("rules/demo.test.toml"), test_text).unwrap();
        file.cases
            .iter()
            .map(|case| run_case(&engine, &rule, case))
            .collect()
    }

    fn load_error(text: &str) -> String {
        parse(Path::new("rules/demo.test.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn every_known_column_but_the_beta_ones_has_a_default_that_parses() {
        let layout = Arc::new(
            Layout::from_headers(&COLUMNS.iter().map(|c| c.header).collect::<Vec<_>>()).unwrap(),
        );
        let mut row = RowData::empty(layout);
        let cells: Vec<String> = Col::ALL
            .iter()
            .map(|&c| test_default(c, 1).unwrap_or_default())
            .collect();
        row.record = Record::from(cells.iter().map(String::as_str).collect::<Vec<_>>());
        row.parse(2).unwrap();
        assert_eq!(row.days_since_activity(), Some(0));
        assert!(!row.is_deleted() && !row.is_concealed());
        assert_eq!(
            test_default(Col::GroupDisplayName, 3).as_deref(),
            Some("Test Group 3")
        );
    }

    #[test]
    fn passing_and_failing_cases_with_a_diff() {
        let results = run(
            INACTIVE,
            r#"
[[case]]
name = "exactly 90 days"
row = { days_since_activity = 90 }
expect = [{ severity = "medium", message = "90 days" }]

[[case]]
name = "89 days is wrongly expected to fire"
row = { last_activity_date = "2026-08-28" }
expect = [{ message = "89 days" }]

[[case]]
name = "override"
params = { days = 30 }
row = { last_activity_date = 2026-10-26 }
expect = [{ matches = "^No activity for \\d+ days$" }]
"#,
        );
        assert!(results[0].passed(), "{:?}", results[0]);
        assert!(!results[1].passed());
        assert_eq!(
            results[1].diff,
            [
                "- any      message containing \"89 days\"",
                "  (the rule reported nothing)"
            ]
        );
        assert!(results[2].passed(), "{:?}", results[2]);
    }

    #[test]
    fn unexpected_findings_and_counts_show_in_the_diff() {
        let results = run(
            INACTIVE,
            r#"
[[case]]
name = "nothing expected"
row = { last_activity_date = "" }
expect = []

[[case]]
name = "three rows, two inactive"
rows = [{ days_since_activity = 100, times = 2 }, { days_since_activity = 1 }]
expect = [{ message = "100 days", count = 3 }]
"#,
        );
        assert_eq!(
            results[0].diff,
            ["  expected no findings", "+ medium   \"never active\""]
        );
        assert_eq!(
            results[1].diff,
            [
                "  medium   \"No activity for 100 days\"  (row 1)",
                "  medium   \"No activity for 100 days\"  (row 2)",
                "- 3 × any      message containing \"100 days\" (found 2)"
            ]
        );
    }

    #[test]
    fn rule_errors_fail_the_case_unless_expected() {
        let source =
            "fn check(row) {\n  if row.member_count == () { throw \"member count unknown\"; }\n}";
        let results = run(
            source,
            r#"
[[case]]
name = "blank member count"
row = { member_count = "" }
expect = []

[[case]]
name = "blank member count is an error"
row = { member_count = "" }
expect_error = "member count unknown"
"#,
        );
        assert!(
            results[0].diff[0]
                .starts_with("! rule error: rules/demo.rhai:2:31: member count unknown\n"),
            "{:?}",
            results[0].diff
        );
        assert!(results[1].passed(), "{:?}", results[1]);
    }

    #[test]
    fn rows_go_through_the_real_parser() {
        let results = run(
            INACTIVE,
            "[[case]]\nname = \"bad\"\nrow = { member_count = \"N/A\" }\nexpect = []\n",
        );
        assert_eq!(
            results[0].problems,
            [
                "the test row cannot be read: line 2, column 7 \"Member Count\": expected a whole number, found \"N/A\""
            ]
        );
    }

    #[test]
    fn directory_fields_are_set_in_their_own_table_and_checked() {
        let error = load_error(
            "[[case]]\nname = \"x\"\nrow = { directory = { owner = [\"a@x\"] } }\nexpect = []\n",
        );
        assert_eq!(
            error,
            "rules/demo.test.toml:3:21: unknown directory field `owner`; did you mean `owners`?"
        );
        let error = load_error("[[case]]\nname = \"x\"\nrow = { owner_count = 1 }\nexpect = []\n");
        assert!(error.contains("set it in `directory = { … }`"), "{error}");
        let error = load_error(
            "[[case]]\nname = \"x\"\nrow = { directory = { created_date = \"soon\" } }\nexpect = []\n",
        );
        assert!(
            error.contains("`directory.created_date` must be a date as YYYY-MM-DD"),
            "{error}"
        );
    }

    #[test]
    fn a_misspelt_row_field_names_the_closest_one_with_its_position() {
        let error =
            load_error("[[case]]\nname = \"x\"\nrow = { days_since_activty = 3 }\nexpect = []\n");
        assert_eq!(
            error,
            "rules/demo.test.toml:3:9: unknown field `days_since_activty`; did you mean `days_since_activity`?"
        );
        let error = load_error("[[case]]\nname = \"x\"\nexpect = [{ mesage = \"a\" }]\n");
        assert!(
            error.contains("unknown key `mesage` in [case]; did you mean `message`?"),
            "{error}"
        );
        let error = load_error("[[case]]\nname = \"x\"\nrow = { is_deleted = true }\n");
        assert!(error.ends_with("case \"x\": say what the rule should report: `expect = []` for nothing, or a list of findings"), "{error}");
    }

    #[test]
    fn absent_and_extra_columns_shape_the_header() {
        let source = "fn check(row) {\n  `${row.group_id ?? \"no id\"} ${row[\"Sensitivity Label\"]} ${row.teams_channel_messages_count}`\n}";
        let results = run(
            source,
            r#"
[[case]]
name = "old export"
absent = ["group_id"]
row = { teams_channel_messages_count = 4, extra = { "Sensitivity Label" = "Secret" } }
expect = [{ message = "no id Secret 4" }]
"#,
        );
        assert!(results[0].passed(), "{:?}", results[0]);
    }

    #[test]
    fn an_empty_rows_list_is_an_empty_report_and_times_is_bounded() {
        let source = "fn tenant(summary) {\n  if summary.rows == 0 { \"empty report\" }\n}";
        let results = run(
            source,
            "[[case]]\nname = \"empty\"\nrows = []\nexpect = [{ message = \"empty report\" }]\n",
        );
        assert!(results[0].passed(), "{:?}", results[0]);
        let error = load_error(
            "[[case]]\nname = \"huge\"\nrows = [{ times = 1000000000000 }]\nexpect = []\n",
        );
        assert!(
            error.ends_with("case \"huge\": a case may have at most 100000 rows"),
            "{error}"
        );
    }

    #[test]
    fn tenant_rules_see_the_summary_of_the_case_rows() {
        let source = "fn tenant(summary) {\n  if summary.never_active * 10 > summary.not_deleted * 3 { `${summary.never_active} of ${summary.not_deleted}` }\n}";
        let results = run(
            source,
            r#"
[[case]]
name = "4 of 10 never active"
rows = [{ last_activity_date = "", times = 4 }, { times = 6 }]
expect = [{ message = "4 of 10" }]
"#,
        );
        assert!(results[0].passed(), "{:?}", results[0]);
    }
}
