//! The `[[notify]]` sections: one per channel.
//!
//! A channel is a flat table whose `type` decides which keys apply; the
//! serde type accepts every key any channel may use, and
//! [`super::validate`] then rejects keys that do not fit the channel's
//! type, so a misplaced key is an error rather than silently ignored.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::duration::{ConfigDuration, one_spelling};
use crate::engine::finding::Severity;
use crate::retry::RetryPolicy;

/// One `[[notify]]` channel.
#[derive(Clone, Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct ChannelConfig {
    /// The channel's name in logs, the outbox and `groupwarden notify
    /// --test NAME` [default: the `type`]. Give one when two channels
    /// share a type.
    #[serde(default)]
    pub name: Option<String>,
    /// `email` (SMTP), `graph-mail` (Microsoft Graph sendMail, for tenants
    /// where SMTP basic auth is off) or `webhook`.
    #[serde(rename = "type")]
    pub kind: ChannelKind,

    /// Only findings of this severity or higher are announced [default: info].
    #[serde(default = "lowest_severity")]
    pub min_severity: Severity,
    /// Rule ids (globs such as `inactive-*`) whose findings this channel
    /// announces [default: `["*"]`].
    #[serde(default = "every_rule")]
    pub rules: Vec<String>,
    /// Rule ids (globs) left out even when `rules` matches them.
    #[serde(default)]
    pub exclude_rules: Vec<String>,
    /// Also announce findings that were resolved since the last scan.
    #[serde(default)]
    pub include_resolved: bool,
    /// Email and graph-mail: a list of addresses, or `"group-owners"` to
    /// send each group owner one message about their own groups only.
    #[serde(default)]
    pub to: Option<Recipients>,
    /// With `to = "group-owners"`: addresses that receive the findings on
    /// groups without a usable owner. Without it those findings are not
    /// sent on this channel (an admin channel usually covers them).
    #[serde(default)]
    pub fallback_to: Vec<String>,
    /// With `to = "group-owners"`: the most findings one owner's message
    /// lists; the rest are counted as "and N more".
    #[serde(default = "default_max_findings_per_owner")]
    pub max_findings_per_owner: usize,
    /// With `to = "group-owners"`: a safety cap on owner messages per scan.
    /// Above it no owner is mailed and `fallback_to` receives the whole
    /// list instead: a misfiring rule must not mail the whole company.
    #[serde(default = "default_max_owner_messages")]
    pub max_owner_messages: usize,

    /// Email and graph-mail: the most findings of one rule an email lists
    /// (each rule's heading still gives its true total); the full list
    /// goes out as a CSV attachment [default: 25]. Lowered further when
    /// the HTML would pass about 100 KB.
    #[serde(default)]
    pub max_listed_per_rule: Option<usize>,
    /// Email and graph-mail: the largest CSV attachment, in bytes; a longer
    /// list is cut (the message says so). 0 attaches nothing [default:
    /// 5000000].
    #[serde(default)]
    pub max_attachment_bytes: Option<usize>,
    /// Email and graph-mail: whom owners ask to exempt a group (a name, an
    /// address or an https link), in "ask … to exempt it" [default: your
    /// Microsoft 365 administrators].
    #[serde(default)]
    pub exemption_contact: Option<String>,

    /// Email: the SMTP server.
    #[serde(default)]
    pub smtp_host: Option<String>,
    /// Email: the SMTP port [default: 587 for starttls, 465 for tls, 25 for none].
    #[serde(default)]
    pub smtp_port: Option<u16>,
    /// Email: `starttls` (upgrade on the submission port), `tls` (implicit
    /// TLS) or `none` (only for an SMTP server on this machine) [default: starttls].
    #[serde(default)]
    pub tls: Option<SmtpTls>,
    /// Email: the SMTP login; needs `password_env` or `password_file`.
    #[serde(default)]
    pub username: Option<String>,
    /// Email: the environment variable holding the SMTP password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// Email: a file holding the SMTP password (trailing newline ignored);
    /// relative to the config file.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Email: the sender, `Name <address>` or `address`. Graph-mail: the
    /// mailbox that sends (its user principal name or address).
    #[serde(default)]
    pub from: Option<String>,

    /// Graph-mail: the Microsoft Graph endpoint [default:
    /// `https://graph.microsoft.com`].
    #[serde(default)]
    pub graph_url: Option<String>,

    /// Webhook: where digests are posted. https, except on this machine.
    /// Chat webhook URLs carry their own key: prefer `url_env`.
    #[serde(default)]
    pub url: Option<SecretUrl>,
    /// Webhook: the environment variable holding the URL.
    #[serde(default)]
    pub url_env: Option<String>,
    /// Webhook: `json` (groupwarden's versioned payload), `slack` (Block
    /// Kit) or `teams` (an Adaptive Card for a Teams Workflows webhook)
    /// [default: json].
    #[serde(default)]
    pub format: Option<WebhookFormat>,
    /// Webhook: the environment variable holding the HMAC-SHA256 signing
    /// key; when set, requests carry `X-Groupwarden-Timestamp` and
    /// `X-Groupwarden-Signature`.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Webhook: a file holding the signing key; relative to the config file.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Webhook: extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,

    /// A folder whose templates replace the built-in ones of the same
    /// name (`email-subject.txt`, `email.txt`, `email.html`, `slack.json`,
    /// `teams.json`); relative to the config file.
    #[serde(default)]
    pub template_dir: Option<PathBuf>,
    /// How long one attempt may take (`"30s"`) [default: 30s]. Older
    /// spelling: `timeout_seconds`, a number of seconds.
    #[serde(default)]
    timeout: Option<ConfigDuration>,
    /// `timeout` in seconds, as it was once written.
    #[serde(default)]
    timeout_seconds: Option<u64>,
    /// Further attempts after a failed one (server errors, throttling,
    /// network trouble; a refusal such as a bad address is not retried).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The wait before the first retry (`"500ms"`); it doubles with each
    /// retry, up to a minute [default: 1s]. Older spelling:
    /// `retry_backoff_ms`, a number of milliseconds.
    #[serde(default)]
    retry_backoff: Option<ConfigDuration>,
    /// `retry_backoff` in milliseconds, as it was once written.
    #[serde(default)]
    retry_backoff_ms: Option<u64>,
    /// The longest `Retry-After` honoured (`"2m"`); a server asking for
    /// longer fails the delivery, which is then left for the next run
    /// [default: 5m]. Older spelling: `max_retry_after_seconds`, a number
    /// of seconds.
    #[serde(default)]
    max_retry_after: Option<ConfigDuration>,
    /// `max_retry_after` in seconds, as it was once written.
    #[serde(default)]
    max_retry_after_seconds: Option<u64>,
    /// How many delivery runs (scans, `groupwarden notify --retry`) may
    /// try a queued message before it becomes a dead letter; a refusal
    /// (SMTP 5xx, HTTP 4xx other than 408/425/429) makes it one at once
    /// [default: 5].
    #[serde(default = "default_max_runs")]
    pub max_runs: u32,
}

