//! What the daemon has done, as `/healthz` and `/metrics` tell it.
//!
//! The scheduler updates one [`Status`] behind a mutex; the HTTP handlers
//! render it. `/metrics` is the Prometheus text format (version 0.0.4),
//! written by hand: a dozen families do not need a metrics library.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::Timestamp;
use serde_json::json;

use super::job::{FinishedScan, ScanFigures, Trigger};

/// The daemon's record of its scans.
#[derive(Debug)]
pub(crate) struct Status {
    /// When the daemon started.
    pub started: Timestamp,
    /// The schedule as written, for `/healthz` (`0 6 * * * (UTC)`).
    pub schedule: String,
    /// Scans that completed.
    pub scans_succeeded: u64,
    /// Scans that failed.
    pub scans_failed: u64,
    /// Scheduled times that came while a scan was still running.
    pub ticks_skipped: u64,
    /// Config reloads that took effect.
    pub reloads_succeeded: u64,
    /// Config reloads refused (the old config stays).
    pub reloads_failed: u64,
    /// Rows read over all completed scans.
    pub rows_total: u64,
    /// Notifications that scans could not deliver.
    pub notify_failures: u64,
    /// When the running scan started, if one runs.
    pub running_since: Option<(Timestamp, Trigger)>,
    /// The last scan that ended, well or not; `None` before the first.
    pub last: Option<FinishedScan>,
    /// The figures of the last scan that completed.
    pub last_figures: Option<ScanFigures>,
    /// When the last successful scan ended; `None` before one.
    pub last_success: Option<Timestamp>,
    /// When the next scan is due; `None` when none is scheduled.
    pub next_scan: Option<Timestamp>,
    /// With `[[tenants]]`: the figures of each tenant's last completed scan.
    pub tenant_figures: BTreeMap<String, ScanFigures>,
    /// With `[[tenants]]`: whether each tenant's last scan completed.
    pub tenant_success: BTreeMap<String, bool>,
}

impl Status {
    /// A fresh record for a daemon that starts now; `schedule` as shown.
    pub(crate) fn new(schedule: String) -> Status {
        Status {
            started: Timestamp::now(),
            schedule,
            scans_succeeded: 0,
            scans_failed: 0,
            ticks_skipped: 0,
            reloads_succeeded: 0,
            reloads_failed: 0,
            rows_total: 0,
            notify_failures: 0,
            running_since: None,
            last: None,
            last_figures: None,
            last_success: None,
            next_scan: None,
            tenant_figures: BTreeMap::new(),
            tenant_success: BTreeMap::new(),
        }
    }

    /// Counts a scan that ended.
    pub(crate) fn record(&mut self, scan: FinishedScan) {
        self.running_since = None;
        self.notify_failures += scan.undelivered;
        for tenant in &scan.tenants {
            self.tenant_success
                .insert(tenant.name.clone(), tenant.result.is_ok());
            if let Ok(figures) = &tenant.result {
                self.tenant_figures
                    .insert(tenant.name.clone(), figures.clone());
            }
        }
        match &scan.result {
            Ok(figures) => {
                self.scans_succeeded += 1;
                self.rows_total += figures.rows;
                self.last_success = Some(scan.finished);
                self.last_figures = Some(figures.clone());
            }
            Err(_) => self.scans_failed += 1,
        }
        self.last = Some(scan);
    }

    /// Healthy unless the last scan failed: a daemon that has not scanned
    /// yet is waiting, not broken.
    pub(crate) fn healthy(&self) -> bool {
        self.last.as_ref().is_none_or(|scan| scan.result.is_ok())
    }

    /// The `/healthz` document.
    pub(crate) fn health_json(&self) -> serde_json::Value {
        let status = match (&self.last, self.healthy()) {
            (None, _) => "waiting",
            (Some(_), true) => "ok",
            (Some(_), false) => "failing",
        };
        let last = self.last.as_ref().map(|scan| {
            let mut last = json!({
                "trigger": scan.trigger.as_str(),
                "started_at": scan.started.to_string(),
                "finished_at": scan.finished.to_string(),
                "duration_seconds": scan.duration.as_secs_f64(),
                "outcome": if scan.result.is_ok() { "success" } else { "failure" },
            });
            match &scan.result {
                Ok(figures) => {
                    last["rows"] = json!(figures.rows);
                    last["findings"] = json!(figures.findings);
                    last["report_refresh_date"] = json!(figures.report_refresh_date);
                }
                Err(error) => last["error"] = json!(error),
            }
            last
        });
        json!({
            "status": status,
            "version": env!("CARGO_PKG_VERSION"),
            "schedule": self.schedule,
            "started_at": self.started.to_string(),
            "scan_running": self.running_since.is_some(),
            "last_scan": last,
            "last_success_at": self.last_success.map(|t| t.to_string()),
            "next_scan_at": self.next_scan.map(|t| t.to_string()),
        })
    }

