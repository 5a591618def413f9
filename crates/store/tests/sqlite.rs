//! The SQLite store on a real file: the backend-generic behaviour tests (`common::generic`:
//! atomic admission, refunds, key rules, reopening, ...) and what is SQLite's own (the WAL).

mod common;

use common::{Harness, task};
use mediagate_store::sqlite::{SqliteOptions, SqliteStore};
use mediagate_store::*;
use std::sync::Arc;
use uuid::Uuid;

backend_tests!(|_name: &'static str| async { Some(Harness::sqlite()) });

/// Under a steady stream of writes a passive checkpoint never catches up, so SQLite never
/// restarts the log on its own: the WAL grew without bound (1.8 GB in ten seconds of the
/// benchmark). The checkpointer and the writer now restart it past `wal_restart_frames`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_wal_stays_bounded_under_a_steady_stream_of_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let options = SqliteOptions { wal_restart_frames: 256, ..SqliteOptions::default() };
    let store = Arc::new(SqliteStore::open(&path, options).unwrap());
    let a = store.create_account("a", i64::MAX / 2).await.unwrap();
    let wal = dir.path().join("db-wal");
    let (mut written, mut largest) = (0u64, 0u64);
    let started = std::time::Instant::now();
    // Eight writers that never pause, each task carrying a 16 KiB output, until 256 MiB went in.
    // Without restarts the log holds all of it; with them, what arrives between two checkpoint
    // rounds and the passes that follow, a few tens of MiB on a debug build.
    while written < 256 << 20 && started.elapsed() < std::time::Duration::from_secs(60) {
        let writes: Vec<_> = (0..8)
            .map(|_| {
                let s = store.clone();
                tokio::spawn(async move {
                    let t = task(a.id, 1);
                    s.admit_task(t.clone()).await.unwrap();
                    let output = NewOutput {
                        uuid: Uuid::now_v7(),
                        content_type: "image/png".into(),
                        extension: "png".into(),
                        size: 16_384,
                        expires_at: i64::MAX,
                        inline_data: Some(vec![7; 16_384]),
                    };
                    s.finish_task(Finish {
                        account_id: a.id,
                        task_uuid: t.task_uuid,
                        outcome: FinishOutcome::Success {
                            results: vec![],
                            outputs: vec![output],
                            cost_micros: 1,
                        },
                        webhooks: vec![],
                        timings: None,
                        attempts: vec![],
                    })
                    .await
                    .unwrap();
                })
            })
            .collect();
        for w in writes {
            w.await.unwrap();
        }
        written += 8 * 16_384;
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    assert!(written >= 256 << 20, "wrote only {written} bytes in a minute");
    assert!(largest < 96 << 20, "the WAL reached {largest} bytes after {written} bytes of writes");
}

/// A commit reaches the database file itself (not only the WAL) within a few checkpoint
/// intervals: the copy of the main file alone, opened without its WAL, holds the new account.
#[tokio::test]
async fn commits_are_checkpointed_into_the_database_file_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let options = SqliteOptions {
        checkpoint_interval: std::time::Duration::from_millis(10),
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&path, options).unwrap();
    // Let the thread back off first: the first write after an idle spell must still be copied.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    store.create_account("checkpointed", 5).await.unwrap();
    let copy = dir.path().join("copy.db");
    let started = std::time::Instant::now();
    let found = loop {
        std::fs::copy(&path, &copy).unwrap();
        let conn = rusqlite::Connection::open(&copy).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM accounts WHERE name = 'checkpointed'", [], |r| r.get(0))
            .unwrap();
        drop(conn);
        let _ = std::fs::remove_file(dir.path().join("copy.db-wal"));
        if n == 1 || started.elapsed() > std::time::Duration::from_secs(10) {
            break n == 1;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(found, "the account never reached the database file");
    store.close();
}

/// An idle store does not wake its checkpoint thread every interval: after rounds that find
/// nothing new the pause doubles up to a second (10 ms without it: ~150 rounds in 1.5 s).
#[tokio::test]
async fn an_idle_store_backs_off_its_checkpoint_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        checkpoint_interval: std::time::Duration::from_millis(10),
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(dir.path().join("db"), options).unwrap();
    store.create_account("a", 5).await.unwrap();
    let before = store.checkpoint_rounds();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let idle = store.checkpoint_rounds() - before;
    // 10, 20, 40, ... 640, 1000 ms: about 8 rounds; 25 leaves room for a slow machine.
    assert!((1..=25).contains(&idle), "{idle} checkpoint rounds in 1.5 s idle");
    // Writes bring the short pause back (after at most one backed-off pause of a second).
    let busy_from = store.checkpoint_rounds();
    let until = std::time::Instant::now() + std::time::Duration::from_millis(2500);
    let mut n = 0;
    while std::time::Instant::now() < until {
        store.create_account(&format!("b{n}"), 5).await.unwrap();
        n += 1;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let busy = store.checkpoint_rounds() - busy_from;
    assert!(busy > 40, "{busy} checkpoint rounds in 2.5 s of writes");
    store.close();
}
