//! Hardening (issue 16) over real HTTP and WebSocket: key scopes hold on every route, not only
//! at task submission; refused requests leave nothing behind; one account's requests have no
//! effect on another's data; a deleted taskUUID stays taken.

use base64::Engine as _;
use futures::{SinkExt, StreamExt};
use mediagate_core::task::TaskType;
use mediagate_testkit::asset_server::{AssetServer, Route};
use mediagate_testkit::mock_upstream::{MockUpstream, openai_b64_reply, png as mock_png};
use mediagate_testkit::{TestServer, task_uuid};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const VERSION: &str = "2024-11-06";

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A Runway request with `key`.
async fn runway(
    s: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
    key: &str,
) -> (u16, Value) {
    let mut r = s
        .http
        .request(method, format!("{}{path}", s.base_url))
        .header("Authorization", format!("Bearer {key}"))
        .header("X-Runway-Version", VERSION);
    if let Some(b) = body {
        r = r.json(b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(json!(text)) })
}

/// The first Runware error's code.
fn runware_code(b: &Value) -> &str {
    b["errors"][0]["code"].as_str().unwrap_or("")
}

/// Uploads (outputs that belong to no task) the store holds, of every account. Destructive:
/// it takes them out, so call it last.
async fn uploads_left(s: &TestServer) -> usize {
    let all = s.engine.store().take_expired_outputs(i64::MAX, 10_000).await.unwrap();
    all.iter().filter(|o| o.task_uuid.is_none()).count()
}

/// An asset server serving one PNG at `/in.png`, and a server that trusts it.
async fn with_assets(
    adjust: impl FnOnce(&mut mediagate_engine::config::Config),
) -> (AssetServer, TestServer) {
    let assets = AssetServer::builder().host("assets.test").start().await;
    assets.route("/in.png", Route::ok("image/png", png(64, 64)));
    let (host, ip, ca) = (assets.host().to_string(), assets.addr().ip(), assets.ca_file().to_path_buf());
    let s = TestServer::start_with(move |c| {
        c.assets.resolve.insert(host, vec![ip]);
        c.assets.allowed_networks = vec![ipnet::IpNet::from(ip)];
        c.assets.extra_ca_certs = vec![ca];
        adjust(c);
    })
    .await;
    (assets, s)
}

#[tokio::test]
async fn hardening_reading_or_cancelling_a_task_needs_its_task_scope() {
    let s = TestServer::start().await;
    let upscale_only = s.create_key("default", &["task:upscale"]).await;
    // The account's imageInference task, made with an unrestricted key.
    let u = task_uuid();
    let (st, b) = s
        .post(&json!([{"taskType": "imageInference", "taskUUID": u, "positivePrompt": "a lighthouse",
                       "width": 128, "height": 128, "numberResults": 2, "deliveryMethod": "async"}]))
        .await;
    assert_eq!(st, 200, "{b}");

    // Runware getResponse with the upscale-only key: 403, naming the scope it lacks.
    let (st, b) = s.post_with_key(&upscale_only, &json!([{"taskType": "getResponse", "taskUUID": u}])).await;
    assert_eq!((st, runware_code(&b)), (403, "insufficientPermissions"), "{b}");
    assert!(b["errors"][0]["message"].as_str().unwrap().contains("task:imageInference"), "{b}");
    // Runway GET and DELETE: 403 in Runway's shape, and the DELETE did nothing.
    let path = format!("/v1/tasks/{u}");
    let (st, b) = runway(&s, reqwest::Method::GET, &path, None, &upscale_only).await;
    assert_eq!((st, b["code"].as_str()), (403, Some("insufficientPermissions")), "{b}");
    assert!(b["error"].as_str().unwrap().contains("task:imageInference"), "{b}");
    let (st, b) = runway(&s, reqwest::Method::DELETE, &path, None, &upscale_only).await;
    assert_eq!((st, b["code"].as_str()), (403, Some("insufficientPermissions")), "{b}");
    let (st, b) = runway(&s, reqwest::Method::GET, &path, None, &s.api_key).await;
    assert_eq!(st, 200, "the refused DELETE left the task as it was: {b}");
    assert_ne!(b["status"], "CANCELLED", "{b}");
    // Webhook deliveries are part of the task: the same rule.
    let r = s
        .http
        .get(format!("{}/v1/webhooks/deliveries?taskUUID={u}", s.base_url))
        .bearer_auth(&upscale_only)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // Within its scope the key reads: an upscale task of the account.
    let up = task_uuid();
    let (st, b) = s
        .post(&json!([{"taskType": "upscale", "taskUUID": up, "upscaleFactor": 2,
                       "inputImage": format!("data:image/png;base64,{}", b64(&png(16, 16)))}]))
        .await;
    assert_eq!(st, 200, "{b}");
    let (st, b) = s.post_with_key(&upscale_only, &json!([{"taskType": "getResponse", "taskUUID": up}])).await;
    assert_eq!(st, 200, "{b}");
}

