//! A worker process for the queue's crash tests: runs kind `test.hang`, whose first attempt
//! waits until cancelled (so the test can kill the process mid-job) and whose later attempts
//! complete. Prints `worker <uuid>` when it starts.

use std::sync::Arc;

use cellar_core::config::CatalogArgs;
use cellar_worker::{JobContext, JobError, JobOutput, Worker, WorkerConfig};
use clap::Parser;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    catalog: CatalogArgs,
    #[command(flatten)]
    worker: WorkerConfig,
}

async fn hang(ctx: JobContext) -> Result<JobOutput, JobError> {
    if ctx.job.lease.attempt == 1 {
        ctx.cancel.cancelled().await;
        return Err(JobError::Cancelled);
    }
    Ok(Some(serde_json::json!({"attempt": ctx.job.lease.attempt})))
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let pool = cellar_core::db::connect(&args.catalog.database_url, 8)
        .await
        .expect("connect");
    let mut w = Worker::new(pool, args.worker);
    w.register("test.hang", hang);
    println!("worker {}", w.id());
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        s.cancel();
    });
    Arc::new(w).run(stop).await;
}
