//! `mediagate-bench`: throughput and latency of a real `mediagate serve` process on loopback.
//!
//! It starts the release server binary on a fresh data directory, drives it with keep-alive
//! HTTP/1.1 connections (one request in flight per connection, so concurrency = connections),
//! and prints tasks/s and latency percentiles per scenario: first closed-loop runs (each
//! connection sends again as soon as it has its reply: the most tasks/s), then paced runs at a
//! fixed offered rate (`--paced`: the latency at that rate). Afterwards it counts the task records
//! in the server's SQLite file to show every successful `imageInference` was persisted.
//!
//! ```sh
//! cargo build --release --workspace && target/release/mediagate-bench --duration 10
//! ```

use anyhow::{Result, bail};
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use mediagate_bench::server::Server;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Load-test a mediagate server.
#[derive(Parser)]
struct Args {
    /// Seconds per scenario.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Concurrency levels to run.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    concurrency: Vec<usize>,
    /// Scenarios to run: ping, image.
    #[arg(long, value_delimiter = ',', default_value = "ping,image")]
    scenarios: Vec<String>,
    /// Paced runs after the closed-loop ones, as `scenario:connections:tasks_per_second`: the
    /// offered rate is fixed, spread evenly over the connections, and each latency is measured
    /// from the moment its request was due, so a slow reply also counts against the requests it
    /// delayed (no coordinated omission). This asks "does it serve this rate, and how fast",
    /// which a closed loop cannot: there, latency is concurrency / throughput by Little's law.
    /// `--paced ''` runs none.
    #[arg(long, value_delimiter = ',', default_value = "ping:64:20000,image:64:5000")]
    paced: Vec<String>,
    /// The server binary (default: `mediagate` next to this binary).
    #[arg(long)]
    mediagate: Option<PathBuf>,
}

/// One run: what to send, over how many connections, and at what total rate (`None`: each
/// connection sends its next request as soon as the last reply arrives).
struct Run {
    scenario: String,
    connections: usize,
    rate: Option<f64>,
}

impl Run {
    fn label(&self) -> String {
        match self.rate {
            None => self.scenario.clone(),
            Some(r) => format!("{}@{}/s", self.scenario, r),
        }
    }
}

fn parse_paced(spec: &str) -> Result<Run> {
    let parts: Vec<&str> = spec.split(':').collect();
    let [scenario, connections, rate] = parts[..] else {
        bail!("--paced wants scenario:connections:rate, got {spec:?}");
    };
    let (connections, rate): (usize, f64) = (connections.parse()?, rate.parse()?);
    if !rate.is_finite() || rate <= 0.0 || connections == 0 {
        bail!("--paced wants a positive rate and at least one connection, got {spec:?}");
    }
    Ok(Run { scenario: scenario.into(), connections, rate: Some(rate) })
}

struct Outcome {
    hist: Histogram<u64>,
    ok: u64,
    failed: u64,
    elapsed: Duration,
}

fn body_for(scenario: &str) -> Bytes {
    match scenario {
        "ping" => Bytes::from_static(br#"[{"taskType":"ping","ping":true}]"#),
        _ => Bytes::from(format!(
            r#"[{{"taskType":"imageInference","taskUUID":"{}","positivePrompt":"benchmark tile","model":"mediagate:procedural@1","width":64,"height":64,"outputType":"base64Data","outputFormat":"PNG"}}]"#,
            uuid::Uuid::new_v4()
        )),
    }
}

/// One connection's share of a run. With a `pace` (interval between this connection's requests
/// and the offset of its first), request k is due at `start + offset + k * interval`, and its
/// latency runs from then.
async fn worker(
    addr: String,
    key: String,
    scenario: String,
    until: Instant,
    pace: Option<(Duration, Duration)>,
) -> Result<Outcome> {
    let stream = tokio::net::TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut send, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(io).await?;
    tokio::spawn(conn);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut ok, mut failed) = (0, 0);
    let auth = format!("Bearer {key}");
    let start = Instant::now();
    let mut due = pace.map(|(_, offset)| start + offset);
    while Instant::now() < until {
        if let Some(d) = due {
            tokio::time::sleep_until(d.into()).await;
        }
        let req = Request::post("/v1")
            .header("host", addr.as_str())
            .header("authorization", auth.as_str())
            .header("content-type", "application/json")
            .body(Full::new(body_for(&scenario)))?;
        let t0 = due.unwrap_or_else(Instant::now);
        if let (Some(d), Some((interval, _))) = (due.as_mut(), pace) {
            *d += interval;
        }
        let resp = send.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        hist.record(t0.elapsed().as_micros().max(1) as u64)?;

        if status == 200 && !body.windows(8).any(|w| w == b"\"errors\"") {
            ok += 1;
        } else {
            failed += 1;
            if failed == 1 {
                eprintln!("first failure: {status} {}", String::from_utf8_lossy(&body));
            }
        }
    }
    Ok(Outcome { hist, ok, failed, elapsed: start.elapsed() })
}

