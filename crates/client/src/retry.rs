//! Retries: exponential backoff with full jitter, the server's `retry-after-ms` / `Retry-After`
//! honoured, bounded by a number of attempts AND a total deadline.
//!
//! Only transient failures are retried (see [`crate::Error::is_retryable`] and
//! [`crate::transport::Envelope::is_transient_failure`]). A retry resends the identical bytes,
//! so every task keeps its `taskUUID` and the server's idempotency makes the retry safe: a task
//! that already ran is answered from the store, not run or charged again.

use crate::error::{Error, GaveUp};
use std::future::Future;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// How failed requests are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first try included; 1 turns retries off. At least 1.
    pub max_attempts: u32,
    /// The backoff cap before the first retry; it doubles per retry.
    pub initial_backoff: Duration,
    /// The largest backoff cap.
    pub max_backoff: Duration,
    /// The time from the first attempt after which no attempt starts and a running one is cut
    /// off ([`Error::Timeout`]).
    pub total_deadline: Duration,
    /// Whether to wait as long as the server's `retry-after-ms` / `Retry-After` says (capped by
    /// `max_retry_after`) instead of the computed backoff.
    pub honor_retry_after: bool,
    /// The longest wait accepted from a server's retry-after header.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, backoff from 500 ms doubling up to 30 s, 5 minutes in all.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            total_deadline: Duration::from_secs(300),
            honor_retry_after: true,
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// No retries: one attempt, still bounded by the default total deadline.
    pub fn none() -> Self {
        RetryPolicy { max_attempts: 1, ..Self::default() }
    }

    /// Sets [`RetryPolicy::max_attempts`] (values below 1 mean 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets [`RetryPolicy::initial_backoff`] and [`RetryPolicy::max_backoff`].
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Sets [`RetryPolicy::total_deadline`].
    pub fn total_deadline(mut self, d: Duration) -> Self {
        self.total_deadline = d;
        self
    }

    /// Sets [`RetryPolicy::honor_retry_after`].
    pub fn honor_retry_after(mut self, yes: bool) -> Self {
        self.honor_retry_after = yes;
        self
    }

    /// The cap of the backoff before retry number `retry` (0 for the first retry):
    /// `min(max_backoff, initial_backoff * 2^retry)`.
    pub fn backoff_cap(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(31));
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }

    /// A full-jitter backoff: uniformly random between zero and [`RetryPolicy::backoff_cap`].
    pub fn jittered_backoff(&self, retry: u32) -> Duration {
        let cap = self.backoff_cap(retry).as_micros().min(u128::from(u64::MAX)) as u64;
        Duration::from_micros(rand::random_range(0..=cap))
    }

    /// How long to wait before retry number `retry`, given the server's retry-after if any.
    pub fn delay(&self, retry: u32, server_says: Option<Duration>) -> Duration {
        match server_says {
            Some(d) if self.honor_retry_after => d.min(self.max_retry_after),
            _ => self.jittered_backoff(retry),
        }
    }
}

