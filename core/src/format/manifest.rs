//! The manifest: what a backup contains, written last as encrypted object number 0.
//!
//! A backup without a readable manifest is not a backup. The manifest is JSON inside the same
//! frame format as data, so table names, row counts and sizes are unreadable without the key,
//! and any change to it fails authentication.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::FORMAT_VERSION;
use super::error::FormatError;
use super::header::ObjectHeader;
use super::keys::DataKey;
use super::object::{EncodeOptions, ObjectDigest, write_object};
use super::reader::read_object;
use crate::storage::{ByteStream, ObjectKey, ObjectWriter};

/// Version of the manifest's JSON schema. Adding optional fields keeps it; anything an older
/// reader would misread bumps it.
pub const MANIFEST_VERSION: u64 = 1;
/// The manifest's object number (data objects start at 1).
pub const MANIFEST_OBJECT_NO: u32 = 0;
/// Largest manifest a reader accepts, so a broken one cannot exhaust memory.
pub const MAX_MANIFEST_LEN: usize = 256 << 20;

/// Where the backup came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSource {
    /// The configured source's name in Cellar.
    pub name: String,
    /// The database dumped.
    pub database: String,
    /// `server_version` of the PostgreSQL server, for restore compatibility checks.
    pub server_version: String,
}

/// What an object holds, so restore knows what to do with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// Schema DDL (pre- and post-data).
    Schema,
    /// COPY data of one table (or one part of it).
    TableData,
    /// Sequence values.
    Sequences,
    /// Other files (globals, large objects...).
    Files,
    /// Anything else.
    Other,
}

/// A table, by schema and name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRef {
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub name: String,
}

/// One stored object and everything needed to verify it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestObject {
    /// Storage name (opaque, e.g. `<backup>/data/000001`).
    pub name: ObjectKey,
    /// Object number in its header and nonces; unique within the backup, never 0.
    pub object_no: u32,
    /// What it holds.
    pub kind: ObjectKind,
    /// The table, for table data.
    pub table: Option<TableRef>,
    /// Rows in this object, for table data.
    pub rows: Option<u64>,
    /// Sizes, hashes and segment count, as written.
    #[serde(flatten)]
    pub digest: ObjectDigest,
}

/// One table of the backup, for listing and selective restore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestTable {
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub name: String,
    /// Rows dumped.
    pub rows: u64,
    /// The objects holding its data, in order.
    pub objects: Vec<ObjectKey>,
    /// The COPY column list of its data objects (non-generated columns in attnum order), so a
    /// restore into a table whose columns were reordered or added still lines values up.
    /// Absent in manifests written before it existed: restore then uses the target's columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
}

/// The backup's table of contents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`] when written.
    pub manifest_version: u64,
    /// [`FORMAT_VERSION`] of the objects.
    pub format_version: u16,
    /// The backup; must match the one the reader asked for.
    pub backup_id: Uuid,
    /// When the backup started (authenticated, unlike the `KEY` object's copy).
    pub created_at: DateTime<Utc>,
    /// e.g. `full`.
    pub backup_type: String,
    /// Where it came from.
    pub source: ManifestSource,
    /// The exported snapshot the dump ran in, if any.
    pub snapshot_id: Option<String>,
    /// Every object of the backup except `KEY` and the manifest itself.
    pub objects: Vec<ManifestObject>,
    /// Every table dumped.
    pub tables: Vec<ManifestTable>,
    /// Forward-compatible additions that do not warrant a version bump.
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Manifest {
    /// An empty manifest at the current versions.
    pub fn new(
        backup_id: Uuid,
        created_at: DateTime<Utc>,
        backup_type: &str,
        source: ManifestSource,
    ) -> Self {
        Self {
            manifest_version: MANIFEST_VERSION,
            format_version: FORMAT_VERSION,
            backup_id,
            created_at,
            backup_type: backup_type.to_string(),
            source,
            snapshot_id: None,
            objects: Vec::new(),
            tables: Vec::new(),
            extra: serde_json::Map::new(),
        }
    }

    /// Parses manifest JSON: checks the version before the shape (so a newer manifest gives
    /// "upgrade Cellar", not a JSON error), then that it belongs to `expected`.
    pub fn from_json(bytes: &[u8], expected: Uuid) -> Result<Self, FormatError> {
        let bad = |e: serde_json::Error| FormatError::Manifest(e.to_string());
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(bad)?;
        match value.get("manifest_version").and_then(|v| v.as_u64()) {
            Some(MANIFEST_VERSION) => {}
            Some(found) if found > MANIFEST_VERSION => {
                let supported = MANIFEST_VERSION;
                return Err(FormatError::ManifestVersion { found, supported });
            }
            _ => {
                return Err(FormatError::Manifest(
                    "missing or invalid manifest_version".into(),
                ));
            }
        }
        let m: Self = serde_json::from_value(value).map_err(bad)?;
        if m.backup_id != expected {
            return Err(FormatError::ManifestBackup {
                found: m.backup_id.to_string(),
                expected: expected.to_string(),
            });
        }
        Ok(m)
    }
}

