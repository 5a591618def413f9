//! The error catalog: every failure a client can see is one [`ErrorCode`].
//!
//! A code carries its wire name, HTTP status, retry class and a one-line meaning. The catalog is
//! the single place where these live; `docs/errors.md` and the served `/docs/errors` page are
//! generated from it ([`render_markdown`]) and a test fails when the checked-in file drifts.

use crate::param::Parameter;
use serde::Serialize;
use std::fmt;

macro_rules! catalog {
    ($( $(#[$doc:meta])* $variant:ident => $code:literal, $status:literal, $retry:literal, $meaning:literal; )*) => {
        /// A stable, documented error code. See the module docs.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* #[doc = $meaning] $variant, )*
        }

        impl ErrorCode {
            /// Every code, in catalog order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )* ];

            /// The wire name, e.g. `invalidApiKey`.
            pub const fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$variant => $code, )* }
            }

            /// The HTTP status a REST response carries when this is the deciding error.
            pub const fn http_status(self) -> u16 {
                match self { $( ErrorCode::$variant => $status, )* }
            }

            /// Whether retrying the same request unchanged may succeed (transient failure).
            pub const fn is_retryable(self) -> bool {
                match self { $( ErrorCode::$variant => $retry, )* }
            }

            /// One line saying what the code means.
            pub const fn meaning(self) -> &'static str {
                match self { $( ErrorCode::$variant => $meaning, )* }
            }
        }
    };
}

