//! What a scan knows of the stored findings before the first row, in
//! memory: for each finding its key's hash, a hash of its content, its row
//! id and a few status bits ([`Known`], about 27 bytes a finding with its
//! index), loaded with one sequential read of `finding_state`. A finding
//! seen again as it was then costs a look at the next entry (or a step
//! into the directory by key hash) and no database access at all; only
//! what changed is written.
//!
//! Also here: evidence in its stored form ([`Shapes`]: the values as a
//! JSON array, the names once per shape in `evidence_shapes`) and the
//! content hash a scan compares ([`content_hash`]).

use std::hash::Hasher;
use std::sync::Arc;

use rusqlite::{Connection, params};

use super::changes::Status;
use super::lifecycle::shown_status;
use super::schema::key_hash;
use crate::engine::finding::{ContentHasher, EvidenceMap, Finding, content_hasher, hash_text};

/// A stored finding as a scan needs it (22 bytes, packed: a million
/// findings are 22 MB, not 24).
#[derive(Clone, Copy, Debug)]
#[repr(C, packed(2))]
struct Entry {
    key_hash: i64,
    content: u64,
    /// Its row id, less [`Known::base`].
    offset: u32,
    flags: Flags,
}

/// Status bits of an [`Entry`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Flags(u16);

const STORED_SHIFT: u16 = 0;
const SHOWN_SHIFT: u16 = 3;
const NOW_SHIFT: u16 = 6;
const ANNOUNCED: u16 = 1 << 9;
const QUIET: u16 = 1 << 10;
const LAST_SEEN_WRITTEN: u16 = 1 << 11;
const SEEN: u16 = 1 << 12;
/// Another stored finding has the same key hash.
const SHARED: u16 = 1 << 13;

fn status_code(status: Status) -> u16 {
    match status {
        Status::New => 0,
        Status::Open => 1,
        Status::Reopened => 2,
        Status::Resolved => 3,
        Status::Exempted => 4,
    }
}

fn code_status(code: u16) -> Status {
    match code & 7 {
        0 => Status::New,
        1 => Status::Open,
        2 => Status::Reopened,
        3 => Status::Resolved,
        _ => Status::Exempted,
    }
}

impl Flags {
    /// The status as stored (`new` and `reopened` may read as `open`).
    pub(super) fn stored(self) -> Status {
        code_status(self.0 >> STORED_SHIFT)
    }

    /// The status as the last scan left it.
    pub(super) fn shown(self) -> Status {
        code_status(self.0 >> SHOWN_SHIFT)
    }

    /// The status this scan gave it (once [`Flags::seen`]).
    pub(super) fn now(self) -> Status {
        code_status(self.0 >> NOW_SHIFT)
    }

    /// Announced to some channel at least once.
    pub(super) fn announced(self) -> bool {
        self.0 & ANNOUNCED != 0
    }

    /// Not announced since the reminder cutoff.
    pub(super) fn quiet(self) -> bool {
        self.0 & QUIET != 0
    }

    /// Its last scan is written out (the latest scan did not see it).
    pub(super) fn last_seen_written(self) -> bool {
        self.0 & LAST_SEEN_WRITTEN != 0
    }

    /// Seen by this scan.
    pub(super) fn seen(self) -> bool {
        self.0 & SEEN != 0
    }
}

/// One stored finding this scan found again.
#[derive(Clone, Copy, Debug)]
pub(super) struct Hit {
    /// Where it is in [`Known`].
    index: usize,
    /// Its row id.
    pub(super) id: i64,
    /// Its content hash as stored.
    pub(super) content: u64,
    pub(super) flags: Flags,
}

/// The stored findings, in row-id order (the order they first appeared,
/// which is report order), with an index by key hash.
#[derive(Debug, Default)]
pub(super) struct Known {
    entries: Vec<Entry>,
    /// Positions in `entries`, sorted by key hash.
    by_hash: Vec<u32>,
    /// Where the positions whose hash starts with each `bits`-bit prefix
    /// begin in `by_hash` (one more at the end): key hashes are uniform,
    /// so a lookup is one step into this and a look at a couple of
    /// entries, not a binary search through memory the caches do not
    /// hold.
    starts: Vec<u32>,
    bits: u32,
    /// The position after the last finding found: a report in the same
    /// order as the last one finds each finding there, reading memory in
    /// order.
    next: usize,
    base: i64,
    /// The largest row id before this scan: rows above it are this scan's.
    pub(super) max_id: i64,
}

