//! Dispatch: the engine's one retry loop, fallback chains and circuit breakers.
//!
//! For a model, the chain is `provider` followed by `fallback`, in order. Each provider gets up
//! to `retry.attempts` tries; only [`Failure::Transient`] failures are retried, after a backoff
//! with full jitter ([`retry`]) or the provider's `Retry-After` when longer. A
//! [`Failure::Provider`] failure (rejected credentials, quota, configuration) or a provider's
//! exhausted attempts move on to the next provider at once; a [`Failure::Request`] failure
//! (invalid parameters, content policy) ends the dispatch: no other provider would accept it
//! either. A provider whose circuit is open ([`breaker`]) is skipped without a call. The whole
//! dispatch, every attempt, wait and backoff on every provider, runs within `retry.deadline_ms`;
//! when it passes the running attempt is abandoned (its upstream job cancelled) and the task
//! fails with `timeoutProvider`. A backoff that would end past the deadline is not slept: the
//! next provider is tried instead, or the last failure is returned.
//!
//! Providers never retry on their own (their HTTP clients have no retry policy), so the number
//! of upstream calls is exactly what this loop decides. Dispatch runs inside one admitted task:
//! whatever happens here, the task is charged once (or refunded once) by the pipeline.

pub mod breaker;
pub mod retry;

use crate::metrics::AttemptOutcome;
use breaker::{Breaker, BreakerConfig, BreakerState, Refusal};
use mediagate_core::ErrorCode;
use mediagate_core::model::ModelSpec;
use mediagate_core::task::ParamSupport;
use mediagate_providers::{
    Artifact, Failure, Health, Job, JobHandle, ProgressFn, Provider, ProviderError, Submitted,
};
use retry::Jitter;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;

/// Providers by name, with a breaker each, and the retry loop over them.
pub struct Dispatcher {
    providers: HashMap<String, Arc<dyn Provider>>,
    breakers: HashMap<String, Breaker>,
    jitter: Jitter,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// A provider's name, health and breaker state.
#[derive(Debug, Clone)]
pub struct ProviderStatus {
    /// The provider.
    pub name: String,
    /// What its backend said.
    pub health: Health,
    /// Its circuit.
    pub breaker: BreakerState,
}

impl ProviderStatus {
    /// Whether it can take work now: not unhealthy, circuit not open.
    pub fn usable(&self) -> bool {
        !matches!(self.health, Health::Unhealthy(_)) && !matches!(self.breaker, BreakerState::Open(_))
    }

    /// As `/readyz` shows it: `{ok, health, circuit, error?}`.
    pub fn report(&self) -> serde_json::Value {
        let (health, why) = match &self.health {
            Health::Healthy => ("healthy", None),
            Health::Degraded(why) => ("degraded", Some(why)),
            Health::Unhealthy(why) => ("unhealthy", Some(why)),
        };
        let circuit = match self.breaker {
            BreakerState::Closed(_) => "closed",
            BreakerState::Open(_) => "open",
            BreakerState::HalfOpen => "half-open",
        };
        let mut v = serde_json::json!({ "ok": self.usable(), "health": health, "circuit": circuit });
        if let Some(why) = why {
            v["error"] = serde_json::json!(why);
        }
        v
    }
}

/// Cancels a pending upstream job when dropped while armed: the attempt was abandoned (deadline,
/// client gone) or failed, and the job may still be running (and billing) upstream.
struct CancelOnDrop {
    provider: Arc<dyn Provider>,
    handle: Option<JobHandle>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(handle) = self.handle.take() else { return };
        let provider = self.provider.clone();
        // Dropped inside the attempt's span (an instrumented future enters it to drop): the
        // cancel call carries the same trace context.
        let span = tracing::Span::current();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = provider.cancel(&handle).await {
                    tracing::warn!(provider = provider.name(), ids = ?handle.ids, detail = %e.detail, "cancelling an abandoned job failed");
                } else {
                    tracing::debug!(provider = provider.name(), ids = ?handle.ids, "cancelled an abandoned job");
                }
            }.instrument(span));
        }
    }
}

