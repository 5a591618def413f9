//! The Runware dialect over WebSocket: `GET /v1` with an upgrade.
//!
//! The first message must be an `authentication` task; the reply carries a
//! `connectionSessionUUID`. Tasks arrive as arrays; each task's result (or error object, the
//! same as on REST) is pushed as soon as it is ready. Re-authenticating on a new socket with the
//! previous `connectionSessionUUID` (within `websocket.resume_window_secs`) delivers every result
//! produced while the client was away.
//!
//! Everything is bounded: message size, the per-connection outbound queue (a consumer that
//! cannot keep up is disconnected, its undelivered results kept for resume), the backlog a
//! detached session keeps, and idle time.

use super::sessions::Sessions;
use super::{parse, render, run_one};
use crate::AppState;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use mediagate_core::{ApiError, ErrorCode, ParamPath};
use mediagate_engine::AuthContext;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Where a task's result goes: its session, whichever connection is attached by then.
#[derive(Clone)]
struct Outbox {
    sessions: Arc<Sessions>,
    id: Uuid,
    /// Tasks whose results this connection waits to push after an unfinished `getResponse`:
    /// one wait per task, however often a client polls.
    awaited: Arc<parking_lot::Mutex<std::collections::HashSet<Uuid>>>,
    /// Submissions of this connection still being handled, by taskUUID (lower case): a
    /// `getResponse` sent after one on the same socket waits for it, so it never answers
    /// `taskNotFound` for a task the client has already sent (the Python SDK's `videoCaption`
    /// polls right behind its submission). Messages are otherwise handled concurrently.
    submitting:
        Arc<parking_lot::Mutex<std::collections::HashMap<String, tokio::sync::watch::Receiver<bool>>>>,
}

impl Outbox {
    /// Queues a message on the live connection, else keeps it for resume. Returns false when
    /// the live connection's queue is full (the caller disconnects that slow consumer).
    fn send(&self, msg: String) -> bool {
        self.sessions.send(self.id, msg)
    }
}

static NEXT_CONN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// `GET /v1`: upgrades to the WebSocket API; without an upgrade, says how to use the endpoint.
#[utoipa::path(get, path = "/v1", tag = "runware", responses((status = 101, description = "The WebSocket API: task arrays in, results pushed as they are ready"), (status = 405, description = "Not a WebSocket upgrade", body = crate::openapi::schemas::RunwareResponse)))]
pub async fn upgrade(
    State(state): State<AppState>,
    crate::client_addr::ClientAddr(client): crate::client_addr::ClientAddr,
    slot: Option<axum::Extension<crate::edge::connections::ConnectionSlot>>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else {
        return super::request_error(
            &state,
            &ApiError::new(
                ErrorCode::MethodNotAllowed,
                "GET /v1 only accepts WebSocket upgrades (ws://.../v1); send REST task arrays with POST /v1.",
            ),
        );
    };
    let cfg = state.engine.config().websocket.clone();
    // Small buffers that grow on demand: the 128 KiB defaults cost that much per idle socket.
    ws.read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(cfg.max_message_bytes)
        .max_frame_size(cfg.max_message_bytes)
        .on_upgrade(move |socket| async move {
            // The socket keeps its place under `server.max_connections` until it closes.
            let _slot = slot;
            connection(state, socket, client).await
        })
        .into_response()
}

fn error_message(state: &AppState, e: &ApiError) -> String {
    json!({ "errors": [render::error(e, &state.base_url)] }).to_string()
}

