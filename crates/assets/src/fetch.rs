//! The HTTP stage: HEAD, then GET, under one deadline, with every header rule applied before a
//! body byte is read and the body streamed into a buffer no larger than the announced length.
//!
//! Client settings and why:
//! - redirects never followed (`Policy::none()`): any 3xx is a failure (Runway rule), so a
//!   redirect cannot point the fetch at an internal address either;
//! - `no_proxy()`: `HTTPS_PROXY` in the environment must not reroute asset fetches;
//! - `https_only(true)`, HTTP/1.1 only (reqwest's `http2` feature is off);
//! - `Accept-Encoding: identity` and no decompression features, so `Content-Length` is the size
//!   of the asset itself; any other `Content-Encoding` is refused;
//! - no connection pool (`pool_max_idle_per_host(0)`): HEAD and GET each resolve through the
//!   validating resolver, and closing a refused response aborts its download;
//! - one deadline (`tokio::time::timeout`) around DNS, connect, TLS, HEAD, GET and the whole
//!   body, so a drip-fed body cannot keep a fetch alive past it.

use crate::content_type::{self, TypeVerdict};
use crate::report::{Reporter, Step};
use crate::resolver::ResolveError;
use crate::{AssetKind, Reject};
use mediagate_core::ErrorCode;
use mediagate_core::fair::FairSemaphore;
use reqwest::header::{
    ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, TRANSFER_ENCODING,
};
use std::time::{Duration, Instant};
use url::Url;

/// The common start of every connection-level failure message (source document's reason text).
pub const FETCH_FAILED: &str =
    "Failed to fetch asset. The URL may be incorrect or the server hosting the asset may be down.";

/// The source document's reason text for a deadline overrun.
pub const TIMEOUT: &str = "Timeout while fetching asset.";

pub(crate) struct Fetcher {
    pub(crate) client: reqwest::Client,
    /// Fetch slots, shared fairly across accounts (an account's burst of slow URLs cannot
    /// hold every other account's fetches behind it).
    pub(crate) permits: FairSemaphore,
    pub(crate) deadline: Duration,
}

/// A body that passed the HTTP stage.
pub(crate) struct Fetched {
    pub(crate) bytes: Vec<u8>,
    /// The canonical media type from `Content-Type`.
    pub(crate) essence: String,
    /// The family that type belongs to.
    pub(crate) kind: AssetKind,
}

/// Called with the body received so far; returns `Ok(true)` once it has seen enough (it is not
/// called again), `Ok(false)` to be called again with more, or a rejection that stops the fetch.
pub(crate) type EarlyCheck<'a> = dyn FnMut(&[u8]) -> Result<bool, Reject> + Send + 'a;

fn reject(code: ErrorCode, msg: impl Into<String>) -> Reject {
    Reject(code, msg.into())
}

pub(crate) fn too_large(limit: u64) -> Reject {
    reject(ErrorCode::AssetTooLarge, format!("Asset size exceeds {:.1}MB.", limit as f64 / 1e6))
}

