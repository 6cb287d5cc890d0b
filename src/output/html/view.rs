//! What the template sees: the scan's summary, findings, figures and
//! (when the state store ran) statuses, shaped into plain serialisable
//! data. All text from the report stays as text here; the template
//! escapes it.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Serialize;

use super::charts::{BarChart, BarInput, Histogram, activity_histogram, bar_chart};
use super::collect::{Collected, Kept, status_in};
use super::lifecycle::{Lifecycle, Status};
use super::stats::HtmlStats;
use crate::engine::finding::Severity;
use crate::engine::rule::RuleSet;
use crate::engine::sandbox::format_bytes;
use crate::output::SummaryView;
use crate::scan::ScanSummary;

/// The rule whose `days` parameter marks the activity histogram.
pub(crate) const INACTIVITY_RULE: &str = "inactive-groups";
/// Exemptions ending within this many days are flagged.
pub(crate) const EXPIRING_SOON_DAYS: i32 = 14;
/// Rows of each rule's table in the page's HTML (read without
/// JavaScript); the script pages through all the rule's kept findings.
pub(crate) const STATIC_ROWS: usize = 20;
/// Findings resolved by the scan listed on the page; the count is exact.
pub(crate) const RESOLVED_SHOWN: usize = 500;

/// What the report needs to know besides the findings.
#[derive(Clone, Debug)]
pub(crate) struct HtmlContext {
    /// When the scan ran (shown, and the day exemption expiry counts from).
    pub generated_at: Timestamp,
    /// The enabled rules, whose titles and descriptions head the sections.
    pub rules: Vec<RuleInfo>,
    /// `days` of the enabled inactivity rule.
    pub inactivity_days: Option<i64>,
    /// The tenant (`[[tenants]]` scans), named in the page's header.
    pub tenant: Option<String>,
}

/// A rule as the report describes it.
#[derive(Clone, Debug)]
pub(crate) struct RuleInfo {
    /// Rule id, as in the rules file.
    pub id: String,
    /// Short name, the section heading.
    pub title: String,
    /// What the rule checks, shown under the heading.
    pub description: String,
}

impl HtmlContext {
    /// The enabled rules of `rules`, as of `generated_at`.
    pub(crate) fn new(rules: &RuleSet, generated_at: Timestamp) -> HtmlContext {
        let inactivity_days = rules
            .enabled()
            .find(|r| &*r.id == INACTIVITY_RULE)
            .and_then(|r| r.params.0.get("days"))
            .and_then(|days| days.as_int().ok());
        HtmlContext {
            generated_at,
            rules: rules
                .enabled()
                .map(|r| RuleInfo {
                    id: r.id.to_string(),
                    title: r.title.clone(),
                    description: r.description.clone(),
                })
                .collect(),
            inactivity_days,
            tenant: None,
        }
    }
}

