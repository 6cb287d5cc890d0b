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
//!    run.
//!
//! A crash between the channel's acceptance and step 3's commit (one small
//! write) sends that message again on the next run; that window cannot be
//! closed from this side, so a message's `id` is stable and a receiver can
//! use it to drop duplicates.

use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{Connection, params};
use serde::Serialize;

use super::lifecycle::time_text;

/// A message waiting in (or delivered from) the outbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OutboxMessage {
    /// Stable for the message's life: an idempotency key for receivers.
    pub id: i64,
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
    /// When it was last tried (UTC, RFC 3339); `None`: not yet.
    pub last_attempt_at: Option<String>,
    /// Why the last attempt failed; `None` when it did not (or none was made).
    pub last_error: Option<String>,
    /// When it was delivered (UTC, RFC 3339); `None` while waiting.
    pub delivered_at: Option<String>,
}

const COLUMNS: &str = "id, created_at, channel, recipient, payload, attempts, last_attempt_at, last_error, delivered_at";

fn message(row: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxMessage> {
    Ok(OutboxMessage {
        id: row.get(0)?,
        created_at: row.get(1)?,
        channel: row.get(2)?,
        recipient: row.get(3)?,
        payload: row.get(4)?,
        attempts: row.get(5)?,
        last_attempt_at: row.get(6)?,
        last_error: row.get(7)?,
        delivered_at: row.get(8)?,
    })
}

/// Adds a message; returns its id. Call it inside the transaction that
/// records what the message announces.
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
    Ok(conn.last_insert_rowid())
}

/// Every undelivered message, oldest first (claimed or not).
pub fn pending(conn: &Connection) -> rusqlite::Result<Vec<OutboxMessage>> {
    let mut statement = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM outbox WHERE delivered_at IS NULL ORDER BY id"
    ))?;
    let rows = statement.query_map([], message)?;
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
            "UPDATE outbox SET claimed_until = ?1 WHERE delivered_at IS NULL AND (claimed_until IS NULL OR claimed_until <= ?2) \
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
        "UPDATE outbox SET delivered_at = ?2, attempts = attempts + 1, last_attempt_at = ?2, last_error = NULL, claimed_until = NULL \
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
        "UPDATE outbox SET attempts = ?3, last_attempt_at = ?4, last_error = ?2, claimed_until = NULL \
         WHERE id = ?1 AND delivered_at IS NULL",
        params![id, error, attempts, time_text(Timestamp::now())],
    )?;
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
