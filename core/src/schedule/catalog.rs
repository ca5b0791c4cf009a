//! The `schedule` table: list, read, upsert, enable/disable, delete.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use super::{ScheduleError, ScheduleInput, VerifyAfter};
use crate::backup::BackupType;
use crate::schedule::cron::{CronExpr, TimeZoneName};

/// A schedule as stored.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    pub id: i64,
    pub name: String,
    pub cron: String,
    pub time_zone: String,
    pub backup_type: BackupType,
    /// The configured source by name; `None` is the default source.
    pub source: Option<String>,
    pub tables: Option<Vec<String>>,
    pub include_files: bool,
    pub upload_to_drive: bool,
    /// `none`, `quick` or `deep`.
    pub verify: String,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Only fire times after this are due (creation, or the last change of timing).
    pub fires_after: DateTime<Utc>,
    /// The latest fire time that produced a job.
    pub last_fire_at: Option<DateTime<Utc>>,
}

impl Schedule {
    /// The stored expression and zone, parsed (they were checked when written).
    pub fn timing(&self) -> Result<(CronExpr, TimeZoneName), ScheduleError> {
        let bad = |e: String| ScheduleError::Invalid(format!("schedule {}: {e}", self.name));
        Ok((
            self.cron.parse().map_err(bad)?,
            self.time_zone.parse().map_err(bad)?,
        ))
    }

    /// The verification level to run after each backup.
    pub fn verify_after(&self) -> VerifyAfter {
        self.verify.parse().unwrap_or(VerifyAfter::None)
    }

    /// Fire times at or before this are done or not due.
    pub fn fired_through(&self) -> DateTime<Utc> {
        self.last_fire_at
            .map_or(self.fires_after, |l| l.max(self.fires_after))
    }

    /// The next fire time after `now` (`None` when disabled).
    pub fn next_fire_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.enabled {
            return None;
        }
        let (cron, tz) = self.timing().ok()?;
        cron.next_after(&tz, now.max(self.fired_through()))
    }
}

/// Every schedule, by name.
pub async fn list(pool: &PgPool) -> Result<Vec<Schedule>, sqlx::Error> {
    sqlx::query_as!(
        Schedule,
        r#"SELECT id, name, cron, time_zone, backup_type AS "backup_type: BackupType", source,
                  tables, include_files, upload_to_drive, verify, enabled, created_at,
                  updated_at, fires_after, last_fire_at
           FROM schedule ORDER BY name"#
    )
    .fetch_all(pool)
    .await
}

/// One schedule by name, or by id when `key` is a number.
pub async fn get(pool: &PgPool, key: &str) -> Result<Option<Schedule>, sqlx::Error> {
    sqlx::query_as!(
        Schedule,
        r#"SELECT id, name, cron, time_zone, backup_type AS "backup_type: BackupType", source,
                  tables, include_files, upload_to_drive, verify, enabled, created_at,
                  updated_at, fires_after, last_fire_at
           FROM schedule WHERE name = $1 OR id::text = $1"#,
        key
    )
    .fetch_optional(pool)
    .await
}

