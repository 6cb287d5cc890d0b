//! What email templates see, and the CSV attachment: an email people can
//! act on, short enough for a phone and for Gmail (which clips HTML above
//! about 102 KB).
//!
//! An email lists at most `max_listed_per_rule` findings of each rule
//! under the rule's title and help text, with the rule's true total; the
//! whole list goes with it as a CSV attachment (cut at
//! `max_attachment_bytes`, and the body says so). Each finding reads as
//! words: the group's name and id, its status ("flagged again", not
//! "reopened"), its figures ("last activity 412 days ago", "mailbox
//! 2.1 GB") and a link to the group in the Entra admin center. A message
//! to a group owner also says how to ask for an exemption.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::engine::finding::{Evidence, EvidenceMap, Severity};
use crate::engine::sandbox::format_bytes;
use crate::output::safe::csv_cell;
use crate::source::cloud::Cloud;

use super::channel::Channel;
use super::digest::{Capped, Counts, Digest, DigestItem, ExpiringExemption, ItemStatus, ScanInfo};
use super::render::ItemView;
use super::route::{Planned, owner_addresses};

/// The most HTML an email may have: Gmail clips a message above about
/// 102 KB and hides the rest behind "View entire message".
pub const HTML_MAX_BYTES: usize = 100_000;

/// The size of `html` as sent: mail is written with CRLF line ends, one
/// byte more per line than it is rendered with.
pub fn sent_size(html: &str) -> usize {
    html.len() + html.bytes().filter(|&b| b == b'\n').count()
}

/// The most bytes graph-mail attaches: Graph's sendMail takes attachments
/// of up to 3 MB in the request (larger ones need an upload session).
pub const GRAPH_MAIL_MAX_ATTACHMENT_BYTES: usize = 3_000_000;

/// Whom an owner asks for an exemption unless `exemption_contact` says.
const DEFAULT_EXEMPTION_CONTACT: &str = "your Microsoft 365 administrators";

/// The attachments of one email, each with what the body says about it.
pub(crate) type Files = Vec<(Attachment, AttachmentNote)>;

/// A file sent with an email.
#[derive(Clone, Debug, PartialEq)]
pub struct Attachment {
    /// The file name, e.g. `groupwarden-findings-2026-11-25.csv`.
    pub filename: String,
    /// Its MIME type.
    pub content_type: &'static str,
    /// Its bytes.
    pub content: Vec<u8>,
}

/// What email templates see: everything chat templates see (same names),
/// plus the email's own parts.
#[derive(Debug, Serialize)]
pub struct EmailView<'a> {
    /// The name of the channel sending the message.
    pub channel: &'a str,
    /// Who it goes to: addresses separated by `, `.
    pub recipient: &'a str,
    /// The tenant's name: `[source] tenant_name`, else its domain; never
    /// the report's file name.
    pub title: String,
    /// The counts in words: `2 new, 1 flagged again, 1 expiring exemption`.
    pub summary: String,
    /// What changed, for a subject: `3 groups need attention`.
    pub headline: String,
    /// Whether this is a `groupwarden notify --test` message.
    pub test: bool,
    /// Whether the message goes to a group owner about their own groups
    /// (not to administrators or `fallback_to`).
    pub owner_message: bool,
    /// groupwarden's version, e.g. for a footer.
    pub version: &'static str,
    /// Which scan the message is about.
    pub scan: &'a ScanInfo,
    /// How many findings changed; these cover every finding, listed or not.
    pub counts: &'a Counts,
    /// The findings listed, most severe rule first.
    pub items: Vec<EmailItem<'a>>,
    /// Every rule with findings, with its true total and those listed.
    pub rules: Vec<EmailRule<'a>>,
    /// Findings not listed (they are in the attachment).
    pub more: usize,
    /// The most findings of one rule listed.
    pub listed_per_rule: usize,
    /// The expiring exemptions listed.
    pub expiring_exemptions: &'a [ExpiringExemption],
    /// Expiring exemptions not listed (they are in the attachment).
    pub more_exemptions: usize,
    /// Set when a cap shortened the digest itself.
    pub capped: Option<&'a Capped>,
    /// Whom an owner asks for an exemption (`exemption_contact`).
    pub exemption_contact: &'a str,
    /// `exemption_contact` as a link (`mailto:` or https), when it is one.
    pub exemption_link: Option<String>,
    /// The attachments, described for the body; empty when everything is
    /// listed.
    pub attachments: Vec<AttachmentNote>,
}

