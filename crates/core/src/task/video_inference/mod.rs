//! `videoInference`: text or image to video, with every optional parameter of the official SDKs
//! (read by the table in [`extras`]).

mod extras;

pub use extras::EXTRAS;

use super::extras::{self as table};
use super::{
    Family, Input, OutputOptions, TaskParams, VideoFormat, check_dimensions,
    in_range, invalid, model_param, output_wire, put,
};
use crate::error::ApiError;
use crate::model::{ModelSpec, PROCEDURAL_VIDEO_AIR};
use crate::param::{ParamPath, ParamReader, Shape};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

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
    /// Frame images after the first (`frame`: `"last"` or a frame number), in the order sent:
    /// a feature, for providers that take them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub later_frames: Vec<LaterFrame>,
    /// The container.
    pub video_format: VideoFormat,
    /// Output options (`format` is unused for video).
    pub output: OutputOptions,
    /// How many videos, each its own result (more than one only where the provider makes them).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub number_results: u32,
    /// The optional parameters read by [`EXTRAS`], as they came.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extras: BTreeMap<String, Value>,
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

impl TaskParams for VideoInference {
    const NAME: &'static str = "videoInference";
    const FAMILY: Family = Family::Video;
    const DEFAULT_MODEL: Option<&'static str> = Some(PROCEDURAL_VIDEO_AIR);
    // Rendering outlives any sensible HTTP wait: async only, as on Runware.
    const ASYNC_ONLY: bool = true;
    const EXAMPLE: &'static str =
        r#"{"positivePrompt":"waves on a shore","width":128,"height":128,"duration":1,"fps":4}"#;
    /// From a first frame (the `frameImages` items' fields).
    const EXAMPLES: &'static [&'static str] = &[r#"{"positivePrompt":"waves on a shore","width":128,"height":128,"duration":1,"fps":4,"frameImages":[{"inputImage":"iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAIAAAAlC+aJAAAAT0lEQVR42u3PQQkAAAgEsEtiEvtjLCP4FgYrsEzXaxEQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQuCxxWCEP+z44TwAAAABJRU5ErkJggg==","frame":"first"}]}"#];

    fn parse(r: &mut ParamReader<'_>) -> Result<Self, ApiError> {
        let positive_prompt =
            r.string("positivePrompt", 2, 3000, "describe the video to generate (2 to 3000 characters)")?;
        let model = model_param(r, Self::DEFAULT_MODEL)?;
        let width = r.opt_int_checked_later("width")?.unwrap_or(640);
        let height = r.opt_int_checked_later("height")?.unwrap_or(360);
        let duration_secs = r.opt_int_checked_later("duration")?.unwrap_or(5);
        let fps = r.opt_int_checked_later("fps")?.unwrap_or(24);
        let seed = super::seed_param(r)?;
        let (first_frame, later_frames) = frames(r)?;
        let output = super::file_output_options(r)?;
        let video_format = r
            .opt_enum("outputFormat", VideoFormat::NAMES)?
            .and_then(VideoFormat::parse)
            .unwrap_or(VideoFormat::Mp4);
        let number_results = r.opt_int_checked_later("numberResults")?.unwrap_or(1);
        let extras = table::read(r, EXTRAS)?;
        Ok(VideoInference {
            positive_prompt,
            model,
            width,
            height,
            duration_secs,
            fps,
            seed,
            first_frame,
            later_frames,
            video_format,
            output,
            number_results,
            extras,
        })
    }

    fn to_wire(&self) -> Map<String, Value> {
        let mut w = Map::new();
        w.insert("positivePrompt".into(), self.positive_prompt.clone().into());
        super::model_wire(&mut w, &self.model);
        w.insert("width".into(), self.width.into());
        w.insert("height".into(), self.height.into());
        w.insert("duration".into(), self.duration_secs.into());
        w.insert("fps".into(), self.fps.into());
        put(&mut w, "seed", self.seed);
        let first = self.first_frame.iter().map(|f| serde_json::json!({"inputImage": f, "frame": "first"}));
        let later = self.later_frames.iter().map(|f| serde_json::json!({"inputImage": f.input_image, "frame": f.frame}));
        let frames: Vec<Value> = first.chain(later).collect();
        if !frames.is_empty() {
            w.insert("frameImages".into(), Value::Array(frames));
        }
        output_wire(&mut w, &self.output, false);
        let format = match self.video_format {
            VideoFormat::Mp4 => "MP4",
            VideoFormat::Webm => "WEBM",
        };
        w.insert("outputFormat".into(), format.into());
        if self.number_results != 1 {
            w.insert("numberResults".into(), self.number_results.into());
        }
        table::write(&mut w, &self.extras);
        w
    }

    fn validate(&self, model: &ModelSpec) -> Result<(), ApiError> {
        let b = &model.bounds;
        check_dimensions(model, self.width, self.height)?;
        if !(1..=b.duration_max_secs).contains(&self.duration_secs) {
            return Err(invalid("duration", in_range(1, b.duration_max_secs, " seconds", model)));
        }
        if !(1..=b.fps_max).contains(&self.fps) {
            return Err(invalid("fps", in_range(1, b.fps_max, "", model)));
        }
        super::check_results(self.number_results, self.seed, model)
    }

    model_and_output!();

    fn seed(&self) -> Option<Option<u64>> {
        Some(self.seed)
    }

    fn result_count(&self) -> u32 {
        self.number_results
    }

    fn features(&self) -> Vec<(&'static str, ParamPath)> {
        let several = (self.number_results > 1).then(|| ("numberResults", ParamPath::key("numberResults")));
        let later = (!self.later_frames.is_empty()).then(|| {
            let first_later = usize::from(self.first_frame.is_some());
            ("frameImages", ParamPath::key("frameImages").index(first_later).child("frame"))
        });
        several.into_iter().chain(later).chain(table::features(EXTRAS, &self.extras)).collect()
    }

    fn work(&self) -> Option<u64> {
        Some(
            u64::from(self.width)
                * u64::from(self.height)
                * u64::from(self.duration_secs)
                * u64::from(self.fps),
        )
    }

    fn inputs(&self) -> Vec<Input<'_>> {
        let at = |i: usize| ParamPath::key("frameImages").index(i).child("inputImage");
        let offset = usize::from(self.first_frame.is_some());
        self.first_frame
            .iter()
            .map(|f| Input::image(f, at(0)))
            .chain(self.later_frames.iter().enumerate().map(|(j, f)| Input::image(&f.input_image, at(offset + j))))
            .chain(table::images(EXTRAS, &self.extras))
            .collect()
    }

    fn inputs_mut(&mut self) -> Vec<&mut String> {
        self.first_frame
            .iter_mut()
            .chain(self.later_frames.iter_mut().map(|f| &mut f.input_image))
            .chain(table::images_mut(EXTRAS, &mut self.extras))
            .collect()
    }
}

