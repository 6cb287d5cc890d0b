//! Bounded retries: the server's `Retry-After` when it gives one,
//! otherwise exponential backoff with jitter (from `backon`); a maximum
//! number of attempts and an overall deadline, whichever comes first.

use std::time::{Duration, Instant, SystemTime};

use backon::BackoffBuilder;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::error::SourceError;

/// How hard to try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// No attempt starts after this long from the first.
    pub deadline: Duration,
    /// The first backoff wait; it doubles each time.
    pub initial_delay: Duration,
    /// The longest backoff wait.
    pub max_delay: Duration,
}

/// Runs `attempt` until it succeeds, fails for good, or the policy says
/// stop. `attempt` gets the attempt number, from 1.
pub fn with_retries<T>(
    policy: &RetryPolicy,
    mut attempt: impl FnMut(u32) -> Result<T, SourceError>,
) -> Result<T, SourceError> {
    let started = Instant::now();
    let mut backoff = backon::ExponentialBuilder::new()
        .with_min_delay(policy.initial_delay)
        .with_max_delay(policy.max_delay)
        .with_jitter()
        .without_max_times()
        .build();
    let mut number = 1;
    loop {
        let error = match attempt(number) {
            Ok(value) => return Ok(value),
            Err(error) if !error.is_transient() => return Err(error),
            Err(error) => error,
        };
        let wait = error
            .retry_after()
            .or_else(|| backoff.next())
            .unwrap_or(policy.max_delay);
        let give_up = |reason: String, last: SourceError| {
            let reason = match last.advice_when_given_up() {
                Some(advice) => format!("{reason}. {advice}"),
                None => reason,
            };
            SourceError::GaveUp {
                attempts: number,
                elapsed: started.elapsed(),
                reason,
                last: Box::new(last),
            }
        };
        if number >= policy.max_attempts {
            return Err(give_up(
                format!("no attempts left (max_attempts = {})", policy.max_attempts),
                error,
            ));
        }
        if started.elapsed() + wait > policy.deadline {
            let reason = format!(
                "waiting {wait:.1?} more would pass the deadline of {:.1?}",
                policy.deadline
            );
            return Err(give_up(reason, error));
        }
        tracing::warn!(
            attempt = number,
            wait_ms = wait.as_millis() as u64,
            "{error}; trying again"
        );
        std::thread::sleep(wait);
        number += 1;
    }
}

/// `Retry-After` as seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    // A date in the past means "now".
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use reqwest::header::HeaderValue;

    use super::*;
    use crate::source::error::Endpoint;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(retry_after(&headers("7")), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after(&headers("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::ZERO)
        );
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let wait = retry_after(&headers(&later)).unwrap();
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        assert_eq!(retry_after(&headers("soon")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    fn policy(max_attempts: u32, deadline: Duration) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            deadline,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
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
