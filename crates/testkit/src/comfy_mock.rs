//! A mock ComfyUI server speaking its HTTP routes and WebSocket messages.
//!
//! * `POST /prompt` `{prompt, client_id}` → `{prompt_id, number, node_errors}` (or the scripted
//!   400 `{error, node_errors}`), then runs the prompt by its [`Script`].
//! * `GET /ws?clientId=` → a WebSocket: `status` on connect, then per prompt of that client
//!   `execution_start`, `executing {node}`, `progress {value, max}` per step, `executed`,
//!   `executing {node: null}` and `execution_success`, or `execution_error` /
//!   `execution_interrupted`. A binary preview frame is sent mid-run, as ComfyUI does.
//! * `GET /history/{id}` → `{}` until the prompt ends, then its outputs and status.
//! * `GET /view?filename&subfolder&type` → the PNG.
//! * `POST /queue {"delete": [...]}`, `POST /interrupt` → recorded; interrupting stops a
//!   running prompt with `execution_interrupted`.
//! * `POST /upload/image` (multipart `image`, `overwrite`) → `{name, subfolder, type}`; the file
//!   is kept for [`ComfyMock::uploads`].
//! * `GET /system_stats` → 200.
//!
//! By default a prompt starts only once its client's socket is connected (as a busy ComfyUI
//! with a queue would usually behave), which makes progress assertions deterministic;
//! [`ComfyMock::set_wait_for_socket`] turns that off to test prompts that finish unseen.

use axum::Json;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};

/// How a prompt runs.
#[derive(Debug, Clone)]
pub struct Script {
    /// Sampler steps reported as `progress` (value 1..=steps).
    pub steps: u32,
    /// Time per step.
    pub step_delay: Duration,
    /// How it ends.
    pub outcome: Outcome,
}

/// How a scripted prompt ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Outputs one image.
    Success,
    /// `execution_error` with this exception message.
    Error(String),
    /// Never finishes by itself (until interrupted).
    Hang,
}

impl Default for Script {
    fn default() -> Self {
        Script { steps: 4, step_delay: Duration::from_millis(5), outcome: Outcome::Success }
    }
}

#[derive(Default)]
struct Inner {
    script: Script,
    reject_prompts: Option<Value>,
    wait_for_socket: bool,
    prompts: Vec<(String, String, Value)>,
    sockets: HashMap<String, mpsc::UnboundedSender<Message>>,
    history: HashMap<String, Value>,
    interrupted: Vec<Value>,
    deleted: Vec<String>,
    running: HashMap<String, Arc<Notify>>,
    counts: HashMap<&'static str, usize>,
    uploads: Vec<(String, String, Vec<u8>)>,
}

struct Shared {
    inner: Mutex<Inner>,
    /// ComfyUI runs one prompt at a time, in queue order.
    queue: tokio::sync::Mutex<()>,
    socket_connected: Notify,
    png: Vec<u8>,
}

type St = Arc<Shared>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    s.inner.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running mock ComfyUI. Dropping it stops it.
pub struct ComfyMock {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    shared: St,
    stop: Option<oneshot::Sender<()>>,
}