/// Reads the server's wait hint: `retry-after-ms` (milliseconds) first, then `Retry-After`
/// (delay-seconds or an HTTP date, relative to `now`). Unparseable values are ignored.
pub fn parse_retry_after(
    retry_after_ms: Option<&str>,
    retry_after: Option<&str>,
    now: SystemTime,
) -> Option<Duration> {
    if let Some(ms) = retry_after_ms.map(str::trim).and_then(|s| s.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let v = retry_after?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Return this result.
    Done,
    /// Retry; the server asked for this wait, if it said.
    Retry(Option<Duration>),
}

/// The result of a retry loop with its bookkeeping.
#[derive(Debug)]
pub struct Outcome<T> {
    /// The last attempt's result.
    pub result: Result<T, Error>,
    /// Attempts made, the first included.
    pub attempts: u32,
    /// Time from the first attempt to the end.
    pub elapsed: Duration,
    /// Set when the loop stopped although the last result was still retryable (never when
    /// the policy allows a single attempt).
    pub gave_up: Option<GaveUp>,
}

impl<T> Outcome<T> {
    /// The result, with a retryable failure that ran out of attempts or time wrapped in
    /// [`Error::Exhausted`].
    pub fn into_result(self) -> Result<T, Error> {
        match (self.result, self.gave_up) {
            (Err(e), Some(reason)) => Err(Error::Exhausted {
                attempts: self.attempts,
                elapsed: self.elapsed,
                reason,
                last: Box::new(e),
            }),
            (r, _) => r,
        }
    }
}

/// Runs `attempt` until `verdict` says done, attempts run out, or the next attempt could not
/// start before `deadline` (from now). Each attempt is cut off at the deadline.
pub async fn run<T, F, Fut, V>(
    policy: &RetryPolicy,
    deadline: Duration,
    mut attempt: F,
    verdict: V,
) -> Outcome<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
    V: Fn(&Result<T, Error>) -> Verdict,
{
    let start = Instant::now();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let remaining = deadline.saturating_sub(start.elapsed());
        let result = match tokio::time::timeout(remaining, attempt()).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout { after: remaining }),
        };
        let server_says = match verdict(&result) {
            Verdict::Done => return Outcome { result, attempts, elapsed: start.elapsed(), gave_up: None },
            Verdict::Retry(after) => after,
        };
        let wait = policy.delay(attempts - 1, server_says);
        let stop = if policy.max_attempts <= 1 {
            // Retries are off: the failure is returned as it is, not as "gave up".
            return Outcome { result, attempts, elapsed: start.elapsed(), gave_up: None };
        } else if attempts >= policy.max_attempts {
            Some(GaveUp::MaxAttempts)
        } else if start.elapsed() + wait >= deadline {
            Some(GaveUp::Deadline)
        } else {
            None
        };
        if let Some(reason) = stop {
            return Outcome { result, attempts, elapsed: start.elapsed(), gave_up: Some(reason) };
        }
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn backoff_doubles_up_to_the_cap_with_full_jitter() {
        let p = RetryPolicy::default().backoff(Duration::from_millis(100), Duration::from_millis(1000));
        assert_eq!(p.backoff_cap(0), Duration::from_millis(100));
        assert_eq!(p.backoff_cap(1), Duration::from_millis(200));
        assert_eq!(p.backoff_cap(3), Duration::from_millis(800));
        assert_eq!(p.backoff_cap(4), Duration::from_millis(1000));
        assert_eq!(p.backoff_cap(40), Duration::from_millis(1000));
        let samples: Vec<Duration> = (0..200).map(|_| p.jittered_backoff(2)).collect();
        assert!(samples.iter().all(|d| *d <= Duration::from_millis(400)));
        // Full jitter spreads over the whole range, not just near the cap.
        assert!(samples.iter().any(|d| *d < Duration::from_millis(200)));
        assert!(samples.iter().any(|d| *d > Duration::from_millis(200)));
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after(Some("250"), Some("9"), now), Some(Duration::from_millis(250)));
        assert_eq!(parse_retry_after(Some("1.5"), None, now), Some(Duration::from_micros(1500)));
        assert_eq!(parse_retry_after(None, Some("3"), now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(Some("soon"), Some("3"), now), Some(Duration::from_secs(3)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(None, Some(&date), now), Some(Duration::from_secs(7)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_retry_after(None, Some(&past), now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(None, Some("tomorrow"), now), None);
        assert_eq!(parse_retry_after(None, None, now), None);
    }

    #[test]
    fn server_hint_is_honoured_and_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(0, Some(Duration::from_secs(2))), Duration::from_secs(2));
        assert_eq!(p.delay(0, Some(Duration::from_secs(600))), p.max_retry_after);
        let q = p.clone().honor_retry_after(false);
        assert!(q.delay(0, Some(Duration::from_secs(2))) <= q.initial_backoff);
    }

    fn transient() -> Result<(), Error> {
        Err(Error::Io { message: "reset".into(), source: None })
    }

    fn by_error(r: &Result<(), Error>) -> Verdict {
        match r {
            Err(e) if e.is_retryable() => Verdict::Retry(None),
            _ => Verdict::Done,
        }
    }

    #[tokio::test]
    async fn attempts_are_bounded_and_counted() {
        let n = AtomicU32::new(0);
        let p = RetryPolicy::default()
            .max_attempts(3)
            .backoff(Duration::from_millis(1), Duration::from_millis(2));
        let out = run(
            &p,
            Duration::from_secs(10),
            || async {
                n.fetch_add(1, Ordering::SeqCst);
                transient()
            },
            by_error,
        )
        .await;
        assert_eq!((out.attempts, n.load(Ordering::SeqCst)), (3, 3));
        assert_eq!(out.gave_up, Some(GaveUp::MaxAttempts));
        assert!(matches!(out.into_result(), Err(Error::Exhausted { attempts: 3, .. })));
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried() {
        let n = AtomicU32::new(0);
        let out = run(
            &RetryPolicy::default(),
            Duration::from_secs(10),
            || async {
                n.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(Error::Protocol("bad".into()))
            },
            by_error,
        )
        .await;
        assert_eq!(out.attempts, 1);
        assert!(matches!(out.into_result(), Err(Error::Protocol(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_stops_retries_and_cuts_a_hanging_attempt() {
        let p = RetryPolicy::default().max_attempts(100);
        // The server asks for 400 ms each time; the deadline of 1 s allows attempts at 0, 400, 800.
        let out = run(
            &p,
            Duration::from_secs(1),
            || async { transient() },
            |_| Verdict::Retry(Some(Duration::from_millis(400))),
        )
        .await;
        assert_eq!(out.attempts, 3);
        assert_eq!(out.gave_up, Some(GaveUp::Deadline));
        assert!(out.elapsed < Duration::from_secs(1));
        // An attempt that never answers is cut off at the deadline.
        let out =
            run(&p, Duration::from_millis(300), std::future::pending::<Result<(), Error>>, by_error).await;
        assert!(matches!(out.result, Err(Error::Timeout { .. })));
        assert_eq!(out.attempts, 1);
        assert_eq!(out.gave_up, Some(GaveUp::Deadline));
    }
}
