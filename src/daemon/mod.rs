//! `groupwarden run`: the daemon that scans on a schedule.
//!
//! - [`config`]: the `[schedule]` and `[health]` sections.
//! - [`schedule`]: the next due time from cron patterns, time zone, jitter.
//! - [`pinned`]: the config and rules a daemon runs with, copied and
//!   checked at start and on SIGHUP.
//! - [`job`]: one scan, which is `groupwarden scan` itself on a thread,
//!   and its figures read back from the JSON summary.
//! - [`service`]: the loop of due times, finished scans and signals.
//! - [`status`] and [`http`]: `/healthz` and `/metrics`.
//!
//! See `docs/deployment.md` for how to run it.

pub mod config;
pub(crate) mod http;
pub(crate) mod job;
pub(crate) mod pinned;
pub(crate) mod schedule;
pub(crate) mod service;
pub(crate) mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The daemon could not start, or had to stop without finishing a scan.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The config or rules are not valid; the daemon does not start.
    #[error("{}: groupwarden run did not start:\n{}", path.display(), indent(problems))]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// The problems found.
        problems: Vec<String>,
    },
    /// The health endpoint's address cannot be listened on.
    #[error("config key `health.listen`: cannot listen on {address}: {error}")]
    Listen {
        /// The address from `health.listen`.
        address: SocketAddr,
        /// Why it cannot be listened on.
        error: std::io::Error,
    },
    /// Something the daemon needs could not be set up (a folder, the
    /// async runtime, signal handling).
    #[error("{0}")]
    Setup(String),
    /// Told to stop, the daemon waited this grace period and the running
    /// scan did not finish.
    #[error("the running scan did not finish within the grace period ({}s); stopped without it", .0.as_secs())]
    GraceExpired(Duration),
    /// A second stop signal (named here) came while waiting for the
    /// running scan.
    #[error("{0} again: stopped without waiting for the running scan")]
    StoppedWaiting(&'static str),
}

fn indent(problems: &[String]) -> String {
    problems
        .iter()
        .map(|p| {
            p.lines()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect::<Vec<_>>()
        .join("\n")
}
