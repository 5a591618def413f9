//! Typed requests for every task type mediagate serves, and typed results.
//!
//! Each request is a builder that gets a fresh UUID v4 `taskUUID` when created. The UUID names
//! the task: the SDK resends the identical body (same UUID) when it retries, so the server
//! returns the stored result instead of running and charging the task again.
//!
//! ```
//! use mediagate_client::tasks::{ImageInference, OutputFormat, Task};
//! let t = ImageInference::new("a lighthouse at dusk").size(512, 512).output_format(OutputFormat::Webp);
//! assert_eq!(t.to_json()["taskType"], "imageInference");
//! assert_eq!(t.to_json()["taskUUID"], t.task_uuid().to_string());
//! ```

use crate::error::{ApiError, Error};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

mod model_search;
mod text;

pub use image_tools::{ControlNetPreprocess, ImageMasking};
pub use model_search::{ModelInfo, ModelPage, ModelSearch};
pub use text::{Caption, Message, PromptEnhance, TextInference, TextResult, Usage};
pub use vectorize::Vectorize;

/// A request that can be sent as one element of the task array.
pub trait Task: Send + Sync {
    /// The typed result of this task.
    type Output: Send;

    /// The `taskType` as sent.
    fn task_type(&self) -> &str;

    /// The `taskUUID` as sent.
    fn task_uuid(&self) -> Uuid;

    /// The task object.
    fn to_json(&self) -> Value;

    /// Whether the task asks for async delivery (`deliveryMethod: "async"`).
    fn is_async(&self) -> bool {
        false
    }

    /// Whether `status: "processing"` items are this task's answer (as for `getResponse`)
    /// rather than the acknowledgement of an async task.
    fn reports_status(&self) -> bool {
        false
    }

    /// Builds the typed result from the `data` items that carry this task's `taskUUID`.
    fn parse_output(items: Vec<Value>) -> Result<Self::Output, Error>;
}

/// `deliveryMethod`: wait for the result in the response, or get an acknowledgement at once and
/// poll with `getResponse` (see [`crate::poll`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// The response holds the result (the default).
    Sync,
    /// The response is an acknowledgement; poll for the result.
    Async,
}

/// `outputType`: how an image comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OutputType {
    /// `imageURL`: a URL the server serves the file at until its `ttl` passes.
    #[serde(rename = "URL")]
    Url,
    /// `imageBase64Data`: the file's bytes in base64.
    #[serde(rename = "base64Data")]
    Base64Data,
    /// `imageDataURI`: a `data:` URI.
    #[serde(rename = "dataURI")]
    DataUri,
}

/// `outputFormat`: the image file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OutputFormat {
    /// PNG.
    #[serde(rename = "PNG")]
    Png,
    /// JPEG.
    #[serde(rename = "JPG")]
    Jpg,
    /// WebP.
    #[serde(rename = "WEBP")]
    Webp,
}

/// Output options shared by image-producing tasks.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct OutputOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    output_type: Option<OutputType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_format: Option<OutputFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_quality: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    include_cost: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_method: Option<Delivery>,
}

