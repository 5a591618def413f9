//! `imageInference`: text to image, and from a seed image (image-to-image, inpainting,
//! outpainting), with every optional parameter of the official SDKs.
//!
//! The module reads the parameters the local stand-in acts on itself (`seedImage`, `maskImage`,
//! `strength`, `outpaint`); the others (LoRA, ControlNet, IP-Adapters, provider settings…) are
//! read by the table in [`extras`] and sent on to providers that act on them.

mod extras;

pub use extras::EXTRAS;

use super::extras::{self as table};
use super::{
    Family, Input, OutputOptions, TaskParams, Work, check_dimensions, model_param, output_options,
    output_wire, put,
};
use crate::error::{ApiError, ErrorCode};
use crate::model::{ModelSpec, PROCEDURAL_AIR};
use crate::param::{ParamPath, ParamReader, Shape};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Borders added around the seed image, in pixels, and how softly the new area meets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Outpaint {
    /// Pixels added above.
    pub top: u32,
    /// Pixels added on the right.
    pub right: u32,
    /// Pixels added below.
    pub bottom: u32,
    /// Pixels added on the left.
    pub left: u32,
    /// Width of the blend between the seed image and the new area, 0 to 32 pixels.
    pub blur: u32,
}

/// The largest border `outpaint` adds on one side.
pub const OUTPAINT_MAX: i64 = 2048;

/// Runware's default `strength` when a seed image is sent without one.
pub const DEFAULT_STRENGTH: f64 = 0.8;

/// An image request. (`Default` is an empty request, for building one in code.)
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
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
    /// The image to start from (image-to-image; with a mask, inpainting; with `outpaint`,
    /// outpainting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_image: Option<String>,
    /// White where the seed image is repainted, black where it is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_image: Option<String>,
    /// How far the result moves from the seed image: 0 keeps it, 1 ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strength: Option<f64>,
    /// Borders to add around the seed image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outpaint: Option<Outpaint>,
    /// The optional parameters read by [`EXTRAS`], as they came.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extras: BTreeMap<String, Value>,
}

impl ImageInference {
    /// The strength an image-to-image request runs with.
    pub fn strength_or_default(&self) -> f64 {
        self.strength.unwrap_or(DEFAULT_STRENGTH)
    }

    /// Whether the images come in the newer `inputs` object.
    fn has_inputs(&self) -> bool {
        self.extras.contains_key("inputs")
    }
}

fn read_outpaint(r: &mut ParamReader<'_>) -> Result<Option<Outpaint>, ApiError> {
    r.describe("outpaint", "Borders to add around seedImage (which it needs): width and height must then be the seed image's size with the borders.");
    let Some(v) = r.raw_as("outpaint", Shape::Object) else { return Ok(None) };
    let base = r.path("outpaint");
    let Value::Object(o) = v else {
        return Err(ApiError::new(
            ErrorCode::InvalidParameterType,
            format!("Invalid type for parameter '{base}': expected an object with top, right, bottom, left and blur."),
        )
        .with_parameter(base));
    };
    let mut o = ParamReader::new(o, base.clone());
    let side = |o: &mut ParamReader<'_>, key: &'static str| -> Result<u32, ApiError> {
        o.describe(key, "Pixels, a multiple of 64.");
        let v = o.opt_int(key, 0, OUTPAINT_MAX)?.unwrap_or(0) as u32;
        if !v.is_multiple_of(64) {
            return Err(o.invalid(key, format!("{v} is not a multiple of 64; outpaint borders grow in steps of 64 pixels.")));
        }
        Ok(v)
    };
    let p = Outpaint {
        top: side(&mut o, "top")?,
        right: side(&mut o, "right")?,
        bottom: side(&mut o, "bottom")?,
        left: side(&mut o, "left")?,
        blur: o.opt_int("blur", 0, 32)?.unwrap_or(0) as u32,
    };
    o.finish()?;
    if p.top + p.right + p.bottom + p.left == 0 {
        return Err(ApiError::new(
            ErrorCode::InvalidParameterValue,
            format!("Invalid value for parameter '{base}': every border is 0; give top, right, bottom or left in pixels (multiples of 64)."),
        )
        .with_parameter(base));
    }
    Ok(Some(p))
}

/// `name` needs `needs`: refused when it came without it.
fn requires(name: &str, needs: &str, why: &str) -> ApiError {
    ApiError::new(
        ErrorCode::MissingParameter,
        format!("Missing required parameter '{needs}': '{name}' {why}; send {needs} too, or remove {name}."),
    )
    .with_parameter(ParamPath::key(needs))
}