/// Labels a reqwest error by walking its source chain: our resolver's errors, rustls errors
/// (also when wrapped in an `io::Error`), hyper protocol errors, then I/O errors.
pub(crate) fn classify(e: &reqwest::Error, host: &str) -> Reject {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut hyper_err: Option<&hyper::Error> = None;
    let mut io_err: Option<&std::io::Error> = None;
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<ResolveError>() {
            return match r {
                ResolveError::Blocked { explanation, .. } => reject(
                    ErrorCode::AssetHostBlocked,
                    format!(
                        "Failed to fetch asset. The host \"{host}\" resolves to a non-public address ({explanation}); assets are only fetched from public addresses."
                    ),
                ),
                other => reject(ErrorCode::AssetFetchFailed, format!("{FETCH_FAILED} {other}.")),
            };
        }
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return tls_failure(host, t);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            // `io::Error::source()` skips the wrapped error itself, so look inside explicitly,
            // through as many io::Error layers as the connector stacked.
            let mut inner = io.get_ref();
            while let Some(i) = inner {
                if let Some(t) = i.downcast_ref::<rustls::Error>() {
                    return tls_failure(host, t);
                }
                inner = i.downcast_ref::<std::io::Error>().and_then(|x| x.get_ref());
            }
            io_err.get_or_insert(io);
        }
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            hyper_err.get_or_insert(h);
        }
        cur = err.source();
    }
    if e.is_timeout() {
        return reject(ErrorCode::AssetTimeout, TIMEOUT);
    }
    if let Some(h) = hyper_err {
        if h.is_parse() || h.is_parse_status() {
            return reject(
                ErrorCode::AssetFetchFailed,
                format!("{FETCH_FAILED} The server's response is not valid HTTP/1.1 ({h})."),
            );
        }
        if h.is_incomplete_message() || h.is_closed() || h.is_canceled() {
            return reject(
                ErrorCode::AssetFetchFailed,
                format!("{FETCH_FAILED} The connection was closed before a complete response arrived."),
            );
        }
    }
    if e.is_connect() {
        let detail = io_err.map(|i| i.to_string()).unwrap_or_else(|| e.to_string());
        if io_err.is_some_and(|i| i.kind() == std::io::ErrorKind::UnexpectedEof) {
            // The peer closed the socket during the TLS handshake.
            return reject(
                ErrorCode::AssetFetchFailed,
                format!(
                    "{FETCH_FAILED} TLS handshake with \"{host}\" failed: the server closed the connection."
                ),
            );
        }
        return reject(
            ErrorCode::AssetFetchFailed,
            format!("{FETCH_FAILED} TCP connection to \"{host}\" failed: {detail}."),
        );
    }
    let detail =
        hyper_err.map(|h| h.to_string()).or(io_err.map(|i| i.to_string())).unwrap_or_else(|| e.to_string());
    reject(ErrorCode::AssetFetchFailed, format!("{FETCH_FAILED} HTTP protocol error: {detail}."))
}

fn tls_failure(host: &str, t: &rustls::Error) -> Reject {
    reject(ErrorCode::AssetFetchFailed, format!("{FETCH_FAILED} TLS handshake with \"{host}\" failed: {t}."))
}

/// What the header rules extracted.
#[derive(Debug, PartialEq)]
struct Announced {
    essence: String,
    length: u64,
}

fn header_str<'h>(h: &'h HeaderMap, name: &reqwest::header::HeaderName) -> Option<&'h str> {
    h.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"))
}

/// [`check_headers_any`] for one family with one limit.
#[cfg(test)]
fn check_headers(h: &HeaderMap, kind: AssetKind, limit: u64) -> Result<Announced, Reject> {
    check_headers_any(h, &[kind], &|_| limit).map(|(a, _)| a)
}

/// Applies the header rules in the order a client can fix them: encoding, type, length, size.
/// The type may be of any of `kinds` (the first that accepts it decides the family, and so the
/// size limit, `limit_of`); a refused type is explained in the terms of the first family.
fn check_headers_any(
    h: &HeaderMap,
    kinds: &[AssetKind],
    limit_of: &dyn Fn(AssetKind) -> u64,
) -> Result<(Announced, AssetKind), Reject> {
    if let Some(enc) = header_str(h, &CONTENT_ENCODING)
        && !enc.trim().eq_ignore_ascii_case("identity")
    {
        return Err(reject(
            ErrorCode::AssetFetchFailed,
            format!(
                "{FETCH_FAILED} The server sent Content-Encoding \"{}\" although only identity was accepted; assets must be served uncompressed.",
                enc.escape_debug()
            ),
        ));
    }
    let ct: Vec<&str> = h.get_all(CONTENT_TYPE).iter().map(|v| v.to_str().unwrap_or("\u{fffd}")).collect();
    // Two Content-Type headers are a smuggled list too.
    let joined = ct.join(", ");
    let header = if ct.is_empty() { None } else { Some(joined.as_str()) };
    let mut refusal = None;
    let mut accepted = None;
    for &k in kinds {
        match content_type::judge(header, k) {
            TypeVerdict::Ok(e) => {
                accepted = Some((k, e));
                break;
            }
            other => {
                refusal.get_or_insert(other);
            }
        }
    }
    let Some((kind, essence)) = accepted else {
        let refusal = refusal.unwrap_or(TypeVerdict::Missing);
        return Err(reject(ErrorCode::AssetContentType, content_type::message(&refusal)));
    };
    let limit = limit_of(kind);
    let not_provided = || reject(ErrorCode::AssetContentLength, "Content-Length not provided");
    if h.contains_key(TRANSFER_ENCODING) {
        // A chunked (or otherwise framed) body has no length we can hold the server to.
        return Err(not_provided());
    }
    let cl: Vec<&str> = h.get_all(CONTENT_LENGTH).iter().map(|v| v.to_str().unwrap_or("")).collect();
    let Some(first) = cl.first() else {
        return Err(not_provided());
    };
    let valid = |s: &str| !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit());
    if !valid(first.trim()) || cl.iter().any(|v| v.trim() != first.trim()) {
        return Err(reject(
            ErrorCode::AssetContentLength,
            format!(
                "Content-Length not provided: the header's value \"{}\" is not one decimal number.",
                cl.join(", ").escape_debug()
            ),
        ));
    }
    let length: u64 = first.trim().parse().map_err(|_| not_provided())?;
    if length > limit {
        return Err(too_large(limit));
    }
    if length == 0 {
        return Err(reject(
            ErrorCode::AssetContentLength,
            "The asset is empty: the server sent Content-Length: 0.",
        ));
    }
    Ok((Announced { essence, length }, kind))
}

