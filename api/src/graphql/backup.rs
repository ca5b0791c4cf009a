//! The `Backup` type and what hangs off it, converted from the catalog's `BackupRow`.

use async_graphql::{Context, ID, Object, Result, SimpleObject};
use cellar_core::backup::catalog::BackupRow;
use cellar_core::backup::listing::Statistics;
use serde::Deserialize;
use serde_json::Value;

use super::job::Job;
use super::types::{BackupStatus, BackupType, PageInfo};
use super::{caller, services};

/// A backup as the catalog knows it.
pub struct Backup(pub BackupRow);

impl From<BackupRow> for Backup {
    fn from(r: BackupRow) -> Self {
        Self(r)
    }
}

/// Sizes in bytes (Float: they may exceed GraphQL's 32-bit Int).
#[derive(SimpleObject)]
pub struct BackupSizes {
    /// Bytes before compression and encryption.
    pub plain_bytes: Option<f64>,
    /// Bytes stored (all objects, KEY and MANIFEST included).
    pub stored_bytes: Option<f64>,
}

/// Where copies of the backup are.
#[derive(SimpleObject)]
pub struct BackupStorage {
    pub local_available: bool,
    pub drive_available: bool,
}

/// One table in a backup.
#[derive(SimpleObject, Deserialize)]
pub struct BackupTable {
    pub schema: String,
    pub name: String,
    pub rows: Option<f64>,
}

/// Totals of a verified backup.
#[derive(SimpleObject, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct VerificationSummary {
    pub total_records: f64,
    pub tables_with_data: i64,
    pub total_tables: i64,
}

/// An object that failed verification.
#[derive(SimpleObject, Deserialize)]
pub struct VerificationFailure {
    pub object: String,
    pub error: String,
}

/// What a restore drill compared.
#[derive(SimpleObject, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillReport {
    /// Tables whose row count and row fingerprint matched or were found to differ.
    pub tables_compared: i64,
    /// Rows compared over all tables.
    pub rows_compared: f64,
    /// Seconds the scratch restore and the comparison took.
    pub seconds: f64,
}

/// The last verification's outcome.
#[derive(SimpleObject, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// `valid` or `invalid`.
    pub status: String,
    /// `quick`, `deep` or `drill`.
    pub level: Option<String>,
    #[serde(default)]
    pub summary: VerificationSummary,
    #[serde(default)]
    pub objects_checked: Option<i64>,
    #[serde(default)]
    pub failures: Vec<VerificationFailure>,
    /// For a DRILL: what the scratch restore compared.
    #[serde(default)]
    pub drill: Option<DrillReport>,
}

fn location(v: &Value, name: &str) -> bool {
    v.get(name).and_then(Value::as_str) == Some("available")
}

#[Object]
impl Backup {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn backup_type(&self) -> BackupType {
        self.0.backup_type.into()
    }
    async fn status(&self) -> BackupStatus {
        self.0.state.into()
    }
    /// Whether it holds an archive of the files directory (restoreFiles can put it back).
    async fn include_files(&self) -> bool {
        self.0.include_files
    }
    /// Pinned: retention never deletes it, and deleteBackup refuses it until unpinned.
    async fn pinned(&self) -> bool {
        self.0.pinned
    }
    /// The configured source's name.
    async fn source(&self) -> &str {
        &self.0.source
    }
    /// Tables asked for (`null`: all of them).
    async fn requested_tables(&self) -> Option<&[String]> {
        self.0.requested_tables.as_deref()
    }
    async fn verify_after(&self) -> bool {
        self.0.verify_after
    }
    async fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.created_at
    }
    async fn completed_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.0.completed_at
    }
    async fn sizes(&self) -> BackupSizes {
        BackupSizes {
            plain_bytes: self.0.plain_bytes.map(|b| b as f64),
            stored_bytes: self.0.stored_bytes.map(|b| b as f64),
        }
    }
    async fn table_count(&self) -> Option<i32> {
        self.0.table_count
    }
    async fn total_rows(&self) -> Option<f64> {
        self.0.total_rows.map(|r| r as f64)
    }
    /// The tables the backup holds, with row counts.
    async fn tables(&self) -> Vec<BackupTable> {
        let tables = self.0.tables.clone().unwrap_or(Value::Null);
        serde_json::from_value(tables).unwrap_or_default()
    }
    /// The last verification, if any.
    async fn verification(&self) -> Option<Verification> {
        let v = self.0.verification.clone()?;
        serde_json::from_value(v).ok()
    }
    async fn storage(&self) -> BackupStorage {
        BackupStorage {
            local_available: location(&self.0.locations, "local"),
            drive_available: location(&self.0.locations, "drive"),
        }
    }
    async fn warnings(&self) -> &[String] {
        &self.0.warnings
    }
    /// Why it failed.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// The job that takes it (gone once pruned).
    async fn job(&self, ctx: &Context<'_>) -> Result<Option<Job>> {
        let Some(id) = self.0.job_id else {
            return Ok(None);
        };
        match services(ctx).job(caller(ctx), &id.to_string()).await {
            Ok(j) => Ok(Some(j.into())),
            Err(crate::error::ApiError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Counts over the listed backups (the same filter, all pages).
#[derive(SimpleObject)]
pub struct BackupStatistics {
    pub total_backups: i64,
    /// `{"manual": 3, "daily": 7}`.
    pub by_type: async_graphql::Json<std::collections::BTreeMap<String, i64>>,
    /// `{"completed": 9, "failed": 1}`.
    pub by_status: async_graphql::Json<std::collections::BTreeMap<String, i64>>,
}

impl From<Statistics> for BackupStatistics {
    fn from(s: Statistics) -> Self {
        Self {
            total_backups: s.total_backups,
            by_type: async_graphql::Json(s.by_type),
            by_status: async_graphql::Json(s.by_status),
        }
    }
}

/// A page of backups, with statistics over all pages.
pub struct BackupConnection {
    pub nodes: Vec<Backup>,
    pub page_info: PageInfo,
    pub filter: cellar_core::backup::listing::Filter,
}

#[Object]
impl BackupConnection {
    async fn nodes(&self) -> &[Backup] {
        &self.nodes
    }
    async fn page_info(&self) -> &PageInfo {
        &self.page_info
    }
    /// Counted only when asked for.
    async fn statistics(&self, ctx: &Context<'_>) -> Result<BackupStatistics> {
        Ok(services(ctx)
            .statistics(caller(ctx), self.filter)
            .await?
            .into())
    }
}