/// Builder methods for the output options and the task UUID, shared by image tasks.
macro_rules! common_builders {
    () => {
        /// `outputType`: URL (default), base64 data or a data URI.
        pub fn output_type(mut self, t: OutputType) -> Self {
            self.output.output_type = Some(t);
            self
        }

        /// `outputFormat`: PNG (default), JPG or WEBP.
        pub fn output_format(mut self, f: OutputFormat) -> Self {
            self.output.output_format = Some(f);
            self
        }

        /// `outputQuality`: compression quality for lossy formats (20–99).
        pub fn output_quality(mut self, q: u8) -> Self {
            self.output.output_quality = Some(q);
            self
        }

        /// `includeCost`: add the USD `cost` to each result.
        pub fn include_cost(mut self, yes: bool) -> Self {
            self.output.include_cost = Some(yes);
            self
        }

        /// `ttl`: seconds the output URL stays valid.
        pub fn ttl(mut self, seconds: u64) -> Self {
            self.output.ttl = Some(seconds);
            self
        }

        /// `deliveryMethod`. [`crate::Client::run`] waits either way; with [`Delivery::Async`]
        /// it polls `getResponse` under the client's poll policy.
        pub fn delivery(mut self, d: Delivery) -> Self {
            self.output.delivery_method = Some(d);
            self
        }

        /// The `taskUUID` this task is sent with.
        pub fn task_uuid(&self) -> Uuid {
            self.task_uuid
        }

        /// Uses this `taskUUID` instead of the generated one, e.g. to fetch the stored result of
        /// a task sent before. Resending a UUID with a different body is `conflictTaskUUID`.
        pub fn with_task_uuid(mut self, uuid: Uuid) -> Self {
            self.task_uuid = uuid;
            self
        }

        /// Gives the task a fresh `taskUUID`, making it a new task (e.g. to run a failed task
        /// again: the server answers a replayed UUID with the stored failure).
        pub fn renew_task_uuid(mut self) -> Self {
            self.task_uuid = Uuid::new_v4();
            self
        }
    };
}

/// The [`Task`] methods every typed request implements alike, from its `task_type`,
/// `task_uuid` and `output` fields.
macro_rules! task_basics {
    () => {
        fn task_type(&self) -> &str {
            self.task_type
        }

        fn task_uuid(&self) -> Uuid {
            self.task_uuid
        }

        fn to_json(&self) -> Value {
            serde_json::to_value(self).expect("a task serializes")
        }

        fn is_async(&self) -> bool {
            self.output.delivery_method == Some(Delivery::Async)
        }
    };
}

// After `common_builders!` and `task_basics!`, which they use.
mod image_tools;
mod vectorize;

/// `imageInference`: generate images from a prompt.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageInference {
    task_type: &'static str,
    #[serde(rename = "taskUUID")]
    task_uuid: Uuid,
    positive_prompt: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    negative_prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    steps: Option<u32>,
    #[serde(rename = "CFGScale", skip_serializing_if = "Option::is_none")]
    cfg_scale: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    number_results: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed_image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mask_image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    strength: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outpaint: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lora: Option<Vec<Value>>,
    /// Any other optional parameter, by its Runware name.
    #[serde(flatten)]
    extra: serde_json::Map<String, Value>,
    #[serde(flatten)]
    output: OutputOptions,
}

impl ImageInference {
    /// A new task with `positivePrompt` and a fresh `taskUUID`; everything else is the server's
    /// default until set.
    pub fn new(positive_prompt: impl Into<String>) -> Self {
        ImageInference {
            task_type: "imageInference",
            task_uuid: Uuid::new_v4(),
            positive_prompt: positive_prompt.into(),
            negative_prompt: None,
            model: None,
            width: None,
            height: None,
            steps: None,
            cfg_scale: None,
            seed: None,
            number_results: None,
            seed_image: None,
            mask_image: None,
            strength: None,
            outpaint: None,
            lora: None,
            extra: serde_json::Map::new(),
            output: OutputOptions::default(),
        }
    }

    /// `seedImage`: the image to start from (a data URI, base64, an HTTPS URL or an upload's
    /// `imageUUID`), for image to image; with [`mask_image`](Self::mask_image), inpainting; with
    /// [`outpaint`](Self::outpaint), outpainting.
    pub fn seed_image(mut self, image: impl Into<String>) -> Self {
        self.seed_image = Some(image.into());
        self
    }

    /// `maskImage`: white where the seed image is repainted, black where it is kept.
    pub fn mask_image(mut self, image: impl Into<String>) -> Self {
        self.mask_image = Some(image.into());
        self
    }

    /// `strength`, 0 to 1: how far the result moves from the seed image (the server's default
    /// is 0.8).
    pub fn strength(mut self, s: f64) -> Self {
        self.strength = Some(s);
        self
    }

