//! The shapes a report arrives in, turned into the one the reader reads:
//! UTF-8 text, comma-separated, one record per line.
//!
//! ```text
//!  bytes ──encoding──▶ UTF-8 ──format──▶ CSV: #TYPE line blanked, CR line ends → LF,
//!        (BOM: UTF-8,                          ';' or tab separators → ','
//!         UTF-16 LE/BE;                  JSON: a Graph page {"value": [...]} or an
//!         UTF-16 without                       array of objects → CSV (keys as headers)
//!         a BOM by its NULs)
//! ```
//!
//! Files reach groupwarden as Graph writes them (UTF-8 with a BOM, CRLF)
//! and as people keep them: Windows PowerShell 5.1 writes UTF-16 with a
//! BOM and its `Export-Csv` a `#TYPE …` first line; Excel in European
//! locales separates with `;`, Excel for Mac ends lines with CR alone; the
//! `/beta` API, the CLI for Microsoft 365 and `ConvertTo-Json` give JSON.
//! The format is decided by content, never by the file name; anything
//! else is refused here with what was found, before a row is read.
//!
//! Every transformation keeps line numbers: a CSV record is on the same
//! line as in the file (the `#TYPE` line becomes a blank line, which the
//! reader skips but counts). JSON has no lines: the header is line 1 and
//! item N of the array is line N + 1.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Cursor, Read};

use serde::Deserializer as _;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::header::{COLUMNS, is_known_header};
use super::reader::ReportError;

/// How much of the input is looked at to decide its shape.
const HEAD_BYTES: usize = 64 * 1024;

/// How many bytes of converted JSON travel to the reader at a time, and
/// how many such chunks may wait (memory stays bounded).
const JSON_CHUNK: usize = 256 * 1024;
const JSON_CHUNKS_IN_FLIGHT: usize = 4;

/// The input's format, or `auto` to tell it from the content.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// CSV or JSON, whichever the content is.
    #[default]
    Auto,
    /// A CSV file (any of the encodings and separators above).
    Csv,
    /// A JSON array of rows, or a Graph `/beta` page `{"value": [...]}`.
    Json,
}

/// What [`open`] found, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    /// The text encoding: `UTF-8`, `UTF-16LE` or `UTF-16BE`.
    pub encoding: &'static str,
    /// CSV or JSON.
    pub format: InputFormat,
    /// The CSV separator.
    pub delimiter: u8,
    /// Lines ended by CR alone (Excel for Mac).
    pub cr_line_ends: bool,
    /// A Windows PowerShell `#TYPE …` first line was skipped.
    pub type_line: bool,
}

impl Shape {
    /// Anything but Graph's own CSV, worth a line in the log.
    pub(crate) fn is_unusual(&self) -> bool {
        self.encoding != "UTF-8"
            || self.format == InputFormat::Json
            || self.delimiter != b','
            || self.cr_line_ends
            || self.type_line
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.format == InputFormat::Json {
            return write!(f, "{} JSON", self.encoding);
        }
        let separator = match self.delimiter {
            b'\t' => "tab".to_owned(),
            other => format!("'{}'", other as char),
        };
        write!(f, "{} CSV separated by {separator}", self.encoding)?;
        if self.cr_line_ends {
            f.write_str(", lines ended by CR")?;
        }
        if self.type_line {
            f.write_str(", a #TYPE line first")?;
        }
        Ok(())
    }
}

/// The report in `input` as UTF-8, comma-separated CSV, and the shape it
/// had. Refuses, naming what it found, what is not a report of a shape
/// groupwarden reads.
pub(crate) fn open(
    input: Box<dyn Read + Send>,
    source_name: &str,
    format: InputFormat,
) -> Result<(Box<dyn Read + Send>, Shape), ReportError> {
    let refuse = |message: String| ReportError::Shape {
        source_name: source_name.to_owned(),
        message,
    };
    let io_error = |error| ReportError::Io {
        source_name: source_name.to_owned(),
        error,
    };
    let (head, rest) = read_head(input).map_err(io_error)?;
    let encoding = sniff_encoding(&head).map_err(refuse)?;
    let raw: Box<dyn Read + Send> = Box::new(Cursor::new(head).chain(rest));
    let text: Box<dyn Read + Send> = match encoding {
        Encoding::Utf8 => raw,
        Encoding::Utf16 { little_endian, .. } => {
            let encoding = if little_endian {
                encoding_rs::UTF_16LE
            } else {
                encoding_rs::UTF_16BE
            };
            Box::new(
                encoding_rs_io::DecodeReaderBytesBuilder::new()
                    .encoding(Some(encoding))
                    .bom_override(true)
                    .strip_bom(true)
                    .build(raw),
            )
        }
    };
    let (head, rest) = read_head(text).map_err(io_error)?;
    let mut shape = Shape {
        encoding: encoding.name(),
        format,
        delimiter: b',',
        cr_line_ends: false,
        type_line: false,
    };
    let body = strip_utf8_bom(&head);
    let looks_like_json = matches!(first_non_space(body), Some(b'{' | b'['));
    if format == InputFormat::Json || (format == InputFormat::Auto && looks_like_json) {
        shape.format = InputFormat::Json;
        // serde_json does not expect a byte order mark.
        let bom = head.len() - body.len();
        let input = Box::new(Cursor::new(head).chain(rest));
        let mut input: Box<dyn Read + Send> = input;
        io::copy(&mut (&mut input).take(bom as u64), &mut io::sink()).map_err(io_error)?;
        return Ok((json_as_csv(input), shape));
    }
    shape.format = InputFormat::Csv;
    let mut head = head;
    shape.type_line = blank_type_line(&mut head);
    shape.cr_line_ends = has_cr_line_ends(&head);
    shape.delimiter = detect_delimiter(&head, shape.cr_line_ends).map_err(refuse)?;
    let mut csv: Box<dyn Read + Send> = Box::new(Cursor::new(head).chain(rest));
    if shape.cr_line_ends {
        csv = Box::new(CrToLf(csv));
    }
    if shape.delimiter != b',' {
        csv = Box::new(Redelimit::new(csv, shape.delimiter));
    }
    Ok((csv, shape))
}

