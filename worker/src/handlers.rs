//! The job kinds this worker runs: thin adapters from the queue's `JobContext` to core.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cellar_core::backup::upload::{CheckpointSink, UploadState};
use cellar_core::backup::{self, BackupEnv, BackupError, BackupId, Progress, ProgressReport};
use cellar_core::health::{diagnose, workers};
use cellar_core::restore::{self, RestoreError, RestoreId};
use cellar_core::retention;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::runtime::Worker;
use crate::{JobContext, JobError, JobOutput};

/// `ping`: completes at once with the worker's identity. `diagnose` and the queue benchmark
/// use it to measure that workers pick jobs up and how fast.
pub const PING: &str = "ping";

/// Registers every production handler.
pub fn register_all(w: &mut Worker, env: BackupEnv) {
    let id = w.id();
    w.register(PING, move |_ctx: JobContext| async move {
        Ok::<JobOutput, JobError>(Some(json!({ "worker": id })))
    });
    let env = Arc::new(env);
    let e = Arc::clone(&env);
    w.register(backup::JOB_BACKUP, move |ctx| {
        run_backup(Arc::clone(&e), ctx)
    });
    let d = Arc::clone(&env);
    w.register(backup::JOB_DELETE, move |ctx| {
        run_delete(Arc::clone(&d), ctx)
    });
    let r = Arc::clone(&env);
    w.register(restore::JOB_RESTORE, move |ctx| {
        run_restore(Arc::clone(&r), ctx)
    });
    let e = Arc::clone(&env);
    w.register(backup::JOB_VERIFY, move |ctx| {
        run_verify(Arc::clone(&e), ctx)
    });
    let u = Arc::clone(&env);
    w.register(backup::JOB_UPLOAD, move |ctx| {
        run_upload(Arc::clone(&u), ctx)
    });
    let r = Arc::clone(&env);
    w.register(retention::JOB_RETENTION, move |_ctx| {
        run_retention(Arc::clone(&r))
    });
    w.register(backup::JOB_ROTATE_KEYS, move |_ctx| {
        run_rotate(Arc::clone(&env))
    });
}

/// Registers `diagnose`: runs every probe with this worker's configuration and returns the
/// `Diagnosis` as the job's result (the API waits for it).
pub fn register_diagnose(w: &mut Worker, setup: diagnose::Setup) {
    let ran_on = format!("worker {} on {}", w.id(), workers::host_name());
    let setup = Arc::new(setup);
    w.register(diagnose::JOB_DIAGNOSE, move |_ctx: JobContext| {
        let (setup, ran_on) = (Arc::clone(&setup), ran_on.clone());
        async move {
            let d = diagnose::run_all(&setup, ran_on).await;
            Ok::<JobOutput, JobError>(Some(serde_json::to_value(d).unwrap_or(Value::Null)))
        }
    });
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BackupArgs {
    backup_id: String,
    /// For `verify` jobs: `quick`, `deep` (the default) or `drill`.
    #[serde(default)]
    level: Option<backup::verify::Level>,
}

fn backup_id(ctx: &JobContext) -> Result<BackupId, JobError> {
    let a: BackupArgs = ctx.args()?;
    a.backup_id.parse().map_err(JobError::Permanent)
}

fn job_error(e: BackupError) -> JobError {
    match e {
        BackupError::Permanent(m) => JobError::Permanent(m),
        BackupError::Transient(m) => JobError::Retry(m),
        BackupError::Cancelled => JobError::Cancelled,
    }
}

/// Keeps the latest report; a ticker writes it to the job row at most four times a second.
#[derive(Default)]
struct Latest(Mutex<Option<ProgressReport>>);

impl Progress for Latest {
    fn report(&self, r: ProgressReport) {
        *self.0.lock().expect("progress lock") = Some(r);
    }
}

/// Runs `work` while publishing its progress.
async fn with_progress<T>(
    ctx: &JobContext,
    latest: &Latest,
    work: impl std::future::Future<Output = T>,
) -> T {
    let ticker = async {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let next = latest.0.lock().expect("progress lock").take();
            if let Some(r) = next {
                let _ = ctx
                    .progress_now(serde_json::to_value(r).unwrap_or(Value::Null))
                    .await;
            }
        }
    };
    tokio::select! {
        out = work => out,
        _ = ticker => unreachable!("the ticker never ends"),
    }
}

async fn run_backup(env: Arc<BackupEnv>, ctx: JobContext) -> Result<JobOutput, JobError> {
    let id = backup_id(&ctx)?;
    let latest = Latest::default();
    let done = with_progress(
        &ctx,
        &latest,
        backup::run::take(&env, &id, &latest, &ctx.cancel),
    )
    .await
    .map_err(job_error)?;
    let row = backup::catalog::get(&env.pool, &id)
        .await
        .map_err(|e| JobError::Retry(e.to_string()))?;
    let mut out = json!({ "backupId": id.as_str(), "storedBytes": done.stored_bytes, "rows": done.total_rows });
    if row.is_some_and(|r| r.verify_after) {
        let level = backup::catalog::verify_level(&env.pool, &id)
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        let v = with_progress(
            &ctx,
            &latest,
            backup::verify::verify_at(&env, &id, level, &latest),
        )
        .await
        .map_err(job_error)?;
        out["verification"] = json!(v.status);
        if !v.is_valid() {
            return Err(JobError::Permanent(format!(
                "backup {id} failed verification: {:?}",
                v.failures
            )));
        }
    }
    ctx.progress_now(json!({"phase": "done", "percent": 100.0}))
        .await?;
    // Retention runs after each backup (one waiting pass at most); a failure here is not the
    // backup's: the periodic pass catches up.
    if let Err(e) = retention::request(&env.pool).await {
        tracing::warn!(error = %e, "could not enqueue the retention pass after a backup");
    }
    Ok(Some(out))
}

