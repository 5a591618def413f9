//! End to end over real HTTP: a mediagate server whose models are routed to mock upstreams,
//! driven through `POST /v1`. Counts upstream calls and checks that each task is charged
//! exactly once (or not at all) whatever retries and fallbacks happened underneath.

use base64::Engine as _;
use mediagate_core::model::{ModelSpec, RetryPolicy, builtin_models};
use mediagate_core::task::TaskType;
use mediagate_engine::config::Config;
use mediagate_providers::upstream::{UpstreamConfig, UpstreamKind};
use mediagate_testkit::TestServer;
use mediagate_testkit::mock_upstream::{MockUpstream, Reply, openai_b64_reply, png};
use serde_json::{Value, json};

const GEN: &str = "/v1/images/generations";
/// $0.01 per result, in micro-dollars.
const PRICE: i64 = 10_000;
const START: i64 = 10_000_000;

fn upstream(name: &str, kind: UpstreamKind, base: &str) -> UpstreamConfig {
    UpstreamConfig {
        name: name.into(),
        kind,
        base_url: base.into(),
        timeout_ms: 5_000,
        ..UpstreamConfig::default()
    }
}

fn model(air: &str, chain: &[&str], attempts: u32) -> ModelSpec {
    let mut m = builtin_models().into_iter().find(|m| m.task_type == TaskType::ImageInference).unwrap();
    m.air = air.into();
    m.provider = chain[0].into();
    m.fallback = chain[1..].iter().map(|s| s.to_string()).collect();
    m.price_usd = "0.01".into();
    m.description = "test model on a mock upstream".into();
    // Tiny backoffs keep the test fast; the arithmetic itself is tested in tests/dispatch.rs.
    m.retry = RetryPolicy { attempts, base_ms: 1, cap_ms: 5, deadline_ms: 20_000 };
    m
}

fn task(air: &str) -> Value {
    json!([{
        "taskType": "imageInference",
        "taskUUID": mediagate_testkit::task_uuid(),
        "positivePrompt": "a lighthouse",
        "model": air,
        "width": 512,
        "height": 512,
        "outputType": "base64Data",
        "outputFormat": "PNG",
    }])
}

fn add(cfg: &mut Config, ups: Vec<UpstreamConfig>, models: Vec<ModelSpec>) {
    cfg.providers.upstreams = ups;
    cfg.models = models;
}

#[tokio::test]
async fn two_503s_then_success_is_three_calls_and_one_charge() {
    let m = MockUpstream::start().await;
    let img = png(8, 8, [10, 20, 30]);
    m.on("POST", GEN, vec![Reply::status(503), Reply::status(503), openai_b64_reply(1, &img)]);
    let base = m.base_url.clone();
    let s = TestServer::start_with(|c| {
        add(
            c,
            vec![upstream("oai", UpstreamKind::OpenaiImages, &base)],
            vec![model("acme:oai@1", &["oai"], 3)],
        )
    })
    .await;
    let (status, body) = s.post(&task("acme:oai@1")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(m.calls("POST", GEN), 3);
    assert_eq!(s.balance("default").await, START - PRICE, "charged exactly once");
    let b64 = body["data"][0]["imageBase64Data"].as_str().unwrap();
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(b64).unwrap(), img);
}

#[tokio::test]
async fn a_400_is_one_call_and_no_charge() {
    let m = MockUpstream::start().await;
    m.on(
        "POST",
        GEN,
        vec![Reply::json(400, json!({"error": {"code": "invalid_size", "message": "UPSTREAM SECRET TEXT"}}))],
    );
    let base = m.base_url.clone();
    let s = TestServer::start_with(|c| {
        add(
            c,
            vec![upstream("oai", UpstreamKind::OpenaiImages, &base)],
            vec![model("acme:oai@1", &["oai"], 3)],
        )
    })
    .await;
    let (status, body) = s.post(&task("acme:oai@1")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["code"], "invalidParameterValue");
    assert!(!body.to_string().contains("UPSTREAM SECRET TEXT"), "upstream body leaked: {body}");
    assert_eq!(m.calls("POST", GEN), 1);
    assert_eq!(s.balance("default").await, START, "a failed task is refunded in full");
}

#[tokio::test]
async fn exhausted_retries_fail_with_the_mapped_code_and_no_charge() {
    let m = MockUpstream::start().await;
    m.on("POST", GEN, vec![Reply::status(429).header("retry-after", "0")]);
    let base = m.base_url.clone();
    let s = TestServer::start_with(|c| {
        add(
            c,
            vec![upstream("oai", UpstreamKind::OpenaiImages, &base)],
            vec![model("acme:oai@1", &["oai"], 2)],
        )
    })
    .await;
    let (status, body) = s.post(&task("acme:oai@1")).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["errors"][0]["code"], "providerRateLimitExceeded");
    assert_eq!(m.calls("POST", GEN), 2);
    assert_eq!(s.balance("default").await, START);
}

