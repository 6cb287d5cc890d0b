//! What can go wrong getting the report, worded so the reader knows what
//! to do next. No variant ever holds a secret, a token or the
//! pre-authenticated download URL: text a server sent back passes through
//! [`redact`] first, because a token endpoint or a proxy may echo the
//! request (the client secret, the assertion) in its error.

use std::fmt;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

/// What a redacted value is replaced with.
pub(crate) const REDACTED: &str = "[REDACTED]";

/// Shorter values are not searched for: they would match ordinary text.
const SHORTEST_REDACTED_SECRET: usize = 6;

/// `name=value` and `"name": "value"` for the names whose values are
/// credentials, as a form body or a JSON echo of one spells them.
static SECRET_PARAMETER: LazyLock<Regex> = LazyLock::new(|| {
    let names = "client_secret|client_assertion|assertion|refresh_token|access_token|id_token|password|code_verifier";
    Regex::new(&format!(
        r#"(?i)(?P<key>\b(?:{names})\b(?:"\s*:\s*"|\\?"?\s*[=:]\s*\\?"?))(?P<value>(?:[^"\\&\s,;'}}<]|\\.)+)"#
    ))
    .expect("a valid pattern")
});

/// An `Authorization: Bearer …` value, as a proxy echoing the request
/// headers shows it.
static BEARER_TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?P<scheme>bearer\s+)[A-Za-z0-9._~+/=-]+").expect("a valid pattern")
});

/// A URL with a query: the query and path may carry a signature (the
/// pre-authenticated download URL does).
static URL_WITH_QUERY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)\b(?P<origin>https?://[^/\s"'<>?#]+)[^\s"'<>?#]*\?[^\s"'<>]*"#)
        .expect("a valid pattern")
});

/// `text` (something a server sent back) without the `secrets` (in any
/// spelling a form body or URL gives them), without the values of
/// credential parameters and bearer tokens whatever they are, and without
/// the paths and queries of URLs that have a query.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_owned();
    for secret in secrets
        .iter()
        .filter(|s| s.len() >= SHORTEST_REDACTED_SECRET)
    {
        for spelling in spellings(secret) {
            text = text.replace(&spelling, REDACTED);
        }
    }
    let text = SECRET_PARAMETER.replace_all(&text, format!("${{key}}{REDACTED}"));
    let text = BEARER_TOKEN.replace_all(&text, format!("${{scheme}}{REDACTED}"));
    URL_WITH_QUERY
        .replace_all(&text, format!("${{origin}}/{REDACTED}"))
        .into_owned()
}

/// A secret as it is, form-encoded (upper- and lower-case escapes, `+`
/// or `%20` for a space) and JSON-escaped.
fn spellings(secret: &str) -> Vec<String> {
    let encode = |upper: bool, space: &str| -> String {
        secret
            .bytes()
            .map(|byte| match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    (byte as char).to_string()
                }
                b' ' => space.to_owned(),
                _ if upper => format!("%{byte:02X}"),
                _ => format!("%{byte:02x}"),
            })
            .collect()
    };
    let json = serde_json::to_string(secret).unwrap_or_default();
    let mut spellings = vec![
        secret.to_owned(),
        encode(true, "+"),
        encode(false, "+"),
        encode(true, "%20"),
        json.trim_matches('"').to_owned(),
    ];
    spellings.sort();
    spellings.dedup();
    // Longest first: a shorter spelling must not leave part of a longer one.
    spellings.sort_by_key(|s| std::cmp::Reverse(s.len()));
    spellings
}

