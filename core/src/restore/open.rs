//! Reading a backup for restore. Everything that can be checked without touching the target is
//! checked here, first: the key unwraps, the manifest authenticates, every object is present at
//! its recorded size, and the small objects (schema, sequences) decrypt completely.
//!
//! ```text
//! KEY       -> data key (unknown or wrong master key: refuse, naming the key id)
//! MANIFEST  -> authenticated table of contents for this backup id
//! stat each object: present, stored size = manifest
//! 000001    -> schema archive in memory (DDL only), plain BLAKE3 checked
//! 000002    -> sequences JSON, plain BLAKE3 checked
//! ```
//! Table data is checked while it streams (frames authenticate, rows and plain BLAKE3 are
//! compared before each COPY ends); a failure there aborts the whole restore.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;

use super::RestoreError;
use crate::backup::BackupEnv;
use crate::backup::BackupId;
use crate::backup::run::{key_object, manifest_object};
use crate::format::manifest::ObjectKind;
use crate::format::reader::PlainStream;
use crate::format::{DataKey, KeyEnvelope, Manifest, ManifestObject, read_manifest, read_object};
use crate::storage::Storage;

/// Largest schema or sequences object held in memory.
const MAX_SMALL_OBJECT: u64 = 1 << 30;

/// A sequence and where it stood at the backup.
#[derive(Clone, Debug, Deserialize)]
pub struct SequenceEntry {
    pub schema: String,
    pub name: String,
    pub last_value: i64,
    pub is_called: bool,
    pub owned_by: Option<QualifiedName>,
}

/// `{schema, name}` as the backup writes it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct QualifiedName {
    pub schema: String,
    pub name: String,
}

/// The content of the sequences object.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct SequencesObject {
    #[serde(default)]
    pub sequences: Vec<SequenceEntry>,
    #[serde(default)]
    pub populated_matviews: Vec<QualifiedName>,
}

/// A backup ready to restore: its key, manifest, schema archive and sequence values.
pub struct OpenedBackup {
    pub id: BackupId,
    pub key: DataKey,
    pub manifest: Manifest,
    /// `pg_dump --schema-only -Fc` archive: DDL, no rows.
    pub schema: Bytes,
    pub sequences: SequencesObject,
    /// Where its objects are read from: the local copy, or Drive when that is gone.
    pub storage: Arc<dyn Storage>,
}

impl OpenedBackup {
    /// Reads and checks everything but table data (see the module docs). Any problem is a
    /// permanent error that names the object: nothing has been changed yet.
    #[tracing::instrument(skip_all, fields(backup_id = %id))]
    pub async fn open(env: &BackupEnv, id: &BackupId) -> Result<Self, RestoreError> {
        let refuse = |what: String, e: &dyn std::fmt::Display| {
            RestoreError::Permanent(format!("backup {id} cannot be restored: {what}: {e}"))
        };
        let uuid = id.format_uuid();
        let storage = env.storage_for(id).await?;
        let key_name = key_object(id);
        let envelope = read_small(&*storage, &key_name, 1 << 20)
            .await
            .map_err(|e| refuse(key_name.to_string(), &e))?;
        let key = KeyEnvelope::from_bytes(&envelope)
            .and_then(|e| e.unwrap(&env.keyring, uuid))
            .map_err(|e| refuse(key_name.to_string(), &e))?;
        let m_name = manifest_object(id);
        let stream = storage.get(&m_name).await?;
        let manifest = read_manifest(stream, &key, uuid)
            .await
            .map_err(|e| refuse(m_name.to_string(), &e))?;
        for o in &manifest.objects {
            let info = storage
                .stat(&o.name)
                .await
                .map_err(|e| refuse(o.name.to_string(), &e))?;
            if info.size != o.digest.stored_size {
                let e = format!(
                    "{} bytes stored, {} recorded",
                    info.size, o.digest.stored_size
                );
                return Err(refuse(o.name.to_string(), &e));
            }
        }
        let schema = read_kind(&*storage, &manifest, &key, ObjectKind::Schema).await?;
        let seq = read_kind(&*storage, &manifest, &key, ObjectKind::Sequences).await?;
        let sequences: SequencesObject =
            serde_json::from_slice(&seq).map_err(|e| refuse("the sequences object".into(), &e))?;
        Ok(Self {
            id: id.clone(),
            key,
            manifest,
            schema,
            sequences,
            storage,
        })
    }

