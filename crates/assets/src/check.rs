//! `mediagate assets check <url | data-uri | file> [--kind image|video|audio] [--json]`.
//!
//! Runs the server's own intake code ([`Intake::resolve_reported`], not a copy) with a reporter
//! that prints every step as it happens, then the exact error the API would return and a hint.

use crate::report::{Reporter, Step};
use crate::{AssetKind, AssetRequest, Intake, IntakeConfig, NoStoredAssets};
use base64::Engine as _;
use mediagate_core::{ApiError, ErrorCode, ParamPath};
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;

/// Exit status: the asset is valid.
pub const EXIT_VALID: i32 = 0;
/// Exit status: the asset is refused (the API would return the printed error).
pub const EXIT_INVALID: i32 = 1;
/// Exit status: usage error (unreadable file, bad configuration...).
pub const EXIT_USAGE: i32 = 2;

/// The parameter name errors are reported under by `assets check`.
pub const CHECK_PARAMETER: &str = "asset";

/// What the fix usually is, per error code.
pub fn hint(code: ErrorCode, config: &IntakeConfig, kind: AssetKind) -> String {
    let types = crate::content_type::accepted(kind).join(", ");
    match code {
        ErrorCode::InvalidDataUri => "Encode the file with a base64 library and send it as data:<media type>;base64,<data>.".into(),
        ErrorCode::UnsupportedAssetType => format!("Send one of the accepted {} types: {types}.", kind.as_str()),
        ErrorCode::InvalidAssetUrl => format!(
            "Send a complete https:// URL whose host is a domain name (no IP address, no user:password@), at most {} characters. Create an A/AAAA record if the asset lives on a bare IP.",
            config.max_url_length
        ),
        ErrorCode::AssetHostBlocked => "Host the asset on a publicly reachable address: private, loopback, link-local and other non-public addresses are never fetched.".into(),
        ErrorCode::AssetFetchFailed => "Check from the public internet that the name resolves, port 443 accepts connections, the certificate is valid for the host and chains to a public CA, and the server speaks HTTP/1.1 without compression.".into(),
        ErrorCode::AssetHttpStatus => "Make the URL answer both HEAD and GET with 200 itself; redirects are not followed, so link to the final URL.".into(),
        ErrorCode::AssetTimeout => format!(
            "The whole fetch (DNS, TLS, HEAD, GET and every body byte) must finish within {} s: serve the asset from faster storage or a CDN, or send a smaller file.",
            config.fetch_timeout_ms as f64 / 1000.0
        ),
        ErrorCode::AssetContentType => format!("Configure the server to send the asset's real media type in Content-Type, one of: {types}."),
        ErrorCode::AssetContentLength => "Serve the file with an accurate Content-Length header (no chunked or compressed transfer), identical for HEAD and GET.".into(),
        ErrorCode::AssetTooLarge => format!(
            "Make the file smaller (re-encode or resize). Limits for {}: {:.1} MB by URL, {:.1} MB as a data URI (measured on the encoded string).",
            kind.as_str(),
            config.url_limit(kind) as f64 / 1e6,
            config.data_uri_limit(kind) as f64 / 1e6
        ),
        ErrorCode::AssetContentMismatch => "The bytes are not what the declared type says: fix the Content-Type (or data URI type) or re-export the file in that format.".into(),
        ErrorCode::AssetDimensions => format!("Resize the asset so that neither side exceeds {} px.", config.max_dimension),
        ErrorCode::AssetAspectRatio => "Crop or pad the image so that width / height is within the bounds the model accepts.".into(),
        ErrorCode::AssetNotFound => "Upload the file again; uploads expire after they go unused.".into(),
        _ => "See docs/errors.md for this code.".into(),
    }
}

fn mb(b: u64) -> String {
    format!("{:.1} MB", b as f64 / 1e6)
}

/// Formats steps as text (or JSON lines) and sends them to the printing loop.
struct LineReporter {
    tx: mpsc::UnboundedSender<String>,
    json: bool,
    progress: bool,
    last_progress: Mutex<Option<Instant>>,
}

impl LineReporter {
    fn send(&self, s: String) {
        let _ = self.tx.send(s);
    }

