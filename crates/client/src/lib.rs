//! Rust client SDK for mediagate and any server speaking Runware's wire dialect.
//!
//! ```no_run
//! use mediagate_client::{Client, tasks::ImageInference};
//!
//! # async fn demo() -> Result<(), mediagate_client::Error> {
//! let client = Client::builder().base_url("http://127.0.0.1:8800").api_key("key_…").build()?;
//! let images = client.run(ImageInference::new("a lighthouse at dusk").size(512, 512).include_cost(true)).await?;
//! println!("{:?} cost ${:?}", images[0].image.url(), images[0].cost);
//! # Ok(()) }
//! ```
//!
//! What it guarantees:
//!
//! - **Typed tasks** ([`tasks`]) for every task type mediagate serves, each with a client-generated
//!   UUID v4 `taskUUID`; [`tasks::CustomTask`] for any other.
//! - **One error type** ([`Error`]): server error objects keep every field (`code`, `message`,
//!   `parameter` — one or several —, `taskType`, `taskUUID`, `documentation`, anything else)
//!   plus the HTTP status; transport failures stay distinct (connect, timeout, I/O, protocol).
//! - **Safe retries** ([`retry`]): only transient failures, exponential backoff with full jitter,
//!   `retry-after-ms` / `Retry-After` honoured, bounded attempts and a total deadline. The retried
//!   body is byte-identical, so the server's taskUUID idempotency answers a task that already ran
//!   from its store: no duplicate task, no double charge.
//! - **Batches** ([`Batch`]): one failed task never hides its siblings' results.
//! - **Async delivery** ([`poll`]): submit, then poll `getResponse` with a growing interval under
//!   an overall budget.
//!
//! - **Two transports, one API** ([`transport::Transport`]): REST ([`rest::RestTransport`], the
//!   default) and WebSocket ([`ws::WsTransport`]: authentication on connect, keepalive pings with
//!   a pong deadline, reconnection with backoff that resumes the session by its
//!   `connectionSessionUUID`, unanswered tasks resent with the same taskUUID). Pick WebSocket
//!   with [`ClientBuilder::websocket`] or a `ws://` / `wss://` base URL:
//!
//! ```no_run
//! # async fn demo() -> Result<(), mediagate_client::Error> {
//! use mediagate_client::{Client, tasks::ImageInference};
//! let client = Client::builder().base_url("ws://127.0.0.1:8800").api_key("key_…").build()?;
//! let session = client.authenticate().await?; // connects; optional, the first task would too
//! println!("session {:?}", session.connection_session_uuid);
//! let images = client.run(ImageInference::new("a lighthouse at dusk").size(512, 512)).await?;
//! client.close().await; // close frame; dropping the last clone does it too
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod batch;
pub mod error;
pub mod poll;
pub mod rest;
pub mod retry;
pub mod tasks;
pub mod transport;
pub mod ws;

pub use batch::{Batch, BatchResults, Handle};
pub use error::{ApiError, Code, Error, GaveUp, Parameter};
pub use mediagate_core::ErrorCode;
pub use poll::{PollPolicy, Submitted};
pub use retry::RetryPolicy;
pub use transport::{Session, Transport};
pub use ws::{WsOptions, WsStats, WsTransport};

use bytes::Bytes;
use rest::{RestOptions, RestTransport};
use retry::Verdict;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tasks::{GetResponse, Ping, Pong, ResponseItem, Task};
use transport::Envelope;
use uuid::Uuid;

/// An API key. Its `Debug` never shows it and it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(Arc<str>);

impl ApiKey {
    /// Wraps a key (surrounding whitespace, a common cause of 401s, is trimmed).
    pub fn new(key: impl AsRef<str>) -> Self {
        ApiKey(Arc::from(key.as_ref().trim()))
    }

    /// The key itself, for a transport to send.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl<S: AsRef<str>> From<S> for ApiKey {
    fn from(s: S) -> Self {
        ApiKey::new(s)
    }
}

/// Builds a [`Client`].
#[derive(Debug, Default)]
pub struct ClientBuilder {
    base_url: Option<String>,
    api_key: Option<ApiKey>,
    rest: RestOptions,
    retry: RetryPolicy,
    poll: PollPolicy,
    transport: Option<Arc<dyn Transport>>,
    websocket: bool,
    ws_ping: Option<(Option<Duration>, Duration)>,
    reconnect: Option<RetryPolicy>,
}

impl ClientBuilder {
    /// The server, e.g. `http://127.0.0.1:8800` (`/v1` is appended unless present). A `ws://`
    /// or `wss://` URL selects the WebSocket transport.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// The API key.
    pub fn api_key(mut self, key: impl Into<ApiKey>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Limit for establishing a connection (default 10 s). On WebSocket it also covers the
    /// upgrade and the authentication reply.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.rest.connect_timeout = d;
        self
    }

