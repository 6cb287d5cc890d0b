//! Command-line arguments, parsed into plain data. The work is done in
//! [`crate::commands`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::report::shape::InputFormat;

use crate::engine::finding::Severity;
use crate::output::Format;
use crate::source::config::Period;
use crate::state::Status;

/// The whole command line: global logging options and one command.
#[derive(Debug, Parser)]
#[command(
    name = "groupwarden",
    version,
    about = "Governance rules over the Microsoft 365 groups activity report"
)]
pub struct Cli {
    /// Log level or filter (error, warn, info, debug, trace, or a tracing filter).
    #[arg(long, global = true, env = "GROUPWARDEN_LOG", default_value = "info")]
    pub log_level: String,
    /// Log lines for people (`text`) or for log shippers (`json`).
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    // `help = None`: these docs are for readers of the code; as value help
    // they would switch every command's `--help` to the long layout.
    /// Readable lines, for people.
    #[value(help = None)]
    Text,
    /// One JSON object per line, for log shippers.
    #[value(help = None)]
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the rules over a groups activity report and print the findings.
    Scan(ScanArgs),
    /// Download the groups activity report from Microsoft Graph, as received (or, with --directory, refresh the directory cache).
    Fetch(FetchArgs),
    /// Send a test message, or route and send (or render) a digest.
    Notify(NotifyArgs),
    /// Scan a report and write one self-contained HTML page: summary, charts, findings.
    Report(HtmlReportArgs),
    /// Write, test and inspect rules.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Check the configuration and the rules; never contacts a server.
    Validate(ValidateArgs),
    /// Show one group's parsed row and what every rule makes of it.
    Explain(ExplainArgs),
    /// List the findings remembered in the state database.
    Findings(FindingsArgs),
    /// Show one group's findings over time.
    History(HistoryArgs),
    /// List the exemptions (config file and command line): active, expiring, expired; or add or remove one.
    Exemptions(ExemptionsArgs),
    /// Findings over time: each scan's findings by rule and status, from the state database.
    Trend(TrendArgs),
    /// Keep running and scan on the config's `[schedule]`; SIGHUP reloads, SIGTERM stops.
    Run(RunArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(CompletionsArgs),
    /// Print the manual page (roff), for `man -l -` or a man directory.
    Man,
}

/// Options of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Options of `scan`.
#[derive(Debug, Default, Args)]
pub struct ScanArgs {
    /// The report CSV, or `-` for standard input [default: the config's `[source]`].
    #[arg(long, short)]
    pub input: Option<PathBuf>,
    /// Which report to download, when it comes from Graph.
    #[command(flatten)]
    pub report: ReportArgs,
    /// Keep the raw report CSV in this folder as `groups-activity-<refresh date>-<period>.csv`.
    #[arg(long, value_name = "DIR")]
    pub save_report: Option<PathBuf>,
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
    /// CSV: write cells that start with = + - @ as they are (for programs; by default they get a leading ' so a spreadsheet shows them as text).
    #[arg(long)]
    pub raw_csv: bool,
    /// Exit with status 1 when a finding of this severity or higher exists.
    #[arg(long, value_enum)]
    pub fail_on: Option<Severity>,
    /// How the scan reads and evaluates.
    #[command(flatten)]
    pub tuning: ScanTuning,
    /// SQLite file that remembers findings between scans [default: `[state] path` from the config, else ./groupwarden.db].
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// Remember nothing: no state database is read or written, and findings carry no status.
    #[arg(long, conflicts_with_all = ["state", "allow_older"])]
    pub no_state: bool,
    /// Scan a report refreshed before the last scan's (refused by default: it would reopen findings fixed since).
    #[arg(long)]
    pub allow_older: bool,
    /// Which of the config's `[[tenants]]` to scan.
    #[command(flatten)]
    pub tenants: TenantArgs,
}

/// Which tenants a command runs on, with `[[tenants]]` in the config.
#[derive(Debug, Default, Args)]
pub struct TenantArgs {
    /// Scan this tenant of the config's `[[tenants]]` (repeat or comma-separate).
    #[arg(long = "tenant", value_name = "NAME", value_delimiter = ',')]
    pub names: Vec<String>,
    /// Scan every tenant of the config's `[[tenants]]`.
    #[arg(long, conflicts_with = "names")]
    pub all_tenants: bool,
    /// Only the tenants in part I of N (1-based), by a hash of each tenant id; `auto/N` takes I from $JOB_COMPLETION_INDEX + 1 (a Kubernetes indexed Job).
    #[arg(long, value_name = "I/N", value_parser = crate::tenants::Shard::parse)]
    pub shard: Option<crate::tenants::Shard>,
}

/// How a scan reads and evaluates, shared by `scan` and `report`.
#[derive(Debug, Default, Args)]
pub struct ScanTuning {
    /// Stop at the first row that cannot be read.
    #[arg(long)]
    pub strict: bool,
    /// Worker threads for rule evaluation [default: all cores, at most 8].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run every rule in the Rhai interpreter, not compiled (slower; the results are the same).
    #[arg(long)]
    pub no_fast_path: bool,
    /// The report's format [default: auto: CSV or JSON by the content, whatever the file name].
    #[arg(long, value_enum, default_value_t = InputFormat::Auto, hide_default_value = true)]
    pub input_format: InputFormat,
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
    /// With `[[tenants]]` in the config: whose state to read (its own database file).
    #[arg(long, value_name = "NAME")]
    pub tenant: Option<String>,
}

/// Options of `findings`.
#[derive(Debug, Args)]
pub struct FindingsArgs {
    /// Where the state database is.
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

/// Options of `history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The group: its id, its display name (any case) or a finding's group key (`name:…`).
    pub group: String,
    /// Where the state database is.
    #[command(flatten)]
    pub location: StateLocation,
    /// Output format [default: table on a terminal, else jsonl].
    #[arg(long, short, value_enum)]
    pub format: Option<Format>,
}

/// Options of `exemptions`: a listing, or `add` / `remove`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ExemptionsArgs {
    /// Add or remove an exemption; none: list them all.
    #[command(subcommand)]
    pub action: Option<ExemptionsAction>,
    /// Where the state database is.
    #[command(flatten)]
    pub location: StateLocation,
    /// Output format [default: table on a terminal, else jsonl].
    #[arg(long, short, value_enum)]
    pub format: Option<Format>,
}