async fn connection(state: AppState, socket: WebSocket, client: Option<std::net::IpAddr>) {
    let _counted = state.engine.metrics().websocket_opened();
    let cfg = state.engine.config().websocket.clone();
    let idle = Duration::from_secs(cfg.idle_timeout_secs);
    let (mut sink, mut stream) = socket.split();
    let conn_id = NEXT_CONN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);

    // 1. Authentication: the first message, within the idle timeout. A refused key is answered
    // and the socket stays open for another try (as on Runware: the official SDKs read the
    // error from the open socket; closing it makes them reconnect and forget the error), until
    // the idle timeout. Failed tries count against the invalid-key throttle of the address.
    let (ctx, resume) = loop {
        let text = match tokio::time::timeout(idle, stream.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            _ => return,
        };
        match authenticate(&state, text.as_str(), client).await {
            Ok(v) => break v,
            Err(e) => {
                if sink.send(Message::Text(error_message(&state, &e).into())).await.is_err() {
                    return;
                }
            }
        }
    };
    let (tx, mut rx) = mpsc::channel::<String>(cfg.outbound_queue);
    let conn = super::sessions::Conn::new(conn_id, tx.clone(), cfg.outbound_queue_bytes);
    let attached = state.sessions.attach(ctx.account_id, resume, conn.clone());
    let session = attached.id;
    tracing::debug!(%session, account = %ctx.account_name, resumed = resume == Some(session), backlog = attached.backlog.len(), "websocket authenticated");
    let auth_reply =
        json!({"data": [{"taskType": "authentication", "connectionSessionUUID": session.to_string()}]});
    if sink.send(Message::Text(auth_reply.to_string().into())).await.is_err() {
        state.sessions.detach(session, conn_id);
        return;
    }
    // A resume that could not deliver everything says so, in an error object with no task:
    // SDKs match errors to their tasks by taskUUID, so it disturbs none of them.
    let notice = attached.notice.map(|e| error_message(&state, &e));
    for m in notice.into_iter().chain(attached.backlog) {
        if sink.send(Message::Text(m.into())).await.is_err() {
            state.sessions.detach(session, conn_id);
            return;
        }
    }
    let outbox = Outbox {
        sessions: state.sessions.clone(),
        id: session,
        awaited: Arc::default(),
        submitting: Arc::default(),
    };

    // 2. Writer: drains the outbound queue into the socket. Told to stop, it hands back what it
    // had not delivered, so a dropped connection loses nothing (the session keeps it).
    let (slow_tx, mut slow_rx) = mpsc::channel::<()>(1);
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn(async move {
        let mut unsent = None;
        loop {
            tokio::select! {
                _ = &mut stop_rx => break,
                m = rx.recv() => {
                    let Some(m) = m else { break };
                    conn.dequeued(m.len());
                    tokio::select! {
                        r = sink.send(Message::Text(m.clone().into())) => {
                            if r.is_err() {
                                unsent = Some(m);
                                break;
                            }
                        }
                        // A write blocked on a consumer that does not read: give up on it.
                        _ = &mut stop_rx => {
                            unsent = Some(m);
                            break;
                        }
                    }
                }
            }
        }
        (rx, unsent)
    });

    // 3. Reader: tasks in, with an idle timeout.
    let inflight = Arc::new(tokio::sync::Semaphore::new(cfg.max_inflight_tasks.max(1)));
    loop {
        let next = tokio::select! {
            n = tokio::time::timeout(idle, stream.next()) => n,
            _ = slow_rx.recv() => {
                tracing::warn!("websocket consumer too slow; closing (undelivered results kept for resume)");
                break;
            }
        };
        let msg = match next {
            Err(_) => {
                tracing::debug!("websocket idle; closing");
                break;
            }
            Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            Message::Text(t) => handle_text(&state, &ctx, &outbox, &slow_tx, &inflight, t.as_str()),
            Message::Binary(_) => {
                let e = ApiError::new(
                    ErrorCode::InvalidRequestBody,
                    "Binary messages are not accepted; send JSON text.",
                );
                outbox_or_close(&outbox, &slow_tx, error_message(&state, &e));
            }
            Message::Close(_) => break,
            // Pings are answered by the library; pongs need nothing.
            _ => {}
        }
    }
    // New results now go to the backlog; then whatever the writer still held goes back in front.
    state.sessions.detach(session, conn_id);
    drop(tx);
    let _ = stop_tx.send(());
    if let Ok((mut rx, unsent)) = writer.await {
        let mut undelivered: Vec<String> = unsent.into_iter().collect();
        while let Ok(m) = rx.try_recv() {
            undelivered.push(m);
        }
        state.sessions.requeue_front(session, undelivered);
    }
}

fn outbox_or_close(outbox: &Outbox, slow: &mpsc::Sender<()>, msg: String) {
    if !outbox.send(msg) {
        let _ = slow.try_send(());
    }
}

