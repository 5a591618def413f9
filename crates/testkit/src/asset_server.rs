//! A loopback HTTPS asset server whose behaviour each test programs.
//!
//! It serves on `127.0.0.1` (or another loopback address) under a host name the test maps to it
//! through the intake's `resolve` override, with a certificate from a CA generated at run time
//! ([`AssetServer::ca_file`] is the PEM to pass as `extra_ca_certs`). HTTP/1.1 is written by hand
//! so a route can misbehave in every way the intake must survive: any status, any headers,
//! HEAD refusal, redirects, short bodies, wrong or missing `Content-Length`, chunked bodies,
//! drip-fed bodies, slow headers, garbage instead of HTTP; at the connection level, a stalled TLS
//! handshake. It counts the body bytes it actually wrote so a test can prove an oversize asset
//! was refused before any body byte was served.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

/// Which certificate the server presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertMode {
    /// Issued by the test CA for the server's host name.
    Valid,
    /// Self-signed (not issued by the test CA).
    SelfSigned,
    /// Issued by the test CA, but for another host name.
    WrongHost,
    /// Issued by the test CA for the right name, expired in 2001.
    Expired,
}

/// How the `Content-Length` header is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Length {
    /// The body's real length.
    #[default]
    Auto,
    /// No `Content-Length` (the body is delimited by closing the connection).
    Omit,
    /// This value, whatever the body is.
    Declared(u64),
}

/// The programmed behaviour of one path.
#[derive(Debug, Clone)]
pub struct Route {
    /// Status for GET (and HEAD unless `head_status` is set). Default 200.
    pub status: u16,
    /// Status for HEAD only, e.g. 405 to refuse HEAD.
    pub head_status: Option<u16>,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// Extra headers, sent to HEAD and GET.
    pub headers: Vec<(String, String)>,
    /// Headers sent only to HEAD, replacing `content_type`/`length` there (HEAD/GET disagreement).
    pub head_override: Option<(Option<String>, Length)>,
    /// The body.
    pub body: Arc<Vec<u8>>,
    /// How `Content-Length` is sent.
    pub length: Length,
    /// Send the body with chunked transfer encoding.
    pub chunked: bool,
    /// Send only this many body bytes, then close (short body).
    pub truncate_at: Option<usize>,
    /// Send the body in pieces of this many bytes with this pause between them.
    pub drip: Option<(usize, Duration)>,
    /// Wait this long before sending the response head.
    pub header_delay: Option<Duration>,
    /// Write these bytes instead of any HTTP response, then close.
    pub raw_response: Option<Vec<u8>>,
    /// The first N requests get this status instead (shared by clones of the route).
    pub fail_first: Option<(Arc<AtomicU32>, u16)>,
}

impl Route {
    /// 200 with this type and body, and an accurate `Content-Length`.
    pub fn ok(content_type: &str, body: Vec<u8>) -> Route {
        Route {
            status: 200,
            head_status: None,
            content_type: Some(content_type.to_string()),
            headers: Vec::new(),
            head_override: None,
            body: Arc::new(body),
            length: Length::Auto,
            chunked: false,
            truncate_at: None,
            drip: None,
            header_delay: None,
            raw_response: None,
            fail_first: None,
        }
    }

    /// Answers the first `n` requests with `status` (e.g. to exercise a client's retries).
    pub fn fail_first(mut self, n: u32, status: u16) -> Route {
        self.fail_first = Some((Arc::new(AtomicU32::new(n)), status));
        self
    }

    /// A status with an empty text body.
    pub fn status_only(status: u16) -> Route {
        let mut r = Route::ok("text/plain", Vec::new());
        r.status = status;
        r
    }

    /// A redirect to `location` with this 3xx status.
    pub fn redirect(status: u16, location: &str) -> Route {
        Route::status_only(status).header("Location", location)
    }

