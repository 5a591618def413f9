//! A small, scriptable HTTP/1.1 proxy in front of a real server, for testing client retries.
//!
//! Each request that reaches the proxy is counted and recorded (method, path, body) and then
//! handled by the next [`Action`] of the script (once the script is used up, requests are
//! forwarded). Actions can forward the request and relay the reply, forward it but drop the
//! connection instead of relaying the reply (the server has done the work; the client never
//! hears of it), answer with a programmed status and headers without forwarding, or hang.
//!
//! It speaks just enough HTTP/1.1 for a client sending `Content-Length` bodies (reqwest does):
//! chunked request bodies are refused with 501.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

/// What the proxy does with one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Forward to the upstream server and relay its reply.
    Forward,
    /// Forward to the upstream server, read its whole reply, then close the client's
    /// connection without sending anything.
    ForwardThenDrop,
    /// Answer without forwarding.
    Respond {
        /// HTTP status.
        status: u16,
        /// Extra headers, e.g. `("retry-after-ms", "50")`.
        headers: Vec<(String, String)>,
        /// The body (sent as `application/json`).
        body: String,
    },
    /// Close the connection at once without forwarding or answering.
    Drop,
    /// Never answer (the connection stays open until the client gives up).
    Hang,
}

impl Action {
    /// A Runware-envelope error reply with `status`, `code` and the given extra headers.
    pub fn error(status: u16, code: &str, headers: &[(&str, &str)]) -> Action {
        Action::Respond {
            status,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: serde_json::json!({"errors": [{
                "code": code,
                "message": format!("injected by the flaky proxy (HTTP {status})"),
            }]})
            .to_string(),
        }
    }
}

/// One request as the proxy saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Method, e.g. `POST`.
    pub method: String,
    /// Path, e.g. `/v1`.
    pub path: String,
    /// The request body, byte for byte.
    pub body: Vec<u8>,
}

struct Shared {
    upstream: String,
    script: Mutex<VecDeque<Action>>,
    default: Action,
    count: AtomicUsize,
    recorded: std::sync::Mutex<Vec<Recorded>>,
}

/// A running proxy. Dropping it stops accepting connections.
pub struct FlakyProxy {
    /// `http://127.0.0.1:PORT`: point clients here.
    pub base_url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FlakyProxy {
    /// Starts a proxy to `upstream_base_url` (`http://host:port`) that runs `script` on the
    /// first requests and forwards the rest.
    pub async fn start(upstream_base_url: &str, script: Vec<Action>) -> FlakyProxy {
        Self::start_with_default(upstream_base_url, script, Action::Forward).await
    }

    /// Like [`FlakyProxy::start`], with `default` for requests after the script.
    pub async fn start_with_default(
        upstream_base_url: &str,
        script: Vec<Action>,
        default: Action,
    ) -> FlakyProxy {
        let upstream = upstream_base_url.trim_start_matches("http://").trim_end_matches('/').to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let shared = Arc::new(Shared {
            upstream,
            script: Mutex::new(script.into()),
            default,
            count: AtomicUsize::new(0),
            recorded: std::sync::Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else { break };
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = serve_connection(sock, s).await;
                });
            }
        });
        FlakyProxy { base_url: format!("http://{addr}"), shared, task }
    }

    /// How many requests reached the proxy.
    pub fn request_count(&self) -> usize {
        self.shared.count.load(Ordering::SeqCst)
    }

    /// Every request seen, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.recorded.lock().expect("lock").clone()
    }
}

impl Drop for FlakyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A parsed request head and its body.
struct Request {
    method: String,
    path: String,
    /// Header lines without the request line, as sent.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Reads one request; `Ok(None)` when the client closed the connection between requests.
async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<Request>> {
    let head_end = loop {
        if let Some(end) = find_head_end(buf) {
            break end;
        }
        if buf.len() > 64 * 1024 {
            return Err(std::io::Error::other("request head too large"));
        }
        let mut chunk = [0u8; 8192];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return if buf.is_empty() { Ok(None) } else { Err(std::io::ErrorKind::UnexpectedEof.into()) };
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
        .collect();
    let header =
        |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    if header("transfer-encoding").is_some() {
        sock.write_all(b"HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await?;
        return Err(std::io::Error::other("chunked request bodies are not supported"));
    }
    let len: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while buf.len() < head_end + len {
        let mut chunk = [0u8; 8192];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..head_end + len].to_vec();
    buf.drain(..head_end + len);
    Ok(Some(Request { method, path, headers, body }))
}

/// Sends the request upstream on a fresh connection with `Connection: close` and returns the
/// complete raw reply (read to EOF).
async fn forward(upstream: &str, req: &Request) -> std::io::Result<Vec<u8>> {
    let mut up = TcpStream::connect(upstream).await?;
    let mut out = format!("{} {} HTTP/1.1\r\n", req.method, req.path);
    for (k, v) in &req.headers {
        if k.eq_ignore_ascii_case("connection") || k.eq_ignore_ascii_case("keep-alive") {
            continue;
        }
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("connection: close\r\n\r\n");
    up.write_all(out.as_bytes()).await?;
    up.write_all(&req.body).await?;
    let mut reply = Vec::new();
    up.read_to_end(&mut reply).await?;
    Ok(reply)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

async fn serve_connection(mut sock: TcpStream, s: Arc<Shared>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    while let Some(req) = read_request(&mut sock, &mut buf).await? {
        s.count.fetch_add(1, Ordering::SeqCst);
        s.recorded.lock().expect("lock").push(Recorded {
            method: req.method.clone(),
            path: req.path.clone(),
            body: req.body.clone(),
        });
        let action = s.script.lock().await.pop_front().unwrap_or_else(|| s.default.clone());
        match action {
            Action::Forward => {
                let reply = forward(&s.upstream, &req).await?;
                sock.write_all(&reply).await?;
                // The upstream reply says `connection: close`; honour it.
                sock.shutdown().await?;
                return Ok(());
            }
            Action::ForwardThenDrop => {
                let reply = forward(&s.upstream, &req).await?;
                if reply.is_empty() {
                    return Err(std::io::Error::other("the upstream server did not answer"));
                }
                // The server has processed the request; the client hears nothing.
                return Ok(());
            }
            Action::Respond { status, headers, body } => {
                let mut out = format!(
                    "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
                    reason(status),
                    body.len()
                );
                for (k, v) in headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                sock.write_all(out.as_bytes()).await?;
                sock.write_all(body.as_bytes()).await?;
            }
            Action::Drop => return Ok(()),
            Action::Hang => {
                // Hold the connection open until the client closes it.
                let mut sink = [0u8; 1024];
                loop {
                    match tokio::time::timeout(Duration::from_secs(600), sock.read(&mut sink)).await {
                        Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Ok(()),
                        Ok(Ok(_)) => {}
                    }
                }
            }
        }
    }
    Ok(())
}
