//! Running the rules over rows.
//!
//! One [`Evaluator`] per worker thread: it owns a reused scope and a
//! reused row buffer, so evaluating a row allocates only for what the
//! rules return.

use std::borrow::Cow;
use std::sync::Arc;

use rhai::{CallFnOptions, Dynamic, Engine, EvalAltResult, Map, Scope};

use crate::report::reader::Record;

use super::config::Limits;
use super::diagnostics::Diagnostic;
use super::finding::{
    Evidence, EvidenceMap, EvidenceRef, Finding, FindingFields, Severity, finding_key,
};
use super::native::NativeCheck;
use super::render::{PreparedRule, Render, RuleShape};
use super::rule::{Rule, kind_name};
use super::sandbox::{Prop, RuleCall};
use super::value::Value;
use crate::report::header::Col;
use crate::report::row::{Row, RowData, RowError};
use crate::report::stats::ReportStats;

/// A rule that failed on one row. The scan goes on.
#[derive(Clone, Debug)]
pub struct RuleFailure {
    /// The id of the rule that failed.
    pub rule: Arc<str>,
    /// The report line of the row; `None` for a tenant-level failure.
    pub line: Option<u64>,
    /// The group's display name, when the row has one; `None` for a
    /// tenant-level failure.
    pub group: Option<String>,
    /// The script error, located in the rule file.
    pub diagnostic: Diagnostic,
}

impl std::fmt::Display for RuleFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rule `{}` failed", self.rule)?;
        if let Some(line) = self.line {
            write!(f, " on report line {line}")?;
        }
        if let Some(group) = &self.group {
            write!(f, " (group \"{group}\")")?;
        }
        write!(f, ": {}", self.diagnostic.short())
    }
}

/// How the message of a row a disabled rule skipped starts.
const DISABLED: &str = "rule disabled for the rest of the scan";

impl RuleFailure {
    /// Whether the rule did not run on the row because it was disabled
    /// after too many rows over its limits (see
    /// [`Limits::disable_after_limit_errors`]).
    pub fn is_disabled_rule(&self) -> bool {
        self.diagnostic.message.starts_with(DISABLED)
    }
}

/// What the rules made of one row.
#[derive(Clone, Debug, Default)]
pub struct RowOutcome {
    /// The row's line number in the report.
    pub line: u64,
    /// The group's key part (`id` or `name:…`), for the state store.
    pub group_key: String,
    /// What the rules reported on this row, in rule order.
    pub findings: Vec<Finding>,
    /// Rules that errored on this row: they neither fired nor cleared.
    pub failures: Vec<RuleFailure>,
    /// [`group_hash`] of `group_key`, made by the worker (for a scan that
    /// tracks every group); `None`: not made.
    pub group_hash: Option<u64>,
    /// Each finding's [`key_hash`](super::finding::key_hash), in order,
    /// made by the worker for a scan that tracks every group (empty: not
    /// made).
    pub key_hashes: Vec<i64>,
    /// Each finding's content hash as far as the finding goes
    /// ([`content_hasher`](super::finding::content_hasher)), in order,
    /// made with `key_hashes` (empty: not made).
    pub content_hashers: Vec<super::finding::ContentHasher>,
    /// Where the findings are, rendered without status, in the chunk's
    /// [`Evaluator::take_prerendered`] bytes (see
    /// [`Evaluator::set_prerender`]).
    pub prerendered: Option<std::ops::Range<usize>>,
}

/// A group key, hashed, for the state store's set of the groups a report
/// has (in memory, for one scan). Made on the workers: on the thread every
/// row waits on, a million of them cost about 30 ms.
pub fn group_hash(group_key: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::quality::FixedState::with_seed(0x6772_6f75_7073).hash_one(group_key)
}

/// What a chunk of records became, in report order.
#[derive(Debug)]
pub enum ChunkItem {
    /// A row that parsed, with what the rules made of it.
    Row(RowOutcome),
    /// A record that could not be read as a row; no rule saw it.
    Error(RowError),
}

/// Findings a worker rendered to bytes itself (see [`Evaluator::set_render`]).
#[derive(Debug, Default)]
pub struct Rendered {
    /// The rendered findings, one after another, in the renderer's format.
    pub bytes: Vec<u8>,
    /// Findings per rule.
    pub per_rule: Vec<(Arc<str>, u64)>,
    /// The highest severity among the findings; `None` when there were none.
    pub worst: Option<Severity>,
}

impl Rendered {
    /// Counts one finding of rule `index` (of `rules`).
    fn count(&mut self, index: usize, rules: &[&Rule], severity: Severity) {
        if self.per_rule.is_empty() {
            self.per_rule = rules.iter().map(|r| (r.id.clone(), 0)).collect();
        }
        self.per_rule[index].1 += 1;
        self.worst = self.worst.max(Some(severity));
    }
}

