//! Turning a planned message into what is sent: an email's subject, text
//! and HTML, or a webhook body.
//!
//! Templates see a [`MessageView`]: the digest's scan, counts, exemptions
//! and cap note as they are, the items both flat (`items`) and grouped by
//! rule (`rules`, most severe first), a one-line `summary` of the counts,
//! and `more`, the number of items left out to respect a chat service's
//! size limit (templates then print "and N more"); likewise the expiring
//! exemptions listed and `more_exemptions`. A chat message lists findings
//! first, then exemptions, as many as fit.

use serde::Serialize;

use crate::engine::finding::{EvidenceMap, Severity};

use super::channel::Channel;
use super::config::{ChannelKind, WebhookFormat};
use super::digest::{Capped, Counts, Digest, DigestItem, ExpiringExemption, ItemStatus, ScanInfo};
use super::email_view;
pub use super::email_view::Attachment;
use super::route::Planned;
use super::templates::{self, TemplateError};

/// Slack: at most 50 blocks per message; the whole message is kept well
/// under its 40,000-character text limit.
pub const SLACK_MAX_BLOCKS: usize = 50;
/// Slack: the most bytes a message may take; counting bytes keeps it
/// within Slack's 40,000-character text limit.
pub const SLACK_MAX_BYTES: usize = 40_000;
/// Teams: a message (card included) must stay under about 28 KB.
pub const TEAMS_MAX_BYTES: usize = 27_000;
/// The JSON payload: most receivers accept 1 MB bodies.
pub const JSON_MAX_BYTES: usize = 1_000_000;

/// What one planned message becomes.
#[derive(Clone, Debug, PartialEq)]
pub enum Rendered {
    /// An email (email and graph-mail channels).
    Email(EmailContent),
    /// A body to POST to a webhook.
    Webhook(WebhookBody),
}

/// The parts of one rendered email.
#[derive(Clone, Debug, PartialEq)]
pub struct EmailContent {
    /// The subject line, on one line: whitespace runs become one space.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
    /// Files sent with it: the CSV of every finding when the body does
    /// not list them all.
    pub attachments: Vec<Attachment>,
    /// The `List-Id` header's value (RFC 2919), `groupwarden
    /// <groupwarden.contoso.com>`, so mail rules can file the messages.
    pub list_id: String,
}

/// The body of one webhook request.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookBody {
    /// Which receiver it is written for (`json`, `slack` or `teams`).
    pub format: WebhookFormat,
    /// The JSON text to send, laid out as the template (or payload) has it.
    pub body: String,
}

/// A template failed, or rendered something unusable.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A template failed to render.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// A Slack or Teams template rendered text that is not JSON.
    #[error("template {template} did not render valid JSON: {error}")]
    NotJson {
        /// The template's file name, e.g. `slack.json`.
        template: String,
        /// What the JSON parser objected to.
        error: serde_json::Error,
    },
    /// A Slack template rendered a message Slack would refuse.
    #[error("template {template} rendered a message Slack would refuse: {problem}")]
    Slack {
        /// The template's file name, `slack.json`.
        template: String,
        /// What Slack would object to.
        problem: String,
    },
}

/// Renders `planned` the way `channel` sends it.
pub fn render(channel: &Channel, planned: &Planned) -> Result<Rendered, RenderError> {
    let config = channel.config();
    match config.kind {
        ChannelKind::Email | ChannelKind::GraphMail => {
            render_email(channel, planned).map(Rendered::Email)
        }
        ChannelKind::Webhook => {
            let body = match config.webhook_format() {
                WebhookFormat::Json => json_payload(planned)?,
                WebhookFormat::Slack => {
                    render_chat(channel, planned, templates::SLACK, slack_fits)?
                }
                WebhookFormat::Teams => render_chat(channel, planned, templates::TEAMS, |b| {
                    b.len() <= TEAMS_MAX_BYTES
                })?,
            };
            Ok(Rendered::Webhook(WebhookBody {
                format: config.webhook_format(),
                body,
            }))
        }
    }
}

