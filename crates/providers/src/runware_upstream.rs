//! `runware-upstream`: forwards tasks to another Runware-dialect server (another mediagate, or
//! the commercial service) with mediagate's own key.
//!
//! Every registered task type is forwarded as it was asked for: the task object each task type's
//! module writes (`TaskParams::to_wire`), with the upstream's model name, the seeds drawn here and
//! the inputs as `data:` URIs of the assets fetched here. Files come back as base64, text as
//! `text`. Task types that answer in their reply are answered at once; async-only ones (video) are
//! sent with `deliveryMethod: "async"` and polled with `getResponse` every `poll_interval_ms`,
//! within `timeout_ms`.
//!
//! One `POST {base_url}/v1` per attempt with a one-task array, `outputType: "base64Data"`. Each
//! attempt gets a **fresh taskUUID**: a Runware-dialect server answers a known taskUUID from its
//! record (mediagate replays stored results and non-retryable failures, and answers "still being
//! processed" while an earlier attempt runs, e.g. one we gave up on after a timeout), so reusing
//! one would turn a retry into a replay or a refusal instead of a new attempt. The upstream's `errors[]` codes are mapped into mediagate's catalog; its
//! messages are never shown to clients (they may name the upstream's key or account).

use crate::decode::Decoder;
use crate::mapping::{self, send};
use crate::upstream::{Secret, UpstreamConfig};
use crate::{
    Artifact, Capabilities, Delivery, Health, Job, JobHandle, Progress, ProgressFn, Provider, ProviderError,
    Submitted,
};
use async_trait::async_trait;
use base64::Engine as _;
use mediagate_core::ErrorCode;
use mediagate_core::task::{Completion, Family, OutputOptions, ParamSupport, TaskType};
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

/// The adapter.
pub struct RunwareUpstream {
    cfg: UpstreamConfig,
    key: Secret,
    http: reqwest::Client,
    decoder: Decoder,
    url: String,
}

#[derive(Deserialize, Default)]
struct Reply {
    #[serde(default)]
    data: Vec<Value>,
    #[serde(default)]
    errors: Vec<UpstreamError>,
}

#[derive(Deserialize, Default, Debug, Clone)]
struct UpstreamError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    parameter: Value,
}

impl RunwareUpstream {
    /// An adapter for `cfg`, authenticating with `key` as a Bearer token when set.
    pub fn new(cfg: UpstreamConfig, key: Secret, decoder: Decoder) -> Self {
        let url = format!("{}/v1", cfg.base().trim_end_matches("/v1"));
        RunwareUpstream {
            http: mapping::client(cfg.timeout(), cfg.connect_timeout()),
            key,
            url,
            cfg,
            decoder,
        }
    }

