//! The WebSocket transport: the Runware dialect over one long-lived socket (`ws://HOST/v1`).
//!
//! [`WsTransport`] implements [`Transport`], so typed tasks, batches, retries and polling work
//! over it exactly as over REST. Choose it with [`crate::ClientBuilder::websocket`] or a
//! `ws://` / `wss://` base URL.
//!
//! # How it works
//!
//! - **Authentication on connect.** The first message on every socket is
//!   `[{"taskType":"authentication","apiKey":…}]`; the reply's `connectionSessionUUID` is kept.
//!   The API key is never logged.
//! - **One background task per transport** owns the socket. It writes task arrays, reads every
//!   frame and routes each `data` item and error object to the call waiting for its `taskUUID`.
//!   A task is answered by an error object, by an acknowledgement (`status: "processing"`), or
//!   by its `data` items: as many as its `numberResults` (one frame carrying several items is
//!   taken as the whole result, as mediagate sends it; Runware may send one item per frame).
//!   Items for tasks nobody waits for any more (late duplicates) are dropped.
//! - **Keepalive.** A `ping` task every [`WsOptions::ping_interval`]; when nothing at all
//!   arrives within [`WsOptions::pong_timeout`] of it, the socket is taken for dead (a half-open
//!   connection, e.g. a NAT that forgot it) and replaced.
//! - **Reconnection** uses [`crate::retry::run`] with [`WsOptions::reconnect`]: exponential
//!   backoff with full jitter, bounded attempts and a total deadline. The new socket
//!   authenticates with the saved `connectionSessionUUID`, so the server resumes the session
//!   and delivers the results produced while the client was away (its backlog). When the policy
//!   gives up, every waiting call fails with [`Error::Exhausted`] whose last error is the
//!   connect failure; the next call starts a new round of attempts. A socket that drops within
//!   2 s of connecting also waits a backoff step (growing while it keeps happening) before the
//!   next connection, so a server that accepts and drops at once is not hammered.
//! - **Calls survive reconnects.** A task whose answer never arrived is **resent with the same
//!   `taskUUID`** on the new socket, once the backlog has been delivered (a `ping` sent right
//!   after a resumed authentication comes back after the backlog, which marks its end). Resending
//!   rather than polling `getResponse` was chosen because it covers every case in one round trip:
//!   a task the server never received (lost in a dead socket) runs; a task still running is
//!   joined (the server's in-flight idempotency); a finished one is answered from the store. It
//!   is never run or charged twice. It also works when the session could not be resumed (window
//!   expired, server restarted), where polling would still need a resend for never-received
//!   tasks.
//! - **Deadlines.** Each call waits at most [`WsOptions::request_timeout`] ([`Error::Timeout`]),
//!   and the client's [`crate::RetryPolicy::total_deadline`] bounds it as on REST. Connection
//!   failures are [`Error::Connect`], a socket lost after connecting is replaced silently, and
//!   calls on a closed transport fail with [`Error::Closed`].
//! - **Clean shutdown.** [`WsTransport::close`] (or [`crate::Client::close`], or dropping the last
//!   client) sends a close frame; calls still waiting fail with [`Error::Closed`].
//!
//! Errors arrive without an HTTP status, so retries decide by error `code` (the catalog's retry
//! class), as the Runware documentation says for WebSocket.

use crate::ApiKey;
use crate::error::{ApiError, Error};
use crate::retry::{self, RetryPolicy, Verdict};
use crate::transport::{Envelope, Transport};
use async_trait::async_trait;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use uuid::Uuid;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Settings of the WebSocket transport.
#[derive(Debug, Clone, PartialEq)]
pub struct WsOptions {
    /// Limit for one connection attempt: TCP (and TLS) connect, upgrade, and the authentication
    /// reply (default 10 s).
    pub connect_timeout: Duration,
    /// Limit for one call, from sending to its last answer (default 120 s).
    pub request_timeout: Duration,
    /// How often a keepalive `ping` is sent; `None` sends none (default 30 s, well inside
    /// mediagate's 120 s idle timeout).
    pub ping_interval: Option<Duration>,
    /// How long after a ping with nothing received the socket is declared dead (default 10 s).
    pub pong_timeout: Duration,
    /// How connection attempts are retried (default [`RetryPolicy::default`]; the client builder
    /// uses the client's retry policy unless [`crate::ClientBuilder::reconnect`] says otherwise).
    pub reconnect: RetryPolicy,
    /// `User-Agent` of the upgrade request.
    pub user_agent: String,
}