/// A finding rendered straight from its row (a rule's message, nothing
/// more): the same fields [`finding`] would copy into a [`Finding`],
/// borrowed.
struct RowFinding<'a> {
    names: &'a RuleNames,
    severity: Severity,
    row: &'a RowData,
    group_key: &'a str,
    message: &'a str,
}

impl FindingFields for RowFinding<'_> {
    fn rule(&self) -> &str {
        &self.names.id
    }
    fn severity(&self) -> Severity {
        self.severity
    }
    fn key_parts(&self) -> [&str; 3] {
        [&self.names.id, ":", self.group_key]
    }
    fn group_id(&self) -> Option<Cow<'_, str>> {
        // The key's group part is the id itself, borrowed from the record,
        // unless the id is missing or concealed (then it is made anew):
        // the id is not looked up twice.
        let record = self.row.record.raw_parts().0.as_ptr_range();
        if record.contains(&self.group_key.as_ptr()) {
            return Some(Cow::Borrowed(self.group_key));
        }
        self.row.real_group_id()
    }
    fn group_name(&self) -> Option<Cow<'_, str>> {
        self.row.text(Col::GroupDisplayName)
    }
    fn owner(&self) -> Option<Cow<'_, str>> {
        self.row.text(Col::OwnerPrincipalName)
    }
    fn message(&self) -> &str {
        self.message
    }
    fn line(&self) -> Option<u64> {
        Some(self.row.line)
    }
    fn evidence(&self, visit: &mut dyn FnMut(&str, EvidenceRef<'_>)) {
        for (name, prop) in &self.names.evidence {
            visit(name, prop_evidence(&prop.value(self.row)));
        }
    }
    fn prepared(&self) -> Option<&PreparedRule> {
        // Built for the rule's own severity, which a message finding has.
        self.names.prepared.as_ref()
    }
}

/// Evaluates the enabled rules against rows.
///
/// Each rule's `check` is called once per row from Rust. (Looping over a
/// whole chunk inside one script call was measured: it costs about three
/// times more instructions per row, because a script-to-script call and
/// the loop clone their arguments where a call from Rust moves them.)
pub struct Evaluator<'a> {
    engine: &'a Engine,
    rules: Vec<&'a Rule>,
    /// Each rule's `check` compiled for the fast path, where it could be:
    /// the rule's own, shared with the other workers (it is never written).
    natives: Vec<Option<&'a NativeCheck>>,
    /// Each rule's `[rules] verify_fast_path`, as every how many report
    /// lines; 0: never.
    verify_every: Vec<u64>,
    /// Each rule's names, this evaluator's own copies: findings take
    /// clones, and a reference count shared between worker threads would
    /// bounce between their caches.
    names: Vec<RuleNames>,
    /// A findings buffer kept between rows when findings are rendered.
    spare: Vec<Finding>,
    /// Use the compiled `check`s (the default); `false` runs every row in
    /// the interpreter.
    pub fast_path: bool,
    /// Renders each finding of [`Evaluator::evaluate_chunk`] into
    /// [`Rendered`], which then drops it instead of handing it over (see
    /// [`Evaluator::set_render`]).
    render: Option<&'a dyn Render>,
    rendered: Rendered,
    /// Renders each finding handed over, for a sink that adds its status
    /// ([`Evaluator::set_prerender`]).
    prerender: Option<&'a dyn Render>,
    prerendered: Vec<u8>,
    scope: Scope<'static>,
    /// The row buffer; `None` only inside [`Evaluator::evaluate_chunk`],
    /// which holds it meanwhile.
    row: Option<Arc<RowData>>,
    /// Report every row (for the state store), not only rows with
    /// findings or failures.
    pub track_groups: bool,
    /// Gather every figure of [`ReportStats`] in `evaluate_chunk` (for
    /// tenant rules and the HTML page); `false` keeps the basics only.
    pub full_stats: bool,
    /// The limits the engine was built with.
    limits: Limits,
    /// Per rule: rows in a row over its limits (see
    /// [`Limits::disable_after_limit_errors`]), counted per worker, whose
    /// rows are a contiguous run of the report.
    limit_streaks: Vec<u64>,
}

