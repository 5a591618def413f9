//! Canonical task types, requests and results, independent of any wire dialect.
//!
//! # A task type is one module
//!
//! Each task type is a module of this directory that owns its canonical parameters (a struct),
//! how they are read from a task object (Runware's parameter names are the canonical ones), their
//! validation against a model's bounds, the inputs the engine must fetch before it runs, the work
//! its price is measured by, and the family of results it produces (which decides how every
//! dialect renders them). It implements [`TaskParams`]; registering it is one line in the
//! `task_types!` list at the end of this file, which generates [`TaskType`] and
//! [`TaskRequest`] and dispatches to the module. The engine, the providers and the dialects work
//! from those, so no other file names the task type unless it serves it differently. Its OpenAPI
//! schema is recorded from its `parse` run on its examples ([`TaskParams::EXAMPLE`] and
//! [`TaskParams::EXAMPLES`], see [`crate::param::schema`]): a parameter read on a path no example
//! takes needs an example that takes it.

pub mod extras;
pub mod video_form;

pub use extras::ParamSupport;
pub use image_inference::{DEFAULT_STRENGTH, EXTRAS as IMAGE_INFERENCE_EXTRAS, Outpaint};

use crate::error::{ApiError, ErrorCode};
use crate::model::ModelSpec;
use crate::param::{ParamPath, ParamReader};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The largest seed: 2^53 - 1, the largest integer a JavaScript number (and so every official
/// SDK's JSON) holds exactly. Larger seeds would come back rounded and draw other images.
pub const SEED_MAX: u64 = (1 << 53) - 1;

/// The largest seed drawn when a task sends none. 2^32 - 1 lies within both dialects' documented
/// ranges (Runware 1 to [`SEED_MAX`] here, Runway 0 to 4294967295), so a drawn seed can always be
/// sent back.
pub const RANDOM_SEED_MAX: u64 = u32::MAX as u64;

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
    /// Whether to add token `usage` to each text result. Left out of the stored form when
    /// false, so requests recorded before it existed keep their hash.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_usage: bool,
}

impl Default for OutputOptions {
    fn default() -> Self {
        OutputOptions {
            output_type: OutputType::Url,
            format: ImageFormat::Png,
            quality: 95,
            ttl_secs: None,
            include_cost: false,
            include_usage: false,
        }
    }
}

/// Width and height within the model's bounds and step, and their product within its budget.
pub(crate) fn check_dimensions(model: &ModelSpec, width: u32, height: u32) -> Result<(), ApiError> {
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
pub(crate) fn in_range(min: u32, max: u32, unit: &str, model: &ModelSpec) -> String {
    format!("it must be between {min} and {max}{unit} for model {}.", model.air)
}

/// The seeds a task uses, `seed` to `seed + results - 1`, all within [`SEED_MAX`]: a seed never
/// wraps, so every result's seed can be sent again to reproduce it. (The smallest seed is the
/// dialect's to check: Runware starts at 1, Runway at 0.)
pub(crate) fn check_seed_span(seed: Option<u64>, results: u32) -> Result<(), ApiError> {
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

pub(crate) fn invalid(param: &str, detail: String) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidParameterValue,
        format!("Invalid value for parameter '{param}': {detail}"),
    )
    .with_parameter(ParamPath::key(param))
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
    /// How a text result's completion ended and what it used, where the provider said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion: Option<Completion>,
    /// Fields of the result beyond the file, as the provider gave them (the task type's
    /// [`TaskParams::RESULT_FIELDS`], e.g. `imageMasking`'s `detections`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub fields: Map<String, Value>,
}

/// How a language model's reply ended and the tokens it used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// `stop`, `length`, … as the provider reported it.
    pub finish_reason: String,
    /// Tokens of the prompt.
    pub prompt_tokens: u64,
    /// Tokens of the reply.
    pub completion_tokens: u64,
}

/// The kind of files a task type produces. Each dialect names a family's result fields by a table
/// (Runware: `imageURL`, `videoURL`, …), so a new task type of a known family renders with no
/// edit to any dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Family {
    /// Still images.
    Image,
    /// Video files.
    Video,
    /// Text (an enhanced prompt, a caption, a chat reply), returned in the result itself.
    Text,
    /// Audio files.
    Audio,
}