impl Default for WsOptions {
    fn default() -> Self {
        WsOptions {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            ping_interval: Some(Duration::from_secs(30)),
            pong_timeout: Duration::from_secs(10),
            reconnect: RetryPolicy::default(),
            user_agent: concat!("mediagate-client/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// Counters of a [`WsTransport`], for monitoring and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WsStats {
    /// Connection attempts, successful or not.
    pub connect_attempts: u64,
    /// Sockets that authenticated.
    pub connections: u64,
    /// Of those, how many resumed the previous session (same `connectionSessionUUID`).
    pub resumed: u64,
    /// Tasks resent after a reconnect because their answer had not arrived.
    pub resent_tasks: u64,
    /// Keepalive pings sent.
    pub pings_sent: u64,
    /// Sockets dropped because nothing arrived within the pong timeout after a ping.
    pub dead_connections: u64,
}

#[derive(Default)]
struct Counters {
    connect_attempts: AtomicU64,
    connections: AtomicU64,
    resumed: AtomicU64,
    resent_tasks: AtomicU64,
    pings_sent: AtomicU64,
    dead_connections: AtomicU64,
}

/// `http://host:port` → `ws://host:port/v1` (`https` → `wss`); `ws://` and `wss://` are kept and
/// `/v1` is appended unless present.
pub fn endpoint(base_url: &str) -> Result<String, Error> {
    let trimmed = base_url.trim().trim_end_matches('/');
    let full = if trimmed.ends_with("/v1") { trimmed.to_string() } else { format!("{trimmed}/v1") };
    let mut url = reqwest::Url::parse(&full)
        .map_err(|e| Error::Config(format!("invalid base URL '{base_url}': {e}")))?;
    let scheme = match url.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        _ => return Err(Error::Config(format!("base URL '{base_url}' must be http(s) or ws(s)"))),
    };
    if url.set_scheme(scheme).is_err() {
        return Err(Error::Config(format!("base URL '{base_url}' cannot be used for WebSocket")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Config("the base URL must not carry credentials; set the API key instead".into()));
    }
    Ok(url.to_string())
}

/// The WebSocket transport. See the [module documentation](self) for what it guarantees.
///
/// Created outside a Tokio runtime is fine: the background task starts with the first call.
pub struct WsTransport {
    shared: Arc<Shared>,
}

impl fmt::Debug for WsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsTransport")
            .field("endpoint", &self.shared.endpoint)
            .field("api_key", &self.shared.api_key)
            .field("options", &self.shared.opts)
            .finish()
    }
}

struct Shared {
    endpoint: String,
    api_key: ApiKey,
    opts: WsOptions,
    state: Mutex<State>,
    /// Wakes the driver when there is something to connect for.
    demand: Notify,
    closed: watch::Sender<bool>,
    counters: Counters,
    /// The `taskUUID` of keepalive pings (their answers are not routed to calls).
    keepalive: Uuid,
}

#[derive(Default)]
struct State {
    driver: Option<tokio::task::JoinHandle<()>>,
    next_call: u64,
    calls: HashMap<u64, Call>,
    /// Calls waiting for a `taskUUID`.
    waiting: HashMap<Uuid, Vec<u64>>,
    /// One entry per task sent without a `taskUUID`, in send order: answers that name no task
    /// go to the oldest.
    anonymous: VecDeque<u64>,
    auth_waiters: Vec<oneshot::Sender<Result<Envelope, Error>>>,
    live: Option<Live>,
    session: Option<String>,
}

/// The authenticated socket, as seen by callers.
struct Live {
    generation: u64,
    tx: mpsc::UnboundedSender<String>,
    auth: Envelope,
}

struct Call {
    body: Bytes,
    /// The generation of the socket it was last sent on (`None`: not sent yet).
    sent_on: Option<u64>,
    /// Tasks still unanswered, by taskUUID.
    pending: HashMap<Uuid, Pending>,
    anonymous_left: usize,
    /// `authentication` tasks in the array: the server skips them on an authenticated socket,
    /// so they are answered with the socket's authentication reply.
    auth_tasks: usize,
    data: Vec<Value>,
    errors: Vec<Value>,
    done: Option<oneshot::Sender<Result<Envelope, Error>>>,
}

struct Pending {
    task: Value,
    expect: usize,
    got: Vec<Value>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn uuid_of(v: &Value) -> Option<Uuid> {
    v.get("taskUUID").and_then(Value::as_str).and_then(|s| Uuid::try_parse(s).ok())
}

fn is_processing(v: &Value) -> bool {
    v.get("status").and_then(Value::as_str) == Some("processing")
}

/// How many `data` items answer a task: its `numberResults` for a generation delivered in the
/// response, else one (an acknowledgement, a `getResponse` answer, a ping, …).
fn expected_items(task: &Value) -> usize {
    let is_async = task.get("deliveryMethod").and_then(Value::as_str) == Some("async");
    match task.get("numberResults").and_then(Value::as_u64) {
        Some(n) if !is_async && n > 1 => n.min(10_000) as usize,
        _ => 1,
    }
}

impl State {
    /// Removes a call and its routing entries; returns it.
    fn take_call(&mut self, id: u64) -> Option<Call> {
        let call = self.calls.remove(&id)?;
        for u in call.pending.keys() {
            if let Some(v) = self.waiting.get_mut(u) {
                v.retain(|c| *c != id);
                if v.is_empty() {
                    self.waiting.remove(u);
                }
            }
        }
        self.anonymous.retain(|c| *c != id);
        Some(call)
    }

