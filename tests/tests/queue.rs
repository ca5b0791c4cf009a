//! The job queue and the worker runtime against the real Postgres, a fresh database per test.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cellar_core::queue::{self, JobState, NewJob, QueueError, lease, maintenance};
use cellar_tests::{TestDb, wait_for};
use cellar_worker::{JobContext, JobError, JobOutput, RunOnce, Worker, WorkerConfig};
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

fn fast_cfg() -> WorkerConfig {
    WorkerConfig {
        concurrency: 8,
        lease_secs: 1.0,
        poll_interval_ms: 50,
        shutdown_grace_secs: 0.2,
        retry_base_secs: 0.05,
        retry_max_secs: 0.2,
        ..Default::default()
    }
}

async fn enqueue(pool: &PgPool, job: NewJob) -> queue::Enqueued {
    let mut conn = pool.acquire().await.unwrap();
    queue::enqueue(&mut conn, &job).await.unwrap()
}

async fn state(pool: &PgPool, id: i64) -> JobState {
    queue::get(pool, id).await.unwrap().state
}

async fn ok(_: JobContext) -> Result<JobOutput, JobError> {
    Ok(None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_workers_run_each_of_10000_jobs_exactly_once() {
    let (_db, pool) = TestDb::catalog().await;
    let mut conn = pool.acquire().await.unwrap();
    let args = (0..10_000).map(|i| json!({ "i": i })).collect();
    let ids = queue::enqueue::enqueue_many(&mut conn, "count", args)
        .await
        .unwrap();
    drop(conn);
    let seen: Arc<Mutex<HashMap<i64, usize>>> = Arc::default();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut w = Worker::new(
            pool.clone(),
            WorkerConfig {
                concurrency: 16,
                ..fast_cfg()
            },
        );
        let seen = Arc::clone(&seen);
        w.register("count", move |ctx: JobContext| {
            *seen.lock().unwrap().entry(ctx.job.lease.id).or_default() += 1;
            async { Ok(None) }
        });
        let w = Arc::new(w);
        tasks.push(tokio::spawn(async move {
            while w.run_once().await.unwrap() != RunOnce::Empty {}
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(seen.len(), 10_000, "every job ran");
    assert!(seen.values().all(|&n| n == 1), "no job ran twice");
    assert!(ids.iter().all(|id| seen.contains_key(id)));
    let done: i64 =
        sqlx::query_scalar("SELECT count(*) FROM job WHERE state = 'completed' AND attempt = 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(done, 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_worker_has_its_job_rescued_within_two_leases() {
    let (db, pool) = TestDb::catalog().await;
    let job = enqueue(&pool, NewJob::new("test.hang", json!({}))).await;
    let lease_secs = 1.0;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_queue_child"))
        .env("DATABASE_URL", db.url.expose())
        .env("CELLAR_LEASE_SECS", lease_secs.to_string())
        .env("CELLAR_POLL_INTERVAL_MS", "50")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for(
        Duration::from_secs(20),
        "the child to claim the job",
        || async { state(&pool, job.id).await == JobState::Running },
    )
    .await;
    let holder = queue::get(&pool, job.id).await.unwrap().locked_by.unwrap();
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();

    let mut w = Worker::new(
        pool.clone(),
        WorkerConfig {
            lease_secs,
            ..fast_cfg()
        },
    );
    w.register("test.hang", ok);
    assert_ne!(w.id(), holder, "a new process has a new identity");
    let stop = CancellationToken::new();
    let run = tokio::spawn(Arc::new(w).run(stop.clone()));
    let took = wait_for(
        Duration::from_secs(10),
        "the job to be rescued and completed",
        || async { state(&pool, job.id).await == JobState::Completed },
    )
    .await;
    stop.cancel();
    run.await.unwrap();
    assert!(
        took.as_secs_f64() < 2.0 * lease_secs,
        "rescued after {took:?}, more than two leases"
    );
    let row = queue::get(&pool, job.id).await.unwrap();
    assert_eq!(row.attempt, 2);
    assert!(
        row.errors[0]["error"]
            .as_str()
            .unwrap()
            .contains("lease expired")
    );
}

#[tokio::test]
async fn a_zombie_cannot_complete_heartbeat_or_report_after_rescue() {
    let (_db, pool) = TestDb::catalog().await;
    let job = enqueue(&pool, NewJob::new("k", json!({}))).await;
    let zombie = uuid::Uuid::new_v4();
    let kinds = vec!["k".to_string()];
    let old = lease::claim(&pool, zombie, &kinds, 1)
        .await
        .unwrap()
        .remove(0)
        .lease;
    // The zombie stops heartbeating; its lease expires and the job is rescued.
    sqlx::query("UPDATE job SET heartbeat_at = now() - interval '1 hour' WHERE id = $1")
        .bind(job.id)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        maintenance::rescue_expired(&pool, Duration::from_secs(30))
            .await
            .unwrap(),
        vec![job.id]
    );
    // A restarted process (fresh identity) claims it: attempt 2.
    let successor = uuid::Uuid::new_v4();
    let new = lease::claim(&pool, successor, &kinds, 1)
        .await
        .unwrap()
        .remove(0)
        .lease;
    assert_eq!(new.attempt, 2);
    let lost = |r: Result<(), QueueError>| matches!(r, Err(QueueError::LeaseLost { .. }));
    assert!(
        lost(lease::complete(&pool, &old, None).await),
        "zombie completion refused"
    );
    assert!(lost(lease::set_progress(&pool, &old, &json!({})).await));
    assert!(matches!(
        lease::fail(&pool, &old, "x", None).await,
        Err(QueueError::LeaseLost { .. })
    ));
    assert!(
        lease::heartbeat(&pool, zombie, &[(old.id, old.attempt)])
            .await
            .unwrap()
            .is_empty()
    );
    // Same process identity, old attempt: also refused (fenced on the attempt too).
    let stale = lease::Lease {
        worker: successor,
        ..old
    };
    assert!(lost(lease::complete(&pool, &stale, None).await));
    assert_eq!(
        state(&pool, job.id).await,
        JobState::Running,
        "the successor still holds it"
    );
    lease::complete(&pool, &new, Some(json!("done")))
        .await
        .unwrap();
    assert_eq!(state(&pool, job.id).await, JobState::Completed);
}

#[tokio::test]
async fn a_restarted_process_never_inherits_a_dead_ones_locks() {
    let (db, pool) = TestDb::catalog().await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_queue_child"))
            .env("DATABASE_URL", db.url.expose())
            .kill_on_drop(true)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines =
            tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(out.stdout.unwrap()));
        ids.push(lines.next_line().await.unwrap().unwrap());
    }
    assert_ne!(ids[0], ids[1], "each start has a fresh identity");
    // And the identity is all a lease is: a job held by a dead identity is not writable by another.
    let job = enqueue(&pool, NewJob::new("k", json!({}))).await;
    let dead = lease::claim(&pool, uuid::Uuid::new_v4(), &["k".into()], 1)
        .await
        .unwrap()
        .remove(0)
        .lease;
    let restarted = lease::Lease {
        worker: uuid::Uuid::new_v4(),
        ..dead
    };
    assert!(lease::complete(&pool, &restarted, None).await.is_err());
    assert_eq!(state(&pool, job.id).await, JobState::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_reaches_a_running_job_and_a_waiting_one() {
    let (_db, pool) = TestDb::catalog().await;
    let started = Arc::new(AtomicUsize::new(0));
    // Long poll and lease: the cancel must arrive by NOTIFY, not by a heartbeat or a poll.
    let mut w = Worker::new(
        pool.clone(),
        WorkerConfig {
            lease_secs: 60.0,
            poll_interval_ms: 60_000,
            ..fast_cfg()
        },
    );
    let s = Arc::clone(&started);
    w.register("wait", move |ctx: JobContext| {
        s.fetch_add(1, Ordering::SeqCst);
        async move {
            ctx.cancel.cancelled().await;
            Err(JobError::Cancelled)
        }
    });
    let stop = CancellationToken::new();
    let run = tokio::spawn(Arc::new(w).run(stop.clone()));
    let job = enqueue(&pool, NewJob::new("wait", json!({}))).await;
    wait_for(Duration::from_secs(10), "the job to start", || async {
        started.load(Ordering::SeqCst) == 1
    })
    .await;
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(
        queue::cancel(&mut conn, job.id).await.unwrap(),
        JobState::Running
    );
    let took = wait_for(
        Duration::from_secs(10),
        "the running job to be cancelled",
        || async { state(&pool, job.id).await == JobState::Cancelled },
    )
    .await;
    eprintln!("cancel reached the running job in {took:?}");
    // A job that has not started is cancelled at once; cancelling a finished job is refused.
    let later = enqueue(&pool, NewJob::new("other", json!({}))).await;
    assert_eq!(
        queue::cancel(&mut conn, later.id).await.unwrap(),
        JobState::Cancelled
    );
    assert!(matches!(
        queue::cancel(&mut conn, later.id).await,
        Err(QueueError::WrongState { .. })
    ));
    assert!(matches!(
        queue::cancel(&mut conn, 999_999).await,
        Err(QueueError::NotFound(_))
    ));
    stop.cancel();
    run.await.unwrap();
}

#[tokio::test]
async fn a_duplicate_enqueue_returns_the_same_job() {
    let (_db, pool) = TestDb::catalog().await;
    let a = enqueue(
        &pool,
        NewJob::new("k", json!({})).with_dedupe_key("daily@2026-11-26T02:00Z"),
    )
    .await;
    let b = enqueue(
        &pool,
        NewJob::new("k", json!({"other": 1})).with_dedupe_key("daily@2026-11-26T02:00Z"),
    )
    .await;
    assert_eq!(a.id, b.id);
    assert!(b.duplicate && !a.duplicate);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM job")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
    // Once the first has finished, the key is free again.
    let mut w = Worker::new(pool.clone(), fast_cfg());
    w.register("k", ok);
    Arc::new(w).run_once().await.unwrap();
    let c = enqueue(
        &pool,
        NewJob::new("k", json!({})).with_dedupe_key("daily@2026-11-26T02:00Z"),
    )
    .await;
    assert!(!c.duplicate && c.id != a.id);
}

#[tokio::test]
async fn a_job_enqueued_in_a_rolled_back_transaction_does_not_exist() {
    let (_db, pool) = TestDb::catalog().await;
    let mut tx = pool.begin().await.unwrap();
    let j = queue::enqueue(&mut tx, &NewJob::new("k", json!({})))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(matches!(
        queue::get(&pool, j.id).await,
        Err(QueueError::NotFound(_))
    ));
}

#[tokio::test]
async fn backoff_is_persisted_and_survives_a_restart() {
    let (_db, pool) = TestDb::catalog().await;
    let job = enqueue(&pool, NewJob::new("flaky", json!({})).with_max_attempts(3)).await;
    let cfg = WorkerConfig {
        retry_base_secs: 3600.0,
        retry_max_secs: 7200.0,
        ..fast_cfg()
    };
    let flaky =
        |_: JobContext| async { Err::<JobOutput, _>(JobError::Retry("source unreachable".into())) };
    let mut w = Worker::new(pool.clone(), cfg.clone());
    w.register("flaky", flaky);
    assert_eq!(Arc::new(w).run_once().await.unwrap(), RunOnce::Ran(1));
    let row = queue::get(&pool, job.id).await.unwrap();
    assert_eq!(row.state, JobState::Retryable);
    let wait = (row.scheduled_at - chrono::Utc::now()).num_seconds();
    assert!(
        (2800..=4400).contains(&wait),
        "backoff ~1h with jitter, got {wait}s"
    );
    assert_eq!(row.errors[0]["error"], "source unreachable");
    // A restarted worker (new process state, same database) honours the stored backoff.
    let mut w2 = Worker::new(pool.clone(), cfg.clone());
    w2.register("flaky", flaky);
    let w2 = Arc::new(w2);
    assert_eq!(w2.run_once().await.unwrap(), RunOnce::Empty);
    // Time passes (moved, not slept): it runs again, fails again, and after max attempts is discarded.
    for expected in [JobState::Retryable, JobState::Discarded] {
        sqlx::query("UPDATE job SET scheduled_at = now() WHERE id = $1")
            .bind(job.id)
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(w2.run_once().await.unwrap(), RunOnce::Ran(1));
        assert_eq!(state(&pool, job.id).await, expected);
    }
    let row = queue::get(&pool, job.id).await.unwrap();
    assert_eq!((row.attempt, row.errors.len()), (3, 3));
    assert!(row.finished_at.is_some());
}

#[tokio::test]
async fn permanent_errors_and_panics_are_recorded() {
    let (_db, pool) = TestDb::catalog().await;
    let bad = enqueue(&pool, NewJob::new("bad", json!({}))).await;
    let boom = enqueue(&pool, NewJob::new("boom", json!({}))).await;
    let mut w = Worker::new(pool.clone(), fast_cfg());
    w.register("bad", |_: JobContext| async {
        Err::<JobOutput, _>(JobError::Permanent("no such backup".into()))
    });
    w.register("boom", |_: JobContext| async { panic!("handler bug") });
    Arc::new(w).run_once().await.unwrap();
    assert_eq!(state(&pool, bad.id).await, JobState::Discarded);
    let row = queue::get(&pool, boom.id).await.unwrap();
    assert_eq!(row.state, JobState::Retryable);
    assert!(
        row.errors[0]["error"]
            .as_str()
            .unwrap()
            .contains("handler panicked: handler bug")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_running_jobs_without_charging_an_attempt() {
    let (_db, pool) = TestDb::catalog().await;
    let job = enqueue(&pool, NewJob::new("slow", json!({}))).await;
    let mut w = Worker::new(pool.clone(), fast_cfg());
    w.register("slow", |ctx: JobContext| async move {
        ctx.cancel.cancelled().await;
        Err::<JobOutput, _>(JobError::Cancelled)
    });
    let stop = CancellationToken::new();
    let run = tokio::spawn(Arc::new(w).run(stop.clone()));
    wait_for(Duration::from_secs(10), "the job to start", || async {
        state(&pool, job.id).await == JobState::Running
    })
    .await;
    stop.cancel();
    run.await.unwrap();
    let row = queue::get(&pool, job.id).await.unwrap();
    assert_eq!(
        (row.state, row.attempt, row.errors.len()),
        (JobState::Available, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_is_woken_by_notify_not_by_polling() {
    let (_db, pool) = TestDb::catalog().await;
    let mut w = Worker::new(
        pool.clone(),
        WorkerConfig {
            poll_interval_ms: 600_000,
            ..fast_cfg()
        },
    );
    w.register("k", ok);
    let stop = CancellationToken::new();
    let run = tokio::spawn(Arc::new(w).run(stop.clone()));
    // Let the worker's first (empty) claim and its LISTEN happen.
    wait_for(Duration::from_secs(10), "the worker to listen", || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        n > 0
    })
    .await;
    for _ in 0..5 {
        let job = enqueue(&pool, NewJob::new("k", json!({}))).await;
        wait_for(
            Duration::from_secs(5),
            "NOTIFY to wake the worker",
            || async { state(&pool, job.id).await == JobState::Completed },
        )
        .await;
    }
    stop.cancel();
    run.await.unwrap();
}

#[tokio::test]
async fn check_constraints_guard_the_states() {
    let (_db, pool) = TestDb::catalog().await;
    let job = enqueue(&pool, NewJob::new("k", json!({}))).await;
    for bad in [
        "UPDATE job SET state = 'running' WHERE id = $1",
        "UPDATE job SET state = 'completed' WHERE id = $1",
        "UPDATE job SET finished_at = now() WHERE id = $1",
        "UPDATE job SET locked_by = gen_random_uuid() WHERE id = $1",
    ] {
        let err = sqlx::query(bad)
            .bind(job.id)
            .execute(&pool)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("check constraint"), "{bad}: {err}");
    }
    let invalid = NewJob::new("", json!({}));
    let mut conn = pool.acquire().await.unwrap();
    assert!(matches!(
        queue::enqueue(&mut conn, &invalid).await,
        Err(QueueError::Invalid(_))
    ));
}
