//! `ws_load`: many concurrent WebSocket connections against a real `mediagate serve` process.
//!
//! Opens N connections (default 1,000), authenticates each, then every connection sends a
//! `ping` and a small `imageInference` and waits for both answers. Reports whether every task
//! was answered, the server's memory per idle connection (RSS delta after all connections are
//! authenticated and idle), and WebSocket tasks/s next to REST tasks/s measured in the same run
//! with the same concurrency and task.
//!
//! ```sh
//! cargo build --release --workspace && target/release/ws_load --connections 1000
//! ```

use anyhow::{Result, bail};
use clap::Parser;
use futures::{SinkExt, StreamExt};
use mediagate_bench::server::Server;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
struct Args {
    /// Concurrent WebSocket connections.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// The server binary (default: `mediagate` next to this binary).
    #[arg(long)]
    mediagate: Option<std::path::PathBuf>,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").and_then(|v| v.split_whitespace().next()?.parse().ok()))
        .unwrap_or(0)
}

fn task(i: usize) -> Value {
    json!({"taskType": "imageInference", "taskUUID": uuid::Uuid::new_v4().to_string(),
           "positivePrompt": format!("ws load {i}"), "width": 64, "height": 64, "outputType": "URL"})
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws) -> Result<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(120), ws.next()).await? {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(t.as_str())?),
            Some(Ok(_)) => continue,
            other => bail!("socket ended: {other:?}"),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin = args.mediagate.unwrap_or(std::env::current_exe()?.with_file_name("mediagate"));
    let server = Server::start(&bin, |_, cmd| {
        cmd.env("MEDIAGATE_LOG", "warn");
        Ok(())
    })?;
    let pid = server.pid();
    let url = format!("ws://{}/v1", server.addr);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss0 = rss_kib(pid);

    // 1. Open and authenticate every connection, then let them sit idle.
    let t0 = Instant::now();
    let mut sockets = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await?;
        ws.send(Message::Text(
            json!([{"taskType": "authentication", "apiKey": server.key}]).to_string().into(),
        ))
        .await?;
        let m = next_json(&mut ws).await?;
        if m["data"][0]["connectionSessionUUID"].as_str().is_none() {
            bail!("authentication failed: {m}");
        }
        sockets.push(ws);
    }
    let open_secs = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss1 = rss_kib(pid);

    // 2. Every connection: ping + one small imageInference, all at once.
    let t1 = Instant::now();
    let runs = sockets.into_iter().enumerate().map(|(i, mut ws)| async move {
        ws.send(Message::Text(json!([{"taskType": "ping", "ping": true}, task(i)]).to_string().into()))
            .await?;
        let (mut pong, mut image) = (false, false);
        while !(pong && image) {
            let m = next_json(&mut ws).await?;
            match m["data"][0]["taskType"].as_str() {
                Some("ping") => pong = true,
                Some("imageInference") => image = true,
                _ => bail!("unexpected: {m}"),
            }
        }
        anyhow::Ok(ws)
    });
    let done = futures::future::join_all(runs).await;
    let ws_secs = t1.elapsed().as_secs_f64();
    let ok = done.iter().filter(|r| r.is_ok()).count();
    if let Some(Err(e)) = done.iter().find(|r| r.is_err()) {
        eprintln!("first failure: {e:#}");
    }
    drop(done);

    // 3. REST in the same run: the same number of tasks at the same concurrency.
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.connections).build()?;
    let t2 = Instant::now();
    let rest = futures::future::join_all((0..args.connections).map(|i| {
        let (client, addr, key) = (client.clone(), server.addr.clone(), server.key.clone());
        async move {
            let r = client
                .post(format!("http://{addr}/v1"))
                .bearer_auth(key)
                .json(&json!([task(i)]))
                .send()
                .await?;
            anyhow::Ok(r.status().is_success())
        }
    }))
    .await;
    let rest_secs = t2.elapsed().as_secs_f64();
    let rest_ok = rest.iter().filter(|r| matches!(r, Ok(true))).count();

    let n = args.connections as f64;
    println!("connections: {} opened+authenticated in {open_secs:.2} s", args.connections);
    println!(
        "server RSS: {} KiB before, {} KiB with all idle -> {:.1} KiB per idle connection",
        rss0,
        rss1,
        (rss1.saturating_sub(rss0)) as f64 / n
    );
    println!(
        "websocket: {ok}/{} connections answered ping + imageInference in {ws_secs:.2} s -> {:.0} tasks/s",
        args.connections,
        n / ws_secs
    );
    println!(
        "rest:      {rest_ok}/{} imageInference requests (same concurrency) in {rest_secs:.2} s -> {:.0} tasks/s",
        args.connections,
        n / rest_secs
    );
    if ok != args.connections || rest_ok != args.connections {
        bail!("not every task was answered");
    }
    Ok(())
}
