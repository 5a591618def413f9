//! Providers render tasks. The engine picks one per model from the catalog and is the only
//! place that retries; a provider reports each failure once, mapped into the error catalog.
//!
//! Built in: [`local::Procedural`] (the image stand-in), [`local::Lanczos`] (real resizing) and
//! [`vtracer::Vtracer`] (real raster-to-SVG tracing).
//! Remote adapters, built from `[[providers.upstreams]]` by [`upstream::build`]:
//! [`openai_images`], [`comfyui`], [`runware_upstream`] and [`http_worker`].
//!
//! # The contract
//!
//! A provider [`submit`](Provider::submit)s a job. Quick backends answer at once
//! ([`Submitted::Done`]); queue-backed ones return a [`JobHandle`] that the caller then
//! [`wait`](Provider::wait)s on (which polls or streams, forwarding [`Progress`]), or
//! [`cancel`](Provider::cancel)s. [`Provider::run`] does submit + wait for callers that need no
//! control. A provider never retries and never follows redirects: every failure is returned
//! once, as a [`ProviderError`] whose [`Failure`] class tells the engine's dispatcher whether a
//! retry, a fallback provider or neither can help.

#![warn(missing_docs)]

pub mod canny;
pub mod comfyui;
pub mod decode;
pub mod encode;
pub mod http_worker;
pub mod img2img;
pub mod lanczos;
pub mod local;
pub mod local_audio;
pub mod local_video;
pub mod mapping;
pub mod openai_chat;
pub mod openai_images;
pub mod procedural;
pub mod runware_upstream;
mod seeded;
pub mod traces;
pub mod upstream;
pub mod video;
pub mod vtracer;

use async_trait::async_trait;
use mediagate_assets::Asset;
use mediagate_core::ErrorCode;
use mediagate_core::param::Segment;
use mediagate_core::task::{ParamSupport, TaskRequest, TaskType};
use std::sync::Arc;
use std::time::Duration;

/// One file a provider produced.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The encoded file.
    pub bytes: Vec<u8>,
    /// Its MIME type.
    pub content_type: &'static str,
    /// Its file extension.
    pub extension: &'static str,
    /// The seed that produced it, where the task has seeds.
    pub seed: Option<u64>,
    /// How a text result's completion ended and what it used, where the provider said.
    pub completion: Option<mediagate_core::task::Completion>,
    /// Fields of the result beyond the file (see `TaskParams::RESULT_FIELDS`).
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// Work handed to a provider, already validated against the model catalog: the canonical
/// request with what the engine prepared for it. One shape for every task type, so a new task
/// type needs no change here; a provider matches the request variants it serves.
#[derive(Debug, Clone)]
pub struct Job {
    /// The request.
    pub request: TaskRequest,
    /// One seed per result for seeded task types (result `i` uses `seeds[i]`); empty otherwise.
    pub seeds: Vec<u64>,
    /// The request's inputs, fetched and checked by the asset intake, in the order
    /// [`TaskRequest::inputs`] lists them.
    pub inputs: Vec<Asset>,
    /// The account the job runs for: shared local pools are fair across accounts.
    pub account_id: i64,
}

impl Job {
    /// The task type of the job.
    pub fn task_type(&self) -> TaskType {
        self.request.task_type()
    }

    /// The account the job runs for.
    pub fn account_id(&self) -> i64 {
        self.account_id
    }

    /// The AIR id of the model the job was routed by.
    pub fn model(&self) -> &str {
        self.request.model()
    }

    /// The first seed (the only one of single-result tasks), if the task type is seeded.
    pub fn seed(&self) -> Option<u64> {
        self.seeds.first().copied()
    }

    /// The first input, if any.
    pub fn input(&self) -> Option<&Asset> {
        self.inputs.first()
    }

