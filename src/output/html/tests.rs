//! The page as a whole: structure (snapshots), escaping, counts,
//! self-containment, with and without the state store's lifecycle.

use std::sync::Arc;
use std::time::Duration;

use jiff::civil::date;

use super::collect::{Collected, KEPT_FINDINGS, kept_per_rule};
use super::lifecycle::{Exemption, FindingLifecycle, Lifecycle, ResolvedFinding, Status};
use super::render::{content_security_policy, write_page};
use super::stats::HtmlStats;
use super::view::{HtmlContext, ReportView, RuleInfo, STATIC_ROWS, sections};
use crate::engine::finding::{Evidence, EvidenceMap, Finding, Severity};
use crate::report::date::parse_day;
use crate::report::stats::ReportStats;
use crate::scan::{RuleCounts, ScanSummary};

const HOSTILE_NAME: &str = "<script>alert(1)</script>";
const HOSTILE_OWNER: &str = "\"><img src=x onerror=alert(2)>";

fn finding(rule: &str, severity: Severity, name: &str, owner: Option<&str>, line: u64) -> Finding {
    let mut evidence = EvidenceMap::default();
    evidence.set(
        "days_since_activity".into(),
        Evidence::Int(line as i64 * 10),
    );
    evidence.set("note".into(), Evidence::Text(format!("{name} & more")));
    Finding {
        rule: Arc::from(rule),
        severity,
        key: format!("{rule}:id-{line}"),
        group_id: Some(format!("id-{line}")),
        group_name: Some(name.to_owned()),
        owner: owner.map(str::to_owned),
        message: format!("Message about {name}"),
        line: Some(line),
        evidence,
    }
}

fn findings() -> Vec<Finding> {
    vec![
        finding(
            "inactive-groups",
            Severity::Medium,
            "Sales EMEA",
            Some("ann@contoso.com"),
            3,
        ),
        finding(
            "inactive-groups",
            Severity::High,
            HOSTILE_NAME,
            Some(HOSTILE_OWNER),
            5,
        ),
        finding("ownerless-groups", Severity::Medium, "Finance", None, 4),
        finding(
            "deleted-with-storage",
            Severity::Critical,
            "Old HR",
            Some("bob@contoso.com"),
            7,
        ),
    ]
}

fn summary(findings: &[Finding]) -> ScanSummary {
    let count = |rule: &str| findings.iter().filter(|f| &*f.rule == rule).count() as u64;
    ScanSummary {
        source: "reports/</script>groups.csv".to_owned(),
        stats: ReportStats {
            rows: 9,
            deleted: 1,
            concealed: 0,
            refresh_day: parse_day(b"2026-11-25"),
            period: Some(30),
            ..ReportStats::default()
        },
        row_errors: 1,
        findings: findings.len() as u64,
        rule_errors: 0,
        per_rule: [
            "deleted-with-storage",
            "inactive-groups",
            "ownerless-groups",
        ]
        .into_iter()
        .map(|id| {
            let counts = RuleCounts {
                findings: count(id),
                errors: 0,
            };
            (Arc::from(id), counts)
        })
        .collect(),
        rule_texts: Default::default(),
        elapsed: Duration::from_millis(120),
    }
}

fn context() -> HtmlContext {
    let rule = |id: &str, title: &str| RuleInfo {
        id: id.to_owned(),
        title: title.to_owned(),
        description: format!("What `{id}` looks for <in> rows."),
    };
    HtmlContext {
        generated_at: "2026-11-26T07:30:00Z".parse().unwrap(),
        rules: vec![
            rule(
                "deleted-with-storage",
                "Deleted groups still holding storage",
            ),
            rule("inactive-groups", "Inactive groups"),
            rule("ownerless-groups", "Ownerless groups"),
        ],
        inactivity_days: Some(90),
        tenant: None,
    }
}

fn stats() -> HtmlStats {
    let mut stats = HtmlStats::default();
    for days in [Some(2), Some(40), Some(95), Some(400), None] {
        stats.activity.add(days);
    }
    stats.deleted_groups = 1;
    stats.deleted_storage_bytes = 1_500_000;
    stats
        .top_external
        .offer(12, 5, || super::stats::ExternalGroup {
            name: HOSTILE_NAME.to_owned(),
            external: 12,
            members: Some(20),
            line: 5,
        });
    stats
}