#[tokio::test]
async fn hardening_dialect_scope_holds_on_every_route() {
    let s = TestServer::start().await;
    let runware_only = s.create_key("default", &["dialect:runware"]).await;
    let runway_only = s.create_key("default", &["dialect:runway"]).await;

    // A Runware-only key on Runway routes that create no task.
    for (method, path, body) in [
        (reqwest::Method::GET, "/v1/organization".to_string(), None),
        (
            reqwest::Method::POST,
            "/v1/organization/usage".to_string(),
            Some(json!({"startDate": "2026-01-01", "beforeDate": "2026-01-31"})),
        ),
        (
            reqwest::Method::POST,
            "/v1/uploads".to_string(),
            Some(json!({"filename": "a.png", "type": "ephemeral"})),
        ),
        (reqwest::Method::GET, format!("/v1/tasks/{}", task_uuid()), None),
        (reqwest::Method::DELETE, format!("/v1/tasks/{}", task_uuid()), None),
    ] {
        let (st, b) = runway(&s, method.clone(), &path, body.as_ref(), &runware_only).await;
        assert_eq!((st, b["code"].as_str()), (403, Some("insufficientPermissions")), "{method} {path}: {b}");
        assert!(b["error"].as_str().unwrap().contains("dialect:runway"), "{b}");
    }

    // A Runway-only key on Runware uploads, media deletion and getResponse.
    let image = format!("data:image/png;base64,{}", b64(&png(8, 8)));
    for task in [
        json!({"taskType": "imageUpload", "taskUUID": task_uuid(), "image": image}),
        json!({"taskType": "mediaStorage", "taskUUID": task_uuid(), "operation": "upload", "media": image}),
        json!({"taskType": "mediaStorage", "taskUUID": task_uuid(), "operation": "delete", "mediaUUID": task_uuid()}),
        json!({"taskType": "getResponse", "taskUUID": task_uuid()}),
    ] {
        let (st, b) = s.post_with_key(&runway_only, &json!([task])).await;
        assert_eq!((st, runware_code(&b)), (403, "insufficientPermissions"), "{task}: {b}");
        assert!(b["errors"][0]["message"].as_str().unwrap().contains("dialect:runware"), "{b}");
    }
    // Nothing was stored by the refused uploads.
    let (st, _) = s.post(&json!([{"taskType": "ping", "ping": true}])).await;
    assert_eq!(st, 200);

    // And over the WebSocket: authentication itself is refused.
    let url = format!("{}/v1", s.base_url.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::Text(json!([{"taskType": "authentication", "apiKey": runway_only}]).to_string().into()))
        .await
        .unwrap();
    let reply = loop {
        match tokio::time::timeout(Duration::from_secs(60), ws.next()).await.expect("a reply") {
            Some(Ok(Message::Text(t))) => break serde_json::from_str::<Value>(t.as_str()).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("no reply: {other:?}"),
        }
    };
    assert_eq!(runware_code(&reply), "insufficientPermissions", "{reply}");
    assert_eq!(uploads_left(&s).await, 0);
}

