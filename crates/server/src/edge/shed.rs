//! Load shedding: at most `server.max_in_flight_requests` requests are worked on at once; one
//! past it is answered at once with `503 serviceUnavailable` and `Retry-After: 1` in its
//! dialect's shape, before its body is read, instead of queueing behind the others.
//!
//! The connection limit ([`super::connections`]) bounds sockets, most of which are idle
//! keep-alives costing little; this bounds the requests that hold memory (bodies being read,
//! sync tasks waiting for their result) and work. Operator routes (`/livez`, `/readyz`,
//! `/metrics`, `/health`, the admin API) are not shed, so a saturated server can still be
//! watched and managed. A WebSocket holds its place only while its upgrade is answered.
//!
//! Built from tower's own layers: one semaphore shared by every route
//! ([`GlobalConcurrencyLimitLayer`]; the per-route `ConcurrencyLimitLayer` would give each
//! route its own), [`LoadShedLayer`] to refuse rather than wait when it is full, and axum's
//! `HandleErrorLayer` to answer the refusal.

use crate::AppState;
use axum::error_handling::HandleErrorLayer;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use mediagate_core::{ApiError, ErrorCode};
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use utoipa_axum::router::OpenApiRouter;

/// Wraps every route of `routes` (those registered so far) in the in-flight limit.
pub(crate) fn layer(routes: OpenApiRouter<AppState>, state: &AppState) -> OpenApiRouter<AppState> {
    let limit = state.engine.config().server.max_in_flight_requests;
    let st = state.clone();
    routes.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(move |headers: HeaderMap, uri: Uri, e: tower::BoxError| {
                let st = st.clone();
                async move { refusal(&st, &headers, &uri, limit, &e) }
            }))
            .layer(LoadShedLayer::new())
            .layer(GlobalConcurrencyLimitLayer::new(limit)),
    )
}

fn refusal(state: &AppState, headers: &HeaderMap, uri: &Uri, limit: usize, e: &tower::BoxError) -> Response {
    let runway = crate::runway::is_runway_request(headers, uri.path());
    let error = if e.is::<tower::load_shed::error::Overloaded>() {
        ApiError::new(
            ErrorCode::ServiceUnavailable,
            format!(
                "The server is working on its limit of {limit} requests at once \
                 (server.max_in_flight_requests); retry in a second."
            ),
        )
        .with_retry_after(std::time::Duration::from_secs(1))
    } else {
        // The routes' services are infallible; only the shedding can fail here.
        tracing::error!(error = %e, "unexpected error from the in-flight limit");
        ApiError::internal()
    };
    crate::dialect_error(state, runway, &error)
}