fn render_email(channel: &Channel, planned: &Planned) -> Result<EmailContent, RenderError> {
    let config = channel.config();
    let digest = &planned.digest;
    let limit = match config.kind {
        ChannelKind::GraphMail => config
            .max_attachment_bytes()
            .min(email_view::GRAPH_MAIL_MAX_ATTACHMENT_BYTES),
        _ => config.max_attachment_bytes(),
    };
    let templates = channel.templates();
    let list_id = email_view::list_id(channel, planned);
    let mut cached: Option<((bool, bool), email_view::Files)> = None;
    let mut render = |per_rule: usize| -> Result<EmailContent, RenderError> {
        let listed = lists_everything(digest, per_rule);
        if cached.as_ref().is_none_or(|(key, _)| *key != listed) {
            cached = Some((listed, email_view::attachments(digest, listed, limit)));
        }
        let files = &cached.as_ref().expect("just filled").1;
        let view = email_view::email_view(channel, planned, per_rule, files);
        // A header cannot hold a line break, whatever a template produces.
        let subject = templates
            .render(templates::EMAIL_SUBJECT, &view)?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        Ok(EmailContent {
            subject,
            text: templates.render(templates::EMAIL_TEXT, &view)?,
            html: templates.render(templates::EMAIL_HTML, &view)?,
            attachments: files.iter().map(|(file, _)| file.clone()).collect(),
            list_id: list_id.clone(),
        })
    };
    let most = config.max_listed_per_rule();
    let full = render(most)?;
    if email_view::sent_size(&full.html) <= email_view::HTML_MAX_BYTES {
        return Ok(full);
    }
    // Fewer findings per rule until the HTML fits; the attachment has them all.
    let (mut low, mut high) = (0, most);
    let mut best = render(0)?;
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        let content = render(middle)?;
        if email_view::sent_size(&content.html) <= email_view::HTML_MAX_BYTES {
            low = middle;
            best = content;
        } else {
            high = middle;
        }
    }
    Ok(best)
}

/// Whether listing `per_rule` findings of each rule lists every finding,
/// and every expiring exemption.
fn lists_everything(digest: &Digest, per_rule: usize) -> (bool, bool) {
    let mut per: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for item in &digest.items {
        *per.entry(&item.rule).or_default() += 1;
    }
    (
        per.values().all(|&n| n <= per_rule),
        digest.expiring_exemptions.len() <= per_rule,
    )
}

/// A chat message holding as many items as fit, found by bisection.
fn render_chat(
    channel: &Channel,
    planned: &Planned,
    template: &str,
    fits: impl Fn(&str) -> bool,
) -> Result<String, RenderError> {
    let render = |shown: usize| -> Result<String, RenderError> {
        let mut view = MessageView::new(planned, shown);
        // Chat names the tenant as email does (its name, else its domain),
        // not the report's file.
        let tenant = channel.tenant();
        if let Some(name) = tenant
            .name_for(&planned.digest.scan)
            .or(tenant.domain.as_deref())
        {
            view.title = name;
        }
        let body = channel.templates().render(template, &view)?;
        // Sent as rendered (the template's layout and key order) once it is known to be JSON.
        serde_json::from_str::<serde::de::IgnoredAny>(&body).map_err(|error| {
            RenderError::NotJson {
                template: template.to_owned(),
                error,
            }
        })?;
        Ok(body)
    };
    largest_fitting(listable(&planned.digest), render, fits)
}

/// How many entries a message could list: findings, then expiring
/// exemptions.
fn listable(digest: &Digest) -> usize {
    digest.items.len() + digest.expiring_exemptions.len()
}

fn slack_fits(body: &str) -> bool {
    let blocks = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("blocks").and_then(|b| b.as_array()).map(Vec::len))
        .unwrap_or(0);
    blocks <= SLACK_MAX_BLOCKS && body.len() <= SLACK_MAX_BYTES
}

/// The rendering with the most items (out of `total`) that `fits`; with
/// none fitting, the one with no items at all.
fn largest_fitting(
    total: usize,
    render: impl Fn(usize) -> Result<String, RenderError>,
    fits: impl Fn(&str) -> bool,
) -> Result<String, RenderError> {
    let full = render(total)?;
    if fits(&full) {
        return Ok(full);
    }
    // Invariant: `low` items fit (or low is 0), `high` items do not.
    let (mut low, mut high) = (0, total);
    let mut best = render(0)?;
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        let body = render(middle)?;
        if fits(&body) {
            low = middle;
            best = body;
        } else {
            high = middle;
        }
    }
    Ok(best)
}

