//! Loading the configuration: defaults, then the TOML file, then `MEDIAGATE_*` variables, then
//! command-line flags, each overriding the one before.

use crate::cli::{Cli, Command};
use anyhow::{Context, Result, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use mediagate_engine::config::{Config, LogConfig, LogFormat, TracesConfig};
use std::time::Duration;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::registry::Registry;
use tracing_subscriber::util::SubscriberInitExt;

/// Variables with the `MEDIAGATE_` prefix that are not configuration keys.
const NOT_CONFIG: &[&str] = &["config", "log"];

/// The effective configuration for a command.
pub fn load(cli: &Cli) -> Result<Config> {
    let mut fig = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = &cli.config {
        if !path.exists() {
            bail!("configuration file {} does not exist", path.display());
        }
        fig = fig.merge(Toml::file(path));
    }
    // `MEDIAGATE_SERVER__MAX_BODY_BYTES` sets `server.max_body_bytes`; test harness variables
    // (`MEDIAGATE_TEST_*`) are not configuration.
    fig = fig.merge(
        Env::prefixed("MEDIAGATE_")
            .ignore(NOT_CONFIG)
            .filter(|k| !k.as_str().starts_with("test_"))
            .split("__"),
    );
    let mut cfg: Config = fig.extract().context("reading the configuration")?;
    if let Some(dir) = &cli.data_dir {
        cfg.data_dir = dir.clone();
    }
    if let Command::Serve(s) = &cli.command
        && let Some(l) = &s.listen
    {
        cfg.listen = l.clone();
    }
    check_edge_timeouts(&cfg)?;
    cfg.traces.check().map_err(anyhow::Error::msg)?;
    Ok(cfg)
}

/// The edge's time bounds must be usable: none may be zero, and a whole request must be allowed
/// longer than a sync task is waited for, or every slow sync task would be cut by the edge first.
fn check_edge_timeouts(cfg: &Config) -> Result<()> {
    let s = &cfg.server;
    for (key, v) in [
        ("server.header_timeout_secs", s.header_timeout_secs),
        ("server.body_timeout_secs", s.body_timeout_secs),
        ("server.request_timeout_secs", s.request_timeout_secs),
        ("server.max_connections", s.max_connections as u64),
        ("server.max_in_flight_requests", s.max_in_flight_requests as u64),
    ] {
        if v == 0 {
            bail!("{key} must be at least 1");
        }
    }
    if s.request_timeout_secs <= cfg.tasks.sync_timeout_secs {
        bail!(
            "server.request_timeout_secs ({}) must exceed tasks.sync_timeout_secs ({}): a sync request waits that long for its task",
            s.request_timeout_secs,
            cfg.tasks.sync_timeout_secs
        );
    }
    Ok(())
}

/// Logs go to stderr; `MEDIAGATE_LOG` (or `RUST_LOG`) sets the filter, default `info`, and
/// `log.format` the format. With `traces.otlp_endpoint` set, spans are also exported over
/// OTLP/HTTP: the returned [`Traces`] must be [shut down](Traces::shutdown) on the way out so the
/// last spans are sent.
pub fn init_logging(log: &LogConfig, traces: &TracesConfig) -> Result<Option<Traces>> {
    let filter = std::env::var("MEDIAGATE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let filter = tracing_subscriber::EnvFilter::new(filter);
    // Colour codes only for a terminal: in a file or a log collector they are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    if !traces.enabled() {
        // One global filter, as without traces there is only the one layer.
        let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
        let _ = match log.format {
            LogFormat::Json => builder.json().with_current_span(true).with_span_list(true).try_init(),
            LogFormat::Text => builder.with_ansi(ansi).try_init(),
        };
        return Ok(None);
    }
    let provider = tracer_provider(traces)?;
    let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "mediagate");
    // Each layer has its own filter: `MEDIAGATE_LOG` decides which lines are logged, and never
    // which spans are exported (a `warn` log filter would otherwise drop every span).
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match log.format {
        LogFormat::Json => {
            install(fmt.json().with_current_span(true).with_span_list(true).with_filter(filter), tracer)
        }
        LogFormat::Text => install(fmt.with_ansi(ansi).with_filter(filter), tracer),
    }
    mediagate_engine::traces::enable();
    tracing::info!(
        url = %traces.traces_url(),
        service_name = %traces.service_name,
        sample_ratio = traces.sample_ratio,
        "exporting traces over OTLP/HTTP"
    );
    Ok(Some(Traces(provider)))
}

/// Installs the global subscriber: the log layer `fmt`, and the OpenTelemetry layer for
/// `tracer` with a filter of its own.
fn install<L>(fmt: L, tracer: opentelemetry_sdk::trace::SdkTracer)
where
    L: Layer<Registry> + Send + Sync + 'static,
{
    // mediagate's own spans (request, task, provider call, webhook delivery) at `info` and
    // above, whatever the log filter says. No events: a span's attributes are its fields, which
    // are bounded (ids, names, outcomes) and never a key or a prompt; log lines stay in the log.
    let spans = tracing_subscriber::filter::filter_fn(|m| {
        m.is_span() && *m.level() <= tracing::Level::INFO && m.target().starts_with("mediagate")
    })
    .with_max_level_hint(tracing::level_filters::LevelFilter::INFO);
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_filter(spans);
    let _ = tracing_subscriber::registry().with(fmt).with(otel).try_init();
}

/// The OpenTelemetry pipeline: a batch span processor (a thread of its own, exporting every few
/// seconds or when a batch fills) over the OTLP/HTTP protobuf exporter (a blocking reqwest
/// client on that thread), sampling `sample_ratio` of new traces and following the caller's
/// decision for continued ones.
fn tracer_provider(cfg: &TracesConfig) -> Result<opentelemetry_sdk::trace::SdkTracerProvider> {
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::trace::Sampler;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(cfg.traces_url())
        .with_timeout(Duration::from_millis(cfg.export_timeout_ms))
        .build()
        .context("starting the OTLP trace exporter (traces.otlp_endpoint)")?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(cfg.service_name.trim().to_string())
        .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(cfg.sample_ratio))))
        .with_resource(resource)
        .build())
}

/// The running trace exporter, kept by `serve` to flush it at the end.
pub struct Traces(opentelemetry_sdk::trace::SdkTracerProvider);

impl Traces {
    /// Exports the spans still buffered and stops the exporter; waits at most about
    /// `traces.export_timeout_ms` (a collector that does not answer loses them).
    pub async fn shutdown(self, timeout: Duration) {
        let provider = self.0;
        // Blocking: it hands the last batch to the exporter's thread and waits for it.
        let done = tokio::task::spawn_blocking(move || {
            provider.shutdown_with_timeout(timeout + Duration::from_secs(1))
        })
        .await;
        match done {
            Ok(Ok(())) => tracing::debug!("traces flushed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "flushing the last traces failed"),
            Err(e) => tracing::warn!(error = %e, "flushing the last traces failed"),
        }
    }
}
