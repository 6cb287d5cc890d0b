//! Signing in as the managed identity of the Azure resource groupwarden
//! runs on (`[source] auth = "managed-identity"`): no app registration,
//! no secret to store or rotate.
//!
//! Azure offers the identity's tokens on one of two local endpoints, and
//! says which by the environment, as the Azure SDKs read it:
//!
//! - **App Service, Container Apps, Functions**: `IDENTITY_ENDPOINT` and
//!   `IDENTITY_HEADER` are set. `GET $IDENTITY_ENDPOINT?api-version=2019-08-01&resource=…`
//!   with the header `X-IDENTITY-HEADER: $IDENTITY_HEADER` (a secret).
//! - **Virtual machines, scale sets, AKS nodes**: the instance metadata
//!   service (IMDS), `GET http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=…`
//!   with `Metadata: true`. `AZURE_POD_IDENTITY_AUTHORITY_HOST` replaces
//!   the host, as in the Azure SDKs (pod identity, tests).
//!
//! A user-assigned identity is chosen with `client_id=`. The answer's
//! `access_token` is cached until shortly before `expires_on` (seconds
//! since the epoch, as a number or a string; else `expires_in`), like the
//! client-credentials token. Why hand-written over reqwest rather than
//! `azure_identity`'s `ManagedIdentityCredential`: that one cannot be
//! pointed at a plain-HTTP loopback stand-in, which is how it is tested.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use reqwest::blocking::{Client, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::config::Environment;
use super::error::{Endpoint, IdentityError, SourceError, describe, redact};
use super::graph::read_error_body;
use super::token::{CachedToken, Seconds, TokenCache, TokenSource};
use crate::retry::retry_after;

/// Set by App Service, Container Apps and Functions: the identity endpoint.
pub(crate) const ENV_IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
/// Set with [`ENV_IDENTITY_ENDPOINT`]: the value of `X-IDENTITY-HEADER`.
pub(crate) const ENV_IDENTITY_HEADER: &str = "IDENTITY_HEADER";
/// Set on Azure Arc servers beside [`ENV_IDENTITY_ENDPOINT`] (not supported).
const ENV_ARC_IMDS_ENDPOINT: &str = "IMDS_ENDPOINT";
/// Replaces the IMDS host, as the Azure SDKs allow.
pub(crate) const ENV_IMDS_HOST: &str = "AZURE_POD_IDENTITY_AUTHORITY_HOST";

/// The instance metadata service, reachable only from inside an Azure VM.
const IMDS_HOST: &str = "http://169.254.169.254";
const IMDS_TOKEN_PATH: &str = "/metadata/identity/oauth2/token";
const IMDS_API_VERSION: &str = "2018-02-01";
const APP_SERVICE_API_VERSION: &str = "2019-08-01";
/// The identity endpoints are on the machine or link-local: they answer
/// at once or not at all (off Azure), so a long connect wait only delays
/// the error.
const LOCAL_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A token whose answer says nothing of its lifetime is used this long.
const UNKNOWN_LIFETIME: Duration = Duration::from_secs(300);

/// The managed identity to sign in as, and where its tokens come from.
#[derive(Clone)]
pub struct ManagedIdentity {
    endpoint: IdentityEndpoint,
    /// A user-assigned identity's client id; `None`: system-assigned.
    client_id: Option<String>,
}

#[derive(Clone)]
enum IdentityEndpoint {
    /// App Service, Container Apps, Functions.
    AppService {
        url: reqwest::Url,
        header: SecretString,
    },
    /// The instance metadata service.
    Imds { url: reqwest::Url },
}

