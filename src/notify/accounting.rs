//! What each channel is sent: what it routes minus what it was already
//! told ([`crate::state::announced`] keeps the account), with the caps
//! applied visibly.
//!
//! [`queue_owed`] runs inside a write transaction (a scan's, or `notify
//! --retry`'s): for each channel it counts what the channel is owed; above
//! `[state] max_new_findings` the channel's messages are held back
//! without loading the findings; an owner-routed channel with more owners
//! to mail than its `max_owner_messages` is held back too. Held messages
//! are not queued and nothing they would carry is marked announced, so
//! they go out (once) when a later run finds the cap allows them. Each
//! hold is logged as a warning naming the channel, the cap key and how
//! many were held; the admin channels (those not `to = "group-owners"`)
//! and the held owner channels' `fallback_to` get a note saying what was
//! held for which channel, with every open finding counted by rule and
//! severity.
//!
//! Every queued message records what it carries; [`super::announce`]
//! marks those findings announced to the channel when the channel accepts
//! the message.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use rusqlite::Connection;
use sha2::{Digest as _, Sha256};

use crate::engine::finding::Severity;
use crate::engine::rule::RuleText;
use crate::report::directory::Directory;
use crate::state::StoredFinding;
use crate::state::announced::{self, Carried, ChannelScope, Owed, OwedCounts};
use crate::state::exemptions::{ExemptionNotice, ExemptionState};
use crate::state::outbox;

use super::route::{TooManyOwners, owner_messages};
use super::{
    Capped, Channel, Counts, Digest, DigestItem, ExpiringExemption, ItemStatus, Planned, ScanInfo,
};

/// What one accounting run works from.
#[derive(Clone, Debug)]
pub(crate) struct Context {
    /// The scan the messages speak for.
    pub scan: ScanInfo,
    /// `[state] max_new_findings`: the most findings one channel is sent
    /// in one run.
    pub max_new_findings: u64,
    /// Findings a channel heard of before this (stored form) are due a
    /// reminder; `None`: no reminders.
    pub reminder_cutoff: Option<String>,
    /// Exemptions expiring soon or expired, to tell each channel once.
    pub notices: Vec<ExemptionNotice>,
    /// Findings newly exempted by this scan (counted, never listed).
    pub exempted: Vec<StoredFinding>,
    /// Every rule's title and help, by id, for the messages to name them.
    pub rule_texts: BTreeMap<String, RuleText>,
    /// The tenant's directory (`[directory]`), when joined: owner messages
    /// go to every owner it lists.
    pub directory: Option<Arc<Directory>>,
}

/// A channel whose messages a cap held back in this run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// The channel's name.
    pub channel: String,
    /// The cap, as its key is written: `[state] max_new_findings` or
    /// `max_owner_messages`.
    pub cap: &'static str,
    /// The cap's value.
    pub limit: u64,
    /// What the channel was owed, by status: held back, none announced.
    pub owed: OwedCounts,
    /// For `max_owner_messages`: the owners who would have been mailed.
    pub owners: Option<usize>,
}

impl Held {
    fn describe(&self) -> String {
        let what = match self.owners {
            Some(owners) => format!(
                "{} findings for {owners} owners (more owners than {} = {})",
                self.owed.total(),
                self.cap,
                self.limit
            ),
            None => format!(
                "{} findings (more than {} = {})",
                self.owed.total(),
                self.cap,
                self.limit
            ),
        };
        format!("channel \"{}\": {what}", self.channel)
    }
}

/// What an accounting run queued, and what it held back.
#[derive(Clone, Debug, Default)]
pub(crate) struct Queued {
    /// The messages now in the outbox, in order.
    pub planned: Vec<Planned>,
    /// The channels held back by a cap.
    pub held: Vec<Held>,
}

/// One message to queue and what it carries.
struct Outgoing {
    planned: Planned,
    carries: Vec<Carried>,
}

/// What one channel does this run.
enum ChannelPlan {
    Send(Vec<Outgoing>),
    Held(Held),
}

