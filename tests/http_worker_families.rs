//! `http-worker` serves every task type: a text task, an audio task and an async video task on a
//! scripted worker (the testkit's mock upstream, a test double), each sent with the whole task in
//! `input.task` (its inputs inlined) and its outputs turned into results of the task's family.

use base64::Engine as _;
use mediagate_core::task::TaskType;
use mediagate_providers::upstream::UpstreamKind;
use mediagate_testkit::mock_upstream::{MockUpstream, Reply};
use mediagate_testkit::server::serve_models_from;
use mediagate_testkit::{TestServer, task_uuid};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn server(worker: &MockUpstream) -> TestServer {
    let url = worker.base_url.clone();
    TestServer::start_with(move |c| {
        let models = [
            ("team:enhance@1", TaskType::PromptEnhance),
            ("team:music@1", TaskType::AudioInference),
            ("team:video@1", TaskType::VideoInference),
        ];
        serve_models_from(c, "gpu", UpstreamKind::HttpWorker, &url, "0.01", &models);
    })
    .await
}

/// The bytes of a file the built-in stand-ins make, by a sync or polled task.
async fn made_here(s: &TestServer, task: Value, field: &str) -> Vec<u8> {
    let uuid = task["taskUUID"].as_str().unwrap().to_string();
    let (st, b) = s.post(&json!([task])).await;
    assert_eq!(st, 200, "{b}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut item = b["data"][0].clone();
    while item[field].is_null() {
        assert!(Instant::now() < deadline, "{item}");
        tokio::time::sleep(Duration::from_millis(30)).await;
        let (_, b) = s.post(&json!([{"taskType": "getResponse", "taskUUID": uuid}])).await;
        item = b["data"][0].clone();
    }
    let url = item[field].as_str().unwrap();
    s.http.get(url).send().await.unwrap().bytes().await.unwrap().to_vec()
}

fn finished(outputs: Value) -> Reply {
    Reply::json(200, json!({"id": "j", "status": "succeeded", "outputs": outputs}))
}

#[tokio::test]
async fn text_audio_and_video_tasks_run_on_a_worker() {
    let worker = MockUpstream::start().await;
    let s = server(&worker).await;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);

    // Text: the worker's text comes back as the result's text.
    worker.on("POST", "/jobs", vec![finished(json!([{"text": "a red fox at dawn, cinematic"}]))]);
    let (st, b) = s
        .post(&json!([{"taskType": "promptEnhance", "taskUUID": task_uuid(), "model": "team:enhance@1",
                        "prompt": "a red fox", "promptMaxLength": 64}]))
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"][0]["text"], "a red fox at dawn, cinematic", "{b}");
    let sent = &worker.requests("POST", "/jobs")[0].json();
    assert_eq!(
        (sent["taskType"].as_str(), sent["model"].as_str()),
        (Some("promptEnhance"), Some("team:enhance@1"))
    );
    assert_eq!(sent["input"]["task"]["prompt"], "a red fox", "{sent}");

    // Audio: a real WAV (made by the built-in stand-in) is stored and served as audio.
    let wav = made_here(
        &s,
        json!({"taskType": "audioInference", "taskUUID": task_uuid(), "positivePrompt": "a calm piano", "duration": 1}),
        "audioURL",
    )
    .await;
    worker.on("POST", "/jobs", vec![finished(json!([{"base64": b64(&wav), "seed": 9}]))]);
    let (st, b) = s
        .post(&json!([{"taskType": "audioInference", "taskUUID": task_uuid(), "model": "team:music@1",
                        "positivePrompt": "a cello", "duration": 20}]))
        .await;
    assert_eq!(st, 200, "{b}");
    let url = b["data"][0]["audioURL"].as_str().unwrap_or_else(|| panic!("{b}"));
    assert_eq!(s.http.get(url).send().await.unwrap().bytes().await.unwrap().to_vec(), wav);

    // Video: queued, polled at GET /jobs/{id}, then stored; the first frame was inlined.
    let mp4 = made_here(
        &s,
        json!({"taskType": "videoInference", "taskUUID": task_uuid(), "deliveryMethod": "async",
               "positivePrompt": "a test clip", "width": 64, "height": 64, "duration": 1, "fps": 2}),
        "videoURL",
    )
    .await;
    worker.on("POST", "/jobs", vec![Reply::json(202, json!({"id": "j", "status": "queued"}))]);
    worker.on(
        "GET",
        "/jobs/*",
        vec![
            Reply::json(200, json!({"id": "j", "status": "running", "progress": 0.5})),
            finished(json!([{"base64": b64(&mp4)}])),
        ],
    );
    let frame =
        format!("data:image/png;base64,{}", b64(&mediagate_testkit::mock_upstream::png(64, 64, [9, 9, 9])));
    let uuid = task_uuid();
    let (st, b) = s
        .post(&json!([{"taskType": "videoInference", "taskUUID": uuid, "deliveryMethod": "async",
                        "model": "team:video@1", "positivePrompt": "waves", "width": 640, "height": 384,
                        "duration": 5, "frameImages": [{"inputImage": frame, "frame": "first"}]}]))
        .await;
    assert_eq!(st, 200, "{b}");
    let got = made_here(&s, json!({"taskType": "getResponse", "taskUUID": uuid}), "videoURL").await;
    assert_eq!(got, mp4);
    let sent = &worker.requests("POST", "/jobs").last().unwrap().json();
    assert_eq!(sent["input"]["task"]["frameImages"][0]["inputImage"], frame, "{sent}");
    assert!(worker.calls("GET", "/jobs/*") >= 2, "polled until done");
}
