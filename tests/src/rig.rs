//! A catalog, a source database, a local backup directory and a master key, wired the same way
//! for real `cellar-worker` / `cellar-api` processes (as environment variables) and for
//! in-process checks (a [`BackupEnv`]): the fixture the chaos tests kill things around.

use std::path::PathBuf;
use std::time::Duration;

use cellar_core::backup::BackupEnv;
use cellar_core::config::DbUrl;
use cellar_core::format::KeyRing;
use cellar_core::queue::{JobRow, JobState, control};
use sqlx::PgPool;

use crate::fake_drive::{FakeDrive, SHARED_FOLDER};
use crate::procs::{Proc, spawn};
use crate::{TestDb, wait_for};

/// Everything a scenario needs; processes it starts log under `dir/logs`.
pub struct Rig {
    /// The catalog database (`DATABASE_URL` of the processes).
    pub catalog: TestDb,
    /// A pool on it.
    pub pool: PgPool,
    /// The source, configured as `src`.
    pub source: TestDb,
    /// Scratch: `backups/` (the local storage), `logs/`, Drive key files.
    pub dir: tempfile::TempDir,
    /// The master key entry (`CELLAR_ENCRYPTION_KEY`).
    pub key: String,
    /// Extra variables for every process (Drive settings, overrides).
    pub extra: Vec<(String, String)>,
    /// Catalog URL override (a private cluster); `None`: the catalog above.
    pub catalog_url: Option<DbUrl>,
    started: usize,
}