/// One attempt: submit, and for queued jobs wait (cancelling the job unless it succeeded).
async fn attempt(
    provider: &Arc<dyn Provider>,
    job: Arc<Job>,
    progress: &ProgressFn,
) -> Result<Vec<Artifact>, ProviderError> {
    match provider.submit_with_progress(job, progress).await? {
        Submitted::Done(a) => Ok(a),
        Submitted::Pending(h) => {
            let mut guard = CancelOnDrop { provider: provider.clone(), handle: Some(h.clone()) };
            let r = provider.wait(&h, progress).await;
            if r.is_ok() {
                guard.handle = None;
            }
            r
        }
    }
}

fn circuit_open(name: &str, refusal: Refusal) -> ProviderError {
    let (detail, retry_after) = match refusal {
        Refusal::Open(remaining) => (
            format!(
                "{name}: circuit open after consecutive failures, {:.1} s of cooldown left; not called",
                remaining.as_secs_f64()
            ),
            Some(remaining),
        ),
        // No time is known: the probe's verdict decides.
        Refusal::Probing => {
            (format!("{name}: circuit half-open, a probe request is testing the provider; not called"), None)
        }
    };
    ProviderError::new(
        ErrorCode::ProviderError,
        "The provider is failing and mediagate has paused traffic to it. Retry later.",
        detail,
    )
    .with_retry_after(retry_after.filter(|d| !d.is_zero()))
}

fn deadline_passed(spec: &ModelSpec, last: Option<ProviderError>) -> ProviderError {
    ProviderError::new(
        ErrorCode::TimeoutProvider,
        format!(
            "The provider did not finish within this model's deadline of {} s. Retry with backoff.",
            spec.retry.deadline_ms as f64 / 1000.0
        ),
        format!(
            "{}: dispatch deadline passed; last failure: {}",
            spec.air,
            last.map(|e| e.detail).unwrap_or_else(|| "none".into())
        ),
    )
}

impl Dispatcher {
    /// A dispatcher over `providers`; breakers use `breakers[name]` or the default settings.
    pub fn new(
        providers: HashMap<String, Arc<dyn Provider>>,
        mut breakers: HashMap<String, BreakerConfig>,
    ) -> Dispatcher {
        let breakers = providers
            .keys()
            .map(|n| (n.clone(), Breaker::new(breakers.remove(n).unwrap_or_default())))
            .collect();
        Dispatcher { providers, breakers, jitter: retry::full_jitter(), metrics: None }
    }

    /// Counts every attempt in `metrics` (by provider, outcome and code, with its duration).
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Dispatcher {
        self.metrics = Some(metrics);
        self
    }

    /// Counts an attempt in the metrics and keeps it in the task's log.
    fn count(&self, call: Call<'_>, outcome: crate::metrics::AttemptOutcome, message: Option<&str>) {
        let took = call.started.elapsed();
        if let Some(m) = &self.metrics {
            m.provider_attempt(call.provider, outcome, took);
        }
        call.log.push(mediagate_store::ProviderAttempt {
            provider: call.provider.to_string(),
            attempt: call.n,
            outcome: match outcome {
                AttemptOutcome::Success => "success".into(),
                AttemptOutcome::CircuitOpen => "circuitOpen".into(),
                AttemptOutcome::Error(code) => code.as_str().into(),
            },
            duration_ms: took.as_secs_f64() * 1000.0,
            message: message.map(str::to_string),
        });
    }

    /// Replaces the jitter function (tests pin it to make backoff exact).
    pub fn with_jitter(mut self, jitter: Jitter) -> Dispatcher {
        self.jitter = jitter;
        self
    }

    /// A provider by name.
    pub fn provider(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.providers.get(name)
    }

    /// Every provider name.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.providers.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// A provider's circuit state now.
    pub fn breaker_state(&self, name: &str) -> Option<BreakerState> {
        self.breakers.get(name).map(|b| b.state(Instant::now()))
    }

