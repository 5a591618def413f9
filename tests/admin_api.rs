//! The admin API over real HTTP: admin keys are separate from API keys, and accounts, keys,
//! credits and limits are managed as with the CLI (which shares the operations and the store).

use mediagate_testkit::{TestServer, task_uuid};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

mod common;

async fn admin_key(s: &TestServer) -> String {
    s.engine.admin().create_admin_key("test").await.unwrap().1
}

async fn call(s: &TestServer, key: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}/admin/v1{path}", s.base_url);
    let mut r = s.http.request(method.parse().unwrap(), url).bearer_auth(key);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn image() -> Value {
    json!([{"taskType": "imageInference", "taskUUID": task_uuid(), "positivePrompt": "a fox",
            "width": 128, "height": 64}])
}

#[tokio::test]
async fn api_keys_and_admin_keys_are_not_interchangeable() {
    let s = TestServer::start().await;
    let admin = admin_key(&s).await;
    assert!(admin.starts_with("admin_") && admin.len() == 6 + 64);
    // An API key on the admin API.
    let (st, b) = call(&s, &s.api_key, "GET", "/accounts", None).await;
    assert_eq!((st, b["errors"][0]["code"].as_str().unwrap()), (401, "invalidAdminKey"), "{b}");
    assert!(b["errors"][0]["message"].as_str().unwrap().contains("this is an API key"));
    // No key, an unknown admin key.
    let r = s.http.get(format!("{}/admin/v1/accounts", s.base_url)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let unknown = format!("admin_{}", "0".repeat(64));
    let (st, b) = call(&s, &unknown, "GET", "/accounts", None).await;
    assert_eq!(st, 401, "{b}");
    assert!(b["errors"][0]["message"].as_str().unwrap().contains("no such key"));
    // An admin key on the task API.
    let (st, b) = s.post_with_key(&admin, &image()).await;
    assert_eq!((st, b["errors"][0]["code"].as_str().unwrap()), (401, "invalidApiKey"), "{b}");
    assert!(b["errors"][0]["message"].as_str().unwrap().contains("this is an admin key"));
    // The admin key works where it belongs; a revoked one no longer does.
    assert_eq!(call(&s, &admin, "GET", "/accounts", None).await.0, 200);
    let id = s.engine.admin().list_admin_keys().await.unwrap()[0].id;
    s.engine.admin().revoke_admin_key(id).await.unwrap();
    let (st, b) = call(&s, &admin, "GET", "/accounts", None).await;
    assert_eq!(st, 401);
    assert!(b["errors"][0]["message"].as_str().unwrap().contains("revoked"), "{b}");
}

#[tokio::test]
async fn accounts_keys_and_credits() {
    let s = TestServer::start().await;
    let admin = admin_key(&s).await;
    let (st, a) =
        call(&s, &admin, "POST", "/accounts", Some(json!({"name": "acme", "creditUsd": "2.50"}))).await;
    assert_eq!(st, 200, "{a}");
    assert_eq!((a["name"].as_str(), a["balanceMicros"].as_i64()), (Some("acme"), Some(2_500_000)));
    let (st, b) = call(&s, &admin, "POST", "/accounts", Some(json!({"name": "acme"}))).await;
    assert_eq!((st, b["errors"][0]["code"].as_str().unwrap()), (409, "conflict"), "{b}");
    let (_, list) = call(&s, &admin, "GET", "/accounts", None).await;
    let names: Vec<&str> =
        list["data"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["acme", "default"]);

    // A key with a description and scopes; its secret is in the creation reply only.
    let (st, k) = call(
        &s,
        &admin,
        "POST",
        "/keys",
        Some(json!({"account": "acme", "description": "ci", "scopes": ["task:imageInference"]})),
    )
    .await;
    assert_eq!(st, 200, "{k}");
    let secret = k["secret"].as_str().unwrap().to_string();
    let id = k["key"]["id"].as_i64().unwrap();
    assert_eq!(k["key"]["scopes"], json!(["task:imageInference"]));
    let (_, keys) = call(&s, &admin, "GET", "/keys?account=acme", None).await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 1);
    assert!(!keys.to_string().contains(&secret[4..]), "listing never shows a secret");
    assert_eq!(keys["data"][0]["description"], "ci");
    assert_eq!(s.post_with_key(&secret, &image()).await.0, 200);

    // Disable, enable, revoke.
    assert_eq!(call(&s, &admin, "POST", &format!("/keys/{id}/disable"), None).await.0, 200);
    let (st, b) = s.post_with_key(&secret, &image()).await;
    assert_eq!((st, b["errors"][0]["code"].as_str().unwrap()), (401, "apiKeyDisabled"));
    assert_eq!(call(&s, &admin, "POST", &format!("/keys/{id}/enable"), None).await.0, 200);
    assert_eq!(s.post_with_key(&secret, &image()).await.0, 200);

    // Suspension refuses every key of the account until lifted.
    let (st, a) = call(&s, &admin, "POST", "/accounts/acme/suspend", None).await;
    assert_eq!((st, a["status"].as_str()), (200, Some("suspended")));
    let (st, b) = s.post_with_key(&secret, &image()).await;
    assert_eq!((st, b["errors"][0]["code"].as_str().unwrap()), (401, "accountSuspended"));
    assert_eq!(call(&s, &admin, "POST", "/accounts/acme/unsuspend", None).await.0, 200);
    assert_eq!(s.post_with_key(&secret, &image()).await.0, 200);

    assert_eq!(call(&s, &admin, "POST", &format!("/keys/{id}/revoke"), None).await.0, 200);
    let (st, b) = call(&s, &admin, "POST", &format!("/keys/{id}/enable"), None).await;
    assert_eq!(
        (st, b["errors"][0]["code"].as_str().unwrap()),
        (409, "conflict"),
        "a revoked key stays revoked: {b}"
    );
    assert_eq!(s.post_with_key(&secret, &image()).await.0, 401);

    // Credits: grant, balance, ledger.
    let (st, g) =
        call(&s, &admin, "POST", "/accounts/acme/credits", Some(json!({"usd": "1", "note": "top-up"}))).await;
    assert_eq!(st, 200, "{g}");
    let (_, c) = call(&s, &admin, "GET", "/accounts/acme/credits?entries=50", None).await;
    assert_eq!(c["account"]["balanceMicros"], g["balanceMicros"]);
    let ledger = c["ledger"].as_array().unwrap();
    assert_eq!(ledger[0]["note"], "top-up");
    assert_eq!(ledger.iter().filter(|e| e["kind"] == "charge").count(), 3, "three tasks ran: {c}");

    // Unknown things.
    let (st, b) = call(&s, &admin, "GET", "/accounts/nobody/credits", None).await;
    assert_eq!((st, b["errors"][0]["code"].as_str().unwrap()), (404, "resourceNotFound"), "{b}");
    let (st, _) = call(&s, &admin, "POST", "/keys/999/disable", None).await;
    assert_eq!(st, 404);
    let (st, b) = call(&s, &admin, "POST", "/accounts", Some(json!({"nom": "x"}))).await;
    assert_eq!((st, b["errors"][0]["code"].as_str().unwrap()), (400, "invalidRequestBody"), "{b}");

    // Every admin error, routing ones included, has the one shape with its documentation link,
    // and a wrong path points at the admin API's own reference.
    let (st, b) = call(&s, &admin, "GET", "/acounts", None).await;
    assert_eq!((st, b["errors"][0]["code"].as_str().unwrap()), (404, "notFound"), "{b}");
    let m = b["errors"][0]["message"].as_str().unwrap();
    assert!(m.contains("/admin/v1/acounts") && m.contains("/docs/admin-api"), "{m}");
    assert!(!m.contains("Runware"), "{m}");
    assert!(b["errors"][0]["documentation"].as_str().unwrap().ends_with("/docs/errors#notFound"), "{b}");
    let (st, b) = call(&s, &admin, "DELETE", "/accounts", None).await;
    assert_eq!((st, b["errors"][0]["code"].as_str().unwrap()), (405, "methodNotAllowed"), "{b}");
    let (st, b) = call(&s, &admin, "POST", "/keys/three/disable", None).await;
    assert_eq!((st, b["errors"][0]["code"].as_str().unwrap()), (400, "invalidParameterValue"), "{b}");
    let page = s.http.get(format!("{}/docs/admin-api", s.base_url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("POST /admin/v1/keys/{id}/revoke"));
}

#[tokio::test]
async fn limits_are_set_and_shown_with_usage() {
    let s = TestServer::start().await;
    let admin = admin_key(&s).await;
    let air = mediagate_core::model::PROCEDURAL_AIR;
    let (st, v) = call(
        &s,
        &admin,
        "PUT",
        "/accounts/default/limits",
        Some(json!({"model": air, "maxDaily": 2, "maxConcurrent": 3})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = call(
        &s,
        &admin,
        "PUT",
        "/accounts/default/limits",
        Some(json!({"maxMonthlySpendUsd": "5", "keyRatePerSec": 100})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    for _ in 0..2 {
        assert_eq!(s.post(&image()).await.0, 200);
    }
    assert_eq!(s.post(&image()).await.0, 429, "the daily cap set through the admin API applies at once");
    let (_, v) = call(&s, &admin, "GET", "/accounts/default/limits", None).await;
    assert_eq!(v["overrides"].as_array().unwrap().len(), 2, "{v}");
    let l = &v["limits"];
    assert_eq!(l["maxMonthlySpendMicros"], 5_000_000);
    assert_eq!(l["monthSpendMicros"], 1200);
    assert_eq!(l["keyRatePerSec"], 100.0);
    let m = l["models"].as_array().unwrap().iter().find(|m| m["model"] == air).unwrap();
    assert_eq!(
        (m["maxDaily"].as_i64(), m["dailyUsed"].as_i64(), m["maxConcurrent"].as_i64()),
        (Some(2), Some(2), Some(3))
    );
    assert_eq!((m["running"].as_i64(), m["queued"].as_i64()), (Some(0), Some(0)));
    // Account-wide values are refused per model, unknown models and bad values too.
    let bad = [
        json!({"model": air, "keyRatePerSec": 1}),
        json!({"model": "acme:nope@1", "maxDaily": 1}),
        json!({"keyRatePerSec": -1}),
        json!({"maxMonthlySpendUsd": "lots"}),
        json!({"maxDayly": 1}),
    ];
    for b in bad {
        let (st, r) = call(&s, &admin, "PUT", "/accounts/default/limits", Some(b.clone())).await;
        assert_eq!(st, 400, "{b} -> {r}");
    }
    // Clearing the per-model override lifts the cap.
    let (st, _) = call(&s, &admin, "PUT", "/accounts/default/limits", Some(json!({"model": air}))).await;
    assert_eq!(st, 200);
    assert_eq!(s.post(&image()).await.0, 200);
}

#[tokio::test]
async fn the_cli_makes_admin_keys_and_sets_limits_the_server_applies() {
    let s = TestServer::start_with(|c| c.limits.refresh_ms = 100).await;
    let dir = s.engine.config().data_dir.clone();
    let o = common::mg(&dir, &["admin-keys", "create", "--description", "ops"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let admin = common::stdout(&o).trim().to_string();
    assert!(admin.starts_with("admin_"));
    assert_eq!(call(&s, &admin, "GET", "/accounts", None).await.0, 200);
    let o = common::mg(&dir, &["admin-keys", "list"]);
    assert!(common::stdout(&o).contains("ops") && !common::stdout(&o).contains(&admin[6..]));

    let air = mediagate_core::model::PROCEDURAL_AIR;
    let o = common::mg(&dir, &["limits", "set", "--account", "default", "--model", air, "--max-daily", "1"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let o = common::mg(&dir, &["limits", "show", "--account", "default"]);
    assert!(common::stdout(&o).contains("\"maxDaily\":1"), "{}", common::stdout(&o));
    let o = common::mg(&dir, &["limits", "set", "--account", "default", "--model", air, "--key-burst", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(common::stderr(&o).contains("applies to the whole account"), "{}", common::stderr(&o));
    // The server re-reads stored limits within limits.refresh_ms.
    let deadline = Instant::now() + Duration::from_secs(5);
    assert_eq!(s.post(&image()).await.0, 200);
    loop {
        let (st, b) = s.post(&image()).await;
        if st == 429 {
            assert_eq!(b["errors"][0]["code"], "dailyLimitExceeded");
            break;
        }
        assert!(Instant::now() < deadline, "the CLI's limit never applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let o = common::mg(&dir, &["admin-keys", "revoke", "1"]);
    assert!(o.status.success());
    assert_eq!(call(&s, &admin, "GET", "/accounts", None).await.0, 401);
}