impl<'de> Deserialize<'de> for ChannelConfig {
    /// The derived reading (`remote = "Self"`), then each duration key
    /// settled with its older spelling.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ChannelConfig, D::Error> {
        let mut config = ChannelConfig::deserialize(deserializer)?;
        config.settle_old_spellings().map_err(de::Error::custom)?;
        Ok(config)
    }
}

/// Defaults of the duration keys.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_secs(1);
const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// The longest backoff wait, whatever `retry_backoff` says.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(60);

fn lowest_severity() -> Severity {
    Severity::Info
}
fn every_rule() -> Vec<String> {
    vec!["*".to_owned()]
}
fn default_max_findings_per_owner() -> usize {
    50
}
fn default_max_owner_messages() -> usize {
    100
}
/// How many findings of one rule an email lists unless
/// `max_listed_per_rule` says otherwise.
pub const DEFAULT_MAX_LISTED_PER_RULE: usize = 25;
/// The largest CSV attachment unless `max_attachment_bytes` says
/// otherwise (5 MB: well within what mail servers and Graph's sendMail,
/// 4 MB of attachment after base64 aside, accept).
pub const DEFAULT_MAX_ATTACHMENT_BYTES: usize = 5_000_000;

fn default_retries() -> u32 {
    3
}
fn default_max_runs() -> u32 {
    5
}

