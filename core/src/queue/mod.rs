//! The Postgres job queue, modelled on River.
//!
//! # Layout
//! - [`enqueue`]: insert jobs inside the caller's transaction, with dedupe keys.
//! - [`lease`]: claim in one statement, heartbeat, and every fenced write a worker makes
//!   (complete, fail, snooze, release, cancel, progress).
//! - [`control`]: operations from outside a worker: cancel, retry, read.
//! - [`list`]: pages of jobs, and what changed since a moment (for the API).
//! - [`maintenance`]: rescue of expired leases, pruning of finished jobs.
//!
//! A job's life is drawn in `docs/JOB_STATES.md`. The fencing token of a running job is
//! `(id, attempt, locked_by)`: every write a worker makes names all three and checks that it
//! touched a row, so a worker whose lease was taken away (a "zombie") cannot complete or
//! overwrite the job of its successor.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub mod control;
pub mod enqueue;
pub mod lease;
pub mod list;
pub mod maintenance;

pub use control::{JobRow, cancel, get, retry};
pub use enqueue::{Enqueued, NewJob, enqueue};
pub use lease::{ClaimedJob, Lease};

/// Channel notified (once per transaction) when jobs become runnable.
pub const CHANNEL_AVAILABLE: &str = "cellar_job_available";
/// Channel notified with a job id when cancellation of a running job is requested.
pub const CHANNEL_CANCEL: &str = "cellar_job_cancel";
/// Channel notified with `{id, kind, state, attempt}` on every state or progress change.
pub const CHANNEL_EVENT: &str = "cellar_job_event";

/// A job's state, the Postgres enum `job_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "job_state", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Runnable now.
    Available,
    /// Runnable from `scheduled_at`.
    Scheduled,
    /// Held by a worker's lease.
    Running,
    /// Failed; runs again from `scheduled_at` (the persisted backoff).
    Retryable,
    /// Finished successfully.
    Completed,
    /// Cancelled before or while running.
    Cancelled,
    /// Failed permanently or out of attempts.
    Discarded,
}

impl JobState {
    /// True for the states a job never leaves by itself.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled | Self::Discarded)
    }
}

/// Everything that can go wrong talking to the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The worker no longer holds the job: its lease expired and the job was rescued, or it
    /// was cancelled. The worker must stop working on it and must not report a result.
    #[error("lease lost on job {id} attempt {attempt}: another worker or an operator took it over")]
    LeaseLost { id: i64, attempt: i32 },
    /// No job with that id.
    #[error("job {0} not found")]
    NotFound(i64),
    /// The operation does not apply to the job's current state.
    #[error("job {id} is {state:?}: {why}")]
    WrongState {
        id: i64,
        state: JobState,
        why: &'static str,
    },
    /// The job's arguments were refused before reaching the database.
    #[error("invalid job: {0}")]
    Invalid(String),
    /// The database failed.
    #[error("queue database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// One failed attempt, as kept in the job's `errors` column.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AttemptError {
    pub attempt: i32,
    pub at: DateTime<Utc>,
    pub error: String,
    pub worker: Option<Uuid>,
}
