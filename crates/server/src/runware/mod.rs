//! The Runware dialect over REST: `POST /v1` with a JSON array of tasks.
//!
//! Errors are scoped per task: one failing task never fails its siblings. The response is
//! `{"data": [...]}` and/or `{"errors": [...]}`; its status is 200 when any task succeeded,
//! else the status of the first error.

mod account;
pub(crate) mod parse;
pub mod render;
pub mod sessions;
pub mod ws;

use crate::AppState;
use crate::client_addr::ClientAddr;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use futures::future::join_all;
use mediagate_core::{ApiError, ErrorCode, ParamPath};
use mediagate_engine::timing::Timing;
use mediagate_engine::{AuthContext, Dialect, Submitted};
use parse::Parsed;
use serde_json::{Value, json};
use std::sync::Arc;

/// A JSON response with a catalog status.
fn json_response(status: u16, body: &Value) -> Response {
    crate::json_response(crate::catalog_status(status), body)
}

/// Adds `Retry-After` (whole seconds, rounded up) and `retry-after-ms` when the deciding error
/// says how long to wait.
pub fn with_retry_after(mut r: Response, wait: Option<std::time::Duration>) -> Response {
    if let Some(wait) = wait {
        let ms = wait.as_millis().max(1);
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let h = r.headers_mut();
        h.insert(header::RETRY_AFTER, header::HeaderValue::from(secs.max(1)));
        h.insert("retry-after-ms", header::HeaderValue::from(ms as u64));
    }
    r
}

/// A response carrying one request-level error.
pub fn request_error(state: &AppState, e: &ApiError) -> Response {
    with_retry_after(
        json_response(e.http_status(), &json!({ "errors": [render::error(e, &state.base_url)] })),
        e.retry_after(),
    )
}

/// The key in the `Authorization` header: `None` without one, an error when it is malformed.
fn bearer(headers: &HeaderMap) -> Option<Result<String, ApiError>> {
    match crate::bearer::credential(headers) {
        crate::bearer::Credential::Missing => None,
        crate::bearer::Credential::Bearer(k) => Some(Ok(k.to_string())),
        crate::bearer::Credential::Malformed => Some(Err(invalid_header())),
    }
}

fn invalid_header() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidApiKey,
        "Invalid Authorization header: send it as `Authorization: Bearer <API key>`.",
    )
    .with_parameter(ParamPath::key("apiKey"))
    .with_task_type("authentication")
}

/// What to do instead of sending a body this large.
const BODY_HINT: &str =
    "Send fewer tasks per request, or pass large images by URL or upload UUID instead of inline data.";

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::UnsupportedContentType,
            if ct.is_empty() {
                "The request has no Content-Type; send the JSON task array with `Content-Type: application/json`.".to_string()
            } else {
                format!(
                    "Content-Type '{ct}' is not accepted; send the JSON task array with `Content-Type: application/json`."
                )
            },
        ))
    }
}

/// `POST /v1`.
#[utoipa::path(post, path = "/v1", tag = "runware", request_body = Vec<crate::openapi::schemas::RunwareTask>, responses((status = 200, description = "At least one task succeeded (failed ones are in errors)", body = crate::openapi::schemas::RunwareResponse), (status = 400, description = "The request, or every task, is invalid", body = crate::openapi::schemas::RunwareResponse), (status = 401, description = "No key, or a wrong one", body = crate::openapi::schemas::RunwareResponse), (status = 402, description = "Not enough credit", body = crate::openapi::schemas::RunwareResponse), (status = 429, description = "A limit; Retry-After says when", body = crate::openapi::schemas::RunwareResponse)), security(("bearer" = [])))]
pub async fn post_tasks(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match handle(&state, client, &headers, body).await {
        Ok(r) => r,
        Err(e) => request_error(&state, &e),
    }
}

