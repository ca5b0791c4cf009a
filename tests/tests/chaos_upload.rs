//! Chaos on the way to Google Drive (the fake): real `cellar-worker` processes SIGKILLed at
//! random points of `upload` jobs, and a Drive outage longer than the client's retry budget
//! (every request fails). The backup must stay complete and verifiable locally throughout; the
//! Drive copy must end `available` with exactly the local objects (no duplicates, no strays),
//! after the outage once Drive is back: by the job's own retries, or by `retryJob` when the
//! outage outlasted every attempt.

use std::sync::Arc;
use std::time::Duration;

use cellar_core::backup::catalog::{self, BackupRequest};
use cellar_core::backup::{BackupEnv, BackupId, BackupState, verify};
use cellar_core::queue::{JobState, control};
use cellar_tests::chaos::{self, Tally};
use cellar_tests::fake_drive::{FakeDrive, FaultPlan, SHARED_FOLDER};
use cellar_tests::rig::{self, Rig};
use cellar_tests::wait_for;
use cellar_worker::{RunOnce, Worker, WorkerConfig};
use rand::Rng;

async fn request(rig: &Rig) -> BackupId {
    let req = BackupRequest {
        source: "src".into(),
        upload_to_drive: true,
        ..Default::default()
    };
    catalog::create(&rig.pool, &req).await.unwrap().0
}

/// The upload job of backup `id`, once the backup has completed and enqueued it.
async fn upload_job(rig: &Rig, id: &BackupId) -> i64 {
    let q = "SELECT id FROM job WHERE kind = 'upload' AND args->>'backupId' = $1";
    let find = || async {
        sqlx::query_scalar::<_, i64>(q)
            .bind(id.as_str())
            .fetch_optional(&rig.pool)
            .await
            .unwrap()
    };
    wait_for(Duration::from_secs(120), "the upload job", || async {
        find().await.is_some()
    })
    .await;
    find().await.unwrap()
}

async fn drive_location(rig: &Rig, id: &BackupId) -> String {
    let row = catalog::get(&rig.pool, id).await.unwrap().unwrap();
    row.locations["drive"].as_str().unwrap_or_default().into()
}

