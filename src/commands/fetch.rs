//! `groupwarden fetch`: the report from Microsoft Graph into a file, as
//! received. Also [`open_report`], the input of every command that reads
//! a report: `--input`, else the config's `[source]`.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use crate::cli::{FetchArgs, ReportArgs};
use crate::config::LoadedConfig;
use crate::report::reader::ReportError;
use crate::scan::ScanError;
use crate::source::config::{
    ENV_CLIENT_ID, ENV_TENANT_ID, Environment, GraphSettings, ProcessEnvironment, ReportRequest,
    ResolvedSource, SourceConfig,
};
use crate::source::download::Download;
use crate::source::graph::GraphClient;
use crate::source::save::SavedCopy;

use super::{Error, Outcome, open_input};

pub fn run(args: FetchArgs) -> Result<Outcome, Error> {
    let loaded = LoadedConfig::load(args.config.as_deref())?;
    let source = loaded.config.source.clone().unwrap_or_default();
    let settings = match resolve(&source, &args.report, &loaded)? {
        ResolvedSource::Graph(settings) => settings,
        ResolvedSource::File(_) => {
            return Err(Error::Usage("fetch downloads from Microsoft Graph, but the config's [source] has type = \"file\"".into()));
        }
    };
    let (mut download, name) = open_graph(&settings)?;
    let bytes = write_report(&mut download, &name, &args.output)?;
    tracing::info!(bytes, output = %args.output.display(), "fetched the groups activity report");
    Ok(Outcome::Clean)
}

/// The report to scan and its name for messages: `--input` if given, else
/// the config's `[source]`, else Graph when the Azure environment
/// variables name an app. `save_dir` keeps a copy of the raw CSV.
pub fn open_report(
    input: Option<&Path>,
    report: &ReportArgs,
    save_dir: Option<&Path>,
    loaded: &LoadedConfig,
) -> Result<(Box<dyn Read + Send>, String), Error> {
    let resolved = match (input, &loaded.config.source) {
        (Some(path), _) => ResolvedSource::File(path.to_owned()),
        (None, Some(source)) => resolve(source, report, loaded)?,
        (None, None) if azure_app_in_environment() => {
            resolve(&SourceConfig::default(), report, loaded)?
        }
        (None, None) => {
            return Err(Error::Usage(
                "no report to scan: give --input FILE (or - for standard input), or set up [source] in the config \
                 to fetch it from Microsoft Graph (see docs/graph.md)"
                    .into(),
            ));
        }
    };
    let (reader, name, period): (Box<dyn Read + Send>, String, &str) = match resolved {
        ResolvedSource::File(path) => {
            if report.period.is_some() || report.date.is_some() {
                return Err(Error::Usage("--period and --date choose the report to fetch from Microsoft Graph; the input here is a file".into()));
            }
            let (reader, name) = open_input(&path)?;
            (reader, name, "unknown")
        }
        ResolvedSource::Graph(settings) => {
            let (download, name) = open_graph(&settings)?;
            (Box::new(download), name, settings.request.period_label())
        }
    };
    match save_dir {
        Some(dir) => {
            let copy = SavedCopy::new(reader, dir, period).map_err(|error| Error::File {
                path: dir.to_owned(),
                error,
            })?;
            Ok((Box::new(copy), name))
        }
        None => Ok((reader, name)),
    }
}

/// `AZURE_TENANT_ID` and `AZURE_CLIENT_ID` name an app, as the Azure SDKs
/// read them: enough to fetch without a `[source]` section.
fn azure_app_in_environment() -> bool {
    ProcessEnvironment.var(ENV_TENANT_ID).is_some()
        && ProcessEnvironment.var(ENV_CLIENT_ID).is_some()
}

fn resolve(
    source: &SourceConfig,
    report: &ReportArgs,
    loaded: &LoadedConfig,
) -> Result<ResolvedSource, Error> {
    let request = match (report.period, report.date) {
        (_, Some(date)) => Some(ReportRequest::Date(date)),
        (Some(period), None) => Some(ReportRequest::Period(period)),
        (None, None) => None,
    };
    Ok(source.resolve(request, &ProcessEnvironment, &|path| loaded.resolve(path))?)
}

/// Opens the download; a progress bar only when standard error is a terminal.
fn open_graph(settings: &GraphSettings) -> Result<(Download, String), Error> {
    let client = GraphClient::new(settings)?;
    let download = client.open_report(io::stderr().is_terminal())?;
    Ok((
        download,
        format!("Microsoft Graph report ({})", settings.request),
    ))
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
                error: error.to_string(),
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
