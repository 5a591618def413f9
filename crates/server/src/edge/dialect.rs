//! Which surface a request addresses, for metrics, traces and the shape of answers given
//! before a handler runs.

use axum::http::HeaderMap;

/// The surface of a request: `runway`, `runware`, `admin`, or `server` (pages, health,
/// metrics, outputs).
pub(crate) fn of(headers: &HeaderMap, path: &str) -> &'static str {
    if crate::runway::is_runway_request(headers, path) {
        "runway"
    } else if path == "/v1" {
        "runware"
    } else if path.starts_with("/admin/") {
        "admin"
    } else {
        "server"
    }
}
