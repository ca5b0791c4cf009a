//! The mutation root. Every mutation goes through `Services::mutate`: role checked first, one
//! audit event written whatever the outcome.

use async_graphql::{Context, ID, InputObject, Object, Result};

use super::backup::Backup;
use super::job::Job;
use super::schedule::{RetentionPolicy, RetentionPolicyInput, Schedule, ScheduleInput};
use super::types::{BackupType, VerifyLevel};
use super::{caller, services};
use crate::service::backups::CreateBackup;
use crate::service::restores::RestoreInput;

/// What to back up.
#[derive(InputObject)]
pub struct CreateBackupInput {
    /// Why (default MANUAL).
    #[graphql(default_with = "BackupType::Manual")]
    pub backup_type: BackupType,
    /// Only these tables (`schema.name`, SQL quoting rules); all when left out.
    pub tables: Option<Vec<String>>,
    /// Also archive the application's files directory (CELLAR_FILES_DIR on the workers).
    #[graphql(default)]
    pub include_files: bool,
    /// Also copy it to Google Drive after the local copy completes (refused when Drive is
    /// not configured).
    #[graphql(default)]
    pub upload_to_drive: bool,
    /// Verify right after taking it.
    #[graphql(default)]
    pub verify_backup: bool,
    /// Which configured source (default: the first).
    pub source: Option<String>,
}

impl From<CreateBackupInput> for CreateBackup {
    fn from(i: CreateBackupInput) -> Self {
        Self {
            backup_type: Some(i.backup_type.into()),
            tables: i.tables,
            include_files: i.include_files,
            upload_to_drive: i.upload_to_drive,
            verify_backup: i.verify_backup,
            source: i.source,
        }
    }
}

/// What to restore, and where.
#[derive(InputObject)]
pub struct RestoreBackupInput {
    /// The backup to restore.
    pub backup_id: ID,
    /// Only these tables (`schema.name`); all when left out.
    pub tables: Option<Vec<String>>,
    /// Another database on the same server (created when missing); default: the backup's source.
    pub target_database: Option<String>,
    /// Must be true: a restore replaces data.
    #[graphql(default)]
    pub confirm_restore: bool,
    /// Back up what will be replaced first (default true); rollbackRestore needs it.
    #[graphql(default = true)]
    pub create_safety_backup: bool,
    /// Let a table restore commit even if foreign keys would then point nowhere (default false:
    /// such a restore is rolled back, naming the constraint).
    #[graphql(default)]
    pub accept_broken_references: bool,
    /// Also put the backup's files archive back into the workers' `CELLAR_FILES_DIR`,
    /// replacing its content (default false). The backup must include files; the safety
    /// backup then includes the current files.
    #[graphql(default)]
    pub restore_files: bool,
}

impl From<RestoreBackupInput> for RestoreInput {
    fn from(i: RestoreBackupInput) -> Self {
        Self {
            backup_id: i.backup_id.to_string(),
            tables: i.tables,
            target_database: i.target_database,
            confirm_restore: i.confirm_restore,
            create_safety_backup: i.create_safety_backup,
            accept_broken_references: i.accept_broken_references,
            restore_files: i.restore_files,
        }
    }
}

