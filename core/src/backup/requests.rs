//! Asking for work on an existing backup (verify, delete): the backup's state is checked and the
//! job enqueued in one transaction, with the row locked, so a delete cannot slip in between.

use serde_json::json;
use sqlx::PgPool;

use super::{BackupId, BackupState, JOB_DELETE, JOB_VERIFY};
use crate::queue::{self, Enqueued, NewJob, QueueError};

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No such backup.
    #[error("backup {0} not found")]
    NotFound(BackupId),
    /// The backup's state does not allow it.
    #[error("backup {id} is {state:?}: {why}")]
    WrongState {
        id: BackupId,
        state: BackupState,
        why: &'static str,
    },
    /// The queue refused.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl From<sqlx::Error> for RequestError {
    fn from(e: sqlx::Error) -> Self {
        Self::Queue(e.into())
    }
}

/// Enqueues a verification of a completed backup at `level`.
pub async fn verify(
    pool: &PgPool,
    id: &BackupId,
    level: super::verify::Level,
) -> Result<Enqueued, RequestError> {
    let args = json!({ "backupId": id.as_str(), "level": level });
    let job = NewJob::new(JOB_VERIFY, args).with_dedupe_key(format!("verify:{id}"));
    enqueue_if(pool, id, &job, |s, _| match s {
        BackupState::Completed => Ok(()),
        _ => Err("only completed backups can be verified"),
    })
    .await
}

/// Enqueues the deletion of a finished backup's objects (the worker marks it `deleted`).
pub async fn delete(pool: &PgPool, id: &BackupId) -> Result<Enqueued, RequestError> {
    let job = NewJob::new(JOB_DELETE, json!({ "backupId": id.as_str() }))
        .with_dedupe_key(format!("delete:{id}"));
    enqueue_if(pool, id, &job, |s, pinned| match s {
        _ if pinned => Err("it is pinned: unpin it first"),
        BackupState::Completed | BackupState::Failed => Ok(()),
        BackupState::Deleted => Err("it is already deleted"),
        _ => Err("it is still being taken: cancel its job first"),
    })
    .await
}

async fn enqueue_if(
    pool: &PgPool,
    id: &BackupId,
    job: &NewJob,
    allowed: impl Fn(BackupState, bool) -> Result<(), &'static str>,
) -> Result<Enqueued, RequestError> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query!(
        r#"SELECT state AS "state: BackupState", pinned FROM backup WHERE id = $1 FOR UPDATE"#,
        id.as_str()
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| RequestError::NotFound(id.clone()))?;
    let state = row.state;
    allowed(state, row.pinned).map_err(|why| RequestError::WrongState {
        id: id.clone(),
        state,
        why,
    })?;
    let e = queue::enqueue(&mut tx, job).await?;
    tx.commit().await?;
    Ok(e)
}
