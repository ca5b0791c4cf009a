//! One scheduler pass. Every worker runs it (at the next fire time, or every [`super::MAX_TICK`]);
//! `now` is a parameter so tests drive a controllable clock.
//!
//! ```text
//! for each enabled schedule:
//!     t = the latest fire time in (max(fires_after, last_fire_at), now]   -- missed: only the latest
//!     if t: BEGIN; lock the schedule row; still enabled and t > its fired-through time?
//!           INSERT schedule_fire (id, t) ON CONFLICT DO NOTHING; backup row + job;
//!           last_fire_at = t; COMMIT                                      -- or nothing at all
//!     next = the first fire time after max(now, fired-through)
//! ```

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use super::{Schedule, ScheduleError, catalog};
use crate::backup::BackupId;
use crate::backup::catalog::{BackupRequest, Origin, create_in};

/// A fire this tick claimed.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fired {
    pub schedule: String,
    pub fire_at: DateTime<Utc>,
    pub backup_id: BackupId,
    pub job_id: i64,
}

/// What a tick did and when the next one is due.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TickReport {
    /// Fires this tick claimed (other workers' ticks claim the rest).
    pub fired: Vec<Fired>,
    /// The earliest next fire time over enabled schedules.
    pub next_fire_at: Option<DateTime<Utc>>,
}

/// Runs one pass at `now`. `default_source` is the source of schedules that name none.
#[tracing::instrument(skip_all, fields(now = %now))]
pub async fn tick(
    pool: &PgPool,
    now: DateTime<Utc>,
    default_source: &str,
) -> Result<TickReport, ScheduleError> {
    let mut report = TickReport::default();
    for s in catalog::list(pool).await?.into_iter().filter(|s| s.enabled) {
        let (cron, tz) = match s.timing() {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(schedule = %s.name, error = %e, "skipping an unreadable schedule");
                continue;
            }
        };
        let mut through = s.fired_through();
        if let Some(t) = cron.latest_in(&tz, through, now) {
            if let Some(f) = fire(pool, &s, t, now, default_source).await? {
                tracing::info!(schedule = %s.name, fire_at = %t, backup_id = %f.backup_id,
                    job_id = f.job_id, "schedule fired");
                report.fired.push(f);
            }
            through = through.max(t);
        }
        if let Some(next) = cron.next_after(&tz, now.max(through)) {
            report.next_fire_at = Some(report.next_fire_at.map_or(next, |n| n.min(next)));
        }
    }
    Ok(report)
}

/// Claims fire `t` of `s` and enqueues its backup, or does nothing when another tick has
/// claimed it (or a later one), or the schedule changed meanwhile.
async fn fire(
    pool: &PgPool,
    s: &Schedule,
    t: DateTime<Utc>,
    now: DateTime<Utc>,
    default_source: &str,
) -> Result<Option<Fired>, ScheduleError> {
    let mut tx = pool.begin().await?;
    let locked = sqlx::query!(
        r#"SELECT enabled, cron, time_zone, fires_after, last_fire_at
           FROM schedule WHERE id = $1 FOR UPDATE"#,
        s.id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(l) = locked else {
        return Ok(None);
    };
    let through = l
        .last_fire_at
        .map_or(l.fires_after, |x| x.max(l.fires_after));
    if !l.enabled || l.cron != s.cron || l.time_zone != s.time_zone || t <= through {
        return Ok(None);
    }
    let claimed = sqlx::query!(
        r#"INSERT INTO schedule_fire (schedule_id, fire_at, fired_at) VALUES ($1, $2, $3)
           ON CONFLICT DO NOTHING"#,
        s.id,
        t,
        now
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        return Ok(None);
    }
    let verify = s.verify_after();
    let req = BackupRequest {
        backup_type: Some(s.backup_type),
        source: s
            .source
            .clone()
            .unwrap_or_else(|| default_source.to_string()),
        tables: s.tables.clone(),
        verify: verify.level().is_some(),
        include_files: s.include_files,
        upload_to_drive: s.upload_to_drive,
    };
    let origin = Origin {
        schedule: Some((s.id, t)),
        quick_verify: verify == super::VerifyAfter::Quick,
    };
    let (backup_id, job) = create_in(&mut tx, &req, &origin).await?;
    sqlx::query!(
        r#"UPDATE schedule_fire SET backup_id = $3, job_id = $4
           WHERE schedule_id = $1 AND fire_at = $2"#,
        s.id,
        t,
        backup_id.as_str(),
        job.id
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE schedule SET last_fire_at = $2 WHERE id = $1",
        s.id,
        t
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(Fired {
        schedule: s.name.clone(),
        fire_at: t,
        backup_id,
        job_id: job.id,
    }))
}
