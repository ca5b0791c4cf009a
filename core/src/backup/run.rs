//! Taking a backup.
//!
//! ```text
//! delete leftovers under <id>/ (a retried attempt starts clean)
//! snapshot = REPEATABLE READ READ ONLY + pg_export_snapshot()
//! KEY      <- data key wrapped by the writing master key
//! data/000001 <- pg_dump --schema-only -Fc --snapshot          (schema)
//! data/000002 <- sequence values, populated matviews (JSON)    (sequences)
//! data/000003.. <- one object per COPY task, `jobs` connections in parallel
//! MANIFEST <- every object's sizes and hashes, tables and rows  (written last)
//! on any error or cancel: delete everything under <id>/
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt;
use futures::future::{MaybeDone, maybe_done};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::catalog::{self, BackupRow, Completed};
use super::{BackupEnv, BackupError, BackupId, Progress, ProgressReport};
use crate::dump::{
    CopyProgress, CopyStats, CopyTask, DataConn, Snapshot, TableInfo, TableName, plan_copy,
};
use crate::format::manifest::{ManifestSource, ObjectKind, TableRef};
use crate::format::{
    DataKey, KeyEnvelope, Manifest, ManifestObject, ManifestTable, ObjectHeader, write_manifest,
    write_object,
};
use crate::storage::ObjectKey;

/// Object numbers of the fixed objects; table data starts after them.
const SCHEMA_OBJECT: u32 = 1;
const SEQUENCES_OBJECT: u32 = 2;
const FIRST_DATA_OBJECT: u32 = 3;

/// `<id>/KEY`.
pub fn key_object(id: &BackupId) -> ObjectKey {
    ObjectKey::new(format!("{id}/KEY")).expect("backup ids are valid object names")
}

/// `<id>/MANIFEST`.
pub fn manifest_object(id: &BackupId) -> ObjectKey {
    ObjectKey::new(format!("{id}/MANIFEST")).expect("backup ids are valid object names")
}

/// `<id>/data/NNNNNN`: opaque, no table names.
pub fn data_object(id: &BackupId, no: u32) -> ObjectKey {
    ObjectKey::new(format!("{id}/data/{no:06}")).expect("backup ids are valid object names")
}

/// Takes the backup `id` (its catalog row must exist). On failure or cancellation every object
/// written is removed and the row is marked failed; the error is returned.
#[tracing::instrument(skip_all, fields(backup_id = %id))]
pub async fn take(
    env: &BackupEnv,
    id: &BackupId,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<Completed, BackupError> {
    tracing::trace!("backup starting");
    let row = catalog::get(&env.pool, id)
        .await?
        .ok_or_else(|| BackupError::Permanent(format!("backup {id} is not in the catalog")))?;
    remove_objects(env, id).await?;
    catalog::mark_running(&env.pool, id).await?;
    let outcome = tokio::select! {
        r = dump(env, &row, progress) => r,
        _ = cancel.cancelled() => Err(BackupError::Cancelled),
    };
    match outcome {
        Ok(done) => {
            catalog::mark_completed(&env.pool, id, &done).await?;
            Ok(done)
        }
        Err(e) => {
            progress.report(ProgressReport {
                phase: "cleanup".into(),
                ..Default::default()
            });
            if let Err(c) = remove_objects(env, id).await {
                tracing::error!(error = %c, "could not remove a failed backup's objects");
            }
            let why = match &e {
                BackupError::Cancelled => "cancelled".to_string(),
                other => other.to_string(),
            };
            catalog::mark_failed(&env.pool, id, &why).await?;
            Err(e)
        }
    }
}

/// Deletes every object under `<id>/`.
pub async fn remove_objects(env: &BackupEnv, id: &BackupId) -> Result<usize, BackupError> {
    let objects = env.storage.list(&format!("{id}/")).await?;
    for o in &objects {
        env.storage.delete(&o.key).await?;
    }
    Ok(objects.len())
}

/// Counters shared by the parallel copies, turned into reports.
struct Meter<'a> {
    sink: &'a dyn Progress,
    start: Instant,
    phase: Mutex<String>,
    bytes: AtomicU64,
    rows: AtomicU64,
    tasks_done: AtomicU64,
    bytes_total: u64,
    tasks_total: u64,
}