/// The page around the findings: summary figures, count cards, charts
/// and, when the state store ran, resolved findings and exemptions.
#[derive(Serialize)]
pub(crate) struct ReportView {
    /// The report's name: its path, `<stdin>`, or `Microsoft Graph report (…)`.
    pub source: String,
    /// The tenant, when the scan was one of `[[tenants]]`.
    pub tenant: Option<String>,
    /// The report's latest refresh date (`YYYY-MM-DD`); `None` when no row gave one.
    pub refresh_date: Option<String>,
    /// The report period in days; `None` when no row gave one.
    pub period: Option<i64>,
    /// When the scan ran, as `YYYY-MM-DD HH:MM UTC`.
    pub generated_at: String,
    /// Rows read, bad ones included.
    pub rows: u64,
    /// Rows that could not be read or parsed.
    pub row_errors: u64,
    /// Times a rule failed on a row.
    pub rule_errors: u64,
    /// Findings in this report.
    pub findings: u64,
    /// Findings the page holds (the most severe of each rule).
    pub kept: u64,
    /// The file beside the page with every finding (`report.findings.csv`);
    /// `None` when the page went to standard output.
    pub full_list: Option<String>,
    /// Rows whose group names or ids are concealed in the report.
    pub concealed_rows: u64,
    /// One card per severity, most severe first.
    pub severity_cards: Vec<CountCard>,
    /// `None` without the state store.
    pub status_cards: Option<Vec<CountCard>>,
    /// Deleted groups in the report.
    pub deleted_groups: u64,
    /// Storage still held by deleted groups, formatted (`1.2 GB`).
    pub deleted_storage: String,
    /// Findings (and rule errors) per enabled rule.
    pub rules_chart: BarChart,
    /// Groups not deleted, by days since their last activity.
    pub activity_chart: Histogram,
    /// Storage by group type, deleted groups as their own bar.
    pub storage_chart: BarChart,
    /// The groups with the most external members.
    pub external_chart: BarChart,
    /// The trend chart's figure (SVG markup, escaped), when state is kept
    /// and a scan has counts.
    pub trend_chart: Option<String>,
    /// Whether the findings tables have a status column (the state store ran).
    pub show_status: bool,
    /// Whether the findings tables have a first-seen column (some finding has a date).
    pub show_first_seen: bool,
    /// Findings this scan resolved (the first [`RESOLVED_SHOWN`]);
    /// `None` without the state store.
    pub resolved: Option<Vec<ResolvedRow>>,
    /// Findings this scan resolved, in all.
    pub resolved_count: u64,
    /// Exemptions in force, soonest to expire first; `None` without the state store.
    pub exemptions: Option<Vec<ExemptionRow>>,
    /// The horizon for flagging exemptions as expiring soon, in days.
    pub expiring_soon_days: i32,
    /// Machine-readable summary, embedded as JSON.
    pub data: serde_json::Value,
}

/// A summary card: how many findings have one severity or status.
#[derive(Serialize)]
pub(crate) struct CountCard {
    /// The severity or status id (`high`, `new`), for CSS classes and filtering.
    pub key: &'static str,
    /// The name shown.
    pub label: &'static str,
    /// The shape shown with the name.
    pub icon: &'static str,
    /// Findings with this severity or status.
    pub count: u64,
}

/// One rule's table: its heading, and its kept findings in the order shown.
pub(crate) struct Section<'a> {
    /// The section's heading.
    pub header: SectionHeader,
    /// The rule's kept findings, most severe first, then in report order.
    pub findings: Vec<&'a Kept>,
}

/// A section's heading: the rule and how much it found.
#[derive(Serialize)]
pub(crate) struct SectionHeader {
    /// Rule id.
    pub id: String,
    /// Rule title, or the id for a rule the context does not know.
    pub title: String,
    /// What the rule checks; empty when unknown.
    pub description: String,
    /// The id of the most severe finding's severity (`high`).
    pub worst: &'static str,
    /// Findings of the rule in all.
    pub count: u64,
    /// Findings of the rule the page holds (its most severe).
    pub kept: usize,
    /// Findings of the rule in the page's HTML table (the first of `kept`).
    pub shown: usize,
}

/// Which optional columns the findings tables have.
#[derive(Clone, Copy, Serialize)]
pub(crate) struct Columns {
    /// Status column (the state store ran).
    pub status: bool,
    /// First-seen column (some finding has a first-seen date).
    pub first_seen: bool,
}

/// One row of a findings table, all text ready for the template.
#[derive(Serialize)]
pub(crate) struct FindingRow {
    /// Severity id (`high`), for CSS classes and filtering.
    pub severity: &'static str,
    /// Severity name shown.
    pub severity_label: &'static str,
    /// Severity shape shown.
    pub severity_icon: &'static str,
    /// Severity as a number for sorting, higher is more severe.
    pub severity_rank: u8,
    /// Group name, or `(tenant)` for a tenant-wide finding.
    pub group: String,
    /// The group's owner, when the report gives one.
    pub owner: Option<String>,
    /// What the rule says about the group.
    pub message: String,
    /// Evidence as (name, value) pairs, in the rule's order.
    pub evidence: Vec<(String, String)>,
    /// Status id (`new`); `None` without the state store.
    pub status: Option<&'static str>,
    /// Status name shown; `None` without the state store.
    pub status_label: Option<&'static str>,
    /// Status shape shown; `None` without the state store.
    pub status_icon: Option<&'static str>,
    /// The refresh date the finding was first seen on, `YYYY-MM-DD`; `None` when unknown.
    pub first_seen: Option<String>,
    /// The report line the group is on; `None` for a tenant-wide finding.
    pub line: Option<u64>,
    /// The finding's stable key (rule and group).
    pub key: String,
}

