//! The admin API under `/admin/v1`: accounts, API keys, credits and limits, authenticated by
//! admin keys (`Authorization: Bearer admin_…`, made with `mediagate admin-keys create`).
//!
//! API keys are refused here and admin keys on the task API. Replies are JSON; errors have the
//! shape of the Runware dialect's, mediagate's own (`{"errors": [{"code", "message",
//! "documentation"}]}`, with the catalog's HTTP status), so that a client of this server reads
//! two shapes, not three. The operations are the CLI's ([`mediagate_engine::admin::Admin`]);
//! docs/admin-api.md (served at `/docs/admin-api`) is the reference.
//!
//! | method and path | does |
//! |---|---|
//! | `GET /accounts` | lists accounts |
//! | `POST /accounts` `{name, creditUsd?}` | creates one |
//! | `POST /accounts/{name}/suspend`, `/unsuspend` | suspends (keys refused with 401) or reactivates |
//! | `GET /accounts/{name}/credits?entries=N` | balance and newest ledger entries |
//! | `POST /accounts/{name}/credits` `{usd, note?}` | grants credit |
//! | `GET /accounts/{name}/limits` | stored overrides, limits in force and current usage per model |
//! | `PUT /accounts/{name}/limits` `{model?, keyRatePerSec?, …}` | replaces the account's (or the account and model's) overrides |
//! | `GET /keys?account=NAME` | lists keys (never secrets) |
//! | `POST /keys` `{account, description?, scopes?}` | creates a key; the secret is in this reply only |
//! | `POST /keys/{id}/disable`, `/enable`, `/revoke` | changes a key's status |

use crate::AppState;
use crate::client_addr::ClientAddr;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, OriginalUri, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use mediagate_core::money::{format_usd, parse_usd};
use mediagate_core::{ApiError, ErrorCode};
use mediagate_engine::admin::AdminError;
use mediagate_store::{Account, AccountStatus, KeyRecord, KeyStatus, LimitValues, StoreError};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::HashMap;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The admin routes with their OpenAPI operations, to nest under `/admin/v1` (paths here are
/// relative to it).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_accounts, create_account))
        .routes(routes!(suspend))
        .routes(routes!(unsuspend))
        .routes(routes!(credits, grant))
        .routes(routes!(limits, set_limits))
        .routes(routes!(storage))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(key_action))
        .routes(routes!(crate::history::admin_list))
        .routes(routes!(crate::history::admin_one))
}

/// The admin API's own answers for paths and methods it does not have.
pub fn with_fallbacks(router: Router<AppState>) -> Router<AppState> {
    router.fallback(not_found).method_not_allowed_fallback(method_not_allowed)
}

/// An error reply of the admin API.
fn error_response(s: &AppState, e: &ApiError) -> Response {
    crate::runware::request_error(s, e)
}

async fn not_found(State(s): State<AppState>, OriginalUri(uri): OriginalUri) -> Response {
    let e = ApiError::new(
        ErrorCode::NotFound,
        format!(
            "No admin endpoint at {}. The admin API's endpoints are listed at {}/docs/admin-api.",
            uri.path(),
            s.base_url
        ),
    );
    error_response(&s, &e)
}

async fn method_not_allowed(
    State(s): State<AppState>,
    method: axum::http::Method,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let e = ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!(
            "{} does not accept {method}; see {}/docs/admin-api for each endpoint's methods.",
            uri.path(),
            s.base_url
        ),
    );
    error_response(&s, &e)
}

fn ok(v: Value) -> Response {
    crate::json_response(StatusCode::OK, &v)
}

type Reply = Result<Response, ApiError>;

fn done(s: &AppState, r: Reply) -> Response {
    r.unwrap_or_else(|e| error_response(s, &e))
}

pub(crate) fn admin_error(e: AdminError) -> ApiError {
    match e {
        AdminError::Invalid(m) => ApiError::new(ErrorCode::InvalidParameterValue, m),
        AdminError::Store(StoreError::Invalid(m)) => ApiError::new(ErrorCode::InvalidParameterValue, m),
        AdminError::Store(StoreError::Conflict(m)) => ApiError::new(ErrorCode::Conflict, m),
        AdminError::Store(StoreError::NotFound(what)) => {
            ApiError::new(ErrorCode::ResourceNotFound, format!("{what} does not exist."))
        }
        AdminError::Store(StoreError::Backend(m)) => {
            tracing::error!(error = %m, "admin operation failed");
            ApiError::internal()
        }
        AdminError::Store(e @ (StoreError::StorageFull(_) | StoreError::Unavailable(_))) => {
            mediagate_engine::store_failure(&e)
        }
    }
}

fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidRequestBody,
            format!("The request body is not the expected JSON object: {e}."),
        )
    })
}

/// Proof that the request carries a valid admin key.
pub struct AdminAuth;

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let ClientAddr(client) =
            ClientAddr::from_request_parts(parts, state).await.unwrap_or(ClientAddr(None));
        let crate::bearer::Credential::Bearer(key) = crate::bearer::credential(&parts.headers) else {
            return Err(error_response(
                state,
                &ApiError::new(
                    ErrorCode::InvalidAdminKey,
                    "Send an admin key as `Authorization: Bearer admin_…` (create one with `mediagate admin-keys create`).",
                ),
            ));
        };
        state.engine.authenticate_admin(key, client).await.map_err(|e| error_response(state, &e))?;
        Ok(AdminAuth)
    }
}

fn account_json(a: &Account) -> Value {
    json!({
        "id": a.id,
        "name": a.name,
        "status": a.status.as_str(),
        "balanceMicros": a.balance_micros,
        "balanceUsd": format_usd(a.balance_micros),
        "createdAt": a.created_at,
    })
}

fn key_json(k: &KeyRecord) -> Value {
    json!({
        "id": k.id,
        "account": k.account_name,
        "prefix": k.prefix,
        "description": k.description,
        "scopes": k.scopes,
        "status": k.status.as_str(),
        "createdAt": k.created_at,
    })
}

