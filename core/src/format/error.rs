//! The one error type of the backup format layer.
//!
//! Messages name objects by number and segments by index, never key material, table names or
//! data: they end up in logs and job rows.

use crate::storage::StorageError;

/// Why reading, writing or unwrapping a backup failed.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The bytes do not start with `CELLAR`: not a Cellar object, or the wrong object.
    #[error("object {object}: not a Cellar backup object (bad magic)")]
    BadMagic { object: u32 },
    /// Written by a newer Cellar (or corrupt): refuse rather than guess.
    #[error(
        "backup format version {found} is newer than this Cellar supports ({supported}): upgrade Cellar"
    )]
    UnsupportedVersion { found: u16, supported: u16 },
    /// The plain header is malformed.
    #[error("object {object}: bad header: {why}")]
    BadHeader { object: u32, why: String },
    /// The object's header names another backup: it was copied or moved.
    #[error("object {object} belongs to backup {found}, expected backup {expected}")]
    WrongBackup {
        object: u32,
        found: String,
        expected: String,
    },
    /// The object's header carries another object number: objects were renamed or swapped.
    #[error("object is object number {found}, expected {expected} (renamed or swapped?)")]
    WrongObject { found: u32, expected: u32 },
    /// A frame length above the limit: corruption, refused before allocating it.
    #[error("object {object} segment {segment}: frame length {len} exceeds the limit {max}")]
    FrameTooLarge {
        object: u32,
        segment: u64,
        len: u64,
        max: u64,
    },
    /// The stream ended before a frame marked last: the object is truncated.
    #[error(
        "object {object} is truncated: it ends after {segments} segment(s) without the last-segment mark"
    )]
    Truncated { object: u32, segments: u64 },
    /// Bytes follow the last frame.
    #[error("object {object}: unexpected data after the last segment")]
    TrailingData { object: u32 },
    /// AES-GCM rejected a frame: tampered, reordered, moved, truncated, or the wrong data key.
    #[error(
        "object {object} segment {segment}: authentication failed (corrupted, tampered with, reordered, or the wrong key)"
    )]
    Auth { object: u32, segment: u64 },
    /// An authenticated frame did not hold one valid gzip member (a writer bug, not tampering).
    #[error("object {object} segment {segment}: bad compressed data: {why}")]
    Decompress {
        object: u32,
        segment: u64,
        why: String,
    },
    /// The key envelope names no master key that this keyring holds.
    #[error("key id {id} is not in CELLAR_ENCRYPTION_KEY (known: {known})")]
    UnknownKeyId { id: String, known: String },
    /// A master key with the right id failed to unwrap the data key.
    #[error("wrong key: the data key did not authenticate under key id {id}")]
    WrongKey { id: String },
    /// CELLAR_ENCRYPTION_KEY (or its file) is malformed. Never contains key material.
    #[error("invalid CELLAR_ENCRYPTION_KEY: {0}")]
    KeyConfig(String),
    /// CELLAR_ENCRYPTION_KEY_FILE could not be read.
    #[error("cannot read CELLAR_ENCRYPTION_KEY_FILE {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    /// The `KEY` object is malformed or belongs to another backup.
    #[error("key envelope: {0}")]
    Envelope(String),
    /// The manifest was written by a newer Cellar.
    #[error(
        "manifest version {found} is newer than this Cellar supports ({supported}): upgrade Cellar"
    )]
    ManifestVersion { found: u64, supported: u64 },
    /// The manifest names another backup.
    #[error("manifest belongs to backup {found}, not {expected}")]
    ManifestBackup { found: String, expected: String },
    /// The manifest is not valid JSON of the expected shape.
    #[error("manifest: {0}")]
    Manifest(String),
    /// Caller-supplied options are out of range.
    #[error("invalid format options: {0}")]
    Options(String),
    /// The storage backend failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A worker task panicked or was cancelled.
    #[error("internal error in the backup format pipeline: {0}")]
    Internal(String),
}