impl ManagedIdentity {
    /// The endpoint the environment offers: App Service's when
    /// `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set, else IMDS.
    pub(crate) fn from_environment(
        client_id: Option<String>,
        env: &dyn Environment,
    ) -> Result<ManagedIdentity, SourceError> {
        let endpoint = match (env.var(ENV_IDENTITY_ENDPOINT), env.var(ENV_IDENTITY_HEADER)) {
            (Some(url), Some(header)) => IdentityEndpoint::AppService {
                url: endpoint_url(&url, ENV_IDENTITY_ENDPOINT)?,
                header: SecretString::from(header),
            },
            (Some(_), None) if env.var(ENV_ARC_IMDS_ENDPOINT).is_some() => {
                return Err(not_usable(format!(
                    "{ENV_IDENTITY_ENDPOINT} and {ENV_ARC_IMDS_ENDPOINT} say this is an Azure Arc server, \
                     whose managed identity groupwarden does not support: use an app registration \
                     (a certificate or a client secret) instead"
                )));
            }
            (Some(_), None) => {
                return Err(not_usable(format!(
                    "{ENV_IDENTITY_ENDPOINT} is set but {ENV_IDENTITY_HEADER} is not: App Service, \
                     Container Apps and Functions set both when the app has a managed identity \
                     (turn it on under the app's Identity page)"
                )));
            }
            (None, _) => {
                let host = env.var(ENV_IMDS_HOST);
                let host = host.as_deref().unwrap_or(IMDS_HOST).trim_end_matches('/');
                IdentityEndpoint::Imds {
                    url: endpoint_url(&format!("{host}{IMDS_TOKEN_PATH}"), ENV_IMDS_HOST)?,
                }
            }
        };
        Ok(ManagedIdentity {
            endpoint,
            client_id,
        })
    }

    /// Which endpoint, for messages.
    fn endpoint_kind(&self) -> Endpoint {
        match self.endpoint {
            IdentityEndpoint::AppService { .. } => Endpoint::AppServiceIdentity,
            IdentityEndpoint::Imds { .. } => Endpoint::Imds,
        }
    }

    /// The identity, for messages: never the header.
    fn who(&self) -> String {
        match &self.client_id {
            Some(id) => format!("the user-assigned managed identity with client id {id}"),
            None => "the system-assigned managed identity".to_owned(),
        }
    }
}

/// Never shows `IDENTITY_HEADER`.
impl fmt::Debug for ManagedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedIdentity")
            .field("endpoint", &self.endpoint_kind())
            .field("client_id", &self.client_id)
            .finish()
    }
}

/// `the system-assigned managed identity, from the instance metadata service (IMDS) at 169.254.169.254`.
impl fmt::Display for ManagedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = match &self.endpoint {
            IdentityEndpoint::AppService { url, .. } | IdentityEndpoint::Imds { url } => url,
        };
        write!(
            f,
            "{}, from {} at {}",
            self.who(),
            self.endpoint_kind(),
            host_and_port(url)
        )
    }
}

fn not_usable(message: String) -> SourceError {
    SourceError::Config {
        key: "auth",
        message: format!("managed identity: {message}"),
    }
}

/// An endpoint from the environment: http(s) only. Plain http is what
/// Azure serves these on (on the machine or link-local), so it is allowed
/// for any host here, unlike `authority_url` and `graph_url`.
fn endpoint_url(text: &str, variable: &str) -> Result<reqwest::Url, SourceError> {
    let url = reqwest::Url::parse(text.trim()).map_err(|e| {
        not_usable(format!(
            "${variable} is not a URL (\"{}\"): {e}",
            text.trim()
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(not_usable(format!(
            "${variable} must be an http:// or https:// URL, not \"{}\"",
            text.trim()
        )));
    }
    Ok(url)
}

fn host_and_port(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => "?".to_owned(),
    }
}

/// Tokens for Graph from the managed identity's endpoint, cached.
pub(crate) struct ManagedIdentityCredential {
    http: Client,
    identity: ManagedIdentity,
    /// The Graph host the token is for (`https://graph.microsoft.com`).
    resource: String,
    cache: TokenCache,
}

#[derive(Deserialize)]
struct IdentityAnswer {
    access_token: SecretString,
    /// Seconds since the epoch (App Service and IMDS send a string).
    expires_on: Option<Seconds>,
    /// Seconds from now (IMDS).
    expires_in: Option<Seconds>,
}

/// IMDS: `{"error": "invalid_request", "error_description": "Identity not found"}`;
/// App Service: `{"statusCode": 400, "message": "…", "correlationId": "…"}`.
#[derive(Deserialize, Default)]
struct IdentityErrorAnswer {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default, alias = "Message")]
    message: String,
    #[serde(rename = "correlationId")]
    correlation_id: Option<String>,
}

