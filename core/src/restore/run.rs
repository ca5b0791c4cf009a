//! The restore job: everything in order, the target untouched until the last step.
//!
//! ```text
//! open the backup (key, manifest, objects, schema, sequences)  -- refuse before anything
//! lock the target database (advisory lock on the catalog)
//! look at the target: exists? holds tables? is it Cellar's own catalog? (refuse)
//! full:   needs confirm if it holds tables; safety backup if it exists; build aside; swap
//! tables: needs the database and confirm; safety backup of the tables; one transaction
//! files:  (restoreFiles) the archive extracted aside in CELLAR_FILES_DIR meanwhile, swapped in
//!         just before the database (full) or just after the rows commit (tables)
//! record completed (with what was restored) or failed (with why; the target is unchanged)
//! ```

use std::time::Instant;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::load::Meter;
use super::open::OpenedBackup;
use super::target::{Server, TargetLock, database_info, has_relations, refuse_catalog};
use super::{RestoreError, RestoreId, RestoreRow, catalog, files, full, safety, tables};
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
    // Files next: a worker without CELLAR_FILES_DIR, or a directory another restore holds,
    // refuses before the safety backup and the build.
    let result = match row.files {
        true => files::lock(env, &env.pool, RestoreId(row.id))
            .await
            .map(Some),
        false => Ok(None),
    };
    let result = match result {
        Ok(files_lock) => {
            let r = locked(env, row, &server, &backup, progress, cancel).await;
            if let Some(l) = files_lock {
                l.release().await;
            }
            r
        }
        Err(e) => Err(e),
    };
    lock.release().await;
    result
}

/// The restore proper, under the target's lock (and the files directory's, with files).
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
        // Files restored over a directory that exists are saved first too.
        let files = self.row.files
            && self
                .env
                .files_dir
                .as_deref()
                .is_some_and(std::path::Path::is_dir);
        let taken = safety::take(
            self.env,
            self.id(),
            &url,
            target,
            tables,
            files,
            self.progress,
            self.cancel,
        );
        Ok(Some(taken.await?))
    }

    /// A safety backup is of the target database: restoring into a new one, files that are
    /// there would be replaced unsaved. Refused unless the safety backup was declined.
    fn refuse_unsaved_files(&self) -> Result<(), RestoreError> {
        if !(self.row.files && self.row.create_safety_backup) {
            return Ok(());
        }
        let dir = self.env.files_dir.as_deref();
        let holds = dir
            .and_then(|d| std::fs::read_dir(d).ok())
            .is_some_and(|mut e| e.any(|e| e.is_ok_and(|e| !files::is_work_dir(&e.file_name()))));
        if holds {
            return Err(RestoreError::Permanent(format!(
                "restoreFiles would replace the files in CELLAR_FILES_DIR, but the target \
                 database {:?} does not exist, so no safety backup can hold them: restore into \
                 the database the files belong to, or set createSafetyBackup: false; nothing \
                 was changed",
                self.row.target_database
            )));
        }
        Ok(())
    }

    /// Extracts the files archive aside when the restore includes files.
    async fn stage_files(&self) -> Result<Option<files::Staged>, RestoreError> {
        if !self.row.files {
            return Ok(None);
        }
        let staged = files::stage(self.env, self.backup, self.id());
        Ok(Some(cancellable(self.cancel, staged).await?))
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
            None => {
                self.refuse_unsaved_files()?;
                None
            }
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
        // The files archive is extracted aside while the database is built aside.
        // Both run to their end even if one fails: a build dropped mid-statement could create
        // its scratch database after the discard below.
        let (built, staged) = tokio::join!(cancellable(self.cancel, build), self.stage_files());
        let mut done = staged.and_then(|s| built.map(|rows| (rows, s)));
        let mut swapped = None;
        if let Ok((_, staged)) = &mut done
            && let Some(staged) = staged.take()
        {
            match staged.swap().await {
                Ok(s) => swapped = Some(s),
                Err(e) => done = Err(e),
            }
        }
        if done.is_ok() {
            meter.phase("swap");
            let old = full::old_name(target, self.id());
            let db = full::swap(self.server, target, &scratch, &old, existing).await;
            // A failed database swap drops `swapped`, which puts the original files back.
            done = db.and(done);
        }
        if done.is_err()
            && let Err(e) = full::discard(self.server, &scratch).await
        {
            tracing::error!(error = %e, scratch, "could not drop the scratch database");
        }
        let (rows, _) = done?;
        Ok(json!({
            "mode": "full", "database": target, "rows": rows,
            "tables": self.backup.manifest.tables.len(),
            "safetyBackupId": safety.map(|s| s.to_string()),
            "files": finish_files(swapped).await,
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
        let staged = self.stage_files().await?;
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
        // The rows are committed; the files follow (a few renames inside CELLAR_FILES_DIR,
        // which staging just proved writable). Should they fail, the error says so.
        let swapped = match staged {
            // Permanent (not retried): a retry would take a new safety backup of rows that
            // are already restored.
            Some(s) => Some(s.swap().await.map_err(|e| {
                RestoreError::Permanent(format!(
                    "the tables were restored and committed, the files were not: {e}"
                ))
            })?),
            None => None,
        };
        let warnings: Vec<String> = out.broken.iter().map(ToString::to_string).collect();
        Ok(json!({
            "mode": "tables", "database": target, "rows": out.rows, "tables": out.tables,
            "safetyBackupId": safety.map(|s| s.to_string()), "warnings": warnings,
            "files": finish_files(swapped).await,
        }))
    }
}

/// Makes a files swap final; what the result records of it.
async fn finish_files(swapped: Option<files::Swapped>) -> Value {
    match swapped {
        Some(s) => {
            let v = json!({ "files": s.stats.files, "bytes": s.stats.bytes });
            s.finish().await;
            v
        }
        None => Value::Null,
    }
}
