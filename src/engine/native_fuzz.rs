//! A differential fuzzer: generated rules run on the fast path and in the
//! interpreter, through the evaluator a scan uses, must give the same
//! findings (messages, severity, evidence) and the same rule errors.
//!
//! Rules are generated typed, from every operator, method and statement
//! the fast path models plus a few it does not (closures, arrays, loops),
//! over rows of every cell shape. 256 cases by default; more on demand:
//! `PROPTEST_CASES=100000 cargo test --lib fuzz_fast_path`. Failures
//! found are kept as seeds in `proptest-regressions/engine/native_fuzz.txt`
//! and run first every time.

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;

use crate::engine::config::Limits;
use crate::engine::eval::{Evaluator, RowOutcome};
use crate::engine::rule::compile_rule;
use crate::engine::sandbox::build_engine;
use crate::report::directory::{Directory, GroupFacts};
use crate::report::header::{COLUMNS, Kind, Layout};
use crate::report::reader::Record;
use crate::report::row::RowData;

/// A small deterministic generator (splitmix64), driven by a seed that
/// proptest picks and keeps.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Ty {
    Int,
    Float,
    Str,
    Bool,
    Map,
    /// Anything, `()` included: a raw cell, `()`, a mixed value.
    Any,
}

const TYPES: [Ty; 6] = [Ty::Int, Ty::Float, Ty::Str, Ty::Bool, Ty::Map, Ty::Any];

const INT_FIELDS: &[&str] = &[
    "member_count",
    "external_member_count",
    "exchange_received_email_count",
    "sharepoint_site_storage_used_byte",
    "days_since_activity",
    "total_storage_bytes",
    "owner_count",
    "days_since_created",
];
const TEXT_FIELDS: &[&str] = &[
    "group_type",
    "group_display_name",
    "owner_principal_name",
    "visibility",
    "group_mail",
    "sensitivity_label",
    "created_date",
    "expiration_date",
];
const INT_LITERALS: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "5",
    "10",
    "-1",
    "90",
    "1000000000000",
    "9223372036854775807",
    "(-9223372036854775807 - 1)",
];
const FLOAT_LITERALS: &[&str] = &[
    "0.0",
    "-0.0",
    "0.1",
    "0.3",
    "0.30000000000000004",
    "1.0",
    "1.5",
    "2.5",
    "-2.5",
    "1e-300",
    "5e-324",
    "1e300",
    "1.7976931348623157e308",
    "9.2233720368547758e18",
    "1.0000000000000002",
    "0.9999999999999999",
];
const STR_LITERALS: &[&str] = &[
    "\"\"",
    "\"Public\"",
    "\"public\"",
    "\"P\"",
    "\"ub\"",
    "\"Ω\"",
    "\"x y\"",
];

/// Rule sources built from a seed.
struct RuleWriter {
    g: Gen,
    /// Locals in scope: (name, type).
    locals: Vec<(String, Ty)>,
    next_local: usize,
}

impl RuleWriter {
    fn rule(seed: u64) -> String {
        let mut w = RuleWriter {
            g: Gen(seed),
            locals: Vec::new(),
            next_local: 0,
        };
        let body = w.block(3, true);
        format!(
            "const PARAMS = #{{ n: 5, share: 0.3, name: \"Public\", flag: true }};\n\
             fn check(row, params) {{\n{body}\n}}\n"
        )
    }

    fn ty(&mut self) -> Ty {
        TYPES[self.g.below(TYPES.len())]
    }

    fn block(&mut self, depth: usize, last: bool) -> String {
        let scope = self.locals.len();
        let count = 1 + self.g.below(4);
        let mut lines = Vec::new();
        for i in 0..count {
            lines.push(self.statement(depth, last && i + 1 == count));
        }
        self.locals.truncate(scope);
        lines.join("\n")
    }

