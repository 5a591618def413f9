//! The server's Prometheus metrics, rendered at `/metrics` in the OpenMetrics text format.
//!
//! One registry per engine rather than the `metrics` crate's process-wide recorder: several
//! servers in one process (the test suite) each count their own, so a test can check counters
//! exactly. `prometheus-client` is the Prometheus project's own Rust client.
//!
//! Every label value comes from a bounded set: dialects, route templates (never raw paths),
//! task type names, the catalog's model ids (a task's model is resolved in the catalog before
//! it is admitted), the error catalog's codes and HTTP statuses. No task UUIDs, account names or
//! other client-chosen strings.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// The labels of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    dialect: &'static str,
    route: String,
    status: u16,
}

/// The labels of a request's latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    dialect: &'static str,
    route: String,
}

/// The labels of a task's end.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    task_type: String,
    model: String,
    outcome: &'static str,
    code: &'static str,
}

/// The labels of a task's duration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskKindLabels {
    task_type: String,
    model: String,
}

/// The labels of a phase of a task's time.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

/// The labels of a per-model gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
}

/// The labels of a webhook delivery's end.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    outcome: &'static str,
}

/// The labels of a provider attempt's end.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    provider: String,
    outcome: &'static str,
    code: &'static str,
}

/// The labels of a per-provider histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
}

/// The labels of a provider's circuit state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CircuitLabels {
    provider: String,
    state: &'static str,
}

/// The labels of an input asset's resolution.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AssetLabels {
    source: &'static str,
    outcome: &'static str,
}

/// How a provider attempt ended, for [`Metrics::provider_attempt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// It returned results.
    Success,
    /// It failed with this catalog code.
    Error(mediagate_core::ErrorCode),
    /// The provider was not called: its circuit is open.
    CircuitOpen,
}

/// Latency buckets from 1 ms to about 65 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// The metrics of one server.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    tasks: Family<TaskLabels, Counter>,
    task_seconds: Family<TaskKindLabels, Histogram, fn() -> Histogram>,
    phase_seconds: Family<PhaseLabels, Histogram, fn() -> Histogram>,
    charged_micros: Counter,
    refunded_micros: Counter,
    websockets: Gauge,
    running: Family<ModelLabels, Gauge>,
    queued: Family<ModelLabels, Gauge>,
    webhooks: Family<DeliveryLabels, Counter>,
    attempts: Family<AttemptLabels, Counter>,
    attempt_seconds: Family<ProviderLabels, Histogram, fn() -> Histogram>,
    circuits: Family<CircuitLabels, Gauge>,
    asset_seconds: Family<AssetLabels, Histogram, fn() -> Histogram>,
    store_commits: Family<CommitLabels, Counter>,
    store_batch_writes: Family<CommitLabels, Counter>,
    store_sync: parking_lot::Mutex<()>,
}

