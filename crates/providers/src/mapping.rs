//! The one mapping from upstream failures into the error catalog, used by every adapter.
//!
//! | upstream | code | class |
//! |---|---|---|
//! | request timed out, 408, 504 | `timeoutProvider` | transient |
//! | 429 (not quota) | `providerRateLimitExceeded` + `Retry-After` | transient |
//! | 5xx, 529, connection refused/reset, unreadable reply | `providerError` | transient |
//! | content-policy refusal | `providerContentPolicyViolation` | request |
//! | other 4xx (400, 413, 422) | `invalidParameterValue` | request |
//! | 401, 403, quota exhausted, 404 (wrong URL/model), 3xx | `internalServerError`, operator message | provider |
//!
//! Client-visible messages are written here, never copied from the upstream: its body goes
//! only into [`ProviderError::detail`] (truncated) for the logs. An upstream's authentication
//! failure is about mediagate's own credentials, so it never reads as the client's key being
//! wrong.

use crate::ProviderError;
use mediagate_core::ErrorCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use std::time::{Duration, SystemTime};

/// Longest upstream body kept in a log detail, in bytes.
pub const DETAIL_MAX: usize = 512;

/// The first [`DETAIL_MAX`] bytes of an upstream body, lossily as text, for logs.
pub fn truncate(body: &[u8]) -> String {
    let cut = &body[..body.len().min(DETAIL_MAX)];
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if body.len() > DETAIL_MAX {
        s.push_str(&format!("… ({} bytes)", body.len()));
    }
    s
}

/// `Retry-After` as a duration: delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    parse_retry_after(headers.get(RETRY_AFTER)?.to_str().ok()?, SystemTime::now())
}

/// Parses a `Retry-After` value relative to `now`. A date in the past means "now" (zero).
pub fn parse_retry_after(v: &str, now: SystemTime) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // Fractional seconds are not in the RFC but some servers send them.
    if let Ok(secs) = v.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The operator-side error for rejected credentials.
pub fn credentials_rejected(provider: &str, status: u16, body: &[u8]) -> ProviderError {
    ProviderError::operator(
        "The provider rejected mediagate's credentials; the operator must fix the provider configuration. \
         Your API key is fine; retrying will not help until then.",
        format!("{provider}: HTTP {status} (credentials rejected): {}", truncate(body)),
    )
}

/// A request-timeout failure.
pub fn timed_out(provider: &str, what: impl std::fmt::Display) -> ProviderError {
    ProviderError::new(
        ErrorCode::TimeoutProvider,
        "The provider did not answer in time. Retry with backoff.",
        format!("{provider}: timed out: {what}"),
    )
}

/// A transient provider failure (5xx, broken reply).
pub fn failed(provider: &str, what: impl std::fmt::Display) -> ProviderError {
    ProviderError::new(
        ErrorCode::ProviderError,
        "The provider failed to process the task. Retry with backoff.",
        format!("{provider}: {what}"),
    )
}

/// A content-policy refusal.
pub fn content_policy(provider: &str, body: &[u8]) -> ProviderError {
    ProviderError::new(
        ErrorCode::ProviderContentPolicyViolation,
        "The provider refused this task under its content policy. Change the prompt or inputs; \
         retrying the same request will be refused again.",
        format!("{provider}: content policy: {}", truncate(body)),
    )
}

/// A request the provider refused as invalid.
pub fn invalid_request(provider: &str, status: u16, body: &[u8]) -> ProviderError {
    ProviderError::new(
        ErrorCode::InvalidParameterValue,
        format!(
            "The provider refused the task's parameters (HTTP {status}). Check them against the model's \
             documentation; retrying the same request will be refused again."
        ),
        format!("{provider}: HTTP {status}: {}", truncate(body)),
    )
}

/// A rate limit, carrying the provider's `Retry-After`.
pub fn rate_limited(provider: &str, retry: Option<Duration>, body: &[u8]) -> ProviderError {
    ProviderError::new(
        ErrorCode::ProviderRateLimitExceeded,
        "The provider is rate limiting mediagate. Retry with backoff.",
        format!("{provider}: HTTP 429 (retry after {retry:?}): {}", truncate(body)),
    )
    .with_retry_after(retry)
}

