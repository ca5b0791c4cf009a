//! Data connections: each imports the snapshot and streams tasks with `COPY ... TO STDOUT`.
//!
//! PostgreSQL sends one CopyData message per row; passing those on one by one costs more than the
//! copy itself (see shared/notes/performance.md). So the connection is our own minimal client
//! ([`super::wire`]), which appends message payloads straight from its socket buffer into ~1 MiB
//! buffers:
//!
//! ```text
//! while wire.copy_out_next(buffer, 1 MiB):   -- payloads appended, headers skipped
//!     rows = CopyData messages so far; send buffer (next one from `bufpool`); report progress
//! at the end: send the rest, report it
//! ```

use bytes::Bytes;
use tokio::sync::mpsc;

use super::error::{DumpError, Result, redact_url};
use super::ident::quote_ident;
use super::plan::CopyTask;
use super::wire::WireConn;
use crate::bufpool;

/// Size of the buffers sent on: big enough to make per-send costs vanish, small enough that a
/// few of them in flight per connection keep memory flat.
pub const BUFFER_BYTES: usize = 1024 * 1024;

/// What one task copied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyStats {
    /// Rows (text-format lines; embedded newlines are escaped as `\n`, so lines are rows).
    pub rows: u64,
    /// Bytes of COPY text.
    pub bytes: u64,
}

/// Receives progress at buffer granularity. Amounts are increments since the previous call, so
/// one implementation can sum them over parallel tasks. `()` ignores them.
pub trait CopyProgress: Send + Sync {
    /// `rows` and `bytes` more of task `task_index` were handed on.
    fn advance(&self, task_index: usize, rows: u64, bytes: u64);
}

impl CopyProgress for () {
    fn advance(&self, _: usize, _: u64, _: u64) {}
}

/// Session settings that fix how `COPY TO` writes values, whatever the server's or database's
/// defaults (as pg_dump sets them): ISO dates, `postgres` intervals, exact floats, hex bytea,
/// UTC offsets. Restores parse any of these; the restore drill sets the same to compare.
pub const OUTPUT_SETTINGS: &str = "SET datestyle = 'ISO, MDY'; SET intervalstyle = 'postgres'; \
    SET extra_float_digits = 3; SET bytea_output = 'hex'; SET timezone = 'UTC'";

/// A connection inside the backup's snapshot, with row security off. Use one per job; after an
/// error it refuses further work (a COPY interrupted half-way leaves the protocol mid-stream).
pub struct DataConn {
    conn: WireConn,
    broken: bool,
}

impl DataConn {
    /// Connects and imports `snapshot_id`: `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
    /// SET TRANSACTION SNAPSHOT '<id>'`, with row security and JIT off.
    #[tracing::instrument(skip_all, fields(url = %redact_url(source_url), snapshot = snapshot_id))]
    pub async fn connect(source_url: &str, snapshot_id: &str) -> Result<Self> {
        check_snapshot_id(snapshot_id)?;
        let mut conn = WireConn::connect(source_url, "cellar backup copy")
            .await
            .map_err(|source| DumpError::DataConnect {
                url: redact_url(source_url),
                source,
            })?;
        // `jit = off`: a part planned above `jit_above_cost` (a big last part, a large unsplit
        // table) would spend ~50 ms compiling expressions it then barely uses (measured on a
        // whole-table TID-range COPY of pgbench_accounts: 1.21 s without, 1.26-1.32 s with).
        let sql = format!(
            "{OUTPUT_SETTINGS}; SET idle_in_transaction_session_timeout = 0; \
             SET statement_timeout = 0; SET row_security = off; SET jit = off; \
             BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
             SET TRANSACTION SNAPSHOT '{snapshot_id}'"
        );
        conn.simple_query(&sql)
            .await
            .map_err(|source| DumpError::DataQuery {
                context: "importing the backup's snapshot",
                source,
            })?;
        Ok(Self {
            conn,
            broken: false,
        })
    }

    /// Streams `task` into `tx` in ~1 MiB buffers; the channel closes when this returns. If the
    /// receiver goes away, stops with [`DumpError::Cancelled`].
    #[tracing::instrument(skip_all, fields(task = task.index, table = %task.table.name, part = task.part))]
    pub async fn copy(
        &mut self,
        task: &CopyTask,
        tx: mpsc::Sender<Bytes>,
        progress: &dyn CopyProgress,
    ) -> Result<CopyStats> {
        if self.broken {
            return Err(DumpError::ConnectionBroken);
        }
        self.broken = true;
        let stats = self.stream(task, &tx, progress).await?;
        self.broken = false;
        tracing::debug!(rows = stats.rows, bytes = stats.bytes, "task copied");
        Ok(stats)
    }

    async fn stream(
        &mut self,
        task: &CopyTask,
        tx: &mpsc::Sender<Bytes>,
        progress: &dyn CopyProgress,
    ) -> Result<CopyStats> {
        let copy_err = |source| DumpError::Copy {
            table: task.table.name.to_string(),
            source,
        };
        self.conn
            .copy_out(&copy_statement(task))
            .await
            .map_err(copy_err)?;
        tracing::trace!("copy started");
        let mut stats = CopyStats::default();
        let mut buf = bufpool::take();
        while self
            .conn
            .copy_out_next(&mut buf, BUFFER_BYTES)
            .await
            .map_err(copy_err)?
        {
            let chunk = std::mem::replace(&mut buf, bufpool::take()).freeze();
            self.send(chunk, tx, task.index, &mut stats, progress)
                .await?;
        }
        if buf.is_empty() {
            bufpool::give(buf.freeze());
            debug_assert_eq!(
                stats.rows,
                self.conn.copy_rows(),
                "every row is in a buffer"
            );
        } else {
            self.send(buf.freeze(), tx, task.index, &mut stats, progress)
                .await?;
        }
        Ok(stats)
    }

