//! The plain header at the start of every object.
//!
//! ```text
//! "CELLAR" | u16 BE format version | u16 BE body length (44 in v1) | body
//! body (v1) = backup id (16 bytes, UUID) | object number (u32 BE)
//!           | created at (i64 BE, microseconds since the Unix epoch) | salt (16 random bytes)
//! ```
//! Nothing secret: no table name, no size. The whole header is authenticated by every frame.

use chrono::{DateTime, SubsecRound, Utc};
use rand::RngCore;
use uuid::Uuid;

use super::FORMAT_VERSION;
use super::error::FormatError;

/// The six bytes every Cellar object starts with.
pub const MAGIC: &[u8; 6] = b"CELLAR";
/// Bytes before the body: magic, version, body length.
const PREFIX_LEN: usize = 10;
/// Length of a version 1 header body.
const BODY_LEN: usize = 44;
/// Total length of a version 1 header.
pub const HEADER_LEN: usize = PREFIX_LEN + BODY_LEN;

/// What an object says about itself, in the clear.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectHeader {
    /// The backup the object belongs to; a reader checks it against the one it expects.
    pub backup_id: Uuid,
    /// The object's number within its backup (0 = manifest); part of every nonce.
    pub object_no: u32,
    /// When the object was written (microsecond precision).
    pub created_at: DateTime<Utc>,
    /// Random per object: the per-object key is derived from the header, so two writes of the
    /// same object number (a retry) never reuse a key and nonce pair.
    pub salt: [u8; 16],
}

impl ObjectHeader {
    /// A header for a new object, with a fresh random salt.
    pub fn new(backup_id: Uuid, object_no: u32, created_at: DateTime<Utc>) -> Self {
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        Self {
            backup_id,
            object_no,
            created_at: created_at.trunc_subsecs(6),
            salt,
        }
    }

    /// The header's exact bytes (also the AAD of every frame).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER_LEN);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        b.extend_from_slice(&(BODY_LEN as u16).to_be_bytes());
        b.extend_from_slice(self.backup_id.as_bytes());
        b.extend_from_slice(&self.object_no.to_be_bytes());
        b.extend_from_slice(&self.created_at.timestamp_micros().to_be_bytes());
        b.extend_from_slice(&self.salt);
        b
    }

    /// Parses a header from the start of `buf`. `Ok(None)` means more bytes are needed;
    /// `object` only labels errors. Refuses bad magic, unknown versions and odd lengths.
    pub fn parse(buf: &[u8], object: u32) -> Result<Option<(Self, usize)>, FormatError> {
        let n = buf.len().min(MAGIC.len());
        if buf[..n] != MAGIC[..n] {
            return Err(FormatError::BadMagic { object });
        }
        if buf.len() < PREFIX_LEN {
            return Ok(None);
        }
        check_version(u16::from_be_bytes([buf[6], buf[7]]), object)?;
        let body_len = usize::from(u16::from_be_bytes([buf[8], buf[9]]));
        if body_len != BODY_LEN {
            let why = format!("header length {body_len}, expected {BODY_LEN}");
            return Err(FormatError::BadHeader { object, why });
        }
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        Ok(Some((
            parse_body(&buf[PREFIX_LEN..HEADER_LEN], object)?,
            HEADER_LEN,
        )))
    }
}

fn check_version(version: u16, object: u32) -> Result<(), FormatError> {
    match version {
        FORMAT_VERSION => Ok(()),
        0 => Err(FormatError::BadHeader {
            object,
            why: "format version 0 does not exist".into(),
        }),
        found => Err(FormatError::UnsupportedVersion {
            found,
            supported: FORMAT_VERSION,
        }),
    }
}

fn parse_body(body: &[u8], object: u32) -> Result<ObjectHeader, FormatError> {
    let backup_id = Uuid::from_slice(&body[0..16]).expect("16 bytes");
    let object_no = u32::from_be_bytes(body[16..20].try_into().expect("4 bytes"));
    let micros = i64::from_be_bytes(body[20..28].try_into().expect("8 bytes"));
    let created_at = DateTime::from_timestamp_micros(micros).ok_or(FormatError::BadHeader {
        object,
        why: "creation time out of range".into(),
    })?;
    let salt = body[28..44].try_into().expect("16 bytes");
    Ok(ObjectHeader {
        backup_id,
        object_no,
        created_at,
        salt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_incremental() {
        let h = ObjectHeader::new(Uuid::new_v4(), 7, Utc::now());
        let bytes = h.to_bytes();
        assert_eq!(bytes.len(), HEADER_LEN);
        for cut in 0..HEADER_LEN {
            assert!(
                ObjectHeader::parse(&bytes[..cut], 7).unwrap().is_none(),
                "cut {cut}"
            );
        }
        assert_eq!(
            ObjectHeader::parse(&bytes, 7).unwrap(),
            Some((h, HEADER_LEN))
        );
    }

    #[test]
    fn refuses_magic_version_and_length() {
        let mut b = ObjectHeader::new(Uuid::new_v4(), 1, Utc::now()).to_bytes();
        b[7] = 2;
        let msg = ObjectHeader::parse(&b, 1).unwrap_err().to_string();
        assert_eq!(
            msg,
            "backup format version 2 is newer than this Cellar supports (1): upgrade Cellar"
        );
        b[7] = 1;
        b[9] = 45;
        assert!(matches!(
            ObjectHeader::parse(&b, 1),
            Err(FormatError::BadHeader { .. })
        ));
        assert!(matches!(
            ObjectHeader::parse(b"PK\x03\x04", 1),
            Err(FormatError::BadMagic { .. })
        ));
    }
}
