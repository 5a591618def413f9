//! The model catalog's entries: an AIR id mapped to a provider, a task type, a price and the
//! parameter bounds the model accepts.

use crate::task::TaskType;
use serde::{Deserialize, Serialize};

/// Parameter bounds a model declares. Requests outside them fail with the parameter named.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bounds {
    /// Smallest width in pixels.
    pub width_min: u32,
    /// Largest width in pixels.
    pub width_max: u32,
    /// Smallest height in pixels.
    pub height_min: u32,
    /// Largest height in pixels.
    pub height_max: u32,
    /// Width and height must be multiples of this.
    pub dimension_step: u32,
    /// Largest width x height.
    pub max_pixels: u64,
    /// Largest `steps`.
    pub steps_max: u32,
    /// Largest `numberResults`.
    pub max_number_results: u32,
    /// Smallest `upscaleFactor`.
    pub upscale_factor_min: u32,
    /// Largest `upscaleFactor`.
    pub upscale_factor_max: u32,
    /// Largest side of an upscaled output, in pixels.
    pub upscale_output_max: u32,
    /// Smallest width / height ratio of an input image.
    pub input_aspect_min: f64,
    /// Largest width / height ratio of an input image.
    pub input_aspect_max: f64,
    /// Longest video, in seconds.
    pub duration_max_secs: u32,
    /// Highest video frame rate.
    pub fps_max: u32,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            width_min: 64,
            width_max: 2048,
            height_min: 64,
            height_max: 2048,
            dimension_step: 64,
            max_pixels: 2048 * 2048,
            steps_max: 100,
            max_number_results: 20,
            upscale_factor_min: 2,
            upscale_factor_max: 4,
            upscale_output_max: 8000,
            input_aspect_min: 0.5,
            input_aspect_max: 2.0,
            duration_max_secs: 10,
            fps_max: 30,
        }
    }
}

/// One entry of the model catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// The AIR id clients send as `model`, e.g. `mediagate:procedural@1`.
    pub air: String,
    /// The task type the model serves.
    pub task_type: TaskType,
    /// The name of the provider that runs it.
    pub provider: String,
    /// Price per result, in USD as a decimal string (e.g. `"0.0006"`).
    #[serde(deserialize_with = "crate::money::deserialize_usd")]
    pub price_usd: String,
    /// What the model is, for people. Stand-ins must say so.
    #[serde(default)]
    pub description: String,
    /// Parameter bounds.
    #[serde(default)]
    pub bounds: Bounds,
    /// How the engine retries provider failures for this model.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Providers tried in this order when `provider` is exhausted or its circuit is open.
    #[serde(default)]
    pub fallback: Vec<String>,
    /// Tasks this model runs at once for all accounts together, shared fairly; `0` (the
    /// default) takes `limits.model_concurrency`.
    #[serde(default)]
    pub concurrency: u32,
}

/// Retry policy for one model: exponential backoff with full jitter, only for retryable
/// failures, within one deadline for the whole task (every attempt on every provider).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Tries per provider, the first included (1 = no retries).
    pub attempts: u32,
    /// Backoff ceiling before the first retry, in ms; it doubles per retry.
    pub base_ms: u64,
    /// Largest backoff ceiling, in ms.
    pub cap_ms: u64,
    /// Deadline of the whole dispatch (all attempts, waits and fallbacks), in ms.
    pub deadline_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 3, base_ms: 250, cap_ms: 5_000, deadline_ms: 300_000 }
    }
}

/// The built-in procedural stand-in's AIR id.
pub const PROCEDURAL_AIR: &str = "mediagate:procedural@1";
/// The built-in procedural video stand-in's AIR id.
pub const PROCEDURAL_VIDEO_AIR: &str = "mediagate:procedural-video@1";
/// The built-in Lanczos upscaler's AIR id.
pub const LANCZOS_AIR: &str = "mediagate:lanczos@1";
/// The built-in procedural audio stand-in's AIR id.
pub const PROCEDURAL_AUDIO_AIR: &str = "mediagate:procedural-audio@1";
/// The built-in Canny edge detector's AIR id (`imageControlNetPreProcess`).
pub const CANNY_AIR: &str = "mediagate:canny@1";
/// The built-in vectorizer's AIR id.
pub const VTRACER_AIR: &str = "mediagate:vtracer@1";