/// How to read the stored statuses.
pub(super) struct LoadContext<'a> {
    /// The latest completed scan: what an empty `last_seen_scan` means.
    pub(super) latest: Option<i64>,
    /// Open findings quiet since this time are due for a reminder.
    pub(super) reminder_cutoff: Option<&'a str>,
}

impl Known {
    /// Reads every stored finding's key hash, content hash and status.
    pub(super) fn load(conn: &Connection, context: &LoadContext<'_>) -> rusqlite::Result<Known> {
        let (base, max_id, count): (i64, i64, i64) = conn.query_row(
            "SELECT coalesce(min(id), 0), coalesce(max(id), 0), count(*) FROM finding_state",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?;
        if max_id.saturating_sub(base) > i64::from(u32::MAX) {
            return Err(rusqlite::Error::IntegralValueOutOfRange(0, max_id));
        }
        let mut entries = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        let mut statement = conn.prepare(
            "SELECT id, key_hash, content_hash, status, status_scan, last_seen_scan, last_announced_at IS NOT NULL, \
                    CASE WHEN last_announced_at IS NOT NULL THEN last_announced_at <= ?1 ELSE first_seen_at <= unixepoch(?1) END, \
                    CASE WHEN key_hash IS NULL THEN coalesce(key, rule || ':' || group_key) END \
             FROM finding_state ORDER BY id",
        )?;
        let mut rows = statement.query(params![context.reminder_cutoff])?;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let hash = match row.get::<_, Option<i64>>(1)? {
                Some(hash) => hash,
                None => key_hash(&row.get::<_, String>(8)?),
            };
            let content: i64 = row.get(2)?;
            let stored = parse_status(row, 3)?;
            let status_scan: Option<i64> = row.get(4)?;
            let last_seen: Option<i64> = row.get(5)?;
            let shown = shown_status(stored, status_scan, last_seen.or(context.latest));
            let mut flags =
                (status_code(stored) << STORED_SHIFT) | (status_code(shown) << SHOWN_SHIFT);
            if row.get::<_, bool>(6)? {
                flags |= ANNOUNCED;
            }
            if row.get::<_, Option<bool>>(7)?.unwrap_or(false) {
                flags |= QUIET;
            }
            if last_seen.is_some() {
                flags |= LAST_SEEN_WRITTEN;
            }
            entries.push(Entry {
                key_hash: hash,
                content: content as u64,
                offset: (id - base) as u32,
                flags: Flags(flags),
            });
        }
        let mut by_hash: Vec<u32> = (0..entries.len() as u32).collect();
        by_hash.sort_unstable_by_key(|&i| entries[i as usize].key_hash as u64);
        for pair in by_hash.windows(2) {
            let (a, b) = (pair[0] as usize, pair[1] as usize);
            if entries[a].key_hash == entries[b].key_hash {
                entries[a].flags.0 |= SHARED;
                entries[b].flags.0 |= SHARED;
            }
        }
        // About four entries a bucket (a byte of directory per entry).
        let bits = (usize::BITS - (entries.len() / 4).leading_zeros()).clamp(1, 24);
        let mut starts = Vec::with_capacity((1 << bits) + 1);
        let mut index = 0;
        for bucket in 0..(1u64 << bits) {
            while index < by_hash.len()
                && bucket_of(entries[by_hash[index] as usize].key_hash, bits) < bucket
            {
                index += 1;
            }
            starts.push(index as u32);
        }
        starts.push(by_hash.len() as u32);
        Ok(Known {
            entries,
            by_hash,
            starts,
            bits,
            next: 0,
            base,
            max_id,
        })
    }

    /// The stored finding with this key, if any. Two stored keys with the
    /// same hash (never seen in practice) are told apart by the key:
    /// `key_of` reads a stored finding's key by its row id.
    pub(super) fn find(
        &mut self,
        hash: i64,
        key: &str,
        key_of: &mut dyn FnMut(i64) -> rusqlite::Result<String>,
    ) -> rusqlite::Result<Option<Hit>> {
        let index = match self.entries.get(self.next) {
            Some(entry) if entry.key_hash == hash && entry.flags.0 & SHARED == 0 => self.next,
            _ => match self.search(hash, key, key_of)? {
                Some(index) => index,
                None => return Ok(None),
            },
        };
        self.next = index + 1;
        let entry = self.entries[index];
        Ok(Some(Hit {
            index,
            id: self.id(index),
            content: entry.content,
            flags: entry.flags,
        }))
    }

