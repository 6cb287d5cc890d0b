//! From a scan's changes to people, without losing or repeating a message.
//!
//! 1. Inside the scan's transaction, the changes become one [`Digest`],
//!    [`plan`] cuts it per channel and recipient, and each planned message
//!    is written to the outbox ([`enqueue_changes`]). The findings, their
//!    "announced" mark and the messages commit together: a crash before
//!    the commit leaves neither, a crash after it leaves messages waiting.
//! 2. After the commit, [`deliver_outbox`] claims every undelivered message
//!    (this scan's and any left by earlier runs), sends it, and marks it
//!    delivered only once the channel accepted it, with its delivery id
//!    (the receivers' idempotency key) on every attempt. A message that
//!    fails stays in the outbox for the next run or `groupwarden notify
//!    --retry`; one refused for good, or failing for its channel's
//!    `max_runs` runs, becomes a dead letter that no later run tries (or
//!    fails on) until an operator retries or discards it.
//!
//! [`send_now`] is the one place a courier is set up (an async runtime,
//! the HTTP and SMTP clients, graph-mail's token): the outbox and
//! `groupwarden notify` both send through it.

use std::time::Duration;

use crate::config::LoadedConfig;
use crate::scan::ScanSummary;
use crate::state::Store;
use crate::state::changes::{Changes, StoredFinding};
use crate::state::lifecycle::PendingScan;
use crate::state::outbox;

use super::token::graph_token;
use super::{
    Capped, Channel, Counts, Courier, DeliveryError, DeliveryReport, Digest, DigestItem,
    ExpiringExemption, ItemStatus, NotifyError, Planned, ScanInfo, plan,
};

/// How long a claimed message is reserved for the run sending it; after
/// that (a run that died mid-send) another run may take it.
const CLAIM_LEASE: Duration = Duration::from_secs(15 * 60);

/// The digest of one scan's changes.
pub(crate) fn digest_of(changes: &Changes, summary: &ScanSummary) -> Digest {
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
    let first_seen = stored.first_seen_day();
    DigestItem::from_finding(status, &stored.to_finding(), first_seen)
}

/// Plans this scan's messages and writes them to the outbox inside the
/// scan's transaction; marks the announced findings. Returns how many
/// messages were queued.
pub(crate) fn enqueue_changes(
    pending: &PendingScan,
    channels: &[Channel],
    summary: &ScanSummary,
    directory: Option<&crate::report::directory::Directory>,
) -> Result<usize, NotifyError> {
    if channels.is_empty() {
        return Ok(0);
    }
    let mut digest = digest_of(pending.changes(), summary);
    if let Some(directory) = directory {
        digest.add_directory_owners(directory);
    }
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

/// What one delivery run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deliveries {
    /// Messages the channels accepted.
    pub delivered: usize,
    /// Messages that failed in this run (those it made dead letters
    /// included); the others stay in the outbox for the next run.
    pub failed: usize,
    /// Messages this run made dead letters: refused for good, or out of
    /// their channel's `max_runs`.
    pub dead_lettered: usize,
    /// Dead letters in the outbox after this run, earlier runs' included.
    /// They fail no later run: `groupwarden notify --dead-letters` lists
    /// them, `--retry ID` and `--discard ID` settle them.
    pub dead_letters: u64,
}

impl Deliveries {
    /// Messages tried.
    pub fn total(&self) -> usize {
        self.delivered + self.failed
    }

    /// `Err` when any message failed in this run (earlier dead letters
    /// do not count).
    pub fn into_result(self) -> Result<Deliveries, NotifyError> {
        match self.failed {
            0 => Ok(self),
            failed => Err(NotifyError::Undelivered {
                failed,
                total: self.total(),
            }),
        }
    }
}

/// A claimed message on its way: its outbox row and how many runs its
/// channel gives it.
struct Claimed {
    message: outbox::OutboxMessage,
    max_runs: u32,
}

