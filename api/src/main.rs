//! `cellar-api`: serves the HTTP API until SIGINT or SIGTERM.

use anyhow::Context;
use cellar_api::AppState;
use cellar_core::config::CatalogArgs;
use clap::Parser;

/// Cellar's API process. Run as many replicas as you like behind a load balancer.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Address to listen on.
    #[arg(long, env = "CELLAR_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cellar_core::telemetry::init();
    let args = Args::parse();
    let pool = cellar_core::db::connect_and_migrate(&args.catalog.database_url, 16)
        .await
        .context("while opening the catalog database")?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("while binding {}", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, "cellar-api listening");
    cellar_api::serve(listener, AppState { pool }, shutdown_signal()).await?;
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
