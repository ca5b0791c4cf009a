//! Inserting jobs: inside the caller's transaction, so a domain row and its job commit together.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;

use super::{JobState, QueueError};

/// A job to insert. Built with [`NewJob::new`] and the `with_*` methods.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// Which handler runs it, e.g. `backup`.
    pub kind: String,
    /// The handler's input.
    pub args: Value,
    /// Higher runs first.
    pub priority: i16,
    /// Attempts before the job is discarded.
    pub max_attempts: i32,
    /// Run no earlier than this; `None` means now.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// At most one unfinished job per key; enqueueing a duplicate returns the existing job.
    pub dedupe_key: Option<String>,
}

impl NewJob {
    /// A job of `kind` with `args`, runnable now, 5 attempts.
    pub fn new(kind: impl Into<String>, args: Value) -> Self {
        Self {
            kind: kind.into(),
            args,
            priority: 0,
            max_attempts: 5,
            scheduled_at: None,
            dedupe_key: None,
        }
    }

    /// Sets the dedupe key.
    pub fn with_dedupe_key(mut self, key: impl Into<String>) -> Self {
        self.dedupe_key = Some(key.into());
        self
    }

    /// Sets the number of attempts.
    pub fn with_max_attempts(mut self, n: i32) -> Self {
        self.max_attempts = n;
        self
    }

    /// Sets the priority (higher first).
    pub fn with_priority(mut self, p: i16) -> Self {
        self.priority = p;
        self
    }

    /// Runs the job no earlier than `at`.
    pub fn scheduled_at(mut self, at: DateTime<Utc>) -> Self {
        self.scheduled_at = Some(at);
        self
    }

    fn validate(&self) -> Result<(), QueueError> {
        if self.kind.is_empty() || self.kind.len() > 128 {
            return Err(QueueError::Invalid("kind must be 1 to 128 bytes".into()));
        }
        if !(1..=1000).contains(&self.max_attempts) {
            return Err(QueueError::Invalid("max_attempts must be 1 to 1000".into()));
        }
        match &self.dedupe_key {
            Some(k) if k.is_empty() || k.len() > 512 => Err(QueueError::Invalid(
                "dedupe key must be 1 to 512 bytes".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// The result of an enqueue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enqueued {
    /// The job's id (the existing job's, for a duplicate).
    pub id: i64,
    /// Its state now.
    pub state: JobState,
    /// True when an unfinished job with the same dedupe key already existed.
    pub duplicate: bool,
}

/// Inserts a job on `conn` (typically the caller's open transaction). Idle workers are woken
/// when that transaction commits.
#[tracing::instrument(skip_all, fields(kind = %job.kind))]
pub async fn enqueue(conn: &mut PgConnection, job: &NewJob) -> Result<Enqueued, QueueError> {
    job.validate()?;
    // A duplicate's insert does nothing; the existing job may finish between the insert and
    // the read, in which case the insert is tried again (and then succeeds).
    for _ in 0..3 {
        if let Some(e) = try_insert(conn, job).await? {
            return Ok(e);
        }
        let key = job.dedupe_key.as_deref().unwrap_or_default();
        let existing = sqlx::query!(
            r#"SELECT id, state AS "state: JobState" FROM job
               WHERE dedupe_key = $1
                 AND state IN ('available', 'scheduled', 'retryable', 'running')"#,
            key
        )
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(r) = existing {
            return Ok(Enqueued {
                id: r.id,
                state: r.state,
                duplicate: true,
            });
        }
    }
    Err(QueueError::Invalid(
        "dedupe key kept conflicting; try again".into(),
    ))
}

async fn try_insert(conn: &mut PgConnection, job: &NewJob) -> Result<Option<Enqueued>, QueueError> {
    let row = sqlx::query!(
        r#"INSERT INTO job (kind, args, priority, max_attempts, scheduled_at, state, dedupe_key)
           VALUES ($1, $2, $3, $4, COALESCE($5, now()),
                   CASE WHEN $5::timestamptz > now() THEN 'scheduled' ELSE 'available' END::job_state,
                   $6)
           ON CONFLICT (dedupe_key)
               WHERE dedupe_key IS NOT NULL
                 AND state IN ('available', 'scheduled', 'retryable', 'running')
               DO NOTHING
           RETURNING id, state AS "state: JobState""#,
        job.kind,
        job.args,
        job.priority,
        job.max_attempts,
        job.scheduled_at,
        job.dedupe_key,
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| Enqueued {
        id: r.id,
        state: r.state,
        duplicate: false,
    }))
}

/// Inserts many jobs of one kind in one statement (no dedupe keys): for bulk work and benchmarks.
pub async fn enqueue_many(
    conn: &mut PgConnection,
    kind: &str,
    args: Vec<Value>,
) -> Result<Vec<i64>, QueueError> {
    NewJob::new(kind, Value::Null).validate()?;
    let ids = sqlx::query_scalar!(
        r#"INSERT INTO job (kind, args) SELECT $1, a FROM unnest($2::jsonb[]) AS a RETURNING id"#,
        kind,
        &args as &[Value],
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(ids)
}