    /// Streams the plain bytes of one object.
    pub async fn stream(
        &self,
        _env: &BackupEnv,
        o: &ManifestObject,
    ) -> Result<PlainStream, RestoreError> {
        let stored = self.storage.get(&o.name).await?;
        Ok(read_object(
            stored,
            &self.key,
            self.manifest.backup_id,
            o.object_no,
        ))
    }

    /// Writes the schema archive to a private temporary file (mode 0600, removed when the
    /// returned value drops): `pg_restore -j` needs a seekable file. It holds DDL only.
    pub fn schema_file(&self) -> Result<tempfile::NamedTempFile, RestoreError> {
        let io = |e: std::io::Error| {
            RestoreError::Transient(format!(
                "writing the schema archive to a temporary file: {e}"
            ))
        };
        let mut f = tempfile::Builder::new()
            .prefix("cellar-schema-")
            .tempfile()
            .map_err(io)?;
        f.write_all(&self.schema)
            .and_then(|_| f.flush())
            .map_err(io)?;
        Ok(f)
    }

    /// The table data objects, with the column list of their table (if the manifest has it).
    pub fn data_objects(&self) -> Vec<(&ManifestObject, Option<&[String]>)> {
        self.manifest
            .objects
            .iter()
            .filter(|o| o.kind == ObjectKind::TableData && o.table.is_some())
            .map(|o| {
                let t = o.table.as_ref().expect("filtered");
                let cols = self
                    .manifest
                    .tables
                    .iter()
                    .find(|m| m.schema == t.schema && m.name == t.name)
                    .and_then(|m| m.columns.as_deref());
                (o, cols)
            })
            .collect()
    }
}

/// Reads the one object of `kind` whole, checking its plain BLAKE3 against the manifest.
async fn read_kind(
    storage: &dyn Storage,
    m: &Manifest,
    key: &DataKey,
    kind: ObjectKind,
) -> Result<Bytes, RestoreError> {
    let o =
        m.objects.iter().find(|o| o.kind == kind).ok_or_else(|| {
            RestoreError::Permanent(format!("the manifest lists no {kind:?} object"))
        })?;
    if o.digest.plain_size > MAX_SMALL_OBJECT {
        return Err(RestoreError::Permanent(format!("{} is too large", o.name)));
    }
    let bad = |e: &dyn std::fmt::Display| {
        RestoreError::Permanent(format!("backup object {} cannot be restored: {e}", o.name))
    };
    let stored = storage.get(&o.name).await?;
    let mut plain = read_object(stored, key, m.backup_id, o.object_no);
    let mut buf = Vec::with_capacity(o.digest.plain_size as usize);
    while let Some(chunk) = plain.try_next().await.map_err(|e| bad(&e))? {
        buf.extend_from_slice(&chunk);
    }
    if blake3::hash(&buf).to_hex().as_str() != o.digest.plain_blake3 {
        return Err(bad(&"plain BLAKE3 differs from the manifest"));
    }
    Ok(buf.into())
}

async fn read_small(
    storage: &dyn Storage,
    key: &crate::storage::ObjectKey,
    limit: usize,
) -> Result<Bytes, RestoreError> {
    let mut s = storage.get(key).await?;
    let mut buf = Vec::new();
    while let Some(chunk) = s.next().await {
        buf.extend_from_slice(&chunk?);
        if buf.len() > limit {
            return Err(RestoreError::Permanent(format!(
                "{key} is larger than {limit} bytes"
            )));
        }
    }
    Ok(buf.into())
}
