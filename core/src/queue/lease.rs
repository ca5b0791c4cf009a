//! What a worker does with the jobs it holds. Every write here is fenced on
//! `(id, attempt, locked_by)` and checks that it touched a row.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::{JobState, QueueError};

/// The fencing token of a running job: which attempt, held by which process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The job's id.
    pub id: i64,
    /// The attempt this lease is for (incremented by every claim).
    pub attempt: i32,
    /// The process identity that claimed it (fresh and random per process).
    pub worker: Uuid,
}

/// A job a worker has just claimed.
#[derive(Clone, Debug)]
pub struct ClaimedJob {
    /// Its fencing token.
    pub lease: Lease,
    /// Which handler runs it.
    pub kind: String,
    /// The handler's input.
    pub args: Value,
    /// Attempts allowed in all.
    pub max_attempts: i32,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it became runnable.
    pub scheduled_at: DateTime<Utc>,
    /// What an earlier attempt saved with [`checkpoint`], to resume from.
    pub checkpoint: Option<Value>,
}

/// Claims up to `limit` runnable jobs of the given kinds for `worker`, in one statement:
/// `SELECT ... FOR UPDATE SKIP LOCKED` feeding an `UPDATE`. No transaction stays open.
#[tracing::instrument(skip_all, fields(%worker, limit))]
pub async fn claim(
    pool: &PgPool,
    worker: Uuid,
    kinds: &[String],
    limit: i64,
) -> Result<Vec<ClaimedJob>, QueueError> {
    let rows = sqlx::query_file!("src/queue/sql/claim.sql", worker, kinds, limit)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| ClaimedJob {
            lease: Lease {
                id: r.id,
                attempt: r.attempt,
                worker,
            },
            kind: r.kind,
            args: r.args,
            max_attempts: r.max_attempts,
            created_at: r.created_at,
            scheduled_at: r.scheduled_at,
            checkpoint: r.checkpoint,
        })
        .collect())
}

/// What a heartbeat learnt about one held job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeartbeatAck {
    /// The job.
    pub id: i64,
    /// An operator asked to cancel it.
    pub cancel_requested: bool,
}

/// Refreshes the lease of every job in `leases` (all held by `worker`). Jobs missing from the
/// answer are no longer held: their handlers must stop.
pub async fn heartbeat(
    pool: &PgPool,
    worker: Uuid,
    leases: &[(i64, i32)],
) -> Result<Vec<HeartbeatAck>, QueueError> {
    let (ids, attempts): (Vec<i64>, Vec<i32>) = leases.iter().copied().unzip();
    let rows = sqlx::query!(
        r#"UPDATE job j SET heartbeat_at = now()
           FROM unnest($2::bigint[], $3::int[]) AS l(id, attempt)
           WHERE j.id = l.id AND j.attempt = l.attempt AND j.locked_by = $1 AND j.state = 'running'
           RETURNING j.id, (j.cancel_requested_at IS NOT NULL) AS "cancel_requested!""#,
        worker,
        &ids,
        &attempts,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| HeartbeatAck {
            id: r.id,
            cancel_requested: r.cancel_requested,
        })
        .collect())
}

fn fenced(lease: &Lease, rows: u64) -> Result<(), QueueError> {
    if rows == 1 {
        Ok(())
    } else {
        Err(QueueError::LeaseLost {
            id: lease.id,
            attempt: lease.attempt,
        })
    }
}

/// Marks the job completed with an optional result.
pub async fn complete(
    pool: &PgPool,
    lease: &Lease,
    result: Option<Value>,
) -> Result<(), QueueError> {
    let r = sqlx::query!(
        r#"UPDATE job SET state = 'completed', finished_at = now(), result = $4,
                  locked_by = NULL, heartbeat_at = NULL
           WHERE id = $1 AND attempt = $2 AND locked_by = $3 AND state = 'running'"#,
        lease.id,
        lease.attempt,
        lease.worker,
        result,
    )
    .execute(pool)
    .await?;
    fenced(lease, r.rows_affected())
}

