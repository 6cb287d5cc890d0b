//! Access tokens for Graph.
//!
//! [`TokenSource`] is all the Graph client knows about credentials, so
//! other kinds (managed identity, workload identity federation) can be
//! added beside [`ClientCredentials`] without touching the request code.
//!
//! Why the client-credentials grant is written here rather than taken from
//! `azure_identity`: that crate refuses an authority that is not
//! `https://`, which rules out plain-HTTP loopback servers standing in for
//! Microsoft Entra in tests (and some TLS-terminating proxies) unless its
//! transport is replaced; the grant itself is one form POST. Owning it
//! also keeps the token endpoint's error text (the `AADSTS…` code and
//! description) intact for the user.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use reqwest::blocking::Client;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::assertion::ASSERTION_TYPE;
use super::config::{Credential, GraphSettings};
use super::error::{Endpoint, SourceError, TokenError, redact};
use super::graph::read_error_body;
use crate::retry::retry_after;

/// Refresh a token this long before it expires (or at half its
/// lifetime, for short-lived tokens).
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// Gives bearer tokens for Graph.
pub(crate) trait TokenSource: Send + Sync {
    /// A token valid for a while yet: the cached one, or a new one.
    fn token(&self) -> Result<SecretString, SourceError>;
    /// Forgets the cached token (Graph refused it).
    fn invalidate(&self);
}

/// The OAuth2 client-credentials grant with a client secret, a
/// certificate or a federated token, caching the token until shortly before it expires.
pub(crate) struct ClientCredentials {
    http: Client,
    endpoint: reqwest::Url,
    client_id: String,
    scope: String,
    credential: Credential,
    cache: Mutex<Option<CachedToken>>,
}

struct CachedToken {
    token: SecretString,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: SecretString,
    /// Seconds; some servers send it as a string.
    expires_in: Option<Seconds>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Seconds {
    Number(u64),
    Text(String),
}

impl Seconds {
    fn value(&self) -> Option<u64> {
        match self {
            Seconds::Number(n) => Some(*n),
            Seconds::Text(text) => text.trim().parse().ok(),
        }
    }
}

#[derive(Deserialize, Default)]
struct TokenErrorAnswer {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    correlation_id: Option<String>,
}

impl ClientCredentials {
    /// The grant for `settings`, sending requests with `http`.
    pub(crate) fn new(
        http: Client,
        settings: &GraphSettings,
    ) -> Result<ClientCredentials, SourceError> {
        let endpoint = format!(
            "{}/{}/oauth2/v2.0/token",
            settings.authority_url, settings.tenant_id
        );
        let endpoint = reqwest::Url::parse(&endpoint).map_err(|e| SourceError::Config {
            key: "authority_url",
            message: format!("makes a bad token URL: {e}"),
        })?;
        Ok(ClientCredentials {
            http,
            endpoint,
            client_id: settings.client_id.clone(),
            scope: format!("{}/.default", settings.graph_url),
            credential: settings.credential.clone(),
            cache: Mutex::new(None),
        })
    }

    fn request_token(&self) -> Result<CachedToken, SourceError> {
        let assertion;
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "client_credentials"),
            ("client_id", &self.client_id),
            ("scope", &self.scope),
        ];
        match &self.credential {
            Credential::Secret(secret) => form.push(("client_secret", secret.expose_secret())),
            Credential::Certificate(certificate) => {
                assertion = certificate.assertion(
                    &self.client_id,
                    self.endpoint.as_str(),
                    SystemTime::now(),
                )?;
                form.push(("client_assertion_type", ASSERTION_TYPE));
                form.push(("client_assertion", assertion.expose_secret()));
            }
            Credential::FederatedToken(path) => {
                assertion = super::config::read_federated_token(path)?;
                form.push(("client_assertion_type", ASSERTION_TYPE));
                form.push(("client_assertion", assertion.expose_secret()));
            }
        }
        tracing::debug!(client_id = %self.client_id, "requesting an access token");
        let requested_at = Instant::now();
        let response = self
            .http
            .post(self.endpoint.clone())
            .form(&form)
            .send()
            .map_err(|e| SourceError::transport(Endpoint::Token, &self.endpoint, e))?;
        let status = response.status();
        // What was sent and must not come back in a message.
        let sent_secrets: Vec<&str> = form
            .iter()
            .filter(|(name, _)| matches!(*name, "client_secret" | "client_assertion"))
            .map(|(_, value)| *value)
            .collect();
        if !status.is_success() {
            return Err(token_error(response, &sent_secrets));
        }
        let answer: TokenAnswer = response.json().map_err(|e| {
            SourceError::Token(TokenError {
                status: status.as_u16(),
                code: String::new(),
                description: redact(
                    &format!("the answer is not a token: {}", super::error::describe(e)),
                    &sent_secrets,
                ),
                correlation_id: None,
                retry_after: None,
            })
        })?;
        let lifetime =
            Duration::from_secs(answer.expires_in.and_then(|s| s.value()).unwrap_or(3599));
        tracing::debug!(expires_in_s = lifetime.as_secs(), "got an access token");
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        Ok(CachedToken {
            token: answer.access_token,
            refresh_at: requested_at + lifetime - margin,
        })
    }
}

/// The endpoint's refusal, with every text it sent back redacted: an
/// endpoint (or a proxy before it) may echo the request body, secret and
/// all.
fn token_error(response: reqwest::blocking::Response, sent_secrets: &[&str]) -> SourceError {
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers());
    let body = read_error_body(response);
    let answer: TokenErrorAnswer = serde_json::from_str(&body).unwrap_or_default();
    // The description carries "\r\nTrace ID: …" lines: keep them on one line.
    let description = answer
        .error_description
        .split(['\r', '\n'])
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let redact = |text: &str| redact(text, sent_secrets);
    SourceError::Token(TokenError {
        status,
        code: redact(&answer.error),
        description: redact(&description),
        correlation_id: answer.correlation_id.as_deref().map(redact),
        retry_after,
    })
}

impl TokenSource for ClientCredentials {
    fn token(&self) -> Result<SecretString, SourceError> {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(cached) = cache.as_ref().filter(|c| Instant::now() < c.refresh_at) {
            return Ok(cached.token.clone());
        }
        let fresh = self.request_token()?;
        let token = fresh.token.clone();
        *cache = Some(fresh);
        Ok(token)
    }

    fn invalidate(&self) {
        *self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }
}
