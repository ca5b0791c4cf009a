//! Chaos: real `cellar-worker` processes SIGKILLed at random points of backups, verifies and
//! restores (`chaos_upload.rs` does uploads). Each trial starts a worker, waits for it to claim
//! the job, kills it after a random delay within the job's calibrated duration, starts another
//! worker and waits for the job to end. Every job must end completed (after the rescue) or
//! failed with a reason, never stuck; every completed backup must verify; a failed one leaves no
//! object; after cleanup no object or temp file is left that the catalog does not list; a
//! restore leaves the target either fully restored or exactly as before, and no scratch
//! database behind.
//!
//! `CELLAR_CHAOS_TRIALS` (default 2) trials per kind; `CELLAR_CHAOS_SEED` replays a run.

use std::time::{Duration, Instant};

use cellar_core::backup::catalog::{self, BackupRequest};
use cellar_core::backup::verify::{self, Level};
use cellar_core::backup::{BackupId, BackupState, requests};
use cellar_core::queue::{JobRow, JobState};
use cellar_core::restore::{RestoreRequest, RestoreState, catalog as restores};
use cellar_tests::chaos::{self, Tally, fingerprint};
use cellar_tests::rig::{self, Rig};
use cellar_tests::{TestDb, file_tree, psql_admin, wait_for};
use rand::Rng;
use rand::rngs::StdRng;

const FINISH: Duration = Duration::from_secs(120);

/// Starts a worker, kills it `window`-random after it claims `job`, starts another; returns the
/// final job row. Tallies whether the kill landed mid-job.
async fn kill_once(rig: &mut Rig, job: i64, window: Duration, rng: &mut StdRng, t: &mut Tally) {
    let mut first = rig.worker();
    if rig.until_running(job).await {
        // Calibration overestimates by the polling around it: draw from its first 80 %.
        let at = rng.gen_range(0..(window.as_millis() * 4 / 5).max(1) as u64);
        // The fault's moment, chosen at random: not a wait for a condition.
        tokio::time::sleep(Duration::from_millis(at)).await;
    }
    let mid = rig.job(job).await.state == JobState::Running;
    first.kill();
    t.add(if mid {
        "killed mid-job"
    } else {
        "killed after the end"
    });
}

/// Runs `job` to its end with a second worker, which is then stopped.
async fn finish(rig: &mut Rig, job: i64) -> JobRow {
    let _second = rig.worker();
    rig.until_final(job, FINISH).await
}

/// How long `job` takes with nobody killing anything (the window kills are drawn from).
async fn calibrate(rig: &mut Rig, job: i64) -> Duration {
    let _w = rig.worker();
    rig.until_running(job).await;
    let start = Instant::now();
    let row = rig.until_final(job, FINISH).await;
    assert_eq!(
        row.state,
        JobState::Completed,
        "calibration: {:?}",
        row.errors
    );
    start.elapsed().mul_f64(1.2)
}

async fn new_backup(rig: &Rig, verify: bool) -> (BackupId, i64) {
    let req = BackupRequest {
        source: "src".into(),
        verify,
        include_files: true,
        ..Default::default()
    };
    let (id, job) = catalog::create(&rig.pool, &req).await.unwrap();
    (id, job.id)
}

