//! `imageControlNetPreProcess` and `imageMasking`: an image made from an input image (a
//! ControlNet guide; a mask of what a detector found), named `guideImage*` and `maskImage*`.

use super::{Delivery, ImageResult, OutputFormat, OutputOptions, OutputType, Task};
use crate::error::Error;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// The one result of a task whose file fields carry `prefix` (`guideImage`, `maskImage`).
fn one_image(items: Vec<Value>, prefix: &str, task: &str) -> Result<ImageResult, Error> {
    let first = items
        .first()
        .ok_or_else(|| Error::Protocol(format!("the response has no result item for the {task} task")))?;
    ImageResult::from_json_prefixed(first, prefix)
}

/// `imageControlNetPreProcess`: a ControlNet guide image (`preProcessorType`: `canny` on the
/// built-in model; `depth`, `openpose`, `lineart`… on models that serve them). The result's
/// `image_uuid` is the `guideImageUUID`, usable as a ControlNet `guideImage`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlNetPreprocess {
    task_type: &'static str,
    #[serde(rename = "taskUUID")]
    task_uuid: Uuid,
    input_image: String,
    pre_processor_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    low_threshold_canny: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    high_threshold_canny: Option<u32>,
    #[serde(flatten)]
    output: OutputOptions,
}

impl ControlNetPreprocess {
    /// A new task: `image` (a data URI, raw base64, an HTTPS URL or an upload's or output's
    /// UUID) through the preprocessor `pre_processor_type` (e.g. `canny`).
    pub fn new(image: impl Into<String>, pre_processor_type: impl Into<String>) -> Self {
        ControlNetPreprocess {
            task_type: "imageControlNetPreProcess",
            task_uuid: Uuid::new_v4(),
            input_image: image.into(),
            pre_processor_type: pre_processor_type.into(),
            model: None,
            width: None,
            height: None,
            low_threshold_canny: None,
            high_threshold_canny: None,
            output: OutputOptions::default(),
        }
    }

    /// `model`: an AIR id such as `mediagate:canny@1`.
    pub fn model(mut self, air: impl Into<String>) -> Self {
        self.model = Some(air.into());
        self
    }

    /// `width` and `height` of the guide (the input's size when unset).
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.width = Some(width);
        self.height = Some(height);
        self
    }

    /// `lowThresholdCanny` and `highThresholdCanny` (0–255; the server's defaults are 100 and 200).
    pub fn canny_thresholds(mut self, low: u32, high: u32) -> Self {
        self.low_threshold_canny = Some(low);
        self.high_threshold_canny = Some(high);
        self
    }

    common_builders!();
}

impl Task for ControlNetPreprocess {
    type Output = ImageResult;

    task_basics!();

    fn parse_output(items: Vec<Value>) -> Result<ImageResult, Error> {
        one_image(items, "guideImage", "imageControlNetPreProcess")
    }
}

/// `imageMasking`: a mask of the faces, hands or people a detection model finds (no built-in
/// model: a configured one, e.g. on `runware-upstream`). The result's `image_uuid` is the
/// `maskImageUUID`; its `extra["detections"]` lists the boxes found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageMasking {
    task_type: &'static str,
    #[serde(rename = "taskUUID")]
    task_uuid: Uuid,
    input_image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    confidence: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_detections: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mask_padding: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mask_blur: Option<u32>,
    #[serde(flatten)]
    output: OutputOptions,
}

impl ImageMasking {
    /// A new task on `image`.
    pub fn new(image: impl Into<String>) -> Self {
        ImageMasking {
            task_type: "imageMasking",
            task_uuid: Uuid::new_v4(),
            input_image: image.into(),
            model: None,
            confidence: None,
            max_detections: None,
            mask_padding: None,
            mask_blur: None,
            output: OutputOptions::default(),
        }
    }

    /// `model`: the detection model's AIR id.
    pub fn model(mut self, air: impl Into<String>) -> Self {
        self.model = Some(air.into());
        self
    }

    /// `confidence`: the smallest detection confidence kept (0–1).
    pub fn confidence(mut self, c: f64) -> Self {
        self.confidence = Some(c);
        self
    }

    /// `maxDetections`: the most detections masked (1–20).
    pub fn max_detections(mut self, n: u32) -> Self {
        self.max_detections = Some(n);
        self
    }

    /// `maskPadding` and `maskBlur` in pixels (0–256 each).
    pub fn padding_and_blur(mut self, padding: u32, blur: u32) -> Self {
        self.mask_padding = Some(padding);
        self.mask_blur = Some(blur);
        self
    }

    common_builders!();
}

impl Task for ImageMasking {
    type Output = ImageResult;

    task_basics!();

    fn parse_output(items: Vec<Value>) -> Result<ImageResult, Error> {
        one_image(items, "maskImage", "imageMasking")
    }
}
