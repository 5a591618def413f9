//! `textInference`: a chat completion by a language model.

use super::{Family, OutputOptions, SEED_MAX, TaskParams, model_param, put};
use crate::error::{ApiError, ErrorCode};
use crate::model::ModelSpec;
use crate::param::{ParamPath, ParamReader, Shape};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The most messages one task sends.
pub const MESSAGES_MAX: usize = 256;
/// The longest message, in characters.
pub const MESSAGE_CHARS_MAX: usize = 200_000;

/// A text-inference request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextInference {
    /// The conversation so far, oldest first.
    pub messages: Vec<ChatMessage>,
    /// Instructions given ahead of the conversation.
    pub system_prompt: Option<String>,
    /// The longest reply, in tokens (the server's default when absent).
    pub max_tokens: Option<u32>,
    /// Sampling temperature, 0 to 2.
    pub temperature: Option<f64>,
    /// Nucleus sampling, 0 to 1.
    pub top_p: Option<f64>,
    /// Top-k sampling.
    pub top_k: Option<u32>,
    /// Up to 4 strings that end the reply.
    pub stop_sequences: Vec<String>,
    /// Seed of the first result; result `i` uses `seed + i`.
    pub seed: Option<u64>,
    /// How many replies, each its own result.
    pub number_results: u32,
    /// The AIR id of the model (a configured one: there is no built-in language model).
    pub model: String,
    /// Output options (`includeCost`, `includeUsage`: the text is in the result).
    pub output: OutputOptions,
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `user`, `assistant` or `system`.
    pub role: String,
    /// What it says.
    pub content: String,
}

impl TaskParams for TextInference {
    const NAME: &'static str = "textInference";
    const FAMILY: Family = Family::Text;
    const DEFAULT_MODEL: Option<&'static str> = None;
    const EXAMPLE: &'static str = r#"{"messages":[{"role":"user","content":"name a color"}],"settings":{"maxTokens":32}}"#;
    /// The sampling settings at the top level (as the JavaScript SDK sends them).
    const EXAMPLES: &'static [&'static str] = &[
        r#"{"messages":[{"role":"user","content":"name a color"}],"systemPrompt":"answer in one word","maxTokens":32,"temperature":0.5,"topP":0.9,"topK":40,"stopSequences":["."],"includeUsage":true}"#,
    ];

    fn parse(r: &mut ParamReader<'_>) -> Result<Self, ApiError> {
        let messages = messages(r)?;
        // Sampling settings in `settings` (the API's form, the Python SDK's) or at the top level
        // (the JavaScript SDK's).
        r.describe("settings", "Each setting goes here or at the top level, not both.");
        let settings = match r.raw_as("settings", Shape::Object) {
            None => None,
            Some(Value::Object(s)) => Some(s),
            Some(_) => return Err(r.invalid("settings", "it must be an object such as {\"maxTokens\": 256}.")),
        };
        let empty = Map::new();
        let mut s = ParamReader::new(settings.unwrap_or(&empty), ParamPath::key("settings"));
        let both = |key: &'static str| -> Result<(), ApiError> {
            if settings.is_some_and(|s| s.contains_key(key)) && r.peek(key).is_some() {
                return Err(r.invalid(key, format!("it is sent both here and in 'settings.{key}'; send it once.")));
            }
            Ok(())
        };
        for key in ["maxTokens", "temperature", "topP", "topK", "stopSequences", "systemPrompt"] {
            both(key)?;
        }
        let system_prompt = match r.opt_string("systemPrompt", 1, MESSAGE_CHARS_MAX)? {
            Some(p) => Some(p),
            None => s.opt_string("systemPrompt", 1, MESSAGE_CHARS_MAX)?,
        };
        let max_tokens = either(r.opt_int("maxTokens", 1, 1 << 20)?, s.opt_int("maxTokens", 1, 1 << 20)?);
        let temperature = match r.opt_f64("temperature", 0.0, 2.0)? {
            Some(t) => Some(t),
            None => s.opt_f64("temperature", 0.0, 2.0)?,
        };
        let top_p = match r.opt_f64("topP", 0.0, 1.0)? {
            Some(t) => Some(t),
            None => s.opt_f64("topP", 0.0, 1.0)?,
        };
        let top_k = either(r.opt_int("topK", 1, 1000)?, s.opt_int("topK", 1, 1000)?);
        let stop_sequences = match r.peek("stopSequences") {
            Some(_) => stops(r)?,
            None => stops(&mut s)?,
        };
        s.finish()?;
        let seed = r.opt_int("seed", 0, SEED_MAX as i64)?.map(|s| s as u64);
        let number_results = r.opt_int_checked_later("numberResults")?.unwrap_or(1);
        let model = model_param(r, Self::DEFAULT_MODEL)?;
        let include_cost = r.opt_bool("includeCost")?.unwrap_or(false);
        let include_usage = r.opt_bool("includeUsage")?.unwrap_or(false);
        let output = OutputOptions { include_cost, include_usage, ..Default::default() };
        Ok(TextInference {
            messages,
            system_prompt,
            max_tokens: max_tokens.map(|n| n as u32),
            temperature,
            top_p,
            top_k: top_k.map(|n| n as u32),
            stop_sequences,
            seed,
            number_results,
            model,
            output,
        })
    }

    fn to_wire(&self) -> Map<String, Value> {
        let mut w = Map::new();
        w.insert("messages".into(), serde_json::to_value(&self.messages).unwrap_or_default());
        let mut s = Map::new();
        put(&mut s, "systemPrompt", self.system_prompt.clone());
        put(&mut s, "maxTokens", self.max_tokens);
        put(&mut s, "temperature", self.temperature);
        put(&mut s, "topP", self.top_p);
        put(&mut s, "topK", self.top_k);
        if !self.stop_sequences.is_empty() {
            s.insert("stopSequences".into(), self.stop_sequences.clone().into());
        }
        if !s.is_empty() {
            w.insert("settings".into(), Value::Object(s));
        }
        put(&mut w, "seed", self.seed);
        w.insert("numberResults".into(), self.number_results.into());
        super::model_wire(&mut w, &self.model);
        w.insert("includeUsage".into(), self.output.include_usage.into());
        w.insert("includeCost".into(), self.output.include_cost.into());
        w
    }

    fn validate(&self, model: &ModelSpec) -> Result<(), ApiError> {
        super::check_results(self.number_results, self.seed, model)
    }

    model_and_output!();

    fn result_count(&self) -> u32 {
        self.number_results
    }

    fn seed(&self) -> Option<Option<u64>> {
        Some(self.seed)
    }
}