/// A finding this scan resolved, as the resolved list shows it.
#[derive(Serialize)]
pub(crate) struct ResolvedRow {
    /// Rule id.
    pub rule: String,
    /// Group name, or the finding's key when the name is unknown.
    pub group: String,
    /// The refresh date it was first seen on, `YYYY-MM-DD`; `None` when unknown.
    pub first_seen: Option<String>,
}

/// An exemption in force, as the exemptions list shows it.
#[derive(Serialize)]
pub(crate) struct ExemptionRow {
    /// Rule id, or `all rules`.
    pub rule: String,
    /// The group, as the exemption names it.
    pub group: String,
    /// Why it was granted, when recorded.
    pub reason: Option<String>,
    /// Who granted it, when recorded.
    pub granted_by: Option<String>,
    /// Last day it holds, `YYYY-MM-DD`; `None` for an exemption without end.
    pub expires: Option<String>,
    /// Days left, when the exemption ends within [`EXPIRING_SOON_DAYS`].
    pub expires_in_days: Option<i32>,
}

impl ReportView {
    /// Gathers the page's figures from the scan's summary, its findings,
    /// the chart figures and (when the state store ran) the lifecycle.
    pub(crate) fn build(
        summary: &ScanSummary,
        collected: &Collected,
        stats: &HtmlStats,
        context: &HtmlContext,
        lifecycle: Option<&Lifecycle>,
        full_list: Option<&str>,
    ) -> ReportView {
        let today = context.generated_at.to_zoned(TimeZone::UTC).date();
        let kept = collected.rules.values().map(|r| r.kept_len() as u64).sum();
        ReportView {
            source: summary.source.clone(),
            tenant: context.tenant.clone(),
            refresh_date: summary.stats.refresh_date(),
            period: summary.stats.period,
            generated_at: context
                .generated_at
                .strftime("%Y-%m-%d %H:%M UTC")
                .to_string(),
            rows: summary.rows_read(),
            row_errors: summary.row_errors,
            rule_errors: summary.rule_errors,
            findings: collected.total,
            kept,
            full_list: full_list.map(str::to_owned),
            concealed_rows: summary.stats.concealed,
            severity_cards: severity_cards(collected),
            status_cards: lifecycle.map(|l| status_cards(collected, l)),
            deleted_groups: stats.deleted_groups,
            deleted_storage: format_bytes(stats.deleted_storage_bytes.min(i64::MAX as u64) as i64),
            rules_chart: rules_chart(summary),
            activity_chart: activity_histogram(&stats.activity, context.inactivity_days),
            storage_chart: storage_chart(stats),
            external_chart: external_chart(stats),
            trend_chart: lifecycle.and_then(|l| super::trend::trend_figure(&l.trend)),
            show_status: lifecycle.is_some(),
            show_first_seen: lifecycle
                .is_some_and(|l| l.findings.values().any(|f| f.first_seen.is_some())),
            resolved: lifecycle.map(resolved_rows),
            resolved_count: lifecycle.map_or(0, |l| l.resolved.len() as u64),
            exemptions: lifecycle.map(|l| exemption_rows(l, today)),
            expiring_soon_days: EXPIRING_SOON_DAYS,
            data: serde_json::to_value(SummaryView::new(summary)).unwrap_or_default(),
        }
    }
}

