//! `groupwarden exemptions`: the exemptions of the config file and those
//! added on the command line, whether they are active, expiring or
//! expired, where each came from, and how many findings each covers;
//! `exemptions add` and `exemptions remove` keep the latter in the state
//! database.

use std::collections::HashMap;

use serde::Serialize;

use super::listing::{ListWriter, Listed, cell};
use super::{Error, Outcome, Output, open_output};
use crate::cli::{ExemptionAddArgs, ExemptionRemoveArgs, ExemptionsAction, ExemptionsArgs};
use crate::config::LoadedConfig;
use crate::engine::diagnostics::did_you_mean;
use crate::state::Store;
use crate::state::cli_exemptions::{ExemptedGroup, KnownGroup, NewExemption, Saved};
use crate::state::exemptions::{ExemptionNotice, Exemptions};
use crate::state::lifecycle::time_text;
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

/// Runs `groupwarden exemptions` and its subcommands.
pub(crate) fn run(args: ExemptionsArgs) -> Result<Outcome, Error> {
    match args.action {
        Some(ExemptionsAction::Add(add_args)) => add(add_args),
        Some(ExemptionsAction::Remove(remove_args)) => remove(remove_args),
        None => list(args),
    }
}

/// Lists every exemption, config file's first.
fn list(args: ExemptionsArgs) -> Result<Outcome, Error> {
    let (loaded, flag) = super::load_location(&args.location)?;
    let mut exemptions = load_exemptions(&loaded)?;
    let store = existing_store(flag.as_deref(), &loaded)?;
    let counts = match &store {
        Some(store) => {
            exemptions.all.extend(store.cli_exemptions()?);
            Some(
                store
                    .exempted_counts()?
                    .into_iter()
                    .collect::<HashMap<_, _>>(),
            )
        }
        None => None,
    };
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
    list.finish::<ExemptionRow>("No exemptions configured or added.")?;
    Ok(Outcome::Clean)
}

/// The database, when it exists.
fn existing_store(
    flag: Option<&std::path::Path>,
    loaded: &LoadedConfig,
) -> Result<Option<Store>, Error> {
    let path = state_path(flag, loaded);
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(Store::open_read_only(
        &path,
        &store_options(loaded, false),
    )?))
}

/// Runs `groupwarden exemptions add`.
fn add(args: ExemptionAddArgs) -> Result<Outcome, Error> {
    let (loaded, flag) = super::load_location(&args.location)?;
    let rule = checked_rule(&args.rule, args.rules.as_deref(), &loaded)?;
    let reason = args.reason.trim();
    if reason.is_empty() {
        return Err(Error::Usage(
            "--reason is empty: say why the findings are accepted".into(),
        ));
    }
    let expires = checked_expiry(&args.expires, today())?;
    // Adding and removing write: the database is opened for writing.
    let store = crate::state::recording::open_existing(flag.as_deref(), &loaded)?;
    let group = resolve_group(&store, &args.group)?;
    let new = NewExemption {
        rule,
        group: group.clone(),
        reason: reason.to_owned(),
        expires,
        approved_by: args
            .approved_by
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty()),
        added_by: login_name(),
        now: time_text(jiff::Timestamp::now()),
    };
    let (verb, id) = match store.add_exemption(&new)? {
        Saved::Added(id) => ("added", id),
        Saved::Updated(id) => ("updated", id),
    };
    tracing::info!(
        "exemption {id} {verb}: rule `{}` on {}, until {expires}; the next scan applies it",
        new.rule,
        describe(&group)
    );
    Ok(Outcome::Clean)
}

/// Runs `groupwarden exemptions remove`.
fn remove(args: ExemptionRemoveArgs) -> Result<Outcome, Error> {
    let (loaded, flag) = super::load_location(&args.location)?;
    // Adding and removing write: the database is opened for writing.
    let store = crate::state::recording::open_existing(flag.as_deref(), &loaded)?;
    let rule = args.rule.trim();
    // As `add` stored it: the id of a group known by name, else the name.
    let candidates = match resolve_group(&store, &args.group) {
        Ok(group) => vec![group, ExemptedGroup::Name(args.group.trim().to_owned())],
        Err(_) => vec![
            ExemptedGroup::Id(args.group.trim().to_owned()),
            ExemptedGroup::Name(args.group.trim().to_owned()),
        ],
    };
    for group in &candidates {
        if let Some(id) = store.remove_exemption(rule, group)? {
            tracing::info!(
                "exemption {id} removed: rule `{rule}` on {}; the next scan no longer applies it",
                describe(group)
            );
            return Ok(Outcome::Clean);
        }
    }
    Err(Error::Usage(not_added(
        rule,
        &args.group,
        &load_exemptions(&loaded)?,
    )))
}

