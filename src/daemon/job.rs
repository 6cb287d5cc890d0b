//! One scheduled scan: the scan pipeline ([`crate::pipeline::scan()`]) run
//! on its own thread with the pinned config and rules, the same plan
//! `groupwarden scan` builds, so a scheduled scan does exactly what the CLI
//! does (recording findings, delivering the outbox). The figures for the
//! log line and the metrics come from the scan's outcome.
//!
//! The scan runs on a plain thread rather than the async runtime's
//! blocking pool: it may start runtimes of its own (email delivery does),
//! and the daemon must be able to exit without waiting for it when the
//! grace period runs out.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::output::Format;
use crate::pipeline::input::ReportInput;
use crate::pipeline::{OutputPlan, ScanOutcome, ScanPlan};
use crate::scan::ScanSummary;
use crate::state::recording::RecordingPlan;

use super::pinned::Pinned;

/// Why a scan started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// `run_on_start`.
    Start,
    /// A scheduled time.
    Schedule,
    /// `retry_after` after a failed scan.
    Retry,
}

impl Trigger {
    /// The trigger as logs and `/healthz` name it (`schedule`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::Schedule => "schedule",
            Trigger::Retry => "retry",
        }
    }
}

/// The figures of a completed scan.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub(crate) struct ScanFigures {
    /// The report's name: its path, `<stdin>`, or `Microsoft Graph report (…)`.
    pub source: String,
    /// The report's refresh date (`YYYY-MM-DD`); `None` when no row gave one.
    pub report_refresh_date: Option<String>,
    /// The report period in days; `None` when no row gave one.
    pub report_period: Option<i64>,
    /// Rows read, bad ones included.
    pub rows: u64,
    /// Rows that could not be read or parsed.
    pub row_errors: u64,
    /// Findings in the report.
    pub findings: u64,
    /// Times a rule failed on a row.
    pub rule_errors: u64,
    /// Rows whose group names or ids are concealed in the report.
    pub concealed_rows: u64,
    /// Findings and errors per enabled rule, by rule id.
    pub rules: BTreeMap<String, RuleFigures>,
    /// The findings the state database recorded for the scan, by rule id
    /// and status; `None` when the scan was not recorded or its counts
    /// could not be read.
    /// (Behind an `Arc`: figures travel in the service loop's messages,
    /// which stay small.)
    #[serde(skip)]
    pub by_status: Option<Arc<BTreeMap<String, crate::state::trend::TrendCounts>>>,
}

/// One rule's figures in a completed scan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub(crate) struct RuleFigures {
    /// Findings the rule made.
    pub findings: u64,
    /// Rows the rule failed on.
    pub errors: u64,
}

impl ScanFigures {
    /// The figures of `summary`: what the JSON formats write as the
    /// document's `summary` (one definition of the figures for both).
    pub(crate) fn of(summary: &ScanSummary) -> ScanFigures {
        let view = crate::output::SummaryView::new(summary);
        serde_json::to_value(view)
            .and_then(serde_json::from_value)
            .unwrap_or_default()
    }

    /// The figures of the tenants' scans that completed, added up.
    pub(crate) fn sum(tenants: &[TenantScan]) -> ScanFigures {
        let mut sum = ScanFigures {
            source: format!("{} tenants", tenants.len()),
            ..ScanFigures::default()
        };
        for figures in tenants.iter().filter_map(|t| t.result.as_ref().ok()) {
            sum.rows += figures.rows;
            sum.row_errors += figures.row_errors;
            sum.findings += figures.findings;
            sum.rule_errors += figures.rule_errors;
            sum.concealed_rows += figures.concealed_rows;
            sum.report_refresh_date = sum
                .report_refresh_date
                .max(figures.report_refresh_date.clone());
            sum.report_period = sum.report_period.or(figures.report_period);
            for (rule, counts) in &figures.rules {
                let total = sum.rules.entry(rule.clone()).or_default();
                total.findings += counts.findings;
                total.errors += counts.errors;
            }
        }
        sum
    }

