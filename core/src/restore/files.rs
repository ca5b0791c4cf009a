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

/// Extracts backup `backup`'s files archive for restore `id` (see the module docs).
pub async fn stage(
    env: &BackupEnv,
    backup: &OpenedBackup,
    id: RestoreId,
) -> Result<Staged, RestoreError> {
    let dir = env.files_dir.clone().ok_or_else(|| {
        RestoreError::Permanent(
            "restoreFiles needs CELLAR_FILES_DIR on the worker (where the files go); it is not \
             set; nothing was changed"
                .into(),
        )
    })?;
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
        blocking(move || prepare(&dir, id)).await?
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

/// Undoes what an interrupted earlier attempt of restore `id` left in `CELLAR_FILES_DIR`, before
/// anything else of this attempt (which may fail before it stages anything).
pub async fn recover_interrupted(env: &BackupEnv, id: RestoreId) -> Result<(), RestoreError> {
    let Some(dir) = env.files_dir.clone() else {
        return Ok(());
    };
    blocking(move || match dir.is_dir() {
        true => recover(&dir, id),
        false => Ok(()),
    })
    .await
}

/// Runs blocking filesystem work off the runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, RestoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RestoreError::Transient(format!("files restore task failed: {e}")))?
        .map_err(RestoreError::Transient)
}

fn fs_err(what: &str, path: &Path) -> impl Fn(io::Error) -> String {
    let at = format!("{what} {}", path.display());
    move |e| format!("{at}: {e}")
}

/// Creates the directory if missing, undoes an earlier attempt's leftovers, and makes a fresh,
/// empty staging directory.
fn prepare(dir: &Path, id: RestoreId) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(fs_err("creating CELLAR_FILES_DIR", dir))?;
    recover(dir, id)?;
    let staging = work_dir(dir, "restore", id);
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(fs_err("removing", &staging))?;
    }
    std::fs::create_dir(&staging).map_err(fs_err("creating", &staging))?;
    Ok(staging)
}

/// Puts back what an interrupted attempt of restore `id` set aside (see the module docs).
fn recover(dir: &Path, id: RestoreId) -> Result<(), String> {
    let moving = work_dir(dir, "moving", id);
    let old = work_dir(dir, "old", id);
    if moving.exists() {
        // Set-aside was not complete: no staged entry was moved up yet.
        move_entries(&moving, dir, &[])?;
        std::fs::remove_dir(&moving).map_err(fs_err("removing", &moving))?;
    } else if old.exists() {
        // Every original is in `old`; whatever else is in `dir` was staged: drop it.
        for e in entries(dir, &[])? {
            let p = dir.join(&e);
            let gone = if p.is_dir() && !p.is_symlink() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            gone.map_err(fs_err("removing", &p))?;
        }
        move_entries(&old, dir, &[])?;
        std::fs::remove_dir(&old).map_err(fs_err("removing", &old))?;
    }
    Ok(())
}

/// The top-level names in `dir`, without Cellar's work directories and `keep`.
fn entries(dir: &Path, keep: &[&Path]) -> Result<Vec<std::ffi::OsString>, String> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).map_err(fs_err("reading", dir))? {
        let name = e.map_err(fs_err("reading", dir))?.file_name();
        let ours = name.to_string_lossy().starts_with(WORK_PREFIX);
        if !ours && !keep.iter().any(|k| k.file_name() == Some(name.as_os_str())) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Renames every entry of `from` (but Cellar's work directories) into `to`.
fn move_entries(from: &Path, to: &Path, keep: &[&Path]) -> Result<(), String> {
    for name in entries(from, keep)? {
        let src = from.join(&name);
        std::fs::rename(&src, to.join(&name)).map_err(fs_err("moving", &src))?;
    }
    Ok(())
}

impl Staged {
    /// Moves the originals aside and the staged entries in. On an error, what moved is moved
    /// back.
    pub async fn swap(mut self) -> Result<Swapped, RestoreError> {
        let staging = self.staging.take().expect("staged once");
        let (dir, id) = (self.dir.clone(), self.id);
        let moved = {
            let staging = staging.clone();
            blocking(move || swap(&dir, &staging, id)).await
        };
        match moved {
            Ok(()) => Ok(Swapped {
                dir: self.dir.clone(),
                id,
                done: false,
                stats: std::mem::take(&mut self.stats),
            }),
            Err(e) => {
                self.staging = Some(staging);
                Err(e.context_files())
            }
        }
    }
}

fn swap(dir: &Path, staging: &Path, id: RestoreId) -> Result<(), String> {
    let moving = work_dir(dir, "moving", id);
    let old = work_dir(dir, "old", id);
    std::fs::create_dir(&moving).map_err(fs_err("creating", &moving))?;
    let moved = move_entries(dir, &moving, &[])
        .and_then(|()| std::fs::rename(&moving, &old).map_err(fs_err("renaming", &moving)))
        .and_then(|()| move_entries(staging, dir, &[]));
    if let Err(e) = moved {
        return Err(match undo(dir, staging, id) {
            Ok(()) => e,
            Err(u) => format!("{e}; putting the originals back also failed: {u}"),
        });
    }
    let _ = std::fs::remove_dir(staging);
    Ok(())
}

/// Staged entries back into `staging` (then removed), originals back into `dir`.
fn undo(dir: &Path, staging: &Path, id: RestoreId) -> Result<(), String> {
    let old = work_dir(dir, "old", id);
    if old.exists() {
        std::fs::create_dir_all(staging).map_err(fs_err("creating", staging))?;
        move_entries(dir, staging, &[])?;
    }
    recover(dir, id)?;
    if staging.exists() {
        std::fs::remove_dir_all(staging).map_err(fs_err("removing", staging))?;
    }
    Ok(())
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(staging) = self.staging.take()
            && let Err(e) = std::fs::remove_dir_all(&staging)
        {
            tracing::warn!(error = %e, path = %staging.display(), "could not remove staged files");
        }
    }
}

impl RestoreError {
    fn context_files(self) -> Self {
        self.context("restoring files into CELLAR_FILES_DIR (the originals are in place)")
    }
}

/// The restored files in place, the originals still set aside. [`Swapped::finish`] drops the
/// originals; dropped unfinished (an error or cancel after the swap), it puts them back.
pub struct Swapped {
    dir: PathBuf,
    id: RestoreId,
    done: bool,
    /// What was restored.
    pub stats: FilesStats,
}

impl Swapped {
    /// Removes the originals: the restore is final.
    pub async fn finish(mut self) {
        self.done = true;
        let old = work_dir(&self.dir, "old", self.id);
        let removed = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&old)).await;
        if let Ok(Err(e)) = removed {
            tracing::warn!(error = %e, "could not remove the files the restore replaced");
        }
    }
}

impl Drop for Swapped {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let staging = work_dir(&self.dir, "restore", self.id);
        if let Err(e) = undo(&self.dir, &staging, self.id) {
            tracing::error!(error = %e, dir = %self.dir.display(), "could not put the original files back");
        }
    }
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

/// Whether a top-level name in `CELLAR_FILES_DIR` is a files restore's work directory.
pub fn is_work_dir(name: &OsStr) -> bool {
    name.to_string_lossy().starts_with(WORK_PREFIX)
}

#[cfg(test)]
mod tests;
