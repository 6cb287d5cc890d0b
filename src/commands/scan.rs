//! `groupwarden scan`: report in, findings out, summary on stderr.

use std::io::Write;
use std::path::Path;

use crate::cli::ScanArgs;
use crate::pipeline::{OutputPlan, ScanOutcome, ScanPlan, Tuning};
use crate::scan::ScanSummary;
use crate::state::Changes;
use crate::state::recording::RecordingPlan;

use super::{Error, Outcome, report_input};

/// Runs `groupwarden scan`: the one tenant of `[source]`, or the
/// `[[tenants]]` the flags pick, each scanned on its own.
pub(crate) fn run(args: ScanArgs) -> Result<Outcome, Error> {
    let fail_on = args.fail_on;
    let selection = crate::tenants::Selection {
        names: args.tenants.names.clone(),
        all: args.tenants.all_tenants,
        shard: args.tenants.shard,
    };
    let loaded = crate::config::LoadedConfig::load(args.config.as_deref())?;
    let chosen = crate::tenants::select(&loaded.config, &selection).map_err(Error::Usage)?;
    let concurrency = loaded.config.tenants_defaults.concurrency;
    let Some(tenants) = chosen else {
        let mut outcome = crate::pipeline::scan(&plan(args))?;
        return finish(&mut outcome, fail_on);
    };
    scan_tenants(plan(args), &tenants, concurrency, fail_on)
}

/// Scans each of `tenants` (at most `concurrency` at once) with `base`
/// as the plan of each, its output placed per tenant; prints each
/// tenant's summary as it finishes and delivers its messages. Tenants
/// that failed do not stop the others: the error names them all.
fn scan_tenants(
    base: ScanPlan,
    tenants: &[String],
    concurrency: usize,
    fail_on: Option<crate::engine::finding::Severity>,
) -> Result<Outcome, Error> {
    let outputs = TenantOutputs::new(&base.output, tenants.len())?;
    let printing = std::sync::Mutex::new(());
    let results = crate::tenants::fan_out(tenants, concurrency, &|name| {
        let mut plan = base.clone();
        plan.tenant = Some(name.to_owned());
        plan.output = outputs.plan(name)?;
        let mut outcome = crate::pipeline::scan(&plan)?;
        {
            let _turn = printing.lock().unwrap_or_else(|p| p.into_inner());
            if super::log_format() == crate::cli::LogFormat::Text {
                eprintln!("tenant {name}:");
            }
            outputs.copy_to_stdout(name)?;
            report_summary(&outcome)?;
        }
        if let Some(deliveries) = outcome.deliver()? {
            deliveries.into_result()?;
        }
        let worst = outcome.worst;
        let findings: Vec<(String, u64)> = outcome
            .summary
            .per_rule
            .iter()
            .map(|(rule, counts)| (rule.to_string(), counts.findings))
            .collect();
        let fails = fail_on.is_some_and(|t| worst.is_some_and(|w| w >= t));
        Ok::<_, Error>((fails, findings))
    });
    let mut failing = false;
    let mut failed = Vec::new();
    let mut rows = Vec::new();
    for (name, result) in tenants.iter().zip(results) {
        let (findings, error) = match result {
            Ok(Ok((fails, findings))) => {
                failing |= fails;
                (findings, None)
            }
            Ok(Err(error)) => (Vec::new(), Some(error.to_string())),
            Err(_) => (
                Vec::new(),
                Some("the scan stopped unexpectedly (a panic; see above)".to_owned()),
            ),
        };
        if let Some(error) = &error {
            tracing::error!(tenant = %name, "tenant {name}: {error}");
            failed.push(name.clone());
        }
        rows.push(crate::output::html::overview::TenantRow {
            name: name.clone(),
            page: outputs.file_name(name),
            findings,
            error,
        });
    }
    outputs.write_overview(&rows)?;
    if !failed.is_empty() {
        let others = match failed.len() == tenants.len() {
            true => "",
            false => "; the other tenants' results were kept and announced",
        };
        return Err(Error::Usage(format!(
            "{} of {} tenants failed: {} (each tenant's error is above{others})",
            failed.len(),
            tenants.len(),
            failed.join(", ")
        )));
    }
    Ok(if failing {
        Outcome::Failing
    } else {
        Outcome::Clean
    })
}

/// Where each tenant's findings go: `--output` with `{tenant}` in it, or
/// a folder (one file per tenant), or standard output (each tenant's
/// findings whole, one tenant after another, through a temporary file).
struct TenantOutputs {
    base: crate::pipeline::OutputPlan,
    format: crate::output::Format,
    target: Target,
}

