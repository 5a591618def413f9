//! `removeBackground` (legacy name `imageBackgroundRemoval`): an image's background made
//! transparent (or a colour) by a segmentation model.

use super::video_form::VideoForm;
use super::{
    Family, Input, OutputOptions, TaskParams, file_output_options, model_param, model_wire, output_options,
    output_wire, put,
};
use crate::error::ApiError;
use crate::model::ModelSpec;
use crate::param::{ParamPath, ParamReader, Shape};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A background-removal request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoveBackground {
    /// The image as sent (data URI, base64, HTTPS URL or an image UUID).
    pub input_image: String,
    /// Whether it came as `inputs.image` (the newer form) rather than `inputImage`.
    pub in_inputs: bool,
    /// What the model is told.
    pub settings: BackgroundSettings,
    /// The AIR id of the model (a configured one: there is no built-in segmentation model).
    pub model: String,
    /// Output options.
    pub output: OutputOptions,
    /// A video instead (`inputs.video`, Runware's `videoBackgroundRemoval`); `input_image` is
    /// then empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoForm>,
}

/// Runware's background-removal settings (sent in `settings`, or at the top level as the Python
/// SDK sends them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackgroundSettings {
    /// The colour put where the background was, `[r, g, b, a]`.
    pub rgba: Option<[u8; 4]>,
    /// Sharpen the mask's edges.
    pub post_process_mask: Option<bool>,
    /// Return the mask instead of the cut-out image.
    pub return_only_mask: Option<bool>,
    /// Refine edges (hair, fur) by alpha matting.
    pub alpha_matting: Option<bool>,
    /// Alpha matting's foreground threshold, 1 to 255.
    pub alpha_matting_foreground_threshold: Option<u8>,
    /// Alpha matting's background threshold, 1 to 255.
    pub alpha_matting_background_threshold: Option<u8>,
    /// Alpha matting's erosion, 1 to 255.
    pub alpha_matting_erode_size: Option<u8>,
}

const FLAGS: [&str; 3] = ["postProcessMask", "returnOnlyMask", "alphaMatting"];
const LEVELS: [&str; 3] =
    ["alphaMattingForegroundThreshold", "alphaMattingBackgroundThreshold", "alphaMattingErodeSize"];

impl TaskParams for RemoveBackground {
    const NAME: &'static str = "removeBackground";
    const ALIASES: &'static [&'static str] = &["imageBackgroundRemoval"];
    const FAMILY: Family = Family::Image;
    const DEFAULT_MODEL: Option<&'static str> = None;
    /// A 64x64 PNG.
    const EXAMPLE: &'static str = r#"{"inputImage":"iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAIAAAAlC+aJAAAAT0lEQVR42u3PQQkAAAgEsEtiEvtjLCP4FgYrsEzXaxEQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQuCxxWCEP+z44TwAAAABJRU5ErkJggg==","settings":{"rgba":[255,255,255,0]}}"#;

    /// The image in `inputs` with the settings at the top level (as the Python SDK sends them),
    /// and the video form.
    const EXAMPLES: &'static [&'static str] = &[
        r#"{"inputs":{"image":"iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAIAAAAlC+aJAAAAT0lEQVR42u3PQQkAAAgEsEtiEvtjLCP4FgYrsEzXaxEQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQuCxxWCEP+z44TwAAAABJRU5ErkJggg=="},"rgba":[0,0,0,255],"postProcessMask":true,"returnOnlyMask":false,"alphaMatting":true,"alphaMattingForegroundThreshold":240,"alphaMattingBackgroundThreshold":10,"alphaMattingErodeSize":10}"#,
        r#"{"inputs":{"video":"https://example.com/clip.mp4"},"outputFormat":"WEBM","width":640,"height":360,"fps":24}"#,
    ];

    fn parse(r: &mut ParamReader<'_>) -> Result<Self, ApiError> {
        let what = "give the image as a data URI, base64 data, an HTTPS URL or the imageUUID of an upload or output";
        for key in ["inputImage", "inputs"] {
            r.describe(key, "Send the image once, as inputImage or as inputs.image (or a video as inputs.video).");
        }
        let (input_image, in_inputs) = match (r.opt_string("inputImage", 1, usize::MAX)?, r.raw_as("inputs", Shape::Object)) {
            (Some(image), None) => (image, false),
            (None, Some(Value::Object(inputs))) => {
                if let Some(video) = VideoForm::read(r, inputs, true)? {
                    let settings = settings(r)?;
                    let model = model_param(r, Self::DEFAULT_MODEL)?;
                    let output = file_output_options(r)?;
                    let video = Some(video);
                    return Ok(RemoveBackground { input_image: String::new(), in_inputs: true, settings, model, output, video });
                }
                let mut ir = ParamReader::new(inputs, ParamPath::key("inputs"));
                let image = ir.string("image", 1, usize::MAX, what)?;
                ir.finish()?;
                (image, true)
            }
            (None, Some(_)) => {
                return Err(r.invalid("inputs", "it must be an object such as {\"image\": \"<imageUUID>\"}."));
            }
            (None, None) => return Err(r.missing("inputImage", what)),
            (Some(_), Some(_)) => {
                return Err(r.invalid("inputs", "send the image once, as 'inputImage' or as 'inputs.image'."));
            }
        };
        let settings = settings(r)?;
        let model = model_param(r, Self::DEFAULT_MODEL)?;
        let output = output_options(r)?;
        Ok(RemoveBackground { input_image, in_inputs, settings, model, output, video: None })
    }

    fn to_wire(&self) -> Map<String, Value> {
        let mut w = Map::new();
        if let Some(v) = &self.video {
            v.write(&mut w);
        } else if self.in_inputs {
            w.insert("inputs".into(), serde_json::json!({"image": self.input_image}));
        } else {
            w.insert("inputImage".into(), self.input_image.clone().into());
        }
        let s = &self.settings;
        let mut sw = Map::new();
        put(&mut sw, "rgba", s.rgba.map(|c| c.to_vec()));
        for (key, v) in FLAGS.iter().zip([s.post_process_mask, s.return_only_mask, s.alpha_matting]) {
            put(&mut sw, key, v);
        }
        let levels = [s.alpha_matting_foreground_threshold, s.alpha_matting_background_threshold, s.alpha_matting_erode_size];
        for (key, v) in LEVELS.iter().zip(levels) {
            put(&mut sw, key, v);
        }
        if !sw.is_empty() {
            w.insert("settings".into(), Value::Object(sw));
        }
        model_wire(&mut w, &self.model);
        output_wire(&mut w, &self.output, self.video.is_none());
        w
    }

    fn validate(&self, _model: &ModelSpec) -> Result<(), ApiError> {
        Ok(())
    }

    model_and_output!();

    fn inputs(&self) -> Vec<Input<'_>> {
        if let Some(v) = &self.video {
            return vec![v.input()];
        }
        let param = if self.in_inputs { ParamPath::key("inputs").child("image") } else { ParamPath::key("inputImage") };
        vec![Input::image(&self.input_image, param)]
    }

    fn inputs_mut(&mut self) -> Vec<&mut String> {
        match &mut self.video {
            Some(v) => vec![&mut v.video],
            None => vec![&mut self.input_image],
        }
    }

    video_form_methods!();
}

