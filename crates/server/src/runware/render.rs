//! Canonical results and errors → Runware JSON.

use base64::Engine as _;
use mediagate_core::money::to_usd_f64;
use mediagate_core::task::{Family, OutputType};
use mediagate_core::{ApiError, Parameter};
use mediagate_engine::Delivered;
use serde_json::{Map, Value, json};

/// An error object with exactly the fields of Runware's error envelope.
pub fn error(e: &ApiError, base_url: &str) -> Value {
    let mut m = Map::new();
    m.insert("code".into(), Value::String(e.code.as_str().into()));
    m.insert("message".into(), Value::String(e.message.clone()));
    // Runware documents `parameter` as a string. An error about several parameters (unknown
    // ones, or width x height together) names the first here; its message names them all.
    if let Some(p) = e.parameter.as_ref().and_then(Parameter::first) {
        m.insert("parameter".into(), Value::String(p.to_string()));
    }
    if let Some(t) = &e.task_type {
        m.insert("taskType".into(), Value::String(t.clone()));
    }
    if let Some(u) = &e.task_uuid {
        m.insert("taskUUID".into(), Value::String(u.clone()));
    }
    m.insert("documentation".into(), Value::String(format!("{base_url}/docs/errors#{}", e.code.as_str())));
    Value::Object(m)
}

/// One `data` item per result, its fields named by the task type's result prefix: `imageUUID`,
/// `imageURL`… for images, `videoUUID`, `videoURL`… for video, `guideImageUUID`… for ControlNet
/// guides, and `text` for text.
pub fn result_items(task_type: &str, sent_uuid: &str, d: &Delivered, status: Option<&str>) -> Vec<Value> {
    let kind = d.prefix;
    d.items
        .iter()
        .map(|it| {
            let mut m = Map::new();
            m.insert("taskType".into(), json!(task_type));
            m.insert("taskUUID".into(), json!(sent_uuid));
            if let Some(s) = status {
                m.insert("status".into(), json!(s));
            }
            if d.family == Family::Text {
                let text = it.inline.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
                m.insert("text".into(), json!(text));
                if let Some(c) = &it.result.completion {
                    m.insert("finishReason".into(), json!(c.finish_reason));
                    if d.include_usage {
                        m.insert(
                            "usage".into(),
                            json!({"promptTokens": c.prompt_tokens, "completionTokens": c.completion_tokens,
                                   "totalTokens": c.prompt_tokens + c.completion_tokens}),
                        );
                    }
                }
                if let Some(seed) = it.result.seed {
                    m.insert("seed".into(), json!(seed));
                }
                if d.include_cost {
                    m.insert("cost".into(), json!(to_usd_f64(it.result.cost_micros)));
                }
                return Value::Object(m);
            }
            m.insert(format!("{kind}UUID"), json!(it.result.output_uuid.to_string()));
            match (d.output_type, &it.inline) {
                (OutputType::Base64Data, Some(b)) => {
                    m.insert(
                        format!("{kind}Base64Data"),
                        json!(base64::engine::general_purpose::STANDARD.encode(b)),
                    );
                }
                (OutputType::DataUri, Some(b)) => {
                    m.insert(
                        format!("{kind}DataURI"),
                        json!(format!(
                            "data:{};base64,{}",
                            it.result.content_type,
                            base64::engine::general_purpose::STANDARD.encode(b)
                        )),
                    );
                }
                _ => {
                    m.insert(format!("{kind}URL"), json!(it.url));
                }
            }
            if let Some(seed) = it.result.seed {
                m.insert("seed".into(), json!(seed));
            }
            if d.include_cost {
                m.insert("cost".into(), json!(to_usd_f64(it.result.cost_micros)));
            }
            // The task type's own result fields; never over the ones written above.
            for (k, v) in &it.result.fields {
                m.entry(k.clone()).or_insert_with(|| v.clone());
            }
            Value::Object(m)
        })
        .collect()
}

/// Webhook bodies in the Runware shape: the flat task object per result, as Runware sends.
pub struct WebhookBodies {
    /// The public base URL, for `documentation` links.
    pub base_url: String,
}

impl mediagate_engine::webhooks::WebhookRenderer for WebhookBodies {
    fn results(&self, task_type: &str, task_uuid: &str, delivered: &Delivered) -> Vec<Value> {
        result_items(task_type, task_uuid, delivered, Some("success"))
    }

    fn error(&self, e: &ApiError) -> Value {
        let mut v = error(e, &self.base_url);
        v["status"] = json!("error");
        v
    }
}

/// A catalog model as `modelSearch` lists it, with the fields the SDKs' model type requires.
pub fn listed_model(l: &mediagate_engine::search::Listing<'_>) -> Value {
    json!({
        "air": l.model.spec.air,
        "name": l.name,
        "version": l.version,
        "category": l.category,
        "type": l.model.spec.task_type.as_str(),
        "architecture": "",
        "tags": l.tags,
        "heroImage": "",
        "private": false,
        "comment": l.model.spec.description,
    })
}
