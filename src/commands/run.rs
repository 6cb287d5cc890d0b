//! `groupwarden run`: the daemon (see [`crate::daemon`]).

use std::path::{Path, PathBuf};

use crate::cli::RunArgs;
use crate::config::DEFAULT_CONFIG_FILE;

use super::{Error, Outcome};

/// Runs `groupwarden run` until the daemon stops.
pub(crate) fn run(args: RunArgs) -> Result<Outcome, Error> {
    let config = match args.config {
        Some(path) => path,
        None if Path::new(DEFAULT_CONFIG_FILE).is_file() => PathBuf::from(DEFAULT_CONFIG_FILE),
        None => {
            return Err(Error::Usage(format!(
                "groupwarden run needs a configuration file with a [schedule]: give --config FILE or create ./{DEFAULT_CONFIG_FILE}"
            )));
        }
    };
    crate::daemon::service::run(&config).map_err(|e| Error::Service(Box::new(e)))?;
    Ok(Outcome::Clean)
}
