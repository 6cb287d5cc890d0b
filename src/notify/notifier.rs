//! One trait every channel implements, and one retry loop around all of
//! them (the Vigil way): a channel only says how to send a message once
//! and whether a failure is worth another try.

use std::future::Future;
use std::time::Duration;

use super::config::ChannelConfig;

/// Sends a rendered message once.
pub trait Notifier {
    /// What one attempt sends; rendered once, sent on every attempt.
    type Message: Sync;

    fn send(&self, message: &Self::Message) -> impl Future<Output = Result<(), SendError>> + Send;
}

/// Why one attempt failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Worth another try: network trouble, a timeout, a server error,
    /// throttling (maybe with the server's `Retry-After`).
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Trying again will not help: a refused address, bad credentials, a
    /// rejected request.
    Permanent { message: String },
}

impl SendError {
    pub fn transient(message: impl Into<String>) -> SendError {
        SendError::Transient {
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            SendError::Transient { message, .. } | SendError::Permanent { message } => message,
        }
    }
}

/// How hard to try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Further attempts after the first.
    pub retries: u32,
    /// Before the first retry; doubles each time, up to a minute.
    pub backoff: Duration,
    /// A longer `Retry-After` fails the delivery instead of stalling the run.
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    pub fn of(config: &ChannelConfig) -> RetryPolicy {
        RetryPolicy {
            retries: config.retries,
            backoff: Duration::from_millis(config.retry_backoff_ms),
            max_retry_after: Duration::from_secs(config.max_retry_after_seconds),
        }
    }

    /// The wait after failed attempt number `attempt` (1-based).
    fn backoff_after(&self, attempt: u32) -> Duration {
        let doubled = self.backoff.saturating_mul(1 << (attempt - 1).min(16));
        doubled.min(Duration::from_secs(60))
    }
}

/// How a message failed after the retries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub attempts: u32,
    pub error: SendError,
}

/// Sends `message`, retrying transient failures with exponential backoff
/// or the server's `Retry-After`, whichever the server asked for.
pub async fn send_with_retries<N: Notifier>(
    notifier: &N,
    message: &N::Message,
    policy: RetryPolicy,
    channel: &str,
) -> Result<u32, Failure> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let error = match notifier.send(message).await {
            Ok(()) => return Ok(attempt),
            Err(error @ SendError::Permanent { .. }) => {
                return Err(Failure {
                    attempts: attempt,
                    error,
                });
            }
            Err(error) if attempt > policy.retries => {
                return Err(Failure {
                    attempts: attempt,
                    error,
                });
            }
            Err(error) => error,
        };
        let wait = match &error {
            SendError::Transient {
                retry_after: Some(after),
                message,
            } if *after > policy.max_retry_after => {
                let message = format!(
                    "{message}; the server asked to retry after {}s, longer than max_retry_after_seconds = {}",
                    after.as_secs(),
                    policy.max_retry_after.as_secs()
                );
                return Err(Failure {
                    attempts: attempt,
                    error: SendError::Transient {
                        message,
                        retry_after: Some(*after),
                    },
                });
            }
            SendError::Transient {
                retry_after: Some(after),
                ..
            } => *after,
            _ => policy.backoff_after(attempt),
        };
        tracing::warn!(
            channel,
            attempt,
            wait_ms = wait.as_millis() as u64,
            "delivery failed, will retry: {}",
            error.message()
        );
        tokio::time::sleep(wait).await;
    }
}

/// The `Retry-After` header: seconds, or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let wait = when.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Fails with the queued errors, then succeeds.
    struct Flaky(Mutex<Vec<SendError>>);

    impl Notifier for Flaky {
        type Message = ();

        async fn send(&self, _: &()) -> Result<(), SendError> {
            match self.0.lock().unwrap().pop() {
                Some(error) => Err(error),
                None => Ok(()),
            }
        }
    }

    fn policy(retries: u32) -> RetryPolicy {
        RetryPolicy {
            retries,
            backoff: Duration::from_millis(1),
            max_retry_after: Duration::from_secs(5),
        }
    }

    fn run<T>(future: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn transient_failures_are_retried() {
        let flaky = Flaky(Mutex::new(vec![
            SendError::transient("503"),
            SendError::transient("timeout"),
        ]));
        assert_eq!(run(send_with_retries(&flaky, &(), policy(2), "c")), Ok(3));
    }

    #[test]
    fn retries_run_out() {
        let flaky = Flaky(Mutex::new(vec![
            SendError::transient("a"),
            SendError::transient("b"),
        ]));
        let failure = run(send_with_retries(&flaky, &(), policy(1), "c")).unwrap_err();
        assert_eq!(failure.attempts, 2);
        assert_eq!(failure.error.message(), "a");
    }

    #[test]
    fn refusals_are_not_retried() {
        let flaky = Flaky(Mutex::new(vec![SendError::Permanent {
            message: "550 no such user".into(),
        }]));
        assert_eq!(
            run(send_with_retries(&flaky, &(), policy(5), "c"))
                .unwrap_err()
                .attempts,
            1
        );
    }

    #[test]
    fn a_retry_after_beyond_the_limit_fails_at_once() {
        let later = SendError::Transient {
            message: "429".into(),
            retry_after: Some(Duration::from_secs(3600)),
        };
        let failure = run(send_with_retries(
            &Flaky(Mutex::new(vec![later])),
            &(),
            policy(5),
            "c",
        ))
        .unwrap_err();
        assert_eq!(failure.attempts, 1);
        assert!(
            failure.error.message().contains("retry after 3600s"),
            "{}",
            failure.error.message()
        );
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
