//! The HTTP edge, applied to every route at once: the accept loop (connection limit,
//! header-read and idle timeouts, graceful shutdown; [`connections`]) and one stack of layers
//! every request passes, each with one concern, listed in order in [`layers`]. Each layer that
//! answers on its own answers in the dialect of the request.

pub mod body;
pub mod connections;
mod deadline;
pub(crate) mod dialect;
mod observe;
mod panics;
pub(crate) mod shed;

use crate::AppState;
use axum::Router;
use axum::extract::MatchedPath;
use axum::http::{HeaderName, header};
use std::time::Duration;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

/// The request id header: taken from the client when it sends one, made (a UUID) otherwise,
/// and returned on the response.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The span every request runs in: its id, method, route template and dialect, and once known
/// the caller's account and key ids (recorded by authentication) and the taskUUIDs it names
/// (recorded by the dialect; see [`record_tasks`]). It is an `info`
/// span when request lines are asked for (`log.requests`) or logs are JSON (whose lines carry
/// their span), else a `debug` one: with the text format at `info`, formatting its fields for
/// every request cost about 6,500 instructions of the ~78,000 a ping takes (callgrind), for a
/// prefix most operators do not read. `MEDIAGATE_LOG=debug` turns it on either way.
///
/// With traces on (`[traces]`) it is an `info` span exported as a server span, whose parent is
/// the trace context the request carries (`traceparent`), if any: the caller's trace goes on.
#[derive(Clone, Copy)]
struct RequestSpan {
    verbose: bool,
    traced: bool,
}

impl<B> tower_http::trace::MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, req: &axum::http::Request<B>) -> tracing::Span {
        let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |m| m.as_str());
        let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
        let dialect = dialect::of(req.headers(), req.uri().path());
        let empty = tracing::field::Empty;
        if self.traced {
            let span = tracing::info_span!(
                "request",
                otel.kind = "server",
                request_id = id,
                method = %req.method(),
                route,
                dialect,
                account = empty,
                key = empty,
                task_uuids = empty
            );
            mediagate_engine::traces::set_remote_parent(&span, req.headers());
            span
        } else if self.verbose {
            tracing::info_span!("request", request_id = id, method = %req.method(), route, dialect,
                account = empty, key = empty, task_uuids = empty)
        } else {
            tracing::debug_span!("request", request_id = id, method = %req.method(), route, dialect,
                account = empty, key = empty, task_uuids = empty)
        }
    }
}

/// Wraps every route in the edge's layers, outermost first:
///
/// 1. `Authorization` and `Cookie` (the portal's session) marked sensitive, so no later layer's
///    log shows them;
/// 2. the request id (`x-request-id`), set and then returned on the response;
/// 3. a tracing span per request (see [`RequestSpan`] for its level; with traces on, continuing
///    the caller's `traceparent`), and a line with status and latency when it ends (`info` with
///    `log.requests`, else `debug`);
/// 4. metrics: requests by dialect, route and status, with latency;
/// 5. panics answered as the catalog's 500 in the request's dialect;
/// 6. the whole request's deadline (`server.request_timeout_secs`, 504 in the dialect);
/// 7. the bound on pauses inside a request body (`server.body_timeout_secs`).
///
/// Body size limits are per route (each dialect reads its body with [`body::read`] after
/// authentication), and connection limits and header timeouts live in [`connections`].
pub(crate) fn layers(app: Router, state: &AppState) -> Router {
    let server = &state.engine.config().server;
    let log = &state.engine.config().log;
    let request_lines = if log.requests { Level::INFO } else { Level::DEBUG };
    let span = RequestSpan {
        verbose: log.requests || log.format == mediagate_engine::config::LogFormat::Json,
        traced: mediagate_engine::traces::enabled(),
    };
    app.layer(
        ServiceBuilder::new()
            .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, header::COOKIE]))
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(span)
                    .on_request(())
                    .on_response(DefaultOnResponse::new().level(request_lines)),
            )
            .layer(axum::middleware::from_fn_with_state(state.clone(), observe::count))
            .layer(axum::middleware::from_fn_with_state(state.clone(), panics::catch))
            .layer(axum::middleware::from_fn_with_state(state.clone(), deadline::whole_request))
            .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(server.body_timeout_secs))),
    )
}

/// Most taskUUIDs written into one request's span: a request may carry
/// `server.max_tasks_per_request` of them, and a log line that long helps nobody.
const SPAN_TASK_UUIDS: usize = 8;

/// Records the taskUUIDs a request names on its span (`task_uuids`, comma-separated; past
/// [`SPAN_TASK_UUIDS`], the count of the rest), so its log lines and trace can be found by the
/// task a client reports.
pub(crate) fn record_tasks<'a>(uuids: impl IntoIterator<Item = &'a str>) {
    let span = tracing::Span::current();
    if span.is_disabled() {
        return;
    }
    // A taskUUID is 36 characters; a longer string is not one and is not copied into logs.
    let mut all = uuids.into_iter().filter(|u| u.len() <= 36);
    let mut list = all.by_ref().take(SPAN_TASK_UUIDS).collect::<Vec<&str>>().join(",");
    let rest = all.count();
    if rest > 0 {
        list.push_str(&format!(",+{rest} more"));
    }
    if !list.is_empty() {
        span.record("task_uuids", list.as_str());
    }
}

/// Sets `Server-Timing` on a response that carries a task's end (see
/// [`mediagate_engine::timing`]).
pub(crate) fn server_timing(
    response: &mut axum::response::Response,
    timing: &mediagate_engine::timing::Timing,
) {
    if let Ok(v) = axum::http::HeaderValue::from_str(&timing.header_value()) {
        response.headers_mut().insert(HeaderName::from_static("server-timing"), v);
    }
}

/// Calls `f` on `owner` every `every` (the first time after one period) until the last strong
/// reference to it is dropped; nothing when not called inside a Tokio runtime. The session
/// tables sweep themselves with it.
pub(crate) fn every_while_alive<T: Send + Sync + 'static>(
    owner: &std::sync::Arc<T>,
    every: std::time::Duration,
    f: fn(&T),
) {
    let weak = std::sync::Arc::downgrade(owner);
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(owner) = weak.upgrade() else { break };
                f(&owner);
            }
        });
    }
}
