//! Where a command writes what it found: standard output, or a file
//! written under a temporary name and renamed into place when complete.

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use super::Format;

/// A file the output could not be written to.
#[derive(Debug, thiserror::Error)]
#[error("{}: {error}", path.display())]
pub struct OutputFileError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    #[source]
    pub error: io::Error,
}

/// Where a command writes what it found.
pub struct Output {
    /// Where findings go: standard output, or the file under its temporary name.
    pub out: Box<dyn Write>,
    /// The format to write in.
    pub format: Format,
    /// For a file: what puts it in place once written.
    pub file: Option<OutputFile>,
}

/// The output stream and its format: the flag, else by the file's
/// extension, else `table` on a terminal and `jsonl` elsewhere.
pub fn open_output(path: Option<&Path>, format: Option<Format>) -> Result<Output, OutputFileError> {
    match path {
        Some(path) => {
            let (file, pending) = OutputFile::create(path).map_err(|error| OutputFileError {
                path: path.to_owned(),
                error,
            })?;
            let by_extension = match path.extension().and_then(|e| e.to_str()) {
                Some("json") => Format::Json,
                Some("csv") => Format::Csv,
                Some("txt") => Format::Table,
                Some("html" | "htm") => Format::Html,
                _ => Format::Jsonl,
            };
            Ok(Output {
                out: Box::new(file),
                format: format.unwrap_or(by_extension),
                file: pending,
            })
        }
        None => {
            let stdout = io::stdout();
            let default = if stdout.is_terminal() {
                Format::Table
            } else {
                Format::Jsonl
            };
            Ok(Output {
                out: Box::new(stdout),
                format: format.unwrap_or(default),
                file: None,
            })
        }
    }
}

/// `tempfile` appends ` at path "<its temporary file>"` to its errors;
/// the user named the output, which the caller says instead.
fn without_temp_name(error: io::Error) -> io::Error {
    let text = error.to_string();
    match text.rfind(" at path ") {
        Some(end) => io::Error::new(error.kind(), &text[..end]),
        None => error,
    }
}

/// An output file being written under a temporary name beside it, renamed
/// over the real name by [`OutputFile::commit`] once the command has
/// written all of it. A command that fails part way (a bad header, a
/// download cut short) leaves the previous file as it was, not an empty
/// or half-written one, and a reader never sees a partial file.
#[derive(Debug)]
pub struct OutputFile {
    temp: tempfile::TempPath,
    path: PathBuf,
}

impl OutputFile {
    /// The file to write to, and the pending rename (`None` for what is not
    /// a regular file, like `/dev/stdout` or a pipe: written directly).
    fn create(path: &Path) -> io::Result<(File, Option<OutputFile>)> {
        let existing = std::fs::metadata(path).ok();
        if existing.as_ref().is_some_and(|m| !m.is_file()) {
            return Ok((File::create(path)?, None));
        }
        // A symbolic link stays one: the file it points to is replaced,
        // as writing through the link would replace its content.
        let path = match existing {
            Some(_) => std::fs::canonicalize(path)?,
            None => path.to_owned(),
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let mut builder = tempfile::Builder::new();
        builder.prefix(".groupwarden-").suffix(".partial");
        // As `File::create` would: the umask's permissions for a new file.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let (file, temp) = builder
            .tempfile_in(dir)
            .map_err(without_temp_name)?
            .into_parts();
        // A file replaced keeps its permissions, as one truncated would.
        if let Some(existing) = existing {
            file.set_permissions(existing.permissions())?;
        }
        Ok((file, Some(OutputFile { temp, path })))
    }

    /// Puts the written file in place of `path`.
    pub fn commit(self) -> Result<(), OutputFileError> {
        self.temp.persist(&self.path).map_err(|e| OutputFileError {
            path: self.path,
            error: e.error,
        })
    }
}