    /// Limit for one attempt, from sending to the complete reply (default 120 s). Sync
    /// generation holds the request open, so keep it above the slowest task you run. On
    /// WebSocket: the limit for one call to get all its answers (across reconnects).
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.rest.request_timeout = d;
        self
    }

    /// `User-Agent` (default `mediagate-client/<version>`).
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.rest.user_agent = ua.into();
        self
    }

    /// The retry policy (default [`RetryPolicy::default`]).
    pub fn retry(mut self, p: RetryPolicy) -> Self {
        self.retry = p;
        self
    }

    /// The polling policy for async delivery (default [`PollPolicy::default`]).
    pub fn poll(mut self, p: PollPolicy) -> Self {
        self.poll = p;
        self
    }

    /// Uses the WebSocket transport ([`ws::WsTransport`]) instead of REST; an `http(s)://` base
    /// URL becomes `ws(s)://`. Timeouts and user agent apply to it too.
    pub fn websocket(mut self) -> Self {
        self.websocket = true;
        self
    }

    /// WebSocket keepalive: a `ping` every `interval` (`None`: none), and a socket with nothing
    /// received within `pong_timeout` of a ping is replaced (default 30 s and 10 s).
    pub fn ws_ping(mut self, interval: Option<Duration>, pong_timeout: Duration) -> Self {
        self.ws_ping = Some((interval, pong_timeout));
        self
    }

    /// How the WebSocket transport retries connecting, on the first call and after a lost
    /// socket (default: the client's [`RetryPolicy`]). When it gives up, waiting calls fail
    /// with [`Error::Exhausted`] around the last connect failure.
    pub fn reconnect(mut self, p: RetryPolicy) -> Self {
        self.reconnect = Some(p);
        self
    }

    /// Uses this transport instead of REST (base URL, key and timeouts are then the
    /// transport's business).
    pub fn transport(mut self, t: Arc<dyn Transport>) -> Self {
        self.transport = Some(t);
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client, Error> {
        let transport = match self.transport {
            Some(t) => t,
            None => {
                let base = self.base_url.ok_or_else(|| Error::Config("no base URL set".into()))?;
                let key = self.api_key.ok_or_else(|| Error::Config("no API key set".into()))?;
                if key.expose().is_empty() {
                    return Err(Error::Config("the API key is empty".into()));
                }
                let ws_url =
                    base.trim_start().starts_with("ws://") || base.trim_start().starts_with("wss://");
                if self.websocket || ws_url {
                    let defaults = WsOptions::default();
                    let (ping_interval, pong_timeout) =
                        self.ws_ping.unwrap_or((defaults.ping_interval, defaults.pong_timeout));
                    let opts = WsOptions {
                        connect_timeout: self.rest.connect_timeout,
                        request_timeout: self.rest.request_timeout,
                        ping_interval,
                        pong_timeout,
                        reconnect: self.reconnect.unwrap_or_else(|| self.retry.clone()),
                        user_agent: self.rest.user_agent.clone(),
                    };
                    Arc::new(WsTransport::new(&base, key, opts)?) as Arc<dyn Transport>
                } else {
                    Arc::new(RestTransport::new(&base, key, self.rest)?) as Arc<dyn Transport>
                }
            }
        };
        Ok(Client { inner: Arc::new(Inner { transport, retry: self.retry, poll: self.poll }) })
    }
}

struct Inner {
    transport: Arc<dyn Transport>,
    retry: RetryPolicy,
    poll: PollPolicy,
}

/// A client for a Runware-dialect server. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("transport", &self.inner.transport)
            .field("retry", &self.inner.retry)
            .field("poll", &self.inner.poll)
            .finish()
    }
}

/// Retry transient failures: replies the transport marks transient, retryable errors. An
/// [`Error::Exhausted`] from the transport (the WebSocket reconnect policy gave up) already
/// spent its retries and is not retried again.
fn verdict(r: &Result<Envelope, Error>) -> Verdict {
    match r {
        Ok(env) if env.is_transient_failure() => Verdict::Retry(env.retry_after),
        Ok(_) => Verdict::Done,
        Err(Error::Exhausted { .. }) => Verdict::Done,
        Err(e) if e.is_retryable() => Verdict::Retry(e.retry_after()),
        Err(_) => Verdict::Done,
    }
}

