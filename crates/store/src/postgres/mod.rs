//! The PostgreSQL store: the same records and semantics as [`crate::sqlite`], for a database
//! that several processes (the server and the CLI) share.
//!
//! Every method runs in one transaction on a pooled connection. Balances change only through
//! conditional row updates (`... WHERE balance_micros >= $price`), so concurrent admissions can
//! never overdraw; a task is recorded with `INSERT ... ON CONFLICT DO NOTHING` before it is
//! charged, so a concurrent duplicate of the same `(account, taskUUID)` waits for the first and
//! comes back [`Admission::Existing`], never charged twice. Admissions under a monthly spend cap
//! lock their account's row, so two of them cannot both pass the cap.
//!
//! **One server per database** (per schema): start-up recovery
//! ([`Store::fail_interrupted_tasks`], [`Store::resumable_tasks`], pending webhooks) assumes
//! that no other server is running tasks on the same data. [`PostgresOptions::single_server`]
//! makes [`PostgresStore::connect`] take a session-level advisory lock on a connection of its
//! own, held until the store is dropped; a second server then fails to start with
//! [`SERVER_LOCK_MESSAGE`]. CLI tools open the store without it.

mod schema;
mod server_lock;

pub use server_lock::SERVER_LOCK_TAKEN_MESSAGE;
use server_lock::ServerLock;

use crate::*;
use async_trait::async_trait;
use mediagate_core::Dialect;
use mediagate_core::task::ResultItem;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Connection, PgConnection, Postgres, Row, Transaction};
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

pub use schema::LATEST as SCHEMA_VERSION;

/// What a second server on the same database is told.
pub const SERVER_LOCK_MESSAGE: &str = "another mediagate server is using this PostgreSQL database; \
     running several servers on one database is not supported yet";

/// Options of the PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Connections in the pool at most.
    pub max_connections: u32,
    /// How long a query waits for a free connection before failing.
    pub acquire_timeout: Duration,
    /// Take the one-server-per-database lock (for `serve`; CLI commands leave it off).
    pub single_server: bool,
    /// How often the lock's connection is checked (and the lock taken again if it broke).
    pub lock_check_every: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(30),
            single_server: false,
            lock_check_every: Duration::from_secs(5),
        }
    }
}

/// The PostgreSQL implementation of [`Store`].
pub struct PostgresStore {
    pool: PgPool,
    /// The connection holding the session-level server lock, when one was taken. Dropping it
    /// closes the session, which releases the lock.
    server_lock: Option<ServerLock>,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(d) = &e
            && d.code().as_deref() == Some("23505")
        {
            return StoreError::Conflict(format!("already exists: {}", d.message()));
        }
        // No connection in time, or none that works: the database is stalled or unreachable,
        // which a client may retry (503), unlike a query the database refused.
        if matches!(
            e,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_)
        ) {
            return StoreError::Unavailable(e.to_string());
        }
        StoreError::Backend(e.to_string())
    }
}

/// `url` without its password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    // scheme://user:password@host/... -> scheme://user:***@host/...
    let Some(scheme_end) = url.find("://") else { return url.to_string() };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => {
            format!("{}{}:***{}", &url[..scheme_end + 3], &authority[..colon], &rest[at..])
        }
        _ => url.to_string(),
    }
}

/// The advisory lock key of the server lock, as SQL: per database (advisory locks are) and per
/// schema.
pub const SERVER_LOCK_KEY: &str =
    "hashtextextended('mediagate server ' || COALESCE(current_schema(), ''), 0)";

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL; `?options[search_path]=NAME`
    /// selects a schema), applies migrations and, with [`PostgresOptions::single_server`], takes
    /// the server lock or fails with [`StoreError::Conflict`] carrying [`SERVER_LOCK_MESSAGE`].
    pub async fn connect(url: &str, options: PostgresOptions) -> StoreResult<PostgresStore> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::Invalid(format!(
                "store.url ({}) is not a PostgreSQL URL: it must start with postgres:// or postgresql://",
                redact_url(url)
            )));
        }
        let connect = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::Invalid(format!("store.url ({}) is not usable: {e}", redact_url(url)))
        })?;
        Self::connect_with(connect, options).await
    }

    /// Like [`PostgresStore::connect`], from parsed connection options.
    pub async fn connect_with(
        connect: PgConnectOptions,
        options: PostgresOptions,
    ) -> StoreResult<PostgresStore> {
        let connect = connect.disable_statement_logging();
        let mut first = PgConnection::connect_with(&connect).await?;
        schema::migrate(&mut first).await?;
        let server_lock = if options.single_server {
            let Some(held) = server_lock::try_take(first).await? else {
                return Err(StoreError::Conflict(SERVER_LOCK_MESSAGE.into()));
            };
            Some(ServerLock::keep(held, connect.clone(), options.lock_check_every))
        } else {
            let _ = first.close().await;
            None
        };
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        Ok(PostgresStore { pool, server_lock })
    }

    /// Whether this store holds the one-server-per-database lock.
    pub fn holds_server_lock(&self) -> bool {
        self.server_lock.as_ref().is_some_and(|l| *l.state().borrow() == ServerLockState::Held)
    }

    /// The schema version the database is at.
    pub async fn schema_version(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(version), 0)::BIGINT FROM mediagate_schema_version")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Closes the pool and releases the server lock, waiting for both.
    pub async fn close(self) {
        if let Some(lock) = self.server_lock {
            lock.release().await;
        }
        self.pool.close().await;
    }

    async fn begin(&self) -> StoreResult<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

type Tx = Transaction<'static, Postgres>;

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn month_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms / 1000 * 1000)
        .map(|t| t.format("%Y-%m").to_string())
        .unwrap_or_else(|| "1970-01".into())
}

// --- row mapping ---------------------------------------------------------------------------

fn account_row(r: &PgRow) -> StoreResult<Account> {
    Ok(Account {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        status: AccountStatus::parse(&r.try_get::<String, _>("status")?).unwrap_or(AccountStatus::Suspended),
        balance_micros: r.try_get("balance_micros")?,
        created_at: r.try_get("created_at")?,
    })
}

const ACCOUNT_COLUMNS: &str = "id, name, status, balance_micros, created_at";

const KEY_COLUMNS: &str = "k.id, k.account_id, a.name AS account_name, k.prefix, k.description, k.scopes, \
                           k.status, k.created_at";