fn lifecycle() -> Lifecycle {
    let mut lifecycle = Lifecycle::default();
    let statuses = [
        ("inactive-groups:id-3", Status::Open, Some(date(2026, 9, 1))),
        (
            "inactive-groups:id-5",
            Status::New,
            Some(date(2026, 11, 25)),
        ),
        (
            "ownerless-groups:id-4",
            Status::Reopened,
            Some(date(2026, 6, 2)),
        ),
        ("deleted-with-storage:id-7", Status::Exempted, None),
    ];
    for (key, status, first_seen) in statuses {
        lifecycle
            .findings
            .insert(key.to_owned(), FindingLifecycle { status, first_seen });
    }
    lifecycle.resolved.push(ResolvedFinding {
        rule: "ownerless-groups".to_owned(),
        key: "ownerless-groups:id-9".to_owned(),
        group_name: Some("Projects".to_owned()),
        first_seen: Some(date(2026, 10, 1)),
    });
    let exemption = |group: &str, expires| Exemption {
        rule: Some("inactive-groups".to_owned()),
        group: group.to_owned(),
        reason: Some("Seasonal team".to_owned()),
        granted_by: Some("it@contoso.com".to_owned()),
        expires,
    };
    lifecycle.exemptions = vec![
        exemption("Summer Camp", None),
        exemption("Audit 2026", Some(date(2026, 12, 3))),
        exemption(HOSTILE_NAME, Some(date(2027, 6, 30))),
    ];
    lifecycle
}

fn page(lifecycle: Option<&Lifecycle>) -> String {
    let findings = findings();
    render(
        &summary(&findings),
        &findings,
        &stats(),
        &context(),
        lifecycle,
    )
}

fn render(
    summary: &ScanSummary,
    findings: &[Finding],
    stats: &HtmlStats,
    context: &HtmlContext,
    lifecycle: Option<&Lifecycle>,
) -> String {
    render_with_list(summary, findings, stats, context, lifecycle, None)
}

/// As `HtmlWriter` does: the lifecycle known before the findings arrive.
fn render_with_list(
    summary: &ScanSummary,
    findings: &[Finding],
    stats: &HtmlStats,
    context: &HtmlContext,
    lifecycle: Option<&Lifecycle>,
    full_list: Option<&str>,
) -> String {
    let mut collected = Collected::new(kept_per_rule(context.rules.len()));
    for finding in findings {
        collected.add(finding, None, lifecycle);
    }
    let view = ReportView::build(summary, &collected, stats, context, lifecycle, full_list);
    let mut page = Vec::new();
    write_page(&view, &sections(&collected, context), lifecycle, &mut page)
        .expect("the templates render");
    String::from_utf8(page).unwrap()
}

/// The page without the bodies of our own style and script (they are
/// checked by the browser test) and the policy that hashes them.
fn outline(html: &str) -> String {
    let mut text = html.replace(
        &content_security_policy()
            .replace('\'', "&#x27;")
            .replace('/', "&#x2f;"),
        "[policy]",
    );
    for (open, close, placeholder) in [
        ("<style>", "</style>", "<style>[style]</style>"),
        ("<script>//", "</script>", "<script>[script]</script>"),
    ] {
        let start = text.find(open).expect("block present");
        let end = start + text[start..].find(close).expect("block closed") + close.len();
        text.replace_range(start..end, placeholder);
    }
    text
}

#[test]
fn page_without_state() {
    insta::assert_snapshot!(outline(&page(None)));
}

#[test]
fn page_with_state() {
    insta::assert_snapshot!(outline(&page(Some(&lifecycle()))));
}