/// Getting the report failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The `[source]` configuration is unusable (no credential, a bad URL,
    /// …); fix the config, retrying will not help.
    #[error("[source] {key}: {message}")]
    Config {
        /// The key at fault, such as `graph_url`.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The file named by `client_secret_file` could not be read.
    #[error("cannot read the client secret file {path}: {error}")]
    SecretFile {
        /// The secret file.
        path: PathBuf,
        /// Why reading it failed.
        error: std::io::Error,
    },
    /// The workload-identity token file (`federated_token_file`) could
    /// not be read.
    #[error("cannot read the federated token file {path}: {error}")]
    FederatedTokenFile {
        /// The token file.
        path: PathBuf,
        /// Why reading it failed.
        error: std::io::Error,
    },
    /// The certificate file could not be read, or holds no usable
    /// certificate and private key.
    #[error("certificate file {path}: {message}")]
    Certificate {
        /// The PEM file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A request got no answer: DNS, connection, TLS or a timeout.
    /// Transient.
    #[error("cannot reach {endpoint} at {host}: {message}")]
    Transport {
        /// The server the request was for.
        endpoint: Endpoint,
        /// Its host (and port), never the full URL.
        host: String,
        /// The network error and its causes, on one line.
        message: String,
    },
    /// Microsoft Entra refused to issue an access token.
    #[error("{0}")]
    Token(TokenError),
    /// The managed identity's endpoint refused to issue an access token.
    #[error("{0}")]
    Identity(Box<IdentityError>),
    /// Microsoft Graph refused the report request.
    #[error("{0}")]
    Graph(GraphError),
    /// The download of the report file itself failed with an HTTP error;
    /// a refused or expired download URL is fetched anew from Graph.
    #[error("the report download answered HTTP {status}")]
    Download {
        /// The HTTP status of the answer.
        status: u16,
        /// How long the host asked to wait (`Retry-After`), if it did.
        retry_after: Option<Duration>,
    },
    /// A redirect to the report file had no `Location`, or one that is not
    /// an http(s) URL.
    #[error(
        "{endpoint} answered HTTP {status} without a usable Location to download the report from"
    )]
    BadRedirect {
        /// The server that answered.
        endpoint: Endpoint,
        /// The HTTP status of its redirect.
        status: u16,
    },
    /// The download was redirected more than this many times.
    #[error("the report download was redirected more than {0} times")]
    TooManyRedirects(usize),
    /// A page's `@odata.nextLink` that is not a URL on the Graph host the
    /// report came from: the bearer token is not sent there.
    #[error("Microsoft Graph's @odata.nextLink {0}")]
    BadNextLink(String),
    /// Retrying a transient error stopped (no attempts or time left).
    #[error(
        "gave up fetching the report after {attempts} attempt(s) in {elapsed:.1?}: {reason}; last error: {last}"
    )]
    GaveUp {
        /// Attempts made, the first included.
        attempts: u32,
        /// Time from the first attempt to giving up.
        elapsed: Duration,
        /// Why retrying stopped, with advice when throttled.
        reason: String,
        /// The error of the last attempt.
        last: Box<SourceError>,
    },
}

/// Which server a request went to, for messages (never the download URL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// The Microsoft Entra token endpoint (sign-in).
    Token,
    /// Microsoft Graph, asked for the report.
    Graph,
    /// The host the report file is downloaded from, found by Graph's
    /// redirect.
    Download,
    /// The Azure instance metadata service, for a managed identity's token.
    Imds,
    /// App Service's (Container Apps', Functions') identity endpoint, for
    /// a managed identity's token.
    AppServiceIdentity,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Endpoint::Token => "the Microsoft Entra token endpoint",
            Endpoint::Graph => "Microsoft Graph",
            Endpoint::Download => "the report download host",
            Endpoint::Imds => "the Azure instance metadata service (IMDS)",
            Endpoint::AppServiceIdentity => "the managed identity endpoint (IDENTITY_ENDPOINT)",
        })
    }
}