/// Up to [`HEAD_BYTES`] from the start of `input`, and the rest of it.
fn read_head(mut input: Box<dyn Read + Send>) -> io::Result<(Vec<u8>, Box<dyn Read + Send>)> {
    let mut head = Vec::with_capacity(HEAD_BYTES);
    (&mut input)
        .take(HEAD_BYTES as u64)
        .read_to_end(&mut head)?;
    Ok((head, input))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Utf16 { little_endian: bool },
}

impl Encoding {
    fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Utf16 {
                little_endian: true,
            } => "UTF-16LE",
            Encoding::Utf16 {
                little_endian: false,
            } => "UTF-16BE",
        }
    }
}

/// The encoding by the byte order mark, else by where NUL bytes fall
/// (ASCII text in UTF-16 has one in every other byte). Archives, UTF-32
/// and other binary data are refused by name.
fn sniff_encoding(head: &[u8]) -> Result<Encoding, String> {
    let refusal = |what: &str, advice: &str| format!("this is {what}, not a report; {advice}");
    let save_as = "export or save the report as CSV (UTF-8 or UTF-16)";
    if head.starts_with(b"\xff\xfe\x00\x00") || head.starts_with(b"\x00\x00\xfe\xff") {
        return Err(refusal("UTF-32 text", "save it as UTF-8 or UTF-16"));
    }
    if head.starts_with(b"\xff\xfe") {
        return Ok(Encoding::Utf16 {
            little_endian: true,
        });
    }
    if head.starts_with(b"\xfe\xff") {
        return Ok(Encoding::Utf16 {
            little_endian: false,
        });
    }
    if head.starts_with(b"PK\x03\x04") {
        return Err(refusal(
            "a zip archive or an Excel workbook (.xlsx)",
            save_as,
        ));
    }
    if head.starts_with(b"\x1f\x8b") {
        return Err(refusal("gzip-compressed data", "decompress it first"));
    }
    if head.starts_with(b"\xd0\xcf\x11\xe0") {
        return Err(refusal("an old Excel workbook (.xls)", save_as));
    }
    let sample = &head[..head.len().min(4096)];
    let nul_at = |parity: usize| {
        sample
            .iter()
            .skip(parity)
            .step_by(2)
            .filter(|&&b| b == 0)
            .count()
    };
    let (even, odd) = (nul_at(0), nul_at(1));
    let pairs = sample.len() / 2;
    if pairs > 0 && odd * 10 >= pairs * 8 && even == 0 {
        return Ok(Encoding::Utf16 {
            little_endian: true,
        });
    }
    if pairs > 0 && even * 10 >= pairs * 8 && odd == 0 {
        return Ok(Encoding::Utf16 {
            little_endian: false,
        });
    }
    if even + odd > 0 {
        return Err(refusal("binary data (it holds NUL bytes)", save_as));
    }
    Ok(Encoding::Utf8)
}

fn strip_utf8_bom(text: &[u8]) -> &[u8] {
    text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text)
}

