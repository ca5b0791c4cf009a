//! Sequence values: `pg_dump --schema-only` records each sequence's definition but not where it
//! stands, so the backup stores `(last_value, is_called)` for restore's `setval`.

use sqlx::Row;

use super::error::{DumpError, Result};
use super::ident::TableName;
use super::snapshot::Snapshot;

/// How many sequences one `UNION ALL` query reads.
const SEQUENCE_BATCH: usize = 200;

/// Where one sequence stands at the snapshot: restore runs
/// `SELECT setval('<name>', last_value, is_called)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SequenceValue {
    /// The sequence.
    pub name: TableName,
    /// Its `last_value`.
    pub last_value: i64,
    /// False when `nextval` will return `last_value` itself (fresh, or `setval(.., false)`).
    pub is_called: bool,
    /// The table owning it (serial and identity columns), so a selective backup can keep only
    /// the sequences of its tables.
    pub owned_by: Option<TableName>,
}

impl Snapshot {
    /// Every user sequence (serial and identity ones included) with its value at the snapshot.
    /// Values are read with `SELECT last_value, is_called FROM seq`, as pg_dump does:
    /// `pg_sequences` cannot tell `is_called`.
    #[tracing::instrument(skip_all)]
    pub async fn sequences(&mut self) -> Result<Vec<SequenceValue>> {
        let rows = sqlx::query!(
            r#"SELECT n.nspname AS "schema!", c.relname AS "name!",
                      tn.nspname AS "owner_schema?", t.relname AS "owner_name?"
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
                    AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
               LEFT JOIN pg_class t ON t.oid = d.refobjid
               LEFT JOIN pg_namespace tn ON tn.oid = t.relnamespace
               WHERE c.relkind = 'S' AND c.relpersistence <> 't'
                 AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
                 AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass
                                 AND e.objid = c.oid AND e.deptype = 'e')
               ORDER BY 1, 2"#
        )
        .fetch_all(&mut self.conn)
        .await
        .map_err(DumpError::query("listing sequences"))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let owned_by = match (r.owner_schema, r.owner_name) {
                (Some(s), Some(n)) => Some(TableName::new(s, n)?),
                _ => None,
            };
            out.push(SequenceValue {
                name: TableName::new(r.schema, r.name)?,
                last_value: 0,
                is_called: false,
                owned_by,
            });
        }
        for batch in out.chunks_mut(SEQUENCE_BATCH) {
            self.read_sequence_values(batch).await?;
        }
        Ok(out)
    }

    /// Fills `last_value` and `is_called` of a batch in one round trip.
    async fn read_sequence_values(&mut self, batch: &mut [SequenceValue]) -> Result<()> {
        let selects: Vec<String> = batch
            .iter()
            .enumerate()
            .map(|(i, s)| {
                format!(
                    "SELECT {i}::int4 AS i, last_value, is_called FROM {}",
                    s.name.quoted()
                )
            })
            .collect();
        let sql = selects.join(" UNION ALL ");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut self.conn)
            .await
            .map_err(DumpError::query(
                "reading sequence values (the role needs SELECT on every sequence)",
            ))?;
        for row in rows {
            let read = |e| DumpError::Query {
                context: "reading sequence values",
                source: e,
            };
            let i: i32 = row.try_get("i").map_err(read)?;
            let seq = &mut batch[i as usize];
            seq.last_value = row.try_get("last_value").map_err(read)?;
            seq.is_called = row.try_get("is_called").map_err(read)?;
        }
        Ok(())
    }
}
