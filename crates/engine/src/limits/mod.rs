//! Limits per key, account and model: rate limits (GCRA), concurrency with fair queueing,
//! daily task caps and monthly spend caps.
//!
//! ```text
//! submit → rate (key + account, 429 rateLimitExceeded)
//!        → daily cap (account × model, rolling 24 h, 429 dailyLimitExceeded)
//!        → queue place (account × model, 429 queueFull when the lane is full)
//!        → store admission (credits 402, monthly spend cap 402 monthlySpendLimitExceeded)
//!        → run: wait for a slot (Phase::Queued) → execute (Phase::Running) → free the slot
//! ```
//!
//! Defaults come from `[limits]`; an administrator overrides them per account and per account
//! and model (stored, so they survive restarts and the CLI shares them). Overrides set through
//! this process apply at once; the CLI's within `limits.refresh_ms`.

pub mod caps;
pub mod concurrency;
pub mod rate;

use crate::{AuthContext, Engine};
use concurrency::{LaneLimits, Queues, Ticket};
use mediagate_core::money::{format_usd, parse_usd};
use mediagate_core::{ApiError, ErrorCode, ParamPath};
use mediagate_store::{LimitOverride, LimitValues, Store, StoreError};
use parking_lot::{Mutex, RwLock};
use rate::{KeyedGcra, Rate};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Where a task is before it finishes: waiting for a slot, or running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Phase {
    /// Waiting in its account's queue for the model (Runway shows `THROTTLED`).
    Queued,
    /// Holding a slot: assets, provider, outputs.
    Running,
}

/// Default limits (`[limits]`). 0 means unlimited everywhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Task submissions per second per API key (0 = unlimited).
    pub key_rate_per_sec: f64,
    /// Submissions a key may make at once from idle.
    pub key_burst: u32,
    /// Task submissions per second per account, all its keys together (0 = unlimited).
    pub account_rate_per_sec: f64,
    /// Submissions an account may make at once from idle.
    pub account_burst: u32,
    /// Tasks each model runs at once for all accounts together, shared fairly (0 = unlimited).
    /// A model's own `concurrency` in the catalog takes precedence.
    pub model_concurrency: u32,
    /// Tasks an account runs at once per model; more wait in its queue (0 = unlimited).
    pub max_concurrent: u32,
    /// Tasks an account may have waiting per model; more are refused with 429 (0 = unlimited).
    pub max_queued: u32,
    /// Tasks an account may submit per model in any 24 hours (0 = unlimited).
    pub max_daily: u32,
    /// Most an account may spend per calendar month (UTC), in USD ("0" = no cap).
    #[serde(deserialize_with = "mediagate_core::money::deserialize_usd")]
    pub max_monthly_spend_usd: String,
    /// Failed authentications per second one client address may make (0 = unlimited).
    pub invalid_key_rate_per_sec: f64,
    /// Failed authentications one address may make at once before being throttled.
    pub invalid_key_burst: u32,
    /// Milliseconds between re-reads of the stored per-account limits (the CLI's changes).
    pub refresh_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            key_rate_per_sec: 0.0,
            key_burst: 20,
            account_rate_per_sec: 0.0,
            account_burst: 50,
            model_concurrency: 0,
            max_concurrent: 0,
            max_queued: 1000,
            max_daily: 0,
            max_monthly_spend_usd: "0".into(),
            invalid_key_rate_per_sec: 1.0,
            invalid_key_burst: 20,
            refresh_ms: 1000,
        }
    }
}

impl LimitsConfig {
    /// Checks the values; the message names the key to fix.
    pub fn validate(&self) -> Result<i64, String> {
        for (name, v) in [
            ("key_rate_per_sec", self.key_rate_per_sec),
            ("account_rate_per_sec", self.account_rate_per_sec),
            ("invalid_key_rate_per_sec", self.invalid_key_rate_per_sec),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("limits.{name} must be a number >= 0 (0 = unlimited), not {v}"));
            }
        }
        parse_usd(&self.max_monthly_spend_usd).map_err(|e| format!("limits.max_monthly_spend_usd: {e}"))
    }
}

