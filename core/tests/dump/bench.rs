//! Throughput of the COPY path against `psql \copy`, on `pgbench -i -s 10` (1M rows). Ignored by
//! default; run with `cargo test -p cellar-core --release --test dump bench -- --ignored
//! --nocapture`. It prints numbers and asserts only correctness, never time.

use std::process::Command;
use std::time::Instant;

use bytes::Bytes;
use cellar_core::dump::{CopyTask, DataConn, Snapshot, plan_copy};
use tokio::sync::mpsc;

use crate::common::TestDb;

/// Copies `tasks` on `jobs` connections into channels drained by counting tasks; returns bytes.
async fn counted(url: &str, id: &str, tasks: Vec<CopyTask>, jobs: usize) -> (u64, u64) {
    let tasks = std::sync::Arc::new(std::sync::Mutex::new(tasks));
    let mut handles = Vec::new();
    for _ in 0..jobs {
        let (tasks, url, id) = (tasks.clone(), url.to_string(), id.to_string());
        handles.push(tokio::spawn(async move {
            let mut conn = DataConn::connect(&url, &id).await.unwrap();
            let (mut rows, mut bytes) = (0, 0);
            loop {
                let next = tasks.lock().unwrap().pop();
                let Some(task) = next else { break };
                let (tx, mut rx) = mpsc::channel::<Bytes>(4);
                let drain = tokio::spawn(async move {
                    let mut n = 0u64;
                    while let Some(b) = rx.recv().await {
                        n += b.len() as u64;
                    }
                    n
                });
                let stats = conn.copy(&task, tx, &()).await.unwrap();
                assert_eq!(drain.await.unwrap(), stats.bytes);
                (rows, bytes) = (rows + stats.rows, bytes + stats.bytes);
            }
            (rows, bytes)
        }));
    }
    let mut total = (0, 0);
    for h in handles {
        let (r, b) = h.await.unwrap();
        total = (total.0 + r, total.1 + b);
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test: run it by hand"]
async fn bench_copy_pgbench_accounts() {
    let db = TestDb::create();
    let init = Command::new("pgbench")
        .args(["-i", "-q", "-s", "10", &db.url])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    for round in 0..2 {
        let start = Instant::now();
        let psql = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-d",
                &db.url,
                "-c",
                "\\copy pgbench_accounts to /dev/null",
            ])
            .output()
            .unwrap();
        assert!(psql.status.success());
        println!(
            "round {round}: psql \\copy pgbench_accounts to /dev/null: {:?}",
            start.elapsed()
        );

        let mut snap = Snapshot::open(&db.url).await.unwrap();
        let tables = snap.list_tables(None).await.unwrap();
        let accounts: Vec<_> = tables
            .into_iter()
            .filter(|t| t.name.name() == "pgbench_accounts")
            .collect();
        for (label, chunk, jobs) in [
            ("1 task, 1 conn", u64::MAX, 1),
            ("16 MiB ranges, 2 conns", 16 << 20, 2),
        ] {
            let tasks = plan_copy(&accounts, chunk, 2);
            let start = Instant::now();
            let (rows, bytes) = counted(&db.url, snap.id(), tasks, jobs).await;
            let secs = start.elapsed().as_secs_f64();
            assert_eq!(rows, 1_000_000);
            println!(
                "round {round}: cellar {label}: {secs:.3} s, {rows} rows, {:.1} MB, {:.0} MB/s",
                bytes as f64 / 1e6,
                bytes as f64 / 1e6 / secs
            );
        }
    }
}
