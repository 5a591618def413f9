//! The text task types (`promptEnhance`, `caption`, `textInference`) over the Runware REST dialect, served by the
//! `openai-chat` provider against the testkit's chat mock (a test double of an OpenAI-compatible
//! chat server).

use mediagate_core::model::{Bounds, ModelSpec, RetryPolicy};
use mediagate_core::task::TaskType;
use mediagate_providers::upstream::{UpstreamConfig, UpstreamKind};
use mediagate_testkit::chat_mock::ChatMock;
use mediagate_testkit::{TestServer, task_uuid};
use serde_json::{Value, json};

const AIR: &str = "test:enhancer@1";
const VISION_AIR: &str = "test:vision@1";
const LLM_AIR: &str = "test:llm@1";

async fn server(chat: &ChatMock, upstream_model: Option<&str>) -> TestServer {
    let base_url = chat.base_url.clone();
    let upstream_model = upstream_model.map(str::to_string);
    TestServer::start_with(move |c| {
        let mut up = UpstreamConfig {
            name: "chat".into(),
            kind: UpstreamKind::OpenaiChat,
            base_url,
            ..UpstreamConfig::default()
        };
        if let Some(m) = upstream_model {
            up.models.insert(AIR.into(), m.clone());
            up.models.insert(VISION_AIR.into(), m.clone());
            up.models.insert(LLM_AIR.into(), m);
        }
        c.providers.upstreams.push(up);
        c.models.push(ModelSpec {
            air: AIR.into(),
            task_type: TaskType::PromptEnhance,
            provider: "chat".into(),
            price_usd: "0.0002".into(),
            description: "test".into(),
            bounds: Bounds::default(),
            retry: RetryPolicy { base_ms: 1, cap_ms: 5, ..RetryPolicy::default() },
            fallback: vec![],
            concurrency: 0,
        });
        c.models.push(ModelSpec {
            air: LLM_AIR.into(),
            task_type: TaskType::TextInference,
            provider: "chat".into(),
            price_usd: "0.0004".into(),
            description: "test".into(),
            bounds: Bounds { max_number_results: 4, ..Bounds::default() },
            retry: RetryPolicy::default(),
            fallback: vec![],
            concurrency: 0,
        });
        c.models.push(ModelSpec {
            air: VISION_AIR.into(),
            task_type: TaskType::Caption,
            provider: "chat".into(),
            price_usd: "0.0003".into(),
            description: "test".into(),
            bounds: Bounds::default(),
            retry: RetryPolicy::default(),
            fallback: vec![],
            concurrency: 0,
        });
    })
    .await
}

fn task(extra: Value) -> Value {
    let mut t = json!({"taskType": "promptEnhance", "taskUUID": task_uuid(), "prompt": "a dog",
                       "promptMaxLength": 64});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            t.as_object_mut().unwrap().remove(k);
        } else {
            t[k] = v.clone();
        }
    }
    t
}

#[tokio::test]
async fn prompt_enhance_is_validated_as_runware_documents_it() {
    let chat = ChatMock::start().await;
    let s = server(&chat, None).await;
    let refused: &[(Value, &str, &str)] = &[
        (json!({"prompt": null}), "missingParameter", "prompt"),
        (json!({"prompt": ""}), "invalidParameterValue", "prompt"),
        (json!({"prompt": "x".repeat(301)}), "invalidParameterValue", "prompt"),
        (json!({"promptMaxLength": null}), "missingParameter", "promptMaxLength"),
        (json!({"promptMaxLength": 11}), "invalidParameterValue", "promptMaxLength"),
        (json!({"promptMaxLength": 401}), "invalidParameterValue", "promptMaxLength"),
        (json!({"promptVersions": 0}), "invalidParameterValue", "promptVersions"),
        (json!({"promptVersions": 6}), "invalidParameterValue", "promptVersions"),
        (json!({"promptVersions": "2"}), "invalidParameterType", "promptVersions"),
        (json!({"outputType": "URL"}), "unknownParameter", "outputType"),
        (json!({"model": "mediagate:procedural@1"}), "unsupportedModelForTask", "model"),
    ];
    s.assert_refused(refused, task).await;
    assert!(chat.requests().is_empty(), "nothing refused reached the chat server");
}