#[test]
fn report_text_cannot_become_markup_anywhere() {
    for html in [page(None), page(Some(&lifecycle()))] {
        assert!(
            !html.contains("<script>alert"),
            "group name became a script"
        );
        assert!(!html.contains("<img"), "owner became an element");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"));
        // In attributes (data-value) quotes are escaped too.
        assert!(html.contains("data-value=\"&lt;script&gt;alert(1)"));
        assert!(html.contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"));
        // Ours: the embedded findings, the JSON summary and the script.
        // The source's `</script>` stays inside the JSON as an escape.
        assert_eq!(html.matches("<script").count(), 3);
        assert_eq!(html.matches("</script>").count(), 3);
        assert!(html.contains(r"\u003cscript\u003ealert(1)\u003c/script\u003e"));
        assert!(html.contains(r"reports/\u003c/script\u003egroups.csv"));
    }
}

#[test]
fn the_page_loads_nothing_from_anywhere() {
    let html = page(Some(&lifecycle()));
    for needle in [
        "http://", "https://", "<link", "@import", " src=\"", "<iframe", "<img",
    ] {
        assert!(!html.contains(needle), "found {needle:?}");
    }
    assert_eq!(html.matches("url(").count(), html.matches("url(#").count());
    assert!(content_security_policy().starts_with("default-src 'none';"));
}

#[test]
fn the_policy_hashes_exactly_what_is_inlined() {
    let html = page(None);
    let inlined = |open: &str, close: &str| {
        let start = html.find(open).unwrap() + open.len();
        html[start..start + html[start..].find(close).unwrap()].to_owned()
    };
    let script = inlined("<script>//", "</script>");
    let script = format!("//{script}");
    let style = inlined("<style>", "</style>");
    let policy = content_security_policy();
    assert!(policy.contains(&super::render::sha256_source(&script)));
    assert!(policy.contains(&super::render::sha256_source(&style)));
}

#[test]
fn counts_shown_equal_the_findings() {
    let html = page(None);
    assert_eq!(html.matches("<tr class=\"finding ").count(), 4);
    assert!(html.contains("<span class=\"count\" id=\"findings-total\">4</span>"));
    assert!(html.contains(
        "<span id=\"shown-count\">4</span> of the <span id=\"kept-count\">4</span> findings on this page match"
    ));
    assert!(
        !html.contains("id=\"full-list-note\""),
        "nothing left out, no list named"
    );
    let severity_count = |key: &str| {
        let marker = format!("data-severity=\"{key}\"><span class=\"count\">");
        let start = html.find(&marker).unwrap() + marker.len();
        html[start..start + html[start..].find('<').unwrap()].to_owned()
    };
    assert_eq!(severity_count("critical"), "1");
    assert_eq!(severity_count("high"), "1");
    assert_eq!(severity_count("medium"), "2");
    assert_eq!(severity_count("low"), "0");
}

#[test]
fn rules_are_listed_most_severe_first_and_rows_too() {
    let html = page(None);
    let position = |needle: &str| {
        html.find(needle)
            .unwrap_or_else(|| panic!("{needle} missing"))
    };
    assert!(position("id=\"rule-deleted-with-storage\"") < position("id=\"rule-inactive-groups\""));
    assert!(position("id=\"rule-inactive-groups\"") < position("id=\"rule-ownerless-groups\""));
    // Within inactive-groups: the high one (line 5) before the medium (line 3).
    assert!(
        position("data-key=\"inactive-groups:id-5\"")
            < position("data-key=\"inactive-groups:id-3\"")
    );
}

#[test]
fn status_and_exemptions_appear_only_with_the_state_store() {
    let plain = page(None);
    for absent in [
        "By status",
        ">Status</th>",
        ">First seen</th>",
        "id=\"exemptions\"",
        "id=\"resolved\"",
    ] {
        assert!(!plain.contains(absent), "{absent} without state");
    }
    let with_state = page(Some(&lifecycle()));
    for present in [
        "By status",
        ">Status</th>",
        ">First seen</th>",
        "id=\"exemptions\"",
        "id=\"resolved\"",
    ] {
        assert!(with_state.contains(present), "{present} missing with state");
    }
    assert!(with_state.contains("data-status=\"resolved\"><span class=\"count\">1</span>"));
    assert!(with_state.contains("data-status=\"exempted\"><span class=\"count\">1</span>"));
    // 7 days before 2026-12-03, counted from the scan day 2026-11-26.
    assert!(with_state.contains("expires in 7 days"));
    assert_eq!(
        with_state.matches("class=\"exemption expiring\"").count(),
        1
    );
}

#[test]
fn the_inactivity_threshold_is_marked_only_when_the_rule_runs() {
    assert!(page(None).contains("inactive: 90+ days"));
    let findings = findings();
    let mut context = context();
    context.inactivity_days = None;
    let html = render(&summary(&findings), &findings, &stats(), &context, None);
    assert!(!html.contains("id=\"threshold\""));
}

#[test]
fn concealed_reports_and_empty_scans_say_so() {
    let mut summary = summary(&[]);
    summary.stats.concealed = 9;
    let html = render(&summary, &[], &HtmlStats::default(), &context(), None);
    assert!(html.contains("id=\"concealed-warning\""));
    assert!(html.contains("In 9 of 10 rows"));
    assert!(html.contains("id=\"no-findings\""));
    assert!(html.contains("No group has external members."));
}

/// Many findings of one rule, every fifth `high`, named with markup.
fn many_findings(count: u64) -> Vec<Finding> {
    (0..count)
        .map(|line| {
            let severity = if line % 5 == 0 {
                Severity::High
            } else {
                Severity::Low
            };
            let name = format!("</script><b>group {line}</b>");
            finding(
                "inactive-groups",
                severity,
                &name,
                Some("ann@contoso.com"),
                line,
            )
        })
        .collect()
}

#[test]
fn a_big_report_keeps_the_most_severe_counts_all_and_says_where_the_rest_are() {
    let findings = many_findings(60_000);
    let mut context = context();
    context.rules.truncate(2);
    let html = render_with_list(
        &summary(&findings),
        &findings,
        &stats(),
        &context,
        None,
        Some("report.findings.csv"),
    );
    let kept = kept_per_rule(2);
    assert_eq!(kept, KEPT_FINDINGS / 2);
    // Exact counts; the HTML rows are the first few, the JSON holds the kept.
    assert!(html.contains("<span class=\"count\" id=\"findings-total\">60000</span>"));
    assert!(html.contains(&format!(
        "<span id=\"kept-count\">{kept}</span> findings on this page match (<span id=\"total-count\">60000</span> in all)"
    )));
    assert!(html.contains(&format!(
        "This page holds the most severe findings of each rule: {kept} of 60000."
    )));
    assert!(
        html.contains("<a href=\"report.findings.csv\" id=\"full-list\">report.findings.csv</a>")
    );
    assert!(html.contains(&format!(
        "The {STATIC_ROWS} most severe of 60000 findings; with JavaScript this page pages through {kept}"
    )));
    assert_eq!(html.matches("<tr class=\"finding ").count(), STATIC_ROWS);
    // The kept are the 12,000 high ones first, in report order.
    assert!(html.contains("data-key=\"inactive-groups:id-0\""));
    assert!(html.contains("data-key=\"inactive-groups:id-5\""));
    assert!(!html.contains("data-key=\"inactive-groups:id-1\""));
    let start = html.find("id=\"groupwarden-findings\">").unwrap();
    let json = &html[start + 26..];
    let json = &json[..json.find("</script>").unwrap()];
    let data: serde_json::Value = serde_json::from_str(json).unwrap();
    let rows = data["rules"][0]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), kept);
    assert_eq!(data["rules"][0]["total"], 60_000);
    assert!(rows.iter().all(|r| r[0] == Severity::High as u8));
    let strings = data["strings"].as_array().unwrap();
    let group = |row: &serde_json::Value| strings[row[1].as_u64().unwrap() as usize].clone();
    assert_eq!(group(&rows[0]), "</script><b>group 0</b>");
    assert_eq!(
        group(&rows[kept - 1]),
        format!("</script><b>group {}</b>", (kept - 1) * 5)
    );
    // Markup in names stays text: escaped in HTML, \u-escaped in JSON.
    assert_eq!(html.matches("<script").count(), 3);
    assert!(!html.contains("<b>group"));
    // About 100 bytes per kept finding: the size does not follow the report.
    assert!(html.len() < 2_000_000, "{} bytes", html.len());
}
