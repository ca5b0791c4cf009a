//! Queue benchmark (not a test): no-op jobs per second through claim + complete, and the
//! enqueue-to-start latency of an idle worker woken by NOTIFY. Prints a Markdown table row.
//!
//! `cargo run --release -p cellar-tests --bin bench_queue -- [JOBS] [WORKERS] [CONCURRENCY]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use cellar_core::queue::{self, NewJob};
use cellar_tests::TestDb;
use cellar_worker::{JobContext, JobError, JobOutput, Worker, WorkerConfig};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() {
    let arg = |i: usize, d: usize| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(d)
    };
    let (jobs, workers, concurrency) = (arg(1, 50_000), arg(2, 2), arg(3, 64));
    let (_db, pool) = TestDb::catalog().await;
    if std::env::var("BENCH_NO_EVENT_TRIGGER").is_ok() {
        // To measure what the per-row event NOTIFY costs.
        sqlx::raw_sql("ALTER TABLE job DISABLE TRIGGER job_notify_update")
            .execute(&pool)
            .await
            .unwrap();
    }
    let rate = throughput(&pool, jobs, workers, concurrency).await;
    let lat = latency(&pool, 300).await;
    println!("| jobs | workers x concurrency | claim+complete jobs/s | pick-up p50 | p95 | p99 |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {jobs} | {workers} x {concurrency} | {rate:.0} | {:.1} ms | {:.1} ms | {:.1} ms |",
        lat[0], lat[1], lat[2]
    );
}

async fn noop(_: JobContext) -> Result<JobOutput, JobError> {
    Ok(None)
}

/// Enqueues `jobs` no-op jobs, then times `workers` worker runtimes draining them.
async fn throughput(pool: &sqlx::PgPool, jobs: usize, workers: usize, concurrency: usize) -> f64 {
    let mut conn = pool.acquire().await.unwrap();
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(5000) {
        let args = chunk.iter().map(|i| json!({ "i": i })).collect();
        queue::enqueue::enqueue_many(&mut conn, "bench.noop", args)
            .await
            .unwrap();
    }
    drop(conn);
    let stop = CancellationToken::new();
    let start = Instant::now();
    let mut runs = Vec::new();
    for _ in 0..workers {
        let cfg = WorkerConfig {
            concurrency,
            ..Default::default()
        };
        let mut w = Worker::new(pool.clone(), cfg);
        w.register("bench.noop", noop);
        runs.push(tokio::spawn(Arc::new(w).run(stop.clone())));
    }
    loop {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM job WHERE state <> 'completed'")
            .fetch_one(pool)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rate = jobs as f64 / start.elapsed().as_secs_f64();
    stop.cancel();
    for r in runs {
        r.await.unwrap();
    }
    rate
}

/// Enqueues one job at a time to an idle worker and measures commit-to-handler-start.
async fn latency(pool: &sqlx::PgPool, samples: usize) -> [f64; 3] {
    let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
    let mut w = Worker::new(pool.clone(), WorkerConfig::default());
    w.register("bench.ping", move |_: JobContext| {
        let _ = tx.send(Instant::now());
        async { Ok(None) }
    });
    let stop = CancellationToken::new();
    let run = tokio::spawn(Arc::new(w).run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await; // let it go idle and LISTEN
    let mut ms = Vec::with_capacity(samples);
    for _ in 0..samples {
        let mut conn = pool.acquire().await.unwrap();
        queue::enqueue(&mut conn, &NewJob::new("bench.ping", json!({})))
            .await
            .unwrap();
        let committed = Instant::now();
        let started = rx.recv().await.unwrap();
        ms.push(started.saturating_duration_since(committed).as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(20)).await; // idle again between samples
    }
    stop.cancel();
    run.await.unwrap();
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| ms[((ms.len() as f64 * p) as usize).min(ms.len() - 1)];
    [pct(0.50), pct(0.95), pct(0.99)]
}
