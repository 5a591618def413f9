//! The Runway dialect over real HTTP: every endpoint, status transition and error shape.

use base64::Engine as _;
use mediagate_testkit::TestServer;
use mediagate_testkit::asset_server::{AssetServer, Route};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const VERSION: &str = "2024-11-06";

use mediagate_testkit::images::png_data_uri;

async fn call(s: &TestServer, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    call_with(s, method, path, body, Some(&s.api_key), Some(VERSION)).await
}

async fn call_with(
    s: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
    key: Option<&str>,
    version: Option<&str>,
) -> (u16, Value) {
    let mut r = s.http.request(method, format!("{}{path}", s.base_url));
    if let Some(k) = key {
        r = r.header("Authorization", format!("Bearer {k}"));
    }
    if let Some(v) = version {
        r = r.header("X-Runway-Version", v);
    }
    if let Some(b) = body {
        r = r.json(b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(json!(text)) })
}

async fn create(s: &TestServer, endpoint: &str, body: Value) -> String {
    let (st, b) = call(s, reqwest::Method::POST, &format!("/v1/{endpoint}"), Some(&body)).await;
    assert_eq!(st, 200, "{b}");
    b["id"].as_str().expect("an id").to_string()
}

/// Polls a task until `done` says so; returns every distinct status seen and the last body.
async fn wait_for(s: &TestServer, id: &str, done: impl Fn(&Value) -> bool) -> (Vec<String>, Value) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen: Vec<String> = Vec::new();
    loop {
        let (st, b) = call(s, reqwest::Method::GET, &format!("/v1/tasks/{id}"), None).await;
        assert_eq!(st, 200, "{b}");
        let status = b["status"].as_str().unwrap().to_string();
        if seen.last() != Some(&status) {
            seen.push(status);
        }
        if done(&b) {
            return (seen, b);
        }
        assert!(Instant::now() < deadline, "task {id} never finished: {b}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn terminal(b: &Value) -> bool {
    matches!(b["status"].as_str(), Some("SUCCEEDED" | "FAILED" | "CANCELLED"))
}

#[tokio::test]
async fn text_to_image_runs_to_succeeded_with_output_and_cost() {
    let s = TestServer::start().await;
    let before = s.balance("default").await;
    let id = create(
        &s,
        "text_to_image",
        json!({"model": "gen4_image", "promptText": "a lighthouse at dusk", "ratio": "1280:720", "seed": 7}),
    )
    .await;
    let (seen, b) = wait_for(&s, &id, terminal).await;
    assert_eq!(b["status"], "SUCCEEDED", "{b}");
    assert!(seen.iter().all(|st| ["PENDING", "RUNNING", "SUCCEEDED"].contains(&st.as_str())), "{seen:?}");
    assert_eq!(b["id"], id);
    assert_eq!(b["cost"], json!({"credits": 5}));
    assert!(chrono_like(b["createdAt"].as_str().unwrap()), "{b}");
    let url = b["output"][0].as_str().unwrap();
    let png = s.http.get(url).send().await.unwrap().bytes().await.unwrap();
    let img = image::load_from_memory(&png).unwrap();
    assert_eq!((img.width(), img.height()), (1280, 720));
    assert_eq!(s.balance("default").await, before - 50_000);
}

fn chrono_like(s: &str) -> bool {
    s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T'
}

#[tokio::test]
async fn image_to_video_with_a_data_uri_makes_a_real_mp4() {
    let s = TestServer::start().await;
    let id = create(
        &s,
        "image_to_video",
        json!({"model": "gen4_turbo", "promptImage": png_data_uri(640, 360), "promptText": "waves",
               "ratio": "1280:720", "duration": 2}),
    )
    .await;
    let (_, b) = wait_for(&s, &id, terminal).await;
    assert_eq!(b["status"], "SUCCEEDED", "{b}");
    let url = b["output"][0].as_str().unwrap();
    assert!(url.ends_with(".mp4"), "{url}");
    let mp4 = s.http.get(url).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&mp4[4..8], b"ftyp");
    assert_eq!(b["cost"], json!({"credits": 25}));
}