    /// The `/metrics` page.
    pub(crate) fn prometheus_text(&self) -> String {
        let mut page = Page::default();
        page.family("groupwarden_info", "gauge", "The running groupwarden.");
        page.sample(
            "groupwarden_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
        page.family(
            "groupwarden_start_time_seconds",
            "gauge",
            "When the daemon started, in Unix seconds.",
        );
        page.sample("groupwarden_start_time_seconds", &[], seconds(self.started));
        page.family(
            "groupwarden_scans_total",
            "counter",
            "Scans that ended, by outcome.",
        );
        page.sample(
            "groupwarden_scans_total",
            &[("outcome", "success")],
            self.scans_succeeded as f64,
        );
        page.sample(
            "groupwarden_scans_total",
            &[("outcome", "failure")],
            self.scans_failed as f64,
        );
        page.family(
            "groupwarden_scan_ticks_skipped_total",
            "counter",
            "Scheduled times skipped because a scan was still running.",
        );
        page.sample(
            "groupwarden_scan_ticks_skipped_total",
            &[],
            self.ticks_skipped as f64,
        );
        page.family("groupwarden_scan_running", "gauge", "1 while a scan runs.");
        page.sample(
            "groupwarden_scan_running",
            &[],
            f64::from(u8::from(self.running_since.is_some())),
        );
        page.family(
            "groupwarden_rows_total",
            "counter",
            "Report rows read by completed scans.",
        );
        page.sample("groupwarden_rows_total", &[], self.rows_total as f64);
        page.family(
            "groupwarden_config_reloads_total",
            "counter",
            "SIGHUP reloads, by outcome (a failed one keeps the running configuration).",
        );
        page.sample(
            "groupwarden_config_reloads_total",
            &[("outcome", "success")],
            self.reloads_succeeded as f64,
        );
        page.sample(
            "groupwarden_config_reloads_total",
            &[("outcome", "failure")],
            self.reloads_failed as f64,
        );
        page.family(
            "groupwarden_notify_failures_total",
            "counter",
            "Notifications that could not be delivered.",
        );
        page.sample(
            "groupwarden_notify_failures_total",
            &[],
            self.notify_failures as f64,
        );
        self.last_scan_metrics(&mut page);
        self.figures_metrics(&mut page);
        if let Some(next) = self.next_scan {
            page.family(
                "groupwarden_next_scan_timestamp_seconds",
                "gauge",
                "When the next scan is due, in Unix seconds.",
            );
            page.sample(
                "groupwarden_next_scan_timestamp_seconds",
                &[],
                seconds(next),
            );
        }
        page.text
    }

    fn last_scan_metrics(&self, page: &mut Page) {
        let Some(last) = &self.last else { return };
        page.family(
            "groupwarden_last_scan_timestamp_seconds",
            "gauge",
            "When the last scan ended, in Unix seconds.",
        );
        page.sample(
            "groupwarden_last_scan_timestamp_seconds",
            &[],
            seconds(last.finished),
        );
        page.family(
            "groupwarden_last_scan_success",
            "gauge",
            "1 if the last scan completed, 0 if it failed.",
        );
        page.sample(
            "groupwarden_last_scan_success",
            &[],
            f64::from(u8::from(last.result.is_ok())),
        );
        page.family(
            "groupwarden_last_scan_duration_seconds",
            "gauge",
            "How long the last scan took, download included.",
        );
        page.sample(
            "groupwarden_last_scan_duration_seconds",
            &[],
            last.duration.as_secs_f64(),
        );
        if let Some(success) = self.last_success {
            page.family(
                "groupwarden_last_success_timestamp_seconds",
                "gauge",
                "When the last completed scan ended, in Unix seconds.",
            );
            page.sample(
                "groupwarden_last_success_timestamp_seconds",
                &[],
                seconds(success),
            );
        }
    }

    /// Figures of the last completed scan; with `[[tenants]]`, of each
    /// tenant's last completed scan, labelled `tenant`.
    fn figures_metrics(&self, page: &mut Page) {
        let sets: Vec<(Option<&str>, &ScanFigures)> = if self.tenant_figures.is_empty() {
            self.last_figures.iter().map(|f| (None, f)).collect()
        } else {
            self.tenant_figures
                .iter()
                .map(|(name, f)| (Some(name.as_str()), f))
                .collect()
        };
        if sets.is_empty() {
            return;
        }
        let plain: [(&str, &str, Figure); 3] = [
            (
                "groupwarden_last_scan_rows",
                "Rows the last completed scan read.",
                |f| f.rows,
            ),
            (
                "groupwarden_last_scan_row_errors",
                "Rows the last completed scan could not read.",
                |f| f.row_errors,
            ),
            (
                "groupwarden_last_scan_concealed_rows",
                "Rows with concealed names in the last completed scan.",
                |f| f.concealed_rows,
            ),
        ];
        for (name, help, value) in plain {
            page.family(name, "gauge", help);
            for (tenant, figures) in &sets {
                page.sample(name, &with_tenant(*tenant, &[]), value(figures) as f64);
            }
        }
        page.family(
            "groupwarden_findings",
            "gauge",
            "Findings of the last completed scan, by rule.",
        );
        for (tenant, figures) in &sets {
            for (rule, counts) in &figures.rules {
                page.sample(
                    "groupwarden_findings",
                    &with_tenant(*tenant, &[("rule", rule)]),
                    counts.findings as f64,
                );
            }
        }
        by_status_metrics(&sets, page);
        page.family(
            "groupwarden_rule_errors",
            "gauge",
            "Rows a rule failed on in the last completed scan, by rule.",
        );
        for (tenant, figures) in &sets {
            for (rule, counts) in &figures.rules {
                page.sample(
                    "groupwarden_rule_errors",
                    &with_tenant(*tenant, &[("rule", rule)]),
                    counts.errors as f64,
                );
            }
        }
        if !self.tenant_success.is_empty() {
            const NAME: &str = "groupwarden_tenant_last_scan_success";
            page.family(
                NAME,
                "gauge",
                "1 if the tenant's last scan completed, 0 if it failed.",
            );
            for (tenant, ok) in &self.tenant_success {
                page.sample(NAME, &[("tenant", tenant)], f64::from(u8::from(*ok)));
            }
        }
    }
}

/// Reads one figure of a scan.
type Figure = fn(&ScanFigures) -> u64;

/// `labels` with `tenant` first, when there is one.
fn with_tenant<'a>(
    tenant: Option<&'a str>,
    labels: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    tenant
        .map(|t| ("tenant", t))
        .into_iter()
        .chain(labels.iter().copied())
        .collect()
}