/// Parses the first message: `[{"taskType":"authentication","apiKey":..., "connectionSessionUUID"?}]`.
async fn authenticate(
    state: &AppState,
    text: &str,
    client: Option<std::net::IpAddr>,
) -> Result<(Arc<AuthContext>, Option<Uuid>), ApiError> {
    let need_auth = || {
        ApiError::new(
            ErrorCode::MissingApiKey,
            "The first WebSocket message must be [{\"taskType\":\"authentication\",\"apiKey\":\"<API key>\"}].",
        )
        .with_parameter(ParamPath::key("apiKey"))
        .with_task_type("authentication")
    };
    let v: Value = serde_json::from_str(text).map_err(|_| need_auth())?;
    // Arrays only, as on REST.
    let first = match &v {
        Value::Array(a) => a.first().cloned().ok_or_else(need_auth)?,
        _ => return Err(need_auth()),
    };
    if first.get("taskType").and_then(Value::as_str) != Some("authentication") {
        return Err(need_auth());
    }
    let key = first.get("apiKey").and_then(Value::as_str).ok_or_else(need_auth)?;
    let ctx = state.engine.authenticate_from(key, client, mediagate_engine::Dialect::Runware).await?;
    let resume =
        first.get("connectionSessionUUID").and_then(Value::as_str).and_then(|s| Uuid::try_parse(s).ok());
    Ok((ctx, resume))
}

fn handle_text(
    state: &AppState,
    ctx: &Arc<AuthContext>,
    outbox: &Outbox,
    slow: &mpsc::Sender<()>,
    inflight: &Arc<tokio::sync::Semaphore>,
    text: &str,
) {
    let tasks = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(a)) => a,
        Ok(_) => {
            let e = ApiError::new(
                ErrorCode::InvalidRequestBody,
                "A message must be a JSON array of task objects, e.g. [{\"taskType\":\"ping\",\"ping\":true}], \
                 even for a single task.",
            );
            return outbox_or_close(outbox, slow, error_message(state, &e));
        }
        Err(err) => {
            let e = ApiError::new(
                ErrorCode::InvalidJson,
                format!("The message is not valid JSON ({err}). Send a JSON array of task objects."),
            );
            return outbox_or_close(outbox, slow, error_message(state, &e));
        }
    };
    if tasks.is_empty() {
        let e =
            ApiError::new(ErrorCode::MissingTasks, "The task array is empty; send at least one task object.");
        return outbox_or_close(outbox, slow, error_message(state, &e));
    }
    // The same bound as a REST request's array.
    let max = state.engine.config().server.max_tasks_per_request;
    if tasks.len() > max {
        let e = ApiError::new(
            ErrorCode::InvalidRequestBody,
            format!(
                "The message holds {} tasks; at most {max} are accepted per message. Split it.",
                tasks.len()
            ),
        );
        return outbox_or_close(outbox, slow, error_message(state, &e));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let tt = task.get("taskType").and_then(Value::as_str);
        if tt == Some("authentication") {
            // Already authenticated: the socket keeps its key; answer with its session.
            let item = json!({"taskType": "authentication", "connectionSessionUUID": outbox.id.to_string()});
            outbox_or_close(outbox, slow, json!({"data": [item]}).to_string());
            continue;
        }
        if tt == Some("ping") {
            // Answered inline: keepalives must not wait behind running tasks.
            let known = parse::known(&task);
            let mut item = json!({"taskType": "ping", "pong": true});
            if let Some(u) = known.task_uuid {
                item["taskUUID"] = json!(u);
            }
            outbox_or_close(outbox, slow, json!({"data": [item]}).to_string());
            continue;
        }
        let Ok(slot) = inflight.clone().try_acquire_owned() else {
            let known = parse::known(&task);
            let mut e = ApiError::new(
                ErrorCode::QueueFull,
                format!(
                    "This connection has {} tasks running (websocket.max_inflight_tasks); send more once results arrive.",
                    state.engine.config().websocket.max_inflight_tasks
                ),
            )
            .with_retry_after(Duration::from_secs(1));
            e.task_type = known.task_type;
            e.task_uuid = known.task_uuid;
            outbox_or_close(outbox, slow, error_message(state, &e));
            continue;
        };
        // Order a poll behind this connection's submission of the same task (see `submitting`).
        let uuid = parse::known(&task).task_uuid.map(|u| u.to_ascii_lowercase());
        let (behind, submission) = match (tt == Some("getResponse"), uuid) {
            (true, Some(u)) => (outbox.submitting.lock().get(&u).cloned(), None),
            (false, Some(u)) => {
                let (done, rx) = tokio::sync::watch::channel(false);
                outbox.submitting.lock().insert(u.clone(), rx);
                (None, Some((u, done)))
            }
            (_, None) => (None, None),
        };
        let (state, ctx, outbox, slow) = (state.clone(), ctx.clone(), outbox.clone(), slow.clone());
        tokio::spawn(async move {
            if let Some(mut rx) = behind {
                // Done, or the submission's handler is gone: either way the poll may go.
                let _ = rx.wait_for(|done| *done).await;
            }
            let answer = run_one(&state, &ctx, &task, i).await;
            if let Some((u, done)) = submission {
                let _ = done.send(true);
                let mut submitting = outbox.submitting.lock();
                if submitting.get(&u).is_some_and(|rx| rx.same_channel(&done.subscribe())) {
                    submitting.remove(&u);
                }
            }
            let unfinished = answer.as_ref().ok().and_then(|items| UnfinishedPoll::of(&task, items));
            let msg = match answer {
                Ok(items) => json!({ "data": items }).to_string(),
                Err(e) => error_message(&state, &e),
            };
            outbox_or_close(&outbox, &slow, msg);
            drop(slot);
            if let Some(poll) = unfinished {
                poll.push_when_ended(&state, &ctx, &outbox, &slow, &task, i).await;
            }
        });
    }
}