    /// Checks that every provider in a model's chain exists and serves the model.
    pub fn check_route(&self, spec: &ModelSpec) -> Result<(), String> {
        for name in std::iter::once(&spec.provider).chain(&spec.fallback) {
            let Some(p) = self.providers.get(name) else {
                return Err(format!(
                    "model {}: provider '{name}' is not configured (known: {})",
                    spec.air,
                    self.names().join(", ")
                ));
            };
            let caps = p.capabilities();
            if !caps.serves(spec.task_type, &spec.air) {
                return Err(format!(
                    "model {}: provider '{name}' does not serve it (task types {:?}, models {:?})",
                    spec.air, caps.task_types, caps.models
                ));
            }
        }
        Ok(())
    }

    /// The optional parameters a model acts on: those every provider of its chain acts on (a
    /// fallback must be able to run whatever the first provider was given).
    pub fn route_params(&self, spec: &ModelSpec) -> ParamSupport {
        std::iter::once(&spec.provider)
            .chain(&spec.fallback)
            .filter_map(|name| self.providers.get(name))
            .fold(ParamSupport::All, |acc, p| acc.intersect(&p.param_support(&spec.air)))
    }

    /// Every provider's breaker state now (no request made).
    pub fn circuits(&self) -> Vec<(String, BreakerState)> {
        let now = Instant::now();
        self.breakers.iter().map(|(n, b)| (n.clone(), b.state(now))).collect()
    }

    /// Every provider's health (one request each, concurrently) and breaker state.
    pub async fn health(&self) -> Vec<ProviderStatus> {
        let checks = self.names().into_iter().map(|n| async move {
            let health = self.providers[n].health().await;
            ProviderStatus { name: n.to_string(), health, breaker: self.breakers[n].state(Instant::now()) }
        });
        futures::future::join_all(checks).await
    }

    /// Runs a job for a model: the chain, retries, breakers and deadline described in the
    /// module docs. The error is the last provider failure (or the deadline's).
    pub async fn dispatch(
        &self,
        spec: &ModelSpec,
        job: Job,
        progress: ProgressFn,
    ) -> Result<Vec<Artifact>, ProviderError> {
        self.dispatch_logged(spec, job, progress, &crate::live::AttemptLog::default()).await
    }

