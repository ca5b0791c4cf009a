//! What a job handler is and what it gets.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cellar_core::queue::{ClaimedJob, QueueError, lease};
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// What a successful handler returns: stored in the job's `result`.
pub type JobOutput = Option<Value>;

/// How a handler ends when it does not succeed. Decide where the error is born.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// May succeed later: retried with backoff until attempts run out.
    #[error("{0}")]
    Retry(String),
    /// Cannot succeed (bad arguments, missing backup...): discarded at once.
    #[error("{0}")]
    Permanent(String),
    /// Not now: run again after this long, without charging an attempt.
    #[error("snoozed for {0:?}")]
    Snooze(Duration),
    /// The handler stopped because its cancellation token fired.
    #[error("cancelled")]
    Cancelled,
    /// The worker no longer holds the job; nothing may be recorded.
    #[error("lease lost")]
    LeaseLost,
}

impl From<QueueError> for JobError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::LeaseLost { .. } => JobError::LeaseLost,
            other => JobError::Retry(other.to_string()),
        }
    }
}

/// Runs one kind of job. Implemented for every `Fn(JobContext) -> impl Future`.
pub trait Handler: Send + Sync + 'static {
    /// Runs the job. Must return soon after `ctx.cancel` fires.
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>>;
}

impl<F, Fut> Handler for F
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<JobOutput, JobError>> + Send + 'static,
{
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        Box::pin(self(ctx))
    }
}

/// Minimum time between two progress writes of one job.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// What a running handler gets: its job, a cancellation token, and fenced ways to report.
pub struct JobContext {
    /// The job, with its lease.
    pub job: ClaimedJob,
    /// Fires on a cancel request, on shutdown past the grace period, or when the lease is lost.
    pub cancel: CancellationToken,
    pool: PgPool,
    last_progress: Mutex<Option<Instant>>,
}

impl JobContext {
    pub(crate) fn new(job: ClaimedJob, cancel: CancellationToken, pool: PgPool) -> Self {
        Self {
            job,
            cancel,
            pool,
            last_progress: Mutex::new(None),
        }
    }

    /// The job's arguments, parsed; malformed arguments are a permanent failure.
    pub fn args<T: DeserializeOwned>(&self) -> Result<T, JobError> {
        serde_json::from_value(self.job.args.clone()).map_err(|e| {
            JobError::Permanent(format!(
                "invalid arguments for a {} job: {e}",
                self.job.kind
            ))
        })
    }

    /// The catalog pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Records progress, at most four times a second (calls in between are dropped). Subscribers
    /// are notified by the database.
    pub async fn progress(&self, progress: Value) -> Result<(), JobError> {
        {
            let mut last = self.last_progress.lock().expect("progress lock");
            if last.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        self.progress_now(progress).await
    }

    /// Records progress now (e.g. the final 100%).
    pub async fn progress_now(&self, progress: Value) -> Result<(), JobError> {
        lease::set_progress(&self.pool, &self.job.lease, &progress).await?;
        Ok(())
    }

    /// Stores resumable state in the job row for a later attempt (see `checkpoint_state`).
    pub async fn checkpoint(&self, state: Value) -> Result<(), JobError> {
        lease::checkpoint(&self.pool, &self.job.lease, &state).await?;
        Ok(())
    }
}
