//! The Runware REST envelope over real HTTP: request-level errors, authentication, per-task
//! scoping, parameter validation and the exact shape of error objects.

use mediagate_testkit::{TestServer, task_uuid};
use serde_json::{Value, json};
use std::collections::BTreeSet;

async fn raw(s: &TestServer, content_type: Option<&str>, auth: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let mut r = s.http.post(format!("{}/v1", s.base_url)).body(body);
    if let Some(ct) = content_type {
        r = r.header("content-type", ct);
    }
    if let Some(k) = auth {
        r = r.bearer_auth(k);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn only_error(body: &Value) -> &Value {
    let errors = body["errors"].as_array().unwrap_or_else(|| panic!("no errors in {body}"));
    assert_eq!(errors.len(), 1, "{body}");
    &errors[0]
}

fn ping() -> Value {
    json!([{"taskType": "ping", "ping": true}])
}

#[tokio::test]
async fn request_level_failures_each_have_their_own_code() {
    let s = TestServer::start_with(|c| c.server.max_body_bytes = 10_000).await;
    let key = s.api_key.clone();
    let cases: Vec<(Option<&str>, Vec<u8>, u16, &str)> = vec![
        (Some("application/json"), b"{not json".to_vec(), 400, "invalidJson"),
        (Some("application/json"), br#"{"taskType":"ping"}"#.to_vec(), 400, "invalidRequestBody"),
        (Some("application/json"), b"[]".to_vec(), 400, "missingTasks"),
        (Some("text/plain"), ping().to_string().into_bytes(), 400, "unsupportedContentType"),
        (None, ping().to_string().into_bytes(), 400, "unsupportedContentType"),
        (Some("application/json"), vec![b' '; 20_000], 413, "payloadTooLarge"),
    ];
    for (ct, body, status, code) in cases {
        let (st, b) = raw(&s, ct, Some(&key), body).await;
        assert_eq!((st, only_error(&b)["code"].as_str().unwrap()), (status, code), "{b}");
        assert!(!only_error(&b)["message"].as_str().unwrap().is_empty());
    }
    // A JSON content type with parameters is fine.
    let (st, _) =
        raw(&s, Some("application/json; charset=utf-8"), Some(&key), ping().to_string().into_bytes()).await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn authentication_failures_are_401_on_parameter_api_key() {
    let s = TestServer::start().await;
    // No key at all.
    let (st, b) = raw(&s, Some("application/json"), None, ping().to_string().into_bytes()).await;
    assert_eq!(st, 401);
    assert_eq!(only_error(&b)["code"], "missingApiKey");

    let unknown = format!("key_{}", "0".repeat(128));
    let cases = [
        ("key_abc".to_string(), "invalidApiKey", "exactly 128"),
        (s.api_key.replacen("key_", "sk__", 1), "invalidApiKey", "start with 'key_'"),
        (s.api_key.to_uppercase().replacen("KEY_", "key_", 1), "invalidApiKey", "lowercase"),
        (unknown, "invalidApiKey", "no such key"),
    ];
    for (k, code, says) in cases {
        let (st, b) = s.post_with_key(&k, &ping()).await;
        let e = only_error(&b);
        assert_eq!(st, 401, "{b}");
        assert_eq!(e["code"], code);
        assert_eq!(e["parameter"], "apiKey");
        assert_eq!(e["taskType"], "authentication");
        let msg = e["message"].as_str().unwrap();
        assert!(msg.contains(says), "{msg}");
        if k.len() > 24 {
            assert!(!msg.contains(&k[4..24]), "the message echoes the key: {msg}");
        }
    }
    // Header values lose trailing whitespace in HTTP itself; a payload key keeps it.
    let body =
        json!([{"taskType": "authentication", "apiKey": format!("{}\n", s.api_key)}, {"taskType": "ping"}]);
    let (st, b) = raw(&s, Some("application/json"), None, body.to_string().into_bytes()).await;
    assert_eq!(st, 401);
    let msg = only_error(&b)["message"].as_str().unwrap().to_string();
    assert!(msg.contains("ends with whitespace"), "{msg}");
    {
        let k = &s.api_key;
        if k.len() > 24 {
            assert!(!msg.contains(&k[4..24]), "the message echoes the key: {msg}");
        }
    }
}

#[tokio::test]
async fn disabled_revoked_and_suspended_keys_are_refused() {
    let s = TestServer::start().await;
    let admin = s.engine.admin();
    admin.create_account("acme", "1").await.unwrap();
    let k1 = admin.create_key("acme", "one", &[]).await.unwrap();
    let k2 = admin.create_key("acme", "two", &[]).await.unwrap();
    assert_eq!(s.post_with_key(&k1.secret, &ping()).await.0, 200);

    admin.set_key_status(k1.record.id, mediagate_store::KeyStatus::Disabled).await.unwrap();
    let (st, b) = s.post_with_key(&k1.secret, &ping()).await;
    assert_eq!((st, only_error(&b)["code"].as_str().unwrap()), (401, "apiKeyDisabled"));
    admin.set_key_status(k1.record.id, mediagate_store::KeyStatus::Active).await.unwrap();
    assert_eq!(s.post_with_key(&k1.secret, &ping()).await.0, 200);

    admin.set_key_status(k1.record.id, mediagate_store::KeyStatus::Revoked).await.unwrap();
    let (st, b) = s.post_with_key(&k1.secret, &ping()).await;
    assert_eq!((st, only_error(&b)["code"].as_str().unwrap()), (401, "apiKeyRevoked"));
    assert!(admin.set_key_status(k1.record.id, mediagate_store::KeyStatus::Active).await.is_err());

    admin.set_account_status("acme", mediagate_store::AccountStatus::Suspended).await.unwrap();
    let (st, b) = s.post_with_key(&k2.secret, &ping()).await;
    assert_eq!((st, only_error(&b)["code"].as_str().unwrap()), (401, "accountSuspended"));
    admin.set_account_status("acme", mediagate_store::AccountStatus::Active).await.unwrap();
    assert_eq!(s.post_with_key(&k2.secret, &ping()).await.0, 200);
}

#[tokio::test]
async fn both_authentication_styles_work() {
    let s = TestServer::start().await;
    // Payload authentication, no header.
    let body = json!([
        {"taskType": "authentication", "apiKey": s.api_key},
        {"taskType": "ping", "ping": true}
    ]);
    let (st, b) = raw(&s, Some("application/json"), None, body.to_string().into_bytes()).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"][0]["pong"], true);
    // Header authentication.
    let (st, b) = s.post(&ping()).await;
    assert_eq!((st, &b["data"][0]["taskType"]), (200, &json!("ping")));
    // The payload key wins over a bad header key: it is the explicit one.
    let (st, _) = raw(&s, Some("application/json"), Some("key_bad"), body.to_string().into_bytes()).await;
    assert_eq!(st, 200);
    // An authentication element alone is a key check.
    let only = json!([{"taskType": "authentication", "apiKey": s.api_key}]);
    let (st, b) = raw(&s, Some("application/json"), None, only.to_string().into_bytes()).await;
    assert_eq!((st, &b["data"][0]["taskType"]), (200, &json!("authentication")));
}

#[tokio::test]
async fn scopes_not_covering_the_task_type_get_403() {
    let s = TestServer::start().await;
    let key = s.create_key("default", &["task:upscale"]).await;
    let (st, b) = s
        .post_with_key(
            &key,
            &json!([{"taskType": "imageInference", "taskUUID": task_uuid(), "positivePrompt": "a cat"}]),
        )
        .await;
    let e = only_error(&b);
    assert_eq!((st, e["code"].as_str().unwrap()), (403, "insufficientPermissions"), "{b}");
    assert!(e["message"].as_str().unwrap().contains("task:imageInference"));
    // Ping needs no scope.
    assert_eq!(s.post_with_key(&key, &ping()).await.0, 200);
}

#[tokio::test]
async fn task_level_validation_names_the_parameter() {
    let s = TestServer::start().await;
    let u = task_uuid();
    let cases = vec![
        (json!({"taskType": "paintMeAPicture", "taskUUID": u}), "unknownTaskType", Some("taskType")),
        (json!({"taskType": "3dInference", "taskUUID": u}), "unsupportedTaskType", Some("taskType")),
        (json!({"taskUUID": u}), "invalidTaskObject", Some("taskType")),
        (json!("ping"), "invalidTaskObject", None),
        (
            json!({"taskType": "imageInference", "positivePrompt": "a cat"}),
            "missingTaskUUID",
            Some("taskUUID"),
        ),
        (
            json!({"taskType": "imageInference", "taskUUID": "42", "positivePrompt": "a cat"}),
            "invalidTaskUUID",
            Some("taskUUID"),
        ),
        (json!({"taskType": "imageInference", "taskUUID": u}), "missingParameter", Some("positivePrompt")),
        (
            json!({"taskType": "imageInference", "taskUUID": u, "positivePrompt": "a cat", "colour": "red"}),
            "unknownParameter",
            Some("colour"),
        ),
        (
            json!({"taskType": "imageInference", "taskUUID": u, "positivePrompt": "a cat", "width": "512"}),
            "invalidParameterType",
            Some("width"),
        ),
        (
            json!({"taskType": "imageInference", "taskUUID": u, "positivePrompt": "a cat", "width": 100}),
            "invalidParameterValue",
            Some("width"),
        ),
        (
            json!({"taskType": "imageInference", "taskUUID": u, "positivePrompt": "a cat", "steps": 500}),
            "invalidParameterValue",
            Some("steps"),
        ),
        (
            json!({"taskType": "imageInference", "taskUUID": u, "positivePrompt": "a cat", "outputFormat": "GIF"}),
            "invalidParameterValue",
            Some("outputFormat"),
        ),
        (
            json!({"taskType": "imageInference", "taskUUID": u, "positivePrompt": "a cat", "model": "civitai:1@1"}),
            "unknownModel",
            Some("model"),
        ),
        (
            json!({"taskType": "imageInference", "taskUUID": u, "positivePrompt": "a cat", "model": "mediagate:lanczos@1"}),
            "unsupportedModelForTask",
            Some("model"),
        ),
        (
            json!({"taskType": "upscale", "taskUUID": u, "inputImage": "iVBOR", "upscaleFactor": 9}),
            "invalidParameterValue",
            Some("upscaleFactor"),
        ),
        (
            json!({"taskType": "imageInference", "taskUUID": u, "positivePrompt": "a cat", "ttl": 5}),
            "invalidParameterValue",
            Some("ttl"),
        ),
    ];
    for (task, code, param) in cases {
        let (st, b) = s.post(&json!([task])).await;
        let e = only_error(&b);
        assert_eq!((st, e["code"].as_str().unwrap()), (400, code), "{task} -> {b}");
        assert_eq!(e["parameter"].as_str(), param, "{b}");
    }
    // The allowed range is in the message.
    let (_, b) = s
        .post(
            &json!([{"taskType": "imageInference", "taskUUID": u, "positivePrompt": "a cat", "width": 100}]),
        )
        .await;
    let msg = only_error(&b)["message"].as_str().unwrap().to_string();
    assert!(msg.contains("multiple of 64 between 64 and 2048"), "{msg}");
    // Several unknown parameters: `parameter` is a string, as Runware documents, naming the
    // first; the message names each.
    let (_, b) = s
        .post(&json!([{"taskType": "imageInference", "taskUUID": u, "positivePrompt": "a cat", "foo": 1, "bar": 2}]))
        .await;
    assert_eq!(only_error(&b)["parameter"], json!("bar"));
    let msg = only_error(&b)["message"].as_str().unwrap();
    assert!(msg.contains("'bar'") && msg.contains("'foo'"), "{msg}");
    // width x height over the model's pixel budget names both.
    let s2 = TestServer::start_with(|c| {
        let mut m = mediagate_core::model::builtin_models().remove(0);
        m.bounds.max_pixels = 64 * 64;
        c.models.push(m);
    })
    .await;
    let (_, b) = s2
        .post(&json!([{"taskType": "imageInference", "taskUUID": u, "positivePrompt": "a cat", "width": 128, "height": 64}]))
        .await;
    assert_eq!(only_error(&b)["parameter"], json!("width"));
    let msg = only_error(&b)["message"].as_str().unwrap();
    assert!(msg.contains("width") && msg.contains("height"), "{msg}");
}

/// The message of the one error a single task gets, sent as raw JSON text (for numbers such as
/// 99999999999999999999 that a `Value` cannot hold as written).
async fn message_of(s: &TestServer, task: &str) -> (String, Value) {
    let (st, b) = raw(s, Some("application/json"), Some(&s.api_key), format!("[{task}]").into_bytes()).await;
    assert_eq!(st, 400, "{task} -> {b}");
    let e = only_error(&b).clone();
    (e["message"].as_str().unwrap().to_string(), e)
}

#[tokio::test]
async fn messages_say_what_to_change() {
    let s = TestServer::start().await;
    let image = |extra: &str| {
        format!(
            r#"{{"taskType":"imageInference","taskUUID":"{}","positivePrompt":"a cat","width":64,"height":64{extra}}}"#,
            task_uuid()
        )
    };
    // A whole number written as a float is that number; a fraction and an out-of-range integer
    // are different mistakes, each said as itself.
    let (st, b) = raw(
        &s,
        Some("application/json"),
        Some(&s.api_key),
        format!("[{}]", image(r#","width":512.0"#)).into_bytes(),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let (m, e) = message_of(&s, &image(r#","width":512.5"#)).await;
    assert_eq!(e["code"], "invalidParameterType");
    assert!(m.contains("fractional part"), "{m}");
    let (m, e) = message_of(&s, &image(r#","width":99999999999999999999"#)).await;
    assert_eq!(e["code"], "invalidParameterValue");
    assert!(!m.contains("expected an integer"), "{m}");
    // One range per parameter and model, whatever the value.
    let mut said = BTreeSet::new();
    for w in ["-512", "0", "100", "99999999999999999999"] {
        said.insert(message_of(&s, &image(&format!(r#","width":{w}"#))).await.0);
    }
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said.first().unwrap().contains("multiple of 64 between 64 and 2048"), "{said:?}");
    let mut said = BTreeSet::new();
    for n in ["0", "21", "5000"] {
        said.insert(message_of(&s, &image(&format!(r#","numberResults":{n}"#))).await.0);
    }
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said.first().unwrap().contains("between 1 and 20"), "{said:?}");
    // An empty image says it is empty, not a length bound no one can read.
    let (m, _) =
        message_of(&s, &format!(r#"{{"taskType":"upscale","taskUUID":"{}","inputImage":""}}"#, task_uuid()))
            .await;
    assert!(m.contains("empty") && !m.contains("18446744073709551615"), "{m}");
    // An http:// asset is told that an output can be passed by its UUID.
    let (m, _) = message_of(
        &s,
        &format!(
            r#"{{"taskType":"upscale","taskUUID":"{}","inputImage":"http://example.com/a.png"}}"#,
            task_uuid()
        ),
    )
    .await;
    assert!(m.starts_with("Only HTTPS URLs are allowed.") && m.contains("UUID"), "{m}");
    // getResponse without a taskUUID asks for the polled task's.
    let (m, _) = message_of(&s, r#"{"taskType":"getResponse"}"#).await;
    assert!(m.contains("task whose results you are polling") && !m.contains("generate"), "{m}");
    // The SDKs' newer upscale form is named in the message.
    let (m, e) = message_of(
        &s,
        &format!(r#"{{"taskType":"upscale","taskUUID":"{}","inputs":{{"image":"iVBOR"}}}}"#, task_uuid()),
    )
    .await;
    assert_eq!(e["parameter"], "inputs.image", "{e}");
    assert!(m.contains("'inputs': {'image': ...}") && m.contains("'inputImage'"), "{m}");
    let (m, e) = message_of(
        &s,
        &format!(r#"{{"taskType":"upscale","taskUUID":"{}","inputs":{{"video":"abc"}}}}"#, task_uuid()),
    )
    .await;
    // A video upscale is a feature the built-in Lanczos model does not act on.
    assert_eq!(e["code"], "unsupportedParameterForModel", "{e}");
    assert!(m.contains("'inputs.video'") && m.contains("mediagate:lanczos@1"), "{m}");
}

#[tokio::test]
async fn error_objects_have_exactly_the_documented_fields() {
    let s = TestServer::start().await;
    let u = task_uuid();
    let (_, b) = s.post(&json!([{"taskType": "imageInference", "taskUUID": u, "positivePrompt": "x"}])).await;
    let e = only_error(&b).as_object().unwrap();
    let keys: BTreeSet<&str> = e.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["code", "message", "parameter", "taskType", "taskUUID", "documentation"])
    );
    assert_eq!(e["taskUUID"], u);
    assert_eq!(e["taskType"], "imageInference");
    assert_eq!(e["documentation"], format!("{}/docs/errors#invalidParameterValue", s.base_url));
    // Without a parameter, `parameter` is omitted rather than null.
    let (_, b) = raw(&s, Some("application/json"), Some(&s.api_key), b"{".to_vec()).await;
    assert!(only_error(&b).get("parameter").is_none());
    // The documentation link resolves to an anchor on the served page.
    let page = s.http.get(format!("{}/docs/errors", s.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("id=\"invalidParameterValue\""));
}

#[tokio::test]
async fn a_failing_task_never_fails_its_siblings() {
    let s = TestServer::start().await;
    let good = task_uuid();
    let body = json!([
        {"taskType": "imageInference", "taskUUID": task_uuid(), "positivePrompt": "a cat", "width": 100},
        {"taskType": "imageInference", "taskUUID": good, "positivePrompt": "a cat", "width": 64, "height": 64},
        {"taskType": "nope", "taskUUID": task_uuid()},
        {"taskType": "ping", "ping": true}
    ]);
    let (st, b) = s.post(&body).await;
    assert_eq!(st, 200, "{b}");
    let data = b["data"].as_array().unwrap();
    let errors = b["errors"].as_array().unwrap();
    assert_eq!((data.len(), errors.len()), (2, 2), "{b}");
    assert_eq!(data[0]["taskUUID"], good);
    assert_eq!(data[1]["pong"], true);
    assert_eq!(errors[0]["code"], "invalidParameterValue");
    assert_eq!(errors[1]["code"], "unknownTaskType");

    // When every task fails, the status is that of the first error.
    let body = json!([
        {"taskType": "imageInference", "taskUUID": task_uuid(), "positivePrompt": "a cat", "model": "x:1@1"},
        {"taskType": "getResponse", "taskUUID": task_uuid()}
    ]);
    let (st, b) = s.post(&body).await;
    assert_eq!(st, 400, "{b}");
    assert!(b.get("data").is_none());
    assert_eq!(b["errors"][1]["code"], "taskNotFound");
    let body = json!([{"taskType": "getResponse", "taskUUID": task_uuid()}, {"taskType": "nope", "taskUUID": task_uuid()}]);
    assert_eq!(s.post(&body).await.0, 404);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_json() {
    let s = TestServer::start().await;
    let r = s.http.get(format!("{}/v1", s.base_url)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let b: Value = r.json().await.unwrap();
    assert_eq!(only_error(&b)["code"], "methodNotAllowed");
    let r = s.http.get(format!("{}/nowhere", s.base_url)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let b: Value = r.json().await.unwrap();
    assert_eq!(only_error(&b)["code"], "notFound");
}

/// Runware task types this server does not offer say why and what to do instead.
#[tokio::test]
async fn task_types_not_offered_say_what_to_do_instead() {
    let s = TestServer::start().await;
    for (task_type, says) in
        [("modelUpload", "[[models]]"), ("training", "train elsewhere"), ("3dInference", "3D")]
    {
        let (st, b) = s.post(&json!([{"taskType": task_type, "taskUUID": task_uuid()}])).await;
        assert_eq!(st, 400, "{b}");
        let e = &b["errors"][0];
        assert_eq!(
            (e["code"].as_str(), e["parameter"].as_str()),
            (Some("unsupportedTaskType"), Some("taskType"))
        );
        let m = e["message"].as_str().unwrap();
        assert!(m.contains("does not offer it") && m.contains(says), "{task_type}: {m}");
    }
}
