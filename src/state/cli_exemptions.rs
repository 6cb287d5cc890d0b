//! Exemptions added on the command line (`groupwarden exemptions add`),
//! kept in the state database's `exemptions` table beside the config
//! file's, and applied by the next scan exactly as those are.
//!
//! One exemption per rule and group: adding one for a rule and group that
//! already have one updates it (reason, expiry, approver) rather than
//! adding a second.

use globset::GlobBuilder;
use jiff::civil::Date;
use rusqlite::{OptionalExtension, params};

use super::exemptions::{Exemption, GroupSelector};
use super::store::{StateError, Store};

/// The schema version that added the `exemptions` table.
const TABLE_VERSION: i32 = 5;

/// The group an exemption from the command line covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExemptedGroup {
    /// By its object id (what a report with ids keys findings by).
    Id(String),
    /// By its exact display name (a report without ids, or concealed).
    Name(String),
}

/// An exemption to add, checked by the command.
#[derive(Clone, Debug)]
pub struct NewExemption {
    /// A rule id, or `*`.
    pub rule: String,
    /// The group.
    pub group: ExemptedGroup,
    /// Why the findings are accepted (not empty).
    pub reason: String,
    /// The last day it applies.
    pub expires: Date,
    /// Who approved it.
    pub approved_by: Option<String>,
    /// Who ran the command (the login name).
    pub added_by: String,
    /// When (UTC, RFC 3339).
    pub now: String,
}

/// What `add` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Saved {
    /// A new exemption, with its id.
    Added(i64),
    /// The rule and group had one: it was updated.
    Updated(i64),
}

/// A group the database has findings of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownGroup {
    /// Its id, when the report gave one.
    pub id: Option<String>,
    /// Its display name, when known.
    pub name: Option<String>,
}

fn id_and_name(group: &ExemptedGroup) -> (Option<&str>, Option<&str>) {
    match group {
        ExemptedGroup::Id(id) => (Some(id.as_str()), None),
        ExemptedGroup::Name(name) => (None, Some(name.as_str())),
    }
}

/// The rows of one rule and group (its key in the unique index).
const SAME_TARGET: &str = "rule = ?1 AND coalesce(lower(group_id), '') = coalesce(lower(?2), '') \
     AND coalesce(lower(group_name), '') = coalesce(lower(?3), '')";

impl Store {
    /// The exemptions added on the command line, oldest first (none in a
    /// database of a version before they existed).
    pub fn cli_exemptions(&self) -> Result<Vec<Exemption>, StateError> {
        if self.schema_version()? < TABLE_VERSION {
            return Ok(Vec::new());
        }
        let fail = |e| self.fail(e);
        let mut statement = self
            .connection()
            .prepare(
                "SELECT id, rule, group_id, group_name, reason, expires, approved_by, added_at, added_by, updated_at \
                 FROM exemptions ORDER BY id",
            )
            .map_err(fail)?;
        let mut rows = statement.query([]).map_err(fail)?;
        let mut all = Vec::new();
        while let Some(row) = rows.next().map_err(fail)? {
            all.push(self.stored(row).map_err(fail)?);
        }
        Ok(all)
    }

    fn stored(&self, row: &rusqlite::Row<'_>) -> rusqlite::Result<Exemption> {
        let id: i64 = row.get(0)?;
        let group_id: Option<String> = row.get(2)?;
        let group_name: Option<String> = row.get(3)?;
        let expires: String = row.get(5)?;
        let added_at: String = row.get(7)?;
        let added_by: String = row.get(8)?;
        let updated_at: Option<String> = row.get(9)?;
        let bad = |index: usize, message: String| {
            rusqlite::Error::FromSqlConversionFailure(
                index,
                rusqlite::types::Type::Text,
                message.into(),
            )
        };
        let expires: Date = expires
            .parse()
            .map_err(|e| bad(5, format!("exemption {id}: expires: {e}")))?;
        let group = match (group_id, group_name) {
            (Some(id), _) => GroupSelector::Id(id),
            (None, Some(name)) => name_selector(&name)
                .map_err(|e| bad(3, format!("exemption {id}: group_name: {e}")))?,
            (None, None) => return Err(bad(2, format!("exemption {id} names no group"))),
        };
        let mut source = format!("added by CLI on {} by {added_by}", day_of(&added_at));
        if let Some(updated) = updated_at {
            source.push_str(&format!(", updated on {}", day_of(&updated)));
        }
        Ok(Exemption {
            origin: format!("state exemption {id}"),
            source,
            rule: row.get(1)?,
            group,
            reason: row.get(4)?,
            expires,
            approved_by: row.get(6)?,
        })
    }

