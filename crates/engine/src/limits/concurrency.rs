//! Concurrency per account and model, with fair queueing across accounts.
//!
//! Each model has a shared capacity (its `concurrency` in the catalog, else
//! `limits.model_concurrency`: the tasks it runs at once for everybody) and each account a limit of its own per model (`max_concurrent`). A task that
//! cannot start waits in its account's lane for that model; a lane holds at most `max_queued`
//! tasks and a task arriving at a full lane is refused.
//!
//! When a slot frees, it goes to the waiting account *served least recently* on this model
//! (among those under their own limit), and within an account to its oldest task. An account
//! flooding a model therefore delays another account's task by at most the time until the
//! next slot frees: one task's service time.
//!
//! A [`Ticket`] is a task's place: it waits with [`Ticket::ready`] (cancel-safe: dropping the
//! future or the ticket leaves the queue) and frees its slot when dropped.

use super::Phase;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use uuid::Uuid;

/// One account's limits on one model, as the queue applies them (0 = unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneLimits {
    /// Tasks of the account running at once on the model.
    pub max_concurrent: u32,
    /// Tasks of the account waiting for the model.
    pub max_queued: u32,
}

struct Waiter {
    id: u64,
    task_uuid: Uuid,
    grant: oneshot::Sender<()>,
}

#[derive(Default)]
struct Lane {
    running: u32,
    waiting: VecDeque<Waiter>,
    /// When the lane last got a slot from the queue (a counter; 0 = never).
    served_at: u64,
    max_concurrent: u32,
}

impl Lane {
    fn under_limit(&self) -> bool {
        self.max_concurrent == 0 || self.running < self.max_concurrent
    }
}

struct ModelQueue {
    capacity: u32,
    running: u32,
    lanes: HashMap<i64, Lane>,
    /// Accounts with tasks waiting.
    waiting: HashSet<i64>,
    clock: u64,
    /// Mean service time (exponentially weighted), for queue-full estimates.
    mean_service: Duration,
}

impl ModelQueue {
    fn has_room(&self) -> bool {
        self.capacity == 0 || self.running < self.capacity
    }

    /// Hands free slots to waiting tasks, least recently served account first.
    fn dispatch(&mut self, phases: &Mutex<HashMap<(i64, Uuid), Phase>>) {
        while self.has_room() {
            let next = self
                .waiting
                .iter()
                .filter_map(|a| self.lanes.get(a).map(|l| (a, l)))
                .filter(|(_, l)| l.under_limit())
                .min_by_key(|(a, l)| (l.served_at, **a))
                .map(|(a, _)| *a);
            let Some(account) = next else { return };
            self.clock += 1;
            let clock = self.clock;
            let lane = self.lanes.get_mut(&account).expect("waiting lanes exist");
            let Some(w) = lane.waiting.pop_front() else {
                self.waiting.remove(&account);
                continue;
            };
            if lane.waiting.is_empty() {
                self.waiting.remove(&account);
            }
            lane.served_at = clock;
            lane.running += 1;
            self.running += 1;
            phases.lock().insert((account, w.task_uuid), Phase::Running);
            // The receiver is only dropped with its ticket, which removes the waiter first.
            let _ = w.grant.send(());
        }
    }
}

/// Every model's queue.
#[derive(Default)]
pub struct Queues {
    models: Mutex<HashMap<String, Arc<Mutex<ModelQueue>>>>,
    phases: Arc<Mutex<HashMap<(i64, Uuid), Phase>>>,
    next_id: AtomicU64,
}

/// Why a task was not queued.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueFull {
    /// Tasks of the account waiting for the model.
    pub queued: u32,
    /// An estimate of the time until a place frees.
    pub estimate: Duration,
}

/// Counts of one account on one model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneCounts {
    /// Running.
    pub running: u32,
    /// Waiting.
    pub queued: u32,
}

impl Queues {
    fn model(&self, model: &str, capacity: u32) -> Arc<Mutex<ModelQueue>> {
        let mut models = self.models.lock();
        if let Some(q) = models.get(model) {
            return q.clone();
        }
        let q = Arc::new(Mutex::new(ModelQueue {
            capacity,
            running: 0,
            lanes: HashMap::new(),
            waiting: HashSet::new(),
            clock: 0,
            mean_service: Duration::ZERO,
        }));
        models.insert(model.to_string(), q.clone());
        q
    }

