//! What an operator and the edge stack give every request, over real HTTP: request ids, one
//! bearer reading on every surface, panics answered in the dialect's shape, `/livez`,
//! `/readyz` and Prometheus metrics counted exactly.

use futures::{SinkExt, StreamExt};
use mediagate_testkit::{TestServer, task_uuid};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const RUNWAY_VERSION: &str = "2024-11-06";

async fn admin_key(s: &TestServer) -> String {
    s.engine.admin().create_admin_key("ops").await.unwrap().1
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_sent_one_is_kept() {
    let s = TestServer::start().await;
    for path in ["/v1/tasks/00000000-0000-4000-8000-000000000000", "/livez", "/nowhere", "/admin/v1/accounts"]
    {
        let r = s.http.get(format!("{}{path}", s.base_url)).send().await.unwrap();
        let id = r.headers().get("x-request-id").unwrap_or_else(|| panic!("{path}: no x-request-id"));
        assert!(uuid::Uuid::parse_str(id.to_str().unwrap()).is_ok(), "{path}: {id:?}");
        let r = s
            .http
            .get(format!("{}{path}", s.base_url))
            .header("x-request-id", "trace-me-42")
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-request-id"], "trace-me-42", "{path}");
    }
}

#[tokio::test]
async fn the_bearer_scheme_is_read_without_regard_to_case_on_every_surface() {
    let s = TestServer::start().await;
    let admin = admin_key(&s).await;
    let ping = json!([{"taskType": "ping", "ping": true}]);
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let r = s
            .http
            .post(format!("{}/v1", s.base_url))
            .header("authorization", format!("{scheme} {}", s.api_key))
            .json(&ping)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "runware, {scheme}");
        let r = s
            .http
            .get(format!("{}/v1/organization", s.base_url))
            .header("authorization", format!("{scheme} {}", s.api_key))
            .header("x-runway-version", RUNWAY_VERSION)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "runway, {scheme}");
        let r = s
            .http
            .get(format!("{}/admin/v1/accounts", s.base_url))
            .header("authorization", format!("{scheme} {admin}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "admin, {scheme}");
    }
    // Another scheme is refused alike everywhere.
    let basic = format!("Basic {}", s.api_key);
    let r = s.http.post(format!("{}/v1", s.base_url)).header("authorization", &basic).json(&ping);
    assert_eq!(r.send().await.unwrap().status(), 401);
    let r = s
        .http
        .get(format!("{}/v1/organization", s.base_url))
        .header("authorization", &basic)
        .header("x-runway-version", RUNWAY_VERSION);
    assert_eq!(r.send().await.unwrap().status(), 401);
    let r = s.http.get(format!("{}/admin/v1/accounts", s.base_url)).header("authorization", &basic);
    assert_eq!(r.send().await.unwrap().status(), 401);
}

/// A handler with a bug.
async fn panics() -> &'static str {
    panic!("a bug in a handler")
}