    /// `outpaint`: borders in pixels (multiples of 64) added around the seed image, and the
    /// blend width; `width` and `height` must then be the seed image's size plus the borders.
    pub fn outpaint(mut self, top: u32, right: u32, bottom: u32, left: u32, blur: u32) -> Self {
        self.outpaint = Some(serde_json::json!({
            "top": top, "right": right, "bottom": bottom, "left": left, "blur": blur
        }));
        self
    }

    /// Adds a `lora` entry: a LoRA model's AIR id and its weight.
    pub fn lora(mut self, model: impl Into<String>, weight: f64) -> Self {
        self.lora
            .get_or_insert_with(Vec::new)
            .push(serde_json::json!({"model": model.into(), "weight": weight}));
        self
    }

    /// Any other optional parameter by its Runware name (`controlNet`, `referenceImages`,
    /// `ipAdapters`, `refiner`, `scheduler`, `providerSettings`…), sent as given.
    pub fn param(mut self, name: impl Into<String>, value: Value) -> Self {
        self.extra.insert(name.into(), value);
        self
    }

    /// `negativePrompt`.
    pub fn negative_prompt(mut self, p: impl Into<String>) -> Self {
        self.negative_prompt = Some(p.into());
        self
    }

    /// `model`: an AIR id such as `mediagate:procedural@1`.
    pub fn model(mut self, air: impl Into<String>) -> Self {
        self.model = Some(air.into());
        self
    }

    /// `width` and `height` in pixels.
    pub fn size(self, width: u32, height: u32) -> Self {
        self.width(width).height(height)
    }

    /// `width` in pixels.
    pub fn width(mut self, w: u32) -> Self {
        self.width = Some(w);
        self
    }

    /// `height` in pixels.
    pub fn height(mut self, h: u32) -> Self {
        self.height = Some(h);
        self
    }

    /// `steps`.
    pub fn steps(mut self, s: u32) -> Self {
        self.steps = Some(s);
        self
    }

    /// `CFGScale`.
    pub fn cfg_scale(mut self, c: f64) -> Self {
        self.cfg_scale = Some(c);
        self
    }

    /// `seed` (≥ 1). Without one the server picks a seed and returns it.
    pub fn seed(mut self, s: u64) -> Self {
        self.seed = Some(s);
        self
    }

    /// `numberResults`: how many images (each its own result item and seed).
    pub fn number_results(mut self, n: u32) -> Self {
        self.number_results = Some(n);
        self
    }

    common_builders!();
}

impl Task for ImageInference {
    type Output = Vec<ImageResult>;

    task_basics!();

    fn parse_output(items: Vec<Value>) -> Result<Vec<ImageResult>, Error> {
        if items.is_empty() {
            return Err(Error::Protocol("the response has no result item for the task".into()));
        }
        items.iter().map(ImageResult::from_json).collect()
    }
}

/// `upscale` (or its legacy name `imageUpscale`): enlarge an image.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Upscale {
    task_type: &'static str,
    #[serde(rename = "taskUUID")]
    task_uuid: Uuid,
    input_image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    upscale_factor: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(flatten)]
    output: OutputOptions,
}

impl Upscale {
    /// A new task. `input_image` is a data URI, raw base64, or the `imageUUID` of an earlier
    /// output.
    pub fn new(input_image: impl Into<String>) -> Self {
        Upscale {
            task_type: "upscale",
            task_uuid: Uuid::new_v4(),
            input_image: input_image.into(),
            upscale_factor: None,
            model: None,
            output: OutputOptions::default(),
        }
    }

    /// `upscaleFactor`.
    pub fn factor(mut self, f: u32) -> Self {
        self.upscale_factor = Some(f);
        self
    }

    /// `model`: an AIR id such as `mediagate:lanczos@1`.
    pub fn model(mut self, air: impl Into<String>) -> Self {
        self.model = Some(air.into());
        self
    }

    /// Sends the legacy task type name `imageUpscale` instead of `upscale`.
    pub fn legacy_task_type(mut self) -> Self {
        self.task_type = "imageUpscale";
        self
    }

    common_builders!();
}

impl Task for Upscale {
    type Output = ImageResult;

