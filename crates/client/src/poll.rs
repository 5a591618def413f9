//! Async delivery: submit with `deliveryMethod: "async"`, then poll `getResponse` with a
//! growing interval under an overall budget — never forever.
//!
//! ```no_run
//! # async fn demo(client: mediagate_client::Client) -> Result<(), mediagate_client::Error> {
//! use mediagate_client::{PollPolicy, tasks::{Delivery, ImageInference}};
//! use std::time::Duration;
//! let submitted = client.submit(ImageInference::new("a storm at sea").delivery(Delivery::Async)).await?;
//! let policy = PollPolicy::default().budget(Duration::from_secs(120));
//! let images = client.wait_with(&submitted, &policy).await?;
//! # Ok(()) }
//! ```

use crate::Client;
use crate::error::Error;
use crate::tasks::{ResponseItem, Status, Task};
use serde_json::Value;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// How `getResponse` is polled.
#[derive(Debug, Clone, PartialEq)]
pub struct PollPolicy {
    /// Wait before the first poll.
    pub initial_delay: Duration,
    /// Wait between the first and second poll; it grows by `multiplier` after each poll.
    pub interval: Duration,
    /// Growth factor of the interval (≥ 1).
    pub multiplier: f64,
    /// The largest interval.
    pub max_interval: Duration,
    /// The whole time allowed, from the first wait to the last answer. Polling stops with
    /// [`Error::PollBudgetExceeded`] when it is used.
    pub budget: Duration,
}

impl Default for PollPolicy {
    /// First poll after 1 s, then every 1 s growing ×1.5 up to 10 s, 20 minutes in all.
    fn default() -> Self {
        PollPolicy {
            initial_delay: Duration::from_secs(1),
            interval: Duration::from_secs(1),
            multiplier: 1.5,
            max_interval: Duration::from_secs(10),
            budget: Duration::from_secs(20 * 60),
        }
    }
}

impl PollPolicy {
    /// Sets [`PollPolicy::initial_delay`].
    pub fn initial_delay(mut self, d: Duration) -> Self {
        self.initial_delay = d;
        self
    }

    /// Sets [`PollPolicy::interval`], [`PollPolicy::multiplier`] and [`PollPolicy::max_interval`].
    pub fn interval(mut self, first: Duration, multiplier: f64, max: Duration) -> Self {
        self.interval = first;
        self.multiplier = if multiplier.is_finite() { multiplier.max(1.0) } else { 1.0 };
        self.max_interval = max.max(first);
        self
    }

    /// Sets [`PollPolicy::budget`].
    pub fn budget(mut self, d: Duration) -> Self {
        self.budget = d;
        self
    }

    /// The wait after poll number `n` (0 for the wait between the first and second poll).
    pub fn interval_after(&self, n: u32) -> Duration {
        let f = self.multiplier.max(1.0).powi(n.min(1000) as i32);
        let secs = (self.interval.as_secs_f64() * f).min(self.max_interval.as_secs_f64());
        Duration::from_secs_f64(secs.max(0.0))
    }
}

/// A submitted task: its UUID and acknowledgement, to wait on with [`Client::wait`].
pub struct Submitted<T> {
    task_uuid: Uuid,
    pending: bool,
    ack: Vec<Value>,
    _task: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Submitted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Submitted")
            .field("task_uuid", &self.task_uuid)
            .field("pending", &self.pending)
            .field("ack", &self.ack)
            .finish()
    }
}

impl<T> Submitted<T> {
    pub(crate) fn new(task_uuid: Uuid, pending: bool, ack: Vec<Value>) -> Self {
        Submitted { task_uuid, pending, ack, _task: PhantomData }
    }

    /// A handle to a task submitted earlier (e.g. by another process), to poll for it.
    pub fn from_task_uuid(task_uuid: Uuid) -> Self {
        Submitted::new(task_uuid, true, Vec::new())
    }

    /// The task's `taskUUID`.
    pub fn task_uuid(&self) -> Uuid {
        self.task_uuid
    }

    /// The items the submission was answered with (the acknowledgement for async delivery,
    /// the result for sync delivery).
    pub fn ack(&self) -> &[Value] {
        &self.ack
    }