    fn post(&self, body: &Value) -> reqwest::RequestBuilder {
        let r = self.http.post(&self.url).json(body);
        match self.key.expose() {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }

    /// The task as the upstream reads it: the request's own task object (each task type's
    /// [`to_wire`](mediagate_core::task::TaskParams::to_wire)), with the upstream's model name,
    /// a fresh taskUUID, the seeds drawn here, each input as a `data:` URI of the asset fetched
    /// here (the upstream cannot resolve this server's UUIDs or reach its callers' URLs), and
    /// files asked for as base64 so that they come back in the reply.
    fn task(&self, job: &Job) -> Value {
        let request = &job.request;
        let mut t = job.wire_with_inline_inputs();
        if request.async_only() {
            t.insert("deliveryMethod".into(), json!("async"));
        }
        t.insert("taskType".into(), json!(request.task_type().as_str()));
        t.insert("taskUUID".into(), json!(uuid::Uuid::new_v4().to_string()));
        let air = request.model();
        t.insert("model".into(), json!(self.cfg.model_for(air).unwrap_or(air)));
        if request.family() != Family::Text {
            t.insert("outputType".into(), json!("base64Data"));
        }
        // The upstream's cost and its output's lifetime are not this server's.
        t.remove("includeCost");
        t.remove("ttl");
        Value::Object(t)
    }

    /// One POST, its reply read: the `data` items, or the first error mapped.
    async fn call(&self, body: &Value) -> Result<Vec<Value>, ProviderError> {
        let name = &self.cfg.name;
        let (status, headers, reply) = send(name, self.post(body)).await?;
        let parsed: Reply = match serde_json::from_slice(&reply) {
            Ok(r) => r,
            Err(_) if !(200..300).contains(&status) => {
                return Err(mapping::from_status(name, status, &headers, &reply, false, false));
            }
            Err(e) => {
                return Err(mapping::failed(
                    name,
                    format_args!("unreadable reply ({e}): {}", mapping::truncate(&reply)),
                ));
            }
        };
        if let Some(e) = parsed.errors.first() {
            return Err(map_error(name, e, status, &headers, &reply));
        }
        if !(200..300).contains(&status) {
            return Err(mapping::from_status(name, status, &headers, &reply, false, false));
        }
        // A failed result of an async task comes as an item with `status: "error"`.
        if let Some(failed) = parsed.data.iter().find(|d| d["status"] == "error") {
            let e: UpstreamError = serde_json::from_value(failed["error"].clone()).unwrap_or_default();
            return Err(map_error(name, &e, status, &headers, &reply));
        }
        Ok(parsed.data)
    }

    /// The artifacts of the first `expect.want` result items.
    async fn artifacts(&self, expect: &Expected, data: &[Value]) -> Result<Vec<Artifact>, ProviderError> {
        let name = &self.cfg.name;
        if data.len() < expect.want {
            return Err(mapping::failed(
                name,
                format_args!("asked for {} results, got {}", expect.want, data.len()),
            ));
        }
        let mut out: Vec<Artifact> = Vec::with_capacity(expect.want);
        for (i, item) in data.iter().take(expect.want).enumerate() {
            out.push(artifact(name, expect, i, item, &self.decoder).await?);
        }
        Ok(out)
    }
}

/// One result item of the upstream's reply as an artifact: a file (`{prefix}Base64Data`),
/// re-encoded to the format asked for when it is a raster image in another one, or text.
async fn artifact(
    name: &str,
    expect: &Expected,
    i: usize,
    item: &Value,
    decoder: &Decoder,
) -> Result<Artifact, ProviderError> {
    let seed = item.get("seed").and_then(Value::as_u64).or(expect.seeds.get(i).copied());
    let family = expect.family;
    if family == Family::Text {
        let text = item
            .get("text")
            .and_then(Value::as_str)
            .ok_or_else(|| mapping::failed(name, format_args!("result {i} has no text")))?;
        let usage = &item["usage"];
        let completion = item.get("finishReason").and_then(Value::as_str).map(|reason| Completion {
            finish_reason: reason.to_string(),
            prompt_tokens: usage["promptTokens"].as_u64().unwrap_or(0),
            completion_tokens: usage["completionTokens"].as_u64().unwrap_or(0),
        });
        return Ok(Artifact {
            bytes: text.as_bytes().to_vec(),
            content_type: "text/plain; charset=utf-8",
            extension: "txt",
            seed: item.get("seed").and_then(Value::as_u64),
            completion,
            fields: Default::default(),
        });
    }
    // The task type's own result fields (imageMasking's detections), kept as they came.
    let fields: serde_json::Map<String, Value> =
        expect.fields.iter().filter_map(|k| item.get(k).map(|v| (k.clone(), v.clone()))).collect();
    let field = format!("{}Base64Data", expect.prefix);
    let b64 = item
        .get(&field)
        .and_then(Value::as_str)
        .ok_or_else(|| mapping::failed(name, format_args!("result {i} has no {field}")))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| mapping::failed(name, format_args!("result {i}: base64: {e}")))?;
    let mut artifact =
        mapping::file_artifact(name, expect.family, bytes, &expect.output, seed, decoder).await?;
    artifact.fields = fields;
    Ok(artifact)
}

/// What the results of a job must be, kept in an async job's handle (`JobHandle::context`) so
/// that [`Provider::wait`] can turn the polled results into artifacts.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Expected {
    family: Family,
    prefix: String,
    fields: Vec<String>,
    output: OutputOptions,
    seeds: Vec<u64>,
    want: usize,
}

impl Expected {
    fn of(job: &Job) -> Self {
        Expected {
            family: job.request.family(),
            prefix: job.request.result_prefix().to_string(),
            fields: job.task_type().result_fields().iter().map(|f| f.to_string()).collect(),
            output: job.request.output().clone(),
            seeds: job.seeds.clone(),
            want: job.request.result_count() as usize,
        }
    }
}

/// A parameter name safe to show: a short path of identifier characters (never free text).
fn safe_parameter(p: &Value) -> Option<String> {
    let s = match p {
        Value::String(s) => s.as_str(),
        Value::Array(a) => a.first()?.as_str()?,
        _ => return None,
    };
    (!s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c)))
        .then(|| s.to_string())
}

