//! The bodies the OpenAPI document describes. The handlers read JSON with the dialects' own
//! readers (so that every mistake gets its dialect's message), not by deserialising these
//! types; these are what those readers accept and what the renderers write, kept beside the
//! routes they document, and the schema test (`tests/openapi.rs`) sends the documented examples.

#![allow(dead_code)]

use serde::Serialize;
use utoipa::ToSchema;

// --- Runway ---------------------------------------------------------------------------------

/// `POST /v1/text_to_image`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"model": "gen4_image", "promptText": "a lighthouse at dusk", "ratio": "1280:720"}))]
pub struct TextToImage {
    /// `gen4_image` or `gen4_image_turbo` (which requires `referenceImages`).
    pub model: String,
    /// 1 to 1000 UTF-16 code units.
    pub prompt_text: String,
    /// Output size as `W:H`, from the model's list (e.g. `1920:1080`, `1280:720`, `720:720`).
    pub ratio: String,
    /// 0 to 4294967295.
    pub seed: Option<u64>,
    /// Up to 3 images (`{uri, tag?}`), HTTPS URLs, data URIs or `runway://` uploads.
    pub reference_images: Option<Vec<ReferenceImage>>,
    /// `{publicFigureThreshold: "auto" | "low"}`.
    pub content_moderation: Option<ContentModeration>,
}

/// A reference image.
#[derive(Serialize, ToSchema)]
pub struct ReferenceImage {
    /// An HTTPS URL, a data URI or a `runway://` upload URI.
    pub uri: String,
    /// A name the prompt can refer to with `@tag`.
    pub tag: Option<String>,
}

/// Content moderation settings.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContentModeration {
    /// `auto` or `low`.
    pub public_figure_threshold: Option<String>,
}

/// `POST /v1/image_to_video`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"model": "gen4_turbo", "promptImage": "https://example.com/first.png", "ratio": "1280:720"}))]
pub struct ImageToVideo {
    /// `gen4_turbo`, `gen4.5`, `veo3.1` or `veo3.1_fast`.
    pub model: String,
    /// The first frame: a URI, or `[{"uri", "position": "first"}]`.
    #[schema(value_type = Object)]
    pub prompt_image: serde_json::Value,
    /// Up to 1000 UTF-16 code units.
    pub prompt_text: Option<String>,
    /// `W:H` from the model's list.
    pub ratio: String,
    /// Seconds: gen4_turbo 2–10 (default 10), gen4.5 2–10 (required), Veo 4, 6 or 8 (default 8).
    pub duration: Option<u32>,
    /// 0 to 4294967295.
    pub seed: Option<u64>,
    /// `{publicFigureThreshold}`.
    pub content_moderation: Option<ContentModeration>,
}

/// `POST /v1/text_to_video`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"model": "veo3.1_fast", "promptText": "waves at dawn", "ratio": "1280:720"}))]
pub struct TextToVideo {
    /// `gen4.5`, `veo3.1` or `veo3.1_fast`.
    pub model: String,
    /// 1 to 1000 UTF-16 code units.
    pub prompt_text: String,
    /// `W:H` from the model's list.
    pub ratio: String,
    /// Seconds, per model.
    pub duration: Option<u32>,
    /// 0 to 4294967295.
    pub seed: Option<u64>,
}

/// `POST /v1/image_upscale`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageUpscale {
    /// `magnific_precision_upscaler_v2`.
    pub model: String,
    /// The image: an HTTPS URL, a data URI or a `runway://` upload URI.
    pub image_uri: String,
    /// 2 or 4.
    pub scale_factor: Option<u32>,
}

/// A created task.
#[derive(Serialize, ToSchema)]
pub struct TaskCreated {
    /// The task's id, for `GET /v1/tasks/{id}`.
    pub id: String,
}

