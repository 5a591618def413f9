//! `comfyui`: a ComfyUI server driven through its HTTP and WebSocket API.
//!
//! * **Workflow templates**: per AIR id (`workflows` in the upstream's configuration), an
//!   API-format graph (ComfyUI's "Save (API)" export) in which strings are placeholders:
//!   `"{{seed}}"`, `"{{width}}"`, `"{{height}}"`, `"{{steps}}"`, `"{{cfg}}"` and `"{{denoise}}"`
//!   (the whole string) become numbers; `{{prompt}}` and `{{negative_prompt}}` are replaced
//!   inside strings. Substitution works on the parsed JSON, so a prompt cannot break out of its
//!   string.
//! * **Image to image**: a template with `"{{seed_image}}"` (and `"{{mask_image}}"`) in a
//!   `LoadImage` node is an image-to-image (inpainting) workflow: its model takes `seedImage`
//!   (`maskImage`), and only with one. The images are uploaded with `POST /upload/image` and the
//!   placeholders become their names; `{{denoise}}` is the task's `strength` (Runware's 0.8 when
//!   absent).
//! * **Submit**: one `POST /prompt` per result (each with its own seed) under one fresh
//!   `client_id`.
//! * **Progress**: `wait` opens `/ws?clientId=<client_id>` (ComfyUI sends a prompt's events only
//!   to the socket of the client that queued it), then reads `/history/{prompt_id}` once so a
//!   prompt that finished before the socket was up is not missed, then follows `progress`,
//!   `executing` (`node: null` = done), `execution_success`, `execution_error` and
//!   `execution_interrupted`. Progress is forwarded as a fraction over all of the task's prompts.
//!   Without a WebSocket it polls `/history` every `poll_interval_ms`.
//! * **Outputs**: `/history/{prompt_id}` names the files (`type: "output"`), `/view` serves them.
//! * **Cancel**: `POST /queue {"delete": [ids]}` for queued prompts, then
//!   `POST /interrupt {"prompt_id": id}`. Older ComfyUI versions ignore `prompt_id` and interrupt
//!   whatever is running, so share a ComfyUI server with nothing else.

use crate::decode::Decoder;
use crate::mapping::{self, conform, send};
use crate::upstream::{Secret, UpstreamConfig};
use crate::{
    Artifact, Capabilities, Delivery, Health, Job, JobHandle, Progress, ProgressFn, Provider, ProviderError,
    Submitted,
};
use async_trait::async_trait;
use futures::StreamExt;
use mediagate_core::task::{ImageFormat, OutputOptions, ParamSupport, TaskRequest, TaskType};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Steps when the task sets none and the template asks for `{{steps}}`.
pub const DEFAULT_STEPS: u32 = 20;
/// CFG scale when the task sets none and the template asks for `{{cfg}}`.
pub const DEFAULT_CFG: f64 = 7.0;

/// The adapter.
pub struct ComfyUi {
    cfg: UpstreamConfig,
    key: Secret,
    http: reqwest::Client,
    decoder: Decoder,
    templates: HashMap<String, Value>,
}

/// Values substituted into a template.
#[derive(Debug, Clone)]
pub struct Fill<'a> {
    /// `{{prompt}}`.
    pub prompt: &'a str,
    /// `{{negative_prompt}}` (empty when absent).
    pub negative_prompt: &'a str,
    /// `{{seed}}`.
    pub seed: u64,
    /// `{{width}}`.
    pub width: u32,
    /// `{{height}}`.
    pub height: u32,
    /// `{{steps}}`.
    pub steps: u32,
    /// `{{cfg}}`.
    pub cfg: f64,
    /// `{{denoise}}`: the strength of an image-to-image task.
    pub denoise: f64,
    /// `{{seed_image}}`: the uploaded seed image's name in ComfyUI's input folder.
    pub seed_image: &'a str,
    /// `{{mask_image}}`: the uploaded mask's name.
    pub mask_image: &'a str,
}

/// The placeholder of a seed image in a template.
pub const SEED_IMAGE: &str = "{{seed_image}}";
/// The placeholder of a mask in a template.
pub const MASK_IMAGE: &str = "{{mask_image}}";