impl TaskParams for ImageInference {
    const NAME: &'static str = "imageInference";
    const FAMILY: Family = Family::Image;
    const DEFAULT_MODEL: Option<&'static str> = Some(PROCEDURAL_AIR);
    const EXAMPLE: &'static str = r#"{"positivePrompt":"a lighthouse at dusk","width":128,"height":128}"#;
    /// Outpainting a 64x64 PNG (the `outpaint` object's fields).
    const EXAMPLES: &'static [&'static str] = &[r#"{"positivePrompt":"a lighthouse at dusk","width":128,"height":128,"seedImage":"iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAIAAAAlC+aJAAAAT0lEQVR42u3PQQkAAAgEsEtiEvtjLCP4FgYrsEzXaxEQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQuCxxWCEP+z44TwAAAABJRU5ErkJggg==","strength":0.6,"outpaint":{"right":64,"bottom":64,"blur":8}}"#];

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
        for key in ["strength", "maskImage"] {
            r.describe(key, "Needs seedImage (or inputs).");
        }
        r.describe("maskMargin", "Needs maskImage (or inputs).");
        let seed_image = r.opt_string("seedImage", 1, usize::MAX)?;
        let mask_image = r.opt_string("maskImage", 1, usize::MAX)?;
        let strength = r.opt_f64("strength", 0.0, 1.0)?;
        let outpaint = read_outpaint(r)?;
        let extras = table::read(r, EXTRAS)?;
        let request = ImageInference {
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
            seed_image,
            mask_image,
            strength,
            outpaint,
            extras,
        };
        // What needs a seed image (or the `inputs` object that carries one) to act on.
        let seeded = request.seed_image.is_some() || request.has_inputs();
        for (name, present, why) in [
            ("strength", request.strength.is_some(), "sets how far the result moves from a seed image"),
            ("maskImage", request.mask_image.is_some(), "marks the part of a seed image to repaint"),
            ("outpaint", request.outpaint.is_some(), "adds borders around a seed image"),
        ] {
            if present && !seeded {
                return Err(requires(name, "seedImage", why));
            }
        }
        if request.extras.contains_key("maskMargin") && request.mask_image.is_none() && !request.has_inputs() {
            return Err(requires("maskMargin", "maskImage", "adds context around a mask's area"));
        }
        Ok(request)
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
        put(&mut w, "seedImage", self.seed_image.clone());
        put(&mut w, "maskImage", self.mask_image.clone());
        put(&mut w, "strength", self.strength);
        if let Some(p) = self.outpaint {
            let mut o = Map::new();
            for (k, v) in [("top", p.top), ("right", p.right), ("bottom", p.bottom), ("left", p.left), ("blur", p.blur)] {
                o.insert(k.into(), v.into());
            }
            w.insert("outpaint".into(), Value::Object(o));
        }
        table::write(&mut w, &self.extras);
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

    fn features(&self) -> Vec<(&'static str, ParamPath)> {
        let typed = [
            ("seedImage", self.seed_image.is_some()),
            ("maskImage", self.mask_image.is_some()),
            ("outpaint", self.outpaint.is_some()),
        ];
        typed
            .into_iter()
            .filter(|(_, present)| *present)
            .map(|(name, _)| (name, ParamPath::key(name)))
            .chain(table::features(EXTRAS, &self.extras))
            .collect()
    }

    fn inputs(&self) -> Vec<Input<'_>> {
        let mut inputs = Vec::new();
        if let Some(s) = &self.seed_image {
            inputs.push(Input::image(s, ParamPath::key("seedImage")));
        }
        if let Some(m) = &self.mask_image {
            inputs.push(Input::image(m, ParamPath::key("maskImage")));
        }
        inputs.extend(table::images(EXTRAS, &self.extras));
        inputs
    }

    fn inputs_mut(&mut self) -> Vec<&mut String> {
        self.seed_image
            .iter_mut()
            .chain(self.mask_image.iter_mut())
            .chain(table::images_mut(EXTRAS, &mut self.extras))
            .collect()
    }

    /// An outpainted result is the seed image with its borders: `width` and `height` must be
    /// exactly that, as Runware requires.
    fn work_with_inputs(&self, _model: &ModelSpec, sizes: &[(u32, u32)]) -> Result<Option<Work>, ApiError> {
        let (Some(p), Some(_), Some(&(w, h))) = (self.outpaint, &self.seed_image, sizes.first()) else {
            return Ok(None);
        };
        let (want_w, want_h) = (w + p.left + p.right, h + p.top + p.bottom);
        if (self.width, self.height) != (want_w, want_h) {
            return Err(ApiError::new(
                ErrorCode::InvalidParameterValue,
                format!(
                    "Invalid value for parameters 'width' and 'height': an outpainted image is the seed image \
                     ({w}x{h}) with its borders (left {}, right {}, top {}, bottom {}), so send width {want_w} and \
                     height {want_h}; this task asked for {}x{}.",
                    p.left, p.right, p.top, p.bottom, self.width, self.height
                ),
            )
            .with_parameter(vec![ParamPath::key("width"), ParamPath::key("height")]));
        }
        Ok(None)
    }
}

