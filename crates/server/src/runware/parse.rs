//! Runware task objects → canonical tasks.

use mediagate_core::task::{
    ImageFormat, ImageInference, OutputOptions, OutputType, SEED_MAX, TaskRequest, TaskType, Upscale,
    VideoFormat, VideoInference,
};
use mediagate_core::{ApiError, ErrorCode, ParamPath, ParamReader};
use mediagate_engine::{Delivery, Engine, Submission};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Runware task types mediagate knows by name but does not serve (both naming generations).
const UNSERVED: &[&str] = &[
    "audioInference",
    "3dInference",
    "textInference",
    "removeBackground",
    "imageBackgroundRemoval",
    "caption",
    "imageCaption",
    "vectorize",
    "promptEnhance",
    "imageControlNetPreProcess",
    "imageMasking",
    "photoMaker",
    "getTaskDetails",
    "modelSearch",
    "modelUpload",
    "training",
    "accountManagement",
];

/// The task types served, for messages.
pub const SERVED: &str = "authentication, ping, imageInference, upscale (alias imageUpscale), videoInference, \
                          getResponse, imageUpload, mediaStorage";

/// A task after parsing.
#[derive(Debug)]
pub enum Parsed {
    /// Keepalive.
    Ping {
        /// The taskUUID if the client sent one.
        task_uuid: Option<String>,
    },
    /// Poll an earlier task.
    GetResponse {
        /// The taskUUID as sent.
        sent: String,
        /// The task polled.
        task_uuid: Uuid,
    },
    /// Store an asset (`imageUpload`, `mediaStorage` with `operation: upload`).
    Upload {
        /// The taskUUID as sent.
        sent: String,
        /// The taskUUID: uploads are idempotent by it like other tasks.
        task_uuid: Uuid,
        /// `imageUpload` or `mediaStorage`.
        task_type: &'static str,
        /// The asset: data URI, base64, HTTPS URL or UUID.
        reference: String,
        /// The parameter that held it.
        param: ParamPath,
    },
    /// Delete an upload (`mediaStorage` with `operation: delete`).
    DeleteMedia {
        /// The taskUUID as sent.
        sent: String,
        /// The upload.
        media_uuid: Uuid,
    },
    /// A task to run.
    Submit {
        /// The taskUUID as sent (echoed back exactly).
        sent: String,
        /// The canonical task (boxed: it dwarfs the other variants).
        submission: Box<Submission>,
    },
}

/// What is known of a task before (or despite) a parse failure, for error objects.
#[derive(Debug, Default, Clone)]
pub struct Known {
    /// `taskType` as sent, if a string.
    pub task_type: Option<String>,
    /// `taskUUID` as sent, if a string.
    pub task_uuid: Option<String>,
}

/// Reads `taskType` and `taskUUID` as sent, without judging them.
pub fn known(v: &Value) -> Known {
    Known {
        task_type: v.get("taskType").and_then(Value::as_str).map(str::to_string),
        task_uuid: v.get("taskUUID").and_then(Value::as_str).map(str::to_string),
    }
}

/// What a task's `taskUUID` names, which decides whether it is required and what a client
/// missing it is told to send.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TaskUuid {
    /// Optional (`ping`).
    Optional,
    /// The new task's own identifier, chosen by the client.
    New,
    /// An earlier task's (`getResponse`).
    Polled,
}

