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

/// Takes the lock on `conn`, with the session that holds it: `Ok(None)` when another session
/// holds it. The session is read here, while the lock is taken, so that the keeper knows its own
/// session even if the database stalls the moment it starts.
pub(crate) async fn try_take(mut conn: PgConnection) -> Result<Option<(PgConnection, Session)>, sqlx::Error> {
    let got: bool = sqlx::query_scalar(&format!("SELECT pg_try_advisory_lock({SERVER_LOCK_KEY})"))
        .fetch_one(&mut conn)
        .await?;
    if got {
        let session = session_of(&mut conn).await?;
        Ok(Some((conn, session)))
    } else {
        let _ = conn.close().await;
        Ok(None)
    }
}

/// A database session: its backend pid and start time (a pid alone may be reused).
type Session = (i32, String);

/// The session `conn` is.
async fn session_of(conn: &mut PgConnection) -> Result<Session, sqlx::Error> {
    sqlx::query_as("SELECT pid, backend_start::text FROM pg_stat_activity WHERE pid = pg_backend_pid()")
        .fetch_one(conn)
        .await
}

/// The sessions holding the server lock.
async fn holders(conn: &mut PgConnection) -> Result<Vec<Session>, sqlx::Error> {
    sqlx::query_as(&format!(
        "WITH k AS (SELECT {SERVER_LOCK_KEY} AS key)
         SELECT a.pid, a.backend_start::text FROM k, pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
            AND l.classid = ((k.key >> 32) & 4294967295)::oid AND l.objid = (k.key & 4294967295)::oid"
    ))
    .fetch_all(conn)
    .await
}

/// What taking the lock again on a new connection found.
enum Retake {
    /// Held, on this connection and session.
    Held(PgConnection, Session),
    /// Another session holds it: another server.
    Other,
}

/// Takes the lock again on a new connection. After a stall (the database paused, a network cut
/// that healed) this server's earlier session may still be alive and hold the lock, without
/// ever answering the keeper in time: that session, recognised by its pid and start time, is
/// ended and the lock taken once it lets go. Only a holder that is not `ours` means another
/// server. The caller bounds the time this takes.
async fn retake(connect: &PgConnectOptions, ours: Option<&Session>) -> Result<Retake, sqlx::Error> {
    let mut conn = PgConnection::connect_with(connect).await?;
    loop {
        let got: bool = sqlx::query_scalar(&format!("SELECT pg_try_advisory_lock({SERVER_LOCK_KEY})"))
            .fetch_one(&mut conn)
            .await?;
        if got {
            let session = session_of(&mut conn).await?;
            return Ok(Retake::Held(conn, session));
        }
        let held_by = holders(&mut conn).await?;
        if held_by.iter().any(|h| Some(h) != ours) {
            let _ = conn.close().await;
            return Ok(Retake::Other);
        }
        if let Some((pid, _)) = held_by.first() {
            tracing::warn!(
                pid,
                "this server's earlier PostgreSQL session still holds the one-server lock; ending it"
            );
            sqlx::query("SELECT pg_terminate_backend($1)").bind(pid).execute(&mut conn).await?;
        }
        // The ended session lets go of the lock as it exits: a moment later.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl ServerLock {
    /// Starts keeping the lock `conn` (session `session`) holds; `connect` opens a replacement
    /// connection.
    pub(crate) fn keep(
        (conn, session): (PgConnection, Session),
        connect: PgConnectOptions,
        check_every: Duration,
    ) -> ServerLock {
        let (state_tx, state) = watch::channel(ServerLockState::Held);
        let (stop, stop_rx) = oneshot::channel();
        let keeper = tokio::spawn(keeper(conn, session, connect, check_every, state_tx, stop_rx));
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
    session: Session,
    connect: PgConnectOptions,
    check_every: Duration,
    state: watch::Sender<ServerLockState>,
    mut stop: oneshot::Receiver<()>,
) {
    // A check that hangs (a network cut) counts as a broken connection.
    let patience = check_every.max(Duration::from_secs(2));
    // This server's own lock session, to tell it from another server's after a stall. (Read when
    // the lock was taken: asking here could hang on a database that stalls right now, with no
    // check running, and the stall would go unnoticed.)
    let mut ours = Some(session);
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
            let outcome = tokio::select! {
                _ = &mut stop => return,
                r = tokio::time::timeout(patience, retake(&connect, ours.as_ref())) => r,
            };
            match outcome {
                Ok(Ok(Retake::Held(c, session))) => {
                    conn = c;
                    ours = Some(session);
                    state.send_replace(ServerLockState::Held);
                    tracing::info!("took the one-server PostgreSQL lock again");
                    break;
                }
                Ok(Ok(Retake::Other)) => {
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
