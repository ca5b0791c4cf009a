//! The encryption key probe (keys parse, the newest backup opens) and the local directory
//! probe (writable, durable, with free space).

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;

use super::{Probe, Setup};
use crate::backup::listing::{self, Filter};
use crate::backup::run::{key_object, manifest_object};
use crate::backup::{BackupId, BackupState};
use crate::format::{KeyEnvelope, KeyRing, read_manifest};
use crate::storage::{DriveStorage, LocalStorage, ObjectKey, Storage};

const KEY: &str = "encryption key";
const DIR: &str = "local storage";

const DEV_KEY_FIX: &str = "Set CELLAR_ENCRYPTION_KEY (or CELLAR_ENCRYPTION_KEY_FILE) to a key from \
    `cellar key generate`, keeping the development key after it so older backups stay readable.";

/// Keys parse, and the newest completed backup's KEY unwraps and its MANIFEST authenticates.
pub(super) async fn key_probe(setup: &Setup) -> Probe {
    let ring = match &setup.keyring {
        Ok(r) => r,
        Err(e) => {
            return Probe::failed(
                KEY,
                e.clone(),
                "Set CELLAR_ENCRYPTION_KEY or CELLAR_ENCRYPTION_KEY_FILE to the master key(s) the \
                 backups were written with (`cellar key generate` makes a new one).",
            );
        }
    };
    let ids = ring.ids().join(", ");
    let newest = Filter {
        state: Some(BackupState::Completed),
        ..Filter::default()
    };
    let row = match listing::page(&setup.pool, newest, 1, None).await {
        Ok(rows) => rows.into_iter().next(),
        Err(e) => {
            return Probe::failed(
                KEY,
                format!("cannot read the catalog: {e}"),
                "See the catalog probe.",
            );
        }
    };
    let Some(row) = row else {
        return key_ok(
            setup,
            format!("keys {ids} loaded; no completed backup to open yet"),
        );
    };
    let Ok(id) = row.id.parse::<BackupId>() else {
        return Probe::failed(
            KEY,
            format!("the catalog holds a malformed backup id {:?}", row.id),
            "Report this as a bug.",
        );
    };
    let on_drive = row.locations.get("drive").and_then(|v| v.as_str()) == Some("available");
    let storage = match storage_of(setup, &id, on_drive).await {
        Ok(s) => s,
        Err(detail) => {
            return Probe::failed(
                KEY,
                detail,
                "Restore the backup directory (CELLAR_BACKUP_DIR) or the Drive settings the \
                 backups were written with; `cellar backup verify ID` shows what is missing.",
            );
        }
    };
    match open(&*storage, &id, ring).await {
        Ok(n) => key_ok(
            setup,
            format!(
                "keys {ids} loaded; the newest backup {id} opens (KEY unwrapped, MANIFEST of {n} objects authenticated)"
            ),
        ),
        Err(e) => Probe::failed(
            KEY,
            format!("the newest backup {id} cannot be opened with keys {ids}: {e}"),
            "The backups were written with a master key that is not configured (or was \
             replaced): add that key to CELLAR_ENCRYPTION_KEY as ID:BASE64 after the current \
             one, on every worker.",
        ),
    }
}

fn key_ok(setup: &Setup, detail: String) -> Probe {
    if setup.dev_key {
        Probe::warning(
            KEY,
            format!("{detail}; this is the DEVELOPMENT key stored beside the backups"),
            DEV_KEY_FIX,
        )
    } else {
        Probe::ok(KEY, detail)
    }
}

/// The local copy while its KEY is there, else Drive when the catalog says it holds a copy.
async fn storage_of(
    setup: &Setup,
    id: &BackupId,
    on_drive: bool,
) -> Result<Arc<dyn Storage>, String> {
    if setup.backup_dir.is_dir() {
        let local = LocalStorage::new(&setup.backup_dir).map_err(|e| e.to_string())?;
        if local.stat(&key_object(id)).await.is_ok() {
            return Ok(Arc::new(local));
        }
    }
    let cfg = setup.drive.config()?;
    match cfg {
        Some(cfg) if on_drive => {
            let d = DriveStorage::connect(cfg)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Arc::new(d))
        }
        _ => Err(format!(
            "the newest backup {id} has no KEY object in {} and no Drive copy",
            setup.backup_dir.display()
        )),
    }
}