#[tokio::test]
async fn text_to_video_and_array_prompt_images() {
    let s = TestServer::start().await;
    let id = create(
        &s,
        "text_to_video",
        json!({"model": "veo3.1_fast", "promptText": "city lights", "ratio": "720:1280", "duration": 4}),
    )
    .await;
    let (_, b) = wait_for(&s, &id, terminal).await;
    assert_eq!(b["status"], "SUCCEEDED", "{b}");
    let id = create(
        &s,
        "image_to_video",
        json!({"model": "veo3.1", "promptImage": [{"uri": png_data_uri(64, 64), "position": "first"}],
               "ratio": "1280:720", "duration": 4}),
    )
    .await;
    let (_, b) = wait_for(&s, &id, terminal).await;
    assert_eq!(b["status"], "SUCCEEDED", "{b}");
}

#[tokio::test]
async fn the_version_header_is_required_and_checked() {
    let s = TestServer::start().await;
    let body = json!({"model": "gen4_image", "promptText": "x", "ratio": "1280:720"});
    let (st, b) =
        call_with(&s, reqwest::Method::POST, "/v1/text_to_image", Some(&body), Some(&s.api_key), None).await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["issues"][0]["path"], json!(["X-Runway-Version"]));
    assert_eq!(b["issues"][0]["code"], "invalid_type");
    assert!(b["issues"][0]["message"].as_str().unwrap().contains("X-Runway-Version: 2024-11-06"), "{b}");
    let (st, b) =
        call_with(&s, reqwest::Method::GET, "/v1/tasks/x", None, Some(&s.api_key), Some("2023-01-01")).await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["issues"][0]["code"], "invalid_enum_value");
    assert_eq!(b["issues"][0]["options"], json!(["2024-11-06"]));
}

#[tokio::test]
async fn keys_are_refused_with_the_reason() {
    let s = TestServer::start().await;
    let get = |key: Option<String>| {
        let s = &s;
        async move {
            call_with(
                s,
                reqwest::Method::GET,
                "/v1/tasks/00000000-0000-4000-8000-000000000000",
                None,
                key.as_deref(),
                Some(VERSION),
            )
            .await
        }
    };
    let (st, b) = get(None).await;
    assert_eq!((st, b["code"].as_str()), (401, Some("missingApiKey")), "{b}");
    let good = s.api_key.clone();
    for (bad, says) in [
        (good.replacen("key_", "kay_", 1), "start with 'key_'"),
        (good[..good.len() - 1].to_string(), "exactly 128"),
        (format!("{}g", &good[..good.len() - 1]), "hexadecimal"),
    ] {
        let (st, b) = get(Some(bad.clone())).await;
        assert_eq!(st, 401, "{b}");
        let msg = b["error"].as_str().unwrap();
        assert!(msg.contains(says), "{msg}");
        assert!(!msg.contains(&bad[4..]), "the key must not be echoed: {msg}");
    }
    // A disabled key, then a suspended account.
    let admin = s.engine.admin();
    let key = s.create_key("default", &[]).await;
    let rec = admin.list_keys(None).await.unwrap().into_iter().find(|k| key.starts_with(&k.prefix)).unwrap();
    admin.set_key_status(rec.id, mediagate_store::KeyStatus::Disabled).await.unwrap();
    let (st, b) = get(Some(key)).await;
    assert_eq!((st, b["code"].as_str()), (401, Some("apiKeyDisabled")), "{b}");
    admin.set_account_status("default", mediagate_store::AccountStatus::Suspended).await.unwrap();
    let (st, b) = get(Some(good)).await;
    assert_eq!((st, b["code"].as_str()), (401, Some("accountSuspended")), "{b}");
}