    /// Completes the call if nothing is left to wait for.
    fn finish_if_done(&mut self, id: u64) {
        let done = self.calls.get(&id).is_some_and(|c| c.pending.is_empty() && c.anonymous_left == 0);
        if done && let Some(mut call) = self.take_call(id) {
            let env = Envelope { data: call.data, errors: call.errors, http_status: None, retry_after: None };
            if let Some(tx) = call.done.take() {
                let _ = tx.send(Ok(env));
            }
        }
    }

    /// Gives the `data` items (`is_error`: the error objects) a frame carried for task `u` to
    /// every call waiting for it.
    fn deliver(&mut self, u: Uuid, values: &[Value], is_error: bool) {
        let Some(ids) = self.waiting.get(&u).cloned() else {
            return;
        };
        for id in ids {
            let Some(call) = self.calls.get_mut(&id) else { continue };
            let Some(p) = call.pending.get_mut(&u) else { continue };
            let complete = if is_error {
                call.errors.extend(values.iter().cloned());
                true
            } else {
                p.got.extend(values.iter().cloned());
                p.got.len() >= p.expect || values.len() > 1 || values.iter().any(is_processing)
            };
            if complete {
                if let Some(p) = call.pending.remove(&u) {
                    call.data.extend(p.got);
                }
                if let Some(w) = self.waiting.get_mut(&u) {
                    w.retain(|c| *c != id);
                    if w.is_empty() {
                        self.waiting.remove(&u);
                    }
                }
                self.finish_if_done(id);
            }
        }
    }

    /// An item or error naming no task: the oldest call with a task sent without a taskUUID.
    fn deliver_anonymous(&mut self, v: &Value, is_error: bool) {
        // A resume's notice that the session dropped results belongs to no call: the resent
        // tasks get their results by taskUUID all the same.
        if is_error && v.get("code").and_then(Value::as_str) == Some("sessionExpired") {
            return;
        }
        let Some(id) = self.anonymous.pop_front() else {
            return;
        };
        if let Some(call) = self.calls.get_mut(&id) {
            if is_error {
                call.errors.push(v.clone())
            } else {
                call.data.push(v.clone())
            }
            call.anonymous_left = call.anonymous_left.saturating_sub(1);
        }
        self.finish_if_done(id);
    }

    /// Routes one frame to the waiting calls.
    fn route(&mut self, env: &Envelope) {
        for (values, is_error) in [(&env.data, false), (&env.errors, true)] {
            // The frame's values per task, in order of first appearance.
            let mut groups: Vec<(Uuid, Vec<Value>)> = Vec::new();
            for v in values {
                match uuid_of(v) {
                    Some(u) => match groups.iter_mut().find(|(g, _)| *g == u) {
                        Some((_, vs)) => vs.push(v.clone()),
                        None => groups.push((u, vec![v.clone()])),
                    },
                    None => self.deliver_anonymous(v, is_error),
                }
            }
            for (u, vs) in groups {
                self.deliver(u, &vs, is_error);
            }
        }
    }

