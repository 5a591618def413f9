//! A TCP relay in front of a server that a test can sever, black-hole or hold: the network
//! failures a WebSocket client must survive, without touching the server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

struct Shared {
    upstream: SocketAddr,
    accepted: AtomicUsize,
    /// While true, new connections are accepted but not relayed (the client's upgrade waits).
    hold: watch::Sender<bool>,
    /// Bumped to cut every live connection.
    sever: watch::Sender<u64>,
    /// The black-hole switch of every live connection.
    live: Mutex<Vec<Arc<AtomicBool>>>,
}

/// A running relay. Dropping it stops accepting connections (live ones are cut too).
pub struct Relay {
    /// `ws://127.0.0.1:PORT`: point WebSocket clients here.
    pub ws_url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Relays to `upstream_base_url` (`http://host:port`).
    pub async fn start(upstream_base_url: &str) -> Relay {
        let upstream: SocketAddr =
            upstream_base_url.trim_start_matches("http://").trim_end_matches('/').parse().expect("addr");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay addr");
        let shared = Arc::new(Shared {
            upstream,
            accepted: AtomicUsize::new(0),
            hold: watch::channel(false).0,
            sever: watch::channel(0).0,
            live: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                s.accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(relay(sock, s.clone()));
            }
        });
        Relay { ws_url: format!("ws://{addr}"), shared, task }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Closes every live connection on both sides (the server sees its socket close too).
    pub fn sever(&self) {
        self.shared.sever.send_modify(|n| *n += 1);
    }

    /// Every live connection stops carrying bytes in both directions but stays open: a
    /// half-open connection neither side hears about. New connections are relayed normally.
    pub fn black_hole(&self) {
        for flag in self.shared.live.lock().unwrap().iter() {
            flag.store(true, Ordering::SeqCst);
        }
    }

    /// While `yes`, new connections wait before being relayed.
    pub fn hold_new(&self, yes: bool) {
        self.shared.hold.send_replace(yes);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
        self.sever();
    }
}

async fn relay(mut client: TcpStream, s: Arc<Shared>) {
    let mut sever = s.sever.subscribe();
    let mut hold = s.hold.subscribe();
    tokio::select! {
        _ = hold.wait_for(|h| !*h) => {}
        _ = sever.changed() => return,
    }
    let Ok(mut up) = TcpStream::connect(s.upstream).await else { return };
    let hole = Arc::new(AtomicBool::new(false));
    s.live.lock().unwrap().push(hole.clone());
    let (mut a, mut b) = ([0u8; 16384], [0u8; 16384]);
    loop {
        tokio::select! {
            _ = sever.changed() => break,
            n = client.read(&mut a) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) if !hole.load(Ordering::SeqCst) => {
                    if up.write_all(&a[..n]).await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
            },
            n = up.read(&mut b) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) if !hole.load(Ordering::SeqCst) => {
                    if client.write_all(&b[..n]).await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
            },
        }
    }
    s.live.lock().unwrap().retain(|f| !Arc::ptr_eq(f, &hole));
}