/// What templates see.
#[derive(Debug, Serialize)]
pub struct MessageView<'a> {
    /// The name of the channel sending the message.
    pub channel: &'a str,
    /// Who it goes to: email addresses separated by `, `, or a webhook's
    /// endpoint without its path.
    pub recipient: &'a str,
    /// The tenant's name, else the report's source.
    pub title: &'a str,
    /// The counts in words: `2 new, 1 reopened, 1 expiring exemption`.
    pub summary: String,
    /// Whether this is a `groupwarden notify --test` message.
    pub test: bool,
    /// groupwarden's version, e.g. for a footer.
    pub version: &'static str,
    /// Which scan the message is about.
    pub scan: &'a ScanInfo,
    /// How many findings changed; these cover every finding, shown or not.
    pub counts: &'a Counts,
    /// The items shown, most severe first.
    pub items: Vec<ItemView<'a>>,
    /// The same items grouped by rule.
    pub rules: Vec<RuleView<'a>>,
    /// Items left out for size.
    pub more: usize,
    /// Exemptions that run out soon, for someone to renew or drop: those
    /// listed.
    pub expiring_exemptions: &'a [ExpiringExemption],
    /// Expiring exemptions left out for size.
    pub more_exemptions: usize,
    /// Set when a cap shortened the list: how many items there were, how
    /// many are listed, and why.
    pub capped: Option<&'a Capped>,
}

/// The items of one rule, for templates that list findings by rule.
#[derive(Debug, Serialize)]
pub struct RuleView<'a> {
    /// The rule's id.
    pub rule: &'a str,
    /// How serious the rule rates its findings.
    pub severity: Severity,
    /// How many items the digest holds for the rule, shown or not: what a
    /// heading prints.
    pub total: usize,
    /// Its items shown, in the order of [`MessageView::items`]; empty when
    /// none fit, the rule is still listed so its total is not lost.
    pub items: Vec<ItemView<'a>>,
}

/// One item (a finding and why it is announced) as templates see it.
#[derive(Clone, Debug, Serialize)]
pub struct ItemView<'a> {
    /// Why it is announced: `new`, `reopened`, `reminder` or `resolved`.
    pub status: ItemStatus,
    /// The finding's stable key (`rule:group-id`): what receivers
    /// deduplicate on.
    pub key: &'a str,
    /// The id of the rule that raised it.
    pub rule: &'a str,
    /// How serious the rule rates it.
    pub severity: Severity,
    /// The group's name, else its id, else `tenant`.
    pub group: &'a str,
    /// The group's id; `None` for tenant-wide findings or when the report
    /// lacks or conceals it.
    pub group_id: Option<&'a str>,
    /// The group's display name; `None` for tenant-wide findings or when the
    /// report lacks or conceals it.
    pub group_name: Option<&'a str>,
    /// The owner's user principal name, when the report gives one.
    pub owner: Option<&'a str>,
    /// The finding in words, as the rule wrote it.
    pub message: &'a str,
    /// The named values behind the finding, in the order the rule gave them.
    pub evidence: &'a EvidenceMap,
    /// `name=value, …`, or empty.
    pub evidence_text: String,
    /// The report refresh date (`YYYY-MM-DD`) of the scan that first saw the
    /// finding, when known.
    pub first_seen: Option<String>,
}