fn first_non_space(text: &[u8]) -> Option<u8> {
    text.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// Blanks a Windows PowerShell `#TYPE …` first line, keeping its line end
/// so that every record stays on its line number.
fn blank_type_line(head: &mut Vec<u8>) -> bool {
    let start = head.len() - strip_utf8_bom(head).len();
    if !head[start..].starts_with(b"#TYPE") {
        return false;
    }
    let end = head[start..]
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .map_or(head.len(), |i| start + i);
    head.drain(start..end);
    true
}

/// Lines end with CR alone: the first line end (the header's, or the
/// blanked `#TYPE` line's) is a CR not followed by an LF.
fn has_cr_line_ends(head: &[u8]) -> bool {
    let first_end = head.iter().position(|&b| b == b'\r' || b == b'\n');
    first_end.is_some_and(|i| head[i] == b'\r' && head.get(i + 1) != Some(&b'\n'))
}

/// The separator of the header line: of `,`, `;` and tab, the one that
/// splits it into the most known column names.
fn detect_delimiter(head: &[u8], cr_line_ends: bool) -> Result<u8, String> {
    let body = strip_utf8_bom(head);
    let line_end = if cr_line_ends { b'\r' } else { b'\n' };
    let header = body
        .split(|&b| b == line_end)
        .map(<[u8]>::trim_ascii)
        .find(|line| !line.is_empty())
        .unwrap_or_default();
    if header.is_empty() {
        // Empty: the reader says so.
        return Ok(b',');
    }
    let header = String::from_utf8_lossy(header);
    let known = |delimiter: u8| {
        split_fields(&header, delimiter)
            .iter()
            .filter(|field| is_known_header(field))
            .count()
    };
    let (best, count) = [b',', b';', b'\t']
        .into_iter()
        .map(|d| (d, known(d)))
        .max_by_key(|&(d, count)| (count, d == b','))
        .unwrap_or((b',', 0));
    if count >= 2 {
        return Ok(best);
    }
    if known(b',') == 1 || header.contains(',') {
        // Comma-separated but with the wrong columns: the reader names them.
        return Ok(b',');
    }
    let separator = likely_separator(&header);
    Err(format!(
        "the first line is not the header of the groups activity report: it names no known column when split by ',', ';' or a tab{}; it begins \"{}\"",
        separator
            .map(|c| format!(" (it seems separated by {c})"))
            .unwrap_or_default(),
        super::text::for_message(&header, 120)
    ))
}

/// The fields of one header line, quotes removed.
fn split_fields(line: &str, delimiter: u8) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            c if !quoted && c as u32 == u32::from(delimiter) => fields.push(String::new()),
            c => fields.last_mut().expect("one field at least").push(c),
        }
    }
    fields
}

/// The punctuation that occurs most in `line`, as a separator would.
fn likely_separator(line: &str) -> Option<String> {
    let mut counts: BTreeMap<char, usize> = BTreeMap::new();
    for c in line
        .chars()
        .filter(|c| c.is_ascii_punctuation() || *c == '\t')
    {
        if !matches!(c, '(' | ')' | '"' | '\'' | '.' | '-' | '_') {
            *counts.entry(c).or_default() += 1;
        }
    }
    let (c, count) = counts.into_iter().max_by_key(|&(_, count)| count)?;
    (count >= 2).then(|| format!("'{}'", c.escape_default()))
}

/// Excel for Mac's CR line ends as LF.
struct CrToLf(Box<dyn Read + Send>);

impl Read for CrToLf {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        for b in &mut buf[..n] {
            if *b == b'\r' {
                *b = b'\n';
            }
        }
        Ok(n)
    }
}

/// A `;`- or tab-separated file as a comma-separated one: separators
/// outside quotes become commas, and an unquoted field holding a comma is
/// quoted. Line ends pass through untouched, so line numbers hold.
struct Redelimit {
    input: Box<dyn Read + Send>,
    delimiter: u8,
    quoted: bool,
    /// The current field, when unquoted (it may need quotes once whole).
    field: Vec<u8>,
    field_is_quoted: bool,
    at_field_start: bool,
    out: Vec<u8>,
    out_pos: usize,
    done: bool,
}

impl Redelimit {
    fn new(input: Box<dyn Read + Send>, delimiter: u8) -> Redelimit {
        Redelimit {
            input,
            delimiter,
            quoted: false,
            field: Vec::new(),
            field_is_quoted: false,
            at_field_start: true,
            out: Vec::new(),
            out_pos: 0,
            done: false,
        }
    }

    fn end_field(&mut self) {
        if !self.field_is_quoted && self.field.contains(&b',') {
            self.out.push(b'"');
            self.out.extend_from_slice(&self.field);
            self.out.push(b'"');
        } else {
            self.out.extend_from_slice(&self.field);
        }
        self.field.clear();
        self.field_is_quoted = false;
        self.at_field_start = true;
    }

    fn push(&mut self, b: u8) {
        if self.quoted {
            if b == b'"' {
                self.quoted = false;
            }
            self.field.push(b);
            return;
        }
        match b {
            b'"' => {
                if self.at_field_start {
                    self.field_is_quoted = true;
                }
                self.quoted = true;
                self.at_field_start = false;
                self.field.push(b);
            }
            b if b == self.delimiter => {
                self.end_field();
                self.out.push(b',');
            }
            b'\n' | b'\r' => {
                self.end_field();
                self.out.push(b);
            }
            b => {
                self.at_field_start = false;
                self.field.push(b);
            }
        }
    }
}

