//! The single writer: one connection commits every write, in batches when the store is busy.
//!
//! SQLite allows one writer at a time, so funnelling writes through one connection costs no
//! concurrency, and batching many jobs into one transaction ("group commit") turns thousands of
//! small commits per second into a few hundred. Each job runs inside its own savepoint, so one
//! job's failure rolls back only that job; replies are sent only after the batch commits, so no
//! caller is told "done" about a write that could still be lost to a crash.
//!
//! A dedicated thread owns the batching. But handing a lone write to that thread and back costs
//! two thread wake-ups, which on the development VM took about 50 µs each at the median and
//! milliseconds in their tail: more than the write itself (about 40 µs to run and 40 µs to
//! commit). So when the store is idle, a write runs at once on the caller's thread, as a batch
//! of one, and commits before it returns ("inline"). Under load, writes queue for the thread and
//! are group-committed as before: a write that finds the connection busy or a job queued marks
//! the store contended, and for [`INLINE_COOLDOWN`] after the last sign of contention every
//! write queues. Batches of one cost about twice the store CPU per task of the thread's groups,
//! and would hold the async runtime's workers; the cooldown keeps them to an idle store. An
//! inline write never overtakes a queued one: it runs only while no queued job is unanswered.

use crate::StoreError;
use parking_lot::{Mutex, MutexGuard};
use rusqlite::Connection;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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

/// How long after the last sign of contention (a write that had to queue, a group of more than
/// one) every write still queues for the thread.
pub const INLINE_COOLDOWN: std::time::Duration = std::time::Duration::from_millis(100);

/// What the writer thread and inline writers share.
struct Shared {
    /// The write connection: held by the thread for a whole batch, or by one inline write.
    conn: Mutex<Connection>,
    /// Jobs handed to the thread and not yet answered after their commit. Inline writes run only
    /// while it is zero, so they never overtake a queued job.
    queued: AtomicUsize,
    /// Set by the checkpointer: the thread checkpoints between two batches, and until it has,
    /// writes queue for it.
    checkpoint: Arc<AtomicBool>,
    /// When contention was last seen, in microseconds since `epoch` (0: never).
    contended_at: AtomicU64,
    epoch: std::time::Instant,
    inline_batches: AtomicU64,
    thread_batches: AtomicU64,
    thread_writes: AtomicU64,
}

impl Shared {
    fn now_us(&self) -> u64 {
        // Never 0, which means "never contended".
        self.epoch.elapsed().as_micros() as u64 + 1
    }

    fn mark_contended(&self) {
        self.contended_at.store(self.now_us(), Ordering::Relaxed);
    }

    fn contended_recently(&self) -> bool {
        let at = self.contended_at.load(Ordering::Relaxed);
        at != 0 && self.now_us().saturating_sub(at) < INLINE_COOLDOWN.as_micros() as u64
    }
}

/// How many transactions each path has committed (for tests and benchmarks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriterStats {
    /// Batches of one run on the caller's thread.
    pub inline_batches: u64,
    /// Batches run by the writer thread.
    pub thread_batches: u64,
    /// Writes those batches held (their mean size is this over `thread_batches`).
    pub thread_writes: u64,
}

/// Handle to the writer. Dropping every handle stops the thread after it drains.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Box<dyn Job>>,
    shared: Arc<Shared>,
}

/// Counts a job as queued until the thread has answered it, or until the send is abandoned.
struct QueuedGuard<'a>(&'a Shared);