    /// Takes a place for a task: running at once when the model and the account have room,
    /// else waiting, else (the lane is full, and `bounded`) refused. `capacity` is the model's
    /// shared capacity (0 = unlimited).
    pub fn enter(
        &self,
        account_id: i64,
        task_uuid: Uuid,
        model: &str,
        capacity: u32,
        limits: LaneLimits,
        bounded: bool,
    ) -> Result<Ticket, QueueFull> {
        let queue = self.model(model, capacity);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut q = queue.lock();
        q.capacity = capacity;
        let room = q.has_room();
        let mean = q.mean_service;
        let lane = q.lanes.entry(account_id).or_default();
        lane.max_concurrent = limits.max_concurrent;
        let (state, phase) = if room && lane.under_limit() && lane.waiting.is_empty() {
            lane.running += 1;
            q.running += 1;
            (TicketState::Running(Instant::now()), Phase::Running)
        } else {
            let queued = lane.waiting.len() as u32;
            if bounded && limits.max_queued > 0 && queued >= limits.max_queued {
                // The time until one of the account's running tasks ends, about.
                let running = lane.running.max(1);
                let estimate = (mean / running).max(Duration::from_millis(100));
                return Err(QueueFull { queued, estimate });
            }
            let (tx, rx) = oneshot::channel();
            lane.waiting.push_back(Waiter { id, task_uuid, grant: tx });
            q.waiting.insert(account_id);
            (TicketState::Queued(rx), Phase::Queued)
        };
        self.phases.lock().insert((account_id, task_uuid), phase);
        // A raised capacity may have made room for tasks already waiting.
        q.dispatch(&self.phases);
        drop(q);
        Ok(Ticket { queue, phases: self.phases.clone(), account_id, task_uuid, id, state })
    }

    /// The phase of a task holding a ticket.
    pub fn phase(&self, account_id: i64, task_uuid: Uuid) -> Option<Phase> {
        self.phases.lock().get(&(account_id, task_uuid)).copied()
    }

    /// Running and waiting tasks per model, all accounts together (for the metrics).
    pub fn totals(&self) -> Vec<(String, LaneCounts)> {
        let models: Vec<(String, Arc<Mutex<ModelQueue>>)> =
            self.models.lock().iter().map(|(m, q)| (m.clone(), q.clone())).collect();
        models
            .into_iter()
            .map(|(model, q)| {
                let q = q.lock();
                let queued = q.lanes.values().map(|l| l.waiting.len() as u32).sum();
                (model, LaneCounts { running: q.running, queued })
            })
            .collect()
    }

    /// Running and waiting tasks of an account on a model.
    pub fn counts(&self, account_id: i64, model: &str) -> LaneCounts {
        let Some(q) = self.models.lock().get(model).cloned() else { return LaneCounts::default() };
        let q = q.lock();
        q.lanes
            .get(&account_id)
            .map(|l| LaneCounts { running: l.running, queued: l.waiting.len() as u32 })
            .unwrap_or_default()
    }
}

enum TicketState {
    Queued(oneshot::Receiver<()>),
    Running(Instant),
    Done,
}

/// A task's place in its model's queue. Dropping it leaves the queue (or frees the slot).
pub struct Ticket {
    queue: Arc<Mutex<ModelQueue>>,
    phases: Arc<Mutex<HashMap<(i64, Uuid), Phase>>>,
    account_id: i64,
    task_uuid: Uuid,
    id: u64,
    state: TicketState,
}

impl Ticket {
    /// Waits until the task may run. Cancel-safe: drop the future (or the ticket) to give up.
    pub async fn ready(&mut self) {
        if let TicketState::Queued(rx) = &mut self.state {
            // The sender is dropped only after sending (grant) or when the waiter is removed,
            // which happens only through this ticket.
            let _ = rx.await;
            self.state = TicketState::Running(Instant::now());
        }
    }