    fn statement(&mut self, depth: usize, last: bool) -> String {
        let roll = self.g.below(100);
        match roll {
            0..=24 => {
                let ty = self.ty();
                let value = self.expr(ty, depth);
                let name = format!("v{}", self.next_local);
                self.next_local += 1;
                self.locals.push((name.clone(), ty));
                format!("let {name} = {value};")
            }
            25..=49 if depth > 0 => {
                let condition = self.expr(Ty::Bool, depth - 1);
                let then = if self.g.chance(15) {
                    String::new()
                } else {
                    self.block(depth - 1, last)
                };
                match self.g.below(3) {
                    0 => format!("if {condition} {{ {then} }}"),
                    1 => {
                        let otherwise = self.block(depth - 1, last);
                        format!("if {condition} {{ {then} }} else {{ {otherwise} }}")
                    }
                    _ => {
                        let other = self.expr(Ty::Bool, depth - 1);
                        let otherwise = self.block(depth - 1, last);
                        format!("if {condition} {{ {then} }} else if {other} {{ {otherwise} }}")
                    }
                }
            }
            50..=59 => {
                let ty = self.result_ty();
                format!("return {};", self.expr(ty, depth))
            }
            60..=64 => "return;".into(),
            65..=69 if depth > 0 => format!("{{ {} }}", self.block(depth - 1, last)),
            70..=71 => self.unmodelled(depth),
            _ => {
                let ty = if last { self.result_ty() } else { self.ty() };
                let value = self.expr(ty, depth);
                if last { value } else { format!("{value};") }
            }
        }
    }

    /// What a `check` may return: mostly findings, sometimes anything.
    fn result_ty(&mut self) -> Ty {
        match self.g.below(10) {
            0..=3 => Ty::Str,
            4..=6 => Ty::Bool,
            7 => Ty::Map,
            _ => self.ty(),
        }
    }

    /// Constructs the fast path does not model: the rule must stay in the
    /// interpreter (or, if compiled, agree).
    fn unmodelled(&mut self, depth: usize) -> String {
        let value = self.expr(Ty::Str, depth.saturating_sub(1));
        match self.g.below(5) {
            0 => format!("if false {{ let f = || {{ return {value}; }}; }}"),
            1 => format!("let f = |x| {{ x + {value} }};"),
            2 => format!("let a = [1, {value}];"),
            3 => "let total = 0; for i in 0..3 { total += i; }".into(),
            _ => format!("let f = Fn(\"to_upper\"); if false {{ return f.call({value}); }}"),
        }
    }

    fn local(&mut self, ty: Ty) -> Option<String> {
        let names: Vec<&String> = self
            .locals
            .iter()
            .filter(|(_, t)| *t == ty)
            .map(|(n, _)| n)
            .collect();
        if names.is_empty() {
            None
        } else {
            Some(names[self.g.below(names.len())].clone())
        }
    }

