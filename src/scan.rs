//! The scan pipeline: report rows in, ordered findings out.
//!
//! ```text
//!  N workers, each in turn:                                ──results──▶ caller's thread
//!   read a chunk of records (one at a time, under a lock)              (reorder by chunk
//!   then parse its rows, run the rules, render findings                 number, sink)
//! ```
//!
//! A worker reads the chunk it then evaluates, so the records are still in
//! its core's cache when it parses them (a separate reader thread handing
//! chunks over cost more in cache misses than reading in turn costs in
//! waiting). Rows travel in chunks so channel traffic stays small next to
//! the rule work; a fixed number of chunks may be in flight (permits), so
//! memory does not grow with the report; results are delivered in input
//! order, so output is the same whatever the thread count. With one thread
//! the same chunk code runs inline.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::report::reader::Record;
use rhai::Engine;

use crate::engine::eval::{ChunkItem, Evaluator, Rendered, RowOutcome};
use crate::engine::finding::Severity;
use crate::engine::render::Render;
use crate::engine::rule::RuleSet;
use crate::report::header::Layout;
use crate::report::reader::{ReportError, ReportReader};
use crate::report::row::{RowData, RowError};
use crate::report::stats::ReportStats;

/// Rows per chunk handed to a worker when findings reach the sink as
/// values (a state store records them): each row's findings are held
/// until written, so chunks stay small (a stateful 1M-row scan peaks at
/// 47 MiB with these, 54 MiB with 2048).
const CHUNK_ROWS: usize = 512;

/// Rows per chunk when the workers render findings to bytes: a chunk's
/// findings are then one buffer, and larger chunks mean fewer turns at
/// the reader's lock, fewer wake-ups and fewer, larger writes (1M rows:
/// 0.58 s with 512, 0.51 s with 4096, 17 and 28 MiB).
const RENDERED_CHUNK_ROWS: usize = 4096;

/// How a scan runs; [`ScanOptions::default`] suits a command-line scan.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    /// Worker threads; 1 evaluates on the caller's thread.
    pub threads: usize,
    /// The first row error stops the scan.
    pub strict: bool,
    /// Hand the sink every row, also those without findings (the state
    /// store needs to know which groups were evaluated cleanly).
    pub track_groups: bool,
    /// Run compiled rules natively (see `engine::native`); `false` runs
    /// every rule in the interpreter.
    pub fast_path: bool,
    /// Render findings to bytes on the workers (see
    /// [`crate::output::FindingWriter::render`]); they then reach the sink
    /// as [`ScanEvent::Rendered`], not inside [`ScanEvent::Row`].
    pub render: Option<&'static dyn Render>,
    /// Render each finding handed over in a [`ScanEvent::Row`] too, on
    /// the workers, for a sink that writes it with its status
    /// ([`crate::output::FindingWriter::write_rendered_with_status`]).
    pub prerender: Option<&'static dyn Render>,
    /// Gather every whole-report figure (tenant rules and the HTML page
    /// read them); `false` gathers only rows, refresh date, period and
    /// concealed rows.
    pub full_stats: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            threads: default_threads(),
            strict: false,
            track_groups: true,
            fast_path: true,
            render: None,
            prerender: None,
            full_stats: true,
        }
    }
}

impl ScanOptions {
    fn chunk_rows(&self) -> usize {
        if self.render.is_some() {
            RENDERED_CHUNK_ROWS
        } else {
            CHUNK_ROWS
        }
    }
}

/// Most workers a scan uses unless told otherwise.
///
/// Workers take turns at the one reader, and reading is about a sixth of
/// a row's work (`scripts/bench-vs-peers.sh` under callgrind), so past
/// six or so workers the reader is the limit: more would only add memory
/// (about 5–10 MiB each).
pub const MAX_DEFAULT_THREADS: usize = 8;

/// All cores, up to [`MAX_DEFAULT_THREADS`].
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_DEFAULT_THREADS)
}

