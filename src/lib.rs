#![warn(missing_docs, unreachable_pub)]
//! groupwarden: governance rules over the Microsoft 365 groups activity
//! report. See `docs/architecture.md` for how the stages fit.

pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub(crate) mod duration;
pub mod engine;
pub mod notify;
pub mod output;
pub mod pipeline;
pub mod progress;
pub mod report;
pub(crate) mod retry;
pub mod scan;
pub(crate) mod source;
pub mod state;
pub mod tenants;
#[cfg(test)]
mod test_support;
