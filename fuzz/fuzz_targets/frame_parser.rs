//! `FrameParser` on arbitrary bytes pushed in arbitrary chunks.
//!
//! Input: first byte = bit 7 resume mode (a range read starting at a frame boundary), bits 0-6
//! the chunking seed; the rest is the stored bytes. Checks, besides "no panic":
//! - every `Ok(Some(_))` consumes bytes (no hang), frames are numbered in order and within
//!   16..=MAX_FRAME_LEN (nothing allocated beyond the limit);
//! - the events and the outcome do not depend on how the bytes were split.
#![no_main]

use cellar_core::format::frame::{Event, FrameParser, MAX_FRAME_LEN, TAG_LEN};
use cellar_fuzz::{Splitter, seeds};
use libfuzzer_sys::fuzz_target;

/// What one parse produced: the events, then the error or the `finish` outcome.
#[derive(Debug, PartialEq)]
struct Trace {
    events: Vec<Event>,
    end: Result<(), String>,
}

fn parse(input: &[u8], resume: Option<u64>, seed: u8) -> Trace {
    let mut p = match resume {
        Some(first) => FrameParser::resume(1, first),
        None => FrameParser::new(1),
    };
    let (mut events, mut next_index) = (Vec::new(), resume.unwrap_or(0));
    for chunk in Splitter::new(seed).split(input) {
        p.push(chunk);
        loop {
            match p.next_event() {
                Ok(Some(ev)) => {
                    if let Event::Frame(f) = &ev {
                        let len = f.ciphertext.len();
                        assert!((TAG_LEN..=MAX_FRAME_LEN as usize).contains(&len), "{len}");
                        assert_eq!(f.index, next_index, "frames out of order");
                        next_index += 1;
                    }
                    events.push(ev);
                    // Each event takes at least 4 bytes: more events than that is a hang.
                    assert!(events.len() <= input.len() / 4 + 1, "parser does not progress");
                }
                Ok(None) => break,
                Err(e) => return Trace { events, end: Err(e.to_string()) },
            }
        }
    }
    let end = match resume {
        Some(_) => p.finish_range(),
        None => p.finish(),
    };
    Trace { events, end: end.map_err(|e| e.to_string()) }
}

fuzz_target!(
    init: seeds::write_if_asked("frame_parser"),
    |data: &[u8]| {
        let Some((&ctl, input)) = data.split_first() else { return };
        let resume = (ctl & 0x80 != 0).then_some(u64::from(ctl & 0x0f));
        let whole = parse(input, resume, 0);
        let chunked = parse(input, resume, ctl & 0x7f);
        assert_eq!(whole, chunked, "outcome depends on chunking");
    }
);