/// The settings, from `settings` or the top level (not both).
fn settings(r: &mut ParamReader<'_>) -> Result<BackgroundSettings, ApiError> {
    r.describe("settings", "The settings go here or at the top level, not both.");
    let nested = match r.raw_as("settings", Shape::Object) {
        None => None,
        Some(Value::Object(s)) => Some(s),
        Some(_) => return Err(r.invalid("settings", "it must be an object such as {\"rgba\": [255, 255, 255, 0]}.")),
    };
    let top_level = ["rgba"].iter().chain(&FLAGS).chain(&LEVELS).any(|k| r.peek(k).is_some());
    if nested.is_some() && top_level {
        return Err(r.invalid("settings", "send the settings in 'settings' or at the top level, not both."));
    }
    match nested {
        Some(nested) => {
            let mut s = ParamReader::new(nested, ParamPath::key("settings"));
            let settings = read_settings(&mut s)?;
            s.finish()?;
            Ok(settings)
        }
        None => read_settings(r),
    }
}

fn read_settings(s: &mut ParamReader<'_>) -> Result<BackgroundSettings, ApiError> {
    const RGBA: Shape<'_> = Shape::Array { min: 4, max: 4, items: &Shape::Int { min: 0, max: 255 } };
    let rgba = match s.raw_as("rgba", RGBA) {
        None => None,
        Some(Value::Array(c)) if c.len() == 4 && c.iter().all(|v| v.as_u64().is_some_and(|n| n <= 255)) => {
            Some([0, 1, 2, 3].map(|i| c[i].as_u64().unwrap_or(0) as u8))
        }
        Some(_) => return Err(s.invalid("rgba", "it must be [r, g, b, a], four integers from 0 to 255.")),
    };
    let mut flags = [None; 3];
    for (slot, key) in flags.iter_mut().zip(FLAGS) {
        *slot = s.opt_bool(key)?;
    }
    let mut levels = [None; 3];
    for (slot, key) in levels.iter_mut().zip(LEVELS) {
        *slot = s.opt_int(key, 1, 255)?.map(|n| n as u8);
    }
    Ok(BackgroundSettings {
        rgba,
        post_process_mask: flags[0],
        return_only_mask: flags[1],
        alpha_matting: flags[2],
        alpha_matting_foreground_threshold: levels[0],
        alpha_matting_background_threshold: levels[1],
        alpha_matting_erode_size: levels[2],
    })
}
