//! Rows whose job ended without them: a backup or restore still `pending`/`running` although
//! its job was cancelled before it started, or discarded by the rescuer after its worker was
//! lost on every attempt. Nothing else would ever finish them: a backup would stay listed as
//! running with its partial objects, and a restore would refuse every later restore of its
//! database ("still pending or running").
//!
//! ```text
//! backup   (its job, or for a safety backup its restore's job, is cancelled or discarded)
//!          objects removed, row failed with the reason, audited (actor `sweeper`)
//! restore  (its job is cancelled or discarded)
//!          row failed with the reason, its scratch database dropped, an interrupted files swap
//!          undone, audited
//! scratch  a `<target>__cellar_restore_<id>` database on a source's server whose restore (in
//!          this catalog, same source and target) ended: dropped, audited (a cancelled build can
//!          leave one: the server finishes a CREATE DATABASE its dropped client had started)
//! ```
//!
//! A `running` row is swept only [`GRACE`] after its job ended (its worker may have stalled,
//! not died); a restore also only when its target and files locks are free.
//! Each row is handled in a transaction that holds its job row `FOR UPDATE`, re-checked there:
//! a `retryJob` that revives the job waits for the sweep of it, then starts from a clean row
//! (a backup's take removes its objects first; a restore's attempt recovers files first).
//! Runs at worker start-up and before every retention pass; any worker, no leader.

use serde_json::json;
use sqlx::{Connection, PgConnection};

use crate::backup::{BackupEnv, BackupId};
use crate::restore::target::{Server, TargetLock};
use crate::restore::{RestoreError, RestoreId, files, full};

/// The actor name in the audit trail.
pub const ACTOR: &str = "sweeper";

/// How long after its job ended a `running` row is left alone: the rescuer ends a job whose
/// heartbeats stopped, and a worker that only stalled (a partition from the catalog) may still
/// be writing; it finds its lease lost at its next heartbeat and stops. A `pending` row never
/// ran: no wait.
pub const GRACE: std::time::Duration = std::time::Duration::from_secs(600);

/// What one sweep finished.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Swept {
    /// Backup ids marked failed (their objects removed).
    pub backups: Vec<String>,
    /// Restore ids marked failed.
    pub restores: Vec<i64>,
    /// Leftover scratch databases dropped.
    pub scratch: Vec<String>,
}

/// Why a row's job ended, for its error.
fn reason(job_state: &str, attempt: i32, what: &str) -> String {
    match job_state {
        "cancelled" => format!("cancelled: its job was cancelled before the {what} finished"),
        _ => format!(
            "abandoned: its job was discarded after {attempt} attempt(s), the worker running it \
             stopped each time (killed or lost); retryJob runs it again"
        ),
    }
}

