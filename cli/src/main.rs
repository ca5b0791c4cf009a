//! `cellar`: the operator's tool. Until the GraphQL API lands (issue: API), the backup commands
//! talk to the catalog database (`DATABASE_URL`) directly and the workers do the work.

use std::time::Duration;

use anyhow::{Context, bail};
use cellar_core::backup::catalog::{self, BackupRequest};
use cellar_core::backup::{BackupId, BackupState, BackupType, JOB_ROTATE_KEYS, JOB_VERIFY};
use cellar_core::config::CatalogArgs;
use cellar_core::format::KeyRing;
use cellar_core::queue::{self, NewJob};
use clap::{Parser, Subcommand};
use serde_json::json;
use sqlx::PgPool;

/// Cellar: PostgreSQL backups, compressed, encrypted, verified.
#[derive(Parser, Debug)]
#[command(name = "cellar", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
        command: KeyCommand,
    },
    /// Backups.
    Backup {
        #[command(flatten)]
        catalog: CatalogArgs,
        #[command(subcommand)]
        command: BackupCommand,
    },
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// Prints a new master key entry (`ID:BASE64`) for CELLAR_ENCRYPTION_KEY.
    Generate,
    /// Re-wraps every backup's data key under the writing (first) key; data is not rewritten.
    Rotate {
        #[command(flatten)]
        catalog: CatalogArgs,
    },
}

#[derive(Subcommand, Debug)]
enum BackupCommand {
    /// Enqueues a backup; a worker takes it.
    Create {
        /// manual, daily, weekly or monthly.
        #[arg(long = "type", default_value = "manual")]
        backup_type: BackupType,
        /// Only these tables (comma-separated, `schema.name`).
        #[arg(long, value_delimiter = ',')]
        tables: Option<Vec<String>>,
        /// Which configured source (default: the first).
        #[arg(long)]
        source: Option<String>,
        /// Verify right after the backup.
        #[arg(long)]
        verify: bool,
        /// Also archive the files directory (CELLAR_FILES_DIR on the workers).
        #[arg(long)]
        include_files: bool,
        /// Wait until the job ends; exit 1 unless it completed.
        #[arg(long)]
        wait: bool,
    },
    /// Lists backups, newest first.
    List {
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Enqueues a deep verification of a backup.
    Verify {
        id: String,
        #[arg(long)]
        wait: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cellar_core::telemetry::init();
    match Cli::parse().command {
        Command::Migrate { catalog } => {
            let pool = open(&catalog).await?;
            pool.close().await;
            println!("catalog database {} is up to date", catalog.database_url);
        }
        Command::Key {
            command: KeyCommand::Generate,
        } => println!("{}", KeyRing::generate_entry()),
        Command::Key {
            command: KeyCommand::Rotate { catalog },
        } => {
            let pool = open(&catalog).await?;
            let mut conn = pool.acquire().await?;
            let job = NewJob::new(JOB_ROTATE_KEYS, json!({})).with_dedupe_key(JOB_ROTATE_KEYS);
            let j = queue::enqueue(&mut conn, &job).await?;
            println!("key rotation enqueued as job {}", j.id);
        }
        Command::Backup { catalog, command } => backup(&open(&catalog).await?, command).await?,
    }
    Ok(())
}

async fn open(c: &CatalogArgs) -> anyhow::Result<PgPool> {
    cellar_core::db::connect_and_migrate(&c.database_url, 2)
        .await
        .context("while opening the catalog database")
}

async fn backup(pool: &PgPool, cmd: BackupCommand) -> anyhow::Result<()> {
    match cmd {
        BackupCommand::Create {
            backup_type,
            tables,
            source,
            verify,
            include_files,
            wait,
        } => {
            let source = match source {
                Some(s) => s,
                None => default_source()?,
            };
            let req = BackupRequest {
                backup_type: Some(backup_type),
                source,
                tables,
                verify,
                include_files,
            };
            let (id, job) = catalog::create(pool, &req).await?;
            println!("backup {id} enqueued as job {}", job.id);
            if wait {
                wait_job(pool, job.id).await?;
                let row = catalog::get(pool, &id).await?.context("backup vanished")?;
                println!("{}", serde_json::to_string_pretty(&row)?);
                if row.state != BackupState::Completed {
                    bail!(
                        "backup {id} did not complete: {}",
                        row.error.unwrap_or_default()
                    );
                }
            }
        }
        BackupCommand::List { limit, json } => {
            let rows = catalog::list(pool, limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            }
            for r in rows.iter().filter(|_| !json) {
                let v = r
                    .verification
                    .as_ref()
                    .and_then(|v| v["status"].as_str())
                    .unwrap_or("-");
                let size = r
                    .stored_bytes
                    .map_or("-".into(), |b| format!("{:.1} MB", b as f64 / 1e6));
                println!("{}  {:?}  {:>10}  verified: {}", r.id, r.state, size, v);
            }
        }
        BackupCommand::Verify { id, wait } => {
            let id: BackupId = id.parse().map_err(anyhow::Error::msg)?;
            catalog::get(pool, &id)
                .await?
                .with_context(|| format!("no backup {id}"))?;
            let mut conn = pool.acquire().await?;
            let job = queue::enqueue(
                &mut conn,
                &NewJob::new(JOB_VERIFY, json!({"backupId": id.as_str()})),
            )
            .await?;
            println!("verification of {id} enqueued as job {}", job.id);
            if wait {
                let row = wait_job(pool, job.id).await?;
                println!("{}", serde_json::to_string_pretty(&row.result)?);
            }
        }
    }
    Ok(())
}

/// The default source's name, as the worker derives it (CELLAR_SOURCE_URL, else the catalog).
fn default_source() -> anyhow::Result<String> {
    let url = std::env::var("CELLAR_SOURCE_URL").or_else(|_| std::env::var("DATABASE_URL"));
    let url = url.unwrap_or_else(|_| cellar_core::config::DEFAULT_DATABASE_URL.into());
    let sources = cellar_core::config::parse_sources(&url).map_err(anyhow::Error::msg)?;
    Ok(sources[0].name.clone())
}

/// Polls the job until it ends, printing its progress.
async fn wait_job(pool: &PgPool, id: i64) -> anyhow::Result<queue::JobRow> {
    loop {
        let row = queue::get(pool, id).await?;
        if row.state.is_final() {
            eprintln!("job {id}: {:?}", row.state);
            return Ok(row);
        }
        if let Some(p) = &row.progress {
            eprintln!(
                "job {id}: {} {:.0}%",
                p["phase"].as_str().unwrap_or("-"),
                p["percent"].as_f64().unwrap_or(0.0)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