impl ChannelConfig {
    /// Moves each older spelling into its key; both given is an error.
    fn settle_old_spellings(&mut self) -> Result<(), String> {
        self.timeout = one_spelling(
            "timeout",
            self.timeout,
            "timeout_seconds",
            self.timeout_seconds.take().map(ConfigDuration::from_secs),
        )?;
        self.retry_backoff = one_spelling(
            "retry_backoff",
            self.retry_backoff,
            "retry_backoff_ms",
            self.retry_backoff_ms
                .take()
                .map(ConfigDuration::from_millis),
        )?;
        self.max_retry_after = one_spelling(
            "max_retry_after",
            self.max_retry_after,
            "max_retry_after_seconds",
            self.max_retry_after_seconds
                .take()
                .map(ConfigDuration::from_secs),
        )?;
        Ok(())
    }

    /// How long one attempt may take.
    pub fn timeout(&self) -> Duration {
        self.timeout.map_or(DEFAULT_TIMEOUT, Duration::from)
    }

    /// How deliveries on this channel retry: `retries` more attempts,
    /// doubling from `retry_backoff` up to a minute, no jitter (one
    /// sender has no crowd to spread), and no `Retry-After` longer than
    /// `max_retry_after`.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.retries.saturating_add(1),
            deadline: None,
            initial_delay: self
                .retry_backoff
                .map_or(DEFAULT_RETRY_BACKOFF, Duration::from),
            max_delay: MAX_RETRY_BACKOFF,
            jitter: false,
            max_retry_after: Some(
                self.max_retry_after
                    .map_or(DEFAULT_MAX_RETRY_AFTER, Duration::from),
            ),
        }
    }

    /// The `name`, else the type.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.kind.as_str())
    }

    /// `tls`, or its default.
    pub fn smtp_tls(&self) -> SmtpTls {
        self.tls.unwrap_or_default()
    }

    /// `format`, or its default.
    pub fn webhook_format(&self) -> WebhookFormat {
        self.format.unwrap_or_default()
    }

    /// `max_listed_per_rule`, or its default.
    pub fn max_listed_per_rule(&self) -> usize {
        self.max_listed_per_rule
            .unwrap_or(DEFAULT_MAX_LISTED_PER_RULE)
    }

    /// `max_attachment_bytes`, or its default.
    pub fn max_attachment_bytes(&self) -> usize {
        self.max_attachment_bytes
            .unwrap_or(DEFAULT_MAX_ATTACHMENT_BYTES)
    }

    /// Whether each owner gets their own message.
    pub fn routes_to_owners(&self) -> bool {
        matches!(self.to, Some(Recipients::GroupOwners))
    }

    /// The keys given in the file, to reject those the channel's type
    /// does not use.
    pub(crate) fn keys_given(&self) -> Vec<&'static str> {
        let given = [
            ("to", self.to.is_some()),
            ("fallback_to", !self.fallback_to.is_empty()),
            ("smtp_host", self.smtp_host.is_some()),
            ("smtp_port", self.smtp_port.is_some()),
            ("tls", self.tls.is_some()),
            ("username", self.username.is_some()),
            ("password_env", self.password_env.is_some()),
            ("password_file", self.password_file.is_some()),
            ("from", self.from.is_some()),
            ("max_listed_per_rule", self.max_listed_per_rule.is_some()),
            ("max_attachment_bytes", self.max_attachment_bytes.is_some()),
            ("exemption_contact", self.exemption_contact.is_some()),
            ("graph_url", self.graph_url.is_some()),
            ("url", self.url.is_some()),
            ("url_env", self.url_env.is_some()),
            ("format", self.format.is_some()),
            ("secret_env", self.secret_env.is_some()),
            ("secret_file", self.secret_file.is_some()),
            ("headers", !self.headers.is_empty()),
        ];
        given
            .into_iter()
            .filter(|(_, set)| *set)
            .map(|(key, _)| key)
            .collect()
    }
}

/// How a channel delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChannelKind {
    /// `email`: an SMTP server sends the mail.
    Email,
    /// `graph-mail`: Microsoft Graph's sendMail sends it, as the `from`
    /// mailbox, for tenants where SMTP basic auth is off.
    GraphMail,
    /// `webhook`: an HTTPS POST of JSON (groupwarden's payload, Slack or
    /// Teams).
    Webhook,
}

