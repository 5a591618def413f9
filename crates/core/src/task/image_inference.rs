//! `imageInference`: text to image.

use super::{
    Family, OutputOptions, TaskParams, check_dimensions, model_param,
    output_options, output_wire, put,
};
use serde_json::{Map, Value};
use crate::error::ApiError;
use crate::model::{ModelSpec, PROCEDURAL_AIR};
use crate::param::ParamReader;
use serde::{Deserialize, Serialize};

/// A text-to-image request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInference {
    /// What to draw.
    pub positive_prompt: String,
    /// What to avoid.
    pub negative_prompt: Option<String>,
    /// The AIR id of the model.
    pub model: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Sampling steps (models that ignore it still validate it).
    pub steps: Option<u32>,
    /// Classifier-free guidance scale.
    pub cfg_scale: Option<f64>,
    /// Seed of the first result; random when absent. Result `i` uses `seed + i`.
    pub seed: Option<u64>,
    /// How many results, each its own item.
    pub number_results: u32,
    /// Output options.
    pub output: OutputOptions,
}

impl TaskParams for ImageInference {
    const NAME: &'static str = "imageInference";
    const FAMILY: Family = Family::Image;
    const DEFAULT_MODEL: Option<&'static str> = Some(PROCEDURAL_AIR);
    const EXAMPLE: &'static str = r#"{"positivePrompt":"a lighthouse at dusk","width":128,"height":128}"#;

    fn parse(r: &mut ParamReader<'_>) -> Result<Self, ApiError> {
        let positive_prompt =
            r.string("positivePrompt", 2, 3000, "describe the image to generate (2 to 3000 characters)")?;
        let negative_prompt = r.opt_string("negativePrompt", 2, 3000)?;
        let model = model_param(r, Self::DEFAULT_MODEL)?;
        let width = r.opt_int_checked_later("width")?.unwrap_or(512);
        let height = r.opt_int_checked_later("height")?.unwrap_or(512);
        let steps = r.opt_int_checked_later("steps")?;
        let cfg_scale = r.opt_f64("CFGScale", 0.0, 50.0)?;
        let seed = super::seed_param(r)?;
        let number_results = r.opt_int_checked_later("numberResults")?.unwrap_or(1);
        let output = output_options(r)?;
        Ok(ImageInference {
            positive_prompt,
            negative_prompt,
            model,
            width,
            height,
            steps,
            cfg_scale,
            seed,
            number_results,
            output,
        })
    }

    fn to_wire(&self) -> Map<String, Value> {
        let mut w = Map::new();
        w.insert("positivePrompt".into(), self.positive_prompt.clone().into());
        put(&mut w, "negativePrompt", self.negative_prompt.clone());
        super::model_wire(&mut w, &self.model);
        w.insert("width".into(), self.width.into());
        w.insert("height".into(), self.height.into());
        put(&mut w, "steps", self.steps);
        put(&mut w, "CFGScale", self.cfg_scale);
        put(&mut w, "seed", self.seed);
        w.insert("numberResults".into(), self.number_results.into());
        output_wire(&mut w, &self.output, true);
        w
    }

    fn validate(&self, model: &ModelSpec) -> Result<(), ApiError> {
        check_dimensions(model, self.width, self.height)?;
        super::check_steps(self.steps, model)?;
        super::check_results(self.number_results, self.seed, model)
    }

    model_and_output!();

    fn result_count(&self) -> u32 {
        self.number_results
    }

    fn seed(&self) -> Option<Option<u64>> {
        Some(self.seed)
    }

    fn work(&self) -> Option<u64> {
        Some(u64::from(self.width) * u64::from(self.height))
    }

    fn one_result(&self) -> Option<Self> {
        Some(ImageInference { number_results: 1, ..self.clone() })
    }
}
