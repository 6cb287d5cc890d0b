//! One module per command: turn parsed arguments into the objects that do
//! the work, run them, and say how it went.

pub mod announce;
pub mod exemptions;
pub mod explain;
pub mod fetch;
pub mod findings;
pub mod history;
pub mod listing;
pub mod notify;
pub mod report;
pub mod rules;
pub mod run;
pub mod scan;
pub mod state;
pub mod validate;

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use rhai::Engine;

use crate::cli::{Cli, Command};
use crate::config::{ConfigError, LoadedConfig};
use crate::engine::rule::{RuleError, RuleSet};
use crate::engine::sandbox::build_engine;
use crate::output::Format;
use crate::scan::ScanError;
use crate::source::error::SourceError;
use crate::state::StateError;
use crate::state::exemptions::ExemptionError;

/// How a successful command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Clean,
    /// Exit 1: findings at or above `--fail-on`, or failed rule tests.
    Failing,
}

/// A command that could not do its job (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Rules(#[from] RuleError),
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Exemption(#[from] ExemptionError),
    #[error("{path}: {error}")]
    File { path: PathBuf, error: io::Error },
    #[error("writing output: {0}")]
    Output(#[from] io::Error),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Notify(#[from] notify::NotifyError),
    #[error(transparent)]
    Daemon(#[from] crate::daemon::DaemonError),
}

impl Error {
    /// Output to a closed pipe (`groupwarden scan … | head`) is not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        match self {
            Error::Output(e) => e.kind() == io::ErrorKind::BrokenPipe,
            Error::Scan(ScanError::Sink(message)) => message.contains("Broken pipe"),
            _ => false,
        }
    }
}

pub fn run(cli: Cli) -> Result<Outcome, Error> {
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
        Command::Run(args) => run::run(args),
    }
}

/// The sandboxed engine and the rules of `dir_flag`, else the config's
/// `rules.dir`, else `./rules`.
pub fn load_rules(
    dir_flag: Option<&Path>,
    loaded: &LoadedConfig,
) -> Result<(Engine, RuleSet), Error> {
    let config = &loaded.config.rules;
    let dir = rules_dir(dir_flag, loaded);
    let engine = build_engine(&config.limits());
    let rules = RuleSet::load(&engine, &dir, config)?;
    Ok((engine, rules))
}

/// The rules folder: `dir_flag`, else the config's `rules.dir`, else `./rules`.
pub fn rules_dir(dir_flag: Option<&Path>, loaded: &LoadedConfig) -> PathBuf {
    match (dir_flag, &loaded.config.rules.dir) {
        (Some(dir), _) => dir.to_owned(),
        (None, Some(dir)) => loaded.resolve(dir),
        (None, None) => PathBuf::from("rules"),
    }
}

/// A report from a path, or standard input for `-`.
pub fn open_input(path: &Path) -> Result<(Box<dyn Read + Send>, String), Error> {
    if path == Path::new("-") {
        return Ok((Box::new(io::stdin()), "<stdin>".to_owned()));
    }
    let file = File::open(path).map_err(|error| Error::File {
        path: path.to_owned(),
        error,
    })?;
    Ok((Box::new(file), path.display().to_string()))
}

/// Where a command writes what it found.
pub struct Output {
    pub out: Box<dyn Write>,
    pub format: Format,
    /// For a file: what puts it in place once written.
    pub file: Option<OutputFile>,
}

/// The output stream and its format: the flag, else by the file's
/// extension, else `table` on a terminal and `jsonl` elsewhere.
pub fn open_output(path: Option<&Path>, format: Option<Format>) -> Result<Output, Error> {
    match path {
        Some(path) => {
            let (file, pending) = OutputFile::create(path).map_err(|error| Error::File {
                path: path.to_owned(),
                error,
            })?;
            let by_extension = match path.extension().and_then(|e| e.to_str()) {
                Some("json") => Format::Json,
                Some("csv") => Format::Csv,
                Some("txt") => Format::Table,
                Some("html" | "htm") => Format::Html,
                _ => Format::Jsonl,
            };
            Ok(Output {
                out: Box::new(file),
                format: format.unwrap_or(by_extension),
                file: pending,
            })
        }
        None => {
            let stdout = io::stdout();
            let default = if stdout.is_terminal() {
                Format::Table
            } else {
                Format::Jsonl
            };
            Ok(Output {
                out: Box::new(stdout),
                format: format.unwrap_or(default),
                file: None,
            })
        }
    }
}

/// `tempfile` appends ` at path "<its temporary file>"` to its errors;
/// the user named the output, which the caller says instead.
fn without_temp_name(error: io::Error) -> io::Error {
    let text = error.to_string();
    match text.rfind(" at path ") {
        Some(end) => io::Error::new(error.kind(), &text[..end]),
        None => error,
    }
}

/// An output file being written under a temporary name beside it, renamed
/// over the real name by [`OutputFile::commit`] once the command has
/// written all of it. A command that fails part way (a bad header, a
/// download cut short) leaves the previous file as it was, not an empty
/// or half-written one, and a reader never sees a partial file.
#[derive(Debug)]
pub struct OutputFile {
    temp: tempfile::TempPath,
    path: PathBuf,
}

impl OutputFile {
    /// The file to write to, and the pending rename (`None` for what is not
    /// a regular file, like `/dev/stdout` or a pipe: written directly).
    fn create(path: &Path) -> io::Result<(File, Option<OutputFile>)> {
        let existing = std::fs::metadata(path).ok();
        if existing.as_ref().is_some_and(|m| !m.is_file()) {
            return Ok((File::create(path)?, None));
        }
        // A symbolic link stays one: the file it points to is replaced,
        // as writing through the link would replace its content.
        let path = match existing {
            Some(_) => std::fs::canonicalize(path)?,
            None => path.to_owned(),
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let mut builder = tempfile::Builder::new();
        builder.prefix(".groupwarden-").suffix(".partial");
        // As `File::create` would: the umask's permissions for a new file.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let (file, temp) = builder
            .tempfile_in(dir)
            .map_err(without_temp_name)?
            .into_parts();
        // A file replaced keeps its permissions, as one truncated would.
        if let Some(existing) = existing {
            file.set_permissions(existing.permissions())?;
        }
        Ok((file, Some(OutputFile { temp, path })))
    }

    /// Puts the written file in place of `path`.
    pub fn commit(self) -> Result<(), Error> {
        self.temp.persist(&self.path).map_err(|e| Error::File {
            path: self.path,
            error: e.error,
        })
    }
}
