//! Administrative operations on accounts, keys and credits, shared by the CLI and the server.

use crate::auth::Authenticator;
use crate::{keys, scopes};
use mediagate_core::money::parse_usd;
use mediagate_store::{Account, AccountStatus, KeyRecord, KeyStatus, LedgerEntry, NewKey, Store, StoreError};
use std::sync::Arc;

/// Errors of administrative operations, in plain words.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Bad input from the operator.
    #[error("{0}")]
    Invalid(String),
    /// The store refused or failed.
    #[error("{0}")]
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
}
