//! The Runway dialect: per-endpoint REST with polled tasks, over the same engine, keys, credits
//! and asset intake as the Runware dialect.
//!
//! Every request needs `X-Runway-Version: 2024-11-06` and `Authorization: Bearer key_…`.
//! Task-creating endpoints validate the whole body (and fetch its assets) before answering
//! `{"id": …}`; the task then runs asynchronously and is polled at `GET /v1/tasks/{id}`.
//! Errors use Runway's bodies: `{"error", "docUrl", "issues": [{"code", "path", "message"}]}`.

mod body;
mod create;
mod issues;
pub(crate) mod organization;
pub(crate) mod tasks;
mod uploads;

pub use uploads::UploadSlots;

use crate::client_addr::ClientAddr;
use crate::{AppState, json_response};
use axum::extract::DefaultBodyLimit;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use issues::Issue;
use mediagate_core::{ApiError, ErrorCode};
use mediagate_engine::AuthContext;
use serde_json::{Value, json};
use std::sync::Arc;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The API versions this dialect speaks (`X-Runway-Version`).
pub const API_VERSIONS: &[&str] = &["2024-11-06"];

/// The Runway dialect's routes with their OpenAPI operations.
pub fn routes() -> OpenApiRouter<AppState> {
    // The upload target takes files up to `uploads.ephemeral_max_bytes`; it enforces that limit
    // itself while streaming.
    let (schemas, paths, receive) = routes!(uploads::receive);
    OpenApiRouter::new()
        .routes(routes!(create::text_to_image))
        .routes(routes!(create::image_to_video))
        .routes(routes!(create::text_to_video))
        .routes(routes!(create::image_upscale))
        .routes(routes!(tasks::get_task, tasks::delete_task))
        .routes(routes!(uploads::create))
        .routes((schemas, paths, receive.layer(DefaultBodyLimit::disable())))
        .routes(routes!(organization::get_organization))
        .routes(routes!(organization::usage))
}

/// Whether a request is addressed to the Runway dialect (for the shared 404/405 fallbacks).
pub fn is_runway_request(headers: &HeaderMap, path: &str) -> bool {
    headers.contains_key("x-runway-version")
        || [
            "/v1/tasks",
            "/v1/uploads",
            "/v1/organization",
            "/v1/text_to_",
            "/v1/image_to_",
            "/v1/image_upscale",
        ]
        .iter()
        .any(|p| path.starts_with(p))
}

fn doc_url(state: &AppState) -> String {
    format!("{}/docs/runway", state.base_url)
}

/// `400 Validation of body failed` with its issues.
fn validation_failed(state: &AppState, what: &str, issues: &[Issue]) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({
            "error": format!("Validation of {what} failed"),
            "docUrl": doc_url(state),
            "issues": issues.iter().map(Issue::to_json).collect::<Vec<_>>(),
        }),
    )
}

/// A catalog error in Runway's shape: parameter errors become validation issues, the rest
/// `{"error": message}` with the catalog's status (and `Retry-After` where it applies).
pub fn error_response(state: &AppState, e: &ApiError) -> Response {
    if e.http_status() == 400
        && let Some(issues) = issues::from_api_error(e)
    {
        return validation_failed(state, "body", &issues);
    }
    let status = crate::catalog_status(e.http_status());
    let mut r = crate::runware::with_retry_after(
        json_response(
            status,
            &json!({
            "error": e.message,
            "code": e.code.as_str(),
                "docUrl": format!("{}/docs/errors#{}", state.base_url, e.code.as_str()),
            }),
        ),
        e.retry_after(),
    );
    if e.code.is_retryable() {
        // Runway's SDKs retry 429 and 5xx; say explicitly that retrying is right.
        r.headers_mut().insert("x-should-retry", HeaderValue::from_static("true"));
    } else {
        r.headers_mut().insert("x-should-retry", HeaderValue::from_static("false"));
    }
    r
}

/// Checks `X-Runway-Version`.
fn check_version(state: &AppState, headers: &HeaderMap) -> Result<(), Refusal> {
    let path = mediagate_core::ParamPath::key("X-Runway-Version");
    let issue = match headers.get("x-runway-version").map(|v| v.to_str().unwrap_or("")) {
        None => Issue::required(path, "string"),
        Some(v) if API_VERSIONS.contains(&v.trim()) => return Ok(()),
        Some(v) => {
            let opts: Vec<Value> = API_VERSIONS.iter().map(|o| json!(o)).collect();
            Issue::not_in_enum(path, &opts, &json!(v))
        }
    };
    let mut issue = issue;
    issue.message = format!(
        "{}. Send the header `X-Runway-Version: {}` (the official SDKs send it).",
        issue.message, API_VERSIONS[0]
    );
    Err(Refusal::from(validation_failed(state, "headers", &[issue])))
}

