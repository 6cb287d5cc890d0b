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

/// One digest per owner address about their groups only, plus one for
/// `fallback_to` with the findings on groups nobody can be mailed about.
/// Exemptions are an administrator's matter and are not sent to owners.
fn by_owner(channel: &Channel, routed: Digest) -> Vec<(String, Digest)> {
    let config = channel.config();
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
    let fallback = config.fallback_to.join(", ");

    if per_owner.len() > config.max_owner_messages {
        tracing::warn!(
            channel = channel.name(),
            owners = per_owner.len(),
            cap = config.max_owner_messages,
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
            per_owner.len(),
            config.max_owner_messages
        );
        let total = routed.items.len() as u64;
        let capped = Capped {
            total,
            shown: total,
            reason,
        };
        return vec![(
            fallback,
            Digest {
                expiring_exemptions: Vec::new(),
                capped: Some(capped),
                ..routed
            },
        )];
    }

    let mut messages: Vec<(String, Digest)> = per_owner
        .into_iter()
        .map(|(owner, items)| {
            (
                owner,
                owner_digest(&routed, items, Some(config.max_findings_per_owner)),
            )
        })
        .collect();
    if !ownerless.is_empty() {
        if fallback.is_empty() {
            tracing::info!(
                channel = channel.name(),
                findings = ownerless.len(),
                "findings on groups without an owner address; no fallback_to"
            );
        } else {
            messages.push((fallback, owner_digest(&routed, ownerless, None)));
        }
    }
    messages
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
