//! Retention against real backups: the preview names exactly what the policy deletes (never
//! the newest verified, a pinned, or a restore's backup); applying it through the worker
//! enqueues the deletes, they run, the objects are gone and the audit trail lists each; every
//! completed backup enqueues a pass by itself.

mod restore_support;

use std::collections::BTreeSet;

use cellar_core::backup::catalog::{self, BackupRequest};
use cellar_core::backup::{BackupId, BackupState, BackupType};
use cellar_core::retention::{self, Policy, store};
use cellar_tests::TestDb;
use chrono::{Duration, Utc};
use restore_support::{Fixture, psql};

async fn daily_backup(fx: &Fixture) -> BackupId {
    let req = BackupRequest {
        backup_type: Some(BackupType::Daily),
        source: "src".into(),
        ..Default::default()
    };
    let (id, _) = catalog::create(&fx.pool, &req).await.unwrap();
    fx.run_jobs().await;
    assert_eq!(fx.backup_state(id.as_str()).await, BackupState::Completed);
    id
}

async fn exec(fx: &Fixture, sql: &str, id: &BackupId) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .bind(id.as_str())
        .execute(&fx.pool)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_exactly_what_the_policy_says_and_audits_each() {
    let source = TestDb::empty().await;
    psql(
        &source,
        "CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 100)",
    );
    let fx = Fixture::new(source).await;

    // Eight daily backups; their ages in days (creation times rewritten).
    let ages = [1, 40, 3, 4, 5, 6, 7, 8];
    let mut ids = Vec::new();
    for age in ages {
        let id = daily_backup(&fx).await;
        let sql =
            format!("UPDATE backup SET created_at = now() - interval '{age} days' WHERE id = $1");
        exec(&fx, &sql, &id).await;
        ids.push(id);
    }
    // b4 is the only verified one (protected as the newest verified); b5 pinned; b3 is what
    // a pending restore reads.
    exec(
        &fx,
        r#"UPDATE backup SET verification = '{"status": "valid"}' WHERE id = $1"#,
        &ids[4],
    )
    .await;
    store::set_pinned(&fx.pool, &ids[5], true).await.unwrap();
    exec(
        &fx,
        "INSERT INTO restore (backup_id, source, target_database) VALUES ($1, 'src', 'elsewhere')",
        &ids[3],
    )
    .await;
    let policy = Policy {
        backup_type: BackupType::Daily,
        max_count: Some(2),
        max_age_days: Some(30),
        keep_daily: 0,
        keep_weekly: 0,
        keep_monthly: 0,
    };
    store::set_policy(&fx.pool, &policy).await.unwrap();

    // Newest first: b0 (1 d), b2 (3 d) within the count; b3 in use, b4 verified, b5 pinned;
    // b6, b7 beyond the newest 2; b1 older than 30 days.
    let preview = retention::preview(&fx.pool, Some(BackupType::Daily), Utc::now())
        .await
        .unwrap();
    let doomed: BTreeSet<&str> = preview
        .iter()
        .filter(|d| !d.keep)
        .map(|d| d.id.as_str())
        .collect();
    let expected: BTreeSet<&str> = [1, 6, 7].iter().map(|&i| ids[i].as_str()).collect();
    assert_eq!(doomed, expected, "{preview:#?}");
    let reason = |i: usize| {
        preview
            .iter()
            .find(|d| d.id == ids[i].as_str())
            .unwrap()
            .reason
            .clone()
    };
    assert!(reason(1).contains("older than 30 days"), "{}", reason(1));
    assert!(reason(6).contains("beyond the newest 2"), "{}", reason(6));
    assert!(reason(3).contains("restore"), "{}", reason(3));
    assert!(reason(4).contains("newest verified"), "{}", reason(4));
    assert_eq!(reason(5), "pinned");

    // Apply through the worker: the retention job enqueues the deletes, they run.
    retention::request(&fx.pool).await.unwrap();
    fx.run_jobs().await;
    for (i, id) in ids.iter().enumerate() {
        let state = fx.backup_state(id.as_str()).await;
        let objects = fx.env.storage.list(&format!("{id}/")).await.unwrap();
        if expected.contains(id.as_str()) {
            assert_eq!(state, BackupState::Deleted, "b{i}");
            assert!(objects.is_empty(), "b{i} objects left: {objects:?}");
        } else {
            assert_eq!(state, BackupState::Completed, "b{i}");
            assert!(!objects.is_empty(), "b{i} lost its objects");
        }
    }
    let audit = cellar_core::audit::list(&fx.pool, 100, None).await.unwrap();
    let audited: BTreeSet<&str> = audit
        .iter()
        .filter(|e| e.action == "retentionDelete")
        .inspect(|e| {
            assert_eq!(e.token_name.as_deref(), Some("retention"));
            assert!(e.job_id.is_some() && !e.arguments["reason"].as_str().unwrap().is_empty());
        })
        .filter_map(|e| e.target.as_deref())
        .collect();
    assert_eq!(audited, expected);

    // Nothing more to do; a pinned backup cannot be deleted by hand either.
    let again = retention::apply(&fx.pool, Utc::now()).await.unwrap();
    assert!(again.deleting.is_empty(), "{again:?}");
    let e = cellar_core::backup::requests::delete(&fx.pool, &ids[5])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("pinned"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_retention_is_enqueued_once_per_period_by_any_number_of_ticks() {
    let (_db, pool) = TestDb::catalog().await;
    let now = Utc::now();
    let hour = std::time::Duration::from_secs(3600);
    let first = retention::enqueue_periodic(&pool, now, hour).await.unwrap();
    assert!(first.is_some());
    let tasks: Vec<_> = (0..3)
        .map(|k| {
            let pool = pool.clone();
            tokio::spawn(async move {
                retention::enqueue_periodic(&pool, now + Duration::minutes(10 + k), hour)
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), None, "within the period");
    }
    let later = retention::enqueue_periodic(&pool, now + Duration::minutes(61), hour)
        .await
        .unwrap();
    assert_eq!(
        later, first,
        "the first pass still waits: the same job (dedupe key)"
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM job WHERE kind = 'retention'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

/// Each `retention` job, oldest first: its state, and whether it was created after the newest
/// backup before it had completed.
async fn retention_passes(fx: &Fixture) -> Vec<(String, bool)> {
    sqlx::query_as(
        "SELECT j.state::text, j.created_at >= (SELECT max(completed_at) FROM backup
                                                WHERE created_at < j.created_at)
         FROM job j WHERE j.kind = 'retention' ORDER BY j.id",
    )
    .fetch_all(&fx.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_completed_backup_enqueues_a_retention_pass() {
    let source = TestDb::empty().await;
    psql(&source, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)");
    let fx = Fixture::new(source).await;
    let policy = Policy {
        backup_type: BackupType::Daily,
        max_count: Some(1),
        max_age_days: None,
        keep_daily: 0,
        keep_weekly: 0,
        keep_monthly: 0,
    };
    store::set_policy(&fx.pool, &policy).await.unwrap();
    // Nobody asks for retention here: the backup job itself enqueues the pass.
    let first = daily_backup(&fx).await;
    assert_eq!(retention_passes(&fx).await, [("completed".into(), true)]);
    assert_eq!(
        fx.backup_state(first.as_str()).await,
        BackupState::Completed
    );

    // The second backup's pass applies the policy (keep 1): the first goes.
    let second = daily_backup(&fx).await;
    assert_eq!(
        retention_passes(&fx).await,
        [("completed".into(), true), ("completed".into(), true)]
    );
    assert_eq!(fx.backup_state(first.as_str()).await, BackupState::Deleted);
    assert_eq!(
        fx.backup_state(second.as_str()).await,
        BackupState::Completed
    );
}
