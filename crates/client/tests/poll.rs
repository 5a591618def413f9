//! Polling `getResponse` against a real server: a task seen `processing`, then its result; a
//! failed task's embedded error; the budget that ends polling.
//!
//! Some tests poll a task that a concurrent sync request is running (the server reports it
//! `processing` until it finishes); others use async delivery end to end.

mod support;

use mediagate_client::tasks::{Delivery, ImageInference, Status, Upscale, VideoInference};
use mediagate_client::{Client, Error, ErrorCode, Parameter, PollPolicy, Submitted};
use mediagate_core::model::{LANCZOS_AIR, ModelSpec, builtin_models};
use mediagate_testkit::TestServer;
use mediagate_testkit::flaky_proxy::{Action, FlakyProxy};
use std::time::{Duration, Instant};
use support::{client, client_for, fast_retries};
use uuid::Uuid;

/// A task slow enough to be seen running.
fn heavy() -> ImageInference {
    ImageInference::new("a large slow picture").size(2048, 2048).number_results(4).seed(11)
}

/// Starts `task` (sync) in the background and returns once the server has recorded it.
async fn start_in_background(
    c: &Client,
    task: ImageInference,
) -> (Uuid, tokio::task::JoinHandle<Result<Vec<mediagate_client::tasks::ImageResult>, Error>>) {
    let uuid = task.task_uuid();
    let bg = c.clone();
    let handle = tokio::spawn(async move { bg.run(task).await });
    let t0 = Instant::now();
    loop {
        match c.get_response(uuid).await {
            Ok(_) => return (uuid, handle),
            Err(e) if e.code() == Some(ErrorCode::TaskNotFound) && t0.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(5)).await
            }
            Err(e) => panic!("the task was never recorded: {e}"),
        }
    }
}

fn quick_polls(budget: Duration) -> PollPolicy {
    PollPolicy::default()
        .initial_delay(Duration::from_millis(20))
        .interval(Duration::from_millis(20), 1.5, Duration::from_millis(200))
        .budget(budget)
}

#[tokio::test]
async fn polling_sees_processing_then_the_result() {
    let s = TestServer::start().await;
    let c = client(&s);
    let (uuid, bg) = start_in_background(&c, heavy()).await;
    let first = c.get_response(uuid).await.unwrap();
    assert!(
        first.iter().any(|i| i.status == Status::Processing),
        "the heavy task should still be running: {first:?}"
    );
    // Poll through a counting proxy.
    let proxy = FlakyProxy::start(&s.base_url, vec![]).await;
    let poller = client_for(&proxy.base_url, &s.api_key, fast_retries());
    let images = poller
        .wait_with(&Submitted::<ImageInference>::from_task_uuid(uuid), &quick_polls(Duration::from_secs(120)))
        .await
        .expect("the task finishes within the budget");
    let direct = bg.await.unwrap().unwrap();
    assert_eq!(images.len(), 4);
    let mut a: Vec<_> = images.iter().map(|i| i.image_uuid.clone()).collect();
    let mut b: Vec<_> = direct.iter().map(|i| i.image_uuid.clone()).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "polling returns the task's own results");
    let polls = proxy.request_count();
    assert!(polls >= 1, "at least one poll");
    for r in proxy.requests() {
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v[0]["taskType"], "getResponse");
        assert_eq!(v[0]["taskUUID"], uuid.to_string());
    }
}

#[tokio::test]
async fn the_budget_ends_polling() {
    // A model whose provider answers after 3 s, so the task is still running when the 150 ms
    // budget ends however fast the machine is (a heavy procedural render finished within the
    // budget on a quiet machine, once, and the poll then returned its results).
    let upstream = mediagate_testkit::mock_upstream::MockUpstream::start().await;
    upstream.on(
        "POST",
        "/v1/images/generations",
        vec![
            mediagate_testkit::mock_upstream::openai_b64_reply(
                1,
                &mediagate_testkit::mock_upstream::png(8, 8, [9, 9, 9]),
            )
            .delay(Duration::from_secs(3)),
        ],
    );
    let s = TestServer::start_with(|c| {
        mediagate_testkit::mock_upstream::serve_image_model_from_mock(c, &upstream.url(""), "test:slow@1")
    })
    .await;
    let c = client(&s);
    let (uuid, bg) =
        start_in_background(&c, ImageInference::new("a slow picture").model("test:slow@1").size(512, 512))
            .await;
    let proxy = FlakyProxy::start(&s.base_url, vec![]).await;
    let poller = client_for(&proxy.base_url, &s.api_key, fast_retries());
    let budget = Duration::from_millis(150);
    let t0 = Instant::now();
    let e = poller
        .wait_with(&Submitted::<ImageInference>::from_task_uuid(uuid), &quick_polls(budget))
        .await
        .unwrap_err();
    let elapsed = t0.elapsed();
    match &e {
        Error::PollBudgetExceeded { polls, last_status, task_uuid, .. } => {
            assert_eq!(last_status, "processing");
            assert_eq!(task_uuid, &uuid.to_string());
            // Every poll sent is counted; one cut short by the budget may not have reached the
            // server (on a loaded machine the last one can be).
            let reached = proxy.request_count();
            assert!(
                reached == *polls as usize || reached + 1 == *polls as usize,
                "{polls} polls, {reached} reached"
            );
            // 20 ms first, then 20, 30, 45, 67 … ms apart: a handful of polls fit in 150 ms.
            assert!((1..=8).contains(polls), "{polls} polls");
        }
        other => panic!("expected PollBudgetExceeded, got {other:?}"),
    }
    assert!(elapsed < budget + Duration::from_secs(2), "{elapsed:?}");
    assert!(!e.is_retryable());
    bg.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_failed_task_ends_polling_with_its_embedded_error() {
    // A model whose outputs may be at most 100 px a side: upscaling 64 px by 2 fails while
    // running (after admission), so the failure is stored and getResponse reports it.
    let s = TestServer::start_with(|cfg| {
        cfg.models.push({
            let mut m = builtin(LANCZOS_AIR);
            m.air = "test:tinyup@1".into();
            m.bounds.upscale_output_max = 100;
            m
        })
    })
    .await;
    let c = client(&s);
    let src = c.run(ImageInference::new("small").size(64, 64)).await.unwrap();
    let task = Upscale::new(&src[0].image_uuid).factor(2).model("test:tinyup@1");
    let uuid = task.task_uuid();
    let sync_err = c.run(task).await.unwrap_err();
    assert_eq!(sync_err.code(), Some(ErrorCode::InvalidParameterValue));

    let items = c.get_response(uuid).await.unwrap();
    assert_eq!(items[0].status, Status::Error);
    let e =
        c.wait_with(&Submitted::<Upscale>::from_task_uuid(uuid), &quick_polls(Duration::from_secs(10))).await;
    let e = e.unwrap_err();
    let a = e.api_error().expect("the embedded error object");
    assert_eq!(a.code, ErrorCode::InvalidParameterValue);
    assert_eq!(a.parameter, Some(Parameter::One("upscaleFactor".into())));
    assert_eq!(a.task_uuid, Some(uuid.to_string()));
    assert_eq!(a.http_status, None, "an embedded error did not decide an HTTP status");
}

#[tokio::test]
async fn an_unknown_task_ends_polling_at_once() {
    let s = TestServer::start().await;
    let c = client(&s);
    let e = c
        .wait_with(
            &Submitted::<ImageInference>::from_task_uuid(Uuid::new_v4()),
            &quick_polls(Duration::from_secs(30)),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::TaskNotFound));
}

