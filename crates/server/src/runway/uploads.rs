//! Ephemeral uploads: `POST /v1/uploads` hands out an upload target on this server and the
//! `runway://` URI the file will have; the client then POSTs the file (multipart, with the
//! returned `fields`) to the target. The file is validated like every asset and kept for
//! `uploads.ephemeral_ttl_secs` (24 h by default).

use super::body::{Body, Need};
use super::{Caller, Refusal, error_response, json_object, json_response, read_body, validation_failed};
use crate::AppState;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use mediagate_assets::UPLOAD_URI_SCHEME;
use mediagate_core::{ApiError, ErrorCode, ParamPath};
use mediagate_engine::AuthContext;
use mediagate_engine::uploads::Retention;
use parking_lot::Mutex;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Upload targets handed out and not used yet. They live in memory: a target is used seconds
/// after it is created, by the same client, and an unused one costs nothing to lose.
#[derive(Default)]
pub struct UploadSlots(Mutex<HashMap<Uuid, Slot>>);

struct Slot {
    ctx: Arc<AuthContext>,
    token: String,
    expires: Instant,
}

impl UploadSlots {
    fn insert(&self, id: Uuid, slot: Slot) {
        let mut m = self.0.lock();
        let now = Instant::now();
        m.retain(|_, s| s.expires > now);
        m.insert(id, slot);
    }

    /// The account a live target belongs to, if `token` is its token.
    fn check(&self, id: Uuid, token: &str) -> Option<Arc<AuthContext>> {
        let m = self.0.lock();
        let s = m.get(&id).filter(|s| s.expires > Instant::now())?;
        // Constant time: the token is the only credential of the upload request.
        let same = s.token.len() == token.len()
            && s.token.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        same.then(|| s.ctx.clone())
    }

    /// Whether `id` is a target handed out and still open (checked before its body is read).
    fn is_open(&self, id: Uuid) -> bool {
        self.0.lock().get(&id).is_some_and(|s| s.expires > Instant::now())
    }

    fn remove(&self, id: Uuid) {
        self.0.lock().remove(&id);
    }
}

/// `POST /v1/uploads` `{"filename", "type": "ephemeral"}`.
#[utoipa::path(post, path = "/v1/uploads", tag = "runway", params(("X-Runway-Version" = String, Header, description = "The API version: 2024-11-06")), request_body = crate::openapi::schemas::UploadRequest, responses((status = 200, description = "Where to send the file", body = crate::openapi::schemas::UploadTarget), (status = 400, description = "The request is invalid; every issue is listed", body = crate::openapi::schemas::RunwayError), (status = 401, description = "No key, or a wrong one", body = crate::openapi::schemas::RunwayError), (status = 429, description = "Too many requests (a rate limit, or failed authentications from this address); Retry-After says when", body = crate::openapi::schemas::RunwayError)), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, Refusal> {
    let bytes = read_body(&state, &headers, body).await?;
    let obj = json_object(&state, &bytes)?;
    let mut b = Body::new(&obj, ParamPath::default());
    b.string("filename", Need::Required, 1, 255);
    b.one_of("type", Need::Required, &["ephemeral"]);
    let issues = b.finish();
    if !issues.is_empty() {
        return Err(validation_failed(&state, "body", &issues).into());
    }
    let id = Uuid::new_v4();
    let mut raw = [0u8; 32];
    if getrandom::fill(&mut raw).is_err() {
        return Err(error_response(&state, &ApiError::internal()).into());
    }
    let token = hex::encode(raw);
    let ttl = Duration::from_secs(state.engine.config().uploads.upload_url_ttl_secs);
    state.runway_uploads.insert(id, Slot { ctx, token: token.clone(), expires: Instant::now() + ttl });
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "uploadUrl": format!("{}/v1/uploads/{id}", state.base_url),
            "fields": { "key": id, "token": token },
            "runwayUri": format!("{UPLOAD_URI_SCHEME}{id}"),
        }),
    ))
}

fn refused(state: &AppState, code: ErrorCode, message: impl Into<String>) -> Response {
    error_response(state, &ApiError::new(code, message))
}

/// The longest `token` field read (tokens are 64 hex characters).
const TOKEN_MAX_BYTES: usize = 128;

/// Multipart framing and the small fields allowed beside the file.
const MULTIPART_OVERHEAD_BYTES: u64 = 64 * 1024;

