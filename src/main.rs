//! `mediagate`: the server and its administration CLI.
//!
//! Every command works on the same data directory; administration commands are safe while the
//! server runs (SQLite in WAL mode, writers wait for each other).

mod cli;
mod config;

use anyhow::{Context, Result};
use clap::Parser;
use cli::{AccountsCmd, AdminKeysCmd, AssetsCmd, Cli, Command, CreditsCmd, DocsCmd, KeysCmd, LimitsCmd};
use mediagate_core::money::format_usd;
use mediagate_engine::admin::Admin;
use mediagate_engine::{Engine, StoreRole, open_store, store_location};
use mediagate_store::{AccountStatus, KeyStatus, Store};
use std::sync::Arc;
use std::time::Duration;

/// mimalloc instead of glibc's malloc: under load the server's worker threads allocate and free
/// request buffers, images and JSON on every task, and glibc's arena locks and consolidation
/// showed as about a tenth of the workers' time in profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    // Do not wait for detached background tasks (sweeper); the store has committed all
    // acknowledged writes before replies were sent.
    runtime.shutdown_timeout(Duration::from_secs(2));
    std::process::exit(code);
}

async fn run(cli: Cli) -> Result<i32> {
    let cfg = config::load(&cli)?;
    match cli.command {
        Command::Serve(_) => serve(cfg).await,
        Command::Docs(DocsCmd::Errors) => {
            print!("{}", mediagate_core::error::render_markdown());
            Ok(0)
        }
        Command::Docs(DocsCmd::Config) => {
            let mut shown = cfg.clone();
            shown.store.url = mediagate_store::postgres::redact_url(&shown.store.url);
            print!("{}", toml::to_string_pretty(&shown).context("rendering the configuration")?);
            Ok(0)
        }
        Command::Assets(AssetsCmd::Check { input, kind, json }) => {
            let mut out = std::io::stdout();
            Ok(mediagate_assets::check_command(cfg.assets.clone(), &input, kind.into(), json, &mut out).await)
        }
        Command::Accounts(c) => with_admin(&cfg, |admin| accounts(admin, c)).await,
        Command::Keys(c) => with_admin(&cfg, |admin| keys(admin, c)).await,
        Command::Credits(c) => with_admin(&cfg, |admin| credits(admin, c)).await,
        Command::AdminKeys(c) => with_admin(&cfg, |admin| admin_keys(admin, c)).await,
        Command::Limits(c) => with_admin(&cfg, |admin| limits(admin, c)).await,
    }
}

async fn admin_keys(admin: Admin, c: AdminKeysCmd) -> Result<()> {
    match c {
        AdminKeysCmd::Create { description } => {
            let (k, secret) = admin.create_admin_key(&description).await?;
            eprintln!("admin key {} created; it is shown once, store it now:", k.id);
            println!("{secret}");
        }
        AdminKeysCmd::List => {
            println!("{:>4}  {:<16} {:<9} {:<21} DESCRIPTION", "ID", "PREFIX", "STATUS", "CREATED");
            for k in admin.list_admin_keys().await? {
                println!(
                    "{:>4}  {:<16} {:<9} {:<21} {}",
                    k.id,
                    format!("{}…", k.prefix),
                    k.status,
                    fmt_time(k.created_at),
                    k.description
                );
            }
        }
        AdminKeysCmd::Revoke { id } => {
            admin.revoke_admin_key(id).await?;
            println!("admin key {id} revoked");
        }
    }
    Ok(())
}

async fn limits(admin: Admin, c: LimitsCmd) -> Result<()> {
    match c {
        LimitsCmd::Show { account } => {
            let list = admin.limit_overrides(account.as_deref()).await?;
            if list.is_empty() {
                println!("no stored limits: the [limits] defaults apply (see `mediagate docs config`)");
            }
            for o in list {
                println!(
                    "{:<20} {:<32} {}",
                    o.account_name,
                    o.model.as_deref().unwrap_or("(account)"),
                    serde_json::to_string(&o.values)?
                );
            }
        }
        LimitsCmd::Set {
            account,
            model,
            key_rate_per_sec,
            key_burst,
            account_rate_per_sec,
            account_burst,
            max_concurrent,
            max_queued,
            max_daily,
            max_monthly_spend_usd,
        } => {
            let spend = max_monthly_spend_usd
                .as_deref()
                .map(mediagate_core::money::parse_usd)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--max-monthly-spend-usd: {e}"))?;
            let values = mediagate_store::LimitValues {
                key_rate_per_sec,
                key_burst,
                account_rate_per_sec,
                account_burst,
                max_concurrent,
                max_queued,
                max_daily,
                max_monthly_spend_micros: spend,
            };
            let empty = values.is_empty();
            admin.set_limits(&account, model.as_deref(), values).await?;
            let target = match &model {
                Some(m) => format!("account '{account}' on model {m}"),
                None => format!("account '{account}'"),
            };
            if empty {
                println!("stored limits of {target} removed: the defaults apply");
            } else {
                println!(
                    "limits of {target} stored (a running server applies them within limits.refresh_ms)"
                );
            }
        }
    }
    Ok(())
}

