//! The mediagate engine: everything between a dialect's parsed request and its rendered reply.
//!
//! ```text
//! authenticate → authorize (scopes) → validate (catalog) → admit (idempotency + credits)
//!   → ingest assets → dispatch to provider → store outputs → settle credits → deliver
//! ```
//!
//! Nothing here knows which wire dialect a request came in; dialects hold an [`Engine`] and
//! call [`Engine::authenticate`], [`Engine::submit`] and [`Engine::get_response`].

#![warn(missing_docs)]

pub mod admin;
pub mod admin_keys;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod dispatch;
pub mod history;
pub mod keys;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod outputs;
mod pipeline;
mod run_to_end;
pub mod scopes;
pub mod search;
pub mod timing;
pub mod uploads;
pub mod webhooks;

pub use auth::AuthContext;
pub use limits::{LimitsView, ModelLimits, Phase};
pub use live::TaskPhase;
/// Trace context in and out of the process (see `[traces]`), shared with the providers.
pub use mediagate_providers::traces;
pub use pipeline::{Delivered, DeliveredItem, Delivery, Removal, Submission, Submitted, TaskView};
pub use scopes::Dialect;

use admin::Admin;
use auth::Authenticator;
use catalog::Catalog;
use config::Config;
use config::StoreBackend;
use mediagate_assets::Intake;
use mediagate_core::money::parse_usd;
use mediagate_providers::Provider;
use mediagate_providers::canny::Canny;
use mediagate_providers::decode::Decoder;
use mediagate_providers::local::{CpuPool, Lanczos, Procedural};
use mediagate_providers::local_audio::ProceduralAudio;
use mediagate_providers::local_video::ProceduralVideo;
use mediagate_providers::vtracer::Vtracer;
use mediagate_store::postgres::{PostgresOptions, PostgresStore};
use mediagate_store::sqlite::{SqliteOptions, SqliteStore};
use mediagate_store::{NewKey, Store, StoreError, StoredError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Errors that stop the engine from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is inconsistent.
    #[error("configuration: {0}")]
    Config(String),
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The data directory could not be prepared.
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
}

/// The engine. Share it behind an `Arc`.
pub struct Engine {
    config: Config,
    store: Arc<dyn Store>,
    auth: Arc<Authenticator>,
    catalog: Catalog,
    dispatcher: dispatch::Dispatcher,
    outputs: outputs::OutputFiles,
    intake: Intake,
    inflight: pipeline::Inflight,
    limits: limits::Limits,
    renderers: parking_lot::RwLock<HashMap<Dialect, Arc<dyn webhooks::WebhookRenderer>>>,
    links: parking_lot::RwLock<Arc<dyn OutputLinks>>,
    metrics: Arc<metrics::Metrics>,
}

/// How the edge that serves stored outputs links to one. The engine names outputs by UUID and
/// extension; the route that serves them is the edge's (set with [`Engine::set_output_links`]).
pub trait OutputLinks: Send + Sync {
    /// The URL at which the output `uuid` with `extension` is served.
    fn output_url(&self, uuid: uuid::Uuid, extension: &str) -> String;
}

/// The links of an engine no edge serves (tools, benchmarks): an identifier, not a URL, since
/// nothing serves the file.
struct NoEdge;

impl OutputLinks for NoEdge {
    fn output_url(&self, uuid: uuid::Uuid, extension: &str) -> String {
        format!("urn:mediagate:output:{uuid}.{extension}")
    }
}

/// What the first start created: the account and the only copy of its key.
pub struct Bootstrapped {
    /// The account's name.
    pub account: String,
    /// The API key in clear; shown once, never stored.
    pub api_key: String,
    /// The starting grant in micro-dollars.
    pub grant_micros: i64,
}

/// Who opens the store: the server, or a tool beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreRole {
    /// `serve`: on PostgreSQL it takes the one-server-per-database lock (start-up recovery
    /// assumes that no other server runs tasks on the same data) and fails if another server
    /// holds it.
    Server,
    /// CLI commands and other tools: no lock, safe while the server runs.
    Tool,
}

