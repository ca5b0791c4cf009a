//! Shared by the restore tests: a catalog, a source, backups and restores run through the
//! worker, dbdiff, database copies.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use cellar_core::backup::catalog::{self as backups, BackupRequest};
use cellar_core::backup::{BackupEnv, BackupId, BackupState};
use cellar_core::config::DbUrl;
use cellar_core::format::KeyRing;
use cellar_core::restore::{RestoreId, RestoreRequest, RestoreRow, catalog};
use cellar_tests::{TestDb, admin_url, psql_admin, shared_dir};
use cellar_worker::{RunOnce, Worker, WorkerConfig};
use sqlx::PgPool;

/// A catalog, a backup directory and key, and one source database named `src`.
pub struct Fixture {
    pub source: TestDb,
    pub catalog: TestDb,
    pub pool: PgPool,
    pub dir: tempfile::TempDir,
    pub key: String,
    pub env: BackupEnv,
}

impl Fixture {
    /// Protects `source`.
    pub async fn new(source: TestDb) -> Self {
        let (catalog, pool) = TestDb::catalog().await;
        let dir = tempfile::tempdir().unwrap();
        let key = KeyRing::generate_entry();
        let env = cellar_tests::backup_settings(&source, dir.path(), &key)
            .build(pool.clone(), &catalog.url)
            .unwrap();
        Self {
            source,
            catalog,
            pool,
            dir,
            key,
            env,
        }
    }

    /// The same catalog and storage, another master key.
    pub fn env_with_key(&self, key: &str) -> BackupEnv {
        cellar_tests::backup_settings(&self.source, self.dir.path(), key)
            .build(self.pool.clone(), &self.catalog.url)
            .unwrap()
    }

    /// Takes a completed backup of the source (or of `tables`).
    pub async fn backup(&self, tables: Option<Vec<String>>) -> BackupId {
        let req = BackupRequest {
            source: "src".into(),
            tables,
            ..Default::default()
        };
        let (id, _) = backups::create(&self.pool, &req).await.unwrap();
        self.run_jobs().await;
        let row = backups::get(&self.pool, &id).await.unwrap().unwrap();
        assert_eq!(row.state, BackupState::Completed, "{:?}", row.error);
        id
    }

    /// Creates the restore, runs the worker until the queue is empty, returns the row.
    pub async fn restore(&self, req: &RestoreRequest) -> RestoreRow {
        let (id, _) = catalog::create(&self.pool, req).await.unwrap();
        self.run_jobs().await;
        self.row(id).await
    }

    pub async fn row(&self, id: RestoreId) -> RestoreRow {
        catalog::get(&self.pool, id).await.unwrap().unwrap()
    }

    pub async fn run_jobs(&self) {
        let mut w = Worker::new(self.pool.clone(), WorkerConfig::default());
        cellar_worker::handlers::register_all(&mut w, self.env.clone());
        let w = Arc::new(w);
        while w.run_once().await.unwrap() != RunOnce::Empty {}
    }

    /// The state of a backup.
    pub async fn backup_state(&self, id: &str) -> BackupState {
        let id: BackupId = id.parse().unwrap();
        backups::get(&self.pool, &id).await.unwrap().unwrap().state
    }
}

/// Runs SQL (several statements allowed) on `db` with psql.
pub fn psql(db: &TestDb, sql: &str) {
    run_psql(db, &["-c", sql]);
}

/// Loads an SQL file into `db`.
pub fn load(db: &TestDb, file: &Path) {
    run_psql(db, &["-f", file.to_str().unwrap()]);
}

fn run_psql(db: &TestDb, args: &[&str]) {
    let out = std::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db.url.expose()])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One value from `db`.
pub fn query(db: &TestDb, sql: &str) -> String {
    query_url(&db.url, sql)
}

fn query_url(url: &DbUrl, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .args([
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url.expose(),
            "-c",
            sql,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A fresh database loaded with pagila, or None (loudly) without the shared material.
pub async fn pagila() -> Option<TestDb> {
    let shared = shared_dir()?;
    let db = TestDb::empty().await;
    load(&db, &shared.join("datasets/pagila/pagila-schema.sql"));
    load(&db, &shared.join("datasets/pagila/pagila-data.sql"));
    Some(db)
}

/// `tools/dbdiff a b`: Ok when they match, Err with its report.
pub fn dbdiff(a: &TestDb, b: &TestDb) -> Result<(), String> {
    let tool = shared_dir().expect("shared material").join("tools/dbdiff");
    let out = std::process::Command::new(tool)
        .args([a.url.expose(), b.url.expose()])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    match out.status.success() {
        true => Ok(()),
        false => Err(report),
    }
}

/// A database the test did not create itself (a restore did), dropped with the test.
pub fn adopt(name: &str) -> TestDb {
    TestDb {
        name: name.to_string(),
        url: admin_url().with_database(name),
    }
}

/// A byte-for-byte copy of `src` (CREATE DATABASE ... TEMPLATE; nobody may be connected).
pub fn copy_of(src: &TestDb) -> TestDb {
    let copy = adopt(&format!("{}_copy{:04x}", src.name, rand::random::<u16>()));
    psql_admin(&format!(
        "CREATE DATABASE \"{}\" TEMPLATE \"{}\"",
        copy.name, src.name
    ));
    copy
}

/// Databases on the server whose name contains `part` (leftover scratch databases).
pub fn databases_like(part: &str) -> String {
    let sql = format!(
        "SELECT string_agg(datname, ',') FROM pg_database WHERE strpos(datname, '{part}') > 0"
    );
    query_url(&admin_url(), &sql)
}