async fn handle(
    state: &AppState,
    client: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_content_type(headers)?;
    // A key in the header is checked before the body is read, so a good one is not held to the
    // unauthenticated budget. Without one (or with a wrong one, which a key inside the body
    // overrides), the body is read before anyone is authenticated, under the server's
    // unauthenticated budget, until the key in it is checked.
    let header = match bearer(headers) {
        Some(Ok(key)) => Some(state.engine.authenticate_from(&key, client, Dialect::Runware).await),
        Some(Err(e)) => Some(Err(e)),
        None => None,
    };
    let budget = (!matches!(header, Some(Ok(_)))).then_some(&state.unauthenticated);
    let limit = state.engine.config().server.max_body_bytes;
    let crate::edge::body::ReadBody { bytes, held } =
        crate::edge::body::read(headers, body, limit, BODY_HINT, budget).await?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("The request body is not valid JSON ({e}). Send a JSON array of task objects."),
        )
    })?;
    let Value::Array(mut tasks) = value else {
        return Err(ApiError::new(
            ErrorCode::InvalidRequestBody,
            "The request body must be a JSON array of task objects, e.g. [{\"taskType\":\"ping\",\"ping\":true}], \
             even for a single task.",
        ));
    };
    if tasks.is_empty() {
        return Err(ApiError::new(
            ErrorCode::MissingTasks,
            "The task array is empty; send at least one task object.",
        ));
    }

    // Authentication: a leading `authentication` element, else the Authorization header.
    let auth_element = tasks
        .first()
        .filter(|t| t.get("taskType").and_then(Value::as_str) == Some("authentication"))
        .is_some();
    let ctx = if auth_element {
        let first = tasks.remove(0);
        match first.get("apiKey") {
            Some(Value::String(k)) => state.engine.authenticate_from(k, client, Dialect::Runware).await?,
            _ => {
                return Err(ApiError::new(
                    ErrorCode::MissingApiKey,
                    "The authentication task has no string apiKey; send {\"taskType\":\"authentication\",\"apiKey\":\"key_…\"}.",
                )
                .with_parameter(ParamPath::key("apiKey"))
                .with_task_type("authentication"));
            }
        }
    } else {
        match header {
            Some(ctx) => ctx?,
            None => {
                return Err(ApiError::new(
                    ErrorCode::MissingApiKey,
                    "No API key: send `Authorization: Bearer <API key>` or make the first task \
                     {\"taskType\":\"authentication\",\"apiKey\":\"<API key>\"}.",
                )
                .with_parameter(ParamPath::key("apiKey"))
                .with_task_type("authentication"));
            }
        }
    };
    drop(held);

    if tasks.is_empty() {
        // Only an authentication element: a key check. Answer like Runware's auth reply.
        return Ok(json_response(200, &json!({ "data": [{ "taskType": "authentication" }] })));
    }
    let max = state.engine.config().server.max_tasks_per_request;
    if tasks.len() > max {
        return Err(ApiError::new(
            ErrorCode::InvalidRequestBody,
            format!(
                "The request holds {} tasks; at most {max} are accepted per request. Split it.",
                tasks.len()
            ),
        ));
    }

    crate::edge::record_tasks(tasks.iter().filter_map(|t| t.get("taskUUID").and_then(Value::as_str)));
    let offset = usize::from(auth_element);
    let outcomes =
        join_all(tasks.iter().enumerate().map(|(i, t)| run_one_timed(state, &ctx, t, i + offset))).await;

    let mut data = Vec::new();
    let mut errors = Vec::new();
    let mut first_error_status = None;
    let mut first_retry_after = None;
    // The slowest task's figures: the request took as long as it did.
    let mut slowest: Option<Timing> = None;
    for o in outcomes {
        match o {
            Ok((items, timing)) => {
                data.extend(items);
                if let Some(t) = timing
                    && slowest.is_none_or(|s| t.total > s.total)
                {
                    slowest = Some(t);
                }
            }
            Err(e) => {
                if first_error_status.is_none() {
                    first_retry_after = e.retry_after();
                }
                first_error_status.get_or_insert(e.http_status());
                errors.push(render::error(&e, &state.base_url));
            }
        }
    }
    let status = if data.is_empty() { first_error_status.unwrap_or(200) } else { 200 };
    let retry_after = if data.is_empty() { first_retry_after } else { None };
    let mut body = serde_json::Map::new();
    if !data.is_empty() {
        body.insert("data".into(), Value::Array(data));
    }
    if !errors.is_empty() {
        body.insert("errors".into(), Value::Array(errors));
    }
    let mut response = with_retry_after(json_response(status, &Value::Object(body)), retry_after);
    if let Some(t) = slowest {
        crate::edge::server_timing(&mut response, &t);
    }
    Ok(response)
}

/// Runs one task; errors carry the task's type and UUID as the client sent them.
async fn run_one(
    state: &AppState,
    ctx: &Arc<AuthContext>,
    task: &Value,
    index: usize,
) -> Result<Vec<Value>, ApiError> {
    run_one_timed(state, ctx, task, index).await.map(|(items, _)| items)
}