/// Plans what each channel is owed, applies the caps, and queues the
/// messages with what they carry. Call it inside a write transaction.
pub(crate) fn queue_owed(
    conn: &Connection,
    channels: &[Channel],
    context: &Context,
) -> rusqlite::Result<Queued> {
    let rules = announced::rules_with_findings(conn)?;
    let mut plans = Vec::with_capacity(channels.len());
    for channel in channels {
        plans.push(plan_channel(conn, channel, &rules, context)?);
    }
    let held: Vec<Held> = plans
        .iter()
        .filter_map(|plan| match plan {
            ChannelPlan::Held(held) => Some(held.clone()),
            ChannelPlan::Send(_) => None,
        })
        .collect();
    for hold in &held {
        tracing::warn!(
            channel = hold.channel,
            cap = hold.cap,
            limit = hold.limit,
            held = hold.owed.total(),
            owners = hold.owners,
            "notifications held back on channel \"{}\": {} findings, over {} = {}; nothing held is marked announced. \
             Raise the cap (or narrow the channel's rules); the next scan or `groupwarden notify --retry` sends them",
            hold.channel,
            hold.owed.total(),
            hold.cap,
            hold.limit
        );
    }
    if !held.is_empty() {
        add_held_notices(conn, channels, &mut plans, &held, context)?;
    }
    let mut queued = Queued {
        planned: Vec::new(),
        held,
    };
    for plan in plans {
        let ChannelPlan::Send(outgoing) = plan else {
            continue;
        };
        for message in outgoing {
            queue(conn, &message)?;
            queued.planned.push(message.planned);
        }
    }
    Ok(queued)
}

fn queue(conn: &Connection, message: &Outgoing) -> rusqlite::Result<()> {
    let planned = &message.planned;
    let payload = serde_json::to_string(&planned.digest)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let id = outbox::enqueue(conn, &planned.channel, &planned.recipient, &payload)?;
    announced::note_carried(conn, id, &planned.channel, &message.carries)
}

/// What `channel` routes, in database terms.
fn scope<'a>(channel: &'a Channel, rules: &[String], context: &Context) -> ChannelScope<'a> {
    let config = channel.config();
    ChannelScope {
        channel: channel.name(),
        rules: rules
            .iter()
            .filter(|rule| channel.admits_rule(rule))
            .cloned()
            .collect(),
        severities: Severity::ALL
            .into_iter()
            .filter(|s| *s >= config.min_severity)
            .map(Severity::as_str)
            .collect(),
        include_resolved: config.include_resolved,
        reminder_cutoff: context.reminder_cutoff.clone(),
    }
}

fn plan_channel(
    conn: &Connection,
    channel: &Channel,
    rules: &[String],
    context: &Context,
) -> rusqlite::Result<ChannelPlan> {
    let scope = scope(channel, rules, context);
    let owed_counts = announced::count_owed(conn, &scope)?;
    if owed_counts.total() > context.max_new_findings {
        return Ok(ChannelPlan::Held(Held {
            channel: channel.name().to_owned(),
            cap: "[state] max_new_findings",
            limit: context.max_new_findings,
            owed: owed_counts,
            owners: None,
        }));
    }
    let owed = announced::owed(conn, &scope)?;
    // What marks each finding announced once delivered: its row id.
    let rows: HashMap<String, i64> = owed
        .iter()
        .map(|(stored, _, id)| (stored.key.clone(), *id))
        .collect();
    let items: Vec<DigestItem> = owed
        .into_iter()
        .map(|(stored, owed, _)| {
            DigestItem::from_finding(
                item_status(owed),
                &stored.to_finding(),
                stored.first_seen_day(),
            )
        })
        .collect();
    let owners = channel.config().routes_to_owners();
    // Exemptions are an administrator's matter: owner messages leave them out.
    let notices = if owners {
        Vec::new()
    } else {
        owed_notices(conn, channel, &context.notices)?
    };
    let exempted = context
        .exempted
        .iter()
        .filter(|f| f.severity >= channel.config().min_severity && channel.admits_rule(&f.rule))
        .count() as u64;
    let mut digest = Digest {
        scan: context.scan.clone(),
        counts: Counts {
            exempted,
            expiring_exemptions: notices.len() as u64,
            ..Counts::of_items(&items)
        },
        items,
        expiring_exemptions: notices.iter().map(|(notice, _)| notice.clone()).collect(),
        capped: None,
        test: false,
        rules: BTreeMap::new(),
    };
    digest.describe_rules(&context.rule_texts);
    if let Some(directory) = &context.directory {
        digest.add_directory_owners(directory);
    }
    digest.sort();
    if owners {
        return Ok(owner_plan(channel, digest, owed_counts, &rows));
    }
    if digest.is_empty() {
        return Ok(ChannelPlan::Send(Vec::new()));
    }
    let mut carries = carried_items(&digest.items, &rows);
    carries.extend(
        notices
            .into_iter()
            .map(|(_, (key, status))| Carried::notice(key, status)),
    );
    Ok(ChannelPlan::Send(vec![Outgoing {
        planned: Planned {
            channel: channel.name().to_owned(),
            recipient: recipient_of(channel),
            digest,
            delivery_id: None,
        },
        carries,
    }]))
}