impl Meter<'_> {
    fn phase(&self, p: &str) {
        *self.phase.lock().expect("phase lock") = p.into();
        self.emit();
    }

    fn emit(&self) {
        let r = ProgressReport {
            phase: self.phase.lock().expect("phase lock").clone(),
            bytes_done: self.bytes.load(Ordering::Relaxed),
            bytes_total: self.bytes_total,
            rows_done: self.rows.load(Ordering::Relaxed),
            tables_done: self.tasks_done.load(Ordering::Relaxed),
            tables_total: self.tasks_total,
            ..Default::default()
        };
        self.sink
            .report(r.derive(self.start.elapsed().as_secs_f64()));
    }
}

impl CopyProgress for Meter<'_> {
    fn advance(&self, _task: usize, rows: u64, bytes: u64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.emit();
    }
}

/// What one COPY task stored.
struct TaskResult {
    task: CopyTask,
    object: ManifestObject,
}

async fn dump(
    env: &BackupEnv,
    row: &BackupRow,
    progress: &dyn Progress,
) -> Result<Completed, BackupError> {
    let env = &env.with_cpu_budget();
    let source = env
        .source(Some(&row.source))
        .map_err(BackupError::Permanent)?
        .clone();
    let url = source.url.expose();
    let mut snap = Snapshot::open(url).await?;
    // `pg_dump --version` (a process, and on Debian a Perl wrapper: 40-70 ms) gates only the
    // schema dump: it runs beside the catalog reads and the first COPYs (waiting for it held
    // the data back ~25 ms). A pg_dump older than the server still fails the backup, with its
    // clear error, before pg_dump is started.
    let compatible = env.pg_dump.check_compatible(snap.server_version_num());
    let selection = match &row.requested_tables {
        Some(names) => {
            let parsed: Result<Vec<TableName>, _> =
                names.iter().map(|n| TableName::parse(n)).collect();
            Some(snap.resolve_selection(&parsed?).await?)
        }
        None => None,
    };
    let tables = snap.list_tables(selection.as_ref()).await?;
    let tasks = plan_copy(&tables, env.chunk_bytes, env.jobs);
    let meter = Meter {
        sink: progress,
        start: Instant::now(),
        phase: Mutex::new("schema".into()),
        bytes: AtomicU64::new(0),
        rows: AtomicU64::new(0),
        tasks_done: AtomicU64::new(0),
        bytes_total: tables.iter().map(|t| t.size_bytes).sum(),
        tasks_total: tasks.len() as u64,
    };
    meter.emit();
    let id: BackupId = row.id.parse().map_err(BackupError::Permanent)?;
    let uuid = id.format_uuid();
    let data_key = DataKey::generate();
    let envelope = KeyEnvelope::seal(uuid, row.created_at, &data_key, &env.keyring);
    let key_info = env
        .storage
        .put(&key_object(&id), Bytes::from(envelope.to_bytes()))
        .await?;
    let mut manifest = Manifest::new(
        uuid,
        row.created_at,
        row.backup_type.as_str(),
        ManifestSource {
            name: source.name.clone(),
            database: snap.database().to_string(),
            server_version: snap.server_version().to_string(),
        },
    );
    let snap_id = snap.id().to_string();
    manifest.snapshot_id = Some(snap_id.clone());

    // The schema dump (pg_dump's catalog queries take a while) runs alongside the data copy.
    meter.phase("data");
    let (tx, rx) = mpsc::channel(4);
    let schema = async {
        let dump = async {
            compatible.await?;
            env.pg_dump
                .dump_schema(url, &snap_id, selection.as_ref(), tx)
                .await
        };
        let (dumped, stored) = tokio::join!(dump, store(env, &id, &data_key, SCHEMA_OBJECT, rx));
        dumped?;
        stored
    };
    let data = copy_all(env, &id, &data_key, url, &snap_id, tasks, &meter);
    // What `--schema-only` omits is read on the snapshot's own connection, idle meanwhile.
    let extras = async {
        let sequences = snap.sequences().await?;
        let matviews = snap.populated_matviews().await?;
        let large_objects = snap.large_object_count().await?;
        let seq_json = json!({
            "sequences": sequences.iter().map(|s| json!({
                "schema": s.name.schema(), "name": s.name.name(),
                "last_value": s.last_value, "is_called": s.is_called,
                "owned_by": s.owned_by.as_ref().map(|t| json!({"schema": t.schema(), "name": t.name()})),
            })).collect::<Vec<_>>(),
            "populated_matviews": matviews.iter().map(|m| json!({"schema": m.schema(), "name": m.name()})).collect::<Vec<_>>(),
        });
        let (tx, rx) = mpsc::channel(1);
        tx.send(Bytes::from(seq_json.to_string())).await.ok();
        drop(tx);
        let stored = store(env, &id, &data_key, SEQUENCES_OBJECT, rx).await?;
        Ok::<_, BackupError>((stored, large_objects))
    };
    // The first failure (pg_dump too old, a COPY refused) ends the others at once: their
    // futures are dropped, which removes their partial objects.
    let (schema, results, (sequences, large_objects)) = tokio::try_join!(schema, data, extras)?;
    manifest.objects.push(object(
        &id,
        SCHEMA_OBJECT,
        ObjectKind::Schema,
        None,
        None,
        schema,
    ));
    manifest.objects.push(object(
        &id,
        SEQUENCES_OBJECT,
        ObjectKind::Sequences,
        None,
        None,
        sequences,
    ));
    snap.close().await?;

    meter.phase("manifest");
    let mut warnings = Vec::new();
    if large_objects > 0 {
        warnings.push(format!(
            "{large_objects} large objects (pg_largeobject) are not included in Cellar backups"
        ));
    }
    let files_no = FIRST_DATA_OBJECT + results.len() as u32;
    if row.include_files {
        let (obj, stats) = archive_files(env, &id, &data_key, files_no).await?;
        manifest.objects.push(obj);
        manifest.extra.insert(
            "files".into(),
            json!({"files": stats.files, "bytes": stats.bytes}),
        );
        if !stats.skipped.is_empty() {
            warnings.push(format!(
                "files archive skipped {} links or special files",
                stats.skipped.len()
            ));
        }
    }
    manifest.tables = manifest_tables(&tables, &results);
    manifest
        .objects
        .extend(results.into_iter().map(|r| r.object));
    manifest
        .extra
        .insert("backup_name".into(), json!(id.as_str()));
    manifest.extra.insert("warnings".into(), json!(warnings));
    let w = env.storage.create(&manifest_object(&id)).await?;
    let m = write_manifest(w, &data_key, &manifest, &env.encode).await?;
    Ok(Completed::from_manifest(
        &manifest,
        env.keyring.writing_key().id(),
        &m,
        key_info.size,
        warnings,
    ))
}