/// Drive holds exactly one copy of every local object of `id`, byte for byte.
fn same_on_drive(fake: &FakeDrive, rig: &Rig, id: &BackupId) -> usize {
    let mut remote: Vec<(String, Vec<u8>)> = fake
        .files()
        .into_iter()
        .filter(|f| f.props.get("backup_id").map(String::as_str) == Some(id.as_str()))
        .map(|f| (f.props["cellar_key"].clone(), f.data.to_vec()))
        .collect();
    remote.sort();
    let root = rig.backups();
    let mut local: Vec<(String, Vec<u8>)> = walk(&root.join(id.as_str()))
        .into_iter()
        .map(|p| {
            let key = p.strip_prefix(&root).unwrap().display().to_string();
            (key, std::fs::read(&p).unwrap())
        })
        .collect();
    local.sort();
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&remote), names(&local), "objects on Drive vs local");
    assert!(
        remote == local,
        "a Drive copy differs from its local object"
    );
    local.len()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
        match e.file_type().unwrap().is_dir() {
            true => out.extend(walk(&e.path())),
            false => out.push(e.path()),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_uploads_resume_and_leave_one_copy_of_each_object() {
    let n = chaos::trials(2);
    let seed = chaos::base_seed("upload-kill");
    let fake = FakeDrive::start().await;
    fake.set_chunk_delay(Duration::from_millis(40));
    let mut rig = Rig::new(rig::source(60_000).await).await;
    rig.use_drive(&fake);
    let mut t = Tally::default();
    let mut window = Duration::from_secs(1);
    for i in 0..=n {
        let mut rng = chaos::rng(seed, i);
        let id = request(&rig).await;
        let mut first = rig.worker();
        let job = upload_job(&rig, &id).await;
        if rig.until_running(job).await && i > 0 {
            let at = rng.gen_range(0..window.as_millis() as u64);
            // The fault's moment, chosen at random: not a wait for a condition.
            tokio::time::sleep(Duration::from_millis(at)).await;
            let mid = rig.job(job).await.state == JobState::Running;
            first.kill();
            t.add(if mid {
                "killed mid-upload"
            } else {
                "killed after the end"
            });
        }
        let started = std::time::Instant::now();
        let _second = rig.worker();
        let row = rig.until_final(job, Duration::from_secs(180)).await;
        if i == 0 {
            window = started.elapsed().mul_f64(1.2);
        }
        assert_eq!(row.state, JobState::Completed, "upload: {:?}", row.errors);
        assert_eq!(drive_location(&rig, &id).await, "available");
        let objects = same_on_drive(&fake, &rig, &id);
        t.add(format!(
            "available, {objects} objects, attempt {}",
            row.attempt
        ));
    }
    t.report("kill: upload");
}

/// An in-process worker over `env` with millisecond retries.
fn fast_worker(rig: &Rig, env: &BackupEnv) -> Arc<Worker> {
    let cfg = WorkerConfig {
        retry_base_secs: 0.02,
        retry_max_secs: 0.05,
        ..WorkerConfig::default()
    };
    let mut w = Worker::new(rig.pool.clone(), cfg);
    cellar_worker::handlers::register_all(&mut w, env.clone());
    Arc::new(w)
}

/// Steps `w` until `done` holds (a deadline, like `wait_for`).
async fn step_until(w: &Arc<Worker>, what: &str, done: impl AsyncFn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        while w.run_once().await.unwrap() != RunOnce::Empty {}
        if done().await {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drive_outage_longer_than_the_retry_budget_is_ridden_out() {
    let fake = FakeDrive::start().await;
    let rig = Rig::new(rig::source(20_000).await).await;
    let mut env = rig.backup_env();
    let drive = fake.storage(rig.dir.path(), SHARED_FOLDER, 256).await;
    env.drive = Some(Arc::new(drive));
    let w = fast_worker(&rig, &env);

    // Outage shorter than the job's attempts: a failed attempt, a retry, then success.
    fake.set_faults(FaultPlan::random(1.0, 1));
    let id = request(&rig).await;
    let job = upload_job_after(&w, &rig, &id).await;
    step_until(&w, "a failed upload attempt", async || {
        rig.job(job).await.attempt >= 2
    })
    .await;
    local_copy_is_whole(&rig, &env, &id).await;
    assert_ne!(drive_location(&rig, &id).await, "available");
    fake.set_faults(FaultPlan::default());
    step_until(&w, "the upload to finish", async || {
        rig.job(job).await.state.is_final()
    })
    .await;
    let row = rig.job(job).await;
    assert_eq!(row.state, JobState::Completed, "{:?}", row.errors);
    assert_eq!(drive_location(&rig, &id).await, "available");
    let n = same_on_drive(&fake, &rig, &id);
    eprintln!(
        "chaos outage: recovered on attempt {} ({n} objects)",
        row.attempt
    );

    // Outage past every attempt: the copy fails, the backup does not; retryJob finishes it.
    fake.set_faults(FaultPlan::random(1.0, 2));
    let id = request(&rig).await;
    let job = upload_job_after(&w, &rig, &id).await;
    step_until(&w, "the upload to give up", async || {
        rig.job(job).await.state.is_final()
    })
    .await;
    let row = rig.job(job).await;
    assert_eq!(row.state, JobState::Discarded, "{row:?}");
    assert_eq!(drive_location(&rig, &id).await, "failed");
    let last = row
        .errors
        .last()
        .map(|e| e["error"].to_string())
        .unwrap_or_default();
    assert!(
        !last.is_empty() && !last.contains("BEGIN PRIVATE KEY"),
        "{last}"
    );
    local_copy_is_whole(&rig, &env, &id).await;
    fake.set_faults(FaultPlan::default());
    let mut conn = rig.pool.acquire().await.unwrap();
    control::retry(&mut conn, job).await.unwrap();
    drop(conn);
    step_until(&w, "the retried upload", async || {
        rig.job(job).await.state.is_final()
    })
    .await;
    assert_eq!(rig.job(job).await.state, JobState::Completed);
    assert_eq!(drive_location(&rig, &id).await, "available");
    let n = same_on_drive(&fake, &rig, &id);
    eprintln!(
        "chaos outage: gave up after {} attempts ({last}); retryJob uploaded {n} objects",
        row.attempt
    );
}

/// Runs the backup and returns its upload job.
async fn upload_job_after(w: &Arc<Worker>, rig: &Rig, id: &BackupId) -> i64 {
    assert!(matches!(w.run_once().await.unwrap(), RunOnce::Ran(_)));
    upload_job(rig, id).await
}

/// The backup is completed and verifies from the local copy alone.
async fn local_copy_is_whole(rig: &Rig, env: &BackupEnv, id: &BackupId) {
    let row = catalog::get(&rig.pool, id).await.unwrap().unwrap();
    assert_eq!(row.state, BackupState::Completed, "{:?}", row.error);
    let v = verify::verify(env, id, &()).await.unwrap();
    assert!(v.is_valid(), "{:?}", v.failures);
}
