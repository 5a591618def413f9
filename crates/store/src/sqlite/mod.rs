//! The embedded store: one SQLite file in WAL mode.
//!
//! Writes go through one connection ([`writer`]): a lone write commits on its caller's thread,
//! concurrent ones are group-committed by the writer thread. Reads use a small pool of
//! read-only connections on the blocking thread pool, which WAL lets run beside the writer.
//! Other processes (the CLI) may open the same file at any time: every connection waits up to
//! `busy_timeout` for the write lock instead of failing.
//!
//! A server, though, must be the only one on its file: a second would resume the first's
//! unfinished tasks and run them twice. [`SqliteOptions::single_server`] takes an exclusive
//! lock on `<database>.server-lock` for the store's life (released by the OS however the process
//! ends) and fails with [`SERVER_LOCK_MESSAGE`] when another server holds it.

mod schema;
mod writer;

use crate::*;
use async_trait::async_trait;
use mediagate_core::Dialect;
use mediagate_core::task::ResultItem;
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;
use writer::Writer;
pub use writer::WriterStats;

/// Durability of commits (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Survives a process crash (`kill -9`); the last commits may be lost on power failure.
    Normal,
    /// Survives power failure too, at the cost of an fsync per commit batch.
    Full,
}

/// What a second server on the same SQLite file is told.
pub const SERVER_LOCK_MESSAGE: &str = "another mediagate server is using this SQLite database; \
     stop it first, or give this server its own data directory (--data-dir)";

/// Options of the SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How durable commits are.
    pub synchronous: Synchronous,
    /// Read connections in the pool.
    pub readers: usize,
    /// How long a connection waits for another process's write lock.
    pub busy_timeout: Duration,
    /// WAL length (in 4 KiB frames) past which the log is made to start over even under a
    /// steady stream of writes (see [`WAL_RESTART_FRAMES`], the default).
    pub wal_restart_frames: i64,
    /// Take the one-server-per-file lock (for `serve`; CLI commands leave it off).
    pub single_server: bool,
    /// Pause between two checkpoint rounds while writes keep coming (see
    /// [`CHECKPOINT_INTERVAL`], the default); an idle store backs off to [`CHECKPOINT_IDLE`].
    pub checkpoint_interval: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Normal,
            readers: 4,
            busy_timeout: Duration::from_secs(5),
            wal_restart_frames: WAL_RESTART_FRAMES,
            single_server: false,
            checkpoint_interval: CHECKPOINT_INTERVAL,
        }
    }
}

/// The SQLite implementation of [`Store`].
pub struct SqliteStore {
    writer: Writer,
    readers: Arc<ReadPool>,
    path: PathBuf,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    _checkpointer: StopOnDrop,
    /// Checkpoint rounds run so far (tests and benchmarks see how often the thread woke).
    checkpoint_rounds: Arc<std::sync::atomic::AtomicU64>,
    /// The lock file held while this store serves, when one was taken; closing it releases it.
    _server_lock: Option<std::fs::File>,
}

/// Takes the exclusive server lock beside the database at `path`.
fn take_server_lock(path: &Path) -> StoreResult<std::fs::File> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".server-lock");
    let file =
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(
            |e| StoreError::Backend(format!("cannot open {}: {e}", Path::new(&lock_path).display())),
        )?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Conflict(SERVER_LOCK_MESSAGE.into())),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(StoreError::Backend(format!("cannot lock {}: {e}", Path::new(&lock_path).display())))
        }
    }
}

/// Stops the checkpoint thread when the store goes away.
struct StopOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// WAL frames (4 KiB pages, so 256 MiB) after which the log should start again from its
/// beginning. Each restart stalls commits for one short checkpoint (its two fsyncs took 5-45 ms
/// under load on the development VM), so it should be rare: at 4,096 frames the stalls came four
/// times a second and set the benchmark's p99; at this size about every three seconds at full
/// load. A longer log costs reads a little (more WAL-index segments to search).
pub const WAL_RESTART_FRAMES: i64 = 65_536;

/// The writer is asked to finish a checkpoint only once a pass here had at most this many frames
/// to copy, so what is left for it (the frames written during that short pass) is small.
const HANDOFF_FRAMES: i64 = 256;

/// Passes in one checkpoint round at most; after the last the writer is handed what is left.
const MAX_PASSES: usize = 8;

/// Pause between checkpoint rounds while commits keep arriving. Short on purpose: what a round
/// copies and syncs is what arrived since the last one, and on a small VM that burst of disk
/// writes is what delays the requests running beside it. With wrk at one connection on the
/// 2-core development VM (`crates/bench/wrk/run.sh`, docs/benchmarks.md), p99 was 1.95 ms with a
/// 250 ms pause, 1.3 ms at 50 ms, 1.0 ms at 25 ms and 0.9 ms at 10 ms (no checkpoints at all:
/// 0.85 ms). Under `synchronous = normal` each round also syncs the log, so a power loss takes
/// at most the commits since the last round.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(10);

/// The longest pause an idle store backs off to (doubling from the interval after each round
/// that found nothing new), so an idle server does not wake a hundred times a second.
pub const CHECKPOINT_IDLE: Duration = Duration::from_secs(1);

/// Checkpoints the WAL on its own connection, so commits never wait for the bulk of the copying
/// and its fsyncs.
///
/// Passive checkpoints alone never let the log start over while writes keep arriving: by the
/// time a pass has copied the frames it saw, new ones follow them, so the WAL file grew without
/// bound (1.8 GB in ten seconds of the benchmark, every frame a fresh block for the file system
/// to allocate and write back). So when the log is long, passes follow each other at once, each
/// copying what arrived during the one before, until one is short; then the writer finishes the
/// job between two batches (`restart`), with only a few frames left to copy, and its next commit
/// rewinds the log to its start. Handing the writer a long remainder instead stalled every
/// commit behind a 15-20 ms checkpoint four times a second.
fn spawn_checkpointer(
    path: &Path,
    options: &SqliteOptions,
    stop: Arc<std::sync::atomic::AtomicBool>,
    restart: Arc<std::sync::atomic::AtomicBool>,
    rounds: Arc<std::sync::atomic::AtomicU64>,
) -> StoreResult<()> {
    let conn = Connection::open(path)?;
    configure(&conn, options)?;
    let restart_frames = options.wal_restart_frames;
    let busy_pause = options.checkpoint_interval.max(Duration::from_millis(1));
    let passive = move || {
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        })
    };
    std::thread::Builder::new()
        .name("mediagate-store-checkpoint".into())
        .spawn(move || {
            let mut pause = busy_pause;
            // The log's (length, frames copied) after the last round: unchanged = nothing new.
            let mut last_seen = (-1, -1);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(pause);
                rounds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut copied_before = 0;
                for pass in 1..=MAX_PASSES {
                    let (log, copied) = match passive() {
                        Ok(v) => v,
                        Err(e) => {
                            tracing::warn!(error = %e, "WAL checkpoint failed");
                            break;
                        }
                    };
                    if pass == 1 {
                        pause = if (log, copied) == last_seen {
                            (pause * 2).min(CHECKPOINT_IDLE.max(busy_pause))
                        } else {
                            busy_pause
                        };
                        last_seen = (log, copied);
                    }
                    if log < restart_frames {
                        break;
                    }
                    let this_pass = if log >= copied_before { log - copied_before } else { log };
                    copied_before = copied;
                    if (copied == log && this_pass <= HANDOFF_FRAMES) || pass == MAX_PASSES {
                        restart.store(true, std::sync::atomic::Ordering::Relaxed);
                        break;
                    }
                }
            }
        })
        .map_err(|e| StoreError::Backend(format!("cannot start checkpointer: {e}")))?;
    Ok(())
}

