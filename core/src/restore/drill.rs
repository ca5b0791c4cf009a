//! The restore drill (verify level DRILL): proof that a backup restores, not only that its
//! bytes are intact. Runs after a deep verify that also fingerprinted every table's rows.
//!
//! ```text
//! sweep                 drop drill databases left by killed workers (their lock is free)
//! lock                  advisory lock on the scratch name (what tells a live drill from a leftover)
//! build                 cellar_drill_<backup>_<random> on the source's server, in the source
//!                       database's image: pre-data, parallel COPY, post-data, sequences
//! compare               per table: COPY TO STDOUT with the dump's output settings; rows and
//!                       fingerprint must equal the backup's (order does not matter)
//! always                drop the scratch database (success, failure, cancel)
//! ```
//! A failure to build that retrying cannot fix (pg_restore rejects the schema, a COPY is
//! refused) makes the backup invalid; a lost connection is a transient job error.

use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;

use super::RestoreError;
use super::full;
use super::load::Meter;
use super::open::OpenedBackup;
use super::target::{Server, TargetLock, database_info};
use crate::backup::fingerprint::{Fingerprint, LineFolder};
use crate::backup::verify::{DrillReport, Failure, TablePrints, Verification};
use crate::backup::{BackupEnv, BackupError, BackupId, Progress, ProgressReport, catalog};
use crate::dump::{OUTPUT_SETTINGS, quote_ident};
use crate::format::manifest::TableRef;

/// Prefix of every drill database; the sweeper only ever drops names that start with it and
/// with this catalog's tag.
pub const SCRATCH_PREFIX: &str = "cellar_drill_";

/// `cellar_drill_<catalog tag>_`: the tag (8 hex of a hash of the catalog database's name and
/// oid) keeps one deployment's sweeper away from another's drills on a shared server.
pub async fn scratch_prefix(pool: &sqlx::PgPool) -> Result<String, sqlx::Error> {
    let who = sqlx::query_scalar!(
        r#"SELECT current_database() || '/' || d.oid::text AS "who!"
           FROM pg_database d WHERE d.datname = current_database()"#
    )
    .fetch_one(pool)
    .await?;
    let tag = blake3::hash(who.as_bytes()).to_hex();
    Ok(format!("{SCRATCH_PREFIX}{}_", &tag[..8]))
}

/// `<prefix><first 12 hex of the backup uuid>_<8 random hex>` (at most 43 bytes).
pub fn scratch_name(prefix: &str, id: &BackupId) -> String {
    let uuid = id.format_uuid().simple().to_string();
    let random: u32 = rand::random();
    format!("{prefix}{}_{random:08x}", &uuid[..12])
}

