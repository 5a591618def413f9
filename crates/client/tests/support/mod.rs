//! Shared helpers: clients pointed at a real in-process server (directly or through the
//! flaky proxy).

#![allow(dead_code)]

use mediagate_client::{Client, RetryPolicy};
use mediagate_testkit::TestServer;
use std::time::Duration;

/// The procedural model's price per image, in micro-dollars.
pub const IMAGE_PRICE_MICROS: i64 = 600;

/// A client for the server's bootstrap key with fast retries.
pub fn client(s: &TestServer) -> Client {
    client_for(&s.base_url, &s.api_key, fast_retries())
}

/// A client for `url` with `key` and `retry`.
pub fn client_for(url: &str, key: &str, retry: RetryPolicy) -> Client {
    Client::builder()
        .base_url(url)
        .api_key(key)
        .request_timeout(Duration::from_secs(30))
        .retry(retry)
        .build()
        .expect("client")
}

/// Retries with short backoffs so tests stay quick.
pub fn fast_retries() -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(4)
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .total_deadline(Duration::from_secs(30))
}

pub mod relay;

use mediagate_client::{WsOptions, WsTransport};
use std::sync::Arc;

/// WebSocket settings for tests: quick reconnects, no keepalive unless a test asks.
pub fn ws_options() -> WsOptions {
    WsOptions {
        connect_timeout: Duration::from_secs(20),
        request_timeout: Duration::from_secs(30),
        ping_interval: None,
        pong_timeout: Duration::from_secs(10),
        reconnect: fast_retries(),
        ..WsOptions::default()
    }
}

/// A WebSocket client for `url` (http or ws) and its transport, to read its counters.
pub fn ws_client(url: &str, key: &str, opts: WsOptions) -> (Client, Arc<WsTransport>) {
    let t = Arc::new(WsTransport::new(url, key.into(), opts).expect("ws transport"));
    let c = Client::builder().transport(t.clone()).retry(fast_retries()).build().expect("client");
    (c, t)
}
