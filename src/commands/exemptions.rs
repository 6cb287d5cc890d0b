//! `groupwarden exemptions`: the configured exemptions, whether they are
//! active, expiring or expired, and how many findings each covers.

use std::collections::HashMap;

use serde::Serialize;

use super::listing::{ListWriter, Listed, cell};
use super::{Error, Outcome, Output, open_output};
use crate::cli::ExemptionsArgs;
use crate::config::LoadedConfig;
use crate::state::Store;
use crate::state::exemptions::ExemptionNotice;
use crate::state::recording::{load_exemptions, state_path, store_options, today};

/// An exemption and the findings it covered at the last scan.
#[derive(Serialize)]
pub(crate) struct ExemptionRow {
    /// The exemption as listings show it.
    #[serde(flatten)]
    pub notice: ExemptionNotice,
    /// Findings recorded as exempted by it; `None` without a state database.
    pub findings: Option<u64>,
}

/// Runs `groupwarden exemptions`.
pub(crate) fn run(args: ExemptionsArgs) -> Result<Outcome, Error> {
    let loaded = LoadedConfig::load(args.location.config.as_deref())?;
    let exemptions = load_exemptions(&loaded)?;
    let counts = exempted_counts(&args, &loaded)?;
    let today = today();
    let Output { out, format, .. } = open_output(None, args.format)?;
    let mut list = ListWriter::new(format, out);
    for exemption in &exemptions.all {
        let notice = exemption.notice(today);
        let findings = counts
            .as_ref()
            .map(|c| c.get(&notice.origin).copied().unwrap_or(0));
        list.write(&ExemptionRow { notice, findings })?;
    }
    list.finish::<ExemptionRow>("No exemptions configured.")?;
    Ok(Outcome::Clean)
}

/// Exempted findings per exemption, when the database exists.
fn exempted_counts(
    args: &ExemptionsArgs,
    loaded: &LoadedConfig,
) -> Result<Option<HashMap<String, u64>>, Error> {
    let path = state_path(args.location.state.as_deref(), loaded);
    if !path.exists() {
        return Ok(None);
    }
    let store = Store::open_read_only(&path, &store_options(loaded, false))?;
    Ok(Some(store.exempted_counts()?.into_iter().collect()))
}

impl Listed for ExemptionRow {
    const TABLE: &'static [&'static str] = &[
        "State",
        "Expires",
        "Rule",
        "Group",
        "Reason",
        "Approved by",
        "Findings",
    ];

    fn table_row(&self) -> Vec<String> {
        let n = &self.notice;
        let state = match n.days_left {
            left if left < 0 => format!("expired {} days ago", -left),
            left if n.state == crate::state::exemptions::ExemptionState::Expiring => {
                format!("expiring in {left} days")
            }
            _ => n.state.as_str().to_owned(),
        };
        vec![
            state,
            n.expires.clone(),
            n.rule.clone(),
            n.group_id
                .clone()
                .or_else(|| n.group_name.clone())
                .unwrap_or_default(),
            n.reason.clone(),
            n.approved_by.clone().unwrap_or_else(|| "-".into()),
            self.findings.map_or_else(|| "-".into(), |c| c.to_string()),
        ]
    }

    const CSV: &'static [&'static str] = &[
        "state",
        "expires",
        "days_left",
        "rule",
        "group_id",
        "group_name",
        "reason",
        "approved_by",
        "origin",
        "findings",
    ];

    fn csv_row(&self) -> Vec<String> {
        let n = &self.notice;
        vec![
            n.state.as_str().to_owned(),
            n.expires.clone(),
            n.days_left.to_string(),
            n.rule.clone(),
            cell(&n.group_id),
            cell(&n.group_name),
            n.reason.clone(),
            cell(&n.approved_by),
            n.origin.clone(),
            self.findings.map(|c| c.to_string()).unwrap_or_default(),
        ]
    }
}
