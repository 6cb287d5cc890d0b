//! What webhooks and graph-mail share: how an HTTP answer or error
//! becomes a [`SendError`], without ever showing the request URL (a chat
//! webhook URL carries its key).

use super::notifier::SendError;
use crate::retry::retry_after;

/// How much of an error response body is quoted in the error.
const BODY_QUOTED: usize = 300;

/// 2xx is delivered; throttling, timeouts and server errors are worth a
/// retry (after `Retry-After` when given); other refusals are final.
pub(super) async fn classify_response(response: reqwest::Response) -> Result<(), SendError> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = retry_after(response.headers());
    let body = response.text().await.unwrap_or_default();
    let quoted: String = body.chars().take(BODY_QUOTED).collect();
    let message = if quoted.trim().is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {}", quoted.trim())
    };
    let retryable = status.is_server_error() || matches!(status.as_u16(), 408 | 425 | 429);
    if retryable {
        Err(SendError::Transient {
            message,
            retry_after,
        })
    } else {
        Err(SendError::Permanent { message })
    }
}

/// Network trouble and timeouts are worth a retry.
pub(super) fn request_error(error: reqwest::Error) -> SendError {
    let error = error.without_url();
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    if error.is_builder() {
        SendError::Permanent { message }
    } else {
        SendError::transient(message)
    }
}