/// Substitutes placeholders in a template (see the module docs).
pub fn fill(template: &Value, f: &Fill<'_>) -> Value {
    match template {
        Value::String(s) => match s.as_str() {
            "{{seed}}" => json!(f.seed),
            "{{width}}" => json!(f.width),
            "{{height}}" => json!(f.height),
            "{{steps}}" => json!(f.steps),
            "{{cfg}}" => json!(f.cfg),
            "{{denoise}}" => json!(f.denoise),
            SEED_IMAGE => json!(f.seed_image),
            MASK_IMAGE => json!(f.mask_image),
            _ if s.contains("{{") => Value::String(
                s.replace("{{prompt}}", f.prompt).replace("{{negative_prompt}}", f.negative_prompt),
            ),
            _ => template.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(|v| fill(v, f)).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), fill(v, f))).collect()),
        _ => template.clone(),
    }
}

/// Whether a template has a placeholder (as a whole string value).
fn has_placeholder(template: &Value, placeholder: &str) -> bool {
    match template {
        Value::String(s) => s == placeholder,
        Value::Array(a) => a.iter().any(|v| has_placeholder(v, placeholder)),
        Value::Object(o) => o.values().any(|v| has_placeholder(v, placeholder)),
        _ => false,
    }
}

/// Checks a template: a JSON object (API format) mentioning `{{prompt}}`.
pub fn check_template(v: &Value) -> Result<(), String> {
    if !v.is_object() {
        return Err("a workflow template must be an API-format JSON object (ComfyUI's \"Save (API)\")".into());
    }
    if !v.to_string().contains("{{prompt}}") {
        return Err("the workflow template has no {{prompt}} placeholder".into());
    }
    Ok(())
}

fn fmt_name(f: ImageFormat) -> &'static str {
    match f {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpg => "JPG",
        ImageFormat::Webp => "WEBP",
    }
}

/// How a prompt ended, as seen on the WebSocket or in `/history`.
enum Ended {
    Success,
    Error(String),
}