    /// The positions in `by_hash` of the entries with this hash.
    fn with_hash(&self, hash: i64) -> std::ops::Range<usize> {
        let bucket = bucket_of(hash, self.bits) as usize;
        let (Some(&low), Some(&high)) = (self.starts.get(bucket), self.starts.get(bucket + 1))
        else {
            return 0..0;
        };
        let (low, high) = (low as usize, high as usize);
        let hash_at = |i: usize| self.entries[self.by_hash[i] as usize].key_hash;
        let start = low
            + self.by_hash[low..high]
                .partition_point(|&e| (self.entries[e as usize].key_hash as u64) < hash as u64);
        let end = (start..high).find(|&i| hash_at(i) != hash).unwrap_or(high);
        start..end
    }

    fn search(
        &self,
        hash: i64,
        key: &str,
        key_of: &mut dyn FnMut(i64) -> rusqlite::Result<String>,
    ) -> rusqlite::Result<Option<usize>> {
        let range = self.with_hash(hash);
        match range.len() {
            0 => Ok(None),
            1 => Ok(Some(self.by_hash[range.start] as usize)),
            _ => {
                for index in range.map(|i| self.by_hash[i] as usize) {
                    if key_of(self.id(index))? == key {
                        return Ok(Some(index));
                    }
                }
                Ok(None)
            }
        }
    }

    fn id(&self, index: usize) -> i64 {
        self.base + i64::from(self.entries[index].offset)
    }

    /// Notes that this scan saw `hit` and gave it `status`.
    pub(super) fn see(&mut self, hit: &Hit, status: Status) {
        let flags = &mut self.entries[hit.index].flags.0;
        *flags = (*flags & !(7 << NOW_SHIFT)) | (status_code(status) << NOW_SHIFT) | SEEN;
    }

    /// Notes the content this scan stored for `hit`.
    pub(super) fn set_content(&mut self, hit: &Hit, content: u64) {
        self.entries[hit.index].content = content;
    }

    /// The row ids of the findings that were active before this scan and
    /// that it did not see, in id order.
    pub(super) fn unseen_active(&self) -> Vec<i64> {
        (0..self.entries.len())
            .filter(|&i| {
                let flags = self.entries[i].flags;
                !flags.seen() && flags.stored() != Status::Resolved
            })
            .map(|i| self.id(i))
            .collect()
    }
}

/// The bucket of a key hash: its top `bits` bits.
fn bucket_of(hash: i64, bits: u32) -> u64 {
    (hash as u64) >> (64 - bits)
}

fn parse_status(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Status> {
    let text = row.get_ref(index)?.as_str()?;
    text.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, e.into())
    })
}

/// The evidence shapes (names, in order): evidence with a known shape
/// is stored as a JSON array of its values.
#[derive(Debug, Default)]
pub(super) struct Shapes {
    /// Stored shapes, by their names as JSON.
    stored: std::collections::HashMap<String, i64>,
    /// Shapes met in this scan, with their ids.
    known: Vec<(Vec<Arc<str>>, i64)>,
    /// Shapes of `known` as other threads' findings name them (each
    /// worker has its own copies of a rule's names), found by address:
    /// the names are not compared as text for every finding. The names
    /// are held here, so no address is reused while it is in the list.
    aliases: Vec<(Vec<Arc<str>>, i64)>,
    next_id: i64,
    buffer: String,
}

impl Shapes {
    /// The shapes stored so far.
    pub(super) fn load(conn: &Connection) -> rusqlite::Result<Shapes> {
        let mut statement = conn.prepare("SELECT keys, id FROM evidence_shapes")?;
        let stored: std::collections::HashMap<String, i64> = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let next_id = stored.values().max().map_or(1, |id| id + 1);
        Ok(Shapes {
            stored,
            next_id,
            ..Shapes::default()
        })
    }

    /// Most shapes a scan looks among (and adds): a rule whose evidence
    /// names vary from row to row has its evidence stored as objects
    /// instead, so neither the table nor the search grows with the rows.
    const MAX_SHAPES: usize = 64;

