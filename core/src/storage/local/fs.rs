//! Blocking filesystem helpers for [`super::LocalStorage`]: name to path mapping that refuses
//! symlinks, directory creation and pruning, the recursive walk behind `list`, and the
//! classification of `io::Error`s into [`StorageError`]s.
//!
//! Everything here is synchronous and runs on tokio's blocking pool.
//!
//! Confinement: an [`ObjectKey`] has no `..` segment, so its path stays under the root as long as
//! no directory on the way is a symlink. Every helper checks each component with
//! `symlink_metadata` and refuses symlinks. A process that can create symlinks inside the root
//! between that check and the use (a race) already owns the backups, so this guards against
//! mistakes and stray links, not against a hostile owner of the root.

use std::fs::{self, File, Metadata};
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

use crate::storage::{ObjectInfo, ObjectKey, StorageError};

/// The directory under the root that holds in-progress writes; never listed, never a key.
pub(super) const TMP_DIR: &str = ".tmp";

/// Classifies an io error where it is born. `doing` reads like "writing", "reading".
pub(super) fn io_error(e: io::Error, doing: &str, key: &str, root: &Path) -> StorageError {
    let perm = |what: &str| {
        permanent(
            root,
            format!("{what} while {doing} {key} under {}", root.display()),
        )
    };
    match e.kind() {
        ErrorKind::NotFound => StorageError::NotFound(key.to_string()),
        ErrorKind::StorageFull => perm("disk full: free space or move the backup root"),
        ErrorKind::QuotaExceeded => perm("disk quota exceeded: raise the quota or free space"),
        ErrorKind::PermissionDenied => {
            perm("permission denied: let the cellar user read and write this directory")
        }
        ErrorKind::ReadOnlyFilesystem => perm("read-only filesystem: remount it read-write"),
        ErrorKind::FileTooLarge => perm("file too large for this filesystem"),
        ErrorKind::Interrupted
        | ErrorKind::TimedOut
        | ErrorKind::WouldBlock
        | ErrorKind::ResourceBusy
        | ErrorKind::StaleNetworkFileHandle => StorageError::Transient {
            backend: describe(root),
            message: format!("{e} while {doing} {key}"),
        },
        _ => perm(&e.to_string()),
    }
}

/// Like [`io_error`] for the write path, where "not found" means a directory vanished under a
/// concurrent `delete` (which prunes empty directories): a retry recreates it.
pub(super) fn write_error(e: io::Error, key: &str, root: &Path) -> StorageError {
    if e.kind() == ErrorKind::NotFound {
        return StorageError::Transient {
            backend: describe(root),
            message: format!("a directory vanished while writing {key}: {e}"),
        };
    }
    io_error(e, "writing", key, root)
}

/// The backend's description, `local:<root>`.
pub(super) fn describe(root: &Path) -> String {
    format!("local:{}", root.display())
}

fn permanent(root: &Path, message: String) -> StorageError {
    StorageError::Permanent {
        backend: describe(root),
        message,
    }
}

/// Refuses keys that collide with the backend's own bookkeeping directory.
pub(super) fn check_key(key: &ObjectKey) -> Result<(), StorageError> {
    if key.as_str().split('/').next() == Some(TMP_DIR) {
        return Err(StorageError::InvalidKey {
            key: key.to_string(),
            why: format!("'{TMP_DIR}' is reserved by the local backend for in-progress writes"),
        });
    }
    Ok(())
}

/// The path of every proper ancestor directory of `key` (below the root), outermost first.
fn ancestors(root: &Path, key: &str) -> Vec<PathBuf> {
    let segs: Vec<&str> = key.split('/').collect();
    (1..segs.len())
        .map(|n| root.join(segs[..n].join("/")))
        .collect()
}

/// Checks that `dir` is a real directory (not a symlink); `Ok(false)` when it is missing.
fn real_dir(dir: &Path, key: &str, root: &Path, doing: &str) -> Result<bool, StorageError> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(permanent(
            root,
            format!(
                "refusing to follow symlink {} while {doing} {key}",
                dir.display()
            ),
        )),
        Ok(m) if m.is_dir() => Ok(true),
        Ok(_) => Err(permanent(
            root,
            format!(
                "{} is a file, not a directory, while {doing} {key}",
                dir.display()
            ),
        )),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error(e, doing, key, root)),
    }
}

