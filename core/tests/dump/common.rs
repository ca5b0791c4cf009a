//! Test databases and a small parallel copy driver shaped like the backup job's.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cellar_core::dump::{CopyStats, CopyTask, DataConn, DumpError, TableName};
use sqlx::{Connection, PgConnection};
use tokio::sync::mpsc;

/// Where the test server is; databases are created next to `postgres`.
pub fn server_url() -> String {
    std::env::var("CELLAR_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A database created for one test and dropped (with FORCE, so open snapshots do not block it)
/// when the guard goes out of scope, even if the test panicked.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn create() -> Self {
        let name = format!("cellar_t_{}", uuid::Uuid::new_v4().simple());
        psql_admin(&format!("CREATE DATABASE {name}"));
        let url = format!("{}/{name}", server_url());
        Self { name, url }
    }

    /// Runs SQL (several statements allowed) in this database.
    pub async fn exec(&self, sql: &str) {
        let mut conn = PgConnection::connect(&self.url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut conn)
            .await
            .unwrap();
    }

    /// `SELECT count(*) FROM ONLY <table>`.
    pub async fn count(&self, table: &TableName) -> u64 {
        let mut conn = PgConnection::connect(&self.url).await.unwrap();
        let sql = format!("SELECT count(*) FROM ONLY {}", table.quoted());
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        n as u64
    }

    /// Loads an SQL file with psql, stopping at the first error.
    pub fn load_file(&self, path: &std::path::Path) {
        let out = Command::new("psql")
            .args(["-q", "-X", "-v", "ON_ERROR_STOP=1", "-d", &self.url, "-f"])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "loading {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        psql_admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// A login role for one test, dropped at the end (declare it before the databases it owns
/// objects in, so that they are dropped first).
pub struct TestRole(pub String);

impl TestRole {
    pub fn create(attributes: &str) -> Self {
        let name = format!("cellar_t_role_{}", uuid::Uuid::new_v4().simple());
        psql_admin(&format!("CREATE ROLE {name} LOGIN {attributes}"));
        Self(name)
    }

    /// The URL of `db` as this role (trust authentication).
    pub fn url(&self, db: &TestDb) -> String {
        db.url.replacen("postgres@", &format!("{}@", self.0), 1)
    }
}

impl Drop for TestRole {
    fn drop(&mut self) {
        psql_admin(&format!("DROP ROLE IF EXISTS {}", self.0));
    }
}

pub fn psql_admin(sql: &str) {
    let out = Command::new("psql")
        .args([
            "-q",
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            &format!("{}/postgres", server_url()),
            "-c",
            sql,
        ])
        .output()
        .expect("psql must be installed to run these tests");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The shared datasets folder: `$CELLAR_SHARED_DIR`, else `<repo>/../shared`.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("CELLAR_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")),
    }
}

/// What one task produced.
pub struct TaskOutput {
    pub task: CopyTask,
    pub stats: CopyStats,
    pub text: Vec<u8>,
    /// Sizes of the buffers received, to check the gathering.
    pub buffers: Vec<usize>,
}

/// Copies one task on `conn` into memory.
pub async fn copy_one(conn: &mut DataConn, task: &CopyTask) -> Result<TaskOutput, DumpError> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(4);
    let drain = tokio::spawn(async move {
        let (mut text, mut buffers) = (Vec::new(), Vec::new());
        while let Some(b) = rx.recv().await {
            buffers.push(b.len());
            text.extend_from_slice(&b);
        }
        (text, buffers)
    });
    let stats = conn.copy(task, tx, &()).await?;
    let (text, buffers) = drain.await.unwrap();
    Ok(TaskOutput {
        task: task.clone(),
        stats,
        text,
        buffers,
    })
}

/// Runs `tasks` on `jobs` data connections inside `snapshot_id`, like the backup job will.
pub async fn copy_all(
    url: &str,
    snapshot_id: &str,
    tasks: Vec<CopyTask>,
    jobs: usize,
) -> Vec<TaskOutput> {
    let queue = Arc::new(Mutex::new(VecDeque::from(tasks)));
    let mut workers = Vec::new();
    for _ in 0..jobs {
        let (queue, url, id) = (Arc::clone(&queue), url.to_string(), snapshot_id.to_string());
        workers.push(tokio::spawn(async move {
            let mut conn = DataConn::connect(&url, &id).await.unwrap();
            let mut done = Vec::new();
            loop {
                let next = queue.lock().unwrap().pop_front();
                let Some(task) = next else { break };
                done.push(copy_one(&mut conn, &task).await.unwrap());
            }
            done
        }));
    }
    let mut out = Vec::new();
    for w in workers {
        out.extend(w.await.unwrap());
    }
    out.sort_by_key(|o| o.task.index);
    out
}

/// Lines per table (sorted), over all of a table's parts.
pub fn lines_by_table(outputs: &[TaskOutput]) -> BTreeMap<String, Vec<String>> {
    let mut by_table: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for o in outputs {
        let text = String::from_utf8(o.text.clone()).unwrap();
        by_table
            .entry(o.task.table.name.to_string())
            .or_default()
            .extend(text.lines().map(str::to_string));
    }
    by_table.values_mut().for_each(|v| v.sort());
    by_table
}
