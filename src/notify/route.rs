//! Routing: which channel tells whom about what.
//!
//! [`plan`] is a pure function from the channels and one scan's digest to
//! the messages to send. The state store calls it inside the transaction
//! that records the scan and keeps each [`Planned`] in its outbox until
//! [`super::deliver()`] succeeds, so a message is never lost between the two.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::channel::Channel;
use super::config::Recipients;
use super::digest::{Capped, Counts, Digest, DigestItem, ItemStatus};

/// One message to send: a channel, its recipient and the digest cut for
/// them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Planned {
    /// The name of the `[[notify]]` channel that sends it.
    pub channel: String,
    /// Email and graph-mail: the addresses, separated by `, `. Webhook: the
    /// endpoint with its path hidden (the URL may carry a key).
    pub recipient: String,
    /// What the recipient is told: the scan's digest cut to what this channel
    /// routes to this recipient.
    pub digest: Digest,
    /// The idempotency key sent with every attempt (the outbox's, so it
    /// is the same on every run); `None` until the message is queued or
    /// sent, when the courier gives it one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
}

/// The messages `channels` send for `digest`: for each channel one digest
/// of what it routes, or one per group owner; nothing where a channel has
/// nothing to say.
pub fn plan(channels: &[Channel], digest: &Digest) -> Vec<Planned> {
    channels
        .iter()
        .flat_map(|channel| plan_channel(channel, digest))
        .collect()
}

fn plan_channel(channel: &Channel, digest: &Digest) -> Vec<Planned> {
    let routed = routed_digest(channel, digest);
    if routed.is_empty() {
        return Vec::new();
    }
    let planned = |recipient: String, digest: Digest| Planned {
        channel: channel.name().to_owned(),
        recipient,
        digest,
        delivery_id: None,
    };
    match &channel.config().to {
        Some(Recipients::GroupOwners) => by_owner(channel, routed)
            .into_iter()
            .map(|(to, d)| planned(to, d))
            .collect(),
        Some(Recipients::Addresses(addresses)) => vec![planned(addresses.join(", "), routed)],
        None => vec![planned(channel.target(), routed)],
    }
}

/// What of `digest` this channel announces: its rules, severities and
/// statuses. Counts are recounted from the items kept unless a cap had
/// already cut the list (then only the scan-wide counts are known).
fn routed_digest(channel: &Channel, digest: &Digest) -> Digest {
    let config = channel.config();
    let items: Vec<DigestItem> = digest
        .items
        .iter()
        .filter(|item| item.severity >= config.min_severity)
        .filter(|item| item.status != ItemStatus::Resolved || config.include_resolved)
        .filter(|item| channel.admits_rule(&item.rule))
        .cloned()
        .collect();
    let expiring_exemptions: Vec<_> = digest
        .expiring_exemptions
        .iter()
        .filter(|e| channel.admits_rule(&e.rule))
        .cloned()
        .collect();
    let counts = if digest.capped.is_some() {
        Counts {
            expiring_exemptions: expiring_exemptions.len() as u64,
            ..digest.counts.clone()
        }
    } else {
        Counts {
            exempted: digest.counts.exempted,
            expiring_exemptions: expiring_exemptions.len() as u64,
            ..Counts::of_items(&items)
        }
    };
    let mut routed = Digest {
        items,
        expiring_exemptions,
        counts,
        ..digest.clone()
    };
    routed.sort();
    routed
}

/// A routed digest's items per owner address, and those on groups nobody
/// can be mailed about.
struct OwnerSplit {
    per_owner: BTreeMap<String, Vec<DigestItem>>,
    ownerless: Vec<DigestItem>,
}

fn split_by_owner(routed: &Digest) -> OwnerSplit {
    let mut per_owner: BTreeMap<String, Vec<DigestItem>> = BTreeMap::new();
    let mut ownerless = Vec::new();
    for item in &routed.items {
        let owners = item.owner_addresses();
        if owners.is_empty() {
            ownerless.push(item.clone());
        }
        for owner in owners {
            per_owner.entry(owner).or_default().push(item.clone());
        }
    }
    OwnerSplit {
        per_owner,
        ownerless,
    }
}

/// One owner-routed message: to whom, the digest it shows, and every
/// item it stands for (those past `max_findings_per_owner` included: the
/// message counts them as "and N more").
#[derive(Clone, Debug)]
pub struct OwnerMessage {
    /// An owner's address, or the channel's `fallback_to`.
    pub recipient: String,
    /// What the message shows.
    pub digest: Digest,
    /// Everything it announces.
    pub carries: Vec<DigestItem>,
}

/// More owners to mail than a channel's `max_owner_messages`: its owner
/// messages are held back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyOwners {
    /// Owners who would have been mailed.
    pub owners: usize,
    /// The channel's `max_owner_messages`.
    pub cap: usize,
}

