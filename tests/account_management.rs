//! `accountManagement` (`getDetails`) over the Runware REST dialect: the caller's own account,
//! balance, keys (by prefix, never a secret) and usage, from this server's records.

use mediagate_testkit::{TestServer, task_uuid};
use serde_json::json;

#[tokio::test]
async fn get_details_shows_the_callers_account_keys_and_usage_and_never_a_secret() {
    let s = TestServer::start().await;
    let other = s.create_key("default", &[]).await;
    let (st, b) = s
        .post(
            &json!([{"taskType": "imageInference", "taskUUID": task_uuid(), "positivePrompt": "a lighthouse",
                        "width": 128, "height": 128}]),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let uuid = task_uuid();
    let (st, b) = s
        .post(&json!([{"taskType": "accountManagement", "taskUUID": uuid, "operation": "getDetails"}]))
        .await;
    assert_eq!(st, 200, "{b}");
    let d = &b["data"][0];
    assert_eq!(
        (d["taskType"].as_str(), d["taskUUID"].as_str()),
        (Some("accountManagement"), Some(uuid.as_str()))
    );
    assert_eq!(d["operation"], "getDetails");
    assert_eq!(d["organizationName"], "default");
    let balance = s.balance("default").await as f64 / 1e6;
    assert!((d["balance"].as_f64().unwrap() - balance).abs() < 1e-9, "{d}");
    assert!(d["organizationUUID"].as_str().unwrap().parse::<uuid::Uuid>().is_ok(), "{d}");
    let keys = d["apiKeys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{d}");
    assert_eq!(keys.iter().filter(|k| k["current"] == true).count(), 1, "{d}");
    assert!(
        keys.iter().all(|k| k["prefix"].as_str().unwrap().starts_with("key_") && k["status"] == "active")
    );
    let body = b.to_string();
    assert!(!body.contains(&s.api_key) && !body.contains(&other), "no secret is shown");
    assert!(d["usage"]["monthlySpend"].as_f64().unwrap() > 0.0, "{d}");
    assert_eq!(d["usage"]["models"]["mediagate:procedural@1"]["dailyGenerations"], 1, "{d}");

    // The account's other key is the current one when it asks.
    let (st, b) = s
        .post_with_key(
            &other,
            &json!([{"taskType": "accountManagement", "taskUUID": task_uuid(), "operation": "getDetails"}]),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(
        b["data"][0]["apiKeys"].as_array().unwrap().iter().filter(|k| k["current"] == true).count(),
        1
    );

    let refused: &[(serde_json::Value, &str, &str)] = &[
        (json!({}), "missingParameter", "operation"),
        (json!({"operation": "deleteKeys"}), "invalidParameterValue", "operation"),
        (json!({"operation": "getDetails", "verbose": true}), "unknownParameter", "verbose"),
    ];
    s.assert_refused(refused, |extra| {
        let mut t = json!({"taskType": "accountManagement", "taskUUID": task_uuid()});
        for (k, v) in extra.as_object().unwrap() {
            t[k] = v.clone();
        }
        t
    })
    .await;
}
