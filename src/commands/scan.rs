//! `groupwarden scan`: report in, findings out, summary on stderr.

use std::io::Write;
use std::path::Path;

use crate::cli::ScanArgs;
use crate::pipeline::{OutputPlan, ScanOutcome, ScanPlan, Tuning};
use crate::scan::ScanSummary;
use crate::state::Changes;
use crate::state::recording::RecordingPlan;

use super::{Error, Outcome, report_input};

/// Runs `groupwarden scan`.
pub(crate) fn run(args: ScanArgs) -> Result<Outcome, Error> {
    let fail_on = args.fail_on;
    let mut outcome = crate::pipeline::scan(&plan(args))?;
    finish(&mut outcome, fail_on)
}

/// The plan `scan`'s arguments describe.
pub(crate) fn plan(args: ScanArgs) -> ScanPlan {
    ScanPlan {
        config: args.config,
        rules_dir: args.rules,
        input: report_input(args.input, &args.report, args.save_report, &args.tuning),
        output: OutputPlan {
            path: args.output,
            format: args.format,
            discard: false,
            raw_csv: args.raw_csv,
        },
        record: (!args.no_state).then_some(RecordingPlan {
            path: args.state,
            allow_older: args.allow_older,
        }),
        tuning: tuning(&args.tuning),
        read_state: None,
        preview: false,
    }
}

/// `--threads`, `--strict`, `--no-fast-path`.
pub(crate) fn tuning(args: &crate::cli::ScanTuning) -> Tuning {
    Tuning {
        threads: args.threads,
        strict: args.strict,
        fast_path: !args.no_fast_path,
    }
}

/// Prints the summary and what changed, delivers the outbox, and says
/// how the scan ends: exit 1 for a finding at or above `fail_on`, an
/// error when a message was not delivered.
pub(crate) fn finish(
    outcome: &mut ScanOutcome,
    fail_on: Option<crate::engine::finding::Severity>,
) -> Result<Outcome, Error> {
    report_summary(outcome)?;
    if let Some(deliveries) = outcome.deliver()? {
        deliveries.into_result()?;
    }
    let worst = outcome.worst;
    let failing = fail_on.is_some_and(|threshold| worst.is_some_and(|w| w >= threshold));
    Ok(if failing {
        Outcome::Failing
    } else {
        Outcome::Clean
    })
}

/// The summary on stderr: a table for people, or with `--log-format
/// json` one structured event, so stderr carries only JSON lines.
fn report_summary(outcome: &ScanOutcome) -> std::io::Result<()> {
    if super::log_format() == crate::cli::LogFormat::Json {
        summary_event(outcome);
        return Ok(());
    }
    print_summary(&outcome.summary, &mut std::io::stderr().lock())?;
    if let Some(recorded) = &outcome.recorded {
        print_changes(
            &recorded.path,
            &recorded.changes,
            &mut std::io::stderr().lock(),
        )?;
    }
    Ok(())
}

/// The summary as one `scan finished` event with its figures as fields.
fn summary_event(outcome: &ScanOutcome) {
    let summary = &outcome.summary;
    if summary.stats.concealed > 0 {
        tracing::warn!(rows = summary.stats.concealed, "{CONCEALED_ADVICE}");
    }
    let per_rule =
        serde_json::to_string(&crate::output::SummaryView::new(summary).rules).unwrap_or_default();
    let changes = outcome.recorded.as_ref().map(|r| &r.changes.counts);
    tracing::info!(
        source = %summary.source,
        refresh_date = summary.stats.refresh_date(),
        period = summary.stats.period,
        rows = summary.rows_read(),
        row_errors = summary.row_errors,
        findings = summary.findings,
        rule_errors = summary.rule_errors,
        elapsed_ms = summary.elapsed.as_millis() as u64,
        rules = %per_rule,
        state = outcome.recorded.as_ref().map(|r| r.path.display().to_string()),
        new = changes.map(|c| c.new),
        open = changes.map(|c| c.open),
        reopened = changes.map(|c| c.reopened),
        resolved = changes.map(|c| c.resolved),
        exempted = changes.map(|c| c.exempted),
        "scan finished"
    );
}

/// The summary's last lines: findings by status.
pub(crate) fn print_changes(
    path: &Path,
    changes: &Changes,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "state {} (scan {}): {}",
        path.display(),
        changes.scan_id,
        changes.counts
    )?;
    for exemption in &changes.expiring_exemptions {
        writeln!(
            out,
            "  exemption expiring in {} days ({}): rule {} on {} — {}",
            exemption.days_left,
            exemption.origin,
            exemption.rule,
            exemption
                .group_id
                .as_deref()
                .or(exemption.group_name.as_deref())
                .unwrap_or("?"),
            exemption.reason
        )?;
    }
    Ok(())
}

/// Advice for a report whose names are concealed.
pub(crate) const CONCEALED_ADVICE: &str = "the report conceals user, group and site names (names are 32-character hashes, group ids all zeros): \
findings are keyed by the hashed names and cannot name the groups. To see real names, a Global Administrator turns off \
\"Display concealed user, group, and site names in all reports\" in the Microsoft 365 admin center under \
Settings > Org settings > Services > Reports.";

/// The human summary on stderr.
pub(crate) fn print_summary(summary: &ScanSummary, out: &mut dyn Write) -> std::io::Result<()> {
    if summary.stats.concealed > 0 {
        tracing::warn!(rows = summary.stats.concealed, "{CONCEALED_ADVICE}");
    }
    let refresh = summary
        .stats
        .refresh_date()
        .map(|d| format!(", refreshed {d}"))
        .unwrap_or_default();
    let period = summary
        .stats
        .period
        .map(|p| format!(", period {p} days"))
        .unwrap_or_default();
    writeln!(
        out,
        "scanned {}{refresh}{period}: {} rows read, {} row errors, {} findings, {} rule errors in {:.2}s",
        summary.source,
        summary.rows_read(),
        summary.row_errors,
        summary.findings,
        summary.rule_errors,
        summary.elapsed.as_secs_f64()
    )?;
    let width = summary
        .per_rule
        .iter()
        .map(|(id, _)| id.len())
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(
        out,
        "  {:width$}  {:>8}  {:>6}",
        "rule", "findings", "errors"
    )?;
    for (id, counts) in &summary.per_rule {
        writeln!(
            out,
            "  {:width$}  {:>8}  {:>6}",
            id, counts.findings, counts.errors
        )?;
    }
    tracing::debug!(
        rows = summary.rows_read(),
        row_errors = summary.row_errors,
        findings = summary.findings,
        rule_errors = summary.rule_errors,
        elapsed_ms = summary.elapsed.as_millis() as u64,
        "scan finished"
    );
    Ok(())
}
