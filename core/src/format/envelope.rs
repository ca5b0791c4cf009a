//! The `KEY` object: a backup's data key, wrapped by one or more master keys.
//!
//! A small plain JSON document, so an operator can see which master key a backup needs
//! (`key_id`) without holding it. Each wrap is AES-256-GCM under a master key with a random
//! nonce and an AAD that binds the format version, the backup id and the key id, so a wrap
//! cannot be moved to another backup or relabelled with another key id.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{AeadCore, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::FORMAT_VERSION;
use super::error::FormatError;
use super::keys::{DataKey, KEY_LEN, KeyRing, MasterKey};

/// The data key wrapped under one master key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// Id of the master key that wrapped it (public; tells the reader which key to use).
    pub key_id: String,
    /// Base64 of the 12-byte random nonce.
    pub nonce: String,
    /// Base64 of the 32-byte data key encrypted with AES-256-GCM, plus the 16-byte tag.
    pub ciphertext: String,
}

/// The content of a backup's `KEY` object. Plain by design: holds nothing secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEnvelope {
    /// Backup format version ([`FORMAT_VERSION`]); a reader refuses a newer one.
    pub format: u16,
    /// The backup this data key belongs to (authenticated through the AAD).
    pub backup_id: Uuid,
    /// When the backup was created (informational; the manifest holds the authenticated time).
    pub created_at: DateTime<Utc>,
    /// One or more wraps of the same data key; [`KeyEnvelope::rewrap`] leaves exactly one.
    pub wrapped: Vec<WrappedKey>,
}

/// AAD of a wrap: `"cellar key wrap" || u16 BE format || 16-byte backup id || key id`.
fn wrap_aad(format: u16, backup_id: Uuid, key_id: &str) -> Vec<u8> {
    let mut aad = b"cellar key wrap".to_vec();
    aad.extend_from_slice(&format.to_be_bytes());
    aad.extend_from_slice(backup_id.as_bytes());
    aad.extend_from_slice(key_id.as_bytes());
    aad
}

fn wrap(master: &MasterKey, backup_id: Uuid, data_key: &DataKey) -> WrappedKey {
    let nonce = aes_gcm::Aes256Gcm::generate_nonce(&mut rand::rngs::OsRng);
    let aad = wrap_aad(FORMAT_VERSION, backup_id, master.id());
    let payload = Payload {
        msg: &data_key.expose()[..],
        aad: &aad,
    };
    let ciphertext = master
        .cipher()
        .encrypt(&nonce, payload)
        .expect("AES-GCM encryption of 32 bytes cannot fail");
    WrappedKey {
        key_id: master.id().to_string(),
        nonce: B64.encode(nonce),
        ciphertext: B64.encode(ciphertext),
    }
}

fn unwrap_one(
    master: &MasterKey,
    env: &KeyEnvelope,
    w: &WrappedKey,
) -> Result<DataKey, FormatError> {
    let bad = |what: &str| FormatError::Envelope(format!("wrap for key id {}: {what}", w.key_id));
    let nonce = B64
        .decode(&w.nonce)
        .map_err(|_| bad("nonce is not base64"))?;
    if nonce.len() != 12 {
        return Err(bad("nonce is not 12 bytes"));
    }
    let ct = B64
        .decode(&w.ciphertext)
        .map_err(|_| bad("ciphertext is not base64"))?;
    let aad = wrap_aad(env.format, env.backup_id, &w.key_id);
    let payload = Payload {
        msg: &ct,
        aad: &aad,
    };
    let plain = master
        .cipher()
        .decrypt(Nonce::from_slice(&nonce), payload)
        .map_err(|_| FormatError::WrongKey {
            id: w.key_id.clone(),
        })?;
    let bytes = <[u8; KEY_LEN]>::try_from(plain).map_err(|_| bad("data key is not 32 bytes"))?;
    Ok(DataKey::from_bytes(bytes))
}

impl KeyEnvelope {
    /// Wraps a new backup's data key under the keyring's writing key.
    pub fn seal(
        backup_id: Uuid,
        created_at: DateTime<Utc>,
        data_key: &DataKey,
        ring: &KeyRing,
    ) -> Self {
        Self {
            format: FORMAT_VERSION,
            backup_id,
            created_at,
            wrapped: vec![wrap(ring.writing_key(), backup_id, data_key)],
        }
    }