impl ChannelKind {
    /// The `type` as written in the configuration: `email`, `graph-mail` or
    /// `webhook`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Email => "email",
            ChannelKind::GraphMail => "graph-mail",
            ChannelKind::Webhook => "webhook",
        }
    }

    /// The keys, beyond the common ones, this type of channel uses.
    pub(crate) fn keys(self) -> &'static [&'static str] {
        match self {
            ChannelKind::Email => &[
                "to",
                "fallback_to",
                "smtp_host",
                "smtp_port",
                "tls",
                "username",
                "password_env",
                "password_file",
                "from",
                "max_listed_per_rule",
                "max_attachment_bytes",
                "exemption_contact",
            ],
            ChannelKind::GraphMail => &[
                "to",
                "fallback_to",
                "from",
                "graph_url",
                "max_listed_per_rule",
                "max_attachment_bytes",
                "exemption_contact",
            ],
            ChannelKind::Webhook => &[
                "url",
                "url_env",
                "format",
                "secret_env",
                "secret_file",
                "headers",
            ],
        }
    }
}

/// How the SMTP connection is encrypted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS; refuses servers that cannot.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// No encryption: only for an SMTP server on this machine.
    None,
}

impl SmtpTls {
    /// The usual port of this encryption, the `smtp_port` default: 587
    /// (STARTTLS), 465 (TLS) or 25 (none).
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        }
    }
}

/// What a webhook body looks like.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// groupwarden's versioned JSON payload.
    #[default]
    Json,
    /// A Slack message in Block Kit.
    Slack,
    /// An Adaptive Card as Microsoft Teams Workflows expect it.
    Teams,
}

/// Who receives an email channel's messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipients {
    /// These addresses receive every message.
    Addresses(Vec<String>),
    /// Each group owner receives their own groups' findings.
    GroupOwners,
}

/// The word that selects owner routing in `to`.
pub const GROUP_OWNERS: &str = "group-owners";

impl<'de> Deserialize<'de> for Recipients {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Recipients, D::Error> {
        struct RecipientsVisitor;

        impl<'de> Visitor<'de> for RecipientsVisitor {
            type Value = Recipients;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a list of addresses or \"{GROUP_OWNERS}\"")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Recipients, E> {
                if text == GROUP_OWNERS {
                    Ok(Recipients::GroupOwners)
                } else {
                    Err(E::custom(format!(
                        "expected a list of addresses or \"{GROUP_OWNERS}\", found \"{text}\""
                    )))
                }
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Recipients, A::Error> {
                let mut addresses = Vec::new();
                while let Some(address) = seq.next_element::<String>()? {
                    addresses.push(address);
                }
                Ok(Recipients::Addresses(addresses))
            }
        }

        deserializer.deserialize_any(RecipientsVisitor)
    }
}

/// A URL that may carry a key (Slack and Teams webhook URLs do): never
/// shown whole in logs, errors or `Debug` output.
#[derive(Clone)]
pub struct SecretUrl(SecretString);

impl SecretUrl {
    /// Wraps a URL read from the config or an environment variable.
    pub fn new(url: String) -> SecretUrl {
        SecretUrl(url.into())
    }