impl Read for Redelimit {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.out_pos == self.out.len() && !self.done {
            self.out.clear();
            self.out_pos = 0;
            let mut chunk = [0u8; 64 * 1024];
            let n = self.input.read(&mut chunk)?;
            if n == 0 {
                self.done = true;
                self.end_field();
                break;
            }
            for &b in &chunk[..n] {
                self.push(b);
            }
        }
        let n = buf.len().min(self.out.len() - self.out_pos);
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

/// A JSON report as CSV text, converted on a thread of its own as the
/// reader asks for it, so a large file is never held whole.
fn json_as_csv(input: Box<dyn Read + Send>) -> Box<dyn Read + Send> {
    convert_on_thread("json-report", move |writer| {
        convert_json(input, writer, None).map(|_| ())
    })
}

/// The pages of a paged Graph `/beta` JSON answer as one CSV text: the
/// rows of `first`, then of each page its `@odata.nextLink` names, fetched
/// with `next_page`, until a page has no `@odata.nextLink`.
///
/// Pages are converted on a thread of their own, one at a time, as the
/// reader asks for rows: only one page is ever open and memory stays
/// bounded whatever the number of pages. The header comes from the first
/// item; line numbers run on across pages (item N of the whole answer is
/// line N + 1). A page that cannot be fetched or parsed fails the read
/// with what went wrong, never a short report that ends cleanly.
pub(crate) fn json_pages_as_csv(
    first: Box<dyn Read + Send>,
    next_page: impl FnMut(&str) -> io::Result<Box<dyn Read + Send>> + Send + 'static,
) -> Box<dyn Read + Send> {
    convert_on_thread("json-pages", move |writer| {
        convert_pages(first, next_page, writer)
    })
}

/// Runs `convert` on a thread of its own, its CSV chunks read back through
/// the returned reader.
fn convert_on_thread(
    name: &str,
    convert: impl FnOnce(&mut ChunkWriter<'_>) -> Result<(), ConvertError> + Send + 'static,
) -> Box<dyn Read + Send> {
    let (sender, receiver) = crossbeam_channel::bounded(JSON_CHUNKS_IN_FLIGHT);
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let mut writer = ChunkWriter {
                sender: &sender,
                buffer: Vec::with_capacity(JSON_CHUNK),
                header: None,
                closed: false,
            };
            let result = convert(&mut writer).and_then(|()| writer.finish());
            if let Err(error) = result
                && !writer.closed
            {
                let message = error.to_string();
                let _ = sender.send(Err(io::Error::new(io::ErrorKind::InvalidData, message)));
            }
        });
    match spawned {
        Ok(_) => Box::new(ChunkReader {
            receiver,
            chunk: Vec::new(),
            pos: 0,
        }),
        Err(error) => Box::new(FailedRead(Some(error))),
    }
}

/// Converts page after page, following each page's `@odata.nextLink`.
fn convert_pages(
    first: Box<dyn Read + Send>,
    mut next_page: impl FnMut(&str) -> io::Result<Box<dyn Read + Send>>,
    writer: &mut ChunkWriter<'_>,
) -> Result<(), ConvertError> {
    let mut page = first;
    let mut number = 1usize;
    let mut previous_link: Option<String> = None;
    loop {
        let in_page = |error: ConvertError| match error {
            ConvertError::Closed => ConvertError::Closed,
            other => ConvertError::Shape(format!("page {number} of the Graph answer: {other}")),
        };
        let Some(link) = convert_json(page, writer, Some(number)).map_err(in_page)? else {
            return Ok(());
        };
        // A server that sends the same link again would page for ever.
        if previous_link.as_deref() == Some(link.as_str()) {
            return Err(in_page(ConvertError::Shape(
                "its @odata.nextLink is the same as the previous page's; the answer does not end"
                    .into(),
            )));
        }
        // The rows so far go to the reader while the next page is fetched.
        if !writer.buffer.is_empty() {
            writer.flush()?;
        }
        number += 1;
        page = next_page(&link).map_err(|error| {
            ConvertError::Shape(format!("page {number} of the Graph answer: {error}"))
        })?;
        previous_link = Some(link);
    }
}

/// A read that fails once with `error`, then ends.
struct FailedRead(Option<io::Error>);

impl Read for FailedRead {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        match self.0.take() {
            Some(error) => Err(error),
            None => Ok(0),
        }
    }
}

type Chunk = io::Result<Vec<u8>>;

/// The reader's end of the converted JSON.
struct ChunkReader {
    receiver: crossbeam_channel::Receiver<Chunk>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.receiver.recv() {
                Ok(chunk) => {
                    self.chunk = chunk?;
                    self.pos = 0;
                }
                // The converter finished and hung up.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The converter's end: CSV lines, in chunks.
struct ChunkWriter<'a> {
    sender: &'a crossbeam_channel::Sender<Chunk>,
    buffer: Vec<u8>,
    /// The columns, from the first item's keys.
    header: Option<Vec<String>>,
    /// The reader went away: stop quietly.
    closed: bool,
}

/// Why converting stopped.
#[derive(Debug)]
enum ConvertError {
    Json(serde_json::Error),
    Shape(String),
    Closed,
}

impl std::fmt::Display for ConvertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // A read that failed (a page cut short) is not a syntax error.
            ConvertError::Json(error) if error.is_io() => write!(f, "{error}"),
            ConvertError::Json(error) => write!(f, "not valid JSON: {error}"),
            ConvertError::Shape(message) => f.write_str(message),
            ConvertError::Closed => f.write_str("the reader stopped"),
        }
    }
}

