//! Task history for developers and operators (issue 20): a page of tasks newest first with
//! filters, and one task in full.
//!
//! Who sees what: an unrestricted API key sees its whole account; a key with scopes sees only
//! the tasks it sent itself (a key limited to one model must not read its siblings' prompts);
//! an admin key sees any account, or all of them. The store does the listing
//! ([`mediagate_store::history`]); this module checks the query, applies that rule and turns
//! the store's position into an opaque cursor.

use crate::{AuthContext, Engine, TaskView};
use base64::Engine as _;
use mediagate_core::{ApiError, Dialect, ErrorCode, ParamPath};
use mediagate_store::history::{HistoryFilter, HistoryPosition, HistoryRequest};
use mediagate_store::{TaskStatus, WebhookDelivery};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// History options (`[history]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// Tasks on a page when the request does not say.
    pub page_size: u32,
    /// Tasks on a page at most (`limit` above it is refused).
    pub max_page_size: u32,
    /// Rows one request reads at most to fill a page when filters are checked row by row
    /// (task type, model, dialect, key, error code, text); a page may then come back short,
    /// with a cursor to go on from.
    pub scan_rows: u32,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig { page_size: 20, max_page_size: 100, scan_rows: 5_000 }
    }
}

/// Whose history a request reads.
#[derive(Debug, Clone, Copy)]
pub enum Viewer<'a> {
    /// An API key: its account (or, for a scoped key, its own tasks).
    Key(&'a AuthContext),
    /// An admin key: one account, or every account (`None`).
    Admin {
        /// The account's id.
        account_id: Option<i64>,
    },
}

/// A history request as a client states it (the HTTP layer parses query strings into it).
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// `processing`, `success` or `error`.
    pub status: Option<TaskStatus>,
    /// The task type as sent.
    pub task_type: Option<String>,
    /// The model's AIR id.
    pub model: Option<String>,
    /// The error's catalog code.
    pub error_code: Option<String>,
    /// The dialect it came in by.
    pub dialect: Option<Dialect>,
    /// The key that sent it.
    pub key_id: Option<i64>,
    /// Admitted at or after (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Admitted before (ms since the epoch).
    pub until_ms: Option<i64>,
    /// Text in the recorded request (its prompt, for instance).
    pub text: Option<String>,
    /// Where to go on from (a previous page's `next_cursor`).
    pub cursor: Option<String>,
    /// Tasks on the page.
    pub limit: Option<u32>,
}

/// A page of history.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    /// The tasks, newest first.
    pub tasks: Vec<mediagate_store::TaskRecord>,
    /// Pass as `cursor` for the next page; `None` when the history ends here. A page may hold
    /// fewer tasks than asked (even none) and still have a next one: see
    /// [`HistoryConfig::scan_rows`].
    pub next_cursor: Option<String>,
}

/// One task in full.
#[derive(Debug, Clone)]
pub struct TaskDetails {
    /// The task, its results and its error, as a poll would show them.
    pub view: TaskView,
    /// Its webhook deliveries and every attempt.
    pub webhooks: Vec<WebhookDelivery>,
}

fn bad(parameter: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameterValue, message).with_parameter(ParamPath::key(parameter))
}

/// The cursor of a position: opaque to clients, so its form may change.
fn encode_cursor(p: &HistoryPosition) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}.{}", p.created_at, p.task_uuid))
}

fn decode_cursor(cursor: &str) -> Result<HistoryPosition, ApiError> {
    let wrong =
        || bad("cursor", "The cursor is not one this server gave; pass a page's nextCursor unchanged.");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).map_err(|_| wrong())?;
    let text = String::from_utf8(raw).map_err(|_| wrong())?;
    let (at, uuid) = text.split_once('.').ok_or_else(wrong)?;
    let created_at = at.parse::<i64>().map_err(|_| wrong())?;
    let task_uuid = Uuid::try_parse(uuid).map_err(|_| wrong())?.to_string();
    Ok(HistoryPosition { created_at, task_uuid })
}