    /// The request as a task object in Runware's names ([`TaskRequest::to_wire`]) with the seeds
    /// drawn here and every input replaced by a `data:` URI of the asset fetched here: what a
    /// provider that sends the whole task on gives its backend (which cannot resolve this
    /// server's upload UUIDs or reach its callers' URLs).
    pub fn wire_with_inline_inputs(&self) -> serde_json::Map<String, serde_json::Value> {
        use base64::Engine as _;
        let request = &self.request;
        let mut t = request.to_wire();
        if let Some(&first) = self.seeds.first() {
            t.insert("seed".into(), first.into());
        }
        if t.contains_key("numberResults") {
            t.insert("numberResults".into(), self.seeds.len().max(1).into());
        }
        for (input, asset) in request.inputs().iter().zip(&self.inputs) {
            let uri = format!(
                "data:{};base64,{}",
                asset.media_type,
                base64::engine::general_purpose::STANDARD.encode(&asset.bytes)
            );
            set_at(&mut t, input.param.segments(), uri.into());
        }
        t
    }

    /// The failure a provider reports for a job of a task type it does not serve (routing makes
    /// this a configuration error: a model of that type routed to the wrong provider).
    pub fn not_served(&self, provider: &str) -> ProviderError {
        ProviderError::operator(
            "The model is routed to a provider that cannot run this task type.",
            format!("{provider} does not serve {} (model {})", self.task_type().as_str(), self.model()),
        )
    }
}

/// Sets the value at `path` in a task object, where the path exists.
fn set_at(task: &mut serde_json::Map<String, serde_json::Value>, path: &[Segment], value: serde_json::Value) {
    let Some((Segment::Key(first), rest)) = path.split_first() else { return };
    let mut at = match task.get_mut(first) {
        Some(v) => v,
        None => return,
    };
    for segment in rest {
        at = match (segment, at) {
            (Segment::Key(k), serde_json::Value::Object(m)) => match m.get_mut(k) {
                Some(v) => v,
                None => return,
            },
            (Segment::Index(i), serde_json::Value::Array(a)) => match a.get_mut(*i) {
                Some(v) => v,
                None => return,
            },
            _ => return,
        };
    }
    *at = value;
}

/// What the dispatcher may do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Transient (timeouts, 429, 5xx, connection failures): retry the same provider with
    /// backoff, then fall back. Counts against the provider's circuit breaker.
    Transient,
    /// The provider cannot serve this (rejected credentials, out of quota, misconfigured
    /// model): retrying it is pointless, a fallback provider may work. Counts against the
    /// breaker.
    Provider,
    /// The request itself is refused (invalid parameters, content policy): no retry, no
    /// fallback. The provider answered, so for the breaker this is a sign of health.
    Request,
}

/// A provider failure, already mapped into the catalog.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProviderError {
    /// The catalog code (the client's status and retry advice).
    pub code: ErrorCode,
    /// Safe to show to clients: never a raw upstream body.
    pub message: String,
    /// For logs only (may contain a truncated upstream body).
    pub detail: String,
    /// How long the provider asked us to wait (`Retry-After`), if it said.
    pub retry_after: Option<Duration>,
    /// What may help: retry, fallback, or nothing.
    pub failure: Failure,
    /// The request parameter at fault, when the provider refused one.
    pub parameter: Option<mediagate_core::ParamPath>,
}

impl ProviderError {
    /// A failure with a client-safe message and a log-only detail. Retryable catalog codes are
    /// [`Failure::Transient`], the others [`Failure::Request`].
    pub fn new(code: ErrorCode, message: impl Into<String>, detail: impl Into<String>) -> Self {
        ProviderError {
            code,
            message: message.into(),
            detail: detail.into(),
            retry_after: None,
            failure: if code.is_retryable() { Failure::Transient } else { Failure::Request },
            parameter: None,
        }
    }

    /// An operator-side failure (credentials, quota, configuration): the client is not at fault,
    /// retrying cannot help, and the message says the operator must act. The `detail` is logged.
    pub fn operator(message: impl Into<String>, detail: impl Into<String>) -> Self {
        ProviderError {
            failure: Failure::Provider,
            ..ProviderError::new(ErrorCode::InternalServerError, message, detail)
        }
    }

    /// Sets the provider's requested wait.
    pub fn with_retry_after(mut self, d: Option<Duration>) -> Self {
        self.retry_after = d;
        self
    }

    /// Names the request parameter at fault.
    pub fn with_parameter(mut self, p: mediagate_core::ParamPath) -> Self {
        self.parameter = Some(p);
        self
    }

