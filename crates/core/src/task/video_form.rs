//! The video form of image task types: Runware's `videoUpscale`, `videoBackgroundRemoval` and
//! `videoCaption` send `upscale`, `removeBackground` and `caption` with `inputs.video`. The form
//! makes a video (a caption: text), runs asynchronously, and is a feature (`inputs.video`): only
//! models whose providers take videos (`runware-upstream`, `http-worker`) accept it.

use super::extras::{self as table, Extra, Kind};
use super::{Input, MediaKind};
use crate::error::ApiError;
use crate::param::{ParamPath, ParamReader};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The feature a video form is, by its path.
pub const FEATURE: &str = "inputs.video";

/// The containers a video form may ask for.
pub const FORMATS: &[&str] = &["MP4", "WEBM", "MOV"];

/// The other parameters of a video form, sent on as they came.
const EXTRAS: &[Extra] = &[
    Extra::hint("width", Kind::Int { min: 64, max: 8192 }),
    Extra::hint("height", Kind::Int { min: 64, max: 8192 }),
    Extra::hint("fps", Kind::Int { min: 1, max: 120 }),
];

/// A video sent in `inputs.video`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoForm {
    /// The video as sent (a URL, a data URI, base64 or a media UUID).
    pub video: String,
    /// The container asked for (`outputFormat`), when the form makes a video.
    pub format: Option<String>,
    /// `width`, `height`, `fps` as sent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extras: BTreeMap<String, Value>,
}

impl VideoForm {
    /// Reads the form from an `inputs` object that has `video` (with `outputFormat` among
    /// [`FORMATS`] when `makes_video`); `None` when it has none.
    pub fn read(
        r: &mut ParamReader<'_>,
        inputs: &Map<String, Value>,
        makes_video: bool,
    ) -> Result<Option<Self>, ApiError> {
        if !inputs.contains_key("video") {
            return Ok(None);
        }
        let mut ir = ParamReader::new(inputs, ParamPath::key("inputs"));
        let video =
            ir.string("video", 1, usize::MAX, "give the video as an HTTPS URL, a data URI or a media UUID")?;
        ir.finish()?;
        let format =
            if makes_video { r.opt_enum("outputFormat", FORMATS)?.map(str::to_string) } else { None };
        let extras = if makes_video { table::read(r, EXTRAS)? } else { BTreeMap::new() };
        Ok(Some(VideoForm { video, format, extras }))
    }

    /// The video as an input for the intake.
    pub fn input(&self) -> Input<'_> {
        Input {
            reference: &self.video,
            param: ParamPath::key("inputs").child("video"),
            kind: MediaKind::Video,
        }
    }

    /// The form as a feature, with where it was sent.
    pub fn feature() -> (&'static str, ParamPath) {
        (FEATURE, ParamPath::key("inputs").child("video"))
    }

    /// Writes the form back: `inputs.video`, `outputFormat` and the extras.
    pub fn write(&self, w: &mut Map<String, Value>) {
        w.insert("inputs".into(), serde_json::json!({"video": self.video}));
        if let Some(f) = &self.format {
            w.insert("outputFormat".into(), f.clone().into());
        }
        table::write(w, &self.extras);
    }
}
