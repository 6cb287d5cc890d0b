//! The report request.
//!
//! `GET {graph}/v1.0/reports/getOffice365GroupsActivityDetail(period='D30')`
//! answers either `302 Found` with a pre-authenticated download URL on
//! another host, or (behind some proxies) `200` with the CSV itself. The
//! download goes through a second HTTP client that never has the token, so
//! the bearer token cannot leak to the download host whatever the redirect
//! rules; both clients follow no redirect on their own, because reqwest
//! logs the URLs it redirects between and the download URL is a secret.
//!
//! With `api_version = "beta"` the report is asked for as JSON
//! (`?$format=application/json`; v1.0 refuses that): Graph answers a page
//! of up to 200 items and an `@odata.nextLink` to the next one. Each page
//! is one more request to Graph, with the token, under the same retries,
//! timeouts and error handling as the first; the pages become one CSV
//! stream ([`crate::report::shape::json_pages_as_csv`]), so the rest of
//! the program sees the report as if it had come as CSV.

use std::io::{self, Read};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use reqwest::header::LOCATION;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::config::{ApiVersion, Credential, GraphSettings, ReportRequest};
use super::download::Download;
use super::error::{Endpoint, GraphError, SourceError};
use super::retry::with_retries;
use super::token::{TokenSource, token_source};
use crate::report::shape::json_pages_as_csv;
use crate::retry::{RetryPolicy, retry_after};

/// Redirects followed on the download host before giving up.
const MAX_DOWNLOAD_REDIRECTS: usize = 5;

/// At most this much of an error answer is read.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// The query that asks `/beta` for the report as JSON pages.
const JSON_FORMAT_QUERY: &str = "$format=application/json";

/// Fetches the groups activity report.
///
/// Cheap to clone: the clones share the HTTP clients and the token cache
/// (the JSON pages are fetched by a clone on the converting thread).
#[derive(Clone)]
pub(crate) struct GraphClient {
    /// Sends the bearer token; talks to Graph only.
    api: Client,
    /// Never sends a token; fetches the pre-authenticated URL.
    download: Client,
    tokens: Arc<dyn TokenSource>,
    report_url: reqwest::Url,
    api_version: ApiVersion,
    request: ReportRequest,
    retry: RetryPolicy,
    /// Graph's refusals then say how a managed identity gets its permission.
    managed_identity: bool,
}

impl GraphClient {
    /// A client that signs in as the settings say (the client-credentials
    /// grant or a managed identity). The token endpoint and Graph share one
    /// HTTP client; the download has its own.
    pub(crate) fn new(settings: &GraphSettings) -> Result<GraphClient, SourceError> {
        let api = http_client(settings)?;
        let tokens = token_source(api.clone(), settings)?;
        GraphClient::with_token_source(settings, tokens, api)
    }

    /// A client that gets its tokens from `tokens` and talks to Graph
    /// through `api`.
    pub(crate) fn with_token_source(
        settings: &GraphSettings,
        tokens: Box<dyn TokenSource>,
        api: Client,
    ) -> Result<GraphClient, SourceError> {
        let report_url = report_url(settings)?;
        Ok(GraphClient {
            api,
            download: http_client(settings)?,
            tokens: Arc::from(tokens),
            report_url,
            api_version: settings.api_version,
            request: settings.request,
            retry: settings.retry,
            managed_identity: matches!(settings.credential, Credential::ManagedIdentity(_)),
        })
    }

    /// Asks for the report and opens its body, retrying throttling and
    /// faults as the policy allows. Reading the result streams the CSV:
    /// from `/beta`, the CSV that the JSON pages become, each page fetched
    /// when the reader reaches it.
    pub(crate) fn open_report(&self, show_progress: bool) -> Result<Download, SourceError> {
        if self.api_version == ApiVersion::Beta {
            return self.open_json_pages(show_progress);
        }
        let response = self.request_with_retries(&self.report_url)?;
        Ok(Download::new(response, show_progress))
    }

    /// The first page now (so that a refusal fails before a row is read),
    /// the others as the reader gets to them, all as one CSV stream.
    fn open_json_pages(&self, show_progress: bool) -> Result<Download, SourceError> {
        let first = self.open_page(&self.report_url)?;
        let client = self.clone();
        let mut page = 1u32;
        let pages = json_pages_as_csv(Box::new(first), move |link| {
            page += 1;
            match client.next_page(link, page) {
                Ok(download) => Ok(Box::new(download) as Box<dyn Read + Send>),
                Err(error) => Err(io::Error::other(error.to_string())),
            }
        });
        // No Content-Length for the whole: each page checks its own.
        Ok(Download::from_reader(pages, None, show_progress))
    }

