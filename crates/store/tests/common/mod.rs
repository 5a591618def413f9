//! The store behaviour tests, written once over `Arc<dyn Store>` and run on each backend
//! (`tests/sqlite.rs`, `tests/postgres.rs`), with what differs between them in [`Harness`].

#![allow(dead_code)]

pub mod generic;

use mediagate_store::postgres::{PostgresOptions, PostgresStore};
use mediagate_store::sqlite::{SqliteOptions, SqliteStore};
use mediagate_store::*;
use mediagate_testkit::services::PgSchema;
use std::path::PathBuf;
use std::sync::Arc;
use uuid::Uuid;

/// A store under test and what it takes to flush and reopen it.
pub struct Harness {
    /// The store.
    pub store: Arc<dyn Store>,
    kind: Kind,
}

enum Kind {
    Sqlite { db: Arc<SqliteStore>, path: PathBuf, _dir: tempfile::TempDir },
    Postgres { schema: PgSchema },
}

impl Harness {
    /// A SQLite store on a fresh file.
    pub fn sqlite() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let db = Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
        Harness { store: db.clone(), kind: Kind::Sqlite { db, path, _dir: dir } }
    }

    /// A PostgreSQL store in a fresh schema, or `None` when PostgreSQL is unreachable (after
    /// saying so; under `CI=true` that panics instead).
    pub async fn postgres(test: &str) -> Option<Harness> {
        let schema = mediagate_testkit::services::postgres(test).await?;
        let db = PostgresStore::connect(&schema.url(), PostgresOptions::default()).await.unwrap();
        Some(Harness { store: Arc::new(db), kind: Kind::Postgres { schema } })
    }

    /// The PostgreSQL schema, on that backend.
    pub fn pg_schema(&self) -> Option<&PgSchema> {
        match &self.kind {
            Kind::Postgres { schema } => Some(schema),
            Kind::Sqlite { .. } => None,
        }
    }

    /// Makes every acknowledged write visible to readers (SQLite answers sync admissions
    /// before their commit; PostgreSQL commits before it answers).
    pub async fn flush(&self) {
        if let Kind::Sqlite { db, .. } = &self.kind {
            db.flush().await.unwrap();
        }
    }

    /// Closes the store and opens the same database again, as a restart does.
    pub async fn reopen(self) -> Harness {
        let Harness { store, kind } = self;
        drop(store);
        match kind {
            Kind::Sqlite { db, path, _dir } => {
                Arc::try_unwrap(db).ok().expect("the only user of the store").close();
                let db = Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
                Harness { store: db.clone(), kind: Kind::Sqlite { db, path, _dir } }
            }
            Kind::Postgres { schema } => {
                let db = PostgresStore::connect(&schema.url(), PostgresOptions::default()).await.unwrap();
                Harness { store: Arc::new(db), kind: Kind::Postgres { schema } }
            }
        }
    }
}

/// A key with a recognisable digest.
pub fn key(n: u8) -> NewKey {
    NewKey { digest: [n; 32], prefix: format!("key_{n:08}"), description: String::new(), scopes: vec![] }
}

/// A sync task of `account_id` at `price`.
pub fn task(account_id: i64, price: i64) -> NewTask {
    NewTask {
        account_id,
        task_uuid: Uuid::new_v4(),
        task_type: "imageInference".into(),
        dialect: mediagate_core::Dialect::Runware,
        model: None,
        request: "{}".into(),
        request_hash: [7; 32],
        price_micros: price,
        resumable_payload: None,
        webhook_url: None,
        spend_cap_micros: 0,
        key_id: None,
    }
}

/// A failure outcome.
pub fn failure(code: &str) -> FinishOutcome {
    FinishOutcome::Failure {
        error: StoredError { code: code.into(), message: "x".into(), parameter: vec![] },
    }
}

/// Runs every generic test (`common::generic::NAME(harness)`) on a backend: `$open` is a
/// function from the test's name to a future of `Option<Harness>` (`None`: skipped).
#[macro_export]
macro_rules! backend_tests {
    ($open:expr) => {
        $crate::backend_tests!(@each $open;
            concurrent_admissions_never_overdraw,
            concurrent_duplicates_of_one_task_uuid_are_charged_once,
            replays_failures_refunds_and_restart_settlement,
            keys_bootstrap_and_names,
            concurrent_admissions_never_pass_the_monthly_spend_cap_and_refunds_give_it_back,
            partial_results_success_and_outputs_inline_and_as_files,
            uploads_expiry_touch_and_sweep,
            uploads_stay_within_the_account_quota_also_when_concurrent,
            webhook_secrets_deliveries_and_attempts,
            limits_overrides_and_recent_counts,
            admin_keys_lifecycle,
            usage_by_day_nets_charges_and_refunds,
            hardening_a_deleted_task_uuid_stays_taken,
            hardening_a_task_ended_early_pays_for_its_delivered_results,
            hardening_a_reservation_raised_once_the_size_is_known,
            history_pages_filters_and_isolation,
        );
    };
    (@each $open:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let Some(h) = ($open)(stringify!($name)).await else { return };
                common::generic::$name(h).await;
            }
        )*
    };
}