    fn human(&self, step: &Step) -> Option<String> {
        Some(match step {
            Step::Reference { form, length } => {
                let what = match *form {
                    "url" => "URL",
                    "dataUri" => "data URI",
                    "base64" => "raw base64",
                    _ => "UUID",
                };
                format!("reference: {what}, {length} characters\n")
            }
            Step::UrlChecked { url, host, port } => format!(
                "[ok] URL: {url}\n     https, host \"{host}\" is a domain (not an IP literal), no credentials, port {port}\n"
            ),
            Step::Dns { host, source, answers } => {
                let mut s = format!("[..] DNS {host} ({source}): {} answer(s)\n", answers.len());
                for a in answers {
                    let mark = if a.allowed { "ok" } else { "!!" };
                    s.push_str(&format!("     [{mark}] {}\n", a.verdict));
                }
                s
            }
            Step::Request { method } => {
                format!("[..] {method} request (Accept-Encoding: identity, redirects not followed)\n")
            }
            Step::Response { method, remote, tls_verified, tls_peer_certificate_bytes, status, headers } => {
                let mut s = format!(
                    "[{}] {method} {status} from {}",
                    if *status == 200 { "ok" } else { "!!" },
                    remote.map(|r| r.to_string()).unwrap_or_else(|| "?".into())
                );
                if *tls_verified {
                    s.push_str(", TLS certificate verified");
                    if let Some(n) = tls_peer_certificate_bytes {
                        s.push_str(&format!(" ({n}-byte leaf certificate)"));
                    }
                }
                s.push('\n');
                for (k, v) in headers {
                    s.push_str(&format!("     {k}: {v}\n"));
                }
                s
            }
            Step::Progress { received, expected } => {
                if !self.progress {
                    return None;
                }
                let mut last = self.last_progress.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                if last.is_some_and(|t| now.duration_since(t).as_millis() < 100) && received < expected {
                    return None;
                }
                *last = Some(now);
                let frac = if *expected == 0 { 1.0 } else { *received as f64 / *expected as f64 };
                let filled = (frac * 30.0) as usize;
                format!(
                    "\r     [{}{}] {:>3.0}% {} / {}",
                    "#".repeat(filled.min(30)),
                    " ".repeat(30 - filled.min(30)),
                    frac * 100.0,
                    mb(*received),
                    mb(*expected)
                )
            }
            Step::BodyDone { received, expected, elapsed_ms } => {
                let clear = if self.progress { "\r\x1b[K" } else { "" };
                let mark = if received == expected { "ok" } else { "!!" };
                format!(
                    "{clear}[{mark}] body: {received} bytes received, Content-Length {expected}, {elapsed_ms} ms since the fetch started\n"
                )
            }
            Step::Decoded { declared, encoded_length, limit, decoded_bytes } => format!(
                "[ok] decoded: {} declared, {encoded_length} characters as sent (limit {}), {decoded_bytes} bytes\n",
                declared.as_deref().unwrap_or("no type"),
                mb(*limit)
            ),
            Step::Sniffed { format, declared, matches } => format!(
                "[{}] sniffed: {} {} {declared}\n",
                if *matches { "ok" } else { "!!" },
                format.unwrap_or("unrecognised bytes"),
                if *matches { "matches" } else { "does not match" }
            ),
            Step::Dimensions { width, height, max } => format!(
                "[{}] dimensions: {width}x{height} (each side 1..={max} px)\n",
                if *width == 0 || *height == 0 || width > max || height > max { "!!" } else { "ok" }
            ),
            Step::Aspect { ratio, min, max } => format!(
                "[{}] aspect ratio: {ratio:.4} (allowed {min} to {max})\n",
                if ratio < min || ratio > max { "!!" } else { "ok" }
            ),
        })
    }
}

impl Reporter for LineReporter {
    fn step(&self, step: &Step) {
        if self.json {
            if matches!(step, Step::Progress { .. }) {
                return; // per-chunk events would flood a JSON consumer
            }
            if let Ok(s) = serde_json::to_string(step) {
                self.send(format!("{s}\n"));
            }
        } else if let Some(s) = self.human(step) {
            self.send(s);
        }
    }
}

fn usage(out: &mut (dyn Write + Send), json: bool, msg: &str) -> i32 {
    if json {
        let v = serde_json::json!({"step": "result", "valid": false, "usageError": msg});
        let _ = writeln!(out, "{v}");
    } else {
        let _ = writeln!(out, "usage error: {msg}");
    }
    EXIT_USAGE
}

/// What the input is, after looking at it.
enum Input {
    Reference(String),
    File(std::path::PathBuf, String),
}