impl ComfyUi {
    /// An adapter for `cfg`; reads and checks every workflow template now.
    pub fn new(cfg: UpstreamConfig, key: Secret, decoder: Decoder) -> Result<Self, String> {
        let mut templates = HashMap::new();
        for (air, path) in &cfg.workflows {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!("upstream {}: workflow for {air} ({}): {e}", cfg.name, path.display())
            })?;
            let v: Value = serde_json::from_str(&text).map_err(|e| {
                format!("upstream {}: workflow for {air} ({}): {e}", cfg.name, path.display())
            })?;
            check_template(&v).map_err(|e| {
                format!("upstream {}: workflow for {air} ({}): {e}", cfg.name, path.display())
            })?;
            templates.insert(air.clone(), v);
        }
        if templates.is_empty() {
            return Err(format!(
                "upstream {}: a comfyui upstream needs at least one entry in `workflows`",
                cfg.name
            ));
        }
        Ok(ComfyUi {
            http: mapping::client(cfg.timeout(), cfg.connect_timeout()),
            key,
            cfg,
            templates,
            decoder,
        })
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.cfg.base()));
        match self.key.expose() {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }

    /// Uploads an input image to ComfyUI's input folder (`POST /upload/image`); returns the name
    /// a `LoadImage` node takes.
    async fn upload(&self, asset: &mediagate_assets::Asset) -> Result<String, ProviderError> {
        let name = &self.cfg.name;
        let ext = mediagate_assets::content_type::extension_of(&asset.media_type);
        let file = format!("mediagate-{}.{ext}", uuid::Uuid::new_v4());
        let part = reqwest::multipart::Part::bytes(asset.bytes.to_vec())
            .file_name(file)
            .mime_str(&asset.media_type)
            .map_err(|e| mapping::failed(name, format_args!("upload part: {e}")))?;
        let form = reqwest::multipart::Form::new().part("image", part).text("overwrite", "true");
        let (status, headers, body) =
            send(name, self.req(reqwest::Method::POST, "/upload/image").multipart(form)).await?;
        if !(200..300).contains(&status) {
            return Err(mapping::from_status(name, status, &headers, &body, false, false));
        }
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| mapping::failed(name, format_args!("unreadable /upload/image reply ({e})")))?;
        let (Some(file), sub) = (v["name"].as_str(), v["subfolder"].as_str().unwrap_or("")) else {
            return Err(mapping::failed(name, format_args!("/upload/image reply without a name: {v}")));
        };
        Ok(if sub.is_empty() { file.to_string() } else { format!("{sub}/{file}") })
    }

    async fn post_prompt(&self, graph: Value, client_id: &str) -> Result<String, ProviderError> {
        let name = &self.cfg.name;
        let (status, headers, body) = send(
            name,
            self.req(reqwest::Method::POST, "/prompt")
                .json(&json!({"prompt": graph, "client_id": client_id})),
        )
        .await?;
        if status == 400 {
            // ComfyUI validated the graph and refused it: the template (or its model files) is
            // wrong, which is the operator's to fix; mediagate's own bounds vetted the values.
            return Err(ProviderError::operator(
                "The provider rejected the workflow configured for this model; the operator must fix the \
                 workflow template.",
                format!("{name}: POST /prompt 400: {}", mapping::truncate(&body)),
            ));
        }
        if !(200..300).contains(&status) {
            return Err(mapping::from_status(name, status, &headers, &body, false, false));
        }
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| mapping::failed(name, format_args!("unreadable /prompt reply ({e})")))?;
        v["prompt_id"].as_str().map(str::to_string).ok_or_else(|| {
            mapping::failed(
                name,
                format_args!("/prompt reply without prompt_id: {}", mapping::truncate(&body)),
            )
        })
    }

    /// `/history/{id}`: `None` while the prompt is not finished.
    async fn history(
        &self,
        id: &str,
    ) -> Result<Option<(Ended, Vec<(String, String, String)>)>, ProviderError> {
        let name = &self.cfg.name;
        let (status, headers, body) =
            send(name, self.req(reqwest::Method::GET, &format!("/history/{id}"))).await?;
        if !(200..300).contains(&status) {
            return Err(mapping::from_status(name, status, &headers, &body, false, false));
        }
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| mapping::failed(name, format_args!("unreadable /history reply ({e})")))?;
        let Some(entry) = v.get(id) else { return Ok(None) };
        let st = &entry["status"];
        if st["completed"] == json!(false) && st["status_str"] != json!("error") {
            return Ok(None);
        }
        let ended = if st["status_str"] == json!("error") {
            Ended::Error(mapping::truncate(st["messages"].to_string().as_bytes()))
        } else {
            Ended::Success
        };
        // Outputs by node id, in numeric order where ids are numbers, so results are stable.
        let mut files = BTreeMap::new();
        if let Some(outputs) = entry["outputs"].as_object() {
            for (node, out) in outputs {
                for img in out["images"].as_array().into_iter().flatten() {
                    if img["type"].as_str().unwrap_or("output") != "output" {
                        continue;
                    }
                    let f = (
                        img["filename"].as_str().unwrap_or_default().to_string(),
                        img["subfolder"].as_str().unwrap_or_default().to_string(),
                        img["type"].as_str().unwrap_or("output").to_string(),
                    );
                    let key = (node.parse::<u64>().unwrap_or(u64::MAX), node.clone());
                    files.entry(key).or_insert_with(Vec::new).push(f);
                }
            }
        }
        Ok(Some((ended, files.into_values().flatten().collect())))
    }

    async fn view(&self, file: &(String, String, String)) -> Result<Vec<u8>, ProviderError> {
        let name = &self.cfg.name;
        let (status, headers, body) = send(
            name,
            self.req(reqwest::Method::GET, "/view").query(&[
                ("filename", file.0.as_str()),
                ("subfolder", file.1.as_str()),
                ("type", file.2.as_str()),
            ]),
        )
        .await?;
        if !(200..300).contains(&status) {
            return Err(mapping::from_status(name, status, &headers, &body, false, false));
        }
        Ok(body)
    }

    /// The first output image of a finished prompt, as an artifact.
    async fn collect(
        &self,
        id: &str,
        ended: Ended,
        files: Vec<(String, String, String)>,
        output: &OutputOptions,
        seed: Option<u64>,
    ) -> Result<Artifact, ProviderError> {
        let name = &self.cfg.name;
        if let Ended::Error(m) = ended {
            return Err(mapping::failed(name, format_args!("prompt {id} failed: {m}")));
        }
        let file = files.first().ok_or_else(|| {
            mapping::failed(name, format_args!("prompt {id} finished with no output image"))
        })?;
        conform(name, self.view(file).await?, output, seed, &self.decoder).await
    }

    async fn ws_connect(
        &self,
        client_id: &str,
    ) -> Option<tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>>
    {
        let base = self.cfg.base();
        let url = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}/ws?clientId={client_id}")
        } else {
            format!("ws://{}/ws?clientId={client_id}", base.trim_start_matches("http://"))
        };
        let mut req = url.into_client_request().ok()?;
        if let Some(k) = self.key.expose() {
            req.headers_mut().insert("authorization", format!("Bearer {k}").parse().ok()?);
        }
        crate::traces::inject(req.headers_mut());
        match tokio::time::timeout(self.cfg.connect_timeout(), tokio_tungstenite::connect_async(req)).await {
            Ok(Ok((ws, _))) => Some(ws),
            Ok(Err(e)) => {
                tracing::debug!(provider = %self.cfg.name, error = %e, "no ComfyUI WebSocket; polling /history");
                None
            }
            Err(_) => None,
        }
    }

    async fn wait_inner(
        &self,
        handle: &JobHandle,
        progress: &ProgressFn,
    ) -> Result<Vec<Artifact>, ProviderError> {
        let name = &self.cfg.name;
        let ctx: Value = serde_json::from_str(&handle.context).unwrap_or_default();
        let client_id = ctx["client_id"].as_str().unwrap_or_default().to_string();
        let output = OutputOptions {
            format: ctx["format"].as_str().and_then(ImageFormat::parse).unwrap_or(ImageFormat::Png),
            quality: ctx["quality"].as_u64().unwrap_or(95) as u8,
            ..OutputOptions::default()
        };
        let seeds: Vec<Option<u64>> = ctx["seeds"]
            .as_array()
            .map(|a| a.iter().map(Value::as_u64).collect())
            .unwrap_or_else(|| vec![None; handle.ids.len()]);
        let n = handle.ids.len();
        let mut done: Vec<Option<Artifact>> = vec![None; n];
        // Per-prompt fraction; the task's progress is their mean (prompts may run in any order).
        let mut fractions = vec![0f64; n];
        let report = |fractions: &[f64]| {
            progress(Progress { fraction: (fractions.iter().sum::<f64>() / n as f64) as f32 })
        };
        let index = |id: &str| handle.ids.iter().position(|x| x == id);

        let mut ws = self.ws_connect(&client_id).await;
        // Prompts that finished before the socket was up (or all of them, without a socket).
        loop {
            for (i, id) in handle.ids.iter().enumerate() {
                if done[i].is_none()
                    && let Some((ended, files)) = self.history(id).await?
                {
                    done[i] =
                        Some(self.collect(id, ended, files, &output, seeds.get(i).copied().flatten()).await?);
                    fractions[i] = 1.0;
                    report(&fractions);
                }
            }
            if done.iter().all(Option::is_some) {
                return Ok(done.into_iter().flatten().collect());
            }
            if ws.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(self.cfg.poll_interval_ms.max(1))).await;
        }
        let ws = ws.as_mut().expect("checked above");
        while let Some(msg) = ws.next().await {
            let text = match msg {
                Ok(Message::Text(t)) => t,
                Ok(Message::Close(_)) => break,
                // Binary frames are previews; pings are answered by the library.
                Ok(_) => continue,
                Err(e) => return Err(mapping::failed(name, format_args!("WebSocket: {e}"))),
            };
            let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
            let data = &v["data"];
            let Some(i) = data["prompt_id"].as_str().and_then(index) else { continue };
            let finished = match v["type"].as_str().unwrap_or_default() {
                "progress" => {
                    let (val, max) =
                        (data["value"].as_f64().unwrap_or(0.0), data["max"].as_f64().unwrap_or(0.0));
                    if max > 0.0 && done[i].is_none() {
                        fractions[i] = fractions[i].max((val / max).clamp(0.0, 1.0));
                        report(&fractions);
                    }
                    false
                }
                "executing" => data["node"].is_null(),
                "execution_success" => true,
                "execution_error" => {
                    return Err(mapping::failed(
                        name,
                        format_args!(
                            "prompt {} failed in node {} ({}): {}",
                            handle.ids[i],
                            data["node_type"],
                            data["exception_type"],
                            mapping::truncate(data["exception_message"].to_string().as_bytes())
                        ),
                    ));
                }
                "execution_interrupted" => {
                    return Err(mapping::failed(
                        name,
                        format_args!("prompt {} was interrupted", handle.ids[i]),
                    ));
                }
                _ => false,
            };
            if finished && done[i].is_none() {
                let id = &handle.ids[i];
                let (ended, files) = self.history(id).await?.ok_or_else(|| {
                    mapping::failed(name, format_args!("prompt {id} done but not in /history"))
                })?;
                done[i] =
                    Some(self.collect(id, ended, files, &output, seeds.get(i).copied().flatten()).await?);
                fractions[i] = 1.0;
                report(&fractions);
                if done.iter().all(Option::is_some) {
                    return Ok(done.into_iter().flatten().collect());
                }
            }
        }
        Err(mapping::failed(name, "the WebSocket closed before the prompts finished"))
    }
}

