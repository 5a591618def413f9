//! `provider_overhead`: what routing an `imageInference` through mediagate's `openai-images`
//! adapter adds on top of calling the upstream directly.
//!
//! One process runs the testkit's mock OpenAI-images upstream (its own thread) and a load
//! generator (another thread); a real `mediagate serve` process is configured with one
//! `openai-images` upstream pointing at the mock and one model routed to it. The generator
//! drives, **interleaved in one run**, the mock directly (`POST /v1/images/generations`) and
//! mediagate (`POST /v1` with an `imageInference` task for that model), in rounds, at each
//! concurrency (keep-alive HTTP/1.1 connections, one request in flight per connection). The
//! direct and gateway phases alternate order every round so drift affects both alike.
//!
//! Added latency = a percentile through mediagate minus the same percentile direct. A fourth
//! phase per round alternates: each worker sends a direct request, then a gateway one, on two
//! connections, so the two histograms sample the same moments of a noisy machine (`direct*`,
//! `gateway*`). Throughput
//! is the best gateway phase. A third target, `adapter`, runs the same task in this process
//! through the engine's `Dispatcher` and the `openai-images` adapter only (no HTTP edge, no
//! admission, no persistence), to show which part of the added latency is the provider layer. At the end every successful gateway reply must have a `success`
//! row in `<data_dir>/mediagate.db` table `tasks`, and the mock must have served exactly one
//! upstream call per gateway task plus the direct calls.
//!
//! ```sh
//! cargo build --release -p mediagate -p mediagate-bench
//! target/release/provider_overhead --duration 5 --rounds 3
//! ```

#[allow(dead_code)]
#[path = "../../../testkit/src/mock_upstream.rs"]
mod mock_upstream;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use mediagate_bench::server::Server;
use mediagate_core::model::{ModelSpec, builtin_models};
use mediagate_core::task::{ImageInference, OutputOptions, TaskRequest};
use mediagate_engine::dispatch::Dispatcher;
use mediagate_providers::upstream::{UpstreamConfig, UpstreamKind, build};
use mediagate_providers::{Job, no_progress};
use mock_upstream::{MockUpstream, openai_b64_reply, png};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const AIR: &str = "bench:openai-mock@1";
const GEN: &str = "/v1/images/generations";

/// Measure mediagate's provider overhead against a direct call to the mock upstream.
#[derive(Parser)]
struct Args {
    /// Seconds per phase (one target at one concurrency in one round).
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Interleaved rounds.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    concurrency: Vec<usize>,
    /// The server binary (default: `mediagate` next to this binary).
    #[arg(long)]
    mediagate: Option<PathBuf>,
    /// The server's log filter (`MEDIAGATE_LOG`).
    #[arg(long, default_value = "info")]
    log: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Target {
    Direct,
    Gateway,
    Adapter,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Direct => "direct",
            Target::Gateway => "gateway",
            Target::Adapter => "adapter",
        }
    }
}

/// The provider layer alone: a dispatcher over one `openai-images` adapter.
struct Layer {
    dispatcher: Dispatcher,
    spec: ModelSpec,
}

fn layer(mock_base: &str) -> Result<Layer> {
    let cfg = UpstreamConfig {
        name: "mock-openai".into(),
        kind: UpstreamKind::OpenaiImages,
        base_url: mock_base.into(),
        timeout_ms: 10_000,
        ..UpstreamConfig::default()
    };
    let provider = build(&cfg).map_err(anyhow::Error::msg)?;
    let dispatcher =
        Dispatcher::new([("mock-openai".to_string(), provider)].into_iter().collect(), Default::default());
    let mut spec = builtin_models().into_iter().next().context("a built-in model")?;
    spec.air = AIR.into();
    spec.provider = "mock-openai".into();
    Ok(Layer { dispatcher, spec })
}

