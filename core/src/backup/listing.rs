//! Reading the catalog for people: filtered pages with keyset cursors, and statistics.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::catalog::BackupRow;
use super::{BackupState, BackupType};

/// Which backups to list. Deleted backups are listed only when asked for by state.
#[derive(Clone, Copy, Debug, Default)]
pub struct Filter {
    /// Only this type.
    pub backup_type: Option<BackupType>,
    /// Only this state.
    pub state: Option<BackupState>,
}

/// Where the previous page stopped: the last row's `(created_at, id)`.
pub type Cursor = (DateTime<Utc>, String);

/// Up to `limit` backups matching `f`, newest first, strictly after `after`.
pub async fn page(
    pool: &PgPool,
    f: Filter,
    limit: i64,
    after: Option<&Cursor>,
) -> Result<Vec<BackupRow>, sqlx::Error> {
    sqlx::query_as!(
        BackupRow,
        r#"SELECT id, backup_type AS "backup_type: BackupType", state AS "state: BackupState",
                  source, requested_tables, include_files, verify_after, job_id, created_at, completed_at, key_id,
                  plain_bytes, stored_bytes, table_count, total_rows, tables, locations, warnings,
                  error, verification, pinned
           FROM backup
           WHERE ($1::backup_type IS NULL OR backup_type = $1)
             AND (state = $2 OR ($2::backup_state IS NULL AND state <> 'deleted'))
             AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::text))
           ORDER BY created_at DESC, id DESC LIMIT $5"#,
        f.backup_type as Option<BackupType>,
        f.state as Option<BackupState>,
        after.map(|a| a.0),
        after.map(|a| a.1.as_str()),
        limit,
    )
    .fetch_all(pool)
    .await
}

/// Counts of the backups matching a filter.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Statistics {
    /// All of them.
    pub total_backups: i64,
    /// Per type (`manual`, `daily`, ...).
    pub by_type: BTreeMap<String, i64>,
    /// Per state (`completed`, `failed`, ...).
    pub by_status: BTreeMap<String, i64>,
}

/// Counts the backups matching `f`, per type and per state, from the counts the catalog's
/// triggers keep (`backup_count`): at most 25 rows, whatever the number of backups.
pub async fn statistics(pool: &PgPool, f: Filter) -> Result<Statistics, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT backup_type AS "t: BackupType", state AS "s: BackupState", n
           FROM backup_count
           WHERE ($1::backup_type IS NULL OR backup_type = $1)
             AND (state = $2 OR ($2::backup_state IS NULL AND state <> 'deleted'))
             AND n > 0"#,
        f.backup_type as Option<BackupType>,
        f.state as Option<BackupState>,
    )
    .fetch_all(pool)
    .await?;
    let mut s = Statistics::default();
    for r in rows {
        s.total_backups += r.n;
        *s.by_type.entry(r.t.as_str().into()).or_default() += r.n;
        *s.by_status.entry(state_name(r.s).into()).or_default() += r.n;
    }
    Ok(s)
}

/// The lowercase name of a state, as stored and shown.
pub fn state_name(s: BackupState) -> &'static str {
    match s {
        BackupState::Pending => "pending",
        BackupState::Running => "running",
        BackupState::Completed => "completed",
        BackupState::Failed => "failed",
        BackupState::Deleted => "deleted",
    }
}