#[tokio::test]
async fn validation_lists_every_issue_zod_style() {
    let s = TestServer::start().await;
    let long = "é".repeat(1001);
    let (st, b) = call(
        &s,
        reqwest::Method::POST,
        "/v1/text_to_image",
        Some(
            &json!({"model": "gen4_image", "promptText": long, "ratio": "1:1", "seed": 1.5, "colour": "red",
                     "contentModeration": {"publicFigureThreshold": "high"}}),
        ),
    )
    .await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["error"], "Validation of body failed");
    assert!(b["docUrl"].as_str().unwrap().ends_with("/docs/runway"));
    let issues = b["issues"].as_array().unwrap();
    let by_path =
        |p: Value| issues.iter().find(|i| i["path"] == p).unwrap_or_else(|| panic!("no issue at {p}: {b}"));
    assert_eq!(by_path(json!(["promptText"]))["code"], "too_big");
    assert_eq!(by_path(json!(["ratio"]))["code"], "invalid_enum_value");
    assert_eq!(by_path(json!(["seed"]))["message"], "Expected integer, received float");
    assert_eq!(by_path(json!(["contentModeration", "publicFigureThreshold"]))["code"], "invalid_enum_value");
    assert_eq!(by_path(json!([]))["keys"], json!(["colour"]));
    assert_eq!(issues.len(), 5, "{b}");

    // An empty prompt is too small.
    let (_, b) = call(
        &s,
        reqwest::Method::POST,
        "/v1/text_to_image",
        Some(&json!({"model": "gen4_image", "promptText": "", "ratio": "720:720"})),
    )
    .await;
    assert_eq!(b["issues"][0]["code"], "too_small", "{b}");
    assert_eq!(b["issues"][0]["minimum"], 1.0);

    // A missing prompt, an unknown model, wrong types.
    let (st, b) = call(&s, reqwest::Method::POST, "/v1/text_to_video", Some(&json!({"model": "sora"}))).await;
    assert_eq!(st, 400);
    assert_eq!(b["issues"][0]["code"], "invalid_enum_value");
    assert_eq!(b["issues"][0]["path"], json!(["model"]));
    let (_, b) =
        call(&s, reqwest::Method::POST, "/v1/text_to_video", Some(&json!({"model": "gen4.5", "ratio": 5})))
            .await;
    let codes: Vec<(Value, Value)> =
        b["issues"].as_array().unwrap().iter().map(|i| (i["path"].clone(), i["code"].clone())).collect();
    assert!(codes.contains(&(json!(["promptText"]), json!("invalid_type"))), "{b}");
    assert!(codes.contains(&(json!(["duration"]), json!("invalid_type"))), "{b}");
    assert!(codes.contains(&(json!(["ratio"]), json!("invalid_enum_value"))), "{b}");
    // Nothing was charged for refused requests.
    assert_eq!(s.balance("default").await, 10_000_000);
}

#[tokio::test]
async fn bad_assets_are_400s_with_the_asset_guides_messages_and_paths() {
    let assets = AssetServer::builder().host("assets.test").start().await;
    assets.route("/missing.png", Route::status_only(404));
    assets.route("/blob.png", Route::ok("application/octet-stream", vec![0; 100]));
    let (host, ip, ca) = (assets.host().to_string(), assets.addr().ip(), assets.ca_file().to_path_buf());
    let s = TestServer::start_with(move |c| {
        c.assets.resolve.insert(host, vec![ip]);
        c.assets.allowed_networks = vec![ipnet::IpNet::from(ip)];
        c.assets.extra_ca_certs = vec![ca];
    })
    .await;
    let post = |body: Value| {
        let s = &s;
        async move { call(s, reqwest::Method::POST, "/v1/image_to_video", Some(&body)).await }
    };
    let base = json!({"model": "gen4_turbo", "ratio": "1280:720"});
    let with = |pi: Value| {
        let mut b = base.clone();
        b["promptImage"] = pi;
        b
    };
    let (st, b) = post(with(json!([{"uri": assets.url("/missing.png"), "position": "first"}]))).await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(
        b["issues"][0],
        json!({"code": "custom", "path": ["promptImage", 0, "uri"],
               "message": "Failed to fetch asset. Received HTTP response code 404"})
    );
    let (_, b) = post(with(json!(assets.url("/blob.png")))).await;
    assert_eq!(b["issues"][0]["path"], json!(["promptImage"]));
    assert!(b["issues"][0]["message"].as_str().unwrap().contains("application/octet-stream"), "{b}");
    let (_, b) = post(with(json!("http://assets.test/a.png"))).await;
    assert_eq!(b["issues"][0]["message"], mediagate_assets::url_check::NOT_HTTPS_MESSAGE);
    let (_, b) = post(with(json!("https://11.22.33.44/a.png"))).await;
    assert_eq!(b["issues"][0]["message"], "URLs must be hosted on a domain.");
    let (_, b) = post(with(json!("data:image/png;base64,!!!"))).await;
    assert!(b["issues"][0]["message"].as_str().unwrap().starts_with("Invalid data URI"), "{b}");
    // The wide fixture breaks the model's aspect bounds (0.5 to 2).
    let wide = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/wide_200x50.png")).unwrap();
    let wide = format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(wide));
    let (_, b) = post(with(json!(wide))).await;
    assert_eq!(
        b["issues"][0]["message"],
        "Invalid asset aspect ratio. width / height ratio must be between 0.5 and 2. Got 4."
    );
    assert_eq!(s.balance("default").await, 10_000_000);
}

