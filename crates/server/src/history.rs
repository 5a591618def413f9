//! The history API (issue 20): `GET /v1/history/tasks` lists an API key's tasks newest first
//! with filters and a cursor; `GET /v1/history/tasks/{taskUUID}` shows one in full: the request
//! as received, the response as the client got it, each provider attempt, timings, cost and
//! webhook deliveries. Operators read any account's (or all accounts') history under
//! `/admin/v1/history/tasks`. Errors are in Runware's shape, like the admin API.
//!
//! History belongs to no dialect: a key scoped to either dialect may read it, and a key with
//! any scopes reads only the tasks it sent itself ([`mediagate_engine::history`]).

use crate::AppState;
use crate::client_addr::ClientAddr;
use crate::runware::request_error;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::response::Response;
use mediagate_core::{ApiError, Dialect, ErrorCode, ParamPath};
use mediagate_engine::AuthContext;
use mediagate_engine::history::{HistoryQuery, TaskDetails, Viewer};
use mediagate_store::{TaskRecord, TaskStatus};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// The API key of a history request, authenticated (its rejection is Runware's error shape).
pub struct HistoryCaller(pub Arc<AuthContext>);

impl FromRequestParts<AppState> for HistoryCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let ClientAddr(client) =
            ClientAddr::from_request_parts(parts, state).await.unwrap_or(ClientAddr(None));
        let key = match crate::bearer::credential(&parts.headers) {
            crate::bearer::Credential::Bearer(k) => k.to_string(),
            crate::bearer::Credential::Missing => {
                let e = ApiError::new(ErrorCode::MissingApiKey, "Send `Authorization: Bearer <API key>`.")
                    .with_parameter(ParamPath::key("apiKey"));
                return Err(request_error(state, &e));
            }
            crate::bearer::Credential::Malformed => {
                let e = ApiError::new(
                    ErrorCode::InvalidApiKey,
                    "Invalid Authorization header: send it as `Authorization: Bearer <API key>`.",
                )
                .with_parameter(ParamPath::key("apiKey"));
                return Err(request_error(state, &e));
            }
        };
        match state.engine.authenticate_client(&key, client).await {
            Ok(ctx) => Ok(HistoryCaller(ctx)),
            Err(e) => Err(request_error(state, &e)),
        }
    }
}

/// The filters a list takes (each a query parameter).
const FILTERS: &[&str] = &[
    "status",
    "taskType",
    "model",
    "errorCode",
    "dialect",
    "keyId",
    "since",
    "until",
    "q",
    "cursor",
    "limit",
];

fn bad(parameter: &str, message: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameterValue, message).with_parameter(ParamPath::key(parameter))
}

/// A time as RFC 3339 (`2026-12-08T10:00:00Z`) or milliseconds since the epoch.
fn time_ms(name: &str, v: &str) -> Result<i64, ApiError> {
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(v).map(|t| t.timestamp_millis()).map_err(|_| {
        bad(
            name,
            format!(
                "{name} must be an RFC 3339 time (2026-12-08T10:00:00Z) or milliseconds since the epoch."
            ),
        )
    })
}

/// Reads a list's query string; `extra` names parameters the route reads itself.
pub(crate) fn parse_query(q: &HashMap<String, String>, extra: &[&str]) -> Result<HistoryQuery, ApiError> {
    if let Some(unknown) = q.keys().find(|k| !FILTERS.contains(&k.as_str()) && !extra.contains(&k.as_str())) {
        return Err(ApiError::new(
            ErrorCode::UnknownParameter,
            format!("{unknown} is not a history filter; use {}.", FILTERS.join(", ")),
        )
        .with_parameter(ParamPath::key(unknown.clone())));
    }
    let text = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    Ok(HistoryQuery {
        status: text("status")
            .map(|s| {
                TaskStatus::parse(&s).ok_or_else(|| {
                    bad("status", format!("status must be processing, success or error, not {s}."))
                })
            })
            .transpose()?,
        task_type: text("taskType"),
        model: text("model"),
        error_code: text("errorCode"),
        dialect: text("dialect")
            .map(|d| {
                Dialect::parse(&d)
                    .ok_or_else(|| bad("dialect", format!("dialect must be runware or runway, not {d}.")))
            })
            .transpose()?,
        key_id: text("keyId")
            .map(|k| k.parse::<i64>().map_err(|_| bad("keyId", "keyId must be a key's numeric id.".into())))
            .transpose()?,
        since_ms: text("since").map(|v| time_ms("since", &v)).transpose()?,
        until_ms: text("until").map(|v| time_ms("until", &v)).transpose()?,
        text: text("q"),
        cursor: text("cursor"),
        limit: text("limit")
            .map(|l| l.parse::<u32>().map_err(|_| bad("limit", "limit must be a whole number.".into())))
            .transpose()?,
    })
}

