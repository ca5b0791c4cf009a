//! Deleting a backup: every object under `<id>/` is removed from storage (local, and Drive when
//! configured), then the row is marked `deleted` (it stays in the catalog, for the record). Runs
//! as a job (`delete`), so the API never needs storage credentials, and a storage hiccup is
//! retried like any other job.

use sqlx::PgPool;

use super::run::remove_objects;
use super::{BackupEnv, BackupError, BackupId, BackupState};
use crate::storage::Storage;

/// Removes backup `id`'s objects and marks it deleted. Refuses a backup still being taken.
#[tracing::instrument(skip_all, fields(backup_id = %id))]
pub async fn delete(env: &BackupEnv, id: &BackupId) -> Result<usize, BackupError> {
    let state = sqlx::query_scalar!(
        r#"SELECT state AS "state: BackupState" FROM backup WHERE id = $1"#,
        id.as_str()
    )
    .fetch_optional(&env.pool)
    .await?
    .ok_or_else(|| BackupError::Permanent(format!("backup {id} is not in the catalog")))?;
    if matches!(state, BackupState::Pending | BackupState::Running) {
        return Err(BackupError::Permanent(format!(
            "backup {id} is still being taken: cancel its job first"
        )));
    }
    // A restore queued after retention (or a person) asked for this delete still needs it.
    let restoring = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM restore WHERE backup_id = $1
                          AND state IN ('pending', 'running')) AS "e!""#,
        id.as_str()
    )
    .fetch_one(&env.pool)
    .await?;
    if restoring {
        return Err(BackupError::Transient(format!(
            "backup {id} is being restored: deleting it later"
        )));
    }
    let mut removed = remove_objects(env, id).await?;
    if let Some(drive) = &env.drive {
        // The Drive copy goes too (the worker that deletes must have Drive configured).
        for o in drive.list(&format!("{id}/")).await? {
            drive.delete(&o.key).await?;
            removed += 1;
        }
    }
    mark_deleted(&env.pool, id).await?;
    tracing::info!(objects = removed, "backup deleted");
    Ok(removed)
}

/// -> deleted: nothing of it is stored anywhere any more.
pub async fn mark_deleted(pool: &PgPool, id: &BackupId) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE backup SET state = 'deleted', locations = '{}'
           WHERE id = $1 AND state IN ('completed', 'failed', 'deleted')"#,
        id.as_str()
    )
    .execute(pool)
    .await
    .map(drop)
}
