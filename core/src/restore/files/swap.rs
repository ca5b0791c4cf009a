//! Moving the staged archive in and the originals aside, undoing it, and recovering from an
//! attempt killed half-way (see the parent module's docs for the protocol). Every function
//! here does blocking filesystem work: call it on a blocking thread.

use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use sqlx::PgPool;

use super::{Staged, blocking, fs_err, work_dir, work_dir_id};
use crate::backup::BackupEnv;
use crate::backup::files::FilesStats;
use crate::restore::target::TargetLock;
use crate::restore::{RestoreError, RestoreId};

/// The restore's hold on `CELLAR_FILES_DIR`: one files restore at a time per directory, across
/// workers (an advisory lock on the catalog, like a target database's).
pub struct FilesLock(TargetLock);

impl FilesLock {
    /// Releases the lock now.
    pub async fn release(self) {
        self.0.release().await;
    }
}

/// Takes the directory for restore `id`: configured, not being restored by another restore, no
/// other restore's unfinished work in it; then undoes this restore's own earlier attempt.
pub async fn lock(
    env: &BackupEnv,
    pool: &PgPool,
    id: RestoreId,
) -> Result<FilesLock, RestoreError> {
    lock_with(env, pool, id, true).await
}

/// [`lock`] for the sweeper, finishing restore `id` for good: other restores' unfinished work
/// does not stop it (each abandoned restore puts back only its own).
pub async fn lock_for_sweep(
    env: &BackupEnv,
    pool: &PgPool,
    id: RestoreId,
) -> Result<FilesLock, RestoreError> {
    lock_with(env, pool, id, false).await
}

async fn lock_with(
    env: &BackupEnv,
    pool: &PgPool,
    id: RestoreId,
    others_block: bool,
) -> Result<FilesLock, RestoreError> {
    let dir = super::files_dir(env)?;
    let identity = format!("files:{}", dir.display());
    let Some(held) = TargetLock::try_acquire(pool, &identity).await? else {
        return Err(RestoreError::Permanent(format!(
            "another restore is restoring files into {} (CELLAR_FILES_DIR): wait for it to \
             finish; nothing was changed",
            dir.display()
        )));
    };
    let checked = blocking(move || {
        if !dir.is_dir() {
            return Ok(());
        }
        if others_block && let Some(other) = unfinished_other(&dir, id)? {
            return Err(format!(
                "restore {other} left unfinished work in {} (its .cellar-*-{other} directories \
                 hold files it set aside): it is put back by that restore's next attempt or by \
                 the sweeper; nothing was changed",
                dir.display()
            ));
        }
        recover(&dir, id)
    })
    .await;
    match checked {
        Ok(()) => Ok(FilesLock(held)),
        Err(e) => {
            held.release().await;
            Err(e)
        }
    }
}

/// Another restore's set-aside originals (`.cellar-moving-` or `.cellar-old-`), if any.
fn unfinished_other(dir: &Path, id: RestoreId) -> Result<Option<i64>, String> {
    for e in std::fs::read_dir(dir).map_err(fs_err("reading", dir))? {
        let name = e.map_err(fs_err("reading", dir))?.file_name();
        if let Some((kind, other)) = work_dir_id(&name)
            && kind != "restore"
            && other != id.0
        {
            return Ok(Some(other));
        }
    }
    Ok(None)
}

/// Undoes what an interrupted attempt of restore `id` left in `CELLAR_FILES_DIR` and removes its
/// staging directory (the sweeper's part, for a restore that will not run again).
pub async fn recover_interrupted(env: &BackupEnv, id: RestoreId) -> Result<(), RestoreError> {
    let Some(dir) = env.files_dir.clone() else {
        return Ok(());
    };
    blocking(move || {
        if !dir.is_dir() {
            return Ok(());
        }
        recover(&dir, id)?;
        remove_tree(&work_dir(&dir, "restore", id))
    })
    .await
}

fn remove_tree(path: &Path) -> Result<(), String> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(fs_err("removing", path)(e)),
        _ => Ok(()),
    }
}

/// Creates the directory if missing and a fresh, private (0700) staging directory in it.
/// [`lock`] already undid this restore's earlier attempt.
pub(super) fn prepare(dir: &Path, id: RestoreId) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(fs_err("creating CELLAR_FILES_DIR", dir))?;
    let staging = work_dir(dir, "restore", id);
    remove_tree(&staging)?;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(fs_err("creating", &staging))?;
    Ok(staging)
}

