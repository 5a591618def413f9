//! Backoff arithmetic: exponential ceilings with full jitter, and `Retry-After`.
//!
//! Retry `n` (1 = the first retry) waits a uniformly random time in `[0, ceiling(n)]` where
//! `ceiling(n) = min(cap, base · 2^(n-1))` ("full jitter": spreads a burst of clients that failed
//! together, so they do not come back together). When the provider asked for a longer wait with
//! `Retry-After`, that wait is used instead.

use mediagate_core::model::RetryPolicy;
use std::sync::Arc;
use std::time::Duration;

/// Picks a wait in `[0, ceiling]`. Injectable so tests can pin the arithmetic.
pub type Jitter = Arc<dyn Fn(Duration) -> Duration + Send + Sync>;

/// Uniform in `[0, ceiling]`, at nanosecond resolution.
pub fn full_jitter() -> Jitter {
    Arc::new(|ceiling: Duration| {
        let max = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::random_range(0..=max))
    })
}

/// The backoff ceiling before retry `n` (1-based): `min(cap, base · 2^(n-1))`, saturating.
pub fn ceiling(policy: &RetryPolicy, n: u32) -> Duration {
    let factor = 1u64.checked_shl(n.saturating_sub(1)).unwrap_or(u64::MAX);
    Duration::from_millis(policy.base_ms.saturating_mul(factor).min(policy.cap_ms))
}

/// The wait before retry `n`: the jittered backoff, or the provider's `Retry-After` when longer.
pub fn delay(policy: &RetryPolicy, n: u32, jitter: &Jitter, retry_after: Option<Duration>) -> Duration {
    let backoff = jitter(ceiling(policy, n)).min(ceiling(policy, n));
    match retry_after {
        Some(ra) if ra > backoff => ra,
        _ => backoff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(base_ms: u64, cap_ms: u64) -> RetryPolicy {
        RetryPolicy { attempts: 10, base_ms, cap_ms, deadline_ms: 60_000 }
    }

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let p = policy(100, 1_000);
        let got: Vec<u64> = (1..=7).map(|n| ceiling(&p, n).as_millis() as u64).collect();
        assert_eq!(got, [100, 200, 400, 800, 1_000, 1_000, 1_000]);
        // Huge retry numbers saturate instead of overflowing.
        assert_eq!(ceiling(&p, 200), Duration::from_millis(1_000));
        assert_eq!(ceiling(&policy(u64::MAX / 2, u64::MAX), 64), Duration::from_millis(u64::MAX));
    }

    #[test]
    fn full_jitter_stays_within_the_ceiling_and_spreads() {
        let j = full_jitter();
        let ceiling = Duration::from_millis(100);
        let samples: Vec<Duration> = (0..2_000).map(|_| j(ceiling)).collect();
        assert!(samples.iter().all(|d| *d <= ceiling));
        // Full jitter is uniform over [0, ceiling]: both halves get a fair share.
        let low = samples.iter().filter(|d| **d < ceiling / 2).count();
        assert!((700..1_300).contains(&low), "{low} of 2000 below the midpoint");
        assert_eq!(j(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn retry_after_wins_only_when_longer() {
        let p = policy(100, 1_000);
        let max: Jitter = Arc::new(|c| c);
        let half: Jitter = Arc::new(|c| c / 2);
        assert_eq!(delay(&p, 3, &max, None), Duration::from_millis(400));
        assert_eq!(delay(&p, 3, &half, None), Duration::from_millis(200));
        assert_eq!(delay(&p, 3, &half, Some(Duration::from_secs(2))), Duration::from_secs(2));
        assert_eq!(delay(&p, 3, &max, Some(Duration::from_millis(50))), Duration::from_millis(400));
        // A jitter function that overshoots is clamped to the ceiling.
        let wild: Jitter = Arc::new(|c| c * 10);
        assert_eq!(delay(&p, 1, &wild, None), Duration::from_millis(100));
    }
}
