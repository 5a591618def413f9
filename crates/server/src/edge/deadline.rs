//! The whole-request deadline (`server.request_timeout_secs`): a request that has not produced
//! its response's headers by then is answered `504 requestTimeout` in its dialect, and its
//! handler is dropped. Sync tasks are not lost by it: a task whose waiter goes away runs to its
//! end on its own (see the engine's `run_to_end`). The limit must exceed
//! `tasks.sync_timeout_secs`, which the configuration checks at load.

use crate::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use mediagate_core::{ApiError, ErrorCode};
use std::time::Duration;

pub(crate) async fn whole_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let secs = state.engine.config().server.request_timeout_secs;
    let runway = crate::runway::is_runway_request(req.headers(), req.uri().path());
    match tokio::time::timeout(Duration::from_secs(secs), next.run(req)).await {
        Ok(r) => r,
        Err(_) => crate::dialect_error(
            &state,
            runway,
            &ApiError::new(
                ErrorCode::RequestTimeout,
                format!(
                    "The request took longer than {secs} s (server.request_timeout_secs) and was cut; \
                     send the body without pauses, or use deliveryMethod \"async\" for long tasks."
                ),
            ),
        ),
    }
}
