//! The one error type of the SDK.
//!
//! A failure is either an error object the server sent ([`ApiError`], every field kept, plus the
//! HTTP status on REST) or something that went wrong on the way ([`Error::Connect`],
//! [`Error::Timeout`], [`Error::Io`], [`Error::Protocol`], [`Error::Closed`], …). [`Error::is_retryable`] says
//! whether sending the same request again may succeed.

use mediagate_core::ErrorCode;
use serde_json::{Map, Value};
use std::fmt;
use std::time::Duration;

/// A boxed error source from a transport (kept opaque so transports can change).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error `code` as the server sent it: a catalog code when this SDK knows it, else the string.
///
/// Runware says its codes are still being standardised, so unknown codes are expected and kept
/// verbatim rather than collapsed into a generic bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Code {
    /// A code in mediagate's error catalog.
    Known(ErrorCode),
    /// Any other code, verbatim (empty when the server sent none).
    Other(String),
}

impl Code {
    /// Maps a wire name to a [`Code`].
    pub fn from_wire(name: &str) -> Code {
        match ErrorCode::from_wire(name) {
            Some(c) => Code::Known(c),
            None => Code::Other(name.to_string()),
        }
    }

    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            Code::Known(c) => c.as_str(),
            Code::Other(s) => s,
        }
    }

    /// The catalog code, if known.
    pub fn known(&self) -> Option<ErrorCode> {
        match self {
            Code::Known(c) => Some(*c),
            Code::Other(_) => None,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<ErrorCode> for Code {
    fn eq(&self, other: &ErrorCode) -> bool {
        self.known() == Some(*other)
    }
}

/// The `parameter` of an error object: one name, as Runware documents it and mediagate sends
/// (an error about several fields names the first here and all of them in its message), or
/// several, which older mediagate servers sent as an array (e.g. `["width", "height"]`) and
/// which is still read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parameter {
    /// One parameter, e.g. `width` or `inputs.referenceImages[0]`.
    One(String),
    /// Several parameters, sent as an array.
    Several(Vec<String>),
}

impl Parameter {
    /// Every parameter name, in order.
    pub fn names(&self) -> Vec<&str> {
        match self {
            Parameter::One(p) => vec![p.as_str()],
            Parameter::Several(v) => v.iter().map(String::as_str).collect(),
        }
    }

    /// Whether `name` is one of the parameters.
    pub fn contains(&self, name: &str) -> bool {
        self.names().contains(&name)
    }
}

impl fmt::Display for Parameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Parameter::One(p) => f.write_str(p),
            Parameter::Several(v) => write!(f, "[{}]", v.join(", ")),
        }
    }
}

/// One error object from an `errors` array, with every field it carried.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// `code`, mapped to the catalog where known.
    pub code: Code,
    /// `message`, for people (empty if the server sent none).
    pub message: String,
    /// `parameter`: the field(s) at fault, if any.
    pub parameter: Option<Parameter>,
    /// `taskType` of the failed task, if sent.
    pub task_type: Option<String>,
    /// `taskUUID` of the failed task, if sent. Log it: it is what support asks for.
    pub task_uuid: Option<String>,
    /// `documentation`: a link about this error, if sent.
    pub documentation: Option<String>,
    /// Any other field of the error object (e.g. legacy `type`), verbatim.
    pub extra: Map<String, Value>,
    /// The HTTP status of the response that carried it (REST); `None` for errors that did not
    /// arrive as an HTTP response (e.g. embedded in a `getResponse` item, or over WebSocket).
    pub http_status: Option<u16>,
}