    /// The whole URL, key included: only for sending to it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// `scheme://host[:port]/…`: enough to tell channels apart.
    pub fn redacted(&self) -> String {
        match reqwest::Url::parse(self.expose()) {
            Ok(url) => {
                let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
                format!(
                    "{}://{}{port}/…",
                    url.scheme(),
                    url.host_str().unwrap_or("")
                )
            }
            Err(_) => "<invalid url>".to_owned(),
        }
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({})", self.redacted())
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SecretUrl, D::Error> {
        String::deserialize(deserializer).map(SecretUrl::new)
    }
}

/// Whether `host` names this machine: the only place plain-text SMTP and
/// http webhooks are allowed.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        notify: Vec<ChannelConfig>,
    }

    fn parse(text: &str) -> Result<Vec<ChannelConfig>, String> {
        toml::from_str::<File>(text)
            .map(|f| f.notify)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_issue_example_parses() {
        let channels = parse(
            r#"
[[notify]]
name = "governance-team"
type = "email"
smtp_host = "smtp.office365.com"
smtp_port = 587
tls = "starttls"
username = "alerts@contoso.com"
password_env = "GROUPWARDEN_SMTP_PASSWORD"
from = "groupwarden <alerts@contoso.com>"
to = ["m365-admins@contoso.com"]
min_severity = "medium"
rules = ["*"]
include_resolved = true

[[notify]]
name = "owners"
type = "email"
to = "group-owners"
rules = ["inactive-groups"]

[[notify]]
type = "graph-mail"
from = "alerts@contoso.com"
to = ["m365-admins@contoso.com"]

[[notify]]
type = "webhook"
url = "https://hooks.example.com/groupwarden"
format = "json"
secret_env = "GROUPWARDEN_WEBHOOK_SECRET"
headers = { "X-Team" = "it" }
"#,
        )
        .unwrap();
        assert_eq!(channels[0].min_severity, Severity::Medium);
        assert_eq!(channels[1].to, Some(Recipients::GroupOwners));
        assert_eq!(channels[2].name(), "graph-mail");
        assert_eq!(channels[3].headers["X-Team"], "it");
    }

    #[test]
    fn a_misspelt_recipient_keyword_is_an_error_with_its_place() {
        let err = parse("[[notify]]\ntype = \"email\"\nto = \"group-owner\"\n").unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        assert!(
            err.contains(r#"expected a list of addresses or "group-owners""#),
            "{err}"
        );
    }

    fn one(text: &str) -> Result<ChannelConfig, String> {
        parse(&format!("[[notify]]\ntype = \"webhook\"\n{text}")).map(|mut c| c.remove(0))
    }

    #[test]
    fn duration_keys_default() {
        let channel = one("").unwrap();
        assert_eq!(channel.timeout(), Duration::from_secs(30));
        let policy = channel.retry_policy();
        assert_eq!(policy.max_attempts, 4);
        assert_eq!(policy.initial_delay, Duration::from_secs(1));
        assert_eq!(policy.max_delay, Duration::from_secs(60));
        assert_eq!(policy.max_retry_after, Some(Duration::from_secs(300)));
        assert_eq!(policy.deadline, None);
    }

    #[test]
    fn duration_keys_take_durations() {
        let channel = one(
            "timeout = \"1m\"\nretries = 1\nretry_backoff = \"250ms\"\nmax_retry_after = \"2m\"\n",
        )
        .unwrap();
        assert_eq!(channel.timeout(), Duration::from_secs(60));
        let policy = channel.retry_policy();
        assert_eq!(policy.max_attempts, 2);
        assert_eq!(policy.initial_delay, Duration::from_millis(250));
        assert_eq!(policy.max_retry_after, Some(Duration::from_secs(120)));
    }

    #[test]
    fn the_old_spellings_keep_their_units() {
        let channel =
            one("timeout_seconds = 10\nretry_backoff_ms = 10\nmax_retry_after_seconds = 5\n")
                .unwrap();
        assert_eq!(channel.timeout(), Duration::from_secs(10));
        let policy = channel.retry_policy();
        assert_eq!(policy.initial_delay, Duration::from_millis(10));
        assert_eq!(policy.max_retry_after, Some(Duration::from_secs(5)));
    }

    #[test]
    fn a_key_and_its_old_spelling_together_are_an_error() {
        for (new, old) in [
            ("timeout = \"5s\"", "timeout_seconds = 5"),
            ("retry_backoff = \"5s\"", "retry_backoff_ms = 5"),
            ("max_retry_after = \"5s\"", "max_retry_after_seconds = 5"),
        ] {
            let err = one(&format!("{new}\n{old}\n")).unwrap_err();
            let key = new.split(' ').next().unwrap();
            let old_key = old.split(' ').next().unwrap();
            assert!(err.contains(&format!("`{key}` and `{old_key}`")), "{err}");
            assert!(err.contains("line 1"), "{err}");
        }
    }

    #[test]
    fn unknown_and_bad_duration_keys_are_still_errors() {
        let err = one("timeout_secs = 5\n").unwrap_err();
        assert!(err.contains("unknown field `timeout_secs`"), "{err}");
        let err = one("timeout = \"soon\"\n").unwrap_err();
        assert!(
            err.contains("line 3") && err.contains("found \"soon\""),
            "{err}"
        );
        let err = one("retry_backoff_ms = \"5s\"\n").unwrap_err();
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn webhook_urls_never_show_whole() {
        let url = SecretUrl::new("https://hooks.slack.com:443/services/T0/B0/XXXXSECRET".into());
        assert_eq!(url.redacted(), "https://hooks.slack.com/…");
        assert!(!format!("{url:?}").contains("SECRET"));
    }

    #[test]
    fn loopback_hosts() {
        for host in ["localhost", "127.0.0.1", "127.3.2.1", "::1", "[::1]"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["smtp.office365.com", "10.0.0.1", "localhost.example.com"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