impl SourceError {
    /// A request that got no answer. `url` gives only its host to the
    /// message: the path and query of a download URL are secret.
    pub fn transport(endpoint: Endpoint, url: &reqwest::Url, error: reqwest::Error) -> SourceError {
        let host = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => "?".to_owned(),
        };
        SourceError::Transport {
            endpoint,
            host,
            message: describe(error),
        }
    }

    /// Worth another try: throttling, server faults, network trouble.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Transport { .. } => true,
            SourceError::Token(error) => is_transient_status(error.status),
            // IMDS answers 404 and 410 while it is being updated.
            SourceError::Identity(error) => {
                is_transient_status(error.status)
                    || (error.endpoint == Endpoint::Imds && matches!(error.status, 404 | 410))
            }
            SourceError::Graph(error) => is_transient_status(error.status),
            // A pre-authenticated URL that expired or was refused is
            // replaced by asking Graph again.
            SourceError::Download { status, .. } => {
                is_transient_status(*status) || matches!(status, 401 | 403 | 404 | 410)
            }
            _ => false,
        }
    }

    /// Advice once retrying is over, for errors whose retry warnings should
    /// not carry it.
    pub fn advice_when_given_up(&self) -> Option<&'static str> {
        if let SourceError::Graph(error) = self
            && error.status == 429
            && error.as_json
        {
            return Some(
                "Graph allows 100 JSON report requests (one per page) per 10 minutes per app: \
                 wait a few minutes, or raise max_attempts and deadline",
            );
        }
        let throttled = match self {
            SourceError::Graph(error) => error.status == 429,
            SourceError::Token(error) => error.status == 429,
            SourceError::Download { status, .. } => *status == 429,
            _ => false,
        };
        throttled.then_some(
            "Graph allows 14 requests for this report per 10 minutes per app (40 per tenant for all apps): \
             wait a few minutes, or raise max_attempts and deadline",
        )
    }

    /// How long the server asked us to wait (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SourceError::Token(error) => error.retry_after,
            SourceError::Identity(error) => error.retry_after,
            SourceError::Graph(error) => error.retry_after,
            SourceError::Download { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A reqwest error and its causes on one line, without the URL (reqwest
/// puts the full URL in its messages).
pub(crate) fn describe(error: reqwest::Error) -> String {
    let timed_out = error.is_timeout();
    let error = error.without_url();
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(inner) = cause {
        let inner_text = inner.to_string();
        if !text.ends_with(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        cause = inner.source();
    }
    if timed_out && !text.contains("timed out") {
        text.push_str(" (timed out)");
    }
    text
}

fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// The token endpoint refused: its error code and description, plus what
/// the code usually means.
#[derive(Debug)]
pub struct TokenError {
    /// The HTTP status of the answer.
    pub status: u16,
    /// The OAuth error, e.g. `invalid_client`.
    pub code: String,
    /// Microsoft Entra's description, e.g. `AADSTS7000215: Invalid client secret provided…`.
    pub description: String,
    /// Microsoft Entra's id for the request, for a support case; `None`
    /// when the answer had none.
    pub correlation_id: Option<String>,
    /// How long the endpoint asked to wait (`Retry-After`), if it did.
    pub retry_after: Option<Duration>,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the Microsoft Entra token endpoint refused to issue a token (HTTP {})",
            self.status
        )?;
        if !self.code.is_empty() {
            write!(f, ": {}", self.code)?;
        }
        if !self.description.is_empty() {
            write!(f, ": {}", self.description)?;
        }
        if let Some(id) = self
            .correlation_id
            .as_ref()
            .filter(|id| !self.description.contains(id.as_str()))
        {
            write!(f, " (correlation id {id})")?;
        }
        if let Some(hint) = token_hint(&self.description, &self.code) {
            write!(f, ". {hint}")?;
        }
        Ok(())
    }
}

/// Advice for the Microsoft Entra errors people meet with app-only sign-in.
fn token_hint(description: &str, code: &str) -> Option<&'static str> {
    let aadsts = description
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|word| word.starts_with("AADSTS"));
    let hint = match aadsts {
        Some("AADSTS7000215") => {
            "The client secret is wrong: use the secret's Value (shown once, when it was created), not its Secret ID"
        }
        Some("AADSTS7000222") => {
            "The client secret has expired: create a new one under Certificates & secrets"
        }
        Some("AADSTS700016") => {
            "No app with this client_id exists in this tenant: check client_id, tenant_id and cloud"
        }
        Some("AADSTS90002" | "AADSTS900023") => {
            "The tenant was not found: check tenant_id and cloud"
        }
        Some("AADSTS700027" | "AADSTS700024") => {
            "The certificate was refused: upload its public part to the app registration (Certificates & secrets) and check the clock"
        }
        Some("AADSTS7000112") => "The app is disabled in this tenant",
        _ if code == "invalid_client" => "Check client_id and the secret or certificate",
        _ => return None,
    };
    Some(hint)
}