#[async_trait]
impl Provider for ComfyUi {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            task_types: vec![TaskType::ImageInference],
            models: self.templates.keys().cloned().collect(),
            delivery: Delivery::Stream,
        }
    }

    /// What a model's workflow has a place for: `seedImage` with `{{seed_image}}`, `maskImage`
    /// with `{{mask_image}}`.
    fn param_support(&self, model: &str) -> ParamSupport {
        let Some(template) = self.templates.get(model) else { return ParamSupport::none() };
        let features = [(SEED_IMAGE, "seedImage"), (MASK_IMAGE, "maskImage")];
        ParamSupport::Only(
            features
                .into_iter()
                .filter(|(p, _)| has_placeholder(template, p))
                .map(|(_, name)| name)
                .collect(),
        )
    }

    async fn submit(&self, job: Arc<Job>) -> Result<Submitted, ProviderError> {
        let name = &self.cfg.name;
        let (TaskRequest::ImageInference(r), seeds) = (&job.request, &job.seeds) else {
            return Err(job.not_served(name));
        };
        let template = self.templates.get(&r.model).ok_or_else(|| {
            ProviderError::operator(
                "The provider has no workflow for this model; the operator must add one.",
                format!("{name}: no workflow for {}", r.model),
            )
        })?;
        // An image-to-image workflow needs its seed image (and mask), uploaded first.
        let mut inputs = job.inputs.iter();
        let mut uploaded = [String::new(), String::new()];
        for (i, (placeholder, sent, what)) in [
            (SEED_IMAGE, r.seed_image.is_some(), "seedImage"),
            (MASK_IMAGE, r.mask_image.is_some(), "maskImage"),
        ]
        .into_iter()
        .enumerate()
        {
            match (has_placeholder(template, placeholder), sent) {
                (true, true) => {
                    let asset = inputs.next().ok_or_else(|| job.not_served(name))?;
                    uploaded[i] = self.upload(asset).await?;
                }
                (true, false) => {
                    return Err(ProviderError::new(
                        mediagate_core::ErrorCode::MissingParameter,
                        format!(
                            "Missing required parameter '{what}': model {} is an image-to-image workflow; \
                             send {what}.",
                            r.model
                        ),
                        format!("{name}: template needs {placeholder}"),
                    )
                    .with_parameter(mediagate_core::ParamPath::key(what)));
                }
                // Admission refuses an image the workflow has no place for.
                (false, _) => {}
            }
        }
        let client_id = uuid::Uuid::new_v4().to_string();
        let mut ids = Vec::with_capacity(seeds.len());
        for &seed in seeds {
            let graph = fill(
                template,
                &Fill {
                    prompt: &r.positive_prompt,
                    negative_prompt: r.negative_prompt.as_deref().unwrap_or(""),
                    seed,
                    width: r.width,
                    height: r.height,
                    steps: r.steps.unwrap_or(DEFAULT_STEPS),
                    cfg: r.cfg_scale.unwrap_or(DEFAULT_CFG),
                    denoise: r.strength_or_default(),
                    seed_image: &uploaded[0],
                    mask_image: &uploaded[1],
                },
            );
            match self.post_prompt(graph, &client_id).await {
                Ok(id) => ids.push(id),
                Err(e) => {
                    // Do not leave the already queued prompts running for nobody.
                    if !ids.is_empty() {
                        let _ = self.cancel(&JobHandle { ids, context: String::new() }).await;
                    }
                    return Err(e);
                }
            }
        }
        let context = json!({
            "client_id": client_id,
            "format": fmt_name(r.output.format),
            "quality": r.output.quality,
            "seeds": seeds,
        })
        .to_string();
        Ok(Submitted::Pending(JobHandle { ids, context }))
    }

    async fn wait(&self, handle: &JobHandle, progress: &ProgressFn) -> Result<Vec<Artifact>, ProviderError> {
        match tokio::time::timeout(self.cfg.timeout(), self.wait_inner(handle, progress)).await {
            Ok(r) => r,
            Err(_) => Err(mapping::timed_out(
                &self.cfg.name,
                format_args!("prompts {:?} not done within {:?}", handle.ids, self.cfg.timeout()),
            )),
        }
    }

    async fn cancel(&self, handle: &JobHandle) -> Result<(), ProviderError> {
        let name = &self.cfg.name;
        let (status, headers, body) =
            send(name, self.req(reqwest::Method::POST, "/queue").json(&json!({"delete": handle.ids})))
                .await?;
        if !(200..300).contains(&status) {
            return Err(mapping::from_status(name, status, &headers, &body, false, false));
        }
        for id in &handle.ids {
            let (status, headers, body) =
                send(name, self.req(reqwest::Method::POST, "/interrupt").json(&json!({"prompt_id": id})))
                    .await?;
            if !(200..300).contains(&status) {
                return Err(mapping::from_status(name, status, &headers, &body, false, false));
            }
        }
        Ok(())
    }

    async fn health(&self) -> Health {
        match self.req(reqwest::Method::GET, "/system_stats").send().await {
            Ok(r) if r.status().is_success() => Health::Healthy,
            Ok(r) => Health::Degraded(format!("HTTP {}", r.status().as_u16())),
            Err(e) => Health::Unhealthy(mapping::from_transport(&self.cfg.name, &e).detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_numbers_and_prompts_stay_inside_strings() {
        let t = json!({
            "3": {"class_type": "KSampler", "inputs": {"seed": "{{seed}}", "steps": "{{steps}}", "cfg": "{{cfg}}"}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": "{{width}}", "height": "{{height}}"}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "masterpiece, {{prompt}}"}},
            "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{negative_prompt}}"}},
            "8": {"inputs": {"list": ["{{seed}}", 1]}},
            "10": {"class_type": "LoadImage", "inputs": {"image": "{{seed_image}}"}},
            "11": {"class_type": "KSampler", "inputs": {"denoise": "{{denoise}}"}}
        });
        let g = fill(
            &t,
            &Fill {
                prompt: "a \"quoted\" cat\"}",
                negative_prompt: "blur",
                seed: 42,
                width: 512,
                height: 768,
                steps: 30,
                cfg: 6.5,
                denoise: 0.6,
                seed_image: "mediagate-1.png",
                mask_image: "",
            },
        );
        assert_eq!(g["3"]["inputs"]["seed"], json!(42));
        assert_eq!(g["3"]["inputs"]["steps"], json!(30));
        assert_eq!(g["3"]["inputs"]["cfg"], json!(6.5));
        assert_eq!(g["5"]["inputs"]["width"], json!(512));
        assert_eq!(g["5"]["inputs"]["height"], json!(768));
        assert_eq!(g["6"]["inputs"]["text"], json!("masterpiece, a \"quoted\" cat\"}"));
        assert_eq!(g["7"]["inputs"]["text"], json!("blur"));
        assert_eq!(g["8"]["inputs"]["list"], json!([42, 1]));
        assert_eq!(g["3"]["class_type"], json!("KSampler"));
        assert_eq!(g["10"]["inputs"]["image"], json!("mediagate-1.png"));
        assert_eq!(g["11"]["inputs"]["denoise"], json!(0.6));
        assert!(has_placeholder(&t, SEED_IMAGE) && !has_placeholder(&t, MASK_IMAGE));
        check_template(&t).unwrap();
        assert!(check_template(&json!({"a": "no placeholder"})).is_err());
        assert!(check_template(&json!(["{{prompt}}"])).is_err());
    }
}