/// Creates or replaces the schedule named `input.name`, as of `now`. A new schedule, a changed
/// expression or zone, or re-enabling moves `fires_after` to `now`: only later fire times are
/// due. Returns the row and whether it was created.
pub async fn upsert(
    pool: &PgPool,
    input: &ScheduleInput,
    now: DateTime<Utc>,
) -> Result<(Schedule, bool), sqlx::Error> {
    let r = sqlx::query!(
        r#"INSERT INTO schedule AS s (name, cron, time_zone, backup_type, source, tables,
                                      include_files, upload_to_drive, verify, enabled,
                                      created_at, updated_at, fires_after)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $11)
           ON CONFLICT (name) DO UPDATE SET
               cron = EXCLUDED.cron, time_zone = EXCLUDED.time_zone,
               backup_type = EXCLUDED.backup_type, source = EXCLUDED.source,
               tables = EXCLUDED.tables, include_files = EXCLUDED.include_files,
               upload_to_drive = EXCLUDED.upload_to_drive, verify = EXCLUDED.verify,
               enabled = EXCLUDED.enabled, updated_at = EXCLUDED.updated_at,
               fires_after = CASE
                   WHEN s.cron <> EXCLUDED.cron OR s.time_zone <> EXCLUDED.time_zone
                        OR (NOT s.enabled AND EXCLUDED.enabled)
                   THEN GREATEST(s.fires_after, EXCLUDED.fires_after)
                   ELSE s.fires_after END
           RETURNING id, (xmax = 0) AS "created!""#,
        input.name,
        input.cron.as_str(),
        input.time_zone.as_str(),
        input.backup_type as BackupType,
        input.source,
        input.tables.as_deref(),
        input.include_files,
        input.upload_to_drive,
        input.verify.as_str(),
        input.enabled,
        now,
    )
    .fetch_one(pool)
    .await?;
    let row = get(pool, &r.id.to_string())
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    Ok((row, r.created))
}

/// Enables or disables schedule `key` (name or id) as of `now`. Re-enabling moves
/// `fires_after` to `now`: fires missed while disabled are not run. `None` when unknown.
pub async fn set_enabled(
    pool: &PgPool,
    key: &str,
    enabled: bool,
    now: DateTime<Utc>,
) -> Result<Option<Schedule>, sqlx::Error> {
    let id = sqlx::query_scalar!(
        r#"UPDATE schedule SET
               fires_after = CASE WHEN enabled OR NOT $2 THEN fires_after
                                  ELSE GREATEST(fires_after, $3) END,
               enabled = $2, updated_at = $3
           WHERE name = $1 OR id::text = $1
           RETURNING id"#,
        key,
        enabled,
        now
    )
    .fetch_optional(pool)
    .await?;
    match id {
        Some(id) => get(pool, &id.to_string()).await,
        None => Ok(None),
    }
}

/// Deletes schedule `key` (name or id); its backups stay (their `schedule_id` becomes NULL).
pub async fn delete(pool: &PgPool, key: &str) -> Result<Option<Schedule>, sqlx::Error> {
    let Some(row) = get(pool, key).await? else {
        return Ok(None);
    };
    sqlx::query!("DELETE FROM schedule WHERE id = $1", row.id)
        .execute(pool)
        .await?;
    Ok(Some(row))
}

/// The shortest interval between two fires of any enabled schedule (over the year after
/// `now`): how often a successful backup should appear. `None` without enabled schedules.
pub async fn shortest_interval(
    pool: &PgPool,
    now: DateTime<Utc>,
) -> Result<Option<chrono::Duration>, ScheduleError> {
    let mut best: Option<chrono::Duration> = None;
    for s in list(pool).await?.iter().filter(|s| s.enabled) {
        let (cron, tz) = s.timing()?;
        if let Some(gap) = cron.shortest_interval(&tz, now) {
            best = Some(best.map_or(gap, |b| b.min(gap)));
        }
    }
    Ok(best)
}

/// A fire as recorded.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fire {
    pub fire_at: DateTime<Utc>,
    pub fired_at: DateTime<Utc>,
    pub backup_id: Option<String>,
    pub job_id: Option<i64>,
}

/// The latest `limit` fires of schedule `schedule_id`, newest first.
pub async fn fires(pool: &PgPool, schedule_id: i64, limit: i64) -> Result<Vec<Fire>, sqlx::Error> {
    sqlx::query_as!(
        Fire,
        r#"SELECT fire_at, fired_at, backup_id, job_id FROM schedule_fire
           WHERE schedule_id = $1 ORDER BY fire_at DESC LIMIT $2"#,
        schedule_id,
        limit
    )
    .fetch_all(pool)
    .await
}