fn run_scenario(server: &Server, run: &Run, secs: u64) -> Result<Outcome> {
    // The generator shares the machine with the server: one thread keeps it from competing for
    // both cores.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let until = Instant::now() + Duration::from_secs(secs);
        let n = run.connections;
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                // Connection i sends every n/rate seconds, offset by i/rate: evenly interleaved.
                let pace = run
                    .rate
                    .map(|r| (Duration::from_secs_f64(n as f64 / r), Duration::from_secs_f64(i as f64 / r)));
                tokio::spawn(worker(
                    server.addr.clone(),
                    server.key.clone(),
                    run.scenario.clone(),
                    until,
                    pace,
                ))
            })
            .collect();
        let mut total = Outcome {
            hist: Histogram::new_with_bounds(1, 60_000_000, 3)?,
            ok: 0,
            failed: 0,
            elapsed: Duration::ZERO,
        };
        for t in tasks {
            let o = t.await??;
            total.hist.add(&o.hist)?;
            total.ok += o.ok;
            total.failed += o.failed;
            total.elapsed = total.elapsed.max(o.elapsed);
        }
        Ok(total)
    })
}

/// CPU time (user + system) a `/proc/.../stat` line reports.
fn stat_cpu(path: &std::path::Path) -> Duration {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // Linux reports in clock ticks of 1/100 s on every mainstream configuration.
    Duration::from_millis(ticks * 10)
}

/// CPU time the server process has used so far, and the part of it its store threads (the
/// SQLite writer and checkpointer) used.
fn server_cpu(server: &Server) -> (Duration, Duration) {
    let pid = server.pid();
    let total = stat_cpu(format!("/proc/{pid}/stat").as_ref());
    let mut store = Duration::ZERO;
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let dir = entry.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.starts_with("mediagate-store") {
            store += stat_cpu(&dir.join("stat"));
        }
    }
    (total, store)
}

fn persisted_image_tasks(server: &Server) -> Result<u64> {
    let db = rusqlite::Connection::open(server.database())?;
    Ok(db.query_row(
        "SELECT COUNT(*) FROM tasks WHERE task_type = 'imageInference' AND status = 'success'",
        [],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let bin = match args.mediagate {
        Some(b) => b,
        None => std::env::current_exe()?.with_file_name("mediagate"),
    };
    let server = Server::start(&bin, |_, _| Ok(()))?;
    println!(
        "mediagate-bench: server {} on {} ({} s per scenario, {} cores)",
        bin.display(),
        server.addr,
        args.duration,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!(
        "{:<16} {:>5} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>7} {:>12} {:>14}",
        "scenario",
        "conc",
        "tasks",
        "tasks/s",
        "p50_ms",
        "p99_ms",
        "p99.9_ms",
        "max_ms",
        "errors",
        "srv_cpu_us/t",
        "store_cpu_us/t"
    );
    let mut runs = Vec::new();
    for scenario in &args.scenarios {
        for &c in &args.concurrency {
            runs.push(Run { scenario: scenario.clone(), connections: c, rate: None });
        }
    }
    // `--paced ''` runs none.
    for spec in args.paced.iter().filter(|s| !s.is_empty()) {
        runs.push(parse_paced(spec)?);
    }
    let mut image_ok = 0;
    for run in &runs {
        let (cpu0, store0) = server_cpu(&server);
        let o = run_scenario(&server, run, args.duration)?;
        let (cpu1, store1) = server_cpu(&server);
        let (cpu, store) = (cpu1 - cpu0, store1 - store0);
        if run.scenario == "image" {
            image_ok += o.ok;
        }
        let ms = |q: f64| o.hist.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "{:<16} {:>5} {:>9} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>7} {:>12.1} {:>14.1}",
            run.label(),
            run.connections,
            o.ok,
            o.ok as f64 / o.elapsed.as_secs_f64(),
            ms(0.5),
            ms(0.99),
            ms(0.999),
            o.hist.max() as f64 / 1000.0,
            o.failed,
            cpu.as_secs_f64() * 1e6 / o.ok.max(1) as f64,
            store.as_secs_f64() * 1e6 / o.ok.max(1) as f64
        );
    }
    if runs.iter().any(|r| r.scenario == "image") {
        let stored = persisted_image_tasks(&server)?;
        println!("imageInference tasks answered 200: {image_ok}; task records with status success: {stored}");
        if stored != image_ok {
            bail!("persisted task count {stored} differs from successful replies {image_ok}");
        }
    }
    Ok(())
}
