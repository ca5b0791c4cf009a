//! Whole-database restore, built aside and swapped in: the target is never written to, so a
//! failure or a cancel at any point before the swap leaves it exactly as it was, and the swap
//! itself is one transaction of two renames.
//!
//! ```text
//! build (cancellable):
//!   CREATE DATABASE <target>__cellar_restore_<id> TEMPLATE template0 (in the target's image)
//!   pg_restore --section=pre-data            schema archive in a 0600 temp file, DDL only
//!   parallel COPY FROM STDIN                 `jobs` lanes, largest object first, and each
//!                                            table's indexes, keys and foreign keys as soon
//!                                            as the tables they name are loaded
//!   pg_restore --section=post-data -j jobs   the rest, if any: triggers, attachments, comments
//!   setval every sequence; REFRESH the materialized views that were populated
//! swap (not cancellable, seconds):
//!   ALTER DATABASE target ALLOW_CONNECTIONS false; terminate its sessions
//!   BEGIN; RENAME target -> <target>__cellar_old_<id>; RENAME scratch -> target; COMMIT
//!   DROP DATABASE old
//! on any failure before the commit: DROP the scratch database, allow connections again
//! ```

use sqlx::{Connection, PgConnection};

use std::path::Path;

use super::interleave;
use super::load::Meter;
use super::open::{OpenedBackup, QualifiedName, SequenceEntry};
use super::pgrestore::{self, Section};
use super::postdata::{self, PostDataPlan};
use super::target::{DatabaseInfo, Server, create_database_sql};
use super::{RestoreError, RestoreId};
use crate::backup::BackupEnv;
use crate::dump::quote_ident;

/// How often the swap retries when sessions reconnect to the target between the terminate and
/// the rename.
const SWAP_ATTEMPTS: usize = 5;

/// `<target>__cellar_restore_<id>`, the target part shortened to fit 63 bytes.
pub fn scratch_name(target: &str, id: RestoreId) -> String {
    aside_name(target, "restore", id)
}

/// `<target>__cellar_old_<id>`: the replaced database between the renames and its drop.
pub fn old_name(target: &str, id: RestoreId) -> String {
    aside_name(target, "old", id)
}

fn aside_name(target: &str, what: &str, id: RestoreId) -> String {
    let suffix = format!("__cellar_{what}_{id}");
    let mut keep = 63usize.saturating_sub(suffix.len()).min(target.len());
    while !target.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{suffix}", &target[..keep])
}

/// Builds the backup's database as `scratch`. Drops a leftover of an earlier attempt first.
/// On error the caller must [`discard`] the scratch database.
pub async fn build(
    env: &BackupEnv,
    server: &Server,
    backup: &OpenedBackup,
    like: Option<&DatabaseInfo>,
    scratch: &str,
    meter: &Meter<'_>,
) -> Result<u64, RestoreError> {
    meter.phase("schema");
    let mut admin = server.maintenance(&[scratch]).await?;
    drop_database(&mut admin, scratch).await?;
    exec(&mut admin, &create_database_sql(scratch, like)).await?;
    let _ = admin.close().await;
    let file = backup.schema_file()?;
    let program = pgrestore::program(&env.pg_dump);
    let url = server.url(scratch);
    let (pre, plan) = tokio::join!(
        pgrestore::run(&program, file.path(), &url, Section::PreData, 1, None),
        post_data_plan(&program, file.path(), backup)
    );
    let (_, plan) = (pre?, plan?);
    tracing::info!(
        early = plan.early.len(),
        "indexes and keys built as their tables load"
    );
    meter.phase("data");
    let rows =
        interleave::load_and_index(server, scratch, env, backup, env.jobs, meter, &plan).await?;
    meter.phase("indexes");
    // Every post-data entry ran early on the realistic dataset: no pg_restore to start then.
    if plan.rest_has_work {
        let list = rest_list(&plan)?;
        let list_path = list.as_ref().map(|l| l.path());
        pgrestore::run(
            &program,
            file.path(),
            &url,
            Section::PostData,
            env.jobs,
            list_path,
        )
        .await?;
    }
    drop(file);
    meter.phase("sequences");
    let mut conn = server.connect(scratch).await?;
    set_sequences(&mut conn, &backup.sequences.sequences).await?;
    refresh_matviews(&mut conn, &backup.sequences.populated_matviews).await?;
    let _ = conn.close().await;
    Ok(rows)
}

/// Which post-data entries run early, as their tables fill (see [`super::postdata`]).
async fn post_data_plan(
    program: &Path,
    archive: &Path,
    backup: &OpenedBackup,
) -> Result<PostDataPlan, RestoreError> {
    let (toc, script) = tokio::join!(
        pgrestore::toc(program, archive),
        pgrestore::script(program, archive, Section::PostData)
    );
    let tables = interleave::tables_with_rows(backup);
    Ok(postdata::plan(&toc?, &script?, &tables))
}

/// The TOC without the early entries, for `pg_restore -L`; `None` when nothing ran early.
fn rest_list(plan: &PostDataPlan) -> Result<Option<tempfile::NamedTempFile>, RestoreError> {
    if plan.early.is_empty() {
        return Ok(None);
    }
    let io = |e: std::io::Error| {
        RestoreError::Transient(format!(
            "writing the post-data list to a temporary file: {e}"
        ))
    };
    let mut f = tempfile::Builder::new()
        .prefix("cellar-post-data-")
        .tempfile()
        .map_err(io)?;
    std::io::Write::write_all(&mut f, plan.rest_list.as_bytes()).map_err(io)?;
    Ok(Some(f))
}

