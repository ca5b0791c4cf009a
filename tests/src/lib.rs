//! Test support shared by Cellar's integration and end-to-end tests.
//!
//! # Layout
//! - [`apibench`]: the API load benchmark behind `src/bin/bench_api.rs`.
//! - [`TestDb`]: a fresh database per test on the real Postgres, dropped afterwards.
//! - [`wait_for`]: wait on a condition with a deadline (tests never sleep to wait).
//! - [`shared_dir`]: where `../shared` (datasets, tools) is, or a loud skip.
//! - [`fake_drive`]: a fake Google Drive v3 server with fault injection and a request log.
//! - [`procs`]: the real `cellar-api` / `cellar-worker` / `cellar` binaries as child processes.
//! - [`rig`]: a catalog, a source, storage and a key wired for those processes and for checks.
//! - [`chaos`]: trial counts, seeds, data fingerprints and storage listings for `chaos_*` tests.
//! - [`pgcluster`]: a private PostgreSQL cluster a test may stop and start.
//! - `src/bin/`: small processes the tests start and kill (real child processes).

pub mod apibench;
pub mod chaos;
pub mod fake_drive;
pub mod pgcluster;
pub mod procs;
pub mod rig;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cellar_core::config::DbUrl;
use sqlx::PgPool;

/// The server tests run against: `CELLAR_TEST_PG` (an admin URL), default the local Postgres.
pub fn admin_url() -> DbUrl {
    std::env::var("CELLAR_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
        .parse()
        .expect("CELLAR_TEST_PG must be a postgres:// URL")
}

/// A database created for one test and dropped (with FORCE) when this value is dropped.
pub struct TestDb {
    /// Its name, `cellar_t_<random>`.
    pub name: String,
    /// How to connect to it.
    pub url: DbUrl,
}

impl TestDb {
    /// A fresh empty database.
    pub async fn empty() -> Self {
        let name = format!(
            "cellar_t_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        psql_admin(&format!("CREATE DATABASE \"{name}\""));
        let url = admin_url().with_database(&name);
        Self { name, url }
    }

    /// A fresh database with Cellar's migrations applied, and a pool on it.
    pub async fn catalog() -> (Self, PgPool) {
        let db = Self::empty().await;
        let pool = cellar_core::db::connect_and_migrate(&db.url, 40)
            .await
            .expect("migrate");
        (db, pool)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        psql_admin(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ));
    }
}

/// Runs one SQL statement on the admin database with psql (synchronously: usable in Drop).
pub fn psql_admin(sql: &str) {
    let out = std::process::Command::new("psql")
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            admin_url().expose(),
            "-c",
            sql,
        ])
        .output()
        .expect("psql must be installed");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `cond` every 20 ms until it is true or `within` has passed; returns the time it took.
/// Panics with `what` on timeout.
pub async fn wait_for<F, Fut>(within: Duration, what: &str, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if cond().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The shared material (datasets, tools): `CELLAR_SHARED_DIR`, default `../shared` from the
/// repository root. `None` (after a loud message) when it is missing, except under CI, where
/// its absence is an error.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var("CELLAR_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    if dir.join("datasets").is_dir() {
        return Some(dir);
    }
    let msg = format!(
        "SKIP: shared material not found at {} (set CELLAR_SHARED_DIR)",
        dir.display()
    );
    assert!(std::env::var("CI").is_err(), "{msg}: required under CI");
    eprintln!("\n!!!!!!!! {msg} !!!!!!!!\n");
    None
}

/// Backup settings for tests: `source` as the only source (named `src`), objects under `dir`,
/// master key `key`, 2 COPY lanes, gzip 1 and 1 MiB split chunks (so small tables still split).
pub fn backup_settings(
    source: &TestDb,
    dir: &std::path::Path,
    key: &str,
) -> cellar_core::backup::BackupSettings {
    cellar_core::backup::BackupSettings {
        source_url: Some(format!("src={}", source.url.expose())),
        backup_dir: dir.to_path_buf(),
        encryption_key: Some(key.to_string()),
        encryption_key_file: None,
        jobs: Some(2),
        gzip_level: 1,
        split_table_mib: 1,
        files_dir: None,
        pg_dump: "pg_dump".into(),
    }
}

/// What a files directory holds: every path (relative, `.cellar-*` work directories included)
/// with its content (`None` for a directory) and permission bits. Equal trees are equal
/// directories for the files restore tests.
pub fn file_tree(
    dir: &std::path::Path,
) -> std::collections::BTreeMap<String, (Option<Vec<u8>>, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for e in std::fs::read_dir(&at).expect("read_dir") {
            let p = e.expect("dir entry").path();
            let rel = p
                .strip_prefix(dir)
                .expect("inside")
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::symlink_metadata(&p).expect("metadata");
            let content = (!meta.is_dir()).then(|| std::fs::read(&p).expect("read"));
            out.insert(rel, (content, meta.mode() & 0o777));
            if meta.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}
