//! The `restore` table: one row per restore (or rollback), created in the same transaction as
//! its job, so a restore is never recorded without the job that performs it, nor the reverse.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;

use super::{JOB_RESTORE, RequestError};
use crate::backup::{BackupId, BackupState};
use crate::dump::TableName;
use crate::queue::{self, Enqueued, NewJob};

/// A restore's id: the `restore` row's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RestoreId(pub i64);

impl fmt::Display for RestoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A restore's state; the Postgres enum `restore_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "restore_state", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum RestoreState {
    Pending,
    Running,
    Completed,
    /// Failed or cancelled; the target was left as it was.
    Failed,
}

/// What a person asks for (the `restoreBackup` mutation). Build with [`RestoreRequest::new`]:
/// its defaults are the safe ones (safety backup on, nothing confirmed).
#[derive(Clone, Debug)]
pub struct RestoreRequest {
    /// The backup to restore; it must be completed.
    pub backup_id: BackupId,
    /// The configured source whose server holds the target; `None`: the backup's source.
    pub source: Option<String>,
    /// The database to restore into, on that server (created when missing); `None`: the
    /// database the backup was taken from.
    pub target_database: Option<String>,
    /// Only these tables (`schema.name`, or `name` for `public`); `None`: the whole database
    /// (or, for a selective backup, every table it holds).
    pub tables: Option<Vec<String>>,
    /// Required to replace data: a full restore into a database that holds tables, and every
    /// table restore.
    pub confirm: bool,
    /// Take a `safety` backup of what will be replaced first (default true).
    pub create_safety_backup: bool,
    /// Let a table restore commit even if foreign keys would point nowhere (default false).
    pub accept_broken_references: bool,
    /// Also put the backup's files archive into `CELLAR_FILES_DIR`, replacing its content
    /// (default false). The backup must include files.
    pub files: bool,
}

impl RestoreRequest {
    /// A request with the safe defaults.
    pub fn new(backup_id: BackupId) -> Self {
        Self {
            backup_id,
            source: None,
            target_database: None,
            tables: None,
            confirm: false,
            create_safety_backup: true,
            accept_broken_references: false,
            files: false,
        }
    }
}

/// A restore as the catalog knows it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreRow {
    pub id: i64,
    pub backup_id: String,
    pub source: String,
    pub target_database: String,
    pub tables: Option<Vec<String>>,
    pub confirmed: bool,
    pub create_safety_backup: bool,
    pub accept_broken_references: bool,
    /// The files archive is restored too.
    pub files: bool,
    pub safety_backup_id: Option<String>,
    pub rollback_of: Option<i64>,
    pub state: RestoreState,
    pub job_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub result: Option<Value>,
    pub error: Option<String>,
}

/// Checks a database name: 1-63 bytes (longer names would be truncated by the server), no NUL.
pub fn check_database_name(name: &str) -> Result<(), String> {
    match name.len() {
        1..=63 if !name.contains('\0') => Ok(()),
        _ => Err(format!(
            "invalid target database name {:?}: use 1 to 63 bytes",
            name.escape_debug().to_string()
        )),
    }
}

