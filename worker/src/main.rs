//! `cellar-worker`: claims and runs jobs until SIGINT or SIGTERM, then shuts down gracefully.

use std::sync::Arc;

use anyhow::Context;
use cellar_core::backup::BackupSettings;
use cellar_core::config::CatalogArgs;
use cellar_core::health::diagnose::{DiagnoseSettings, Setup};
use cellar_core::health::workers;
use cellar_core::storage::DriveSettings;
use cellar_worker::{Worker, WorkerConfig};
use clap::Parser;
use tokio_util::sync::CancellationToken;

/// Cellar's worker process. Run as many as you like against one catalog database.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    catalog: CatalogArgs,
    #[command(flatten)]
    worker: WorkerConfig,
    #[command(flatten)]
    backup: BackupSettings,
    /// Google Drive copies (off unless `GOOGLE_DRIVE_BACKUP_FOLDER_ID` is set).
    #[command(flatten)]
    drive: DriveSettings,
    /// The `diagnose` probes' thresholds.
    #[command(flatten)]
    diagnose: DiagnoseSettings,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cellar_core::telemetry::init();
    let args = Args::parse();
    let conns = (args.worker.concurrency as u32 + 4).max(8);
    let pool = cellar_core::db::connect_and_migrate(&args.catalog.database_url, conns)
        .await
        .context("while opening the catalog database")?;
    let env = args
        .backup
        .build(pool.clone(), &args.catalog.database_url)
        .map_err(anyhow::Error::msg)
        .context("while reading the backup settings")?
        .with_drive(&args.drive)
        .await
        .map_err(anyhow::Error::msg)
        .context("while reading the Google Drive settings")?;
    let sources: Vec<String> = env.sources.iter().map(|s| s.name.clone()).collect();
    let setup = Setup::new(
        pool.clone(),
        &args.catalog.database_url,
        &args.backup,
        &args.drive,
        &args.diagnose,
    );
    let mut worker = Worker::new(pool, args.worker);
    worker.set_registry_config(workers::config_summary(&sources, &args.drive));
    cellar_worker::handlers::register_all(&mut worker, env);
    cellar_worker::handlers::register_diagnose(&mut worker, setup);
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_shutdown(shutdown.clone()));
    Arc::new(worker).run(shutdown).await;
    Ok(())
}

async fn signal_shutdown(token: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown requested: no new jobs; running jobs get the grace period");
    token.cancel();
}