/// The last completed scan's findings by rule and status, as the state
/// database recorded them: every enabled rule, every status (zeros
/// included, so a series drops to 0 rather than vanishing).
fn by_status_metrics(sets: &[(Option<&str>, &ScanFigures)], page: &mut Page) {
    const NAME: &str = "groupwarden_findings_by_status";
    let mut header = false;
    for (tenant, figures) in sets {
        let Some(by_status) = &figures.by_status else {
            continue;
        };
        if !header {
            header = true;
            page.family(
                NAME,
                "gauge",
                "Findings of the last completed scan by rule and status, as the state database recorded them (resolved: resolved by that scan).",
            );
        }
        let rules: std::collections::BTreeSet<&String> =
            figures.rules.keys().chain(by_status.keys()).collect();
        for rule in rules {
            let counts = by_status.get(rule).copied().unwrap_or_default();
            for status in crate::state::Status::ALL {
                page.sample(
                    NAME,
                    &with_tenant(*tenant, &[("rule", rule), ("status", status.as_str())]),
                    counts.get(status) as f64,
                );
            }
        }
    }
}

fn seconds(at: Timestamp) -> f64 {
    at.as_millisecond() as f64 / 1000.0
}

/// Prometheus text, family by family.
#[derive(Default)]
struct Page {
    text: String,
}

