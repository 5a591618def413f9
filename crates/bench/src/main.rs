//! `mediagate-bench`: throughput and latency of a real `mediagate serve` process on loopback.
//!
//! It starts the release server binary on a fresh data directory, drives it with keep-alive
//! HTTP/1.1 connections (one request in flight per connection, so concurrency = connections),
//! and prints tasks/s and latency percentiles per scenario. Afterwards it counts the task records
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
    /// The server binary (default: `mediagate` next to this binary).
    #[arg(long)]
    mediagate: Option<PathBuf>,
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

async fn worker(addr: String, key: String, scenario: String, until: Instant) -> Result<Outcome> {
    let stream = tokio::net::TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut send, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(io).await?;
    tokio::spawn(conn);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut ok, mut failed) = (0, 0);
    let auth = format!("Bearer {key}");
    let start = Instant::now();
    while Instant::now() < until {
        let req = Request::post("/v1")
            .header("host", addr.as_str())
            .header("authorization", auth.as_str())
            .header("content-type", "application/json")
            .body(Full::new(body_for(&scenario)))?;
        let t0 = Instant::now();
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

fn run_scenario(server: &Server, scenario: &str, concurrency: usize, secs: u64) -> Result<Outcome> {
    // The generator shares the machine with the server: one thread keeps it from competing for
    // both cores.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let until = Instant::now() + Duration::from_secs(secs);
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                tokio::spawn(worker(server.addr.clone(), server.key.clone(), scenario.to_string(), until))
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

/// CPU time (user + system) the server process has used so far, from /proc.
fn server_cpu(server: &Server) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", server.pid())).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // Linux reports in clock ticks of 1/100 s on every mainstream configuration.
    Duration::from_millis(ticks * 10)
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
        "{:<8} {:>5} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>7} {:>12}",
        "scenario",
        "conc",
        "tasks",
        "tasks/s",
        "p50_ms",
        "p99_ms",
        "p99.9_ms",
        "max_ms",
        "errors",
        "srv_cpu_us/t"
    );
    let mut image_ok = 0;
    for scenario in &args.scenarios {
        for &c in &args.concurrency {
            let cpu0 = server_cpu(&server);
            let o = run_scenario(&server, scenario, c, args.duration)?;
            let cpu = server_cpu(&server) - cpu0;
            if scenario == "image" {
                image_ok += o.ok;
            }
            let ms = |q: f64| o.hist.value_at_quantile(q) as f64 / 1000.0;
            println!(
                "{:<8} {:>5} {:>9} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>7} {:>12.1}",
                scenario,
                c,
                o.ok,
                o.ok as f64 / o.elapsed.as_secs_f64(),
                ms(0.5),
                ms(0.99),
                ms(0.999),
                o.hist.max() as f64 / 1000.0,
                o.failed,
                cpu.as_secs_f64() * 1e6 / o.ok.max(1) as f64
            );
        }
    }
    if args.scenarios.iter().any(|s| s == "image") {
        let stored = persisted_image_tasks(&server)?;
        println!("imageInference tasks answered 200: {image_ok}; task records with status success: {stored}");
        if stored != image_ok {
            bail!("persisted task count {stored} differs from successful replies {image_ok}");
        }
    }
    Ok(())
}
