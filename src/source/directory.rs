//! The tenant's Microsoft 365 groups from Microsoft Graph (`[directory]`):
//! every owner, creation date, Teams, visibility, mail, label, expiry.
//!
//! ```text
//!  GET {graph}/v1.0/groups?$filter=groupTypes/any(c:c eq 'Unified')
//!        &$select=id,displayName,mail,createdDateTime,visibility,
//!                 resourceProvisioningOptions,expirationDateTime,assignedLabels
//!        &$expand=owners($select=id,mail,userPrincipalName)&$top=999
//!    └─ @odata.nextLink … (same host only: the request carries the token)
//!  GET {graph}/v1.0/groups/{id}/owners?$select=id,mail,userPrincipalName&$top=999
//!    └─ only for a group whose expanded owners hit Graph's cap of 20
//! ```
//!
//! Graph returns at most 20 objects of an expanded relationship, so a
//! group that shows 20 owners may have more: its owners are asked for on
//! their own (paged too). Per-group requests rather than JSON batching
//! (`/$batch`): they are rare (a group with 20+ owners), each goes
//! through the same retries and error handling as every other request,
//! and a throttled part of a batch would need its own retry loop.
//!
//! Every request goes through the shared retry policy (`[source]`'s
//! retries, `Retry-After` honoured) with the same token source as the
//! report; the app needs the Graph application permission
//! `Group.Read.All` (see `docs/graph.md`). Bounded: at most
//! `max_groups` groups and `max_page_bytes` per answer.

use std::io::Read;
use std::sync::Arc;

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::config::GraphSettings;
use super::error::{Endpoint, GraphError, SourceError};
use super::graph::{http_client, parse_graph_error, read_error_body};
use super::token::{TokenSource, token_source};
use crate::duration::ConfigDuration;
use crate::report::directory::{Directory, GroupFacts};
use crate::retry::{RetryPolicy, Transient, retry_after, retry_blocking};

/// Graph's cap on the objects of an expanded relationship.
const EXPAND_LIMIT: usize = 20;

/// What the groups request selects.
const GROUP_FIELDS: &str = "id,displayName,mail,createdDateTime,visibility,resourceProvisioningOptions,expirationDateTime,assignedLabels";

/// What an owner request selects.
const OWNER_FIELDS: &str = "id,mail,userPrincipalName";

/// The `[directory]` section: join the tenant's directory to the report.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// Fetch the directory and join it to every scan's rows.
    #[serde(default)]
    pub enabled: bool,
    /// A cached directory younger than this is used as it is.
    #[serde(default = "default_max_age")]
    pub max_age: ConfigDuration,
    /// More groups than this fails the fetch (a runaway paging loop, the
    /// wrong tenant) rather than growing without end.
    #[serde(default = "default_max_groups")]
    pub max_groups: usize,
    /// The largest answer (one page) read, in bytes.
    #[serde(default = "default_max_page_bytes")]
    pub max_page_bytes: u64,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        DirectoryConfig {
            enabled: false,
            max_age: default_max_age(),
            max_groups: default_max_groups(),
            max_page_bytes: default_max_page_bytes(),
        }
    }
}

fn default_max_age() -> ConfigDuration {
    ConfigDuration::from_secs(24 * 3600)
}

fn default_max_groups() -> usize {
    500_000
}

fn default_max_page_bytes() -> u64 {
    64 * 1024 * 1024
}

/// Fetching the directory failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The request failed before Graph answered (network, sign-in).
    #[error("fetching the directory ([directory]) from Microsoft Graph: {0}")]
    Source(SourceError),
    /// Graph answered the groups request with an error.
    #[error("fetching the directory ([directory]) from Microsoft Graph: {}{}", graph_text(.0), graph_hint(.0))]
    Graph(Box<GraphError>),
    /// Retrying a throttled or failed request stopped.
    #[error("{last} (gave up after {attempts} attempt(s): {reason})")]
    GaveUp {
        /// Attempts made, the first included.
        attempts: u32,
        /// Why retrying stopped.
        reason: String,
        /// The last attempt's error.
        last: Box<DirectoryError>,
    },
    /// An answer was not the JSON Graph sends, or broke a bound.
    #[error("fetching the directory ([directory]) from Microsoft Graph: {0}")]
    BadAnswer(String),
    /// `[directory] enabled` without Graph credentials.
    #[error("[directory] enabled: {0}")]
    NoCredentials(String),
}

