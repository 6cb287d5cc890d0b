//! One retry policy for everything that talks to a server: the Microsoft
//! Graph download (blocking) and every notification channel (async).
//!
//! An attempt that fails for a reason worth another try waits for the
//! server's `Retry-After` when it gives one, otherwise for an exponential
//! backoff (from `backon`: doubling, capped, optionally with jitter). The
//! retries end at the first of: no attempts left, a wait that would pass
//! the deadline, or a `Retry-After` longer than the policy honours.
//! One `Retries` value makes those decisions; [`retry_blocking`] and
//! [`retry_async`] are the two loops around it, differing only in how they
//! sleep. [`retry_after`] is the one reader of the `Retry-After` header.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// How hard to try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// No attempt starts after this long from the first; `None`: no limit.
    pub deadline: Option<Duration>,
    /// The first backoff wait; it doubles each time.
    pub initial_delay: Duration,
    /// The longest backoff wait.
    pub max_delay: Duration,
    /// Adds up to as much again to each backoff wait, at random, so that
    /// clients that failed together do not retry together.
    pub jitter: bool,
    /// A longer `Retry-After` ends the retries at once instead of
    /// stalling; `None`: any is honoured (within the deadline).
    pub max_retry_after: Option<Duration>,
}

impl RetryPolicy {
    /// The backoff waits, in order: doubling from `initial_delay`, never
    /// above `max_delay`.
    fn backoff(&self) -> ExponentialBackoff {
        let builder = ExponentialBuilder::new()
            .with_factor(2.0)
            // backon does not cap the first wait; the policy does.
            .with_min_delay(self.initial_delay.min(self.max_delay))
            .with_max_delay(self.max_delay)
            .without_max_times();
        let builder = if self.jitter {
            builder.with_jitter()
        } else {
            builder
        };
        builder.build()
    }
}

/// What a failed attempt says about trying again.
pub(crate) trait Transient {
    /// Whether another attempt may succeed (network trouble, throttling,
    /// a server error); a refusal that will not change is not.
    fn is_transient(&self) -> bool;

    /// How long the server asked to wait (`Retry-After`).
    fn retry_after(&self) -> Option<Duration>;
}

/// Why retrying stopped while the error was still worth another try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GaveUp {
    /// Every attempt the policy allows was made.
    NoAttemptsLeft {
        /// The policy's limit.
        max_attempts: u32,
    },
    /// The next wait would end after the deadline.
    PastDeadline {
        /// The wait that was due.
        wait: Duration,
        /// The policy's deadline.
        deadline: Duration,
    },
    /// The server asked to wait longer than the policy honours.
    RetryAfterTooLong {
        /// What the server asked for.
        retry_after: Duration,
        /// The policy's limit.
        max_retry_after: Duration,
    },
}

impl fmt::Display for GaveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GaveUp::NoAttemptsLeft { max_attempts } => {
                write!(f, "no attempts left (max_attempts = {max_attempts})")
            }
            GaveUp::PastDeadline { wait, deadline } => write!(
                f,
                "waiting {wait:.1?} more would pass the deadline of {deadline:.1?}"
            ),
            GaveUp::RetryAfterTooLong {
                retry_after,
                max_retry_after,
            } => write!(
                f,
                "the server asked to retry after {}s, longer than max_retry_after = {}",
                retry_after.as_secs(),
                crate::duration::ConfigDuration(*max_retry_after)
            ),
        }
    }
}

/// How the attempts ended without success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stopped<E> {
    /// The last attempt's error.
    pub error: E,
    /// Attempts made, the first included.
    pub attempts: u32,
    /// From the first attempt's start to the end.
    pub elapsed: Duration,
    /// Why a transient error was not tried again; `None` when the error
    /// was not transient.
    pub gave_up: Option<GaveUp>,
}

/// One operation's retries under a policy: the attempt count, the clock
/// and the backoff, and the decision after each failure.
struct Retries {
    policy: RetryPolicy,
    backoff: ExponentialBackoff,
    started: Instant,
    attempt: u32,
}

impl Retries {
    /// Before the first attempt.
    fn new(policy: &RetryPolicy) -> Retries {
        Retries {
            policy: *policy,
            backoff: policy.backoff(),
            started: Instant::now(),
            attempt: 1,
        }
    }

    /// The attempt under way, from 1.
    fn attempt(&self) -> u32 {
        self.attempt
    }

    /// After the current attempt failed with `error`: how long to wait
    /// before the next one, or how the attempts ended.
    fn after_failure<E: Transient>(&mut self, error: E) -> Result<(E, Duration), Stopped<E>> {
        let decision = if error.is_transient() {
            self.wait(error.retry_after(), self.started.elapsed())
                .map_err(Some)
        } else {
            Err(None)
        };
        match decision {
            Ok(wait) => {
                self.attempt += 1;
                Ok((error, wait))
            }
            Err(gave_up) => Err(Stopped {
                error,
                attempts: self.attempt,
                elapsed: self.started.elapsed(),
                gave_up,
            }),
        }
    }

