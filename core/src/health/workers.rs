//! The worker registry (`worker` table): each worker process announces itself at start,
//! refreshes `last_seen_at` on every heartbeat tick, and marks itself stopped on a graceful
//! shutdown. Health counts live workers from here; `diagnose` names the silent ones.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// A worker counts as live while it was seen within this many of its own lease periods (its
/// heartbeat ticks four times per lease, so three periods is twelve missed ticks).
pub const LIVE_WITHIN_LEASES: f64 = 3.0;

/// Rows of workers not seen for this long are deleted by [`prune`].
pub const PRUNE_AFTER_DAYS: i32 = 7;

/// What a worker says about itself when it starts.
#[derive(Clone, Debug)]
pub struct Announce {
    /// The process's identity (`job.locked_by`).
    pub id: Uuid,
    /// The machine it runs on.
    pub host: String,
    /// Its process id.
    pub pid: i32,
    /// The cellar version it runs.
    pub version: String,
    /// The job kinds it runs.
    pub kinds: Vec<String>,
    /// Its `CELLAR_LEASE_SECS`.
    pub lease_secs: f64,
    /// Its configuration without secrets (source names, Drive folders).
    pub config: Value,
}

impl Announce {
    /// This process: host name from the kernel, pid, the crate version.
    pub fn this_process(id: Uuid, kinds: Vec<String>, lease_secs: f64, config: Value) -> Self {
        Self {
            id,
            host: host_name(),
            pid: std::process::id() as i32,
            version: env!("CARGO_PKG_VERSION").to_string(),
            kinds,
            lease_secs,
            config,
        }
    }
}

/// The kernel's host name (`/proc/sys/kernel/hostname`), else `$HOSTNAME`, else `unknown`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().chars().take(255).collect::<String>())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// A worker as registered.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerRow {
    pub id: Uuid,
    pub host: String,
    pub pid: i32,
    pub version: String,
    pub kinds: Vec<String>,
    pub lease_secs: f64,
    pub config: Value,
    pub started_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
}

impl WorkerRow {
    /// Live at `now`: not stopped, and seen within [`LIVE_WITHIN_LEASES`] lease periods.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        let window =
            chrono::Duration::milliseconds((self.lease_secs * LIVE_WITHIN_LEASES * 1000.0) as i64);
        self.stopped_at.is_none() && self.last_seen_at + window >= now
    }
}

/// Registers (or re-registers) a worker at start.
pub async fn announce(pool: &PgPool, a: &Announce) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO worker (id, host, pid, version, kinds, lease_secs, config)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (id) DO UPDATE SET last_seen_at = now(), stopped_at = NULL"#,
        a.id,
        a.host,
        a.pid,
        a.version,
        &a.kinds,
        a.lease_secs,
        a.config
    )
    .execute(pool)
    .await
    .map(drop)
}

/// Refreshes `last_seen_at`; false when the row is gone (pruned while the worker was paused):
/// the caller announces again.
pub async fn beat(pool: &PgPool, id: Uuid) -> Result<bool, sqlx::Error> {
    let r = sqlx::query!(
        "UPDATE worker SET last_seen_at = greatest(now(), started_at), stopped_at = NULL WHERE id = $1",
        id
    )
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Marks a worker stopped (graceful shutdown): it stops counting as live at once.
pub async fn stopped(pool: &PgPool, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE worker SET stopped_at = now() WHERE id = $1 AND stopped_at IS NULL",
        id
    )
    .execute(pool)
    .await
    .map(drop)
}

/// Every registered worker, most recently seen first (at most 200).
pub async fn list(pool: &PgPool) -> Result<Vec<WorkerRow>, sqlx::Error> {
    sqlx::query_as!(
        WorkerRow,
        r#"SELECT id, host, pid, version, kinds, lease_secs, config, started_at, last_seen_at,
                  stopped_at
           FROM worker ORDER BY last_seen_at DESC LIMIT 200"#
    )
    .fetch_all(pool)
    .await
}

/// Deletes rows of workers stopped or unseen for [`PRUNE_AFTER_DAYS`] days.
pub async fn prune(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let r = sqlx::query!(
        "DELETE FROM worker WHERE last_seen_at < now() - make_interval(days => $1)",
        PRUNE_AFTER_DAYS
    )
    .execute(pool)
    .await?;
    Ok(r.rows_affected())
}

/// What a worker reports about its configuration: source names, whether Drive is on, and the
/// Drive folder ids. Never a URL, a key or a credential.
pub fn config_summary(sources: &[String], drive: &crate::storage::DriveSettings) -> Value {
    serde_json::json!({
        "sources": sources,
        "driveConfigured": drive.enabled(),
        "driveFolders": {
            "backup": drive.google_drive_backup_folder_id,
            "daily": drive.google_drive_daily_folder_id,
            "weekly": drive.google_drive_weekly_folder_id,
            "monthly": drive.google_drive_monthly_folder_id,
        },
    })
}
