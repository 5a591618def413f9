//! A handler that panics is answered with the catalog's 500 (`internalServerError`, retryable)
//! in its dialect's shape, and the panic is logged; the connection and the server carry on.
//!
//! Written as a middleware around `catch_unwind` rather than with tower-http's
//! `CatchPanicLayer`: that layer builds its answer from the panic alone, and the answer's shape
//! depends on the request (Runway's `{"error", "docUrl"}` or Runware's `errors` array).
//! Panics in tasks a handler spawned are not caught here; the engine ends those tasks itself.

use crate::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use futures::FutureExt;
use mediagate_core::ApiError;
use std::panic::AssertUnwindSafe;

pub(crate) async fn catch(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let runway = crate::runway::is_runway_request(req.headers(), req.uri().path());
    let route = req.uri().path().to_string();
    match AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(path = %route, panic = %what, "a request handler panicked; answered 500");
            crate::dialect_error(&state, runway, &ApiError::internal())
        }
    }
}