fn task_uuid(
    r: &mut ParamReader<'_>,
    obj: &Map<String, Value>,
    what: TaskUuid,
) -> Result<Option<(String, Uuid)>, ApiError> {
    r.accept("taskUUID");
    let missing = |hint: &str| {
        ApiError::new(ErrorCode::MissingTaskUUID, format!("Missing required parameter 'taskUUID': {hint}"))
            .with_parameter(ParamPath::key("taskUUID"))
    };
    match obj.get("taskUUID") {
        None | Some(Value::Null) => match what {
            TaskUuid::Optional => Ok(None),
            TaskUuid::New => Err(missing("generate a UUID v4 for each task and send it as taskUUID.")),
            TaskUuid::Polled => Err(missing("send the taskUUID of the task whose results you are polling.")),
        },
        Some(Value::String(s)) => match Uuid::try_parse(s) {
            Ok(u) => Ok(Some((s.clone(), u))),
            Err(_) => Err(ApiError::new(
                ErrorCode::InvalidTaskUUID,
                format!(
                    "Invalid taskUUID '{}': it must be a UUID such as 550e8400-e29b-41d4-a716-446655440000.",
                    truncate(s)
                ),
            )
            .with_parameter(ParamPath::key("taskUUID"))),
        },
        Some(_) => Err(ApiError::new(
            ErrorCode::InvalidTaskUUID,
            "Invalid taskUUID: it must be a string holding a UUID.",
        )
        .with_parameter(ParamPath::key("taskUUID"))),
    }
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 64 {
        format!("{}…", s.chars().take(64).collect::<String>())
    } else {
        s.to_string()
    }
}

fn output_options(r: &mut ParamReader<'_>) -> Result<OutputOptions, ApiError> {
    let d = OutputOptions::default();
    Ok(OutputOptions {
        output_type: r
            .opt_enum("outputType", OutputType::NAMES)?
            .and_then(OutputType::parse)
            .unwrap_or(d.output_type),
        format: r
            .opt_enum("outputFormat", ImageFormat::NAMES)?
            .and_then(ImageFormat::parse)
            .unwrap_or(d.format),
        quality: r.opt_int("outputQuality", 20, 99)?.map(|q| q as u8).unwrap_or(d.quality),
        ttl_secs: r.opt_int("ttl", 1, i64::from(u32::MAX))?.map(|t| t as u64),
        include_cost: r.opt_bool("includeCost")?.unwrap_or(false),
    })
}

fn delivery(r: &mut ParamReader<'_>, default: Delivery) -> Result<Delivery, ApiError> {
    Ok(match r.opt_enum("deliveryMethod", &["sync", "async"])? {
        Some("sync") => Delivery::Sync,
        Some(_) => Delivery::Async,
        None => default,
    })
}

/// `webhookURL`: checked by the same URL rules as asset URLs (HTTPS, a domain, no credentials,
/// length); the address rules apply when it is called.
fn webhook(r: &mut ParamReader<'_>) -> Result<Option<String>, ApiError> {
    let Some(url) = r.opt_string("webhookURL", 1, 2048)? else { return Ok(None) };
    mediagate_assets::url_check::check_url(&url, 2048).map_err(|why| {
        r.invalid("webhookURL", format!("{} Webhooks are POSTed to public HTTPS URLs only.", why.message()))
    })?;
    Ok(Some(url))
}

fn model(r: &mut ParamReader<'_>, t: TaskType) -> Result<String, ApiError> {
    Ok(r.opt_string("model", 1, 256)?.unwrap_or_else(|| Engine::default_model(t).to_string()))
}

fn image_inference(r: &mut ParamReader<'_>) -> Result<TaskRequest, ApiError> {
    let positive_prompt =
        r.string("positivePrompt", 2, 3000, "describe the image to generate (2 to 3000 characters)")?;
    let negative_prompt = r.opt_string("negativePrompt", 2, 3000)?;
    let model = model(r, TaskType::ImageInference)?;
    let width = r.opt_int_checked_later("width")?.unwrap_or(512);
    let height = r.opt_int_checked_later("height")?.unwrap_or(512);
    let steps = r.opt_int_checked_later("steps")?;
    let cfg_scale = r.opt_f64("CFGScale", 0.0, 50.0)?;
    let seed = r.opt_int("seed", 1, SEED_MAX as i64)?.map(|s| s as u64);
    let number_results = r.opt_int_checked_later("numberResults")?.unwrap_or(1);
    let output = output_options(r)?;
    Ok(TaskRequest::ImageInference(ImageInference {
        positive_prompt,
        negative_prompt,
        model,
        width,
        height,
        steps,
        cfg_scale,
        seed,
        number_results,
        output,
    }))
}

