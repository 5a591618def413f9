//! Every error class the server produces, as the SDK surfaces it: all fields of the error object,
//! the HTTP status, the catalog code and its retry class — and none of them retried.

mod support;

use mediagate_client::tasks::{CustomTask, ImageInference, Upscale};
use mediagate_client::{Code, Error, ErrorCode, Parameter, RetryPolicy};
use mediagate_core::model::{ModelSpec, PROCEDURAL_AIR, builtin_models};
use mediagate_testkit::TestServer;
use mediagate_testkit::flaky_proxy::FlakyProxy;
use support::{client, client_for, fast_retries};

/// Asserts the documented fields of an error and returns it.
fn api(e: &Error, code: ErrorCode, status: u16) -> mediagate_client::ApiError {
    let a = e.api_error().unwrap_or_else(|| panic!("an API error expected, got {e:?}")).clone();
    assert!(matches!(e, Error::Api(_)), "not wrapped: it was not retried: {e:?}");
    assert_eq!(a.code, Code::Known(code), "{e}");
    assert_eq!(a.http_status, Some(status), "{e}");
    assert!(!a.message.is_empty());
    assert!(a.documentation.as_deref().unwrap().ends_with(&format!("/docs/errors#{}", code.as_str())));
    assert!(!e.is_retryable(), "{code} is permanent");
    let shown = e.to_string();
    assert!(shown.contains(code.as_str()) && shown.contains(&a.message), "{shown}");
    if let Some(u) = &a.task_uuid {
        assert!(shown.contains(u.as_str()), "Display logs the taskUUID: {shown}");
    }
    a
}

#[tokio::test]
async fn validation_is_400_and_names_the_parameter_and_is_sent_once() {
    let s = TestServer::start().await;
    let proxy = FlakyProxy::start(&s.base_url, vec![]).await;
    let c = client_for(&proxy.base_url, &s.api_key, fast_retries());
    let task = ImageInference::new("a lighthouse").size(100, 64);
    let uuid = task_uuid(&task);
    let e = c.run(task).await.unwrap_err();
    let a = api(&e, ErrorCode::InvalidParameterValue, 400);
    assert_eq!(a.parameter, Some(Parameter::One("width".into())));
    assert_eq!(a.task_type.as_deref(), Some("imageInference"));
    assert_eq!(a.task_uuid.as_deref(), Some(uuid.as_str()));
    assert!(a.message.contains("multiple of 64"), "{}", a.message);
    assert_eq!(proxy.request_count(), 1, "a 400 is never retried");

    let e = c
        .run(CustomTask::new("imageInference").param("positivePrompt", "x y").param("colour", 1))
        .await
        .unwrap_err();
    assert_eq!(api(&e, ErrorCode::UnknownParameter, 400).parameter, Some(Parameter::One("colour".into())));
    let e = c.run(ImageInference::new("x")).await.unwrap_err();
    assert_eq!(
        api(&e, ErrorCode::InvalidParameterValue, 400).parameter,
        Some(Parameter::One("positivePrompt".into()))
    );
    let e = c.run(CustomTask::new("3dInference").param("positivePrompt", "waves")).await.unwrap_err();
    api(&e, ErrorCode::UnsupportedTaskType, 400);
    let e = c.run(Upscale::new("not an image").factor(2)).await.unwrap_err();
    let a = e.api_error().expect("an API error");
    assert_eq!(
        (a.http_status, a.parameter.clone()),
        (Some(400), Some(Parameter::One("inputImage".into()))),
        "{e}"
    );
    assert!(!e.is_retryable());
    assert_eq!(proxy.request_count(), 5, "one request per task, no retries");
}

fn task_uuid(t: &impl mediagate_client::tasks::Task) -> String {
    t.task_uuid().to_string()
}

#[tokio::test]
async fn conflicting_fields_come_back_as_the_first_in_parameter_and_all_in_the_message() {
    let s = TestServer::start_with(|cfg| {
        cfg.models.push({
            let mut m = builtin(PROCEDURAL_AIR);
            m.air = "test:small@1".into();
            m.bounds.max_pixels = 128 * 128;
            m
        })
    })
    .await;
    let e = client(&s)
        .run(ImageInference::new("too big").model("test:small@1").size(256, 256))
        .await
        .unwrap_err();
    // `parameter` is a string, as Runware documents it; the message names both fields.
    let a = api(&e, ErrorCode::InvalidParameterValue, 400);
    assert_eq!(a.parameter, Some(Parameter::One("width".into())));
    assert!(a.message.contains("width") && a.message.contains("height"), "{}", a.message);
}

