//! Records the store reads and writes.

use mediagate_core::Dialect;
use mediagate_core::task::ResultItem;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Milliseconds since the Unix epoch, the store's clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $( $(#[$vm:meta])* $v:ident => $s:literal ),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $( $(#[$vm])* $v, )* }

        impl $name {
            /// The stored (and displayed) name.
            pub const fn as_str(self) -> &'static str {
                match self { $( $name::$v => $s, )* }
            }

            /// Parses a stored name.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $( $s => Some($name::$v), )* _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                // `pad`, not `write_str`: table columns (`{:<9}`) must be honoured.
                f.pad(self.as_str())
            }
        }
    };
}

string_enum!(
    /// Whether an account may use the API.
    AccountStatus {
        /// In good standing.
        Active => "active",
        /// Every key of the account is refused with 401.
        Suspended => "suspended",
    }
);

string_enum!(
    /// Whether a key may be used.
    KeyStatus {
        /// Usable.
        Active => "active",
        /// Refused until enabled again.
        Disabled => "disabled",
        /// Refused forever.
        Revoked => "revoked",
    }
);

string_enum!(
    /// Where a task is in its life.
    TaskStatus {
        /// Admitted and running (or waiting to run).
        Processing => "processing",
        /// Finished with results.
        Success => "success",
        /// Finished with an error.
        Error => "error",
    }
);

/// An account.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Account {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Active or suspended.
    pub status: AccountStatus,
    /// Credit balance in micro-dollars; never negative.
    pub balance_micros: i64,
    /// Creation time (ms since epoch).
    pub created_at: i64,
}

/// A key to store: only its digest and a display prefix, never the key.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// SHA-256 of the full key.
    pub digest: [u8; 32],
    /// A short, non-secret prefix to recognise the key by (e.g. `key_1a2b3c4d`).
    pub prefix: String,
    /// Free text.
    pub description: String,
    /// Scope entries; empty means unrestricted.
    pub scopes: Vec<String>,
}

/// A stored key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyRecord {
    /// Row id (what the CLI and admin API name keys by).
    pub id: i64,
    /// Owning account's id.
    pub account_id: i64,
    /// Owning account's name.
    pub account_name: String,
    /// Display prefix.
    pub prefix: String,
    /// Free text.
    pub description: String,
    /// Scope entries; empty means unrestricted.
    pub scopes: Vec<String>,
    /// Active, disabled or revoked.
    pub status: KeyStatus,
    /// Creation time (ms since epoch).
    pub created_at: i64,
}

/// One ledger line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LedgerEntry {
    /// Row id.
    pub id: i64,
    /// Positive for grants and refunds, negative for charges.
    pub amount_micros: i64,
    /// `grant`, `charge` or `refund`.
    pub kind: String,
    /// The task charged or refunded.
    pub task_uuid: Option<String>,
    /// Free text.
    pub note: String,
    /// Time (ms since epoch).
    pub created_at: i64,
}

/// An error as stored with a task, in canonical form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredError {
    /// The catalog code's wire name.
    pub code: String,
    /// The message.
    pub message: String,
    /// Parameter paths, each rendered dotted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameter: Vec<String>,
}

/// A task to admit.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// Owning account.
    pub account_id: i64,
    /// The client's taskUUID.
    pub task_uuid: Uuid,
    /// The task type as the client sent it.
    pub task_type: String,
    /// The dialect it came in by.
    pub dialect: Dialect,
    /// The model's AIR id.
    pub model: Option<String>,
    /// The request as sent (large inline assets elided), for history.
    pub request: String,
    /// SHA-256 of the canonical request, for replay detection.
    pub request_hash: [u8; 32],
    /// What to reserve from the balance.
    pub price_micros: i64,
    /// For async tasks: the full canonical request, kept until the task ends so that a restart
    /// can run it again. `None` for sync tasks (their client is gone after a restart).
    pub resumable_payload: Option<String>,
    /// Where results are POSTed, if anywhere.
    pub webhook_url: Option<String>,
    /// The account's monthly spend cap in micro-dollars (0 = none): admission is refused when
    /// this month's spend (UTC) plus the price would exceed it.
    pub spend_cap_micros: i64,
    /// The API key that sent it (for history); `None` for work no key sent.
    pub key_id: Option<i64>,
}

/// An async task a restart must run again.
#[derive(Debug, Clone)]
pub struct ResumableTask {
    /// Owning account.
    pub account_id: i64,
    /// Its name.
    pub account_name: String,
    /// The client's taskUUID.
    pub task_uuid: Uuid,
    /// Task type as sent.
    pub task_type: String,
    /// The dialect it came in by.
    pub dialect: Dialect,
    /// The full canonical request.
    pub payload: String,
    /// Webhook, if any.
    pub webhook_url: Option<String>,
}