/// A managed identity's endpoint refused to issue a token: what it said,
/// which identity was asked for, and how to assign it.
#[derive(Debug)]
pub struct IdentityError {
    /// IMDS or App Service's identity endpoint.
    pub endpoint: Endpoint,
    /// The HTTP status of the answer.
    pub status: u16,
    /// IMDS's OAuth error (`invalid_request`); empty when there was none.
    pub code: String,
    /// What the endpoint said (`Identity not found`), redacted.
    pub message: String,
    /// The identity asked for, as words (`the system-assigned managed identity`).
    pub identity: String,
    /// What to do, when the status says.
    pub hint: Option<String>,
    /// How long the endpoint asked to wait (`Retry-After`), if it did.
    pub retry_after: Option<Duration>,
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} refused a token for {} (HTTP {})",
            self.endpoint, self.identity, self.status
        )?;
        if !self.code.is_empty() {
            write!(f, ": {}", self.code)?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(hint) = &self.hint {
            write!(f, ". {hint}")?;
        }
        Ok(())
    }
}

/// Graph refused the report request.
#[derive(Debug)]
pub struct GraphError {
    /// The HTTP status of the answer.
    pub status: u16,
    /// Graph's error code, e.g. `Authorization_RequestDenied`; empty when
    /// the body had none.
    pub code: String,
    /// Graph's message, or the start of a body that was not Graph's JSON;
    /// may be empty.
    pub message: String,
    /// Graph's `request-id`, for a support case; `None` when the body had
    /// none.
    pub request_id: Option<String>,
    /// When Graph says the error happened (its `innerError.date`, as sent).
    pub date: Option<String>,
    /// How long Graph asked to wait (`Retry-After`), if it did.
    pub retry_after: Option<Duration>,
    /// The request was for one day (`date=`), which changes what a 400 means.
    pub for_date: bool,
    /// The request was for `/beta` JSON, which Graph throttles less.
    pub as_json: bool,
    /// The token was a managed identity's, which gets its permission
    /// differently from an app registration.
    pub managed_identity: bool,
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Microsoft Graph answered HTTP {}", self.status)?;
        // Graph's text is the server's: it may quote a signed URL.
        let message = redact(&self.message, &[]);
        match (self.code.is_empty(), message.is_empty()) {
            (false, false) => write!(f, ": {}: {}", self.code, message)?,
            (false, true) => write!(f, ": {}", self.code)?,
            (true, false) => write!(f, ": {}", message)?,
            (true, true) => {}
        }
        match (&self.request_id, &self.date) {
            (Some(id), Some(date)) => write!(f, " (request-id {id}, {date})")?,
            (Some(id), None) => write!(f, " (request-id {id})")?,
            _ => {}
        }
        if let Some(hint) = self.hint() {
            write!(f, ". {hint}")?;
        }
        Ok(())
    }
}

