//! API load benchmark (not a test): the real `cellar-api` over a catalog of N backups.
//! (a) `backups` pages with statistics, `backup(id)` and `jobs` pages from 1..N concurrent
//! clients: requests/s and p50/p95/p99; (b) many websocket subscriptions held open while jobs
//! progress: every subscriber gets the final state, fan-out latency, the API's RSS and CPU.
//! Prints Markdown; exits non-zero when any answer was wrong. See `cellar_tests::apibench`.
//!
//! `cargo build --release -p cellar-api -p cellar-tests --bin cellar-api --bin bench_api &&
//!  target/release/bench_api --backups 10000 --clients 1,8,32 --subscribers 1000`

use std::time::Duration;

use cellar_tests::apibench::{self, Config, subs::SubsConfig};
use clap::Parser;

#[derive(Parser, Debug)]
struct Args {
    /// Backups in the catalog (each with its job).
    #[arg(long, default_value_t = 10_000)]
    backups: i32,
    /// Page size of `backups` and `jobs`.
    #[arg(long, default_value_t = 50)]
    limit: i64,
    /// Concurrent HTTP clients, one run per value.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    clients: Vec<usize>,
    /// Seconds per query scenario and concurrency.
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Websocket subscriptions (0: skip part b).
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Of which follow `jobEvents` (the others `jobProgress`).
    #[arg(long, default_value_t = 100)]
    events: usize,
    /// Jobs progressing at once.
    #[arg(long, default_value_t = 10)]
    jobs: usize,
    /// Progress writes per job.
    #[arg(long, default_value_t = 60)]
    steps: usize,
    /// Milliseconds between two writes of a job (the worker writes 4 a second).
    #[arg(long, default_value_t = 250)]
    interval_ms: u64,
    /// Seconds the subscriptions are held open before the jobs progress (measured over the
    /// second half: Postgres reports the reads made while subscribing up to 10 s late).
    #[arg(long, default_value_t = 24.0)]
    hold_secs: f64,
}

#[tokio::main]
async fn main() {
    let a = Args::parse();
    let cfg = Config {
        backups: a.backups,
        limit: a.limit,
        clients: a.clients,
        secs: a.secs,
        subs: SubsConfig {
            subscribers: a.subscribers,
            events: a.events.min(a.subscribers),
            jobs: a.jobs.max(1),
            steps: a.steps.max(1),
            interval: Duration::from_millis(a.interval_ms),
            hold: Duration::from_secs_f64(a.hold_secs),
        },
    };
    match apibench::run(cfg).await {
        Ok(report) => {
            print!("{}", report.markdown());
            let problems = report.problems();
            if problems.is_empty() {
                println!("\ncorrectness: ok");
            } else {
                eprintln!("bench_api FAILED (API log: {}):", report.api_log.display());
                for p in problems {
                    eprintln!("- {p}");
                }
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("bench_api FAILED: {e}");
            std::process::exit(1);
        }
    }
}