catalog! {
    // --- request envelope -------------------------------------------------------------------
    InvalidJson => "invalidJson", 400, false,
        "The request body is not valid JSON.";
    InvalidRequestBody => "invalidRequestBody", 400, false,
        "The request body must be a JSON array of task objects.";
    MissingTasks => "missingTasks", 400, false,
        "The task array is empty: send at least one task object.";
    UnsupportedContentType => "unsupportedContentType", 400, false,
        "The request must be sent with `Content-Type: application/json`.";
    PayloadTooLarge => "payloadTooLarge", 413, false,
        "The request body is larger than the server accepts.";
    RequestTimeout => "requestTimeout", 504, true,
        "The request (its headers, a pause in its body, or the whole request) took longer than the server's limits; send it again without pauses.";
    InvalidTaskObject => "invalidTaskObject", 400, false,
        "A task is not a JSON object with a string `taskType`.";
    UnknownTaskType => "unknownTaskType", 400, false,
        "The `taskType` is not one this server knows.";
    UnsupportedTaskType => "unsupportedTaskType", 400, false,
        "The `taskType` exists in the Runware API but this server does not serve it.";
    MissingTaskUUID => "missingTaskUUID", 400, false,
        "The task has no `taskUUID`; generate a UUID v4 per task.";
    InvalidTaskUUID => "invalidTaskUUID", 400, false,
        "The `taskUUID` is not a UUID.";
    ConflictTaskUUID => "conflictTaskUUID", 400, false,
        "The `taskUUID` was already used for a different task body; use a new UUID per task.";

    // --- authentication and authorization -----------------------------------------------------
    MissingApiKey => "missingApiKey", 401, false,
        "No API key was sent (neither `Authorization: Bearer` nor an `authentication` task).";
    InvalidApiKey => "invalidApiKey", 401, false,
        "The API key is malformed or unknown.";
    ApiKeyDisabled => "apiKeyDisabled", 401, false,
        "The API key has been disabled by an administrator.";
    ApiKeyRevoked => "apiKeyRevoked", 401, false,
        "The API key has been revoked and can never be used again.";
    AccountSuspended => "accountSuspended", 401, false,
        "The account that owns the API key is suspended.";
    InsufficientPermissions => "insufficientPermissions", 403, false,
        "The API key's scopes do not cover this task type, model or dialect.";
    InvalidAdminKey => "invalidAdminKey", 401, false,
        "The admin API needs an admin key (`admin_…`, made with `mediagate admin-keys create`); this one is missing, malformed, unknown or revoked.";

    // --- money ----------------------------------------------------------------------------------
    InsufficientCredits => "insufficientCredits", 402, false,
        "The account's credit balance cannot pay for this task.";
    StorageQuotaExceeded => "storageQuotaExceeded", 403, false,
        "The account keeps as many uploads (files or bytes) as its storage quota allows; delete some (mediaStorage delete) or wait for them to expire.";

    // --- parameters -----------------------------------------------------------------------------
    MissingParameter => "missingParameter", 400, false,
        "A required parameter is missing.";
    UnknownParameter => "unknownParameter", 400, false,
        "The task carries a parameter this task type does not accept.";
    InvalidParameterType => "invalidParameterType", 400, false,
        "A parameter has the wrong JSON type.";
    InvalidParameterValue => "invalidParameterValue", 400, false,
        "A parameter's value is outside its allowed range or set.";
    UnknownModel => "unknownModel", 400, false,
        "The `model` is not in this server's model catalog.";
    UnsupportedModelForTask => "unsupportedModelForTask", 400, false,
        "The `model` exists but serves another task type.";
    UnsupportedParameterForModel => "unsupportedParameterForModel", 400, false,
        "The task uses a parameter (LoRA, ControlNet, a seed image…) that the `model`'s providers do not act on.";

    // --- tasks and outputs ----------------------------------------------------------------------
    TaskNotFound => "taskNotFound", 404, false,
        "No task with this `taskUUID` exists for this account.";
    ResourceNotFound => "resourceNotFound", 404, false,
        "The account, key or other named resource of an admin request does not exist.";
    Conflict => "conflict", 409, false,
        "The admin request contradicts what exists: the name is taken, or the key is revoked and cannot be enabled.";
    OutputNotFound => "outputNotFound", 404, false,
        "The output does not exist or its time to live has expired.";
    TaskStillProcessing => "taskStillProcessing", 504, true,
        "A sync task outlived the sync wait; it keeps running: poll `getResponse` or resend the same task.";
    TaskInterrupted => "taskInterrupted", 500, true,
        "The server stopped while the task was running; it was not charged. Submit it again.";
    TaskCancelled => "taskCancelled", 400, false,
        "The task was cancelled before it finished (Runway `DELETE /v1/tasks/{id}`); it was not charged.";
    MediaNotFound => "mediaNotFound", 404, false,
        "No upload with this UUID exists for this account (it was deleted or expired).";
    SessionExpired => "sessionExpired", 404, false,
        "A WebSocket session could not be resumed whole: it expired, belongs to another account, or dropped results to stay within its bounds. The socket has a session all the same; fetch missing results with getResponse.";

    // --- assets (input images, video, audio) ----------------------------------------------------
    InvalidDataUri => "invalidDataUri", 400, false,
        "A data URI asset is malformed, not base64, or does not decode.";
    UnsupportedAssetType => "unsupportedAssetType", 400, false,
        "The asset's media type is missing or not accepted for this parameter.";
    InvalidAssetUrl => "invalidAssetUrl", 400, false,
        "An asset URL cannot be parsed, is too long, is not HTTPS, has credentials or points at an IP address.";
    AssetHostBlocked => "assetHostBlocked", 400, false,
        "An asset URL's host resolves to a private, loopback or otherwise non-public address.";
    AssetFetchFailed => "assetFetchFailed", 400, false,
        "Fetching an asset failed at the DNS, TCP, TLS or HTTP protocol level.";
    AssetHttpStatus => "assetHttpStatus", 400, false,
        "The asset server answered with a status other than 200 (redirects are not followed).";
    AssetTimeout => "assetTimeout", 400, false,
        "The asset took longer than the fetch deadline to download.";
    AssetContentType => "assetContentType", 400, false,
        "The asset server's Content-Type header is missing or not approved for this kind of asset.";
    AssetContentLength => "assetContentLength", 400, false,
        "The asset server did not send Content-Length, or the body did not match it.";
    AssetTooLarge => "assetTooLarge", 400, false,
        "The asset is larger than the limit for its kind and transport.";
    AssetContentMismatch => "assetContentMismatch", 400, false,
        "The asset's bytes are not of the media type it was declared as, or cannot be read.";
    AssetDimensions => "assetDimensions", 400, false,
        "The asset's width or height is zero or exceeds the maximum, or the image would exceed the maximum size once decoded.";
    AssetAspectRatio => "assetAspectRatio", 400, false,
        "The asset's width / height ratio is outside the bounds the model accepts.";
    AssetNotFound => "assetNotFound", 400, false,
        "An asset UUID does not name an upload or output of this account (or it expired).";

    // --- limits ---------------------------------------------------------------------------------
    RateLimitExceeded => "rateLimitExceeded", 429, true,
        "Too many requests; wait for the time in `Retry-After` and retry.";
    QueueFull => "queueFull", 429, true,
        "The account's queue for this model is full; wait for the time in `Retry-After` (an estimate) and retry.";
    DailyLimitExceeded => "dailyLimitExceeded", 429, true,
        "The account reached its daily task limit for this model (rolling 24 h); `Retry-After` says when a slot frees.";
    MonthlySpendLimitExceeded => "monthlySpendLimitExceeded", 402, false,
        "The task would take the account's spend this month (UTC) past its monthly spend cap.";

    // --- providers ------------------------------------------------------------------------------
    TimeoutProvider => "timeoutProvider", 504, true,
        "The provider did not finish in time; retry with backoff.";
    ProviderRateLimitExceeded => "providerRateLimitExceeded", 429, true,
        "The provider is rate limiting; retry with backoff.";
    ProviderError => "providerError", 502, true,
        "The provider failed to process the task; retry with backoff.";
    ProviderContentPolicyViolation => "providerContentPolicyViolation", 400, false,
        "The provider refused the task under its content policy.";

    // --- server ---------------------------------------------------------------------------------
    NotFound => "notFound", 404, false,
        "No such endpoint.";
    MethodNotAllowed => "methodNotAllowed", 405, false,
        "The endpoint does not accept this HTTP method.";
    InvalidApiVersion => "invalidApiVersion", 400, false,
        "The Runway dialect needs the `X-Runway-Version` header with a supported version (`2024-11-06`).";
    InternalServerError => "internalServerError", 500, true,
        "Something went wrong inside mediagate; retry with backoff and report the taskUUID.";
    ServiceUnavailable => "serviceUnavailable", 503, true,
        "The server is shutting down or overloaded; retry with backoff.";
    StorageFull => "storageFull", 503, true,
        "The server's storage is full; retry later. A task that could not be stored was not charged.";
}

