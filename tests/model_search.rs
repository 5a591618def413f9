//! `modelSearch` over the Runware REST dialect: the catalog, filtered and paged as Runware
//! documents, limited to the models the key may use.

use mediagate_core::model::builtin_models;
use mediagate_testkit::{TestServer, task_uuid};
use serde_json::{Value, json};

fn search(extra: Value) -> Value {
    let mut t = json!({"taskType": "modelSearch", "taskUUID": task_uuid()});
    for (k, v) in extra.as_object().unwrap() {
        t[k] = v.clone();
    }
    t
}

async fn found(s: &TestServer, key: &str, extra: Value) -> (usize, Vec<String>) {
    let (st, b) = s.post_with_key(key, &json!([search(extra)])).await;
    assert_eq!(st, 200, "{b}");
    let item = &b["data"][0];
    assert_eq!(item["taskType"], "modelSearch");
    let airs =
        item["results"].as_array().unwrap().iter().map(|m| m["air"].as_str().unwrap().to_string()).collect();
    (item["totalResults"].as_u64().unwrap() as usize, airs)
}

#[tokio::test]
async fn model_search_filters_and_pages_the_catalog() {
    let s = TestServer::start().await;
    let key = s.api_key.clone();
    let all = builtin_models().len();
    let (total, airs) = found(&s, &key, json!({})).await;
    assert_eq!((total, airs.len()), (all, all.min(20)));
    let mut sorted = airs.clone();
    sorted.sort();
    assert_eq!(airs, sorted, "listed by AIR id, a stable order to page through");
    // A page.
    let (total, page) = found(&s, &key, json!({"limit": 2, "offset": 1})).await;
    assert_eq!((total, page.as_slice()), (all, &airs[1..3]));
    // Words in the AIR id, name or description, every one of them.
    let (_, airs) = found(&s, &key, json!({"search": "LANCZOS resampling"})).await;
    assert_eq!(airs, ["magnific_precision_upscaler_v2", "mediagate:lanczos@1"]);
    let (_, airs) = found(&s, &key, json!({"type": "vectorize"})).await;
    assert_eq!(airs, ["mediagate:vtracer@1"]);
    let (_, airs) = found(&s, &key, json!({"tags": ["upscale", "lanczos"]})).await;
    assert_eq!(airs.len(), 2);
    let (_, airs) = found(&s, &key, json!({"category": "checkpoint"})).await;
    assert!(airs.contains(&"mediagate:procedural@1".to_string()) && airs.contains(&"veo3.1".to_string()));
    assert!(!airs.contains(&"mediagate:lanczos@1".to_string()));
    // Nothing here is private, states an architecture or is a ControlNet.
    for q in [
        json!({"visibility": "private"}),
        json!({"architecture": "flux1d"}),
        json!({"conditioning": "canny"}),
    ] {
        assert_eq!(found(&s, &key, q).await, (0, vec![]));
    }
    // The fields the SDKs' model type requires.
    let (st, b) = s.post(&json!([search(json!({"search": "vtracer"}))])).await;
    assert_eq!(st, 200);
    let m = &b["data"][0]["results"][0];
    for field in
        ["air", "name", "version", "category", "architecture", "tags", "heroImage", "private", "comment"]
    {
        assert!(m.get(field).is_some(), "{field} missing: {m}");
    }
    assert_eq!((m["name"].as_str(), m["version"].as_str()), (Some("vtracer"), Some("1")));
}

#[tokio::test]
async fn model_search_lists_only_what_the_key_may_use_and_refuses_bad_filters() {
    let s = TestServer::start().await;
    let scoped = s.create_key("default", &["task:upscale"]).await;
    let (total, airs) = found(&s, &scoped, json!({})).await;
    assert_eq!(
        (total, airs),
        (2, vec!["magnific_precision_upscaler_v2".to_string(), "mediagate:lanczos@1".into()])
    );
    let refused: &[(Value, &str, &str)] = &[
        (json!({"limit": 0}), "invalidParameterValue", "limit"),
        (json!({"limit": 101}), "invalidParameterValue", "limit"),
        (json!({"offset": -1}), "invalidParameterValue", "offset"),
        (json!({"tags": "upscale"}), "invalidParameterValue", "tags"),
        (json!({"visibility": "friends"}), "invalidParameterValue", "visibility"),
        (json!({"sort": "name"}), "unknownParameter", "sort"),
    ];
    s.assert_refused(refused, search).await;
}
