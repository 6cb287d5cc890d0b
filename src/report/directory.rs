//! What the tenant's directory says about each group, joined to the
//! report's rows by Group Id.
//!
//! The report alone names one owner and no creation date; the directory
//! (Microsoft Graph's `/groups`, fetched by `source::directory` and cached
//! in the state database) knows every owner, when the group was created,
//! whether it is a Team, its visibility, mail, sensitivity label and
//! expiry. A [`Directory`] is attached to a report's [`super::header::Layout`]
//! before the first row is read; [`super::row::RowData::parse`] then looks
//! each row's group up once, and rules read the facts as row properties.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// One group as the directory describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupFacts {
    /// Every owner's address: mail, else user principal name; owners
    /// with neither (a service principal) are left out.
    pub owners: Vec<String>,
    /// Owners in all, with those that have no address.
    pub owner_count: i64,
    /// The day the group was created, as `YYYY-MM-DD`.
    pub created_date: Option<String>,
    /// The group is team-enabled (`resourceProvisioningOptions` holds
    /// `Team`).
    pub is_team: bool,
    /// `Public`, `Private` or `HiddenMembership`.
    pub visibility: Option<String>,
    /// The group's own address.
    pub group_mail: Option<String>,
    /// The first assigned sensitivity label's name.
    pub sensitivity_label: Option<String>,
    /// The day the group expires under the expiration policy, as
    /// `YYYY-MM-DD`.
    pub expiration_date: Option<String>,
}

impl GroupFacts {
    /// The creation day as days since 1970-01-01.
    pub fn created_day(&self) -> Option<i32> {
        self.created_date
            .as_deref()
            .and_then(|d| super::date::parse_day(d.as_bytes()))
    }
}

/// The tenant's groups by id, and when they were fetched.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    /// By group id in lower case (Graph and the report both write ids in
    /// lower case; the key is folded anyway, so a join never misses on case).
    groups: HashMap<String, Arc<GroupFacts>>,
    /// When Graph was asked, as UTC RFC 3339 text.
    pub fetched_at: String,
}

impl Directory {
    /// A directory of `groups` (id, facts), fetched at `fetched_at`.
    pub fn new(
        groups: impl IntoIterator<Item = (String, GroupFacts)>,
        fetched_at: String,
    ) -> Directory {
        Directory {
            groups: groups
                .into_iter()
                .map(|(id, facts)| (id.to_ascii_lowercase(), Arc::new(facts)))
                .collect(),
            fetched_at,
        }
    }

    /// The facts of the group with `id`.
    pub fn get(&self, id: &str) -> Option<&Arc<GroupFacts>> {
        match self.groups.get(id) {
            Some(facts) => Some(facts),
            None if id.bytes().any(|b| b.is_ascii_uppercase()) => {
                self.groups.get(&id.to_ascii_lowercase())
            }
            None => None,
        }
    }

    /// Groups in the directory.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// The directory has no groups.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Every group, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &GroupFacts)> {
        self.groups
            .iter()
            .map(|(id, facts)| (id.as_str(), &**facts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_joined_whatever_their_case() {
        let directory = Directory::new(
            [(
                "AbC".to_owned(),
                GroupFacts {
                    owner_count: 2,
                    ..Default::default()
                },
            )],
            "2026-11-25T06:00:00Z".into(),
        );
        assert_eq!(directory.get("abc").unwrap().owner_count, 2);
        assert_eq!(directory.get("ABC").unwrap().owner_count, 2);
        assert!(directory.get("abd").is_none());
    }

    #[test]
    fn the_creation_day_is_read_from_its_date() {
        let facts = GroupFacts {
            created_date: Some("1970-01-11".into()),
            ..Default::default()
        };
        assert_eq!(facts.created_day(), Some(10));
    }
}