/// Sends every pending outbox message. Messages for channels no longer
/// configured (or not selected) stay queued, with a warning. Every other
/// message is tried; one that fails stays queued, unless it was refused
/// for good or has used its channel's `max_runs`: then it becomes a dead
/// letter, which later runs leave alone.
pub(crate) fn deliver_outbox(
    store: &Store,
    channels: &[Channel],
    loaded: &LoadedConfig,
) -> Result<Deliveries, NotifyError> {
    let conn = store.connection();
    let claimed = outbox::claim(conn, CLAIM_LEASE).map_err(|e| store.fail(e))?;
    let mut deliveries = Deliveries::default();
    let mut planned = Vec::new();
    let mut sent = Vec::new();
    for message in claimed {
        let Some(channel) = channels.iter().find(|c| c.name() == message.channel) else {
            tracing::warn!(
                channel = message.channel,
                id = message.id,
                "an outbox message is for a channel that is not configured (or not selected); it stays queued"
            );
            outbox::release(conn, message.id).map_err(|e| store.fail(e))?;
            continue;
        };
        let digest: Digest = match serde_json::from_str(&message.payload) {
            Ok(digest) => digest,
            Err(error) => {
                // It will not become readable: no run can send it.
                let note = format!("unreadable payload: {error}");
                tracing::error!(id = message.id, "{note}");
                outbox::mark_dead(conn, message.id, &note, message.attempts)
                    .map_err(|e| store.fail(e))?;
                deliveries.failed += 1;
                deliveries.dead_lettered += 1;
                continue;
            }
        };
        planned.push(Planned {
            channel: message.channel.clone(),
            recipient: message.recipient.clone(),
            digest,
            delivery_id: Some(message.delivery_id.clone()),
        });
        sent.push(Claimed {
            message,
            max_runs: channel.config().max_runs.max(1),
        });
    }
    if !planned.is_empty() {
        let report = send_now(channels, &planned, loaded)?;
        for (claimed, outcome) in sent.iter().zip(&report.results) {
            record_outcome(store, claimed, outcome, &mut deliveries)?;
        }
        tracing::info!(
            delivered = deliveries.delivered,
            messages = planned.len(),
            "notifications: {} of {} messages delivered",
            deliveries.delivered,
            planned.len()
        );
    }
    deliveries.dead_letters = outbox::count_dead_letters(conn).map_err(|e| store.fail(e))?;
    if deliveries.dead_letters > 0 {
        tracing::warn!(
            dead_letters = deliveries.dead_letters,
            "notifications: {} messages dead-lettered; see `groupwarden notify --dead-letters`",
            deliveries.dead_letters
        );
    }
    Ok(deliveries)
}

/// Writes what happened to one message to the outbox, and counts it.
fn record_outcome(
    store: &Store,
    claimed: &Claimed,
    outcome: &Result<(), DeliveryError>,
    deliveries: &mut Deliveries,
) -> Result<(), NotifyError> {
    let conn = store.connection();
    let message = &claimed.message;
    let error = match outcome {
        Ok(()) => {
            deliveries.delivered += 1;
            outbox::mark_delivered(conn, message.id).map_err(|e| store.fail(e))?;
            return Ok(());
        }
        Err(error) => error,
    };
    deliveries.failed += 1;
    if !error.was_tried() {
        // Its channel failed earlier in the run: this is not its failure.
        outbox::release(conn, message.id).map_err(|e| store.fail(e))?;
        return Ok(());
    }
    let attempts = message.attempts + error.attempts();
    let runs = message.runs + 1;
    let note = error.to_string();
    if error.is_refusal() || runs >= claimed.max_runs {
        outbox::mark_dead(conn, message.id, &note, attempts).map_err(|e| store.fail(e))?;
        deliveries.dead_lettered += 1;
        let why = if error.is_refusal() {
            "refused".to_owned()
        } else {
            format!("failed in {runs} runs")
        };
        tracing::warn!(
            outbox_id = message.id,
            delivery_id = %message.delivery_id,
            "notifications: message {} ({}) {why}; it is now a dead letter and will not be retried",
            message.id,
            message.delivery_id
        );
    } else {
        outbox::mark_failed(conn, message.id, &note, attempts).map_err(|e| store.fail(e))?;
    }
    Ok(())
}

/// Sends `planned` now, each message under the channel's retry policy,
/// with a courier set up for this one run.
pub(crate) fn send_now(
    channels: &[Channel],
    planned: &[Planned],
    loaded: &LoadedConfig,
) -> Result<DeliveryReport, NotifyError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| NotifyError::Setup(format!("cannot start the async runtime: {e}")))?;
    let mut courier = Courier::new().map_err(NotifyError::Setup)?;
    if let Some(token) = graph_token(channels, loaded)? {
        courier = courier.with_graph_token(token);
    }
    Ok(runtime.block_on(courier.deliver_all(channels, planned)))
}
