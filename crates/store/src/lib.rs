//! Persistence for mediagate: accounts, API keys, the credit ledger, task records and outputs.
//!
//! [`Store`] is the one interface the engine and the CLI use; [`sqlite::SqliteStore`] is the
//! embedded implementation, [`postgres::PostgresStore`] the one on a PostgreSQL database. Every method is atomic on its own: a task's admission checks
//! idempotency, reserves credits and records the task in one transaction, so the balance can
//! never go negative and a replayed `taskUUID` is never charged twice.

#![warn(missing_docs)]

pub mod history;
pub mod postgres;
mod rules;
pub mod sqlite;
mod types;

pub use sqlite::WriterStats;
pub use types::*;

use async_trait::async_trait;
use uuid::Uuid;

/// Errors of the store. `NotFound`, `Conflict` and `Invalid` are the caller's; `Backend` is ours.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The thing already exists or the change contradicts the current state.
    #[error("{0}")]
    Conflict(String),
    /// The request makes no sense (e.g. a negative grant).
    #[error("{0}")]
    Invalid(String),
    /// The database failed (I/O, corruption, shutdown).
    #[error("store failure: {0}")]
    Backend(String),
    /// The disk holding the database is full; the write did not happen. Transient: it succeeds
    /// again once space is freed.
    #[error("storage full: {0}")]
    StorageFull(String),
    /// The database cannot be reached now (connection refused, no pooled connection within
    /// the acquire timeout). Transient.
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        // SQLite reports a write that hit ENOSPC as SQLITE_FULL.
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => StoreError::StorageFull(e.to_string()),
            _ => StoreError::Backend(e.to_string()),
        }
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// Where a server stands on its claim to be the only server on a shared database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerLockState {
    /// The claim is held.
    Held,
    /// The connection holding it broke; it is being taken again.
    Reconnecting,
    /// Another server took it while the connection was down: this one must stop.
    Lost,
}

/// The persistence interface. Implementations must be safe to use from several processes on
/// the same database (the CLI runs beside the server).
#[async_trait]
pub trait Store: Send + Sync {
    // --- accounts ---------------------------------------------------------------------------
    /// Creates an account with an optional starting grant (in micro-dollars).
    async fn create_account(&self, name: &str, initial_grant_micros: i64) -> StoreResult<Account>;
    /// Every account, by name.
    async fn list_accounts(&self) -> StoreResult<Vec<Account>>;
    /// One account by name.
    async fn account_by_name(&self, name: &str) -> StoreResult<Option<Account>>;
    /// Suspends or reactivates an account.
    async fn set_account_status(&self, name: &str, status: AccountStatus) -> StoreResult<Account>;
    /// Creates the first account and its first key if the store has no account yet, in one
    /// transaction; returns `None` when accounts already exist.
    async fn bootstrap(
        &self,
        account: &str,
        grant_micros: i64,
        key: NewKey,
    ) -> StoreResult<Option<(Account, KeyRecord)>>;

    // --- API keys ---------------------------------------------------------------------------
    /// Stores a new key (its digest only) for an account.
    async fn create_key(&self, account: &str, key: NewKey) -> StoreResult<KeyRecord>;
    /// Keys, optionally of one account.
    async fn list_keys(&self, account: Option<&str>) -> StoreResult<Vec<KeyRecord>>;
    /// Disables, re-enables or revokes a key. A revoked key can never be enabled again.
    async fn set_key_status(&self, id: i64, status: KeyStatus) -> StoreResult<KeyRecord>;
    /// The key with this SHA-256 digest, with its account.
    async fn key_by_digest(&self, digest: [u8; 32]) -> StoreResult<Option<(KeyRecord, Account)>>;

    // --- credits ----------------------------------------------------------------------------
    /// Adds credit; returns the new balance.
    async fn grant(&self, account: &str, micros: i64, note: &str) -> StoreResult<i64>;
    /// The newest ledger entries of an account, newest first.
    async fn ledger(&self, account: &str, limit: u32) -> StoreResult<Vec<LedgerEntry>>;