/// Opens the store a configuration names (creating the data directory, which holds output
/// files on either backend): SQLite in the data directory, or PostgreSQL at `store.url`.
pub async fn open_store(config: &Config, role: StoreRole) -> Result<Arc<dyn Store>, StartError> {
    match config.store.backend {
        StoreBackend::Sqlite => Ok(Arc::new(sqlite_store(config, role == StoreRole::Server)?)),
        StoreBackend::Postgres => {
            std::fs::create_dir_all(&config.data_dir)?;
            if config.store.url.trim().is_empty() {
                return Err(StartError::Config(
                    "store.url is required when store.backend = \"postgres\" (e.g. \
                     postgres://user:password@127.0.0.1:5432/mediagate, or MEDIAGATE_STORE__URL)"
                        .into(),
                ));
            }
            let options = PostgresOptions {
                max_connections: config.store.max_connections,
                single_server: role == StoreRole::Server,
                lock_check_every: Duration::from_millis(config.store.lock_check_ms.max(10)),
                acquire_timeout: Duration::from_millis(config.store.acquire_timeout_ms.max(1)),
            };
            Ok(Arc::new(PostgresStore::connect(&config.store.url, options).await?))
        }
    }
}

/// Opens the SQLite store in the data directory whatever `store.backend` says, as its concrete
/// type (for [`SqliteStore::flush`] and [`SqliteStore::writer_stats`] in tests and benchmarks).
pub fn open_sqlite_store(config: &Config) -> Result<SqliteStore, StartError> {
    sqlite_store(config, false)
}

/// The SQLite store in the data directory; `single_server` takes the one-server lock.
fn sqlite_store(config: &Config, single_server: bool) -> Result<SqliteStore, StartError> {
    std::fs::create_dir_all(&config.data_dir)?;
    Ok(SqliteStore::open(
        config.database_path(),
        SqliteOptions {
            synchronous: config.store.synchronous,
            readers: config.store.readers,
            busy_timeout: Duration::from_millis(config.store.busy_timeout_ms),
            checkpoint_interval: Duration::from_millis(config.store.checkpoint_interval_ms),
            single_server,
            ..SqliteOptions::default()
        },
    )?)
}

/// What a client is told about a failed store operation: a full disk and an unreachable
/// database are retryable 503s that say so; anything else is an internal error (the caller logs
/// the detail).
pub fn store_failure(e: &StoreError) -> mediagate_core::ApiError {
    use mediagate_core::{ApiError, ErrorCode};
    match e {
        StoreError::StorageFull(_) => storage_full(),
        StoreError::Unavailable(_) => ApiError::new(
            ErrorCode::ServiceUnavailable,
            "The server's database cannot be reached right now; retry in a few seconds.",
        )
        .with_retry_after(Duration::from_secs(1)),
        _ => ApiError::internal(),
    }
}

/// The 503 `storageFull` a client gets when a write found the disk full.
pub(crate) fn storage_full() -> mediagate_core::ApiError {
    mediagate_core::ApiError::new(
        mediagate_core::ErrorCode::StorageFull,
        "The server's storage is full; retry later. A task that could not be stored is not charged.",
    )
}

/// Where the configured store is, for messages: the data directory, or the PostgreSQL URL
/// without its password.
pub fn store_location(config: &Config) -> String {
    match config.store.backend {
        StoreBackend::Sqlite => format!("the store in {}", config.data_dir.display()),
        StoreBackend::Postgres => {
            format!("the PostgreSQL store at {}", mediagate_store::postgres::redact_url(&config.store.url))
        }
    }
}

