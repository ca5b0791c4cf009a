//! Key rotation: re-wrap every backup's data key under the current writing master key, without
//! touching the data. Put the new key first in `CELLAR_ENCRYPTION_KEY` (keeping the old one
//! after it), run `rotate_keys`, then the old key can be retired.
//!
//! ```text
//! for each completed backup:
//!     envelope = KEY; already only under the writing key? skip
//!     new = rewrap(envelope)   -- unwraps with any known key, wraps with the writing key
//!     put KEY (atomic replace), record the key id on the backup row
//! ```

use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;

use super::run::key_object;
use super::{BackupEnv, BackupError, BackupId};
use crate::format::KeyEnvelope;

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
    let ids =
        sqlx::query_scalar!("SELECT id FROM backup WHERE state = 'completed' ORDER BY created_at")
            .fetch_all(&env.pool)
            .await?;
    let mut report = RotateReport::default();
    for raw in ids {
        let id: BackupId = raw.parse().map_err(BackupError::Permanent)?;
        match rotate_one(env, &id, &writing).await {
            Ok(true) => report.rewrapped.push(raw),
            Ok(false) => report.current += 1,
            Err(e) => report.failed.push((raw, e.to_string())),
        }
    }
    Ok(report)
}

/// Re-wraps one backup; false when it was already current.
async fn rotate_one(env: &BackupEnv, id: &BackupId, writing: &str) -> Result<bool, BackupError> {
    let key = key_object(id);
    let mut stream = env.storage.get(&key).await?;
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
    env.storage.put(&key, Bytes::from(new.to_bytes())).await?;
    sqlx::query!(
        "UPDATE backup SET key_id = $2 WHERE id = $1",
        id.as_str(),
        writing
    )
    .execute(&env.pool)
    .await?;
    tracing::info!(backup_id = %id, key_id = writing, "data key re-wrapped");
    Ok(true)
}