    /// Page `number` of a JSON answer, at a previous page's `link`.
    fn next_page(&self, link: &str, number: u32) -> Result<Download, SourceError> {
        let url = self.next_link_url(link)?;
        tracing::debug!(page = number, "requesting the next page of the report");
        self.open_page(&url)
    }

    /// One page's body, checked for truncation like any download.
    fn open_page(&self, url: &reqwest::Url) -> Result<Download, SourceError> {
        let response = self.request_with_retries(url)?;
        Ok(Download::new(response, false))
    }

    /// An `@odata.nextLink`, followed exactly as given, but only on the
    /// Graph host the report came from: the request carries the token.
    fn next_link_url(&self, link: &str) -> Result<reqwest::Url, SourceError> {
        let url = reqwest::Url::parse(link)
            .map_err(|_| SourceError::BadNextLink("is not an absolute URL".into()))?;
        if url.origin() != self.report_url.origin() {
            return Err(SourceError::BadNextLink(format!(
                "points to {} rather than to Microsoft Graph at {}: not followed, so that the token does not leave Graph",
                url.origin().ascii_serialization(),
                self.report_url.origin().ascii_serialization()
            )));
        }
        Ok(url)
    }

    /// Requests `url` from Graph until it answers, fails for good, or the
    /// retry policy gives up.
    fn request_with_retries(&self, url: &reqwest::Url) -> Result<Response, SourceError> {
        with_retries(&self.retry, |attempt| {
            // The query of a next link carries a paging token: not logged.
            tracing::debug!(attempt, request = %self.request, url = %without_query(url), "requesting the groups activity report");
            self.try_open(url)
        })
    }

    /// One attempt: token, the request to Graph, and the download's answer.
    fn try_open(&self, url: &reqwest::Url) -> Result<Response, SourceError> {
        let token = self.tokens.token()?;
        let response = self
            .api
            .get(url.clone())
            .bearer_auth(token.expose_secret())
            .send()
            .map_err(|e| SourceError::transport(Endpoint::Graph, url, e))?;
        let status = response.status();
        if status == StatusCode::OK {
            tracing::debug!("Graph sent the report itself");
            return Ok(response);
        }
        if status.is_redirection() {
            let location = location(&response, url, Endpoint::Graph)?;
            return self.download(location);
        }
        if status == StatusCode::UNAUTHORIZED {
            self.tokens.invalidate();
        }
        Err(self.graph_error(response))
    }

    /// Follows the pre-authenticated URL (and any redirect it makes)
    /// without credentials.
    fn download(&self, mut url: SecretString) -> Result<Response, SourceError> {
        for _ in 0..=MAX_DOWNLOAD_REDIRECTS {
            let parsed = parse_secret_url(&url, Endpoint::Download)?;
            tracing::debug!(
                host = parsed.host_str().unwrap_or("?"),
                "downloading the report"
            );
            let response = self
                .download
                .get(parsed.clone())
                .send()
                .map_err(|e| SourceError::transport(Endpoint::Download, &parsed, e))?;
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            if !status.is_redirection() {
                return Err(SourceError::Download {
                    status: status.as_u16(),
                    retry_after: retry_after(response.headers()),
                });
            }
            url = location(&response, &parsed, Endpoint::Download)?;
        }
        Err(SourceError::TooManyRedirects(MAX_DOWNLOAD_REDIRECTS))
    }

    fn graph_error(&self, response: Response) -> SourceError {
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let request_id = header_text(&response, "request-id");
        let body = read_error_body(response);
        let mut error = parse_graph_error(status, &body);
        error.retry_after = retry_after;
        error.request_id = error.request_id.or(request_id);
        error.for_date = matches!(self.request, ReportRequest::Date(_));
        error.as_json = self.api_version == ApiVersion::Beta;
        error.managed_identity = self.managed_identity;
        SourceError::Graph(error)
    }
}

/// The report request's URL: `{graph}/{version}/reports/{function}`, and
/// for `/beta` the query asking for JSON.
fn report_url(settings: &GraphSettings) -> Result<reqwest::Url, SourceError> {
    let mut text = format!(
        "{}/{}/reports/{}",
        settings.graph_url,
        settings.api_version.as_str(),
        settings.request.function()
    );
    if settings.api_version == ApiVersion::Beta {
        text.push('?');
        text.push_str(JSON_FORMAT_QUERY);
    }
    reqwest::Url::parse(&text).map_err(|e| SourceError::Config {
        key: "graph_url",
        message: format!("makes a bad report URL: {e}"),
    })
}

