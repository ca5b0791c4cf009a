//! The `backup` table: one row per backup, created in the same transaction as its job.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::PgPool;

use super::{BackupId, BackupState, BackupType, JOB_BACKUP, JOB_UPLOAD};
use crate::format::{Manifest, ObjectDigest};
use crate::queue::{self, Enqueued, NewJob};

/// What a person asks for when creating a backup.
#[derive(Clone, Debug, Default)]
pub struct BackupRequest {
    /// Why (manual unless a schedule fires).
    pub backup_type: Option<BackupType>,
    /// The source's name; `None` is the default source.
    pub source: String,
    /// Only these tables (`schema.name`), or everything.
    pub tables: Option<Vec<String>>,
    /// Verify right after the backup.
    pub verify: bool,
    /// Also archive `CELLAR_FILES_DIR`.
    pub include_files: bool,
    /// Copy the finished backup to Google Drive (an `upload` job, enqueued on completion).
    pub upload_to_drive: bool,
}

/// A backup as the catalog knows it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupRow {
    pub id: String,
    pub backup_type: BackupType,
    pub state: BackupState,
    pub source: String,
    pub requested_tables: Option<Vec<String>>,
    pub include_files: bool,
    pub verify_after: bool,
    pub job_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub key_id: Option<String>,
    pub plain_bytes: Option<i64>,
    pub stored_bytes: Option<i64>,
    pub table_count: Option<i32>,
    pub total_rows: Option<i64>,
    pub tables: Option<Value>,
    pub locations: Value,
    pub warnings: Vec<String>,
    pub error: Option<String>,
    pub verification: Option<Value>,
    /// Retention never deletes it; deleteBackup refuses it until unpinned.
    pub pinned: bool,
}

/// Creates the backup row and its job in one transaction. Returns the new id and the job.
pub async fn create(
    pool: &PgPool,
    req: &BackupRequest,
) -> Result<(BackupId, Enqueued), queue::QueueError> {
    let mut tx = pool.begin().await?;
    let out = create_in(&mut tx, req, &Origin::default()).await?;
    tx.commit().await?;
    Ok(out)
}

/// Where a backup comes from beyond the request: the schedule fire that produced it, and the
/// level of the verification that follows it (when `req.verify`).
#[derive(Clone, Debug, Default)]
pub struct Origin {
    /// `(schedule id, fire time)` of a scheduled backup.
    pub schedule: Option<(i64, DateTime<Utc>)>,
    /// Quick instead of deep verification after the backup.
    pub quick_verify: bool,
}

/// Creates the backup row and its job on `conn` (the caller's transaction).
pub async fn create_in(
    conn: &mut sqlx::PgConnection,
    req: &BackupRequest,
    origin: &Origin,
) -> Result<(BackupId, Enqueued), queue::QueueError> {
    let kind = req.backup_type.unwrap_or(BackupType::Manual);
    let at = origin.schedule.map_or_else(Utc::now, |(_, t)| t);
    let id = BackupId::generate(kind, at);
    let job = queue::enqueue(
        &mut *conn,
        &NewJob::new(JOB_BACKUP, json!({ "backupId": id.as_str() })).with_max_attempts(3),
    )
    .await?;
    sqlx::query!(
        r#"INSERT INTO backup (id, backup_type, source, requested_tables, verify_after, job_id,
                               include_files, upload_to_drive, schedule_id, scheduled_for,
                               verify_level)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"#,
        id.as_str(),
        kind as BackupType,
        req.source,
        req.tables.as_deref(),
        req.verify,
        job.id,
        req.include_files,
        req.upload_to_drive,
        origin.schedule.map(|(s, _)| s),
        origin.schedule.map(|(_, t)| t),
        if origin.quick_verify { "quick" } else { "deep" },
    )
    .execute(&mut *conn)
    .await?;
    Ok((id, job))
}

/// The level of the verification that follows backup `id` (when it asked for one).
pub async fn verify_level(
    pool: &PgPool,
    id: &BackupId,
) -> Result<super::verify::Level, sqlx::Error> {
    let l = sqlx::query_scalar!("SELECT verify_level FROM backup WHERE id = $1", id.as_str())
        .fetch_optional(pool)
        .await?;
    Ok(match l.as_deref() {
        Some("quick") => super::verify::Level::Quick,
        _ => super::verify::Level::Deep,
    })
}

/// Reads one backup.
pub async fn get(pool: &PgPool, id: &BackupId) -> Result<Option<BackupRow>, sqlx::Error> {
    sqlx::query_as!(
        BackupRow,
        r#"SELECT id, backup_type AS "backup_type: BackupType", state AS "state: BackupState",
                  source, requested_tables, include_files, verify_after, job_id, created_at, completed_at, key_id,
                  plain_bytes, stored_bytes, table_count, total_rows, tables, locations, warnings,
                  error, verification, pinned
           FROM backup WHERE id = $1"#,
        id.as_str()
    )
    .fetch_optional(pool)
    .await
}

/// Reads the backups among `ids` that exist, in no particular order.
pub async fn get_many(pool: &PgPool, ids: &[String]) -> Result<Vec<BackupRow>, sqlx::Error> {
    sqlx::query_as!(
        BackupRow,
        r#"SELECT id, backup_type AS "backup_type: BackupType", state AS "state: BackupState",
                  source, requested_tables, include_files, verify_after, job_id, created_at, completed_at, key_id,
                  plain_bytes, stored_bytes, table_count, total_rows, tables, locations, warnings,
                  error, verification, pinned
           FROM backup WHERE id = ANY($1)"#,
        ids
    )
    .fetch_all(pool)
    .await
}

