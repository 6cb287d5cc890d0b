//! The state database as the commands use it: where it is, which
//! exemptions apply, and [`ScanState`], the link between `groupwarden
//! scan` and its record.

use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use crate::report::reader::Record;
use jiff::{Timestamp, Zoned};

use super::Error;
use crate::cli::{ScanArgs, StateLocation};
use crate::config::LoadedConfig;
use crate::engine::eval::RowOutcome;
use crate::engine::finding::Severity;
use crate::engine::rule::RuleSet;
use crate::output::FindingWriter;
use crate::report::date::{format_day, parse_day};
use crate::report::header::Col;
use crate::report::reader::{ReportError, ReportReader};
use crate::scan::{ScanError, ScanSummary};
use crate::state::exemptions::{ExemptionState, Exemptions};
use crate::state::lifecycle::{ScanPolicy, ScanRecorder, ScanStart};
use crate::state::store::StoreOptions;
use crate::state::{Changes, Status, Store};

/// How much of the report is read ahead to find the first row's refresh
/// date.
const HEAD_BYTES: usize = 64 * 1024;

/// The database named by the flag, else by `[state] path` (relative to
/// the config file's folder).
pub fn state_path(flag: Option<&Path>, loaded: &LoadedConfig) -> PathBuf {
    flag.map(Path::to_owned)
        .unwrap_or_else(|| loaded.resolve(&loaded.config.state.path))
}

pub fn store_options(loaded: &LoadedConfig, create: bool) -> StoreOptions {
    StoreOptions {
        lock_timeout: loaded.config.state.lock_timeout.as_duration(),
        create,
    }
}

/// The config's exemptions and those of `[state] exemptions_file`.
pub fn load_exemptions(loaded: &LoadedConfig) -> Result<Exemptions, Error> {
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
    Ok(Exemptions::load(
        &config_name,
        &loaded.config.exemptions,
        file.as_deref(),
    )?)
}

/// The existing database, for commands that only read.
pub fn open_existing(location: &StateLocation) -> Result<Store, Error> {
    let loaded = LoadedConfig::load(location.config.as_deref())?;
    let path = state_path(location.state.as_deref(), &loaded);
    Ok(Store::open(&path, &store_options(&loaded, false))?)
}

/// Today, where groupwarden runs: exemptions end at the end of their day.
pub fn today() -> jiff::civil::Date {
    Zoned::now().date()
}

/// A scan's link to the state database; inert under `--no-state`.
pub struct ScanState {
    recorder: Option<ScanRecorder>,
}

impl ScanState {
    /// Opens the database and takes its write lock (`--no-state`: does
    /// nothing). Warns about expired exemptions.
    pub fn begin(
        args: &ScanArgs,
        loaded: &LoadedConfig,
        rules: &RuleSet,
        source: &str,
    ) -> Result<ScanState, Error> {
        if args.no_state {
            return Ok(ScanState { recorder: None });
        }
        let exemptions = load_exemptions(loaded)?;
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
            allow_older: args.allow_older,
        };
        let path = state_path(args.state.as_deref(), loaded);
        let store = Store::open(&path, &store_options(loaded, true))?;
        Ok(ScanState {
            recorder: Some(ScanRecorder::begin(store, start)?),
        })
    }

    /// The scan is being recorded (not `--no-state`).
    pub fn is_recording(&self) -> bool {
        self.recorder.is_some()
    }

    /// Refuses a report older than the last scan's before any output is
    /// written: reads the first row's refresh date from the head of
    /// `input` and hands back a stream that replays that head. The end of
    /// the scan checks again with the report's latest date.
    pub fn check_report_start(
        &mut self,
        mut input: Box<dyn Read + Send>,
        source: &str,
    ) -> Result<Box<dyn Read + Send>, Error> {
        let Some(recorder) = &self.recorder else {
            return Ok(input);
        };
        if recorder.last_refresh_date().is_none() {
            return Ok(input);
        }
        let mut head = Vec::with_capacity(HEAD_BYTES);
        let read = (&mut input).take(HEAD_BYTES as u64).read_to_end(&mut head);
        let read = read.map_err(|e| {
            ScanError::Report(ReportError::Io {
                source_name: source.to_owned(),
                error: e.to_string(),
            })
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

    /// Records a row and writes its findings, with their status in a
    /// stateful scan. Exempted findings do not count for `--fail-on`.
    pub fn write_row(
        &mut self,
        outcome: &RowOutcome,
        writer: &mut dyn FindingWriter,
        worst: &mut Option<Severity>,
    ) -> Result<(), String> {
        let Some(recorder) = &mut self.recorder else {
            for finding in &outcome.findings {
                *worst = (*worst).max(Some(finding.severity));
                writer.write(finding).map_err(|e| e.to_string())?;
            }
            return Ok(());
        };
        let statuses = recorder.record_row(outcome).map_err(|e| e.to_string())?;
        for (finding, &status) in outcome.findings.iter().zip(statuses) {
            if status != Status::Exempted {
                *worst = (*worst).max(Some(finding.severity));
            }
            writer
                .write_with_status(finding, status)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The scan failed or was cut short: nothing it saw is kept, and the
    /// failed attempt is recorded.
    pub fn fail(&mut self, message: &str) {
        if let Some(recorder) = self.recorder.take() {
            recorder.fail(message);
        }
    }

    /// Applies the scan to the database, writes the findings it resolved,
    /// queues this scan's messages for `channels` in the same transaction
    /// (see `commands::announce`), and commits. Hands back the store, for
    /// delivering the outbox, and the changes, for the summary.
    pub fn finish(
        mut self,
        summary: &ScanSummary,
        writer: &mut dyn FindingWriter,
        channels: &[crate::notify::Channel],
    ) -> Result<Option<(Store, Changes)>, Error> {
        let Some(recorder) = self.recorder.take() else {
            return Ok(None);
        };
        let pending = recorder.finish(summary)?;
        pending.for_each_resolved(|stored| {
            writer
                .write_with_status(&stored.to_finding(), Status::Resolved)
                .map_err(Error::Output)
        })?;
        super::announce::enqueue_changes(&pending, channels, summary)?;
        Ok(Some(pending.commit()?))
    }
}

/// The summary's last lines: findings by status.
pub fn print_changes(path: &Path, changes: &Changes, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "state {} (scan {}): {}",
        path.display(),
        changes.scan_id,
        changes.counts
    )?;
    for exemption in &changes.expiring_exemptions {
        writeln!(
            out,
            "  exemption expiring in {} days ({}): rule {} on {} — {}",
            exemption.days_left,
            exemption.origin,
            exemption.rule,
            exemption
                .group_id
                .as_deref()
                .or(exemption.group_name.as_deref())
                .unwrap_or("?"),
            exemption.reason
        )?;
    }
    Ok(())
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
