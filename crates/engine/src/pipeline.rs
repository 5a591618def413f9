//! Running one task: validate → admit → ingest → dispatch → store → settle → deliver.

use crate::live::{LiveTask, TaskPhase};
use crate::run_to_end::RunToEnd;
use crate::{AuthContext, Engine, scopes};
use async_trait::async_trait;
use mediagate_assets::{AssetKind, AssetRequest, StoredAsset, StoredAssets};
use mediagate_core::money::format_usd;
use mediagate_core::task::{Family, MediaKind, OutputType, ResultItem, TaskRequest};
use mediagate_core::{ApiError, ErrorCode, ParamPath};
use mediagate_providers::Job;
use mediagate_store::{
    Admission, Finish, FinishOutcome, NewOutput, NewTask, OutputRecord, Reservation, StoredError, TaskRecord,
    TaskStatus,
};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use tokio::sync::{oneshot, watch};
use tracing::Instrument;
use uuid::Uuid;

/// A parsed task handed to the engine by a dialect.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The client's taskUUID.
    pub task_uuid: Uuid,
    /// The task type as the client named it (echoed back, e.g. a legacy alias).
    pub task_type_name: String,
    /// The canonical request. A missing `model` has been filled with the default.
    pub request: TaskRequest,
    /// The dialect the task came in by (for key scopes and rendering; stored with the task).
    pub dialect: mediagate_core::Dialect,
    /// How the result reaches the client.
    pub delivery: Delivery,
    /// Where each result is POSTed, if anywhere.
    pub webhook_url: Option<String>,
}

/// How a task's result reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The request waits for the result (up to `tasks.sync_timeout_secs`).
    Sync,
    /// The request is acknowledged at once; the result is polled (or pushed).
    Async,
}

/// What [`Engine::submit`] returns.
#[derive(Debug, Clone)]
pub enum Submitted {
    /// The task finished (sync delivery).
    Done(Delivered),
    /// The task is accepted and runs on (async delivery); poll with `getResponse`.
    Accepted {
        /// The task.
        task_uuid: Uuid,
    },
}

/// One result ready for a dialect to render.
#[derive(Debug, Clone)]
pub struct DeliveredItem {
    /// The stored result.
    pub result: ResultItem,
    /// The output's URL (always present; valid until the output's TTL).
    pub url: String,
    /// The file's bytes, when the task asked for base64 or a data URI.
    pub inline: Option<Vec<u8>>,
}

/// A finished task's results.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The task's UUID.
    pub task_uuid: Uuid,
    /// What kind of results they are (how a dialect renders them).
    pub family: Family,
    /// The prefix of their fields in Runware's shape (`image`, `video`, `guideImage`…).
    pub prefix: &'static str,
    /// How results are to be returned.
    pub output_type: OutputType,
    /// Whether to show `cost`.
    pub include_cost: bool,
    /// Whether to show token `usage` (text results).
    pub include_usage: bool,
    /// Results in order.
    pub items: Vec<DeliveredItem>,
    /// Where the task's time went, when this process just ran it (sync delivery).
    pub timing: Option<crate::timing::Timing>,
}

/// A stored task as `getResponse` shows it.
#[derive(Debug, Clone)]
pub struct TaskView {
    /// The record.
    pub record: TaskRecord,
    /// Results when it succeeded.
    pub delivered: Option<Delivered>,
    /// The error when it failed.
    pub error: Option<ApiError>,
}

/// A finished task as published to everyone waiting for it: results and, when freshly made,
/// their bytes (so delivery need not read back what was just written).
#[derive(Debug, Clone)]
struct Finished {
    items: Vec<ResultItem>,
    bytes: Option<Arc<Vec<Vec<u8>>>>,
    /// Where the time went, when this process ran it.
    timing: Option<crate::timing::Timing>,
}

type Outcome = Result<Finished, ApiError>;

/// Tasks running in this process, so a concurrent duplicate waits for the first instead of
/// racing it (the store catches duplicates across restarts; this catches them in flight).
#[derive(Default)]
pub(crate) struct Inflight(Mutex<HashMap<TaskKey, Running>>);

/// (account id, taskUUID): what idempotency is keyed by.
type TaskKey = (i64, Uuid);
/// A running task's request hash and the channel its outcome is published on.
/// Its live state (phase, progress, cancellation) rides along.
type Running = ([u8; 32], watch::Receiver<Option<Outcome>>, Arc<LiveTask>);

enum Role {
    Leader(watch::Sender<Option<Outcome>>),
    Follower([u8; 32], watch::Receiver<Option<Outcome>>),
}

impl Inflight {
    fn join(&self, key: (i64, Uuid), hash: [u8; 32]) -> Role {
        match self.0.lock().entry(key) {
            Entry::Occupied(e) => Role::Follower(e.get().0, e.get().1.clone()),
            Entry::Vacant(v) => {
                let (tx, rx) = watch::channel(None);
                v.insert((hash, rx, Arc::default()));
                Role::Leader(tx)
            }
        }
    }

    /// The live state of a task running in this process.
    pub(crate) fn live(&self, key: (i64, Uuid)) -> Option<Arc<LiveTask>> {
        self.0.lock().get(&key).map(|r| r.2.clone())
    }

    /// The outcome channel of a task running in this process.
    fn outcome(&self, key: (i64, Uuid)) -> Option<watch::Receiver<Option<Outcome>>> {
        self.0.lock().get(&key).map(|r| r.1.clone())
    }

    fn leave(&self, key: (i64, Uuid)) {
        self.0.lock().remove(&key);
    }
}

/// What [`Engine::cancel_or_delete`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The task was unfinished and is now cancelled (and refunded).
    Cancelled,
    /// The task had finished and is now deleted from view.
    Deleted,
}

/// The result of trying to admit a task.
enum Admitted {
    /// Recorded and charged: run it.
    New,
    /// Known and finished (a replay): its outcome.
    Known(Outcome),
    /// Known and still running, but not in this process (e.g. another server on the same store).
    RunningElsewhere,
}

/// What a task's leader tells the request that started it, once admission is decided.
enum Lead {
    /// Its outcome is (or will be) published on the in-flight channel: wait for it there.
    Published,
    /// Known and still running, but not in this process.
    RunningElsewhere,
}

fn insufficient(price: i64, balance: i64, account: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InsufficientCredits,
        format!(
            "This task costs ${} but the account balance is ${}. Add credits (e.g. \
             `mediagate credits grant --account {account} --usd 10`) and retry.",
            format_usd(price),
            format_usd(balance),
        ),
    )
}

fn still_processing(uuid: Uuid) -> ApiError {
    ApiError::new(
        ErrorCode::TaskStillProcessing,
        format!(
            "Task {uuid} is still processing. It keeps running: poll its result with \
             {{\"taskType\":\"getResponse\",\"taskUUID\":\"{uuid}\"}} or resend the same task."
        ),
    )
}