fn owner_plan(
    channel: &Channel,
    digest: Digest,
    owed: OwedCounts,
    rows: &HashMap<String, i64>,
) -> ChannelPlan {
    match owner_messages(channel, &digest) {
        Ok(messages) => ChannelPlan::Send(
            messages
                .into_iter()
                .filter(|m| !m.digest.is_empty())
                .map(|m| Outgoing {
                    carries: carried_items(&m.carries, rows),
                    planned: Planned {
                        channel: channel.name().to_owned(),
                        recipient: m.recipient,
                        digest: m.digest,
                        delivery_id: None,
                    },
                })
                .collect(),
        ),
        Err(TooManyOwners { owners, cap }) => ChannelPlan::Held(Held {
            channel: channel.name().to_owned(),
            cap: "max_owner_messages",
            limit: cap as u64,
            owed,
            owners: Some(owners),
        }),
    }
}

/// Where a channel's one message goes: its addresses, else its target.
fn recipient_of(channel: &Channel) -> String {
    match &channel.config().to {
        Some(super::config::Recipients::Addresses(addresses)) => addresses.join(", "),
        _ => channel.target(),
    }
}

fn item_status(owed: Owed) -> ItemStatus {
    match owed {
        Owed::New => ItemStatus::New,
        Owed::Reopened => ItemStatus::Reopened,
        Owed::Reminder => ItemStatus::Reminder,
        Owed::Resolved => ItemStatus::Resolved,
    }
}

/// What a message of `items` carries; `rows`: the findings' row ids.
fn carried_items(items: &[DigestItem], rows: &HashMap<String, i64>) -> Vec<Carried> {
    items
        .iter()
        .map(|item| Carried {
            key: item.key.clone(),
            status: item.status.as_str(),
            finding: rows.get(&item.key).copied(),
        })
        .collect()
}

