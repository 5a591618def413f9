//! The PostgreSQL store on the local server (`MEDIAGATE_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`), each test in a schema of its own: the
//! backend-generic behaviour tests (`common::generic`) and what is PostgreSQL's own
//! (migrations, the one-server lock). Without PostgreSQL they are skipped, saying so; under
//! `CI=true` they fail instead.

mod common;

use common::{Harness, task};
use mediagate_store::postgres::{PostgresOptions, PostgresStore, SCHEMA_VERSION, SERVER_LOCK_MESSAGE};
use mediagate_store::*;
use std::time::Duration;

backend_tests!(Harness::postgres);

#[tokio::test]
async fn migrations_are_recorded_and_idempotent_on_reopen_and_concurrent_start() {
    let Some(schema) = mediagate_testkit::services::postgres("migrations_are_idempotent").await else {
        return;
    };
    // Two processes starting at once on an empty schema: the advisory lock lets one migrate
    // while the other waits and then finds the work done.
    let url = schema.url();
    let (a, b) = tokio::join!(
        PostgresStore::connect(&url, PostgresOptions::default()),
        PostgresStore::connect(&url, PostgresOptions::default())
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.schema_version().await.unwrap(), SCHEMA_VERSION);
    let acct = a.create_account("kept", 42).await.unwrap();
    assert_eq!(b.account_by_name("kept").await.unwrap(), Some(acct.clone()));
    a.close().await;
    b.close().await;
    let again = PostgresStore::connect(&schema.url(), PostgresOptions::default()).await.unwrap();
    assert_eq!(again.schema_version().await.unwrap(), SCHEMA_VERSION);
    assert_eq!(again.account_by_name("kept").await.unwrap(), Some(acct));
    let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&schema.url()).await.unwrap();
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM mediagate_schema_version ORDER BY version")
            .fetch_all(&mut c)
            .await
            .unwrap();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>(), "each migration recorded once");
}

#[tokio::test]
async fn one_server_per_database_the_lock_refuses_a_second_and_is_released_on_drop() {
    let Some(schema) = mediagate_testkit::services::postgres("one_server_per_database").await else { return };
    let server = PostgresOptions { single_server: true, ..PostgresOptions::default() };
    let first = PostgresStore::connect(&schema.url(), server.clone()).await.unwrap();
    assert!(first.holds_server_lock());
    match PostgresStore::connect(&schema.url(), server.clone()).await {
        Err(StoreError::Conflict(m)) => assert_eq!(m, SERVER_LOCK_MESSAGE),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a second server store was opened on the same database"),
    }
    // CLI tools open without the lock while the server runs.
    let cli = PostgresStore::connect(&schema.url(), PostgresOptions::default()).await.unwrap();
    assert!(!cli.holds_server_lock());
    cli.create_account("from-cli", 0).await.unwrap();
    assert!(first.account_by_name("from-cli").await.unwrap().is_some());
    // Another schema is another deployment: its own lock.
    if let Some(other) = mediagate_testkit::services::postgres("one_server_per_database (other)").await {
        let o = PostgresStore::connect(&other.url(), server.clone()).await.unwrap();
        assert!(o.holds_server_lock());
    }
    // Dropping the store closes its lock connection; the server notices the closed session.
    drop(first);
    let started = std::time::Instant::now();
    let second = loop {
        match PostgresStore::connect(&schema.url(), server.clone()).await {
            Ok(s) => break s,
            Err(StoreError::Conflict(_)) if started.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("the lock was not released after the first store dropped: {e}"),
        }
    };
    assert!(second.holds_server_lock());
    second.close().await;
    // close() releases it at once.
    let third = PostgresStore::connect(&schema.url(), server).await.unwrap();
    assert!(third.holds_server_lock());
}

/// Waits until the store's lock state is `want` (or fails after 10 s).
async fn lock_state_becomes(store: &PostgresStore, want: ServerLockState) {
    let mut state = store.server_lock().expect("a server store watches its lock");
    let reached = tokio::time::timeout(Duration::from_secs(10), state.wait_for(|s| *s == want))
        .await
        .map(|r| r.is_ok());
    assert_eq!(reached, Ok(true), "the lock never became {want:?}: {:?}", *state.borrow());
}

