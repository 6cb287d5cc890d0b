//! The Rhai engine rules run in, and the row API scripts see.
//!
//! The engine starts raw (`Engine::new_raw`) and gets only the standard
//! language packages: no module resolver, so `import` cannot read files; no
//! `eval`; `print` and `debug` go to tracing, a few lines per rule and
//! per scan, each cut short ([`RuleOutput`]); every call is bounded in
//! operations, call depth, expression depth and string, array and map
//! size, and a call made through [`RuleCall`] in wall time too.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use rhai::module_resolvers::DummyModuleResolver;
use rhai::packages::{Package, StandardPackage};
use rhai::{AST, Dynamic, Engine, EvalAltResult, ImmutableString, Map, ParseError, Position};

use super::config::Limits;
use super::params::Params;
use super::value::Value;
use crate::report::header::{Col, Kind};
use crate::report::row::{Cell, Row, RowData};

/// Properties of a row besides its columns: (name, type, doc, example).
pub const DERIVED_PROPERTIES: &[(&str, &str, &str, &str)] = &[
    (
        "days_since_activity",
        "int or ()",
        "Days from `last_activity_date` to `report_refresh_date`; `()` when the group was never active in the period.",
        "90",
    ),
    (
        "total_storage_bytes",
        "int or ()",
        "Mailbox plus site storage in bytes (the known part when one is blank); `()` when both are blank.",
        "6208260",
    ),
    (
        "is_concealed",
        "bool",
        "The tenant conceals names: the group id is all zeros or the name is a 32-character hash.",
        "false",
    ),
    (
        "line",
        "int",
        "The line of the report file this row starts on (the header is line 1).",
        "42",
    ),
    (
        "owners",
        "array of strings, or ()",
        "Directory: every owner's address (mail, else user principal name). `()` when the group is not in the directory or `[directory]` is off.",
        "[\"ann@contoso.com\", \"bo@contoso.com\"]",
    ),
    (
        "owner_count",
        "int or ()",
        "Directory: how many owners the group has (also those without an address).",
        "2",
    ),
    (
        "created_date",
        "string (YYYY-MM-DD) or ()",
        "Directory: the day the group was created (UTC).",
        "2026-11-01",
    ),
    (
        "days_since_created",
        "int or ()",
        "Directory: days from `created_date` to `report_refresh_date`.",
        "24",
    ),
    (
        "is_team",
        "bool or ()",
        "Directory: the group is team-enabled (Microsoft Teams).",
        "true",
    ),
    (
        "visibility",
        "string or ()",
        "Directory: `Public`, `Private` or `HiddenMembership`.",
        "Private",
    ),
    (
        "group_mail",
        "string or ()",
        "Directory: the group's own mail address.",
        "sales@contoso.com",
    ),
    (
        "sensitivity_label",
        "string or ()",
        "Directory: the name of the group's (first) sensitivity label.",
        "Confidential",
    ),
    (
        "expiration_date",
        "string (YYYY-MM-DD) or ()",
        "Directory: the day the group expires under the tenant's expiration policy.",
        "2027-05-01",
    ),
];

/// Every property name `row.<name>` accepts.
pub fn row_property_names() -> impl Iterator<Item = &'static str> {
    Prop::all().map(Prop::name)
}

/// Builds the sandboxed engine with the row API and helper functions.
pub fn build_engine(limits: &Limits) -> Engine {
    let mut engine = Engine::new_raw();
    engine.register_global_module(StandardPackage::new().as_shared_module());
    engine.set_module_resolver(DummyModuleResolver::new());
    set_syntax(&mut engine);

    engine.set_optimization_level(rhai::OptimizationLevel::Full);
    // Operators look up registered functions too, so the mixed-type
    // comparisons below are errors (see `register_mixed_comparisons`).
    engine.set_fast_operators(false);
    engine.set_max_operations(limits.max_operations);
    engine.set_max_call_levels(limits.max_call_levels);
    engine.set_max_string_size(limits.max_string_size);
    engine.set_max_array_size(limits.max_array_size);
    engine.set_max_map_size(limits.max_map_size);

    let output = Arc::new(RuleOutput::new(limits));
    let printed = Arc::clone(&output);
    engine.on_print(move |text| {
        if let Some(text) = printed.admit(text) {
            tracing::info!(target: "groupwarden::rule", rule = %printed.current_rule(), "{text}")
        }
    });
    let debugged = Arc::clone(&output);
    engine.on_debug(move |text, _, position| {
        if let Some(text) = debugged.admit(text) {
            tracing::debug!(target: "groupwarden::rule", rule = %debugged.current_rule(), line = position.line().unwrap_or(0), "{text}")
        }
    });
    register_bounds(
        &mut engine,
        EngineBounds {
            limits: *limits,
            output,
        },
    );

    register_row(&mut engine);
    register_helpers(&mut engine);
    register_mixed_comparisons(&mut engine);
    super::tenant::register(&mut engine);
    engine
}

