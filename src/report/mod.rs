//! The groups activity report's shape.
//!
//! A report is a CSV file with one row per group. Microsoft has shipped a
//! few variants of its header over the years (`Guest Count` instead of
//! `External Member Count`, no `Group Id` in older exports, extra Teams
//! columns under `/beta`), so columns are mapped by their *normalised* name,
//! never by position ([`header`]). Each data row becomes a [`row::Row`]: the
//! numbers, booleans and dates are parsed eagerly (they are cheap and a bad
//! value must be reported as a row error with its line number), the strings
//! lazily, only when a rule reads them ([`reader`] keeps the raw record).
//!
//! Blank cells are *unknown*, never zero: the report leaves activity counts
//! and `Last Activity Date` blank routinely.

pub(crate) mod date;
pub mod directory;
#[cfg(test)]
mod fuzz;
pub mod header;
pub(crate) mod identify;
pub mod reader;
pub mod row;
pub(crate) mod shape;
pub mod stats;
pub(crate) mod text;