struct ReadPool {
    idle: Mutex<Vec<Connection>>,
    path: PathBuf,
    options: SqliteOptions,
    permits: tokio::sync::Semaphore,
}

fn configure(conn: &Connection, o: &SqliteOptions) -> rusqlite::Result<()> {
    conn.busy_timeout(o.busy_timeout)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(
        None,
        "synchronous",
        match o.synchronous {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        },
    )?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies migrations.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> StoreResult<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        // Before anything else: a second server must not even migrate the first one's file.
        let server_lock = if options.single_server { Some(take_server_lock(&path)?) } else { None };
        let mut conn = Connection::open(&path)?;
        conn.busy_timeout(options.busy_timeout)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!("could not enable WAL mode (got {mode})")));
        }
        configure(&conn, &options)?;
        schema::migrate(&mut conn)?;
        // Checkpoints copy the WAL into the database and fsync; on the writer they stall every
        // commit batch behind them (the p99 spikes). A separate connection checkpoints instead.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let restart = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let checkpoint_rounds = Arc::new(std::sync::atomic::AtomicU64::new(0));
        spawn_checkpointer(&path, &options, stop.clone(), restart.clone(), checkpoint_rounds.clone())?;
        let (writer, handle) = Writer::start(conn, 16_384, restart)
            .map_err(|e| StoreError::Backend(format!("cannot start writer: {e}")))?;
        Ok(SqliteStore {
            writer,
            readers: Arc::new(ReadPool {
                idle: Mutex::new(Vec::new()),
                path: path.clone(),
                permits: tokio::sync::Semaphore::new(options.readers.max(1)),
                options,
            }),
            path,
            writer_thread: Mutex::new(Some(handle)),
            _checkpointer: StopOnDrop(stop),
            checkpoint_rounds,
            _server_lock: server_lock,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns once every write queued before it has committed, sync admissions included: they
    /// are answered before their batch commits, so a reader that must see one it was just told
    /// about waits for this first.
    pub async fn flush(&self) -> StoreResult<()> {
        self.writer.write(|_| Ok(())).await
    }

    /// Transactions committed so far on callers' threads (a lone write) and by the writer
    /// thread (queued writes, group-committed).
    pub fn writer_stats(&self) -> WriterStats {
        self.writer.stats()
    }

    /// Checkpoint rounds the checkpoint thread has run (each wake-up, whether or not it found
    /// frames to copy).
    pub fn checkpoint_rounds(&self) -> u64 {
        self.checkpoint_rounds.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits for queued writes to commit and stops the writer thread. Call on shutdown after
    /// the last user of the store is gone; later writes fail.
    pub fn close(self) {
        let handle = self.writer_thread.lock().take();
        drop(self.writer);
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let pool = self.readers.clone();
        let _permit = pool.permits.acquire().await.map_err(|_| StoreError::Backend("store closed".into()))?;
        let p = pool.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match p.idle.lock().pop() {
                Some(c) => c,
                None => {
                    let c = Connection::open_with_flags(
                        &p.path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )?;
                    configure(&c, &p.options)?;
                    c
                }
            };
            let out = f(&conn);
            p.idle.lock().push(conn);
            out
        })
        .await
        .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
    }
}

// --- row mapping ---------------------------------------------------------------------------

fn account_row(r: &Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        id: r.get("id")?,
        name: r.get("name")?,
        status: AccountStatus::parse(&r.get::<_, String>("status")?).unwrap_or(AccountStatus::Suspended),
        balance_micros: r.get("balance_micros")?,
        created_at: r.get("created_at")?,
    })
}

const KEY_COLUMNS: &str = "k.id, k.account_id, a.name AS account_name, k.prefix, k.description, k.scopes, \
                           k.status, k.created_at";

fn key_row(r: &Row<'_>) -> rusqlite::Result<KeyRecord> {
    let scopes: String = r.get("scopes")?;
    Ok(KeyRecord {
        id: r.get("id")?,
        account_id: r.get("account_id")?,
        account_name: r.get("account_name")?,
        prefix: r.get("prefix")?,
        description: r.get("description")?,
        scopes: serde_json::from_str(&scopes).unwrap_or_default(),
        // An unreadable status must never grant access.
        status: KeyStatus::parse(&r.get::<_, String>("status")?).unwrap_or(KeyStatus::Revoked),
        created_at: r.get("created_at")?,
    })
}

fn task_row(r: &Row<'_>) -> rusqlite::Result<TaskRecord> {
    let uuid: String = r.get("task_uuid")?;
    let result: Option<String> = r.get("result")?;
    let error: Option<String> = r.get("error")?;
    Ok(TaskRecord {
        account_id: r.get("account_id")?,
        task_uuid: Uuid::parse_str(&uuid).unwrap_or_default(),
        task_type: r.get("task_type")?,
        dialect: Dialect::parse(&r.get::<_, String>("dialect")?).unwrap_or(Dialect::Runware),
        model: r.get("model")?,
        status: TaskStatus::parse(&r.get::<_, String>("status")?).unwrap_or(TaskStatus::Error),
        request_hash: r.get("request_hash")?,
        request: r.get("request")?,
        results: result.and_then(|s| serde_json::from_str::<Vec<ResultItem>>(&s).ok()).unwrap_or_default(),
        error: error.and_then(|s| serde_json::from_str(&s).ok()),
        cost_micros: r.get("cost_micros")?,
        created_at: r.get("created_at")?,
        finished_at: r.get("finished_at")?,
        timings: r.get::<_, Option<String>>("timings")?.and_then(|t| serde_json::from_str(&t).ok()),
        key_id: r.get("key_id")?,
        attempts: r
            .get::<_, Option<String>>("attempts")?
            .and_then(|a| serde_json::from_str(&a).ok())
            .unwrap_or_default(),
        deleted_at: r.get("deleted_at")?,
    })
}

