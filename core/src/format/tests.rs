//! Object-level tests: round trips, and every way a stored object can be damaged.

use std::io::Read;

use futures::TryStreamExt;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use super::frame::{Event, FrameCipher, FrameParser};
use super::header::HEADER_LEN;
use super::testutil::{decode, encode, small_opts, stream_of, text};
use super::*;

/// Byte ranges of each frame (prefix included) in a stored object.
fn frame_spans(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut spans = Vec::new();
    let mut at = HEADER_LEN;
    while at < bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) & !(1 << 31);
        spans.push(at..at + 4 + len as usize);
        at += 4 + len as usize;
    }
    spans
}

async fn roundtrip(data: Vec<u8>, chunks: Vec<Vec<u8>>, seg: usize, want_segments: u64) {
    let (key, backup) = (DataKey::generate(), Uuid::new_v4());
    let (bytes, digest) = encode(&key, backup, 1, chunks, &small_opts(seg)).await;
    assert_eq!(decode(&bytes, &key, backup, 1).await.unwrap(), data);
    assert_eq!(digest.plain_size, data.len() as u64);
    assert_eq!(digest.plain_blake3, blake3::hash(&data).to_hex().as_str());
    assert_eq!(digest.stored_size, bytes.len() as u64);
    assert_eq!(digest.stored_blake3, blake3::hash(&bytes).to_hex().as_str());
    assert_eq!(digest.segments, want_segments);
    let verified = verify_object(stream_of(&bytes, 7), &key, backup, 1)
        .await
        .unwrap();
    assert_eq!(verified, digest);
}

#[tokio::test]
async fn roundtrips_edge_sizes() {
    roundtrip(vec![], vec![], 1000, 1).await;
    roundtrip(vec![], vec![vec![], vec![]], 1000, 1).await;
    roundtrip(vec![42], vec![vec![42]], 1000, 1).await;
    let one = text(1000, 1);
    roundtrip(one.clone(), vec![one.clone()], 1000, 1).await;
    let parts = vec![one[..400].to_vec(), one[400..].to_vec()];
    roundtrip(one.clone(), parts, 1000, 1).await;
    let more = text(1001, 2);
    roundtrip(more.clone(), vec![more], 1000, 2).await;
    let many = text(10_500, 3);
    roundtrip(many.clone(), vec![many.clone()], 1000, 11).await;
    // Segment-sized chunks, as a COPY lane sends them: each becomes a segment as it came.
    let exact: Vec<Vec<u8>> = many.chunks(1000).map(<[u8]>::to_vec).collect();
    roundtrip(many, exact, 1000, 11).await;
}

#[tokio::test]
async fn roundtrips_random_chunk_sizes() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for round in 0..20 {
        let data = text(rng.gen_range(0..50_000), round);
        let seg = rng.gen_range(1..5_000);
        let mut chunks = Vec::new();
        let mut rest = &data[..];
        while !rest.is_empty() {
            let n = rng.gen_range(0..=rest.len().min(9_000));
            chunks.push(rest[..n].to_vec());
            rest = &rest[n..];
        }
        let want = (data.len().max(1)).div_ceil(seg) as u64;
        roundtrip(data, chunks, seg, want).await;
    }
}

async fn sample() -> (DataKey, Uuid, Vec<u8>) {
    let (key, backup) = (DataKey::generate(), Uuid::new_v4());
    let (bytes, _) = encode(&key, backup, 1, vec![text(250, 9)], &small_opts(100)).await;
    (key, backup, bytes)
}

#[tokio::test]
async fn every_flipped_byte_is_detected() {
    let (key, backup, bytes) = sample().await;
    assert_eq!(frame_spans(&bytes).len(), 3);
    for i in 0..bytes.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = bytes.clone();
            bad[i] ^= bit;
            let res = decode(&bad, &key, backup, 1).await;
            assert!(res.is_err(), "flip {bit:#x} at byte {i} went unnoticed");
        }
    }
}

#[tokio::test]
async fn every_truncation_is_detected() {
    let (key, backup, bytes) = sample().await;
    let ends: Vec<usize> = frame_spans(&bytes).iter().map(|s| s.end).collect();
    for cut in 0..bytes.len() {
        let err = decode(&bytes[..cut], &key, backup, 1).await.unwrap_err();
        if cut == HEADER_LEN || ends.contains(&cut) {
            assert!(
                matches!(err, FormatError::Truncated { .. }),
                "cut {cut}: {err}"
            );
            assert!(err.to_string().contains("truncated"));
        }
    }
}

