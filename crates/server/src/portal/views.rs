//! The portal's pages, as `maud` templates: every `(value)` interpolated below is HTML-escaped
//! by the template engine; nothing is written with `PreEscaped`. No inline script or style.

use super::chart;
use crate::runway::organization::Organization;
use chrono::NaiveDate;
use maud::{DOCTYPE, Markup, html};
use mediagate_core::money::format_usd;
use mediagate_store::{
    Account, AccountStatus, DailyUsage, KeyRecord, KeyStatus, LedgerEntry, LimitOverride, TaskRecord,
};
use serde_json::Value;
use std::collections::HashMap;

/// What the header of a signed-in page needs.
#[derive(Clone, Copy)]
pub struct Nav<'a> {
    /// Operator pages rather than an account's.
    pub operator: bool,
    /// The session's synchronizer token, for the forms.
    pub csrf: &'a str,
}

/// A note at the top of the keys page.
pub enum KeyNote {
    /// A key was made: its secret, shown this once.
    Created {
        /// Its display prefix.
        prefix: String,
        /// The whole key.
        secret: String,
    },
    /// A change was refused.
    Error(String),
}

/// Micro-dollars as `$1.25` (or `-$0.0006`).
fn usd(micros: i64) -> String {
    let s = format_usd(micros);
    match s.strip_prefix('-') {
        Some(abs) => format!("-${abs}"),
        None => format!("${s}"),
    }
}

/// A time in ms since the epoch, as UTC.
fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M UTC").to_string())
}

/// Percent-encodes a path segment (account names in links).
pub fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn csrf(nav: Nav<'_>) -> Markup {
    html! { input type="hidden" name="csrf" value=(nav.csrf); }
}