#[tokio::test]
async fn a_panicking_handler_is_answered_500_in_its_dialect_and_the_server_carries_on() {
    let s = TestServer::start().await;
    // The server's own routes and edge layers, plus two routes that panic.
    let extra = axum::Router::new()
        .route("/v1/tasks/panic", axum::routing::get(panics))
        .route("/v1/panic", axum::routing::post(panics));
    let app = mediagate_server::router_with(s.engine.clone(), extra);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let r = s.http.get(format!("{base}/v1/tasks/panic")).header("x-runway-version", RUNWAY_VERSION);
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 500);
    assert!(r.headers().contains_key("x-request-id"));
    let b: Value = r.json().await.unwrap();
    assert!(b["error"].as_str().unwrap().contains("Internal error"), "Runway's shape: {b}");
    assert!(b["docUrl"].as_str().is_some(), "{b}");

    let r = s.http.post(format!("{base}/v1/panic")).send().await.unwrap();
    assert_eq!(r.status(), 500);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["errors"][0]["code"], "internalServerError", "Runware's shape: {b}");

    // The same server goes on answering, and counted both.
    let r = s.http.get(format!("{base}/livez")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let metrics = s.http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(
            r#"mediagate_http_requests_total{dialect="runway",route="/v1/tasks/panic",status="500"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn livez_and_readyz_say_what_is_wrong() {
    let s = TestServer::start().await;
    let get = |path: &'static str| {
        let s = &s;
        async move {
            let r = s.http.get(format!("{}{path}", s.base_url)).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(get("/livez").await, (200, json!({"status": "live"})));
    let (st, b) = get("/readyz").await;
    assert_eq!((st, &b["status"]), (200, &json!("ready")), "{b}");
    assert_eq!(b["checks"]["store"]["ok"], true);
    let version = b["checks"]["store"]["schemaVersion"].as_i64().unwrap();
    assert!(version > 0);

    // A database another build migrated further: not ready, and why.
    let db = s.engine.config().database_path();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "user_version", version + 1).unwrap();
    let (st, b) = get("/readyz").await;
    assert_eq!((st, &b["status"]), (503, &json!("not ready")), "{b}");
    let why = b["checks"]["store"]["error"].as_str().unwrap();
    assert!(
        why.contains(&format!("version {}", version + 1)) && why.contains(&format!("needs {version}")),
        "{why}"
    );
    conn.pragma_update(None, "user_version", version).unwrap();
    assert_eq!(get("/readyz").await.0, 200);
}

#[tokio::test]
async fn readyz_lists_each_provider_and_a_down_one_does_not_make_the_server_unready() {
    // An upstream nobody listens on (a port just bound and released).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let s = TestServer::start_with(|c| {
        mediagate_testkit::server::serve_models_from(
            c,
            "gone-upstream",
            mediagate_providers::upstream::UpstreamKind::OpenaiImages,
            &format!("http://127.0.0.1:{port}"),
            "0.001",
            &[("test:gone@1", mediagate_core::task::TaskType::ImageInference)],
        )
    })
    .await;
    let r = s.http.get(format!("{}/readyz", s.base_url)).send().await.unwrap();
    assert_eq!(r.status(), 200, "a provider down leaves the server ready");
    let b: Value = r.json().await.unwrap();
    let providers = &b["checks"]["providers"];
    assert_eq!(providers["ok"], false, "{b}");
    assert_eq!(
        providers["each"]["procedural"],
        json!({"ok": true, "health": "healthy", "circuit": "closed"}),
        "{b}"
    );
    let gone = &providers["each"]["gone-upstream"];
    assert_eq!(
        (&gone["ok"], &gone["health"], &gone["circuit"]),
        (&json!(false), &json!("unhealthy"), &json!("closed")),
        "{b}"
    );
    assert!(gone["error"].as_str().is_some_and(|e| !e.is_empty()), "says why: {b}");
}

