//! Backups: create, verify, delete (audited), list and read.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cellar_core::auth::Permission;
use cellar_core::backup::catalog::{self, BackupRequest, BackupRow};
use cellar_core::backup::listing::{self, Filter, Statistics};
use cellar_core::backup::{BackupId, BackupType, requests};
use cellar_core::dump::TableName;
use cellar_core::queue::{self, JobRow};
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Audit, Caller, Services};
use crate::error::ApiError;

/// Most tables one backup request may name.
pub const MAX_TABLES: usize = 1000;
/// Largest page.
pub const MAX_LIMIT: i64 = 100;

/// A backup as asked for by a client, before it is checked.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateBackup {
    pub backup_type: Option<BackupType>,
    pub tables: Option<Vec<String>>,
    pub include_files: bool,
    pub upload_to_drive: bool,
    pub verify_backup: bool,
    pub source: Option<String>,
}

/// How thoroughly to verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyLevel {
    /// KEY and MANIFEST authenticate; every object present at its recorded size.
    Quick,
    /// Every byte read, authenticated, decompressed and counted.
    Deep,
    /// A restore into a scratch database (not supported yet).
    Drill,
}

/// One page of backups.
pub struct BackupPage {
    pub rows: Vec<BackupRow>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// Parses a backup id from client input (anything else, `../` included, is refused).
pub fn parse_id(s: &str) -> Result<BackupId, ApiError> {
    s.parse().map_err(ApiError::InvalidInput)
}

/// Checks a page size.
pub fn page_limit(limit: Option<i32>) -> Result<i64, ApiError> {
    match limit.map(i64::from) {
        None => Ok(20),
        Some(l) if (1..=MAX_LIMIT).contains(&l) => Ok(l),
        Some(l) => Err(ApiError::InvalidInput(format!(
            "limit must be 1 to {MAX_LIMIT}, got {l}"
        ))),
    }
}

fn encode_cursor(row: &BackupRow) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{}", row.created_at.to_rfc3339(), row.id))
}

fn decode_cursor(s: &str) -> Result<listing::Cursor, ApiError> {
    let bad = || ApiError::InvalidInput("invalid cursor: pass a page's endCursor unchanged".into());
    let text =
        String::from_utf8(URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?).map_err(|_| bad())?;
    let (at, id) = text.split_once('|').ok_or_else(bad)?;
    let at: DateTime<Utc> = DateTime::parse_from_rfc3339(at).map_err(|_| bad())?.into();
    Ok((at, parse_id(id).map_err(|_| bad())?.to_string()))
}

fn check_tables(tables: Option<Vec<String>>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(tables) = tables else {
        return Ok(None);
    };
    if tables.is_empty() || tables.len() > MAX_TABLES {
        return Err(ApiError::InvalidInput(format!(
            "tables: name 1 to {MAX_TABLES} tables, or leave it out for all"
        )));
    }
    let mut out = Vec::with_capacity(tables.len());
    for t in &tables {
        let name = TableName::parse(t).map_err(|e| ApiError::InvalidInput(e.to_string()))?;
        let canonical = name.to_string();
        if !out.contains(&canonical) {
            out.push(canonical);
        }
    }
    Ok(Some(out))
}

impl Services {
    fn check_create(&self, input: CreateBackup) -> Result<BackupRequest, ApiError> {
        if input.upload_to_drive && !self.drive_configured {
            return Err(ApiError::InvalidInput(
                "uploadToDrive: Google Drive is not configured (set GOOGLE_DRIVE_BACKUP_FOLDER_ID \
                 and the service-account key on the API and the workers)"
                    .into(),
            ));
        }
        if input.backup_type == Some(BackupType::Safety) {
            return Err(ApiError::InvalidInput(
                "safety backups are taken by restores only".into(),
            ));
        }
        let source = match input.source {
            None => self.sources[0].clone(),
            Some(s) if self.sources.contains(&s) => s,
            Some(s) => {
                let shown: String = s.chars().take(64).collect();
                return Err(ApiError::InvalidInput(format!(
                    "unknown source {shown:?}: configured sources are {}",
                    self.sources.join(", ")
                )));
            }
        };
        Ok(BackupRequest {
            backup_type: input.backup_type,
            source,
            tables: check_tables(input.tables)?,
            verify: input.verify_backup,
            include_files: input.include_files,
            upload_to_drive: input.upload_to_drive,
        })
    }