/// Maps one upstream error object (with the reply's HTTP status and headers).
fn map_error(name: &str, e: &UpstreamError, status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    use ErrorCode as C;
    let detail = || format!("{name}: HTTP {status} {}: {}", e.code, mapping::truncate(body));
    let code = ErrorCode::from_wire(&e.code);
    match code {
        Some(C::TimeoutProvider) => mapping::timed_out(name, detail()),
        Some(C::ProviderRateLimitExceeded | C::RateLimitExceeded) => {
            mapping::rate_limited(name, mapping::retry_after(headers), body)
        }
        Some(C::ProviderContentPolicyViolation) => mapping::content_policy(name, body),
        Some(
            C::MissingApiKey
            | C::InvalidApiKey
            | C::ApiKeyDisabled
            | C::ApiKeyRevoked
            | C::AccountSuspended
            | C::InsufficientPermissions,
        ) => mapping::credentials_rejected(name, status, body),
        Some(C::InsufficientCredits) => mapping::out_of_quota(name, body),
        Some(C::UnknownModel | C::UnsupportedModelForTask | C::UnknownTaskType | C::UnsupportedTaskType) => {
            ProviderError::operator(
                "The provider does not serve the model mediagate routes this task to; the operator must fix \
                 the provider's model mapping.",
                detail(),
            )
        }
        Some(
            c @ (C::MissingParameter
            | C::UnknownParameter
            | C::InvalidParameterType
            | C::InvalidParameterValue
            | C::AssetDimensions
            | C::AssetAspectRatio
            | C::AssetTooLarge
            | C::AssetContentMismatch
            | C::UnsupportedAssetType),
        ) => {
            let parameter = safe_parameter(&e.parameter);
            let what = match &parameter {
                Some(p) => format!("parameter '{p}'"),
                None => "the task's parameters".into(),
            };
            let error = ProviderError::new(
                c,
                format!(
                    "The provider refused {what} ({}). Change it and send the task again; retrying the same \
                     request will be refused again.",
                    c.as_str()
                ),
                detail(),
            );
            match parameter {
                Some(p) => error.with_parameter(mediagate_core::ParamPath::key(p)),
                None => error,
            }
        }
        Some(c) if c.is_retryable() => {
            mapping::failed(name, detail()).with_retry_after(mapping::retry_after(headers))
        }
        Some(_) => ProviderError::operator(
            "The provider refused the request as mediagate sent it; the operator must check the provider \
             configuration.",
            detail(),
        ),
        None if (200..300).contains(&status) => mapping::failed(name, detail()),
        None => mapping::from_status(name, status, headers, body, false, false),
    }
}

#[async_trait]
impl Provider for RunwareUpstream {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    /// The whole task object is sent on, so every optional parameter reaches the upstream.
    fn param_support(&self, _model: &str) -> ParamSupport {
        ParamSupport::All
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // Every registered task type: answered in the reply, or (async-only ones) polled for.
            task_types: TaskType::ALL.to_vec(),
            models: self.cfg.models.keys().cloned().collect(),
            delivery: Delivery::Poll,
        }
    }

    /// Tasks that answer in their reply are sent and answered at once. Async-only ones (video)
    /// are sent with `deliveryMethod: "async"` under a fresh taskUUID, which the handle keeps for
    /// [`wait`](Provider::wait) to poll.
    async fn submit(&self, job: Arc<Job>) -> Result<Submitted, ProviderError> {
        let task = self.task(&job);
        let expect = Expected::of(&job);
        if !job.request.async_only() {
            let data = self.call(&json!([task])).await?;
            return Ok(Submitted::Done(self.artifacts(&expect, &data).await?));
        }
        let uuid = task["taskUUID"].as_str().unwrap_or_default().to_string();
        self.call(&json!([task])).await?;
        let context = serde_json::to_string(&expect).expect("an expectation serializes");
        Ok(Submitted::Pending(JobHandle { ids: vec![uuid], context }))
    }

    /// Polls `getResponse` every `poll_interval_ms` until every result is in, a result failed, or
    /// `timeout_ms` has passed.
    async fn wait(&self, handle: &JobHandle, progress: &ProgressFn) -> Result<Vec<Artifact>, ProviderError> {
        let name = &self.cfg.name;
        let expect: Expected = serde_json::from_str(&handle.context)
            .map_err(|e| mapping::failed(name, format_args!("unreadable job handle: {e}")))?;
        let uuid = handle.ids.first().cloned().unwrap_or_default();
        let every = std::time::Duration::from_millis(self.cfg.poll_interval_ms.max(1));
        let poll = async {
            loop {
                let data = self.call(&json!([{"taskType": "getResponse", "taskUUID": uuid}])).await?;
                let done: Vec<Value> = data.into_iter().filter(|d| d["status"] == "success").collect();
                if done.len() >= expect.want {
                    return self.artifacts(&expect, &done).await;
                }
                progress(Progress { fraction: done.len() as f32 / expect.want.max(1) as f32 });
                tokio::time::sleep(every).await;
            }
        };
        match tokio::time::timeout(self.cfg.timeout(), poll).await {
            Ok(r) => r,
            Err(_) => Err(mapping::timed_out(
                name,
                format_args!("task {uuid} not done within {:?}", self.cfg.timeout()),
            )),
        }
    }

    async fn health(&self) -> Health {
        let ping = json!([{"taskType": "ping", "ping": true}]);
        match self.post(&ping).send().await {
            Ok(r) if r.status().is_success() => Health::Healthy,
            Ok(r) if matches!(r.status().as_u16(), 401 | 403) => {
                Health::Unhealthy("the provider rejects mediagate's credentials".into())
            }
            Ok(r) => Health::Degraded(format!("HTTP {}", r.status().as_u16())),
            Err(e) => Health::Unhealthy(mapping::from_transport(&self.cfg.name, &e).detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_shown_only_when_they_look_like_names() {
        assert_eq!(safe_parameter(&json!("width")).as_deref(), Some("width"));
        assert_eq!(safe_parameter(&json!(["width", "height"])).as_deref(), Some("width"));
        assert_eq!(safe_parameter(&json!("key sk-live-123 is wrong")), None);
        assert_eq!(safe_parameter(&json!(3)), None);
    }
}