/// Writes the manifest as encrypted object 0 (call it last: its presence marks the backup
/// complete).
pub async fn write_manifest(
    writer: Box<dyn ObjectWriter>,
    data_key: &DataKey,
    manifest: &Manifest,
    opts: &EncodeOptions,
) -> Result<ObjectDigest, FormatError> {
    let json = Bytes::from(serde_json::to_vec(manifest).expect("a manifest always serializes"));
    let header = ObjectHeader::new(manifest.backup_id, MANIFEST_OBJECT_NO, Utc::now());
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.try_send(json)
        .expect("a fresh channel has room for one item");
    drop(tx);
    write_object(writer, data_key, header, rx, opts).await
}

/// Reads, authenticates and parses a backup's manifest.
pub async fn read_manifest(
    stream: ByteStream,
    data_key: &DataKey,
    expected: Uuid,
) -> Result<Manifest, FormatError> {
    let mut plain = read_object(stream, data_key, expected, MANIFEST_OBJECT_NO);
    let mut json = Vec::new();
    while let Some(chunk) = plain.try_next().await? {
        if json.len() + chunk.len() > MAX_MANIFEST_LEN {
            return Err(FormatError::Manifest("larger than 256 MiB".into()));
        }
        json.extend_from_slice(&chunk);
    }
    Manifest::from_json(&json, expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::data_object_name;
    use crate::format::testutil::{MemWriter, small_opts, stream_of};

    fn sample(backup: Uuid) -> Manifest {
        let source = ManifestSource {
            name: "prod".into(),
            database: "shop".into(),
            server_version: "15.4".into(),
        };
        let mut m = Manifest::new(backup, Utc::now(), "full", source);
        let digest = ObjectDigest {
            plain_size: 10,
            plain_blake3: "ab".into(),
            stored_size: 99,
            stored_blake3: "cd".into(),
            segments: 1,
        };
        let name = data_object_name(backup, 1).unwrap();
        m.objects.push(ManifestObject {
            name: name.clone(),
            object_no: 1,
            kind: ObjectKind::TableData,
            table: Some(TableRef {
                schema: "public".into(),
                name: "secret_customers".into(),
            }),
            rows: Some(3),
            digest,
        });
        m.tables.push(ManifestTable {
            schema: "public".into(),
            name: "secret_customers".into(),
            rows: 3,
            objects: vec![name],
            columns: Some(vec!["id".into(), "e\"mail".into()]),
        });
        m.extra.insert("future".into(), serde_json::json!({"x": 1}));
        m
    }

    async fn stored(m: &Manifest, key: &DataKey) -> Vec<u8> {
        let w = MemWriter::default();
        write_manifest(Box::new(w.clone()), key, m, &small_opts(64))
            .await
            .unwrap();
        w.bytes.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn roundtrips_encrypted() {
        let (backup, key) = (Uuid::new_v4(), DataKey::generate());
        let m = sample(backup);
        let bytes = stored(&m, &key).await;
        assert!(
            !bytes.windows(6).any(|w| w == b"secret"),
            "table name readable in storage"
        );
        let back = read_manifest(stream_of(&bytes, 50), &key, backup)
            .await
            .unwrap();
        assert_eq!(back, m);
    }

    #[tokio::test]
    async fn tampering_and_other_backups_are_refused() {
        let (backup, key) = (Uuid::new_v4(), DataKey::generate());
        let mut bytes = stored(&sample(backup), &key).await;
        let other = Uuid::new_v4();
        let err = read_manifest(stream_of(&bytes, 50), &key, other)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("belongs to backup"), "{err}");
        // A byte inside the first frame's ciphertext (header, then the 4-byte length).
        bytes[crate::format::header::HEADER_LEN + 5] ^= 1;
        let err = read_manifest(stream_of(&bytes, 50), &key, backup)
            .await
            .unwrap_err();
        assert!(matches!(err, FormatError::Auth { object: 0, .. }), "{err}");
    }

    #[test]
    fn manifests_without_column_lists_still_read() {
        let backup = Uuid::new_v4();
        let mut v = serde_json::to_value(sample(backup)).unwrap();
        v["tables"][0].as_object_mut().unwrap().remove("columns");
        let m = Manifest::from_json(&serde_json::to_vec(&v).unwrap(), backup).unwrap();
        assert_eq!(m.tables[0].columns, None);
    }

    #[test]
    fn json_checks_backup_and_version() {
        let (backup, other) = (Uuid::new_v4(), Uuid::new_v4());
        let json = serde_json::to_vec(&sample(other)).unwrap();
        let err = Manifest::from_json(&json, backup).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("manifest belongs to backup {other}, not {backup}")
        );
        let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        v["manifest_version"] = 2.into();
        v["objects"] = "a new shape".into();
        let err = Manifest::from_json(&serde_json::to_vec(&v).unwrap(), other).unwrap_err();
        assert!(
            err.to_string().contains("manifest version 2 is newer"),
            "{err}"
        );
        v["manifest_version"] = serde_json::Value::Null;
        let err = Manifest::from_json(&serde_json::to_vec(&v).unwrap(), other).unwrap_err();
        assert!(err.to_string().contains("manifest_version"), "{err}");
    }
}