/// One rule's findings in an email.
#[derive(Debug, Serialize)]
pub struct EmailRule<'a> {
    /// The rule's id.
    pub rule: &'a str,
    /// The rule's `TITLE`, else its id.
    pub title: &'a str,
    /// The rule's `HELP`; empty when it has none.
    pub help: &'a str,
    /// The severity of its first (most severe) finding.
    pub severity: Severity,
    /// How many findings the message is about, listed or not.
    pub total: usize,
    /// How many groups those findings are on.
    pub groups: usize,
    /// The findings listed.
    pub items: Vec<EmailItem<'a>>,
    /// Findings not listed.
    pub more: usize,
}

/// One finding in an email: the chat view's fields, plus words for people.
#[derive(Clone, Debug, Serialize)]
pub struct EmailItem<'a> {
    /// Everything chat templates see of the finding (`group`, `group_id`,
    /// `message`, `evidence`, …).
    #[serde(flatten)]
    pub item: ItemView<'a>,
    /// The rule's title, else its id.
    pub rule_title: &'a str,
    /// The status for people: `new`, `flagged again`, `still open` or
    /// `resolved`.
    pub status_text: &'static str,
    /// The finding's figures in words: `last activity 412 days ago`.
    pub figures: Vec<String>,
    /// The group in the Entra admin center, when its id is a real one.
    pub link: Option<String>,
}

/// An attachment as the body describes it.
#[derive(Clone, Debug, Serialize)]
pub struct AttachmentNote {
    /// The file name.
    pub filename: String,
    /// What it lists: `findings` or `expiring exemptions`.
    pub what: &'static str,
    /// Rows written.
    pub rows: usize,
    /// Rows there were.
    pub total: usize,
    /// Whether `max_attachment_bytes` cut it short.
    pub cut: bool,
    /// The size limit, for the note when it was cut: `5.0 MB`.
    pub limit: String,
}

/// The view of `planned` listing at most `per_rule` findings of each rule
/// (and as many expiring exemptions), with `attachments` described.
pub(crate) fn email_view<'a>(
    channel: &'a Channel,
    planned: &'a Planned,
    per_rule: usize,
    attachments: &[(Attachment, AttachmentNote)],
) -> EmailView<'a> {
    let digest = &planned.digest;
    let owner_message = is_owner_message(channel, planned);
    let contact = channel
        .config()
        .exemption_contact
        .as_deref()
        .unwrap_or(DEFAULT_EXEMPTION_CONTACT);
    let cloud = channel.tenant().cloud;
    let mut rules = by_rule(digest, per_rule, cloud);
    let items: Vec<EmailItem<'a>> = rules.iter().flat_map(|r| r.items.clone()).collect();
    let listed = items.len();
    let exemptions_listed = per_rule.min(digest.expiring_exemptions.len());
    rules
        .iter_mut()
        .for_each(|r| r.more = r.total - r.items.len());
    EmailView {
        channel: &planned.channel,
        recipient: &planned.recipient,
        title: tenant_label(channel, planned),
        summary: summary(digest),
        headline: headline(digest),
        test: digest.test,
        owner_message,
        version: env!("CARGO_PKG_VERSION"),
        scan: &digest.scan,
        counts: &digest.counts,
        items,
        rules,
        more: digest.items.len() - listed,
        listed_per_rule: per_rule,
        expiring_exemptions: &digest.expiring_exemptions[..exemptions_listed],
        more_exemptions: digest.expiring_exemptions.len() - exemptions_listed,
        capped: digest.capped.as_ref(),
        exemption_contact: contact,
        exemption_link: contact_link(contact),
        attachments: attachments.iter().map(|(_, note)| note.clone()).collect(),
    }
}