impl ChunkWriter<'_> {
    fn row(
        &mut self,
        item: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), ConvertError> {
        let header = self.header.get_or_insert_with(|| {
            let names: Vec<String> = item.keys().cloned().collect();
            write_line(&mut self.buffer, names.iter().map(|n| n.as_str().into()));
            names
        });
        let cells = header.iter().map(|name| cell(item.get(name)));
        write_line(&mut self.buffer, cells);
        if self.buffer.len() >= JSON_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ConvertError> {
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(JSON_CHUNK));
        if self.sender.send(Ok(chunk)).is_err() {
            self.closed = true;
            return Err(ConvertError::Closed);
        }
        Ok(())
    }

    /// An empty array is a report with no rows: the v1.0 header alone.
    fn finish(&mut self) -> Result<(), ConvertError> {
        if self.header.is_none() {
            write_line(&mut self.buffer, COLUMNS.iter().map(|c| c.header.into()));
        }
        self.flush()
    }
}

/// A JSON value as a CSV cell: `null` blank, `true` as the CSV's `True`.
fn cell(value: Option<&serde_json::Value>) -> std::borrow::Cow<'_, str> {
    use serde_json::Value;
    match value {
        None | Some(Value::Null) => "".into(),
        Some(Value::Bool(true)) => "True".into(),
        Some(Value::Bool(false)) => "False".into(),
        Some(Value::String(text)) => text.as_str().into(),
        Some(Value::Number(number)) => number.to_string().into(),
        Some(other) => other.to_string().into(),
    }
}

fn write_line<'a>(out: &mut Vec<u8>, cells: impl Iterator<Item = std::borrow::Cow<'a, str>>) {
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if cell.contains([',', '"', '\n', '\r']) {
            out.push(b'"');
            out.extend_from_slice(cell.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(cell.as_bytes());
        }
    }
    out.push(b'\n');
}

/// Reads the whole JSON document, handing each row to `writer` as it is
/// parsed: an array of objects, a Graph page (`value`), or one object.
///
/// `page` is `None` for a file, where an `@odata.nextLink` is refused (the
/// other pages are missing); for page N of an answer being fetched it is
/// `Some(N)`, the document must be a page, and its `@odata.nextLink`, if
/// any, is returned.
fn convert_json(
    input: Box<dyn Read + Send>,
    writer: &mut ChunkWriter<'_>,
    page: Option<usize>,
) -> Result<Option<String>, ConvertError> {
    let mut deserializer = serde_json::Deserializer::from_reader(BufReader::new(input));
    let mut failure = None;
    let mut next_link = None;
    let result = deserializer.deserialize_any(Document {
        writer,
        failure: &mut failure,
        next_link: page.map(|_| &mut next_link),
    });
    if let Some(failure) = failure {
        return Err(failure);
    }
    result.map_err(ConvertError::Json)?;
    deserializer.end().map_err(ConvertError::Json)?;
    Ok(next_link)
}

/// The top level: an array of rows, or an object.
struct Document<'w, 'a> {
    writer: &'w mut ChunkWriter<'a>,
    failure: &'w mut Option<ConvertError>,
    /// Set when reading a page of an answer being fetched: where its
    /// `@odata.nextLink` goes. `None` for a file.
    next_link: Option<&'w mut Option<String>>,
}

fn stop<E: serde::de::Error>(failure: &mut Option<ConvertError>, error: ConvertError) -> E {
    let text = error.to_string();
    *failure = Some(error);
    E::custom(text)
}

impl<'de> Visitor<'de> for Document<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of report rows or a Graph page with a `value` array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        if self.next_link.is_some() {
            return Err(stop(self.failure, not_a_page()));
        }
        Rows {
            writer: self.writer,
            failure: self.failure,
        }
        .visit_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        // A page (`value`, `@odata.*`) or one row (ConvertTo-Json writes a
        // single object, not an array, for a one-group report).
        let mut single = serde_json::Map::new();
        let mut saw_value = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "value" => {
                    saw_value = true;
                    map.next_value_seed(Rows {
                        writer: &mut *self.writer,
                        failure: &mut *self.failure,
                    })?;
                }
                "@odata.nextLink" if self.next_link.is_some() => {
                    let link: String = map.next_value()?;
                    if let Some(next_link) = self.next_link.as_deref_mut() {
                        *next_link = Some(link);
                    }
                }
                "@odata.nextLink" => {
                    let _: IgnoredAny = map.next_value()?;
                    return Err(stop(
                        self.failure,
                        ConvertError::Shape(
                            "this is one page of a paged Graph answer (it has an @odata.nextLink): the rows of the other pages are missing. Save every page, or let groupwarden fetch the report"
                                .into(),
                        ),
                    ));
                }
                key if key.starts_with("@odata.") => {
                    let _: IgnoredAny = map.next_value()?;
                }
                _ => {
                    let value: serde_json::Value = map.next_value()?;
                    single.insert(key, value);
                }
            }
        }
        if saw_value {
            return Ok(());
        }
        if self.next_link.is_some() {
            return Err(stop(self.failure, not_a_page()));
        }
        if single.keys().any(|k| is_known_header(k)) {
            return self.writer.row(&single).map_err(|e| stop(self.failure, e));
        }
        Err(stop(
            self.failure,
            ConvertError::Shape(
                "a JSON object without a `value` array or report columns: not the groups activity report".into(),
            ),
        ))
    }
}

