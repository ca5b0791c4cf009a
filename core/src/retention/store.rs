//! Retention's catalog: policies, the history it decides over, pins.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::{Candidate, Decision, Policy, RetentionError};
use crate::backup::{BackupId, BackupState, BackupType};

/// Every policy, by backup type. The health report shows them.
pub async fn policies(pool: &PgPool) -> Result<Vec<Policy>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT backup_type AS "backup_type: BackupType", max_count, max_age_days,
                  keep_daily, keep_weekly, keep_monthly
           FROM retention_policy ORDER BY backup_type"#
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Policy {
            backup_type: r.backup_type,
            max_count: r.max_count.map(|n| n as u32),
            max_age_days: r.max_age_days.map(|n| n as u32),
            keep_daily: r.keep_daily as u32,
            keep_weekly: r.keep_weekly as u32,
            keep_monthly: r.keep_monthly as u32,
        })
        .collect())
}

/// Creates or replaces the policy of `p.backup_type`.
pub async fn set_policy(pool: &PgPool, p: &Policy) -> Result<(), RetentionError> {
    p.check()?;
    sqlx::query!(
        r#"INSERT INTO retention_policy (backup_type, max_count, max_age_days, keep_daily,
                                         keep_weekly, keep_monthly, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, now())
           ON CONFLICT (backup_type) DO UPDATE SET
               max_count = EXCLUDED.max_count, max_age_days = EXCLUDED.max_age_days,
               keep_daily = EXCLUDED.keep_daily, keep_weekly = EXCLUDED.keep_weekly,
               keep_monthly = EXCLUDED.keep_monthly, updated_at = now()"#,
        p.backup_type as BackupType,
        p.max_count.map(|n| n as i32),
        p.max_age_days.map(|n| n as i32),
        p.keep_daily as i32,
        p.keep_weekly as i32,
        p.keep_monthly as i32,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Every completed or failed backup, with what protects it.
pub async fn history(pool: &PgPool) -> Result<Vec<Candidate>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT b.id, b.backup_type AS "backup_type: BackupType", b.source, b.created_at,
                  b.state AS "state: BackupState", b.pinned,
                  COALESCE(b.verification ->> 'status' = 'valid', false) AS "verified!",
                  EXISTS (SELECT 1 FROM restore r
                          WHERE r.backup_id = b.id AND r.state IN ('pending', 'running'))
                      AS "in_use!"
           FROM backup b WHERE b.state IN ('completed', 'failed')"#
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Candidate {
            id: r.id,
            backup_type: r.backup_type,
            source: r.source,
            created_at: r.created_at,
            state: r.state,
            verified: r.verified,
            pinned: r.pinned,
            in_use: r.in_use,
        })
        .collect())
}

/// What retention would do now with the backups of `backup_type` (all types when `None`).
pub async fn preview(
    pool: &PgPool,
    backup_type: Option<BackupType>,
    now: DateTime<Utc>,
) -> Result<Vec<Decision>, sqlx::Error> {
    let plan = super::plan(&policies(pool).await?, &history(pool).await?, now);
    Ok(plan
        .into_iter()
        .filter(|d| backup_type.is_none_or(|t| d.backup_type == t))
        .collect())
}

/// What retention would do now with the backups of `proposed.backup_type` if `proposed` were
/// that type's policy: the preview a person looks at before saving a change. The policy is
/// checked as [`set_policy`] checks it, so a preview never shows a policy that cannot be saved.
pub async fn preview_policy(
    pool: &PgPool,
    proposed: &Policy,
    now: DateTime<Utc>,
) -> Result<Vec<Decision>, RetentionError> {
    proposed.check()?;
    let mut policies = policies(pool).await?;
    policies.retain(|p| p.backup_type != proposed.backup_type);
    policies.push(proposed.clone());
    let plan = super::plan(&policies, &history(pool).await?, now);
    Ok(plan
        .into_iter()
        .filter(|d| d.backup_type == proposed.backup_type)
        .collect())
}

/// Pins or unpins backup `id` (a pinned backup is never deleted by retention, and
/// `deleteBackup` refuses it). Returns the new value.
pub async fn set_pinned(pool: &PgPool, id: &BackupId, pinned: bool) -> Result<(), RetentionError> {
    let n = sqlx::query!(
        "UPDATE backup SET pinned = $2 WHERE id = $1",
        id.as_str(),
        pinned
    )
    .execute(pool)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(RetentionError::NotFound(id.to_string()));
    }
    Ok(())
}
