//! Streaming CSV reading: the header, then raw records one at a time.
//!
//! The reader never holds more than one record; callers hand in the
//! [`Record`] to fill so buffers are reused across the whole file.
//!
//! Nearly every line of a real report is a whole record without a quote in
//! it, so such a line is copied as it is and its commas are found eight
//! bytes at a time; only a record whose first line holds a `"` goes
//! through `csv_core`'s full RFC 4180 parser, which handles quoted commas,
//! doubled quotes and quoted line breaks. Both give the same fields for a
//! quote-free line.

use std::fmt;
use std::io::{self, Read};
use std::sync::Arc;

use super::header::{Layout, MissingColumns};

/// Reading the report failed as a whole (not one bad row).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The input failed while being read (a download cut short, a disk error).
    #[error("{source_name}: cannot read the report: {error}")]
    Io {
        /// The report's name, for messages.
        source_name: String,
        /// What failed.
        #[source]
        error: io::Error,
    },
    /// The input is not the groups activity report in a shape groupwarden
    /// reads (another report, an archive, an unknown separator, …).
    #[error("{source_name}: {message}")]
    Shape {
        /// The input, as messages name it.
        source_name: String,
        /// What was found, and what to do.
        message: String,
    },
    /// The input ended before a header line.
    #[error("{source_name}: the report is empty (no header line)")]
    Empty {
        /// The report's name, for messages.
        source_name: String,
    },
    /// The header lacks columns the scan needs.
    #[error("{source_name}, line 1: {error}")]
    Header {
        /// The report's name, for messages.
        source_name: String,
        /// Which columns are missing.
        error: MissingColumns,
    },
}

/// Bytes read from the input at a time; the buffer grows past this only
/// for a single record longer than it.
const READ_SIZE: usize = 1 << 20;

/// The longest record read by default (`[scan] max_record_bytes`): a row
/// of the report is a few hundred bytes, so anything longer is a broken
/// file (a quote never closed, binary data, `/dev/zero`), skipped as a row
/// error before it fills memory.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// The most bytes of a skipped record an error message quotes.
const QUOTED_BYTES: usize = 200;

/// One raw record: its fields' bytes, unparsed and unescaped.
///
/// The fields lie in one buffer, one separator byte between each two, so
/// a quote-free line is stored by copying it whole.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Record {
    bytes: Vec<u8>,
    /// Where each field ends in `bytes`; the next starts one byte later.
    ends: Vec<usize>,
    /// Some field may hold `#` (and so the report's `#QUOT#` escape).
    has_hash: bool,
    /// Why the reader skipped this record (longer than the cap, or a
    /// quote never closed): the record holds no fields, and parsing it is
    /// a row error with this message.
    skipped: Option<Box<str>>,
    /// `bytes` is a quote-free line not yet split at its commas (see
    /// [`Record::settle`]): the reader's lock is held while a line is
    /// read, not while it is split.
    unsplit: bool,
}

impl Record {
    /// The number of fields.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// No fields at all.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Field `index` (0-based), if the record has that many.
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        let end = *self.ends.get(index)?;
        let start = if index == 0 {
            0
        } else {
            self.ends[index - 1] + 1
        };
        Some(&self.bytes[start..end])
    }

    /// The record's bytes and where each field ends in them (the next
    /// starts one byte later): for loops over every field that index
    /// nothing twice.
    pub(crate) fn raw_parts(&self) -> (&[u8], &[usize]) {
        (&self.bytes, &self.ends)
    }

    /// The fields in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let field = &self.bytes[start..end];
            start = end + 1;
            field
        })
    }

    /// Whether the reader skipped this record (longer than the cap, or a
    /// quote never closed); the record is then empty.
    pub fn is_overlong(&self) -> bool {
        self.skipped.is_some()
    }

    /// Why the reader skipped this record, for the row error: what was
    /// wrong, where reading went on, and at most 200 bytes of the text.
    pub fn skip_reason(&self) -> Option<&str> {
        self.skipped.as_deref()
    }

    /// Whether some field may hold a `#`; when false none does.
    pub fn may_hold_hash(&self) -> bool {
        self.has_hash
    }

    /// Empties the record for the next one, keeping its buffers.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.has_hash = false;
        self.skipped = None;
        self.unsplit = false;
    }

    /// Splits a line read by [`ReportReader::read_unsplit_record`] into
    /// its fields; a no-op for a record already split.
    pub(crate) fn settle(&mut self) {
        if self.unsplit {
            self.unsplit = false;
            // A local vector: pushes need not reload it through `self`.
            let mut ends = std::mem::take(&mut self.ends);
            ends.clear();
            self.has_hash = split_at_commas(&self.bytes, &mut ends);
            ends.push(self.bytes.len());
            self.ends = ends;
        }
    }

    /// Replaces the record with `line`, which holds no quote and no line
    /// break, split later by [`Record::settle`].
    fn set_line(&mut self, line: &[u8]) {
        self.skipped = None;
        self.bytes.clear();
        self.bytes.extend_from_slice(line);
        self.ends.clear();
        self.unsplit = true;
    }

    /// Appends a field.
    pub fn push_field(&mut self, field: &[u8]) {
        if !self.ends.is_empty() {
            self.bytes.push(b',');
        }
        self.bytes.extend_from_slice(field);
        self.has_hash |= field.contains(&b'#');
        self.ends.push(self.bytes.len());
    }

    /// Appends a quoted field's inside, whose quotes all come doubled
    /// (`""`), each read as one quote.
    fn push_quoted_field(&mut self, inside: &[u8]) {
        self.push_field(inside);
        if memchr::memchr(b'"', inside).is_none() {
            return;
        }
        // Each pair collapsed to its first quote, in place.
        let mut kept = self.bytes.len() - inside.len();
        let mut read = kept;
        while read < self.bytes.len() {
            let byte = self.bytes[read];
            self.bytes[kept] = byte;
            kept += 1;
            read += if byte == b'"' { 2 } else { 1 };
        }
        self.bytes.truncate(kept);
        if let Some(end) = self.ends.last_mut() {
            *end = kept;
        }
    }

    /// Replaces the record with the fields of `line`, which holds no quote
    /// and no line break: split at every comma.
    #[cfg(test)]
    fn set_unquoted(&mut self, line: &[u8]) {
        self.set_line(line);
        self.settle();
    }
}