impl Engine {
    /// Builds an engine over an opened store.
    pub fn new(config: Config, store: Arc<dyn Store>) -> Result<Engine, StartError> {
        let cpu = CpuPool::new(if config.providers.cpu_workers == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
        } else {
            config.providers.cpu_workers
        });
        // One decode budget for every provider of the server: local inputs and remote outputs.
        let decoder =
            Decoder::new(config.assets.max_decoded_bytes, config.providers.decode_memory_budget_bytes);
        let mut providers: HashMap<String, Arc<dyn Provider>> = HashMap::new();
        providers.insert("procedural".into(), Arc::new(Procedural::new(cpu.clone(), decoder.clone())));
        providers
            .insert("procedural-video".into(), Arc::new(ProceduralVideo::new(cpu.clone(), decoder.clone())));
        providers.insert("procedural-audio".into(), Arc::new(ProceduralAudio::new(cpu.clone())));
        providers.insert("vtracer".into(), Arc::new(Vtracer::new(cpu.clone(), decoder.clone())));
        providers.insert("canny".into(), Arc::new(Canny::new(cpu.clone(), decoder.clone())));
        providers.insert("lanczos".into(), Arc::new(Lanczos::new(cpu, 8000, decoder.clone())));
        // Remote providers from `[[providers.upstreams]]`, each with its own circuit breaker.
        let mut breakers = HashMap::new();
        for u in &config.providers.upstreams {
            if providers.contains_key(&u.name) {
                return Err(StartError::Config(format!(
                    "providers.upstreams: the name '{}' is taken (by another upstream or a built-in provider)",
                    u.name
                )));
            }
            let cooldown = Duration::from_millis(u.breaker_cooldown_ms);
            breakers.insert(
                u.name.clone(),
                dispatch::breaker::BreakerConfig { failures: u.breaker_failures, cooldown },
            );
            providers.insert(
                u.name.clone(),
                mediagate_providers::upstream::build_with(u, &decoder).map_err(StartError::Config)?,
            );
        }
        let names: Vec<&str> = providers.keys().map(String::as_str).collect();
        let mut catalog = Catalog::build(&config.models, &names).map_err(StartError::Config)?;
        let metrics = Arc::new(metrics::Metrics::new());
        let dispatcher = dispatch::Dispatcher::new(providers, breakers).with_metrics(metrics.clone());
        for m in catalog.models() {
            dispatcher.check_route(&m.spec).map_err(StartError::Config)?;
        }
        catalog.set_param_support(|spec| dispatcher.route_params(spec));
        parse_usd(&config.bootstrap.initial_credit_usd)
            .map_err(|e| StartError::Config(format!("bootstrap.initial_credit_usd: {e}")))?;
        if config.outputs.min_ttl_secs > config.outputs.max_ttl_secs
            || !(config.outputs.min_ttl_secs..=config.outputs.max_ttl_secs)
                .contains(&config.outputs.default_ttl_secs)
        {
            return Err(StartError::Config(
                "outputs: need min_ttl_secs <= default_ttl_secs <= max_ttl_secs".into(),
            ));
        }
        let outputs = outputs::OutputFiles::open(config.outputs_dir())?;
        let limits = limits::Limits::new(config.limits.clone()).map_err(StartError::Config)?;
        let auth = Arc::new(
            Authenticator::new(store.clone(), Duration::from_millis(config.auth.cache_ttl_ms))
                .with_failure_throttle(limits.invalid_key_rate()),
        );
        Ok(Engine {
            intake: Intake::new(config.assets.clone())
                .map_err(|e| StartError::Config(format!("assets: {e}")))?,
            config,
            store,
            auth,
            catalog,
            dispatcher,
            outputs,
            inflight: pipeline::Inflight::default(),
            limits,
            renderers: Default::default(),
            links: parking_lot::RwLock::new(Arc::new(NoEdge)),
            metrics,
        })
    }

    /// Sets how output URLs are made: the edge that serves outputs calls this before serving.
    pub fn set_output_links(&self, links: Arc<dyn OutputLinks>) {
        *self.links.write() = links;
    }

    /// The URL of a stored output, as the edge serves it.
    pub fn output_url(&self, uuid: uuid::Uuid, extension: &str) -> String {
        self.links.read().output_url(uuid, extension)
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The model catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// This server's Prometheus metrics.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// The metrics in the OpenMetrics text format, the queue gauges read now.
    pub fn render_metrics(&self) -> String {
        self.metrics.set_queues(self.limits.queues.totals());
        self.metrics.set_circuits(self.dispatcher.circuits());
        self.metrics.set_store_commits(self.store.commit_stats());
        self.metrics.render()
    }

    /// The providers, their breakers and the retry loop.
    pub fn dispatcher(&self) -> &dispatch::Dispatcher {
        &self.dispatcher
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The output files.
    pub fn outputs(&self) -> &outputs::OutputFiles {
        &self.outputs
    }

    /// Administrative operations that also refresh this engine's key cache.
    pub fn admin(&self) -> Admin {
        Admin::new(self.store.clone(), Some(self.auth.clone()))
    }

    /// Authenticates an API key.
    pub async fn authenticate(&self, key: &str) -> Result<Arc<AuthContext>, mediagate_core::ApiError> {
        self.auth.authenticate(key, None).await
    }

    /// Authenticates an API key sent from `client` outside the task dialects (the portal's
    /// sign-in, task history): the same cache and the same throttle of addresses that keep
    /// sending invalid keys as [`Engine::authenticate_from`], without a dialect's scope check
    /// (history limits what a scoped key sees instead: only the tasks it sent itself).
    pub async fn authenticate_client(
        &self,
        key: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<Arc<AuthContext>, mediagate_core::ApiError> {
        let ctx = self.auth.authenticate(key, client).await?;
        let span = tracing::Span::current();
        span.record("account", ctx.account_id);
        span.record("key", ctx.key_id);
        Ok(ctx)
    }

    /// Authenticates an API key sent from `client` to a route of `dialect`: an address that
    /// keeps sending invalid keys has its failures answered 429 (`limits.invalid_key_*`; a
    /// valid key still passes), and a key whose scopes exclude the dialect is refused with 403
    /// `insufficientPermissions` here, before the route does any work.
    pub async fn authenticate_from(
        &self,
        key: &str,
        client: Option<std::net::IpAddr>,
        dialect: scopes::Dialect,
    ) -> Result<Arc<AuthContext>, mediagate_core::ApiError> {
        let ctx = self.auth.authenticate(key, client).await?;
        // The request's span (declared by the server's edge) says whose request it is: ids,
        // never the key.
        let span = tracing::Span::current();
        span.record("account", ctx.account_id);
        span.record("key", ctx.key_id);
        let d = dialect.as_str();
        if !scopes::allows_dialect(&ctx.scopes, dialect) {
            return Err(self.forbidden(format!("use the {d} dialect"), format!("dialect:{d}"), &ctx));
        }
        Ok(ctx)
    }

    /// Start-up work before serving: settle tasks a crash left running, and create the first
    /// account and key when the store is empty. Returns the bootstrap result, if any.
    pub async fn prepare(&self) -> Result<Option<Bootstrapped>, StartError> {
        let interrupted = self
            .store
            .fail_interrupted_tasks(StoredError {
                code: mediagate_core::ErrorCode::TaskInterrupted.as_str().into(),
                message: mediagate_core::ErrorCode::TaskInterrupted.meaning().into(),
                parameter: vec![],
            })
            .await?;
        if interrupted > 0 {
            tracing::warn!(count = interrupted, "settled tasks left running by an earlier stop (refunded)");
        }
        self.limits.reload(self.store.as_ref()).await?;
        let grant = parse_usd(&self.config.bootstrap.initial_credit_usd).map_err(StartError::Config)?;
        let api_key = keys::generate().map_err(|e| StartError::Config(format!("OS random source: {e}")))?;
        let made = self
            .store
            .bootstrap(
                &self.config.bootstrap.account,
                grant,
                NewKey {
                    digest: keys::digest(&api_key),
                    prefix: keys::display_prefix(&api_key),
                    description: "created on first start".into(),
                    scopes: vec![],
                },
            )
            .await?;
        Ok(made.map(|(a, _)| Bootstrapped { account: a.name, api_key, grant_micros: grant }))
    }

    /// Deletes expired outputs forever, every `outputs.sweep_interval_secs`. Spawn it once.
    pub async fn sweep_outputs_forever(self: Arc<Self>) {
        let every = Duration::from_secs(self.config.outputs.sweep_interval_secs.max(1));
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = self.sweep_outputs_once().await {
                tracing::warn!(error = %e, "output sweep failed");
            }
        }
    }

    /// Deletes every output whose time to live has passed; returns how many.
    pub async fn sweep_outputs_once(&self) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let expired = self.store.take_expired_outputs(mediagate_store::now_ms(), 1000).await?;
            if expired.is_empty() {
                return Ok(total);
            }
            total += expired.len();
            let files = self.outputs.clone();
            let _ = tokio::task::spawn_blocking(move || {
                for o in expired.into_iter().filter(|o| !o.inline) {
                    if let Err(e) = files.remove(o.uuid, &o.extension) {
                        tracing::warn!(output = %o.uuid, error = %e, "could not delete expired output");
                    }
                }
            })
            .await;
        }
    }
}
