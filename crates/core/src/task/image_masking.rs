//! `imageMasking`: a mask of the faces, hands or people a detection model finds in an image.
//! Its results are named `maskImageUUID`, `maskImageURL`… with the `detections` (boxes) found,
//! as Runware names them. No built-in model: a detector is a learned model, served by
//! `runware-upstream`.

use super::{Family, Input, OutputOptions, TaskParams, model_param, model_wire, output_options, output_wire, put};
use crate::error::ApiError;
use crate::model::ModelSpec;
use crate::param::{ParamPath, ParamReader};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A masking request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageMasking {
    /// The image to mask, as sent.
    pub input_image: String,
    /// The detection model's AIR id (Runware's `runware:35@1`… face, hand, person detectors).
    pub model: String,
    /// Smallest detection confidence kept, 0 to 1.
    pub confidence: Option<f64>,
    /// Most detections masked, 1 to 20.
    pub max_detections: Option<u32>,
    /// Pixels added around each detection, 0 to 256.
    pub mask_padding: Option<u32>,
    /// Blur of the mask's edges in pixels, 0 to 256.
    pub mask_blur: Option<u32>,
    /// Output options.
    pub output: OutputOptions,
}

impl TaskParams for ImageMasking {
    const NAME: &'static str = "imageMasking";
    const FAMILY: Family = Family::Image;
    const RESULT_PREFIX: Option<&'static str> = Some("maskImage");
    const RESULT_FIELDS: &'static [&'static str] = &["detections"];
    const DEFAULT_MODEL: Option<&'static str> = None;
    /// A 64x64 PNG.
    const EXAMPLE: &'static str = r#"{"inputImage":"iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAIAAAAlC+aJAAAAT0lEQVR42u3PQQkAAAgEsEtiEvtjLCP4FgYrsEzXaxEQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQuCxxWCEP+z44TwAAAABJRU5ErkJggg==","confidence":0.3,"maxDetections":4}"#;

    fn parse(r: &mut ParamReader<'_>) -> Result<Self, ApiError> {
        let input_image = r.string(
            "inputImage",
            1,
            usize::MAX,
            "give the image to mask as a data URI, base64 data, an HTTPS URL or an upload's imageUUID",
        )?;
        let model = model_param(r, Self::DEFAULT_MODEL)?;
        let confidence = r.opt_f64("confidence", 0.0, 1.0)?;
        let max_detections = r.opt_int("maxDetections", 1, 20)?.map(|n| n as u32);
        let mask_padding = r.opt_int("maskPadding", 0, 256)?.map(|n| n as u32);
        let mask_blur = r.opt_int("maskBlur", 0, 256)?.map(|n| n as u32);
        let output = output_options(r)?;
        Ok(ImageMasking { input_image, model, confidence, max_detections, mask_padding, mask_blur, output })
    }

    fn to_wire(&self) -> Map<String, Value> {
        let mut w = Map::new();
        w.insert("inputImage".into(), self.input_image.clone().into());
        model_wire(&mut w, &self.model);
        put(&mut w, "confidence", self.confidence);
        put(&mut w, "maxDetections", self.max_detections);
        put(&mut w, "maskPadding", self.mask_padding);
        put(&mut w, "maskBlur", self.mask_blur);
        output_wire(&mut w, &self.output, true);
        w
    }

    fn validate(&self, _model: &ModelSpec) -> Result<(), ApiError> {
        Ok(())
    }

    model_and_output!();

    fn inputs(&self) -> Vec<Input<'_>> {
        vec![Input::image(&self.input_image, ParamPath::key("inputImage"))]
    }

    fn inputs_mut(&mut self) -> Vec<&mut String> {
        vec![&mut self.input_image]
    }
}