    /// `rule=count` pairs for a log field.
    pub(crate) fn findings_by_rule(&self) -> String {
        self.rules
            .iter()
            .map(|(id, figures)| format!("{id}={}", figures.findings))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A scan that ended, well or not.
#[derive(Clone, Debug)]
pub(crate) struct FinishedScan {
    /// Why the scan started.
    pub trigger: Trigger,
    /// When it started.
    pub started: Timestamp,
    /// When it ended.
    pub finished: Timestamp,
    /// How long it ran.
    pub duration: Duration,
    /// The figures, or the error as `scan` would print it.
    pub result: Result<ScanFigures, String>,
    /// Notifications this scan's run could not deliver (they stay in
    /// the outbox for the next run).
    pub undelivered: u64,
    /// With `[[tenants]]`: each tenant's scan (`result` then sums those
    /// that completed, or names those that failed).
    pub tenants: Vec<TenantScan>,
}

/// One tenant's part of a scheduled run over `[[tenants]]`.
#[derive(Clone, Debug)]
pub(crate) struct TenantScan {
    /// The tenant's name.
    pub name: String,
    /// Its figures, or its error.
    pub result: Result<ScanFigures, String>,
}

/// Everything one scan needs.
#[derive(Clone, Debug)]
pub(crate) struct ScanJob {
    /// The config and rules generation the scan runs with.
    pub pinned: Arc<Pinned>,
    /// Where to leave the findings document, or `None` to discard it.
    pub output: Option<PathBuf>,
    /// Folder to keep each downloaded report CSV in (`[schedule] save_report`);
    /// `None`: keep none.
    pub save_report: Option<PathBuf>,
}

impl ScanJob {
    /// The job for `pinned`'s `[schedule]`.
    pub(crate) fn new(pinned: Arc<Pinned>) -> ScanJob {
        let schedule = pinned.schedule();
        let output = schedule.output.as_deref().map(|o| pinned.loaded.resolve(o));
        let save_report = schedule
            .save_report
            .as_deref()
            .map(|d| pinned.loaded.resolve(d));
        ScanJob {
            pinned,
            output,
            save_report,
        }
    }

    /// Starts the scan on its own thread; the receiver gets the result.
    pub(crate) fn spawn(
        self,
        trigger: Trigger,
    ) -> std::io::Result<oneshot::Receiver<FinishedScan>> {
        let (sender, receiver) = oneshot::channel();
        std::thread::Builder::new()
            .name("scan".into())
            .spawn(move || {
                let started = Timestamp::now();
                let clock = Instant::now();
                let (result, undelivered, tenants) = match self.tenants() {
                    Some(names) => self.run_tenants(&names),
                    None => {
                        let (result, undelivered) = self.run();
                        (result, undelivered, Vec::new())
                    }
                };
                let _ = sender.send(FinishedScan {
                    trigger,
                    started,
                    finished: Timestamp::now(),
                    duration: clock.elapsed(),
                    result,
                    undelivered,
                    tenants,
                });
            })?;
        Ok(receiver)
    }

    /// The plan of this job's scans: the pinned config and rules, the
    /// findings as a JSON document (a file that is replaced only when the
    /// scan completes), recorded in the configured state database.
    pub(crate) fn plan(&self) -> ScanPlan {
        ScanPlan {
            config: Some(self.pinned.config_copy.clone()),
            rules_dir: Some(self.pinned.rules_copy.clone()),
            input: ReportInput {
                save_dir: self.save_report.clone(),
                ..ReportInput::default()
            },
            output: match &self.output {
                Some(path) => OutputPlan {
                    path: Some(path.clone()),
                    format: Some(Format::Json),
                    discard: false,
                    raw_csv: false,
                },
                None => OutputPlan {
                    discard: true,
                    ..OutputPlan::default()
                },
            },
            record: Some(RecordingPlan::default()),
            tuning: Default::default(),
            read_state: None,
            preview: false,
            tenant: None,
        }
    }

    /// The pinned config's `[[tenants]]`, all of them; `None` without.
    fn tenants(&self) -> Option<Vec<String>> {
        let config = &self.pinned.loaded.config;
        (!config.tenants.is_empty())
            .then(|| config.tenants.iter().map(|t| t.name.clone()).collect())
    }

    /// Scans every tenant, `[tenants_defaults] concurrency` at a time,
    /// each into its own state file and findings document (`[schedule]
    /// output` placed per tenant as state files are). One tenant's
    /// failure fails the run (naming it) but not the others' scans.
    fn run_tenants(&self, names: &[String]) -> (Result<ScanFigures, String>, u64, Vec<TenantScan>) {
        let concurrency = self.pinned.loaded.config.tenants_defaults.concurrency;
        let results = crate::tenants::fan_out(names, concurrency, &|name| {
            let mut plan = self.plan();
            plan.tenant = Some(name.to_owned());
            if let Some(path) = &plan.output.path {
                plan.output.path = Some(crate::tenants::tenant_file(path, name));
            }
            self.run_plan(&plan)
        });
        let mut undelivered = 0;
        let mut tenants = Vec::new();
        for (name, result) in names.iter().zip(results) {
            let result = match result {
                Ok((result, lost)) => {
                    undelivered += lost;
                    result
                }
                Err(_) => Err("the scan stopped unexpectedly (a panic)".to_owned()),
            };
            if let Err(error) = &result {
                tracing::error!(tenant = %name, "tenant {name}: {error}");
            }
            tenants.push(TenantScan {
                name: name.clone(),
                result,
            });
        }
        let failed: Vec<&str> = tenants
            .iter()
            .filter(|t| t.result.is_err())
            .map(|t| t.name.as_str())
            .collect();
        let result = match failed.is_empty() {
            true => Ok(ScanFigures::sum(&tenants)),
            false => Err(format!(
                "{} of {} tenants failed: {}",
                failed.len(),
                tenants.len(),
                failed.join(", ")
            )),
        };
        (result, undelivered, tenants)
    }

    /// Runs the scan and delivers its outbox: the figures (or why it
    /// failed) and how many notifications were not delivered.
    pub(crate) fn run(&self) -> (Result<ScanFigures, String>, u64) {
        self.run_plan(&self.plan())
    }

    fn run_plan(&self, plan: &ScanPlan) -> (Result<ScanFigures, String>, u64) {
        let mut outcome = match crate::pipeline::scan(plan) {
            Ok(outcome) => outcome,
            Err(error) => return (Err(error.to_string()), 0),
        };
        let mut figures = ScanFigures::of(&outcome.summary);
        if let Some(recorded) = &outcome.recorded {
            figures.by_status = recorded_counts(&recorded.path, recorded.changes.scan_id);
        }
        match deliver(&mut outcome) {
            Ok(()) => (Ok(figures), 0),
            Err((message, undelivered)) => (Err(message), undelivered),
        }
    }
}

/// The counts the state database recorded for scan `scan`, by rule (for
/// `/metrics`); a failure to read them is logged, not fatal to the scan.
fn recorded_counts(
    path: &std::path::Path,
    scan: i64,
) -> Option<Arc<BTreeMap<String, crate::state::trend::TrendCounts>>> {
    let counts = crate::state::Store::open_read_only(
        path,
        &crate::state::store::StoreOptions {
            lock_timeout: Duration::from_secs(10),
            create: false,
        },
    )
    .and_then(|store| store.scan_counts(scan));
    match counts {
        Ok(counts) => counts.map(|trend| Arc::new(trend.rules)),
        Err(error) => {
            tracing::warn!("cannot read the counts of scan {scan} for /metrics: {error}");
            None
        }
    }
}

/// Delivers the outbox; a message not delivered fails the scan, as it
/// fails `groupwarden scan`, and is counted.
fn deliver(outcome: &mut ScanOutcome) -> Result<(), (String, u64)> {
    match outcome.deliver() {
        Ok(Some(deliveries)) if deliveries.failed > 0 => {
            let failed = deliveries.failed as u64;
            let error = deliveries.into_result().err().map(|e| e.to_string());
            Err((error.unwrap_or_default(), failed))
        }
        Ok(_) => Ok(()),
        Err(error) => Err((error.to_string(), 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::RuleCounts;

    #[test]
    fn the_figures_are_those_of_the_scan_summary() {
        let summary = ScanSummary {
            source: "report.csv".into(),
            stats: Default::default(),
            row_errors: 2,
            findings: 0,
            rule_errors: 1,
            per_rule: vec![(
                Arc::from("empty-groups"),
                RuleCounts {
                    findings: 4,
                    errors: 1,
                },
            )],
            rule_texts: Default::default(),
            elapsed: Duration::from_millis(5),
        };
        let figures = ScanFigures::of(&summary);
        assert_eq!(figures.source, "report.csv");
        assert_eq!(figures.row_errors, 2);
        assert_eq!(figures.rows, 2);
        assert_eq!(
            figures.rules["empty-groups"],
            RuleFigures {
                findings: 4,
                errors: 1
            }
        );
        assert_eq!(figures.findings_by_rule(), "empty-groups=4");
    }
}