impl ErrorCode {
    /// Looks a code up by its wire name.
    pub fn from_wire(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A failure a client will see, in canonical form. Dialects render it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The catalog code.
    pub code: ErrorCode,
    /// What went wrong and what to change, for people.
    pub message: String,
    /// The parameter(s) at fault, if any.
    pub parameter: Option<Parameter>,
    /// The task type as the client sent it, if known.
    pub task_type: Option<String>,
    /// The taskUUID as the client sent it, if known.
    pub task_uuid: Option<String>,
    /// How long to wait before retrying, in milliseconds (sent as `Retry-After` and
    /// `retry-after-ms` on REST). Milliseconds in 32 bits (up to 49 days) keep the error small.
    pub retry_after_ms: Option<std::num::NonZeroU32>,
}

impl ApiError {
    /// A new error with a code and message and nothing else filled in.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            parameter: None,
            task_type: None,
            task_uuid: None,
            retry_after_ms: None,
        }
    }

    /// Sets the parameter at fault.
    pub fn with_parameter(mut self, p: impl Into<Parameter>) -> Self {
        self.parameter = Some(p.into());
        self
    }

    /// Sets the task type, unless one is already set.
    pub fn with_task_type(mut self, t: impl Into<String>) -> Self {
        if self.task_type.is_none() {
            self.task_type = Some(t.into());
        }
        self
    }

    /// Sets the task UUID, unless one is already set.
    pub fn with_task_uuid(mut self, u: impl Into<String>) -> Self {
        if self.task_uuid.is_none() {
            self.task_uuid = Some(u.into());
        }
        self
    }

    /// Sets how long the client should wait before retrying (rounded up to a millisecond,
    /// at least 1 ms, at most 49 days).
    pub fn with_retry_after(mut self, wait: std::time::Duration) -> Self {
        let ms = wait.as_nanos().div_ceil(1_000_000).clamp(1, u128::from(u32::MAX)) as u32;
        self.retry_after_ms = std::num::NonZeroU32::new(ms);
        self
    }

    /// How long the client should wait before retrying, if the error says.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.retry_after_ms.map(|ms| std::time::Duration::from_millis(u64::from(ms.get())))
    }

    /// The HTTP status of this error's code.
    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }

    /// An internal error whose detail is logged, never shown.
    pub fn internal() -> Self {
        ApiError::new(
            ErrorCode::InternalServerError,
            "Internal error inside mediagate. Retry with backoff; if it persists, report the taskUUID.",
        )
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// Renders the catalog as the Markdown page checked in at `docs/errors.md`.
pub fn render_markdown() -> String {
    let mut out = String::from(
        "# Error codes\n\n\
         <!-- Generated from `mediagate-core`'s error catalog by `mediagate docs errors`; do not edit by hand. -->\n\n\
         Every failure mediagate reports is one of these codes. On the Runware dialect it is the `code` of an \
         object in the `errors` array; on REST the response's HTTP status is the status of the first error \
         when no task in the request succeeded. *Retryable* codes are transient: retry the same request with \
         exponential backoff and jitter. Never retry the others unchanged.\n\n\
         | code | HTTP | retryable | meaning |\n|---|---|---|---|\n",
    );
    for c in ErrorCode::ALL {
        out.push_str(&format!(
            "| <a id=\"{code}\"></a>`{code}` | {status} | {retry} | {meaning} |\n",
            code = c.as_str(),
            status = c.http_status(),
            retry = if c.is_retryable() { "yes" } else { "no" },
            meaning = c.meaning()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "duplicate code {}", c);
            assert_eq!(ErrorCode::from_wire(c.as_str()), Some(*c));
        }
        assert_eq!(ErrorCode::from_wire("noSuchCode"), None);
    }

    #[test]
    fn statuses_are_those_the_source_documents_name() {
        let allowed = [400, 401, 402, 403, 404, 405, 413, 429, 500, 502, 503, 504];
        // The admin API is mediagate's own, not a dialect: its conflicts may say 409.
        let admin_only = [ErrorCode::Conflict];
        for c in ErrorCode::ALL {
            assert!(allowed.contains(&c.http_status()) || admin_only.contains(c), "{c}");
            // 429 and 5xx are transient by the source document's rule, everything else is not.
            let transient = c.http_status() == 429 || c.http_status() >= 500;
            assert_eq!(c.is_retryable(), transient, "{c}");
        }
    }

    #[test]
    fn checked_in_docs_match_the_catalog() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/errors.md");
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == render_markdown(),
            "docs/errors.md is out of date: run `cargo run -- docs errors > docs/errors.md`"
        );
    }
}
