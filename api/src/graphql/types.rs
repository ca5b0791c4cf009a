//! GraphQL enums and small value types, each converted From its domain type.

use async_graphql::{Enum, SimpleObject};
use cellar_core::{audit, auth, backup, queue};

use crate::service::backups::VerifyLevel as DomainLevel;

/// Why a backup was taken.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "backup::BackupType")]
pub enum BackupType {
    Manual,
    Daily,
    Weekly,
    Monthly,
    /// Taken by a restore before it overwrites anything.
    Safety,
}

/// Where a backup is in its life.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "backup::BackupState")]
pub enum BackupStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Deleted,
}

/// A job's state (docs/JOB_STATES.md).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "queue::JobState")]
pub enum JobState {
    Available,
    Scheduled,
    Running,
    Retryable,
    Completed,
    Cancelled,
    Discarded,
}

/// How thoroughly to verify a backup.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "DomainLevel")]
pub enum VerifyLevel {
    /// KEY and MANIFEST authenticate; every object present at its recorded size.
    Quick,
    /// Every byte read, authenticated, decompressed and counted.
    Deep,
    /// DEEP, then a restore into a scratch database whose tables are compared row by row
    /// (as fingerprints) with the backup; the scratch database is dropped.
    Drill,
}

/// A token's role.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "auth::Role")]
pub enum Role {
    Master,
    Operator,
    Viewer,
}

/// How an audited attempt ended.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "audit::Outcome")]
pub enum AuditOutcome {
    Allowed,
    Denied,
    Failed,
}

/// Where a page ended.
#[derive(SimpleObject, Clone, Debug)]
pub struct PageInfo {
    /// Pass as `after` to get the next page.
    pub end_cursor: Option<String>,
    /// False on the last page.
    pub has_next_page: bool,
}

impl PageInfo {
    /// From the service's "next cursor".
    pub fn new(next: Option<String>) -> Self {
        Self {
            has_next_page: next.is_some(),
            end_cursor: next,
        }
    }
}

/// A running job's progress, exactly as the worker writes it into `job.progress`.
#[derive(SimpleObject, Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JobProgress {
    /// `starting`, `schema`, `data`, `manifest`, `verifying`, `cleanup`, `done`.
    pub phase: Option<String>,
    /// 0-100, estimated.
    pub percent: Option<f64>,
    /// Plain bytes processed.
    pub bytes_done: Option<f64>,
    /// Plain bytes expected.
    pub bytes_total: Option<f64>,
    /// Rows processed.
    pub rows_done: Option<f64>,
    /// Tables (or objects, while verifying) finished.
    pub tables_done: Option<i64>,
    /// Tables (or objects) in all.
    pub tables_total: Option<i64>,
    /// Bytes per second.
    pub throughput: Option<f64>,
    /// Seconds left, when it can be estimated.
    pub eta: Option<f64>,
}

/// One audited attempt.
#[derive(SimpleObject, Clone, Debug)]
pub struct AuditEvent {
    pub id: async_graphql::ID,
    pub at: chrono::DateTime<chrono::Utc>,
    pub token_name: Option<String>,
    pub role: Option<Role>,
    pub action: String,
    pub target: Option<String>,
    pub job_id: Option<async_graphql::ID>,
    /// The arguments, with secrets removed.
    pub arguments: async_graphql::Json<serde_json::Value>,
    pub outcome: AuditOutcome,
    pub error_code: Option<String>,
    pub client_address: Option<String>,
}

impl From<audit::AuditEvent> for AuditEvent {
    fn from(e: audit::AuditEvent) -> Self {
        Self {
            id: e.id.into(),
            at: e.at,
            token_name: e.token_name,
            role: e.role.map(Into::into),
            action: e.action,
            target: e.target,
            job_id: e.job_id.map(Into::into),
            arguments: async_graphql::Json(e.arguments),
            outcome: e.outcome.into(),
            error_code: e.error_code,
            client_address: e.client_addr,
        }
    }
}

/// A page of audit events.
#[derive(SimpleObject)]
pub struct AuditConnection {
    pub nodes: Vec<AuditEvent>,
    pub page_info: PageInfo,
}

/// The caller's token.
#[derive(SimpleObject)]
pub struct Me {
    pub name: String,
    pub role: Role,
}
