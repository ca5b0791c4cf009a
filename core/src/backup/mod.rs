//! Taking and verifying backups: the orchestration over [`crate::dump`], [`crate::format`] and
//! [`crate::storage`].
//!
//! # Layout
//! - [`id`]: readable backup ids, backup types and states.
//! - [`settings`]: the backup settings (`CELLAR_SOURCE_URL`, `CELLAR_BACKUP_DIR`, keys, ...).
//! - [`catalog`]: the `backup` table: create (with its job), read, state changes.
//! - [`progress`]: the progress a backup reports, through a trait with a no-op implementation.
//! - [`run`]: taking a backup (snapshot, schema, parallel COPY, manifest last; cleanup on failure).
//! - [`verify`]: re-reading every object: sizes, both BLAKE3s, every frame, row counts; the
//!   DRILL level goes on to `crate::restore::drill`.
//! - [`fingerprint`]: an order-independent fingerprint of a table's COPY text (for drills).
//! - [`listing`]: filtered pages with keyset cursors, and statistics (for the API).
//! - [`requests`]: asking for verify or delete jobs, with the backup's state checked.
//! - [`delete`]: removing a backup's objects and marking it deleted.
//! - [`upload`]: copying a completed backup to Google Drive, resumable across workers.

pub mod catalog;
pub mod delete;
pub mod files;
pub mod fingerprint;
pub mod id;
pub mod listing;
pub mod progress;
pub mod requests;
pub mod rotate;
pub mod run;
pub mod settings;
pub mod upload;
pub mod verify;

pub use id::{BackupId, BackupState, BackupType};
pub use progress::{Progress, ProgressReport};
pub use settings::{BackupEnv, BackupSettings};

/// Job kind of a backup.
pub const JOB_BACKUP: &str = "backup";
/// Job kind of a verification.
pub const JOB_VERIFY: &str = "verify";
/// Job kind of a key rotation over every backup.
pub const JOB_ROTATE_KEYS: &str = "rotate_keys";
/// Job kind of a deletion.
pub const JOB_DELETE: &str = "delete";
/// Job kind of copying a completed backup to Google Drive.
pub const JOB_UPLOAD: &str = "upload";

/// Why a backup or verification failed, classified where it is born.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Retrying cannot help (bad input, missing source, wrong key, pg_dump too old...).
    #[error("{0}")]
    Permanent(String),
    /// A retry may succeed (connection lost, storage hiccup).
    #[error("{0}")]
    Transient(String),
    /// The job was cancelled.
    #[error("cancelled")]
    Cancelled,
}

impl From<crate::dump::DumpError> for BackupError {
    fn from(e: crate::dump::DumpError) -> Self {
        use crate::dump::DumpError as D;
        let msg = e.to_string();
        match e {
            D::Cancelled => Self::Cancelled,
            D::Connect { .. }
            | D::Query { .. }
            | D::DataConnect { .. }
            | D::DataQuery { .. }
            | D::Copy { .. }
            | D::ConnectionBroken => Self::Transient(msg),
            D::PgDumpIo(_) | D::PgDumpFailed { .. } => Self::Transient(msg),
            _ => Self::Permanent(msg),
        }
    }
}

impl From<crate::storage::StorageError> for BackupError {
    fn from(e: crate::storage::StorageError) -> Self {
        if e.is_transient() {
            Self::Transient(e.to_string())
        } else {
            Self::Permanent(e.to_string())
        }
    }
}

impl From<crate::format::FormatError> for BackupError {
    fn from(e: crate::format::FormatError) -> Self {
        Self::Permanent(e.to_string())
    }
}

impl From<sqlx::Error> for BackupError {
    fn from(e: sqlx::Error) -> Self {
        Self::Transient(format!("catalog database: {e}"))
    }
}

impl From<crate::queue::QueueError> for BackupError {
    fn from(e: crate::queue::QueueError) -> Self {
        Self::Transient(e.to_string())
    }
}