/// Pushes the position of every comma of `line` to `ends`; whether
/// `line` holds a `#`. Sixteen bytes at a time with SSE2, which every
/// x86-64 processor has (about half the instructions of the eight-byte
/// word tests below, which serve other processors).
#[cfg(target_arch = "x86_64")]
fn split_at_commas(line: &[u8], ends: &mut Vec<usize>) -> bool {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    // The commas and `#`s of 16 bytes, as bit masks.
    let masks = |block: &[u8; 16]| {
        // SAFETY: SSE2 is part of the x86-64 baseline, and the unaligned
        // load reads exactly the 16 bytes of `block`.
        unsafe {
            let bytes = _mm_loadu_si128(block.as_ptr().cast());
            (
                _mm_movemask_epi8(_mm_cmpeq_epi8(bytes, _mm_set1_epi8(b',' as i8))) as u32,
                _mm_movemask_epi8(_mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'#' as i8))) as u32,
            )
        }
    };
    let mut push = |at: usize, mut commas: u32| {
        while commas != 0 {
            ends.push(at + commas.trailing_zeros() as usize);
            commas &= commas - 1;
        }
    };
    let (blocks, tail) = line.as_chunks::<16>();
    let mut hashes = 0;
    let mut at = 0;
    for block in blocks {
        let (commas, hash) = masks(block);
        hashes |= hash;
        push(at, commas);
        at += 16;
    }
    match line.last_chunk::<16>() {
        // The tail as the last 16 bytes of the line, those already read
        // masked off: one more block, not a loop over up to 15 bytes.
        Some(last) if !tail.is_empty() => {
            let (commas, hash) = masks(last);
            let seen = 16 - tail.len();
            push(line.len() - 16, commas >> seen << seen);
            hashes |= hash >> seen;
            hashes != 0
        }
        _ => split_tail(tail, at, ends) || hashes != 0,
    }
}

/// Pushes the position of every comma of `line` to `ends`; whether
/// `line` holds a `#`. Eight bytes at a time, as words.
#[cfg(not(target_arch = "x86_64"))]
fn split_at_commas(line: &[u8], ends: &mut Vec<usize>) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const LOW7: u64 = 0x7f * ONES;
    // The high bit of each byte of `x` that is zero; exact, as no byte's
    // sum carries into the next.
    let zero_bytes = |x: u64| !(((x & LOW7) + LOW7) | x | LOW7);
    let (words, tail) = line.as_chunks::<8>();
    let mut hashes = 0;
    let mut at = 0;
    for word in words {
        let word = u64::from_le_bytes(*word);
        let mut commas = zero_bytes(word ^ (u64::from(b',') * ONES));
        hashes |= zero_bytes(word ^ (u64::from(b'#') * ONES));
        while commas != 0 {
            ends.push(at + commas.trailing_zeros() as usize / 8);
            commas &= commas - 1;
        }
        at += 8;
    }
    split_tail(tail, at, ends) || hashes != 0
}

/// The bytes after the last whole block of [`split_at_commas`], at `at`,
/// one at a time: pushes their commas; whether they hold a `#`.
fn split_tail(tail: &[u8], at: usize, ends: &mut Vec<usize>) -> bool {
    for (i, &byte) in tail.iter().enumerate() {
        if byte == b',' {
            ends.push(at + i);
        }
    }
    tail.contains(&b'#')
}