    /// Sends a call on the live socket: its original bytes the first time, its unanswered
    /// tasks (same taskUUIDs) after a reconnect. Returns the number of tasks resent.
    fn dispatch(&mut self, id: u64) -> u64 {
        let Some(live) = &self.live else { return 0 };
        let (generation, tx, auth) = (live.generation, live.tx.clone(), live.auth.clone());
        let Some(call) = self.calls.get_mut(&id) else { return 0 };
        if call.sent_on.is_some_and(|g| g >= generation) {
            return 0;
        }
        let resent = if call.sent_on.is_none() {
            let _ = tx.send(String::from_utf8_lossy(&call.body).into_owned());
            if call.auth_tasks > 0 {
                for _ in 0..call.auth_tasks {
                    call.data.extend(auth.data.iter().cloned());
                }
                call.auth_tasks = 0;
            }
            0
        } else {
            // The whole answer comes again: forget partial results so items are not doubled.
            let tasks: Vec<Value> = call
                .pending
                .values_mut()
                .map(|p| {
                    p.got.clear();
                    p.task.clone()
                })
                .collect();
            if !tasks.is_empty() {
                let _ = tx.send(Value::Array(tasks.clone()).to_string());
            }
            tasks.len() as u64
        };
        call.sent_on = Some(generation);
        self.finish_if_done(id);
        resent
    }

    /// Fails every waiting call and authentication with `e` (an authentication the server
    /// refused is an answer: it goes back as the envelope the server sent).
    fn fail_all(&mut self, e: &Error) {
        let answer = || match e {
            Error::Api(a) => Ok(Envelope {
                data: Vec::new(),
                errors: vec![a.to_json()],
                http_status: None,
                retry_after: None,
            }),
            other => Err(other.duplicate()),
        };
        let ids: Vec<u64> = self.calls.keys().copied().collect();
        for id in ids {
            if let Some(mut call) = self.take_call(id)
                && let Some(tx) = call.done.take()
            {
                let _ = tx.send(answer());
            }
        }
        for tx in self.auth_waiters.drain(..) {
            let _ = tx.send(answer());
        }
    }
}

/// Removes its call when the caller stops waiting (timeout, cancellation).
struct CallGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        lock(&self.shared.state).take_call(self.id);
    }
}

/// A socket that authenticated.
struct Connected {
    socket: Socket,
    auth: Envelope,
    session: String,
}

impl WsTransport {
    /// A transport for `base_url` (`ws://`, `wss://`, or `http(s)://` which is converted; `/v1`
    /// is appended unless present). Nothing connects until the first call.
    pub fn new(base_url: &str, api_key: ApiKey, options: WsOptions) -> Result<WsTransport, Error> {
        let endpoint = endpoint(base_url)?;
        if api_key.expose().is_empty() {
            return Err(Error::Config("the API key is empty".into()));
        }
        HeaderValue::from_str(&options.user_agent)
            .map_err(|_| Error::Config("the user agent is not a valid header value".into()))?;
        let (closed, _) = watch::channel(false);
        Ok(WsTransport {
            shared: Arc::new(Shared {
                endpoint,
                api_key,
                opts: options,
                state: Mutex::new(State::default()),
                demand: Notify::new(),
                closed,
                counters: Counters::default(),
                keepalive: Uuid::new_v4(),
            }),
        })
    }

    /// The URL it connects to.
    pub fn endpoint(&self) -> &str {
        &self.shared.endpoint
    }

    /// The `connectionSessionUUID` of the current (or last) session, once authenticated.
    pub fn session(&self) -> Option<String> {
        lock(&self.shared.state).session.clone()
    }

    /// Whether a socket is connected and authenticated right now.
    pub fn is_connected(&self) -> bool {
        lock(&self.shared.state).live.is_some()
    }

    /// The counters so far.
    pub fn stats(&self) -> WsStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        WsStats {
            connect_attempts: get(&c.connect_attempts),
            connections: get(&c.connections),
            resumed: get(&c.resumed),
            resent_tasks: get(&c.resent_tasks),
            pings_sent: get(&c.pings_sent),
            dead_connections: get(&c.dead_connections),
        }
    }

    /// Closes the socket with a close frame and stops the background task. Waiting calls fail
    /// with [`Error::Closed`], and so does every later call.
    pub async fn close(&self) {
        self.shared.closed.send_replace(true);
        let driver = {
            let mut st = lock(&self.shared.state);
            st.fail_all(&Error::Closed);
            st.driver.take()
        };
        if let Some(d) = driver {
            let _ = d.await;
        }
    }

    /// Starts the background task if it is not running; call with the state locked.
    fn ensure_driver(&self, st: &mut State) {
        if st.driver.as_ref().is_none_or(|d| d.is_finished()) {
            st.driver = Some(tokio::spawn(drive(self.shared.clone())));
        }
        self.shared.demand.notify_one();
    }
}