    fn expr(&mut self, ty: Ty, depth: usize) -> String {
        if self.g.chance(20)
            && let Some(name) = self.local(ty)
        {
            return name;
        }
        if depth == 0 || self.g.chance(35) {
            return self.leaf(ty);
        }
        let d = depth - 1;
        match ty {
            Ty::Int => match self.g.below(8) {
                0..=2 => {
                    let op = self.g.pick(&["+", "-", "*", "/", "%"]);
                    format!("({} {op} {})", self.expr(Ty::Int, d), self.expr(Ty::Int, d))
                }
                3 => format!("-{}", self.expr(Ty::Int, d)),
                4 => format!("{}.len()", self.expr(Ty::Str, d)),
                5 => format!("{}.to_int()", self.expr(Ty::Float, d)),
                6 => format!("{}.abs()", self.expr(Ty::Int, d)),
                _ => format!(
                    "(if {} {{ {} }} else {{ {} }})",
                    self.expr(Ty::Bool, d),
                    self.expr(Ty::Int, d),
                    self.expr(Ty::Int, d)
                ),
            },
            Ty::Float => match self.g.below(6) {
                0..=1 => {
                    let op = self.g.pick(&["+", "-", "*", "/", "%"]);
                    format!(
                        "({} {op} {})",
                        self.expr(Ty::Float, d),
                        self.expr(Ty::Float, d)
                    )
                }
                2 => format!("{}.to_float()", self.expr(Ty::Int, d)),
                3 => {
                    let f = self
                        .g
                        .pick(&["round", "floor", "ceiling", "abs", "to_float"]);
                    format!("{}.{f}()", self.expr(Ty::Float, d))
                }
                4 => format!("-{}", self.expr(Ty::Float, d)),
                _ => format!("({}.to_float() * 0.1)", self.expr(Ty::Int, d)),
            },
            Ty::Str => match self.g.below(7) {
                0 => format!("({} + {})", self.expr(Ty::Str, d), self.expr(Ty::Str, d)),
                1 => {
                    let f = self.g.pick(&["to_lower", "to_upper"]);
                    format!("{}.{f}()", self.expr(Ty::Str, d))
                }
                2 => format!("format_bytes({})", self.expr(Ty::Int, d)),
                3 => format!("format_bytes({})", self.expr(Ty::Any, d)),
                _ => {
                    let parts: Vec<String> = (0..1 + self.g.below(3))
                        .map(|_| {
                            let ty = self.ty();
                            format!("${{{}}}", self.expr(ty, d))
                        })
                        .collect();
                    format!("`at {} end`", parts.join(" "))
                }
            },
            Ty::Bool => match self.g.below(10) {
                0..=3 => {
                    // Mostly two of a kind, sometimes mixed kinds.
                    let left = self.ty();
                    let right = if self.g.chance(80) { left } else { self.ty() };
                    let op = self.g.pick(&["==", "!=", "<", "<=", ">", ">="]);
                    format!("({} {op} {})", self.expr(left, d), self.expr(right, d))
                }
                4 => {
                    let op = self.g.pick(&["&&", "||"]);
                    format!(
                        "({} {op} {})",
                        self.expr(Ty::Bool, d),
                        self.expr(Ty::Bool, d)
                    )
                }
                5 => format!("!{}", self.expr(Ty::Bool, d)),
                6 => {
                    let f = self.g.pick(&["contains", "starts_with", "ends_with"]);
                    format!("{}.{f}({})", self.expr(Ty::Str, d), self.expr(Ty::Str, d))
                }
                7 => format!("is_unknown({})", self.expr(Ty::Any, d)),
                8 => format!("({} == ())", self.expr(Ty::Any, d)),
                _ => format!("({} ?? {})", self.leaf(Ty::Any), self.expr(Ty::Bool, d)),
            },
            Ty::Map => {
                let entries: Vec<String> = (0..1 + self.g.below(3))
                    .map(|i| {
                        let key = ["message", "severity", "a", "b"][(i + self.g.below(2)) % 4];
                        let value = if key == "severity" {
                            self.g
                                .pick(&["\"low\"", "\"high\"", "\"bogus\"", "1"])
                                .to_string()
                        } else {
                            let ty = self.ty();
                            self.expr(ty, d)
                        };
                        format!("{key}: {value}")
                    })
                    .collect();
                format!("#{{ {} }}", entries.join(", "))
            }
            Ty::Any => match self.g.below(3) {
                0 => format!("({} ?? {})", self.leaf(Ty::Any), self.leaf(Ty::Any)),
                _ => {
                    let ty = self.ty();
                    self.expr(ty, d)
                }
            },
        }
    }

