//! `groupwarden trend`: each completed scan's findings by rule and status,
//! read from the state database (opened read-only).

use jiff::Timestamp;

use super::listing::{ListWriter, Listed, cell};
use super::{Error, Outcome, Output, open_output};
use crate::cli::TrendArgs;
use crate::duration::ConfigDuration;
use crate::engine::diagnostics::did_you_mean;
use crate::state::Store;
use crate::state::lifecycle::time_text;
use crate::state::recording::state_path;
use crate::state::trend::{ScanTrend, TrendCounts, TrendFilter};

/// Runs `groupwarden trend`.
pub(crate) fn run(args: TrendArgs) -> Result<Outcome, Error> {
    let (loaded, flag) = super::load_location(&args.location)?;
    let path = state_path(flag.as_deref(), &loaded);
    let store = Store::open_read_only(
        &path,
        &crate::state::recording::store_options(&loaded, false),
    )?;
    check_rules(&store, &args.rule)?;
    let filter = TrendFilter {
        rules: args.rule.clone(),
        since: args
            .since
            .as_deref()
            .map(|s| since(s, Timestamp::now()))
            .transpose()?,
    };
    let scans = store.trend(&filter)?;
    let Output { out, format, .. } = open_output(None, args.format)?;
    let mut list = ListWriter::new(format, out);
    if matches!(
        format,
        crate::output::Format::Json | crate::output::Format::Jsonl
    ) {
        for scan in &scans {
            list.write(scan)?;
        }
        list.finish::<ScanTrend>("No completed scans.")?;
    } else {
        for row in scans.iter().flat_map(TrendRow::of) {
            list.write(&row)?;
        }
        list.finish::<TrendRow>("No completed scans.")?;
    }
    Ok(Outcome::Clean)
}

/// Refuses a `--rule` no scan ever counted: a typo would otherwise list
/// zeros, a silent wrong answer.
fn check_rules(store: &Store, wanted: &[String]) -> Result<(), Error> {
    if wanted.is_empty() {
        return Ok(());
    }
    let known = store.counted_rules()?;
    for rule in wanted {
        if known.contains(rule) {
            continue;
        }
        let hint = did_you_mean(rule, known.iter().map(String::as_str))
            .map(|m| format!(" (did you mean `{m}`?)"))
            .unwrap_or_default();
        let listed = if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        };
        return Err(Error::Usage(format!(
            "--rule {rule}: state database {} has no findings of rule `{rule}`{hint}; rules with findings: {listed}",
            store.path().display()
        )));
    }
    Ok(())
}

/// `--since`: a duration back from `now`, or a day (from its start, UTC).
fn since(text: &str, now: Timestamp) -> Result<String, Error> {
    if let Ok(day) = text.trim().parse::<jiff::civil::Date>() {
        return Ok(format!("{day}T00:00:00Z"));
    }
    let duration: ConfigDuration = text.parse().map_err(|_| {
        Error::Usage(format!(
            "--since \"{text}\": expected a duration such as 90d, 2w or 12h, or a day such as 2026-09-01"
        ))
    })?;
    let start = now
        .checked_sub(duration.as_signed())
        .map_err(|_| Error::Usage(format!("--since \"{text}\": reaches before the year -9999")))?;
    Ok(time_text(start))
}

/// One scan's counts of one rule: a row of the table or the CSV.
#[derive(serde::Serialize)]
pub(crate) struct TrendRow {
    scan_id: i64,
    finished_at: String,
    report_refresh_date: Option<String>,
    /// Empty when the scan had no findings (or its counts are unknown).
    rule: String,
    /// `None` for a scan recorded before counts were kept.
    counts: Option<TrendCounts>,
}

impl TrendRow {
    /// A row per rule with findings; a scan without any still gets one
    /// row, so every scan shows.
    fn of(scan: &ScanTrend) -> Vec<TrendRow> {
        let row = |rule: &str, counts: Option<TrendCounts>| TrendRow {
            scan_id: scan.scan_id,
            finished_at: scan.finished_at.clone(),
            report_refresh_date: scan.report_refresh_date.clone(),
            rule: rule.to_owned(),
            counts,
        };
        if scan.rules.is_empty() {
            return vec![row("", scan.counts)];
        }
        scan.rules
            .iter()
            .map(|(rule, counts)| row(rule, Some(*counts)))
            .collect()
    }

    fn count_cells(&self) -> Vec<String> {
        crate::state::Status::ALL
            .iter()
            .map(|status| {
                self.counts
                    .map(|c| c.get(*status).to_string())
                    .unwrap_or_default()
            })
            .collect()
    }
}

impl Listed for TrendRow {
    const TABLE: &'static [&'static str] = &[
        "Scan", "Finished", "Report", "Rule", "New", "Open", "Reopened", "Resolved", "Exempted",
    ];

    fn table_row(&self) -> Vec<String> {
        let rule = match (&self.counts, self.rule.as_str()) {
            (None, _) => "(counts not recorded)".to_owned(),
            (Some(_), "") => "(no findings)".to_owned(),
            (Some(_), rule) => rule.to_owned(),
        };
        let mut row = vec![
            self.scan_id.to_string(),
            self.finished_at.clone(),
            cell(&self.report_refresh_date),
            rule,
        ];
        let counts = self.count_cells();
        row.extend(
            counts
                .into_iter()
                .map(|c| if c.is_empty() { "-".into() } else { c }),
        );
        row
    }

    const CSV: &'static [&'static str] = &[
        "scan_id",
        "finished_at",
        "report_refresh_date",
        "rule",
        "new",
        "open",
        "reopened",
        "resolved",
        "exempted",
    ];

    fn csv_row(&self) -> Vec<String> {
        let mut row = vec![
            self.scan_id.to_string(),
            self.finished_at.clone(),
            cell(&self.report_refresh_date),
            self.rule.clone(),
        ];
        row.extend(self.count_cells());
        row
    }
}

impl Listed for ScanTrend {
    // Only the JSON formats list whole scans; the table and CSV list
    // `TrendRow`s.
    const TABLE: &'static [&'static str] = &[];

    fn table_row(&self) -> Vec<String> {
        Vec::new()
    }

    const CSV: &'static [&'static str] = &[];

    fn csv_row(&self) -> Vec<String> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_duration_or_a_day() {
        let now: Timestamp = "2026-11-27T12:00:00Z".parse().unwrap();
        assert_eq!(since("90d", now).unwrap(), "2026-08-29T12:00:00Z");
        assert_eq!(since("2026-09-01", now).unwrap(), "2026-09-01T00:00:00Z");
        let error = since("soon", now).unwrap_err().to_string();
        assert!(error.contains("--since \"soon\""), "{error}");
    }
}
