//! Webhooks over real HTTPS (a loopback receiver with a run-time CA): one signed POST per
//! result carrying the flat task object, retries with backoff, recorded attempts, SSRF rules.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use mediagate_testkit::asset_server::{AssetServer, Route};
use mediagate_testkit::{TestServer, task_uuid};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn receiver_and_server(
    tweak: impl FnOnce(&mut mediagate_engine::config::Config),
) -> (AssetServer, TestServer) {
    let hooks = AssetServer::builder().host("hooks.test").start().await;
    let (host, ip, ca) = (hooks.host().to_string(), hooks.addr().ip(), hooks.ca_file().to_path_buf());
    let s = TestServer::start_with(move |c| {
        c.assets.resolve.insert(host, vec![ip]);
        c.assets.allowed_networks = vec![ipnet::IpNet::from(ip)];
        c.assets.extra_ca_certs = vec![ca];
        c.webhooks.initial_delay_ms = 20;
        tweak(c);
    })
    .await;
    (hooks, s)
}

async fn deliveries(s: &TestServer, task: &str, until: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = s
            .http
            .get(format!("{}/v1/webhooks/deliveries?taskUUID={task}", s.base_url))
            .bearer_auth(&s.api_key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let b: Value = r.json().await.unwrap();
        if until(&b["data"]) {
            return b["data"].clone();
        }
        assert!(Instant::now() < deadline, "deliveries never settled: {b}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

fn verify(secret: &str, id: &str, ts: &str, body: &[u8], sig: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD.decode(secret.trim_start_matches("whsec_")).unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    sig.split(' ').any(|s| s == format!("v1,{want}"))
}

#[tokio::test]
async fn each_result_is_posted_signed_and_recorded() {
    let (hooks, s) = receiver_and_server(|_| {}).await;
    hooks.route("/hook?token=abc", Route::ok("text/plain", b"ok".to_vec()));
    let u = task_uuid();
    let (st, b) = s
        .post(&json!([{"taskType": "imageInference", "taskUUID": u, "positivePrompt": "hooked", "width": 64,
                       "height": 64, "numberResults": 2, "includeCost": true,
                       "webhookURL": hooks.url("/hook?token=abc")}]))
        .await;
    assert_eq!(st, 200, "{b}");
    let list = deliveries(&s, &u, |d| {
        d.as_array().is_some_and(|a| a.len() == 2 && a.iter().all(|x| x["status"] == "delivered"))
    })
    .await;
    let secret = s.engine.webhook_secret(1, false).await.unwrap();
    let posts: Vec<_> = hooks.requests().into_iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), 2, "one POST per result");
    for p in &posts {
        assert_eq!(p.path, "/hook?token=abc", "query-string auth is kept");
        let body: Value = serde_json::from_slice(&p.body).unwrap();
        assert_eq!(body["taskUUID"], u, "the flat task object, no data wrapper");
        assert_eq!(body["taskType"], "imageInference");
        assert!(body["imageURL"].is_string() && body["seed"].is_u64() && body["cost"] == 0.0006, "{body}");
        let (id, ts, sig) = (
            p.header("webhook-id").unwrap(),
            p.header("webhook-timestamp").unwrap(),
            p.header("webhook-signature").unwrap(),
        );
        assert!(verify(&secret, id, ts, &p.body, sig), "signature verifies with the account secret");
        assert!(!verify("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", id, ts, &p.body, sig));
        assert!(list.as_array().unwrap().iter().any(|d| d["webhookId"] == id));
    }
    for d in list.as_array().unwrap() {
        assert_eq!(d["attempts"].as_array().unwrap().len(), 1);
        assert_eq!(d["attempts"][0]["statusCode"], 200);
    }
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_the_same_id_then_given_up() {
    let (hooks, s) = receiver_and_server(|c| c.webhooks.max_attempts = 4).await;
    hooks.route("/flaky", Route::ok("text/plain", b"ok".to_vec()).fail_first(2, 503));
    hooks.route("/down", Route::status_only(500));
    let (a, b) = (task_uuid(), task_uuid());
    for (u, path) in [(&a, "/flaky"), (&b, "/down")] {
        let (st, _) = s
            .post(&json!([{"taskType": "imageInference", "taskUUID": u, "positivePrompt": "retry me", "width": 64,
                           "height": 64, "webhookURL": hooks.url(path)}]))
            .await;
        assert_eq!(st, 200);
    }
    let flaky = deliveries(&s, &a, |d| d[0]["status"] == "delivered").await;
    let codes: Vec<_> =
        flaky[0]["attempts"].as_array().unwrap().iter().map(|x| x["statusCode"].clone()).collect();
    assert_eq!(codes, vec![json!(503), json!(503), json!(200)]);
    let ids: Vec<_> = hooks
        .requests()
        .iter()
        .filter(|r| r.path == "/flaky")
        .map(|r| r.header("webhook-id").unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|i| *i == ids[0]), "retries keep the webhook-id");
    let down = deliveries(&s, &b, |d| d[0]["status"] == "failed").await;
    assert_eq!(down[0]["attempts"].as_array().unwrap().len(), 4, "max_attempts");
    assert!(down[0]["attempts"][3]["error"].as_str().unwrap().contains("500"));
    // One delivery of each outcome, counted once each however many attempts it took.
    let m = s.http.get(format!("{}/metrics", s.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("mediagate_webhook_deliveries_total{outcome=\"delivered\"} 1\n"), "{m}");
    assert!(m.contains("mediagate_webhook_deliveries_total{outcome=\"failed\"} 1\n"), "{m}");
}

#[tokio::test]
async fn webhook_urls_follow_the_asset_url_rules() {
    let (_hooks, s) = receiver_and_server(|_| {}).await;
    for url in ["http://hooks.test/x", "https://127.0.0.1/x", "https://user:pw@hooks.test/x"] {
        let (st, b) = s
            .post(&json!([{"taskType": "imageInference", "taskUUID": task_uuid(), "positivePrompt": "no", "webhookURL": url}]))
            .await;
        assert_eq!((st, b["errors"][0]["parameter"].as_str()), (400, Some("webhookURL")), "{url}: {b}");
    }
    // A host that resolves to a private address is refused when called, and recorded as such.
    let s2 = TestServer::start_with(|c| {
        c.assets.resolve.insert("internal.test".into(), vec!["10.0.0.1".parse().unwrap()]);
        c.webhooks.max_attempts = 1;
    })
    .await;
    let u = task_uuid();
    let (st, _) = s2
        .post(&json!([{"taskType": "imageInference", "taskUUID": u, "positivePrompt": "ssrf", "width": 64, "height": 64,
                       "webhookURL": "https://internal.test/steal"}]))
        .await;
    assert_eq!(st, 200, "the task itself succeeds");
    let d = deliveries(&s2, &u, |d| d[0]["status"] == "failed").await;
    let err = d[0]["attempts"][0]["error"].as_str().unwrap();
    assert!(err.contains("non-public") || err.contains("blocked"), "{err}");
}