    /// Garbage bytes instead of an HTTP response.
    pub fn garbage(bytes: &[u8]) -> Route {
        let mut r = Route::status_only(200);
        r.raw_response = Some(bytes.to_vec());
        r
    }

    /// Sets the status (GET and HEAD).
    pub fn with_status(mut self, s: u16) -> Route {
        self.status = s;
        self
    }

    /// Answers HEAD with this status instead (e.g. 405).
    pub fn head_status(mut self, s: u16) -> Route {
        self.head_status = Some(s);
        self
    }

    /// Adds a header.
    pub fn header(mut self, k: &str, v: &str) -> Route {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    /// Sets or removes `Content-Type`.
    pub fn content_type(mut self, t: Option<&str>) -> Route {
        self.content_type = t.map(str::to_string);
        self
    }

    /// Sets how `Content-Length` is sent.
    pub fn length(mut self, l: Length) -> Route {
        self.length = l;
        self
    }

    /// Sends HEAD a different `Content-Type` / `Content-Length` than GET.
    pub fn head_headers(mut self, content_type: Option<&str>, length: Length) -> Route {
        self.head_override = Some((content_type.map(str::to_string), length));
        self
    }

    /// Uses chunked transfer encoding for GET.
    pub fn chunked(mut self) -> Route {
        self.chunked = true;
        self
    }

    /// Sends only `n` body bytes, then closes.
    pub fn truncate_at(mut self, n: usize) -> Route {
        self.truncate_at = Some(n);
        self
    }

    /// Drip-feeds the body: `piece` bytes every `every`.
    pub fn drip(mut self, piece: usize, every: Duration) -> Route {
        self.drip = Some((piece.max(1), every));
        self
    }

    /// Waits before sending the response head.
    pub fn header_delay(mut self, d: Duration) -> Route {
        self.header_delay = Some(d);
        self
    }
}

/// One request the server saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    /// `HEAD`, `GET`...
    pub method: String,
    /// The request target.
    pub path: String,
    /// Header lines, lowercased names.
    pub headers: Vec<(String, String)>,
    /// The request body (read when the request declares a `Content-Length`).
    pub body: Vec<u8>,
}

impl SeenRequest {
    /// The first value of a header (name in lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    routes: Mutex<HashMap<String, Route>>,
    seen: Mutex<Vec<SeenRequest>>,
    body_bytes: AtomicU64,
    body_bytes_by_path: Mutex<HashMap<String, u64>>,
    connections: AtomicU64,
    handshakes: AtomicU64,
    stall_tls: AtomicBool,
}

/// A running asset server; stops when dropped.
pub struct AssetServer {
    addr: SocketAddr,
    host: String,
    state: Arc<State>,
    ca_pem: String,
    ca_path: PathBuf,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AssetServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Builds an [`AssetServer`].
pub struct AssetServerBuilder {
    ip: IpAddr,
    port: u16,
    host: String,
    cert: CertMode,
}

impl AssetServerBuilder {
    /// The loopback address to bind (default 127.0.0.1).
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ip = ip;
        self
    }

    /// The port to bind (default 0: any free port). Binding another server's port on another
    /// loopback address (127.0.0.2) makes a decoy for DNS-rebinding tests.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The host name the certificate is issued for (default `assets.test`).
    pub fn host(mut self, host: &str) -> Self {
        self.host = host.to_string();
        self
    }

    /// The certificate presented (default [`CertMode::Valid`]).
    pub fn cert(mut self, cert: CertMode) -> Self {
        self.cert = cert;
        self
    }

