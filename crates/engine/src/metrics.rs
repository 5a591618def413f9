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
    websockets: Gauge,
    running: Family<ModelLabels, Gauge>,
    queued: Family<ModelLabels, Gauge>,
    webhooks: Family<DeliveryLabels, Counter>,
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
        let websockets = Gauge::default();
        let running = Family::<ModelLabels, Gauge>::default();
        let queued = Family::<ModelLabels, Gauge>::default();
        let webhooks = Family::<DeliveryLabels, Counter>::default();
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
        Metrics {
            registry,
            requests,
            request_seconds,
            tasks,
            task_seconds,
            phase_seconds,
            charged_micros,
            websockets,
            running,
            queued,
            webhooks,
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
    /// counts as `cancelled`), and `charged_micros` what its delivered results cost.
    pub fn task_ended(
        &self,
        task_type: &str,
        model: &str,
        error: Option<mediagate_core::ErrorCode>,
        charged_micros: i64,
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
        if charged_micros > 0 {
            self.charged_micros.inc_by(charged_micros as u64);
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
