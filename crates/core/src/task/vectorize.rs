//! `vectorize`: a raster image traced into an SVG.

use super::{Family, Input, OutputOptions, TaskParams, Work, model_param, output_wire};
use crate::error::{ApiError, ErrorCode};
use crate::model::{ModelSpec, VTRACER_AIR};
use crate::param::{ParamPath, ParamReader, Shape};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A vectorize request: `inputs.image` traced into an SVG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vectorize {
    /// The image to trace, as sent (data URI, base64, HTTPS URL or an image UUID).
    pub input_image: String,
    /// The AIR id of the model.
    pub model: String,
    /// Output options (`format` is unused: the result is always SVG).
    pub output: OutputOptions,
}

impl TaskParams for Vectorize {
    const NAME: &'static str = "vectorize";
    const FAMILY: Family = Family::Image;
    const DEFAULT_MODEL: Option<&'static str> = Some(VTRACER_AIR);
    /// A 64x64 PNG.
    const EXAMPLE: &'static str = r#"{"inputs":{"image":"iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAIAAAAlC+aJAAAAT0lEQVR42u3PQQkAAAgEsEtiEvtjLCP4FgYrsEzXaxEQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQuCxxWCEP+z44TwAAAABJRU5ErkJggg=="}}"#;

    fn parse(r: &mut ParamReader<'_>) -> Result<Self, ApiError> {
        let image_path = ParamPath::key("inputs").child("image");
        let missing = || {
            ApiError::new(
                ErrorCode::MissingParameter,
                "Missing required parameter 'inputs.image': give the image to vectorize as \
                 {\"inputs\": {\"image\": ...}}: a data URI, base64 data, an HTTPS URL or the imageUUID \
                 of an upload or output.",
            )
            .with_parameter(image_path.clone())
        };
        let input_image = match r.raw_required("inputs", Shape::Object) {
            None => return Err(missing()),
            Some(Value::Object(inputs)) => {
                let mut ir = ParamReader::new(inputs, ParamPath::key("inputs"));
                if inputs.get("image").is_none_or(Value::is_null) {
                    return Err(missing());
                }
                let image = ir.string("image", 1, usize::MAX, "give the image to vectorize")?;
                ir.finish()?;
                image
            }
            Some(_) => {
                return Err(r.invalid("inputs", "it must be an object such as {\"image\": \"<imageUUID>\"}."));
            }
        };
        let model = model_param(r, Self::DEFAULT_MODEL)?;
        let output = super::file_output_options(r)?;
        // SVG is the only format a vectorization has.
        r.opt_enum("outputFormat", &["SVG"])?;
        Ok(Vectorize { input_image, model, output })
    }

    fn to_wire(&self) -> Map<String, Value> {
        let mut w = Map::new();
        w.insert("inputs".into(), serde_json::json!({"image": self.input_image}));
        super::model_wire(&mut w, &self.model);
        output_wire(&mut w, &self.output, false);
        w.insert("outputFormat".into(), "SVG".into());
        w
    }

    fn validate(&self, _model: &ModelSpec) -> Result<(), ApiError> {
        Ok(())
    }

    model_and_output!();

    fn inputs(&self) -> Vec<Input<'_>> {
        vec![Input::image(&self.input_image, ParamPath::key("inputs").child("image"))]
    }

    fn inputs_mut(&mut self) -> Vec<&mut String> {
        vec![&mut self.input_image]
    }

    /// Tracing works on every pixel of the input: it must fit the model's pixel budget, and it is
    /// what a local model's price is measured by.
    fn work_with_inputs(&self, model: &ModelSpec, sizes: &[(u32, u32)]) -> Result<Option<Work>, ApiError> {
        let (w, h) = sizes.first().copied().unwrap_or((0, 0));
        let pixels = u64::from(w) * u64::from(h);
        if pixels > model.bounds.max_pixels {
            return Err(ApiError::new(
                ErrorCode::InvalidParameterValue,
                format!(
                    "Invalid value for parameter 'inputs.image': the {w}x{h} image has {pixels} pixels; model {} \
                     traces at most {}. Send a smaller image.",
                    model.air, model.bounds.max_pixels
                ),
            )
            .with_parameter(ParamPath::key("inputs").child("image")));
        }
        Ok(Some(Work { amount: pixels, what: format!("{w}x{h} input"), smaller: "send a smaller image" }))
    }
}
