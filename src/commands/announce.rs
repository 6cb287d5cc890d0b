//! From a scan's changes to people, without losing or repeating a message.
//!
//! 1. Inside the scan's transaction, the changes become one [`Digest`],
//!    [`plan`] cuts it per channel and recipient, and each planned message
//!    is written to the outbox ([`enqueue_changes`]). The findings, their
//!    "announced" mark and the messages commit together: a crash before
//!    the commit leaves neither, a crash after it leaves messages waiting.
//! 2. After the commit, [`deliver_outbox`] claims every undelivered message
//!    (this scan's and any left by earlier runs), sends it, and marks it
//!    delivered only once the channel accepted it. A message that fails
//!    stays in the outbox for the next run or `groupwarden notify --retry`.

use std::time::Duration;

use jiff::civil::Date;

use super::Error;
use super::notify::{NotifyError, graph_token};
use crate::config::LoadedConfig;
use crate::notify::{
    Capped, Channel, Counts, Courier, Digest, DigestItem, ExpiringExemption, ItemStatus, Planned,
    ScanInfo, plan,
};
use crate::scan::ScanSummary;
use crate::state::Store;
use crate::state::changes::{Changes, StoredFinding};
use crate::state::lifecycle::PendingScan;
use crate::state::outbox;

/// How long a claimed message is reserved for the run sending it; after
/// that (a run that died mid-send) another run may take it.
const CLAIM_LEASE: Duration = Duration::from_secs(15 * 60);

/// The digest of one scan's changes.
pub fn digest_of(changes: &Changes, summary: &ScanSummary) -> Digest {
    let mut items = Vec::new();
    let lists = [
        (ItemStatus::New, &changes.new),
        (ItemStatus::Reopened, &changes.reopened),
        (ItemStatus::Reminder, &changes.reminders),
        (ItemStatus::Resolved, &changes.resolved),
    ];
    for (status, findings) in lists {
        items.extend(findings.iter().map(|stored| item(status, stored)));
    }
    let counts = Counts {
        new: changes.counts.new,
        reopened: changes.counts.reopened,
        reminders: changes.counts.reminders,
        resolved: changes.counts.resolved,
        exempted: changes.exempted.len() as u64,
        expiring_exemptions: changes.expiring_exemptions.len() as u64,
    };
    let expiring_exemptions = changes
        .expiring_exemptions
        .iter()
        .filter_map(|notice| {
            Some(ExpiringExemption {
                rule: notice.rule.clone(),
                group: notice
                    .group_id
                    .clone()
                    .or_else(|| notice.group_name.clone())
                    .unwrap_or_else(|| "*".to_owned()),
                reason: notice.reason.clone(),
                expires: notice.expires.parse().ok()?,
            })
        })
        .collect();
    let capped = changes.capped.as_ref().map(|cap| Capped {
        total: cap.would_announce,
        shown: 0,
        reason: cap.reason.clone(),
    });
    let mut digest = Digest {
        scan: ScanInfo {
            tenant: None,
            source: changes.source.clone(),
            report_refresh_date: changes
                .report_refresh_date
                .as_deref()
                .and_then(|d| d.parse().ok()),
            report_period: summary.stats.period,
            scanned_at: changes
                .scanned_at
                .parse()
                .unwrap_or_else(|_| jiff::Timestamp::now()),
            rows: summary.rows_read(),
        },
        counts,
        items,
        expiring_exemptions,
        capped,
        test: false,
    };
    digest.sort();
    digest
}

fn item(status: ItemStatus, stored: &StoredFinding) -> DigestItem {
    // `first_seen_at` is a timestamp; the digest shows its day.
    let first_seen = stored
        .first_seen_at
        .get(..10)
        .and_then(|day| day.parse::<Date>().ok());
    DigestItem::from_finding(status, &stored.to_finding(), first_seen)
}

/// Plans this scan's messages and writes them to the outbox inside the
/// scan's transaction; marks the announced findings. Returns how many
/// messages were queued.
pub fn enqueue_changes(
    pending: &PendingScan,
    channels: &[Channel],
    summary: &ScanSummary,
) -> Result<usize, Error> {
    if channels.is_empty() {
        return Ok(0);
    }
    let digest = digest_of(pending.changes(), summary);
    let planned = plan(channels, &digest);
    let conn = pending.connection();
    for message in &planned {
        let payload = serde_json::to_string(&message.digest)
            .map_err(|e| NotifyError::Setup(format!("cannot store a digest: {e}")))?;
        outbox::enqueue(conn, &message.channel, &message.recipient, &payload)
            .map_err(|e| pending.fail(e))?;
    }
    pending.mark_announced()?;
    Ok(planned.len())
}

/// Sends every undelivered outbox message. Messages for channels no
/// longer configured stay queued (with a warning). Fails, after trying
/// all, when any message was not delivered.
pub fn deliver_outbox(
    store: &Store,
    channels: &[Channel],
    loaded: &LoadedConfig,
) -> Result<usize, Error> {
    let conn = store.connection();
    let claimed = outbox::claim(conn, CLAIM_LEASE).map_err(|e| store.fail(e))?;
    if claimed.is_empty() {
        return Ok(0);
    }
    let mut planned = Vec::new();
    let mut ids = Vec::new();
    for message in claimed {
        if !channels.iter().any(|c| c.name() == message.channel) {
            tracing::warn!(
                channel = message.channel,
                id = message.id,
                "an outbox message is for a channel that is no longer configured; it stays queued"
            );
            continue;
        }
        let digest: Digest = match serde_json::from_str(&message.payload) {
            Ok(digest) => digest,
            Err(error) => {
                let note = format!("unreadable payload: {error}");
                let _ = outbox::mark_failed(conn, message.id, &note, message.attempts + 1);
                tracing::error!(id = message.id, "{note}");
                continue;
            }
        };
        ids.push((message.id, message.attempts));
        planned.push(Planned {
            channel: message.channel,
            recipient: message.recipient,
            digest,
        });
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| NotifyError::Setup(format!("cannot start the async runtime: {e}")))?;
    let mut courier = Courier::new().map_err(NotifyError::Setup)?;
    if let Some(token) = graph_token(channels, loaded)? {
        courier = courier.with_graph_token(token);
    }
    let report = runtime.block_on(courier.deliver_all(channels, &planned));
    let mut failed = 0;
    for ((id, attempts), outcome) in ids.iter().zip(&report.results) {
        match outcome {
            Ok(()) => {
                outbox::mark_delivered(conn, *id).map_err(|e| store.fail(e))?;
            }
            Err(error) => {
                failed += 1;
                outbox::mark_failed(conn, *id, &error.to_string(), attempts + 1)
                    .map_err(|e| store.fail(e))?;
            }
        }
    }
    let delivered = planned.len() - failed;
    eprintln!(
        "notifications: {delivered} of {} messages delivered",
        planned.len()
    );
    if failed > 0 {
        return Err(NotifyError::Undelivered {
            failed,
            total: planned.len(),
        }
        .into());
    }
    Ok(delivered)
}
