//! A programmable HTTP upstream for provider tests: each test scripts what a route answers and
//! then asserts exactly how many calls it got.
//!
//! A route is a method and a path (`/v1/images/generations`), or a path prefix ending in `*`
//! (`/jobs/*`). It answers with a **sequence** of [`Reply`]s, one per call; the last one repeats.
//! So "two 503s then success" is `vec![Reply::status(503), Reply::status(503), ok]`, and an
//! async job script is the sequence of states a poll route returns. Each reply may carry a delay
//! (to provoke timeouts) and any headers (`Retry-After`). Every request is recorded (method,
//! path, query, headers, body) and counted. Unrouted requests get 404 and are counted too.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Headers to send.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Reply {
    /// An empty reply with a status.
    pub fn status(status: u16) -> Reply {
        Reply { status, headers: vec![], body: Bytes::new(), delay: Duration::ZERO }
    }

    /// A JSON reply.
    pub fn json(status: u16, v: serde_json::Value) -> Reply {
        Reply::status(status).header("content-type", "application/json").body(v.to_string())
    }

    /// With a body.
    pub fn body(mut self, b: impl Into<Bytes>) -> Reply {
        self.body = b.into();
        self
    }

    /// With a header.
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }

    /// Answering after `d`.
    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

/// A request the mock received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Query string (without `?`), if any.
    pub query: Option<String>,
    /// Headers, names lower-case.
    pub headers: HashMap<String, String>,
    /// Body.
    pub body: Bytes,
}

impl Recorded {
    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

struct Route {
    replies: Vec<Reply>,
    served: usize,
}

#[derive(Default)]
struct State {
    routes: HashMap<(String, String), Route>,
    log: Vec<Recorded>,
    /// Skip recording bodies (benchmarks: keeps memory flat over millions of calls).
    count_only: bool,
    counts: HashMap<(String, String), usize>,
    /// Requests being answered now, and the most at once since the last reset.
    in_flight: usize,
    max_in_flight: usize,
}

/// A running mock upstream on a loopback port. Dropping it stops it.
pub struct MockUpstream {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    state: Arc<Mutex<State>>,
    stop: Option<oneshot::Sender<()>>,
}

fn lock(s: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl MockUpstream {
    /// Starts an empty mock (every path 404) on an ephemeral port.
    pub async fn start() -> MockUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::serve(listener)
    }

    /// Serves on an already bound listener (benchmarks pick their runtime).
    pub fn serve(listener: tokio::net::TcpListener) -> MockUpstream {
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let app =
            axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let st = st.clone();
                async move { handle(&st, method, uri, headers, body).await }
            });
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        MockUpstream { base_url: format!("http://{addr}"), state, stop: Some(stop) }
    }

    /// Scripts a route: `replies` answer successive calls, the last one repeating.
    pub fn on(&self, method: &str, path: &str, replies: Vec<Reply>) -> &Self {
        assert!(!replies.is_empty(), "a route needs at least one reply");
        lock(&self.state)
            .routes
            .insert((method.to_uppercase(), path.to_string()), Route { replies, served: 0 });
        self
    }

    /// Records counts only, not requests (for load tests).
    pub fn count_only(&self) -> &Self {
        lock(&self.state).count_only = true;
        self
    }

    /// Calls received on a route as scripted (`path` as given to [`on`](Self::on), `*` included).
    pub fn calls(&self, method: &str, path: &str) -> usize {
        lock(&self.state).counts.get(&(method.to_uppercase(), path.to_string())).copied().unwrap_or(0)
    }

    /// The most requests this mock was answering at once (a client that hung up stops counting),
    /// since it started or since [`reset_max_in_flight`](Self::reset_max_in_flight).
    pub fn max_in_flight(&self) -> usize {
        lock(&self.state).max_in_flight
    }

    /// Starts counting [`max_in_flight`](Self::max_in_flight) afresh from those in flight now.
    pub fn reset_max_in_flight(&self) {
        let mut s = lock(&self.state);
        s.max_in_flight = s.in_flight;
    }

    /// Every call received, routed or not.
    pub fn total_calls(&self) -> usize {
        lock(&self.state).counts.values().sum()
    }

    /// The requests recorded on a concrete path (not a pattern), in order.
    pub fn requests(&self, method: &str, path: &str) -> Vec<Recorded> {
        let m = method.to_uppercase();
        lock(&self.state).log.iter().filter(|r| r.method == m && r.path == path).cloned().collect()
    }

    /// Every recorded request, in order.
    pub fn all_requests(&self) -> Vec<Recorded> {
        lock(&self.state).log.clone()
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Counts a request in flight until dropped (answered, or abandoned by its client).
struct InFlight<'a>(&'a Mutex<State>);

