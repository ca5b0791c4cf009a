//! Frames: one AES-256-GCM ciphertext per segment, and an incremental parser.
//!
//! ```text
//! frame = u32 BE (bit 31: last-segment flag, bits 0-30: ciphertext length) | ciphertext+tag
//! key   = BLAKE3-keyed(data key, "cellar object key" || header bytes)
//! nonce = object number (u32 BE) || segment index (u64 BE, bit 63 = last flag)
//! aad   = header bytes
//! ```
//! The flag is readable without the key (so the parser knows where the object ends) but is
//! also in the nonce, so flipping it fails authentication.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use bytes::{Buf, Bytes, BytesMut};

use super::error::FormatError;
use super::header::ObjectHeader;
use super::keys::DataKey;

/// Largest accepted ciphertext length; anything above is corruption, refused unallocated.
pub const MAX_FRAME_LEN: u32 = 64 << 20;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;
const LAST_BIT: u32 = 1 << 31;

/// Encrypts and decrypts the frames of one object.
pub struct FrameCipher {
    cipher: Aes256Gcm,
    aad: Vec<u8>,
    object_no: u32,
}

fn nonce(object_no: u32, index: u64, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&object_no.to_be_bytes());
    n[4..].copy_from_slice(&(index | (u64::from(last) << 63)).to_be_bytes());
    n
}

impl FrameCipher {
    /// The cipher for the object with this header, under the backup's data key.
    pub fn new(data_key: &DataKey, header: &ObjectHeader) -> Self {
        let aad = header.to_bytes();
        let mut kdf = blake3::Hasher::new_keyed(data_key.expose());
        kdf.update(b"cellar object key");
        kdf.update(&aad);
        let subkey = kdf.finalize();
        Self {
            cipher: Aes256Gcm::new(subkey.as_bytes().into()),
            aad,
            object_no: header.object_no,
        }
    }

    /// The object number this cipher belongs to (labels errors).
    pub fn object_no(&self) -> u32 {
        self.object_no
    }

    /// The whole frame (length prefix + ciphertext) for segment `index`.
    pub fn seal(&self, index: u64, last: bool, mut plain: Vec<u8>) -> Vec<u8> {
        assert!(index < 1 << 63, "segment index out of range");
        let len = u32::try_from(plain.len() + TAG_LEN).expect("segment below 2 GiB");
        assert!(len <= MAX_FRAME_LEN, "segment too large for a frame");
        let n = nonce(self.object_no, index, last);
        self.cipher
            .encrypt_in_place(Nonce::from_slice(&n), &self.aad, &mut plain)
            .expect("AES-GCM encryption cannot fail below its size limit");
        let prefix = if last { len | LAST_BIT } else { len };
        let mut frame = Vec::with_capacity(4 + plain.len());
        frame.extend_from_slice(&prefix.to_be_bytes());
        frame.extend_from_slice(&plain);
        frame
    }

    /// The plaintext of a parsed frame, or [`FormatError::Auth`].
    pub fn open(&self, frame: RawFrame) -> Result<Vec<u8>, FormatError> {
        let n = nonce(self.object_no, frame.index, frame.last);
        let mut body = Vec::from(frame.ciphertext);
        self.cipher
            .decrypt_in_place(Nonce::from_slice(&n), &self.aad, &mut body)
            .map_err(|_| FormatError::Auth {
                object: self.object_no,
                segment: frame.index,
            })?;
        Ok(body)
    }
}

/// One frame as read, not yet authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawFrame {
    /// Position of the frame in the object, counted by the parser (not stored).
    pub index: u64,
    /// The flag from the length prefix.
    pub last: bool,
    /// Ciphertext including the tag.
    pub ciphertext: Bytes,
}

/// What the parser found next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The object's header (always first, unless resumed).
    Header(ObjectHeader),
    /// The next frame.
    Frame(RawFrame),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Header,
    Frames,
    Done,
}

/// Incremental parser: feed bytes as they arrive, take whole frames out. Holds at most one
/// frame plus the last chunk pushed, so reading streams with bounded memory.
pub struct FrameParser {
    buf: BytesMut,
    object: u32,
    next_index: u64,
    state: State,
}

impl FrameParser {
    /// A parser for a whole object; `object` labels errors.
    pub fn new(object: u32) -> Self {
        Self {
            buf: BytesMut::new(),
            object,
            next_index: 0,
            state: State::Header,
        }
    }

    /// A parser that starts at the frame boundary of segment `index` (range reads: the caller
    /// got the header separately and fetches bytes from that frame's offset).
    pub fn resume(object: u32, index: u64) -> Self {
        Self {
            next_index: index,
            state: State::Frames,
            ..Self::new(object)
        }
    }

    /// Appends bytes read from storage.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next header or frame, `Ok(None)` when more bytes are needed (or the end was seen).
    pub fn next_event(&mut self) -> Result<Option<Event>, FormatError> {
        match self.state {
            State::Header => self.next_header(),
            State::Frames => self.next_frame(),
            State::Done if self.buf.is_empty() => Ok(None),
            State::Done => Err(FormatError::TrailingData {
                object: self.object,
            }),
        }
    }

    fn next_header(&mut self) -> Result<Option<Event>, FormatError> {
        let Some((header, used)) = ObjectHeader::parse(&self.buf, self.object)? else {
            return Ok(None);
        };
        self.buf.advance(used);
        self.state = State::Frames;
        Ok(Some(Event::Header(header)))
    }

    fn next_frame(&mut self) -> Result<Option<Event>, FormatError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let prefix = u32::from_be_bytes(self.buf[..4].try_into().expect("4 bytes"));
        let (last, len) = (prefix & LAST_BIT != 0, prefix & !LAST_BIT);
        let (object, segment) = (self.object, self.next_index);
        if len > MAX_FRAME_LEN {
            let (len, max) = (u64::from(len), u64::from(MAX_FRAME_LEN));
            return Err(FormatError::FrameTooLarge {
                object,
                segment,
                len,
                max,
            });
        }
        if (len as usize) < TAG_LEN {
            return Err(FormatError::Auth { object, segment });
        }
        if self.buf.len() < 4 + len as usize {
            return Ok(None);
        }
        self.buf.advance(4);
        let ciphertext = self.buf.split_to(len as usize).freeze();
        self.next_index += 1;
        if last {
            self.state = State::Done;
        }
        Ok(Some(Event::Frame(RawFrame {
            index: segment,
            last,
            ciphertext,
        })))
    }

    /// Call at the end of a range read: refuses a range that stops inside a frame.
    pub fn finish_range(&self) -> Result<(), FormatError> {
        match self.state {
            State::Frames if !self.buf.is_empty() => Err(FormatError::Truncated {
                object: self.object,
                segments: self.next_index,
            }),
            _ => self.finish_done_or_ok(),
        }
    }

    fn finish_done_or_ok(&self) -> Result<(), FormatError> {
        match self.state {
            State::Done if !self.buf.is_empty() => Err(FormatError::TrailingData {
                object: self.object,
            }),
            _ => Ok(()),
        }
    }

    /// Call at the end of the input: refuses a truncated object or trailing bytes.
    pub fn finish(&self) -> Result<(), FormatError> {
        match self.state {
            State::Done if self.buf.is_empty() => Ok(()),
            State::Done => Err(FormatError::TrailingData {
                object: self.object,
            }),
            State::Header if !self.buf.is_empty() => Err(FormatError::BadHeader {
                object: self.object,
                why: "object ends inside its header".into(),
            }),
            _ => Err(FormatError::Truncated {
                object: self.object,
                segments: self.next_index,
            }),
        }
    }
}