/// Archives `CELLAR_FILES_DIR` into object `no`.
async fn archive_files(
    env: &BackupEnv,
    id: &BackupId,
    key: &DataKey,
    no: u32,
) -> Result<(ManifestObject, super::files::FilesStats), BackupError> {
    let dir = env.files_dir.clone().ok_or_else(|| {
        BackupError::Permanent("this backup includes files but CELLAR_FILES_DIR is not set".into())
    })?;
    let (tx, rx) = mpsc::channel(4);
    let (stats, digest) = tokio::join!(super::files::archive(dir, tx), store(env, id, key, no, rx));
    let (stats, digest) = (stats?, digest?);
    Ok((object(id, no, ObjectKind::Files, None, None, digest), stats))
}

/// Streams `rx` into encrypted object `no` of the backup.
async fn store(
    env: &BackupEnv,
    id: &BackupId,
    key: &DataKey,
    no: u32,
    rx: mpsc::Receiver<Bytes>,
) -> Result<crate::format::ObjectDigest, BackupError> {
    let writer = env.storage.create(&data_object(id, no)).await?;
    let header = ObjectHeader::new(id.format_uuid(), no, Utc::now());
    Ok(write_object(writer, key, header, rx, &env.encode).await?)
}

fn object(
    id: &BackupId,
    no: u32,
    kind: ObjectKind,
    table: Option<&TableInfo>,
    rows: Option<u64>,
    digest: crate::format::ObjectDigest,
) -> ManifestObject {
    ManifestObject {
        name: data_object(id, no),
        object_no: no,
        kind,
        table: table.map(|t| TableRef {
            schema: t.name.schema().into(),
            name: t.name.name().into(),
        }),
        rows,
        digest,
    }
}

