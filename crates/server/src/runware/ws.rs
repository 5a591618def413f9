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

use super::{parse, render, run_one};
use crate::AppState;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use mediagate_core::{ApiError, ErrorCode, ParamPath};
use mediagate_engine::AuthContext;
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use uuid::Uuid;

/// Sessions by `connectionSessionUUID`, shared by every connection of the server.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<Uuid, Session>>);

struct Session {
    account_id: i64,
    /// The live connection: its id and outbound queue.
    conn: Option<(u64, mpsc::Sender<String>)>,
    /// Results produced while no connection was attached (or the queue was full).
    backlog: VecDeque<String>,
    detached_at: Option<Instant>,
}

/// Where a task's result goes: its session, whichever connection is attached by then.
#[derive(Clone)]
struct Outbox {
    sessions: Arc<Sessions>,
    id: Uuid,
    backlog_max: usize,
}

impl Outbox {
    /// Queues a message on the live connection, else keeps it for resume. Returns false when
    /// the live connection's queue is full (the caller disconnects that slow consumer).
    fn send(&self, msg: String) -> bool {
        let mut all = self.sessions.0.lock();
        let Some(s) = all.get_mut(&self.id) else { return true };
        if let Some((_, tx)) = &s.conn {
            match tx.try_send(msg) {
                Ok(()) => return true,
                Err(mpsc::error::TrySendError::Full(m)) | Err(mpsc::error::TrySendError::Closed(m)) => {
                    push_bounded(&mut s.backlog, m, self.backlog_max);
                    return false;
                }
            }
        }
        push_bounded(&mut s.backlog, msg, self.backlog_max);
        true
    }
}

fn push_bounded(q: &mut VecDeque<String>, m: String, max: usize) {
    if q.len() >= max {
        // Results stay retrievable with getResponse; the backlog is a convenience with a bound.
        tracing::warn!(max, "websocket session backlog full; dropping the oldest undelivered message");
        q.pop_front();
    }
    q.push_back(m);
}

impl Sessions {
    /// Attaches a connection to a new session, or to `resume` if it exists for this account and
    /// is within the window; returns the session id and its backlog.
    fn attach(
        &self,
        account_id: i64,
        resume: Option<Uuid>,
        conn: (u64, mpsc::Sender<String>),
        window: Duration,
    ) -> (Uuid, Vec<String>, bool) {
        let mut all = self.0.lock();
        all.retain(|_, s| s.detached_at.is_none_or(|t| t.elapsed() < window));
        if let Some(id) = resume
            && let Some(s) = all.get_mut(&id)
            && s.account_id == account_id
        {
            s.conn = Some(conn);
            s.detached_at = None;
            return (id, s.backlog.drain(..).collect(), true);
        }
        let id = Uuid::new_v4();
        all.insert(id, Session { account_id, conn: Some(conn), backlog: VecDeque::new(), detached_at: None });
        (id, Vec::new(), false)
    }

    /// Puts messages a closed connection did not deliver back at the head of the backlog (they
    /// precede anything queued since), or, when the session has meanwhile moved to a new
    /// connection, sends them there: a backlog is only read on resume, so parking them would
    /// strand them. Delivery is at least once: clients group by taskUUID.
    fn requeue_front(&self, id: Uuid, messages: Vec<String>, max: usize) {
        if messages.is_empty() {
            return;
        }
        if let Some(s) = self.0.lock().get_mut(&id) {
            let mut messages = messages;
            if let Some((_, tx)) = &s.conn {
                let mut rest = Vec::new();
                for m in messages {
                    if let Err(mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m)) =
                        tx.try_send(m)
                    {
                        rest.push(m);
                    }
                }
                messages = rest;
            }
            for m in messages.into_iter().rev() {
                s.backlog.push_front(m);
            }
            while s.backlog.len() > max {
                s.backlog.pop_front();
            }
        }
    }

    fn detach(&self, id: Uuid, conn_id: u64) {
        if let Some(s) = self.0.lock().get_mut(&id)
            && s.conn.as_ref().is_some_and(|(c, _)| *c == conn_id)
        {
            s.conn = None;
            s.detached_at = Some(Instant::now());
        }
    }
}

static NEXT_CONN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// `GET /v1`: upgrades to the WebSocket API; without an upgrade, says how to use the endpoint.
pub async fn upgrade(
    State(state): State<AppState>,
    crate::client_addr::ClientAddr(client): crate::client_addr::ClientAddr,
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
        .on_upgrade(move |socket| connection(state, socket, client))
        .into_response()
}