/// The limits in force for an account on a model, with every default applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Effective {
    /// Per key.
    pub key_rate: Rate,
    /// Per account.
    pub account_rate: Rate,
    /// Running at once (0 = unlimited).
    pub max_concurrent: u32,
    /// Waiting (0 = unlimited).
    pub max_queued: u32,
    /// Per rolling 24 h (0 = unlimited).
    pub max_daily: u32,
    /// Per calendar month, micro-dollars (0 = none).
    pub max_monthly_spend_micros: i64,
}

/// One model's limits and usage for an account.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelLimits {
    /// AIR id.
    pub model: String,
    /// Running at once (0 = unlimited).
    pub max_concurrent: u32,
    /// Waiting (0 = unlimited).
    pub max_queued: u32,
    /// Per rolling 24 h (0 = unlimited).
    pub max_daily: u32,
    /// Tasks in the last 24 h (not counting failed ones).
    pub daily_used: u32,
    /// Running now.
    pub running: u32,
    /// Waiting now.
    pub queued: u32,
}

/// An account's limits and current usage (`GET /v1/organization`, the admin API).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitsView {
    /// The account.
    pub account_id: i64,
    /// Its credit balance, micro-dollars.
    pub balance_micros: i64,
    /// Monthly spend cap, micro-dollars (0 = none).
    pub max_monthly_spend_micros: i64,
    /// Spent this calendar month (UTC), micro-dollars.
    pub month_spend_micros: i64,
    /// Per-key submissions per second (0 = unlimited).
    pub key_rate_per_sec: f64,
    /// Per-key burst.
    pub key_burst: u32,
    /// Per-account submissions per second (0 = unlimited).
    pub account_rate_per_sec: f64,
    /// Per-account burst.
    pub account_burst: u32,
    /// Every model of the catalog.
    pub models: Vec<ModelLimits>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum RateKey {
    Key(i64),
    Account(i64),
}

type Overrides = HashMap<(i64, Option<String>), LimitValues>;

/// The engine's limit state.
pub struct Limits {
    config: LimitsConfig,
    spend_default: i64,
    rates: KeyedGcra<RateKey>,
    pub(crate) queues: Queues,
    daily: caps::DailyWindows,
    overrides: RwLock<Overrides>,
    refreshed: Mutex<Instant>,
    /// Held while the stored overrides are re-read, so that one caller reads them and the
    /// others wait for its result instead of judging requests by stale limits.
    refresh_gate: tokio::sync::Mutex<()>,
}

fn pick<T: Copy>(model: Option<T>, account: Option<T>, default: T) -> T {
    model.or(account).unwrap_or(default)
}

impl Limits {
    /// Limits with the configured defaults and no overrides yet.
    pub fn new(config: LimitsConfig) -> Result<Limits, String> {
        let spend_default = config.validate()?;
        Ok(Limits {
            config,
            spend_default,
            rates: KeyedGcra::default(),
            queues: Queues::default(),
            daily: Default::default(),
            overrides: RwLock::new(HashMap::new()),
            refreshed: Mutex::new(Instant::now()),
            refresh_gate: tokio::sync::Mutex::new(()),
        })
    }

    /// The rate for failed authentications per client address.
    pub fn invalid_key_rate(&self) -> Rate {
        Rate { per_sec: self.config.invalid_key_rate_per_sec, burst: self.config.invalid_key_burst }
    }

