//! The WebSocket transport against a real server on a loopback port: the same typed API as
//! REST, error objects with every field, keepalive, and the failures a long-lived socket meets
//! (cut while a task runs, half-open, server down) — each task still answered and charged once.

mod support;

use base64::Engine as _;
use mediagate_client::tasks::{
    CustomTask, Delivery, ImageInference, MediaData, OutputType, Ping, Status, Upscale,
};
use mediagate_client::{
    Batch, Client, Code, Error, ErrorCode, GaveUp, Parameter, PollPolicy, RetryPolicy, WsOptions,
};
use mediagate_core::model::{ModelSpec, RetryPolicy as ModelRetry, builtin_models};
use mediagate_core::task::TaskType;
use mediagate_engine::config::Config;
use mediagate_providers::upstream::{UpstreamConfig, UpstreamKind};
use mediagate_testkit::TestServer;
use mediagate_testkit::mock_upstream::{MockUpstream, Reply, openai_b64_reply, png};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::relay::Relay;
use support::{IMAGE_PRICE_MICROS, client, fast_retries, ws_client, ws_options};
use uuid::Uuid;

/// A WebSocket client straight to the server.
fn ws(s: &TestServer) -> (Client, std::sync::Arc<mediagate_client::WsTransport>) {
    ws_client(&s.base_url, &s.api_key, ws_options())
}

// --- the same API as REST ----------------------------------------------------------------------

#[tokio::test]
async fn the_transport_is_chosen_by_url_or_builder_and_authentication_returns_a_session() {
    let s = TestServer::start().await;
    let by_url = Client::new(s.base_url.replace("http://", "ws://"), s.api_key.clone()).unwrap();
    assert_eq!(by_url.transport().name(), "websocket");
    let by_builder = Client::builder().base_url(&s.base_url).api_key(&s.api_key).websocket().build().unwrap();
    assert_eq!(by_builder.transport().name(), "websocket");
    assert_eq!(client(&s).transport().name(), "rest");

    let session = by_builder.authenticate().await.unwrap();
    let id = session.connection_session_uuid.expect("WebSocket sessions have an id");
    assert!(Uuid::try_parse(&id).is_ok(), "{id}");
    assert!(by_builder.ping().await.unwrap().pong);
    // Same socket, same session.
    assert_eq!(by_builder.authenticate().await.unwrap().connection_session_uuid, Some(id));

    let (c, t) = ws(&s);
    assert!(c.ping().await.unwrap().pong);
    assert_eq!(t.stats().connections, 1);
    assert!(t.is_connected());
    c.close().await;
    assert!(!t.is_connected());
    assert!(matches!(c.ping().await, Err(Error::Closed)), "a closed transport stays closed");
}

#[tokio::test]
async fn image_inference_over_websocket_with_cost_seed_and_several_results() {
    let s = TestServer::start().await;
    let (c, _t) = ws(&s);
    let before = s.balance("default").await;
    let task = ImageInference::new("a lighthouse at dusk").size(128, 64).seed(42).include_cost(true);
    let uuid = task.task_uuid().to_string();
    let images = c.run(task).await.expect("image");
    assert_eq!(images.len(), 1);
    let img = &images[0];
    assert_eq!((img.task_type.as_str(), img.task_uuid.as_str()), ("imageInference", uuid.as_str()));
    assert_eq!((img.seed, img.cost), (Some(42), Some(0.0006)));
    let url = img.image.url().expect("URL output by default");
    assert_eq!(s.http.get(url).send().await.unwrap().status(), 200);
    assert_eq!(s.balance("default").await, before - IMAGE_PRICE_MICROS);

    let many =
        c.run(ImageInference::new("three of them").size(64, 64).seed(7).number_results(3)).await.unwrap();
    let seeds: Vec<u64> = many.iter().map(|i| i.seed.unwrap()).collect();
    assert_eq!(seeds, vec![7, 8, 9], "every result of the task, each its own seed");

    let b64 = c
        .run(ImageInference::new("a red square").size(64, 64).output_type(OutputType::Base64Data))
        .await
        .unwrap();
    let MediaData::Base64(data) = &b64[0].image else { panic!("base64 expected: {:?}", b64[0].image) };
    let bytes = base64::engine::general_purpose::STANDARD.decode(data).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
}