fn key_row(r: &PgRow) -> StoreResult<KeyRecord> {
    let scopes: String = r.try_get("scopes")?;
    Ok(KeyRecord {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        account_name: r.try_get("account_name")?,
        prefix: r.try_get("prefix")?,
        description: r.try_get("description")?,
        scopes: serde_json::from_str(&scopes).unwrap_or_default(),
        // An unreadable status must never grant access.
        status: KeyStatus::parse(&r.try_get::<String, _>("status")?).unwrap_or(KeyStatus::Revoked),
        created_at: r.try_get("created_at")?,
    })
}

const TASK_COLUMNS: &str = "account_id, task_uuid, task_type, model, status, request_hash, request, result, error, \
                            cost_micros, created_at, finished_at, timings, dialect, key_id, attempts, deleted_at";

fn task_row(r: &PgRow) -> StoreResult<TaskRecord> {
    let uuid: String = r.try_get("task_uuid")?;
    let result: Option<String> = r.try_get("result")?;
    let error: Option<String> = r.try_get("error")?;
    Ok(TaskRecord {
        account_id: r.try_get("account_id")?,
        task_uuid: Uuid::parse_str(&uuid).unwrap_or_default(),
        task_type: r.try_get("task_type")?,
        dialect: Dialect::parse(&r.try_get::<String, _>("dialect")?).unwrap_or(Dialect::Runware),
        model: r.try_get("model")?,
        status: TaskStatus::parse(&r.try_get::<String, _>("status")?).unwrap_or(TaskStatus::Error),
        request_hash: r.try_get("request_hash")?,
        request: r.try_get("request")?,
        results: result.and_then(|s| serde_json::from_str::<Vec<ResultItem>>(&s).ok()).unwrap_or_default(),
        error: error.and_then(|s| serde_json::from_str(&s).ok()),
        cost_micros: r.try_get("cost_micros")?,
        created_at: r.try_get("created_at")?,
        finished_at: r.try_get("finished_at")?,
        timings: r.try_get::<Option<String>, _>("timings")?.and_then(|t| serde_json::from_str(&t).ok()),
        key_id: r.try_get("key_id")?,
        attempts: r
            .try_get::<Option<String>, _>("attempts")?
            .and_then(|a| serde_json::from_str(&a).ok())
            .unwrap_or_default(),
        deleted_at: r.try_get("deleted_at")?,
    })
}

/// Binds a history query's values in order.
fn bind_history<'q>(
    mut q: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    binds: &'q [history::Bind],
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    for b in binds {
        q = match b {
            history::Bind::Int(i) => q.bind(*i),
            history::Bind::Text(t) => q.bind(t.as_str()),
        };
    }
    q
}

/// Output columns without the data itself (which may be large).
const OUTPUT_COLUMNS: &str = "uuid, account_id, task_uuid, content_type, extension, size, created_at, expires_at, \
                              data IS NOT NULL AS inline";

fn output_row(r: &PgRow) -> StoreResult<OutputRecord> {
    let uuid: String = r.try_get("uuid")?;
    let task: Option<String> = r.try_get("task_uuid")?;
    Ok(OutputRecord {
        uuid: Uuid::parse_str(&uuid).unwrap_or_default(),
        account_id: r.try_get("account_id")?,
        task_uuid: task.and_then(|t| Uuid::parse_str(&t).ok()),
        content_type: r.try_get("content_type")?,
        extension: r.try_get("extension")?,
        size: r.try_get::<i64, _>("size")? as u64,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        inline: r.try_get("inline")?,
    })
}

const ADMIN_KEY_COLUMNS: &str = "id, prefix, description, status, created_at";

fn admin_key_row(r: &PgRow) -> StoreResult<AdminKeyRecord> {
    Ok(AdminKeyRecord {
        id: r.try_get("id")?,
        prefix: r.try_get("prefix")?,
        description: r.try_get("description")?,
        // An unreadable status must never grant access.
        status: KeyStatus::parse(&r.try_get::<String, _>("status")?).unwrap_or(KeyStatus::Revoked),
        created_at: r.try_get("created_at")?,
    })
}

fn rows<T>(rows: Vec<PgRow>, f: impl Fn(&PgRow) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    rows.iter().map(f).collect()
}

// --- shared steps (each inside the caller's transaction) -------------------------------------

async fn admin_key_by_id(tx: &mut Tx, id: i64) -> StoreResult<AdminKeyRecord> {
    let row = sqlx::query(&format!("SELECT {ADMIN_KEY_COLUMNS} FROM admin_keys WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref()
        .map(admin_key_row)
        .transpose()?
        .ok_or_else(|| StoreError::NotFound(format!("admin key {id}")))
}

async fn account_by_name(tx: &mut Tx, name: &str, for_update: bool) -> StoreResult<Account> {
    let sql = format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE name = $1{}",
        if for_update { " FOR NO KEY UPDATE" } else { "" }
    );
    let row = sqlx::query(&sql).bind(name).fetch_optional(&mut **tx).await?;
    row.as_ref()
        .map(account_row)
        .transpose()?
        .ok_or_else(|| StoreError::NotFound(format!("account '{name}'")))
}

async fn key_by_id(tx: &mut Tx, id: i64, for_update: bool) -> StoreResult<KeyRecord> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE k.id = $1{}",
        if for_update { " FOR NO KEY UPDATE OF k" } else { "" }
    );
    let row = sqlx::query(&sql).bind(id).fetch_optional(&mut **tx).await?;
    row.as_ref().map(key_row).transpose()?.ok_or_else(|| StoreError::NotFound(format!("key {id}")))
}

async fn insert_account(tx: &mut Tx, name: &str, grant: i64, now: i64) -> StoreResult<Account> {
    crate::rules::check_new_account(name, grant)?;
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO accounts (name, status, balance_micros, created_at) VALUES ($1, 'active', $2, $3)
         ON CONFLICT (name) DO NOTHING RETURNING id",
    )
    .bind(name)
    .bind(grant)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(id) = id else {
        return Err(crate::rules::account_exists(name));
    };
    if grant > 0 {
        sqlx::query(
            "INSERT INTO ledger (account_id, amount_micros, kind, note, created_at) VALUES ($1, $2, 'grant', 'starting grant', $3)",
        )
        .bind(id)
        .bind(grant)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    account_by_name(tx, name, false).await
}