/// The value of one sample line of the OpenMetrics text, 0 when absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn metrics_count_requests_tasks_and_charges_exactly() {
    let s = TestServer::start().await;
    let image = || {
        json!({"taskType": "imageInference", "taskUUID": task_uuid(), "positivePrompt": "a fox",
                           "model": "mediagate:procedural@1", "width": 64, "height": 64})
    };
    // Two requests, three images; one refused at validation (no task); one upscale that fails
    // once running (its input does not exist) and is refunded.
    assert_eq!(s.post(&json!([image(), image()])).await.0, 200);
    assert_eq!(s.post(&json!([image()])).await.0, 200);
    let mut bad = image();
    bad["width"] = json!(100);
    assert_eq!(s.post(&json!([bad])).await.0, 400);
    let missing = json!([{"taskType": "upscale", "taskUUID": task_uuid(),
                          "inputImage": uuid::Uuid::new_v4().to_string(), "upscaleFactor": 2}]);
    let (st, b) = s.post(&missing).await;
    assert_eq!(st, 400, "{b}");
    let code = b["errors"][0]["code"].as_str().unwrap().to_string();

    let r = s.http.get(format!("{}/metrics", s.base_url)).send().await.unwrap();
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let m = r.text().await.unwrap();
    let runware = |status: u16| {
        sample(
            &m,
            &format!(r#"mediagate_http_requests_total{{dialect="runware",route="/v1",status="{status}"}}"#),
        )
    };
    assert_eq!((runware(200), runware(400)), (2.0, 2.0), "{m}");
    let tasks = |tt: &str, model: &str, outcome: &str, code: &str| {
        sample(
            &m,
            &format!(
                r#"mediagate_tasks_total{{task_type="{tt}",model="{model}",outcome="{outcome}",code="{code}"}}"#
            ),
        )
    };
    assert_eq!(tasks("imageInference", "mediagate:procedural@1", "success", ""), 3.0, "{m}");
    // The upscale was admitted and failed once it looked for its input: counted with its code.
    assert_eq!(code, "assetNotFound");
    assert_eq!(tasks("upscale", "mediagate:lanczos@1", "error", &code), 1.0, "{m}");
    let price =
        s.engine.catalog().models().find(|x| x.spec.air == "mediagate:procedural@1").unwrap().price_micros;
    assert_eq!(sample(&m, "mediagate_credits_charged_micros_total"), 3.0 * price as f64, "{m}");
    assert_eq!(
        sample(
            &m,
            r#"mediagate_task_duration_seconds_count{task_type="imageInference",model="mediagate:procedural@1"}"#
        ),
        3.0,
        "{m}"
    );
    // The failed upscale's reservation came back; the small images cost what they reserved.
    let lanczos =
        s.engine.catalog().models().find(|x| x.spec.air == "mediagate:lanczos@1").unwrap().price_micros;
    assert_eq!(sample(&m, "mediagate_credits_refunded_micros_total"), lanczos as f64, "{m}");
    // Three calls to the procedural provider; none to lanczos (the upscale failed on its input,
    // whose resolution is counted as a failed one).
    let attempts = |provider: &str, outcome: &str, code: &str| {
        sample(
            &m,
            &format!(
                r#"mediagate_provider_attempts_total{{provider="{provider}",outcome="{outcome}",code="{code}"}}"#
            ),
        )
    };
    assert_eq!(attempts("procedural", "success", ""), 3.0, "{m}");
    assert!(!m.contains(r#"mediagate_provider_attempts_total{provider="lanczos""#), "{m}");
    assert_eq!(
        sample(&m, r#"mediagate_provider_attempt_duration_seconds_count{provider="procedural"}"#),
        3.0,
        "{m}"
    );
    assert_eq!(
        sample(&m, r#"mediagate_asset_resolve_duration_seconds_count{source="none",outcome="error"}"#),
        1.0,
        "{m}"
    );
    assert_eq!(sample(&m, r#"mediagate_provider_circuit{provider="procedural",state="closed"}"#), 1.0, "{m}");
    assert_eq!(sample(&m, r#"mediagate_provider_circuit{provider="procedural",state="open"}"#), 0.0, "{m}");
    // Every task's admission and end went through the SQLite writer: at least one commit per
    // task (six writes for three images and the upscale, at least), inline or grouped.
    let commits = sample(&m, r#"mediagate_store_commits_total{path="inline"}"#)
        + sample(&m, r#"mediagate_store_commits_total{path="batch"}"#);
    let writes = sample(&m, r#"mediagate_store_committed_writes_total{path="inline"}"#)
        + sample(&m, r#"mediagate_store_committed_writes_total{path="batch"}"#);
    assert!(commits >= 1.0 && writes >= 8.0 && writes >= commits, "{commits} commits, {writes} writes: {m}");
    // The scrape itself is counted once it is answered.
    let m2 = s.http.get(format!("{}/metrics", s.base_url)).send().await.unwrap().text().await.unwrap();
    assert_eq!(
        sample(&m2, r#"mediagate_http_requests_total{dialect="server",route="/metrics",status="200"}"#),
        1.0
    );

    // An open WebSocket is counted while it lives.
    let url = format!("{}/v1", s.base_url.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::Text(json!([{"taskType": "authentication", "apiKey": s.api_key}]).to_string().into()))
        .await
        .unwrap();
    let _ = ws.next().await;
    let scrape = || async {
        let m = s.http.get(format!("{}/metrics", s.base_url)).send().await.unwrap().text().await.unwrap();
        sample(&m, "mediagate_websocket_connections")
    };
    assert_eq!(scrape().await, 1.0);
    ws.close(None).await.unwrap();
    drop(ws);
    let deadline = Instant::now() + Duration::from_secs(5);
    while scrape().await != 0.0 {
        assert!(Instant::now() < deadline, "the closed socket is still counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn metrics_count_each_provider_attempt_and_show_an_open_circuit() {
    let upstream = mediagate_testkit::mock_upstream::MockUpstream::start().await;
    upstream.on("POST", "/v1/images/generations", vec![mediagate_testkit::mock_upstream::Reply::status(500)]);
    let s = TestServer::start_with(|c| {
        mediagate_testkit::mock_upstream::serve_image_model_from_mock(c, &upstream.url(""), "test:flaky@1");
        c.providers.upstreams[0].breaker_failures = 2;
        c.models[0].retry.attempts = 2;
    })
    .await;
    let image = json!([{"taskType": "imageInference", "taskUUID": task_uuid(), "positivePrompt": "a fox",
                        "model": "test:flaky@1", "width": 64, "height": 64}]);
    // Two failed attempts (a retry) open the circuit; the next task is refused by it.
    let (st, b) = s.post(&image).await;
    assert!(st >= 500, "{b}");
    let code = b["errors"][0]["code"].as_str().unwrap().to_string();
    let mut again = image.clone();
    again[0]["taskUUID"] = json!(task_uuid());
    let _ = s.post(&again).await;
    assert_eq!(upstream.calls("POST", "/v1/images/generations"), 2);
    let m = s.http.get(format!("{}/metrics", s.base_url)).send().await.unwrap().text().await.unwrap();
    assert_eq!(
        sample(
            &m,
            &format!(r#"mediagate_provider_attempts_total{{provider="mock",outcome="error",code="{code}"}}"#)
        ),
        2.0,
        "{m}"
    );
    assert_eq!(
        sample(&m, r#"mediagate_provider_attempts_total{provider="mock",outcome="circuit_open",code=""}"#),
        1.0,
        "{m}"
    );
    assert_eq!(
        sample(&m, r#"mediagate_provider_attempt_duration_seconds_count{provider="mock"}"#),
        2.0,
        "{m}"
    );
    assert_eq!(sample(&m, r#"mediagate_provider_circuit{provider="mock",state="open"}"#), 1.0, "{m}");
    assert_eq!(sample(&m, r#"mediagate_provider_circuit{provider="mock",state="closed"}"#), 0.0, "{m}");
    // Both tasks failed: their reservations came back in full.
    assert_eq!(sample(&m, "mediagate_credits_refunded_micros_total"), 2000.0, "{m}");
    assert_eq!(sample(&m, "mediagate_credits_charged_micros_total"), 0.0, "{m}");
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let s = TestServer::start_with(|c| c.server.metrics_enabled = false).await;
    let r = s.http.get(format!("{}/metrics", s.base_url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let b: Value = r.json().await.unwrap();
    assert!(b["errors"][0]["message"].as_str().unwrap().contains("server.metrics_enabled"), "{b}");
}

/// The `Server-Timing` figures of a response, by name, in milliseconds.
fn server_timing(headers: &reqwest::header::HeaderMap) -> std::collections::BTreeMap<String, f64> {
    let Some(v) = headers.get("server-timing") else { return Default::default() };
    v.to_str()
        .unwrap()
        .split(',')
        .map(|m| {
            let (name, dur) = m.trim().split_once(";dur=").unwrap_or_else(|| panic!("{m}"));
            (name.to_string(), dur.parse::<f64>().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn server_timing_says_where_a_task_s_time_went() {
    let s = TestServer::start().await;
    let post = |body: Value| {
        let s = &s;
        async move {
            let r = s
                .http
                .post(format!("{}/v1", s.base_url))
                .bearer_auth(&s.api_key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let t = server_timing(r.headers());
            (r.status().as_u16(), t, r.json::<Value>().await.unwrap())
        }
    };
    let names = |t: &std::collections::BTreeMap<String, f64>| t.keys().cloned().collect::<Vec<_>>();
    let want = vec!["provider", "queue", "store", "total"];

    // A sync task this process ran: every figure measured, the parts within the whole.
    let image = |delivery: &str| {
        json!([{"taskType": "imageInference", "taskUUID": task_uuid(), "positivePrompt": "a fox",
                                         "width": 256, "height": 256, "deliveryMethod": delivery}])
    };
    let (st, t, _) = post(image("sync")).await;
    assert_eq!(st, 200);
    assert_eq!(names(&t), want, "{t:?}");
    assert!(t["provider"] > 0.0 && t["store"] > 0.0, "{t:?}");
    assert!(t["total"] + 0.01 >= t["queue"] + t["provider"], "{t:?}");

    // A ping carries no task's end, so no figures.
    let (_, t, _) = post(json!([{"taskType": "ping", "ping": true}])).await;
    assert!(t.is_empty(), "{t:?}");

    // An async task polled once it ended: the figures its record keeps.
    let (_, t, b) = post(image("async")).await;
    assert!(t.is_empty(), "an acknowledgement carries no end: {t:?}");
    let uuid = b["data"][0]["taskUUID"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let t = loop {
        let (_, t, b) = post(json!([{"taskType": "getResponse", "taskUUID": uuid}])).await;
        if b["data"][0]["status"] == "success" {
            break t;
        }
        assert!(t.is_empty(), "an unfinished task has no figures yet: {t:?}");
        assert!(Instant::now() < deadline, "{b}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(names(&t), want, "{t:?}");
    assert!(t["provider"] > 0.0 && t["total"] + 1.0 >= t["provider"], "{t:?}");
    let rec = s.engine.store().get_task(
        s.engine.store().account_by_name("default").await.unwrap().unwrap().id,
        uuid.parse().unwrap(),
    );
    assert!(rec.await.unwrap().unwrap().timings.is_some());

    // A Runway task polled once it ended.
    let r = s
        .http
        .post(format!("{}/v1/text_to_image", s.base_url))
        .bearer_auth(&s.api_key)
        .header("x-runway-version", RUNWAY_VERSION)
        .json(&json!({"model": "gen4_image", "promptText": "a fox", "ratio": "720:720"}))
        .send()
        .await
        .unwrap();
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let t = loop {
        let r = s
            .http
            .get(format!("{}/v1/tasks/{id}", s.base_url))
            .bearer_auth(&s.api_key)
            .header("x-runway-version", RUNWAY_VERSION)
            .send()
            .await
            .unwrap();
        let t = server_timing(r.headers());
        if r.json::<Value>().await.unwrap()["status"] == "SUCCEEDED" {
            break t;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(names(&t), want, "{t:?}");

    // The same phases feed the metrics: three tasks ran here.
    let m = s.http.get(format!("{}/metrics", s.base_url)).send().await.unwrap().text().await.unwrap();
    for phase in ["queue", "provider", "store"] {
        assert_eq!(
            sample(&m, &format!(r#"mediagate_task_phase_duration_seconds_count{{phase="{phase}"}}"#)),
            3.0,
            "{m}"
        );
    }
}