#[tokio::test]
async fn a_broken_lock_connection_is_replaced_and_the_lock_taken_again() {
    let Some(schema) = mediagate_testkit::services::postgres("lock_taken_again").await else { return };
    let server = PostgresOptions {
        single_server: true,
        lock_check_every: Duration::from_millis(100),
        ..PostgresOptions::default()
    };
    let store = PostgresStore::connect(&schema.url(), server.clone()).await.unwrap();
    assert_eq!(*store.server_lock().unwrap().borrow(), ServerLockState::Held);
    // As after a database restart: the session holding the lock is gone.
    schema.break_server_lock(false).await.unwrap();
    lock_state_becomes(&store, ServerLockState::Held).await;
    // It is really held again: a second server is still refused, and the store still works.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(store.holds_server_lock());
    match PostgresStore::connect(&schema.url(), server).await {
        Err(StoreError::Conflict(m)) => assert_eq!(m, SERVER_LOCK_MESSAGE),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a second server store was opened after the lock was taken again"),
    }
    store.create_account("still-works", 0).await.unwrap();
    // CLI stores make no claim.
    let cli = PostgresStore::connect(&schema.url(), PostgresOptions::default()).await.unwrap();
    assert!(cli.server_lock().is_none());
}

#[tokio::test]
async fn a_lock_another_server_took_meanwhile_is_lost_for_good() {
    let Some(schema) = mediagate_testkit::services::postgres("lock_lost").await else { return };
    let server = PostgresOptions {
        single_server: true,
        lock_check_every: Duration::from_millis(300),
        ..PostgresOptions::default()
    };
    let store = PostgresStore::connect(&schema.url(), server).await.unwrap();
    // Another server takes the lock while this one's connection is down.
    let _other = schema.break_server_lock(true).await.unwrap().expect("the lock, taken");
    lock_state_becomes(&store, ServerLockState::Lost).await;
    assert!(!store.holds_server_lock());
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(*store.server_lock().unwrap().borrow(), ServerLockState::Lost, "lost stays lost");
}

#[tokio::test]
async fn an_unreachable_or_bad_url_is_a_clear_error_without_the_password() {
    let e = PostgresStore::connect("postgres://u:s3cret@127.0.0.1:1/db", PostgresOptions::default())
        .await
        .err()
        .expect("nothing listens on port 1");
    assert!(!e.to_string().contains("s3cret"), "{e}");
    let e = PostgresStore::connect("mysql://u:s3cret@h/db", PostgresOptions::default()).await.err().unwrap();
    assert!(matches!(e, StoreError::Invalid(_)), "{e}");
    assert!(!e.to_string().contains("s3cret"), "{e}");
    assert_eq!(
        mediagate_store::postgres::redact_url("postgres://u:s3cret@h:5432/db?x=1"),
        "postgres://u:***@h:5432/db?x=1"
    );
    assert_eq!(mediagate_store::postgres::redact_url("postgres://u@h/db"), "postgres://u@h/db");
}

#[tokio::test]
async fn a_deleted_task_keeps_its_uuid() {
    let Some(h) = Harness::postgres("a_deleted_task_keeps_its_uuid").await else { return };
    let a = h.store.create_account("a", 100).await.unwrap();
    let t = task(a.id, 10);
    h.store.admit_task(t.clone()).await.unwrap();
    h.store
        .finish_task(Finish {
            account_id: a.id,
            task_uuid: t.task_uuid,
            outcome: common::failure("x"),
            webhooks: vec![],
            timings: None,
            attempts: vec![],
        })
        .await
        .unwrap();
    assert!(h.store.delete_task(a.id, t.task_uuid).await.unwrap());
    assert!(
        matches!(h.store.admit_task(t).await.unwrap(), Admission::Deleted),
        "a deleted task's UUID is not admitted again"
    );
    assert_eq!(h.store.account_by_name("a").await.unwrap().unwrap().balance_micros, 100, "and not charged");
}

