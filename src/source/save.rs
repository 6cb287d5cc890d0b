//! `--save-report DIR`: a copy of the raw CSV, as received, for audit.
//!
//! The copy is written beside the scan as the bytes stream past, to a
//! hidden partial file; only when the stream ends cleanly is it renamed to
//! `groups-activity-<refresh date>-<period>.csv` (read back from its first
//! row), so an interrupted download never leaves a file that looks whole.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::report::date::{format_day, parse_day};
use crate::report::header::Col;
use crate::report::reader::ReportReader;

/// Copies what is read from `inner` into `dir`.
pub(crate) struct SavedCopy<R> {
    inner: R,
    file: Option<BufWriter<File>>,
    partial: PathBuf,
    dir: PathBuf,
    fallback_period: String,
}

impl<R: Read> SavedCopy<R> {
    /// `fallback_period` (`D30`) names the file when the report has no
    /// rows to read the period from.
    pub(crate) fn new(inner: R, dir: &Path, fallback_period: &str) -> io::Result<SavedCopy<R>> {
        std::fs::create_dir_all(dir).map_err(|e| in_dir(dir, e))?;
        let partial = dir.join(format!(".groups-activity-{}.partial", std::process::id()));
        let file = File::create(&partial).map_err(|e| in_dir(dir, e))?;
        Ok(SavedCopy {
            inner,
            file: Some(BufWriter::new(file)),
            partial,
            dir: dir.to_owned(),
            fallback_period: fallback_period.to_owned(),
        })
    }

    fn finish(&mut self) -> io::Result<()> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        file.into_inner()
            .map_err(io::IntoInnerError::into_error)?
            .sync_all()?;
        let (refresh_date, period) = describe_report(&self.partial);
        let period = period.unwrap_or_else(|| self.fallback_period.clone());
        // An empty report has no refresh date: it is named by the day it was fetched.
        let date = refresh_date.unwrap_or_else(|| jiff::Zoned::now().date().to_string());
        let target = self
            .dir
            .join(format!("groups-activity-{date}-{period}.csv"));
        std::fs::rename(&self.partial, &target)?;
        tracing::info!(path = %target.display(), "saved the raw report");
        Ok(())
    }
}

fn in_dir(dir: &Path, error: io::Error) -> io::Error {
    io::Error::new(
        error.kind(),
        format!("--save-report {}: {error}", dir.display()),
    )
}

/// The refresh date (`2026-11-25`) and period (`D30`) of a saved report's
/// first row.
fn describe_report(path: &Path) -> (Option<String>, Option<String>) {
    let Ok(file) = File::open(path) else {
        return (None, None);
    };
    let Ok(mut reader) = ReportReader::new(io::BufReader::new(file), &path.display().to_string())
    else {
        return (None, None);
    };
    let layout = reader.layout().clone();
    let mut record = crate::report::reader::Record::default();
    if !matches!(reader.read_record(&mut record), Ok(Some(_))) {
        return (None, None);
    }
    let cell = |col: Col| {
        layout
            .position(col)
            .and_then(|p| record.get(p))
            .map(<[u8]>::trim_ascii)
    };
    let date = cell(Col::ReportRefreshDate)
        .and_then(parse_day)
        .map(format_day);
    let period = cell(Col::ReportPeriod)
        .and_then(|raw| std::str::from_utf8(raw).ok())
        .and_then(|text| text.parse::<u32>().ok())
        .map(|days| format!("D{days}"));
    (date, period)
}

impl<R: Read> Read for SavedCopy<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            self.finish().map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("saving the report in {}: {e}", self.dir.display()),
                )
            })?;
        } else if let Some(file) = &mut self.file {
            file.write_all(&buf[..n])
                .map_err(|e| in_dir(&self.dir, e))?;
        }
        Ok(n)
    }
}

impl<R> Drop for SavedCopy<R> {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Not read to the end: not a whole report, so not kept.
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "\u{feff}Report Refresh Date,Group Display Name,Is Deleted,Last Activity Date,Report Period\r\n\
                          2026-11-25,Sales,False,2026-11-01,30\r\n";

    #[test]
    fn a_whole_report_is_kept_under_its_refresh_date_and_period() {
        let dir = tempfile::tempdir().unwrap();
        let mut copy = SavedCopy::new(REPORT.as_bytes(), dir.path(), "D7").unwrap();
        io::copy(&mut copy, &mut io::sink()).unwrap();
        drop(copy);
        let saved = dir.path().join("groups-activity-2026-11-25-D30.csv");
        assert_eq!(std::fs::read_to_string(saved).unwrap(), REPORT);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_report_not_read_to_the_end_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut copy = SavedCopy::new(REPORT.as_bytes(), dir.path(), "D7").unwrap();
        let mut first = [0u8; 10];
        copy.read_exact(&mut first).unwrap();
        drop(copy);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
