//! Selective restore: the chosen tables' rows replaced in ONE transaction on the live database;
//! every other table untouched. Any error, a cancel, or a foreign key that would break rolls it
//! all back.
//!
//! ```text
//! resolve names in the target: a partitioned table means its leaves; each must be in the backup
//! BEGIN; SET LOCAL session_replication_role = replica     -- no trigger fires (FK ones neither)
//! LOCK the tables ACCESS EXCLUSIVE
//! TRUNCATE ONLY those no outside foreign key references; DELETE FROM ONLY the others
//! COPY each object back (checked against the manifest)
//! setval the sequences owned by the chosen tables
//! check every foreign key involving them (integrity::check)
//! broken and not accepted: ROLLBACK, naming the constraint; else COMMIT
//! ```

use std::collections::BTreeSet;

use sqlx::postgres::types::Oid;
use sqlx::{Connection, PgConnection};

use super::RestoreError;
use super::integrity::{self, BrokenReference};
use super::load::{self, Meter};
use super::open::{OpenedBackup, QualifiedName};
use super::target::Server;
use crate::backup::BackupEnv;
use crate::dump::TableName;

/// A table whose rows are replaced.
#[derive(Clone, Debug)]
struct Chosen {
    oid: Oid,
    name: TableName,
}

/// What a table restore did.
#[derive(Clone, Debug, Default)]
pub struct TablesOutcome {
    /// The tables whose rows were replaced (partition leaves, not their parents).
    pub tables: Vec<String>,
    /// Rows loaded.
    pub rows: u64,
    /// Foreign keys left broken (only with `accept_broken_references`).
    pub broken: Vec<BrokenReference>,
}

/// Replaces the rows of `names` in database `db` with the backup's.
#[tracing::instrument(skip_all, fields(db, tables = names.len()))]
pub async fn restore(
    env: &BackupEnv,
    server: &Server,
    backup: &OpenedBackup,
    db: &str,
    names: &[String],
    accept_broken: bool,
    meter: &Meter<'_>,
) -> Result<TablesOutcome, RestoreError> {
    let mut conn = server.connect(db).await?;
    let mut tx = conn.begin().await?;
    sqlx::raw_sql("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .map_err(|e| RestoreError::from(e).context("disabling triggers (needs a superuser)"))?;
    let (chosen, owners) = resolve(&mut tx, backup, names).await?;
    let oids: Vec<Oid> = chosen.iter().map(|c| c.oid).collect();
    empty_tables(&mut tx, &chosen).await?;
    meter.phase("data");
    let mut rows = 0;
    for (o, cols) in backup.data_objects() {
        let t = o.table.as_ref().expect("table data");
        if chosen
            .iter()
            .any(|c| c.name.schema() == t.schema && c.name.name() == t.name)
        {
            rows += load::copy_object(&mut tx, env, backup, o, cols, meter).await?;
        }
    }
    meter.phase("sequences");
    let defaults = default_sequences(&mut tx, &owners.1).await?;
    let seqs: Vec<_> = backup
        .sequences
        .sequences
        .iter()
        .filter(|s| {
            let own = s.owned_by.as_ref().is_some_and(|o| owners.0.contains(o));
            own || defaults.contains(&QualifiedName {
                schema: s.schema.clone(),
                name: s.name.clone(),
            })
        })
        .cloned()
        .collect();
    super::full::set_sequences(&mut tx, &seqs).await?;
    meter.phase("checking references");
    let broken = integrity::check(&mut tx, &oids).await?;
    if !broken.is_empty() && !accept_broken {
        tx.rollback().await?;
        let list: Vec<String> = broken.iter().map(ToString::to_string).collect();
        return Err(RestoreError::Permanent(format!(
            "{}; nothing was changed (restore the referencing tables too, or accept broken \
             references)",
            list.join("; ")
        )));
    }
    tx.commit().await?;
    let _ = conn.close().await;
    Ok(TablesOutcome {
        tables: chosen.iter().map(|c| c.name.to_string()).collect(),
        rows,
        broken,
    })
}

/// The relations (names and oids, partitioned parents included) whose sequences are reset.
type Owners = (BTreeSet<QualifiedName>, Vec<Oid>);

/// Finds each name in the target (a partitioned table stands for its leaves) and in the
/// backup. Returns the tables to replace, and every relation whose sequences are reset.
async fn resolve(
    conn: &mut PgConnection,
    backup: &OpenedBackup,
    names: &[String],
) -> Result<(Vec<Chosen>, Owners), RestoreError> {
    let (mut chosen, mut owners) = (Vec::new(), (BTreeSet::new(), Vec::new()));
    for raw in names {
        let name = TableName::parse(raw).map_err(|e| RestoreError::Permanent(e.to_string()))?;
        let leaves = sqlx::query!(
            r#"SELECT c.oid AS "oid!: Oid", c.relkind AS "kind!",
                      ARRAY(SELECT l.relid::oid FROM pg_partition_tree(c.oid) AS l
                            JOIN pg_class lc ON lc.oid = l.relid
                            WHERE l.isleaf AND lc.relkind = 'r') AS "leaves!: Vec<Oid>"
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = $1 AND c.relname = $2"#,
            name.schema(),
            name.name()
        )
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| {
            RestoreError::Permanent(format!(
                "table {name} does not exist in the target database: a table restore replaces \
                 the rows of existing tables (restore the whole backup into a new database to \
                 get the table back)"
            ))
        })?;
        let oids = match leaves.kind as u8 {
            b'r' => vec![leaves.oid],
            b'p' => leaves.leaves,
            _ => return Err(RestoreError::Permanent(format!("{name} is not a table"))),
        };
        owners.0.insert(QualifiedName {
            schema: name.schema().into(),
            name: name.name().into(),
        });
        owners.1.push(leaves.oid);
        for oid in oids {
            let leaf = table_name(conn, oid).await?;
            in_backup(backup, &leaf)?;
            owners.1.push(oid);
            owners.0.insert(QualifiedName {
                schema: leaf.schema().into(),
                name: leaf.name().into(),
            });
            if !chosen.iter().any(|c: &Chosen| c.oid == oid) {
                chosen.push(Chosen { oid, name: leaf });
            }
        }
    }
    Ok((chosen, owners))
}