/// What the sink is handed, in report order.
#[derive(Debug)]
pub enum ScanEvent<'a> {
    /// A row's findings and rule failures; every row with
    /// [`ScanOptions::track_groups`], else only rows that have some. With
    /// [`ScanOptions::prerender`], also its findings rendered, one after
    /// the other.
    Row(&'a RowOutcome, Option<&'a [u8]>),
    /// A record that could not be read as a row (skipped unless
    /// [`ScanOptions::strict`], which stops the scan instead).
    RowError(&'a RowError),
    /// Findings rendered by [`ScanOptions::render`], in report order, and
    /// the highest severity among them.
    Rendered {
        /// The rendered findings of one chunk of rows.
        bytes: &'a [u8],
        /// The highest severity among them; `None` for none.
        worst: Option<Severity>,
    },
}

/// Per-rule counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleCounts {
    /// Findings the rule reported.
    pub findings: u64,
    /// Rows (or tenant calls) on which the rule failed.
    pub errors: u64,
}

/// What a scan did.
#[derive(Clone, Debug, Default)]
pub struct ScanSummary {
    /// The report's name: its path, `<stdin>`, or the Graph report.
    pub source: String,
    /// The figures of every row read without error.
    pub stats: ReportStats,
    /// Records that could not be read as rows.
    pub row_errors: u64,
    /// Findings of all rules (the caller adds tenant rules' findings
    /// after the scan).
    pub findings: u64,
    /// Times a rule failed on a row or a tenant call (the caller adds
    /// the tenant ones).
    pub rule_errors: u64,
    /// Every enabled rule, in id order.
    pub per_rule: Vec<(Arc<str>, RuleCounts)>,
    /// Every enabled rule's title and help, by id: what messages about
    /// its findings say about it.
    pub rule_texts: std::collections::BTreeMap<String, crate::engine::rule::RuleText>,
    /// Wall-clock time of the scan, from the first read to the last
    /// delivery.
    pub elapsed: Duration,
}

impl ScanSummary {
    /// Every record read, readable or not.
    pub fn rows_read(&self) -> u64 {
        self.stats.rows + self.row_errors
    }
}

/// Why a scan stopped before the end of the report.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The report could not be read on (an I/O error, a malformed record).
    #[error(transparent)]
    Report(#[from] ReportError),
    /// A row could not be read and [`ScanOptions::strict`] is set.
    #[error("{source_name}: {error} (--strict stops at the first bad row)")]
    Strict {
        /// The report's name.
        source_name: String,
        /// The first bad row.
        error: RowError,
    },
    /// The sink (writing findings, recording state) failed; the scan stops.
    #[error(transparent)]
    Sink(SinkError),
}

