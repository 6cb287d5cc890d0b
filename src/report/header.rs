//! Header normalisation: which CSV column holds which field.
//!
//! Columns are matched by a *key*: the header text lower-cased with
//! everything but letters and digits removed, so `Exchange Mailbox Storage
//! Used (Byte)`, `exchange_mailbox_storage_used_byte` and the JSON export's
//! camelCase names all land on the same field. Unknown columns are kept and
//! stay reachable from rules by their header name.

use std::fmt;
use std::sync::Arc;

/// How a column's cells are parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Text, kept as the report gives it.
    Text,
    /// `True` or `False`, in any case.
    Bool,
    /// A whole number.
    Int,
    /// A day, `YYYY-MM-DD`.
    Date,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Text => "string",
            Kind::Bool => "bool",
            Kind::Int => "int",
            Kind::Date => "string (YYYY-MM-DD)",
        })
    }
}

/// A column the report format defines.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    /// The name rules use (`row.member_count`).
    pub field: &'static str,
    /// The header as Microsoft writes it today.
    pub header: &'static str,
    /// How the cells are parsed.
    pub kind: Kind,
    /// The scan cannot work without it.
    pub required: bool,
    /// Other header spellings seen in the wild.
    pub aliases: &'static [&'static str],
    /// One line for the rule writer's reference.
    pub doc: &'static str,
    /// An example value, as a Rhai literal.
    pub example: &'static str,
}

