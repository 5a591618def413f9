//! Runware async delivery over real HTTP: acknowledgement, getResponse statuses, the sync wait
//! bound, and videoInference rendered by the procedural video stand-in.

use mediagate_testkit::{TestServer, task_uuid};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn poll(s: &TestServer, uuid: &str, budget: Duration) -> Vec<Value> {
    let deadline = Instant::now() + budget;
    loop {
        let (st, b) = s.post(&json!([{"taskType": "getResponse", "taskUUID": uuid}])).await;
        assert_eq!(st, 200, "{b}");
        let items = b["data"].as_array().unwrap().clone();
        if items.iter().all(|i| i["status"] != "processing") {
            return items;
        }
        assert!(Instant::now() < deadline, "task {uuid} still processing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn async_tasks_are_acknowledged_then_polled() {
    let s = TestServer::start().await;
    let u = task_uuid();
    let task = json!({"taskType": "imageInference", "taskUUID": u, "positivePrompt": "async fox", "width": 1024,
                      "height": 1024, "numberResults": 4, "deliveryMethod": "async", "includeCost": true});
    let t0 = Instant::now();
    let (st, b) = s.post(&json!([task])).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"][0], json!({"taskType": "imageInference", "taskUUID": u, "status": "processing"}));
    // Admitted and charged before the acknowledgement.
    assert_eq!(s.balance("default").await, 10_000_000 - 4 * 600);
    let first = s.post(&json!([{"taskType": "getResponse", "taskUUID": u}])).await.1;
    let items = poll(&s, &u, Duration::from_secs(60)).await;
    assert_eq!(items.len(), 4);
    for i in &items {
        assert_eq!((i["status"].as_str(), i["taskUUID"].as_str()), (Some("success"), Some(u.as_str())));
        assert!(i["imageURL"].as_str().unwrap().ends_with(".png"));
        assert_eq!(i["cost"], 0.0006);
    }
    // Either the first poll already saw it (fast machine) or it said processing.
    let st0 = first["data"][0]["status"].as_str().unwrap().to_string();
    assert!(st0 == "processing" || st0 == "success", "{first}");
    assert!(t0.elapsed() < Duration::from_secs(60));
    // Resending the async task is a replay: acknowledged again, not charged again.
    let (st, b) = s.post(&json!([task])).await;
    assert_eq!((st, &b["data"][0]["taskUUID"]), (200, &json!(u)));
    assert_eq!(s.balance("default").await, 10_000_000 - 4 * 600);
}

#[tokio::test]
async fn a_sync_task_past_the_wait_bound_keeps_running() {
    let s = TestServer::start_with(|c| c.tasks.sync_timeout_secs = 0).await;
    let u = task_uuid();
    let task = json!({"taskType": "imageInference", "taskUUID": u, "positivePrompt": "slow", "width": 2048,
                      "height": 2048, "numberResults": 3});
    let (st, b) = s.post(&json!([task])).await;
    assert_eq!(st, 504, "{b}");
    let e = &b["errors"][0];
    assert_eq!(e["code"], "taskStillProcessing");
    assert!(e["message"].as_str().unwrap().contains("getResponse"));
    let items = poll(&s, &u, Duration::from_secs(120)).await;
    assert_eq!(items.len(), 3);
    assert!(items.iter().all(|i| i["status"] == "success"));
}

#[tokio::test]
async fn video_inference_renders_a_real_video_asynchronously() {
    let s = TestServer::start().await;
    for (format, magic_at, magic) in [("MP4", 4, &b"ftyp"[..]), ("WEBM", 0, &[0x1a, 0x45, 0xdf, 0xa3][..])] {
        let u = task_uuid();
        let (st, b) = s
            .post(&json!([{"taskType": "videoInference", "taskUUID": u, "positivePrompt": "drifting shapes",
                           "width": 320, "height": 176, "duration": 1, "fps": 12, "outputFormat": format,
                           "seed": 7, "includeCost": true}]))
            .await;
        assert_eq!(st, 200, "{b}");
        assert_eq!(b["data"][0]["status"], "processing", "video defaults to async");
        let items = poll(&s, &u, Duration::from_secs(120)).await;
        let item = &items[0];
        assert_eq!(item["status"], "success", "{item}");
        assert_eq!(item["taskType"], "videoInference");
        assert_eq!(item["cost"], 0.005);
        assert_eq!(item["seed"], 7);
        let url = item["videoURL"].as_str().unwrap();
        let r = s.http.get(url).send().await.unwrap();
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        let bytes = r.bytes().await.unwrap();
        assert_eq!(ct, if format == "MP4" { "video/mp4" } else { "video/webm" });
        assert_eq!(&bytes[magic_at..magic_at + magic.len()], magic, "{format} container signature");
        assert!(bytes.len() > 1000);
    }
    // Inline video output uses the video field names.
    let u = task_uuid();
    s.post(&json!([{"taskType": "videoInference", "taskUUID": u, "positivePrompt": "inline", "width": 64,
                    "height": 64, "duration": 1, "fps": 4, "outputType": "base64Data"}]))
        .await;
    let items = poll(&s, &u, Duration::from_secs(60)).await;
    assert!(
        items[0]["videoBase64Data"].is_string() && items[0].get("imageBase64Data").is_none(),
        "{}",
        items[0]
    );
    // Sync video is refused with a clear way out; bounds are the model's.
    let (st, b) = s
        .post(&json!([{"taskType": "videoInference", "taskUUID": task_uuid(), "positivePrompt": "x y",
                       "deliveryMethod": "sync"}]))
        .await;
    assert_eq!((st, b["errors"][0]["parameter"].as_str()), (400, Some("deliveryMethod")));
    let (st, b) = s
        .post(&json!([{"taskType": "videoInference", "taskUUID": task_uuid(), "positivePrompt": "x y",
                       "duration": 11}]))
        .await;
    assert_eq!((st, b["errors"][0]["parameter"].as_str()), (400, Some("duration")), "{b}");
}

#[tokio::test]
async fn image_to_video_takes_a_first_frame_from_an_earlier_output() {
    let s = TestServer::start().await;
    let (_, b) = s
        .post(&json!([{"taskType": "imageInference", "taskUUID": task_uuid(), "positivePrompt": "a still",
                       "width": 320, "height": 192}]))
        .await;
    let image_uuid = b["data"][0]["imageUUID"].as_str().unwrap().to_string();
    let u = task_uuid();
    let (st, b) = s
        .post(&json!([{"taskType": "videoInference", "taskUUID": u, "positivePrompt": "it moves",
                       "width": 320, "height": 192, "duration": 1, "fps": 8,
                       "frameImages": [{"inputImage": image_uuid, "frame": "first"}]}]))
        .await;
    assert_eq!(st, 200, "{b}");
    let items = poll(&s, &u, Duration::from_secs(120)).await;
    assert_eq!(items[0]["status"], "success", "{:?}", items);
    // An unknown first frame fails the task with the asset's path; the charge is refunded.
    let before = s.balance("default").await;
    let bad = task_uuid();
    s.post(&json!([{"taskType": "videoInference", "taskUUID": bad, "positivePrompt": "it moves",
                    "frameImages": [{"inputImage": "00000000-0000-4000-8000-000000000000"}]}]))
        .await;
    let items = poll(&s, &bad, Duration::from_secs(60)).await;
    assert_eq!(items[0]["status"], "error");
    assert_eq!(items[0]["error"]["code"], "assetNotFound");
    assert_eq!(items[0]["error"]["parameter"], "frameImages[0].inputImage");
    assert_eq!(s.balance("default").await, before);
}

#[tokio::test]
async fn get_response_returns_partial_results_as_they_complete() {
    let s = TestServer::start().await;
    let u = task_uuid();
    let (st, _) = s
        .post(&json!([{"taskType": "imageInference", "taskUUID": u, "positivePrompt": "one by one", "width": 2048,
                       "height": 2048, "numberResults": 6, "deliveryMethod": "async", "seed": 100}]))
        .await;
    assert_eq!(st, 200);
    let mut partial_seen = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, b) = s.post(&json!([{"taskType": "getResponse", "taskUUID": u}])).await;
        let items = b["data"].as_array().unwrap().clone();
        let done: Vec<&Value> = items.iter().filter(|i| i["status"] == "success").collect();
        let running = items.iter().any(|i| i["status"] == "processing");
        if running && !done.is_empty() {
            partial_seen = partial_seen.max(done.len());
            // Finished results are complete items with their own seed, in order.
            for (k, d) in done.iter().enumerate() {
                assert_eq!(d["seed"], 100 + k as u64);
                assert!(d["imageURL"].is_string());
            }
        }
        if !running {
            assert_eq!(done.len(), 6);
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(partial_seen > 0, "getResponse never showed partial results");
    // 2048x2048 is four times the 1024x1024 the listed $0.0006 pays for.
    assert_eq!(s.balance("default").await, 10_000_000 - 6 * 2400, "charged for six results once");
}
