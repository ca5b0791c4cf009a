//! Backup benchmark (not a test): one Cellar backup of database DB on the local server at gzip
//! LEVEL with JOBS connections, then a deep verify. Prints one tab-separated line:
//! `wall_s stored_bytes peak_rss_kib verify_s rows plain_bytes`. `scripts/bench-backup` runs it
//! next to `pg_dump -Fc` on the same data and writes the Markdown table.
//!
//! `bench_backup DB LEVEL [JOBS] [SPLIT_MIB]`

use std::time::Instant;

use cellar_core::backup::catalog::{self, BackupRequest};
use cellar_core::backup::{BackupSettings, run, verify};
use cellar_core::format::KeyRing;
use cellar_tests::{TestDb, admin_url};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() {
    // RUST_LOG=cellar_core=debug shows the backup's phases with timestamps.
    if std::env::var_os("RUST_LOG").is_some() {
        cellar_core::telemetry::init();
    }
    let args: Vec<String> = std::env::args().collect();
    let db = args
        .get(1)
        .expect("usage: bench_backup DB LEVEL [JOBS] [SPLIT_MIB]");
    let level: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1);
    let jobs: Option<usize> = args.get(3).and_then(|a| a.parse().ok());
    let split: u64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(64);
    let dir = tempfile::Builder::new()
        .prefix("cellar-bench-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let (catalog_db, pool) = TestDb::catalog().await;
    let settings = BackupSettings {
        source_url: Some(format!("src={}", admin_url().with_database(db).expose())),
        backup_dir: dir.path().to_path_buf(),
        encryption_key: Some(KeyRing::generate_entry()),
        encryption_key_file: None,
        jobs,
        gzip_level: level,
        split_table_mib: split,
        files_dir: None,
        pg_dump: "pg_dump".into(),
    };
    let env = settings.build(pool.clone(), &catalog_db.url).unwrap();
    let req = BackupRequest {
        source: "src".into(),
        ..Default::default()
    };
    let (id, _) = catalog::create(&pool, &req).await.unwrap();
    let start = Instant::now();
    let done = run::take(&env, &id, &(), &CancellationToken::new())
        .await
        .unwrap();
    let wall = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let v = verify::verify(&env, &id, &()).await.unwrap();
    let verify_s = start.elapsed().as_secs_f64();
    assert!(v.is_valid(), "{:?}", v.failures);
    println!(
        "{wall:.2}\t{}\t{}\t{verify_s:.2}\t{}\t{}",
        done.stored_bytes,
        peak_rss_kib(),
        done.total_rows,
        done.plain_bytes
    );
}

/// The process's peak resident set size (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