impl Client {
    /// A builder.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client for `base_url` with default settings: REST, or WebSocket for a `ws://` /
    /// `wss://` URL.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<ApiKey>) -> Result<Client, Error> {
        Client::builder().base_url(base_url).api_key(api_key).build()
    }

    /// A client from `MEDIAGATE_URL` (default `http://127.0.0.1:8800`; `ws://` for WebSocket)
    /// and `MEDIAGATE_API_KEY`.
    pub fn from_env() -> Result<Client, Error> {
        let url = std::env::var("MEDIAGATE_URL").unwrap_or_else(|_| "http://127.0.0.1:8800".into());
        let key = std::env::var("MEDIAGATE_API_KEY")
            .map_err(|_| Error::Config("MEDIAGATE_API_KEY is not set".into()))?;
        Client::new(url, key)
    }

    /// The transport in use (`rest` or `websocket` by [`Transport::name`]).
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.inner.transport
    }

    /// Closes the transport's connections (on WebSocket: a close frame; calls still waiting and
    /// later calls fail with [`Error::Closed`]). Dropping the last clone closes it too.
    pub async fn close(&self) {
        self.inner.transport.close().await;
    }

    /// The retry policy in use.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.retry
    }

    /// The polling policy in use.
    pub fn poll_policy(&self) -> &PollPolicy {
        &self.inner.poll
    }

    /// Runs one task and returns its typed result. With async delivery (asked for, or chosen by
    /// the server, which then acknowledges with `status: "processing"`) it submits, then polls
    /// `getResponse` under the client's [`PollPolicy`].
    pub async fn run<T: Task>(&self, task: T) -> Result<T::Output, Error> {
        let s = self.submit(task).await?;
        self.wait(&s).await
    }

    /// Sends several tasks in one request. `Err` only when the request failed as a whole; each
    /// task's own result or error is in the [`BatchResults`].
    pub async fn run_batch(&self, batch: Batch) -> Result<BatchResults, Error> {
        self.run_batch_within(batch, self.inner.retry.total_deadline).await
    }

    async fn run_batch_within(&self, batch: Batch, deadline: Duration) -> Result<BatchResults, Error> {
        if batch.is_empty() {
            return Err(Error::Config("a batch needs at least one task".into()));
        }
        // Serialized once: every retry sends these exact bytes.
        let body = Bytes::from(batch.to_body());
        let t = &self.inner.transport;
        let out = retry::run(&self.inner.retry, deadline, || t.send(body.clone()), verdict).await;
        let (attempts, elapsed, gave_up) = (out.attempts, out.elapsed, out.gave_up);
        let env = out.into_result()?;
        BatchResults::from_envelope(env, &batch.uuids, attempts, elapsed, gave_up)
    }

    /// Submits a task and returns without waiting for async results; [`Client::wait`] gets them.
    /// (A task with sync delivery is already finished when this returns.)
    pub async fn submit<T: Task>(&self, task: T) -> Result<Submitted<T>, Error> {
        let mut b = Batch::new();
        let h = b.push(task);
        self.run_batch(b).await?.submitted(&h)
    }

    /// Waits for a submitted task under the client's [`PollPolicy`].
    pub async fn wait<T: Task>(&self, s: &Submitted<T>) -> Result<T::Output, Error> {
        poll::wait(self, s, &self.inner.poll).await
    }

    /// Waits for a submitted task under `policy`.
    pub async fn wait_with<T: Task>(
        &self,
        s: &Submitted<T>,
        policy: &PollPolicy,
    ) -> Result<T::Output, Error> {
        poll::wait(self, s, policy).await
    }

    /// One `getResponse`: the current items of an earlier task.
    pub async fn get_response(&self, task_uuid: Uuid) -> Result<Vec<ResponseItem>, Error> {
        self.get_response_within(task_uuid, self.inner.retry.total_deadline).await
    }

    pub(crate) async fn get_response_within(
        &self,
        task_uuid: Uuid,
        deadline: Duration,
    ) -> Result<Vec<ResponseItem>, Error> {
        let mut b = Batch::new();
        let h = b.push(GetResponse::new(task_uuid));
        let deadline = deadline.min(self.inner.retry.total_deadline);
        self.run_batch_within(b, deadline).await?.get(&h)
    }

    /// `ping`: checks the server answers (and that the key is accepted).
    pub async fn ping(&self) -> Result<Pong, Error> {
        self.run(Ping::new()).await
    }

    /// `authentication`: checks the API key with the server's `authentication` task.
    pub async fn authenticate(&self) -> Result<Session, Error> {
        let t = &self.inner.transport;
        let out =
            retry::run(&self.inner.retry, self.inner.retry.total_deadline, || t.authenticate(), verdict)
                .await;
        let (attempts, elapsed, gave_up) = (out.attempts, out.elapsed, out.gave_up);
        let env = out.into_result()?;
        if let Some(e) = env.api_errors().into_iter().next() {
            let err = Error::api(e);
            return Err(match gave_up {
                Some(reason) if err.is_retryable() => {
                    Error::Exhausted { attempts, elapsed, reason, last: Box::new(err) }
                }
                _ => err,
            });
        }
        let item =
            env.data.iter().find(|d| d.get("taskType").and_then(|t| t.as_str()) == Some("authentication"));
        match item {
            Some(d) => Ok(Session {
                connection_session_uuid: d
                    .get("connectionSessionUUID")
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
            }),
            None => Err(Error::Protocol("the authentication reply has no authentication item".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_the_key() {
        let c = Client::new("http://127.0.0.1:9", "key_0123456789abcdef").unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("0123456789abcdef"), "{d}");
        assert!(d.contains("redacted"));
        let b = Client::builder().api_key("key_0123456789abcdef");
        assert!(!format!("{b:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn client_and_error_are_thread_safe() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<Client>();
        send_sync::<Error>();
        send_sync::<BatchResults>();
    }

    #[test]
    fn configuration_errors() {
        assert!(matches!(Client::builder().api_key("k").build(), Err(Error::Config(_))));
        assert!(matches!(Client::builder().base_url("http://x").build(), Err(Error::Config(_))));
        assert!(matches!(Client::new("http://x", "  "), Err(Error::Config(_))));
    }
}
