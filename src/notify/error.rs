//! Why notifying failed.

use std::path::PathBuf;

use super::InvalidChannels;

/// Why notifying failed.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Channels(#[from] InvalidChannels),
    #[error("{path}: not a digest: {message}")]
    Digest { path: PathBuf, message: String },
    #[error("no [[notify]] channel named `{name}` (channels: {known})")]
    UnknownChannel { name: String, known: String },
    #[error(
        "channel `{0}` sends to group owners; a test message goes to its `fallback_to`, which is not set"
    )]
    NoTestRecipient(String),
    #[error("{failed} of {total} messages were not delivered (see the errors above)")]
    Undelivered { failed: usize, total: usize },
    #[error("{0}")]
    Setup(String),
}
