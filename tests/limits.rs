//! Limits over real HTTP: rate limits with exact Retry-After, invalid-key throttling, queues
//! with fair scheduling, daily caps, monthly spend caps and scopes.

use mediagate_engine::Phase;
use mediagate_engine::config::Config;
use mediagate_store::LimitValues;
use mediagate_testkit::mock_upstream::{MockUpstream, openai_b64_reply, png};
use mediagate_testkit::{TestServer, task_uuid};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const SLOW: &str = "acme:slow@1";

fn image(uuid: &str, model: Option<&str>, delivery: &str) -> Value {
    let mut t = json!({"taskType": "imageInference", "taskUUID": uuid, "positivePrompt": "a lighthouse",
                       "width": 128, "height": 64, "deliveryMethod": delivery});
    if let Some(m) = model {
        t["model"] = json!(m);
    }
    t
}

/// POSTs and returns status, the headers we care about and the body.
async fn post(s: &TestServer, key: &str, body: &Value) -> (u16, Option<u64>, Option<u64>, Value) {
    let r = s.http.post(format!("{}/v1", s.base_url)).bearer_auth(key).json(body).send().await.unwrap();
    let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    let (secs, ms) = (h("retry-after"), h("retry-after-ms"));
    (r.status().as_u16(), secs, ms, r.json().await.unwrap_or(Value::Null))
}

fn code(b: &Value) -> &str {
    b["errors"][0]["code"].as_str().unwrap_or("")
}

/// A model on a mock upstream whose every call takes `delay`: a known service time.
async fn slow_server(delay: Duration, adjust: impl FnOnce(&mut Config)) -> (TestServer, MockUpstream) {
    let m = MockUpstream::start().await;
    m.count_only();
    m.on("POST", "/v1/images/generations", vec![openai_b64_reply(1, &png(8, 8, [1, 2, 3])).delay(delay)]);
    let base = m.base_url.clone();
    let s = TestServer::start_with(|c| {
        mediagate_testkit::mock_upstream::serve_image_model_from_mock(c, &base, SLOW);
        adjust(c)
    })
    .await;
    (s, m)
}

#[tokio::test]
async fn rate_limit_admits_exactly_burst_plus_rate_times_window() {
    let s = TestServer::start_with(|c| {
        c.limits.key_rate_per_sec = 2.0;
        c.limits.key_burst = 3;
    })
    .await;
    let key = s.api_key.clone();
    let start = Instant::now();
    let (mut admitted, mut refused) = (0, 0);
    // As fast as possible for 1.75 s: burst 3 + floor(1.75 * 2) = 6 admitted.
    while start.elapsed() < Duration::from_millis(1750) {
        let (st, secs, ms, b) = post(&s, &key, &json!([image(&task_uuid(), None, "async")])).await;
        match st {
            200 => admitted += 1,
            429 => {
                assert_eq!(code(&b), "rateLimitExceeded", "{b}");
                let (secs, ms) = (secs.expect("Retry-After"), ms.expect("retry-after-ms"));
                assert!(ms <= 500, "one emission interval at most: {ms} ms");
                assert_eq!(secs, ms.div_ceil(1000).max(1), "Retry-After is retry-after-ms rounded up");
                refused += 1;
            }
            _ => panic!("{st} {b}"),
        }
    }
    assert_eq!(admitted, 6, "{refused} refused");
    assert!(refused > 0);
}

#[tokio::test]
async fn retry_after_is_the_real_time_until_admission() {
    let s = TestServer::start_with(|c| {
        c.limits.key_rate_per_sec = 1.0;
        c.limits.key_burst = 1;
    })
    .await;
    let key = s.api_key.clone();
    let send = || async { post(&s, &key, &json!([image(&task_uuid(), None, "async")])).await };
    assert_eq!(send().await.0, 200);
    let (st, secs, ms, b) = send().await;
    assert_eq!((st, code(&b)), (429, "rateLimitExceeded"), "{b}");
    assert_eq!(secs, Some(1));
    let ms = ms.unwrap();
    assert!((800..=1000).contains(&ms), "{ms}");
    assert!(b["errors"][0]["message"].as_str().unwrap().contains("this API key may submit 1 per second"));
    // Shortly before the announced time: still refused, and the new wait is what is left.
    tokio::time::sleep(Duration::from_millis(ms - 150)).await;
    let (st, _, left, _) = send().await;
    assert_eq!(st, 429);
    let left = left.unwrap();
    assert!(left <= 160, "{left}");
    // After it: admitted.
    tokio::time::sleep(Duration::from_millis(left + 5)).await;
    let (st, _, _, b) = send().await;
    assert_eq!(st, 200, "{b}");
}