/// Graph's answer, without the report request's own advice.
fn graph_text(error: &GraphError) -> String {
    let mut text = format!("Microsoft Graph answered HTTP {}", error.status);
    let message = super::error::redact(&error.message, &[]);
    for part in [&error.code, &message] {
        if !part.is_empty() {
            text.push_str(": ");
            text.push_str(part);
        }
    }
    if let Some(id) = &error.request_id {
        text.push_str(&format!(" (request-id {id})"));
    }
    text
}

fn graph_hint(error: &GraphError) -> &'static str {
    match error.status {
        401 | 403 => {
            ". The app registration needs the Microsoft Graph *application* permission Group.Read.All, \
             with admin consent granted (Entra admin center > App registrations > your app > API permissions > \
             Grant admin consent); see docs/graph.md"
        }
        429 => {
            ". Graph throttles directory reads per app and tenant: the request is retried as [source]'s retry settings allow"
        }
        _ => "",
    }
}

impl From<SourceError> for DirectoryError {
    fn from(error: SourceError) -> Self {
        match error {
            SourceError::Graph(graph) => DirectoryError::Graph(Box::new(graph)),
            other => DirectoryError::Source(other),
        }
    }
}

impl Transient for DirectoryError {
    fn is_transient(&self) -> bool {
        match self {
            DirectoryError::Source(error) => error.is_transient(),
            DirectoryError::Graph(error) => error.status == 429 || error.status >= 500,
            _ => false,
        }
    }

    fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            DirectoryError::Source(error) => error.retry_after(),
            DirectoryError::Graph(error) => error.retry_after,
            _ => None,
        }
    }
}

/// Runs `attempt` under the retry policy; a retried failure is logged as
/// a warning, and one the policy stopped retrying says why.
fn with_retries<T>(
    policy: &RetryPolicy,
    attempt: impl FnMut(u32) -> Result<T, DirectoryError>,
) -> Result<T, DirectoryError> {
    let warn = |error: &DirectoryError, attempt: u32, wait: std::time::Duration| {
        tracing::warn!(
            attempt,
            wait_ms = wait.as_millis() as u64,
            "{error}; trying again"
        );
    };
    retry_blocking(policy, attempt, warn).map_err(|stopped| match stopped.gave_up {
        Some(why) => DirectoryError::GaveUp {
            attempts: stopped.attempts,
            reason: why.to_string(),
            last: Box::new(stopped.error),
        },
        None => stopped.error,
    })
}

