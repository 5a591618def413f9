//! `videoInference` forwarded by `runware-upstream`: sent with `deliveryMethod: "async"`, polled
//! with `getResponse` until its video is in, with every optional parameter of the official SDKs
//! sent on (images as the bytes fetched here), and an upstream failure mapped into the catalog.
//! The upstream is a scripted mock of Runware's API (a test double).

use base64::Engine as _;
use mediagate_core::task::TaskType;
use mediagate_providers::upstream::UpstreamKind;
use mediagate_testkit::mock_upstream::{MockUpstream, Reply, png};
use mediagate_testkit::server::serve_models_from;
use mediagate_testkit::{TestServer, task_uuid};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn server(mock: &MockUpstream) -> TestServer {
    let url = mock.base_url.clone();
    TestServer::start_with(move |c| {
        let models = [("acme:video@1", TaskType::VideoInference)];
        serve_models_from(c, "runware", UpstreamKind::RunwareUpstream, &url, "0.05", &models);
    })
    .await
}

/// Polls getResponse until the task ends; returns its items (or its error object).
async fn settle(s: &TestServer, uuid: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, b) = s.post(&json!([{"taskType": "getResponse", "taskUUID": uuid}])).await;
        if b["data"][0]["status"] != "processing" {
            return b;
        }
        assert!(Instant::now() < deadline, "the task did not end: {b}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// The bytes of a real MP4, made by the built-in video stand-in.
async fn an_mp4(s: &TestServer) -> Vec<u8> {
    let uuid = task_uuid();
    let (st, b) = s
        .post(&json!([{"taskType": "videoInference", "taskUUID": uuid, "deliveryMethod": "async",
                        "positivePrompt": "a test clip", "width": 64, "height": 64, "duration": 1, "fps": 2}]))
        .await;
    assert_eq!(st, 200, "{b}");
    let done = settle(s, &uuid).await;
    let url = done["data"][0]["videoURL"].as_str().unwrap_or_else(|| panic!("{done}"));
    s.http.get(url).send().await.unwrap().bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn a_video_is_sent_async_polled_and_stored_with_its_parameters() {
    let mock = MockUpstream::start().await;
    let s = server(&mock).await;
    let mp4 = an_mp4(&s).await;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&mp4);
    let item = |status: &str| json!({"taskType": "videoInference", "taskUUID": "u", "status": status});
    let mut done = item("success");
    done["videoUUID"] = json!("v");
    done["videoBase64Data"] = json!(b64);
    mock.on(
        "POST",
        "/v1",
        vec![
            Reply::json(200, json!({"data": [{"taskType": "videoInference", "taskUUID": "u"}]})),
            Reply::json(200, json!({"data": [item("processing")]})),
            Reply::json(200, json!({"data": [done]})),
        ],
    );
    let reference = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png(32, 32, [0, 9, 0]))
    );
    let uuid = task_uuid();
    let sent = json!({
        "taskType": "videoInference", "taskUUID": uuid, "deliveryMethod": "async", "model": "acme:video@1",
        "positivePrompt": "waves at night", "negativePrompt": "blur", "width": 640, "height": 384, "duration": 5,
        "frameImages": [{"inputImage": reference, "frame": "first"}, {"inputImage": reference, "frame": "last"}],
        "referenceImages": [reference], "lora": [{"model": "civitai:1@1", "weight": 0.5}],
        "providerSettings": {"google": {"generateAudio": true}}, "includeCost": true,
    });
    let (st, b) = s.post(&json!([sent])).await;
    assert_eq!(st, 200, "{b}");
    let got = settle(&s, &uuid).await;
    let result = &got["data"][0];
    assert_eq!(result["status"], "success", "{got}");
    let url = result["videoURL"].as_str().unwrap();
    assert!(url.ends_with(".mp4"), "{url}");
    assert_eq!(s.http.get(url).send().await.unwrap().bytes().await.unwrap().to_vec(), mp4);
    assert_eq!(result["cost"], json!(0.05), "{got}");

    let calls = mock.requests("POST", "/v1");
    let forwarded = &calls[0].json()[0];
    assert_eq!(forwarded["deliveryMethod"], "async", "{forwarded}");
    for key in ["negativePrompt", "lora", "providerSettings", "referenceImages", "frameImages"] {
        assert_eq!(forwarded[key], sent[key], "{key}: {forwarded}");
    }
    // Then getResponse for the upstream's task until it succeeded.
    let polled = &calls[1].json()[0];
    assert_eq!(polled["taskType"], "getResponse");
    assert_eq!(polled["taskUUID"], forwarded["taskUUID"]);
    assert!(calls.len() >= 3, "submitted, then polled until done");
}

#[tokio::test]
async fn an_upstream_failure_of_a_polled_video_is_mapped_and_refunded() {
    let mock = MockUpstream::start().await;
    let s = server(&mock).await;
    mock.on(
        "POST",
        "/v1",
        vec![
            Reply::json(200, json!({"data": [{"taskType": "videoInference", "taskUUID": "u"}]})),
            Reply::json(
                200,
                json!({"data": [{"taskType": "videoInference", "taskUUID": "u", "status": "error",
                                               "error": {"code": "providerContentPolicyViolation"}}]}),
            ),
        ],
    );
    let before = s.balance("default").await;
    let uuid = task_uuid();
    let (st, b) = s
        .post(&json!([{"taskType": "videoInference", "taskUUID": uuid, "deliveryMethod": "async",
                        "model": "acme:video@1", "positivePrompt": "waves", "width": 640, "height": 384}]))
        .await;
    assert_eq!(st, 200, "{b}");
    let got = settle(&s, &uuid).await;
    let item = &got["data"][0];
    assert_eq!(
        (item["status"].as_str(), item["error"]["code"].as_str()),
        (Some("error"), Some("providerContentPolicyViolation")),
        "{got}"
    );
    assert_eq!(s.balance("default").await, before, "a failed task is refunded");
}

