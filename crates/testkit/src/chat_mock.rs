//! A mock of an OpenAI-compatible chat server (`POST /v1/chat/completions`), for the
//! `openai-chat` provider's tests: **a test double, not a language model**. It answers every
//! completion with text derived from the request, so a test can tell which request an answer
//! came from: `<last user text>, in rich detail (reply N)`, N counting from 1. It records each
//! request body. `fail_next` makes the next calls answer an HTTP error.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

#[derive(Default)]
struct Inner {
    requests: Vec<Value>,
    failures: Vec<(u16, Value)>,
}

/// A running mock on a loopback port. Dropping it stops it.
pub struct ChatMock {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    inner: Arc<Mutex<Inner>>,
    _stop: oneshot::Sender<()>,
}

impl ChatMock {
    /// Starts the mock on an ephemeral port.
    pub async fn start() -> ChatMock {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = axum::Router::new()
            .route("/v1/chat/completions", axum::routing::post(complete))
            .route("/v1/models", axum::routing::get(|| async { Json(json!({"data": []})) }))
            .with_state(inner.clone());
        let stop = crate::serve_until_dropped(listener, app);
        ChatMock { base_url: format!("http://{addr}"), inner, _stop: stop }
    }

    /// The request bodies received, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).requests.clone()
    }

    /// The next call answers `status` with `body` (then calls are answered normally again).
    pub fn fail_next(&self, status: u16, body: Value) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).failures.push((status, body));
    }
}

/// The text of the last user message: a string, or the `text` parts of a content array.
fn last_user_text(body: &Value) -> String {
    let Some(messages) = body["messages"].as_array() else { return String::new() };
    let Some(user) = messages.iter().rev().find(|m| m["role"] == "user") else { return String::new() };
    match &user["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    }
}

async fn complete(State(inner): State<Arc<Mutex<Inner>>>, Json(body): Json<Value>) -> Response {
    let (n, failure) = {
        let mut g = inner.lock().unwrap_or_else(|p| p.into_inner());
        g.requests.push(body.clone());
        let failure = if g.failures.is_empty() { None } else { Some(g.failures.remove(0)) };
        (g.requests.len(), failure)
    };
    if let Some((status, body)) = failure {
        return (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), Json(body))
            .into_response();
    }
    let text = format!("{}, in rich detail (reply {n})", last_user_text(&body));
    Json(json!({
        "id": format!("chatcmpl-{n}"),
        "object": "chat.completion",
        "model": body["model"].as_str().unwrap_or("mock"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
    }))
    .into_response()
}
