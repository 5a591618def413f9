//! `openai-chat`: `POST /v1/chat/completions` on any OpenAI-compatible chat server (vLLM, the
//! llama.cpp server, Ollama, LiteLLM, OpenAI itself) for the task types whose result is text.
//!
//! - `promptEnhance`: one completion per requested version, each asked to rewrite the prompt
//!   into a richer image-generation prompt of at most `promptMaxLength` tokens (`max_tokens`),
//!   at temperature 0.9 so that versions differ. One request per version rather than `n`:
//!   several compatible servers (llama.cpp, Ollama) ignore `n`.
//!
//! - `caption` (`imageCaption`): one completion whose user message holds the instructions (the
//!   task's `prompt`, or a request for a detailed description) and each image as a `data:` URL
//!   (`image_url` parts, the vision form vLLM, llama.cpp, Ollama and OpenAI accept), with
//!   `max_tokens` [`CAPTION_MAX_TOKENS`].
//!
//! - `textInference`: one completion per result, the `systemPrompt` as a system message ahead of
//!   the task's messages, `max_tokens`, `temperature`, `top_p`, `top_k` and `stop` only when the
//!   task sets them, and each result's `seed`. The reply's `finish_reason` and token `usage` are
//!   kept with the result (`finishReason`, and `usage` when `includeUsage`).
//!
//! The model is the AIR id's entry in `models`; unmapped, no `model` field is sent and the
//! server's default model answers. A `base_url` ending in `/v1` is accepted as well as the bare
//! host. Error bodies are classified like `openai-images`' (content policy, quota).

use crate::mapping::{self, send};
use crate::upstream::{Secret, UpstreamConfig};
use crate::{Artifact, Capabilities, Delivery, Health, Job, Provider, ProviderError, Submitted};
use async_trait::async_trait;
use mediagate_core::task::{Caption, Completion, PromptEnhance, TaskRequest, TaskType, TextInference};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// What an enhancement asks the model for.
const ENHANCE_INSTRUCTIONS: &str = "You rewrite prompts for an image generation model. Given a short \
prompt, reply with one richer version of it: the same subject, with concrete detail about style, \
composition, lighting and medium. Reply with the prompt only, on one line, without quotes or comments.";

/// What a caption asks for when the task sends no `prompt`.
const CAPTION_INSTRUCTIONS: &str = "Describe this image in one detailed paragraph: the subject, the setting, \
the style, the colors and the composition. Reply with the description only.";

/// The longest caption asked for, in tokens.
pub const CAPTION_MAX_TOKENS: u32 = 512;

/// The adapter.
pub struct OpenAiChat {
    cfg: UpstreamConfig,
    key: Secret,
    http: reqwest::Client,
    url: String,
}

#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// One completion's text and how it ended.
struct Completed {
    text: String,
    completion: Completion,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<String>,
}

impl OpenAiChat {
    /// An adapter for `cfg`, authenticating with `key` as a Bearer token when set.
    pub fn new(cfg: UpstreamConfig, key: Secret) -> Self {
        let base = cfg.base();
        let url = if base.ends_with("/v1") {
            format!("{base}/chat/completions")
        } else {
            format!("{base}/v1/chat/completions")
        };
        OpenAiChat { http: mapping::client(cfg.timeout(), cfg.connect_timeout()), key, url, cfg }
    }