/// The `exemptions` subcommands.
#[derive(Debug, Subcommand)]
pub enum ExemptionsAction {
    /// Exempt a rule's findings on one group, kept in the state database; the next scan applies it.
    Add(ExemptionAddArgs),
    /// Remove an exemption added with `exemptions add`; the next scan no longer applies it.
    Remove(ExemptionRemoveArgs),
}

/// Options of `exemptions add`.
#[derive(Debug, Args)]
pub struct ExemptionAddArgs {
    /// Where the state database is.
    #[command(flatten)]
    pub location: StateLocation,
    /// Folder of `*.rhai` rules, to check the rule id [default: `rules.dir` from the config, else ./rules].
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// The rule id, or `*` for every rule.
    #[arg(long)]
    pub rule: String,
    /// The group: its id, or its exact display name (any case), as the state database knows it.
    #[arg(long)]
    pub group: String,
    /// Why the findings are accepted.
    #[arg(long)]
    pub reason: String,
    /// The last day it applies (YYYY-MM-DD, today or later).
    #[arg(long)]
    pub expires: String,
    /// Who approved it.
    #[arg(long, value_name = "WHO")]
    pub approved_by: Option<String>,
}

/// Options of `exemptions remove`.
#[derive(Debug, Args)]
pub struct ExemptionRemoveArgs {
    /// Where the state database is.
    #[command(flatten)]
    pub location: StateLocation,
    /// The rule id (or `*`) the exemption was added for.
    #[arg(long)]
    pub rule: String,
    /// The group, as given to `exemptions add` (its id or exact name).
    #[arg(long)]
    pub group: String,
}

