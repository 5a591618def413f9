//! Hardening against faults seen in fault-injection runs (issue 16): clients that hang up
//! mid-task, restarts, full disks and database stalls. Each test drives the real server over
//! loopback and checks the store afterwards: every admitted task ends, and nobody pays for a
//! task that did not succeed.

use mediagate_core::model::{ModelSpec, RetryPolicy, builtin_models};
use mediagate_core::task::TaskType;
use mediagate_engine::config::Config;
use mediagate_providers::upstream::{UpstreamConfig, UpstreamKind};
use mediagate_store::TaskStatus;
use mediagate_testkit::mock_upstream::{MockUpstream, openai_b64_reply, png};
use mediagate_testkit::{TestServer, task_uuid};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SLOW: &str = "acme:slow@1";
/// The slow model's price per result, micro-dollars ("0.001" USD).
const PRICE_MICROS: i64 = 1000;
/// The bootstrap account's grant ("10.00" USD).
const GRANT_MICROS: i64 = 10_000_000;

fn sync_image(uuid: &str) -> Value {
    json!([{"taskType": "imageInference", "taskUUID": uuid, "positivePrompt": "a lighthouse",
            "model": SLOW, "width": 128, "height": 64, "deliveryMethod": "sync"}])
}

/// A model on a mock upstream whose every call takes `delay`, running `concurrency` at once.
async fn slow_server(
    delay: Duration,
    concurrency: u32,
    adjust: impl FnOnce(&mut Config),
) -> (TestServer, MockUpstream) {
    let m = MockUpstream::start().await;
    m.count_only();
    m.on("POST", "/v1/images/generations", vec![openai_b64_reply(1, &png(8, 8, [1, 2, 3])).delay(delay)]);
    let base = m.base_url.clone();
    let s = TestServer::start_with(|c| {
        c.providers.upstreams = vec![UpstreamConfig {
            name: "mock".into(),
            kind: UpstreamKind::OpenaiImages,
            base_url: base,
            timeout_ms: 60_000,
            ..UpstreamConfig::default()
        }];
        let mut spec: ModelSpec =
            builtin_models().into_iter().find(|m| m.task_type == TaskType::ImageInference).unwrap();
        spec.air = SLOW.into();
        spec.provider = "mock".into();
        spec.fallback = vec![];
        spec.price_usd = "0.001".into();
        spec.description = "test model with a fixed service time".into();
        spec.retry = RetryPolicy { attempts: 1, base_ms: 1, cap_ms: 1, deadline_ms: 60_000 };
        spec.concurrency = concurrency;
        c.models = vec![spec];
        adjust(c)
    })
    .await;
    (s, m)
}

/// Sends one `POST /v1` on a connection of its own and closes the connection `hang_up` after
/// the request is written (`None`: reads the whole answer first). Returns the status line, if
/// one was read.
async fn post_then_hang_up(addr: &str, key: &str, body: &Value, hang_up: Option<Duration>) -> Option<String> {
    let body = body.to_string();
    let req = format!(
        "POST /v1 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut conn = tokio::net::TcpStream::connect(addr).await.ok()?;
    conn.write_all(req.as_bytes()).await.ok()?;
    match hang_up {
        Some(after) => {
            tokio::time::sleep(after).await;
            // Dropping the socket closes it: the server sees the client gone.
            drop(conn);
            None
        }
        None => {
            let mut answer = Vec::new();
            conn.read_to_end(&mut answer).await.ok()?;
            String::from_utf8_lossy(&answer).lines().next().map(str::to_string)
        }
    }
}

/// Waits until the account has no `processing` task; returns how many are left at `within`.
async fn settle(s: &TestServer, account_id: i64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let open =
            s.engine.store().count_tasks(Some(account_id), Some(TaskStatus::Processing)).await.unwrap();
        if open == 0 || Instant::now() >= deadline {
            return open;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Point 18: clients hang up at every stage of a sync task (before and during admission, while
/// queued for a slot, during the provider call, while the end is stored). Every admitted task
/// still ends, and the balance is exactly what the successful tasks cost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardening_hung_up_sync_tasks_all_settle_and_only_successes_are_charged() {
    let (s, _m) = slow_server(Duration::from_millis(150), 4, |_| {}).await;
    let addr = s.base_url.trim_start_matches("http://").to_string();
    let account = s.engine.store().account_by_name("default").await.unwrap().unwrap();
    let mut clients = Vec::new();
    // Several waves, so hang-ups land while the store is busy admitting (group commits),
    // while tasks wait for one of the 4 slots, and while the mock holds them.
    for wave in 0..3u64 {
        for i in 0..80u64 {
            let (addr, key) = (addr.clone(), s.api_key.clone());
            let hang_up = match i % 8 {
                // One in eight waits for its answer.
                7 => None,
                // Half hang up within 4 ms of sending: while the request is read, authenticated
                // and admitted.
                0..=3 => Some(Duration::from_micros((i * 7919 + wave * 3571) % 4000)),
                // The rest hang up 0 ms .. ~1.2 s after sending: queued, or with the provider.
                _ => Some(Duration::from_micros((i * 7919 + wave * 104_729) % 1_200_000)),
            };
            clients.push(tokio::spawn(async move {
                post_then_hang_up(&addr, &key, &sync_image(&task_uuid()), hang_up).await
            }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut answered = 0;
    for c in clients {
        if let Some(status) = c.await.unwrap() {
            assert!(status.contains(" 200 "), "{status}");
            answered += 1;
        }
    }
    assert_eq!(answered, 30, "every client that waited got its result");
    // 240 tasks at 4 at a time and 150 ms each take about 9 s; allow plenty on a loaded machine.
    let open = settle(&s, account.id, Duration::from_secs(120)).await;
    assert_eq!(open, 0, "tasks left processing (charged) after every client hung up");
    let store = s.engine.store();
    let succeeded = store.count_tasks(Some(account.id), Some(TaskStatus::Success)).await.unwrap() as i64;
    let failed = store.count_tasks(Some(account.id), Some(TaskStatus::Error)).await.unwrap() as i64;
    assert!(succeeded >= 30, "{succeeded} succeeded");
    assert_eq!(
        s.balance("default").await,
        GRANT_MICROS - succeeded * PRICE_MICROS,
        "the balance is the grant less the successful tasks ({succeeded} succeeded, {failed} failed)"
    );
}