fn cancelled(uuid: Uuid) -> ApiError {
    ApiError::new(
        ErrorCode::TaskCancelled,
        format!("Task {uuid} was cancelled before it finished; it was not charged."),
    )
}

/// The cancellation of a task that had delivered `done` of its `of` results.
fn cancelled_after(uuid: Uuid, done: usize, of: u32) -> ApiError {
    ApiError::new(
        ErrorCode::TaskCancelled,
        format!(
            "Task {uuid} was cancelled after {done} of its {of} results. The {done} delivered stay \
             available and were charged at their price; the rest was refunded."
        ),
    )
}

/// Progress of result `i` of `n` reported as the whole task's progress.
fn progress_of(live: &Arc<LiveTask>, i: usize, n: usize) -> mediagate_providers::ProgressFn {
    let live = live.clone();
    Arc::new(move |p: mediagate_providers::Progress| {
        live.set_progress((i as f32 + p.fraction.clamp(0.0, 1.0)) / n as f32);
    })
}

pub(crate) fn conflict(uuid: Uuid) -> ApiError {
    ApiError::new(
        ErrorCode::ConflictTaskUUID,
        format!(
            "taskUUID {uuid} was already used for a different task. A taskUUID names one task: \
             resend the identical body to get its result again, or generate a new UUID v4."
        ),
    )
    .with_parameter(ParamPath::key("taskUUID"))
}

/// A taskUUID whose task was deleted: it stays taken (a replay must not run and charge the task
/// again), so the client is told to use a new one. The same code as any reused taskUUID, since
/// the remedy is the same; the message says why.
pub(crate) fn deleted_uuid(uuid: Uuid) -> ApiError {
    ApiError::new(
        ErrorCode::ConflictTaskUUID,
        format!(
            "taskUUID {uuid} belonged to a task that was deleted; a deleted task's taskUUID stays \
             taken. Generate a new UUID v4 for a new task."
        ),
    )
    .with_parameter(ParamPath::key("taskUUID"))
}

pub(crate) fn to_stored(e: &ApiError) -> StoredError {
    StoredError {
        code: e.code.as_str().into(),
        message: e.message.clone(),
        parameter: match &e.parameter {
            None => vec![],
            Some(mediagate_core::Parameter::One(p)) => vec![p.to_string()],
            Some(mediagate_core::Parameter::Several(v)) => v.iter().map(ToString::to_string).collect(),
        },
    }
}

pub(crate) fn from_stored(s: &StoredError) -> ApiError {
    let mut e = ApiError::new(
        ErrorCode::from_wire(&s.code).unwrap_or(ErrorCode::InternalServerError),
        s.message.clone(),
    );
    if !s.parameter.is_empty() {
        // Stored paths are dotted; a dotted string is an acceptable one-segment path for display.
        e = e.with_parameter(s.parameter.iter().map(|p| ParamPath::key(p.clone())).collect::<Vec<_>>());
    }
    e
}

/// The request as recorded for history: inline assets longer than this are kept as their size
/// and SHA-256 only (history shows which image was sent without storing it again).
const RECORD_INLINE_MAX: usize = 512;

fn record_of(req: &TaskRequest) -> String {
    use sha2::Digest;
    let mut r = req.clone();
    for input in r.inputs_mut() {
        if input.len() > RECORD_INLINE_MAX {
            let digest = sha2::Sha256::digest(input.as_bytes());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            *input = format!("<{} bytes elided, sha256:{hex}>", input.len());
        }
    }
    serde_json::to_string(&r).unwrap_or_default()
}

pub(crate) struct EngineAssets<'a>(&'a Engine);

/// The engine's uploads and outputs as the intake path sees them.
pub(crate) fn engine_assets(e: &Engine) -> EngineAssets<'_> {
    EngineAssets(e)
}

#[async_trait]
impl StoredAssets for EngineAssets<'_> {
    async fn load(&self, account_id: i64, uuid: Uuid) -> Option<StoredAsset> {
        let mut rec = self.0.store.get_output(uuid).await.ok()??;
        // Owner and expiry first: naming another account's upload (or an expired one) must
        // change nothing about it.
        if rec.account_id != account_id || rec.expires_at <= mediagate_store::now_ms() {
            return None;
        }
        // A use keeps an upload alive (`uploads.keep_after_use_secs` more). Task outputs have a
        // fixed expiry: reading them costs no write.
        if rec.task_uuid.is_none() {
            rec = self.0.store.touch_output(uuid).await.ok()??;
        }
        let bytes = self.0.read_output(&rec).await?;
        Some(StoredAsset { bytes, media_type: rec.content_type })
    }
}

impl Engine {
    /// The bytes of a stored output, from the store row or its file.
    pub async fn read_output(&self, rec: &OutputRecord) -> Option<Vec<u8>> {
        if rec.inline {
            self.store.output_data(rec.uuid).await.ok().flatten()
        } else {
            self.outputs.read(rec.uuid, &rec.extension).await.ok()
        }
    }

    async fn load_output(&self, uuid: Uuid) -> Option<Vec<u8>> {
        let rec = self.store.get_output(uuid).await.ok()??;
        self.read_output(&rec).await
    }

    pub(crate) fn forbidden(&self, what: String, need: String, ctx: &AuthContext) -> ApiError {
        ApiError::new(
            ErrorCode::InsufficientPermissions,
            format!(
                "This API key may not {what} (its scopes: {}). Use a key whose scopes include {need}.",
                ctx.scopes.join(", ")
            ),
        )
    }

    /// Checks that the key may read or cancel a stored task: it needs the scopes that task
    /// needed to be submitted (its task type and model; the route's dialect was checked at
    /// authentication). Uploads recorded as tasks need no more than the dialect.
    pub(crate) fn authorize_record(&self, ctx: &AuthContext, rec: &TaskRecord) -> Result<(), ApiError> {
        if ctx.scopes.is_empty() {
            return Ok(());
        }
        let Ok(req) = serde_json::from_str::<TaskRequest>(&rec.request) else { return Ok(()) };
        let tt = req.task_type();
        if !scopes::allows_task(&ctx.scopes, tt) {
            return Err(self.forbidden(
                format!("read or cancel tasks of taskType {}", tt.as_str()),
                format!("task:{}", tt.as_str()),
                ctx,
            ));
        }
        if let Some(air) = &rec.model
            && !scopes::allows_model(&ctx.scopes, air)
        {
            return Err(self.forbidden(
                format!("read or cancel tasks of model {air}"),
                format!("model:{air}"),
                ctx,
            ));
        }
        Ok(())
    }