#[tokio::test]
async fn upscale_over_websocket() {
    let s = TestServer::start().await;
    let (c, _t) = ws(&s);
    let src = c.run(ImageInference::new("something to enlarge").size(128, 192)).await.unwrap();
    let up = c
        .run(
            Upscale::new(&src[0].image_uuid).factor(2).output_type(OutputType::Base64Data).include_cost(true),
        )
        .await
        .unwrap();
    assert_eq!((up.task_type.as_str(), up.cost), ("upscale", Some(0.0002)));
    let png = base64::engine::general_purpose::STANDARD.decode(up.image.base64().unwrap()).unwrap();
    let size = |b: &[u8]| {
        (u32::from_be_bytes(b[16..20].try_into().unwrap()), u32::from_be_bytes(b[20..24].try_into().unwrap()))
    };
    assert_eq!(size(&png), (256, 384));
    let legacy = c.run(Upscale::new(&src[0].image_uuid).factor(3).legacy_task_type()).await.unwrap();
    assert_eq!(legacy.task_type, "imageUpscale");
}

#[tokio::test]
async fn a_batch_keeps_each_result_and_error_apart_over_websocket() {
    let s = TestServer::start().await;
    let (c, _t) = ws(&s);
    let mut b = Batch::new();
    let ok = b.push(ImageInference::new("fine").size(64, 64));
    let bad = b.push(ImageInference::new("odd width").size(100, 64));
    let ping = b.push(Ping::new());
    let unknown =
        b.push(CustomTask::new("imageInference").param("positivePrompt", "x y").param("colour", "red"));
    let before = s.balance("default").await;
    let r = c.run_batch(b).await.expect("the request as a whole succeeded");
    assert_eq!((r.http_status(), r.attempts()), (None, 1));
    assert_eq!(r.get(&ok).unwrap().len(), 1);
    assert!(r.get(&ping).unwrap().pong);
    assert_eq!(r.get(&bad).unwrap_err().code(), Some(ErrorCode::InvalidParameterValue));
    assert_eq!(r.get(&unknown).unwrap_err().code(), Some(ErrorCode::UnknownParameter));
    assert_eq!(s.balance("default").await, before - IMAGE_PRICE_MICROS, "only the valid image is charged");
}

#[tokio::test]
async fn concurrent_calls_share_one_socket_and_each_gets_its_own_result() {
    let s = TestServer::start().await;
    let (c, t) = ws(&s);
    let calls: Vec<_> = (0..16u64)
        .map(|i| {
            let c = c.clone();
            let task = ImageInference::new(format!("picture {i}")).size(64, 64).seed(100 + i);
            let uuid = task.task_uuid().to_string();
            tokio::spawn(async move { (uuid, 100 + i, c.run(task).await) })
        })
        .collect();
    for call in calls {
        let (uuid, seed, r) = call.await.unwrap();
        let images = r.unwrap();
        assert_eq!(images.len(), 1);
        assert_eq!((images[0].task_uuid.as_str(), images[0].seed), (uuid.as_str(), Some(seed)));
    }
    assert_eq!(t.stats().connections, 1, "{:?}", t.stats());
}

#[tokio::test]
async fn async_delivery_and_get_response_over_websocket() {
    let s = TestServer::start().await;
    let (c, _t) = ws(&s);
    let submitted =
        c.submit(ImageInference::new("later").size(64, 64).delivery(Delivery::Async)).await.unwrap();
    assert!(submitted.is_pending());
    let policy = PollPolicy::default()
        .initial_delay(Duration::from_millis(20))
        .interval(Duration::from_millis(20), 1.5, Duration::from_millis(200))
        .budget(Duration::from_secs(30));
    let images = c.wait_with(&submitted, &policy).await.unwrap();
    assert_eq!(images[0].task_uuid, submitted.task_uuid().to_string());
    let items = c.get_response(submitted.task_uuid()).await.unwrap();
    assert_eq!(items[0].status, Status::Success);
    assert_eq!(items[0].image().unwrap().image_uuid, images[0].image_uuid);
}

// --- errors ------------------------------------------------------------------------------------