#[tokio::test]
async fn hardening_refused_runway_create_fetches_and_stores_nothing() {
    let (assets, s) = with_assets(|c| {
        // One task per key per 1000 s: the second create passes every check but the rate.
        c.limits.key_rate_per_sec = 0.001;
        c.limits.key_burst = 1;
    })
    .await;
    let body = json!({"model": "gen4_turbo", "ratio": "1280:720", "promptImage": assets.url("/in.png")});

    // A key without the task's scope: 403 before the asset is fetched.
    let upscale_only = s.create_key("default", &["task:upscale"]).await;
    let (st, b) = runway(&s, reqwest::Method::POST, "/v1/image_to_video", Some(&body), &upscale_only).await;
    assert_eq!((st, b["code"].as_str()), (403, Some("insufficientPermissions")), "{b}");
    // An account that cannot pay: 402 before the asset is fetched.
    s.engine.admin().create_account("poor", "0").await.unwrap();
    let poor = s.create_key("poor", &[]).await;
    let (st, b) = runway(&s, reqwest::Method::POST, "/v1/image_to_video", Some(&body), &poor).await;
    assert_eq!((st, b["code"].as_str()), (402, Some("insufficientCredits")), "{b}");
    assert_eq!(assets.requests().len(), 0, "a refused request fetched its asset");

    // Refused only at submission (the key's rate): the asset it stored is deleted again.
    let text = json!({"model": "gen4_image", "promptText": "x", "ratio": "720:720"});
    let (st, b) = runway(&s, reqwest::Method::POST, "/v1/text_to_image", Some(&text), &s.api_key).await;
    assert_eq!(st, 200, "{b}");
    let (st, b) = runway(&s, reqwest::Method::POST, "/v1/image_to_video", Some(&body), &s.api_key).await;
    assert_eq!((st, b["code"].as_str()), (429, Some("rateLimitExceeded")), "{b}");
    assert!(!assets.requests().is_empty(), "the create that passed the pre-checks fetched its asset");
    assert_eq!(uploads_left(&s).await, 0, "a refused create left an upload stored");
}

#[tokio::test]
async fn hardening_naming_another_accounts_upload_changes_nothing_about_it() {
    let s = TestServer::start().await;
    let (st, b) = s
        .post(&json!([{"taskType": "imageUpload", "taskUUID": task_uuid(), "image": b64(&png(16, 16))}]))
        .await;
    assert_eq!(st, 200, "{b}");
    let upload = uuid::Uuid::parse_str(b["data"][0]["imageUUID"].as_str().unwrap()).unwrap();
    let before = s.engine.store().get_output(upload).await.unwrap().unwrap();
    // Expiries are in ms: let the clock move on so that a touch would show.
    tokio::time::sleep(Duration::from_millis(30)).await;

    s.engine.admin().create_account("other", "5").await.unwrap();
    let other = s.create_key("other", &[]).await;
    let (st, b) = s
        .post_with_key(
            &other,
            &json!([{"taskType": "upscale", "taskUUID": task_uuid(), "inputImage": upload, "upscaleFactor": 2}]),
        )
        .await;
    assert_eq!((st, runware_code(&b)), (400, "assetNotFound"), "{b}");
    let after = s.engine.store().get_output(upload).await.unwrap().unwrap();
    assert_eq!(after.expires_at, before.expires_at, "another account's request moved the upload's expiry");

    // The owner's use still keeps it alive (the touch itself still works).
    let (st, b) = s
        .post(&json!([{"taskType": "upscale", "taskUUID": task_uuid(), "inputImage": upload, "upscaleFactor": 2}]))
        .await;
    assert_eq!(st, 200, "{b}");
    let used = s.engine.store().get_output(upload).await.unwrap().unwrap();
    assert!(used.expires_at > before.expires_at, "the owner's use extends the upload");
}

#[tokio::test]
async fn hardening_a_deleted_task_uuid_is_a_clear_conflict_not_a_500() {
    let s = TestServer::start().await;
    let u = task_uuid();
    let task = json!({"taskType": "imageInference", "taskUUID": u, "positivePrompt": "a lighthouse",
                      "width": 128, "height": 128});
    let (st, b) = s.post(&json!([task])).await;
    assert_eq!(st, 200, "{b}");
    let balance = s.balance("default").await;
    // Deleted through the Runway dialect; there it is gone.
    let path = format!("/v1/tasks/{u}");
    assert_eq!(runway(&s, reqwest::Method::DELETE, &path, None, &s.api_key).await.0, 204);
    let (st, b) = runway(&s, reqwest::Method::GET, &path, None, &s.api_key).await;
    assert_eq!((st, b["code"].as_str()), (404, Some("taskNotFound")), "{b}");
    assert_eq!(runway(&s, reqwest::Method::DELETE, &path, None, &s.api_key).await.0, 404);

    // Sent again in the Runware dialect, identical or not: conflictTaskUUID saying why, nothing charged.
    let mut other = task.clone();
    other["positivePrompt"] = json!("a harbour");
    let image = format!("data:image/png;base64,{}", b64(&png(8, 8)));
    for again in [task, other, json!({"taskType": "imageUpload", "taskUUID": u, "image": image})] {
        let (st, b) = s.post(&json!([again])).await;
        assert_eq!((st, runware_code(&b)), (400, "conflictTaskUUID"), "{b}");
        let msg = b["errors"][0]["message"].as_str().unwrap();
        assert!(msg.contains("deleted") && msg.contains("new UUID"), "{msg}");
    }
    assert_eq!(s.balance("default").await, balance);
}

