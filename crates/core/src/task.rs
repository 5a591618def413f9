//! Canonical task types, requests and results, independent of any wire dialect.

use crate::error::{ApiError, ErrorCode};
use crate::model::ModelSpec;
use crate::param::ParamPath;
use serde::{Deserialize, Serialize};

/// The task types mediagate serves. Dialects map their own names onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskType {
    /// Text to image.
    #[serde(rename = "imageInference")]
    ImageInference,
    /// Image upscaling.
    #[serde(rename = "upscale")]
    Upscale,
    /// Text or image to video.
    #[serde(rename = "videoInference")]
    VideoInference,
}

impl TaskType {
    /// The canonical (current Runware) name.
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskType::ImageInference => "imageInference",
            TaskType::Upscale => "upscale",
            TaskType::VideoInference => "videoInference",
        }
    }

    /// Parses a canonical name or a legacy alias (`imageUpscale`).
    pub fn parse(name: &str) -> Option<TaskType> {
        match name {
            "imageInference" => Some(TaskType::ImageInference),
            "upscale" | "imageUpscale" => Some(TaskType::Upscale),
            "videoInference" => Some(TaskType::VideoInference),
            _ => None,
        }
    }
}

/// How a result's bytes are returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputType {
    /// A URL served by mediagate until the output's time to live expires.
    #[serde(rename = "URL")]
    Url,
    /// Plain base64 of the file.
    #[serde(rename = "base64Data")]
    Base64Data,
    /// A `data:` URI.
    #[serde(rename = "dataURI")]
    DataUri,
}

impl OutputType {
    /// Wire names, in documentation order.
    pub const NAMES: &'static [&'static str] = &["URL", "base64Data", "dataURI"];

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "URL" => Some(OutputType::Url),
            "base64Data" => Some(OutputType::Base64Data),
            "dataURI" => Some(OutputType::DataUri),
            _ => None,
        }
    }
}

/// The file format of an image result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImageFormat {
    /// PNG (lossless).
    #[serde(rename = "PNG")]
    Png,
    /// JPEG, quality from `outputQuality`.
    #[serde(rename = "JPG")]
    Jpg,
    /// WebP (lossless encoder).
    #[serde(rename = "WEBP")]
    Webp,
}

impl ImageFormat {
    /// Wire names, in documentation order.
    pub const NAMES: &'static [&'static str] = &["PNG", "JPG", "WEBP"];

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PNG" => Some(ImageFormat::Png),
            "JPG" => Some(ImageFormat::Jpg),
            "WEBP" => Some(ImageFormat::Webp),
            _ => None,
        }
    }

    /// The MIME type of files in this format.
    pub const fn content_type(self) -> &'static str {
        match self {
            ImageFormat::Png => "image/png",
            ImageFormat::Jpg => "image/jpeg",
            ImageFormat::Webp => "image/webp",
        }
    }

    /// The file extension used in output URLs.
    pub const fn extension(self) -> &'static str {
        match self {
            ImageFormat::Png => "png",
            ImageFormat::Jpg => "jpg",
            ImageFormat::Webp => "webp",
        }
    }
}

/// The container of a video result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VideoFormat {
    /// MP4 (H.264).
    #[serde(rename = "MP4")]
    Mp4,
    /// WebM (VP8).
    #[serde(rename = "WEBM")]
    Webm,
}

impl VideoFormat {
    /// Wire names.
    pub const NAMES: &'static [&'static str] = &["MP4", "WEBM"];

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "MP4" => Some(VideoFormat::Mp4),
            "WEBM" => Some(VideoFormat::Webm),
            _ => None,
        }
    }
}

/// Output options shared by every task that produces files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputOptions {
    /// How the result is returned.
    pub output_type: OutputType,
    /// The file format.
    pub format: ImageFormat,
    /// Compression quality, 20..=99 (JPG only; PNG and WEBP are lossless).
    pub quality: u8,
    /// Seconds the stored output lives; `None` means the server default.
    pub ttl_secs: Option<u64>,
    /// Whether to add `cost` to each result.
    pub include_cost: bool,
}

impl Default for OutputOptions {
    fn default() -> Self {
        OutputOptions {
            output_type: OutputType::Url,
            format: ImageFormat::Png,
            quality: 95,
            ttl_secs: None,
            include_cost: false,
        }
    }
}

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

impl ImageInference {
    /// Checks the request against the model's declared bounds.
    pub fn validate(&self, model: &ModelSpec) -> Result<(), ApiError> {
        let b = &model.bounds;
        check_dimensions(model, self.width, self.height)?;
        if let Some(s) = self.steps
            && s > b.steps_max
        {
            return Err(invalid(
                "steps",
                format!(
                    "{s} is out of range for model {}; it must be between 1 and {}.",
                    model.air, b.steps_max
                ),
            ));
        }
        if self.number_results > b.max_number_results {
            return Err(invalid(
                "numberResults",
                format!(
                    "{} is out of range for model {}; it must be between 1 and {}.",
                    self.number_results, model.air, b.max_number_results
                ),
            ));
        }
        Ok(())
    }
}

