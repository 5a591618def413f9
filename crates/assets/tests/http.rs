//! The URL, network and HTTP stages against a real loopback HTTPS server (asset-safety.md §6
//! lines 5–15 and every fetch-related reason of the troubleshooting guide).

mod support;

use async_trait::async_trait;
use mediagate_assets::resolver::DnsLookup;
use mediagate_assets::{AssetKind, Intake, IntakeConfig};
use mediagate_core::ErrorCode;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::asset_server::{AssetServer, CertMode, Length, Route};
use support::*;

const FETCH_FAILED: &str = mediagate_assets::FETCH_FAILED;

async fn served(route: Route) -> (AssetServer, Intake) {
    let s = AssetServer::start().await;
    s.route("/a", route);
    let intake = Intake::new(config_for(&s)).unwrap();
    (s, intake)
}

// ---------------------------------------------------------------- happy paths

#[tokio::test]
async fn valid_png_jpeg_webp_by_url() {
    let s = AssetServer::start().await;
    let intake = Intake::new(config_for(&s)).unwrap();
    for (path, ct, body, expect) in [
        ("/p", "image/png", png(640, 480), "image/png"),
        ("/j", "image/jpg", jpeg(300, 200), "image/jpeg"),
        ("/w", "IMAGE/WEBP; charset=binary", webp(100, 150), "image/webp"),
    ] {
        s.route(path, Route::ok(ct, body.clone()));
        let a = intake.resolve(&s.url(path), &req(AssetKind::Image)).await.unwrap();
        assert_eq!(a.media_type, expect);
        assert_eq!(a.bytes, body);
        assert!(a.width.is_some() && a.height.is_some());
    }
    assert_eq!(s.request_lines(), ["HEAD /p", "GET /p", "HEAD /j", "GET /j", "HEAD /w", "GET /w"]);
}

#[tokio::test]
async fn requests_carry_identity_encoding_and_the_user_agent() {
    let (s, intake) = served(Route::ok("image/png", png(10, 10))).await;
    intake.resolve(&s.url("/a"), &req(AssetKind::Image)).await.unwrap();
    for r in s.requests() {
        let h = |n: &str| r.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(h("accept-encoding").as_deref(), Some("identity"), "{r:?}");
        assert!(h("user-agent").unwrap().starts_with("mediagate/"));
        assert_eq!(h("host").as_deref(), Some(format!("assets.test:{}", s.addr().port()).as_str()));
        assert!(h("authorization").is_none() && h("cookie").is_none());
    }
}

#[tokio::test]
async fn video_and_audio_by_url() {
    let s = AssetServer::start().await;
    let intake = Intake::new(config_for(&s)).unwrap();
    s.route("/v.png", Route::ok("video/mp4", mp4(1280, 720)));
    let a = intake.resolve(&s.url("/v.png"), &req(AssetKind::Video)).await.unwrap();
    assert_eq!((a.media_type.as_str(), a.width, a.height), ("video/mp4", Some(1280), Some(720)));
    s.route("/big", Route::ok("video/mp4", mp4(9000, 720)));
    assert_err(
        intake.resolve(&s.url("/big"), &req(AssetKind::Video)).await,
        ErrorCode::AssetDimensions,
        "Invalid asset dimensions. Height and width must not exceed 8000px. Got 9000x720.",
    );
    s.route("/m", Route::ok("audio/mpeg", mp3()));
    let a = intake.resolve(&s.url("/m"), &req(AssetKind::Audio)).await.unwrap();
    assert_eq!((a.media_type.as_str(), a.width), ("audio/mpeg", None));
    s.route("/w", Route::ok("audio/x-wav", wav()));
    let a = intake.resolve(&s.url("/w"), &req(AssetKind::Audio)).await.unwrap();
    assert_eq!(a.media_type, "audio/wav");
    // A WAV labelled as MP3 is refused by its bytes.
    s.route("/w2", Route::ok("audio/mpeg", wav()));
    assert_err(
        intake.resolve(&s.url("/w2"), &req(AssetKind::Audio)).await,
        ErrorCode::AssetContentMismatch,
        "The asset was declared as audio/mpeg but its bytes are WAV.",
    );
}

