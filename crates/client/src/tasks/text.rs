//! The task types whose result is text: `promptEnhance`, `caption` and `textInference`.

use super::{Delivery, Task};
use crate::error::Error;
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

/// Token counts of a text result (`usage`, when `includeUsage` was set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// `promptTokens`.
    pub prompt_tokens: u64,
    /// `completionTokens`.
    pub completion_tokens: u64,
    /// `totalTokens`.
    pub total_tokens: u64,
}

/// One text result item.
#[derive(Debug, Clone, PartialEq)]
pub struct TextResult {
    /// `taskType`.
    pub task_type: String,
    /// `taskUUID`.
    pub task_uuid: String,
    /// `text`.
    pub text: String,
    /// `finishReason` (`textInference`).
    pub finish_reason: Option<String>,
    /// `seed` (`textInference`).
    pub seed: Option<u64>,
    /// `usage` (`textInference` with `includeUsage`).
    pub usage: Option<Usage>,
    /// `cost` in USD, when `includeCost` was set.
    pub cost: Option<f64>,
    /// Every other field of the item, verbatim.
    pub extra: Map<String, Value>,
}

impl TextResult {
    /// Reads one result item.
    pub fn from_json(v: &Value) -> Result<TextResult, Error> {
        let Value::Object(m) = v else {
            return Err(Error::Protocol(format!("a result item is not an object: {v}")));
        };
        let mut extra = m.clone();
        let missing = |k: &str| Error::Protocol(format!("a text result has no string `{k}`: {v}"));
        let mut string = |k: &str| match extra.remove(k) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let task_type = string("taskType").ok_or_else(|| missing("taskType"))?;
        let task_uuid = string("taskUUID").ok_or_else(|| missing("taskUUID"))?;
        let text = string("text").ok_or_else(|| missing("text"))?;
        let finish_reason = string("finishReason");
        let usage = extra.remove("usage").map(|u| Usage {
            prompt_tokens: u["promptTokens"].as_u64().unwrap_or(0),
            completion_tokens: u["completionTokens"].as_u64().unwrap_or(0),
            total_tokens: u["totalTokens"].as_u64().unwrap_or(0),
        });
        let seed = extra.remove("seed").and_then(|s| s.as_u64());
        let cost = extra.remove("cost").and_then(|c| c.as_f64());
        Ok(TextResult { task_type, task_uuid, text, finish_reason, seed, usage, cost, extra })
    }
}

fn texts(items: Vec<Value>) -> Result<Vec<TextResult>, Error> {
    if items.is_empty() {
        return Err(Error::Protocol("the response has no result item for the task".into()));
    }
    items.iter().map(TextResult::from_json).collect()
}

/// Implements [`Task`] for a text task whose delivery is its `delivery_method` field.
macro_rules! text_task {
    ($t:ty, $out:ty, $parse:expr) => {
        impl Task for $t {
            type Output = $out;

            fn task_type(&self) -> &str {
                self.task_type
            }

            fn task_uuid(&self) -> Uuid {
                self.task_uuid
            }

            fn to_json(&self) -> Value {
                serde_json::to_value(self).expect("a task serializes")
            }

            fn is_async(&self) -> bool {
                self.delivery_method == Some(Delivery::Async)
            }

            fn parse_output(items: Vec<Value>) -> Result<$out, Error> {
                $parse(items)
            }
        }
    };
}

/// `promptEnhance`: richer versions of a prompt, written by a language model.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptEnhance {
    task_type: &'static str,
    #[serde(rename = "taskUUID")]
    task_uuid: Uuid,
    prompt: String,
    prompt_max_length: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_versions: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    include_cost: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_method: Option<Delivery>,
}

impl PromptEnhance {
    /// A new task: `prompt` (1–300 characters), enhanced to at most `max_tokens` tokens (12–400).
    pub fn new(prompt: impl Into<String>, max_tokens: u32) -> Self {
        PromptEnhance {
            task_type: "promptEnhance",
            task_uuid: Uuid::new_v4(),
            prompt: prompt.into(),
            prompt_max_length: max_tokens,
            prompt_versions: None,
            model: None,
            include_cost: None,
            delivery_method: None,
        }
    }

    /// `promptVersions`: how many versions (1–5), each its own result.
    pub fn versions(mut self, n: u32) -> Self {
        self.prompt_versions = Some(n);
        self
    }

    /// `model`: the AIR id of a configured language model.
    pub fn model(mut self, air: impl Into<String>) -> Self {
        self.model = Some(air.into());
        self
    }

    /// `includeCost`.
    pub fn include_cost(mut self, yes: bool) -> Self {
        self.include_cost = Some(yes);
        self
    }

    /// `deliveryMethod`.
    pub fn delivery(mut self, d: Delivery) -> Self {
        self.delivery_method = Some(d);
        self
    }
}

text_task!(PromptEnhance, Vec<TextResult>, texts);