/// The exemption notices `channel` routes and was not yet told in their
/// present state, each with the `(key, state)` it is accounted under.
fn owed_notices(
    conn: &Connection,
    channel: &Channel,
    notices: &[ExemptionNotice],
) -> rusqlite::Result<Vec<(ExpiringExemption, (String, &'static str))>> {
    let mut owed = Vec::new();
    for notice in notices {
        if !channel.admits_rule(&notice.rule) {
            continue;
        }
        let state = match notice.state {
            ExemptionState::Expired => "expired",
            _ => "expiring",
        };
        let key = announced::exemption_key(notice);
        if announced::told_or_carried(conn, channel.name(), &key, state)? {
            continue;
        }
        let Ok(expires) = notice.expires.parse() else {
            continue;
        };
        owed.push((
            ExpiringExemption {
                rule: notice.rule.clone(),
                group: notice
                    .group_id
                    .clone()
                    .or_else(|| notice.group_name.clone())
                    .unwrap_or_else(|| "*".to_owned()),
                reason: notice.reason.clone(),
                expires,
                expired: state == "expired",
            },
            (key, state),
        ));
    }
    Ok(owed)
}

/// Tells the admin channels, and the `fallback_to` of held owner
/// channels, what was held: added to the message they send anyway, or
/// as a note of its own, once per held state.
fn add_held_notices(
    conn: &Connection,
    channels: &[Channel],
    plans: &mut [ChannelPlan],
    held: &[Held],
    context: &Context,
) -> rusqlite::Result<()> {
    let breakdown = announced::open_by_rule_and_severity(conn)?;
    let reason = held_reason(held, &breakdown);
    let key = held_key(&reason);
    let held_total: u64 = held.iter().map(|h| h.owed.total()).sum();
    let held_counts = held.iter().fold(Counts::default(), |mut c, h| {
        c.new += h.owed.new;
        c.reopened += h.owed.reopened;
        c.reminders += h.owed.reminders;
        c.resolved += h.owed.resolved;
        c
    });
    for (channel, plan) in channels.iter().zip(plans.iter_mut()) {
        let config = channel.config();
        let recipient = match (&*plan, config.routes_to_owners()) {
            (_, false) => recipient_of(channel),
            (ChannelPlan::Held(_), true) if !config.fallback_to.is_empty() => {
                config.fallback_to.join(", ")
            }
            _ => continue,
        };
        let note = Carried::notice(key.clone(), "held");
        match plan {
            ChannelPlan::Send(outgoing) if !outgoing.is_empty() => {
                // The admin channel's own message carries the note.
                let message = &mut outgoing[0];
                let shown = message.planned.digest.items.len() as u64;
                message.planned.digest.capped = Some(Capped {
                    total: shown,
                    shown,
                    reason: reason.clone(),
                });
                message.carries.push(note);
            }
            _ => {
                if announced::told_or_carried(conn, channel.name(), &key, "held")? {
                    continue;
                }
                // A note alone counts what was held back, never zeros.
                let digest = Digest {
                    scan: context.scan.clone(),
                    counts: held_counts.clone(),
                    items: Vec::new(),
                    expiring_exemptions: Vec::new(),
                    capped: Some(Capped {
                        total: held_total,
                        shown: 0,
                        reason: reason.clone(),
                    }),
                    test: false,
                    rules: BTreeMap::new(),
                };
                let outgoing = Outgoing {
                    planned: Planned {
                        channel: channel.name().to_owned(),
                        recipient,
                        digest,
                        delivery_id: None,
                    },
                    carries: vec![note],
                };
                *plan = ChannelPlan::Send(vec![outgoing]);
            }
        }
    }
    Ok(())
}

/// The note's text: what was held for which channel, and every open
/// finding by rule and severity.
fn held_reason(held: &[Held], breakdown: &[(String, String, u64)]) -> String {
    let mut text =
        String::from("messages were held back by a cap and nothing in them is marked announced: ");
    let channels: Vec<String> = held.iter().map(Held::describe).collect();
    text.push_str(&channels.join("; "));
    let open: u64 = breakdown.iter().map(|(_, _, n)| n).sum();
    let _ = write!(text, ". All {open} open findings by rule and severity: ");
    let parts: Vec<String> = breakdown
        .iter()
        .map(|(rule, severity, n)| format!("{rule} ({severity}) {n}"))
        .collect();
    text.push_str(&parts.join(", "));
    text.push_str(
        ". Raise the cap (or narrow the channel's rules): the next scan, or `groupwarden notify --retry`, sends them once",
    );
    text
}

/// The account key of a held note: the same holds give the same key, so
/// an unchanged hold is noted once.
fn held_key(reason: &str) -> String {
    let hash = Sha256::digest(reason.as_bytes());
    let hex: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("held:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_note_names_channel_cap_and_breakdown() {
        let held = [Held {
            channel: "owners".into(),
            cap: "max_owner_messages",
            limit: 100,
            owed: OwedCounts {
                new: 2000,
                ..OwedCounts::default()
            },
            owners: Some(1800),
        }];
        let breakdown = [
            ("stale".to_owned(), "medium".to_owned(), 1500),
            ("no-owner".to_owned(), "high".to_owned(), 500),
        ];
        let reason = held_reason(&held, &breakdown);
        assert!(
            reason.contains(
                "channel \"owners\": 2000 findings for 1800 owners (more owners than max_owner_messages = 100)"
            ),
            "{reason}"
        );
        assert!(
            reason.contains("All 2000 open findings by rule and severity: stale (medium) 1500, no-owner (high) 500"),
            "{reason}"
        );
        assert_eq!(held_key(&reason), held_key(&reason.clone()));
        assert_ne!(held_key(&reason), held_key("other"));
    }
}