impl Drop for WsTransport {
    fn drop(&mut self) {
        // The background task sees this, sends a close frame and ends.
        self.shared.closed.send_replace(true);
    }
}

#[async_trait]
impl Transport for WsTransport {
    async fn send(&self, body: Bytes) -> Result<Envelope, Error> {
        let tasks = match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Array(a)) => a,
            Ok(obj @ Value::Object(_)) => vec![obj],
            _ => return Err(Error::Config("the body is not a JSON array of tasks".into())),
        };
        let (tx, rx) = oneshot::channel();
        let mut call = Call {
            body,
            sent_on: None,
            pending: HashMap::new(),
            anonymous_left: 0,
            auth_tasks: 0,
            data: Vec::new(),
            errors: Vec::new(),
            done: Some(tx),
        };
        for t in tasks {
            if t.get("taskType").and_then(Value::as_str) == Some("authentication") {
                call.auth_tasks += 1;
                continue;
            }
            match uuid_of(&t) {
                Some(u) => {
                    let expect = expected_items(&t);
                    call.pending.entry(u).or_insert(Pending { task: t, expect, got: Vec::new() });
                }
                None => call.anonymous_left += 1,
            }
        }
        let id = {
            let mut st = lock(&self.shared.state);
            if *self.shared.closed.borrow() {
                return Err(Error::Closed);
            }
            let id = st.next_call;
            st.next_call += 1;
            for u in call.pending.keys() {
                st.waiting.entry(*u).or_default().push(id);
            }
            for _ in 0..call.anonymous_left {
                st.anonymous.push_back(id);
            }
            st.calls.insert(id, call);
            if st.live.is_some() {
                st.dispatch(id);
            } else {
                self.ensure_driver(&mut st);
            }
            id
        };
        let _guard = CallGuard { shared: &self.shared, id };
        match tokio::time::timeout(self.shared.opts.request_timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::Timeout { after: self.shared.opts.request_timeout }),
        }
    }

    async fn authenticate(&self) -> Result<Envelope, Error> {
        let rx = {
            let mut st = lock(&self.shared.state);
            if *self.shared.closed.borrow() {
                return Err(Error::Closed);
            }
            if let Some(live) = &st.live {
                return Ok(live.auth.clone());
            }
            let (tx, rx) = oneshot::channel();
            st.auth_waiters.push(tx);
            self.ensure_driver(&mut st);
            rx
        };
        match tokio::time::timeout(self.shared.opts.request_timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::Timeout { after: self.shared.opts.request_timeout }),
        }
    }

    fn name(&self) -> &'static str {
        "websocket"
    }

    async fn close(&self) {
        WsTransport::close(self).await;
    }
}

/// A socket that drops sooner than this after connecting delays the next connection by a
/// backoff step.
const SHORT_LIVED: Duration = Duration::from_secs(2);

/// The background task: connects while there is demand, runs the socket, reconnects.
async fn drive(shared: Arc<Shared>) {
    let mut closed = shared.closed.subscribe();
    let mut generation = 0u64;
    let mut short_lived = 0u32;
    loop {
        // Wait for something to connect for.
        loop {
            if *closed.borrow() {
                return;
            }
            {
                let st = lock(&shared.state);
                if !st.calls.is_empty() || !st.auth_waiters.is_empty() {
                    break;
                }
            }
            tokio::select! {
                _ = shared.demand.notified() => {}
                _ = until_closed(&mut closed) => return,
            }
        }
        let sh: &Shared = &shared;
        let policy = &sh.opts.reconnect;
        let attempt = || async move {
            sh.counters.connect_attempts.fetch_add(1, Ordering::SeqCst);
            connect(sh).await
        };
        let verdict = |r: &Result<Connected, Error>| match r {
            Err(e) if e.is_retryable() => Verdict::Retry(None),
            _ => Verdict::Done,
        };
        let outcome = tokio::select! {
            o = retry::run(policy, policy.total_deadline, attempt, verdict) => o,
            _ = until_closed(&mut closed) => return,
        };
        match outcome.into_result() {
            Err(e) => lock(&shared.state).fail_all(&e),
            Ok(conn) => {
                generation += 1;
                let started = Instant::now();
                if run_socket(&shared, conn, generation, &mut closed).await {
                    return;
                }
                // A server that accepts and drops at once must not be hammered: a short-lived
                // socket counts as a failed attempt, with the policy's backoff before the next.
                if started.elapsed() < SHORT_LIVED {
                    short_lived += 1;
                    let wait = policy.jittered_backoff(short_lived - 1);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = until_closed(&mut closed) => return,
                    }
                } else {
                    short_lived = 0;
                }
            }
        }
    }
}