    /// Hands a buffer on and counts it: rows are the CopyData messages received so far (a row
    /// cut at the end of a buffer counts in the buffer where it starts).
    async fn send(
        &self,
        chunk: Bytes,
        tx: &mpsc::Sender<Bytes>,
        task: usize,
        stats: &mut CopyStats,
        progress: &dyn CopyProgress,
    ) -> Result<()> {
        let rows = self.conn.copy_rows() - stats.rows;
        let bytes = chunk.len() as u64;
        tx.send(chunk).await.map_err(|_| DumpError::Cancelled)?;
        stats.rows += rows;
        stats.bytes += bytes;
        progress.advance(task, rows, bytes);
        Ok(())
    }
}

/// Rows in COPY text: its lines (text format escapes embedded newlines as `\n`).
///
/// Counted 255 bytes at a time into a byte-wide sum, which the compiler turns into wide
/// compare-and-subtract instructions: several GB/s, where `filter().count()` took 7% of a
/// backup's CPU in perf (one byte at a time into a 64-bit counter).
pub fn count_rows(text: &[u8]) -> u64 {
    text.chunks(255)
        .map(|c| c.iter().fold(0u8, |n, &b| n + u8::from(b == b'\n')) as u64)
        .sum()
}

/// The COPY for a task. A whole table uses `COPY t (cols) TO STDOUT`, which reads only the
/// table's own rows (never its children's); a page range needs the query form, with `FROM ONLY`
/// so inheritance children are not read twice.
pub fn copy_statement(task: &CopyTask) -> String {
    let table = &task.table;
    let cols: Vec<String> = table.columns.iter().map(|c| quote_ident(c)).collect();
    let cols = cols.join(", ");
    let Some(range) = task.range else {
        // No column list at all when every column is generated or the table has none.
        return match cols.is_empty() {
            true => format!("COPY {} TO STDOUT", table.name.quoted()),
            false => format!("COPY {} ({cols}) TO STDOUT", table.name.quoted()),
        };
    };
    let mut filter = format!("ctid >= '({},0)'::tid", range.start);
    if let Some(end) = range.end {
        filter.push_str(&format!(" AND ctid < '({end},0)'::tid"));
    }
    format!(
        "COPY (SELECT {cols} FROM ONLY {} WHERE {filter}) TO STDOUT",
        table.name.quoted()
    )
}

/// Snapshot ids look like `00000003-0000001B-1`; anything else never reaches SQL.
pub(super) fn check_snapshot_id(id: &str) -> Result<()> {
    let ok =
        !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    ok.then_some(())
        .ok_or_else(|| DumpError::InvalidSnapshotId(id.to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::dump::plan::PageRange;
    use crate::dump::{TableInfo, TableName};

    fn task(columns: &[&str], range: Option<PageRange>) -> CopyTask {
        let table = TableInfo {
            name: TableName::new("S", "t\"x").unwrap(),
            oid: 1,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            has_children: true,
            is_partition: false,
            unlogged: false,
            relpages: 0,
            size_bytes: 0,
            row_estimate: None,
            row_security: false,
            force_row_security: false,
            owned_by_role: false,
        };
        CopyTask {
            index: 0,
            table: Arc::new(table),
            range,
            part: 0,
            parts: 1,
            estimated_bytes: 0,
        }
    }

    #[test]
    fn rows_are_lines() {
        assert_eq!(count_rows(b""), 0);
        assert_eq!(count_rows(b"a\tb\n\\n\n"), 2);
        let big: Vec<u8> = (0..100_000u32)
            .map(|i| if i % 7 == 0 { b'\n' } else { b'x' })
            .collect();
        assert_eq!(
            count_rows(&big),
            big.iter().filter(|&&b| b == b'\n').count() as u64
        );
        assert_eq!(count_rows(&[b'\n'; 1000]), 1000);
    }

    #[test]
    fn whole_tables_use_plain_copy_with_quoted_columns() {
        assert_eq!(
            copy_statement(&task(&["a", "B c"], None)),
            r#"COPY "S"."t""x" ("a", "B c") TO STDOUT"#
        );
        assert_eq!(
            copy_statement(&task(&[], None)),
            r#"COPY "S"."t""x" TO STDOUT"#
        );
    }

    #[test]
    fn ranges_use_a_tid_range_query_from_only() {
        let closed = task(
            &["a"],
            Some(PageRange {
                start: 10,
                end: Some(20),
            }),
        );
        assert_eq!(
            copy_statement(&closed),
            r#"COPY (SELECT "a" FROM ONLY "S"."t""x" WHERE ctid >= '(10,0)'::tid AND ctid < '(20,0)'::tid) TO STDOUT"#
        );
        let open = task(
            &[],
            Some(PageRange {
                start: 20,
                end: None,
            }),
        );
        assert_eq!(
            copy_statement(&open),
            r#"COPY (SELECT  FROM ONLY "S"."t""x" WHERE ctid >= '(20,0)'::tid) TO STDOUT"#
        );
    }

    #[test]
    fn snapshot_ids_are_checked() {
        assert!(check_snapshot_id("00000003-0000001B-1").is_ok());
        for bad in ["", "1'; DROP TABLE x; --", "abc def", &"1".repeat(65)] {
            assert!(check_snapshot_id(bad).is_err(), "{bad:?}");
        }
    }
}