    task_basics!();

    fn parse_output(items: Vec<Value>) -> Result<ImageResult, Error> {
        let first = items
            .first()
            .ok_or_else(|| Error::Protocol("the response has no result item for the upscale task".into()))?;
        ImageResult::from_json(first)
    }
}

/// `outputFormat` of a video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum VideoFormat {
    /// MP4.
    #[serde(rename = "MP4")]
    Mp4,
    /// WebM.
    #[serde(rename = "WEBM")]
    Webm,
}

/// One entry of `frameImages`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct FrameImage {
    input_image: String,
    frame: &'static str,
}

/// `videoInference`: generate a video from a prompt (and optionally a first frame). Video is
/// slow: delivery is async unless [`Delivery::Sync`] is set, and [`crate::Client::run`] polls.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoInference {
    task_type: &'static str,
    #[serde(rename = "taskUUID")]
    task_uuid: Uuid,
    positive_prompt: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fps: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    frame_images: Vec<FrameImage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_type: Option<OutputType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_format: Option<VideoFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    include_cost: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_method: Option<Delivery>,
}

impl VideoInference {
    /// A new task with `positivePrompt` and a fresh `taskUUID`.
    pub fn new(positive_prompt: impl Into<String>) -> Self {
        VideoInference {
            task_type: "videoInference",
            task_uuid: Uuid::new_v4(),
            positive_prompt: positive_prompt.into(),
            model: None,
            width: None,
            height: None,
            duration: None,
            fps: None,
            seed: None,
            frame_images: Vec::new(),
            output_type: None,
            output_format: None,
            include_cost: None,
            ttl: None,
            delivery_method: None,
        }
    }

    /// `model`: an AIR id.
    pub fn model(mut self, air: impl Into<String>) -> Self {
        self.model = Some(air.into());
        self
    }

    /// `width` and `height` in pixels.
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.width = Some(width);
        self.height = Some(height);
        self
    }

    /// `duration` in seconds.
    pub fn duration(mut self, seconds: u32) -> Self {
        self.duration = Some(seconds);
        self
    }

    /// `fps`: frames per second.
    pub fn fps(mut self, fps: u32) -> Self {
        self.fps = Some(fps);
        self
    }

    /// `seed` (≥ 1).
    pub fn seed(mut self, s: u64) -> Self {
        self.seed = Some(s);
        self
    }

    /// `frameImages: [{"inputImage": …, "frame": "first"}]`: the first frame (a data URI, base64
    /// or the UUID of an earlier output).
    pub fn first_frame(mut self, input_image: impl Into<String>) -> Self {
        self.frame_images = vec![FrameImage { input_image: input_image.into(), frame: "first" }];
        self
    }

    /// `outputType`: URL (default), base64 data or a data URI.
    pub fn output_type(mut self, t: OutputType) -> Self {
        self.output_type = Some(t);
        self
    }

    /// `outputFormat`: MP4 (default) or WEBM.
    pub fn output_format(mut self, f: VideoFormat) -> Self {
        self.output_format = Some(f);
        self
    }

    /// `includeCost`.
    pub fn include_cost(mut self, yes: bool) -> Self {
        self.include_cost = Some(yes);
        self
    }

    /// `ttl`: seconds the output URL stays valid.
    pub fn ttl(mut self, seconds: u64) -> Self {
        self.ttl = Some(seconds);
        self
    }

    /// `deliveryMethod`.
    pub fn delivery(mut self, d: Delivery) -> Self {
        self.delivery_method = Some(d);
        self
    }

    /// The `taskUUID` this task is sent with.
    pub fn task_uuid(&self) -> Uuid {
        self.task_uuid
    }

    /// Uses this `taskUUID` instead of the generated one.
    pub fn with_task_uuid(mut self, uuid: Uuid) -> Self {
        self.task_uuid = uuid;
        self
    }

    /// Gives the task a fresh `taskUUID`, making it a new task.
    pub fn renew_task_uuid(mut self) -> Self {
        self.task_uuid = Uuid::new_v4();
        self
    }
}

