//! A channel ready to use: its configuration checked, its rule globs
//! compiled and its templates loaded. [`validate`] builds them all from
//! the configuration file and lists every problem at once.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::config::LoadedConfig;
use crate::source::cloud::Cloud;

use super::config::{
    ChannelConfig, ChannelKind, GROUP_OWNERS, Recipients, SmtpTls, is_loopback_host,
};
use super::render::{RenderError, render};
use super::route::Planned;
use super::sample::sample_digest;
use super::templates::Templates;

/// The Graph endpoint graph-mail uses unless `graph_url` says otherwise.
pub const GRAPH_URL: &str = "https://graph.microsoft.com";

/// A checked `[[notify]]` channel.
#[derive(Clone, Debug)]
pub struct Channel {
    config: ChannelConfig,
    rules: GlobSet,
    exclude_rules: GlobSet,
    templates: Templates,
    password_file: Option<PathBuf>,
    secret_file: Option<PathBuf>,
    tenant: TenantInfo,
}

/// What emails say about the tenant, from the `[source]` section.
#[derive(Clone, Debug, Default)]
pub(crate) struct TenantInfo {
    /// `[source] tenant_name`.
    pub(crate) name: Option<String>,
    /// `[source] tenant_id` when it is a domain (`contoso.onmicrosoft.com`).
    pub(crate) domain: Option<String>,
    /// `[source] cloud`: which admin portal links point at.
    pub(crate) cloud: Cloud,
}

impl TenantInfo {
    /// What messages about `scan` call the tenant when it has a name: the
    /// scan's own (one of several `[[tenants]]`), else `[source]
    /// tenant_name`. Email and chat both ask here.
    pub(crate) fn name_for<'a>(&'a self, scan: &'a super::ScanInfo) -> Option<&'a str> {
        scan.tenant.as_deref().or(self.name.as_deref())
    }

    fn of(loaded: &LoadedConfig) -> TenantInfo {
        let Some(source) = &loaded.config.source else {
            return TenantInfo::default();
        };
        let given = |text: &Option<String>| {
            text.as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
        };
        TenantInfo {
            name: given(&source.tenant_name),
            domain: given(&source.tenant_id).filter(|id| id.contains('.')),
            cloud: source.cloud,
        }
    }
}

impl Channel {
    /// The channel's `name`, else its `type`: how logs, the outbox and
    /// `notify --test NAME` refer to it.
    pub fn name(&self) -> &str {
        self.config.name()
    }

    /// The channel's `[[notify]]` section as configured.
    pub fn config(&self) -> &ChannelConfig {
        &self.config
    }

    /// The channel's templates: the built-ins with its `template_dir` applied.
    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    /// The tenant as `[source]` describes it, for emails.
    pub(crate) fn tenant(&self) -> &TenantInfo {
        &self.tenant
    }

    /// `password_file`, relative to the config file's folder.
    pub fn password_file(&self) -> Option<&std::path::Path> {
        self.password_file.as_deref()
    }

    /// `secret_file`, relative to the config file's folder.
    pub fn secret_file(&self) -> Option<&std::path::Path> {
        self.secret_file.as_deref()
    }

    /// Whether findings of `rule` go through this channel.
    pub fn admits_rule(&self, rule: &str) -> bool {
        self.rules.is_match(rule) && !self.exclude_rules.is_match(rule)
    }

    /// The addresses a test message goes to: `to`, or `fallback_to` for an
    /// owner-routed channel (there is no owner to test with).
    pub fn test_recipient(&self) -> Option<String> {
        match &self.config.to {
            Some(Recipients::Addresses(list)) => Some(list.join(", ")),
            Some(Recipients::GroupOwners) if !self.config.fallback_to.is_empty() => {
                Some(self.config.fallback_to.join(", "))
            }
            Some(Recipients::GroupOwners) => None,
            None => Some(self.target()),
        }
    }

    /// A webhook's endpoint without its path, which may hold a key.
    pub fn target(&self) -> String {
        match (&self.config.url, &self.config.url_env) {
            (Some(url), _) => url.redacted(),
            (None, Some(env)) => format!("${env}"),
            (None, None) => self.config.kind.as_str().to_owned(),
        }
    }