    /// Binds and starts serving.
    pub async fn start(self) -> AssetServer {
        let (ca_pem, config) = tls_config(&self.host, self.cert);
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_path = dir.path().join("test-ca.pem");
        std::fs::write(&ca_path, &ca_pem).expect("write CA");
        let listener = TcpListener::bind(SocketAddr::new(self.ip, self.port)).await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State::default());
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let st = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                st.connections.fetch_add(1, Ordering::SeqCst);
                let st = Arc::clone(&st);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if st.stall_tls.load(Ordering::SeqCst) {
                        // Accept TCP, never answer the ClientHello.
                        let _keep = tcp;
                        tokio::time::sleep(Duration::from_secs(120)).await;
                        return;
                    }
                    serve_connection(tcp, acceptor, st).await;
                });
            }
        });
        AssetServer { addr, host: self.host, state, ca_pem, ca_path, _dir: dir, task }
    }
}

impl AssetServer {
    /// A builder with the defaults (127.0.0.1, `assets.test`, valid certificate).
    pub fn builder() -> AssetServerBuilder {
        AssetServerBuilder {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            host: "assets.test".to_string(),
            cert: CertMode::Valid,
        }
    }

    /// Starts a server with the defaults.
    pub async fn start() -> AssetServer {
        AssetServer::builder().start().await
    }

    /// The socket address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The host name (map it to [`AssetServer::addr`]'s IP with the intake's `resolve`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `https://<host>:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}:{}{}", self.host, self.addr.port(), path)
    }

    /// The test CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A file holding [`AssetServer::ca_pem`] (for `extra_ca_certs`); lives as long as the server.
    pub fn ca_file(&self) -> &Path {
        &self.ca_path
    }

    /// Programs a path.
    pub fn route(&self, path: &str, route: Route) {
        self.state.routes.lock().unwrap().insert(path.to_string(), route);
    }

    /// Makes every new connection stall before the TLS handshake.
    pub fn stall_tls(&self, on: bool) {
        self.state.stall_tls.store(on, Ordering::SeqCst);
    }

    /// Body bytes written so far (all paths), counted after each successful write.
    pub fn body_bytes_served(&self) -> u64 {
        self.state.body_bytes.load(Ordering::SeqCst)
    }

    /// Body bytes written so far for one path.
    pub fn body_bytes_served_for(&self, path: &str) -> u64 {
        self.state.body_bytes_by_path.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// Every request seen, in order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.state.seen.lock().unwrap().clone()
    }

    /// `METHOD path` of every request seen, in order.
    pub fn request_lines(&self) -> Vec<String> {
        self.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect()
    }

    /// TCP connections accepted.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// TLS handshakes completed.
    pub fn tls_handshakes(&self) -> u64 {
        self.state.handshakes.load(Ordering::SeqCst)
    }
}

fn tls_config(host: &str, mode: CertMode) -> (String, rustls::ServerConfig) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "mediagate test CA");
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca = ca_params.self_signed(&ca_key).expect("CA cert");

    let leaf_key = KeyPair::generate().expect("leaf key");
    let name = if mode == CertMode::WrongHost { "wrong-host.test".to_string() } else { host.to_string() };
    let mut leaf_params = CertificateParams::new(vec![name.clone()]).expect("leaf params");
    leaf_params.distinguished_name.push(DnType::CommonName, name);
    if mode == CertMode::Expired {
        leaf_params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        leaf_params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let leaf = if mode == CertMode::SelfSigned {
        leaf_params.self_signed(&leaf_key).expect("self-signed leaf")
    } else {
        leaf_params.signed_by(&leaf_key, &ca, &ca_key).expect("leaf cert")
    };
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .expect("server config");
    (ca.pem(), config)
}

fn headers_len(headers: &[(String, String)]) -> usize {
    headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0)
}

async fn read_head<S: AsyncReadExt + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = buf[..i].to_vec();
            buf.drain(..i + 4);
            return Some(head);
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let mut tmp = [0u8; 4096];
        let n = s.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        _ => "Status",
    }
}