/// Operations between two looks at the clock, so the deadline is late by
/// at most this many operations. Measured under callgrind (5000 rows,
/// bundled rules, `--no-fast-path`): the deadline and output bookkeeping
/// add about 1% to interpreted rules; the fast path never calls them.
pub const CLOCK_EVERY_OPERATIONS: u64 = 256;

thread_local! {
    /// When the call [`RuleCall`] guards on this thread started; `None`
    /// outside one (rule loading, tenant rules: bounded by operations).
    static CALL_STARTED: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
    /// The rule [`RuleCall`] guards on this thread, for its output.
    static CALL_RULE: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
}

/// One rule's call on this thread: starts its wall-time deadline and
/// names the rule for its `print` output; dropping it ends both. The
/// engine is shared between worker threads, so this state is per thread.
pub struct RuleCall(());

impl RuleCall {
    /// Starts the call of `rule`.
    pub fn start(rule: &Arc<str>) -> RuleCall {
        CALL_RULE.with_borrow_mut(|current| *current = Some(Arc::clone(rule)));
        CALL_STARTED.set(Some(Instant::now()));
        RuleCall(())
    }
}

impl Drop for RuleCall {
    fn drop(&mut self) {
        CALL_STARTED.set(None);
        CALL_RULE.with_borrow_mut(|current| *current = None);
    }
}

/// What [`build_engine`] stores in the engine's default tag.
#[derive(Debug)]
struct EngineBounds {
    limits: Limits,
    output: Arc<RuleOutput>,
}

/// Every engine's bounds by number, held weakly: an engine's own
/// [`set_deadline`] closure holds them strongly, so they go with it.
static ENGINE_BOUNDS: Mutex<Vec<(i64, std::sync::Weak<EngineBounds>)>> = Mutex::new(Vec::new());
static NEXT_ENGINE: AtomicU64 = AtomicU64::new(1);

/// Makes `bounds` findable from `engine`. The engine's default tag holds
/// their number (scripts cannot read it): Rhai clones the tag on every
/// call, so it must be a plain integer, not the bounds themselves.
fn register_bounds(engine: &mut Engine, bounds: EngineBounds) {
    let bounds = Arc::new(bounds);
    let number = NEXT_ENGINE.fetch_add(1, Ordering::Relaxed) as i64;
    let mut registry = ENGINE_BOUNDS.lock().unwrap_or_else(|p| p.into_inner());
    registry.retain(|(_, weak)| weak.strong_count() > 0);
    registry.push((number, Arc::downgrade(&bounds)));
    engine.set_default_tag(Dynamic::from_int(number));
    let max_time = bounds.limits.max_time_per_row;
    set_deadline(engine, max_time, bounds);
}

fn engine_bounds(engine: &Engine) -> Option<Arc<EngineBounds>> {
    let number = engine.default_tag().as_int().ok()?;
    let registry = ENGINE_BOUNDS.lock().unwrap_or_else(|p| p.into_inner());
    registry
        .iter()
        .find(|(n, _)| *n == number)
        .and_then(|(_, weak)| weak.upgrade())
}

/// The limits `engine` was built with ([`build_engine`]); the defaults
/// for an engine built elsewhere.
pub fn limits_of(engine: &Engine) -> Limits {
    engine_bounds(engine).map_or_else(Limits::default, |bounds| bounds.limits)
}

/// Logs, once per rule, how many `print`/`debug` lines of `engine`'s
/// rules were not shown, and starts counting afresh.
pub fn report_hidden_output(engine: &Engine) {
    if let Some(bounds) = engine_bounds(engine) {
        bounds.output.report_hidden();
    }
}

