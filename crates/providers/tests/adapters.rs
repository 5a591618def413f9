//! The HTTP adapters (openai-images, runware-upstream, http-worker) against the testkit's
//! programmable mock upstream: request shapes, results, the error mapping of every failure
//! class, and that each failure costs exactly one upstream call (no client-side retries,
//! no redirects followed).

use base64::Engine as _;
use mediagate_core::ErrorCode;
use mediagate_core::task::{ImageFormat, ImageInference, OutputOptions, TaskRequest};
use mediagate_providers::mapping::parse_retry_after;
use mediagate_providers::upstream::{UpstreamConfig, UpstreamKind, build};
use mediagate_providers::{Failure, Job, Progress, ProgressFn, Provider, Submitted};
use mediagate_testkit::mock_upstream::{MockUpstream, Reply, openai_b64_reply, png};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

const GEN: &str = "/v1/images/generations";
/// Marker planted in upstream bodies: it must reach the log detail, never the client message.
const SECRET: &str = "UPSTREAM-INTERNAL-sk-live-4242";

fn cfg(kind: UpstreamKind, base: &str) -> UpstreamConfig {
    UpstreamConfig {
        name: "up".into(),
        kind,
        base_url: base.into(),
        timeout_ms: 2_000,
        poll_interval_ms: 10,
        ..UpstreamConfig::default()
    }
}

fn key_file(dir: &tempfile::TempDir, key: &str) -> std::path::PathBuf {
    let p = dir.path().join("key");
    std::fs::write(&p, format!("{key}\n")).unwrap();
    p
}

fn image_job(n: u32, format: ImageFormat) -> Job {
    Job {
        account_id: 1,
        request: TaskRequest::ImageInference(ImageInference {
            positive_prompt: "a red square".into(),
            negative_prompt: Some("blue".into()),
            model: "acme:img@1".into(),
            width: 512,
            height: 768,
            steps: Some(12),
            cfg_scale: Some(6.5),
            seed: Some(41),
            number_results: n,
            output: OutputOptions { format, ..OutputOptions::default() },
            ..ImageInference::default()
        }),
        inputs: vec![],
        seeds: (41..41 + u64::from(n)).collect(),
    }
}

async fn submit(p: &Arc<dyn Provider>, job: Job) -> Result<Submitted, mediagate_providers::ProviderError> {
    p.submit(Arc::new(job)).await
}

// ---------------------------------------------------------------------------------------------
// openai-images

#[tokio::test]
async fn openai_images_sends_the_documented_request_and_decodes_b64() {
    let m = MockUpstream::start().await;
    let img = png(4, 4, [255, 0, 0]);
    m.on("POST", GEN, vec![openai_b64_reply(2, &img)]);
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(UpstreamKind::OpenaiImages, &m.base_url);
    c.api_key_file = key_file(&dir, "sk-test-123");
    c.models.insert("acme:img@1".into(), "dall-e-3".into());
    let p = build(&c).unwrap();
    let Submitted::Done(out) = submit(&p, image_job(2, ImageFormat::Png)).await.unwrap() else {
        panic!("openai-images is synchronous")
    };
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].bytes, img, "a PNG asked as PNG passes through byte for byte");
    assert_eq!((out[0].content_type, out[0].seed), ("image/png", None));
    let req = &m.requests("POST", GEN)[0];
    assert_eq!(req.headers["authorization"], "Bearer sk-test-123");
    assert_eq!(
        req.json(),
        json!({"prompt": "a red square", "n": 2, "size": "512x768", "response_format": "b64_json", "model": "dall-e-3"})
    );
}