impl<'a> Evaluator<'a> {
    /// An evaluator for `rules` (those without a `check`, tenant-only
    /// rules, are left out); `empty_row` is the first row buffer, laid out
    /// for the report's columns.
    pub fn new(
        engine: &'a Engine,
        rules: impl IntoIterator<Item = &'a Rule>,
        empty_row: RowData,
    ) -> Evaluator<'a> {
        let rules: Vec<&Rule> = rules
            .into_iter()
            .filter(|r| r.check_arity.is_some())
            .collect();
        let natives = rules
            .iter()
            .map(|rule| match &rule.native {
                Ok(native) => Some(&**native),
                Err(reason) => {
                    tracing::debug!(rule = %rule.id, "runs in the interpreter: it uses {reason}");
                    None
                }
            })
            .collect();
        let names = rules.iter().map(|rule| RuleNames::new(rule)).collect();
        let verify_every = rules.iter().map(|r| r.verify_fast_path_every).collect();
        let limit_streaks = vec![0; rules.len()];
        Evaluator {
            engine,
            rules,
            natives,
            verify_every,
            names,
            spare: Vec::new(),
            fast_path: true,
            render: None,
            rendered: Rendered::default(),
            prerender: None,
            prerendered: Vec::new(),
            scope: Scope::new(),
            row: Some(Arc::new(empty_row)),
            track_groups: true,
            full_stats: true,
            limits: super::sandbox::limits_of(engine),
            limit_streaks,
        }
    }

    /// Renders the findings of [`Evaluator::evaluate_chunk`] with `render`
    /// into [`Rendered`] (see [`Evaluator::take_rendered`]) instead of
    /// handing them over; `None` hands them over. Each rule's shared bytes
    /// are prepared here, once.
    pub fn set_render(&mut self, render: Option<&'a dyn Render>) {
        self.render = render;
        for (names, rule) in self.names.iter_mut().zip(&self.rules) {
            names.prepared = render.map(|render| names.prepare(render, rule));
        }
    }

    /// Also renders each finding [`Evaluator::evaluate_chunk`] hands over
    /// (in [`RowOutcome::findings`]) with `render`, into bytes taken with
    /// [`Evaluator::take_prerendered`]: for a stateful scan, whose sink
    /// only adds each finding's status to its line, so that the line is
    /// made on the workers, not on the thread every finding waits on.
    pub fn set_prerender(&mut self, render: Option<&'a dyn Render>) {
        self.prerender = render;
    }

    /// Takes what [`Evaluator::set_prerender`] rendered since the last call.
    pub fn take_prerendered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.prerendered)
    }

    /// The row buffer to fill before [`Evaluator::evaluate`]. Scripts may
    /// still hold the previous row (a finding's evidence can); then a new
    /// buffer is made.
    pub fn row_mut(&mut self) -> &mut RowData {
        unique(
            self.row
                .as_mut()
                .expect("the row buffer is back after each chunk"),
        )
    }

    /// Runs every rule on the row in the buffer, one call per rule.
    pub fn evaluate(&mut self, outcome: &mut RowOutcome) {
        let data = Arc::clone(
            self.row
                .as_ref()
                .expect("the row buffer is back after each chunk"),
        );
        outcome.line = data.line;
        outcome.group_key = data.group_key().into_owned();
        outcome.findings.clear();
        outcome.failures.clear();
        let group_key = outcome.group_key.clone();
        for index in 0..self.rules.len() {
            let checked = self.check_one(index, &data);
            self.absorb(index, &data, &group_key, checked, outcome);
        }
    }

    /// Parses and evaluates a chunk of raw records; each record's buffer
    /// is swapped into a row buffer (the chunk keeps an old one in
    /// exchange, to be refilled).
    pub fn evaluate_chunk(
        &mut self,
        records: &mut [(u64, Record)],
        stats: &mut ReportStats,
        out: &mut Vec<ChunkItem>,
    ) {
        // Held here for the chunk, so that rules borrow the row while
        // `self` is borrowed too, without a reference count (an atomic both
        // cores would touch) taken and dropped for every row.
        let mut slot = self
            .row
            .take()
            .expect("the row buffer is back after each chunk");
        for (line, record) in records.iter_mut() {
            let row = unique(&mut slot);
            // Swap, not copy: the chunk keeps the old buffer for refilling.
            std::mem::swap(&mut row.record, record);
            row.record.settle();
            if let Err(error) = row.parse(*line) {
                out.push(ChunkItem::Error(error));
                continue;
            }
            if self.full_stats {
                stats.add_row(row);
            } else {
                stats.add_row_basics(row);
            }
            let row = &slot;
            // Made only for a row with something to report.
            let mut group_key: Option<Cow<'_, str>> = None;
            let mut outcome = RowOutcome {
                line: row.line,
                findings: std::mem::take(&mut self.spare),
                ..RowOutcome::default()
            };
            for index in 0..self.rules.len() {
                let checked = self.check_one(index, row);
                if checked.is_nothing() {
                    continue;
                }
                let key = group_key.get_or_insert_with(|| row.group_key());
                match (self.render, checked) {
                    // A message for a rendered scan: written straight from
                    // the row, no `Finding` made.
                    (Some(render), Checked::Message(message)) => {
                        let finding = RowFinding {
                            names: &self.names[index],
                            severity: self.rules[index].severity,
                            row,
                            group_key: key,
                            message: &message,
                        };
                        render.render(&finding, &mut self.rendered.bytes);
                        self.rendered.count(index, &self.rules, finding.severity);
                    }
                    (render, checked) => {
                        self.absorb(index, row, key, checked, &mut outcome);
                        if let Some(render) = render {
                            self.render_findings(render, index, &mut outcome.findings);
                        }
                    }
                }
            }
            if let Some(render) = self.prerender
                && !outcome.findings.is_empty()
            {
                let start = self.prerendered.len();
                for finding in &outcome.findings {
                    render.render(finding, &mut self.prerendered);
                }
                outcome.prerendered = Some(start..self.prerendered.len());
            }
            if self.track_groups || !outcome.findings.is_empty() || !outcome.failures.is_empty() {
                outcome.group_key = group_key.unwrap_or_else(|| row.group_key()).into_owned();
                if self.track_groups {
                    outcome.group_hash = Some(group_hash(&outcome.group_key));
                    outcome.key_hashes = outcome
                        .findings
                        .iter()
                        .map(|finding| super::finding::key_hash(&finding.key))
                        .collect();
                    outcome.content_hashers = outcome
                        .findings
                        .iter()
                        .map(|finding| super::finding::content_hasher(finding, &outcome.group_key))
                        .collect();
                }
                out.push(ChunkItem::Row(outcome));
            } else {
                self.spare = outcome.findings;
            }
        }
        self.row = Some(slot);
    }

    /// Renders the next findings into `buffer` (emptied first), so buffers
    /// can go round instead of being made anew; with
    /// [`Evaluator::set_prerender`], the findings handed over.
    pub fn render_into(&mut self, mut buffer: Vec<u8>) {
        buffer.clear();
        if self.prerender.is_some() {
            self.prerendered = buffer;
        } else {
            self.rendered.bytes = buffer;
        }
    }

    /// Takes what [`Evaluator::evaluate_chunk`] rendered since the last call.
    pub fn take_rendered(&mut self) -> Rendered {
        std::mem::take(&mut self.rendered)
    }

    /// Renders and drops the findings rule `index` just added.
    fn render_findings(&mut self, render: &dyn Render, index: usize, findings: &mut Vec<Finding>) {
        for finding in findings.drain(..) {
            render.render(&finding, &mut self.rendered.bytes);
            self.rendered.count(index, &self.rules, finding.severity);
        }
    }

    /// Runs rule `index` on `row`: compiled when it can, else (or when the
    /// compiled rule leaves the row to it) in the interpreter. A rule over
    /// its limits on too many rows in a row is not run again: each later
    /// row is a rule error, so its findings are neither made nor resolved.
    fn check_one<'r>(&mut self, index: usize, row: &'r Arc<RowData>) -> Checked<'r>
    where
        'a: 'r,
    {
        if self.is_disabled(index) {
            return Checked::Script(Err(self.disabled_diagnostic(index)));
        }
        let mut value = Value::Unit;
        if self.fast_path
            && let Some(native) = self.natives[index]
            && native.check_into(row, &mut value).is_ok()
        {
            let every = self.verify_every[index];
            if every != 0
                && row.line.is_multiple_of(every)
                && let Err(disagreement) = self.verify(index, row, &value)
            {
                return Checked::Script(Err(disagreement));
            }
            self.limit_streaks[index] = 0;
            return match value {
                Value::Unit | Value::Bool(false) => Checked::Nothing,
                // Borrowed where it can be: a finding rendered on the
                // worker never needs its own copy of the message.
                Value::Bool(true) => Checked::Message(Cow::Borrowed(&self.rules[index].title)),
                Value::Str(message) => Checked::Message(message),
                other => Checked::Script(Ok(other.into_dynamic())),
            };
        }
        let rule = self.rules[index];
        let result = run_script(self.engine, &mut self.scope, rule, row, &self.limits)
            .and_then(|value| self.within_findings_cap(rule, value));
        match &result {
            Err(Failed {
                over_limit: true, ..
            }) => self.limit_streaks[index] += 1,
            _ => self.limit_streaks[index] = 0,
        }
        Checked::Script(result.map_err(|failed| failed.diagnostic))
    }

    fn is_disabled(&self, index: usize) -> bool {
        let after = self.limits.disable_after_limit_errors;
        after > 0 && self.limit_streaks[index] >= after
    }

    fn disabled_diagnostic(&self, index: usize) -> Diagnostic {
        let rule = self.rules[index];
        Diagnostic::at(
            &rule.path,
            &rule.source,
            0,
            0,
            format!(
                "{DISABLED} after {} rows in a row over its limits ([rules] disable_after_limit_errors); \
                 this row was not evaluated",
                self.limits.disable_after_limit_errors
            ),
        )
    }

    /// `value` unless it holds more findings than one row may have: then
    /// the row is a rule error, not a partial list (which would resolve
    /// the findings left out).
    fn within_findings_cap(&self, rule: &Rule, value: Dynamic) -> Result<Dynamic, Failed> {
        let max = self.limits.max_findings_per_row;
        let count = value.as_array_ref().map_or(0, |items| items.len());
        match count {
            count if count > max => Err(Failed {
                diagnostic: at_check(
                    rule,
                    format!(
                        "`check` returned {} findings for one row; at most {max} are allowed \
                         ([rules] max_findings_per_row), so none of them is kept",
                        count
                    ),
                ),
                over_limit: true,
            }),
            _ => Ok(value),
        }
    }

    /// `[rules] verify_fast_path`: runs rule `index` on `row` in the
    /// interpreter too; a different answer is a rule error, so a fast-path
    /// divergence in the field is reported rather than silent.
    fn verify(
        &mut self,
        index: usize,
        row: &Arc<RowData>,
        fast: &Value<'_>,
    ) -> Result<(), Diagnostic> {
        let rule = self.rules[index];
        let describe = |value: &Dynamic| format!("{}: {value:?}", value.type_name());
        let fast = describe(&fast.clone().into_dynamic());
        let slow = match interpret(self.engine, &mut self.scope, rule, row) {
            Ok(value) => describe(&value),
            Err(error) => format!("the error {}", error.short()),
        };
        if fast == slow {
            return Ok(());
        }
        let message = format!(
            "fast path and interpreter disagree on rule {} at report line {}: the fast path gave {fast}, the interpreter {slow} (please report this; `--no-fast-path` gives the interpreter's answers)",
            rule.id, row.line
        );
        Err(Diagnostic::at(&rule.path, &rule.source, 0, 0, message))
    }

    /// Adds what rule `index` made of `row` to the row's outcome.
    fn absorb(
        &self,
        index: usize,
        row: &RowData,
        group_key: &str,
        checked: Checked<'_>,
        outcome: &mut RowOutcome,
    ) {
        let rule = self.rules[index];
        let names = &self.names[index];
        let result = match checked {
            Checked::Nothing => return,
            Checked::Message(message) => {
                let reported = Reported {
                    message: message.into_owned(),
                    severity: rule.severity,
                    evidence: EvidenceMap::default(),
                    id_suffix: None,
                };
                outcome
                    .findings
                    .push(finding(names, row, group_key, reported));
                return;
            }
            Checked::Script(result) => result,
        };
        let converted = result.and_then(|value| {
            let start = outcome.findings.len();
            collect_findings(rule, names, row, group_key, value, &mut outcome.findings)
                .inspect_err(|_| outcome.findings.truncate(start))
                .map_err(|message| Diagnostic::at(&rule.path, &rule.source, 0, 0, message))
        });
        if let Err(diagnostic) = converted {
            outcome.failures.push(RuleFailure {
                rule: rule.id.clone(),
                line: Some(row.line),
                group: row.text(Col::GroupDisplayName).map(|n| n.into_owned()),
                diagnostic,
            });
        }
    }
}

