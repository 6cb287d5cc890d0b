//! From a scan's changes to people, without losing or repeating a message.
//!
//! 1. Inside the scan's transaction, [`enqueue_changes`] queues what each
//!    channel is owed ([`super::accounting`]: what it routes minus what it
//!    was already told, the caps applied visibly), each message with the
//!    findings and notices it carries. The findings and the messages
//!    commit together: a crash before the commit leaves neither, a crash
//!    after it leaves messages waiting.
//! 2. After the commit, [`deliver_outbox`] claims every undelivered message
//!    (this scan's and any left by earlier runs), sends it, and marks it
//!    delivered only once the channel accepted it, with its delivery id
//!    (the receivers' idempotency key) on every attempt; in the same
//!    write, what it carries becomes what the channel was told. A message
//!    that fails stays in the outbox for the next run or `groupwarden
//!    notify --retry` (which also queues what the caps now allow,
//!    [`enqueue_owed_now`]); one refused for good, or failing for its
//!    channel's `max_runs` runs, becomes a dead letter that no later run
//!    tries (or fails on) until an operator retries or discards it.
//!
//! [`send_now`] is the one place a courier is set up (an async runtime,
//! the HTTP and SMTP clients, graph-mail's token): the outbox and
//! `groupwarden notify` both send through it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::LoadedConfig;
use crate::engine::rule::RuleText;
use crate::report::directory::Directory;
use crate::scan::ScanSummary;
use crate::state::Store;
use crate::state::announced;
use crate::state::changes::Changes;
use crate::state::lifecycle::{PendingScan, time_text};
use crate::state::outbox;

use super::accounting::{Context, Queued, queue_owed};
use super::token::graph_token;
use super::{
    Channel, Courier, DeliveryError, DeliveryReport, Digest, NotifyError, Planned, ScanInfo,
};

/// How long a claimed message is reserved for the run sending it; after
/// that (a run that died mid-send) another run may take it.
const CLAIM_LEASE: Duration = Duration::from_secs(15 * 60);

/// One of several tenants (`[[tenants]]`): what its messages call it
/// (its `tenant_name`, else its name); `None` for a single tenant.
fn tenant_of(loaded: &LoadedConfig) -> Option<String> {
    loaded.config.tenant.as_ref().map(|name| {
        loaded
            .config
            .source
            .as_ref()
            .and_then(|s| s.tenant_name.clone())
            .unwrap_or_else(|| name.clone())
    })
}

/// Which scan a message speaks for.
fn scan_info(changes: &Changes, summary: &ScanSummary, loaded: &LoadedConfig) -> ScanInfo {
    ScanInfo {
        tenant: tenant_of(loaded),
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
    }
}

/// Queues what each channel is owed after this scan, inside the scan's
/// transaction (see [`super::accounting`]): what it routes minus what it
/// was already told, the caps applied visibly, each exemption notice
/// once. Nothing is marked announced here: that waits for the channel to
/// accept the message ([`deliver_outbox`]). Returns what was queued and
/// what was held back.
pub(crate) fn enqueue_changes(
    pending: &PendingScan,
    channels: &[Channel],
    summary: &ScanSummary,
    loaded: &LoadedConfig,
    directory: Option<Arc<Directory>>,
) -> Result<Queued, NotifyError> {
    if channels.is_empty() {
        return Ok(Queued::default());
    }
    let changes = pending.changes();
    let conn = pending.connection();
    announced::apply_scan_marks(conn).map_err(|e| pending.fail(e))?;
    let scanned_at = changes
        .scanned_at
        .parse()
        .unwrap_or_else(|_| jiff::Timestamp::now());
    let context = Context {
        scan: scan_info(changes, summary, loaded),
        max_new_findings: loaded.config.state.max_new_findings,
        reminder_cutoff: reminder_cutoff(loaded, scanned_at),
        notices: changes
            .expiring_exemptions
            .iter()
            .chain(&changes.expired_exemptions)
            .cloned()
            .collect(),
        exempted: changes.exempted.clone(),
        rule_texts: summary.rule_texts.clone(),
        directory,
    };
    queue_owed(conn, channels, &context).map_err(|e| NotifyError::from(pending.fail(e)))
}

/// The directory the last scan joined, from the state's cache, when
/// `[directory]` is on; unreadable, owner messages go to the report's one
/// owner (logged).
fn cached_directory(store: &Store, loaded: &LoadedConfig) -> Option<Arc<Directory>> {
    if !loaded.config.directory.enabled {
        return None;
    }
    match crate::state::directory::load(store) {
        Ok(directory) => directory.map(Arc::new),
        Err(error) => {
            tracing::warn!(
                "the directory cache cannot be read, owners as the report names them: {error}"
            );
            None
        }
    }
}

/// `notify --retry`: queues what each channel is owed as of the last
/// scan (held messages the caps now allow, a new channel's backlog), in
/// a write transaction of its own. No exemption notices: scans send
/// those. Returns what was queued and what is still held.
pub(crate) fn enqueue_owed_now(
    store: &Store,
    channels: &[Channel],
    loaded: &LoadedConfig,
    rule_texts: &BTreeMap<String, RuleText>,
) -> Result<Queued, NotifyError> {
    if channels.is_empty() {
        return Ok(Queued::default());
    }
    store.begin_write()?;
    let queued = (|| {
        let conn = store.connection();
        let Some(last) = announced::last_scan(conn).map_err(|e| store.fail(e))? else {
            return Ok(Queued::default());
        };
        let scanned_at = last
            .started_at
            .parse()
            .unwrap_or_else(|_| jiff::Timestamp::now());
        let context = Context {
            scan: ScanInfo {
                tenant: tenant_of(loaded),
                source: last.source,
                report_refresh_date: last.refresh_date.as_deref().and_then(|d| d.parse().ok()),
                report_period: last.period,
                scanned_at,
                rows: last.rows,
            },
            max_new_findings: loaded.config.state.max_new_findings,
            reminder_cutoff: reminder_cutoff(loaded, jiff::Timestamp::now()),
            notices: Vec::new(),
            exempted: Vec::new(),
            rule_texts: rule_texts.clone(),
            // Owners as the directory cache has them, when it is kept.
            directory: cached_directory(store, loaded),
        };
        queue_owed(conn, channels, &context).map_err(|e| NotifyError::from(store.fail(e)))
    })();
    match queued {
        Ok(queued) => {
            store.commit()?;
            Ok(queued)
        }
        Err(error) => {
            store.rollback();
            Err(error)
        }
    }
}

/// Findings a channel heard of before this are due a reminder.
fn reminder_cutoff(loaded: &LoadedConfig, now: jiff::Timestamp) -> Option<String> {
    let span = loaded.config.state.renotify_after.span()?;
    Some(time_text(
        now.checked_sub(span.as_signed())
            .unwrap_or(jiff::Timestamp::MIN),
    ))
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
            mark_delivered(store, message.id)?;
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

/// Marks message `id` delivered and what it carries announced to its
/// channel, together: a crash leaves both or neither.
fn mark_delivered(store: &Store, id: i64) -> Result<(), NotifyError> {
    let conn = store.connection();
    let fail = |e| NotifyError::from(store.fail(e));
    conn.execute_batch("SAVEPOINT delivered").map_err(fail)?;
    let marked =
        outbox::mark_delivered(conn, id).and_then(|_| announced::record_delivery(conn, id));
    match marked {
        Ok(_) => conn.execute_batch("RELEASE delivered").map_err(fail),
        Err(error) => {
            let _ = conn.execute_batch("ROLLBACK TO delivered; RELEASE delivered");
            Err(fail(error))
        }
    }
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
