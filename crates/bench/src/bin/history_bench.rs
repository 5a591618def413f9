//! `history_bench`: task history at millions of rows (issue 20, point 2).
//!
//! Fills a store (SQLite file, or a PostgreSQL database) with `--rows` finished tasks spread
//! over 100 days and 20 accounts (half of them in one account, the one queried), then, while
//! `--writers` tasks at a time are being admitted and finished through the store, times
//! `--rounds` of each history request: first pages with each kind of filter, and pages deep into
//! the history by cursor. Then it measures admission throughput (admit + finish, closed loop)
//! and compares it with the same loop on an empty store of the same backend.
//!
//! ```sh
//! cargo build --release -p mediagate-bench --bin history_bench
//! target/release/history_bench --rows 10000000 --sqlite /var/tmp/history.db
//! psql -h 127.0.0.1 -d test -c 'CREATE DATABASE history_bench'
//! target/release/history_bench --rows 10000000 --postgres postgres://127.0.0.1/history_bench
//! ```
//!
//! Store-level: what the history API adds above it is parsing a query string and rendering
//! JSON for one page.

use anyhow::{Result, bail};
use clap::Parser;
use mediagate_core::Dialect;
use mediagate_store::history::{HistoryFilter, HistoryPosition, HistoryRequest};
use mediagate_store::postgres::{PostgresOptions, PostgresStore};
use mediagate_store::sqlite::{SqliteOptions, SqliteStore};
use mediagate_store::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    /// Task rows to fill in.
    #[arg(long, default_value_t = 10_000_000)]
    rows: i64,
    /// A SQLite file (created; must not exist).
    #[arg(long)]
    sqlite: Option<std::path::PathBuf>,
    /// A PostgreSQL URL of an empty database.
    #[arg(long)]
    postgres: Option<String>,
    /// Timed requests of each kind.
    #[arg(long, default_value_t = 100)]
    rounds: usize,
    /// Tasks admitted at once in the background while requests are timed.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Seconds of each admission-throughput run.
    #[arg(long, default_value_t = 10)]
    admit_secs: u64,
    /// Reuse a store an earlier run filled: no fill, no empty-store admission run.
    #[arg(long)]
    reuse: bool,
}

const ACCOUNTS: i64 = 20;
const DAY_MS: i64 = 86_400_000;

fn main() -> Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?.block_on(run(args))
}

async fn open(args: &Args) -> Result<Arc<dyn Store>> {
    Ok(match (&args.sqlite, &args.postgres) {
        (Some(p), None) => Arc::new(SqliteStore::open(p, SqliteOptions::default())?),
        (None, Some(url)) => Arc::new(PostgresStore::connect(url, PostgresOptions::default()).await?),
        _ => bail!("give exactly one of --sqlite FILE or --postgres URL"),
    })
}

async fn run(args: Args) -> Result<()> {
    if args.reuse {
        return measure(&args, open(&args).await?, f64::NAN, None).await;
    }
    if args.sqlite.as_ref().is_some_and(|p| p.exists()) {
        bail!("{} exists; give a new file", args.sqlite.as_ref().unwrap().display());
    }
    let store = open(&args).await?;
    let mut ids = Vec::new();
    for i in 0..ACCOUNTS {
        ids.push(store.create_account(&format!("bench-{i}"), i64::MAX / 4).await?.id);
    }
    // The history queried is `big`'s; new tasks go to another account, so the pages read show the
    // filled rows (the all-accounts requests see both).
    let writing = ids[1];
    println!("== admission on the empty store ({} s, 32 at a time)", args.admit_secs);
    let empty_rate = admission(&store, writing, 32, Duration::from_secs(args.admit_secs)).await;
    println!("   {empty_rate:.0} tasks/s");
    let now = chrono_now();
    let started = Instant::now();
    match (&args.sqlite, &args.postgres) {
        (Some(path), _) => {
            drop(store);
            fill_sqlite(path, &ids, args.rows, now)?;
        }
        (_, Some(url)) => fill_postgres(url, &ids, args.rows, now).await?,
        _ => unreachable!(),
    }
    println!("== filled {} rows in {:.0} s", args.rows, started.elapsed().as_secs_f64());
    measure(&args, open(&args).await?, empty_rate, Some(now)).await
}