/// What one rule made of one row.
enum Checked<'r> {
    /// `()` or `false` from the fast path.
    Nothing,
    /// A message (or `true`, the title) from the fast path.
    Message(Cow<'r, str>),
    /// Anything else, as the interpreter holds it.
    Script(CheckResult),
}

impl Checked<'_> {
    fn is_nothing(&self) -> bool {
        match self {
            Checked::Nothing => true,
            Checked::Message(_) => false,
            Checked::Script(Ok(value)) => value.is_unit() || value.as_bool() == Ok(false),
            Checked::Script(Err(_)) => false,
        }
    }
}

/// A rule's id and evidence fields as findings carry them.
struct RuleNames {
    id: Arc<str>,
    evidence: Vec<(Arc<str>, Prop)>,
    /// What every [`RowFinding`] of the rule shares, in the format of the
    /// evaluator's [`Render`], if it has one.
    prepared: Option<PreparedRule>,
}

impl RuleNames {
    fn new(rule: &Rule) -> RuleNames {
        let evidence: Vec<(Arc<str>, Prop)> = rule
            .evidence_fields
            .iter()
            .filter_map(|field| Some((Arc::from(*field), Prop::named(field)?)))
            .collect();
        RuleNames {
            id: Arc::from(&*rule.id),
            evidence,
            prepared: None,
        }
    }

