//! Issue 6's size test, through the whole product: a source whose backup stores over 200 MB of
//! incompressible data is backed up by a worker process and copied to the fake Drive while a
//! fifth of all Drive requests fail (every kind `FaultPlan::random` draws); then, the local copy
//! removed and the faults still on, verified deeply and restored into a new database from Drive
//! alone. Asserts: Drive's files are the local objects byte for byte; every re-sent byte range
//! follows a fault and is at most one chunk; the restored database equals the source (dbdiff).
//! Prints the figures quoted in docs/BENCHMARKS.md, the worker's peak RSS among them.

mod restore_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cellar_core::backup::catalog::{self, BackupRequest, BackupRow};
use cellar_core::backup::verify::Level;
use cellar_core::backup::{BackupId, BackupState, requests};
use cellar_core::format::KeyRing;
use cellar_core::restore::{RestoreRequest, RestoreRow, RestoreState, catalog as restores};
use cellar_core::storage::{LocalStorage, ObjectKey, Storage};
use cellar_tests::fake_drive::{FakeDrive, Fault, FaultPlan, LogEntry, SHARED_FOLDER, resends};
use cellar_tests::{TestDb, shared_dir, wait_for};
use futures::TryStreamExt;
use restore_support::{adopt, dbdiff, psql, query};
use sqlx::PgPool;

/// 1 MiB resumable chunks: ~200 chunk requests, so a 20% rate gives dozens of chunk faults.
const CHUNK_KIB: u64 = 1024;
const MIB: f64 = 1024.0 * 1024.0;
/// Rows of random bytes: 110,000 x 1,800 B = 198 MB, ~215 MB stored (hex in COPY, gzip -3).
const ROWS: u64 = 110_000;
const ROW_BYTES: u64 = 1800;

/// The incompressible table: pgcrypto's random bytes (~2 s), or md5 chains (~13 s) without it.
fn source_sql(pgcrypto: bool) -> String {
    let value = if pgcrypto {
        "gen_random_bytes(1024) || gen_random_bytes(776)".to_string()
    } else {
        "(SELECT decode(string_agg(md5(random()::text || i), ''), 'hex') \
          FROM generate_series(1, 113) i WHERE g > 0)"
            .to_string()
    };
    let (ext, drop) = match pgcrypto {
        true => ("CREATE EXTENSION pgcrypto;", "DROP EXTENSION pgcrypto;"),
        false => ("", ""),
    };
    format!(
        "{ext}
        CREATE TABLE payload (id int PRIMARY KEY, b bytea NOT NULL);
        INSERT INTO payload SELECT g, {value} FROM generate_series(1, {ROWS}) g;
        {drop}
        CREATE TABLE note (id serial PRIMARY KEY, body text NOT NULL);
        INSERT INTO note (body) SELECT 'note ' || g FROM generate_series(1, 1000) g;"
    )
}

fn has_pgcrypto(db: &TestDb) -> bool {
    let sql = "SELECT count(*) FROM pg_available_extensions WHERE name = 'pgcrypto'";
    query(db, sql) == "1"
}

/// `VmHWM` (peak resident set) of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Restarts `pid`'s peak count from its current RSS (Linux `clear_refs` 5); false if refused.
fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// The worker process: production handlers and settings, Drive's backoff in milliseconds.
fn start_worker(
    fake: &FakeDrive,
    catalog: &TestDb,
    source: &TestDb,
    dir: &std::path::Path,
    key: &str,
) -> tokio::process::Child {
    let d = fake.settings(dir, SHARED_FOLDER);
    tokio::process::Command::new(env!("CARGO_BIN_EXE_upload_child"))
        .env("DATABASE_URL", catalog.url.expose())
        .env("CELLAR_SOURCE_URL", format!("src={}", source.url.expose()))
        .env("CELLAR_BACKUP_DIR", dir.join("backups"))
        .env("CELLAR_ENCRYPTION_KEY", key)
        .env("CELLAR_BACKUP_JOBS", "2")
        .env("CELLAR_SPLIT_TABLE_MIB", "64")
        .env("CELLAR_POLL_INTERVAL_MS", "50")
        .env("CELLAR_RETRY_BASE_SECS", "0.05")
        .env("CELLAR_RETRY_MAX_SECS", "0.2")
        .env("CELLAR_SCHEDULER", "false")
        .env("CELLAR_TEST_FAST_DRIVE_RETRY", "1")
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
        .expect("start upload_child")
}

async fn backup_row(pool: &PgPool, id: &BackupId) -> BackupRow {
    catalog::get(pool, id).await.unwrap().unwrap()
}

