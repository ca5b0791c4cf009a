//! Live probes of everything a backup depends on, each reported as `{name, status, detail,
//! fix}` with a sentence saying what to do. Every probe runs under a timeout; no detail
//! contains a password, a key or a token (URLs are redacted, keys named by id only).
//!
//! ```text
//! run_all(setup): concurrently, each under setup.timeout
//!     catalog         SELECT 1 on the catalog
//!     workers         the registry: who was seen within three lease periods
//!     source NAME     connect; every table readable (SELECT, schema USAGE, RLS bypass)
//!     pg_dump NAME    pg_dump's major version >= the server's
//!     encryption key  keys parse; the newest backup's KEY unwraps and MANIFEST authenticates
//!     local storage   mkdir, write + fsync + read + delete a probe file, statvfs free space
//!     google drive    token, folder listed, a small object written, read back, deleted
//! status: failed if any failed, else warning if any warned, else ok
//! ```
//!
//! The probes need the worker's configuration (sources with passwords, keys, the backup
//! directory, Drive credentials), which the API does not have: the API enqueues a
//! [`JOB_DIAGNOSE`] job that a worker runs, and `cellar diagnose --direct` runs them in-process.

mod drive;
mod local;
mod source;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::workers;
use crate::backup::BackupSettings;
use crate::config::{DbUrl, Source, parse_sources, redact};
use crate::dump::PgDump;
use crate::format::KeyRing;
use crate::storage::DriveSettings;

/// The job kind a worker runs the probes under; its result is a [`Diagnosis`].
pub const JOB_DIAGNOSE: &str = "diagnose";

/// Diagnose settings (flattened into the worker's and the CLI's).
#[derive(clap::Args, Clone, Debug)]
pub struct DiagnoseSettings {
    /// Free space in the backup directory below which diagnose warns, in MiB.
    #[arg(long, env = "CELLAR_MIN_FREE_MIB", default_value_t = 1024)]
    pub min_free_mib: u64,
    /// Longest time one probe may take, in seconds.
    #[arg(long, env = "CELLAR_PROBE_TIMEOUT_SECS", default_value_t = 20.0)]
    pub probe_timeout_secs: f64,
}

impl Default for DiagnoseSettings {
    fn default() -> Self {
        Self {
            min_free_mib: 1024,
            probe_timeout_secs: 20.0,
        }
    }
}

/// How one probe went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeStatus {
    Ok,
    /// Not checked (not configured, or what it needs is unavailable); the detail says why.
    Skipped,
    Warning,
    Failed,
}

/// One probe's report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// What was probed, e.g. `source main`.
    pub name: String,
    pub status: ProbeStatus,
    /// What was found.
    pub detail: String,
    /// What to do about it (`None` when there is nothing to do).
    pub fix: Option<String>,
}

impl Probe {
    /// An `ok` probe.
    pub fn ok(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(name, ProbeStatus::Ok, detail, None)
    }
    /// A `skipped` probe: the detail says why.
    pub fn skipped(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(name, ProbeStatus::Skipped, detail, None)
    }
    /// A `warning` probe with its fix.
    pub fn warning(name: impl Into<String>, detail: impl Into<String>, fix: &str) -> Self {
        Self::new(name, ProbeStatus::Warning, detail, Some(fix))
    }
    /// A `failed` probe with its fix.
    pub fn failed(name: impl Into<String>, detail: impl Into<String>, fix: &str) -> Self {
        Self::new(name, ProbeStatus::Failed, detail, Some(fix))
    }
    /// A probe with any status; the detail is redacted of URL passwords.
    pub fn new(
        name: impl Into<String>,
        status: ProbeStatus,
        detail: impl Into<String>,
        fix: Option<&str>,
    ) -> Self {
        Self {
            name: name.into(),
            status,
            detail: redact(&detail.into()),
            fix: fix.map(str::to_owned),
        }
    }
}

/// The whole diagnosis.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnosis {
    /// `failed` if any probe failed, else `warning` if any warned, else `ok`.
    pub status: ProbeStatus,
    pub probes: Vec<Probe>,
    pub checked_at: DateTime<Utc>,
    /// Where the probes ran (a worker's host and id, or `cellar diagnose --direct`).
    pub ran_on: String,
}

impl Diagnosis {
    /// Wraps probes, computing the overall status.
    pub fn new(probes: Vec<Probe>, ran_on: String) -> Self {
        let status = match probes.iter().map(|p| p.status).max() {
            Some(ProbeStatus::Failed) => ProbeStatus::Failed,
            Some(ProbeStatus::Warning) => ProbeStatus::Warning,
            _ => ProbeStatus::Ok,
        };
        Self {
            status,
            probes,
            checked_at: Utc::now(),
            ran_on,
        }
    }

    /// The probe named `name`, if any.
    pub fn probe(&self, name: &str) -> Option<&Probe> {
        self.probes.iter().find(|p| p.name == name)
    }
}

