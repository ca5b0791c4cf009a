//! The safety backup: before a restore overwrites anything, a backup (type `safety`) of what it
//! will replace (the target database, or only the chosen tables) must complete. Rolling the
//! restore back is restoring that backup.

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::{RestoreError, RestoreId, catalog};
use crate::backup::{self, BackupEnv, BackupId, BackupState, BackupType, Progress, ProgressReport};
use crate::config::{DbUrl, Source};

/// Reports the safety backup's progress as the restore's, phase prefixed.
struct Prefixed<'a>(&'a dyn Progress);

impl Progress for Prefixed<'_> {
    fn report(&self, mut r: ProgressReport) {
        r.phase = format!("safety backup: {}", r.phase);
        self.0.report(r);
    }
}

/// The environment to back the target up with, and the source name the backup records: the
/// configured source with the target's URL if there is one, else an ad-hoc source named
/// `target:<database>` (a target needs not be a configured source).
pub fn env_for(env: &BackupEnv, target: &DbUrl, database: &str) -> (BackupEnv, String) {
    if let Some(s) = env.sources.iter().find(|s| &s.url == target) {
        return (env.clone(), s.name.clone());
    }
    let mut name = format!("target:{database}");
    while name.len() > 63 {
        name.pop();
    }
    let mut env = env.clone();
    env.sources.push(Source {
        name: name.clone(),
        url: target.clone(),
    });
    (env, name)
}

/// Takes the safety backup of `target` (only `tables`, if given; with `CELLAR_FILES_DIR` if
/// `files`) and records it on restore `restore` as soon as its row exists. Fails the restore if
/// the backup fails.
#[allow(clippy::too_many_arguments)]
pub async fn take(
    env: &BackupEnv,
    restore: RestoreId,
    target: &DbUrl,
    database: &str,
    tables: Option<&[String]>,
    files: bool,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<BackupId, RestoreError> {
    let (env, source) = env_for(env, target, database);
    abandon_interrupted(&env, restore).await?;
    let id = BackupId::generate(BackupType::Safety, Utc::now());
    sqlx::query!(
        r#"INSERT INTO backup (id, backup_type, source, requested_tables, include_files)
           VALUES ($1, 'safety', $2, $3, $4)"#,
        id.as_str(),
        source,
        tables,
        files
    )
    .execute(&env.pool)
    .await?;
    catalog::set_safety_backup(&env.pool, restore, &id).await?;
    backup::run::take(&env, &id, &Prefixed(progress), cancel)
        .await
        .map_err(|e| {
            RestoreError::from(e).context(&format!(
                "the safety backup {id} failed, so nothing was restored"
            ))
        })?;
    Ok(id)
}

/// A safety backup an earlier attempt of this restore started but never finished (its worker
/// was killed) would stay `running` for ever, its objects orphaned: remove them and mark it
/// failed before the new attempt takes its own. A completed one is kept (a valid backup).
async fn abandon_interrupted(env: &BackupEnv, restore: RestoreId) -> Result<(), RestoreError> {
    let Some(row) = catalog::get(&env.pool, restore).await? else {
        return Ok(());
    };
    let Some(earlier) = row
        .safety_backup_id
        .and_then(|id| id.parse::<BackupId>().ok())
    else {
        return Ok(());
    };
    let state = backup::catalog::get(&env.pool, &earlier)
        .await?
        .map(|b| b.state);
    if matches!(state, Some(BackupState::Pending | BackupState::Running)) {
        let removed = backup::run::remove_objects(env, &earlier).await?;
        let why =
            "interrupted: the restore attempt taking it stopped; the next attempt takes a new one";
        backup::catalog::mark_failed(&env.pool, &earlier, why).await?;
        tracing::warn!(backup_id = %earlier, removed, "abandoned an interrupted safety backup");
    }
    Ok(())
}
