//! The Google Drive probe: a token for the service account, the folder listed, and a small
//! object written, read back and deleted, through the same `DriveStorage` backups use.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;

use super::Probe;
use super::local::probe_key;
use crate::storage::{DriveSettings, DriveStorage, RetryPolicy, Storage};

const NAME: &str = "google drive";

/// Probes Drive when it is configured (skipped otherwise).
pub(super) async fn probe(settings: &DriveSettings) -> Probe {
    let mut cfg = match settings.config() {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Probe::skipped(
                NAME,
                "GOOGLE_DRIVE_BACKUP_FOLDER_ID is not set: backups stay local",
            );
        }
        Err(e) => {
            return Probe::failed(
                NAME,
                e,
                "Fix the GOOGLE_* variable the message names (see .env.sample).",
            );
        }
    };
    // A probe reports; it does not ride out an outage (the upload jobs do).
    cfg.retry = RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(1),
    };
    let folder = cfg.folders.default.clone();
    let start = Instant::now();
    let drive = match DriveStorage::connect(cfg).await {
        Ok(d) => d,
        Err(e) => {
            return Probe::failed(
                NAME,
                e.to_string(),
                "Check the service-account key (GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_CLOUD_*).",
            );
        }
    };
    if let Err(e) = drive.check_token().await {
        return Probe::failed(
            NAME,
            format!("no access token: {e}"),
            "Check that the service-account key is current (not deleted in the Cloud console) and, \
             with GOOGLE_DRIVE_SUBJECT, that domain-wide delegation grants the drive scope.",
        );
    }
    let key = probe_key();
    let prefix = format!("{}/", key.as_str().split('/').next().unwrap_or_default());
    if let Err(e) = drive.list(&prefix).await {
        return Probe::failed(
            NAME,
            format!("token obtained, but folder {folder} cannot be listed: {e}"),
            "Check GOOGLE_DRIVE_BACKUP_FOLDER_ID and share the folder (on a shared drive) with the \
             service account's e-mail as Content manager.",
        );
    }
    let payload = Bytes::from(format!("cellar diagnose probe {}\n", key.as_str()).repeat(16));
    if let Err(e) = drive.put(&key, payload.clone()).await {
        return Probe::failed(
            NAME,
            format!("folder {folder} is listed, but writing a probe object failed: {e}"),
            "Give the service account Content manager access to the folder; a service account \
             has no storage of its own, so use a folder on a shared drive or set \
             GOOGLE_DRIVE_SUBJECT (domain-wide delegation).",
        );
    }
    let back = read_all(&drive, &key).await;
    let deleted = drive.delete(&key).await;
    match (back, deleted) {
        (Ok(b), Ok(())) if b == payload => Probe::ok(
            NAME,
            format!(
                "token obtained; folder {folder} listed; a {}-byte object written, read back \
                 and deleted in {} ms",
                payload.len(),
                start.elapsed().as_millis()
            ),
        ),
        (Ok(b), Err(e)) if b == payload => Probe::warning(
            NAME,
            format!("written and read back, but the probe object could not be deleted: {e}"),
            "Give the service account Content manager (not Contributor) access, and remove \
             cellar-probe-* files by hand.",
        ),
        (Ok(_), _) => Probe::failed(
            NAME,
            "the probe object read back differs from what was written",
            "Retry; if it persists, report it (Drive returned other bytes).",
        ),
        (Err(e), _) => Probe::failed(
            NAME,
            format!("the probe object was written but cannot be read back: {e}"),
            "Check the account's read access to the folder.",
        ),
    }
}

async fn read_all(drive: &DriveStorage, key: &crate::storage::ObjectKey) -> Result<Bytes, String> {
    let mut s = drive.get(key).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    while let Some(chunk) = s.next().await {
        buf.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
    }
    Ok(buf.into())
}