impl Family {
    /// `image`, `video`, `audio` or `text`: the prefix of Runware's result fields for files.
    pub const fn as_str(self) -> &'static str {
        match self {
            Family::Image => "image",
            Family::Video => "video",
            Family::Text => "text",
            Family::Audio => "audio",
        }
    }
}

/// A task's work measured once its inputs are read, with the words a client is told when its
/// price cannot be paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Work {
    /// Pixels (images) or pixel-frames (video).
    pub amount: u64,
    /// What was measured, e.g. `2048x2048 output`.
    pub what: String,
    /// How to ask for less, e.g. `use a smaller input or upscaleFactor`.
    pub smaller: &'static str,
}

/// The kind of media an input asset must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// A still image.
    Image,
    /// A video file.
    Video,
    /// An audio file.
    Audio,
}

/// An asset a task names, which the engine fetches, checks and hands to the provider (in the
/// order [`TaskParams::inputs`] lists them) before the task runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Input<'a> {
    /// The reference as sent: a data URI, base64, an HTTPS URL or a stored asset's UUID.
    pub reference: &'a str,
    /// Where it was sent, for error objects.
    pub param: ParamPath,
    /// What it must be.
    pub kind: MediaKind,
}

impl<'a> Input<'a> {
    /// An image input.
    pub fn image(reference: &'a str, param: ParamPath) -> Self {
        Input { reference, param, kind: MediaKind::Image }
    }
}

