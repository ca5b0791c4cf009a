//! A segment's plaintext codec: each segment is one complete gzip member, then one frame.
//!
//! Because every segment is a whole gzip member, the decrypted frames of an object, concatenated,
//! form a valid multi-member `.gz` file: `gunzip` restores the plain bytes (disaster recovery).

use std::cell::RefCell;
use std::io::Read;

use flate2::bufread::GzDecoder;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};

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
    cipher.seal(index, last, gzip_member(plain, level))
}

thread_local! {
    /// This thread's deflate state and its level, reset between segments. A new one per segment
    /// allocated and zeroed ~300 KiB of window and hash tables for every MiB compressed.
    static DEFLATE: RefCell<Option<(u32, Compress)>> = const { RefCell::new(None) };
}

/// One gzip member (RFC 1952) holding `plain`, from a reused raw-deflate state, framed as
/// flate2's `GzEncoder` frames it (header with MTIME 0, XFL from the level, OS 255; CRC-32 and
/// ISIZE after the deflate stream).
pub(crate) fn gzip_member(plain: &[u8], level: u32) -> Vec<u8> {
    let xfl = match level {
        9.. => 2,
        0 | 1 => 4,
        _ => 0,
    };
    let mut out = Vec::with_capacity(plain.len() / 2 + 64);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]);
    DEFLATE.with(|cell| {
        let mut cell = cell.borrow_mut();
        let deflate = match &mut *cell {
            Some((l, d)) if *l == level => {
                d.reset();
                d
            }
            slot => {
                &mut slot
                    .insert((level, Compress::new(Compression::new(level), false)))
                    .1
            }
        };
        let mut input = plain;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(4096));
            }
            let before = deflate.total_in();
            let status = deflate
                .compress_vec(input, &mut out, FlushCompress::Finish)
                .expect("deflating into a Vec cannot fail");
            input = &input[(deflate.total_in() - before) as usize..];
            if status == Status::StreamEnd {
                break;
            }
        }
    });
    let mut crc = Crc::new();
    crc.update(plain);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(plain.len() as u32).to_le_bytes());
    out
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;

    use super::*;

    fn flate2_member(plain: &[u8], level: u32) -> Vec<u8> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::new(level));
        gz.write_all(plain).unwrap();
        gz.finish().unwrap()
    }

    /// The reused deflate state writes what a fresh `GzEncoder` writes (the same header and
    /// trailer, no more bytes), segment after segment and across level changes on one thread,
    /// for empty, tiny, incompressible and large inputs (the last needs the output to grow).
    #[test]
    fn members_match_what_flate2_writes() {
        let mut noise = vec![0u8; 300_000];
        let mut x: u32 = 1;
        for b in noise.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        let text: Vec<u8> = (0..40_000)
            .flat_map(|i| format!("{i}\t{}\tsome text {}\n", i * 7, i % 13).into_bytes())
            .collect();
        let inputs: [&[u8]; 4] = [b"", b"a\n", &noise, &text];
        for level in [3, 3, 0, 1, 6, 9, 3] {
            for plain in inputs {
                let (ours, theirs) = (gzip_member(plain, level), flate2_member(plain, level));
                assert_eq!(ours[..10], theirs[..10], "header, level {level}");
                // Where stored blocks are cut (level 0, and level 1's quick strategy on
                // incompressible bytes) depends on the output room given; sizes do not move.
                let (a, b) = (ours.len(), theirs.len());
                assert!(
                    a <= b + b / 100 + 64,
                    "level {level}: {a} bytes, flate2 {b}"
                );
                assert_eq!(ours[a - 8..], theirs[b - 8..], "CRC-32 and ISIZE");
                let mut back = Vec::new();
                GzDecoder::new(&ours[..]).read_to_end(&mut back).unwrap();
                assert_eq!(back, plain);
            }
        }
    }
}
