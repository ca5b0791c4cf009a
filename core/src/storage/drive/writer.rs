//! [`DriveWriter`]: streams an object from the pipeline into a resumable upload session.
//!
//! ```text
//! write(bytes): hash; keep the bytes past the confirmed offset; while a chunk is buffered: send
//! send(chunk):  PUT bytes C-(C+len-1)/* (len a multiple of 256 KiB, or the rest when last)
//!   308 Range: bytes=0-N   -> confirmed = N+1; drop bytes before it; what is left is re-sent
//!   dropped / 5xx / 429    -> backoff, then PUT bytes */* (status query) -> confirmed offset
//!   404 / 410              -> new session, from byte 0 if we still hold it, else fail
//! finish: small and unsent -> multipart; else last chunk with the total; then compare Drive's
//!         size and sha256Checksum with ours, record BLAKE3, remove older copies of the key
//! ```
//! Bytes re-sent after a fault are at most one chunk: the status query tells where to resume.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Buf, Bytes, BytesMut};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::files::{DriveFile, PROP_BLAKE3};
use super::http::Fault;
use super::upload::Reply;
use super::{Inner, UploadCheckpoint};
use crate::storage::{ObjectInfo, ObjectKey, ObjectWriter, StorageError};

/// Resumable chunks are multiples of this (Drive's rule for every chunk but the last).
pub const GRANULE: usize = 256 * 1024;

/// Objects up to this size that fit in one chunk go in one multipart request.
const MULTIPART_MAX: u64 = 5 * 1024 * 1024;

/// An object being uploaded to Drive. Nothing is visible until `finish`.
pub struct DriveWriter {
    inner: Arc<Inner>,
    key: ObjectKey,
    folder: String,
    /// The new file's metadata: name, parents, appProperties.
    meta: Value,
    /// Bytes `confirmed..written`, not yet confirmed by Drive.
    buf: BytesMut,
    /// What Drive confirmed it holds.
    confirmed: u64,
    /// Bytes passed to `write` (from byte 0, including any skipped on resume).
    written: u64,
    session: Option<String>,
    /// Set when a resumed session turned out to be complete already.
    done: Option<DriveFile>,
    sha256: Sha256,
    blake3: blake3::Hasher,
    progress: watch::Sender<Option<UploadCheckpoint>>,
    what: String,
}

impl DriveWriter {
    pub(super) fn new(inner: Arc<Inner>, key: ObjectKey, folder: String, meta: Value) -> Self {
        let what = format!("uploading {key}");
        Self {
            inner,
            key,
            folder,
            meta,
            buf: BytesMut::new(),
            confirmed: 0,
            written: 0,
            session: None,
            done: None,
            sha256: Sha256::new(),
            blake3: blake3::Hasher::new(),
            progress: watch::channel(None).0,
            what,
        }
    }

    /// Continues the session of `at`, which Drive says holds `confirmed` bytes (or is done).
    pub(super) fn resumed(mut self, at: UploadCheckpoint, reply: Reply) -> Self {
        match reply {
            Reply::Confirmed(n) => self.confirmed = n,
            Reply::Done(f) => {
                self.confirmed = f.size.unwrap_or(0);
                self.done = Some(f);
            }
            Reply::Expired => return self,
        }
        self.session = Some(at.session_uri);
        self
    }

    /// Where the upload resumes: the caller may skip this many leading bytes, or write them
    /// again (they are then only hashed, not sent).
    pub fn resume_offset(&self) -> u64 {
        self.confirmed
    }

    /// Follows the session URI and confirmed offset, for a job to keep in its row.
    pub fn checkpoints(&self) -> watch::Receiver<Option<UploadCheckpoint>> {
        self.progress.subscribe()
    }

    async fn session(&mut self) -> Result<String, StorageError> {
        if let Some(uri) = &self.session {
            return Ok(uri.clone());
        }
        let api = &self.inner.api;
        let uri = api
            .start_session(&self.meta, &self.folder, &self.what)
            .await?;
        self.session = Some(uri.clone());
        self.publish();
        Ok(uri)
    }

    fn publish(&self) {
        let at = self.session.as_ref().map(|uri| UploadCheckpoint {
            session_uri: uri.clone(),
            confirmed: self.confirmed,
        });
        self.progress.send_replace(at);
    }

    /// Drops the bytes Drive now confirms.
    fn advance(&mut self, n: u64) -> Result<(), StorageError> {
        let api = &self.inner.api;
        if n < self.confirmed {
            return Err(api.transient(format!(
                "{}: Drive now holds {n} bytes after confirming {}",
                self.what, self.confirmed
            )));
        }
        let drop = n - self.confirmed;
        if drop > self.buf.len() as u64 {
            return Err(api.permanent(format!(
                "{}: Drive confirmed {n} bytes, more than the {} sent",
                self.what, self.written
            )));
        }
        self.buf.advance(drop as usize);
        self.confirmed = n;
        Ok(())
    }