/// Parses table names (`schema.name`), keeping their canonical spelling; refuses an empty list.
fn parse_tables(tables: &[String]) -> Result<Vec<String>, RequestError> {
    if tables.is_empty() {
        return Err(RequestError::Invalid(
            "the table list is empty: name at least one table, or omit it to restore everything"
                .into(),
        ));
    }
    tables
        .iter()
        .map(|t| TableName::parse(t).map(|n| n.to_string()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RequestError::Invalid(e.to_string()))
}

/// Creates the restore row and its job in one transaction, after checking that the backup is
/// completed and that no other restore of the same database is pending or running (the job
/// also takes an advisory lock, which is the real guard). Returns the id and the job.
pub async fn create(
    pool: &PgPool,
    req: &RestoreRequest,
) -> Result<(RestoreId, Enqueued), RequestError> {
    insert(pool, req, None).await
}

/// Rolls back restore `id`: a new restore of its safety backup into the same target (same
/// tables), confirmed, itself preceded by a safety backup. The restore must have completed with
/// a safety backup. Returns the new restore's id and job.
pub async fn rollback(pool: &PgPool, id: RestoreId) -> Result<(RestoreId, Enqueued), RequestError> {
    let row = get(pool, id)
        .await?
        .ok_or_else(|| RequestError::NotFound(format!("restore {id} does not exist")))?;
    if row.state != RestoreState::Completed {
        return Err(RequestError::Invalid(format!(
            "restore {id} is {:?}: only a completed restore changed anything to roll back",
            row.state
        )));
    }
    let safety = row.safety_backup_id.ok_or_else(|| {
        RequestError::Invalid(format!(
            "restore {id} took no safety backup (createSafetyBackup was false): nothing to roll back to"
        ))
    })?;
    let mut req = RestoreRequest::new(safety.parse().map_err(RequestError::Invalid)?);
    req.source = Some(row.source);
    req.target_database = Some(row.target_database);
    req.tables = row.tables;
    req.confirm = true;
    req.accept_broken_references = row.accept_broken_references;
    // The files come back too if they were restored and the safety backup holds them.
    req.files = row.files
        && crate::backup::catalog::get(pool, &req.backup_id)
            .await?
            .is_some_and(|b| b.include_files);
    insert(pool, &req, Some(id)).await
}

async fn insert(
    pool: &PgPool,
    req: &RestoreRequest,
    rollback_of: Option<RestoreId>,
) -> Result<(RestoreId, Enqueued), RequestError> {
    let mut tx = pool.begin().await?;
    let backup = sqlx::query!(
        r#"SELECT state AS "state: BackupState", source, database_name, requested_tables, tables,
                  include_files
           FROM backup WHERE id = $1 FOR SHARE"#,
        req.backup_id.as_str()
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| RequestError::NotFound(format!("backup {} does not exist", req.backup_id)))?;
    if backup.state != BackupState::Completed {
        return Err(RequestError::Invalid(format!(
            "backup {} is {:?}: only completed backups can be restored",
            req.backup_id, backup.state
        )));
    }
    if req.files && !backup.include_files {
        return Err(RequestError::Invalid(format!(
            "backup {} holds no files archive (it was taken without includeFiles): restore it \
             without restoreFiles",
            req.backup_id
        )));
    }
    let source = req.source.clone().unwrap_or(backup.source);
    let target = match (req.target_database.clone(), backup.database_name) {
        (Some(t), _) | (None, Some(t)) => t,
        (None, None) => {
            return Err(RequestError::Invalid(
                "the backup does not record its database: name targetDatabase".into(),
            ));
        }
    };
    check_database_name(&target).map_err(RequestError::Invalid)?;
    let tables = match (&req.tables, backup.requested_tables) {
        (Some(t), _) => Some(parse_tables(t)?),
        // A table backup restores, by default, every table it holds.
        (None, Some(_)) => Some(backup_tables(backup.tables.as_ref())?),
        (None, None) => None,
    };
    // A restore whose job ended (cancelled before it ran, say) holds nothing, whatever its row
    // still says until the sweeper finishes it.
    let busy = sqlx::query_scalar!(
        r#"SELECT r.id FROM restore r LEFT JOIN job j ON j.id = r.job_id
           WHERE r.source = $1 AND r.target_database = $2 AND r.state IN ('pending', 'running')
             AND (j.id IS NULL OR j.state NOT IN ('cancelled', 'discarded', 'completed'))
           LIMIT 1"#,
        source,
        target
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(other) = busy {
        return Err(RequestError::Conflict(format!(
            "restore {other} of database {target:?} is still pending or running: wait for it to finish"
        )));
    }
    let id = sqlx::query_scalar!(
        r#"INSERT INTO restore (backup_id, source, target_database, tables, confirmed,
                                create_safety_backup, accept_broken_references, rollback_of,
                                files)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id"#,
        req.backup_id.as_str(),
        source,
        target,
        tables.as_deref(),
        req.confirm,
        req.create_safety_backup,
        req.accept_broken_references,
        rollback_of.map(|r| r.0),
        req.files,
    )
    .fetch_one(&mut *tx)
    .await?;
    let job = queue::enqueue(
        &mut tx,
        &NewJob::new(JOB_RESTORE, json!({ "restoreId": id })).with_max_attempts(2),
    )
    .await?;
    sqlx::query!("UPDATE restore SET job_id = $2 WHERE id = $1", id, job.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((RestoreId(id), job))
}

/// The tables a completed backup recorded (`[{schema, name, rows}]`), as `schema.name`.
fn backup_tables(tables: Option<&Value>) -> Result<Vec<String>, RequestError> {
    let list = tables
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Result<Vec<String>, _> = list
        .iter()
        .map(|t| {
            let part = |k: &str| t[k].as_str().unwrap_or_default().to_string();
            TableName::new(part("schema"), part("name")).map(|n| n.to_string())
        })
        .collect();
    let names = names.map_err(|e| RequestError::Invalid(e.to_string()))?;
    parse_tables(&names)
}

/// Reads one restore.
pub async fn get(pool: &PgPool, id: RestoreId) -> Result<Option<RestoreRow>, sqlx::Error> {
    sqlx::query_as!(
        RestoreRow,
        r#"SELECT id, backup_id, source, target_database, tables, confirmed, create_safety_backup,
                  accept_broken_references, files, safety_backup_id, rollback_of,
                  state AS "state: RestoreState", job_id, created_at, started_at, completed_at,
                  result, error
           FROM restore WHERE id = $1"#,
        id.0
    )
    .fetch_optional(pool)
    .await
}

/// The restore a job runs (the API names restores by their job, as the seed did).
pub async fn by_job(pool: &PgPool, job_id: i64) -> Result<Option<RestoreId>, sqlx::Error> {
    let id = sqlx::query_scalar!("SELECT id FROM restore WHERE job_id = $1", job_id)
        .fetch_optional(pool)
        .await?;
    Ok(id.map(RestoreId))
}

/// The newest restores first.
pub async fn list(pool: &PgPool, limit: i64) -> Result<Vec<RestoreRow>, sqlx::Error> {
    sqlx::query_as!(
        RestoreRow,
        r#"SELECT id, backup_id, source, target_database, tables, confirmed, create_safety_backup,
                  accept_broken_references, files, safety_backup_id, rollback_of,
                  state AS "state: RestoreState", job_id, created_at, started_at, completed_at,
                  result, error
           FROM restore ORDER BY created_at DESC, id DESC LIMIT $1"#,
        limit
    )
    .fetch_all(pool)
    .await
}

/// pending (or a retried attempt) -> running.
pub async fn mark_running(pool: &PgPool, id: RestoreId) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE restore SET state = 'running', started_at = now(), error = NULL WHERE id = $1",
        id.0
    )
    .execute(pool)
    .await
    .map(drop)
}

