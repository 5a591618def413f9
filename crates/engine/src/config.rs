//! The configuration of a mediagate server: one TOML file plus `MEDIAGATE_*` overrides.
//!
//! Every field has a default, so an empty file (or none) is a working configuration.
//! `docs/configuration.md` documents each option; a test checks that it names every key.

use mediagate_assets::IntakeConfig;
use mediagate_core::model::ModelSpec;
use mediagate_store::sqlite::Synchronous;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: String,
    /// Directory holding the SQLite database and stored outputs.
    pub data_dir: PathBuf,
    /// Base URL clients reach the server at, used in output URLs; empty = `http://` + the bound address.
    pub public_base_url: String,
    /// HTTP edge options.
    pub server: ServerConfig,
    /// Logging (`[log]`).
    pub log: LogConfig,
    /// OpenTelemetry traces (`[traces]`), off by default.
    pub traces: TracesConfig,
    /// What the first start creates.
    pub bootstrap: BootstrapConfig,
    /// Task execution options.
    pub tasks: TasksConfig,
    /// The WebSocket API.
    pub websocket: WebSocketConfig,
    /// Webhook deliveries.
    pub webhooks: crate::webhooks::WebhooksConfig,
    /// Store options.
    pub store: StoreConfig,
    /// Authentication options.
    pub auth: AuthConfig,
    /// Task history (`[history]`).
    pub history: crate::history::HistoryConfig,
    /// Rate limits, concurrency, queues and caps.
    pub limits: crate::limits::LimitsConfig,
    /// Stored outputs.
    pub outputs: OutputsConfig,
    /// Uploaded assets (Runware `imageUpload` / `mediaStorage`, Runway `POST /v1/uploads`).
    pub uploads: UploadsConfig,
    /// Local providers.
    pub providers: ProvidersConfig,
    /// Input asset intake.
    pub assets: IntakeConfig,
    /// The developer portal at `/portal` (`[portal]`).
    pub portal: PortalConfig,
    /// Extra models (or redefinitions of built-in AIR ids).
    pub models: Vec<ModelSpec>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8800".into(),
            data_dir: PathBuf::from("./mediagate-data"),
            public_base_url: String::new(),
            server: ServerConfig::default(),
            log: LogConfig::default(),
            traces: TracesConfig::default(),
            bootstrap: BootstrapConfig::default(),
            tasks: TasksConfig::default(),
            websocket: WebSocketConfig::default(),
            webhooks: Default::default(),
            store: StoreConfig::default(),
            auth: AuthConfig::default(),
            history: Default::default(),
            limits: Default::default(),
            outputs: OutputsConfig::default(),
            uploads: UploadsConfig::default(),
            providers: ProvidersConfig::default(),
            assets: IntakeConfig::default(),
            portal: PortalConfig::default(),
            models: Vec::new(),
        }
    }
}

/// HTTP edge options (`[server]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Largest request body in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Most tasks in one request array.
    pub max_tasks_per_request: usize,
    /// Seconds a graceful shutdown waits for in-flight requests before giving up.
    pub shutdown_grace_secs: u64,
    /// Reverse proxies whose `X-Forwarded-For` is believed, as networks (`10.0.0.0/8`) or single
    /// addresses (`127.0.0.1`). Empty (the default): the client is the connection's peer.
    #[serde(deserialize_with = "deserialize_networks")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Open client connections at most (HTTP and WebSocket together). A connection past it is
    /// answered `503` with `Retry-After` and closed. Capped at start-up to what the process's
    /// open-file limit allows.
    pub max_connections: usize,
    /// Requests worked on at once (operator routes aside); one more is answered `503` with
    /// `Retry-After` at once.
    pub max_in_flight_requests: usize,
    /// Seconds a client has to send a request's line and headers, counted from when the server
    /// is ready for it; it is also how long an idle keep-alive connection stays open.
    pub header_timeout_secs: u64,
    /// Seconds a request body may pause between two chunks before the request fails (`504`).
    pub body_timeout_secs: u64,
    /// Seconds a whole request may take, from its headers to its response's headers (`504`
    /// after that). Must exceed `tasks.sync_timeout_secs`, which sync tasks wait.
    pub request_timeout_secs: u64,
    /// Bytes of request bodies the server holds in memory, summed over all requests whose
    /// sender is not authenticated yet (a Runware body that carries its key inside). A request
    /// that would go past it is answered `503` with `Retry-After`.
    pub unauthenticated_body_budget_bytes: usize,
    /// Serve Prometheus metrics at `/metrics` (no key needed: expose it to your scraper only).
    pub metrics_enabled: bool,
    /// Milliseconds `/readyz` waits for the store to answer before it says the server is not
    /// ready.
    pub readiness_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body_bytes: 12_000_000,
            max_tasks_per_request: 100,
            shutdown_grace_secs: 30,
            trusted_proxies: Vec::new(),
            max_connections: 4096,
            max_in_flight_requests: 1024,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            request_timeout_secs: 180,
            unauthenticated_body_budget_bytes: 64 * 1024 * 1024,
            metrics_enabled: true,
            readiness_timeout_ms: 2000,
        }
    }
}

