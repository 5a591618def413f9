//! Step events emitted while an asset is resolved, for `mediagate assets check`.
//!
//! The server passes no reporter (the events cost nothing then); the CLI passes one that prints.
//! Events from inside the HTTP client (DNS answers) reach the reporter through a task-local,
//! because the resolver is shared by every fetch and cannot carry per-request state.

use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// One address of a DNS answer and what the policy said about it.
#[derive(Debug, Clone, Serialize)]
pub struct DnsAnswer {
    /// The address.
    pub address: IpAddr,
    /// Whether a connection to it is allowed.
    pub allowed: bool,
    /// The policy's explanation, e.g. `10.0.0.1: blocked, private network (RFC 1918)`.
    pub verdict: String,
}

/// One thing that happened while resolving an asset.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "step", rename_all = "camelCase")]
pub enum Step {
    /// What kind of reference was recognised.
    #[serde(rename_all = "camelCase")]
    Reference {
        /// `url`, `dataUri`, `base64` or `uuid`.
        form: &'static str,
        /// Characters in the reference as sent.
        length: usize,
    },
    /// The URL passed the URL rules.
    #[serde(rename_all = "camelCase")]
    UrlChecked {
        /// The URL as the client will request it.
        url: String,
        /// The domain.
        host: String,
        /// The port.
        port: u16,
    },
    /// DNS answers for the host and the verdict per address (once per connection).
    #[serde(rename_all = "camelCase")]
    Dns {
        /// The name looked up.
        host: String,
        /// `system` or `configured override`.
        source: &'static str,
        /// Every address returned.
        answers: Vec<DnsAnswer>,
    },
    /// A request is about to be sent.
    #[serde(rename_all = "camelCase")]
    Request {
        /// `HEAD` or `GET`.
        method: &'static str,
    },
    /// A response head arrived (so TCP and TLS succeeded).
    #[serde(rename_all = "camelCase")]
    Response {
        /// `HEAD` or `GET`.
        method: &'static str,
        /// The address the connection went to.
        remote: Option<SocketAddr>,
        /// Whether the server's TLS certificate chain was verified (always true on success).
        tls_verified: bool,
        /// Size of the peer's leaf certificate in DER bytes, if reported.
        tls_peer_certificate_bytes: Option<usize>,
        /// Status code.
        status: u16,
        /// The response headers, in order.
        headers: Vec<(String, String)>,
    },
    /// Body progress (emitted per chunk; reporters throttle).
    #[serde(rename_all = "camelCase")]
    Progress {
        /// Bytes received so far.
        received: u64,
        /// Bytes announced by Content-Length.
        expected: u64,
    },
    /// The body is complete.
    #[serde(rename_all = "camelCase")]
    BodyDone {
        /// Bytes received.
        received: u64,
        /// Bytes announced by Content-Length.
        expected: u64,
        /// Milliseconds from the start of the fetch.
        elapsed_ms: u64,
    },
    /// A data URI or base64 payload was decoded.
    #[serde(rename_all = "camelCase")]
    Decoded {
        /// The declared media type (data URIs) or `None` (raw base64).
        declared: Option<String>,
        /// Characters of the reference as sent (what the limit applies to).
        encoded_length: usize,
        /// The limit in bytes.
        limit: u64,
        /// Decoded bytes.
        decoded_bytes: usize,
    },
    /// The bytes were sniffed.
    #[serde(rename_all = "camelCase")]
    Sniffed {
        /// The recognised format, if any.
        format: Option<&'static str>,
        /// The media type the bytes were declared as (or inferred).
        declared: String,
        /// Whether the bytes match the declared type.
        matches: bool,
    },
    /// Dimensions read from the header.
    #[serde(rename_all = "camelCase")]
    Dimensions {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// The maximum for either side.
        max: u32,
    },
    /// The aspect ratio and its bounds.
    #[serde(rename_all = "camelCase")]
    Aspect {
        /// width / height.
        ratio: f64,
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
}

/// Receives steps as they happen.
pub trait Reporter: Send + Sync {
    /// Called once per step, in order.
    fn step(&self, step: &Step);
}

/// A reporter that ignores everything (what the server uses).
pub struct NoReport;

impl Reporter for NoReport {
    fn step(&self, _: &Step) {}
}

tokio::task_local! {
    /// The reporter of the fetch running on this task, seen by the shared DNS resolver.
    pub(crate) static CURRENT: Arc<dyn Reporter>;
}

/// The reporter of the current task, if a fetch with a reporter is running on it.
pub(crate) fn current() -> Option<Arc<dyn Reporter>> {
    CURRENT.try_with(Arc::clone).ok()
}