/// Issue 16 point 14: the database stalls (paused, as by `SIGSTOP`) longer than the keeper's
/// patience, then resumes. The keeper gave up on its lock connection and opened a new one while
/// its own old session, alive again, still held the lock, and took that for another server:
/// the only server stopped. Now it recognises its own session, ends it and holds the lock again;
/// a real second server is still refused. The stall is a frozen TCP proxy in front of the
/// shared PostgreSQL, which is never paused itself.
#[tokio::test]
async fn hardening_a_database_stall_does_not_make_the_server_give_up_its_own_lock() {
    use sqlx::ConnectOptions;
    use std::str::FromStr;
    let Some(schema) = mediagate_testkit::services::postgres("lock_stall").await else { return };
    let direct = sqlx::postgres::PgConnectOptions::from_str(&schema.url()).unwrap();
    let target =
        tokio::net::lookup_host((direct.get_host(), direct.get_port())).await.unwrap().next().unwrap();
    let proxy = mediagate_testkit::tcp_proxy::FreezableTcpProxy::start(target).await;
    let via_proxy = direct.clone().host(&proxy.addr.ip().to_string()).port(proxy.addr.port());
    let server = PostgresOptions {
        single_server: true,
        lock_check_every: Duration::from_millis(100),
        ..PostgresOptions::default()
    };
    let store =
        PostgresStore::connect_with(via_proxy.disable_statement_logging(), server.clone()).await.unwrap();
    assert!(store.holds_server_lock());
    let mut state = store.server_lock().unwrap();
    // A stall past the keeper's patience (2 s): it declares the connection broken and retries.
    proxy.freeze();
    let noticed = tokio::time::timeout(
        Duration::from_secs(15),
        state.wait_for(|s| *s == ServerLockState::Reconnecting),
    )
    .await
    .map(|r| r.is_ok());
    assert_eq!(noticed, Ok(true), "the keeper never noticed the stall (it is {:?})", *state.borrow());
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.thaw();
    lock_state_becomes(&store, ServerLockState::Held).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        *store.server_lock().unwrap().borrow(),
        ServerLockState::Held,
        "the server gave up its own lock"
    );
    store.create_account("after-the-stall", 0).await.unwrap();
    // Still the one server: another is refused.
    match PostgresStore::connect(&schema.url(), server).await {
        Err(StoreError::Conflict(m)) => assert_eq!(m, SERVER_LOCK_MESSAGE),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a second server store was opened after the stall"),
    }
}

#[tokio::test]
async fn hardening_a_stalled_database_is_a_quick_unavailable_not_a_long_hang() {
    use sqlx::ConnectOptions;
    use std::str::FromStr;
    let Some(schema) = mediagate_testkit::services::postgres("pool_stall").await else { return };
    let direct = sqlx::postgres::PgConnectOptions::from_str(&schema.url()).unwrap();
    let target =
        tokio::net::lookup_host((direct.get_host(), direct.get_port())).await.unwrap().next().unwrap();
    let proxy = mediagate_testkit::tcp_proxy::FreezableTcpProxy::start(target).await;
    let via_proxy = direct.clone().host(&proxy.addr.ip().to_string()).port(proxy.addr.port());
    let options = PostgresOptions {
        max_connections: 1,
        acquire_timeout: Duration::from_millis(500),
        ..PostgresOptions::default()
    };
    let store = PostgresStore::connect_with(via_proxy.disable_statement_logging(), options).await.unwrap();
    store.create_account("before", 0).await.unwrap();
    proxy.freeze();
    // Every caller is told quickly that the database is unavailable (a retryable error) instead
    // of waiting on the pool for 30 s: the pool checks a connection before lending it, and that
    // check is bounded by the acquire timeout too.
    let started = std::time::Instant::now();
    let (a, b) = tokio::join!(store.account_by_name("before"), store.create_account("during", 0));
    assert!(matches!(a, Err(StoreError::Unavailable(_))), "{a:?}");
    assert!(matches!(b, Err(StoreError::Unavailable(_))), "{b:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    proxy.thaw();
    // Once the database answers again, so does the store.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match store.create_account("after", 0).await {
            Ok(_) => break,
            Err(e) => assert!(std::time::Instant::now() < deadline, "the store did not recover: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(store.account_by_name("before").await.unwrap().is_some());
}
