//! A segment's plaintext codec: each segment is one complete gzip member, then one frame.
//!
//! Because every segment is a whole gzip member, the decrypted frames of an object, concatenated,
//! form a valid multi-member `.gz` file: `gunzip` restores the plain bytes (disaster recovery).

use std::io::{Read, Write};

use flate2::Compression;
use flate2::bufread::GzDecoder;
use flate2::write::GzEncoder;

use super::error::FormatError;
use super::frame::{FrameCipher, RawFrame};

/// Largest plain size a segment may decompress to; bounds memory against a broken writer.
pub const MAX_SEGMENT_PLAIN: usize = 64 << 20;

/// Compresses `plain` into one gzip member at `level` (0-9) and seals it as frame `index`.
pub fn encode_segment(
    cipher: &FrameCipher,
    index: u64,
    last: bool,
    plain: &[u8],
    level: u32,
) -> Vec<u8> {
    let out = Vec::with_capacity(plain.len() / 2 + 64);
    let mut gz = GzEncoder::new(out, Compression::new(level));
    gz.write_all(plain).expect("writing to a Vec cannot fail");
    let member = gz.finish().expect("writing to a Vec cannot fail");
    cipher.seal(index, last, member)
}

/// Authenticates, decrypts and decompresses one frame; refuses anything but exactly one gzip
/// member.
pub fn decode_segment(cipher: &FrameCipher, frame: RawFrame) -> Result<Vec<u8>, FormatError> {
    let segment = frame.index;
    let member = cipher.open(frame)?;
    let object = cipher.object_no();
    let bad = |why: String| FormatError::Decompress {
        object,
        segment,
        why,
    };
    let mut dec = GzDecoder::new(&member[..]);
    let mut plain = Vec::new();
    (&mut dec)
        .take(MAX_SEGMENT_PLAIN as u64 + 1)
        .read_to_end(&mut plain)
        .map_err(|e| bad(e.to_string()))?;
    if plain.len() > MAX_SEGMENT_PLAIN {
        return Err(bad(format!(
            "segment inflates beyond {MAX_SEGMENT_PLAIN} bytes"
        )));
    }
    if !dec.into_inner().is_empty() {
        return Err(bad("data after the gzip member".into()));
    }
    Ok(plain)
}