/// Whether `planned` goes to one group owner (not to `fallback_to`).
fn is_owner_message(channel: &Channel, planned: &Planned) -> bool {
    let config = channel.config();
    config.routes_to_owners()
        && !planned.digest.test
        && planned.recipient != config.fallback_to.join(", ")
}

/// Every rule of the digest in the order its findings come (most severe
/// first), with its first `per_rule` findings.
fn by_rule<'a>(digest: &'a Digest, per_rule: usize, cloud: Cloud) -> Vec<EmailRule<'a>> {
    let mut rules: Vec<EmailRule<'a>> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut groups: Vec<std::collections::HashSet<&str>> = Vec::new();
    for item in &digest.items {
        let at = *index.entry(&item.rule).or_insert_with(|| {
            let text = digest.rules.get(&item.rule);
            rules.push(EmailRule {
                rule: &item.rule,
                title: digest.rule_title(&item.rule),
                help: text.map_or("", |t| t.help.as_str()),
                severity: item.severity,
                total: 0,
                groups: 0,
                items: Vec::new(),
                more: 0,
            });
            groups.push(Default::default());
            rules.len() - 1
        });
        let rule = &mut rules[at];
        rule.total += 1;
        if groups[at].insert(item.group_id.as_deref().unwrap_or(item.group_label())) {
            rule.groups += 1;
        }
        if rule.items.len() < per_rule {
            rule.items.push(email_item(digest, item, cloud));
        }
    }
    rules
}

fn email_item<'a>(digest: &'a Digest, item: &'a DigestItem, cloud: Cloud) -> EmailItem<'a> {
    EmailItem {
        item: ItemView::new(item),
        rule_title: digest.rule_title(&item.rule),
        status_text: status_text(item.status),
        figures: figures(&item.evidence),
        link: item
            .group_id
            .as_deref()
            .and_then(|id| group_link(cloud, id)),
    }
}

/// Status words for people who never saw the first message.
pub fn status_text(status: ItemStatus) -> &'static str {
    match status {
        ItemStatus::New => "new",
        ItemStatus::Reopened => "flagged again",
        ItemStatus::Reminder => "still open",
        ItemStatus::Resolved => "resolved",
    }
}

/// `2 new, 1 flagged again, 3 reminders`: the non-zero counts in words.
fn summary(digest: &Digest) -> String {
    if digest.test {
        return "test message".to_owned();
    }
    let counts = &digest.counts;
    let parts: Vec<String> = [
        (counts.new, "new", "new"),
        (counts.reopened, "flagged again", "flagged again"),
        (counts.reminders, "reminder", "reminders"),
        (counts.resolved, "resolved", "resolved"),
        (
            counts.expiring_exemptions,
            "expiring exemption",
            "expiring exemptions",
        ),
    ]
    .into_iter()
    .filter(|(n, _, _)| *n > 0)
    .map(|(n, one, many)| format!("{n} {}", if n == 1 { one } else { many }))
    .collect();
    if parts.is_empty() {
        "no changes".to_owned()
    } else {
        parts.join(", ")
    }
}

/// What changed, as a subject says it: `3 groups need attention`, else
/// what was resolved or expires.
fn headline(digest: &Digest) -> String {
    if digest.test {
        return "test message".to_owned();
    }
    let open: std::collections::HashSet<&str> = digest
        .items
        .iter()
        .filter(|item| item.status != ItemStatus::Resolved)
        .map(|item| item.group_id.as_deref().unwrap_or(item.group_label()))
        .collect();
    let total_open = match &digest.capped {
        // A safety cap replaced the list: only the counts are known.
        Some(capped) if digest.items.is_empty() => capped.total as usize,
        _ => open.len(),
    };
    let resolved = digest.counts.resolved;
    let expiring = digest.expiring_exemptions.len();
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let cut = digest
        .capped
        .as_ref()
        .filter(|c| !digest.items.is_empty() && c.total > digest.items.len() as u64);
    if let Some(capped) = cut {
        // Not every finding is in the message: count findings, not the groups listed.
        let total = capped.total as usize;
        plural(total, "finding needs attention", "findings need attention")
    } else if total_open > 0 {
        plural(total_open, "group needs attention", "groups need attention")
    } else if resolved > 0 {
        plural(resolved as usize, "finding resolved", "findings resolved")
    } else if expiring > 0 {
        plural(expiring, "exemption expires soon", "exemptions expire soon")
    } else {
        "no changes".to_owned()
    }
}

