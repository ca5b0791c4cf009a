//! Google Drive v3 as a [`Storage`]: one Drive file per object, in a configured folder
//! (shared drives supported), found by its `appProperties`.
//!
//! # Layout
//! - [`settings`]: [`DriveSettings`] (`GOOGLE_*` variables), the service-account key, [`DriveConfig`].
//! - `http`: the authenticated client (yup-oauth2 service account), retries with backoff.
//! - `errors`: Drive's error answers, classified transient or permanent, with actionable messages.
//! - `files`: the File resource, `q` queries, paging, download with `Range`, delete.
//! - `upload`: multipart and resumable upload calls (`308` + `Range`, status queries).
//! - [`writer`]: [`DriveWriter`], streaming chunks and resuming from the confirmed offset.
//!
//! Object `k` is a file named `k` (slashes kept: Drive names are free text) with
//! `appProperties {cellar_key: k, backup_id: <first segment of k>, blake3}`. A second write of
//! `k` uploads a new file and then removes the older copies; readers take the newest copy.

mod errors;
mod files;
mod http;
pub mod settings;
mod upload;
pub mod writer;

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use self::files::{DriveFile, PROP_BACKUP, PROP_KEY, has_prop};
use self::http::Api;
pub use self::settings::{DriveConfig, DriveSettings, Folders};
pub use self::writer::DriveWriter;
use super::{ByteStream, ObjectInfo, ObjectKey, ObjectWriter, Storage, StorageError};

/// Drive's limit on one appProperty, key and value together, in bytes.
const PROPERTY_MAX: usize = 124;

/// Where a resumable upload stands: enough for another process to continue it. Kept in the
/// upload job's row; the session URI is a capability to write one file, nothing more.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadCheckpoint {
    /// The absolute session URI Drive returned.
    pub session_uri: String,
    /// Bytes Drive confirmed it holds.
    pub confirmed: u64,
}

/// Backup objects on Google Drive. Cheap to clone.
#[derive(Clone)]
pub struct DriveStorage(Arc<Inner>);

pub(crate) struct Inner {
    api: Api,
    folders: Folders,
    /// Resumable chunk size, a multiple of 256 KiB.
    chunk: usize,
}

impl std::fmt::Debug for DriveStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl DriveStorage {
    /// Connects (no call is made yet: the first request fetches a token).
    pub async fn connect(cfg: DriveConfig) -> Result<Self, StorageError> {
        let backend = format!("drive:folder {}", cfg.folders.default);
        let api = Api::new(
            cfg.key,
            cfg.subject,
            cfg.api_url,
            cfg.upload_url,
            cfg.retry,
            backend,
        )
        .await?;
        let chunk = (cfg.chunk_bytes / writer::GRANULE).max(1) * writer::GRANULE;
        Ok(Self(Arc::new(Inner {
            api,
            folders: cfg.folders,
            chunk,
        })))
    }

    /// Fetches an access token for the service account (diagnose's first Drive step): a
    /// refused grant names the account and what to check, never the key.
    pub async fn check_token(&self) -> Result<(), StorageError> {
        self.0
            .api
            .token(false)
            .await
            .map(drop)
            .map_err(|f| f.into_error())
    }

    /// A writer that continues the session of `at` when Drive still knows it (see
    /// [`DriveWriter::resume_offset`]), or starts afresh when the session expired.
    pub async fn create_resumable(
        &self,
        key: &ObjectKey,
        at: Option<UploadCheckpoint>,
    ) -> Result<DriveWriter, StorageError> {
        let w = self.0.writer(key)?;
        let Some(at) = at else { return Ok(w) };
        let what = format!("resuming the upload of {key}");
        let reply = self
            .0
            .api
            .query_status(&at.session_uri, None, &what)
            .await
            .map_err(|f| f.into_error())?;
        Ok(w.resumed(at, reply))
    }
}