/// One page of `/groups` or `/groups/{id}/owners`.
#[derive(Deserialize)]
#[serde(bound = "T: Deserialize<'de>")]
struct Page<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphGroup {
    id: String,
    mail: Option<String>,
    created_date_time: Option<String>,
    visibility: Option<String>,
    #[serde(default)]
    resource_provisioning_options: Vec<String>,
    expiration_date_time: Option<String>,
    #[serde(default)]
    assigned_labels: Vec<AssignedLabel>,
    #[serde(default)]
    owners: Vec<GraphOwner>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssignedLabel {
    display_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphOwner {
    mail: Option<String>,
    user_principal_name: Option<String>,
}

/// Fetches the directory with the report's Graph settings.
pub(crate) struct DirectoryClient {
    api: Client,
    tokens: Arc<dyn TokenSource>,
    graph_url: String,
    retry: RetryPolicy,
    config: DirectoryConfig,
}

impl DirectoryClient {
    /// A client signing in as `settings` says.
    pub(crate) fn new(
        settings: &GraphSettings,
        config: DirectoryConfig,
    ) -> Result<DirectoryClient, DirectoryError> {
        let api = http_client(settings)?;
        let tokens = token_source(api.clone(), settings)?;
        Ok(DirectoryClient {
            api,
            tokens: Arc::from(tokens),
            graph_url: settings.graph_url.clone(),
            retry: settings.retry,
            config,
        })
    }

    /// Every Microsoft 365 group with its owners, fetched now.
    pub(crate) fn fetch(&self) -> Result<Directory, DirectoryError> {
        let fetched_at = crate::state::lifecycle::time_text(jiff::Timestamp::now());
        let first = self.url(&format!(
            "/v1.0/groups?$filter=groupTypes/any(c:c%20eq%20'Unified')&$select={GROUP_FIELDS}&$expand=owners($select={OWNER_FIELDS})&$top=999"
        ))?;
        let mut groups = Vec::new();
        let mut pages = 0u32;
        self.each_page(first, |page: Page<GraphGroup>| {
            pages += 1;
            for group in page.value {
                if groups.len() >= self.config.max_groups {
                    return Err(DirectoryError::BadAnswer(format!(
                        "more than {} groups ([directory] max_groups); raise it if the tenant has that many",
                        self.config.max_groups
                    )));
                }
                groups.push(group);
            }
            Ok(())
        })?;
        let mut facts = Vec::with_capacity(groups.len());
        let mut asked = 0u32;
        for mut group in groups {
            let owners = if group.owners.len() >= EXPAND_LIMIT {
                asked += 1;
                self.all_owners(&group.id)?
            } else {
                std::mem::take(&mut group.owners)
            };
            let group_facts = facts_of(&group, &owners);
            facts.push((group.id, group_facts));
        }
        tracing::info!(
            groups = facts.len(),
            pages,
            owner_requests = asked,
            "fetched the directory from Microsoft Graph"
        );
        Ok(Directory::new(facts, fetched_at))
    }

    /// Every owner of group `id`, past the cap of an expansion.
    fn all_owners(&self, id: &str) -> Result<Vec<GraphOwner>, DirectoryError> {
        let id: String = url_segment(id);
        let url = self.url(&format!(
            "/v1.0/groups/{id}/owners?$select={OWNER_FIELDS}&$top=999"
        ))?;
        let mut owners = Vec::new();
        self.each_page(url, |page: Page<GraphOwner>| {
            owners.extend(page.value);
            Ok(())
        })?;
        Ok(owners)
    }

    /// Requests `url` and every `@odata.nextLink` after it; a chain of
    /// links longer than any real listing (more pages than `max_groups`
    /// could fill one by one) stops instead of running on.
    fn each_page<T: serde::de::DeserializeOwned>(
        &self,
        mut url: reqwest::Url,
        mut take: impl FnMut(Page<T>) -> Result<(), DirectoryError>,
    ) -> Result<(), DirectoryError> {
        let max_pages = self.config.max_groups.saturating_add(1);
        for _ in 0..max_pages {
            let body = self.get_with_retries(&url)?;
            let page: Page<T> = serde_json::from_slice(&body).map_err(|e| {
                DirectoryError::BadAnswer(format!("an answer is not Graph's JSON: {e}"))
            })?;
            let next = page.next_link.clone();
            take(page)?;
            match next {
                Some(link) => url = self.next_link(&link, &url)?,
                None => return Ok(()),
            }
        }
        Err(DirectoryError::BadAnswer(format!(
            "more than {max_pages} pages of @odata.nextLink ([directory] max_groups)"
        )))
    }

    fn url(&self, path_and_query: &str) -> Result<reqwest::Url, DirectoryError> {
        reqwest::Url::parse(&format!("{}{path_and_query}", self.graph_url)).map_err(|e| {
            DirectoryError::Source(SourceError::Config {
                key: "graph_url",
                message: format!("makes a bad /groups URL: {e}"),
            })
        })
    }

    /// A next link, followed only on the Graph host: it carries the token.
    fn next_link(
        &self,
        link: &str,
        current: &reqwest::Url,
    ) -> Result<reqwest::Url, DirectoryError> {
        let url = reqwest::Url::parse(link)
            .map_err(|_| SourceError::BadNextLink("is not an absolute URL".into()))?;
        if url.origin() != current.origin() {
            return Err(SourceError::BadNextLink(format!(
                "points to {} rather than to Microsoft Graph at {}: not followed, so that the token does not leave Graph",
                url.origin().ascii_serialization(),
                current.origin().ascii_serialization()
            ))
            .into());
        }
        Ok(url)
    }

    /// One answer's body, retried as the policy allows.
    fn get_with_retries(&self, url: &reqwest::Url) -> Result<Vec<u8>, DirectoryError> {
        let mut too_large = None;
        let result = with_retries(&self.retry, |attempt| {
            tracing::debug!(attempt, path = url.path(), "requesting the directory");
            let response = self.try_get(url)?;
            match read_bounded(response, self.config.max_page_bytes) {
                Ok(Some(body)) => Ok(body),
                Ok(None) => {
                    too_large = Some(self.config.max_page_bytes);
                    Ok(Vec::new())
                }
                Err(error) => Err(DirectoryError::Source(SourceError::Transport {
                    endpoint: Endpoint::Graph,
                    host: url.host_str().unwrap_or("?").to_owned(),
                    message: format!("reading the answer: {error}"),
                })),
            }
        })?;
        if let Some(limit) = too_large {
            return Err(DirectoryError::BadAnswer(format!(
                "an answer is larger than {limit} bytes ([directory] max_page_bytes)"
            )));
        }
        Ok(result)
    }

    fn try_get(&self, url: &reqwest::Url) -> Result<Response, SourceError> {
        let token = self.tokens.token()?;
        let response = self
            .api
            .get(url.clone())
            .bearer_auth(token.expose_secret())
            .send()
            .map_err(|e| SourceError::transport(Endpoint::Graph, url, e))?;
        let status = response.status();
        if status == StatusCode::OK {
            return Ok(response);
        }
        if status == StatusCode::UNAUTHORIZED {
            self.tokens.invalidate();
        }
        let retry = retry_after(response.headers());
        let mut error = parse_graph_error(status.as_u16(), &read_error_body(response));
        error.retry_after = retry;
        Err(SourceError::Graph(error))
    }
}

/// The body, or `None` when it is longer than `limit`.
fn read_bounded(response: Response, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    response.take(limit + 1).read_to_end(&mut body)?;
    Ok((body.len() as u64 <= limit).then_some(body))
}

/// A group id as one path segment: ids are GUIDs, anything else escaped.
fn url_segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// What rules see of a group.
fn facts_of(group: &GraphGroup, owners: &[GraphOwner]) -> GroupFacts {
    let present = |text: &Option<String>| {
        text.as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    };
    GroupFacts {
        owners: owners
            .iter()
            .filter_map(|o| present(&o.mail).or_else(|| present(&o.user_principal_name)))
            .collect(),
        owner_count: owners.len() as i64,
        created_date: group.created_date_time.as_deref().and_then(utc_day),
        is_team: group
            .resource_provisioning_options
            .iter()
            .any(|o| o == "Team"),
        visibility: present(&group.visibility),
        group_mail: present(&group.mail),
        sensitivity_label: group
            .assigned_labels
            .first()
            .and_then(|label| present(&label.display_name)),
        expiration_date: group.expiration_date_time.as_deref().and_then(utc_day),
    }
}

/// `2026-11-01T09:30:00Z` → `2026-11-01` (the UTC day).
fn utc_day(text: &str) -> Option<String> {
    let time: jiff::Timestamp = text.parse().ok()?;
    Some(time.to_zoned(jiff::tz::TimeZone::UTC).date().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_becomes_the_facts_rules_read() {
        let group: GraphGroup = serde_json::from_str(
            r##"{"id":"g1","displayName":"Sales","mail":"sales@contoso.com",
                "createdDateTime":"2026-11-01T23:30:00Z","visibility":"Private",
                "resourceProvisioningOptions":["Team"],"expirationDateTime":null,
                "assignedLabels":[{"labelId":"x","displayName":"Confidential"}],
                "owners":[{"@odata.type":"#microsoft.graph.user","id":"u1","mail":null,"userPrincipalName":"ann@contoso.com"},
                          {"@odata.type":"#microsoft.graph.user","id":"u2","mail":"bo@contoso.com","userPrincipalName":"bo@x"},
                          {"@odata.type":"#microsoft.graph.servicePrincipal","id":"s1"}]}"##,
        )
        .unwrap();
        let facts = facts_of(&group, &group.owners);
        assert_eq!(facts.owners, ["ann@contoso.com", "bo@contoso.com"]);
        assert_eq!(facts.owner_count, 3);
        assert_eq!(facts.created_date.as_deref(), Some("2026-11-01"));
        assert!(facts.is_team);
        assert_eq!(facts.sensitivity_label.as_deref(), Some("Confidential"));
        assert_eq!(facts.expiration_date, None);
    }

    #[test]
    fn ids_are_one_path_segment() {
        assert_eq!(url_segment("ab-12"), "ab-12");
        assert_eq!(url_segment("a/b?c"), "a%2Fb%3Fc");
    }
}