/// `1 group`, `2 groups`.
pub(crate) fn count_of(count: u64, word: &str) -> String {
    if count == 1 {
        format!("1 {word}")
    } else {
        format!("{count} {word}s")
    }
}

/// The severity's name as shown (`High`).
pub(crate) fn severity_label(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "Info",
        Severity::Low => "Low",
        Severity::Medium => "Medium",
        Severity::High => "High",
        Severity::Critical => "Critical",
    }
}

/// A shape per severity, so severity never rests on colour alone.
pub(crate) fn severity_icon(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "○",
        Severity::Low => "▽",
        Severity::Medium => "◆",
        Severity::High => "▲",
        Severity::Critical => "■",
    }
}

pub(crate) fn status_label(status: Status) -> &'static str {
    match status {
        Status::New => "New",
        Status::Open => "Open",
        Status::Reopened => "Reopened",
        Status::Resolved => "Resolved",
        Status::Exempted => "Exempted",
    }
}

pub(crate) fn status_icon(status: Status) -> &'static str {
    match status {
        Status::New => "✦",
        Status::Open => "•",
        Status::Reopened => "↻",
        Status::Resolved => "✓",
        Status::Exempted => "⊘",
    }
}

fn severity_cards(collected: &Collected) -> Vec<CountCard> {
    Severity::ALL
        .iter()
        .rev()
        .map(|&severity| CountCard {
            key: severity.as_str(),
            label: severity_label(severity),
            icon: severity_icon(severity),
            count: collected.by_severity[severity as usize],
        })
        .collect()
}

/// Statuses of this scan's findings; resolved ones come from the state
/// store's list. A finding state does not know counts as open.
fn status_cards(collected: &Collected, lifecycle: &Lifecycle) -> Vec<CountCard> {
    let mut counts = collected.by_status.clone();
    *counts.entry(Status::Resolved).or_default() += lifecycle.resolved.len() as u64;
    Status::ALL
        .iter()
        .map(|&status| CountCard {
            key: status.as_str(),
            label: status_label(status),
            icon: status_icon(status),
            count: counts.get(&status).copied().unwrap_or(0),
        })
        .collect()
}

fn rules_chart(summary: &ScanSummary) -> BarChart {
    bar_chart(
        summary
            .per_rule
            .iter()
            .map(|(id, counts)| BarInput {
                label: id.to_string(),
                value: counts.findings,
                value_text: if counts.errors > 0 {
                    format!("{} ({} errors)", counts.findings, counts.errors)
                } else {
                    counts.findings.to_string()
                },
            })
            .collect(),
    )
}

fn storage_chart(stats: &HtmlStats) -> BarChart {
    let mut bars: Vec<BarInput> = stats
        .storage_by_type
        .iter()
        .map(|t| BarInput {
            label: format!("{} ({})", t.group_type, count_of(t.groups, "group")),
            value: t.bytes,
            value_text: format_bytes(t.bytes.min(i64::MAX as u64) as i64),
        })
        .collect();
    if stats.deleted_groups > 0 {
        bars.push(BarInput {
            label: format!("deleted ({})", count_of(stats.deleted_groups, "group")),
            value: stats.deleted_storage_bytes,
            value_text: format_bytes(stats.deleted_storage_bytes.min(i64::MAX as u64) as i64),
        });
    }
    bar_chart(bars)
}

fn external_chart(stats: &HtmlStats) -> BarChart {
    bar_chart(
        stats
            .top_external
            .sorted()
            .into_iter()
            .map(|g| BarInput {
                value_text: match g.members {
                    Some(members) => format!("{} of {members} members", g.external),
                    None => g.external.to_string(),
                },
                label: g.name,
                value: g.external,
            })
            .collect(),
    )
}

impl ReportView {
    /// Which optional columns the findings tables have.
    pub(crate) fn columns(&self) -> Columns {
        Columns {
            status: self.show_status,
            first_seen: self.show_first_seen,
        }
    }
}