/// Finds an existing object: its path and metadata. Missing, a directory or any symlink on the
/// way (including the object itself) is refused; missing is `NotFound`.
pub(super) fn lookup(root: &Path, key: &ObjectKey) -> Result<(PathBuf, Metadata), StorageError> {
    check_key(key)?;
    let name = key.as_str();
    for dir in ancestors(root, name) {
        if !real_dir(&dir, name, root, "reading")? {
            return Err(StorageError::NotFound(name.to_string()));
        }
    }
    let path = root.join(name);
    let meta = fs::symlink_metadata(&path).map_err(|e| io_error(e, "reading", name, root))?;
    if !meta.is_file() {
        return Err(StorageError::NotFound(name.to_string()));
    }
    Ok((path, meta))
}

/// Creates the parent directories of `key` (fsyncing each new one's parent) and returns the
/// object's final path.
pub(super) fn prepare_parent(root: &Path, key: &ObjectKey) -> Result<PathBuf, StorageError> {
    let name = key.as_str();
    for dir in ancestors(root, name) {
        if real_dir(&dir, name, root, "writing")? {
            continue;
        }
        match fs::create_dir(&dir) {
            Ok(()) => {
                fsync_dir(dir.parent().unwrap_or(root)).map_err(|e| write_error(e, name, root))?
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                real_dir(&dir, name, root, "writing")?; // a concurrent writer made it
            }
            Err(e) => return Err(write_error(e, name, root)),
        }
    }
    let path = root.join(name);
    if path.is_dir() {
        let why = "is a directory of other objects; an object cannot replace it";
        return Err(permanent(root, format!("{} {why}", path.display())));
    }
    Ok(path)
}

/// Makes a directory's entries (a rename, a new file) durable.
pub(super) fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes the now-empty ancestors of `key`, innermost first, stopping at the first that is not
/// empty (or vanished, or any other error: pruning is tidiness, never a failure).
pub(super) fn prune_empty_parents(root: &Path, key: &str) {
    for dir in ancestors(root, key).iter().rev() {
        if fs::remove_dir(dir).is_err() {
            return;
        }
    }
}

/// Every object under the root whose name starts with `prefix`, sorted by name.
///
/// ```text
/// start = deepest whole directory named by prefix (prefix up to its last '/')
/// depth-first walk from start; skip symlinks, the temp dir, names that are not valid keys
/// keep names starting with prefix; sort
/// ```
pub(super) fn walk(root: &Path, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
    let start = match prefix.rfind('/') {
        None => String::new(),
        Some(i) => match ObjectKey::new(&prefix[..i]) {
            Ok(dir) => dir.to_string(),
            Err(_) => return Ok(Vec::new()), // no valid key can start with this prefix
        },
    };
    if !start.is_empty() {
        let probe = format!("{start}/x");
        for dir in ancestors(root, &probe) {
            if !real_dir(&dir, &probe, root, "listing")? {
                return Ok(Vec::new());
            }
        }
    }
    let mut out = Vec::new();
    walk_dir(root, &start, prefix, &mut out)?;
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

fn walk_dir(
    root: &Path,
    rel: &str,
    prefix: &str,
    out: &mut Vec<ObjectInfo>,
) -> Result<(), StorageError> {
    let err = |e| io_error(e, "listing", rel, root);
    let entries = match fs::read_dir(root.join(rel)) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        other => other.map_err(err)?,
    };
    for entry in entries {
        let entry = entry.map_err(err)?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let child = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let ty = entry.file_type().map_err(err)?;
        if child == TMP_DIR || ty.is_symlink() || ObjectKey::new(&child).is_err() {
            continue;
        }
        if ty.is_dir() && (child.starts_with(prefix) || prefix.starts_with(&format!("{child}/"))) {
            walk_dir(root, &child, prefix, out)?;
        } else if ty.is_file() && child.starts_with(prefix) {
            match entry.metadata() {
                Ok(m) => out.push(ObjectInfo {
                    key: ObjectKey::new(child)?,
                    size: m.len(),
                }),
                Err(e) if e.kind() == ErrorKind::NotFound => {} // deleted while listing
                Err(e) => return Err(err(e)),
            }
        }
    }
    Ok(())
}