    fn build(config: &ChannelConfig, loaded: &LoadedConfig) -> Result<Channel, Vec<String>> {
        let mut problems = check_keys(config);
        let rules = globs("rules", &config.rules)
            .map_err(|p| problems.push(p))
            .ok();
        let exclude_rules = globs("exclude_rules", &config.exclude_rules)
            .map_err(|p| problems.push(p))
            .ok();
        let template_dir = config
            .template_dir
            .as_deref()
            .map(|dir| loaded.resolve(dir));
        let templates = Templates::load(template_dir.as_deref())
            .map_err(|e| problems.push(e.to_string()))
            .ok();
        match (rules, exclude_rules, templates) {
            (Some(rules), Some(exclude_rules), Some(templates)) if problems.is_empty() => {
                let channel = Channel {
                    config: config.clone(),
                    rules,
                    exclude_rules,
                    templates,
                    password_file: config.password_file.as_deref().map(|p| loaded.resolve(p)),
                    secret_file: config.secret_file.as_deref().map(|p| loaded.resolve(p)),
                    tenant: TenantInfo::of(loaded),
                };
                channel.try_templates().map_err(|e| vec![e.to_string()])?;
                Ok(channel)
            }
            _ => Err(problems),
        }
    }

    /// Renders the sample digest (and a test message) the way this
    /// channel would, so a template that fails on real data fails now.
    fn try_templates(&self) -> Result<(), RenderError> {
        for test in [false, true] {
            let planned = Planned {
                channel: self.name().to_owned(),
                recipient: "someone@example.com".into(),
                digest: sample_digest(test),
                delivery_id: None,
            };
            render(self, &planned)?;
        }
        Ok(())
    }
}

/// The `[[notify]]` sections are not usable; every problem is listed.
#[derive(Debug, thiserror::Error)]
pub struct InvalidChannels {
    /// The configuration file, when the configuration came from one.
    pub file: Option<PathBuf>,
    /// Every problem found, each naming its channel and key.
    pub problems: Vec<String>,
}

impl fmt::Display for InvalidChannels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "config file {}: ", file.display())?,
            None => f.write_str("configuration: ")?,
        }
        f.write_str(&self.problems.join("; "))
    }
}

/// Checks every `[[notify]]` channel of the configuration (keys that fit
/// the type, addresses, URLs, rule globs, templates, unique names) and
/// returns them ready for [`super::plan`] and [`super::deliver()`].
///
/// Secrets are not read here: `groupwarden validate` may run where they
/// are not set. Delivery reports a missing one by name.
pub fn validate(loaded: &LoadedConfig) -> Result<Vec<Channel>, InvalidChannels> {
    let mut problems = Vec::new();
    let mut channels = Vec::new();
    for (index, config) in loaded.config.notify.iter().enumerate() {
        let label = format!("[[notify]] #{} `{}`", index + 1, config.name());
        match Channel::build(config, loaded) {
            Ok(channel) => channels.push(channel),
            Err(found) => problems.extend(found.into_iter().map(|p| format!("{label}: {p}"))),
        }
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for config in &loaded.config.notify {
        *seen.entry(config.name()).or_default() += 1;
    }
    for (name, count) in seen.into_iter().filter(|(_, count)| *count > 1) {
        problems.push(format!(
            "{count} [[notify]] channels are named `{name}`: give each a unique `name`"
        ));
    }
    if problems.is_empty() {
        Ok(channels)
    } else {
        Err(InvalidChannels {
            file: loaded.path.clone(),
            problems,
        })
    }
}

fn globs(key: &str, patterns: &[String]) -> Result<GlobSet, String> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        set.add(Glob::new(pattern).map_err(|e| format!("`{key}`: {e}"))?);
    }
    set.build().map_err(|e| format!("`{key}`: {e}"))
}

/// Problems with which keys are given and what they hold.
fn check_keys(config: &ChannelConfig) -> Vec<String> {
    let kind = config.kind;
    let mut problems: Vec<String> = config
        .keys_given()
        .into_iter()
        .filter(|key| !kind.keys().contains(key))
        .map(|key| format!("`{key}` does not apply to {} channels", kind.as_str()))
        .collect();
    if config.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        problems.push("`name` is empty".into());
    }
    if config.timeout().is_zero() {
        problems.push("`timeout` must be more than zero".into());
    }
    if config
        .exemption_contact
        .as_deref()
        .is_some_and(|c| c.trim().is_empty())
    {
        problems.push("`exemption_contact` is empty".into());
    }
    if config.max_findings_per_owner == 0 {
        problems.push("`max_findings_per_owner` must be at least 1".into());
    }
    match kind {
        ChannelKind::Email => check_email(config, &mut problems),
        ChannelKind::GraphMail => check_graph_mail(config, &mut problems),
        ChannelKind::Webhook => check_webhook(config, &mut problems),
    }
    problems
}

