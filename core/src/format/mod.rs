//! The backup format: how a backup's bytes look in storage. Specified in `docs/FORMAT.md`.
//!
//! ```text
//! <backup_id>/KEY          plain JSON: the data key wrapped by master key(s)   (envelope)
//! <backup_id>/data/000001  header + frames, object number 1, 2, ...           (object, reader)
//! <backup_id>/MANIFEST     header + frames, object number 0, JSON inside      (manifest)
//! ```
//! Each object: plain bytes → BLAKE3 → segments → gzip → AES-256-GCM → BLAKE3 → storage.
//!
//! # Layout
//! - [`keys`]: master keyring (`CELLAR_ENCRYPTION_KEY`) and per-backup data keys.
//! - [`envelope`]: the `KEY` object; wrap, unwrap and rewrap (rotation) of data keys.
//! - [`header`]: the small plain header every object starts with.
//! - [`frame`]: one AES-256-GCM frame per segment; nonces; the incremental parser.
//! - [`segment`]: a segment's plaintext, one gzip member.
//! - [`object`]: the streaming, parallel writer.
//! - [`reader`]: streaming reader, range reader and verifier.
//! - [`manifest`]: the backup's table of contents, encrypted as object 0.

pub mod envelope;
pub mod error;
pub mod frame;
pub mod header;
pub mod keys;
pub mod manifest;
pub mod object;
pub mod reader;
pub mod segment;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

use uuid::Uuid;

pub use envelope::{KeyEnvelope, WrappedKey};
pub use error::FormatError;
pub use header::ObjectHeader;
pub use keys::{DataKey, KeyRing};
pub use manifest::{Manifest, ManifestObject, ManifestTable, read_manifest, write_manifest};
pub use object::{EncodeOptions, ObjectDigest, write_object};
pub use reader::{read_object, read_segments, verify_object};

use crate::storage::{ObjectKey, StorageError};

/// The version written in every header and `KEY` object. Readers refuse any other.
pub const FORMAT_VERSION: u16 = 1;

/// `<backup_id>/KEY`: the wrapped data key.
pub fn key_object_name(backup_id: Uuid) -> Result<ObjectKey, StorageError> {
    ObjectKey::new(format!("{backup_id}/KEY"))
}

/// `<backup_id>/MANIFEST`: the encrypted manifest.
pub fn manifest_object_name(backup_id: Uuid) -> Result<ObjectKey, StorageError> {
    ObjectKey::new(format!("{backup_id}/MANIFEST"))
}

/// `<backup_id>/data/NNNNNN`: data object `object_no` (≥ 1). Opaque: no table names.
pub fn data_object_name(backup_id: Uuid, object_no: u32) -> Result<ObjectKey, StorageError> {
    ObjectKey::new(format!("{backup_id}/data/{object_no:06}"))
}