/// Stops a call [`RuleCall`] guards once it has run `max_time`, checking
/// the clock every [`CLOCK_EVERY_OPERATIONS`] operations.
fn set_deadline(engine: &mut Engine, max_time: Duration, bounds: Arc<EngineBounds>) {
    engine.on_progress(move |operations| {
        let _keep_alive = &bounds;
        if operations % CLOCK_EVERY_OPERATIONS != 0 {
            return None;
        }
        let started = CALL_STARTED.get()?;
        (started.elapsed() > max_time).then(|| {
            Dynamic::from(format!(
                "stopped after {} on one row ([rules] max_time_per_row)",
                crate::duration::ConfigDuration(max_time)
            ))
        })
    });
}

/// Rule output (`print`, `debug`) kept readable: the first lines of each
/// rule and of the scan, each cut short with control characters escaped;
/// the rest counted and reported at the end of the scan.
#[derive(Debug)]
pub struct RuleOutput {
    per_rule: u64,
    per_scan: u64,
    max_chars: usize,
    shown: AtomicU64,
    /// Per rule: lines shown and lines hidden.
    counts: Mutex<HashMap<Arc<str>, (u64, u64)>>,
}

impl RuleOutput {
    fn new(limits: &Limits) -> RuleOutput {
        RuleOutput {
            per_rule: limits.max_print_lines_per_rule,
            per_scan: limits.max_print_lines_per_scan,
            max_chars: limits.max_print_chars,
            shown: AtomicU64::new(0),
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// The rule running on this thread, or a stand-in.
    fn current_rule(&self) -> Arc<str> {
        CALL_RULE
            .with_borrow(|rule| rule.clone())
            .unwrap_or_else(|| Arc::from("(tenant or load)"))
    }

    /// The line to show, or `None` when it is only counted.
    fn admit(&self, text: &str) -> Option<String> {
        let rule = self.current_rule();
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let (shown, hidden) = counts.entry(Arc::clone(&rule)).or_default();
        if *shown < self.per_rule && self.shown.load(Ordering::Relaxed) < self.per_scan {
            *shown += 1;
            self.shown.fetch_add(1, Ordering::Relaxed);
            return Some(crate::report::text::for_message(text, self.max_chars));
        }
        *hidden += 1;
        if *hidden == 1 {
            tracing::warn!(
                "rule `{rule}`: further print/debug output is not shown (at most {} lines per rule and {} per scan); \
                 it is counted at the end of the scan",
                self.per_rule,
                self.per_scan
            );
        }
        None
    }

    /// Logs the hidden lines per rule and resets the counts.
    fn report_hidden(&self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mut hidden: Vec<(Arc<str>, u64)> = counts
            .drain()
            .filter(|(_, (_, hidden))| *hidden > 0)
            .map(|(rule, (_, hidden))| (rule, hidden))
            .collect();
        hidden.sort();
        for (rule, lines) in hidden {
            tracing::warn!("rule `{rule}` printed {lines} more lines, not shown");
        }
        self.shown.store(0, Ordering::Relaxed);
    }
}

/// Comparing a number with a string is a mistake, never data: Rhai alone
/// answers `false` (`row.report_period == "30"`, or a date, which is a
/// string, `> 90`), and the rule silently never fires. Here it is a rule
/// error naming the line and column. Comparisons with `()` (a blank cell)
/// still answer `false`, as documented.
fn register_mixed_comparisons(engine: &mut Engine) {
    fn refuse(
        op: &'static str,
        left: &'static str,
        right: &'static str,
    ) -> Box<rhai::EvalAltResult> {
        format!(
            "cannot compare {left} with {right} (`{op}`): a number is never equal to text; \
             convert one side (`parse_int(text)`, `number.to_string()`), or compare dates as strings"
        )
        .into()
    }
    macro_rules! mixed {
        ($($op:literal),*) => {$(
            engine.register_fn($op, |_: rhai::INT, _: rhai::ImmutableString| -> Result<bool, Box<rhai::EvalAltResult>> {
                Err(refuse($op, "a number", "a string"))
            });
            engine.register_fn($op, |_: rhai::ImmutableString, _: rhai::INT| -> Result<bool, Box<rhai::EvalAltResult>> {
                Err(refuse($op, "a string", "a number"))
            });
            engine.register_fn($op, |_: rhai::FLOAT, _: rhai::ImmutableString| -> Result<bool, Box<rhai::EvalAltResult>> {
                Err(refuse($op, "a number", "a string"))
            });
            engine.register_fn($op, |_: rhai::ImmutableString, _: rhai::FLOAT| -> Result<bool, Box<rhai::EvalAltResult>> {
                Err(refuse($op, "a string", "a number"))
            });
        )*};
    }
    mixed!("==", "!=", "<", "<=", ">", ">=");
}

/// What rules may write, shared by [`build_engine`] and
/// [`parse_as_written`]: no `eval`, no `import`, bounded nesting.
fn set_syntax(engine: &mut Engine) {
    engine.disable_symbol("eval");
    engine.disable_symbol("import");
    engine.set_max_expr_depths(64, 32);
}

/// Parses `source` as it is written: without the optimiser, which drops
/// code it proves unused and folds constants. For checks of what a rule
/// reads, which must see every line the writer wrote, also dead ones.
pub fn parse_as_written(source: &str) -> Result<AST, ParseError> {
    static PARSER: LazyLock<Engine> = LazyLock::new(|| {
        let mut engine = Engine::new_raw();
        set_syntax(&mut engine);
        engine.set_optimization_level(rhai::OptimizationLevel::None);
        engine
    });
    PARSER.compile(source)
}

fn register_row(engine: &mut Engine) {
    engine.register_type_with_name::<Row>("Row");
    for prop in Prop::all() {
        engine.register_get(prop.name(), move |row: &mut Row| prop.dynamic(&row.0));
    }
    engine.register_indexer_get(index_row);
    engine.register_fn("has", |row: &mut Row, name: &str| {
        row.0.layout.find(name).is_some()
    });
    engine.register_fn("to_string", |row: &mut Row| {
        format!("Row(line {})", row.0.line)
    });
    engine.register_fn("to_debug", |row: &mut Row| {
        format!("Row(line {})", row.0.line)
    });

    // Parameters are read-only; `params.days` falls back to this indexer.
    engine.register_type_with_name::<Params>("Params");
    engine.register_indexer_get(
        |params: &mut Params, name: &str| -> Result<Dynamic, Box<EvalAltResult>> {
            params.0.get(name).cloned().ok_or_else(|| {
                let hint =
                    super::diagnostics::did_you_mean(name, params.0.keys().map(|k| k.as_str()))
                        .map(|h| format!("; did you mean `{h}`?"))
                        .unwrap_or_default();
                runtime_error(format!(
                    "unknown parameter `{name}`{hint} (declare it in PARAMS)"
                ))
            })
        },
    );
    engine.register_fn("contains", |params: &mut Params, name: &str| {
        params.0.contains_key(name)
    });
}

/// A property of a row: one of its columns or a derived value. Both the
/// interpreter's getters and the fast path ([`super::native`]) read rows
/// through this, so they cannot disagree.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Prop {
    /// A report column, as parsed (`()` when blank).
    Column(Col),
    /// `row.days_since_activity`: days from the last activity date to the
    /// report's refresh date; `()` when either date is blank.
    DaysSinceActivity,
    /// `row.total_storage_bytes`: mailbox plus site storage in bytes (the
    /// known part when one is blank); `()` when both are blank.
    TotalStorageBytes,
    /// `row.is_concealed`: whether the tenant's privacy setting hides the
    /// report's names and ids.
    IsConcealed,
    /// `row.line`: the row's line number in the report.
    Line,
    /// A fact the directory (`[directory]`) knows about the row's group;
    /// `()` when the join is off or the group is not in the directory.
    Directory(Fact),
}

/// A directory fact a row offers ([`crate::report::directory::GroupFacts`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fact {
    /// `row.owners`: every owner's address, an array.
    Owners,
    /// `row.owner_count`.
    OwnerCount,
    /// `row.created_date`.
    CreatedDate,
    /// `row.days_since_created`: from creation to the refresh date.
    DaysSinceCreated,
    /// `row.is_team`.
    IsTeam,
    /// `row.visibility`.
    Visibility,
    /// `row.group_mail`.
    GroupMail,
    /// `row.sensitivity_label`.
    SensitivityLabel,
    /// `row.expiration_date`.
    ExpirationDate,
}

