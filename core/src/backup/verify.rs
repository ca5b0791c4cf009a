//! Verifying a backup: re-read every stored object and prove it is what the manifest says.
//!
//! ```text
//! storage  = the local copy, or Drive when only Drive has it (BackupEnv::storage_for)
//! KEY      -> unwrap the data key (wrong or unknown master key: invalid, named)
//! MANIFEST -> authenticate and parse (belongs to this backup, known version)
//! for each object in the manifest:
//!     stat: stored size matches
//!     stream: stored BLAKE3 and size; every frame authenticates (nothing missing, reordered,
//!             truncated or appended); decompress; plain BLAKE3 and size; rows = lines
//!             (DRILL: also each table's row fingerprint, see `fingerprint`)
//! DRILL, when all of that passed: crate::restore::drill (restore into a scratch database and
//!             compare every table with the fingerprints; drop the scratch database)
//! ```
//! The result is stored on the backup row and returned: valid/invalid, a summary, and for an
//! invalid backup which object failed and how.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::fingerprint::{Fingerprint, LineFolder};
use super::run::{key_object, manifest_object};
use super::{BackupEnv, BackupError, BackupId, Progress, ProgressReport, catalog};
use crate::format::manifest::{ObjectKind, TableRef};
use crate::format::{DataKey, KeyEnvelope, Manifest, ManifestObject, read_manifest, read_object};
use crate::storage::{ObjectKey, Storage};

/// One object that did not verify.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Failure {
    /// The object's storage name.
    pub object: String,
    /// What was wrong.
    pub error: String,
}

/// The outcome, as stored in `backup.verification` (the seed's shape).
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// `valid` or `invalid`.
    pub status: String,
    /// `quick`, `deep` (every byte read, decrypted and decompressed) or `drill`.
    pub level: String,
    /// Totals from the manifest, as checked.
    pub summary: Summary,
    /// Objects checked.
    pub objects_checked: usize,
    /// What failed, if anything.
    pub failures: Vec<Failure>,
    /// What the restore drill compared (DRILL only, when the bytes verified).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillReport>,
}

/// What a restore drill did.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DrillReport {
    /// Tables whose rows and fingerprint were compared.
    pub tables_compared: u64,
    /// Rows compared, over all tables.
    pub rows_compared: u64,
    /// Seconds from the start of the restore to the end of the comparison.
    pub seconds: f64,
}

/// Totals of a verified backup.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub total_records: u64,
    pub tables_with_data: u64,
    pub total_tables: u64,
}

impl Verification {
    fn invalid(object: &ObjectKey, error: impl ToString) -> Self {
        Self {
            status: "invalid".into(),
            level: "deep".into(),
            summary: Summary::default(),
            objects_checked: 0,
            failures: vec![Failure {
                object: object.to_string(),
                error: error.to_string(),
            }],
            drill: None,
        }
    }

    /// True when every check passed.
    pub fn is_valid(&self) -> bool {
        self.status == "valid"
    }
}

/// How thoroughly to verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// KEY and MANIFEST authenticate; every object exists with its recorded size. Seconds.
    Quick,
    /// Every byte of every object re-read, authenticated, decompressed and counted.
    Deep,
    /// Deep, then a restore into a scratch database on the source's server, every table's row
    /// count and row fingerprint compared with the backup's, the scratch database dropped.
    Drill,
}

/// Per-table fingerprints of the backup's data, gathered by a deep pass for a drill.
pub type TablePrints = Vec<(TableRef, Fingerprint)>;

/// Verifies backup `id` deeply and records the result on its row.
pub async fn verify(
    env: &BackupEnv,
    id: &BackupId,
    progress: &dyn Progress,
) -> Result<Verification, BackupError> {
    verify_at(env, id, Level::Deep, progress).await
}

/// Verifies backup `id` at `level` and records the result on its row.
pub async fn verify_at(
    env: &BackupEnv,
    id: &BackupId,
    level: Level,
    progress: &dyn Progress,
) -> Result<Verification, BackupError> {
    verify_with(env, id, level, progress, &CancellationToken::new()).await
}

