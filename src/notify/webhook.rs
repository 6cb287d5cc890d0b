//! Webhooks: a signed HTTPS POST.
//!
//! With a signing key, every request carries
//! `X-Groupwarden-Timestamp: <unix seconds>` and
//! `X-Groupwarden-Signature: sha256=<hex>`, the HMAC-SHA256 with the key
//! over `<timestamp>.<body>`. Receivers recompute it and reject stale
//! timestamps, which stops replays (docs/notifications.md has examples).
//!
//! Every request carries `X-Groupwarden-Delivery: <delivery id>`, the
//! same on every attempt and every run, so a receiver can drop the
//! duplicates a timeout or a crash causes (the JSON payload has it as
//! `delivery_id` too).

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use super::http::{classify_response, request_error};
use super::notifier::{Notifier, SendError};

/// The header holding the request's Unix time in seconds (signed requests
/// only).
pub const TIMESTAMP_HEADER: &str = "x-groupwarden-timestamp";
/// The header holding the message's delivery id: an idempotency key,
/// identical on every attempt and retry run.
pub const DELIVERY_HEADER: &str = "x-groupwarden-delivery";
/// The header holding `sha256=<hex>`, the request's HMAC signature
/// (signed requests only; see [`signature`]).
pub const SIGNATURE_HEADER: &str = "x-groupwarden-signature";

/// POSTs a JSON body to one webhook, signed when the channel has a key.
pub struct WebhookNotifier<'a> {
    /// The HTTP client, shared by every channel.
    pub http: &'a reqwest::Client,
    /// The endpoint; it may carry a key, so it is never logged whole.
    pub url: reqwest::Url,
    /// The channel's extra `headers`, sent with every request.
    pub headers: HeaderMap,
    /// The key from `secret_env` or `secret_file`; `None` sends unsigned
    /// requests.
    pub signing_key: Option<SecretString>,
    /// How long one attempt may take (the channel's `timeout`).
    pub timeout: Duration,
    /// The message's delivery id, sent as [`DELIVERY_HEADER`].
    pub delivery_id: String,
}

impl Notifier for WebhookNotifier<'_> {
    type Message = String;

    async fn send(&self, body: &String) -> Result<(), SendError> {
        let mut request = self
            .http
            .post(self.url.clone())
            .timeout(self.timeout)
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(DELIVERY_HEADER, &self.delivery_id);
        // Signed per attempt: a retry carries a fresh timestamp, so
        // receivers that reject old timestamps accept it.
        if let Some(key) = &self.signing_key {
            let timestamp = jiff::Timestamp::now().as_second();
            request = request
                .header(TIMESTAMP_HEADER, timestamp.to_string())
                .header(
                    SIGNATURE_HEADER,
                    signature(key.expose_secret().as_bytes(), timestamp, body.as_bytes()),
                );
        }
        let response = request
            .body(body.clone())
            .send()
            .await
            .map_err(request_error)?;
        classify_response(response).await
    }
}

/// `sha256=<hex>` of HMAC-SHA256(key, `<timestamp>.<body>`).
pub fn signature(key: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256={hex}")
}

/// The configured extra headers (checked by validation).
pub fn extra_headers(
    headers: &std::collections::BTreeMap<String, String>,
) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("header `{name}`: {e}"))?;
        let value = HeaderValue::from_str(value).map_err(|e| format!("header `{name}`: {e}"))?;
        map.insert(name, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_openssl() {
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac key
        assert_eq!(
            signature(b"key", 1_700_000_000, br#"{"a":1}"#),
            "sha256=a438e398bfafc57e4396bb7fc2304422f0f768e965d073ca313cb52e22e6ad03"
        );
    }
}