impl Engine {
    /// A page of history for `viewer`.
    pub async fn history(&self, viewer: Viewer<'_>, q: HistoryQuery) -> Result<HistoryPage, ApiError> {
        let cfg = &self.config.history;
        let limit = q.limit.unwrap_or(cfg.page_size);
        if limit == 0 || limit > cfg.max_page_size {
            return Err(bad(
                "limit",
                format!("limit must be between 1 and {} (history.max_page_size).", cfg.max_page_size),
            ));
        }
        if let (Some(s), Some(u)) = (q.since_ms, q.until_ms)
            && s >= u
        {
            return Err(bad("until", "until must be later than since."));
        }
        if let Some(code) = &q.error_code
            && ErrorCode::from_wire(code).is_none()
        {
            return Err(bad(
                "errorCode",
                format!("{code} is not an error code of this server's catalog (see /docs/errors)."),
            ));
        }
        let after = q.cursor.as_deref().map(decode_cursor).transpose()?;
        let (account_id, key_id) = match viewer {
            // A scoped key reads only what it sent; asking for another key's tasks is a 403.
            Viewer::Key(ctx) if !ctx.scopes.is_empty() => {
                if q.key_id.is_some_and(|k| k != ctx.key_id) {
                    return Err(ApiError::new(
                        ErrorCode::InsufficientPermissions,
                        "A key with scopes reads only the tasks it sent itself; use a key without scopes to read other keys' tasks.",
                    )
                    .with_parameter(ParamPath::key("keyId")));
                }
                (Some(ctx.account_id), Some(ctx.key_id))
            }
            Viewer::Key(ctx) => (Some(ctx.account_id), q.key_id),
            Viewer::Admin { account_id } => (account_id, q.key_id),
        };
        let filter = HistoryFilter {
            account_id,
            status: q.status,
            task_type: q.task_type,
            model: q.model,
            error_code: q.error_code,
            dialect: q.dialect,
            key_id,
            since_ms: q.since_ms,
            until_ms: q.until_ms,
            text: q.text.filter(|t| !t.is_empty()),
        };
        let page = self
            .store
            .list_tasks(HistoryRequest { filter, after, limit, scan_rows: cfg.scan_rows })
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "history page failed");
                crate::store_failure(&e)
            })?;
        Ok(HistoryPage { tasks: page.tasks, next_cursor: page.next.as_ref().map(encode_cursor) })
    }

    /// One task in full for `viewer` (`account_id` names its account for an admin).
    pub async fn history_task(&self, viewer: Viewer<'_>, task_uuid: Uuid) -> Result<TaskDetails, ApiError> {
        let not_found = || {
            ApiError::new(
                ErrorCode::TaskNotFound,
                format!("No task with taskUUID {task_uuid} exists for this account."),
            )
            .with_parameter(ParamPath::key("taskUUID"))
        };
        let account_id = match viewer {
            Viewer::Key(ctx) => ctx.account_id,
            Viewer::Admin { account_id: Some(a) } => a,
            Viewer::Admin { account_id: None } => {
                return Err(bad("account", "Name the task's account (?account=NAME)."));
            }
        };
        let rec = self
            .store
            .history_task(account_id, task_uuid)
            .await
            .map_err(|e| crate::store_failure(&e))?
            .ok_or_else(not_found)?;
        if let Viewer::Key(ctx) = viewer
            && !ctx.scopes.is_empty()
            && rec.key_id != Some(ctx.key_id)
        {
            return Err(not_found());
        }
        let webhooks = self
            .store
            .webhook_deliveries(account_id, task_uuid)
            .await
            .map_err(|e| crate::store_failure(&e))?;
        Ok(TaskDetails { view: self.view_of(rec).await?, webhooks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_strangers_are_refused() {
        let p = HistoryPosition { created_at: 1_765_000_000_123, task_uuid: Uuid::new_v4().to_string() };
        assert_eq!(decode_cursor(&encode_cursor(&p)).unwrap(), p);
        for wrong in
            ["", "!!", "MTIz", &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("12.not-a-uuid")]
        {
            let e = decode_cursor(wrong).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{wrong}");
        }
    }
}