// ---------------------------------------------------------------- network stage

#[tokio::test]
async fn loopback_is_blocked_unless_exempted_and_nothing_connects() {
    let s = AssetServer::start().await;
    s.route("/a", Route::ok("image/png", png(10, 10)));
    let mut c = config_for(&s);
    c.allowed_networks.clear();
    let intake = Intake::new(c.clone()).unwrap();
    let e = assert_err(
        intake.resolve(&s.url("/a"), &req(AssetKind::Image)).await,
        ErrorCode::AssetHostBlocked,
        "Failed to fetch asset. The host \"assets.test\" resolves to a non-public address (127.0.0.1: blocked, loopback)…",
    );
    assert!(e.message.ends_with("assets are only fetched from public addresses."));
    assert_eq!(s.connections(), 0);
    // The all-or-nothing test switch works too.
    c.allow_private_networks = true;
    let intake = Intake::new(c).unwrap();
    intake.resolve(&s.url("/a"), &req(AssetKind::Image)).await.unwrap();
    assert_eq!(s.connections(), 2);
}

/// A lookup whose answers are scripted per call.
struct Scripted {
    answers: Mutex<Vec<io::Result<Vec<IpAddr>>>>,
    calls: AtomicUsize,
}

impl Scripted {
    fn new(answers: Vec<io::Result<Vec<IpAddr>>>) -> Arc<Self> {
        Arc::new(Scripted { answers: Mutex::new(answers), calls: AtomicUsize::new(0) })
    }
}

#[async_trait]
impl DnsLookup for Scripted {
    async fn lookup(&self, _host: &str) -> io::Result<Vec<IpAddr>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut a = self.answers.lock().unwrap();
        if a.len() > 1 {
            a.remove(0)
        } else {
            a[0].as_ref().map(Clone::clone).map_err(|e| io::Error::new(e.kind(), e.to_string()))
        }
    }
}

fn ips(s: &[&str]) -> Vec<IpAddr> {
    s.iter().map(|a| a.parse().unwrap()).collect()
}

fn config_without_override(s: &AssetServer) -> IntakeConfig {
    let mut c = config_for(s);
    c.resolve.clear();
    c
}

#[tokio::test]
async fn dns_rebinding_between_head_and_get_never_reaches_the_second_address() {
    // The name first answers the exempted 127.0.0.1 (the real server), then 127.0.0.2, which is
    // loopback too, reachable on Linux, and not exempted. A decoy server listens there; if the
    // intake validated one answer and connected with another, the decoy would see a connection.
    let s = AssetServer::start().await;
    s.route("/a", Route::ok("image/png", png(10, 10)));
    // Same port as the real server, so a connection to the second answer would succeed.
    let decoy = AssetServer::builder().ip("127.0.0.2".parse().unwrap()).port(s.addr().port()).start().await;
    decoy.route("/a", Route::ok("image/png", png(10, 10)));
    let dns = Scripted::new(vec![Ok(ips(&["127.0.0.1"])), Ok(ips(&["127.0.0.2"]))]);
    let intake = Intake::with_lookup(config_without_override(&s), dns.clone()).unwrap();
    let url = s.url("/a");
    assert_err(
        intake.resolve(&url, &req(AssetKind::Image)).await,
        ErrorCode::AssetHostBlocked,
        "Failed to fetch asset. The host \"assets.test\" resolves to a non-public address (127.0.0.2: blocked, loopback)…",
    );
    assert_eq!(dns.calls.load(Ordering::SeqCst), 2, "HEAD and GET each resolved");
    assert_eq!(s.request_lines(), ["HEAD /a"], "GET never reached the validated server");
    assert_eq!(decoy.connections(), 0, "nothing connected to the unvalidated address");
}

