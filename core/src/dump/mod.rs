//! The dump engine: reads a source database at one consistent instant and produces byte streams
//! (the schema archive, each table's COPY text, sequence values) for the backup format to store.
//!
//! ```text
//! snapshot = Snapshot::open(url)            -- REPEATABLE READ READ ONLY, pg_export_snapshot()
//! PgDump::check_compatible(server version)
//! selection = snapshot.resolve_selection()  -- optional; unknown names fail here
//! tables = snapshot.list_tables(selection)  -- RLS checked, ACCESS SHARE locks taken
//! PgDump::dump_schema(url, snapshot.id())   -- its own stream
//! for task in plan_copy(tables, chunk, jobs): -- big tables split into ctid page ranges
//!     a DataConn (one per job, SET TRANSACTION SNAPSHOT) copies it into its own stream
//!     (over `wire`, a minimal protocol client that reads COPY data in bulk)
//! snapshot.sequences(), populated_matviews(), large_object_count()   -- what --schema-only omits
//! snapshot.close()                          -- after every stream has finished
//! ```
//!
//! Text-format COPY is used throughout: restore feeds it back with `COPY ... FROM STDIN` with
//! the same column list ([`TableInfo::columns`]).

mod catalog;
mod copy;
mod error;
mod ident;
mod plan;
mod schema;
mod sequences;
mod snapshot;
pub mod wire;

pub use catalog::{Selection, TableInfo};
pub use copy::{
    BUFFER_BYTES, CopyProgress, CopyStats, DataConn, OUTPUT_SETTINGS, copy_statement, count_rows,
};
pub use error::{DumpError, Result, redact_text, redact_url};
pub use ident::{TableName, quote_ident};
pub use plan::{BLOCK_SIZE, CopyTask, DEFAULT_CHUNK_BYTES, PageRange, plan_copy};
pub use schema::PgDump;
pub(crate) use schema::split_password;
pub use sequences::SequenceValue;
pub use snapshot::{RoleInfo, Snapshot};

/// The default number of parallel data connections: one per core, since the server's COPY and
/// the client's receiving are both CPU-bound.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}