/// Resolves once the transport is closed (no `watch::Ref` is held across an await).
async fn until_closed(closed: &mut watch::Receiver<bool>) {
    let _ = closed.wait_for(|c| *c).await;
}

fn connect_error(e: tokio_tungstenite::tungstenite::Error) -> Error {
    Error::Connect { message: e.to_string(), source: Some(Box::new(e)) }
}

/// One connection attempt: connect, upgrade, authenticate (resuming the saved session).
async fn connect(shared: &Shared) -> Result<Connected, Error> {
    let limit = shared.opts.connect_timeout;
    let session = lock(&shared.state).session.clone();
    let attempt = async {
        let mut req = shared
            .endpoint
            .as_str()
            .into_client_request()
            .map_err(|e| Error::Config(format!("invalid WebSocket URL: {e}")))?;
        if let Ok(ua) = HeaderValue::from_str(&shared.opts.user_agent) {
            req.headers_mut().insert("user-agent", ua);
        }
        let (mut socket, _) = tokio_tungstenite::connect_async(req).await.map_err(connect_error)?;
        let mut auth = json!({"taskType": "authentication", "apiKey": shared.api_key.expose()});
        if let Some(s) = &session {
            auth["connectionSessionUUID"] = json!(s);
        }
        socket.send(Message::text(json!([auth]).to_string())).await.map_err(connect_error)?;
        let text = loop {
            match socket.next().await {
                Some(Ok(Message::Text(t))) => break t,
                Some(Ok(Message::Close(_))) | None => {
                    return Err(Error::Connect {
                        message: "the server closed the socket before answering the authentication".into(),
                        source: None,
                    });
                }
                Some(Err(e)) => return Err(connect_error(e)),
                Some(Ok(_)) => continue,
            }
        };
        let env = serde_json::from_str::<Value>(text.as_str())
            .ok()
            .and_then(|v| Envelope::from_json(v, None, None))
            .ok_or_else(|| Error::Protocol("the authentication reply is not a Runware envelope".into()))?;
        if let Some(e) = env.errors.first() {
            let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
            return Err(Error::api(ApiError::from_json(e, None)));
        }
        let session = env
            .data
            .iter()
            .find(|d| d.get("taskType").and_then(Value::as_str) == Some("authentication"))
            .and_then(|d| d.get("connectionSessionUUID"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| Error::Protocol("the authentication reply has no connectionSessionUUID".into()))?;
        Ok(Connected { socket, auth: env, session })
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok(r) => r,
        Err(_) => Err(Error::Connect {
            message: format!("no authenticated connection within {limit:?}"),
            source: None,
        }),
    }
}

/// Runs one authenticated socket until it drops or the transport closes (returns true then).
async fn run_socket(
    shared: &Shared,
    conn: Connected,
    generation: u64,
    closed: &mut watch::Receiver<bool>,
) -> bool {
    let Connected { mut socket, auth, session } = conn;
    let (tx, mut outbound) = mpsc::unbounded_channel::<String>();
    let c = &shared.counters;
    c.connections.fetch_add(1, Ordering::SeqCst);
    // After a resumed authentication the server first writes the backlog; a ping sent now is
    // answered after it. Unanswered tasks are resent when that pong arrives, not before.
    let mut resync: Option<Uuid> = None;
    {
        let mut st = lock(&shared.state);
        let resumed = st.session.as_deref() == Some(session.as_str());
        if resumed {
            c.resumed.fetch_add(1, Ordering::SeqCst);
        }
        st.session = Some(session);
        st.live = Some(Live { generation, tx: tx.clone(), auth: auth.clone() });
        for w in st.auth_waiters.drain(..) {
            let _ = w.send(Ok(auth.clone()));
        }
        let ids: Vec<u64> = st.calls.keys().copied().collect();
        let mut resent = 0;
        for id in ids {
            let sent_before = st.calls.get(&id).is_some_and(|c| c.sent_on.is_some());
            if sent_before && resumed {
                resync.get_or_insert_with(Uuid::new_v4);
            } else {
                resent += st.dispatch(id);
            }
        }
        c.resent_tasks.fetch_add(resent, Ordering::SeqCst);
        if let Some(marker) = resync {
            let _ = tx.send(json!([{"taskType": "ping", "ping": true, "taskUUID": marker}]).to_string());
        }
    }
    drop(tx);

    // A frame that cannot be written within a call's whole time limit will not help any call;
    // the socket is then taken for dead (a blocked write also holds up the pong deadline).
    let write_limit = shared.opts.request_timeout.max(shared.opts.pong_timeout);
    let mut ping = shared.opts.ping_interval.map(|p| {
        let mut i = tokio::time::interval_at(Instant::now() + p, p);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    // When a ping went out with nothing received since.
    let mut unanswered_since: Option<Instant> = None;
    let closing = loop {
        let pong_deadline = unanswered_since.map(|t| t + shared.opts.pong_timeout);
        tokio::select! {
            _ = until_closed(closed) => break true,
            frame = socket.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    unanswered_since = None;
                    on_text(shared, t.as_str(), &mut resync);
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break false,
                Some(Ok(_)) => unanswered_since = None,
            },
            Some(text) = outbound.recv() => {
                let sent = tokio::time::timeout(write_limit, socket.send(Message::text(text))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    break false;
                }
            }
            _ = async { ping.as_mut().expect("guarded").tick().await }, if ping.is_some() => {
                let p = json!([{"taskType": "ping", "ping": true, "taskUUID": shared.keepalive}]);
                let sent = tokio::time::timeout(write_limit, socket.send(Message::text(p.to_string()))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    break false;
                }
                c.pings_sent.fetch_add(1, Ordering::SeqCst);
                unanswered_since.get_or_insert_with(Instant::now);
            }
            _ = async { tokio::time::sleep_until(pong_deadline.expect("guarded")).await },
                if pong_deadline.is_some() => {
                c.dead_connections.fetch_add(1, Ordering::SeqCst);
                break false;
            }
        }
    };
    {
        let mut st = lock(&shared.state);
        if st.live.as_ref().is_some_and(|l| l.generation == generation) {
            st.live = None;
        }
    }
    if closing {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = socket.close(None).await;
            // Wait for the server's close frame so the close handshake completes.
            while let Some(Ok(m)) = socket.next().await {
                if m.is_close() {
                    break;
                }
            }
        })
        .await;
    }
    closing
}