impl Drop for QueuedGuard<'_> {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::AcqRel);
    }
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
        let shared = Arc::new(Shared {
            conn: Mutex::new(conn),
            queued: AtomicUsize::new(0),
            checkpoint,
            contended_at: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            inline_batches: AtomicU64::new(0),
            thread_batches: AtomicU64::new(0),
            thread_writes: AtomicU64::new(0),
        });
        let for_thread = shared.clone();
        let handle = std::thread::Builder::new()
            .name("mediagate-store-writer".into())
            .spawn(move || run(for_thread, rx))?;
        Ok((Writer { tx, shared }, handle))
    }

    /// Runs `f` and returns its result once it has committed: at once on this thread when the
    /// writer is idle, else in the thread's next batch.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.inline_or_queue(f, false).await
    }

    /// Runs `f` in the thread's next batch, never on this thread: for bulk work (many rows)
    /// that should not hold up the caller's async runtime.
    pub async fn write_queued<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.queue(f, false).await
    }

    /// Runs `f` and returns its result as soon as it has run, which in a batch is before the
    /// batch commits (inline, it has committed). Only for a decision whose writes nobody relies
    /// on until a later write through this same writer has committed: jobs run and commit in
    /// order (the later write cannot run inline while this one's batch is unanswered), so that
    /// later write commits in the same batch or after it, and if this batch failed, that later
    /// write runs on a database without this one's changes and can tell.
    pub async fn decide<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.inline_or_queue(f, true).await
    }

    /// A batch of one on this thread when the writer is idle, else the thread's next batch
    /// (`early`: answered before that batch commits).
    async fn inline_or_queue<T, F>(&self, f: F, early: bool) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if let Some(conn) = self.idle_connection() {
            return self.run_inline(&conn, f);
        }
        self.queue(f, early).await
    }

    /// Transactions committed so far by each path.
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            inline_batches: self.shared.inline_batches.load(Ordering::Relaxed),
            thread_batches: self.shared.thread_batches.load(Ordering::Relaxed),
            thread_writes: self.shared.thread_writes.load(Ordering::Relaxed),
        }
    }

    /// The connection, when the store is idle: nothing queued or recently contended, no
    /// checkpoint asked for, no batch running.
    fn idle_connection(&self) -> Option<MutexGuard<'_, Connection>> {
        let shared = &*self.shared;
        if shared.checkpoint.load(Ordering::Relaxed) || shared.contended_recently() {
            return None;
        }
        if shared.queued.load(Ordering::Acquire) != 0 {
            shared.mark_contended();
            return None;
        }
        let conn = shared.conn.try_lock();
        if conn.is_none() {
            shared.mark_contended();
        }
        conn
    }

    /// A batch of one on the caller's thread.
    fn run_inline<T>(
        &self,
        conn: &Connection,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        begin(conn)?;
        let result = in_savepoint(conn, f);
        let committed = commit(conn);
        self.shared.inline_batches.fetch_add(1, Ordering::Relaxed);
        committed.and(result)
    }

    async fn queue<T, F>(&self, f: F, early: bool) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = Box::new(Pending { work: Some(f), result: None, tx: Some(tx), early });
        self.shared.queued.fetch_add(1, Ordering::AcqRel);
        let guard = QueuedGuard(&self.shared);
        self.tx.send(job).await.map_err(|_| StoreError::Backend("the store is closed".into()))?;
        // Sent: the thread now owns the count and takes it back once it has answered the job.
        std::mem::forget(guard);
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

/// Opens a batch's transaction. IMMEDIATE takes the write lock now (waiting up to busy_timeout
/// for another process, e.g. the CLI), so no statement inside the batch can fail on a lock
/// upgrade.
fn begin(conn: &Connection) -> Result<(), StoreError> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    Ok(())
}

/// Commits the open batch, rolling it back when the commit fails.
fn commit(conn: &Connection) -> Result<(), StoreError> {
    let c = conn.prepare_cached("COMMIT").and_then(|mut c| c.execute([])).map(drop).map_err(StoreError::from);
    if c.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    c
}

