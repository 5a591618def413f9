//! The task-type registry end to end: every registered task type, sent as its module's example
//! over the Runware REST dialect, is parsed, validated, routed to a provider by its default
//! model, run, stored and rendered with its family's fields, and its output is served. A task
//! type registered in part fails here.

use mediagate_core::model::{Bounds, ModelSpec, RetryPolicy};
use mediagate_core::task::{Family, TaskType};
use mediagate_providers::upstream::{UpstreamConfig, UpstreamKind};
use mediagate_testkit::chat_mock::ChatMock;
use mediagate_testkit::mock_upstream::{MockUpstream, Reply};
use mediagate_testkit::{TestServer, task_uuid};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Submits `task` and returns its one result item, polling getResponse for async-only types.
async fn run(s: &TestServer, t: TaskType, mut task: Value) -> Value {
    let uuid = task["taskUUID"].as_str().unwrap().to_string();
    if t.async_only() {
        task["deliveryMethod"] = json!("async");
    }
    let (st, b) = s.post(&json!([task])).await;
    assert_eq!(st, 200, "{}: {b}", t.as_str());
    assert!(b.get("errors").is_none(), "{}: {b}", t.as_str());
    if !t.async_only() {
        return b["data"][0].clone();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (st, b) = s.post(&json!([{"taskType": "getResponse", "taskUUID": uuid}])).await;
        assert_eq!(st, 200, "{b}");
        let item = b["data"][0].clone();
        if item["status"] == "success" {
            return item;
        }
        assert_eq!(item["status"], "processing", "{}: {b}", t.as_str());
        assert!(Instant::now() < deadline, "{} did not finish", t.as_str());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A scripted mock of Runware's API (a test double) answering every task with one PNG result.
async fn runware_mock() -> MockUpstream {
    use base64::Engine as _;
    let png = mediagate_testkit::mock_upstream::png(8, 8, [200, 40, 40]);
    let b64 = base64::engine::general_purpose::STANDARD.encode(png);
    let m = MockUpstream::start().await;
    m.on(
        "POST",
        "/v1",
        vec![Reply::json(
            200,
            // Every image result prefix a task type names its file by, and imageMasking's boxes.
            json!({"data": [{"taskType": "x", "taskUUID": "x", "imageUUID": "x", "imageBase64Data": b64,
                             "guideImageBase64Data": b64, "maskImageBase64Data": b64,
                             "detections": [{"x_min": 1, "y_min": 2, "x_max": 5, "y_max": 7}]}]}),
        )],
    );
    m
}

/// A server where every task type without a built-in model has one configured model, on a
/// provider chosen by its family (text: `openai-chat` on the testkit's chat mock; images:
/// `runware-upstream` on a scripted mock of Runware's API).
async fn server_with_every_task_type(chat: &ChatMock, runware: &MockUpstream) -> TestServer {
    let chat_url = chat.base_url.clone();
    let runware_url = runware.base_url.clone();
    TestServer::start_with(move |c| {
        c.providers.upstreams.push(UpstreamConfig {
            name: "chat".into(),
            kind: UpstreamKind::OpenaiChat,
            base_url: chat_url,
            ..UpstreamConfig::default()
        });
        c.providers.upstreams.push(UpstreamConfig {
            name: "runware".into(),
            kind: UpstreamKind::RunwareUpstream,
            base_url: runware_url,
            ..UpstreamConfig::default()
        });
        for &t in TaskType::ALL.iter().filter(|t| t.default_model().is_none()) {
            let provider = match t.family() {
                Family::Text => "chat",
                Family::Image => "runware",
                family => panic!("no test provider for the {family:?} family of {}", t.as_str()),
            };
            c.models.push(ModelSpec {
                air: format!("test:{}@1", t.as_str()),
                task_type: t,
                provider: provider.into(),
                price_usd: "0.001".into(),
                description: "a model of the registry test".into(),
                bounds: Bounds::default(),
                retry: RetryPolicy::default(),
                fallback: vec![],
                concurrency: 0,
            });
        }
    })
    .await
}

#[tokio::test]
async fn every_registered_task_type_is_parsed_validated_routed_run_and_rendered() {
    let (chat, runware) = (ChatMock::start().await, runware_mock().await);
    let s = server_with_every_task_type(&chat, &runware).await;
    assert!(!TaskType::ALL.is_empty());
    for &t in TaskType::ALL {
        let mut task: Value = serde_json::from_str(t.example()).unwrap();
        let uuid = task_uuid();
        task["taskType"] = json!(t.as_str());
        task["taskUUID"] = json!(uuid);
        task["includeCost"] = json!(true);
        let item = run(&s, t, task).await;
        assert_eq!(item["taskType"], t.as_str(), "{item}");
        assert_eq!(item["taskUUID"], uuid.as_str(), "{item}");
        assert!(item["cost"].as_f64().unwrap() > 0.0, "{}: {item}", t.as_str());
        let family = t.result_prefix();
        if t.family() == Family::Text {
            assert!(!item["text"].as_str().unwrap_or_default().is_empty(), "{}: {item}", t.as_str());
            continue;
        }
        assert!(item[format!("{family}UUID")].is_string(), "{}: {item}", t.as_str());
        let url = item[format!("{family}URL")].as_str().unwrap_or_else(|| panic!("{}: {item}", t.as_str()));
        let r = s.http.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
        let expected = match t.family() {
            Family::Image => "image/",
            Family::Video => "video/",
            Family::Audio => "audio/",
            Family::Text => unreachable!("text is returned in the result"),
        };
        assert!(content_type.starts_with(expected), "{}: {content_type}", t.as_str());
        assert!(!r.bytes().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn the_served_task_types_listed_in_errors_come_from_the_registry() {
    let s = TestServer::start().await;
    let (st, b) = s.post(&json!([{"taskType": "noSuchTask", "taskUUID": task_uuid()}])).await;
    assert_eq!(st, 400, "{b}");
    let message = b["errors"][0]["message"].as_str().unwrap();
    for &t in TaskType::ALL {
        assert!(message.contains(t.as_str()), "{message}");
        for alias in t.aliases() {
            assert!(message.contains(alias), "{message}");
        }
    }
}

/// `vectorize` is read as Runware documents it (`inputs.image`, `outputFormat` SVG only), each
/// refusal naming the parameter to change; its result is a real SVG, priced by the pixels traced.
#[tokio::test]
async fn vectorize_is_validated_as_runware_documents_it_and_returns_an_svg() {
    use mediagate_testkit::images::png_data_uri;
    let s = TestServer::start().await;
    let png = png_data_uri(64, 64);
    let task = |extra: Value| {
        let mut t = json!({"taskType": "vectorize", "taskUUID": task_uuid()});
        for (k, v) in extra.as_object().unwrap() {
            t[k] = v.clone();
        }
        t
    };
    let refused: &[(Value, &str, &str)] = &[
        (json!({}), "missingParameter", "inputs.image"),
        (json!({"inputs": {}}), "missingParameter", "inputs.image"),
        (json!({"inputs": "x"}), "invalidParameterValue", "inputs"),
        (json!({"inputs": {"image": 5}}), "invalidParameterType", "inputs.image"),
        (json!({"inputs": {"image": png, "mask": png}}), "unknownParameter", "inputs.mask"),
        (json!({"inputs": {"image": png}, "outputFormat": "PNG"}), "invalidParameterValue", "outputFormat"),
        (
            json!({"inputs": {"image": png}, "model": "mediagate:procedural@1"}),
            "unsupportedModelForTask",
            "model",
        ),
        (json!({"inputs": {"image": png}, "positivePrompt": "a logo"}), "unknownParameter", "positivePrompt"),
        (json!({"inputs": {"image": png_data_uri(2100, 2100)}}), "invalidParameterValue", "inputs.image"),
    ];
    s.assert_refused(refused, task).await;
    let (_, b) = s.post(&json!([task(json!({"inputs": {"image": png_data_uri(2100, 2100)}}))])).await;
    assert!(b["errors"][0]["message"].as_str().unwrap().contains("2100x2100"), "{b}");

    // Base64 output is the SVG itself; the price follows the pixels traced.
    let one = |side_w: u32, side_h: u32| {
        task(json!({"inputs": {"image": png_data_uri(side_w, side_h)}, "outputType": "base64Data",
                    "outputFormat": "SVG", "includeCost": true}))
    };
    let (st, b) = s.post(&json!([one(1024, 1024), one(2048, 1024)])).await;
    assert_eq!(st, 200, "{b}");
    for (item, cost) in b["data"].as_array().unwrap().iter().zip([0.0005, 0.001]) {
        use base64::Engine as _;
        let svg = base64::engine::general_purpose::STANDARD
            .decode(item["imageBase64Data"].as_str().unwrap())
            .unwrap();
        let svg = String::from_utf8(svg).unwrap();
        assert!(svg.contains("<svg") && svg.contains("<path"), "{}", &svg[..200.min(svg.len())]);
        assert_eq!(item["cost"], json!(cost), "{item}");
    }
}

/// A task type that needs a configured model, on a server that configured none, is told so,
/// naming the configuration it needs (not `unsupportedTaskType`).
#[tokio::test]
async fn a_task_type_without_a_configured_model_names_the_configuration_it_needs() {
    let s = TestServer::start().await;
    for &t in TaskType::ALL.iter().filter(|t| t.default_model().is_none()) {
        let mut task: Value = serde_json::from_str(t.example()).unwrap();
        task["taskType"] = json!(t.as_str());
        task["taskUUID"] = json!(task_uuid());
        let (st, b) = s.post(&json!([task])).await;
        let e = &b["errors"][0];
        assert_eq!(
            (st, e["code"].as_str(), e["parameter"].as_str()),
            (400, Some("unknownModel"), Some("model")),
            "{b}"
        );
        let message = e["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("No model serves {}", t.as_str())) && message.contains("[[models]]"),
            "{message}"
        );
    }
}

/// Every registered task type a reply can carry goes through `runware-upstream` to another
/// mediagate unchanged: server A routes a model of each type to server B, which runs it on its
/// own model of that type (built in, or the chat mock for text), and A returns B's result.
#[tokio::test]
async fn runware_upstream_forwards_every_task_type() {
    let (chat, runware) = (ChatMock::start().await, runware_mock().await);
    let b = server_with_every_task_type(&chat, &runware).await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("b-key");
    std::fs::write(&key_file, &b.api_key).unwrap();
    // Those that answer in their reply, and the async-only ones (video), polled on B.
    let forwarded: Vec<TaskType> = TaskType::ALL.to_vec();
    let b_url = b.base_url.clone();
    let types = forwarded.clone();
    let a = TestServer::start_with(move |c| {
        let mut up = UpstreamConfig {
            name: "peer".into(),
            kind: UpstreamKind::RunwareUpstream,
            base_url: b_url,
            api_key_file: key_file,
            ..UpstreamConfig::default()
        };
        for &t in &types {
            let on_b = t.default_model().map_or_else(|| format!("test:{}@1", t.as_str()), str::to_string);
            let air = format!("fwd:{}@1", t.as_str());
            up.models.insert(air.clone(), on_b);
            c.models.push(ModelSpec {
                air,
                task_type: t,
                provider: "peer".into(),
                price_usd: "0.002".into(),
                description: "forwarded to another mediagate".into(),
                bounds: Bounds { input_aspect_min: 0.05, input_aspect_max: 20.0, ..Bounds::default() },
                retry: RetryPolicy::default(),
                fallback: vec![],
                concurrency: 0,
            });
        }
        c.providers.upstreams.push(up);
    })
    .await;
    assert!(forwarded.len() >= 6, "{forwarded:?}");
    for t in forwarded {
        let mut task: Value = serde_json::from_str(t.example()).unwrap();
        task["taskType"] = json!(t.as_str());
        task["taskUUID"] = json!(task_uuid());
        task["model"] = json!(format!("fwd:{}@1", t.as_str()));
        task["includeCost"] = json!(true);
        let item = run(&a, t, task).await;
        assert_eq!(item["cost"], json!(0.002), "A's own price: {item}");
        if t.family() == Family::Text {
            assert!(item["text"].as_str().unwrap().contains("in rich detail"), "{}: {item}", t.as_str());
            continue;
        }
        let url = item[format!("{}URL", t.result_prefix())].as_str().unwrap();
        assert!(url.starts_with(&a.base_url), "A serves B's output itself: {url}");
        for field in t.result_fields() {
            assert!(
                item[*field].is_array(),
                "{}: {field} comes back through both servers: {item}",
                t.as_str()
            );
        }
        let r = a.http.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(!r.bytes().await.unwrap().is_empty());
    }
    // Each forwarded task ran on B once, charged there to A's key.
    assert!(b.balance("default").await < 10_000_000);
}

/// `removeBackground` (`imageBackgroundRemoval`) is read as Runware documents it, with its
/// settings nested (the API, the JavaScript SDK) or at the top level (the Python SDK).
#[tokio::test]
async fn remove_background_is_validated_as_runware_documents_it() {
    use mediagate_testkit::images::png_data_uri;
    let (chat, runware) = (ChatMock::start().await, runware_mock().await);
    let s = server_with_every_task_type(&chat, &runware).await;
    let png = png_data_uri(64, 64);
    let task = |extra: Value| {
        let mut t = json!({"taskType": "imageBackgroundRemoval", "taskUUID": task_uuid()});
        for (k, v) in extra.as_object().unwrap() {
            t[k] = v.clone();
        }
        t
    };
    let refused: &[(Value, &str, &str)] = &[
        (json!({}), "missingParameter", "inputImage"),
        (json!({"inputs": {"video": 5}}), "invalidParameterType", "inputs.video"),
        (
            json!({"inputImage": png, "settings": {"rgba": [1, 2, 3]}}),
            "invalidParameterValue",
            "settings.rgba",
        ),
        (
            json!({"inputImage": png, "settings": {"alphaMattingErodeSize": 0}}),
            "invalidParameterValue",
            "settings.alphaMattingErodeSize",
        ),
        (
            json!({"inputImage": png, "settings": {"rgba": [0, 0, 0, 0]}, "returnOnlyMask": true}),
            "invalidParameterValue",
            "settings",
        ),
        (json!({"inputImage": png, "settings": {"blur": 3}}), "unknownParameter", "settings.blur"),
        (json!({"inputImage": png, "outputFormat": "MP4"}), "invalidParameterValue", "outputFormat"),
    ];
    s.assert_refused(refused, task).await;
    // Top-level settings (the Python SDK's form) are forwarded nested, the image as a data URI.
    let (st, b) = s
        .post(&json!([task(json!({"inputImage": png, "returnOnlyMask": true, "alphaMattingErodeSize": 9}))]))
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"][0]["taskType"], "imageBackgroundRemoval");
    let sent = &runware.requests("POST", "/v1")[0].json()[0];
    assert_eq!(sent["settings"], json!({"returnOnlyMask": true, "alphaMattingErodeSize": 9}));
    assert_eq!(sent["inputImage"], png.as_str());
    assert_eq!(sent["outputType"], "base64Data");
}

/// `photoMaker` is read as Runware documents it; its photos reach the upstream as data URIs.
#[tokio::test]
async fn photo_maker_is_validated_as_runware_documents_it() {
    use mediagate_testkit::images::png_data_uri;
    let (chat, runware) = (ChatMock::start().await, runware_mock().await);
    let s = server_with_every_task_type(&chat, &runware).await;
    let png = png_data_uri(64, 64);
    let task = |extra: Value| {
        let mut t = json!({"taskType": "photoMaker", "taskUUID": task_uuid(), "inputImages": [png],
                           "positivePrompt": "a portrait rwre", "width": 512, "height": 512});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                t.as_object_mut().unwrap().remove(k);
            } else {
                t[k] = v.clone();
            }
        }
        t
    };
    let five = vec![png.clone(); 5];
    let refused: &[(Value, &str, &str)] = &[
        (json!({"inputImages": null}), "missingParameter", "inputImages"),
        (json!({"inputImages": five}), "invalidParameterValue", "inputImages"),
        (json!({"inputImages": [png, 3]}), "invalidParameterValue", "inputImages[1]"),
        (json!({"style": "Baroque"}), "invalidParameterValue", "style"),
        (json!({"strength": 14}), "invalidParameterValue", "strength"),
        (json!({"clipSkip": 3}), "invalidParameterValue", "clipSkip"),
        (json!({"width": 500}), "invalidParameterValue", "width"),
        (json!({"positivePrompt": null}), "missingParameter", "positivePrompt"),
    ];
    s.assert_refused(refused, task).await;
    let (st, b) = s.post(&json!([task(json!({"style": "Cinematic", "strength": 30, "seed": 9}))])).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"][0]["seed"], 9);
    let sent = &runware.requests("POST", "/v1")[0].json()[0];
    assert_eq!(
        (sent["style"].as_str(), sent["strength"].as_u64(), sent["seed"].as_u64()),
        (Some("Cinematic"), Some(30), Some(9))
    );
    assert_eq!(sent["inputImages"][0], png.as_str());
}