impl ComfyMock {
    /// Starts a mock whose prompts follow [`Script::default`].
    pub async fn start() -> ComfyMock {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner { wait_for_socket: true, ..Inner::default() }),
            queue: tokio::sync::Mutex::new(()),
            socket_connected: Notify::new(),
            png: crate::mock_upstream::png(8, 8, [200, 40, 40]),
        });
        let app = axum::Router::new()
            .route("/prompt", post(prompt))
            .route("/ws", get(ws))
            .route("/history/{id}", get(history))
            .route("/view", get(view))
            .route("/queue", post(queue))
            .route("/interrupt", post(interrupt))
            .route("/upload/image", post(upload))
            .route("/system_stats", get(|| async { Json(json!({"system": {"os": "mock"}, "devices": []})) }))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = crate::serve_until_dropped(listener, app);
        ComfyMock { base_url: format!("http://{addr}"), shared, stop: Some(stop) }
    }

    /// How the next prompts run.
    pub fn set_script(&self, s: Script) {
        lock(&self.shared).script = s;
    }

    /// Makes `POST /prompt` answer 400 with this `error` object (a workflow ComfyUI refuses).
    pub fn reject_prompts(&self, error: Value) {
        lock(&self.shared).reject_prompts = Some(error);
    }

    /// Whether prompts wait for their client's socket before running (default true).
    pub fn set_wait_for_socket(&self, on: bool) {
        lock(&self.shared).wait_for_socket = on;
    }

    /// Calls per route name (`prompt`, `ws`, `history`, `view`, `queue`, `interrupt`).
    pub fn calls(&self, route: &str) -> usize {
        lock(&self.shared).counts.get(route).copied().unwrap_or(0)
    }

    /// The graphs received, as (prompt_id, client_id, graph).
    pub fn prompts(&self) -> Vec<(String, String, Value)> {
        lock(&self.shared).prompts.clone()
    }

    /// Files uploaded with `POST /upload/image`: (name, content type, bytes).
    pub fn uploads(&self) -> Vec<(String, String, Vec<u8>)> {
        lock(&self.shared).uploads.clone()
    }

    /// Bodies of `POST /interrupt`.
    pub fn interrupts(&self) -> Vec<Value> {
        lock(&self.shared).interrupted.clone()
    }

    /// Prompt ids deleted through `POST /queue`.
    pub fn deleted(&self) -> Vec<String> {
        lock(&self.shared).deleted.clone()
    }

    /// The PNG every prompt outputs.
    pub fn png(&self) -> Vec<u8> {
        self.shared.png.clone()
    }

    /// Waits until the prompt is no longer running (finished, failed or interrupted).
    pub async fn wait_idle(&self, within: Duration) -> bool {
        let end = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < end {
            if lock(&self.shared).running.is_empty() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    }
}

impl Drop for ComfyMock {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn count(st: &Shared, route: &'static str) {
    *lock(st).counts.entry(route).or_insert(0) += 1;
}

async fn prompt(State(st): State<St>, Json(body): Json<Value>) -> Response {
    count(&st, "prompt");
    let client_id = body["client_id"].as_str().unwrap_or_default().to_string();
    let id = uuid::Uuid::new_v4().to_string();
    let (script, number) = {
        let mut g = lock(&st);
        if let Some(e) = &g.reject_prompts {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": e, "node_errors": {"3": {"errors": [e]}}})),
            )
                .into_response();
        }
        g.prompts.push((id.clone(), client_id.clone(), body["prompt"].clone()));
        g.running.insert(id.clone(), Arc::new(Notify::new()));
        (g.script.clone(), g.prompts.len())
    };
    tokio::spawn(run(st.clone(), id.clone(), client_id, script));
    Json(json!({"prompt_id": id, "number": number, "node_errors": {}})).into_response()
}

async fn upload(State(st): State<St>, mut form: axum::extract::Multipart) -> Response {
    count(&st, "upload");
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() != Some("image") {
            continue;
        }
        let name = field.file_name().unwrap_or("upload.png").to_string();
        let content_type = field.content_type().unwrap_or("").to_string();
        let Ok(bytes) = field.bytes().await else { break };
        lock(&st).uploads.push((name.clone(), content_type, bytes.to_vec()));
        return Json(json!({"name": name, "subfolder": "", "type": "input"})).into_response();
    }
    (StatusCode::BAD_REQUEST, "no image part").into_response()
}

fn send(st: &Shared, client: &str, msg: Message) {
    if let Some(tx) = lock(st).sockets.get(client) {
        let _ = tx.send(msg);
    }
}

fn event(kind: &str, data: Value) -> Message {
    Message::Text(json!({"type": kind, "data": data}).to_string().into())
}