    // --- tasks ------------------------------------------------------------------------------
    /// Admits a task: returns the existing record for a known `(account, taskUUID)`, refuses
    /// when the balance cannot pay, else reserves the price and records the task as running.
    /// An async task (with a resumable payload) is answered once that is durable. A sync task may
    /// be answered as soon as the decision is made: its client is told nothing before
    /// [`Store::finish_task`] commits, which commits after the admission or, had the admission
    /// been lost, fails for want of a running task.
    async fn admit_task(&self, task: NewTask) -> StoreResult<Admission>;
    /// Runs a task that ended in a (retryable) error again under the same taskUUID: reserves
    /// the price anew and sets it back to `processing`. Returns `Admitted`, or
    /// `InsufficientCredits`, or `Existing` when the task is no longer in error (a race).
    async fn readmit_failed_task(&self, task: NewTask) -> StoreResult<Admission>;
    /// Raises a running task's reservation to `price_micros` when its price turns out higher
    /// than admission could know (an upscale's output size is known once its input is read),
    /// charging the difference under admission's rules: the balance must cover it and the
    /// month's spend stay within `spend_cap_micros` (0 = none). A reservation already at or
    /// above `price_micros` is left alone, so a task run again after a restart is not charged
    /// twice. A task that is not running is a `Conflict`.
    async fn raise_reservation(
        &self,
        account_id: i64,
        task_uuid: Uuid,
        price_micros: i64,
        spend_cap_micros: i64,
    ) -> StoreResult<Reservation>;
    /// Records the results a running task has produced so far (and their outputs), so
    /// `getResponse` can return them before the task ends.
    async fn record_partial_results(
        &self,
        account_id: i64,
        task_uuid: Uuid,
        results: Vec<mediagate_core::task::ResultItem>,
        outputs: Vec<NewOutput>,
    ) -> StoreResult<()>;
    /// Records a task's outcome, its outputs and any refund, atomically; returns what it
    /// charged and refunded.
    async fn finish_task(&self, finish: Finish) -> StoreResult<Settled>;
    /// A page of task history, newest first (see [`history`]). Tasks hidden by a Runway
    /// `DELETE` are listed too, with their `deleted_at`.
    async fn list_tasks(&self, req: history::HistoryRequest) -> StoreResult<history::HistoryPage>;
    /// One task as history shows it, hidden or not.
    async fn history_task(&self, account_id: i64, task_uuid: Uuid) -> StoreResult<Option<TaskRecord>>;
    /// One task of an account.
    async fn get_task(&self, account_id: i64, task_uuid: Uuid) -> StoreResult<Option<TaskRecord>>;
    /// Tasks of an account, optionally by status.
    async fn count_tasks(&self, account_id: Option<i64>, status: Option<TaskStatus>) -> StoreResult<u64>;
    /// Marks every sync task still `processing` as failed with `error` and refunds it. Run at
    /// start-up, before serving, to settle tasks a crash left behind. Returns how many.
    async fn fail_interrupted_tasks(&self, error: StoredError) -> StoreResult<u64>;
    /// Async tasks still `processing` (admitted and acknowledged, not finished): a restart runs
    /// them again.
    async fn resumable_tasks(&self) -> StoreResult<Vec<ResumableTask>>;

    // --- webhooks ---------------------------------------------------------------------------
    /// The account's webhook signing secret: `candidate` becomes it when there is none yet or
    /// when `rotate` is set.
    async fn webhook_secret(&self, account_id: i64, candidate: String, rotate: bool) -> StoreResult<String>;
    /// Records one attempt; `done` = Some("delivered" | "failed") ends the delivery.
    async fn record_webhook_attempt(
        &self,
        webhook_id: &str,
        attempt: WebhookAttempt,
        done: Option<&'static str>,
    ) -> StoreResult<()>;
    /// Deliveries not yet delivered or given up (resumed at start-up).
    async fn pending_webhooks(&self) -> StoreResult<Vec<WebhookDelivery>>;
    /// Deliveries of a task, with their attempts.
    async fn webhook_deliveries(&self, account_id: i64, task_uuid: Uuid)
    -> StoreResult<Vec<WebhookDelivery>>;

