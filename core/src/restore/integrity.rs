//! The foreign-key check after a table restore: triggers (foreign-key ones included) are off
//! while rows are replaced, so every foreign key that involves a restored table is checked
//! afterwards, inside the same transaction, with one anti-join per constraint.
//!
//! ```text
//! involved = restored tables + their partition ancestors
//! for each validated FK (not a partition clone) whose referencing or referenced side is involved:
//!     SELECT ROW(c.fk...)::text FROM [ONLY] child c
//!     WHERE c.fk1 IS NOT NULL AND ...            -- MATCH SIMPLE: a NULL satisfies the key
//!       AND NOT EXISTS (SELECT 1 FROM [ONLY] parent p WHERE p.k1 = c.fk1 AND ...) LIMIT 1
//! ```
//! `ONLY` on plain tables (inheritance children are not covered by their parent's keys), none
//! on partitioned tables (their keys cover every partition).

use sqlx::PgConnection;
use sqlx::postgres::types::Oid;

use super::RestoreError;
use crate::dump::quote_ident;

/// A foreign key whose rows would point nowhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokenReference {
    /// The constraint's name.
    pub constraint: String,
    /// The referencing table, `schema.name`.
    pub table: String,
    /// The referenced table.
    pub references: String,
    /// One offending key, as a row literal.
    pub example: String,
}

impl std::fmt::Display for BrokenReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "foreign key {} on {} would break: {} has no match in {}",
            quote_ident(&self.constraint),
            self.table,
            self.example,
            self.references
        )
    }
}

/// Checks every foreign key involving `tables` (oids) on `conn`; returns those that break.
pub async fn check(
    conn: &mut PgConnection,
    tables: &[Oid],
) -> Result<Vec<BrokenReference>, RestoreError> {
    let fks = sqlx::query!(
        r#"WITH involved AS (
               SELECT t.oid FROM unnest($1::oid[]) AS t(oid)
               UNION
               SELECT a.relid FROM unnest($1::oid[]) AS t(oid), pg_partition_ancestors(t.oid) AS a)
           SELECT con.conname::text AS "name!",
                  cn.nspname::text AS "child_schema!", c.relname::text AS "child!",
                  c.relkind = 'p' AS "child_partitioned!",
                  pn.nspname::text AS "parent_schema!", p.relname::text AS "parent!",
                  p.relkind = 'p' AS "parent_partitioned!",
                  ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k(n, i)
                        JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n
                        ORDER BY k.i) AS "child_cols!",
                  ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY AS k(n, i)
                        JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n
                        ORDER BY k.i) AS "parent_cols!"
           FROM pg_constraint con
           JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
           JOIN pg_class p ON p.oid = con.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace
           WHERE con.contype = 'f' AND con.convalidated AND con.conparentid = 0
             AND (con.conrelid IN (SELECT oid FROM involved)
                  OR con.confrelid IN (SELECT oid FROM involved))
           ORDER BY 1, 2, 3"#,
        tables as &[Oid]
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut broken = Vec::new();
    for fk in fks {
        let only = |partitioned: bool| if partitioned { "" } else { "ONLY " };
        let child = format!(
            "{}.{}",
            quote_ident(&fk.child_schema),
            quote_ident(&fk.child)
        );
        let parent = format!(
            "{}.{}",
            quote_ident(&fk.parent_schema),
            quote_ident(&fk.parent)
        );
        let sql = check_sql(
            &format!("{}{child}", only(fk.child_partitioned)),
            &format!("{}{parent}", only(fk.parent_partitioned)),
            &fk.child_cols,
            &fk.parent_cols,
        );
        let example: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(example) = example {
            broken.push(BrokenReference {
                constraint: fk.name,
                table: child,
                references: parent,
                example,
            });
        }
    }
    Ok(broken)
}

/// The anti-join for one constraint (identifiers already quoted where needed).
fn check_sql(child: &str, parent: &str, child_cols: &[String], parent_cols: &[String]) -> String {
    let c: Vec<String> = child_cols
        .iter()
        .map(|x| format!("c.{}", quote_ident(x)))
        .collect();
    let not_null: Vec<String> = c.iter().map(|x| format!("{x} IS NOT NULL")).collect();
    let join: Vec<String> = parent_cols
        .iter()
        .zip(&c)
        .map(|(p, x)| format!("p.{} = {x}", quote_ident(p)))
        .collect();
    format!(
        "SELECT ROW({})::text FROM {child} AS c WHERE {} AND NOT EXISTS \
         (SELECT 1 FROM {parent} AS p WHERE {}) LIMIT 1",
        c.join(", "),
        not_null.join(" AND "),
        join.join(" AND ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_anti_join_quotes_columns_and_skips_nulls() {
        let sql = check_sql(
            "ONLY \"s\".\"c\"",
            "\"s\".\"p\"",
            &["a".into(), "B\"".into()],
            &["x".into(), "y".into()],
        );
        assert_eq!(
            sql,
            "SELECT ROW(c.\"a\", c.\"B\"\"\")::text FROM ONLY \"s\".\"c\" AS c WHERE \
             c.\"a\" IS NOT NULL AND c.\"B\"\"\" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM \
             \"s\".\"p\" AS p WHERE p.\"x\" = c.\"a\" AND p.\"y\" = c.\"B\"\"\") LIMIT 1"
        );
    }
}