/// [`verify_at`], stopping with [`BackupError::Cancelled`] when `cancel` fires during a drill
/// (whose scratch database, named by `crate::restore::drill::scratch_name`, is dropped first).
#[tracing::instrument(skip_all, fields(backup_id = %id, ?level))]
pub async fn verify_with(
    env: &BackupEnv,
    id: &BackupId,
    level: Level,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<Verification, BackupError> {
    let (mut v, prints) = check(env, id, level, progress).await?;
    if level == Level::Drill && v.is_valid() {
        v = crate::restore::drill::run(env, id, prints, v, progress, cancel).await?;
    }
    let json = serde_json::to_value(&v).expect("verification serializes");
    catalog::set_verification(&env.pool, id, &json).await?;
    if !v.is_valid() {
        tracing::error!(failures = ?v.failures, "backup is INVALID");
    }
    Ok(v)
}

async fn read_all(storage: &dyn Storage, key: &ObjectKey, limit: usize) -> Result<Bytes, String> {
    let mut s = storage.get(key).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    while let Some(chunk) = s.next().await {
        buf.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
        if buf.len() > limit {
            return Err(format!("larger than {limit} bytes"));
        }
    }
    Ok(buf.into())
}

async fn check(
    env: &BackupEnv,
    id: &BackupId,
    level: Level,
    progress: &dyn Progress,
) -> Result<(Verification, TablePrints), BackupError> {
    let uuid = id.format_uuid();
    let storage = env.storage_for(id).await?;
    let storage = &*storage;
    let key_name = key_object(id);
    let envelope = match read_all(storage, &key_name, 1 << 20).await {
        Ok(b) => KeyEnvelope::from_bytes(&b).map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    let data_key =
        match envelope.and_then(|e| e.unwrap(&env.keyring, uuid).map_err(|e| e.to_string())) {
            Ok(k) => k,
            Err(e) => return Ok((Verification::invalid(&key_name, e), Vec::new())),
        };
    let m_name = manifest_object(id);
    let manifest = match storage.get(&m_name).await {
        Ok(s) => read_manifest(s, &data_key, uuid)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let manifest = match manifest {
        Ok(m) => m,
        Err(e) => return Ok((Verification::invalid(&m_name, e), Vec::new())),
    };
    Ok(check_objects(storage, &manifest, &data_key, level, progress).await)
}

async fn check_objects(
    storage: &dyn Storage,
    m: &Manifest,
    key: &DataKey,
    level: Level,
    progress: &dyn Progress,
) -> (Verification, TablePrints) {
    let total: u64 = m.objects.iter().map(|o| o.digest.stored_size).sum();
    let start = std::time::Instant::now();
    let mut failures = Vec::new();
    let mut prints: TablePrints = Vec::new();
    let mut done = 0u64;
    // Objects are checked a few at a time (each one's segments decode on the blocking pool),
    // results taken in manifest order. A plain loop over FuturesOrdered, not a stream
    // combinator: closures returning borrowing futures defeat the `Send` proof of the job.
    let mut pending = m.objects.iter();
    let mut checks = futures::stream::FuturesOrdered::new();
    let mut i = 0u64;
    loop {
        while checks.len() < verify_lanes() {
            let Some(o) = pending.next() else { break };
            checks.push_back(check_one(storage, m, key, level, o));
        }
        let Some((o, checked)) = checks.next().await else {
            break;
        };
        match checked {
            Ok(Some(fp)) => add_print(&mut prints, o, fp),
            Ok(None) => {}
            Err(e) => failures.push(Failure {
                object: o.name.to_string(),
                error: e,
            }),
        }
        done += o.digest.stored_size;
        i += 1;
        let r = ProgressReport {
            phase: "verifying".into(),
            bytes_done: done,
            bytes_total: total,
            tables_done: i,
            tables_total: m.objects.len() as u64,
            ..Default::default()
        };
        progress.report(r.derive(start.elapsed().as_secs_f64()));
    }
    let summary = Summary {
        total_records: m.tables.iter().map(|t| t.rows).sum(),
        tables_with_data: m.tables.iter().filter(|t| t.rows > 0).count() as u64,
        total_tables: m.tables.len() as u64,
    };
    let v = Verification {
        status: if failures.is_empty() {
            "valid"
        } else {
            "invalid"
        }
        .into(),
        level: format!("{level:?}").to_lowercase(),
        summary,
        objects_checked: m.objects.len(),
        failures,
        drill: None,
    };
    (v, prints)
}

async fn check_one<'a>(
    storage: &'a dyn Storage,
    m: &'a Manifest,
    key: &'a DataKey,
    level: Level,
    o: &'a ManifestObject,
) -> (&'a ManifestObject, Result<Option<Fingerprint>, String>) {
    let checked = match level {
        Level::Quick => check_size(storage, o).await.map(|_| None),
        Level::Deep => check_object(storage, m, key, o, false).await,
        Level::Drill => check_object(storage, m, key, o, true).await,
    };
    (o, checked)
}

/// Objects checked at once: one per core (at least two, so reading overlaps decoding).
fn verify_lanes() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

/// Adds an object's fingerprint to its table's (tables split into ranges have several).
fn add_print(prints: &mut TablePrints, o: &ManifestObject, fp: Fingerprint) {
    let Some(t) = &o.table else { return };
    match prints.iter_mut().find(|(p, _)| p == t) {
        Some((_, sum)) => sum.merge(fp),
        None => prints.push((t.clone(), fp)),
    }
}

/// The object exists with the size the manifest recorded.
async fn check_size(storage: &dyn Storage, o: &ManifestObject) -> Result<(), String> {
    let info = storage.stat(&o.name).await.map_err(|e| e.to_string())?;
    if info.size != o.digest.stored_size {
        return Err(format!(
            "stored size {} differs from the manifest's {}",
            info.size, o.digest.stored_size
        ));
    }
    Ok(())
}

/// Checks one object against its manifest entry; the error says what differs. With `print`,
/// returns the fingerprint of a table data object's rows.
async fn check_object(
    storage: &dyn Storage,
    m: &Manifest,
    key: &DataKey,
    o: &ManifestObject,
    print: bool,
) -> Result<Option<Fingerprint>, String> {
    check_size(storage, o).await?;
    let stream = storage.get(&o.name).await.map_err(|e| e.to_string())?;
    let stored = std::sync::Arc::new(std::sync::Mutex::new(blake3::Hasher::new()));
    let tee = std::sync::Arc::clone(&stored);
    let stream = stream
        .inspect_ok(move |b| {
            tee.lock().expect("hasher").update(b);
        })
        .boxed();
    let mut plain = read_object(stream, key, m.backup_id, o.object_no);
    let (mut hasher, mut size, mut lines) = (blake3::Hasher::new(), 0u64, 0u64);
    let mut folder = (print && o.kind == ObjectKind::TableData).then(LineFolder::default);
    while let Some(chunk) = plain.try_next().await.map_err(|e| e.to_string())? {
        hasher.update(&chunk);
        if let Some(f) = folder.as_mut() {
            f.update(&chunk);
        }
        size += chunk.len() as u64;
        lines += crate::dump::count_rows(&chunk);
    }
    let stored_hex = stored
        .lock()
        .expect("hasher")
        .finalize()
        .to_hex()
        .to_string();
    if stored_hex != o.digest.stored_blake3 {
        return Err("stored BLAKE3 differs from the manifest".into());
    }
    if size != o.digest.plain_size || hasher.finalize().to_hex().as_str() != o.digest.plain_blake3 {
        return Err("plain size or BLAKE3 differs from the manifest".into());
    }
    match (o.kind, o.rows) {
        (ObjectKind::TableData, Some(rows)) if rows != lines => {
            Err(format!("{lines} rows where the manifest recorded {rows}"))
        }
        _ => Ok(folder.map(LineFolder::finish)),
    }
}