    // --- limits and usage -------------------------------------------------------------------
    /// Every stored limit override.
    async fn limit_overrides(&self) -> StoreResult<Vec<LimitOverride>>;
    /// Replaces the limits of an account (`model` None) or of an account on a model; empty
    /// values remove the row.
    async fn set_limits(&self, account: &str, model: Option<&str>, values: LimitValues) -> StoreResult<()>;
    /// Spent this calendar month (UTC) by an account: charges minus refunds, micro-dollars.
    async fn month_spend(&self, account_id: i64) -> StoreResult<i64>;
    /// Admission times and taskUUIDs of an account's tasks on a model since `since_ms`, not
    /// counting tasks that ended in error.
    async fn recent_admissions(
        &self,
        account_id: i64,
        model: &str,
        since_ms: i64,
    ) -> StoreResult<Vec<(i64, Uuid)>>;
    /// Tasks per model of an account since `since_ms`, not counting tasks that ended in error.
    async fn recent_task_counts(&self, account_id: i64, since_ms: i64) -> StoreResult<Vec<(String, u32)>>;

    // --- admin keys ---------------------------------------------------------------------------
    /// Stores a new admin key (digest only).
    async fn create_admin_key(&self, key: NewKey) -> StoreResult<AdminKeyRecord>;
    /// Every admin key.
    async fn list_admin_keys(&self) -> StoreResult<Vec<AdminKeyRecord>>;
    /// Revokes (or disables / enables) an admin key. A revoked key stays revoked.
    async fn set_admin_key_status(&self, id: i64, status: KeyStatus) -> StoreResult<AdminKeyRecord>;
    /// The admin key with this SHA-256 digest.
    async fn admin_key_by_digest(&self, digest: [u8; 32]) -> StoreResult<Option<AdminKeyRecord>>;

    // --- outputs ----------------------------------------------------------------------------
    /// One output by UUID.
    async fn get_output(&self, uuid: Uuid) -> StoreResult<Option<OutputRecord>>;
    /// The bytes of an output stored inline.
    async fn output_data(&self, uuid: Uuid) -> StoreResult<Option<Vec<u8>>>;
    /// Removes and returns up to `limit` outputs whose expiry is before `now_ms`.
    async fn take_expired_outputs(&self, now_ms: i64, limit: u32) -> StoreResult<Vec<OutputRecord>>;
    /// Stores an upload: an output that belongs to no task. With `keep_secs`, every use
    /// ([`Store::touch_output`]) keeps it at least that long again. The account's uploads are
    /// counted in the same transaction: when this one would pass `quota`, nothing is stored
    /// and the usage found is returned as the error.
    async fn insert_upload(
        &self,
        account_id: i64,
        upload: NewOutput,
        keep_secs: Option<i64>,
        quota: UploadQuota,
    ) -> StoreResult<Result<(), UploadUsage>>;
    /// The account's stored uploads (not expired).
    async fn upload_usage(&self, account_id: i64) -> StoreResult<UploadUsage>;
    /// Records a use of an output: an upload with `keep_secs` has its expiry pushed to
    /// `now + keep_secs`. Returns the (possibly extended) record.
    async fn touch_output(&self, uuid: Uuid) -> StoreResult<Option<OutputRecord>>;
    /// Deletes one of an account's outputs or uploads; returns it (its file is the caller's to
    /// remove), or `None` when the account has no such output.
    async fn delete_output(&self, account_id: i64, uuid: Uuid) -> StoreResult<Option<OutputRecord>>;

    // --- history ----------------------------------------------------------------------------
    /// Hides a finished task from [`Store::get_task`] (Runway's delete). Returns false when the
    /// account has no such visible, finished task.
    async fn delete_task(&self, account_id: i64, task_uuid: Uuid) -> StoreResult<bool>;
    /// Net spend per UTC day and model between two instants (ms): charges minus refunds.
    async fn usage_by_day(
        &self,
        account_id: i64,
        from_ms: i64,
        before_ms: i64,
    ) -> StoreResult<Vec<DailyUsage>>;

    // --- health -----------------------------------------------------------------------------
    /// The single writer's commit counts, for metrics; `None` for a backend without one
    /// (PostgreSQL commits on pooled connections).
    fn commit_stats(&self) -> Option<WriterStats> {
        None
    }
    /// The schema version the database is at and the one this build writes: one round trip,
    /// for readiness checks (the database answers, and its migrations are applied).
    async fn schema_state(&self) -> StoreResult<SchemaState>;

    // --- exclusivity ------------------------------------------------------------------------
    /// The state of this process's claim to be the only server on the store's database, as it
    /// changes; `None` when the store makes no such claim (an SQLite file, a CLI tool's store).
    fn server_lock(&self) -> Option<tokio::sync::watch::Receiver<ServerLockState>> {
        None
    }
}
