//! Email through Microsoft Graph: `POST /v1.0/users/{from}/sendMail` with
//! the app registration's token (application permission `Mail.Send`), for
//! tenants where SMTP AUTH is turned off.
//!
//! Graph takes one body per message, so the HTML rendering is sent; the
//! plain text rendering is what `--dry-run` shows alongside.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::http::{classify_response, request_error};
use super::notifier::{Notifier, SendError};
use super::render::EmailContent;

/// A future that yields a token, boxed so the trait can be used as
/// `dyn AccessToken`.
pub(crate) type TokenFuture<'a> =
    Pin<Box<dyn Future<Output = Result<SecretString, String>> + Send + 'a>>;

/// Where graph-mail gets its bearer token: the source's app registration
/// (client credentials, managed identity, …). Implementations cache and
/// refresh tokens themselves; an error message must not contain secrets.
pub trait AccessToken: Send + Sync {
    /// A token for `https://graph.microsoft.com/.default`.
    fn graph_token(&self) -> TokenFuture<'_>;
}

/// A token handed over as is (for example from
/// `az account get-access-token --resource https://graph.microsoft.com`).
pub struct StaticToken(pub SecretString);

impl AccessToken for StaticToken {
    fn graph_token(&self) -> TokenFuture<'_> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }
}

/// Sends emails with Microsoft Graph's sendMail, as a graph-mail channel's
/// `from` mailbox.
pub(crate) struct GraphMailNotifier<'a> {
    /// The HTTP client, shared by every channel.
    pub http: &'a reqwest::Client,
    /// `{graph_url}/v1.0/users/{from}/sendMail`.
    pub url: reqwest::Url,
    /// Where the Graph access token comes from.
    pub token: &'a dyn AccessToken,
    /// How long one attempt may take (the channel's `timeout`).
    pub timeout: Duration,
}

impl Notifier for GraphMailNotifier<'_> {
    /// The JSON request body.
    type Message = String;

    async fn send(&self, body: &String) -> Result<(), SendError> {
        let token = self
            .token
            .graph_token()
            .await
            .map_err(|e| SendError::transient(format!("cannot get a Graph token: {e}")))?;
        let response = self
            .http
            .post(self.url.clone())
            .timeout(self.timeout)
            .bearer_auth(token.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await
            .map_err(request_error)?;
        classify_response(response).await
    }
}

/// The sendMail endpoint of mailbox `from`.
pub(crate) fn send_mail_url(graph_url: &str, from: &str) -> Result<reqwest::Url, String> {
    let mut url = reqwest::Url::parse(graph_url).map_err(|e| format!("`graph_url`: {e}"))?;
    url.path_segments_mut()
        .map_err(|()| "`graph_url` cannot take a path".to_owned())?
        .pop_if_empty()
        .extend(["v1.0", "users", from, "sendMail"]);
    Ok(url)
}

/// The sendMail request body: the HTML rendering to every recipient, with
/// the delivery id as the `X-Groupwarden-Delivery` header (Graph accepts
/// only custom `X-` headers on a message; it sets the `Message-ID` and
/// `Date` itself) and the CSV attachment as a `fileAttachment`.
pub(crate) fn send_mail_body(
    recipients: &[String],
    content: &EmailContent,
    delivery_id: &str,
) -> String {
    let to: Vec<_> = recipients
        .iter()
        .map(|address| json!({ "emailAddress": { "address": address } }))
        .collect();
    let attachments: Vec<_> = content
        .attachments
        .iter()
        .map(|file| {
            json!({
                "@odata.type": "#microsoft.graph.fileAttachment",
                "name": file.filename,
                "contentType": file.content_type,
                "contentBytes": BASE64_STANDARD.encode(&file.content),
            })
        })
        .collect();
    let mut message = json!({
        "subject": content.subject,
        "body": { "contentType": "HTML", "content": content.html },
        "toRecipients": to,
        "internetMessageHeaders": [
            { "name": "X-Groupwarden-Delivery", "value": delivery_id },
        ],
    });
    if !attachments.is_empty() {
        message["attachments"] = serde_json::Value::Array(attachments);
    }
    json!({ "message": message, "saveToSentItems": false }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_names_the_sending_mailbox() {
        let url = send_mail_url("https://graph.microsoft.com/", "alerts@contoso.com").unwrap();
        assert_eq!(
            url.as_str(),
            "https://graph.microsoft.com/v1.0/users/alerts@contoso.com/sendMail"
        );
    }
}
