//! Traces over the real protocols, from the `mediagate` binary (its subscriber is per process):
//! OTLP/HTTP protobuf to a receiver standing in for a collector, W3C `traceparent` in from the
//! client, out to the provider (an `openai-images` mock) and to the task's webhook (HTTPS).

use mediagate_testkit::asset_server::{AssetServer, Route};
use mediagate_testkit::mock_upstream::{MockUpstream, openai_b64_reply, png};
use mediagate_testkit::otlp_receiver::{OtlpReceiver, ReceivedSpan};
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::*;

/// The client's trace and its span, as a W3C `traceparent` writes them.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
const MODEL: &str = "test:traced@1";
const PROMPT: &str = "a lighthouse nobody should read in a span";
const GENERATIONS: &str = "/v1/images/generations";

/// What a traced server talks to: a provider, a webhook receiver and a trace collector, served
/// by `rt` while the test drives the server from this thread.
struct Peers {
    rt: tokio::runtime::Runtime,
    upstream: MockUpstream,
    hooks: AssetServer,
    otlp: OtlpReceiver,
}

impl Peers {
    fn start() -> Peers {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (upstream, hooks, otlp) = rt.block_on(async {
            let upstream = MockUpstream::start().await;
            // Slow enough that a provider call outlasts the request that admitted its task.
            let reply = openai_b64_reply(1, &png(64, 64, [9, 8, 7])).delay(Duration::from_millis(500));
            upstream.on("POST", GENERATIONS, vec![reply]);
            let hooks = AssetServer::builder().host("hooks.test").start().await;
            hooks.route("/hook", Route::ok("text/plain", b"ok".to_vec()));
            (upstream, hooks, OtlpReceiver::start().await)
        });
        Peers { rt, upstream, hooks, otlp }
    }

    /// A configuration file: `traces` (TOML, may be empty), the model on the mock upstream, and
    /// the webhook receiver reachable (its name, address and CA).
    fn config(&self, dir: &std::path::Path, traces: &str) -> String {
        let ip = self.hooks.addr().ip();
        let toml = format!(
            r#"
{traces}

[assets]
allowed_networks = ["{ip}/32"]
extra_ca_certs = ["{ca}"]
[assets.resolve]
"hooks.test" = ["{ip}"]

[webhooks]
initial_delay_ms = 20

[[providers.upstreams]]
name = "mock"
kind = "openai-images"
base_url = "{upstream}"
timeout_ms = 60000

[[models]]
air = "{MODEL}"
task_type = "imageInference"
provider = "mock"
price_usd = "0.001"
[models.retry]
attempts = 1
base_ms = 1
cap_ms = 1
deadline_ms = 60000
"#,
            ca = self.hooks.ca_file().display(),
            upstream = self.upstream.base_url,
        );
        let path = dir.join("mediagate.toml");
        std::fs::write(&path, toml).unwrap();
        path.to_str().unwrap().to_string()
    }

    /// The webhook POSTs received so far.
    fn hook_posts(&self) -> Vec<mediagate_testkit::asset_server::SeenRequest> {
        self.hooks.requests().into_iter().filter(|r| r.method == "POST").collect()
    }
}

/// An image task on the mock's model: with a webhook, async (it runs on after the response,
/// detached from the request); without, sync.
fn image_task(id: &str, hook: Option<String>) -> Value {
    let mut t = json!({"taskType": "imageInference", "taskUUID": id, "positivePrompt": PROMPT,
                       "model": MODEL, "width": 512, "height": 512});
    if let Some(url) = hook {
        t["webhookURL"] = json!(url);
        t["deliveryMethod"] = json!("async");
    }
    json!([t])
}

/// `POST /v1` with extra headers.
fn post_with(
    rt: &tokio::runtime::Runtime,
    base: &str,
    key: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    rt.block_on(async {
        let mut r = reqwest::Client::new()
            .post(format!("{base}/v1"))
            .bearer_auth(key)
            .json(body)
            .timeout(Duration::from_secs(60));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let r = r.send().await.expect("request");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    })
}

/// Waits until the task's one webhook delivery is recorded `delivered`.
fn wait_delivered(rt: &tokio::runtime::Runtime, base: &str, key: &str, task: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let b: Value = rt.block_on(async {
            reqwest::Client::new()
                .get(format!("{base}/v1/webhooks/deliveries?taskUUID={task}"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        });
        if b["data"][0]["status"] == "delivered" {
            return;
        }
        assert!(Instant::now() < deadline, "the webhook was never delivered: {b}");
        std::thread::sleep(Duration::from_millis(30));
    }
}

fn one<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    let named: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(named.len(), 1, "one {name} span expected: {spans:#?}");
    named[0]
}