#[tokio::test]
async fn an_error_object_keeps_every_field_over_websocket_and_matches_rest() {
    let s = TestServer::start().await;
    let (c, t) = ws(&s);
    let task = ImageInference::new("a lighthouse").size(100, 64);
    let uuid = task.task_uuid();
    let e = c.run(task.clone()).await.unwrap_err();
    assert!(matches!(e, Error::Api(_)), "a permanent error is not retried: {e:?}");
    let a = e.api_error().unwrap();
    assert_eq!(a.code, Code::Known(ErrorCode::InvalidParameterValue));
    assert_eq!(a.parameter, Some(Parameter::One("width".into())));
    assert_eq!(a.task_type.as_deref(), Some("imageInference"));
    assert_eq!(a.task_uuid, Some(uuid.to_string()));
    assert!(a.message.contains("multiple of 64"), "{}", a.message);
    assert!(a.documentation.as_deref().unwrap().ends_with("/docs/errors#invalidParameterValue"));
    assert_eq!(a.http_status, None, "no HTTP status over WebSocket");
    assert!(!e.is_retryable());
    // The same object as REST sends, field for field.
    let rest = client(&s).run(task).await.unwrap_err();
    assert_eq!(rest.api_error().unwrap().to_json(), a.to_json());
    assert_eq!(t.stats().connections, 1);

    // A taskUUID reused for another task.
    let done = ImageInference::new("one thing").size(64, 64);
    let used = done.task_uuid();
    c.run(done).await.unwrap();
    let e = c.run(ImageInference::new("another thing").size(64, 64).with_task_uuid(used)).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::ConflictTaskUUID));
    assert_eq!(e.api_error().unwrap().parameter, Some(Parameter::One("taskUUID".into())));
}

#[tokio::test]
async fn an_invalid_key_is_refused_at_authentication_and_never_retried_or_shown() {
    let s = TestServer::start().await;
    let wrong = format!("key_{}", "0".repeat(128));
    let (c, t) = ws_client(&s.base_url, &wrong, ws_options());
    let e = c.run(ImageInference::new("a lighthouse").size(64, 64)).await.unwrap_err();
    let a = e.api_error().unwrap_or_else(|| panic!("an API error, got {e:?}"));
    assert_eq!(a.code, Code::Known(ErrorCode::InvalidApiKey));
    assert_eq!(a.parameter, Some(Parameter::One("apiKey".into())));
    assert_eq!(a.task_type.as_deref(), Some("authentication"));
    assert!(!e.to_string().contains(&wrong) && !format!("{e:?}").contains(&wrong), "the key is never shown");
    assert!(!format!("{c:?}").contains(&wrong));
    assert_eq!(c.authenticate().await.unwrap_err().code(), Some(ErrorCode::InvalidApiKey));
    assert_eq!(t.stats().connect_attempts, 2, "one attempt per call: a refused key is not retried");
    assert_eq!(t.stats().connections, 0);
}

/// A server whose one model runs on `upstream`.
async fn server_on_mock(upstream: &MockUpstream) -> TestServer {
    let base = upstream.base_url.clone();
    TestServer::start_with(move |c: &mut Config| {
        c.providers.upstreams = vec![UpstreamConfig {
            name: "oai".into(),
            kind: UpstreamKind::OpenaiImages,
            base_url: base,
            timeout_ms: 10_000,
            ..UpstreamConfig::default()
        }];
        let mut m: ModelSpec =
            builtin_models().into_iter().find(|m| m.task_type == TaskType::ImageInference).unwrap();
        m.air = MOCK_AIR.into();
        m.provider = "oai".into();
        m.fallback = vec![];
        m.price_usd = "0.01".into();
        m.description = "test model on a mock upstream".into();
        // No retries inside the server: the client's retries are what is counted.
        m.retry = ModelRetry { attempts: 1, base_ms: 1, cap_ms: 5, deadline_ms: 20_000 };
        c.models = vec![m];
    })
    .await
}

const MOCK_AIR: &str = "acme:oai@1";
const GEN: &str = "/v1/images/generations";
/// The mock model's price ($0.01) in micro-dollars.
const MOCK_PRICE: i64 = 10_000;

fn mock_task() -> ImageInference {
    ImageInference::new("a lighthouse").model(MOCK_AIR).size(512, 512)
}

