//! One module per command: turn parsed arguments into plain data (a
//! [`crate::pipeline`] plan, a query), run it, and turn what came back
//! into text and an exit status. Nothing below calls up into here.

pub(crate) mod exemptions;
pub(crate) mod explain;
pub(crate) mod fetch;
pub(crate) mod findings;
pub(crate) mod history;
pub(crate) mod listing;
pub(crate) mod notify;
pub(crate) mod report;
pub(crate) mod rules;
pub(crate) mod run;
pub(crate) mod scan;
pub(crate) mod trend;
pub(crate) mod validate;

use crate::cli::{Cli, Command, ReportArgs};
use crate::source::config::ReportRequest;

pub use crate::output::file::{Output, OutputFile, open_output};
pub use crate::pipeline::Error;
pub use crate::pipeline::input::open_input;
pub use crate::pipeline::rules::{load_rules, rules_dir};

/// `--log-format`, for the commands whose summary becomes an event in JSON.
static LOG_FORMAT: std::sync::OnceLock<crate::cli::LogFormat> = std::sync::OnceLock::new();

/// The log format the command runs with.
fn log_format() -> crate::cli::LogFormat {
    LOG_FORMAT
        .get()
        .copied()
        .unwrap_or(crate::cli::LogFormat::Text)
}

/// A line for the person running the command, on stderr: as it is with
/// text logs, as an `info` event with `--log-format json` (where stderr
/// carries only JSON lines).
macro_rules! say {
    ($($arg:tt)*) => {
        match $crate::commands::log_format() {
            $crate::cli::LogFormat::Json => ::tracing::info!($($arg)*),
            $crate::cli::LogFormat::Text => ::std::eprintln!($($arg)*),
        }
    };
}
pub(crate) use say;

/// How a successful command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Clean,
    /// Exit 1: findings at or above `--fail-on`, or failed rule tests.
    Failing,
}

/// Runs the command `cli` names.
pub fn run(cli: Cli) -> Result<Outcome, Error> {
    let _ = LOG_FORMAT.set(cli.log_format);
    match cli.command {
        Command::Scan(args) => scan::run(args),
        Command::Fetch(args) => fetch::run(args),
        Command::Notify(args) => notify::run(args),
        Command::Report(args) => report::run(args),
        Command::Rules(command) => rules::run(command),
        Command::Validate(args) => validate::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Findings(args) => findings::run(args),
        Command::History(args) => history::run(args),
        Command::Exemptions(args) => exemptions::run(args),
        Command::Trend(args) => trend::run(args),
        Command::Run(args) => run::run(args),
        Command::Completions(args) => {
            // Into a buffer first: clap_complete panics on a closed pipe.
            let mut script = Vec::new();
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(args.shell, &mut command, "groupwarden", &mut script);
            std::io::Write::write_all(&mut std::io::stdout(), &script)?;
            Ok(Outcome::Clean)
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(command).render(&mut std::io::stdout())?;
            Ok(Outcome::Clean)
        }
    }
}

/// The existing state database, opened read-only, for the commands that
/// only read it.
pub fn open_existing(location: &crate::cli::StateLocation) -> Result<crate::state::Store, Error> {
    let (loaded, flag) = load_location(location)?;
    Ok(open_read_only(flag.as_deref(), &loaded)?)
}

/// The configuration a state-reading command uses, and the `--state` to
/// pass on: with `--tenant`, the tenant's configuration, whose `[state]
/// path` is its own database (`--state` then placed as a template).
pub(crate) fn load_location(
    location: &crate::cli::StateLocation,
) -> Result<(crate::config::LoadedConfig, Option<std::path::PathBuf>), Error> {
    let loaded = crate::config::LoadedConfig::load(location.config.as_deref())?;
    let tenant = location.tenant.as_deref();
    let resolved = crate::tenants::for_reading(loaded, tenant, location.state.as_deref())
        .map_err(Error::Usage)?;
    let flag = match tenant {
        Some(_) => None,
        None => location.state.clone(),
    };
    Ok((resolved, flag))
}

/// The existing database at `flag`, else `[state] path`, opened read-only
/// (see [`crate::state::Store::open_read_only`]).
pub(crate) fn open_read_only(
    flag: Option<&std::path::Path>,
    loaded: &crate::config::LoadedConfig,
) -> Result<crate::state::Store, crate::state::StateError> {
    use crate::state::recording::{state_path, store_options};
    crate::state::Store::open_read_only(&state_path(flag, loaded), &store_options(loaded, false))
}

/// The report a scanning command reads: `--input`, `--period`/`--date`,
/// `--save-report` and `--input-format`.
pub fn report_input(
    path: Option<std::path::PathBuf>,
    report: &ReportArgs,
    save_report: Option<std::path::PathBuf>,
    tuning: &crate::cli::ScanTuning,
) -> crate::pipeline::input::ReportInput {
    crate::pipeline::input::ReportInput {
        path,
        request: report_request(report),
        save_dir: save_report,
        format: tuning.input_format,
    }
}

/// `--period`/`--date` as the report to ask Graph for.
pub fn report_request(report: &ReportArgs) -> Option<ReportRequest> {
    match (report.period, report.date) {
        (_, Some(date)) => Some(ReportRequest::Date(date)),
        (Some(period), None) => Some(ReportRequest::Period(period)),
        (None, None) => None,
    }
}
