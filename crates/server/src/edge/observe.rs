//! Counts every answered request in the server's metrics, by dialect, route template and
//! status, with its latency to the response's headers.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

pub(crate) async fn count(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let dialect = super::dialect::of(req.headers(), req.uri().path());
    // The template (`/v1/tasks/{id}`), never the path: label values stay bounded.
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |m| m.as_str()).to_string();
    let response = next.run(req).await;
    state.engine.metrics().request(dialect, &route, response.status().as_u16(), started.elapsed());
    response
}