    /// Overrides the failure class.
    pub fn with_failure(mut self, f: Failure) -> Self {
        self.failure = f;
        self
    }
}

/// How a provider returns results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// [`Provider::submit`] returns the results ([`Submitted::Done`]).
    Sync,
    /// `submit` returns a handle; [`Provider::wait`] polls for the result.
    Poll,
    /// `submit` returns a handle; `wait` follows a stream of events and forwards progress.
    Stream,
}

/// What a provider can run.
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// Task types it serves.
    pub task_types: Vec<TaskType>,
    /// AIR ids it is configured for; empty means any model routed to it.
    pub models: Vec<String>,
    /// How it delivers.
    pub delivery: Delivery,
}

impl Capabilities {
    /// Whether it serves `air` for `task_type`.
    pub fn serves(&self, task_type: TaskType, air: &str) -> bool {
        self.task_types.contains(&task_type)
            && (self.models.is_empty() || self.models.iter().any(|m| m == air))
    }
}

/// A submitted job on a queue-backed provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobHandle {
    /// The provider's id(s) for the job (comma-free strings; several for ComfyUI, one prompt
    /// per result).
    pub ids: Vec<String>,
    /// Provider-specific context (e.g. ComfyUI's client id).
    pub context: String,
}

/// The answer to a submit.
#[derive(Debug)]
pub enum Submitted {
    /// Finished already.
    Done(Vec<Artifact>),
    /// Accepted; [`Provider::wait`] for it.
    Pending(JobHandle),
}

/// Progress of a running job.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// 0.0 ..= 1.0.
    pub fraction: f32,
}

/// Where progress goes.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// A [`ProgressFn`] that drops everything.
pub fn no_progress() -> ProgressFn {
    Arc::new(|_| {})
}

/// A provider's own view of its health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Answering.
    Healthy,
    /// Answering but not well (busy, degraded).
    Degraded(String),
    /// Not answering, or refusing mediagate's credentials.
    Unhealthy(String),
}

/// A backend that renders tasks. See the crate docs for the contract.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The name models refer to in the catalog.
    fn name(&self) -> &str;

    /// What it can run.
    fn capabilities(&self) -> Capabilities;

    /// The optional parameters it acts on for `model` (LoRA, ControlNet, a seed image…; see
    /// [`mediagate_core::task::extras`]). A model routed to it refuses tasks that use others,
    /// at admission. The default acts on none.
    fn param_support(&self, _model: &str) -> ParamSupport {
        ParamSupport::none()
    }

    /// Starts a job (or runs it, for [`Delivery::Sync`] providers). Exactly one upstream
    /// submission; never retried here.
    async fn submit(&self, job: Arc<Job>) -> Result<Submitted, ProviderError>;

    /// [`Provider::submit`] for providers that do their work inside submit and can report its
    /// progress there (the local stand-ins). The default ignores `progress`.
    async fn submit_with_progress(
        &self,
        job: Arc<Job>,
        progress: &ProgressFn,
    ) -> Result<Submitted, ProviderError> {
        let _ = progress;
        self.submit(job).await
    }

    /// Waits for a pending job, forwarding progress. The default says the provider has no
    /// pending jobs (right for [`Delivery::Sync`] providers).
    async fn wait(&self, handle: &JobHandle, progress: &ProgressFn) -> Result<Vec<Artifact>, ProviderError> {
        let _ = progress;
        Err(ProviderError::operator(
            "The provider returned a job it cannot wait for; the operator must check its configuration.",
            format!("{}: wait({:?}) on a provider without pending jobs", self.name(), handle.ids),
        ))
    }

    /// Cancels a pending job (best effort: the job may have finished).
    async fn cancel(&self, handle: &JobHandle) -> Result<(), ProviderError> {
        let _ = handle;
        Ok(())
    }

    /// Checks the backend (one request, no retries).
    async fn health(&self) -> Health {
        Health::Healthy
    }

    /// Submit, then wait: one job to completion without cancellation control.
    async fn run(&self, job: Job) -> Result<Vec<Artifact>, ProviderError> {
        match self.submit(Arc::new(job)).await? {
            Submitted::Done(a) => Ok(a),
            Submitted::Pending(h) => self.wait(&h, &no_progress()).await,
        }
    }
}
