//! Master keys (the keyring from `CELLAR_ENCRYPTION_KEY`) and per-backup data keys.
//!
//! Envelope encryption: each backup gets a random [`DataKey`] that encrypts its objects; the data
//! key is stored wrapped by a master key from the [`KeyRing`] (see [`super::envelope`]). Rotating
//! a master key re-wraps one small object per backup and never touches the data.

use std::fmt;
use std::path::Path;

use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox};

use super::error::FormatError;

/// Length in bytes of every key (AES-256).
pub const KEY_LEN: usize = 32;
/// Longest accepted key id.
const MAX_ID_LEN: usize = 32;

/// 32 secret bytes, zeroed on drop, never printed.
type SecretKey = SecretBox<[u8; KEY_LEN]>;

fn secret_from(bytes: [u8; KEY_LEN]) -> SecretKey {
    SecretBox::new(Box::new(bytes))
}

fn random_key() -> SecretKey {
    let mut bytes = Box::new([0u8; KEY_LEN]);
    rand::rngs::OsRng.fill_bytes(&mut bytes[..]);
    SecretBox::new(bytes)
}

/// A named master key. The id is public (it is written in each backup's `KEY` object) so a
/// reader knows which key to use; the bytes are secret.
pub struct MasterKey {
    id: String,
    key: SecretKey,
}

impl MasterKey {
    /// The key's public id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The AES-256-GCM cipher for wrapping data keys.
    pub(crate) fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.key.expose_secret().into())
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({}, <redacted>)", self.id)
    }
}

/// The master keys Cellar knows: the first one wraps new backups, all of them can unwrap.
pub struct KeyRing {
    keys: Vec<MasterKey>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyRing[{}]", self.ids().join(", "))
    }
}

/// The id of a bare key: first 8 hex chars of BLAKE3("cellar key id" || key). Stable, so a
/// single-key setup can later be written as `ID:BASE64` without losing its old backups.
pub fn derived_key_id(key: &[u8; KEY_LEN]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"cellar key id");
    h.update(key);
    h.finalize().to_hex()[..8].to_string()
}

fn valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Decodes one base64 key. Errors name the entry's position, never its content.
fn decode_key(b64: &str, entry: usize) -> Result<[u8; KEY_LEN], FormatError> {
    let bytes = B64.decode(b64.trim()).map_err(|_| {
        FormatError::KeyConfig(format!("entry {entry}: the key is not valid base64"))
    })?;
    let len = bytes.len();
    <[u8; KEY_LEN]>::try_from(bytes).map_err(|_| {
        FormatError::KeyConfig(format!(
            "entry {entry}: the key decodes to {len} bytes, expected {KEY_LEN}"
        ))
    })
}

fn parse_entry(entry: &str, pos: usize) -> Result<MasterKey, FormatError> {
    let (id, key) = match entry.split_once(':') {
        Some((id, b64)) => {
            let id = id.trim();
            if !valid_id(id) {
                return Err(FormatError::KeyConfig(format!(
                    "entry {pos}: the key id must be 1 to {MAX_ID_LEN} of A-Z a-z 0-9 _ -"
                )));
            }
            (id.to_string(), decode_key(b64, pos)?)
        }
        None => {
            let key = decode_key(entry, pos)?;
            (derived_key_id(&key), key)
        }
    };
    Ok(MasterKey {
        id,
        key: secret_from(key),
    })
}

impl KeyRing {
    /// Parses `CELLAR_ENCRYPTION_KEY`: the base64 of 32 bytes, or comma-separated `ID:BASE64`
    /// entries (the first writes, all read). Errors never contain key material.
    pub fn parse(s: &str) -> Result<Self, FormatError> {
        if s.trim().is_empty() {
            return Err(FormatError::KeyConfig("no key given".into()));
        }
        let mut keys: Vec<MasterKey> = Vec::new();
        for (i, entry) in s.split(',').enumerate() {
            let pos = i + 1;
            if entry.trim().is_empty() {
                return Err(FormatError::KeyConfig(format!("entry {pos} is empty")));
            }
            let key = parse_entry(entry.trim(), pos)?;
            if keys.iter().any(|k| k.id == key.id) {
                return Err(FormatError::KeyConfig(format!(
                    "entry {pos}: duplicate key id {}",
                    key.id
                )));
            }
            keys.push(key);
        }
        Ok(Self { keys })
    }

    /// Reads `CELLAR_ENCRYPTION_KEY_FILE`: same syntax as [`KeyRing::parse`], surrounding
    /// whitespace and newlines ignored.
    pub fn from_file(path: &Path) -> Result<Self, FormatError> {
        let text = std::fs::read_to_string(path).map_err(|source| FormatError::KeyFile {
            path: path.display().to_string(),
            source,
        })?;
        let joined: Vec<&str> = text.split_whitespace().collect();
        Self::parse(&joined.join(""))
    }