/// Puts back what an interrupted attempt of restore `id` set aside. Only ever moves originals
/// back; the one deletion (entries staged in place while every original is in `old`) happens
/// before `old` becomes `moving`, so running it again after a kill at any point deletes no
/// original.
pub(super) fn recover(dir: &Path, id: RestoreId) -> Result<(), String> {
    let moving = work_dir(dir, "moving", id);
    let old = work_dir(dir, "old", id);
    if old.exists() {
        // Every original is in `old`; everything else at the top level was staged: drop it,
        // then hand the originals to the move-back below.
        for e in entries(dir)? {
            let p = dir.join(&e);
            let gone = if p.is_dir() && !p.is_symlink() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            gone.map_err(fs_err("removing", &p))?;
        }
        std::fs::rename(&old, &moving).map_err(fs_err("renaming", &old))?;
    }
    if moving.exists() {
        // No staged entry is in place: move the originals back.
        move_entries(&moving, dir)?;
        std::fs::remove_dir(&moving).map_err(fs_err("removing", &moving))?;
    }
    Ok(())
}

/// The top-level names in `dir`, without Cellar's work directories.
fn entries(dir: &Path) -> Result<Vec<OsString>, String> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).map_err(fs_err("reading", dir))? {
        let name = e.map_err(fs_err("reading", dir))?.file_name();
        if !super::is_work_dir(&name) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Renames every entry of `from` (but Cellar's work directories) into `to`.
fn move_entries(from: &Path, to: &Path) -> Result<(), String> {
    for name in entries(from)? {
        let src = from.join(&name);
        std::fs::rename(&src, to.join(&name)).map_err(fs_err("moving", &src))?;
    }
    Ok(())
}

impl Staged {
    /// Moves the originals aside and the staged entries in. On an error, what moved is moved
    /// back (the error says if that failed too).
    pub async fn swap(mut self) -> Result<Swapped, RestoreError> {
        let staging = self.staging.take().expect("staged once");
        let (dir, id) = (self.dir.clone(), self.id);
        blocking(move || swap(&dir, &staging, id))
            .await
            .map_err(|e| e.context("restoring files into CELLAR_FILES_DIR"))?;
        Ok(Swapped {
            dir: self.dir.clone(),
            id,
            done: false,
            stats: std::mem::take(&mut self.stats),
        })
    }
}

pub(super) fn swap(dir: &Path, staging: &Path, id: RestoreId) -> Result<(), String> {
    let moving = work_dir(dir, "moving", id);
    let old = work_dir(dir, "old", id);
    std::fs::create_dir(&moving).map_err(fs_err("creating", &moving))?;
    let moved = move_entries(dir, &moving)
        .and_then(|()| std::fs::rename(&moving, &old).map_err(fs_err("renaming", &moving)))
        .and_then(|()| move_entries(staging, dir));
    if let Err(e) = moved {
        let undone = undo(dir, staging, id).and_then(|()| remove_tree(staging));
        return Err(match undone {
            Ok(()) => format!("{e} (the original files are back in place)"),
            Err(u) => format!("{e}; putting the originals back also failed: {u}"),
        });
    }
    let _ = std::fs::remove_dir(staging);
    Ok(())
}

/// Staged entries back into `staging`, originals back into `dir`: renames only (the staging
/// directory is left for the caller to remove).
pub(super) fn undo(dir: &Path, staging: &Path, id: RestoreId) -> Result<(), String> {
    if work_dir(dir, "old", id).exists() {
        std::fs::create_dir_all(staging).map_err(fs_err("creating", staging))?;
        move_entries(dir, staging)?;
    }
    recover(dir, id)
}

/// Removes `path` on a thread of its own: a drop must not walk a large tree on the runtime.
fn remove_later(path: PathBuf) {
    std::thread::spawn(move || {
        if let Err(e) = remove_tree(&path) {
            tracing::warn!(error = %e, "could not remove staged files");
        }
    });
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(staging) = self.staging.take() {
            remove_later(staging);
        }
    }
}

/// The restored files in place, the originals still set aside. [`Swapped::finish`] drops the
/// originals; dropped unfinished (an error or cancel after the swap), it puts them back.
pub struct Swapped {
    pub(super) dir: PathBuf,
    pub(super) id: RestoreId,
    pub(super) done: bool,
    /// What was restored.
    pub stats: FilesStats,
}

impl Swapped {
    /// Removes the originals: the restore is final.
    pub async fn finish(mut self) {
        self.done = true;
        let old = work_dir(&self.dir, "old", self.id);
        let removed = tokio::task::spawn_blocking(move || remove_tree(&old)).await;
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
        // Renames only, here; the staged tree is removed on a thread of its own.
        let staging = work_dir(&self.dir, "restore", self.id);
        match undo(&self.dir, &staging, self.id) {
            Ok(()) => remove_later(staging),
            Err(e) => tracing::error!(error = %e, dir = %self.dir.display(),
                "could not put the original files back"),
        }
    }
}
