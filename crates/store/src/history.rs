//! Task history: listing an account's tasks (or every account's) newest first, with filters and
//! a position to go on from.
//!
//! Both backends read through an index on `(account_id, created_at, task_uuid)` (or
//! `(created_at, task_uuid)` across accounts, or the partial index of failed tasks when only
//! failures can match), so a page costs the same at ten million rows as at a thousand. Filters
//! the index cannot serve (task type, model, dialect, key, error code, text) are checked on the
//! rows the index yields, and at most `scan_rows` of them per request: a rare filter then
//! returns a short (even empty) page with a position to go on from, instead of reading the whole
//! history in one request. The SQL is built here once for both backends.

use crate::TaskStatus;
use mediagate_core::Dialect;

/// What to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryFilter {
    /// One account's tasks, or every account's (`None`, for operators).
    pub account_id: Option<i64>,
    /// Where the task is.
    pub status: Option<TaskStatus>,
    /// The task type as sent.
    pub task_type: Option<String>,
    /// The model's AIR id.
    pub model: Option<String>,
    /// The error's catalog code (failed tasks only).
    pub error_code: Option<String>,
    /// The dialect the task came in by.
    pub dialect: Option<Dialect>,
    /// The key that sent it.
    pub key_id: Option<i64>,
    /// Admitted at or after (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Admitted before (ms since the epoch).
    pub until_ms: Option<i64>,
    /// Text in the request as recorded (the prompt, for instance), case-insensitive (ASCII).
    pub text: Option<String>,
}

impl HistoryFilter {
    /// Whether a filter must be checked on the rows (the index does not order by it).
    fn checks_rows(&self) -> bool {
        self.task_type.is_some()
            || self.model.is_some()
            || self.dialect.is_some()
            || self.key_id.is_some()
            || self.text.is_some()
            || self.error_code.is_some()
            || matches!(self.status, Some(TaskStatus::Success | TaskStatus::Processing))
    }

    /// Whether only failed tasks can match (the partial index of failures serves it).
    fn failures_only(&self) -> bool {
        self.status == Some(TaskStatus::Error) || self.error_code.is_some()
    }
}

/// A place in the history, newest first: the next page starts after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPosition {
    /// The admission time of the last task seen.
    pub created_at: i64,
    /// Its taskUUID (ties on the time are ordered by it).
    pub task_uuid: String,
}

/// One request for a page.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRequest {
    /// What to list.
    pub filter: HistoryFilter,
    /// Go on after this place (`None`: from the newest).
    pub after: Option<HistoryPosition>,
    /// Tasks on the page at most.
    pub limit: u32,
    /// Rows read at most to fill the page when filters are checked on rows.
    pub scan_rows: u32,
}

/// A page of history.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    /// The tasks, newest first.
    pub tasks: Vec<crate::TaskRecord>,
    /// Where the next page starts; `None` when the history ends here.
    pub next: Option<HistoryPosition>,
}

/// A value to bind, in placeholder order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bind {
    Int(i64),
    Text(String),
}

/// The backend's spelling of what differs between SQLite and PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sql {
    Sqlite,
    Postgres,
}

impl Sql {
    fn placeholder(self, n: usize) -> String {
        match self {
            Sql::Sqlite => format!("?{n}"),
            Sql::Postgres => format!("${n}"),
        }
    }
}

/// The statements for one page: `page` lists the matching rows (every task column, plus the
/// scan position as `pos_at`, `pos_uuid`); `edge`, when rows are filtered, finds the last row
/// the budget lets the scan read (a row there means the page may go on past what was read).
#[derive(Debug)]
pub(crate) struct HistorySql {
    pub page: String,
    pub edge: Option<String>,
    pub binds: Vec<Bind>,
    /// `edge` takes the first this many of `binds`.
    pub edge_binds: usize,
}

