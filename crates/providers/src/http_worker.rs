//! `http-worker`: mediagate's small JSON protocol for a team's own GPU workers.
//!
//! The protocol (documented for worker authors in `docs/providers.md`):
//!
//! * `POST /jobs` `{"id", "taskType", "model", "input": {...}}` → `202 {"id", "status": "queued"}`
//!   (or `200` with the finished job). An image job's `input.task` is the whole task object in
//!   Runware's names (seed image, mask, LoRA, ControlNet…), its images as `data:` URIs. `409`/`429`/`503` mean busy (with `Retry-After`).
//! * `GET /jobs/{id}` → `{"id", "status": "queued"|"running"|"succeeded"|"failed"|"canceled",
//!   "progress": 0.0..1.0, "outputs": [{"base64", "seed"}], "error": {"kind", "message"}}`.
//! * `POST /jobs/{id}/cancel` → `2xx` (or `404` when the job is gone).
//! * `GET /health` → `200 {"status": "ready"|"busy"}`.
//!
//! Every request carries `Authorization: Bearer <key>` when a key is configured. The job id is
//! chosen by mediagate (a fresh UUID per attempt), so a worker can deduplicate a repeated POST.

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
use mediagate_core::task::{Family, ImageFormat, OutputOptions, ParamSupport, TaskRequest, TaskType};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The adapter.
pub struct HttpWorker {
    cfg: UpstreamConfig,
    key: Secret,
    http: reqwest::Client,
    decoder: Decoder,
}

#[derive(Deserialize, Debug, Default)]
struct JobState {
    #[serde(default)]
    status: String,
    #[serde(default)]
    progress: Option<f32>,
    #[serde(default)]
    outputs: Vec<Output>,
    #[serde(default)]
    error: Option<WorkerError>,
}

#[derive(Deserialize, Debug)]
struct Output {
    /// A file (every family but text).
    #[serde(default)]
    base64: Option<String>,
    /// A text result.
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    seed: Option<u64>,
}

/// What a job's outputs must become, kept in its handle for `wait`.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct Expected {
    family: Family,
    output: OutputOptions,
    want: usize,
}

#[derive(Deserialize, Debug, Default)]
struct WorkerError {
    #[serde(default)]
    kind: String,
}

fn fmt_name(f: ImageFormat) -> &'static str {
    match f {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpg => "JPG",
        ImageFormat::Webp => "WEBP",
    }
}

impl HttpWorker {
    /// An adapter for `cfg`, authenticating with `key` as a Bearer token when set.
    pub fn new(cfg: UpstreamConfig, key: Secret, decoder: Decoder) -> Self {
        HttpWorker { http: mapping::client(cfg.timeout(), cfg.connect_timeout()), key, cfg, decoder }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.cfg.base()));
        match self.key.expose() {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }

    fn body(&self, id: &str, job: &Job) -> Value {
        let model = self.cfg.model_for(job.model()).unwrap_or(job.model());
        let (seeds, input) = (&job.seeds, job.input());
        let input = match (&job.request, input) {
            (TaskRequest::ImageInference(r), _) => json!({
                "prompt": r.positive_prompt,
                "negativePrompt": r.negative_prompt,
                "width": r.width,
                "height": r.height,
                "steps": r.steps,
                "cfgScale": r.cfg_scale,
                "seeds": seeds,
                "outputFormat": fmt_name(r.output.format),
                "task": job.wire_with_inline_inputs(),
            }),
            (TaskRequest::Upscale(r), Some(input)) => json!({
                "image": base64::engine::general_purpose::STANDARD.encode(&input.bytes),
                "mediaType": input.media_type,
                "factor": r.upscale_factor,
                "outputFormat": fmt_name(r.output.format),
            }),
            // Every other task type: the whole task in Runware's names, inputs inlined.
            _ => json!({"task": job.wire_with_inline_inputs()}),
        };
        json!({"id": id, "taskType": job.task_type().as_str(), "model": model, "input": input})
    }

    /// Turns a job state into results, a failure, or `None` while it runs.
    async fn settle(&self, st: JobState, expect: &Expected) -> Result<Option<Vec<Artifact>>, ProviderError> {
        let want = expect.want;
        let name = &self.cfg.name;
        match st.status.as_str() {
            "queued" | "running" => Ok(None),
            "succeeded" => {
                if st.outputs.len() < want {
                    return Err(mapping::failed(
                        name,
                        format_args!("asked for {want} outputs, got {}", st.outputs.len()),
                    ));
                }
                let mut out = Vec::with_capacity(want);
                for o in st.outputs.into_iter().take(want) {
                    out.push(self.artifact(o, expect).await?);
                }
                Ok(Some(out))
            }
            "failed" => {
                let kind = st.error.unwrap_or_default().kind;
                Err(match kind.as_str() {
                    "invalid" => ProviderError::new(
                        ErrorCode::InvalidParameterValue,
                        "The worker refused the task's parameters. Change them and send the task again.",
                        format!("{name}: job failed: invalid"),
                    ),
                    "content_policy" => mapping::content_policy(name, b"worker error kind content_policy"),
                    other => mapping::failed(name, format_args!("job failed: {other}")),
                })
            }
            "canceled" => Err(mapping::failed(name, "the worker canceled the job")),
            other => Err(mapping::failed(name, format_args!("unknown job status {other:?}"))),
        }
    }

    /// One output as an artifact: text for text task types, else a file of the task's family.
    async fn artifact(&self, o: Output, expect: &Expected) -> Result<Artifact, ProviderError> {
        let name = &self.cfg.name;
        if expect.family == Family::Text {
            let text = o.text.ok_or_else(|| mapping::failed(name, "a text output without `text`"))?;
            return Ok(Artifact {
                bytes: text.into_bytes(),
                content_type: "text/plain; charset=utf-8",
                extension: "txt",
                seed: o.seed,
                completion: None,
                fields: Default::default(),
            });
        }
        let b64 = o.base64.ok_or_else(|| mapping::failed(name, "an output without `base64`"))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|e| mapping::failed(name, format_args!("output base64: {e}")))?;
        mapping::file_artifact(name, expect.family, bytes, &expect.output, o.seed, &self.decoder).await
    }
}

