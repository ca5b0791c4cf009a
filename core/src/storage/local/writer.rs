//! The local backend's [`ObjectWriter`]: a buffered temp file in `root/.tmp/`, made durable and
//! visible by `finish` (flush, fsync, rename, fsync the directory), removed by `abort` or `Drop`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::fs::File;
use tokio::io::{AsyncWriteExt, BufWriter};

use super::fs::{fsync_dir, prepare_parent, write_error};
use crate::storage::{ObjectInfo, ObjectKey, ObjectWriter, StorageError};

/// Bytes gathered before one write syscall: small chunks never cost a syscall each.
const WRITE_BUFFER: usize = 1024 * 1024;

/// Attempts at "create parent dirs, rename" when a concurrent delete prunes a fresh directory.
const RENAME_ATTEMPTS: usize = 3;

/// An in-progress local write. Nothing exists under its key until `finish`.
pub(super) struct LocalWriter {
    /// `None` once finished or aborted.
    file: Option<BufWriter<File>>,
    /// The temp file; removed on abort and on drop unless the rename happened.
    tmp: PathBuf,
    root: Arc<Path>,
    key: ObjectKey,
    /// Bytes accepted so far, reported by `finish`.
    size: u64,
}

impl LocalWriter {
    /// Wraps a freshly created temp file.
    pub(super) fn new(file: File, tmp: PathBuf, root: Arc<Path>, key: ObjectKey) -> Self {
        let file = Some(BufWriter::with_capacity(WRITE_BUFFER, file));
        Self {
            file,
            tmp,
            root,
            key,
            size: 0,
        }
    }

    fn err(&self, e: std::io::Error) -> StorageError {
        write_error(e, self.key.as_str(), &self.root)
    }
}

#[async_trait]
impl ObjectWriter for LocalWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        let file = self.file.as_mut().expect("write after finish or abort");
        match file.write_all(&chunk).await {
            Ok(()) => {
                self.size += chunk.len() as u64;
                Ok(())
            }
            Err(e) => Err(self.err(e)),
        }
    }

    #[tracing::instrument(skip_all, fields(key = %self.key, size = self.size))]
    async fn finish(mut self: Box<Self>) -> Result<ObjectInfo, StorageError> {
        let mut file = self.file.take().expect("finish after finish or abort");
        file.flush().await.map_err(|e| self.err(e))?;
        let file = file.into_inner().into_std().await;
        let (tmp, root, key) = (self.tmp.clone(), self.root.clone(), self.key.clone());
        let done = tokio::task::spawn_blocking(move || commit(file, &tmp, &root, &key)).await;
        done.map_err(|e| self.err(std::io::Error::other(e)))??;
        self.tmp = PathBuf::new(); // renamed: nothing left for Drop to remove
        Ok(ObjectInfo {
            key: self.key.clone(),
            size: self.size,
        })
    }

    async fn abort(mut self: Box<Self>) -> Result<(), StorageError> {
        drop(self.file.take());
        let tmp = std::mem::take(&mut self.tmp);
        match tokio::fs::remove_file(&tmp).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.err(e)),
            _ => Ok(()),
        }
    }
}

/// fsync the data, rename into place (retrying when a concurrent delete pruned a directory we
/// just made), fsync the directory that now holds the name.
fn commit(
    file: std::fs::File,
    tmp: &Path,
    root: &Path,
    key: &ObjectKey,
) -> Result<(), StorageError> {
    let name = key.as_str();
    file.sync_all().map_err(|e| write_error(e, name, root))?;
    drop(file);
    let mut attempt = 0;
    let dest = loop {
        attempt += 1;
        let dest = prepare_parent(root, key)?;
        match std::fs::rename(tmp, &dest) {
            Ok(()) => break dest,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < RENAME_ATTEMPTS => {}
            Err(e) => return Err(write_error(e, name, root)),
        }
    };
    fsync_dir(dest.parent().unwrap_or(root)).map_err(|e| write_error(e, name, root))
}

impl Drop for LocalWriter {
    /// A writer dropped without `finish` (an error, a cancelled task) must leave nothing: remove
    /// the temp file, best effort. One unlink is cheap enough to do inline.
    fn drop(&mut self) {
        if self.tmp.as_os_str().is_empty() {
            return; // finished or aborted
        }
        if let Err(e) = std::fs::remove_file(&self.tmp) {
            tracing::warn!(path = %self.tmp.display(), error = %e, "could not remove temp file");
        }
    }
}