#[tokio::test]
async fn a_retryable_error_code_is_retried_over_websocket_and_the_attempts_counted() {
    let m = MockUpstream::start().await;
    m.on("POST", GEN, vec![Reply::status(429), openai_b64_reply(1, &png(8, 8, [1, 2, 3]))]);
    let s = server_on_mock(&m).await;
    let (c, t) = ws(&s);
    let before = s.balance("default").await;
    let mut b = Batch::new();
    let h = b.push(mock_task());
    let r = c.run_batch(b).await.unwrap();
    assert_eq!(r.attempts(), 2, "providerRateLimitExceeded (retryable by its code) was retried once");
    assert_eq!(r.get(&h).unwrap().len(), 1);
    assert_eq!(m.calls("POST", GEN), 2);
    assert_eq!(s.balance("default").await, before - MOCK_PRICE, "the failed run was refunded");
    assert_eq!(t.stats().connections, 1, "a retry is a resend on the same socket");

    // A permanent code is not retried.
    m.on("POST", GEN, vec![Reply::json(400, json!({"error": {"message": "bad prompt"}}))]);
    let mut b = Batch::new();
    let h = b.push(mock_task());
    let r = c.run_batch(b).await.unwrap();
    assert_eq!(r.attempts(), 1);
    assert!(!r.get(&h).unwrap_err().is_retryable());
}

// --- keepalive ---------------------------------------------------------------------------------

async fn idle_then_ping(pings: Option<Duration>) -> mediagate_client::WsStats {
    let s = TestServer::start_with(|c| c.websocket.idle_timeout_secs = 1).await;
    let opts = WsOptions { ping_interval: pings, pong_timeout: Duration::from_secs(2), ..ws_options() };
    let (c, t) = ws_client(&s.base_url, &s.api_key, opts);
    let first = c.authenticate().await.unwrap().connection_session_uuid;
    // Idle for well over the server's idle timeout.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(c.ping().await.unwrap().pong);
    assert_eq!(t.session(), first, "the session is the same either way (resumed if reconnected)");
    t.stats()
}

#[tokio::test]
async fn keepalive_pings_keep_an_idle_socket_open() {
    let stats = idle_then_ping(Some(Duration::from_millis(200))).await;
    assert!(stats.pings_sent >= 2, "{stats:?}");
    assert_eq!(stats.connections, 1, "the server never closed the socket for idleness: {stats:?}");
}

#[tokio::test]
async fn without_keepalive_the_idle_socket_is_closed_and_replaced_on_the_next_call() {
    // The control for the test above: the same idle time without pings costs a reconnect.
    let stats = idle_then_ping(None).await;
    assert_eq!(stats.pings_sent, 0);
    assert_eq!((stats.connections, stats.resumed), (2, 1), "{stats:?}");
}

// --- reconnection ------------------------------------------------------------------------------

