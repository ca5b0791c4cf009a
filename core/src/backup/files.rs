//! The attached-files archive: a tar stream of `CELLAR_FILES_DIR` (the app's uploads), stored as
//! one encrypted object like any other.
//!
//! Regular files and directories are archived with paths relative to the directory, in sorted
//! order; symlinks and special files are skipped and reported (a restore must never be able to
//! write outside its target through a link). Top-level `.cellar-*` directories belong to a files
//! restore in progress ([`crate::restore::files`]) and are not archived.

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::BackupError;

/// What the archive holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilesStats {
    /// Regular files archived.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Paths skipped (links, sockets, devices), relative to the directory.
    pub skipped: Vec<String>,
}

/// Streams a tar archive of `dir` into `tx` in ~1 MiB chunks.
pub async fn archive(dir: PathBuf, tx: mpsc::Sender<Bytes>) -> Result<FilesStats, BackupError> {
    tokio::task::spawn_blocking(move || archive_blocking(&dir, tx))
        .await
        .map_err(|e| BackupError::Transient(format!("files archive task failed: {e}")))?
}

fn archive_blocking(dir: &Path, tx: mpsc::Sender<Bytes>) -> Result<FilesStats, BackupError> {
    let meta = std::fs::metadata(dir)
        .map_err(|e| BackupError::Permanent(format!("CELLAR_FILES_DIR {}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(BackupError::Permanent(format!(
            "CELLAR_FILES_DIR {} is not a directory",
            dir.display()
        )));
    }
    let mut builder = tar::Builder::new(ChannelWriter {
        tx,
        buf: Vec::with_capacity(CHUNK),
    });
    builder.follow_symlinks(false);
    let mut stats = FilesStats::default();
    walk(dir, Path::new(""), &mut builder, &mut stats)?;
    let mut w = builder.into_inner().map_err(io_err)?;
    w.flush().map_err(io_err)?;
    Ok(stats)
}

const CHUNK: usize = 1 << 20;

fn io_err(e: std::io::Error) -> BackupError {
    BackupError::Transient(format!("archiving files: {e}"))
}

/// Depth-first, sorted, so the same tree always gives the same archive.
fn walk(
    root: &Path,
    rel: &Path,
    b: &mut tar::Builder<ChannelWriter>,
    stats: &mut FilesStats,
) -> Result<(), BackupError> {
    let mut entries: Vec<_> = std::fs::read_dir(root.join(rel))
        .map_err(io_err)?
        .collect::<Result<_, _>>()
        .map_err(io_err)?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if rel.as_os_str().is_empty() && crate::restore::files::is_work_dir(&e.file_name()) {
            // A files restore's work directory (left by an interrupted one): not the app's.
            continue;
        }
        let path = rel.join(e.file_name());
        let kind = e.file_type().map_err(io_err)?;
        if kind.is_dir() {
            b.append_dir(&path, root.join(&path)).map_err(io_err)?;
            walk(root, &path, b, stats)?;
        } else if kind.is_file() {
            let mut f = std::fs::File::open(root.join(&path)).map_err(io_err)?;
            b.append_file(&path, &mut f).map_err(io_err)?;
            stats.files += 1;
            stats.bytes += f.metadata().map_err(io_err)?.len();
        } else {
            stats.skipped.push(path.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

/// A blocking `Write` that hands ~1 MiB chunks to the async pipeline.
struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(chunk).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "object writer stopped")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn archives_files_sorted_and_skips_links() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("leases")).unwrap();
        std::fs::write(dir.path().join("leases/b.pdf"), vec![7u8; 3_000_000]).unwrap();
        std::fs::write(dir.path().join("a.txt"), b"hello").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("evil")).unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let task = tokio::spawn(archive(dir.path().to_path_buf(), tx));
        let mut tar_bytes = Vec::new();
        while let Some(c) = rx.recv().await {
            tar_bytes.extend_from_slice(&c);
        }
        let stats = task.await.unwrap().unwrap();
        assert_eq!((stats.files, stats.bytes), (2, 3_000_005));
        assert_eq!(stats.skipped, vec!["evil".to_string()]);
        let mut ar = tar::Archive::new(&tar_bytes[..]);
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.txt", "leases", "leases/b.pdf"]);
    }

    #[tokio::test]
    async fn a_missing_directory_is_a_permanent_error() {
        let (tx, _rx) = mpsc::channel(1);
        let err = archive("/nonexistent/cellar-files".into(), tx)
            .await
            .unwrap_err();
        assert!(matches!(err, BackupError::Permanent(m) if m.contains("CELLAR_FILES_DIR")));
    }
}
