//! A worker process for the Drive upload crash test: the production handlers with the
//! production settings (catalog, backup, Drive: all from the environment), so the test can
//! SIGKILL it mid-upload, or read its peak memory. Prints `worker <uuid>` when it starts.
//! `CELLAR_TEST_FAST_DRIVE_RETRY=1` swaps Drive's backoff (half a second and up) for the
//! milliseconds of `fake_drive::fast_retry`, so hundreds of injected faults cost no minutes.

use std::sync::Arc;

use cellar_core::backup::BackupSettings;
use cellar_core::config::CatalogArgs;
use cellar_core::storage::{DriveSettings, DriveStorage};
use cellar_tests::fake_drive::fast_retry;
use cellar_worker::{Worker, WorkerConfig};
use clap::Parser;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    catalog: CatalogArgs,
    #[command(flatten)]
    worker: WorkerConfig,
    #[command(flatten)]
    backup: BackupSettings,
    #[command(flatten)]
    drive: DriveSettings,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let pool = cellar_core::db::connect(&args.catalog.database_url, 8)
        .await
        .expect("connect");
    let mut env = args
        .backup
        .build(pool.clone(), &args.catalog.database_url)
        .expect("backup settings")
        .with_drive(&args.drive)
        .await
        .expect("drive settings");
    if std::env::var_os("CELLAR_TEST_FAST_DRIVE_RETRY").is_some() {
        let mut cfg = args
            .drive
            .config()
            .expect("drive settings")
            .expect("Drive is set up");
        cfg.retry = fast_retry();
        let drive = DriveStorage::connect(cfg).await.expect("drive storage");
        env.drive = Some(Arc::new(drive));
    }
    let mut w = Worker::new(pool, args.worker);
    cellar_worker::handlers::register_all(&mut w, env);
    println!("worker {}", w.id());
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        s.cancel();
    });
    Arc::new(w).run(stop).await;
}
