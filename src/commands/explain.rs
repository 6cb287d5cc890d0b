//! `groupwarden explain --input REPORT GROUP`: one group's row as the
//! rules see it, and what each rule made of it.
//!
//! The report is read on this thread with the same reader, parser and
//! [`Evaluator`] a scan uses; every row is folded into the whole-report
//! figures so tenant rules can be shown too. Every rule runs, disabled
//! ones included (marked as such): the point is to see why a rule did or
//! did not fire.

use std::io::{self, Write};
use std::sync::Arc;

use rhai::Dynamic;

use crate::cli::ExplainArgs;
use crate::config::LoadedConfig;
use crate::engine::eval::{Evaluator, RowOutcome};
use crate::engine::finding::Finding;
use crate::engine::rule::{Rule, RuleSet};
use crate::engine::sandbox::{DERIVED_PROPERTIES, Prop, column_value};
use crate::engine::tenant::{self, Summary};
use crate::report::header::{COLUMNS, Col};
use crate::report::reader::ReportReader;
use crate::report::row::{NIL_GROUP_ID, RowData, RowError};
use crate::report::stats::ReportStats;
use crate::scan::ScanError;

use super::rules::literal;
use super::scan::CONCEALED_ADVICE;
use super::{Error, Outcome, load_rules, open_input};

/// Runs `groupwarden explain`.
pub(crate) fn run(args: ExplainArgs) -> Result<Outcome, Error> {
    let query = args.group.trim();
    if query.eq_ignore_ascii_case(NIL_GROUP_ID) {
        return Err(Error::Usage(format!(
            "`{NIL_GROUP_ID}` is how a concealed report hides every group id; give the group's name (its 32-character hash) instead"
        )));
    }
    let loaded = LoadedConfig::load(args.location.config.as_deref())?;
    let loaded = match &args.tenant {
        Some(name) => crate::tenants::resolve(&loaded, name, None).map_err(Error::Usage)?,
        None => {
            if !loaded.config.tenants.is_empty() {
                tracing::info!(
                    "the config has [[tenants]]: shown with the shared [rules]; --tenant NAME shows a tenant's parameters and disabled rules"
                );
            }
            loaded
        }
    };
    let (engine, rules) = load_rules(args.location.rules.as_deref(), &loaded)?;
    let (input, source_name) = open_input(&args.input, Default::default())?;
    let cap = loaded.config.scan.max_record_bytes;
    let mut reader =
        ReportReader::with_max_record_bytes(input, &source_name, cap).map_err(ScanError::from)?;
    // The directory's fields as a scan would see them (the cache is only
    // read here, or fetched when it is old).
    let directory = crate::pipeline::directory::for_scan(
        &loaded,
        crate::pipeline::directory::Cache::ReadOnly(None),
    )?;
    if let Some(directory) = directory {
        reader.attach_directory(directory);
    }
    let mut out = io::stdout().lock();

    let mut evaluator = Evaluator::new(
        &engine,
        rules.rules.iter(),
        RowData::empty(Arc::clone(reader.layout())),
    );
    let mut stats = ReportStats::default();
    let mut row_errors = 0;
    let mut matches = 0;
    let mut nearest = Nearest::default();
    loop {
        let row = evaluator.row_mut();
        let Some(line) = reader
            .read_record(&mut row.record)
            .map_err(ScanError::from)?
        else {
            break;
        };
        let parsed = row.parse(line);
        match &parsed {
            Ok(()) => stats.add_row(row),
            Err(_) => row_errors += 1,
        }
        if !is_match(row, query) {
            nearest.offer(row, query);
            continue;
        }
        matches += 1;
        if matches > 1 {
            writeln!(out)?;
        }
        match parsed {
            Ok(()) => {
                let snapshot = row.clone();
                let mut outcome = RowOutcome::default();
                evaluator.evaluate(&mut outcome);
                print_group(&snapshot, &source_name, &mut out)?;
                print_rule_results(&rules, &outcome, &mut out)?;
            }
            Err(error) => print_unreadable(row, &error, &source_name, &mut out)?,
        }
    }
    if matches == 0 {
        let hint = nearest
            .best
            .map(|(_, name)| format!("; did you mean `{name}`?"))
            .unwrap_or_default();
        return Err(Error::Usage(format!(
            "no group with id or name `{query}` in {source_name}{hint}"
        )));
    }
    print_tenant_results(&engine, &rules, Summary::new(stats, row_errors), &mut out)?;
    Ok(Outcome::Clean)
}