impl GraphError {
    fn hint(&self) -> Option<&'static str> {
        Some(match self.status {
            401 | 403 if self.managed_identity => {
                "The managed identity needs the Microsoft Graph application permission Reports.Read.All: \
                 grant it with PowerShell or the Graph API (the portal cannot; see docs/graph.md, \
                 \"Azure-hosted: managed identity\"); a new grant can take a few minutes, and up to a day \
                 for a token already issued, to apply"
            }
            401 | 403 => {
                "The app registration needs the Microsoft Graph *application* permission Reports.Read.All, \
                 with admin consent granted (Entra admin center > App registrations > your app > API permissions > \
                 Grant admin consent); a new consent can take a few minutes to apply"
            }
            400 if self.for_date => {
                "Graph serves one day's report only for the past 28 days, and the newest data is 1 to 3 days old: \
                 pick a date in that window, or use --period"
            }
            404 => {
                "Check graph_url and api_version (national clouds may serve this report only under `beta`)"
            }
            429 if self.as_json => {
                "Graph allows 100 JSON report requests (one per page) per 10 minutes per app: wait a few minutes before trying again"
            }
            429 => {
                "Graph allows 14 report requests per 10 minutes per app: wait a few minutes before trying again"
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_secrets_are_redacted_in_every_spelling() {
        let secret = "s3cr3t~Value+/=";
        let echoed = format!(
            "AADSTS900144: body was grant_type=client_credentials&client_secret=s3cr3t~Value%2B%2F%3D&scope=x; raw {secret}; \
             json {{\"client_assertion\": \"eyJhbGciOi.eyJzdWIi.c2ln\"}} refresh_token=abc123&x=1 \
             see https://reports.example.net/data/download/abc?sig=XYZ123&se=2026 and https://aka.ms/help; \
             Authorization: Bearer eyJ0eXAi.body.sig"
        );
        let redacted = redact(&echoed, &[secret]);
        for leaked in [
            "s3cr3t",
            "eyJhbGciOi",
            "abc123",
            "sig=XYZ123",
            "data/download",
        ] {
            assert!(!redacted.contains(leaked), "{leaked} in {redacted}");
        }
        assert!(redacted.contains("AADSTS900144"), "{redacted}");
        assert!(
            redacted.contains("https://reports.example.net/[REDACTED]"),
            "{redacted}"
        );
        assert!(
            redacted.contains("https://aka.ms/help"),
            "a URL without a query stays: {redacted}"
        );
        assert!(
            redacted.contains("grant_type=client_credentials"),
            "{redacted}"
        );
    }

    #[test]
    fn token_errors_show_code_description_and_advice() {
        let error = TokenError {
            status: 401,
            code: "invalid_client".into(),
            description: "AADSTS7000215: Invalid client secret provided.".into(),
            correlation_id: Some("c-1".into()),
            retry_after: None,
        };
        assert_eq!(
            error.to_string(),
            "the Microsoft Entra token endpoint refused to issue a token (HTTP 401): invalid_client: \
             AADSTS7000215: Invalid client secret provided. (correlation id c-1). The client secret is wrong: \
             use the secret's Value (shown once, when it was created), not its Secret ID"
        );
    }

    #[test]
    fn a_bad_date_names_the_28_day_window() {
        let error = GraphError {
            status: 400,
            code: "InvalidArgument".into(),
            message: "Only support data for the past 28 days".into(),
            request_id: Some("r-1".into()),
            date: None,
            retry_after: None,
            for_date: true,
            as_json: false,
            managed_identity: false,
        };
        let text = error.to_string();
        assert!(text.starts_with("Microsoft Graph answered HTTP 400: InvalidArgument: Only support data for the past 28 days (request-id r-1)"));
        assert!(text.contains("past 28 days, and"), "{text}");
    }

    #[test]
    fn throttling_and_faults_are_transient_refusals_are_not() {
        let download = |status| SourceError::Download {
            status,
            retry_after: None,
        };
        assert!(download(503).is_transient());
        assert!(
            download(403).is_transient(),
            "an expired download URL is replaced by asking again"
        );
        let graph = |status| {
            SourceError::Graph(GraphError {
                status,
                code: String::new(),
                message: String::new(),
                request_id: None,
                date: None,
                retry_after: None,
                for_date: false,
                as_json: false,
                managed_identity: false,
            })
        };
        assert!(graph(429).is_transient());
        assert!(graph(504).is_transient());
        let json_throttled = SourceError::Graph(GraphError {
            as_json: true,
            ..match graph(429) {
                SourceError::Graph(error) => error,
                _ => unreachable!(),
            }
        });
        assert!(
            json_throttled
                .advice_when_given_up()
                .is_some_and(|advice| advice.contains("100 JSON report requests")),
            "beta JSON has its own allowance"
        );
        assert!(!graph(403).is_transient());
        assert!(!graph(400).is_transient());
    }
}