fn job() -> Job {
    Job {
        account_id: 1,
        request: TaskRequest::ImageInference(ImageInference {
            positive_prompt: "benchmark tile".into(),
            negative_prompt: None,
            model: AIR.into(),
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

async fn adapter_worker(layer: std::rc::Rc<Layer>, until: Instant) -> Result<Outcome> {
    let mut hist = new_hist();
    let (mut ok, mut failed) = (0, 0);
    let start = Instant::now();
    while Instant::now() < until {
        let t0 = Instant::now();
        let r = layer.dispatcher.dispatch(&layer.spec, job(), no_progress()).await;
        hist.record(t0.elapsed().as_micros().max(1) as u64)?;
        match r {
            Ok(a) if a.len() == 1 => ok += 1,
            other => {
                failed += 1;
                if failed == 1 {
                    eprintln!("first adapter failure: {:?}", other.err());
                }
            }
        }
    }
    Ok(Outcome { hist, ok, failed, elapsed: start.elapsed() })
}

struct Outcome {
    hist: Histogram<u64>,
    ok: u64,
    failed: u64,
    elapsed: Duration,
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A keep-alive HTTP/1.1 connection to `addr`.
async fn connect(addr: &str) -> Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (send, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(io).await?;
    tokio::spawn(conn);
    Ok(send)
}

/// The same upstream request the adapter sends for a 64x64 task.
const DIRECT_BODY: &[u8] =
    br#"{"prompt":"benchmark tile","n":1,"size":"64x64","response_format":"b64_json"}"#;

/// One request to `target` over `send`; records its latency in `out`.
async fn one_request(
    send: &mut Sender,
    host: &str,
    auth: &str,
    target: Target,
    out: &mut Outcome,
) -> Result<()> {
    let req = match target {
        Target::Direct => Request::post(GEN)
            .header("host", host)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(DIRECT_BODY)))?,
        Target::Gateway | Target::Adapter => Request::post("/v1")
            .header("host", host)
            .header("authorization", auth)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(format!(
                r#"[{{"taskType":"imageInference","taskUUID":"{}","positivePrompt":"benchmark tile","model":"{AIR}","width":64,"height":64,"outputType":"base64Data","outputFormat":"PNG"}}]"#,
                uuid::Uuid::new_v4()
            ))))?,
    };
    let t0 = Instant::now();
    let resp = send.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    out.hist.record(t0.elapsed().as_micros().max(1) as u64)?;
    let good = status == 200
        && match target {
            Target::Direct => body.windows(8).any(|w| w == b"b64_json"),
            Target::Gateway | Target::Adapter => {
                !body.windows(8).any(|w| w == b"\"errors\"")
                    && body.windows(15).any(|w| w == b"imageBase64Data")
            }
        };
    if good {
        out.ok += 1;
    } else {
        out.failed += 1;
        if out.failed == 1 {
            eprintln!("first failure: {status} {}", String::from_utf8_lossy(&body[..body.len().min(400)]));
        }
    }
    Ok(())
}

fn empty() -> Outcome {
    Outcome { hist: new_hist(), ok: 0, failed: 0, elapsed: Duration::ZERO }
}

async fn worker(addr: String, key: String, target: Target, until: Instant) -> Result<Outcome> {
    let mut send = connect(&addr).await?;
    let auth = format!("Bearer {key}");
    let mut out = empty();
    let start = Instant::now();
    while Instant::now() < until {
        one_request(&mut send, &addr, &auth, target, &mut out).await?;
    }
    out.elapsed = start.elapsed();
    Ok(out)
}

/// One connection to the mock and one to mediagate, used in turn: every gateway request has a
/// direct one just before it, so both see the same moment of the machine (a VM's scheduling
/// noise changes from second to second, more than phases of several seconds can average out).
async fn alternating_worker(
    mock_addr: String,
    gateway_addr: String,
    key: String,
    until: Instant,
) -> Result<(Outcome, Outcome)> {
    let (mut direct, mut gateway) = (connect(&mock_addr).await?, connect(&gateway_addr).await?);
    let auth = format!("Bearer {key}");
    let (mut d, mut g) = (empty(), empty());
    let start = Instant::now();
    while Instant::now() < until {
        one_request(&mut direct, &mock_addr, &auth, Target::Direct, &mut d).await?;
        one_request(&mut gateway, &gateway_addr, &auth, Target::Gateway, &mut g).await?;
    }
    d.elapsed = start.elapsed();
    g.elapsed = d.elapsed;
    Ok((d, g))
}

/// Adds `o` into `total`.
fn merge(total: &mut Outcome, o: &Outcome) -> Result<()> {
    total.hist.add(&o.hist)?;
    total.ok += o.ok;
    total.failed += o.failed;
    total.elapsed = total.elapsed.max(o.elapsed);
    Ok(())
}

/// `concurrency` alternating workers for `secs`: (direct, gateway).
fn run_alternating(
    rt: &tokio::runtime::Runtime,
    mock_addr: &str,
    gateway_addr: &str,
    key: &str,
    concurrency: usize,
    secs: f64,
) -> Result<(Outcome, Outcome)> {
    let local = tokio::task::LocalSet::new();
    local.block_on(rt, async {
        let until = Instant::now() + Duration::from_secs_f64(secs);
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                tokio::task::spawn_local(alternating_worker(
                    mock_addr.to_string(),
                    gateway_addr.to_string(),
                    key.to_string(),
                    until,
                ))
            })
            .collect();
        let (mut d, mut g) = (empty(), empty());
        for t in tasks {
            let (od, og) = t.await??;
            merge(&mut d, &od)?;
            merge(&mut g, &og)?;
        }
        Ok((d, g))
    })
}