#[tokio::test]
async fn openai_images_fetches_url_replies_and_converts_the_format() {
    let m = MockUpstream::start().await;
    let img = png(6, 6, [0, 200, 0]);
    m.on("POST", GEN, vec![Reply::json(200, json!({"data": [{"url": m.url("/files/a.png")}]}))]);
    m.on("GET", "/files/a.png", vec![Reply::status(200).header("content-type", "image/png").body(img)]);
    let mut c = cfg(UpstreamKind::OpenaiImages, &format!("{}/v1", m.base_url));
    c.response_format = "url".into();
    let p = build(&c).unwrap();
    let Submitted::Done(out) = submit(&p, image_job(1, ImageFormat::Jpg)).await.unwrap() else { panic!() };
    assert_eq!(out[0].content_type, "image/jpeg");
    assert!(out[0].bytes.starts_with(&[0xFF, 0xD8, 0xFF]), "re-encoded to the JPEG the task asked for");
    assert_eq!(m.calls("GET", "/files/a.png"), 1);
    let sent = m.requests("POST", GEN)[0].json();
    assert_eq!(sent["response_format"], "url");
    assert!(sent.get("model").is_none(), "an unmapped AIR id sends no model");
}

/// One failing call: returns the mapped error and asserts the mock saw exactly one request.
async fn openai_failure(reply: Reply) -> mediagate_providers::ProviderError {
    let m = MockUpstream::start().await;
    m.on("POST", GEN, vec![reply]);
    let p = build(&cfg(UpstreamKind::OpenaiImages, &m.base_url)).unwrap();
    let e = match submit(&p, image_job(1, ImageFormat::Png)).await {
        Err(e) => e,
        Ok(_) => panic!("expected a failure"),
    };
    assert_eq!(m.total_calls(), 1, "the adapter never retries: {e:?}");
    assert!(!e.message.contains(SECRET), "upstream body leaked into the client message: {}", e.message);
    e
}

fn openai_error(status: u16, code: &str, kind: &str) -> Reply {
    Reply::json(
        status,
        json!({"error": {"code": code, "type": kind, "message": format!("{SECRET} says no")}}),
    )
}

#[tokio::test]
async fn rate_limits_carry_retry_after_and_are_transient() {
    let e =
        openai_failure(openai_error(429, "rate_limit_exceeded", "requests").header("retry-after", "7")).await;
    assert_eq!(e.code, ErrorCode::ProviderRateLimitExceeded);
    assert_eq!(e.failure, Failure::Transient);
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
    assert!(e.detail.contains(SECRET), "the body is kept for the logs");
}

#[tokio::test]
async fn server_errors_are_transient_provider_errors() {
    for status in [500, 502, 503, 529] {
        let e = openai_failure(Reply::status(status).body(SECRET)).await;
        assert_eq!((e.code, e.failure), (ErrorCode::ProviderError, Failure::Transient), "{status}");
    }
    let e = openai_failure(Reply::status(503).header("retry-after", "2")).await;
    assert_eq!(e.retry_after, Some(Duration::from_secs(2)));
    let e = openai_failure(Reply::status(504)).await;
    assert_eq!((e.code, e.failure), (ErrorCode::TimeoutProvider, Failure::Transient));
    // A 200 whose body is not the documented JSON is the provider's failure, not the client's.
    let e = openai_failure(Reply::status(200).body(format!("<html>{SECRET}</html>"))).await;
    assert_eq!(e.code, ErrorCode::ProviderError);
}

#[tokio::test]
async fn slow_upstreams_time_out_as_timeout_provider() {
    let m = MockUpstream::start().await;
    m.on("POST", GEN, vec![openai_b64_reply(1, &png(2, 2, [1, 2, 3])).delay(Duration::from_millis(800))]);
    let mut c = cfg(UpstreamKind::OpenaiImages, &m.base_url);
    c.timeout_ms = 200;
    let p = build(&c).unwrap();
    let e = submit(&p, image_job(1, ImageFormat::Png)).await.err().unwrap();
    assert_eq!((e.code, e.failure), (ErrorCode::TimeoutProvider, Failure::Transient));
    assert_eq!(m.total_calls(), 1);
}

#[tokio::test]
async fn connection_failures_are_transient_provider_errors() {
    // A port that was just free: nothing listens there.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let p = build(&cfg(UpstreamKind::OpenaiImages, &format!("http://{addr}"))).unwrap();
    let e = submit(&p, image_job(1, ImageFormat::Png)).await.err().unwrap();
    assert_eq!((e.code, e.failure), (ErrorCode::ProviderError, Failure::Transient));
}

