//! Retries against a real server behind the flaky proxy: counted attempts, byte-identical
//! resends, the server's wait hints, the bounds — and idempotency when a response is lost
//! after the server ran and charged the task.

mod support;

use mediagate_client::tasks::{ImageInference, Status};
use mediagate_client::{Error, ErrorCode, GaveUp, RetryPolicy};
use mediagate_testkit::TestServer;
use mediagate_testkit::flaky_proxy::{Action, FlakyProxy};
use std::time::{Duration, Instant};
use support::{IMAGE_PRICE_MICROS, client_for, fast_retries};

fn image() -> ImageInference {
    ImageInference::new("a lighthouse at dusk").size(64, 64).include_cost(true)
}

/// Every request the proxy saw had exactly these bytes.
fn assert_identical_bodies(p: &FlakyProxy, n: usize) {
    let reqs = p.requests();
    assert_eq!(reqs.len(), n);
    for r in &reqs {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/v1"));
        assert_eq!(r.body, reqs[0].body, "a retry resends the identical body");
    }
}

#[tokio::test]
async fn a_503_with_retry_after_ms_is_retried_and_the_attempts_are_counted() {
    let s = TestServer::start().await;
    let hint = [("retry-after-ms", "150")];
    let script = vec![
        Action::error(503, "serviceUnavailable", &hint),
        Action::error(503, "serviceUnavailable", &hint),
    ];
    let proxy = FlakyProxy::start(&s.base_url, script).await;
    // Backoff would be at most 5 ms; only honouring the hint makes the client wait 2 × 150 ms.
    let policy = fast_retries().backoff(Duration::from_millis(1), Duration::from_millis(5));
    let c = client_for(&proxy.base_url, &s.api_key, policy);
    let before = s.balance("default").await;
    let task = image();
    let uuid = task.task_uuid();
    let t0 = Instant::now();
    let images = c.run(task).await.expect("succeeds on the third attempt");
    assert!(t0.elapsed() >= Duration::from_millis(300), "waited as told: {:?}", t0.elapsed());
    assert_eq!(proxy.request_count(), 3);
    assert_identical_bodies(&proxy, 3);
    let sent: serde_json::Value = serde_json::from_slice(&proxy.requests()[0].body).unwrap();
    assert_eq!(sent[0]["taskUUID"], uuid.to_string());
    assert_eq!(images[0].task_uuid, uuid.to_string());
    assert_eq!(s.balance("default").await, before - IMAGE_PRICE_MICROS);
}

#[tokio::test]
async fn retry_after_in_seconds_is_honoured_and_429_is_transient() {
    let s = TestServer::start().await;
    let script = vec![Action::error(429, "rateLimitExceeded", &[("Retry-After", "1")])];
    let proxy = FlakyProxy::start(&s.base_url, script).await;
    let policy = fast_retries().backoff(Duration::from_millis(1), Duration::from_millis(5));
    let c = client_for(&proxy.base_url, &s.api_key, policy);
    let t0 = Instant::now();
    c.run(image()).await.expect("succeeds on the second attempt");
    assert!(t0.elapsed() >= Duration::from_secs(1), "{:?}", t0.elapsed());
    assert_eq!(proxy.request_count(), 2);
}

#[tokio::test]
async fn a_dropped_response_is_retried_and_the_task_is_charged_once() {
    let s = TestServer::start().await;
    let proxy = FlakyProxy::start(&s.base_url, vec![Action::ForwardThenDrop]).await;
    let c = client_for(&proxy.base_url, &s.api_key, fast_retries());
    let before = s.balance("default").await;
    let task = image();
    let uuid = task.task_uuid();
    let images = c.run(task).await.expect("the retry gets the stored result");
    assert_eq!(proxy.request_count(), 2, "one lost response, one retry");
    assert_identical_bodies(&proxy, 2);
    assert_eq!(s.balance("default").await, before - IMAGE_PRICE_MICROS, "charged exactly once");
    // The result is the one the first (lost) attempt produced: the stored task's output.
    let stored = c.get_response(uuid).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].status, Status::Success);
    assert_eq!(stored[0].image().unwrap().image_uuid, images[0].image_uuid);
    assert_eq!(images[0].cost, Some(0.0006));
}

#[tokio::test]
async fn the_server_ran_the_task_whose_response_was_lost() {
    // Without retries the loss surfaces as an I/O error — after the server has charged the task.
    let s = TestServer::start().await;
    let proxy = FlakyProxy::start(&s.base_url, vec![Action::ForwardThenDrop, Action::ForwardThenDrop]).await;
    let c = client_for(&proxy.base_url, &s.api_key, RetryPolicy::none());
    let before = s.balance("default").await;
    let task = image();
    let e = c.run(task.clone()).await.unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert!(e.is_retryable());
    assert_eq!(s.balance("default").await, before - IMAGE_PRICE_MICROS, "the server ran and charged it");
    // Sending the same task again (same taskUUID, same body) is answered from the store, even
    // when that response is lost too and has to be retried once more.
    let c = client_for(&proxy.base_url, &s.api_key, fast_retries());
    let images = c.run(task).await.unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(proxy.request_count(), 3);
    assert_identical_bodies(&proxy, 3);
    assert_eq!(s.balance("default").await, before - IMAGE_PRICE_MICROS, "still charged once");
}