impl Task for VideoInference {
    type Output = Vec<VideoResult>;

    fn task_type(&self) -> &str {
        self.task_type
    }

    fn task_uuid(&self) -> Uuid {
        self.task_uuid
    }

    fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a task serializes")
    }

    /// Video is async unless sync is asked for: Runware and mediagate default `videoInference`
    /// to async delivery.
    fn is_async(&self) -> bool {
        self.delivery_method != Some(Delivery::Sync)
    }

    fn parse_output(items: Vec<Value>) -> Result<Vec<VideoResult>, Error> {
        if items.is_empty() {
            return Err(Error::Protocol("the response has no result item for the task".into()));
        }
        items.iter().map(VideoResult::from_json).collect()
    }
}

/// `ping`: a keepalive; the server answers `pong`.
#[derive(Debug, Clone, PartialEq)]
pub struct Ping {
    task_uuid: Uuid,
}

impl Ping {
    /// A ping with a fresh `taskUUID` (so its answer can be matched in a batch).
    pub fn new() -> Self {
        Ping { task_uuid: Uuid::new_v4() }
    }
}

impl Default for Ping {
    fn default() -> Self {
        Self::new()
    }
}

/// The answer to a [`Ping`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pong {
    /// The `pong` flag of the answer.
    pub pong: bool,
}

impl Task for Ping {
    type Output = Pong;

    fn task_type(&self) -> &str {
        "ping"
    }

    fn task_uuid(&self) -> Uuid {
        self.task_uuid
    }

    fn to_json(&self) -> Value {
        serde_json::json!({"taskType": "ping", "taskUUID": self.task_uuid, "ping": true})
    }

    fn parse_output(items: Vec<Value>) -> Result<Pong, Error> {
        let first = items.first().ok_or_else(|| Error::Protocol("no answer to ping".into()))?;
        Ok(Pong { pong: first.get("pong").and_then(Value::as_bool).unwrap_or(false) })
    }
}

/// `getResponse`: the current state of an earlier task (typically one sent with async
/// delivery). See [`crate::poll`] for a bounded polling loop.
#[derive(Debug, Clone, PartialEq)]
pub struct GetResponse {
    task_uuid: Uuid,
}

impl GetResponse {
    /// Asks for the task with this `taskUUID`.
    pub fn new(task_uuid: Uuid) -> Self {
        GetResponse { task_uuid }
    }
}

impl Task for GetResponse {
    type Output = Vec<ResponseItem>;

    fn task_type(&self) -> &str {
        "getResponse"
    }

    fn task_uuid(&self) -> Uuid {
        self.task_uuid
    }

    fn to_json(&self) -> Value {
        serde_json::json!({"taskType": "getResponse", "taskUUID": self.task_uuid})
    }

    fn reports_status(&self) -> bool {
        true
    }

    fn parse_output(items: Vec<Value>) -> Result<Vec<ResponseItem>, Error> {
        Ok(items.into_iter().map(ResponseItem::from_json).collect())
    }
}

/// Any task object, for task types this SDK has no typed builder for yet (e.g.
/// `audioInference`). It still gets a client-generated `taskUUID` and the same retry guarantees.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomTask {
    task_type: String,
    task_uuid: Uuid,
    params: Map<String, Value>,
}

impl CustomTask {
    /// A task of `task_type` with a fresh `taskUUID` and no parameters.
    pub fn new(task_type: impl Into<String>) -> Self {
        CustomTask { task_type: task_type.into(), task_uuid: Uuid::new_v4(), params: Map::new() }
    }

    /// Sets a parameter (`taskType` and `taskUUID` are set by the task itself).
    pub fn param(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.params.insert(name.into(), value.into());
        self
    }

    /// The `taskUUID` this task is sent with.
    pub fn task_uuid(&self) -> Uuid {
        self.task_uuid
    }

    /// Uses this `taskUUID` instead of the generated one.
    pub fn with_task_uuid(mut self, uuid: Uuid) -> Self {
        self.task_uuid = uuid;
        self
    }
}