#[tokio::test]
async fn content_policy_refusals_are_final() {
    for (code, kind) in [("content_policy_violation", "invalid_request_error"), ("moderation_blocked", "x")] {
        let e = openai_failure(openai_error(400, code, kind)).await;
        assert_eq!(
            (e.code, e.failure),
            (ErrorCode::ProviderContentPolicyViolation, Failure::Request),
            "{code}"
        );
    }
}

#[tokio::test]
async fn other_refusals_are_invalid_parameters() {
    let e = openai_failure(openai_error(400, "invalid_size", "invalid_request_error")).await;
    assert_eq!((e.code, e.failure), (ErrorCode::InvalidParameterValue, Failure::Request));
}

#[tokio::test]
async fn upstream_auth_failures_blame_the_operator_not_the_client() {
    for status in [401, 403] {
        let e = openai_failure(openai_error(status, "invalid_api_key", "invalid_request_error")).await;
        assert_eq!((e.code, e.failure), (ErrorCode::InternalServerError, Failure::Provider));
        assert!(e.message.contains("rejected mediagate's credentials"), "{}", e.message);
        assert!(e.message.contains("operator must fix the provider configuration"));
        assert!(!e.message.to_lowercase().contains("invalid api key"));
        assert!(e.detail.contains(&status.to_string()));
    }
    // Quota exhaustion is also the operator's problem, not a rate limit to retry.
    let e = openai_failure(openai_error(429, "insufficient_quota", "insufficient_quota")).await;
    assert_eq!((e.code, e.failure), (ErrorCode::InternalServerError, Failure::Provider));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let m = MockUpstream::start().await;
    m.on("POST", GEN, vec![Reply::status(307).header("location", &m.url("/elsewhere"))]);
    m.on("POST", "/elsewhere", vec![openai_b64_reply(1, &png(2, 2, [0, 0, 0]))]);
    let p = build(&cfg(UpstreamKind::OpenaiImages, &m.base_url)).unwrap();
    let e = submit(&p, image_job(1, ImageFormat::Png)).await.err().unwrap();
    assert_eq!((e.code, e.failure), (ErrorCode::InternalServerError, Failure::Provider));
    assert_eq!((m.calls("POST", GEN), m.calls("POST", "/elsewhere")), (1, 0));
}

#[test]
fn retry_after_accepts_seconds_and_http_dates() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 2015-10-21 07:28:00 GMT
    assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
    assert_eq!(parse_retry_after(" 1.5 ", now), Some(Duration::from_millis(1_500)));
    assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now), Some(Duration::from_secs(30)));
    assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(Duration::ZERO), "past = now");
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(parse_retry_after("-3", now), None);
}

#[test]
fn configuration_errors_are_caught_at_build() {
    let mut c = cfg(UpstreamKind::OpenaiImages, "ftp://x");
    assert!(build(&c).err().unwrap().contains("base_url"));
    c.base_url = "http://127.0.0.1:9".into();
    c.response_format = "png".into();
    assert!(build(&c).err().unwrap().contains("response_format"));
    c.response_format = "b64_json".into();
    c.api_key_env = "MEDIAGATE_TEST_SURELY_UNSET_VARIABLE".into();
    let e = build(&c).err().unwrap();
    assert!(e.contains("MEDIAGATE_TEST_SURELY_UNSET_VARIABLE") && e.contains("not set"), "{e}");
    let secret = mediagate_providers::upstream::Secret::new("sk-abc");
    assert!(!format!("{secret:?}").contains("sk-abc"), "keys never show in debug output");
}

// ---------------------------------------------------------------------------------------------
// runware-upstream

fn runware_ok(n: usize, img: &[u8]) -> Reply {
    let b64 = base64::engine::general_purpose::STANDARD.encode(img);
    let data: Vec<_> = (0..n)
        .map(|i| json!({"taskType": "imageInference", "taskUUID": "x", "imageUUID": "y", "imageBase64Data": b64, "seed": 41 + i}))
        .collect();
    Reply::json(200, json!({"data": data}))
}

