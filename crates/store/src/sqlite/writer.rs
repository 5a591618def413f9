//! The single writer: one thread owns the write connection and commits queued jobs in batches.
//!
//! SQLite allows one writer at a time, so funnelling writes through one connection costs no
//! concurrency, and batching many jobs into one transaction ("group commit") turns thousands of
//! small commits per second into a few hundred. Each job runs inside its own savepoint, so one
//! job's failure rolls back only that job; replies are sent only after the batch commits, so no
//! caller is told "done" about a write that could still be lost to a crash.

use crate::StoreError;
use rusqlite::Connection;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{mpsc, oneshot};

/// A queued write: run inside the batch's transaction, then told whether the batch committed.
trait Job: Send {
    fn run(&mut self, conn: &Connection);
    fn reply(self: Box<Self>, commit: Result<(), StoreError>);
}

struct Pending<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    tx: Option<oneshot::Sender<Result<T, StoreError>>>,
    /// Answer as soon as the work has run, before the batch commits (see [`Writer::decide`]).
    early: bool,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) {
        if let Some(work) = self.work.take() {
            let result = in_savepoint(conn, work);
            match (self.early, self.tx.take()) {
                (true, Some(tx)) => {
                    let _ = tx.send(result);
                }
                (_, tx) => {
                    self.tx = tx;
                    self.result = Some(result);
                }
            }
        }
    }

    fn reply(self: Box<Self>, commit: Result<(), StoreError>) {
        let Some(tx) = self.tx else { return };
        let outcome = match commit {
            Err(e) => Err(e),
            Ok(()) => self.result.unwrap_or_else(|| Err(StoreError::Backend("the write did not run".into()))),
        };
        let _ = tx.send(outcome);
    }
}

/// Most jobs committed in one transaction; bounds a batch's latency.
const MAX_BATCH: usize = 512;

/// How long a batch waits for company when the writer is busy.
const LINGER: std::time::Duration = std::time::Duration::from_micros(300);

/// Handle to the writer thread. Dropping every handle stops the thread after it drains.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer thread over `conn`.
    /// When `checkpoint` is set (by the checkpointer), the writer checkpoints between two batches
    /// and clears it, so the WAL can start over.
    pub fn start(
        conn: Connection,
        queue: usize,
        checkpoint: Arc<AtomicBool>,
    ) -> std::io::Result<(Writer, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>(queue);
        let handle = std::thread::Builder::new()
            .name("mediagate-store-writer".into())
            .spawn(move || run(conn, rx, checkpoint))?;
        Ok((Writer { tx }, handle))
    }

    /// Runs `f` in the next batch and returns its result once the batch has committed.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.queue(f, false).await
    }

    /// Runs `f` in the next batch and returns its result as soon as it has run, before the batch
    /// commits. Only for a decision whose writes nobody relies on until a later write through
    /// this same writer has committed: jobs run and commit in order, so that later write commits
    /// in the same batch or after it, and if this batch failed, that later write runs on a
    /// database without this one's changes and can tell.
    pub async fn decide<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.queue(f, true).await
    }

    async fn queue<T, F>(&self, f: F, early: bool) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = Box::new(Pending { work: Some(f), result: None, tx: Some(tx), early });
        self.tx.send(job).await.map_err(|_| StoreError::Backend("the store is closed".into()))?;
        rx.await.map_err(|_| StoreError::Backend("the store writer stopped".into()))?
    }
}

fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // Cached statements: a savepoint per job is on every write's path, and re-parsing the SQL
    // each time showed in profiles.
    conn.prepare_cached("SAVEPOINT job")?.execute([])?;
    match f(conn) {
        Ok(v) => {
            conn.prepare_cached("RELEASE job")?.execute([])?;
            Ok(v)
        }
        Err(e) => {
            // Undo only this job; the batch's other jobs stay.
            let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
            Err(e)
        }
    }
}

fn drain_into(rx: &mut mpsc::Receiver<Box<dyn Job>>, batch: &mut Vec<Box<dyn Job>>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

fn run(conn: Connection, mut rx: mpsc::Receiver<Box<dyn Job>>, checkpoint: Arc<AtomicBool>) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    let mut busy = false;
    while let Some(first) = rx.blocking_recv() {
        if checkpoint.swap(false, Ordering::Relaxed) {
            // No transaction is open here, so this checkpoint can reach the end of the log (bar
            // a reader still on an older snapshot) and the batch below restarts the WAL.
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "WAL checkpoint on the writer failed");
            }
        }
        batch.push(first);
        drain_into(&mut rx, &mut batch);
        if busy && batch.len() < MAX_BATCH {
            // Under load, wait a moment for more jobs: every commit rewrites the pages all tasks
            // share (the account row, the tails of the tables and indexes), so a batch of two
            // wrote several times the bytes per task of a batch of twenty. An idle server (the
            // last batch held one job) commits at once, so a lone request waits for nothing.
            std::thread::sleep(LINGER);
            drain_into(&mut rx, &mut batch);
        }
        busy = batch.len() > 1;
        // IMMEDIATE takes the write lock now (waiting up to busy_timeout for another process,
        // e.g. the CLI), so no statement inside the batch can fail on a lock upgrade.
        let commit = match conn.prepare_cached("BEGIN IMMEDIATE").and_then(|mut b| b.execute([])) {
            Err(e) => Err(StoreError::from(e)),
            Ok(_) => {
                for job in batch.iter_mut() {
                    job.run(&conn);
                }
                let c = conn
                    .prepare_cached("COMMIT")
                    .and_then(|mut c| c.execute([]))
                    .map(drop)
                    .map_err(StoreError::from);
                if c.is_err() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                c
            }
        };
        for job in batch.drain(..) {
            job.reply(commit.clone());
        }
    }
    tracing::debug!("store writer drained and stopped");
}
