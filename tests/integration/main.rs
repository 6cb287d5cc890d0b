//! The integration tests, as one binary: the real `groupwarden` binary and
//! the library against real files, servers on loopback and tools found on
//! the machine. One binary links the crate and the test dependencies once
//! instead of once per file.
//!
//! Every module launches the binary through [`util::gw`] or
//! [`util::gw_std`], so no `GROUPWARDEN_*` or `AZURE_*` variable of the
//! machine running the tests reaches it.

mod util;

mod accounting;
mod announce;
mod bounds;
mod chat_schema;
mod completions;
mod daemon;
mod deploy;
mod directory;
mod doc_examples;
mod email_messages;
mod graph;
mod hardening;
mod html_report;
mod launcher;
mod notify;
mod progress;
mod rules_cli;
mod scan;
mod shapes;
mod state;
mod state_storage;
mod tenants;
mod trend;