fn either(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    a.or(b)
}

/// `messages`: 1 to [`MESSAGES_MAX`] objects `{"role", "content"}`.
fn messages(r: &mut ParamReader<'_>) -> Result<Vec<ChatMessage>, ApiError> {
    const MESSAGES: Shape<'_> = Shape::Array { min: 1, max: MESSAGES_MAX, items: &Shape::Object };
    r.describe("messages", "The conversation, oldest first.");
    let list = match r.raw_required("messages", MESSAGES) {
        None => {
            return Err(r.missing(
                "messages",
                "give the conversation as [{\"role\": \"user\", \"content\": \"...\"}], oldest first",
            ));
        }
        Some(Value::Array(list)) if !list.is_empty() && list.len() <= MESSAGES_MAX => list,
        Some(Value::Array(list)) => {
            return Err(r.invalid(
                "messages",
                format!("it must hold 1 to {MESSAGES_MAX} messages; it holds {}.", list.len()),
            ));
        }
        Some(_) => return Err(r.invalid("messages", "it must be an array of {\"role\", \"content\"} objects.")),
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let path = ParamPath::key("messages").index(i);
        let Value::Object(m) = m else {
            return Err(ApiError::new(
                ErrorCode::InvalidParameterValue,
                format!("Invalid value for parameter '{path}': each message is an object {{\"role\", \"content\"}}."),
            )
            .with_parameter(path));
        };
        let mut mr = ParamReader::new(m, path);
        let role =
            mr.enum_value("role", &["user", "assistant", "system"], "say who wrote the message: user, assistant or system")?;
        let content = mr.string("content", 1, MESSAGE_CHARS_MAX, "give the message's text")?;
        mr.finish()?;
        out.push(ChatMessage { role: role.to_string(), content });
    }
    Ok(out)
}

/// `stopSequences`: up to 4 strings of 1 to 100 characters.
fn stops(r: &mut ParamReader<'_>) -> Result<Vec<String>, ApiError> {
    const STOPS: Shape<'_> = Shape::Array { min: 0, max: 4, items: &Shape::Str { min: 1, max: 100 } };
    match r.raw_as("stopSequences", STOPS) {
        None => Ok(Vec::new()),
        Some(Value::Array(list)) if list.len() <= 4 => list
            .iter()
            .map(|v| match v.as_str() {
                Some(s) if (1..=100).contains(&s.chars().count()) => Ok(s.to_string()),
                _ => Err(r.invalid("stopSequences", "each stop sequence is a string of 1 to 100 characters.")),
            })
            .collect(),
        Some(_) => Err(r.invalid("stopSequences", "it must be an array of at most 4 strings.")),
    }
}