    /// What a task-creating route checks before it fetches or stores anything for the task:
    /// the key's scopes, the model, and that the balance covers the price. Admission checks the
    /// price again atomically; this only keeps a refused request from doing work first.
    pub async fn precheck(&self, ctx: &AuthContext, sub: &Submission) -> Result<(), ApiError> {
        let price = self.authorize(ctx, sub)?.price_micros * i64::from(sub.request.result_count());
        let account =
            self.store.account_by_name(&ctx.account_name).await.map_err(|_| ApiError::internal())?;
        if let Some(a) = account
            && a.balance_micros < price
        {
            return Err(insufficient(price, a.balance_micros, &ctx.account_name));
        }
        Ok(())
    }

    /// Checks the key's scopes against a dialect, task type and model; returns the model.
    fn authorize(&self, ctx: &AuthContext, sub: &Submission) -> Result<&crate::catalog::Model, ApiError> {
        let tt = sub.request.task_type();
        if !scopes::allows_dialect(&ctx.scopes, sub.dialect) {
            return Err(self.forbidden(
                format!("use the {} dialect", sub.dialect),
                format!("dialect:{}", sub.dialect),
                ctx,
            ));
        }
        if !scopes::allows_task(&ctx.scopes, tt) {
            return Err(self
                .forbidden(format!("run taskType {}", tt.as_str()), format!("task:{}", tt.as_str()), ctx)
                .with_parameter(ParamPath::key("taskType")));
        }
        let air = match sub.request.model() {
            "" => self.catalog.default_for(tt)?,
            air => air,
        };
        let model = self.catalog.resolve(air, tt)?;
        if !scopes::allows_model(&ctx.scopes, &model.spec.air) {
            return Err(self
                .forbidden(format!("use model {}", model.spec.air), format!("model:{}", model.spec.air), ctx)
                .with_parameter(ParamPath::key("model")));
        }
        Ok(model)
    }

    /// Checks the key's scopes against a dialect and task, then the task against the catalog.
    fn authorize_and_validate(&self, ctx: &AuthContext, sub: &Submission) -> Result<i64, ApiError> {
        let model = self.authorize(ctx, sub)?;
        sub.request.validate(&model.spec)?;
        model.check_params(&sub.request)?;
        let max_inputs = self.config.assets.max_inputs_per_task;
        let inputs = sub.request.inputs();
        if inputs.len() > max_inputs {
            let paths: Vec<ParamPath> = inputs.into_iter().map(|i| i.param).collect();
            return Err(ApiError::new(
                ErrorCode::InvalidParameterValue,
                format!(
                    "The task names {} input images; this server takes at most {max_inputs} a task \
                     (assets.max_inputs_per_task). Send fewer.",
                    paths.len()
                ),
            )
            .with_parameter(paths));
        }
        if let Some(ttl) = sub.request.output().ttl_secs {
            let o = &self.config.outputs;
            if ttl < o.min_ttl_secs || ttl > o.max_ttl_secs {
                return Err(ApiError::new(
                    ErrorCode::InvalidParameterValue,
                    format!(
                        "Invalid value for parameter 'ttl': {ttl} is out of range; it must be between {} and {} seconds.",
                        o.min_ttl_secs, o.max_ttl_secs
                    ),
                )
                .with_parameter(ParamPath::key("ttl")));
            }
        }
        Ok(model.unit_price_micros(&sub.request).saturating_mul(i64::from(sub.request.result_count())))
    }

    /// Submits a task. Sync delivery waits for its results (up to `tasks.sync_timeout_secs`,
    /// after which the task keeps running and the client polls); async delivery returns once the
    /// task is durably recorded.
    ///
    /// Replaying a `taskUUID` with the identical request returns the stored task and charges
    /// nothing; the same `taskUUID` with a different request is `conflictTaskUUID`.
    pub async fn submit(self: &Arc<Self>, ctx: &AuthContext, sub: Submission) -> Result<Submitted, ApiError> {
        let span = tracing::info_span!(
            "task",
            task_uuid = %sub.task_uuid,
            task_type = %sub.task_type_name,
            account = %ctx.account_name
        );
        let (uuid, name) = (sub.task_uuid, sub.task_type_name.clone());
        self.submit_inner(ctx, sub)
            .instrument(span)
            .await
            .map_err(|e| e.with_task_type(name).with_task_uuid(uuid.to_string()))
    }

    async fn submit_inner(
        self: &Arc<Self>,
        ctx: &AuthContext,
        mut sub: Submission,
    ) -> Result<Submitted, ApiError> {
        self.refresh_limits_if_stale().await;
        self.check_rate(ctx)?;
        // A task that names no model runs on its type's default, recorded as if it had named it.
        if sub.request.model().is_empty() {
            *sub.request.model_mut() = self.catalog.default_for(sub.request.task_type())?.to_string();
        }
        let price = self.authorize_and_validate(ctx, &sub)?;
        let canonical = serde_json::to_vec(&sub.request).map_err(|_| ApiError::internal())?;
        let hash: [u8; 32] = Sha256::digest(&canonical).into();
        let key = (ctx.account_id, sub.task_uuid);
        let delivery = sub.delivery;
        // A sync task this request leads runs here, in `running`.
        let mut running: Option<RunToEnd> = None;
        let mut rx = match self.inflight.join(key, hash) {
            Role::Follower(h, _) if h != hash => return Err(conflict(sub.task_uuid)),
            Role::Follower(_, rx) => {
                tracing::debug!("duplicate of a task in flight; joining it");
                rx
            }
            Role::Leader(tx) => {
                let rx = tx.subscribe();
                // Everything from the queue place to the recorded end runs in `lead`, which runs
                // to its end even if this request is dropped (the client hung up). A store write
                // commits whether or not anyone still awaits it, so an admission dropped half way
                // used to leave its task charged and `processing` until the next start.
                let (said, mut heard) = oneshot::channel();
                let lead = self
                    .clone()
                    .lead(ctx.clone(), sub.clone(), price, hash, canonical, tx, said)
                    .instrument(tracing::Span::current());
                let mut lead = RunToEnd::new(lead);
                let word = tokio::select! {
                    biased;
                    word = &mut heard => Some(word),
                    () = &mut lead => None,
                };
                // Finished already: its word was sent before it ended.
                let word = match word {
                    Some(word) => word,
                    None => heard.await,
                };
                match word {
                    Ok(Ok(Lead::Published)) => {}
                    Ok(Ok(Lead::RunningElsewhere)) => {
                        return match sub.delivery {
                            Delivery::Async => Ok(Submitted::Accepted { task_uuid: sub.task_uuid }),
                            Delivery::Sync => Err(still_processing(sub.task_uuid)),
                        };
                    }
                    Ok(Err(e)) => return Err(e),
                    Err(_) => return Err(ApiError::internal()),
                }
                // The task runs to its end whatever the client does: an async task in a task of
                // its own at once (dropping `lead` hands it one); a sync one in this request
                // while the client waits, and in a task of its own if the client goes (or the
                // wait times out) first.
                match delivery {
                    Delivery::Async => drop(lead),
                    Delivery::Sync => running = Some(lead),
                }
                rx
            }
        };
        if sub.delivery == Delivery::Async {
            return Ok(Submitted::Accepted { task_uuid: sub.task_uuid });
        }
        let limit = std::time::Duration::from_secs(self.config.tasks.sync_timeout_secs);
        let waited = tokio::time::timeout(limit, async {
            if let Some(run) = running.as_mut() {
                run.await;
            }
            rx.wait_for(Option::is_some).await.map(|v| v.clone())
        })
        .await;
        let outcome = match waited {
            Err(_) => return Err(still_processing(sub.task_uuid)),
            Ok(Err(_)) => return Err(ApiError::internal()),
            Ok(Ok(v)) => v.expect("waited for Some"),
        };
        let f = outcome?;
        let bytes = f.bytes.map(|b| b.as_ref().clone());
        let mut delivered = self.deliver(sub.task_uuid, &sub.request, f.items, bytes).await?;
        delivered.timing = f.timing;
        Ok(Submitted::Done(delivered))
    }