/// Runs one task, with where its time went when the answer carries a task's end (a sync task
/// this process ran, or a poll of a finished task).
async fn run_one_timed(
    state: &AppState,
    ctx: &Arc<AuthContext>,
    task: &Value,
    index: usize,
) -> Result<(Vec<Value>, Option<Timing>), ApiError> {
    let known = parse::known(task);
    let tag = |e: ApiError| {
        let mut e = e;
        if let Some(t) = &known.task_type {
            e.task_type = Some(t.clone());
        }
        if let Some(u) = &known.task_uuid {
            e.task_uuid = Some(u.clone());
        }
        e
    };
    match parse::parse(task, index).map_err(tag)? {
        Parsed::Ping { task_uuid } => {
            let mut m = serde_json::Map::new();
            m.insert("taskType".into(), json!("ping"));
            if let Some(u) = task_uuid {
                m.insert("taskUUID".into(), json!(u));
            }
            m.insert("pong".into(), json!(true));
            Ok((vec![Value::Object(m)], None))
        }
        Parsed::GetResponse { sent, task_uuid } => {
            let view = state.engine.get_response(ctx, task_uuid).await.map_err(tag)?;
            let timing = Timing::of_record(&view.record);
            Ok((poll_items(state, view, &sent), timing))
        }
        Parsed::TaskDetails { sent, task_uuid } => {
            let view = state.engine.get_response(ctx, task_uuid).await.map_err(tag)?;
            Ok((vec![task_details(state, view, &sent)], None))
        }
        Parsed::Upload { sent, task_uuid, task_type, reference, param } => {
            let kind = (task_type == "imageUpload").then_some(mediagate_assets::AssetKind::Image);
            let retention = mediagate_engine::uploads::Retention::AfterLastUse;
            let up = state
                .engine
                .upload_task(ctx, task_uuid, task_type, &reference, kind, param, retention)
                .await
                .map_err(tag)?;
            Ok((
                vec![if task_type == "imageUpload" {
                    json!({ "taskType": task_type, "taskUUID": sent, "imageUUID": up.uuid, "imageURL": up.url })
                } else {
                    json!({
                        "taskType": task_type,
                        "taskUUID": sent,
                        "operation": "upload",
                        "mediaUUID": up.uuid,
                        "mediaURL": up.url,
                        "mediaType": up.media_type,
                    })
                }],
                None,
            ))
        }
        Parsed::ModelSearch { sent, query } => {
            let (total, page) = state.engine.model_search(ctx, &query);
            let results: Vec<Value> = page.iter().map(render::listed_model).collect();
            Ok((
                vec![
                    json!({"taskType": "modelSearch", "taskUUID": sent, "results": results, "totalResults": total}),
                ],
                None,
            ))
        }
        Parsed::AccountDetails { sent } => {
            Ok((vec![account::details(state, ctx, &sent).await.map_err(tag)?], None))
        }
        Parsed::DeleteMedia { sent, media_uuid } => {
            state.engine.delete_upload(ctx, media_uuid, ParamPath::key("mediaUUID")).await.map_err(tag)?;
            Ok((
                vec![json!({
                    "taskType": "mediaStorage",
                    "taskUUID": sent,
                    "operation": "delete",
                    "mediaUUID": media_uuid,
                })],
                None,
            ))
        }
        Parsed::Submit { sent, submission } => {
            let tt = submission.task_type_name.clone();
            match state.engine.submit(ctx, *submission).await.map_err(tag)? {
                Submitted::Done(delivered) => {
                    Ok((render::result_items(&tt, &sent, &delivered, None), delivered.timing))
                }
                // The acknowledgement of an async task: poll its result with getResponse.
                Submitted::Accepted { .. } => {
                    Ok((vec![json!({ "taskType": tt, "taskUUID": sent, "status": "processing" })], None))
                }
            }
        }
    }
}

