//! `cellar`: the operator's tool. Backup and job commands talk to the API (`CELLAR_URL`,
//! `CELLAR_TOKEN`); `migrate`, `key` and `token` work directly (the database, or nothing), so a
//! first master token can be created before anything runs. Exit codes: see `cellar_cli::error`.

use cellar_cli::client::Api;
use cellar_cli::error::CliError;
use cellar_core::config::CatalogArgs;
use clap::{Parser, Subcommand};

mod backup;
mod direct;
mod health;
mod job;
mod restore;
mod watch;

/// Cellar: PostgreSQL backups, compressed, encrypted, verified.
#[derive(Parser, Debug)]
#[command(name = "cellar", version, about)]
struct Cli {
    /// Print machine-readable JSON on stdout (errors too: {"error": {"code", "message"}}).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// Where the API is and the token to use.
#[derive(clap::Args, Debug, Clone)]
pub struct ApiArgs {
    /// The API's base URL.
    #[arg(
        long = "url",
        env = "CELLAR_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// An API token (`cellar token create` prints one).
    #[arg(long = "token", env = "CELLAR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl ApiArgs {
    fn api(&self) -> Api {
        Api::new(&self.url, self.token.clone())
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Creates the catalog database when missing and applies pending migrations.
    Migrate {
        #[command(flatten)]
        catalog: CatalogArgs,
    },
    /// Encryption keys.
    Key {
        #[command(subcommand)]
        command: direct::KeyCommand,
    },
    /// API tokens (directly on DATABASE_URL: works before any token exists).
    Token {
        #[command(flatten)]
        catalog: CatalogArgs,
        #[command(subcommand)]
        command: direct::TokenCommand,
    },
    /// Backups (through the API).
    Backup {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: backup::BackupCommand,
    },
    /// Restores a backup (masters; through the API): the whole database or chosen tables,
    /// into its source or another database, after a safety backup.
    Restore {
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        args: restore::RestoreArgs,
    },
    /// Rolls back the restore that ran as job JOB_ID by restoring its safety backup (masters).
    Rollback {
        #[command(flatten)]
        api: ApiArgs,
        /// The restore's job id.
        job_id: String,
        /// Follow the job to its end; exit 1 unless it completed.
        #[arg(long)]
        wait: bool,
    },
    /// Jobs (through the API).
    Job {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: job::JobCommand,
    },
    /// Health: status, reasons, per-source summary (through the API); exit 1 unless healthy.
    Health {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Live probes of every dependency, each with a fix; exit 1 when one failed. Through the
    /// API (a worker runs them), or `--direct` in this process with a worker's variables.
    Diagnose {
        /// Run the probes here, with the worker's configuration (DATABASE_URL,
        /// CELLAR_SOURCE_URL, keys, CELLAR_BACKUP_DIR, GOOGLE_*), not through the API.
        #[arg(long)]
        direct: bool,
        /// Through the API: how long a worker gets, in seconds (default 45).
        #[arg(long)]
        timeout: Option<f64>,
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        worker: Box<health::DirectArgs>,
    },
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let json = cli.json;
    match cli.command {
        Command::Migrate { catalog } => direct::migrate(&catalog, json).await,
        Command::Key { command } => direct::key(command, json).await,
        Command::Token { catalog, command } => direct::token(&catalog, command, json).await,
        Command::Backup { api, command } => backup::run(&api.api(), command, json).await,
        Command::Job { api, command } => job::run(&api.api(), command, json).await,
        Command::Health { api } => health::health(&api.api(), json).await,
        Command::Diagnose {
            direct: true,
            worker,
            ..
        } => health::diagnose_direct(&worker, json).await,
        Command::Diagnose { timeout, api, .. } => {
            health::diagnose_api(&api.api(), timeout, json).await
        }
        Command::Restore { api, args } => restore::restore(&api.api(), args, json).await,
        Command::Rollback { api, job_id, wait } => {
            restore::rollback(&api.api(), &job_id, wait, json).await
        }
    }
}

#[tokio::main]
async fn main() {
    cellar_core::telemetry::init();
    let cli = Cli::parse();
    let json = cli.json;
    if let Err(e) = run(cli).await {
        if json {
            let out = serde_json::json!({"error": {"code": e.code(), "message": e.to_string()}});
            println!("{out}");
        }
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
