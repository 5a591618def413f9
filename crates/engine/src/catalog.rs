//! The model catalog: AIR id → model spec (task type, provider, price, bounds).

use mediagate_core::model::{ModelSpec, builtin_models};
use mediagate_core::money::parse_usd;
use mediagate_core::task::{TaskRequest, TaskType};
use mediagate_core::{ApiError, ErrorCode, ParamPath};
use std::collections::BTreeMap;

/// A catalog entry with its price parsed.
#[derive(Debug, Clone)]
pub struct Model {
    /// The spec as configured.
    pub spec: ModelSpec,
    /// Price per result in micro-dollars.
    pub price_micros: i64,
}

/// Work the listed price of a local image stand-in pays for: one 1024×1024 picture per result.
pub const IMAGE_REFERENCE_PIXELS: u64 = 1024 * 1024;

/// Work the listed price of the local video stand-in pays for: 5 s of 1280×720 at 24 fps.
pub const VIDEO_REFERENCE_PIXEL_FRAMES: u64 = 1280 * 720 * 5 * 24;

impl Model {
    /// The price of one result of `request` in micro-dollars. Remote providers charge the listed
    /// price per result. The local stand-ins spend this server's CPU in proportion to the work,
    /// so their price follows it: the listed price pays for the reference size (a 1024×1024
    /// image; 5 s of 1280×720 at 24 fps) and anything smaller, larger work costs
    /// proportionally more (rounded up to the micro-dollar). An upscale's output size is known
    /// only once its input has been read, after admission: it is admitted at the listed price
    /// and priced by [`Model::upscale_price_micros`] before it runs.
    pub fn unit_price_micros(&self, request: &TaskRequest) -> i64 {
        // mediagate's own stand-ins charge for the work they do. Models named after another
        // platform's (Runway's gen4_turbo, veo3.1, …) keep that platform's listed price per
        // result, which is what their SDK users budget with.
        if !self.spec.air.starts_with("mediagate:") {
            return self.price_micros;
        }
        let (work, reference) = match (self.spec.provider.as_str(), request) {
            ("procedural", TaskRequest::ImageInference(r)) => {
                (u64::from(r.width) * u64::from(r.height), IMAGE_REFERENCE_PIXELS)
            }
            ("procedural-video", TaskRequest::VideoInference(r)) => (
                u64::from(r.width) * u64::from(r.height) * u64::from(r.duration_secs) * u64::from(r.fps),
                VIDEO_REFERENCE_PIXEL_FRAMES,
            ),
            _ => return self.price_micros,
        };
        self.scaled_price_micros(work, reference)
    }

    /// The price of one upscale result of `output_pixels` (output width × height). The local
    /// upscaler's listed price pays for a 1024×1024 output and anything smaller; larger outputs
    /// cost proportionally more. Other providers' upscales keep the listed price.
    pub fn upscale_price_micros(&self, output_pixels: u64) -> i64 {
        if !self.spec.air.starts_with("mediagate:") || self.spec.provider != "lanczos" {
            return self.price_micros;
        }
        self.scaled_price_micros(output_pixels, IMAGE_REFERENCE_PIXELS)
    }

    /// The listed price when `work` is at most `reference`, else the price scaled by
    /// `work / reference`, rounded up to the micro-dollar.
    fn scaled_price_micros(&self, work: u64, reference: u64) -> i64 {
        if work <= reference {
            return self.price_micros;
        }
        let scaled = (self.price_micros.max(0) as u128 * u128::from(work)).div_ceil(u128::from(reference));
        i64::try_from(scaled).unwrap_or(i64::MAX)
    }
}

/// The models this server serves.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    models: BTreeMap<String, Model>,
}

impl Catalog {
    /// Built-in models overlaid with configured ones (same AIR id replaces). Fails on a bad
    /// price or a provider name not in `providers`.
    pub fn build(configured: &[ModelSpec], providers: &[&str]) -> Result<Catalog, String> {
        let mut models = BTreeMap::new();
        for spec in builtin_models().into_iter().chain(configured.iter().cloned()) {
            let price_micros =
                parse_usd(&spec.price_usd).map_err(|e| format!("model {}: price_usd: {e}", spec.air))?;
            if !providers.contains(&spec.provider.as_str()) {
                return Err(format!(
                    "model {}: provider '{}' is not configured (known: {})",
                    spec.air,
                    spec.provider,
                    providers.join(", ")
                ));
            }
            models.insert(spec.air.clone(), Model { spec, price_micros });
        }
        Ok(Catalog { models })
    }

    /// The configured `concurrency` of a model (`0`: none of its own), if the model exists.
    pub fn concurrency(&self, air: &str) -> Option<u32> {
        self.models.get(air).map(|m| m.spec.concurrency)
    }

    /// Every model, by AIR id.
    pub fn models(&self) -> impl Iterator<Item = &Model> {
        self.models.values()
    }

    /// The model for `air`, checked to serve `task_type`.
    pub fn resolve(&self, air: &str, task_type: TaskType) -> Result<&Model, ApiError> {
        let Some(m) = self.models.get(air) else {
            let known: Vec<&str> = self
                .models
                .values()
                .filter(|m| m.spec.task_type == task_type)
                .map(|m| m.spec.air.as_str())
                .collect();
            return Err(ApiError::new(
                ErrorCode::UnknownModel,
                format!(
                    "Unknown model '{air}'. Models for {} on this server: {}.",
                    task_type.as_str(),
                    known.join(", ")
                ),
            )
            .with_parameter(ParamPath::key("model")));
        };
        if m.spec.task_type != task_type {
            return Err(ApiError::new(
                ErrorCode::UnsupportedModelForTask,
                format!(
                    "Model '{air}' serves {}, not {}. Use it with taskType {} or pick another model.",
                    m.spec.task_type.as_str(),
                    task_type.as_str(),
                    m.spec.task_type.as_str()
                ),
            )
            .with_parameter(ParamPath::key("model")));
        }
        Ok(m)
    }

    /// The default model of a task type: the built-in one.
    pub fn default_for(task_type: TaskType) -> &'static str {
        match task_type {
            TaskType::ImageInference => mediagate_core::model::PROCEDURAL_AIR,
            TaskType::Upscale => mediagate_core::model::LANCZOS_AIR,
            TaskType::VideoInference => mediagate_core::model::PROCEDURAL_VIDEO_AIR,
        }
    }
}