impl<T: AsRef<[u8]>> From<Vec<T>> for Record {
    fn from(fields: Vec<T>) -> Self {
        let mut record = Record::default();
        for field in &fields {
            record.push_field(field.as_ref());
        }
        record
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|field| String::from_utf8_lossy(field)))
            .finish()
    }
}

/// Reads a groups activity report from any byte stream.
pub struct ReportReader<R: Read> {
    lines: Lines<R>,
    layout: Arc<Layout>,
    source_name: String,
}

impl<R: Read> ReportReader<R> {
    /// Reads and maps the header line. `source_name` (a path, `-` or a URL
    /// without secrets) names the input in every error.
    pub fn new(input: R, source_name: &str) -> Result<Self, ReportError> {
        Self::with_max_record_bytes(input, source_name, MAX_RECORD_BYTES)
    }

    /// [`ReportReader::new`] with records capped at `max_record_bytes`
    /// (`[scan] max_record_bytes`) instead of [`MAX_RECORD_BYTES`]: a
    /// longer record is a row error and reading goes on.
    pub fn with_max_record_bytes(
        input: R,
        source_name: &str,
        max_record_bytes: usize,
    ) -> Result<Self, ReportError> {
        let mut lines = Lines::new(input, max_record_bytes);
        let mut header = Record::default();
        let io_error = |error: io::Error| ReportError::Io {
            source_name: source_name.to_owned(),
            error,
        };
        lines.skip_bom().map_err(io_error)?;
        if lines.next_record(&mut header).map_err(io_error)?.is_none() {
            return Err(ReportError::Empty {
                source_name: source_name.to_owned(),
            });
        }
        header.settle();
        let names: Vec<String> = header
            .iter()
            .map(|h| String::from_utf8_lossy(h).into_owned())
            .collect();
        if let Some(message) = super::identify::other_report(&names) {
            return Err(ReportError::Shape {
                source_name: source_name.to_owned(),
                message,
            });
        }
        let layout = Layout::from_headers(&names).map_err(|error| ReportError::Header {
            source_name: source_name.to_owned(),
            error,
        })?;
        Ok(ReportReader {
            lines,
            layout: Arc::new(layout),
            source_name: source_name.to_owned(),
        })
    }

    /// Where each field sits in this report, from its header.
    pub fn layout(&self) -> &Arc<Layout> {
        &self.layout
    }

    /// Joins `directory` to every row read from now on (call it before
    /// the first row: rows share the layout it is kept in).
    pub fn attach_directory(&mut self, directory: Arc<super::directory::Directory>) {
        Arc::make_mut(&mut self.layout).directory = Some(directory);
    }

    /// The report's name: its path, `<stdin>`, or `Microsoft Graph report (…)`.
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// Fills `record` with the next row and returns the 1-based line it
    /// starts on, or `None` at the end of the report. Blank lines are
    /// skipped. An error here is the stream failing (a download cut short,
    /// a disk error), not a bad row.
    pub fn read_record(&mut self, record: &mut Record) -> Result<Option<u64>, ReportError> {
        let line = self.read_unsplit_record(record)?;
        record.settle();
        Ok(line)
    }

    /// As [`ReportReader::read_record`], but a quote-free line is left
    /// for [`Record::settle`] to split at its commas: the scan's workers
    /// take turns at the reader and split what they read after their turn.
    pub(crate) fn read_unsplit_record(
        &mut self,
        record: &mut Record,
    ) -> Result<Option<u64>, ReportError> {
        self.lines
            .next_record(record)
            .map_err(|error| ReportError::Io {
                source_name: self.source_name.clone(),
                error,
            })
    }
}

/// The record splitter under [`ReportReader`]: its own read buffer, the
/// number of the line at the front of it, and `csv_core` for quoted records.
struct Lines<R> {
    input: R,
    buf: Vec<u8>,
    /// `buf[pos..end]` is read but not yet consumed.
    pos: usize,
    end: usize,
    eof: bool,
    /// The 1-based line number of `buf[pos]`.
    line: u64,
    /// The longest record kept; a longer one is skipped.
    max_record: usize,
    quoted: csv_core::Reader,
    fields: Vec<u8>,
    ends: Vec<usize>,
}

impl<R: Read> Lines<R> {
    fn new(input: R, max_record: usize) -> Self {
        Lines {
            input,
            buf: vec![0; READ_SIZE],
            pos: 0,
            end: 0,
            eof: false,
            line: 1,
            max_record,
            // Records end at `\n` only, so each record's start line is
            // exact; the `\r` of a CRLF stays on the last field, where
            // cells are trimmed anyway.
            quoted: csv_core::ReaderBuilder::new()
                .terminator(csv_core::Terminator::Any(b'\n'))
                .build(),
            fields: vec![0; 1024],
            ends: vec![0; 64],
        }
    }