/// The trace id and parent id of a `traceparent` value (`00-<trace>-<parent>-<flags>`).
fn parts(traceparent: &str) -> (String, String) {
    let p: Vec<&str> = traceparent.split('-').collect();
    assert_eq!((p.len(), p[0]), (4, "00"), "not a W3C traceparent: {traceparent}");
    (p[1].to_string(), p[2].to_string())
}

#[test]
fn a_clients_trace_runs_through_the_request_the_provider_call_and_the_webhook() {
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let traces = format!(
        "[traces]\notlp_endpoint = \"{}\"\nservice_name = \"mediagate-under-test\"\n",
        peers.otlp.base_url
    );
    let cfg = peers.config(dir.path(), &traces);
    // A `warn` log filter must not keep spans from the exporter (only the webhook's last line is
    // logged, for the test to know when its span has ended); and a batch delay longer than the
    // test, so that what arrives was sent by the flush at shutdown.
    let mut s = Server::start(
        &dir.path().join("data"),
        &[("MEDIAGATE_LOG", "warn,mediagate_engine::webhooks=info"), ("OTEL_BSP_SCHEDULE_DELAY", "600000")],
        &["--config", &cfg],
    );
    let key = s.banner_key().unwrap();
    let rt = &peers.rt;

    // With the client's trace context, async (the task runs on after the reply) with a webhook.
    let id = uuid::Uuid::new_v4().to_string();
    let traceparent = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    let (st, b) = post_with(
        rt,
        &s.base,
        &key,
        &image_task(&id, Some(peers.hooks.url("/hook"))),
        &[("traceparent", &traceparent), ("tracestate", "vendor=opaque")],
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(
        (&b["data"][0]["taskUUID"], &b["data"][0]["status"]),
        (&json!(id), &json!("processing")),
        "{b}"
    );
    wait_delivered(rt, &s.base, &key, &id);
    // Without one: a trace of the server's own, still carried to the provider.
    let (st, b) = post_with(rt, &s.base, &key, &image_task(&uuid::Uuid::new_v4().to_string(), None), &[]);
    assert_eq!(st, 200, "{b}");
    // The spans close when their work does; the last, the webhook's, just after this line.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s.log_text().contains("webhook delivery ended") {
        assert!(Instant::now() < deadline, "{}", s.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(peers.otlp.exports(), 0, "nothing is exported before the batch delay or the shutdown");
    s.signal("-TERM");
    assert!(s.wait().success(), "{}", s.log_text());

    // (a) One trace: the client's span → request → task → provider call and webhook delivery.
    let spans = peers.otlp.trace(TRACE_ID);
    let request = one(&spans, "request");
    assert_eq!(request.parent_span_id, CLIENT_SPAN, "the request continues the client's span");
    assert_eq!(request.kind, 2, "a server span");
    assert_eq!((request.attr("route"), request.attr("dialect")), (Some("/v1"), Some("runware")));
    assert_eq!(request.service_name, "mediagate-under-test");
    let task = one(&spans, "task");
    assert_eq!(task.parent_span_id, request.span_id);
    assert_eq!((task.attr("task_uuid"), task.attr("task_type")), (Some(id.as_str()), Some("imageInference")));
    let call = one(&spans, "provider.call");
    assert_eq!(call.parent_span_id, task.span_id);
    assert_eq!(call.kind, 3, "a client span");
    assert_eq!(
        (call.attr("provider"), call.attr("model"), call.attr("task_type"), call.attr("outcome")),
        (Some("mock"), Some(MODEL), Some("imageInference"), Some("success")),
        "{call:#?}"
    );
    // The request ended with its reply, not with the task it admitted (which kept it open).
    assert!(call.duration() >= Duration::from_millis(500), "{call:#?}");
    assert!(
        request.duration() < call.duration(),
        "request {:?}, call {:?}",
        request.duration(),
        call.duration()
    );
    assert!(request.end_unix_nano < call.end_unix_nano);
    let hook = one(&spans, "webhook.deliver");
    assert_eq!(hook.parent_span_id, task.span_id, "the delivery belongs to the task's trace");
    assert_eq!((hook.kind, hook.attr("outcome"), hook.attr("attempts")), (3, Some("delivered"), Some("1")));

    // (b) The provider got the provider call's context: same trace, that span as its parent.
    let calls = peers.upstream.requests("POST", GENERATIONS);
    assert_eq!(calls.len(), 2);
    let sent = calls[0].headers.get("traceparent").expect("the provider call carries traceparent");
    assert_eq!(parts(sent), (TRACE_ID.to_string(), call.span_id.clone()), "{sent}");
    assert_eq!(calls[0].headers.get("tracestate").map(String::as_str), Some("vendor=opaque"));

    // (c) So did the webhook.
    let posts = peers.hook_posts();
    assert_eq!(posts.len(), 1);
    let sent = posts[0].header("traceparent").expect("the webhook carries traceparent");
    assert_eq!(parts(sent), (TRACE_ID.to_string(), hook.span_id.clone()), "{sent}");

    // The request without a context began a trace of its own, which reached the provider too.
    let all = peers.otlp.spans();
    let (other, _) = parts(calls[1].headers.get("traceparent").expect("a new trace is propagated too"));
    assert_ne!(other, TRACE_ID);
    let own = peers.otlp.trace(&other);
    assert_eq!(one(&own, "request").parent_span_id, "", "a root span: {own:#?}");
    assert_eq!(one(&own, "provider.call").attr("outcome"), Some("success"));

    // Only OTLP protobuf was sent, and no span carries the key or the prompt.
    assert!(peers.otlp.content_types().iter().all(|c| c == "application/x-protobuf"));
    for span in &all {
        for (k, v) in &span.attributes {
            assert!(!v.contains(&key[4..40]) && !v.contains(PROMPT), "{}: {k} = {v}", span.name);
        }
    }
}

#[test]
fn with_traces_off_nothing_is_exported_or_propagated() {
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = peers.config(dir.path(), "");
    let mut s = Server::start(&dir.path().join("data"), &[], &["--config", &cfg]);
    let key = s.banner_key().unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    let traceparent = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    let (st, b) = post_with(
        &peers.rt,
        &s.base,
        &key,
        &image_task(&id, Some(peers.hooks.url("/hook"))),
        &[("traceparent", &traceparent)],
    );
    assert_eq!(st, 200, "{b}");
    wait_delivered(&peers.rt, &s.base, &key, &id);
    s.signal("-TERM");
    assert!(s.wait().success());
    let calls = peers.upstream.requests("POST", GENERATIONS);
    assert_eq!(calls.len(), 1);
    assert!(!calls[0].headers.contains_key("traceparent"), "{:?}", calls[0].headers);
    let posts = peers.hook_posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].header("traceparent"), None);
    assert_eq!(peers.otlp.exports(), 0);
    assert!(!s.log_text().contains("exporting traces"), "{}", s.log_text());
}

