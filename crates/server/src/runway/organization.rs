//! `GET /v1/organization` and `POST /v1/organization/usage`.

use super::body::{Body, Need};
use super::issues::Issue;
use super::tasks::credits;
use super::{Caller, Refusal, error_response, json_object, json_response, read_body, validation_failed};
use crate::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{Duration, NaiveDate, Utc};
use mediagate_core::{ApiError, ParamPath};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// `GET /v1/organization`: the credit balance, the limits in force per model, and usage.
/// Limits of 0 in mediagate mean "none" and are shown as `null` (Runway's "no limit"), the
/// monthly spend cap included.
#[utoipa::path(get, path = "/v1/organization", tag = "runway", params(("X-Runway-Version" = String, Header, description = "The API version: 2024-11-06")), responses((status = 200, description = "Credit balance, limits per model and today's usage", body = Object), (status = 400, description = "The request is invalid; every issue is listed", body = crate::openapi::schemas::RunwayError), (status = 401, description = "No key, or a wrong one", body = crate::openapi::schemas::RunwayError), (status = 429, description = "Too many requests (a rate limit, or failed authentications from this address); Retry-After says when", body = crate::openapi::schemas::RunwayError)), security(("bearer" = [])))]
pub async fn get_organization(
    State(state): State<AppState>,
    Caller(ctx): Caller,
) -> Result<Response, Refusal> {
    let org = match Organization::of(&state, ctx.account_id).await {
        Ok(v) => v,
        Err(e) => return Err(error_response(&state, &e).into()),
    };
    let (view, stored, quota) = (&org.limits, &org.stored, &org.quota);
    let limit = |n: u32| if n == 0 { Value::Null } else { json!(n) };
    let bound = |n: u64| if n == 0 { Value::Null } else { json!(n) };
    let mut tier_models = serde_json::Map::new();
    let mut usage_models = serde_json::Map::new();
    for m in &view.models {
        tier_models.insert(
            m.model.clone(),
            json!({
                "maxConcurrentGenerations": limit(m.max_concurrent),
                "maxDailyGenerations": limit(m.max_daily),
            }),
        );
        usage_models.insert(
            m.model.clone(),
            json!({ "dailyGenerations": m.daily_used, "running": m.running, "throttled": m.queued }),
        );
    }
    let cap = if view.max_monthly_spend_micros > 0 {
        json!(credits(view.max_monthly_spend_micros).floor() as i64)
    } else {
        Value::Null
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "creditBalance": credits(view.balance_micros).floor() as i64,
            "tier": {
                "maxMonthlyCreditSpend": cap,
                "models": tier_models,
                // mediagate's own: the storage quota of uploads (null: no bound).
                "storage": { "maxUploads": bound(quota.max_files), "maxBytes": bound(quota.max_bytes) },
            },
            "usage": {
                "models": usage_models,
                "monthlyCreditSpend": credits(view.month_spend_micros),
                "storage": { "uploads": stored.files, "bytes": stored.bytes },
            },
        }),
    ))
}

/// An account's figures as `GET /v1/organization` shows them (and the portal's usage page):
/// balance, limits in force and usage per model, and its uploads against the storage quota.
pub(crate) struct Organization {
    /// Balance, spend, limits in force and current usage per model.
    pub limits: mediagate_engine::LimitsView,
    /// Uploads kept now.
    pub stored: mediagate_store::UploadUsage,
    /// The storage quota (0: no bound).
    pub quota: mediagate_store::UploadQuota,
}

impl Organization {
    /// Reads the figures of `account_id`.
    pub(crate) async fn of(state: &AppState, account_id: i64) -> Result<Organization, ApiError> {
        let limits = state.engine.limits_view(account_id).await?;
        let (stored, quota) = state.engine.upload_usage(account_id).await?;
        Ok(Organization { limits, stored, quota })
    }
}

