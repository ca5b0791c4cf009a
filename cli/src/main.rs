//! `cellar`: the operator's tool.

use anyhow::Context;
use cellar_core::config::CatalogArgs;
use clap::{Parser, Subcommand};

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cellar_core::telemetry::init();
    match Cli::parse().command {
        Command::Migrate { catalog } => {
            let pool = cellar_core::db::connect_and_migrate(&catalog.database_url, 2)
                .await
                .context("while migrating the catalog database")?;
            pool.close().await;
            println!("catalog database {} is up to date", catalog.database_url);
        }
    }
    Ok(())
}
