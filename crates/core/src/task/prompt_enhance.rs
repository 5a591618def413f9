//! `promptEnhance`: a short prompt rewritten into richer ones by a language model.

use super::{Family, OutputOptions, TaskParams, model_param};
use crate::error::ApiError;
use crate::model::ModelSpec;
use crate::param::ParamReader;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A prompt-enhancement request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptEnhance {
    /// The prompt to enhance (1 to 300 characters).
    pub prompt: String,
    /// The longest enhanced prompt wanted, in tokens (12 to 400).
    pub prompt_max_length: u32,
    /// How many enhanced versions (1 to 5), each its own result.
    pub prompt_versions: u32,
    /// The AIR id of the model (a configured one: there is no built-in language model).
    pub model: String,
    /// Output options (only `includeCost` applies: the text is in the result).
    pub output: OutputOptions,
}

impl TaskParams for PromptEnhance {
    const NAME: &'static str = "promptEnhance";
    const FAMILY: Family = Family::Text;
    const DEFAULT_MODEL: Option<&'static str> = None;
    const EXAMPLE: &'static str = r#"{"prompt":"a dog","promptMaxLength":64,"promptVersions":2}"#;

    fn parse(r: &mut ParamReader<'_>) -> Result<Self, ApiError> {
        let prompt = r.string("prompt", 1, 300, "give the prompt to enhance (1 to 300 characters)")?;
        let prompt_max_length = r.int(
            "promptMaxLength",
            12,
            400,
            "give the longest enhanced prompt wanted, in tokens (12 to 400; 100 tokens are about 75 words)",
        )? as u32;
        let prompt_versions = r.opt_int("promptVersions", 1, 5)?.map_or(1, |n| n as u32);
        let model = model_param(r, Self::DEFAULT_MODEL)?;
        let output = OutputOptions { include_cost: r.opt_bool("includeCost")?.unwrap_or(false), ..Default::default() };
        Ok(PromptEnhance { prompt, prompt_max_length, prompt_versions, model, output })
    }

    fn to_wire(&self) -> Map<String, Value> {
        let mut w = Map::new();
        w.insert("prompt".into(), self.prompt.clone().into());
        w.insert("promptMaxLength".into(), self.prompt_max_length.into());
        w.insert("promptVersions".into(), self.prompt_versions.into());
        super::model_wire(&mut w, &self.model);
        w.insert("includeCost".into(), self.output.include_cost.into());
        w
    }

    fn validate(&self, _model: &ModelSpec) -> Result<(), ApiError> {
        Ok(())
    }

    model_and_output!();

    fn result_count(&self) -> u32 {
        self.prompt_versions
    }
}