/// The models built into every catalog unless the configuration redefines their AIR ids.
pub fn builtin_models() -> Vec<ModelSpec> {
    vec![
        ModelSpec {
            air: PROCEDURAL_AIR.into(),
            task_type: TaskType::ImageInference,
            provider: "procedural".into(),
            price_usd: "0.0006".into(),
            description: "Procedural stand-in, NOT a generative model: draws deterministic seeded \
                          gradients and shapes from (prompt, seed, width, height) so the whole \
                          pipeline runs without a GPU."
                .into(),
            bounds: Bounds::default(),
            retry: RetryPolicy::default(),
            fallback: vec![],
            concurrency: 0,
        },
        ModelSpec {
            air: LANCZOS_AIR.into(),
            task_type: TaskType::Upscale,
            provider: "lanczos".into(),
            price_usd: "0.0002".into(),
            description: "Real Lanczos3 resampling by upscaleFactor (no learned detail).".into(),
            bounds: Bounds::default(),
            retry: RetryPolicy::default(),
            fallback: vec![],
            concurrency: 0,
        },
        ModelSpec {
            air: PROCEDURAL_AUDIO_AIR.into(),
            task_type: TaskType::AudioInference,
            provider: "procedural-audio".into(),
            price_usd: "0.002".into(),
            description: "Procedural audio stand-in, NOT a generative model: plays seeded tones chosen from \
                          (prompt, seed) into a real WAV file, so the audio pipeline runs without a GPU."
                .into(),
            // Up to 60 s and 4 results a task; WAV only.
            bounds: Bounds { duration_max_secs: 60, max_number_results: 4, ..Bounds::default() },
            retry: RetryPolicy::default(),
            fallback: vec![],
            concurrency: 0,
        },
        ModelSpec {
            air: CANNY_AIR.into(),
            task_type: TaskType::ImageControlNetPreProcess,
            provider: "canny".into(),
            price_usd: "0.0002".into(),
            description: "Real Canny edge detection (imageproc: Gaussian blur, Sobel gradients, \
                          non-maximum suppression, hysteresis by lowThresholdCanny and highThresholdCanny): \
                          the canny preprocessor only."
                .into(),
            // Any aspect, as for the vectorizer.
            bounds: Bounds { input_aspect_min: 0.05, input_aspect_max: 20.0, ..Bounds::default() },
            retry: RetryPolicy::default(),
            fallback: vec![],
            concurrency: 0,
        },
        ModelSpec {
            air: VTRACER_AIR.into(),
            task_type: TaskType::Vectorize,
            provider: "vtracer".into(),
            price_usd: "0.0005".into(),
            description: "Real raster-to-SVG tracing (vtracer: color clustering and curve fitting); \
                          no learned cleanup of noisy photos."
                .into(),
            // Any aspect (logos, banners, icons), up to 2048x2048 pixels traced.
            bounds: Bounds { input_aspect_min: 0.05, input_aspect_max: 20.0, ..Bounds::default() },
            retry: RetryPolicy::default(),
            fallback: vec![],
            concurrency: 0,
        },
        ModelSpec {
            air: PROCEDURAL_VIDEO_AIR.into(),
            task_type: TaskType::VideoInference,
            provider: "procedural-video".into(),
            price_usd: "0.005".into(),
            description: "Procedural video stand-in, NOT a generative model: animates seeded \
                          gradients and shapes into a real MP4 (H.264) or WebM (VP8) file so the \
                          video pipeline runs without a GPU."
                .into(),
            bounds: video_bounds(),
            retry: RetryPolicy::default(),
            fallback: vec![],
            concurrency: 0,
        },
    ]
    .into_iter()
    .chain(runway_models())
    .collect()
}

/// What the procedural video stand-in renders: up to 1920 a side and 1080p worth of pixels,
/// sides in steps of 8 (every Runway ratio is one).
fn video_bounds() -> Bounds {
    Bounds {
        width_min: 64,
        width_max: 1920,
        height_min: 64,
        height_max: 1920,
        dimension_step: 8,
        max_pixels: 1920 * 1080,
        ..Bounds::default()
    }
}

/// Runway model names (used by the Runway dialect) routed to the local stand-ins, so the Runway
/// endpoints run without a GPU. A `[[models]]` entry with the same name routes one to a real
/// provider instead.
fn runway_models() -> Vec<ModelSpec> {
    const NOTE: &str = "Runway model name served by a local stand-in, NOT the Runway model: ";
    // Runway's ratios: every side a multiple of 8, up to 2112 wide, at most 1920x1080 pixels.
    let image = Bounds {
        width_min: 64,
        width_max: 2112,
        height_min: 64,
        height_max: 2112,
        dimension_step: 8,
        max_pixels: 1920 * 1080,
        max_number_results: 1,
        ..Bounds::default()
    };
    let video = video_bounds();
    let entry = |air: &str, task_type, provider: &str, price: &str, what: &str, bounds: &Bounds| ModelSpec {
        air: air.into(),
        task_type,
        provider: provider.into(),
        price_usd: price.into(),
        description: format!("{NOTE}{what}"),
        bounds: bounds.clone(),
        retry: RetryPolicy::default(),
        fallback: vec![],
        concurrency: 0,
    };
    let procedural_image = "seeded gradients and shapes (mediagate:procedural@1).";
    let procedural_video = "a real MP4 of animated seeded shapes (mediagate:procedural-video@1).";
    let upscale = Bounds { upscale_factor_min: 2, upscale_factor_max: 16, ..Bounds::default() };
    vec![
        entry("gen4_image", TaskType::ImageInference, "procedural", "0.05", procedural_image, &image),
        entry("gen4_image_turbo", TaskType::ImageInference, "procedural", "0.02", procedural_image, &image),
        entry("gen4_turbo", TaskType::VideoInference, "procedural-video", "0.25", procedural_video, &video),
        entry("gen4.5", TaskType::VideoInference, "procedural-video", "0.25", procedural_video, &video),
        entry("veo3.1", TaskType::VideoInference, "procedural-video", "0.40", procedural_video, &video),
        entry("veo3.1_fast", TaskType::VideoInference, "procedural-video", "0.20", procedural_video, &video),
        entry(
            "magnific_precision_upscaler_v2",
            TaskType::Upscale,
            "lanczos",
            "0.02",
            "Lanczos3 resampling by scaleFactor (mediagate:lanczos@1), no learned detail.",
            &upscale,
        ),
    ]
}