/// `POST /v1/uploads/{id}`: the upload target (multipart: `key`, `token`, optional
/// `metadata`, then `file`). No API key: the token from `POST /v1/uploads` is the credential.
/// Nothing is read from a body sent to a target that was never handed out or has expired, the
/// token field is read up to [`TOKEN_MAX_BYTES`], and the whole body up to the upload limit.
#[utoipa::path(post, path = "/v1/uploads/{id}", tag = "runway", params(("id" = String, Path, description = "The upload target's key")), request_body(content = Object, content_type = "multipart/form-data", description = "The `token` field, then the `file` field"), responses((status = 204, description = "Stored; use the target's runwayUri"), (status = 400, description = "The file is refused", body = crate::openapi::schemas::RunwayError), (status = 401, description = "Wrong token", body = crate::openapi::schemas::RunwayError), (status = 404, description = "No such upload target (unknown, used or expired)", body = crate::openapi::schemas::RunwayError)))]
pub async fn receive(State(state): State<AppState>, Path(id): Path<String>, request: Request) -> Response {
    let no_target = || {
        refused(
            &state,
            ErrorCode::InvalidApiKey,
            "The upload token is wrong or the upload target expired; create a new one with POST /v1/uploads.",
        )
    };
    let Ok(id) = Uuid::try_parse(&id) else {
        return refused(
            &state,
            ErrorCode::NotFound,
            "No upload target here; create one with POST /v1/uploads.",
        );
    };
    if !state.runway_uploads.is_open(id) {
        return no_target();
    }
    let max = state.engine.config().uploads.ephemeral_max_bytes;
    let limit = usize::try_from(max.saturating_add(MULTIPART_OVERHEAD_BYTES)).unwrap_or(usize::MAX);
    let request = request.map(|b| axum::body::Body::new(http_body_util::Limited::new(b, limit)));
    let mut form = match Multipart::from_request(request, &state).await {
        Ok(f) => f,
        Err(e) => {
            return refused(&state, ErrorCode::InvalidRequestBody, format!("Send a multipart body: {e}."));
        }
    };
    let mut ctx = None;
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return refused(
                    &state,
                    ErrorCode::InvalidRequestBody,
                    format!(
                        "The multipart body is malformed or larger than the upload limit of {:.1}MB: {e}.",
                        max as f64 / 1e6
                    ),
                );
            }
        };
        match field.name().unwrap_or("") {
            "token" => {
                let token = read_small_field(field, TOKEN_MAX_BYTES).await;
                ctx = token.and_then(|t| state.runway_uploads.check(id, t.trim()));
                if ctx.is_none() {
                    return no_target();
                }
            }
            "file" => {
                let Some(ctx) = ctx.clone() else {
                    return refused(
                        &state,
                        ErrorCode::InvalidApiKey,
                        "Send the `token` field (from POST /v1/uploads) before the `file` field.",
                    );
                };
                let declared = field.content_type().map(str::to_string);
                // Streamed to a temporary file as it arrives: an upload is never held in memory.
                let mut incoming = match state.engine.begin_upload(&ctx, None, max).await {
                    Ok(i) => i,
                    Err(e) => return error_response(&state, &e),
                };
                let mut field = field;
                loop {
                    match field.chunk().await {
                        Ok(Some(chunk)) => {
                            if let Err(e) = incoming.push(&chunk).await {
                                return error_response(&state, &e);
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            return refused(
                                &state,
                                ErrorCode::InvalidRequestBody,
                                format!("The upload ended early: {e}."),
                            );
                        }
                    }
                }
                let stored = state
                    .engine
                    .finish_upload(
                        &ctx,
                        incoming,
                        id,
                        declared.as_deref(),
                        ParamPath::key("file"),
                        Retention::Ephemeral,
                    )
                    .await;
                return match stored {
                    Ok(_) => {
                        state.runway_uploads.remove(id);
                        StatusCode::NO_CONTENT.into_response()
                    }
                    Err(e) => error_response(&state, &e),
                };
            }
            // `key` names the target (it is in the path too); `metadata` is the client's own.
            _ => {}
        }
    }
    refused(&state, ErrorCode::MissingParameter, "The multipart body has no `file` field.")
}

/// A small text field, or `None` when it is longer than `max` bytes (read no further) or breaks off.
async fn read_small_field(mut field: axum::extract::multipart::Field<'_>, max: usize) -> Option<String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.ok()? {
        if bytes.len() + chunk.len() > max {
            return None;
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).ok()
}
