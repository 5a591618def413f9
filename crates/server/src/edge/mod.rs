//! The HTTP edge's bounds, applied to every route at once: the accept loop (connection limit,
//! header-read and idle timeouts, graceful shutdown) and the layers every request passes
//! (whole-request deadline, body pauses). Each answers in the dialect of the request it cuts.

pub mod body;
pub mod connections;
mod deadline;

use crate::AppState;
use axum::Router;
use std::time::Duration;
use tower::ServiceBuilder;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// Wraps every route in the edge's layers, outermost first: the whole request's deadline, then
/// the bound on pauses inside a request body.
pub(crate) fn layers(app: Router, state: &AppState) -> Router {
    let server = &state.engine.config().server;
    app.layer(
        ServiceBuilder::new()
            .layer(axum::middleware::from_fn_with_state(state.clone(), deadline::whole_request))
            .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(server.body_timeout_secs))),
    )
}
