//! Tenant-wide rules: `fn tenant(summary, params)`, run once after the
//! last row.
//!
//! Some governance questions are about the whole tenant ("more than 30% of
//! groups are inactive", "deleted groups hold more than 1 TB"). The scan
//! already folds every row into [`ReportStats`] (merged exactly across
//! workers, in report order); a rule that defines `tenant` gets those
//! figures as a read-only [`Summary`] and returns findings the same way
//! `check` does. Tenant findings are keyed by the rule id alone (plus the
//! finding's `id`, when a rule returns several), carry no group and no
//! report line.

use std::sync::Arc;

use rhai::{Array, CallFnOptions, Dynamic, Engine, Map, Scope};

use super::diagnostics::Diagnostic;
use super::eval::{Reported, RuleFailure, read_reported};
use super::finding::Finding;
use super::rule::Rule;
use crate::report::stats::{ReportStats, TopGroups};

/// The whole-report figures a tenant rule sees.
#[derive(Clone, Debug)]
pub(crate) struct Summary(pub Arc<SummaryData>);

/// The figures behind a [`Summary`].
#[derive(Clone, Debug, Default)]
pub(crate) struct SummaryData {
    /// Every row read without error, folded into one set of figures.
    pub stats: ReportStats,
    /// Rows that could not be read (not in any other figure).
    pub row_errors: u64,
}

impl Summary {
    /// The summary of a report whose readable rows gave `stats` and which
    /// had `row_errors` unreadable rows.
    pub(crate) fn new(stats: ReportStats, row_errors: u64) -> Summary {
        Summary(Arc::new(SummaryData { stats, row_errors }))
    }
}

/// One `summary.<name>` property: the reference docs and the getter come
/// from the same entry, so they cannot disagree.
pub(crate) struct SummaryProperty {
    /// The name after `summary.`, such as `not_deleted`.
    pub name: &'static str,
    /// The Rhai type a script gets, such as `int`.
    pub kind: &'static str,
    /// What the figure means, for the rule-writing reference.
    pub doc: &'static str,
    /// A typical value, for the reference.
    pub example: &'static str,
    get: fn(&SummaryData) -> Dynamic,
}

fn int(value: u64) -> Dynamic {
    Dynamic::from_int(i64::try_from(value).unwrap_or(i64::MAX))
}

macro_rules! property {
    ($name:literal, $kind:literal, $doc:literal, $example:literal, |$data:ident| $get:expr) => {
        SummaryProperty {
            name: $name,
            kind: $kind,
            doc: $doc,
            example: $example,
            get: |$data: &SummaryData| $get,
        }
    };
}

/// Every property `summary.<name>` accepts.
pub(crate) const SUMMARY_PROPERTIES: &[SummaryProperty] = &[
    property!(
        "rows",
        "int",
        "Rows read without error, deleted groups included.",
        "1200",
        |d| int(d.stats.rows)
    ),
    property!(
        "row_errors",
        "int",
        "Rows that could not be read; they are in no other figure.",
        "0",
        |d| int(d.row_errors)
    ),
    property!("deleted", "int", "Deleted groups.", "25", |d| int(d
        .stats
        .deleted)),
    property!(
        "not_deleted",
        "int",
        "Groups that are not deleted: the denominator of the figures below.",
        "1175",
        |d| int(d.stats.not_deleted)
    ),
    property!(
        "concealed",
        "int",
        "Rows whose names and ids are concealed.",
        "0",
        |d| int(d.stats.concealed)
    ),
    property!(
        "never_active",
        "int",
        "Groups (not deleted) with no activity in the whole report period.",
        "140",
        |d| int(d.stats.never_active)
    ),
    property!(
        "ownerless",
        "int",
        "Groups (not deleted) without an owner (0 when the report has no owner column).",
        "31",
        |d| int(d.stats.ownerless)
    ),
    property!(
        "public",
        "int",
        "Groups (not deleted) of type `Public`.",
        "410",
        |d| int(d.stats.public)
    ),
    property!(
        "private",
        "int",
        "Groups (not deleted) of type `Private`.",
        "765",
        |d| int(d.stats.private)
    ),
    property!(
        "members",
        "int",
        "Sum of the member counts of groups (not deleted).",
        "15230",
        |d| int(d.stats.members)
    ),
    property!(
        "guests",
        "int",
        "Sum of the external member counts of groups (not deleted).",
        "860",
        |d| int(d.stats.guests)
    ),
    property!(
        "groups_with_guests",
        "int",
        "Groups (not deleted) with at least one external member.",
        "212",
        |d| int(d.stats.groups_with_guests)
    ),
    property!(
        "total_storage_bytes",
        "int",
        "Mailbox plus site storage of every row, deleted groups included.",
        "5400000000000",
        |d| int(d.stats.total_storage_bytes)
    ),
    property!(
        "deleted_storage_bytes",
        "int",
        "Mailbox plus site storage still held by deleted groups.",
        "91000000000",
        |d| int(d.stats.deleted_storage_bytes)
    ),
    property!(
        "report_refresh_date",
        "string (YYYY-MM-DD) or ()",
        "The latest refresh date in the report.",
        "\"2026-11-25\"",
        |d| d.stats.refresh_date().map_or(Dynamic::UNIT, Dynamic::from)
    ),
    property!(
        "report_period",
        "int or ()",
        "The report period in days, from the first row that gives one.",
        "30",
        |d| d.stats.period.map_or(Dynamic::UNIT, Dynamic::from_int)
    ),
    property!(
        "top_by_guests",
        "array of maps",
        "Up to 10 groups (not deleted) with the most external members, most first: `#{ group_name, group_id, owner, external_member_count, line }`.",
        "[#{ group_name: \"Partners\", external_member_count: 48, … }]",
        |d| top_list(&d.stats.top_by_guests, "external_member_count")
    ),
    property!(
        "top_by_storage",
        "array of maps",
        "Up to 10 groups (not deleted) holding the most storage, most first: `#{ group_name, group_id, owner, total_storage_bytes, line }`.",
        "[#{ group_name: \"Archive\", total_storage_bytes: 91000000000, … }]",
        |d| top_list(&d.stats.top_by_storage, "total_storage_bytes")
    ),
];