fn usd(micros: i64) -> f64 {
    micros as f64 / 1_000_000.0
}

/// A task on a list page.
fn summary(rec: &TaskRecord) -> Value {
    let iso = crate::runway::tasks::iso;
    json!({
        "taskUUID": rec.task_uuid,
        "taskType": rec.task_type,
        "dialect": rec.dialect.as_str(),
        "model": rec.model,
        "status": rec.status.as_str(),
        "errorCode": rec.error.as_ref().map(|e| e.code.clone()),
        "errorMessage": rec.error.as_ref().map(|e| e.message.clone()),
        "keyId": rec.key_id,
        "accountId": rec.account_id,
        "costUSD": usd(rec.cost_micros),
        "createdAt": iso(rec.created_at),
        "finishedAt": rec.finished_at.map(iso),
        "durationMs": rec.finished_at.map(|f| (f - rec.created_at).max(0)),
        "deletedAt": rec.deleted_at.map(iso),
    })
}

fn page_json(page: mediagate_engine::history::HistoryPage) -> Value {
    json!({
        "data": page.tasks.iter().map(summary).collect::<Vec<_>>(),
        "hasMore": page.next_cursor.is_some(),
        "nextCursor": page.next_cursor,
    })
}

/// One task in full.
pub(crate) fn details_json(state: &AppState, d: TaskDetails) -> Value {
    let rec = d.view.record.clone();
    let sent = rec.task_uuid.to_string();
    let mut v = summary(&rec);
    let o = v.as_object_mut().expect("object");
    o.insert("request".into(), crate::runware::request_as_received(&rec, &sent));
    let error = d.view.error.as_ref().map(|e| crate::runware::render::error(e, &state.base_url));
    let response = match rec.dialect {
        Dialect::Runware => crate::runware::response_as_sent(state, d.view, &sent),
        Dialect::Runway => crate::runway::tasks::render(&d.view, None),
    };
    o.insert("response".into(), response);
    o.insert("error".into(), json!(error));
    o.insert("attempts".into(), json!(rec.attempts));
    o.insert(
        "timings".into(),
        json!(mediagate_engine::timing::Timing::of_record(&rec).map(|t| json!({
            "queueMs": t.queue.as_secs_f64() * 1000.0,
            "providerMs": t.provider.as_secs_f64() * 1000.0,
            "admitMs": t.store.as_secs_f64() * 1000.0,
            "totalMs": t.total.as_secs_f64() * 1000.0,
        }))),
    );
    o.insert(
        "webhooks".into(),
        json!(d.webhooks.iter().map(|w| json!({
            "webhookId": w.webhook_id,
            "url": w.url,
            "status": w.status,
            "attempts": w.attempts.iter().map(|a| json!({
                "attempt": a.attempt, "at": a.at, "statusCode": a.status_code, "error": a.error, "durationMs": a.duration_ms,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>()),
    );
    v
}

fn task_uuid(id: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::try_parse(id).map_err(|_| {
        ApiError::new(ErrorCode::InvalidTaskUUID, "Name the task by its taskUUID.")
            .with_parameter(ParamPath::key("taskUUID"))
    })
}

fn reply(state: &AppState, r: Result<Value, ApiError>) -> Response {
    match r {
        Ok(v) => crate::json_response(axum::http::StatusCode::OK, &v),
        Err(e) => request_error(state, &e),
    }
}

/// `GET /v1/history/tasks`.
#[utoipa::path(get, path = "/v1/history/tasks", tag = "history",
    params(
        ("status" = Option<String>, Query, description = "processing, success or error"),
        ("taskType" = Option<String>, Query, description = "The task type as sent"),
        ("model" = Option<String>, Query, description = "The model's AIR id"),
        ("errorCode" = Option<String>, Query, description = "A catalog error code (see /docs/errors)"),
        ("dialect" = Option<String>, Query, description = "runware or runway"),
        ("keyId" = Option<i64>, Query, description = "The id of the key that sent it"),
        ("since" = Option<String>, Query, description = "Admitted at or after: RFC 3339 or ms since the epoch"),
        ("until" = Option<String>, Query, description = "Admitted before: RFC 3339 or ms since the epoch"),
        ("q" = Option<String>, Query, description = "Text in the recorded request (its prompt), case-insensitive"),
        ("cursor" = Option<String>, Query, description = "A page's nextCursor, unchanged"),
        ("limit" = Option<u32>, Query, description = "Tasks on the page (history.page_size; at most history.max_page_size)"),
    ),
    responses(
        (status = 200, description = "A page of tasks, newest first; follow nextCursor while hasMore (a page may be short, even empty, and still have more)", body = Object),
        (status = 400, description = "A filter is not understood", body = crate::openapi::schemas::RunwareResponse),
        (status = 401, description = "No key, or a wrong one", body = crate::openapi::schemas::RunwareResponse),
        (status = 403, description = "A scoped key asked for another key's tasks", body = crate::openapi::schemas::RunwareResponse),
        (status = 429, description = "Too many failed authentications from this address", body = crate::openapi::schemas::RunwareResponse),
    ),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    HistoryCaller(ctx): HistoryCaller,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let r = async {
        let query = parse_query(&q, &[])?;
        Ok(page_json(state.engine.history(Viewer::Key(&ctx), query).await?))
    }
    .await;
    reply(&state, r)
}

/// `GET /v1/history/tasks/{id}`.
#[utoipa::path(get, path = "/v1/history/tasks/{id}", tag = "history",
    params(("id" = String, Path, description = "The taskUUID")),
    responses(
        (status = 200, description = "The task in full: request as received, response as sent, provider attempts, timings, cost, webhook deliveries", body = Object),
        (status = 400, description = "Not a UUID", body = crate::openapi::schemas::RunwareResponse),
        (status = 401, description = "No key, or a wrong one", body = crate::openapi::schemas::RunwareResponse),
        (status = 404, description = "No such task for this key", body = crate::openapi::schemas::RunwareResponse),
        (status = 429, description = "Too many failed authentications from this address", body = crate::openapi::schemas::RunwareResponse),
    ),
    security(("bearer" = [])))]
pub async fn one(
    State(state): State<AppState>,
    HistoryCaller(ctx): HistoryCaller,
    Path(id): Path<String>,
) -> Response {
    let r = async {
        let uuid = task_uuid(&id)?;
        crate::edge::record_tasks([id.as_str()]);
        Ok(details_json(&state, state.engine.history_task(Viewer::Key(&ctx), uuid).await?))
    }
    .await;
    reply(&state, r)
}

/// The account an operator's request names (`?account=NAME`), if any.
async fn named_account(state: &AppState, q: &HashMap<String, String>) -> Result<Option<i64>, ApiError> {
    let Some(name) = q.get("account").filter(|n| !n.is_empty()) else { return Ok(None) };
    let accounts = state.engine.admin().list_accounts().await.map_err(|_| ApiError::internal())?;
    accounts.iter().find(|a| &a.name == name).map(|a| Some(a.id)).ok_or_else(|| {
        ApiError::new(ErrorCode::ResourceNotFound, format!("Account {name} does not exist."))
            .with_parameter(ParamPath::key("account"))
    })
}

/// `GET /admin/v1/history/tasks`: any account's history (`?account=NAME`), or every account's.
#[utoipa::path(get, path = "/history/tasks", tag = "admin",
    params(("account" = Option<String>, Query, description = "One account's tasks (its name); every account's without it")),
    responses(
        (status = 200, description = "A page of tasks, newest first (the filters of /v1/history/tasks apply)", body = Object),
        (status = 400, description = "A filter is not understood", body = crate::openapi::schemas::RunwareResponse),
        (status = 401, description = "No admin key, or a wrong one", body = crate::openapi::schemas::RunwareResponse),
        (status = 404, description = "No such account", body = crate::openapi::schemas::RunwareResponse),
        (status = 429, description = "Too many failed authentications from this address; Retry-After says when", body = crate::openapi::schemas::RunwareResponse),
    ),
    security(("bearer" = [])))]
pub async fn admin_list(
    _: crate::admin_api::AdminAuth,
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let r = async {
        let query = parse_query(&q, &["account"])?;
        let account_id = named_account(&state, &q).await?;
        Ok(page_json(state.engine.history(Viewer::Admin { account_id }, query).await?))
    }
    .await;
    reply(&state, r)
}

/// `GET /admin/v1/history/tasks/{id}?account=NAME`.
#[utoipa::path(get, path = "/history/tasks/{id}", tag = "admin",
    params(("id" = String, Path, description = "The taskUUID"), ("account" = String, Query, description = "The task's account")),
    responses(
        (status = 200, description = "The task in full", body = Object),
        (status = 400, description = "Not a UUID, or no account named", body = crate::openapi::schemas::RunwareResponse),
        (status = 401, description = "No admin key, or a wrong one", body = crate::openapi::schemas::RunwareResponse),
        (status = 404, description = "No such task or account", body = crate::openapi::schemas::RunwareResponse),
        (status = 429, description = "Too many failed authentications from this address; Retry-After says when", body = crate::openapi::schemas::RunwareResponse),
    ),
    security(("bearer" = [])))]
pub async fn admin_one(
    _: crate::admin_api::AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let r = async {
        let uuid = task_uuid(&id)?;
        let account_id = named_account(&state, &q).await?;
        Ok(details_json(&state, state.engine.history_task(Viewer::Admin { account_id }, uuid).await?))
    }
    .await;
    reply(&state, r)
}