    /// Whether the task is still waiting.
    pub fn is_queued(&self) -> bool {
        matches!(self.state, TicketState::Queued(_))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let state = std::mem::replace(&mut self.state, TicketState::Done);
        let mut q = self.queue.lock();
        let account = self.account_id;
        let mut freed = None;
        match state {
            TicketState::Queued(_) => {
                let lane = q.lanes.get_mut(&account).expect("a ticket's lane exists");
                match lane.waiting.iter().position(|w| w.id == self.id) {
                    Some(i) => {
                        lane.waiting.remove(i);
                        if lane.waiting.is_empty() {
                            q.waiting.remove(&account);
                        }
                    }
                    // Granted while nobody was looking: it holds a slot.
                    None => freed = Some(None),
                }
            }
            TicketState::Running(since) => freed = Some(Some(since.elapsed())),
            TicketState::Done => {}
        }
        if let Some(served) = freed {
            let lane = q.lanes.get_mut(&account).expect("a ticket's lane exists");
            lane.running -= 1;
            q.running -= 1;
            if let Some(d) = served {
                q.mean_service = if q.mean_service.is_zero() { d } else { (q.mean_service * 7 + d) / 8 };
            }
            q.dispatch(&self.phases);
        }
        let lane = q.lanes.get(&account).expect("a ticket's lane exists");
        if lane.running == 0 && lane.waiting.is_empty() && lane.served_at == 0 {
            q.lanes.remove(&account);
        }
        drop(q);
        self.phases.lock().remove(&(account, self.task_uuid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: LaneLimits = LaneLimits { max_concurrent: 0, max_queued: 100 };

    #[tokio::test]
    async fn capacity_queue_and_release() {
        let qs = Queues::default();
        let a = qs.enter(1, Uuid::new_v4(), "m", 1, L, true).unwrap();
        let mut b = qs.enter(1, Uuid::new_v4(), "m", 1, L, true).unwrap();
        assert!(!a.is_queued());
        assert!(b.is_queued());
        assert_eq!(qs.counts(1, "m"), LaneCounts { running: 1, queued: 1 });
        drop(a);
        b.ready().await;
        assert_eq!(qs.counts(1, "m"), LaneCounts { running: 1, queued: 0 });
        drop(b);
        assert_eq!(qs.counts(1, "m"), LaneCounts::default());
    }

    #[tokio::test]
    async fn full_lane_refuses_and_cancel_leaves() {
        let qs = Queues::default();
        let lim = LaneLimits { max_concurrent: 1, max_queued: 2 };
        let _run = qs.enter(1, Uuid::new_v4(), "m", 0, lim, true).unwrap();
        let w1 = qs.enter(1, Uuid::new_v4(), "m", 0, lim, true).unwrap();
        let _w2 = qs.enter(1, Uuid::new_v4(), "m", 0, lim, true).unwrap();
        let full = qs.enter(1, Uuid::new_v4(), "m", 0, lim, true).err().expect("full");
        assert_eq!(full.queued, 2);
        // Another account is not affected by the first one's limit.
        assert!(!qs.enter(2, Uuid::new_v4(), "m", 0, lim, true).unwrap().is_queued());
        // Unbounded entry (resumed tasks) still queues.
        let _resumed = qs.enter(1, Uuid::new_v4(), "m", 0, lim, false).unwrap();
        drop(w1);
        assert_eq!(qs.counts(1, "m").queued, 2);
    }

    #[tokio::test]
    async fn least_recently_served_account_goes_first() {
        let qs = Queues::default();
        let lim = LaneLimits { max_concurrent: 0, max_queued: 1000 };
        let first = qs.enter(1, Uuid::new_v4(), "m", 1, lim, true).unwrap();
        let mut flood: Vec<Ticket> =
            (0..50).map(|_| qs.enter(1, Uuid::new_v4(), "m", 1, lim, true).unwrap()).collect();
        // Serve a few of the flood so account 1 has been served recently.
        drop(first);
        let mut served = flood.remove(0);
        served.ready().await;
        let other = Uuid::new_v4();
        let mut b = qs.enter(2, other, "m", 1, lim, true).unwrap();
        assert_eq!(qs.phase(2, other), Some(Phase::Queued));
        // The running flood task ends: the next slot goes to account 2, not to the flood.
        drop(served);
        b.ready().await;
        assert_eq!(qs.phase(2, other), Some(Phase::Running));
        assert_eq!(qs.counts(1, "m").running, 0);
    }
}
