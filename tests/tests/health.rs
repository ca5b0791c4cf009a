//! Health judged from a real catalog with a controllable clock: critical when backups stop,
//! warnings for a failure streak, a low verification rate, waiting jobs without a live worker
//! and a stalled queue, healthy after a fresh verified backup; error when the catalog cannot be
//! read; the worker registry follows a real worker's life.

use std::sync::Arc;
use std::time::Duration;

use cellar_core::backup::catalog::{self, BackupRequest, Completed};
use cellar_core::backup::{BackupId, BackupType};
use cellar_core::health::{self, HealthReport, Inputs, Status, workers};
use cellar_core::queue::{self, NewJob};
use cellar_core::schedule::{self, RawSchedule, ScheduleInput};
use cellar_tests::{TestDb, wait_for};
use cellar_worker::{Worker, WorkerConfig};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const SOURCE: &str = "src";

fn inputs() -> Inputs {
    Inputs {
        configured_sources: vec![SOURCE.into()],
        ..Inputs::default()
    }
}

async fn judge(pool: &PgPool, now: DateTime<Utc>) -> HealthReport {
    health::check(pool, now, &inputs()).await
}

fn codes(r: &HealthReport) -> Vec<&'static str> {
    r.reasons.iter().map(|r| r.code).collect()
}

/// A backup of `src` as a worker would leave it (its job cancelled, so nothing waits):
/// completed (and verified when `verified` is given) or failed.
async fn backup(pool: &PgPool, ok: bool, verified: Option<bool>) -> BackupId {
    let req = BackupRequest {
        backup_type: Some(BackupType::Daily),
        source: SOURCE.into(),
        ..Default::default()
    };
    let (id, job) = catalog::create(pool, &req).await.unwrap();
    let mut c = pool.acquire().await.unwrap();
    queue::cancel(&mut c, job.id).await.unwrap();
    catalog::mark_running(pool, &id).await.unwrap();
    if !ok {
        catalog::mark_failed(pool, &id, "source unreachable")
            .await
            .unwrap();
        return id;
    }
    let done = Completed {
        key_id: "k1".into(),
        database: "src".into(),
        server_version: "15".into(),
        plain_bytes: 1000,
        stored_bytes: 400,
        object_count: 4,
        total_rows: 10,
        manifest_blake3: "0".repeat(64),
        tables: json!([]),
        warnings: vec![],
    };
    catalog::mark_completed(pool, &id, &done).await.unwrap();
    if let Some(valid) = verified {
        let status = if valid { "valid" } else { "invalid" };
        catalog::set_verification(pool, &id, &json!({ "status": status }))
            .await
            .unwrap();
    }
    id
}

/// Moves every backup `hours` into the past (as if the catalog had aged).
async fn age(pool: &PgPool, hours: i32) {
    sqlx::query(
        "UPDATE backup SET created_at = created_at - make_interval(hours => $1),
                started_at = started_at - make_interval(hours => $1),
                completed_at = completed_at - make_interval(hours => $1),
                verified_at = verified_at - make_interval(hours => $1)",
    )
    .bind(hours)
    .execute(pool)
    .await
    .unwrap();
}