impl Fact {
    /// Every fact, in the order the documentation lists them.
    pub const ALL: [Fact; 9] = [
        Fact::Owners,
        Fact::OwnerCount,
        Fact::CreatedDate,
        Fact::DaysSinceCreated,
        Fact::IsTeam,
        Fact::Visibility,
        Fact::GroupMail,
        Fact::SensitivityLabel,
        Fact::ExpirationDate,
    ];

    /// The name scripts use.
    pub fn name(self) -> &'static str {
        match self {
            Fact::Owners => "owners",
            Fact::OwnerCount => "owner_count",
            Fact::CreatedDate => "created_date",
            Fact::DaysSinceCreated => "days_since_created",
            Fact::IsTeam => "is_team",
            Fact::Visibility => "visibility",
            Fact::GroupMail => "group_mail",
            Fact::SensitivityLabel => "sensitivity_label",
            Fact::ExpirationDate => "expiration_date",
        }
    }

    /// The value as the fast path and evidence read it: the owners are
    /// one text, `, `-separated (scripts get an array, see [`Prop::dynamic`]).
    fn value(self, row: &RowData) -> Value<'_> {
        let Some(facts) = row.facts.as_deref() else {
            return Value::Unit;
        };
        fn text(text: &Option<String>) -> Value<'_> {
            text.as_deref()
                .map_or(Value::Unit, |t| Value::Str(std::borrow::Cow::Borrowed(t)))
        }
        match self {
            Fact::Owners => Value::Str(std::borrow::Cow::Owned(facts.owners.join(", "))),
            Fact::OwnerCount => Value::Int(facts.owner_count),
            Fact::CreatedDate => text(&facts.created_date),
            Fact::DaysSinceCreated => optional_int(row.days_since_created()),
            Fact::IsTeam => Value::Bool(facts.is_team),
            Fact::Visibility => text(&facts.visibility),
            Fact::GroupMail => text(&facts.group_mail),
            Fact::SensitivityLabel => text(&facts.sensitivity_label),
            Fact::ExpirationDate => text(&facts.expiration_date),
        }
    }
}

