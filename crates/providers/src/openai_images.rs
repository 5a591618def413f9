//! `openai-images`: `POST /v1/images/generations` on any OpenAI-compatible server.
//!
//! Request: `{"prompt", "n", "size": "<width>x<height>", "response_format", "model"?}`; the model
//! is the AIR id's entry in `models` (no `model` field when unmapped, so the server's default
//! applies). Negative prompts, steps, CFG scale and seeds have no field in this API and are not
//! sent; results carry no seed. Responses with `b64_json` are decoded, `url` ones fetched with
//! the same client (no redirects). Images in another format than the task asked for are
//! re-encoded.
//!
//! A `base_url` ending in `/v1` is accepted as well as the bare host.

use crate::decode::Decoder;
use crate::mapping::{self, conform, send};
use crate::upstream::{Secret, UpstreamConfig};
use crate::{Artifact, Capabilities, Delivery, Health, Job, Provider, ProviderError, Submitted};
use async_trait::async_trait;
use base64::Engine as _;
use mediagate_core::task::{TaskRequest, TaskType};
use serde::Deserialize;
use std::sync::Arc;

/// The adapter.
pub struct OpenAiImages {
    cfg: UpstreamConfig,
    key: Secret,
    http: reqwest::Client,
    decoder: Decoder,
    url: String,
}

#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    b64_json: Option<String>,
    url: Option<String>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorObj,
}

#[derive(Deserialize, Default)]
struct ErrorObj {
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl OpenAiImages {
    /// An adapter for `cfg`, authenticating with `key` as a Bearer token when set.
    pub fn new(cfg: UpstreamConfig, key: Secret, decoder: Decoder) -> Result<Self, String> {
        if !matches!(cfg.response_format.as_str(), "b64_json" | "url") {
            return Err(format!(
                "upstream {}: response_format must be \"b64_json\" or \"url\" (got {:?})",
                cfg.name, cfg.response_format
            ));
        }
        let base = cfg.base();
        let url = if base.ends_with("/v1") {
            format!("{base}/images/generations")
        } else {
            format!("{base}/v1/images/generations")
        };
        Ok(OpenAiImages {
            http: mapping::client(cfg.timeout(), cfg.connect_timeout()),
            key,
            url,
            cfg,
            decoder,
        })
    }

    fn auth(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.key.expose() {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }

    async fn fetch(&self, url: &str) -> Result<Vec<u8>, ProviderError> {
        let name = &self.cfg.name;
        let (status, headers, body) = send(name, self.http.get(url)).await?;
        if !(200..300).contains(&status) {
            return Err(mapping::from_status(name, status, &headers, &body, false, false));
        }
        Ok(body)
    }
}

/// Classifies an OpenAI error body: (content policy, quota exhausted). Shared with
/// `openai-chat`, whose servers answer in the same error shape.
pub(crate) fn classify(body: &[u8]) -> (bool, bool) {
    let e = serde_json::from_slice::<ErrorBody>(body).unwrap_or_default().error;
    let code = match &e.code {
        Some(serde_json::Value::String(s)) => s.as_str(),
        _ => "",
    };
    let kind = e.kind.as_deref().unwrap_or("");
    let msg = e.message.as_deref().unwrap_or("").to_ascii_lowercase();
    let policy = matches!(code, "content_policy_violation" | "moderation_blocked")
        || kind == "content_policy_violation"
        || msg.contains("safety system")
        || msg.contains("content policy");
    let quota =
        matches!(code, "insufficient_quota" | "billing_hard_limit_reached") || kind == "insufficient_quota";
    (policy, quota)
}

#[async_trait]
impl Provider for OpenAiImages {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            task_types: vec![TaskType::ImageInference],
            models: self.cfg.models.keys().cloned().collect(),
            delivery: Delivery::Sync,
        }
    }

    async fn submit(&self, job: Arc<Job>) -> Result<Submitted, ProviderError> {
        let name = &self.cfg.name;
        let (TaskRequest::ImageInference(request), seeds) = (&job.request, &job.seeds) else {
            return Err(job.not_served(name));
        };
        let mut body = serde_json::json!({
            "prompt": request.positive_prompt,
            "n": seeds.len(),
            "size": format!("{}x{}", request.width, request.height),
            "response_format": self.cfg.response_format,
        });
        if let Some(m) = self.cfg.model_for(&request.model) {
            body["model"] = serde_json::Value::String(m.to_string());
        }
        let (status, headers, reply) = send(name, self.auth(self.http.post(&self.url)).json(&body)).await?;
        if !(200..300).contains(&status) {
            let (policy, quota) = classify(&reply);
            return Err(mapping::from_status(name, status, &headers, &reply, policy, quota));
        }
        let parsed: Reply = serde_json::from_slice(&reply).map_err(|e| {
            mapping::failed(name, format_args!("unreadable reply ({e}): {}", mapping::truncate(&reply)))
        })?;
        if parsed.data.len() < seeds.len() {
            return Err(mapping::failed(
                name,
                format_args!("asked for {} images, got {}", seeds.len(), parsed.data.len()),
            ));
        }
        let mut out: Vec<Artifact> = Vec::with_capacity(seeds.len());
        for item in parsed.data.into_iter().take(seeds.len()) {
            let bytes = match (item.b64_json, item.url) {
                (Some(b), _) => base64::engine::general_purpose::STANDARD
                    .decode(b.as_bytes())
                    .map_err(|e| mapping::failed(name, format_args!("b64_json does not decode: {e}")))?,
                (None, Some(u)) => self.fetch(&u).await?,
                (None, None) => return Err(mapping::failed(name, "an item has neither b64_json nor url")),
            };
            out.push(conform(name, bytes, &request.output, None, &self.decoder).await?);
        }
        Ok(Submitted::Done(out))
    }

    async fn health(&self) -> Health {
        let url = self.url.replace("/images/generations", "/models");
        health_of(&self.cfg.name, self.auth(self.http.get(url))).await
    }
}

/// An OpenAI-compatible server's health from `GET /v1/models` (`models`, already authenticated).
/// Shared with `openai-chat`.
pub(crate) async fn health_of(name: &str, models: reqwest::RequestBuilder) -> Health {
    match models.send().await {
        Ok(r) if r.status().is_success() => Health::Healthy,
        Ok(r) if matches!(r.status().as_u16(), 401 | 403) => {
            Health::Unhealthy("the provider rejects mediagate's credentials".into())
        }
        // Many compatible servers have no /v1/models: answering at all is a sign of life.
        Ok(r) if r.status().is_client_error() => Health::Healthy,
        Ok(r) => Health::Degraded(format!("HTTP {}", r.status().as_u16())),
        Err(e) => Health::Unhealthy(mapping::from_transport(name, &e).detail),
    }
}