    /// The wait after a transient failure `elapsed` after the first
    /// attempt started: the server's `retry_after`, else the next backoff
    /// step. The backoff steps on with every failure, as attempts count.
    fn wait(
        &mut self,
        retry_after: Option<Duration>,
        elapsed: Duration,
    ) -> Result<Duration, GaveUp> {
        let policy = &self.policy;
        let backoff = self.backoff.next().unwrap_or(policy.max_delay);
        if self.attempt >= policy.max_attempts {
            return Err(GaveUp::NoAttemptsLeft {
                max_attempts: policy.max_attempts,
            });
        }
        if let (Some(retry_after), Some(max_retry_after)) = (retry_after, policy.max_retry_after)
            && retry_after > max_retry_after
        {
            return Err(GaveUp::RetryAfterTooLong {
                retry_after,
                max_retry_after,
            });
        }
        let wait = retry_after.unwrap_or(backoff);
        match policy.deadline {
            Some(deadline) if elapsed.saturating_add(wait) > deadline => {
                Err(GaveUp::PastDeadline { wait, deadline })
            }
            _ => Ok(wait),
        }
    }
}

/// Runs `attempt` (given the attempt number, from 1) until it succeeds,
/// fails for good, or the policy says stop, sleeping the thread between
/// attempts. `before_retry` hears of each failure that will be retried,
/// with its attempt number and the wait, to log it.
pub(crate) fn retry_blocking<T, E: Transient>(
    policy: &RetryPolicy,
    mut attempt: impl FnMut(u32) -> Result<T, E>,
    mut before_retry: impl FnMut(&E, u32, Duration),
) -> Result<T, Stopped<E>> {
    let mut retries = Retries::new(policy);
    loop {
        let number = retries.attempt();
        let error = match attempt(number) {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let (error, wait) = retries.after_failure(error)?;
        before_retry(&error, number, wait);
        std::thread::sleep(wait);
    }
}

/// [`retry_blocking`] for async attempts: sleeps with tokio between them.
pub(crate) async fn retry_async<T, E: Transient, F: Future<Output = Result<T, E>>>(
    policy: &RetryPolicy,
    mut attempt: impl FnMut(u32) -> F,
    mut before_retry: impl FnMut(&E, u32, Duration),
) -> Result<T, Stopped<E>> {
    let mut retries = Retries::new(policy);
    loop {
        let number = retries.attempt();
        let error = match attempt(number).await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let (error, wait) = retries.after_failure(error)?;
        before_retry(&error, number, wait);
        tokio::time::sleep(wait).await;
    }
}

/// The `Retry-After` header of an answer, if it has a readable one.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    parse_retry_after(headers.get(RETRY_AFTER)?.to_str().ok()?)
}

