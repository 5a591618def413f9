//! The ComfyUI adapter against the testkit's ComfyUI mock (HTTP routes and WebSocket messages):
//! template filling, progress forwarding, outputs from /history and /view, failures, prompts
//! that finish before the socket connects, and cancellation through /queue and /interrupt.

use mediagate_core::ErrorCode;
use mediagate_core::task::{ImageFormat, ImageInference, OutputOptions, TaskRequest};
use mediagate_providers::upstream::{UpstreamConfig, UpstreamKind, build};
use mediagate_providers::{Failure, Job, Progress, ProgressFn, Provider, Submitted};
use mediagate_testkit::comfy_mock::{ComfyMock, Outcome, Script};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const AIR: &str = "acme:sdxl@1";

fn template() -> serde_json::Value {
    json!({
        "3": {"class_type": "KSampler", "inputs": {"seed": "{{seed}}", "steps": "{{steps}}", "cfg": "{{cfg}}", "model": ["4", 0]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": "{{width}}", "height": "{{height}}", "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{prompt}}", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{negative_prompt}}", "clip": ["4", 1]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "mediagate", "images": ["8", 0]}}
    })
}

struct Fixture {
    mock: ComfyMock,
    provider: Arc<dyn Provider>,
    _dir: tempfile::TempDir,
}

async fn fixture(timeout_ms: u64) -> Fixture {
    let mock = ComfyMock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("sdxl.json");
    std::fs::write(&wf, template().to_string()).unwrap();
    let mut c = UpstreamConfig {
        name: "comfy".into(),
        kind: UpstreamKind::Comfyui,
        base_url: mock.base_url.clone(),
        timeout_ms,
        poll_interval_ms: 20,
        ..UpstreamConfig::default()
    };
    c.workflows.insert(AIR.into(), wf);
    let provider = build(&c).unwrap();
    Fixture { mock, provider, _dir: dir }
}

fn job(n: u32, format: ImageFormat) -> Job {
    Job {
        account_id: 1,
        request: TaskRequest::ImageInference(ImageInference {
            positive_prompt: "a \"lighthouse\" at dusk".into(),
            negative_prompt: None,
            model: AIR.into(),
            width: 832,
            height: 1216,
            steps: Some(4),
            cfg_scale: None,
            seed: Some(100),
            number_results: n,
            output: OutputOptions { format, ..OutputOptions::default() },
            ..ImageInference::default()
        }),
        inputs: vec![],
        seeds: (100..100 + u64::from(n)).collect(),
    }
}

fn recorder() -> (ProgressFn, Arc<Mutex<Vec<f32>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    (Arc::new(move |p: Progress| s.lock().unwrap().push(p.fraction)), seen)
}

async fn pending(f: &Fixture, j: Job) -> mediagate_providers::JobHandle {
    match f.provider.submit(Arc::new(j)).await.unwrap() {
        Submitted::Pending(h) => h,
        Submitted::Done(_) => panic!("comfyui queues"),
    }
}

#[tokio::test]
async fn runs_filled_workflows_and_forwards_progress() {
    let f = fixture(10_000).await;
    assert_eq!(f.provider.capabilities().models, vec![AIR.to_string()]);
    let h = pending(&f, job(2, ImageFormat::Png)).await;
    assert_eq!(h.ids.len(), 2, "one prompt per result");
    let (progress, seen) = recorder();
    let out = f.provider.wait(&h, &progress).await.unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].bytes, f.mock.png());
    assert_eq!(out.iter().map(|a| a.seed).collect::<Vec<_>>(), vec![Some(100), Some(101)]);

    let prompts = f.mock.prompts();
    assert_eq!(prompts.len(), 2);
    let (_, client, g) = &prompts[0];
    assert_eq!(client, &prompts[1].1, "one client id for the task's prompts");
    assert_eq!(g["3"]["inputs"]["seed"], json!(100));
    assert_eq!(prompts[1].2["3"]["inputs"]["seed"], json!(101));
    assert_eq!(g["3"]["inputs"]["steps"], json!(4));
    assert_eq!(g["3"]["inputs"]["cfg"], json!(7.0), "the default CFG when the task sets none");
    assert_eq!(
        (g["5"]["inputs"]["width"].clone(), g["5"]["inputs"]["height"].clone()),
        (json!(832), json!(1216))
    );
    assert_eq!(g["6"]["inputs"]["text"], json!("a \"lighthouse\" at dusk"));
    assert_eq!(g["7"]["inputs"]["text"], json!(""));

    // 4 steps per prompt over 2 prompts: fractions climb by 1/8 to 1, never backwards.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.last(), Some(&1.0));
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    for expected in [0.125, 0.25, 0.5, 0.625, 0.875] {
        assert!(seen.iter().any(|&x| (x - expected).abs() < 1e-6), "{expected} missing from {seen:?}");
    }
    assert_eq!(f.mock.calls("ws"), 1);
    assert_eq!(f.mock.calls("view"), 2, "only the output images are fetched, not the previews");
}

