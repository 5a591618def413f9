//! Rate limits: the generic cell rate algorithm (GCRA), keyed.
//!
//! One state per key: its *theoretical arrival time* (TAT). A request at `now` with rate `r`
//! (emission interval `T = 1/r`) and burst `b` is admitted when `max(TAT, now) + T - now <= b·T`,
//! and then moves TAT to `max(TAT, now) + T`. A refused request changes nothing, and the time it
//! must wait is exactly the excess, `max(TAT, now) + T - now - b·T`: a request sent after that
//! wait is admitted. So in any window of length `W` starting idle, exactly `b + ⌊W·r⌋` requests
//! are admitted when they are sent as fast as possible.
//!
//! Hand-written rather than `governor`: limits differ per key and change at run time (they are
//! stored per account), one check must cover a key *and* its account atomically (refuse both or
//! charge both), and the refusal must carry the exact wait. Governor's keyed limiters share one
//! quota per limiter, so that would mean a limiter per key plus a two-phase check.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A rate with a burst. `per_sec <= 0` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Sustained requests per second.
    pub per_sec: f64,
    /// Requests admitted at once from idle (at least 1).
    pub burst: u32,
}

impl Rate {
    /// Whether this rate limits anything.
    pub fn is_limited(&self) -> bool {
        self.per_sec > 0.0 && self.per_sec.is_finite()
    }

    fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_sec)
    }

    fn tolerance(&self) -> Duration {
        self.interval() * self.burst.max(1)
    }
}

/// What one GCRA step would do to a key: `Ok(new TAT)` or `Err(wait)`.
fn step(tat: Option<Instant>, now: Instant, rate: Rate) -> Result<Instant, Duration> {
    let base = match tat {
        Some(t) if t > now => t,
        _ => now,
    };
    let next = base + rate.interval();
    let ahead = next - now;
    let tolerance = rate.tolerance();
    if ahead > tolerance { Err(ahead - tolerance) } else { Ok(next) }
}

/// Above this many keys, keys whose state has lapsed (TAT in the past: equal to fresh) are
/// dropped, so memory stays bounded by the keys active in the last burst window.
const PRUNE_ABOVE: usize = 50_000;

/// GCRA states by key.
pub struct KeyedGcra<K> {
    states: Mutex<HashMap<K, Instant>>,
}

impl<K: Hash + Eq + Clone> Default for KeyedGcra<K> {
    fn default() -> Self {
        KeyedGcra { states: Mutex::new(HashMap::new()) }
    }
}

impl<K: Hash + Eq + Clone> KeyedGcra<K> {
    /// Admits one request that counts against every `(key, rate)` given (at most 4), or none
    /// of them: a refusal gives the longest wait among the refusing keys and that key's index.
    pub fn check_all(&self, now: Instant, keys: &[(K, Rate)]) -> Result<(), (Duration, usize)> {
        let mut states = self.states.lock();
        let mut next = [None; 4];
        let mut refused: Option<(Duration, usize)> = None;
        for (i, (k, rate)) in keys.iter().enumerate().take(next.len()) {
            if !rate.is_limited() {
                continue;
            }
            match step(states.get(k).copied(), now, *rate) {
                Ok(t) => next[i] = Some(t),
                Err(w) if refused.is_none_or(|(r, _)| w > r) => refused = Some((w, i)),
                Err(_) => {}
            }
        }
        if let Some(r) = refused {
            return Err(r);
        }
        if states.len() > PRUNE_ABOVE {
            states.retain(|_, tat| *tat > now);
        }
        for (i, (k, _)) in keys.iter().enumerate().take(next.len()) {
            if let Some(t) = next[i] {
                states.insert(k.clone(), t);
            }
        }
        Ok(())
    }

    /// Whether the next request on `key` would be refused, and for how long; changes nothing.
    pub fn peek(&self, now: Instant, key: &K, rate: Rate) -> Result<(), Duration> {
        if !rate.is_limited() {
            return Ok(());
        }
        step(self.states.lock().get(key).copied(), now, rate).map(|_| ())
    }

    /// Counts one request on `key` whatever the state (it already happened); never refuses.
    pub fn record(&self, now: Instant, key: K, rate: Rate) {
        if !rate.is_limited() {
            return;
        }
        let mut states = self.states.lock();
        let base = match states.get(&key) {
            Some(t) if *t > now => *t,
            _ => now,
        };
        // Never further ahead than one wait past the tolerance: a flood keeps the key blocked,
        // not blocked for ever.
        let next = (base + rate.interval()).min(now + rate.tolerance() + rate.interval());
        if states.len() > PRUNE_ABOVE {
            states.retain(|_, tat| *tat > now);
        }
        states.insert(key, next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_exact_rate_and_exact_wait() {
        let g = KeyedGcra::default();
        let r = Rate { per_sec: 2.0, burst: 3 };
        let t0 = Instant::now();
        for _ in 0..3 {
            g.check_all(t0, &[(1, r)]).unwrap();
        }
        let (wait, _) = g.check_all(t0, &[(1, r)]).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        // One nanosecond early is still refused; on time is admitted.
        assert!(g.check_all(t0 + wait - Duration::from_nanos(1), &[(1, r)]).is_err());
        g.check_all(t0 + wait, &[(1, r)]).unwrap();
        // Over a 1.75 s window from idle: burst + floor(1.75 * 2) = 6 admitted.
        let g = KeyedGcra::default();
        let mut admitted = 0;
        let mut t = Duration::ZERO;
        while t < Duration::from_millis(1750) {
            if g.check_all(t0 + t, &[(7, r)]).is_ok() {
                admitted += 1;
            }
            t += Duration::from_millis(1);
        }
        assert_eq!(admitted, 6);
    }

    #[test]
    fn all_or_nothing_across_keys() {
        let g = KeyedGcra::default();
        let t0 = Instant::now();
        let key = Rate { per_sec: 1.0, burst: 5 };
        let account = Rate { per_sec: 1.0, burst: 1 };
        g.check_all(t0, &[("k", key), ("a", account)]).unwrap();
        assert!(g.check_all(t0, &[("k", key), ("a", account)]).is_err());
        // The refused request did not use the key's burst: four more fit once the account allows.
        let g2 = KeyedGcra::default();
        g2.check_all(t0, &[("a", account)]).unwrap();
        for _ in 0..10 {
            assert!(g2.check_all(t0, &[("k", key), ("a", account)]).is_err());
        }
        for i in 0..4 {
            g2.check_all(t0, &[("k", key)]).unwrap_or_else(|_| panic!("burst request {i}"));
        }
    }

    #[test]
    fn unlimited_never_refuses() {
        let g = KeyedGcra::default();
        let t0 = Instant::now();
        for _ in 0..1000 {
            g.check_all(t0, &[(1, Rate { per_sec: 0.0, burst: 0 })]).unwrap();
        }
    }

    #[test]
    fn record_and_peek_for_failures() {
        let g = KeyedGcra::default();
        let t0 = Instant::now();
        let r = Rate { per_sec: 1.0, burst: 2 };
        assert!(g.peek(t0, &"ip", r).is_ok());
        g.record(t0, "ip", r);
        assert!(g.peek(t0, &"ip", r).is_ok());
        g.record(t0, "ip", r);
        assert_eq!(g.peek(t0, &"ip", r).unwrap_err(), Duration::from_secs(1));
        for _ in 0..100 {
            g.record(t0, "ip", r);
        }
        // A flood does not push the block further than one interval past the tolerance.
        assert!(g.peek(t0 + Duration::from_secs(2), &"ip", r).is_ok());
    }
}