impl ApiError {
    /// Reads an error object. Fields of an unexpected type are kept in [`ApiError::extra`].
    pub fn from_json(value: &Value, http_status: Option<u16>) -> ApiError {
        let mut extra = match value {
            Value::Object(m) => m.clone(),
            other => {
                // Not an object at all: keep it whole so nothing is lost.
                let mut m = Map::new();
                m.insert("value".into(), other.clone());
                m
            }
        };
        let mut take_str = |k: &str| match extra.get(k) {
            Some(Value::String(_)) => match extra.remove(k) {
                Some(Value::String(s)) => Some(s),
                _ => None,
            },
            _ => None,
        };
        let code = take_str("code");
        let message = take_str("message");
        let task_type = take_str("taskType");
        let task_uuid = take_str("taskUUID");
        let documentation = take_str("documentation");
        let parameter = match extra.get("parameter") {
            Some(Value::String(s)) => {
                let p = Parameter::One(s.clone());
                extra.remove("parameter");
                Some(p)
            }
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                let names: Vec<String> = items.iter().filter_map(Value::as_str).map(str::to_string).collect();
                extra.remove("parameter");
                Some(Parameter::Several(names))
            }
            _ => None,
        };
        ApiError {
            code: Code::from_wire(code.as_deref().unwrap_or("")),
            message: message.unwrap_or_default(),
            parameter,
            task_type,
            task_uuid,
            documentation,
            extra,
            http_status,
        }
    }

    /// The error object as JSON again, with every field it arrived with.
    pub fn to_json(&self) -> Value {
        let mut m = self.extra.clone();
        m.insert("code".into(), Value::String(self.code.as_str().into()));
        m.insert("message".into(), Value::String(self.message.clone()));
        match &self.parameter {
            None => {}
            Some(Parameter::One(p)) => {
                m.insert("parameter".into(), Value::String(p.clone()));
            }
            Some(Parameter::Several(v)) => {
                m.insert("parameter".into(), v.iter().cloned().map(Value::String).collect());
            }
        }
        for (k, v) in [
            ("taskType", &self.task_type),
            ("taskUUID", &self.task_uuid),
            ("documentation", &self.documentation),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), Value::String(v.clone()));
            }
        }
        Value::Object(m)
    }

    /// Whether sending the same request again may succeed.
    ///
    /// A code in the catalog decides by the catalog. An unknown code decides by the HTTP status
    /// (429 and 5xx are transient, as the Runware error documentation says for REST); without a
    /// status (WebSocket, embedded errors) an unknown code is not retried.
    pub fn is_retryable(&self) -> bool {
        match (&self.code, self.http_status) {
            (Code::Known(c), _) => c.is_retryable(),
            (Code::Other(_), Some(s)) => status_is_transient(s),
            (Code::Other(_), None) => false,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = if self.code.as_str().is_empty() { "(no code)" } else { self.code.as_str() };
        write!(f, "{code}: {}", self.message)?;
        let mut parts = Vec::new();
        if let Some(u) = &self.task_uuid {
            parts.push(format!("taskUUID {u}"));
        }
        if let Some(t) = &self.task_type {
            parts.push(format!("taskType {t}"));
        }
        if let Some(p) = &self.parameter {
            parts.push(format!("parameter {p}"));
        }
        if let Some(s) = self.http_status {
            parts.push(format!("HTTP {s}"));
        }
        if !parts.is_empty() {
            write!(f, " ({})", parts.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// Whether an HTTP status is transient by the REST rule: 429 and 5xx.
pub fn status_is_transient(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status)
}

/// Why a retry loop stopped while the failure was still retryable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GaveUp {
    /// The retry policy's maximum number of attempts was used.
    MaxAttempts,
    /// The next attempt (or the wait before it) would pass the total deadline.
    Deadline,
}

/// Everything that can go wrong in the SDK.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error object.
    #[error("{0}")]
    Api(Box<ApiError>),

    /// The server answered with an HTTP status but no Runware error envelope (e.g. a proxy's
    /// HTML 502 page). Retryable for 429 and 5xx.
    #[error("HTTP {status} without an error envelope: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of the body, for logs.
        body: String,
        /// The server's `retry-after-ms` / `Retry-After`, if sent.
        retry_after: Option<Duration>,
    },

    /// No connection could be made (DNS, refused, TLS handshake).
    #[error("cannot connect: {message}")]
    Connect {
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },

    /// No complete answer in time (a request timeout, or the retry deadline cut an attempt).
    /// The server may still have run the task; retrying with the same taskUUID is safe.
    #[error("timed out after {after:?}")]
    Timeout {
        /// How long the attempt waited.
        after: Duration,
    },

    /// The connection failed after it was made, e.g. closed before a complete response.
    /// The server may have run the task; retrying with the same taskUUID is safe.
    #[error("I/O error: {message}")]
    Io {
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },

    /// The server's answer does not follow the Runware dialect (not JSON, missing results, …).
    #[error("protocol error: {0}")]
    Protocol(String),

    /// The client was configured wrongly (bad base URL, invalid header value, …).
    #[error("configuration error: {0}")]
    Config(String),

    /// Polling an async task used its whole budget without a final result.
    #[error(
        "task {task_uuid} still not finished after {polls} polls in {elapsed:?} (last status: {last_status})"
    )]
    PollBudgetExceeded {
        /// The task polled.
        task_uuid: String,
        /// How many `getResponse` requests were made (the last one possibly cut short by the
        /// budget).
        polls: u32,
        /// Time spent.
        elapsed: Duration,
        /// The last status seen (`processing`, or `none` when no item came back).
        last_status: String,
    },

    /// The transport was closed by this client ([`crate::Client::close`], or the last client
    /// was dropped); nothing more can be sent on it.
    #[error("the transport is closed")]
    Closed,

    /// Retries stopped while the failure was still transient; `last` is the last failure.
    #[error("gave up after {attempts} attempts in {elapsed:?} ({reason:?}); last error: {last}")]
    Exhausted {
        /// Attempts made (the first try included).
        attempts: u32,
        /// Time from the first attempt.
        elapsed: Duration,
        /// Which bound stopped the retries.
        reason: GaveUp,
        /// The last failure.
        last: Box<Error>,
    },
}