    /// The bytes `render` writes the same for every [`RowFinding`] of
    /// `rule`.
    fn prepare(&self, render: &dyn Render, rule: &Rule) -> PreparedRule {
        let evidence: Vec<&str> = self.evidence.iter().map(|(name, _)| &**name).collect();
        render.prepare(&RuleShape {
            rule: &rule.id,
            severity: rule.severity,
            key_start: [&rule.id, ":"],
            evidence: &evidence,
        })
    }
}

pub(crate) type CheckResult = Result<Dynamic, Diagnostic>;

/// The row behind `slot`, made unique (a script may have kept the old one).
///
/// Tested with two loads, not `Arc::get_mut`: its compare-and-swap on the
/// weak count is a locked instruction, which waits for every store still
/// pending from the row before (the rendered findings) to drain, once per
/// row: 2.5% of a stateless scan's time.
#[inline]
fn unique(slot: &mut Arc<RowData>) -> &mut RowData {
    if Arc::strong_count(slot) != 1 || Arc::weak_count(slot) != 0 {
        *slot = Arc::new((**slot).clone());
    }
    // Pairs with the release decrement of the last other handle's drop,
    // on whatever thread it was, as `Arc::get_mut` does.
    std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
    // SAFETY: no other `Arc` (strong count 1, and `slot` is borrowed
    // mutably) and no `Weak` (none was ever made of a row, and the weak
    // count says so) points to this allocation, so no other thread can
    // reach it, make a handle to it, or hold a reference into it; the
    // fence orders every write made through handles since dropped before
    // this one. That is what `Arc::get_mut` establishes, without the
    // lock on the weak count it needs when a `Weak` may be upgraded
    // concurrently, which cannot happen here.
    unsafe { &mut *Arc::as_ptr(slot).cast_mut() }
}