fn upscale(r: &mut ParamReader<'_>) -> Result<TaskRequest, ApiError> {
    if r.raw("inputImage").is_none()
        && let Some(inputs) = r.raw("inputs")
    {
        return Err(inputs_form_refusal(inputs));
    }
    let input_image = r.string(
        "inputImage",
        1,
        usize::MAX,
        "give the image to upscale as a data URI, base64 data or the imageUUID of an earlier output",
    )?;
    let model = model(r, TaskType::Upscale)?;
    let upscale_factor = r.opt_int_checked_later("upscaleFactor")?.unwrap_or(2);
    let output = output_options(r)?;
    Ok(TaskRequest::Upscale(Upscale { input_image, model, upscale_factor, output }))
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

fn video_inference(r: &mut ParamReader<'_>) -> Result<TaskRequest, ApiError> {
    let positive_prompt =
        r.string("positivePrompt", 2, 3000, "describe the video to generate (2 to 3000 characters)")?;
    let model = model(r, TaskType::VideoInference)?;
    let width = r.opt_int_checked_later("width")?.unwrap_or(640);
    let height = r.opt_int_checked_later("height")?.unwrap_or(360);
    let duration_secs = r.opt_int_checked_later("duration")?.unwrap_or(5);
    let fps = r.opt_int_checked_later("fps")?.unwrap_or(24);
    let seed = r.opt_int("seed", 1, SEED_MAX as i64)?.map(|s| s as u64);
    let first_frame = match r.raw("frameImages") {
        None => None,
        Some(serde_json::Value::Array(frames)) => {
            if frames.len() > 1 {
                return Err(
                    r.invalid("frameImages", "at most one frame image (the first frame) is supported.")
                );
            }
            match frames.first() {
                None => None,
                Some(serde_json::Value::Object(f)) => {
                    let mut fr = ParamReader::new(f, ParamPath::key("frameImages").index(0));
                    let image = fr.string(
                        "inputImage",
                        1,
                        usize::MAX,
                        "the first frame as a data URI, base64 or image UUID",
                    )?;
                    if let Some(pos) = fr.opt_enum("frame", &["first"])? {
                        debug_assert_eq!(pos, "first");
                    }
                    fr.finish()?;
                    Some(image)
                }
                Some(_) => {
                    return Err(r.invalid(
                        "frameImages",
                        "each element must be an object {\"inputImage\": ..., \"frame\": \"first\"}.",
                    ));
                }
            }
        }
        Some(_) => {
            return Err(r.invalid(
                "frameImages",
                "it must be an array of {\"inputImage\": ..., \"frame\": \"first\"}.",
            ));
        }
    };
    let d = OutputOptions::default();
    let output = OutputOptions {
        output_type: r
            .opt_enum("outputType", OutputType::NAMES)?
            .and_then(OutputType::parse)
            .unwrap_or(d.output_type),
        format: d.format,
        quality: d.quality,
        ttl_secs: r.opt_int("ttl", 1, i64::from(u32::MAX))?.map(|t| t as u64),
        include_cost: r.opt_bool("includeCost")?.unwrap_or(false),
    };
    let video_format = r
        .opt_enum("outputFormat", VideoFormat::NAMES)?
        .and_then(VideoFormat::parse)
        .unwrap_or(VideoFormat::Mp4);
    Ok(TaskRequest::VideoInference(VideoInference {
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
    }))
}

/// Parses one element of the request array (not the leading authentication element).
pub fn parse(v: &Value, index: usize) -> Result<Parsed, ApiError> {
    let Some(obj) = v.as_object() else {
        return Err(ApiError::new(
            ErrorCode::InvalidTaskObject,
            format!(
                "The task at index {index} is not a JSON object; every element of the array must be a task object."
            ),
        ));
    };
    let name = match obj.get("taskType") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::InvalidTaskObject,
                format!("The task at index {index} has a taskType that is not a string."),
            )
            .with_parameter(ParamPath::key("taskType")));
        }
        None => {
            return Err(ApiError::new(
                ErrorCode::InvalidTaskObject,
                format!("The task at index {index} has no taskType; add one of: {SERVED}."),
            )
            .with_parameter(ParamPath::key("taskType")));
        }
    };
    let mut r = ParamReader::new(obj, ParamPath::default());
    r.accept("taskType");
    let parsed = match name {
        "ping" => {
            let sent = task_uuid(&mut r, obj, TaskUuid::Optional)?.map(|(s, _)| s);
            r.opt_bool("ping")?;
            Parsed::Ping { task_uuid: sent }
        }
        "getResponse" => {
            let (sent, uuid) = task_uuid(&mut r, obj, TaskUuid::Polled)?.expect("required");
            Parsed::GetResponse { sent, task_uuid: uuid }
        }
        "imageUpload" => {
            let (sent, uuid) = task_uuid(&mut r, obj, TaskUuid::New)?.expect("required");
            let reference = r.string(
                "image",
                1,
                usize::MAX,
                "give the image as a data URI, base64 data, an HTTPS URL or the UUID of an output",
            )?;
            Parsed::Upload {
                sent,
                task_uuid: uuid,
                task_type: "imageUpload",
                reference,
                param: ParamPath::key("image"),
            }
        }
        "mediaStorage" => {
            let (sent, uuid) = task_uuid(&mut r, obj, TaskUuid::New)?.expect("required");
            match r.opt_enum("operation", &["upload", "delete"])?.unwrap_or("upload") {
                "delete" => {
                    let media = r.string("mediaUUID", 1, 64, "give the mediaUUID of the upload to delete")?;
                    let media_uuid = Uuid::try_parse(&media).map_err(|_| {
                        r.invalid("mediaUUID", "it must be the mediaUUID an upload returned.")
                    })?;
                    Parsed::DeleteMedia { sent, media_uuid }
                }
                _ => {
                    let reference = r.string(
                        "media",
                        1,
                        usize::MAX,
                        "give the file as a data URI, base64 data, an HTTPS URL or the UUID of an output",
                    )?;
                    Parsed::Upload {
                        sent,
                        task_uuid: uuid,
                        task_type: "mediaStorage",
                        reference,
                        param: ParamPath::key("media"),
                    }
                }
            }
        }
        "authentication" => {
            return Err(ApiError::new(
                ErrorCode::InvalidTaskObject,
                format!(
                    "The authentication task must be the first element of the array; it is at index {index}."
                ),
            )
            .with_parameter(ParamPath::key("taskType")));
        }
        other => {
            let Some(tt) = TaskType::parse(other) else {
                let code = if UNSERVED.contains(&other) {
                    ErrorCode::UnsupportedTaskType
                } else {
                    ErrorCode::UnknownTaskType
                };
                let what = if code == ErrorCode::UnsupportedTaskType {
                    format!(
                        "taskType '{other}' is part of the Runware API but this mediagate server does not serve it."
                    )
                } else {
                    format!("Unknown taskType '{}'.", truncate(other))
                };
                return Err(ApiError::new(code, format!("{what} Task types served here: {SERVED}."))
                    .with_parameter(ParamPath::key("taskType")));
            };
            let (sent, uuid) = task_uuid(&mut r, obj, TaskUuid::New)?.expect("required");
            let request = match tt {
                TaskType::ImageInference => image_inference(&mut r)?,
                TaskType::Upscale => upscale(&mut r)?,
                TaskType::VideoInference => video_inference(&mut r)?,
            };
            // Video is async-only, as on Runware: rendering outlives any sensible HTTP wait.
            let default = if tt == TaskType::VideoInference { Delivery::Async } else { Delivery::Sync };
            let delivery = delivery(&mut r, default)?;
            if tt == TaskType::VideoInference && delivery == Delivery::Sync {
                return Err(r.invalid(
                    "deliveryMethod",
                    "videoInference is async-only: send deliveryMethod 'async' (the default) and poll getResponse.",
                ));
            }
            let webhook_url = webhook(&mut r)?;
            Parsed::Submit {
                sent,
                submission: Box::new(Submission {
                    task_uuid: uuid,
                    task_type_name: other.to_string(),
                    request,
                    dialect: "runware",
                    delivery,
                    webhook_url,
                }),
            }
        }
    };
    r.finish()?;
    Ok(parsed)
}