    /// Moves unconsumed bytes to the front and reads more behind them,
    /// growing the buffer when one record fills it. Returns false at the
    /// end of the input.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        if self.buf.len() - self.end < READ_SIZE / 2 {
            self.buf.resize(self.end + READ_SIZE, 0);
        }
        loop {
            match self.input.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn skip_bom(&mut self) -> io::Result<()> {
        while self.end - self.pos < 3 && self.fill()? {}
        if self.buf[self.pos..self.end].starts_with(b"\xef\xbb\xbf") {
            self.pos += 3;
        }
        Ok(())
    }

    /// Skips a line longer than the cap (no quote before its end) to its
    /// end, reading on without keeping it, and hands back an empty record
    /// marked skipped: a row error, not a reason to stop, and never more
    /// than the cap in memory (`/dev/zero` ends with the input). Returns
    /// the line it started on.
    fn skip_overlong(&mut self, record: &mut Record) -> io::Result<u64> {
        let line = self.line;
        let excerpt = self.excerpt();
        self.skip_line()?;
        record.clear();
        record.skipped = Some(
            format!(
                "a line longer than {} bytes, too long to be a row of the report; skipped to the next line \
                 ([scan] max_record_bytes sets the limit). It starts: {excerpt}",
                self.max_record
            )
            .into(),
        );
        Ok(line)
    }

    /// Consumes the input up to and including the next line break (or to
    /// the end), keeping none of it.
    fn skip_line(&mut self) -> io::Result<()> {
        loop {
            match memchr::memchr(b'\n', &self.buf[self.pos..self.end]) {
                Some(i) => {
                    self.pos += i + 1;
                    break;
                }
                None => {
                    self.pos = self.end;
                    if !self.fill()? {
                        break;
                    }
                }
            }
        }
        self.line += 1;
        Ok(())
    }

    /// At most [`QUOTED_BYTES`] of the line at `pos`, quoted for a message:
    /// control characters escaped, the cut marked.
    fn excerpt(&self) -> String {
        let rest = &self.buf[self.pos..self.end];
        let line = memchr::memchr(b'\n', rest).map_or(rest, |i| &rest[..i]);
        let cut = line.len() > QUOTED_BYTES;
        let shown = String::from_utf8_lossy(&line[..line.len().min(QUOTED_BYTES)]);
        let mut text: String = shown
            .trim_end_matches('\u{fffd}')
            .chars()
            .flat_map(|c| {
                let escaped: Vec<char> = if c.is_control() {
                    c.escape_default().collect()
                } else {
                    vec![c]
                };
                escaped
            })
            .collect();
        if cut {
            text.push('…');
        }
        format!("`{text}`")
    }

    /// The next record that is not a blank line, and the line it starts on.
    fn next_record(&mut self, record: &mut Record) -> io::Result<Option<u64>> {
        loop {
            let unread = &self.buf[self.pos..self.end];
            let (line_end, next) = match memchr::memchr2(b'\n', b'"', unread) {
                Some(i) if self.buf[self.pos + i] == b'"' => {
                    let read = match self.read_plainly_quoted(record) {
                        Some(line) => Some(line),
                        None => self.read_quoted(record)?,
                    };
                    match read {
                        Some(_) if record.len() == 1 && record.bytes.trim_ascii().is_empty() => {
                            continue;
                        }
                        read => return Ok(read),
                    }
                }
                Some(i) => (self.pos + i, self.pos + i + 1),
                None if self.end - self.pos > self.max_record => {
                    return self.skip_overlong(record).map(Some);
                }
                None if self.fill()? => continue,
                None if self.pos == self.end => return Ok(None),
                // The last line, without a line break.
                None => (self.end, self.end),
            };
            if line_end - self.pos > self.max_record {
                return self.skip_overlong(record).map(Some);
            }
            let text = &self.buf[self.pos..line_end];
            let line = self.line;
            self.line += 1;
            self.pos = next;
            if text.trim_ascii().is_empty() {
                continue;
            }
            record.set_line(text);
            return Ok(Some(line));
        }
    }

    /// Reads the usual quoted record, a line whose quoted fields (a name
    /// with a comma or a doubled quote) each close before a `,` or the
    /// line's end, without `csv_core`, which reads a byte at a time: about
    /// 4,500 instructions a record spent there. Anything else — a field
    /// running over a line break, a quote inside an unquoted field, text after
    /// a closing quote, a line longer than the cap or not yet whole in the
    /// buffer — is `None`, left to [`Lines::read_quoted`], which gives the
    /// same fields for the lines read here.
    fn read_plainly_quoted(&mut self, record: &mut Record) -> Option<u64> {
        let unread = &self.buf[self.pos..self.end];
        let length = memchr::memchr(b'\n', unread)?;
        if length > self.max_record {
            return None;
        }
        let text = &unread[..length];
        record.clear();
        let mut at = 0;
        loop {
            if text.get(at) == Some(&b'"') {
                // The closing quote: the first not doubled (`""` is a quote).
                let mut from = at + 1;
                let close = loop {
                    let quote = from + memchr::memchr(b'"', &text[from..])?;
                    if text.get(quote + 1) != Some(&b'"') {
                        break quote;
                    }
                    from = quote + 2;
                };
                record.push_quoted_field(&text[at + 1..close]);
                match text.get(close + 1) {
                    None => break,
                    Some(b',') => at = close + 2,
                    Some(_) => return None,
                }
            } else {
                match memchr::memchr2(b',', b'"', &text[at..]) {
                    None => {
                        record.push_field(&text[at..]);
                        break;
                    }
                    Some(end) if text[at + end] == b',' => {
                        record.push_field(&text[at..at + end]);
                        at += end + 1;
                    }
                    Some(_) => return None,
                }
            }
        }
        let line = self.line;
        self.line += 1;
        self.pos += length + 1;
        Some(line)
    }

    /// Reads a record whose first line holds a quote with `csv_core`,
    /// across as many lines as its quoted fields span. The record's bytes
    /// stay in the buffer until it is whole, so one that runs over the cap
    /// or never closes its quote is skipped from the line after its start:
    /// a row error, and the rest of the file is still read.
    fn read_quoted(&mut self, record: &mut Record) -> io::Result<Option<u64>> {
        use csv_core::ReadRecordResult;
        let (mut out, mut ends) = (0, 0);
        // Bytes of the record consumed so far, from `self.pos`.
        let mut consumed = 0;
        let mut quoting = QuoteState::FieldStart;
        loop {
            let input = &self.buf[self.pos + consumed..self.end];
            let (result, nin, nout, nend) =
                self.quoted
                    .read_record(input, &mut self.fields[out..], &mut self.ends[ends..]);
            quoting = input[..nin].iter().fold(quoting, QuoteState::next);
            consumed += nin;
            if consumed > self.max_record {
                return self.skip_quoted(record, SkipCause::TooLong).map(Some);
            }
            out += nout;
            ends += nend;
            match result {
                // At the end of the input `csv_core` is handed an empty
                // slice, which finishes the last record.
                ReadRecordResult::InputEmpty => {
                    self.fill()?;
                }
                ReadRecordResult::OutputFull => self.fields.resize(self.fields.len() * 2, 0),
                ReadRecordResult::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                ReadRecordResult::Record if self.eof && quoting == QuoteState::Quoted => {
                    return self.skip_quoted(record, SkipCause::Unclosed).map(Some);
                }
                ReadRecordResult::Record => {
                    let line = self.line;
                    let read = &self.buf[self.pos..self.pos + consumed];
                    self.line += memchr::memchr_iter(b'\n', read).count() as u64;
                    self.pos += consumed;
                    record.clear();
                    let mut start = 0;
                    for &end in &self.ends[..ends] {
                        record.push_field(&self.fields[start..end]);
                        start = end;
                    }
                    return Ok(Some(line));
                }
                ReadRecordResult::End => return Ok(None),
            }
        }
    }

    /// Gives up the quoted record at `pos`: an empty record marked skipped
    /// with `cause`, and reading resumes on the line after its first.
    fn skip_quoted(&mut self, record: &mut Record, cause: SkipCause) -> io::Result<u64> {
        self.quoted.reset();
        let line = self.line;
        let excerpt = self.excerpt();
        self.skip_line()?;
        let what = match cause {
            SkipCause::TooLong => format!(
                "a record with a quoted field that is not closed within {} bytes ([scan] max_record_bytes)",
                self.max_record
            ),
            SkipCause::Unclosed => {
                "a quote that opens a field on this line is never closed (it would run to the end of the file)"
                    .to_owned()
            }
        };
        record.clear();
        record.skipped = Some(
            format!("{what}; skipped this line and read on from the next. It starts: {excerpt}")
                .into(),
        );
        Ok(line)
    }
}

