//! The report a scan reads: `--input` (a file, or `-` for standard
//! input), else the config's `[source]`, else Microsoft Graph when the
//! Azure environment variables name an app.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::config::LoadedConfig;
use crate::report::reader::ReportError;
use crate::report::shape::{self, InputFormat};
use crate::scan::ScanError;
use crate::source::config::{
    ENV_CLIENT_ID, ENV_TENANT_ID, Environment, GraphSettings, ProcessEnvironment, ReportRequest,
    ResolvedSource, SourceConfig,
};
use crate::source::download::Download;
use crate::source::graph::GraphClient;
use crate::source::save::SavedCopy;

use super::Error;

/// Which report to read, as plain data.
#[derive(Clone, Debug, Default)]
pub struct ReportInput {
    /// A file, or `-` for standard input; `None` fetches per `[source]`.
    pub path: Option<PathBuf>,
    /// A period or day other than the source's own (Graph only).
    pub request: Option<ReportRequest>,
    /// Keep a copy of the raw report in this folder.
    pub save_dir: Option<PathBuf>,
    /// CSV or JSON; `Auto` tells by the content.
    pub format: InputFormat,
}

/// The report to scan and its name for messages: `--input` if given, else
/// the config's `[source]`, else Graph when the Azure environment
/// variables name an app. `save_dir` keeps a copy of the raw CSV.
pub(crate) fn open_report(
    choice: &ReportInput,
    loaded: &LoadedConfig,
) -> Result<(Box<dyn Read + Send>, String), Error> {
    let request = choice.request;
    let resolved = match (&choice.path, &loaded.config.source) {
        (Some(path), _) => ResolvedSource::File(path.to_owned()),
        (None, Some(source)) => resolve_source(source, request, loaded)?,
        (None, None) if azure_app_in_environment() => {
            resolve_source(&SourceConfig::default(), request, loaded)?
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
            if request.is_some() {
                return Err(Error::Usage("--period and --date choose the report to fetch from Microsoft Graph; the input here is a file".into()));
            }
            let (reader, name) = open_file(&path)?;
            (reader, name, "unknown")
        }
        ResolvedSource::Graph(settings) => {
            let (download, name) = open_graph(&settings)?;
            (Box::new(download), name, settings.request.period_label())
        }
    };
    let reader: Box<dyn Read + Send> = match &choice.save_dir {
        Some(dir) => {
            let copy = SavedCopy::new(reader, dir, period).map_err(|error| Error::File {
                path: dir.to_owned(),
                error,
            })?;
            Box::new(copy)
        }
        None => reader,
    };
    Ok((shaped(reader, &name, choice.format)?, name))
}

/// `AZURE_TENANT_ID` and `AZURE_CLIENT_ID` name an app, as the Azure SDKs
/// read them: enough to fetch without a `[source]` section.
fn azure_app_in_environment() -> bool {
    ProcessEnvironment.var(ENV_TENANT_ID).is_some()
        && ProcessEnvironment.var(ENV_CLIENT_ID).is_some()
}

/// `source` checked and its credential loaded, for `request` (else the
/// source's own period).
pub(crate) fn resolve_source(
    source: &SourceConfig,
    request: Option<ReportRequest>,
    loaded: &LoadedConfig,
) -> Result<ResolvedSource, Error> {
    Ok(source.resolve(request, &ProcessEnvironment, &|path| loaded.resolve(path))?)
}

/// Opens the download; a progress bar only when standard error is a terminal.
pub(crate) fn open_graph(settings: &GraphSettings) -> Result<(Download, String), Error> {
    let client = GraphClient::new(settings)?;
    let download = client.open_report(crate::progress::enabled())?;
    Ok((
        download,
        format!("Microsoft Graph report ({})", settings.request),
    ))
}

/// A report from a path, or standard input for `-`, in any shape
/// [`shape::open`] reads.
pub fn open_input(
    path: &Path,
    format: InputFormat,
) -> Result<(Box<dyn Read + Send>, String), Error> {
    let (reader, name) = open_file(path)?;
    Ok((shaped(reader, &name, format)?, name))
}

/// The report as UTF-8, comma-separated CSV, whatever its shape; an
/// unusual shape is logged.
fn shaped(
    reader: Box<dyn Read + Send>,
    name: &str,
    format: InputFormat,
) -> Result<Box<dyn Read + Send>, Error> {
    let (reader, shape) = shape::open(reader, name, format)
        .map_err(|e: ReportError| Error::Scan(ScanError::from(e)))?;
    if shape.is_unusual() {
        tracing::info!("{name}: read as {shape}");
    }
    Ok(reader)
}

/// A file, or standard input for `-`, as it is.
fn open_file(path: &Path) -> Result<(Box<dyn Read + Send>, String), Error> {
    if path == Path::new("-") {
        return Ok((Box::new(io::stdin()), "<stdin>".to_owned()));
    }
    let file = File::open(path).map_err(|error| Error::File {
        path: path.to_owned(),
        error,
    })?;
    Ok((Box::new(file), path.display().to_string()))
}