fn status_reject(method: &str, status: u16) -> Reject {
    let mut msg = format!("Failed to fetch asset. Received HTTP response code {status}");
    if (300..400).contains(&status) {
        msg.push_str(". Redirects are not followed: link to the asset's final URL");
    } else if method == "HEAD" && (status == 405 || status == 501) {
        msg.push_str(" to a HEAD request. The server must answer HEAD requests with the asset's headers");
    }
    reject(ErrorCode::AssetHttpStatus, msg)
}

fn report_response(r: &dyn Reporter, method: &'static str, resp: &reqwest::Response) {
    let cert =
        resp.extensions().get::<reqwest::tls::TlsInfo>().and_then(|t| t.peer_certificate()).map(<[u8]>::len);
    r.step(&Step::Response {
        method,
        remote: resp.remote_addr(),
        tls_verified: true,
        tls_peer_certificate_bytes: cert,
        status: resp.status().as_u16(),
        headers: resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
    });
}

impl Fetcher {
    /// Fetches `url` once under the HTTP rules for whichever of `kinds` its `Content-Type`
    /// names (the first that accepts it), with that family's body limit `limit_of(kind)`.
    pub(crate) async fn fetch(
        &self,
        account_id: i64,
        url: &Url,
        kinds: &[AssetKind],
        limit_of: &(dyn Fn(AssetKind) -> u64 + Sync),
        early: &mut EarlyCheck<'_>,
        reporter: &dyn Reporter,
    ) -> Result<Fetched, Reject> {
        // Queueing for a permit is not part of the asset's deadline: a busy server should not
        // blame the asset host. Every fetch holding a permit is itself bounded by the deadline.
        let _permit = self.permits.acquire(account_id).await;
        let start = Instant::now();
        match tokio::time::timeout(
            self.deadline,
            self.fetch_inner(url, kinds, limit_of, early, reporter, start),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(reject(ErrorCode::AssetTimeout, TIMEOUT)),
        }
    }