#[tokio::test]
async fn the_account_limit_covers_all_its_keys() {
    let s = TestServer::start_with(|c| {
        c.limits.account_rate_per_sec = 0.5;
        c.limits.account_burst = 2;
    })
    .await;
    let other = s.create_key("default", &[]).await;
    assert_eq!(post(&s, &s.api_key, &json!([image(&task_uuid(), None, "async")])).await.0, 200);
    assert_eq!(post(&s, &other, &json!([image(&task_uuid(), None, "async")])).await.0, 200);
    let (st, secs, _, b) = post(&s, &other, &json!([image(&task_uuid(), None, "async")])).await;
    assert_eq!((st, secs), (429, Some(2)), "{b}");
    assert!(b["errors"][0]["message"].as_str().unwrap().contains("this account may submit 0.5 per second"));
    // Another account is not affected.
    s.engine.admin().create_account("other", "1").await.unwrap();
    let k = s.create_key("other", &[]).await;
    assert_eq!(post(&s, &k, &json!([image(&task_uuid(), None, "async")])).await.0, 200);
    // A stored per-account override applies at once when set through the engine's admin.
    s.engine.admin().create_account("third", "1").await.unwrap();
    let k = s.create_key("third", &[]).await;
    s.engine
        .admin()
        .set_limits(
            "third",
            None,
            LimitValues { account_rate_per_sec: Some(0.1), account_burst: Some(1), ..Default::default() },
        )
        .await
        .unwrap();
    s.engine.reload_limits().await.unwrap();
    assert_eq!(post(&s, &k, &json!([image(&task_uuid(), None, "async")])).await.0, 200);
    let (st, secs, _, _) = post(&s, &k, &json!([image(&task_uuid(), None, "async")])).await;
    assert_eq!((st, secs), (429, Some(10)));
}

#[tokio::test]
async fn repeated_invalid_keys_from_one_address_are_throttled_before_lookup() {
    let s = TestServer::start_with(|c| {
        c.limits.invalid_key_burst = 3;
        c.limits.invalid_key_rate_per_sec = 0.5;
        c.auth.cache_ttl_ms = 60_000;
    })
    .await;
    // The good key is known (cached) before the flood.
    assert_eq!(s.post(&json!([{"taskType": "ping", "ping": true}])).await.0, 200);
    let unknown = || format!("key_{}", "ab".repeat(64).replacen("ab", &format!("{:02x}", rand_byte()), 1));
    for i in 0..3 {
        let (st, _, _, b) = post(&s, &unknown(), &json!([{"taskType": "ping", "ping": true}])).await;
        assert_eq!((st, code(&b)), (401, "invalidApiKey"), "attempt {i}: {b}");
    }
    // The next unknown key is refused before it is looked up, with the wait.
    let (st, secs, ms, b) = post(&s, &unknown(), &json!([{"taskType": "ping", "ping": true}])).await;
    assert_eq!((st, code(&b)), (429, "rateLimitExceeded"), "{b}");
    assert_eq!(secs, Some(2));
    assert!(ms.unwrap() > 1500 && ms.unwrap() <= 2000, "{ms:?}");
    assert!(b["errors"][0]["message"].as_str().unwrap().contains("failed authentications from this address"));
    // Malformed keys too.
    assert_eq!(post(&s, "nonsense", &json!([{"taskType": "ping"}])).await.0, 429);
    // A key known to be valid still works from the same address.
    assert_eq!(s.post(&json!([{"taskType": "ping", "ping": true}])).await.0, 200);
    // After the wait one more failure is let through to the lookup.
    tokio::time::sleep(Duration::from_millis(ms.unwrap() + 10)).await;
    assert_eq!(post(&s, &unknown(), &json!([{"taskType": "ping", "ping": true}])).await.0, 401);
}

/// Sends a ping with an unknown key, as if forwarded for `client` by a proxy.
async fn unknown_key_via(s: &TestServer, client: &str) -> (u16, String) {
    let key = format!("key_{}", "cd".repeat(64).replacen("cd", &format!("{:02x}", rand_byte()), 1));
    let r = s
        .http
        .post(format!("{}/v1", s.base_url))
        .bearer_auth(key)
        .header("x-forwarded-for", format!("203.0.113.66, {client}"))
        .json(&json!([{"taskType": "ping", "ping": true}]))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let b: Value = r.json().await.unwrap();
    (status, code(&b).to_string())
}