impl Task for CustomTask {
    type Output = Vec<Value>;

    fn task_type(&self) -> &str {
        &self.task_type
    }

    fn task_uuid(&self) -> Uuid {
        self.task_uuid
    }

    fn to_json(&self) -> Value {
        let mut m = self.params.clone();
        m.insert("taskType".into(), Value::String(self.task_type.clone()));
        m.insert("taskUUID".into(), Value::String(self.task_uuid.to_string()));
        Value::Object(m)
    }

    fn is_async(&self) -> bool {
        self.params.get("deliveryMethod").and_then(Value::as_str) == Some("async")
    }

    fn reports_status(&self) -> bool {
        self.task_type == "getResponse"
    }

    fn parse_output(items: Vec<Value>) -> Result<Vec<Value>, Error> {
        Ok(items)
    }
}

/// An output (image or video) as the server returned it, by the task's `outputType`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaData {
    /// `imageURL` / `videoURL`.
    Url(String),
    /// `imageBase64Data` / `videoBase64Data`.
    Base64(String),
    /// `imageDataURI` / `videoDataURI`.
    DataUri(String),
}

/// The former name of [`MediaData`].
pub type ImageData = MediaData;

impl MediaData {
    /// The URL, when the output type was URL.
    pub fn url(&self) -> Option<&str> {
        match self {
            MediaData::Url(u) => Some(u),
            _ => None,
        }
    }

    /// The base64 payload: `imageBase64Data`, or the data part of a data URI.
    pub fn base64(&self) -> Option<&str> {
        match self {
            MediaData::Base64(b) => Some(b),
            MediaData::DataUri(d) => d.split_once(";base64,").map(|(_, b)| b),
            MediaData::Url(_) => None,
        }
    }
}

/// One image result item (of `imageInference` or `upscale`).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageResult {
    /// `taskType`.
    pub task_type: String,
    /// `taskUUID`.
    pub task_uuid: String,
    /// `imageUUID`: names the stored output (usable as `inputImage` of a later task).
    pub image_uuid: String,
    /// The image itself.
    pub image: MediaData,
    /// `seed` used, when the task has one.
    pub seed: Option<u64>,
    /// `cost` in USD, when `includeCost` was set.
    pub cost: Option<f64>,
    /// `NSFWContent`, when the server reports it.
    pub nsfw_content: Option<bool>,
    /// `status`, on items from `getResponse`.
    pub status: Option<String>,
    /// Every other field of the item, verbatim.
    pub extra: Map<String, Value>,
}

/// The common fields of an image or video result item.
struct MediaFields {
    task_type: String,
    task_uuid: String,
    uuid: String,
    data: MediaData,
    seed: Option<u64>,
    cost: Option<f64>,
    nsfw_content: Option<bool>,
    status: Option<String>,
    extra: Map<String, Value>,
}

/// Reads a result item whose output fields are `{kind}UUID`, `{kind}URL`, … (`kind` is
/// `image` or `video`). A base64 output is also accepted under the other kind's name.
fn media_fields(v: &Value, kind: &str) -> Result<MediaFields, Error> {
    let Value::Object(m) = v else {
        return Err(Error::Protocol(format!("a result item is not an object: {v}")));
    };
    let mut extra = m.clone();
    let mut take = |k: &str| match extra.remove(k) {
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            extra.insert(k.to_string(), other);
            None
        }
        None => None,
    };
    let missing = |k: &str| Error::Protocol(format!("a result item has no string `{k}`: {v}"));
    let task_type = take("taskType").ok_or_else(|| missing("taskType"))?;
    let task_uuid = take("taskUUID").ok_or_else(|| missing("taskUUID"))?;
    let uuid = take(&format!("{kind}UUID")).ok_or_else(|| missing(&format!("{kind}UUID")))?;
    let status = take("status");
    let data = if let Some(u) = take(&format!("{kind}URL")) {
        MediaData::Url(u)
    } else if let Some(b) = take(&format!("{kind}Base64Data")).or_else(|| take("imageBase64Data")) {
        MediaData::Base64(b)
    } else if let Some(d) = take(&format!("{kind}DataURI")) {
        MediaData::DataUri(d)
    } else {
        return Err(missing(&format!("{kind}URL, {kind}Base64Data or {kind}DataURI")));
    };
    let seed = extra.get("seed").and_then(Value::as_u64);
    if seed.is_some() {
        extra.remove("seed");
    }
    let cost = extra.get("cost").and_then(Value::as_f64);
    if cost.is_some() {
        extra.remove("cost");
    }
    let nsfw_content = extra.get("NSFWContent").and_then(Value::as_bool);
    if nsfw_content.is_some() {
        extra.remove("NSFWContent");
    }
    Ok(MediaFields { task_type, task_uuid, uuid, data, seed, cost, nsfw_content, status, extra })
}

