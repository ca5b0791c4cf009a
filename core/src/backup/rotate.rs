//! Key rotation: re-wrap every backup's data key under the current writing master key, without
//! touching the data. Put the new key first in `CELLAR_ENCRYPTION_KEY` (keeping the old one
//! after it), run `rotate_keys`, then the old key can be retired.
//!
//! ```text
//! for each completed backup, for each copy (local when its KEY is there; Drive when
//! locations.drive = available):
//!     envelope = KEY; already only under the writing key? skip this copy
//!     new = rewrap(envelope)   -- unwraps with any known key, wraps with the writing key
//!     put KEY (atomic replace)
//! any copy re-wrapped: record the key id on the backup row
//! ```
//! Copies are checked one by one, so a Drive outage during one rotation leaves that copy for
//! the next run (reported as failed) instead of marking the backup current.

use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;

use super::run::key_object;
use super::{BackupEnv, BackupError, BackupId};
use crate::format::KeyEnvelope;
use crate::storage::Storage;

/// What a rotation did.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RotateReport {
    /// Backups whose KEY now wraps the data key under the writing key.
    pub rewrapped: Vec<String>,
    /// Backups already under the writing key only.
    pub current: usize,
    /// Backups that could not be re-wrapped, and why (e.g. their key is not configured).
    pub failed: Vec<(String, String)>,
}

/// Re-wraps every completed backup's data key under the writing key.
#[tracing::instrument(skip_all)]
pub async fn rotate_all(env: &BackupEnv) -> Result<RotateReport, BackupError> {
    let writing = env.keyring.writing_key().id().to_string();
    let rows = sqlx::query!(
        r#"SELECT id, coalesce(locations->>'drive' = 'available', false) AS "on_drive!"
           FROM backup WHERE state = 'completed' ORDER BY created_at"#
    )
    .fetch_all(&env.pool)
    .await?;
    let mut report = RotateReport::default();
    for row in rows {
        let id: BackupId = row.id.parse().map_err(BackupError::Permanent)?;
        match rotate_one(env, &id, &writing, row.on_drive).await {
            Ok(true) => report.rewrapped.push(row.id),
            Ok(false) => report.current += 1,
            Err(e) => report.failed.push((row.id, e.to_string())),
        }
    }
    Ok(report)
}

/// Re-wraps every copy of one backup; false when all were already current.
async fn rotate_one(
    env: &BackupEnv,
    id: &BackupId,
    writing: &str,
    on_drive: bool,
) -> Result<bool, BackupError> {
    let key = key_object(id);
    let mut copies: Vec<(&str, &dyn Storage)> = Vec::new();
    match env.storage.stat(&key).await {
        Ok(_) => copies.push(("local", &*env.storage)),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    match (&env.drive, on_drive) {
        (Some(d), true) => copies.push(("Google Drive", &**d)),
        (None, true) => {
            return Err(BackupError::Permanent(
                "the backup has a Google Drive copy but this worker has no Drive configured: \
                 run the rotation where GOOGLE_DRIVE_BACKUP_FOLDER_ID is set"
                    .into(),
            ));
        }
        _ => {}
    }
    if copies.is_empty() {
        return Err(BackupError::Permanent(format!(
            "no copy of {key} is reachable (neither local nor on Google Drive)"
        )));
    }
    let mut changed = false;
    for (place, storage) in copies {
        changed |= rewrap_copy(storage, id, env)
            .await
            .map_err(|e| prefix(e, place))?;
    }
    if changed {
        sqlx::query!(
            "UPDATE backup SET key_id = $2 WHERE id = $1",
            id.as_str(),
            writing
        )
        .execute(&env.pool)
        .await?;
        tracing::info!(backup_id = %id, key_id = writing, "data key re-wrapped");
    }
    Ok(changed)
}

fn prefix(e: BackupError, place: &str) -> BackupError {
    match e {
        BackupError::Permanent(m) => BackupError::Permanent(format!("{place} copy: {m}")),
        BackupError::Transient(m) => BackupError::Transient(format!("{place} copy: {m}")),
        BackupError::Cancelled => BackupError::Cancelled,
    }
}

/// Re-wraps the KEY object in one storage; false when it was already current.
async fn rewrap_copy(
    storage: &dyn Storage,
    id: &BackupId,
    env: &BackupEnv,
) -> Result<bool, BackupError> {
    let key = key_object(id);
    let writing = env.keyring.writing_key().id();
    let mut stream = storage.get(&key).await?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?);
    }
    let envelope = KeyEnvelope::from_bytes(&bytes)?;
    if envelope.key_ids() == [writing] {
        return Ok(false);
    }
    // Proves the data key opens under a known key before anything is replaced.
    envelope.unwrap(&env.keyring, id.format_uuid())?;
    let new = envelope.rewrap(&env.keyring)?;
    storage.put(&key, Bytes::from(new.to_bytes())).await?;
    Ok(true)
}