/// The usage window `[start, before)` from the dates a caller sent (either may be absent),
/// with the issues that make it unusable (each with the key it is about). Defaults: the 30 days
/// ending `today`, today included.
pub(crate) fn usage_window(
    start: Option<NaiveDate>,
    before: Option<NaiveDate>,
    today: NaiveDate,
) -> (NaiveDate, NaiveDate, Vec<Issue>) {
    let mut issues = Vec::new();
    // Defaults: the 30 days ending today, today included (Runway's literal defaults, "30 days
    // before today" to "30 days after the start", would leave today out).
    // A beforeDate alone ends the window there: it starts 30 days earlier.
    let start =
        start.unwrap_or_else(|| before.map_or(today - Duration::days(29), |b| b - Duration::days(30)));
    if let Some(sent) = before
        && sent <= start
    {
        issues.push(Issue::custom(
            ParamPath::key("beforeDate"),
            format!(
                "beforeDate ({sent}) must be later than startDate ({start}): the window runs from startDate \
                 up to, not including, beforeDate."
            ),
        ));
    }
    let before = before.unwrap_or((start + Duration::days(30)).min(today + Duration::days(1))).max(start);
    if (before - start).num_days() > MAX_WINDOW_DAYS {
        issues.push(Issue::custom(
            ParamPath::key("beforeDate"),
            format!("beforeDate must be at most {MAX_WINDOW_DAYS} days after startDate."),
        ));
    }
    (start, before, issues)
}

/// Spend per UTC day and model in `[start, before)` (charges minus refunds), oldest first.
pub(crate) async fn spend_by_day(
    state: &AppState,
    account_id: i64,
    start: NaiveDate,
    before: NaiveDate,
) -> Result<Vec<mediagate_store::DailyUsage>, ApiError> {
    let ms = |d: NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_millis();
    state.engine.store().usage_by_day(account_id, ms(start), ms(before)).await.map_err(|e| {
        tracing::error!(error = %e, "reading usage failed");
        ApiError::internal()
    })
}

/// Longest usage window Runway allows, in days.
const MAX_WINDOW_DAYS: i64 = 90;

fn date(b: &mut Body<'_>, key: &'static str) -> Option<NaiveDate> {
    let s = b.string(key, Need::Optional, 10, 10)?;
    match NaiveDate::parse_from_str(&s, "%Y-%m-%d") {
        Ok(d) => Some(d),
        Err(_) => {
            b.issues.push(Issue::custom(b.path(key), format!("Invalid date '{s}': use YYYY-MM-DD (UTC).")));
            None
        }
    }
}

/// `POST /v1/organization/usage` `{startDate?, beforeDate?}`: credits spent per UTC day and
/// model (charges minus refunds). Defaults: the 30 days ending today, today included.
#[utoipa::path(post, path = "/v1/organization/usage", tag = "runway", params(("X-Runway-Version" = String, Header, description = "The API version: 2024-11-06")), request_body = Option<crate::openapi::schemas::UsageRequest>, responses((status = 200, description = "Credits spent per UTC day and model", body = Object), (status = 400, description = "The request is invalid; every issue is listed", body = crate::openapi::schemas::RunwayError), (status = 401, description = "No key, or a wrong one", body = crate::openapi::schemas::RunwayError), (status = 429, description = "Too many requests (a rate limit, or failed authentications from this address); Retry-After says when", body = crate::openapi::schemas::RunwayError)), security(("bearer" = [])))]
pub async fn usage(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, Refusal> {
    let bytes = read_body(&state, &headers, body).await?;
    let obj = if bytes.iter().all(u8::is_ascii_whitespace) {
        serde_json::Map::new()
    } else {
        json_object(&state, &bytes)?
    };
    let mut b = Body::new(&obj, ParamPath::default());
    let start = date(&mut b, "startDate");
    let before = date(&mut b, "beforeDate");
    let mut issues = b.finish();
    let (start, before, more) = usage_window(start, before, Utc::now().date_naive());
    issues.extend(more);
    if !issues.is_empty() {
        return Err(validation_failed(&state, "body", &issues).into());
    }
    let rows = match spend_by_day(&state, ctx.account_id, start, before).await {
        Ok(r) => r,
        Err(e) => return Err(error_response(&state, &e).into()),
    };
    let mut by_day: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut models: Vec<String> = Vec::new();
    for r in rows {
        if !models.contains(&r.model) {
            models.push(r.model.clone());
        }
        by_day
            .entry(r.day)
            .or_default()
            .push(json!({ "model": r.model, "amount": credits(r.spent_micros).round() as i64 }));
    }
    let results: Vec<Value> =
        by_day.into_iter().map(|(day, used)| json!({ "date": day, "usedCredits": used })).collect();
    Ok(json_response(StatusCode::OK, &json!({ "results": results, "models": models })))
}