impl<'a> MessageView<'a> {
    /// The view of `planned` listing its first `shown` entries: items
    /// first, then expiring exemptions.
    pub fn new(planned: &'a Planned, shown: usize) -> MessageView<'a> {
        let digest = &planned.digest;
        let items: Vec<ItemView<'a>> = digest.items.iter().take(shown).map(ItemView::new).collect();
        let exemptions_shown = shown
            .saturating_sub(items.len())
            .min(digest.expiring_exemptions.len());
        MessageView {
            channel: &planned.channel,
            recipient: &planned.recipient,
            title: digest.scan.title(),
            summary: summary(digest),
            test: digest.test,
            version: env!("CARGO_PKG_VERSION"),
            scan: &digest.scan,
            counts: &digest.counts,
            rules: group_by_rule(&digest.items, &items),
            more: digest.items.len() - items.len(),
            items,
            expiring_exemptions: &digest.expiring_exemptions[..exemptions_shown],
            more_exemptions: digest.expiring_exemptions.len() - exemptions_shown,
            capped: digest.capped.as_ref(),
        }
    }
}

impl<'a> ItemView<'a> {
    /// The view of `item`.
    pub(crate) fn new(item: &'a DigestItem) -> ItemView<'a> {
        ItemView {
            status: item.status,
            key: &item.key,
            rule: &item.rule,
            severity: item.severity,
            group: item.group_label(),
            group_id: item.group_id.as_deref(),
            group_name: item.group_name.as_deref(),
            owner: item.owner.as_deref(),
            message: &item.message,
            evidence: &item.evidence,
            evidence_text: item.evidence.to_line(),
            first_seen: item.first_seen.map(|d| d.to_string()),
        }
    }
}

/// Every rule of `all` with its true total, and the `shown` items (the
/// first ones of `all`) under it. Consecutive runs of one rule: items
/// arrive sorted most severe first, then by rule, so each rule forms one
/// run.
fn group_by_rule<'a>(all: &'a [DigestItem], shown: &[ItemView<'a>]) -> Vec<RuleView<'a>> {
    let mut groups: Vec<RuleView<'a>> = Vec::new();
    for (index, item) in all.iter().enumerate() {
        let same_rule = groups.last().is_some_and(|group| group.rule == item.rule);
        if !same_rule {
            groups.push(RuleView {
                rule: &item.rule,
                severity: item.severity,
                total: 0,
                items: Vec::new(),
            });
        }
        let group = groups.last_mut().expect("a group was just pushed");
        group.total += 1;
        if let Some(view) = shown.get(index) {
            group.items.push(view.clone());
        }
    }
    groups
}

/// `2 new, 1 reopened, 3 reminders`: the non-zero counts in words.
pub fn summary(digest: &Digest) -> String {
    let counts = &digest.counts;
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let parts: Vec<String> = [
        (counts.new, plural(counts.new, "new", "new")),
        (
            counts.reopened,
            plural(counts.reopened, "reopened", "reopened"),
        ),
        (
            counts.reminders,
            plural(counts.reminders, "reminder", "reminders"),
        ),
        (
            counts.resolved,
            plural(counts.resolved, "resolved", "resolved"),
        ),
        (
            counts.expiring_exemptions,
            plural(
                counts.expiring_exemptions,
                "expiring exemption",
                "expiring exemptions",
            ),
        ),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(_, text)| text)
    .collect();
    if digest.test {
        "test message".to_owned()
    } else if parts.is_empty() {
        "no changes".to_owned()
    } else {
        parts.join(", ")
    }
}

/// The `json` webhook payload, version 1 (documented in
/// docs/notifications.md; fields are only ever added within a version).
#[derive(Serialize)]
struct PayloadV1<'a> {
    version: u32,
    /// `digest`, or `test` for `groupwarden notify --test`.
    event: &'static str,
    channel: &'a str,
    /// The message's idempotency key, the same on every attempt and run.
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_id: Option<&'a str>,
    scan: &'a ScanInfo,
    counts: &'a Counts,
    findings: Vec<PayloadFinding<'a>>,
    /// Findings left out to keep the body under 1 MB.
    omitted: usize,
    expiring_exemptions: &'a [ExpiringExemption],
    capped: Option<&'a Capped>,
}

#[derive(Serialize)]
struct PayloadFinding<'a> {
    key: &'a str,
    status: ItemStatus,
    rule: &'a str,
    severity: Severity,
    group: PayloadGroup<'a>,
    message: &'a str,
    evidence: &'a EvidenceMap,
    first_seen: Option<jiff::civil::Date>,
}

#[derive(Serialize)]
struct PayloadGroup<'a> {
    id: Option<&'a str>,
    name: Option<&'a str>,
    owner: Option<&'a str>,
}

fn json_payload(planned: &Planned) -> Result<String, RenderError> {
    let digest = &planned.digest;
    let render = |shown: usize| -> Result<String, RenderError> {
        let findings: Vec<_> = digest
            .items
            .iter()
            .take(shown)
            .map(payload_finding)
            .collect();
        let payload = PayloadV1 {
            version: 1,
            event: if digest.test { "test" } else { "digest" },
            channel: &planned.channel,
            delivery_id: planned.delivery_id.as_deref(),
            scan: &digest.scan,
            counts: &digest.counts,
            omitted: digest.items.len() - findings.len(),
            findings,
            expiring_exemptions: &digest.expiring_exemptions,
            capped: digest.capped.as_ref(),
        };
        Ok(serde_json::to_string(&payload).expect("the payload serialises"))
    };
    largest_fitting(digest.items.len(), render, |body| {
        body.len() <= JSON_MAX_BYTES
    })
}