#[tokio::test]
async fn converts_formats_and_reads_prompts_that_finished_unseen() {
    let f = fixture(10_000).await;
    f.mock.set_wait_for_socket(false);
    f.mock.set_script(Script { steps: 1, step_delay: Duration::from_millis(1), outcome: Outcome::Success });
    let h = pending(&f, job(1, ImageFormat::Webp)).await;
    assert!(f.mock.wait_idle(Duration::from_secs(5)).await);
    // Finished before the socket existed: found in /history right after connecting.
    let out = f.provider.wait(&h, &mediagate_providers::no_progress()).await.unwrap();
    assert_eq!(out[0].content_type, "image/webp");
    assert_eq!(&out[0].bytes[8..12], b"WEBP");
}

#[tokio::test]
async fn execution_errors_and_rejected_workflows_are_mapped() {
    let f = fixture(10_000).await;
    f.mock.set_script(Script { outcome: Outcome::Error("CUDA out of memory".into()), ..Script::default() });
    let h = pending(&f, job(1, ImageFormat::Png)).await;
    let e = f.provider.wait(&h, &mediagate_providers::no_progress()).await.unwrap_err();
    assert_eq!((e.code, e.failure), (ErrorCode::ProviderError, Failure::Transient));
    assert!(e.detail.contains("CUDA out of memory") && !e.message.contains("CUDA"));

    f.mock.reject_prompts(json!({"type": "prompt_outputs_failed_validation", "message": "ckpt missing"}));
    let e = f.provider.submit(Arc::new(job(1, ImageFormat::Png))).await.unwrap_err();
    assert_eq!((e.code, e.failure), (ErrorCode::InternalServerError, Failure::Provider));
    assert!(e.message.contains("workflow") && !e.message.contains("ckpt"));
}

#[tokio::test]
async fn cancel_deletes_and_interrupts_the_prompt() {
    let f = fixture(10_000).await;
    f.mock.set_script(Script { outcome: Outcome::Hang, ..Script::default() });
    let h = pending(&f, job(1, ImageFormat::Png)).await;
    let p = f.provider.clone();
    let h2 = h.clone();
    let waiting = tokio::spawn(async move { p.wait(&h2, &mediagate_providers::no_progress()).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    f.provider.cancel(&h).await.unwrap();
    assert_eq!(f.mock.deleted(), h.ids);
    assert_eq!(f.mock.interrupts(), vec![json!({"prompt_id": h.ids[0]})]);
    assert!(f.mock.wait_idle(Duration::from_secs(5)).await, "the mock stopped the prompt");
    // The waiter sees the interruption as a provider failure.
    let e = waiting.await.unwrap().unwrap_err();
    assert_eq!(e.code, ErrorCode::ProviderError);
    assert!(e.detail.contains("interrupted"), "{}", e.detail);
}

#[tokio::test]
async fn a_hung_prompt_times_out() {
    let f = fixture(300).await;
    f.mock.set_script(Script { outcome: Outcome::Hang, ..Script::default() });
    let h = pending(&f, job(1, ImageFormat::Png)).await;
    let e = f.provider.wait(&h, &mediagate_providers::no_progress()).await.unwrap_err();
    assert_eq!((e.code, e.failure), (ErrorCode::TimeoutProvider, Failure::Transient));
}

#[tokio::test]
async fn templates_are_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("bad.json");
    std::fs::write(&wf, r#"{"3": {"inputs": {"text": "no placeholder"}}}"#).unwrap();
    let mut c = UpstreamConfig {
        name: "comfy".into(),
        kind: UpstreamKind::Comfyui,
        base_url: "http://127.0.0.1:9".into(),
        ..UpstreamConfig::default()
    };
    assert!(build(&c).err().unwrap().contains("at least one entry in `workflows`"));
    c.workflows.insert(AIR.into(), wf);
    assert!(build(&c).err().unwrap().contains("{{prompt}}"));
    c.workflows.insert(AIR.into(), dir.path().join("missing.json"));
    assert!(build(&c).err().unwrap().contains("missing.json"));
}