/// A model on a mock upstream whose every call takes `delay`: a task whose results arrive one
/// by one, slowly enough to cancel it in the middle on a loaded machine.
async fn slow_model_server(delay: Duration) -> (TestServer, MockUpstream) {
    let m = MockUpstream::start().await;
    m.count_only();
    m.on(
        "POST",
        "/v1/images/generations",
        vec![openai_b64_reply(1, &mock_png(8, 8, [1, 2, 3])).delay(delay)],
    );
    let base = m.base_url.clone();
    let s = TestServer::start_with(|c| {
        mediagate_testkit::mock_upstream::serve_image_model_from_mock(c, &base, SLOW);
    })
    .await;
    (s, m)
}

const SLOW: &str = "acme:slow@1";

#[tokio::test]
async fn hardening_a_cancelled_task_pays_for_the_results_it_delivered() {
    // 20 results of 300 ms each: six seconds, cancelled after the first.
    let (s, _upstream) = slow_model_server(Duration::from_millis(300)).await;
    let price = s.engine.catalog().resolve(SLOW, TaskType::ImageInference).unwrap().price_micros;
    let before = s.balance("default").await;
    let u = task_uuid();
    let (st, b) = s
        .post(&json!([{"taskType": "imageInference", "taskUUID": u, "model": SLOW, "positivePrompt": "one by one",
                       "width": 128, "height": 128, "numberResults": 20, "deliveryMethod": "async"}]))
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(s.balance("default").await, before - 20 * price, "the whole task is reserved");
    // Wait until some results are delivered while the task still runs, then cancel it.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (_, b) = s.post(&json!([{"taskType": "getResponse", "taskUUID": u}])).await;
        let items = b["data"].as_array().cloned().unwrap_or_default();
        let running = items.iter().any(|i| i["status"] == "processing");
        assert!(running, "the task finished before it could be cancelled: {b}");
        if items.iter().any(|i| i["status"] == "success") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no result within two minutes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let path = format!("/v1/tasks/{u}");
    assert_eq!(runway(&s, reqwest::Method::DELETE, &path, None, &s.api_key).await.0, 204);

    // What was delivered is kept and charged; the rest is refunded.
    let account = s.engine.store().account_by_name("default").await.unwrap().unwrap().id;
    let rec = s.engine.store().get_task(account, uuid::Uuid::parse_str(&u).unwrap()).await.unwrap().unwrap();
    let delivered = rec.results.len() as i64;
    assert!((1..20).contains(&delivered), "{delivered} results");
    assert_eq!(rec.cost_micros, delivered * price);
    assert_eq!(
        s.balance("default").await,
        before - delivered * price,
        "charged exactly the delivered results"
    );
    let (_, b) = s.post(&json!([{"taskType": "getResponse", "taskUUID": u}])).await;
    let items = b["data"].as_array().unwrap();
    let done: Vec<&Value> = items.iter().filter(|i| i["status"] == "success").collect();
    assert_eq!(done.len() as i64, delivered, "{b}");
    let last = items.last().unwrap();
    assert_eq!(
        (last["status"].as_str(), last["error"]["code"].as_str()),
        (Some("error"), Some("taskCancelled")),
        "{b}"
    );
    let url = done[0]["imageURL"].as_str().unwrap();
    assert_eq!(
        s.http.get(url).send().await.unwrap().status().as_u16(),
        200,
        "a charged result is downloadable"
    );
    let (_, b) = runway(&s, reqwest::Method::GET, &path, None, &s.api_key).await;
    assert_eq!(b["status"], "CANCELLED", "{b}");
    assert_eq!(b["output"].as_array().map(Vec::len), Some(delivered as usize), "{b}");
    let credits = ((delivered * price) as f64 / 10_000.0).ceil() as i64;
    assert_eq!(b["cost"]["credits"], json!(credits), "{b}");
}

