//! What an operator's tooling asks the server: `/livez` (the process answers), `/readyz` (it
//! can serve: its store answers and its schema is this build's) and `/metrics` (Prometheus).
//! `/health` stays as it was (`ok`), for checks written against it.

use crate::AppState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::Duration;

/// `GET /health`: `ok` (kept for checks written against it; `/livez` and `/readyz` say more).
#[utoipa::path(get, path = "/health", tag = "server", responses((status = 200, description = "ok", content_type = "text/plain")))]
pub async fn health() -> &'static str {
    "ok"
}

/// `GET /livez`: 200 while the process serves requests at all.
#[utoipa::path(get, path = "/livez", tag = "server", responses((status = 200, description = "The process answers", body = Object)))]
pub async fn livez() -> Response {
    crate::json_response(StatusCode::OK, &json!({ "status": "live" }))
}

/// `GET /readyz`: 200 with each check when the server can take work, else 503 saying which
/// check failed and why.
#[utoipa::path(get, path = "/readyz", tag = "server", responses((status = 200, description = "Ready", body = crate::openapi::schemas::Readiness), (status = 503, description = "Not ready, and why", body = crate::openapi::schemas::Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let wait = Duration::from_millis(state.engine.config().server.readiness_timeout_ms.max(1));
    // The store and the providers are asked at once: the answer takes one timeout at most.
    let (store, providers) = tokio::join!(
        tokio::time::timeout(wait, state.engine.store().schema_state()),
        providers(&state, wait)
    );
    let store = match store {
        Err(_) => Err(format!(
            "the store did not answer within {} ms (server.readiness_timeout_ms)",
            wait.as_millis()
        )),
        Ok(Err(e)) => {
            Err(format!("the store cannot be read: {}", mediagate_engine::store_failure(&e).message))
        }
        Ok(Ok(s)) if s.applied != s.expected => Err(format!(
            "the database's schema is at version {} and this build needs {}: restart the server to migrate it",
            s.applied, s.expected
        )),
        Ok(Ok(s)) => Ok(s.applied),
    };
    let (status, check) = match store {
        Ok(version) => (StatusCode::OK, json!({ "ok": true, "schemaVersion": version })),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, json!({ "ok": false, "error": why })),
    };
    let ready = status == StatusCode::OK;
    crate::json_response(
        status,
        &json!({
            "status": if ready { "ready" } else { "not ready" },
            "checks": { "store": check, "providers": providers },
        }),
    )
}

/// Each provider's own health and its circuit, asked concurrently within `wait`. A provider
/// that is down does not make the server unready: its models fall back or fail with a clear
/// error, the other models still serve, and another replica would find the same upstream down
/// (taking every replica out of a load balancer for it would turn those clear errors into
/// refused connections). The body says which one is down and why.
async fn providers(state: &AppState, wait: Duration) -> serde_json::Value {
    let Ok(all) = tokio::time::timeout(wait, state.engine.dispatcher().health()).await else {
        return json!({ "ok": false, "error": format!(
            "the providers' health checks did not answer within {} ms (server.readiness_timeout_ms)",
            wait.as_millis()
        ) });
    };
    let all_ok = all.iter().all(|p| p.usable());
    let each: serde_json::Map<String, serde_json::Value> =
        all.iter().map(|p| (p.name.clone(), p.report())).collect();
    json!({ "ok": all_ok, "each": each })
}

/// `GET /metrics`: the server's metrics in the OpenMetrics text format (404 when
/// `server.metrics_enabled` is off).
#[utoipa::path(get, path = "/metrics", tag = "server", responses((status = 200, description = "Prometheus metrics (OpenMetrics text)", content_type = "application/openmetrics-text"), (status = 404, description = "Turned off (server.metrics_enabled)")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    if !state.engine.config().server.metrics_enabled {
        return crate::dialect_error(
            &state,
            false,
            &mediagate_core::ApiError::new(
                mediagate_core::ErrorCode::NotFound,
                "Metrics are turned off on this server (server.metrics_enabled).",
            ),
        );
    }
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        state.engine.render_metrics(),
    )
        .into_response()
}
