//! `KEY` objects: `KeyEnvelope::from_bytes`, then `unwrap` with the fixed keyring (for the
//! fixed backup and for the backup the envelope names). Checks: no panic, an accepted envelope
//! survives a write/read round trip, and one that unwraps can be rotated and still unwraps.
#![no_main]

use cellar_core::format::KeyEnvelope;
use cellar_fuzz::{BACKUP_ID, keyring, seeds};
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: seeds::write_if_asked("key_envelope"),
    |data: &[u8]| {
        let Ok(env) = KeyEnvelope::from_bytes(data) else { return };
        let ring = keyring();
        let _ = env.unwrap(&ring, BACKUP_ID);
        if env.unwrap(&ring, env.backup_id).is_ok() {
            let rotated = env.rewrap(&ring).expect("an envelope that unwraps can be rotated");
            rotated.unwrap(&ring, env.backup_id).expect("a rotated envelope unwraps");
        }
        let back = KeyEnvelope::from_bytes(&env.to_bytes()).expect("own output parses");
        assert_eq!(back, env, "envelope changed in a round trip");
    }
);
