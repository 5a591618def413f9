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
    // rounds (250 ms apart) and the passes that follow, a few tens of MiB on a debug build.
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
