//! A tap on the report's byte stream that feeds [`HtmlStats`].
//!
//! The charts need figures from every row (days since activity, storage
//! by type, external members), but the scan hands its sink only the
//! rules' outcomes, not the rows. Rather than widen the scan for one
//! output, the HTML writer taps the input: [`Tap::wrap`] returns a reader
//! that passes every byte through to the scan and copies it to a thread
//! that parses the same report with the same [`ReportReader`] and
//! [`RowData`] code and adds each good row to [`HtmlStats`]. Parsing is
//! cheap next to the rules, the copy travels in the reader's own buffer
//! sizes through a bounded channel, so memory stays bounded, and the
//! thread ends when the scan drops its reader.

use std::io::{self, Read};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use super::stats::HtmlStats;
use crate::report::reader::ReportReader;
use crate::report::row::RowData;

/// Read buffers in flight between the scan's reader and the tap.
const CHANNEL_BUFFERS: usize = 32;

/// The thread that turns tapped bytes into [`HtmlStats`].
pub(crate) struct Tap {
    thread: JoinHandle<HtmlStats>,
}

impl Tap {
    /// Wraps `input`; the returned reader must replace it.
    /// `max_record_bytes`: the scan's record cap, kept here too.
    pub(crate) fn wrap(
        input: Box<dyn Read + Send>,
        max_record_bytes: usize,
    ) -> (Box<dyn Read + Send>, Tap) {
        let (sender, receiver) = crossbeam_channel::bounded(CHANNEL_BUFFERS);
        let thread = std::thread::Builder::new()
            .name("html-stats".to_owned())
            .spawn(move || gather(ChannelReader::new(receiver), max_record_bytes))
            .expect("spawning a thread");
        let tee = TeeReader {
            inner: input,
            copy_to: Some(sender),
        };
        (Box::new(tee), Tap { thread })
    }

    /// The figures, once the scan has dropped the reader. A tap that
    /// failed (it cannot, short of a bug) yields empty figures rather
    /// than losing the findings.
    pub(crate) fn finish(self) -> HtmlStats {
        self.thread.join().unwrap_or_else(|_| {
            tracing::warn!("the HTML report's charts could not be computed");
            HtmlStats::default()
        })
    }
}

fn gather(input: ChannelReader, max_record_bytes: usize) -> HtmlStats {
    let mut stats = HtmlStats::default();
    // The scan reports a bad header or stream; here it only ends the charts.
    let Ok(mut reader) = ReportReader::with_max_record_bytes(input, "tap", max_record_bytes) else {
        return stats;
    };
    let mut row = RowData::empty(reader.layout().clone());
    while let Ok(Some(line)) = reader.read_record(&mut row.record) {
        if row.parse(line).is_ok() {
            stats.add_row(&row);
        }
    }
    stats
}

/// Passes reads through and sends a copy of every chunk read.
struct TeeReader {
    inner: Box<dyn Read + Send>,
    /// `None` once the tap went away: the scan goes on without it.
    copy_to: Option<Sender<Vec<u8>>>,
}

impl Read for TeeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0
            && let Some(sender) = &self.copy_to
            && sender.send(buf[..n].to_vec()).is_err()
        {
            self.copy_to = None;
        }
        Ok(n)
    }
}

/// Reads the chunks a [`TeeReader`] sent; end of input when it is dropped.
struct ChannelReader {
    chunks: Receiver<Vec<u8>>,
    current: Vec<u8>,
    position: usize,
}

impl ChannelReader {
    fn new(chunks: Receiver<Vec<u8>>) -> ChannelReader {
        ChannelReader {
            chunks,
            current: Vec::new(),
            position: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.position == self.current.len() {
            match self.chunks.recv() {
                Ok(chunk) => {
                    self.current = chunk;
                    self.position = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.position);
        buf[..n].copy_from_slice(&self.current[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out at most 7 bytes per read, to cross record boundaries.
    struct Trickle(io::Cursor<Vec<u8>>);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let len = buf.len().min(7);
            self.0.read(&mut buf[..len])
        }
    }

    #[test]
    fn the_scan_reads_the_same_bytes_and_the_tap_counts_every_good_row() {
        let report = "Report Refresh Date,Group Display Name,Is Deleted,Last Activity Date,Group Type,External Member Count,Exchange Mailbox Storage Used (Byte)\n\
            2026-11-25,A,False,2026-11-20,Private,3,100\n\
            2026-11-25,B,True,,Public,,40\n\
            2026-11-25,C,False,,Public,,7\n\
            2026-11-25,bad,maybe,,,,\n";
        let input = Box::new(Trickle(io::Cursor::new(report.as_bytes().to_vec())));
        let (mut tapped, tap) = Tap::wrap(input, crate::report::reader::MAX_RECORD_BYTES);
        let mut seen = String::new();
        tapped.read_to_string(&mut seen).unwrap();
        drop(tapped);
        let stats = tap.finish();

        assert_eq!(seen, report);
        assert_eq!(stats.activity.count_between(5, Some(5)), 1);
        assert_eq!(stats.activity.never, 1);
        assert_eq!((stats.deleted_groups, stats.deleted_storage_bytes), (1, 40));
        assert_eq!(stats.top_external.sorted()[0].name, "A");
        let types: Vec<(&str, u64)> = stats
            .storage_by_type
            .iter()
            .map(|t| (t.group_type.as_str(), t.bytes))
            .collect();
        assert_eq!(types, [("Private", 100), ("Public", 7)]);
    }

    #[test]
    fn a_report_without_a_header_gives_empty_figures() {
        let (mut tapped, tap) = Tap::wrap(
            Box::new(io::empty()),
            crate::report::reader::MAX_RECORD_BYTES,
        );
        io::copy(&mut tapped, &mut io::sink()).unwrap();
        drop(tapped);
        assert_eq!(tap.finish(), HtmlStats::default());
    }
}