/// A fetched page that is not `{"value": [...]}`.
fn not_a_page() -> ConvertError {
    ConvertError::Shape("not a Graph page: expected an object with a `value` array".into())
}

/// The array of rows.
struct Rows<'w, 'a> {
    writer: &'w mut ChunkWriter<'a>,
    failure: &'w mut Option<ConvertError>,
}

impl<'de> DeserializeSeed<'de> for Rows<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Rows<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of report rows (objects)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        while let Some(item) = seq.next_element::<serde_json::Value>()? {
            index += 1;
            let serde_json::Value::Object(item) = item else {
                return Err(stop(
                    self.failure,
                    ConvertError::Shape(format!("item {index} of the array is not an object")),
                ));
            };
            self.writer.row(&item).map_err(|e| stop(self.failure, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "Report Refresh Date,Group Display Name,Is Deleted,Owner Principal Name,Last Activity Date,Member Count,External Member Count,Group Id,Report Period";

    fn read(bytes: Vec<u8>, format: InputFormat) -> Result<(String, Shape), ReportError> {
        let (mut reader, shape) = open(Box::new(Cursor::new(bytes)), "report.csv", format)?;
        let mut text = String::new();
        reader
            .read_to_string(&mut text)
            .map_err(|error| ReportError::Io {
                source_name: "report.csv".into(),
                error,
            })?;
        Ok((text, shape))
    }

    fn utf16(text: &str, little_endian: bool, bom: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let units = (if bom { "\u{feff}" } else { "" })
            .chars()
            .chain(text.chars());
        let text: String = units.collect();
        for unit in text.encode_utf16() {
            let bytes = if little_endian {
                unit.to_le_bytes()
            } else {
                unit.to_be_bytes()
            };
            out.extend_from_slice(&bytes);
        }
        out
    }

    #[test]
    fn graphs_own_csv_passes_through_untouched() {
        let text = format!("\u{feff}{HEADER}\r\n2026-11-25,A,False,o@x.com,,5,0,id,30\r\n");
        let (read_back, shape) = read(text.clone().into_bytes(), InputFormat::Auto).unwrap();
        assert_eq!(read_back, text);
        assert!(!shape.is_unusual(), "{shape}");
    }

    #[test]
    fn utf16_with_and_without_a_bom_in_either_byte_order_becomes_utf8() {
        let text = format!("{HEADER}\r\n2026-11-25,Ünïcode ✓,False,o@x.com,,5,0,id,30\r\n");
        for little_endian in [true, false] {
            for bom in [true, false] {
                let (read_back, shape) =
                    read(utf16(&text, little_endian, bom), InputFormat::Auto).unwrap();
                assert_eq!(read_back, text, "le {little_endian} bom {bom}");
                let expected = if little_endian {
                    "UTF-16LE"
                } else {
                    "UTF-16BE"
                };
                assert_eq!(shape.encoding, expected);
            }
        }
    }

    #[test]
    fn semicolons_and_tabs_become_commas_outside_quotes() {
        let text = format!(
            "{}\n2026-11-25;\"Sales; EMEA\";False;o@x.com;;5;0;id;30\n2026-11-25;R,D;False;;;5;0;id2;30\n",
            HEADER.replace(',', ";")
        );
        let (read_back, shape) = read(text.into_bytes(), InputFormat::Auto).unwrap();
        assert_eq!(shape.delimiter, b';');
        let expected = format!(
            "{HEADER}\n2026-11-25,\"Sales; EMEA\",False,o@x.com,,5,0,id,30\n2026-11-25,\"R,D\",False,,,5,0,id2,30\n"
        );
        assert_eq!(read_back, expected);
        let tabbed = format!(
            "{}\r\n2026-11-25\tA\tFalse\t\t\t5\t0\tid\t30\r\n",
            HEADER.replace(',', "\t")
        );
        let (read_back, shape) = read(tabbed.into_bytes(), InputFormat::Auto).unwrap();
        assert_eq!(shape.delimiter, b'\t');
        assert_eq!(
            read_back,
            format!("{HEADER}\r\n2026-11-25,A,False,,,5,0,id,30\r\n")
        );
    }

    #[test]
    fn a_type_line_is_blanked_and_cr_line_ends_become_lf() {
        let text = format!(
            "#TYPE System.Management.Automation.PSCustomObject\r\n\"{}\"\r\n",
            HEADER.replace(',', "\",\"")
        );
        let (read_back, shape) = read(text.into_bytes(), InputFormat::Auto).unwrap();
        assert!(shape.type_line);
        assert!(
            read_back.starts_with("\r\n\"Report Refresh Date\""),
            "{read_back}"
        );
        let mac = format!("{HEADER}\r2026-11-25,\"A\nB\",False,,,5,0,id,30\r");
        let (read_back, shape) = read(mac.into_bytes(), InputFormat::Auto).unwrap();
        assert!(shape.cr_line_ends);
        assert_eq!(
            read_back,
            format!("{HEADER}\n2026-11-25,\"A\nB\",False,,,5,0,id,30\n")
        );
    }

    #[test]
    fn binary_and_unknown_separators_are_refused_by_name() {
        let refused = |bytes: &[u8]| match read(bytes.to_vec(), InputFormat::Auto) {
            Err(ReportError::Shape { message, .. }) => message,
            other => panic!("{other:?}"),
        };
        assert!(refused(b"PK\x03\x04rest").contains("Excel workbook"));
        assert!(refused(b"\xff\xfe\x00\x00R\x00\x00\x00").contains("UTF-32"));
        assert!(refused(b"\x1f\x8b\x08").contains("gzip"));
        let piped = HEADER.replace(',', "|");
        let message = refused(piped.as_bytes());
        assert!(message.contains("separated by '|'"), "{message}");
        let control = refused(b"\x1b[2Jhello|world|x\n");
        assert!(!control.contains('\x1b'), "{control}");
    }

    #[test]
    fn a_graph_json_page_and_a_plain_array_become_csv() {
        let page = r#"{"@odata.context":"https://graph.microsoft.com/beta/$metadata#Collection(microsoft.graph.office365GroupsActivityDetail)","value":[
            {"reportRefreshDate":"2026-11-25","groupDisplayName":"Sales, \"EMEA\"","isDeleted":true,"ownerPrincipalName":null,"lastActivityDate":null,"memberCount":5,"externalMemberCount":0,"exchangeMailboxStorageUsedInBytes":12345678901,"groupId":"id","reportPeriod":"7"}
        ]}"#;
        let (text, shape) = read(page.as_bytes().to_vec(), InputFormat::Auto).unwrap();
        assert_eq!(shape.format, InputFormat::Json);
        let mut lines = text.lines();
        let header = lines.next().unwrap();
        let row = lines.next().unwrap();
        let cells: BTreeMap<&str, &str> = header.split(',').zip(split_csv(row)).collect();
        assert_eq!(cells["groupDisplayName"], "\"Sales, \"\"EMEA\"\"\"");
        assert_eq!(cells["isDeleted"], "True");
        assert_eq!(cells["lastActivityDate"], "");
        assert_eq!(cells["exchangeMailboxStorageUsedInBytes"], "12345678901");
        assert_eq!(cells["reportPeriod"], "7");
        let array = r#"[{"Report Refresh Date":"2026-11-25","Group Display Name":"A","Is Deleted":"False"}]"#;
        let (text, _) = read(array.as_bytes().to_vec(), InputFormat::Auto).unwrap();
        assert!(
            text.starts_with(
                "Group Display Name,Is Deleted,Report Refresh Date\nA,False,2026-11-25\n"
            ),
            "{text}"
        );
    }