#[tokio::test]
async fn hardening_a_valid_key_authenticates_from_a_throttled_address() {
    let s = TestServer::start_with(|c| {
        c.limits.invalid_key_burst = 2;
        c.limits.invalid_key_rate_per_sec = 0.01;
        // Short, so the valid key's cache entry lapses while the address is throttled.
        c.auth.cache_ttl_ms = 50;
    })
    .await;
    let ping = json!([{"taskType": "ping", "ping": true}]);
    assert_eq!(s.post(&ping).await.0, 200);
    let unknown = || format!("key_{}", uuid::Uuid::new_v4().simple().to_string().repeat(4));
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(s.post_with_key(&unknown(), &ping).await.0);
    }
    assert_eq!(statuses, [401, 401, 429, 429], "the address is throttled");
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The valid key's cache entry has lapsed; it is looked up and passes.
    let (st, b) = s.post(&ping).await;
    assert_eq!(st, 200, "a valid key was refused from a throttled address: {b}");
    // Failures from the address are still refused.
    let (st, b) = s.post_with_key(&unknown(), &ping).await;
    assert_eq!((st, runware_code(&b)), (429, "rateLimitExceeded"), "{b}");
    assert_eq!(s.post_with_key("nonsense", &ping).await.0, 429);
}

/// Every operation the OpenAPI document marks as taking an API key (tests/openapi.rs checks the
/// document against the routes) refuses a key whose scopes leave out that operation's dialect.
/// A keyed route added without the dialect check fails here, whoever forgets it.
#[tokio::test]
async fn hardening_every_documented_keyed_route_checks_the_dialect_scope() {
    let s = TestServer::start().await;
    let runware_only = s.create_key("default", &["dialect:runware"]).await;
    let runway_only = s.create_key("default", &["dialect:runway"]).await;
    let doc: Value =
        s.http.get(format!("{}/openapi.json", s.base_url)).send().await.unwrap().json().await.unwrap();
    let mut checked = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        // Admin keys, not API keys (tests/admin_api.rs).
        if path.starts_with("/admin/") {
            continue;
        }
        for (method, op) in ops.as_object().unwrap() {
            if op["security"].as_array().is_none_or(|s| s.is_empty()) {
                continue;
            }
            let concrete =
                path.replace("{id}", &task_uuid()).replace("{file}", &format!("{}.png", task_uuid()));
            let m: reqwest::Method = method.to_uppercase().parse().unwrap();
            match op["tags"][0].as_str() {
                Some("runway") => {
                    let (st, b) = runway(&s, m, &concrete, Some(&json!({})), &runware_only).await;
                    assert_eq!(
                        (st, b["code"].as_str()),
                        (403, Some("insufficientPermissions")),
                        "{method} {path}: {b}"
                    );
                }
                // The WebSocket's upgrade: its authentication is a message on the socket, refused
                // the same way (`hardening_dialect_scope_holds_on_every_route`).
                Some("runware") if method == "get" && path == "/v1" => continue,
                Some("runware") => {
                    let r = s.http.request(m, format!("{}{concrete}", s.base_url)).bearer_auth(&runway_only);
                    let r = if method == "post" {
                        r.json(&json!([{"taskType": "ping", "ping": true}]))
                    } else {
                        r
                    };
                    let r = r.send().await.unwrap();
                    let st = r.status().as_u16();
                    let b: Value = r.json().await.unwrap();
                    assert_eq!(
                        (st, runware_code(&b)),
                        (403, "insufficientPermissions"),
                        "{method} {path}: {b}"
                    );
                }
                // History belongs to no dialect: a key scoped to either reads it (only what that
                // key sent itself, tests/history.rs).
                Some("history") => {
                    for key in [&runware_only, &runway_only] {
                        let r =
                            s.http.request(m.clone(), format!("{}{concrete}", s.base_url)).bearer_auth(key);
                        let st = r.send().await.unwrap().status().as_u16();
                        assert!(st == 200 || st == 404, "{method} {path}: {st}");
                    }
                }
                other => panic!("{method} {path} takes an API key but has no dialect tag: {other:?}"),
            }
            checked.push(format!("{method} {path}"));
        }
    }
    // Both dialects' keyed routes were found (the document lists them).
    assert!(
        checked.iter().any(|c| c == "post /v1") && checked.iter().any(|c| c == "get /v1/tasks/{id}"),
        "{checked:?}"
    );
    assert!(checked.len() >= 10, "{checked:?}");
}