async fn with_admin<F, Fut>(cfg: &mediagate_engine::config::Config, f: F) -> Result<i32>
where
    F: FnOnce(Admin) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let sqlite = cfg.store.backend == mediagate_engine::config::StoreBackend::Sqlite;
    let created = sqlite && !cfg.database_path().exists();
    let store =
        open_store(cfg, StoreRole::Tool).await.with_context(|| format!("opening {}", store_location(cfg)))?;
    // Said once, on stderr (stdout stays the command's output): which store this was, and
    // whether it was just created, the usual sign of a command run without the server's
    // --data-dir.
    eprintln!("{}", store_used(cfg, created));
    f(Admin::new(store, None)).await?;
    Ok(0)
}

/// The line a CLI command prints about the store it used.
fn store_used(cfg: &mediagate_engine::config::Config, created: bool) -> String {
    if cfg.store.backend == mediagate_engine::config::StoreBackend::Postgres {
        return format!("store: PostgreSQL at {}", mediagate_store::postgres::redact_url(&cfg.store.url));
    }
    let path = std::path::absolute(cfg.database_path()).unwrap_or_else(|_| cfg.database_path());
    if created {
        format!(
            "store: SQLite at {} (new: there was no store here, so an empty one was created; to manage a \
             running server's accounts, pass its --data-dir)",
            path.display()
        )
    } else {
        format!("store: SQLite at {}", path.display())
    }
}

fn fmt_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_default()
}

async fn accounts(admin: Admin, c: AccountsCmd) -> Result<()> {
    match c {
        AccountsCmd::Create { name, credit_usd } => {
            let a = admin.create_account(&name, &credit_usd).await?;
            println!("created account '{}' with ${} credit", a.name, format_usd(a.balance_micros));
        }
        AccountsCmd::List => {
            println!("{:<24} {:<10} {:>14}  CREATED", "NAME", "STATUS", "BALANCE_USD");
            for a in admin.list_accounts().await? {
                println!(
                    "{:<24} {:<10} {:>14}  {}",
                    a.name,
                    a.status,
                    format_usd(a.balance_micros),
                    fmt_time(a.created_at)
                );
            }
        }
        AccountsCmd::Suspend { name } => {
            admin.set_account_status(&name, AccountStatus::Suspended).await?;
            println!(
                "account '{name}' suspended: its keys are refused (the server notices within auth.cache_ttl_ms)"
            );
        }
        AccountsCmd::WebhookSecret { name, rotate } => {
            let secret = admin.webhook_secret(&name, rotate).await?;
            eprintln!(
                "webhook signing secret of '{name}'{}: verify `webhook-signature` with it (Standard Webhooks)",
                if rotate { " (rotated)" } else { "" }
            );
            println!("{secret}");
        }
        AccountsCmd::Unsuspend { name } => {
            admin.set_account_status(&name, AccountStatus::Active).await?;
            println!("account '{name}' is active again");
        }
    }
    Ok(())
}

async fn keys(admin: Admin, c: KeysCmd) -> Result<()> {
    match c {
        KeysCmd::Create { account, description, scopes } => {
            let k = admin.create_key(&account, &description, &scopes).await?;
            eprintln!(
                "created key {} for account '{}'{}. It is shown once, now; only its digest is stored.",
                k.record.id,
                k.record.account_name,
                if k.record.scopes.is_empty() {
                    String::new()
                } else {
                    format!(" with scopes {}", k.record.scopes.join(","))
                }
            );
            println!("{}", k.secret);
        }
        KeysCmd::List { account } => {
            println!(
                "{:>5} {:<20} {:<14} {:<9} {:<30} DESCRIPTION",
                "ID", "ACCOUNT", "PREFIX", "STATUS", "SCOPES"
            );
            for k in admin.list_keys(account.as_deref()).await? {
                println!(
                    "{:>5} {:<20} {:<14} {:<9} {:<30} {}",
                    k.id,
                    k.account_name,
                    format!("{}…", k.prefix),
                    k.status,
                    if k.scopes.is_empty() { "(all)".to_string() } else { k.scopes.join(",") },
                    k.description
                );
            }
        }
        KeysCmd::Disable { id } => {
            admin.set_key_status(id, KeyStatus::Disabled).await?;
            println!("key {id} disabled");
        }
        KeysCmd::Enable { id } => {
            admin.set_key_status(id, KeyStatus::Active).await?;
            println!("key {id} enabled");
        }
        KeysCmd::Revoke { id } => {
            admin.set_key_status(id, KeyStatus::Revoked).await?;
            println!("key {id} revoked; it can never be used again");
        }
    }
    Ok(())
}