#[tokio::test]
async fn answers_mixing_public_and_private_addresses_are_refused() {
    let s = AssetServer::start().await;
    s.route("/a", Route::ok("image/png", png(10, 10)));
    for mix in [
        &["127.0.0.1", "10.0.0.1"][..],
        &["10.0.0.1", "127.0.0.1"],
        &["127.0.0.1", "::ffff:169.254.169.254"],
        &["127.0.0.1", "64:ff9b::a9fe:a9fe"],
        &["127.0.0.1", "2002:a9fe:a9fe::"],
        &["127.0.0.1", "fd00::1"],
        &["127.0.0.1", "100.64.0.1"],
        &["127.0.0.1", "0.0.0.0"],
    ] {
        let intake =
            Intake::with_lookup(config_without_override(&s), Scripted::new(vec![Ok(ips(mix))])).unwrap();
        let e = assert_err(
            intake.resolve(&s.url("/a"), &req(AssetKind::Image)).await,
            ErrorCode::AssetHostBlocked,
            "Failed to fetch asset. The host \"assets.test\" resolves to a non-public address (…",
        );
        let bad = mix.iter().find(|a| **a != "127.0.0.1").unwrap();
        let bad_ip: IpAddr = bad.parse().unwrap();
        assert!(e.message.contains(&bad_ip.to_string()), "{mix:?}: {}", e.message);
    }
    assert_eq!(s.connections(), 0);
}

#[tokio::test]
async fn nxdomain_is_a_dns_failure() {
    let s = AssetServer::start().await;
    let dns = Scripted::new(vec![Err(io::Error::new(io::ErrorKind::NotFound, "Name or service not known"))]);
    let intake = Intake::with_lookup(config_without_override(&s), dns).unwrap();
    assert_err(
        intake.resolve(&s.url("/a"), &req(AssetKind::Image)).await,
        ErrorCode::AssetFetchFailed,
        &format!("{FETCH_FAILED} DNS lookup of \"assets.test\" failed: Name or service not known."),
    );
    let dns = Scripted::new(vec![Ok(vec![])]);
    let intake = Intake::with_lookup(config_without_override(&s), dns).unwrap();
    assert_err(
        intake.resolve(&s.url("/a"), &req(AssetKind::Image)).await,
        ErrorCode::AssetFetchFailed,
        &format!("{FETCH_FAILED} DNS lookup of \"assets.test\" returned no address."),
    );
}

#[tokio::test]
async fn refused_port_is_a_tcp_failure() {
    let s = AssetServer::start().await;
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let intake = Intake::new(config_for(&s)).unwrap();
    assert_err(
        intake.resolve(&format!("https://assets.test:{port}/a"), &req(AssetKind::Image)).await,
        ErrorCode::AssetFetchFailed,
        &format!("{FETCH_FAILED} TCP connection to \"assets.test\" failed: …"),
    );
}

#[tokio::test]
async fn bad_certificates_are_tls_failures() {
    for mode in [CertMode::SelfSigned, CertMode::WrongHost, CertMode::Expired] {
        let s = AssetServer::builder().cert(mode).start().await;
        s.route("/a", Route::ok("image/png", png(10, 10)));
        let intake = Intake::new(config_for(&s)).unwrap();
        let e = assert_err(
            intake.resolve(&s.url("/a"), &req(AssetKind::Image)).await,
            ErrorCode::AssetFetchFailed,
            &format!("{FETCH_FAILED} TLS handshake with \"assets.test\" failed: invalid peer certificate: …"),
        );
        let expect = match mode {
            CertMode::SelfSigned => "UnknownIssuer",
            CertMode::WrongHost => "not valid for name",
            _ => "expired",
        };
        assert!(e.message.contains(expect), "{mode:?}: {}", e.message);
        assert_eq!(s.request_lines(), Vec::<String>::new());
    }
    // A valid certificate from a CA the intake was not told about.
    let s = AssetServer::start().await;
    let mut c = config_for(&s);
    c.extra_ca_certs.clear();
    let intake = Intake::new(c).unwrap();
    assert_err(
        intake.resolve(&s.url("/a"), &req(AssetKind::Image)).await,
        ErrorCode::AssetFetchFailed,
        &format!(
            "{FETCH_FAILED} TLS handshake with \"assets.test\" failed: invalid peer certificate: UnknownIssuer."
        ),
    );
}

