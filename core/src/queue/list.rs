//! Listing jobs for people and for the API's subscriptions.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::{JobRow, JobState, QueueError};

/// Up to `limit` jobs, newest first, optionally of one kind and state, with ids below `before`
/// (the cursor).
pub async fn page(
    pool: &PgPool,
    kind: Option<&str>,
    state: Option<JobState>,
    limit: i64,
    before: Option<i64>,
) -> Result<Vec<JobRow>, QueueError> {
    Ok(sqlx::query_as!(
        JobRow,
        r#"SELECT id, kind, args, state AS "state: JobState", priority, attempt, max_attempts,
                  errors, scheduled_at, attempted_at, locked_by, heartbeat_at,
                  cancel_requested_at, progress, result, dedupe_key, created_at, finished_at
           FROM job
           WHERE ($1::text IS NULL OR kind = $1)
             AND ($2::job_state IS NULL OR state = $2)
             AND ($3::bigint IS NULL OR id < $3)
           ORDER BY id DESC LIMIT $4"#,
        kind,
        state as Option<JobState>,
        before,
        limit,
    )
    .fetch_all(pool)
    .await?)
}

/// Jobs that may have changed since `since`: every unfinished job and every job finished at or
/// after it (at most `limit`, finished ones first). After a LISTEN connection was lost, this is
/// what the API re-reads so that no final state goes unreported.
pub async fn changed_since(
    pool: &PgPool,
    since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<JobRow>, QueueError> {
    Ok(sqlx::query_as!(
        JobRow,
        r#"SELECT id, kind, args, state AS "state: JobState", priority, attempt, max_attempts,
                  errors, scheduled_at, attempted_at, locked_by, heartbeat_at,
                  cancel_requested_at, progress, result, dedupe_key, created_at, finished_at
           FROM job
           WHERE finished_at >= $1 OR finished_at IS NULL
           ORDER BY finished_at IS NULL, id LIMIT $2"#,
        since,
        limit,
    )
    .fetch_all(pool)
    .await?)
}