/// Finishes every abandoned backup and restore (see the module docs).
pub async fn sweep(env: &BackupEnv) -> Result<Swept, RestoreError> {
    let mut swept = Swept::default();
    // (backup, job) pairs: a backup's own job, or the job of the restore a safety backup is for.
    let backups = sqlx::query!(
        r#"SELECT b.id AS "id!", j.id AS "job!" FROM backup b JOIN job j ON j.id = b.job_id
            WHERE b.state IN ('pending', 'running') AND j.state IN ('cancelled', 'discarded')
              AND (b.state = 'pending' OR j.finished_at < now() - make_interval(secs => $1))
           UNION
           SELECT b.id, j.id FROM backup b
             JOIN restore r ON r.safety_backup_id = b.id JOIN job j ON j.id = r.job_id
            WHERE b.backup_type = 'safety' AND b.state IN ('pending', 'running')
              AND j.state IN ('cancelled', 'discarded')
              AND j.finished_at < now() - make_interval(secs => $1)"#,
        GRACE.as_secs_f64()
    )
    .fetch_all(&env.pool)
    .await?;
    for r in backups {
        let (id, job) = (r.id, r.job);
        match sweep_backup(env, &id, job).await {
            Ok(true) => swept.backups.push(id),
            Ok(false) => {}
            // One row that cannot be finished must not stop the others, now or next time.
            Err(e) => tracing::warn!(error = %e, backup_id = id, "could not sweep a backup"),
        }
    }
    let restores = sqlx::query!(
        r#"SELECT r.id, j.id AS job FROM restore r JOIN job j ON j.id = r.job_id
            WHERE r.state IN ('pending', 'running') AND j.state IN ('cancelled', 'discarded')
              AND (r.state = 'pending' OR j.finished_at < now() - make_interval(secs => $1))"#,
        GRACE.as_secs_f64()
    )
    .fetch_all(&env.pool)
    .await?;
    for r in restores {
        let (id, job) = (r.id, r.job);
        match sweep_restore(env, RestoreId(id), job).await {
            Ok(true) => swept.restores.push(id),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, restore_id = id, "could not sweep a restore"),
        }
    }
    swept.scratch = sweep_scratch(env).await;
    if !swept.backups.is_empty() || !swept.restores.is_empty() || !swept.scratch.is_empty() {
        tracing::warn!(backups = ?swept.backups, restores = ?swept.restores,
            scratch = ?swept.scratch, "finished abandoned backups and restores");
    }
    Ok(swept)
}

/// Drops scratch databases of ended restores (see the module docs). Only a name that is exactly
/// the scratch name of a restore of this catalog, on that restore's source, whose target lock is
/// free: another deployment's restore on a shared server is not this catalog's to judge.
async fn sweep_scratch(env: &BackupEnv) -> Vec<String> {
    let mut dropped = Vec::new();
    for src in &env.sources {
        let server = Server::new(&src.url);
        let Ok(mut admin) = server.maintenance(&[]).await else {
            continue;
        };
        let names = sqlx::query_scalar!(
            r#"SELECT datname::text AS "name!" FROM pg_database
                WHERE datname LIKE '%\_\_cellar\_restore\_%'"#
        )
        .fetch_all(&mut admin)
        .await
        .unwrap_or_default();
        drop(admin);
        for name in names {
            match drop_scratch(env, &server, &src.name, &name).await {
                Ok(true) => dropped.push(name),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, database = name, "could not drop a scratch"),
            }
        }
    }
    dropped
}

async fn drop_scratch(
    env: &BackupEnv,
    server: &Server,
    source: &str,
    name: &str,
) -> Result<bool, RestoreError> {
    let Some(id) = name
        .rsplit("__cellar_restore_")
        .next()
        .and_then(|n| n.parse::<i64>().ok())
    else {
        return Ok(false);
    };
    let Some(row) = crate::restore::catalog::get(&env.pool, RestoreId(id)).await? else {
        return Ok(false);
    };
    let ended = matches!(
        row.state,
        crate::restore::RestoreState::Failed | crate::restore::RestoreState::Completed
    );
    let ours =
        row.source == source && full::scratch_name(&row.target_database, RestoreId(id)) == name;
    if !ended || !ours {
        return Ok(false);
    }
    let Some(lock) =
        TargetLock::try_acquire(&env.pool, &server.identity(&row.target_database)).await?
    else {
        return Ok(false);
    };
    let dropped = full::discard(server, name).await;
    lock.release().await;
    dropped?;
    let mut conn = env.pool.acquire().await?;
    let args = json!({ "restoreId": id, "database": name });
    crate::audit::record_system(
        &mut conn,
        ACTOR,
        "dropLeftoverScratch",
        Some(name),
        None,
        args,
    )
    .await?;
    Ok(true)
}

/// Locks job `job` and returns its state and attempt if it is still cancelled or discarded.
async fn lock_final_job(
    conn: &mut PgConnection,
    job: i64,
) -> Result<Option<(String, i32)>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT state::text AS "state!", attempt FROM job
            WHERE id = $1 AND state IN ('cancelled', 'discarded') FOR UPDATE"#,
        job
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.state, r.attempt)))
}

