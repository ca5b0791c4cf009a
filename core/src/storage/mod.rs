//! Where backup objects live: a small trait every backend implements, and the backends.
//!
//! Modelled on restic's backend interface: save (streaming, through an [`ObjectWriter`]), load
//! (whole or a byte range), stat, list, remove. Errors say where they were born whether a retry
//! can help ([`StorageError::is_transient`]). One conformance suite
//! (`conformance`, built for tests and with the `conformance` feature) runs against every
//! backend; extra behaviour comes from wrappers ([`Retrying`]).

use std::fmt;
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod drive;
pub mod local;
pub mod retry;

pub use drive::{DriveSettings, DriveStorage};
pub use local::LocalStorage;
pub use retry::{RetryPolicy, Retrying};

/// A validated object name: `/`-separated segments of `[A-Za-z0-9._-]`, no empty, `.` or `..`
/// segment, no leading `/`, at most 512 bytes. Backends may map it straight to a path: it cannot
/// escape the storage root.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Parses and validates an object name.
    pub fn new(name: impl Into<String>) -> Result<Self, StorageError> {
        let name = name.into();
        let bad = |why: &str| StorageError::InvalidKey {
            key: name.escape_debug().to_string(),
            why: why.to_string(),
        };
        if name.is_empty() || name.len() > 512 {
            return Err(bad("must be 1 to 512 bytes"));
        }
        for seg in name.split('/') {
            if seg.is_empty() || seg == "." || seg == ".." {
                return Err(bad("empty, '.' or '..' path segment"));
            }
            if !seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return Err(bad(
                    "only ASCII letters, digits, '.', '_' and '-' are allowed",
                ));
            }
        }
        Ok(Self(name))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `self/child`, validated.
    pub fn join(&self, child: &str) -> Result<Self, StorageError> {
        Self::new(format!("{}/{child}", self.0))
    }
}

impl TryFrom<String> for ObjectKey {
    type Error = StorageError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<ObjectKey> for String {
    fn from(k: ObjectKey) -> Self {
        k.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a backend knows about a stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's name.
    pub key: ObjectKey,
    /// Stored size in bytes.
    pub size: u64,
}

/// A storage failure, classified where it is born so callers know whether to retry.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The object does not exist.
    #[error("object {0} not found")]
    NotFound(String),
    /// The name was refused before reaching the backend.
    #[error("invalid object name {key:?}: {why}")]
    InvalidKey { key: String, why: String },
    /// Retrying cannot help (permissions, quota, misconfiguration, disk full...).
    #[error("{backend}: {message}")]
    Permanent { backend: String, message: String },
    /// A retry may succeed (timeouts, dropped connections, 5xx, rate limits).
    #[error("{backend} (transient): {message}")]
    Transient { backend: String, message: String },
}

impl StorageError {
    /// True when retrying the same call may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }

    /// True when the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound(_))
    }
}

/// A stream of an object's bytes, in order.
pub type ByteStream = BoxStream<'static, Result<Bytes, StorageError>>;

/// An object being written. Nothing is visible under its key until [`ObjectWriter::finish`]
/// returns; dropping or aborting a writer leaves nothing behind.
#[async_trait]
pub trait ObjectWriter: Send {
    /// Appends bytes.
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError>;
    /// Makes the object durable and visible under its key, replacing any previous one.
    async fn finish(self: Box<Self>) -> Result<ObjectInfo, StorageError>;
    /// Discards what was written.
    async fn abort(self: Box<Self>) -> Result<(), StorageError>;
}

/// A place to keep backup objects.
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    /// A short description for logs and errors (never a secret), e.g. `local:/var/backups`.
    fn describe(&self) -> String;
    /// Starts writing an object.
    async fn create(&self, key: &ObjectKey) -> Result<Box<dyn ObjectWriter>, StorageError>;
    /// Writes a whole small object at once.
    async fn put(&self, key: &ObjectKey, bytes: Bytes) -> Result<ObjectInfo, StorageError> {
        let mut w = self.create(key).await?;
        w.write(bytes).await?;
        w.finish().await
    }
    /// Streams a whole object.
    async fn get(&self, key: &ObjectKey) -> Result<ByteStream, StorageError>;
    /// Streams the bytes `range` of an object (clamped to its end).
    async fn get_range(
        &self,
        key: &ObjectKey,
        range: Range<u64>,
    ) -> Result<ByteStream, StorageError>;
    /// Size of an object.
    async fn stat(&self, key: &ObjectKey) -> Result<ObjectInfo, StorageError>;
    /// Every object whose name starts with `prefix`, sorted by name.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError>;
    /// Removes an object; removing one that does not exist succeeds.
    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError>;
}
