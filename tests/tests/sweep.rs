//! Backups and restores whose job ended without them (cancelled before it ran, or discarded by
//! the rescuer after the worker was lost on every attempt) are finished as failed by the
//! sweeper: objects removed, scratch database dropped, an interrupted files swap undone, each
//! audited; the database they were restoring is free again; retryJob still runs them.

mod restore_support;

use cellar_core::backup::BackupState;
use cellar_core::backup::catalog::{self as backups, BackupRequest};
use cellar_core::restore::target::{Server, TargetLock};
use cellar_core::restore::{RestoreRequest, RestoreState, catalog as restores, full};
use cellar_core::{queue, sweep};
use cellar_tests::TestDb;
use restore_support::*;

/// What the rescuer leaves when a job's worker was lost on its last attempt.
async fn discard(fx: &Fixture, job: i64) {
    sqlx::query(
        "UPDATE job SET state = 'discarded', attempt = max_attempts, attempted_at = now(),
                finished_at = now(), locked_by = NULL, heartbeat_at = NULL WHERE id = $1",
    )
    .bind(job)
    .execute(&fx.pool)
    .await
    .unwrap();
}

async fn audited(fx: &Fixture, action: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM audit_event WHERE token_name = 'sweeper' AND action = $1",
    )
    .bind(action)
    .fetch_one(&fx.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_backups_and_restores_are_finished_and_can_be_retried() {
    let db = TestDb::empty().await;
    psql(
        &db,
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);",
    );
    let mut fx = Fixture::new(db).await;
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("kept.txt"), b"original").unwrap();
    fx.env.files_dir = Some(files.path().to_path_buf());
    let done = fx.backup(None).await;

    // A backup cancelled before it ran, and one whose worker was lost mid-write three times.
    let req = BackupRequest {
        source: "src".into(),
        ..Default::default()
    };
    let (cancelled, job_c) = backups::create(&fx.pool, &req).await.unwrap();
    queue::cancel(&mut fx.pool.acquire().await.unwrap(), job_c.id)
        .await
        .unwrap();
    let (lost, job_l) = backups::create(&fx.pool, &req).await.unwrap();
    backups::mark_running(&fx.pool, &lost).await.unwrap();
    let partial = fx.dir.path().join(lost.as_str()).join("data");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("000003"), b"half an object").unwrap();
    discard(&fx, job_l.id).await;

    // A restore cancelled before it ran used to refuse every later restore of its database: a
    // new one is accepted at once (then cancelled too, a pending row for the sweeper).
    let mut rreq = RestoreRequest::new(done.clone());
    rreq.confirm = true;
    let (r_cancelled, job_rc) = restores::create(&fx.pool, &rreq).await.unwrap();
    queue::cancel(&mut fx.pool.acquire().await.unwrap(), job_rc.id)
        .await
        .unwrap();
    let (r_pending, job_rp) = restores::create(&fx.pool, &rreq)
        .await
        .expect("a cancelled restore holds nothing");
    queue::cancel(&mut fx.pool.acquire().await.unwrap(), job_rp.id)
        .await
        .unwrap();
    // The first had started (its worker died after the cancel was asked for).
    restores::mark_running(&fx.pool, r_cancelled).await.unwrap();
    // It had built half a scratch database and set the files aside when its worker died.
    let scratch = full::scratch_name(&fx.source.name, r_cancelled);
    cellar_tests::psql_admin(&format!("CREATE DATABASE \"{scratch}\""));
    let old = files.path().join(format!(".cellar-old-{r_cancelled}"));
    std::fs::create_dir(&old).unwrap();
    std::fs::rename(files.path().join("kept.txt"), old.join("kept.txt")).unwrap();
    std::fs::write(files.path().join("staged.txt"), b"from the backup").unwrap();
    sqlx::query("UPDATE restore SET files = true WHERE id = $1")
        .bind(r_cancelled.0)
        .execute(&fx.pool)
        .await
        .unwrap();

    // Jobs that just ended: `running` rows wait out the grace (their worker may only have
    // stalled), `pending` ones never ran; a restore whose database is still held waits too.
    let server = Server::new(&fx.source.url);
    let live = TargetLock::acquire(&fx.pool, &server.identity(&fx.source.name))
        .await
        .unwrap();
    let early = sweep::sweep(&fx.env).await.unwrap();
    assert_eq!(early.backups, vec![cancelled.to_string()], "{early:?}");
    assert!(early.restores.is_empty(), "{early:?}");
    assert_eq!(
        databases_like(&scratch),
        scratch,
        "a live restore's scratch is kept"
    );
    live.release().await;
    let in_grace = sweep::sweep(&fx.env).await.unwrap();
    assert_eq!(in_grace.restores, vec![r_pending.0], "{in_grace:?}");
    assert!(in_grace.backups.is_empty(), "{in_grace:?}");
    sqlx::query(
        "UPDATE job SET finished_at = finished_at - interval '1 hour'
          WHERE state IN ('cancelled', 'discarded')",
    )
    .execute(&fx.pool)
    .await
    .unwrap();

    let swept = sweep::sweep(&fx.env).await.unwrap();
    assert_eq!(swept.backups, vec![lost.to_string()]);
    assert_eq!(swept.restores, vec![r_cancelled.0]);

    let c = backups::get(&fx.pool, &cancelled).await.unwrap().unwrap();
    assert_eq!(c.state, BackupState::Failed);
    assert!(c.error.unwrap().starts_with("cancelled"));
    let l = backups::get(&fx.pool, &lost).await.unwrap().unwrap();
    assert_eq!(l.state, BackupState::Failed);
    assert!(
        l.error.as_ref().unwrap().contains("discarded after"),
        "{:?}",
        l.error
    );
    assert!(
        !partial.join("000003").exists(),
        "the partial object is removed"
    );
    let r = restores::get(&fx.pool, r_cancelled).await.unwrap().unwrap();
    assert_eq!(r.state, RestoreState::Failed);
    assert_eq!(
        databases_like(&scratch),
        "",
        "the scratch database is dropped"
    );
    let names: Vec<_> = std::fs::read_dir(files.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["kept.txt"], "the files swap is undone");
    assert_eq!(audited(&fx, "failAbandonedBackup").await, 2);
    assert_eq!(audited(&fx, "failAbandonedRestore").await, 2);
    assert_eq!(
        backups::get(&fx.pool, &done).await.unwrap().unwrap().state,
        BackupState::Completed
    );

    // Nothing left to do; the database is free again; a discarded backup retried completes.
    assert_eq!(
        sweep::sweep(&fx.env).await.unwrap(),
        sweep::Swept::default()
    );
    let (_, again) = restores::create(&fx.pool, &rreq)
        .await
        .expect("the database is no longer held by the cancelled restore");
    queue::cancel(&mut fx.pool.acquire().await.unwrap(), again.id)
        .await
        .unwrap();
    queue::retry(&mut fx.pool.acquire().await.unwrap(), job_l.id)
        .await
        .unwrap();
    fx.run_jobs().await;
    let l = backups::get(&fx.pool, &lost).await.unwrap().unwrap();
    assert_eq!(l.state, BackupState::Completed, "{:?}", l.error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch_databases_of_ended_restores_are_dropped_and_nothing_else() {
    let db = TestDb::empty().await;
    psql(
        &db,
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);",
    );
    let fx = Fixture::new(db).await;
    let done = fx.backup(None).await;
    let mut req = RestoreRequest::new(done.clone());
    req.confirm = true;
    // A restore that failed (cancelled mid-build, say) after its build had created the scratch.
    let (ended, job) = restores::create(&fx.pool, &req).await.unwrap();
    queue::cancel(&mut fx.pool.acquire().await.unwrap(), job.id)
        .await
        .unwrap();
    restores::mark_failed(&fx.pool, ended, "cancelled")
        .await
        .unwrap();
    let leftover = full::scratch_name(&fx.source.name, ended);
    // Names that are not this catalog's ended restores: kept.
    let unknown = full::scratch_name(&fx.source.name, cellar_core::restore::RestoreId(987_654));
    let other_target = full::scratch_name(&format!("{}x", fx.source.name), ended);
    for name in [&leftover, &unknown, &other_target] {
        cellar_tests::psql_admin(&format!("CREATE DATABASE \"{name}\""));
    }
    let swept = sweep::sweep(&fx.env).await.unwrap();
    assert_eq!(swept.scratch, vec![leftover.clone()]);
    assert_eq!(databases_like(&leftover), "");
    for name in [&unknown, &other_target] {
        assert_eq!(databases_like(name), *name, "not ours to drop");
        cellar_tests::psql_admin(&format!("DROP DATABASE \"{name}\""));
    }
    assert_eq!(audited(&fx, "dropLeftoverScratch").await, 1);
}