fn page(title: &str, nav: Option<Nav<'_>>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · mediagate portal" }
                link rel="stylesheet" href="/portal/static/portal.css";
                script src="/portal/static/portal.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/portal" { "mediagate" }
                    @if let Some(n) = nav {
                        nav {
                            @if n.operator {
                                a href="/portal/operator" { "Accounts" }
                            } @else {
                                a href="/portal/keys" { "API keys" }
                                a href="/portal/usage" { "Usage" }
                                a href="/portal/history" { "Requests" }
                            }
                        }
                        form.inline method="post" action="/portal/sign-out" {
                            (csrf(n))
                            button.link type="submit" id="sign-out" { "Sign out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The sign-in page.
pub fn sign_in(message: Option<&str>) -> Markup {
    page(
        "Sign in",
        None,
        html! {
            @if let Some(m) = message { p.notice role="alert" { (m) } }
            p { "An API key opens your account's pages (keys and usage); an admin key opens the operator's (accounts, credit, limits)." }
            form.stack method="post" action="/portal/sign-in" {
                label for="key" { "Key" }
                input #key type="password" name="key" autocomplete="off" required placeholder="key_… or admin_…";
                button type="submit" { "Sign in" }
            }
            p.small { "The key is checked once; the browser then holds only a session cookie, which ends after a few hours, on sign-out, or when the server restarts." }
        },
    )
}

/// A page saying one thing.
pub fn message(title: &str, text: &str, nav: Option<Nav<'_>>) -> Markup {
    page(title, nav, html! { p.notice { (text) } p { a href="/portal" { "Back to the portal" } } })
}

/// The account's keys.
pub fn keys(
    nav: Nav<'_>,
    account: &str,
    own_key: i64,
    scopes: &[String],
    keys: &[KeyRecord],
    note: Option<KeyNote>,
) -> Markup {
    let manage = scopes.is_empty();
    page(
        "API keys",
        Some(nav),
        html! {
            p { "Account " strong { (account) } "." }
            @match &note {
                Some(KeyNote::Created { prefix, secret }) => {
                    div.secret role="status" {
                        p { "Key " code { (prefix) "…" } " created. Copy it now: it is shown only this once, and the server keeps only its digest." }
                        p { code #new-secret { (secret) } " " button type="button" data-copy="new-secret" { "Copy" } }
                    }
                }
                Some(KeyNote::Error(m)) => { p.notice role="alert" { (m) } }
                None => {}
            }
            @if !manage {
                p.notice #read-only {
                    "You signed in with a key limited to " (scopes.join(", ")) ", so this page is read-only: "
                    "a scoped key could otherwise create a key broader than itself. Sign in with a key "
                    "without scope restrictions to manage keys."
                }
            }
            table #keys {
                thead { tr { th { "Prefix" } th { "Description" } th { "Scopes" } th { "Status" } th { "Created" } @if manage { th { "Actions" } } } }
                tbody {
                    @for k in keys {
                        tr data-key-prefix=(k.prefix) {
                            td { code { (k.prefix) "…" } @if k.id == own_key { " " span.tag { "this session" } } }
                            td { (k.description) }
                            td { @if k.scopes.is_empty() { span.muted { "any" } } @else { (k.scopes.join(", ")) } }
                            td { span class=(format!("status {}", k.status)) { (k.status.as_str()) } }
                            td { (when(k.created_at)) }
                            @if manage {
                                td.actions {
                                    @if k.status == KeyStatus::Active {
                                        (key_button(nav, k.id, "disable", "Disable"))
                                    }
                                    @if k.status == KeyStatus::Disabled {
                                        (key_button(nav, k.id, "enable", "Enable"))
                                    }
                                    @if k.status != KeyStatus::Revoked {
                                        (key_button(nav, k.id, "revoke", "Revoke"))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if manage {
                h2 { "Create a key" }
                form.stack #create-key method="post" action="/portal/keys" {
                    (csrf(nav))
                    label for="description" { "Description" }
                    input #description type="text" name="description" maxlength="200";
                    label for="scopes" { "Scopes (optional, comma-separated)" }
                    input #scopes type="text" name="scopes" placeholder="task:imageInference, model:mediagate:procedural@1, dialect:runway";
                    button type="submit" { "Create key" }
                }
                p.small { "Disabled keys are refused until enabled again; revoked keys are refused forever." }
            }
        },
    )
}

fn key_button(nav: Nav<'_>, id: i64, action: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action=(format!("/portal/keys/{id}/{action}")) data-confirm=[(action == "revoke").then_some("Revoke this key for good?")] {
            (csrf(nav))
            button type="submit" data-action=(action) { (label) }
        }
    }
}

fn limit(n: u32) -> String {
    if n == 0 { "none".into() } else { n.to_string() }
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2} GB", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.2} MB", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} kB", n as f64 / 1e3),
        n => format!("{n} bytes"),
    }
}

/// Limits in force and current usage, as `GET /v1/organization` reports them.
fn limits_and_usage(org: &Organization) -> Markup {
    let v = &org.limits;
    html! {
        dl.figures {
            dt { "Balance" } dd #balance { (usd(v.balance_micros)) }
            dt { "Spent this month (UTC)" } dd { (usd(v.month_spend_micros)) }
            dt { "Monthly spend cap" } dd { @if v.max_monthly_spend_micros > 0 { (usd(v.max_monthly_spend_micros)) } @else { "none" } }
            dt { "Submissions per second, per key" } dd { @if v.key_rate_per_sec > 0.0 { (v.key_rate_per_sec) " (burst " (v.key_burst) ")" } @else { "no limit" } }
            dt { "Submissions per second, account" } dd { @if v.account_rate_per_sec > 0.0 { (v.account_rate_per_sec) " (burst " (v.account_burst) ")" } @else { "no limit" } }
            dt { "Storage used" } dd #storage {
                (org.stored.files) " uploads, " (bytes(org.stored.bytes))
                @if org.quota.max_files > 0 || org.quota.max_bytes > 0 {
                    " of " (if org.quota.max_files > 0 { org.quota.max_files.to_string() } else { "unbounded".into() })
                    " uploads, " (if org.quota.max_bytes > 0 { bytes(org.quota.max_bytes) } else { "unbounded".into() })
                }
            }
        }
        table #limits {
            thead { tr { th { "Model" } th { "Running" } th { "Max running" } th { "Waiting" } th { "Max waiting" } th { "Last 24 h" } th { "Max per 24 h" } } }
            tbody {
                @for m in &v.models {
                    tr {
                        td { code { (m.model) } }
                        td.num { (m.running) } td.num { (limit(m.max_concurrent)) }
                        td.num { (m.queued) } td.num { (limit(m.max_queued)) }
                        td.num { (m.daily_used) } td.num { (limit(m.max_daily)) }
                    }
                }
            }
        }
    }
}

/// The account's usage.
pub fn usage(
    nav: Nav<'_>,
    account: &str,
    org: &Organization,
    start: NaiveDate,
    before: NaiveDate,
    rows: &[DailyUsage],
    problems: &[String],
) -> Markup {
    let last = before.pred_opt().unwrap_or(before);
    page(
        "Usage",
        Some(nav),
        html! {
            p { "Account " strong { (account) } "." }
            (limits_and_usage(org))
            h2 { "Spend per day and model" }
            @for p in problems { p.notice role="alert" { (p) } }
            form.row method="get" action="/portal/usage" {
                label for="from" { "From" } input #from type="date" name="from" value=(start.to_string());
                label for="to" { "to" } input #to type="date" name="to" value=(last.to_string());
                button type="submit" { "Show" }
            }
            (chart::spend(start, before, rows))
            @if rows.is_empty() {
                p.muted { "No spend in this range." }
            } @else {
                table #spend {
                    thead { tr { th { "Day (UTC)" } th { "Model" } th { "Spent" } } }
                    tbody { @for r in rows { tr { td { (r.day) } td { code { (r.model) } } td.num { (usd(r.spent_micros)) } } } }
                }
            }
        },
    )
}

/// The operator's account list.
pub fn operator(nav: Nav<'_>, accounts: &[Account]) -> Markup {
    page(
        "Accounts",
        Some(nav),
        html! {
            table #accounts {
                thead { tr { th { "Name" } th { "Status" } th { "Balance" } th { "Created" } th { "Actions" } } }
                tbody {
                    @for a in accounts {
                        tr data-account=(a.name) {
                            td { a href=(super::account_href(&a.name)) { (a.name) } }
                            td { span class=(format!("status {}", a.status)) { (a.status.as_str()) } }
                            td.num { (usd(a.balance_micros)) }
                            td { (when(a.created_at)) }
                            td.actions {
                                form.inline method="post" action=(format!("{}/status", super::account_href(&a.name))) {
                                    (csrf(nav))
                                    @if a.status == AccountStatus::Active {
                                        input type="hidden" name="status" value="suspended";
                                        button type="submit" { "Suspend" }
                                    } @else {
                                        input type="hidden" name="status" value="active";
                                        button type="submit" { "Unsuspend" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Create an account" }
            form.stack #create-account method="post" action="/portal/operator/accounts" {
                (csrf(nav))
                label for="name" { "Name" } input #name type="text" name="name" required;
                label for="credit" { "Starting credit (USD)" } input #credit type="text" name="credit" inputmode="decimal" placeholder="0.00";
                button type="submit" { "Create account" }
            }
            p.small { "Keys of an account are made by its owner in the portal, or with " code { "mediagate keys create" } " and the admin API." }
        },
    )
}

/// One account, for the operator: credit, ledger, limits.
pub fn account(
    nav: Nav<'_>,
    account: &Account,
    ledger: &[LedgerEntry],
    overrides: &[LimitOverride],
    org: &Organization,
) -> Markup {
    let href = super::account_href(&account.name);
    page(
        &format!("Account {}", account.name),
        Some(nav),
        html! {
            p { "Status: " span class=(format!("status {}", account.status)) { (account.status.as_str()) } ". " a href="/portal/operator" { "All accounts" } }
            (limits_and_usage(org))
            h2 { "Grant credit" }
            form.row #grant method="post" action=(format!("{href}/credits")) {
                (csrf(nav))
                label for="usd" { "USD" } input #usd type="text" name="usd" inputmode="decimal" required placeholder="10.00";
                label for="note" { "Note" } input #note type="text" name="note";
                button type="submit" { "Grant" }
            }
            h2 { "Ledger (newest 20)" }
            table #ledger {
                thead { tr { th { "When" } th { "Kind" } th { "Amount" } th { "Task" } th { "Note" } } }
                tbody { @for l in ledger { tr { td { (when(l.created_at)) } td { (l.kind) } td.num { (usd(l.amount_micros)) } td { @if let Some(t) = &l.task_uuid { code { (t) } } } td { (l.note) } } } }
            }
            h2 { "Limits" }
            @if overrides.is_empty() {
                p.muted { "No overrides: the server's [limits] apply." }
            } @else {
                table #overrides {
                    thead { tr { th { "Model" } th { "Values set" } } }
                    tbody { @for o in overrides { tr { td { @if let Some(m) = &o.model { code { (m) } } @else { "whole account" } } td { code { (serde_json::to_string(&o.values).unwrap_or_default()) } } } } }
                }
            }
            p.small { "Replaces the stored values of the account (no model) or of one model; empty fields fall back to the account's, then to the server's [limits]. 0 means no limit." }
            form.pairs #limits-form method="post" action=(format!("{href}/limits")) {
                (csrf(nav))
                label for="model" { "Model" }
                select #model name="model" {
                    option value="" { "(whole account)" }
                    @for m in &org.limits.models { option value=(m.model) { (m.model) } }
                }
                @for (name, label) in [("maxConcurrent", "Max running, per model"), ("maxQueued", "Max waiting, per model"), ("maxDaily", "Max per 24 h, per model"), ("keyRatePerSec", "Per-key submissions per second"), ("keyBurst", "Per-key burst"), ("accountRatePerSec", "Account submissions per second"), ("accountBurst", "Account burst"), ("maxMonthlySpendUsd", "Monthly spend cap (USD)")] {
                    label for=(name) { (label) } input id=(name) type="text" name=(name);
                }
                button type="submit" { "Set limits" }
            }
        },
    )
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn duration(rec: &TaskRecord) -> String {
    rec.finished_at.map_or_else(|| "running".into(), |f| format!("{} ms", (f - rec.created_at).max(0)))
}

/// The request history: the filters as a GET form, then a page of tasks, newest first.
pub fn history(
    nav: Nav<'_>,
    form: &HashMap<String, String>,
    keys: &[KeyRecord],
    tasks: Option<&mediagate_engine::history::HistoryPage>,
    next: Option<&str>,
    error: Option<&str>,
) -> Markup {
    let value = |k: &str| form.get(k).cloned().unwrap_or_default();
    let chosen = |k: &str, v: &str| form.get(k).is_some_and(|x| x == v);
    page(
        "Requests",
        Some(nav),
        html! {
            form.filters #history-filters method="get" action="/portal/history" {
                label { "Status" select name="status" {
                    option value="" { "any" }
                    @for st in ["processing", "success", "error"] { option value=(st) selected[chosen("status", st)] { (st) } }
                } }
                label { "Task type" input type="text" name="taskType" value=(value("taskType")) placeholder="imageInference"; }
                label { "Model" input type="text" name="model" value=(value("model")) placeholder="mediagate:procedural@1"; }
                label { "Error code" input type="text" name="errorCode" value=(value("errorCode")) placeholder="invalidParameterValue"; }
                label { "Dialect" select name="dialect" {
                    option value="" { "any" }
                    @for d in ["runware", "runway"] { option value=(d) selected[chosen("dialect", d)] { (d) } }
                } }
                label { "Key" select name="keyId" {
                    option value="" { "any" }
                    @for k in keys {
                        @let id = k.id.to_string();
                        option value=(id) selected[chosen("keyId", &id)] { (k.prefix) "… " (k.description) }
                    }
                } }
                label { "From" input type="date" name="since" value=(value("since")); }
                label { "To" input type="date" name="until" value=(value("until")); }
                label.wide { "Text in the request" input type="search" name="q" value=(value("q")) placeholder="words of a prompt"; }
                div.buttons { button type="submit" { "Filter" } " " a href="/portal/history" { "Clear" } }
            }
            @if let Some(e) = error { p.notice role="alert" { (e) } }
            @if let Some(found) = tasks {
                @if found.tasks.is_empty() {
                    p.muted { "No task on this page." @if next.is_some() { " Older tasks may still match: see the next page." } }
                } @else {
                    table #history {
                        thead { tr { th { "Admitted" } th { "Task" } th { "Type" } th { "Model" } th { "Status" } th { "Error" } th { "Cost" } th { "Took" } } }
                        tbody {
                            @for t in &found.tasks {
                                tr data-task=(t.task_uuid.to_string()) {
                                    td { (when(t.created_at)) }
                                    td { a href=(format!("/portal/history/{}", t.task_uuid)) { code { (t.task_uuid.to_string()) } } }
                                    td { (t.task_type) }
                                    td { @if let Some(m) = &t.model { code { (m) } } }
                                    td { span class=(format!("status {}", t.status.as_str())) { (t.status.as_str()) } }
                                    td { @if let Some(e) = &t.error { code.error-code { (e.code) } } }
                                    td.num { (usd(t.cost_micros)) }
                                    td.num { (duration(t)) }
                                }
                            }
                        }
                    }
                }
                @if let Some(n) = next { p { a #next-page href=(n) { "Next page (older)" } } }
            }
        },
    )
}

/// One task: the history API's details, as a page.
pub fn task(nav: Nav<'_>, rec: &TaskRecord, d: &Value) -> Markup {
    let uuid = rec.task_uuid.to_string();
    page(
        "Request",
        Some(nav),
        html! {
            p { a href="/portal/history" { "All requests" } }
            dl.figures {
                dt { "taskUUID" } dd { code #task-uuid { (uuid) } " " button type="button" data-copy="task-uuid" { "Copy" } }
                dt { "Task type" } dd { (rec.task_type) }
                dt { "Model" } dd { @if let Some(m) = &rec.model { code { (m) } } }
                dt { "Dialect" } dd { (rec.dialect.as_str()) }
                dt { "Status" } dd { span class=(format!("status {}", rec.status.as_str())) { (rec.status.as_str()) } }
                dt { "Admitted" } dd { (when(rec.created_at)) }
                dt { "Took" } dd { (duration(rec)) }
                dt { "Cost" } dd { (usd(rec.cost_micros)) }
                @if let Some(k) = rec.key_id { dt { "Key id" } dd { (k) } }
                @if let Some(t) = d["timings"].as_object() {
                    dt { "Timings" } dd {
                        @for (name, label) in [("admitMs", "admission"), ("queueMs", "queue"), ("providerMs", "provider"), ("totalMs", "total")] {
                            (label) " " (format!("{:.1}", t.get(name).and_then(Value::as_f64).unwrap_or(0.0))) " ms. "
                        }
                    }
                }
            }
            @if let Some(e) = d["error"].as_object() {
                h2 { "Error" }
                div.notice role="alert" #task-error {
                    p { code { (e.get("code").and_then(Value::as_str).unwrap_or("")) } ": " (e.get("message").and_then(Value::as_str).unwrap_or("")) }
                    @if let Some(doc) = e.get("documentation").and_then(Value::as_str) {
                        p { a #error-doc href=(doc) { "What this error means and what to change" } }
                    }
                }
            }
            h2 { "Provider attempts" }
            @if rec.attempts.is_empty() {
                p.muted { "No provider was called (the server answered the task itself, or it failed before dispatch)." }
            } @else {
                table #attempts {
                    thead { tr { th { "Provider" } th { "Attempt" } th { "Outcome" } th { "Took" } th { "Message" } } }
                    tbody { @for a in &rec.attempts { tr { td { (a.provider) } td.num { (a.attempt) } td { code { (a.outcome) } } td.num { (format!("{:.1} ms", a.duration_ms)) } td { @if let Some(m) = &a.message { (m) } } } } }
                }
            }
            h2 { "Request, as received" }
            pre #task-request { (pretty(&d["request"])) }
            h2 { "Response, as sent" }
            pre #task-response { (pretty(&d["response"])) }
            @if d["webhooks"].as_array().is_some_and(|w| !w.is_empty()) {
                h2 { "Webhook deliveries" }
                pre { (pretty(&d["webhooks"])) }
            }
        },
    )
}
