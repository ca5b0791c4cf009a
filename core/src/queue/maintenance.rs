//! Housekeeping any worker may run at any time, concurrently with others: no leader needed.

use std::time::Duration;

use sqlx::PgPool;

use super::QueueError;

/// Returns jobs whose lease expired (no heartbeat for `lease`) to the queue: `retryable` now,
/// or `discarded` when out of attempts, or `cancelled` when a cancel was requested. Two workers
/// rescuing at once cannot double-rescue: the second `UPDATE` re-checks the row after the first
/// commits. Returns the rescued job ids.
#[tracing::instrument(skip_all)]
pub async fn rescue_expired(pool: &PgPool, lease: Duration) -> Result<Vec<i64>, QueueError> {
    let ids = sqlx::query_file_scalar!("src/queue/sql/rescue.sql", lease.as_secs_f64())
        .fetch_all(pool)
        .await?;
    if !ids.is_empty() {
        tracing::warn!(jobs = ?ids, "rescued jobs whose worker stopped heartbeating");
    }
    Ok(ids)
}

/// Deletes finished jobs older than `older_than`, at most `batch` at a time. Returns how many.
pub async fn prune_finished(
    pool: &PgPool,
    older_than: Duration,
    batch: i64,
) -> Result<u64, QueueError> {
    let r = sqlx::query!(
        r#"DELETE FROM job WHERE id IN (
               SELECT id FROM job
               WHERE finished_at IS NOT NULL
                 AND finished_at < now() - make_interval(secs => $1)
               ORDER BY finished_at LIMIT $2)"#,
        older_than.as_secs_f64(),
        batch
    )
    .execute(pool)
    .await?;
    Ok(r.rows_affected())
}