fn error_message(state: &AppState, e: &ApiError) -> String {
    json!({ "errors": [render::error(e, &state.base_url)] }).to_string()
}

async fn connection(state: AppState, socket: WebSocket, client: Option<std::net::IpAddr>) {
    let cfg = state.engine.config().websocket.clone();
    let idle = Duration::from_secs(cfg.idle_timeout_secs);
    let (mut sink, mut stream) = socket.split();
    let conn_id = NEXT_CONN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);

    // 1. Authentication: the first message, within the idle timeout.
    let first = match tokio::time::timeout(idle, stream.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => t,
        _ => return,
    };
    let (ctx, resume) = match authenticate(&state, first.as_str(), client).await {
        Ok(v) => v,
        Err(e) => {
            let _ = sink.send(Message::Text(error_message(&state, &e).into())).await;
            let _ = sink
                .send(Message::Close(Some(CloseFrame {
                    code: 1008,
                    reason: Utf8Bytes::from_static("authentication failed"),
                })))
                .await;
            return;
        }
    };
    let (tx, mut rx) = mpsc::channel::<String>(cfg.outbound_queue);
    let (session, backlog, resumed) = state.sessions.attach(
        ctx.account_id,
        resume,
        (conn_id, tx.clone()),
        Duration::from_secs(cfg.resume_window_secs),
    );
    tracing::debug!(%session, account = %ctx.account_name, resumed, backlog = backlog.len(), "websocket authenticated");
    let auth_reply =
        json!({"data": [{"taskType": "authentication", "connectionSessionUUID": session.to_string()}]});
    if sink.send(Message::Text(auth_reply.to_string().into())).await.is_err() {
        state.sessions.detach(session, conn_id);
        return;
    }
    for m in backlog {
        if sink.send(Message::Text(m.into())).await.is_err() {
            state.sessions.detach(session, conn_id);
            return;
        }
    }
    let outbox = Outbox { sessions: state.sessions.clone(), id: session, backlog_max: cfg.backlog_max };

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
            Message::Text(t) => handle_text(&state, &ctx, &outbox, &slow_tx, t.as_str()),
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
        state.sessions.requeue_front(session, undelivered, cfg.backlog_max);
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
    let first = match &v {
        Value::Array(a) => a.first().cloned().ok_or_else(need_auth)?,
        Value::Object(_) => v.clone(),
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
    text: &str,
) {
    let tasks = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(a)) => a,
        Ok(obj @ Value::Object(_)) => vec![obj],
        Ok(_) => {
            let e = ApiError::new(ErrorCode::InvalidRequestBody, "Send a JSON array of task objects.");
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
    for (i, task) in tasks.into_iter().enumerate() {
        let tt = task.get("taskType").and_then(Value::as_str);
        if tt == Some("authentication") {
            // Already authenticated: acknowledge rather than fail the socket.
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
        let (state, ctx, outbox, slow) = (state.clone(), ctx.clone(), outbox.clone(), slow.clone());
        tokio::spawn(async move {
            let msg = match run_one(&state, &ctx, &task, i).await {
                Ok(items) => json!({ "data": items }).to_string(),
                Err(e) => error_message(&state, &e),
            };
            outbox_or_close(&outbox, &slow, msg);
        });
    }
}

#[cfg(test)]
mod session_tests {
    use super::*;

    #[test]
    fn undelivered_messages_of_an_old_connection_go_to_the_session_s_new_one() {
        let sessions = Sessions::default();
        let window = Duration::from_secs(60);
        let (tx1, _rx1) = mpsc::channel(8);
        let (id, _, _) = sessions.attach(1, None, (1, tx1), window);
        // The client resumes on a second connection before the first one has wound down.
        let (tx2, mut rx2) = mpsc::channel(8);
        let (again, _, resumed) = sessions.attach(1, Some(id), (2, tx2), window);
        assert!(resumed && again == id);
        sessions.detach(id, 1);
        sessions.requeue_front(id, vec!["a".into(), "b".into()], 100);
        assert_eq!((rx2.try_recv().unwrap(), rx2.try_recv().unwrap()), ("a".to_string(), "b".to_string()));
        assert!(sessions.0.lock()[&id].backlog.is_empty());
        // With no live connection they wait in the backlog for the next resume.
        sessions.detach(id, 2);
        sessions.requeue_front(id, vec!["c".into()], 100);
        assert_eq!(sessions.0.lock()[&id].backlog.len(), 1);
    }
}