    /// Adds `new`, or updates the exemption of the same rule and group.
    pub fn add_exemption(&self, new: &NewExemption) -> Result<Saved, StateError> {
        self.begin_write()?;
        let result = self.upsert(new);
        match result {
            Ok(saved) => self.commit().map(|()| saved),
            Err(error) => {
                self.rollback();
                Err(error)
            }
        }
    }

    fn upsert(&self, new: &NewExemption) -> Result<Saved, StateError> {
        let fail = |e| self.fail(e);
        let conn = self.connection();
        let (id, name) = id_and_name(&new.group);
        let existing: Option<i64> = conn
            .query_row(
                &format!("SELECT id FROM exemptions WHERE {SAME_TARGET}"),
                params![new.rule, id, name],
                |row| row.get(0),
            )
            .optional()
            .map_err(fail)?;
        let expires = new.expires.to_string();
        match existing {
            Some(existing) => {
                conn.execute(
                    "UPDATE exemptions SET reason = ?2, expires = ?3, approved_by = ?4, updated_at = ?5 WHERE id = ?1",
                    params![existing, new.reason, expires, new.approved_by, new.now],
                )
                .map_err(fail)?;
                Ok(Saved::Updated(existing))
            }
            None => {
                conn.execute(
                    "INSERT INTO exemptions (rule, group_id, group_name, reason, expires, approved_by, added_at, added_by) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![new.rule, id, name, new.reason, expires, new.approved_by, new.now, new.added_by],
                )
                .map_err(fail)?;
                Ok(Saved::Added(conn.last_insert_rowid()))
            }
        }
    }

    /// Removes the exemption of `rule` on `group`; its id, or `None` when
    /// there was none.
    pub fn remove_exemption(
        &self,
        rule: &str,
        group: &ExemptedGroup,
    ) -> Result<Option<i64>, StateError> {
        let (id, name) = id_and_name(group);
        self.begin_write()?;
        let result = self
            .connection()
            .query_row(
                &format!("DELETE FROM exemptions WHERE {SAME_TARGET} RETURNING id"),
                params![rule, id, name],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.fail(e));
        match result {
            Ok(removed) => self.commit().map(|()| removed),
            Err(error) => {
                self.rollback();
                Err(error)
            }
        }
    }

    /// The groups the database has findings of whose id, or display name
    /// (any case), is `group`.
    pub fn groups_named(&self, group: &str) -> Result<Vec<KnownGroup>, StateError> {
        self.groups_where(
            "WHERE group_id = ?1 COLLATE NOCASE OR group_name = ?1 COLLATE NOCASE",
            Some(group),
        )
    }

    /// Every group the database has findings of (for a did-you-mean).
    pub fn known_groups(&self) -> Result<Vec<KnownGroup>, StateError> {
        self.groups_where("", None)
    }

    fn groups_where(
        &self,
        condition: &str,
        group: Option<&str>,
    ) -> Result<Vec<KnownGroup>, StateError> {
        let fail = |e| self.fail(e);
        let sql = format!(
            "SELECT DISTINCT lower(group_id), group_name FROM findings {condition} ORDER BY 2, 1"
        );
        let mut statement = self.connection().prepare(&sql).map_err(fail)?;
        let params: Vec<&str> = group.into_iter().collect();
        let rows = statement
            .query_map(rusqlite::params_from_iter(params), |row| {
                Ok(KnownGroup {
                    id: row.get(0)?,
                    name: row.get(1)?,
                })
            })
            .map_err(fail)?;
        rows.collect::<rusqlite::Result<_>>().map_err(fail)
    }
}

/// The selector of an exact name: a glob of the name with its special
/// characters escaped, case-insensitive as config globs are.
pub(crate) fn name_selector(name: &str) -> Result<GroupSelector, String> {
    let pattern = globset::escape(name);
    let glob = GlobBuilder::new(&pattern)
        .case_insensitive(true)
        .literal_separator(false)
        .build()
        .map_err(|e| e.kind().to_string())?;
    Ok(GroupSelector::Name {
        pattern: name.to_owned(),
        matcher: glob.compile_matcher(),
    })
}

/// `YYYY-MM-DD` of an RFC 3339 time.
fn day_of(time: &str) -> &str {
    time.get(..10).unwrap_or(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exact_name_matches_itself_and_nothing_else() {
        let GroupSelector::Name { matcher, .. } = name_selector("Project [x] *").unwrap() else {
            panic!("a name selector");
        };
        assert!(matcher.is_match("project [X] *"));
        assert!(!matcher.is_match("Project x anything"));
    }
}