fn output_row(r: &Row<'_>) -> rusqlite::Result<OutputRecord> {
    let uuid: String = r.get("uuid")?;
    let task: Option<String> = r.get("task_uuid")?;
    Ok(OutputRecord {
        uuid: Uuid::parse_str(&uuid).unwrap_or_default(),
        account_id: r.get("account_id")?,
        task_uuid: task.and_then(|t| Uuid::parse_str(&t).ok()),
        content_type: r.get("content_type")?,
        extension: r.get("extension")?,
        size: r.get::<_, i64>("size")? as u64,
        created_at: r.get("created_at")?,
        expires_at: r.get("expires_at")?,
        inline: r.get::<_, i64>("inline")? != 0,
    })
}

/// Output columns without the data itself (which may be large).
const OUTPUT_COLUMNS: &str = "uuid, account_id, task_uuid, content_type, extension, size, created_at, expires_at, \
                              data IS NOT NULL AS inline";

const ADMIN_KEY_COLUMNS: &str = "id, prefix, description, status, created_at";

fn admin_key_row(r: &Row<'_>) -> rusqlite::Result<AdminKeyRecord> {
    Ok(AdminKeyRecord {
        id: r.get(0)?,
        prefix: r.get(1)?,
        description: r.get(2)?,
        // An unreadable status must never grant access.
        status: KeyStatus::parse(&r.get::<_, String>(3)?).unwrap_or(KeyStatus::Revoked),
        created_at: r.get(4)?,
    })
}

fn admin_key_by_id(c: &Connection, id: i64) -> StoreResult<AdminKeyRecord> {
    c.prepare_cached(&format!("SELECT {ADMIN_KEY_COLUMNS} FROM admin_keys WHERE id = ?1"))?
        .query_row([id], admin_key_row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("admin key {id}")))
}

fn account_by_name(c: &Connection, name: &str) -> StoreResult<Account> {
    c.prepare_cached("SELECT * FROM accounts WHERE name = ?1")?
        .query_row([name], account_row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("account '{name}'")))
}

fn key_by_id(c: &Connection, id: i64) -> StoreResult<KeyRecord> {
    c.prepare_cached(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE k.id = ?1"
    ))?
    .query_row([id], key_row)
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("key {id}")))
}

fn insert_account(c: &Connection, name: &str, grant: i64, now: i64) -> StoreResult<Account> {
    crate::rules::check_new_account(name, grant)?;
    let n = c.execute(
        "INSERT INTO accounts (name, status, balance_micros, created_at) VALUES (?1, 'active', ?2, ?3)
         ON CONFLICT(name) DO NOTHING",
        params![name, grant, now],
    )?;
    if n == 0 {
        return Err(crate::rules::account_exists(name));
    }
    let id = c.last_insert_rowid();
    if grant > 0 {
        c.execute(
            "INSERT INTO ledger (account_id, amount_micros, kind, note, created_at) VALUES (?1, ?2, 'grant', 'starting grant', ?3)",
            params![id, grant, now],
        )?;
    }
    account_by_name(c, name)
}

fn insert_key(c: &Connection, account: &Account, key: &NewKey, now: i64) -> StoreResult<KeyRecord> {
    c.execute(
        "INSERT INTO api_keys (account_id, digest, prefix, description, scopes, status, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'active', ?6)",
        params![
            account.id,
            &key.digest[..],
            key.prefix,
            key.description,
            serde_json::to_string(&key.scopes).unwrap_or_else(|_| "[]".into()),
            now
        ],
    )?;
    key_by_id(c, c.last_insert_rowid())
}

/// Debits `price` and writes the charge to the ledger, or changes nothing and returns the
/// balance when it cannot pay. The conditional update is the whole guarantee that balances never
/// go negative: it either debits in full or not at all.
fn charge(
    c: &Connection,
    account_id: i64,
    price: i64,
    task_uuid: &str,
    note: &str,
    now: i64,
) -> StoreResult<Option<i64>> {
    if price <= 0 {
        return Ok(None);
    }
    let debited = c
        .prepare_cached(
            "UPDATE accounts SET balance_micros = balance_micros - ?1 WHERE id = ?2 AND balance_micros >= ?1",
        )?
        .execute(params![price, account_id])?;
    if debited == 0 {
        let balance: i64 = c
            .prepare_cached("SELECT balance_micros FROM accounts WHERE id = ?1")?
            .query_row([account_id], |r| r.get(0))?;
        return Ok(Some(balance));
    }
    c.prepare_cached(
        "INSERT INTO ledger (account_id, amount_micros, kind, task_uuid, note, created_at)
         VALUES (?1, ?2, 'charge', ?3, ?4, ?5)",
    )?
    .execute(params![account_id, -price, task_uuid, note, now])?;
    add_spend(c, account_id, price, now)?;
    Ok(None)
}

/// Adds to (or, negative, takes from) the account's spend in the month of `now`.
fn add_spend(c: &Connection, account_id: i64, micros: i64, now: i64) -> StoreResult<()> {
    c.prepare_cached(
        "INSERT INTO account_spend (account_id, month, spent_micros)
         VALUES (?1, strftime('%Y-%m', ?2 / 1000, 'unixepoch'), ?3)
         ON CONFLICT (account_id, month) DO UPDATE SET spent_micros = spent_micros + excluded.spent_micros",
    )?
    .execute(params![account_id, now, micros])?;
    Ok(())
}

fn spent_this_month(c: &Connection, account_id: i64, now: i64) -> StoreResult<i64> {
    Ok(c.prepare_cached(
        "SELECT spent_micros FROM account_spend WHERE account_id = ?1 AND month = strftime('%Y-%m', ?2 / 1000, 'unixepoch')",
    )?
    .query_row(params![account_id, now], |r| r.get::<_, i64>(0))
    .optional()?
    .unwrap_or(0)
    .max(0))
}

/// The spend so far when `price` would take it past `cap` (0 = no cap).
fn over_spend_cap(
    c: &Connection,
    account_id: i64,
    price: i64,
    cap: i64,
    now: i64,
) -> StoreResult<Option<i64>> {
    if cap <= 0 || price <= 0 {
        return Ok(None);
    }
    let spent = spent_this_month(c, account_id, now)?;
    Ok((spent.saturating_add(price) > cap).then_some(spent))
}

/// Records output rows (inline bytes included); an output already recorded (a partial result
/// recorded again at the task's end) is left as it is.
fn insert_outputs(
    c: &Connection,
    account_id: i64,
    task_uuid: &str,
    outputs: &[NewOutput],
    now: i64,
) -> StoreResult<()> {
    let mut ins = c.prepare_cached(
        "INSERT INTO outputs (uuid, account_id, task_uuid, content_type, extension, size, created_at, expires_at, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT(uuid) DO NOTHING",
    )?;
    for o in outputs {
        ins.execute(params![
            o.uuid.to_string(),
            account_id,
            task_uuid,
            o.content_type,
            o.extension,
            o.size as i64,
            now,
            o.expires_at,
            o.inline_data
        ])?;
    }
    Ok(())
}