async fn insert_key(tx: &mut Tx, account: &Account, key: &NewKey, now: i64) -> StoreResult<KeyRecord> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO api_keys (account_id, digest, prefix, description, scopes, status, created_at)
         VALUES ($1, $2, $3, $4, $5, 'active', $6) RETURNING id",
    )
    .bind(account.id)
    .bind(&key.digest[..])
    .bind(&key.prefix)
    .bind(&key.description)
    .bind(serde_json::to_string(&key.scopes).unwrap_or_else(|_| "[]".into()))
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    key_by_id(tx, id, false).await
}

/// Debits `price` and writes the charge to the ledger, or changes nothing and returns the
/// balance when it cannot pay. The conditional update is the whole guarantee that balances never
/// go negative: it either debits in full or not at all (a concurrent debit of the same row waits
/// for this one and re-checks the condition on the new balance).
async fn charge(
    tx: &mut Tx,
    account_id: i64,
    price: i64,
    task_uuid: &str,
    note: &str,
    now: i64,
) -> StoreResult<Option<i64>> {
    if price <= 0 {
        return Ok(None);
    }
    let debited = sqlx::query(
        "UPDATE accounts SET balance_micros = balance_micros - $1 WHERE id = $2 AND balance_micros >= $1",
    )
    .bind(price)
    .bind(account_id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if debited == 0 {
        let balance: i64 = sqlx::query_scalar("SELECT balance_micros FROM accounts WHERE id = $1")
            .bind(account_id)
            .fetch_one(&mut **tx)
            .await?;
        return Ok(Some(balance));
    }
    sqlx::query(
        "INSERT INTO ledger (account_id, amount_micros, kind, task_uuid, note, created_at)
         VALUES ($1, $2, 'charge', $3, $4, $5)",
    )
    .bind(account_id)
    .bind(-price)
    .bind(task_uuid)
    .bind(note)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    add_spend(tx, account_id, price, now).await?;
    Ok(None)
}

/// Adds to (or, negative, takes from) the account's spend in the month of `now`.
async fn add_spend(tx: &mut Tx, account_id: i64, micros: i64, now: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO account_spend (account_id, month, spent_micros) VALUES ($1, $2, $3)
         ON CONFLICT (account_id, month) DO UPDATE SET spent_micros = account_spend.spent_micros + excluded.spent_micros",
    )
    .bind(account_id)
    .bind(month_of(now))
    .bind(micros)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn spent_this_month<'e, E>(e: E, account_id: i64, now: i64) -> StoreResult<i64>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    let spent: Option<i64> =
        sqlx::query_scalar("SELECT spent_micros FROM account_spend WHERE account_id = $1 AND month = $2")
            .bind(account_id)
            .bind(month_of(now))
            .fetch_optional(e)
            .await?;
    Ok(spent.unwrap_or(0).max(0))
}

/// The spend so far when `price` would take it past `cap` (0 = no cap). Locks the account's
/// row first, so concurrent admissions under a cap are checked one after the other.
async fn over_spend_cap(
    tx: &mut Tx,
    account_id: i64,
    price: i64,
    cap: i64,
    now: i64,
) -> StoreResult<Option<i64>> {
    if cap <= 0 || price <= 0 {
        return Ok(None);
    }
    // NO KEY UPDATE: the task row just inserted holds a KEY SHARE lock on the account (its
    // foreign key), which FOR UPDATE would wait on, so two admissions would deadlock.
    sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR NO KEY UPDATE")
        .bind(account_id)
        .execute(&mut **tx)
        .await?;
    let spent = spent_this_month(&mut **tx, account_id, now).await?;
    Ok((spent.saturating_add(price) > cap).then_some(spent))
}

/// Records output rows (inline bytes included); an output already recorded (a partial result
/// recorded again at the task's end) is left as it is.
async fn insert_outputs(
    tx: &mut Tx,
    account_id: i64,
    task_uuid: &str,
    outputs: &[NewOutput],
    now: i64,
) -> StoreResult<()> {
    for o in outputs {
        sqlx::query(
            "INSERT INTO outputs (uuid, account_id, task_uuid, content_type, extension, size, created_at, expires_at, data)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (uuid) DO NOTHING",
        )
        .bind(o.uuid.to_string())
        .bind(account_id)
        .bind(task_uuid)
        .bind(&o.content_type)
        .bind(&o.extension)
        .bind(o.size as i64)
        .bind(now)
        .bind(o.expires_at)
        .bind(o.inline_data.as_deref())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn refund(
    tx: &mut Tx,
    account_id: i64,
    micros: i64,
    task_uuid: &str,
    note: &str,
    now: i64,
) -> StoreResult<()> {
    if micros <= 0 {
        return Ok(());
    }
    sqlx::query("UPDATE accounts SET balance_micros = balance_micros + $1 WHERE id = $2")
        .bind(micros)
        .bind(account_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO ledger (account_id, amount_micros, kind, task_uuid, note, created_at) VALUES ($1, $2, 'refund', $3, $4, $5)",
    )
    .bind(account_id)
    .bind(micros)
    .bind(task_uuid)
    .bind(note)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    add_spend(tx, account_id, -micros, now).await
}

async fn visible_task(
    tx: &mut Tx,
    account_id: i64,
    uuid: &str,
    for_update: bool,
) -> StoreResult<Option<TaskRecord>> {
    let sql = format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE account_id = $1 AND task_uuid = $2 AND deleted_at IS NULL{}",
        if for_update { " FOR NO KEY UPDATE" } else { "" }
    );
    let row = sqlx::query(&sql).bind(account_id).bind(uuid).fetch_optional(&mut **tx).await?;
    row.as_ref().map(task_row).transpose()
}

async fn webhook_rows(
    tx: &mut Tx,
    filter: &str,
    account_id: Option<i64>,
    task_uuid: Option<String>,
) -> StoreResult<Vec<WebhookDelivery>> {
    let sql = format!(
        "SELECT webhook_id, account_id, task_uuid, url, payload, status FROM webhook_deliveries
         WHERE {filter} ORDER BY created_at, webhook_id COLLATE \"C\""
    );
    let mut q = sqlx::query(&sql);
    if let Some(a) = account_id {
        q = q.bind(a);
    }
    if let Some(t) = task_uuid {
        q = q.bind(t);
    }
    let found = q.fetch_all(&mut **tx).await?;
    let mut out = Vec::with_capacity(found.len());
    for r in &found {
        out.push(WebhookDelivery {
            webhook_id: r.try_get("webhook_id")?,
            account_id: r.try_get("account_id")?,
            task_uuid: r.try_get("task_uuid")?,
            url: r.try_get("url")?,
            payload: r.try_get("payload")?,
            status: r.try_get("status")?,
            attempts: vec![],
        });
    }
    for d in &mut out {
        let attempts = sqlx::query(
            "SELECT attempt, at, status_code, error, duration_ms FROM webhook_attempts WHERE webhook_id = $1 ORDER BY attempt, id",
        )
        .bind(&d.webhook_id)
        .fetch_all(&mut **tx)
        .await?;
        d.attempts = rows(attempts, |r| {
            Ok(WebhookAttempt {
                attempt: r.try_get::<i64, _>("attempt")? as u32,
                at: r.try_get("at")?,
                status_code: r.try_get::<Option<i64>, _>("status_code")?.map(|c| c as u16),
                error: r.try_get("error")?,
                duration_ms: r.try_get::<i64, _>("duration_ms")? as u64,
            })
        })?;
    }
    Ok(out)
}

fn json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(backend)
}