    /// Recovers the data key with whichever known master key wrapped it, after checking the
    /// envelope's version and that it belongs to `expected_backup`.
    pub fn unwrap(&self, ring: &KeyRing, expected_backup: Uuid) -> Result<DataKey, FormatError> {
        if self.format != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion {
                found: self.format,
                supported: FORMAT_VERSION,
            });
        }
        if self.backup_id != expected_backup {
            return Err(FormatError::Envelope(format!(
                "belongs to backup {}, not {expected_backup}",
                self.backup_id
            )));
        }
        let known = self
            .wrapped
            .iter()
            .find_map(|w| Some((ring.get(&w.key_id)?, w)));
        match known {
            Some((master, w)) => unwrap_one(master, self, w),
            None => Err(FormatError::UnknownKeyId {
                id: self.key_ids().join(", "),
                known: ring.ids().join(", "),
            }),
        }
    }

    /// Key rotation: the same data key, wrapped under the keyring's writing key only. The data
    /// objects are untouched; the caller replaces the `KEY` object with the result.
    pub fn rewrap(&self, ring: &KeyRing) -> Result<Self, FormatError> {
        let data_key = self.unwrap(ring, self.backup_id)?;
        Ok(Self {
            wrapped: vec![wrap(ring.writing_key(), self.backup_id, &data_key)],
            ..self.clone()
        })
    }

    /// Ids of the master keys that wrapped this data key.
    pub fn key_ids(&self) -> Vec<String> {
        self.wrapped.iter().map(|w| w.key_id.clone()).collect()
    }

    /// The `KEY` object's bytes (pretty JSON, for operators).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("serializing a KeyEnvelope cannot fail")
    }

    /// Parses a `KEY` object. Checks the version before the shape, so a newer format gives
    /// the "upgrade Cellar" error rather than a JSON one.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        let bad = |e: serde_json::Error| FormatError::Envelope(format!("not valid JSON: {e}"));
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(bad)?;
        let format = value.get("format").and_then(|v| v.as_u64());
        match format {
            Some(f) if f == u64::from(FORMAT_VERSION) => serde_json::from_value(value).map_err(bad),
            Some(f) => Err(FormatError::UnsupportedVersion {
                found: u16::try_from(f).unwrap_or(u16::MAX),
                supported: FORMAT_VERSION,
            }),
            None => Err(FormatError::Envelope("missing \"format\"".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(s: &str) -> KeyRing {
        let k = |b: u8| B64.encode([b; 32]);
        let spec = s
            .replace("K1", &k(1))
            .replace("K2", &k(2))
            .replace("K3", &k(3));
        KeyRing::parse(&spec).unwrap()
    }

    fn sealed() -> (Uuid, DataKey, KeyEnvelope) {
        let id = Uuid::new_v4();
        let dk = DataKey::generate();
        let env = KeyEnvelope::seal(id, Utc::now(), &dk, &ring("a:K1"));
        (id, dk, env)
    }

    #[test]
    fn seal_then_unwrap_roundtrips_through_bytes() {
        let (id, dk, env) = sealed();
        let back = KeyEnvelope::from_bytes(&env.to_bytes()).unwrap();
        assert_eq!(back, env);
        let got = back.unwrap(&ring("b:K2,a:K1"), id).unwrap();
        assert_eq!(got.expose(), dk.expose());
    }

    #[test]
    fn unknown_key_id_names_both_sides() {
        let (id, _, env) = sealed();
        let msg = env.unwrap(&ring("b:K2,c:K3"), id).unwrap_err().to_string();
        assert_eq!(
            msg,
            "key id a is not in CELLAR_ENCRYPTION_KEY (known: b, c)"
        );
    }

    #[test]
    fn wrong_key_with_right_id_fails_to_authenticate() {
        let (id, _, env) = sealed();
        let err = env.unwrap(&ring("a:K2"), id).unwrap_err();
        assert!(matches!(err, FormatError::WrongKey { .. }), "{err}");
        assert!(err.to_string().starts_with("wrong key"));
    }

    #[test]
    fn envelope_bound_to_its_backup_and_key_id() {
        let (id, _, mut env) = sealed();
        assert!(env.unwrap(&ring("a:K1"), Uuid::new_v4()).is_err());
        env.backup_id = Uuid::new_v4();
        let other = env.backup_id;
        assert!(matches!(
            env.unwrap(&ring("a:K1"), other),
            Err(FormatError::WrongKey { .. })
        ));
        env.backup_id = id;
        env.wrapped[0].key_id = "z".into();
        assert!(env.unwrap(&ring("z:K1"), id).is_err());
    }

    #[test]
    fn rewrap_moves_to_new_key_and_keeps_data_key() {
        let (id, dk, env) = sealed();
        let rotated = env.rewrap(&ring("new:K2,a:K1")).unwrap();
        assert_eq!(rotated.key_ids(), vec!["new"]);
        let got = rotated.unwrap(&ring("new:K2"), id).unwrap();
        assert_eq!(got.expose(), dk.expose());
        assert!(rotated.unwrap(&ring("a:K1"), id).is_err());
    }

    #[test]
    fn newer_format_is_refused_clearly() {
        let (_, _, env) = sealed();
        let mut v: serde_json::Value = serde_json::from_slice(&env.to_bytes()).unwrap();
        v["format"] = 2.into();
        v["wrapped"] = "changed shape".into();
        let err = KeyEnvelope::from_bytes(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(err.to_string().contains("upgrade Cellar"), "{err}");
    }
}