/// A finished backup job left a backup that verifies, or a failed one with a reason and no
/// objects.
async fn check_backup(rig: &Rig, id: &BackupId, row: &JobRow, t: &mut Tally) {
    let b = catalog::get(&rig.pool, id).await.unwrap().unwrap();
    match row.state {
        JobState::Completed => {
            assert_eq!(b.state, BackupState::Completed, "{b:?}");
            let v = verify::verify(&rig.backup_env(), id, &()).await.unwrap();
            assert!(v.is_valid(), "{id} is listed but does not verify: {v:?}");
            t.add(format!("completed on attempt {}", row.attempt));
        }
        _ => {
            assert_eq!(b.state, BackupState::Failed, "{b:?} after job {row:?}");
            assert!(b.error.as_deref().is_some_and(|e| !e.is_empty()), "{b:?}");
            let left = chaos::object_files(&rig.backups(), id.as_str());
            assert_eq!(left, 0, "failed backup {id} left {left} objects");
            t.add(format!("failed: {}", b.error.unwrap_or_default()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_backups_verifies_and_restores_end_cleanly() {
    let n = chaos::trials(2);
    let seed = chaos::base_seed("kill");
    let mut rig = Rig::new(rig::source(60_000).await).await;
    let files = uploads(&mut rig);
    let mut t = Tally::default();

    let (id, job) = new_backup(&rig, true).await;
    let window = calibrate(&mut rig, job).await;
    eprintln!("backup with verify takes ~{window:?}");
    let first = id.clone();
    // Verified and restored below after 20 more backups: kept out of retention's reach.
    cellar_core::retention::store::set_pinned(&rig.pool, &first, true)
        .await
        .unwrap();
    for i in 0..n {
        let mut rng = chaos::rng(seed, i);
        let (id, job) = new_backup(&rig, true).await;
        kill_once(&mut rig, job, window, &mut rng, &mut t).await;
        let row = finish(&mut rig, job).await;
        check_backup(&rig, &id, &row, &mut t).await;
    }
    t.report("kill: backup");

    let mut t = Tally::default();
    let job = requests::verify(&rig.pool, &first, Level::Deep)
        .await
        .unwrap();
    let window = calibrate(&mut rig, job.id).await;
    for i in 0..n {
        let mut rng = chaos::rng(seed, 1000 + i);
        let job = requests::verify(&rig.pool, &first, Level::Deep)
            .await
            .unwrap();
        kill_once(&mut rig, job.id, window, &mut rng, &mut t).await;
        let row = finish(&mut rig, job.id).await;
        assert_eq!(
            row.state,
            JobState::Completed,
            "verify job: {:?}",
            row.errors
        );
        let b = catalog::get(&rig.pool, &first).await.unwrap().unwrap();
        assert_eq!(b.verification.unwrap()["status"], "valid");
        t.add(format!("verified on attempt {}", row.attempt));
    }
    t.report("kill: verify");

    let mut t = Tally::default();
    let source_print = fingerprint(&rig.source).await;
    let files_print = file_tree(&files);
    let target = target_db().await;
    let mut window = Duration::ZERO;
    for i in 0..=n {
        let mut rng = chaos::rng(seed, 2000 + i);
        let before = fingerprint(&target).await;
        let files_before = file_tree(&files);
        let mut req = RestoreRequest::new(first.clone());
        req.target_database = Some(target.name.clone());
        req.confirm = true;
        req.files = true;
        req.create_safety_backup = i == 0 || rng.gen_bool(0.5);
        let (rid, job) = restores::create(&rig.pool, &req).await.unwrap();
        if i == 0 {
            window = calibrate(&mut rig, job.id).await;
        } else {
            kill_once(&mut rig, job.id, window, &mut rng, &mut t).await;
            finish(&mut rig, job.id).await;
        }
        let row = restores::get(&rig.pool, rid).await.unwrap().unwrap();
        let after = fingerprint(&target).await;
        let files_after = file_tree(&files);
        match row.state {
            RestoreState::Completed => {
                assert_eq!(after, source_print, "completed: {row:?}");
                assert!(
                    files_after == files_print,
                    "completed, files differ: {row:?}"
                );
            }
            _ => {
                assert_eq!(after, before, "failed restore changed the target: {row:?}");
                assert!(
                    files_after == files_before,
                    "failed restore changed files: {row:?}"
                );
            }
        }
        let leftovers = scratch_databases(&target.name).await;
        assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
        t.add(format!("restore {:?}", row.state));
        // The next trial starts from a target that differs from the backup again.
        cellar_tests::rig::scramble(&target).await;
        scramble_files(&files, i);
    }
    t.report("kill: restore");

    no_orphans(&mut rig).await;
}

/// The app's uploads (`CELLAR_FILES_DIR` of every process): 24 top-level directories, so a
/// files restore's swap is two dozen renames each way, and ~3 MB to extract.
fn uploads(rig: &mut Rig) -> std::path::PathBuf {
    let dir = rig.dir.path().join("uploads");
    for t in 0..24 {
        let d = dir.join(format!("tenant-{t:02}"));
        std::fs::create_dir_all(&d).unwrap();
        for f in 0..5 {
            let body: Vec<u8> = (0..20_000u32).map(|i| (i * 31 + t * 7 + f) as u8).collect();
            std::fs::write(d.join(format!("doc-{f}.pdf")), body).unwrap();
        }
    }
    std::fs::write(dir.join("big.bin"), vec![0xa5; 600_000]).unwrap();
    rig.extra
        .push(("CELLAR_FILES_DIR".into(), dir.display().to_string()));
    dir
}

/// The uploads change between restore trials, so each restore has something to replace.
fn scramble_files(dir: &std::path::Path, trial: usize) {
    std::fs::write(
        dir.join(format!("tenant-{:02}/doc-0.pdf", trial % 24)),
        b"edited",
    )
    .unwrap();
    std::fs::write(dir.join(format!("new-{trial}.txt")), b"added").unwrap();
    let gone = dir.join(format!("tenant-{:02}", (trial + 7) % 24));
    if gone.exists() {
        std::fs::remove_dir_all(gone).unwrap();
    }
}

/// A database to restore into: the same tables as the source, other rows.
async fn target_db() -> TestDb {
    let db = rig::source(100).await;
    rig::scramble(&db).await;
    db
}

/// Databases whose name starts with `<target>__cellar` (a restore's scratch or old copy).
async fn scratch_databases(target: &str) -> Vec<String> {
    let admin = cellar_core::db::connect(&cellar_tests::admin_url(), 1)
        .await
        .unwrap();
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE starts_with(datname, $1)")
            .bind(format!("{target}__cellar"))
            .fetch_all(&admin)
            .await
            .unwrap();
    admin.close().await;
    for n in &names {
        psql_admin(&format!("DROP DATABASE IF EXISTS \"{n}\" WITH (FORCE)"));
    }
    names
}

/// Every directory in storage is a completed backup that verifies; temp files left by killed
/// writers are removed by the next worker that starts (`CELLAR_STALE_TEMP_SECS`).
async fn no_orphans(rig: &mut Rig) {
    let rows = catalog::list(&rig.pool, 1000).await.unwrap();
    let env = rig.backup_env();
    for dir in chaos::backup_dirs(&rig.backups()) {
        let row = rows.iter().find(|r| r.id == dir);
        let state = row.map(|r| r.state);
        assert_eq!(state, Some(BackupState::Completed), "orphan objects: {dir}");
        let id: BackupId = dir.parse().unwrap();
        assert!(
            verify::verify(&env, &id, &()).await.unwrap().is_valid(),
            "{dir}"
        );
    }
    let left = chaos::temp_files(&rig.backups());
    rig.extra
        .push(("CELLAR_STALE_TEMP_SECS".into(), "0".into()));
    let _cleaner = rig.worker();
    let root = rig.backups();
    wait_for(FINISH, "stale temp files removed at start-up", || async {
        chaos::temp_files(&root) == 0
    })
    .await;
    eprintln!("chaos kill: {left} temp files left by killed writers, removed at start-up");
}