async fn credits(admin: Admin, c: CreditsCmd) -> Result<()> {
    match c {
        CreditsCmd::Grant { account, usd, note } => {
            let balance = admin.grant(&account, &usd, &note).await?;
            println!("granted ${usd} to '{account}'; balance is now ${}", format_usd(balance));
        }
        CreditsCmd::Show { account, entries } => {
            let (a, ledger) = admin.credits(&account, entries).await?;
            println!("account '{}' ({}): balance ${}", a.name, a.status, format_usd(a.balance_micros));
            if !ledger.is_empty() {
                println!("{:<21} {:<7} {:>14}  {:<36}  NOTE", "TIME", "KIND", "AMOUNT_USD", "TASK");
                for e in ledger {
                    println!(
                        "{:<21} {:<7} {:>14}  {:<36}  {}",
                        fmt_time(e.created_at),
                        e.kind,
                        format_usd(e.amount_micros),
                        e.task_uuid.unwrap_or_default(),
                        e.note
                    );
                }
            }
        }
    }
    Ok(())
}

async fn serve(mut cfg: mediagate_engine::config::Config) -> Result<i32> {
    let traces = config::init_logging(&cfg.log, &cfg.traces)?;
    let export_timeout = Duration::from_millis(cfg.traces.export_timeout_ms);
    // Bound first, so that URLs the server hands out (outputs, uploads, documentation links)
    // carry the real port when `--listen` asks for any free one (`:0`).
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let local = listener.local_addr()?;
    if cfg.public_base_url.is_empty() {
        cfg.public_base_url = format!("http://{local}");
    }
    // On PostgreSQL this takes the one-server-per-database lock, held until the process ends.
    let store: Arc<dyn Store> = open_store(&cfg, StoreRole::Server)
        .await
        .with_context(|| format!("opening {}", store_location(&cfg)))?;
    let grace = Duration::from_secs(cfg.server.shutdown_grace_secs);
    let engine = Arc::new(Engine::new(cfg, store).context("starting the engine")?);
    if let Some(b) = engine.prepare().await.context("preparing the store")? {
        // Printed straight to stderr, never through the log pipeline, and never again.
        eprintln!(
            "\n  First start: created account '{}' with ${} credit and this API key (shown only now):\n\n    {}\n\n  \
             Store it safely; mediagate keeps only its SHA-256 digest.\n",
            b.account,
            format_usd(b.grant_micros),
            b.api_key
        );
    }
    // Acknowledged async tasks a stop left unfinished run again before anything new is taken.
    mediagate_server::install(&engine);
    engine.resume_unfinished().await.context("resuming unfinished tasks")?;
    engine.resume_webhooks().await.context("resuming webhook deliveries")?;
    tracing::info!(address = %local, data_dir = %engine.config().data_dir.display(), "mediagate listening");
    eprintln!("mediagate listening on http://{local}");
    tokio::spawn(engine.clone().sweep_outputs_forever());

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(mediagate_server::serve(listener, engine.clone(), async move {
        let _ = stop_rx.await;
    }));
    // On PostgreSQL, losing the one-server lock to another server stops this one.
    let lock_lost = lock_lost(engine.store().server_lock());
    let exit_code = tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!("shutdown requested; finishing in-flight requests");
            0
        }
        _ = lock_lost => {
            tracing::error!("stopping: the one-server lock is lost; finishing in-flight requests");
            3
        }
    };
    let _ = stop_tx.send(());
    let stopped = match tokio::time::timeout(grace, server).await {
        Ok(Ok(Ok(()))) => {
            tracing::info!("stopped cleanly");
            Ok(exit_code)
        }
        Ok(Ok(Err(e))) => Err(e).context("serving"),
        Ok(Err(e)) => Err(e).context("server task"),
        Err(_) => {
            tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish in time");
            Ok(exit_code)
        }
    };
    // The spans of the requests just finished are still in the exporter's buffer.
    if let Some(traces) = traces {
        traces.shutdown(export_timeout).await;
    }
    stopped
}

/// Completes once the store's one-server lock is lost for good; never without one.
async fn lock_lost(lock: Option<tokio::sync::watch::Receiver<mediagate_store::ServerLockState>>) {
    let Some(mut state) = lock else { return std::future::pending().await };
    if state.wait_for(|s| *s == mediagate_store::ServerLockState::Lost).await.is_err() {
        // The keeper is gone without saying lost (the store was closed): nothing to stop for.
        std::future::pending::<()>().await
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