/// Polls `getResponse` over REST until the task's first item has `status`.
async fn wait_status(s: &TestServer, uuid: Uuid, status: &str) {
    let t0 = Instant::now();
    loop {
        let (_, b) = s.post(&json!([{"taskType": "getResponse", "taskUUID": uuid}])).await;
        if b["data"][0]["status"] == status {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "task {uuid} never reached {status}: {b}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A mock upstream that answers after `delay`.
async fn slow_upstream(delay: Duration) -> MockUpstream {
    let m = MockUpstream::start().await;
    m.on("POST", GEN, vec![openai_b64_reply(1, &png(8, 8, [9, 9, 9])).delay(delay)]);
    m
}

#[tokio::test]
async fn a_cut_while_a_task_runs_resumes_the_session_and_the_backlog_delivers_the_result() {
    let m = slow_upstream(Duration::from_millis(1500)).await;
    let s = server_on_mock(&m).await;
    let relay = Relay::start(&s.base_url).await;
    let (c, t) = ws_client(&relay.ws_url, &s.api_key, ws_options());
    let session = c.authenticate().await.unwrap().connection_session_uuid;
    let before = s.balance("default").await;

    let task = mock_task();
    let uuid = task.task_uuid();
    let bg = c.clone();
    let call = tokio::spawn(async move { bg.run(task).await });
    wait_status(&s, uuid, "processing").await;
    // Cut the socket under the running task, and keep the client away until it has finished.
    relay.hold_new(true);
    relay.sever();
    wait_status(&s, uuid, "success").await;
    assert!(!call.is_finished(), "the result cannot have arrived: the client was cut off");
    relay.hold_new(false);

    let images = call.await.unwrap().expect("the result arrives after reconnecting");
    assert_eq!(images[0].task_uuid, uuid.to_string());
    let stats = t.stats();
    assert_eq!((stats.connections, stats.resumed), (2, 1), "{stats:?}");
    assert_eq!(t.session(), session, "the session was resumed, not replaced");
    assert_eq!(stats.resent_tasks, 0, "delivered from the session backlog, not by a resend: {stats:?}");
    assert_eq!(m.calls("POST", GEN), 1, "run once");
    assert_eq!(s.balance("default").await, before - MOCK_PRICE, "charged once");
}

#[tokio::test]
async fn a_task_running_across_a_reconnect_is_answered_and_charged_once() {
    let m = slow_upstream(Duration::from_millis(1500)).await;
    let s = server_on_mock(&m).await;
    let relay = Relay::start(&s.base_url).await;
    let (c, t) = ws_client(&relay.ws_url, &s.api_key, ws_options());
    c.authenticate().await.unwrap();
    let before = s.balance("default").await;
    let task = mock_task();
    let uuid = task.task_uuid();
    let bg = c.clone();
    let call = tokio::spawn(async move { bg.run(task).await });
    wait_status(&s, uuid, "processing").await;
    relay.sever(); // the client reconnects at once, while the task still runs
    let images = call.await.unwrap().expect("answered on the new socket");
    assert_eq!(images[0].task_uuid, uuid.to_string());
    let stats = t.stats();
    assert_eq!((stats.connections, stats.resumed), (2, 1), "{stats:?}");
    assert!(stats.resent_tasks <= 1, "{stats:?}");
    assert_eq!(m.calls("POST", GEN), 1, "a resend joins the running task");
    assert_eq!(s.balance("default").await, before - MOCK_PRICE, "charged once");
    assert_eq!(relay.accepted(), 2);
}

#[tokio::test]
async fn a_half_open_socket_is_detected_by_the_pong_deadline_and_the_lost_task_resent() {
    let s = TestServer::start().await;
    let relay = Relay::start(&s.base_url).await;
    let opts = WsOptions {
        ping_interval: Some(Duration::from_millis(200)),
        pong_timeout: Duration::from_millis(1500),
        ..ws_options()
    };
    let (c, t) = ws_client(&relay.ws_url, &s.api_key, opts);
    c.authenticate().await.unwrap();
    let before = s.balance("default").await;
    // From now on the socket swallows everything and nobody is told.
    relay.black_hole();
    let task = ImageInference::new("sent into the void").size(64, 64);
    let uuid = task.task_uuid();
    let images = c.run(task).await.expect("resent on a new socket and answered");
    assert_eq!(images[0].task_uuid, uuid.to_string());
    let stats = t.stats();
    assert_eq!(stats.dead_connections, 1, "{stats:?}");
    assert_eq!((stats.connections, stats.resumed), (2, 1), "{stats:?}");
    assert_eq!(stats.resent_tasks, 1, "the task never reached the server: resent with its taskUUID");
    assert_eq!(s.balance("default").await, before - IMAGE_PRICE_MICROS, "charged once");
    assert_eq!(c.get_response(uuid).await.unwrap()[0].status, Status::Success);
}

/// A port where connections are accepted and dropped at once; counts them.
async fn dead_end() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", l.local_addr().unwrap());
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = n.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(sock);
        }
    });
    (url, n)
}

#[tokio::test]
async fn reconnection_gives_up_with_a_connect_error_after_the_policy_attempts() {
    let (url, accepted) = dead_end().await;
    let reconnect =
        RetryPolicy::default().max_attempts(3).backoff(Duration::from_millis(5), Duration::from_millis(20));
    let (c, t) = ws_client(&url, "key_x", WsOptions { reconnect, ..ws_options() });
    let e = c.ping().await.unwrap_err();
    assert!(matches!(e, Error::Exhausted { attempts: 3, reason: GaveUp::MaxAttempts, .. }), "{e:?}");
    assert!(matches!(e.root(), Error::Connect { .. }), "{e:?}");
    assert!(e.to_string().contains("cannot connect"), "{e}");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3, "exactly the policy's attempts");
    assert_eq!(t.stats().connect_attempts, 3, "not multiplied by the client's own retries");

    // The total deadline bounds it too, and the next call starts a new round.
    let reconnect = RetryPolicy::default()
        .max_attempts(1000)
        .backoff(Duration::from_millis(50), Duration::from_millis(50))
        .total_deadline(Duration::from_millis(400));
    let (c, _t) = ws_client(&url, "key_x", WsOptions { reconnect, ..ws_options() });
    let e = c.ping().await.unwrap_err();
    assert!(matches!(e, Error::Exhausted { reason: GaveUp::Deadline, .. }), "{e:?}");
    let e = c.ping().await.unwrap_err();
    assert!(matches!(e, Error::Exhausted { reason: GaveUp::Deadline, .. }), "{e:?}");
}