    /// The limits in force for an account (and a model, for the per-model ones).
    pub fn effective(&self, account_id: i64, model: Option<&str>) -> Effective {
        let o = self.overrides.read();
        let none = LimitValues::default();
        let acc = o.get(&(account_id, None)).unwrap_or(&none);
        let m = model.and_then(|m| o.get(&(account_id, Some(m.to_string())))).unwrap_or(&none);
        let c = &self.config;
        Effective {
            key_rate: Rate {
                per_sec: acc.key_rate_per_sec.unwrap_or(c.key_rate_per_sec),
                burst: acc.key_burst.unwrap_or(c.key_burst),
            },
            account_rate: Rate {
                per_sec: acc.account_rate_per_sec.unwrap_or(c.account_rate_per_sec),
                burst: acc.account_burst.unwrap_or(c.account_burst),
            },
            max_concurrent: pick(m.max_concurrent, acc.max_concurrent, c.max_concurrent),
            max_queued: pick(m.max_queued, acc.max_queued, c.max_queued),
            max_daily: pick(m.max_daily, acc.max_daily, c.max_daily),
            max_monthly_spend_micros: acc.max_monthly_spend_micros.unwrap_or(self.spend_default),
        }
    }

    /// Re-reads the stored overrides.
    pub async fn reload(&self, store: &dyn Store) -> Result<(), StoreError> {
        let rows: Vec<LimitOverride> = store.limit_overrides().await?;
        let map = rows.into_iter().map(|r| ((r.account_id, r.model), r.values)).collect();
        *self.overrides.write() = map;
        *self.refreshed.lock() = Instant::now();
        Ok(())
    }

    /// Whether the overrides are older than `refresh_ms`.
    fn stale(&self) -> bool {
        self.refreshed.lock().elapsed() >= Duration::from_millis(self.config.refresh_ms)
    }
}

/// A task's reservations before admission: its place in the queue and its count toward the
/// daily cap. Dropped unused, it gives both back.
pub struct Place {
    ticket: Ticket,
    daily: Option<Arc<caps::Window>>,
    task_uuid: Uuid,
    admitted: bool,
}

impl Place {
    /// The task is admitted: its daily count stays.
    pub fn admitted(&mut self) {
        self.admitted = true;
    }

    /// Waits for a slot (cancel-safe).
    pub async fn ready(&mut self) {
        self.ticket.ready().await;
    }