/// What the message calls the tenant: `[source] tenant_name`, the tenant
/// id when it is a domain, the domain most owners' addresses share, the
/// recipient's domain for an owner, the sender's domain; never the
/// report's file name.
fn tenant_label(channel: &Channel, planned: &Planned) -> String {
    if let Some(name) = channel.tenant().name_for(&planned.digest.scan) {
        return name.to_owned();
    }
    tenant_domain(channel, planned).unwrap_or_else(|| "Microsoft 365".to_owned())
}

/// The tenant's domain, as far as the configuration and the addresses
/// tell: for the subject when no name is configured, and for `List-Id`.
pub(crate) fn tenant_domain(channel: &Channel, planned: &Planned) -> Option<String> {
    if let Some(domain) = &channel.tenant().domain {
        return Some(domain.to_lowercase());
    }
    let mut domains: BTreeMap<String, usize> = BTreeMap::new();
    for item in &planned.digest.items {
        for address in owner_addresses(item.owner.as_deref()) {
            if let Some((_, domain)) = address.rsplit_once('@') {
                *domains.entry(domain.to_owned()).or_default() += 1;
            }
        }
    }
    let most_common = domains
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
        .map(|(domain, _)| domain);
    let domain_of = |address: &str| {
        address
            .rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('>').trim().to_lowercase())
    };
    most_common
        .or_else(|| {
            is_owner_message(channel, planned)
                .then(|| domain_of(&planned.recipient))
                .flatten()
        })
        .or_else(|| channel.config().from.as_deref().and_then(domain_of))
        .filter(|d| !d.is_empty())
}

/// `groupwarden <groupwarden.contoso.com>`: the `List-Id` of the
/// channel's messages, named after the tenant's domain (`localhost`, as
/// RFC 2919 allows, when no domain is known).
pub(crate) fn list_id(channel: &Channel, planned: &Planned) -> String {
    let domain: String = tenant_domain(channel, planned)
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        .collect();
    let domain = domain.trim_matches('.');
    let domain = if domain.is_empty() {
        "localhost"
    } else {
        domain
    };
    format!("groupwarden <groupwarden.{domain}>")
}

/// `exemption_contact` as a link: `mailto:` for an address, the URL for
/// an https one.
fn contact_link(contact: &str) -> Option<String> {
    let contact = contact.trim();
    if contact.starts_with("https://") && !contact.contains(char::is_whitespace) {
        return Some(contact.to_owned());
    }
    contact
        .parse::<lettre::Address>()
        .ok()
        .map(|address| format!("mailto:{address}"))
}

/// The group's page in the Entra admin center (in a national cloud, its
/// own Azure portal, which hosts the same page); `None` for an id that is
/// not a GUID (missing, or hidden by the report's privacy setting).
pub fn group_link(cloud: Cloud, group_id: &str) -> Option<String> {
    let is_guid = group_id.len() == 36
        && group_id.chars().enumerate().all(|(i, c)| {
            matches!(i, 8 | 13 | 18 | 23) == (c == '-') && (c == '-' || c.is_ascii_hexdigit())
        });
    let concealed = group_id.chars().all(|c| c == '0' || c == '-');
    if !is_guid || concealed {
        return None;
    }
    let portal = match cloud {
        Cloud::Global => "https://entra.microsoft.com",
        Cloud::Usgov | Cloud::UsgovDod => "https://portal.azure.us",
        Cloud::China => "https://portal.azure.cn",
    };
    Some(format!(
        "{portal}/#view/Microsoft_AAD_IAM/GroupDetailsMenuBlade/~/Overview/groupId/{}",
        group_id.to_ascii_lowercase()
    ))
}

