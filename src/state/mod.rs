//! Remembering findings between scans, in an embedded SQLite database.
//!
//! ```text
//!  scan rows ──▶ lifecycle::ScanRecorder ──changed findings only──▶ finding_state (+ finding_events)
//!                  (status per finding,       seen set, group hashes ──finish──▶ resolutions, scans, state_meta
//!                   exemptions applied)                                      │
//!                                                                            ▼
//!                                              PendingScan (transaction still open): Changes
//!                                                 │  notifier glue: what each channel is owed (announced::owed),
//!                                                 │  outbox::enqueue(…) + announced::note_carried(…) ×N
//!                                                 ▼
//!                                              commit ──▶ outbox::claim → send → mark_delivered + announced::record_delivery / mark_failed
//! ```
//!
//! - [`store`] opens the file (WAL, busy timeout, write lock, clear
//!   errors for a corrupt, foreign, newer or unwritable database) and
//!   [`schema`] migrates it by `PRAGMA user_version`.
//! - [`lifecycle`] records one scan: statuses new, open, reopened,
//!   resolved and exempted, resolution only on certain evidence, the
//!   refusal of an older report, reminders, the safety cap and retention.
//! - [`changes`] is what a scan changed, as plain serialisable data
//!   ([`Changes`]) for the notifiers, and a finding as remembered.
//! - [`exemptions`] matches findings against `[[exemptions]]`, and
//!   [`cli_exemptions`] keeps those added on the command line.
//! - [`outbox`] holds messages until a channel accepted them.
//! - [`announced`] keeps, per channel, what it accepted, and so what it is
//!   owed next (see `docs/notifications.md`, "What each channel is told").
//! - [`directory`] caches the tenant's directory (`[directory]`) with its
//!   fetch time.
//! - [`query`] lists findings, a group's history and the scans.
//! - [`trend`] counts each scan's findings by rule and status.
//! - [`config`] is the `[state]` section and the exemption entries.

pub mod announced;
pub mod changes;
pub mod cli_exemptions;
pub mod config;
pub mod directory;
pub mod exemptions;
mod known;
pub mod lifecycle;
pub mod outbox;
pub(crate) mod query;
pub(crate) mod recording;
pub(crate) mod schema;
pub mod store;
pub mod trend;
mod writer;

pub use changes::{Changes, Status, StoredFinding};
pub use store::{StateError, Store};