    fn leaf(&mut self, ty: Ty) -> String {
        let g = &mut self.g;
        match ty {
            Ty::Int => match g.below(5) {
                0..=1 => g.pick(INT_LITERALS).into(),
                2 => format!("(row.{} ?? 0)", g.pick(INT_FIELDS)),
                3 => "row.line".into(),
                _ => "params.n".into(),
            },
            Ty::Float => match g.below(4) {
                0..=2 => g.pick(FLOAT_LITERALS).into(),
                _ => "params.share".into(),
            },
            Ty::Str => match g.below(5) {
                0..=1 => g.pick(STR_LITERALS).into(),
                2 => format!("(row.{} ?? \"\")", g.pick(TEXT_FIELDS)),
                3 => "(row[\"Group Type\"] ?? \"-\")".into(),
                _ => "params.name".into(),
            },
            Ty::Bool => match g.below(6) {
                0 => g.pick(&["true", "false"]).into(),
                1 => "(row.is_deleted ?? false)".into(),
                5 => "(row.is_team ?? false)".into(),
                2 => "row.has(\"Custom Note\")".into(),
                3 => "params.flag".into(),
                _ => "row.is_concealed".into(),
            },
            Ty::Map => "#{ message: \"m\" }".into(),
            Ty::Any => match g.below(8) {
                0 => "()".into(),
                1 => format!("row.{}", g.pick(INT_FIELDS)),
                2 => format!("row.{}", g.pick(TEXT_FIELDS)),
                3 => "row.is_deleted".into(),
                4 => "row[\"Custom Note\"]".into(),
                5 => "row.is_team".into(),
                // An array: the rule runs in the interpreter only.
                6 if g.chance(20) => "row.owners".into(),
                _ => "row.last_activity_date".into(),
            },
        }
    }
}

const INT_CELLS: &[&str] = &[
    "",
    "0",
    "1",
    "3",
    "5",
    "10",
    "90",
    "4757931",
    "1000000000",
    "9223372036854775807",
];
const BOOL_CELLS: &[&str] = &["", "True", "False"];
const DATE_CELLS: &[&str] = &["", "2026-08-27", "2026-05-01", "1970-01-01"];
const TEXT_CELLS: &[&str] = &[
    "", "Public", "Private", "PUBLIC", "x y", "Ω", "ub", "P", "public",
];

/// Rows of every cell shape; with `optional` false, the report lacks its
/// optional columns and `Custom Note`. Rows the reader refuses are skipped.
fn rows(seed: u64, count: usize, optional: bool) -> Vec<Vec<&'static str>> {
    let mut g = Gen(seed);
    let headers = headers(optional);
    (0..count)
        .map(|_| {
            headers
                .iter()
                .map(|h| {
                    let kind = COLUMNS.iter().find(|c| c.header == *h).map(|c| c.kind);
                    match kind {
                        Some(Kind::Int) => g.pick(INT_CELLS),
                        Some(Kind::Bool) => g.pick(BOOL_CELLS),
                        Some(Kind::Date) => g.pick(DATE_CELLS),
                        _ => g.pick(TEXT_CELLS),
                    }
                })
                .collect()
        })
        .collect()
}

fn headers(optional: bool) -> Vec<&'static str> {
    let mut headers: Vec<&str> = COLUMNS
        .iter()
        .filter(|c| optional || c.required)
        .map(|c| c.header)
        .collect();
    if optional {
        headers.push("Custom Note");
    }
    headers
}

/// The layout of a fuzzed report; with `optional`, joined to a directory
/// that knows some of the group ids the rows draw (from [`TEXT_CELLS`]),
/// with facts of every shape: no owners, one, several; created before,
/// on and after the refresh dates of [`DATE_CELLS`]; blank texts.
fn fuzz_layout(optional: bool) -> Arc<Layout> {
    let mut layout = Layout::from_headers(&headers(optional)).expect("headers");
    if optional {
        let facts =
            |owners: &[&str], created: Option<&str>, team: bool, text: Option<&str>| GroupFacts {
                owners: owners.iter().map(|o| (*o).to_owned()).collect(),
                owner_count: owners.len() as i64,
                created_date: created.map(str::to_owned),
                is_team: team,
                visibility: text.map(str::to_owned),
                group_mail: text.map(|t| format!("{t}@x")),
                sensitivity_label: text.map(str::to_owned),
                expiration_date: created.map(str::to_owned),
            };
        layout.directory = Some(Arc::new(Directory::new(
            [
                (
                    "Public".to_owned(),
                    facts(&[], Some("2026-08-27"), false, Some("Public")),
                ),
                (
                    "Private".to_owned(),
                    facts(&["a@x"], Some("1970-01-01"), true, None),
                ),
                (
                    "x y".to_owned(),
                    facts(&["a@x", "b@x", "c@x"], Some("2026-11-25"), true, Some("Ω")),
                ),
                ("Ω".to_owned(), facts(&["Ω@x"], None, false, Some(""))),
                (
                    "ub".to_owned(),
                    facts(&["a@x"], Some("2026-05-01"), false, Some("P")),
                ),
            ],
            "2026-11-25T00:00:00Z".into(),
        )));
    }
    Arc::new(layout)
}