/// Methods of `summary`, for the reference docs: (call, returns, doc, example).
pub(crate) const SUMMARY_METHODS: &[(&str, &str, &str, &str)] = &[(
    "inactive_for(days)",
    "int",
    "Groups (not deleted) whose last activity was `days` or more days before the refresh date; never-active groups are not included (add `never_active`).",
    "summary.inactive_for(90)",
)];

fn top_list(top: &TopGroups, value_name: &str) -> Dynamic {
    let text = |value: &Option<String>| value.clone().map_or(Dynamic::UNIT, Dynamic::from);
    let entries: Array = top
        .0
        .iter()
        .map(|entry| {
            let mut map = Map::new();
            map.insert("group_name".into(), text(&entry.group_name));
            map.insert("group_id".into(), text(&entry.group_id));
            map.insert("owner".into(), text(&entry.owner));
            map.insert(value_name.into(), int(entry.value));
            map.insert("line".into(), int(entry.line));
            Dynamic::from_map(map)
        })
        .collect();
    Dynamic::from_array(entries)
}

/// Every property name `summary.<name>` accepts.
pub(crate) fn summary_property_names() -> impl Iterator<Item = &'static str> {
    SUMMARY_PROPERTIES.iter().map(|p| p.name)
}

/// Registers the `Summary` type with the engine.
pub(crate) fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Summary>("Summary");
    for property in SUMMARY_PROPERTIES {
        let get = property.get;
        engine.register_get(property.name, move |summary: &mut Summary| get(&summary.0));
    }
    engine.register_fn("inactive_for", |summary: &mut Summary, days: i64| {
        int(summary.0.stats.inactive_for(days))
    });
    engine.register_fn("to_string", |summary: &mut Summary| {
        format!("Summary({} rows)", summary.0.stats.rows)
    });
    engine.register_fn("to_debug", |summary: &mut Summary| {
        format!("Summary({} rows)", summary.0.stats.rows)
    });
}

/// What the tenant rules made of the whole report.
#[derive(Clone, Debug, Default)]
pub(crate) struct TenantOutcome {
    /// What the tenant rules reported, in rule order.
    pub findings: Vec<Finding>,
    /// Tenant rules that errored (their `line` is `None`).
    pub failures: Vec<RuleFailure>,
}

