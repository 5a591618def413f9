//! `getTaskDetails` over the Runware REST dialect: an earlier task's request and response.

use mediagate_testkit::images::png_data_uri;
use mediagate_testkit::{TestServer, task_uuid};
use serde_json::{Value, json};

async fn details(s: &TestServer, key: &str, uuid: &str) -> (u16, Value) {
    s.post_with_key(key, &json!([{"taskType": "getTaskDetails", "taskUUID": uuid}])).await
}

#[tokio::test]
async fn a_finished_task_shows_its_request_and_its_response() {
    let s = TestServer::start().await;
    let u = task_uuid();
    let task = json!({"taskType": "imageInference", "taskUUID": u, "positivePrompt": "a lighthouse",
                      "width": 128, "height": 64, "includeCost": true});
    let (st, sent) = s.post(&json!([task])).await;
    assert_eq!(st, 200, "{sent}");
    let (st, b) = details(&s, &s.api_key, &u).await;
    assert_eq!(st, 200, "{b}");
    let d = &b["data"][0];
    assert_eq!((d["taskType"].as_str(), d["taskUUID"].as_str()), (Some("getTaskDetails"), Some(u.as_str())));
    let request = &d["request"][0];
    for (k, v) in task.as_object().unwrap() {
        assert_eq!(&request[k], v, "{k} in {request}");
    }
    assert_eq!(request["model"], "mediagate:procedural@1", "the model it ran on");
    let item = &d["response"]["data"][0];
    assert_eq!(item["status"], "success");
    assert_eq!(item["imageURL"], sent["data"][0]["imageURL"]);
    assert_eq!(item["cost"], sent["data"][0]["cost"]);
}

#[tokio::test]
async fn a_failed_task_shows_its_errors_and_inline_assets_by_their_size() {
    let s = TestServer::start().await;
    let u = task_uuid();
    // Admitted, then refused once the input is read: a 10:1 image is outside the model's ratios.
    let image = png_data_uri(4000, 400);
    let (st, b) = s
        .post(&json!([{"taskType": "upscale", "taskUUID": u, "inputImage": image, "upscaleFactor": 4}]))
        .await;
    assert_eq!(st, 400, "{b}");
    let (st, b) = details(&s, &s.api_key, &u).await;
    assert_eq!(st, 200, "{b}");
    let d = &b["data"][0];
    let e = &d["response"]["errors"][0];
    assert_eq!((e["code"].as_str(), e["parameter"].as_str()), (Some("assetAspectRatio"), Some("inputImage")));
    assert_eq!(e["taskUUID"], u.as_str());
    // Kept as its size and the SHA-256 of the value as sent (the data URI or base64 text).
    let digest: String = {
        use sha2::Digest;
        sha2::Sha256::digest(image.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    };
    assert_eq!(d["request"][0]["inputImage"], format!("<{} bytes elided, sha256:{digest}>", image.len()));
    assert!(!b.to_string().contains(&image[30..80]), "the bytes are not kept");
}

#[tokio::test]
async fn only_the_accounts_own_tasks_are_shown() {
    let s = TestServer::start().await;
    let (st, b) = details(&s, &s.api_key, &task_uuid()).await;
    assert_eq!((st, b["errors"][0]["code"].as_str()), (404, Some("taskNotFound")), "{b}");
    let u = task_uuid();
    let (st, _) =
        s.post(&json!([{"taskType": "imageInference", "taskUUID": u, "positivePrompt": "mine"}])).await;
    assert_eq!(st, 200);
    s.engine.admin().create_account("other", "1").await.unwrap();
    let other = s.create_key("other", &[]).await;
    let (st, b) = details(&s, &other, &u).await;
    assert_eq!((st, b["errors"][0]["code"].as_str()), (404, Some("taskNotFound")), "{b}");
    assert!(!b.to_string().contains("mine"));
}