/// The outcome of admitting a task.
#[derive(Debug, Clone)]
pub enum Admission {
    /// New task, price reserved.
    Admitted,
    /// The taskUUID is known: here is its record (compare hashes to tell replay from conflict).
    Existing(Box<TaskRecord>),
    /// The taskUUID named a task that was deleted ([`crate::Store::delete_task`]); it stays
    /// taken, so a replay can never run (and charge) a deleted task again. Nothing was recorded.
    Deleted,
    /// The balance cannot pay; nothing was recorded.
    InsufficientCredits {
        /// The balance at the time.
        balance_micros: i64,
    },
    /// The price would take this month's spend past the cap; nothing was recorded.
    SpendCapReached {
        /// Spent this month so far.
        spent_micros: i64,
    },
}

/// What [`crate::Store::schema_state`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaState {
    /// The newest migration applied to the database.
    pub applied: i64,
    /// The newest migration this build knows.
    pub expected: i64,
}

/// The outcome of raising a running task's reservation ([`crate::Store::raise_reservation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// The reservation now covers the price (the difference was charged, or it already did).
    Covered,
    /// The balance cannot pay the difference; the reservation is as it was.
    InsufficientCredits {
        /// The balance at the time.
        balance_micros: i64,
    },
    /// The difference would take this month's spend past the cap; the reservation is as it was.
    SpendCapReached {
        /// Spent this month so far.
        spent_micros: i64,
    },
}

/// Limits set for an account or an account and model; `None` = the configured default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitValues {
    /// Task submissions per second per key (0 = unlimited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_rate_per_sec: Option<f64>,
    /// Burst per key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_burst: Option<u32>,
    /// Task submissions per second for the whole account (0 = unlimited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_rate_per_sec: Option<f64>,
    /// Burst for the whole account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_burst: Option<u32>,
    /// Tasks running at once per model (0 = unlimited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    /// Tasks waiting per model (0 = unlimited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_queued: Option<u32>,
    /// Tasks per model per rolling 24 h (0 = unlimited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_daily: Option<u32>,
    /// Spend per calendar month (UTC) in micro-dollars (0 = unlimited). Account-wide only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_monthly_spend_micros: Option<i64>,
}

impl LimitValues {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == LimitValues::default()
    }
}

/// Stored limits of an account (`model` = None) or of an account on one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitOverride {
    /// The account.
    pub account_id: i64,
    /// Its name.
    pub account_name: String,
    /// The model's AIR id, or None for account-wide values.
    pub model: Option<String>,
    /// The values set.
    pub values: LimitValues,
}

/// A stored admin key (its digest only).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdminKeyRecord {
    /// Row id.
    pub id: i64,
    /// Display prefix.
    pub prefix: String,
    /// Free text.
    pub description: String,
    /// Active or revoked (disabled is treated as refused too).
    pub status: KeyStatus,
    /// Creation time (ms since epoch).
    pub created_at: i64,
}

/// An output file to record.
#[derive(Debug, Clone)]
pub struct NewOutput {
    /// Its UUID (also its file name).
    pub uuid: Uuid,
    /// MIME type.
    pub content_type: String,
    /// File extension.
    pub extension: String,
    /// Size in bytes.
    pub size: u64,
    /// Expiry (ms since epoch).
    pub expires_at: i64,
    /// The bytes, when the output is small enough to live in the store; `None` means a file.
    pub inline_data: Option<Vec<u8>>,
}

/// An account's stored uploads (outputs that belong to no task and have not expired).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadUsage {
    /// How many.
    pub files: u64,
    /// Their bytes together.
    pub bytes: u64,
}

/// The most an account may keep as uploads; 0 means no bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadQuota {
    /// Uploads at most.
    pub max_files: u64,
    /// Bytes at most.
    pub max_bytes: u64,
}

impl UploadQuota {
    /// Whether `usage` plus one more upload of `size` bytes stays within the quota.
    pub fn admits(&self, usage: UploadUsage, size: u64) -> bool {
        (self.max_files == 0 || usage.files < self.max_files)
            && (self.max_bytes == 0 || usage.bytes.saturating_add(size) <= self.max_bytes)
    }
}

/// A webhook delivery to record with a task's end (delivered afterwards, retried, resumed
/// after a restart).
#[derive(Debug, Clone)]
pub struct NewWebhook {
    /// The delivery's id (`webhook-id` header; stable across retries for de-duplication).
    pub webhook_id: String,
    /// Where it goes.
    pub url: String,
    /// The exact body.
    pub payload: String,
}

/// A webhook delivery and its attempts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookDelivery {
    /// The delivery's id.
    pub webhook_id: String,
    /// Owning account.
    pub account_id: i64,
    /// The task.
    pub task_uuid: String,
    /// Where it goes.
    pub url: String,
    /// The body.
    pub payload: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: Vec<WebhookAttempt>,
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookAttempt {
    /// 1 for the first.
    pub attempt: u32,
    /// When (ms since epoch).
    pub at: i64,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<u16>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: u64,
}

/// A task's end.
#[derive(Debug, Clone)]
pub struct Finish {
    /// Owning account.
    pub account_id: i64,
    /// The task.
    pub task_uuid: Uuid,
    /// What happened.
    pub outcome: FinishOutcome,
    /// Webhook deliveries to record in the same transaction.
    pub webhooks: Vec<NewWebhook>,
    /// Where its time went, recorded with its end.
    pub timings: Option<TaskTimings>,
    /// Each provider attempt, in order, recorded with its end.
    pub attempts: Vec<ProviderAttempt>,
}

