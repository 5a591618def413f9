//! Webhooks: one POST per result to the task's `webhookURL`, signed Standard-Webhooks style.
//!
//! Each delivery is recorded with the task's end (same transaction), so a restart resumes
//! deliveries not yet made. Every attempt is recorded. Retries back off from
//! `webhooks.initial_delay_ms` doubling to `webhooks.max_delay_ms`, with jitter, up to
//! `webhooks.max_attempts`. The HTTP client is the asset intake's: same SSRF rules (public
//! addresses only, checked on the address connected to), no redirects, no proxy.
//!
//! Headers: `webhook-id` (stable across retries: de-duplicate on it), `webhook-timestamp`
//! (Unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`
//! where the key is the base64-decoded part of the account's `whsec_…` secret.

use crate::{Delivered, Engine};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use mediagate_core::ApiError;
use mediagate_store::{NewWebhook, WebhookAttempt, WebhookDelivery};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// Webhook options (`[webhooks]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Attempts per delivery, the first included.
    pub max_attempts: u32,
    /// Delay before the second attempt, in ms; doubles after each failure.
    pub initial_delay_ms: u64,
    /// Longest delay between attempts, in ms.
    pub max_delay_ms: u64,
    /// How long one attempt may take, in ms.
    pub timeout_ms: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig { max_attempts: 8, initial_delay_ms: 250, max_delay_ms: 8000, timeout_ms: 5000 }
    }
}

/// Renders a task's results (or error) as a dialect's flat webhook bodies.
pub trait WebhookRenderer: Send + Sync {
    /// One body per result.
    fn results(&self, task_type: &str, task_uuid: &str, delivered: &Delivered) -> Vec<Value>;
    /// The body for a failed task.
    fn error(&self, error: &ApiError) -> Value;
}

/// A fresh signing secret: `whsec_` and 32 random bytes in base64.
pub fn new_secret() -> String {
    format!("whsec_{}", B64.encode(rand::random::<[u8; 32]>()))
}

/// The `webhook-signature` value for a body.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let key = B64.decode(secret.trim_start_matches("whsec_")).unwrap_or_else(|_| secret.as_bytes().to_vec());
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// The delay after failed attempt `n` (1-based): doubling from the initial delay to the cap,
/// then "equal jitter" (half fixed, half random) so retries from many tasks spread out.
pub fn backoff(cfg: &WebhooksConfig, n: u32) -> Duration {
    let exp = cfg.initial_delay_ms.saturating_mul(1u64 << (n.saturating_sub(1)).min(30));
    let d = exp.min(cfg.max_delay_ms);
    Duration::from_millis(d / 2 + rand::random_range(0..=d / 2))
}

impl Engine {
    /// Sets how webhook bodies are rendered for tasks of `dialect`.
    pub fn set_webhook_renderer(&self, dialect: mediagate_core::Dialect, renderer: Arc<dyn WebhookRenderer>) {
        self.renderers.write().insert(dialect, renderer);
    }

    /// The account's signing secret, created on first use; `rotate` replaces it.
    pub async fn webhook_secret(&self, account_id: i64, rotate: bool) -> Result<String, ApiError> {
        self.store.webhook_secret(account_id, new_secret(), rotate).await.map_err(|e| {
            tracing::error!(error = %e, "webhook secret");
            ApiError::internal()
        })
    }

    /// Deliveries (with attempts) of a task of this account.
    pub async fn webhook_deliveries(
        &self,
        ctx: &crate::AuthContext,
        task_uuid: uuid::Uuid,
    ) -> Result<Vec<WebhookDelivery>, ApiError> {
        // Reading a task's deliveries is reading the task: the key needs that task's scopes.
        if let Some(rec) =
            self.store.get_task(ctx.account_id, task_uuid).await.map_err(|_| ApiError::internal())?
        {
            self.authorize_record(ctx, &rec)?;
        }
        self.store.webhook_deliveries(ctx.account_id, task_uuid).await.map_err(|_| ApiError::internal())
    }

    /// The bodies to deliver for a finished task.
    pub(crate) async fn webhook_bodies(
        &self,
        dialect: mediagate_core::Dialect,
        task_type: &str,
        task_uuid: uuid::Uuid,
        url: &str,
        outcome: Result<&Delivered, &ApiError>,
    ) -> Vec<NewWebhook> {
        let Some(renderer) = self.renderers.read().get(&dialect).cloned() else {
            tracing::warn!(%dialect, "no webhook renderer for this dialect; webhooks skipped");
            return vec![];
        };
        let bodies = match outcome {
            Ok(d) => renderer.results(task_type, &task_uuid.to_string(), d),
            Err(e) => vec![renderer.error(e)],
        };
        bodies
            .into_iter()
            .map(|b| NewWebhook {
                webhook_id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
                url: url.to_string(),
                payload: b.to_string(),
            })
            .collect()
    }