fn run_phase(
    rt: &tokio::runtime::Runtime,
    layer: &std::rc::Rc<Layer>,
    addr: &str,
    key: &str,
    target: Target,
    concurrency: usize,
    secs: f64,
) -> Result<Outcome> {
    let local = tokio::task::LocalSet::new();
    local.block_on(rt, async {
        let until = Instant::now() + Duration::from_secs_f64(secs);
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| match target {
                Target::Adapter => tokio::task::spawn_local(adapter_worker(layer.clone(), until)),
                _ => tokio::task::spawn_local(worker(addr.to_string(), key.to_string(), target, until)),
            })
            .collect();
        let mut total = empty();
        for t in tasks {
            merge(&mut total, &t.await??)?;
        }
        Ok(total)
    })
}

/// CPU time (user + system) a process has used so far, from /proc.
fn cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // Clock ticks of 1/100 s on every mainstream Linux configuration.
    Duration::from_millis(ticks * 10)
}

fn persisted(server: &Server) -> Result<u64> {
    let db = rusqlite::Connection::open(server.database())?;
    Ok(db.query_row(
        "SELECT COUNT(*) FROM tasks WHERE task_type = 'imageInference' AND model = ?1 AND status = 'success'",
        [AIR],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn main() -> Result<()> {
    let args = Args::parse();
    let bin = match args.mediagate {
        Some(b) => b,
        None => std::env::current_exe()?.with_file_name("mediagate"),
    };

    // The mock upstream on its own thread and single-threaded runtime.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let mock = MockUpstream::serve(listener);
            mock.count_only();
            mock.on("POST", GEN, vec![openai_b64_reply(1, &png(64, 64, [40, 90, 160]))]);
            let (calls_tx, calls_rx) = std::sync::mpsc::channel::<std::sync::mpsc::Sender<usize>>();
            tx.send((mock.base_url.clone(), calls_tx)).expect("send");
            // Answer call-count queries from the main thread until it hangs up.
            loop {
                match calls_rx.try_recv() {
                    Ok(reply) => {
                        let _ = reply.send(mock.calls("POST", GEN));
                    }
                    Err(std::sync::mpsc::TryRecvError::Empty) => {
                        tokio::time::sleep(Duration::from_millis(20)).await
                    }
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => break,
                }
            }
        });
    });
    let (mock_base, calls_tx) = rx.recv()?;
    let mock_calls = || -> Result<usize> {
        let (t, r) = std::sync::mpsc::channel();
        calls_tx.send(t)?;
        Ok(r.recv()?)
    };
    let mock_addr = mock_base.trim_start_matches("http://").to_string();

    let server = Server::start(&bin, |dir, cmd| {
        let config = dir.join("mediagate.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[[providers.upstreams]]
name = "mock-openai"
kind = "openai-images"
base_url = "{mock_base}"
timeout_ms = 10000

[[models]]
air = "{AIR}"
task_type = "imageInference"
provider = "mock-openai"
price_usd = "0.0001"
description = "benchmark: the mock OpenAI-images upstream"
"#
            ),
        )?;
        cmd.arg("--config").arg(&config).env("MEDIAGATE_LOG", &args.log);
        Ok(())
    })?;
    // The generator: one thread, so it takes at most one of the machine's cores.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    println!(
        "provider_overhead: server {} on {}, mock upstream {}, {} cores, {} s per phase, {} rounds, server log {}",
        bin.display(),
        server.addr,
        mock_base,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        args.duration,
        args.rounds,
        args.log
    );

    let layer = std::rc::Rc::new(rt.block_on(async { layer(&mock_base) })?);
    // Warm every path (connection pools, SQLite pages, caches).
    for target in [Target::Direct, Target::Gateway, Target::Adapter] {
        let addr = if target == Target::Direct { &mock_addr } else { &server.addr };
        run_phase(&rt, &layer, addr, &server.key, target, 8, 1.0)?;
    }
    let warm_gateway_ok = persisted(&server)?;
    let warm_calls = mock_calls()?;

    println!(
        "{:<5} {:>5} {:<8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>7} {:>9}",
        "round", "conc", "target", "tasks", "tasks/s", "p50_ms", "p99_ms", "max_ms", "errors", "cpu_us/t"
    );
    let mut sums: Vec<(usize, Target, Histogram<u64>, f64)> = Vec::new();
    let mut alternating: Vec<(usize, Histogram<u64>, Histogram<u64>)> = Vec::new();
    let (mut gateway_ok, mut direct_ok, mut adapter_ok, mut failures) = (0u64, 0u64, 0u64, 0u64);
    for round in 1..=args.rounds {
        for &c in &args.concurrency {
            let order = if round % 2 == 1 {
                [Target::Direct, Target::Gateway, Target::Adapter]
            } else {
                [Target::Adapter, Target::Gateway, Target::Direct]
            };
            for target in order {
                let addr = if target == Target::Direct { &mock_addr } else { &server.addr };
                let cpu0 = cpu_of(server.pid());
                let o = run_phase(&rt, &layer, addr, &server.key, target, c, args.duration as f64)?;
                let cpu = cpu_of(server.pid()) - cpu0;
                let rate = o.ok as f64 / o.elapsed.as_secs_f64();
                failures += o.failed;
                match target {
                    Target::Direct => direct_ok += o.ok,
                    Target::Gateway => gateway_ok += o.ok,
                    Target::Adapter => adapter_ok += o.ok,
                }
                println!(
                    "{:<5} {:>5} {:<8} {:>8} {:>9.0} {:>8.3} {:>8.3} {:>8.3} {:>7} {:>9}",
                    round,
                    c,
                    target.name(),
                    o.ok,
                    rate,
                    ms(o.hist.value_at_quantile(0.5)),
                    ms(o.hist.value_at_quantile(0.99)),
                    ms(o.hist.max()),
                    o.failed,
                    if target == Target::Gateway && o.ok > 0 {
                        format!("{:.0}", cpu.as_micros() as f64 / o.ok as f64)
                    } else {
                        "-".into()
                    }
                );
                match sums.iter_mut().find(|(sc, st, _, _)| *sc == c && *st == target) {
                    Some((_, _, h, best)) => {
                        h.add(&o.hist)?;
                        *best = best.max(rate);
                    }
                    None => sums.push((c, target, o.hist, rate)),
                }
            }
            // Direct and gateway requests in turn on every worker.
            let cpu0 = cpu_of(server.pid());
            let (d, g) =
                run_alternating(&rt, &mock_addr, &server.addr, &server.key, c, args.duration as f64)?;
            let cpu = cpu_of(server.pid()) - cpu0;
            failures += d.failed + g.failed;
            direct_ok += d.ok;
            gateway_ok += g.ok;
            for (name, o) in [("direct*", &d), ("gateway*", &g)] {
                println!(
                    "{:<5} {:>5} {:<8} {:>8} {:>9.0} {:>8.3} {:>8.3} {:>8.3} {:>7} {:>9}",
                    round,
                    c,
                    name,
                    o.ok,
                    o.ok as f64 / o.elapsed.as_secs_f64(),
                    ms(o.hist.value_at_quantile(0.5)),
                    ms(o.hist.value_at_quantile(0.99)),
                    ms(o.hist.max()),
                    o.failed,
                    if name == "gateway*" && o.ok > 0 {
                        format!("{:.0}", cpu.as_micros() as f64 / o.ok as f64)
                    } else {
                        "-".into()
                    }
                );
            }
            match alternating.iter_mut().find(|(ac, _, _)| *ac == c) {
                Some((_, hd, hg)) => {
                    hd.add(&d.hist)?;
                    hg.add(&g.hist)?;
                }
                None => alternating.push((c, d.hist, g.hist)),
            }
        }
    }

    println!("\nsummary over all rounds (added = target percentile - direct percentile, in ms):");
    println!(
        "{:>5} {:<8} {:>9} {:>9} {:>10} {:>9} {:>9} {:>10} {:>12}",
        "conc", "target", "p50", "p99", "added_p50", "added_p99", "p99.9", "max", "best_tasks/s"
    );
    for &c in &args.concurrency {
        let get = |t: Target| sums.iter().find(|(sc, st, _, _)| *sc == c && *st == t).expect("ran");
        let d = get(Target::Direct);
        let q = |h: &Histogram<u64>, x: f64| ms(h.value_at_quantile(x));
        for t in [Target::Direct, Target::Adapter, Target::Gateway] {
            let g = get(t);
            println!(
                "{:>5} {:<8} {:>9.3} {:>9.3} {:>10.3} {:>9.3} {:>9.3} {:>10.3} {:>12.0}",
                c,
                t.name(),
                q(&g.2, 0.5),
                q(&g.2, 0.99),
                q(&g.2, 0.5) - q(&d.2, 0.5),
                q(&g.2, 0.99) - q(&d.2, 0.99),
                q(&g.2, 0.999),
                ms(g.2.max()),
                g.3
            );
        }
    }

    println!(
        "\nalternating (each worker sends a direct request, then a gateway one; added = gateway* - direct*, in ms):"
    );
    println!(
        "{:>5} {:>9} {:>9} {:>10} {:>10} {:>10} {:>10} {:>11} {:>11}",
        "conc",
        "direct_p50",
        "direct_p99",
        "gw_p50",
        "gw_p99",
        "added_p50",
        "added_p99",
        "added_p99.9",
        "requests"
    );
    for (c, d, g) in &alternating {
        let q = |h: &Histogram<u64>, x: f64| ms(h.value_at_quantile(x));
        println!(
            "{:>5} {:>9.3} {:>9.3} {:>10.3} {:>10.3} {:>10.3} {:>10.3} {:>11.3} {:>11}",
            c,
            q(d, 0.5),
            q(d, 0.99),
            q(g, 0.5),
            q(g, 0.99),
            q(g, 0.5) - q(d, 0.5),
            q(g, 0.99) - q(d, 0.99),
            q(g, 0.999) - q(d, 0.999),
            g.len()
        );
    }

    let stored = persisted(&server)? - warm_gateway_ok;
    let upstream = mock_calls()? - warm_calls;
    println!(
        "\ngateway tasks answered 200: {gateway_ok}; task rows with status success: {stored}; \
         upstream calls: {upstream} ({direct_ok} direct, {adapter_ok} adapter-only, {gateway_ok} gateway); \
         failed replies: {failures}"
    );
    if stored != gateway_ok {
        bail!("persisted task count {stored} differs from successful gateway replies {gateway_ok}");
    }
    // Without failures every call is accounted for: no retry, no duplicate, no lost task.
    if failures == 0 && upstream as u64 != direct_ok + adapter_ok + gateway_ok {
        bail!(
            "the mock saw {upstream} calls for {} successful requests",
            direct_ok + adapter_ok + gateway_ok
        );
    }
    Ok(())
}