/// Sequences the column defaults of `rels` draw from (`DEFAULT nextval(...)` without OWNED BY),
/// unless a table outside `rels` draws from them too: moving a shared sequence back would hand
/// out numbers that table already used.
async fn default_sequences(
    conn: &mut PgConnection,
    rels: &[Oid],
) -> Result<BTreeSet<QualifiedName>, RestoreError> {
    let rows = sqlx::query!(
        r#"SELECT DISTINCT n.nspname::text AS "schema!", s.relname::text AS "name!"
           FROM pg_attrdef ad
           JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                AND d.refclassid = 'pg_class'::regclass
           JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
           JOIN pg_namespace n ON n.oid = s.relnamespace
           WHERE ad.adrelid = ANY ($1)
             AND NOT EXISTS (SELECT 1 FROM pg_depend d2
                             JOIN pg_attrdef ad2 ON d2.classid = 'pg_attrdef'::regclass
                                  AND d2.objid = ad2.oid
                             WHERE d2.refobjid = s.oid AND NOT (ad2.adrelid = ANY ($1)))"#,
        rels as &[Oid]
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| QualifiedName {
            schema: r.schema,
            name: r.name,
        })
        .collect())
}

async fn table_name(conn: &mut PgConnection, oid: Oid) -> Result<TableName, RestoreError> {
    let r = sqlx::query!(
        r#"SELECT n.nspname::text AS "schema!", c.relname::text AS "name!"
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1"#,
        oid
    )
    .fetch_one(&mut *conn)
    .await?;
    TableName::new(r.schema, r.name).map_err(|e| RestoreError::Permanent(e.to_string()))
}

fn in_backup(backup: &OpenedBackup, t: &TableName) -> Result<(), RestoreError> {
    let found = backup
        .manifest
        .tables
        .iter()
        .any(|m| m.schema == t.schema() && m.name == t.name());
    match found {
        true => Ok(()),
        false => Err(RestoreError::Permanent(format!(
            "table {t} is not in backup {}",
            backup.id
        ))),
    }
}

/// Locks the tables, then empties them: TRUNCATE where no foreign key from outside the set
/// points at the table (TRUNCATE refuses those), DELETE for the others.
async fn empty_tables(conn: &mut PgConnection, chosen: &[Chosen]) -> Result<(), RestoreError> {
    let oids: Vec<Oid> = chosen.iter().map(|c| c.oid).collect();
    let list = |cs: &[&Chosen]| {
        cs.iter()
            .map(|c| c.name.quoted())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let all: Vec<&Chosen> = chosen.iter().collect();
    exec(
        conn,
        &format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", list(&all)),
    )
    .await?;
    let refs = sqlx::query!(
        r#"SELECT conrelid AS "from!: Oid", confrelid AS "to!: Oid" FROM pg_constraint
           WHERE contype = 'f' AND confrelid = ANY ($1) AND conrelid <> confrelid"#,
        &oids as &[Oid]
    )
    .fetch_all(&mut *conn)
    .await?;
    // TRUNCATE refuses a table referenced from outside the truncated set: shrink the set
    // until no such reference is left; those tables are emptied with DELETE.
    let mut truncated: BTreeSet<u32> = oids.iter().map(|o| o.0).collect();
    while let Some(r) = refs
        .iter()
        .find(|r| truncated.contains(&r.to.0) && !truncated.contains(&r.from.0))
    {
        truncated.remove(&r.to.0);
    }
    let (truncate, delete): (Vec<&Chosen>, Vec<&Chosen>) =
        chosen.iter().partition(|c| truncated.contains(&c.oid.0));
    if !truncate.is_empty() {
        exec(conn, &format!("TRUNCATE ONLY {}", list(&truncate))).await?;
    }
    for c in delete {
        exec(conn, &format!("DELETE FROM ONLY {}", c.name.quoted())).await?;
    }
    Ok(())
}

async fn exec(conn: &mut PgConnection, sql: &str) -> Result<(), RestoreError> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(conn)
        .await?;
    Ok(())
}
