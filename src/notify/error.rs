//! Why notifying failed.

use std::path::PathBuf;

use super::InvalidChannels;

/// Why notifying failed.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The state store failed (reading the outbox, recording deliveries).
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// The `[[notify]]` sections of the configuration are not usable.
    #[error(transparent)]
    Channels(#[from] InvalidChannels),
    /// A file given as a digest does not hold a digest's JSON.
    #[error("{path}: not a digest: {message}")]
    Digest {
        /// The file given as a digest.
        path: PathBuf,
        /// What the JSON parser objected to.
        message: String,
    },
    /// A channel asked for by name is not configured.
    #[error("no [[notify]] channel named `{name}` (channels: {known})")]
    UnknownChannel {
        /// The name asked for.
        name: String,
        /// The configured channels' names, for the message.
        known: String,
    },
    /// A test message was asked of an owner-routed channel (named here)
    /// that has no `fallback_to` to send it to.
    #[error(
        "channel `{0}` sends to group owners; a test message goes to its `fallback_to`, which is not set"
    )]
    NoTestRecipient(String),
    /// Some messages were not delivered; each failure was logged already.
    #[error("{failed} of {total} messages were not delivered (see the errors above)")]
    Undelivered {
        /// How many messages were not delivered.
        failed: usize,
        /// How many messages there were to deliver.
        total: usize,
    },
    /// `notify --retry ID` or `--discard ID` named no dead letter.
    #[error("outbox message {key}: {problem}")]
    NotADeadLetter {
        /// The number or delivery id given.
        key: String,
        /// What the message is instead: missing, delivered, pending.
        problem: &'static str,
    },
    /// Notifying cannot start or go on: no async runtime or HTTP client,
    /// no Graph credentials, a digest that cannot be stored.
    #[error("{0}")]
    Setup(String),
}
