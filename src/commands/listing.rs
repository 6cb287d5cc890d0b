//! Listings of records (remembered findings, history, exemptions) in the
//! same formats as scan output: a table for a person, JSON lines, one JSON
//! array, or CSV.

use std::io::{self, BufWriter, Write};

use crate::output::safe::{csv_cell, terminal};
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use crate::output::Format;

/// A record that can be listed.
pub(crate) trait Listed: Serialize {
    /// Column headers of the table (few, for a terminal).
    const TABLE: &'static [&'static str];
    /// The record's cells in the table, as [`Listed::TABLE`] names them.
    fn table_row(&self) -> Vec<String>;
    /// Column headers of the CSV (everything, flat).
    const CSV: &'static [&'static str];
    /// The record's cells in the CSV, as [`Listed::CSV`] names them.
    fn csv_row(&self) -> Vec<String>;
}

/// Writes records as they come (the table waits for the end).
pub(crate) struct ListWriter {
    format: Format,
    out: BufWriter<Box<dyn Write>>,
    table: Table,
    csv_header_written: bool,
    count: u64,
}

impl ListWriter {
    /// A writer of `format` on `out`; `html` lists as a table.
    pub(crate) fn new(format: Format, out: Box<dyn Write>) -> ListWriter {
        // The HTML page is a scan report; a listing has no page of its own.
        let format = if format == Format::Html {
            tracing::warn!("--format html is for scans; listing as a table");
            Format::Table
        } else {
            format
        };
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
        ListWriter {
            format,
            out: BufWriter::new(out),
            table,
            csv_header_written: false,
            count: 0,
        }
    }

    /// Writes one record (a table row waits for the end).
    pub(crate) fn write<T: Listed>(&mut self, record: &T) -> io::Result<()> {
        match self.format {
            Format::Table | Format::Html => {
                if self.count == 0 {
                    self.table.set_header(T::TABLE);
                }
                let row = record.table_row();
                self.table
                    .add_row(row.iter().map(|cell| terminal(cell).into_owned()));
            }
            Format::Jsonl => {
                serde_json::to_writer(&mut self.out, record)?;
                self.out.write_all(b"\n")?;
            }
            Format::Json => {
                self.out
                    .write_all(if self.count == 0 { b"[\n" } else { b",\n" })?;
                serde_json::to_writer(&mut self.out, record)?;
            }
            Format::Csv => {
                let mut csv = csv::Writer::from_writer(&mut self.out);
                if !self.csv_header_written {
                    self.csv_header_written = true;
                    csv.write_record(T::CSV)?;
                }
                let row = record.csv_row();
                csv.write_record(row.iter().map(|cell| csv_cell(cell).into_owned()))?;
                csv.flush()?;
            }
        }
        self.count += 1;
        Ok(())
    }

    /// Ends the listing; `nothing` is what a table says when empty.
    pub(crate) fn finish<T: Listed>(mut self, nothing: &str) -> io::Result<()> {
        match self.format {
            Format::Table if self.count == 0 => writeln!(self.out, "{nothing}")?,
            Format::Table => writeln!(self.out, "{}", self.table)?,
            Format::Json => self
                .out
                .write_all(if self.count == 0 { b"[]\n" } else { b"\n]\n" })?,
            Format::Csv if !self.csv_header_written => {
                csv::Writer::from_writer(&mut self.out).write_record(T::CSV)?
            }
            _ => {}
        }
        self.out.flush()
    }
}

/// An optional text cell.
pub(crate) fn cell(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}