/// A text frame from the server: keepalive and resync pongs are handled here, the rest routed.
fn on_text(shared: &Shared, text: &str, resync: &mut Option<Uuid>) {
    let Some(env) = serde_json::from_str::<Value>(text).ok().and_then(|v| Envelope::from_json(v, None, None))
    else {
        // Not a Runware envelope: it names no task, so nobody can be waiting for it.
        return;
    };
    let own = |v: &Value, u: Uuid| {
        v.get("taskType").and_then(Value::as_str) == Some("ping") && uuid_of(v) == Some(u)
    };
    let marker = *resync;
    let mut st = lock(&shared.state);
    if let Some(m) = marker
        && env.data.iter().any(|d| own(d, m))
    {
        // The backlog has been delivered: resend what is still unanswered.
        *resync = None;
        let ids: Vec<u64> = st.calls.keys().copied().collect();
        let resent: u64 = ids.into_iter().map(|id| st.dispatch(id)).sum();
        shared.counters.resent_tasks.fetch_add(resent, Ordering::SeqCst);
    }
    let keepalive = shared.keepalive;
    let routed = Envelope {
        data: env
            .data
            .into_iter()
            .filter(|d| !own(d, keepalive) && marker.is_none_or(|m| !own(d, m)))
            .collect(),
        ..env
    };
    st.route(&routed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(endpoint("http://127.0.0.1:8800").unwrap(), "ws://127.0.0.1:8800/v1");
        assert_eq!(endpoint("https://api.example.com/v1/").unwrap(), "wss://api.example.com/v1");
        assert_eq!(endpoint("ws://h:1").unwrap(), "ws://h:1/v1");
        assert_eq!(endpoint("wss://h/v1").unwrap(), "wss://h/v1");
        assert!(endpoint("ftp://x").is_err());
        assert!(endpoint("ws://u:p@h").is_err());
    }

    #[test]
    fn expected_items_follow_number_results_unless_async() {
        assert_eq!(expected_items(&json!({"numberResults": 3})), 3);
        assert_eq!(expected_items(&json!({"numberResults": 3, "deliveryMethod": "async"})), 1);
        assert_eq!(expected_items(&json!({"taskType": "ping"})), 1);
    }

    #[test]
    fn debug_never_shows_the_key() {
        let t = WsTransport::new("ws://127.0.0.1:1", ApiKey::new("key_supersecret"), WsOptions::default())
            .unwrap();
        assert!(!format!("{t:?}").contains("supersecret"));
    }

    fn call(state: &mut State, tasks: Value) -> (u64, oneshot::Receiver<Result<Envelope, Error>>) {
        let (tx, rx) = oneshot::channel();
        let mut c = Call {
            body: Bytes::from(tasks.to_string()),
            sent_on: Some(1),
            pending: HashMap::new(),
            anonymous_left: 0,
            auth_tasks: 0,
            data: vec![],
            errors: vec![],
            done: Some(tx),
        };
        for t in tasks.as_array().unwrap() {
            match uuid_of(t) {
                Some(u) => {
                    c.pending.insert(u, Pending { task: t.clone(), expect: expected_items(t), got: vec![] });
                }
                None => c.anonymous_left += 1,
            }
        }
        let id = state.next_call;
        state.next_call += 1;
        for u in c.pending.keys() {
            state.waiting.entry(*u).or_default().push(id);
        }
        for _ in 0..c.anonymous_left {
            state.anonymous.push_back(id);
        }
        state.calls.insert(id, c);
        (id, rx)
    }

    #[test]
    fn frames_are_routed_by_task_uuid_and_results_counted() {
        let mut st = State::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let (_, mut rx) = call(
            &mut st,
            json!([{"taskType": "imageInference", "taskUUID": a, "numberResults": 2},
                   {"taskType": "imageInference", "taskUUID": b}]),
        );
        let frame = |v: Value| Envelope::from_json(v, None, None).unwrap();
        // One item of two, one frame at a time (Runware style): not finished yet.
        st.route(&frame(json!({"data": [{"taskUUID": a, "n": 1}]})));
        st.route(&frame(json!({"errors": [{"taskUUID": b, "code": "invalidParameterValue"}]})));
        assert!(rx.try_recv().is_err());
        // Someone else's result is ignored.
        st.route(&frame(json!({"data": [{"taskUUID": Uuid::new_v4()}]})));
        st.route(&frame(json!({"data": [{"taskUUID": a, "n": 2}]})));
        let env = rx.try_recv().unwrap().unwrap();
        assert_eq!(env.data.len(), 2);
        assert_eq!(env.errors.len(), 1);
        assert_eq!(env.http_status, None);
        assert!(st.calls.is_empty() && st.waiting.is_empty());
        // A late duplicate goes nowhere.
        st.route(&frame(json!({"data": [{"taskUUID": a, "n": 2}]})));

        // Several items in one frame (mediagate style) are the whole result; an acknowledgement
        // answers at once.
        let (c, d) = (Uuid::new_v4(), Uuid::new_v4());
        let (_, mut rx) = call(
            &mut st,
            json!([{"taskUUID": c, "numberResults": 4}, {"taskUUID": d, "numberResults": 4}, {"taskType": "ping"}]),
        );
        st.route(&frame(json!({"data": [{"taskUUID": c}, {"taskUUID": c}, {"taskUUID": c}]})));
        st.route(&frame(json!({"data": [{"taskUUID": d, "status": "processing"}]})));
        assert!(rx.try_recv().is_err(), "the anonymous ping is unanswered");
        st.route(&frame(json!({"data": [{"taskType": "ping", "pong": true}]})));
        assert_eq!(rx.try_recv().unwrap().unwrap().data.len(), 5);
    }

    #[test]
    fn failing_all_answers_refused_authentication_as_an_envelope() {
        let mut st = State::default();
        let (_, mut rx1) = call(&mut st, json!([{"taskUUID": Uuid::new_v4()}]));
        let api = ApiError::from_json(
            &json!({"code": "invalidApiKey", "message": "no", "parameter": "apiKey"}),
            None,
        );
        st.fail_all(&Error::api(api.clone()));
        let env = rx1.try_recv().unwrap().unwrap();
        assert_eq!(env.api_errors(), vec![api]);
        let (_, mut rx2) = call(&mut st, json!([{"taskUUID": Uuid::new_v4()}]));
        st.fail_all(&Error::Connect { message: "refused".into(), source: None });
        assert!(matches!(rx2.try_recv().unwrap(), Err(Error::Connect { .. })));
        assert!(st.calls.is_empty() && st.waiting.is_empty() && st.anonymous.is_empty());
    }
}
