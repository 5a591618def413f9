//! The command line, as clap types.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// mediagate: a self-hosted API server for generative-media tasks (Runware dialect).
#[derive(Debug, Parser)]
#[command(name = "mediagate", version, about, long_about = None)]
pub struct Cli {
    /// TOML configuration file (options are documented in docs/configuration.md).
    #[arg(long, global = true, env = "MEDIAGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Data directory: the SQLite database and stored outputs [default: ./mediagate-data].
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API server.
    Serve(ServeArgs),
    /// Manage accounts.
    #[command(subcommand)]
    Accounts(AccountsCmd),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Grant and inspect credits.
    #[command(subcommand)]
    Credits(CreditsCmd),
    /// Manage admin keys (for the admin API under /admin/v1; distinct from API keys).
    #[command(subcommand)]
    AdminKeys(AdminKeysCmd),
    /// Show and set per-account and per-model limits.
    #[command(subcommand)]
    Limits(LimitsCmd),
    /// Validate an input asset exactly as the API would, step by step.
    #[command(subcommand)]
    Assets(AssetsCmd),
    /// Print generated documentation.
    #[command(subcommand)]
    Docs(DocsCmd),
}

/// `serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (also MEDIAGATE_LISTEN) [default: 127.0.0.1:8800].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

/// `accounts` subcommands.
#[derive(Debug, Subcommand)]
pub enum AccountsCmd {
    /// Create an account.
    Create {
        /// Account name (letters, digits, '-', '_', '.').
        name: String,
        /// Starting credit in USD.
        #[arg(long, default_value = "0")]
        credit_usd: String,
    },
    /// List accounts with their balances.
    List,
    /// Suspend an account: every key of it is refused with 401.
    Suspend {
        /// Account name.
        name: String,
    },
    /// Reactivate a suspended account.
    Unsuspend {
        /// Account name.
        name: String,
    },
    /// Print the account's webhook signing secret (created on first use).
    WebhookSecret {
        /// Account name.
        name: String,
        /// Replace it with a new one (receivers must be updated).
        #[arg(long)]
        rotate: bool,
    },
}

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Create an API key and print it once (stdout); only its digest is stored.
    Create {
        /// The owning account.
        #[arg(long)]
        account: String,
        /// Free text to recognise the key by.
        #[arg(long, default_value = "")]
        description: String,
        /// Limit the key: task:<taskType>, model:<AIR id>, dialect:<runware|runway> (comma-separated or repeated).
        #[arg(long, num_args = 1..)]
        scopes: Vec<String>,
    },
    /// List keys (never the secrets).
    List {
        /// Only keys of this account.
        #[arg(long)]
        account: Option<String>,
    },
    /// Disable a key (reversible).
    Disable {
        /// Key id (from `keys list`).
        id: i64,
    },
    /// Enable a disabled key.
    Enable {
        /// Key id.
        id: i64,
    },
    /// Revoke a key forever.
    Revoke {
        /// Key id.
        id: i64,
    },
}

/// `credits` subcommands.
#[derive(Debug, Subcommand)]
pub enum CreditsCmd {
    /// Add credit to an account.
    Grant {
        /// The account.
        #[arg(long)]
        account: String,
        /// Amount in USD, e.g. 12.50.
        #[arg(long)]
        usd: String,
        /// Ledger note.
        #[arg(long, default_value = "granted by CLI")]
        note: String,
    },
    /// Show an account's balance and recent ledger entries.
    Show {
        /// The account.
        #[arg(long)]
        account: String,
        /// How many ledger entries to show.
        #[arg(long, default_value_t = 20)]
        entries: u32,
    },
}

/// `admin-keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminKeysCmd {
    /// Create an admin key and print it once (stdout); only its digest is stored.
    Create {
        /// Free text to recognise the key by.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List admin keys (never the secrets).
    List,
    /// Revoke an admin key forever.
    Revoke {
        /// Admin key id (from `admin-keys list`).
        id: i64,
    },
}

/// `limits` subcommands.
#[derive(Debug, Subcommand)]
pub enum LimitsCmd {
    /// Show the stored limits (overrides of the `[limits]` defaults).
    Show {
        /// Only this account.
        #[arg(long)]
        account: Option<String>,
    },
    /// Replace the stored limits of an account, or of an account on one model. Values left out
    /// fall back to the account's and then to `[limits]`; none at all removes the override.
    Set {
        /// The account.
        #[arg(long)]
        account: String,
        /// A model's AIR id: set the per-model limits (concurrency, queue, daily cap).
        #[arg(long)]
        model: Option<String>,
        /// Task submissions per second per key (0 = unlimited).
        #[arg(long)]
        key_rate_per_sec: Option<f64>,
        /// Burst per key.
        #[arg(long)]
        key_burst: Option<u32>,
        /// Task submissions per second for the account (0 = unlimited).
        #[arg(long)]
        account_rate_per_sec: Option<f64>,
        /// Burst for the account.
        #[arg(long)]
        account_burst: Option<u32>,
        /// Tasks running at once per model (0 = unlimited).
        #[arg(long)]
        max_concurrent: Option<u32>,
        /// Tasks waiting per model (0 = unlimited).
        #[arg(long)]
        max_queued: Option<u32>,
        /// Tasks per model per rolling 24 h (0 = unlimited).
        #[arg(long)]
        max_daily: Option<u32>,
        /// Spend per calendar month (UTC), USD ("0" = no cap).
        #[arg(long)]
        max_monthly_spend_usd: Option<String>,
    },
}

/// The media family of an asset to check.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    /// Still image.
    Image,
    /// Video.
    Video,
    /// Audio.
    Audio,
}

impl From<Kind> for mediagate_assets::AssetKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Image => mediagate_assets::AssetKind::Image,
            Kind::Video => mediagate_assets::AssetKind::Video,
            Kind::Audio => mediagate_assets::AssetKind::Audio,
        }
    }
}

/// `assets` subcommands.
#[derive(Debug, Subcommand)]
pub enum AssetsCmd {
    /// Run the server's own intake on a URL, data URI or file and print every step.
    /// Exit status: 0 valid, 1 invalid, 2 usage error.
    Check {
        /// An HTTPS URL, a data URI, base64 data, or a local file path.
        input: String,
        /// What the asset must be.
        #[arg(long, value_enum, default_value = "image")]
        kind: Kind,
        /// One JSON object per step instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `docs` subcommands.
#[derive(Debug, Subcommand)]
pub enum DocsCmd {
    /// The error catalog as Markdown (docs/errors.md is this output).
    Errors,
    /// The effective configuration as TOML (defaults, file and environment merged).
    Config,
}
