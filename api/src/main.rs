//! `cellar-api`: serves the HTTP API until SIGINT or SIGTERM.

use anyhow::Context;
use cellar_api::AppState;
use cellar_core::config::{CatalogArgs, parse_sources};
use clap::Parser;
use tokio_util::sync::CancellationToken;

/// Cellar's API process. Run as many replicas as you like behind a load balancer.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Address to listen on.
    #[arg(long, env = "CELLAR_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// The databases workers back up (same value as the workers'); the API only uses their
    /// names, to check and default `source`. Unset: the catalog database.
    #[arg(long = "source-url", env = "CELLAR_SOURCE_URL", hide_env_values = true)]
    source_url: Option<String>,
    /// Set when the workers upload to Google Drive (same value as theirs); the API only checks
    /// that it is set, to accept `uploadToDrive`.
    #[arg(long, env = "GOOGLE_DRIVE_BACKUP_FOLDER_ID", hide_env_values = true)]
    drive_folder: Option<String>,
}

impl Args {
    /// Source names, as the workers derive them (BackupSettings::build).
    fn source_names(&self) -> anyhow::Result<Vec<String>> {
        Ok(match &self.source_url {
            Some(s) => parse_sources(s)
                .map_err(anyhow::Error::msg)
                .context("while reading CELLAR_SOURCE_URL")?
                .into_iter()
                .map(|s| s.name)
                .collect(),
            None => vec![
                self.catalog
                    .database_url
                    .database()
                    .unwrap_or("default")
                    .to_string(),
            ],
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cellar_core::telemetry::init();
    let args = Args::parse();
    let sources = args.source_names()?;
    let pool = cellar_core::db::connect_and_migrate(&args.catalog.database_url, 16)
        .await
        .context("while opening the catalog database")?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("while binding {}", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, "cellar-api listening");
    let stop = CancellationToken::new();
    let drive = args.drive_folder.as_deref().is_some_and(|f| !f.is_empty());
    let state = AppState::new(pool, sources, drive, stop.clone());
    let on_signal = async move {
        shutdown_signal().await;
        stop.cancel();
    };
    cellar_api::serve(listener, state, on_signal).await?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