    async fn fetch_inner(
        &self,
        url: &Url,
        kinds: &[AssetKind],
        limit_of: &(dyn Fn(AssetKind) -> u64 + Sync),
        early: &mut EarlyCheck<'_>,
        reporter: &dyn Reporter,
        start: Instant,
    ) -> Result<Fetched, Reject> {
        let host = url.host_str().unwrap_or_default().to_string();
        let accept = kinds
            .iter()
            .flat_map(|k| content_type::accepted(*k).iter().copied())
            .collect::<Vec<_>>()
            .join(", ");
        let request = |m: reqwest::Method| {
            self.client
                .request(m, url.clone())
                .header(ACCEPT_ENCODING, "identity")
                .header(ACCEPT, accept.as_str())
        };

        reporter.step(&Step::Request { method: "HEAD" });
        let head = request(reqwest::Method::HEAD).send().await.map_err(|e| classify(&e, &host))?;
        report_response(reporter, "HEAD", &head);
        if head.status().as_u16() != 200 {
            return Err(status_reject("HEAD", head.status().as_u16()));
        }
        let (announced, kind) = check_headers_any(head.headers(), kinds, limit_of)?;
        drop(head);

        reporter.step(&Step::Request { method: "GET" });
        let mut resp = request(reqwest::Method::GET).send().await.map_err(|e| classify(&e, &host))?;
        report_response(reporter, "GET", &resp);
        if resp.status().as_u16() != 200 {
            return Err(status_reject("GET", resp.status().as_u16()));
        }
        let (got, _) = check_headers_any(resp.headers(), &[kind], limit_of)?;
        if got.essence != announced.essence {
            return Err(reject(
                ErrorCode::AssetContentType,
                format!(
                    "The HEAD and GET responses disagree on Content-Type (\"{}\" vs \"{}\"); the server must send the same headers to both.",
                    announced.essence, got.essence
                ),
            ));
        }
        if got.length != announced.length {
            return Err(reject(
                ErrorCode::AssetContentLength,
                format!(
                    "The HEAD and GET responses disagree on Content-Length ({} vs {}); the server must send the same headers to both.",
                    announced.length, got.length
                ),
            ));
        }
        let expected = got.length;
        // `expected <= limit` was checked, so this allocation is bounded by the limit.
        let mut body: Vec<u8> = Vec::with_capacity(expected as usize);
        let mut early_done = false;
        let mismatch = |received: u64| {
            reject(
                ErrorCode::AssetContentLength,
                format!(
                    "The asset's body does not match its Content-Length: {expected} bytes were announced, {received} received."
                ),
            )
        };
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    let r = classify(&e, &host);
                    // A connection closed early is a short body: say so in its own terms.
                    if r.0 == ErrorCode::AssetFetchFailed && (body.len() as u64) < expected {
                        return Err(mismatch(body.len() as u64));
                    }
                    return Err(r);
                }
            };
            let received = body.len() as u64 + chunk.len() as u64;
            if received > expected {
                return Err(mismatch(received));
            }
            body.extend_from_slice(&chunk);
            reporter.step(&Step::Progress { received, expected });
            if !early_done {
                early_done = early(&body)?;
            }
        }
        let received = body.len() as u64;
        reporter.step(&Step::BodyDone { received, expected, elapsed_ms: start.elapsed().as_millis() as u64 });
        if received != expected {
            return Err(mismatch(received));
        }
        Ok(Fetched { bytes: body, essence: got.essence, kind })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn header_rules_in_order() {
        let ok = check_headers(
            &headers(&[("content-type", "image/png"), ("content-length", "100")]),
            AssetKind::Image,
            16_000_000,
        )
        .unwrap();
        assert_eq!(ok, Announced { essence: "image/png".into(), length: 100 });
        let err = |pairs: &[(&str, &str)]| {
            check_headers(&headers(pairs), AssetKind::Image, 16_000_000).unwrap_err()
        };
        let e = err(&[("content-type", "image/png")]);
        assert_eq!((e.0, e.1.as_str()), (ErrorCode::AssetContentLength, "Content-Length not provided"));
        let e = err(&[("content-type", "image/png"), ("content-length", "16000001")]);
        assert_eq!((e.0, e.1.as_str()), (ErrorCode::AssetTooLarge, "Asset size exceeds 16.0MB."));
        assert!(
            check_headers(
                &headers(&[("content-type", "image/png"), ("content-length", "16000000")]),
                AssetKind::Image,
                16_000_000
            )
            .is_ok()
        );
        let e = err(&[("content-type", "image/png"), ("content-type", "text/html"), ("content-length", "5")]);
        assert_eq!(e.0, ErrorCode::AssetContentType);
        let e = err(&[("content-type", "image/png"), ("content-length", "5"), ("content-length", "6")]);
        assert_eq!(e.0, ErrorCode::AssetContentLength);
        let e = err(&[("content-type", "image/png"), ("content-length", "+5")]);
        assert_eq!(e.0, ErrorCode::AssetContentLength);
        let e =
            err(&[("content-type", "image/png"), ("content-length", "5"), ("transfer-encoding", "chunked")]);
        assert_eq!(e.0, ErrorCode::AssetContentLength);
        let e = err(&[("content-type", "image/png"), ("content-length", "5"), ("content-encoding", "gzip")]);
        assert_eq!(e.0, ErrorCode::AssetFetchFailed);
        assert!(e.1.contains("Content-Encoding \"gzip\""));
        let e = err(&[("content-length", "5")]);
        assert_eq!(e.0, ErrorCode::AssetContentType);
    }

    #[test]
    fn status_messages_are_the_documents() {
        assert_eq!(status_reject("GET", 404).1, "Failed to fetch asset. Received HTTP response code 404");
        assert!(
            status_reject("HEAD", 302)
                .1
                .starts_with("Failed to fetch asset. Received HTTP response code 302. Redirects")
        );
        assert!(status_reject("HEAD", 405).1.contains("must answer HEAD requests"));
        assert_eq!(status_reject("HEAD", 206).0, ErrorCode::AssetHttpStatus);
    }
}