impl Page {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            let labels: Vec<String> = labels
                .iter()
                .map(|(key, value)| format!("{key}=\"{}\"", escape_label(value)))
                .collect();
            let _ = write!(self.text, "{{{}}}", labels.join(","));
        }
        let _ = writeln!(self.text, " {value}");
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::daemon::job::RuleFigures;

    fn finished(result: Result<ScanFigures, String>) -> FinishedScan {
        FinishedScan {
            trigger: Trigger::Schedule,
            started: "2026-11-20T06:00:00Z".parse().unwrap(),
            finished: "2026-11-20T06:00:02Z".parse().unwrap(),
            duration: Duration::from_millis(2500),
            result,
            undelivered: 0,
            tenants: Vec::new(),
        }
    }

    fn figures() -> ScanFigures {
        ScanFigures {
            rows: 300,
            findings: 7,
            rules: [
                (
                    "empty-groups".to_owned(),
                    RuleFigures {
                        findings: 5,
                        errors: 0,
                    },
                ),
                (
                    "odd\"rule".to_owned(),
                    RuleFigures {
                        findings: 2,
                        errors: 1,
                    },
                ),
            ]
            .into(),
            ..ScanFigures::default()
        }
    }

    #[test]
    fn health_follows_the_last_scan() {
        let mut status = Status::new("0 6 * * * (UTC)".into());
        assert!(status.healthy());
        assert_eq!(status.health_json()["status"], "waiting");
        status.record(finished(Err("no report".into())));
        assert!(!status.healthy());
        assert_eq!(status.health_json()["last_scan"]["error"], "no report");
        status.record(finished(Ok(figures())));
        assert!(status.healthy());
        let health = status.health_json();
        assert_eq!(health["status"], "ok");
        assert_eq!(health["last_scan"]["rows"], 300);
        assert_eq!(health["last_scan"]["duration_seconds"], 2.5);
    }

    #[test]
    fn metrics_lines() {
        let mut status = Status::new("x".into());
        status.record(finished(Ok(figures())));
        status.record(finished(Err("boom".into())));
        let text = status.prometheus_text();
        for line in [
            "groupwarden_scans_total{outcome=\"success\"} 1",
            "groupwarden_scans_total{outcome=\"failure\"} 1",
            "groupwarden_last_scan_success 0",
            "groupwarden_last_scan_duration_seconds 2.5",
            "groupwarden_last_scan_rows 300",
            "groupwarden_findings{rule=\"empty-groups\"} 5",
            "groupwarden_findings{rule=\"odd\\\"rule\"} 2",
            "groupwarden_last_scan_timestamp_seconds 1795154402",
            "# TYPE groupwarden_rows_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
    }

    #[test]
    fn findings_by_rule_and_status_cover_every_rule_and_status() {
        let mut status = Status::new("x".into());
        let mut with_counts = figures();
        with_counts.by_status = Some(std::sync::Arc::new(
            [(
                "empty-groups".to_owned(),
                crate::state::trend::TrendCounts {
                    new: 3,
                    open: 2,
                    resolved: 1,
                    ..Default::default()
                },
            )]
            .into(),
        ));
        status.record(finished(Ok(with_counts)));
        let text = status.prometheus_text();
        for line in [
            "# TYPE groupwarden_findings_by_status gauge",
            "groupwarden_findings_by_status{rule=\"empty-groups\",status=\"new\"} 3",
            "groupwarden_findings_by_status{rule=\"empty-groups\",status=\"open\"} 2",
            "groupwarden_findings_by_status{rule=\"empty-groups\",status=\"resolved\"} 1",
            "groupwarden_findings_by_status{rule=\"empty-groups\",status=\"exempted\"} 0",
            "groupwarden_findings_by_status{rule=\"odd\\\"rule\",status=\"new\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        // Without a state database, the family is left out.
        let mut plain = Status::new("x".into());
        plain.record(finished(Ok(figures())));
        assert!(!plain.prometheus_text().contains("by_status"));
    }

    #[test]
    fn undelivered_notifications_are_counted_across_scans() {
        let mut status = Status::new("0 6 * * *".into());
        let mut scan = finished(Err("2 of 3 messages were not delivered".into()));
        scan.undelivered = 2;
        status.record(scan);
        let mut scan = finished(Ok(figures()));
        scan.undelivered = 1;
        status.record(scan);
        let text = status.prometheus_text();
        assert!(
            text.lines()
                .any(|l| l == "groupwarden_notify_failures_total 3"),
            "{text}"
        );
    }
}