/// The caller's key from `Authorization: Bearer …` (repeated invalid keys from one address are
/// throttled before any lookup); a key limited to the other dialect is refused here.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    client: Option<std::net::IpAddr>,
) -> Result<Arc<AuthContext>, Refusal> {
    let missing = || {
        ApiError::new(
            ErrorCode::MissingApiKey,
            "No API key: send `Authorization: Bearer key_…` (the SDKs read RUNWAYML_API_SECRET).",
        )
    };
    let key = match crate::bearer::credential(headers) {
        crate::bearer::Credential::Missing => return Err(Refusal::from(error_response(state, &missing()))),
        crate::bearer::Credential::Bearer(k) => k.to_string(),
        crate::bearer::Credential::Malformed => {
            return Err(Refusal::from(error_response(
                state,
                &ApiError::new(
                    ErrorCode::InvalidApiKey,
                    "Invalid Authorization header: send it as `Authorization: Bearer key_…`.",
                ),
            )));
        }
    };
    state
        .engine
        .authenticate_from(&key, client, mediagate_engine::Dialect::Runway)
        .await
        .map_err(|e| Refusal::from(error_response(state, &e)))
}

/// A response that ends a Runway request early, in the dialect's shape: the error type of every
/// step of a handler, so handlers use `?` (boxed: responses are large and this is the rare
/// path).
pub struct Refusal(Box<Response>);

impl From<Response> for Refusal {
    fn from(r: Response) -> Self {
        Refusal(Box::new(r))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// The authenticated caller of a Runway endpoint: the version check, then authentication (with
/// the key's `dialect:` scope), before any other work and before the body is read. Every
/// Runway endpoint but the upload target (which a one-time token guards) takes it, so none can
/// forget it; its rejection is the dialect's error.
pub struct Caller(pub Arc<AuthContext>);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Refusal> {
        let ClientAddr(client) =
            ClientAddr::from_request_parts(parts, state).await.unwrap_or(ClientAddr(None));
        check_version(state, &parts.headers)?;
        Ok(Caller(authenticate(state, &parts.headers, client).await?))
    }
}

/// Reads a request body (after the caller is authenticated: nothing is read for a stranger),
/// up to `server.max_body_bytes`, answering the limit in this dialect's shape.
async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<axum::body::Bytes, Refusal> {
    let limit = state.engine.config().server.max_body_bytes;
    let hint = "Pass large assets by URL or as a runway:// upload (POST /v1/uploads) instead of a data URI.";
    crate::edge::body::read(headers, body, limit, hint, None)
        .await
        .map(|b| b.bytes)
        .map_err(|e| Refusal::from(error_response(state, &e)))
}

/// The JSON object of a request body, or the 400 saying why not.
fn json_object(state: &AppState, bytes: &[u8]) -> Result<serde_json::Map<String, Value>, Refusal> {
    let bad = |msg: String| {
        Refusal::from(json_response(
            StatusCode::BAD_REQUEST,
            &json!({ "error": msg, "docUrl": doc_url(state) }),
        ))
    };
    if bytes.is_empty() {
        return Err(bad("The request body is empty; send a JSON object.".into()));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(Refusal::from(validation_failed(
            state,
            "body",
            &[Issue::wrong_type(mediagate_core::ParamPath::default(), "object", &other)],
        ))),
        Err(e) => Err(bad(format!("The request body is not valid JSON ({e})."))),
    }
}

/// 404 for an unknown path in this dialect.
pub fn not_found(state: &AppState, path: &str) -> Response {
    error_response(state, &ApiError::new(ErrorCode::NotFound, format!("No endpoint at {path}.")))
}

/// 405 for a known path and the wrong method.
pub fn method_not_allowed(state: &AppState, path: &str, method: &str) -> Response {
    error_response(
        state,
        &ApiError::new(ErrorCode::MethodNotAllowed, format!("{path} does not accept {method}.")),
    )
}