/// One section per rule that found something, most severe first; rows
/// most severe first, then in report order.
pub(crate) fn sections<'a>(collected: &'a Collected, context: &HtmlContext) -> Vec<Section<'a>> {
    let mut sections: Vec<(Severity, Section<'a>)> = collected
        .rules
        .iter()
        .filter_map(|(rule, found)| {
            let worst = found.worst?;
            let list = found.kept_in_order();
            let info = context.rules.iter().find(|r| *r.id == **rule);
            let header = SectionHeader {
                id: rule.to_string(),
                title: info.map_or_else(|| rule.to_string(), |r| r.title.clone()),
                description: info.map(|r| r.description.clone()).unwrap_or_default(),
                worst: worst.as_str(),
                count: found.count,
                kept: list.len(),
                shown: list.len().min(STATIC_ROWS),
            };
            Some((
                worst,
                Section {
                    header,
                    findings: list,
                },
            ))
        })
        .collect();
    sections.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| a.1.header.id.cmp(&b.1.header.id))
    });
    sections.into_iter().map(|(_, s)| s).collect()
}

/// A kept finding's status and first-seen day, when the state store ran:
/// the status the scan gave it, else the state's.
pub(crate) fn finding_state(
    kept: &Kept,
    lifecycle: Option<&Lifecycle>,
) -> Option<(Status, Option<Date>)> {
    lifecycle.map(|l| {
        let key = &kept.finding.key;
        let status = kept.status.unwrap_or_else(|| status_in(l, key));
        (status, l.findings.get(key).and_then(|f| f.first_seen))
    })
}

/// A finding as its table row shows it.
pub(crate) fn finding_row(kept: &Kept, lifecycle: Option<&Lifecycle>) -> FindingRow {
    let finding = &kept.finding;
    let state = finding_state(kept, lifecycle);
    FindingRow {
        severity: finding.severity.as_str(),
        severity_label: severity_label(finding.severity),
        severity_icon: severity_icon(finding.severity),
        severity_rank: finding.severity as u8,
        group: group_label(finding),
        owner: finding.owner.clone(),
        message: finding.message.clone(),
        evidence: finding
            .evidence
            .0
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
        status: state.map(|(s, _)| s.as_str()),
        status_label: state.map(|(s, _)| status_label(s)),
        status_icon: state.map(|(s, _)| status_icon(s)),
        first_seen: state.and_then(|(_, d)| d).map(|d| d.to_string()),
        line: finding.line,
        key: finding.key.clone(),
    }
}

/// The group as the page names it: `(tenant)` for a tenant-wide finding.
pub(crate) fn group_label(finding: &crate::engine::finding::Finding) -> String {
    finding
        .group_name
        .clone()
        .unwrap_or_else(|| "(tenant)".to_owned())
}

fn resolved_rows(lifecycle: &Lifecycle) -> Vec<ResolvedRow> {
    lifecycle
        .resolved
        .iter()
        .take(RESOLVED_SHOWN)
        .map(|r| ResolvedRow {
            rule: r.rule.clone(),
            group: r.group_name.clone().unwrap_or_else(|| r.key.clone()),
            first_seen: r.first_seen.map(|d| d.to_string()),
        })
        .collect()
}

/// Soonest to expire first; open-ended ones last.
fn exemption_rows(lifecycle: &Lifecycle, today: Date) -> Vec<ExemptionRow> {
    let mut exemptions: Vec<_> = lifecycle.exemptions.iter().collect();
    exemptions.sort_by_key(|e| (e.expires.is_none(), e.expires));
    exemptions
        .into_iter()
        .map(|e| ExemptionRow {
            rule: e.rule.clone().unwrap_or_else(|| "all rules".to_owned()),
            group: e.group.clone(),
            reason: e.reason.clone(),
            granted_by: e.granted_by.clone(),
            expires: e.expires.map(|d| d.to_string()),
            expires_in_days: e
                .expires
                .and_then(|d| today.until(d).ok())
                .map(|span| span.get_days())
                .filter(|&days| days <= EXPIRING_SOON_DAYS),
        })
        .collect()
}
