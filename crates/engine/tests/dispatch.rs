//! The dispatcher's retry arithmetic, fallback order, breaker transitions, deadline and
//! cancellation, against in-process fake providers on tokio's paused clock (so every backoff is
//! checked to the millisecond without waiting for it).

use async_trait::async_trait;
use mediagate_core::ErrorCode;
use mediagate_core::model::{ModelSpec, RetryPolicy, builtin_models};
use mediagate_core::task::{ImageInference, OutputOptions, TaskRequest, TaskType};
use mediagate_engine::dispatch::Dispatcher;
use mediagate_engine::dispatch::breaker::{BreakerConfig, BreakerState};
use mediagate_engine::dispatch::retry::Jitter;
use mediagate_providers::{
    Artifact, Capabilities, Delivery, Failure, Job, JobHandle, Progress, ProgressFn, Provider, ProviderError,
    Submitted, no_progress,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// What a fake provider does on each call (the last step repeats).
#[derive(Clone)]
enum Step {
    Ok,
    Fail(ProviderError),
    /// Accept the job, then report progress and finish after this long.
    Pending(Duration),
}

struct Fake {
    name: String,
    steps: Vec<Step>,
    calls: AtomicUsize,
    cancels: AtomicUsize,
    log: Arc<Mutex<Vec<(String, Instant)>>>,
}

impl Fake {
    fn new(name: &str, steps: Vec<Step>, log: &Arc<Mutex<Vec<(String, Instant)>>>) -> Arc<Fake> {
        Arc::new(Fake {
            name: name.into(),
            steps,
            calls: AtomicUsize::new(0),
            cancels: AtomicUsize::new(0),
            log: log.clone(),
        })
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn artifact() -> Artifact {
    Artifact {
        bytes: b"\x89PNG fake".to_vec(),
        content_type: "image/png",
        extension: "png",
        seed: Some(1),
        completion: None,
        fields: Default::default(),
    }
}

#[async_trait]
impl Provider for Fake {
    fn name(&self) -> &str {
        &self.name
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities { task_types: vec![TaskType::ImageInference], models: vec![], delivery: Delivery::Poll }
    }
    async fn submit(&self, _job: Arc<Job>) -> Result<Submitted, ProviderError> {
        let i = self.calls.fetch_add(1, Ordering::SeqCst);
        self.log.lock().unwrap().push((self.name.clone(), Instant::now()));
        match self.steps[i.min(self.steps.len() - 1)].clone() {
            Step::Ok => Ok(Submitted::Done(vec![artifact()])),
            Step::Fail(e) => Err(e),
            Step::Pending(d) => Ok(Submitted::Pending(JobHandle {
                ids: vec![format!("job{i}")],
                context: format!("{}", d.as_millis()),
            })),
        }
    }
    async fn wait(&self, h: &JobHandle, progress: &ProgressFn) -> Result<Vec<Artifact>, ProviderError> {
        let total = Duration::from_millis(h.context.parse().unwrap());
        progress(Progress { fraction: 0.5 });
        tokio::time::sleep(total).await;
        progress(Progress { fraction: 1.0 });
        Ok(vec![artifact()])
    }
    async fn cancel(&self, _h: &JobHandle) -> Result<(), ProviderError> {
        self.cancels.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn transient(code: ErrorCode) -> ProviderError {
    ProviderError::new(code, "transient", "fake transient")
}

fn unavailable() -> Step {
    Step::Fail(transient(ErrorCode::ProviderError))
}

fn spec(chain: &[&str], retry: RetryPolicy) -> ModelSpec {
    let mut s = builtin_models().into_iter().next().unwrap();
    s.air = "test:model@1".into();
    s.provider = chain[0].into();
    s.fallback = chain[1..].iter().map(|s| s.to_string()).collect();
    s.retry = retry;
    s
}

fn policy(attempts: u32, base_ms: u64, cap_ms: u64, deadline_ms: u64) -> RetryPolicy {
    RetryPolicy { attempts, base_ms, cap_ms, deadline_ms }
}

fn job() -> Job {
    Job {
        account_id: 1,
        request: TaskRequest::ImageInference(ImageInference {
            positive_prompt: "a test".into(),
            negative_prompt: None,
            model: "test:model@1".into(),
            width: 64,
            height: 64,
            steps: None,
            cfg_scale: None,
            seed: Some(1),
            number_results: 1,
            output: OutputOptions::default(),
            ..ImageInference::default()
        }),
        inputs: vec![],
        seeds: vec![1],
    }
}

/// Jitter pinned to the ceiling, so backoffs are exactly `min(cap, base·2^(n-1))`.
fn max_jitter() -> Jitter {
    Arc::new(|c| c)
}

fn dispatcher(fakes: &[&Arc<Fake>], breakers: &[(&str, BreakerConfig)]) -> Dispatcher {
    let providers: HashMap<String, Arc<dyn Provider>> =
        fakes.iter().map(|f| (f.name.clone(), Arc::clone(f) as Arc<dyn Provider>)).collect();
    let breakers = breakers.iter().map(|(n, c)| (n.to_string(), *c)).collect();
    Dispatcher::new(providers, breakers).with_jitter(max_jitter())
}

fn log() -> Arc<Mutex<Vec<(String, Instant)>>> {
    Arc::new(Mutex::new(Vec::new()))
}

/// Offsets of each call from `t0`, in ms, with the provider's name.
fn timeline(log: &Arc<Mutex<Vec<(String, Instant)>>>, t0: Instant) -> Vec<(String, u128)> {
    log.lock().unwrap().iter().map(|(n, t)| (n.clone(), (*t - t0).as_millis())).collect()
}

#[tokio::test(start_paused = true)]
async fn two_transient_failures_then_success_is_three_calls_with_exact_backoff() {
    let l = log();
    let a = Fake::new("a", vec![unavailable(), unavailable(), Step::Ok], &l);
    let d = dispatcher(&[&a], &[]);
    let t0 = Instant::now();
    let out = d.dispatch(&spec(&["a"], policy(5, 100, 10_000, 60_000)), job(), no_progress()).await.unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(a.calls(), 3);
    // Backoff ceilings 100 ms then 200 ms, pinned at the ceiling.
    assert_eq!(timeline(&l, t0), vec![("a".into(), 0), ("a".into(), 100), ("a".into(), 300)]);
}

#[tokio::test(start_paused = true)]
async fn backoff_is_capped_and_attempts_are_bounded() {
    let l = log();
    let a = Fake::new("a", vec![unavailable()], &l);
    let d = dispatcher(&[&a], &[]);
    let t0 = Instant::now();
    let e = d.dispatch(&spec(&["a"], policy(5, 100, 250, 60_000)), job(), no_progress()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::ProviderError);
    assert_eq!(a.calls(), 5);
    // 100, 200, then capped at 250 twice.
    let t: Vec<u128> = timeline(&l, t0).into_iter().map(|(_, t)| t).collect();
    assert_eq!(t, vec![0, 100, 300, 550, 800]);
}

#[tokio::test(start_paused = true)]
async fn jitter_picks_the_wait_within_the_ceiling() {
    let l = log();
    let a = Fake::new("a", vec![unavailable(), unavailable(), Step::Ok], &l);
    // A jitter that takes a quarter of the ceiling: waits 25 ms then 50 ms.
    let d = dispatcher(&[&a], &[]).with_jitter(Arc::new(|c| c / 4));
    let t0 = Instant::now();
    d.dispatch(&spec(&["a"], policy(3, 100, 1_000, 60_000)), job(), no_progress()).await.unwrap();
    let t: Vec<u128> = timeline(&l, t0).into_iter().map(|(_, t)| t).collect();
    assert_eq!(t, vec![0, 25, 75]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_longer_than_the_backoff_is_honoured() {
    let l = log();
    let limited =
        transient(ErrorCode::ProviderRateLimitExceeded).with_retry_after(Some(Duration::from_secs(3)));
    let short =
        transient(ErrorCode::ProviderRateLimitExceeded).with_retry_after(Some(Duration::from_millis(10)));
    let a = Fake::new("a", vec![Step::Fail(limited), Step::Fail(short), Step::Ok], &l);
    let d = dispatcher(&[&a], &[]);
    let t0 = Instant::now();
    d.dispatch(&spec(&["a"], policy(3, 100, 1_000, 60_000)), job(), no_progress()).await.unwrap();
    // 3 s (Retry-After beats the 100 ms backoff), then 200 ms (backoff beats 10 ms).
    let t: Vec<u128> = timeline(&l, t0).into_iter().map(|(_, t)| t).collect();
    assert_eq!(t, vec![0, 3_000, 3_200]);
}

#[tokio::test(start_paused = true)]
async fn request_failures_are_not_retried_nor_sent_to_the_fallback() {
    let l = log();
    let refused = ProviderError::new(ErrorCode::ProviderContentPolicyViolation, "refused", "policy");
    assert_eq!(refused.failure, Failure::Request);
    let a = Fake::new("a", vec![Step::Fail(refused)], &l);
    let b = Fake::new("b", vec![Step::Ok], &l);
    let d = dispatcher(&[&a, &b], &[]);
    let e = d
        .dispatch(&spec(&["a", "b"], policy(3, 100, 1_000, 60_000)), job(), no_progress())
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ProviderContentPolicyViolation);
    assert_eq!((a.calls(), b.calls()), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn fallbacks_run_in_order_each_with_its_own_attempts() {
    let l = log();
    let a = Fake::new("a", vec![unavailable()], &l);
    let b = Fake::new("b", vec![Step::Fail(ProviderError::operator("creds", "401 from b"))], &l);
    let c = Fake::new("c", vec![unavailable(), Step::Ok], &l);
    let unused = Fake::new("unused", vec![Step::Ok], &l);
    let d = dispatcher(&[&a, &b, &c, &unused], &[]);
    let t0 = Instant::now();
    d.dispatch(&spec(&["a", "b", "c", "unused"], policy(2, 100, 1_000, 60_000)), job(), no_progress())
        .await
        .unwrap();
    // a: two tries 100 ms apart; b: an operator-side failure is not retried; c: retried once.
    // No backoff between providers.
    assert_eq!(
        timeline(&l, t0),
        vec![("a".into(), 0), ("a".into(), 100), ("b".into(), 100), ("c".into(), 100), ("c".into(), 200)]
    );
    assert_eq!(unused.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_last_failure_is_reported_when_every_provider_fails() {
    let l = log();
    let a = Fake::new("a", vec![Step::Fail(transient(ErrorCode::TimeoutProvider))], &l);
    let b = Fake::new("b", vec![Step::Fail(transient(ErrorCode::ProviderRateLimitExceeded))], &l);
    let d = dispatcher(&[&a, &b], &[]);
    let e = d
        .dispatch(&spec(&["a", "b"], policy(1, 100, 1_000, 60_000)), job(), no_progress())
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ProviderRateLimitExceeded);
    assert_eq!((a.calls(), b.calls()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_past_the_deadline_moves_on_at_once() {
    let l = log();
    let limited =
        transient(ErrorCode::ProviderRateLimitExceeded).with_retry_after(Some(Duration::from_secs(120)));
    let a = Fake::new("a", vec![Step::Fail(limited)], &l);
    let b = Fake::new("b", vec![Step::Ok], &l);
    let d = dispatcher(&[&a, &b], &[]);
    let t0 = Instant::now();
    d.dispatch(&spec(&["a", "b"], policy(3, 100, 1_000, 60_000)), job(), no_progress()).await.unwrap();
    assert_eq!(timeline(&l, t0), vec![("a".into(), 0), ("b".into(), 0)]);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_abandons_a_running_job_and_cancels_it_upstream() {
    let l = log();
    let a = Fake::new("a", vec![Step::Pending(Duration::from_secs(600))], &l);
    let d = dispatcher(&[&a], &[]);
    let t0 = Instant::now();
    let e = d.dispatch(&spec(&["a"], policy(3, 100, 1_000, 5_000)), job(), no_progress()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::TimeoutProvider);
    assert_eq!(Instant::now() - t0, Duration::from_secs(5), "fails exactly at the deadline");
    assert_eq!(a.calls(), 1, "a deadline is not retried");
    // The cancel runs on a spawned task: let it.
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(a.cancels.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_dispatch_cancels_its_pending_job_and_success_does_not() {
    let l = log();
    let a = Fake::new("a", vec![Step::Pending(Duration::from_secs(10))], &l);
    let d = Arc::new(dispatcher(&[&a], &[]));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let progress: ProgressFn = Arc::new(move |p| s2.lock().unwrap().push(p.fraction));
    // Completed: progress forwarded, nothing cancelled.
    d.dispatch(&spec(&["a"], policy(1, 1, 1, 60_000)), job(), progress).await.unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![0.5, 1.0]);
    assert_eq!(a.cancels.load(Ordering::SeqCst), 0);
    // Abandoned by the caller (e.g. the client went away): the job is cancelled upstream.
    let d2 = d.clone();
    let running = tokio::spawn(async move {
        d2.dispatch(&spec(&["a"], policy(1, 1, 1, 60_000)), job(), no_progress()).await
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    running.abort();
    let _ = running.await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(a.cancels.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_sends_traffic_straight_to_the_fallback_then_one_probe_closes_it() {
    let l = log();
    let a = Fake::new("a", vec![unavailable(), unavailable(), Step::Ok], &l);
    let b = Fake::new("b", vec![Step::Ok], &l);
    let cfg = BreakerConfig { failures: 2, cooldown: Duration::from_secs(30) };
    let d = dispatcher(&[&a, &b], &[("a", cfg)]);
    let s = spec(&["a", "b"], policy(2, 100, 1_000, 60_000));

    // Task 1: two failures on a (opening its circuit), then b.
    d.dispatch(&s, job(), no_progress()).await.unwrap();
    assert_eq!((a.calls(), b.calls()), (2, 1));
    assert_eq!(d.breaker_state("a"), Some(BreakerState::Open(Duration::from_secs(30))));

    // Task 2, circuit open: zero calls to a.
    d.dispatch(&s, job(), no_progress()).await.unwrap();
    assert_eq!((a.calls(), b.calls()), (2, 2));

    // Without a fallback an open circuit fails fast, saying when to come back.
    let alone = spec(&["a"], policy(2, 100, 1_000, 60_000));
    let e = d.dispatch(&alone, job(), no_progress()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::ProviderError);
    assert_eq!(e.retry_after, Some(Duration::from_secs(30)));
    assert_eq!(a.calls(), 2);

    // After the cool-down one probe goes to a; it succeeds and closes the circuit.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(d.breaker_state("a"), Some(BreakerState::HalfOpen));
    d.dispatch(&s, job(), no_progress()).await.unwrap();
    assert_eq!((a.calls(), b.calls()), (3, 2));
    assert_eq!(d.breaker_state("a"), Some(BreakerState::Closed(0)));
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_the_circuit() {
    let l = log();
    let a = Fake::new("a", vec![unavailable()], &l);
    let b = Fake::new("b", vec![Step::Ok], &l);
    let cfg = BreakerConfig { failures: 1, cooldown: Duration::from_secs(10) };
    let d = dispatcher(&[&a, &b], &[("a", cfg)]);
    let s = spec(&["a", "b"], policy(3, 100, 1_000, 60_000));
    d.dispatch(&s, job(), no_progress()).await.unwrap();
    // One failure opened it, so the remaining attempts on a were skipped.
    assert_eq!((a.calls(), b.calls()), (1, 1));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let t1 = Instant::now();
    d.dispatch(&s, job(), no_progress()).await.unwrap();
    assert_eq!((a.calls(), b.calls()), (2, 2), "one probe, failed, then the fallback");
    // The failed probe re-opened the circuit: no backoff before the fallback.
    assert_eq!(timeline(&l, t1)[2..], [("a".to_string(), 0), ("b".to_string(), 0)]);
    assert_eq!(d.breaker_state("a"), Some(BreakerState::Open(Duration::from_secs(10))));
}

#[tokio::test(start_paused = true)]
async fn routes_are_checked_against_capabilities() {
    let l = log();
    let a = Fake::new("a", vec![Step::Ok], &l);
    let d = dispatcher(&[&a], &[]);
    assert!(d.check_route(&spec(&["a"], RetryPolicy::default())).is_ok());
    let err = d.check_route(&spec(&["a", "nope"], RetryPolicy::default())).unwrap_err();
    assert!(err.contains("'nope' is not configured"), "{err}");
    let mut upscale = spec(&["a"], RetryPolicy::default());
    upscale.task_type = TaskType::Upscale;
    assert!(d.check_route(&upscale).unwrap_err().contains("does not serve"));
}

/// Issue 16 point 17: a refused call said "circuit open for 0ns" while a half-open probe ran.
/// The refusal now says what is going on: the cooldown left, or that a probe is testing.
#[tokio::test(start_paused = true)]
async fn hardening_a_refused_call_names_the_cooldown_left_or_the_running_probe() {
    let l = log();
    let a = Fake::new("a", vec![unavailable(), Step::Pending(Duration::from_secs(5))], &l);
    let cfg = BreakerConfig { failures: 1, cooldown: Duration::from_secs(10) };
    let d = Arc::new(dispatcher(&[&a], &[("a", cfg)]));
    let alone = spec(&["a"], policy(1, 100, 1_000, 60_000));
    d.dispatch(&alone, job(), no_progress()).await.unwrap_err();
    // Open: the detail (logged) and Retry-After carry the cooldown left.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let e = d.dispatch(&alone, job(), no_progress()).await.unwrap_err();
    assert!(e.detail.contains("6.0 s of cooldown left"), "{}", e.detail);
    assert_eq!(e.retry_after, Some(Duration::from_secs(6)));
    // Half-open with the probe running: no duration is known, and none is made up.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (d2, s2) = (d.clone(), alone.clone());
    let probe = tokio::spawn(async move { d2.dispatch(&s2, job(), no_progress()).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let e = d.dispatch(&alone, job(), no_progress()).await.unwrap_err();
    assert!(e.detail.contains("a probe request is testing the provider"), "{}", e.detail);
    assert!(!e.detail.contains("0ns"), "{}", e.detail);
    assert_eq!(e.retry_after, None);
    probe.await.unwrap().unwrap();
    assert_eq!(a.calls(), 2, "the refused calls never reached the provider");
}
