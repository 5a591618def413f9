//! Loading the configuration: defaults, then the TOML file, then `MEDIAGATE_*` variables, then
//! command-line flags, each overriding the one before.

use crate::cli::{Cli, Command};
use anyhow::{Context, Result, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use mediagate_engine::config::Config;

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
/// `log.format` the format.
pub fn init_logging(log: &mediagate_engine::config::LogConfig) {
    let filter = std::env::var("MEDIAGATE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    let _ = match log.format {
        mediagate_engine::config::LogFormat::Json => {
            builder.json().with_current_span(true).with_span_list(true).try_init()
        }
        // Colour codes only for a terminal: in a file or a log collector they are noise.
        mediagate_engine::config::LogFormat::Text => {
            builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init()
        }
    };
}
