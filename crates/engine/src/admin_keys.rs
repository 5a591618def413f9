//! Admin keys: `admin_` followed by 64 lowercase hex characters, for the admin API only.
//!
//! Distinct from API keys (`key_` + 128 hex) so neither can be mistaken for the other: the admin
//! API refuses API keys and the task API refuses admin keys, each saying which key it needs.
//! Only a SHA-256 digest and a short display prefix are stored; failed attempts count toward the
//! same per-address throttle as API keys.

use crate::Engine;
use mediagate_core::{ApiError, ErrorCode};
use mediagate_store::{AdminKeyRecord, KeyStatus};
use sha2::{Digest, Sha256};
use std::net::IpAddr;

/// The fixed prefix of every admin key.
pub const PREFIX: &str = "admin_";
/// Hex characters after the prefix.
pub const HEX_LEN: usize = 64;

/// A fresh admin key from the operating system's random source.
pub fn generate() -> Result<String, getrandom::Error> {
    let mut raw = [0u8; HEX_LEN / 2];
    getrandom::fill(&mut raw)?;
    Ok(format!("{PREFIX}{}", hex::encode(raw)))
}

/// Why a string is not a well-formed admin key (never echoing it).
pub fn check_format(key: &str) -> Result<(), String> {
    if key.starts_with(crate::keys::PREFIX) {
        return Err("this is an API key; the admin API only accepts admin keys ('admin_…', created with \
                    `mediagate admin-keys create`)"
            .into());
    }
    if key.trim() != key {
        return Err("the admin key starts or ends with whitespace; remove it".into());
    }
    let Some(hex) = key.strip_prefix(PREFIX) else {
        return Err(format!("admin keys start with '{PREFIX}'"));
    };
    if hex.len() != HEX_LEN || !hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
        return Err(format!(
            "admin keys are '{PREFIX}' followed by exactly {HEX_LEN} lowercase hexadecimal characters"
        ));
    }
    Ok(())
}

/// The SHA-256 digest under which an admin key is stored.
pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A short, non-secret label: the prefix and the first eight hex characters.
pub fn display_prefix(key: &str) -> String {
    key.chars().take(PREFIX.len() + 8).collect()
}

fn refused(message: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidAdminKey, message)
}

impl Engine {
    /// Authenticates an admin key sent from `client`.
    pub async fn authenticate_admin(
        &self,
        key: &str,
        client: Option<IpAddr>,
    ) -> Result<AdminKeyRecord, ApiError> {
        self.auth.check_client(client)?;
        let result = async {
            check_format(key).map_err(|why| refused(format!("Invalid admin key: {why}.")))?;
            let found = self.store.admin_key_by_digest(digest(key)).await.map_err(|e| {
                tracing::error!(error = %e, "admin key lookup failed");
                ApiError::internal()
            })?;
            match found {
                None => Err(refused(
                    "Invalid admin key: no such key. Create one with `mediagate admin-keys create`.".into(),
                )),
                Some(k) if k.status != KeyStatus::Active => {
                    Err(refused(format!("Admin key {}… is {}; use another admin key.", k.prefix, k.status)))
                }
                Some(k) => Ok(k),
            }
        }
        .await;
        if result.as_ref().is_err_and(|e| e.http_status() == 401) {
            self.auth.record_failure(client);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_and_api_keys_are_told_apart() {
        let a = generate().unwrap();
        check_format(&a).unwrap();
        assert_eq!(a.len(), PREFIX.len() + HEX_LEN);
        let api = crate::keys::generate().unwrap();
        assert!(check_format(&api).unwrap_err().contains("this is an API key"));
        assert!(crate::keys::check_format(&a).unwrap_err().contains("this is an admin key"));
        assert!(check_format(&format!("{a} ")).is_err());
        assert_eq!(display_prefix(&a).len(), 14);
    }
}
