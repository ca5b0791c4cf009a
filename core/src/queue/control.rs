//! Operations on jobs from outside the worker that runs them: read, cancel, retry.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{JobState, QueueError};

/// A job as stored.
#[derive(Clone, Debug, Serialize)]
pub struct JobRow {
    pub id: i64,
    pub kind: String,
    pub args: Value,
    pub state: JobState,
    pub priority: i16,
    pub attempt: i32,
    pub max_attempts: i32,
    pub errors: Vec<Value>,
    pub scheduled_at: DateTime<Utc>,
    pub attempted_at: Option<DateTime<Utc>>,
    pub locked_by: Option<Uuid>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    pub progress: Option<Value>,
    pub result: Option<Value>,
    pub dedupe_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Reads one job.
pub async fn get(pool: &PgPool, id: i64) -> Result<JobRow, QueueError> {
    sqlx::query_as!(
        JobRow,
        r#"SELECT id, kind, args, state AS "state: JobState", priority, attempt, max_attempts,
                  errors, scheduled_at, attempted_at, locked_by, heartbeat_at,
                  cancel_requested_at, progress, result, dedupe_key, created_at, finished_at
           FROM job WHERE id = $1"#,
        id
    )
    .fetch_optional(pool)
    .await?
    .ok_or(QueueError::NotFound(id))
}

/// Cancels a job. One that has not started is cancelled at once; a running one gets
/// `cancel_requested_at`, and its worker (notified through `cellar_job_cancel`, or at its next
/// heartbeat) stops it. Returns the job's state after the call. Cancelling a finished job is
/// refused with [`QueueError::WrongState`].
pub async fn cancel(conn: &mut PgConnection, id: i64) -> Result<JobState, QueueError> {
    let row = sqlx::query_scalar!(
        r#"UPDATE job SET
               state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END::job_state,
               finished_at = CASE WHEN state = 'running' THEN NULL ELSE now() END,
               cancel_requested_at = COALESCE(cancel_requested_at, now())
           WHERE id = $1 AND state IN ('available', 'scheduled', 'retryable', 'running')
           RETURNING state AS "state: JobState""#,
        id
    )
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(state) => Ok(state),
        None => Err(finished_or_missing(conn, id, "it has already finished").await),
    }
}

/// Runs a cancelled or discarded job again, from a fresh attempt count.
pub async fn retry(conn: &mut PgConnection, id: i64) -> Result<JobState, QueueError> {
    let row = sqlx::query_scalar!(
        r#"UPDATE job SET state = 'available', attempt = 0, scheduled_at = now(),
                  finished_at = NULL, cancel_requested_at = NULL
           WHERE id = $1 AND state IN ('cancelled', 'discarded')
           RETURNING state AS "state: JobState""#,
        id
    )
    .fetch_optional(&mut *conn)
    .await;
    match row {
        Ok(Some(state)) => Ok(state),
        Ok(None) => {
            Err(
                finished_or_missing(conn, id, "only cancelled or discarded jobs can be retried")
                    .await,
            )
        }
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(QueueError::Invalid(
            format!("job {id} cannot be retried: another unfinished job has its dedupe key"),
        )),
        Err(e) => Err(e.into()),
    }
}

async fn finished_or_missing(conn: &mut PgConnection, id: i64, why: &'static str) -> QueueError {
    let state = sqlx::query_scalar!(
        r#"SELECT state AS "state: JobState" FROM job WHERE id = $1"#,
        id
    )
    .fetch_optional(&mut *conn)
    .await;
    match state {
        Ok(Some(state)) => QueueError::WrongState { id, state, why },
        Ok(None) => QueueError::NotFound(id),
        Err(e) => e.into(),
    }
}

/// Counts of unfinished jobs per state, and the age of the oldest runnable one.
pub async fn depth(pool: &PgPool) -> Result<(i64, Option<f64>), QueueError> {
    let r = sqlx::query!(
        r#"SELECT count(*) AS "n!",
                  EXTRACT(EPOCH FROM now() - min(scheduled_at))::float8 AS oldest
           FROM job WHERE state IN ('available', 'scheduled', 'retryable') AND scheduled_at <= now()"#
    )
    .fetch_one(pool)
    .await?;
    Ok((r.n, r.oldest))
}