async fn run(st: St, id: String, client: String, script: Script) {
    // Wait for the client's socket when asked (bounded, like a queue ahead of it).
    let wait = lock(&st).wait_for_socket;
    if wait {
        let end = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let notified = st.socket_connected.notified();
            if lock(&st).sockets.contains_key(&client) || tokio::time::Instant::now() >= end {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
        }
    }
    let _turn = st.queue.lock().await;
    if lock(&st).deleted.contains(&id) {
        // Deleted from the queue before it ran.
        lock(&st).running.remove(&id);
        return;
    }
    let stop = lock(&st).running.get(&id).cloned().unwrap_or_default();
    let ended = |st: &Shared, status: &str, outputs: Value, messages: Value| {
        let mut g = lock(st);
        g.running.remove(&id);
        g.history.insert(
            id.clone(),
            json!({
                "prompt": [1, id, {}, {}, ["9"]],
                "outputs": outputs,
                "status": {"status_str": status, "completed": status == "success", "messages": messages},
            }),
        );
    };
    send(&st, &client, event("execution_start", json!({"prompt_id": id})));
    send(&st, &client, event("executing", json!({"node": "3", "prompt_id": id})));
    let mut step = 0;
    loop {
        if script.outcome != Outcome::Hang && step >= script.steps {
            break;
        }
        tokio::select! {
            _ = stop.notified() => {
                send(&st, &client, event("execution_interrupted", json!({"prompt_id": id, "node_id": "3"})));
                ended(&st, "error", json!({}), json!([["execution_interrupted", {"prompt_id": id}]]));
                return;
            }
            _ = tokio::time::sleep(script.step_delay) => {}
        }
        if step < script.steps {
            step += 1;
            send(
                &st,
                &client,
                event("progress", json!({"value": step, "max": script.steps, "prompt_id": id, "node": "3"})),
            );
            if step == 1 {
                // A preview frame: binary, which clients must skip.
                send(&st, &client, Message::Binary(vec![0, 0, 0, 1, 0, 0, 0, 2, 0xFF].into()));
            }
        }
    }
    match &script.outcome {
        Outcome::Error(m) => {
            send(
                &st,
                &client,
                event(
                    "execution_error",
                    json!({"prompt_id": id, "node_id": "3", "node_type": "KSampler",
                           "exception_type": "RuntimeError", "exception_message": m}),
                ),
            );
            ended(&st, "error", json!({}), json!([["execution_error", {"exception_message": m}]]));
        }
        _ => {
            let file = format!("ComfyUI_{}_.png", &id[..8]);
            let outputs = json!({
                "9": {"images": [{"filename": file, "subfolder": "", "type": "output"}]},
                "12": {"images": [{"filename": "preview.png", "subfolder": "", "type": "temp"}]},
            });
            send(
                &st,
                &client,
                event("executed", json!({"node": "9", "prompt_id": id, "output": outputs["9"]})),
            );
            ended(&st, "success", outputs, json!([]));
            send(&st, &client, event("executing", json!({"node": null, "prompt_id": id})));
            send(&st, &client, event("execution_success", json!({"prompt_id": id})));
        }
    }
}

async fn ws(
    State(st): State<St>,
    Query(q): Query<HashMap<String, String>>,
    up: WebSocketUpgrade,
) -> Response {
    count(&st, "ws");
    let client = q.get("clientId").cloned().unwrap_or_default();
    up.on_upgrade(move |socket| socket_loop(st, client, socket))
}

async fn socket_loop(st: St, client: String, mut socket: WebSocket) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _ = socket
        .send(event("status", json!({"status": {"exec_info": {"queue_remaining": 0}}, "sid": client})))
        .await;
    lock(&st).sockets.insert(client.clone(), tx);
    st.socket_connected.notify_waiters();
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Some(m) => if socket.send(m).await.is_err() { break },
                None => break,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(_)) => {}
                _ => break,
            },
        }
    }
    lock(&st).sockets.remove(&client);
}

async fn history(State(st): State<St>, Path(id): Path<String>) -> Json<Value> {
    count(&st, "history");
    let g = lock(&st);
    Json(match g.history.get(&id) {
        Some(h) => json!({ id: h }),
        None => json!({}),
    })
}

async fn view(State(st): State<St>, Query(q): Query<HashMap<String, String>>) -> Response {
    count(&st, "view");
    if q.get("type").map(String::as_str) != Some("output") || !q.contains_key("filename") {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    }
    ([("content-type", "image/png")], st.png.clone()).into_response()
}

async fn queue(State(st): State<St>, Json(body): Json<Value>) -> Json<Value> {
    count(&st, "queue");
    let ids: Vec<String> = body["delete"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    lock(&st).deleted.extend(ids);
    Json(json!({}))
}

async fn interrupt(State(st): State<St>, body: axum::body::Bytes) -> StatusCode {
    count(&st, "interrupt");
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut g = lock(&st);
    g.interrupted.push(v.clone());
    // Newer ComfyUI interrupts only the named prompt; without a name, whatever runs.
    let targets: Vec<Arc<Notify>> = match v["prompt_id"].as_str() {
        Some(id) => g.running.get(id).cloned().into_iter().collect(),
        None => g.running.values().cloned().collect(),
    };
    for n in targets {
        n.notify_one();
    }
    StatusCode::OK
}
