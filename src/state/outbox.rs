//! The durable outbox: messages to deliver, written in the same
//! transaction as the findings they announce.
//!
//! The protocol that makes "nothing lost, nothing sent twice" hold:
//!
//! 1. Inside the scan's transaction ([`super::lifecycle::PendingScan::connection`]),
//!    [`enqueue`] one message per channel and recipient, then commit. A
//!    crash before the commit loses the scan and its messages together;
//!    after it, the messages wait in the outbox.
//! 2. [`claim`] the messages due for sending: a claim is a lease, so two
//!    processes (a scan and `groupwarden notify --retry`) never send the
//!    same message at the same time, and a sender that died releases its
//!    messages when the lease runs out.
//! 3. Send one; only after the channel accepted it, [`mark_delivered`]. If
//!    it failed, [`mark_failed`]: the message stays pending for the next
//!    run. If it was refused for good, or ran out of runs, [`mark_dead`]:
//!    it becomes a dead letter, kept (and listed by [`dead_letters`]) but
//!    no longer tried, until [`revive`] makes it pending again or
//!    [`discard`] removes it.
//!
//! A crash between the channel's acceptance and step 3's commit (one small
//! write) sends that message again on the next run; that window cannot be
//! closed from this side, so every message gets a `delivery_id` when it
//! is queued, sent with every attempt, and a receiver can use it to drop
//! duplicates.
//!
//! A message is in one of three states ([`OutboxMessage::state`]):
//! pending (`delivered_at` and `dead_at` unset), delivered, or dead.

use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{Connection, params};
use serde::Serialize;

use super::lifecycle::time_text;

/// A message waiting in (or delivered from) the outbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OutboxMessage {
    /// The row's number: what `groupwarden notify --discard` and
    /// `--retry` take (besides the delivery id).
    pub id: i64,
    /// Stable for the message's life and sent with every attempt (the
    /// `X-Groupwarden-Delivery` header, the email's `Message-ID`): an
    /// idempotency key for receivers.
    pub delivery_id: String,
    /// When it was queued (UTC, RFC 3339).
    pub created_at: String,
    /// The channel's name as configured (`[[notify]] name`).
    pub channel: String,
    /// An address, an owner, or whatever the channel routes by.
    pub recipient: String,
    /// The message as JSON; its shape is the channel's business.
    pub payload: String,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Delivery runs (a scan's or `notify --retry`'s) that tried it.
    pub runs: u32,
    /// When it was last tried (UTC, RFC 3339); `None`: not yet.
    pub last_attempt_at: Option<String>,
    /// Why the last attempt failed; `None` when it did not (or none was made).
    pub last_error: Option<String>,
    /// When it was delivered (UTC, RFC 3339); `None` while waiting.
    pub delivered_at: Option<String>,
    /// When delivery stopped for good (UTC, RFC 3339): a dead letter.
    pub dead_at: Option<String>,
}

/// Where a message is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageState {
    /// Waiting to be (re)tried.
    Pending,
    /// Accepted by its channel; final.
    Delivered,
    /// Refused for good or out of runs: kept, listed, no longer tried.
    DeadLetter,
}

impl OutboxMessage {
    /// Pending, delivered or dead-lettered.
    pub fn state(&self) -> MessageState {
        match (&self.delivered_at, &self.dead_at) {
            (Some(_), _) => MessageState::Delivered,
            (None, Some(_)) => MessageState::DeadLetter,
            (None, None) => MessageState::Pending,
        }
    }
}

const COLUMNS: &str = "id, delivery_id, created_at, channel, recipient, payload, attempts, runs, last_attempt_at, last_error, delivered_at, dead_at";

fn message(row: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxMessage> {
    Ok(OutboxMessage {
        id: row.get(0)?,
        delivery_id: row.get(1)?,
        created_at: row.get(2)?,
        channel: row.get(3)?,
        recipient: row.get(4)?,
        payload: row.get(5)?,
        attempts: row.get(6)?,
        runs: row.get(7)?,
        last_attempt_at: row.get(8)?,
        last_error: row.get(9)?,
        delivered_at: row.get(10)?,
        dead_at: row.get(11)?,
    })
}

/// Adds a message with a new delivery id (`gw-<id>-<16 random hex
/// digits>`); returns its id. Call it inside the transaction that records
/// what the message announces.
pub fn enqueue(
    conn: &Connection,
    channel: &str,
    recipient: &str,
    payload_json: &str,
) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO outbox (created_at, channel, recipient, payload) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        time_text(Timestamp::now()),
        channel,
        recipient,
        payload_json
    ])?;
    let id = conn.last_insert_rowid();
    // The same form the migration gives older messages; random, so ids
    // stay unique even across databases.
    conn.prepare_cached(
        "UPDATE outbox SET delivery_id = 'gw-' || id || '-' || lower(hex(randomblob(8))) WHERE id = ?1",
    )?
    .execute([id])?;
    Ok(id)
}