#[tokio::test]
async fn an_upstream_401_is_the_operators_problem_and_falls_back() {
    let bad = MockUpstream::start().await;
    bad.on("POST", GEN, vec![Reply::json(401, json!({"error": {"code": "invalid_api_key"}}))]);
    let good = MockUpstream::start().await;
    good.on("POST", GEN, vec![openai_b64_reply(1, &png(8, 8, [1, 1, 1]))]);
    let (b1, b2) = (bad.base_url.clone(), good.base_url.clone());
    let s = TestServer::start_with(|c| {
        add(
            c,
            vec![
                upstream("bad", UpstreamKind::OpenaiImages, &b1),
                upstream("good", UpstreamKind::OpenaiImages, &b2),
            ],
            vec![model("acme:alone@1", &["bad"], 3), model("acme:chain@1", &["bad", "good"], 3)],
        )
    })
    .await;
    // Alone: one call (credentials are not retried), a 500 that does not blame the client's key.
    let (status, body) = s.post(&task("acme:alone@1")).await;
    assert_eq!(status, 500, "{body}");
    let e = &body["errors"][0];
    assert_eq!(e["code"], "internalServerError");
    assert!(e["message"].as_str().unwrap().contains("rejected mediagate's credentials"), "{e}");
    assert_eq!(bad.calls("POST", GEN), 1);
    assert_eq!(s.balance("default").await, START);
    // With a fallback: straight on to it, one charge.
    let (status, body) = s.post(&task("acme:chain@1")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((bad.calls("POST", GEN), good.calls("POST", GEN)), (2, 1));
    assert_eq!(s.balance("default").await, START - PRICE);
}

#[tokio::test]
async fn an_open_breaker_is_zero_calls() {
    let flaky = MockUpstream::start().await;
    flaky.on("POST", GEN, vec![Reply::status(503)]);
    let spare = MockUpstream::start().await;
    spare.on("POST", GEN, vec![openai_b64_reply(1, &png(8, 8, [2, 2, 2]))]);
    let (b1, b2) = (flaky.base_url.clone(), spare.base_url.clone());
    let s = TestServer::start_with(|c| {
        let mut f = upstream("flaky", UpstreamKind::OpenaiImages, &b1);
        f.breaker_failures = 2;
        f.breaker_cooldown_ms = 600_000;
        add(
            c,
            vec![f, upstream("spare", UpstreamKind::OpenaiImages, &b2)],
            vec![model("acme:m@1", &["flaky", "spare"], 2)],
        )
    })
    .await;
    // Task 1: two 503s open flaky's circuit; the spare serves it.
    let (status, _) = s.post(&task("acme:m@1")).await;
    assert_eq!(status, 200);
    assert_eq!((flaky.calls("POST", GEN), spare.calls("POST", GEN)), (2, 1));
    // Tasks 2 and 3: the circuit is open, flaky gets zero calls.
    for _ in 0..2 {
        let (status, _) = s.post(&task("acme:m@1")).await;
        assert_eq!(status, 200);
    }
    assert_eq!((flaky.calls("POST", GEN), spare.calls("POST", GEN)), (2, 3));
    assert_eq!(s.balance("default").await, START - 3 * PRICE, "three tasks, three charges");
}

#[tokio::test]
async fn a_mediagate_upstream_serves_another_mediagate() {
    // The upstream: a plain mediagate with its procedural stand-in.
    let up = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("upstream-key");
    std::fs::write(&key_file, &up.api_key).unwrap();
    let base = up.base_url.clone();
    let s = TestServer::start_with(|c| {
        let mut u = upstream("peer", UpstreamKind::RunwareUpstream, &base);
        u.api_key_file = key_file.clone();
        u.models.insert("acme:remote@1".into(), mediagate_core::model::PROCEDURAL_AIR.into());
        add(c, vec![u], vec![model("acme:remote@1", &["peer"], 2)])
    })
    .await;
    let mut t = task("acme:remote@1");
    t[0]["seed"] = json!(77);
    t[0]["numberResults"] = json!(2);
    let (status, body) = s.post(&t).await;
    assert_eq!(status, 200, "{body}");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!((data[0]["seed"].clone(), data[1]["seed"].clone()), (json!(77), json!(78)));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data[0]["imageBase64Data"].as_str().unwrap())
        .unwrap();
    let img = image::load_from_memory(&bytes).unwrap();
    assert_eq!((img.width(), img.height()), (512, 512));
    // Both sides charged once: us at our price, the upstream at its procedural price (2 × $0.0006).
    assert_eq!(s.balance("default").await, START - 2 * PRICE);
    assert_eq!(up.balance("default").await, START - 2 * 600);

    // The same seed through the upstream directly gives the same image (it really rendered there).
    let mut direct = t.clone();
    direct[0]["taskUUID"] = json!(mediagate_testkit::task_uuid());
    direct[0]["model"] = json!(mediagate_core::model::PROCEDURAL_AIR);
    let (_, dbody) = up.post(&direct).await;
    assert_eq!(dbody["data"][0]["imageBase64Data"], data[0]["imageBase64Data"]);
}