/// A finding's evidence in words, the report's fields as people say
/// them; fields that only place the row (name, id, line, report period)
/// are left out, and a field nobody named is shown as `name: value`.
pub fn figures(evidence: &EvidenceMap) -> Vec<String> {
    let value = |name: &str| {
        evidence
            .0
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v)
    };
    let mut words = Vec::new();
    for (name, found) in &evidence.0 {
        let phrase = match (&**name, found) {
            ("days_since_activity", Evidence::Int(days)) => {
                let on = match value("last_activity_date") {
                    Some(Evidence::Text(date)) => format!(" (on {date})"),
                    _ => String::new(),
                };
                Some(format!(
                    "last activity {} ago{on}",
                    count(*days, "day", "days")
                ))
            }
            ("days_since_activity", Evidence::Null) => {
                Some("no activity in the report period".to_owned())
            }
            ("last_activity_date", Evidence::Text(date)) => {
                (value("days_since_activity").is_none()).then(|| format!("last activity on {date}"))
            }
            ("last_activity_date", Evidence::Null) => (value("days_since_activity").is_none())
                .then(|| "no activity in the report period".to_owned()),
            ("external_member_count", Evidence::Int(n)) => {
                Some(count(*n, "external member", "external members"))
            }
            ("member_count", Evidence::Int(n)) => Some(count(*n, "member", "members")),
            ("total_storage_bytes", Evidence::Int(n)) => {
                Some(format!("{} stored in all", format_bytes(*n)))
            }
            ("exchange_mailbox_storage_used_byte", Evidence::Int(n)) => {
                Some(format!("mailbox {}", format_bytes(*n)))
            }
            ("sharepoint_site_storage_used_byte", Evidence::Int(n)) => {
                Some(format!("site {}", format_bytes(*n)))
            }
            ("exchange_mailbox_total_item_count", Evidence::Int(n)) => {
                Some(count(*n, "item in the mailbox", "items in the mailbox"))
            }
            ("exchange_received_email_count", Evidence::Int(n)) => Some(format!(
                "{} received in the period",
                count(*n, "email", "emails")
            )),
            ("sharepoint_active_file_count", Evidence::Int(n)) => Some(format!(
                "{} in the period",
                count(*n, "active file", "active files")
            )),
            ("sharepoint_total_file_count", Evidence::Int(n)) => {
                Some(format!("{} on the site", count(*n, "file", "files")))
            }
            ("yammer_posted_message_count", Evidence::Int(n)) => Some(format!(
                "{} posted in the period",
                count(*n, "Yammer message", "Yammer messages")
            )),
            ("yammer_read_message_count", Evidence::Int(n)) => Some(format!(
                "{} read in the period",
                count(*n, "Yammer message", "Yammer messages")
            )),
            ("yammer_liked_message_count", Evidence::Int(n)) => Some(format!(
                "{} liked in the period",
                count(*n, "Yammer message", "Yammer messages")
            )),
            ("teams_channel_messages_count", Evidence::Int(n)) => Some(format!(
                "{} in the period",
                count(*n, "Teams channel message", "Teams channel messages")
            )),
            ("teams_meetings_organized_count", Evidence::Int(n)) => Some(format!(
                "{} organised in the period",
                count(*n, "Teams meeting", "Teams meetings")
            )),
            ("group_type", Evidence::Text(kind)) => Some(format!("{} group", kind.to_lowercase())),
            ("is_deleted", Evidence::Bool(true)) => Some("deleted".to_owned()),
            ("owner_principal_name", Evidence::Null) => Some("no owner".to_owned()),
            (
                "is_deleted"
                | "owner_principal_name"
                | "group_display_name"
                | "group_id"
                | "report_refresh_date"
                | "report_period"
                | "is_concealed"
                | "line",
                _,
            ) => None,
            (other, found) => Some(generic_figure(other, found)),
        };
        words.extend(phrase);
    }
    words
}