impl ManagedIdentityCredential {
    /// A credential for `identity` asking for tokens for `resource` (the
    /// cloud's Graph host). Its own HTTP client: never through a proxy
    /// (the endpoint is local) and a short connect timeout.
    pub(crate) fn new(
        identity: ManagedIdentity,
        resource: &str,
        connect_timeout: Duration,
        answer_timeout: Duration,
    ) -> Result<ManagedIdentityCredential, SourceError> {
        let http = Client::builder()
            .user_agent(concat!("groupwarden/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(connect_timeout.min(LOCAL_CONNECT_TIMEOUT))
            .timeout(answer_timeout.max(Duration::from_millis(1)))
            .build()
            .map_err(|e| not_usable(format!("cannot set up HTTP: {}", describe(e))))?;
        Ok(ManagedIdentityCredential {
            http,
            identity,
            resource: resource.to_owned(),
            cache: TokenCache::default(),
        })
    }

    /// The token request's URL and its one extra header.
    fn request(&self) -> (reqwest::Url, &'static str, SecretString) {
        let (mut url, version, header, value) = match &self.identity.endpoint {
            IdentityEndpoint::AppService { url, header } => (
                url.clone(),
                APP_SERVICE_API_VERSION,
                "X-IDENTITY-HEADER",
                header.clone(),
            ),
            IdentityEndpoint::Imds { url } => (
                url.clone(),
                IMDS_API_VERSION,
                "Metadata",
                SecretString::from("true"),
            ),
        };
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("api-version", version);
            query.append_pair("resource", &self.resource);
            if let Some(client_id) = &self.identity.client_id {
                query.append_pair("client_id", client_id);
            }
        }
        (url, header, value)
    }

    fn request_token(&self) -> Result<CachedToken, SourceError> {
        let (url, header, value) = self.request();
        let endpoint = self.identity.endpoint_kind();
        tracing::debug!(identity = %self.identity, "requesting an access token for the managed identity");
        let requested_at = Instant::now();
        let response = self
            .http
            .get(url.clone())
            .header(header, value.expose_secret())
            .send()
            .map_err(|e| self.unreachable(&url, e))?;
        let status = response.status();
        let header_secret = [value.expose_secret()];
        if !status.is_success() {
            return Err(self.refusal(response, &header_secret));
        }
        let answer: IdentityAnswer = response.json().map_err(|e| {
            SourceError::Identity(Box::new(IdentityError {
                endpoint,
                status: status.as_u16(),
                code: String::new(),
                message: redact(
                    &format!("the answer is not a token: {}", describe(e)),
                    &header_secret,
                ),
                identity: self.identity.who(),
                hint: None,
                retry_after: None,
            }))
        })?;
        let lifetime = lifetime(&answer, SystemTime::now());
        tracing::debug!(
            expires_in_s = lifetime.as_secs(),
            "got an access token for the managed identity"
        );
        Ok(CachedToken::new(
            answer.access_token,
            requested_at,
            lifetime,
        ))
    }

    /// No answer: off Azure, IMDS does not answer at all.
    fn unreachable(&self, url: &reqwest::Url, error: reqwest::Error) -> SourceError {
        let endpoint = self.identity.endpoint_kind();
        let mut message = describe(error);
        if endpoint == Endpoint::Imds {
            message.push_str(
                ". auth = \"managed-identity\" reaches IMDS only on an Azure VM, scale set or AKS node; \
                 App Service, Container Apps and Functions set IDENTITY_ENDPOINT and IDENTITY_HEADER instead \
                 (is the identity turned on?)",
            );
        }
        SourceError::Transport {
            endpoint,
            host: host_and_port(url),
            message,
        }
    }

    /// The endpoint's refusal, with advice for the usual causes. Its text
    /// is redacted: the header is a secret and an echo could carry it.
    fn refusal(&self, response: Response, secrets: &[&str]) -> SourceError {
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let body = read_error_body(response);
        let answer: IdentityErrorAnswer = serde_json::from_str(&body).unwrap_or_default();
        let mut message = [answer.error_description.as_str(), answer.message.as_str()]
            .into_iter()
            .filter(|text| !text.trim().is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        if message.is_empty() && answer.error.is_empty() {
            // Not JSON: the start of the body, on one line.
            message = body
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .take(200)
                .collect();
        }
        if let Some(id) = answer.correlation_id.filter(|id| !message.contains(id)) {
            message.push_str(&format!(" (correlation id {id})"));
        }
        let endpoint = self.identity.endpoint_kind();
        SourceError::Identity(Box::new(IdentityError {
            endpoint,
            status,
            code: redact(&answer.error, secrets),
            message: redact(&message, secrets),
            identity: self.identity.who(),
            hint: identity_hint(endpoint, status, self.identity.client_id.as_deref()),
            retry_after,
        }))
    }
}

/// How long the token may be used: `expires_on` (an instant), else
/// `expires_in`, else a short while.
fn lifetime(answer: &IdentityAnswer, now: SystemTime) -> Duration {
    let since_epoch = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    if let Some(expires_on) = answer.expires_on.as_ref().and_then(Seconds::value) {
        return Duration::from_secs(expires_on.saturating_sub(since_epoch));
    }
    answer
        .expires_in
        .as_ref()
        .and_then(Seconds::value)
        .map_or(UNKNOWN_LIFETIME, Duration::from_secs)
}

/// What to do about a refusal: mostly, an identity that is not there.
fn identity_hint(endpoint: Endpoint, status: u16, client_id: Option<&str>) -> Option<String> {
    let assign = match (endpoint, client_id) {
        (Endpoint::Imds, Some(id)) => format!(
            "No user-assigned identity with client id {id} is assigned to this VM: assign it \
             (Azure portal > the VM > Identity > User assigned > Add, or \
             `az vm identity assign --resource-group RG --name VM --identities IDENTITY_RESOURCE_ID`), \
             or correct managed_identity_client_id"
        ),
        (Endpoint::Imds, None) => "This VM has no system-assigned identity: turn it on \
             (Azure portal > the VM > Identity > System assigned > On, or \
             `az vm identity assign --resource-group RG --name VM`), or set managed_identity_client_id \
             to use a user-assigned one"
            .to_owned(),
        (_, Some(id)) => format!(
            "No user-assigned identity with client id {id} is assigned to this app: add it \
             (Azure portal > the app > Identity > User assigned, or `az webapp identity assign` / \
             `az containerapp identity assign --user-assigned IDENTITY_RESOURCE_ID`), \
             or correct managed_identity_client_id"
        ),
        (_, None) => "This app has no system-assigned identity: turn it on (Azure portal > the app > \
             Identity > System assigned > On, or `az webapp identity assign` / \
             `az containerapp identity assign --system-assigned`)"
            .to_owned(),
    };
    match status {
        400 => Some(assign),
        404 if endpoint == Endpoint::AppServiceIdentity => Some(assign),
        401 | 403 if endpoint == Endpoint::AppServiceIdentity => Some(
            "The endpoint refused IDENTITY_HEADER: run groupwarden with the environment the platform \
             gives the app (the header changes when the app restarts)"
                .to_owned(),
        ),
        _ => None,
    }
}

impl TokenSource for ManagedIdentityCredential {
    fn token(&self) -> Result<SecretString, SourceError> {
        self.cache.get_or_fetch(|| self.request_token())
    }

    fn invalidate(&self) {
        self.cache.clear();
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn identity(pairs: &[(&'static str, &'static str)]) -> Result<ManagedIdentity, SourceError> {
        ManagedIdentity::from_environment(None, &super::super::config::FakeEnv::of(pairs))
    }

    fn answer(json: &str) -> IdentityAnswer {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn app_service_variables_win_over_imds() {
        let found = identity(&[
            (ENV_IDENTITY_ENDPOINT, "http://localhost:4141/msi/token"),
            (ENV_IDENTITY_HEADER, "header-secret-value"),
        ])
        .unwrap();
        assert_eq!(found.endpoint_kind(), Endpoint::AppServiceIdentity);
        let shown = format!("{found} {found:?}");
        assert!(!shown.contains("header-secret-value"), "{shown}");
        assert!(shown.contains("localhost:4141"), "{shown}");
        let imds = identity(&[]).unwrap();
        assert_eq!(imds.endpoint_kind(), Endpoint::Imds);
        assert!(imds.to_string().ends_with("at 169.254.169.254"), "{imds}");
    }

    #[test]
    fn the_imds_host_can_be_replaced_as_in_the_azure_sdks() {
        let found = identity(&[(ENV_IMDS_HOST, "http://127.0.0.1:9/")]).unwrap();
        let credential = ManagedIdentityCredential::new(
            found,
            "https://graph.microsoft.com",
            Duration::from_secs(1),
            Duration::from_secs(1),
        )
        .unwrap();
        let (url, header, value) = credential.request();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fgraph.microsoft.com"
        );
        assert_eq!((header, value.expose_secret()), ("Metadata", "true"));
    }

    #[test]
    fn half_an_app_service_environment_or_arc_is_refused_clearly() {
        let err = identity(&[(ENV_IDENTITY_ENDPOINT, "http://localhost:4141/msi/token")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("[source] auth: managed identity: IDENTITY_ENDPOINT is set but IDENTITY_HEADER is not"), "{err}");
        let err = identity(&[
            (
                ENV_IDENTITY_ENDPOINT,
                "http://localhost:40342/metadata/identity/oauth2/token",
            ),
            (ENV_ARC_IMDS_ENDPOINT, "http://localhost:40342"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("Azure Arc"), "{err}");
        let err = identity(&[(ENV_IMDS_HOST, "ftp://x")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("AZURE_POD_IDENTITY_AUTHORITY_HOST must be an http://"),
            "{err}"
        );
    }

    #[test]
    fn expires_on_as_text_or_number_else_expires_in() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let text = answer(r#"{"access_token":"t","expires_on":"1003600","expires_in":"10"}"#);
        assert_eq!(lifetime(&text, now), Duration::from_secs(3600));
        let number = answer(r#"{"access_token":"t","expires_on":1000060}"#);
        assert_eq!(lifetime(&number, now), Duration::from_secs(60));
        let relative = answer(r#"{"access_token":"t","expires_in":"86399"}"#);
        assert_eq!(lifetime(&relative, now), Duration::from_secs(86399));
        let silent = answer(r#"{"access_token":"t"}"#);
        assert_eq!(lifetime(&silent, now), UNKNOWN_LIFETIME);
        let past = answer(r#"{"access_token":"t","expires_on":"5"}"#);
        assert_eq!(lifetime(&past, now), Duration::ZERO);
    }

    #[test]
    fn a_missing_identity_names_the_identity_and_how_to_assign_it() {
        let system = identity_hint(Endpoint::Imds, 400, None).unwrap();
        assert!(system.contains("az vm identity assign"), "{system}");
        let user = identity_hint(Endpoint::Imds, 400, Some("abc")).unwrap();
        assert!(user.contains("client id abc"), "{user}");
        assert!(identity_hint(Endpoint::Imds, 503, None).is_none());
    }
}