/// An upscaling request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upscale {
    /// The input image reference as sent (data URI, raw base64 or an output/upload UUID).
    pub input_image: String,
    /// The AIR id of the model.
    pub model: String,
    /// Scale factor.
    pub upscale_factor: u32,
    /// Output options.
    pub output: OutputOptions,
}

impl Upscale {
    /// Checks the request against the model's declared bounds.
    pub fn validate(&self, model: &ModelSpec) -> Result<(), ApiError> {
        let b = &model.bounds;
        if self.upscale_factor < b.upscale_factor_min || self.upscale_factor > b.upscale_factor_max {
            return Err(invalid(
                "upscaleFactor",
                format!(
                    "{} is out of range for model {}; it must be between {} and {}.",
                    self.upscale_factor, model.air, b.upscale_factor_min, b.upscale_factor_max
                ),
            ));
        }
        Ok(())
    }
}

/// A video request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoInference {
    /// What to show.
    pub positive_prompt: String,
    /// The AIR id of the model.
    pub model: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Length in seconds.
    pub duration_secs: u32,
    /// Frames per second.
    pub fps: u32,
    /// Seed; random when absent.
    pub seed: Option<u64>,
    /// An image to start from (asset reference as sent), if any.
    pub first_frame: Option<String>,
    /// The container.
    pub video_format: VideoFormat,
    /// Output options (`format` is unused for video).
    pub output: OutputOptions,
}

impl VideoInference {
    /// Checks the request against the model's declared bounds.
    pub fn validate(&self, model: &ModelSpec) -> Result<(), ApiError> {
        let b = &model.bounds;
        check_dimensions(model, self.width, self.height)?;
        if self.duration_secs < 1 || self.duration_secs > b.duration_max_secs {
            return Err(invalid(
                "duration",
                format!(
                    "{} is out of range for model {}; it must be between 1 and {} seconds.",
                    self.duration_secs, model.air, b.duration_max_secs
                ),
            ));
        }
        if self.fps < 1 || self.fps > b.fps_max {
            return Err(invalid(
                "fps",
                format!(
                    "{} is out of range for model {}; it must be between 1 and {}.",
                    self.fps, model.air, b.fps_max
                ),
            ));
        }
        Ok(())
    }
}

/// Width and height within the model's bounds and step, and their product within its budget.
fn check_dimensions(model: &ModelSpec, width: u32, height: u32) -> Result<(), ApiError> {
    let b = &model.bounds;
    for (name, v, min, max) in
        [("width", width, b.width_min, b.width_max), ("height", height, b.height_min, b.height_max)]
    {
        if v < min || v > max || v % b.dimension_step != 0 {
            return Err(invalid(
                name,
                format!(
                    "{v} is not allowed for model {}; it must be a multiple of {} between {min} and {max}.",
                    model.air, b.dimension_step
                ),
            ));
        }
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > b.max_pixels {
        return Err(ApiError::new(
            ErrorCode::InvalidParameterValue,
            format!(
                "width x height is {pixels} pixels; model {} allows at most {}. Lower width or height.",
                model.air, b.max_pixels
            ),
        )
        .with_parameter(vec![ParamPath::key("width"), ParamPath::key("height")]));
    }
    Ok(())
}

fn invalid(param: &str, detail: String) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidParameterValue,
        format!("Invalid value for parameter '{param}': {detail}"),
    )
    .with_parameter(ParamPath::key(param))
}

/// A canonical task request: what the engine runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum TaskRequest {
    /// Text to image.
    ImageInference(ImageInference),
    /// Upscale.
    Upscale(Upscale),
    /// Video.
    VideoInference(VideoInference),
}

impl TaskRequest {
    /// The canonical task type.
    pub fn task_type(&self) -> TaskType {
        match self {
            TaskRequest::ImageInference(_) => TaskType::ImageInference,
            TaskRequest::Upscale(_) => TaskType::Upscale,
            TaskRequest::VideoInference(_) => TaskType::VideoInference,
        }
    }

    /// The model's AIR id.
    pub fn model(&self) -> &str {
        match self {
            TaskRequest::ImageInference(t) => &t.model,
            TaskRequest::Upscale(t) => &t.model,
            TaskRequest::VideoInference(t) => &t.model,
        }
    }

    /// The output options.
    pub fn output(&self) -> &OutputOptions {
        match self {
            TaskRequest::ImageInference(t) => &t.output,
            TaskRequest::Upscale(t) => &t.output,
            TaskRequest::VideoInference(t) => &t.output,
        }
    }

    /// How many results the task produces (what it is charged for).
    pub fn result_count(&self) -> u32 {
        match self {
            TaskRequest::ImageInference(t) => t.number_results,
            TaskRequest::Upscale(_) | TaskRequest::VideoInference(_) => 1,
        }
    }
}

/// One result of a finished task, as stored. Dialects render it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultItem {
    /// The UUID of the stored output file.
    pub output_uuid: uuid::Uuid,
    /// The output's MIME type.
    pub content_type: String,
    /// The output's file extension.
    pub extension: String,
    /// The seed that produced it, where the task has seeds.
    pub seed: Option<u64>,
    /// What this result cost, in micro-dollars.
    pub cost_micros: i64,
}