/// `guest share: 0.75`, `deleted storage: 1.2 TB` for a field without
/// words of its own.
fn generic_figure(name: &str, value: &Evidence) -> String {
    let label = name.replace('_', " ");
    let bytes = name.ends_with("bytes") || name.ends_with("byte");
    let shown = match value {
        Evidence::Null => "unknown".to_owned(),
        Evidence::Bool(b) => (if *b { "yes" } else { "no" }).to_owned(),
        Evidence::Int(n) if bytes => format_bytes(*n),
        Evidence::Int(n) => n.to_string(),
        Evidence::Float(x) => format!("{}", (x * 100.0).round() / 100.0),
        Evidence::Text(text) => text.clone(),
    };
    let label = label
        .trim_end_matches(" bytes")
        .trim_end_matches(" byte")
        .to_owned();
    format!("{label}: {shown}")
}

/// `1 day`, `412 days`.
fn count(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The CSV attachments for an email that does not list everything: every
/// finding, and every expiring exemption when some are not listed; each cut
/// at `limit` bytes. Cells are neutralised as `--format csv` writes them,
/// so a group name cannot run as a spreadsheet formula.
pub(crate) fn attachments(digest: &Digest, listed_everything: (bool, bool), limit: usize) -> Files {
    if limit == 0 {
        return Vec::new();
    }
    let day = digest
        .scan
        .report_refresh_date
        .map(|d| d.to_string())
        .unwrap_or_else(|| digest.scan.scanned_at.strftime("%Y-%m-%d").to_string());
    let mut files = Vec::new();
    if !listed_everything.0 {
        let header = [
            "status",
            "severity",
            "rule",
            "rule_title",
            "group_name",
            "group_id",
            "owner",
            "message",
            "figures",
            "evidence",
            "first_seen",
        ];
        let rows = digest.items.iter().map(|item| {
            vec![
                status_text(item.status).to_owned(),
                item.severity.to_string(),
                item.rule.clone(),
                digest.rule_title(&item.rule).to_owned(),
                item.group_name.clone().unwrap_or_default(),
                item.group_id.clone().unwrap_or_default(),
                item.owner.clone().unwrap_or_default(),
                item.message.clone(),
                figures(&item.evidence).join("; "),
                item.evidence.to_line(),
                item.first_seen.map(|d| d.to_string()).unwrap_or_default(),
            ]
        });
        let name = format!("groupwarden-findings-{day}.csv");
        files.push(csv_file(
            name,
            "findings",
            &header,
            rows,
            digest.items.len(),
            limit,
        ));
    }
    if !listed_everything.1 {
        let header = ["rule", "rule_title", "group", "reason", "expires"];
        let rows = digest.expiring_exemptions.iter().map(|e| {
            vec![
                e.rule.clone(),
                digest.rule_title(&e.rule).to_owned(),
                e.group.clone(),
                e.reason.clone(),
                e.expires.to_string(),
            ]
        });
        let name = format!("groupwarden-expiring-exemptions-{day}.csv");
        let total = digest.expiring_exemptions.len();
        files.push(csv_file(
            name,
            "expiring exemptions",
            &header,
            rows,
            total,
            limit,
        ));
    }
    files
}

/// One CSV file of `rows` (UTF-8 with a byte order mark, so Excel reads
/// names with accents right), stopping before the row that would pass
/// `limit` bytes.
fn csv_file(
    filename: String,
    what: &'static str,
    header: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
    total: usize,
    limit: usize,
) -> (Attachment, AttachmentNote) {
    let mut content = "\u{feff}".as_bytes().to_vec();
    content.extend(csv_line(header.iter().copied()));
    let mut written = 0;
    for row in rows {
        let line = csv_line(row.iter().map(|cell| csv_cell(cell)));
        if content.len() + line.len() > limit {
            break;
        }
        content.extend(line);
        written += 1;
    }
    let note = AttachmentNote {
        filename: filename.clone(),
        what,
        rows: written,
        total,
        cut: written < total,
        limit: format_bytes(limit as i64),
    };
    let attachment = Attachment {
        filename,
        content_type: "text/csv; charset=utf-8",
        content,
    };
    (attachment, note)
}

/// One CSV record, quoted as needed, ending in CRLF (RFC 4180).
fn csv_line<S: AsRef<str>>(cells: impl Iterator<Item = S>) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let cells: Vec<String> = cells.map(|c| c.as_ref().to_owned()).collect();
    writer
        .write_record(&cells)
        .expect("writing to memory cannot fail");
    writer.into_inner().expect("writing to memory cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(pairs: &[(&str, Evidence)]) -> EvidenceMap {
        let mut map = EvidenceMap::default();
        for (name, value) in pairs {
            map.set((*name).into(), value.clone());
        }
        map
    }

    #[test]
    fn figures_read_as_words() {
        let words = figures(&evidence(&[
            ("is_deleted", Evidence::Bool(false)),
            ("days_since_activity", Evidence::Int(412)),
            ("last_activity_date", Evidence::Text("2025-10-11".into())),
            ("external_member_count", Evidence::Int(3)),
            ("member_count", Evidence::Int(1)),
            (
                "exchange_mailbox_storage_used_byte",
                Evidence::Int(2_100_000_000),
            ),
            ("report_period", Evidence::Int(30)),
            ("guest_share", Evidence::Float(0.756)),
        ]));
        assert_eq!(
            words,
            [
                "last activity 412 days ago (on 2025-10-11)",
                "3 external members",
                "1 member",
                "mailbox 2.1 GB",
                "guest share: 0.76",
            ]
        );
        assert_eq!(
            figures(&evidence(&[("days_since_activity", Evidence::Null)])),
            ["no activity in the report period"]
        );
    }

    #[test]
    fn the_headline_counts_groups_or_all_findings_when_a_cap_cut_the_list() {
        let mut digest = crate::notify::sample::sample_digest(false);
        // The sample lists 4 of 5 findings.
        assert_eq!(headline(&digest), "5 findings need attention");
        digest.capped = None;
        // Three groups with open findings; the resolved one does not count.
        assert_eq!(headline(&digest), "3 groups need attention");
        digest
            .items
            .retain(|item| item.status == ItemStatus::Resolved);
        digest.counts = Counts::of_items(&digest.items);
        assert_eq!(headline(&digest), "1 finding resolved");
        assert_eq!(status_text(ItemStatus::Reopened), "flagged again");
    }

    #[test]
    fn links_only_real_group_ids_in_the_tenant_s_cloud() {
        let id = "01C48E08-8b1e-4bd4-9d43-0e3f7f1d0a55";
        assert_eq!(
            group_link(Cloud::Global, id).unwrap(),
            "https://entra.microsoft.com/#view/Microsoft_AAD_IAM/GroupDetailsMenuBlade/~/Overview/groupId/01c48e08-8b1e-4bd4-9d43-0e3f7f1d0a55"
        );
        assert!(
            group_link(Cloud::Usgov, id)
                .unwrap()
                .starts_with("https://portal.azure.us/#view/")
        );
        assert!(
            group_link(Cloud::China, id)
                .unwrap()
                .starts_with("https://portal.azure.cn/#view/")
        );
        assert_eq!(
            group_link(Cloud::Global, "00000000-0000-0000-0000-000000000000"),
            None
        );
        assert_eq!(group_link(Cloud::Global, "x\"><script>"), None);
        assert_eq!(
            group_link(Cloud::Global, "01c48e08x8b1e-4bd4-9d43-0e3f7f1d0a55"),
            None
        );
    }

    #[test]
    fn the_csv_is_cut_at_the_limit_and_cells_cannot_start_a_formula() {
        let rows = (0..100).map(|n| vec![format!("=HYPERLINK(\"http://evil\",\"{n}\")")]);
        let (file, note) = csv_file("f.csv".into(), "findings", &["name"], rows, 100, 500);
        assert!(file.content.len() <= 500);
        assert!(note.cut && note.rows > 0 && note.rows < 100, "{note:?}");
        let text = String::from_utf8(file.content).unwrap();
        assert!(text.starts_with("\u{feff}name\r\n\"'=HYPERLINK("), "{text}");
    }
}
