//! `upscale` (legacy name `imageUpscale`): a larger copy of an input image.

use super::video_form::VideoForm;
use super::{
    Family, Input, OutputOptions, TaskParams, Work, file_output_options, in_range, invalid, model_param,
    output_options, output_wire,
};
use crate::error::{ApiError, ErrorCode};
use crate::model::{LANCZOS_AIR, ModelSpec};
use crate::param::{ParamPath, ParamReader, Shape};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
    /// A video to upscale instead (`inputs.video`, Runware's `videoUpscale`); `input_image` is
    /// then empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoForm>,
}

impl TaskParams for Upscale {
    const NAME: &'static str = "upscale";
    const ALIASES: &'static [&'static str] = &["imageUpscale"];
    const FAMILY: Family = Family::Image;
    const DEFAULT_MODEL: Option<&'static str> = Some(LANCZOS_AIR);
    /// A 64x64 PNG.
    const EXAMPLE: &'static str = r#"{"inputImage":"iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAIAAAAlC+aJAAAAT0lEQVR42u3PQQkAAAgEsEtiEvtjLCP4FgYrsEzXaxEQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQuCxxWCEP+z44TwAAAABJRU5ErkJggg==","upscaleFactor":2}"#;

    /// A video upscale (`inputs.video`).
    const EXAMPLES: &'static [&'static str] =
        &[r#"{"inputs":{"video":"https://example.com/clip.mp4"},"upscaleFactor":2,"outputFormat":"MP4"}"#];

    fn parse(r: &mut ParamReader<'_>) -> Result<Self, ApiError> {
        r.describe("inputs", "A video to upscale, {\"video\": ...}, instead of inputImage.");
        if r.peek("inputImage").is_none()
            && let Some(inputs) = r.raw_as("inputs", Shape::Object)
        {
            if let Value::Object(o) = inputs
                && let Some(video) = VideoForm::read(r, o, true)?
            {
                let model = model_param(r, Self::DEFAULT_MODEL)?;
                let upscale_factor = r.opt_int_checked_later("upscaleFactor")?.unwrap_or(2);
                let output = file_output_options(r)?;
                let video = Some(video);
                return Ok(Upscale { input_image: String::new(), model, upscale_factor, output, video });
            }
            return Err(inputs_form_refusal(inputs));
        }
        let input_image = r.string(
            "inputImage",
            1,
            usize::MAX,
            "give the image to upscale as a data URI, base64 data or the imageUUID of an earlier output",
        )?;
        let model = model_param(r, Self::DEFAULT_MODEL)?;
        let upscale_factor = r.opt_int_checked_later("upscaleFactor")?.unwrap_or(2);
        let output = output_options(r)?;
        Ok(Upscale { input_image, model, upscale_factor, output, video: None })
    }

    fn to_wire(&self) -> Map<String, Value> {
        let mut w = Map::new();
        match &self.video {
            Some(v) => v.write(&mut w),
            None => {
                w.insert("inputImage".into(), self.input_image.clone().into());
            }
        }
        super::model_wire(&mut w, &self.model);
        w.insert("upscaleFactor".into(), self.upscale_factor.into());
        output_wire(&mut w, &self.output, self.video.is_none());
        w
    }

    fn validate(&self, model: &ModelSpec) -> Result<(), ApiError> {
        let b = &model.bounds;
        if !(b.upscale_factor_min.max(1)..=b.upscale_factor_max).contains(&self.upscale_factor) {
            return Err(invalid(
                "upscaleFactor",
                in_range(b.upscale_factor_min.max(1), b.upscale_factor_max, "", model),
            ));
        }
        Ok(())
    }

    model_and_output!();

    fn inputs(&self) -> Vec<Input<'_>> {
        match &self.video {
            Some(v) => vec![v.input()],
            None => vec![Input::image(&self.input_image, ParamPath::key("inputImage"))],
        }
    }

    fn inputs_mut(&mut self) -> Vec<&mut String> {
        match &mut self.video {
            Some(v) => vec![&mut v.video],
            None => vec![&mut self.input_image],
        }
    }

    video_form_methods!();

    /// The output's size is known once the input is read: it must fit the model's largest side,
    /// and it is what the task's work (and so a local model's price) is measured by.
    fn work_with_inputs(&self, model: &ModelSpec, sizes: &[(u32, u32)]) -> Result<Option<Work>, ApiError> {
        if self.video.is_some() {
            // A video's output is the provider's to bound; it is priced per result.
            return Ok(None);
        }
        let (w, h) = sizes.first().copied().unwrap_or((0, 0));
        let max = model.bounds.upscale_output_max;
        let f = self.upscale_factor;
        if w.saturating_mul(f) > max || h.saturating_mul(f) > max {
            return Err(ApiError::new(
                ErrorCode::InvalidParameterValue,
                format!(
                    "Invalid value for parameter 'upscaleFactor': the {w}x{h} input scaled by {f} would \
                     exceed {max}px a side. Use a smaller factor or a smaller input image."
                ),
            )
            .with_parameter(ParamPath::key("upscaleFactor")));
        }
        let (out_w, out_h) = (w * f, h * f);
        Ok(Some(Work {
            amount: u64::from(out_w) * u64::from(out_h),
            what: format!("{out_w}x{out_h} output"),
            smaller: "use a smaller input or upscaleFactor",
        }))
    }
}

/// What an `upscale` in the SDKs' newer `inputs` form is told: `inputs.video` asks for a video
/// upscale, which is not served; `inputs.image` is an image upscale this server reads from
/// `inputImage` only (so far). Either way the message names the form that was sent.
fn inputs_form_refusal(inputs: &Value) -> ApiError {
    let has = |k: &str| inputs.get(k).is_some();
    if has("video") {
        return ApiError::new(
            ErrorCode::UnsupportedTaskType,
            "This upscale sends 'inputs.video', a video upscale, which this mediagate server does not serve; \
             it upscales images, sent as 'inputImage'.",
        )
        .with_parameter(ParamPath::key("inputs").child("video"));
    }
    let (param, got) = if has("image") {
        (ParamPath::key("inputs").child("image"), "'inputs': {'image': ...}")
    } else {
        (ParamPath::key("inputs"), "'inputs' without an 'image'")
    };
    ApiError::new(
        ErrorCode::MissingParameter,
        format!(
            "Missing required parameter 'inputImage': this upscale sends {got} (the newer form), which this \
             server does not read yet; send the same image as 'inputImage' (a data URI, base64 data, an \
             HTTPS URL or the imageUUID of an earlier output) instead of 'inputs'."
        ),
    )
    .with_parameter(param)
}
