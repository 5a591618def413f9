//! A future that runs in its caller's task but finishes even when the caller goes away.
//!
//! A sync task used to run in a task of its own (`tokio::spawn`) so that a client hanging up
//! could never leave an admitted task half done. On a multi-threaded runtime that spawn often
//! landed on the other worker: the task started, and its result came back, each after a
//! cross-thread wake-up (about 30 µs apiece at the median on the development VM, against 8-10
//! µs on one thread). [`RunToEnd`] instead polls the work where it is awaited, and only when it
//! is dropped unfinished (the client disconnected, or the sync wait timed out) hands the rest to
//! a task of its own.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Polls its future in place; if dropped before the future is done, spawns the rest.
pub(crate) struct RunToEnd {
    work: Option<Pin<Box<dyn Future<Output = ()> + Send + 'static>>>,
}

impl RunToEnd {
    /// Wraps `work`, which must run to its end once started.
    pub(crate) fn new(work: impl Future<Output = ()> + Send + 'static) -> RunToEnd {
        RunToEnd { work: Some(Box::pin(work)) }
    }
}

impl Future for RunToEnd {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(work) = self.work.as_mut() else { return Poll::Ready(()) };
        match work.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.work = None;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for RunToEnd {
    fn drop(&mut self) {
        let Some(work) = self.work.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(work);
            }
            // Only when the runtime itself is going away; the store settles the task at the
            // next start (`fail_interrupted_tasks`).
            Err(_) => tracing::warn!("runtime gone: an unfinished task is left to the next start"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn finished_work_runs_in_place() {
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        RunToEnd::new(async move {
            tokio::task::yield_now().await;
            d.fetch_add(1, Ordering::SeqCst);
        })
        .await;
        assert_eq!(done.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn work_dropped_unfinished_still_finishes() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let started = Arc::new(AtomicUsize::new(0));
        let s = started.clone();
        let mut run = RunToEnd::new(async move {
            s.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(30)).await;
            let _ = tx.send("finished");
        });
        // Poll it until it waits, as a sync request would, then give up on it.
        assert!(tokio::time::timeout(Duration::from_millis(5), &mut run).await.is_err());
        assert_eq!(started.load(Ordering::SeqCst), 1);
        drop(run);
        assert_eq!(tokio::time::timeout(Duration::from_secs(5), rx).await.unwrap().unwrap(), "finished");
        // It ran on from where it was, not again from the start.
        assert_eq!(started.load(Ordering::SeqCst), 1);
    }
}