/// Networks written as `addr/prefix` or as a bare address (a network of one).
fn deserialize_networks<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
    let entries = Vec::<String>::deserialize(d)?;
    entries
        .iter()
        .map(|e| {
            let e = e.trim();
            e.parse::<ipnet::IpNet>()
                .or_else(|_| e.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!(
                        "'{e}' is not an IP address or network; write e.g. \"10.0.0.0/8\" or \"127.0.0.1\""
                    ))
                })
        })
        .collect()
}

/// How log lines are written (`[log]`). Which lines is `MEDIAGATE_LOG`'s filter (default `info`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (human-readable) or `json` (one JSON object per line, for log collectors).
    pub format: LogFormat,
    /// One `info` line per answered request, with its request id, status and latency (off: a
    /// `debug` line).
    pub requests: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Text, requests: false }
    }
}

/// The format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, with the span's fields as a prefix.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `fields`, `target`, the current `span`
    /// and its parents (`spans`), so a request's lines carry its `request_id`.
    Json,
}

/// OpenTelemetry traces exported over OTLP/HTTP (`[traces]`). Off unless `otlp_endpoint` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracesConfig {
    /// Base URL of an OTLP/HTTP collector (`http://127.0.0.1:4318`); spans are POSTed as
    /// protobuf to its `/v1/traces` (appended unless the URL already ends with it). Empty (the
    /// default): no traces, and no trace context is sent to providers or webhooks.
    pub otlp_endpoint: String,
    /// The `service.name` the spans are reported under.
    pub service_name: String,
    /// Share of new traces kept, from 0.0 to 1.0. A request whose `traceparent` says its caller
    /// kept (sampled) the trace is kept whatever this says, and one whose caller dropped it is
    /// dropped, so a trace is whole or absent.
    pub sample_ratio: f64,
    /// Milliseconds one export to the collector may take before it is given up (its spans are
    /// lost; the server is never slowed by a slow collector).
    pub export_timeout_ms: u64,
}

impl Default for TracesConfig {
    fn default() -> Self {
        TracesConfig {
            otlp_endpoint: String::new(),
            service_name: "mediagate".into(),
            sample_ratio: 1.0,
            export_timeout_ms: 10_000,
        }
    }
}

impl TracesConfig {
    /// Whether traces are exported.
    pub fn enabled(&self) -> bool {
        !self.otlp_endpoint.trim().is_empty()
    }

    /// The URL spans are POSTed to: the endpoint with `/v1/traces` appended unless it is there.
    pub fn traces_url(&self) -> String {
        let base = self.otlp_endpoint.trim().trim_end_matches('/');
        if base.ends_with("/v1/traces") { base.to_string() } else { format!("{base}/v1/traces") }
    }

    /// Checks the values: a ratio within 0.0–1.0, an `http(s)` endpoint, a nonzero timeout and
    /// a service name. The message names the key and what to write instead.
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(format!(
                "traces.sample_ratio must be between 0.0 and 1.0 (got {}); 1.0 keeps every trace",
                self.sample_ratio
            ));
        }
        if !self.enabled() {
            return Ok(());
        }
        let url = self.otlp_endpoint.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.contains(char::is_whitespace) {
            return Err(format!(
                "traces.otlp_endpoint must be an http:// or https:// URL of an OTLP/HTTP collector, e.g. \
                 \"http://127.0.0.1:4318\" (got {url:?})"
            ));
        }
        if self.export_timeout_ms == 0 {
            return Err("traces.export_timeout_ms must be at least 1".into());
        }
        if self.service_name.trim().is_empty() {
            return Err("traces.service_name must not be empty".into());
        }
        Ok(())
    }
}

/// First-start options (`[bootstrap]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BootstrapConfig {
    /// Name of the account created when the store has none.
    pub account: String,
    /// Its starting credit, in USD (decimal string).
    #[serde(deserialize_with = "mediagate_core::money::deserialize_usd")]
    pub initial_credit_usd: String,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        BootstrapConfig { account: "default".into(), initial_credit_usd: "10.00".into() }
    }
}