    /// [`Dispatcher::dispatch`], keeping each attempt (provider, outcome, duration) in `log`.
    pub async fn dispatch_logged(
        &self,
        spec: &ModelSpec,
        job: Job,
        progress: ProgressFn,
        log: &crate::live::AttemptLog,
    ) -> Result<Vec<Artifact>, ProviderError> {
        let policy = &spec.retry;
        let deadline = Instant::now() + Duration::from_millis(policy.deadline_ms);
        let job = Arc::new(job);
        let mut last: Option<ProviderError> = None;
        let mut tried: Vec<&str> = Vec::new();
        for name in std::iter::once(&spec.provider).chain(&spec.fallback) {
            if tried.contains(&name.as_str()) {
                continue;
            }
            tried.push(name);
            let (Some(provider), Some(breaker)) = (self.providers.get(name), self.breakers.get(name)) else {
                last = Some(ProviderError::operator(
                    "The model is routed to a provider that is not configured.",
                    format!("{}: provider {name} unknown", spec.air),
                ));
                continue;
            };
            for n in 1..=policy.attempts.max(1) {
                if Instant::now() >= deadline {
                    return Err(deadline_passed(spec, last));
                }
                let permit = match breaker.try_acquire(Instant::now()) {
                    Ok(p) => p,
                    Err(refusal) => {
                        let call = Call { provider: name, n, started: Instant::now(), log };
                        self.count(call, AttemptOutcome::CircuitOpen, Some("circuit open: not called"));
                        tracing::info!(provider = %name, model = %spec.air, ?refusal, "circuit open; skipping to the fallback");
                        last = Some(circuit_open(name, refusal));
                        break;
                    }
                };
                // With traces on, each attempt is a client span whose context the provider's
                // HTTP calls carry (`traceparent`); with traces off, no span at all.
                let span = if crate::traces::enabled() {
                    tracing::info_span!(
                        "provider.call",
                        otel.kind = "client",
                        otel.status_code = tracing::field::Empty,
                        provider = %name,
                        model = %spec.air,
                        task_type = spec.task_type.as_str(),
                        attempt = n,
                        outcome = tracing::field::Empty,
                    )
                } else {
                    tracing::Span::none()
                };
                let started = Instant::now();
                let outcome = tokio::time::timeout_at(
                    deadline,
                    attempt(provider, job.clone(), &progress).instrument(span.clone()),
                )
                .await;
                let (counted, message) = match &outcome {
                    Ok(Ok(_)) => (AttemptOutcome::Success, None),
                    Ok(Err(e)) => (AttemptOutcome::Error(e.code), Some(e.message.as_str())),
                    Err(_) => (
                        AttemptOutcome::Error(ErrorCode::TimeoutProvider),
                        Some("the task's deadline passed"),
                    ),
                };
                self.count(Call { provider: name, n, started, log }, counted, message);
                if !span.is_none() {
                    let code = match &outcome {
                        Ok(Ok(_)) => "success",
                        Ok(Err(e)) => e.code.as_str(),
                        Err(_) => "deadline",
                    };
                    span.record("outcome", code);
                    if code != "success" {
                        span.record("otel.status_code", "error");
                    }
                }
                let e = match outcome {
                    Ok(Ok(artifacts)) => {
                        permit.success();
                        if n > 1 || tried.len() > 1 {
                            tracing::info!(provider = %name, attempt = n, "provider succeeded after earlier failures");
                        }
                        return Ok(artifacts);
                    }
                    Ok(Err(e)) => e,
                    Err(_) => {
                        permit.failure(Instant::now());
                        tracing::warn!(provider = %name, attempt = n, "dispatch deadline passed during an attempt");
                        return Err(deadline_passed(spec, last));
                    }
                };
                tracing::warn!(
                    provider = %name, model = %spec.air, attempt = n, code = %e.code,
                    failure = ?e.failure, detail = %e.detail, "provider attempt failed"
                );
                match e.failure {
                    Failure::Request => {
                        permit.success();
                        return Err(e);
                    }
                    Failure::Provider => {
                        permit.failure(Instant::now());
                        last = Some(e);
                        break;
                    }
                    Failure::Transient => {
                        permit.failure(Instant::now());
                        // This failure opened the circuit: no backoff, go to the fallback now.
                        let open = matches!(breaker.state(Instant::now()), BreakerState::Open(_));
                        if open || n == policy.attempts.max(1) {
                            last = Some(e);
                            break;
                        }
                        let wait = retry::delay(policy, n, &self.jitter, e.retry_after);
                        last = Some(e);
                        if Instant::now() + wait >= deadline {
                            tracing::info!(provider = %name, ?wait, "no time left to retry before the deadline");
                            break;
                        }
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            ProviderError::operator(
                "The model has no provider configured.",
                format!("{}: empty chain", spec.air),
            )
        }))
    }
}

/// One provider call, as [`Dispatcher::count`] records it.
struct Call<'a> {
    provider: &'a str,
    n: u32,
    started: Instant,
    log: &'a crate::live::AttemptLog,
}

/// A progress sink that logs a task's progress at debug level, at most once per 10 %.
pub fn log_progress(task_uuid: uuid::Uuid) -> ProgressFn {
    let last = std::sync::atomic::AtomicU32::new(0);
    Arc::new(move |p: mediagate_providers::Progress| {
        let tenth = (p.fraction.clamp(0.0, 1.0) * 10.0) as u32;
        if last.fetch_max(tenth, std::sync::atomic::Ordering::Relaxed) < tenth {
            tracing::debug!(task_uuid = %task_uuid, fraction = p.fraction, "task progress");
        }
    })
}
