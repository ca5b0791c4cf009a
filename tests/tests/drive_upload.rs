//! Backups copied to Google Drive (the fake Drive): the `upload` job copies every object,
//! MANIFEST last; with the local copy gone, verify and restore read from Drive; the upload
//! rides out faults on a fifth of requests; a SIGKILLed worker's successor resumes the
//! object it was sending from the confirmed offset.

mod restore_support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cellar_core::backup::catalog::{self, BackupRequest};
use cellar_core::backup::{BackupEnv, BackupId, BackupSettings, BackupState, verify};
use cellar_core::format::KeyRing;
use cellar_core::queue::maintenance;
use cellar_core::restore::{RestoreRequest, RestoreState, catalog as restores};
use cellar_core::storage::Storage;
use cellar_tests::fake_drive::{FakeDrive, FaultPlan, LogEntry, SHARED_FOLDER};
use cellar_tests::{TestDb, shared_dir, wait_for};
use cellar_worker::{RunOnce, Worker, WorkerConfig};
use restore_support::{adopt, dbdiff, psql, query};
use serde_json::Value;
use sqlx::PgPool;

/// Resumable chunks of 256 KiB: the big table's object takes a dozen or more.
const CHUNK_KIB: usize = 256;

/// A few MB: one big table (mostly incompressible hex), a small one, a sequence.
const SOURCE_SQL: &str = "
CREATE TABLE big (id int PRIMARY KEY, a text NOT NULL, b text NOT NULL);
INSERT INTO big SELECT g, md5(g::text), md5(random()::text) || md5(random()::text)
  FROM generate_series(1, 60000) g;
CREATE TABLE small (id serial PRIMARY KEY, name text NOT NULL, at timestamptz DEFAULT now());
INSERT INTO small (name) SELECT 'n' || g FROM generate_series(1, 500) g;";

struct Setup {
    fake: FakeDrive,
    source: TestDb,
    catalog: TestDb,
    pool: PgPool,
    dir: tempfile::TempDir,
    drive_dir: tempfile::TempDir,
    key: String,
    env: BackupEnv,
}

async fn setup() -> Setup {
    let fake = FakeDrive::start().await;
    let source = TestDb::empty().await;
    psql(&source, SOURCE_SQL);
    let (catalog, pool) = TestDb::catalog().await;
    let dir = tempfile::tempdir().unwrap();
    let drive_dir = tempfile::tempdir().unwrap();
    let key = KeyRing::generate_entry();
    let mut env = settings(&source, dir.path(), &key)
        .build(pool.clone(), &catalog.url)
        .unwrap();
    let drive = fake
        .storage(drive_dir.path(), SHARED_FOLDER, CHUNK_KIB)
        .await;
    env.drive = Some(Arc::new(drive));
    Setup {
        fake,
        source,
        catalog,
        pool,
        dir,
        drive_dir,
        key,
        env,
    }
}

fn settings(source: &TestDb, dir: &Path, key: &str) -> BackupSettings {
    BackupSettings {
        source_url: Some(format!("src={}", source.url.expose())),
        backup_dir: dir.to_path_buf(),
        encryption_key: Some(key.to_string()),
        encryption_key_file: None,
        jobs: Some(2),
        gzip_level: 1,
        split_table_mib: 64,
        files_dir: None,
        pg_dump: "pg_dump".into(),
    }
}

async fn request(pool: &PgPool) -> BackupId {
    let req = BackupRequest {
        source: "src".into(),
        upload_to_drive: true,
        ..Default::default()
    };
    catalog::create(pool, &req).await.unwrap().0
}

