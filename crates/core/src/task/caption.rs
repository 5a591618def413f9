//! `caption` (legacy name `imageCaption`): a description of one or more images by a vision
//! language model.

use super::video_form::VideoForm;
use super::{Family, Input, MediaKind, OutputOptions, TaskParams, model_param};
use crate::error::{ApiError, ErrorCode};
use crate::model::ModelSpec;
use crate::param::{ParamPath, ParamReader, Shape};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The most images one caption describes.
pub const CAPTION_IMAGES_MAX: usize = 8;

/// A caption request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Caption {
    /// The images as sent (data URI, base64, HTTPS URL or an image UUID), at least one.
    pub images: Vec<String>,
    /// Where they were sent: `inputImage`, `inputImages` or `inputs.image`.
    pub sent_as: CaptionForm,
    /// Instructions for the description, if any (else a general description is asked for).
    pub prompt: Option<String>,
    /// The AIR id of the model (a configured one: there is no built-in vision model).
    pub model: String,
    /// Output options (only `includeCost` applies: the text is in the result).
    pub output: OutputOptions,
}

/// The parameter a caption's images came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CaptionForm {
    /// `inputImage`: one image.
    InputImage,
    /// `inputImages`: an array.
    InputImages,
    /// `inputs.image`: the newer form.
    Inputs,
    /// `inputs.video`: a video to caption (Runware's `videoCaption`).
    Video,
}

impl Caption {
    /// The parameters after the images.
    fn finish(r: &mut ParamReader<'_>, images: Vec<String>, sent_as: CaptionForm) -> Result<Self, ApiError> {
        let prompt = prompt(r)?;
        let model = model_param(r, <Self as TaskParams>::DEFAULT_MODEL)?;
        let output = OutputOptions { include_cost: r.opt_bool("includeCost")?.unwrap_or(false), ..Default::default() };
        Ok(Caption { images, sent_as, prompt, model, output })
    }
}