/// The owner messages of an owner-routed channel for `routed` (already
/// cut to what the channel routes): one per owner about their groups, and
/// one for `fallback_to` with the findings on ownerless groups. Above
/// `max_owner_messages` owners, none: the caller holds them back.
pub fn owner_messages(
    channel: &Channel,
    routed: &Digest,
) -> Result<Vec<OwnerMessage>, TooManyOwners> {
    let config = channel.config();
    let split = split_by_owner(routed);
    if split.per_owner.len() > config.max_owner_messages {
        return Err(TooManyOwners {
            owners: split.per_owner.len(),
            cap: config.max_owner_messages,
        });
    }
    let mut messages: Vec<OwnerMessage> = split
        .per_owner
        .into_iter()
        .map(|(owner, items)| OwnerMessage {
            recipient: owner,
            digest: owner_digest(routed, items.clone(), Some(config.max_findings_per_owner)),
            carries: items,
        })
        .collect();
    if !split.ownerless.is_empty() {
        if config.fallback_to.is_empty() {
            tracing::info!(
                channel = channel.name(),
                findings = split.ownerless.len(),
                "findings on groups without an owner address; no fallback_to"
            );
        } else {
            messages.push(OwnerMessage {
                recipient: config.fallback_to.join(", "),
                digest: owner_digest(routed, split.ownerless.clone(), None),
                carries: split.ownerless,
            });
        }
    }
    Ok(messages)
}

/// One digest per owner address about their groups only, plus one for
/// `fallback_to` with the findings on groups nobody can be mailed about.
/// Exemptions are an administrator's matter and are not sent to owners.
/// (A preview without state: above `max_owner_messages` owners the whole
/// list goes to `fallback_to`. A stateful scan holds the owner messages
/// back instead, see [`super::accounting`].)
fn by_owner(channel: &Channel, routed: Digest) -> Vec<(String, Digest)> {
    let config = channel.config();
    let fallback = config.fallback_to.join(", ");
    match owner_messages(channel, &routed) {
        Ok(messages) => messages
            .into_iter()
            .map(|m| (m.recipient, m.digest))
            .collect(),
        Err(too_many) => {
            tracing::warn!(
                channel = channel.name(),
                owners = too_many.owners,
                cap = too_many.cap,
                "more owners to notify than max_owner_messages; no owner is mailed this run"
            );
            if fallback.is_empty() {
                tracing::warn!(
                    channel = channel.name(),
                    "no fallback_to: this channel sends nothing this run"
                );
                return Vec::new();
            }
            let reason = format!(
                "{} owners would have been mailed, more than max_owner_messages = {}; the whole list came here instead",
                too_many.owners, too_many.cap
            );
            let total = routed.items.len() as u64;
            let capped = Capped {
                total,
                shown: total,
                reason,
            };
            vec![(
                fallback,
                Digest {
                    expiring_exemptions: Vec::new(),
                    capped: Some(capped),
                    ..routed
                },
            )]
        }
    }
}

fn owner_digest(routed: &Digest, mut items: Vec<DigestItem>, cap: Option<usize>) -> Digest {
    let counts = Counts {
        exempted: 0,
        expiring_exemptions: 0,
        ..Counts::of_items(&items)
    };
    let total = items.len();
    let capped = match cap {
        Some(cap) if total > cap => {
            items.truncate(cap);
            Some(Capped {
                total: total as u64,
                shown: cap as u64,
                reason: format!("at most {cap} findings are listed per owner message"),
            })
        }
        _ => routed.capped.clone(),
    };
    Digest {
        scan: routed.scan.clone(),
        counts,
        items,
        expiring_exemptions: Vec::new(),
        capped,
        test: routed.test,
        rules: routed.rules.clone(),
    }
}

/// The addresses in a report's owner field (one, or several separated by
/// `;` or `,`), lower-cased so one person gets one message. Names that are
/// not addresses (concealed reports hash them) count as no owner.
pub fn owner_addresses(owner: Option<&str>) -> Vec<String> {
    let Some(owner) = owner else {
        return Vec::new();
    };
    let mut addresses: Vec<String> = owner
        .split([';', ','])
        .map(str::trim)
        .filter(|candidate| candidate.parse::<lettre::Address>().is_ok())
        .map(str::to_lowercase)
        .collect();
    addresses.sort();
    addresses.dedup();
    addresses
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_fields_become_addresses() {
        assert_eq!(
            owner_addresses(Some("Adele.Vance@contoso.com")),
            ["adele.vance@contoso.com"]
        );
        assert_eq!(
            owner_addresses(Some("a@x.com; b@x.com,a@x.com")),
            ["a@x.com", "b@x.com"]
        );
        assert!(owner_addresses(Some("5A3B0C1D2E3F40516273849A5B6C7D8E")).is_empty());
        assert!(owner_addresses(Some("")).is_empty());
        assert!(owner_addresses(None).is_empty());
    }
}