#[tokio::test]
async fn conflicting_task_uuid_is_400() {
    let s = TestServer::start().await;
    let c = client(&s);
    let first = ImageInference::new("one thing").size(64, 64);
    let uuid = first.task_uuid();
    c.run(first).await.unwrap();
    let e = c.run(ImageInference::new("another thing").size(64, 64).with_task_uuid(uuid)).await.unwrap_err();
    assert_eq!(api(&e, ErrorCode::ConflictTaskUUID, 400).parameter, Some(Parameter::One("taskUUID".into())));
}

#[tokio::test]
async fn an_invalid_key_is_401_for_tasks_and_for_authentication() {
    let s = TestServer::start().await;
    let proxy = FlakyProxy::start(&s.base_url, vec![]).await;
    let wrong = format!("key_{}", "0".repeat(128));
    let c = client_for(&proxy.base_url, &wrong, fast_retries());
    let e = c.run(ImageInference::new("a lighthouse").size(64, 64)).await.unwrap_err();
    let a = api(&e, ErrorCode::InvalidApiKey, 401);
    assert_eq!(a.parameter, Some(Parameter::One("apiKey".into())));
    assert_eq!(a.task_type.as_deref(), Some("authentication"));
    assert!(!e.to_string().contains(&wrong), "the key is never shown");
    assert!(!format!("{e:?}").contains(&wrong));
    let e = c.authenticate().await.unwrap_err();
    api(&e, ErrorCode::InvalidApiKey, 401);
    assert_eq!(proxy.request_count(), 2, "401 is never retried");
    // The authentication task really carries the key in the body (not the header).
    let auth_body: serde_json::Value = serde_json::from_slice(&proxy.requests()[1].body).unwrap();
    assert_eq!(auth_body[0]["taskType"], "authentication");
}

#[tokio::test]
async fn insufficient_credits_is_402() {
    let s = TestServer::start_with(|cfg| cfg.bootstrap.initial_credit_usd = "0".into()).await;
    let proxy = FlakyProxy::start(&s.base_url, vec![]).await;
    let c = client_for(&proxy.base_url, &s.api_key, fast_retries());
    let e = c.run(ImageInference::new("a lighthouse").size(64, 64)).await.unwrap_err();
    let a = api(&e, ErrorCode::InsufficientCredits, 402);
    assert!(a.task_uuid.is_some());
    assert_eq!(s.balance("default").await, 0);
    assert_eq!(proxy.request_count(), 1, "402 is never retried");
    // A free task still works for a broke account.
    assert!(c.ping().await.unwrap().pong);
}

#[tokio::test]
async fn a_scoped_key_gets_403_outside_its_scopes() {
    let s = TestServer::start().await;
    let key = s.create_key("default", &["task:upscale"]).await;
    let proxy = FlakyProxy::start(&s.base_url, vec![]).await;
    let c = client_for(&proxy.base_url, &key, fast_retries());
    let e = c.run(ImageInference::new("not allowed").size(64, 64)).await.unwrap_err();
    let a = api(&e, ErrorCode::InsufficientPermissions, 403);
    assert_eq!(a.parameter, Some(Parameter::One("taskType".into())));
    assert!(a.message.contains("task:imageInference"), "{}", a.message);
    assert_eq!(proxy.request_count(), 1, "403 is never retried");
}

#[tokio::test]
async fn get_response_of_an_unknown_task_is_404() {
    let s = TestServer::start().await;
    let proxy = FlakyProxy::start(&s.base_url, vec![]).await;
    let c = client_for(&proxy.base_url, &s.api_key, fast_retries());
    let unknown = uuid::Uuid::new_v4();
    let e = c.get_response(unknown).await.unwrap_err();
    let a = api(&e, ErrorCode::TaskNotFound, 404);
    assert_eq!(a.task_uuid, Some(unknown.to_string()));
    assert_eq!(a.task_type.as_deref(), Some("getResponse"));
    assert_eq!(proxy.request_count(), 1, "404 is never retried");
}

#[tokio::test]
async fn transport_failures_are_typed() {
    // Nothing listens on this port (bound, then closed).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let policy = RetryPolicy::default()
        .max_attempts(2)
        .backoff(std::time::Duration::from_millis(1), std::time::Duration::from_millis(2));
    let c = client_for(&format!("http://127.0.0.1:{port}"), "key_x", policy);
    let e = c.ping().await.unwrap_err();
    assert!(matches!(e, Error::Exhausted { attempts: 2, .. }), "{e:?}");
    assert!(matches!(e.root(), Error::Connect { .. }), "{e:?}");
    assert!(e.is_retryable());
}

/// A copy of a built-in model's spec, to redefine under another AIR id.
fn builtin(air: &str) -> ModelSpec {
    builtin_models().into_iter().find(|m| m.air == air).expect("a built-in model")
}