enum Target {
    /// `--output` names the one file (one tenant).
    File,
    /// `--output` with `{tenant}`.
    Template(String),
    /// `--output` a folder: `<folder>/<tenant>.<ext>`.
    Folder(std::path::PathBuf),
    /// Standard output, each tenant's findings first kept here.
    Stdout(tempfile::TempDir),
    /// The findings are written nowhere.
    Discard,
}

impl TenantOutputs {
    fn new(base: &crate::pipeline::OutputPlan, tenants: usize) -> Result<TenantOutputs, Error> {
        use crate::output::Format;
        let by_extension = |path: &Path| match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Format::Json,
            Some("csv") => Format::Csv,
            Some("txt") => Format::Table,
            Some("html" | "htm") => Format::Html,
            _ => Format::Jsonl,
        };
        let (target, default) = match &base.path {
            _ if base.discard => (Target::Discard, Format::Jsonl),
            None => {
                let dir = tempfile::tempdir().map_err(Error::Output)?;
                let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
                let default = if terminal {
                    Format::Table
                } else {
                    Format::Jsonl
                };
                (Target::Stdout(dir), default)
            }
            Some(path) if path.to_string_lossy().contains("{tenant}") => (
                Target::Template(path.to_string_lossy().into_owned()),
                by_extension(path),
            ),
            Some(path) if path.is_dir() || path.to_string_lossy().ends_with('/') => {
                std::fs::create_dir_all(path).map_err(|error| Error::File {
                    path: path.clone(),
                    error,
                })?;
                (Target::Folder(path.clone()), Format::Jsonl)
            }
            Some(path) if tenants == 1 => (Target::File, by_extension(path)),
            Some(path) => {
                return Err(Error::Usage(format!(
                    "--output {}: several tenants cannot share one file; give a folder (one file per tenant, such as out/) or a name with {{tenant}} in it",
                    path.display()
                )));
            }
        };
        Ok(TenantOutputs {
            base: base.clone(),
            format: base.format.unwrap_or(default),
            target,
        })
    }

    /// The output plan of one tenant's scan (a template's folders made).
    fn plan(&self, tenant: &str) -> Result<crate::pipeline::OutputPlan, Error> {
        let path = match &self.target {
            Target::File | Target::Discard => self.base.path.clone(),
            Target::Template(template) => {
                let path = std::path::PathBuf::from(template.replace("{tenant}", tenant));
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|error| Error::File {
                        path: parent.to_owned(),
                        error,
                    })?;
                }
                Some(path)
            }
            Target::Folder(dir) => Some(dir.join(self.file_name(tenant))),
            Target::Stdout(dir) => Some(dir.path().join(self.file_name(tenant))),
        };
        Ok(crate::pipeline::OutputPlan {
            path,
            format: Some(self.format),
            ..self.base.clone()
        })
    }

    fn file_name(&self, tenant: &str) -> String {
        format!("{tenant}.{}", extension(self.format))
    }

    /// With standard output: the tenant's findings, whole.
    fn copy_to_stdout(&self, tenant: &str) -> Result<(), Error> {
        if let Target::Stdout(dir) = &self.target {
            let path = dir.path().join(self.file_name(tenant));
            let mut file = std::fs::File::open(&path).map_err(|error| Error::File {
                path: path.clone(),
                error,
            })?;
            let mut out = std::io::stdout().lock();
            std::io::copy(&mut file, &mut out)?;
            out.flush()?;
        }
        Ok(())
    }

    /// With HTML pages in a folder: `index.html`, the tenants side by
    /// side (counts per rule, links to each page).
    fn write_overview(
        &self,
        rows: &[crate::output::html::overview::TenantRow],
    ) -> Result<(), Error> {
        let Target::Folder(dir) = &self.target else {
            return Ok(());
        };
        if self.format != crate::output::Format::Html || rows.len() < 2 {
            return Ok(());
        }
        let path = dir.join("index.html");
        crate::output::html::overview::write(&path, rows, jiff::Timestamp::now())
            .map_err(|error| Error::File { path, error })
    }
}

/// The file extension of a format's output.
fn extension(format: crate::output::Format) -> &'static str {
    use crate::output::Format;
    match format {
        Format::Json => "json",
        Format::Jsonl => "jsonl",
        Format::Csv => "csv",
        Format::Table => "txt",
        Format::Html => "html",
    }
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
        tenant: None,
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