/// A Graph URL for the log: scheme, host and path, without the query.
fn without_query(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    shown.into()
}

/// An HTTP client for one host: no redirects followed, a connect timeout,
/// and a per-read timeout that catches a stalled answer or download.
pub(crate) fn http_client(settings: &GraphSettings) -> Result<Client, SourceError> {
    Client::builder()
        .user_agent(concat!("groupwarden/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.connect_timeout)
        // The blocking client applies this to waiting for the answer and to
        // each read of the body, not to the whole download.
        .timeout(settings.stall_timeout.max(Duration::from_millis(1)))
        .build()
        .map_err(|e| SourceError::Config {
            key: "graph_url",
            message: format!("cannot set up HTTP: {}", super::error::describe(e)),
        })
}

/// The `Location` of a redirect, resolved against the request URL, kept
/// secret: it is the pre-authenticated download URL.
fn location(
    response: &Response,
    base: &reqwest::Url,
    endpoint: Endpoint,
) -> Result<SecretString, SourceError> {
    let bad = || SourceError::BadRedirect {
        endpoint,
        status: response.status().as_u16(),
    };
    let text = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(bad)?;
    let url = base.join(text).map_err(|_| bad())?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(bad());
    }
    Ok(SecretString::from(String::from(url)))
}

fn parse_secret_url(url: &SecretString, endpoint: Endpoint) -> Result<reqwest::Url, SourceError> {
    reqwest::Url::parse(url.expose_secret()).map_err(|_| SourceError::BadRedirect {
        endpoint,
        status: 302,
    })
}

fn header_text(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The start of an error answer's body, as text.
pub(crate) fn read_error_body(response: Response) -> String {
    let mut body = Vec::new();
    // A broken error body still leaves the status to report.
    let _ = response.take(ERROR_BODY_LIMIT).read_to_end(&mut body);
    String::from_utf8_lossy(&body).into_owned()
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(rename = "innerError", alias = "innererror", default)]
    inner: Option<InnerError>,
}

#[derive(Deserialize)]
struct InnerError {
    #[serde(rename = "request-id")]
    request_id: Option<String>,
    date: Option<String>,
}

/// Graph's `{"error":{"code","message","innerError":{…}}}`. The message is
/// sometimes itself such a document, as text; then the inner one is used.
pub(crate) fn parse_graph_error(status: u16, body: &str) -> GraphError {
    let mut error = GraphError {
        status,
        code: String::new(),
        message: String::new(),
        request_id: None,
        date: None,
        retry_after: None,
        for_date: false,
        as_json: false,
        managed_identity: false,
    };
    let Ok(envelope) = serde_json::from_str::<ErrorEnvelope>(body) else {
        error.message = short_text(body);
        return error;
    };
    let ErrorBody {
        mut code,
        mut message,
        inner,
    } = envelope.error;
    if let Ok(nested) = serde_json::from_str::<ErrorEnvelope>(&message) {
        if code.is_empty() {
            code = nested.error.code;
        }
        message = nested.error.message;
    }
    error.code = code;
    error.message = message;
    if let Some(inner) = inner {
        error.request_id = inner.request_id;
        error.date = inner.date;
    }
    error
}

/// A non-JSON body, on one line and short.
fn short_text(body: &str) -> String {
    let line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_error_json_gives_code_message_and_request_id() {
        let body = r#"{"error":{"code":"UnknownError","message":"","innerError":{"date":"2026-11-26T10:00:00","request-id":"abc-123","client-request-id":"abc-123"}}}"#;
        let error = parse_graph_error(500, body);
        assert_eq!(
            (error.code.as_str(), error.request_id.as_deref()),
            ("UnknownError", Some("abc-123"))
        );
        assert_eq!(error.date.as_deref(), Some("2026-11-26T10:00:00"));
    }

    #[test]
    fn a_message_that_is_itself_an_error_document_is_unwrapped() {
        let body = r#"{"error":{"code":"","message":"{\"error\":{\"code\":\"InvalidArgument\",\"message\":\"Only support data for the past 28 days\"}}"}}"#;
        let error = parse_graph_error(400, body);
        assert_eq!(error.code, "InvalidArgument");
        assert_eq!(error.message, "Only support data for the past 28 days");
    }

    #[test]
    fn a_non_json_body_is_shown_short_on_one_line() {
        let error = parse_graph_error(
            502,
            &format!(
                "<html>\n<body>Bad gateway {}</body></html>",
                "x".repeat(500)
            ),
        );
        assert!(error.message.starts_with("<html> <body>Bad gateway"));
        assert_eq!(error.message.chars().count(), 201);
    }
}