#[tokio::test]
async fn video_parameters_the_stand_in_does_not_act_on_are_refused_by_name() {
    let s = TestServer::start().await;
    let task = |extra: Value| {
        let mut t = json!({"taskType": "videoInference", "taskUUID": task_uuid(), "deliveryMethod": "async",
                           "positivePrompt": "waves", "width": 128, "height": 128, "duration": 1, "fps": 4});
        for (k, v) in extra.as_object().unwrap() {
            t[k] = v.clone();
        }
        t
    };
    let png = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png(64, 64, [1, 2, 3]))
    );
    let last =
        json!({"frameImages": [{"inputImage": png, "frame": "first"}, {"inputImage": png, "frame": "last"}]});
    let refused: &[(Value, &str, &str)] = &[
        (last, "unsupportedParameterForModel", "frameImages[1].frame"),
        (
            json!({"frameImages": [{"inputImage": png}, {"inputImage": png}]}),
            "invalidParameterValue",
            "frameImages[1].frame",
        ),
        (
            json!({"frameImages": [{"inputImage": png, "frame": "middle"}]}),
            "invalidParameterValue",
            "frameImages[0].frame",
        ),
        (
            json!({"frameImages": [{"inputImage": png, "frame": "last"}, {"inputImage": png, "frame": "first"}]}),
            "invalidParameterValue",
            "frameImages[1].frame",
        ),
        (json!({"numberResults": 2}), "unsupportedParameterForModel", "numberResults"),
        (json!({"lora": [{"model": "civitai:1@1"}]}), "unsupportedParameterForModel", "lora"),
        (json!({"providerSettings": {"google": {}}}), "unsupportedParameterForModel", "providerSettings"),
        (json!({"lora": [{"weight": 1}]}), "missingParameter", "lora[0].model"),
        (json!({"steps": 0}), "invalidParameterValue", "steps"),
    ];
    s.assert_refused(refused, task).await;
    // Hints are taken: the stand-in has no sampler to give them to.
    let (st, b) = s.post(&json!([task(json!({"negativePrompt": "blur", "CFGScale": 7, "steps": 20}))])).await;
    assert_eq!((st, b["errors"].clone()), (200, Value::Null), "{b}");
}

#[tokio::test]
async fn the_video_forms_of_upscale_background_removal_and_caption_are_forwarded_and_polled() {
    let mock = MockUpstream::start().await;
    let url = mock.base_url.clone();
    let s = TestServer::start_with(move |c| {
        let models = [
            ("acme:vup@1", TaskType::Upscale),
            ("acme:vbg@1", TaskType::RemoveBackground),
            ("acme:vcap@1", TaskType::Caption),
        ];
        serve_models_from(c, "runware", UpstreamKind::RunwareUpstream, &url, "0.02", &models);
    })
    .await;
    let mp4 = an_mp4(&s).await;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&mp4);
    let video = format!("data:video/mp4;base64,{b64}");
    // One scripted reply for every call: an ack for the submits, a finished item for the polls.
    mock.on(
        "POST",
        "/v1",
        vec![Reply::json(
            200,
            json!({"data": [{"taskType": "x", "taskUUID": "u", "status": "success", "videoUUID": "v",
                             "videoBase64Data": b64, "text": "waves roll onto a beach"}]}),
        )],
    );
    for (task, field) in [
        (
            json!({"taskType": "upscale", "model": "acme:vup@1", "inputs": {"video": video}, "upscaleFactor": 2,
                "outputFormat": "MP4", "fps": 24}),
            "videoURL",
        ),
        (
            json!({"taskType": "removeBackground", "model": "acme:vbg@1", "inputs": {"video": video},
                "settings": {"rgba": [0, 0, 0, 0]}}),
            "videoURL",
        ),
        (json!({"taskType": "caption", "model": "acme:vcap@1", "inputs": {"video": video}}), "text"),
    ] {
        let uuid = task_uuid();
        let mut task = task;
        task["taskUUID"] = json!(uuid);
        let (st, b) = s.post(&json!([task.clone()])).await;
        assert_eq!(st, 200, "{b}");
        // Async by default: the first answer is the acknowledgement.
        assert!(b["data"][0][field].is_null(), "{b}");
        let got = settle(&s, &uuid).await;
        let item = &got["data"][0];
        assert_eq!(item["status"], "success", "{got}");
        if field == "text" {
            assert_eq!(item["text"], "waves roll onto a beach", "{got}");
        } else {
            let url = item[field].as_str().unwrap_or_else(|| panic!("{got}"));
            assert_eq!(s.http.get(url).send().await.unwrap().bytes().await.unwrap().to_vec(), mp4);
        }
        let sent = mock
            .requests("POST", "/v1")
            .into_iter()
            .map(|r| r.json()[0].clone())
            .rfind(|t| t["taskType"] == task["taskType"])
            .unwrap();
        assert_eq!(sent["deliveryMethod"], "async", "{sent}");
        assert_eq!(sent["inputs"]["video"], video, "the video as the bytes fetched here");
    }
    // A video form asked for synchronously is refused with what to send.
    let (st, b) = s
        .post(&json!([{"taskType": "upscale", "taskUUID": task_uuid(), "model": "acme:vup@1",
                        "inputs": {"video": video}, "deliveryMethod": "sync"}]))
        .await;
    assert_eq!((st, b["errors"][0]["parameter"].as_str()), (400, Some("deliveryMethod")), "{b}");
}
