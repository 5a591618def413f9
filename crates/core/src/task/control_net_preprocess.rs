//! `imageControlNetPreProcess`: a guide image for ControlNet (edges, depth, pose…) made from an
//! input image. Its results are named `guideImageUUID`, `guideImageURL`… as Runware names them.

use super::{
    Family, Input, OutputOptions, TaskParams, Work, model_param, model_wire, output_options, output_wire, put,
};
use crate::error::ApiError;
use crate::model::{CANNY_AIR, ModelSpec};
use crate::param::{ParamPath, ParamReader};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Runware's preprocessor families (`preProcessorType`).
pub const PRE_PROCESSORS: &[&str] = &[
    "canny",
    "depth",
    "mlsd",
    "normalbae",
    "openpose",
    "tile",
    "seg",
    "lineart",
    "lineart_anime",
    "shuffle",
    "scribble",
    "softedge",
];

/// A preprocessing request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlNetPreprocess {
    /// The image to preprocess, as sent.
    pub input_image: String,
    /// One of [`PRE_PROCESSORS`].
    pub pre_processor_type: String,
    /// Width of the guide image; the input's when absent.
    pub width: Option<u32>,
    /// Height of the guide image; the input's when absent.
    pub height: Option<u32>,
    /// Canny's lower hysteresis threshold, 0 to 255 (default 100).
    pub low_threshold_canny: Option<u32>,
    /// Canny's upper hysteresis threshold, 0 to 255 (default 200).
    pub high_threshold_canny: Option<u32>,
    /// OpenPose: also hands and face.
    pub include_hands_and_face_open_pose: Option<bool>,
    /// The AIR id of the model.
    pub model: String,
    /// Output options.
    pub output: OutputOptions,
}

impl ControlNetPreprocess {
    /// The canny thresholds, defaults filled in.
    pub fn canny_thresholds(&self) -> (u32, u32) {
        (self.low_threshold_canny.unwrap_or(100), self.high_threshold_canny.unwrap_or(200))
    }
}

impl TaskParams for ControlNetPreprocess {
    const NAME: &'static str = "imageControlNetPreProcess";
    const FAMILY: Family = Family::Image;
    const RESULT_PREFIX: Option<&'static str> = Some("guideImage");
    const DEFAULT_MODEL: Option<&'static str> = Some(CANNY_AIR);
    /// A 64x64 PNG with a square in it.
    const EXAMPLE: &'static str = r#"{"inputImage":"iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAIAAAAlC+aJAAAAT0lEQVR42u3PQQkAAAgEsEtiEvtjLCP4FgYrsEzXaxEQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQuCxxWCEP+z44TwAAAABJRU5ErkJggg==","preProcessorType":"canny"}"#;

    fn parse(r: &mut ParamReader<'_>) -> Result<Self, ApiError> {
        let input_image = r.string(
            "inputImage",
            1,
            usize::MAX,
            "give the image to preprocess as a data URI, base64 data, an HTTPS URL or an upload's imageUUID",
        )?;
        let what = format!("name the guide to make, one of {}", PRE_PROCESSORS.join(", "));
        let pre_processor_type = r.enum_value("preProcessorType", PRE_PROCESSORS, &what)?.to_string();
        let width = r.opt_int("width", 64, 2048)?.map(|n| n as u32);
        let height = r.opt_int("height", 64, 2048)?.map(|n| n as u32);
        r.describe("lowThresholdCanny", "At most highThresholdCanny.");
        let low_threshold_canny = r.opt_int("lowThresholdCanny", 0, 255)?.map(|n| n as u32);
        let high_threshold_canny = r.opt_int("highThresholdCanny", 0, 255)?.map(|n| n as u32);
        if let (Some(lo), Some(hi)) = (low_threshold_canny, high_threshold_canny)
            && lo > hi
        {
            return Err(r.invalid(
                "lowThresholdCanny",
                format!("{lo} is above highThresholdCanny ({hi}); the lower threshold must not exceed the upper one."),
            ));
        }
        let include_hands_and_face_open_pose = r.opt_bool("includeHandsAndFaceOpenPose")?;
        let model = model_param(r, Self::DEFAULT_MODEL)?;
        let output = output_options(r)?;
        Ok(ControlNetPreprocess {
            input_image,
            pre_processor_type,
            width,
            height,
            low_threshold_canny,
            high_threshold_canny,
            include_hands_and_face_open_pose,
            model,
            output,
        })
    }

    fn to_wire(&self) -> Map<String, Value> {
        let mut w = Map::new();
        w.insert("inputImage".into(), self.input_image.clone().into());
        w.insert("preProcessorType".into(), self.pre_processor_type.clone().into());
        put(&mut w, "width", self.width);
        put(&mut w, "height", self.height);
        put(&mut w, "lowThresholdCanny", self.low_threshold_canny);
        put(&mut w, "highThresholdCanny", self.high_threshold_canny);
        put(&mut w, "includeHandsAndFaceOpenPose", self.include_hands_and_face_open_pose);
        model_wire(&mut w, &self.model);
        output_wire(&mut w, &self.output, true);
        w
    }

    fn validate(&self, _model: &ModelSpec) -> Result<(), ApiError> {
        Ok(())
    }

    model_and_output!();

    /// Each preprocessor is a feature by its name: a model acts on those its provider has.
    fn features(&self) -> Vec<(&'static str, ParamPath)> {
        let name = PRE_PROCESSORS.iter().copied().find(|p| *p == self.pre_processor_type);
        name.map(|n| (n, ParamPath::key("preProcessorType"))).into_iter().collect()
    }

    fn inputs(&self) -> Vec<Input<'_>> {
        vec![Input::image(&self.input_image, ParamPath::key("inputImage"))]
    }

    fn inputs_mut(&mut self) -> Vec<&mut String> {
        vec![&mut self.input_image]
    }

    /// Priced by the guide's pixels (the input's size unless width and height are sent).
    fn work_with_inputs(&self, _model: &ModelSpec, sizes: &[(u32, u32)]) -> Result<Option<Work>, ApiError> {
        let (w, h) = sizes.first().copied().unwrap_or((0, 0));
        let (w, h) = (self.width.unwrap_or(w), self.height.unwrap_or(h));
        Ok(Some(Work {
            amount: u64::from(w) * u64::from(h),
            what: format!("{w}x{h} guide image"),
            smaller: "use a smaller input image or width and height",
        }))
    }
}