    /// Starts delivering in the background. With traces on, the delivery is a client span in the
    /// trace of the span it is started from (the task's; none for deliveries resumed at start-up),
    /// and each attempt carries that trace's `traceparent`. Its retries may take minutes: the
    /// span is not the task span's child in-process, which would hold the task's (and its
    /// request's) span back from export until the last retry.
    pub(crate) fn spawn_webhook(self: &Arc<Self>, d: WebhookDelivery) {
        let span = if crate::traces::enabled() {
            let span = tracing::info_span!(
                parent: None,
                "webhook.deliver",
                otel.kind = "client",
                otel.status_code = tracing::field::Empty,
                webhook_id = %d.webhook_id,
                task_uuid = %d.task_uuid,
                attempts = tracing::field::Empty,
                outcome = tracing::field::Empty,
            );
            crate::traces::continue_current(&span);
            span
        } else {
            tracing::Span::none()
        };
        tokio::spawn(self.clone().deliver_webhook(d).instrument(span));
    }

    /// Resumes deliveries a stop interrupted. Call once at start-up.
    pub async fn resume_webhooks(self: &Arc<Self>) -> Result<usize, mediagate_store::StoreError> {
        let pending = self.store.pending_webhooks().await?;
        let n = pending.len();
        for d in pending {
            self.spawn_webhook(d);
        }
        if n > 0 {
            tracing::info!(count = n, "resumed webhook deliveries");
        }
        Ok(n)
    }

    async fn deliver_webhook(self: Arc<Self>, d: WebhookDelivery) {
        let cfg = self.config.webhooks.clone();
        let secret = match self.webhook_secret(d.account_id, false).await {
            Ok(s) => s,
            Err(_) => return,
        };
        let first = d.attempts.len() as u32 + 1;
        for attempt in first..=cfg.max_attempts.max(1) {
            let ts = mediagate_store::now_ms() / 1000;
            let t0 = Instant::now();
            let post = self.intake.http_client().post(&d.url);
            let sent = crate::traces::propagate(post)
                .header("content-type", "application/json")
                .header("webhook-id", &d.webhook_id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sign(&secret, &d.webhook_id, ts, &d.payload))
                .timeout(Duration::from_millis(cfg.timeout_ms))
                .body(d.payload.clone())
                .send()
                .await;
            let (status_code, error) = match sent {
                Ok(r) if r.status().is_success() => (Some(r.status().as_u16()), None),
                Ok(r) => (
                    Some(r.status().as_u16()),
                    Some(format!("the receiver answered HTTP {}", r.status().as_u16())),
                ),
                Err(e) => (None, Some(describe(&e))),
            };
            let ok = error.is_none();
            let last = attempt >= cfg.max_attempts;
            let done = if ok {
                Some("delivered")
            } else if last {
                Some("failed")
            } else {
                None
            };
            let record = WebhookAttempt {
                attempt,
                at: mediagate_store::now_ms(),
                status_code,
                error: error.clone(),
                duration_ms: t0.elapsed().as_millis() as u64,
            };
            // Counted before it is recorded, so that whoever sees the record sees the count.
            if done.is_some() {
                self.metrics().webhook_ended(ok);
            }
            if let Err(e) = self.store.record_webhook_attempt(&d.webhook_id, record, done).await {
                tracing::warn!(error = %e, "recording a webhook attempt failed");
            }
            if let Some(outcome) = done {
                if crate::traces::enabled() {
                    let span = tracing::Span::current();
                    span.record("attempts", attempt);
                    span.record("outcome", outcome);
                    if !ok {
                        span.record("otel.status_code", "error");
                    }
                }
                tracing::info!(webhook_id = %d.webhook_id, task_uuid = %d.task_uuid, attempt, delivered = ok, "webhook delivery ended");
                return;
            }
            tracing::debug!(webhook_id = %d.webhook_id, attempt, error = ?error, "webhook attempt failed; retrying");
            tokio::time::sleep(backoff(&cfg, attempt)).await;
        }
    }
}

/// A client-safe description of why a POST failed (the receiver's address policy included).
fn describe(e: &reqwest::Error) -> String {
    let mut msg = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_reference_vector() {
        // The example from the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(sign(secret, id, 1614265330, body), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter() {
        let cfg = WebhooksConfig::default();
        for (n, full) in [(1u32, 250u64), (2, 500), (3, 1000), (6, 8000), (20, 8000)] {
            for _ in 0..50 {
                let d = backoff(&cfg, n).as_millis() as u64;
                assert!(d >= full / 2 && d <= full, "attempt {n}: {d} ms");
            }
        }
    }
}
