//! Listing backups at catalog sizes where it matters (docs/BENCHMARKS.md, "API"):
//! - pages are read through an index in the listing's order (created_at, id): with 2,000
//!   backups, a first page, a deep page (keyset cursor) and a page of one type are each read
//!   without a sequential scan of `backup` (without the index every page sorted the catalog);
//! - statistics come from the counts the triggers keep, and stay equal to counting the rows
//!   through inserts, state changes, deletes and a truncate.

use cellar_core::backup::catalog::{self, BackupRequest};
use cellar_core::backup::listing::{self, Filter, Statistics};
use cellar_core::backup::{BackupState, BackupType};
use cellar_tests::{TestDb, apibench};
use sqlx::PgPool;

/// Scans of the `backup` table so far: (sequential, index), as seen after `conn`'s own
/// statistics are flushed (they are otherwise reported up to seconds later).
async fn scans(conn: &PgPool) -> (i64, i64) {
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(conn)
        .await
        .unwrap();
    sqlx::query_as(
        "SELECT seq_scan, coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = 'backup'",
    )
    .fetch_one(conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn backup_pages_are_read_through_the_listing_index() {
    let (db, pool) = TestDb::catalog().await;
    apibench::seed(&pool, 2000).await.unwrap();
    // One connection: the same backend lists and then reports (and flushes) its statistics.
    let conn = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(db.url.expose())
        .await
        .unwrap();
    // Where a deep page starts: after the 1,500th backup (read here, before counting).
    let deep_cursor = {
        let all = listing::page(&conn, Filter::default(), 1500, None)
            .await
            .unwrap();
        let last = all.last().unwrap();
        (last.created_at, last.id.clone())
    };
    let before = scans(&conn).await;

    let first = listing::page(&conn, Filter::default(), 21, None)
        .await
        .unwrap();
    let deep = listing::page(&conn, Filter::default(), 21, Some(&deep_cursor))
        .await
        .unwrap();
    let daily = Filter {
        backup_type: Some(BackupType::Daily),
        state: None,
    };
    let of_type = listing::page(&conn, daily, 21, Some(&deep_cursor))
        .await
        .unwrap();
    let after = scans(&conn).await;

    assert_eq!(first.len(), 21);
    assert_eq!(deep.len(), 21);
    assert!(
        deep[0].created_at < deep_cursor.0,
        "the page starts after the cursor"
    );
    assert!(of_type.iter().all(|b| b.backup_type == BackupType::Daily));
    assert!(of_type.iter().all(|b| b.state != BackupState::Deleted));
    assert_eq!(
        after.0 - before.0,
        0,
        "sequential scans of backup while listing (index scans: {})",
        after.1 - before.1
    );
    assert!(after.1 - before.1 >= 3, "{before:?} -> {after:?}");
}

/// The statistics of `f` counted from the rows themselves.
async fn counted(pool: &PgPool, f: Filter) -> Statistics {
    let rows: Vec<(BackupType, BackupState, i64)> = sqlx::query_as(
        "SELECT backup_type, state, count(*) FROM backup
         WHERE ($1::backup_type IS NULL OR backup_type = $1)
           AND (state = $2 OR ($2::backup_state IS NULL AND state <> 'deleted'))
         GROUP BY 1, 2",
    )
    .bind(f.backup_type)
    .bind(f.state)
    .fetch_all(pool)
    .await
    .unwrap();
    let mut s = Statistics::default();
    for (t, st, n) in rows {
        s.total_backups += n;
        *s.by_type.entry(t.as_str().into()).or_default() += n;
        *s.by_status
            .entry(listing::state_name(st).into())
            .or_default() += n;
    }
    s
}

async fn assert_statistics_match(pool: &PgPool, when: &str) {
    let filters = [
        Filter::default(),
        Filter {
            backup_type: Some(BackupType::Daily),
            state: None,
        },
        Filter {
            backup_type: None,
            state: Some(BackupState::Deleted),
        },
        Filter {
            backup_type: Some(BackupType::Manual),
            state: Some(BackupState::Completed),
        },
    ];
    for f in filters {
        let kept = listing::statistics(pool, f).await.unwrap();
        assert_eq!(kept, counted(pool, f).await, "{when}, filter {f:?}");
    }
}

#[tokio::test]
async fn statistics_kept_by_triggers_equal_the_rows_counted() {
    let (_db, pool) = TestDb::catalog().await;
    assert_statistics_match(&pool, "empty").await;
    apibench::seed(&pool, 500).await.unwrap();
    assert_statistics_match(&pool, "seeded").await;
    let req = BackupRequest {
        backup_type: Some(BackupType::Manual),
        source: "app".into(),
        ..Default::default()
    };
    let (id, _) = catalog::create(&pool, &req).await.unwrap();
    assert_statistics_match(&pool, "created").await;
    catalog::mark_running(&pool, &id).await.unwrap();
    catalog::mark_running(&pool, &id).await.unwrap(); // no change of state
    assert_statistics_match(&pool, "running").await;
    sqlx::query(
        "UPDATE backup SET state = 'deleted' WHERE backup_type = 'weekly' AND state = 'failed'",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("DELETE FROM backup WHERE backup_type = 'safety'")
        .execute(&pool)
        .await
        .unwrap();
    assert_statistics_match(&pool, "after a bulk update and a delete").await;
    sqlx::query("TRUNCATE backup CASCADE")
        .execute(&pool)
        .await
        .unwrap();
    assert_statistics_match(&pool, "truncated").await;
    assert_eq!(
        listing::statistics(&pool, Filter::default()).await.unwrap(),
        Statistics::default()
    );
}