/// Why a quoted record was skipped.
#[derive(Clone, Copy, Debug)]
enum SkipCause {
    /// It ran over the cap.
    TooLong,
    /// The input ended inside a quoted field.
    Unclosed,
}

/// Where a byte leaves a record, as `csv_core` reads it: only to tell a
/// record that ended because the input did, inside a quoted field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QuoteState {
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: the end of it, or the first of `""`.
    QuoteInQuoted,
}

impl QuoteState {
    fn next(self, byte: &u8) -> QuoteState {
        use QuoteState::*;
        match (self, byte) {
            (Quoted, b'"') => QuoteInQuoted,
            (Quoted, _) | (QuoteInQuoted, b'"') => Quoted,
            (FieldStart, b'"') => Quoted,
            (_, b',' | b'\n') => FieldStart,
            _ => Unquoted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(text: &str) -> Vec<(u64, Vec<String>)> {
        records_of(text.as_bytes())
    }

    fn records_of(input: impl Read) -> Vec<(u64, Vec<String>)> {
        read_all(ReportReader::new(input, "t.csv").unwrap())
            .into_iter()
            .map(|(line, fields, _)| (line, fields))
            .collect()
    }

    /// Every record `reader` gives: line, fields, and the skip reason of
    /// a skipped one.
    fn read_all<R: Read>(mut reader: ReportReader<R>) -> Vec<(u64, Vec<String>, Option<String>)> {
        let mut record = Record::default();
        let mut out = Vec::new();
        while let Some(line) = reader.read_record(&mut record).unwrap() {
            out.push(described(line, &record));
        }
        out
    }

    /// A record read on `line`: line, fields, and its skip reason.
    fn described(line: u64, record: &Record) -> (u64, Vec<String>, Option<String>) {
        (
            line,
            record
                .iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect(),
            record.skip_reason().map(str::to_owned),
        )
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

    /// Hands out its bytes `step` at a time, so records straddle reads.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    #[test]
    fn lines_after_blank_lines_are_numbered_where_the_record_is() {
        let text = format!("{HEAD}\n\r\n   \na,b,c,d\n\n\"q\",b,c,d\n");
        let rows = lines_of(&text);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, 5);
        assert_eq!(rows[1].0, 7);
    }

    #[test]
    fn the_last_line_needs_no_line_break() {
        assert_eq!(
            lines_of(&format!("{HEAD}a,b,,d")),
            vec![(2, vec!["a".into(), "b".into(), "".into(), "d".into()])]
        );
        assert_eq!(
            lines_of(&format!("{HEAD}a,\"b\nc\",,\"d\"")),
            vec![(2, vec!["a".into(), "b\nc".into(), "".into(), "d".into()])]
        );
    }

    /// The records of `text` read with a cap of `cap` bytes: line, fields,
    /// and the skip reason of a skipped one.
    fn capped(text: &str, cap: usize) -> Vec<(u64, Vec<String>, Option<String>)> {
        read_all(ReportReader::with_max_record_bytes(text.as_bytes(), "t.csv", cap).unwrap())
    }

    fn fields(list: [&str; 4]) -> Vec<String> {
        list.iter().map(|f| (*f).to_owned()).collect()
    }

    #[test]
    fn a_quote_never_closed_skips_its_line_and_the_rest_is_read() {
        let rows = capped(&format!("{HEAD}a,b,c,d\na,\"open,c,d\nx,y,z,w\n"), 4096);
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(rows[0].0, 2);
        assert_eq!(rows[1].0, 3);
        assert!(rows[1].1.is_empty());
        let reason = rows[1].2.as_deref().unwrap();
        assert!(
            reason.contains("a quote that opens a field on this line is never closed"),
            "{reason}"
        );
        assert!(reason.contains("read on from the next"), "{reason}");
        assert!(reason.ends_with("It starts: `a,\"open,c,d`"), "{reason}");
        assert_eq!(rows[2], (4, fields(["x", "y", "z", "w"]), None));
        // At the very end, without a line break.
        let rows = capped(&format!("{HEAD}a,b,c,d\na,\"open"), 4096);
        assert_eq!(rows.len(), 2);
        assert!(rows[1].2.is_some());
    }

    #[test]
    fn an_unclosed_quote_near_the_top_of_a_big_file_costs_one_row() {
        // The quote would swallow the whole file; with a 4 KiB cap the
        // reader gives up after 4 KiB and reads every later row.
        let mut text = format!("{HEAD}a,\"open,c,d\n");
        for i in 0..2000 {
            text.push_str(&format!("r{i},b,c,d\n"));
        }
        let rows = capped(&text, 4096);
        assert_eq!(rows.len(), 2001);
        let reason = rows[0].2.as_deref().unwrap();
        assert!(
            reason.contains("not closed within 4096 bytes ([scan] max_record_bytes)"),
            "{reason}"
        );
        assert_eq!(rows[1].0, 3);
        assert_eq!(rows[1].1[0], "r0");
        assert_eq!(rows[2000].0, 2002);
        assert!(rows[1..].iter().all(|r| r.2.is_none() && r.1.len() == 4));
    }

    #[test]
    fn overlong_lines_quoted_or_not_are_skipped_with_a_short_quote() {
        let long = "x".repeat(3 * MAX_RECORD_BYTES);
        for (text, what) in [
            (format!("{HEAD}{long}\na,b,c,d\n"), "a line longer than"),
            (format!("{HEAD}a,\"{long}\"\na,b,c,d\n"), "a quoted field"),
            (
                format!("{HEAD}\u{1b}[2J{long}\na,b,c,d\n"),
                "a line longer than",
            ),
        ] {
            let rows = capped(&text, MAX_RECORD_BYTES);
            assert_eq!(rows.len(), 2, "{what}");
            assert_eq!(rows[0].0, 2);
            assert!(rows[0].1.is_empty());
            let reason = rows[0].2.as_deref().unwrap();
            assert!(reason.contains(what), "{reason}");
            assert!(reason.contains(&MAX_RECORD_BYTES.to_string()), "{reason}");
            assert!(reason.len() < 500, "quotes at most 200 bytes: {reason}");
            assert!(
                !reason.contains('\u{1b}'),
                "control characters escaped: {reason}"
            );
            assert_eq!(rows[1], (3, fields(["a", "b", "c", "d"]), None));
        }
    }

    #[test]
    fn a_quoted_record_over_the_cap_resumes_on_the_line_after_its_start() {
        // A multi-line quoted field over a 1 KiB cap: its first line is
        // the row error, and the lines after it are read as records.
        let body = "y".repeat(600);
        let text = format!("{HEAD}a,\"{body}\n{body}\n\",c,d\ne,f,g,h\n");
        let rows = capped(&text, 1024);
        assert_eq!(rows[0].0, 2);
        let reason = rows[0].2.as_deref().unwrap();
        assert!(reason.contains("not closed within 1024 bytes"), "{reason}");
        assert_eq!(rows[1].0, 3);
        assert_eq!(rows.last().unwrap().1, fields(["e", "f", "g", "h"]));
        assert_eq!(rows.last().unwrap().0, 5);
    }

    #[test]
    fn a_quote_inside_an_unquoted_field_is_text() {
        let rows = lines_of(&format!("{HEAD}a,b\"c,d,e\n"));
        assert_eq!(rows[0].1, ["a", "b\"c", "d", "e"]);
    }

    #[test]
    fn a_record_longer_than_the_read_buffer_is_read_whole() {
        let long = "x".repeat(MAX_RECORD_BYTES / 2 - 10);
        let text = format!("{HEAD}{long},\"{long}\",,\nz,z,z,z\n");
        let rows = lines_of(&text);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].1[0].len(), long.len());
        assert_eq!(rows[0].1[1], long);
        assert_eq!(rows[1], (3, vec!["z".into(); 4]));
    }

