//! Graph's use of the shared retry policy ([`crate::retry`]): which
//! [`SourceError`]s are worth another try, and the error that says why
//! the fetch gave up.

use std::time::Duration;

use super::error::SourceError;
use crate::retry::{RetryPolicy, Stopped, Transient, retry_blocking};

impl Transient for SourceError {
    fn is_transient(&self) -> bool {
        SourceError::is_transient(self)
    }

    fn retry_after(&self) -> Option<Duration> {
        SourceError::retry_after(self)
    }
}

/// Runs `attempt` until it succeeds, fails for good, or the policy says
/// stop. `attempt` gets the attempt number, from 1. An error that is not
/// worth retrying comes back as it is; one the policy stopped retrying
/// comes back inside [`SourceError::GaveUp`].
pub(crate) fn with_retries<T>(
    policy: &RetryPolicy,
    attempt: impl FnMut(u32) -> Result<T, SourceError>,
) -> Result<T, SourceError> {
    let warn = |error: &SourceError, attempt: u32, wait: Duration| {
        tracing::warn!(
            attempt,
            wait_ms = wait.as_millis() as u64,
            "{error}; trying again"
        );
    };
    retry_blocking(policy, attempt, warn).map_err(gave_up)
}

/// The error for retries that ended: with the reason and, for throttling,
/// advice that the retry warnings leave out.
fn gave_up(stopped: Stopped<SourceError>) -> SourceError {
    let Some(why) = stopped.gave_up else {
        return stopped.error;
    };
    let reason = match stopped.error.advice_when_given_up() {
        Some(advice) => format!("{why}. {advice}"),
        None => why.to_string(),
    };
    SourceError::GaveUp {
        attempts: stopped.attempts,
        elapsed: stopped.elapsed,
        reason,
        last: Box::new(stopped.error),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::source::error::Endpoint;

    fn policy(max_attempts: u32, deadline: Duration) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            deadline: Some(deadline),
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            jitter: true,
            max_retry_after: None,
        }
    }

    fn unreachable() -> SourceError {
        SourceError::Transport {
            endpoint: Endpoint::Graph,
            host: "h".into(),
            message: "connection refused".into(),
        }
    }

    #[test]
    fn transient_errors_are_retried_up_to_max_attempts() {
        let calls = Cell::new(0);
        let result: Result<(), _> = with_retries(&policy(3, Duration::from_secs(60)), |_| {
            calls.set(calls.get() + 1);
            Err(unreachable())
        });
        assert_eq!(calls.get(), 3);
        let message = result.unwrap_err().to_string();
        assert!(
            message.starts_with("gave up fetching the report after 3 attempt(s)"),
            "{message}"
        );
        assert!(message.contains("max_attempts = 3"), "{message}");
    }

    #[test]
    fn success_after_a_fault_is_success() {
        let result = with_retries(&policy(3, Duration::from_secs(60)), |n| {
            if n < 2 { Err(unreachable()) } else { Ok(n) }
        });
        assert_eq!(result.unwrap(), 2);
    }

    #[test]
    fn a_wait_past_the_deadline_gives_up_at_once() {
        let calls = Cell::new(0);
        let result: Result<(), _> = with_retries(&policy(10, Duration::from_millis(1)), |_| {
            calls.set(calls.get() + 1);
            Err(SourceError::Download {
                status: 503,
                retry_after: Some(Duration::from_secs(3600)),
            })
        });
        assert_eq!(calls.get(), 1);
        assert!(result.unwrap_err().to_string().contains("deadline"));
    }

    #[test]
    fn giving_up_on_throttling_explains_the_limits() {
        let throttled = || {
            SourceError::Graph(crate::source::error::GraphError {
                status: 429,
                code: String::new(),
                message: String::new(),
                request_id: None,
                date: None,
                retry_after: Some(Duration::ZERO),
                for_date: false,
                as_json: false,
                managed_identity: false,
            })
        };
        let message = with_retries::<()>(&policy(2, Duration::from_secs(60)), |_| Err(throttled()))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("14 requests for this report per 10 minutes"),
            "{message}"
        );
        assert!(
            !throttled().to_string().contains("14 requests"),
            "retry warnings stay short"
        );
    }

    #[test]
    fn permanent_errors_are_not_retried() {
        let calls = Cell::new(0);
        let result: Result<(), _> = with_retries(&policy(5, Duration::from_secs(60)), |_| {
            calls.set(calls.get() + 1);
            Err(SourceError::Config {
                key: "x",
                message: "bad".into(),
            })
        });
        assert_eq!(calls.get(), 1);
        assert!(matches!(result, Err(SourceError::Config { .. })));
    }
}