#[tokio::test]
async fn a_server_that_goes_away_fails_waiting_calls_with_a_transport_error() {
    let m = slow_upstream(Duration::from_secs(3)).await;
    let s = server_on_mock(&m).await;
    let relay = Relay::start(&s.base_url).await;
    let reconnect =
        RetryPolicy::default().max_attempts(3).backoff(Duration::from_millis(5), Duration::from_millis(20));
    let opts = WsOptions { reconnect, connect_timeout: Duration::from_secs(2), ..ws_options() };
    let (c, t) = ws_client(&relay.ws_url, &s.api_key, opts);
    c.authenticate().await.unwrap();
    let task = mock_task();
    let uuid = task.task_uuid();
    let bg = c.clone();
    let call = tokio::spawn(async move { bg.run(task).await });
    wait_status(&s, uuid, "processing").await;
    // Every later connection is cut before it can authenticate: the server is unreachable.
    drop(relay);
    let e = call.await.unwrap().unwrap_err();
    assert!(matches!(e, Error::Exhausted { attempts: 3, .. }), "{e:?}");
    assert!(matches!(e.root(), Error::Connect { .. }), "{e:?}");
    assert_eq!(t.stats().connect_attempts, 1 + 3);
}

// --- shutdown ----------------------------------------------------------------------------------

/// A minimal Runware WebSocket server that authenticates one client and reports whether it
/// received a close frame.
async fn close_watcher() -> (String, tokio::sync::oneshot::Receiver<bool>) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", l.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (sock, _) = l.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(sock).await.unwrap();
        let mut got_close = false;
        while let Some(Ok(m)) = ws.next().await {
            match m {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    let reply = if v[0]["taskType"] == "authentication" {
                        json!({"data": [{"taskType": "authentication", "connectionSessionUUID": Uuid::new_v4()}]})
                    } else {
                        json!({"data": [{"taskType": "ping", "pong": true, "taskUUID": v[0]["taskUUID"]}]})
                    };
                    ws.send(Message::text(reply.to_string())).await.unwrap();
                }
                Message::Close(_) => {
                    got_close = true;
                    break;
                }
                _ => {}
            }
        }
        let _ = tx.send(got_close);
    });
    (url, rx)
}

#[tokio::test]
async fn close_and_drop_send_a_close_frame() {
    let (url, closed) = close_watcher().await;
    let (c, _t) = ws_client(&url, "key_x", ws_options());
    assert!(c.ping().await.unwrap().pong);
    c.close().await;
    assert!(tokio::time::timeout(Duration::from_secs(5), closed).await.unwrap().unwrap());

    let (url, closed) = close_watcher().await;
    let c = Client::builder().base_url(url).api_key("key_x").retry(fast_retries()).build().unwrap();
    assert!(c.ping().await.unwrap().pong);
    drop(c);
    assert!(tokio::time::timeout(Duration::from_secs(5), closed).await.unwrap().unwrap(), "dropped");
}

#[tokio::test]
async fn a_server_that_drops_every_socket_after_authentication_is_not_hammered() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", l.local_addr().unwrap());
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(sock).await else { return };
                if let Some(Ok(Message::Text(_))) = ws.next().await {
                    let auth = json!({"data": [{"taskType": "authentication",
                                                "connectionSessionUUID": Uuid::new_v4()}]});
                    let _ = ws.send(Message::text(auth.to_string())).await;
                }
                // ... and hang up before answering anything else.
            });
        }
    });
    let reconnect = RetryPolicy::default()
        .max_attempts(1000)
        .backoff(Duration::from_millis(100), Duration::from_millis(100));
    let opts = WsOptions { reconnect, request_timeout: Duration::from_secs(1), ..ws_options() };
    let (_c, t) = ws_client(&url, "key_x", opts);
    let e = mediagate_client::Transport::send(&*t, r#"[{"taskType":"ping","ping":true}]"#.into())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    let n = accepted.load(std::sync::atomic::Ordering::SeqCst);
    // Without a backoff between short-lived sockets this loops thousands of times a second.
    assert!((2..60).contains(&n), "{n} connections in one second");
    assert_eq!(t.stats().connections as usize, n);
}
