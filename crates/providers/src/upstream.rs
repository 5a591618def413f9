//! Remote provider instances as configured in `[[providers.upstreams]]`, and building adapters
//! from them.

use crate::{Provider, comfyui, http_worker, openai_chat, openai_images, runware_upstream};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Which adapter an upstream uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamKind {
    /// `POST /v1/images/generations` on an OpenAI-compatible server.
    OpenaiImages,
    /// `POST /v1/chat/completions` on an OpenAI-compatible server (text task types).
    OpenaiChat,
    /// A ComfyUI server (`/prompt`, `/ws`, `/history`, `/view`, `/interrupt`).
    Comfyui,
    /// Another Runware-dialect server (another mediagate, or the commercial service).
    RunwareUpstream,
    /// A team's GPU worker speaking mediagate's worker protocol (docs/providers.md).
    HttpWorker,
}

impl UpstreamKind {
    /// The name as written in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamKind::OpenaiImages => "openai-images",
            UpstreamKind::OpenaiChat => "openai-chat",
            UpstreamKind::Comfyui => "comfyui",
            UpstreamKind::RunwareUpstream => "runware-upstream",
            UpstreamKind::HttpWorker => "http-worker",
        }
    }
}

/// One remote provider instance (`[[providers.upstreams]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The provider name models use in `provider` and `fallback`.
    pub name: String,
    /// The adapter.
    pub kind: UpstreamKind,
    /// Scheme, host and port (and a path prefix if any), e.g. `https://api.openai.com`.
    pub base_url: String,
    /// Name of the environment variable holding the upstream's API key (the key itself is never
    /// in the file and never logged).
    pub api_key_env: String,
    /// A file holding the API key instead (e.g. a container secret); trailing whitespace is
    /// trimmed.
    pub api_key_file: PathBuf,
    /// Deadline of one attempt: one HTTP request for quick providers, submit + wait for queues.
    pub timeout_ms: u64,
    /// Deadline for a TCP (and TLS) connection.
    pub connect_timeout_ms: u64,
    /// AIR id → the upstream's model name. openai-images and openai-chat: absent = no `model`
    /// field sent;
    /// runware-upstream and http-worker: absent = the AIR id unchanged. When non-empty, only
    /// these AIR ids may be routed to this provider.
    pub models: BTreeMap<String, String>,
    /// comfyui: AIR id → workflow template file (API-format JSON with placeholders).
    pub workflows: BTreeMap<String, PathBuf>,
    /// openai-images: `b64_json` (default) or `url`.
    pub response_format: String,
    /// comfyui, http-worker and runware-upstream (async tasks): how often a pending job is
    /// polled.
    pub poll_interval_ms: u64,
    /// Consecutive failures that open this provider's circuit.
    pub breaker_failures: u32,
    /// How long an open circuit stays open before one probe is let through.
    pub breaker_cooldown_ms: u64,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            name: String::new(),
            kind: UpstreamKind::OpenaiImages,
            base_url: String::new(),
            api_key_env: String::new(),
            api_key_file: PathBuf::new(),
            timeout_ms: 120_000,
            connect_timeout_ms: 5_000,
            models: BTreeMap::new(),
            workflows: BTreeMap::new(),
            response_format: "b64_json".into(),
            poll_interval_ms: 500,
            breaker_failures: 5,
            breaker_cooldown_ms: 30_000,
        }
    }
}

impl UpstreamConfig {
    /// The attempt deadline.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }

    /// The connect deadline.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms.max(1))
    }

    /// `base_url` without a trailing slash.
    pub fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }

    /// The upstream model name for `air` (`None` when unmapped).
    pub fn model_for(&self, air: &str) -> Option<&str> {
        self.models.get(air).map(String::as_str)
    }
}

/// An API key that never shows in logs or debug output.
#[derive(Clone, Default)]
pub struct Secret(Option<String>);

impl Secret {
    /// The key, if one is configured.
    pub fn expose(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// A key from a literal (tests, embedders).
    pub fn new(key: impl Into<String>) -> Self {
        Secret(Some(key.into()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Secret(<redacted>)" } else { "Secret(none)" })
    }
}

/// Reads the configured API key: from `api_key_env`, else `api_key_file`, else none. A named
/// source that is missing or empty is an error (a silent anonymous upstream would only fail
/// later, with a 401, per task).
pub fn load_key(cfg: &UpstreamConfig) -> Result<Secret, String> {
    if !cfg.api_key_env.is_empty() {
        return match std::env::var(&cfg.api_key_env) {
            Ok(v) if !v.trim().is_empty() => Ok(Secret(Some(v.trim().to_string()))),
            _ => Err(format!(
                "upstream {}: environment variable {} (api_key_env) is not set or empty",
                cfg.name, cfg.api_key_env
            )),
        };
    }
    if !cfg.api_key_file.as_os_str().is_empty() {
        let v = std::fs::read_to_string(&cfg.api_key_file).map_err(|e| {
            format!("upstream {}: api_key_file {}: {e}", cfg.name, cfg.api_key_file.display())
        })?;
        if v.trim().is_empty() {
            return Err(format!(
                "upstream {}: api_key_file {} is empty",
                cfg.name,
                cfg.api_key_file.display()
            ));
        }
        return Ok(Secret(Some(v.trim().to_string())));
    }
    Ok(Secret(None))
}

/// Builds the adapter an upstream configuration names. Errors name the upstream and the key.
pub fn build(cfg: &UpstreamConfig) -> Result<Arc<dyn Provider>, String> {
    build_with(cfg, &crate::decode::Decoder::default())
}

/// [`build`], decoding provider outputs through `decoder` (the server's limits and shared
/// decode budget).
pub fn build_with(
    cfg: &UpstreamConfig,
    decoder: &crate::decode::Decoder,
) -> Result<Arc<dyn Provider>, String> {
    if cfg.name.is_empty() {
        return Err("providers.upstreams: every upstream needs a `name`".into());
    }
    if !(cfg.base_url.starts_with("http://") || cfg.base_url.starts_with("https://")) {
        return Err(format!(
            "upstream {}: base_url must start with http:// or https:// (got {:?})",
            cfg.name, cfg.base_url
        ));
    }
    let key = load_key(cfg)?;
    Ok(match cfg.kind {
        UpstreamKind::OpenaiImages => {
            Arc::new(openai_images::OpenAiImages::new(cfg.clone(), key, decoder.clone())?)
        }
        UpstreamKind::OpenaiChat => Arc::new(openai_chat::OpenAiChat::new(cfg.clone(), key)),
        UpstreamKind::Comfyui => Arc::new(comfyui::ComfyUi::new(cfg.clone(), key, decoder.clone())?),
        UpstreamKind::RunwareUpstream => {
            Arc::new(runware_upstream::RunwareUpstream::new(cfg.clone(), key, decoder.clone()))
        }
        UpstreamKind::HttpWorker => Arc::new(http_worker::HttpWorker::new(cfg.clone(), key, decoder.clone())),
    })
}