/// What the probes need: a worker's configuration, each part kept even when it is broken (a
/// broken part is what a probe reports).
pub struct Setup {
    pub pool: PgPool,
    pub sources: Result<Vec<Source>, String>,
    pub backup_dir: PathBuf,
    /// The master keys; `Err` says why there are none usable.
    pub keyring: Result<Arc<KeyRing>, String>,
    /// No key is configured: the development key beside the backups is in use.
    pub dev_key: bool,
    pub pg_dump: PgDump,
    pub drive: DriveSettings,
    pub min_free_bytes: u64,
    pub timeout: Duration,
}

impl Setup {
    /// From the worker's settings. Unlike `BackupSettings::build`, nothing is created (no
    /// directory, no development key): the probes report what is there.
    pub fn new(
        pool: PgPool,
        catalog: &DbUrl,
        backup: &BackupSettings,
        drive: &DriveSettings,
        d: &DiagnoseSettings,
    ) -> Self {
        let sources = match &backup.source_url {
            Some(s) => parse_sources(s).map_err(|e| format!("CELLAR_SOURCE_URL: {e}")),
            None => Ok(vec![Source {
                name: catalog.database().unwrap_or("default").to_string(),
                url: catalog.clone(),
            }]),
        };
        let dev_key = backup.encryption_key.is_none() && backup.encryption_key_file.is_none();
        let keyring = if dev_key {
            let path = backup.backup_dir.join(".dev-encryption-key");
            KeyRing::from_file(&path).map_err(|e| {
                format!(
                    "no CELLAR_ENCRYPTION_KEY is set and no development key is usable at {}: {e}",
                    path.display()
                )
            })
        } else {
            backup.keyring().map_err(|e| e.to_string())
        };
        Self {
            pool,
            sources,
            backup_dir: backup.backup_dir.clone(),
            keyring: keyring.map(Arc::new),
            dev_key,
            pg_dump: PgDump::new(&backup.pg_dump),
            drive: drive.clone(),
            min_free_bytes: d.min_free_mib.saturating_mul(1 << 20),
            timeout: Duration::from_secs_f64(d.probe_timeout_secs.clamp(0.1, 600.0)),
        }
    }
}

/// Runs every probe concurrently, each under `setup.timeout`.
#[tracing::instrument(skip_all)]
pub async fn run_all(setup: &Setup, ran_on: String) -> Diagnosis {
    let t = setup.timeout;
    let (catalog, workers, sources, key, local, drive) = tokio::join!(
        timed(t, "catalog", async {
            vec![catalog_probe(&setup.pool).await]
        }),
        timed(t, "workers", async {
            vec![workers_probe(&setup.pool).await]
        }),
        timed(t, "sources", source::probes(setup)),
        timed(t, "encryption key", async {
            vec![local::key_probe(setup).await]
        }),
        timed(t, "local storage", async {
            vec![local::dir_probe(setup).await]
        }),
        timed(t, "google drive", async {
            vec![drive::probe(&setup.drive).await]
        }),
    );
    let probes = [catalog, workers, sources, key, local, drive].concat();
    Diagnosis::new(probes, ran_on)
}

async fn timed(
    t: Duration,
    name: &str,
    f: impl std::future::Future<Output = Vec<Probe>>,
) -> Vec<Probe> {
    match tokio::time::timeout(t, f).await {
        Ok(p) => p,
        Err(_) => vec![Probe::failed(
            name,
            format!("did not answer within {:.0} s", t.as_secs_f64()),
            "Something it talks to hangs: check the network path and the server's load, or \
             raise CELLAR_PROBE_TIMEOUT_SECS if it is merely slow.",
        )],
    }
}

/// The catalog answers a query.
pub async fn catalog_probe(pool: &PgPool) -> Probe {
    let start = Instant::now();
    match crate::db::ping(pool).await {
        Ok(()) => Probe::ok(
            "catalog",
            format!("answers in {} ms", start.elapsed().as_millis()),
        ),
        Err(e) => Probe::failed(
            "catalog",
            format!("the catalog database does not answer: {e}"),
            "Check DATABASE_URL and that its Postgres server is running and reachable.",
        ),
    }
}

/// Workers seen within three lease periods, from the registry.
pub async fn workers_probe(pool: &PgPool) -> Probe {
    let all = match workers::list(pool).await {
        Ok(w) => w,
        Err(e) => {
            return Probe::failed(
                "workers",
                format!("the worker registry cannot be read: {e}"),
                "Check the catalog database (see the catalog probe) and run `cellar migrate`.",
            );
        }
    };
    let now = Utc::now();
    let live: Vec<String> = all
        .iter()
        .filter(|w| w.is_live(now))
        .map(|w| format!("{} pid {} (v{})", w.host, w.pid, w.version))
        .collect();
    if live.is_empty() {
        let last = all
            .first()
            .map_or("no worker has ever registered".to_string(), |w| {
                format!(
                    "the last one, {} pid {}, was seen at {}",
                    w.host, w.pid, w.last_seen_at
                )
            });
        return Probe::failed(
            "workers",
            format!("no worker is live: {last}"),
            "Start cellar-worker (any number of them, with the same DATABASE_URL); if one is \
             running, its log says why it cannot reach the catalog.",
        );
    }
    Probe::ok(
        "workers",
        format!("{} live: {}", live.len(), live.join(", ")),
    )
}
