//! The one-server-per-database lock, and the task that keeps it.
//!
//! A session-level advisory lock lives exactly as long as its connection. If that connection
//! breaks (the database restarts, a network cut, an administrator's `pg_terminate_backend`),
//! the lock is gone without a word, and a second server could start and run its start-up
//! recovery on tasks this one is still running. So a keeper checks the connection every
//! `check_every` and, when it has broken, takes the lock again on a new one. If another server
//! took it in between, the claim is lost for good: the state becomes [`ServerLockState::Lost`]
//! and `serve` shuts down rather than share the database.

use super::SERVER_LOCK_KEY;
use crate::ServerLockState;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection, Executor};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// What the log says when another server took the lock while this one's connection was down.
pub const SERVER_LOCK_TAKEN_MESSAGE: &str = "another mediagate server took this PostgreSQL \
     database's one-server lock while this server's connection to it was broken; stopping, so that \
     two servers do not run tasks on one database";

/// The held lock: its state for watchers, and the keeper task that owns the connection.
pub(crate) struct ServerLock {
    state: watch::Receiver<ServerLockState>,
    stop: Option<oneshot::Sender<()>>,
    keeper: Option<tokio::task::JoinHandle<()>>,
}

/// Takes the lock on `conn`: `Ok(None)` when another session holds it.
pub(crate) async fn try_take(mut conn: PgConnection) -> Result<Option<PgConnection>, sqlx::Error> {
    let got: bool = sqlx::query_scalar(&format!("SELECT pg_try_advisory_lock({SERVER_LOCK_KEY})"))
        .fetch_one(&mut conn)
        .await?;
    if got {
        Ok(Some(conn))
    } else {
        let _ = conn.close().await;
        Ok(None)
    }
}

impl ServerLock {
    /// Starts keeping the lock `conn` holds; `connect` opens a replacement connection.
    pub(crate) fn keep(conn: PgConnection, connect: PgConnectOptions, check_every: Duration) -> ServerLock {
        let (state_tx, state) = watch::channel(ServerLockState::Held);
        let (stop, stop_rx) = oneshot::channel();
        let keeper = tokio::spawn(keeper(conn, connect, check_every, state_tx, stop_rx));
        ServerLock { state, stop: Some(stop), keeper: Some(keeper) }
    }

    /// The lock's state as it changes.
    pub(crate) fn state(&self) -> watch::Receiver<ServerLockState> {
        self.state.clone()
    }

    /// Releases the lock (closing its connection) and waits until it is released.
    pub(crate) async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.await;
        }
    }
}

impl Drop for ServerLock {
    fn drop(&mut self) {
        // Aborting drops the connection, which ends the session and with it the lock.
        if let Some(keeper) = self.keeper.take() {
            keeper.abort();
        }
    }
}

async fn keeper(
    mut conn: PgConnection,
    connect: PgConnectOptions,
    check_every: Duration,
    state: watch::Sender<ServerLockState>,
    mut stop: oneshot::Receiver<()>,
) {
    // A check that hangs (a network cut) counts as a broken connection.
    let patience = check_every.max(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = &mut stop => {
                let _ = conn.close().await;
                return;
            }
            _ = tokio::time::sleep(check_every) => {}
        }
        if let Ok(Ok(_)) = tokio::time::timeout(patience, conn.execute("SELECT 1")).await {
            continue;
        }
        state.send_replace(ServerLockState::Reconnecting);
        tracing::warn!("the connection holding the one-server PostgreSQL lock broke; taking the lock again");
        loop {
            let attempt = async { try_take(PgConnection::connect_with(&connect).await?).await };
            let outcome = tokio::select! {
                _ = &mut stop => return,
                r = tokio::time::timeout(patience, attempt) => r,
            };
            match outcome {
                Ok(Ok(Some(c))) => {
                    conn = c;
                    state.send_replace(ServerLockState::Held);
                    tracing::info!("took the one-server PostgreSQL lock again");
                    break;
                }
                Ok(Ok(None)) => {
                    state.send_replace(ServerLockState::Lost);
                    tracing::error!("{SERVER_LOCK_TAKEN_MESSAGE}");
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot reach PostgreSQL to take the one-server lock again; retrying")
                }
                Err(_) => tracing::warn!("PostgreSQL did not answer in time; retrying the one-server lock"),
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(check_every) => {}
            }
        }
    }
}
