//! A scan's link to its record: where the database is, which exemptions
//! apply, and [`ScanRecording`], which records each row's findings (and
//! gives their statuses) and the scan as a whole. The scan pipeline drives
//! it; nothing here writes output or sends messages.

use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};

use jiff::{Timestamp, Zoned};

use crate::config::LoadedConfig;
use crate::engine::eval::RowOutcome;
use crate::engine::rule::RuleSet;
use crate::report::date::{format_day, parse_day};
use crate::report::header::Col;
use crate::report::reader::{Record, ReportError, ReportReader};
use crate::scan::ScanSummary;

use super::exemptions::{ExemptionError, ExemptionState, Exemptions};
use super::lifecycle::{PendingScan, ScanPolicy, ScanRecorder, ScanStart};
use super::store::StoreOptions;
use super::{StateError, Status, Store};

/// Why a scan's record could not be started or kept.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// The database could not be opened or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// The exemptions could not be loaded.
    #[error(transparent)]
    Exemption(#[from] ExemptionError),
    /// The report's head, read ahead for its refresh date, could not be read.
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// Where and how a scan is recorded, as plain data.
#[derive(Clone, Debug, Default)]
pub struct RecordingPlan {
    /// The database; `None`: `[state] path` from the config.
    pub path: Option<PathBuf>,
    /// Accept a report refreshed before the last scan's.
    pub allow_older: bool,
}

/// How much of the report is read ahead to find the first row's refresh
/// date.
const HEAD_BYTES: usize = 64 * 1024;

/// The database named by the flag, else by `[state] path` (relative to
/// the config file's folder).
pub(crate) fn state_path(flag: Option<&Path>, loaded: &LoadedConfig) -> PathBuf {
    state_location(flag, loaded, &|name| std::env::var_os(name)).0
}

/// The environment variable that names the database when `[state] path`
/// does not.
pub(crate) const STATE_ENV: &str = "GROUPWARDEN_STATE";

/// The database and what chose it: `--state`, `[state] path`,
/// `GROUPWARDEN_STATE`, systemd's `$STATE_DIRECTORY`, else beside the
/// config file.
pub(crate) fn state_location(
    flag: Option<&Path>,
    loaded: &LoadedConfig,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> (PathBuf, &'static str) {
    if let Some(flag) = flag {
        return (flag.to_owned(), "--state");
    }
    if let Some(path) = &loaded.config.state.path {
        return (loaded.resolve(path), "[state] path");
    }
    let set = |name: &str| env(name).filter(|value| !value.is_empty());
    if let Some(path) = set(STATE_ENV) {
        return (PathBuf::from(path), "GROUPWARDEN_STATE");
    }
    // systemd sets it from `StateDirectory=` (several folders are
    // separated by `:`; the first is ours).
    if let Some(dirs) = set("STATE_DIRECTORY") {
        let first = dirs
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_owned();
        if !first.is_empty() {
            return (
                Path::new(&first).join(super::config::DEFAULT_STATE_FILE),
                "$STATE_DIRECTORY",
            );
        }
    }
    (
        loaded.resolve(Path::new(super::config::DEFAULT_STATE_FILE)),
        "the default, beside the config file",
    )
}

/// Checks, before anything is downloaded, that the database can be
/// written where it is to be: an error here names the place, what chose
/// it, and how to choose another.
pub(crate) fn check_writable(flag: Option<&Path>, loaded: &LoadedConfig) -> Result<(), StateError> {
    let (path, origin) = state_location(flag, loaded, &|name| std::env::var_os(name));
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let problem = if std::fs::metadata(&path).is_ok() {
        let open = std::fs::OpenOptions::new().append(true).open(&path);
        open.err().map(|error| error.kind().to_string())
    } else if !dir.is_dir() {
        Some(format!("the folder {} does not exist", dir.display()))
    } else {
        let probe = tempfile::Builder::new()
            .prefix(".groupwarden-probe-")
            .tempfile_in(&dir);
        // The kind alone: tempfile names its temporary file in the text.
        probe.err().map(|error| error.kind().to_string())
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(StateError::Unwritable {
            path,
            reason: format!(
                "{problem} (the path comes from {origin}). Put the database where groupwarden may write: \
                 set [state] path in the config, or the GROUPWARDEN_STATE environment variable, \
                 or StateDirectory= in a systemd unit; --no-state scans without one"
            ),
        }),
    }
}

/// How to open the database, from `[state]` in the config; `create`:
/// make it when missing.
pub(crate) fn store_options(loaded: &LoadedConfig, create: bool) -> StoreOptions {
    StoreOptions {
        lock_timeout: loaded.config.state.lock_timeout.as_duration(),
        create,
    }
}

/// The config's exemptions and those of `[state] exemptions_file`.
pub(crate) fn load_exemptions(loaded: &LoadedConfig) -> Result<Exemptions, ExemptionError> {
    let config_name = loaded
        .path
        .as_ref()
        .map_or_else(|| "configuration".to_owned(), |p| p.display().to_string());
    let file = loaded
        .config
        .state
        .exemptions_file
        .as_ref()
        .map(|f| loaded.resolve(f));
    // Read again for the line of each entry (`groupwarden exemptions`
    // shows it); the config was parsed from this text a moment ago.
    let text = loaded
        .path
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok());
    Exemptions::load(
        &config_name,
        text.as_deref(),
        &loaded.config.exemptions,
        file.as_deref(),
    )
}

/// The config's exemptions, then those added on the command line and kept
/// in `store`.
pub(crate) fn all_exemptions(
    loaded: &LoadedConfig,
    store: &Store,
) -> Result<Exemptions, RecordingError> {
    let mut exemptions = load_exemptions(loaded)?;
    exemptions.all.extend(store.cli_exemptions()?);
    Ok(exemptions)
}

/// The existing database at `flag`, else `[state] path`, for commands
/// that only read.
pub(crate) fn open_existing(
    flag: Option<&Path>,
    loaded: &LoadedConfig,
) -> Result<Store, StateError> {
    Store::open(&state_path(flag, loaded), &store_options(loaded, false))
}

/// Today, where groupwarden runs: exemptions end at the end of their day.
pub(crate) fn today() -> jiff::civil::Date {
    Zoned::now().date()
}

/// A scan's link to the state database; inert without a plan
/// (`--no-state`).
pub(crate) struct ScanRecording {
    recorder: Option<ScanRecorder>,
}

impl ScanRecording {
    /// Opens the database and takes its write lock (no plan: does
    /// nothing); `preview`: records into a copy in memory of the existing
    /// database instead, which is only read. Warns about expired exemptions.
    pub(crate) fn begin(
        plan: Option<&RecordingPlan>,
        preview: bool,
        loaded: &LoadedConfig,
        rules: &RuleSet,
        source: &str,
    ) -> Result<ScanRecording, RecordingError> {
        let Some(plan) = plan else {
            return Ok(ScanRecording { recorder: None });
        };
        let path = state_path(plan.path.as_deref(), loaded);
        let store = if preview {
            Store::open_copy(&path, &store_options(loaded, false))?
        } else {
            Store::open(&path, &store_options(loaded, true))?
        };
        let exemptions = all_exemptions(loaded, &store)?;
        let today = today();
        for expired in exemptions.in_state(today, ExemptionState::Expired) {
            tracing::warn!(
                "{expired} expired on {}: it no longer applies",
                expired.expires
            );
        }
        let config = &loaded.config.state;
        let start = ScanStart {
            source: source.to_owned(),
            now: Timestamp::now(),
            today,
            rules: rules
                .enabled()
                .filter(|r| r.check_arity.is_some())
                .map(|r| r.id.to_string())
                .collect(),
            exemptions,
            policy: ScanPolicy {
                renotify_after: config.renotify_after.span(),
                retention: config.retention.span(),
                max_new_findings: config.max_new_findings,
            },
            allow_older: plan.allow_older,
        };
        Ok(ScanRecording {
            recorder: Some(ScanRecorder::begin(store, start)?),
        })
    }

    /// The scan is being recorded (not `--no-state`).
    pub(crate) fn is_recording(&self) -> bool {
        self.recorder.is_some()
    }

    /// Refuses a report older than the last scan's before any output is
    /// written: reads the first row's refresh date from the head of
    /// `input` and hands back a stream that replays that head. The end of
    /// the scan checks again with the report's latest date.
    pub(crate) fn check_report_start(
        &mut self,
        mut input: Box<dyn Read + Send>,
        source: &str,
    ) -> Result<Box<dyn Read + Send>, RecordingError> {
        let Some(recorder) = &self.recorder else {
            return Ok(input);
        };
        if recorder.last_refresh_date().is_none() {
            return Ok(input);
        }
        let mut head = Vec::with_capacity(HEAD_BYTES);
        let read = (&mut input).take(HEAD_BYTES as u64).read_to_end(&mut head);
        let read = read.map_err(|error: io::Error| ReportError::Io {
            source_name: source.to_owned(),
            error,
        })?;
        if let Some(date) = first_refresh_date(&head, read < HEAD_BYTES)
            && let Err(error) = recorder.check_refresh_date(&date)
        {
            if let Some(recorder) = self.recorder.take() {
                recorder.refuse(&error);
            }
            return Err(error.into());
        }
        Ok(Box::new(Cursor::new(head).chain(input)))
    }

    /// Records a row; the status of each of its findings, in order
    /// (`None` when not recording).
    pub(crate) fn record_row(
        &mut self,
        outcome: &RowOutcome,
    ) -> Result<Option<&[Status]>, StateError> {
        match &mut self.recorder {
            Some(recorder) => recorder.record_row(outcome).map(Some),
            None => Ok(None),
        }
    }

    /// The scan failed or was cut short: nothing it saw is kept, and the
    /// failed attempt is recorded.
    pub(crate) fn fail(&mut self, message: &str) {
        if let Some(recorder) = self.recorder.take() {
            recorder.fail(message);
        }
    }

    /// Applies the scan to the database and hands back the transaction,
    /// still open, for the findings it resolved and the messages to
    /// queue with it (`None` when not recording).
    pub(crate) fn finish(
        mut self,
        summary: &ScanSummary,
    ) -> Result<Option<PendingScan>, StateError> {
        match self.recorder.take() {
            Some(recorder) => recorder.finish(summary).map(Some),
            None => Ok(None),
        }
    }
}

/// The refresh date of the first row in `head`, if `head` holds that row
/// whole (another row follows it, or the input ended).
fn first_refresh_date(head: &[u8], at_end: bool) -> Option<String> {
    let mut reader = ReportReader::new(head, "head").ok()?;
    let position = reader.layout().position(Col::ReportRefreshDate)?;
    let mut record = Record::default();
    reader.read_record(&mut record).ok()??;
    if !at_end {
        reader.read_record(&mut Record::default()).ok()??;
    }
    parse_day(record.get(position)?.trim_ascii()).map(format_day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_goes_where_the_flag_config_environment_or_systemd_say() {
        let loaded = LoadedConfig {
            path: Some(PathBuf::from("/etc/groupwarden/groupwarden.toml")),
            ..LoadedConfig::default()
        };
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        let none = env(&[]);
        assert_eq!(
            state_location(None, &loaded, &none),
            (
                PathBuf::from("/etc/groupwarden/groupwarden.db"),
                "the default, beside the config file"
            )
        );
        let systemd = env(&[("STATE_DIRECTORY", "/var/lib/groupwarden:/var/lib/other")]);
        assert_eq!(
            state_location(None, &loaded, &systemd).0,
            PathBuf::from("/var/lib/groupwarden/groupwarden.db")
        );
        let both = env(&[
            ("STATE_DIRECTORY", "/var/lib/groupwarden"),
            ("GROUPWARDEN_STATE", "/data/gw.db"),
        ]);
        assert_eq!(
            state_location(None, &loaded, &both).0,
            PathBuf::from("/data/gw.db")
        );
        let mut configured = loaded.clone();
        configured.config.state.path = Some(PathBuf::from("state/gw.db"));
        assert_eq!(
            state_location(None, &configured, &both),
            (
                PathBuf::from("/etc/groupwarden/state/gw.db"),
                "[state] path"
            )
        );
        assert_eq!(
            state_location(Some(Path::new("x.db")), &configured, &both),
            (PathBuf::from("x.db"), "--state")
        );
    }

    const HEAD: &str = "Report Refresh Date,Group Display Name,Is Deleted,Last Activity Date\n";

    #[test]
    fn the_first_rows_date_is_read_only_when_the_row_is_whole() {
        let text = format!("{HEAD}2026-11-25,A,False,\n2026-11-25,B");
        assert_eq!(
            first_refresh_date(text.as_bytes(), false).as_deref(),
            Some("2026-11-25")
        );
        let cut = format!("{HEAD}2026-11-2");
        assert_eq!(first_refresh_date(cut.as_bytes(), false), None);
        assert_eq!(
            first_refresh_date(format!("{HEAD}2026-11-24,A,False,").as_bytes(), true).as_deref(),
            Some("2026-11-24")
        );
        assert_eq!(first_refresh_date(HEAD.as_bytes(), true), None);
    }
}