impl Inner {
    fn writer(self: &Arc<Self>, key: &ObjectKey) -> Result<DriveWriter, StorageError> {
        if PROP_KEY.len() + key.as_str().len() > PROPERTY_MAX {
            return Err(StorageError::InvalidKey {
                key: key.to_string(),
                why: format!("Drive keeps at most {PROPERTY_MAX} bytes per appProperty"),
            });
        }
        let folder = self.folders.for_key(key.as_str()).to_string();
        let first = key.as_str().split('/').next().unwrap_or_default();
        let meta = json!({
            "name": key.as_str(),
            "parents": [folder],
            "appProperties": { PROP_KEY: key.as_str(), PROP_BACKUP: first },
        });
        Ok(DriveWriter::new(self.clone(), key.clone(), folder, meta))
    }

    /// `(<folders>) and trashed = false [and <extra>]`.
    fn query(&self, extra: Option<&str>) -> String {
        let base = format!("{} and trashed = false", self.folders.parents_clause());
        match extra {
            Some(e) => format!("{base} and {e}"),
            None => base,
        }
    }

    /// Every copy of `key`, newest first.
    async fn copies(&self, key: &ObjectKey) -> Result<Vec<DriveFile>, StorageError> {
        let q = self.query(Some(&has_prop(PROP_KEY, key.as_str())));
        let mut files = self.api.search(&q, &format!("finding {key}")).await?;
        files.retain(|f| f.key() == Some(key.as_str()));
        files.sort_by(|a, b| b.created_time.cmp(&a.created_time));
        Ok(files)
    }

    async fn newest(&self, key: &ObjectKey) -> Result<DriveFile, StorageError> {
        let files = self.copies(key).await?;
        files
            .into_iter()
            .next()
            .ok_or_else(|| StorageError::NotFound(key.to_string()))
    }

    /// After an upload: removes every other copy of `key` (the overwritten one, and a
    /// duplicate of a retried multipart request whose first answer was lost).
    async fn remove_other_copies(&self, key: &ObjectKey, keep: &str) -> Result<(), StorageError> {
        for f in self.copies(key).await? {
            if f.id != keep {
                self.api.delete_file(&f.id, key.as_str()).await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Storage for DriveStorage {
    fn describe(&self) -> String {
        self.0.api.backend.clone()
    }

    async fn create(&self, key: &ObjectKey) -> Result<Box<dyn ObjectWriter>, StorageError> {
        Ok(Box::new(self.0.writer(key)?))
    }

    async fn get(&self, key: &ObjectKey) -> Result<ByteStream, StorageError> {
        self.get_range(key, 0..u64::MAX).await
    }

    #[tracing::instrument(skip_all, fields(key = %key, start = range.start, end = range.end))]
    async fn get_range(
        &self,
        key: &ObjectKey,
        range: Range<u64>,
    ) -> Result<ByteStream, StorageError> {
        let file = self.0.newest(key).await?;
        let size = file.size.unwrap_or(0);
        let (start, end) = (range.start.min(size), range.end.min(size));
        if start >= end {
            return Ok(Box::pin(futures::stream::empty()));
        }
        self.0
            .api
            .download(&file.id, key.as_str(), start..end)
            .await
    }

    async fn stat(&self, key: &ObjectKey) -> Result<ObjectInfo, StorageError> {
        let file = self.0.newest(key).await?;
        Ok(ObjectInfo {
            key: key.clone(),
            size: file.size.unwrap_or(0),
        })
    }

    #[tracing::instrument(skip_all, fields(prefix))]
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        let by_backup = prefix
            .split_once('/')
            .map(|(first, _)| has_prop(PROP_BACKUP, first));
        let q = self.0.query(by_backup.as_deref());
        let mut files = self
            .0
            .api
            .search(&q, &format!("listing {prefix:?}"))
            .await?;
        files.sort_by(|a, b| b.created_time.cmp(&a.created_time));
        let mut seen = std::collections::BTreeMap::new();
        for f in files {
            let Some(k) = f.key().filter(|k| k.starts_with(prefix)) else {
                continue;
            };
            let Ok(key) = ObjectKey::new(k) else { continue };
            let size = f.size.unwrap_or(0);
            seen.entry(key).or_insert(size);
        }
        Ok(seen
            .into_iter()
            .map(|(key, size)| ObjectInfo { key, size })
            .collect())
    }

    #[tracing::instrument(skip_all, fields(key = %key))]
    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        for f in self.0.copies(key).await? {
            self.0.api.delete_file(&f.id, key.as_str()).await?;
        }
        Ok(())
    }
}