/// `retention`: finishes abandoned backups and restores ([`cellar_core::sweep`]), then plans at
/// the current time and enqueues a `delete` job per backup to remove.
async fn run_retention(env: Arc<BackupEnv>) -> Result<JobOutput, JobError> {
    // Abandoned rows first: a backup stuck `running` is neither kept nor deletable.
    if let Err(e) = cellar_core::sweep::sweep(&env).await {
        tracing::warn!(error = %e, "sweeping abandoned backups and restores failed");
    }
    let report = retention::apply(&env.pool, chrono::Utc::now())
        .await
        .map_err(|e| JobError::Retry(e.to_string()))?;
    Ok(Some(serde_json::to_value(report).unwrap_or(Value::Null)))
}

async fn run_verify(env: Arc<BackupEnv>, ctx: JobContext) -> Result<JobOutput, JobError> {
    let id = backup_id(&ctx)?;
    let level = ctx
        .args::<BackupArgs>()?
        .level
        .unwrap_or(backup::verify::Level::Deep);
    let latest = Latest::default();
    let v = with_progress(
        &ctx,
        &latest,
        backup::verify::verify_with(&env, &id, level, &latest, &ctx.cancel),
    )
    .await
    .map_err(job_error)?;
    ctx.progress_now(json!({"phase": "done", "percent": 100.0}))
        .await?;
    Ok(Some(serde_json::to_value(v).unwrap_or(Value::Null)))
}

/// Saves upload checkpoints in the job row (fenced on the lease).
struct JobCheckpoints<'a>(&'a JobContext);

#[async_trait::async_trait]
impl CheckpointSink for JobCheckpoints<'_> {
    async fn save(&self, state: &UploadState) -> Result<(), BackupError> {
        let v = serde_json::to_value(state).unwrap_or(Value::Null);
        self.0.checkpoint(v).await.map_err(|e| match e {
            JobError::LeaseLost => BackupError::Cancelled,
            other => BackupError::Transient(other.to_string()),
        })
    }
}

/// `upload`: copies a completed backup to Drive, resuming an earlier attempt's session. The
/// backup itself stays completed whatever happens here; only `locations.drive` follows.
async fn run_upload(env: Arc<BackupEnv>, ctx: JobContext) -> Result<JobOutput, JobError> {
    let id = backup_id(&ctx)?;
    let resume = ctx
        .job
        .checkpoint
        .clone()
        .and_then(|v| serde_json::from_value::<UploadState>(v).ok());
    let latest = Latest::default();
    let sink = JobCheckpoints(&ctx);
    let work = backup::upload::upload(&env, &id, resume, &sink, &latest, &ctx.cancel);
    match with_progress(&ctx, &latest, work).await {
        Ok(report) => {
            ctx.progress_now(json!({"phase": "done", "percent": 100.0}))
                .await?;
            Ok(Some(serde_json::to_value(report).unwrap_or(Value::Null)))
        }
        Err(e) => {
            let last = ctx.job.lease.attempt >= ctx.job.max_attempts;
            if matches!(e, BackupError::Permanent(_))
                || (last && !matches!(e, BackupError::Cancelled))
            {
                tracing::error!(backup_id = %id, error = %e, "the Google Drive copy failed");
                backup::catalog::set_location(&env.pool, &id, "drive", "failed")
                    .await
                    .map_err(|e| JobError::Retry(e.to_string()))?;
            }
            Err(job_error(e))
        }
    }
}

async fn run_rotate(env: Arc<BackupEnv>) -> Result<JobOutput, JobError> {
    let report = backup::rotate::rotate_all(&env).await.map_err(job_error)?;
    if !report.failed.is_empty() {
        // The others were re-wrapped; a retry only redoes the failed ones.
        return Err(JobError::Retry(format!(
            "could not re-wrap: {:?}",
            report.failed
        )));
    }
    Ok(Some(serde_json::to_value(report).unwrap_or(Value::Null)))
}

async fn run_delete(env: Arc<BackupEnv>, ctx: JobContext) -> Result<JobOutput, JobError> {
    let id = backup_id(&ctx)?;
    let removed = backup::delete::delete(&env, &id).await.map_err(job_error)?;
    Ok(Some(
        json!({ "backupId": id.as_str(), "objectsRemoved": removed }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RestoreArgs {
    restore_id: i64,
}

/// `restore` (and rollbacks, which are restores of a safety backup). A failure leaves the
/// target as it was; transient ones are retried.
async fn run_restore(env: Arc<BackupEnv>, ctx: JobContext) -> Result<JobOutput, JobError> {
    let args: RestoreArgs = ctx.args()?;
    let latest = Latest::default();
    let id = RestoreId(args.restore_id);
    let result = with_progress(
        &ctx,
        &latest,
        restore::run::run(&env, id, &latest, &ctx.cancel),
    )
    .await
    .map_err(|e| match e {
        RestoreError::Permanent(m) => JobError::Permanent(m),
        RestoreError::Transient(m) => JobError::Retry(m),
        RestoreError::Cancelled => JobError::Cancelled,
    })?;
    ctx.progress_now(json!({"phase": "done", "percent": 100.0}))
        .await?;
    Ok(Some(result))
}
