//! Applying retention: a `delete` job (local and Drive copies, then the row marked deleted) for
//! every backup the plan deletes, each with an audit event (actor `retention`, the reason) in
//! the transaction that enqueues it.
//!
//! When: a `retention` job, enqueued after each backup completes ([`request`]) and by the
//! scheduler tick once per period ([`enqueue_periodic`]). Its dedupe key `retention` keeps at
//! most one waiting.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;

use super::{Decision, RetentionError, store};
use crate::backup::{BackupState, JOB_DELETE};
use crate::queue::{self, NewJob};

/// Job kind that applies retention.
pub const JOB_RETENTION: &str = "retention";

/// What one application did.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyReport {
    /// Backups whose `delete` job was enqueued: (id, job id, reason).
    pub deleting: Vec<(String, i64, String)>,
    /// Backups kept.
    pub kept: usize,
    /// Backups the plan deleted but that changed meanwhile (pinned, restored from, gone).
    pub skipped: Vec<String>,
}

/// Plans at `now` and enqueues the deletes.
#[tracing::instrument(skip_all)]
pub async fn apply(pool: &PgPool, now: DateTime<Utc>) -> Result<ApplyReport, RetentionError> {
    let plan = super::plan(
        &store::policies(pool).await?,
        &store::history(pool).await?,
        now,
    );
    let mut report = ApplyReport::default();
    for d in plan {
        if d.keep {
            report.kept += 1;
            continue;
        }
        match delete_one(pool, &d).await? {
            Some(job) => {
                tracing::info!(backup_id = %d.id, job_id = job, reason = %d.reason,
                    "retention deletes a backup");
                report.deleting.push((d.id, job, d.reason));
            }
            None => report.skipped.push(d.id),
        }
    }
    Ok(report)
}

/// Enqueues the deletion of `d` after re-checking, with the row locked, that nothing protects
/// it now. `None` when something does (or its delete is already queued).
async fn delete_one(pool: &PgPool, d: &Decision) -> Result<Option<i64>, RetentionError> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query!(
        r#"SELECT b.state AS "state: BackupState", b.pinned,
                  EXISTS (SELECT 1 FROM restore r
                          WHERE r.backup_id = b.id AND r.state IN ('pending', 'running'))
                      AS "in_use!"
           FROM backup b WHERE b.id = $1 FOR UPDATE"#,
        d.id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    if row.pinned
        || row.in_use
        || !matches!(row.state, BackupState::Completed | BackupState::Failed)
    {
        return Ok(None);
    }
    let job = NewJob::new(JOB_DELETE, json!({ "backupId": d.id }))
        .with_dedupe_key(format!("delete:{}", d.id));
    let e = queue::enqueue(&mut tx, &job).await?;
    if e.duplicate {
        return Ok(None);
    }
    let args = json!({
        "backupType": d.backup_type, "source": d.source, "reason": d.reason,
        "createdAt": d.created_at,
    });
    crate::audit::record_system(
        &mut tx,
        "retention",
        "retentionDelete",
        Some(&d.id),
        Some(e.id),
        args,
    )
    .await?;
    tx.commit().await?;
    Ok(Some(e.id))
}

/// Asks for a retention pass soon (after a backup completed). One waiting pass at most.
pub async fn request(pool: &PgPool) -> Result<i64, RetentionError> {
    let mut conn = pool.acquire().await?;
    let job = NewJob::new(JOB_RETENTION, json!({})).with_dedupe_key(JOB_RETENTION);
    Ok(queue::enqueue(&mut conn, &job).await?.id)
}

/// Enqueues a retention pass when the last periodic one was enqueued `every` or longer before
/// `now`. Any number of workers may call it: one UPDATE decides, so one pass per period.
pub async fn enqueue_periodic(
    pool: &PgPool,
    now: DateTime<Utc>,
    every: Duration,
) -> Result<Option<i64>, RetentionError> {
    let every = chrono::Duration::from_std(every)
        .map_err(|e| RetentionError::Invalid(format!("retention period: {e}")))?;
    let mut tx = pool.begin().await?;
    let won = sqlx::query!(
        r#"UPDATE retention_run SET last_enqueued_at = $1
           WHERE last_enqueued_at <= $2 RETURNING id"#,
        now,
        now - every
    )
    .fetch_optional(&mut *tx)
    .await?;
    if won.is_none() {
        return Ok(None);
    }
    let job = NewJob::new(JOB_RETENTION, json!({})).with_dedupe_key(JOB_RETENTION);
    let e = queue::enqueue(&mut tx, &job).await?;
    tx.commit().await?;
    Ok(Some(e.id))
}