#[tokio::test]
async fn trailing_data_and_oversized_frames_are_refused() {
    let (key, backup, bytes) = sample().await;
    let span = frame_spans(&bytes)[1].clone();
    let mut extra = bytes.clone();
    extra.extend_from_slice(&bytes[span.clone()]);
    let err = decode(&extra, &key, backup, 1).await.unwrap_err();
    assert!(matches!(err, FormatError::TrailingData { .. }), "{err}");
    let mut huge = bytes.clone();
    huge[span.start..span.start + 4].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    let err = decode(&huge, &key, backup, 1).await.unwrap_err();
    assert!(
        matches!(err, FormatError::FrameTooLarge { segment: 1, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn swapped_frames_fail_authentication() {
    let (key, backup, bytes) = sample().await;
    let s = frame_spans(&bytes);
    let mut swapped = bytes[..HEADER_LEN].to_vec();
    swapped.extend_from_slice(&bytes[s[1].clone()]);
    swapped.extend_from_slice(&bytes[s[0].clone()]);
    swapped.extend_from_slice(&bytes[s[2].clone()]);
    let err = decode(&swapped, &key, backup, 1).await.unwrap_err();
    assert!(
        matches!(
            err,
            FormatError::Auth {
                object: 1,
                segment: 0
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("object 1 segment 0"));
}

#[tokio::test]
async fn frames_and_objects_cannot_move() {
    let (key, backup, one) = sample().await;
    let (two, _) = encode(&key, backup, 2, vec![text(250, 9)], &small_opts(100)).await;
    let (s1, s2) = (frame_spans(&one), frame_spans(&two));
    let mut spliced = one[..s1[0].end].to_vec();
    spliced.extend_from_slice(&two[s2[1].clone()]);
    spliced.extend_from_slice(&one[s1[2].clone()]);
    let err = decode(&spliced, &key, backup, 1).await.unwrap_err();
    assert!(matches!(err, FormatError::Auth { segment: 1, .. }), "{err}");
    let err = decode(&two, &key, backup, 1).await.unwrap_err();
    assert!(
        matches!(
            err,
            FormatError::WrongObject {
                found: 2,
                expected: 1
            }
        ),
        "{err}"
    );
    let err = decode(&one, &key, Uuid::new_v4(), 1).await.unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("belongs to backup {backup}")),
        "{err}"
    );
    // Same object number, same data, rewritten (a retry): still distinct keys via the salt.
    let (again, _) = encode(&key, backup, 1, vec![text(250, 9)], &small_opts(100)).await;
    assert_ne!(again[HEADER_LEN..], one[HEADER_LEN..]);
}

#[tokio::test]
async fn wrong_key_and_unknown_version_are_refused() {
    let (_, backup, bytes) = sample().await;
    let err = decode(&bytes, &DataKey::generate(), backup, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, FormatError::Auth { segment: 0, .. }), "{err}");
    let (key, _, mut newer) = sample().await;
    newer[7] = 9;
    let err = decode(&newer, &key, backup, 1).await.unwrap_err();
    assert!(err.to_string().contains("version 9 is newer"), "{err}");
}

#[tokio::test]
async fn a_range_of_segments_decodes_alone() {
    let (key, backup, data) = (DataKey::generate(), Uuid::new_v4(), text(1000, 4));
    let (bytes, _) = encode(&key, backup, 1, vec![data.clone()], &small_opts(100)).await;
    let header = match FrameParser::new(1).tap_header(&bytes) {
        Some(h) => h,
        None => panic!("no header"),
    };
    let spans = frame_spans(&bytes);
    let range = &bytes[spans[3].start..spans[5].end];
    let parts: Vec<_> = read_segments(stream_of(range, 33), &key, &header, 3)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(parts.concat(), &data[300..600]);
    let cut = &bytes[spans[3].start..spans[5].end - 1];
    let res: Result<Vec<_>, _> = read_segments(stream_of(cut, 33), &key, &header, 3)
        .try_collect()
        .await;
    assert!(matches!(res, Err(FormatError::Truncated { .. })), "{res:?}");
}

impl FrameParser {
    fn tap_header(mut self, bytes: &[u8]) -> Option<ObjectHeader> {
        self.push(bytes);
        match self.next_event().ok()?? {
            Event::Header(h) => Some(h),
            Event::Frame(_) => None,
        }
    }
}

#[tokio::test]
async fn decrypted_frames_form_a_gzip_file() {
    let (key, backup, data) = (DataKey::generate(), Uuid::new_v4(), text(5000, 5));
    let (bytes, _) = encode(&key, backup, 1, vec![data.clone()], &small_opts(1000)).await;
    let mut parser = FrameParser::new(1);
    parser.push(&bytes);
    let (mut cipher, mut gz) = (None, Vec::new());
    while let Some(ev) = parser.next_event().unwrap() {
        match ev {
            Event::Header(h) => cipher = Some(FrameCipher::new(&key, &h)),
            Event::Frame(f) => gz.extend(cipher.as_ref().unwrap().open(f).unwrap()),
        }
    }
    let mut plain = Vec::new();
    flate2::read::MultiGzDecoder::new(&gz[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, data);
}

#[tokio::test]
async fn bad_options_abort_the_writer() {
    let w = super::testutil::MemWriter::default();
    let (_tx, rx) = tokio::sync::mpsc::channel(1);
    let header = ObjectHeader::new(Uuid::new_v4(), 1, chrono::Utc::now());
    let opts = EncodeOptions {
        level: 10,
        ..small_opts(10)
    };
    let res = write_object(Box::new(w.clone()), &DataKey::generate(), header, rx, &opts).await;
    assert!(matches!(res, Err(FormatError::Options(_))));
    assert_eq!(
        *w.outcome.lock().unwrap(),
        super::testutil::Outcome::Aborted
    );
}

/// Not a check: prints write_object throughput. Run with
/// `cargo test -p cellar-core --release --lib format::tests::throughput -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn throughput() {
    let data = text(64 << 20, 11);
    for level in [1, 3, 6] {
        let opts = EncodeOptions {
            level,
            ..EncodeOptions::default()
        };
        let chunks: Vec<Vec<u8>> = data.chunks(1 << 20).map(<[u8]>::to_vec).collect();
        let (key, backup) = (DataKey::generate(), Uuid::new_v4());
        let start = std::time::Instant::now();
        let (bytes, d) = encode(&key, backup, 1, chunks, &opts).await;
        let secs = start.elapsed().as_secs_f64();
        let mb = d.plain_size as f64 / 1e6;
        let ratio = d.plain_size as f64 / d.stored_size as f64;
        println!(
            "level {level}: {:.0} MB/s, ratio {ratio:.1}, {} segments",
            mb / secs,
            d.segments
        );
        let start = std::time::Instant::now();
        verify_object(stream_of(&bytes, 1 << 20), &key, backup, 1)
            .await
            .unwrap();
        println!("  verify: {:.0} MB/s", mb / start.elapsed().as_secs_f64());
        let start = std::time::Instant::now();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        std::io::Write::write_all(&mut gz, &data).unwrap();
        gz.finish().unwrap();
        println!(
            "  baseline, one thread of plain gzip: {:.0} MB/s",
            mb / start.elapsed().as_secs_f64()
        );
    }
}

/// Not a check: prints the cost of each stage on one 16 MiB segment (shows that in the dev
/// profile AES-GCM, monomorphized into this opt-level-0 crate, dominates).
#[test]
#[ignore]
fn stage_costs() {
    let data = text(16 << 20, 3);
    let t = std::time::Instant::now();
    blake3::hash(&data);
    println!("blake3 {:?}", t.elapsed());
    let h = ObjectHeader::new(Uuid::new_v4(), 1, chrono::Utc::now());
    let c = FrameCipher::new(&DataKey::generate(), &h);
    let t = std::time::Instant::now();
    let f = c.seal(0, true, data.clone());
    println!("seal {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let _ = super::segment::encode_segment(&c, 0, true, &data, 1);
    println!("encode_segment l1 {:?}", t.elapsed());
    let mut p = FrameParser::resume(1, 0);
    p.push(&f);
    let t = std::time::Instant::now();
    if let Some(Event::Frame(fr)) = p.next_event().unwrap() {
        c.open(fr).unwrap();
    }
    println!("open {:?}", t.elapsed());
}
