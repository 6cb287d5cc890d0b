//! What can stop a command or a scheduled scan: one typed error, turned
//! into a message and exit status 2 by the front ends.

use std::io;
use std::path::PathBuf;

use crate::config::ConfigError;
use crate::engine::rule::RuleError;
use crate::notify::NotifyError;
use crate::scan::ScanError;
use crate::source::error::SourceError;
use crate::state::StateError;
use crate::state::exemptions::ExemptionError;

/// A command or scan that could not do its job (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file could not be read or is not valid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The rules could not be loaded or compiled.
    #[error(transparent)]
    Rules(#[from] RuleError),
    /// The scan stopped: the report could not be read, a bad row under
    /// `--strict`, or the sink failed.
    #[error(transparent)]
    Scan(#[from] ScanError),
    /// The scan ran but cannot be trusted: too many report rows could not
    /// be read (the `[scan]` limits).
    #[error(transparent)]
    Failed(#[from] crate::pipeline::scan::ScanFailure),
    /// The state database could not be used.
    #[error(transparent)]
    State(#[from] StateError),
    /// The exemptions could not be loaded.
    #[error(transparent)]
    Exemption(#[from] ExemptionError),
    /// A file named on the command line or in the config could not be used.
    #[error("{path}: {error}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: io::Error,
    },
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Output(#[from] io::Error),
    /// The arguments do not make sense together; the message says why.
    #[error("{0}")]
    Usage(String),
    /// The report could not be had from its source (Graph, a file).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The directory (`[directory]`) could not be fetched.
    #[error(transparent)]
    Directory(Box<crate::source::directory::DirectoryError>),
    /// Notifications could not be set up or sent.
    #[error(transparent)]
    Notify(#[from] NotifyError),
    /// A front end's own failure (the daemon's), kept whole.
    #[error(transparent)]
    Service(Box<dyn std::error::Error + Send + Sync>),
}

impl From<crate::source::directory::DirectoryError> for Error {
    fn from(error: crate::source::directory::DirectoryError) -> Self {
        Error::Directory(Box::new(error))
    }
}

impl From<crate::output::file::OutputFileError> for Error {
    fn from(error: crate::output::file::OutputFileError) -> Self {
        Error::File {
            path: error.path,
            error: error.error,
        }
    }
}

impl From<crate::state::recording::RecordingError> for Error {
    fn from(error: crate::state::recording::RecordingError) -> Self {
        use crate::state::recording::RecordingError;
        match error {
            RecordingError::State(error) => Error::State(error),
            RecordingError::Exemption(error) => Error::Exemption(error),
            RecordingError::Report(error) => Error::Scan(error.into()),
        }
    }
}

impl Error {
    /// Output to a closed pipe (`groupwarden scan … | head`) is not a
    /// failure. Walks the chain of causes, as ripgrep does, so a broken
    /// pipe is found wherever it was wrapped.
    pub fn is_broken_pipe(&self) -> bool {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(error) = cause {
            if let Some(io_error) = error.downcast_ref::<io::Error>()
                && io_error.kind() == io::ErrorKind::BrokenPipe
            {
                return true;
            }
            cause = wrapped(error);
        }
        false
    }
}

/// The error inside `error`. `source()` alone is not enough: a
/// transparent variant hands on its inner error's source, skipping the
/// inner error itself, and `File` keeps its `io::Error` as a field.
fn wrapped<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a (dyn std::error::Error + 'static)> {
    if let Some(error) = error.downcast_ref::<Error>() {
        return match error {
            Error::File { error, .. } | Error::Output(error) => Some(error),
            Error::Scan(scan) => Some(scan),
            Error::Service(inner) => Some(&**inner),
            other => std::error::Error::source(other),
        };
    }
    match error.downcast_ref::<ScanError>() {
        Some(ScanError::Sink(inner)) => Some(&**inner),
        _ => error.source(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_pipe_is_found_however_deep_it_was_wrapped() {
        let pipe = || io::Error::from(io::ErrorKind::BrokenPipe);
        assert!(Error::Output(pipe()).is_broken_pipe());
        let in_sink = Error::Scan(ScanError::Sink(Box::new(Error::Output(pipe()))));
        assert!(in_sink.is_broken_pipe());
        let other = Error::Scan(ScanError::Sink(Box::new(Error::Output(io::Error::from(
            io::ErrorKind::PermissionDenied,
        )))));
        assert!(!other.is_broken_pipe());
        assert!(!Error::Usage("Broken pipe".into()).is_broken_pipe());
        let bare = Error::Scan(ScanError::Sink(Box::new(pipe())));
        assert!(bare.is_broken_pipe());
    }
}