/// Everything a row gave on one path: findings and rule errors, as text.
fn outcomes(source: &str, cells: &[Vec<&str>], optional: bool, fast_path: bool) -> Vec<String> {
    let engine = build_engine(&Limits::default());
    let Ok(rule) = compile_rule(&engine, Path::new("fuzz.rhai"), source) else {
        return vec!["does not compile".into()];
    };
    let layout = fuzz_layout(optional);
    let mut evaluator = Evaluator::new(&engine, [&rule], RowData::empty(layout));
    evaluator.fast_path = fast_path;
    let mut out = Vec::new();
    let mut outcome = RowOutcome::default();
    for (index, row) in cells.iter().enumerate() {
        let target = evaluator.row_mut();
        target.record = Record::from(row.clone());
        if target.parse(index as u64 + 2).is_err() {
            continue;
        }
        evaluator.evaluate(&mut outcome);
        for finding in &outcome.findings {
            out.push(format!("{finding:?}"));
        }
        for failure in &outcome.failures {
            out.push(failure.to_string());
        }
    }
    out
}

/// Whether the generated rule compiles to the fast path, and on how many
/// of `rows` (with every optional column) it then answers itself.
fn compiles_native(source: &str, cells: &[Vec<&str>]) -> Option<(bool, usize)> {
    let engine = build_engine(&Limits::default());
    let rule = compile_rule(&engine, Path::new("fuzz.rhai"), source).ok()?;
    let Ok(native) = &rule.native else {
        return Some((false, 0));
    };
    let layout = fuzz_layout(true);
    let mut answered = 0;
    for (index, cells) in cells.iter().enumerate() {
        let mut row = RowData::empty(Arc::clone(&layout));
        row.record = Record::from(cells.clone());
        if row.parse(index as u64 + 2).is_ok() && native.check(&row).is_ok() {
            answered += 1;
        }
    }
    Some((true, answered))
}

proptest! {
    #![proptest_config(crate::test_support::proptest_config())]

    #[test]
    fn fuzz_fast_path_against_the_interpreter(
        rule_seed in any::<u64>(),
        row_seed in any::<u64>(),
        optional in prop::bool::weighted(0.8),
    ) {
        let source = RuleWriter::rule(rule_seed);
        let cells = rows(row_seed, 24, optional);
        let fast = outcomes(&source, &cells, optional, true);
        let slow = outcomes(&source, &cells, optional, false);
        prop_assert_eq!(fast, slow, "rule:\n{}", source);
    }
}

#[test]
fn most_generated_rules_compile_to_the_fast_path() {
    let cells = rows(7, 50, true);
    let (mut compiled, mut total, mut answered) = (0, 0, 0);
    for seed in 0..400 {
        if let Some((native, rows)) = compiles_native(&RuleWriter::rule(seed), &cells) {
            total += 1;
            compiled += usize::from(native);
            answered += rows;
        }
    }
    let share = compiled as f64 / total as f64;
    println!(
        "{compiled} of {total} generated rules ({share:.2}) compile to the fast path; \
         it answers {answered} of their {} rows itself",
        compiled * cells.len()
    );
    assert!(total >= 300, "only {total} of 400 generated rules compile");
    assert!(
        share >= 0.8,
        "{compiled} of {total} compile to the fast path"
    );
}