macro_rules! columns {
    ($($id:ident = $field:literal, $header:literal, $kind:ident, $required:literal, [$($alias:literal),*], $doc:literal, $example:literal;)*) => {
        /// Positions of the known columns in [`COLUMNS`].
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(usize)]
        pub enum Col { $(#[doc = concat!("`", $header, "`: ", $doc)] $id,)* }

        impl Col {
            /// Every known column, in table order.
            pub const ALL: &[Col] = &[$(Col::$id,)*];
        }

        /// Every column the report format defines, in Microsoft's order.
        pub const COLUMNS: &[Column] = &[$(Column {
            field: $field,
            header: $header,
            kind: Kind::$kind,
            required: $required,
            aliases: &[$($alias),*],
            doc: $doc,
            example: $example,
        },)*];
    };
}

columns! {
    ReportRefreshDate = "report_refresh_date", "Report Refresh Date", Date, true, [],
        "The day the report's data was computed; all day counts are relative to it.", "\"2026-11-25\"";
    GroupDisplayName = "group_display_name", "Group Display Name", Text, true, ["Group Name"],
        "The group's name (a 32-character hash in a concealed report); `#QUOT#` is decoded to `\"`.", "\"Finance EMEA\"";
    IsDeleted = "is_deleted", "Is Deleted", Bool, true, [],
        "The group was deleted (it stays restorable for 30 days).", "false";
    OwnerPrincipalName = "owner_principal_name", "Owner Principal Name", Text, false, ["Owner"],
        "The owner's user principal name; `()` when the group has no owner.", "\"jane@contoso.com\"";
    LastActivityDate = "last_activity_date", "Last Activity Date", Date, true, [],
        "Last mail, file or Yammer activity; `()` when there was none in the period.", "\"2026-08-27\"";
    GroupType = "group_type", "Group Type", Text, false, [],
        "`Public` or `Private`.", "\"Private\"";
    MemberCount = "member_count", "Member Count", Int, false, [],
        "Members, owners included.", "12";
    ExternalMemberCount = "external_member_count", "External Member Count", Int, false, ["Guest Count", "External Members"],
        "Guests (members from outside the tenant).", "3";
    ExchangeReceivedEmailCount = "exchange_received_email_count", "Exchange Received Email Count", Int, false, [],
        "Mails the group's mailbox received in the period.", "40";
    SharePointActiveFileCount = "sharepoint_active_file_count", "SharePoint Active File Count", Int, false, [],
        "Files active on the group's site in the period.", "7";
    YammerPostedMessageCount = "yammer_posted_message_count", "Yammer Posted Message Count", Int, false, [],
        "Yammer messages posted in the period.", "0";
    YammerReadMessageCount = "yammer_read_message_count", "Yammer Read Message Count", Int, false, [],
        "Yammer messages read in the period.", "0";
    YammerLikedMessageCount = "yammer_liked_message_count", "Yammer Liked Message Count", Int, false, [],
        "Yammer messages liked in the period.", "0";
    ExchangeMailboxTotalItemCount = "exchange_mailbox_total_item_count", "Exchange Mailbox Total Item Count", Int, false, [],
        "Items in the group's mailbox.", "430";
    ExchangeMailboxStorageUsedByte = "exchange_mailbox_storage_used_byte", "Exchange Mailbox Storage Used (Byte)", Int, false, ["Exchange Mailbox Storage Used In Bytes"],
        "Bytes held by the group's mailbox.", "4757931";
    SharePointTotalFileCount = "sharepoint_total_file_count", "SharePoint Total File Count", Int, false, [],
        "Files on the group's site.", "120";
    SharePointSiteStorageUsedByte = "sharepoint_site_storage_used_byte", "SharePoint Site Storage Used (Byte)", Int, false, ["SharePoint Site Storage Used In Bytes"],
        "Bytes held by the group's SharePoint site.", "1450329";
    GroupId = "group_id", "Group Id", Text, false, [],
        "The group's object id; all zeros in a concealed report; `()` in old exports without the column.", "\"01c48e08-8b1e-4bd4-9d43-0e3f7f1d0a55\"";
    ReportPeriod = "report_period", "Report Period", Int, false, [],
        "The period in days the activity counts cover: 7, 30, 90 or 180.", "30";
    TeamsChannelMessagesCount = "teams_channel_messages_count", "Teams Channel Messages Count", Int, false, [],
        "Teams channel messages in the period (`/beta` reports only).", "25";
    TeamsMeetingsOrganizedCount = "teams_meetings_organized_count", "Teams Meetings Organized Count", Int, false, [],
        "Teams meetings organised in the period (`/beta` reports only).", "2";
}

/// Number of known columns.
pub const COLUMN_COUNT: usize = COLUMNS.len();

impl Col {
    /// The known column `name` (a header or field name in any spelling,
    /// or an alias) stands for, whatever the report: what
    /// [`Layout::find`] looks up first.
    pub fn named(name: &str) -> Option<Col> {
        // Rules mostly spell a header or field exactly: compare bytes first.
        let index = COLUMNS
            .iter()
            .position(|c| c.header == name || c.field == name)
            .or_else(|| known_column(name))?;
        Col::ALL.get(index).copied()
    }

    /// The definition of this column.
    pub fn spec(self) -> &'static Column {
        &COLUMNS[self as usize]
    }
}

/// The matching key of a header: lower case, letters and digits only.
pub fn match_key(header: &str) -> String {
    header
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The snake_case field name of a header (`Teams Chat (Count)` →
/// `teams_chat_count`).
pub fn snake_name(header: &str) -> String {
    let mut name = String::with_capacity(header.len());
    for c in header.chars() {
        if c.is_alphanumeric() {
            name.extend(c.to_lowercase());
        } else if !name.is_empty() && !name.ends_with('_') {
            name.push('_');
        }
    }
    while name.ends_with('_') {
        name.pop();
    }
    name
}

/// A column of the file that is not a known field.
#[derive(Clone, Debug)]
pub struct ExtraColumn {
    /// The header as the file spells it.
    pub header: String,
    /// Its snake_case name (`Sensitivity Label` → `sensitivity_label`).
    pub field: String,
    /// Its position in the record, from 0.
    pub position: usize,
}

/// Where each field sits in one particular file.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Position in the record of each known column, if the file has it.
    positions: [Option<usize>; COLUMN_COUNT],
    /// The other way round: the known column at each record position, and
    /// its kind.
    columns: Vec<Option<(Col, Kind)>>,
    /// The header names as the file spells them (BOM removed).
    pub headers: Vec<String>,
    /// Columns that are not known fields, kept for rules.
    pub extra: Vec<ExtraColumn>,
    /// Today where groupwarden runs, as days since 1970-01-01, taken when
    /// the header is read: a report refreshed after it is broken. (Per
    /// report, not per process: the daemon runs for weeks.)
    pub(crate) today: i32,
    /// The tenant's directory, joined to rows by Group Id (`[directory]`);
    /// `None` when the join is off.
    pub directory: Option<Arc<super::directory::Directory>>,
}

/// The header lacks columns the scan needs.
#[derive(Debug, thiserror::Error)]
#[error(
    "the report lacks required column(s) {}; expected at least {}; found {}",
    quote_list(missing),
    quote_list(&required_headers()),
    quote_list(found)
)]
pub struct MissingColumns {
    /// The required headers the file lacks.
    pub missing: Vec<String>,
    /// The headers the file has.
    pub found: Vec<String>,
}

