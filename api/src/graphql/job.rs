//! The `Job` type, converted from the queue's `JobRow`, and job events.

use std::sync::Arc;

use async_graphql::{Context, ID, Object, Result, SimpleObject};
use cellar_core::auth::Permission;
use cellar_core::queue::JobRow;
use serde_json::Value;

use super::backup::Backup;
use super::types::{JobProgress, JobState, PageInfo};
use super::{caller, services};
use crate::error::ApiError;
use crate::events::{BackupSlot, Update};

/// A job of the queue: a backup, a verification, a deletion... The slot holds its backup once
/// read; it is shared with everyone holding the same version of the row (see [`Update`]).
pub struct Job(pub Arc<JobRow>, pub BackupSlot);

impl From<JobRow> for Job {
    fn from(r: JobRow) -> Self {
        Self(Arc::new(r), BackupSlot::default())
    }
}

impl From<Arc<JobRow>> for Job {
    fn from(r: Arc<JobRow>) -> Self {
        Self(r, BackupSlot::default())
    }
}

impl From<Update> for Job {
    fn from(u: Update) -> Self {
        Self(u.row, u.backup)
    }
}

/// The backup a job works on, from its arguments.
fn backup_id(row: &JobRow) -> Option<&str> {
    row.args.get("backupId").and_then(Value::as_str)
}

/// Fills the backup slots of a page of jobs with one catalog read instead of one per job.
pub async fn load_backups(ctx: &Context<'_>, jobs: &[Job]) -> Result<()> {
    let ids: Vec<String> = jobs
        .iter()
        .filter_map(|j| backup_id(&j.0).map(str::to_string))
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let found = services(ctx).backups_by_id(caller(ctx), &ids).await?;
    for j in jobs {
        if let Some(id) = backup_id(&j.0) {
            let _ = j.1.set(found.get(id).cloned());
        }
    }
    Ok(())
}

/// One failed attempt.
#[derive(SimpleObject)]
pub struct JobAttemptError {
    pub attempt: Option<i32>,
    pub at: Option<String>,
    pub error: String,
}

fn attempt_error(v: &Value) -> JobAttemptError {
    JobAttemptError {
        attempt: v["attempt"].as_i64().map(|a| a as i32),
        at: v["at"].as_str().map(str::to_string),
        error: v["error"].as_str().unwrap_or_default().to_string(),
    }
}

#[Object]
impl Job {
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// `backup`, `verify`, `delete`, ...
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    async fn state(&self) -> JobState {
        self.0.state.into()
    }
    /// Attempts so far (the running one included).
    async fn attempt(&self) -> i32 {
        self.0.attempt
    }
    async fn max_attempts(&self) -> i32 {
        self.0.max_attempts
    }
    /// The latest progress report, while running and after.
    async fn progress(&self) -> Option<JobProgress> {
        let p = self.0.progress.clone()?;
        serde_json::from_value(p).ok()
    }
    /// The last attempt's error, if any.
    async fn error(&self) -> Option<String> {
        self.0.errors.last().map(|e| attempt_error(e).error)
    }
    /// Every failed attempt, oldest first.
    async fn errors(&self) -> Vec<JobAttemptError> {
        self.0.errors.iter().map(attempt_error).collect()
    }
    /// What the job returned, once finished (a running job's checkpoint is not shown: it may
    /// hold resumable-upload handles). Secret-looking fields are scrubbed.
    async fn result(&self) -> Option<async_graphql::Json<Value>> {
        let r = self.0.result.clone().filter(|_| self.0.state.is_final())?;
        Some(async_graphql::Json(cellar_core::audit::scrub(r)))
    }
    async fn cancel_requested(&self) -> bool {
        self.0.cancel_requested_at.is_some()
    }
    async fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.created_at
    }
    async fn scheduled_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.scheduled_at
    }
    async fn attempted_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.0.attempted_at
    }
    async fn finished_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.0.finished_at
    }
    /// The backup this job works on, if it works on one.
    // Read once per version of the job: the subscribers of one update, or the nodes of one
    // page, share the read (the slot).
    async fn backup(&self, ctx: &Context<'_>) -> Result<Option<Backup>> {
        let Some(id) = backup_id(&self.0) else {
            return Ok(None);
        };
        let (svc, who) = (services(ctx), caller(ctx));
        // Checked for every caller: the slot may have been filled for someone else.
        who.require(Permission::Read)?;
        let row = self
            .1
            .get_or_try_init(|| async {
                match svc.backup(who, id).await {
                    Ok(b) => Ok(Some(b)),
                    Err(ApiError::NotFound(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?;
        Ok(row.clone().map(Into::into))
    }
}

/// A page of jobs.
#[derive(SimpleObject)]
pub struct JobConnection {
    pub nodes: Vec<Job>,
    pub page_info: PageInfo,
}

/// A change of a job's state or progress, as published by the worker.
pub struct JobEvent(pub Update);

#[Object]
impl JobEvent {
    async fn id(&self) -> ID {
        self.0.row.id.into()
    }
    async fn kind(&self) -> &str {
        &self.0.row.kind
    }
    async fn state(&self) -> JobState {
        self.0.row.state.into()
    }
    async fn attempt(&self) -> i32 {
        self.0.row.attempt
    }
    /// The whole job, as it was when the event was published.
    async fn job(&self) -> Job {
        self.0.clone().into()
    }
}
