//! The seed corpora: small valid inputs built with the real writer's pieces, so the fuzzer
//! starts past the header checks and authentication instead of having to guess them.
//!
//! Written by `scripts/fuzz seeds`, which runs each target with `CELLAR_FUZZ_WRITE_SEEDS` set
//! to the corpus directory: the target's init writes `<dir>/<target>/seed-*` and exits.

use std::path::Path;

use cellar_core::format::frame::{FrameCipher, RawFrame};
use cellar_core::format::manifest::{ManifestSource, ObjectKind, TableRef};
use cellar_core::format::segment::encode_segment;
use cellar_core::format::{
    KeyEnvelope, Manifest, ManifestObject, ManifestTable, ObjectDigest, data_object_name,
};
use chrono::DateTime;

use crate::{BACKUP_ID, OBJECT_NO, data_key, envelope_json, header, keyring, seal_object};

/// If `CELLAR_FUZZ_WRITE_SEEDS` names a directory, writes `target`'s seeds there and exits.
pub fn write_if_asked(target: &str) {
    let Some(dir) = std::env::var_os("CELLAR_FUZZ_WRITE_SEEDS") else {
        return;
    };
    let dir = Path::new(&dir).join(target);
    std::fs::create_dir_all(&dir).expect("create corpus dir");
    for (name, bytes) in for_target(target) {
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
    }
    std::process::exit(0);
}

/// Named seeds for one target.
pub fn for_target(target: &str) -> Vec<(&'static str, Vec<u8>)> {
    match target {
        "frame_parser" => frame_parser(),
        "object_reader" => object_reader(),
        "manifest_reader" => vec![("manifest", manifest_json())],
        "key_envelope" => vec![("fixed", envelope_json()), ("sealed", sealed_envelope())],
        other => panic!("no seeds for {other}"),
    }
}

/// Rows that compress like a COPY dump.
fn rows(n: usize, seed: usize) -> Vec<u8> {
    (0..n)
        .map(|i| format!("{}\tcustomer-{}\t{}.{:02}\n", i + seed, (i * 7919 + seed) % 997, i * 3, i % 100))
        .collect::<String>()
        .into_bytes()
}

fn prefixed(ctl: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![ctl];
    v.extend_from_slice(body);
    v
}

/// First byte: bit 7 = resume mode (frames only), bits 0-6 = chunking seed.
fn frame_parser() -> Vec<(&'static str, Vec<u8>)> {
    let (a, b) = (rows(20, 1), rows(5, 2));
    let multi = seal_object(OBJECT_NO, &[&a, &b, b""], true);
    let empty = seal_object(OBJECT_NO, &[b""], true);
    let frames = multi[cellar_core::format::header::HEADER_LEN..].to_vec();
    vec![
        ("multi-whole", prefixed(0, &multi)),
        ("multi-chunked", prefixed(0x17, &multi)),
        ("empty", prefixed(3, &empty)),
        ("truncated", prefixed(5, &multi[..multi.len() - 7])),
        ("resume", prefixed(0x80 | 9, &frames)),
    ]
}

/// First byte: bit 0 = build a sealed object from the rest, bit 1 = gzip its segments,
/// bits 2-7 = chunking seed. Sealed bodies are length-prefixed segments ([`crate::segments`]).
fn object_reader() -> Vec<(&'static str, Vec<u8>)> {
    let (a, b) = (rows(30, 3), rows(4, 4));
    let stored = seal_object(OBJECT_NO, &[&a, &b], true);
    let member = gzip_member(&rows(6, 5));
    let mut raw_members = vec![u8::try_from(member.len()).expect("small member")];
    raw_members.extend_from_slice(&member);
    raw_members.extend_from_slice(&[0]);
    vec![
        ("stored-whole", prefixed(0, &stored)),
        ("stored-chunked", prefixed(7 << 2, &stored)),
        ("sealed-gzip", prefixed(0b11 | 3 << 2, b"\x05hello\x03abc\x00")),
        ("sealed-members", prefixed(0b01, &raw_members)),
    ]
}

/// One gzip member as the writer makes it (sealed, then opened again).
fn gzip_member(plain: &[u8]) -> Vec<u8> {
    let cipher = FrameCipher::new(data_key(), &header(OBJECT_NO));
    let frame = encode_segment(&cipher, 0, true, plain, 6);
    let raw = RawFrame { index: 0, last: true, ciphertext: frame[4..].to_vec().into() };
    cipher.open(raw).expect("own frame opens")
}

fn manifest_json() -> Vec<u8> {
    let source = ManifestSource {
        name: "prod".into(),
        database: "shop".into(),
        server_version: "15.4".into(),
    };
    let created = DateTime::from_timestamp(1_714_528_800, 0).expect("in range");
    let mut m = Manifest::new(BACKUP_ID, created, "full", source);
    m.snapshot_id = Some("00000003-0000001B-1".into());
    let name = data_object_name(BACKUP_ID, 1).expect("valid name");
    let digest = ObjectDigest {
        plain_size: 15_728_640,
        plain_blake3: "ab".repeat(32),
        stored_size: 3_211_264,
        stored_blake3: "cd".repeat(32),
        segments: 4,
    };
    m.objects.push(ManifestObject {
        name: name.clone(),
        object_no: 1,
        kind: ObjectKind::TableData,
        table: Some(TableRef { schema: "public".into(), name: "customers".into() }),
        rows: Some(120_000),
        digest,
    });
    m.tables.push(ManifestTable {
        schema: "public".into(),
        name: "customers".into(),
        rows: 120_000,
        objects: vec![name],
        columns: Some(vec!["id".into(), "email".into()]),
    });
    m.extra.insert("future".into(), serde_json::json!({ "x": 1, "y": [true, null, 2.5] }));
    serde_json::to_vec_pretty(&m).expect("manifest serializes")
}

fn sealed_envelope() -> Vec<u8> {
    let created = DateTime::from_timestamp(1_714_528_800, 0).expect("in range");
    KeyEnvelope::seal(BACKUP_ID, created, data_key(), &keyring()).to_bytes()
}