#[tokio::test]
async fn runware_upstream_forwards_the_task_with_its_own_key() {
    let m = MockUpstream::start().await;
    let img = png(4, 4, [9, 9, 9]);
    m.on("POST", "/v1", vec![Reply::status(503), runware_ok(2, &img)]);
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(UpstreamKind::RunwareUpstream, &m.base_url);
    c.api_key_file = key_file(&dir, "key_upstream");
    c.models.insert("acme:img@1".into(), "upstream:model@2".into());
    let p = build(&c).unwrap();
    assert!(submit(&p, image_job(2, ImageFormat::Png)).await.is_err(), "the 503 first");
    let Submitted::Done(out) = submit(&p, image_job(2, ImageFormat::Png)).await.unwrap() else { panic!() };
    assert_eq!(out.iter().map(|a| a.seed).collect::<Vec<_>>(), vec![Some(41), Some(42)]);
    assert_eq!(out[0].bytes, img);
    let reqs = m.requests("POST", "/v1");
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].headers["authorization"], "Bearer key_upstream");
    let t = &reqs[1].json()[0];
    assert_eq!(t["taskType"], "imageInference");
    assert_eq!(t["model"], "upstream:model@2");
    assert_eq!((t["width"].clone(), t["height"].clone()), (json!(512), json!(768)));
    assert_eq!((t["seed"].clone(), t["numberResults"].clone()), (json!(41), json!(2)));
    assert_eq!((t["steps"].clone(), t["CFGScale"].clone()), (json!(12), json!(6.5)));
    assert_eq!(t["negativePrompt"], "blue");
    assert_eq!(t["outputType"], "base64Data");
    // A fresh taskUUID per attempt, so a retry is never a replay of a stored failure.
    assert_ne!(reqs[0].json()[0]["taskUUID"], t["taskUUID"]);
    uuid::Uuid::parse_str(t["taskUUID"].as_str().unwrap()).unwrap();
}

async fn runware_failure(
    status: u16,
    code: &str,
    extra: serde_json::Value,
) -> mediagate_providers::ProviderError {
    let m = MockUpstream::start().await;
    let mut err =
        json!({"code": code, "message": format!("{SECRET}: details"), "taskType": "imageInference"});
    if let Some(p) = extra.get("parameter") {
        err["parameter"] = p.clone();
    }
    let mut reply = Reply::json(status, json!({"errors": [err]}));
    if let Some(ra) = extra.get("retry_after").and_then(|v| v.as_str()) {
        reply = reply.header("retry-after", ra);
    }
    m.on("POST", "/v1", vec![reply]);
    let p = build(&cfg(UpstreamKind::RunwareUpstream, &m.base_url)).unwrap();
    let e = submit(&p, image_job(1, ImageFormat::Png)).await.err().unwrap();
    assert_eq!(m.total_calls(), 1);
    assert!(!e.message.contains(SECRET), "{}", e.message);
    e
}