/// The labels of the store's commits.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommitLabels {
    path: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let tasks = Family::<TaskLabels, Counter>::default();
        let task_seconds =
            Family::<TaskKindLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let phase_seconds =
            Family::<PhaseLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let charged_micros = Counter::default();
        let refunded_micros = Counter::default();
        let websockets = Gauge::default();
        let running = Family::<ModelLabels, Gauge>::default();
        let queued = Family::<ModelLabels, Gauge>::default();
        let webhooks = Family::<DeliveryLabels, Counter>::default();
        let attempts = Family::<AttemptLabels, Counter>::default();
        let attempt_seconds =
            Family::<ProviderLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let circuits = Family::<CircuitLabels, Gauge>::default();
        let asset_seconds =
            Family::<AssetLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let store_commits = Family::<CommitLabels, Counter>::default();
        let store_batch_writes = Family::<CommitLabels, Counter>::default();
        registry.register(
            "mediagate_http_requests",
            "HTTP requests answered, by dialect, route template and status",
            requests.clone(),
        );
        registry.register(
            "mediagate_http_request_duration_seconds",
            "Time from a request's arrival to its response's headers, by dialect and route template",
            request_seconds.clone(),
        );
        registry.register(
            "mediagate_tasks",
            "Admitted tasks that ended, by task type, model, outcome (success, error, cancelled) and error code",
            tasks.clone(),
        );
        registry.register(
            "mediagate_task_duration_seconds",
            "Time from a task's start (after admission) to its recorded end, by task type and model",
            task_seconds.clone(),
        );
        registry.register(
            "mediagate_task_phase_duration_seconds",
            "Where tasks' time went, by phase: queue (waiting for a concurrency slot), provider (running: \
             inputs, the provider's work, output files), store (the store's writes on the task's path)",
            phase_seconds.clone(),
        );
        registry.register(
            "mediagate_credits_charged_micros",
            "Credits charged for delivered results, in micro-dollars",
            charged_micros.clone(),
        );
        registry.register(
            "mediagate_credits_refunded_micros",
            "Credits reserved at admission and given back when a task ended (failed, cancelled, or cost less \
             than reserved), in micro-dollars",
            refunded_micros.clone(),
        );
        registry.register(
            "mediagate_websocket_connections",
            "Open WebSocket connections",
            websockets.clone(),
        );
        registry.register(
            "mediagate_tasks_running",
            "Tasks holding a concurrency slot of a model, all accounts together (at the scrape)",
            running.clone(),
        );
        registry.register(
            "mediagate_tasks_queued",
            "Tasks waiting for a concurrency slot of a model, all accounts together (at the scrape)",
            queued.clone(),
        );
        registry.register(
            "mediagate_webhook_deliveries",
            "Webhook deliveries that ended, by outcome: delivered, or failed after the last attempt",
            webhooks.clone(),
        );
        registry.register(
            "mediagate_provider_attempts",
            "Calls to providers that ended, by provider, outcome (success, error, circuit_open: not called) \
             and error code; a task's retries and fallbacks are attempts of their own",
            attempts.clone(),
        );
        registry.register(
            "mediagate_provider_attempt_duration_seconds",
            "Time of one provider attempt (submit, wait, result), by provider",
            attempt_seconds.clone(),
        );
        registry.register(
            "mediagate_provider_circuit",
            "1 for the state each provider's circuit breaker is in (closed, open, half_open), 0 for the others \
             (at the scrape)",
            circuits.clone(),
        );
        registry.register(
            "mediagate_asset_resolve_duration_seconds",
            "Time to resolve one input asset (fetch a URL, decode a data URI or base64, load an upload) and \
             check it, by source (url, data_uri, base64, stored, upload, or none when it failed) and outcome",
            asset_seconds.clone(),
        );
        registry.register(
            "mediagate_store_commits",
            "Transactions the SQLite store's writer committed, by path: inline (a lone write on its caller's \
             thread) or batch (group commits of the writer thread) (at the scrape; absent on PostgreSQL)",
            store_commits.clone(),
        );
        registry.register(
            "mediagate_store_committed_writes",
            "Writes those transactions held, by path; writes / commits is the mean batch size",
            store_batch_writes.clone(),
        );
        Metrics {
            registry,
            requests,
            request_seconds,
            tasks,
            task_seconds,
            phase_seconds,
            charged_micros,
            refunded_micros,
            websockets,
            running,
            queued,
            webhooks,
            attempts,
            attempt_seconds,
            circuits,
            asset_seconds,
            store_commits,
            store_batch_writes,
            store_sync: parking_lot::Mutex::new(()),
        }
    }

    /// Counts an answered HTTP request. `route` is the matched route template, or `unmatched`.
    pub fn request(&self, dialect: &'static str, route: &str, status: u16, elapsed: Duration) {
        self.requests.get_or_create(&RequestLabels { dialect, route: route.to_string(), status }).inc();
        self.request_seconds
            .get_or_create(&RouteLabels { dialect, route: route.to_string() })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a task's recorded end: `error` is its error code when it failed (`taskCancelled`
    /// counts as `cancelled`), and `settled` what its end charged and refunded.
    pub fn task_ended(
        &self,
        task_type: &str,
        model: &str,
        error: Option<mediagate_core::ErrorCode>,
        settled: mediagate_store::Settled,
        elapsed: Duration,
    ) {
        let (outcome, code) = match error {
            None => ("success", ""),
            Some(mediagate_core::ErrorCode::TaskCancelled) => ("cancelled", "taskCancelled"),
            Some(c) => ("error", c.as_str()),
        };
        let (task_type, model) = (task_type.to_string(), model.to_string());
        self.tasks
            .get_or_create(&TaskLabels { task_type: task_type.clone(), model: model.clone(), outcome, code })
            .inc();
        self.task_seconds.get_or_create(&TaskKindLabels { task_type, model }).observe(elapsed.as_secs_f64());
        if settled.charged_micros > 0 {
            self.charged_micros.inc_by(settled.charged_micros as u64);
        }
        if settled.refunded_micros > 0 {
            self.refunded_micros.inc_by(settled.refunded_micros as u64);
        }
    }

    /// Records where a task that ran in this process spent its time.
    pub fn task_phases(&self, timing: &crate::timing::Timing) {
        for (phase, d) in [("queue", timing.queue), ("provider", timing.provider), ("store", timing.store)] {
            self.phase_seconds.get_or_create(&PhaseLabels { phase }).observe(d.as_secs_f64());
        }
    }

    /// Counts an open WebSocket connection until the returned guard is dropped.
    pub fn websocket_opened(&self) -> WebSocketGuard {
        self.websockets.inc();
        WebSocketGuard(self.websockets.clone())
    }

    /// Counts a webhook delivery that ended.
    pub fn webhook_ended(&self, delivered: bool) {
        self.webhooks
            .get_or_create(&DeliveryLabels { outcome: if delivered { "delivered" } else { "failed" } })
            .inc();
    }

    /// Counts a provider attempt's end and its duration.
    pub fn provider_attempt(&self, provider: &str, outcome: AttemptOutcome, elapsed: Duration) {
        let (outcome, code) = match outcome {
            AttemptOutcome::Success => ("success", ""),
            AttemptOutcome::Error(c) => ("error", c.as_str()),
            AttemptOutcome::CircuitOpen => ("circuit_open", ""),
        };
        self.attempts.get_or_create(&AttemptLabels { provider: provider.to_string(), outcome, code }).inc();
        if outcome != "circuit_open" {
            self.attempt_seconds
                .get_or_create(&ProviderLabels { provider: provider.to_string() })
                .observe(elapsed.as_secs_f64());
        }
    }

    /// Records the resolution of one input asset: its source when resolved, `None` when it
    /// failed.
    pub fn asset_resolved(&self, source: Option<&mediagate_assets::AssetSource>, elapsed: Duration) {
        use mediagate_assets::AssetSource;
        let (source, outcome) = match source {
            None => ("none", "error"),
            Some(AssetSource::Url(_)) => ("url", "ok"),
            Some(AssetSource::DataUri) => ("data_uri", "ok"),
            Some(AssetSource::Base64) => ("base64", "ok"),
            Some(AssetSource::Stored(_)) => ("stored", "ok"),
            Some(AssetSource::Upload) => ("upload", "ok"),
        };
        self.asset_seconds.get_or_create(&AssetLabels { source, outcome }).observe(elapsed.as_secs_f64());
    }

    /// Sets each provider's circuit gauge to its state now.
    pub fn set_circuits(&self, states: Vec<(String, crate::dispatch::breaker::BreakerState)>) {
        use crate::dispatch::breaker::BreakerState;
        for (provider, state) in states {
            let now = match state {
                BreakerState::Closed(_) => "closed",
                BreakerState::Open(_) => "open",
                BreakerState::HalfOpen => "half_open",
            };
            for s in ["closed", "open", "half_open"] {
                self.circuits
                    .get_or_create(&CircuitLabels { provider: provider.clone(), state: s })
                    .set(i64::from(s == now));
            }
        }
    }

    /// Sets the store's commit counters to the writer's totals (SQLite only).
    pub fn set_store_commits(&self, stats: Option<mediagate_store::WriterStats>) {
        let Some(stats) = stats else { return };
        // The counters are brought up to the writer's totals by their difference: two scrapes
        // at once must not both add it.
        let _one_at_a_time = self.store_sync.lock();
        for (path, commits, writes) in [
            ("inline", stats.inline_batches, stats.inline_batches),
            ("batch", stats.thread_batches, stats.thread_writes),
        ] {
            let c = self.store_commits.get_or_create(&CommitLabels { path });
            c.inc_by(commits.saturating_sub(c.get()));
            let w = self.store_batch_writes.get_or_create(&CommitLabels { path });
            w.inc_by(writes.saturating_sub(w.get()));
        }
    }

    /// Sets the per-model queue gauges to what the queues hold now.
    pub fn set_queues(&self, totals: Vec<(String, crate::limits::concurrency::LaneCounts)>) {
        for (model, counts) in totals {
            self.running.get_or_create(&ModelLabels { model: model.clone() }).set(i64::from(counts.running));
            self.queued.get_or_create(&ModelLabels { model }).set(i64::from(counts.queued));
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Keeps a WebSocket connection counted while it lives.
pub struct WebSocketGuard(Gauge);

impl Drop for WebSocketGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