#[async_trait]
impl Store for PostgresStore {
    fn server_lock(&self) -> Option<tokio::sync::watch::Receiver<ServerLockState>> {
        self.server_lock.as_ref().map(ServerLock::state)
    }

    async fn create_account(&self, name: &str, initial_grant_micros: i64) -> StoreResult<Account> {
        let mut tx = self.begin().await?;
        let a = insert_account(&mut tx, name, initial_grant_micros, now_ms()).await?;
        tx.commit().await?;
        Ok(a)
    }

    async fn list_accounts(&self) -> StoreResult<Vec<Account>> {
        let found =
            sqlx::query(&format!("SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY name COLLATE \"C\""))
                .fetch_all(&self.pool)
                .await?;
        rows(found, account_row)
    }

    async fn account_by_name(&self, name: &str) -> StoreResult<Option<Account>> {
        let row = sqlx::query(&format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(account_row).transpose()
    }

    async fn set_account_status(&self, name: &str, status: AccountStatus) -> StoreResult<Account> {
        let mut tx = self.begin().await?;
        account_by_name(&mut tx, name, true).await?;
        sqlx::query("UPDATE accounts SET status = $1 WHERE name = $2")
            .bind(status.as_str())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let a = account_by_name(&mut tx, name, false).await?;
        tx.commit().await?;
        Ok(a)
    }

    async fn bootstrap(
        &self,
        account: &str,
        grant_micros: i64,
        key: NewKey,
    ) -> StoreResult<Option<(Account, KeyRecord)>> {
        let mut tx = self.begin().await?;
        // Two processes starting at once must not both find no account: this lock conflicts
        // with itself and with any insert into accounts, until the transaction ends.
        sqlx::query("LOCK TABLE accounts IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts").fetch_one(&mut *tx).await?;
        if n > 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let now = now_ms();
        let a = insert_account(&mut tx, account, grant_micros, now).await?;
        let k = insert_key(&mut tx, &a, &key, now).await?;
        tx.commit().await?;
        Ok(Some((a, k)))
    }

    async fn create_key(&self, account: &str, key: NewKey) -> StoreResult<KeyRecord> {
        let mut tx = self.begin().await?;
        let a = account_by_name(&mut tx, account, false).await?;
        let k = insert_key(&mut tx, &a, &key, now_ms()).await?;
        tx.commit().await?;
        Ok(k)
    }

    async fn list_keys(&self, account: Option<&str>) -> StoreResult<Vec<KeyRecord>> {
        let mut tx = self.begin().await?;
        if let Some(a) = account {
            account_by_name(&mut tx, a, false).await?;
        }
        let found = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys k JOIN accounts a ON a.id = k.account_id
             WHERE $1::TEXT IS NULL OR a.name = $1 ORDER BY k.id"
        ))
        .bind(account)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows(found, key_row)
    }

    async fn set_key_status(&self, id: i64, status: KeyStatus) -> StoreResult<KeyRecord> {
        let mut tx = self.begin().await?;
        let k = key_by_id(&mut tx, id, true).await?;
        if let Err(e) = crate::rules::check_key_status(id, k.status, status) {
            tx.rollback().await?;
            return Err(e);
        }
        sqlx::query("UPDATE api_keys SET status = $1 WHERE id = $2")
            .bind(status.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let k = key_by_id(&mut tx, id, false).await?;
        tx.commit().await?;
        Ok(k)
    }

    async fn key_by_digest(&self, digest: [u8; 32]) -> StoreResult<Option<(KeyRecord, Account)>> {
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS}, a.status AS a_status, a.balance_micros AS a_balance, a.created_at AS a_created
             FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE k.digest = $1"
        ))
        .bind(&digest[..])
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let k = key_row(&r)?;
        let a = Account {
            id: k.account_id,
            name: k.account_name.clone(),
            status: AccountStatus::parse(&r.try_get::<String, _>("a_status")?)
                .unwrap_or(AccountStatus::Suspended),
            balance_micros: r.try_get("a_balance")?,
            created_at: r.try_get("a_created")?,
        };
        Ok(Some((k, a)))
    }

    async fn grant(&self, account: &str, micros: i64, note: &str) -> StoreResult<i64> {
        crate::rules::check_grant(micros)?;
        let mut tx = self.begin().await?;
        let a = account_by_name(&mut tx, account, true).await?;
        let balance = a
            .balance_micros
            .checked_add(micros)
            .ok_or_else(|| StoreError::Invalid("the balance would overflow".into()))?;
        sqlx::query("UPDATE accounts SET balance_micros = $1 WHERE id = $2")
            .bind(balance)
            .bind(a.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO ledger (account_id, amount_micros, kind, note, created_at) VALUES ($1, $2, 'grant', $3, $4)",
        )
        .bind(a.id)
        .bind(micros)
        .bind(note)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(balance)
    }

    async fn ledger(&self, account: &str, limit: u32) -> StoreResult<Vec<LedgerEntry>> {
        let mut tx = self.begin().await?;
        let a = account_by_name(&mut tx, account, false).await?;
        let found = sqlx::query(
            "SELECT id, amount_micros, kind, task_uuid, note, created_at FROM ledger
             WHERE account_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(a.id)
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows(found, |r| {
            Ok(LedgerEntry {
                id: r.try_get("id")?,
                amount_micros: r.try_get("amount_micros")?,
                kind: r.try_get("kind")?,
                task_uuid: r.try_get("task_uuid")?,
                note: r.try_get("note")?,
                created_at: r.try_get("created_at")?,
            })
        })
    }

    async fn admit_task(&self, t: NewTask) -> StoreResult<Admission> {
        let uuid = t.task_uuid.to_string();
        let mut tx = self.begin().await?;
        if let Some(rec) = visible_task(&mut tx, t.account_id, &uuid, false).await? {
            tx.rollback().await?;
            return Ok(Admission::Existing(Box::new(rec)));
        }
        let now = now_ms();
        // The task row first: a concurrent admission of the same (account, taskUUID) waits here
        // for this transaction, then finds the row (or, if this one rolled back, inserts it).
        let inserted = sqlx::query(
            "INSERT INTO tasks (account_id, task_uuid, task_type, model, status, request_hash, request, cost_micros,
                                created_at, delivery, payload, webhook_url, dialect, key_id)
             VALUES ($1, $2, $3, $4, 'processing', $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (account_id, task_uuid) DO NOTHING",
        )
        .bind(t.account_id)
        .bind(&uuid)
        .bind(&t.task_type)
        .bind(&t.model)
        .bind(&t.request_hash[..])
        .bind(&t.request)
        .bind(t.price_micros)
        .bind(now)
        .bind(if t.resumable_payload.is_some() { "async" } else { "sync" })
        .bind(&t.resumable_payload)
        .bind(&t.webhook_url)
        .bind(t.dialect.as_str())
        .bind(t.key_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            // Committed by someone else since our first look (read committed: this statement
            // sees it), or a deleted task that keeps its UUID.
            let found = visible_task(&mut tx, t.account_id, &uuid, false).await?;
            tx.rollback().await?;
            return Ok(match found {
                Some(rec) => Admission::Existing(Box::new(rec)),
                None => Admission::Deleted,
            });
        }
        if let Some(spent_micros) =
            over_spend_cap(&mut tx, t.account_id, t.price_micros, t.spend_cap_micros, now).await?
        {
            tx.rollback().await?;
            return Ok(Admission::SpendCapReached { spent_micros });
        }
        if let Some(balance_micros) =
            charge(&mut tx, t.account_id, t.price_micros, &uuid, &t.task_type, now).await?
        {
            tx.rollback().await?;
            return Ok(Admission::InsufficientCredits { balance_micros });
        }
        tx.commit().await?;
        Ok(Admission::Admitted)
    }

    async fn readmit_failed_task(&self, t: NewTask) -> StoreResult<Admission> {
        let uuid = t.task_uuid.to_string();
        let mut tx = self.begin().await?;
        let current = visible_task(&mut tx, t.account_id, &uuid, true)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("task {uuid}")))?;
        if current.status != TaskStatus::Error {
            tx.rollback().await?;
            return Ok(Admission::Existing(Box::new(current)));
        }
        let now = now_ms();
        let note = format!("{} (retry)", t.task_type);
        if let Some(spent_micros) =
            over_spend_cap(&mut tx, t.account_id, t.price_micros, t.spend_cap_micros, now).await?
        {
            tx.rollback().await?;
            return Ok(Admission::SpendCapReached { spent_micros });
        }
        if let Some(balance_micros) = charge(&mut tx, t.account_id, t.price_micros, &uuid, &note, now).await?
        {
            tx.rollback().await?;
            return Ok(Admission::InsufficientCredits { balance_micros });
        }
        sqlx::query(
            "UPDATE tasks SET status = 'processing', error = NULL, result = NULL, cost_micros = $1,
                    finished_at = NULL, delivery = $2, payload = $3, webhook_url = $4, key_id = $7, attempts = NULL
             WHERE account_id = $5 AND task_uuid = $6 AND status = 'error'",
        )
        .bind(t.price_micros)
        .bind(if t.resumable_payload.is_some() { "async" } else { "sync" })
        .bind(&t.resumable_payload)
        .bind(&t.webhook_url)
        .bind(t.account_id)
        .bind(&uuid)
        .bind(t.key_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Admission::Admitted)
    }

    async fn raise_reservation(
        &self,
        account_id: i64,
        task_uuid: Uuid,
        price_micros: i64,
        spend_cap_micros: i64,
    ) -> StoreResult<Reservation> {
        let uuid = task_uuid.to_string();
        let mut tx = self.begin().await?;
        // The row lock orders this against the task's own finish, so the difference is never
        // charged to a task whose reservation was already settled.
        let reserved: Option<i64> = sqlx::query_scalar(
            "SELECT cost_micros FROM tasks WHERE account_id = $1 AND task_uuid = $2 AND status = 'processing'
             FOR NO KEY UPDATE",
        )
        .bind(account_id)
        .bind(&uuid)
        .fetch_optional(&mut *tx)
        .await?;
        let reserved =
            reserved.ok_or_else(|| StoreError::Conflict(format!("task {uuid} is not processing")))?;
        let more = price_micros.saturating_sub(reserved);
        if more <= 0 {
            tx.rollback().await?;
            return Ok(Reservation::Covered);
        }
        let now = now_ms();
        if let Some(spent_micros) = over_spend_cap(&mut tx, account_id, more, spend_cap_micros, now).await? {
            tx.rollback().await?;
            return Ok(Reservation::SpendCapReached { spent_micros });
        }
        if let Some(balance_micros) =
            charge(&mut tx, account_id, more, &uuid, "priced by its size", now).await?
        {
            tx.rollback().await?;
            return Ok(Reservation::InsufficientCredits { balance_micros });
        }
        sqlx::query("UPDATE tasks SET cost_micros = $1 WHERE account_id = $2 AND task_uuid = $3")
            .bind(price_micros)
            .bind(account_id)
            .bind(&uuid)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Reservation::Covered)
    }

    async fn record_partial_results(
        &self,
        account_id: i64,
        task_uuid: Uuid,
        results: Vec<ResultItem>,
        outputs: Vec<NewOutput>,
    ) -> StoreResult<()> {
        let uuid = task_uuid.to_string();
        let mut tx = self.begin().await?;
        insert_outputs(&mut tx, account_id, &uuid, &outputs, now_ms()).await?;
        sqlx::query(
            "UPDATE tasks SET result = $1 WHERE account_id = $2 AND task_uuid = $3 AND status = 'processing'",
        )
        .bind(json(&results)?)
        .bind(account_id)
        .bind(&uuid)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn finish_task(&self, f: Finish) -> StoreResult<Settled> {
        let uuid = f.task_uuid.to_string();
        let now = now_ms();
        let timings = f.timings.map(|t| serde_json::to_string(&t).unwrap_or_default());
        let attempts = history::attempts_json(&f.attempts);
        let mut tx = self.begin().await?;
        // Locked, so two finishes of one task are one after the other and the second finds it
        // no longer processing.
        let reserved: i64 = sqlx::query_scalar(
            "SELECT cost_micros FROM tasks WHERE account_id = $1 AND task_uuid = $2 AND status = 'processing' FOR NO KEY UPDATE",
        )
        .bind(f.account_id)
        .bind(&uuid)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::Conflict(format!("task {uuid} is not processing")))?;
        let settled = f.outcome.settle(reserved);
        match f.outcome {
            FinishOutcome::Success { results, outputs, cost_micros } => {
                let cost = cost_micros.clamp(0, reserved);
                refund(&mut tx, f.account_id, reserved - cost, &uuid, "unused reservation", now).await?;
                insert_outputs(&mut tx, f.account_id, &uuid, &outputs, now).await?;
                sqlx::query(
                    "UPDATE tasks SET status = 'success', result = $1, cost_micros = $2, finished_at = $3, payload = NULL,
                     timings = $6, attempts = COALESCE($7, attempts) WHERE account_id = $4 AND task_uuid = $5",
                )
                .bind(json(&results)?)
                .bind(cost)
                .bind(now)
                .bind(f.account_id)
                .bind(&uuid)
                .bind(&timings)
                .bind(&attempts)
                .execute(&mut *tx)
                .await?;
            }
            FinishOutcome::Failure { error } => {
                refund(&mut tx, f.account_id, reserved, &uuid, "task failed", now).await?;
                sqlx::query(
                    "UPDATE tasks SET status = 'error', error = $1, cost_micros = 0, finished_at = $2, payload = NULL,
                     timings = $5, attempts = COALESCE($6, attempts) WHERE account_id = $3 AND task_uuid = $4",
                )
                .bind(json(&error)?)
                .bind(now)
                .bind(f.account_id)
                .bind(&uuid)
                .bind(&timings)
                .bind(&attempts)
                .execute(&mut *tx)
                .await?;
            }
            FinishOutcome::PartlyDelivered { error, cost_micros } => {
                let cost = cost_micros.clamp(0, reserved);
                refund(&mut tx, f.account_id, reserved - cost, &uuid, "undelivered results", now).await?;
                sqlx::query(
                    "UPDATE tasks SET status = 'error', error = $1, cost_micros = $2, finished_at = $3, payload = NULL,
                     timings = $6, attempts = COALESCE($7, attempts) WHERE account_id = $4 AND task_uuid = $5",
                )
                .bind(json(&error)?)
                .bind(cost)
                .bind(now)
                .bind(f.account_id)
                .bind(&uuid)
                .bind(&timings)
                .bind(&attempts)
                .execute(&mut *tx)
                .await?;
            }
        }
        for w in &f.webhooks {
            sqlx::query(
                "INSERT INTO webhook_deliveries (webhook_id, account_id, task_uuid, url, payload, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6)",
            )
            .bind(&w.webhook_id)
            .bind(f.account_id)
            .bind(&uuid)
            .bind(&w.url)
            .bind(&w.payload)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(settled)
    }

    async fn list_tasks(&self, req: history::HistoryRequest) -> StoreResult<history::HistoryPage> {
        let q = history::build(&req, history::Sql::Postgres, TASK_COLUMNS);
        let rows = bind_history(sqlx::query(&q.page), &q.binds).fetch_all(&self.pool).await?;
        let rows = rows
            .iter()
            .map(|r| {
                Ok((
                    task_row(r)?,
                    history::HistoryPosition {
                        created_at: r.try_get("pos_at")?,
                        task_uuid: r.try_get("pos_uuid")?,
                    },
                ))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let edge = match &q.edge {
            Some(sql) if rows.len() <= req.limit as usize => {
                bind_history(sqlx::query(sql), &q.binds[..q.edge_binds])
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|r| -> StoreResult<_> {
                        Ok(history::HistoryPosition { created_at: r.try_get(0)?, task_uuid: r.try_get(1)? })
                    })
                    .transpose()?
            }
            _ => None,
        };
        Ok(history::page_of(rows, req.limit, edge))
    }

    async fn history_task(&self, account_id: i64, task_uuid: Uuid) -> StoreResult<Option<TaskRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE account_id = $1 AND task_uuid = $2"
        ))
        .bind(account_id)
        .bind(task_uuid.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(task_row).transpose()
    }

    async fn get_task(&self, account_id: i64, task_uuid: Uuid) -> StoreResult<Option<TaskRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE account_id = $1 AND task_uuid = $2 AND deleted_at IS NULL"
        ))
        .bind(account_id)
        .bind(task_uuid.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(task_row).transpose()
    }

    async fn count_tasks(&self, account_id: Option<i64>, status: Option<TaskStatus>) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM tasks WHERE ($1::BIGINT IS NULL OR account_id = $1) AND ($2::TEXT IS NULL OR status = $2)",
        )
        .bind(account_id)
        .bind(status.map(|s| s.as_str()))
        .fetch_one(&self.pool)
        .await?;
        Ok(n as u64)
    }

    async fn fail_interrupted_tasks(&self, error: StoredError) -> StoreResult<u64> {
        let now = now_ms();
        let err = json(&error)?;
        let mut tx = self.begin().await?;
        let stuck = sqlx::query(
            "SELECT account_id, task_uuid, cost_micros FROM tasks WHERE status = 'processing' AND payload IS NULL
             ORDER BY account_id, task_uuid FOR NO KEY UPDATE",
        )
        .fetch_all(&mut *tx)
        .await?;
        for r in &stuck {
            let (account, uuid, reserved): (i64, String, i64) =
                (r.try_get("account_id")?, r.try_get("task_uuid")?, r.try_get("cost_micros")?);
            refund(&mut tx, account, reserved, &uuid, "interrupted by restart", now).await?;
            sqlx::query(
                "UPDATE tasks SET status = 'error', error = $1, cost_micros = 0, finished_at = $2
                 WHERE account_id = $3 AND task_uuid = $4",
            )
            .bind(&err)
            .bind(now)
            .bind(account)
            .bind(&uuid)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(stuck.len() as u64)
    }

    async fn resumable_tasks(&self) -> StoreResult<Vec<ResumableTask>> {
        let found = sqlx::query(
            "SELECT t.account_id, a.name, t.task_uuid, t.task_type, t.payload, t.webhook_url, t.dialect
             FROM tasks t JOIN accounts a ON a.id = t.account_id
             WHERE t.status = 'processing' AND t.payload IS NOT NULL ORDER BY t.created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows(found, |r| {
            let uuid: String = r.try_get("task_uuid")?;
            Ok(ResumableTask {
                account_id: r.try_get("account_id")?,
                account_name: r.try_get("name")?,
                task_uuid: Uuid::parse_str(&uuid).unwrap_or_default(),
                task_type: r.try_get("task_type")?,
                payload: r.try_get("payload")?,
                webhook_url: r.try_get("webhook_url")?,
                dialect: Dialect::parse(&r.try_get::<String, _>("dialect")?).unwrap_or(Dialect::Runware),
            })
        })
    }

    async fn webhook_secret(&self, account_id: i64, candidate: String, rotate: bool) -> StoreResult<String> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE accounts SET webhook_secret = $1 WHERE id = $2 AND (webhook_secret IS NULL OR $3)",
        )
        .bind(&candidate)
        .bind(account_id)
        .bind(rotate)
        .execute(&mut *tx)
        .await?;
        let secret: Option<Option<String>> =
            sqlx::query_scalar("SELECT webhook_secret FROM accounts WHERE id = $1")
                .bind(account_id)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        match secret {
            Some(Some(s)) => Ok(s),
            Some(None) => Err(StoreError::Backend(format!("account {account_id} has no webhook secret"))),
            None => Err(StoreError::NotFound(format!("account {account_id}"))),
        }
    }

    async fn record_webhook_attempt(
        &self,
        webhook_id: &str,
        a: WebhookAttempt,
        done: Option<&'static str>,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (webhook_id, attempt, at, status_code, error, duration_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(webhook_id)
        .bind(a.attempt as i64)
        .bind(a.at)
        .bind(a.status_code.map(i64::from))
        .bind(&a.error)
        .bind(a.duration_ms as i64)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET attempts = $2, updated_at = $3, status = COALESCE($4, status)
             WHERE webhook_id = $1",
        )
        .bind(webhook_id)
        .bind(a.attempt as i64)
        .bind(a.at)
        .bind(done)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn pending_webhooks(&self) -> StoreResult<Vec<WebhookDelivery>> {
        let mut tx = self.begin().await?;
        let out = webhook_rows(&mut tx, "status = 'pending'", None, None).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn webhook_deliveries(
        &self,
        account_id: i64,
        task_uuid: Uuid,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let mut tx = self.begin().await?;
        let out = webhook_rows(
            &mut tx,
            "account_id = $1 AND task_uuid = $2",
            Some(account_id),
            Some(task_uuid.to_string()),
        )
        .await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn schema_state(&self) -> StoreResult<SchemaState> {
        Ok(SchemaState { applied: self.schema_version().await?, expected: SCHEMA_VERSION })
    }

    async fn limit_overrides(&self) -> StoreResult<Vec<LimitOverride>> {
        let found = sqlx::query(
            "SELECT l.account_id, a.name, l.model, l.settings FROM account_limits l
             JOIN accounts a ON a.id = l.account_id ORDER BY a.name COLLATE \"C\", l.model COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await?;
        rows(found, |r| {
            let model: String = r.try_get("model")?;
            let settings: String = r.try_get("settings")?;
            Ok(LimitOverride {
                account_id: r.try_get("account_id")?,
                account_name: r.try_get("name")?,
                model: (!model.is_empty()).then_some(model),
                values: serde_json::from_str(&settings).unwrap_or_default(),
            })
        })
    }

    async fn set_limits(&self, account: &str, model: Option<&str>, values: LimitValues) -> StoreResult<()> {
        let model = model.unwrap_or("");
        let mut tx = self.begin().await?;
        let a = account_by_name(&mut tx, account, false).await?;
        if values.is_empty() {
            sqlx::query("DELETE FROM account_limits WHERE account_id = $1 AND model = $2")
                .bind(a.id)
                .bind(model)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query(
                "INSERT INTO account_limits (account_id, model, settings, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (account_id, model) DO UPDATE SET settings = excluded.settings,
                                                             updated_at = excluded.updated_at",
            )
            .bind(a.id)
            .bind(model)
            .bind(json(&values)?)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn month_spend(&self, account_id: i64) -> StoreResult<i64> {
        spent_this_month(&self.pool, account_id, now_ms()).await
    }

    async fn recent_admissions(
        &self,
        account_id: i64,
        model: &str,
        since_ms: i64,
    ) -> StoreResult<Vec<(i64, Uuid)>> {
        let found = sqlx::query(
            "SELECT created_at, task_uuid FROM tasks
             WHERE account_id = $1 AND model = $2 AND created_at > $3 AND status != 'error'",
        )
        .bind(account_id)
        .bind(model)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        rows(found, |r| {
            let u: String = r.try_get("task_uuid")?;
            Ok((r.try_get::<i64, _>("created_at")?, Uuid::parse_str(&u).unwrap_or_default()))
        })
    }

    async fn recent_task_counts(&self, account_id: i64, since_ms: i64) -> StoreResult<Vec<(String, u32)>> {
        let found = sqlx::query(
            "SELECT model, COUNT(*) AS n FROM tasks
             WHERE account_id = $1 AND created_at > $2 AND status != 'error' AND model IS NOT NULL
             GROUP BY model",
        )
        .bind(account_id)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        rows(found, |r| Ok((r.try_get("model")?, r.try_get::<i64, _>("n")? as u32)))
    }

    async fn create_admin_key(&self, key: NewKey) -> StoreResult<AdminKeyRecord> {
        let mut tx = self.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO admin_keys (digest, prefix, description, status, created_at)
             VALUES ($1, $2, $3, 'active', $4) RETURNING id",
        )
        .bind(&key.digest[..])
        .bind(&key.prefix)
        .bind(&key.description)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        let k = admin_key_by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok(k)
    }

    async fn list_admin_keys(&self) -> StoreResult<Vec<AdminKeyRecord>> {
        let found = sqlx::query(&format!("SELECT {ADMIN_KEY_COLUMNS} FROM admin_keys ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows(found, admin_key_row)
    }

    async fn set_admin_key_status(&self, id: i64, status: KeyStatus) -> StoreResult<AdminKeyRecord> {
        let mut tx = self.begin().await?;
        sqlx::query("SELECT id FROM admin_keys WHERE id = $1 FOR NO KEY UPDATE")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let k = admin_key_by_id(&mut tx, id).await?;
        if let Err(e) = crate::rules::check_admin_key_status(id, k.status, status) {
            tx.rollback().await?;
            return Err(e);
        }
        sqlx::query("UPDATE admin_keys SET status = $1 WHERE id = $2")
            .bind(status.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let k = admin_key_by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok(k)
    }

    async fn admin_key_by_digest(&self, digest: [u8; 32]) -> StoreResult<Option<AdminKeyRecord>> {
        let row = sqlx::query(&format!("SELECT {ADMIN_KEY_COLUMNS} FROM admin_keys WHERE digest = $1"))
            .bind(&digest[..])
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(admin_key_row).transpose()
    }

    async fn get_output(&self, uuid: Uuid) -> StoreResult<Option<OutputRecord>> {
        let row = sqlx::query(&format!("SELECT {OUTPUT_COLUMNS} FROM outputs WHERE uuid = $1"))
            .bind(uuid.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(output_row).transpose()
    }

    async fn output_data(&self, uuid: Uuid) -> StoreResult<Option<Vec<u8>>> {
        let data: Option<Option<Vec<u8>>> = sqlx::query_scalar("SELECT data FROM outputs WHERE uuid = $1")
            .bind(uuid.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(data.flatten())
    }

    async fn take_expired_outputs(&self, now_ms: i64, limit: u32) -> StoreResult<Vec<OutputRecord>> {
        let mut tx = self.begin().await?;
        let found = sqlx::query(&format!(
            "DELETE FROM outputs WHERE uuid IN (
                 SELECT uuid FROM outputs WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED
             ) RETURNING {OUTPUT_COLUMNS}"
        ))
        .bind(now_ms)
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut out = rows(found, output_row)?;
        out.sort_by_key(|o| o.expires_at);
        Ok(out)
    }

    async fn insert_upload(
        &self,
        account_id: i64,
        upload: NewOutput,
        keep_secs: Option<i64>,
        quota: UploadQuota,
    ) -> StoreResult<Result<(), UploadUsage>> {
        let mut tx = self.begin().await?;
        // The account's row lock orders its concurrent uploads, so the count below is exact.
        sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR UPDATE")
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
        let usage = upload_usage(&mut tx, account_id).await?;
        if !quota.admits(usage, upload.size) {
            return Ok(Err(usage));
        }
        sqlx::query(
            "INSERT INTO outputs (uuid, account_id, task_uuid, content_type, extension, size, created_at, expires_at, data, keep_secs)
             VALUES ($1, $2, NULL, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(upload.uuid.to_string())
        .bind(account_id)
        .bind(&upload.content_type)
        .bind(&upload.extension)
        .bind(upload.size as i64)
        .bind(now_ms())
        .bind(upload.expires_at)
        .bind(upload.inline_data.as_deref())
        .bind(keep_secs)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    async fn upload_usage(&self, account_id: i64) -> StoreResult<UploadUsage> {
        let mut tx = self.begin().await?;
        let usage = upload_usage(&mut tx, account_id).await?;
        tx.commit().await?;
        Ok(usage)
    }

    async fn touch_output(&self, uuid: Uuid) -> StoreResult<Option<OutputRecord>> {
        let id = uuid.to_string();
        let now = now_ms();
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE outputs SET expires_at = GREATEST(expires_at, $1 + keep_secs * 1000)
             WHERE uuid = $2 AND keep_secs IS NOT NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(&format!("SELECT {OUTPUT_COLUMNS} FROM outputs WHERE uuid = $1"))
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        row.as_ref().map(output_row).transpose()
    }

    async fn delete_output(&self, account_id: i64, uuid: Uuid) -> StoreResult<Option<OutputRecord>> {
        let row = sqlx::query(&format!(
            "DELETE FROM outputs WHERE uuid = $1 AND account_id = $2 RETURNING {OUTPUT_COLUMNS}"
        ))
        .bind(uuid.to_string())
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(output_row).transpose()
    }

    async fn delete_task(&self, account_id: i64, task_uuid: Uuid) -> StoreResult<bool> {
        let n = sqlx::query(
            "UPDATE tasks SET deleted_at = $1 WHERE account_id = $2 AND task_uuid = $3
             AND deleted_at IS NULL AND status != 'processing'",
        )
        .bind(now_ms())
        .bind(account_id)
        .bind(task_uuid.to_string())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn usage_by_day(
        &self,
        account_id: i64,
        from_ms: i64,
        before_ms: i64,
    ) -> StoreResult<Vec<DailyUsage>> {
        // Reservations are charges and their returns refunds, so the sum over a task's ledger
        // rows is what it cost; the day is the (UTC) day of each movement.
        let found = sqlx::query(
            "SELECT day, model, spent FROM (
                 SELECT to_char(to_timestamp(l.created_at / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
                        COALESCE(t.model, '') AS model, (-SUM(l.amount_micros))::BIGINT AS spent
                 FROM ledger l JOIN tasks t ON t.account_id = l.account_id AND t.task_uuid = l.task_uuid
                 WHERE l.account_id = $1 AND l.created_at >= $2 AND l.created_at < $3
                   AND l.kind IN ('charge', 'refund')
                 GROUP BY 1, 2
             ) u ORDER BY day COLLATE \"C\", model COLLATE \"C\"",
        )
        .bind(account_id)
        .bind(from_ms)
        .bind(before_ms)
        .fetch_all(&self.pool)
        .await?;
        rows(found, |r| {
            Ok(DailyUsage {
                day: r.try_get("day")?,
                model: r.try_get("model")?,
                spent_micros: r.try_get("spent")?,
            })
        })
    }
}

/// An account's live uploads, counted through `outputs_uploads_by_account`.
async fn upload_usage(tx: &mut Tx, account_id: i64) -> StoreResult<UploadUsage> {
    let (files, bytes): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*)::BIGINT, COALESCE(SUM(size), 0)::BIGINT FROM outputs
         WHERE account_id = $1 AND task_uuid IS NULL AND expires_at > $2",
    )
    .bind(account_id)
    .bind(now_ms())
    .fetch_one(&mut **tx)
    .await?;
    Ok(UploadUsage { files: files as u64, bytes: bytes as u64 })
}