fn required_headers() -> Vec<String> {
    COLUMNS
        .iter()
        .filter(|c| c.required)
        .map(|c| c.header.to_owned())
        .collect()
}

fn quote_list(items: &[String]) -> String {
    if items.is_empty() {
        return "nothing".into();
    }
    items
        .iter()
        .map(|i| format!("\"{}\"", super::text::for_message(i, 100)))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Layout {
    /// Maps a header row. The first occurrence of a field wins.
    pub fn from_headers<S: AsRef<str>>(headers: &[S]) -> Result<Layout, MissingColumns> {
        let headers: Vec<String> = headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let h = h.as_ref();
                let h = if i == 0 {
                    h.trim_start_matches('\u{feff}')
                } else {
                    h
                };
                h.trim().to_owned()
            })
            .collect();
        let mut positions = [None; COLUMN_COUNT];
        let mut extra = Vec::new();
        for (position, header) in headers.iter().enumerate() {
            let key = match_key(header);
            match known_column(&key) {
                Some(col) if positions[col].is_none() => positions[col] = Some(position),
                _ => extra.push(ExtraColumn {
                    header: header.clone(),
                    field: snake_name(header),
                    position,
                }),
            }
        }
        let missing: Vec<String> = COLUMNS
            .iter()
            .zip(positions.iter())
            .filter(|(c, p)| c.required && p.is_none())
            .map(|(c, _)| c.header.to_owned())
            .collect();
        if !missing.is_empty() {
            return Err(MissingColumns {
                missing,
                found: headers,
            });
        }
        let mut columns = vec![None; headers.len()];
        for (&col, position) in Col::ALL.iter().zip(positions) {
            if let Some(position) = position {
                columns[position] = Some((col, col.spec().kind));
            }
        }
        let today = jiff::Zoned::now().date().to_string();
        Ok(Layout {
            positions,
            columns,
            headers,
            extra,
            today: super::date::parse_day(today.as_bytes()).unwrap_or(i32::MAX - 1),
            directory: None,
        })
    }

    /// The record position of a known column.
    pub fn position(&self, col: Col) -> Option<usize> {
        self.positions[col as usize]
    }

    /// The known column at a record position, if it is one, and its kind.
    pub fn column_at(&self, position: usize) -> Option<(Col, Kind)> {
        self.columns.get(position).copied().flatten()
    }

    /// The known column at every record position (`None` for the extra
    /// ones), with its kind: what row parsing walks.
    pub(crate) fn columns(&self) -> &[Option<(Col, Kind)>] {
        &self.columns
    }

    /// The header a record position came from.
    pub fn header_at(&self, position: usize) -> &str {
        self.headers
            .get(position)
            .map(String::as_str)
            .unwrap_or("?")
    }

    /// The position of a column by its header or field name, for rules
    /// that read a column this version does not know.
    pub fn find(&self, name: &str) -> Option<usize> {
        if let Some(col) = Col::named(name) {
            return self.position(col);
        }
        self.extra
            .iter()
            .find(|e| same_key(&e.header, name))
            .map(|e| e.position)
    }
}

/// `match_key(a) == match_key(b)` without allocating: rules call
/// `row.has(...)` for every row.
fn same_key(a: &str, b: &str) -> bool {
    key_chars(a).eq(key_chars(b))
}

