//! Writing an object: plain bytes → BLAKE3 (plain) → segments → gzip → AES-256-GCM → BLAKE3
//! (stored) → storage, with segments compressed on every core.
//!
//! ```text
//! write header
//! for each input chunk: hash it, cut it into segment_size pieces;
//!     a full segment waits ("pending") until more input shows it is not the last
//!     submit(segment): if `parallelism` segments are in flight, write the oldest first;
//!                      then spawn_blocking(gzip + seal)
//! at end of input: submit the pending and/or partial segment, the final one marked last
//! write the remaining frames in order; finish the writer (abort it on any error)
//! ```
//! Memory: at most `parallelism` segments in flight, plus the pending and the partial one.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::Receiver;
use tokio::task::JoinHandle;

use super::error::FormatError;
use super::frame::FrameCipher;
use super::header::ObjectHeader;
use super::keys::DataKey;
use super::segment::{MAX_SEGMENT_PLAIN, encode_segment};
use crate::storage::ObjectWriter;

/// How an object is encoded. The defaults suit a backup; tests use tiny segments.
#[derive(Clone, Debug)]
pub struct EncodeOptions {
    /// gzip level 0-9: the main speed/size dial.
    pub level: u32,
    /// Plain bytes per segment (1 byte to 64 MiB). Larger: slightly better compression;
    /// smaller: finer range reads and less memory.
    pub segment_size: usize,
    /// Segments compressed at once; memory is about `(parallelism + 2) * segment_size`.
    pub parallelism: usize,
    /// A CPU budget shared by every object of one backup: a segment is compressed only while
    /// holding a permit, so several objects written at once do not oversubscribe the cores.
    pub budget: Option<Arc<tokio::sync::Semaphore>>,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            level: 6,
            segment_size: 1 << 20,
            parallelism: std::thread::available_parallelism().map_or(2, |n| n.get()),
            budget: None,
        }
    }
}

impl EncodeOptions {
    fn validate(&self) -> Result<(), FormatError> {
        let bad = |why: &str| Err(FormatError::Options(why.into()));
        if self.level > 9 {
            return bad("gzip level must be 0 to 9");
        }
        if self.segment_size == 0 || self.segment_size > MAX_SEGMENT_PLAIN {
            return bad("segment size must be 1 byte to 64 MiB");
        }
        if self.parallelism == 0 {
            return bad("parallelism must be at least 1");
        }
        Ok(())
    }
}

/// Sizes and hashes of an object, for the manifest and for `verify`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectDigest {
    /// Bytes before compression and encryption.
    pub plain_size: u64,
    /// BLAKE3 of the plain bytes, hex.
    pub plain_blake3: String,
    /// Bytes in storage (header and frames).
    pub stored_size: u64,
    /// BLAKE3 of the stored bytes, hex: checkable without the key.
    pub stored_blake3: String,
    /// Number of segments (frames).
    pub segments: u64,
}

/// Byte count and BLAKE3 of a byte sequence.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) size: u64,
    pub(crate) hasher: blake3::Hasher,
}

impl Tally {
    pub(crate) fn add(&mut self, bytes: &[u8]) {
        self.size += bytes.len() as u64;
        self.hasher.update(bytes);
    }
}

/// Tallies of plain and stored bytes plus a segment count, as a digest.
pub(crate) fn digest(plain: &Tally, stored: &Tally, segments: u64) -> ObjectDigest {
    ObjectDigest {
        plain_size: plain.size,
        plain_blake3: plain.hasher.finalize().to_hex().to_string(),
        stored_size: stored.size,
        stored_blake3: stored.hasher.finalize().to_hex().to_string(),
        segments,
    }
}

/// The encoding half: parallel segment workers feeding an ordered writer.
struct Encoder {
    cipher: Arc<FrameCipher>,
    opts: EncodeOptions,
    in_flight: FuturesOrdered<JoinHandle<Vec<u8>>>,
    next_index: u64,
    writer: Box<dyn ObjectWriter>,
    plain: Tally,
    stored: Tally,
}