/// Every pending message (neither delivered nor dead), oldest first,
/// claimed or not.
pub fn pending(conn: &Connection) -> rusqlite::Result<Vec<OutboxMessage>> {
    select(conn, "delivered_at IS NULL AND dead_at IS NULL", [])
}

/// Every dead letter, oldest first.
pub fn dead_letters(conn: &Connection) -> rusqlite::Result<Vec<OutboxMessage>> {
    select(conn, "delivered_at IS NULL AND dead_at IS NOT NULL", [])
}

/// How many dead letters wait for an operator.
pub fn count_dead_letters(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NOT NULL",
        [],
        |row| row.get(0),
    )
}

/// The message `key` names: its number or its delivery id.
pub fn find(conn: &Connection, key: &str) -> rusqlite::Result<Option<OutboxMessage>> {
    let found = match key.parse::<i64>() {
        Ok(id) => select(conn, "id = ?1", [id])?,
        Err(_) => select(conn, "delivery_id = ?1", [key])?,
    };
    Ok(found.into_iter().next())
}

fn select<P: rusqlite::Params>(
    conn: &Connection,
    condition: &str,
    values: P,
) -> rusqlite::Result<Vec<OutboxMessage>> {
    let mut statement = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM outbox WHERE {condition} ORDER BY id"
    ))?;
    let rows = statement.query_map(values, message)?;
    rows.collect()
}

/// Takes the undelivered messages nobody else holds, for `lease`: until
/// then, other processes' claims skip them. Runs in its own write
/// transaction, so call it outside a scan's.
pub fn claim(conn: &Connection, lease: Duration) -> rusqlite::Result<Vec<OutboxMessage>> {
    let now = Timestamp::now();
    let until = now
        .checked_add(jiff::SignedDuration::try_from(lease).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX);
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let claimed = (|| {
        let mut statement = conn.prepare(&format!(
            "UPDATE outbox SET claimed_until = ?1 WHERE delivered_at IS NULL AND dead_at IS NULL AND (claimed_until IS NULL OR claimed_until <= ?2) \
             RETURNING {COLUMNS}"
        ))?;
        let rows = statement.query_map(params![time_text(until), time_text(now)], message)?;
        let mut messages = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        messages.sort_by_key(|m| m.id);
        Ok(messages)
    })();
    match claimed {
        Ok(messages) => {
            conn.execute_batch("COMMIT")?;
            Ok(messages)
        }
        Err(error) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(error)
        }
    }
}

/// Records that the channel accepted message `id`. False if it was
/// already marked delivered (or does not exist).
pub fn mark_delivered(conn: &Connection, id: i64) -> rusqlite::Result<bool> {
    let changed = conn.execute(
        "UPDATE outbox SET delivered_at = ?2, attempts = attempts + 1, runs = runs + 1, last_attempt_at = ?2, last_error = NULL, \
         claimed_until = NULL, dead_at = NULL \
         WHERE id = ?1 AND delivered_at IS NULL",
        params![id, time_text(Timestamp::now())],
    )?;
    Ok(changed == 1)
}

/// Records a failed attempt: the message stays pending, released for the
/// next run. `attempts` is the total so far, as the sender counted them
/// (a sender may retry several times in one run).
pub fn mark_failed(
    conn: &Connection,
    id: i64,
    error: &str,
    attempts: u32,
) -> rusqlite::Result<bool> {
    let changed = conn.execute(
        "UPDATE outbox SET attempts = ?3, runs = runs + 1, last_attempt_at = ?4, last_error = ?2, claimed_until = NULL \
         WHERE id = ?1 AND delivered_at IS NULL",
        params![id, error, attempts, time_text(Timestamp::now())],
    )?;
    Ok(changed == 1)
}

/// Records a last failed attempt and makes the message a dead letter: it
/// was refused for good, or the channel's runs ran out. It is kept but no
/// longer claimed.
pub fn mark_dead(conn: &Connection, id: i64, error: &str, attempts: u32) -> rusqlite::Result<bool> {
    let now = time_text(Timestamp::now());
    let changed = conn.execute(
        "UPDATE outbox SET attempts = ?3, runs = runs + 1, last_attempt_at = ?4, last_error = ?2, claimed_until = NULL, dead_at = ?4 \
         WHERE id = ?1 AND delivered_at IS NULL",
        params![id, error, attempts, now],
    )?;
    Ok(changed == 1)
}

/// Gives a claimed message back untried (its channel was down, or is not
/// configured here): nothing is counted against it.
pub fn release(conn: &Connection, id: i64) -> rusqlite::Result<bool> {
    let changed = conn.execute(
        "UPDATE outbox SET claimed_until = NULL WHERE id = ?1 AND delivered_at IS NULL",
        [id],
    )?;
    Ok(changed == 1)
}

