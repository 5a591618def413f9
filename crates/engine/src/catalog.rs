//! The model catalog: AIR id → model spec (task type, provider, price, bounds).

use mediagate_core::model::{ModelSpec, builtin_models};
use mediagate_core::money::parse_usd;
use mediagate_core::task::{Family, ParamSupport, TaskRequest, TaskType};
use mediagate_core::{ApiError, ErrorCode, ParamPath};
use std::collections::BTreeMap;

/// A catalog entry with its price parsed.
#[derive(Debug, Clone)]
pub struct Model {
    /// The spec as configured.
    pub spec: ModelSpec,
    /// Price per result in micro-dollars.
    pub price_micros: i64,
    /// The optional parameters its providers act on (set once the providers are known; see
    /// [`Catalog::set_param_support`]).
    pub params: ParamSupport,
}

/// Work the listed price of a local image stand-in pays for: one 1024×1024 picture per result.
pub const IMAGE_REFERENCE_PIXELS: u64 = 1024 * 1024;

/// Work the listed price of a local audio model pays for: 30 s of mono at 44.1 kHz.
pub const AUDIO_REFERENCE_SAMPLES: u64 = 30 * 44_100;

/// Work the listed price of the local video stand-in pays for: 5 s of 1280×720 at 24 fps.
pub const VIDEO_REFERENCE_PIXEL_FRAMES: u64 = 1280 * 720 * 5 * 24;

impl Model {
    /// Refuses a request that uses an optional parameter this model's providers do not act on,
    /// naming the parameter, what the model does take, and where to send it instead.
    pub fn check_params(&self, request: &TaskRequest) -> Result<(), ApiError> {
        let Some((name, path)) = request.features().into_iter().find(|(name, _)| !self.params.allows(name))
        else {
            return Ok(());
        };
        let takes = match self.params.names() {
            Some([]) | None => "none of the optional parameters".to_string(),
            Some(names) => names.join(", "),
        };
        // A feature named by its value (a preprocessor) rather than by its parameter says both.
        let what = if path.to_string() == name { format!("'{path}'") } else { format!("'{path}' {name}") };
        Err(ApiError::new(
            ErrorCode::UnsupportedParameterForModel,
            format!(
                "Parameter {what} is not supported by model {} (provider {}), which takes {takes}. \
                 Change or remove it, or use a model served by a provider that acts on it: runware-upstream \
                 and http-worker send every parameter on (see docs/providers.md).",
                self.spec.air, self.spec.provider
            ),
        )
        .with_parameter(path))
    }

    /// The price of one result of `request` in micro-dollars. Remote providers charge the listed
    /// price per result. The local models (AIR ids in the `mediagate:` namespace) spend this
    /// server's CPU in proportion to the work, so their price follows it: the listed price pays
    /// for the reference size of the task's family (a 1024×1024 image; 5 s of 1280×720 at
    /// 24 fps) and anything smaller, larger work costs proportionally more (rounded up to the
    /// micro-dollar). A task whose work is known only once its inputs have been read (an
    /// upscale's output size) is admitted at the listed price and priced by
    /// [`Model::price_for_work`] before it runs.
    pub fn unit_price_micros(&self, request: &TaskRequest) -> i64 {
        match request.work() {
            Some(work) => self.price_for_work(request.family(), work),
            None => self.price_micros,
        }
    }

    /// The price of one result whose work (pixels, pixel-frames) is `work`: scaled for local
    /// models as [`Model::unit_price_micros`] says, the listed price for the others.
    pub fn price_for_work(&self, family: Family, work: u64) -> i64 {
        // Models named after another platform's (Runway's gen4_turbo, veo3.1, …) or served
        // remotely keep their listed price per result, which is what their SDK users budget with.
        if !self.spec.air.starts_with("mediagate:") {
            return self.price_micros;
        }
        let reference = match family {
            Family::Image => IMAGE_REFERENCE_PIXELS,
            Family::Video => VIDEO_REFERENCE_PIXEL_FRAMES,
            Family::Audio => AUDIO_REFERENCE_SAMPLES,
            Family::Text => return self.price_micros,
        };
        self.scaled_price_micros(work, reference)
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
            models.insert(spec.air.clone(), Model { spec, price_micros, params: ParamSupport::none() });
        }
        Ok(Catalog { models })
    }

    /// Sets what each model's providers act on, from `support_of` its spec.
    pub fn set_param_support(&mut self, support_of: impl Fn(&ModelSpec) -> ParamSupport) {
        for m in self.models.values_mut() {
            m.params = support_of(&m.spec);
        }
    }

    /// The configured `concurrency` of a model (`0`: none of its own), if the model exists.
    pub fn concurrency(&self, air: &str) -> Option<u32> {
        self.models.get(air).map(|m| m.spec.concurrency)
    }

    /// Every model, by AIR id.
    pub fn models(&self) -> impl Iterator<Item = &Model> {
        self.models.values()
    }

    /// The model a task of `task_type` runs on when it names none: the type's built-in model,
    /// else the one model the catalog has for it. Several, or none, is an error that says what
    /// to send or configure.
    pub fn default_for(&self, task_type: TaskType) -> Result<&str, ApiError> {
        if let Some(air) = task_type.default_model()
            && self.models.contains_key(air)
        {
            return Ok(air);
        }
        let name = task_type.as_str();
        let serving: Vec<&str> = self
            .models
            .values()
            .filter(|m| m.spec.task_type == task_type)
            .map(|m| m.spec.air.as_str())
            .collect();
        match serving.as_slice() {
            [one] => Ok(one),
            [] => Err(ApiError::new(
                ErrorCode::UnknownModel,
                format!(
                    "No model serves {name} on this server. An operator adds one: a [[models]] entry with \
                     task_type = \"{name}\" and a provider that serves it (see /docs and docs/providers.md)."
                ),
            )
            .with_parameter(ParamPath::key("model"))),
            several => Err(ApiError::new(
                ErrorCode::MissingParameter,
                format!(
                    "Missing required parameter 'model': several models serve {name} on this server; name one \
                     of: {}.",
                    several.join(", ")
                ),
            )
            .with_parameter(ParamPath::key("model"))),
        }
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
}
