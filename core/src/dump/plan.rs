//! Splitting the copy into tasks so that one big table does not leave connections idle.
//!
//! ```text
//! for each table (in list order):
//!     pages = ceil(size / block size)
//!     if size <= chunk: one task, whole table
//!     else: k = its chunk: `chunk`, or smaller (down to 16 MiB) so that it has at least
//!               4 parts per connection
//!           tasks for pages [0,k) [k,2k) ... [n*k, end of table)   -- last one open-ended
//! number the tasks in that order (stable index), then sort largest first
//! ```

use std::sync::Arc;

use super::catalog::TableInfo;

/// PostgreSQL's default block size; ctids address (block, item). Builds with another block size
/// only get differently sized chunks, never wrong ones, because the last range is open-ended.
pub const BLOCK_SIZE: u64 = 8192;
/// A good default chunk: big enough that per-task overhead vanishes, small enough to balance.
pub const DEFAULT_CHUNK_BYTES: u64 = 256 * 1024 * 1024;
/// The smallest chunk a split table is cut into to give each connection several parts.
pub const MIN_CHUNK_BYTES: u64 = 16 * 1024 * 1024;
/// Parts per connection a split table gets, chunks allowing: with one part per connection the
/// table's copy (and its restore, which loads the same parts) ends when the slowest part does.
const PARTS_PER_JOB: u64 = 4;

/// Heap pages `[start, end)` of a table; `end = None` reads to the end of the table, so rows added
/// to pages past the planned size (not visible to the snapshot anyway) cannot be missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRange {
    /// First page.
    pub start: u32,
    /// One past the last page, or None for "to the end".
    pub end: Option<u32>,
}

/// One unit of copying: a whole table or a page range of it, streamed by one connection.
#[derive(Clone, Debug)]
pub struct CopyTask {
    /// Stable number of the task: tables in list order, then ranges in page order. The object
    /// format can name parts by it; restore can concatenate a table's parts in this order.
    pub index: usize,
    /// The table.
    pub table: Arc<TableInfo>,
    /// The part of it, None for the whole table.
    pub range: Option<PageRange>,
    /// The part's number within the table (0-based) and how many parts the table has.
    pub part: u32,
    /// How many parts the table was split into.
    pub parts: u32,
    /// Estimated on-disk bytes, to schedule the largest first.
    pub estimated_bytes: u64,
}

/// Plans the copy: tables larger than `chunk_bytes` become page-range tasks, of `chunk_bytes`
/// or smaller ([`MIN_CHUNK_BYTES`] at least) to give each of the `jobs` connections several.
/// Returned largest first; with `jobs` connections each taking the next task, big tables start
/// early.
///
/// Why smaller chunks: a 256 MB table in 64 MiB chunks is four parts of 69 MB, so with two
/// connections one loads two of them and the other one part and a small one: its restore took
/// 1.28 s where an even split takes about 1.0 s, and that table's GIN build waited for it.
pub fn plan_copy(tables: &[TableInfo], chunk_bytes: u64, jobs: usize) -> Vec<CopyTask> {
    let mut tasks = Vec::new();
    for table in tables {
        let table = Arc::new(table.clone());
        let balanced = table.size_bytes / (jobs.max(1) as u64 * PARTS_PER_JOB);
        let chunk = chunk_bytes.min(balanced.max(MIN_CHUNK_BYTES));
        let chunk_pages = (chunk / BLOCK_SIZE).max(1);
        let pages = table.size_bytes.div_ceil(BLOCK_SIZE);
        let parts = if table.size_bytes <= chunk_bytes {
            1
        } else {
            pages.div_ceil(chunk_pages)
        };
        for part in 0..parts {
            let range = (parts > 1).then(|| PageRange {
                start: page(part * chunk_pages),
                end: (part + 1 < parts).then(|| page((part + 1) * chunk_pages)),
            });
            let estimated_bytes = match range {
                Some(_) => (table.size_bytes - part * chunk_pages * BLOCK_SIZE)
                    .min(chunk_pages * BLOCK_SIZE),
                None => table.size_bytes,
            };
            tasks.push(CopyTask {
                index: tasks.len(),
                table: Arc::clone(&table),
                range,
                part: part as u32,
                parts: parts as u32,
                estimated_bytes,
            });
        }
    }
    tasks.sort_by(|a, b| {
        b.estimated_bytes
            .cmp(&a.estimated_bytes)
            .then(a.index.cmp(&b.index))
    });
    tasks
}