    /// Creates a backup and its job.
    pub async fn create_backup(
        &self,
        caller: &Caller,
        input: CreateBackup,
    ) -> Result<(BackupId, JobRow), ApiError> {
        let audit = Audit {
            action: "createBackup",
            target: None,
            arguments: json!({ "input": input }),
        };
        self.mutate(caller, Permission::CreateBackup, audit, |_| async {
            let req = self.check_create(input)?;
            let (id, job) = catalog::create(&self.pool, &req).await?;
            let row = queue::get(&self.pool, job.id).await?;
            Ok(((id, row), Some(job.id)))
        })
        .await
    }

    /// Enqueues a verification of a completed backup.
    pub async fn verify_backup(
        &self,
        caller: &Caller,
        id: &str,
        level: VerifyLevel,
    ) -> Result<JobRow, ApiError> {
        let audit = Audit {
            action: "verifyBackup",
            target: Some(id.into()),
            arguments: json!({ "id": id, "level": level }),
        };
        self.mutate(caller, Permission::VerifyBackup, audit, |_| async {
            let id = parse_id(id)?;
            let level = match level {
                VerifyLevel::Quick => cellar_core::backup::verify::Level::Quick,
                VerifyLevel::Deep => cellar_core::backup::verify::Level::Deep,
                VerifyLevel::Drill => cellar_core::backup::verify::Level::Drill,
            };
            let job = requests::verify(&self.pool, &id, level).await?;
            Ok((queue::get(&self.pool, job.id).await?, Some(job.id)))
        })
        .await
    }

    /// Enqueues the deletion of a backup's objects; the worker marks it deleted.
    pub async fn delete_backup(&self, caller: &Caller, id: &str) -> Result<JobRow, ApiError> {
        let audit = Audit {
            action: "deleteBackup",
            target: Some(id.into()),
            arguments: json!({ "id": id }),
        };
        self.mutate(caller, Permission::DeleteBackup, audit, |_| async {
            let id = parse_id(id)?;
            let job = requests::delete(&self.pool, &id).await?;
            Ok((queue::get(&self.pool, job.id).await?, Some(job.id)))
        })
        .await
    }

    /// One page of backups, newest first.
    pub async fn backups(
        &self,
        caller: &Caller,
        filter: Filter,
        limit: Option<i32>,
        after: Option<&str>,
    ) -> Result<BackupPage, ApiError> {
        caller.require(Permission::Read)?;
        let limit = page_limit(limit)?;
        let after = after.map(decode_cursor).transpose()?;
        let mut rows = listing::page(&self.pool, filter, limit + 1, after.as_ref()).await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next = rows.last().filter(|_| more).map(encode_cursor);
        Ok(BackupPage { rows, next })
    }

    /// Counts of the backups matching `filter`.
    pub async fn statistics(
        &self,
        caller: &Caller,
        filter: Filter,
    ) -> Result<Statistics, ApiError> {
        caller.require(Permission::Read)?;
        Ok(listing::statistics(&self.pool, filter).await?)
    }

    /// The backups among `ids` that exist, by id (one read for a page of jobs).
    pub async fn backups_by_id(
        &self,
        caller: &Caller,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, BackupRow>, ApiError> {
        caller.require(Permission::Read)?;
        let rows = catalog::get_many(&self.pool, ids).await?;
        Ok(rows.into_iter().map(|r| (r.id.clone(), r)).collect())
    }

    /// One backup; NOT_FOUND when unknown.
    pub async fn backup(&self, caller: &Caller, id: &str) -> Result<BackupRow, ApiError> {
        caller.require(Permission::Read)?;
        let id = parse_id(id)?;
        catalog::get(&self.pool, &id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("backup {id} not found")))
    }
}
