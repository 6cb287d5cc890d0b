//! The directory a scan joins to its rows (`[directory]`): from the state
//! database's cache while it is younger than `max_age`, else fetched from
//! Microsoft Graph (and cached, when the scan keeps state).

use std::path::Path;
use std::sync::Arc;

use crate::config::LoadedConfig;
use crate::report::directory::Directory;
use crate::source::config::ResolvedSource;
use crate::source::directory::{DirectoryClient, DirectoryError};
use crate::state::Store;
use crate::state::recording::{state_path, store_options};

use super::Error;
use super::input::resolve_source;

/// Where a scan may find and keep the directory.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Cache<'a> {
    /// Read the cache in this database and refresh it when old (`None`:
    /// the configured database).
    ReadWrite(Option<&'a Path>),
    /// Read the cache if the database exists, never write it (`report`,
    /// `notify --dry-run`).
    ReadOnly(Option<&'a Path>),
    /// A stateless scan: fetch, keep nothing.
    None,
}

/// The directory for a scan, or `None` when `[directory]` is off.
pub(crate) fn for_scan(
    loaded: &LoadedConfig,
    cache: Cache<'_>,
) -> Result<Option<Arc<Directory>>, Error> {
    let config = loaded.config.directory;
    if !config.enabled {
        return Ok(None);
    }
    let max_age = config.max_age.as_duration();
    let now = jiff::Timestamp::now();
    let fresh = |directory: &Directory| {
        crate::state::directory::is_fresh(&directory.fetched_at, max_age, now)
    };
    let directory = match cache {
        Cache::ReadWrite(flag) => {
            let store = Store::open(&state_path(flag, loaded), &store_options(loaded, true))?;
            match crate::state::directory::load(&store)? {
                Some(cached) if fresh(&cached) => used_cache(cached),
                _ => {
                    let directory = fetch(loaded)?;
                    crate::state::directory::save(&store, &directory)?;
                    directory
                }
            }
        }
        Cache::ReadOnly(flag) => {
            let cached = match Store::open(&state_path(flag, loaded), &store_options(loaded, false))
            {
                Ok(store) => crate::state::directory::load(&store)?,
                // No database yet: nothing cached.
                Err(crate::state::StateError::Missing { .. }) => None,
                Err(error) => return Err(error.into()),
            };
            match cached {
                Some(cached) if fresh(&cached) => used_cache(cached),
                _ => fetch(loaded)?,
            }
        }
        Cache::None => fetch(loaded)?,
    };
    Ok(Some(Arc::new(directory)))
}

/// `groupwarden fetch --directory`: fetches now and replaces the cache in
/// the database at `flag` (else the configured one).
pub(crate) fn refresh(loaded: &LoadedConfig, flag: Option<&Path>) -> Result<Directory, Error> {
    let path = state_path(flag, loaded);
    crate::state::recording::check_writable(flag, loaded)?;
    let directory = fetch(loaded)?;
    let store = Store::open(&path, &store_options(loaded, true))?;
    crate::state::directory::save(&store, &directory)?;
    Ok(directory)
}

fn used_cache(cached: Directory) -> Directory {
    tracing::info!(
        groups = cached.len(),
        fetched_at = %cached.fetched_at,
        "using the cached directory ([directory] max_age)"
    );
    cached
}

/// The directory from Graph, with `[source]`'s credentials (or the Azure
/// environment variables when there is no `[source]`).
fn fetch(loaded: &LoadedConfig) -> Result<Directory, Error> {
    let source = loaded.config.source.clone().unwrap_or_default();
    let settings = match resolve_source(&source, None, loaded)? {
        ResolvedSource::Graph(settings) => settings,
        ResolvedSource::File(_) => {
            return Err(DirectoryError::NoCredentials(
                "the directory comes from Microsoft Graph, but [source] has type = \"file\": \
                 set [source] type = \"graph\" with the app's credentials (a scan can still read \
                 its report from a file with --input)"
                    .into(),
            )
            .into());
        }
    };
    Ok(DirectoryClient::new(&settings, loaded.config.directory)?.fetch()?)
}

/// A concealed report cannot be joined: its ids are all zeros and its
/// names hashed. Said once per scan, with the setting that fixes it.
pub(crate) fn warn_if_concealed(concealed_rows: u64, source_name: &str) {
    if concealed_rows == 0 {
        return;
    }
    tracing::warn!(
        "{source_name}: {concealed_rows} row(s) have concealed group ids and names, so the directory ([directory]) \
         cannot be joined to them: their owners, owner_count, created_date, is_team and the other directory fields \
         are (). To show real names and ids, turn off \"Display concealed user, group, and site names in all \
         reports\" in the Microsoft 365 admin center (Settings > Org settings > Services > Reports)"
    );
}
