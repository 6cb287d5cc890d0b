use std::process::ExitCode;

use clap::Parser;
use groupwarden::cli::{Cli, LogFormat};
use groupwarden::commands::{self, Outcome};

/// A scan allocates many small strings on worker threads and frees them on
/// the writer thread; mimalloc handles that without the lock traffic of the
/// system allocator (measured: see the README's Performance section).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    ignore_file_size_signal();
    let cli = Cli::parse();
    let log_format = cli.log_format;
    init_logging(&cli.log_level, log_format);
    // Progress bars only beside log lines for people.
    groupwarden::progress::set_log_format_allows(log_format == LogFormat::Text);
    match commands::run(cli) {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Failing) => ExitCode::from(1),
        Err(error) if error.is_broken_pipe() => ExitCode::SUCCESS,
        Err(error) => {
            match log_format {
                LogFormat::Text => eprintln!("error: {error}"),
                // Only JSON lines on stderr: the error is an event too.
                LogFormat::Json => tracing::error!("{error}"),
            }
            ExitCode::from(2)
        }
    }
}

fn init_logging(level: &str, format: LogFormat) {
    use tracing_subscriber::prelude::*;

    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // No colour codes in a journal or a log file.
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let lines = match format {
        LogFormat::Text => lines.without_time().with_target(false).boxed(),
        LogFormat::Json => lines.json().boxed(),
    };
    tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .init();
}

/// Past a file size limit (`ulimit -f`) the kernel kills a writer with
/// SIGXFSZ, which ends groupwarden without a word. Ignored, the write
/// fails with EFBIG instead, and the error names the file.
fn ignore_file_size_signal() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread starts;
    // SIG_IGN installs no handler code.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}