/// By id, or by name ignoring case (hashed names in concealed reports
/// are upper-case hex; people paste them in any case).
fn is_match(row: &RowData, query: &str) -> bool {
    let id = row
        .text(Col::GroupId)
        .is_some_and(|id| id.eq_ignore_ascii_case(query));
    id || row
        .text(Col::GroupDisplayName)
        .is_some_and(|name| name.trim().to_lowercase() == query.to_lowercase())
}

/// The closest group name seen, for a "did you mean" when nothing matches.
#[derive(Default)]
struct Nearest {
    best: Option<(f64, String)>,
}

impl Nearest {
    fn offer(&mut self, row: &RowData, query: &str) {
        let Some(name) = row.text(Col::GroupDisplayName) else {
            return;
        };
        let score = strsim::jaro_winkler(&name.to_lowercase(), &query.to_lowercase());
        if score > 0.8 && self.best.as_ref().is_none_or(|(best, _)| score > *best) {
            self.best = Some((score, name.into_owned()));
        }
    }
}

fn print_group(row: &RowData, source: &str, out: &mut dyn Write) -> io::Result<()> {
    let name = row.text(Col::GroupDisplayName).unwrap_or_default();
    writeln!(out, "Group \"{name}\" ({source}, line {})", row.line)?;
    writeln!(out, "  finding key: <rule>:{}", row.group_key())?;
    if row.is_concealed() {
        writeln!(out, "  note: {CONCEALED_ADVICE}")?;
    }
    let width = COLUMNS.iter().map(|c| c.field.len()).max().unwrap_or(0) + 2;
    writeln!(out, "\nFields (row.<field>)")?;
    for (column, &col) in COLUMNS.iter().zip(Col::ALL) {
        let absent = if row.layout.position(col).is_none() {
            "   (not in this report)"
        } else {
            ""
        };
        writeln!(
            out,
            "  {:width$}{}{absent}",
            column.field,
            literal(&column_value(row, col).into_dynamic())
        )?;
    }
    writeln!(out, "\nDerived")?;
    for (name, ..) in DERIVED_PROPERTIES {
        writeln!(out, "  {name:width$}{}", literal(&derived_value(row, name)))?;
    }
    if !row.layout.extra.is_empty() {
        writeln!(out, "\nOther columns (row[\"Header\"])")?;
        for extra in &row.layout.extra {
            let value = row
                .text_at(extra.position)
                .map_or(Dynamic::UNIT, |t| Dynamic::from(t.into_owned()));
            writeln!(
                out,
                "  {:width$}{}",
                format!("{:?}", extra.header),
                literal(&value)
            )?;
        }
    }
    Ok(())
}

/// As the rule sees it: through the same getter (the directory's fields
/// included).
fn derived_value(row: &RowData, name: &str) -> Dynamic {
    Prop::named(name).map_or(Dynamic::UNIT, |prop| prop.dynamic(row))
}