/// A WebSocket `getResponse` answered while its task was still running.
///
/// The official SDKs send one `getResponse` and then wait on the socket for the results
/// (`runware` for Python waits `RUNWARE_VIDEO_INITIAL_TIMEOUT`, 30 s, before it polls again),
/// as Runware pushes them when they are ready. So the socket that polled gets them pushed
/// too: once, when the task ends, only the results that answer did not already hold. The wait
/// holds no in-flight slot; it lasts as long as the task, whose own time is bounded.
struct UnfinishedPoll {
    task_uuid: Uuid,
    /// Results the first answer already carried (partial results of a running task).
    already_sent: usize,
}

impl UnfinishedPoll {
    /// The poll `task` if it was a `getResponse` whose answer `items` ends "processing".
    fn of(task: &Value, items: &[Value]) -> Option<Self> {
        if task.get("taskType").and_then(Value::as_str) != Some("getResponse") {
            return None;
        }
        let last = items.last()?;
        if last.get("status").and_then(Value::as_str) != Some("processing") {
            return None;
        }
        let task_uuid = task.get("taskUUID").and_then(Value::as_str).and_then(|u| Uuid::parse_str(u).ok())?;
        Some(Self { task_uuid, already_sent: items.len() - 1 })
    }

    /// Waits for the task's end, then answers the same poll again with what is new. Nothing is
    /// pushed when the task is not running in this process (it still reads "processing").
    async fn push_when_ended(
        self,
        state: &AppState,
        ctx: &Arc<AuthContext>,
        outbox: &Outbox,
        slow: &mpsc::Sender<()>,
        task: &Value,
        index: usize,
    ) {
        if !outbox.awaited.lock().insert(self.task_uuid) {
            return;
        }
        state.engine.wait_for_task_end(ctx.account_id, self.task_uuid).await;
        outbox.awaited.lock().remove(&self.task_uuid);
        let msg = match run_one(state, ctx, task, index).await {
            Ok(items) if UnfinishedPoll::of(task, &items).is_some() => return,
            Ok(items) => {
                let new: Vec<Value> = items.into_iter().skip(self.already_sent).collect();
                if new.is_empty() {
                    return;
                }
                json!({ "data": new }).to_string()
            }
            Err(e) => error_message(state, &e),
        };
        outbox_or_close(outbox, slow, msg);
    }
}
