//! `admission_bench`: what the limit checks add to each task, at a fixed task rate.
//!
//! In one process, an engine over a fresh SQLite store with every limit switched on (per-key
//! and per-account GCRA, a per-account daily cap tracked per model, per-account concurrency and
//! a shared per-model capacity with fair queueing) admits tasks at `--rate` per second from
//! `--accounts` accounts (one key each) on `--models` models, for `--duration` seconds. Each task
//! passes exactly the checks [`Engine::submit`] runs before the store admits it:
//! `check_rate` (key + account) and `reserve_place` (daily cap + queue place). The time of those
//! two calls is the *admission overhead* recorded per task. Then the task waits for its slot,
//! "runs" for `--service-ms`, and frees the slot; the release (which hands the slot to the next
//! waiting account) is timed separately. Limits are set high enough that nothing is refused, so
//! every task takes the full path.
//!
//! ```sh
//! cargo build --release -p mediagate-bench --bin admission_bench
//! target/release/admission_bench --rate 10000 --duration 10
//! ```

use anyhow::{Result, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use mediagate_engine::config::Config;
use mediagate_engine::{AuthContext, Engine, StoreRole, open_store};
use mediagate_store::Store;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Tasks per second.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Accounts submitting (one key each).
    #[arg(long, default_value_t = 100)]
    accounts: i64,
    /// Models the tasks spread over.
    #[arg(long, default_value_t = 2)]
    models: usize,
    /// Simulated service time of a task, in milliseconds.
    #[arg(long, default_value_t = 5)]
    service_ms: u64,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers)
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cfg = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
    let l = &mut cfg.limits;
    l.key_rate_per_sec = 1e6;
    l.key_burst = 1_000_000;
    l.account_rate_per_sec = 1e6;
    l.account_burst = 1_000_000;
    l.max_daily = 10_000_000;
    l.max_concurrent = 8;
    l.max_queued = 0;
    l.model_concurrency = 64;
    let store: Arc<dyn Store> = open_store(&cfg, StoreRole::Tool).await?;
    let engine = Arc::new(Engine::new(cfg, store)?);
    engine.prepare().await?;
    let models: Vec<String> =
        engine.catalog().models().take(args.models).map(|m| m.spec.air.clone()).collect();
    let ctxs: Vec<AuthContext> = (0..args.accounts)
        .map(|i| AuthContext {
            account_id: i + 1,
            account_name: format!("a{i}"),
            key_id: i + 1,
            scopes: vec![],
        })
        .collect();
    // Warm up: load each (account, model) daily window from the store once, as a first task would.
    for c in &ctxs {
        for m in &models {
            let p =
                engine.reserve_place(c, m, uuid::Uuid::new_v4()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            drop(p);
        }
    }
    let admit = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?));
    let release = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?));
    let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let total = args.rate * args.duration;
    // Ticks of 1 ms, each submitting its share of tasks, each task on its own tokio task.
    let per_tick = args.rate as f64 / 1000.0;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let mut sent = 0u64;
    let mut handles = Vec::with_capacity(total as usize);
    let mut n = 0u64;
    while sent < total {
        tick.tick().await;
        n += 1;
        let due = ((n as f64 * per_tick) as u64).min(total);
        while sent < due {
            let ctx = ctxs[(sent % ctxs.len() as u64) as usize].clone();
            let model = models[((sent / ctxs.len() as u64) % models.len() as u64) as usize].clone();
            let (engine, admit, release, refused) =
                (engine.clone(), admit.clone(), release.clone(), refused.clone());
            let service = Duration::from_millis(args.service_ms);
            handles.push(tokio::spawn(async move {
                let t = Instant::now();
                let checked = match engine.check_rate(&ctx) {
                    Ok(()) => engine.reserve_place(&ctx, &model, uuid::Uuid::new_v4()).await,
                    Err(e) => Err(e),
                };
                let took = t.elapsed();
                let mut place = match checked {
                    Ok(p) => p,
                    Err(_) => {
                        refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        return;
                    }
                };
                admit.lock().unwrap().record(took.as_nanos().max(1) as u64).ok();
                place.admitted();
                place.ready().await;
                tokio::time::sleep(service).await;
                let t = Instant::now();
                place.finished(false);
                release.lock().unwrap().record(t.elapsed().as_nanos().max(1) as u64).ok();
            }));
            sent += 1;
        }
    }
    let elapsed = start.elapsed();
    for h in handles {
        h.await?;
    }
    let refused = refused.load(std::sync::atomic::Ordering::Relaxed);
    if refused > 0 {
        bail!("{refused} tasks were refused; the benchmark's limits should admit everything");
    }
    let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let (a, r) = (admit.lock().unwrap(), release.lock().unwrap());
    println!(
        "admission_bench: {} tasks in {:.2} s = {:.0} tasks/s; {} accounts x {} models; {} workers",
        a.len(),
        elapsed.as_secs_f64(),
        a.len() as f64 / elapsed.as_secs_f64(),
        args.accounts,
        models.len(),
        args.workers
    );
    for (name, h) in
        [("admission checks (rate + daily cap + queue place)", &*a), ("slot release + hand-over", &*r)]
    {
        println!(
            "{name}: p50 {:.1} µs  p99 {:.1} µs  p99.9 {:.1} µs  max {:.1} µs",
            us(h, 0.5),
            us(h, 0.99),
            us(h, 0.999),
            h.max() as f64 / 1000.0
        );
    }
    Ok(())
}
