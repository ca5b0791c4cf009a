//! Backup settings from the environment, and the environment a backup runs in.

use std::path::PathBuf;
use std::sync::Arc;

use sqlx::PgPool;

use super::run::key_object;
use super::{BackupError, BackupId, catalog};
use crate::config::{DbUrl, Source, parse_sources};
use crate::dump::PgDump;
use crate::format::{EncodeOptions, KeyRing};
use crate::storage::{DriveSettings, DriveStorage, LocalStorage, Storage};

/// How backups are taken and where they go.
#[derive(clap::Args, Clone, Debug)]
pub struct BackupSettings {
    /// Databases to protect: one URL, or `name=url` entries separated by commas (the first is
    /// the default). Unset: the catalog database itself.
    #[arg(long = "source-url", env = "CELLAR_SOURCE_URL", hide_env_values = true)]
    pub source_url: Option<String>,
    /// Directory of the local backup copies.
    #[arg(long, env = "CELLAR_BACKUP_DIR", default_value = "./backups")]
    pub backup_dir: PathBuf,
    /// Master key(s): base64 of 32 bytes, or `ID:BASE64` entries separated by commas (the first
    /// encrypts, all decrypt). `cellar key generate` prints one.
    #[arg(long, env = "CELLAR_ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<String>,
    /// The same, read from a file.
    #[arg(long, env = "CELLAR_ENCRYPTION_KEY_FILE")]
    pub encryption_key_file: Option<PathBuf>,
    /// Parallel COPY connections per backup (default: the number of cores).
    #[arg(long, env = "CELLAR_BACKUP_JOBS")]
    pub jobs: Option<usize>,
    /// gzip level 0-9. 3 was chosen by benchmark (docs/BENCHMARKS.md): on realistic rows it
    /// is twice as fast as 6 for 7% more bytes; zlib-rs's level 1 is its "quick" strategy,
    /// up to 60% bigger.
    #[arg(long, env = "CELLAR_GZIP_LEVEL", default_value_t = 3)]
    pub gzip_level: u32,
    /// Tables larger than this many MiB are split into ctid ranges copied in parallel, each at
    /// most this size (smaller, down to 16 MiB, so that every connection gets at least four).
    /// A split table is read through all of shared_buffers (PostgreSQL gives TID range scans no
    /// bulk-read ring), evicting the application's cached pages; above the largest table, every
    /// table is one plain COPY that leaves the cache alone, at the cost of parallelism.
    #[arg(long, env = "CELLAR_SPLIT_TABLE_MIB", default_value_t = 64)]
    pub split_table_mib: u64,
    /// The application's files directory (uploads), archived when a backup asks for files.
    #[arg(long, env = "CELLAR_FILES_DIR")]
    pub files_dir: Option<PathBuf>,
    /// The pg_dump program.
    #[arg(long, env = "CELLAR_PG_DUMP", default_value = "pg_dump")]
    pub pg_dump: PathBuf,
}

/// Everything a backup or verification needs, built once per worker.
#[derive(Clone)]
pub struct BackupEnv {
    /// The catalog.
    pub pool: PgPool,
    /// Configured sources; the first is the default.
    pub sources: Vec<Source>,
    /// Where objects go: the local copies.
    pub storage: Arc<dyn Storage>,
    /// The Google Drive copies, when `GOOGLE_DRIVE_BACKUP_FOLDER_ID` is set (see [`upload`]).
    ///
    /// [`upload`]: super::upload
    pub drive: Option<Arc<DriveStorage>>,
    /// Master keys.
    pub keyring: Arc<KeyRing>,
    /// pg_dump.
    pub pg_dump: PgDump,
    /// Parallel COPY connections.
    pub jobs: usize,
    /// Segment encoding.
    pub encode: EncodeOptions,
    /// Split threshold in bytes.
    pub chunk_bytes: u64,
    /// `CELLAR_FILES_DIR`, if configured.
    pub files_dir: Option<PathBuf>,
}

impl BackupSettings {
    /// Builds the environment; `catalog` is the default source when none is configured.
    /// Errors are messages a person can act on.
    pub fn build(&self, pool: PgPool, catalog: &DbUrl) -> Result<BackupEnv, String> {
        let sources = match &self.source_url {
            Some(s) => parse_sources(s).map_err(|e| format!("CELLAR_SOURCE_URL: {e}"))?,
            None => vec![Source {
                name: catalog.database().unwrap_or("default").to_string(),
                url: catalog.clone(),
            }],
        };
        if self.gzip_level > 9 {
            return Err(format!(
                "CELLAR_GZIP_LEVEL must be 0-9, got {}",
                self.gzip_level
            ));
        }
        let storage = LocalStorage::new(&self.backup_dir)
            .map_err(|e| format!("CELLAR_BACKUP_DIR {}: {e}", self.backup_dir.display()))?;
        let jobs = self.jobs.unwrap_or_else(crate::dump::default_jobs).max(1);
        Ok(BackupEnv {
            pool,
            sources,
            storage: Arc::new(storage),
            drive: None,
            keyring: Arc::new(self.keyring()?),
            pg_dump: PgDump::new(&self.pg_dump),
            jobs,
            encode: EncodeOptions {
                level: self.gzip_level,
                ..EncodeOptions::default()
            },
            chunk_bytes: self.split_table_mib.max(1) << 20,
            files_dir: self.files_dir.clone(),
        })
    }

