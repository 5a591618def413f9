//! The accept loop: every connection is counted, timed and shut down gracefully.
//!
//! axum's own `serve` has no connection limit and no header-read timeout, so a client sending one
//! header line every few seconds holds a socket forever, and a thousand of them exhaust the
//! process's file descriptors (`accept: Too many open files`) until even `/health` fails. Here:
//! - the open-file limit is raised to its hard limit at start, and `server.max_connections` is
//!   capped below it, so the limit here (not the kernel) decides when to refuse;
//! - a connection past the limit is answered `503` with `Retry-After` and closed at once, before
//!   anything is read from it (the body names no dialect, so it carries both shapes);
//! - hyper's header-read timer (`server.header_timeout_secs`) cuts a request whose line and
//!   headers do not arrive in time; hyper starts it whenever it waits for a request, so the same
//!   bound closes idle keep-alive connections;
//! - on shutdown no new connection is taken, each open one finishes its request in flight, and
//!   the loop returns once all are closed.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// File descriptors kept for everything but client connections (the store, output files,
/// asset fetches, provider calls, webhooks).
const RESERVED_FDS: u64 = 256;

/// Connections answered `503` at the same time at most; past it a refused connection is just
/// closed, so refusing cannot itself use up descriptors.
const MAX_SHEDDING: usize = 256;

/// How long a refused connection may take to accept the `503`.
const SHED_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// How the accept loop bounds connections.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// Open connections at most.
    pub max_connections: usize,
    /// Time a client has to send a request's line and headers (and an idle connection's life).
    pub header_timeout: Duration,
}

impl ConnectionLimits {
    /// The configured limits, with `max_connections` lowered to what the open-file limit allows
    /// after raising that limit as far as the system lets this process.
    pub fn from_config(server: &mediagate_engine::config::ServerConfig) -> Self {
        let nofile = raise_open_file_limit();
        let fit = nofile.map(|n| n.saturating_sub(RESERVED_FDS).max(1) as usize);
        let max_connections = match fit {
            Some(fit) if fit < server.max_connections => {
                tracing::warn!(
                    configured = server.max_connections,
                    allowed = fit,
                    open_file_limit = nofile,
                    "server.max_connections lowered to fit the open-file limit"
                );
                fit
            }
            _ => server.max_connections,
        };
        ConnectionLimits { max_connections, header_timeout: Duration::from_secs(server.header_timeout_secs) }
    }
}

/// Raises the soft open-file limit to the hard one; returns the soft limit now in force.
fn raise_open_file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(error = %e, "could not read or raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).ok().map(|(soft, _)| soft)
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open connections finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let shedding = Arc::new(Semaphore::new(MAX_SHEDDING));
    let refusal = Arc::new(refusal_response(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Small JSON replies must not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        match open.clone().try_acquire_owned() {
            Ok(slot) => {
                let (app, stop_rx, timeout) = (app.clone(), stop_rx.clone(), limits.header_timeout);
                tokio::spawn(connection(tcp, peer, ConnectionSlot(Arc::new(slot)), app, timeout, stop_rx));
            }
            Err(_) => match shedding.clone().try_acquire_owned() {
                Ok(slot) => {
                    let refusal = refusal.clone();
                    tokio::spawn(async move {
                        refuse(tcp, &refusal).await;
                        drop(slot);
                    });
                }
                Err(_) => drop(tcp),
            },
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection task holds a receiver; they are all gone once the last one ends.
    drop(stop_rx);
    stop_tx.closed().await;
    Ok(())
}

/// A connection's place under `server.max_connections`. Requests carry it as an extension so
/// that a WebSocket upgrade keeps it for the socket's life: hyper lets go of an upgraded
/// connection, and without this a WebSocket would not count.
#[derive(Clone)]
pub struct ConnectionSlot(#[allow(dead_code)] Arc<tokio::sync::OwnedSemaphorePermit>);

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    slot: ConnectionSlot,
    app: Router,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    // Handlers read the peer's address (invalid-key throttling) as axum's `ConnectInfo`.
    let service = app.map_request(move |req: http::Request<hyper::body::Incoming>| {
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(ConnectInfo(peer));
        req.extensions_mut().insert(slot.clone());
        req
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let conn = http.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service)).with_upgrades();
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::trace!(%peer, error = %e, "connection ended with an error");
            }
            return;
        }
        _ = stop.wait_for(|stopping| *stopping) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// Accept errors: a reset before accept is the client's business; anything else (out of file
/// descriptors, above all) is waited out briefly instead of spinning.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(e.kind(), ConnectionAborted | ConnectionReset | ConnectionRefused) {
        return;
    }
    tracing::error!(error = %e, "accept failed; pausing new connections for 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// The whole `503` a refused connection gets: status, `Retry-After`, and a body that both
/// dialects' clients read (`errors` for Runware, `error` for Runway).
fn refusal_response(limit: usize) -> Vec<u8> {
    let message = format!(
        "The server is at its limit of {limit} open connections (server.max_connections); retry in a second."
    );
    let body = serde_json::json!({
        "errors": [{ "code": "serviceUnavailable", "message": message }],
        "error": message,
        "code": "serviceUnavailable",
    })
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         retry-after-ms: 1000\r\nx-should-retry: true\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn refuse(mut tcp: TcpStream, response: &[u8]) {
    let _ = tokio::time::timeout(SHED_WRITE_TIMEOUT, async {
        tcp.write_all(response).await?;
        tcp.shutdown().await
    })
    .await;
}