#[tokio::test]
async fn behind_a_trusted_proxy_invalid_keys_are_throttled_per_forwarded_client() {
    let throttled = |c: &mut Config| {
        c.limits.invalid_key_burst = 2;
        c.limits.invalid_key_rate_per_sec = 0.1;
    };
    // The test client connects from 127.0.0.1, which is trusted here.
    let s = TestServer::start_with(|c| {
        throttled(c);
        c.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    for i in 0..2 {
        assert_eq!(unknown_key_via(&s, "198.51.100.1").await, (401, "invalidApiKey".into()), "attempt {i}");
    }
    assert_eq!(unknown_key_via(&s, "198.51.100.1").await, (429, "rateLimitExceeded".into()));
    // Another client behind the same proxy has its own allowance; the spoofed leftmost entry
    // (the same in every request) is not what is counted.
    assert_eq!(unknown_key_via(&s, "198.51.100.2").await, (401, "invalidApiKey".into()));

    // Without trusted proxies the header is ignored: everything counts against 127.0.0.1.
    let s = TestServer::start_with(throttled).await;
    for _ in 0..2 {
        assert_eq!(unknown_key_via(&s, "198.51.100.1").await.0, 401);
    }
    assert_eq!(unknown_key_via(&s, "198.51.100.2").await, (429, "rateLimitExceeded".into()));
}

fn rand_byte() -> u8 {
    uuid::Uuid::new_v4().as_bytes()[0]
}

#[tokio::test]
async fn over_concurrency_tasks_wait_in_a_queue_and_a_full_queue_is_429() {
    let (s, _m) = slow_server(Duration::from_millis(400), |c| {
        c.limits.max_concurrent = 1;
        c.limits.max_queued = 2;
    })
    .await;
    let account = s.engine.store().account_by_name("default").await.unwrap().unwrap().id;
    let uuids: Vec<String> = (0..3).map(|_| task_uuid()).collect();
    let t = Instant::now();
    for u in &uuids {
        let (st, _, _, b) = post(&s, &s.api_key, &json!([image(u, Some(SLOW), "async")])).await;
        assert_eq!(st, 200, "{b}");
        assert_eq!(b["data"][0]["status"], "processing");
    }
    assert!(t.elapsed() < Duration::from_millis(300), "async tasks are acknowledged at once, queued or not");
    let phase = |u: &str| s.engine.queue_phase(account, u.parse().unwrap());
    assert_eq!(phase(&uuids[0]), Some(Phase::Running));
    assert_eq!(phase(&uuids[1]), Some(Phase::Queued));
    assert_eq!(phase(&uuids[2]), Some(Phase::Queued));
    // The queue holds 2: the fourth is refused, with an estimate of the wait, and not charged.
    let before = s.balance("default").await;
    let (st, secs, ms, b) = post(&s, &s.api_key, &json!([image(&task_uuid(), Some(SLOW), "async")])).await;
    assert_eq!((st, code(&b)), (429, "queueFull"), "{b}");
    assert!(secs.unwrap() >= 1 && ms.unwrap() >= 100, "{secs:?} {ms:?}");
    assert_eq!(s.balance("default").await, before);
    // A sync task of another model is not held up by this queue.
    let (st, _, _, b) = post(&s, &s.api_key, &json!([image(&task_uuid(), None, "sync")])).await;
    assert_eq!(st, 200, "{b}");
    // The view shows running and queued.
    let view = s.engine.limits_view(account).await.unwrap();
    let slow = view.models.iter().find(|m| m.model == SLOW).unwrap();
    assert_eq!((slow.running, slow.queued, slow.max_concurrent, slow.max_queued), (1, 2, 1, 2));
    // The metrics show the same, all accounts together.
    let m = s.http.get(format!("{}/metrics", s.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(m.contains(&format!("mediagate_tasks_running{{model=\"{SLOW}\"}} 1\n")), "{m}");
    assert!(m.contains(&format!("mediagate_tasks_queued{{model=\"{SLOW}\"}} 2\n")), "{m}");
    // As tasks finish, the queued ones run in order; all three succeed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while phase(&uuids[1]) != Some(Phase::Running) {
        assert!(Instant::now() < deadline, "the second task never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(phase(&uuids[2]), Some(Phase::Queued));
    for u in &uuids {
        loop {
            let (_, _, _, b) =
                post(&s, &s.api_key, &json!([{"taskType": "getResponse", "taskUUID": u}])).await;
            if b["data"][0]["imageUUID"].is_string() {
                break;
            }
            assert!(Instant::now() < deadline, "{b}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(phase(u), None);
    }
}

#[tokio::test]
async fn a_flood_from_one_account_does_not_starve_another() {
    const SERVICE: Duration = Duration::from_millis(200);
    let (s, m) = slow_server(SERVICE, |c| {
        c.limits.model_concurrency = 2;
        c.limits.max_queued = 2000;
        c.server.max_tasks_per_request = 100;
    })
    .await;
    // Account "default" floods the model with 1,000 async tasks.
    for _ in 0..10 {
        let batch: Vec<Value> = (0..100).map(|_| image(&task_uuid(), Some(SLOW), "async")).collect();
        let (st, _, _, b) = post(&s, &s.api_key, &Value::Array(batch)).await;
        assert_eq!(st, 200, "{}", &b.to_string()[..300.min(b.to_string().len())]);
    }
    let flooder = s.engine.store().account_by_name("default").await.unwrap().unwrap().id;
    // Another account's single sync task.
    s.engine.admin().create_account("second", "1").await.unwrap();
    let key = s.create_key("second", &[]).await;
    let t = Instant::now();
    let (st, _, _, b) = post(&s, &key, &json!([image(&task_uuid(), Some(SLOW), "sync")])).await;
    let took = t.elapsed();
    assert_eq!(st, 200, "{b}");
    // At most: the running task ahead finishing (one service time), then its own, plus
    // scheduling. First-come-first-served would be 1,000 / 2 service times (100 s).
    assert!(took < SERVICE * 2 + Duration::from_millis(400), "the second account waited {took:?}");
    let view = s.engine.limits_view(flooder).await.unwrap();
    let slow = view.models.iter().find(|x| x.model == SLOW).unwrap();
    assert!(slow.queued > 900, "the flood is still queued: {}", slow.queued);
    assert!(slow.running <= 2);
    assert!(m.calls("POST", "/v1/images/generations") < 20);
}

#[tokio::test]
async fn a_model_s_own_concurrency_overrides_the_shared_default() {
    const OTHER: &str = "acme:other@1";
    for default in [0, 3] {
        let (s, _m) = slow_server(Duration::from_millis(1_500), |c| {
            c.limits.model_concurrency = default;
            let mut other = c.models[0].clone();
            other.air = OTHER.into();
            c.models[0].concurrency = 2;
            c.models.push(other);
        })
        .await;
        for model in [SLOW, OTHER] {
            let batch: Vec<Value> = (0..6).map(|_| image(&task_uuid(), Some(model), "async")).collect();
            assert_eq!(post(&s, &s.api_key, &Value::Array(batch)).await.0, 200);
        }
        let account = s.engine.store().account_by_name("default").await.unwrap().unwrap().id;
        let deadline = Instant::now() + Duration::from_secs(1);
        let view = loop {
            let view = s.engine.limits_view(account).await.unwrap();
            let started: u32 = view.models.iter().map(|m| m.running).sum();
            if started >= 2 + if default == 0 { 6 } else { 3 } || Instant::now() > deadline {
                break view;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let of = |model: &str| {
            let m = view.models.iter().find(|x| x.model == model).unwrap();
            (m.running, m.queued)
        };
        assert_eq!(of(SLOW), (2, 4), "its own concurrency, whatever the default ({default})");
        let other = if default == 0 { (6, 0) } else { (3, 3) };
        assert_eq!(of(OTHER), other, "the shared default ({default})");
    }
}

#[tokio::test]
async fn daily_cap_is_429_until_the_oldest_task_leaves_the_window() {
    let s = TestServer::start().await;
    let air = mediagate_core::model::PROCEDURAL_AIR;
    s.engine
        .admin()
        .set_limits("default", Some(air), LimitValues { max_daily: Some(3), ..Default::default() })
        .await
        .unwrap();
    s.engine.reload_limits().await.unwrap();
    let first = json!([image(&task_uuid(), None, "sync")]);
    assert_eq!(post(&s, &s.api_key, &first).await.0, 200);
    for _ in 0..2 {
        let (st, _, _, b) = post(&s, &s.api_key, &json!([image(&task_uuid(), None, "sync")])).await;
        assert_eq!(st, 200, "{b}");
    }
    let (st, secs, _, b) = post(&s, &s.api_key, &json!([image(&task_uuid(), None, "sync")])).await;
    assert_eq!((st, code(&b)), (429, "dailyLimitExceeded"), "{b}");
    let secs = secs.unwrap();
    assert!((86_390..=86_400).contains(&secs), "{secs}");
    assert_eq!(b["errors"][0]["parameter"], "model");
    // A replay of an admitted task is still answered (limits apply to new tasks only).
    let (st, _, _, b) = post(&s, &s.api_key, &first).await;
    assert_eq!(st, 200, "{b}");
    let account = s.engine.store().account_by_name("default").await.unwrap().unwrap().id;
    let view = s.engine.limits_view(account).await.unwrap();
    let m = view.models.iter().find(|m| m.model == air).unwrap();
    assert_eq!((m.max_daily, m.daily_used), (3, 3));
    // Other models are not capped.
    assert!(view.models.iter().filter(|x| x.model != air).all(|x| x.max_daily == 0));
}

#[tokio::test]
async fn daily_count_survives_a_restart_of_the_limits_state() {
    // The count is loaded from the store the first time a capped pair is checked: tasks run
    // before the cap was set count.
    let s = TestServer::start().await;
    let air = mediagate_core::model::PROCEDURAL_AIR;
    for _ in 0..2 {
        assert_eq!(post(&s, &s.api_key, &json!([image(&task_uuid(), None, "sync")])).await.0, 200);
    }
    s.engine
        .admin()
        .set_limits("default", Some(air), LimitValues { max_daily: Some(3), ..Default::default() })
        .await
        .unwrap();
    s.engine.reload_limits().await.unwrap();
    assert_eq!(post(&s, &s.api_key, &json!([image(&task_uuid(), None, "sync")])).await.0, 200);
    assert_eq!(post(&s, &s.api_key, &json!([image(&task_uuid(), None, "sync")])).await.0, 429);
}

#[tokio::test]
async fn monthly_spend_cap_is_402_with_its_own_code() {
    let s = TestServer::start_with(|c| c.limits.max_monthly_spend_usd = "0.0015".into()).await;
    // $0.0006 each: two fit under $0.0015, a third does not.
    for _ in 0..2 {
        assert_eq!(post(&s, &s.api_key, &json!([image(&task_uuid(), None, "sync")])).await.0, 200);
    }
    let before = s.balance("default").await;
    let (st, secs, _, b) = post(&s, &s.api_key, &json!([image(&task_uuid(), None, "sync")])).await;
    assert_eq!((st, code(&b)), (402, "monthlySpendLimitExceeded"), "{b}");
    assert_eq!(secs, None, "no Retry-After on 402");
    let msg = b["errors"][0]["message"].as_str().unwrap();
    assert!(msg.contains("$0.0012") && msg.contains("$0.0015"), "{msg}");
    assert_eq!(s.balance("default").await, before, "nothing charged");
    let account = s.engine.store().account_by_name("default").await.unwrap().unwrap().id;
    let view = s.engine.limits_view(account).await.unwrap();
    assert_eq!((view.month_spend_micros, view.max_monthly_spend_micros), (1200, 1500));
    // Raising the cap for the account lets it through.
    s.engine
        .admin()
        .set_limits(
            "default",
            None,
            LimitValues { max_monthly_spend_micros: Some(10_000), ..Default::default() },
        )
        .await
        .unwrap();
    s.engine.reload_limits().await.unwrap();
    assert_eq!(post(&s, &s.api_key, &json!([image(&task_uuid(), None, "sync")])).await.0, 200);
}

#[tokio::test]
async fn scopes_name_what_the_key_lacks() {
    let s = TestServer::start().await;
    let runway_only = s.create_key("default", &["dialect:runway"]).await;
    let (st, _, _, b) = post(&s, &runway_only, &json!([image(&task_uuid(), None, "sync")])).await;
    assert_eq!((st, code(&b)), (403, "insufficientPermissions"), "{b}");
    let msg = b["errors"][0]["message"].as_str().unwrap();
    assert!(msg.contains("dialect:runware") && msg.contains("its scopes: dialect:runway"), "{msg}");
    let model_only = s.create_key("default", &["model:mediagate:nope@1"]).await;
    let (st, _, _, b) = post(&s, &model_only, &json!([image(&task_uuid(), None, "sync")])).await;
    assert_eq!(st, 403, "{b}");
    assert!(
        b["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("model:{}", mediagate_core::model::PROCEDURAL_AIR))
    );
    assert_eq!(b["errors"][0]["parameter"], "model");
    // Within its scopes a key works.
    let ok = s.create_key("default", &["dialect:runware", "task:imageInference"]).await;
    assert_eq!(post(&s, &ok, &json!([image(&task_uuid(), None, "sync")])).await.0, 200);
}
