//! The store's rules that do not depend on the backend: what a valid account name, grant or
//! key status change is. Both implementations check them the same way, with the same words.

use crate::{KeyStatus, StoreError, StoreResult};

/// A new account: its name (1 to 64 of letters, digits, `-`, `_`, `.`) and starting grant.
pub(crate) fn check_new_account(name: &str, grant_micros: i64) -> StoreResult<()> {
    if name.is_empty()
        || name.len() > 64
        || !name.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
    {
        return Err(StoreError::Invalid(format!(
            "account name '{name}' is not allowed: use 1 to 64 letters, digits, '-', '_' or '.'"
        )));
    }
    if grant_micros < 0 {
        return Err(StoreError::Invalid("a starting grant cannot be negative".into()));
    }
    Ok(())
}

/// The refusal of an account name that is taken.
pub(crate) fn account_exists(name: &str) -> StoreError {
    StoreError::Conflict(format!("account '{name}' already exists"))
}

/// A grant of credit.
pub(crate) fn check_grant(micros: i64) -> StoreResult<()> {
    if micros <= 0 {
        return Err(StoreError::Invalid("a grant must be a positive amount".into()));
    }
    Ok(())
}

/// An API key's status change: a revoked key stays revoked.
pub(crate) fn check_key_status(id: i64, current: KeyStatus, wanted: KeyStatus) -> StoreResult<()> {
    if current == KeyStatus::Revoked && wanted != KeyStatus::Revoked {
        return Err(StoreError::Conflict(format!(
            "key {id} is revoked and cannot be {}; create a new key instead",
            if wanted == KeyStatus::Active { "enabled" } else { "changed" }
        )));
    }
    Ok(())
}

/// An admin key's status change: a revoked admin key stays revoked.
pub(crate) fn check_admin_key_status(id: i64, current: KeyStatus, wanted: KeyStatus) -> StoreResult<()> {
    if current == KeyStatus::Revoked && wanted != KeyStatus::Revoked {
        return Err(StoreError::Conflict(format!(
            "admin key {id} is revoked and cannot be changed; create a new one instead"
        )));
    }
    Ok(())
}