/// Completes many jobs held by `worker` in one statement (group commit of completions). Returns
/// the ids that were still held; the others' leases were lost and their results are dropped.
pub async fn complete_many(
    pool: &PgPool,
    worker: Uuid,
    done: &[(Lease, Option<Value>)],
) -> Result<Vec<i64>, QueueError> {
    let ids: Vec<i64> = done.iter().map(|(l, _)| l.id).collect();
    let attempts: Vec<i32> = done.iter().map(|(l, _)| l.attempt).collect();
    let results: Vec<Option<Value>> = done.iter().map(|(_, r)| r.clone()).collect();
    let rows = sqlx::query_scalar!(
        r#"UPDATE job j SET state = 'completed', finished_at = now(), result = l.result,
                  locked_by = NULL, heartbeat_at = NULL
           FROM unnest($2::bigint[], $3::int[], $4::jsonb[]) AS l(id, attempt, result)
           WHERE j.id = l.id AND j.attempt = l.attempt AND j.locked_by = $1 AND j.state = 'running'
           RETURNING j.id"#,
        worker,
        &ids,
        &attempts,
        &results as &[Option<Value>],
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

fn error_entry(lease: &Lease, error: &str) -> Value {
    json!({"attempt": lease.attempt, "at": Utc::now(), "error": error, "worker": lease.worker})
}

/// Records a failed attempt. With `retry_at`, the job becomes `retryable` at that time (the
/// backoff is persisted in the row) unless it has used all its attempts; without, it is
/// discarded. Returns the state the job went to.
pub async fn fail(
    pool: &PgPool,
    lease: &Lease,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
) -> Result<JobState, QueueError> {
    let row = sqlx::query_scalar!(
        r#"UPDATE job SET
               state = CASE WHEN $5::timestamptz IS NULL OR attempt >= max_attempts
                            THEN 'discarded' ELSE 'retryable' END::job_state,
               finished_at = CASE WHEN $5::timestamptz IS NULL OR attempt >= max_attempts
                                  THEN now() END,
               scheduled_at = COALESCE($5, scheduled_at),
               errors = array_append(errors, $4::jsonb),
               locked_by = NULL, heartbeat_at = NULL
           WHERE id = $1 AND attempt = $2 AND locked_by = $3 AND state = 'running'
           RETURNING state AS "state: JobState""#,
        lease.id,
        lease.attempt,
        lease.worker,
        error_entry(lease, error),
        retry_at,
    )
    .fetch_optional(pool)
    .await?;
    row.ok_or(QueueError::LeaseLost {
        id: lease.id,
        attempt: lease.attempt,
    })
}

/// Marks the job cancelled (its handler stopped after a cancel request).
pub async fn cancelled(pool: &PgPool, lease: &Lease, reason: &str) -> Result<(), QueueError> {
    let r = sqlx::query!(
        r#"UPDATE job SET state = 'cancelled', finished_at = now(),
                  errors = array_append(errors, $4::jsonb),
                  locked_by = NULL, heartbeat_at = NULL
           WHERE id = $1 AND attempt = $2 AND locked_by = $3 AND state = 'running'"#,
        lease.id,
        lease.attempt,
        lease.worker,
        error_entry(lease, reason),
    )
    .execute(pool)
    .await?;
    fenced(lease, r.rows_affected())
}

/// Puts the job back to run again at `at` without charging an attempt: used by a handler that
/// must wait (snooze) and by graceful shutdown (with `at` = now).
pub async fn release(pool: &PgPool, lease: &Lease, at: DateTime<Utc>) -> Result<(), QueueError> {
    let r = sqlx::query!(
        r#"UPDATE job SET
               state = CASE WHEN $4 > now() THEN 'scheduled' ELSE 'available' END::job_state,
               scheduled_at = $4, attempt = attempt - 1,
               locked_by = NULL, heartbeat_at = NULL
           WHERE id = $1 AND attempt = $2 AND locked_by = $3 AND state = 'running'"#,
        lease.id,
        lease.attempt,
        lease.worker,
        at,
    )
    .execute(pool)
    .await?;
    fenced(lease, r.rows_affected())
}

/// Records the job's progress (the worker throttles calls); subscribers are notified.
pub async fn set_progress(
    pool: &PgPool,
    lease: &Lease,
    progress: &Value,
) -> Result<(), QueueError> {
    let r = sqlx::query!(
        r#"UPDATE job SET progress = $4
           WHERE id = $1 AND attempt = $2 AND locked_by = $3 AND state = 'running'"#,
        lease.id,
        lease.attempt,
        lease.worker,
        progress,
    )
    .execute(pool)
    .await?;
    fenced(lease, r.rows_affected())
}

/// Stores a handler's intermediate state in `result` while it runs (e.g. an upload's session
/// and confirmed offset), so a successor attempt can resume instead of starting over.
pub async fn checkpoint(pool: &PgPool, lease: &Lease, state: &Value) -> Result<(), QueueError> {
    let r = sqlx::query!(
        r#"UPDATE job SET result = $4
           WHERE id = $1 AND attempt = $2 AND locked_by = $3 AND state = 'running'"#,
        lease.id,
        lease.attempt,
        lease.worker,
        state,
    )
    .execute(pool)
    .await?;
    fenced(lease, r.rows_affected())
}