/// A `Retry-After` value: a number of seconds, or an HTTP date (RFC 9110's
/// three forms, or any RFC 2822 date) of which a past one means now.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = match httpdate::parse_http_date(value) {
        Ok(when) => when,
        Err(_) => SystemTime::from(jiff::fmt::rfc2822::parse(value).ok()?.timestamp()),
    };
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

    /// A failure: transient or not, maybe with a `Retry-After`.
    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Failed {
        transient: bool,
        retry_after: Option<Duration>,
    }

    impl Transient for Failed {
        fn is_transient(&self) -> bool {
            self.transient
        }
        fn retry_after(&self) -> Option<Duration> {
            self.retry_after
        }
    }

    const FAULT: Failed = Failed {
        transient: true,
        retry_after: None,
    };

    fn throttled(seconds: u64) -> Failed {
        Failed {
            transient: true,
            retry_after: Some(Duration::from_secs(seconds)),
        }
    }

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            deadline: None,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            jitter: false,
            max_retry_after: None,
        }
    }

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    /// The waits `Retries` hands out for `failures`, or how it stopped.
    fn waits(policy: RetryPolicy, failures: &[Failed]) -> (Vec<Duration>, Option<Stopped<Failed>>) {
        let mut retries = Retries::new(&policy);
        let mut waits = Vec::new();
        for failure in failures {
            match retries.after_failure(failure.clone()) {
                Ok((_, wait)) => waits.push(wait),
                Err(stopped) => return (waits, Some(stopped)),
            }
        }
        (waits, None)
    }

    /// Rounds away backon's f32 arithmetic.
    fn in_ms(waits: &[Duration]) -> Vec<u128> {
        waits.iter().map(|w| (w.as_micros() + 500) / 1000).collect()
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            max_delay: ms(3000),
            ..policy(10)
        };
        let (waits, stopped) = waits(policy, &[FAULT; 5]);
        assert_eq!(in_ms(&waits), [500, 1000, 2000, 3000, 3000]);
        assert_eq!(stopped, None);
    }

    #[test]
    fn the_first_wait_is_capped_too() {
        let policy = RetryPolicy {
            initial_delay: ms(120_000),
            ..policy(3)
        };
        assert_eq!(in_ms(&waits(policy, &[FAULT; 2]).0), [60_000, 60_000]);
    }

    #[test]
    fn jitter_adds_at_most_as_much_again() {
        let policy = RetryPolicy {
            jitter: true,
            ..policy(10)
        };
        let (waits, _) = waits(policy, &[FAULT; 3]);
        for (wait, base) in waits.iter().zip([500, 1000, 2000]) {
            assert!(*wait >= ms(base) && *wait <= ms(2 * base), "{wait:?}");
        }
    }

    #[test]
    fn retry_after_wins_and_the_backoff_still_steps_on() {
        let (waits, _) = waits(policy(10), &[FAULT, throttled(7), FAULT]);
        assert_eq!(in_ms(&waits), [500, 7000, 2000]);
    }

    #[test]
    fn attempts_run_out() {
        let (waits, stopped) = waits(policy(3), &[FAULT, throttled(1), FAULT]);
        assert_eq!(waits.len(), 2);
        let stopped = stopped.unwrap();
        assert_eq!(stopped.attempts, 3);
        assert_eq!(stopped.error, FAULT);
        assert_eq!(
            stopped.gave_up,
            Some(GaveUp::NoAttemptsLeft { max_attempts: 3 })
        );
        assert_eq!(
            stopped.gave_up.unwrap().to_string(),
            "no attempts left (max_attempts = 3)"
        );
    }

    #[test]
    fn one_attempt_means_no_retry() {
        let (waits, stopped) = waits(policy(1), &[FAULT]);
        assert!(waits.is_empty());
        assert_eq!(stopped.unwrap().attempts, 1);
    }

    #[test]
    fn errors_that_will_not_change_stop_at_once() {
        let refused = Failed {
            transient: false,
            retry_after: None,
        };
        let (waits, stopped) = waits(policy(5), std::slice::from_ref(&refused));
        assert!(waits.is_empty());
        let stopped = stopped.unwrap();
        assert_eq!((stopped.attempts, stopped.gave_up), (1, None));
        assert_eq!(stopped.error, refused);
    }

    #[test]
    fn a_retry_after_beyond_the_limit_stops_at_once() {
        let policy = RetryPolicy {
            max_retry_after: Some(Duration::from_secs(300)),
            ..policy(5)
        };
        assert_eq!(
            waits(policy, &[throttled(300)]).0,
            [Duration::from_secs(300)]
        );
        let stopped = waits(policy, &[throttled(3600)]).1.unwrap();
        assert_eq!(stopped.attempts, 1);
        assert_eq!(
            stopped.gave_up.unwrap().to_string(),
            "the server asked to retry after 3600s, longer than max_retry_after = 5m"
        );
    }

    #[test]
    fn a_wait_past_the_deadline_stops() {
        let policy = RetryPolicy {
            deadline: Some(Duration::from_secs(60)),
            ..policy(10)
        };
        let mut retries = Retries::new(&policy);
        assert_eq!(retries.wait(None, Duration::from_secs(59)), Ok(ms(500)));
        assert_eq!(
            retries.wait(Some(Duration::from_secs(2)), Duration::from_secs(59)),
            Err(GaveUp::PastDeadline {
                wait: Duration::from_secs(2),
                deadline: Duration::from_secs(60)
            })
        );
        let reason = retries
            .wait(None, Duration::from_secs(60))
            .unwrap_err()
            .to_string();
        assert_eq!(reason, "waiting 2.0s more would pass the deadline of 60.0s");
    }

    fn quick(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            initial_delay: ms(1),
            max_delay: ms(2),
            ..policy(max_attempts)
        }
    }

    #[test]
    fn the_blocking_loop_retries_until_success() {
        let retried = Cell::new(Vec::new());
        let result = retry_blocking(
            &quick(3),
            |n| if n < 3 { Err(FAULT) } else { Ok(n) },
            |_, n, _| retried.set([retried.take(), vec![n]].concat()),
        );
        assert_eq!(result, Ok(3));
        assert_eq!(retried.take(), [1, 2]);
    }

    #[test]
    fn the_blocking_loop_stops_as_the_policy_says() {
        let calls = Cell::new(0);
        let result: Result<(), _> = retry_blocking(
            &quick(2),
            |_| {
                calls.set(calls.get() + 1);
                Err(FAULT)
            },
            |_, _, _| {},
        );
        assert_eq!(calls.get(), 2);
        assert_eq!(result.unwrap_err().attempts, 2);
    }

    #[test]
    fn the_async_loop_waits_for_retry_after() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let started = Instant::now();
        let result = runtime.block_on(retry_async(
            &quick(3),
            |n| async move {
                match n {
                    1 => Err(Failed {
                        transient: true,
                        retry_after: Some(ms(50)),
                    }),
                    _ => Ok(n),
                }
            },
            |_, _, _| {},
        ));
        assert_eq!(result, Ok(2));
        assert!(started.elapsed() >= ms(50));
    }

    fn header(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        for past in [
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Wednesday, 21-Oct-15 07:28:00 GMT",
            "Wed Oct 21 07:28:00 2015",
            "Wed, 21 Oct 2015 07:28:00 +0000",
        ] {
            assert_eq!(parse_retry_after(past), Some(Duration::ZERO), "{past}");
        }
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let wait = parse_retry_after(&later).unwrap();
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-5"), None);
    }

    #[test]
    fn retry_after_from_headers() {
        assert_eq!(retry_after(&header("7")), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&header("soon")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
