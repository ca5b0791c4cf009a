//! Restoring the attached-files archive into `CELLAR_FILES_DIR` (`restoreFiles`).
//!
//! ```text
//! recover   an earlier attempt's leftovers inside the directory are undone first
//! stage     the archive is extracted into <dir>/.cellar-restore-<id>/, its plain size and
//!           BLAKE3 checked against the manifest; any bad entry refuses the whole archive
//! swap      every top-level entry of <dir> moves into <dir>/.cellar-moving-<id>/, which is then
//!           renamed .cellar-old-<id>/ (the mark that the originals are all set aside); the staged
//!           entries move up into <dir>
//! finish    .cellar-old-<id>/ is removed      undo: staged entries out, originals back
//! ```
//!
//! Everything happens *inside* the directory, so it works when the directory is a mount point
//! (a Docker volume) or a symlink, and every move is a rename on one filesystem. The swap is a
//! handful of renames (one per top-level entry), not one: a worker killed inside it leaves the
//! `.cellar-*-<id>` directories, from which the next attempt of the same restore puts the
//! originals back before it starts again.
//!
//! Entries are confined: only relative paths made of plain components, only regular files and
//! directories. Anything else (an absolute path, `..`, a link, a device) refuses the archive
//! before the directory is touched. Nothing is written outside the staging directory, and no
//! link is ever created there, so no path can be redirected through one.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::open::OpenedBackup;
use super::{RestoreError, RestoreId};
use crate::backup::BackupEnv;
use crate::backup::files::FilesStats;
use crate::format::manifest::ObjectKind;

/// The prefix of the directories a files restore keeps inside `CELLAR_FILES_DIR`; the archiver
/// never archives top-level entries with it.
pub const WORK_PREFIX: &str = ".cellar-";

fn work_dir(dir: &Path, what: &str, id: RestoreId) -> PathBuf {
    dir.join(format!("{WORK_PREFIX}{what}-{id}"))
}

/// An archive extracted beside the directory's content, not yet visible in it. Dropped without
/// [`Staged::swap`], it removes itself.
pub struct Staged {
    dir: PathBuf,
    id: RestoreId,
    staging: Option<PathBuf>,
    /// What was extracted.
    pub stats: FilesStats,
}

/// The worker's `CELLAR_FILES_DIR`, which a files restore needs.
fn files_dir(env: &BackupEnv) -> Result<PathBuf, RestoreError> {
    env.files_dir.clone().ok_or_else(|| {
        RestoreError::Permanent(
            "restoreFiles needs CELLAR_FILES_DIR on the worker (where the files go); it is not \
             set; nothing was changed"
                .into(),
        )
    })
}

/// Extracts backup `backup`'s files archive for restore `id` (see the module docs).
pub async fn stage(
    env: &BackupEnv,
    backup: &OpenedBackup,
    id: RestoreId,
) -> Result<Staged, RestoreError> {
    let dir = files_dir(env)?;
    let object = backup
        .manifest
        .objects
        .iter()
        .find(|o| o.kind == ObjectKind::Files)
        .ok_or_else(|| {
            RestoreError::Permanent(format!(
                "backup {} holds no files archive (it was taken without includeFiles); nothing \
                 was changed",
                backup.id
            ))
        })?;
    let staging = {
        let dir = dir.clone();
        blocking(move || swap::prepare(&dir, id)).await?
    };
    let mut staged = Staged {
        dir,
        id,
        staging: Some(staging.clone()),
        stats: FilesStats::default(),
    };
    let corrupt = |e: &dyn std::fmt::Display| {
        RestoreError::Permanent(format!(
            "the files archive {} of backup {} cannot be restored: {e}; nothing was changed",
            object.name, backup.id
        ))
    };
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let mut plain = backup.stream(env, object).await?;
    let feed = async move {
        let (mut hasher, mut size) = (blake3::Hasher::new(), 0u64);
        while let Some(chunk) = plain.next().await {
            let chunk = chunk?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            if tx.send(chunk).await.is_err() {
                // The extractor stopped (its error is reported); stop reading.
                break;
            }
        }
        Ok::<_, crate::format::FormatError>((size, hasher.finalize()))
    };
    let extract = blocking(move || {
        let mut reader = ChannelReader {
            rx,
            chunk: Bytes::new(),
        };
        let stats = extract(&mut reader, &staging);
        // Read to the end whatever follows the archive's end marker (or an entry refused), so
        // the whole object is hashed and checked. This reader cannot fail.
        let _ = io::copy(&mut reader, &mut io::sink());
        Ok(stats)
    });
    let (fed, extracted) = tokio::join!(feed, extract);
    let (size, hash) = fed.map_err(|e| corrupt(&e))?;
    let stats = match extracted {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(corrupt(&e)),
        Err(e) => return Err(e),
    };
    if size != object.digest.plain_size || hash.to_hex().as_str() != object.digest.plain_blake3 {
        return Err(corrupt(&"plain size or BLAKE3 differs from the manifest"));
    }
    staged.stats = stats;
    Ok(staged)
}