async fn job_state(pool: &PgPool, job: i64) -> String {
    sqlx::query_scalar("SELECT state::text FROM job WHERE id = $1")
        .bind(job)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn read_all(s: &dyn Storage, k: &ObjectKey) -> Vec<u8> {
    let chunks: Vec<bytes::Bytes> = s.get(k).await.unwrap().try_collect().await.unwrap();
    chunks.concat()
}

/// Every local object of `id` is on Drive exactly once, byte for byte, and nothing else is.
async fn assert_drive_equals_local(fake: &FakeDrive, local: &LocalStorage, id: &BackupId) -> usize {
    let objects = local.list(&format!("{id}/")).await.unwrap();
    let files = fake.files();
    assert_eq!(files.len(), objects.len(), "one Drive file per object");
    for o in &objects {
        let copies: Vec<_> = files.iter().filter(|f| f.name == o.key.as_str()).collect();
        assert_eq!(copies.len(), 1, "{}: one copy on Drive", o.key);
        let bytes = read_all(local, &o.key).await;
        assert!(copies[0].data == bytes, "{}: Drive's copy differs", o.key);
    }
    objects.len()
}

/// What the upload's requests show: faults by kind, re-sends (each after a fault, at most one
/// chunk). Returns the line of figures to print.
fn check_upload_log(log: &[LogEntry], stored: u64) -> String {
    let chunk = CHUNK_KIB * 1024;
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for f in log.iter().filter_map(|e| e.fault) {
        *kinds.entry(format!("{f:?}")).or_default() += 1;
    }
    let chunks: Vec<&LogEntry> = log.iter().filter(|e| e.span().is_some()).collect();
    let on_chunks = |f: Fault| chunks.iter().filter(|e| e.fault == Some(f)).count();
    assert_eq!(kinds.len(), 6, "every kind of fault was drawn: {kinds:?}");
    assert!(on_chunks(Fault::DropMidBody) > 0 && on_chunks(Fault::PartialAccept) > 0);
    let unexplained: Vec<&LogEntry> = log
        .iter()
        .filter(|e| e.upload.as_deref() == Some("session") && e.fault.is_none())
        .filter(|e| e.status == 0 || e.status >= 400)
        .collect();
    assert!(
        unexplained.is_empty(),
        "errors nobody injected: {unexplained:?}"
    );
    let faults: usize = kinds.values().sum();
    let rate = faults as f64 / log.len() as f64;
    assert!(
        (0.15..0.25).contains(&rate),
        "a fifth failed: {faults} of {}",
        log.len()
    );
    let re = resends(log);
    let bad: Vec<_> = re
        .iter()
        .filter(|r| r.bytes > chunk || r.faults_before == 0)
        .collect();
    assert!(
        bad.is_empty(),
        "re-sent without a fault, or more than a chunk: {bad:?}"
    );
    let total: u64 = re.iter().map(|r| r.bytes).sum();
    let chunk_faults = chunks.iter().filter(|e| e.fault.is_some()).count();
    format!(
        "{} Drive requests, {} chunk requests; {faults} faults ({:.1}%; {chunk_faults} on \
         chunks): {kinds:?}; {} re-sends, {total} bytes re-sent ({:.2}% of {stored}), max {} \
         per fault",
        log.len(),
        chunks.len(),
        rate * 100.0,
        re.len(),
        total as f64 * 100.0 / stored as f64,
        re.iter().map(|r| r.bytes).max().unwrap_or(0),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mb_backup_uploads_verifies_and_restores_from_drive_under_faults() {
    let fake = FakeDrive::start().await;
    let source = TestDb::empty().await;
    let (catalog_db, pool) = TestDb::catalog().await;
    let dir = tempfile::tempdir().unwrap();
    let key = KeyRing::generate_entry();

    let t = Instant::now();
    let pgcrypto = has_pgcrypto(&source);
    if !pgcrypto {
        eprintln!("\n!!!!!!!! pgcrypto is not installed: md5 chains instead (slower) !!!!!!!!\n");
    }
    psql(&source, &source_sql(pgcrypto));
    let gen_s = t.elapsed().as_secs_f64();

    let mut worker = start_worker(&fake, &catalog_db, &source, dir.path(), &key);
    let pid = worker.id().expect("worker pid");
    fake.set_faults(FaultPlan::random(0.2, 20_261_126));
    let req = BackupRequest {
        source: "src".into(),
        upload_to_drive: true,
        ..Default::default()
    };
    let (id, _) = catalog::create(&pool, &req).await.unwrap();
    let backup_s = wait_for(Duration::from_secs(300), "the backup", || async {
        let state = backup_row(&pool, &id).await.state;
        matches!(state, BackupState::Completed | BackupState::Failed)
    })
    .await
    .as_secs_f64();
    let row = backup_row(&pool, &id).await;
    assert_eq!(row.state, BackupState::Completed, "{:?}", row.error);
    let backup_rss = peak_rss_kib(pid);
    let reset = reset_peak_rss(pid);

    let upload_s = wait_for(Duration::from_secs(300), "the Drive copy", || async {
        let row = backup_row(&pool, &id).await;
        matches!(
            row.locations["drive"].as_str(),
            Some("available" | "failed")
        )
    })
    .await
    .as_secs_f64();
    let upload_rss = peak_rss_kib(pid);
    let upload_log = fake.log();
    let row = backup_row(&pool, &id).await;
    assert_eq!(row.locations["drive"], "available", "{:?}", row.error);
    let stored = row.stored_bytes.unwrap() as u64;
    assert!(
        stored >= 200_000_000,
        "the backup stores over 200 MB: {stored}"
    );
    let figures = check_upload_log(&upload_log, stored);
    let local = LocalStorage::new(dir.path().join("backups")).unwrap();
    let objects = assert_drive_equals_local(&fake, &local, &id).await;

    // From here on Drive is the only copy; the faults stay on.
    std::fs::remove_dir_all(local.root().join(id.as_str())).unwrap();
    let t = Instant::now();
    let job = requests::verify(&pool, &id, Level::Deep).await.unwrap().id;
    wait_for(Duration::from_secs(300), "the deep verify", || async {
        matches!(
            job_state(&pool, job).await.as_str(),
            "completed" | "discarded" | "cancelled"
        )
    })
    .await;
    let verify_s = t.elapsed().as_secs_f64();
    let v = backup_row(&pool, &id)
        .await
        .verification
        .expect("a verification");
    assert_eq!(v["status"], "valid", "{v}");
    assert_eq!(v["level"], "deep", "{v}");
    let data_objects = objects as u64 - 2; // all but KEY and MANIFEST
    assert_eq!(v["objectsChecked"].as_u64(), Some(data_objects), "{v}");

    let fresh = adopt(&format!("{}_fromdrive", source.name));
    let mut req = RestoreRequest::new(id.clone());
    req.target_database = Some(fresh.name.clone());
    let t = Instant::now();
    let (rid, _) = restores::create(&pool, &req).await.unwrap();
    let restored = || async { restores::get(&pool, rid).await.unwrap().unwrap() };
    wait_for(Duration::from_secs(300), "the restore", || async {
        matches!(
            restored().await.state,
            RestoreState::Completed | RestoreState::Failed
        )
    })
    .await;
    let restore_s = t.elapsed().as_secs_f64();
    let r: RestoreRow = restored().await;
    assert_eq!(r.state, RestoreState::Completed, "{:?}", r.error);
    let read_faults = fake.log()[upload_log.len()..]
        .iter()
        .filter(|e| e.fault.is_some())
        .count();
    worker.start_kill().unwrap();
    worker.wait().await.unwrap();
    fake.set_faults(FaultPlan::default());

    let t = Instant::now();
    if shared_dir().is_some() {
        dbdiff(&source, &fresh).expect("restored from Drive = source");
    } else {
        for t in ["payload", "note"] {
            let q = format!(
                "SELECT count(*), md5(string_agg(md5(t::text), '' ORDER BY id)) FROM {t} t"
            );
            assert_eq!(query(&source, &q), query(&fresh, &q), "{t}");
        }
    }
    let compare_s = t.elapsed().as_secs_f64();

    let mb = |b: u64| b as f64 / 1e6;
    eprintln!(
        "drive_large: {ROWS} rows x {ROW_BYTES} random bytes generated in {gen_s:.1}s \
         (pgcrypto: {pgcrypto}); backup: {:.1} MB plain, {:.1} MB stored ({:.3} of plain), \
         {objects} objects, {backup_s:.1}s, worker peak RSS {} MiB",
        mb(row.plain_bytes.unwrap() as u64),
        mb(stored),
        stored as f64 / row.plain_bytes.unwrap() as f64,
        backup_rss / 1024,
    );
    eprintln!(
        "drive_large: upload with 20% faults: {upload_s:.1}s, {:.1} MiB/s, worker peak RSS \
         during the upload {} MiB (peak reset at the upload's start: {reset}); {figures}",
        stored as f64 / MIB / upload_s,
        upload_rss / 1024,
    );
    eprintln!(
        "drive_large: from Drive alone, faults still on ({read_faults} more): deep verify \
         {verify_s:.1}s ({:.1} MiB/s), restore {restore_s:.1}s, compare {compare_s:.1}s",
        stored as f64 / MIB / verify_s,
    );
}