/// Times the history requests while tasks are admitted, then admission itself.
async fn measure(args: &Args, store: Arc<dyn Store>, empty_rate: f64, now: Option<i64>) -> Result<()> {
    let accounts = store.list_accounts().await?;
    let id = |name: &str| accounts.iter().find(|a| a.name == name).map(|a| a.id);
    let (Some(big), Some(writing)) = (id("bench-0"), id("bench-1")) else {
        bail!("not a store this bench filled")
    };
    // The fill's clock: its newest row is about `now` (a reused store was filled earlier).
    let now = match now {
        Some(n) => n,
        None => {
            let newest = store
                .list_tasks(HistoryRequest {
                    filter: HistoryFilter { account_id: Some(big), ..Default::default() },
                    after: None,
                    limit: 1,
                    scan_rows: 1,
                })
                .await?;
            newest.tasks.first().map(|t| t.created_at).unwrap_or_else(chrono_now)
        }
    };
    let total = store.count_tasks(None, None).await?;
    println!("   task rows now: {total}");

    // Requests, timed while writers admit and finish tasks.
    let stop = Arc::new(AtomicBool::new(false));
    let admitted = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..args.writers)
        .map(|_| {
            let (s, stop, n) = (store.clone(), stop.clone(), admitted.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    one_task(s.as_ref(), writing).await;
                    n.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mine = |f: HistoryFilter| HistoryFilter { account_id: Some(big), ..f };
    let deep = |days_ago: i64| HistoryPosition {
        created_at: now - days_ago * DAY_MS,
        task_uuid: "ffffffff-ffff-ffff-ffff-ffffffffffff".into(),
    };
    let cases: Vec<(&str, HistoryFilter, Option<HistoryPosition>)> = vec![
        ("first page", mine(HistoryFilter::default()), None),
        ("status=error", mine(HistoryFilter { status: Some(TaskStatus::Error), ..Default::default() }), None),
        (
            "errorCode (0.025 % of rows)",
            mine(HistoryFilter { error_code: Some("assetAspectRatio".into()), ..Default::default() }),
            None,
        ),
        (
            "taskType (10 %)",
            mine(HistoryFilter { task_type: Some("videoInference".into()), ..Default::default() }),
            None,
        ),
        (
            "model (5 %)",
            mine(HistoryFilter { model: Some("runware:7@1".into()), ..Default::default() }),
            None,
        ),
        (
            "dialect=runway (20 %)",
            mine(HistoryFilter { dialect: Some(Dialect::Runway), ..Default::default() }),
            None,
        ),
        ("keyId (20 %)", mine(HistoryFilter { key_id: Some(3), ..Default::default() }), None),
        (
            "text, rare (0.001 %)",
            mine(HistoryFilter { text: Some("zeppelin".into()), ..Default::default() }),
            None,
        ),
        (
            "one day, 50 days ago",
            mine(HistoryFilter {
                since_ms: Some(now - 51 * DAY_MS),
                until_ms: Some(now - 50 * DAY_MS),
                ..Default::default()
            }),
            None,
        ),
        ("cursor 50 days deep", mine(HistoryFilter::default()), Some(deep(50))),
        ("cursor 99 days deep", mine(HistoryFilter::default()), Some(deep(99))),
        (
            "cursor 50 days deep, status=error",
            mine(HistoryFilter { status: Some(TaskStatus::Error), ..Default::default() }),
            Some(deep(50)),
        ),
        (
            "cursor 50 days deep, model",
            mine(HistoryFilter { model: Some("runware:7@1".into()), ..Default::default() }),
            Some(deep(50)),
        ),
        ("all accounts, first page", HistoryFilter::default(), None),
        (
            "all accounts, status=error",
            HistoryFilter { status: Some(TaskStatus::Error), ..Default::default() },
            None,
        ),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut sizes = vec![0usize; cases.len()];
    let writes_before = admitted.load(Ordering::Relaxed);
    let timing_started = Instant::now();
    for _ in 0..args.rounds {
        for (i, (_, filter, after)) in cases.iter().enumerate() {
            let req =
                HistoryRequest { filter: filter.clone(), after: after.clone(), limit: 20, scan_rows: 5_000 };
            let t = Instant::now();
            let page = store.list_tasks(req).await?;
            times[i].push(t.elapsed().as_secs_f64() * 1000.0);
            sizes[i] = page.tasks.len();
        }
    }
    let during =
        (admitted.load(Ordering::Relaxed) - writes_before) as f64 / timing_started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await?;
    }
    println!(
        "== history requests ({} rounds, limit 20, scan_rows 5000), while {during:.0} tasks/s were admitted and finished:",
        args.rounds
    );
    println!("   {:<36} {:>5} {:>9} {:>9} {:>9}", "request", "rows", "p50 ms", "p99 ms", "max ms");
    for (i, (name, _, _)) in cases.iter().enumerate() {
        let t = &mut times[i];
        t.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let p = |q: f64| t[((t.len() as f64 * q).ceil() as usize).clamp(1, t.len()) - 1];
        println!("   {name:<36} {:>5} {:>9.2} {:>9.2} {:>9.2}", sizes[i], p(0.5), p(0.99), t[t.len() - 1]);
    }
    println!("== admission at {total} rows ({} s, 32 at a time)", args.admit_secs);
    let full_rate = admission(&store, writing, 32, Duration::from_secs(args.admit_secs)).await;
    println!("   {full_rate:.0} tasks/s (empty store: {empty_rate:.0} tasks/s)");
    Ok(())
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Admits and finishes one task, as the engine does for a successful one.
async fn one_task(store: &dyn Store, account_id: i64) {
    let uuid = Uuid::new_v4();
    let t = NewTask {
        account_id,
        task_uuid: uuid,
        task_type: "imageInference".into(),
        dialect: Dialect::Runware,
        model: Some("runware:7@1".into()),
        request: r#"{"positivePrompt":"a lighthouse at dusk","width":1024,"height":1024}"#.into(),
        request_hash: [1; 32],
        price_micros: 1300,
        resumable_payload: None,
        webhook_url: None,
        spend_cap_micros: 0,
        key_id: Some(1),
    };
    store.admit_task(t).await.expect("admit");
    store
        .finish_task(Finish {
            account_id,
            task_uuid: uuid,
            outcome: FinishOutcome::Success { results: vec![], outputs: vec![], cost_micros: 1300 },
            webhooks: vec![],
            timings: None,
            attempts: vec![ProviderAttempt {
                provider: "bench".into(),
                attempt: 1,
                outcome: "success".into(),
                duration_ms: 1.0,
                message: None,
            }],
        })
        .await
        .expect("finish");
}

/// Tasks per second admitted and finished by `conc` loops for `secs`.
async fn admission(store: &Arc<dyn Store>, account_id: i64, conc: usize, secs: Duration) -> f64 {
    let until = Instant::now() + secs;
    let n = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let loops: Vec<_> = (0..conc)
        .map(|_| {
            let (s, n) = (store.clone(), n.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    one_task(s.as_ref(), account_id).await;
                    n.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for l in loops {
        l.await.unwrap();
    }
    n.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

const WORDS: [&str; 10] =
    ["lighthouse", "fox", "harbour", "owl", "forest", "city", "robot", "garden", "storm", "bridge"];

/// Row `i` of the fill: (account index, created_at, task type, model, status, error, request,
/// dialect, key id). Half the rows are the first account's; times rise with `i` over 100 days.
fn row(
    i: i64,
    rows: i64,
    now: i64,
) -> (usize, i64, &'static str, String, &'static str, Option<String>, String, &'static str, i64) {
    let account = if i % 2 == 0 { 0 } else { 1 + (i / 2 % (ACCOUNTS - 1)) as usize };
    let created = now - 100 * DAY_MS + i * (100 * DAY_MS / rows.max(1));
    // Each account's rows take every kind of task in the same shares.
    let i = i / 2;
    let task_type = if i % 10 == 3 { "videoInference" } else { "imageInference" };
    let model = format!("runware:{}@1", i % 20);
    let (status, error) = if i % 40 == 5 {
        let code = if i % 4000 == 5 {
            "assetAspectRatio"
        } else if i % 400 == 45 {
            "timeoutProvider"
        } else {
            "providerError"
        };
        ("error", Some(format!(r#"{{"code":"{code}","message":"the provider failed"}}"#)))
    } else {
        ("success", None)
    };
    let word = if i % 100_000 == 77 { "zeppelin" } else { WORDS[(i % 10) as usize] };
    let request = format!(
        r#"{{"positivePrompt":"a {word} in the evening light, detailed","width":1024,"height":1024,"steps":28}}"#
    );
    let dialect = if i % 5 == 1 { "runway" } else { "runware" };
    (account, created, task_type, model, status, error, request, dialect, 1 + i % 5)
}

const RESULT: &str = r#"[{"imageUUID":"7c1f0a3e-2b5d-4c8e-9f11-0a1b2c3d4e5f","imageURL":"https://example.test/v1/outputs/7c1f0a3e.png","cost":0.0013}]"#;

fn fill_sqlite(path: &std::path::Path, ids: &[i64], rows: i64, now: i64) -> Result<()> {
    let mut c = rusqlite::Connection::open(path)?;
    c.pragma_update(None, "synchronous", "OFF")?;
    c.pragma_update(None, "cache_size", -4_000_000)?;
    let mut i = 0;
    while i < rows {
        let tx = c.transaction()?;
        {
            let mut st = tx.prepare(
                "INSERT INTO tasks (account_id, task_uuid, task_type, model, status, request_hash, request, result, error,
                                    cost_micros, created_at, finished_at, dialect, key_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?;
            let end = (i + 200_000).min(rows);
            for j in i..end {
                let (a, created, tt, model, status, error, request, dialect, key) = row(j, rows, now);
                let result = (status == "success").then_some(RESULT);
                st.execute(rusqlite::params![
                    ids[a],
                    Uuid::new_v4().to_string(),
                    tt,
                    model,
                    status,
                    &[0u8; 32][..],
                    request,
                    result,
                    error,
                    if status == "success" { 1300 } else { 0 },
                    created,
                    created + 800,
                    dialect,
                    key
                ])?;
            }
            i = end;
        }
        tx.commit()?;
        if i % 2_000_000 == 0 {
            println!("   {i} rows");
        }
    }
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;")?;
    Ok(())
}

async fn fill_postgres(url: &str, ids: &[i64], rows: i64, now: i64) -> Result<()> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(url).await?;
    let step = 1_000_000;
    let mut from = 0;
    while from < rows {
        let to = (from + step).min(rows);
        // The same rows as `row`, generated by the server.
        sqlx::query(
            "INSERT INTO tasks (account_id, task_uuid, task_type, model, status, request_hash, request, result, error,
                                cost_micros, created_at, finished_at, dialect, key_id)
             SELECT CASE WHEN i % 2 = 0 THEN ($1::BIGINT[])[1] ELSE ($1::BIGINT[])[2 + (i / 2 % 19)] END,
                    gen_random_uuid()::text,
                    CASE WHEN k % 10 = 3 THEN 'videoInference' ELSE 'imageInference' END,
                    'runware:' || (k % 20) || '@1',
                    CASE WHEN k % 40 = 5 THEN 'error' ELSE 'success' END,
                    '\\x00'::bytea,
                    '{\"positivePrompt\":\"a ' || (CASE WHEN k % 100000 = 77 THEN 'zeppelin' ELSE (ARRAY['lighthouse','fox','harbour','owl','forest','city','robot','garden','storm','bridge'])[1 + k % 10] END)
                        || ' in the evening light, detailed\",\"width\":1024,\"height\":1024,\"steps\":28}',
                    CASE WHEN k % 40 = 5 THEN NULL ELSE $5 END,
                    CASE WHEN k % 40 = 5 THEN '{\"code\":\"' || (CASE WHEN k % 4000 = 5 THEN 'assetAspectRatio' WHEN k % 400 = 45 THEN 'timeoutProvider' ELSE 'providerError' END) || '\",\"message\":\"the provider failed\"}' END,
                    CASE WHEN k % 40 = 5 THEN 0 ELSE 1300 END,
                    $2 - 100 * 86400000::BIGINT + i * (100 * 86400000::BIGINT / $3),
                    $2 - 100 * 86400000::BIGINT + i * (100 * 86400000::BIGINT / $3) + 800,
                    CASE WHEN k % 5 = 1 THEN 'runway' ELSE 'runware' END,
                    1 + k % 5
             FROM generate_series($4::BIGINT, $6::BIGINT - 1) AS i, LATERAL (SELECT i / 2 AS k) AS kk",
        )
        .bind(ids)
        .bind(now)
        .bind(rows)
        .bind(from)
        .bind(RESULT)
        .bind(to)
        .execute(&mut c)
        .await?;
        from = to;
        println!("   {from} rows");
    }
    sqlx::query("ANALYZE tasks").execute(&mut c).await?;
    Ok(())
}
