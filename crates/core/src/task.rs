//! Canonical task types, requests and results, independent of any wire dialect.

use crate::error::{ApiError, ErrorCode};
use crate::model::ModelSpec;
use crate::param::ParamPath;
use serde::{Deserialize, Serialize};

/// The largest seed: 2^53 - 1, the largest integer a JavaScript number (and so every official
/// SDK's JSON) holds exactly. Larger seeds would come back rounded and draw other images.
pub const SEED_MAX: u64 = (1 << 53) - 1;

/// The largest seed drawn when a task sends none. 2^32 - 1 lies within both dialects' documented
/// ranges (Runware 1 to [`SEED_MAX`] here, Runway 0 to 4294967295), so a drawn seed can always be
/// sent back.
pub const RANDOM_SEED_MAX: u64 = u32::MAX as u64;

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
            && !(1..=b.steps_max).contains(&s)
        {
            return Err(invalid("steps", in_range(1, b.steps_max, "", model)));
        }
        if !(1..=b.max_number_results).contains(&self.number_results) {
            return Err(invalid("numberResults", in_range(1, b.max_number_results, "", model)));
        }
        check_seed_span(self.seed, self.number_results)
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
        if !(b.upscale_factor_min.max(1)..=b.upscale_factor_max).contains(&self.upscale_factor) {
            return Err(invalid(
                "upscaleFactor",
                in_range(b.upscale_factor_min.max(1), b.upscale_factor_max, "", model),
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
        if !(1..=b.duration_max_secs).contains(&self.duration_secs) {
            return Err(invalid("duration", in_range(1, b.duration_max_secs, " seconds", model)));
        }
        if !(1..=b.fps_max).contains(&self.fps) {
            return Err(invalid("fps", in_range(1, b.fps_max, "", model)));
        }
        check_seed_span(self.seed, 1)
    }
}

/// Width and height within the model's bounds and step, and their product within its budget.
fn check_dimensions(model: &ModelSpec, width: u32, height: u32) -> Result<(), ApiError> {
    let b = &model.bounds;
    for (name, v, min, max) in
        [("width", width, b.width_min, b.width_max), ("height", height, b.height_min, b.height_max)]
    {
        if v < min.max(1) || v > max || v % b.dimension_step != 0 {
            return Err(invalid(
                name,
                format!(
                    "it must be a multiple of {} between {min} and {max} for model {}.",
                    b.dimension_step, model.air
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

/// The one range a model allows for a parameter. The value sent is not repeated: parsing maps
/// values beyond `u32` to its ends so that this is the only range a client is told, and echoing
/// the mapped value would misquote the request.
fn in_range(min: u32, max: u32, unit: &str, model: &ModelSpec) -> String {
    format!("it must be between {min} and {max}{unit} for model {}.", model.air)
}

/// The seeds a task uses, `seed` to `seed + results - 1`, all within [`SEED_MAX`]: a seed never
/// wraps, so every result's seed can be sent again to reproduce it. (The smallest seed is the
/// dialect's to check: Runware starts at 1, Runway at 0.)
fn check_seed_span(seed: Option<u64>, results: u32) -> Result<(), ApiError> {
    let Some(seed) = seed else { return Ok(()) };
    let extra = u64::from(results).saturating_sub(1);
    if seed.saturating_add(extra) <= SEED_MAX {
        return Ok(());
    }
    let why = format!(
        "the largest seed is {SEED_MAX}, 2^53 - 1, the largest integer every SDK language holds exactly"
    );
    let detail = if extra == 0 {
        format!("{seed} is out of range; it must be at most {SEED_MAX} ({why}).")
    } else {
        format!(
            "result i uses seed + i, so with numberResults {results} the seed must be at most {} ({why}).",
            SEED_MAX.saturating_sub(extra)
        )
    };
    Err(invalid("seed", detail))
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