/// `GET /v1/webhooks/deliveries?taskUUID=…`: the webhook deliveries of a task and every attempt.
#[utoipa::path(get, path = "/v1/webhooks/deliveries", tag = "runware", params(("taskUUID" = String, Query, description = "The task")), responses((status = 200, description = "The task's webhook deliveries and every attempt", body = Object), (status = 400, description = "No taskUUID, or not a UUID", body = crate::openapi::schemas::RunwareResponse), (status = 401, description = "No key, or a wrong one", body = crate::openapi::schemas::RunwareResponse), (status = 429, description = "Too many failed authentications from this address", body = crate::openapi::schemas::RunwareResponse), (status = 404, description = "No such task for this account", body = crate::openapi::schemas::RunwareResponse)), security(("bearer" = [])))]
pub async fn webhook_deliveries(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let result = async {
        let key = match bearer(&headers) {
            Some(k) => k?,
            None => {
                return Err(ApiError::new(
                    ErrorCode::MissingApiKey,
                    "Send `Authorization: Bearer <API key>`.",
                )
                .with_parameter(ParamPath::key("apiKey"))
                .with_task_type("authentication"));
            }
        };
        let ctx = state.engine.authenticate_from(&key, client, Dialect::Runware).await?;
        let uuid = q.get("taskUUID").and_then(|u| uuid::Uuid::try_parse(u).ok()).ok_or_else(|| {
            ApiError::new(ErrorCode::InvalidTaskUUID, "Give the task as ?taskUUID=<uuid>.")
                .with_parameter(ParamPath::key("taskUUID"))
        })?;
        let list = state.engine.webhook_deliveries(&ctx, uuid).await?;
        let data: Vec<Value> = list
            .into_iter()
            .map(|d| {
                json!({
                    "webhookId": d.webhook_id,
                    "taskUUID": d.task_uuid,
                    "url": d.url,
                    "status": d.status,
                    "attempts": d.attempts.iter().map(|a| json!({
                        "attempt": a.attempt,
                        "at": a.at,
                        "statusCode": a.status_code,
                        "error": a.error,
                        "durationMs": a.duration_ms,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        Ok(json_response(200, &json!({ "data": data })))
    }
    .await;
    result.unwrap_or_else(|e| request_error(&state, &e))
}

/// What `getResponse` answers for a stored task: its results, and an item saying whether more
/// are coming or why it ended.
fn poll_items(state: &AppState, view: mediagate_engine::TaskView, sent: &str) -> Vec<Value> {
    let tt = view.record.task_type.clone();
    let running = view.record.status == mediagate_store::TaskStatus::Processing;
    let failed = |e: &ApiError| json!({"taskType": tt, "taskUUID": sent, "status": "error", "error": render::error(e, &state.base_url)});
    match (view.delivered, view.error) {
        // Partial results of a running task, then one item saying the rest is coming.
        (Some(d), _) if running => {
            let mut items = render::result_items(&tt, sent, &d, Some("success"));
            items.push(json!({ "taskType": tt, "taskUUID": sent, "status": "processing" }));
            items
        }
        // Ended early (cancelled, failed) after some results: those, then the error.
        (Some(d), Some(e)) => {
            let mut items = render::result_items(&tt, sent, &d, Some("success"));
            items.push(failed(&e));
            items
        }
        (Some(d), _) => render::result_items(&tt, sent, &d, Some("success")),
        (None, Some(e)) => vec![failed(&e)],
        (None, None) => vec![json!({ "taskType": tt, "taskUUID": sent, "status": "processing" })],
    }
}

/// What `getTaskDetails` answers for a stored task: the request as the task object it reads
/// back as (inline assets longer than 512 bytes shown by their size, never a key), and the
/// response envelope: `data` with the results, or `errors` when it failed without any.
fn task_details(state: &AppState, view: mediagate_engine::TaskView, sent: &str) -> Value {
    let request = request_as_received(&view.record, sent);
    let response = response_as_sent(state, view, sent);
    json!({ "taskType": "getTaskDetails", "taskUUID": sent, "request": [request], "response": response })
}

/// A stored task's request as the task object it reads back as (inline assets longer than 512
/// bytes shown by their size and hash, never a key).
pub(crate) fn request_as_received(rec: &mediagate_store::TaskRecord, sent: &str) -> Value {
    let mut request = match serde_json::from_str::<mediagate_core::task::TaskRequest>(&rec.request) {
        Ok(r) => r.to_wire(),
        // Uploads are recorded by what was uploaded, not as a canonical request.
        Err(_) => serde_json::from_str(&rec.request).unwrap_or_default(),
    };
    request.insert("taskType".into(), json!(rec.task_type));
    request.insert("taskUUID".into(), json!(sent));
    Value::Object(request)
}

/// The response envelope a Runware client gets for a stored task: `data` with the results, or
/// `errors` when it failed without any.
pub(crate) fn response_as_sent(state: &AppState, view: mediagate_engine::TaskView, sent: &str) -> Value {
    match (&view.delivered, &view.error) {
        (None, Some(e)) => json!({ "errors": [render::error(e, &state.base_url)] }),
        _ => json!({ "data": poll_items(state, view, sent) }),
    }
}