#[tokio::test]
async fn ephemeral_uploads_are_usable_as_runway_uris() {
    let s = TestServer::start_with(|c| c.uploads.ephemeral_max_bytes = 1_000_000).await;
    let (st, b) = call(
        &s,
        reqwest::Method::POST,
        "/v1/uploads",
        Some(&json!({"filename": "in.png", "type": "ephemeral"})),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let uri = b["runwayUri"].as_str().unwrap().to_string();
    assert!(uri.starts_with("runway://"), "{b}");
    let target = b["uploadUrl"].as_str().unwrap().to_string();
    let fields = b["fields"].as_object().unwrap().clone();
    let png = base64::engine::general_purpose::STANDARD
        .decode(png_data_uri(100, 80).split_once(',').unwrap().1)
        .unwrap();
    // A wrong token is refused and stores nothing.
    let form = reqwest::multipart::Form::new()
        .text("key", fields["key"].as_str().unwrap().to_string())
        .text("token", "0".repeat(64))
        .part("file", reqwest::multipart::Part::bytes(png.clone()).file_name("in.png"));
    let r = s.http.post(&target).multipart(form).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let mut form = reqwest::multipart::Form::new();
    for (k, v) in &fields {
        form = form.text(k.clone(), v.as_str().unwrap().to_string());
    }
    let form = form.part("file", reqwest::multipart::Part::bytes(png).file_name("in.png"));
    let r = s.http.post(&target).multipart(form).send().await.unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());

    let id = create(
        &s,
        "image_upscale",
        json!({"model": "magnific_precision_upscaler_v2", "imageUri": uri, "scaleFactor": 4}),
    )
    .await;
    let (_, b) = wait_for(&s, &id, terminal).await;
    assert_eq!(b["status"], "SUCCEEDED", "{b}");
    let out = s.http.get(b["output"][0].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
    let img = image::load_from_memory(&out).unwrap();
    assert_eq!((img.width(), img.height()), (400, 320));

    // A file over `uploads.ephemeral_max_bytes` is refused.
    let (_, b) = call(
        &s,
        reqwest::Method::POST,
        "/v1/uploads",
        Some(&json!({"filename": "big.png", "type": "ephemeral"})),
    )
    .await;
    let form = reqwest::multipart::Form::new()
        .text("key", b["fields"]["key"].as_str().unwrap().to_string())
        .text("token", b["fields"]["token"].as_str().unwrap().to_string())
        .part("file", reqwest::multipart::Part::bytes(vec![0u8; 1_000_001]).file_name("big.png"));
    let r = s.http.post(b["uploadUrl"].as_str().unwrap()).multipart(form).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(
        (b["code"].as_str(), b["error"].as_str()),
        (Some("assetTooLarge"), Some("Asset size exceeds 1.0MB.")),
        "{b}"
    );

    // Another account cannot use it; an unknown upload is a 400 on create.
    let (st, b) = call(
        &s,
        reqwest::Method::POST,
        "/v1/image_upscale",
        Some(&json!({"model": "magnific_precision_upscaler_v2", "imageUri": "runway://00000000-0000-4000-8000-000000000000"})),
    )
    .await;
    assert_eq!(st, 400);
    assert_eq!(b["issues"][0]["path"], json!(["imageUri"]));
    s.engine.admin().create_account("other", "5").await.unwrap();
    let other = s.create_key("other", &[]).await;
    let (st, _) = call_with(
        &s,
        reqwest::Method::POST,
        "/v1/image_upscale",
        Some(&json!({"model": "magnific_precision_upscaler_v2", "imageUri": uri})),
        Some(&other),
        Some(VERSION),
    )
    .await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn delete_cancels_a_running_task_and_refunds_it_then_deletes_it() {
    let s = TestServer::start().await;
    let before = s.balance("default").await;
    // The longest, largest video the stand-in renders: seconds of work.
    let id = create(
        &s,
        "text_to_video",
        json!({"model": "veo3.1", "promptText": "a long take", "ratio": "1920:1080", "duration": 8}),
    )
    .await;
    // The stand-in reports progress frame by frame.
    let (_, b) = wait_for(&s, &id, |b| b["status"] == "RUNNING" && b["progress"].as_f64() > Some(0.0)).await;
    let p = b["progress"].as_f64().unwrap();
    assert!(p > 0.0 && p < 1.0, "{b}");
    assert!(b["estimatedCost"]["credits"].as_f64().unwrap() == 40.0, "{b}");
    assert!(s.balance("default").await < before, "reserved while running");
    let (st, _) = call(&s, reqwest::Method::DELETE, &format!("/v1/tasks/{id}"), None).await;
    assert_eq!(st, 204);
    let (st, b) = call(&s, reqwest::Method::GET, &format!("/v1/tasks/{id}"), None).await;
    assert_eq!((st, b["status"].as_str()), (200, Some("CANCELLED")), "{b}");
    assert_eq!(b["cost"], json!({"credits": 0}));
    assert_eq!(s.balance("default").await, before, "a cancelled task is refunded");
    // Deleting it again removes it from view.
    let (st, _) = call(&s, reqwest::Method::DELETE, &format!("/v1/tasks/{id}"), None).await;
    assert_eq!(st, 204);
    let (st, b) = call(&s, reqwest::Method::GET, &format!("/v1/tasks/{id}"), None).await;
    assert_eq!((st, b["code"].as_str()), (404, Some("taskNotFound")), "{b}");
    let (st, _) = call(&s, reqwest::Method::DELETE, &format!("/v1/tasks/{id}"), None).await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn finished_tasks_are_deleted_and_unknown_ones_are_404() {
    let s = TestServer::start().await;
    let id = create(
        &s,
        "text_to_image",
        json!({"model": "gen4_image_turbo", "promptText": "x", "ratio": "720:720",
        "referenceImages": [{"uri": png_data_uri(64, 64), "tag": "ref_1"}]}),
    )
    .await;
    let (_, b) = wait_for(&s, &id, terminal).await;
    assert_eq!(b["status"], "SUCCEEDED", "{b}");
    let (st, _) = call(&s, reqwest::Method::DELETE, &format!("/v1/tasks/{id}"), None).await;
    assert_eq!(st, 204);
    let (st, _) = call(&s, reqwest::Method::GET, &format!("/v1/tasks/{id}"), None).await;
    assert_eq!(st, 404);
    let (st, b) = call(&s, reqwest::Method::GET, "/v1/tasks/not-a-uuid", None).await;
    assert_eq!(st, 404, "{b}");
    // Another account's task is not visible.
    s.engine.admin().create_account("other", "5").await.unwrap();
    let other = s.create_key("other", &[]).await;
    let id =
        create(&s, "text_to_image", json!({"model": "gen4_image", "promptText": "mine", "ratio": "720:720"}))
            .await;
    let (st, _) =
        call_with(&s, reqwest::Method::GET, &format!("/v1/tasks/{id}"), None, Some(&other), Some(VERSION))
            .await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn wrong_methods_and_paths_get_runway_shaped_errors() {
    let s = TestServer::start().await;
    let (st, b) =
        call(&s, reqwest::Method::PUT, "/v1/tasks/00000000-0000-4000-8000-000000000000", None).await;
    assert_eq!(st, 405, "{b}");
    assert!(b["error"].as_str().unwrap().contains("does not accept PUT"), "{b}");
    let (st, b) = call(&s, reqwest::Method::GET, "/v1/text_to_image", None).await;
    assert_eq!(st, 405, "{b}");
    let (st, b) = call(&s, reqwest::Method::POST, "/v1/video_to_video", Some(&json!({}))).await;
    assert_eq!(st, 404, "{b}");
    assert!(b.get("error").is_some(), "{b}");
}

#[tokio::test]
async fn usage_reports_credits_per_day_and_model() {
    let s = TestServer::start().await;
    for _ in 0..2 {
        let id = create(
            &s,
            "text_to_image",
            json!({"model": "gen4_image", "promptText": "x", "ratio": "720:720"}),
        )
        .await;
        wait_for(&s, &id, terminal).await;
    }
    let (st, b) = call(&s, reqwest::Method::POST, "/v1/organization/usage", Some(&json!({}))).await;
    assert_eq!(st, 200, "{b}");
    let today = b["results"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(today["usedCredits"], json!([{"model": "gen4_image", "amount": 10}]), "{b}");
    assert_eq!(b["models"], json!(["gen4_image"]));
    let (st, b) = call(
        &s,
        reqwest::Method::POST,
        "/v1/organization/usage",
        Some(&json!({"startDate": "2026-01-01", "beforeDate": "2026-12-31"})),
    )
    .await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["issues"][0]["path"], json!(["beforeDate"]));
    // A window that ends before it starts is a mistake to report, not an empty answer.
    for (start, before) in [("2026-03-10", "2026-03-01"), ("2026-03-10", "2026-03-10")] {
        let (st, b) = call(
            &s,
            reqwest::Method::POST,
            "/v1/organization/usage",
            Some(&json!({"startDate": start, "beforeDate": before})),
        )
        .await;
        assert_eq!(st, 400, "{b}");
        assert_eq!(b["issues"][0]["path"], json!(["beforeDate"]), "{b}");
        let m = b["issues"][0]["message"].as_str().unwrap();
        assert!(m.contains("must be later than startDate") && m.contains(before), "{m}");
    }
}

#[tokio::test]
async fn an_unknown_model_is_the_one_issue_reported_with_the_models_that_exist() {
    let s = TestServer::start().await;
    let (st, b) = call(
        &s,
        reqwest::Method::POST,
        "/v1/text_to_image",
        Some(&json!({"model": "gen4_imag", "promptText": "x", "ratio": "1920:1080", "seed": 1})),
    )
    .await;
    assert_eq!(st, 400, "{b}");
    let issues = b["issues"].as_array().unwrap();
    assert_eq!(issues.len(), 1, "{b}");
    assert_eq!(issues[0]["path"], json!(["model"]), "{b}");
    assert_eq!(issues[0]["code"], "invalid_enum_value", "{b}");
    assert_eq!(issues[0]["options"], json!(["gen4_image", "gen4_image_turbo"]), "{b}");
    // With a known model, the keys it does not take are still named.
    let (st, b) = call(
        &s,
        reqwest::Method::POST,
        "/v1/text_to_image",
        Some(&json!({"model": "gen4_image", "promptText": "x", "ratio": "1920:1080", "bogus": 1})),
    )
    .await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["issues"][0]["code"], "unrecognized_keys", "{b}");
}

#[tokio::test]
async fn runware_and_runway_share_keys_scopes_and_tasks() {
    let s = TestServer::start().await;
    let runware_only = s.create_key("default", &["dialect:runware"]).await;
    let (st, b) = call_with(
        &s,
        reqwest::Method::POST,
        "/v1/text_to_image",
        Some(&json!({"model": "gen4_image", "promptText": "x", "ratio": "720:720"})),
        Some(&runware_only),
        Some(VERSION),
    )
    .await;
    assert_eq!((st, b["code"].as_str()), (403, Some("insufficientPermissions")), "{b}");
    assert!(b["error"].as_str().unwrap().contains("dialect:runway"), "{b}");
    // A Runway task polled through the Runware dialect.
    let id =
        create(&s, "text_to_image", json!({"model": "gen4_image", "promptText": "x", "ratio": "720:720"}))
            .await;
    wait_for(&s, &id, terminal).await;
    let (st, b) = s.post(&json!([{"taskType": "getResponse", "taskUUID": id}])).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"][0]["status"], "success");
}

#[tokio::test]
async fn over_concurrency_tasks_are_throttled_and_the_organization_shows_it() {
    let s = TestServer::start_with(|c| {
        c.limits.max_concurrent = 1;
        c.limits.max_monthly_spend_usd = "50".into();
    })
    .await;
    let long = json!({"model": "veo3.1", "promptText": "a long take", "ratio": "1920:1080", "duration": 8});
    let first = create(&s, "text_to_video", long.clone()).await;
    let second = create(&s, "text_to_video", long).await;
    wait_for(&s, &first, |b| b["status"] == "RUNNING").await;
    let (_, b) = call(&s, reqwest::Method::GET, &format!("/v1/tasks/{second}"), None).await;
    assert_eq!(b["status"], "THROTTLED", "{b}");
    assert_eq!(b["estimatedCost"], json!({"credits": 40.0}));

    let (st, org) = call(&s, reqwest::Method::GET, "/v1/organization", None).await;
    assert_eq!(st, 200, "{org}");
    assert_eq!(org["creditBalance"], 1000 - 80, "{org}");
    assert_eq!(org["tier"]["maxMonthlyCreditSpend"], 5000);
    assert_eq!(
        org["tier"]["models"]["veo3.1"],
        json!({"maxConcurrentGenerations": 1, "maxDailyGenerations": null})
    );
    assert_eq!(
        org["usage"]["models"]["veo3.1"],
        json!({"dailyGenerations": 2, "running": 1, "throttled": 1})
    );

    // A throttled task leaves the queue when cancelled; then the running one is cancelled too.
    for id in [&second, &first] {
        let (st, _) = call(&s, reqwest::Method::DELETE, &format!("/v1/tasks/{id}"), None).await;
        assert_eq!(st, 204);
        let (_, b) = call(&s, reqwest::Method::GET, &format!("/v1/tasks/{id}"), None).await;
        assert_eq!(b["status"], "CANCELLED", "{b}");
    }
    assert_eq!(s.balance("default").await, 10_000_000);
}

#[tokio::test]
async fn a_daily_cap_is_a_429_with_retry_after() {
    let s = TestServer::start_with(|c| c.limits.max_daily = 1).await;
    let body = json!({"model": "gen4_image", "promptText": "x", "ratio": "720:720"});
    create(&s, "text_to_image", body.clone()).await;
    let r = s
        .http
        .post(format!("{}/v1/text_to_image", s.base_url))
        .bearer_auth(&s.api_key)
        .header("X-Runway-Version", VERSION)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let secs: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(secs > 86_000 && secs <= 86_400, "{secs}");
    assert_eq!(r.headers()["x-should-retry"], "true");
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["code"], "dailyLimitExceeded", "{b}");
}

#[tokio::test]
async fn uploads_beyond_the_json_body_limit_are_streamed_in() {
    // 6 MB of noise as PNG: more than `server.max_body_bytes`-style limits on JSON routes and more
    // than a data URI may carry (5 MB), well within the 200 MB ephemeral limit.
    let s = TestServer::start().await;
    let mut x: u32 = 12345;
    let img = image::RgbImage::from_fn(1500, 1400, |_, _| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        image::Rgb([x as u8, (x >> 8) as u8, (x >> 16) as u8])
    });
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let png = png.into_inner();
    assert!(png.len() > 6_000_000, "{}", png.len());
    let (_, b) = call(
        &s,
        reqwest::Method::POST,
        "/v1/uploads",
        Some(&json!({"filename": "big.png", "type": "ephemeral"})),
    )
    .await;
    let mut form = reqwest::multipart::Form::new();
    for (k, v) in b["fields"].as_object().unwrap() {
        form = form.text(k.clone(), v.as_str().unwrap().to_string());
    }
    let form = form.part("file", reqwest::multipart::Part::bytes(png.clone()).file_name("big.png"));
    let r = s.http.post(b["uploadUrl"].as_str().unwrap()).multipart(form).send().await.unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    let id: uuid::Uuid = b["runwayUri"].as_str().unwrap().trim_start_matches("runway://").parse().unwrap();
    let rec = s.engine.store().get_output(id).await.unwrap().unwrap();
    assert_eq!((rec.size, rec.content_type.as_str(), rec.inline), (png.len() as u64, "image/png", false));
}

#[tokio::test]
async fn video_models_take_a_first_frame_only() {
    let s = TestServer::start().await;
    let frame = png_data_uri(64, 64);
    for (images, said) in [
        (json!([{"uri": frame, "position": "last"}]), "first frame only"),
        (
            json!([{"uri": frame, "position": "first"}, {"uri": frame, "position": "first"}]),
            "Only one prompt image",
        ),
    ] {
        let body = json!({"model": "gen4_turbo", "promptImage": images, "ratio": "1280:720"});
        let (st, b) = call(&s, reqwest::Method::POST, "/v1/image_to_video", Some(&body)).await;
        assert_eq!(st, 400, "{b}");
        let issue =
            b["issues"].as_array().unwrap().iter().find(|i| i["message"].as_str().unwrap().contains(said));
        let path = &issue.unwrap_or_else(|| panic!("no issue saying {said}: {b}"))["path"];
        assert_eq!(path[0], "promptImage", "{b}");
        assert_eq!(path[2], "position", "{b}");
    }
}