/// Options of `trend`.
#[derive(Debug, Args)]
pub struct TrendArgs {
    /// Where the state database is.
    #[command(flatten)]
    pub location: StateLocation,
    /// Only these rules (repeat or comma-separate) [default: every rule].
    #[arg(long, value_delimiter = ',')]
    pub rule: Vec<String>,
    /// Only scans that finished within this long (`90d`, `2w`, `12h`) or since this day (YYYY-MM-DD) [default: every scan].
    #[arg(long)]
    pub since: Option<String>,
    /// Output format [default: table on a terminal, else jsonl].
    #[arg(long, short, value_enum)]
    pub format: Option<Format>,
}

/// Which report to ask Microsoft Graph for; overrides `[source]`.
#[derive(Debug, Default, Args)]
pub struct ReportArgs {
    /// The report period.
    #[arg(long, value_enum, ignore_case = true, conflicts_with = "date")]
    pub period: Option<Period>,
    /// One day's report (YYYY-MM-DD, within the past 28 days).
    #[arg(long)]
    pub date: Option<jiff::civil::Date>,
}

/// Options of `fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Where to write the report CSV, or `-` for standard output.
    #[arg(long, short, required_unless_present = "directory")]
    pub output: Option<PathBuf>,
    /// Refresh the directory cache (`[directory]`: owners, creation dates, Teams) in the state database now.
    #[arg(long)]
    pub directory: bool,
    /// The state database that caches the directory [default: `[state] path` from the config, else ./groupwarden.db].
    #[arg(long, value_name = "PATH", requires = "directory")]
    pub state: Option<PathBuf>,
    /// Configuration file [default: ./groupwarden.toml if present].
    #[arg(long, short, env = "GROUPWARDEN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Which report to download.
    #[command(flatten)]
    pub report: ReportArgs,
}

/// Options of `notify`: exactly one of `--test`, `--digest`, `--input`,
/// `--retry`, `--dead-letters` or `--discard`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["test", "digest", "input", "retry", "dead_letters", "discard"])))]
pub struct NotifyArgs {
    /// Configuration file with the `[[notify]]` channels [default: ./groupwarden.toml if present].
    #[arg(long, short, env = "GROUPWARDEN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Send a test message through this channel (its `name`, or its type when unnamed).
    #[arg(long, value_name = "CHANNEL")]
    pub test: Option<String>,
    /// Route and send this digest (JSON, as the state store's outbox keeps it).
    #[arg(long, value_name = "FILE")]
    pub digest: Option<PathBuf>,
    /// Scan this report and announce every finding as new: what a first run sends.
    #[arg(long, short, value_name = "REPORT")]
    pub input: Option<PathBuf>,
    /// With --input: folder of `*.rhai` rules [default: `rules.dir` from the config, else ./rules].
    #[arg(long, requires = "input")]
    pub rules: Option<PathBuf>,
    /// Only these channels (repeatable) [default: all].
    #[arg(long = "channel", value_name = "NAME")]
    pub channels: Vec<String>,
    /// Render every message that would be sent and send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: write each message into this folder instead of standard output.
    #[arg(long, value_name = "DIR", requires = "dry_run")]
    pub out: Option<PathBuf>,
    /// Send the messages still waiting in the state database's outbox; with ID (a number or delivery id from --dead-letters), make that dead letter pending again first.
    #[arg(long, value_name = "ID", num_args = 0..=1)]
    pub retry: Option<Option<String>>,
    /// List the outbox's dead letters: messages refused for good or out of runs, which no scan tries any more.
    #[arg(long)]
    pub dead_letters: bool,
    /// Remove this dead letter (a number or delivery id from --dead-letters) from the outbox for good.
    #[arg(long, value_name = "ID")]
    pub discard: Option<String>,
    /// With --retry, --dead-letters or --discard: the state database [default: `[state] path` from the config].
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// With `[[tenants]]` in the config: the tenant whose channels, outbox and state are meant.
    #[arg(long, value_name = "NAME")]
    pub tenant: Option<String>,
}

