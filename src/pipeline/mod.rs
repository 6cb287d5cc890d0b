//! The scan pipeline as a library: a plain-data [`ScanPlan`] in, a typed
//! [`ScanOutcome`] out. `groupwarden scan`, `groupwarden report` and the
//! daemon's scheduled scans all build a plan and call [`scan()`]; they only
//! turn arguments or a schedule into plans, and outcomes into text, exit
//! codes and metrics.
//!
//! - [`scan`](mod@scan) runs one scan and delivers its outbox.
//! - [`directory`] gets the directory a scan joins (`[directory]`):
//!   cached in the state database, or fetched from Graph.
//! - [`input`] picks the report: a file, standard input or Graph.
//! - [`rules`] finds and loads the rules.
//! - [`checks`] validates a configuration without contacting a server.
//! - [`error`] is the one error type of a command or scan.

pub(crate) mod checks;
pub(crate) mod directory;
pub mod error;
pub(crate) mod input;
pub(crate) mod rules;
pub mod scan;

pub use error::Error;
pub use scan::{OutputPlan, Recorded, ScanOutcome, ScanPlan, Tuning, scan};