fn classify_input(input: &str, kind: AssetKind) -> Result<Input, String> {
    let t = input.trim();
    if t.is_empty() {
        return Err("nothing to check: give a URL, a data URI or a file path".into());
    }
    if crate::data_uri::is_data_uri(t) || t.contains("://") {
        return Ok(Input::Reference(t.to_string()));
    }
    let path = std::path::Path::new(t);
    if path.exists() {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        // A file is validated like a data URI of its sniffed type, so the data URI limit and
        // every content check apply exactly as the API would apply them.
        let media = crate::probe::sniff(&bytes)
            .and_then(|f| f.media_type_for(kind))
            .unwrap_or("application/octet-stream");
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        return Ok(Input::File(path.to_path_buf(), format!("data:{media};base64,{b64}")));
    }
    if uuid::Uuid::parse_str(t).is_ok() {
        return Err("a UUID names an upload on a running server; `assets check` cannot look it up. Check the original file instead".into());
    }
    if t.contains(':') {
        return Ok(Input::Reference(t.to_string())); // `http:...`, `ftp:...`: let the URL rules speak
    }
    if t.len() >= 16 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=\r\n".contains(&b)) {
        return Ok(Input::Reference(t.to_string()));
    }
    Err(format!("no such file: {t}"))
}

/// Runs `mediagate assets check` and returns the process exit status: [`EXIT_VALID`] (0),
/// [`EXIT_INVALID`] (1) or [`EXIT_USAGE`] (2).
///
/// `input` is a URL, a data URI, raw base64 or a local file path (read and validated as a data
/// URI of its sniffed type). Steps are written to `out` as they happen; with `json` each step
/// is one JSON object per line and the last line is `{"step":"result",...}`. A progress bar is
/// drawn during downloads when not in JSON mode and the process's stdout is a terminal.
pub async fn check_command(
    config: IntakeConfig,
    input: &str,
    kind: AssetKind,
    json: bool,
    out: &mut (dyn Write + Send),
) -> i32 {
    let input = match classify_input(input, kind) {
        Ok(i) => i,
        Err(msg) => return usage(out, json, &msg),
    };
    let intake = match Intake::new(config.clone()) {
        Ok(i) => i,
        Err(e) => return usage(out, json, &e.to_string()),
    };
    let reference = match &input {
        Input::Reference(r) => r.clone(),
        Input::File(path, uri) => {
            if !json {
                let _ = writeln!(out, "file: {} (checked as a data URI of its sniffed type)", path.display());
            }
            uri.clone()
        }
    };
    if !json {
        let _ = writeln!(out, "mediagate assets check (kind: {})", kind.as_str());
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let reporter = Arc::new(LineReporter {
        tx,
        json,
        progress: !json && std::io::stdout().is_terminal(),
        last_progress: Mutex::new(None),
    });
    let stored = NoStoredAssets;
    let req = AssetRequest {
        kind,
        param: ParamPath::key(CHECK_PARAMETER),
        aspect: None,
        account_id: 0,
        stored: &stored,
    };
    let fut = intake.resolve_reported(&reference, &req, reporter);
    tokio::pin!(fut);
    // Print lines as the intake produces them, on this task, until the intake is done.
    let result = loop {
        tokio::select! {
            biased;
            Some(line) = rx.recv() => {
                let _ = out.write_all(line.as_bytes());
                let _ = out.flush();
            }
            r = &mut fut => break r,
        }
    };
    while let Ok(line) = rx.try_recv() {
        let _ = out.write_all(line.as_bytes());
    }
    let code = print_result(out, json, &result, &config, kind);
    let _ = out.flush();
    code
}

fn print_result(
    out: &mut (dyn Write + Send),
    json: bool,
    result: &Result<crate::Asset, ApiError>,
    config: &IntakeConfig,
    kind: AssetKind,
) -> i32 {
    match result {
        Ok(a) => {
            if json {
                let v = serde_json::json!({
                    "step": "result", "valid": true, "mediaType": a.media_type,
                    "bytes": a.bytes.len(), "width": a.width, "height": a.height,
                });
                let _ = writeln!(out, "{v}");
            } else {
                let dims = match (a.width, a.height) {
                    (Some(w), Some(h)) => format!(", {w}x{h}"),
                    _ => String::new(),
                };
                let _ = writeln!(out, "VALID: {}{dims}, {} bytes", a.media_type, a.bytes.len());
            }
            EXIT_VALID
        }
        Err(e) => {
            let param =
                e.parameter.as_ref().and_then(|p| p.first()).map(|p| p.to_string()).unwrap_or_default();
            let h = hint(e.code, config, kind);
            if json {
                let v = serde_json::json!({
                    "step": "result", "valid": false,
                    "error": {"code": e.code.as_str(), "message": e.message, "parameter": param},
                    "hint": h,
                });
                let _ = writeln!(out, "{v}");
            } else {
                let _ = writeln!(
                    out,
                    "INVALID: the API would answer 400 with\n  code:      {}\n  message:   {}\n  parameter: {param} (the field that carried the asset)\n  hint:      {h}",
                    e.code, e.message
                );
            }
            EXIT_INVALID
        }
    }
}
