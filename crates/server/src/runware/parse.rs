//! Runware task objects → canonical tasks.

use mediagate_core::param::Shape;
use mediagate_core::task::TaskType;
use mediagate_core::{ApiError, ErrorCode, ParamPath, ParamReader};
use mediagate_engine::{Delivery, Submission};
use serde_json::Value;
use uuid::Uuid;

/// Every task type Runware's API reference names (both naming generations), served here or not:
/// a name in this list that is not registered is told apart from a misspelling.
const RUNWARE_TASK_TYPES: &[&str] = &[
    "imageInference",
    "imageUpscale",
    "upscale",
    "videoInference",
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

/// Why Runware task types that this server does not offer are not offered, and what to do
/// instead; said in the `unsupportedTaskType` error.
const NOT_OFFERED: &[(&str, &str)] = &[
    (
        "modelUpload",
        "models are added by this server's operator in its configuration (a [[models]] entry routed to a \
         provider, see /docs and docs/providers.md), not uploaded through the API",
    ),
    (
        "training",
        "it trains no models; train elsewhere and have the operator add the result as a [[models]] entry",
    ),
    ("3dInference", "no provider here makes 3D files yet"),
];

/// The task types this dialect answers itself, not registered task types (the first two lead,
/// the others follow the registered ones in messages).
pub const OWN_TASK_TYPES: &[&str] = &[
    "authentication",
    "ping",
    "getResponse",
    "getTaskDetails",
    "imageUpload",
    "mediaStorage",
    "modelSearch",
    "accountManagement",
];

/// Example task objects of the task types in [`OWN_TASK_TYPES`] (parameters only, without
/// `taskType` and `taskUUID`), one per path through [`parse`]: their OpenAPI schemas are recorded
/// from what [`parse`] reads for them (see `crate::openapi`), and the OpenAPI test parses each.
pub const OWN_EXAMPLES: &[(&str, &[&str])] = &[
    ("ping", &[r#"{"ping":true}"#]),
    ("getResponse", &["{}"]),
    ("getTaskDetails", &["{}"]),
    (
        "imageUpload",
        &[
            r#"{"image":"iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAIAAAAlC+aJAAAAT0lEQVR42u3PQQkAAAgEsEtiEvtjLCP4FgYrsEzXaxEQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQuCxxWCEP+z44TwAAAABJRU5ErkJggg=="}"#,
        ],
    ),
    (
        "mediaStorage",
        &[
            r#"{"operation":"upload","media":"iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAIAAAAlC+aJAAAAT0lEQVR42u3PQQkAAAgEsEtiEvtjLCP4FgYrsEzXaxEQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQuCxxWCEP+z44TwAAAABJRU5ErkJggg=="}"#,
            r#"{"operation":"delete","mediaUUID":"9f1c2a5e-6b1d-4c1e-8d7a-2b3c4d5e6f70"}"#,
        ],
    ),
    ("modelSearch", &[r#"{"search":"flux","tags":["photo"],"visibility":"public","limit":5,"offset":0}"#]),
    ("accountManagement", &[r#"{"operation":"getDetails"}"#]),
];

/// The task types served, for messages: the registered ones (with their aliases) and the ones
/// this dialect answers itself.
pub fn served() -> String {
    let registered = TaskType::ALL.iter().map(|t| match t.aliases() {
        [] => t.as_str().to_string(),
        aliases => format!("{} (alias {})", t.as_str(), aliases.join(", ")),
    });
    OWN_TASK_TYPES[..2]
        .iter()
        .map(|t| t.to_string())
        .chain(registered)
        .chain(OWN_TASK_TYPES[2..].iter().map(|t| t.to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

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
    /// An earlier task's request and response (`getTaskDetails`).
    TaskDetails {
        /// The taskUUID as sent.
        sent: String,
        /// The task inspected.
        task_uuid: Uuid,
    },
    /// The caller's account (`accountManagement` with `operation: "getDetails"`).
    AccountDetails {
        /// The taskUUID as sent.
        sent: String,
    },
    /// List the catalog's models (`modelSearch`), answered by this server.
    ModelSearch {
        /// The taskUUID as sent.
        sent: String,
        /// The filters and page.
        query: mediagate_engine::search::ModelQuery,
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

fn task_uuid(r: &mut ParamReader<'_>, what: TaskUuid) -> Result<Option<(String, Uuid)>, ApiError> {
    let value = match what {
        TaskUuid::Optional => r.raw_as("taskUUID", Shape::Uuid),
        TaskUuid::New => {
            r.describe("taskUUID", "A UUID the client chose for this task, unique per account.");
            r.raw_required("taskUUID", Shape::Uuid)
        }
        TaskUuid::Polled => {
            r.describe("taskUUID", "The taskUUID of the earlier task.");
            r.raw_required("taskUUID", Shape::Uuid)
        }
    };
    let missing = |hint: &str| {
        ApiError::new(ErrorCode::MissingTaskUUID, format!("Missing required parameter 'taskUUID': {hint}"))
            .with_parameter(ParamPath::key("taskUUID"))
    };
    match value {
        None => match what {
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

fn delivery(r: &mut ParamReader<'_>, default: Delivery) -> Result<Delivery, ApiError> {
    r.describe("deliveryMethod", "sync (the default) waits for the results; async answers at once, to poll with getResponse. Video tasks and video forms are async only.");
    Ok(match r.opt_enum("deliveryMethod", &["sync", "async"])? {
        Some("sync") => Delivery::Sync,
        Some(_) => Delivery::Async,
        None => default,
    })
}

/// `webhookURL`: checked by the same URL rules as asset URLs (HTTPS, a domain, no credentials,
/// length); the address rules apply when it is called.
fn webhook(r: &mut ParamReader<'_>) -> Result<Option<String>, ApiError> {
    r.describe("webhookURL", "A public HTTPS URL that the task's results (or error) are POSTed to.");
    let Some(url) = r.opt_string("webhookURL", 1, 2048)? else { return Ok(None) };
    mediagate_assets::url_check::check_url(&url, 2048).map_err(|why| {
        r.invalid("webhookURL", format!("{} Webhooks are POSTed to public HTTPS URLs only.", why.message()))
    })?;
    Ok(Some(url))
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
                format!("The task at index {index} has no taskType; add one of: {}.", served()),
            )
            .with_parameter(ParamPath::key("taskType")));
        }
    };
    let mut r = ParamReader::new(obj, ParamPath::default());
    r.accept("taskType");
    let parsed = match name {
        "ping" => {
            let sent = task_uuid(&mut r, TaskUuid::Optional)?.map(|(s, _)| s);
            r.opt_bool("ping")?;
            Parsed::Ping { task_uuid: sent }
        }
        "accountManagement" => {
            let (sent, _) = task_uuid(&mut r, TaskUuid::New)?.expect("required");
            r.enum_value("operation", &["getDetails"], "say what to do: 'getDetails' (the only operation)")?;
            Parsed::AccountDetails { sent }
        }
        "modelSearch" => {
            let (sent, _) = task_uuid(&mut r, TaskUuid::New)?.expect("required");
            Parsed::ModelSearch { sent, query: model_query(&mut r)? }
        }
        "getTaskDetails" => {
            let (sent, uuid) = task_uuid(&mut r, TaskUuid::Polled)?.expect("required");
            Parsed::TaskDetails { sent, task_uuid: uuid }
        }
        "getResponse" => {
            let (sent, uuid) = task_uuid(&mut r, TaskUuid::Polled)?.expect("required");
            Parsed::GetResponse { sent, task_uuid: uuid }
        }
        "imageUpload" => {
            let (sent, uuid) = task_uuid(&mut r, TaskUuid::New)?.expect("required");
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
            let (sent, uuid) = task_uuid(&mut r, TaskUuid::New)?.expect("required");
            r.describe(
                "operation",
                "upload (the default) stores media; delete removes the upload named by mediaUUID.",
            );
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
                let code = if RUNWARE_TASK_TYPES.contains(&other) {
                    ErrorCode::UnsupportedTaskType
                } else {
                    ErrorCode::UnknownTaskType
                };
                let what = if code == ErrorCode::UnsupportedTaskType {
                    match NOT_OFFERED.iter().find(|(name, _)| *name == other) {
                        Some((_, why)) => format!(
                            "taskType '{other}' is part of the Runware API but this mediagate server does not offer \
                             it: {why}."
                        ),
                        None => format!(
                            "taskType '{other}' is part of the Runware API but this mediagate server does not serve it."
                        ),
                    }
                } else {
                    format!("Unknown taskType '{}'.", truncate(other))
                };
                return Err(ApiError::new(code, format!("{what} Task types served here: {}.", served()))
                    .with_parameter(ParamPath::key("taskType")));
            };
            let (sent, uuid) = task_uuid(&mut r, TaskUuid::New)?.expect("required");
            let request = tt.parse_request(&mut r)?;
            // Async-only tasks (video, as on Runware) default to async and refuse sync.
            let default = if request.async_only() { Delivery::Async } else { Delivery::Sync };
            let delivery = delivery(&mut r, default)?;
            if request.async_only() && delivery == Delivery::Sync {
                return Err(r.invalid(
                    "deliveryMethod",
                    format!(
                        "{} is async-only: send deliveryMethod 'async' (the default) and poll getResponse.",
                        tt.as_str()
                    ),
                ));
            }
            let webhook_url = webhook(&mut r)?;
            Parsed::Submit {
                sent,
                submission: Box::new(Submission {
                    task_uuid: uuid,
                    task_type_name: other.to_string(),
                    request,
                    dialect: mediagate_core::Dialect::Runware,
                    delivery,
                    webhook_url,
                }),
            }
        }
    };
    r.finish()?;
    Ok(parsed)
}

/// `modelSearch`'s filters and page, as Runware documents them (`limit` 1 to 100, default 20).
fn model_query(r: &mut ParamReader<'_>) -> Result<mediagate_engine::search::ModelQuery, ApiError> {
    use mediagate_engine::search::{ModelQuery, Visibility};
    const TAGS: Shape<'_> = Shape::Array { min: 0, max: 32, items: &Shape::Str { min: 1, max: 64 } };
    let tags = match r.raw_as("tags", TAGS) {
        None => Vec::new(),
        Some(Value::Array(list)) if list.len() <= 32 => list
            .iter()
            .map(|t| t.as_str().filter(|t| !t.is_empty() && t.len() <= 64).map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| r.invalid("tags", "each tag is a string of 1 to 64 characters."))?,
        Some(_) => return Err(r.invalid("tags", "it must be an array of at most 32 strings.")),
    };
    Ok(ModelQuery {
        search: r.opt_string("search", 1, 256)?,
        tags,
        category: r.opt_string("category", 1, 64)?,
        kind: r.opt_string("type", 1, 64)?,
        architecture: r.opt_string("architecture", 1, 64)?,
        conditioning: r.opt_string("conditioning", 1, 64)?,
        visibility: match r.opt_enum("visibility", &["public", "private", "all"])? {
            Some("public") => Visibility::Public,
            Some("private") => Visibility::Private,
            _ => Visibility::All,
        },
        limit: r.opt_int("limit", 1, 100)?.map_or(20, |n| n as usize),
        offset: r.opt_int("offset", 0, 1_000_000)?.map_or(0, |n| n as usize),
    })
}