    /// Whether the result must still be polled for.
    pub fn is_pending(&self) -> bool {
        self.pending
    }
}

/// Where a polled task stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// Not finished (some items `processing`, or no items yet).
    Processing,
    /// Every item succeeded; the raw items.
    Done(Vec<Value>),
    /// An item failed; its embedded error object.
    Failed(Box<crate::ApiError>),
}

impl Progress {
    /// Classifies a `getResponse` answer.
    pub fn of(items: &[ResponseItem]) -> Progress {
        if let Some(e) = items.iter().find_map(|i| (i.status == Status::Error).then(|| i.error.clone())) {
            return Progress::Failed(Box::new(e.unwrap_or_else(|| {
                crate::ApiError::from_json(
                    &serde_json::json!({"message": "the task failed without an error object"}),
                    None,
                )
            })));
        }
        if !items.is_empty() && items.iter().all(|i| i.status == Status::Success) {
            return Progress::Done(items.iter().map(|i| i.raw.clone()).collect());
        }
        Progress::Processing
    }
}

/// Polls until the task is done or failed, or the budget is used.
pub(crate) async fn wait<T: Task>(
    client: &Client,
    s: &Submitted<T>,
    policy: &PollPolicy,
) -> Result<T::Output, Error> {
    if !s.pending {
        return T::parse_output(s.ack.clone());
    }
    let start = Instant::now();
    let remaining = |start: Instant| policy.budget.saturating_sub(start.elapsed());
    tokio::time::sleep(policy.initial_delay.min(policy.budget)).await;
    let mut polls = 0u32;
    let mut last_status = String::from("none");
    loop {
        let left = remaining(start);
        if left.is_zero() {
            return Err(Error::PollBudgetExceeded {
                task_uuid: s.task_uuid.to_string(),
                polls,
                elapsed: start.elapsed(),
                last_status,
            });
        }
        let items = match client.get_response_within(s.task_uuid, left).await {
            Ok(items) => items,
            // The budget ran out while this poll waited for its answer: the budget ended polling,
            // not the server (a loaded server can take longer than the little budget left).
            Err(Error::Exhausted { reason: crate::error::GaveUp::Deadline, .. })
                if remaining(start).is_zero() =>
            {
                return Err(Error::PollBudgetExceeded {
                    task_uuid: s.task_uuid.to_string(),
                    polls: polls + 1,
                    elapsed: start.elapsed(),
                    last_status,
                });
            }
            Err(e) => return Err(e),
        };
        polls += 1;
        match Progress::of(&items) {
            Progress::Done(raw) => return T::parse_output(raw),
            Progress::Failed(e) => return Err(Error::Api(e)),
            Progress::Processing => {
                last_status = items
                    .iter()
                    .map(|i| i.status.as_str().to_string())
                    .find(|st| !st.is_empty() && st != "success")
                    .unwrap_or_else(|| "none".into());
            }
        }
        tokio::time::sleep(policy.interval_after(polls - 1).min(remaining(start))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_interval_grows_to_its_cap() {
        let p = PollPolicy::default();
        assert_eq!(p.interval_after(0), Duration::from_secs(1));
        assert_eq!(p.interval_after(1), Duration::from_millis(1500));
        assert_eq!(p.interval_after(2), Duration::from_millis(2250));
        assert_eq!(p.interval_after(50), Duration::from_secs(10));
    }

    #[test]
    fn progress_is_read_from_statuses() {
        let item = |v: Value| ResponseItem::from_json(v);
        assert_eq!(Progress::of(&[]), Progress::Processing);
        assert_eq!(
            Progress::of(&[item(json!({"status": "success"})), item(json!({"status": "processing"}))]),
            Progress::Processing
        );
        assert!(
            matches!(Progress::of(&[item(json!({"status": "success", "x": 1}))]), Progress::Done(v) if v.len() == 1)
        );
        let failed = Progress::of(&[item(
            json!({"status": "error", "error": {"code": "providerError", "message": "m"}}),
        )]);
        assert!(matches!(failed, Progress::Failed(e) if e.code.as_str() == "providerError"));
    }
}