impl ImageResult {
    /// Reads a result item.
    pub fn from_json(v: &Value) -> Result<ImageResult, Error> {
        Self::from_json_prefixed(v, "image")
    }

    /// Parses a result item whose file fields carry `prefix` (`guideImageUUID`,
    /// `maskImageURL`…) instead of `image`.
    pub fn from_json_prefixed(v: &Value, prefix: &str) -> Result<ImageResult, Error> {
        let f = media_fields(v, prefix)?;
        Ok(ImageResult {
            task_type: f.task_type,
            task_uuid: f.task_uuid,
            image_uuid: f.uuid,
            image: f.data,
            seed: f.seed,
            cost: f.cost,
            nsfw_content: f.nsfw_content,
            status: f.status,
            extra: f.extra,
        })
    }
}

/// One video result item (of `videoInference`).
#[derive(Debug, Clone, PartialEq)]
pub struct VideoResult {
    /// `taskType`.
    pub task_type: String,
    /// `taskUUID`.
    pub task_uuid: String,
    /// `videoUUID`: names the stored output.
    pub video_uuid: String,
    /// The video itself.
    pub video: MediaData,
    /// `seed` used, when the task has one.
    pub seed: Option<u64>,
    /// `cost` in USD, when `includeCost` was set.
    pub cost: Option<f64>,
    /// `status`, on items from `getResponse`.
    pub status: Option<String>,
    /// Every other field of the item, verbatim.
    pub extra: Map<String, Value>,
}

impl VideoResult {
    /// Reads a result item.
    pub fn from_json(v: &Value) -> Result<VideoResult, Error> {
        let mut f = media_fields(v, "video")?;
        if let Some(n) = f.nsfw_content {
            f.extra.insert("NSFWContent".into(), Value::Bool(n));
        }
        Ok(VideoResult {
            task_type: f.task_type,
            task_uuid: f.task_uuid,
            video_uuid: f.uuid,
            video: f.data,
            seed: f.seed,
            cost: f.cost,
            status: f.status,
            extra: f.extra,
        })
    }
}

/// `status` of a `getResponse` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Still running.
    Processing,
    /// Finished; the item carries a result.
    Success,
    /// Failed; the item carries an `error` object.
    Error,
    /// A status this SDK does not know (kept verbatim), or none.
    Other(String),
}

impl Status {
    fn parse(s: Option<&str>) -> Status {
        match s {
            Some("processing") => Status::Processing,
            Some("success") => Status::Success,
            Some("error") => Status::Error,
            Some(o) => Status::Other(o.to_string()),
            None => Status::Other(String::new()),
        }
    }

    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            Status::Processing => "processing",
            Status::Success => "success",
            Status::Error => "error",
            Status::Other(s) => s,
        }
    }
}

/// One item of a `getResponse` answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseItem {
    /// `status`.
    pub status: Status,
    /// `taskType` of the polled task.
    pub task_type: Option<String>,
    /// The embedded `error` object of an error item (no HTTP status: it did not decide one).
    pub error: Option<ApiError>,
    /// The whole item, verbatim (pass it to [`ImageResult::from_json`] or [`Task::parse_output`]).
    pub raw: Value,
}