/// Changes.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Enqueues a backup; returns its job (with `backup { id }`). Operators and masters.
    async fn create_backup(&self, ctx: &Context<'_>, input: CreateBackupInput) -> Result<Job> {
        let (_, job) = services(ctx)
            .create_backup(caller(ctx), input.into())
            .await?;
        Ok(job.into())
    }

    /// Enqueues a verification of a completed backup: QUICK (sizes), DEEP (every byte, the
    /// default) or DRILL (deep, then a scratch restore compared table by table). Operators and
    /// masters.
    async fn verify_backup(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default_with = "VerifyLevel::Deep")] level: VerifyLevel,
    ) -> Result<Job> {
        let job = services(ctx)
            .verify_backup(caller(ctx), &id, level.into())
            .await?;
        Ok(job.into())
    }

    /// Enqueues the deletion of a backup's stored objects; the worker marks it DELETED when
    /// done (the row stays, for the record). Masters.
    async fn delete_backup(&self, ctx: &Context<'_>, id: ID) -> Result<Job> {
        Ok(services(ctx).delete_backup(caller(ctx), &id).await?.into())
    }

    /// Enqueues a restore (a safety backup first, unless turned off); refused without
    /// `confirmRestore: true`. Masters.
    async fn restore_backup(&self, ctx: &Context<'_>, input: RestoreBackupInput) -> Result<Job> {
        let job = services(ctx)
            .restore_backup(caller(ctx), input.into())
            .await?;
        Ok(job.into())
    }

    /// Rolls back the restore that ran as job `jobId` by restoring its safety backup. Masters.
    async fn rollback_restore(&self, ctx: &Context<'_>, job_id: ID) -> Result<Job> {
        Ok(services(ctx)
            .rollback_restore(caller(ctx), &job_id)
            .await?
            .into())
    }

    /// Cancels a job: masters any, operators the ones they started.
    async fn cancel_job(&self, ctx: &Context<'_>, id: ID) -> Result<Job> {
        Ok(services(ctx).cancel_job(caller(ctx), &id).await?.into())
    }

    /// Runs the live probes (catalog, sources and the dump role, pg_dump, key, local directory,
    /// Drive, workers) on a worker and waits for them (at most `timeoutSeconds`, default 45).
    /// A mutation because probes write (and delete) small objects. Operators and masters.
    async fn diagnose(
        &self,
        ctx: &Context<'_>,
        timeout_seconds: Option<f64>,
    ) -> Result<super::health::Diagnosis> {
        Ok(services(ctx)
            .diagnose(caller(ctx), timeout_seconds)
            .await?
            .into())
    }

    /// Creates or replaces a schedule (by name). A new schedule, or a changed cron or time zone,
    /// fires only at times after the change. Masters.
    async fn upsert_schedule(&self, ctx: &Context<'_>, input: ScheduleInput) -> Result<Schedule> {
        let row = services(ctx)
            .upsert_schedule(caller(ctx), input.into())
            .await?;
        Ok(row.into())
    }

    /// Enables or disables a schedule (by name or id); fires missed while disabled are not
    /// run. Masters.
    async fn set_schedule_enabled(
        &self,
        ctx: &Context<'_>,
        schedule: String,
        enabled: bool,
    ) -> Result<Schedule> {
        let row = services(ctx)
            .set_schedule_enabled(caller(ctx), &schedule, enabled)
            .await?;
        Ok(row.into())
    }

    /// Deletes a schedule (by name or id); the backups it took stay. Masters.
    async fn delete_schedule(&self, ctx: &Context<'_>, schedule: String) -> Result<Schedule> {
        let row = services(ctx)
            .delete_schedule(caller(ctx), &schedule)
            .await?;
        Ok(row.into())
    }

    /// Sets the retention policy of one backup type. Masters.
    async fn set_retention_policy(
        &self,
        ctx: &Context<'_>,
        input: RetentionPolicyInput,
    ) -> Result<RetentionPolicy> {
        let p = services(ctx)
            .set_retention_policy(caller(ctx), input.into())
            .await?;
        Ok(p.into())
    }

    /// Pins a backup: retention never deletes it, deleteBackup refuses it. Operators and
    /// masters.
    async fn pin_backup(&self, ctx: &Context<'_>, id: ID) -> Result<Backup> {
        Ok(services(ctx)
            .set_pinned(caller(ctx), &id, true)
            .await?
            .into())
    }

    /// Unpins a backup (it becomes deletable again). Masters.
    async fn unpin_backup(&self, ctx: &Context<'_>, id: ID) -> Result<Backup> {
        Ok(services(ctx)
            .set_pinned(caller(ctx), &id, false)
            .await?
            .into())
    }

    /// Runs a cancelled or discarded job again. Masters.
    async fn retry_job(&self, ctx: &Context<'_>, id: ID) -> Result<Job> {
        Ok(services(ctx).retry_job(caller(ctx), &id).await?.into())
    }
}