    /// The task ran: frees its slot; a failed task stops counting toward the daily cap.
    pub fn finished(mut self, failed: bool) {
        if !failed {
            self.daily = None;
        }
        self.admitted = false;
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if !self.admitted
            && let Some(w) = &self.daily
        {
            w.forget(self.task_uuid);
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

impl Engine {
    /// Counts one task submission against the key's and the account's rate limits, or refuses
    /// it with 429 `rateLimitExceeded` carrying the exact wait. Dialects may call it for other
    /// requests they want limited too.
    pub fn check_rate(&self, ctx: &AuthContext) -> Result<(), ApiError> {
        let e = self.limits.effective(ctx.account_id, None);
        if !e.key_rate.is_limited() && !e.account_rate.is_limited() {
            return Ok(());
        }
        let keys =
            [(RateKey::Key(ctx.key_id), e.key_rate), (RateKey::Account(ctx.account_id), e.account_rate)];
        self.limits.rates.check_all(Instant::now(), &keys).map_err(|(wait, which)| {
            let (whose, r) =
                if which == 0 { ("this API key", e.key_rate) } else { ("this account", e.account_rate) };
            ApiError::new(
                ErrorCode::RateLimitExceeded,
                format!(
                    "Too many tasks: {whose} may submit {} per second with a burst of {}. Retry in {} s \
                     (Retry-After), or ask an administrator to raise the limit \
                     (`mediagate limits set --account {} ...`).",
                    r.per_sec,
                    r.burst,
                    secs(wait),
                    ctx.account_name
                ),
            )
            .with_retry_after(wait)
        })
    }

    /// Where a task of this process is: waiting for a concurrency slot or running. `None` when
    /// it is not in a queue (finished, not yet admitted, or unknown).
    pub fn queue_phase(&self, account_id: i64, task_uuid: Uuid) -> Option<Phase> {
        self.limits.queues.phase(account_id, task_uuid)
    }

    /// The limits in force for an account (defaults applied).
    pub fn effective_limits(&self, account_id: i64, model: Option<&str>) -> Effective {
        self.limits.effective(account_id, model)
    }

    /// Re-reads stored limits when they are older than `limits.refresh_ms`, before the caller
    /// checks any: a request is always judged by limits at most `refresh_ms` old, so a limit
    /// set by the CLI holds exactly from its first request on (judging that one by the old,
    /// perhaps unlimited, values let one more through than the burst). One caller reads; the
    /// others wait for it. A failed read keeps the old limits until the next interval.
    pub(crate) async fn refresh_limits_if_stale(&self) {
        if !self.limits.stale() {
            return;
        }
        let _gate = self.limits.refresh_gate.lock().await;
        if !self.limits.stale() {
            return; // re-read while this caller waited
        }
        if let Err(e) = self.limits.reload(self.store.as_ref()).await {
            tracing::warn!(error = %e, "re-reading stored limits failed; keeping the old ones");
            *self.limits.refreshed.lock() = Instant::now();
        }
    }

    /// Re-reads stored limits now (after an administrator changed them in this process).
    pub async fn reload_limits(&self) -> Result<(), StoreError> {
        self.limits.reload(self.store.as_ref()).await
    }

    /// Reserves a task's count toward the daily cap and its place in the queue, or refuses it
    /// (429 `dailyLimitExceeded` / `queueFull`, each with the wait). [`Engine::submit`] calls
    /// it before the store admits a task; it is public for the admission benchmark.
    pub async fn reserve_place(
        &self,
        ctx: &AuthContext,
        model: &str,
        task_uuid: Uuid,
    ) -> Result<Place, ApiError> {
        let e = self.limits.effective(ctx.account_id, Some(model));
        let daily = if e.max_daily > 0 {
            let w = self.limits.daily.get(ctx.account_id, model);
            w.loaded
                .get_or_try_init(|| async {
                    let since = mediagate_store::now_ms() - caps::WINDOW_MS;
                    let rows = self.store.recent_admissions(ctx.account_id, model, since).await?;
                    w.preload(rows);
                    Ok::<(), StoreError>(())
                })
                .await
                .map_err(|err| {
                    tracing::error!(error = %err, "loading the daily count failed");
                    ApiError::internal()
                })?;
            w.reserve(mediagate_store::now_ms(), e.max_daily, task_uuid).map_err(|(used, wait)| {
                ApiError::new(
                    ErrorCode::DailyLimitExceeded,
                    format!(
                        "This account has run {used} tasks on model {model} in the last 24 hours, its daily \
                         limit. The next one is possible in {} s (Retry-After); an administrator can raise \
                         `maxDaily` for the account and model.",
                        wait.as_secs()
                    ),
                )
                .with_parameter(ParamPath::key("model"))
                .with_retry_after(wait)
            })?;
            Some(w)
        } else {
            None
        };
        let lane = LaneLimits { max_concurrent: e.max_concurrent, max_queued: e.max_queued };
        let mut place = Place {
            ticket: self.enter_queue(ctx.account_id, task_uuid, model, lane, true)?,
            daily,
            task_uuid,
            admitted: false,
        };
        if place.daily.is_none() {
            place.admitted = true;
        }
        Ok(place)
    }

    fn enter_queue(
        &self,
        account_id: i64,
        task_uuid: Uuid,
        model: &str,
        lane: LaneLimits,
        bounded: bool,
    ) -> Result<Ticket, ApiError> {
        // A model's own capacity, else the one every model gets.
        let capacity = self
            .catalog
            .concurrency(model)
            .filter(|&c| c > 0)
            .unwrap_or(self.config.limits.model_concurrency);
        self.limits.queues.enter(account_id, task_uuid, model, capacity, lane, bounded).map_err(|full| {
            ApiError::new(
                ErrorCode::QueueFull,
                format!(
                    "This account already has {} tasks waiting for model {model}, its queue limit. Retry in \
                     about {} s (Retry-After, an estimate from recent task durations), or wait for running \
                     tasks to finish.",
                    full.queued,
                    secs(full.estimate)
                ),
            )
            .with_parameter(ParamPath::key("model"))
            .with_retry_after(full.estimate)
        })
    }

    /// A place for a task that must run whatever the queue's length (resumed after a restart,
    /// or a replay the store re-admitted): it still waits for a slot.
    pub(crate) fn unbounded_place(&self, account_id: i64, model: &str, task_uuid: Uuid) -> Place {
        let e = self.limits.effective(account_id, Some(model));
        let lane = LaneLimits { max_concurrent: e.max_concurrent, max_queued: e.max_queued };
        let ticket = self
            .enter_queue(account_id, task_uuid, model, lane, false)
            .expect("unbounded entry never refuses");
        Place { ticket, daily: None, task_uuid, admitted: true }
    }

    /// The 402 of a task that would pass the monthly spend cap.
    pub(crate) fn spend_cap_error(&self, ctx: &AuthContext, price: i64, spent: i64) -> ApiError {
        let cap = self.limits.effective(ctx.account_id, None).max_monthly_spend_micros;
        ApiError::new(
            ErrorCode::MonthlySpendLimitExceeded,
            format!(
                "This task costs ${} but the account has spent ${} of its ${} monthly spend cap this month (UTC). \
                 Wait for the next month or ask an administrator to raise `maxMonthlySpendUsd` \
                 (`mediagate limits set --account {} --max-monthly-spend-usd ...`).",
                format_usd(price),
                format_usd(spent),
                format_usd(cap),
                ctx.account_name
            ),
        )
    }

    /// An account's limits and current usage, for every model of the catalog.
    pub async fn limits_view(&self, account_id: i64) -> Result<LimitsView, ApiError> {
        let internal = |e: StoreError| {
            tracing::error!(error = %e, "reading usage failed");
            ApiError::internal()
        };
        let now = mediagate_store::now_ms();
        let counts: HashMap<String, u32> = self
            .store
            .recent_task_counts(account_id, now - caps::WINDOW_MS)
            .await
            .map_err(internal)?
            .into_iter()
            .collect();
        let spent = self.store.month_spend(account_id).await.map_err(internal)?;
        let balance = self
            .store
            .list_accounts()
            .await
            .map_err(internal)?
            .into_iter()
            .find(|a| a.id == account_id)
            .map(|a| a.balance_micros)
            .unwrap_or(0);
        let acc = self.limits.effective(account_id, None);
        let models = self
            .catalog
            .models()
            .map(|m| {
                let air = m.spec.air.as_str();
                let e = self.limits.effective(account_id, Some(air));
                let lane = self.limits.queues.counts(account_id, air);
                let daily_used = match self.limits.daily.existing(account_id, air) {
                    Some(w) if w.loaded.initialized() => w.used(now),
                    _ => counts.get(air).copied().unwrap_or(0),
                };
                ModelLimits {
                    model: air.to_string(),
                    max_concurrent: e.max_concurrent,
                    max_queued: e.max_queued,
                    max_daily: e.max_daily,
                    daily_used,
                    running: lane.running,
                    queued: lane.queued,
                }
            })
            .collect();
        Ok(LimitsView {
            account_id,
            balance_micros: balance,
            max_monthly_spend_micros: acc.max_monthly_spend_micros,
            month_spend_micros: spent,
            key_rate_per_sec: acc.key_rate.per_sec,
            key_burst: acc.key_rate.burst,
            account_rate_per_sec: acc.account_rate.per_sec,
            account_burst: acc.account_rate.burst,
            models,
        })
    }
}
