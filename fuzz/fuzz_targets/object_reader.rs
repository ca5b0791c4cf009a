//! `read_object` on a stored object, through a chunked storage stream.
//!
//! Input: first byte = bit 0 "sealed" (build a valid object whose frames hold the rest, cut by
//! `cellar_fuzz::segments`; otherwise the rest is the stored object as is), bit 1 gzip the
//! sealed segments (otherwise the gzip decoder gets them raw), bits 2-7 the chunking seed.
//! Checks: no panic, the stream ends after its first error, segments stay under the plain
//! limit, a sealed+gzip object reads back exactly, and an empty (non-gzip) segment is refused.
#![no_main]

use cellar_core::format::read_object;
use cellar_core::format::segment::MAX_SEGMENT_PLAIN;
use cellar_fuzz::{BACKUP_ID, OBJECT_NO, data_key, runtime, seal_object, seeds, segments, stream_of};
use futures::StreamExt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: seeds::write_if_asked("object_reader"),
    |data: &[u8]| {
        let Some((&ctl, rest)) = data.split_first() else { return };
        let (sealed, gzip, seed) = (ctl & 1 != 0, ctl & 2 != 0, ctl >> 2);
        let segs = segments(rest);
        let stored = if sealed { seal_object(OBJECT_NO, &segs, gzip) } else { rest.to_vec() };
        let (plain, failed) = runtime().block_on(async {
            let mut s = read_object(stream_of(&stored, seed), data_key(), BACKUP_ID, OBJECT_NO);
            let mut plain = Vec::new();
            while let Some(item) = s.next().await {
                match item {
                    Ok(b) => {
                        assert!(b.len() <= MAX_SEGMENT_PLAIN);
                        plain.extend_from_slice(&b);
                    }
                    Err(_) => {
                        assert!(s.next().await.is_none(), "stream goes on after an error");
                        return (plain, true);
                    }
                }
            }
            (plain, false)
        });
        if sealed && gzip && !segs.is_empty() {
            assert!(!failed, "a valid object failed to read");
            assert_eq!(plain, segs.concat(), "plain bytes differ");
        }
        if sealed && !gzip && segs.iter().any(|s| s.is_empty()) {
            assert!(failed, "an empty frame plaintext (not a gzip member) was accepted");
        }
    }
);
