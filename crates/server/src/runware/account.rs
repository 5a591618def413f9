//! `accountManagement` (`operation: "getDetails"`): the caller's account as Runware's task shows
//! an organization: its name, balance, keys and usage, read from this server's own records.
//!
//! Runware's documented fields are filled where mediagate has the thing (`organizationName`,
//! `balance`, `team`, which is empty: mediagate accounts have keys, not members). An
//! `organizationUUID` is derived from the account's id on this server (stable, not Runware's);
//! `apiKeys` lists the account's keys by their non-secret prefix (never a key), and `usage` has
//! the month's spend and each model's use today, as `GET /v1/organization` counts them.

use crate::AppState;
use crate::runway::tasks::iso;
use mediagate_core::ApiError;
use mediagate_core::money::to_usd_f64;
use mediagate_engine::auth::AuthContext;
use serde_json::{Value, json};
use uuid::Uuid;

/// The namespace `organizationUUID`s are derived in (a fixed random UUID, mediagate's own).
const ACCOUNT_NAMESPACE: Uuid = Uuid::from_u128(0x6d65_6469_6167_4174_9e1c_3b5a_7f20_d4a1);

/// The `getDetails` item for the caller's account.
pub async fn details(state: &AppState, ctx: &AuthContext, sent: &str) -> Result<Value, ApiError> {
    let view = state.engine.limits_view(ctx.account_id).await?;
    let keys = state.engine.admin().list_keys(Some(&ctx.account_name)).await.map_err(|e| {
        tracing::error!(error = %e, "listing an account's keys failed");
        ApiError::internal()
    })?;
    let api_keys: Vec<Value> = keys
        .iter()
        .map(|k| {
            json!({
                "name": k.description,
                "prefix": k.prefix,
                "status": k.status.as_str(),
                "scopes": k.scopes,
                "createdAt": iso(k.created_at),
                "current": k.id == ctx.key_id,
            })
        })
        .collect();
    let models: serde_json::Map<String, Value> = view
        .models
        .iter()
        .map(|m| (m.model.clone(), json!({"dailyGenerations": m.daily_used, "running": m.running})))
        .collect();
    Ok(json!({
        "taskType": "accountManagement",
        "taskUUID": sent,
        "operation": "getDetails",
        "organizationUUID": Uuid::new_v5(&ACCOUNT_NAMESPACE, &ctx.account_id.to_be_bytes()),
        "organizationName": ctx.account_name,
        "balance": to_usd_f64(view.balance_micros),
        "team": [],
        "apiKeys": api_keys,
        "usage": {"monthlySpend": to_usd_f64(view.month_spend_micros), "models": models},
    }))
}