/// The provider account is out of quota or credits: the operator's problem, not the client's.
pub fn out_of_quota(provider: &str, body: &[u8]) -> ProviderError {
    ProviderError::operator(
        "mediagate's account at the provider is out of quota or credits; the operator must top it up. \
         Your own credits are not affected.",
        format!("{provider}: quota exhausted: {}", truncate(body)),
    )
}

/// Maps a non-success HTTP status. `policy` says whether the adapter recognised a
/// content-policy refusal in the body; `quota` whether it recognised quota exhaustion.
pub fn from_status(
    provider: &str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    policy: bool,
    quota: bool,
) -> ProviderError {
    if policy {
        return content_policy(provider, body);
    }
    if quota {
        return out_of_quota(provider, body);
    }
    match status {
        401 | 403 => credentials_rejected(provider, status, body),
        408 | 504 => timed_out(provider, format_args!("HTTP {status}: {}", truncate(body)))
            .with_retry_after(retry_after(headers)),
        429 => rate_limited(provider, retry_after(headers), body),
        // The upstream is up but asked to be left alone for a while (Cog's 409 busy, 503).
        409 | 500..=599 => failed(provider, format_args!("HTTP {status}: {}", truncate(body)))
            .with_retry_after(retry_after(headers)),
        400 | 413 | 422 => invalid_request(provider, status, body),
        300..=399 => ProviderError::operator(
            "The provider answered with a redirect, which mediagate does not follow; the operator must \
             fix the provider's base_url.",
            format!("{provider}: HTTP {status} to {:?}", headers.get("location")),
        ),
        _ => ProviderError::operator(
            "The provider refused the request as mediagate sent it; the operator must check the provider \
             configuration (base URL, model names).",
            format!("{provider}: HTTP {status}: {}", truncate(body)),
        ),
    }
}

/// Maps a transport failure (no HTTP status).
pub fn from_transport(provider: &str, e: &reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        return timed_out(provider, e);
    }
    if e.is_decode() {
        return failed(provider, format_args!("unreadable reply: {e}"));
    }
    if e.is_builder() {
        return ProviderError::operator(
            "mediagate could not build the request to the provider; the operator must check its base_url.",
            format!("{provider}: {e}"),
        );
    }
    // Connect, reset, closed, body errors: the network or the upstream is unwell.
    failed(provider, format_args!("transport: {e:#}"))
}

/// Builds the HTTP client every adapter uses: **no redirects, no retries, no proxy from the
/// environment**, one request deadline (`timeout`) and a connect deadline.
///
/// reqwest 0.12's default policy re-sends requests on HTTP/2 protocol NACKs; `retry::never()`
/// turns that off so the engine's dispatcher stays the only retry loop.
pub fn client(timeout: Duration, connect_timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("mediagate/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a client with rustls and no custom TLS configuration builds")
}

/// A stand-in image format from the first bytes of a file.
pub fn sniff(bytes: &[u8]) -> Option<mediagate_core::task::ImageFormat> {
    use mediagate_core::task::ImageFormat;
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageFormat::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageFormat::Jpg)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(ImageFormat::Webp)
    } else {
        None
    }
}