/// Why `remove` found nothing: the exemption is in a config file, or
/// there is none.
fn not_added(rule: &str, group: &str, configured: &Exemptions) -> String {
    let in_file = configured.all.iter().find(|e| {
        e.rule == rule
            && match &e.group {
                crate::state::exemptions::GroupSelector::Id(id) => id.eq_ignore_ascii_case(group),
                crate::state::exemptions::GroupSelector::Name { pattern, .. } => {
                    pattern.eq_ignore_ascii_case(group)
                }
            }
    });
    match in_file {
        Some(e) => format!(
            "the exemption of rule `{rule}` on \"{group}\" is written in {}: edit that file to remove it",
            e.source
        ),
        None => format!(
            "no exemption of rule `{rule}` on \"{group}\" was added with `exemptions add` (`groupwarden exemptions` lists them)"
        ),
    }
}

/// `*`, or the id of a rule the rules folder has (enabled or not).
fn checked_rule(
    rule: &str,
    dir: Option<&std::path::Path>,
    loaded: &LoadedConfig,
) -> Result<String, Error> {
    let rule = rule.trim();
    if rule == "*" {
        return Ok(rule.to_owned());
    }
    let (_, rules) = super::load_rules(dir, loaded)?;
    if rules.get(rule).is_some() {
        return Ok(rule.to_owned());
    }
    let ids = rules.rules.iter().map(|r| &*r.id);
    let hint = did_you_mean(rule, ids)
        .map(|m| format!(" (did you mean `{m}`?)"))
        .unwrap_or_default();
    Err(Error::Usage(format!(
        "--rule {rule}: no rule has this id{hint}; `groupwarden rules list` lists them, and `*` covers every rule"
    )))
}

/// The last day: a date, today or later.
fn checked_expiry(text: &str, today: jiff::civil::Date) -> Result<jiff::civil::Date, Error> {
    let day: jiff::civil::Date = text.trim().parse().map_err(|_| {
        Error::Usage(format!(
            "--expires \"{text}\" is not a date: give the last day the exemption applies, as YYYY-MM-DD"
        ))
    })?;
    if day < today {
        return Err(Error::Usage(format!(
            "--expires {day} is in the past (today is {today}): an exemption must still apply"
        )));
    }
    Ok(day)
}

/// The one group the database knows by this id or exact name: by its id
/// when it has one (it then survives a rename), else by its name.
fn resolve_group(store: &Store, group: &str) -> Result<ExemptedGroup, Error> {
    let group = group.trim();
    let found = store.groups_named(group)?;
    let ids: Vec<&str> = found.iter().filter_map(|g| g.id.as_deref()).collect();
    let mut distinct = ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    match (distinct.as_slice(), found.is_empty()) {
        ([id], _) => Ok(ExemptedGroup::Id((*id).to_owned())),
        ([], false) => Ok(ExemptedGroup::Name(
            found[0].name.clone().unwrap_or_else(|| group.to_owned()),
        )),
        ([], true) => Err(Error::Usage(unknown_group(store, group)?)),
        (many, _) => Err(Error::Usage(format!(
            "--group \"{group}\" names {} groups ({}): give the id of the one to exempt",
            many.len(),
            some_of(many)
        ))),
    }
}

/// The first few ids, and how many more there are.
fn some_of(ids: &[&str]) -> String {
    const SHOWN: usize = 5;
    let mut text = ids[..ids.len().min(SHOWN)].join(", ");
    if ids.len() > SHOWN {
        text.push_str(&format!(", and {} more", ids.len() - SHOWN));
    }
    text
}

fn unknown_group(store: &Store, group: &str) -> Result<String, Error> {
    let known = store.known_groups()?;
    let names: Vec<&str> = known
        .iter()
        .filter_map(|g: &KnownGroup| g.name.as_deref())
        .collect();
    let hint = did_you_mean(group, names.iter().copied())
        .map(|m| format!(" (did you mean \"{m}\"?)"))
        .unwrap_or_default();
    Ok(format!(
        "--group \"{group}\": no finding in state database {} is on a group with this id or name{hint}; \
         give a group's id or exact display name as `groupwarden findings` shows it \
         (for a pattern of names, use [[exemptions]] group_name in the config)",
        store.path().display()
    ))
}

fn describe(group: &ExemptedGroup) -> String {
    match group {
        ExemptedGroup::Id(id) => format!("group_id {id}"),
        ExemptedGroup::Name(name) => format!("group_name \"{name}\""),
    }
}

/// Who runs the command, for "added by CLI on … by WHO".
fn login_name() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .map(|name| name.trim().to_owned())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "an unknown user".to_owned())
}

impl Listed for ExemptionRow {
    const TABLE: &'static [&'static str] = &[
        "State",
        "Expires",
        "Rule",
        "Group",
        "Reason",
        "Approved by",
        "From",
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
            n.source.clone(),
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
        "source",
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
            n.source.clone(),
            self.findings.map(|c| c.to_string()).unwrap_or_default(),
        ]
    }
}