fn refund(
    c: &Connection,
    account_id: i64,
    micros: i64,
    task_uuid: &str,
    note: &str,
    now: i64,
) -> StoreResult<()> {
    if micros <= 0 {
        return Ok(());
    }
    c.prepare_cached("UPDATE accounts SET balance_micros = balance_micros + ?1 WHERE id = ?2")?
        .execute(params![micros, account_id])?;
    c.prepare_cached(
        "INSERT INTO ledger (account_id, amount_micros, kind, task_uuid, note, created_at) VALUES (?1, ?2, 'refund', ?3, ?4, ?5)",
    )?
    .execute(params![account_id, micros, task_uuid, note, now])?;
    add_spend(c, account_id, -micros, now)
}

fn webhook_rows(c: &Connection, filter: &str, p: impl rusqlite::Params) -> StoreResult<Vec<WebhookDelivery>> {
    let mut rows: Vec<WebhookDelivery> = c
        .prepare(&format!(
            "SELECT webhook_id, account_id, task_uuid, url, payload, status FROM webhook_deliveries
             WHERE {filter} ORDER BY created_at, webhook_id"
        ))?
        .query_map(p, |r| {
            Ok(WebhookDelivery {
                webhook_id: r.get(0)?,
                account_id: r.get(1)?,
                task_uuid: r.get(2)?,
                url: r.get(3)?,
                payload: r.get(4)?,
                status: r.get(5)?,
                attempts: vec![],
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut q = c.prepare_cached(
        "SELECT attempt, at, status_code, error, duration_ms FROM webhook_attempts WHERE webhook_id = ?1 ORDER BY attempt",
    )?;
    for d in &mut rows {
        d.attempts = q
            .query_map([&d.webhook_id], |r| {
                Ok(WebhookAttempt {
                    attempt: r.get(0)?,
                    at: r.get(1)?,
                    status_code: r.get(2)?,
                    error: r.get(3)?,
                    duration_ms: r.get::<_, i64>(4)? as u64,
                })
            })?
            .collect::<Result<_, _>>()?;
    }
    Ok(rows)
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_account(&self, name: &str, initial_grant_micros: i64) -> StoreResult<Account> {
        let name = name.to_string();
        self.writer.write(move |c| insert_account(c, &name, initial_grant_micros, now_ms())).await
    }

    async fn list_accounts(&self) -> StoreResult<Vec<Account>> {
        self.read(|c| {
            let mut s = c.prepare_cached("SELECT * FROM accounts ORDER BY name")?;
            let rows = s.query_map([], account_row)?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn account_by_name(&self, name: &str) -> StoreResult<Option<Account>> {
        let name = name.to_string();
        self.read(move |c| match account_by_name(c, &name) {
            Ok(a) => Ok(Some(a)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        })
        .await
    }

    async fn set_account_status(&self, name: &str, status: AccountStatus) -> StoreResult<Account> {
        let name = name.to_string();
        self.writer
            .write(move |c| {
                account_by_name(c, &name)?;
                c.execute("UPDATE accounts SET status = ?1 WHERE name = ?2", params![status.as_str(), name])?;
                account_by_name(c, &name)
            })
            .await
    }

    async fn bootstrap(
        &self,
        account: &str,
        grant_micros: i64,
        key: NewKey,
    ) -> StoreResult<Option<(Account, KeyRecord)>> {
        let account = account.to_string();
        self.writer
            .write(move |c| {
                let n: i64 = c.query_row("SELECT COUNT(*) FROM accounts", [], |r| r.get(0))?;
                if n > 0 {
                    return Ok(None);
                }
                let now = now_ms();
                let a = insert_account(c, &account, grant_micros, now)?;
                let k = insert_key(c, &a, &key, now)?;
                Ok(Some((a, k)))
            })
            .await
    }

    async fn create_key(&self, account: &str, key: NewKey) -> StoreResult<KeyRecord> {
        let account = account.to_string();
        self.writer
            .write(move |c| {
                let a = account_by_name(c, &account)?;
                insert_key(c, &a, &key, now_ms())
            })
            .await
    }

    async fn list_keys(&self, account: Option<&str>) -> StoreResult<Vec<KeyRecord>> {
        let account = account.map(str::to_string);
        self.read(move |c| {
            if let Some(a) = &account {
                account_by_name(c, a)?;
            }
            let mut s = c.prepare_cached(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys k JOIN accounts a ON a.id = k.account_id
                 WHERE ?1 IS NULL OR a.name = ?1 ORDER BY k.id"
            ))?;
            let rows = s.query_map([account], key_row)?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn set_key_status(&self, id: i64, status: KeyStatus) -> StoreResult<KeyRecord> {
        self.writer
            .write(move |c| {
                let k = key_by_id(c, id)?;
                crate::rules::check_key_status(id, k.status, status)?;
                c.execute("UPDATE api_keys SET status = ?1 WHERE id = ?2", params![status.as_str(), id])?;
                key_by_id(c, id)
            })
            .await
    }

    async fn key_by_digest(&self, digest: [u8; 32]) -> StoreResult<Option<(KeyRecord, Account)>> {
        self.read(move |c| {
            let found = c
                .prepare_cached(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE k.digest = ?1"
                ))?
                .query_row([&digest[..]], key_row)
                .optional()?;
            let Some(k) = found else { return Ok(None) };
            let a = c
                .prepare_cached("SELECT * FROM accounts WHERE id = ?1")?
                .query_row([k.account_id], account_row)?;
            Ok(Some((k, a)))
        })
        .await
    }

    async fn grant(&self, account: &str, micros: i64, note: &str) -> StoreResult<i64> {
        crate::rules::check_grant(micros)?;
        let (account, note) = (account.to_string(), note.to_string());
        self.writer
            .write(move |c| {
                let a = account_by_name(c, &account)?;
                let balance = a
                    .balance_micros
                    .checked_add(micros)
                    .ok_or_else(|| StoreError::Invalid("the balance would overflow".into()))?;
                c.execute("UPDATE accounts SET balance_micros = ?1 WHERE id = ?2", params![balance, a.id])?;
                c.execute(
                    "INSERT INTO ledger (account_id, amount_micros, kind, note, created_at) VALUES (?1, ?2, 'grant', ?3, ?4)",
                    params![a.id, micros, note, now_ms()],
                )?;
                Ok(balance)
            })
            .await
    }

    async fn ledger(&self, account: &str, limit: u32) -> StoreResult<Vec<LedgerEntry>> {
        let account = account.to_string();
        self.read(move |c| {
            let a = account_by_name(c, &account)?;
            let mut s = c.prepare_cached(
                "SELECT id, amount_micros, kind, task_uuid, note, created_at FROM ledger
                 WHERE account_id = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = s
                .query_map(params![a.id, limit], |r| {
                    Ok(LedgerEntry {
                        id: r.get(0)?,
                        amount_micros: r.get(1)?,
                        kind: r.get(2)?,
                        task_uuid: r.get(3)?,
                        note: r.get(4)?,
                        created_at: r.get(5)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn admit_task(&self, t: NewTask) -> StoreResult<Admission> {
        // A sync task (no resumable payload) is answered once admitted, without waiting for the
        // commit: a sync client is told nothing until `finish_task` has committed, which happens
        // after this commit, and that finish fails if this batch did not commit (no running
        // task to finish). It saves every sync task one commit wait. An async task's admission
        // is its acknowledgement, so it waits until durable.
        let sync = t.resumable_payload.is_none();
        let admit = move |c: &Connection| {
            let uuid = t.task_uuid.to_string();
            let existing = c
                .prepare_cached(
                    "SELECT * FROM tasks WHERE account_id = ?1 AND task_uuid = ?2 AND deleted_at IS NULL",
                )?
                .query_row(params![t.account_id, uuid], task_row)
                .optional()?;
            if let Some(rec) = existing {
                return Ok(Admission::Existing(Box::new(rec)));
            }
            // A deleted task keeps its taskUUID (the row stays, hidden): say so rather than fail
            // on the unique key.
            let deleted = c
                .prepare_cached("SELECT 1 FROM tasks WHERE account_id = ?1 AND task_uuid = ?2")?
                .exists(params![t.account_id, uuid])?;
            if deleted {
                return Ok(Admission::Deleted);
            }
            let now = now_ms();
            if let Some(spent_micros) =
                over_spend_cap(c, t.account_id, t.price_micros, t.spend_cap_micros, now)?
            {
                return Ok(Admission::SpendCapReached { spent_micros });
            }
            if let Some(balance_micros) = charge(c, t.account_id, t.price_micros, &uuid, &t.task_type, now)? {
                return Ok(Admission::InsufficientCredits { balance_micros });
            }
            c.prepare_cached(
                    "INSERT INTO tasks (account_id, task_uuid, task_type, model, status, request_hash, request, cost_micros,
                                        created_at, delivery, payload, webhook_url, dialect, key_id)
                     VALUES (?1, ?2, ?3, ?4, 'processing', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )?
                .execute(params![
                    t.account_id,
                    uuid,
                    t.task_type,
                    t.model,
                    &t.request_hash[..],
                    t.request,
                    t.price_micros,
                    now,
                    if t.resumable_payload.is_some() { "async" } else { "sync" },
                    t.resumable_payload,
                    t.webhook_url,
                    t.dialect.as_str(),
                    t.key_id
                ])?;
            Ok(Admission::Admitted)
        };
        if sync { self.writer.decide(admit).await } else { self.writer.write(admit).await }
    }

    async fn readmit_failed_task(&self, t: NewTask) -> StoreResult<Admission> {
        self.writer
            .write(move |c| {
                let uuid = t.task_uuid.to_string();
                let current = c
                    .prepare_cached(
                        "SELECT * FROM tasks WHERE account_id = ?1 AND task_uuid = ?2 AND deleted_at IS NULL",
                    )?
                    .query_row(params![t.account_id, uuid], task_row)
                    .optional()?
                    .ok_or_else(|| StoreError::NotFound(format!("task {uuid}")))?;
                if current.status != TaskStatus::Error {
                    return Ok(Admission::Existing(Box::new(current)));
                }
                let now = now_ms();
                let note = format!("{} (retry)", t.task_type);
                if let Some(spent_micros) =
                    over_spend_cap(c, t.account_id, t.price_micros, t.spend_cap_micros, now)?
                {
                    return Ok(Admission::SpendCapReached { spent_micros });
                }
                if let Some(balance_micros) = charge(c, t.account_id, t.price_micros, &uuid, &note, now)? {
                    return Ok(Admission::InsufficientCredits { balance_micros });
                }
                c.prepare_cached(
                    "UPDATE tasks SET status = 'processing', error = NULL, result = NULL, cost_micros = ?1,
                            finished_at = NULL, delivery = ?2, payload = ?3, webhook_url = ?4, key_id = ?7, attempts = NULL
                     WHERE account_id = ?5 AND task_uuid = ?6 AND status = 'error'",
                )?
                .execute(params![
                    t.price_micros,
                    if t.resumable_payload.is_some() { "async" } else { "sync" },
                    t.resumable_payload,
                    t.webhook_url,
                    t.account_id,
                    uuid,
                    t.key_id
                ])?;
                Ok(Admission::Admitted)
            })
            .await
    }

    async fn raise_reservation(
        &self,
        account_id: i64,
        task_uuid: Uuid,
        price_micros: i64,
        spend_cap_micros: i64,
    ) -> StoreResult<Reservation> {
        self.writer
            .write(move |c| {
                let uuid = task_uuid.to_string();
                let reserved: i64 = c
                    .prepare_cached(
                        "SELECT cost_micros FROM tasks WHERE account_id = ?1 AND task_uuid = ?2 AND status = 'processing'",
                    )?
                    .query_row(params![account_id, uuid], |r| r.get(0))
                    .optional()?
                    .ok_or_else(|| StoreError::Conflict(format!("task {uuid} is not processing")))?;
                let more = price_micros.saturating_sub(reserved);
                if more <= 0 {
                    return Ok(Reservation::Covered);
                }
                let now = now_ms();
                if let Some(spent_micros) = over_spend_cap(c, account_id, more, spend_cap_micros, now)? {
                    return Ok(Reservation::SpendCapReached { spent_micros });
                }
                if let Some(balance_micros) = charge(c, account_id, more, &uuid, "priced by its size", now)? {
                    return Ok(Reservation::InsufficientCredits { balance_micros });
                }
                c.prepare_cached("UPDATE tasks SET cost_micros = ?1 WHERE account_id = ?2 AND task_uuid = ?3")?
                    .execute(params![price_micros, account_id, uuid])?;
                Ok(Reservation::Covered)
            })
            .await
    }

    async fn record_partial_results(
        &self,
        account_id: i64,
        task_uuid: Uuid,
        results: Vec<ResultItem>,
        outputs: Vec<NewOutput>,
    ) -> StoreResult<()> {
        self.writer
            .write(move |c| {
                let uuid = task_uuid.to_string();
                let now = now_ms();
                insert_outputs(c, account_id, &uuid, &outputs, now)?;
                c.prepare_cached("UPDATE tasks SET result = ?1 WHERE account_id = ?2 AND task_uuid = ?3 AND status = 'processing'")?
                    .execute(params![
                        serde_json::to_string(&results).map_err(|e| StoreError::Backend(e.to_string()))?,
                        account_id,
                        uuid
                    ])?;
                Ok(())
            })
            .await
    }

    fn commit_stats(&self) -> Option<WriterStats> {
        Some(self.writer.stats())
    }

    async fn finish_task(&self, f: Finish) -> StoreResult<Settled> {
        self.writer
            .write(move |c| {
                let uuid = f.task_uuid.to_string();
                let now = now_ms();
                let timings = f.timings.map(|t| serde_json::to_string(&t).unwrap_or_default());
                let attempts = history::attempts_json(&f.attempts);
                let reserved: i64 = c
                    .prepare_cached(
                        "SELECT cost_micros FROM tasks WHERE account_id = ?1 AND task_uuid = ?2 AND status = 'processing'",
                    )?
                    .query_row(params![f.account_id, uuid], |r| r.get(0))
                    .optional()?
                    .ok_or_else(|| StoreError::Conflict(format!("task {uuid} is not processing")))?;
                let settled = f.outcome.settle(reserved);
                match f.outcome {
                    FinishOutcome::Success { results, outputs, cost_micros } => {
                        let cost = cost_micros.clamp(0, reserved);
                        refund(c, f.account_id, reserved - cost, &uuid, "unused reservation", now)?;
                        insert_outputs(c, f.account_id, &uuid, &outputs, now)?;
                        c.prepare_cached(
                            "UPDATE tasks SET status = 'success', result = ?1, cost_micros = ?2, finished_at = ?3, payload = NULL,
                             timings = ?6, attempts = COALESCE(?7, attempts) WHERE account_id = ?4 AND task_uuid = ?5",
                        )?
                        .execute(params![
                            serde_json::to_string(&results).map_err(|e| StoreError::Backend(e.to_string()))?,
                            cost,
                            now,
                            f.account_id,
                            uuid,
                            timings,
                            attempts
                        ])?;
                    }
                    FinishOutcome::Failure { error } => {
                        refund(c, f.account_id, reserved, &uuid, "task failed", now)?;
                        c.prepare_cached(
                            "UPDATE tasks SET status = 'error', error = ?1, cost_micros = 0, finished_at = ?2, payload = NULL,
                             timings = ?5, attempts = COALESCE(?6, attempts) WHERE account_id = ?3 AND task_uuid = ?4",
                        )?
                        .execute(params![
                            serde_json::to_string(&error).map_err(|e| StoreError::Backend(e.to_string()))?,
                            now,
                            f.account_id,
                            uuid,
                            timings,
                            attempts
                        ])?;
                    }
                    FinishOutcome::PartlyDelivered { error, cost_micros } => {
                        let cost = cost_micros.clamp(0, reserved);
                        refund(c, f.account_id, reserved - cost, &uuid, "undelivered results", now)?;
                        c.prepare_cached(
                            "UPDATE tasks SET status = 'error', error = ?1, cost_micros = ?2, finished_at = ?3, payload = NULL,
                             timings = ?6, attempts = COALESCE(?7, attempts) WHERE account_id = ?4 AND task_uuid = ?5",
                        )?
                        .execute(params![
                            serde_json::to_string(&error).map_err(|e| StoreError::Backend(e.to_string()))?,
                            cost,
                            now,
                            f.account_id,
                            uuid,
                            timings,
                            attempts
                        ])?;
                    }
                }
                let mut hook = c.prepare_cached(
                    "INSERT INTO webhook_deliveries (webhook_id, account_id, task_uuid, url, payload, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                )?;
                for w in &f.webhooks {
                    hook.execute(params![w.webhook_id, f.account_id, uuid, w.url, w.payload, now])?;
                }
                Ok(settled)
            })
            .await
    }

    async fn list_tasks(&self, req: history::HistoryRequest) -> StoreResult<history::HistoryPage> {
        self.read(move |c| {
            let q = history::build(&req, history::Sql::Sqlite, "*");
            let binds: Vec<rusqlite::types::Value> = q
                .binds
                .iter()
                .map(|b| match b {
                    history::Bind::Int(i) => rusqlite::types::Value::Integer(*i),
                    history::Bind::Text(t) => rusqlite::types::Value::Text(t.clone()),
                })
                .collect();
            let mut stmt = c.prepare_cached(&q.page)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(binds.iter()), |r| {
                    Ok((
                        task_row(r)?,
                        history::HistoryPosition {
                            created_at: r.get("pos_at")?,
                            task_uuid: r.get("pos_uuid")?,
                        },
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let edge = match &q.edge {
                Some(sql) if rows.len() <= req.limit as usize => c
                    .prepare_cached(sql)?
                    .query_row(rusqlite::params_from_iter(binds[..q.edge_binds].iter()), |r| {
                        Ok(history::HistoryPosition { created_at: r.get(0)?, task_uuid: r.get(1)? })
                    })
                    .optional()?,
                _ => None,
            };
            Ok(history::page_of(rows, req.limit, edge))
        })
        .await
    }

    async fn history_task(&self, account_id: i64, task_uuid: Uuid) -> StoreResult<Option<TaskRecord>> {
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT * FROM tasks WHERE account_id = ?1 AND task_uuid = ?2")?
                .query_row(params![account_id, task_uuid.to_string()], task_row)
                .optional()?)
        })
        .await
    }

    async fn get_task(&self, account_id: i64, task_uuid: Uuid) -> StoreResult<Option<TaskRecord>> {
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT * FROM tasks WHERE account_id = ?1 AND task_uuid = ?2 AND deleted_at IS NULL",
            )?
            .query_row(params![account_id, task_uuid.to_string()], task_row)
            .optional()?)
        })
        .await
    }

    async fn count_tasks(&self, account_id: Option<i64>, status: Option<TaskStatus>) -> StoreResult<u64> {
        self.read(move |c| {
            let n: i64 = c
                .prepare_cached(
                    "SELECT COUNT(*) FROM tasks WHERE (?1 IS NULL OR account_id = ?1) AND (?2 IS NULL OR status = ?2)",
                )?
                .query_row(params![account_id, status.map(|s| s.as_str())], |r| r.get(0))?;
            Ok(n as u64)
        })
        .await
    }

    async fn fail_interrupted_tasks(&self, error: StoredError) -> StoreResult<u64> {
        // Every task a stop left running, in one job: bulk work for the writer thread.
        self.writer
            .write_queued(move |c| {
                let now = now_ms();
                let stuck: Vec<(i64, String, i64)> = c
                    .prepare(
                        "SELECT account_id, task_uuid, cost_micros FROM tasks WHERE status = 'processing' AND payload IS NULL",
                    )?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<Result<_, _>>()?;
                let err = serde_json::to_string(&error).map_err(|e| StoreError::Backend(e.to_string()))?;
                for (account, uuid, reserved) in &stuck {
                    refund(c, *account, *reserved, uuid, "interrupted by restart", now)?;
                    c.execute(
                        "UPDATE tasks SET status = 'error', error = ?1, cost_micros = 0, finished_at = ?2
                         WHERE account_id = ?3 AND task_uuid = ?4",
                        params![err, now, account, uuid],
                    )?;
                }
                Ok(stuck.len() as u64)
            })
            .await
    }

    async fn resumable_tasks(&self) -> StoreResult<Vec<ResumableTask>> {
        self.read(|c| {
            let rows = c
                .prepare(
                    "SELECT t.account_id, a.name, t.task_uuid, t.task_type, t.payload, t.webhook_url, t.dialect
                     FROM tasks t JOIN accounts a ON a.id = t.account_id
                     WHERE t.status = 'processing' AND t.payload IS NOT NULL ORDER BY t.created_at",
                )?
                .query_map([], |r| {
                    let uuid: String = r.get(2)?;
                    Ok(ResumableTask {
                        account_id: r.get(0)?,
                        account_name: r.get(1)?,
                        task_uuid: Uuid::parse_str(&uuid).unwrap_or_default(),
                        task_type: r.get(3)?,
                        payload: r.get(4)?,
                        webhook_url: r.get(5)?,
                        dialect: Dialect::parse(&r.get::<_, String>(6)?).unwrap_or(Dialect::Runware),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn webhook_secret(&self, account_id: i64, candidate: String, rotate: bool) -> StoreResult<String> {
        self.writer
            .write(move |c| {
                c.execute(
                    "UPDATE accounts SET webhook_secret = ?1 WHERE id = ?2 AND (webhook_secret IS NULL OR ?3)",
                    params![candidate, account_id, rotate],
                )?;
                c.query_row("SELECT webhook_secret FROM accounts WHERE id = ?1", [account_id], |r| r.get(0))
                    .optional()?
                    .ok_or_else(|| StoreError::NotFound(format!("account {account_id}")))
            })
            .await
    }

    async fn record_webhook_attempt(
        &self,
        webhook_id: &str,
        a: WebhookAttempt,
        done: Option<&'static str>,
    ) -> StoreResult<()> {
        let id = webhook_id.to_string();
        self.writer
            .write(move |c| {
                c.prepare_cached(
                    "INSERT INTO webhook_attempts (webhook_id, attempt, at, status_code, error, duration_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![id, a.attempt, a.at, a.status_code, a.error, a.duration_ms as i64])?;
                c.prepare_cached(
                    "UPDATE webhook_deliveries SET attempts = ?2, updated_at = ?3, status = COALESCE(?4, status)
                     WHERE webhook_id = ?1",
                )?
                .execute(params![id, a.attempt, a.at, done])?;
                Ok(())
            })
            .await
    }

    async fn pending_webhooks(&self) -> StoreResult<Vec<WebhookDelivery>> {
        self.read(|c| webhook_rows(c, "status = 'pending'", params![])).await
    }

    async fn webhook_deliveries(
        &self,
        account_id: i64,
        task_uuid: Uuid,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        self.read(move |c| {
            webhook_rows(c, "account_id = ?1 AND task_uuid = ?2", params![account_id, task_uuid.to_string()])
        })
        .await
    }

    async fn schema_state(&self) -> StoreResult<SchemaState> {
        let applied =
            self.read(|c| Ok(c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))?)).await?;
        Ok(SchemaState { applied, expected: schema::LATEST })
    }

    async fn limit_overrides(&self) -> StoreResult<Vec<LimitOverride>> {
        self.read(|c| {
            let rows = c
                .prepare_cached(
                    "SELECT l.account_id, a.name, l.model, l.settings FROM account_limits l
                     JOIN accounts a ON a.id = l.account_id ORDER BY a.name, l.model",
                )?
                .query_map([], |r| {
                    let model: String = r.get(2)?;
                    let settings: String = r.get(3)?;
                    Ok(LimitOverride {
                        account_id: r.get(0)?,
                        account_name: r.get(1)?,
                        model: (!model.is_empty()).then_some(model),
                        values: serde_json::from_str(&settings).unwrap_or_default(),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn set_limits(&self, account: &str, model: Option<&str>, values: LimitValues) -> StoreResult<()> {
        let (account, model) = (account.to_string(), model.unwrap_or("").to_string());
        self.writer
            .write(move |c| {
                let a = account_by_name(c, &account)?;
                if values.is_empty() {
                    c.execute(
                        "DELETE FROM account_limits WHERE account_id = ?1 AND model = ?2",
                        params![a.id, model],
                    )?;
                } else {
                    let json = serde_json::to_string(&values).map_err(|e| StoreError::Backend(e.to_string()))?;
                    c.execute(
                        "INSERT INTO account_limits (account_id, model, settings, updated_at) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (account_id, model) DO UPDATE SET settings = excluded.settings,
                                                                     updated_at = excluded.updated_at",
                        params![a.id, model, json, now_ms()],
                    )?;
                }
                Ok(())
            })
            .await
    }

    async fn month_spend(&self, account_id: i64) -> StoreResult<i64> {
        self.read(move |c| spent_this_month(c, account_id, now_ms())).await
    }

    async fn recent_admissions(
        &self,
        account_id: i64,
        model: &str,
        since_ms: i64,
    ) -> StoreResult<Vec<(i64, Uuid)>> {
        let model = model.to_string();
        self.read(move |c| {
            let rows = c
                .prepare_cached(
                    "SELECT created_at, task_uuid FROM tasks
                     WHERE account_id = ?1 AND model = ?2 AND created_at > ?3 AND status != 'error'",
                )?
                .query_map(params![account_id, model, since_ms], |r| {
                    let u: String = r.get(1)?;
                    Ok((r.get::<_, i64>(0)?, Uuid::parse_str(&u).unwrap_or_default()))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn recent_task_counts(&self, account_id: i64, since_ms: i64) -> StoreResult<Vec<(String, u32)>> {
        self.read(move |c| {
            let rows = c
                .prepare_cached(
                    "SELECT model, COUNT(*) FROM tasks
                     WHERE account_id = ?1 AND created_at > ?2 AND status != 'error' AND model IS NOT NULL
                     GROUP BY model",
                )?
                .query_map(params![account_id, since_ms], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u32)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn create_admin_key(&self, key: NewKey) -> StoreResult<AdminKeyRecord> {
        self.writer
            .write(move |c| {
                c.execute(
                    "INSERT INTO admin_keys (digest, prefix, description, status, created_at)
                     VALUES (?1, ?2, ?3, 'active', ?4)",
                    params![&key.digest[..], key.prefix, key.description, now_ms()],
                )?;
                admin_key_by_id(c, c.last_insert_rowid())
            })
            .await
    }

    async fn list_admin_keys(&self) -> StoreResult<Vec<AdminKeyRecord>> {
        self.read(|c| {
            let rows = c
                .prepare_cached(&format!("SELECT {ADMIN_KEY_COLUMNS} FROM admin_keys ORDER BY id"))?
                .query_map([], admin_key_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn set_admin_key_status(&self, id: i64, status: KeyStatus) -> StoreResult<AdminKeyRecord> {
        self.writer
            .write(move |c| {
                let k = admin_key_by_id(c, id)?;
                crate::rules::check_admin_key_status(id, k.status, status)?;
                c.execute("UPDATE admin_keys SET status = ?1 WHERE id = ?2", params![status.as_str(), id])?;
                admin_key_by_id(c, id)
            })
            .await
    }

    async fn admin_key_by_digest(&self, digest: [u8; 32]) -> StoreResult<Option<AdminKeyRecord>> {
        self.read(move |c| {
            Ok(c.prepare_cached(&format!("SELECT {ADMIN_KEY_COLUMNS} FROM admin_keys WHERE digest = ?1"))?
                .query_row([&digest[..]], admin_key_row)
                .optional()?)
        })
        .await
    }

    async fn get_output(&self, uuid: Uuid) -> StoreResult<Option<OutputRecord>> {
        self.read(move |c| {
            Ok(c.prepare_cached(&format!("SELECT {OUTPUT_COLUMNS} FROM outputs WHERE uuid = ?1"))?
                .query_row([uuid.to_string()], output_row)
                .optional()?)
        })
        .await
    }

    async fn output_data(&self, uuid: Uuid) -> StoreResult<Option<Vec<u8>>> {
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT data FROM outputs WHERE uuid = ?1")?
                .query_row([uuid.to_string()], |r| r.get::<_, Option<Vec<u8>>>(0))
                .optional()?
                .flatten())
        })
        .await
    }

    async fn take_expired_outputs(&self, now_ms: i64, limit: u32) -> StoreResult<Vec<OutputRecord>> {
        // Up to `limit` rows at a time: bulk work for the writer thread.
        self.writer
            .write_queued(move |c| {
                let rows: Vec<OutputRecord> = c
                    .prepare_cached(&format!(
                        "SELECT {OUTPUT_COLUMNS} FROM outputs WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2"
                    ))?
                    .query_map(params![now_ms, limit], output_row)?
                    .collect::<Result<_, _>>()?;
                let mut del = c.prepare_cached("DELETE FROM outputs WHERE uuid = ?1")?;
                for r in &rows {
                    del.execute([r.uuid.to_string()])?;
                }
                Ok(rows)
            })
            .await
    }

    async fn insert_upload(
        &self,
        account_id: i64,
        upload: NewOutput,
        keep_secs: Option<i64>,
        quota: UploadQuota,
    ) -> StoreResult<Result<(), UploadUsage>> {
        self.writer
            .write(move |c| {
                let usage = upload_usage(c, account_id)?;
                if !quota.admits(usage, upload.size) {
                    return Ok(Err(usage));
                }
                c.prepare_cached(
                    "INSERT INTO outputs (uuid, account_id, task_uuid, content_type, extension, size, created_at, expires_at, data, keep_secs)
                     VALUES (?1, ?2, NULL, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    upload.uuid.to_string(),
                    account_id,
                    upload.content_type,
                    upload.extension,
                    upload.size as i64,
                    now_ms(),
                    upload.expires_at,
                    upload.inline_data,
                    keep_secs
                ])?;
                Ok(Ok(()))
            })
            .await
    }

    async fn upload_usage(&self, account_id: i64) -> StoreResult<UploadUsage> {
        self.read(move |c| Ok(upload_usage(c, account_id)?)).await
    }

    async fn touch_output(&self, uuid: Uuid) -> StoreResult<Option<OutputRecord>> {
        self.writer
            .write(move |c| {
                let id = uuid.to_string();
                let now = now_ms();
                c.prepare_cached(
                    "UPDATE outputs SET expires_at = MAX(expires_at, ?1 + keep_secs * 1000)
                     WHERE uuid = ?2 AND keep_secs IS NOT NULL AND expires_at > ?1",
                )?
                .execute(params![now, id])?;
                Ok(c.prepare_cached(&format!("SELECT {OUTPUT_COLUMNS} FROM outputs WHERE uuid = ?1"))?
                    .query_row([id], output_row)
                    .optional()?)
            })
            .await
    }

    async fn delete_output(&self, account_id: i64, uuid: Uuid) -> StoreResult<Option<OutputRecord>> {
        self.writer
            .write(move |c| {
                let id = uuid.to_string();
                let rec = c
                    .prepare_cached(&format!(
                        "SELECT {OUTPUT_COLUMNS} FROM outputs WHERE uuid = ?1 AND account_id = ?2"
                    ))?
                    .query_row(params![id, account_id], output_row)
                    .optional()?;
                if rec.is_some() {
                    c.prepare_cached("DELETE FROM outputs WHERE uuid = ?1")?.execute([id])?;
                }
                Ok(rec)
            })
            .await
    }

    async fn delete_task(&self, account_id: i64, task_uuid: Uuid) -> StoreResult<bool> {
        self.writer
            .write(move |c| {
                let n = c
                    .prepare_cached(
                        "UPDATE tasks SET deleted_at = ?1 WHERE account_id = ?2 AND task_uuid = ?3
                         AND deleted_at IS NULL AND status != 'processing'",
                    )?
                    .execute(params![now_ms(), account_id, task_uuid.to_string()])?;
                Ok(n == 1)
            })
            .await
    }

    async fn usage_by_day(
        &self,
        account_id: i64,
        from_ms: i64,
        before_ms: i64,
    ) -> StoreResult<Vec<DailyUsage>> {
        self.read(move |c| {
            // Reservations are charges and their returns refunds, so the sum over a task's ledger
            // rows is what it cost; the day is the day of each movement.
            let rows = c
                .prepare_cached(
                    "SELECT strftime('%Y-%m-%d', l.created_at / 1000, 'unixepoch') AS day,
                            COALESCE(t.model, '') AS model, -SUM(l.amount_micros) AS spent
                     FROM ledger l JOIN tasks t ON t.account_id = l.account_id AND t.task_uuid = l.task_uuid
                     WHERE l.account_id = ?1 AND l.created_at >= ?2 AND l.created_at < ?3
                       AND l.kind IN ('charge', 'refund')
                     GROUP BY day, model ORDER BY day, model",
                )?
                .query_map(params![account_id, from_ms, before_ms], |r| {
                    Ok(DailyUsage { day: r.get(0)?, model: r.get(1)?, spent_micros: r.get(2)? })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }
}

/// An account's live uploads, counted through `outputs_uploads_by_account`.
fn upload_usage(c: &rusqlite::Connection, account_id: i64) -> rusqlite::Result<UploadUsage> {
    c.prepare_cached(
        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outputs
         WHERE account_id = ?1 AND task_uuid IS NULL AND expires_at > ?2",
    )?
    .query_row(params![account_id, now_ms()], |r| {
        Ok(UploadUsage { files: r.get::<_, i64>(0)? as u64, bytes: r.get::<_, i64>(1)? as u64 })
    })
}