    /// `evidence` in its stored form: its shape's id and the JSON array
    /// of its values, or no shape and the JSON object (the text is valid
    /// until the next call); and, for a shape not stored yet, its id and
    /// names as JSON, to store.
    pub(super) fn encode(
        &mut self,
        evidence: &EvidenceMap,
    ) -> (Option<i64>, &str, Option<(i64, String)>) {
        let names = &evidence.0;
        let same = |shape: &[Arc<str>], by_address: bool| {
            shape.len() == names.len()
                && shape
                    .iter()
                    .zip(names)
                    .all(|(a, (b, _))| Arc::ptr_eq(a, b) || (!by_address && a == b))
        };
        let by_address = |list: &[(Vec<Arc<str>>, i64)]| {
            list.iter()
                .find(|(shape, _)| same(shape, true))
                .map(|(_, id)| *id)
        };
        let mut found = by_address(&self.known).or_else(|| by_address(&self.aliases));
        if found.is_none() {
            found = self
                .known
                .iter()
                .find(|(shape, _)| same(shape, false))
                .map(|(_, id)| *id);
            if let Some(id) = found
                && self.aliases.len() < Self::MAX_SHAPES
            {
                self.aliases
                    .push((names.iter().map(|(name, _)| Arc::clone(name)).collect(), id));
            }
        }
        let mut new = None;
        let shape = match found {
            Some(id) => id,
            None if self.known.len() >= Self::MAX_SHAPES => {
                self.buffer.clear();
                self.buffer
                    .push_str(&serde_json::to_string(evidence).unwrap_or_else(|_| "{}".to_owned()));
                return (None, &self.buffer, None);
            }
            None => {
                let keys =
                    serde_json::to_string(&names.iter().map(|(n, _)| &**n).collect::<Vec<_>>())
                        .unwrap_or_else(|_| "[]".to_owned());
                let id = match self.stored.get(&keys) {
                    Some(id) => *id,
                    None => {
                        let id = self.next_id.max(1);
                        self.next_id = id + 1;
                        self.stored.insert(keys.clone(), id);
                        new = Some((id, keys));
                        id
                    }
                };
                self.known
                    .push((names.iter().map(|(name, _)| Arc::clone(name)).collect(), id));
                id
            }
        };
        self.buffer.clear();
        self.buffer.push('[');
        for (i, (_, value)) in names.iter().enumerate() {
            if i > 0 {
                self.buffer.push(',');
            }
            push_json(&mut self.buffer, value);
        }
        self.buffer.push(']');
        (Some(shape), &self.buffer, new)
    }
}

/// Appends `value` as JSON, as serde_json writes it.
fn push_json(buffer: &mut String, value: &crate::engine::finding::Evidence) {
    use crate::engine::finding::Evidence;
    match value {
        Evidence::Null => buffer.push_str("null"),
        Evidence::Bool(true) => buffer.push_str("true"),
        Evidence::Bool(false) => buffer.push_str("false"),
        Evidence::Int(i) => buffer.push_str(itoa::Buffer::new().format(*i)),
        other => {
            // Text and fractions: serde_json's escaping and number form.
            let text = serde_json::to_string(other).unwrap_or_else(|_| "null".to_owned());
            buffer.push_str(&text);
        }
    }
}

/// What a finding's content hash covers, as stored.
pub(super) struct Content<'a> {
    pub(super) finding: &'a Finding,
    pub(super) group_key: &'a str,
    /// The hash begun with the finding's own fields by the worker that
    /// made it ([`content_hasher`]); `None`: begun here.
    pub(super) begun: Option<&'a ContentHasher>,
    pub(super) shape: Option<i64>,
    pub(super) evidence: &'a str,
    pub(super) exemption: Option<(&'a str, &'a str)>,
}