/// Page numbers are 32-bit in PostgreSQL; a table cannot have more.
fn page(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::TableName;

    fn table(name: &str, size_bytes: u64) -> TableInfo {
        TableInfo {
            name: TableName::new("public", name).unwrap(),
            oid: 1,
            columns: vec!["a".into()],
            has_children: false,
            is_partition: false,
            unlogged: false,
            relpages: 0,
            size_bytes,
            row_estimate: None,
            row_security: false,
            force_row_security: false,
            owned_by_role: false,
        }
    }

    #[test]
    fn small_tables_are_one_task_each() {
        let tasks = plan_copy(
            &[table("a", 0), table("b", 100 * BLOCK_SIZE)],
            100 * BLOCK_SIZE,
            2,
        );
        assert_eq!(tasks.len(), 2);
        assert!(tasks.iter().all(|t| t.range.is_none() && t.parts == 1));
        assert_eq!(tasks[0].table.name.name(), "b", "largest first");
        assert_eq!((tasks[0].index, tasks[1].index), (1, 0));
    }

    #[test]
    fn big_tables_split_into_contiguous_ranges_ending_open() {
        let tasks = plan_copy(
            &[table("small", BLOCK_SIZE), table("big", 25 * BLOCK_SIZE)],
            10 * BLOCK_SIZE,
            2,
        );
        let mut big: Vec<&CopyTask> = tasks
            .iter()
            .filter(|t| t.table.name.name() == "big")
            .collect();
        big.sort_by_key(|t| t.index);
        let ranges: Vec<PageRange> = big.iter().map(|t| t.range.unwrap()).collect();
        assert_eq!(
            ranges,
            [
                PageRange {
                    start: 0,
                    end: Some(10)
                },
                PageRange {
                    start: 10,
                    end: Some(20)
                },
                PageRange {
                    start: 20,
                    end: None
                }
            ]
        );
        assert_eq!(big.iter().map(|t| t.index).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(big[2].estimated_bytes, 5 * BLOCK_SIZE);
        let order: Vec<u64> = tasks.iter().map(|t| t.estimated_bytes).collect();
        assert!(
            order.windows(2).all(|w| w[0] >= w[1]),
            "largest first: {order:?}"
        );
    }

    #[test]
    fn indexes_are_stable_and_dense() {
        let tables = [table("a", 30 * BLOCK_SIZE), table("b", 3 * BLOCK_SIZE)];
        let mut idx: Vec<usize> = plan_copy(&tables, 8 * BLOCK_SIZE, 2)
            .iter()
            .map(|t| t.index)
            .collect();
        idx.sort();
        assert_eq!(idx, (0..5).collect::<Vec<_>>());
    }

    #[test]
    fn split_tables_get_several_parts_per_connection_down_to_the_minimum() {
        let mib = 1024 * 1024;
        let parts = |size: u64, chunk: u64, jobs: usize| {
            let t = plan_copy(&[table("t", size)], chunk, jobs);
            (t.len(), t.iter().map(|t| t.estimated_bytes).max().unwrap())
        };
        // 256 MiB in 64 MiB chunks would be 4 parts: with 2 connections, 8 of 32 MiB.
        assert_eq!(parts(256 * mib, 64 * mib, 2), (8, 32 * mib));
        // Large tables keep the configured chunk.
        assert_eq!(parts(4096 * mib, 64 * mib, 2), (64, 64 * mib));
        // Never below the minimum chunk.
        assert_eq!(parts(80 * mib, 64 * mib, 2), (5, 16 * mib));
        assert_eq!(parts(256 * mib, 64 * mib, 16), (16, 16 * mib));
        // Tables within one chunk stay whole; a configured chunk below the minimum is kept.
        assert_eq!(parts(64 * mib, 64 * mib, 2), (1, 64 * mib));
        assert_eq!(parts(8 * mib, mib, 2), (8, mib));
    }
}
