//! Several tasks in one request, with a result per task.
//!
//! The Runware dialect scopes errors per task: one failing task does not fail its siblings.
//! [`BatchResults`] keeps it that way: each task's items or error object is looked up by the
//! task's [`Handle`]. Only a failure of the request as a whole (transport, authentication, a
//! malformed envelope) fails [`crate::Client::run_batch`].
//!
//! ```no_run
//! # async fn demo(client: mediagate_client::Client) -> Result<(), mediagate_client::Error> {
//! use mediagate_client::{Batch, tasks::{ImageInference, Ping}};
//! let mut batch = Batch::new();
//! let cat = batch.push(ImageInference::new("a cat").size(512, 512));
//! let bad = batch.push(ImageInference::new("a dog").size(100, 100)); // invalid width
//! let results = client.run_batch(batch).await?;
//! let images = results.get(&cat)?;          // Ok: the sibling's failure does not hide it
//! assert!(results.get(&bad).is_err());      // its own error object, every field kept
//! # Ok(()) }
//! ```

use crate::error::{ApiError, Error, GaveUp};
use crate::poll::Submitted;
use crate::tasks::Task;
use crate::transport::Envelope;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;
use uuid::Uuid;

/// Tasks to send in one request.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub(crate) tasks: Vec<Value>,
    pub(crate) uuids: Vec<Uuid>,
}

/// Names one task of a [`Batch`] and its result type.
pub struct Handle<T> {
    uuid: Uuid,
    is_async: bool,
    reports_status: bool,
    _task: PhantomData<fn() -> T>,
}

impl<T> Handle<T> {
    /// The task's `taskUUID`.
    pub fn task_uuid(&self) -> Uuid {
        self.uuid
    }
}

impl<T> Clone for Handle<T> {
    fn clone(&self) -> Self {
        Handle {
            uuid: self.uuid,
            is_async: self.is_async,
            reports_status: self.reports_status,
            _task: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").field("task_uuid", &self.uuid).field("is_async", &self.is_async).finish()
    }
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Batch::default()
    }

    /// Adds a task; the handle gets its typed result from [`BatchResults::get`].
    pub fn push<T: Task>(&mut self, task: T) -> Handle<T> {
        let uuid = task.task_uuid();
        self.tasks.push(task.to_json());
        self.uuids.push(uuid);
        Handle { uuid, is_async: task.is_async(), reports_status: task.reports_status(), _task: PhantomData }
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the batch has no task.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The request body: the task array as JSON bytes (sent unchanged on every retry).
    pub fn to_body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.tasks).expect("tasks serialize")
    }
}

/// The per-task results of one request.
#[derive(Debug, Clone)]
pub struct BatchResults {
    items: HashMap<Uuid, Vec<Value>>,
    errors: HashMap<Uuid, ApiError>,
    unmatched_errors: Vec<ApiError>,
    unmatched_items: Vec<Value>,
    http_status: Option<u16>,
    attempts: u32,
    elapsed: Duration,
    gave_up: Option<GaveUp>,
}

/// An acknowledgement item: `status: "processing"`.
fn is_processing(v: &Value) -> bool {
    v.get("status").and_then(Value::as_str) == Some("processing")
}

fn uuid_of(v: &Value) -> Option<Uuid> {
    v.get("taskUUID").and_then(Value::as_str).and_then(|s| Uuid::try_parse(s).ok())
}

