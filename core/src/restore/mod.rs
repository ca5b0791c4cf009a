//! Restoring backups: a whole database (built aside, then swapped in) or chosen tables (replaced
//! in one transaction), always after a safety backup of what will be replaced.
//!
//! ```text
//! catalog::create        restore row + job, one transaction (API, CLI)
//! run::run (the job):
//!   open the backup      KEY unwrapped, MANIFEST authenticated, objects present: else refuse
//!   lock the target      advisory lock per (server, database): a second restore fails clearly
//!   safety backup        type `safety` of the target (or the chosen tables); must complete
//!   full::restore        scratch database: pre-data, parallel COPY with each table's indexes
//!                        built as it fills, rest of post-data -j, setval, REFRESH, then swap: target -> old, scratch -> target, drop old
//!   tables::restore      one transaction: TRUNCATE/DELETE + COPY (triggers off), setval,
//!                        foreign-key check naming the constraint that would break
//! any error or cancel    the target is left exactly as it was
//! ```
//!
//! # Layout
//! - [`catalog`]: the `restore` table: create (with its job), rollback, read, state changes.
//! - [`open`]: reading a backup for restore: key, manifest, sequences, the schema archive.
//! - [`target`]: the server and database restored into: connections, the advisory lock.
//! - [`load`]: `COPY ... FROM STDIN` of backup objects, checked against the manifest.
//! - [`pgrestore`]: running `pg_restore` on the decrypted schema archive.
//! - [`postdata`]: which indexes and constraints can be built as soon as their table is loaded;
//!   [`interleave`]: the lanes that load data and build those, `pg_restore -j` style.
//! - [`full`]: whole-database restore, built aside and swapped in.
//! - [`drill`]: the restore drill (verify level DRILL): a scratch restore compared table by
//!   table with the backup, then dropped.
//! - [`tables`]: selective restore in one transaction; [`integrity`]: its foreign-key check.
//! - [`files`]: the attached-files archive into `CELLAR_FILES_DIR` (`restoreFiles`), extracted
//!   aside with every entry confined, then swapped in.
//! - [`safety`]: the safety backup taken before anything is overwritten.
//! - [`run`]: the job: all of the above in order, with progress and cancellation.

pub mod catalog;
pub mod drill;
pub mod files;
pub mod full;
pub mod integrity;
pub mod interleave;
pub mod load;
pub mod open;
pub mod pgrestore;
pub mod postdata;
pub mod run;
pub mod safety;
pub mod tables;
pub mod target;

pub use catalog::{RestoreId, RestoreRequest, RestoreRow, RestoreState};

use crate::backup::BackupError;

/// Job kind of a restore (and of a rollback, which restores a safety backup).
pub const JOB_RESTORE: &str = "restore";

/// Why a restore request was refused before anything was enqueued. The API maps `Invalid` and
/// `NotFound` to user errors, `Conflict` to a conflict, the rest to internal errors.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The request itself is wrong (bad table name, backup not completed...).
    #[error("{0}")]
    Invalid(String),
    /// The backup or restore named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Another restore of the same database is pending or running.
    #[error("{0}")]
    Conflict(String),
    /// The catalog failed.
    #[error("catalog database: {0}")]
    Db(#[from] sqlx::Error),
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
}

/// Why a running restore failed, classified where it is born. Whatever the variant, the target
/// was left as it was before the restore started, with one exception its message names: a table
/// restore whose rows committed but whose files could not be swapped in afterwards.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Retrying cannot help (wrong key, corrupted object, refused overwrite, broken foreign key).
    #[error("{0}")]
    Permanent(String),
    /// A retry may succeed (connection lost, storage hiccup).
    #[error("{0}")]
    Transient(String),
    /// The job was cancelled.
    #[error("cancelled")]
    Cancelled,
}

impl RestoreError {
    /// The same error with `context: ` in front, keeping its class.
    pub fn context(self, context: &str) -> Self {
        match self {
            Self::Permanent(m) => Self::Permanent(format!("{context}: {m}")),
            Self::Transient(m) => Self::Transient(format!("{context}: {m}")),
            Self::Cancelled => Self::Cancelled,
        }
    }
}

impl From<BackupError> for RestoreError {
    fn from(e: BackupError) -> Self {
        match e {
            BackupError::Permanent(m) => Self::Permanent(m),
            BackupError::Transient(m) => Self::Transient(m),
            BackupError::Cancelled => Self::Cancelled,
        }
    }
}

impl From<crate::format::FormatError> for RestoreError {
    fn from(e: crate::format::FormatError) -> Self {
        Self::Permanent(e.to_string())
    }
}

impl From<crate::storage::StorageError> for RestoreError {
    fn from(e: crate::storage::StorageError) -> Self {
        BackupError::from(e).into()
    }
}

impl From<sqlx::Error> for RestoreError {
    /// Lost connections and server shutdowns may pass; anything the server refused will not.
    fn from(e: sqlx::Error) -> Self {
        let msg = crate::config::redact(&e.to_string());
        match &e {
            sqlx::Error::Database(d) => match d.code().as_deref().map(|c| &c[..2]) {
                Some("08" | "57" | "53" | "40") => Self::Transient(msg),
                _ => Self::Permanent(msg),
            },
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Protocol(_) => {
                Self::Transient(msg)
            }
            _ => Self::Permanent(msg),
        }
    }
}