fn check_email(config: &ChannelConfig, problems: &mut Vec<String>) {
    match config.smtp_host.as_deref() {
        None => problems.push("`smtp_host` is required for email channels".into()),
        Some(host) if config.smtp_tls() == SmtpTls::None && !is_loopback_host(host) => problems.push(format!(
            "`tls = \"none\"` is only allowed for an SMTP server on this machine, not `{host}`: use starttls or tls"
        )),
        Some(_) => {}
    }
    match &config.from {
        None => problems.push("`from` is required for email channels".into()),
        Some(from) if from.parse::<lettre::message::Mailbox>().is_err() => problems.push(format!(
            "`from`: `{from}` is not an address (`Name <user@domain>` or `user@domain`)"
        )),
        Some(_) => {}
    }
    match (
        &config.username,
        &config.password_env,
        &config.password_file,
    ) {
        (_, Some(_), Some(_)) => {
            problems.push("give `password_env` or `password_file`, not both".into())
        }
        (Some(_), None, None) => {
            problems.push("`username` needs `password_env` or `password_file`".into())
        }
        (None, Some(_), _) | (None, _, Some(_)) => {
            problems.push("a password needs a `username`".into())
        }
        _ => {}
    }
    check_recipients(config, problems);
}

fn check_graph_mail(config: &ChannelConfig, problems: &mut Vec<String>) {
    match &config.from {
        None => {
            problems.push("`from` (the sending mailbox) is required for graph-mail channels".into())
        }
        Some(from) if from.parse::<lettre::Address>().is_err() => problems.push(format!(
            "`from`: `{from}` is not a mailbox address (user@domain)"
        )),
        Some(_) => {}
    }
    if let Some(url) = &config.graph_url
        && let Err(problem) = check_http_url(url)
    {
        problems.push(format!("`graph_url`: {problem}"));
    }
    check_recipients(config, problems);
}

fn check_webhook(config: &ChannelConfig, problems: &mut Vec<String>) {
    match (&config.url, &config.url_env) {
        (None, None) => problems.push("`url` or `url_env` is required for webhook channels".into()),
        (Some(_), Some(_)) => problems.push("give `url` or `url_env`, not both".into()),
        (Some(url), None) => {
            if let Err(problem) = check_http_url(url.expose()) {
                problems.push(format!("`url` ({}): {problem}", url.redacted()));
            }
        }
        (None, Some(_)) => {}
    }
    if config.secret_env.is_some() && config.secret_file.is_some() {
        problems.push("give `secret_env` or `secret_file`, not both".into());
    }
    for (name, value) in &config.headers {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            problems.push(format!("`headers`: `{name}` is not a valid header name"));
        } else if name.to_ascii_lowercase().starts_with("x-groupwarden-")
            || name.eq_ignore_ascii_case("content-type")
        {
            problems.push(format!("`headers`: `{name}` is set by groupwarden"));
        }
        if reqwest::header::HeaderValue::from_str(value).is_err() {
            problems.push(format!(
                "`headers`: the value of `{name}` is not a valid header value"
            ));
        }
    }
}

fn check_recipients(config: &ChannelConfig, problems: &mut Vec<String>) {
    match &config.to {
        None => problems.push(format!(
            "`to` is required: a list of addresses or \"{GROUP_OWNERS}\""
        )),
        Some(Recipients::Addresses(list)) if list.is_empty() => {
            problems.push("`to` is an empty list".into())
        }
        Some(Recipients::Addresses(list)) => check_addresses("to", list, problems),
        Some(Recipients::GroupOwners) => {}
    }
    if !config.fallback_to.is_empty() && !config.routes_to_owners() {
        problems.push(format!(
            "`fallback_to` only applies with `to = \"{GROUP_OWNERS}\"`"
        ));
    }
    check_addresses("fallback_to", &config.fallback_to, problems);
}

fn check_addresses(key: &str, addresses: &[String], problems: &mut Vec<String>) {
    for address in addresses {
        if address.parse::<lettre::message::Mailbox>().is_err() {
            problems.push(format!("`{key}`: `{address}` is not an email address"));
        }
    }
}

/// An https URL, or http on this machine (tests, local relays).
pub fn check_http_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if url.host_str().is_some_and(is_loopback_host) => Ok(url),
        "http" => Err(
            "must use https (http is only allowed on this machine: localhost, 127.0.0.1, ::1)"
                .into(),
        ),
        other => Err(format!("unsupported scheme `{other}`; use https")),
    }
}