fn later(minutes: i64) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::minutes(minutes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_when_backups_stop_and_healthy_after_a_fresh_verified_backup() {
    let (_db, pool) = TestDb::catalog().await;
    let r = judge(&pool, Utc::now()).await;
    assert_eq!(r.status, Status::Critical);
    assert_eq!(codes(&r), ["NO_SUCCESSFUL_BACKUP"]);

    backup(&pool, true, Some(true)).await;
    let r = judge(&pool, later(1)).await;
    assert_eq!(r.status, Status::Healthy, "{:?}", r.reasons);
    // The clock moves on: 47 h later the daily backup is late but not twice late...
    assert_eq!(judge(&pool, later(47 * 60)).await.status, Status::Healthy);
    // ...49 h later it is.
    let r = judge(&pool, later(49 * 60)).await;
    assert_eq!(r.status, Status::Critical);
    assert_eq!(codes(&r), ["BACKUPS_STOPPED"]);
    assert!(
        r.reasons[0].message.contains("source src"),
        "{:?}",
        r.reasons
    );

    // The same through the catalog's own clock: the backup is three days old, then a fresh
    // verified backup makes it healthy again.
    age(&pool, 72).await;
    assert_eq!(judge(&pool, Utc::now()).await.status, Status::Critical);
    let fresh = backup(&pool, true, Some(true)).await;
    let r = judge(&pool, later(1)).await;
    assert_eq!(r.status, Status::Healthy, "{:?}", r.reasons);
    let f = r.facts.unwrap();
    assert_eq!(f.sources.len(), 1);
    assert_eq!(
        f.sources[0].last_verified_id.as_deref(),
        Some(fresh.as_str())
    );
    assert_eq!(f.totals.total_backups, 2);
    assert_eq!(f.totals.backups_last_24h, 1);
    assert_eq!(f.totals.storage_local_bytes, 800);

    // The seed's schedules (daily the shortest) set the interval...
    assert_eq!(r.configuration.shortest_interval_source, "schedules");
    assert_eq!(r.configuration.shortest_interval_secs, 24 * 3600);
    assert_eq!(r.configuration.schedules.len(), 3);
    // ...and an hourly schedule makes the rule stricter: 3 h without a backup is critical.
    let raw = RawSchedule {
        name: "hourly".into(),
        cron: "0 * * * *".into(),
        backup_type: Some(BackupType::Manual),
        ..RawSchedule::default()
    };
    let hourly = ScheduleInput::parse(raw).unwrap();
    schedule::catalog::upsert(&pool, &hourly, Utc::now())
        .await
        .unwrap();
    let r = judge(&pool, later(3 * 60)).await;
    assert_eq!(r.configuration.shortest_interval_secs, 3600);
    assert_eq!(r.status, Status::Critical, "{:?}", r.reasons);
    assert!(
        r.reasons[0].message.contains("1.0 hours"),
        "{:?}",
        r.reasons
    );
    assert_eq!(judge(&pool, later(60)).await.status, Status::Healthy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_streak_warns_from_the_third_failure_and_a_success_ends_it() {
    let (_db, pool) = TestDb::catalog().await;
    backup(&pool, true, None).await;
    backup(&pool, false, None).await;
    backup(&pool, false, None).await;
    let r = judge(&pool, later(1)).await;
    assert_eq!(
        r.status,
        Status::Healthy,
        "two failures are not a streak: {:?}",
        r.reasons
    );
    backup(&pool, false, None).await;
    let r = judge(&pool, later(1)).await;
    assert_eq!(r.status, Status::Warning);
    assert_eq!(codes(&r), ["FAILURE_STREAK"]);
    assert!(
        r.reasons[0].message.contains("last 3 backups failed"),
        "{:?}",
        r.reasons
    );
    assert_eq!(r.facts.as_ref().unwrap().totals.failures_last_week, 3);
    backup(&pool, true, None).await;
    assert_eq!(judge(&pool, later(1)).await.status, Status::Healthy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_failure_is_still_a_failure_and_never_the_last_success() {
    let (_db, pool) = TestDb::catalog().await;
    for _ in 0..3 {
        backup(&pool, false, None).await;
    }
    // Retention (or deleteBackup) deletes the failed backups: the row keeps its error.
    sqlx::query("UPDATE backup SET state = 'deleted', locations = '{}'")
        .execute(&pool)
        .await
        .unwrap();
    let r = judge(&pool, later(1)).await;
    assert_eq!(r.status, Status::Critical, "{:?}", r.reasons);
    assert_eq!(codes(&r), ["NO_SUCCESSFUL_BACKUP", "FAILURE_STREAK"]);
    let totals = &r.facts.as_ref().unwrap().totals;
    assert_eq!(
        (totals.successes_last_week, totals.failures_last_week),
        (0, 3)
    );

    let ok = backup(&pool, true, None).await;
    sqlx::query("UPDATE backup SET state = 'deleted', locations = '{}' WHERE id = $1")
        .bind(ok.as_str())
        .execute(&pool)
        .await
        .unwrap();
    let r = judge(&pool, later(1)).await;
    assert_eq!(
        r.status,
        Status::Healthy,
        "a deleted success still counts: {:?}",
        r.reasons
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verification_rate_below_ninety_percent_warns() {
    let (_db, pool) = TestDb::catalog().await;
    for _ in 0..9 {
        backup(&pool, true, Some(true)).await;
    }
    backup(&pool, true, Some(false)).await;
    let r = judge(&pool, later(1)).await;
    assert_eq!(
        r.status,
        Status::Healthy,
        "exactly 90% passes: {:?}",
        r.reasons
    );
    backup(&pool, true, Some(false)).await;
    let r = judge(&pool, later(1)).await;
    assert_eq!(r.status, Status::Warning);
    assert_eq!(codes(&r), ["LOW_VERIFICATION_RATE"]);
    assert!(r.reasons[0].message.contains("9 of 11"), "{:?}", r.reasons);
    // A week later those verifications no longer count (and backups have stopped).
    let r = judge(&pool, later(8 * 24 * 60)).await;
    assert!(
        !codes(&r).contains(&"LOW_VERIFICATION_RATE"),
        "{:?}",
        r.reasons
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_jobs_without_a_live_worker_warn() {
    let (_db, pool) = TestDb::catalog().await;
    backup(&pool, true, None).await;
    let mut c = pool.acquire().await.unwrap();
    queue::enqueue(&mut c, &NewJob::new("ping", json!({})))
        .await
        .unwrap();
    let r = judge(&pool, later(1)).await;
    assert_eq!(codes(&r), ["NO_LIVE_WORKER"]);
    assert_eq!(r.status, Status::Warning);

    let w =
        workers::Announce::this_process(uuid::Uuid::new_v4(), vec!["ping".into()], 30.0, json!({}));
    workers::announce(&pool, &w).await.unwrap();
    let r = judge(&pool, Utc::now()).await;
    assert_eq!(r.status, Status::Healthy, "{:?}", r.reasons);
    assert_eq!(r.facts.as_ref().unwrap().live_workers().len(), 1);
    // Three lease periods (90 s) without a heartbeat: no longer live.
    let r = judge(&pool, Utc::now() + chrono::Duration::seconds(120)).await;
    assert_eq!(codes(&r), ["NO_LIVE_WORKER"]);
    // Live, but the job has waited 20 minutes: the queue is stalled.
    workers::beat(&pool, w.id).await.unwrap();
    let f = health::facts::gather(&pool, later(20), &[]).await.unwrap();
    assert!(f.oldest_waiting_secs().unwrap() > 19.0 * 60.0);
    // A graceful stop ends liveness at once.
    workers::stopped(&pool, w.id).await.unwrap();
    assert_eq!(codes(&judge(&pool, Utc::now()).await), ["NO_LIVE_WORKER"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waiting_over_fifteen_minutes_with_a_live_worker_is_a_stalled_queue() {
    let (_db, pool) = TestDb::catalog().await;
    backup(&pool, true, None).await;
    // An hour's lease: the worker stays live for three hours of the test's clock.
    let w = workers::Announce::this_process(
        uuid::Uuid::new_v4(),
        vec!["backup".into()],
        3600.0,
        json!({}),
    );
    workers::announce(&pool, &w).await.unwrap();
    let mut c = pool.acquire().await.unwrap();
    let job = queue::enqueue(&mut c, &NewJob::new("ping", json!({})))
        .await
        .unwrap();
    let r = judge(&pool, later(14)).await;
    assert_eq!(
        r.status,
        Status::Healthy,
        "14 minutes is not stalled: {:?}",
        r.reasons
    );
    let r = judge(&pool, later(16)).await;
    assert_eq!(r.status, Status::Warning);
    assert_eq!(codes(&r), ["QUEUE_STALLED"]);
    assert_eq!(r.facts.as_ref().unwrap().live_workers().len(), 1);
    assert!(
        r.reasons[0].message.contains("waited 16 minutes"),
        "{:?}",
        r.reasons
    );
    // The threshold is a rule: tightened, the same queue is stalled sooner.
    let mut tight = inputs();
    tight.rules.queue_stalled_after = chrono::Duration::minutes(5);
    let r = health::check(&pool, later(6), &tight).await;
    assert_eq!(codes(&r), ["QUEUE_STALLED"]);
    // Once the job leaves the queue (cancelled here), nothing waits: healthy again.
    queue::cancel(&mut c, job.id).await.unwrap();
    assert_eq!(judge(&pool, later(16)).await.status, Status::Healthy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_catalog_is_the_error_status() {
    let (db, pool) = TestDb::catalog().await;
    backup(&pool, true, None).await;
    cellar_tests::psql_admin(&format!("DROP DATABASE \"{}\" WITH (FORCE)", db.name));
    let r = judge(&pool, Utc::now()).await;
    assert_eq!(r.status, Status::Error);
    assert_eq!(codes(&r), ["CATALOG_UNREADABLE"]);
    assert!(r.facts.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_worker_registers_heartbeats_and_marks_itself_stopped() {
    let (_db, pool) = TestDb::catalog().await;
    let cfg = WorkerConfig {
        lease_secs: 0.4,
        ..WorkerConfig::default()
    };
    let mut w = Worker::new(pool.clone(), cfg);
    w.set_registry_config(json!({"sources": ["src"], "driveConfigured": false}));
    let w = Arc::new(w);
    let id = w.id();
    let stop = CancellationToken::new();
    let run = tokio::spawn(Arc::clone(&w).run(stop.clone()));
    let p = pool.clone();
    wait_for(Duration::from_secs(10), "the worker registers", || {
        let p = p.clone();
        async move { workers::list(&p).await.unwrap().iter().any(|r| r.id == id) }
    })
    .await;
    let first = workers::list(&pool).await.unwrap()[0].last_seen_at;
    let p = pool.clone();
    wait_for(
        Duration::from_secs(10),
        "a heartbeat refreshes last_seen_at",
        || {
            let p = p.clone();
            async move { workers::list(&p).await.unwrap()[0].last_seen_at > first }
        },
    )
    .await;
    let r = judge(&pool, Utc::now()).await;
    let f = r.facts.unwrap();
    assert_eq!(f.live_workers().len(), 1);
    assert_eq!(f.workers[0].pid, std::process::id() as i32);
    assert_eq!(r.configuration.sources, ["src"]);
    stop.cancel();
    run.await.unwrap();
    let row = workers::list(&pool).await.unwrap().remove(0);
    assert!(
        row.stopped_at.is_some(),
        "a graceful shutdown marks the worker stopped"
    );
    assert!(!row.is_live(Utc::now()));
}
