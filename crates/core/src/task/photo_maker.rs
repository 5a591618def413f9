//! `photoMaker`: new pictures of the person in 1 to 4 reference photos, from a prompt.

use super::{
    Family, Input, OutputOptions, SEED_MAX, TaskParams, check_dimensions, model_param, model_wire, output_options, output_wire, put,
};
use crate::error::{ApiError, ErrorCode};
use crate::model::ModelSpec;
use crate::param::{ParamPath, ParamReader, Shape};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The styles Runware's PhotoMaker knows.
pub const PHOTO_MAKER_STYLES: &[&str] = &[
    "No style",
    "Cinematic",
    "Disney Character",
    "Digital Art",
    "Photographic",
    "Fantasy art",
    "Neonpunk",
    "Enhance",
    "Comic book",
    "Lowpoly",
    "Line art",
];

/// A PhotoMaker request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhotoMaker {
    /// The reference photos as sent (data URI, base64, HTTPS URL or an image UUID), 1 to 4.
    pub input_images: Vec<String>,
    /// What to make of the person.
    pub positive_prompt: String,
    /// What to avoid.
    pub negative_prompt: Option<String>,
    /// One of [`PHOTO_MAKER_STYLES`].
    pub style: Option<String>,
    /// How strongly the photos are followed, 15 to 50.
    pub strength: Option<u32>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Sampling steps.
    pub steps: Option<u32>,
    /// Guidance scale.
    pub cfg_scale: Option<f64>,
    /// The sampler's scheduler, by the upstream's name.
    pub scheduler: Option<String>,
    /// CLIP layers skipped, 0 to 2.
    pub clip_skip: Option<u32>,
    /// Whether to check results for NSFW content.
    pub check_nsfw: Option<bool>,
    /// Seed of the first result; result `i` uses `seed + i`.
    pub seed: Option<u64>,
    /// How many results.
    pub number_results: u32,
    /// The AIR id of the model (a configured one: there is no built-in PhotoMaker model).
    pub model: String,
    /// Output options.
    pub output: OutputOptions,
}

impl TaskParams for PhotoMaker {
    const NAME: &'static str = "photoMaker";
    const FAMILY: Family = Family::Image;
    const DEFAULT_MODEL: Option<&'static str> = None;
    /// A 64x64 PNG as the one reference photo.
    const EXAMPLE: &'static str = r#"{"inputImages":["iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAIAAAAlC+aJAAAAT0lEQVR42u3PQQkAAAgEsEtiEvtjLCP4FgYrsEzXaxEQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQuCxxWCEP+z44TwAAAABJRU5ErkJggg=="],"positivePrompt":"a portrait of a man rwre","width":512,"height":512,"style":"Photographic","strength":20}"#;

    fn parse(r: &mut ParamReader<'_>) -> Result<Self, ApiError> {
        const PHOTOS: Shape<'_> = Shape::Array { min: 1, max: 4, items: &Shape::Str { min: 1, max: usize::MAX } };
        r.describe("inputImages", "1 to 4 photos of the person: data URIs, base64 data, HTTPS URLs or upload UUIDs.");
        let input_images = match r.raw_required("inputImages", PHOTOS) {
            Some(Value::Array(list)) if (1..=4).contains(&list.len()) => {
                let mut images = Vec::with_capacity(list.len());
                for (i, v) in list.iter().enumerate() {
                    match v.as_str() {
                        Some(s) if !s.is_empty() => images.push(s.to_string()),
                        _ => {
                            return Err(ApiError::new(
                                ErrorCode::InvalidParameterValue,
                                format!(
                                    "Invalid value for parameter 'inputImages[{i}]': give a photo as a data URI, \
                                     base64 data, an HTTPS URL or the imageUUID of an upload."
                                ),
                            )
                            .with_parameter(ParamPath::key("inputImages").index(i)));
                        }
                    }
                }
                images
            }
            Some(Value::Array(list)) => {
                return Err(r.invalid("inputImages", format!("it must hold 1 to 4 photos; it holds {}.", list.len())));
            }
            Some(_) => return Err(r.invalid("inputImages", "it must be an array of 1 to 4 photos.")),
            None => {
                return Err(r.missing("inputImages", "give 1 to 4 photos of the person, as an array"));
            }
        };
        let positive_prompt =
            r.string("positivePrompt", 2, 3000, "describe the picture to make (2 to 3000 characters)")?;
        let negative_prompt = r.opt_string("negativePrompt", 2, 3000)?;
        let style = r.opt_enum("style", PHOTO_MAKER_STYLES)?.map(str::to_string);
        let strength = r.opt_int("strength", 15, 50)?.map(|n| n as u32);
        let width = r.opt_int_checked_later("width")?.unwrap_or(1024);
        let height = r.opt_int_checked_later("height")?.unwrap_or(1024);
        let steps = r.opt_int_checked_later("steps")?;
        let cfg_scale = r.opt_f64("CFGScale", 0.0, 50.0)?;
        let scheduler = r.opt_string("scheduler", 1, 64)?;
        let clip_skip = r.opt_int("clipSkip", 0, 2)?.map(|n| n as u32);
        let check_nsfw = r.opt_bool("checkNSFW")?;
        let seed = r.opt_int("seed", 1, SEED_MAX as i64)?.map(|s| s as u64);
        let number_results = r.opt_int_checked_later("numberResults")?.unwrap_or(1);
        let model = model_param(r, Self::DEFAULT_MODEL)?;
        let output = output_options(r)?;
        Ok(PhotoMaker {
            input_images,
            positive_prompt,
            negative_prompt,
            style,
            strength,
            width,
            height,
            steps,
            cfg_scale,
            scheduler,
            clip_skip,
            check_nsfw,
            seed,
            number_results,
            model,
            output,
        })
    }

    fn to_wire(&self) -> Map<String, Value> {
        let mut w = Map::new();
        w.insert("inputImages".into(), self.input_images.clone().into());
        w.insert("positivePrompt".into(), self.positive_prompt.clone().into());
        put(&mut w, "negativePrompt", self.negative_prompt.clone());
        put(&mut w, "style", self.style.clone());
        put(&mut w, "strength", self.strength);
        w.insert("width".into(), self.width.into());
        w.insert("height".into(), self.height.into());
        put(&mut w, "steps", self.steps);
        put(&mut w, "CFGScale", self.cfg_scale);
        put(&mut w, "scheduler", self.scheduler.clone());
        put(&mut w, "clipSkip", self.clip_skip);
        put(&mut w, "checkNSFW", self.check_nsfw);
        put(&mut w, "seed", self.seed);
        w.insert("numberResults".into(), self.number_results.into());
        model_wire(&mut w, &self.model);
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

    fn inputs(&self) -> Vec<Input<'_>> {
        let path = ParamPath::key("inputImages");
        self.input_images.iter().enumerate().map(|(i, image)| Input::image(image, path.index(i))).collect()
    }

    fn inputs_mut(&mut self) -> Vec<&mut String> {
        self.input_images.iter_mut().collect()
    }
}
