//! Test helpers: an in-memory object writer and shortcuts to encode and decode objects.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use futures::TryStreamExt;
use uuid::Uuid;

use super::{DataKey, EncodeOptions, FormatError, ObjectDigest, ObjectHeader};
use crate::storage::{ByteStream, ObjectInfo, ObjectKey, ObjectWriter, StorageError};

/// What happened to a [`MemWriter`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Outcome {
    #[default]
    Open,
    Finished,
    Aborted,
}

/// Collects written bytes in memory and records whether it was finished or aborted.
#[derive(Clone, Default)]
pub struct MemWriter {
    pub bytes: Arc<Mutex<Vec<u8>>>,
    pub outcome: Arc<Mutex<Outcome>>,
}

#[async_trait]
impl ObjectWriter for MemWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        self.bytes.lock().unwrap().extend_from_slice(&chunk);
        Ok(())
    }
    async fn finish(self: Box<Self>) -> Result<ObjectInfo, StorageError> {
        *self.outcome.lock().unwrap() = Outcome::Finished;
        let size = self.bytes.lock().unwrap().len() as u64;
        let key = ObjectKey::new("mem").unwrap();
        Ok(ObjectInfo { key, size })
    }
    async fn abort(self: Box<Self>) -> Result<(), StorageError> {
        *self.outcome.lock().unwrap() = Outcome::Aborted;
        Ok(())
    }
}

/// Small segments so tests exercise many frames.
pub fn small_opts(segment_size: usize) -> EncodeOptions {
    EncodeOptions {
        level: 6,
        segment_size,
        parallelism: 3,
        budget: None,
    }
}

/// Encodes `chunks` as object `object_no`; returns the stored bytes and digest.
pub async fn encode(
    key: &DataKey,
    backup: Uuid,
    object_no: u32,
    chunks: Vec<Vec<u8>>,
    opts: &EncodeOptions,
) -> (Vec<u8>, ObjectDigest) {
    let w = MemWriter::default();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let header = ObjectHeader::new(backup, object_no, Utc::now());
    let feed = async move {
        for c in chunks {
            tx.send(Bytes::from(c)).await.unwrap();
        }
    };
    let write = super::write_object(Box::new(w.clone()), key, header, rx, opts);
    let ((), digest) = tokio::join!(feed, write);
    assert_eq!(*w.outcome.lock().unwrap(), Outcome::Finished);
    let bytes = w.bytes.lock().unwrap().clone();
    (bytes, digest.unwrap())
}

/// Stored bytes as a storage stream, in chunks of `chunk` bytes.
pub fn stream_of(bytes: &[u8], chunk: usize) -> ByteStream {
    let parts: Vec<Result<Bytes, StorageError>> = bytes
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures::stream::iter(parts))
}

/// Decodes a whole object into its plain bytes.
pub async fn decode(
    bytes: &[u8],
    key: &DataKey,
    backup: Uuid,
    object_no: u32,
) -> Result<Vec<u8>, FormatError> {
    let s = super::read_object(stream_of(bytes, 1000), key, backup, object_no);
    let parts: Vec<Bytes> = s.try_collect().await?;
    Ok(parts.concat())
}

/// Deterministic text that compresses like a COPY dump.
pub fn text(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 100);
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut row = 0u64;
    while out.len() < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let line = format!(
            "{row}\tcustomer-{}\t{}@example.com\t{}.{:02}\t2024-0{}-1{} 12:{:02}:00\tstatus_{}\n",
            x % 100_000,
            (x >> 20) % 9_999,
            (x >> 8) % 10_000,
            (x >> 3) % 100,
            1 + (x >> 30) % 9,
            (x >> 34) % 10,
            (x >> 40) % 60,
            ["active", "closed", "pending"][(x >> 50) as usize % 3],
        );
        out.extend_from_slice(line.as_bytes());
        row += 1;
    }
    out.truncate(len);
    out
}
