//! `vectorize`: a raster image traced into an SVG.

use super::{Delivery, ImageResult, OutputOptions, OutputType, Task};
use crate::error::Error;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Inputs {
    image: String,
}

/// `vectorize`: trace an image into an SVG (the result's `imageURL` is the `.svg` file).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Vectorize {
    task_type: &'static str,
    #[serde(rename = "taskUUID")]
    task_uuid: Uuid,
    inputs: Inputs,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(flatten)]
    output: OutputOptions,
}

impl Vectorize {
    /// A new task. `image` is a data URI, raw base64, an HTTPS URL or the UUID of an upload or
    /// output.
    pub fn new(image: impl Into<String>) -> Self {
        Vectorize {
            task_type: "vectorize",
            task_uuid: Uuid::new_v4(),
            inputs: Inputs { image: image.into() },
            model: None,
            output: OutputOptions::default(),
        }
    }

    /// `model`: an AIR id such as `mediagate:vtracer@1`.
    pub fn model(mut self, air: impl Into<String>) -> Self {
        self.model = Some(air.into());
        self
    }

    /// `outputType`: URL (default), base64 data or a data URI of the SVG.
    pub fn output_type(mut self, t: OutputType) -> Self {
        self.output.output_type = Some(t);
        self
    }

    /// `includeCost`: add the USD `cost` to the result.
    pub fn include_cost(mut self, yes: bool) -> Self {
        self.output.include_cost = Some(yes);
        self
    }

    /// `ttl`: seconds the output URL stays valid.
    pub fn ttl(mut self, seconds: u64) -> Self {
        self.output.ttl = Some(seconds);
        self
    }

    /// `deliveryMethod`.
    pub fn delivery(mut self, d: Delivery) -> Self {
        self.output.delivery_method = Some(d);
        self
    }
}

impl Task for Vectorize {
    type Output = ImageResult;

    task_basics!();

    fn parse_output(items: Vec<Value>) -> Result<ImageResult, Error> {
        let first = items.first().ok_or_else(|| {
            Error::Protocol("the response has no result item for the vectorize task".into())
        })?;
        ImageResult::from_json(first)
    }
}
