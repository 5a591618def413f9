//! Administrative operations on accounts, keys and credits, shared by the CLI and the server.

use crate::auth::Authenticator;
use crate::{keys, scopes};
use mediagate_core::money::parse_usd;
use mediagate_store::{
    Account, AccountStatus, AdminKeyRecord, KeyRecord, KeyStatus, LedgerEntry, LimitOverride, LimitValues,
    NewKey, Store, StoreError,
};
use std::sync::Arc;

/// Errors of administrative operations, in plain words.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Bad input from the operator.
    #[error("{0}")]
    Invalid(String),
    /// The store refused or failed. Transparent: its message is the store's, said once (a
    /// `{0}` message with the store error as its source too printed it twice in error chains).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new key: its record and the only copy of the secret.
pub struct CreatedKey {
    /// The stored record (digest only).
    pub record: KeyRecord,
    /// The key in clear; show it once.
    pub secret: String,
}

/// Administrative operations.
pub struct Admin {
    store: Arc<dyn Store>,
    auth: Option<Arc<Authenticator>>,
}

impl Admin {
    /// Operations over `store`; `auth` (if any) has its cache cleared after every change.
    pub fn new(store: Arc<dyn Store>, auth: Option<Arc<Authenticator>>) -> Self {
        Admin { store, auth }
    }

    fn changed(&self) {
        if let Some(a) = &self.auth {
            a.invalidate_all();
        }
    }

    /// Creates an account with a starting credit in USD (e.g. `"0"` or `"10.00"`).
    pub async fn create_account(&self, name: &str, credit_usd: &str) -> Result<Account, AdminError> {
        let micros = parse_usd(credit_usd).map_err(AdminError::Invalid)?;
        Ok(self.store.create_account(name, micros).await?)
    }

    /// Every account.
    pub async fn list_accounts(&self) -> Result<Vec<Account>, AdminError> {
        Ok(self.store.list_accounts().await?)
    }

    /// Suspends or reactivates an account.
    pub async fn set_account_status(&self, name: &str, status: AccountStatus) -> Result<Account, AdminError> {
        let a = self.store.set_account_status(name, status).await?;
        self.changed();
        Ok(a)
    }

    /// Creates a key for an account; the secret is in the result and nowhere else.
    pub async fn create_key(
        &self,
        account: &str,
        description: &str,
        scope_entries: &[String],
    ) -> Result<CreatedKey, AdminError> {
        let scopes = scopes::parse(scope_entries).map_err(AdminError::Invalid)?;
        let secret =
            keys::generate().map_err(|e| AdminError::Invalid(format!("OS random source failed: {e}")))?;
        let record = self
            .store
            .create_key(
                account,
                NewKey {
                    digest: keys::digest(&secret),
                    prefix: keys::display_prefix(&secret),
                    description: description.to_string(),
                    scopes,
                },
            )
            .await?;
        Ok(CreatedKey { record, secret })
    }

    /// Keys, optionally of one account.
    pub async fn list_keys(&self, account: Option<&str>) -> Result<Vec<KeyRecord>, AdminError> {
        Ok(self.store.list_keys(account).await?)
    }

    /// Disables, enables or revokes a key.
    pub async fn set_key_status(&self, id: i64, status: KeyStatus) -> Result<KeyRecord, AdminError> {
        let k = self.store.set_key_status(id, status).await?;
        self.changed();
        Ok(k)
    }

    /// Grants credit in USD; returns the new balance in micro-dollars.
    pub async fn grant(&self, account: &str, usd: &str, note: &str) -> Result<i64, AdminError> {
        let micros = parse_usd(usd).map_err(AdminError::Invalid)?;
        if micros == 0 {
            return Err(AdminError::Invalid("a grant must be more than 0".into()));
        }
        Ok(self.store.grant(account, micros, note).await?)
    }

    /// The account's webhook signing secret (created on first use; `rotate` replaces it).
    pub async fn webhook_secret(&self, account: &str, rotate: bool) -> Result<String, AdminError> {
        let a = self
            .store
            .account_by_name(account)
            .await?
            .ok_or_else(|| AdminError::Store(StoreError::NotFound(format!("account '{account}'"))))?;
        Ok(self.store.webhook_secret(a.id, crate::webhooks::new_secret(), rotate).await?)
    }