async fn sweep_backup(env: &BackupEnv, id: &str, job: i64) -> Result<bool, RestoreError> {
    let Ok(backup_id) = id.parse::<BackupId>() else {
        return Ok(false);
    };
    let mut conn = env.pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let Some((state, attempt)) = lock_final_job(&mut tx, job).await? else {
        return Ok(false);
    };
    let still = sqlx::query_scalar!(
        "SELECT id FROM backup WHERE id = $1 AND state IN ('pending', 'running') FOR UPDATE",
        id
    )
    .fetch_optional(&mut *tx)
    .await?;
    if still.is_none() {
        return Ok(false);
    }
    let removed = crate::backup::run::remove_objects(env, &backup_id).await?;
    let why = reason(&state, attempt, "backup");
    crate::backup::catalog::mark_failed(&mut *tx, &backup_id, &why).await?;
    let args = json!({ "jobId": job, "objectsRemoved": removed, "reason": why });
    crate::audit::record_system(
        &mut tx,
        ACTOR,
        "failAbandonedBackup",
        Some(id),
        Some(job),
        args,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

async fn sweep_restore(env: &BackupEnv, id: RestoreId, job: i64) -> Result<bool, RestoreError> {
    let mut conn = env.pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let Some((state, attempt)) = lock_final_job(&mut tx, job).await? else {
        return Ok(false);
    };
    let row = sqlx::query!(
        r#"SELECT source, target_database, files, state::text AS "was!" FROM restore
            WHERE id = $1 AND state IN ('pending', 'running') FOR UPDATE"#,
        id.0
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    let (source, target, with_files, was) = (row.source, row.target_database, row.files, row.was);
    // The rescuer gives up on a job whose heartbeats stopped, but its worker may still be
    // running it (a partition, a stall): a live attempt holds its target's lock, and its files
    // lock. Leave the row alone until both are free.
    let src = env.source(Some(&source)).map_err(RestoreError::Permanent)?;
    let server = Server::new(&src.url);
    let Some(target_lock) = TargetLock::try_acquire(&env.pool, &server.identity(&target)).await?
    else {
        return Ok(false);
    };
    let files_lock = match with_files {
        true => match files::lock_for_sweep(env, &env.pool, id).await {
            Ok(l) => Some(l),
            Err(e) => {
                target_lock.release().await;
                tracing::info!(error = %e, restore_id = %id, "not sweeping a restore yet");
                return Ok(false);
            }
        },
        false => None,
    };
    let mut cleaned = Vec::new();
    if was == "running" {
        // Only what this restore made aside: its scratch database (the target itself is never
        // touched here: a swap is one transaction). Its files were put back when
        // `files::lock_for_sweep` undid the interrupted attempt. If the attempt was killed after its database swap but
        // before it finished, the database is the restored one and the files are the old ones:
        // the row says failed, and running the restore again completes it.
        let scratch = full::scratch_name(&target, id);
        match full::discard(&server, &scratch).await {
            Ok(()) => cleaned.push(format!("scratch database {scratch} dropped if present")),
            Err(e) => tracing::warn!(error = %e, scratch, "could not drop a scratch database"),
        }
        if with_files {
            files::recover_interrupted(env, id).await?;
            cleaned.push("an interrupted files swap undone, staged files removed".into());
        }
    }
    let why = reason(&state, attempt, "restore");
    crate::restore::catalog::mark_failed(&mut *tx, id, &why).await?;
    let args = json!({ "jobId": job, "reason": why, "cleaned": cleaned });
    let target_name = format!("restore {id}");
    crate::audit::record_system(
        &mut tx,
        ACTOR,
        "failAbandonedRestore",
        Some(&target_name),
        Some(job),
        args,
    )
    .await?;
    tx.commit().await?;
    if let Some(l) = files_lock {
        l.release().await;
    }
    target_lock.release().await;
    Ok(true)
}
