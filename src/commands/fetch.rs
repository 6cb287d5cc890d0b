//! `groupwarden fetch`: the report from Microsoft Graph into a file, as
//! received; with `--directory`, the directory cache refreshed.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::cli::FetchArgs;
use crate::config::LoadedConfig;
use crate::pipeline::input::{open_graph, resolve_source};
use crate::report::reader::ReportError;
use crate::scan::ScanError;
use crate::source::config::ResolvedSource;
use crate::source::download::Download;

use super::{Error, Outcome};

/// Runs `groupwarden fetch`.
pub(crate) fn run(args: FetchArgs) -> Result<Outcome, Error> {
    let loaded = LoadedConfig::load(args.config.as_deref())?;
    if args.directory {
        refresh_directory(&loaded, args.state.as_deref())?;
    }
    let Some(output) = &args.output else {
        return Ok(Outcome::Clean);
    };
    let source = loaded.config.source.clone().unwrap_or_default();
    let settings = match resolve_source(&source, super::report_request(&args.report), &loaded)? {
        ResolvedSource::Graph(settings) => settings,
        ResolvedSource::File(_) => {
            return Err(Error::Usage("fetch downloads from Microsoft Graph, but the config's [source] has type = \"file\"".into()));
        }
    };
    let (mut download, name) = open_graph(&settings)?;
    let bytes = write_report(&mut download, &name, output)?;
    tracing::info!(bytes, output = %output.display(), "fetched the groups activity report");
    Ok(Outcome::Clean)
}

/// `--directory`: the directory fetched now into the state database's
/// cache, whatever its age, and what it holds said on standard error.
fn refresh_directory(loaded: &LoadedConfig, state: Option<&Path>) -> Result<(), Error> {
    if !loaded.config.directory.enabled {
        tracing::warn!(
            "[directory] enabled is not set: the cache is refreshed, but scans join it only with [directory] enabled = true"
        );
    }
    let directory = crate::pipeline::directory::refresh(loaded, state)?;
    let teams = directory.iter().filter(|(_, facts)| facts.is_team).count();
    let ownerless = directory
        .iter()
        .filter(|(_, facts)| facts.owner_count == 0)
        .count();
    super::say!(
        "fetched the directory: {} Microsoft 365 group(s), {teams} of them Teams, {ownerless} without an owner; cached in {}",
        directory.len(),
        crate::state::recording::state_path(state, loaded).display()
    );
    Ok(())
}

/// Copies the report to `output` (`-`: standard output). A file is
/// written under a temporary name and renamed when the download is
/// complete, so a failed fetch leaves no short report behind.
fn write_report(download: &mut Download, name: &str, output: &Path) -> Result<u64, Error> {
    if output == Path::new("-") {
        let mut stdout = io::stdout().lock();
        return copy_report(download, name, &mut stdout)
            .and_then(|bytes| stdout.flush().map(|()| bytes).map_err(Error::Output));
    }
    let partial = partial_path(output);
    let file_error = |error| Error::File {
        path: output.to_owned(),
        error,
    };
    let mut file = io::BufWriter::new(File::create(&partial).map_err(file_error)?);
    let result = copy_report(download, name, &mut file).and_then(|bytes| {
        let file = file.into_inner().map_err(|e| file_error(e.into_error()))?;
        file.sync_all().map_err(file_error)?;
        std::fs::rename(&partial, output).map_err(file_error)?;
        Ok(bytes)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

fn partial_path(output: &Path) -> PathBuf {
    let mut name = output
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".partial");
    output.with_file_name(name)
}

/// Copies, telling a failed download (the source) from a failed write.
fn copy_report(download: &mut Download, name: &str, out: &mut dyn Write) -> Result<u64, Error> {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = download.read(&mut buffer).map_err(|error| {
            Error::Scan(ScanError::Report(ReportError::Io {
                source_name: name.to_owned(),
                error,
            }))
        })?;
        if n == 0 {
            return Ok(download.received());
        }
        out.write_all(&buffer[..n]).map_err(Error::Output)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partial_file_sits_beside_the_output() {
        assert_eq!(
            partial_path(Path::new("/tmp/r.csv")),
            Path::new("/tmp/r.csv.partial")
        );
        assert_eq!(partial_path(Path::new("r.csv")), Path::new("r.csv.partial"));
    }

    #[test]
    fn period_flags_parse_case_insensitively() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "groupwarden",
            "fetch",
            "-o",
            "x.csv",
            "--period",
            "d90",
        ])
        .unwrap();
        let crate::cli::Command::Fetch(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.report.period, Some(crate::source::config::Period::D90));
        let clash = crate::cli::Cli::try_parse_from([
            "groupwarden",
            "fetch",
            "-o",
            "x",
            "--period",
            "D7",
            "--date",
            "2026-11-20",
        ]);
        assert!(clash.is_err());
    }
}