/// The newest backups first.
pub async fn list(pool: &PgPool, limit: i64) -> Result<Vec<BackupRow>, sqlx::Error> {
    sqlx::query_as!(
        BackupRow,
        r#"SELECT id, backup_type AS "backup_type: BackupType", state AS "state: BackupState",
                  source, requested_tables, include_files, verify_after, job_id, created_at, completed_at, key_id,
                  plain_bytes, stored_bytes, table_count, total_rows, tables, locations, warnings,
                  error, verification, pinned
           FROM backup ORDER BY created_at DESC, id DESC LIMIT $1"#,
        limit
    )
    .fetch_all(pool)
    .await
}

/// What a finished backup records in the catalog.
#[derive(Clone, Debug, Serialize)]
pub struct Completed {
    pub key_id: String,
    pub database: String,
    pub server_version: String,
    pub plain_bytes: u64,
    pub stored_bytes: u64,
    pub object_count: usize,
    pub total_rows: u64,
    pub manifest_blake3: String,
    pub tables: Value,
    pub warnings: Vec<String>,
}

impl Completed {
    /// Sums a written manifest (and the KEY and MANIFEST objects' sizes).
    pub fn from_manifest(
        m: &Manifest,
        key_id: &str,
        manifest: &ObjectDigest,
        key_size: u64,
        warnings: Vec<String>,
    ) -> Self {
        let plain: u64 = m.objects.iter().map(|o| o.digest.plain_size).sum();
        let stored: u64 = m.objects.iter().map(|o| o.digest.stored_size).sum();
        let tables: Vec<Value> = m
            .tables
            .iter()
            .map(|t| json!({"schema": t.schema, "name": t.name, "rows": t.rows}))
            .collect();
        Self {
            key_id: key_id.to_string(),
            database: m.source.database.clone(),
            server_version: m.source.server_version.clone(),
            plain_bytes: plain,
            stored_bytes: stored + manifest.stored_size + key_size,
            object_count: m.objects.len() + 2,
            total_rows: m.tables.iter().map(|t| t.rows).sum(),
            manifest_blake3: manifest.stored_blake3.clone(),
            tables: Value::Array(tables),
            warnings,
        }
    }
}

/// pending (or a retried running/failed attempt) -> running.
pub async fn mark_running(pool: &PgPool, id: &BackupId) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE backup SET state = 'running', started_at = now(), error = NULL WHERE id = $1",
        id.as_str()
    )
    .execute(pool)
    .await
    .map(drop)
}

/// running -> completed, with everything the manifest says. A backup that asked for a Drive
/// copy gets `locations.drive = pending` and its `upload` job in the same transaction.
pub async fn mark_completed(
    pool: &PgPool,
    id: &BackupId,
    c: &Completed,
) -> Result<(), queue::QueueError> {
    let mut tx = pool.begin().await?;
    let upload = sqlx::query_scalar!(
        r#"UPDATE backup SET state = 'completed', completed_at = now(), key_id = $2,
               database_name = $3, server_version = $4, plain_bytes = $5, stored_bytes = $6,
               object_count = $7, table_count = $8, total_rows = $9, manifest_blake3 = $10,
               tables = $11, warnings = $12,
               locations = CASE WHEN upload_to_drive
                                THEN jsonb_build_object('local', 'available', 'drive', 'pending')
                                ELSE jsonb_build_object('local', 'available') END
           WHERE id = $1
           RETURNING upload_to_drive"#,
        id.as_str(),
        c.key_id,
        c.database,
        c.server_version,
        c.plain_bytes as i64,
        c.stored_bytes as i64,
        c.object_count as i32,
        c.tables.as_array().map_or(0, Vec::len) as i32,
        c.total_rows as i64,
        c.manifest_blake3,
        c.tables,
        &c.warnings,
    )
    .fetch_optional(&mut *tx)
    .await?;
    if upload == Some(true) {
        let job = NewJob::new(JOB_UPLOAD, json!({ "backupId": id.as_str() }))
            .with_max_attempts(UPLOAD_ATTEMPTS)
            .with_dedupe_key(format!("upload:{id}"));
        queue::enqueue(&mut tx, &job).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Attempts of an upload job (each one retries Drive calls itself; the queue's backoff
/// between attempts rides out a longer Drive outage).
pub const UPLOAD_ATTEMPTS: i32 = 10;

/// Sets `locations.<place>` (e.g. `drive` = `uploading`) of a completed backup.
pub async fn set_location(
    pool: &PgPool,
    id: &BackupId,
    place: &str,
    state: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE backup SET locations = locations || jsonb_build_object($2::text, $3::text)
           WHERE id = $1 AND state = 'completed'"#,
        id.as_str(),
        place,
        state
    )
    .execute(pool)
    .await
    .map(drop)
}

/// -> failed, with the reason (objects already removed).
pub async fn mark_failed<'c>(
    db: impl sqlx::PgExecutor<'c>,
    id: &BackupId,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE backup SET state = 'failed', completed_at = now(), error = $2, locations = '{}' WHERE id = $1",
        id.as_str(),
        error
    )
    .execute(db)
    .await
    .map(drop)
}

/// Stores a verification result.
pub async fn set_verification(pool: &PgPool, id: &BackupId, v: &Value) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE backup SET verification = $2, verified_at = now() WHERE id = $1",
        id.as_str(),
        v
    )
    .execute(pool)
    .await
    .map(drop)
}
