//! `groupwarden findings`: what the state database remembers.

use super::listing::{ListWriter, Listed, cell};
use super::{Error, Outcome, Output, open_output};
use crate::cli::FindingsArgs;
use crate::state::StoredFinding;
use crate::state::query::FindingFilter;

/// Runs `groupwarden findings`.
pub(crate) fn run(args: FindingsArgs) -> Result<Outcome, Error> {
    let store = super::open_existing(&args.location)?;
    let Output { out, format, .. } = open_output(None, args.format)?;
    let mut list = ListWriter::new(format, out);
    let filter = FindingFilter {
        statuses: args.status,
        rules: args.rule,
    };
    store.for_each_finding(&filter, |finding| {
        list.write(&finding).map_err(Error::Output)
    })?;
    list.finish::<StoredFinding>("No findings.")?;
    Ok(Outcome::Clean)
}

impl Listed for StoredFinding {
    const TABLE: &'static [&'static str] = &[
        "Status",
        "Severity",
        "Rule",
        "Group",
        "Owner",
        "Message",
        "First seen",
        "Last seen",
    ];

    fn table_row(&self) -> Vec<String> {
        let message = match (&self.exemption_reason, &self.resolution) {
            (Some(reason), _) => format!("{} (exempted: {reason})", self.message),
            (None, Some(resolution)) => format!("{} ({})", self.message, resolution.as_str()),
            _ => self.message.clone(),
        };
        vec![
            self.status.to_string(),
            self.severity.to_string(),
            self.rule.clone(),
            self.group_name
                .clone()
                .unwrap_or_else(|| self.group_key.clone()),
            self.owner.clone().unwrap_or_else(|| "-".into()),
            message,
            self.first_seen_at.clone(),
            self.last_seen_at.clone(),
        ]
    }

    const CSV: &'static [&'static str] = &[
        "key",
        "status",
        "rule",
        "severity",
        "group_id",
        "group_name",
        "owner",
        "message",
        "evidence",
        "first_seen_at",
        "last_seen_at",
        "last_announced_at",
        "resolved_at",
        "resolution",
        "exemption",
        "exemption_reason",
    ];

    fn csv_row(&self) -> Vec<String> {
        vec![
            self.key.clone(),
            self.status.to_string(),
            self.rule.clone(),
            self.severity.to_string(),
            cell(&self.group_id),
            cell(&self.group_name),
            cell(&self.owner),
            self.message.clone(),
            serde_json::to_string(&self.evidence).unwrap_or_default(),
            self.first_seen_at.clone(),
            self.last_seen_at.clone(),
            cell(&self.last_announced_at),
            cell(&self.resolved_at),
            self.resolution
                .map(|r| r.as_str().to_owned())
                .unwrap_or_default(),
            cell(&self.exemption),
            cell(&self.exemption_reason),
        ]
    }
}