#[tokio::test]
async fn a_wrong_upstream_key_is_reported_as_the_operators_problem() {
    let up = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("k");
    std::fs::write(&key_file, "key_not_a_real_one").unwrap();
    let base = up.base_url.clone();
    let s = TestServer::start_with(|c| {
        let mut u = upstream("peer", UpstreamKind::RunwareUpstream, &base);
        u.api_key_file = key_file.clone();
        u.models.insert("acme:remote@1".into(), mediagate_core::model::PROCEDURAL_AIR.into());
        add(c, vec![u], vec![model("acme:remote@1", &["peer"], 3)])
    })
    .await;
    let (status, body) = s.post(&task("acme:remote@1")).await;
    assert_eq!(status, 500, "{body}");
    let e = &body["errors"][0];
    assert_eq!(e["code"], "internalServerError");
    assert!(e["message"].as_str().unwrap().contains("Your API key is fine"), "{e}");
    assert_eq!(s.balance("default").await, START);
}

#[tokio::test]
async fn misrouted_models_stop_the_server_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
    let mut u = upstream("oai", UpstreamKind::OpenaiImages, "http://127.0.0.1:9");
    u.models.insert("acme:other@1".into(), "x".into());
    add(&mut cfg, vec![u], vec![model("acme:m@1", &["oai"], 1)]);
    let store: std::sync::Arc<dyn mediagate_store::Store> =
        mediagate_engine::open_store(&cfg, mediagate_engine::StoreRole::Tool).await.unwrap();
    let err = mediagate_engine::Engine::new(cfg.clone(), store.clone()).err().expect("refused").to_string();
    assert!(err.contains("does not serve"), "{err}");
    cfg.models = vec![model("acme:m@1", &["nope"], 1)];
    let err = mediagate_engine::Engine::new(cfg.clone(), store.clone()).err().expect("refused").to_string();
    assert!(err.contains("nope"), "{err}");
    cfg.providers.upstreams[0].name = "procedural".into();
    cfg.models = vec![];
    let err = mediagate_engine::Engine::new(cfg, store).err().expect("refused").to_string();
    assert!(err.contains("taken"), "{err}");
}

/// A sync task runs inside its request, but a client that hangs up (here: a client timeout
/// while the upstream is still working) must not leave it half done: it finishes, is recorded
/// and charged once, and resending the same task returns the stored result without another
/// upstream call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_task_whose_client_hangs_up_still_finishes_and_is_charged_once() {
    let m = MockUpstream::start().await;
    let img = png(8, 8, [10, 20, 30]);
    m.on("POST", GEN, vec![openai_b64_reply(1, &img).delay(std::time::Duration::from_millis(400))]);
    let base = m.base_url.clone();
    let s = TestServer::start_with(|c| {
        add(
            c,
            vec![upstream("oai", UpstreamKind::OpenaiImages, &base)],
            vec![model("acme:oai@1", &["oai"], 1)],
        )
    })
    .await;
    let body = task("acme:oai@1");
    let uuid = body[0]["taskUUID"].as_str().unwrap().to_string();
    let hung_up = s
        .http
        .post(format!("{}/v1", s.base_url))
        .bearer_auth(&s.api_key)
        .json(&body)
        .timeout(std::time::Duration::from_millis(100))
        .send()
        .await;
    assert!(hung_up.is_err(), "the client should have given up before the upstream answered");
    // The task is admitted and keeps running without its client.
    let poll = json!([{"taskType": "getResponse", "taskUUID": uuid}]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let result = loop {
        let (status, r) = s.post(&poll).await;
        if status == 200 && r["data"][0]["status"] == "success" {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "the task never finished: {status} {r}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(result["data"][0]["taskUUID"], uuid.as_str());
    assert_eq!(m.calls("POST", GEN), 1);
    assert_eq!(s.balance("default").await, START - PRICE, "charged exactly once");
    // Resending the identical task returns the stored result: no second call, no second charge.
    let (status, again) = s.post(&body).await;
    assert_eq!(status, 200, "{again}");
    let b64 = again["data"][0]["imageBase64Data"].as_str().unwrap();
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(b64).unwrap(), img);
    assert_eq!(m.calls("POST", GEN), 1);
    assert_eq!(s.balance("default").await, START - PRICE);
}