/// Why a sink stopped the scan: the caller's own error, kept whole so
/// that, say, a closed output pipe is still an `io::ErrorKind::BrokenPipe`
/// when it reaches `main`.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Streams the report through the enabled rules. `sink` sees each row's
/// outcome (or, with [`ScanOptions::render`], each chunk's rendered
/// findings) and each row error in report order; an error from the sink
/// stops the scan.
pub fn scan<R: Read + Send>(
    mut reader: ReportReader<R>,
    engine: &Engine,
    rules: &RuleSet,
    options: &ScanOptions,
    sink: &mut dyn FnMut(ScanEvent<'_>) -> Result<(), SinkError>,
) -> Result<ScanSummary, ScanError> {
    let started = Instant::now();
    let mut tally = Tally::new(rules, reader.source_name(), options.strict);
    let layout = Arc::clone(reader.layout());
    if options.threads <= 1 {
        let mut evaluator = evaluator(engine, rules, options, layout);
        let mut chunk = Chunk::default();
        loop {
            let more = chunk.fill(&mut reader, options.chunk_rows())?;
            let (mut done, records) = process_chunk(&mut evaluator, chunk);
            let stop = tally.deliver(&done, sink)?;
            // As in the parallel path, the render buffer goes round.
            evaluator.render_into(std::mem::take(&mut done.rendered.bytes));
            chunk = Chunk {
                seq: done.seq + 1,
                records,
                len: 0,
            };
            if stop || !more {
                break;
            }
        }
    } else {
        run_parallel(reader, engine, rules, options, layout, &mut tally, sink)?;
    }
    Ok(tally.finish(started.elapsed()))
}

/// Raw records to evaluate, numbered so results can be put back in order.
#[derive(Default)]
struct Chunk {
    seq: u64,
    records: Vec<(u64, Record)>,
    len: usize,
}

impl Chunk {
    /// Reads up to a chunk's worth of rows; false at the end of input.
    fn fill<R: Read>(
        &mut self,
        reader: &mut ReportReader<R>,
        rows: usize,
    ) -> Result<bool, ReportError> {
        self.len = 0;
        while self.len < rows {
            if self.records.len() == self.len {
                self.records.push((0, Record::default()));
            }
            let slot = &mut self.records[self.len];
            match reader.read_unsplit_record(&mut slot.1)? {
                Some(line) => slot.0 = line,
                None => return Ok(false),
            }
            self.len += 1;
        }
        Ok(true)
    }
}

struct ChunkDone {
    seq: u64,
    /// The worker that evaluated it (0 on the caller's thread).
    worker: usize,
    items: Vec<ChunkItem>,
    rendered: Rendered,
    /// The findings of `items`, rendered for a sink that adds statuses.
    prerendered: Vec<u8>,
    stats: ReportStats,
}

/// An evaluator of the enabled rules, set up as `options` say.
fn evaluator<'a>(
    engine: &'a Engine,
    rules: &'a RuleSet,
    options: &ScanOptions,
    layout: Arc<Layout>,
) -> Evaluator<'a> {
    let mut evaluator = Evaluator::new(engine, rules.enabled(), RowData::empty(layout));
    evaluator.track_groups = options.track_groups;
    evaluator.fast_path = options.fast_path;
    evaluator.set_render(options.render);
    evaluator.set_prerender(options.prerender);
    evaluator.full_stats = options.full_stats;
    evaluator
}

/// Evaluates a chunk; hands back its record buffers, to be filled again.
fn process_chunk(
    evaluator: &mut Evaluator<'_>,
    mut chunk: Chunk,
) -> (ChunkDone, Vec<(u64, Record)>) {
    let mut items = Vec::new();
    let mut stats = ReportStats::default();
    evaluator.evaluate_chunk(&mut chunk.records[..chunk.len], &mut stats, &mut items);
    let done = ChunkDone {
        seq: chunk.seq,
        worker: 0,
        items,
        rendered: evaluator.take_rendered(),
        prerendered: evaluator.take_prerendered(),
        stats,
    };
    (done, chunk.records)
}

/// The report, shared by the workers, read one chunk at a time.
struct Source<R: Read> {
    reader: ReportReader<R>,
    next_seq: u64,
    finished: bool,
    error: Option<ReportError>,
}

