//! Command-line arguments, parsed into plain data. The work is done in
//! [`crate::commands`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::engine::finding::Severity;
use crate::output::Format;
use crate::state::Status;

#[derive(Debug, Parser)]
#[command(name = "groupwarden", version, about = "Governance rules over the Microsoft 365 groups activity report")]
pub struct Cli {
    /// Log level or filter (error, warn, info, debug, trace, or a tracing filter).
    #[arg(long, global = true, env = "GROUPWARDEN_LOG", default_value = "info")]
    pub log_level: String,
    /// Log lines for people (`text`) or for log shippers (`json`).
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the rules over a groups activity report and print the findings.
    Scan(ScanArgs),
    /// List the findings remembered in the state database.
    Findings(FindingsArgs),
    /// Show one group's findings over time.
    History(HistoryArgs),
    /// List the configured exemptions: active, expiring and expired.
    Exemptions(ExemptionsArgs),
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// The report CSV, or `-` for standard input.
    #[arg(long, short)]
    pub input: PathBuf,
    /// Folder of `*.rhai` rules [default: `rules.dir` from the config, else ./rules].
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Configuration file [default: ./groupwarden.toml if present].
    #[arg(long, short, env = "GROUPWARDEN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Output format [default: table on a terminal, else by --output's extension, else jsonl].
    #[arg(long, short, value_enum)]
    pub format: Option<Format>,
    /// Write findings to this file instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Exit with status 1 when a finding of this severity or higher exists.
    #[arg(long, value_enum)]
    pub fail_on: Option<Severity>,
    /// Stop at the first row that cannot be read.
    #[arg(long)]
    pub strict: bool,
    /// Worker threads for rule evaluation [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// SQLite file that remembers findings between scans [default: `[state] path` from the config, else ./groupwarden.db].
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// Remember nothing: no state database is read or written, and findings carry no status.
    #[arg(long, conflicts_with_all = ["state", "allow_older"])]
    pub no_state: bool,
    /// Scan a report refreshed before the last scan's (refused by default: it would reopen findings fixed since).
    #[arg(long)]
    pub allow_older: bool,
}

/// Where the state database is, for the commands that read it.
#[derive(Debug, Args)]
pub struct StateLocation {
    /// Configuration file [default: ./groupwarden.toml if present].
    #[arg(long, short, env = "GROUPWARDEN_CONFIG")]
    pub config: Option<PathBuf>,
    /// The state database [default: `[state] path` from the config, else ./groupwarden.db].
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FindingsArgs {
    #[command(flatten)]
    pub location: StateLocation,
    /// Only findings with these statuses (repeat or comma-separate) [default: all but resolved].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub status: Vec<Status>,
    /// Only findings of these rules (repeat or comma-separate).
    #[arg(long, value_delimiter = ',')]
    pub rule: Vec<String>,
    /// Output format [default: table on a terminal, else jsonl].
    #[arg(long, short, value_enum)]
    pub format: Option<Format>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The group: its id, its display name (any case) or a finding's group key (`name:…`).
    pub group: String,
    #[command(flatten)]
    pub location: StateLocation,
    /// Output format [default: table on a terminal, else jsonl].
    #[arg(long, short, value_enum)]
    pub format: Option<Format>,
}

#[derive(Debug, Args)]
pub struct ExemptionsArgs {
    #[command(flatten)]
    pub location: StateLocation,
    /// Output format [default: table on a terminal, else jsonl].
    #[arg(long, short, value_enum)]
    pub format: Option<Format>,
}