#[tokio::test]
async fn each_version_is_one_completion_returned_as_text_and_charged_per_version() {
    let chat = ChatMock::start().await;
    let s = server(&chat, None).await;
    let before = s.balance("default").await;
    let (st, b) = s
        .post(&json!([task(json!({"prompt": "a lighthouse", "promptVersions": 3, "includeCost": true}))]))
        .await;
    assert_eq!(st, 200, "{b}");
    let items = b["data"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{b}");
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item["taskType"], "promptEnhance");
        assert_eq!(item["text"], format!("a lighthouse, in rich detail (reply {})", i + 1), "{item}");
        assert_eq!(item["cost"], json!(0.0002));
        assert!(item.get("imageURL").is_none() && item.get("imageUUID").is_none(), "{item}");
    }
    assert_eq!(before - s.balance("default").await, 600, "charged 3 x $0.0002");
    // What the chat server was asked: the instructions, the prompt, the token budget, and no
    // `model` (unmapped: the server's default model answers).
    let asked = chat.requests();
    assert_eq!(asked.len(), 3);
    for r in &asked {
        assert_eq!(r["max_tokens"], 64);
        assert_eq!(r["messages"][0]["role"], "system");
        assert!(r["messages"][0]["content"].as_str().unwrap().contains("image generation"));
        assert_eq!(r["messages"][1], json!({"role": "user", "content": "a lighthouse"}));
        assert!(r.get("model").is_none(), "{r}");
    }
}