/// What a task type's module implements. The constants and [`parse`](TaskParams::parse)
/// describe the type; the methods answer for one request of it.
pub trait TaskParams: Sized + Clone {
    /// The canonical (current Runware) name.
    const NAME: &'static str;
    /// Older names accepted for it (Runware's legacy names).
    const ALIASES: &'static [&'static str] = &[];
    /// The kind of files it produces.
    const FAMILY: Family;
    /// The prefix of its result fields when it is not the family's (`guideImage` gives
    /// `guideImageUUID`, `guideImageURL`…).
    const RESULT_PREFIX: Option<&'static str> = None;
    /// Fields of a result beyond its file that are kept from the provider's answer and shown
    /// (`imageMasking`'s `detections`).
    const RESULT_FIELDS: &'static [&'static str] = &[];
    /// The built-in model used when a task names none. Task types that need a real model have
    /// none: the server's catalog then decides (see the engine's catalog).
    const DEFAULT_MODEL: Option<&'static str>;
    /// Whether it can only run asynchronously (too slow for a request to wait for).
    const ASYNC_ONLY: bool = false;
    /// A small valid task object (parameters only, no `taskType` or `taskUUID`) that the default
    /// model serves: the registry test runs every task type with it.
    const EXAMPLE: &'static str;
    /// More valid task objects (parameters only, like [`TaskParams::EXAMPLE`]) that take
    /// [`TaskParams::parse`] down its other paths: another form of an input, an optional object
    /// with fields of its own. The OpenAPI schema of the task type is recorded from what the
    /// parser reads for each example (see [`crate::param::schema`]), so a parameter read only on
    /// a path that no example takes is missing from it; the registry test parses every one.
    const EXAMPLES: &'static [&'static str] = &[];

    /// Reads the parameters from a task object, by their canonical names. Every key it does not
    /// read is refused as unknown afterwards.
    fn parse(r: &mut ParamReader<'_>) -> Result<Self, ApiError>;
    /// The parameters as a task object by their canonical names (without `taskType` and
    /// `taskUUID`): what [`TaskParams::parse`] reads back into the same request. Used to show a
    /// stored task (`getTaskDetails`) and to forward it to another Runware-dialect server.
    fn to_wire(&self) -> Map<String, Value>;
    /// Checks the request against the model's declared bounds.
    fn validate(&self, model: &ModelSpec) -> Result<(), ApiError>;
    /// The AIR id of the model (empty until the engine fills in the default).
    fn model(&self) -> &str;
    /// The same, to fill in the default.
    fn model_mut(&mut self) -> &mut String;
    /// The output options.
    fn output(&self) -> &OutputOptions;
    /// How many results the task produces (what it is charged for).
    fn result_count(&self) -> u32 {
        1
    }
    /// `Some(seed as sent)` for task types whose results are seeded (one seed per result, drawn
    /// when absent); `None` for the others.
    fn seed(&self) -> Option<Option<u64>> {
        None
    }
    /// The size of the work as far as the request alone says (pixels, pixel-frames): local models
    /// price by it. `None` when it is not measured.
    fn work(&self) -> Option<u64> {
        None
    }
    /// The work once the inputs' sizes are known (`sizes[i]` is input `i`'s width and height),
    /// refusing inputs the model cannot take; `None` keeps the price the task was admitted at.
    fn work_with_inputs(&self, _model: &ModelSpec, _sizes: &[(u32, u32)]) -> Result<Option<Work>, ApiError> {
        Ok(None)
    }
    /// The assets to fetch before the task runs.
    fn inputs(&self) -> Vec<Input<'_>> {
        Vec::new()
    }
    /// The same references, to replace (by stored asset UUIDs) or elide (in history records).
    fn inputs_mut(&mut self) -> Vec<&mut String> {
        Vec::new()
    }
    /// The same request with one result, for task types whose results can be made (and
    /// delivered) one at a time; `None` runs the task in one piece.
    fn one_result(&self) -> Option<Self> {
        None
    }
    /// The kind of files this request produces: the task type's, unless one of its forms makes
    /// another (an `upscale` of `inputs.video` makes a video).
    fn family(&self) -> Family {
        Self::FAMILY
    }
    /// The prefix of this request's result fields (see [`TaskParams::RESULT_PREFIX`]).
    fn result_prefix(&self) -> &'static str {
        match Self::RESULT_PREFIX {
            Some(p) if self.family() == Self::FAMILY => p,
            _ => self.family().as_str(),
        }
    }
    /// Whether this request runs only asynchronously: the task type's rule, unless one of its
    /// forms is slower (a video form).
    fn async_only(&self) -> bool {
        Self::ASYNC_ONLY
    }
    /// The optional parameters present that a provider must act on (see
    /// [`extras::Role::Feature`]), by name, with where they were sent: a model whose providers
    /// do not act on one refuses the task.
    fn features(&self) -> Vec<(&'static str, ParamPath)> {
        Vec::new()
    }
}

/// The [`TaskParams`] accessors of a params struct with `model` and `output` fields (every task
/// type's).
macro_rules! model_and_output {
    () => {
        fn model(&self) -> &str {
            &self.model
        }

        fn model_mut(&mut self) -> &mut String {
            &mut self.model
        }

        fn output(&self) -> &OutputOptions {
            &self.output
        }
    };
}

/// The [`TaskParams`] methods of an image task type with a video form in an optional `video`
/// field ([`video_form::VideoForm`]): with one, it makes a video, runs async only, and is the
/// `inputs.video` feature.
macro_rules! video_form_methods {
    () => {
        fn family(&self) -> Family {
            if self.video.is_some() { Family::Video } else { Self::FAMILY }
        }

        fn async_only(&self) -> bool {
            self.video.is_some()
        }

        fn features(&self) -> Vec<(&'static str, ParamPath)> {
            self.video.as_ref().map(|_| VideoForm::feature()).into_iter().collect()
        }
    };
}

/// `steps`, when sent, within the model's bound.
pub(crate) fn check_steps(steps: Option<u32>, model: &ModelSpec) -> Result<(), ApiError> {
    match steps {
        Some(s) if !(1..=model.bounds.steps_max).contains(&s) => {
            Err(invalid("steps", in_range(1, model.bounds.steps_max, "", model)))
        }
        _ => Ok(()),
    }
}

/// `numberResults` within the model's bound, and every result's seed within [`SEED_MAX`].
pub(crate) fn check_results(n: u32, seed: Option<u64>, model: &ModelSpec) -> Result<(), ApiError> {
    let max = model.bounds.max_number_results;
    if !(1..=max).contains(&n) {
        return Err(invalid("numberResults", in_range(1, max, "", model)));
    }
    check_seed_span(seed, n)
}