    fn auth(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.key.expose() {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }

    /// One completion of `messages` with the sampling fields in `extra`: the reply's text
    /// (trimmed) and how it ended.
    async fn complete(&self, air: &str, messages: Value, extra: Value) -> Result<Completed, ProviderError> {
        let name = &self.cfg.name;
        let mut body = json!({"messages": messages});
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        if let Some(m) = self.cfg.model_for(air) {
            body["model"] = Value::String(m.to_string());
        }
        let (status, headers, reply) = send(name, self.auth(self.http.post(&self.url)).json(&body)).await?;
        if !(200..300).contains(&status) {
            let (policy, quota) = crate::openai_images::classify(&reply);
            return Err(mapping::from_status(name, status, &headers, &reply, policy, quota));
        }
        let parsed: Reply = serde_json::from_slice(&reply).map_err(|e| {
            mapping::failed(name, format_args!("unreadable reply ({e}): {}", mapping::truncate(&reply)))
        })?;
        let usage = parsed.usage.unwrap_or(Usage { prompt_tokens: 0, completion_tokens: 0 });
        let Some(choice) = parsed.choices.into_iter().next() else {
            return Err(mapping::failed(name, "the reply has no choices"));
        };
        let text = choice.message.content.map(|t| t.trim().to_string()).unwrap_or_default();
        if text.is_empty() {
            return Err(mapping::failed(name, "the reply has no message content"));
        }
        let completion = Completion {
            finish_reason: choice.finish_reason.unwrap_or_else(|| "stop".into()),
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
        };
        Ok(Completed { text, completion })
    }

    async fn enhance(&self, r: &PromptEnhance) -> Result<Vec<Artifact>, ProviderError> {
        let messages = json!([
            {"role": "system", "content": ENHANCE_INSTRUCTIONS},
            {"role": "user", "content": r.prompt},
        ]);
        let mut out = Vec::with_capacity(r.prompt_versions as usize);
        for _ in 0..r.prompt_versions {
            let extra = json!({"max_tokens": r.prompt_max_length, "temperature": 0.9});
            let done = self.complete(&r.model, messages.clone(), extra).await?;
            out.push(text_artifact(done.text, None, None));
        }
        Ok(out)
    }
}

impl OpenAiChat {
    async fn caption(
        &self,
        r: &Caption,
        images: &[mediagate_assets::Asset],
    ) -> Result<Vec<Artifact>, ProviderError> {
        use base64::Engine as _;
        let mut content =
            vec![json!({"type": "text", "text": r.prompt.as_deref().unwrap_or(CAPTION_INSTRUCTIONS)})];
        for image in images {
            let url = format!(
                "data:{};base64,{}",
                image.media_type,
                base64::engine::general_purpose::STANDARD.encode(&image.bytes)
            );
            content.push(json!({"type": "image_url", "image_url": {"url": url}}));
        }
        let messages = json!([{"role": "user", "content": content}]);
        let extra = json!({"max_tokens": CAPTION_MAX_TOKENS, "temperature": 0.2});
        let done = self.complete(&r.model, messages, extra).await?;
        Ok(vec![text_artifact(done.text, None, None)])
    }

    /// One completion per result, each with its seed, the system prompt ahead of the messages.
    async fn infer(&self, r: &TextInference, seeds: &[u64]) -> Result<Vec<Artifact>, ProviderError> {
        let mut messages: Vec<Value> = Vec::with_capacity(r.messages.len() + 1);
        if let Some(system) = &r.system_prompt {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.extend(r.messages.iter().map(|m| json!({"role": m.role, "content": m.content})));
        let messages = Value::Array(messages);
        let mut extra = serde_json::Map::new();
        let mut set = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                extra.insert(k.into(), v);
            }
        };
        set("max_tokens", r.max_tokens.map(Value::from));
        set("temperature", r.temperature.map(Value::from));
        set("top_p", r.top_p.map(Value::from));
        set("top_k", r.top_k.map(Value::from));
        set("stop", (!r.stop_sequences.is_empty()).then(|| json!(r.stop_sequences)));
        let mut out = Vec::with_capacity(seeds.len());
        for &seed in seeds {
            let mut extra = extra.clone();
            extra.insert("seed".into(), Value::from(seed));
            let done = self.complete(&r.model, messages.clone(), Value::Object(extra)).await?;
            out.push(text_artifact(done.text, Some(seed), Some(done.completion)));
        }
        Ok(out)
    }
}

/// A text result.
fn text_artifact(text: String, seed: Option<u64>, completion: Option<Completion>) -> Artifact {
    Artifact {
        bytes: text.into_bytes(),
        content_type: "text/plain; charset=utf-8",
        extension: "txt",
        seed,
        completion,
        fields: Default::default(),
    }
}

#[async_trait]
impl Provider for OpenAiChat {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            task_types: vec![TaskType::PromptEnhance, TaskType::Caption, TaskType::TextInference],
            models: self.cfg.models.keys().cloned().collect(),
            delivery: Delivery::Sync,
        }
    }

    async fn submit(&self, job: Arc<Job>) -> Result<Submitted, ProviderError> {
        match &job.request {
            TaskRequest::PromptEnhance(r) => self.enhance(r).await.map(Submitted::Done),
            TaskRequest::Caption(r) => self.caption(r, &job.inputs).await.map(Submitted::Done),
            TaskRequest::TextInference(r) => self.infer(r, &job.seeds).await.map(Submitted::Done),
            _ => Err(job.not_served(&self.cfg.name)),
        }
    }

    async fn health(&self) -> Health {
        let url = self.url.replace("/chat/completions", "/models");
        crate::openai_images::health_of(&self.cfg.name, self.auth(self.http.get(url))).await
    }
}