pub(crate) fn build(req: &HistoryRequest, sql: Sql, task_columns: &str) -> HistorySql {
    let f = &req.filter;
    let mut binds = Vec::new();
    macro_rules! bind {
        ($b:expr) => {{
            binds.push($b);
            sql.placeholder(binds.len())
        }};
    }
    // What the index scan itself honours. Failures of one account have their own (partial)
    // index; across accounts the status is checked on the rows.
    let failed_index = f.failures_only() && f.account_id.is_some();
    let mut scan = vec!["1 = 1".to_string()];
    if let Some(a) = f.account_id {
        let a = bind!(Bind::Int(a));
        scan.push(match sql {
            Sql::Sqlite => format!("account_id = {a}"),
            // A range, not `=`: with `=` PostgreSQL drops the account from the order and may walk
            // the all-accounts index filtering by account (measured: through every newer row of
            // the other accounts, 15-25 ms at 10 M rows, unbounded for a quiet account).
            Sql::Postgres => format!("account_id BETWEEN {a} AND {a}"),
        });
    }
    if failed_index {
        scan.push("status = 'error'".into());
    }
    if let Some(s) = f.since_ms {
        scan.push(format!("created_at >= {}", bind!(Bind::Int(s))));
    }
    if let Some(u) = f.until_ms {
        scan.push(format!("created_at < {}", bind!(Bind::Int(u))));
    }
    if let Some(p) = &req.after {
        let at = bind!(Bind::Int(p.created_at));
        let uuid = bind!(Bind::Text(p.task_uuid.clone()));
        scan.push(format!("(created_at, task_uuid) < ({at}, {uuid})"));
    }
    let filtered = f.checks_rows() || (f.failures_only() && !failed_index);
    // Without row checks every scanned row is on the page: read one more than the page to know
    // whether another follows.
    let budget = if filtered { req.scan_rows.max(req.limit + 1) } else { req.limit + 1 };
    let budget_p = bind!(Bind::Int(budget as i64));
    let edge_binds = binds.len();
    // What is checked on the rows the scan yields.
    let mut rows = Vec::new();
    match f.status {
        Some(TaskStatus::Success) => rows.push("t.status = 'success'".to_string()),
        Some(TaskStatus::Processing) => rows.push("t.status = 'processing'".to_string()),
        _ if f.failures_only() && !failed_index => rows.push("t.status = 'error'".to_string()),
        _ => {}
    }
    if let Some(v) = &f.task_type {
        rows.push(format!("t.task_type = {}", bind!(Bind::Text(v.clone()))));
    }
    if let Some(v) = &f.model {
        rows.push(format!("t.model = {}", bind!(Bind::Text(v.clone()))));
    }
    if let Some(v) = f.dialect {
        rows.push(format!("t.dialect = {}", bind!(Bind::Text(v.as_str().into()))));
    }
    if let Some(v) = f.key_id {
        rows.push(format!("t.key_id = {}", bind!(Bind::Int(v))));
    }
    if let Some(v) = &f.error_code {
        let p = bind!(Bind::Text(v.clone()));
        rows.push(match sql {
            Sql::Sqlite => format!("json_extract(t.error, '$.code') = {p}"),
            Sql::Postgres => format!("(t.error::json ->> 'code') = {p}"),
        });
    }
    if let Some(v) = &f.text {
        let p = bind!(Bind::Text(v.to_ascii_lowercase()));
        rows.push(match sql {
            Sql::Sqlite => format!("instr(lower(t.request), {p}) > 0"),
            Sql::Postgres => format!("strpos(lower(t.request), {p}) > 0"),
        });
    }
    let index = match sql {
        Sql::Postgres => String::new(),
        Sql::Sqlite if failed_index => " INDEXED BY tasks_failed".into(),
        Sql::Sqlite if f.account_id.is_some() => " INDEXED BY tasks_history".into(),
        Sql::Sqlite => " INDEXED BY tasks_recent".into(),
    };
    let scan_where = scan.join(" AND ");
    let limit_p = bind!(Bind::Int(req.limit as i64 + 1));
    let row_where = if rows.is_empty() { String::new() } else { format!("WHERE {}", rows.join(" AND ")) };
    let cols: Vec<String> = task_columns.split(',').map(|c| format!("t.{}", c.trim())).collect();
    // Rows are joined by their physical address (SQLite's rowid, PostgreSQL's ctid): one lookup
    // per row instead of the key's index and then the row.
    let (keys, join) = match sql {
        Sql::Sqlite => ("rowid AS rid, account_id, created_at, task_uuid", "t.rowid = s.rid"),
        Sql::Postgres => ("ctid AS tid, account_id, created_at, task_uuid", "t.ctid = s.tid"),
    };
    // The index's own order, so that the outer query reads the scan in order and stops at a
    // full page instead of sorting all it read.
    let order = |p: &str| {
        if f.account_id.is_some() {
            format!("{p}account_id DESC, {p}created_at DESC, {p}task_uuid DESC")
        } else {
            format!("{p}created_at DESC, {p}task_uuid DESC")
        }
    };
    let page = format!(
        "SELECT {cols}, s.created_at AS pos_at, s.task_uuid AS pos_uuid FROM (
             SELECT {keys} FROM tasks{index} WHERE {scan_where}
             ORDER BY {inner} LIMIT {budget_p}
         ) s JOIN tasks t ON {join}
         {row_where} ORDER BY {outer} LIMIT {limit_p}",
        cols = cols.join(", "),
        inner = order(""),
        outer = order("s."),
    );
    let edge = filtered.then(|| {
        format!(
            "SELECT created_at, task_uuid FROM tasks{index} WHERE {scan_where}
             ORDER BY {inner} LIMIT 1 OFFSET {budget_p} - 1",
            inner = order(""),
        )
    });
    HistorySql { page, edge, binds, edge_binds }
}

/// The page from the rows read (each with its position) and, when rows were filtered, the last
/// position the scan's budget reached (if the budget ran out).
pub(crate) fn page_of(
    mut rows: Vec<(crate::TaskRecord, HistoryPosition)>,
    limit: u32,
    edge: Option<HistoryPosition>,
) -> HistoryPage {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = if more {
        rows.last().map(|(_, p)| p.clone())
    } else {
        // A short page: the history ends here unless the scan stopped at its budget.
        edge
    };
    HistoryPage { tasks: rows.into_iter().map(|(t, _)| t).collect(), next }
}

/// The attempts column's value with a task's end: `None` (the column is left as it is) when
/// there were none.
pub(crate) fn attempts_json(attempts: &[crate::ProviderAttempt]) -> Option<String> {
    (!attempts.is_empty()).then(|| serde_json::to_string(attempts).unwrap_or_default())
}
