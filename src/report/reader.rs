//! Streaming CSV reading: the header, then raw records one at a time.
//!
//! The reader never holds more than one record; callers hand in the
//! [`ByteRecord`] to fill so buffers are reused across the whole file.

use std::io::Read;
use std::sync::Arc;

use csv::ByteRecord;

use super::header::{Layout, MissingColumns};

/// Reading the report failed as a whole (not one bad row).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{source_name}: cannot read the report: {error}")]
    Io { source_name: String, error: String },
    #[error("{source_name}: the report is empty (no header line)")]
    Empty { source_name: String },
    #[error("{source_name}, line 1: {error}")]
    Header {
        source_name: String,
        error: MissingColumns,
    },
}

/// Reads a groups activity report from any byte stream.
pub struct ReportReader<R: Read> {
    csv: csv::Reader<R>,
    layout: Arc<Layout>,
    source_name: String,
}

impl<R: Read> ReportReader<R> {
    /// Reads and maps the header line. `source_name` (a path, `-` or a URL
    /// without secrets) names the input in every error.
    pub fn new(input: R, source_name: &str) -> Result<Self, ReportError> {
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(false)
            // Field counts are checked per row so a short row is a row error.
            .flexible(true)
            // Records end at `\n` only, so each record's start line is
            // exact; the `\r` of a CRLF stays on the last field, where
            // cells are trimmed anyway.
            .terminator(csv::Terminator::Any(b'\n'))
            // Fewer, larger reads: a big report is read in 1 MiB pieces.
            .buffer_capacity(1 << 20)
            .from_reader(input);
        let mut header = ByteRecord::new();
        let io_error = |e: csv::Error| ReportError::Io {
            source_name: source_name.to_owned(),
            error: e.to_string(),
        };
        if !csv.read_byte_record(&mut header).map_err(io_error)? {
            return Err(ReportError::Empty {
                source_name: source_name.to_owned(),
            });
        }
        let names: Vec<String> = header
            .iter()
            .map(|h| String::from_utf8_lossy(h).into_owned())
            .collect();
        let layout = Layout::from_headers(&names).map_err(|error| ReportError::Header {
            source_name: source_name.to_owned(),
            error,
        })?;
        Ok(ReportReader {
            csv,
            layout: Arc::new(layout),
            source_name: source_name.to_owned(),
        })
    }

    pub fn layout(&self) -> &Arc<Layout> {
        &self.layout
    }

    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// Fills `record` with the next row and returns the 1-based line it
    /// starts on, or `None` at the end of the report. Blank lines are
    /// skipped. An error here is the stream failing (a download cut short,
    /// a disk error), not a bad row.
    pub fn read_record(&mut self, record: &mut ByteRecord) -> Result<Option<u64>, ReportError> {
        loop {
            let more = self
                .csv
                .read_byte_record(record)
                .map_err(|e| ReportError::Io {
                    source_name: self.source_name.clone(),
                    error: e.to_string(),
                })?;
            if !more {
                return Ok(None);
            }
            if record.len() == 1 && record[0].trim_ascii().is_empty() {
                continue;
            }
            let line = record.position().map_or(0, |p| p.line());
            return Ok(Some(line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(text: &str) -> Vec<(u64, Vec<String>)> {
        let mut reader = ReportReader::new(text.as_bytes(), "t.csv").unwrap();
        let mut record = ByteRecord::new();
        let mut out = Vec::new();
        while let Some(line) = reader.read_record(&mut record).unwrap() {
            out.push((
                line,
                record
                    .iter()
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect(),
            ));
        }
        out
    }

    const HEAD: &str =
        "\u{feff}Report Refresh Date,Group Display Name,Is Deleted,Last Activity Date\r\n";

    #[test]
    fn counts_lines_across_quoted_newlines_and_crlf() {
        let text = format!(
            "{HEAD}2026-11-25,\"Multi\r\nline, name\",False,\r\n2026-11-25,\"He said \"\"hi\"\"\",False,\r\n"
        );
        let rows = lines_of(&text);
        assert_eq!(rows[0].0, 2);
        assert_eq!(rows[0].1[1], "Multi\r\nline, name");
        assert_eq!(rows[1].0, 4);
        assert_eq!(rows[1].1[1], "He said \"hi\"");
    }

    #[test]
    fn header_only_is_an_empty_report_not_an_error() {
        assert!(lines_of(HEAD).is_empty());
    }

    #[test]
    fn no_header_at_all_is_an_error() {
        let err = ReportReader::new(&b""[..], "empty.csv").err().unwrap();
        assert_eq!(
            err.to_string(),
            "empty.csv: the report is empty (no header line)"
        );
    }

    #[test]
    fn missing_columns_name_the_file() {
        let err = ReportReader::new(&b"Group Display Name\r\nx\r\n"[..], "old.csv")
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("old.csv, line 1: the report lacks required column(s)")
        );
    }
}