/// Runs blocking filesystem work off the runtime. Its errors are permanent: a directory that
/// cannot be written, a full disk, a rename refused are not cured by retrying the restore (which
/// would take another safety backup).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, RestoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RestoreError::Transient(format!("files restore task failed: {e}")))?
        .map_err(RestoreError::Permanent)
}

fn fs_err(what: &str, path: &Path) -> impl Fn(io::Error) -> String {
    let at = format!("{what} {}", path.display());
    move |e| format!("{at}: {e}")
}

/// A blocking `Read` over the plain chunks of an object.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    chunk: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(c) => self.chunk = c,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        Ok(n)
    }
}

/// The path of an archive entry inside the target: plain components only.
pub fn confined(raw: &Path) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "entry {:?} would be written outside the files directory (absolute path or \
                     `..`): refused",
                    raw.display().to_string()
                ));
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(format!(
            "entry {:?} has no name: refused",
            raw.display().to_string()
        ));
    }
    Ok(out)
}

/// Extracts a tar stream into the empty directory `dest`: regular files and directories with
/// their permission bits (never set-id or sticky) and modification times. Any other entry, or
/// a path that leaves `dest`, refuses the archive (see the module docs).
pub fn extract(reader: impl Read, dest: &Path) -> Result<FilesStats, String> {
    let mut archive = tar::Archive::new(reader);
    let mut stats = FilesStats::default();
    let mut dirs = Vec::new();
    let bad = |e: io::Error| format!("not a readable tar archive: {e}");
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let raw = entry.path().map_err(bad)?.into_owned();
        let rel = confined(&raw)?;
        if rel
            .components()
            .next()
            .is_some_and(|c| is_work_dir(c.as_os_str()))
        {
            // Cellar's own work directory names are never archived; one in an archive would be
            // left behind by the swap.
            return Err(format!(
                "entry {:?} has the name of a restore's work directory: refused",
                raw.display().to_string()
            ));
        }
        let header = entry.header();
        let mode = header.mode().unwrap_or(0o644) & 0o777;
        let mtime = header.mtime().ok();
        let kind = header.entry_type();
        let path = dest.join(&rel);
        if kind.is_dir() {
            std::fs::create_dir_all(&path).map_err(fs_err("creating", &rel))?;
            dirs.push((path, mode));
            continue;
        }
        if !kind.is_file() {
            return Err(format!(
                "entry {:?} is a {kind:?}: only regular files and directories are restored; \
                 refused",
                raw.display().to_string()
            ));
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(fs_err("creating", parent))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(fs_err("creating", &rel))?;
        let n = io::copy(&mut entry, &mut file).map_err(fs_err("writing", &rel))?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(fs_err("setting the mode of", &rel))?;
        if let Some(t) = mtime {
            let _ = file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(t));
        }
        stats.files += 1;
        stats.bytes += n;
    }
    // Directory modes last, deepest first: a read-only directory must be filled before.
    for (path, mode) in dirs.iter().rev() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode | 0o700))
            .map_err(fs_err("setting the mode of", path))?;
    }
    Ok(stats)
}

/// Whether a top-level name in `CELLAR_FILES_DIR` is a files restore's work directory:
/// exactly `.cellar-restore-<n>`, `.cellar-moving-<n>` or `.cellar-old-<n>` (an app's own
/// `.cellar-notes` is the app's, archived and restored like any file).
pub fn is_work_dir(name: &OsStr) -> bool {
    work_dir_id(name).is_some()
}

/// The restore a work directory belongs to, and its kind.
fn work_dir_id(name: &OsStr) -> Option<(&'static str, i64)> {
    let name = name.to_str()?.strip_prefix(WORK_PREFIX)?;
    ["restore", "moving", "old"].into_iter().find_map(|kind| {
        let n = name.strip_prefix(kind)?.strip_prefix('-')?;
        let ok = !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| n.parse().ok().map(|id| (kind, id)))?
    })
}

mod swap;
pub use swap::{FilesLock, Swapped, lock, lock_for_sweep, recover_interrupted};

#[cfg(test)]
mod tests;