impl BatchResults {
    /// Splits a reply by task. Fails when the request failed as a whole: the reply has errors
    /// but no data and none of the errors names a task of the batch (e.g. `invalidApiKey`).
    pub(crate) fn from_envelope(
        env: Envelope,
        uuids: &[Uuid],
        attempts: u32,
        elapsed: Duration,
        gave_up: Option<GaveUp>,
    ) -> Result<BatchResults, Error> {
        let mut r = BatchResults {
            items: HashMap::new(),
            errors: HashMap::new(),
            unmatched_errors: Vec::new(),
            unmatched_items: Vec::new(),
            http_status: env.http_status,
            attempts,
            elapsed,
            gave_up,
        };
        for e in env.api_errors() {
            match e.task_uuid.as_deref().and_then(|s| Uuid::try_parse(s).ok()) {
                Some(u) if uuids.contains(&u) && !r.errors.contains_key(&u) => {
                    r.errors.insert(u, e);
                }
                _ => r.unmatched_errors.push(e),
            }
        }
        for item in env.data {
            match uuid_of(&item) {
                Some(u) if uuids.contains(&u) => r.items.entry(u).or_default().push(item),
                _ => r.unmatched_items.push(item),
            }
        }
        if r.items.is_empty()
            && r.errors.is_empty()
            && r.unmatched_items.is_empty()
            && let Some(first) = r.unmatched_errors.first()
        {
            return Err(r.wrap(Error::api(first.clone())));
        }
        Ok(r)
    }

    /// Wraps a retryable failure in [`Error::Exhausted`] when retries stopped on it.
    fn wrap(&self, e: Error) -> Error {
        match self.gave_up {
            Some(reason) if e.is_retryable() => {
                Error::Exhausted { attempts: self.attempts, elapsed: self.elapsed, reason, last: Box::new(e) }
            }
            _ => e,
        }
    }

    /// The typed result of one task, or its own error object.
    pub fn get<T: Task>(&self, h: &Handle<T>) -> Result<T::Output, Error> {
        if h.is_async {
            return Err(Error::Protocol(format!(
                "task {} was sent with async delivery: use BatchResults::submitted and Client::wait",
                h.uuid
            )));
        }
        if let Some(e) = self.errors.get(&h.uuid) {
            return Err(self.wrap(Error::api(e.clone())));
        }
        match self.items.get(&h.uuid) {
            Some(items) if !h.reports_status && items.iter().any(is_processing) => {
                Err(Error::Protocol(format!(
                    "task {} is still processing (the server chose async delivery): use \
                 BatchResults::submitted and Client::wait",
                    h.uuid
                )))
            }
            Some(items) => T::parse_output(items.clone()),
            None => Err(self.missing(h.uuid)),
        }
    }

    /// The acknowledgement of a task (sent with async delivery or not), to wait on with
    /// [`crate::Client::wait`].
    pub fn submitted<T: Task>(&self, h: &Handle<T>) -> Result<Submitted<T>, Error> {
        if let Some(e) = self.errors.get(&h.uuid) {
            return Err(self.wrap(Error::api(e.clone())));
        }
        let items = self.items.get(&h.uuid).cloned().unwrap_or_default();
        // Pending when async was asked for, or when the server acknowledged instead of
        // answering (it may default a task type to async delivery).
        let pending = h.is_async || (!h.reports_status && items.iter().any(is_processing));
        if !pending && items.is_empty() {
            return Err(self.missing(h.uuid));
        }
        Ok(Submitted::new(h.uuid, pending, items))
    }

    fn missing(&self, uuid: Uuid) -> Error {
        match self.unmatched_errors.first() {
            // An error the server could not attribute to a task is the best explanation.
            Some(e) => self.wrap(Error::api(e.clone())),
            None => Error::Protocol(format!("the reply has neither a result nor an error for task {uuid}")),
        }
    }

    /// The error object of the task with this UUID, if it failed.
    pub fn error(&self, task_uuid: Uuid) -> Option<&ApiError> {
        self.errors.get(&task_uuid)
    }

    /// The raw `data` items of the task with this UUID.
    pub fn items(&self, task_uuid: Uuid) -> &[Value] {
        self.items.get(&task_uuid).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Error objects that name no task of the batch.
    pub fn unmatched_errors(&self) -> &[ApiError] {
        &self.unmatched_errors
    }

    /// `data` items that name no task of the batch.
    pub fn unmatched_items(&self) -> &[Value] {
        &self.unmatched_items
    }

    /// The HTTP status of the reply (REST).
    pub fn http_status(&self) -> Option<u16> {
        self.http_status
    }

    /// How many attempts the request took (1 when it was not retried).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}
