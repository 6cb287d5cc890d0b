//! The directory cache: the tenant's Microsoft 365 groups as the last
//! fetch saw them (`[directory]`), and when that was.
//!
//! A scan reuses the cache while it is younger than `[directory]
//! max_age`; `groupwarden fetch --directory` (or an older cache) fetches
//! anew and replaces it whole, in one transaction, so a reader sees one
//! fetch or the other, never a mix.

use std::time::Duration;

use jiff::Timestamp;
use rusqlite::params;

use super::store::{StateError, Store};
use crate::report::directory::{Directory, GroupFacts};

/// The cached directory; `None` when none was ever saved.
pub fn load(store: &Store) -> Result<Option<Directory>, StateError> {
    let conn = store.connection();
    let fetched_at: Option<String> = match conn.query_row(
        "SELECT fetched_at FROM directory_fetches WHERE id = 1",
        [],
        |row| row.get(0),
    ) {
        Ok(at) => Some(at),
        Err(rusqlite::Error::QueryReturnedNoRows) => None,
        Err(error) => return Err(store.fail(error)),
    };
    let Some(fetched_at) = fetched_at else {
        return Ok(None);
    };
    let mut statement = conn
        .prepare("SELECT id, facts FROM directory_groups")
        .map_err(|e| store.fail(e))?;
    let rows = statement
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(|e| store.fail(e))?;
    let mut groups = Vec::new();
    for row in rows {
        let (id, json) = row.map_err(|e| store.fail(e))?;
        let facts: GroupFacts = serde_json::from_str(&json).map_err(|e| StateError::Data {
            path: store.path().to_owned(),
            message: format!(
                "the cached directory entry of group {id} is not readable ({e}); refresh it with `groupwarden fetch --directory`"
            ),
        })?;
        groups.push((id, facts));
    }
    Ok(Some(Directory::new(groups, fetched_at)))
}

/// Replaces the cache with `directory`, in one transaction.
pub fn save(store: &Store, directory: &Directory) -> Result<(), StateError> {
    store.begin_write()?;
    let result = write_all(store, directory);
    match result {
        Ok(()) => store.commit(),
        Err(error) => {
            store.rollback();
            Err(error)
        }
    }
}

fn write_all(store: &Store, directory: &Directory) -> Result<(), StateError> {
    let conn = store.connection();
    let fail = |e| store.fail(e);
    conn.execute("DELETE FROM directory_groups", [])
        .map_err(fail)?;
    let mut insert = conn
        .prepare("INSERT INTO directory_groups (id, facts, fetched_at) VALUES (?1, ?2, ?3)")
        .map_err(fail)?;
    for (id, facts) in directory.iter() {
        let json = serde_json::to_string(facts).map_err(|e| StateError::Data {
            path: store.path().to_owned(),
            message: format!("cannot store the directory entry of group {id}: {e}"),
        })?;
        insert
            .execute(params![id, json, directory.fetched_at])
            .map_err(fail)?;
    }
    conn.execute(
        "INSERT INTO directory_fetches (id, fetched_at, groups) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET fetched_at = excluded.fetched_at, groups = excluded.groups",
        params![directory.fetched_at, directory.len() as i64],
    )
    .map_err(fail)?;
    Ok(())
}

/// Whether a directory fetched at `fetched_at` (RFC 3339) is younger
/// than `max_age` at `now`. A time that cannot be read is old.
pub fn is_fresh(fetched_at: &str, max_age: Duration, now: Timestamp) -> bool {
    let Ok(at) = fetched_at.parse::<Timestamp>() else {
        return false;
    };
    let age = now.duration_since(at);
    // A fetch "in the future" (a clock set back) is not trusted either.
    !age.is_negative() && age.unsigned_abs() < max_age
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::store::StoreOptions;

    #[test]
    fn a_saved_directory_is_loaded_whole_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db"), &StoreOptions::default()).unwrap();
        assert!(load(&store).unwrap().is_none());
        let facts = GroupFacts {
            owners: vec!["a@x".into(), "b@x".into()],
            owner_count: 2,
            ..Default::default()
        };
        let first = Directory::new(
            [
                ("g1".to_owned(), facts.clone()),
                ("g2".to_owned(), GroupFacts::default()),
            ],
            "2026-11-25T06:00:00Z".into(),
        );
        save(&store, &first).unwrap();
        let loaded = load(&store).unwrap().unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(**loaded.get("g1").unwrap(), facts);
        assert_eq!(loaded.get("G1").unwrap().owners, ["a@x", "b@x"]);
        save(&store, &Directory::new([], "2026-11-26T06:00:00Z".into())).unwrap();
        let loaded = load(&store).unwrap().unwrap();
        assert!(loaded.is_empty());
        assert_eq!(loaded.fetched_at, "2026-11-26T06:00:00Z");
    }

    #[test]
    fn freshness_is_measured_from_the_fetch() {
        let now: Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
        let day = Duration::from_secs(86_400);
        assert!(is_fresh("2026-11-25T06:00:00Z", day, now));
        assert!(!is_fresh("2026-11-24T11:00:00Z", day, now));
        assert!(!is_fresh("2026-11-26T06:00:00Z", day, now));
        assert!(!is_fresh("garbage", day, now));
    }
}
