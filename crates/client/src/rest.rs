//! The REST transport: `POST {base}/v1` with the task array as JSON, over reqwest.
//!
//! The API key goes in `Authorization: Bearer`, except for [`Transport::authenticate`], which
//! sends the `authentication` task Runware defines. Replies in the Runware envelope are returned
//! whatever their status; the HTTP status and the `retry-after-ms` / `Retry-After` hint travel
//! with them so the retry layer can decide by status, as the Runware docs say for REST.

use crate::ApiKey;
use crate::error::{BoxError, Error};
use crate::retry::parse_retry_after;
use crate::transport::{Envelope, Transport};
use async_trait::async_trait;
use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use serde_json::Value;
use std::fmt;
use std::time::{Duration, SystemTime};

/// The REST transport.
#[derive(Clone)]
pub struct RestTransport {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    api_key: ApiKey,
    request_timeout: Duration,
}

impl fmt::Debug for RestTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestTransport")
            .field("endpoint", &self.endpoint.as_str())
            .field("api_key", &self.api_key)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// Connection settings of the REST transport.
#[derive(Debug, Clone)]
pub struct RestOptions {
    /// Limit for establishing a connection.
    pub connect_timeout: Duration,
    /// Limit for one request, from sending to the complete reply.
    pub request_timeout: Duration,
    /// `User-Agent`.
    pub user_agent: String,
}

impl Default for RestOptions {
    fn default() -> Self {
        RestOptions {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            user_agent: concat!("mediagate-client/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// `http://host:port` → `http://host:port/v1`; a URL already ending in `/v1` is kept.
pub fn endpoint(base_url: &str) -> Result<reqwest::Url, Error> {
    let trimmed = base_url.trim().trim_end_matches('/');
    let full = if trimmed.ends_with("/v1") { trimmed.to_string() } else { format!("{trimmed}/v1") };
    let url = reqwest::Url::parse(&full)
        .map_err(|e| Error::Config(format!("invalid base URL '{base_url}': {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::Config(format!("base URL '{base_url}' must be http or https")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Config("the base URL must not carry credentials; set the API key instead".into()));
    }
    Ok(url)
}

impl RestTransport {
    /// A transport posting to `base_url` (with `/v1` appended unless present).
    pub fn new(base_url: &str, api_key: ApiKey, options: RestOptions) -> Result<RestTransport, Error> {
        let endpoint = endpoint(base_url)?;
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .user_agent(options.user_agent)
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(RestTransport { http, endpoint, api_key, request_timeout: options.request_timeout })
    }

    /// The URL tasks are posted to.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    async fn post(&self, body: Bytes, bearer: bool) -> Result<Envelope, Error> {
        let mut req =
            self.http.post(self.endpoint.clone()).header(CONTENT_TYPE, "application/json").body(body);
        if bearer {
            let mut v =
                HeaderValue::from_str(&format!("Bearer {}", self.api_key.expose())).map_err(|_| {
                    Error::Config("the API key contains characters not allowed in a header".into())
                })?;
            v.set_sensitive(true);
            req = req.header(AUTHORIZATION, v);
        }
        let resp = req.send().await.map_err(|e| self.map_err(e))?;
        let status = resp.status().as_u16();
        let retry_after = retry_after(resp.headers());
        let bytes = resp.bytes().await.map_err(|e| self.map_err(e))?;
        let parsed = serde_json::from_slice::<Value>(&bytes).ok();
        match parsed.and_then(|v| Envelope::from_json(v, Some(status), retry_after)) {
            Some(env) => Ok(env),
            None if (200..300).contains(&status) => Err(Error::Protocol(format!(
                "HTTP {status} reply is not a Runware envelope: {}",
                snippet(&bytes)
            ))),
            None => Err(Error::Status { status, body: snippet(&bytes), retry_after }),
        }
    }

    fn map_err(&self, e: reqwest::Error) -> Error {
        let message = chain(&e);
        if e.is_connect() {
            Error::Connect { message, source: Some(Box::new(e) as BoxError) }
        } else if e.is_timeout() {
            Error::Timeout { after: self.request_timeout }
        } else if e.is_builder() {
            Error::Config(message)
        } else {
            Error::Io { message, source: Some(Box::new(e)) }
        }
    }
}

#[async_trait]
impl Transport for RestTransport {
    async fn send(&self, body: Bytes) -> Result<Envelope, Error> {
        self.post(body, true).await
    }

    async fn authenticate(&self) -> Result<Envelope, Error> {
        let body = serde_json::to_vec(&serde_json::json!([
            {"taskType": "authentication", "apiKey": self.api_key.expose()}
        ]))
        .map_err(|e| Error::Protocol(e.to_string()))?;
        self.post(Bytes::from(body), false).await
    }

    fn name(&self) -> &'static str {
        "rest"
    }
}

fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
    parse_retry_after(
        get("retry-after-ms"),
        h.get(RETRY_AFTER).and_then(|v| v.to_str().ok()),
        SystemTime::now(),
    )
}

/// The error with its sources, e.g. "error sending request: connection closed before message
/// completed", so logs say what actually happened.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

fn snippet(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let mut out: String = s.chars().take(200).collect();
    if s.chars().count() > 200 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(endpoint("http://127.0.0.1:8800").unwrap().as_str(), "http://127.0.0.1:8800/v1");
        assert_eq!(endpoint("https://api.runware.ai/v1/").unwrap().as_str(), "https://api.runware.ai/v1");
        assert!(endpoint("ftp://x").is_err());
        assert!(endpoint("not a url").is_err());
        assert!(endpoint("http://user:pw@host").is_err());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let t =
            RestTransport::new("http://127.0.0.1:1", ApiKey::new("key_supersecret"), RestOptions::default())
                .unwrap();
        let d = format!("{t:?}");
        assert!(!d.contains("supersecret"), "{d}");
    }
}
