//! The history API over real HTTP (issue 20): every filter, the cursor, account and key
//! isolation, one task in full with its provider attempts, and what a record never holds.

use mediagate_testkit::images::png_data_uri;
use mediagate_testkit::{TestServer, task_uuid};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn get(s: &TestServer, key: &str, path: &str) -> (u16, Value) {
    let r = s.http.get(format!("{}{path}", s.base_url)).bearer_auth(key).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Every taskUUID of a filtered history, following the cursor (`limit` per page).
async fn uuids(s: &TestServer, key: &str, filters: &str, limit: u32) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/v1/history/tasks?limit={limit}{filters}{cursor}");
        let (st, b) = get(s, key, &path).await;
        assert_eq!(st, 200, "{path}: {b}");
        let data = b["data"].as_array().unwrap();
        assert!(data.len() <= limit as usize);
        out.extend(data.iter().map(|t| t["taskUUID"].as_str().unwrap().to_string()));
        if b["hasMore"] == json!(false) {
            assert!(b["nextCursor"].is_null());
            return out;
        }
        cursor = format!("&cursor={}", b["nextCursor"].as_str().unwrap());
    }
}

fn image(u: &str, prompt: &str) -> Value {
    json!({"taskType": "imageInference", "taskUUID": u, "positivePrompt": prompt, "width": 64, "height": 64})
}