/// Makes dead letter `id` pending again with a fresh count of runs. False
/// if it is not a dead letter.
pub fn revive(conn: &Connection, id: i64) -> rusqlite::Result<bool> {
    let changed = conn.execute(
        "UPDATE outbox SET dead_at = NULL, runs = 0, claimed_until = NULL \
         WHERE id = ?1 AND delivered_at IS NULL AND dead_at IS NOT NULL",
        [id],
    )?;
    Ok(changed == 1)
}

/// Removes dead letter `id` for good. False if it is not a dead letter.
/// What it carried is owed to its channel again (see
/// [`super::announced`]).
pub fn discard(conn: &Connection, id: i64) -> rusqlite::Result<bool> {
    let changed = conn.execute(
        "DELETE FROM outbox WHERE id = ?1 AND delivered_at IS NULL AND dead_at IS NOT NULL",
        [id],
    )?;
    if changed == 1 {
        super::announced::forget_message(conn, id)?;
    }
    Ok(changed == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::schema;

    fn outbox() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        schema::apply(&conn, 0).unwrap();
        conn
    }

    #[test]
    fn claims_exclude_each_other_until_released() {
        let conn = outbox();
        let first = enqueue(&conn, "team", "a@x", "{}").unwrap();
        let second = enqueue(&conn, "team", "b@x", "{}").unwrap();
        let claimed = claim(&conn, Duration::from_secs(3600)).unwrap();
        assert_eq!(
            claimed.iter().map(|m| m.id).collect::<Vec<_>>(),
            [first, second]
        );
        assert!(
            claim(&conn, Duration::from_secs(3600)).unwrap().is_empty(),
            "held by the first claim"
        );
        assert!(mark_failed(&conn, first, "503 from server", 3).unwrap());
        let again = claim(&conn, Duration::from_secs(3600)).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(
            (
                again[0].id,
                again[0].attempts,
                again[0].last_error.as_deref()
            ),
            (first, 3, Some("503 from server"))
        );
    }

    #[test]
    fn a_lapsed_lease_frees_the_message() {
        let conn = outbox();
        enqueue(&conn, "hook", "https://h", "{}").unwrap();
        assert_eq!(claim(&conn, Duration::ZERO).unwrap().len(), 1);
        assert_eq!(
            claim(&conn, Duration::ZERO).unwrap().len(),
            1,
            "a zero lease lapses at once"
        );
    }

    #[test]
    fn a_dead_letter_is_not_claimed_until_revived_and_can_be_discarded() {
        let conn = outbox();
        let id = enqueue(&conn, "mail", "a@x", "{}").unwrap();
        let other = enqueue(&conn, "mail", "b@x", "{}").unwrap();
        let claimed = claim(&conn, Duration::from_secs(60)).unwrap();
        assert!(claimed[0].delivery_id.starts_with(&format!("gw-{id}-")));
        assert_ne!(claimed[0].delivery_id, claimed[1].delivery_id);
        assert!(mark_dead(&conn, id, "552 message too large", 1).unwrap());
        assert!(release(&conn, other).unwrap());
        assert_eq!(count_dead_letters(&conn).unwrap(), 1);
        let dead = dead_letters(&conn).unwrap();
        assert_eq!(
            (dead[0].id, dead[0].state()),
            (id, MessageState::DeadLetter)
        );
        assert_eq!(
            claim(&conn, Duration::from_secs(60))
                .unwrap()
                .iter()
                .map(|m| m.id)
                .collect::<Vec<_>>(),
            [other]
        );
        let by_delivery_id = find(&conn, &dead[0].delivery_id).unwrap().unwrap();
        assert_eq!(by_delivery_id.id, id);
        assert!(revive(&conn, id).unwrap());
        assert!(!revive(&conn, id).unwrap(), "pending now");
        let again = find(&conn, &id.to_string()).unwrap().unwrap();
        assert_eq!((again.state(), again.runs), (MessageState::Pending, 0));
        assert_eq!(again.delivery_id, dead[0].delivery_id, "the id survives");
        assert!(mark_dead(&conn, id, "552 again", 2).unwrap());
        assert!(discard(&conn, id).unwrap());
        assert!(find(&conn, &id.to_string()).unwrap().is_none());
    }

    #[test]
    fn delivered_is_final() {
        let conn = outbox();
        let id = enqueue(&conn, "hook", "https://h", "{\"n\":1}").unwrap();
        assert!(mark_delivered(&conn, id).unwrap());
        assert!(!mark_delivered(&conn, id).unwrap());
        assert!(!mark_failed(&conn, id, "late failure", 2).unwrap());
        assert!(pending(&conn).unwrap().is_empty());
        assert!(claim(&conn, Duration::from_secs(60)).unwrap().is_empty());
    }
}