#[test]
fn traces_settings_out_of_range_are_refused_with_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("mediagate.toml");
    for (toml, said) in [
        ("[traces]\nsample_ratio = 1.5\n", "traces.sample_ratio must be between 0.0 and 1.0 (got 1.5)"),
        ("[traces]\nsample_ratio = -0.1\n", "traces.sample_ratio must be between 0.0 and 1.0"),
        (
            "[traces]\notlp_endpoint = \"collector:4318\"\n",
            "traces.otlp_endpoint must be an http:// or https:// URL",
        ),
        ("[traces]\notlp_endpoint = \"http://c:4318\"\nexport_timeout_ms = 0\n", "traces.export_timeout_ms"),
    ] {
        std::fs::write(&cfg, toml).unwrap();
        let o =
            Command::new(BIN).args(["--config", cfg.to_str().unwrap(), "docs", "config"]).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{toml}");
        assert!(stderr(&o).contains(said), "{toml}: {}", stderr(&o));
    }
    // In range, and shown by `docs config` with its defaults.
    std::fs::write(&cfg, "[traces]\nsample_ratio = 0.25\n").unwrap();
    let o = Command::new(BIN).args(["--config", cfg.to_str().unwrap(), "docs", "config"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let shown = stdout(&o);
    assert!(shown.contains("[traces]") && shown.contains("sample_ratio = 0.25"), "{shown}");
    assert!(shown.contains("service_name = \"mediagate\""), "{shown}");
}