#[tokio::test]
async fn attempts_are_bounded() {
    let s = TestServer::start().await;
    let proxy =
        FlakyProxy::start_with_default(&s.base_url, vec![], Action::error(503, "serviceUnavailable", &[]))
            .await;
    let c = client_for(&proxy.base_url, &s.api_key, fast_retries().max_attempts(3));
    let before = s.balance("default").await;
    let e = c.run(image()).await.unwrap_err();
    match &e {
        Error::Exhausted { attempts, reason, .. } => {
            assert_eq!((*attempts, *reason), (3, GaveUp::MaxAttempts))
        }
        other => panic!("expected Exhausted, got {other:?}"),
    }
    assert_eq!(e.code(), Some(ErrorCode::ServiceUnavailable), "the last error is kept");
    assert_eq!(e.http_status(), Some(503));
    assert!(e.to_string().contains("serviceUnavailable"), "{e}");
    assert_eq!(proxy.request_count(), 3);
    assert_eq!(s.balance("default").await, before);
}

#[tokio::test]
async fn the_total_deadline_stops_retries() {
    let s = TestServer::start().await;
    let proxy = FlakyProxy::start_with_default(
        &s.base_url,
        vec![],
        Action::error(503, "serviceUnavailable", &[("retry-after-ms", "400")]),
    )
    .await;
    let policy = fast_retries().max_attempts(100).total_deadline(Duration::from_millis(1000));
    let c = client_for(&proxy.base_url, &s.api_key, policy);
    let t0 = Instant::now();
    let e = c.run(image()).await.unwrap_err();
    let elapsed = t0.elapsed();
    // Attempts at about 0, 400 and 800 ms; the next would start after the deadline.
    match &e {
        Error::Exhausted { attempts, reason, .. } => assert_eq!((*attempts, *reason), (3, GaveUp::Deadline)),
        other => panic!("expected Exhausted, got {other:?}"),
    }
    assert_eq!(proxy.request_count(), 3);
    assert!(elapsed < Duration::from_millis(1000), "gave up before the deadline, not after: {elapsed:?}");
}

#[tokio::test]
async fn a_hanging_attempt_times_out_and_is_retried() {
    let s = TestServer::start().await;
    let proxy = FlakyProxy::start(&s.base_url, vec![Action::Hang]).await;
    let c = mediagate_client::Client::builder()
        .base_url(&proxy.base_url)
        .api_key(s.api_key.clone())
        .request_timeout(Duration::from_millis(500))
        .retry(fast_retries())
        .build()
        .unwrap();
    let before = s.balance("default").await;
    c.run(image()).await.expect("the second attempt succeeds");
    assert_eq!(proxy.request_count(), 2);
    assert_eq!(s.balance("default").await, before - IMAGE_PRICE_MICROS);

    // Alone, the timeout is its own error kind.
    let proxy = FlakyProxy::start(&s.base_url, vec![Action::Hang]).await;
    let c = mediagate_client::Client::builder()
        .base_url(&proxy.base_url)
        .api_key(s.api_key.clone())
        .request_timeout(Duration::from_millis(300))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let e = c.ping().await.unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
}

#[tokio::test]
async fn unknown_codes_and_bare_5xx_pages_are_retried_by_status() {
    let s = TestServer::start().await;
    let script = vec![
        Action::error(502, "someCodeFromTheFuture", &[]),
        Action::Respond { status: 502, headers: vec![], body: "<html>bad gateway</html>".into() },
    ];
    let proxy = FlakyProxy::start(&s.base_url, script).await;
    let c = client_for(&proxy.base_url, &s.api_key, fast_retries());
    c.run(image()).await.expect("third attempt succeeds");
    assert_eq!(proxy.request_count(), 3);

    // And an unknown code on a 4xx is not retried; the code string is kept.
    let proxy = FlakyProxy::start(&s.base_url, vec![Action::error(409, "someCodeFromTheFuture", &[])]).await;
    let c = client_for(&proxy.base_url, &s.api_key, fast_retries());
    let e = c.run(image()).await.unwrap_err();
    let a = e.api_error().unwrap();
    assert_eq!(a.code.as_str(), "someCodeFromTheFuture");
    assert_eq!(a.code.known(), None);
    assert_eq!(a.http_status, Some(409));
    assert!(!e.is_retryable());
    assert_eq!(proxy.request_count(), 1);
}