#[tokio::test]
async fn runware_upstream_maps_its_error_codes() {
    let e = runware_failure(504, "timeoutProvider", json!({})).await;
    assert_eq!((e.code, e.failure), (ErrorCode::TimeoutProvider, Failure::Transient));
    let e = runware_failure(429, "providerRateLimitExceeded", json!({"retry_after": "3"})).await;
    assert_eq!((e.code, e.retry_after), (ErrorCode::ProviderRateLimitExceeded, Some(Duration::from_secs(3))));
    let e = runware_failure(429, "rateLimitExceeded", json!({})).await;
    assert_eq!((e.code, e.failure), (ErrorCode::ProviderRateLimitExceeded, Failure::Transient));
    let e = runware_failure(502, "providerError", json!({})).await;
    assert_eq!((e.code, e.failure), (ErrorCode::ProviderError, Failure::Transient));
    let e = runware_failure(500, "internalServerError", json!({})).await;
    assert_eq!((e.code, e.failure), (ErrorCode::ProviderError, Failure::Transient));
    let e = runware_failure(400, "providerContentPolicyViolation", json!({})).await;
    assert_eq!((e.code, e.failure), (ErrorCode::ProviderContentPolicyViolation, Failure::Request));
    for code in ["invalidApiKey", "apiKeyRevoked", "insufficientPermissions", "missingApiKey"] {
        let e = runware_failure(401, code, json!({})).await;
        assert_eq!((e.code, e.failure), (ErrorCode::InternalServerError, Failure::Provider), "{code}");
        assert!(
            e.message.contains("rejected mediagate's credentials")
                && e.message.contains("Your API key is fine")
        );
    }
    let e = runware_failure(402, "insufficientCredits", json!({})).await;
    assert_eq!((e.code, e.failure), (ErrorCode::InternalServerError, Failure::Provider));
    let e = runware_failure(400, "unknownModel", json!({"parameter": "model"})).await;
    assert_eq!((e.code, e.failure), (ErrorCode::InternalServerError, Failure::Provider));
    let e = runware_failure(400, "invalidParameterValue", json!({"parameter": "width"})).await;
    assert_eq!((e.code, e.failure), (ErrorCode::InvalidParameterValue, Failure::Request));
    assert!(e.message.contains("parameter 'width'"), "{}", e.message);
    // Unknown codes fall back to the HTTP status.
    let e = runware_failure(503, "someFutureCode", json!({})).await;
    assert_eq!((e.code, e.failure), (ErrorCode::ProviderError, Failure::Transient));
    let e = runware_failure(403, "someFutureCode", json!({})).await;
    assert_eq!((e.code, e.failure), (ErrorCode::InternalServerError, Failure::Provider));
}

// ---------------------------------------------------------------------------------------------
// http-worker

fn job_state(status: &str, extra: serde_json::Value) -> Reply {
    let mut v = json!({"id": "j", "status": status});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    Reply::json(200, v)
}

fn recorder() -> (ProgressFn, Arc<Mutex<Vec<f32>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    (Arc::new(move |p: Progress| s.lock().unwrap().push(p.fraction)), seen)
}

