//! The snapshot holds: data connections see the instant of the export, whatever happens after;
//! ctid-split copies see exactly the rows of a whole-table copy; cancellation stops cleanly.

use std::sync::atomic::{AtomicU64, Ordering};

use cellar_core::dump::{CopyProgress, DataConn, DumpError, Snapshot, plan_copy};
use tokio::sync::mpsc;

use crate::common::{TestDb, copy_all, copy_one, lines_by_table};

#[tokio::test]
async fn data_connections_see_the_snapshot_not_later_writes() {
    let db = TestDb::create();
    db.exec("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'old' FROM generate_series(1, 1000) g").await;
    let mut snap = Snapshot::open(&db.url).await.unwrap();
    let tables = snap.list_tables(None).await.unwrap();
    // Another session writes after the export (plain writes are not blocked by our locks).
    db.exec("INSERT INTO t SELECT g, 'new' FROM generate_series(1001, 2000) g; UPDATE t SET v = 'changed' WHERE id <= 10; DELETE FROM t WHERE id = 500").await;
    let out = copy_all(&db.url, snap.id(), plan_copy(&tables, u64::MAX, 2), 2).await;
    let lines = &lines_by_table(&out)["public.t"];
    assert_eq!(
        lines.len(),
        1000,
        "rows inserted after the snapshot must not be seen"
    );
    assert!(
        lines.iter().all(|l| l.ends_with("\told")),
        "updates after the snapshot must not be seen"
    );
    assert!(
        lines.contains(&"500\told".to_string()),
        "deletes after the snapshot must not be seen"
    );
    assert_eq!(
        db.count(&tables[0].name).await,
        1999,
        "the writes did happen"
    );
    snap.close().await.unwrap();
}

#[tokio::test]
async fn ctid_ranges_yield_exactly_the_rows_of_a_plain_copy() {
    let db = TestDb::create();
    db.exec(
        "CREATE TABLE big (id int, pad text, note text);
         INSERT INTO big SELECT g, repeat(md5(g::text), 3), CASE WHEN g % 11 = 0 THEN E'tab\\there\\nnewline' END
         FROM generate_series(1, 40000) g;
         DELETE FROM big WHERE id % 7 = 0;  -- holes in the pages
         UPDATE big SET pad = 'moved' WHERE id % 13 = 0;  -- new tuple versions at the end",
    )
    .await;
    let mut snap = Snapshot::open(&db.url).await.unwrap();
    let tables = snap.list_tables(None).await.unwrap();
    assert!(
        tables[0].size_bytes > 4 << 20,
        "a table of a few MB: {}",
        tables[0].size_bytes
    );
    let split = plan_copy(&tables, 256 * 1024, 2);
    assert!(
        split.len() >= 10,
        "expected many ranges, got {}",
        split.len()
    );
    assert!(
        split.iter().all(|t| t.range.is_some())
            && split.iter().any(|t| t.range.unwrap().end.is_none())
    );
    let whole = plan_copy(&tables, u64::MAX, 2);
    assert_eq!(whole.len(), 1);
    let (split_out, whole_out) = (
        copy_all(&db.url, snap.id(), split, 2).await,
        copy_all(&db.url, snap.id(), whole, 1).await,
    );
    let (a, b) = (lines_by_table(&split_out), lines_by_table(&whole_out));
    assert_eq!(a["public.big"].len(), 40000 - 40000 / 7);
    assert!(
        a["public.big"] == b["public.big"],
        "split and whole copies differ"
    );
    let rows: u64 = split_out.iter().map(|o| o.stats.rows).sum();
    assert_eq!(
        rows,
        db.count(&tables[0].name).await,
        "row counting by newline"
    );
    let buffers: Vec<usize> = whole_out[0].buffers.clone();
    assert!(
        buffers.len() > 1 && buffers[..buffers.len() - 1].iter().all(|&n| n >= 1 << 20),
        "~1 MiB buffers: {buffers:?}"
    );
}

#[tokio::test]
async fn a_dropped_receiver_cancels_the_copy() {
    let db = TestDb::create();
    db.exec("CREATE TABLE t AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 50000) g").await;
    let mut snap = Snapshot::open(&db.url).await.unwrap();
    let tasks = plan_copy(&snap.list_tables(None).await.unwrap(), u64::MAX, 2);
    let mut conn = DataConn::connect(&db.url, snap.id()).await.unwrap();
    let (tx, mut rx) = mpsc::channel(1);
    let consumer = tokio::spawn(async move {
        rx.recv().await.expect("one buffer"); // then walk away
    });
    let err = conn.copy(&tasks[0], tx, &()).await.unwrap_err();
    consumer.await.unwrap();
    assert!(matches!(err, DumpError::Cancelled), "{err}");
    let again = copy_one(&mut conn, &tasks[0])
        .await
        .err()
        .expect("connection is spent");
    assert!(matches!(again, DumpError::ConnectionBroken), "{again}");
    // A fresh connection in the same snapshot still works.
    let mut fresh = DataConn::connect(&db.url, snap.id()).await.unwrap();
    assert_eq!(
        copy_one(&mut fresh, &tasks[0]).await.unwrap().stats.rows,
        50000
    );
}

#[tokio::test]
async fn bad_snapshot_ids_are_refused_before_sql() {
    let db = TestDb::create();
    let err = DataConn::connect(&db.url, "x'; SELECT 1; --")
        .await
        .err()
        .unwrap();
    assert!(matches!(err, DumpError::InvalidSnapshotId(_)), "{err}");
    let err = DataConn::connect(&db.url, "00000003-0000001B-1")
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("importing the backup's snapshot"),
        "{err}"
    );
}

/// Sums what [`CopyProgress`] reports.
#[derive(Default)]
struct Totals {
    calls: AtomicU64,
    rows: AtomicU64,
    bytes: AtomicU64,
}

impl CopyProgress for Totals {
    fn advance(&self, _task: usize, rows: u64, bytes: u64) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

#[tokio::test]
async fn progress_is_reported_per_buffer_and_adds_up() {
    let db = TestDb::create();
    db.exec("CREATE TABLE t AS SELECT g AS id, repeat('y', 100) AS pad FROM generate_series(1, 30000) g").await;
    let mut snap = Snapshot::open(&db.url).await.unwrap();
    let tasks = plan_copy(&snap.list_tables(None).await.unwrap(), u64::MAX, 2);
    let mut conn = DataConn::connect(&db.url, snap.id()).await.unwrap();
    let (tx, mut rx) = mpsc::channel(4);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let totals = Totals::default();
    let stats = conn.copy(&tasks[0], tx, &totals).await.unwrap();
    drain.await.unwrap();
    assert_eq!(stats.rows, 30000);
    assert_eq!(
        (totals.rows.into_inner(), totals.bytes.into_inner()),
        (stats.rows, stats.bytes)
    );
    assert!(
        totals.calls.into_inner() >= 3,
        "about one call per MiB of ~3.3 MB"
    );
}