    /// The leader of a new taskUUID: takes its queue place, admits it and runs it to its end,
    /// publishing the outcome on `tx`. `said` tells the request, once admission is decided,
    /// whether to wait for that outcome. Runs to its end once started (see [`RunToEnd`]).
    #[allow(clippy::too_many_arguments)]
    async fn lead(
        self: Arc<Self>,
        ctx: AuthContext,
        sub: Submission,
        price: i64,
        hash: [u8; 32],
        canonical: Vec<u8>,
        tx: watch::Sender<Option<Outcome>>,
        said: oneshot::Sender<Result<Lead, ApiError>>,
    ) {
        let key = (ctx.account_id, sub.task_uuid);
        let model = sub.request.model().to_string();
        let refuse = |e: ApiError, tx: watch::Sender<Option<Outcome>>, said: oneshot::Sender<_>| {
            let _ = tx.send(Some(Err(e.clone())));
            self.inflight.leave(key);
            let _ = said.send(Err(e));
        };
        // Daily cap and queue place come before the store charges anything. A known task (a
        // replay) is still answered when they refuse: only new tasks are limited.
        let place = match self.reserve_place(&ctx, &model, sub.task_uuid).await {
            Ok(p) => Some(p),
            Err(e) => match self.store.get_task(ctx.account_id, sub.task_uuid).await {
                Ok(Some(rec)) if rec.status != TaskStatus::Error => None,
                _ => return refuse(e, tx, said),
            },
        };
        let admitting = std::time::Instant::now();
        match self.admit(&ctx, &sub, price, hash, &canonical).await {
            Ok(Admitted::New) => {
                let admit = admitting.elapsed();
                let mut place =
                    place.unwrap_or_else(|| self.unbounded_place(ctx.account_id, &model, sub.task_uuid));
                place.admitted();
                let _ = said.send(Ok(Lead::Published));
                self.run(ctx.account_id, sub, tx, place, admit).await;
            }
            Ok(Admitted::Known(outcome)) => {
                let _ = tx.send(Some(outcome));
                self.inflight.leave(key);
                let _ = said.send(Ok(Lead::Published));
            }
            Ok(Admitted::RunningElsewhere) => {
                self.inflight.leave(key);
                let _ = said.send(Ok(Lead::RunningElsewhere));
            }
            Err(e) => refuse(e, tx, said),
        }
    }

    /// Records a new task (reserving its price), or finds the known one.
    async fn admit(
        &self,
        ctx: &AuthContext,
        sub: &Submission,
        price: i64,
        hash: [u8; 32],
        canonical: &[u8],
    ) -> Result<Admitted, ApiError> {
        let new_task = NewTask {
            account_id: ctx.account_id,
            task_uuid: sub.task_uuid,
            task_type: sub.task_type_name.clone(),
            dialect: sub.dialect,
            model: Some(sub.request.model().to_string()),
            request: record_of(&sub.request),
            request_hash: hash,
            price_micros: price,
            resumable_payload: (sub.delivery == Delivery::Async)
                .then(|| String::from_utf8_lossy(canonical).into_owned()),
            webhook_url: sub.webhook_url.clone(),
            spend_cap_micros: self.effective_limits(ctx.account_id, None).max_monthly_spend_micros,
            key_id: Some(ctx.key_id),
        };
        let admission = self.store.admit_task(new_task.clone()).await.map_err(|e| {
            tracing::error!(error = %e, "admission failed");
            crate::store_failure(&e)
        })?;
        match admission {
            Admission::Existing(rec) if rec.request_hash != hash => Err(conflict(sub.task_uuid)),
            Admission::Existing(rec) => match rec.status {
                TaskStatus::Success => {
                    tracing::debug!("replay of a finished task; returning the stored result");
                    Ok(Admitted::Known(Ok(Finished { items: rec.results, bytes: None, timing: None })))
                }
                TaskStatus::Error => {
                    let stored = rec.error.as_ref().map(from_stored).unwrap_or_else(ApiError::internal);
                    if !stored.code.is_retryable() {
                        return Ok(Admitted::Known(Err(stored)));
                    }
                    // A transient failure (provider error, timeout, interrupted by a restart) was
                    // refunded; the identical task sent again runs again, so a client's retry
                    // with the same taskUUID can succeed, and it is charged once.
                    tracing::info!(previous = %stored.code, "re-running a task that failed transiently");
                    let again = self.store.readmit_failed_task(new_task).await.map_err(|e| {
                        tracing::error!(error = %e, "re-admission failed");
                        crate::store_failure(&e)
                    })?;
                    match again {
                        Admission::Admitted => Ok(Admitted::New),
                        Admission::InsufficientCredits { balance_micros } => {
                            Err(insufficient(price, balance_micros, &ctx.account_name))
                        }
                        Admission::SpendCapReached { spent_micros } => {
                            Err(self.spend_cap_error(ctx, price, spent_micros))
                        }
                        Admission::Existing(_) => Ok(Admitted::RunningElsewhere),
                        Admission::Deleted => Err(deleted_uuid(sub.task_uuid)),
                    }
                }
                TaskStatus::Processing => Ok(Admitted::RunningElsewhere),
            },
            Admission::InsufficientCredits { balance_micros } => {
                Err(insufficient(price, balance_micros, &ctx.account_name))
            }
            Admission::SpendCapReached { spent_micros } => {
                Err(self.spend_cap_error(ctx, price, spent_micros))
            }
            Admission::Deleted => Err(deleted_uuid(sub.task_uuid)),
            Admission::Admitted => {
                tracing::debug!(price_micros = price, "task admitted");
                Ok(Admitted::New)
            }
        }
    }