    /// The session expired: start over if every byte is still here.
    fn restart(&mut self) -> Result<(), StorageError> {
        if self.confirmed == 0 && self.buf.len() as u64 == self.written {
            tracing::warn!(key = %self.key, "upload session expired; starting a new one");
            self.session = None;
            return Ok(());
        }
        Err(self.inner.api.transient(format!(
            "{}: the upload session expired after Drive confirmed {} bytes; the object must be \
             written again from its first byte",
            self.what, self.confirmed
        )))
    }

    /// Sends the buffer: one chunk (`last == false`), or everything left and the total.
    async fn send(&mut self, last: bool) -> Result<Option<DriveFile>, StorageError> {
        let policy = self.inner.api.policy.clone();
        let total = last.then_some(self.written);
        let (mut attempt, mut ask) = (1u32, false);
        loop {
            let uri = self.session().await?;
            let len = match last {
                true => self.buf.len(),
                false => self.buf.len().min(self.inner.chunk) / GRANULE * GRANULE,
            };
            if !last && len == 0 {
                return Ok(None);
            }
            let api = &self.inner.api;
            let reply = match ask {
                true => api.query_status(&uri, total, &self.what).await,
                false => {
                    let chunk = Bytes::copy_from_slice(&self.buf[..len]);
                    api.put_chunk(&uri, self.confirmed, chunk, total, &self.what)
                        .await
                }
            };
            ask = false;
            match reply {
                Ok(Reply::Confirmed(n)) => {
                    let before = self.confirmed;
                    self.advance(n)?;
                    if n > before {
                        attempt = 1;
                        self.publish();
                    }
                    if !last && self.buf.len() < self.inner.chunk {
                        return Ok(None);
                    }
                }
                Ok(Reply::Done(f)) if last => return Ok(Some(f)),
                Ok(Reply::Done(_)) => {
                    return Err(
                        api.permanent(format!("{}: Drive ended the upload early", self.what))
                    );
                }
                Ok(Reply::Expired) => self.restart()?,
                Err(Fault::Permanent(e)) => return Err(e),
                Err(Fault::Transient(e)) if attempt >= policy.max_attempts.max(1) => return Err(e),
                Err(Fault::Transient(e)) => {
                    let delay = policy.delay(attempt);
                    tracing::warn!(key = %self.key, attempt, ?delay, error = %e, "upload fault; asking the session where to resume");
                    tokio::time::sleep(delay).await;
                    (attempt, ask) = (attempt + 1, true);
                }
            }
        }
    }

    /// Compares Drive's size and SHA-256 with what was sent; removes a bad copy.
    async fn check(&self, file: &DriveFile, sha256: &str) -> Result<(), StorageError> {
        let size_ok = file.size == Some(self.written);
        let sha_ok = match &file.sha256_checksum {
            Some(s) => s.eq_ignore_ascii_case(sha256),
            None => {
                tracing::warn!(key = %self.key, "Drive sent no sha256Checksum; size checked only");
                true
            }
        };
        if size_ok && sha_ok {
            return Ok(());
        }
        let _ = self
            .inner
            .api
            .delete_file(&file.id, self.key.as_str())
            .await;
        Err(self.inner.api.transient(format!(
            "{}: Drive stored {:?} bytes with SHA-256 {:?}, we sent {} bytes with SHA-256 {sha256}; \
             the bad copy was removed",
            self.what, file.size, file.sha256_checksum, self.written
        )))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait]
impl ObjectWriter for DriveWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        self.sha256.update(&chunk);
        self.blake3.update(&chunk);
        let start = self.written;
        self.written += chunk.len() as u64;
        if self.written > self.confirmed {
            let skip = self.confirmed.saturating_sub(start) as usize;
            self.buf.extend_from_slice(&chunk[skip..]);
        }
        while self.buf.len() >= self.inner.chunk {
            self.send(false).await?;
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(key = %self.key, size = self.written))]
    async fn finish(mut self: Box<Self>) -> Result<ObjectInfo, StorageError> {
        let sha256 = hex(&self.sha256.clone().finalize());
        let blake3 = self.blake3.finalize().to_hex().to_string();
        let multipart = self.session.is_none() && self.written <= MULTIPART_MAX;
        let file = if let Some(f) = self.done.take() {
            f
        } else if multipart {
            self.meta["appProperties"][PROP_BLAKE3] = json!(blake3);
            let bytes = std::mem::take(&mut self.buf).freeze();
            let api = &self.inner.api;
            api.multipart(&self.meta, bytes, &self.folder, &self.what)
                .await?
        } else {
            let f = self.send(true).await?;
            f.ok_or_else(|| self.inner.api.permanent(format!("{}: no file", self.what)))?
        };
        self.check(&file, &sha256).await?;
        if !multipart {
            let props = json!({ PROP_BLAKE3: blake3 });
            self.inner
                .api
                .patch_props(&file.id, self.key.as_str(), props)
                .await?;
        }
        self.inner.remove_other_copies(&self.key, &file.id).await?;
        Ok(ObjectInfo {
            key: self.key.clone(),
            size: self.written,
        })
    }

    async fn abort(self: Box<Self>) -> Result<(), StorageError> {
        if let Some(uri) = &self.session {
            self.inner.api.cancel_session(uri).await;
        }
        Ok(())
    }
}
