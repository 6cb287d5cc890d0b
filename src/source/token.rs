//! Access tokens for Graph.
//!
//! [`TokenSource`] is all the Graph client knows about credentials:
//! [`token_source`] picks the client-credentials grant ([`ClientCredentials`]:
//! secret, certificate or federated token) or the managed identity
//! ([`super::managed_identity`]) from the settings, and both cache their
//! token in a [`TokenCache`].
//!
//! Why the client-credentials grant is written here rather than taken from
//! `azure_identity`: that crate refuses an authority that is not
//! `https://`, which rules out plain-HTTP loopback servers standing in for
//! Microsoft Entra in tests (and some TLS-terminating proxies) unless its
//! transport is replaced; the grant itself is one form POST. Owning it
//! also keeps the token endpoint's error text (the `AADSTS…` code and
//! description) intact for the user.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use reqwest::blocking::Client;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::assertion::ASSERTION_TYPE;
use super::assertion::CertificateCredential;
use super::config::{Credential, GraphSettings};
use super::error::{Endpoint, SourceError, TokenError, redact};
use super::graph::read_error_body;
use super::managed_identity::ManagedIdentityCredential;
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

/// The token source `settings` call for: the managed identity's
/// endpoint, or the client-credentials grant of the app registration.
/// `http` is the client the token endpoint is reached through (the
/// managed identity's endpoint, being local, has its own).
pub(crate) fn token_source(
    http: Client,
    settings: &GraphSettings,
) -> Result<Box<dyn TokenSource>, SourceError> {
    let app_credential = match &settings.credential {
        Credential::ManagedIdentity(identity) => {
            return Ok(Box::new(ManagedIdentityCredential::new(
                identity.clone(),
                &settings.graph_url,
                settings.connect_timeout,
                settings.stall_timeout,
            )?));
        }
        Credential::Secret(secret) => AppCredential::Secret(secret.clone()),
        Credential::Certificate(certificate) => AppCredential::Certificate(Arc::clone(certificate)),
        Credential::FederatedToken(path) => AppCredential::FederatedToken(path.clone()),
    };
    Ok(Box::new(ClientCredentials::new(
        http,
        settings,
        app_credential,
    )?))
}

/// The OAuth2 client-credentials grant with a client secret, a
/// certificate or a federated token, caching the token until shortly before it expires.
pub(crate) struct ClientCredentials {
    http: Client,
    endpoint: reqwest::Url,
    client_id: String,
    scope: String,
    credential: AppCredential,
    cache: TokenCache,
}

/// How an app registration proves who it is.
enum AppCredential {
    Secret(SecretString),
    Certificate(Arc<CertificateCredential>),
    FederatedToken(PathBuf),
}

/// A token and when to ask for a new one.
pub(crate) struct CachedToken {
    token: SecretString,
    refresh_at: Instant,
}

impl CachedToken {
    /// A token asked for at `requested_at` and valid for `lifetime`: used
    /// until [`REFRESH_MARGIN`] (or half its lifetime) before it expires.
    pub(crate) fn new(
        token: SecretString,
        requested_at: Instant,
        lifetime: Duration,
    ) -> CachedToken {
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        CachedToken {
            token,
            refresh_at: requested_at + lifetime - margin,
        }
    }
}

/// The one token a source keeps, shared by the threads that fetch pages.
#[derive(Default)]
pub(crate) struct TokenCache(Mutex<Option<CachedToken>>);

impl TokenCache {
    /// The cached token while it is fresh, else the one `fetch` gets
    /// (kept). The lock is held while fetching, so threads ask once.
    pub(crate) fn get_or_fetch(
        &self,
        fetch: impl FnOnce() -> Result<CachedToken, SourceError>,
    ) -> Result<SecretString, SourceError> {
        let mut cache = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(cached) = cache.as_ref().filter(|c| Instant::now() < c.refresh_at) {
            return Ok(cached.token.clone());
        }
        let fresh = fetch()?;
        let token = fresh.token.clone();
        *cache = Some(fresh);
        Ok(token)
    }

    /// Forgets the token.
    pub(crate) fn clear(&self) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: SecretString,
    /// Seconds; some servers send it as a string.
    expires_in: Option<Seconds>,
}

/// A number of seconds, as a JSON number or a string of digits.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum Seconds {
    /// `3599`
    Number(u64),
    /// `"3599"`
    Text(String),
}

impl Seconds {
    /// The number; `None` for text that is not one.
    pub(crate) fn value(&self) -> Option<u64> {
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
    /// The grant for `settings` with `credential`, sending requests with `http`.
    fn new(
        http: Client,
        settings: &GraphSettings,
        credential: AppCredential,
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
            credential,
            cache: TokenCache::default(),
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
            AppCredential::Secret(secret) => form.push(("client_secret", secret.expose_secret())),
            AppCredential::Certificate(certificate) => {
                assertion = certificate.assertion(
                    &self.client_id,
                    self.endpoint.as_str(),
                    SystemTime::now(),
                )?;
                form.push(("client_assertion_type", ASSERTION_TYPE));
                form.push(("client_assertion", assertion.expose_secret()));
            }
            AppCredential::FederatedToken(path) => {
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
        Ok(CachedToken::new(
            answer.access_token,
            requested_at,
            lifetime,
        ))
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
        self.cache.get_or_fetch(|| self.request_token())
    }

    fn invalidate(&self) {
        self.cache.clear();
    }
}
