//! Schema migrations, applied in order and recorded in `PRAGMA user_version`.

use rusqlite::Connection;

/// Each entry moves the schema from version `i` to `i + 1`. Append only: never edit a shipped
/// migration, add another.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE accounts (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL DEFAULT 'active',
    balance_micros  INTEGER NOT NULL DEFAULT 0 CHECK (balance_micros >= 0),
    created_at      INTEGER NOT NULL
);
CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts(id),
    digest       BLOB NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    scopes       TEXT NOT NULL DEFAULT '[]',
    status       TEXT NOT NULL DEFAULT 'active',
    created_at   INTEGER NOT NULL
);
CREATE TABLE ledger (
    id             INTEGER PRIMARY KEY,
    account_id     INTEGER NOT NULL REFERENCES accounts(id),
    amount_micros  INTEGER NOT NULL,
    kind           TEXT NOT NULL,
    task_uuid      TEXT,
    note           TEXT NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL
);
CREATE INDEX ledger_by_account ON ledger(account_id, id);
CREATE TABLE tasks (
    account_id    INTEGER NOT NULL REFERENCES accounts(id),
    task_uuid     TEXT NOT NULL,
    task_type     TEXT NOT NULL,
    model         TEXT,
    status        TEXT NOT NULL,
    request_hash  BLOB NOT NULL,
    request       TEXT NOT NULL,
    result        TEXT,
    error         TEXT,
    cost_micros   INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    PRIMARY KEY (account_id, task_uuid)
);
CREATE INDEX tasks_by_status ON tasks(status);
CREATE TABLE outputs (
    uuid          TEXT PRIMARY KEY,
    account_id    INTEGER NOT NULL REFERENCES accounts(id),
    task_uuid     TEXT,
    content_type  TEXT NOT NULL,
    extension     TEXT NOT NULL,
    size          INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);
CREATE INDEX outputs_by_expiry ON outputs(expires_at);
"#,
    r#"
-- Small outputs live in the row itself: no file to create, and atomic with the task's result.
ALTER TABLE outputs ADD COLUMN data BLOB;
"#,
    r#"
-- Async tasks keep their full request until they finish, so a restart can run them again.
ALTER TABLE tasks ADD COLUMN delivery TEXT NOT NULL DEFAULT 'sync';
ALTER TABLE tasks ADD COLUMN payload TEXT;
ALTER TABLE tasks ADD COLUMN webhook_url TEXT;
"#,
    r#"
-- Webhooks: a signing secret per account; one delivery per result, with every attempt.
ALTER TABLE accounts ADD COLUMN webhook_secret TEXT;
CREATE TABLE webhook_deliveries (
    webhook_id   TEXT PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts(id),
    task_uuid    TEXT NOT NULL,
    url          TEXT NOT NULL,
    payload      TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending',
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_by_task ON webhook_deliveries(account_id, task_uuid);
CREATE INDEX webhook_deliveries_by_status ON webhook_deliveries(status);
CREATE TABLE webhook_attempts (
    id           INTEGER PRIMARY KEY,
    webhook_id   TEXT NOT NULL REFERENCES webhook_deliveries(webhook_id),
    attempt      INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    status_code  INTEGER,
    error        TEXT,
    duration_ms  INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_by_webhook ON webhook_attempts(webhook_id, attempt);
"#,
    r#"
-- Runway's DELETE /v1/tasks/{id} hides a finished task; the row stays for the ledger and history.
ALTER TABLE tasks ADD COLUMN deleted_at INTEGER;
-- Uploads (outputs without a task) are kept `keep_secs` after their last use; NULL = fixed expiry.
ALTER TABLE outputs ADD COLUMN keep_secs INTEGER;
"#,
    r#"
-- Limits set per account ('' model = account-wide) or per account and model, as JSON.
CREATE TABLE account_limits (
    account_id  INTEGER NOT NULL REFERENCES accounts(id),
    model       TEXT NOT NULL DEFAULT '',
    settings    TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, model)
);
-- Spend per account and calendar month (UTC, 'YYYY-MM'): charges minus refunds, kept with every
-- ledger write so the monthly spend cap is one row read at admission.
CREATE TABLE account_spend (
    account_id    INTEGER NOT NULL REFERENCES accounts(id),
    month         TEXT NOT NULL,
    spent_micros  INTEGER NOT NULL,
    PRIMARY KEY (account_id, month)
);
INSERT INTO account_spend (account_id, month, spent_micros)
    SELECT account_id, strftime('%Y-%m', created_at / 1000, 'unixepoch'), -SUM(amount_micros)
    FROM ledger WHERE kind IN ('charge', 'refund') GROUP BY 1, 2;
-- Admin keys: digests only, like API keys.
CREATE TABLE admin_keys (
    id           INTEGER PRIMARY KEY,
    digest       BLOB NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL DEFAULT 'active',
    created_at   INTEGER NOT NULL
);
"#,
    r#"
-- Only running tasks are ever looked up by status (restart recovery), so only they are indexed:
-- a finished task leaves the index instead of adding an entry nobody reads, one page fewer
-- written per task's end, and the index stays as small as the work in flight.
DROP INDEX tasks_by_status;
CREATE INDEX tasks_processing ON tasks(created_at) WHERE status = 'processing';
"#,
    r#"
-- Uploads are counted per account for the storage quota.
CREATE INDEX outputs_uploads_by_account ON outputs(account_id, expires_at) WHERE task_uuid IS NULL;
"#,
    r#"
-- Where a task's time went (queue, provider, admission write), as JSON, recorded with its end.
ALTER TABLE tasks ADD COLUMN timings TEXT;
"#,
    r#"
-- The dialect a task came in by (runware | runway), which renders its results and webhooks.
-- Earlier rows are told apart by their task type's name: Runway's endpoints are snake case.
ALTER TABLE tasks ADD COLUMN dialect TEXT NOT NULL DEFAULT 'runware';
UPDATE tasks SET dialect = 'runway' WHERE instr(task_type, '_') > 0;
"#,
    r#"
-- History (issue 20): which key sent a task, each provider attempt (JSON, with its end), and
-- the indexes a page of history reads, newest first: an account's tasks, its failures (only
-- failed tasks enter it), every account's. Each is appended to at its right edge.
ALTER TABLE tasks ADD COLUMN key_id INTEGER;
ALTER TABLE tasks ADD COLUMN attempts TEXT;
CREATE INDEX tasks_history ON tasks(account_id, created_at, task_uuid);
CREATE INDEX tasks_failed ON tasks(account_id, created_at, task_uuid) WHERE status = 'error';
CREATE INDEX tasks_recent ON tasks(created_at, task_uuid);
"#,
];

/// The newest schema version (`PRAGMA user_version` once every migration is applied).
pub const LATEST: i64 = MIGRATIONS.len() as i64;

/// Brings the database to the newest schema. Each step runs in its own transaction.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now as usize > i {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn restart_recovery_reads_running_tasks_through_the_partial_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        // The queries of `fail_interrupted_tasks` and `resumable_tasks`.
        for sql in [
            "SELECT account_id, task_uuid, cost_micros FROM tasks WHERE status = 'processing' AND payload IS NULL",
            "SELECT t.account_id, a.name, t.task_uuid FROM tasks t JOIN accounts a ON a.id = t.account_id
             WHERE t.status = 'processing' AND t.payload IS NOT NULL ORDER BY t.created_at",
        ] {
            let p = plan(&conn, sql);
            assert!(p.contains("USING INDEX tasks_processing"), "{sql}: {p}");
        }
        // Migrating again changes nothing.
        migrate(&mut conn).unwrap();
    }
}
