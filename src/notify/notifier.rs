//! One trait every channel implements, and one retry loop around all of
//! them (the Vigil way): a channel only says how to send a message once
//! and whether a failure is worth another try; the waiting and giving up
//! are the shared [`crate::retry`] policy's.

use std::future::Future;
use std::time::Duration;

use crate::retry::{GaveUp, RetryPolicy, Stopped, Transient, retry_async};

/// Sends a rendered message once.
pub(crate) trait Notifier {
    /// What one attempt sends; rendered once, sent on every attempt.
    type Message: Sync;

    /// One attempt; the retrying is [`send_with_retries`]'s.
    fn send(&self, message: &Self::Message) -> impl Future<Output = Result<(), SendError>> + Send;
}

/// Why one attempt failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Worth another try: network trouble, a timeout, a server error,
    /// throttling (maybe with the server's `Retry-After`).
    Transient {
        /// What went wrong, for the report.
        message: String,
        /// How long the server asked to wait.
        retry_after: Option<Duration>,
    },
    /// Trying again will not help: a refused address, bad credentials, a
    /// rejected request.
    Permanent {
        /// What went wrong, for the report.
        message: String,
    },
}

impl SendError {
    /// A transient failure without a `Retry-After`.
    pub fn transient(message: impl Into<String>) -> SendError {
        SendError::Transient {
            message: message.into(),
            retry_after: None,
        }
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        match self {
            SendError::Transient { message, .. } | SendError::Permanent { message } => message,
        }
    }
}

impl Transient for SendError {
    fn is_transient(&self) -> bool {
        matches!(self, SendError::Transient { .. })
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::Transient { retry_after, .. } => *retry_after,
            SendError::Permanent { .. } => None,
        }
    }
}

/// How a message failed after the retries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Attempts made, the first included.
    pub attempts: u32,
    /// The last attempt's error.
    pub error: SendError,
}

/// Sends `message` under the channel's retry policy ([`crate::retry`]):
/// transient failures are tried again after the server's `Retry-After` or
/// the backoff. Returns the attempts it took.
pub(crate) async fn send_with_retries<N: Notifier>(
    notifier: &N,
    message: &N::Message,
    policy: &RetryPolicy,
    channel: &str,
) -> Result<u32, Failure> {
    let warn = |error: &SendError, attempt: u32, wait: Duration| {
        tracing::warn!(
            channel,
            attempt,
            wait_ms = wait.as_millis() as u64,
            "delivery failed, will retry: {}",
            error.message()
        );
    };
    let send = |attempt| async move { notifier.send(message).await.map(|()| attempt) };
    retry_async(policy, send, warn).await.map_err(failure)
}

/// The failure for retries that ended; a `Retry-After` too long to honour
/// is named in the message.
fn failure(stopped: Stopped<SendError>) -> Failure {
    let error = match (stopped.error, stopped.gave_up) {
        (
            SendError::Transient {
                message,
                retry_after,
            },
            Some(too_long @ GaveUp::RetryAfterTooLong { .. }),
        ) => SendError::Transient {
            message: format!("{message}; {too_long}"),
            retry_after,
        },
        (error, _) => error,
    };
    Failure {
        attempts: stopped.attempts,
        error,
    }
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
            max_attempts: retries + 1,
            deadline: None,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_secs(60),
            jitter: false,
            max_retry_after: Some(Duration::from_secs(5)),
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
        assert_eq!(run(send_with_retries(&flaky, &(), &policy(2), "c")), Ok(3));
    }

    #[test]
    fn retries_run_out() {
        let flaky = Flaky(Mutex::new(vec![
            SendError::transient("a"),
            SendError::transient("b"),
        ]));
        let failure = run(send_with_retries(&flaky, &(), &policy(1), "c")).unwrap_err();
        assert_eq!(failure.attempts, 2);
        assert_eq!(failure.error.message(), "a");
    }

    #[test]
    fn refusals_are_not_retried() {
        let flaky = Flaky(Mutex::new(vec![SendError::Permanent {
            message: "550 no such user".into(),
        }]));
        assert_eq!(
            run(send_with_retries(&flaky, &(), &policy(5), "c"))
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
            &policy(5),
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
}