/// A 64-bit hash of everything a scan stores about a finding: equal
/// hashes (with equal key hashes) mean nothing to write. Fixed seed, so
/// it is the same in every run; a different hash after an upgrade only
/// costs one rewrite of each finding.
pub(super) fn content_hash(content: &Content<'_>) -> u64 {
    let mut hasher = match content.begun {
        Some(begun) => begun.clone(),
        None => content_hasher(content.finding, content.group_key),
    };
    hash_text(&mut hasher, Some(content.evidence));
    hash_text(&mut hasher, content.exemption.map(|(origin, _)| origin));
    hash_text(&mut hasher, content.exemption.map(|(_, reason)| reason));
    hasher.0.write_i64(content.shape.unwrap_or(-1));
    hasher.0.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::finding::Evidence;

    fn evidence(names: &[&str]) -> EvidenceMap {
        EvidenceMap(
            names
                .iter()
                .map(|n| (Arc::from(*n), Evidence::Int(1)))
                .collect(),
        )
    }

    /// The hash a worker begins and the store finishes is the hash the
    /// store makes alone, for every field present or absent.
    #[test]
    fn a_content_hash_begun_on_a_worker_is_the_same() {
        let mut finding = Finding {
            rule: Arc::from("r"),
            severity: crate::engine::finding::Severity::High,
            key: "r:g".into(),
            group_id: Some("g".into()),
            group_name: Some("Name \"x\"".into()),
            owner: None,
            message: "m".into(),
            line: Some(2),
            evidence: EvidenceMap::default(),
        };
        for step in 0..3 {
            if step == 1 {
                finding.owner = Some("o@x".into());
                finding.group_name = None;
            }
            if step == 2 {
                finding.group_id = None;
            }
            for exemption in [None, Some(("cli", "why"))] {
                let begun = content_hasher(&finding, "g");
                let content = |begun| Content {
                    finding: &finding,
                    group_key: "g",
                    begun,
                    shape: Some(3),
                    evidence: "[1]",
                    exemption,
                };
                assert_eq!(
                    content_hash(&content(Some(&begun))),
                    content_hash(&content(None))
                );
            }
        }
        let one = |group_key| {
            content_hash(&Content {
                finding: &finding,
                group_key,
                begun: None,
                shape: None,
                evidence: "{}",
                exemption: None,
            })
        };
        assert_ne!(one("g"), one("h"));
    }

    #[test]
    fn evidence_is_stored_as_values_of_a_shape_and_the_shapes_are_bounded() {
        let mut shapes = Shapes::default();
        let (shape, text, new) = shapes.encode(&EvidenceMap(vec![
            (Arc::from("on"), Evidence::Bool(true)),
            (Arc::from("name"), Evidence::Text("A \"b\"".into())),
            (Arc::from("n"), Evidence::Int(-3)),
            (Arc::from("x"), Evidence::Float(1.5)),
            (Arc::from("none"), Evidence::Null),
        ]));
        assert_eq!(text, r#"[true,"A \"b\"",-3,1.5,null]"#);
        assert_eq!(new, Some((1, r#"["on","name","n","x","none"]"#.to_owned())));
        assert_eq!(shape, Some(1));
        // The same names again: the same shape, nothing new to store.
        let again = shapes.encode(&evidence(&["on", "name", "n", "x", "none"]));
        assert_eq!((again.0, again.2), (Some(1), None));
        // Names that vary from row to row: past the cap, objects.
        for i in 0..Shapes::MAX_SHAPES {
            shapes.encode(&evidence(&[&format!("k{i}")]));
        }
        let (shape, text, new) = shapes.encode(&evidence(&["row-specific"]));
        assert_eq!((shape, new), (None, None));
        assert_eq!(text, r#"{"row-specific":1}"#);
        assert!(shapes.known.len() <= Shapes::MAX_SHAPES);
    }

    #[test]
    fn two_stored_keys_with_one_hash_are_told_apart_by_reading_their_keys() {
        let conn = Connection::open_in_memory().unwrap();
        super::super::schema::apply(&conn, 0).unwrap();
        for (hash, group) in [(7, "a"), (7, "b"), (9, "c")] {
            super::super::schema::insert_test_finding(&conn, hash, group);
        }
        let mut known = Known::load(
            &conn,
            &LoadContext {
                latest: Some(1),
                reminder_cutoff: None,
            },
        )
        .unwrap();
        let mut reads = 0;
        let mut key_of = |id: i64| -> rusqlite::Result<String> {
            reads += 1;
            conn.query_row(
                "SELECT rule || ':' || group_key FROM finding_state WHERE id = ?1",
                [id],
                |row| row.get(0),
            )
        };
        // Not the next row in order, so looked up by hash.
        assert_eq!(
            known.find(7, "r:b", &mut key_of).unwrap().map(|h| h.id),
            Some(2)
        );
        assert_eq!(
            known.find(7, "r:a", &mut key_of).unwrap().map(|h| h.id),
            Some(1)
        );
        assert!(known.find(7, "r:x", &mut key_of).unwrap().is_none());
        assert!(known.find(8, "r:y", &mut key_of).unwrap().is_none());
        assert_eq!(
            known.find(9, "r:c", &mut key_of).unwrap().map(|h| h.id),
            Some(3)
        );
        assert!(reads >= 4, "the shared hash's keys were read");
    }
}