fn run_parallel<R: Read + Send>(
    reader: ReportReader<R>,
    engine: &Engine,
    rules: &RuleSet,
    options: &ScanOptions,
    layout: Arc<Layout>,
    tally: &mut Tally,
    sink: &mut dyn FnMut(ScanEvent<'_>) -> Result<(), SinkError>,
) -> Result<(), ScanError> {
    let threads = options.threads;
    // Chunks read but not yet delivered: this bounds memory however
    // unevenly the workers progress. A permit is also the buffer the
    // chunk's findings are rendered into, handed back once written, so
    // the same few buffers serve the whole scan.
    let in_flight = threads * 2;
    let (done_tx, done_rx) = crossbeam_channel::bounded::<ChunkDone>(in_flight);
    let (permit_tx, permit_rx) = crossbeam_channel::bounded::<Vec<u8>>(in_flight);
    for _ in 0..in_flight {
        let _ = permit_tx.send(Vec::new());
    }
    let source = Mutex::new(Source {
        reader,
        next_seq: 0,
        finished: false,
        error: None,
    });
    let stop = AtomicBool::new(false);

    std::thread::scope(|s| -> Result<(), ScanError> {
        let (source, stop) = (&source, &stop);
        // Delivered findings go back to the worker that made them, to be
        // dropped there: freed by the thread that allocated them, and the
        // counts of the names they share (`Arc<str>`, each worker's own)
        // touched by one core only. Dropped on the ordering thread, the
        // one every row waits on, they cost a stateful 1M-row scan about
        // a tenth of that thread's time.
        let (spent_tx, spent_rx): (Vec<_>, Vec<_>) = (0..threads)
            .map(|_| crossbeam_channel::unbounded::<Vec<ChunkItem>>())
            .unzip();
        for (worker, spent_rx) in spent_rx.into_iter().enumerate() {
            let done_tx = done_tx.clone();
            let permit_rx = permit_rx.clone();
            let layout = Arc::clone(&layout);
            s.spawn(move || {
                let mut evaluator = evaluator(engine, rules, options, layout);
                let mut chunk = Chunk::default();
                while let Ok(buffer) = permit_rx.recv() {
                    spent_rx.try_iter().for_each(drop);
                    evaluator.render_into(buffer);
                    {
                        let mut source = source.lock().unwrap_or_else(|p| p.into_inner());
                        if source.finished || stop.load(Ordering::Relaxed) {
                            return;
                        }
                        match chunk.fill(&mut source.reader, options.chunk_rows()) {
                            Ok(more) => source.finished = !more,
                            Err(error) => {
                                source.error = Some(error);
                                source.finished = true;
                                return;
                            }
                        }
                        if chunk.len == 0 {
                            return;
                        }
                        chunk.seq = source.next_seq;
                        source.next_seq += 1;
                    }
                    let (mut done, records) = process_chunk(&mut evaluator, chunk);
                    done.worker = worker;
                    chunk = Chunk {
                        records,
                        ..Chunk::default()
                    };
                    if done_tx.send(done).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        drop(permit_rx);

        let mut pending: BTreeMap<u64, ChunkDone> = BTreeMap::new();
        let mut next = 0;
        let mut result = Ok(());
        'receive: for done in &done_rx {
            pending.insert(done.seq, done);
            while let Some(mut done) = pending.remove(&next) {
                next += 1;
                match tally.deliver(&done, sink) {
                    Ok(false) => {
                        if !done.items.is_empty() {
                            let _ = spent_tx[done.worker].send(std::mem::take(&mut done.items));
                        }
                        let mut buffer = std::mem::take(&mut done.rendered.bytes);
                        if buffer.capacity() == 0 {
                            buffer = std::mem::take(&mut done.prerendered);
                        }
                        let _ = permit_tx.send(buffer);
                    }
                    Ok(true) => break 'receive,
                    Err(error) => {
                        result = Err(error);
                        break 'receive;
                    }
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        drop(permit_tx);
        drop(done_rx);
        result
    })?;
    let source = source.into_inner().unwrap_or_else(|p| p.into_inner());
    if let Some(error) = source.error {
        return Err(error.into());
    }
    Ok(())
}

/// Counts what passes through, in order, and feeds the sink.
struct Tally {
    summary: ScanSummary,
    /// Each rule's place in `summary.per_rule`, looked up for every
    /// finding a stateful scan hands over: foldhash, not SipHash.
    rule_index: HashMap<Arc<str>, usize, foldhash::fast::RandomState>,
    /// The same, by the rule names the findings carry (each worker has its
    /// own copies), told apart by address: no hash of the name for every
    /// finding. The names are held here, so no address is reused for
    /// another name while it is in the list.
    by_address: Vec<(Arc<str>, usize)>,
    strict: bool,
    /// Rows and rows/s on a terminal, once the scan has run a second.
    progress: crate::progress::ScanProgress,
}

impl Tally {
    fn new(rules: &RuleSet, source: &str, strict: bool) -> Tally {
        let per_rule: Vec<_> = rules
            .enabled()
            .map(|r| (r.id.clone(), RuleCounts::default()))
            .collect();
        let rule_index = per_rule
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (id.clone(), i))
            .collect();
        Tally {
            summary: ScanSummary {
                source: source.to_owned(),
                per_rule,
                rule_texts: rules
                    .enabled()
                    .map(|r| (r.id.to_string(), r.text()))
                    .collect(),
                ..Default::default()
            },
            rule_index,
            by_address: Vec::new(),
            strict,
            progress: crate::progress::ScanProgress::start(),
        }
    }

    /// The place of `rule` in `summary.per_rule`.
    fn rule_slot(&mut self, rule: &Arc<str>) -> Option<usize> {
        if let Some(&(_, i)) = self.by_address.iter().find(|(r, _)| Arc::ptr_eq(r, rule)) {
            return Some(i);
        }
        let i = *self.rule_index.get(rule)?;
        // Bounded: a list of a few names per worker, not one per finding.
        if self.by_address.len() < 64 {
            self.by_address.push((Arc::clone(rule), i));
        }
        Some(i)
    }

    /// Delivers one chunk; true when the scan should stop.
    fn deliver(
        &mut self,
        done: &ChunkDone,
        sink: &mut dyn FnMut(ScanEvent<'_>) -> Result<(), SinkError>,
    ) -> Result<bool, ScanError> {
        self.summary.stats.merge(&done.stats);
        let bad_rows = done
            .items
            .iter()
            .filter(|item| matches!(item, ChunkItem::Error(_)))
            .count();
        self.progress.add_rows(done.stats.rows + bad_rows as u64);
        for &(ref rule, count) in &done.rendered.per_rule {
            self.summary.findings += count;
            if let Some(&i) = self.rule_index.get(rule) {
                self.summary.per_rule[i].1.findings += count;
            }
        }
        for item in &done.items {
            match item {
                ChunkItem::Row(outcome) => {
                    for finding in &outcome.findings {
                        self.summary.findings += 1;
                        if let Some(i) = self.rule_slot(&finding.rule) {
                            self.summary.per_rule[i].1.findings += 1;
                        }
                    }
                    for failure in &outcome.failures {
                        self.summary.rule_errors += 1;
                        if let Some(i) = self.rule_slot(&failure.rule) {
                            self.summary.per_rule[i].1.errors += 1;
                        }
                    }
                    let lines = outcome
                        .prerendered
                        .clone()
                        .and_then(|range| done.prerendered.get(range));
                    sink(ScanEvent::Row(outcome, lines)).map_err(ScanError::Sink)?;
                }
                ChunkItem::Error(error) => {
                    self.summary.row_errors += 1;
                    if self.strict {
                        return Err(ScanError::Strict {
                            source_name: self.summary.source.clone(),
                            error: error.clone(),
                        });
                    }
                    sink(ScanEvent::RowError(error)).map_err(ScanError::Sink)?;
                }
            }
        }
        if !done.rendered.bytes.is_empty() {
            sink(ScanEvent::Rendered {
                bytes: &done.rendered.bytes,
                worst: done.rendered.worst,
            })
            .map_err(ScanError::Sink)?;
        }
        Ok(false)
    }

    fn finish(mut self, elapsed: Duration) -> ScanSummary {
        self.progress.finish();
        self.summary.elapsed = elapsed;
        self.summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_all_cores_up_to_the_cap() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(default_threads(), cores.clamp(1, MAX_DEFAULT_THREADS));
    }
}
