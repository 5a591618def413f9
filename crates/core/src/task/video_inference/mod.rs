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
use crate::param::{ParamPath, ParamReader};
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

    fn parse(r: &mut ParamReader<'_>) -> Result<Self, ApiError> {
        let positive_prompt =
            r.string("positivePrompt", 2, 3000, "describe the video to generate (2 to 3000 characters)")?;
        let model = model_param(r, Self::DEFAULT_MODEL)?;
        let width = r.opt_int_checked_later("width")?.unwrap_or(640);
        let height = r.opt_int_checked_later("height")?.unwrap_or(360);
        let duration_secs = r.opt_int_checked_later("duration")?.unwrap_or(5);
        let fps = r.opt_int_checked_later("fps")?.unwrap_or(24);
        let seed = super::seed_param(r)?;
        let first_frame = first_frame(r)?;
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
        if let Some(frame) = &self.first_frame {
            w.insert("frameImages".into(), serde_json::json!([{"inputImage": frame, "frame": "first"}]));
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
        several.into_iter().chain(table::features(EXTRAS, &self.extras)).collect()
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
        let path = ParamPath::key("frameImages").index(0).child("inputImage");
        self.first_frame
            .iter()
            .map(|f| Input::image(f, path.clone()))
            .chain(table::images(EXTRAS, &self.extras))
            .collect()
    }

    fn inputs_mut(&mut self) -> Vec<&mut String> {
        self.first_frame.iter_mut().chain(table::images_mut(EXTRAS, &mut self.extras)).collect()
    }
}

/// `frameImages`: at most one, the first frame.
fn first_frame(r: &mut ParamReader<'_>) -> Result<Option<String>, ApiError> {
    match r.raw("frameImages") {
        None => Ok(None),
        Some(Value::Array(frames)) => {
            if frames.len() > 1 {
                return Err(
                    r.invalid("frameImages", "at most one frame image (the first frame) is supported.")
                );
            }
            match frames.first() {
                None => Ok(None),
                Some(Value::Object(f)) => {
                    let mut fr = ParamReader::new(f, ParamPath::key("frameImages").index(0));
                    let image = fr.string(
                        "inputImage",
                        1,
                        usize::MAX,
                        "the first frame as a data URI, base64 or image UUID",
                    )?;
                    fr.opt_enum("frame", &["first"])?;
                    fr.finish()?;
                    Ok(Some(image))
                }
                Some(_) => Err(r.invalid(
                    "frameImages",
                    "each element must be an object {\"inputImage\": ..., \"frame\": \"first\"}.",
                )),
            }
        }
        Some(_) => Err(
            r.invalid("frameImages", "it must be an array of {\"inputImage\": ..., \"frame\": \"first\"}.")
        ),
    }
}