fn drain_into(rx: &mut mpsc::Receiver<Box<dyn Job>>, batch: &mut Vec<Box<dyn Job>>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

fn run(shared: Arc<Shared>, mut rx: mpsc::Receiver<Box<dyn Job>>) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    let mut busy = false;
    while let Some(first) = rx.blocking_recv() {
        // Held for the whole batch, linger included: writers arriving meanwhile queue and join.
        let conn = shared.conn.lock();
        if shared.checkpoint.swap(false, Ordering::Relaxed) {
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
        if busy {
            shared.mark_contended();
        }
        let committed = begin(&conn).and_then(|()| {
            for job in batch.iter_mut() {
                job.run(&conn);
            }
            commit(&conn)
        });
        shared.thread_batches.fetch_add(1, Ordering::Relaxed);
        shared.thread_writes.fetch_add(batch.len() as u64, Ordering::Relaxed);
        // The batch is over: whoever is answered may write inline next, after this commit.
        drop(conn);
        shared.queued.fetch_sub(batch.len(), Ordering::AcqRel);
        for job in batch.drain(..) {
            job.reply(committed.clone());
        }
    }
    tracing::debug!("store writer drained and stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn writer(dir: &tempfile::TempDir, queue: usize) -> (Writer, Connection) {
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(())).unwrap();
        conn.execute_batch("CREATE TABLE t (v TEXT NOT NULL)").unwrap();
        let (w, _) = Writer::start(conn, queue, Arc::new(AtomicBool::new(false))).unwrap();
        (w, Connection::open(&path).unwrap())
    }

    fn insert(v: &'static str) -> impl FnOnce(&Connection) -> Result<(), StoreError> + Send + 'static {
        move |c| {
            c.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
            Ok(())
        }
    }

    fn count(c: &Connection, v: &str) -> i64 {
        c.query_row("SELECT COUNT(*) FROM t WHERE v = ?1", [v], |r| r.get(0)).unwrap()
    }

    /// Holds the connection on a blocking thread for `hold`, as a long inline write would.
    fn hold(w: &Writer, hold: Duration) -> std::thread::JoinHandle<()> {
        let shared = w.shared.clone();
        let (taken_tx, taken_rx) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || {
            let _conn = shared.conn.lock();
            taken_tx.send(()).unwrap();
            std::thread::sleep(hold);
        });
        taken_rx.recv().unwrap();
        h
    }

    async fn until_queued(w: &Writer, n: usize) {
        while w.shared.queued.load(Ordering::Acquire) < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_write_commits_on_the_callers_thread() {
        let dir = tempfile::tempdir().unwrap();
        let (w, reader) = writer(&dir, 16);
        for _ in 0..3 {
            w.write(insert("a")).await.unwrap();
            // Committed when answered: another connection sees it.
        }
        assert_eq!(count(&reader, "a"), 3);
        assert_eq!(w.decide(|c| Ok(count(c, "a"))).await.unwrap(), 3);
        assert_eq!(w.stats(), WriterStats { inline_batches: 4, thread_batches: 0, thread_writes: 0 });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_inline_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let (w, reader) = writer(&dir, 16);
        let failed = w
            .write(|c| {
                c.execute("INSERT INTO t (v) VALUES ('x')", [])?;
                Err::<(), _>(StoreError::Conflict("no".into()))
            })
            .await;
        assert!(matches!(failed, Err(StoreError::Conflict(_))), "{failed:?}");
        w.write(insert("y")).await.unwrap();
        assert_eq!((count(&reader, "x"), count(&reader, "y")), (0, 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_arriving_during_a_batch_queue_and_keep_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let (w, reader) = writer(&dir, 16);
        let holder = hold(&w, Duration::from_millis(150));
        // The connection is busy: A queues for the thread.
        let a = tokio::spawn({
            let w = w.clone();
            async move { w.write(insert("a")).await }
        });
        until_queued(&w, 1).await;
        // B comes after A. It must not run inline before A even if the connection frees up
        // first: it queues behind A and sees A's row.
        let b = w.write(|c| Ok(count(c, "a"))).await.unwrap();
        a.await.unwrap().unwrap();
        holder.join().unwrap();
        assert_eq!(b, 1);
        assert_eq!(count(&reader, "a"), 1);
        let s = w.stats();
        assert_eq!(s.inline_batches, 0);
        assert!(s.thread_batches >= 1, "{s:?}");
        // Contention was seen: for a while every write still queues, so a burst keeps its
        // group commits; once the store has been quiet the next lone write is inline again.
        let queued_before = w.stats().thread_batches;
        w.write(insert("c")).await.unwrap();
        assert_eq!(w.stats().thread_batches, queued_before + 1);
        tokio::time::sleep(INLINE_COOLDOWN).await;
        w.write(insert("c")).await.unwrap();
        assert_eq!(w.stats().inline_batches, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_write_runs_inline_while_a_queued_job_is_unanswered() {
        let dir = tempfile::tempdir().unwrap();
        let (w, reader) = writer(&dir, 16);
        // As between a job's send and its batch: the connection is free, but a job is out.
        w.shared.queued.fetch_add(1, Ordering::AcqRel);
        w.write(insert("a")).await.unwrap();
        assert_eq!(w.stats(), WriterStats { inline_batches: 0, thread_batches: 1, thread_writes: 1 });
        w.shared.queued.fetch_sub(1, Ordering::AcqRel);
        // (That write also marked the store contended; forget it, as a quiet spell would.)
        w.shared.contended_at.store(0, Ordering::Relaxed);
        w.write(insert("a")).await.unwrap();
        assert_eq!(w.stats(), WriterStats { inline_batches: 1, thread_batches: 1, thread_writes: 1 });
        assert_eq!(count(&reader, "a"), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_send_gives_its_count_back() {
        let dir = tempfile::tempdir().unwrap();
        // A queue of one: with the connection held, the thread takes one job and blocks on the
        // connection, the next fills the queue, and a third waits to be sent.
        let (w, reader) = writer(&dir, 1);
        let holder = hold(&w, Duration::from_millis(300));
        let queued: Vec<_> = (0..2)
            .map(|_| {
                let w = w.clone();
                tokio::spawn(async move { w.write(insert("q")).await })
            })
            .collect();
        until_queued(&w, 2).await;
        let abandoned = tokio::time::timeout(Duration::from_millis(50), w.write(insert("never"))).await;
        assert!(abandoned.is_err(), "the third write should still be waiting for room");
        holder.join().unwrap();
        for q in queued {
            q.await.unwrap().unwrap();
        }
        assert_eq!(w.shared.queued.load(Ordering::Acquire), 0, "the abandoned write's count leaked");
        assert_eq!((count(&reader, "q"), count(&reader, "never")), (2, 0));
        let before = w.stats().inline_batches;
        tokio::time::sleep(INLINE_COOLDOWN).await;
        w.write(insert("after")).await.unwrap();
        assert_eq!(w.stats().inline_batches, before + 1, "a leaked count would force every write to queue");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_requested_checkpoint_sends_writes_to_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let (w, _reader) = writer(&dir, 16);
        w.shared.checkpoint.store(true, Ordering::Relaxed);
        w.write(insert("a")).await.unwrap();
        assert!(
            !w.shared.checkpoint.load(Ordering::Relaxed),
            "the thread checkpoints and clears the request"
        );
        assert_eq!(w.stats(), WriterStats { inline_batches: 0, thread_batches: 1, thread_writes: 1 });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bulk_writes_always_use_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let (w, reader) = writer(&dir, 16);
        w.write_queued(insert("bulk")).await.unwrap();
        assert_eq!(count(&reader, "bulk"), 1);
        assert_eq!(w.stats(), WriterStats { inline_batches: 0, thread_batches: 1, thread_writes: 1 });
    }
}