impl Rig {
    /// A fresh catalog and `source` as `src`.
    pub async fn new(source: TestDb) -> Self {
        let (catalog, pool) = TestDb::catalog().await;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("logs")).expect("logs dir");
        Self {
            catalog,
            pool,
            source,
            dir,
            key: KeyRing::generate_entry(),
            extra: Vec::new(),
            catalog_url: None,
            started: 0,
        }
    }

    /// Where backups are stored.
    pub fn backups(&self) -> PathBuf {
        self.dir.path().join("backups")
    }

    /// The environment every process gets: fast leases (1 s), fast retries, 2 COPY lanes.
    pub fn env(&self) -> Vec<(String, String)> {
        let url = self.catalog_url.as_ref().unwrap_or(&self.catalog.url);
        let mut v: Vec<(String, String)> = [
            ("DATABASE_URL", url.expose().to_string()),
            (
                "CELLAR_SOURCE_URL",
                format!("src={}", self.source.url.expose()),
            ),
            ("CELLAR_BACKUP_DIR", self.backups().display().to_string()),
            ("CELLAR_ENCRYPTION_KEY", self.key.clone()),
            ("CELLAR_BACKUP_JOBS", "2".into()),
            ("CELLAR_GZIP_LEVEL", "1".into()),
            ("CELLAR_SPLIT_TABLE_MIB", "1".into()),
            ("CELLAR_LEASE_SECS", "1".into()),
            ("CELLAR_POLL_INTERVAL_MS", "100".into()),
            ("CELLAR_RETRY_BASE_SECS", "0.1".into()),
            ("CELLAR_RETRY_MAX_SECS", "0.5".into()),
            ("CELLAR_SHUTDOWN_GRACE_SECS", "2".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        v.extend(self.extra.iter().cloned());
        v
    }

    /// Points every process at `fake` (folder [`SHARED_FOLDER`], 256 KiB chunks).
    pub fn use_drive(&mut self, fake: &FakeDrive) {
        let s = fake.settings(self.dir.path(), SHARED_FOLDER);
        let creds = s.google_application_credentials.expect("key file");
        self.extra.extend([
            (
                "GOOGLE_APPLICATION_CREDENTIALS".into(),
                creds.display().to_string(),
            ),
            ("GOOGLE_DRIVE_BACKUP_FOLDER_ID".into(), SHARED_FOLDER.into()),
            ("GOOGLE_DRIVE_API_URL".into(), s.google_drive_api_url),
            ("GOOGLE_DRIVE_UPLOAD_URL".into(), s.google_drive_upload_url),
            ("GOOGLE_DRIVE_CHUNK_KIB".into(), "256".into()),
        ]);
    }

    /// Starts a real `cellar-worker`; its log is `logs/worker-<n>.log`.
    pub fn worker(&mut self) -> Proc {
        self.started += 1;
        let log = self.log_path(&format!("worker-{}", self.started));
        spawn("cellar-worker", &self.env(), &log)
    }

    /// Starts a real `cellar-api` on `addr` (`127.0.0.1:PORT`); log `logs/api-<n>.log`.
    pub fn api(&mut self, addr: &str) -> Proc {
        self.started += 1;
        let log = self.log_path(&format!("api-{}", self.started));
        let mut env = self.env();
        env.push(("CELLAR_LISTEN".into(), addr.into()));
        spawn("cellar-api", &env, &log)
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join("logs").join(format!("{name}.log"))
    }

    /// Every process log so far, concatenated (for post-mortems and secret scans).
    pub fn logs(&self) -> String {
        let mut all = String::new();
        let Ok(rd) = std::fs::read_dir(self.dir.path().join("logs")) else {
            return all;
        };
        for e in rd.filter_map(|e| e.ok()) {
            all.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
        all
    }

    /// The same storage and key for checks run in this process (verify, listing).
    pub fn backup_env(&self) -> BackupEnv {
        crate::backup_settings(&self.source, &self.backups(), &self.key)
            .build(self.pool.clone(), &self.catalog.url)
            .expect("backup settings")
    }

    /// Job `id` now.
    pub async fn job(&self, id: i64) -> JobRow {
        control::get(&self.pool, id).await.expect("job row")
    }

    /// Waits until job `id` is running (or already final); false if it finished first.
    pub async fn until_running(&self, id: i64) -> bool {
        wait_for(Duration::from_secs(60), "the job to be claimed", || async {
            let s = self.job(id).await.state;
            s == JobState::Running || s.is_final()
        })
        .await;
        self.job(id).await.state == JobState::Running
    }

    /// Waits (up to `within`) for job `id` to reach a final state and returns it; the panic
    /// on timeout points at the logs.
    pub async fn until_final(&self, id: i64, within: Duration) -> JobRow {
        let what = format!("job {id} to finish (logs in {})", self.log_dir().display());
        wait_for(within, &what, || async {
            self.job(id).await.state.is_final()
        })
        .await;
        self.job(id).await
    }

    /// Where process logs go.
    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// Keeps the scratch directory (logs, backups) after the test, for post-mortems.
    pub fn keep(self) -> PathBuf {
        let Rig { dir, .. } = self;
        dir.keep()
    }
}

/// A source with one ~`rows`-row table of incompressible text (`big`) and a small one.
pub async fn source(rows: u32) -> TestDb {
    let db = TestDb::empty().await;
    let pool = cellar_core::db::connect(&db.url, 1).await.expect("connect");
    for sql in [
        "CREATE TABLE big (id int PRIMARY KEY, a text NOT NULL, b text NOT NULL)".to_string(),
        format!(
            "INSERT INTO big SELECT g, md5(g::text), md5(random()::text) || md5(random()::text) \
             FROM generate_series(1, {rows}) g"
        ),
        "CREATE TABLE small (id serial PRIMARY KEY, name text NOT NULL)".into(),
        "INSERT INTO small (name) SELECT 'n' || g FROM generate_series(1, 500) g".into(),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .expect("load source");
    }
    pool.close().await;
    db
}

/// Makes `db` (made by [`source`]) differ from any backup of a source: other rows in both
/// tables, and the sequence moved.
pub async fn scramble(db: &TestDb) {
    let pool = cellar_core::db::connect(&db.url, 1).await.expect("connect");
    let n: i64 = rand::random::<u16>().into();
    for sql in [
        "DELETE FROM big WHERE id % 7 = 0".to_string(),
        format!("INSERT INTO small (name) VALUES ('scrambled {n}')"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .expect("scramble");
    }
    pool.close().await;
}

impl Rig {
    /// [`Rig::backup_env`] with another master key (`CELLAR_ENCRYPTION_KEY`) instead.
    pub fn backup_env_with_key(&self, key: &str) -> BackupEnv {
        crate::backup_settings(&self.source, &self.backups(), key)
            .build(self.pool.clone(), &self.catalog.url)
            .expect("backup settings")
    }
}