impl Error {
    /// An [`Error::Api`] from an error object.
    pub fn api(e: ApiError) -> Error {
        Error::Api(Box::new(e))
    }

    /// Whether sending the same request again may succeed.
    ///
    /// Connect, timeout and I/O failures are retryable: every task carries a client-generated
    /// taskUUID, and the server answers a replay of the identical body with the stored result,
    /// so a retry never runs or charges a task twice. [`Error::Exhausted`] answers for its last
    /// failure.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Api(e) => e.is_retryable(),
            Error::Status { status, .. } => status_is_transient(*status),
            Error::Connect { .. } | Error::Timeout { .. } | Error::Io { .. } => true,
            Error::Protocol(_) | Error::Config(_) | Error::PollBudgetExceeded { .. } | Error::Closed => false,
            Error::Exhausted { last, .. } => last.is_retryable(),
        }
    }

    /// The server's error object, looking through [`Error::Exhausted`].
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            Error::Exhausted { last, .. } => last.api_error(),
            _ => None,
        }
    }

    /// The catalog code of the server's error, if any and known.
    pub fn code(&self) -> Option<ErrorCode> {
        self.api_error().and_then(|e| e.code.known())
    }

    /// The HTTP status the failure arrived with, if any.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::Api(e) => e.http_status,
            Error::Status { status, .. } => Some(*status),
            Error::Exhausted { last, .. } => last.http_status(),
            _ => None,
        }
    }

    /// How long the server asked to wait before a retry, when the failure carried a hint.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A copy for another waiter of the same failure (error sources, which cannot be cloned, are
    /// left out; their text is already in the message).
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Api(e) => Error::Api(e.clone()),
            Error::Status { status, body, retry_after } => {
                Error::Status { status: *status, body: body.clone(), retry_after: *retry_after }
            }
            Error::Connect { message, .. } => Error::Connect { message: message.clone(), source: None },
            Error::Timeout { after } => Error::Timeout { after: *after },
            Error::Io { message, .. } => Error::Io { message: message.clone(), source: None },
            Error::Protocol(m) => Error::Protocol(m.clone()),
            Error::Config(m) => Error::Config(m.clone()),
            Error::PollBudgetExceeded { task_uuid, polls, elapsed, last_status } => {
                Error::PollBudgetExceeded {
                    task_uuid: task_uuid.clone(),
                    polls: *polls,
                    elapsed: *elapsed,
                    last_status: last_status.clone(),
                }
            }
            Error::Closed => Error::Closed,
            Error::Exhausted { attempts, elapsed, reason, last } => Error::Exhausted {
                attempts: *attempts,
                elapsed: *elapsed,
                reason: *reason,
                last: Box::new(last.duplicate()),
            },
        }
    }

    /// The failure without the [`Error::Exhausted`] wrapper.
    pub fn root(&self) -> &Error {
        match self {
            Error::Exhausted { last, .. } => last.root(),
            e => e,
        }
    }
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Error::api(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_field_is_kept_and_unknown_codes_stay_strings() {
        let v = json!({
            "code": "someFutureCode", "message": "m", "parameter": ["width", "height"],
            "taskType": "imageInference", "taskUUID": "u-1", "documentation": "https://d", "type": "string"
        });
        let e = ApiError::from_json(&v, Some(503));
        assert_eq!(e.code, Code::Other("someFutureCode".into()));
        assert_eq!(e.parameter, Some(Parameter::Several(vec!["width".into(), "height".into()])));
        assert_eq!(e.task_uuid.as_deref(), Some("u-1"));
        assert_eq!(e.documentation.as_deref(), Some("https://d"));
        assert_eq!(e.extra.get("type"), Some(&json!("string")));
        assert_eq!(e.to_json(), v, "round trip keeps every field");
        assert!(e.is_retryable(), "unknown code, HTTP 503: transient by status");
        assert!(!ApiError::from_json(&v, Some(400)).is_retryable());
        assert!(!ApiError::from_json(&v, None).is_retryable());
    }

    #[test]
    fn known_codes_follow_the_catalog() {
        let e = ApiError::from_json(&json!({"code": "timeoutProvider", "message": "slow"}), None);
        assert_eq!(e.code, ErrorCode::TimeoutProvider);
        assert!(e.is_retryable());
        let e = ApiError::from_json(&json!({"code": "invalidApiKey", "message": "no"}), Some(500));
        assert!(!e.is_retryable(), "the catalog wins over the status for known codes");
    }

    #[test]
    fn display_logs_code_message_and_task_uuid() {
        let e = ApiError::from_json(
            &json!({"code": "invalidParameterValue", "message": "width is odd", "parameter": "width",
                    "taskUUID": "abc", "taskType": "imageInference"}),
            Some(400),
        );
        let s = Error::api(e).to_string();
        for part in ["invalidParameterValue", "width is odd", "taskUUID abc", "parameter width", "HTTP 400"] {
            assert!(s.contains(part), "{s} lacks {part}");
        }
    }

    #[test]
    fn odd_shapes_are_kept_not_dropped() {
        let e = ApiError::from_json(&json!({"code": 7, "message": "x", "parameter": {"a": 1}}), None);
        assert_eq!(e.code, Code::Other(String::new()));
        assert_eq!(e.extra.get("code"), Some(&json!(7)));
        assert_eq!(e.extra.get("parameter"), Some(&json!({"a": 1})));
    }

    #[test]
    fn transport_errors_are_distinct_and_retryable() {
        assert!(Error::Timeout { after: Duration::from_secs(1) }.is_retryable());
        assert!(Error::Connect { message: "refused".into(), source: None }.is_retryable());
        assert!(Error::Io { message: "reset".into(), source: None }.is_retryable());
        assert!(!Error::Protocol("x".into()).is_retryable());
        assert!(!Error::Closed.is_retryable());
        assert!(Error::Status { status: 502, body: String::new(), retry_after: None }.is_retryable());
        assert!(!Error::Status { status: 404, body: String::new(), retry_after: None }.is_retryable());
    }
}