/// Runs `tenant` of every rule that defines it.
pub(crate) fn evaluate<'a>(
    engine: &Engine,
    rules: impl IntoIterator<Item = &'a Rule>,
    summary: &Summary,
) -> TenantOutcome {
    let mut outcome = TenantOutcome::default();
    let mut scope = Scope::new();
    for rule in rules.into_iter().filter(|r| r.tenant_arity.is_some()) {
        let options = CallFnOptions::new().eval_ast(false).rewind_scope(true);
        let summary = Dynamic::from(summary.clone());
        let result = match rule.tenant_arity {
            Some(1) => engine.call_fn_with_options::<Dynamic>(
                options,
                &mut scope,
                &rule.ast,
                "tenant",
                (summary,),
            ),
            _ => engine.call_fn_with_options::<Dynamic>(
                options,
                &mut scope,
                &rule.ast,
                "tenant",
                (summary, Dynamic::from(rule.params.clone())),
            ),
        };
        let converted = result
            .map_err(|e| Diagnostic::from_eval(&rule.path, &rule.source, &e))
            .and_then(|value| {
                tenant_findings(rule, value)
                    .map_err(|message| Diagnostic::at(&rule.path, &rule.source, 0, 0, message))
            });
        match converted {
            Ok(mut findings) => outcome.findings.append(&mut findings),
            Err(diagnostic) => outcome.failures.push(RuleFailure {
                rule: rule.id.clone(),
                line: None,
                group: None,
                diagnostic,
            }),
        }
    }
    outcome
}

/// Turns what `tenant` returned into findings: the same shapes `check`
/// may return (`()`, a bool, a string, a finding map, an array of them).
fn tenant_findings(rule: &Rule, value: Dynamic) -> Result<Vec<Finding>, String> {
    let items = if value.is_array() {
        value.into_array().unwrap_or_default()
    } else {
        vec![value]
    };
    let mut findings = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        if let Some(finding) = tenant_finding(rule, item, index)? {
            findings.push(finding);
        }
    }
    Ok(findings)
}

fn tenant_finding(rule: &Rule, value: Dynamic, index: usize) -> Result<Option<Finding>, String> {
    let Some(Reported {
        message,
        severity,
        evidence,
        id_suffix,
    }) = read_reported(rule, "tenant", value, index)?
    else {
        return Ok(None);
    };
    let key = match id_suffix {
        Some(suffix) => format!("{}#{}", rule.id, suffix.trim_start_matches('#')),
        None => rule.id.to_string(),
    };
    Ok(Some(Finding {
        rule: rule.id.clone(),
        severity,
        key,
        group_id: None,
        group_name: None,
        owner: None,
        message,
        line: None,
        evidence,
    }))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::engine::config::Limits;
    use crate::engine::rule::compile_rule;
    use crate::engine::sandbox::build_engine;

    fn run(source: &str, stats: ReportStats) -> TenantOutcome {
        let engine = build_engine(&Limits::default());
        let rule = compile_rule(&engine, Path::new("rules/tenant-demo.rhai"), source).unwrap();
        evaluate(&engine, [&rule], &Summary::new(stats, 0))
    }

    #[test]
    fn a_tenant_finding_is_keyed_by_the_rule_id() {
        let stats = ReportStats {
            not_deleted: 10,
            never_active: 2,
            days_since_activity: [(5, 4), (120, 4)].into(),
            ..Default::default()
        };
        let outcome = run(
            "const PARAMS = #{ max_share: 0.3 };\n\
             fn tenant(summary, params) {\n\
               let idle = summary.inactive_for(90) + summary.never_active;\n\
               if idle > params.max_share * summary.not_deleted {\n\
                 return #{ message: `${idle} of ${summary.not_deleted} groups idle`, evidence: #{ idle: idle } };\n\
               }\n\
             }",
            stats,
        );
        assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
        let finding = &outcome.findings[0];
        assert_eq!(finding.key, "tenant-demo");
        assert_eq!(finding.message, "6 of 10 groups idle");
        assert_eq!(finding.evidence.to_line(), "idle=6");
        assert_eq!(finding.line, None);
    }

    #[test]
    fn several_findings_get_numbered_keys_and_top_lists_are_maps() {
        let mut stats = ReportStats::default();
        stats.top_by_guests.0.push(crate::report::stats::TopGroup {
            value: 48,
            line: 7,
            group_name: Some("Partners".into()),
            group_id: None,
            owner: None,
        });
        let outcome = run(
            "fn tenant(summary) { summary.top_by_guests.map(|g| `${g.group_name}: ${g.external_member_count}`) + [\"second\"] }",
            stats,
        );
        let keys: Vec<&str> = outcome.findings.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["tenant-demo", "tenant-demo#2"]);
        assert_eq!(outcome.findings[0].message, "Partners: 48");
    }

    #[test]
    fn a_failing_tenant_function_is_a_failure_with_its_line() {
        let outcome = run(
            "fn tenant(summary) {\n  throw \"no\";\n}",
            ReportStats::default(),
        );
        assert_eq!(outcome.failures[0].diagnostic.line, 2);
        assert_eq!(outcome.failures[0].line, None);
    }
}