/// `locations.drive` of backup `id` ("" when absent).
async fn drive_location(pool: &PgPool, id: &BackupId) -> String {
    let row = catalog::get(pool, id).await.unwrap().unwrap();
    row.locations["drive"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Steps an in-process worker (fast retries) until the Drive copy is available or failed.
async fn run_until_settled(env: &BackupEnv, pool: &PgPool, id: &BackupId) -> String {
    let cfg = WorkerConfig {
        retry_base_secs: 0.05,
        retry_max_secs: 0.2,
        ..WorkerConfig::default()
    };
    let mut w = Worker::new(pool.clone(), cfg);
    cellar_worker::handlers::register_all(&mut w, env.clone());
    let w = Arc::new(w);
    wait_for(Duration::from_secs(180), "the Drive copy to settle", || {
        let w = Arc::clone(&w);
        async move {
            while w.run_once().await.unwrap() != RunOnce::Empty {}
            matches!(
                drive_location(pool, id).await.as_str(),
                "available" | "failed"
            )
        }
    })
    .await;
    drive_location(pool, id).await
}

/// Runs jobs until nothing is runnable (restores).
async fn run_jobs(env: &BackupEnv, pool: &PgPool) {
    let mut w = Worker::new(pool.clone(), WorkerConfig::default());
    cellar_worker::handlers::register_all(&mut w, env.clone());
    let w = Arc::new(w);
    while w.run_once().await.unwrap() != RunOnce::Empty {}
}

fn drive(s: &Setup) -> &dyn Storage {
    s.env.drive.as_deref().unwrap()
}

/// Local and Drive hold the same objects, with the same sizes, and MANIFEST came last.
async fn assert_same_objects(s: &Setup, id: &BackupId) -> (usize, u64) {
    let prefix = format!("{id}/");
    let local = s.env.storage.list(&prefix).await.unwrap();
    let remote = drive(s).list(&prefix).await.unwrap();
    assert_eq!(local, remote, "every object on Drive at its local size");
    let mut files = s.fake.files();
    files.sort_by(|a, b| a.created.cmp(&b.created));
    let last = files.last().expect("files on Drive");
    assert_eq!(
        last.name,
        format!("{id}/MANIFEST"),
        "MANIFEST uploaded last"
    );
    (local.len(), local.iter().map(|o| o.size).sum())
}

/// The local copy is removed; verify and a restore into a new database read from Drive.
async fn verify_and_restore_from_drive(s: &Setup, id: &BackupId) {
    std::fs::remove_dir_all(s.dir.path().join(id.as_str())).unwrap();
    let v = verify::verify(&s.env, id, &()).await.unwrap();
    assert!(v.is_valid(), "{:?}", v.failures);
    assert!(v.objects_checked >= 4);

    let fresh = adopt(&format!("{}_fromdrive", s.source.name));
    let mut req = RestoreRequest::new(id.clone());
    req.target_database = Some(fresh.name.clone());
    let (rid, _) = restores::create(&s.pool, &req).await.unwrap();
    run_jobs(&s.env, &s.pool).await;
    let row = restores::get(&s.pool, rid).await.unwrap().unwrap();
    assert_eq!(row.state, RestoreState::Completed, "{:?}", row.error);
    if shared_dir().is_some() {
        dbdiff(&s.source, &fresh).expect("restored from Drive = source");
    } else {
        for t in ["big", "small"] {
            let q =
                format!("SELECT count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM {t} t");
            assert_eq!(query(&s.source, &q), query(&fresh, &q), "{t}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_on_drive_alone_verifies_and_restores() {
    let s = setup().await;
    let id = request(&s.pool).await;
    let started = Instant::now();
    assert_eq!(run_until_settled(&s.env, &s.pool, &id).await, "available");
    let took = started.elapsed();
    let row = catalog::get(&s.pool, &id).await.unwrap().unwrap();
    assert_eq!(row.state, BackupState::Completed);
    assert_eq!(row.locations["local"], "available");
    let (objects, bytes) = assert_same_objects(&s, &id).await;
    let chunks = s.fake.log().iter().filter_map(LogEntry::span).count();
    eprintln!(
        "backup + upload: {objects} objects, {bytes} bytes, {chunks} chunks, {:.2}s",
        took.as_secs_f64()
    );
    assert!(chunks >= 8, "the big object goes up in chunks: {chunks}");
    verify_and_restore_from_drive(&s, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upload_completes_with_faults_on_a_fifth_of_requests() {
    let s = setup().await;
    s.fake.set_faults(FaultPlan::random(0.2, 11));
    let id = request(&s.pool).await;
    assert_eq!(run_until_settled(&s.env, &s.pool, &id).await, "available");
    s.fake.set_faults(FaultPlan::default());
    let log = s.fake.log();
    let faults = log.iter().filter(|e| e.fault.is_some()).count();
    eprintln!("{} Drive requests, {faults} faults injected", log.len());
    assert!(faults >= 3, "faults were injected: {faults}");
    assert_same_objects(&s, &id).await;
    std::fs::remove_dir_all(s.dir.path().join(id.as_str())).unwrap();
    let v = verify::verify(&s.env, &id, &()).await.unwrap();
    assert!(v.is_valid(), "{:?}", v.failures);
}

/// The upload job's row: `(id, result)`; the result holds the checkpoint while it runs.
async fn upload_job(pool: &PgPool) -> Option<(i64, Option<Value>)> {
    sqlx::query_as("SELECT id, result FROM job WHERE kind = 'upload'")
        .fetch_optional(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_upload_resumes_from_the_confirmed_offset() {
    let s = setup().await;
    s.fake.set_chunk_delay(Duration::from_millis(100));
    let id = request(&s.pool).await;
    let d = s.fake.settings(s.drive_dir.path(), SHARED_FOLDER);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_upload_child"))
        .env("DATABASE_URL", s.catalog.url.expose())
        .env(
            "CELLAR_SOURCE_URL",
            format!("src={}", s.source.url.expose()),
        )
        .env("CELLAR_BACKUP_DIR", s.dir.path())
        .env("CELLAR_ENCRYPTION_KEY", &s.key)
        .env("CELLAR_BACKUP_JOBS", "2")
        .env("CELLAR_GZIP_LEVEL", "1")
        .env("CELLAR_SPLIT_TABLE_MIB", "64")
        .env("CELLAR_LEASE_SECS", "1")
        .env("CELLAR_POLL_INTERVAL_MS", "50")
        .env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            d.google_application_credentials.unwrap(),
        )
        .env("GOOGLE_DRIVE_BACKUP_FOLDER_ID", SHARED_FOLDER)
        .env("GOOGLE_DRIVE_API_URL", d.google_drive_api_url)
        .env("GOOGLE_DRIVE_UPLOAD_URL", d.google_drive_upload_url)
        .env("GOOGLE_DRIVE_CHUNK_KIB", CHUNK_KIB.to_string())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let saved = || async {
        let cp = upload_job(&s.pool).await.and_then(|(_, r)| r)?;
        let confirmed = cp["confirmed"].as_u64()?;
        (confirmed >= 4 * CHUNK_KIB as u64 * 1024).then_some(cp)
    };
    wait_for(Duration::from_secs(120), "4 chunks confirmed", || async {
        saved().await.is_some()
    })
    .await;
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    let checkpoint = saved().await.unwrap();
    let confirmed = checkpoint["confirmed"].as_u64().unwrap();
    assert_eq!(drive_location(&s.pool, &id).await, "uploading");
    s.fake.clear_log();
    s.fake.set_chunk_delay(Duration::ZERO);
    wait_for(
        Duration::from_secs(10),
        "the dead worker's lease to expire",
        || async {
            !maintenance::rescue_expired(&s.pool, Duration::from_secs(1))
                .await
                .unwrap()
                .is_empty()
        },
    )
    .await;

    assert_eq!(run_until_settled(&s.env, &s.pool, &id).await, "available");
    let first = s
        .fake
        .log()
        .iter()
        .find_map(LogEntry::span)
        .expect("a chunk was sent");
    assert!(
        first.0 >= confirmed && first.0 > 0,
        "resumed at {}, checkpoint said {confirmed}",
        first.0
    );
    let (job, result) = upload_job(&s.pool).await.unwrap();
    let result = result.unwrap();
    assert_eq!(
        result["resumedAt"].as_u64(),
        Some(first.0),
        "job {job}: {result}"
    );
    eprintln!(
        "killed with {confirmed} bytes confirmed of {}; resumed at {}",
        checkpoint["key"], first.0
    );
    assert_same_objects(&s, &id).await;
    verify_and_restore_from_drive(&s, &id).await;
}

/// Key rotation re-wraps the Drive copy's KEY too: with the local copy gone, the new key alone
/// opens the backup from Drive. A Drive outage during a rotation is reported and the Drive copy
/// is re-wrapped by the next run (the local copy, already current, does not hide it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_rewraps_the_drive_copy() {
    let s = setup().await;
    let id = request(&s.pool).await;
    assert_eq!(run_until_settled(&s.env, &s.pool, &id).await, "available");
    let new = KeyRing::generate_entry();
    let with_drive = |key: &str| {
        let mut env = settings(&s.source, s.dir.path(), key)
            .build(s.pool.clone(), &s.catalog.url)
            .unwrap();
        env.drive = s.env.drive.clone();
        env
    };
    let both = with_drive(&format!("{new},{}", s.key));
    s.fake.set_faults(FaultPlan::random(1.0, 3));
    let report = cellar_core::backup::rotate::rotate_all(&both)
        .await
        .unwrap();
    s.fake.set_faults(FaultPlan::default());
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(
        report.failed[0].1.contains("Google Drive copy"),
        "{report:?}"
    );
    let report = cellar_core::backup::rotate::rotate_all(&both)
        .await
        .unwrap();
    assert_eq!(
        (report.rewrapped.len(), report.failed.len()),
        (1, 0),
        "{report:?}"
    );
    std::fs::remove_dir_all(s.dir.path().join(id.as_str())).unwrap();
    let v = verify::verify(&with_drive(&new), &id, &()).await.unwrap();
    assert!(
        v.is_valid(),
        "the new key alone opens the Drive copy: {:?}",
        v.failures
    );
    let v = verify::verify(&s.env, &id, &()).await.unwrap();
    assert!(!v.is_valid(), "the retired key no longer does");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_the_drive_copy_with_the_local_one() {
    use cellar_core::backup::BackupType;
    use cellar_core::retention::{Policy, store};
    let s = setup().await;
    let policy = Policy {
        backup_type: BackupType::Manual,
        max_count: Some(1),
        max_age_days: None,
        keep_daily: 0,
        keep_weekly: 0,
        keep_monthly: 0,
    };
    store::set_policy(&s.pool, &policy).await.unwrap();
    let first = request(&s.pool).await;
    assert_eq!(
        run_until_settled(&s.env, &s.pool, &first).await,
        "available"
    );
    let on_drive = |id: &BackupId| {
        let prefix = format!("{id}/");
        s.fake
            .files()
            .into_iter()
            .filter(move |f| f.name.starts_with(&prefix))
            .count()
    };
    let first_objects = on_drive(&first);
    assert!(first_objects >= 4, "{first_objects}");

    // The second backup's own retention pass (keep 1 manual backup) deletes the first, on
    // Drive as well as locally, through a `delete` job.
    let second = request(&s.pool).await;
    assert_eq!(
        run_until_settled(&s.env, &s.pool, &second).await,
        "available"
    );
    run_jobs(&s.env, &s.pool).await;
    let row = catalog::get(&s.pool, &first).await.unwrap().unwrap();
    assert_eq!(row.state, BackupState::Deleted, "{:?}", row.error);
    assert_eq!(on_drive(&first), 0, "the Drive copy is gone");
    assert!(
        !s.dir.path().join(first.as_str()).exists(),
        "the local copy is gone"
    );
    assert_eq!(
        on_drive(&second),
        first_objects,
        "the kept backup is whole on Drive"
    );
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_event WHERE token_name = 'retention' AND target = $1",
    )
    .bind(first.as_str())
    .fetch_one(&s.pool)
    .await
    .unwrap();
    assert!(audited >= 1, "the deletion is audited");
}
