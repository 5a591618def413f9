//! Local services that some tests need (PostgreSQL now; Redis later), found the same way
//! everywhere: a `MEDIAGATE_TEST_*_URL` variable or the standard local port. Without the
//! service a test says clearly that it was skipped and returns, except under `CI=true`, where
//! a missing service is a failure.

use sqlx::Connection;
use std::time::Duration;

/// Where PostgreSQL tests connect when `MEDIAGATE_TEST_POSTGRES_URL` is unset.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Whether this run is CI's (`CI=true`), where a missing service fails the test.
pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| v.eq_ignore_ascii_case("true")).unwrap_or(false)
}

/// Reports a service a test cannot reach: panics under `CI=true`, else prints that `test` was
/// skipped and why (the caller then returns).
pub fn unavailable(test: &str, service: &str, variable: &str, why: &str) {
    let msg = format!(
        "{service} is not reachable ({why}); set {variable} to a reachable {service}, or start one on its standard local port"
    );
    if in_ci() {
        panic!("{test}: {msg} (CI=true: a missing service fails the test instead of skipping it)");
    }
    // Straight to the process's stderr, not through `eprintln!`, which the test harness
    // captures (and hides) for a test that passes.
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {msg}");
}

/// A schema of its own in the test PostgreSQL database, dropped (with everything in it) when
/// this value is dropped, so that tests run in parallel without seeing each other's rows.
pub struct PgSchema {
    /// The database URL without the schema.
    pub base_url: String,
    /// The schema's name (`mg_` and a random suffix).
    pub schema: String,
}

impl PgSchema {
    /// The URL that selects this schema (`options[search_path]`), as `store.url` takes it. Its
    /// sessions are named after the schema (`application_name`), so the clean-up can end any
    /// that are still open.
    pub fn url(&self) -> String {
        let sep = if self.base_url.contains('?') { '&' } else { '?' };
        format!("{}{sep}options[search_path]={s}&application_name={s}", self.base_url, s = self.schema)
    }
}

impl PgSchema {
    /// Breaks the connection of whoever holds this schema's mediagate server lock (ends its
    /// session), as a database restart would. With `steal`, then takes the lock, as a second
    /// server starting at that moment would, and returns the connection holding it.
    pub async fn break_server_lock(&self, steal: bool) -> Result<Option<sqlx::PgConnection>, sqlx::Error> {
        use mediagate_store::postgres::SERVER_LOCK_KEY;
        let mut c = sqlx::PgConnection::connect(&self.url()).await?;
        let key: i64 = sqlx::query_scalar(&format!("SELECT {SERVER_LOCK_KEY}")).fetch_one(&mut c).await?;
        let ended: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted
               AND classid = ((($1::bigint) >> 32) & 4294967295)::oid AND objid = (($1::bigint) & 4294967295)::oid
               AND objsubid = 1",
        )
        .bind(key)
        .fetch_all(&mut c)
        .await?;
        assert!(!ended.is_empty(), "nobody held the server lock of {}", self.schema);
        if !steal {
            c.close().await?;
            return Ok(None);
        }
        // The ended session lets go of the lock as it exits: a moment later.
        for _ in 0..1000 {
            let got: bool =
                sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(key).fetch_one(&mut c).await?;
            if got {
                return Ok(Some(c));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("the server lock of {} was not released by its ended session", self.schema);
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // Drop may run inside a runtime's worker: do the async cleanup on a thread of its own.
        let (url, schema) = (self.base_url.clone(), self.schema.clone());
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async move {
                let mut c = sqlx::PgConnection::connect(&url).await.ok()?;
                // A session of the test may still be open (a pool's connection whose rollback
                // waits for a runtime that this drop is blocking): end them, or the drop waits
                // for their locks.
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                )
                .bind(&schema)
                .execute(&mut c)
                .await
                .ok()?;
                sqlx::query("SET lock_timeout = '10s'").execute(&mut c).await.ok()?;
                if let Err(e) =
                    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&mut c).await
                {
                    eprintln!("could not drop the test schema {schema}: {e}");
                }
                c.close().await.ok()
            })
        });
        let _ = done.join();
    }
}

/// A fresh schema in the test PostgreSQL database (`MEDIAGATE_TEST_POSTGRES_URL`, default
/// [`DEFAULT_POSTGRES_URL`]), or `None` after reporting through [`unavailable`] (which panics
/// under `CI=true`).
pub async fn postgres(test: &str) -> Option<PgSchema> {
    let base_url =
        std::env::var("MEDIAGATE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into());
    let schema = format!("mg_{}", uuid::Uuid::new_v4().simple());
    let attempt = async {
        let mut c = sqlx::PgConnection::connect(&base_url).await?;
        sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&mut c).await?;
        c.close().await
    };
    match tokio::time::timeout(Duration::from_secs(10), attempt).await {
        Ok(Ok(())) => Some(PgSchema { base_url, schema }),
        Ok(Err(e)) => {
            unavailable(test, "PostgreSQL", "MEDIAGATE_TEST_POSTGRES_URL", &e.to_string());
            None
        }
        Err(_) => {
            unavailable(test, "PostgreSQL", "MEDIAGATE_TEST_POSTGRES_URL", "no answer within 10 s");
            None
        }
    }
}