/// Reads `model`, or the task type's built-in default; empty when there is neither, for the
/// engine to fill from its catalog.
pub fn model_param(r: &mut ParamReader<'_>, default: Option<&str>) -> Result<String, ApiError> {
    Ok(r.opt_string("model", 1, 256)?.unwrap_or_else(|| default.unwrap_or_default().to_string()))
}

/// Reads `seed`: 1 to [`SEED_MAX`].
pub fn seed_param(r: &mut ParamReader<'_>) -> Result<Option<u64>, ApiError> {
    Ok(r.opt_int("seed", 1, SEED_MAX as i64)?.map(|s| s as u64))
}

/// Reads the output options every file-producing task takes: `outputType`, `outputFormat`,
/// `outputQuality`, `ttl`, `includeCost`.
pub fn output_options(r: &mut ParamReader<'_>) -> Result<OutputOptions, ApiError> {
    let d = OutputOptions::default();
    Ok(OutputOptions {
        output_type: r
            .opt_enum("outputType", OutputType::NAMES)?
            .and_then(OutputType::parse)
            .unwrap_or(d.output_type),
        format: r
            .opt_enum("outputFormat", ImageFormat::NAMES)?
            .and_then(ImageFormat::parse)
            .unwrap_or(d.format),
        quality: r.opt_int("outputQuality", 20, 99)?.map(|q| q as u8).unwrap_or(d.quality),
        ttl_secs: r.opt_int("ttl", 1, i64::from(u32::MAX))?.map(|t| t as u64),
        include_cost: r.opt_bool("includeCost")?.unwrap_or(false),
        include_usage: false,
    })
}

/// Puts `value` in `wire` under `key` when there is one.
pub(crate) fn put(wire: &mut Map<String, Value>, key: &str, value: Option<impl Into<Value>>) {
    if let Some(v) = value {
        wire.insert(key.into(), v.into());
    }
}

/// The output options of a task whose format is its own parameter (video, SVG, audio):
/// `outputType`, `ttl`, `includeCost`.
pub fn file_output_options(r: &mut ParamReader<'_>) -> Result<OutputOptions, ApiError> {
    let d = OutputOptions::default();
    Ok(OutputOptions {
        output_type: r
            .opt_enum("outputType", OutputType::NAMES)?
            .and_then(OutputType::parse)
            .unwrap_or(d.output_type),
        ttl_secs: r.opt_int("ttl", 1, i64::from(u32::MAX))?.map(|t| t as u64),
        include_cost: r.opt_bool("includeCost")?.unwrap_or(false),
        ..d
    })
}

/// `model`, unless empty (not filled in yet).
pub(crate) fn model_wire(wire: &mut Map<String, Value>, model: &str) {
    if !model.is_empty() {
        wire.insert("model".into(), model.into());
    }
}

/// The output options as [`output_options`] reads them (`format` only where the task has one).
pub(crate) fn output_wire(wire: &mut Map<String, Value>, o: &OutputOptions, with_format: bool) {
    let output_type = match o.output_type {
        OutputType::Url => "URL",
        OutputType::Base64Data => "base64Data",
        OutputType::DataUri => "dataURI",
    };
    wire.insert("outputType".into(), output_type.into());
    if with_format {
        let format = match o.format {
            ImageFormat::Png => "PNG",
            ImageFormat::Jpg => "JPG",
            ImageFormat::Webp => "WEBP",
        };
        wire.insert("outputFormat".into(), format.into());
        wire.insert("outputQuality".into(), o.quality.into());
    }
    put(wire, "ttl", o.ttl_secs);
    wire.insert("includeCost".into(), o.include_cost.into());
}

