//! Copying a completed backup to Google Drive (the `upload` job).
//!
//! ```text
//! drive = configured, else fail permanently (locations.drive = failed, by the caller)
//! locations.drive = uploading
//! local objects of <id>/ in order: KEY, data/*, MANIFEST last (a Drive copy without its
//!     MANIFEST is not a backup)
//! for each: already on Drive with the same size -> skip
//!           else stream local -> create_resumable(key, checkpoint of that key, if any);
//!                after every confirmed chunk save {key, sessionUri, confirmed}
//! locations.drive = available
//! ```
//! A worker killed mid-object is replaced by one that gets the saved checkpoint: Drive says
//! what the session holds, and only the bytes past it are sent again (the ones before are
//! re-read and hashed, so the copy's checksums still cover the whole object).

use async_trait::async_trait;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::BackupEnv;
use super::run::{key_object, manifest_object};
use super::{BackupError, BackupId, BackupState, Progress, ProgressReport, catalog};
use crate::storage::drive::UploadCheckpoint;
use crate::storage::{DriveStorage, ObjectInfo, ObjectKey, ObjectWriter, Storage};

/// Where an upload job stands, saved in the job row after every confirmed chunk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadState {
    /// The object being uploaded.
    pub key: ObjectKey,
    /// Its resumable session and what Drive confirmed.
    #[serde(flatten)]
    pub at: UploadCheckpoint,
}

/// Keeps [`UploadState`]s for a successor attempt (the worker stores them in the job row).
#[async_trait]
pub trait CheckpointSink: Send + Sync {
    /// Saves `state`; an error stops the upload (e.g. the job's lease was lost).
    async fn save(&self, state: &UploadState) -> Result<(), BackupError>;
}

/// What an upload did.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadReport {
    /// Objects sent (or finished) in this attempt.
    pub uploaded: usize,
    /// Objects already on Drive with the right size.
    pub skipped: usize,
    /// Bytes of the objects sent.
    pub bytes: u64,
    /// Offset the resumed object continued from, if this attempt resumed one.
    pub resumed_at: Option<u64>,
}

/// Copies every object of backup `id` from local storage to Drive and marks the Drive copy
/// available. On error the caller decides between retrying and `drive = failed`.
#[tracing::instrument(skip_all, fields(backup_id = %id))]
pub async fn upload(
    env: &BackupEnv,
    id: &BackupId,
    resume: Option<UploadState>,
    sink: &dyn CheckpointSink,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<UploadReport, BackupError> {
    let drive = env.drive.as_deref().ok_or_else(|| {
        BackupError::Permanent(
            "this backup asked for a Google Drive copy but Drive is not configured: set \
             GOOGLE_DRIVE_BACKUP_FOLDER_ID and a service-account key on the worker"
                .into(),
        )
    })?;
    let row = catalog::get(&env.pool, id)
        .await?
        .ok_or_else(|| BackupError::Permanent(format!("backup {id} is not in the catalog")))?;
    if row.state != BackupState::Completed {
        return Err(BackupError::Permanent(format!(
            "backup {id} is {:?}: only completed backups are uploaded",
            row.state
        )));
    }
    catalog::set_location(&env.pool, id, "drive", "uploading").await?;
    let objects = ordered(env.storage.list(&format!("{id}/")).await?, id)?;
    let work = copy_all(env, drive, &objects, resume, sink, progress);
    let report = tokio::select! {
        r = work => r?,
        _ = cancel.cancelled() => return Err(BackupError::Cancelled),
    };
    catalog::set_location(&env.pool, id, "drive", "available").await?;
    Ok(report)
}

/// KEY first, MANIFEST last, data in between; both must be there.
fn ordered(mut objects: Vec<ObjectInfo>, id: &BackupId) -> Result<Vec<ObjectInfo>, BackupError> {
    let (key, manifest) = (key_object(id), manifest_object(id));
    for needed in [&key, &manifest] {
        if !objects.iter().any(|o| &o.key == needed) {
            return Err(BackupError::Permanent(format!(
                "backup {id} has no local {needed}: nothing complete to upload"
            )));
        }
    }
    objects.sort_by_key(|o| (o.key != key, o.key == manifest, o.key.clone()));
    Ok(objects)
}

async fn copy_all(
    env: &BackupEnv,
    drive: &DriveStorage,
    objects: &[ObjectInfo],
    mut resume: Option<UploadState>,
    sink: &dyn CheckpointSink,
    progress: &dyn Progress,
) -> Result<UploadReport, BackupError> {
    let id_prefix = objects[0]
        .key
        .as_str()
        .split('/')
        .next()
        .unwrap_or_default();
    let remote = drive.list(&format!("{id_prefix}/")).await?;
    let total: u64 = objects.iter().map(|o| o.size).sum();
    let start = std::time::Instant::now();
    let mut report = UploadReport::default();
    let mut done = 0u64;
    for (i, o) in objects.iter().enumerate() {
        if remote.iter().any(|r| r.key == o.key && r.size == o.size) {
            report.skipped += 1;
        } else {
            let at = resume.take_if(|s| s.key == o.key).map(|s| s.at);
            let offset = copy_one(env, drive, o, at, sink).await?;
            if offset > 0 {
                report.resumed_at = Some(offset);
            }
            report.uploaded += 1;
            report.bytes += o.size;
        }
        done += o.size;
        let r = ProgressReport {
            phase: "uploading".into(),
            bytes_done: done,
            bytes_total: total,
            tables_done: i as u64 + 1,
            tables_total: objects.len() as u64,
            ..Default::default()
        };
        progress.report(r.derive(start.elapsed().as_secs_f64()));
    }
    Ok(report)
}

/// Streams one local object into Drive, resuming `at` when given; returns the offset it
/// resumed from (0 for a fresh upload).
async fn copy_one(
    env: &BackupEnv,
    drive: &DriveStorage,
    o: &ObjectInfo,
    at: Option<UploadCheckpoint>,
    sink: &dyn CheckpointSink,
) -> Result<u64, BackupError> {
    let mut w = drive.create_resumable(&o.key, at).await?;
    let offset = w.resume_offset();
    let mut cps = w.checkpoints();
    let mut stream = env.storage.get(&o.key).await?;
    while let Some(chunk) = stream.next().await {
        w.write(chunk?).await?;
        if cps.has_changed().unwrap_or(false) {
            let at = cps.borrow_and_update().clone();
            if let Some(at) = at {
                let state = UploadState {
                    key: o.key.clone(),
                    at,
                };
                sink.save(&state).await?;
            }
        }
    }
    let info = Box::new(w).finish().await?;
    if info.size != o.size {
        return Err(BackupError::Transient(format!(
            "{}: Drive holds {} bytes, the local copy {}",
            o.key, info.size, o.size
        )));
    }
    Ok(offset)
}