#[tokio::test]
async fn async_results_come_back_from_get_response_and_mapped_models_are_named() {
    let chat = ChatMock::start().await;
    let s = server(&chat, Some("llama-3.1-8b-instruct")).await;
    let t = task(json!({"deliveryMethod": "async", "promptVersions": 2}));
    let uuid = t["taskUUID"].as_str().unwrap().to_string();
    let (st, b) = s.post(&json!([t])).await;
    assert_eq!(st, 200, "{b}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let items = loop {
        let (_, b) = s.post(&json!([{"taskType": "getResponse", "taskUUID": uuid}])).await;
        let items = b["data"].as_array().cloned().unwrap_or_default();
        if items.len() == 2 && items.iter().all(|i| i["status"] == "success") {
            break items;
        }
        assert!(std::time::Instant::now() < deadline, "{b}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(
        items.iter().all(|i| i["text"].as_str().unwrap().starts_with("a dog, in rich detail")),
        "{items:?}"
    );
    assert!(chat.requests().iter().all(|r| r["model"] == "llama-3.1-8b-instruct"));
}

#[tokio::test]
async fn chat_server_failures_are_retried_when_transient_and_mapped_when_not() {
    let chat = ChatMock::start().await;
    let s = server(&chat, None).await;
    // A 503 is transient: retried, then served.
    chat.fail_next(503, json!({"error": {"message": "overloaded"}}));
    let (st, b) = s.post(&json!([task(json!({}))])).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(chat.requests().len(), 2, "one retry");
    // A content-policy refusal is the client's: no retry, the catalog's code, nothing charged.
    let before = s.balance("default").await;
    chat.fail_next(400, json!({"error": {"code": "content_policy_violation", "message": "no"}}));
    let (st, b) = s.post(&json!([task(json!({}))])).await;
    let e = &b["errors"][0];
    assert_eq!((st, e["code"].as_str()), (400, Some("providerContentPolicyViolation")), "{b}");
    assert_eq!(chat.requests().len(), 3, "not retried");
    assert_eq!(s.balance("default").await, before, "refunded");
}

fn caption(name: &str, extra: Value) -> Value {
    let mut t = json!({"taskType": name, "taskUUID": task_uuid()});
    for (k, v) in extra.as_object().unwrap() {
        t[k] = v.clone();
    }
    t
}

#[tokio::test]
async fn caption_is_validated_as_runware_documents_it() {
    use mediagate_testkit::images::png_data_uri;
    let chat = ChatMock::start().await;
    let s = server(&chat, None).await;
    let png = png_data_uri(64, 64);
    let nine: Vec<String> = (0..9).map(|_| png.clone()).collect();
    let refused: &[(Value, &str, &str)] = &[
        (json!({}), "missingParameter", "inputImage"),
        (json!({"inputImages": []}), "invalidParameterValue", "inputImages"),
        (json!({"inputImages": nine}), "invalidParameterValue", "inputImages"),
        (json!({"inputImages": [png, 5]}), "invalidParameterValue", "inputImages[1]"),
        (json!({"inputImages": png}), "invalidParameterValue", "inputImages"),
        (json!({"inputImage": png, "inputImages": [png]}), "invalidParameterValue", "inputImages"),
        // A video caption is a feature the chat provider does not act on.
        (
            json!({"inputs": {"video": "https://example.com/v.mp4"}}),
            "unsupportedParameterForModel",
            "inputs.video",
        ),
        (json!({"inputs": {"image": png, "mask": png}}), "unknownParameter", "inputs.mask"),
        (json!({"inputImage": png, "prompt": ""}), "invalidParameterValue", "prompt"),
        (json!({"inputImage": png, "width": 512}), "unknownParameter", "width"),
        (
            json!({"inputImages": [png, "data:text/plain;base64,aGVsbG8="]}),
            "unsupportedAssetType",
            "inputImages[1]",
        ),
    ];
    s.assert_refused(refused, |extra| caption("imageCaption", extra)).await;
    assert!(chat.requests().is_empty(), "nothing refused reached the chat server");
}

#[tokio::test]
async fn caption_sends_every_image_and_the_instructions_in_one_completion() {
    use mediagate_testkit::images::png_data_uri;
    let chat = ChatMock::start().await;
    let s = server(&chat, None).await;
    // The legacy name with two images and instructions; the name sent is echoed.
    let (st, b) = s
        .post(&json!([caption(
            "imageCaption",
            json!({"inputImages": [png_data_uri(64, 64), png_data_uri(96, 64)], "prompt": "count the colors",
                   "includeCost": true})
        )]))
        .await;
    assert_eq!(st, 200, "{b}");
    let item = &b["data"][0];
    assert_eq!(item["taskType"], "imageCaption");
    assert_eq!(item["text"], "count the colors, in rich detail (reply 1)");
    assert_eq!(item["cost"], json!(0.0003));
    let asked = &chat.requests()[0];
    assert_eq!(asked["max_tokens"], 512);
    let content = asked["messages"][0]["content"].as_array().unwrap();
    assert_eq!(content[0], json!({"type": "text", "text": "count the colors"}));
    assert_eq!(content.len(), 3, "the instructions and both images");
    for part in &content[1..] {
        assert_eq!(part["type"], "image_url");
        assert!(
            part["image_url"]["url"].as_str().unwrap().starts_with("data:image/png;base64,iVBOR"),
            "{part}"
        );
    }
    // The newer name and form, with no prompt: a general description is asked for.
    let (st, b) =
        s.post(&json!([caption("caption", json!({"inputs": {"image": png_data_uri(64, 64)}}))])).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"][0]["taskType"], "caption");
    let asked = &chat.requests()[1];
    assert!(asked["messages"][0]["content"][0]["text"].as_str().unwrap().starts_with("Describe this image"));
}

fn text(extra: Value) -> Value {
    let mut t = json!({"taskType": "textInference", "taskUUID": task_uuid(),
                       "messages": [{"role": "user", "content": "name a color"}]});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            t.as_object_mut().unwrap().remove(k);
        } else {
            t[k] = v.clone();
        }
    }
    t
}

