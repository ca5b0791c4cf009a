//! [`Retrying`]: a [`Storage`] wrapper that retries transient failures, as restic's
//! `RetryBackend` does, so backends stay simple and only classify their errors.
//!
//! ```text
//! for attempt in 1..=max_attempts:
//!     result = call()
//!     if ok, or error not transient, or last attempt: return result
//!     sleep(random in [d/2, d]) where d = min(max_delay, base_delay * 2^(attempt-1))
//! ```
//!
//! Retried: `stat`, `list`, `delete`, opening `get`/`get_range` streams, opening a writer with
//! `create`, and whole `put`s (the bytes are in memory, so the call can be replayed). Not
//! retried: writes and `finish` of a writer (a stream cannot be replayed from here) and errors
//! in the middle of a read stream; the caller retries those at its own level.

use std::future::Future;
use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rand::Rng;

use super::{ByteStream, ObjectInfo, ObjectKey, ObjectWriter, Storage, StorageError};

/// How hard to try: a bounded number of attempts with truncated exponential backoff and jitter.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Total calls made, the first included; at least 1.
    pub max_attempts: u32,
    /// Delay before the first retry (before jitter); doubles each retry.
    pub base_delay: Duration,
    /// Ceiling of the delay, so a long outage is probed at a steady pace.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// About a minute of retrying in total: rides out a restarted NAS or a Drive rate limit
    /// without hiding a real outage for long.
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// The sleep after failed attempt number `attempt` (1-based): "equal jitter", half fixed so
    /// the delay still grows, half random so many clients do not retry in lockstep.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << (attempt - 1).min(30));
        let capped = exp.min(self.max_delay);
        let half = capped / 2;
        half + rand::thread_rng().gen_range(Duration::ZERO..=half)
    }
}

/// Wraps any backend and retries its transient errors according to a [`RetryPolicy`].
#[derive(Debug)]
pub struct Retrying<S> {
    inner: S,
    policy: RetryPolicy,
}

impl<S: Storage> Retrying<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, policy: RetryPolicy) -> Self {
        Self { inner, policy }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Calls `op` until it succeeds, fails for good, or the attempts run out.
    async fn retry<T, F, Fut>(
        &self,
        what: &'static str,
        key: &str,
        mut op: F,
    ) -> Result<T, StorageError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StorageError>>,
    {
        let max = self.policy.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            match op().await {
                Err(e) if e.is_transient() && attempt < max => {
                    let delay = self.policy.delay(attempt);
                    tracing::warn!(what, key, attempt, ?delay, error = %e, "transient storage error, retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

#[async_trait]
impl<S: Storage> Storage for Retrying<S> {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn create(&self, key: &ObjectKey) -> Result<Box<dyn ObjectWriter>, StorageError> {
        self.retry("create", key.as_str(), || self.inner.create(key))
            .await
    }

    async fn put(&self, key: &ObjectKey, bytes: Bytes) -> Result<ObjectInfo, StorageError> {
        self.retry("put", key.as_str(), || self.inner.put(key, bytes.clone()))
            .await
    }

    async fn get(&self, key: &ObjectKey) -> Result<ByteStream, StorageError> {
        self.retry("get", key.as_str(), || self.inner.get(key))
            .await
    }

    async fn get_range(
        &self,
        key: &ObjectKey,
        range: Range<u64>,
    ) -> Result<ByteStream, StorageError> {
        self.retry("get_range", key.as_str(), || {
            self.inner.get_range(key, range.clone())
        })
        .await
    }

    async fn stat(&self, key: &ObjectKey) -> Result<ObjectInfo, StorageError> {
        self.retry("stat", key.as_str(), || self.inner.stat(key))
            .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        self.retry("list", prefix, || self.inner.list(prefix)).await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        self.retry("delete", key.as_str(), || self.inner.delete(key))
            .await
    }
}

#[cfg(test)]
mod tests;
