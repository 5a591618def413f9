//! Authentication: API key → account, with a short-lived cache in front of the store.
//!
//! The format is checked before any lookup, so malformed keys never reach the store. Results,
//! refusals included, are cached for `auth.cache_ttl_ms`: a flood of requests with one bad key
//! costs one lookup per TTL. Changes made through this process's engine invalidate the cache
//! at once; the CLI, a separate process, is seen within the TTL.

use crate::keys;
use crate::limits::rate::{KeyedGcra, Rate};
use mediagate_core::{ApiError, ErrorCode, ParamPath};
use mediagate_store::{AccountStatus, KeyStatus, Store};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Who is calling: the outcome of a successful authentication.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthContext {
    /// The account's id.
    pub account_id: i64,
    /// The account's name.
    pub account_name: String,
    /// The key's id.
    pub key_id: i64,
    /// The key's scopes; empty means unrestricted.
    pub scopes: Vec<String>,
}

type Cached = (Instant, Result<Arc<AuthContext>, ApiError>);

/// Above this many cached entries the cache is cleared rather than grown.
const MAX_CACHED: usize = 100_000;

/// Resolves API keys.
pub struct Authenticator {
    store: Arc<dyn Store>,
    ttl: Duration,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
    failures: KeyedGcra<IpAddr>,
    failure_rate: Rate,
}

fn auth_error(code: ErrorCode, message: String) -> ApiError {
    ApiError::new(code, message).with_parameter(ParamPath::key("apiKey")).with_task_type("authentication")
}

impl Authenticator {
    /// An authenticator over `store` caching results for `ttl`.
    pub fn new(store: Arc<dyn Store>, ttl: Duration) -> Self {
        Authenticator {
            store,
            ttl,
            cache: Mutex::new(HashMap::new()),
            failures: KeyedGcra::default(),
            failure_rate: Rate { per_sec: 0.0, burst: 0 },
        }
    }

    /// Throttles client addresses that keep failing authentication: past `rate`, their next
    /// failed attempts (malformed keys before any lookup) are answered 429 instead of 401; a
    /// valid key still authenticates.
    pub fn with_failure_throttle(mut self, rate: Rate) -> Self {
        self.failure_rate = rate;
        self
    }

    /// Refuses an address that failed too often lately (429 with the wait); changes nothing.
    pub fn check_client(&self, client: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(ip) = client else { return Ok(()) };
        self.failures.peek(Instant::now(), &ip, self.failure_rate).map_err(|wait| {
            ApiError::new(
                ErrorCode::RateLimitExceeded,
                format!(
                    "Too many failed authentications from this address. Retry in {:.3} s (Retry-After) with a \
                     valid key.",
                    wait.as_secs_f64()
                ),
            )
            .with_task_type("authentication")
            .with_retry_after(wait)
        })
    }

    /// Counts a failed authentication from an address.
    pub fn record_failure(&self, client: Option<IpAddr>) {
        if let Some(ip) = client {
            self.failures.record(Instant::now(), ip, self.failure_rate);
        }
    }

    /// Forgets every cached result (after a key or account change in this process).
    pub fn invalidate_all(&self) {
        self.cache.lock().clear();
    }

    /// Authenticates a key sent from `client` (if known). Errors are `authentication` errors
    /// on parameter `apiKey`.
    pub async fn authenticate(
        &self,
        key: &str,
        client: Option<IpAddr>,
    ) -> Result<Arc<AuthContext>, ApiError> {
        let result = self.authenticate_inner(key, client).await;
        if let Err(e) = &result
            && e.http_status() == 401
        {
            self.record_failure(client);
        }
        result
    }

    async fn authenticate_inner(
        &self,
        key: &str,
        client: Option<IpAddr>,
    ) -> Result<Arc<AuthContext>, ApiError> {
        // The throttle refuses *failed* attempts only: a valid key is let through whatever its
        // address did (a shared NAT or proxy address full of someone else's bad keys, or a
        // valid key whose cache entry lapsed, must not be locked out). So a throttled address
        // still has a well-formed key looked up - one point read by digest; refusals are
        // cached, so a repeated bad key costs nothing more - and only a failure is answered
        // with 429 instead of 401. This tells the caller nothing a 401 would not (valid or not
        // is what authentication answers anyway), and guessing stays hopeless: keys carry 512
        // random bits.
        let throttled = self.check_client(client);
        if let Err(why) = keys::check_format(key) {
            throttled?;
            return Err(auth_error(ErrorCode::InvalidApiKey, format!("Invalid API key: {why}.")));
        }
        let result = self.look_up(key).await;
        match (result, throttled) {
            (Err(e), Err(wait)) if e.http_status() == 401 => Err(wait),
            (result, _) => result,
        }
    }

    /// The key's outcome, from the cache or the store (and then cached).
    async fn look_up(&self, key: &str) -> Result<Arc<AuthContext>, ApiError> {
        let digest = keys::digest(key);
        if let Some((at, r)) = self.cache.lock().get(&digest)
            && at.elapsed() < self.ttl
        {
            return r.clone();
        }
        let found = self.store.key_by_digest(digest).await.map_err(|e| {
            tracing::error!(error = %e, "key lookup failed");
            crate::store_failure(&e).with_task_type("authentication")
        })?;
        let result = match found {
            None => Err(auth_error(
                ErrorCode::InvalidApiKey,
                "Invalid API key: no such key. Check that it was copied whole; an administrator can \
                 create one with `mediagate keys create --account NAME`."
                    .into(),
            )),
            Some((k, _)) if k.status == KeyStatus::Revoked => Err(auth_error(
                ErrorCode::ApiKeyRevoked,
                format!("API key {}… has been revoked. Use another key.", k.prefix),
            )),
            Some((k, _)) if k.status == KeyStatus::Disabled => Err(auth_error(
                ErrorCode::ApiKeyDisabled,
                format!(
                    "API key {}… is disabled. Ask an administrator to enable it (`mediagate keys enable {}`) or use another key.",
                    k.prefix, k.id
                ),
            )),
            Some((_, a)) if a.status == AccountStatus::Suspended => Err(auth_error(
                ErrorCode::AccountSuspended,
                format!(
                    "The account '{}' is suspended; its keys are refused until it is unsuspended.",
                    a.name
                ),
            )),
            Some((k, a)) => Ok(Arc::new(AuthContext {
                account_id: a.id,
                account_name: a.name,
                key_id: k.id,
                scopes: k.scopes,
            })),
        };
        let mut cache = self.cache.lock();
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(digest, (Instant::now(), result.clone()));
        result
    }
}
