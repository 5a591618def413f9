//! A circuit breaker per provider.
//!
//! * **Closed**: traffic flows; `failures` consecutive failures open it.
//! * **Open**: no traffic for `cooldown` (the dispatcher goes straight to the fallback).
//! * **Half-open**: after the cooldown exactly one probe is let through; its success closes the
//!   circuit, its failure opens it for another cooldown. Others are refused while it runs, and a
//!   probe abandoned without a result (its task was cancelled) frees the slot for the next one.
//!
//! Time comes from `tokio::time::Instant`, so tests drive it with a paused clock.

use parking_lot::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit; 0 disables the breaker.
    pub failures: u32,
    /// How long the circuit stays open before a probe.
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig { failures: 5, cooldown: Duration::from_secs(30) }
    }
}

/// Why a breaker refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Open: a probe is let through after this much longer.
    Open(Duration),
    /// Half-open and another request is the probe: its verdict decides, at no known time.
    Probing,
}

/// The observable state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Traffic flows; this many consecutive failures so far.
    Closed(u32),
    /// Refusing traffic for this much longer.
    Open(Duration),
    /// Cooled down; the next request (or the running one) is the probe.
    HalfOpen,
}

#[derive(Debug)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// One provider's breaker.
#[derive(Debug)]
pub struct Breaker {
    cfg: BreakerConfig,
    inner: Mutex<Inner>,
}

/// Leave to send one request. Report its outcome with [`Permit::success`] or
/// [`Permit::failure`]; dropping it unreported frees a half-open probe slot.
#[must_use]
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    reported: bool,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(cfg: BreakerConfig) -> Self {
        Breaker { cfg, inner: Mutex::new(Inner::Closed { failures: 0 }) }
    }

    /// The state at `now`.
    pub fn state(&self, now: Instant) -> BreakerState {
        match *self.inner.lock() {
            Inner::Closed { failures } => BreakerState::Closed(failures),
            Inner::Open { until } if now < until => BreakerState::Open(until - now),
            Inner::Open { .. } | Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Leave to send a request at `now`, or why not.
    pub fn try_acquire(&self, now: Instant) -> Result<Permit<'_>, Refusal> {
        let mut inner = self.inner.lock();
        let probe = match *inner {
            Inner::Closed { .. } => false,
            Inner::Open { until } if now < until => return Err(Refusal::Open(until - now)),
            Inner::Open { .. } | Inner::HalfOpen { probing: false } => {
                *inner = Inner::HalfOpen { probing: true };
                true
            }
            // Another request is the probe; wait for its verdict (no time is known).
            Inner::HalfOpen { probing: true } => return Err(Refusal::Probing),
        };
        Ok(Permit { breaker: self, probe, reported: false })
    }
}

impl Permit<'_> {
    /// The request succeeded (or the provider answered, even with a refusal).
    pub fn success(mut self) {
        self.reported = true;
        let mut inner = self.breaker.inner.lock();
        match *inner {
            Inner::Closed { .. } => *inner = Inner::Closed { failures: 0 },
            Inner::HalfOpen { .. } if self.probe => *inner = Inner::Closed { failures: 0 },
            // A request let through before the circuit opened says nothing about now.
            _ => {}
        }
    }

    /// The request failed at `now`.
    pub fn failure(mut self, now: Instant) {
        self.reported = true;
        let cfg = self.breaker.cfg;
        let mut inner = self.breaker.inner.lock();
        match *inner {
            Inner::Closed { failures } => {
                let failures = failures + 1;
                *inner = if cfg.failures > 0 && failures >= cfg.failures {
                    Inner::Open { until: now + cfg.cooldown }
                } else {
                    Inner::Closed { failures }
                };
            }
            Inner::HalfOpen { .. } if self.probe => *inner = Inner::Open { until: now + cfg.cooldown },
            _ => {}
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.reported {
            let mut inner = self.breaker.inner.lock();
            if let Inner::HalfOpen { probing: true } = *inner {
                *inner = Inner::HalfOpen { probing: false };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn breaker(n: u32) -> Breaker {
        Breaker::new(BreakerConfig { failures: n, cooldown: 10 * S })
    }

    #[test]
    fn opens_after_n_consecutive_failures_only() {
        let b = breaker(3);
        let t = Instant::now();
        b.try_acquire(t).unwrap().failure(t);
        b.try_acquire(t).unwrap().failure(t);
        assert_eq!(b.state(t), BreakerState::Closed(2));
        // A success in between resets the count: failures must be consecutive.
        b.try_acquire(t).unwrap().success();
        assert_eq!(b.state(t), BreakerState::Closed(0));
        for _ in 0..2 {
            b.try_acquire(t).unwrap().failure(t);
        }
        assert_eq!(b.state(t), BreakerState::Closed(2));
        b.try_acquire(t).unwrap().failure(t);
        assert_eq!(b.state(t), BreakerState::Open(10 * S));
        assert_eq!(b.try_acquire(t + 4 * S).unwrap_err(), Refusal::Open(6 * S));
    }

    #[test]
    fn one_probe_after_the_cooldown_and_its_verdict_decides() {
        let b = breaker(1);
        let t = Instant::now();
        b.try_acquire(t).unwrap().failure(t);
        assert!(b.try_acquire(t + 10 * S - Duration::from_nanos(1)).is_err());
        let t1 = t + 10 * S;
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        let probe = b.try_acquire(t1).unwrap();
        // While the probe runs nobody else passes.
        assert_eq!(b.try_acquire(t1).unwrap_err(), Refusal::Probing);
        probe.failure(t1);
        assert_eq!(b.state(t1), BreakerState::Open(10 * S), "a failed probe re-opens for a full cooldown");
        let t2 = t1 + 10 * S;
        b.try_acquire(t2).unwrap().success();
        assert_eq!(b.state(t2), BreakerState::Closed(0));
        assert!(b.try_acquire(t2).is_ok());
    }

    #[test]
    fn an_abandoned_probe_frees_the_slot() {
        let b = breaker(1);
        let t = Instant::now();
        b.try_acquire(t).unwrap().failure(t);
        let t1 = t + 10 * S;
        drop(b.try_acquire(t1).unwrap());
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        assert!(b.try_acquire(t1).is_ok(), "the next request becomes the probe");
    }

    #[test]
    fn zero_disables_and_stale_results_do_not_flip_it() {
        let b = breaker(0);
        let t = Instant::now();
        for _ in 0..100 {
            b.try_acquire(t).unwrap().failure(t);
        }
        assert_eq!(b.state(t), BreakerState::Closed(100));

        let b = breaker(1);
        let early = b.try_acquire(t).unwrap();
        b.try_acquire(t).unwrap().failure(t);
        // A request let through before the circuit opened succeeds late: it stays open.
        early.success();
        assert_eq!(b.state(t), BreakerState::Open(10 * S));
    }
}