/// Task execution options (`[tasks]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TasksConfig {
    /// Seconds a sync request waits for its task; past it the reply is `taskStillProcessing`
    /// and the task keeps running.
    pub sync_timeout_secs: u64,
    /// Acknowledged tasks resumed at start-up (left unfinished by the last stop) run at most this
    /// many at once, within the models' own concurrency limits, so a restart does not send the
    /// whole backlog to the providers at once (0 = only the models' limits).
    pub resume_concurrency: usize,
}

impl Default for TasksConfig {
    fn default() -> Self {
        TasksConfig { sync_timeout_secs: 120, resume_concurrency: 8 }
    }
}

/// The WebSocket API (`[websocket]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketConfig {
    /// Seconds without any message from the client before the socket is closed.
    pub idle_timeout_secs: u64,
    /// Largest message (and frame) accepted, in bytes.
    pub max_message_bytes: usize,
    /// Messages queued for one connection; a client that falls this far behind is disconnected
    /// (its undelivered results are kept for resume).
    pub outbound_queue: usize,
    /// Bytes of messages queued for one connection; past it, as past `outbound_queue`.
    pub outbound_queue_bytes: usize,
    /// Seconds a disconnected session can be resumed with its `connectionSessionUUID`.
    pub resume_window_secs: u64,
    /// Results kept for a disconnected session.
    pub backlog_max: usize,
    /// Bytes of results kept for one disconnected session.
    pub backlog_max_bytes: usize,
    /// Bytes of results kept for all disconnected sessions together.
    pub detached_max_bytes: usize,
    /// Disconnected sessions kept per account; past it the oldest expires.
    pub detached_sessions_per_account: usize,
    /// Tasks of one connection running at once; a task past it is refused with `queueFull`
    /// (retry once results come back). Each message also holds at most
    /// `server.max_tasks_per_request` tasks, as a REST request does.
    pub max_inflight_tasks: usize,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            idle_timeout_secs: 120,
            max_message_bytes: 12_000_000,
            outbound_queue: 256,
            outbound_queue_bytes: 16 * 1024 * 1024,
            resume_window_secs: 300,
            backlog_max: 1000,
            backlog_max_bytes: 32 * 1024 * 1024,
            detached_max_bytes: 128 * 1024 * 1024,
            detached_sessions_per_account: 16,
            max_inflight_tasks: 256,
        }
    }
}

/// Which database holds the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// An embedded SQLite file in the data directory.
    #[default]
    Sqlite,
    /// A PostgreSQL database at `store.url`.
    Postgres,
}

/// Store options (`[store]`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite` (default) or `postgres`.
    pub backend: StoreBackend,
    /// PostgreSQL connection URL (`postgres://user:password@host:5432/db`); required when
    /// `backend = "postgres"`, unused otherwise. Its password is never logged.
    pub url: String,
    /// PostgreSQL: connections in the pool at most.
    pub max_connections: u32,
    /// PostgreSQL: milliseconds a request waits for a pooled connection before it is answered
    /// with a retryable 503 (the database is stalled or unreachable).
    pub acquire_timeout_ms: u64,
    /// PostgreSQL: how often (ms) `serve` checks the connection holding its one-server lock and
    /// takes the lock again if that connection broke.
    pub lock_check_ms: u64,
    /// SQLite: `normal` survives process crashes; `full` also survives power loss (slower).
    pub synchronous: Synchronous,
    /// SQLite: read connections.
    pub readers: usize,
    /// SQLite: milliseconds a write waits for another process's lock (e.g. the CLI).
    pub busy_timeout_ms: u64,
    /// SQLite: milliseconds between two WAL checkpoint rounds while writes keep coming (an idle
    /// store backs off to one a second).
    pub checkpoint_interval_ms: u64,
}

impl std::fmt::Debug for StoreConfig {
    // By hand, so that the URL's password never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("backend", &self.backend)
            .field("url", &mediagate_store::postgres::redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout_ms", &self.acquire_timeout_ms)
            .field("lock_check_ms", &self.lock_check_ms)
            .field("synchronous", &self.synchronous)
            .field("readers", &self.readers)
            .field("busy_timeout_ms", &self.busy_timeout_ms)
            .field("checkpoint_interval_ms", &self.checkpoint_interval_ms)
            .finish()
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::Sqlite,
            url: String::new(),
            max_connections: 16,
            acquire_timeout_ms: 3000,
            lock_check_ms: 5000,
            synchronous: Synchronous::Normal,
            readers: 4,
            busy_timeout_ms: 5000,
            checkpoint_interval_ms: mediagate_store::sqlite::CHECKPOINT_INTERVAL.as_millis() as u64,
        }
    }
}