/// Runs `rule`'s `check` on `row` in the interpreter, within the default
/// limits' wall time.
// The fast path's verification (`[rules] verify_fast_path`) and its tests.
pub(crate) fn interpret(
    engine: &Engine,
    scope: &mut Scope<'static>,
    rule: &Rule,
    row: &Arc<RowData>,
) -> CheckResult {
    run_script(engine, scope, rule, row, &super::sandbox::limits_of(engine))
        .map_err(|failed| failed.diagnostic)
}

/// A rule error, and whether a sandbox limit caused it.
struct Failed {
    diagnostic: Diagnostic,
    over_limit: bool,
}

/// Runs `rule`'s `check` on `row` in the interpreter, with its wall-time
/// deadline running.
fn run_script(
    engine: &Engine,
    scope: &mut Scope<'static>,
    rule: &Rule,
    row: &Arc<RowData>,
    limits: &Limits,
) -> Result<Dynamic, Failed> {
    let row_value = Dynamic::from(Row(Arc::clone(row)));
    let call = RuleCall::start(&rule.id);
    let result = match rule.check_arity {
        Some(1) => engine.call_fn_with_options::<Dynamic>(
            call_options(),
            scope,
            &rule.ast,
            "check",
            (row_value,),
        ),
        _ => engine.call_fn_with_options::<Dynamic>(
            call_options(),
            scope,
            &rule.ast,
            "check",
            (row_value, rule.params.script_value()),
        ),
    };
    drop(call);
    result.map_err(|error| {
        let mut diagnostic = Diagnostic::from_eval(&rule.path, &rule.source, &error);
        let limit = limit_message(innermost(&error), limits);
        if let Some(message) = &limit {
            diagnostic.message = message.clone();
            if diagnostic.line == 0 {
                locate_in_check(&mut diagnostic, rule);
            }
        }
        Failed {
            diagnostic,
            over_limit: limit.is_some(),
        }
    })
}

/// Points a limit error at `fn check`. Rhai moves a limit error (a system
/// exception) to the call site of each function it leaves, and `check` is
/// called from Rust: so it arrives with no position at all.
fn locate_in_check(diagnostic: &mut Diagnostic, rule: &Rule) {
    let message = format!(
        "{} (somewhere in `check`: Rhai does not say where it stopped)",
        diagnostic.message
    );
    let notes = std::mem::take(&mut diagnostic.notes);
    *diagnostic = at_check(rule, message);
    diagnostic.notes = notes;
}

/// An error at the rule's `fn check` line (line 0 if it cannot be found).
fn at_check(rule: &Rule, message: String) -> Diagnostic {
    let (line, column) = rule
        .source
        .lines()
        .enumerate()
        .find_map(|(index, text)| {
            let column = text.find("fn check")?;
            text[column + "fn check".len()..]
                .trim_start()
                .starts_with('(')
                .then_some((index + 1, text[..column].chars().count() + 1))
        })
        .unwrap_or((0, 0));
    Diagnostic::at(&rule.path, &rule.source, line, column, message)
}

/// The error a chain of function calls ended in.
fn innermost(error: &EvalAltResult) -> &EvalAltResult {
    let mut inner = error;
    while let EvalAltResult::ErrorInFunctionCall(_, _, cause, _) = inner {
        inner = cause;
    }
    inner.unwrap_inner()
}

/// For an error a sandbox limit raised, what it says with the limit and
/// its configuration key; `None` for any other error.
fn limit_message(error: &EvalAltResult, limits: &Limits) -> Option<String> {
    Some(match error {
        EvalAltResult::ErrorTooManyOperations(_) => format!(
            "Too many operations: more than {} on one row ([rules] max_operations)",
            limits.max_operations
        ),
        // The token is the deadline's own message (`sandbox::set_deadline`).
        EvalAltResult::ErrorTerminated(token, _) => token.to_string(),
        EvalAltResult::ErrorDataTooLarge(what, _) => format!(
            "{what} is over the sandbox limit (strings {} bytes, arrays {} items, maps {} entries)",
            limits.max_string_size, limits.max_array_size, limits.max_map_size
        ),
        EvalAltResult::ErrorStackOverflow(_) => format!(
            "function calls nested deeper than {} (stack overflow)",
            limits.max_call_levels
        ),
        _ => return None,
    })
}

