//! What to copy: the tables of the snapshot, a user's selection checked against the catalog, and
//! the row-level-security check that must pass before any row is copied.

use std::collections::BTreeSet;

use sqlx::postgres::types::Oid;

use super::error::{DumpError, Result};
use super::ident::{TableName, closest, quote_ident};
use super::snapshot::{RoleInfo, Snapshot};

/// One table to copy, as the catalog describes it at the snapshot.
#[derive(Clone, Debug)]
pub struct TableInfo {
    /// Schema and name.
    pub name: TableName,
    /// The table's oid in the source (for logs and the manifest; oids change on restore).
    pub oid: u32,
    /// Columns to copy, in order: not dropped, not generated (restore recomputes those).
    pub columns: Vec<String>,
    /// An inheritance (or partitioning) parent: its own rows are read with `FROM ONLY`.
    pub has_children: bool,
    /// A partition leaf.
    pub is_partition: bool,
    /// Unlogged tables are copied like any other (their rows are lost on crash, not on backup).
    pub unlogged: bool,
    /// `relpages` from the last VACUUM/ANALYZE; may be stale.
    pub relpages: u32,
    /// `pg_relation_size`: the size of the main fork now, which drives the ctid split.
    pub size_bytes: u64,
    /// `reltuples`, None when the table was never analyzed.
    pub row_estimate: Option<u64>,
    /// Row-level security is enabled.
    pub row_security: bool,
    /// ... and forced on the owner too.
    pub force_row_security: bool,
    /// The backup's role has the owner's privileges.
    pub owned_by_role: bool,
}

/// A user's table selection, checked against the catalog: only a `Selection` can restrict
/// [`Snapshot::list_tables`] and [`PgDump::dump_schema`](super::PgDump::dump_schema).
#[derive(Clone, Debug)]
pub struct Selection {
    data_oids: Vec<Oid>,
    relations: Vec<TableName>,
}

impl Selection {
    /// Every relation whose definition a selective schema dump needs: the selected tables, every
    /// member of a selected partitioned table's tree (pg_dump 15 `-t` does not follow partitions
    /// by itself), and the partitioning or inheritance ancestors of all of them (a child's DDL
    /// refers to its parent). Only selected tables and partition leaves have their rows copied.
    pub fn relations(&self) -> &[TableName] {
        &self.relations
    }
}

/// Why row-level security would hide rows from `role` in `table`, if it would.
pub(super) fn row_security_blocks(role: &RoleInfo, table: &TableInfo) -> bool {
    let owner_exempt = table.owned_by_role && !table.force_row_security;
    table.row_security && !(role.superuser || role.bypass_rls || owner_exempt)
}

fn relkind_words(kind: i8) -> &'static str {
    match kind as u8 {
        b'v' => "view",
        b'm' => "materialized view",
        b'f' => "foreign table",
        _ => "relation of another kind",
    }
}

impl Snapshot {
    /// Checks each name against the catalog (unknown: an error naming it and a close match; not a
    /// table: an error saying what it is) and expands partitioned tables to their leaves.
    #[tracing::instrument(skip_all, fields(selected = wanted.len()))]
    pub async fn resolve_selection(&mut self, wanted: &[TableName]) -> Result<Selection> {
        let rows = sqlx::query!(
            r#"SELECT c.oid AS "oid!: Oid", n.nspname AS "schema!", c.relname AS "name!",
                      c.relkind AS "kind!"
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relpersistence <> 't'
                 AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'"#
        )
        .fetch_all(&mut self.conn)
        .await
        .map_err(DumpError::query(
            "reading the catalog to check the table selection",
        ))?;
        let mut known = Vec::with_capacity(rows.len());
        for r in rows {
            known.push((TableName::new(r.schema, r.name)?, r.oid, r.kind));
        }
        let (mut plain, mut partitioned, mut relations) = (Vec::new(), Vec::new(), BTreeSet::new());
        for name in wanted {
            let Some((found, oid, kind)) = known.iter().find(|(n, _, _)| n == name) else {
                let tables: Vec<TableName> = known
                    .iter()
                    .filter(|k| matches!(k.2 as u8, b'r' | b'p'))
                    .map(|k| k.0.clone())
                    .collect();
                let suggestion = closest(name, &tables).map(ToString::to_string);
                return Err(DumpError::UnknownTable {
                    name: name.to_string(),
                    suggestion,
                });
            };
            match *kind as u8 {
                b'r' => plain.push(*oid),
                b'p' => partitioned.push(*oid),
                _ => {
                    return Err(DumpError::NotATable {
                        name: found.to_string(),
                        kind: relkind_words(*kind),
                    });
                }
            }
            relations.insert(found.clone());
        }
        let selected: Vec<Oid> = plain.iter().chain(&partitioned).copied().collect();
        self.add_ancestors(&selected, &mut relations).await?;
        self.expand_partitions(&partitioned, &mut plain, &mut relations)
            .await?;
        plain.sort_by_key(|o| o.0);
        plain.dedup();
        Ok(Selection {
            data_oids: plain,
            relations: relations.into_iter().collect(),
        })
    }