impl TaskParams for Caption {
    const NAME: &'static str = "caption";
    const ALIASES: &'static [&'static str] = &["imageCaption"];
    const FAMILY: Family = Family::Text;
    const DEFAULT_MODEL: Option<&'static str> = None;
    /// A 64x64 PNG.
    const EXAMPLE: &'static str = r#"{"inputImage":"iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAIAAAAlC+aJAAAAT0lEQVR42u3PQQkAAAgEsEtiEvtjLCP4FgYrsEzXaxEQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQuCxxWCEP+z44TwAAAABJRU5ErkJggg=="}"#;

    /// The other forms of the images (`inputImages`, `inputs.image`, `inputs.video`), and a
    /// prompt in parts.
    const EXAMPLES: &'static [&'static str] = &[
        r#"{"inputImages":["iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAIAAAAlC+aJAAAAT0lEQVR42u3PQQkAAAgEsEtiEvtjLCP4FgYrsEzXaxEQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQuCxxWCEP+z44TwAAAABJRU5ErkJggg==","iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAIAAAAlC+aJAAAAT0lEQVR42u3PQQkAAAgEsEtiEvtjLCP4FgYrsEzXaxEQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQuCxxWCEP+z44TwAAAABJRU5ErkJggg=="],"prompt":["what is drawn?","answer in one line"]}"#,
        r#"{"inputs":{"image":"iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAIAAAAlC+aJAAAAT0lEQVR42u3PQQkAAAgEsEtiEvtjLCP4FgYrsEzXaxEQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQuCxxWCEP+z44TwAAAABJRU5ErkJggg=="},"prompt":"what is drawn?"}"#,
        r#"{"inputs":{"video":"https://example.com/clip.mp4"}}"#,
    ];

    fn parse(r: &mut ParamReader<'_>) -> Result<Self, ApiError> {
        let what = "an image as a data URI, base64 data, an HTTPS URL or the imageUUID of an upload or output";
        for key in ["inputImage", "inputImages", "inputs"] {
            r.describe(key, "Send the images in one of inputImage, inputImages or inputs (image, or video for a video caption).");
        }
        let one = r.opt_string("inputImage", 1, usize::MAX)?;
        const IMAGES: Shape<'_> =
            Shape::Array { min: 1, max: CAPTION_IMAGES_MAX, items: &Shape::Str { min: 1, max: usize::MAX } };
        let many = r.raw_as("inputImages", IMAGES);
        let inputs = r.raw_as("inputs", Shape::Object);
        let (images, sent_as) = match (one, many, inputs) {
            (Some(image), None, None) => (vec![image], CaptionForm::InputImage),
            (None, Some(Value::Array(list)), None) => {
                if list.is_empty() || list.len() > CAPTION_IMAGES_MAX {
                    return Err(r.invalid(
                        "inputImages",
                        format!("it must hold 1 to {CAPTION_IMAGES_MAX} images; it holds {}.", list.len()),
                    ));
                }
                let mut images = Vec::with_capacity(list.len());
                for (i, v) in list.iter().enumerate() {
                    match v.as_str() {
                        Some(s) if !s.is_empty() => images.push(s.to_string()),
                        _ => {
                            return Err(ApiError::new(
                                ErrorCode::InvalidParameterValue,
                                format!("Invalid value for parameter 'inputImages[{i}]': give {what}."),
                            )
                            .with_parameter(ParamPath::key("inputImages").index(i)));
                        }
                    }
                }
                (images, CaptionForm::InputImages)
            }
            (None, Some(_), None) => return Err(r.invalid("inputImages", "it must be an array of images.")),
            (None, None, Some(Value::Object(inputs))) => {
                if let Some(form) = VideoForm::read(r, inputs, false)? {
                    return Self::finish(r, vec![form.video], CaptionForm::Video);
                }
                let mut ir = ParamReader::new(inputs, ParamPath::key("inputs"));
                let image = ir.string("image", 1, usize::MAX, &format!("give {what}"))?;
                ir.finish()?;
                (vec![image], CaptionForm::Inputs)
            }
            (None, None, Some(_)) => {
                return Err(r.invalid("inputs", "it must be an object such as {\"image\": \"<imageUUID>\"}."));
            }
            (None, None, None) => return Err(r.missing("inputImage", &format!("give {what}"))),
            _ => {
                return Err(ApiError::new(
                    ErrorCode::InvalidParameterValue,
                    "Send the images in one of 'inputImage', 'inputImages' or 'inputs.image', not several.",
                )
                .with_parameter(ParamPath::key("inputImages")));
            }
        };
        Self::finish(r, images, sent_as)
    }

    fn to_wire(&self) -> Map<String, Value> {
        let mut w = Map::new();
        match self.sent_as {
            CaptionForm::InputImage => {
                w.insert("inputImage".into(), self.images[0].clone().into());
            }
            CaptionForm::InputImages => {
                w.insert("inputImages".into(), self.images.clone().into());
            }
            CaptionForm::Inputs => {
                w.insert("inputs".into(), serde_json::json!({"image": self.images[0]}));
            }
            CaptionForm::Video => {
                w.insert("inputs".into(), serde_json::json!({"video": self.images[0]}));
            }
        }
        super::put(&mut w, "prompt", self.prompt.clone());
        super::model_wire(&mut w, &self.model);
        w.insert("includeCost".into(), self.output.include_cost.into());
        w
    }

    fn validate(&self, _model: &ModelSpec) -> Result<(), ApiError> {
        Ok(())
    }

    model_and_output!();

    fn async_only(&self) -> bool {
        self.sent_as == CaptionForm::Video
    }

    fn features(&self) -> Vec<(&'static str, ParamPath)> {
        (self.sent_as == CaptionForm::Video).then(VideoForm::feature).into_iter().collect()
    }

    fn inputs(&self) -> Vec<Input<'_>> {
        if self.sent_as == CaptionForm::Video {
            return vec![Input { reference: &self.images[0], param: ParamPath::key("inputs").child("video"), kind: MediaKind::Video }];
        }
        self.images
            .iter()
            .enumerate()
            .map(|(i, image)| {
                let param = match self.sent_as {
                    CaptionForm::InputImage => ParamPath::key("inputImage"),
                    CaptionForm::InputImages => ParamPath::key("inputImages").index(i),
                    CaptionForm::Inputs | CaptionForm::Video => ParamPath::key("inputs").child("image"),
                };
                Input::image(image, param)
            })
            .collect()
    }

    fn inputs_mut(&mut self) -> Vec<&mut String> {
        self.images.iter_mut().collect()
    }
}

/// `prompt`: a string, or an array of strings (as the Python SDK types it), asked for together.
fn prompt(r: &mut ParamReader<'_>) -> Result<Option<String>, ApiError> {
    r.describe("prompt", "A string, or an array of strings asked for together: 1 to 3000 characters in all.");
    let Some(Value::Array(parts)) = r.peek("prompt") else { return r.opt_string("prompt", 1, 3000) };
    const PARTS: Shape<'_> = Shape::Array { min: 1, max: 3000, items: &Shape::Str { min: 1, max: 3000 } };
    r.raw_as("prompt", PARTS);
    let parts: Option<Vec<&str>> = parts.iter().map(|p| p.as_str().filter(|s| !s.is_empty())).collect();
    match parts {
        Some(parts) if !parts.is_empty() && parts.iter().map(|p| p.chars().count()).sum::<usize>() <= 3000 => {
            Ok(Some(parts.join("\n")))
        }
        _ => Err(r.invalid(
            "prompt",
            "it must be a string, or an array of non-empty strings, of 1 to 3000 characters in all.",
        )),
    }
}