/// One call of a provider for a task (retries and fallbacks each count), as history shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderAttempt {
    /// The provider's configured name.
    pub provider: String,
    /// 1 for the first call of this provider for the task, 2 for its retry, ...
    pub attempt: u32,
    /// `success`, or the catalog code the failure was mapped to (`circuitOpen` when the
    /// provider's breaker kept it from being called).
    pub outcome: String,
    /// How long the call took, in milliseconds.
    pub duration_ms: f64,
    /// What the client was told of the failure, if it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What a task's recorded end settled: the charge kept and the reservation given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Settled {
    /// Micro-dollars charged for the task.
    pub charged_micros: i64,
    /// Micro-dollars of its reservation refunded.
    pub refunded_micros: i64,
}

impl FinishOutcome {
    /// How an end with this outcome settles a task that reserved `reserved` micro-dollars:
    /// the cost of what was delivered (never above the reservation) is kept, the rest refunded.
    pub fn settle(&self, reserved: i64) -> Settled {
        let charged = match self {
            FinishOutcome::Success { cost_micros, .. }
            | FinishOutcome::PartlyDelivered { cost_micros, .. } => (*cost_micros).clamp(0, reserved.max(0)),
            FinishOutcome::Failure { .. } => 0,
        };
        Settled { charged_micros: charged, refunded_micros: reserved - charged }
    }
}

/// Success or failure of a task.
#[derive(Debug, Clone)]
pub enum FinishOutcome {
    /// Results, their files, and the final cost (any reserve above it is refunded).
    Success {
        /// The results.
        results: Vec<ResultItem>,
        /// Their stored files.
        outputs: Vec<NewOutput>,
        /// Final cost; at most the reserved price.
        cost_micros: i64,
    },
    /// The error; the whole reserve is refunded.
    Failure {
        /// The error.
        error: StoredError,
    },
    /// Ended early (cancelled or failed) after some results were delivered
    /// ([`crate::Store::record_partial_results`]): the task ends in error with those results and
    /// their outputs kept, `cost_micros` (their price, at most the reserve) is charged and the
    /// rest of the reserve refunded.
    PartlyDelivered {
        /// Why it ended.
        error: StoredError,
        /// What the delivered results cost.
        cost_micros: i64,
    },
}

/// A stored task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    /// Owning account.
    pub account_id: i64,
    /// The client's taskUUID.
    pub task_uuid: Uuid,
    /// Task type as sent.
    pub task_type: String,
    /// The dialect it came in by.
    pub dialect: Dialect,
    /// Model AIR id.
    pub model: Option<String>,
    /// Where it is.
    pub status: TaskStatus,
    /// SHA-256 of the canonical request.
    pub request_hash: Vec<u8>,
    /// The request as sent (large inline assets elided).
    pub request: String,
    /// Results, when successful.
    pub results: Vec<ResultItem>,
    /// The error, when failed.
    pub error: Option<StoredError>,
    /// What was charged (reserved while processing), micro-dollars.
    pub cost_micros: i64,
    /// Admission time (ms).
    pub created_at: i64,
    /// End time (ms).
    pub finished_at: Option<i64>,
    /// Where the task's time went, recorded with its end (none for tasks ended before this was
    /// recorded, or ended without running, e.g. at start-up recovery).
    pub timings: Option<TaskTimings>,
    /// The API key that sent it (none for tasks admitted before this was recorded).
    pub key_id: Option<i64>,
    /// Each provider attempt, in order (empty until it ends, or if it never reached one).
    pub attempts: Vec<ProviderAttempt>,
    /// When Runway's `DELETE /v1/tasks/{id}` hid it (history still lists it).
    pub deleted_at: Option<i64>,
}

/// Where a task's time went, in milliseconds (the `Server-Timing` of its responses).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskTimings {
    /// Waiting for a concurrency slot (the account's, the model's).
    pub queue_ms: f64,
    /// Running: fetching inputs, the provider's work, writing output files.
    pub provider_ms: f64,
    /// The store's write that admitted it.
    pub admit_ms: f64,
}

/// A stored output file.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputRecord {
    /// UUID and file stem.
    pub uuid: Uuid,
    /// Owning account.
    pub account_id: i64,
    /// The task that produced it.
    pub task_uuid: Option<Uuid>,
    /// MIME type.
    pub content_type: String,
    /// File extension.
    pub extension: String,
    /// Size in bytes.
    pub size: u64,
    /// Creation (ms).
    pub created_at: i64,
    /// Expiry (ms).
    pub expires_at: i64,
    /// Whether the bytes live in the store ([`crate::Store::output_data`]) rather than a file.
    pub inline: bool,
}

/// Net spend of one model on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyUsage {
    /// The day, `YYYY-MM-DD` (UTC).
    pub day: String,
    /// The model (as recorded on its tasks).
    pub model: String,
    /// Charges minus refunds, in micro-dollars (negative when refunds exceeded charges).
    pub spent_micros: i64,
}