/// Turns image bytes from a provider into an [`Artifact`](crate::Artifact) in the format the
/// client asked for: passed through when the provider already produced it, re-encoded on the
/// blocking pool otherwise, through `decoder` (the header is judged before anything is decoded,
/// and the working memory comes out of the server's decode budget). Bytes that are no image,
/// or an image too large to decode, are a provider failure.
pub async fn conform(
    provider: &str,
    bytes: Vec<u8>,
    output: &mediagate_core::task::OutputOptions,
    seed: Option<u64>,
    decoder: &crate::decode::Decoder,
) -> Result<crate::Artifact, ProviderError> {
    let want = output.format;
    let Some(got) = sniff(&bytes) else {
        return Err(failed(
            provider,
            format_args!("output is not PNG, JPEG or WebP: {}", truncate(&bytes[..bytes.len().min(16)])),
        ));
    };
    let bytes = if got == want {
        bytes
    } else {
        let quality = output.quality;
        let decode_failed = |e: crate::decode::DecodeError| match e {
            crate::decode::DecodeError::Failed(_, d) => {
                failed(provider, format_args!("output does not decode: {d}"))
            }
            e => failed(provider, format_args!("output: {e}")),
        };
        let size = decoder.check(&bytes, "provider output").map_err(decode_failed)?;
        // The decoded picture, its RGB copy and an encoded output of at most that size.
        let _reserved = decoder
            .reserve(crate::decode::rgb_cost(&size) + u64::from(size.width) * u64::from(size.height) * 3)
            .await
            .map_err(decode_failed)?;
        let name = provider.to_string();
        let decoder = decoder.clone();
        tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ProviderError> {
            let img = decoder
                .decode_blocking(&bytes, "provider output")
                .map_err(|e| failed(&name, format_args!("output does not decode: {e:?}")))?;
            crate::encode::encode(&img.to_rgb8(), want, quality)
                .map_err(|e| failed(&name, format_args!("re-encoding: {e}")))
        })
        .await
        .map_err(|e| failed(provider, format_args!("re-encoding task: {e}")))??
    };
    Ok(crate::Artifact {
        bytes,
        content_type: want.content_type(),
        extension: want.extension(),
        seed,
        completion: None,
        fields: Default::default(),
    })
}

/// Largest upstream reply body read, in bytes (a few results of base64 images).
pub const BODY_MAX: usize = 256 * 1024 * 1024;

/// Reads a reply body up to `max` bytes; a longer body is a provider failure.
pub async fn read_body(
    provider: &str,
    mut resp: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, ProviderError> {
    if let Some(len) = resp.content_length()
        && len as usize > max
    {
        return Err(failed(provider, format_args!("reply of {len} bytes exceeds {max}")));
    }
    let mut out = Vec::with_capacity(resp.content_length().unwrap_or(0).min(max as u64) as usize);
    while let Some(chunk) = resp.chunk().await.map_err(|e| from_transport(provider, &e))? {
        if out.len() + chunk.len() > max {
            return Err(failed(provider, format_args!("reply exceeds {max} bytes")));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Sends a request and splits the outcome: `Ok((status, headers, body))` for any HTTP answer,
/// a mapped error for transport failures. Every adapter's task calls go through here, so this
/// is where they get the task's trace context (`traceparent`) when traces are on.
pub async fn send(
    provider: &str,
    req: reqwest::RequestBuilder,
) -> Result<(u16, HeaderMap, Vec<u8>), ProviderError> {
    let resp = crate::traces::propagate(req).send().await.map_err(|e| from_transport(provider, &e))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = read_body(provider, resp, BODY_MAX).await?;
    Ok((status, headers, body))
}

/// A provider's file for a task whose results are of `family`: audio and video kept as they are, typed by their
/// bytes; an SVG kept as it is; a raster checked and re-encoded to the format asked for
/// ([`conform`]).
pub async fn file_artifact(
    provider: &str,
    family: mediagate_core::task::Family,
    bytes: Vec<u8>,
    output: &mediagate_core::task::OutputOptions,
    seed: Option<u64>,
    decoder: &crate::decode::Decoder,
) -> Result<crate::Artifact, ProviderError> {
    use mediagate_assets::AssetKind;
    use mediagate_core::task::Family;
    let kind = match family {
        Family::Audio => Some(AssetKind::Audio),
        Family::Video => Some(AssetKind::Video),
        _ => None,
    };
    if let Some(kind) = kind {
        let media_type = mediagate_assets::probe::sniff(&bytes)
            .and_then(|f| f.media_type_for(kind))
            .ok_or_else(|| failed(provider, format_args!("the output is not a {} file", family.as_str())))?;
        let extension = mediagate_assets::content_type::extension_of(media_type);
        return Ok(crate::Artifact {
            bytes,
            content_type: media_type,
            extension,
            seed,
            completion: None,
            fields: Default::default(),
        });
    }
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(256)]).into_owned();
    if sniff(&bytes).is_none() && (head.contains("<svg") || head.starts_with("<?xml")) {
        return Ok(crate::Artifact {
            bytes,
            content_type: "image/svg+xml",
            extension: "svg",
            seed: None,
            completion: None,
            fields: Default::default(),
        });
    }
    conform(provider, bytes, output, seed, decoder).await
}