/// `caption`: a description of one or more images by a vision model.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Caption {
    task_type: &'static str,
    #[serde(rename = "taskUUID")]
    task_uuid: Uuid,
    input_images: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    include_cost: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_method: Option<Delivery>,
}

impl Caption {
    /// A new task describing `image` (a data URI, raw base64, an HTTPS URL or an image UUID).
    pub fn new(image: impl Into<String>) -> Self {
        Caption {
            task_type: "caption",
            task_uuid: Uuid::new_v4(),
            input_images: vec![image.into()],
            prompt: None,
            model: None,
            include_cost: None,
            delivery_method: None,
        }
    }

    /// Adds an image to describe with the others (up to 8).
    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.input_images.push(image.into());
        self
    }

    /// `prompt`: what to say about the images (else a general description).
    pub fn prompt(mut self, p: impl Into<String>) -> Self {
        self.prompt = Some(p.into());
        self
    }

    /// `model`: the AIR id of a configured vision model.
    pub fn model(mut self, air: impl Into<String>) -> Self {
        self.model = Some(air.into());
        self
    }

    /// `includeCost`.
    pub fn include_cost(mut self, yes: bool) -> Self {
        self.include_cost = Some(yes);
        self
    }

    /// `deliveryMethod`.
    pub fn delivery(mut self, d: Delivery) -> Self {
        self.delivery_method = Some(d);
        self
    }
}

fn first_text(items: Vec<Value>) -> Result<TextResult, Error> {
    texts(items).map(|mut t| t.remove(0))
}

text_task!(Caption, TextResult, first_text);

/// One message of a `textInference` conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// `user`, `assistant` or `system`.
    pub role: String,
    /// What it says.
    pub content: String,
}

impl Message {
    /// A message from the user.
    pub fn user(content: impl Into<String>) -> Self {
        Message { role: "user".into(), content: content.into() }
    }

    /// A reply of the model, earlier in the conversation.
    pub fn assistant(content: impl Into<String>) -> Self {
        Message { role: "assistant".into(), content: content.into() }
    }
}

/// `settings` of a `textInference`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct Settings {
    #[serde(skip_serializing_if = "Option::is_none")]
    system_prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<String>,
}

/// `textInference`: a reply of a language model to a conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TextInference {
    task_type: &'static str,
    #[serde(rename = "taskUUID")]
    task_uuid: Uuid,
    messages: Vec<Message>,
    #[serde(skip_serializing_if = "is_default")]
    settings: Settings,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    number_results: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    include_usage: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    include_cost: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_method: Option<Delivery>,
}

fn is_default(s: &Settings) -> bool {
    *s == Settings::default()
}

impl TextInference {
    /// A new task replying to `messages` (oldest first).
    pub fn new(messages: Vec<Message>) -> Self {
        TextInference {
            task_type: "textInference",
            task_uuid: Uuid::new_v4(),
            messages,
            settings: Settings::default(),
            seed: None,
            number_results: None,
            model: None,
            include_usage: None,
            include_cost: None,
            delivery_method: None,
        }
    }

    /// `settings.systemPrompt`: instructions ahead of the conversation.
    pub fn system_prompt(mut self, p: impl Into<String>) -> Self {
        self.settings.system_prompt = Some(p.into());
        self
    }

    /// `settings.maxTokens`: the longest reply.
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.settings.max_tokens = Some(n);
        self
    }

    /// `settings.temperature` (0–2).
    pub fn temperature(mut self, t: f64) -> Self {
        self.settings.temperature = Some(t);
        self
    }

    /// `settings.topP` (0–1).
    pub fn top_p(mut self, p: f64) -> Self {
        self.settings.top_p = Some(p);
        self
    }

    /// `settings.topK`.
    pub fn top_k(mut self, k: u32) -> Self {
        self.settings.top_k = Some(k);
        self
    }

    /// `settings.stopSequences` (up to 4).
    pub fn stop(mut self, sequences: Vec<String>) -> Self {
        self.settings.stop_sequences = sequences;
        self
    }

    /// `seed`: result `i` uses `seed + i`.
    pub fn seed(mut self, s: u64) -> Self {
        self.seed = Some(s);
        self
    }

    /// `numberResults`: how many replies.
    pub fn number_results(mut self, n: u32) -> Self {
        self.number_results = Some(n);
        self
    }

    /// `model`: the AIR id of a configured language model.
    pub fn model(mut self, air: impl Into<String>) -> Self {
        self.model = Some(air.into());
        self
    }

    /// `includeUsage`: add token counts to each result.
    pub fn include_usage(mut self, yes: bool) -> Self {
        self.include_usage = Some(yes);
        self
    }

    /// `includeCost`.
    pub fn include_cost(mut self, yes: bool) -> Self {
        self.include_cost = Some(yes);
        self
    }

    /// `deliveryMethod`.
    pub fn delivery(mut self, d: Delivery) -> Self {
        self.delivery_method = Some(d);
        self
    }
}

text_task!(TextInference, Vec<TextResult>, texts);