/// Restores backup `id` into a scratch database and compares every table with `prints` (from
/// the deep pass that produced `verified`). Returns `verified` updated with the drill's outcome.
#[tracing::instrument(skip_all, fields(backup_id = %id))]
pub async fn run(
    env: &BackupEnv,
    id: &BackupId,
    prints: TablePrints,
    mut verified: Verification,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<Verification, BackupError> {
    let started = Instant::now();
    verified.level = "drill".into();
    let row = catalog::get(&env.pool, id)
        .await
        .map_err(|e| BackupError::Transient(format!("catalog database: {e}")))?
        .ok_or_else(|| BackupError::Permanent(format!("backup {id} is not in the catalog")))?;
    let source = env
        .source(Some(&row.source))
        .map_err(BackupError::Permanent)?;
    let server = Server::new(&source.url);
    let prefix = scratch_prefix(&env.pool)
        .await
        .map_err(|e| BackupError::Transient(format!("catalog database: {e}")))?;
    sweep(env, &server, &prefix).await;
    let backup = OpenedBackup::open(env, id).await.map_err(to_backup)?;
    let scratch = scratch_name(&prefix, id);
    let lock = TargetLock::acquire(&env.pool, &server.identity(&scratch))
        .await
        .map_err(to_backup)?;
    let drilled = tokio::select! {
        r = drill(env, &server, &backup, &scratch, &prints, progress) => r,
        _ = cancel.cancelled() => Err(RestoreError::Cancelled),
    };
    if let Err(e) = full::discard(&server, &scratch).await {
        tracing::error!(error = %e, scratch, "could not drop the drill's scratch database");
    }
    lock.release().await;
    match drilled {
        Ok(failures) => {
            verified.drill = Some(DrillReport {
                tables_compared: prints.len() as u64,
                rows_compared: prints.iter().map(|(_, f)| f.rows).sum(),
                seconds: started.elapsed().as_secs_f64(),
            });
            if !failures.is_empty() {
                verified.status = "invalid".into();
                verified.failures = failures;
            }
            Ok(verified)
        }
        Err(RestoreError::Permanent(e)) => {
            verified.status = "invalid".into();
            verified.failures = vec![Failure {
                object: "restore drill".into(),
                error: format!("the backup did not restore: {e}"),
            }];
            Ok(verified)
        }
        Err(e) => Err(to_backup(e)),
    }
}

fn to_backup(e: RestoreError) -> BackupError {
    match e {
        RestoreError::Permanent(m) => BackupError::Permanent(m),
        RestoreError::Transient(m) => BackupError::Transient(m),
        RestoreError::Cancelled => BackupError::Cancelled,
    }
}

/// Builds the scratch database and compares; returns the tables that differ.
async fn drill(
    env: &BackupEnv,
    server: &Server,
    backup: &OpenedBackup,
    scratch: &str,
    prints: &TablePrints,
    progress: &dyn Progress,
) -> Result<Vec<Failure>, RestoreError> {
    let mut admin = server.maintenance(&[scratch]).await?;
    let like = database_info(&mut admin, &backup.manifest.source.database).await?;
    drop(admin);
    let objects = backup.data_objects();
    let bytes = objects.iter().map(|(o, _)| o.digest.plain_size).sum();
    let meter = Meter::new(progress, bytes, objects.len() as u64);
    full::build(env, server, backup, like.as_ref(), scratch, &meter).await?;
    progress.report(ProgressReport {
        phase: "comparing".into(),
        tables_total: prints.len() as u64,
        ..Default::default()
    });
    let mut checks = Vec::with_capacity(prints.len());
    for (t, expected) in prints {
        let columns = backup
            .manifest
            .tables
            .iter()
            .find(|m| m.schema == t.schema && m.name == t.name)
            .and_then(|m| m.columns.clone());
        checks.push(compare(server, scratch, t.clone(), columns, *expected));
    }
    let compared: Vec<Option<Failure>> = futures::stream::iter(checks)
        .buffer_unordered(env.jobs.max(1))
        .try_collect()
        .await?;
    Ok(compared.into_iter().flatten().collect())
}

/// One table of the scratch database against the backup's fingerprint.
async fn compare(
    server: &Server,
    scratch: &str,
    t: TableRef,
    columns: Option<Vec<String>>,
    expected: Fingerprint,
) -> Result<Option<Failure>, RestoreError> {
    let mut conn = server.connect(scratch).await?;
    sqlx::raw_sql(OUTPUT_SETTINGS).execute(&mut conn).await?;
    let got = fingerprint(&mut conn, &t, columns.as_deref()).await?;
    let shown = format!("table {}.{}", t.schema, t.name);
    let failure = if got.rows != expected.rows {
        Some(format!(
            "restored {} rows where the backup holds {}",
            got.rows, expected.rows
        ))
    } else if got != expected {
        Some(format!(
            "restored rows differ from the backup's (fingerprint {} instead of {})",
            got.hex(),
            expected.hex()
        ))
    } else {
        None
    };
    Ok(failure.map(|error| Failure {
        object: shown,
        error,
    }))
}

/// The fingerprint of a table's rows as COPY text, with the manifest's column list.
async fn fingerprint(
    conn: &mut PgConnection,
    t: &TableRef,
    columns: Option<&[String]>,
) -> Result<Fingerprint, RestoreError> {
    let name = format!("{}.{}", quote_ident(&t.schema), quote_ident(&t.name));
    let sql = match columns {
        Some(c) if !c.is_empty() => {
            let c: Vec<String> = c.iter().map(|c| quote_ident(c)).collect();
            format!("COPY {name} ({}) TO STDOUT", c.join(", "))
        }
        _ => format!("COPY {name} TO STDOUT"),
    };
    let mut folder = LineFolder::default();
    let mut stream = conn.copy_out_raw(&sql).await?;
    while let Some(chunk) = stream.try_next().await? {
        folder.update(&chunk);
    }
    Ok(folder.finish())
}

/// Drops this catalog's drill databases on `server` that no live drill holds (a worker killed
/// mid-drill leaves one). Best effort: failures are logged, never fatal.
pub async fn sweep(env: &BackupEnv, server: &Server, prefix: &str) {
    let Ok(mut admin) = server.maintenance(&[]).await else {
        return;
    };
    let pattern = format!("{}%", prefix.replace('_', "\\_"));
    let names = sqlx::query_scalar!(
        r#"SELECT datname::text AS "name!" FROM pg_database WHERE datname LIKE $1"#,
        pattern
    )
    .fetch_all(&mut admin)
    .await
    .unwrap_or_default();
    for name in names {
        let Ok(lock) = TargetLock::acquire(&env.pool, &server.identity(&name)).await else {
            continue;
        };
        match full::discard(server, &name).await {
            Ok(()) => tracing::warn!(database = name, "dropped a leftover drill database"),
            Err(e) => tracing::warn!(error = %e, database = name, "could not drop a leftover"),
        }
        lock.release().await;
    }
}