impl Prop {
    /// Every property, columns first.
    pub fn all() -> impl Iterator<Item = Prop> {
        Col::ALL
            .iter()
            .map(|&c| Prop::Column(c))
            .chain([
                Prop::DaysSinceActivity,
                Prop::TotalStorageBytes,
                Prop::IsConcealed,
                Prop::Line,
            ])
            .chain(Fact::ALL.map(Prop::Directory))
    }

    /// The property `row.<name>` reads.
    pub fn named(name: &str) -> Option<Prop> {
        Prop::all().find(|p| p.name() == name)
    }

    /// The name scripts use, as in `row.<name>` (a column's field name,
    /// such as `group_display_name`).
    pub fn name(self) -> &'static str {
        match self {
            Prop::Column(col) => col.spec().field,
            Prop::DaysSinceActivity => "days_since_activity",
            Prop::TotalStorageBytes => "total_storage_bytes",
            Prop::IsConcealed => "is_concealed",
            Prop::Line => "line",
            Prop::Directory(fact) => fact.name(),
        }
    }

    /// The value as the interpreter holds it: as [`Prop::value`], but
    /// `row.owners` is an array of strings.
    pub fn dynamic(self, row: &RowData) -> Dynamic {
        match (self, row.facts.as_deref()) {
            (Prop::Directory(Fact::Owners), Some(facts)) => Dynamic::from_array(
                facts
                    .owners
                    .iter()
                    .map(|owner| Dynamic::from(ImmutableString::from(owner.as_str())))
                    .collect(),
            ),
            _ => self.value(row).into_dynamic(),
        }
    }

    /// Whether the value is `()`, without reading any text.
    #[inline]
    pub fn is_unit(self, row: &RowData) -> bool {
        match self {
            Prop::Column(col) => row.cells[col as usize] == Cell::Blank,
            other => other.value(row) == Value::Unit,
        }
    }

    /// The value a script sees.
    #[inline]
    pub fn value(self, row: &RowData) -> Value<'_> {
        match self {
            Prop::Column(col) => column_value(row, col),
            Prop::DaysSinceActivity => optional_int(row.days_since_activity()),
            Prop::TotalStorageBytes => optional_int(row.total_storage_bytes()),
            Prop::IsConcealed => Value::Bool(row.is_concealed()),
            Prop::Line => Value::Int(row.line as i64),
            Prop::Directory(fact) => fact.value(row),
        }
    }
}