    /// Adds the partitioning and inheritance ancestors of `oids` to `relations`: pg_dump emits
    /// `ATTACH PARTITION` or `INHERITS` for a selected child, so restore needs its parents'
    /// definitions (their rows are not copied unless selected too).
    async fn add_ancestors(
        &mut self,
        oids: &[Oid],
        relations: &mut BTreeSet<TableName>,
    ) -> Result<()> {
        let rows = sqlx::query!(
            r#"WITH RECURSIVE up(oid) AS (
                   SELECT i.inhparent FROM pg_inherits i WHERE i.inhrelid = ANY ($1::oid[])
                   UNION
                   SELECT i.inhparent FROM pg_inherits i JOIN up ON i.inhrelid = up.oid)
               SELECT n.nspname AS "schema!", c.relname AS "name!"
               FROM up JOIN pg_class c ON c.oid = up.oid JOIN pg_namespace n ON n.oid = c.relnamespace"#,
            oids as &[Oid]
        )
        .fetch_all(&mut self.conn)
        .await
        .map_err(DumpError::query("finding the parents of selected tables"))?;
        for r in rows {
            relations.insert(TableName::new(r.schema, r.name)?);
        }
        Ok(())
    }

    /// Adds the leaves of the partitioned tables `roots` to `leaves`, and every tree member to
    /// `relations`.
    async fn expand_partitions(
        &mut self,
        roots: &[Oid],
        leaves: &mut Vec<Oid>,
        relations: &mut BTreeSet<TableName>,
    ) -> Result<()> {
        let rows = sqlx::query!(
            r#"SELECT t.relid::oid AS "oid!: Oid", n.nspname AS "schema!", c.relname AS "name!",
                      c.relkind AS "kind!"
               FROM unnest($1::oid[]) AS r(root)
               CROSS JOIN LATERAL pg_partition_tree(r.root::regclass) AS t
               JOIN pg_class c ON c.oid = t.relid
               JOIN pg_namespace n ON n.oid = c.relnamespace"#,
            roots as &[Oid]
        )
        .fetch_all(&mut self.conn)
        .await
        .map_err(DumpError::query("expanding partitioned tables"))?;
        for r in rows {
            if r.kind as u8 == b'r' {
                leaves.push(r.oid);
            }
            relations.insert(TableName::new(r.schema, r.name)?);
        }
        Ok(())
    }

    /// Every table that holds rows (or those of `selection`), checked for row-level security and
    /// locked in ACCESS SHARE mode for the rest of the backup, in (schema, name) order.
    #[tracing::instrument(skip_all, fields(selective = selection.is_some()))]
    pub async fn list_tables(&mut self, selection: Option<&Selection>) -> Result<Vec<TableInfo>> {
        let oids = selection.map(|s| s.data_oids.as_slice());
        let rows = sqlx::query_file!("src/dump/sql/list_tables.sql", oids as Option<&[Oid]>)
            .fetch_all(&mut self.conn)
            .await
            .map_err(DumpError::query("listing tables"))?;
        let mut tables = Vec::with_capacity(rows.len());
        for r in rows {
            tables.push(TableInfo {
                name: TableName::new(r.schema, r.name)?,
                oid: r.oid.0,
                columns: r.columns,
                has_children: r.has_children,
                is_partition: r.is_partition,
                unlogged: r.unlogged,
                relpages: u32::try_from(r.relpages).unwrap_or(0),
                size_bytes: u64::try_from(r.size_bytes).unwrap_or(0),
                row_estimate: (r.reltuples >= 0.0).then_some(r.reltuples as u64),
                row_security: r.row_security,
                force_row_security: r.force_row_security,
                owned_by_role: r.owned_by_role,
            });
        }
        self.check_row_security(&tables)?;
        let names: Vec<TableName> = tables.iter().map(|t| t.name.clone()).collect();
        self.lock_tables(&names).await?;
        Ok(tables)
    }

    /// Data connections run with `row_security = off`, which makes a query fail (rather than
    /// silently skip rows) where a policy would apply. Fail earlier, naming the table and the fix.
    pub fn check_row_security(&self, tables: &[TableInfo]) -> Result<()> {
        let Some(t) = tables.iter().find(|t| row_security_blocks(&self.role, t)) else {
            return Ok(());
        };
        Err(DumpError::RowSecurity {
            table: t.name.to_string(),
            forced: if t.force_row_security { " (FORCE)" } else { "" },
            role: self.role.name.clone(),
            role_sql: quote_ident(&self.role.name),
            owner_hint: if t.force_row_security {
                ""
            } else {
                ", or as the table's owner"
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rls: bool, force: bool, owned: bool) -> TableInfo {
        TableInfo {
            name: TableName::new("public", "t").unwrap(),
            oid: 1,
            columns: vec![],
            has_children: false,
            is_partition: false,
            unlogged: false,
            relpages: 0,
            size_bytes: 0,
            row_estimate: None,
            row_security: rls,
            force_row_security: force,
            owned_by_role: owned,
        }
    }

    #[test]
    fn row_security_blocks_only_roles_that_cannot_bypass_it() {
        let plain = RoleInfo {
            name: "r".into(),
            superuser: false,
            bypass_rls: false,
        };
        let bypass = RoleInfo {
            bypass_rls: true,
            ..plain.clone()
        };
        let superuser = RoleInfo {
            superuser: true,
            ..plain.clone()
        };
        assert!(!row_security_blocks(&plain, &table(false, false, false)));
        assert!(row_security_blocks(&plain, &table(true, false, false)));
        assert!(
            !row_security_blocks(&plain, &table(true, false, true)),
            "owner exempt"
        );
        assert!(
            row_security_blocks(&plain, &table(true, true, true)),
            "FORCE binds the owner"
        );
        assert!(!row_security_blocks(&bypass, &table(true, true, false)));
        assert!(!row_security_blocks(&superuser, &table(true, true, false)));
    }
}