/// Declares the registered modules and generates [`TaskType`] and [`TaskRequest`] from them,
/// with their dispatch.
macro_rules! task_types {
    ($($(#[doc = $doc:literal])* $variant:ident($module:ident::$params:ident)),* $(,)?) => {
        $(mod $module;
        pub use $module::$params;)*

        /// The task types mediagate serves. Dialects map their own names onto these.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum TaskType {
            $($(#[doc = $doc])* $variant,)*
        }

        impl TaskType {
            /// Every registered task type.
            pub const ALL: &'static [TaskType] = &[$(TaskType::$variant),*];

            /// The canonical (current Runware) name.
            pub const fn as_str(self) -> &'static str {
                match self { $(TaskType::$variant => <$params as TaskParams>::NAME,)* }
            }

            /// What it does, in a sentence (its line in the registry).
            pub const fn summary(self) -> &'static str {
                match self { $(TaskType::$variant => concat!($($doc),*).trim_ascii(),)* }
            }

            /// Older names accepted for it.
            pub const fn aliases(self) -> &'static [&'static str] {
                match self { $(TaskType::$variant => <$params as TaskParams>::ALIASES,)* }
            }

            /// The kind of files it produces.
            pub const fn family(self) -> Family {
                match self { $(TaskType::$variant => <$params as TaskParams>::FAMILY,)* }
            }

            /// The prefix of its result fields: `image` gives `imageUUID`, `imageURL`…
            pub const fn result_prefix(self) -> &'static str {
                match self {
                    $(TaskType::$variant => match <$params as TaskParams>::RESULT_PREFIX {
                        Some(p) => p,
                        None => <$params as TaskParams>::FAMILY.as_str(),
                    },)*
                }
            }

            /// See [`TaskParams::RESULT_FIELDS`].
            pub const fn result_fields(self) -> &'static [&'static str] {
                match self { $(TaskType::$variant => <$params as TaskParams>::RESULT_FIELDS,)* }
            }

            /// The built-in model used when a task names none, if it has one.
            pub const fn default_model(self) -> Option<&'static str> {
                match self { $(TaskType::$variant => <$params as TaskParams>::DEFAULT_MODEL,)* }
            }

            /// Whether it runs only asynchronously.
            pub const fn async_only(self) -> bool {
                match self { $(TaskType::$variant => <$params as TaskParams>::ASYNC_ONLY,)* }
            }

            /// A small valid task object of this type (see [`TaskParams::EXAMPLE`]).
            pub const fn example(self) -> &'static str {
                match self { $(TaskType::$variant => <$params as TaskParams>::EXAMPLE,)* }
            }

            /// Its other examples (see [`TaskParams::EXAMPLES`]).
            pub const fn more_examples(self) -> &'static [&'static str] {
                match self { $(TaskType::$variant => <$params as TaskParams>::EXAMPLES,)* }
            }

            /// Reads a request of this type from a task object.
            pub fn parse_request(self, r: &mut ParamReader<'_>) -> Result<TaskRequest, ApiError> {
                match self { $(TaskType::$variant => <$params as TaskParams>::parse(r).map(TaskRequest::$variant),)* }
            }
        }

        /// A canonical task request: what the engine runs.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind", rename_all = "camelCase")]
        pub enum TaskRequest {
            $($(#[doc = $doc])* $variant($params),)*
        }

        $(impl From<$params> for TaskRequest {
            fn from(p: $params) -> Self {
                TaskRequest::$variant(p)
            }
        })*

        impl TaskRequest {
            /// The canonical task type.
            pub fn task_type(&self) -> TaskType {
                match self { $(TaskRequest::$variant(_) => TaskType::$variant,)* }
            }

            /// The model's AIR id.
            pub fn model(&self) -> &str {
                match self { $(TaskRequest::$variant(p) => p.model(),)* }
            }

            /// The model's AIR id, to fill in the default.
            pub fn model_mut(&mut self) -> &mut String {
                match self { $(TaskRequest::$variant(p) => p.model_mut(),)* }
            }

            /// The output options.
            pub fn output(&self) -> &OutputOptions {
                match self { $(TaskRequest::$variant(p) => p.output(),)* }
            }

            /// How many results the task produces (what it is charged for).
            pub fn result_count(&self) -> u32 {
                match self { $(TaskRequest::$variant(p) => p.result_count(),)* }
            }

            /// Checks the request against the model's declared bounds.
            pub fn validate(&self, model: &ModelSpec) -> Result<(), ApiError> {
                match self { $(TaskRequest::$variant(p) => p.validate(model),)* }
            }

            /// See [`TaskParams::seed`].
            pub fn seed(&self) -> Option<Option<u64>> {
                match self { $(TaskRequest::$variant(p) => p.seed(),)* }
            }

            /// See [`TaskParams::work`].
            pub fn work(&self) -> Option<u64> {
                match self { $(TaskRequest::$variant(p) => p.work(),)* }
            }

            /// See [`TaskParams::work_with_inputs`].
            pub fn work_with_inputs(&self, model: &ModelSpec, sizes: &[(u32, u32)]) -> Result<Option<Work>, ApiError> {
                match self { $(TaskRequest::$variant(p) => p.work_with_inputs(model, sizes),)* }
            }

            /// See [`TaskParams::inputs`].
            pub fn inputs(&self) -> Vec<Input<'_>> {
                match self { $(TaskRequest::$variant(p) => p.inputs(),)* }
            }

            /// See [`TaskParams::inputs_mut`].
            pub fn inputs_mut(&mut self) -> Vec<&mut String> {
                match self { $(TaskRequest::$variant(p) => p.inputs_mut(),)* }
            }

            /// See [`TaskParams::to_wire`].
            pub fn to_wire(&self) -> Map<String, Value> {
                match self { $(TaskRequest::$variant(p) => p.to_wire(),)* }
            }

            /// See [`TaskParams::features`].
            pub fn features(&self) -> Vec<(&'static str, ParamPath)> {
                match self { $(TaskRequest::$variant(p) => p.features(),)* }
            }

            /// See [`TaskParams::family`].
            pub fn family(&self) -> Family {
                match self { $(TaskRequest::$variant(p) => p.family(),)* }
            }

            /// See [`TaskParams::result_prefix`].
            pub fn result_prefix(&self) -> &'static str {
                match self { $(TaskRequest::$variant(p) => p.result_prefix(),)* }
            }

            /// See [`TaskParams::async_only`].
            pub fn async_only(&self) -> bool {
                match self { $(TaskRequest::$variant(p) => p.async_only(),)* }
            }

            /// See [`TaskParams::one_result`].
            pub fn one_result(&self) -> Option<TaskRequest> {
                match self { $(TaskRequest::$variant(p) => p.one_result().map(TaskRequest::$variant),)* }
            }
        }
    };
}

