//! W3C Trace Context (`traceparent`, `tracestate`) in and out of the process, when traces are
//! exported (`[traces]`, off by default).
//!
//! The binary installs the OpenTelemetry exporter and calls [`enable`] once at start-up; until
//! then every function here returns at its first branch, so with traces off an outgoing request
//! or an incoming one costs one relaxed atomic load. Spans that exist only for traces are made
//! behind the same [`enabled`] check at their call sites.
//!
//! Outgoing requests carry the trace context of the innermost span being run (the OpenTelemetry
//! layer makes a span's context current while the span is entered): every provider call goes
//! through [`crate::mapping::send`], which calls [`propagate`]; webhook deliveries call it too.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether traces are exported: the OpenTelemetry layer is installed and trace context is
/// propagated. Off unless [`enable`] was called.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Turns trace context propagation on. Called once by the binary after it installed the
/// OpenTelemetry layer in the global subscriber; without that layer there is no context to send.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Adds `traceparent` (and `tracestate` when there is one) of the current trace context to
/// `headers`. Nothing when traces are off or no traced span is being run.
pub fn inject(headers: &mut HeaderMap) {
    if !enabled() {
        return;
    }
    TraceContextPropagator::new()
        .inject_context(&opentelemetry::Context::current(), &mut HeaderInjector(headers));
}

/// `req` with the current trace context's headers ([`inject`]); `req` itself when traces are off.
pub fn propagate(req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    if !enabled() {
        return req;
    }
    let mut headers = HeaderMap::new();
    inject(&mut headers);
    if headers.is_empty() { req } else { req.headers(headers) }
}

/// Makes the trace context an incoming request carries (`traceparent`, `tracestate`) the parent
/// of `span`, which must be new (not entered yet). A missing or malformed `traceparent` leaves
/// `span` where it was (a new trace). Nothing when traces are off.
pub fn set_remote_parent(span: &tracing::Span, headers: &HeaderMap) {
    if !enabled() || !headers.contains_key("traceparent") {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if cx.span().span_context().is_valid() {
        // Fails only for a span the OpenTelemetry layer does not see (filtered out): it then
        // simply starts a trace of its own.
        let _ = span.set_parent(cx);
    }
}

/// Makes `span` continue the current trace. For a span made with `parent: None` for work that
/// outlives the current span (a webhook delivery's retries): a span's tracing parent stays open
/// until its last child closes, and is exported only then. `span` must be new. Nothing when
/// traces are off or no traced span is being run.
pub fn continue_current(span: &tracing::Span) {
    if !enabled() {
        return;
    }
    let cx = opentelemetry::Context::current();
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(key.as_bytes()), HeaderValue::from_str(&value))
        {
            self.0.insert(name, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_adds_nothing_and_costs_a_branch() {
        // `enable` is never called in this test binary: traces are off.
        let mut h = HeaderMap::new();
        inject(&mut h);
        assert!(h.is_empty());
        // What the off path costs, printed for the record (not asserted: timings flake on a
        // loaded machine). `cargo test -p mediagate-providers traces -- --nocapture`.
        let n = 10_000_000u32;
        let t = std::time::Instant::now();
        for _ in 0..n {
            inject(std::hint::black_box(&mut h));
        }
        eprintln!(
            "inject with traces off: {:.2} ns per call",
            t.elapsed().as_secs_f64() * 1e9 / f64::from(n)
        );
    }
}