/// Calls run the function only, not the script's top level again.
fn call_options() -> CallFnOptions<'static> {
    CallFnOptions::new().eval_ast(false).rewind_scope(true)
}

/// Turns what `check` returned into findings.
///
/// - `()` or `false`: nothing found;
/// - `true`: one finding with the rule's title as message;
/// - a string: one finding with that message;
/// - a map `#{ message, severity?, evidence?, id? }`: one finding;
/// - an array of the above: several findings (each needs its own `id`,
///   or they are numbered).
fn collect_findings(
    rule: &Rule,
    names: &RuleNames,
    row: &RowData,
    group_key: &str,
    value: Dynamic,
    out: &mut Vec<Finding>,
) -> Result<(), String> {
    if value.is_array() {
        let items = value.into_array().unwrap_or_default();
        for (index, item) in items.into_iter().enumerate() {
            if let Some(reported) = read_reported(rule, "check", item, index)? {
                out.push(finding(names, row, group_key, reported));
            }
        }
        return Ok(());
    }
    if let Some(reported) = read_reported(rule, "check", value, 0)? {
        out.push(finding(names, row, group_key, reported));
    }
    Ok(())
}

/// What one returned value says: the parts a finding takes from the
/// script, shared by row rules (`check`) and tenant rules (`tenant`).
pub struct Reported {
    /// The finding's text: the script's message, or the rule's title.
    pub message: String,
    /// The script's `severity`, or else the rule's own.
    pub severity: Severity,
    /// The script's `evidence` map; empty when it gave none.
    pub evidence: EvidenceMap,
    /// Distinguishes several findings of one rule on one group.
    pub id_suffix: Option<String>,
}

/// Reads one value returned by `function` (the `index`-th of an array):
/// `()`/`false` is nothing, `true` the rule's title, a string a message,
/// a map `#{ message, severity?, evidence?, id? }`.
pub fn read_reported(
    rule: &Rule,
    function: &str,
    value: Dynamic,
    index: usize,
) -> Result<Option<Reported>, String> {
    let mut severity = rule.severity;
    let mut evidence = EvidenceMap::default();
    let mut id_suffix = (index > 0).then(|| (index + 1).to_string());
    let message = if value.is_unit() || value.as_bool() == Ok(false) {
        return Ok(None);
    } else if value.as_bool() == Ok(true) {
        rule.title.clone()
    } else if value.is_string() {
        value.into_string().unwrap_or_default()
    } else if value.is_map() {
        let mut message = None;
        for (name, field) in value.cast::<Map>() {
            match name.as_str() {
                "message" => {
                    message = Some(field.into_string().map_err(|t| {
                        format!("a finding's `message` must be a string, found {t}")
                    })?)
                }
                "severity" => {
                    let text = field.into_string().map_err(|t| {
                        format!("a finding's `severity` must be a string, found {t}")
                    })?;
                    severity = text.parse::<Severity>()?;
                }
                "id" => id_suffix = Some(field.to_string()),
                "evidence" => {
                    let map = field
                        .try_cast::<Map>()
                        .ok_or("a finding's `evidence` must be a map")?;
                    for (name, item) in map {
                        evidence.set(name.as_str().into(), to_evidence(&item));
                    }
                }
                other => {
                    return Err(format!(
                        "a finding has no field `{other}` (use message, severity, evidence, id)"
                    ));
                }
            }
        }
        message.ok_or("a finding map needs a `message`")?
    } else {
        return Err(format!(
            "`{function}` returned {}; expected (), a bool, a string, a finding map or an array of them",
            kind_name(&value)
        ));
    };
    Ok(Some(Reported {
        message,
        severity,
        evidence,
        id_suffix,
    }))
}

/// The finding `reported` on `row`, with the row's evidence.
fn finding(names: &RuleNames, row: &RowData, group_key: &str, reported: Reported) -> Finding {
    let Reported {
        message,
        severity,
        evidence,
        id_suffix,
    } = reported;
    let mut all_evidence = EvidenceMap(Vec::with_capacity(names.evidence.len() + evidence.0.len()));
    for (name, prop) in &names.evidence {
        all_evidence
            .0
            .push((Arc::clone(name), prop_evidence(&prop.value(row)).to_owned()));
    }
    for (name, value) in evidence.0 {
        all_evidence.set(name, value);
    }
    let mut key = finding_key(&names.id, group_key);
    if let Some(suffix) = id_suffix {
        key.push('#');
        key.push_str(suffix.trim_start_matches('#'));
    }
    Finding {
        rule: Arc::clone(&names.id),
        severity,
        key,
        group_id: row.real_group_id().map(|id| id.into_owned()),
        group_name: row.text(Col::GroupDisplayName).map(|n| n.into_owned()),
        owner: row.text(Col::OwnerPrincipalName).map(|o| o.into_owned()),
        message,
        line: Some(row.line),
        evidence: all_evidence,
    }
}