async fn serve_connection(tcp: TcpStream, acceptor: TlsAcceptor, st: Arc<State>) {
    let _ = tcp.set_nodelay(true);
    let Ok(mut tls) = acceptor.accept(tcp).await else {
        return;
    };
    st.handshakes.fetch_add(1, Ordering::SeqCst);
    let mut buf = Vec::new();
    while let Some(head) = read_head(&mut tls, &mut buf).await {
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut lines = text.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let method = first.next().unwrap_or("").to_string();
        let path = first.next().unwrap_or("").to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        // Request bodies (webhook POSTs) are read so tests can check what was delivered.
        let declared: usize = headers_len(&headers);
        while buf.len() < declared {
            let mut tmp = [0u8; 8192];
            match tls.read(&mut tmp).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
        let body: Vec<u8> = buf.drain(..declared.min(buf.len())).collect();
        st.seen.lock().unwrap().push(SeenRequest {
            method: method.clone(),
            path: path.clone(),
            headers,
            body,
        });
        let mut route =
            st.routes.lock().unwrap().get(&path).cloned().unwrap_or_else(|| Route::status_only(404));
        if route.fail_first.as_ref().is_some_and(|(n, _)| {
            n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1)).is_ok()
        }) {
            let status = route.fail_first.as_ref().map(|(_, s)| *s).unwrap_or(500);
            route = Route::status_only(status);
        }
        if !respond(&mut tls, &method, &path, &route, &st).await {
            break;
        }
    }
    let _ = tls.shutdown().await;
}

/// Writes one response; false when the connection must close afterwards.
async fn respond<S: AsyncWriteExt + Unpin>(
    s: &mut S,
    method: &str,
    path: &str,
    r: &Route,
    st: &State,
) -> bool {
    if let Some(d) = r.header_delay {
        tokio::time::sleep(d).await;
    }
    if let Some(raw) = &r.raw_response {
        let _ = s.write_all(raw).await;
        let _ = s.flush().await;
        return false;
    }
    let is_head = method == "HEAD";
    let status = if is_head { r.head_status.unwrap_or(r.status) } else { r.status };
    let (ctype, length) = match (&r.head_override, is_head) {
        (Some((t, l)), true) => (t.clone(), *l),
        _ => (r.content_type.clone(), r.length),
    };
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    if let Some(t) = &ctype {
        head.push_str(&format!("Content-Type: {t}\r\n"));
    }
    let chunked = r.chunked && !is_head;
    let mut close = false;
    match length {
        _ if chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
        Length::Auto => head.push_str(&format!("Content-Length: {}\r\n", r.body.len())),
        Length::Declared(n) => head.push_str(&format!("Content-Length: {n}\r\n")),
        Length::Omit => close = true,
    }
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let declared_differs = matches!(length, Length::Declared(n) if n != r.body.len() as u64);
    if r.truncate_at.is_some() || declared_differs {
        close = true;
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    if s.write_all(head.as_bytes()).await.is_err() || s.flush().await.is_err() {
        return false;
    }
    if is_head {
        return !close;
    }
    let body: &[u8] = match r.truncate_at {
        Some(n) => &r.body[..n.min(r.body.len())],
        None => &r.body,
    };
    let piece = r.drip.map(|(p, _)| p).unwrap_or(256 * 1024);
    for part in body.chunks(piece) {
        let ok = if chunked {
            let mut framed = format!("{:x}\r\n", part.len()).into_bytes();
            framed.extend_from_slice(part);
            framed.extend_from_slice(b"\r\n");
            s.write_all(&framed).await.is_ok()
        } else {
            s.write_all(part).await.is_ok()
        };
        if !ok || s.flush().await.is_err() {
            return false;
        }
        st.body_bytes.fetch_add(part.len() as u64, Ordering::SeqCst);
        *st.body_bytes_by_path.lock().unwrap().entry(path.to_string()).or_default() += part.len() as u64;
        if let Some((_, every)) = r.drip {
            tokio::time::sleep(every).await;
        }
    }
    if chunked && s.write_all(b"0\r\n\r\n").await.is_err() {
        return false;
    }
    let _ = s.flush().await;
    !close
}
