//! Restores: asking for one, and rolling one back. Masters only (`Permission::Restore`).

use cellar_core::auth::Permission;
use cellar_core::backup::BackupId;
use cellar_core::queue::{self, JobRow};
use cellar_core::restore::catalog::{self, RestoreRequest};
use serde::Serialize;
use serde_json::json;

use super::{Audit, Caller, Services};
use crate::error::ApiError;

/// What a person asks to restore.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreInput {
    /// The backup to restore.
    pub backup_id: String,
    /// Only these tables (`schema.name`); all when left out.
    pub tables: Option<Vec<String>>,
    /// Another database on the same server (created when missing); default the source itself.
    pub target_database: Option<String>,
    /// Required to overwrite a database that has data.
    pub confirm_restore: bool,
    /// Back up what will be replaced first (default true).
    pub create_safety_backup: bool,
    /// Let a table restore commit with foreign keys left pointing nowhere.
    pub accept_broken_references: bool,
    /// Also restore the files archive into `CELLAR_FILES_DIR`.
    pub restore_files: bool,
}

impl Services {
    /// Enqueues a restore; refused without `confirmRestore: true`.
    pub async fn restore_backup(
        &self,
        caller: &Caller,
        input: RestoreInput,
    ) -> Result<JobRow, ApiError> {
        let audit = Audit {
            action: "restoreBackup",
            target: Some(input.backup_id.clone()),
            arguments: json!({ "input": input }),
        };
        self.mutate(caller, Permission::Restore, audit, |_| async {
            if !input.confirm_restore {
                return Err(ApiError::InvalidInput(
                    "a restore overwrites data: set confirmRestore: true to proceed".into(),
                ));
            }
            let id: BackupId = input.backup_id.parse().map_err(ApiError::InvalidInput)?;
            let mut req = RestoreRequest::new(id);
            req.tables = input.tables;
            req.target_database = input.target_database;
            req.confirm = true;
            req.create_safety_backup = input.create_safety_backup;
            req.accept_broken_references = input.accept_broken_references;
            req.files = input.restore_files;
            let (_, job) = catalog::create(&self.pool, &req).await?;
            Ok((queue::get(&self.pool, job.id).await?, Some(job.id)))
        })
        .await
    }

    /// Rolls back the restore run by job `job_id`: restores its safety backup.
    pub async fn rollback_restore(
        &self,
        caller: &Caller,
        job_id: &str,
    ) -> Result<JobRow, ApiError> {
        let audit = Audit {
            action: "rollbackRestore",
            target: Some(job_id.into()),
            arguments: json!({ "jobId": job_id }),
        };
        self.mutate(caller, Permission::Restore, audit, |_| async {
            let jid: i64 = job_id
                .parse()
                .map_err(|_| ApiError::InvalidInput(format!("invalid job id {job_id:?}")))?;
            let restore = catalog::by_job(&self.pool, jid)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no restore ran as job {jid}")))?;
            let (_, job) = catalog::rollback(&self.pool, restore).await?;
            Ok((queue::get(&self.pool, job.id).await?, Some(job.id)))
        })
        .await
    }
}
