//! `groupwarden scan`: report in, findings out, summary on stderr.

use std::io::Write;

use crate::cli::ScanArgs;
use crate::config::LoadedConfig;
use crate::engine::finding::Severity;
use crate::output::Format;
use crate::report::reader::ReportReader;
use crate::scan::{ScanEvent, ScanOptions, ScanSummary, default_threads, scan};

use super::state::{ScanState, print_changes};
use super::{Error, Outcome, Output, load_rules, open_output};

/// Row errors and rule failures shown before the rest are only counted.
const ROW_ERRORS_SHOWN: u64 = 100;
const RULE_ERRORS_SHOWN_PER_RULE: u64 = 10;

pub fn run(args: ScanArgs) -> Result<Outcome, Error> {
    let loaded = LoadedConfig::load(args.config.as_deref())?;
    let (engine, rules) = load_rules(args.rules.as_deref(), &loaded)?;
    // Channels are checked before anything is read: a broken template
    // must not surface only after the scan is recorded.
    let channels = crate::notify::validate(&loaded).map_err(super::notify::NotifyError::from)?;
    let (input, source_name) = super::fetch::open_report(
        args.input.as_deref(),
        &args.report,
        args.save_report.as_deref(),
        &loaded,
    )?;
    let mut state = ScanState::begin(&args, &loaded, &rules, &source_name)?;
    let input = state.check_report_start(input, &source_name)?;
    let Output {
        out,
        format,
        file: output_file,
    } = open_output(args.output.as_deref(), args.format)?;
    let (input, mut writer) = crate::output::scan_writer(format, out, input, &rules);
    let reader = ReportReader::new(input, &source_name)
        .map_err(crate::scan::ScanError::from)
        .inspect_err(|error| state.fail(&error.to_string()))?;
    let options = ScanOptions {
        threads: args.tuning.threads.unwrap_or_else(default_threads).max(1),
        strict: args.tuning.strict,
        fast_path: !args.tuning.no_fast_path,
        // Resolving findings needs to know every group that was evaluated.
        track_groups: state.is_recording(),
        // With statuses, a finding's line is only known once the state
        // store has seen it, so workers cannot render it.
        render: writer.render().filter(|_| !state.is_recording()),
        // Tenant rules and the HTML page read the whole-report figures.
        full_stats: format == Format::Html || rules.enabled().any(|r| r.tenant_arity.is_some()),
    };

    let mut worst: Option<Severity> = None;
    let mut shown = ErrorDisplay::default();
    let scanned = scan(reader, &engine, &rules, &options, &mut |event| {
        match event {
            ScanEvent::Row(outcome) => {
                state.write_row(outcome, &mut *writer, &mut worst)?;
                for failure in &outcome.failures {
                    shown.rule_failure(failure);
                }
            }
            ScanEvent::RowError(error) => shown.row_error(&source_name, error),
            ScanEvent::Rendered {
                bytes,
                worst: rendered,
            } => {
                worst = worst.max(rendered);
                writer.write_rendered(bytes).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    });
    let mut summary = scanned.inspect_err(|error| state.fail(&error.to_string()))?;
    run_tenant_rules(
        &engine,
        &rules,
        &mut summary,
        &mut |finding| {
            worst = worst.max(Some(finding.severity));
            writer.write(finding)
        },
        &mut shown,
    )?;
    let recorded = state.finish(&summary, &mut *writer, &channels)?;
    writer.finish(&summary)?;
    if let Some(output_file) = output_file {
        output_file.commit()?;
    }
    print_summary(&summary, &mut std::io::stderr().lock())?;
    if let Some((store, changes)) = &recorded {
        print_changes(store.path(), changes, &mut std::io::stderr().lock())?;
        if !channels.is_empty() {
            super::announce::deliver_outbox(store, &channels, &loaded)?;
        }
    } else if !channels.is_empty() {
        tracing::info!(
            "--no-state: nothing is announced (notifications tell what changed since the last scan)"
        );
    }

    let failing = args
        .fail_on
        .is_some_and(|threshold| worst.is_some_and(|w| w >= threshold));
    Ok(if failing {
        Outcome::Failing
    } else {
        Outcome::Clean
    })
}

/// Runs the tenant rules over the whole-report figures, after the last
/// row; their findings go to the same writer and count in the summary.
fn run_tenant_rules(
    engine: &rhai::Engine,
    rules: &crate::engine::rule::RuleSet,
    summary: &mut ScanSummary,
    write: &mut dyn FnMut(&crate::engine::finding::Finding) -> std::io::Result<()>,
    shown: &mut ErrorDisplay,
) -> Result<(), Error> {
    let tenant_summary =
        crate::engine::tenant::Summary::new(summary.stats.clone(), summary.row_errors);
    let outcome = crate::engine::tenant::evaluate(engine, rules.enabled(), &tenant_summary);
    for finding in &outcome.findings {
        write(finding)?;
        summary.findings += 1;
        if let Some((_, counts)) = summary
            .per_rule
            .iter_mut()
            .find(|(id, _)| *id == finding.rule)
        {
            counts.findings += 1;
        }
    }
    for failure in &outcome.failures {
        shown.rule_failure(failure);
        summary.rule_errors += 1;
        if let Some((_, counts)) = summary
            .per_rule
            .iter_mut()
            .find(|(id, _)| *id == failure.rule)
        {
            counts.errors += 1;
        }
    }
    Ok(())
}

/// Shows the first errors in full and counts the rest, so a broken
/// report cannot flood the terminal.
#[derive(Default)]
struct ErrorDisplay {
    row_errors: u64,
    rule_errors: std::collections::HashMap<std::sync::Arc<str>, u64>,
}

impl ErrorDisplay {
    fn row_error(&mut self, source: &str, error: &crate::report::row::RowError) {
        self.row_errors += 1;
        if self.row_errors <= ROW_ERRORS_SHOWN {
            tracing::warn!("{source}, {error}; row skipped");
        } else if self.row_errors == ROW_ERRORS_SHOWN + 1 {
            tracing::warn!("{source}: more row errors; only their count is shown in the summary");
        }
    }

    fn rule_failure(&mut self, failure: &crate::engine::eval::RuleFailure) {
        let count = self.rule_errors.entry(failure.rule.clone()).or_default();
        *count += 1;
        if *count <= RULE_ERRORS_SHOWN_PER_RULE {
            tracing::warn!("{failure}");
        } else if *count == RULE_ERRORS_SHOWN_PER_RULE + 1 {
            tracing::warn!(
                "rule `{}` failed on more rows; only the count is shown in the summary",
                failure.rule
            );
        }
    }
}

/// Advice for a report whose names are concealed.
pub const CONCEALED_ADVICE: &str = "the report conceals user, group and site names (names are 32-character hashes, group ids all zeros): \
findings are keyed by the hashed names and cannot name the groups. To see real names, a Global Administrator turns off \
\"Display concealed user, group, and site names in all reports\" in the Microsoft 365 admin center under \
Settings > Org settings > Services > Reports.";

/// The human summary on stderr.
pub fn print_summary(summary: &ScanSummary, out: &mut dyn Write) -> std::io::Result<()> {
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
