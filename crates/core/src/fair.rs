//! A semaphore shared fairly across accounts.
//!
//! Shared pools (the local CPU workers, the asset fetch slots) used to be one first-come queue,
//! so an account that queued many jobs delayed every other account's single job by all of
//! them. Here a freed permit goes to the waiting account *served least recently*, and within an
//! account to its oldest waiter: the rule the engine's model queues use. An account flooding
//! the pool therefore delays another account by at most the time until the next permit frees.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// A counting semaphore whose waiters are served least-recently-served account first.
#[derive(Clone)]
pub struct FairSemaphore {
    state: Arc<Mutex<State>>,
}

struct State {
    free: usize,
    clock: u64,
    next_id: u64,
    lanes: HashMap<i64, Lane>,
}

#[derive(Default)]
struct Lane {
    /// When the account last got a permit (a counter; 0 = never).
    served_at: u64,
    waiters: VecDeque<(u64, oneshot::Sender<()>)>,
}

impl State {
    fn anyone_waiting(&self) -> bool {
        self.lanes.values().any(|l| !l.waiters.is_empty())
    }

    /// Hands free permits to waiters, least recently served account first.
    fn dispatch(&mut self) {
        while self.free > 0 {
            let next = self
                .lanes
                .iter()
                .filter(|(_, l)| !l.waiters.is_empty())
                .min_by_key(|(a, l)| (l.served_at, **a))
                .map(|(a, _)| *a);
            let Some(account) = next else { return };
            self.clock += 1;
            let lane = self.lanes.get_mut(&account).expect("found above");
            let (_, grant) = lane.waiters.pop_front().expect("lanes found have waiters");
            lane.served_at = self.clock;
            self.free -= 1;
            if grant.send(()).is_err() {
                // Its waiter is gone (see `Waiting::drop`): the permit stays free.
                self.free += 1;
            }
        }
    }
}

/// A permit; dropping it frees it for the next account in turn.
pub struct FairPermit {
    state: Arc<Mutex<State>>,
}

impl Drop for FairPermit {
    fn drop(&mut self) {
        let mut s = lock(&self.state);
        s.free += 1;
        s.dispatch();
    }
}

/// A waiter's place; leaving the queue (the acquiring future was dropped) gives back a permit
/// that was granted but not yet taken.
struct Waiting {
    state: Arc<Mutex<State>>,
    account: i64,
    id: u64,
    armed: bool,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut s = lock(&self.state);
        let lane = s.lanes.entry(self.account).or_default();
        if let Some(i) = lane.waiters.iter().position(|(id, _)| *id == self.id) {
            lane.waiters.remove(i);
        } else {
            // Granted after the future stopped listening: pass it on.
            s.free += 1;
            s.dispatch();
        }
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // The state is consistent between statements; a panic elsewhere cannot leave it half-done.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FairSemaphore {
    /// A semaphore of `permits` permits (at least one).
    pub fn new(permits: usize) -> Self {
        FairSemaphore {
            state: Arc::new(Mutex::new(State {
                free: permits.max(1),
                clock: 0,
                next_id: 0,
                lanes: HashMap::new(),
            })),
        }
    }

    /// Waits for a permit for `account`. Cancel-safe: dropping the future leaves the queue.
    pub async fn acquire(&self, account: i64) -> FairPermit {
        self.acquire_at(account, false).await
    }

    /// Like [`FairSemaphore::acquire`], ahead of the account's other waiters: for a job that
    /// gave its permit away mid-way and holds work in progress, which must not wait behind the
    /// account's jobs that have not started (each of those would start and hold its own).
    pub async fn reacquire(&self, account: i64) -> FairPermit {
        self.acquire_at(account, true).await
    }

    async fn acquire_at(&self, account: i64, first: bool) -> FairPermit {
        let (rx, mut waiting) = {
            let mut s = lock(&self.state);
            if s.free > 0 && !s.anyone_waiting() {
                s.free -= 1;
                s.clock += 1;
                let clock = s.clock;
                s.lanes.entry(account).or_default().served_at = clock;
                return FairPermit { state: self.state.clone() };
            }
            let (tx, rx) = oneshot::channel();
            s.next_id += 1;
            let id = s.next_id;
            let lane = s.lanes.entry(account).or_default();
            if first {
                lane.waiters.push_front((id, tx));
            } else {
                lane.waiters.push_back((id, tx));
            }
            s.dispatch();
            (rx, Waiting { state: self.state.clone(), account, id, armed: true })
        };
        // The sender lives in the queue until it grants; it is never dropped unsent while we
        // wait (only `Waiting::drop` removes it), so this cannot fail.
        let _ = rx.await;
        waiting.armed = false;
        FairPermit { state: self.state.clone() }
    }

    /// Whether an account other than `account` is waiting for a permit: a long job of
    /// `account` checks it between steps and hands its permit over (see the local CPU pool).
    pub fn others_waiting(&self, account: i64) -> bool {
        lock(&self.state).lanes.iter().any(|(a, l)| *a != account && !l.waiters.is_empty())
    }

    /// Permits free now.
    pub fn available_permits(&self) -> usize {
        lock(&self.state).free
    }
}

#[cfg(test)]
mod turn_tests {
    use super::*;

    #[tokio::test]
    async fn a_holder_sees_only_other_accounts_waiting() {
        let sem = FairSemaphore::new(1);
        let held = sem.acquire(1).await;
        assert!(!sem.others_waiting(1));
        let mine = tokio::spawn({
            let sem = sem.clone();
            async move { drop(sem.acquire(1).await) }
        });
        tokio::task::yield_now().await;
        assert!(!sem.others_waiting(1), "its own queued jobs are not others");
        let theirs = tokio::spawn({
            let sem = sem.clone();
            async move { drop(sem.acquire(2).await) }
        });
        while !sem.others_waiting(1) {
            tokio::task::yield_now().await;
        }
        drop(held);
        theirs.await.unwrap();
        mine.await.unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn hardening_a_flooding_account_does_not_starve_another() {
        let sem = FairSemaphore::new(1);
        let first = sem.acquire(1).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Account 1 queues five jobs, then account 2 one.
        for (i, account) in [1, 1, 1, 1, 1, 2].into_iter().enumerate() {
            let (sem, order) = (sem.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _p = sem.acquire(account).await;
                order.lock().unwrap().push((account, i));
                tokio::task::yield_now().await;
            }));
            tokio::task::yield_now().await;
        }
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order[0], (2, 5), "account 2 is served before account 1's queue: {order:?}");
        let ones: Vec<usize> = order.iter().filter(|(a, _)| *a == 1).map(|(_, i)| *i).collect();
        assert_eq!(ones, vec![0, 1, 2, 3, 4], "an account's own jobs keep their order");
    }

    #[tokio::test]
    async fn a_dropped_waiter_leaves_the_queue_and_its_grant_is_passed_on() {
        let sem = FairSemaphore::new(1);
        let p = sem.acquire(1).await;
        let waiter = {
            let sem = sem.clone();
            tokio::spawn(async move { sem.acquire(2).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        waiter.abort();
        let _ = waiter.await;
        drop(p);
        assert_eq!(sem.available_permits(), 1);
        let _q = tokio::time::timeout(Duration::from_secs(10), sem.acquire(3)).await.unwrap();
        assert_eq!(sem.available_permits(), 0);
    }
}