    /// Splits a CSV line at commas outside quotes, keeping the quotes.
    fn split_csv(line: &str) -> Vec<&str> {
        let mut cells = Vec::new();
        let (mut start, mut quoted) = (0, false);
        for (i, c) in line.char_indices() {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => {
                    cells.push(&line[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        cells.push(&line[start..]);
        cells
    }

    #[test]
    fn a_json_page_with_a_next_link_or_broken_json_fails_the_read() {
        let page = r#"{"value":[{"groupDisplayName":"A"}],"@odata.nextLink":"https://graph.microsoft.com/beta/next"}"#;
        let error = read(page.as_bytes().to_vec(), InputFormat::Auto).unwrap_err();
        assert!(error.to_string().contains("@odata.nextLink"), "{error}");
        let broken = r#"[{"groupDisplayName":"A"},"#;
        let error = read(broken.as_bytes().to_vec(), InputFormat::Auto).unwrap_err();
        assert!(error.to_string().contains("not valid JSON"), "{error}");
    }

    /// A JSON page of `names` (beta's camelCase fields), with a next link
    /// when `next` is given.
    fn page(names: &[&str], next: Option<&str>) -> Box<dyn Read + Send> {
        let items: Vec<serde_json::Value> = names
            .iter()
            .map(|name| {
                serde_json::json!({
                    "reportRefreshDate": "2026-11-25",
                    "groupDisplayName": name,
                    "isDeleted": false,
                    "lastActivityDate": null,
                    "reportPeriod": "30",
                })
            })
            .collect();
        let mut page = serde_json::json!({
            "@odata.context": "https://graph.microsoft.com/beta/$metadata#Collection(microsoft.graph.office365GroupsActivityDetail)",
            "value": items,
        });
        if let Some(next) = next {
            page["@odata.nextLink"] = next.into();
        }
        Box::new(Cursor::new(page.to_string().into_bytes()))
    }

    fn read_pages(
        first: Box<dyn Read + Send>,
        next_page: impl FnMut(&str) -> io::Result<Box<dyn Read + Send>> + Send + 'static,
    ) -> io::Result<String> {
        let mut text = String::new();
        json_pages_as_csv(first, next_page).read_to_string(&mut text)?;
        Ok(text)
    }

    #[test]
    fn pages_are_followed_by_their_next_links_into_one_csv() {
        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = asked.clone();
        let text = read_pages(page(&["A", "B"], Some("https://g/2")), move |link| {
            seen.lock().unwrap().push(link.to_owned());
            Ok(match link {
                "https://g/2" => page(&["C"], Some("https://g/3?$skiptoken=x")),
                _ => page(&["D"], None),
            })
        })
        .unwrap();
        assert_eq!(
            *asked.lock().unwrap(),
            ["https://g/2", "https://g/3?$skiptoken=x"]
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "groupDisplayName,isDeleted,lastActivityDate,reportPeriod,reportRefreshDate"
        );
        assert_eq!(
            &lines[1..],
            [
                "A,False,,30,2026-11-25",
                "B,False,,30,2026-11-25",
                "C,False,,30,2026-11-25",
                "D,False,,30,2026-11-25"
            ]
        );
    }

    #[test]
    fn a_single_page_or_empty_pages_need_no_next_page() {
        let text = read_pages(page(&["A"], None), |_| panic!("no next link")).unwrap();
        assert_eq!(text.lines().count(), 2);
        let text = read_pages(page(&[], Some("https://g/2")), |_| Ok(page(&[], None))).unwrap();
        assert!(text.starts_with("Report Refresh Date,"), "{text}");
        assert_eq!(text.lines().count(), 1);
    }

    #[test]
    fn a_page_that_fails_fails_the_read_after_the_rows_before_it() {
        let mut reader = json_pages_as_csv(page(&["A"], Some("https://g/2")), |_| {
            Err(io::Error::other(
                "gave up fetching the report after 3 attempt(s)",
            ))
        });
        let mut text = Vec::new();
        let error = reader.read_to_end(&mut text).unwrap_err();
        assert!(error.to_string().contains("gave up fetching"), "{error}");
        assert!(String::from_utf8_lossy(&text).contains("A,False"));
    }

    #[test]
    fn a_page_cut_short_is_not_called_bad_json() {
        let cut = |_: &str| -> io::Result<Box<dyn Read + Send>> {
            let start = Cursor::new(br#"{"value":[{"groupDisplayName":"B"#.to_vec());
            let broken = FailedRead(Some(io::Error::other("the report download broke off")));
            Ok(Box::new(start.chain(broken)))
        };
        let message = read_pages(page(&["A"], Some("https://g/2")), cut)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("page 2 of the Graph answer: the report download broke off"),
            "{message}"
        );
        assert!(!message.contains("not valid JSON"), "{message}");
    }

    #[test]
    fn a_broken_page_a_non_page_or_a_repeated_link_fails_the_read() {
        let broken = |_: &str| -> io::Result<Box<dyn Read + Send>> {
            Ok(Box::new(Cursor::new(
                br#"{"value":[{"groupDisplayName":"#.to_vec(),
            )))
        };
        let error = read_pages(page(&["A"], Some("https://g/2")), broken).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("page 2 of the Graph answer: not valid JSON"),
            "{message}"
        );
        let array = |_: &str| -> io::Result<Box<dyn Read + Send>> {
            Ok(Box::new(Cursor::new(
                br#"[{"groupDisplayName":"B"}]"#.to_vec(),
            )))
        };
        let error = read_pages(page(&["A"], Some("https://g/2")), array).unwrap_err();
        assert!(error.to_string().contains("not a Graph page"), "{error}");
        let again = |_: &str| Ok(page(&["B"], Some("https://g/2")));
        let error = read_pages(page(&["A"], Some("https://g/2")), again).unwrap_err();
        assert!(error.to_string().contains("does not end"), "{error}");
    }

    #[test]
    fn an_empty_json_array_is_a_report_without_rows() {
        let (text, _) = read(b"[]".to_vec(), InputFormat::Auto).unwrap();
        assert!(text.starts_with("Report Refresh Date,"), "{text}");
        assert_eq!(text.lines().count(), 1);
    }
}
