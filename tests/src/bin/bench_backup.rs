//! Backup benchmark (not a test): one Cellar backup of database DB on the local server at gzip
//! LEVEL with JOBS connections, then a deep verify. Prints one tab-separated line:
//! `wall_s stored_bytes peak_rss_kib verify_s rows plain_bytes cpu_s machine_cpu_s machine_sys_s`,
//! where `cpu_s` is this process's CPU (user+sys) during the backup, `machine_cpu_s` every
//! core's busy time in that interval (the server's COPY backends and `pg_dump --schema-only`
//! included) and `machine_sys_s` the kernel's part of it. `scripts/bench-backup` runs it next to
//! `pg_dump -Fc` on the same data and writes the Markdown table.
//!
//! `bench_backup DB LEVEL [JOBS] [SPLIT_MIB]`; with `BENCH_SKIP_VERIFY` set it stops after the
//! backup (for profiling the backup alone) and prints `wall_s stored_bytes cpu_s machine_cpu_s
//! machine_sys_s`.

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
    let (cpu0, busy0, sys0) = (process_cpu_s(), machine_busy_s(), machine_sys_s());
    let start = Instant::now();
    let done = run::take(&env, &id, &(), &CancellationToken::new())
        .await
        .unwrap();
    let wall = start.elapsed().as_secs_f64();
    let (cpu, busy, sys) = (
        process_cpu_s() - cpu0,
        machine_busy_s() - busy0,
        machine_sys_s() - sys0,
    );
    if std::env::var_os("BENCH_SKIP_VERIFY").is_some() {
        println!(
            "{wall:.2}\t{}\t{cpu:.2}\t{busy:.2}\t{sys:.2}",
            done.stored_bytes
        );
        return;
    }
    let start = Instant::now();
    let v = verify::verify(&env, &id, &()).await.unwrap();
    let verify_s = start.elapsed().as_secs_f64();
    assert!(v.is_valid(), "{:?}", v.failures);
    println!(
        "{wall:.2}\t{}\t{}\t{verify_s:.2}\t{}\t{}\t{cpu:.2}\t{busy:.2}\t{sys:.2}",
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

/// Clock ticks per second of /proc's CPU counters (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// This process's user+sys CPU so far, in seconds (/proc/self/stat fields 14 and 15).
fn process_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after its ')' are plain.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // `rest` starts at field 3, so fields 14 and 15 are at 11 and 12.
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / TICKS
}

/// Busy time of every core so far (user, nice, system, irq, softirq), in seconds.
fn machine_busy_s() -> f64 {
    machine_cpu_s(&[0, 1, 2, 5, 6])
}

/// System time of every core so far (system, irq, softirq), in seconds.
fn machine_sys_s() -> f64 {
    machine_cpu_s(&[2, 5, 6])
}

/// The sum of /proc/stat's first-line fields `fields` (0 = user), in seconds.
fn machine_cpu_s(fields: &[usize]) -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    fields
        .iter()
        .map(|&i| f.get(i).unwrap_or(&0.0))
        .sum::<f64>()
        / TICKS
}