    /// The master keyring. Without any configured key, a development key is generated once and
    /// kept in `<backup dir>/.dev-encryption-key`, with a loud warning: fine for trying Cellar,
    /// not for production (whoever reads the backup directory can decrypt).
    pub fn keyring(&self) -> Result<KeyRing, String> {
        match (&self.encryption_key, &self.encryption_key_file) {
            (Some(_), Some(_)) => {
                Err("set CELLAR_ENCRYPTION_KEY or CELLAR_ENCRYPTION_KEY_FILE, not both".into())
            }
            (Some(k), None) => KeyRing::parse(k).map_err(|e| format!("CELLAR_ENCRYPTION_KEY: {e}")),
            (None, Some(p)) => KeyRing::from_file(p)
                .map_err(|e| format!("CELLAR_ENCRYPTION_KEY_FILE {}: {e}", p.display())),
            (None, None) => self.dev_keyring(),
        }
    }

    fn dev_keyring(&self) -> Result<KeyRing, String> {
        let path = self.backup_dir.join(".dev-encryption-key");
        if !path.exists() {
            std::fs::create_dir_all(&self.backup_dir)
                .and_then(|_| std::fs::write(&path, KeyRing::generate_entry()))
                .map_err(|e| format!("writing a development key to {}: {e}", path.display()))?;
        }
        tracing::warn!(
            path = %path.display(),
            "NO CELLAR_ENCRYPTION_KEY SET: using a development key stored next to the backups. \
             Anyone who can read the backup directory can decrypt them. Set \
             CELLAR_ENCRYPTION_KEY (cellar key generate) before protecting real data."
        );
        KeyRing::from_file(&path).map_err(|e| format!("{}: {e}", path.display()))
    }
}

impl BackupEnv {
    /// Adds the Drive copies when `drive` names a backup folder (else returns `self` as is).
    /// Errors are messages a person can act on.
    pub async fn with_drive(mut self, drive: &DriveSettings) -> Result<Self, String> {
        let Some(cfg) = drive.config()? else {
            return Ok(self);
        };
        let storage = DriveStorage::connect(cfg)
            .await
            .map_err(|e| format!("Google Drive (GOOGLE_DRIVE_BACKUP_FOLDER_ID): {e}"))?;
        self.drive = Some(Arc::new(storage));
        Ok(self)
    }

    /// Where to read backup `id` from: the local copy while its KEY is there, else Drive when
    /// the catalog says the Drive copy is available, else local (whose errors then name what
    /// is missing).
    pub async fn storage_for(&self, id: &BackupId) -> Result<Arc<dyn Storage>, BackupError> {
        match self.storage.stat(&key_object(id)).await {
            Err(e) if e.is_not_found() => {}
            _ => return Ok(Arc::clone(&self.storage)),
        }
        let Some(drive) = &self.drive else {
            return Ok(Arc::clone(&self.storage));
        };
        let row = catalog::get(&self.pool, id).await?;
        let on_drive = row.is_some_and(|r| r.locations["drive"] == "available");
        if on_drive {
            tracing::info!(backup_id = %id, "no local copy: reading from Google Drive");
            return Ok(Arc::clone(drive) as Arc<dyn Storage>);
        }
        Ok(Arc::clone(&self.storage))
    }

    /// A copy whose object writers share one CPU budget (a permit per core), so a backup
    /// writing several objects at once compresses at most that many segments at a time.
    pub fn with_cpu_budget(&self) -> BackupEnv {
        let mut env = self.clone();
        let permits = env.encode.parallelism.max(1);
        env.encode.budget = Some(Arc::new(tokio::sync::Semaphore::new(permits)));
        env
    }

    /// The configured source named `name`, or the default one.
    pub fn source(&self, name: Option<&str>) -> Result<&Source, String> {
        match name {
            None => Ok(&self.sources[0]),
            Some(n) => self.sources.iter().find(|s| s.name == n).ok_or_else(|| {
                let known: Vec<&str> = self.sources.iter().map(|s| s.name.as_str()).collect();
                format!(
                    "unknown source {n:?}: configured sources are {}",
                    known.join(", ")
                )
            }),
        }
    }
}