fn print_rule_results(
    rules: &RuleSet,
    outcome: &RowOutcome,
    out: &mut dyn Write,
) -> io::Result<()> {
    writeln!(out, "\nRules")?;
    let width = rules.rules.iter().map(|r| r.id.len()).max().unwrap_or(0) + 2;
    for rule in &rules.rules {
        let disabled = if rule.enabled {
            ""
        } else {
            " (disabled in the config: a scan skips it)"
        };
        if rule.check_arity.is_none() {
            writeln!(out, "  {:width$}tenant rule: see below{disabled}", rule.id)?;
            continue;
        }
        let findings: Vec<&Finding> = outcome
            .findings
            .iter()
            .filter(|f| f.rule == rule.id)
            .collect();
        let failure = outcome.failures.iter().find(|f| f.rule == rule.id);
        if let Some(failure) = failure {
            writeln!(out, "  {:width$}ERROR{disabled}", rule.id)?;
            writeln!(
                out,
                "{}",
                indent(&failure.diagnostic.to_string(), width + 4)
            )?;
        } else if findings.is_empty() {
            writeln!(out, "  {:width$}not fired{disabled}", rule.id)?;
        } else {
            writeln!(out, "  {:width$}FIRED{disabled}", rule.id)?;
            print_findings(&findings, width + 4, out)?;
        }
    }
    Ok(())
}

fn print_findings(findings: &[&Finding], margin: usize, out: &mut dyn Write) -> io::Result<()> {
    for finding in findings {
        writeln!(
            out,
            "{:margin$}{}  {}",
            "", finding.severity, finding.message
        )?;
        if !finding.evidence.is_empty() {
            writeln!(
                out,
                "{:margin$}  evidence: {}",
                "",
                finding.evidence.to_line()
            )?;
        }
    }
    Ok(())
}

fn print_tenant_results(
    engine: &rhai::Engine,
    rules: &RuleSet,
    summary: Summary,
    out: &mut dyn Write,
) -> io::Result<()> {
    let tenant_rules: Vec<&Rule> = rules
        .rules
        .iter()
        .filter(|r| r.tenant_arity.is_some())
        .collect();
    if tenant_rules.is_empty() {
        return Ok(());
    }
    let unreadable = match summary.0.row_errors {
        0 => String::new(),
        n => format!("; {n} unreadable rows left out"),
    };
    writeln!(
        out,
        "\nTenant rules (over the whole report: {} rows{unreadable})",
        summary.0.stats.rows
    )?;
    let outcome = tenant::evaluate(engine, tenant_rules.iter().copied(), &summary);
    let width = tenant_rules.iter().map(|r| r.id.len()).max().unwrap_or(0) + 2;
    for rule in tenant_rules {
        let disabled = if rule.enabled {
            ""
        } else {
            " (disabled in the config: a scan skips it)"
        };
        let findings: Vec<&Finding> = outcome
            .findings
            .iter()
            .filter(|f| f.rule == rule.id)
            .collect();
        if let Some(failure) = outcome.failures.iter().find(|f| f.rule == rule.id) {
            writeln!(
                out,
                "  {:width$}ERROR{disabled}\n{}",
                rule.id,
                indent(&failure.diagnostic.to_string(), width + 4)
            )?;
        } else if findings.is_empty() {
            writeln!(out, "  {:width$}not fired{disabled}", rule.id)?;
        } else {
            writeln!(out, "  {:width$}FIRED{disabled}", rule.id)?;
            print_findings(&findings, width + 4, out)?;
        }
    }
    Ok(())
}

fn print_unreadable(
    row: &RowData,
    error: &RowError,
    source: &str,
    out: &mut dyn Write,
) -> io::Result<()> {
    let name = row.text(Col::GroupDisplayName).unwrap_or_default();
    writeln!(out, "Group \"{name}\" ({source}, line {})", row.line)?;
    writeln!(
        out,
        "  this row cannot be read, so no rule ran on it: {error}"
    )?;
    writeln!(out, "\nCells as written")?;
    for (position, header) in row.layout.headers.iter().enumerate() {
        let text = row
            .record
            .get(position)
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        writeln!(out, "  {:40}{text:?}", format!("{header:?}"))?;
    }
    Ok(())
}

fn indent(text: &str, by: usize) -> String {
    text.lines()
        .map(|line| format!("{:by$}{line}", ""))
        .collect::<Vec<_>>()
        .join("\n")
}