/// A frame image after the first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaterFrame {
    /// The image as sent.
    pub input_image: String,
    /// `"last"` or a frame number, as sent.
    pub frame: Value,
}

/// `frameImages`: the first frame (the first element, `frame` absent or `"first"`), which every
/// video model here takes, and the frames after it (`"last"` or a frame number), a feature.
fn frames(r: &mut ParamReader<'_>) -> Result<(Option<String>, Vec<LaterFrame>), ApiError> {
    let shape = "it must be an array of {\"inputImage\": ..., \"frame\": \"first\" | \"last\" | <frame number>}.";
    r.describe(
        "frameImages",
        "The first frame leads (frame absent or \"first\"); frames after it (\"last\" or a frame number) are a feature of some models.",
    );
    let frames = match r.raw_as("frameImages", Shape::Array { min: 0, max: 16, items: &Shape::Object }) {
        None => return Ok((None, Vec::new())),
        Some(Value::Array(frames)) => frames,
        Some(_) => return Err(r.invalid("frameImages", shape)),
    };
    if frames.len() > 16 {
        return Err(r.invalid("frameImages", format!("it holds {} frames; it may hold at most 16.", frames.len())));
    }
    let (mut first, mut later) = (None, Vec::new());
    for (i, f) in frames.iter().enumerate() {
        let Value::Object(f) = f else { return Err(r.invalid("frameImages", shape)) };
        let at = ParamPath::key("frameImages").index(i);
        let mut fr = ParamReader::new(f, at.clone());
        let image = fr.string("inputImage", 1, usize::MAX, "the frame as a data URI, base64, an HTTPS URL or an image UUID")?;
        const FRAME: Shape<'_> =
            Shape::AnyOf(&[Shape::Enum(&["first", "last"]), Shape::Int { min: 0, max: i64::MAX }]);
        let frame = fr.raw_as("frame", FRAME).cloned();
        fr.finish()?;
        let bad = |detail: &str| {
            ApiError::new(
                crate::error::ErrorCode::InvalidParameterValue,
                format!("Invalid value for parameter '{}': {detail}", at.child("frame")),
            )
            .with_parameter(at.child("frame"))
        };
        match frame {
            None if i == 0 => first = Some(image),
            Some(Value::String(s)) if s == "first" && i == 0 => first = Some(image),
            Some(Value::String(s)) if s == "first" => {
                return Err(bad("the first frame must be the first element of frameImages."));
            }
            Some(Value::String(s)) if s == "last" => later.push(LaterFrame { input_image: image, frame: "last".into() }),
            Some(Value::Number(n)) if n.as_u64().is_some() => {
                later.push(LaterFrame { input_image: image, frame: Value::Number(n) })
            }
            None => return Err(bad("say which frame this image is: \"last\" or a frame number.")),
            Some(_) => return Err(bad("it must be \"first\", \"last\" or a frame number (0 or more).")),
        }
    }
    Ok((first, later))
}
