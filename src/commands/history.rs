//! `groupwarden history GROUP`: a group's findings over time.

use super::listing::{ListWriter, Listed, cell};
use super::{Error, Outcome, Output, open_output};
use crate::cli::HistoryArgs;
use crate::state::query::HistoryEntry;

/// Runs `groupwarden history`.
pub(crate) fn run(args: HistoryArgs) -> Result<Outcome, Error> {
    let store = super::open_existing(&args.location)?;
    let entries = store.history(&args.group)?;
    let Output { out, format, .. } = open_output(None, args.format)?;
    let mut list = ListWriter::new(format, out);
    for entry in &entries {
        list.write(entry)?;
    }
    list.finish::<HistoryEntry>(&format!("No history for group \"{}\".", args.group))?;
    Ok(Outcome::Clean)
}

impl Listed for HistoryEntry {
    const TABLE: &'static [&'static str] = &["When", "Report", "Rule", "Status", "Detail"];

    fn table_row(&self) -> Vec<String> {
        vec![
            self.at.clone(),
            cell(&self.report_refresh_date),
            self.rule.clone(),
            self.status.to_string(),
            cell(&self.detail),
        ]
    }

    const CSV: &'static [&'static str] = &[
        "at",
        "scan_id",
        "report_refresh_date",
        "rule",
        "key",
        "group_key",
        "group_name",
        "status",
        "detail",
    ];

    fn csv_row(&self) -> Vec<String> {
        vec![
            self.at.clone(),
            self.scan_id.to_string(),
            cell(&self.report_refresh_date),
            self.rule.clone(),
            self.key.clone(),
            self.group_key.clone(),
            cell(&self.group_name),
            self.status.to_string(),
            cell(&self.detail),
        ]
    }
}