impl Encoder {
    async fn write(&mut self, bytes: Bytes) -> Result<(), FormatError> {
        self.stored.add(&bytes);
        Ok(self.writer.write(bytes).await?)
    }

    async fn write_oldest(&mut self) -> Result<(), FormatError> {
        if let Some(done) = self.in_flight.next().await {
            let frame = done.map_err(|e| FormatError::Internal(e.to_string()))?;
            self.write(Bytes::from(frame)).await?;
        }
        Ok(())
    }

    async fn submit(&mut self, plain: Bytes, last: bool) -> Result<(), FormatError> {
        while self.in_flight.len() >= self.opts.parallelism {
            self.write_oldest().await?;
        }
        let (cipher, index, level) = (self.cipher.clone(), self.next_index, self.opts.level);
        self.next_index += 1;
        let permit = match &self.opts.budget {
            Some(b) => Some(
                b.clone()
                    .acquire_owned()
                    .await
                    .expect("budget is never closed"),
            ),
            None => None,
        };
        self.in_flight
            .push_back(tokio::task::spawn_blocking(move || {
                let frame = encode_segment(&cipher, index, last, &plain, level);
                drop(permit);
                crate::bufpool::give(plain);
                frame
            }));
        Ok(())
    }

    /// Cuts the input into segments and encodes them; returns once every frame is written.
    async fn pump(&mut self, mut input: Receiver<Bytes>) -> Result<(), FormatError> {
        let size = self.opts.segment_size;
        let mut cur = BytesMut::with_capacity(size);
        let mut pending: Option<Bytes> = None;
        while let Some(mut chunk) = input.recv().await {
            self.plain.add(&chunk);
            while !chunk.is_empty() {
                if let Some(full) = pending.take() {
                    self.submit(full, false).await?;
                }
                if cur.is_empty() && chunk.len() >= size {
                    // A whole segment as it came (a COPY lane's buffers are segment-sized).
                    pending = Some(chunk.split_to(size));
                    continue;
                }
                let take = (size - cur.len()).min(chunk.len());
                cur.extend_from_slice(&chunk.split_to(take));
                if cur.len() == size {
                    let full = std::mem::replace(&mut cur, BytesMut::with_capacity(size));
                    pending = Some(full.freeze());
                }
            }
        }
        match pending {
            Some(full) if cur.is_empty() => self.submit(full, true).await?,
            Some(full) => {
                self.submit(full, false).await?;
                self.submit(cur.freeze(), true).await?;
            }
            None => self.submit(cur.freeze(), true).await?,
        }
        while !self.in_flight.is_empty() {
            self.write_oldest().await?;
        }
        Ok(())
    }
}

/// Encodes the bytes received on `input` into one object and finishes `writer`; on any error
/// the writer is aborted, so nothing is left under the key. The input ends when every sender
/// is dropped: a producer that fails must drop this future (or fail the whole backup) rather
/// than just close the channel, or a short object is written.
pub async fn write_object(
    writer: Box<dyn ObjectWriter>,
    data_key: &DataKey,
    header: ObjectHeader,
    input: Receiver<Bytes>,
    opts: &EncodeOptions,
) -> Result<ObjectDigest, FormatError> {
    if let Err(e) = opts.validate() {
        let _ = writer.abort().await;
        return Err(e);
    }
    let mut enc = Encoder {
        cipher: Arc::new(FrameCipher::new(data_key, &header)),
        opts: opts.clone(),
        in_flight: FuturesOrdered::new(),
        next_index: 0,
        writer,
        plain: Tally::default(),
        stored: Tally::default(),
    };
    let result = match enc.write(Bytes::from(header.to_bytes())).await {
        Ok(()) => enc.pump(input).await,
        Err(e) => Err(e),
    };
    let Encoder {
        writer,
        plain,
        stored,
        next_index,
        ..
    } = enc;
    if let Err(e) = result {
        let _ = writer.abort().await;
        return Err(e);
    }
    writer.finish().await?;
    Ok(digest(&plain, &stored, next_index))
}
