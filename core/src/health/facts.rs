//! Gathering the facts health is judged on: one read of the catalog as seen at `now` (rows
//! created after `now` are ignored, so tests can judge the past with a controllable clock).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use super::workers::{self, WorkerRow};
use crate::backup::{BackupState, BackupType};

/// A backup in one line.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupBrief {
    pub id: String,
    pub backup_type: BackupType,
    pub state: BackupState,
    pub at: DateTime<Utc>,
}

/// What is known about one source's backups (safety backups left out).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceFacts {
    /// The source's name.
    pub name: String,
    /// Its newest backup, whatever its state (`at` is its creation time).
    pub last_backup: Option<BackupBrief>,
    /// Its newest completed backup (`at` is its completion time).
    pub last_success_id: Option<String>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// Its newest backup that passed verification (`at` is the verification time).
    pub last_verified_id: Option<String>,
    pub last_verified_at: Option<DateTime<Utc>>,
    /// Failed backups since its last success.
    pub failure_streak: i64,
}

/// Catalog-wide counts.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Backups not deleted.
    pub total_backups: i64,
    /// Backups created in the last 24 hours and 7 days (every state).
    pub backups_last_24h: i64,
    pub backups_last_week: i64,
    /// Completed and failed in the last 7 days.
    pub successes_last_week: i64,
    pub failures_last_week: i64,
    /// Verifications in the last 7 days, and how many passed.
    pub verified_last_week: i64,
    pub verified_valid_last_week: i64,
    /// Stored bytes of completed backups per location.
    pub storage_local_bytes: i64,
    pub storage_drive_bytes: i64,
}

impl Totals {
    /// Share of last week's verifications that passed; `None` without any.
    pub fn verification_rate(&self) -> Option<f64> {
        (self.verified_last_week > 0)
            .then(|| self.verified_valid_last_week as f64 / self.verified_last_week as f64)
    }
}

/// The queue, for one job kind.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueKind {
    pub kind: String,
    /// Runnable now (available, or scheduled/retryable and due).
    pub waiting: i64,
    /// How long the oldest runnable one has been due, in seconds.
    pub oldest_waiting_secs: Option<f64>,
    /// Running now.
    pub running: i64,
}

/// Everything health is judged on.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Facts {
    /// The clock the facts were read at.
    pub now: DateTime<Utc>,
    pub sources: Vec<SourceFacts>,
    pub totals: Totals,
    pub queue: Vec<QueueKind>,
    /// Registered workers (live or not), most recently seen first.
    pub workers: Vec<WorkerRow>,
}

impl Facts {
    /// Workers live at `now`.
    pub fn live_workers(&self) -> Vec<&WorkerRow> {
        self.workers
            .iter()
            .filter(|w| w.is_live(self.now))
            .collect()
    }

    /// Jobs runnable now, all kinds.
    pub fn waiting(&self) -> i64 {
        self.queue.iter().map(|q| q.waiting).sum()
    }

    /// The longest any runnable job has waited, in seconds.
    pub fn oldest_waiting_secs(&self) -> Option<f64> {
        self.queue
            .iter()
            .filter_map(|q| q.oldest_waiting_secs)
            .max_by(f64::total_cmp)
    }
}

/// Reads the facts as seen at `now`; `configured` source names are listed even without backups.
#[tracing::instrument(skip_all)]
pub async fn gather(
    pool: &PgPool,
    now: DateTime<Utc>,
    configured: &[String],
) -> Result<Facts, sqlx::Error> {
    Ok(Facts {
        now,
        sources: sources(pool, now, configured).await?,
        totals: totals(pool, now).await?,
        queue: queue(pool, now).await?,
        workers: workers::list(pool).await?,
    })
}

async fn sources(
    pool: &PgPool,
    now: DateTime<Utc>,
    configured: &[String],
) -> Result<Vec<SourceFacts>, sqlx::Error> {
    let rows = sqlx::query_file!("src/health/sql/sources.sql", now, configured)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| SourceFacts {
            name: r.name,
            last_backup: match (r.last_id, r.last_type, r.last_state, r.last_created_at) {
                (Some(id), Some(backup_type), Some(state), Some(at)) => Some(BackupBrief {
                    id,
                    backup_type,
                    state,
                    at,
                }),
                _ => None,
            },
            last_success_id: r.success_id,
            last_success_at: r.success_at,
            last_verified_id: r.verified_id,
            last_verified_at: r.verified_at,
            failure_streak: r.failure_streak,
        })
        .collect())
}

async fn totals(pool: &PgPool, now: DateTime<Utc>) -> Result<Totals, sqlx::Error> {
    let r = sqlx::query_file!("src/health/sql/totals.sql", now)
        .fetch_one(pool)
        .await?;
    Ok(Totals {
        total_backups: r.total,
        backups_last_24h: r.last_24h,
        backups_last_week: r.last_week,
        successes_last_week: r.successes_week,
        failures_last_week: r.failures_week,
        verified_last_week: r.verified_week,
        verified_valid_last_week: r.valid_week,
        storage_local_bytes: r.local_bytes,
        storage_drive_bytes: r.drive_bytes,
    })
}

async fn queue(pool: &PgPool, now: DateTime<Utc>) -> Result<Vec<QueueKind>, sqlx::Error> {
    sqlx::query_as!(
        QueueKind,
        r#"SELECT kind AS "kind!",
                  count(*) FILTER (WHERE state <> 'running' AND scheduled_at <= $1) AS "waiting!",
                  EXTRACT(EPOCH FROM $1 - min(scheduled_at)
                      FILTER (WHERE state <> 'running' AND scheduled_at <= $1))::float8
                      AS oldest_waiting_secs,
                  count(*) FILTER (WHERE state = 'running') AS "running!"
           FROM job WHERE state IN ('available', 'scheduled', 'retryable', 'running')
           GROUP BY kind ORDER BY kind"#,
        now
    )
    .fetch_all(pool)
    .await
}