/// Whether a worker's error body (`{"error": {"kind"}}`) says content policy.
fn is_content_policy(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .is_some_and(|v| v.pointer("/error/kind").and_then(Value::as_str) == Some("content_policy"))
}

#[async_trait]
impl Provider for HttpWorker {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Jobs carry the whole task (`input.task`), so a worker sees every optional parameter; one
    /// that cannot act on a parameter fails the job with `kind: "invalid"`.
    fn param_support(&self, _model: &str) -> ParamSupport {
        ParamSupport::All
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            task_types: TaskType::ALL.to_vec(),
            models: self.cfg.models.keys().cloned().collect(),
            delivery: Delivery::Poll,
        }
    }

    async fn submit(&self, job: Arc<Job>) -> Result<Submitted, ProviderError> {
        let name = &self.cfg.name;
        let id = uuid::Uuid::new_v4().to_string();
        let expect = Expected {
            family: job.request.family(),
            output: job.request.output().clone(),
            want: job.request.result_count() as usize,
        };
        let (status, headers, body) =
            send(name, self.req(reqwest::Method::POST, "/jobs").json(&self.body(&id, &job))).await?;
        if !(200..300).contains(&status) {
            return Err(mapping::from_status(name, status, &headers, &body, is_content_policy(&body), false));
        }
        let st: JobState = serde_json::from_slice(&body).map_err(|e| {
            mapping::failed(name, format_args!("unreadable reply ({e}): {}", mapping::truncate(&body)))
        })?;
        // The handle carries what `wait` needs to convert outputs.
        let context = serde_json::to_string(&expect).expect("an expectation serializes");
        match self.settle(st, &expect).await? {
            Some(a) => Ok(Submitted::Done(a)),
            None => Ok(Submitted::Pending(JobHandle { ids: vec![id], context })),
        }
    }

    async fn wait(&self, handle: &JobHandle, progress: &ProgressFn) -> Result<Vec<Artifact>, ProviderError> {
        let name = &self.cfg.name;
        let expect: Expected = serde_json::from_str(&handle.context)
            .map_err(|e| mapping::failed(name, format_args!("unreadable job handle: {e}")))?;
        let id = handle.ids.first().cloned().unwrap_or_default();
        let every = Duration::from_millis(self.cfg.poll_interval_ms.max(1));
        let poll = async {
            loop {
                let (status, headers, body) =
                    send(name, self.req(reqwest::Method::GET, &format!("/jobs/{id}"))).await?;
                if status == 404 {
                    return Err(mapping::failed(name, format_args!("the worker lost job {id} (404)")));
                }
                if !(200..300).contains(&status) {
                    return Err(mapping::from_status(name, status, &headers, &body, false, false));
                }
                let st: JobState = serde_json::from_slice(&body).map_err(|e| {
                    mapping::failed(
                        name,
                        format_args!("unreadable job state ({e}): {}", mapping::truncate(&body)),
                    )
                })?;
                if let Some(p) = st.progress {
                    progress(Progress { fraction: p.clamp(0.0, 1.0) });
                }
                if let Some(a) = self.settle(st, &expect).await? {
                    return Ok(a);
                }
                tokio::time::sleep(every).await;
            }
        };
        match tokio::time::timeout(self.cfg.timeout(), poll).await {
            Ok(r) => r,
            Err(_) => Err(mapping::timed_out(
                name,
                format_args!("job {id} not done within {:?}", self.cfg.timeout()),
            )),
        }
    }

    async fn cancel(&self, handle: &JobHandle) -> Result<(), ProviderError> {
        let name = &self.cfg.name;
        for id in &handle.ids {
            let (status, headers, body) =
                send(name, self.req(reqwest::Method::POST, &format!("/jobs/{id}/cancel"))).await?;
            if !(200..300).contains(&status) && status != 404 {
                return Err(mapping::from_status(name, status, &headers, &body, false, false));
            }
        }
        Ok(())
    }

    async fn health(&self) -> Health {
        match self.req(reqwest::Method::GET, "/health").send().await {
            Ok(r) if r.status().is_success() => {
                let v: Value = r.json().await.unwrap_or_default();
                match v["status"].as_str() {
                    Some("ready") | None => Health::Healthy,
                    Some(s) => Health::Degraded(s.to_string()),
                }
            }
            Ok(r) if matches!(r.status().as_u16(), 401 | 403) => {
                Health::Unhealthy("the worker rejects mediagate's credentials".into())
            }
            Ok(r) => Health::Degraded(format!("HTTP {}", r.status().as_u16())),
            Err(e) => Health::Unhealthy(mapping::from_transport(&self.cfg.name, &e).detail),
        }
    }
}