async fn open(storage: &dyn Storage, id: &BackupId, ring: &KeyRing) -> Result<usize, String> {
    let uuid = id.format_uuid();
    let key_name = key_object(id);
    let mut s = storage.get(&key_name).await.map_err(|e| e.to_string())?;
    let mut envelope = Vec::new();
    while let Some(chunk) = s.next().await {
        envelope.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
        if envelope.len() > 1 << 20 {
            return Err(format!("{key_name} is larger than 1 MiB"));
        }
    }
    let key = KeyEnvelope::from_bytes(&envelope)
        .and_then(|e| e.unwrap(ring, uuid))
        .map_err(|e| format!("{key_name}: {e}"))?;
    let m_name = manifest_object(id);
    let stream = storage.get(&m_name).await.map_err(|e| e.to_string())?;
    let manifest = read_manifest(stream, &key, uuid)
        .await
        .map_err(|e| format!("{m_name}: {e}"))?;
    Ok(manifest.objects.len())
}

/// The backup directory exists (or can be created), takes a durable write, and has space.
pub(super) async fn dir_probe(setup: &Setup) -> Probe {
    let dir = setup.backup_dir.clone();
    let min_free = setup.min_free_bytes;
    tokio::task::spawn_blocking(move || dir_probe_blocking(&dir, min_free))
        .await
        .unwrap_or_else(|e| {
            Probe::failed(
                DIR,
                format!("the probe crashed: {e}"),
                "Report this as a bug.",
            )
        })
}

fn dir_probe_blocking(dir: &Path, min_free: u64) -> Probe {
    let shown = dir.display();
    let unwritable = "Point CELLAR_BACKUP_DIR at a directory on a writable volume that the \
                      worker's user owns (create it, or fix its ownership and mode).";
    if let Err(e) = std::fs::create_dir_all(dir) {
        return Probe::failed(DIR, format!("cannot create {shown}: {e}"), unwritable);
    }
    let probe = dir.join(format!(".cellar-probe-{}", uuid::Uuid::new_v4().simple()));
    let payload = b"cellar diagnose probe\n".repeat(64);
    let written = write_read(&probe, &payload);
    let _ = std::fs::remove_file(&probe);
    if let Err(e) = written {
        return Probe::failed(
            DIR,
            format!("cannot write a file in {shown}: {e}"),
            unwritable,
        );
    }
    let st = match rustix::fs::statvfs(dir) {
        Ok(s) => s,
        Err(e) => {
            return Probe::warning(
                DIR,
                format!("writable, but free space is unknown: {e}"),
                "Check the volume with `df`.",
            );
        }
    };
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    let total = st.f_blocks.saturating_mul(st.f_frsize);
    let mib = |b: u64| b >> 20;
    let detail = format!(
        "{shown} is writable (write, fsync, read back, delete); {} MiB free of {} MiB",
        mib(free),
        mib(total)
    );
    if free < min_free {
        return Probe::warning(
            DIR,
            format!("{detail}: below the {} MiB threshold", mib(min_free)),
            "Free space on the volume, grow it, or delete old backups; the threshold is \
             CELLAR_MIN_FREE_MIB.",
        );
    }
    Probe::ok(DIR, detail)
}

fn write_read(path: &Path, payload: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(payload)?;
    f.sync_all()?;
    drop(f);
    let mut back = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut back)?;
    if back != payload {
        return Err(std::io::Error::other(
            "the file read back differs from what was written",
        ));
    }
    Ok(())
}

/// A probe object's key (also used by the Drive probe).
pub(super) fn probe_key() -> ObjectKey {
    let id = uuid::Uuid::new_v4().simple().to_string();
    ObjectKey::new(format!("cellar-probe-{id}/probe")).expect("a valid key")
}
