//! The local filesystem backend: one file per object under a root directory.
//!
//! Layout on disk: object `a/b/c` is the file `<root>/a/b/c`; in-progress writes are temp files
//! in `<root>/.tmp/` (same filesystem, so the final rename is atomic). Durability follows restic:
//! write the temp file, fsync it, rename it into place, fsync the directory.

mod fs;
#[cfg(test)]
mod tests;
mod writer;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use self::fs::{TMP_DIR, check_key, describe, io_error, lookup, prune_empty_parents, walk};
use self::writer::LocalWriter;
use super::{ByteStream, ObjectInfo, ObjectKey, ObjectWriter, Storage, StorageError};

/// Size of the chunks `get` yields: large enough to amortise syscalls, small enough to keep
/// memory flat while streaming.
const READ_CHUNK: usize = 256 * 1024;

/// Objects as files under a root directory; for a local disk, a NAS mount, or tests.
#[derive(Clone, Debug)]
pub struct LocalStorage {
    /// Canonical absolute root, shared with writers.
    root: Arc<Path>,
}

impl LocalStorage {
    /// Opens (creating if needed) a storage root. The root is canonicalised, so a symlinked root
    /// set by the operator is fine; symlinks *inside* the root are refused.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root: PathBuf = root.into();
        let err = |e| io_error(e, "opening", "the storage root", &root);
        std::fs::create_dir_all(root.join(TMP_DIR)).map_err(err)?;
        let root = root.canonicalize().map_err(err)?;
        Ok(Self { root: root.into() })
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where an object lives on disk; for operators reading logs, and for tests.
    pub fn path_of(&self, key: &ObjectKey) -> PathBuf {
        self.root.join(key.as_str())
    }

    /// Removes temp files older than `older_than` left by writers that crashed (a process killed
    /// mid-write never runs `Drop`). Call at start-up, with an age longer than any write can
    /// take. Returns how many files were removed.
    #[tracing::instrument(skip_all, fields(root = %self.root.display()))]
    pub async fn remove_stale_temp(&self, older_than: Duration) -> Result<usize, StorageError> {
        let root = self.root.clone();
        let removed = blocking(&self.root, move || remove_stale(&root, older_than)).await?;
        tracing::info!(removed, "removed stale temp files");
        Ok(removed)
    }
}

fn remove_stale(root: &Path, older_than: Duration) -> Result<usize, StorageError> {
    let err = |e| io_error(e, "cleaning", TMP_DIR, root);
    let cutoff = SystemTime::now()
        .checked_sub(older_than)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut removed = 0;
    for entry in std::fs::read_dir(root.join(TMP_DIR)).map_err(err)? {
        let entry = entry.map_err(err)?;
        let meta = entry.metadata().map_err(err)?;
        let stale = meta.modified().map(|t| t < cutoff).unwrap_or(false);
        if meta.is_file() && stale {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(err(e)),
            }
        }
    }
    Ok(removed)
}

/// Runs blocking filesystem work off the async threads.
async fn blocking<T, F>(root: &Path, f: F) -> Result<T, StorageError>
where
    F: FnOnce() -> Result<T, StorageError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        let message = format!("filesystem task failed: {e}");
        Err(StorageError::Permanent {
            backend: describe(root),
            message,
        })
    })
}

/// Streams at most `len` bytes from `file`'s current position, in [`READ_CHUNK`] pieces.
fn stream_file(file: tokio::fs::File, len: u64, key: ObjectKey, root: Arc<Path>) -> ByteStream {
    let state = (file, len, key, root);
    Box::pin(futures::stream::try_unfold(
        state,
        |(mut file, left, key, root)| async move {
            if left == 0 {
                return Ok(None);
            }
            let want = left.min(READ_CHUNK as u64) as usize;
            let mut buf = BytesMut::with_capacity(want);
            while buf.len() < want {
                let n = (&mut file)
                    .take((want - buf.len()) as u64)
                    .read_buf(&mut buf)
                    .await;
                match n.map_err(|e| io_error(e, "reading", key.as_str(), &root))? {
                    0 => break, // the file shrank under us: end early rather than invent bytes
                    _ => continue,
                }
            }
            if buf.is_empty() {
                return Ok(None);
            }
            let left = left - buf.len() as u64;
            Ok(Some((buf.freeze(), (file, left, key, root))))
        },
    ))
}

#[async_trait]
impl Storage for LocalStorage {
    fn describe(&self) -> String {
        describe(&self.root)
    }

    #[tracing::instrument(skip_all, fields(key = %key))]
    async fn create(&self, key: &ObjectKey) -> Result<Box<dyn ObjectWriter>, StorageError> {
        check_key(key)?;
        let (root, key) = (self.root.clone(), key.clone());
        let err_root = self.root.clone();
        // The temp file and the writer that owns it are made on the blocking thread, together:
        // if this future is dropped mid-create (another lane failed and the backup is being torn
        // down), tokio drops the finished task's output, and the writer's Drop removes the file.
        // Creating the file there but wrapping it here would leak it.
        let made = tokio::task::spawn_blocking(move || {
            let tmp_dir = root.join(TMP_DIR);
            let tmp = tmp_dir.join(format!("{:016x}.tmp", rand::random::<u64>()));
            let err = |e| fs::write_error(e, key.as_str(), &root);
            std::fs::create_dir_all(&tmp_dir).map_err(err)?;
            let file = std::fs::File::options()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .map_err(err)?;
            Ok::<_, StorageError>(LocalWriter::new(
                tokio::fs::File::from_std(file),
                tmp,
                root.clone(),
                key,
            ))
        })
        .await;
        let writer =
            made.map_err(|e| fs::write_error(std::io::Error::other(e), "a temp file", &err_root))??;
        Ok(Box::new(writer))
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
        let (root, k) = (self.root.clone(), key.clone());
        let (path, _) = blocking(&self.root, move || lookup(&root, &k)).await?;
        let err = |e| io_error(e, "reading", key.as_str(), &self.root);
        let mut file = tokio::fs::File::open(&path).await.map_err(err)?;
        let size = file.metadata().await.map_err(err)?.len();
        let (start, end) = (range.start.min(size), range.end.min(size));
        if start > 0 {
            file.seek(std::io::SeekFrom::Start(start))
                .await
                .map_err(err)?;
        }
        let len = end.saturating_sub(start);
        Ok(stream_file(file, len, key.clone(), self.root.clone()))
    }

    async fn stat(&self, key: &ObjectKey) -> Result<ObjectInfo, StorageError> {
        let (root, k) = (self.root.clone(), key.clone());
        let (_, meta) = blocking(&self.root, move || lookup(&root, &k)).await?;
        Ok(ObjectInfo {
            key: key.clone(),
            size: meta.len(),
        })
    }

    #[tracing::instrument(skip_all, fields(prefix))]
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        let (root, prefix) = (self.root.clone(), prefix.to_string());
        blocking(&self.root, move || walk(&root, &prefix)).await
    }

    #[tracing::instrument(skip_all, fields(key = %key))]
    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        let (root, k) = (self.root.clone(), key.clone());
        blocking(&self.root, move || {
            let path = match lookup(&root, &k) {
                Ok((path, _)) => path,
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) => return Err(e),
            };
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_error(e, "deleting", k.as_str(), &root));
                }
                _ => prune_empty_parents(&root, k.as_str()),
            }
            Ok(())
        })
        .await
    }
}
