//! Feeding backup objects back with `COPY ... FROM STDIN`, each checked against the manifest
//! before its COPY is allowed to end.
//!
//! ```text
//! COPY "schema"."table" (columns) FROM STDIN      -- the manifest's column list
//! for each decrypted segment: BLAKE3 it, send it as CopyData
//! any read error, or plain size/BLAKE3 different from the manifest: CopyFail (nothing lands)
//! CopyDone; rows reported by the server must equal the manifest's
//! ```
//! A full restore runs objects on several lanes at once ([`super::interleave`]); a table
//! restore runs them one by one inside its transaction.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use sqlx::PgConnection;
use tokio::sync::mpsc;

use super::RestoreError;
use super::open::OpenedBackup;
use super::target::Server;
use crate::backup::{BackupEnv, Progress, ProgressReport};
use crate::dump::quote_ident;
use crate::format::manifest::TableRef;
use crate::format::reader::PlainStream;
use crate::format::{FormatError, ManifestObject};

/// Segments decoded ahead of the COPY, per connection (each about 4 MiB).
const PREFETCH_SEGMENTS: usize = 2;

/// Counters shared by parallel loads, turned into progress reports.
pub struct Meter<'a> {
    sink: &'a dyn Progress,
    start: Instant,
    phase: Mutex<String>,
    bytes: AtomicU64,
    rows: AtomicU64,
    objects: AtomicU64,
    bytes_total: u64,
    objects_total: u64,
}

impl<'a> Meter<'a> {
    /// A meter over `objects_total` objects of `bytes_total` plain bytes.
    pub fn new(sink: &'a dyn Progress, bytes_total: u64, objects_total: u64) -> Self {
        Self {
            sink,
            start: Instant::now(),
            phase: Mutex::new("starting".into()),
            bytes: AtomicU64::new(0),
            rows: AtomicU64::new(0),
            objects: AtomicU64::new(0),
            bytes_total,
            objects_total,
        }
    }

    /// Enters a phase (`schema`, `data`, `indexes`, `sequences`, `swap`...) and reports.
    pub fn phase(&self, p: &str) {
        *self.phase.lock().expect("phase lock") = p.into();
        self.emit();
    }

    /// Rows loaded so far.
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    fn emit(&self) {
        let r = ProgressReport {
            phase: self.phase.lock().expect("phase lock").clone(),
            bytes_done: self.bytes.load(Ordering::Relaxed),
            bytes_total: self.bytes_total,
            rows_done: self.rows.load(Ordering::Relaxed),
            tables_done: self.objects.load(Ordering::Relaxed),
            tables_total: self.objects_total,
            ..Default::default()
        };
        self.sink
            .report(r.derive(self.start.elapsed().as_secs_f64()));
    }
}

/// `COPY "s"."t" ("a", "b") FROM STDIN`; without a column list when the manifest has none
/// (then the table's own non-generated columns, in order, are expected).
pub fn copy_in_statement(table: &TableRef, columns: Option<&[String]>) -> String {
    let name = format!(
        "{}.{}",
        quote_ident(&table.schema),
        quote_ident(&table.name)
    );
    match columns {
        Some(cols) if !cols.is_empty() => {
            let cols: Vec<String> = cols.iter().map(|c| quote_ident(c)).collect();
            format!("COPY {name} ({}) FROM STDIN", cols.join(", "))
        }
        _ => format!("COPY {name} FROM STDIN"),
    }
}

/// Loads one object into its table on `conn`. Returns the rows loaded.
#[tracing::instrument(skip_all, fields(object = %o.name))]
pub async fn copy_object(
    conn: &mut PgConnection,
    env: &BackupEnv,
    backup: &OpenedBackup,
    o: &ManifestObject,
    columns: Option<&[String]>,
    meter: &Meter<'_>,
) -> Result<u64, RestoreError> {
    let table = o.table.as_ref().expect("table data names its table");
    let shown = format!("{}.{}", table.schema, table.name);
    let corrupt = |e: &dyn std::fmt::Display| {
        RestoreError::Permanent(format!(
            "backup object {} ({shown}) is unusable: {e}",
            o.name
        ))
    };
    let mut plain = prefetch(backup.stream(env, o).await?);
    let mut copy = conn
        .copy_in_raw(&copy_in_statement(table, columns))
        .await
        .map_err(|e| RestoreError::from(e).context(&format!("COPY into {shown}")))?;
    let (mut hasher, mut size) = (blake3::Hasher::new(), 0u64);
    loop {
        let chunk = match plain.recv().await.transpose() {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                let _ = copy.abort("backup object unreadable").await;
                return Err(corrupt(&e));
            }
        };
        hasher.update(&chunk);
        let len = chunk.len() as u64;
        size += len;
        let rows = crate::dump::count_rows(&chunk);
        copy.send(chunk)
            .await
            .map_err(|e| RestoreError::from(e).context(&format!("COPY into {shown}")))?;
        meter.add(rows, len);
    }
    if size != o.digest.plain_size || hasher.finalize().to_hex().as_str() != o.digest.plain_blake3 {
        let _ = copy.abort("backup object differs from its manifest").await;
        return Err(corrupt(&"plain size or BLAKE3 differs from the manifest"));
    }
    let rows = copy
        .finish()
        .await
        .map_err(|e| RestoreError::from(e).context(&format!("COPY into {shown}")))?;
    if o.rows.is_some_and(|r| r != rows) {
        return Err(corrupt(&format!(
            "{rows} rows loaded, {:?} recorded",
            o.rows
        )));
    }
    meter.objects.fetch_add(1, Ordering::Relaxed);
    meter.emit();
    Ok(rows)
}

/// Decodes ahead on a task of its own, so decrypting and gunzipping the next segment overlaps
/// with the server ingesting this one. Stops when the receiver goes away or after an error.
fn prefetch(mut plain: PlainStream) -> mpsc::Receiver<Result<Bytes, FormatError>> {
    let (tx, rx) = mpsc::channel(PREFETCH_SEGMENTS);
    tokio::spawn(async move {
        while let Some(item) = plain.next().await {
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    });
    rx
}

impl Meter<'_> {
    fn add(&self, rows: u64, bytes: u64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.emit();
    }
}

/// A connection for COPY into a scratch database nobody sees until it is complete: commits need
/// not wait for the WAL flush.
pub async fn data_connection(server: &Server, db: &str) -> Result<PgConnection, RestoreError> {
    let mut conn = server.connect(db).await?;
    sqlx::raw_sql("SET synchronous_commit = off")
        .execute(&mut conn)
        .await?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_statements_quote_everything() {
        let t = TableRef {
            schema: "S".into(),
            name: "t\"x".into(),
        };
        let cols = vec!["a".to_string(), "B c".to_string()];
        assert_eq!(
            copy_in_statement(&t, Some(&cols)),
            r#"COPY "S"."t""x" ("a", "B c") FROM STDIN"#
        );
        assert_eq!(copy_in_statement(&t, None), r#"COPY "S"."t""x" FROM STDIN"#);
        assert_eq!(
            copy_in_statement(&t, Some(&[])),
            r#"COPY "S"."t""x" FROM STDIN"#
        );
    }
}
