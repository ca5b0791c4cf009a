//! The restore job: everything in order, the target untouched until the last step.
//!
//! ```text
//! open the backup (key, manifest, objects, schema, sequences)  -- refuse before anything
//! lock the target database (advisory lock on the catalog)
//! look at the target: exists? holds tables? is it Cellar's own catalog? (refuse)
//! full:   needs confirm if it holds tables; safety backup if it exists; build aside; swap
//! tables: needs the database and confirm; safety backup of the tables; one transaction
//! record completed (with what was restored) or failed (with why; the target is unchanged)
//! ```

use std::time::Instant;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::load::Meter;
use super::open::OpenedBackup;
use super::target::{Server, TargetLock, database_info, has_relations, refuse_catalog};
use super::{RestoreError, RestoreId, RestoreRow, catalog, full, safety, tables};
use crate::backup::{BackupEnv, BackupId, Progress, ProgressReport};

/// Runs restore `id` (its row must exist) and records the outcome on it. Returns the result
/// stored on the row.
#[tracing::instrument(skip_all, fields(restore_id = %id))]
pub async fn run(
    env: &BackupEnv,
    id: RestoreId,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<Value, RestoreError> {
    let row = catalog::get(&env.pool, id)
        .await
        .map_err(RestoreError::from)?
        .ok_or_else(|| RestoreError::Permanent(format!("restore {id} is not in the catalog")))?;
    catalog::mark_running(&env.pool, id).await?;
    let started = Instant::now();
    match execute(env, &row, progress, cancel).await {
        Ok(mut result) => {
            result["seconds"] = json!(started.elapsed().as_secs_f64());
            catalog::mark_completed(&env.pool, id, &result).await?;
            Ok(result)
        }
        Err(e) => {
            tracing::error!(error = %e, "restore failed; the target was left as it was");
            catalog::mark_failed(&env.pool, id, &e.to_string()).await?;
            Err(e)
        }
    }
}

/// Runs `work` unless `cancel` fires first.
async fn cancellable<T>(
    cancel: &CancellationToken,
    work: impl Future<Output = Result<T, RestoreError>>,
) -> Result<T, RestoreError> {
    tokio::select! {
        r = work => r,
        _ = cancel.cancelled() => Err(RestoreError::Cancelled),
    }
}

async fn execute(
    env: &BackupEnv,
    row: &RestoreRow,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<Value, RestoreError> {
    progress.report(ProgressReport {
        phase: "checking".into(),
        ..Default::default()
    });
    let backup_id: BackupId = row.backup_id.parse().map_err(RestoreError::Permanent)?;
    let source = env
        .source(Some(&row.source))
        .map_err(RestoreError::Permanent)?;
    let server = Server::new(&source.url);
    let target = row.target_database.as_str();
    let backup = cancellable(cancel, OpenedBackup::open(env, &backup_id)).await?;
    let lock = TargetLock::acquire(&env.pool, &server.identity(target)).await?;
    let result = locked(env, row, &server, &backup, progress, cancel).await;
    lock.release().await;
    result
}

/// The restore proper, under the target's lock.
async fn locked(
    env: &BackupEnv,
    row: &RestoreRow,
    server: &Server,
    backup: &OpenedBackup,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<Value, RestoreError> {
    let target = row.target_database.as_str();
    let mut admin = server.maintenance(&[target]).await?;
    let existing = database_info(&mut admin, target).await?;
    drop(admin);
    let holds_tables = match existing {
        Some(_) => {
            let mut conn = server.connect(target).await?;
            refuse_catalog(&env.pool, &mut conn).await?;
            has_relations(&mut conn).await?
        }
        None => false,
    };
    let job = Job {
        env,
        row,
        server,
        backup,
        progress,
        cancel,
    };
    match &row.tables {
        None => job.full(existing.as_ref(), holds_tables).await,
        Some(names) => job.tables(existing.is_some(), names).await,
    }
}

/// One restore's inputs, shared by both kinds.
struct Job<'a> {
    env: &'a BackupEnv,
    row: &'a RestoreRow,
    server: &'a Server,
    backup: &'a OpenedBackup,
    progress: &'a dyn Progress,
    cancel: &'a CancellationToken,
}

impl Job<'_> {
    fn id(&self) -> RestoreId {
        RestoreId(self.row.id)
    }

    fn meter(&self) -> Meter<'_> {
        let objects = self.backup.data_objects();
        let bytes = objects.iter().map(|(o, _)| o.digest.plain_size).sum();
        Meter::new(self.progress, bytes, objects.len() as u64)
    }

    async fn safety(&self, tables: Option<&[String]>) -> Result<Option<BackupId>, RestoreError> {
        if !self.row.create_safety_backup {
            return Ok(None);
        }
        let target = &self.row.target_database;
        let url = self.server.url(target);
        let taken = safety::take(
            self.env,
            self.id(),
            &url,
            target,
            tables,
            self.progress,
            self.cancel,
        );
        Ok(Some(taken.await?))
    }

    async fn full(
        &self,
        existing: Option<&super::target::DatabaseInfo>,
        holds_tables: bool,
    ) -> Result<Value, RestoreError> {
        let target = self.row.target_database.as_str();
        if holds_tables && !self.row.confirmed {
            return Err(RestoreError::Permanent(format!(
                "database {target:?} already holds tables: confirm the restore \
                 (confirmRestore: true) to replace it; nothing was changed"
            )));
        }
        let safety = match existing {
            Some(_) => self.safety(None).await?,
            None => None,
        };
        let meter = self.meter();
        let scratch = full::scratch_name(target, self.id());
        let build = full::build(
            self.env,
            self.server,
            self.backup,
            existing,
            &scratch,
            &meter,
        );
        let mut done = cancellable(self.cancel, build).await;
        if done.is_ok() {
            meter.phase("swap");
            let old = full::old_name(target, self.id());
            let swapped = full::swap(self.server, target, &scratch, &old, existing).await;
            done = swapped.and(done);
        }
        if done.is_err()
            && let Err(e) = full::discard(self.server, &scratch).await
        {
            tracing::error!(error = %e, scratch, "could not drop the scratch database");
        }
        let rows = done?;
        Ok(json!({
            "mode": "full", "database": target, "rows": rows,
            "tables": self.backup.manifest.tables.len(),
            "safetyBackupId": safety.map(|s| s.to_string()),
        }))
    }

    async fn tables(&self, exists: bool, names: &[String]) -> Result<Value, RestoreError> {
        let target = self.row.target_database.as_str();
        if !exists {
            return Err(RestoreError::Permanent(format!(
                "database {target:?} does not exist: a table restore replaces rows of tables \
                 in an existing database (restore the whole backup to create it)"
            )));
        }
        if !self.row.confirmed {
            return Err(RestoreError::Permanent(format!(
                "a table restore replaces the rows of live tables in {target:?}: confirm it \
                 (confirmRestore: true); nothing was changed"
            )));
        }
        let safety = self.safety(Some(names)).await?;
        let meter = self.meter();
        let accept = self.row.accept_broken_references;
        let work = tables::restore(
            self.env,
            self.server,
            self.backup,
            target,
            names,
            accept,
            &meter,
        );
        let out = cancellable(self.cancel, work).await?;
        let warnings: Vec<String> = out.broken.iter().map(ToString::to_string).collect();
        Ok(json!({
            "mode": "tables", "database": target, "rows": out.rows, "tables": out.tables,
            "safetyBackupId": safety.map(|s| s.to_string()), "warnings": warnings,
        }))
    }
}