    /// Random reports with every awkward shape (quoted commas, doubled
    /// quotes, quoted line breaks, CRLF, blank lines, stray quotes, empty
    /// and ragged records, multi-byte text), read whole and one or a few
    /// bytes at a time, give the fields the `csv` crate reads (whole
    /// lines in the buffer take [`Lines::read_plainly_quoted`] where they
    /// can; a trickle leaves most quoted lines to `csv_core`).
    #[test]
    fn fields_are_those_the_csv_crate_reads() {
        let pieces = [
            "a",
            "Sales",
            "",
            " ",
            "1,5",
            "\"q,\"",
            "\"He said \"\"hi\"\"\"",
            "\"x\ny\"",
            "\"\r\n\"",
            "b\"c",
            "\"open",
            "é✓",
            "#QUOT#",
            "\"\"",
            "12345678901",
            "x\r",
            "\"a\"b",
            "\"tail\" ",
            "\"Sales, EMEA\"",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..1000 {
            let mut text = String::from(HEAD);
            for _ in 0..next(12) {
                match next(10) {
                    0 => text.push('\n'),
                    1 => text.push_str("\r\n"),
                    _ => {
                        let fields: Vec<&str> = (0..1 + next(6))
                            .map(|_| pieces[next(pieces.len())])
                            .collect();
                        text.push_str(&fields.join(","));
                        text.push_str(if next(3) == 0 { "\r\n" } else { "\n" });
                    }
                }
            }
            if next(2) == 0 {
                text.pop();
            }
            let mut expected = Vec::new();
            let mut csv = csv::ReaderBuilder::new()
                .has_headers(true)
                .flexible(true)
                .terminator(csv::Terminator::Any(b'\n'))
                .from_reader(text.as_bytes());
            for record in csv.byte_records() {
                let record = record.unwrap();
                if record.len() == 1 && record[0].trim_ascii().is_empty() {
                    continue;
                }
                let fields: Vec<String> = record
                    .iter()
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect();
                expected.push(fields);
            }
            let unclosed = text
                .bytes()
                .skip(HEAD.len())
                .fold(QuoteState::FieldStart, |state, b| state.next(&b))
                == QuoteState::Quoted;
            if unclosed {
                // The csv crate reads a quote never closed as ending with
                // the input; groupwarden skips its line (tested above).
                continue;
            }
            for step in [usize::MAX, 1, 7] {
                let read: Vec<Vec<String>> = records_of(Trickle {
                    bytes: text.as_bytes(),
                    step,
                })
                .into_iter()
                .map(|(_, fields)| fields)
                .collect();
                assert_eq!(read, expected, "{text:?} read {step} bytes at a time");
            }
        }
    }

    proptest::proptest! {
        /// Any mix of quotes, separators and line breaks, read with a small
        /// cap a few bytes at a time: no record over the cap, line numbers
        /// always rising, and the whole input read (the last line given is
        /// reached whatever came before it).
        #[test]
        fn a_small_cap_bounds_every_record_and_reading_goes_on(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec!["a", ",", "\"", "\n", "\r\n", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "\"\"", "é"]),
                0..200,
            ),
            // Above the header's 80 bytes, below many records.
            cap in 100usize..160,
            step in 1usize..9,
        ) {
            let mut text = String::from(HEAD);
            text.push_str(&pieces.concat());
            text.push_str("\nlast,b,c,d\n");
            let mut reader = ReportReader::with_max_record_bytes(
                Trickle { bytes: text.as_bytes(), step },
                "t.csv",
                cap,
            )
            .unwrap();
            let mut record = Record::default();
            let mut previous = 1;
            let mut last = None;
            while let Some(line) = reader.read_record(&mut record).unwrap() {
                proptest::prop_assert!(line > previous, "line {line} after {previous}");
                proptest::prop_assert!(record.bytes.len() <= cap);
                previous = line;
                last = Some((line, record.clone()));
            }
            let lines = text.matches('\n').count() as u64;
            let (line, record) = last.unwrap();
            proptest::prop_assert_eq!(line, lines);
            if !record.is_overlong() {
                proptest::prop_assert_eq!(record.get(0), Some(&b"last"[..]));
            }
        }
    }

    #[test]
    fn a_line_split_after_the_read_is_the_record_read_whole() {
        let text = format!(
            "{HEAD}a,b,c,d\n\"q, 1\",x,#QUOT#y,d\r\nplain,#,z,d\r\n\n  \nlast,,,\n\"two\nlines\",b,c,d\nend,1,2,3"
        );
        let whole = read_all(ReportReader::new(text.as_bytes(), "t.csv").unwrap());
        let mut reader = ReportReader::new(text.as_bytes(), "t.csv").unwrap();
        // One record reused, as the scan's chunks reuse theirs: a quoted
        // record read into it after an unsplit line is whole as read.
        let mut record = Record::default();
        let mut late = Vec::new();
        while let Some(line) = reader.read_unsplit_record(&mut record).unwrap() {
            let hash = record.clone();
            record.settle();
            record.settle();
            late.push(described(line, &record));
            assert_eq!(hash.bytes, record.bytes);
        }
        assert_eq!(late, whole);
        assert_eq!(late.len(), 6);
        let text = format!("{HEAD}a,#QUOT#b,c,d\nc,d,e,f\n");
        let mut hashes = ReportReader::new(text.as_bytes(), "t.csv").unwrap();
        let mut flags = Vec::new();
        while hashes.read_unsplit_record(&mut record).unwrap().is_some() {
            record.settle();
            flags.push(record.may_hold_hash());
        }
        assert_eq!(flags, [true, false]);
    }

    #[test]
    fn record_fields_by_index_and_in_order() {
        let record = Record::from(vec!["a", "", "ccc"]);
        assert_eq!(record.len(), 3);
        assert_eq!(record.get(0), Some(&b"a"[..]));
        assert_eq!(record.get(1), Some(&b""[..]));
        assert_eq!(record.get(2), Some(&b"ccc"[..]));
        assert_eq!(record.get(3), None);
        assert_eq!(record.iter().collect::<Vec<_>>(), [&b"a"[..], b"", b"ccc"]);
        let mut split = Record::default();
        split.set_unquoted(b"a,,ccc");
        assert_eq!(split, record);
        split.set_unquoted(b"0123456,89abcdef,,,0123456789abcdef0123456,");
        assert_eq!(
            split.iter().collect::<Vec<_>>(),
            [
                &b"0123456"[..],
                b"89abcdef",
                b"",
                b"",
                b"0123456789abcdef0123456",
                b""
            ]
        );
        assert!(!split.may_hold_hash());
        // A `#` in a whole word or in the last few bytes is noticed.
        split.set_unquoted(b"0123456789,abcdef#,x");
        assert!(split.may_hold_hash());
        split.set_unquoted(b"a,b,#QUOT#");
        assert!(split.may_hold_hash());
        split.set_unquoted(b"01234567,#");
        assert!(split.may_hold_hash());
    }
}