impl ResponseItem {
    /// Reads a `getResponse` item.
    pub fn from_json(raw: Value) -> ResponseItem {
        ResponseItem {
            status: Status::parse(raw.get("status").and_then(Value::as_str)),
            task_type: raw.get("taskType").and_then(Value::as_str).map(str::to_string),
            error: raw.get("error").map(|e| ApiError::from_json(e, None)),
            raw,
        }
    }

    /// The image result of a success item of an image task.
    pub fn image(&self) -> Option<ImageResult> {
        (self.status == Status::Success).then(|| ImageResult::from_json(&self.raw).ok()).flatten()
    }

    /// The video result of a success item of a video task.
    pub fn video(&self) -> Option<VideoResult> {
        (self.status == Status::Success).then(|| VideoResult::from_json(&self.raw).ok()).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn image_inference_serializes_wire_names_and_omits_unset_fields() {
        let u = Uuid::new_v4();
        let t = ImageInference::new("a cat")
            .with_task_uuid(u)
            .model("mediagate:procedural@1")
            .size(128, 64)
            .cfg_scale(7.5)
            .seed(3)
            .number_results(2)
            .output_type(OutputType::DataUri)
            .output_format(OutputFormat::Jpg)
            .include_cost(true)
            .delivery(Delivery::Async);
        assert_eq!(
            t.to_json(),
            json!({"taskType": "imageInference", "taskUUID": u.to_string(), "positivePrompt": "a cat",
                   "model": "mediagate:procedural@1", "width": 128, "height": 64, "CFGScale": 7.5, "seed": 3,
                   "numberResults": 2, "outputType": "dataURI", "outputFormat": "JPG", "includeCost": true,
                   "deliveryMethod": "async"})
        );
        assert!(t.is_async());
    }

    #[test]
    fn each_task_gets_its_own_uuid_v4() {
        let (a, b) = (ImageInference::new("x"), ImageInference::new("x"));
        assert_ne!(a.task_uuid(), b.task_uuid());
        assert_eq!(a.task_uuid().get_version_num(), 4);
        let c = a.clone().renew_task_uuid();
        assert_ne!(a.task_uuid(), c.task_uuid());
    }

    #[test]
    fn video_inference_wire_names() {
        let t = VideoInference::new("waves")
            .size(640, 360)
            .duration(2)
            .fps(12)
            .first_frame("abc")
            .output_format(VideoFormat::Webm);
        let v = t.to_json();
        assert_eq!(v["frameImages"], json!([{"inputImage": "abc", "frame": "first"}]));
        assert_eq!(
            (v["duration"].clone(), v["fps"].clone(), v["outputFormat"].clone()),
            (json!(2), json!(12), json!("WEBM"))
        );
        let r =
            VideoResult::from_json(&json!({"taskType": "videoInference", "taskUUID": "t", "videoUUID": "v",
            "videoURL": "http://x/v.mp4", "seed": 1}))
            .unwrap();
        assert_eq!(r.video.url(), Some("http://x/v.mp4"));
    }

    #[test]
    fn upscale_legacy_name() {
        let t = Upscale::new("abc").factor(2).legacy_task_type();
        assert_eq!(t.to_json()["taskType"], "imageUpscale");
        assert_eq!(t.to_json()["upscaleFactor"], 2);
    }

    #[test]
    fn image_results_keep_unknown_fields() {
        let r =
            ImageResult::from_json(&json!({"taskType": "imageInference", "taskUUID": "t", "imageUUID": "i",
            "imageDataURI": "data:image/png;base64,QUJD", "seed": 5, "cost": 0.0006, "NSFWContent": false,
            "future": 1}))
            .unwrap();
        assert_eq!(r.image.base64(), Some("QUJD"));
        assert_eq!((r.seed, r.cost, r.nsfw_content), (Some(5), Some(0.0006), Some(false)));
        assert_eq!(r.extra.get("future"), Some(&json!(1)));
        assert!(ImageResult::from_json(&json!({"taskType": "imageInference"})).is_err());
    }
}