#[tokio::test]
async fn text_inference_is_validated_as_runware_documents_it() {
    let chat = ChatMock::start().await;
    let s = server(&chat, None).await;
    let refused: &[(Value, &str, &str)] = &[
        (json!({"messages": null}), "missingParameter", "messages"),
        (json!({"messages": []}), "invalidParameterValue", "messages"),
        (json!({"messages": "hi"}), "invalidParameterValue", "messages"),
        (
            json!({"messages": [{"role": "robot", "content": "hi"}]}),
            "invalidParameterValue",
            "messages[0].role",
        ),
        (json!({"messages": [{"role": "user"}]}), "missingParameter", "messages[0].content"),
        (
            json!({"messages": [{"role": "user", "content": "hi", "name": "x"}]}),
            "unknownParameter",
            "messages[0].name",
        ),
        (json!({"settings": 5}), "invalidParameterValue", "settings"),
        (json!({"settings": {"thinkingLevel": "high"}}), "unknownParameter", "settings.thinkingLevel"),
        (json!({"settings": {"temperature": 3}}), "invalidParameterValue", "settings.temperature"),
        (json!({"settings": {"maxTokens": 5}, "maxTokens": 5}), "invalidParameterValue", "maxTokens"),
        (json!({"maxTokens": 0}), "invalidParameterValue", "maxTokens"),
        (json!({"stopSequences": ["a", "b", "c", "d", "e"]}), "invalidParameterValue", "stopSequences"),
        (json!({"numberResults": 5}), "invalidParameterValue", "numberResults"),
        (json!({"tools": []}), "unknownParameter", "tools"),
        (json!({"deliveryMethod": "stream"}), "invalidParameterValue", "deliveryMethod"),
    ];
    s.assert_refused(refused, text).await;
    assert!(chat.requests().is_empty(), "nothing refused reached the chat server");
}

#[tokio::test]
async fn text_inference_sends_the_conversation_and_settings_and_returns_each_reply() {
    let chat = ChatMock::start().await;
    let s = server(&chat, None).await;
    // The JavaScript SDK's form: settings at the top level.
    let (st, b) = s
        .post(&json!([text(json!({
            "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                         {"role": "user", "content": "name a color"}],
            "systemPrompt": "answer in one word", "maxTokens": 16, "temperature": 0.5,
            "stopSequences": ["."], "seed": 7, "numberResults": 2, "includeUsage": true, "includeCost": true
        }))]))
        .await;
    assert_eq!(st, 200, "{b}");
    let items = b["data"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{b}");
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item["text"], format!("name a color, in rich detail (reply {})", i + 1), "{item}");
        assert_eq!(item["finishReason"], "stop");
        assert_eq!(item["usage"], json!({"promptTokens": 10, "completionTokens": 10, "totalTokens": 20}));
        assert_eq!(item["seed"], json!(7 + i), "{item}");
        assert_eq!(item["cost"], json!(0.0004));
    }
    let asked = chat.requests();
    assert_eq!(asked.len(), 2);
    for (i, r) in asked.iter().enumerate() {
        assert_eq!(r["messages"][0], json!({"role": "system", "content": "answer in one word"}));
        assert_eq!(r["messages"][3], json!({"role": "user", "content": "name a color"}));
        assert_eq!((r["max_tokens"].clone(), r["temperature"].clone()), (json!(16), json!(0.5)));
        assert_eq!(r["stop"], json!(["."]));
        assert_eq!(r["seed"], json!(7 + i));
        assert!(r.get("top_k").is_none() && r.get("top_p").is_none(), "only what the task set: {r}");
    }
    // The API's (and the Python SDK's) form: settings in `settings`; no usage unless asked.
    let (st, b) = s.post(&json!([text(json!({"settings": {"maxTokens": 8, "topK": 40}}))])).await;
    assert_eq!(st, 200, "{b}");
    assert!(b["data"][0].get("usage").is_none(), "{b}");
    let r = &chat.requests()[2];
    assert_eq!((r["max_tokens"].clone(), r["top_k"].clone()), (json!(8), json!(40)));
}