/// A task as `GET /v1/tasks/{id}` shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunwayTask {
    /// The task's id.
    pub id: String,
    /// `PENDING`, `THROTTLED`, `RUNNING`, `SUCCEEDED`, `FAILED` or `CANCELLED`.
    pub status: String,
    /// ISO 8601.
    pub created_at: String,
    /// 0 to 1 while `RUNNING`.
    pub progress: Option<f64>,
    /// Output URLs once `SUCCEEDED`.
    pub output: Option<Vec<String>>,
    /// Why it failed.
    pub failure: Option<String>,
    /// A machine-readable failure code.
    pub failure_code: Option<String>,
}

/// An issue of a 400 body.
#[derive(Serialize, ToSchema)]
pub struct Issue {
    /// `invalid_type`, `too_small`, `too_big`, `invalid_enum_value`, `unrecognized_keys` or `custom`.
    pub code: String,
    /// Where, as keys and indexes (e.g. `["promptImage", 0, "uri"]`).
    pub path: Vec<PathSegment>,
    /// What is wrong.
    pub message: String,
}

/// One step of an issue's path: an object key or an array index.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum PathSegment {
    /// An object key.
    Key(String),
    /// An array index.
    Index(u64),
}

/// A Runway-dialect error.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunwayError {
    /// What went wrong.
    pub error: String,
    /// This server's guide to the dialect.
    pub doc_url: String,
    /// Every problem of a 400, at once.
    pub issues: Option<Vec<Issue>>,
}

/// `POST /v1/uploads`.
#[derive(Serialize, ToSchema)]
pub struct UploadRequest {
    /// The file's name.
    pub filename: String,
    /// `ephemeral`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// Where to send an upload.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadTarget {
    /// POST the file here as multipart, `token` then `file`.
    pub upload_url: String,
    /// `{key, token}` fields to send with it.
    #[schema(value_type = Object)]
    pub fields: serde_json::Value,
    /// The URI to use as an input once uploaded.
    pub runway_uri: String,
}

/// `POST /v1/organization/usage`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageRequest {
    /// `YYYY-MM-DD`; default 29 days before today (30 before `beforeDate` when only that is sent).
    pub start_date: Option<String>,
    /// `YYYY-MM-DD`, exclusive, later than `startDate`, at most 90 days after it.
    pub before_date: Option<String>,
}

// --- Runware --------------------------------------------------------------------------------

/// One task of a Runware request array. The routes name this component; its schema, a `oneOf`
/// of one schema per task type recorded from the parsers, replaces this placeholder when the
/// document is built (see [`super::tasks`]).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunwareTask {
    /// The task type.
    pub task_type: String,
}

/// A Runware error object, one per failed task.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunwareError {
    /// The error catalog's code (see `/docs/errors`).
    pub code: String,
    /// What went wrong and what to change.
    pub message: String,
    /// The parameter at fault.
    pub parameter: Option<String>,
    /// The task's type, as sent.
    pub task_type: Option<String>,
    /// The task's UUID, as sent.
    #[serde(rename = "taskUUID")]
    pub task_uuid: Option<String>,
    /// A link to the code's entry in `/docs/errors`.
    pub documentation: String,
}

/// A Runware response: results of the tasks that succeeded, errors of those that failed.
#[derive(Serialize, ToSchema)]
pub struct RunwareResponse {
    /// One or more objects per successful task (results, or `status: processing`).
    #[schema(value_type = Option<Vec<Object>>)]
    pub data: Option<Vec<serde_json::Value>>,
    /// One object per failed task.
    pub errors: Option<Vec<RunwareError>>,
}

// --- Server ---------------------------------------------------------------------------------

/// `/readyz`'s answer.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not ready`.
    pub status: String,
    /// Each check: `store` (`{ok, schemaVersion}` or `{ok: false, error}`; a failing store
    /// makes the answer 503) and `providers` (`{ok, each: {name: {ok, health, circuit,
    /// error?}}}`; informational: a provider down does not make the server unready).
    #[schema(value_type = Object)]
    pub checks: serde_json::Value,
}