impl TaskType {
    /// Every example of this type: [`TaskParams::EXAMPLE`], then [`TaskParams::EXAMPLES`].
    pub fn examples(self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.example()).chain(self.more_examples().iter().copied())
    }

    /// Parses a canonical name or an alias (`imageUpscale`).
    pub fn parse(name: &str) -> Option<TaskType> {
        TaskType::ALL.iter().copied().find(|t| t.as_str() == name || t.aliases().contains(&name))
    }
}

impl Serialize for TaskType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TaskType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        TaskType::parse(&name).ok_or_else(|| {
            let names: Vec<&str> = TaskType::ALL.iter().map(|t| t.as_str()).collect();
            serde::de::Error::custom(format!("unknown task type '{name}'; known: {}", names.join(", ")))
        })
    }
}

// The registry: one line per task type, `Variant(module::Params)`.
task_types! {
    /// Text to image, and image to image.
    ImageInference(image_inference::ImageInference),
    /// Image upscaling.
    Upscale(upscale::Upscale),
    /// Text or image to video.
    VideoInference(video_inference::VideoInference),
    /// Raster image to SVG.
    Vectorize(vectorize::Vectorize),
    /// A prompt rewritten by a language model.
    PromptEnhance(prompt_enhance::PromptEnhance),
    /// Images described by a vision language model.
    Caption(caption::Caption),
    /// A chat completion by a language model.
    TextInference(text_inference::TextInference),
    /// An image's background removed by a segmentation model.
    RemoveBackground(remove_background::RemoveBackground),
    /// Audio from a prompt.
    AudioInference(audio_inference::AudioInference),
    /// New pictures of the person in reference photos.
    PhotoMaker(photo_maker::PhotoMaker),
    /// A ControlNet guide image (edges, depth, pose…) made from an input image.
    ImageControlNetPreProcess(control_net_preprocess::ControlNetPreprocess),
    /// A mask of the faces, hands or people found in an image.
    ImageMasking(image_masking::ImageMasking),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::builtin_models;
    use std::collections::HashSet;

    /// A task type registered in part (a name shared with another, an example its own parser
    /// refuses, a default model that is missing or serves another type) fails here.
    #[test]
    fn every_registered_task_type_parses_its_example_and_validates_against_its_default_model() {
        let mut names = HashSet::new();
        for &t in TaskType::ALL {
            for name in std::iter::once(t.as_str()).chain(t.aliases().iter().copied()) {
                assert!(names.insert(name), "{name} names two task types");
                assert_eq!(TaskType::parse(name), Some(t));
            }
            // The other examples parse too (they are what the OpenAPI schema is recorded from),
            // and read back from their wire form.
            for example in t.more_examples() {
                let v: Value = serde_json::from_str(example).expect("example is JSON");
                let mut r = ParamReader::new(v.as_object().expect("an object"), ParamPath::default());
                let request = t
                    .parse_request(&mut r)
                    .unwrap_or_else(|e| panic!("{}: {}: {example}", t.as_str(), e.message));
                r.finish().unwrap_or_else(|e| panic!("{}: {}: {example}", t.as_str(), e.message));
                let wire = Value::Object(request.to_wire());
                let mut r = ParamReader::new(wire.as_object().unwrap(), ParamPath::default());
                let again = t
                    .parse_request(&mut r)
                    .unwrap_or_else(|e| panic!("{}: {}: {wire}", t.as_str(), e.message));
                r.finish().unwrap_or_else(|e| panic!("{}: {}: {wire}", t.as_str(), e.message));
                assert_eq!(again, request, "{}: {wire}", t.as_str());
            }
            let example: serde_json::Value = serde_json::from_str(t.example()).expect("example is JSON");
            let obj = example.as_object().expect("example is an object");
            let mut r = ParamReader::new(obj, ParamPath::default());
            let request = t.parse_request(&mut r).unwrap_or_else(|e| panic!("{}: {}", t.as_str(), e.message));
            r.finish().unwrap_or_else(|e| panic!("{}: {}", t.as_str(), e.message));
            assert_eq!(request.task_type(), t);
            assert_eq!(request.model(), t.default_model().unwrap_or_default());
            // A task type with a built-in model validates its example against it; one without
            // is served by configured models only (tests/task_types.rs configures one).
            if let Some(air) = t.default_model() {
                let model = builtin_models()
                    .into_iter()
                    .find(|m| m.air == air)
                    .unwrap_or_else(|| panic!("{}: no built-in model {air}", t.as_str()));
                assert_eq!(model.task_type, t, "{}'s default model serves another task type", t.as_str());
                request.validate(&model).unwrap_or_else(|e| panic!("{}: {}", t.as_str(), e.message));
            }
            // The wire form reads back into the same request (getTaskDetails, forwarding).
            let wire = Value::Object(request.to_wire());
            let mut r = ParamReader::new(wire.as_object().unwrap(), ParamPath::default());
            let again =
                t.parse_request(&mut r).unwrap_or_else(|e| panic!("{}: {}: {wire}", t.as_str(), e.message));
            r.finish().unwrap_or_else(|e| panic!("{}: {}: {wire}", t.as_str(), e.message));
            assert_eq!(again, request, "{}: {wire}", t.as_str());
            // The canonical form round-trips (it is what a restart runs again).
            let stored = serde_json::to_string(&request).unwrap();
            assert_eq!(serde_json::from_str::<TaskRequest>(&stored).unwrap(), request);
            // Stored requests keep the names of earlier versions.
            assert!(stored.starts_with(&format!("{{\"kind\":\"{}\"", t.as_str())), "{stored}");
        }
    }
}
