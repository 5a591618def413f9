//! The Runway dialect over a real queued provider (the testkit's ComfyUI mock, HTTP and
//! WebSocket): the provider's progress shows as the task's `progress` while it is `RUNNING`, and
//! `DELETE /v1/tasks/{id}` cancels the provider's job (`/interrupt`), not only the task.

use mediagate_core::model::builtin_models;
use mediagate_providers::upstream::{UpstreamConfig, UpstreamKind};
use mediagate_testkit::TestServer;
use mediagate_testkit::comfy_mock::{ComfyMock, Outcome, Script};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn template() -> Value {
    json!({
        "3": {"class_type": "KSampler", "inputs": {"seed": "{{seed}}", "steps": "{{steps}}", "cfg": "{{cfg}}"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": "{{width}}", "height": "{{height}}"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{prompt}}"}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "mediagate", "images": ["8", 0]}}
    })
}

/// A server whose `gen4_image` runs on the ComfyUI mock instead of the procedural stand-in.
async fn server(mock: &ComfyMock, dir: &std::path::Path) -> TestServer {
    let wf = dir.join("gen4.json");
    std::fs::write(&wf, template().to_string()).unwrap();
    let base = mock.base_url.clone();
    TestServer::start_with(move |c| {
        let mut up = UpstreamConfig {
            name: "comfy".into(),
            kind: UpstreamKind::Comfyui,
            base_url: base,
            timeout_ms: 60_000,
            poll_interval_ms: 20,
            ..UpstreamConfig::default()
        };
        up.workflows.insert("gen4_image".into(), wf);
        c.providers.upstreams.push(up);
        let mut spec = builtin_models().into_iter().find(|m| m.air == "gen4_image").unwrap();
        spec.provider = "comfy".into();
        c.models.push(spec);
    })
    .await
}

async fn get(s: &TestServer, id: &str) -> Value {
    let r = s
        .http
        .get(format!("{}/v1/tasks/{id}", s.base_url))
        .bearer_auth(&s.api_key)
        .header("X-Runway-Version", "2024-11-06")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn create(s: &TestServer) -> String {
    let r = s
        .http
        .post(format!("{}/v1/text_to_image", s.base_url))
        .bearer_auth(&s.api_key)
        .header("X-Runway-Version", "2024-11-06")
        .json(&json!({"model": "gen4_image", "promptText": "a lighthouse", "ratio": "1280:720"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn provider_progress_is_the_tasks_progress() {
    let mock = ComfyMock::start().await;
    mock.set_script(Script { steps: 10, step_delay: Duration::from_millis(100), outcome: Outcome::Success });
    let dir = tempfile::tempdir().unwrap();
    let s = server(&mock, dir.path()).await;
    let id = create(&s).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut progress = Vec::new();
    let last = loop {
        let b = get(&s, &id).await;
        if b["status"] == "RUNNING" {
            progress.push(b["progress"].as_f64().unwrap());
        }
        if b["status"] != "RUNNING" && b["status"] != "PENDING" {
            break b;
        }
        assert!(Instant::now() < deadline, "never finished: {b}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(last["status"], "SUCCEEDED", "{last}");
    // Intermediate values were seen, and they never went backwards.
    assert!(progress.iter().any(|p| *p > 0.0 && *p < 1.0), "{progress:?}");
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
}

#[tokio::test]
async fn delete_interrupts_the_providers_job() {
    let mock = ComfyMock::start().await;
    mock.set_script(Script { steps: 3, step_delay: Duration::from_millis(20), outcome: Outcome::Hang });
    let dir = tempfile::tempdir().unwrap();
    let s = server(&mock, dir.path()).await;
    let before = s.balance("default").await;
    let id = create(&s).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&s, &id).await["status"] != "RUNNING" || mock.prompts().is_empty() {
        assert!(Instant::now() < deadline, "never running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = s
        .http
        .delete(format!("{}/v1/tasks/{id}", s.base_url))
        .bearer_auth(&s.api_key)
        .header("X-Runway-Version", "2024-11-06")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(get(&s, &id).await["status"], "CANCELLED");
    assert_eq!(s.balance("default").await, before);
    // The job's cancellation reaches ComfyUI.
    while mock.interrupts().is_empty() {
        assert!(Instant::now() < deadline, "ComfyUI was never interrupted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mock.interrupts().len(), 1);
}

/// A server whose `gen4_image` goes to an OpenAI-compatible mock (no retries: one call each).
async fn openai_server(m: &mediagate_testkit::mock_upstream::MockUpstream) -> TestServer {
    let base = m.url("");
    TestServer::start_with(move |c| {
        c.providers.upstreams.push(UpstreamConfig {
            name: "openai".into(),
            kind: UpstreamKind::OpenaiImages,
            base_url: base,
            timeout_ms: 5_000,
            ..UpstreamConfig::default()
        });
        let mut spec = builtin_models().into_iter().find(|m| m.air == "gen4_image").unwrap();
        spec.provider = "openai".into();
        spec.retry.attempts = 1;
        c.models.push(spec);
    })
    .await
}

async fn finish(s: &TestServer, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let b = get(s, id).await;
        if !["PENDING", "THROTTLED", "RUNNING"].contains(&b["status"].as_str().unwrap()) {
            return b;
        }
        assert!(Instant::now() < deadline, "never finished: {b}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn provider_failures_are_failed_tasks_with_failure_codes_and_no_charge() {
    use mediagate_testkit::mock_upstream::{MockUpstream, Reply};
    let m = MockUpstream::start().await;
    let s = openai_server(&m).await;
    let before = s.balance("default").await;

    m.on(
        "POST",
        "/v1/images/generations",
        vec![Reply::json(500, json!({"error": {"message": "boom: secret-internal-detail"}}))],
    );
    let b = finish(&s, &create(&s).await).await;
    assert_eq!(b["status"], "FAILED", "{b}");
    assert_eq!(b["failureCode"], "INTERNAL");
    assert_eq!(b["cost"], json!({"credits": 0}));
    let failure = b["failure"].as_str().unwrap();
    assert!(!failure.is_empty() && !failure.contains("secret-internal-detail"), "{failure}");

    m.on(
        "POST",
        "/v1/images/generations",
        vec![Reply::json(
            400,
            json!({"error": {"code": "content_policy_violation", "message": "rejected by the safety system"}}),
        )],
    );
    let b = finish(&s, &create(&s).await).await;
    assert_eq!(b["status"], "FAILED", "{b}");
    assert_eq!(b["failureCode"], "SAFETY.INPUT.GENERAL", "{b}");
    assert_eq!(s.balance("default").await, before, "failed tasks are refunded");
}