/// Records the safety backup as soon as it exists, so a failed restore still names it.
pub async fn set_safety_backup(
    pool: &PgPool,
    id: RestoreId,
    backup: &BackupId,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE restore SET safety_backup_id = $2 WHERE id = $1",
        id.0,
        backup.as_str()
    )
    .execute(pool)
    .await
    .map(drop)
}

/// running -> completed, with what was restored.
pub async fn mark_completed(
    pool: &PgPool,
    id: RestoreId,
    result: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE restore SET state = 'completed', completed_at = now(), result = $2 WHERE id = $1",
        id.0,
        result
    )
    .execute(pool)
    .await
    .map(drop)
}

/// -> failed, with the reason.
pub async fn mark_failed<'c>(
    db: impl sqlx::PgExecutor<'c>,
    id: RestoreId,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE restore SET state = 'failed', completed_at = now(), error = $2 WHERE id = $1",
        id.0,
        error
    )
    .execute(db)
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_are_parsed_and_never_empty() {
        let parsed = parse_tables(&["Film".into(), "\"My Schema\".t".into()]).unwrap();
        assert_eq!(parsed, vec!["public.film", "\"My Schema\".t"]);
        assert!(parse_tables(&[]).is_err());
        assert!(parse_tables(&["a.b.c".into()]).is_err());
    }

    #[test]
    fn database_names_fit_the_server() {
        assert!(check_database_name("shop").is_ok());
        assert!(check_database_name(&"x".repeat(63)).is_ok());
        assert!(check_database_name(&"x".repeat(64)).is_err());
        assert!(check_database_name("").is_err());
        assert!(check_database_name("a\0b").is_err());
    }
}