/// A client whose polls start after 20 ms.
fn async_client(url: &str, key: &str) -> Client {
    Client::builder()
        .base_url(url)
        .api_key(key)
        .retry(fast_retries())
        .poll(quick_polls(Duration::from_secs(60)))
        .build()
        .unwrap()
}

#[tokio::test]
async fn async_delivery_round_trip_submit_then_poll() {
    let s = TestServer::start().await;
    let proxy = FlakyProxy::start(&s.base_url, vec![]).await;
    let c = async_client(&proxy.base_url, &s.api_key);
    let before = s.balance("default").await;
    let task = ImageInference::new("later please").size(64, 64).include_cost(true).delivery(Delivery::Async);
    let submitted = c.submit(task).await.expect("acknowledged");
    assert!(submitted.is_pending());
    assert_eq!(submitted.ack()[0]["status"], "processing", "{:?}", submitted.ack());
    let images = c.wait(&submitted).await.expect("result");
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].task_uuid, submitted.task_uuid().to_string());
    assert_eq!(images[0].status.as_deref(), Some("success"));
    assert_eq!(images[0].cost, Some(0.0006));
    assert_eq!(s.balance("default").await, before - support::IMAGE_PRICE_MICROS);
    // One submit, then only getResponse polls for the same taskUUID.
    let reqs = proxy.requests();
    assert!(reqs.len() >= 2);
    for r in &reqs[1..] {
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            (v[0]["taskType"].as_str(), v[0]["taskUUID"].as_str()),
            (Some("getResponse"), Some(submitted.task_uuid().to_string().as_str()))
        );
    }
    // `run` does both steps.
    let images =
        c.run(ImageInference::new("again later").size(64, 64).delivery(Delivery::Async)).await.unwrap();
    assert_eq!(images.len(), 1);
}

#[tokio::test]
async fn video_is_async_by_default_and_run_polls_for_it() {
    let s = TestServer::start().await;
    let c = async_client(&s.base_url, &s.api_key);
    let task = VideoInference::new("waves on a shore").size(64, 64).duration(1).fps(4).include_cost(true);
    let uuid = task.task_uuid();
    let videos = c.run(task).await.expect("video");
    assert_eq!(videos.len(), 1);
    assert_eq!(videos[0].task_uuid, uuid.to_string());
    let url = videos[0].video.url().expect("a URL");
    let r = s.http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("video/"));
}

#[tokio::test]
async fn a_lost_async_acknowledgement_is_retried_and_charged_once() {
    let s = TestServer::start().await;
    let proxy = FlakyProxy::start(&s.base_url, vec![Action::ForwardThenDrop]).await;
    let c = async_client(&proxy.base_url, &s.api_key);
    let before = s.balance("default").await;
    let task = ImageInference::new("acknowledge me twice").size(64, 64).delivery(Delivery::Async);
    let images = c.run(task).await.expect("result after a retried submit");
    assert_eq!(images.len(), 1);
    let reqs = proxy.requests();
    assert_eq!(reqs[0].body, reqs[1].body, "the submit was resent byte for byte");
    assert_eq!(s.balance("default").await, before - support::IMAGE_PRICE_MICROS, "charged once");
}

/// A copy of a built-in model's spec, to redefine under another AIR id.
fn builtin(air: &str) -> ModelSpec {
    builtin_models().into_iter().find(|m| m.air == air).expect("a built-in model")
}