/// Runs the COPY tasks on `env.jobs` connections, each task into its own object.
///
/// A lane starts its next COPY as soon as the previous one's rows are all received; that
/// object's last segments are compressed and its file synced and renamed meanwhile (waiting for
/// them idled the lane's server backend 3-11 ms per task). So a lane has at most two objects
/// open: the one its COPY feeds and the one finishing.
async fn copy_all(
    env: &BackupEnv,
    id: &BackupId,
    key: &DataKey,
    url: &str,
    snapshot: &str,
    tasks: Vec<CopyTask>,
    meter: &Meter<'_>,
) -> Result<Vec<TaskResult>, BackupError> {
    let queue = Mutex::new(VecDeque::from(tasks));
    let lanes = env.jobs.min(queue.lock().expect("queue").len()).max(1);
    let lane = || async {
        let mut conn = DataConn::connect(url, snapshot).await?;
        let mut done = Vec::new();
        // The previous task's object, still being finished, with what its COPY reported.
        let mut finishing = None;
        loop {
            let Some(task) = queue.lock().expect("queue").pop_front() else {
                break;
            };
            let no = FIRST_DATA_OBJECT + task.index as u32;
            let (tx, rx) = mpsc::channel(4);
            let mut stored = Box::pin(maybe_done(store(env, id, key, no, rx)));
            let mut stored_ready = false;
            let prev = finishing.take();
            let (stats, previous) = {
                let copy = async { Ok::<_, BackupError>(conn.copy(&task, tx, meter).await?) };
                let previous = async {
                    match prev {
                        Some((task, no, stats, stored)) => {
                            Ok(Some(finish(meter, id, task, no, stats, stored).await?))
                        }
                        None => Ok(None),
                    }
                };
                let both = futures::future::try_join(copy, previous);
                tokio::pin!(both);
                // This object's encoder runs beside its COPY (which waits on it when the
                // channel is full) until the COPY ends; the rest of it runs beside the next COPY.
                // The encoder is polled first: when it fails, the COPY fails too (its channel
                // closed), and the encoder's error is the one that says why.
                loop {
                    tokio::select! {
                        biased;
                        () = stored.as_mut(), if !stored_ready => {
                            stored_ready = true;
                            if let Some(Err(_)) = stored.as_mut().output_mut() {
                                let e = stored.as_mut().take_output().expect("checked");
                                return Err(e.expect_err("checked"));
                            }
                        }
                        r = &mut both => break r?,
                    }
                }
            };
            done.extend(previous);
            finishing = Some((task, no, stats, stored));
        }
        if let Some((task, no, stats, stored)) = finishing {
            done.push(finish(meter, id, task, no, stats, stored).await?);
        }
        Ok::<_, BackupError>(done)
    };
    let mut lanes_run = futures::stream::iter(0..lanes)
        .map(|_| lane())
        .buffer_unordered(lanes);
    let mut all = Vec::new();
    while let Some(r) = lanes_run.next().await {
        all.extend(r?);
    }
    all.sort_by_key(|r| r.task.index);
    Ok(all)
}

/// Waits for a task's object to be finished and describes it for the manifest.
async fn finish<F>(
    meter: &Meter<'_>,
    id: &BackupId,
    task: CopyTask,
    no: u32,
    stats: CopyStats,
    mut stored: Pin<Box<MaybeDone<F>>>,
) -> Result<TaskResult, BackupError>
where
    F: Future<Output = Result<crate::format::ObjectDigest, BackupError>>,
{
    stored.as_mut().await;
    let digest = stored.as_mut().take_output().expect("finished")?;
    meter.tasks_done.fetch_add(1, Ordering::Relaxed);
    let object = object(
        id,
        no,
        ObjectKind::TableData,
        Some(&task.table),
        Some(stats.rows),
        digest,
    );
    Ok(TaskResult { task, object })
}

/// One entry per table, its objects in part order.
fn manifest_tables(tables: &[TableInfo], results: &[TaskResult]) -> Vec<ManifestTable> {
    let mut by_table: BTreeMap<(String, String), (u64, Vec<ObjectKey>)> = tables
        .iter()
        .map(|t| {
            (
                (t.name.schema().into(), t.name.name().into()),
                (0, Vec::new()),
            )
        })
        .collect();
    let columns: BTreeMap<(&str, &str), &Vec<String>> = tables
        .iter()
        .map(|t| ((t.name.schema(), t.name.name()), &t.columns))
        .collect();
    for r in results {
        let k = (
            r.task.table.name.schema().to_string(),
            r.task.table.name.name().to_string(),
        );
        let e = by_table.entry(k).or_default();
        e.0 += r.object.rows.unwrap_or(0);
        e.1.push(r.object.name.clone());
    }
    by_table
        .into_iter()
        .map(|((schema, name), (rows, objects))| ManifestTable {
            columns: columns
                .get(&(schema.as_str(), name.as_str()))
                .map(|c| c.to_vec()),
            schema,
            name,
            rows,
            objects,
        })
        .collect()
}
