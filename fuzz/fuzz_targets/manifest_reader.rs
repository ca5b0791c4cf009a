//! Manifest JSON, parsed directly and read through a valid encryption (object 0), so the JSON
//! parser behind authentication sees arbitrary bytes too. Checks: no panic, both paths agree,
//! and an accepted manifest survives a write/read round trip unchanged.
#![no_main]

use cellar_core::format::manifest::MANIFEST_OBJECT_NO;
use cellar_core::format::{Manifest, read_manifest};
use cellar_fuzz::{BACKUP_ID, data_key, runtime, seal_object, seeds, stream_of};
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: seeds::write_if_asked("manifest_reader"),
    |data: &[u8]| {
        let direct = Manifest::from_json(data, BACKUP_ID);
        let stored = seal_object(MANIFEST_OBJECT_NO, &[data], true);
        let stream = stream_of(&stored, data.len() as u8);
        let read = runtime().block_on(read_manifest(stream, data_key(), BACKUP_ID));
        match (&direct, &read) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            _ => panic!("direct {direct:?} but encrypted {read:?}"),
        }
        if let Ok(m) = direct {
            let json = serde_json::to_vec(&m).expect("a manifest serializes");
            let back = Manifest::from_json(&json, BACKUP_ID).expect("own output parses");
            assert_eq!(back, m, "manifest changed in a round trip");
        }
    }
);