fn payload_finding(item: &DigestItem) -> PayloadFinding<'_> {
    PayloadFinding {
        key: &item.key,
        status: item.status,
        rule: &item.rule,
        severity: item.severity,
        group: PayloadGroup {
            id: item.group_id.as_deref(),
            name: item.group_name.as_deref(),
            owner: item.owner.as_deref(),
        },
        message: &item.message,
        evidence: &item.evidence,
        first_seen: item.first_seen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bisection_finds_the_most_items_that_fit() {
        let render = |shown: usize| Ok("x".repeat(shown * 10));
        let body = largest_fitting(100, render, |b| b.len() <= 375).unwrap();
        assert_eq!(body.len(), 370);
        let nothing_fits = largest_fitting(3, |n: usize| Ok("y".repeat(n + 1)), |_| false).unwrap();
        assert_eq!(nothing_fits, "y");
    }

    #[test]
    fn every_rule_keeps_its_true_total_when_items_are_left_out() {
        let mut digest = super::super::sample::sample_digest(false);
        let template = digest.items[0].clone();
        digest.items = (0..5)
            .map(|n| DigestItem {
                rule: if n < 3 {
                    "first".into()
                } else {
                    "second".into()
                },
                ..template.clone()
            })
            .collect();
        let shown: Vec<ItemView> = digest.items.iter().take(2).map(ItemView::new).collect();
        let rules = group_by_rule(&digest.items, &shown);
        let summary: Vec<_> = rules
            .iter()
            .map(|r| (r.rule, r.total, r.items.len()))
            .collect();
        assert_eq!(summary, [("first", 3, 2), ("second", 2, 0)]);
    }

    #[test]
    fn summary_names_only_what_changed() {
        let mut digest = super::super::sample::sample_digest(false);
        assert_eq!(
            summary(&digest),
            "1 new, 1 reopened, 1 reminder, 1 resolved, 1 expiring exemption"
        );
        digest.counts = Counts {
            new: 3,
            reminders: 2,
            ..Counts::default()
        };
        assert_eq!(summary(&digest), "3 new, 2 reminders");
        digest.counts = Counts::default();
        assert_eq!(summary(&digest), "no changes");
    }
    /// The channels a configuration's text defines.
    fn channels_of(toml: &str) -> Vec<Channel> {
        let config = crate::config::parse(toml).unwrap();
        let loaded = crate::config::LoadedConfig { config, path: None };
        super::super::channel::validate(&loaded).unwrap()
    }

    #[test]
    fn an_expired_exemption_is_said_to_have_expired_in_every_format() {
        let channels = channels_of(
            r#"
[[notify]]
name = "mail"
type = "email"
smtp_host = "localhost"
from = "gw@contoso.com"
to = ["admins@contoso.com"]

[[notify]]
name = "teams"
type = "webhook"
format = "teams"
url = "https://contoso.webhook.office.com/x"

[[notify]]
name = "slack"
type = "webhook"
format = "slack"
url = "https://hooks.slack.com/services/x"
"#,
        );
        let mut digest = super::super::sample::sample_digest(false);
        digest.expiring_exemptions[0].expired = true;
        let planned = Planned {
            channel: String::new(),
            recipient: "admins@contoso.com".into(),
            digest,
            delivery_id: None,
        };
        for channel in &channels {
            let text = match render(channel, &planned).unwrap() {
                Rendered::Email(email) => format!("{}\n{}", email.text, email.html),
                Rendered::Webhook(body) => body.body,
            };
            assert!(text.contains("expired on"), "{}: {text}", channel.name());
        }
    }

    #[test]
    fn chat_messages_name_the_tenant_not_the_report_file() {
        let channels = channels_of(
            r#"
[source]
type = "file"
tenant_name = "Contoso Ltd"

[[notify]]
name = "teams"
type = "webhook"
format = "teams"
url = "https://contoso.webhook.office.com/x"

[[notify]]
name = "slack"
type = "webhook"
format = "slack"
url = "https://hooks.slack.com/services/x"
"#,
        );
        let mut planned = Planned {
            channel: String::new(),
            recipient: String::new(),
            digest: super::super::sample::sample_digest(false),
            delivery_id: None,
        };
        // The scan's own tenant (one of several `[[tenants]]`) first, as in
        // email; else `[source] tenant_name`.
        for (scan_tenant, title) in [
            (Some("Fabrikam"), "groupwarden: Fabrikam"),
            (None, "groupwarden: Contoso Ltd"),
        ] {
            planned.digest.scan.tenant = scan_tenant.map(str::to_owned);
            for channel in &channels {
                let Rendered::Webhook(body) = render(channel, &planned).unwrap() else {
                    panic!("a webhook renders a body");
                };
                assert!(body.body.contains(title), "{}", body.body);
                assert!(
                    !body.body.contains(&planned.digest.scan.source),
                    "{}",
                    body.body
                );
            }
        }
    }
}
