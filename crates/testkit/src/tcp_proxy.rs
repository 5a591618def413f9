//! A TCP proxy that can be frozen: while frozen it relays nothing in either direction (and
//! new connections wait), as if the server behind it were paused (`SIGSTOP`), without touching
//! that server; thawed, everything held back flows on. For database stall tests.

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy to one target. Dropping it stops accepting (open connections live on).
pub struct FreezableTcpProxy {
    /// The address to connect to instead of the target.
    pub addr: SocketAddr,
    frozen: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl FreezableTcpProxy {
    /// Starts relaying connections on a loopback port to `target`.
    pub async fn start(target: SocketAddr) -> FreezableTcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (frozen, _) = watch::channel(false);
        let f = frozen.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut thawed = f.subscribe();
                tokio::spawn(async move {
                    let _ = thawed.wait_for(|frozen| !frozen).await;
                    let Ok(server) = TcpStream::connect(target).await else { return };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::spawn(pump(cr, sw, thawed.clone()));
                    tokio::spawn(pump(sr, cw, thawed));
                });
            }
        });
        FreezableTcpProxy { addr, frozen, accept }
    }

    /// Stops relaying until [`thaw`](Self::thaw).
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Relays again, including what arrived meanwhile.
    pub fn thaw(&self) {
        self.frozen.send_replace(false);
    }
}

impl Drop for FreezableTcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies one direction, holding each chunk (and the end of the stream) while frozen.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut thawed: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await.unwrap_or(0);
        if thawed.wait_for(|frozen| !frozen).await.is_err() {
            return;
        }
        if n == 0 || to.write_all(&buf[..n]).await.is_err() {
            let _ = to.shutdown().await;
            return;
        }
    }
}
