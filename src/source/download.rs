//! The report body as a byte stream that cannot end early unnoticed.
//!
//! A download cut short must fail the scan, never pass as a short report:
//! the HTTP layer already errors when a connection closes before
//! `Content-Length` bytes or before the last chunk, and [`Download`] also
//! counts the bytes itself and fails at the end if the count is not the
//! announced length. A stalled connection fails after `stall_timeout`
//! (the HTTP client's per-read timeout).

use std::io::{self, Read};

use indicatif::ProgressBar;
use reqwest::blocking::Response;

/// The report as it arrives.
pub(crate) struct Download {
    body: Box<dyn Read + Send>,
    expected: Option<u64>,
    received: u64,
    progress: Option<ProgressBar>,
    done: bool,
}

impl Download {
    /// Wraps an answer whose status was success. `show_progress` draws a
    /// bar on standard error (see [`crate::progress::enabled`]).
    pub(crate) fn new(response: Response, show_progress: bool) -> Download {
        let expected = response.content_length();
        Download::from_reader(Box::new(response), expected, show_progress)
    }

    /// Wraps any body; `expected` is the announced length in bytes
    /// (`Content-Length`), `None` when the server gave none.
    pub(crate) fn from_reader(
        body: Box<dyn Read + Send>,
        expected: Option<u64>,
        show_progress: bool,
    ) -> Download {
        let progress = show_progress.then(|| crate::progress::download_bar(expected));
        Download {
            body,
            expected,
            received: 0,
            progress,
            done: false,
        }
    }

    /// Bytes received so far.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    fn cut_short(&self, cause: &io::Error) -> io::Error {
        let of = self
            .expected
            .map(|total| format!(" of {total}"))
            .unwrap_or_default();
        let why = if cause.kind() == io::ErrorKind::TimedOut || chain(cause).contains("timed out") {
            "no data arrived within stall_timeout".to_owned()
        } else {
            chain(cause)
        };
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "the report download broke off after {}{of} bytes ({why}); the report is incomplete",
                self.received
            ),
        )
    }

    fn finish(&mut self) -> io::Result<()> {
        self.done = true;
        if let Some(progress) = self.progress.take() {
            progress.finish_and_clear();
        }
        match self.expected {
            Some(total) if total != self.received => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the report download ended after {} of {total} bytes; the report is incomplete",
                    self.received
                ),
            )),
            _ => {
                tracing::debug!(bytes = self.received, "report downloaded");
                Ok(())
            }
        }
    }
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        match self.body.read(buf) {
            Ok(0) => self.finish().map(|()| 0),
            Ok(n) => {
                self.received += n as u64;
                if let Some(progress) = &self.progress {
                    progress.inc(n as u64);
                }
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                if let Some(progress) = self.progress.take() {
                    progress.abandon();
                }
                Err(self.cut_short(&e))
            }
        }
    }
}

/// An error and its causes on one line.
fn chain(error: &io::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.get_ref().and_then(|inner| inner.source());
    while let Some(inner) = cause {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Yields its bytes, then an error or a clean end.
    struct Cut {
        data: io::Cursor<Vec<u8>>,
        fail: bool,
    }

    impl Read for Cut {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.data.read(buf)?;
            if n == 0 && self.fail {
                return Err(io::Error::other("connection reset"));
            }
            Ok(n)
        }
    }

    fn download(body: &str, expected: Option<u64>, fail: bool) -> Download {
        Download::from_reader(
            Box::new(Cut {
                data: io::Cursor::new(body.as_bytes().to_vec()),
                fail,
            }),
            expected,
            false,
        )
    }

    #[test]
    fn fewer_bytes_than_announced_is_an_error() {
        let mut out = String::new();
        let err = download("a,b\n1,2\n", Some(100), false)
            .read_to_string(&mut out)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the report download ended after 8 of 100 bytes; the report is incomplete"
        );
    }

    #[test]
    fn a_broken_connection_says_how_far_it_got() {
        let mut out = String::new();
        let err = download("a,b\n", None, true)
            .read_to_string(&mut out)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the report download broke off after 4 bytes (connection reset); the report is incomplete"
        );
    }

    #[test]
    fn the_announced_length_passes() {
        let mut out = String::new();
        download("a,b\n", Some(4), false)
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "a,b\n");
    }
}
