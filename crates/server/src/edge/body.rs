//! Reading a request body into memory, bounded three ways: its size (`server.max_body_bytes`,
//! `413`), pauses between its chunks (the body-timeout layer, `504`), and, for a sender not yet
//! authenticated, a server-wide budget of bytes held for such senders
//! (`server.unauthenticated_body_budget_bytes`, `503` with `Retry-After` when spent). The budget
//! is what keeps anonymous clients from filling memory: a Runware body may carry its key inside,
//! so it has to be read before anyone knows who sent it, but all such bodies together stay under
//! one bound however many connections send them.

use axum::body::{Body, Bytes};
use http::HeaderMap;
use http_body_util::BodyExt;
use mediagate_core::{ApiError, ErrorCode};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of unauthenticated bodies held at once, server-wide.
#[derive(Clone)]
pub struct UnauthenticatedBudget(Arc<Semaphore>);

impl UnauthenticatedBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        UnauthenticatedBudget(Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))))
    }

    fn take(&self, held: &mut Option<OwnedSemaphorePermit>, bytes: usize) -> Result<(), ApiError> {
        let Ok(n) = u32::try_from(bytes) else { return Err(busy()) };
        let more = self.0.clone().try_acquire_many_owned(n).map_err(|_| busy())?;
        match held {
            Some(p) => p.merge(more),
            None => *held = Some(more),
        }
        Ok(())
    }
}

fn busy() -> ApiError {
    ApiError::new(
        ErrorCode::ServiceUnavailable,
        "The server holds as many unauthenticated request bodies as it allows \
         (server.unauthenticated_body_budget_bytes); retry shortly, or send the key in the \
         `Authorization: Bearer` header so the body is read after authentication.",
    )
    .with_retry_after(std::time::Duration::from_secs(1))
}

/// A body read into memory, with the budget it holds (released when this is dropped).
pub struct ReadBody {
    /// The bytes.
    pub bytes: Bytes,
    /// The unauthenticated budget this body holds, if it was read under one.
    pub held: Option<OwnedSemaphorePermit>,
}

/// Reads `body` whole, refusing it once it passes `limit` bytes (`hint` says what to do
/// instead) and, when `budget` is given, once the server's unauthenticated budget is spent.
pub async fn read(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    hint: &str,
    budget: Option<&UnauthenticatedBudget>,
) -> Result<ReadBody, ApiError> {
    let too_large = || {
        ApiError::new(ErrorCode::PayloadTooLarge, format!("The request body exceeds {limit} bytes. {hint}"))
    };
    let declared =
        headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let mut held = None;
    if let (Some(b), Some(len)) = (budget, declared) {
        b.take(&mut held, len)?;
    }
    let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            let timed_out =
                std::error::Error::source(&e).is_some_and(|s| s.is::<tower_http::timeout::TimeoutError>());
            if timed_out {
                ApiError::new(
                    ErrorCode::RequestTimeout,
                    "The request body paused longer than the server allows (server.body_timeout_secs); \
                     send it without pauses.",
                )
            } else {
                ApiError::new(ErrorCode::InvalidRequestBody, "The request body could not be read completely.")
            }
        })?;
        let Ok(chunk) = frame.into_data() else { continue };
        if buf.len() + chunk.len() > limit {
            return Err(too_large());
        }
        // A body longer than it declared (or with no length) takes budget as it arrives.
        if let Some(b) = budget
            && buf.len() + chunk.len() > declared.unwrap_or(0)
        {
            let beyond = (buf.len() + chunk.len()).saturating_sub(declared.unwrap_or(0).max(buf.len()));
            b.take(&mut held, beyond)?;
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(ReadBody { bytes: Bytes::from(buf), held })
}