impl<'a> InFlight<'a> {
    fn enter(st: &'a Mutex<State>) -> InFlight<'a> {
        let mut s = lock(st);
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        InFlight(st)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        lock(self.0).in_flight -= 1;
    }
}

async fn handle(st: &Mutex<State>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let _in_flight = InFlight::enter(st);
    let reply = {
        let mut s = lock(st);
        let m = method.as_str().to_string();
        // Exact route first, then the longest matching `prefix*` route.
        let key = if s.routes.contains_key(&(m.clone(), path.clone())) {
            Some((m.clone(), path.clone()))
        } else {
            s.routes
                .keys()
                .filter(|(rm, rp)| *rm == m && rp.ends_with('*') && path.starts_with(&rp[..rp.len() - 1]))
                .max_by_key(|(_, rp)| rp.len())
                .cloned()
        };
        let count_key = key.clone().unwrap_or((m.clone(), path.clone()));
        *s.counts.entry(count_key).or_insert(0) += 1;
        if !s.count_only {
            s.log.push(Recorded {
                method: m,
                path: path.clone(),
                query: uri.query().map(str::to_string),
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
                    .collect(),
                body,
            });
        }
        match key.and_then(|k| s.routes.get_mut(&k)) {
            Some(r) => {
                let i = r.served.min(r.replies.len() - 1);
                r.served += 1;
                r.replies[i].clone()
            }
            None => Reply::json(404, serde_json::json!({"error": "no such route in the mock"})),
        }
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut resp =
        (StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), reply.body)
            .into_response();
    for (k, v) in &reply.headers {
        if let (Ok(k), Ok(v)) =
            (axum::http::HeaderName::from_bytes(k.as_bytes()), axum::http::HeaderValue::from_str(v))
        {
            resp.headers_mut().append(k, v);
        }
    }
    resp
}

/// A small valid PNG (`w`×`h`, one colour), for upstream replies.
pub fn png(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb(rgb));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("encode png");
    out.into_inner()
}

/// An OpenAI images reply with `n` base64 PNGs.
pub fn openai_b64_reply(n: usize, png_bytes: &[u8]) -> Reply {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(png_bytes);
    let data: Vec<serde_json::Value> = (0..n).map(|_| serde_json::json!({"b64_json": b64})).collect();
    Reply::json(200, serde_json::json!({"created": 1_700_000_000, "data": data}))
}

/// Makes `cfg` serve image model `air` through the `openai-images` provider at `upstream_base`
/// (a [`MockUpstream`]), named `mock`: one attempt, no fallback, $0.001 a result. What the mock
/// answers (and how slowly) is the test's; adjust `cfg.models[0]` for more.
pub fn serve_image_model_from_mock(
    cfg: &mut mediagate_engine::config::Config,
    upstream_base: &str,
    air: &str,
) {
    use mediagate_core::model::{RetryPolicy, builtin_models};
    use mediagate_core::task::TaskType;
    use mediagate_providers::upstream::{UpstreamConfig, UpstreamKind};
    cfg.providers.upstreams = vec![UpstreamConfig {
        name: "mock".into(),
        kind: UpstreamKind::OpenaiImages,
        base_url: upstream_base.into(),
        timeout_ms: 60_000,
        ..UpstreamConfig::default()
    }];
    let mut spec = builtin_models()
        .into_iter()
        .find(|m| m.task_type == TaskType::ImageInference)
        .expect("a built-in image model");
    spec.air = air.into();
    spec.provider = "mock".into();
    spec.fallback = vec![];
    spec.price_usd = "0.001".into();
    spec.description = "test model on a mock upstream".into();
    spec.retry = RetryPolicy { attempts: 1, base_ms: 1, cap_ms: 1, deadline_ms: 60_000 };
    cfg.models = vec![spec];
}