#[tokio::test]
async fn history_lists_with_every_filter_and_a_cursor_and_keeps_accounts_and_keys_apart() {
    let s = TestServer::start().await;
    let second = s.create_key("default", &[]).await;
    let scoped = s.create_key("default", &["dialect:runware"]).await;
    let since = chrono::Utc::now().timestamp_millis();
    // Successes by two keys, one with a rare word in its prompt.
    let mut ok_first = Vec::new();
    for i in 0..4 {
        let u = task_uuid();
        let prompt = if i == 2 { "a Heron at dawn" } else { "a lighthouse" };
        assert_eq!(s.post(&json!([image(&u, prompt)])).await.0, 200);
        ok_first.push(u);
    }
    let by_second = task_uuid();
    assert_eq!(s.post_with_key(&second, &json!([image(&by_second, "a fox")])).await.0, 200);
    let by_scoped = task_uuid();
    assert_eq!(s.post_with_key(&scoped, &json!([image(&by_scoped, "an owl")])).await.0, 200);
    // A failure recorded after admission: a 10:1 image is outside the upscaler's ratios.
    let failed = task_uuid();
    let (st, b) = s
        .post(&json!([{"taskType": "upscale", "taskUUID": failed, "inputImage": png_data_uri(4000, 400), "upscaleFactor": 4}]))
        .await;
    assert_eq!(st, 400, "{b}");
    // A Runway task.
    let r = s
        .http
        .post(format!("{}/v1/text_to_image", s.base_url))
        .bearer_auth(&s.api_key)
        .header("X-Runway-Version", "2024-11-06")
        .json(&json!({"model": "gen4_image", "promptText": "a harbour", "ratio": "1280:720"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let runway_id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    // Wait for the Runway task to end (it runs after its answer).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, b) = get(&s, &s.api_key, &format!("/v1/history/tasks/{runway_id}")).await;
        if b["status"] != "processing" {
            break;
        }
        assert!(Instant::now() < deadline, "{b}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The unscoped key made here (the bootstrap key's description is not "test").
    let keys = s.engine.admin().list_keys(Some("default")).await.unwrap();
    let second_id = keys.iter().find(|k| k.scopes.is_empty() && k.description == "test").unwrap().id;

    // Everything, newest first, in pages of 3; the same in one page.
    let all = uuids(&s, &s.api_key, "", 3).await;
    assert_eq!(all.len(), 8, "{all:?}");
    assert_eq!(uuids(&s, &s.api_key, "", 100).await, all);
    assert_eq!(all[0], runway_id, "the newest first");
    assert_eq!(all.last().unwrap(), &ok_first[0], "the oldest last");
    // Each filter.
    assert_eq!(uuids(&s, &s.api_key, "&status=error", 2).await, vec![failed.clone()]);
    assert_eq!(uuids(&s, &s.api_key, "&errorCode=assetAspectRatio", 2).await, vec![failed.clone()]);
    assert_eq!(uuids(&s, &s.api_key, "&taskType=upscale", 2).await, vec![failed.clone()]);
    assert_eq!(uuids(&s, &s.api_key, "&dialect=runway", 2).await, vec![runway_id.clone()]);
    assert_eq!(uuids(&s, &s.api_key, "&model=gen4_image", 2).await, vec![runway_id.clone()]);
    assert_eq!(uuids(&s, &s.api_key, &format!("&keyId={second_id}"), 2).await, vec![by_second.clone()]);
    assert_eq!(uuids(&s, &s.api_key, "&q=HERON", 2).await, vec![ok_first[2].clone()]);
    assert_eq!(uuids(&s, &s.api_key, "&status=success&dialect=runware", 2).await.len(), 6);
    let until = chrono::Utc::now().timestamp_millis() + 1;
    assert_eq!(uuids(&s, &s.api_key, &format!("&since={since}&until={until}"), 3).await, all);
    assert!(uuids(&s, &s.api_key, "&until=2001-01-01T00:00:00Z", 3).await.is_empty());
    // A page names each task's status and error at a glance.
    let (_, b) = get(&s, &s.api_key, "/v1/history/tasks?status=error").await;
    let t = &b["data"][0];
    assert_eq!((t["status"].as_str(), t["errorCode"].as_str()), (Some("error"), Some("assetAspectRatio")));
    assert!(t["errorMessage"].as_str().unwrap().len() > 10);
    // Bad filters are refused saying which and why.
    for (q, code, parameter) in [
        ("status=done", "invalidParameterValue", "status"),
        ("dialect=grpc", "invalidParameterValue", "dialect"),
        ("limit=0", "invalidParameterValue", "limit"),
        ("limit=1000", "invalidParameterValue", "limit"),
        ("since=yesterday", "invalidParameterValue", "since"),
        ("cursor=bm90LWEtY3Vyc29y", "invalidParameterValue", "cursor"),
        ("errorCode=noSuchCode", "invalidParameterValue", "errorCode"),
        ("colour=red", "unknownParameter", "colour"),
    ] {
        let (st, b) = get(&s, &s.api_key, &format!("/v1/history/tasks?{q}")).await;
        let e = &b["errors"][0];
        assert_eq!(
            (st, e["code"].as_str(), e["parameter"].as_str()),
            (400, Some(code), Some(parameter)),
            "{q}: {b}"
        );
    }
    // A scoped key reads only the tasks it sent, and not another key's.
    assert_eq!(uuids(&s, &scoped, "", 5).await, vec![by_scoped.clone()]);
    let (st, _) = get(&s, &scoped, &format!("/v1/history/tasks?keyId={second_id}")).await;
    assert_eq!(st, 403);
    assert_eq!(get(&s, &scoped, &format!("/v1/history/tasks/{}", ok_first[0])).await.0, 404);
    // Another account sees none of it.
    s.engine.admin().create_account("other", "1").await.unwrap();
    let other = s.create_key("other", &[]).await;
    assert!(uuids(&s, &other, "", 5).await.is_empty());
    assert_eq!(get(&s, &other, &format!("/v1/history/tasks/{}", ok_first[0])).await.0, 404);
    // No key, a wrong key.
    let r = s.http.get(format!("{}/v1/history/tasks", s.base_url)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(get(&s, &format!("key_{}", "0".repeat(128)), "/v1/history/tasks").await.0, 401);
}

#[tokio::test]
async fn one_task_in_full_with_its_attempts_and_never_its_bytes_or_key() {
    let s = TestServer::start().await;
    let u = task_uuid();
    let seed = png_data_uri(64, 64);
    let (st, sent) = s
        .post(&json!([{"taskType": "imageInference", "taskUUID": u, "positivePrompt": "<b>bold</b>",
                        "seedImage": seed, "strength": 0.5, "width": 64, "height": 64, "includeCost": true}]))
        .await;
    assert_eq!(st, 200, "{sent}");
    let (st, d) = get(&s, &s.api_key, &format!("/v1/history/tasks/{u}")).await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(
        (d["taskUUID"].as_str(), d["status"].as_str(), d["dialect"].as_str()),
        (Some(u.as_str()), Some("success"), Some("runware"))
    );
    // The request as received, with the inline image kept as its size and hash only.
    assert_eq!(d["request"]["positivePrompt"], "<b>bold</b>");
    let kept = d["request"]["seedImage"].as_str().unwrap();
    assert!(kept.starts_with(&format!("<{} bytes elided, sha256:", seed.len())), "{kept}");
    // The response as the client got it.
    assert_eq!(d["response"]["data"][0]["imageURL"], sent["data"][0]["imageURL"]);
    // Each provider attempt, timings, cost.
    let attempts = d["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{d}");
    assert_eq!(attempts[0]["outcome"], "success");
    assert_eq!(attempts[0]["attempt"], 1);
    assert!(attempts[0]["provider"].as_str().is_some_and(|p| !p.is_empty()));
    assert!(attempts[0]["durationMs"].as_f64().unwrap() >= 0.0);
    assert!(d["timings"]["totalMs"].as_f64().is_some(), "{d}");
    assert!(d["costUSD"].as_f64().unwrap() > 0.0);
    assert!(d["error"].is_null());
    // Nowhere the key or the image's bytes.
    let text = d.to_string();
    assert!(!text.contains(&s.api_key));
    assert!(!text.contains(&seed[seed.len() - 64..]));
    // Unknown and malformed ids.
    assert_eq!(get(&s, &s.api_key, &format!("/v1/history/tasks/{}", task_uuid())).await.0, 404);
    assert_eq!(get(&s, &s.api_key, "/v1/history/tasks/not-a-uuid").await.0, 400);
}

#[tokio::test]
async fn operators_read_any_account_and_a_deleted_task_stays_in_history() {
    let s = TestServer::start().await;
    let admin = s.engine.admin().create_admin_key("t").await.unwrap().1;
    s.engine.admin().create_account("other", "1").await.unwrap();
    let other = s.create_key("other", &[]).await;
    let mine = task_uuid();
    let theirs = task_uuid();
    assert_eq!(s.post(&json!([image(&mine, "a red kite")])).await.0, 200);
    assert_eq!(s.post_with_key(&other, &json!([image(&theirs, "a blue kite")])).await.0, 200);
    let list = |q: &'static str| {
        let s = &s;
        let admin = admin.clone();
        async move {
            let (st, b) = get(s, &admin, &format!("/admin/v1/history/tasks{q}")).await;
            assert_eq!(st, 200, "{b}");
            b["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["taskUUID"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list("").await, vec![theirs.clone(), mine.clone()]);
    assert_eq!(list("?account=other").await, vec![theirs.clone()]);
    let (st, b) = get(&s, &admin, "/admin/v1/history/tasks?account=nobody").await;
    assert_eq!((st, b["errors"][0]["parameter"].as_str()), (404, Some("account")));
    let (st, d) = get(&s, &admin, &format!("/admin/v1/history/tasks/{theirs}?account=other")).await;
    assert_eq!((st, d["taskUUID"].as_str()), (200, Some(theirs.as_str())));
    assert_eq!(get(&s, &admin, &format!("/admin/v1/history/tasks/{theirs}")).await.0, 400);
    // An API key is not an admin key.
    assert_eq!(get(&s, &s.api_key, "/admin/v1/history/tasks").await.0, 401);
    // Runway's DELETE hides a finished task from GET /v1/tasks; history keeps it, marked.
    let r = s
        .http
        .delete(format!("{}/v1/tasks/{mine}", s.base_url))
        .bearer_auth(&s.api_key)
        .header("X-Runway-Version", "2024-11-06")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_eq!(status, 204, "{}", r.text().await.unwrap());
    let (st, d) = get(&s, &s.api_key, &format!("/v1/history/tasks/{mine}")).await;
    assert_eq!(st, 200);
    assert!(d["deletedAt"].as_str().is_some(), "{d}");
}
