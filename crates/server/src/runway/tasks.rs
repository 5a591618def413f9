//! `GET /v1/tasks/{id}` and `DELETE /v1/tasks/{id}`.

use super::{Caller, Refusal, error_response, json_response};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mediagate_core::{ApiError, ErrorCode};
use mediagate_engine::{TaskPhase, TaskView};
use mediagate_store::TaskStatus;
use serde_json::{Value, json};
use uuid::Uuid;

/// Micro-dollars → Runway credits (1 credit = $0.01).
pub fn credits(micros: i64) -> f64 {
    micros as f64 / 10_000.0
}

/// A failure's `failureCode`, from its catalog code (see Runway's task-failure table).
pub fn failure_code(code: ErrorCode) -> &'static str {
    use ErrorCode::*;
    match code {
        InvalidDataUri | UnsupportedAssetType | InvalidAssetUrl | AssetHostBlocked | AssetFetchFailed
        | AssetHttpStatus | AssetTimeout | AssetContentType | AssetContentLength | AssetTooLarge
        | AssetContentMismatch | AssetDimensions | AssetAspectRatio | AssetNotFound => "ASSET.INVALID",
        ProviderContentPolicyViolation => "SAFETY.INPUT.GENERAL",
        InvalidParameterValue | InvalidParameterType | MissingParameter | UnknownParameter => {
            "INPUT_PREPROCESSING.INVALID"
        }
        _ => "INTERNAL",
    }
}

/// A time (ms since the epoch) as RFC 3339 with milliseconds, as both dialects show times.
pub(crate) fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn parse_id(state: &AppState, id: &str) -> Result<Uuid, super::Refusal> {
    Uuid::try_parse(id).map_err(|_| {
        super::Refusal::from(error_response(
            state,
            &ApiError::new(
                ErrorCode::TaskNotFound,
                "Task ids are UUIDs, as returned by the endpoint that created the task.",
            ),
        ))
    })
}

/// The task as Runway shows it.
pub(crate) fn render(view: &TaskView, phase: Option<TaskPhase>) -> Value {
    let r = &view.record;
    let mut v = json!({ "id": r.task_uuid, "createdAt": iso(r.created_at) });
    let o = v.as_object_mut().expect("object");
    match r.status {
        TaskStatus::Processing => {
            o.insert("estimatedCost".into(), json!({ "credits": credits(r.cost_micros) }));
            match phase {
                Some(TaskPhase::Running { progress }) => {
                    o.insert("status".into(), json!("RUNNING"));
                    o.insert("progress".into(), json!((progress as f64 * 1000.0).round() / 1000.0));
                }
                Some(TaskPhase::Throttled) => {
                    o.insert("status".into(), json!("THROTTLED"));
                }
                _ => {
                    o.insert("status".into(), json!("PENDING"));
                }
            }
        }
        TaskStatus::Success => {
            o.insert("status".into(), json!("SUCCEEDED"));
            o.insert("cost".into(), json!({ "credits": credits(r.cost_micros).ceil() as i64 }));
            let urls: Vec<&str> =
                view.delivered.iter().flat_map(|d| d.items.iter().map(|i| i.url.as_str())).collect();
            o.insert("output".into(), json!(urls));
        }
        TaskStatus::Error => {
            let e = view.error.clone().unwrap_or_else(ApiError::internal);
            // Results delivered before the end were charged and stay available.
            o.insert("cost".into(), json!({ "credits": credits(r.cost_micros).ceil() as i64 }));
            let urls: Vec<&str> =
                view.delivered.iter().flat_map(|d| d.items.iter().map(|i| i.url.as_str())).collect();
            if !urls.is_empty() {
                o.insert("output".into(), json!(urls));
            }
            if e.code == ErrorCode::TaskCancelled {
                o.insert("status".into(), json!("CANCELLED"));
            } else {
                o.insert("status".into(), json!("FAILED"));
                o.insert("failure".into(), json!(e.message));
                o.insert("failureCode".into(), json!(failure_code(e.code)));
            }
        }
    }
    v
}

/// `GET /v1/tasks/{id}`.
#[utoipa::path(get, path = "/v1/tasks/{id}", tag = "runway", params(("id" = String, Path, description = "The task's id"), ("X-Runway-Version" = String, Header, description = "The API version: 2024-11-06")), responses((status = 200, description = "The task", body = crate::openapi::schemas::RunwayTask), (status = 404, description = "No such task for this key", body = crate::openapi::schemas::RunwayError), (status = 400, description = "The request is invalid; every issue is listed", body = crate::openapi::schemas::RunwayError), (status = 401, description = "No key, or a wrong one", body = crate::openapi::schemas::RunwayError), (status = 429, description = "Too many requests (a rate limit, or failed authentications from this address); Retry-After says when", body = crate::openapi::schemas::RunwayError)), security(("bearer" = [])))]
pub async fn get_task(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    let id = parse_id(&state, &id)?;
    crate::edge::record_tasks([id.to_string().as_str()]);
    match state.engine.get_response(&ctx, id).await {
        Ok(view) => {
            let phase = state.engine.task_phase(ctx.account_id, id);
            let mut response = json_response(StatusCode::OK, &render(&view, phase));
            if let Some(t) = mediagate_engine::timing::Timing::of_record(&view.record) {
                crate::edge::server_timing(&mut response, &t);
            }
            Ok(response)
        }
        Err(e) => Err(error_response(&state, &e).into()),
    }
}

/// `DELETE /v1/tasks/{id}`: cancels a pending or running task (and its provider job), or
/// deletes a finished one. 204 either way.
#[utoipa::path(delete, path = "/v1/tasks/{id}", tag = "runway", params(("id" = String, Path, description = "The task's id"), ("X-Runway-Version" = String, Header, description = "The API version: 2024-11-06")), responses((status = 204, description = "Cancelled (unfinished) or deleted (finished)"), (status = 404, description = "No such task for this key", body = crate::openapi::schemas::RunwayError), (status = 400, description = "The request is invalid; every issue is listed", body = crate::openapi::schemas::RunwayError), (status = 401, description = "No key, or a wrong one", body = crate::openapi::schemas::RunwayError), (status = 429, description = "Too many requests (a rate limit, or failed authentications from this address); Retry-After says when", body = crate::openapi::schemas::RunwayError)), security(("bearer" = [])))]
pub async fn delete_task(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    let id = parse_id(&state, &id)?;
    crate::edge::record_tasks([id.to_string().as_str()]);
    match state.engine.cancel_or_delete(&ctx, id).await {
        Ok(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(e) => Err(error_response(&state, &e).into()),
    }
}