#[utoipa::path(get, path = "/accounts", tag = "admin", responses((status = 200, description = "Accounts", body = Object), (status = 400, description = "Invalid body or value", body = crate::openapi::schemas::RunwareResponse), (status = 401, description = "No admin key, or a wrong one", body = crate::openapi::schemas::RunwareResponse), (status = 429, description = "Too many failed authentications from this address; Retry-After says when", body = crate::openapi::schemas::RunwareResponse)), security(("bearer" = [])))]
async fn list_accounts(_: AdminAuth, State(s): State<AppState>) -> Response {
    done(
        &s,
        async {
            let list = s.engine.admin().list_accounts().await.map_err(admin_error)?;
            Ok(ok(json!({ "data": list.iter().map(account_json).collect::<Vec<_>>() })))
        }
        .await,
    )
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewAccount {
    name: String,
    #[serde(default)]
    credit_usd: Option<String>,
}

#[utoipa::path(post, path = "/accounts", tag = "admin", request_body = NewAccount, responses((status = 200, description = "The account", body = Object), (status = 409, description = "It exists", body = crate::openapi::schemas::RunwareResponse), (status = 400, description = "Invalid body or value", body = crate::openapi::schemas::RunwareResponse), (status = 401, description = "No admin key, or a wrong one", body = crate::openapi::schemas::RunwareResponse), (status = 429, description = "Too many failed authentications from this address; Retry-After says when", body = crate::openapi::schemas::RunwareResponse)), security(("bearer" = [])))]
async fn create_account(_: AdminAuth, State(s): State<AppState>, b: Bytes) -> Response {
    done(
        &s,
        async {
            let req: NewAccount = body(&b)?;
            let a = s
                .engine
                .admin()
                .create_account(&req.name, req.credit_usd.as_deref().unwrap_or("0"))
                .await
                .map_err(admin_error)?;
            Ok(ok(account_json(&a)))
        }
        .await,
    )
}

async fn set_status(s: &AppState, name: &str, status: AccountStatus) -> Response {
    done(
        s,
        async {
            let a = s.engine.admin().set_account_status(name, status).await.map_err(admin_error)?;
            Ok(ok(account_json(&a)))
        }
        .await,
    )
}

#[utoipa::path(post, path = "/accounts/{name}/suspend", tag = "admin", params(("name" = String, Path, description = "The account")), responses((status = 200, description = "The account", body = Object), (status = 404, description = "No such account", body = crate::openapi::schemas::RunwareResponse), (status = 400, description = "Invalid body or value", body = crate::openapi::schemas::RunwareResponse), (status = 401, description = "No admin key, or a wrong one", body = crate::openapi::schemas::RunwareResponse), (status = 429, description = "Too many failed authentications from this address; Retry-After says when", body = crate::openapi::schemas::RunwareResponse)), security(("bearer" = [])))]
async fn suspend(_: AdminAuth, State(s): State<AppState>, Path(name): Path<String>) -> Response {
    set_status(&s, &name, AccountStatus::Suspended).await
}

#[utoipa::path(post, path = "/accounts/{name}/unsuspend", tag = "admin", params(("name" = String, Path, description = "The account")), responses((status = 200, description = "The account", body = Object), (status = 404, description = "No such account", body = crate::openapi::schemas::RunwareResponse), (status = 400, description = "Invalid body or value", body = crate::openapi::schemas::RunwareResponse), (status = 401, description = "No admin key, or a wrong one", body = crate::openapi::schemas::RunwareResponse), (status = 429, description = "Too many failed authentications from this address; Retry-After says when", body = crate::openapi::schemas::RunwareResponse)), security(("bearer" = [])))]
async fn unsuspend(_: AdminAuth, State(s): State<AppState>, Path(name): Path<String>) -> Response {
    set_status(&s, &name, AccountStatus::Active).await
}

#[utoipa::path(get, path = "/accounts/{name}/credits", tag = "admin", params(("name" = String, Path, description = "The account"), ("entries" = Option<u32>, Query, description = "Ledger entries, newest first (default 20)")), responses((status = 200, description = "Balance and ledger", body = Object), (status = 404, description = "No such account", body = crate::openapi::schemas::RunwareResponse), (status = 400, description = "Invalid body or value", body = crate::openapi::schemas::RunwareResponse), (status = 401, description = "No admin key, or a wrong one", body = crate::openapi::schemas::RunwareResponse), (status = 429, description = "Too many failed authentications from this address; Retry-After says when", body = crate::openapi::schemas::RunwareResponse)), security(("bearer" = [])))]
async fn credits(
    _: AdminAuth,
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    done(
        &s,
        async {
            let entries = q.get("entries").and_then(|n| n.parse().ok()).unwrap_or(20);
            let (a, ledger) = s.engine.admin().credits(&name, entries).await.map_err(admin_error)?;
            let ledger: Vec<Value> = ledger
                .iter()
                .map(|l| {
                    json!({
                        "id": l.id,
                        "amountMicros": l.amount_micros,
                        "kind": l.kind,
                        "taskUUID": l.task_uuid,
                        "note": l.note,
                        "createdAt": l.created_at,
                    })
                })
                .collect();
            Ok(ok(json!({ "account": account_json(&a), "ledger": ledger })))
        }
        .await,
    )
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Grant {
    usd: String,
    #[serde(default)]
    note: Option<String>,
}

#[utoipa::path(post, path = "/accounts/{name}/credits", tag = "admin", params(("name" = String, Path, description = "The account")), request_body = Grant, responses((status = 200, description = "The new balance", body = Object), (status = 404, description = "No such account", body = crate::openapi::schemas::RunwareResponse), (status = 400, description = "Invalid body or value", body = crate::openapi::schemas::RunwareResponse), (status = 401, description = "No admin key, or a wrong one", body = crate::openapi::schemas::RunwareResponse), (status = 429, description = "Too many failed authentications from this address; Retry-After says when", body = crate::openapi::schemas::RunwareResponse)), security(("bearer" = [])))]
async fn grant(_: AdminAuth, State(s): State<AppState>, Path(name): Path<String>, b: Bytes) -> Response {
    done(
        &s,
        async {
            let req: Grant = body(&b)?;
            let balance = s
                .engine
                .admin()
                .grant(&name, &req.usd, req.note.as_deref().unwrap_or("granted by admin API"))
                .await
                .map_err(admin_error)?;
            Ok(ok(json!({ "balanceMicros": balance, "balanceUsd": format_usd(balance) })))
        }
        .await,
    )
}

async fn account_id(s: &AppState, name: &str) -> Result<Account, ApiError> {
    s.engine.store().account_by_name(name).await.map_err(|e| admin_error(e.into()))?.ok_or_else(|| {
        ApiError::new(ErrorCode::ResourceNotFound, format!("account '{name}' does not exist."))
    })
}

#[utoipa::path(get, path = "/accounts/{name}/limits", tag = "admin", params(("name" = String, Path, description = "The account")), responses((status = 200, description = "Overrides, limits in force and usage", body = Object), (status = 404, description = "No such account", body = crate::openapi::schemas::RunwareResponse), (status = 400, description = "Invalid body or value", body = crate::openapi::schemas::RunwareResponse), (status = 401, description = "No admin key, or a wrong one", body = crate::openapi::schemas::RunwareResponse), (status = 429, description = "Too many failed authentications from this address; Retry-After says when", body = crate::openapi::schemas::RunwareResponse)), security(("bearer" = [])))]
async fn limits(_: AdminAuth, State(s): State<AppState>, Path(name): Path<String>) -> Response {
    done(
        &s,
        async {
            let a = account_id(&s, &name).await?;
            let overrides = s.engine.admin().limit_overrides(Some(&name)).await.map_err(admin_error)?;
            let view = s.engine.limits_view(a.id).await?;
            let overrides: Vec<Value> =
                overrides.iter().map(|o| json!({ "model": o.model, "values": o.values })).collect();
            Ok(ok(json!({
                "account": account_json(&a),
                "overrides": overrides,
                "limits": view,
            })))
        }
        .await,
    )
}

/// `GET /accounts/{name}/storage`: the account's uploads against its storage quota.
#[utoipa::path(get, path = "/accounts/{name}/storage", tag = "admin", params(("name" = String, Path, description = "The account")), responses((status = 200, description = "Uploads against the storage quota", body = Object), (status = 404, description = "No such account", body = crate::openapi::schemas::RunwareResponse), (status = 400, description = "Invalid body or value", body = crate::openapi::schemas::RunwareResponse), (status = 401, description = "No admin key, or a wrong one", body = crate::openapi::schemas::RunwareResponse), (status = 429, description = "Too many failed authentications from this address; Retry-After says when", body = crate::openapi::schemas::RunwareResponse)), security(("bearer" = [])))]
async fn storage(_: AdminAuth, State(s): State<AppState>, Path(name): Path<String>) -> Response {
    done(
        &s,
        async {
            let a = account_id(&s, &name).await?;
            let (usage, quota) = s.engine.upload_usage(a.id).await?;
            Ok(ok(json!({
                "account": account_json(&a),
                "uploads": usage.files,
                "bytes": usage.bytes,
                "maxUploads": quota.max_files,
                "maxBytes": quota.max_bytes,
            })))
        }
        .await,
    )
}

/// `PUT /accounts/{name}/limits`: values for the account, or with `model` for one model.
/// Omitted values fall back to the account's and then to `[limits]`.
#[derive(Deserialize, utoipa::ToSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SetLimits {
    #[serde(default)]
    pub(crate) model: Option<String>,
    #[serde(default)]
    pub(crate) key_rate_per_sec: Option<f64>,
    #[serde(default)]
    pub(crate) key_burst: Option<u32>,
    #[serde(default)]
    pub(crate) account_rate_per_sec: Option<f64>,
    #[serde(default)]
    pub(crate) account_burst: Option<u32>,
    #[serde(default)]
    pub(crate) max_concurrent: Option<u32>,
    #[serde(default)]
    pub(crate) max_queued: Option<u32>,
    #[serde(default)]
    pub(crate) max_daily: Option<u32>,
    #[serde(default)]
    pub(crate) max_monthly_spend_usd: Option<String>,
}

/// Replaces the stored limits of account `name` (or of the account on `req.model`) and reloads
/// them (the admin API's `PUT /accounts/{name}/limits` and the portal's operator view).
pub(crate) async fn apply_limits(s: &AppState, name: &str, req: SetLimits) -> Result<(), ApiError> {
    if let Some(m) = &req.model
        && !s.engine.catalog().models().any(|x| &x.spec.air == m)
    {
        return Err(ApiError::new(
            ErrorCode::UnknownModel,
            format!("Unknown model '{m}'; limits are set per model of this server's catalog."),
        ));
    }
    let spend =
        req.max_monthly_spend_usd.as_deref().map(parse_usd).transpose().map_err(|e| {
            ApiError::new(ErrorCode::InvalidParameterValue, format!("maxMonthlySpendUsd: {e}"))
        })?;
    let values = LimitValues {
        key_rate_per_sec: req.key_rate_per_sec,
        key_burst: req.key_burst,
        account_rate_per_sec: req.account_rate_per_sec,
        account_burst: req.account_burst,
        max_concurrent: req.max_concurrent,
        max_queued: req.max_queued,
        max_daily: req.max_daily,
        max_monthly_spend_micros: spend,
    };
    s.engine.admin().set_limits(name, req.model.as_deref(), values).await.map_err(admin_error)?;
    s.engine.reload_limits().await.map_err(|e| admin_error(e.into()))
}

#[utoipa::path(put, path = "/accounts/{name}/limits", tag = "admin", params(("name" = String, Path, description = "The account")), request_body = SetLimits, responses((status = 200, description = "As GET, after the change", body = Object), (status = 404, description = "No such account", body = crate::openapi::schemas::RunwareResponse), (status = 400, description = "Invalid body or value", body = crate::openapi::schemas::RunwareResponse), (status = 401, description = "No admin key, or a wrong one", body = crate::openapi::schemas::RunwareResponse), (status = 429, description = "Too many failed authentications from this address; Retry-After says when", body = crate::openapi::schemas::RunwareResponse)), security(("bearer" = [])))]
async fn set_limits(_: AdminAuth, State(s): State<AppState>, Path(name): Path<String>, b: Bytes) -> Response {
    done(
        &s,
        async {
            let req: SetLimits = body(&b)?;
            apply_limits(&s, &name, req).await?;
            Ok(limits(AdminAuth, State(s.clone()), Path(name)).await)
        }
        .await,
    )
}

#[utoipa::path(get, path = "/keys", tag = "admin", params(("account" = Option<String>, Query, description = "Only this account's keys")), responses((status = 200, description = "Keys, never secrets", body = Object), (status = 404, description = "No such account", body = crate::openapi::schemas::RunwareResponse), (status = 400, description = "Invalid body or value", body = crate::openapi::schemas::RunwareResponse), (status = 401, description = "No admin key, or a wrong one", body = crate::openapi::schemas::RunwareResponse), (status = 429, description = "Too many failed authentications from this address; Retry-After says when", body = crate::openapi::schemas::RunwareResponse)), security(("bearer" = [])))]
async fn list_keys(
    _: AdminAuth,
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    done(
        &s,
        async {
            let list = s
                .engine
                .admin()
                .list_keys(q.get("account").map(String::as_str))
                .await
                .map_err(admin_error)?;
            Ok(ok(json!({ "data": list.iter().map(key_json).collect::<Vec<_>>() })))
        }
        .await,
    )
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewKey {
    account: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    scopes: Vec<String>,
}

#[utoipa::path(post, path = "/keys", tag = "admin", request_body = NewKey, responses((status = 200, description = "The key and its secret, shown only here", body = Object), (status = 404, description = "No such account", body = crate::openapi::schemas::RunwareResponse), (status = 400, description = "Invalid body or value", body = crate::openapi::schemas::RunwareResponse), (status = 401, description = "No admin key, or a wrong one", body = crate::openapi::schemas::RunwareResponse), (status = 429, description = "Too many failed authentications from this address; Retry-After says when", body = crate::openapi::schemas::RunwareResponse)), security(("bearer" = [])))]
async fn create_key(_: AdminAuth, State(s): State<AppState>, b: Bytes) -> Response {
    done(
        &s,
        async {
            let req: NewKey = body(&b)?;
            let k = s
                .engine
                .admin()
                .create_key(&req.account, &req.description, &req.scopes)
                .await
                .map_err(admin_error)?;
            // The only time the secret is shown.
            Ok(ok(json!({ "key": key_json(&k.record), "secret": k.secret })))
        }
        .await,
    )
}

#[utoipa::path(post, path = "/keys/{id}/{action}", tag = "admin", params(("id" = i64, Path, description = "The key's id"), ("action" = String, Path, description = "disable, enable or revoke")), responses((status = 200, description = "The key", body = Object), (status = 404, description = "No such key or action", body = crate::openapi::schemas::RunwareResponse), (status = 400, description = "Invalid body or value", body = crate::openapi::schemas::RunwareResponse), (status = 401, description = "No admin key, or a wrong one", body = crate::openapi::schemas::RunwareResponse), (status = 429, description = "Too many failed authentications from this address; Retry-After says when", body = crate::openapi::schemas::RunwareResponse)), security(("bearer" = [])))]
async fn key_action(
    _: AdminAuth,
    State(s): State<AppState>,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    done(
        &s,
        async {
            // Read here rather than by the extractor, whose refusal would be plain text.
            let id: i64 = id.parse().map_err(|_| {
                ApiError::new(
                    ErrorCode::InvalidParameterValue,
                    format!("'{id}' is not a key id; key ids are the numbers GET /admin/v1/keys lists."),
                )
            })?;
            let status = match action.as_str() {
                "disable" => KeyStatus::Disabled,
                "enable" => KeyStatus::Active,
                "revoke" => KeyStatus::Revoked,
                other => {
                    return Err(ApiError::new(
                        ErrorCode::NotFound,
                        format!("No key action '{other}'; use disable, enable or revoke."),
                    ));
                }
            };
            let k = s.engine.admin().set_key_status(id, status).await.map_err(admin_error)?;
            Ok(ok(key_json(&k)))
        }
        .await,
    )
}