    /// A new random key as `ID:BASE64` (id derived as for a bare key), for `cellar key
    /// generate`: usable alone, or prepended to an existing list to rotate.
    pub fn generate_entry() -> String {
        let key = random_key();
        let id = derived_key_id(key.expose_secret());
        format!("{id}:{}", B64.encode(key.expose_secret()))
    }

    /// The key that wraps new backups (the first entry).
    pub fn writing_key(&self) -> &MasterKey {
        &self.keys[0]
    }

    /// The key with this id, if known.
    pub fn get(&self, id: &str) -> Option<&MasterKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Every known id, writing key first (for error messages and `cellar key list`).
    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.id.clone()).collect()
    }
}

/// The random per-backup key that encrypts every object of one backup.
pub struct DataKey(SecretKey);

impl DataKey {
    /// A fresh random data key for a new backup.
    pub fn generate() -> Self {
        Self(random_key())
    }

    pub(crate) fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(secret_from(bytes))
    }

    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        self.0.expose_secret()
    }
}

impl Clone for DataKey {
    fn clone(&self) -> Self {
        Self::from_bytes(*self.expose())
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: [u8; 32] = [7u8; 32];
    const K2: [u8; 32] = [9u8; 32];

    fn b64(k: &[u8]) -> String {
        B64.encode(k)
    }

    #[test]
    fn single_key_gets_derived_id() {
        let ring = KeyRing::parse(&b64(&K1)).unwrap();
        assert_eq!(ring.ids(), vec![derived_key_id(&K1)]);
        assert_eq!(ring.writing_key().id().len(), 8);
    }

    #[test]
    fn list_first_writes_all_read() {
        let s = format!("new:{}, old-1:{}", b64(&K2), b64(&K1));
        let ring = KeyRing::parse(&s).unwrap();
        assert_eq!(ring.writing_key().id(), "new");
        assert!(ring.get("old-1").is_some());
        assert!(ring.get("nope").is_none());
    }

    #[test]
    fn generated_entry_parses_and_keeps_derived_id() {
        let e = KeyRing::generate_entry();
        let ring = KeyRing::parse(&e).unwrap();
        let bare = KeyRing::parse(e.split_once(':').unwrap().1).unwrap();
        assert_eq!(ring.ids(), bare.ids());
        assert_ne!(KeyRing::generate_entry(), e);
    }

    fn err_of(s: &str) -> String {
        KeyRing::parse(s).unwrap_err().to_string()
    }

    #[test]
    fn parse_errors_are_clear_and_leak_nothing() {
        let short = b64(&[5u8; 16]);
        let cases = [
            ("", "no key"),
            ("  ", "no key"),
            ("!!notbase64!!", "not valid base64"),
            (short.as_str(), "16 bytes, expected 32"),
        ];
        for (input, want) in cases {
            let msg = err_of(input);
            assert!(msg.contains(want), "{input:?}: {msg}");
        }
        let dup = format!("a:{},a:{}", b64(&K1), b64(&K2));
        assert!(err_of(&dup).contains("duplicate key id a"));
        let empty = format!("a:{},", b64(&K1));
        assert!(err_of(&empty).contains("entry 2 is empty"));
        let bad_id = format!("bad id!:{}", b64(&K1));
        assert!(err_of(&bad_id).contains("key id must be"));
        for input in [&short, &dup, &empty, &bad_id] {
            let msg = err_of(input);
            for secret in [b64(&K1), b64(&K2), short.clone()] {
                assert!(!msg.contains(&secret), "leaked key in {msg}");
            }
        }
    }

    #[test]
    fn debug_never_prints_key_bytes() {
        let ring = KeyRing::parse(&format!("a:{}", b64(&K1))).unwrap();
        let shown = format!(
            "{ring:?} {:?} {:?}",
            ring.writing_key(),
            DataKey::generate()
        );
        assert!(
            !shown.contains(&b64(&K1)) && !shown.contains("7, 7"),
            "{shown}"
        );
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn from_file_ignores_newlines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, format!("a:{},\nb:{}\n", b64(&K1), b64(&K2))).unwrap();
        assert_eq!(KeyRing::from_file(&path).unwrap().ids(), vec!["a", "b"]);
        let missing = KeyRing::from_file(&dir.path().join("nope")).unwrap_err();
        assert!(missing.to_string().contains("CELLAR_ENCRYPTION_KEY_FILE"));
    }
}
