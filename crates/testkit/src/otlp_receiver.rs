//! A small OTLP/HTTP trace receiver, standing in for an OpenTelemetry collector: it accepts
//! `POST /v1/traces` with an `application/x-protobuf` `ExportTraceServiceRequest` (the OTLP
//! protocol's binary encoding), keeps every span it decodes and answers as a collector does
//! (an empty `ExportTraceServiceResponse`). Any other content type is answered 415, an
//! undecodable body 400, so an exporter speaking anything else fails visibly.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use prost::Message;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// A span as the receiver got it. Ids are lower-case hex, as `traceparent` writes them.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// The span's name (`request`, `provider.call`, …).
    pub name: String,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits; empty for a root span.
    pub parent_span_id: String,
    /// The OTLP span kind: 1 internal, 2 server, 3 client (0 unspecified).
    pub kind: i32,
    /// The status code: 0 unset, 1 ok, 2 error.
    pub status_code: i32,
    /// Attributes, their values written as text (strings unquoted).
    pub attributes: BTreeMap<String, String>,
    /// The resource's `service.name`.
    pub service_name: String,
    /// Start time, nanoseconds since the Unix epoch.
    pub start_unix_nano: u64,
    /// End time, nanoseconds since the Unix epoch.
    pub end_unix_nano: u64,
}

impl ReceivedSpan {
    /// An attribute's value, if the span has it.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    /// How long the span lasted.
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.end_unix_nano.saturating_sub(self.start_unix_nano))
    }
}

#[derive(Default)]
struct Inner {
    spans: Vec<ReceivedSpan>,
    exports: usize,
    content_types: Vec<String>,
}

/// A running receiver on a loopback port. Dropping it stops it.
pub struct OtlpReceiver {
    /// `http://127.0.0.1:PORT`: the collector's base URL, what `traces.otlp_endpoint` takes.
    pub base_url: String,
    inner: Arc<Mutex<Inner>>,
    _stop: oneshot::Sender<()>,
}

impl OtlpReceiver {
    /// Starts the receiver on an ephemeral port.
    pub async fn start() -> OtlpReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app =
            axum::Router::new().route("/v1/traces", axum::routing::post(export)).with_state(inner.clone());
        let stop = crate::serve_until_dropped(listener, app);
        OtlpReceiver { base_url: format!("http://{addr}"), inner, _stop: stop }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.lock().spans.clone()
    }

    /// How many export requests were accepted.
    pub fn exports(&self) -> usize {
        self.lock().exports
    }

    /// The `Content-Type` of every export request, accepted or not.
    pub fn content_types(&self) -> Vec<String> {
        self.lock().content_types.clone()
    }

    /// The spans of one trace (`trace_id` in hex).
    pub fn trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        self.lock().spans.iter().filter(|s| s.trace_id == trace_id).cloned().collect()
    }

    /// Waits until `done` holds for the spans received (checked every 20 ms), up to `timeout`;
    /// returns them then, or `Err` with them when the time is up.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Result<Vec<ReceivedSpan>, Vec<ReceivedSpan>> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if done(&spans) {
                return Ok(spans);
            }
            if Instant::now() >= deadline {
                return Err(spans);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until spans named each of `names` have arrived in trace `trace_id`, up to
    /// `timeout`; returns that trace's spans, or `Err` with them when the time is up.
    pub async fn wait_for_trace(
        &self,
        trace_id: &str,
        names: &[&str],
        timeout: Duration,
    ) -> Result<Vec<ReceivedSpan>, Vec<ReceivedSpan>> {
        let of_trace = |spans: &[ReceivedSpan]| -> Vec<ReceivedSpan> {
            spans.iter().filter(|s| s.trace_id == trace_id).cloned().collect()
        };
        match self
            .wait_for(timeout, |spans| {
                let t = of_trace(spans);
                names.iter().all(|n| t.iter().any(|s| s.name == *n))
            })
            .await
        {
            Ok(spans) => Ok(of_trace(&spans)),
            Err(spans) => Err(of_trace(&spans)),
        }
    }
}

async fn export(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    inner.lock().unwrap_or_else(|p| p.into_inner()).content_types.push(content_type.clone());
    if content_type != "application/x-protobuf" {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "this receiver takes application/x-protobuf")
            .into_response();
    }
    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, "not an ExportTraceServiceRequest").into_response();
    };
    let mut spans = Vec::new();
    for rs in req.resource_spans {
        let service_name = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .map(text)
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                spans.push(ReceivedSpan {
                    name: s.name,
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    kind: s.kind,
                    status_code: s.status.map_or(0, |st| st.code),
                    attributes: s
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), kv.value.as_ref().map(text).unwrap_or_default()))
                        .collect(),
                    service_name: service_name.clone(),
                    start_unix_nano: s.start_time_unix_nano,
                    end_unix_nano: s.end_time_unix_nano,
                });
            }
        }
    }
    {
        let mut inner = inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.exports += 1;
        inner.spans.extend(spans);
    }
    let reply = ExportTraceServiceResponse { partial_success: None }.encode_to_vec();
    ([(header::CONTENT_TYPE, "application/x-protobuf")], reply).into_response()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::KeyValue;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    #[tokio::test]
    async fn decodes_what_an_exporter_sends_and_refuses_other_bodies() {
        let r = OtlpReceiver::start().await;
        let string = |k: &str, v: &str| KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(any_value::Value::StringValue(v.into())) }),
        };
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![string("service.name", "svc")],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        name: "request".into(),
                        trace_id: vec![0xab; 16],
                        span_id: vec![0x01; 8],
                        kind: 2,
                        attributes: vec![string("route", "/v1")],
                        start_time_unix_nano: 1_000,
                        end_time_unix_nano: 3_500,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let http = reqwest::Client::new();
        let url = format!("{}/v1/traces", r.base_url);
        let ok = http
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .body(req.encode_to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        assert!(ExportTraceServiceResponse::decode(ok.bytes().await.unwrap()).is_ok());
        let json =
            http.post(&url).header("content-type", "application/json").body("{}").send().await.unwrap();
        assert_eq!(json.status(), 415);
        let junk = http
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .body(vec![0xff; 7])
            .send()
            .await
            .unwrap();
        assert_eq!(junk.status(), 400);
        let spans = r.wait_for_trace(&"ab".repeat(16), &["request"], Duration::from_secs(1)).await.unwrap();
        assert_eq!(spans.len(), 1);
        let s = &spans[0];
        assert_eq!((s.span_id.as_str(), s.parent_span_id.as_str(), s.kind), ("0101010101010101", "", 2));
        assert_eq!((s.attr("route"), s.service_name.as_str()), (Some("/v1"), "svc"));
        assert_eq!(s.duration(), Duration::from_nanos(2_500));
        assert_eq!(r.exports(), 1);
        assert_eq!(r.content_types().len(), 3);
    }
}