fn key_chars(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
}

/// Whether `header` (in any spelling) names a column of the report.
pub fn is_known_header(header: &str) -> bool {
    known_column(header.trim()).is_some()
}

/// The known column a header (in any spelling) names.
fn known_column(header: &str) -> Option<usize> {
    // Rules call `row.has(...)` per row: match against keys computed once.
    static KEYS: std::sync::LazyLock<Vec<(String, usize)>> = std::sync::LazyLock::new(|| {
        let mut keys = Vec::new();
        for (index, column) in COLUMNS.iter().enumerate() {
            let header = match_key(column.header);
            // The `/beta` JSON export names byte counts `...StorageUsedInBytes`.
            if let Some(stem) = header.strip_suffix("byte") {
                keys.push((format!("{stem}inbytes"), index));
            }
            keys.push((header, index));
            keys.extend(column.aliases.iter().map(|alias| (match_key(alias), index)));
        }
        keys
    });
    KEYS.iter()
        .filter(|(key, _)| same_key(key, header))
        .map(|(_, index)| *index)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = "Report Refresh Date,Group Display Name,Is Deleted,Owner Principal Name,Last Activity Date,Group Type,Member Count,External Member Count,Exchange Received Email Count,SharePoint Active File Count,Yammer Posted Message Count,Yammer Read Message Count,Yammer Liked Message Count,Exchange Mailbox Total Item Count,Exchange Mailbox Storage Used (Byte),SharePoint Total File Count,SharePoint Site Storage Used (Byte),Group Id,Report Period";

    fn layout(header: &str) -> Result<Layout, MissingColumns> {
        Layout::from_headers(&header.split(',').collect::<Vec<_>>())
    }

    #[test]
    fn maps_every_v1_column_by_name() {
        let l = layout(V1).unwrap();
        for (i, col) in COLUMNS.iter().take(19).enumerate() {
            assert_eq!(l.positions[i], Some(i), "{}", col.header);
        }
        assert!(l.extra.is_empty());
    }

    #[test]
    fn snake_names_match_the_field_names() {
        for col in COLUMNS {
            assert_eq!(snake_name(col.header), col.field);
        }
    }

    #[test]
    fn maps_reordered_columns_and_strips_the_bom() {
        let l =
            layout("\u{feff}Group Display Name,Last Activity Date,Is Deleted,Report Refresh Date")
                .unwrap();
        assert_eq!(l.position(Col::GroupDisplayName), Some(0));
        assert_eq!(l.position(Col::ReportRefreshDate), Some(3));
        assert_eq!(l.position(Col::GroupId), None);
        assert_eq!(l.headers[0], "Group Display Name");
    }

    #[test]
    fn accepts_guest_count_and_other_spellings() {
        let l = layout("report_refresh_date,groupDisplayName,IS DELETED,Last Activity Date,Guest Count,exchangeMailboxStorageUsedInBytes").unwrap();
        assert_eq!(l.position(Col::ExternalMemberCount), Some(4));
        assert_eq!(l.position(Col::ExchangeMailboxStorageUsedByte), Some(5));
    }

    #[test]
    fn keeps_unknown_columns_reachable_by_name() {
        let l = layout(&format!("{V1},Sensitivity Label (Name)")).unwrap();
        assert_eq!(l.extra.len(), 1);
        assert_eq!(l.extra[0].field, "sensitivity_label_name");
        assert_eq!(l.find("Sensitivity Label (Name)"), Some(19));
        assert_eq!(l.find("sensitivity_label_name"), Some(19));
        assert_eq!(l.find("member_count"), Some(6));
        assert_eq!(l.find("nope"), None);
    }

    #[test]
    fn missing_required_columns_list_expected_and_found() {
        let err = layout("Group Display Name,Member Count").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("\"Report Refresh Date\", \"Is Deleted\", \"Last Activity Date\""),
            "{text}"
        );
        assert!(
            text.contains("found \"Group Display Name\", \"Member Count\""),
            "{text}"
        );
    }
}