/// Authentication options (`[auth]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Milliseconds a key lookup is cached. Changes made by this server apply at once; changes
    /// made by the CLI (another process) apply within this time.
    pub cache_ttl_ms: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig { cache_ttl_ms: 1000 }
    }
}

/// The developer portal served at `/portal` (`[portal]`). Its sessions live in the server's
/// memory: a restart signs everyone out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortalConfig {
    /// Serve the portal. When false, `/portal` answers 404 like any unknown path.
    pub enabled: bool,
    /// Seconds a portal session lasts from sign-in (an absolute expiry, not renewed by use).
    pub session_ttl_secs: u64,
    /// Portal sessions held at once; a sign-in past it is refused until sessions expire or
    /// sign out.
    pub max_sessions: usize,
}

impl Default for PortalConfig {
    fn default() -> Self {
        PortalConfig { enabled: true, session_ttl_secs: 8 * 3600, max_sessions: 10_000 }
    }
}

/// Stored outputs (`[outputs]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputsConfig {
    /// Seconds an output lives when the task sets no `ttl`.
    pub default_ttl_secs: u64,
    /// Smallest `ttl` a task may ask for.
    pub min_ttl_secs: u64,
    /// Largest `ttl` a task may ask for.
    pub max_ttl_secs: u64,
    /// Seconds between sweeps that delete expired outputs.
    pub sweep_interval_secs: u64,
    /// Outputs up to this many bytes are kept in the database instead of a file of their own
    /// (creating a file per small output costs more than the rest of the task).
    pub inline_max_bytes: usize,
}

impl Default for OutputsConfig {
    fn default() -> Self {
        OutputsConfig {
            default_ttl_secs: 86_400,
            min_ttl_secs: 60,
            max_ttl_secs: 30 * 86_400,
            sweep_interval_secs: 60,
            inline_max_bytes: 256 * 1024,
        }
    }
}

/// Uploaded assets (`[uploads]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadsConfig {
    /// Runware uploads (`imageUpload`, `mediaStorage`) are deleted this many seconds after their
    /// last use (each use as an input restarts the count).
    pub keep_after_use_secs: u64,
    /// Runway ephemeral uploads (`runway://` URIs) live this long after the upload, used or not.
    pub ephemeral_ttl_secs: u64,
    /// Largest ephemeral upload, in bytes (1 MB = 1,000,000 bytes).
    pub ephemeral_max_bytes: u64,
    /// An upload target returned by `POST /v1/uploads` accepts its file for this many seconds.
    pub upload_url_ttl_secs: u64,
    /// Uploads one account may keep at once (Runware `imageUpload` / `mediaStorage`, Runway
    /// ephemeral uploads; expired ones do not count); 0 = no bound.
    pub quota_files_per_account: u64,
    /// Bytes of uploads one account may keep at once; 0 = no bound.
    pub quota_bytes_per_account: u64,
}

impl Default for UploadsConfig {
    fn default() -> Self {
        UploadsConfig {
            keep_after_use_secs: 30 * 86_400,
            ephemeral_ttl_secs: 86_400,
            ephemeral_max_bytes: 200_000_000,
            upload_url_ttl_secs: 3_600,
            quota_files_per_account: 10_000,
            quota_bytes_per_account: 2_000_000_000,
        }
    }
}

/// Local provider options (`[providers]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProvidersConfig {
    /// Concurrent CPU-bound renders; 0 = one per core.
    pub cpu_workers: usize,
    /// Memory, in bytes, for all image decodes at once and the work done on the decoded
    /// pictures (upscaling, first frames, re-encoding provider outputs), counted from the image
    /// headers before anything is allocated: further decodes wait, and one that needs more than
    /// the whole budget is refused with `serviceUnavailable`. Default 2,000,000,000 (2 GB).
    pub decode_memory_budget_bytes: u64,
    /// Remote providers (`[[providers.upstreams]]`), by name; see docs/providers.md.
    pub upstreams: Vec<mediagate_providers::upstream::UpstreamConfig>,
}

impl Default for ProvidersConfig {
    fn default() -> Self {
        ProvidersConfig {
            cpu_workers: 0,
            decode_memory_budget_bytes: mediagate_providers::decode::DEFAULT_BUDGET_BYTES,
            upstreams: Vec::new(),
        }
    }
}

impl Config {
    /// The base URL for output links.
    pub fn base_url(&self) -> String {
        if self.public_base_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_base_url.trim_end_matches('/').to_string()
        }
    }

    /// The SQLite database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("mediagate.db")
    }

    /// The directory of stored outputs.
    pub fn outputs_dir(&self) -> PathBuf {
        self.data_dir.join("outputs")
    }
}