#[tokio::test]
async fn garbage_instead_of_http_is_a_protocol_failure() {
    let (s, intake) = served(Route::garbage(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")).await;
    assert_err(
        intake.resolve(&s.url("/a"), &req(AssetKind::Image)).await,
        ErrorCode::AssetFetchFailed,
        &format!("{FETCH_FAILED} The server's response is not valid HTTP/1.1 (…"),
    );
    // A connection closed without any response.
    let (s, intake) = served(Route::garbage(b"")).await;
    assert_err(
        intake.resolve(&s.url("/a"), &req(AssetKind::Image)).await,
        ErrorCode::AssetFetchFailed,
        &format!("{FETCH_FAILED} The connection was closed before a complete response arrived."),
    );
}

// ---------------------------------------------------------------- status

#[tokio::test]
async fn head_refusal_fails_with_its_own_message_and_no_get() {
    for status in [405, 501] {
        let (s, intake) = served(Route::ok("image/png", png(10, 10)).head_status(status)).await;
        assert_err(
            intake.resolve(&s.url("/a"), &req(AssetKind::Image)).await,
            ErrorCode::AssetHttpStatus,
            &format!(
                "Failed to fetch asset. Received HTTP response code {status} to a HEAD request. The server must answer HEAD requests with the asset's headers"
            ),
        );
        assert_eq!(s.request_lines(), ["HEAD /a"]);
    }
}

#[tokio::test]
async fn any_status_but_200_fails_with_the_code_in_the_message() {
    for status in [404, 403, 500, 204, 206] {
        let (s, intake) = served(Route::ok("image/png", png(10, 10)).with_status(status)).await;
        assert_err(
            intake.resolve(&s.url("/a"), &req(AssetKind::Image)).await,
            ErrorCode::AssetHttpStatus,
            &format!("Failed to fetch asset. Received HTTP response code {status}"),
        );
    }
    // 200 to HEAD, 404 to GET.
    let (s, intake) = served(Route::ok("image/png", png(10, 10)).with_status(404).head_status(200)).await;
    assert_err(
        intake.resolve(&s.url("/a"), &req(AssetKind::Image)).await,
        ErrorCode::AssetHttpStatus,
        "Failed to fetch asset. Received HTTP response code 404",
    );
    assert_eq!(s.request_lines(), ["HEAD /a", "GET /a"]);
}

#[tokio::test]
async fn redirects_are_never_followed() {
    for status in [301, 302, 303, 307, 308] {
        let s = AssetServer::start().await;
        s.route("/a", Route::redirect(status, "/target"));
        s.route("/target", Route::ok("image/png", png(10, 10)));
        let intake = Intake::new(config_for(&s)).unwrap();
        assert_err(
            intake.resolve(&s.url("/a"), &req(AssetKind::Image)).await,
            ErrorCode::AssetHttpStatus,
            &format!(
                "Failed to fetch asset. Received HTTP response code {status}. Redirects are not followed…"
            ),
        );
        assert_eq!(s.request_lines(), ["HEAD /a"], "Location must never be requested");
    }
    // Redirect only on GET, pointing at cloud metadata: still not followed.
    let s = AssetServer::start().await;
    s.route(
        "/a",
        Route::redirect(302, "http://169.254.169.254/latest/meta-data/")
            .head_status(200)
            .content_type(Some("image/png"))
            .length(Length::Declared(100)),
    );
    let intake = Intake::new(config_for(&s)).unwrap();
    assert_err(
        intake.resolve(&s.url("/a"), &req(AssetKind::Image)).await,
        ErrorCode::AssetHttpStatus,
        "Failed to fetch asset. Received HTTP response code 302…",
    );
}

// ---------------------------------------------------------------- headers

#[tokio::test]
async fn content_type_rules() {
    let s = AssetServer::start().await;
    let intake = Intake::new(config_for(&s)).unwrap();
    let body = png(10, 10);
    let cases: &[(Option<&str>, &str)] = &[
        (None, "Assets must use an approved Content-Type response header. We received none."),
        (
            Some("application/octet-stream"),
            "Assets must use an approved Content-Type response header. We received \"application/octet-stream\", which is not allowed.",
        ),
        (
            Some("binary/octet-stream"),
            "Assets must use an approved Content-Type response header. We received \"binary/octet-stream\", which is not allowed.",
        ),
        (Some("text/html"), "Unsupported Content-Type response header: \"text/html\"."),
        (Some("image/png, text/html"), "Unsupported Content-Type response header: \"image/png, text/html\"."),
        (Some("image/png text/html"), "Unsupported Content-Type response header: \"image/png text/html\"."),
        (
            Some("image/png;x=text/html"),
            "Unsupported Content-Type response header: \"image/png;x=text/html\".",
        ),
        (Some("image/gif"), "Unsupported Content-Type response header: \"image/gif\"."),
        (Some("video/mp4"), "Unsupported Content-Type response header: \"video/mp4\"."),
    ];
    for (i, (ct, msg)) in cases.iter().enumerate() {
        let path = format!("/c{i}.png");
        s.route(&path, Route::ok("x/x", body.clone()).content_type(*ct));
        assert_err(
            intake.resolve(&s.url(&path), &req(AssetKind::Image)).await,
            ErrorCode::AssetContentType,
            msg,
        );
        assert_eq!(s.body_bytes_served_for(&path), 0, "{ct:?}: refused on HEAD");
    }
    // The extension says nothing: `.mp4` serving a PNG is an image.
    s.route("/movie.mp4", Route::ok("image/png", body.clone()));
    intake.resolve(&s.url("/movie.mp4"), &req(AssetKind::Image)).await.unwrap();
}

#[tokio::test]
async fn content_length_is_required_and_must_be_honest() {
    let s = AssetServer::start().await;
    let intake = Intake::new(config_for(&s)).unwrap();
    let body = png(64, 64);
    let n = body.len() as u64;
    s.route("/none", Route::ok("image/png", body.clone()).length(Length::Omit));
    assert_err(
        intake.resolve(&s.url("/none"), &req(AssetKind::Image)).await,
        ErrorCode::AssetContentLength,
        "Content-Length not provided",
    );
    s.route(
        "/chunked",
        Route::ok("image/png", body.clone()).chunked().head_headers(Some("image/png"), Length::Auto),
    );
    assert_err(
        intake.resolve(&s.url("/chunked"), &req(AssetKind::Image)).await,
        ErrorCode::AssetContentLength,
        "Content-Length not provided",
    );
    // Short body: the connection closes after half.
    s.route("/short", Route::ok("image/png", body.clone()).truncate_at(body.len() / 2));
    assert_err(
        intake.resolve(&s.url("/short"), &req(AssetKind::Image)).await,
        ErrorCode::AssetContentLength,
        &format!(
            "The asset's body does not match its Content-Length: {n} bytes were announced, {} received.",
            n / 2
        ),
    );
    // Declared longer than what is sent, then closed.
    s.route("/long", Route::ok("image/png", body.clone()).length(Length::Declared(n + 100)));
    assert_err(
        intake.resolve(&s.url("/long"), &req(AssetKind::Image)).await,
        ErrorCode::AssetContentLength,
        &format!(
            "The asset's body does not match its Content-Length: {} bytes were announced, {n} received.",
            n + 100
        ),
    );
    // HEAD and GET disagree.
    s.route(
        "/dl",
        Route::ok("image/png", body.clone()).head_headers(Some("image/png"), Length::Declared(n - 1)),
    );
    assert_err(
        intake.resolve(&s.url("/dl"), &req(AssetKind::Image)).await,
        ErrorCode::AssetContentLength,
        &format!(
            "The HEAD and GET responses disagree on Content-Length ({} vs {n}); the server must send the same headers to both.",
            n - 1
        ),
    );
    s.route("/dt", Route::ok("image/png", body.clone()).head_headers(Some("image/jpeg"), Length::Auto));
    assert_err(
        intake.resolve(&s.url("/dt"), &req(AssetKind::Image)).await,
        ErrorCode::AssetContentType,
        "The HEAD and GET responses disagree on Content-Type (\"image/jpeg\" vs \"image/png\"); the server must send the same headers to both.",
    );
    s.route("/gz", Route::ok("image/png", body.clone()).header("Content-Encoding", "gzip"));
    assert_err(
        intake.resolve(&s.url("/gz"), &req(AssetKind::Image)).await,
        ErrorCode::AssetFetchFailed,
        &format!(
            "{FETCH_FAILED} The server sent Content-Encoding \"gzip\" although only identity was accepted…"
        ),
    );
}

#[tokio::test]
async fn oversize_is_refused_with_zero_body_bytes_served() {
    let s = AssetServer::start().await;
    let intake = Intake::new(config_for(&s)).unwrap();
    // A real 16 MB + 1 byte body behind an honest Content-Length.
    let mut big = png(10, 10);
    big.resize(16_000_001, 0);
    s.route("/big", Route::ok("image/png", big));
    assert_err(
        intake.resolve(&s.url("/big"), &req(AssetKind::Image)).await,
        ErrorCode::AssetTooLarge,
        "Asset size exceeds 16.0MB.",
    );
    assert_eq!(s.request_lines(), ["HEAD /big"]);
    assert_eq!(s.body_bytes_served(), 0);
    // Exactly at the limit passes the size rule (then fails nothing else: it is a valid PNG
    // followed by padding, and the limit is the only question here).
    let mut c = config_for(&s);
    c.url_image_max_bytes = 2000;
    let intake = Intake::new(c).unwrap();
    let mut at = png(10, 10);
    at.resize(2000, 0);
    s.route("/at", Route::ok("image/png", at.clone()));
    assert_eq!(intake.resolve(&s.url("/at"), &req(AssetKind::Image)).await.unwrap().bytes.len(), 2000);
    at.push(0);
    s.route("/over", Route::ok("image/png", at));
    assert_err(
        intake.resolve(&s.url("/over"), &req(AssetKind::Image)).await,
        ErrorCode::AssetTooLarge,
        "Asset size exceeds 0.0MB.",
    );
    assert_eq!(s.body_bytes_served_for("/over"), 0);
}

#[tokio::test]
async fn oversize_get_after_a_small_head_is_refused_before_reading() {
    // HEAD announces a small file, GET a huge one: the GET headers are judged before any body
    // byte is read, so the intake never allocates for or waits on the body.
    let s = AssetServer::start().await;
    let intake = Intake::new(config_for(&s)).unwrap();
    s.route(
        "/a",
        Route::ok("image/png", vec![0; 10])
            .length(Length::Declared(16_000_001))
            .head_headers(Some("image/png"), Length::Declared(10))
            .drip(1, Duration::from_secs(5)),
    );
    let t = Instant::now();
    assert_err(
        intake.resolve(&s.url("/a"), &req(AssetKind::Image)).await,
        ErrorCode::AssetTooLarge,
        "Asset size exceeds 16.0MB.",
    );
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn limits_per_kind_by_url() {
    let s = AssetServer::start().await;
    let intake = Intake::new(config_for(&s)).unwrap();
    for (kind, ct, limit, msg) in [
        (AssetKind::Image, "image/png", 16_000_000u64, "Asset size exceeds 16.0MB."),
        (AssetKind::Video, "video/mp4", 32_000_000, "Asset size exceeds 32.0MB."),
        (AssetKind::Audio, "audio/mpeg", 32_000_000, "Asset size exceeds 32.0MB."),
    ] {
        let path = format!("/{}", kind.as_str());
        s.route(&path, Route::ok(ct, vec![0; 4]).length(Length::Declared(limit + 1)));
        assert_err(intake.resolve(&s.url(&path), &req(kind)).await, ErrorCode::AssetTooLarge, msg);
    }
    assert_eq!(s.body_bytes_served(), 0);
}

// ---------------------------------------------------------------- deadline

#[tokio::test]
async fn one_deadline_covers_slow_headers_drip_feed_and_stalled_tls() {
    let s = AssetServer::start().await;
    let mut c = config_for(&s);
    c.fetch_timeout_ms = 800;
    let intake = Intake::new(c).unwrap();
    let body = png(32, 32);
    s.route("/slow", Route::ok("image/png", body.clone()).header_delay(Duration::from_secs(5)));
    // 1 byte every 20 ms: every single read is fast, only the total is slow.
    s.route("/drip", Route::ok("image/png", body.clone()).drip(1, Duration::from_millis(20)));
    for path in ["/slow", "/drip"] {
        let t = Instant::now();
        assert_err(
            intake.resolve(&s.url(path), &req(AssetKind::Image)).await,
            ErrorCode::AssetTimeout,
            "Timeout while fetching asset.",
        );
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(790) && took < Duration::from_millis(2000), "{path}: {took:?}");
    }
    assert!(s.body_bytes_served_for("/drip") > 0, "the drip had started");
    s.stall_tls(true);
    let t = Instant::now();
    assert_err(
        intake.resolve(&s.url("/slow"), &req(AssetKind::Image)).await,
        ErrorCode::AssetTimeout,
        "Timeout while fetching asset.",
    );
    assert!(t.elapsed() < Duration::from_millis(2000));
}

#[tokio::test]
async fn concurrent_fetches_are_bounded() {
    let s = AssetServer::start().await;
    let mut c = config_for(&s);
    c.max_concurrent_fetches = 1;
    let intake = Intake::new(c).unwrap();
    // Each fetch takes ≥ 300 ms (header delay on HEAD and GET: 150 ms each).
    s.route("/a", Route::ok("image/png", png(8, 8)).header_delay(Duration::from_millis(150)));
    let t = Instant::now();
    let r1 = req(AssetKind::Image);
    let r2 = req(AssetKind::Image);
    let u = s.url("/a");
    let (a, b) = tokio::join!(intake.resolve(&u, &r1), intake.resolve(&u, &r2));
    a.unwrap();
    b.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(600), "ran in parallel: {:?}", t.elapsed());
}

// ---------------------------------------------------------------- media stage

#[tokio::test]
async fn bytes_must_match_the_declared_type() {
    let s = AssetServer::start().await;
    let intake = Intake::new(config_for(&s)).unwrap();
    s.route("/pj", Route::ok("image/jpeg", png(10, 10)));
    assert_err(
        intake.resolve(&s.url("/pj"), &req(AssetKind::Image)).await,
        ErrorCode::AssetContentMismatch,
        "The asset was declared as image/jpeg but its bytes are PNG.",
    );
    s.route("/html", Route::ok("image/png", b"<!doctype html><html><body>hi</body></html>".to_vec()));
    assert_err(
        intake.resolve(&s.url("/html"), &req(AssetKind::Image)).await,
        ErrorCode::AssetContentMismatch,
        "The asset was declared as image/png but its bytes are not a recognised media format.",
    );
}

#[tokio::test]
async fn dimension_and_aspect_rules() {
    let s = AssetServer::start().await;
    let intake = Intake::new(config_for(&s)).unwrap();
    type Case = ((u32, u32), Option<(ErrorCode, &'static str)>);
    let cases: &[Case] = &[
        ((8000, 8000), None),
        ((8000, 4000), None),
        ((100, 200), None),
        ((200, 100), None),
        (
            (8001, 8000),
            Some((
                ErrorCode::AssetDimensions,
                "Invalid asset dimensions. Height and width must not exceed 8000px. Got 8001x8000.",
            )),
        ),
        (
            (4000, 8001),
            Some((
                ErrorCode::AssetDimensions,
                "Invalid asset dimensions. Height and width must not exceed 8000px. Got 4000x8001.",
            )),
        ),
        (
            (9000, 100),
            Some((
                ErrorCode::AssetDimensions,
                "Invalid asset dimensions. Height and width must not exceed 8000px. Got 9000x100.",
            )),
        ),
        (
            (0, 100),
            Some((
                ErrorCode::AssetDimensions,
                "Invalid asset dimensions. Height and width must not exceed 8000px. Got 0x100.",
            )),
        ),
        (
            (320, 100),
            Some((
                ErrorCode::AssetAspectRatio,
                "Invalid asset aspect ratio. width / height ratio must be between 0.5 and 2. Got 3.2.",
            )),
        ),
        (
            (201, 100),
            Some((
                ErrorCode::AssetAspectRatio,
                "Invalid asset aspect ratio. width / height ratio must be between 0.5 and 2. Got 2.01.",
            )),
        ),
        (
            (100, 201),
            Some((
                ErrorCode::AssetAspectRatio,
                "Invalid asset aspect ratio. width / height ratio must be between 0.5 and 2. Got 0.4975.",
            )),
        ),
    ];
    for (i, ((w, h), want)) in cases.iter().enumerate() {
        let path = format!("/d{i}");
        s.route(&path, Route::ok("image/png", png_header(*w, *h)));
        let r = intake.resolve(&s.url(&path), &req(AssetKind::Image)).await;
        match want {
            None => {
                let a = r.unwrap();
                assert_eq!((a.width, a.height), (Some(*w), Some(*h)));
            }
            Some((code, msg)) => {
                assert_err(r, *code, msg);
            }
        }
    }
    // The model's own bounds replace the default.
    let mut r = req(AssetKind::Image);
    r.aspect = Some((1.0, 1.0));
    s.route("/sq", Route::ok("image/png", png_header(101, 100)));
    assert_err(
        intake.resolve(&s.url("/sq"), &r).await,
        ErrorCode::AssetAspectRatio,
        "Invalid asset aspect ratio. width / height ratio must be between 1 and 1. Got 1.01.",
    );
    // Truncated header.
    s.route("/t", Route::ok("image/png", png_header(10, 10)[..20].to_vec()));
    assert_err(
        intake.resolve(&s.url("/t"), &req(AssetKind::Image)).await,
        ErrorCode::AssetDimensions,
        "Invalid asset dimensions. The PNG header is truncated or unreadable, so its width and height cannot be read.",
    );
}

#[tokio::test]
async fn oversized_dimensions_are_refused_from_the_first_bytes() {
    // 1 MB body fed 16 KB every 30 ms (~2 s in total); the header is in the first piece, so
    // the refusal must come long before the body ends.
    let s = AssetServer::start().await;
    let intake = Intake::new(config_for(&s)).unwrap();
    let mut body = png_header(9000, 100);
    body.resize(1_000_000, 0);
    s.route("/a", Route::ok("image/png", body).drip(16 * 1024, Duration::from_millis(30)));
    let t = Instant::now();
    assert_err(
        intake.resolve(&s.url("/a"), &req(AssetKind::Image)).await,
        ErrorCode::AssetDimensions,
        "Invalid asset dimensions. Height and width must not exceed 8000px. Got 9000x100.",
    );
    assert!(t.elapsed() < Duration::from_millis(1000), "{:?}", t.elapsed());
    assert!(s.body_bytes_served_for("/a") < 1_000_000);
}