/// Drops the scratch database of a failed or cancelled build (its sessions are terminated).
pub async fn discard(server: &Server, scratch: &str) -> Result<(), RestoreError> {
    let mut admin = server.maintenance(&[scratch]).await?;
    drop_database(&mut admin, scratch).await
}

/// Moves `scratch` into place as `target`; `existing` describes the target if it exists. On
/// error the target is as it was (connections allowed again) and the caller must [`discard`].
pub async fn swap(
    server: &Server,
    target: &str,
    scratch: &str,
    old: &str,
    existing: Option<&DatabaseInfo>,
) -> Result<(), RestoreError> {
    let mut admin = server.maintenance(&[target, scratch, old]).await?;
    let Some(info) = existing else {
        terminate(&mut admin, scratch, scratch).await?;
        let sql = format!(
            "ALTER DATABASE {} RENAME TO {}",
            quote_ident(scratch),
            quote_ident(target)
        );
        return exec(&mut admin, &sql).await;
    };
    let allow = |on: bool| {
        format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS {on}",
            quote_ident(target)
        )
    };
    if info.allow_connections {
        exec(&mut admin, &allow(false)).await?;
    }
    let renamed = rename_pair(&mut admin, target, scratch, old).await;
    if let Err(e) = renamed {
        if info.allow_connections {
            exec(&mut admin, &allow(true)).await?;
        }
        return Err(e);
    }
    if let Err(e) = drop_database(&mut admin, old).await {
        tracing::warn!(error = %e, database = old, "could not drop the replaced database");
    }
    Ok(())
}

/// Terminates the sessions on both databases, then renames in one transaction; retried while
/// sessions keep appearing (error 55006, "being accessed by other users").
async fn rename_pair(
    admin: &mut PgConnection,
    target: &str,
    scratch: &str,
    old: &str,
) -> Result<(), RestoreError> {
    let mut last = None;
    for _ in 0..SWAP_ATTEMPTS {
        terminate(admin, target, scratch).await?;
        let mut tx = admin.begin().await?;
        let sql = format!(
            "ALTER DATABASE {t} RENAME TO {o}; ALTER DATABASE {s} RENAME TO {t}",
            t = quote_ident(target),
            o = quote_ident(old),
            s = quote_ident(scratch)
        );
        match sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
        {
            Ok(_) => return Ok(tx.commit().await?),
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55006") => {
                last = Some(e.message().to_string());
                tx.rollback().await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(RestoreError::Transient(format!(
        "could not swap the restored database in: {}",
        last.unwrap_or_default()
    )))
}

async fn terminate(admin: &mut PgConnection, a: &str, b: &str) -> Result<(), RestoreError> {
    sqlx::query!(
        r#"SELECT count(pg_terminate_backend(pid)) AS "n!" FROM pg_stat_activity
           WHERE datname IN ($1, $2) AND pid <> pg_backend_pid()"#,
        a,
        b
    )
    .fetch_one(&mut *admin)
    .await?;
    Ok(())
}

async fn drop_database(admin: &mut PgConnection, name: &str) -> Result<(), RestoreError> {
    exec(
        admin,
        &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)),
    )
    .await
}

async fn exec(conn: &mut PgConnection, sql: &str) -> Result<(), RestoreError> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(conn)
        .await?;
    Ok(())
}

/// `setval` of every listed sequence that exists in the database, in one statement.
pub async fn set_sequences(
    conn: &mut PgConnection,
    seqs: &[SequenceEntry],
) -> Result<u64, RestoreError> {
    let names: Vec<String> = seqs
        .iter()
        .map(|s| format!("{}.{}", quote_ident(&s.schema), quote_ident(&s.name)))
        .collect();
    let values: Vec<i64> = seqs.iter().map(|s| s.last_value).collect();
    let called: Vec<bool> = seqs.iter().map(|s| s.is_called).collect();
    let n = sqlx::query_scalar!(
        r#"SELECT count(pg_catalog.setval(c.oid, v.last_value, v.is_called)) AS "n!"
           FROM unnest($1::text[], $2::int8[], $3::bool[]) AS v(name, last_value, is_called)
           JOIN pg_class c ON c.oid = to_regclass(v.name) AND c.relkind = 'S'"#,
        &names,
        &values,
        &called
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(n as u64)
}

/// Refreshes the materialized views that were populated at backup time, in creation order
/// (oid), so a view over another view finds it filled.
async fn refresh_matviews(
    conn: &mut PgConnection,
    views: &[QualifiedName],
) -> Result<(), RestoreError> {
    let schemas: Vec<String> = views.iter().map(|v| v.schema.clone()).collect();
    let names: Vec<String> = views.iter().map(|v| v.name.clone()).collect();
    let found = sqlx::query!(
        r#"SELECT n.nspname::text AS "schema!", c.relname::text AS "name!"
           FROM unnest($1::text[], $2::text[]) AS v(schema, name)
           JOIN pg_namespace n ON n.nspname = v.schema
           JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = v.name AND c.relkind = 'm'
           ORDER BY c.oid"#,
        &schemas,
        &names
    )
    .fetch_all(&mut *conn)
    .await?;
    for v in found {
        let sql = format!(
            "REFRESH MATERIALIZED VIEW {}.{}",
            quote_ident(&v.schema),
            quote_ident(&v.name)
        );
        exec(conn, &sql).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aside_names_fit_63_bytes() {
        assert_eq!(scratch_name("shop", RestoreId(7)), "shop__cellar_restore_7");
        assert_eq!(old_name("shop", RestoreId(7)), "shop__cellar_old_7");
        let long = "é".repeat(40);
        let s = scratch_name(&long, RestoreId(123_456));
        assert!(
            s.len() <= 63 && s.ends_with("__cellar_restore_123456"),
            "{s}"
        );
    }
}