#[tokio::test]
async fn http_worker_submits_polls_with_progress_and_collects_outputs() {
    let m = MockUpstream::start().await;
    let img = base64::engine::general_purpose::STANDARD.encode(png(3, 3, [7, 7, 7]));
    m.on("POST", "/jobs", vec![Reply::json(202, json!({"id": "j", "status": "queued"}))]);
    m.on(
        "GET",
        "/jobs/*",
        vec![
            job_state("queued", json!({})),
            job_state("running", json!({"progress": 0.25})),
            job_state("running", json!({"progress": 0.75})),
            job_state("succeeded", json!({"progress": 1.0, "outputs": [{"base64": img, "seed": 41}, {"base64": img, "seed": 42}]})),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(UpstreamKind::HttpWorker, &m.base_url);
    c.api_key_file = key_file(&dir, "worker-key");
    c.models.insert("acme:img@1".into(), "sdxl".into());
    let p = build(&c).unwrap();
    let Submitted::Pending(h) = submit(&p, image_job(2, ImageFormat::Png)).await.unwrap() else {
        panic!("202 is a pending job")
    };
    let (progress, seen) = recorder();
    let out = p.wait(&h, &progress).await.unwrap();
    assert_eq!(out.iter().map(|a| a.seed).collect::<Vec<_>>(), vec![Some(41), Some(42)]);
    assert_eq!(*seen.lock().unwrap(), vec![0.25, 0.75, 1.0]);
    assert_eq!(m.calls("GET", "/jobs/*"), 4, "polled until done, then stopped");
    let sub = &m.requests("POST", "/jobs")[0];
    assert_eq!(sub.headers["authorization"], "Bearer worker-key");
    let body = sub.json();
    assert_eq!(body["id"].as_str().unwrap(), h.ids[0]);
    assert_eq!(body["model"], "sdxl");
    assert_eq!(body["input"]["seeds"], json!([41, 42]));
    assert_eq!(m.requests("GET", &format!("/jobs/{}", h.ids[0])).len(), 4);
}

#[tokio::test]
async fn http_worker_maps_failed_jobs_and_cancels() {
    let m = MockUpstream::start().await;
    m.on("POST", "/jobs", vec![Reply::json(202, json!({"id": "j", "status": "queued"}))]);
    m.on(
        "GET",
        "/jobs/*",
        vec![job_state("failed", json!({"error": {"kind": "content_policy", "message": SECRET}}))],
    );
    m.on("POST", "/jobs/*", vec![Reply::status(202)]);
    let p = build(&cfg(UpstreamKind::HttpWorker, &m.base_url)).unwrap();
    let Submitted::Pending(h) = submit(&p, image_job(1, ImageFormat::Png)).await.unwrap() else { panic!() };
    let e = p.wait(&h, &mediagate_providers::no_progress()).await.unwrap_err();
    assert_eq!((e.code, e.failure), (ErrorCode::ProviderContentPolicyViolation, Failure::Request));
    assert!(!e.message.contains(SECRET));

    m.on("GET", "/jobs/*", vec![job_state("failed", json!({"error": {"kind": "oom"}}))]);
    let e = p.wait(&h, &mediagate_providers::no_progress()).await.unwrap_err();
    assert_eq!((e.code, e.failure), (ErrorCode::ProviderError, Failure::Transient));

    m.on("GET", "/jobs/*", vec![Reply::json(404, json!({}))]);
    let e = p.wait(&h, &mediagate_providers::no_progress()).await.unwrap_err();
    assert_eq!((e.code, e.failure), (ErrorCode::ProviderError, Failure::Transient));

    p.cancel(&h).await.unwrap();
    assert_eq!(m.requests("POST", &format!("/jobs/{}/cancel", h.ids[0])).len(), 1);
}

#[tokio::test]
async fn http_worker_busy_and_finished_at_once() {
    let m = MockUpstream::start().await;
    m.on(
        "POST",
        "/jobs",
        vec![Reply::json(429, json!({"error": {"kind": "busy"}})).header("retry-after", "4")],
    );
    let p = build(&cfg(UpstreamKind::HttpWorker, &m.base_url)).unwrap();
    let e = submit(&p, image_job(1, ImageFormat::Png)).await.err().unwrap();
    assert_eq!((e.code, e.retry_after), (ErrorCode::ProviderRateLimitExceeded, Some(Duration::from_secs(4))));
    let img = base64::engine::general_purpose::STANDARD.encode(png(3, 3, [1, 1, 1]));
    m.on("POST", "/jobs", vec![job_state("succeeded", json!({"outputs": [{"base64": img}]}))]);
    assert!(
        matches!(submit(&p, image_job(1, ImageFormat::Png)).await.unwrap(), Submitted::Done(ref a) if a.len() == 1)
    );
    m.on("POST", "/jobs", vec![Reply::json(422, json!({"error": {"kind": "invalid", "message": SECRET}}))]);
    let e = submit(&p, image_job(1, ImageFormat::Png)).await.err().unwrap();
    assert_eq!((e.code, e.failure), (ErrorCode::InvalidParameterValue, Failure::Request));
}

#[tokio::test]
async fn http_worker_wait_is_bounded_by_the_timeout() {
    let m = MockUpstream::start().await;
    m.on("POST", "/jobs", vec![Reply::json(202, json!({"id": "j", "status": "queued"}))]);
    m.on("GET", "/jobs/*", vec![job_state("running", json!({"progress": 0.1}))]);
    let mut c = cfg(UpstreamKind::HttpWorker, &m.base_url);
    c.timeout_ms = 150;
    let p = build(&c).unwrap();
    let Submitted::Pending(h) = submit(&p, image_job(1, ImageFormat::Png)).await.unwrap() else { panic!() };
    let e = p.wait(&h, &mediagate_providers::no_progress()).await.unwrap_err();
    assert_eq!((e.code, e.failure), (ErrorCode::TimeoutProvider, Failure::Transient));
    assert!(m.calls("GET", "/jobs/*") >= 2);
}
