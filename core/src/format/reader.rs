//! Reading an object back: stored bytes → frames → AES-256-GCM → gunzip → plain bytes, one
//! segment at a time, refusing anything the writer would not have produced.
//!
//! ```text
//! loop: parse the next event from the bytes so far
//!   header → check backup id and object number, derive the object's cipher
//!   frame  → decrypt + gunzip on a blocking thread, yield the plain bytes
//!   none   → read more from storage; at its end, the parser must have seen the last frame
//! ```

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use uuid::Uuid;

use super::error::FormatError;
use super::frame::{Event, FrameCipher, FrameParser, RawFrame};
use super::header::ObjectHeader;
use super::keys::DataKey;
use super::object::{ObjectDigest, Tally, digest};
use super::segment::decode_segment;
use crate::storage::ByteStream;

/// A stream of an object's plain bytes: one item per segment, an error ends it.
pub type PlainStream = BoxStream<'static, Result<Bytes, FormatError>>;

struct Reader {
    stream: ByteStream,
    parser: FrameParser,
    key: DataKey,
    backup_id: Uuid,
    object_no: u32,
    cipher: Option<Arc<FrameCipher>>,
    /// Range reads stop wherever the fetched bytes stop.
    partial: bool,
}

impl Reader {
    fn accept_header(&mut self, h: ObjectHeader) -> Result<(), FormatError> {
        if h.backup_id != self.backup_id {
            return Err(FormatError::WrongBackup {
                object: self.object_no,
                found: h.backup_id.to_string(),
                expected: self.backup_id.to_string(),
            });
        }
        if h.object_no != self.object_no {
            return Err(FormatError::WrongObject {
                found: h.object_no,
                expected: self.object_no,
            });
        }
        self.cipher = Some(Arc::new(FrameCipher::new(&self.key, &h)));
        Ok(())
    }

    /// Decrypts and gunzips a frame off the async threads. Takes the cipher, not `&self`:
    /// the storage stream is not `Sync`, so `&self` must not live across the await.
    async fn decode(cipher: Arc<FrameCipher>, frame: RawFrame) -> Result<Bytes, FormatError> {
        let plain = tokio::task::spawn_blocking(move || decode_segment(&cipher, frame))
            .await
            .map_err(|e| FormatError::Internal(e.to_string()))??;
        Ok(Bytes::from(plain))
    }

    /// Reads more stored bytes; false at the end of the stream.
    async fn fill(&mut self) -> Result<bool, FormatError> {
        match self.stream.next().await {
            Some(chunk) => {
                self.parser.push(&chunk?);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn next_plain(&mut self) -> Result<Option<Bytes>, FormatError> {
        loop {
            match self.parser.next_event()? {
                Some(Event::Header(h)) => self.accept_header(h)?,
                Some(Event::Frame(f)) => {
                    let cipher = self
                        .cipher
                        .clone()
                        .expect("the header precedes every frame");
                    return Self::decode(cipher, f).await.map(Some);
                }
                None if self.fill().await? => {}
                None if self.partial => return self.parser.finish_range().map(|()| None),
                None => return self.parser.finish().map(|()| None),
            }
        }
    }

    fn into_stream(self) -> PlainStream {
        futures::stream::unfold(Some(self), |state| async move {
            let mut r = state?;
            match r.next_plain().await {
                Ok(Some(b)) => Some((Ok(b), Some(r))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        })
        .boxed()
    }
}

/// Decrypts and decompresses a whole object. The stream fails (and stops) on the first
/// problem; it ends cleanly only if the object was complete and authentic.
pub fn read_object(
    stream: ByteStream,
    data_key: &DataKey,
    backup_id: Uuid,
    object_no: u32,
) -> PlainStream {
    Reader {
        stream,
        parser: FrameParser::new(object_no),
        key: data_key.clone(),
        backup_id,
        object_no,
        cipher: None,
        partial: false,
    }
    .into_stream()
}

/// Decodes frames from a byte range that starts at the boundary of segment `first_segment`
/// (offset `HEADER_LEN + Σ (4 + length)` of the frames before it). `header` is the object's
/// header, fetched and parsed separately. Each frame is still authenticated, but the stream
/// ends wherever `stream` ends: completeness of the object is not checked.
pub fn read_segments(
    stream: ByteStream,
    data_key: &DataKey,
    header: &ObjectHeader,
    first_segment: u64,
) -> PlainStream {
    Reader {
        stream,
        parser: FrameParser::resume(header.object_no, first_segment),
        key: data_key.clone(),
        backup_id: header.backup_id,
        object_no: header.object_no,
        cipher: Some(Arc::new(FrameCipher::new(data_key, header))),
        partial: true,
    }
    .into_stream()
}

/// Reads a whole object and recomputes its digest (both hashes, both sizes, segment count),
/// for `verify` to compare with the manifest.
pub async fn verify_object(
    stream: ByteStream,
    data_key: &DataKey,
    backup_id: Uuid,
    object_no: u32,
) -> Result<ObjectDigest, FormatError> {
    let stored = Arc::new(Mutex::new(Tally::default()));
    let counted = stored.clone();
    let tee = stream
        .inspect_ok(move |b| counted.lock().expect("tally lock").add(b))
        .boxed();
    let mut frames = read_object(tee, data_key, backup_id, object_no);
    let (mut plain, mut segments) = (Tally::default(), 0);
    while let Some(bytes) = frames.try_next().await? {
        plain.add(&bytes);
        segments += 1;
    }
    let stored = stored.lock().expect("tally lock");
    Ok(digest(&plain, &stored, segments))
}
