//! The transport seam: how a task array reaches the server and how its reply comes back.
//!
//! The [`crate::Client`] API (typed tasks, batches, retries, polling) sits above this trait, so
//! every transport gets all of it unchanged. Two implementations: [`crate::rest::RestTransport`]
//! (`POST /v1`) and [`crate::ws::WsTransport`] (one WebSocket: `authenticate` returns the
//! socket's authentication reply with its `connectionSessionUUID`, `send` writes the body as a
//! text frame and gathers the frames carrying the sent taskUUIDs into one [`Envelope`] with
//! `http_status: None`, so retry decisions use error codes, as the Runware docs say for
//! WebSocket).

use crate::error::{ApiError, Error};
use async_trait::async_trait;
use bytes::Bytes;
use serde_json::Value;
use std::fmt::Debug;
use std::time::Duration;

/// The server's reply to one task array, before it is split per task.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// `data` items (an object sent where an array belongs is wrapped, as some servers do).
    pub data: Vec<Value>,
    /// `errors` objects, as sent.
    pub errors: Vec<Value>,
    /// The HTTP status (REST); `None` on transports without one.
    pub http_status: Option<u16>,
    /// How long the server asked the client to wait before retrying (`retry-after-ms` or
    /// `Retry-After`), if it did.
    pub retry_after: Option<Duration>,
}

impl Envelope {
    /// Reads `{"data": [...], "errors": [...]}`. `None` if the value is not such an object.
    pub fn from_json(v: Value, http_status: Option<u16>, retry_after: Option<Duration>) -> Option<Envelope> {
        let Value::Object(mut m) = v else { return None };
        if !m.contains_key("data") && !m.contains_key("errors") {
            return None;
        }
        let list = |v: Option<Value>| match v {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a,
            Some(other) => vec![other],
        };
        Some(Envelope {
            data: list(m.remove("data")),
            errors: list(m.remove("errors")),
            http_status,
            retry_after,
        })
    }

    /// The error objects as [`ApiError`]s, each with this reply's HTTP status.
    pub fn api_errors(&self) -> Vec<ApiError> {
        self.errors.iter().map(|e| ApiError::from_json(e, self.http_status)).collect()
    }

    /// Whether the reply as a whole is a transient failure worth retrying unchanged.
    ///
    /// REST decides by HTTP status (429 and 5xx), as the Runware error documentation says.
    /// Without a status (WebSocket), the reply is transient when it has no data and every error
    /// code is retryable.
    pub fn is_transient_failure(&self) -> bool {
        match self.http_status {
            Some(s) => crate::error::status_is_transient(s),
            None => {
                self.data.is_empty()
                    && !self.errors.is_empty()
                    && self.api_errors().iter().all(ApiError::is_retryable)
            }
        }
    }
}

/// What a successful `authentication` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// `connectionSessionUUID` (WebSocket sessions; REST has none).
    pub connection_session_uuid: Option<String>,
}

/// Carries task arrays to a Runware-dialect server. Implementations handle authentication
/// and map their failures to the transport variants of [`Error`].
#[async_trait]
pub trait Transport: Send + Sync + Debug {
    /// Sends one serialized task array and returns the reply. Retries resend the same bytes,
    /// so an implementation must send `body` exactly as given.
    ///
    /// `Ok` for any reply in the Runware envelope, whatever its status; `Err` only when there
    /// is no such reply (connection failures, timeouts, malformed answers).
    async fn send(&self, body: Bytes) -> Result<Envelope, Error>;

    /// Authenticates with the transport's API key using the `authentication` task.
    async fn authenticate(&self) -> Result<Envelope, Error>;

    /// A short name for logs, e.g. `rest`.
    fn name(&self) -> &'static str;

    /// Releases the transport's connections (a WebSocket sends its close frame). Later calls
    /// may fail with [`Error::Closed`]. The default does nothing (REST holds no session).
    async fn close(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelopes_accept_objects_for_arrays_and_decide_transience() {
        let e = Envelope::from_json(json!({"data": {"taskType": "ping"}}), Some(200), None).unwrap();
        assert_eq!(e.data.len(), 1);
        assert!(!e.is_transient_failure());
        assert!(Envelope::from_json(json!({"hello": 1}), Some(200), None).is_none());
        let e = Envelope::from_json(json!({"errors": [{"code": "x"}]}), Some(503), None).unwrap();
        assert!(e.is_transient_failure());
        let ws = |code: &str| {
            Envelope::from_json(json!({"errors": [{"code": code}]}), None, None)
                .unwrap()
                .is_transient_failure()
        };
        assert!(ws("timeoutProvider"));
        assert!(!ws("invalidApiKey"));
    }
}