/// A row property's value as evidence: one conversion for findings built
/// as [`Finding`]s and for those rendered straight from the row.
fn prop_evidence<'v>(value: &'v Value<'_>) -> EvidenceRef<'v> {
    match value {
        Value::Unit => EvidenceRef::Null,
        Value::Bool(b) => EvidenceRef::Bool(*b),
        Value::Int(i) => EvidenceRef::Int(*i),
        Value::Float(f) => EvidenceRef::Float(*f),
        Value::Str(s) => EvidenceRef::Text(s),
        // Row properties are never maps.
        Value::Map(_) => EvidenceRef::Null,
    }
}

/// A script value as evidence.
pub fn to_evidence(value: &Dynamic) -> Evidence {
    if value.is_unit() {
        Evidence::Null
    } else if let Ok(b) = value.as_bool() {
        Evidence::Bool(b)
    } else if let Ok(i) = value.as_int() {
        Evidence::Int(i)
    } else if let Ok(f) = value.as_float() {
        Evidence::Float(f)
    } else {
        Evidence::Text(value.to_string())
    }
}

#[cfg(test)]
mod verify_tests {
    //! `[rules] verify_fast_path`, with a divergence forced by running one
    //! rule's compiled `check` in place of another's.

    use std::path::Path;

    use super::*;
    use crate::engine::config::Limits;
    use crate::engine::rule::compile_rule;
    use crate::engine::sandbox::build_engine;
    use crate::report::header::Layout;

    const HEADERS: [&str; 4] = [
        "Report Refresh Date",
        "Group Display Name",
        "Is Deleted",
        "Last Activity Date",
    ];

    fn outcomes(verify_every: u64) -> Vec<RowOutcome> {
        let engine = build_engine(&Limits::default());
        let compile = |source: &str| {
            let mut rule = compile_rule(&engine, Path::new("t.rhai"), source).unwrap();
            rule.verify_fast_path_every = verify_every;
            rule
        };
        let rule = compile(r#"const ID = "said-a"; fn check(row) { "a" }"#);
        let other = compile(r#"fn check(row) { "b" }"#);
        let layout = Arc::new(Layout::from_headers(&HEADERS).unwrap());
        let mut evaluator = Evaluator::new(&engine, [&rule], RowData::empty(layout));
        evaluator.natives[0] = Some(other.native.as_ref().unwrap());
        (2..8)
            .map(|line| {
                let row = evaluator.row_mut();
                row.record = Record::from(vec!["2026-08-27", "Sales", "False", ""]);
                row.parse(line).unwrap();
                let mut outcome = RowOutcome::default();
                evaluator.evaluate(&mut outcome);
                outcome
            })
            .collect()
    }

    #[test]
    fn a_divergence_on_a_verified_row_is_a_rule_error() {
        for outcome in outcomes(3) {
            if outcome.line.is_multiple_of(3) {
                assert!(outcome.findings.is_empty());
                let failure = outcome.failures[0].to_string();
                assert!(
                    failure.contains(&format!(
                        "fast path and interpreter disagree on rule said-a at report line {}",
                        outcome.line
                    )),
                    "{failure}"
                );
                assert!(
                    failure.contains(r#""b""#) && failure.contains(r#""a""#),
                    "{failure}"
                );
            } else {
                // Unverified rows take the fast path's word.
                assert!(outcome.failures.is_empty());
                assert_eq!(outcome.findings[0].message, "b");
            }
        }
    }

    #[test]
    fn verification_is_off_by_default() {
        assert!(outcomes(0).iter().all(|o| o.failures.is_empty()));
        assert_eq!(
            crate::engine::config::RulesConfig::default().verify_fast_path_every(),
            0
        );
    }

    #[test]
    fn the_share_is_read_as_every_nth_line_and_checked() {
        use crate::engine::config::RulesConfig;
        let every =
            |text: &str| toml::from_str::<RulesConfig>(text).map(|c| c.verify_fast_path_every());
        assert_eq!(every("verify_fast_path = 0.001").unwrap(), 1000);
        assert_eq!(every("verify_fast_path = 1.0").unwrap(), 1);
        assert_eq!(every("verify_fast_path = 0.0").unwrap(), 0);
        assert_eq!(every("verify_fast_path = 1e-300").unwrap(), u64::MAX);
        let error = every("verify_fast_path = 1.5").unwrap_err().to_string();
        assert!(error.contains("from 0 (off) to 1"), "{error}");
        assert!(every("verify_fast_path = -0.1").is_err());
    }
}