    /// Runs an admitted task to its end, records the end, and publishes it to every waiter.
    /// It first waits for a concurrency slot (`place`), which it frees once executed. `admit` is
    /// how long its admission write took (zero for a task resumed at start-up).
    async fn run(
        self: Arc<Self>,
        account_id: i64,
        sub: Submission,
        tx: watch::Sender<Option<Outcome>>,
        mut place: crate::limits::Place,
        admit: std::time::Duration,
    ) {
        let key = (account_id, sub.task_uuid);
        let started = std::time::Instant::now();
        let live = self.inflight.live(key).unwrap_or_default();
        let cancel = live.cancel_token().clone();
        // Cancelling drops the wait for a concurrency slot or the execution: the queue place is
        // given back, provider jobs are cancelled by their drop guards, and the task ends as
        // `taskCancelled`, refunded like every failure.
        let mut timing = crate::timing::Timing::default();
        let run = tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                tracing::info!("task cancelled");
                Err(cancelled(sub.task_uuid))
            }
            (r, queue, provider) = async {
                place.ready().await;
                let queue = started.elapsed();
                let running = std::time::Instant::now();
                let r = self.execute(account_id, &sub, &live).await;
                (r, queue, running.elapsed())
            } => {
                (timing.queue, timing.provider) = (queue, provider);
                r
            }
        };
        place.finished(run.is_err());
        // A task that ends early after delivering some results (an async task with several
        // records each as it completes) pays for those: they stay downloadable, so they are
        // charged at their price and only the rest of the reserve is refunded.
        let delivered = match &run {
            Err(_) if sub.delivery == Delivery::Async && sub.request.result_count() > 1 => {
                self.store.get_task(account_id, sub.task_uuid).await.ok().flatten().map(|r| r.results)
            }
            _ => None,
        }
        .unwrap_or_default();
        let run = match run {
            Err(e) if e.code == ErrorCode::TaskCancelled && !delivered.is_empty() => {
                Err(cancelled_after(sub.task_uuid, delivered.len(), sub.request.result_count()))
            }
            r => r,
        };
        let finish = match &run {
            Ok((results, outputs, _)) => FinishOutcome::Success {
                results: results.clone(),
                outputs: outputs.clone(),
                cost_micros: results.iter().map(|r| r.cost_micros).sum(),
            },
            Err(e) if !delivered.is_empty() => FinishOutcome::PartlyDelivered {
                error: to_stored(e),
                cost_micros: delivered.iter().map(|r| r.cost_micros).sum(),
            },
            Err(e) => FinishOutcome::Failure { error: to_stored(e) },
        };
        // Webhook bodies are rendered now and recorded with the task's end, so a restart can
        // still deliver them.
        let webhooks = match &sub.webhook_url {
            None => vec![],
            Some(url) => {
                let rendered = match &run {
                    Ok((results, _, bytes)) => {
                        self.deliver(sub.task_uuid, &sub.request, results.clone(), Some(bytes.clone())).await
                    }
                    Err(e) => Err(e.clone()),
                };
                let rendered = rendered.map_err(|e| {
                    e.with_task_type(sub.task_type_name.clone()).with_task_uuid(sub.task_uuid.to_string())
                });
                self.webhook_bodies(sub.dialect, &sub.task_type_name, sub.task_uuid, url, rendered.as_ref())
                    .await
            }
        };
        let ending = std::time::Instant::now();
        let recorded = self
            .store
            .finish_task(Finish {
                account_id,
                task_uuid: sub.task_uuid,
                outcome: finish,
                webhooks: webhooks.clone(),
                timings: Some(timing.to_record(admit)),
                attempts: live.attempts().take(),
            })
            .await;
        timing.store = admit + ending.elapsed();
        timing.total = admit + started.elapsed();
        self.metrics.task_phases(&timing);
        // The end could not be recorded (a full disk, a lost database): the task must still
        // end, refunded, now rather than at the next start.
        let (recorded, run, webhooks) = match recorded {
            Ok(settled) => (Ok(settled), run, webhooks),
            Err(e) => {
                tracing::error!(error = %e, "recording the task's end failed; recording it as failed instead");
                let failure = crate::store_failure(&e);
                let webhooks = match &sub.webhook_url {
                    None => vec![],
                    Some(url) => {
                        let err = failure
                            .clone()
                            .with_task_type(sub.task_type_name.clone())
                            .with_task_uuid(sub.task_uuid.to_string());
                        self.webhook_bodies(sub.dialect, &sub.task_type_name, sub.task_uuid, url, Err(&err))
                            .await
                    }
                };
                let recorded =
                    self.settle_as_failed(account_id, sub.task_uuid, &failure, webhooks.clone()).await;
                (recorded, Err(failure), webhooks)
            }
        };
        if recorded.is_ok() {
            for w in webhooks {
                self.spawn_webhook(mediagate_store::WebhookDelivery {
                    webhook_id: w.webhook_id,
                    account_id,
                    task_uuid: sub.task_uuid.to_string(),
                    url: w.url,
                    payload: w.payload,
                    status: "pending".into(),
                    attempts: vec![],
                });
            }
        }
        // What the recorded end charged and refunded.
        let settled = recorded.as_ref().ok().copied().unwrap_or_default();
        self.metrics.task_ended(
            &sub.task_type_name,
            sub.request.model(),
            run.as_ref()
                .err()
                .map(|e| e.code)
                .or(recorded.as_ref().err().map(|_| ErrorCode::InternalServerError)),
            settled,
            started.elapsed(),
        );
        let outcome = match (recorded, run) {
            (Err(e), _) => {
                // Still unrecorded: `settle_as_failed` keeps trying in the background.
                Err(crate::store_failure(&e))
            }
            (Ok(_), Ok((results, _, bytes))) => {
                // Debug, not info: a line per successful task cost more than a tenth of a small
                // task's CPU at benchmark rates. Failures stay at info.
                tracing::debug!(results = results.len(), "task succeeded");
                Ok(Finished { items: results, bytes: Some(Arc::new(bytes)), timing: Some(timing) })
            }
            (Ok(_), Err(e)) => {
                tracing::info!(code = %e.code, "task failed");
                Err(e)
            }
        };
        let _ = tx.send(Some(outcome));
        self.inflight.leave(key);
    }

    /// Records a task's end as `failure` (refunding it) after recording its real end failed.
    /// When that fails too (the disk is still full), a background task keeps trying, with
    /// backoff, until it succeeds or the process stops (then the next start settles it).
    async fn settle_as_failed(
        &self,
        account_id: i64,
        task_uuid: Uuid,
        failure: &ApiError,
        webhooks: Vec<mediagate_store::NewWebhook>,
    ) -> Result<mediagate_store::Settled, mediagate_store::StoreError> {
        let finish = Finish {
            account_id,
            task_uuid,
            outcome: FinishOutcome::Failure { error: to_stored(failure) },
            webhooks,
            timings: None,
            attempts: vec![],
        };
        let first = self.store.finish_task(finish.clone()).await;
        if let Err(e) = &first {
            tracing::error!(error = %e, "recording the task as failed failed too; retrying in the background");
            let store = self.store.clone();
            tokio::spawn(
                async move {
                    let mut wait = std::time::Duration::from_millis(100);
                    loop {
                        tokio::time::sleep(wait).await;
                        match store.finish_task(finish.clone()).await {
                            Ok(_) => {
                                tracing::info!("the task's failure is recorded at last (refunded)");
                                return;
                            }
                            // Recorded meanwhile (e.g. by a cancellation): nothing left to do.
                            Err(
                                mediagate_store::StoreError::NotFound(_)
                                | mediagate_store::StoreError::Conflict(_),
                            ) => return,
                            Err(_) => wait = (wait * 2).min(std::time::Duration::from_secs(5)),
                        }
                    }
                }
                .instrument(tracing::Span::current()),
            );
        }
        first
    }

    /// Runs again the async tasks a stop left unfinished (they were acknowledged, so they must
    /// complete). Call once at start-up, after [`Engine::prepare`]. Returns how many.
    pub async fn resume_unfinished(self: &Arc<Self>) -> Result<usize, mediagate_store::StoreError> {
        let tasks = self.store.resumable_tasks().await?;
        let n = tasks.len();
        // `tasks.resume_concurrency`: without it a restart sent the whole backlog to a provider
        // at once when the model has no concurrency limit of its own.
        let pace = match self.config.tasks.resume_concurrency {
            0 => None,
            k => Some(Arc::new(tokio::sync::Semaphore::new(k))),
        };
        for t in tasks {
            let request: TaskRequest = match serde_json::from_str(&t.payload) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(task_uuid = %t.task_uuid, error = %e, "unreadable stored task; failing it");
                    let _ = self
                        .store
                        .finish_task(Finish {
                            account_id: t.account_id,
                            task_uuid: t.task_uuid,
                            outcome: FinishOutcome::Failure { error: to_stored(&ApiError::internal()) },
                            webhooks: vec![],
                            timings: None,
                            attempts: vec![],
                        })
                        .await;
                    continue;
                }
            };
            let sub = Submission {
                task_uuid: t.task_uuid,
                dialect: t.dialect,
                task_type_name: t.task_type,
                request,
                delivery: Delivery::Async,
                webhook_url: t.webhook_url,
            };
            let hash: [u8; 32] = Sha256::digest(t.payload.as_bytes()).into();
            if let Role::Leader(tx) = self.inflight.join((t.account_id, t.task_uuid), hash) {
                let span = tracing::info_span!("task", task_uuid = %t.task_uuid, account = %t.account_name, resumed = true);
                let (engine, pace) = (self.clone(), pace.clone());
                let cancel = self
                    .inflight
                    .live((t.account_id, t.task_uuid))
                    .unwrap_or_default()
                    .cancel_token()
                    .clone();
                tokio::spawn(
                    async move {
                        // The backlog starts a few at a time; a task cancelled while it waits for
                        // its turn ends at once in `run`.
                        let _turn = match &pace {
                            Some(p) => tokio::select! {
                                turn = p.clone().acquire_owned() => turn.ok(),
                                () = cancel.cancelled() => None,
                            },
                            None => None,
                        };
                        // Acknowledged already: it runs whatever the queue's length, waiting for
                        // a slot in the model's fair queue like new work.
                        let place = engine.unbounded_place(t.account_id, sub.request.model(), t.task_uuid);
                        engine.run(t.account_id, sub, tx, place, std::time::Duration::ZERO).await;
                    }
                    .instrument(span),
                );
            }
        }
        if n > 0 {
            tracing::info!(count = n, "resumed acknowledged tasks left unfinished by the last stop");
        }
        Ok(n)
    }

    /// Ingests assets, runs the provider and stores the outputs.
    async fn execute(
        &self,
        account_id: i64,
        sub: &Submission,
        live: &Arc<LiveTask>,
    ) -> Result<(Vec<ResultItem>, Vec<NewOutput>, Vec<Vec<u8>>), ApiError> {
        live.set_running();
        let model = self.catalog.resolve(sub.request.model(), sub.request.task_type())?;
        // What one result costs; an upscale's price is known only once its input is read.
        let mut unit_price = model.unit_price_micros(&sub.request);
        let inputs = self.fetch_inputs(account_id, &sub.request, model).await?;
        let sizes: Vec<(u32, u32)> =
            inputs.iter().map(|a| (a.width.unwrap_or(0), a.height.unwrap_or(0))).collect();
        if let Some(work) = sub.request.work_with_inputs(&model.spec, &sizes)? {
            unit_price = model.price_for_work(sub.request.family(), work.amount);
            self.cover_work_price(account_id, sub, unit_price, model, &work).await?;
        }
        let seeds = draw_seeds(&sub.request);
        let job = Job { request: sub.request.clone(), seeds, inputs, account_id };
        // Async tasks with several results run one result at a time and record each as it
        // completes, so getResponse returns partial results (as Runware does).
        let one = sub.request.one_result().filter(|_| sub.delivery == Delivery::Async && job.seeds.len() > 1);
        let Some(one) = one else {
            let artifacts = self.dispatch(model, (sub.task_uuid, live), job, progress_of(live, 0, 1)).await?;
            return self.keep_artifacts(sub, artifacts, unit_price).await;
        };
        let (mut results, mut outputs, mut bytes) = (Vec::new(), Vec::new(), Vec::new());
        let n = job.seeds.len();
        for (i, &seed) in job.seeds.iter().enumerate() {
            let job = Job { request: one.clone(), seeds: vec![seed], ..job.clone() };
            let artifacts = self.dispatch(model, (sub.task_uuid, live), job, progress_of(live, i, n)).await?;
            live.set_progress((i + 1) as f32 / n as f32);
            let (r, o, b) = self.keep_artifacts(sub, artifacts, unit_price).await?;
            results.extend(r);
            bytes.extend(b);
            self.store
                .record_partial_results(account_id, sub.task_uuid, results.clone(), o.clone())
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "recording a partial result failed");
                    crate::store_failure(&e)
                })?;
            outputs.extend(o);
        }
        Ok((results, outputs, bytes))
    }

    /// Fetches and checks the task's inputs through the asset intake, in the order the task
    /// lists them, with the model's aspect bounds.
    async fn fetch_inputs(
        &self,
        account_id: i64,
        request: &TaskRequest,
        model: &crate::catalog::Model,
    ) -> Result<Vec<mediagate_assets::Asset>, ApiError> {
        let b = &model.spec.bounds;
        let mut assets = Vec::new();
        for input in request.inputs() {
            let kind = match input.kind {
                MediaKind::Image => AssetKind::Image,
                MediaKind::Video => AssetKind::Video,
                MediaKind::Audio => AssetKind::Audio,
            };
            let aspect = (kind == AssetKind::Image).then_some((b.input_aspect_min, b.input_aspect_max));
            let started = std::time::Instant::now();
            let asset = self
                .intake
                .resolve(
                    input.reference,
                    &AssetRequest {
                        kind,
                        param: input.param,
                        aspect,
                        account_id,
                        stored: &EngineAssets(self),
                    },
                )
                .await;
            self.metrics.asset_resolved(asset.as_ref().ok().map(|a| &a.source), started.elapsed());
            assets.push(asset?);
        }
        Ok(assets)
    }

    /// Raises the task's reservation to `price` (per result) once its work is known from its
    /// inputs, or fails it before any work when the account cannot pay: the reservation it was
    /// admitted with is then refunded like every failure's.
    async fn cover_work_price(
        &self,
        account_id: i64,
        sub: &Submission,
        price: i64,
        model: &crate::catalog::Model,
        work: &mediagate_core::task::Work,
    ) -> Result<(), ApiError> {
        let total = price.saturating_mul(i64::from(sub.request.result_count()));
        let cap = self.effective_limits(account_id, None).max_monthly_spend_micros;
        let raised =
            self.store.raise_reservation(account_id, sub.task_uuid, total, cap).await.map_err(|e| {
                tracing::error!(error = %e, "raising a reservation failed");
                crate::store_failure(&e)
            })?;
        let costs = format!(
            "This {}'s {} costs ${} (the listed ${} pays for 1024x1024 and smaller)",
            sub.request.task_type().as_str(),
            work.what,
            format_usd(total),
            format_usd(model.price_micros)
        );
        match raised {
            Reservation::Covered => Ok(()),
            Reservation::InsufficientCredits { balance_micros } => Err(ApiError::new(
                ErrorCode::InsufficientCredits,
                format!(
                    "{costs} but the account holds only ${} beyond the ${} reserved when it was \
                     admitted. It was not run and nothing was charged. Add credits, or {}.",
                    format_usd(balance_micros),
                    format_usd(model.price_micros.saturating_mul(i64::from(sub.request.result_count()))),
                    work.smaller
                ),
            )),
            Reservation::SpendCapReached { spent_micros } => Err(ApiError::new(
                ErrorCode::MonthlySpendLimitExceeded,
                format!(
                    "{costs} but the account has spent ${} of its ${} monthly spend cap this month (UTC). \
                     It was not run and nothing was charged. To stay under it, {}, or ask an \
                     administrator to raise `maxMonthlySpendUsd`.",
                    format_usd(spent_micros),
                    format_usd(cap),
                    work.smaller
                ),
            )),
        }
    }

    /// One dispatch: retries, fallbacks and breakers live in the dispatcher; the task stays
    /// admitted once.
    async fn dispatch(
        &self,
        model: &crate::catalog::Model,
        (task_uuid, live): (Uuid, &crate::live::LiveTask),
        job: Job,
        progress: mediagate_providers::ProgressFn,
    ) -> Result<Vec<mediagate_providers::Artifact>, ApiError> {
        let log = crate::dispatch::log_progress(task_uuid);
        let progress: mediagate_providers::ProgressFn = Arc::new(move |p| {
            log(p);
            progress(p);
        });
        self.dispatcher.dispatch_logged(&model.spec, job, progress, live.attempts()).await.map_err(|e| {
            tracing::warn!(model = %model.spec.air, code = %e.code, detail = %e.detail, "dispatch failed");
            let error = ApiError::new(e.code, e.message);
            match e.parameter {
                Some(p) => error.with_parameter(p),
                None => error,
            }
        })
    }

    /// Turns artifacts into results and outputs: small ones inline, large ones written to files.
    async fn keep_artifacts(
        &self,
        sub: &Submission,
        artifacts: Vec<mediagate_providers::Artifact>,
        unit_price: i64,
    ) -> Result<(Vec<ResultItem>, Vec<NewOutput>, Vec<Vec<u8>>), ApiError> {
        let ttl = sub.request.output().ttl_secs.unwrap_or(self.config.outputs.default_ttl_secs);
        let expires_at = mediagate_store::now_ms() + (ttl as i64) * 1000;
        let mut results = Vec::with_capacity(artifacts.len());
        let mut outputs = Vec::with_capacity(artifacts.len());
        for a in &artifacts {
            // Time-ordered (v7): new outputs land at the end of the store's uuid index instead of
            // on a random page of it, which was one more 4 KiB page written per result. The 74
            // random bits left still make an output URL unguessable.
            let uuid = Uuid::now_v7();
            results.push(ResultItem {
                output_uuid: uuid,
                content_type: a.content_type.into(),
                extension: a.extension.into(),
                seed: a.seed,
                cost_micros: unit_price,
                completion: a.completion.clone(),
                fields: a.fields.clone(),
            });
            outputs.push(NewOutput {
                uuid,
                content_type: a.content_type.into(),
                extension: a.extension.into(),
                size: a.bytes.len() as u64,
                expires_at,
                inline_data: None,
            });
        }
        // Small outputs go into the store with the task's result; large ones become files first,
        // so a result row never points at a file that is not fully written.
        let inline_max = self.config.outputs.inline_max_bytes;
        let large: Vec<(Uuid, &'static str, Vec<u8>)> = results
            .iter()
            .zip(&artifacts)
            .filter(|(_, a)| a.bytes.len() > inline_max)
            .map(|(r, a)| (r.output_uuid, a.extension, a.bytes.clone()))
            .collect();
        if !large.is_empty() {
            let files = self.outputs.clone();
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                for (uuid, ext, bytes) in large {
                    files.write(uuid, ext, &bytes)?;
                }
                Ok(())
            })
            .await
            .map_err(|_| ApiError::internal())?
            .map_err(|e| {
                tracing::error!(error = %e, "writing outputs failed");
                if e.kind() == std::io::ErrorKind::StorageFull {
                    crate::storage_full()
                } else {
                    ApiError::internal()
                }
            })?;
        }
        let bytes: Vec<Vec<u8>> = artifacts.into_iter().map(|a| a.bytes).collect();
        for (o, b) in outputs.iter_mut().zip(&bytes) {
            if b.len() <= inline_max {
                o.inline_data = Some(b.clone());
            }
        }
        Ok((results, outputs, bytes))
    }

    /// A task's results as delivered: with their URLs, and their bytes when the task asked for
    /// them inline or its results are text (which is returned in the result itself).
    async fn deliver(
        &self,
        task_uuid: Uuid,
        request: &TaskRequest,
        items: Vec<ResultItem>,
        fresh: Option<Vec<Vec<u8>>>,
    ) -> Result<Delivered, ApiError> {
        let output = request.output();
        let family = request.family();
        let mut fresh = fresh.map(Vec::into_iter);
        let mut out = Vec::with_capacity(items.len());
        for r in items {
            let fresh_bytes = fresh.as_mut().and_then(Iterator::next);
            let inline = match (output.output_type, family) {
                (OutputType::Url, Family::Image | Family::Video | Family::Audio) => None,
                _ => Some(match fresh_bytes {
                    Some(b) => b,
                    None => self.load_output(r.output_uuid).await.ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::OutputNotFound,
                            format!(
                                "The output {} of this task has expired and can no longer be returned inline.",
                                r.output_uuid
                            ),
                        )
                    })?,
                }),
            };
            out.push(DeliveredItem { url: self.output_url(r.output_uuid, &r.extension), result: r, inline });
        }
        Ok(Delivered {
            task_uuid,
            family,
            prefix: request.result_prefix(),
            output_type: output.output_type,
            include_cost: output.include_cost,
            include_usage: output.include_usage,
            items: out,
            timing: None,
        })
    }

    /// The stored state of an earlier task of this account (`getResponse`).
    pub async fn get_response(&self, ctx: &AuthContext, task_uuid: Uuid) -> Result<TaskView, ApiError> {
        let rec = self
            .store
            .get_task(ctx.account_id, task_uuid)
            .await
            .map_err(|_| ApiError::internal())?
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::TaskNotFound,
                    format!("No task with taskUUID {task_uuid} exists for this account."),
                )
                .with_parameter(ParamPath::key("taskUUID"))
            })?;
        self.authorize_record(ctx, &rec)?;
        self.view_of(rec).await
    }

    /// A stored task with its results (as a poll delivers them) and its error.
    pub(crate) async fn view_of(&self, rec: TaskRecord) -> Result<TaskView, ApiError> {
        let task_uuid = rec.task_uuid;
        // Tasks recorded as tasks without a canonical request (uploads) have no results here.
        let request = serde_json::from_str::<TaskRequest>(&rec.request).ok();
        // A running task may already have partial results.
        let delivered = match (rec.status, &request) {
            (_, None) => None,
            (TaskStatus::Success, Some(request)) => {
                Some(self.deliver(task_uuid, request, rec.results.clone(), None).await?)
            }
            (TaskStatus::Processing, Some(request)) if !rec.results.is_empty() => {
                Some(self.deliver(task_uuid, request, rec.results.clone(), None).await?)
            }
            // Ended early after delivering some results: those stay available (and were charged).
            (TaskStatus::Error, Some(request)) if !rec.results.is_empty() => {
                self.deliver(task_uuid, request, rec.results.clone(), None).await.ok()
            }
            _ => None,
        };
        let error = rec.error.as_ref().map(|e| {
            from_stored(e).with_task_type(rec.task_type.clone()).with_task_uuid(task_uuid.to_string())
        });
        Ok(TaskView { record: rec, delivered, error })
    }

    /// Waits until a task of this account that runs in this process has ended and its end is
    /// recorded; returns at once when it is not running here. (A WebSocket `getResponse` for an
    /// unfinished task uses it to push the result when it is ready, as the SDKs expect.)
    pub async fn wait_for_task_end(&self, account_id: i64, task_uuid: Uuid) {
        if let Some(mut rx) = self.inflight.outcome((account_id, task_uuid)) {
            // An error means the leader is gone without publishing: nothing more to wait for.
            let _ = rx.wait_for(Option::is_some).await;
        }
    }

    /// The live phase of one of the account's tasks, when it is admitted, unfinished and
    /// running in this process (`None` otherwise: read the stored record): `Throttled` while it
    /// waits for a concurrency slot, then `Running` with the provider's progress.
    pub fn task_phase(&self, account_id: i64, task_uuid: Uuid) -> Option<TaskPhase> {
        let live = self.inflight.live((account_id, task_uuid))?;
        Some(match (self.queue_phase(account_id, task_uuid), live.phase()) {
            (Some(crate::Phase::Queued), _) => TaskPhase::Throttled,
            (Some(crate::Phase::Running), TaskPhase::Pending) => TaskPhase::Running { progress: 0.0 },
            (_, phase) => phase,
        })
    }

    /// Cancels an unfinished task, or deletes (hides) a finished one (Runway's
    /// `DELETE /v1/tasks/{id}`). A cancelled task ends as `taskCancelled` and is refunded;
    /// this returns once its end is recorded.
    pub async fn cancel_or_delete(&self, ctx: &AuthContext, task_uuid: Uuid) -> Result<Removal, ApiError> {
        let key = (ctx.account_id, task_uuid);
        let missing = || {
            ApiError::new(
                ErrorCode::TaskNotFound,
                format!("No task with id {task_uuid} exists for this account."),
            )
        };
        // The record first: whether the key may touch this task is decided before anything is
        // cancelled or deleted (a task in flight is admitted, so it has its record).
        let rec = self
            .store
            .get_task(ctx.account_id, task_uuid)
            .await
            .map_err(|_| ApiError::internal())?
            .ok_or_else(missing)?;
        self.authorize_record(ctx, &rec)?;
        if let (Some(live), Some(mut rx)) = (self.inflight.live(key), self.inflight.outcome(key)) {
            live.cancel_token().cancel();
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(30), rx.wait_for(Option::is_some)).await;
            return Ok(Removal::Cancelled);
        }
        if rec.status == TaskStatus::Processing {
            // Admitted but not running here: another server on the same store runs it.
            return Err(ApiError::new(
                ErrorCode::ServiceUnavailable,
                format!(
                    "Task {task_uuid} is running on another server of this deployment; retry the cancellation."
                ),
            ));
        }
        if self.store.delete_task(ctx.account_id, task_uuid).await.map_err(|_| ApiError::internal())? {
            Ok(Removal::Deleted)
        } else {
            Err(missing())
        }
    }

    /// The model a task of `task_type` runs on when it names none (see [`Catalog::default_for`]).
    ///
    /// [`Catalog::default_for`]: crate::catalog::Catalog::default_for
    pub fn default_model(&self, task_type: mediagate_core::task::TaskType) -> Result<&str, ApiError> {
        self.catalog.default_for(task_type)
    }
}

/// One seed per result for seeded task types: result `i` uses `seed + i`. Validation keeps a
/// sent seed's span within `SEED_MAX`; a drawn one is drawn so that every result's seed stays
/// within `RANDOM_SEED_MAX`, so any of them can be sent back.
fn draw_seeds(request: &TaskRequest) -> Vec<u64> {
    let Some(sent) = request.seed() else { return Vec::new() };
    let extra = u64::from(request.result_count()).saturating_sub(1);
    let first = sent.unwrap_or_else(|| {
        rand::random_range(1..=mediagate_core::task::RANDOM_SEED_MAX.saturating_sub(extra).max(1))
    });
    (0..=extra).map(|i| first.saturating_add(i)).collect()
}