/// The value of a known column as a script sees it.
#[inline]
pub fn column_value(row: &RowData, col: Col) -> Value<'_> {
    match row.cells[col as usize] {
        Cell::Blank => Value::Unit,
        Cell::Int(value) => Value::Int(value),
        Cell::Bool(value) => Value::Bool(value),
        // A parsed date is valid, so its text is the canonical form.
        Cell::Day(_) | Cell::Text => row.text(col).map_or(Value::Unit, Value::Str),
    }
}

fn optional_int(value: Option<i64>) -> Value<'static> {
    value.map_or(Value::Unit, Value::Int)
}

/// `row["Header Name"]` or `row["field_name"]`; `None` when the report
/// has no such column.
pub fn index_value<'a>(row: &'a RowData, name: &str) -> Option<Value<'a>> {
    let position = row.layout.find(name)?;
    if let Some(&col) = Col::ALL
        .iter()
        .find(|c| row.layout.position(**c) == Some(position))
    {
        return Some(column_value(row, col));
    }
    Some(row.text_at(position).map_or(Value::Unit, Value::Str))
}

/// `row["Header Name"]` or `row["field_name"]`: any column, including
/// ones this version does not know (their text, or `()` when blank).
fn index_row(row: &mut Row, name: &str) -> Result<Dynamic, Box<EvalAltResult>> {
    let data = &row.0;
    if let Some(value) = index_value(data, name) {
        return Ok(value.into_dynamic());
    }
    let candidates: Vec<String> = data
        .layout
        .headers
        .iter()
        .cloned()
        .chain(row_property_names().map(String::from))
        .collect();
    let hint = super::diagnostics::did_you_mean(name, candidates.iter().map(String::as_str))
        .map(|h| format!("; did you mean `{h}`?"))
        .unwrap_or_default();
    Err(runtime_error(format!(
        "unknown field `{name}`: the report has no such column{hint} (row.has(\"{name}\") tests for optional columns)"
    )))
}

fn register_helpers(engine: &mut Engine) {
    engine.register_fn("format_bytes", |bytes: i64| format_bytes(bytes));
    engine.register_fn("format_bytes", |_: ()| "unknown".to_string());
    engine.register_fn("finding", |message: ImmutableString| {
        let mut map = Map::new();
        map.insert("message".into(), message.into());
        map
    });
    engine.register_fn("finding", |message: ImmutableString, evidence: Map| {
        let mut map = Map::new();
        map.insert("message".into(), message.into());
        map.insert("evidence".into(), evidence.into());
        map
    });
    engine.register_fn("is_unknown", |value: Dynamic| value.is_unit());
}

/// `1536` → `1.5 KB`: decimal units, as the Microsoft 365 admin center shows.
pub fn format_bytes(bytes: i64) -> String {
    const UNITS: [&str; 6] = ["bytes", "KB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value.abs() >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Kind of a column, as documented for rule writers.
pub fn rhai_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Text => "string or ()",
        Kind::Bool => "bool or ()",
        Kind::Int => "int or ()",
        Kind::Date => "string (YYYY-MM-DD) or ()",
    }
}

/// A position-free runtime error, for helpers.
pub fn runtime_error(message: String) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(message.into(), Position::NONE).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_derived_properties_are_the_ones_rows_have() {
        let derived: Vec<&str> = Prop::all()
            .filter(|p| !matches!(p, Prop::Column(_)))
            .map(Prop::name)
            .collect();
        let documented: Vec<&str> = DERIVED_PROPERTIES.iter().map(|d| d.0).collect();
        assert_eq!(derived, documented);
    }

    #[test]
    fn formats_bytes_in_decimal_units() {
        assert_eq!(format_bytes(999), "999 bytes");
        assert_eq!(format_bytes(1_500), "1.5 KB");
        assert_eq!(format_bytes(5_000_000_000), "5.0 GB");
    }
}