/// Options of `report`.
#[derive(Debug, Args)]
pub struct HtmlReportArgs {
    /// The report CSV, or `-` for standard input [default: the config's `[source]`].
    #[arg(long, short)]
    pub input: Option<PathBuf>,
    /// Which report to download, when it comes from Graph.
    #[command(flatten)]
    pub report: ReportArgs,
    /// Keep the raw report CSV in this folder as `groups-activity-<refresh date>-<period>.csv`.
    #[arg(long, value_name = "DIR")]
    pub save_report: Option<PathBuf>,
    /// Folder of `*.rhai` rules [default: `rules.dir` from the config, else ./rules].
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Configuration file [default: ./groupwarden.toml if present].
    #[arg(long, short, env = "GROUPWARDEN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where to write the HTML page (e.g. report.html).
    #[arg(long, short)]
    pub output: PathBuf,
    /// Exit with status 1 when a finding of this severity or higher exists.
    #[arg(long, value_enum)]
    pub fail_on: Option<Severity>,
    /// How the scan reads and evaluates.
    #[command(flatten)]
    pub tuning: ScanTuning,
    /// The state database whose statuses, first-seen days, resolved findings and exemptions the page shows (read, never written) [default: `[state] path`, as `scan` finds it].
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// With `[[tenants]]` in the config: the tenant whose report and state the page shows.
    #[arg(long, value_name = "NAME")]
    pub tenant: Option<String>,
}

/// The `rules` subcommands.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// List the rules: id, severity, title, parameters, enabled or not.
    List(RulesListArgs),
    /// Run the test cases beside each rule (`<rule>.test.toml`).
    Test(RulesTestArgs),
    /// Write a commented rule skeleton and a passing test file.
    New(RulesNewArgs),
    /// Print the reference of row fields and tenant summary properties (Markdown).
    Fields,
    /// Write the rules built into groupwarden, and their tests, to a folder to edit.
    Eject(RulesEjectArgs),
}

/// Options of `rules eject`.
#[derive(Debug, Args)]
pub struct RulesEjectArgs {
    /// The folder to write them to (created if need be).
    pub dir: PathBuf,
    /// Overwrite files that are there.
    #[arg(long)]
    pub force: bool,
}

/// Where the rules are, as `scan` finds them.
#[derive(Debug, Args)]
pub struct RulesLocation {
    /// Folder of `*.rhai` rules [default: `rules.dir` from the config, else ./rules].
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Configuration file [default: ./groupwarden.toml if present].
    #[arg(long, short, env = "GROUPWARDEN_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Options of `rules list`.
#[derive(Debug, Args)]
pub struct RulesListArgs {
    /// Where the rules are.
    #[command(flatten)]
    pub location: RulesLocation,
}

/// Options of `rules test`.
#[derive(Debug, Args)]
pub struct RulesTestArgs {
    /// Where the rules are.
    #[command(flatten)]
    pub location: RulesLocation,
    /// Rules to test, by id or file name [default: all].
    pub rule: Vec<String>,
}

/// Options of `rules new`.
#[derive(Debug, Args)]
pub struct RulesNewArgs {
    /// Where the rules are.
    #[command(flatten)]
    pub location: RulesLocation,
    /// The new rule's id and file name: letters, digits, `-` and `_`.
    pub name: String,
}

/// Options of `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Where the config and rules are.
    #[command(flatten)]
    pub location: RulesLocation,
}

/// Options of `explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The report CSV, or `-` for standard input.
    #[arg(long, short)]
    pub input: PathBuf,
    /// Where the rules are.
    #[command(flatten)]
    pub location: RulesLocation,
    /// The group: its id, its name, or (in a concealed report) its hashed name.
    pub group: String,
    /// With `[[tenants]]` in the config: explain with this tenant's rule
    /// parameters, disabled rules and directory cache, as its scan runs.
    #[arg(long, value_name = "NAME")]
    pub tenant: Option<String>,
}

/// Options of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Configuration file with the `[schedule]` [default: ./groupwarden.toml if present].
    #[arg(long, short, env = "GROUPWARDEN_CONFIG")]
    pub config: Option<PathBuf>,
}