    /// An account and its newest ledger entries.
    pub async fn credits(
        &self,
        account: &str,
        entries: u32,
    ) -> Result<(Account, Vec<LedgerEntry>), AdminError> {
        let a = self
            .store
            .account_by_name(account)
            .await?
            .ok_or_else(|| AdminError::Store(StoreError::NotFound(format!("account '{account}'"))))?;
        let l = self.store.ledger(account, entries).await?;
        Ok((a, l))
    }

    /// Creates an admin key; the secret is in the result and nowhere else.
    pub async fn create_admin_key(&self, description: &str) -> Result<(AdminKeyRecord, String), AdminError> {
        let secret = crate::admin_keys::generate()
            .map_err(|e| AdminError::Invalid(format!("OS random source failed: {e}")))?;
        let record = self
            .store
            .create_admin_key(NewKey {
                digest: crate::admin_keys::digest(&secret),
                prefix: crate::admin_keys::display_prefix(&secret),
                description: description.to_string(),
                scopes: vec![],
            })
            .await?;
        Ok((record, secret))
    }

    /// Every admin key (never the secrets).
    pub async fn list_admin_keys(&self) -> Result<Vec<AdminKeyRecord>, AdminError> {
        Ok(self.store.list_admin_keys().await?)
    }

    /// Revokes an admin key forever.
    pub async fn revoke_admin_key(&self, id: i64) -> Result<AdminKeyRecord, AdminError> {
        Ok(self.store.set_admin_key_status(id, KeyStatus::Revoked).await?)
    }

    /// Replaces the stored limits of an account (`model` None) or of an account on a model.
    /// Unset values fall back to the account's, then to `[limits]`; all unset removes the row.
    pub async fn set_limits(
        &self,
        account: &str,
        model: Option<&str>,
        values: LimitValues,
    ) -> Result<(), AdminError> {
        check_limit_values(model, &values).map_err(AdminError::Invalid)?;
        Ok(self.store.set_limits(account, model, values).await?)
    }

    /// Stored limit overrides, optionally of one account.
    pub async fn limit_overrides(&self, account: Option<&str>) -> Result<Vec<LimitOverride>, AdminError> {
        if let Some(a) = account
            && self.store.account_by_name(a).await?.is_none()
        {
            return Err(AdminError::Store(StoreError::NotFound(format!("account '{a}'"))));
        }
        let all = self.store.limit_overrides().await?;
        Ok(all.into_iter().filter(|o| account.is_none_or(|a| o.account_name == a)).collect())
    }
}

/// Checks limit values: rates finite and >= 0; account-wide values not set per model.
pub fn check_limit_values(model: Option<&str>, v: &LimitValues) -> Result<(), String> {
    for (name, r) in [("keyRatePerSec", v.key_rate_per_sec), ("accountRatePerSec", v.account_rate_per_sec)] {
        if let Some(r) = r
            && (!r.is_finite() || r < 0.0)
        {
            return Err(format!("{name} must be a number >= 0 (0 = unlimited), not {r}"));
        }
    }
    if v.max_monthly_spend_micros.is_some_and(|m| m < 0) {
        return Err("the monthly spend cap cannot be negative (0 = no cap)".into());
    }
    if let Some(m) = model {
        let account_wide = [
            ("keyRatePerSec", v.key_rate_per_sec.is_some()),
            ("keyBurst", v.key_burst.is_some()),
            ("accountRatePerSec", v.account_rate_per_sec.is_some()),
            ("accountBurst", v.account_burst.is_some()),
            ("maxMonthlySpend", v.max_monthly_spend_micros.is_some()),
        ];
        if let Some((name, _)) = account_wide.iter().find(|(_, set)| *set) {
            return Err(format!(
                "{name} applies to the whole account, not to model {m}; set it without a model"
            ));
        }
    }
    Ok(())
}
