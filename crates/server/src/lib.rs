//! The HTTP edge of mediagate: the Runware dialect (`POST /v1`), stored outputs, and the
//! documentation pages error objects link to.

#![warn(missing_docs)]

pub mod admin_api;
pub mod bearer;
pub mod client_addr;
mod docs;
pub mod edge;
mod health;
pub mod history;
pub mod openapi;
mod outputs;
pub mod portal;
pub mod runware;
pub mod runway;

use axum::Router;
use mediagate_core::{ApiError, ErrorCode};
use mediagate_engine::Engine;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use utoipa_axum::{router::OpenApiRouter, routes};

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub engine: Arc<Engine>,
    /// The public base URL (for `documentation` links and output URLs).
    pub base_url: String,
    /// WebSocket sessions (for resume).
    pub sessions: Arc<runware::sessions::Sessions>,
    /// Runway upload targets handed out and not used yet.
    pub runway_uploads: Arc<runway::UploadSlots>,
    /// Bytes of bodies held for senders not authenticated yet.
    pub unauthenticated: edge::body::UnauthenticatedBudget,
    /// The OpenAPI document (JSON), set once the routes are built.
    pub openapi: Arc<std::sync::OnceLock<String>>,
    /// The portal's sessions (in memory; see [`portal::sessions`]).
    pub portal: Arc<portal::sessions::Sessions>,
}

/// Teaches the engine this edge's renderings (webhook bodies) and where it serves outputs. Call
/// before the engine resumes unfinished tasks; [`router`] calls it too.
pub fn install(engine: &Engine) {
    let base_url = engine.config().base_url();
    engine.set_output_links(Arc::new(outputs::Links { base_url: base_url.clone() }));
    engine.set_webhook_renderer(
        mediagate_core::Dialect::Runware,
        Arc::new(runware::render::WebhookBodies { base_url }),
    );
}

/// The application's routes.
pub fn router(engine: Arc<Engine>) -> Router {
    router_with(engine, Router::new())
}

/// The application's routes with `extra` merged in, under the same edge layers (for tests of
/// the edge itself, e.g. with a route that panics).
pub fn router_with(engine: Arc<Engine>, extra: Router<AppState>) -> Router {
    install(&engine);
    let base_url = engine.config().base_url();
    let unauthenticated =
        edge::body::UnauthenticatedBudget::new(engine.config().server.unauthenticated_body_budget_bytes);
    let sessions = Arc::new(runware::sessions::Sessions::new(&engine.config().websocket));
    sessions.purge_forever(std::time::Duration::from_secs(
        engine.config().websocket.resume_window_secs.clamp(1, 30),
    ));
    let engine_portal = engine.config().portal.clone();
    let state = AppState {
        base_url,
        engine,
        sessions,
        runway_uploads: Default::default(),
        unauthenticated,
        openapi: Default::default(),
        portal: portal::sessions_from(&engine_portal),
    };
    // Every route is registered with its OpenAPI operation (see [`openapi`]).
    // The work routes, held to the in-flight limit (see [`edge::shed`]); the operator routes
    // after them are not.
    let work = OpenApiRouter::with_openapi(<openapi::ApiDoc as utoipa::OpenApi>::openapi())
        .merge(runway::routes())
        .routes(routes!(runware::post_tasks, runware::ws::upgrade))
        .routes(routes!(outputs::get_output))
        .routes(routes!(runware::webhook_deliveries))
        .routes(routes!(history::list))
        .routes(routes!(history::one))
        .routes(routes!(docs::index))
        .routes(routes!(docs::errors))
        .routes(routes!(docs::runway))
        .routes(routes!(docs::admin_api))
        .routes(routes!(docs::api));
    let (app, mut doc) = edge::shed::layer(work, &state)
        .routes(routes!(health::health))
        .routes(routes!(health::livez))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(openapi::document))
        .split_for_parts();
    let (admin, admin_doc) = admin_api::routes().split_for_parts();
    doc = doc.nest("/admin/v1", admin_doc);
    // The task schemas go in once the routes' schemas are merged.
    let _ = state.openapi.set(openapi::finish(&doc));
    let mut app = extra.merge(app).nest("/admin/v1", admin_api::with_fallbacks(admin));
    // The portal's HTML pages: not API operations, so not in the OpenAPI document (its
    // `portal::ROUTES` says which they are), and, like the admin API, not held to the work
    // routes' in-flight limit.
    let portal_on = engine_portal.enabled;
    if portal_on {
        app = app.merge(portal::routes());
    }
    let mut app =
        app.fallback(not_found).method_not_allowed_fallback(method_not_allowed).with_state(state.clone());
    if portal_on {
        app = app.layer(axum::middleware::from_fn(portal::security_headers));
    }
    edge::layers(app, &state)
}

/// An error answered before (or instead of) a handler, in the shape of the request's dialect.
pub(crate) fn dialect_error(state: &AppState, runway: bool, e: &ApiError) -> axum::response::Response {
    if runway { runway::error_response(state, e) } else { runware::request_error(state, e) }
}

async fn not_found(
    axum::extract::State(s): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
) -> axum::response::Response {
    if runway::is_runway_request(&headers, uri.path()) {
        return runway::not_found(&s, uri.path());
    }
    dialect_error(
        &s,
        false,
        &ApiError::new(
            ErrorCode::NotFound,
            format!("No endpoint at {}. Runware-dialect tasks go to POST /v1.", uri.path()),
        ),
    )
}

async fn method_not_allowed(
    axum::extract::State(s): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> axum::response::Response {
    if runway::is_runway_request(&headers, uri.path()) {
        return runway::method_not_allowed(&s, uri.path(), method.as_str());
    }
    runware::request_error(
        &s,
        &ApiError::new(ErrorCode::MethodNotAllowed, format!("{} does not accept {method}.", uri.path())),
    )
}

/// The HTTP status of a catalog status number (every catalog status is a valid one; anything
/// else would be our bug, answered as a 500).
pub(crate) fn catalog_status(status: u16) -> axum::http::StatusCode {
    axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
}

/// A JSON response (both dialects and the admin API answer in JSON).
pub(crate) fn json_response(
    status: axum::http::StatusCode,
    body: &serde_json::Value,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(body).unwrap_or_default(),
    )
        .into_response()
}

/// Serves until `shutdown` completes, then lets in-flight requests finish. Connections are
/// bounded and timed by [`edge::connections`].
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let trusted = &engine.config().server.trusted_proxies;
    if !trusted.is_empty() {
        tracing::info!(?trusted, "X-Forwarded-For is believed from these proxies");
    }
    let limits = edge::connections::ConnectionLimits::from_config(&engine.config().server);
    edge::connections::serve(listener, router(engine), limits, shutdown).await
}

/// The Runware task types the dialect answers itself (not registered task types).
pub use runware::parse::OWN_TASK_TYPES as RUNWARE_OWN_TASK_TYPES;
