//! `cellar-worker`: claims and runs jobs until SIGINT or SIGTERM, then shuts down gracefully.

use std::sync::Arc;

use anyhow::Context;
use cellar_core::backup::BackupSettings;
use cellar_core::config::CatalogArgs;
use cellar_core::health::diagnose::{DiagnoseSettings, Setup};
use cellar_core::health::workers;
use cellar_core::storage::{DriveSettings, LocalStorage};
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
    /// Temp files in `CELLAR_BACKUP_DIR/.tmp` untouched for this many seconds are removed at
    /// start-up: a worker killed mid-write never removes its own. Writers touch theirs
    /// continuously, so this only has to exceed the longest pause inside one write.
    #[arg(long, env = "CELLAR_STALE_TEMP_SECS", default_value_t = 3600)]
    stale_temp_secs: u64,
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
    let scheduler = args.worker.scheduler;
    let default_source = env.sources.first().map(|s| s.name.clone());
    remove_stale_temp(&args.backup.backup_dir, args.stale_temp_secs).await;
    if let Err(e) = cellar_core::sweep::sweep(&env).await {
        tracing::warn!(error = %e, "sweeping abandoned backups and restores failed");
    }
    let mut worker = Worker::new(pool, args.worker);
    worker.set_registry_config(workers::config_summary(&sources, &args.drive));
    if let (true, Some(source)) = (scheduler, default_source) {
        worker.enable_scheduler(source);
    }
    cellar_worker::handlers::register_all(&mut worker, env);
    cellar_worker::handlers::register_diagnose(&mut worker, setup);
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_shutdown(shutdown.clone()));
    Arc::new(worker).run(shutdown).await;
    Ok(())
}

/// Removes temp files left by killed writers; a failure is logged, never fatal.
async fn remove_stale_temp(dir: &std::path::Path, older_than_secs: u64) {
    let age = std::time::Duration::from_secs(older_than_secs);
    let removed = match LocalStorage::new(dir) {
        Ok(local) => local.remove_stale_temp(age).await,
        Err(e) => Err(e),
    };
    if let Err(e) = removed {
        tracing::warn!(error = %e, "could not remove stale temp files");
    }
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
